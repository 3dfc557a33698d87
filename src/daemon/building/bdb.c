/* bdb.c: the building's replicated database: its schema, finding and talking to the
 * leader (with retries across a failover), and reading the whole state for the cache. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "daemon/building/building-internal.h"
#include "osmose/log.h"
#include "osmose/util.h"

const char bld_schema_sql[] =
        "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS members (room TEXT PRIMARY KEY, name TEXT NOT NULL, key TEXT NOT NULL UNIQUE,"
        " node_id INTEGER NOT NULL UNIQUE, address TEXT NOT NULL, joined INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS trust (key TEXT PRIMARY KEY, added_by TEXT NOT NULL, added INTEGER NOT NULL,"
        " comment TEXT);"
        "CREATE TABLE IF NOT EXISTS shares (room TEXT NOT NULL, collection TEXT NOT NULL, since INTEGER NOT NULL,"
        " PRIMARY KEY (room, collection));"
        "CREATE TABLE IF NOT EXISTS status (room TEXT PRIMARY KEY, at INTEGER NOT NULL, summary TEXT NOT NULL);"
        BLD_HOLDERS_SCHEMA_SQL ";";

bool bld_dq_is_busy(const osm_dq *c, int r) {
        /* dqlite answers SQLITE_BUSY (or LOCKED) at once when another member's write
         * transaction is in flight on the leader: retry, as its clients do. */
        return r == -EREMOTEIO && ((c->err_code & 0xff) == 5 || (c->err_code & 0xff) == 6 ||
                                   strstr(c->err_msg, "database is locked"));
}

bool bld_dq_is_quorum_error(const osm_dq *c, int r) {
        if (r == -EAGAIN || r == -ETIMEDOUT || r == -ECONNRESET || r == -ECONNREFUSED || r == -EPIPE)
                return true;
        if (r == -EREMOTEIO) {
                uint64_t e = c->err_code;
                return e == OSM_DQ_ERR_NOT_LEADER || e == OSM_DQ_ERR_LEADERSHIP_LOST || (e & 0xff) == 10 /* IOERR */ ||
                       strstr(c->err_msg, "leader") || strstr(c->err_msg, "quorum");
        }
        return false;
}

#define PROBE_MS 500
#define MAX_PROBES 5

/* LEADER asked of other members (voters first, as the last copy knows them), at most
 * MAX_PROBES of them. 0 with the leader, or -EAGAIN. */
static int ask_members(osm_building *b, int timeout_ms, uint64_t *id, char *addr, size_t size) {
        pthread_mutex_lock(&b->lock);
        json_t *members = json_deep_copy(b->members_copy);
        json_t *roles = json_deep_copy(b->roles_copy);
        pthread_mutex_unlock(&b->lock);
        int probes = 0, rc = -EAGAIN;
        for (int pass = 0; pass < 2 && rc < 0; pass++) {
                size_t i;
                json_t *m;
                json_array_foreach(members, i, m) {
                        if (probes >= MAX_PROBES || rc == 0)
                                break;
                        char ids[32];
                        snprintf(ids, sizeof ids, "%lld", (long long) json_integer_value(json_object_get(m, "node_id")));
                        const char *role = json_string_value(json_object_get(roles, ids));
                        bool voter = role && strcmp(role, "voter") == 0;
                        const char *a = json_string_value(json_object_get(m, "address"));
                        if (voter != (pass == 0) || !a || strcmp(a, b->address) == 0)
                                continue;
                        probes++;
                        int fd;
                        if (osm_bt_connect_node_within(b->bt, a, PROBE_MS, &fd) != 0)
                                continue;
                        osm_dq q;
                        if (osm_dq_init(&q, fd, OSM_MIN(timeout_ms, PROBE_MS * 2)) == 0 &&
                            osm_dq_leader(&q, id, addr, size) == 0 && *id && addr[0])
                                rc = 0;
                        osm_dq_close(&q);
                }
        }
        json_decref(members);
        json_decref(roles);
        return rc;
}

int bld_dq_exec_retry(osm_dq *c, const char *sql, json_t *params) {
        uint64_t dl = osm_now_mono_us() + 5000000;
        for (;;) {
                int r = osm_dq_exec(c, sql, params, NULL, NULL);
                if (r == 0 || !bld_dq_is_busy(c, r) || osm_now_mono_us() >= dl)
                        return r;
                usleep(5000 + randombytes_uniform(20000));
        }
}

int bld_dial_leader(osm_building *b, osm_dq *c, int timeout_ms, uint64_t *leader_id, char *leader_addr,
                    osm_error *err) {
        osm_dq local;
        int fd = osm_dq_connect_abstract(b->bind);
        if (fd < 0)
                return osm_error_set(err, fd, 0, "the local dqlite node does not answer: %s", strerror(-fd));
        int r = osm_dq_init(&local, fd, timeout_ms);
        uint64_t id = 0;
        char addr[OSM_DQ_ADDR_MAX] = "";
        if (r == 0)
                r = osm_dq_leader(&local, &id, addr, sizeof addr);
        if (r < 0) {
                osm_error_set(err, r, 0, "the local dqlite node: %s", r == -EREMOTEIO ? local.err_msg : strerror(-r));
                osm_dq_close(&local);
                return r;
        }
        if (id == 0 || !addr[0]) {
                osm_dq_close(&local);
                /* A spare gets no raft traffic and knows no leader: ask other members. */
                if (ask_members(b, timeout_ms, &id, addr, sizeof addr) < 0)
                        return osm_error_set(err, -EAGAIN, 0, "no quorum: the building has no leader "
                                             "(a majority of its voters is not reachable)");
        }
        if (id == b->node_id) {
                *c = local;   /* we lead: this connection will do */
        } else {
                osm_dq_close(&local);
                int lfd;
                if (osm_bt_connect_node(b->bt, addr, &lfd) != 0)
                        return osm_error_set(err, -ECONNREFUSED, 0, "no quorum: the leader %s cannot be reached", addr);
                r = osm_dq_init(c, lfd, timeout_ms);
                if (r < 0)
                        return osm_error_set(err, r, 0, "the leader %s: %s", addr, strerror(-r));
        }
        r = osm_dq_open(c, BLD_DB_NAME);
        if (r < 0) {
                osm_error_set(err, r == -EREMOTEIO ? -EAGAIN : r, 0, "cannot open the building database: %s",
                              r == -EREMOTEIO ? c->err_msg : strerror(-r));
                osm_dq_close(c);
                return r == -EREMOTEIO ? -EAGAIN : r;
        }
        if (leader_id)
                *leader_id = id;
        if (leader_addr)
                snprintf(leader_addr, OSM_DQ_ADDR_MAX, "%s", addr);
        return 0;
}

osm_dq *bld_leader(osm_building *b, osm_error *err) {
        if (b->leader_ok)
                return &b->leader;
        int timeout = (int) (b->d->cfg.building_latency_us / 1000) * 50;
        if (timeout < 1000)
                timeout = 1000;
        if (bld_dial_leader(b, &b->leader, timeout, &b->leader_id, b->leader_addr, err) < 0)
                return NULL;
        b->leader_ok = true;
        return &b->leader;
}

void bld_leader_drop(osm_building *b) {
        if (b->leader_ok)
                osm_dq_close(&b->leader);
        b->leader_ok = false;
}

/* How long a write keeps trying across a leader change: a few election timeouts. */
static uint64_t write_deadline(osm_building *b) {
        uint64_t us = b->d->cfg.building_latency_us * 15 * 6;
        if (us < 2000000)
                us = 2000000;
        return osm_now_mono_us() + us;
}

static int run_sql(osm_building *b, bld_job *j, const char *sql, json_t *params, json_t **rows) {
        uint64_t dl = write_deadline(b);
        osm_error err = {};
        int r = -EAGAIN;
        bool quorum = false;
        for (int attempt = 0;; attempt++) {
                osm_dq *c = bld_leader(b, &err);
                if (c) {
                        if (rows) {
                                json_t *cols = NULL;
                                r = osm_dq_query(c, sql, params, &cols, rows);
                                json_decref(cols);
                        } else {
                                r = osm_dq_exec(c, sql, params, NULL, &j->changes);
                        }
                        if (r == 0)
                                return 0;
                        bool busy = bld_dq_is_busy(c, r);
                        quorum = bld_dq_is_quorum_error(c, r);
                        osm_error_set(&err, r, 0, "%s", r == -EREMOTEIO ? c->err_msg : strerror(-r));
                        if (busy) {
                                quorum = false;
                                if (osm_now_mono_us() >= dl)
                                        break;
                                usleep(5000 + randombytes_uniform(20000));
                                continue;   /* the connection is fine */
                        }
                        bld_leader_drop(b);
                        if (!quorum)
                                break;
                } else {
                        quorum = true;
                }
                if (osm_now_mono_us() >= dl)
                        break;
                usleep(attempt < 5 ? 20000 : 100000);
        }
        if (quorum) {
                j->error = OSM_E_BUILDING_QUORUM;
                snprintf(j->msg, sizeof j->msg, "no quorum: building state cannot change now (%.255s); local work goes on",
                         err.message);
        } else {
                j->error = OSM_E_INTERNAL_ERROR;
                snprintf(j->msg, sizeof j->msg, "building database: %.255s", err.message);
        }
        return r < 0 ? r : -EIO;
}

int bld_exec(osm_building *b, bld_job *j, const char *sql, json_t *params) {
        return run_sql(b, j, sql, params, NULL);
}

int bld_query(osm_building *b, bld_job *j, const char *sql, json_t *params, json_t **rows) {
        return run_sql(b, j, sql, params, rows);
}

int bld_query_objects(osm_dq *c, const char *sql, json_t *params, json_t **out) {
        json_t *cols = NULL, *rows = NULL;
        int r = osm_dq_query(c, sql, params, &cols, &rows);
        if (r < 0)
                return r;
        json_t *arr = json_array();
        size_t i, k;
        json_t *row;
        json_array_foreach(rows, i, row) {
                json_t *o = json_object();
                for (k = 0; k < json_array_size(cols); k++)
                        json_object_set(o, json_string_value(json_array_get(cols, k)), json_array_get(row, k));
                json_array_append_new(arr, o);
        }
        json_decref(cols);
        json_decref(rows);
        *out = arr;
        return 0;
}

int bld_read_state(osm_building *b, osm_dq *c, json_t **out, osm_error *err) {
        json_t *meta = NULL, *members = NULL, *trust = NULL, *shares = NULL, *status = NULL;
        osm_dq_node *nodes = NULL;
        size_t n_nodes = 0;
        int r;
        if ((r = bld_query_objects(c, "SELECT k, v FROM meta", NULL, &meta)) < 0 ||
            (r = bld_query_objects(c, "SELECT room, name, key, node_id, address, joined FROM members ORDER BY name, room",
                                   NULL, &members)) < 0 ||
            (r = bld_query_objects(c, "SELECT key, added_by, added, comment FROM trust ORDER BY added", NULL,
                                   &trust)) < 0 ||
            (r = bld_query_objects(c, "SELECT room, collection, since FROM shares ORDER BY collection, room", NULL,
                                   &shares)) < 0 ||
            (r = bld_query_objects(c, "SELECT room, at, summary FROM status", NULL, &status)) < 0 ||
            (r = osm_dq_cluster(c, &nodes, &n_nodes)) < 0) {
                osm_error_set(err, r, 0, "reading the building state: %s", r == -EREMOTEIO ? c->err_msg : strerror(-r));
                json_decref(meta);
                json_decref(members);
                json_decref(trust);
                json_decref(shares);
                json_decref(status);
                return r;
        }
        json_t *m = json_object();
        size_t i;
        json_t *row;
        json_array_foreach(meta, i, row)
                json_object_set(m, json_string_value(json_object_get(row, "k")), json_object_get(row, "v"));
        json_decref(meta);
        json_t *roles = json_object();
        for (i = 0; i < n_nodes; i++) {
                char id[32];
                snprintf(id, sizeof id, "%llu", (unsigned long long) nodes[i].id);
                json_object_set_new(roles, id, json_string(osm_dq_role_name(nodes[i].role)));
        }
        free(nodes);
        json_t *st = json_object();
        json_array_foreach(status, i, row) {
                json_t *summary = json_loads(json_string_value(json_object_get(row, "summary")), 0, NULL);
                json_object_set_new(st, json_string_value(json_object_get(row, "room")),
                                    json_pack("{s:O,s:o}", "at", json_object_get(row, "at"),
                                              "summary", summary ? summary : json_object()));
        }
        json_decref(status);
        /* Which room keeps which bundle (share.c); a building made before the table has
         * none until a room records one. */
        json_t *holders = NULL;
        if (bld_query_objects(c, "SELECT bundle, room, size FROM bundle_holders ORDER BY bundle, room", NULL,
                              &holders) < 0)
                holders = json_array();
        *out = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "meta", m, "members", members, "roles", roles, "trust", trust,
                         "shares", shares, "status", st, "holders", holders);
        return *out ? 0 : -ENOMEM;
}
