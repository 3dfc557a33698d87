/* building-internal.h: what the building's files share: the subsystem's state, its worker
 * thread (every dqlite call runs there or in a transport thread, never on the loop), the
 * leader connection, the cached copy of the replicated state, and join tokens. */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/building/building.h"
#include "daemon/building/dq-client.h"
#include "daemon/building/node.h"
#include "daemon/building/token.h"
#include "daemon/building/transport.h"
#include "daemon/daemon.h"


#define BLD_DB_NAME "osmose-building"
#define BLD_MAX_TOKENS 64
#define BLD_MAX_MEMBERS OSM_BT_MAX_MEMBERS

typedef struct osm_building osm_building;
typedef struct bld_job bld_job;

/* A job for the worker: work() runs there (may block on dqlite), done() on the loop. */
struct bld_job {
        bld_job *next;
        void (*work)(osm_building *b, bld_job *j);
        void (*done)(osm_building *b, bld_job *j);
        void *call;              /* the osm_call waiting, if any */
        json_t *in, *out;        /* owned by the job */
        const char *error;       /* a Varlink error name on failure */
        char msg[512];           /* its message (for InvalidParameter: for the log only) */
        const char *bad_param;   /* error is InvalidParameter: the parameter it names */
        uint64_t changes;        /* rows changed by the last bld_exec */
        json_t *state;           /* the whole state read back after a write (bld_read_back) */
        void *userdata;
        osm_building_cb cb;      /* for osm_building_exec/query */
};

typedef struct bld_token {
        uint8_t secret_hash[32];   /* BLAKE2b of the secret: the secret itself is not kept */
        int64_t expires_us;
        bool used;
} bld_token;

typedef struct bld_counters {
        uint64_t joins, joins_refused_secret, joins_refused_expired, joins_refused_used,
                 joins_refused_member, writes, writes_failed_quorum, queries_served, queries_refused,
                 status_pushes;   /* this room's summaries committed to the building state */
} bld_counters;

/* Bundles sent to members and taken from them (share.c). */
typedef struct bld_share_counters {
        uint64_t served, bytes_served, fetched, bytes_fetched, refused, busy, failed;
} bld_share_counters;

#define BLD_SHARE_MAX_UPLOADS 4   /* bundles sent at once, one per member */

struct osm_building {
        osm_daemon *d;
        char dir[4200], state_path[4300], cache_path[4300], node_dir[4300];
        char bind[108];

        /* the local state file (state.json); guarded by lock after activation */
        bool active;
        char building_id[OSM_BUILDING_ID_LEN + 1];
        char name[64];
        uint64_t node_id;
        char address[OSM_DQ_ADDR_MAX];

        osm_bnode *node;
        osm_bt *bt;

        pthread_mutex_t lock;      /* queue, tokens, counters, cache_copy */
        pthread_cond_t cond;
        unsigned closing_handles;   /* building_stop: handles still closing; b is freed after the last */
        pthread_t worker;
        bool worker_running, worker_stop;
        bld_job *queue, *queue_tail, *finished;
        uv_async_t async;
        bool busy_refresh;
        bool leaving;              /* a Leave or a removal is under way */

        /* the worker's leader connection */
        osm_dq leader;
        bool leader_ok;
        uint64_t leader_id;
        char leader_addr[OSM_DQ_ADDR_MAX];

        /* the cached copy of the replicated state (loop) */
        json_t *cache;
        bool stale;
        uint64_t stale_since_us;   /* monotonic, when the copy went stale */
        char last_error[512];
        int64_t fetched_us;
        /* a snapshot of members' keys and addresses for transport threads (lock) */
        json_t *members_copy;
        json_t *shares_copy;
        json_t *roles_copy;        /* node id -> role, for finding a leader */
        json_t *trust_copy;        /* building-trusted keys, for the install thread */
        json_t *holders_copy;      /* which room keeps which bundle, for fetching threads (share.c) */

        /* store queries run on the loop for transport threads (query.c) */
        uv_async_t loop_async;
        pthread_cond_t loop_cond;
        struct loop_query *loop_queries;

        bld_token tokens[BLD_MAX_TOKENS];
        bld_counters counters;
        bld_share_counters share;   /* (lock) */
        /* the members a bundle is being sent to now, one transfer each (lock) */
        uint8_t uploads[BLD_SHARE_MAX_UPLOADS][OSM_PUBKEY_BYTES];
        unsigned n_uploads;

        uv_timer_t refresh_timer, status_timer;
        bool timers_on;
        /* the summary last committed to the building state, and when (loop) */
        char last_summary[2048];
        int64_t last_summary_us;
        bool push_busy;

        /* the prober: pings the other members over the transport (probe_lock) */
        pthread_mutex_t probe_lock;
        pthread_cond_t probe_cond;
        pthread_t prober;
        bool prober_running, prober_stop;
        unsigned probe_rounds;     /* full rounds since activation; no rebalance before one */
};

/* building.c */
void bld_submit(osm_building *b, bld_job *j);
bld_job *bld_job_new(void (*work)(osm_building *, bld_job *), void (*done)(osm_building *, bld_job *),
                     void *call, json_t *in);
void bld_job_free(bld_job *j);
int bld_activate(osm_building *b, osm_error *err);
/* Start this room's dqlite node (b->node; the transport is up), first rewriting its raft
 * configuration to the n_recover nodes given if n_recover > 0 (osm_bnode_opts). */
int bld_node_start(osm_building *b, const uint64_t *recover_ids, const char *const *recover_addresses, int n_recover,
                   osm_error *err);
/* Stop the node and the transport (worker or loop); forget removes the building's files. */
void bld_deactivate(osm_building *b, bool forget);
/* On the loop, after a job activated or deactivated the building. */
void bld_activated(osm_building *b);
void bld_deactivated(osm_building *b);
int bld_save_state(osm_building *b);
void bld_request_refresh(osm_building *b);
/* The whole replicated state as the leader has it now, with who leads (worker). NULL
 * without quorum (msg, if given, says why). */
json_t *bld_fetch_state(osm_building *b, char *msg, size_t size);
/* Read your writes: after a write job's statements succeeded, read the state back in the
 * worker (j->state); on the loop, before the job answers, bld_written makes it the cache
 * (or asks for a refresh if it could not be read), so a read in this room right after
 * sees the write, and so does a member asking this room (its shares, its trust). */
void bld_read_back(osm_building *b, bld_job *j);
void bld_written(osm_building *b, bld_job *j);
const char *bld_role_of(osm_building *b, uint64_t node_id);
/* Whether member (a row of the members table) is reachable from this room: heard from over
 * the member transport within three status intervals. last_seen: when it was last heard
 * from, or its last summary push, whichever is later (wall clock, us). */
bool bld_member_reachable(osm_building *b, json_t *state, json_t *member, int64_t now, int64_t *last_seen);

/* bdb.c: the replicated database, from the worker or a transport thread */
/* Connect c to the leader with the database open. 0, or -EAGAIN (no leader: no quorum)
 * or -errno with err filled. */
int bld_dial_leader(osm_building *b, osm_dq *c, int timeout_ms, uint64_t *leader_id, char *leader_addr,
                    osm_error *err);
/* The worker's cached leader connection, redialled as needed; NULL with err filled. */
osm_dq *bld_leader(osm_building *b, osm_error *err);
void bld_leader_drop(osm_building *b);
/* Exec/query on the leader with retries until deadline; on failure j->error/j->msg set
 * (Quorum for no leader). */
int bld_exec(osm_building *b, bld_job *j, const char *sql, json_t *params);
int bld_query(osm_building *b, bld_job *j, const char *sql, json_t *params, json_t **rows);
extern const char bld_schema_sql[];
/* The rows of a query as objects keyed by their column names. */
int bld_query_objects(osm_dq *c, const char *sql, json_t *params, json_t **out);
/* Read the whole state into a new cache object (worker). */
int bld_read_state(osm_building *b, osm_dq *c, json_t **out, osm_error *err);
bool bld_dq_is_quorum_error(const osm_dq *c, int r);
bool bld_dq_is_busy(const osm_dq *c, int r);
/* osm_dq_exec retried while the leader answers busy (up to a few seconds). */
int bld_dq_exec_retry(osm_dq *c, const char *sql, json_t *params);

/* roles.c */
typedef struct bld_role_node {
        uint64_t id;
        int role;
        bool online;
        bool leader;   /* never demoted: the plan runs on it */
} bld_role_node;
typedef struct bld_role_change {
        uint64_t id;
        int role;
} bld_role_change;
/* What the leader should change, in order (promotions first). Returns the number. */
size_t bld_roles_plan(const bld_role_node *nodes, size_t n, bld_role_change *out, size_t max);

/* join.c */
/* A new join token in *token (free it wiped); -EBUSY with err filled while too many are
 * outstanding, -ENOMEM. */
int bld_invite(osm_building *b, int64_t expires_us, char **token, osm_error *err);
void bld_join_work(osm_building *b, bld_job *j);
void bld_handle_join(osm_building *b, osm_btls_conn *c, json_t *req);
bool bld_joins_open(osm_building *b);

/* query.c */
/* Answer a member's request with {"error":..., "message":...}. */
void bld_answer_error(osm_btls_conn *c, const char *error, const char *msg);
void bld_handle_query(osm_building *b, osm_btls_conn *c, json_t *req);
void bld_query_work(osm_building *b, bld_job *j);
void bld_query_init(osm_building *b);
/* Close the loop's query handle (inside b); cb runs when it has closed. */
void bld_query_close(osm_building *b, uv_close_cb cb);

/* share.c: bundles by hash between members */
void bld_handle_bundle(osm_building *b, osm_btls_conn *c, json_t *req);
/* What a member answered to {"op":"bundle"} (its first line, which a lying member writes
 * as it likes): SENDS, with *size (0 < size <= max, and == want unless want is 0), or why
 * not, in why (always terminated). */
typedef enum bld_answer { BLD_ANSWER_SENDS, BLD_ANSWER_BUSY, BLD_ANSWER_FAILED, BLD_ANSWER_REFUSED } bld_answer;
bld_answer bld_share_parse_answer(const char *line, uint64_t want, uint64_t max, uint64_t *size, char *why,
                                  size_t why_size);
/* After activation (the transport is up) / before the transport stops: threads from
 * outside the building (osm_building_fetch_bundle, _holds) may use it between the two;
 * stop cuts their transfers short and waits for them. */
void bld_share_start(osm_building *b);
void bld_share_stop(osm_building *b);
/* The counters, into a status object. */
void bld_share_status(osm_building *b, json_t *counters);
/* Which room keeps which bundle: in bld_schema_sql, and made before a row is written for
 * buildings made before it. */
#define BLD_HOLDERS_SCHEMA_SQL \
        "CREATE TABLE IF NOT EXISTS bundle_holders (bundle TEXT NOT NULL, room TEXT NOT NULL, size INTEGER NOT NULL," \
        " time INTEGER NOT NULL, PRIMARY KEY (bundle, room))"

/* iface-building.c */
extern const osm_method bld_methods[];
extern const size_t bld_n_methods;
