/* iface-building.c: the Varlink interface io.osmose.Building. Reads are answered on the
 * loop from the cached copy of the replicated state; changes go to the worker. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/building/building-internal.h"
#include "osmose/log.h"
#include "osmose/util.h"
#include "osmose/varlink.h"

#define MAX_INVITE_US (7ll * 24 * 3600 * 1000000)
#define DEFAULT_INVITE_US (3600ll * 1000000)

static bool need_active(osm_building *b, osm_call *call) {
        if (b->active && !b->leaving)
                return true;
        osm_call_errorf(call, OSM_E_BUILDING_NOT_IN_BUILDING, "this room is not in a building (building create, or building join TOKEN)");
        return false;
}

/* Finish a job's call: its error, or its output (or {}). */
static void reply_done(osm_building *b, bld_job *j) {
        if (!j->call)
                return;
        if (j->bad_param) {
                osm_call_invalid_param(j->call, j->bad_param);
        } else if (j->error) {
                json_t *p = json_is_object(j->out) ? json_incref(j->out) : json_object();
                json_object_set_new(p, "message", json_string(j->msg));
                osm_call_error(j->call, j->error, p);
        } else {
                osm_call_reply(j->call, j->out ? json_incref(j->out) : NULL, false);
        }
}

/* A write of building state from a call: run sql with params; refuse at once without
 * quorum (the last refresh found no leader), else try across a failover. */
static void write_work(osm_building *b, bld_job *j) {
        const char *sql = json_string_value(json_object_get(j->in, "sql"));
        pthread_mutex_lock(&b->lock);
        b->counters.writes++;
        pthread_mutex_unlock(&b->lock);
        if (bld_exec(b, j, sql, json_object_get(j->in, "params")) == 0) {
                bld_read_back(b, j);
        } else if (strcmp(j->error, OSM_E_BUILDING_QUORUM) == 0) {
                pthread_mutex_lock(&b->lock);
                b->counters.writes_failed_quorum++;
                pthread_mutex_unlock(&b->lock);
        }
}

static void write_done(osm_building *b, bld_job *j) {
        const char *none = json_string_value(json_object_get(j->in, "if_none"));
        if (!j->error && none && j->changes == 0) {
                j->error = OSM_E_NOT_FOUND;
                snprintf(j->msg, sizeof j->msg, "%s", none);
        }
        bld_written(b, j);
        reply_done(b, j);
}

/* if_none: the error message when the statement changes no row (NotFound), or NULL. */
static void submit_write_or(osm_building *b, osm_call *call, const char *sql, json_t *params, const char *if_none) {
        /* Without quorum for longer than an election or two, refuse at once; right after a
         * leader died, try: a new one is being elected and the write waits for it. */
        uint64_t grace = OSM_MAX(b->d->cfg.building_latency_us * 15 * 4, 1000000);
        if (b->stale && b->last_error[0] && strstr(b->last_error, "quorum") &&
            osm_now_mono_us() - b->stale_since_us > grace) {
                pthread_mutex_lock(&b->lock);
                b->counters.writes++;
                b->counters.writes_failed_quorum++;
                pthread_mutex_unlock(&b->lock);
                json_decref(params);
                osm_call_errorf(call, OSM_E_BUILDING_QUORUM, "%s; building state cannot change now, local work goes on",
                                b->last_error);
                return;
        }
        bld_job *j = bld_job_new(write_work, write_done, call,
                                 json_pack("{s:s,s:o,s:s?}", "sql", sql, "params", params, "if_none", if_none));
        if (!j) {
                osm_call_fail(call, osm_error_internal_error("out of memory"));
                return;
        }
        bld_submit(b, j);
}

static void submit_write(osm_building *b, osm_call *call, const char *sql, json_t *params) {
        submit_write_or(b, call, sql, params, NULL);
}

/* ---------- Create ---------- */

/* The first non-loopback IPv4 address (else IPv6) of this machine, for HOST. */
static int auto_host(char *out, size_t size) {
        struct ifaddrs *ifa = NULL;
        if (getifaddrs(&ifa) < 0)
                return -errno;
        out[0] = 0;
        for (int want = AF_INET; want && !out[0]; want = want == AF_INET ? AF_INET6 : 0)
                for (struct ifaddrs *i = ifa; i && !out[0]; i = i->ifa_next) {
                        if (!i->ifa_addr || i->ifa_addr->sa_family != want || (i->ifa_flags & IFF_LOOPBACK) ||
                            !(i->ifa_flags & IFF_UP))
                                continue;
                        char h[INET6_ADDRSTRLEN];
                        if (want == AF_INET) {
                                inet_ntop(AF_INET, &((struct sockaddr_in *) i->ifa_addr)->sin_addr, h, sizeof h);
                                snprintf(out, size, "%s", h);
                        } else {
                                struct in6_addr *a = &((struct sockaddr_in6 *) i->ifa_addr)->sin6_addr;
                                if (IN6_IS_ADDR_LINKLOCAL(a))
                                        continue;
                                inet_ntop(AF_INET6, a, h, sizeof h);
                                snprintf(out, size, "[%s]", h);
                        }
                }
        freeifaddrs(ifa);
        return out[0] ? 0 : -EADDRNOTAVAIL;
}

/* HOST or HOST:PORT (or [v6]:PORT) → HOST:PORT with our port as the default. */
static int member_address(osm_building *b, const char *given, char *out, size_t size) {
        unsigned port = (unsigned) b->d->cfg.building_port;
        char host[256];
        const char *h = given && *given ? given : b->d->cfg.building_address;
        if (!h || !*h) {
                if (auto_host(host, sizeof host) < 0)
                        return -EADDRNOTAVAIL;
                h = host;
        }
        for (const char *p = h; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == '@' || *p == '\'' || *p == '"')
                        return -EINVAL;
        const char *last = strrchr(h, ':');
        bool has_port = last && (h[0] == '[' ? last > strchr(h, ']') : strchr(h, ':') == last);
        if (strchr(h, ':') && !has_port && h[0] != '[')
                snprintf(out, size, "[%s]:%u", h, port);   /* a bare IPv6 address */
        else if (has_port)
                snprintf(out, size, "%s", h);
        else
                snprintf(out, size, "%s:%u", h, port);
        return strlen(out) < size - 1 ? 0 : -ENAMETOOLONG;
}

static void create_work(osm_building *b, bld_job *j) {
        osm_error err = {};
        if (bld_save_state(b) < 0 || bld_activate(b, &err) < 0) {
                j->error = OSM_E_NOT_AVAILABLE;
                snprintf(j->msg, sizeof j->msg, "cannot start the building: %.255s",
                         osm_error_message(&err, "cannot write its state"));
                bld_deactivate(b, true);
                return;
        }
        /* A new cluster of one elects itself at once; wait for it. */
        osm_dq c;
        int r = -EAGAIN;
        for (int i = 0; i < 100 && r < 0; i++) {
                r = bld_dial_leader(b, &c, 5000, NULL, NULL, &err);
                if (r < 0)
                        usleep(50000);
        }
        if (r == 0) {
                char pk[OSM_PUBKEY_B64];
                osm_pubkey_encode(b->d->identity.pk, pk);
                int64_t now = osm_now_real_us();
                json_t *meta = json_pack("[s,s,I]", b->building_id, b->name, (json_int_t) now);
                json_t *mem = json_pack("[s,s,s,I,s,I]", b->d->space_id, b->d->cfg.name, pk, (json_int_t) b->node_id,
                                        b->address, (json_int_t) now);
                r = osm_dq_exec(&c, bld_schema_sql, NULL, NULL, NULL);
                if (r == 0)
                        r = osm_dq_exec(&c, "INSERT INTO meta (k, v) VALUES ('building', ?1), ('name', ?2), ('created', ?3)",
                                        meta, NULL, NULL);
                if (r == 0)
                        r = osm_dq_exec(&c, "INSERT INTO members (room, name, key, node_id, address, joined) "
                                            "VALUES (?, ?, ?, ?, ?, ?)", mem, NULL, NULL);
                if (r < 0)
                        osm_error_set(&err, r, 0, "%s", r == -EREMOTEIO ? c.err_msg : strerror(-r));
                json_decref(meta);
                json_decref(mem);
                osm_dq_close(&c);
        }
        if (r < 0) {
                j->error = OSM_E_INTERNAL_ERROR;
                snprintf(j->msg, sizeof j->msg, "cannot set up the building's state: %.255s", err.message);
                bld_deactivate(b, true);
                return;
        }
        j->out = json_pack("{s:s,s:s,s:s}", "building", b->building_id, "name", b->name, "address", b->address);
}

static void activate_done(osm_building *b, bld_job *j) {
        b->leaving = false;   /* reused as "a Create or Join is under way" */
        if (!j->error) {
                bld_activated(b);
                bld_request_refresh(b);
        } else {
                b->building_id[0] = 0;
        }
        reply_done(b, j);
}

static bool refuse_if_member(osm_building *b, osm_call *call) {
        if (!b->active && !b->leaving && !b->building_id[0])
                return false;
        osm_call_fail(call, osm_error_building_already_in_building(b->building_id, b->leaving ?
                "a building change is under way" : "this room is in a building already (building leave first)"));
        return true;
}

static void m_create(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (refuse_if_member(b, call))
                return;
        const char *name = json_string_value(json_object_get(p, "name"));
        const char *addr = json_string_value(json_object_get(p, "address"));
        if (name && (strlen(name) < 1 || strlen(name) >= sizeof b->name)) {
                osm_call_invalid_param(call, "name");   /* 1 to 63 bytes */
                return;
        }
        char address[OSM_DQ_ADDR_MAX];
        int r = member_address(b, addr, address, sizeof address);
        if (r < 0) {
                /* no address to reach this room at (give one), or not HOST or HOST:PORT */
                osm_call_invalid_param(call, "address");
                return;
        }
        uint8_t id[16];
        randombytes_buf(id, sizeof id);
        for (size_t i = 0; i < sizeof id; i++)
                snprintf(b->building_id + 2 * i, 3, "%02x", id[i]);
        snprintf(b->name, sizeof b->name, "%s", name ? name : b->d->cfg.name);
        snprintf(b->address, sizeof b->address, "%s", address);
        b->node_id = 1;   /* dqlite bootstraps a new cluster from node 1 */
        bld_job *j = bld_job_new(create_work, activate_done, call, NULL);
        if (!j) {
                osm_call_fail(call, osm_error_internal_error("out of memory"));
                return;
        }
        b->leaving = true;
        bld_submit(b, j);
}

/* ---------- Invite, Join ---------- */

static void m_invite(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        json_t *e = json_object_get(p, "expires");
        json_int_t us = e ? json_integer_value(e) : DEFAULT_INVITE_US;
        if (us < 1000000 || us > MAX_INVITE_US) {
                osm_call_invalid_param(call, "expires");   /* between 1 s and 7 days */
                return;
        }
        char *token = NULL;
        osm_error err = {};
        int r = bld_invite(b, us, &token, &err);
        if (r < 0) {
                osm_call_errorf(call, r == -EBUSY ? OSM_E_BUSY : OSM_E_INTERNAL_ERROR, "%s",
                                osm_error_message(&err, strerror(-r)));
                return;
        }
        log_info("building: invitation made, valid %lld s", (long long) (us / 1000000));
        osm_call_reply(call, osm_reply_building_invite(token, (int64_t) (osm_now_real_us() + us)), false);
        sodium_memzero(token, strlen(token));
        free(token);
}

static void m_join(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (refuse_if_member(b, call))
                return;
        osm_token t;
        if (osm_token_parse(json_string_value(json_object_get(p, "token")), &t, NULL) < 0) {
                osm_call_invalid_param(call, "token");   /* … */
                return;
        }
        osm_token_wipe(&t);
        bld_job *j = bld_job_new(bld_join_work, activate_done, call, json_deep_copy(p));
        if (!j) {
                osm_call_fail(call, osm_error_internal_error("out of memory"));
                return;
        }
        b->leaving = true;
        bld_submit(b, j);
}

/* ---------- Status ---------- */

static json_t *member_entry(osm_building *b, json_t *m, uint64_t leader, int64_t now, bool *reachable) {
        const char *room = json_string_value(json_object_get(m, "room"));
        uint64_t node = (uint64_t) json_integer_value(json_object_get(m, "node_id"));
        json_t *st = json_object_get(json_object_get(b->cache, "status"), room ? room : "");
        json_t *sum = json_object_get(st, "summary");
        int64_t at = 0;
        *reachable = bld_member_reachable(b, b->cache, m, now, &at);
        json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:b,s:b,s:I,s:I,s:s}", "room", room ? room : "",
                              "name", json_string_value(json_object_get(m, "name")) ?: "",
                              "key", json_string_value(json_object_get(m, "key")) ?: "",
                              "address", json_string_value(json_object_get(m, "address")) ?: "",
                              "node_id", (json_int_t) node, "role", bld_role_of(b, node), "leader", node == leader,
                              "reachable", *reachable, "last_seen", (json_int_t) at,
                              "joined", json_integer_value(json_object_get(m, "joined")),
                              "health", json_string_value(json_object_get(sum, "health")) ?: "unknown");
        if (json_is_object(json_object_get(sum, "subsystems")))
                json_object_set(e, "subsystems", json_object_get(sum, "subsystems"));
        if (json_is_integer(json_object_get(sum, "workloads")))
                json_object_set(e, "workloads", json_object_get(sum, "workloads"));
        if (json_is_integer(json_object_get(sum, "services")))
                json_object_set(e, "services", json_object_get(sum, "services"));
        if (json_is_string(json_object_get(sum, "version")))
                json_object_set(e, "version", json_object_get(sum, "version"));
        return e;
}

static void m_status(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        pthread_mutex_lock(&b->lock);
        bld_counters k = b->counters;
        pthread_mutex_unlock(&b->lock);
        osm_bt_counters t = b->bt ? osm_bt_get_counters(b->bt) : (osm_bt_counters) { 0 };
        json_t *counters = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                                     "joins", (json_int_t) k.joins, "joins_refused_secret", (json_int_t) k.joins_refused_secret,
                                     "joins_refused_expired", (json_int_t) k.joins_refused_expired,
                                     "joins_refused_used", (json_int_t) k.joins_refused_used,
                                     "joins_refused_member", (json_int_t) k.joins_refused_member,
                                     "writes", (json_int_t) k.writes, "writes_failed_quorum", (json_int_t) k.writes_failed_quorum,
                                     "queries_served", (json_int_t) k.queries_served,
                                     "status_pushes", (json_int_t) k.status_pushes,
                                     "connections_accepted", (json_int_t) t.accepted,
                                     "connections_refused_handshake", (json_int_t) t.refused_handshake,
                                     "connections_refused_non_member", (json_int_t) t.refused_non_member,
                                     "connections_proxied", (json_int_t) t.proxied, "dials_failed", (json_int_t) t.dial_failed);
        bld_share_status(b, counters);
        if (!b->active) {
                osm_call_reply(call, json_pack("{s:b,s:s,s:b,s:I,s:[],s:i,s:i,s:o,s:s?}", "in_building", 0, "room",
                                               b->d->space_id, "stale", 0, "fetched", (json_int_t) 0, "members",
                                               "reachable", 0, "voters", 0, "counters", counters, "error",
                                               b->last_error[0] ? b->last_error : NULL), false);
                return;
        }
        uint64_t leader = (uint64_t) json_integer_value(json_object_get(json_object_get(b->cache, "leader"), "node_id"));
        if (b->stale)
                leader = 0;   /* a stale copy cannot say who leads now */
        json_t *list = json_array();
        const char *leader_name = NULL;
        size_t i, up = 0, voters = 0;
        json_t *m;
        int64_t now = osm_now_real_us();
        json_array_foreach(json_object_get(b->cache, "members"), i, m) {
                bool r;
                json_t *e = member_entry(b, m, leader, now, &r);
                up += r;
                voters += strcmp(json_string_value(json_object_get(e, "role")), "voter") == 0;
                if (json_is_true(json_object_get(e, "leader")))
                        leader_name = json_string_value(json_object_get(m, "name"));
                json_array_append_new(list, e);
        }
        osm_call_reply(call, json_pack("{s:b,s:s,s:s,s:s,s:s,s:s?,s:b,s:I,s:s?,s:o,s:I,s:I,s:o}", "in_building", 1,
                                       "building", b->building_id, "name", b->name, "room", b->d->space_id,
                                       "role", bld_role_of(b, b->node_id), "leader", leader_name, "stale", b->stale,
                                       "fetched", (json_int_t) b->fetched_us, "error",
                                       b->stale && b->last_error[0] ? b->last_error : NULL, "members", list,
                                       "reachable", (json_int_t) up, "voters", (json_int_t) voters,
                                       "counters", counters), false);
}

/* ---------- Leave, Remove ---------- */

/* dqlite binds parameters to the first statement of an EXEC_SQL only: one at a time. */
static const char *const forget_sql[] = {
        "DELETE FROM shares WHERE room = ?", "DELETE FROM status WHERE room = ?", "DELETE FROM members WHERE room = ?",
};

static int forget_room(osm_dq *c, json_t *p) {
        int r = 0;
        for (size_t i = 0; i < OSM_ARRAY_SIZE(forget_sql) && r == 0; i++)
                r = bld_dq_exec_retry(c, forget_sql[i], p);
        return r;
}

/* One attempt at leaving: hand leadership on if we lead, forget our rows, leave the
 * cluster. 0, or -errno with err filled. */
static int leave_once(osm_building *b, bool *quorum, osm_error *err) {
        osm_dq *c = bld_leader(b, err);
        *quorum = true;
        if (!c)
                return -EAGAIN;
        osm_dq_node *nodes = NULL;
        size_t n = 0;
        int r = osm_dq_cluster(c, &nodes, &n);
        if (r == 0 && b->leader_id == b->node_id && n > 1) {
                for (size_t i = 0; i < n; i++)
                        if (nodes[i].id != b->node_id && nodes[i].role == OSM_DQ_VOTER) {
                                osm_dq_transfer(c, nodes[i].id);
                                break;
                        }
                free(nodes);
                bld_leader_drop(b);
                return -EAGAIN;   /* again, through the new leader */
        }
        free(nodes);
        json_t *p = json_pack("[s]", b->d->space_id);
        if (r == 0)
                r = forget_room(c, p);
        json_decref(p);
        if (r == 0 && n > 1)
                r = osm_dq_remove(c, b->node_id);
        if (r < 0) {
                *quorum = bld_dq_is_quorum_error(c, r) || strstr(c->err_msg, "in progress");
                osm_error_set(err, r, 0, "%s", r == -EREMOTEIO ? c->err_msg : strerror(-r));
                bld_leader_drop(b);
        }
        return r;
}

static void leave_work(osm_building *b, bld_job *j) {
        osm_error err = {};
        bool quorum = true;
        int r = -EAGAIN;
        /* Retried across a leader change or a membership change in flight, for a while. */
        uint64_t dl = osm_now_mono_us() + OSM_MAX(b->d->cfg.building_latency_us * 15 * 10, 5000000);
        while ((r = leave_once(b, &quorum, &err)) < 0 && quorum && osm_now_mono_us() < dl)
                usleep(200000);
        if (r < 0) {
                j->error = quorum ? OSM_E_BUILDING_QUORUM : OSM_E_INTERNAL_ERROR;
                snprintf(j->msg, sizeof j->msg, "cannot leave now: %.255s%s", err.message,
                         quorum ? " (another room can 'building remove' this one once quorum is back)" : "");
                return;
        }
        bld_leader_drop(b);
        log_info("building: left \"%s\"", b->name);
        bld_deactivate(b, true);
}

static void leave_done(osm_building *b, bld_job *j) {
        if (!j->error)
                bld_deactivated(b);
        b->leaving = false;
        reply_done(b, j);
}

static void m_leave(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        bld_job *j = bld_job_new(leave_work, leave_done, call, NULL);
        if (!j) {
                osm_call_fail(call, osm_error_internal_error("out of memory"));
                return;
        }
        b->leaving = true;
        bld_submit(b, j);
}

static void remove_work(osm_building *b, bld_job *j) {
        json_int_t node = json_integer_value(json_object_get(j->in, "node_id"));
        json_t *p = json_pack("[O]", json_object_get(j->in, "room"));
        for (size_t i = 0; i < OSM_ARRAY_SIZE(forget_sql); i++)
                if (bld_exec(b, j, forget_sql[i], p) < 0) {
                        json_decref(p);
                        return;
                }
        json_decref(p);
        osm_error err = {};
        osm_dq *c = bld_leader(b, &err);
        int r = c ? osm_dq_remove(c, (uint64_t) node) : -EAGAIN;
        if (r < 0 && !(c && strstr(c->err_msg, "no server"))) {
                j->error = OSM_E_BUILDING_QUORUM;
                snprintf(j->msg, sizeof j->msg, "the member row is gone but its node stays in the cluster: %.255s",
                         c && r == -EREMOTEIO ? c->err_msg : err.message);
                bld_leader_drop(b);
        }
        bld_read_back(b, j);
}

/* A member by room id, name (if unique) or node id; NULL if none. */
static json_t *find_member(osm_building *b, const char *what, bool *ambiguous) {
        json_t *found = NULL, *m;
        size_t i;
        *ambiguous = false;
        json_array_foreach(json_object_get(b->cache, "members"), i, m) {
                const char *room = json_string_value(json_object_get(m, "room"));
                const char *name = json_string_value(json_object_get(m, "name"));
                if (room && strcmp(room, what) == 0)
                        return m;
                if (name && strcmp(name, what) == 0) {
                        if (found)
                                *ambiguous = true;
                        found = m;
                }
        }
        return *ambiguous ? NULL : found;
}

static void m_remove(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        const char *what = json_string_value(json_object_get(p, "room"));
        bool amb;
        json_t *m = find_member(b, what, &amb);
        if (!m) {
                osm_call_errorf(call, OSM_E_NOT_FOUND, amb ? "several rooms are named '%s': give its id" : "no member '%s'", what);
                return;
        }
        if (strcmp(json_string_value(json_object_get(m, "room")), b->d->space_id) == 0) {
                osm_call_invalid_param(call, "room");   /* this room itself: that is building leave */
                return;
        }
        if (b->stale) {
                osm_call_errorf(call, OSM_E_BUILDING_QUORUM, "%s; building state cannot change now", b->last_error);
                return;
        }
        bld_job *j = bld_job_new(remove_work, write_done, call,
                                 json_pack("{s:O,s:O}", "room", json_object_get(m, "room"), "node_id",
                                           json_object_get(m, "node_id")));
        if (!j) {
                osm_call_fail(call, osm_error_internal_error("out of memory"));
                return;
        }
        bld_submit(b, j);
}

/* ---------- Recover ---------- */

static void recover_work(osm_building *b, bld_job *j) {
        /* dqlite's recovery rewrites the raft configuration of a stopped node: stop ours,
         * rewrite it to this room alone (plus the rooms named), start again. */
        json_t *rooms = json_object_get(j->in, "rooms");
        size_t n = json_array_size(rooms);
        uint64_t *ids = calloc(n + 1, sizeof *ids);
        const char **addrs = calloc(n + 1, sizeof *addrs);
        json_t *names = json_array();
        ids[0] = b->node_id;
        addrs[0] = b->address;
        json_array_append_new(names, json_string(b->d->space_id));
        for (size_t i = 0; i < n; i++) {
                json_t *m = json_array_get(rooms, i);
                ids[i + 1] = (uint64_t) json_integer_value(json_object_get(m, "node_id"));
                addrs[i + 1] = json_string_value(json_object_get(m, "address"));
                json_array_append(names, json_object_get(m, "room"));
        }
        bld_leader_drop(b);
        osm_bnode_stop(b->node);
        b->node = NULL;
        osm_error err = {};
        int r = bld_node_start(b, ids, addrs, (int) (n + 1), &err);
        free(ids);
        free(addrs);
        if (r < 0) {
                /* not recovered: the node goes on as it was, if it can */
                osm_error err2 = {};
                int r2 = r == -EPROTO ? bld_node_start(b, NULL, NULL, 0, &err2) : 0;
                j->error = OSM_E_INTERNAL_ERROR;
                snprintf(j->msg, sizeof j->msg, "recovery failed: %.255s%s%.237s", err.message, r2 < 0 ? "; " : "",
                         r2 < 0 ? err2.message : "");
                json_decref(names);
                return;
        }
        log_notice("building: recovered: the cluster is now %zu room(s)", n + 1);
        j->out = json_pack("{s:o,s:s}", "members", names, "message",
                           "this room's raft configuration was rewritten; rooms not named must leave and join again "
                           "(run recover on one room only)");
}

static void m_recover(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        json_t *keep = json_array(), *r;
        size_t i;
        json_array_foreach(json_object_get(p, "rooms"), i, r) {
                bool amb;
                json_t *m = find_member(b, json_string_value(r) ?: "", &amb);
                if (!m) {
                        json_decref(keep);
                        osm_call_errorf(call, OSM_E_NOT_FOUND, "no member '%s'", json_string_value(r));
                        return;
                }
                if (strcmp(json_string_value(json_object_get(m, "room")), b->d->space_id) != 0)
                        json_array_append(keep, m);
        }
        bld_job *j = bld_job_new(recover_work, reply_done, call, json_pack("{s:o}", "rooms", keep));
        if (!j) {
                osm_call_fail(call, osm_error_internal_error("out of memory"));
                return;
        }
        bld_submit(b, j);
}

/* ---------- trust and shares ---------- */

static void m_trust_add(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        const char *key = json_string_value(json_object_get(p, "key"));
        const char *comment = json_string_value(json_object_get(p, "comment"));
        uint8_t pk[OSM_PUBKEY_BYTES];
        if (osm_pubkey_decode(key, pk) < 0) {
                osm_call_invalid_param(call, "key");   /* not a public key (43 characters of URL-safe base64) */
                return;
        }
        if (comment && strlen(comment) > 200) {
                osm_call_invalid_param(call, "comment");   /* at most 200 bytes */
                return;
        }
        submit_write(b, call, "INSERT INTO trust (key, added_by, added, comment) VALUES (?, ?, ?, ?) "
                              "ON CONFLICT (key) DO UPDATE SET comment = excluded.comment",
                     json_pack("[s,s,I,s?]", key, b->d->space_id, (json_int_t) osm_now_real_us(), comment));
}

static void m_trust_list(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        json_t *list = json_array(), *t;
        size_t i;
        json_array_foreach(json_object_get(b->cache, "trust"), i, t) {
                json_t *e = json_pack("{s:O,s:O,s:O}", "key", json_object_get(t, "key"), "added_by",
                                      json_object_get(t, "added_by"), "added", json_object_get(t, "added"));
                if (json_is_string(json_object_get(t, "comment")))
                        json_object_set(e, "comment", json_object_get(t, "comment"));
                json_array_append_new(list, e);
        }
        osm_call_reply(call, osm_reply_building_trust_list(list, b->stale), false);
}

static void m_trust_remove(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        const char *key = json_string_value(json_object_get(p, "key"));
        submit_write_or(b, call, "DELETE FROM trust WHERE key = ?", json_pack("[s]", key),
                        "the building does not trust this key");
}

static void m_share(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        const char *coll = json_string_value(json_object_get(p, "collection"));
        if (!osm_name_valid(coll, 128, true)) {
                osm_call_invalid_param(call, "collection");   /* not a collection name */
                return;
        }
        bool share = strcmp(osm_call_method(call), OSM_M_BUILDING_SHARE) == 0;
        if (share)
                submit_write(b, call, "INSERT INTO shares (room, collection, since) VALUES (?, ?, ?) "
                                      "ON CONFLICT (room, collection) DO NOTHING",
                             json_pack("[s,s,I]", b->d->space_id, coll, (json_int_t) osm_now_real_us()));
        else
                submit_write_or(b, call, "DELETE FROM shares WHERE room = ? AND collection = ?",
                                json_pack("[s,s]", b->d->space_id, coll), "this room does not share that collection");
}

static void m_list_shares(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        json_t *s = json_object_get(b->cache, "shares");
        osm_call_reply(call, osm_reply_building_list_shares(s ? json_incref(s) : json_array(), b->stale), false);
}

static void m_query(osm_call *call, json_t *p, void *ud) {
        osm_building *b = ud;
        if (!need_active(b, call))
                return;
        const char *coll = json_string_value(json_object_get(p, "collection"));
        if (!osm_name_valid(coll, 128, true)) {
                osm_call_invalid_param(call, "collection");   /* not a collection name */
                return;
        }
        json_int_t limit = json_is_integer(json_object_get(p, "limit")) ? json_integer_value(json_object_get(p, "limit")) : 1000;
        if (limit < 1 || limit > 100000) {
                osm_call_invalid_param(call, "limit");   /* 1 to 100000 */
                return;
        }
        /* Who shares it is read on the leader by the worker (query.c), unless the copy is
         * stale: then the leader is not waited for and the last copy names them. */
        json_t *in = json_pack("{s:s,s:O?,s:O?,s:I,s:O?,s:b}", "collection", coll, "since", json_object_get(p, "since"),
                               "until", json_object_get(p, "until"), "limit", limit, "room", json_object_get(p, "room"),
                               "from_leader", !b->stale);
        bld_job *j = bld_job_new(bld_query_work, reply_done, call, in);
        if (!j) {
                osm_call_fail(call, osm_error_internal_error("out of memory"));
                return;
        }
        bld_submit(b, j);
}

const osm_method bld_methods[] = {
        { OSM_M_BUILDING_CREATE, m_create, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_INVITE, m_invite, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_JOIN, m_join, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_STATUS, m_status, OSM_ACCESS_READ },
        { OSM_M_BUILDING_LEAVE, m_leave, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_REMOVE, m_remove, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_RECOVER, m_recover, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_TRUST_ADD, m_trust_add, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_TRUST_LIST, m_trust_list, OSM_ACCESS_READ },
        { OSM_M_BUILDING_TRUST_REMOVE, m_trust_remove, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_SHARE, m_share, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_UNSHARE, m_share, OSM_ACCESS_WRITE },
        { OSM_M_BUILDING_LIST_SHARES, m_list_shares, OSM_ACCESS_READ },
        { OSM_M_BUILDING_QUERY, m_query, OSM_ACCESS_READ },
};
const size_t bld_n_methods = OSM_ARRAY_SIZE(bld_methods);
