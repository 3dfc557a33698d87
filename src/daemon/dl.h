/* dl.h: optional libraries opened on first use (dlopen), so that a daemon which never
 * federates, fetches a bundle by URL or bridges a workload maps none of them, nor their
 * TLS and Kerberos stacks. Each library has a table of the symbols we call, resolved once
 * (systemd's dlopen_many_sym_or_warn() pattern); callers check osm_dl_NAME() and then
 * call sym_FUNCTION(). The headers are still needed at build time. */
#pragma once

#include <stddef.h>

#include "osmose/error.h"

typedef struct osm_dl_lib {
        const char *soname;      /* "libcurl.so.4" */
        const char *package;     /* the Debian package that ships it */
        int (*init)(void);       /* run once after resolving (may be NULL); < 0: unusable */
        void *handle;            /* set (release) once everything resolved and init ran */
} osm_dl_lib;

/* Open lib once and resolve each (void **slot, const char *name) pair of the NULL-terminated
 * list; later calls return at once. All or nothing: on failure no slot is set, the library
 * is closed again and err names the file, the symbol and the package to install.
 * Safe from any thread. 0 or -EOPNOTSUPP. */
int osm_dl_open(osm_dl_lib *lib, osm_error *err, ...) __attribute__((sentinel));

/* Is lib loaded? (For status: nothing is loaded to answer.) */
static inline int osm_dl_loaded(const osm_dl_lib *lib) {
        return __atomic_load_n(&lib->handle, __ATOMIC_ACQUIRE) != NULL;
}

#define OSM_DL_DECLARE(name) extern __typeof__(name) *sym_##name
#define OSM_DL_DEFINE(name) __typeof__(name) *sym_##name = NULL
#define OSM_DL_SYM(name) (void **) &sym_##name, #name

/* For symbol lists written once as X-macros: LIST(OSM_DL_DECLARE_X) in the header,
 * LIST(OSM_DL_DEFINE_X) and osm_dl_open(&lib, err, LIST(OSM_DL_SYM_X) NULL) in the .c. */
#define OSM_DL_DECLARE_X(name) OSM_DL_DECLARE(name);
#define OSM_DL_DEFINE_X(name) OSM_DL_DEFINE(name);
#define OSM_DL_SYM_X(name) OSM_DL_SYM(name),
