/* dl.c: load an optional library on first use and resolve its symbol table (see dl.h). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "daemon/dl.h"

/* One lock for every library: loading happens a handful of times in a daemon's life. */
static pthread_mutex_t dl_lock = PTHREAD_MUTEX_INITIALIZER;

int osm_dl_open(osm_dl_lib *lib, osm_error *err, ...) {
        if (osm_dl_loaded(lib))
                return 0;
        pthread_mutex_lock(&dl_lock);
        int r = 0;
        if (lib->handle)
                goto out;
        void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                r = osm_error_set(err, -EOPNOTSUPP, 0, "%s cannot be loaded (install the package %s): %s",
                                  lib->soname, lib->package, dlerror());
                goto out;
        }
        /* Resolve everything first, assign only when all are there. */
        va_list ap;
        va_start(ap, err);
        for (void **slot; (slot = va_arg(ap, void **));) {
                const char *name = va_arg(ap, const char *);
                if (!dlsym(h, name)) {
                        r = osm_error_set(err, -EOPNOTSUPP, 0, "%s lacks %s (the package %s is too old)",
                                          lib->soname, name, lib->package);
                        break;
                }
        }
        va_end(ap);
        if (r == 0) {
                va_start(ap, err);
                for (void **slot; (slot = va_arg(ap, void **));)
                        *slot = dlsym(h, va_arg(ap, const char *));
                va_end(ap);
                if (lib->init && lib->init() < 0)
                        r = osm_error_set(err, -EOPNOTSUPP, 0, "%s: initialising the library failed",
                                          lib->soname);
        }
        if (r < 0) {
                /* Leave no pointer into a library about to be closed. */
                va_start(ap, err);
                for (void **slot; (slot = va_arg(ap, void **));) {
                        (void) va_arg(ap, const char *);
                        *slot = NULL;
                }
                va_end(ap);
                dlclose(h);
                goto out;
        }
        __atomic_store_n(&lib->handle, h, __ATOMIC_RELEASE);
out:
        pthread_mutex_unlock(&dl_lock);
        return r;
}
