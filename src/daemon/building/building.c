/* building.c: the building subsystem's life: the local state file, activation (member
 * transport, dqlite node), the worker thread that makes every dqlite call, the cached copy
 * of the replicated state (refreshed every second, served stale without quorum), the
 * leader's role rebalancing, this room's status summary (pushed when it changed or as a
 * heartbeat), and the prober that tells which members are reachable over the transport. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/building/building-internal.h"
#include "daemon/building/dl-building.h"
#include "osmose/log.h"
#include "osmose/util.h"

#define REFRESH_MS 1000

static void timers_stop(osm_building *b);
static bool self_listed(osm_building *b);
static void bld_removed(osm_building *b);

/* ---------- jobs and the worker ---------- */

bld_job *bld_job_new(void (*work)(osm_building *, bld_job *), void (*done)(osm_building *, bld_job *),
                     void *call, json_t *in) {
        bld_job *j = calloc(1, sizeof *j);
        if (!j) {
                json_decref(in);
                return NULL;
        }
        j->work = work;
        j->done = done;
        j->call = call;
        j->in = in;
        return j;
}

void bld_job_free(bld_job *j) {
        if (!j)
                return;
        json_decref(j->in);
        json_decref(j->out);
        json_decref(j->state);
        free(j);
}

void bld_submit(osm_building *b, bld_job *j) {
        pthread_mutex_lock(&b->lock);
        j->next = NULL;
        if (b->queue_tail)
                b->queue_tail->next = j;
        else
                b->queue = j;
        b->queue_tail = j;
        pthread_cond_signal(&b->cond);
        pthread_mutex_unlock(&b->lock);
}

static void *worker_main(void *arg) {
        osm_building *b = arg;
        pthread_mutex_lock(&b->lock);
        for (;;) {
                while (!b->queue && !b->worker_stop)
                        pthread_cond_wait(&b->cond, &b->lock);
                if (!b->queue && b->worker_stop)
                        break;
                bld_job *j = b->queue;
                b->queue = j->next;
                if (!b->queue)
                        b->queue_tail = NULL;
                pthread_mutex_unlock(&b->lock);
                j->work(b, j);
                pthread_mutex_lock(&b->lock);
                j->next = b->finished;
                b->finished = j;
                uv_async_send(&b->async);
        }
        pthread_mutex_unlock(&b->lock);
        bld_leader_drop(b);
        return NULL;
}

static void on_async(uv_async_t *a) {
        osm_building *b = a->data;
        pthread_mutex_lock(&b->lock);
        bld_job *list = b->finished;
        b->finished = NULL;
        pthread_mutex_unlock(&b->lock);
        /* finished is LIFO: reverse to complete in submission order */
        bld_job *rev = NULL;
        while (list) {
                bld_job *n = list->next;
                list->next = rev;
                rev = list;
                list = n;
        }
        while (rev) {
                bld_job *n = rev->next;
                if (rev->done)
                        rev->done(b, rev);
                bld_job_free(rev);
                rev = n;
        }
}

/* ---------- the local state file ---------- */

int bld_save_state(osm_building *b) {
        json_t *o = json_pack("{s:i,s:s,s:s,s:I,s:s}", "v", 1, "building", b->building_id, "name", b->name,
                              "node_id", (json_int_t) b->node_id, "address", b->address);
        char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        if (!s)
                return -ENOMEM;
        int r = osm_mkdir_p(b->dir, 0700);
        if (r == 0)
                r = osm_write_file_atomic(b->state_path, s, strlen(s), 0600);
        free(s);
        return r;
}

static int load_state(osm_building *b) {
        char *text = NULL;
        size_t len;
        int r = osm_read_file(b->state_path, 65536, &text, &len);
        if (r < 0)
                return r;
        json_t *o = json_loads(text, 0, NULL);
        free(text);
        const char *id = NULL, *name = NULL, *addr = NULL;
        json_int_t node = 0;
        if (!o || json_unpack(o, "{s:s,s:s,s:I,s:s}", "building", &id, "name", &name, "node_id", &node,
                              "address", &addr) != 0 || strlen(id) != OSM_BUILDING_ID_LEN ||
            strlen(name) >= sizeof b->name || strlen(addr) >= sizeof b->address || node <= 0) {
                json_decref(o);
                return -EBADMSG;
        }
        strcpy(b->building_id, id);
        strcpy(b->name, name);
        strcpy(b->address, addr);
        b->node_id = (uint64_t) node;
        json_decref(o);
        return 0;
}

/* The last copy of the replicated state, kept on disk for restarts without quorum. */
static void load_cache(osm_building *b) {
        char *text = NULL;
        size_t len;
        if (osm_read_file(b->cache_path, 16u << 20, &text, &len) < 0)
                return;
        json_t *o = json_loads(text, 0, NULL);
        free(text);
        if (!json_is_object(o)) {
                json_decref(o);
                return;
        }
        json_decref(b->cache);
        b->cache = o;
        b->fetched_us = json_integer_value(json_object_get(o, "fetched"));
        b->stale = true;
        b->stale_since_us = osm_now_mono_us();
}

/* ---------- member keys for the transport ---------- */

static void push_members(osm_building *b) {
        json_t *members = json_object_get(b->cache, "members");
        size_t n = json_array_size(members), k = 0;
        uint8_t (*keys)[OSM_PUBKEY_BYTES] = malloc((n ? n : 1) * OSM_PUBKEY_BYTES);
        if (!keys)
                return;
        for (size_t i = 0; i < n; i++)
                if (osm_pubkey_decode(json_string_value(json_object_get(json_array_get(members, i), "key")), keys[k]) == 0)
                        k++;
        if (b->bt) {
                osm_bt_set_members(b->bt, (const uint8_t (*)[OSM_PUBKEY_BYTES]) keys, k);
                osm_bt_add_member(b->bt, b->d->identity.pk);
        }
        free(keys);
        pthread_mutex_lock(&b->lock);
        json_decref(b->members_copy);
        b->members_copy = json_deep_copy(members);
        json_decref(b->shares_copy);
        b->shares_copy = json_deep_copy(json_object_get(b->cache, "shares"));
        json_decref(b->trust_copy);
        b->trust_copy = json_deep_copy(json_object_get(b->cache, "trust"));
        json_decref(b->holders_copy);
        b->holders_copy = json_deep_copy(json_object_get(b->cache, "holders"));
        json_t *roles = json_object_get(b->cache, "roles");
        if (roles) {   /* keep the last known roles when a join's first copy has none */
                json_decref(b->roles_copy);
                b->roles_copy = json_deep_copy(roles);
        }
        pthread_mutex_unlock(&b->lock);
}

const char *bld_role_of(osm_building *b, uint64_t node_id) {
        char id[32];
        snprintf(id, sizeof id, "%llu", (unsigned long long) node_id);
        const char *r = json_string_value(json_object_get(json_object_get(b->cache, "roles"), id));
        return r ? r : "unknown";
}

/* ---------- refresh: read the replicated state; rebalance roles on the leader ---------- */

bool bld_member_reachable(osm_building *b, json_t *state, json_t *member, int64_t now, int64_t *last_seen) {
        const char *room = json_string_value(json_object_get(member, "room"));
        json_t *st = json_object_get(json_object_get(state, "status"), room ? room : "");
        int64_t at = json_integer_value(json_object_get(st, "at"));
        if (room && strcmp(room, b->d->space_id) == 0) {
                if (last_seen)
                        *last_seen = now;
                return true;
        }
        uint8_t pk[OSM_PUBKEY_BYTES];
        int64_t heard = 0;
        if (osm_pubkey_decode(json_string_value(json_object_get(member, "key")), pk) == 0)
                heard = osm_bt_last_contact(b->bt, pk);
        if (last_seen)
                *last_seen = heard > at ? heard : at;
        return heard > 0 && now - heard <= (int64_t) (3 * b->d->cfg.building_status_interval_us);
}

static bool member_online(osm_building *b, json_t *state, json_t *member, int64_t now) {
        return bld_member_reachable(b, state, member, now, NULL);
}

static void rebalance(osm_building *b, osm_dq *c, json_t *state) {
        json_t *members = json_object_get(state, "members"), *roles = json_object_get(state, "roles");
        size_t n = json_array_size(members);
        if (n == 0 || n > BLD_MAX_MEMBERS)
                return;
        pthread_mutex_lock(&b->probe_lock);
        unsigned rounds = b->probe_rounds;
        pthread_mutex_unlock(&b->probe_lock);
        if (rounds == 0)
                return;   /* who is alive is not known before every member was pinged once */
        bld_role_node *nodes = calloc(n, sizeof *nodes);
        if (!nodes)
                return;
        int64_t now = osm_now_real_us();
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                json_t *m = json_array_get(members, i);
                uint64_t id = (uint64_t) json_integer_value(json_object_get(m, "node_id"));
                char ids[32];
                snprintf(ids, sizeof ids, "%llu", (unsigned long long) id);
                const char *role = json_string_value(json_object_get(roles, ids));
                if (!role)
                        continue;   /* a member row whose node is not (yet) in the cluster */
                nodes[k].id = id;
                nodes[k].role = strcmp(role, "voter") == 0 ? OSM_DQ_VOTER
                              : strcmp(role, "standby") == 0 ? OSM_DQ_STANDBY : OSM_DQ_SPARE;
                nodes[k].online = member_online(b, state, m, now);
                nodes[k].leader = id == b->node_id;   /* the rebalance runs on the leader */
                k++;
        }
        bld_role_change ch[1];
        if (bld_roles_plan(nodes, k, ch, 1) == 1) {
                int r = osm_dq_assign(c, ch[0].id, ch[0].role);
                if (r == 0)
                        log_info("building: node %llu is now %s", (unsigned long long) ch[0].id,
                                 osm_dq_role_name(ch[0].role));
                else
                        log_notice("building: cannot make node %llu %s: %s", (unsigned long long) ch[0].id,
                                   osm_dq_role_name(ch[0].role), r == -EREMOTEIO ? c->err_msg : strerror(-r));
        }
        free(nodes);
}

json_t *bld_fetch_state(osm_building *b, char *msg, size_t size) {
        osm_error err = {};
        osm_dq *c = bld_leader(b, &err);
        if (!c) {
                if (msg)
                        snprintf(msg, size, "%s", err.message);
                return NULL;
        }
        json_t *state = NULL;
        int r = bld_read_state(b, c, &state, &err);
        if (r < 0) {
                bool q = bld_dq_is_quorum_error(c, r);
                bld_leader_drop(b);
                if (msg)
                        snprintf(msg, size, "%s%.255s", q ? "no quorum: " : "", err.message);
                return NULL;
        }
        json_object_set_new(state, "leader", json_pack("{s:I,s:s}", "node_id", (json_int_t) b->leader_id,
                                                       "address", b->leader_addr));
        return state;
}

static void refresh_work(osm_building *b, bld_job *j) {
        j->out = bld_fetch_state(b, j->msg, sizeof j->msg);
        if (!j->out) {
                j->error = OSM_E_BUILDING_QUORUM;
                return;
        }
        if (b->leader_id == b->node_id)
                rebalance(b, &b->leader, j->out);
}

static void write_cache(osm_building *b) {
        /* Only when the content changed: a gateway's SD card should not see a write a second. */
        json_t *copy = json_deep_copy(b->cache);
        json_object_del(copy, "fetched");
        json_t *st = json_object_get(copy, "status");
        const char *k;
        json_t *v;
        json_object_foreach(st, k, v)
                json_object_del(v, "at");
        char *s = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(copy);
        if (!s)
                return;
        static __thread unsigned char last[32];
        unsigned char h[32];
        crypto_generichash(h, sizeof h, (const unsigned char *) s, strlen(s), NULL, 0);
        free(s);
        if (memcmp(h, last, sizeof h) == 0)
                return;
        memcpy(last, h, sizeof h);
        char *full = json_dumps(b->cache, JSON_COMPACT | JSON_SORT_KEYS);
        if (full && osm_write_file_atomic(b->cache_path, full, strlen(full), 0600) < 0)
                log_warning("building: cannot write %s", b->cache_path);
        free(full);
}

/* state, just read from the leader, becomes the cache (loop). */
static void install_state(osm_building *b, json_t *state) {
        if (!b->active || b->leaving)
                return;
        bool was_stale = b->stale;
        json_decref(b->cache);
        b->cache = json_incref(state);
        b->fetched_us = osm_now_real_us();
        json_object_set_new(b->cache, "fetched", json_integer(b->fetched_us));
        b->stale = false;
        b->last_error[0] = 0;
        if (was_stale)
                log_info("building: the replicated state answers again");
        const char *name = json_string_value(json_object_get(json_object_get(b->cache, "meta"), "name"));
        if (name && strcmp(name, b->name) != 0 && strlen(name) < sizeof b->name) {
                strcpy(b->name, name);
                bld_save_state(b);
        }
        push_members(b);
        if (b->bt)
                osm_bt_set_joins_open(b->bt, bld_joins_open(b));
        write_cache(b);
        if (!self_listed(b))
                bld_removed(b);
}

static void refresh_done(osm_building *b, bld_job *j) {
        b->busy_refresh = false;
        if (!b->active || b->leaving)
                return;
        if (j->out) {
                install_state(b, j->out);
        } else {
                if (!b->stale) {
                        log_notice("building: %s; serving the last copy", j->msg);
                        b->stale_since_us = osm_now_mono_us();
                }
                b->stale = true;
                snprintf(b->last_error, sizeof b->last_error, "%s", j->msg);
        }
}

void bld_read_back(osm_building *b, bld_job *j) {
        if (!j->error)
                j->state = bld_fetch_state(b, NULL, 0);
}

void bld_written(osm_building *b, bld_job *j) {
        if (j->state)
                install_state(b, j->state);
        else if (!j->error)
                bld_request_refresh(b);
}

static bool self_listed(osm_building *b) {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(b->cache, "members"), i, m)
                if (strcmp(json_string_value(json_object_get(m, "room")) ?: "", b->d->space_id) == 0)
                        return true;
        return false;
}

/* Another member removed this room: stop and forget the building (in the worker). */
static void removed_work(osm_building *b, bld_job *j) {
        bld_leader_drop(b);
        bld_deactivate(b, true);
}

static void removed_done(osm_building *b, bld_job *j) {
        bld_deactivated(b);
        log_notice("building: this room was removed from the building; it is on its own again");
}

static void bld_removed(osm_building *b) {
        if (b->leaving)
                return;
        b->leaving = true;
        timers_stop(b);
        bld_job *j = bld_job_new(removed_work, removed_done, NULL, NULL);
        if (j)
                bld_submit(b, j);
}

void bld_request_refresh(osm_building *b) {
        if (!b->active || b->busy_refresh)
                return;
        bld_job *j = bld_job_new(refresh_work, refresh_done, NULL, NULL);
        if (!j)
                return;
        b->busy_refresh = true;
        bld_submit(b, j);
}

static void on_refresh_timer(uv_timer_t *t) {
        bld_request_refresh(t->data);
}

/* ---------- this room's status summary ---------- */

static void status_push_done(osm_building *b, bld_job *j) {
        b->push_busy = false;
        if (j->error) {
                log_debug("building: status summary not pushed: %s", j->msg);
                return;
        }
        /* committed: the next push waits for a change or the heartbeat */
        pthread_mutex_lock(&b->lock);
        b->counters.status_pushes++;
        pthread_mutex_unlock(&b->lock);
        snprintf(b->last_summary, sizeof b->last_summary, "%s", json_string_value(json_array_get(j->in, 2)));
        b->last_summary_us = json_integer_value(json_array_get(j->in, 1));
}

static void status_push_work(osm_building *b, bld_job *j) {
        bld_exec(b, j, "INSERT INTO status (room, at, summary) VALUES (?, ?, ?) "
                       "ON CONFLICT (room) DO UPDATE SET at = excluded.at, summary = excluded.summary", j->in);
}

static json_t *make_summary(osm_building *b) {
        json_t *st = osm_daemon_status(b->d, true);
        json_t *subs = json_object();
        const char *worst = "ok";
        json_int_t running = 0, services = -1;
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(st, "subsystems"), i, s) {
                const char *name = json_string_value(json_object_get(s, "name"));
                const char *h = json_string_value(json_object_get(s, "health"));
                if (!name || !h)
                        continue;
                json_object_set_new(subs, name, json_string(h));
                if (strcmp(h, "failed") == 0)
                        worst = "failed";
                else if (strcmp(h, "degraded") == 0 && strcmp(worst, "ok") == 0)
                        worst = "degraded";
                json_t *info = json_object_get(s, "info");
                if (strcmp(name, "workloads") == 0)
                        running = json_integer_value(json_object_get(info, "running"));
                if (strcmp(name, "discovery") == 0 && json_is_integer(json_object_get(info, "services")))
                        services = json_integer_value(json_object_get(info, "services"));
        }
        json_decref(st);
        json_t *o = json_pack("{s:s,s:o,s:I,s:s,s:s}", "health", worst, "subsystems", subs, "workloads",
                              running, "version", OSM_VERSION, "name", b->d->cfg.name);
        if (services >= 0)
                json_object_set_new(o, "services", json_integer(services));
        return o;
}

static void on_status_timer(uv_timer_t *t) {
        osm_building *b = t->data;
        if (!b->active || b->stale)
                return;   /* without quorum a push cannot commit: do not queue it */
        json_t *sum = make_summary(b);
        char *s = json_dumps(sum, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(sum);
        if (!s)
                return;
        int64_t now = osm_now_real_us();
        /* Every push is a raft write on every voter's disk (an SD card): the summary goes
         * out only when it changed since the last committed one, or as a heartbeat after
         * heartbeat-interval (its time is last_seen). Reachability is not judged from it
         * but from the member transport (the prober). */
        bool same = strcmp(s, b->last_summary) == 0;
        if (b->push_busy || strlen(s) >= sizeof b->last_summary ||
            (same && now - b->last_summary_us < (int64_t) b->d->cfg.building_heartbeat_interval_us)) {
                free(s);
                return;
        }
        bld_job *j = bld_job_new(status_push_work, status_push_done, NULL,
                                 json_pack("[s,I,s]", b->d->space_id, (json_int_t) now, s));
        free(s);
        if (j) {
                b->push_busy = true;
                bld_submit(b, j);
        }
}

/* ---------- the prober: reachability from the member transport ---------- */

#define PING_MS 1000
#define PING_BATCH 16

typedef struct ping {
        osm_building *b;
        char address[OSM_DQ_ADDR_MAX];
        uint8_t key[OSM_PUBKEY_BYTES];
        pthread_t thread;
        bool started;
} ping;

/* A mutual TLS handshake with the member's pinned key and one line each way: no raft
 * write. osm_bt_dial records the contact; the answer shows the daemon serves. */
static void *ping_main(void *arg) {
        ping *p = arg;
        osm_btls_conn c = { .fd = -1 };
        if (osm_bt_dial(p->b->bt, p->address, p->key, PING_MS, &c, NULL) < 0)
                return NULL;
        static const char req[] = "{\"op\":\"ping\"}\n";
        uint64_t dl = osm_now_mono_us() + PING_MS * 1000ull;
        char line[128];
        if (osm_btls_write(&c, req, sizeof req - 1, dl) == 0)
                osm_btls_read_line(&c, line, sizeof line, dl);
        osm_btls_close(&c);
        return NULL;
}

/* One round: every other member not heard from within an interval, up to PING_BATCH at
 * a time (a dead member costs PING_MS, not the round). */
static void probe_round(osm_building *b) {
        pthread_mutex_lock(&b->lock);
        json_t *members = json_deep_copy(b->members_copy);
        pthread_mutex_unlock(&b->lock);
        size_t n = json_array_size(members);
        ping *ps = calloc(n ? n : 1, sizeof *ps);
        int64_t now = osm_now_real_us(), iv = (int64_t) b->d->cfg.building_status_interval_us;
        size_t k = 0;
        for (size_t i = 0; ps && i < n; i++) {
                json_t *m = json_array_get(members, i);
                const char *a = json_string_value(json_object_get(m, "address"));
                if (!a || strlen(a) >= sizeof ps[k].address || strcmp(a, b->address) == 0 ||
                    osm_pubkey_decode(json_string_value(json_object_get(m, "key")), ps[k].key) < 0 ||
                    now - osm_bt_last_contact(b->bt, ps[k].key) < iv)
                        continue;
                ps[k].b = b;
                strcpy(ps[k].address, a);
                k++;
        }
        for (size_t at = 0; at < k; at += PING_BATCH) {
                size_t end = OSM_MIN(k, at + PING_BATCH);
                for (size_t i = at; i < end; i++)
                        ps[i].started = pthread_create(&ps[i].thread, NULL, ping_main, &ps[i]) == 0;
                for (size_t i = at; i < end; i++)
                        if (ps[i].started)
                                pthread_join(ps[i].thread, NULL);
        }
        free(ps);
        json_decref(members);
}

static void *prober_main(void *arg) {
        osm_building *b = arg;
        pthread_mutex_lock(&b->probe_lock);
        while (!b->prober_stop) {
                pthread_mutex_unlock(&b->probe_lock);
                probe_round(b);
                pthread_mutex_lock(&b->probe_lock);
                b->probe_rounds++;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t ns = (uint64_t) ts.tv_nsec + b->d->cfg.building_status_interval_us * 1000ull;
                ts.tv_sec += (time_t) (ns / 1000000000ull);
                ts.tv_nsec = (long) (ns % 1000000000ull);
                if (!b->prober_stop)
                        pthread_cond_timedwait(&b->probe_cond, &b->probe_lock, &ts);
        }
        pthread_mutex_unlock(&b->probe_lock);
        return NULL;
}

static void prober_start(osm_building *b) {
        pthread_mutex_lock(&b->probe_lock);
        b->prober_stop = false;
        b->probe_rounds = 0;
        pthread_mutex_unlock(&b->probe_lock);
        b->prober_running = pthread_create(&b->prober, NULL, prober_main, b) == 0;
        if (!b->prober_running)
                log_warning("building: cannot start the prober: members will look unreachable");
}

static void prober_stop(osm_building *b) {
        if (!b->prober_running)
                return;
        pthread_mutex_lock(&b->probe_lock);
        b->prober_stop = true;
        pthread_cond_signal(&b->probe_cond);
        pthread_mutex_unlock(&b->probe_lock);
        pthread_join(b->prober, NULL);
        b->prober_running = false;
}

/* ---------- activation ---------- */

static void transport_handler(void *arg, osm_btls_conn *c, const char *op, void *req) {
        osm_building *b = arg;
        if (strcmp(op, "join") == 0) {
                bld_handle_join(b, c, req);
        } else if (strcmp(op, "query") == 0) {
                bld_handle_query(b, c, req);
        } else if (strcmp(op, "bundle") == 0) {
                bld_handle_bundle(b, c, req);
        } else if (strcmp(op, "ping") == 0) {
                static const char msg[] = "{\"ok\":true}\n";
                osm_btls_write(c, msg, sizeof msg - 1, osm_now_mono_us() + 1000000);
        } else {
                static const char msg[] = "{\"error\":\"UnknownOp\"}\n";
                osm_btls_write(c, msg, sizeof msg - 1, osm_now_mono_us() + 1000000);
        }
}

int bld_node_start(osm_building *b, const uint64_t *recover_ids, const char *const *recover_addresses, int n_recover,
                   osm_error *err) {
        unsigned latency = (unsigned) (b->d->cfg.building_latency_us / 1000);
        osm_bnode_opts o = { .id = b->node_id, .address = b->address, .bind = b->bind, .dir = b->node_dir,
                             .latency_ms = latency ? latency : 1, .connect = osm_bt_connect_node, .connect_arg = b->bt,
                             .recover_ids = recover_ids, .recover_addresses = recover_addresses, .n_recover = n_recover };
        return osm_bnode_start(&o, &b->node, err);
}

int bld_activate(osm_building *b, osm_error *err) {
        /* OpenSSL and libdqlite are opened here, when the room is in a building. */
        osm_error why = {};
        if (osm_dl_building(&why) < 0)
                return osm_error_set(err, -EOPNOTSUPP, 0, "%s", why.message);
        int r = osm_bt_start(&b->d->identity, (unsigned) b->d->cfg.building_port, b->bind, b->address,
                             transport_handler, b, &b->bt, err);
        if (r < 0)
                return r;
        push_members(b);
        r = bld_node_start(b, NULL, NULL, 0, err);
        if (r < 0) {
                osm_bt_stop(b->bt);
                b->bt = NULL;
                return r;
        }
        prober_start(b);
        bld_share_start(b);
        log_info("building: member of \"%s\" (%s) as %s, node %llu", b->name, b->building_id, b->address,
                 (unsigned long long) b->node_id);
        return 0;
}

static void timers_start(osm_building *b) {
        if (b->timers_on)
                return;
        uv_timer_start(&b->refresh_timer, on_refresh_timer, 0, REFRESH_MS);
        uint64_t iv = b->d->cfg.building_status_interval_us / 1000;
        uv_timer_start(&b->status_timer, on_status_timer, 200, iv);
        b->timers_on = true;
}

static void timers_stop(osm_building *b) {
        uv_timer_stop(&b->refresh_timer);
        uv_timer_stop(&b->status_timer);
        b->timers_on = false;
}

void bld_activated(osm_building *b) {
        b->active = true;
        b->leaving = false;
        b->last_summary[0] = 0;   /* a (re)joined room pushes its summary at once */
        b->last_summary_us = 0;
        if (!b->stale)
                b->stale_since_us = osm_now_mono_us();
        b->stale = true;
        timers_start(b);
}

static void rm_rf(const char *path) {
        /* The building's directory: raft segments, snapshots, state and cache files. */
        char cmd[4400];
        if (strchr(path, '\''))
                return;
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", path);
        if (system(cmd) != 0)
                log_warning("building: cannot remove %s", path);
}

void bld_deactivate(osm_building *b, bool forget) {
        bld_share_stop(b);
        prober_stop(b);
        osm_bnode_stop(b->node);
        b->node = NULL;
        osm_bt_stop(b->bt);
        b->bt = NULL;
        if (forget) {
                rm_rf(b->dir);
                b->building_id[0] = b->name[0] = b->address[0] = 0;
                b->node_id = 0;
        }
}

void bld_deactivated(osm_building *b) {
        timers_stop(b);
        b->active = false;
        b->stale = false;
        json_decref(b->cache);
        b->cache = NULL;
        pthread_mutex_lock(&b->lock);
        json_decref(b->members_copy);
        b->members_copy = NULL;
        json_decref(b->shares_copy);
        b->shares_copy = NULL;
        json_decref(b->trust_copy);
        b->trust_copy = NULL;
        json_decref(b->holders_copy);
        b->holders_copy = NULL;
        json_decref(b->roles_copy);
        b->roles_copy = NULL;
        pthread_mutex_unlock(&b->lock);
}

/* ---------- the subsystem ---------- */

static int building_start(osm_daemon *d) {
        osm_building *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->d = d;
        snprintf(b->dir, sizeof b->dir, "%s/building", d->cfg.state_dir);
        snprintf(b->state_path, sizeof b->state_path, "%s/state.json", b->dir);
        snprintf(b->cache_path, sizeof b->cache_path, "%s/cache.json", b->dir);
        snprintf(b->node_dir, sizeof b->node_dir, "%s/dqlite", b->dir);
        snprintf(b->bind, sizeof b->bind, "@osmose-building-%s", d->space_id);
        pthread_mutex_init(&b->lock, NULL);
        pthread_cond_init(&b->cond, NULL);
        pthread_mutex_init(&b->probe_lock, NULL);
        pthread_cond_init(&b->probe_cond, NULL);
        uv_async_init(d->loop, &b->async, on_async);
        b->async.data = b;
        uv_timer_init(d->loop, &b->refresh_timer);
        uv_timer_init(d->loop, &b->status_timer);
        b->refresh_timer.data = b->status_timer.data = b;
        bld_query_init(b);
        if (pthread_create(&b->worker, NULL, worker_main, b) != 0) {
                free(b);
                return -EAGAIN;
        }
        b->worker_running = true;
        d->building = b;
        int r = osm_server_add_methods(d->server, bld_methods, bld_n_methods, b);
        if (r < 0) {
                log_error("building: cannot register methods: %s", strerror(-r));
                return r;
        }
        r = load_state(b);
        if (r == -ENOENT)
                return 0;   /* not in a building: nothing listens */
        if (r < 0) {
                log_error("building: %s is unreadable; not joining the building (fix or remove it)", b->state_path);
                return 0;
        }
        load_cache(b);
        osm_error err = {};
        if ((r = bld_activate(b, &err)) < 0) {
                log_error("building: cannot rejoin \"%s\": %s", b->name, osm_error_message(&err, strerror(-r)));
                snprintf(b->last_error, sizeof b->last_error, "%s", osm_error_message(&err, strerror(-r)));
                return 0;
        }
        bld_activated(b);
        return 0;
}

static void on_handle_closed(uv_handle_t *h) {
        osm_building *b = h->data;
        if (--b->closing_handles > 0)
                return;
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->cond);
        free(b);
}

static void building_stop(osm_daemon *d) {
        osm_building *b = d->building;
        if (!b)
                return;
        timers_stop(b);
        pthread_mutex_lock(&b->lock);
        b->worker_stop = true;
        pthread_cond_signal(&b->cond);
        pthread_mutex_unlock(&b->lock);
        if (b->worker_running)
                pthread_join(b->worker, NULL);
        on_async(&b->async);   /* finish what the worker completed */
        bld_deactivate(b, false);
        b->active = false;
        json_decref(b->cache);
        json_decref(b->members_copy);
        json_decref(b->shares_copy);
        json_decref(b->trust_copy);
        json_decref(b->holders_copy);
        json_decref(b->roles_copy);
        /* The handles (all four inside b) close on a later loop turn, in no promised
         * order; b is freed when the last one has. */
        b->closing_handles = 4;
        bld_query_close(b, on_handle_closed);
        uv_close((uv_handle_t *) &b->async, on_handle_closed);
        uv_close((uv_handle_t *) &b->refresh_timer, on_handle_closed);
        uv_close((uv_handle_t *) &b->status_timer, on_handle_closed);
        d->building = NULL;
}

/* Of the members in the cache: how many, how many reachable, and the leader's room. */
static void count_members(osm_building *b, size_t *n, size_t *up, const char **leader_room) {
        json_t *members = json_object_get(b->cache, "members");
        int64_t now = osm_now_real_us();
        *n = json_array_size(members);
        *up = 0;
        for (size_t i = 0; i < *n; i++)
                *up += member_online(b, b->cache, json_array_get(members, i), now);
        uint64_t leader = (uint64_t) json_integer_value(json_object_get(json_object_get(b->cache, "leader"), "node_id"));
        *leader_room = NULL;
        for (size_t i = 0; i < *n; i++) {
                json_t *m = json_array_get(members, i);
                if ((uint64_t) json_integer_value(json_object_get(m, "node_id")) == leader)
                        *leader_room = json_string_value(json_object_get(m, "name"));
        }
}

/* Health without building a JSON object: GetStatus asks for it in a loop. */
static osm_health building_health(osm_daemon *d, char *detail, size_t size) {
        osm_building *b = d->building;
        if (!b) {
                snprintf(detail, size, "not running");
                return OSM_HEALTH_FAILED;
        }
        if (!b->active) {
                snprintf(detail, size, "%s", b->last_error[0] ? b->last_error : "not in a building");
                return b->last_error[0] ? OSM_HEALTH_FAILED : OSM_HEALTH_DISABLED;
        }
        size_t n, up;
        const char *leader_room;
        count_members(b, &n, &up, &leader_room);
        snprintf(detail, size, "\"%s\": %s, leader %s, %zu/%zu members reachable%s%s", b->name,
                 bld_role_of(b, b->node_id), leader_room ? leader_room : "none", up, n,
                 b->stale ? "; stale: " : "", b->stale ? b->last_error : "");
        return b->stale ? OSM_HEALTH_DEGRADED : OSM_HEALTH_OK;
}

static void building_status(osm_daemon *d, json_t *obj) {
        osm_building *b = d->building;
        if (!b || !b->active)
                return;
        size_t n, up;
        const char *leader_room;
        count_members(b, &n, &up, &leader_room);
        json_object_set_new(obj, "info", json_pack("{s:s,s:s,s:s,s:s?,s:I,s:I,s:b}", "building", b->building_id,
                                                   "name", b->name, "role", bld_role_of(b, b->node_id),
                                                   "leader", leader_room, "reachable", (json_int_t) up,
                                                   "members", (json_int_t) n, "stale", b->stale));
}

const osm_subsystem osm_building_subsystem = {
        .name = "building",
        .start = building_start,
        .stop = building_stop,
        .health = building_health,
        .status = building_status,
};

/* ---------- for other subsystems ---------- */

bool osm_building_active(osm_daemon *d) {
        return d->building && d->building->active;
}

bool osm_building_trusts(osm_daemon *d, const char *key) {
        /* Called from the install thread: the copy under the lock, not the loop's cache. */
        osm_building *b = d->building;
        if (!b || !key)
                return false;
        bool found = false;
        size_t i;
        json_t *t;
        pthread_mutex_lock(&b->lock);
        json_array_foreach(b->trust_copy, i, t)
                found |= strcmp(json_string_value(json_object_get(t, "key")) ?: "", key) == 0;
        pthread_mutex_unlock(&b->lock);
        return found;
}

static void api_work(osm_building *b, bld_job *j) {
        const char *sql = json_string_value(json_object_get(j->in, "sql"));
        json_t *params = json_object_get(j->in, "params");
        if (json_is_true(json_object_get(j->in, "query"))) {
                json_t *rows = NULL;
                if (bld_query(b, j, sql, params, &rows) == 0)
                        j->out = rows;
        } else if (bld_exec(b, j, sql, params) == 0) {
                bld_read_back(b, j);
        }
}

static void api_done(osm_building *b, bld_job *j) {
        if (!json_is_true(json_object_get(j->in, "query")))
                bld_written(b, j);
        if (j->cb)
                j->cb(j->userdata, j->error, j->error ? j->msg : NULL, j->out);
}

static int api_submit(osm_daemon *d, bool query, const char *sql, json_t *params, osm_building_cb cb, void *ud) {
        osm_building *b = d->building;
        if (!b || !b->active)
                return -ENOTCONN;
        json_t *in = json_pack("{s:s,s:O?,s:b}", "sql", sql, "params", params, "query", query);
        bld_job *j = in ? bld_job_new(api_work, api_done, NULL, in) : NULL;
        if (!j)
                return -ENOMEM;
        j->cb = cb;
        j->userdata = ud;
        bld_submit(b, j);
        return 0;
}

int osm_building_exec(osm_daemon *d, const char *sql, json_t *params, osm_building_cb cb, void *ud) {
        return api_submit(d, false, sql, params, cb, ud);
}

int osm_building_query(osm_daemon *d, const char *sql, json_t *params, osm_building_cb cb, void *ud) {
        return api_submit(d, true, sql, params, cb, ud);
}
