/* server.h: the Varlink control server: accepts clients on a Unix socket, frames messages,
 * checks peer credentials and dispatches calls to the subsystems' method tables. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "osmose/varlink.h"

typedef struct osm_server osm_server;
typedef struct osm_call osm_call;

/* Who may call a method. The policy lives in one place (server.c: call_allowed()).
 * Callers have one of these roles, decided from their credentials when they connect:
 *   operator  root, the daemon's own user, members of [control] socket-group: everything;
 *   tenant    members of a tenant's group: TENANT and MONITOR methods, and the handler
 *             limits them to what their tenant owns (osm_call_principal());
 *   reader    members of [control] readers: MONITOR methods (status, lists, usage; no data);
 *   anyone    PUBLIC methods only. */
typedef enum osm_access {
        OSM_ACCESS_PUBLIC,   /* anyone who can connect: introspection, status */
        OSM_ACCESS_MONITOR,  /* lists and usage without room data: readers, tenants, operators */
        OSM_ACCESS_TENANT,   /* tenants (within what they own) and operators */
        OSM_ACCESS_READ,     /* reads room data: operators */
        OSM_ACCESS_WRITE,    /* changes state: operators */
} osm_access;

#define OSM_TENANT_NAME_MAX 32

/* Who is calling (borrowed from the call). tenant is "" unless the caller acts for a
 * tenant; an operator has operator=true and tenant "". */
typedef struct osm_principal {
        bool operator;
        bool reader;
        char tenant[OSM_TENANT_NAME_MAX + 1];
} osm_principal;

/* The tenants subsystem's lookup: the tenant whose group is among gids (the caller's
 * primary and supplementary groups), written into out; 0, or -ENOENT if none, or
 * -EADDRINUSE if the caller is in the groups of several tenants (then it acts for none). */
typedef int (*osm_tenant_resolver)(void *userdata, const gid_t *gids, size_t n_gids,
                                   char out[OSM_TENANT_NAME_MAX + 1]);

/* A method handler. params has been checked against the method's .varlink input
 * (top-level field names, JSON types, enums). The handler must eventually finish the
 * call with osm_call_reply()/osm_call_error() (now or later, from the loop), possibly
 * after replies with continues=true when osm_call_more(). params is borrowed. */
typedef void (*osm_method_fn)(osm_call *call, json_t *params, void *userdata);

typedef struct osm_method {
        const char *name;          /* qualified, must exist in the .varlink files */
        osm_method_fn fn;
        osm_access access;
        bool read_only;            /* changes nothing: its calls leave osm_server_epoch() */
} osm_method;

typedef struct osm_server_limits {
        unsigned max_connections;      /* beyond: new clients get io.osmose.Busy and are closed */
        size_t max_message;            /* bytes per message */
        size_t max_buffered;           /* unsent reply bytes per client before it is dropped */
        uint64_t idle_timeout_ms;      /* a client silent this long between calls is dropped */
        uint64_t partial_timeout_ms;   /* a half-sent message stalled this long: dropped */
} osm_server_limits;

/* gid_allowed value for a socket that is itself the credential (a workload's private API
 * socket): every peer gets full access, and handlers check what the socket stands for. */
#define OSM_SERVER_ANY_PEER ((gid_t) -2)

/* Create a server on loop listening on listen_fd (already bound and listening; the
 * server owns it). gid_allowed is the group whose members get full access (-1: none;
 * OSM_SERVER_ANY_PEER: everyone who can connect). */
int osm_server_new(uv_loop_t *loop, int listen_fd, gid_t gid_allowed,
                   const osm_server_limits *limits, osm_server **out);
/* Register methods; the table must outlive the server. Fails with -EEXIST on duplicates
 * and -ENOENT if a method is not defined in any .varlink interface. */
int osm_server_add_methods(osm_server *s, const osm_method *table, size_t n, void *userdata);
/* Stop accepting; in-flight calls may still finish. */
void osm_server_stop_accepting(osm_server *s);
/* Calls in flight that will finish by themselves (for graceful shutdown): calls with a
 * cancel callback — streams, long polls — are not counted; shutdown cancels them. */
unsigned osm_server_in_flight(osm_server *s);
unsigned osm_server_n_clients(osm_server *s);
/* Changes at every turn of the loop and whenever a call that may change state (of a
 * method not marked read_only) is dispatched or finishes. A reply computed from the
 * daemon's state may be reused while it stays the same: every call answered so was
 * read in the same turn, so the answer is one the state had while the call was pending,
 * and after anything a caller did itself. */
uint64_t osm_server_epoch(const osm_server *s);
void osm_server_set_limits(osm_server *s, const osm_server_limits *limits);
/* Roles beyond the operator group: reader_gid (-1: none) and the tenant lookup (NULL:
 * none). Applies to clients that connect from now on. */
void osm_server_set_roles(osm_server *s, gid_t reader_gid, osm_tenant_resolver fn, void *userdata);
/* Close every client (streams get no final reply) and free the server. close_cb runs
 * when all handles are closed. */
void osm_server_free(osm_server *s, void (*close_cb)(void *), void *userdata);

/* --- for handlers --- */
bool osm_call_more(const osm_call *c);
const struct ucred *osm_call_cred(const osm_call *c);
const osm_principal *osm_call_principal(const osm_call *c);
/* The tenant the caller acts for, or NULL for an operator (or a reader). */
const char *osm_call_tenant(const osm_call *c);
const char *osm_call_method(const osm_call *c);
/* Received fds: the call owns them until taken. take returns -1 if idx is out of range. */
size_t osm_call_n_fds(const osm_call *c);
int osm_call_take_fd(osm_call *c, size_t idx);

/* Reply. params is stolen (NULL means {}). With continues=false the call is finished
 * and freed, whatever the return value; its cancel callback never runs. With
 * continues=true (only valid if osm_call_more()) the call stays open; if that reply
 * fails (-ECONNRESET: the client has gone or is being dropped), the call stays valid
 * and its cancel callback runs soon from the loop — stop streaming and release your
 * state there, not at the failed reply. Replies never close or free anything
 * re-entrantly. fds (may be NULL) are sent with the reply and stay owned by the caller. */
int osm_call_reply(osm_call *c, json_t *params, bool continues);
int osm_call_reply_fds(osm_call *c, json_t *params, bool continues, const int *fds, size_t n_fds);
/* Reply with parameters serialized already (one JSON object of len bytes; not consumed). */
int osm_call_reply_text(osm_call *c, const char *params, size_t len, bool continues);
/* Finish with an error. params stolen (may be NULL). */
int osm_call_error(osm_call *c, const char *error, json_t *params);
/* Finish with an error made by a generated constructor (osmose/protocol.h), which takes
 * exactly the fields the .varlink file declares: osm_call_fail(c, osm_error_busy("…")). */
int osm_call_fail(osm_call *c, osm_vl_error e);
/* Shorthands: InvalidParameter {parameter}; an error with {"message": fmt…}.
 * osm_call_errorf takes the generated OSM_E_… constant itself, and compiles only for an
 * error whose one required field is message (it pastes _M: protocol.h defines OSM_E_X_M
 * for those alone), so osm_call_errorf(c, OSM_E_VARLINK_INVALID_PARAMETER, …) cannot be
 * written. osm_call_errorf_name is the same for a name known only at run time. */
int osm_call_invalid_param(osm_call *c, const char *parameter);
int osm_call_errorf_name(osm_call *c, const char *error, const char *fmt, ...) OSM_PRINTF(3, 4);
#define osm_call_errorf(c, error, ...) osm_call_errorf_name((c), error##_M, __VA_ARGS__)

/* A handler that finishes later registers a cancel callback: it runs (once) if the
 * client disconnects before the call is finished; after it the call object is freed
 * by the server and must not be used. */
void osm_call_set_cancel(osm_call *c, void (*cancel)(osm_call *c, void *userdata), void *userdata);
/* Is the client still there? */
bool osm_call_alive(const osm_call *c);
