/* api-internal.h: what the workload API's files share: an instance, its watches and
 * publications, the subsystem's state, and the checks every call goes through. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/api/api.h"
#include "daemon/daemon.h"
#include "daemon/store/store.h"
#include "osmose/grant.h"
#include "osmose/varlink.h"
#if HAVE_AVAHI
#include "daemon/discovery/discovery.h"
#endif


#define REVOKE_CHECK_MS 250        /* how often open watches and publications are re-checked */
#define MAX_INSTANCE_ID 64
#define MAX_TYPE 64                /* bytes of a service type, "_name._tcp" */

typedef struct api_inst api_inst;

typedef struct api_watch {
        struct api_watch *next, *prev;
        api_inst *in;
        osm_call *call;
        osm_store_watch *sw;
        char pattern[OSM_GRANT_MAX_NAME + 1];
} api_watch;

typedef struct api_pub {
        struct api_pub *next;
        int64_t id;
        char type[MAX_TYPE];
        uint16_t port;
#if HAVE_AVAHI
        osm_discovery_pub *pub;
#endif
} api_pub;

struct api_inst {
        api_inst *next, *prev;
        osm_api *api;
        char id[MAX_INSTANCE_ID + 1];
        char workload[MAX_INSTANCE_ID + 1];
        char writer[OSM_STORE_MAX_WRITER];
        char *dir, *path;
        dev_t dir_dev;              /* the directory made for it, to remove that one only */
        ino_t dir_ino;
        osm_server *server;
        unsigned refs;              /* the server, and each store request in flight */
        bool destroyed;
        double tokens;
        uint64_t refill_us;
        uint64_t calls, refused, bytes_stored;
        unsigned n_watches, n_pubs;
        api_watch *watches;
        api_pub *pubs;
        int64_t next_pub_id;
};

struct osm_api {
        osm_daemon *d;
        char *dir;                  /* state_dir/api */
        api_inst *insts;            /* live ones */
        unsigned n_live;
        unsigned refs;              /* instances not yet freed, plus the timer */
        bool stopped;
        uv_timer_t revoke_timer;
        uint64_t revoke_gen;        /* the grants generation the last check saw */
        osm_method *deny;           /* every method of other interfaces: PermissionDenied */
        size_t n_deny;
};

/* api.c: instances and the checks every call goes through */
/* Drop a reference to an instance (the last one frees it). */
void api_inst_unref(api_inst *in);
/* The grants the instance's workload holds now, or NULL if the instance has ended. */
const char *const *api_inst_grants(api_inst *in);
/* Admit a call: the instance still runs, and its token bucket has a token. On refusal
 * the call is finished with an error (a RateLimited one after its delay) and NULL
 * returned; else the current grants. */
const char *const *api_enter(osm_call *call, api_inst *in);
/* Finish call with PermissionDenied {message, grant} (grant may be NULL). */
void api_deny(osm_call *call, const char *grant, const char *fmt, ...) OSM_PRINTF(3, 4);

/* api-store.c: Put, PutBatch, Query, Collections, Watch */
extern const osm_method api_store_methods[];
extern const size_t api_store_n_methods;
/* End the watches of in whose grant went away. */
void api_watches_revoke(api_inst *in, const char *const *grants);

/* api-discovery.c: Services, Publish, Withdraw, Publications */
extern const osm_method api_discovery_methods[];
extern const size_t api_discovery_n_methods;
/* Withdraw the publications of in whose grant went away; api_pubs_free: all of them. */
void api_pubs_revoke(api_inst *in, const char *const *grants);
void api_pubs_free(api_inst *in);
