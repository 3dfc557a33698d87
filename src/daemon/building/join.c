/* join.c: invitations and joining. The inviter hands out a single-use, expiring token and
 * keeps only a hash of its secret; the joiner pins the inviter's key from the token and
 * presents the secret over TLS; the inviter checks it in constant time, adds the joiner's
 * key to the replicated members and its node to the cluster. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/building/building-internal.h"
#include "daemon/building/dl-building.h"
#include "osmose/log.h"
#include "osmose/util.h"

#define JOIN_LINE_MAX     (256 * 1024)
#define JOIN_STEP_MS      30000   /* ASSIGN waits for the new node to catch up */
#define VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

static void hash_secret(const uint8_t secret[OSM_TOKEN_SECRET_BYTES], uint8_t out[32]) {
        static const char ctx[] = "osmose-join-token";
        crypto_generichash(out, 32, secret, OSM_TOKEN_SECRET_BYTES, (const unsigned char *) ctx, sizeof ctx - 1);
}

bool bld_joins_open(osm_building *b) {
        int64_t now = osm_now_real_us();
        bool open = false;
        pthread_mutex_lock(&b->lock);
        /* Until an hour past expiry, used or not, so that a late or second joiner hears
         * "expired" or "used" (and it is counted) instead of a closed door. Only a join
         * request gets past the handshake this way, and only the secret gets it further. */
        for (size_t i = 0; i < BLD_MAX_TOKENS; i++)
                open |= b->tokens[i].expires_us + 3600ll * 1000000 > now;
        pthread_mutex_unlock(&b->lock);
        return open;
}

int bld_invite(osm_building *b, int64_t expires_us, char **out, osm_error *err) {
        osm_token t = { 0 };
        int64_t now = osm_now_real_us();
        snprintf(t.building, sizeof t.building, "%s", b->building_id);
        snprintf(t.name, sizeof t.name, "%s", b->name);
        snprintf(t.addresses[0], sizeof t.addresses[0], "%s", b->address);
        t.n_addresses = 1;
        memcpy(t.key, b->d->identity.pk, OSM_PUBKEY_BYTES);
        randombytes_buf(t.secret, sizeof t.secret);
        t.expires_us = now + expires_us;
        uint8_t h[32];
        hash_secret(t.secret, h);
        pthread_mutex_lock(&b->lock);
        long slot = -1;
        for (size_t i = 0; i < BLD_MAX_TOKENS && slot < 0; i++)
                if (b->tokens[i].expires_us <= now || b->tokens[i].used)
                        slot = (long) i;
        if (slot >= 0) {
                memcpy(b->tokens[slot].secret_hash, h, sizeof h);
                b->tokens[slot].expires_us = t.expires_us;
                b->tokens[slot].used = false;
        }
        pthread_mutex_unlock(&b->lock);
        if (slot < 0) {
                osm_token_wipe(&t);
                return osm_error_set(err, -EBUSY, 0, "%d invitations are outstanding already; let some expire",
                                     BLD_MAX_TOKENS);
        }
        *out = osm_token_encode(&t);
        osm_token_wipe(&t);
        if (!*out)
                return -ENOMEM;
        if (b->bt)
                osm_bt_set_joins_open(b->bt, true);
        return 0;
}

/* ---------- the inviter's side (a transport thread) ---------- */

static void reply_line(osm_btls_conn *c, json_t *o) {
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!s)
                return;
        size_t n = strlen(s);
        char *line = malloc(n + 2);
        if (line) {
                memcpy(line, s, n);
                line[n] = '\n';
                osm_btls_write(c, line, n + 1, osm_now_mono_us() + 5000000);
                free(line);
        }
        free(s);
}

static void refuse(osm_building *b, osm_btls_conn *c, const char *reason, const char *msg, uint64_t *counter) {
        pthread_mutex_lock(&b->lock);
        if (counter)
                (*counter)++;
        pthread_mutex_unlock(&b->lock);
        char pk[OSM_PUBKEY_B64];
        osm_pubkey_encode(c->peer, pk);
        log_notice("building: join refused (%s) for key %s: %s", reason, pk, msg);
        reply_line(c, json_pack("{s:s,s:s,s:s}", "error", "TokenRefused", "reason", reason, "message", msg));
}

static bool address_ok(const char *a) {
        const char *colon = a ? strrchr(a, ':') : NULL;
        uint64_t port;
        if (!a || strlen(a) >= OSM_DQ_ADDR_MAX || !colon || colon == a || osm_parse_u64(colon + 1, &port) < 0 ||
            port < 1 || port > 65535)
                return false;
        for (const char *p = a; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f || *p == '@')
                        return false;
        return true;
}

/* ADD (address set) or ASSIGN, retried while another membership change is in flight
 * (raft takes them one at a time). */
static int change_retry(osm_dq *c, uint64_t id, const char *address, int role) {
        uint64_t dl = osm_now_mono_us() + JOIN_STEP_MS * 1000ull;
        for (;;) {
                int r = address ? osm_dq_add(c, id, address) : osm_dq_assign(c, id, role);
                if (r != -EREMOTEIO || osm_now_mono_us() >= dl || !strstr(c->err_msg, "in progress"))
                        return r;
                usleep(100000);
        }
}

void bld_handle_join(osm_building *b, osm_btls_conn *c, json_t *req) {
        const char *secret = json_string_value(json_object_get(req, "secret"));
        const char *building = json_string_value(json_object_get(req, "building"));
        const char *name = json_string_value(json_object_get(req, "name"));
        const char *address = json_string_value(json_object_get(req, "address"));
        uint8_t s[OSM_TOKEN_SECRET_BYTES], h[32];
        size_t sl = 0;
        if (!secret || sodium_base642bin(s, sizeof s, secret, strlen(secret), NULL, &sl, NULL, VARIANT) != 0 ||
            sl != sizeof s) {
                refuse(b, c, "secret", "the join request carries no valid secret", &b->counters.joins_refused_secret);
                return;
        }
        hash_secret(s, h);
        sodium_memzero(s, sizeof s);
        int64_t now = osm_now_real_us();
        const char *reason = "secret";
        pthread_mutex_lock(&b->lock);
        for (size_t i = 0; i < BLD_MAX_TOKENS; i++) {
                bld_token *t = &b->tokens[i];
                if (t->expires_us == 0 || sodium_memcmp(t->secret_hash, h, sizeof h) != 0)
                        continue;
                if (t->used)
                        reason = "used";
                else if (t->expires_us <= now)
                        reason = "expired";
                else
                        reason = NULL;
                t->used = true;   /* single use, whatever happens next */
                break;
        }
        pthread_mutex_unlock(&b->lock);
        if (reason) {
                const char *msg = strcmp(reason, "used") == 0 ? "this join token was used already"
                                : strcmp(reason, "expired") == 0 ? "this join token has expired"
                                : "the secret matches no invitation of this room";
                uint64_t *ctr = strcmp(reason, "used") == 0 ? &b->counters.joins_refused_used
                              : strcmp(reason, "expired") == 0 ? &b->counters.joins_refused_expired
                              : &b->counters.joins_refused_secret;
                refuse(b, c, reason, msg, ctr);
                return;
        }
        if (!building || strcmp(building, b->building_id) != 0) {
                refuse(b, c, "building", "the token names another building", &b->counters.joins_refused_secret);
                return;
        }
        if (!address_ok(address) || !name || strlen(name) == 0 || strlen(name) > 63) {
                refuse(b, c, "request", "the join request lacks a valid address or name", NULL);
                return;
        }
        char room[OSM_SPACE_ID_LEN + 1], pk[OSM_PUBKEY_B64];
        osm_space_id(c->peer, room);
        osm_pubkey_encode(c->peer, pk);
        if (osm_bt_is_member(b->bt, c->peer) || strcmp(room, b->d->space_id) == 0) {
                refuse(b, c, "member", "this room is a member already", &b->counters.joins_refused_member);
                return;
        }

        osm_dq q;
        osm_error err = {};
        uint64_t node_id;
        do {
                randombytes_buf(&node_id, sizeof node_id);
                node_id &= (1ull << 62) - 1;
        } while (node_id < 2);
        if (bld_dial_leader(b, &q, JOIN_STEP_MS, NULL, NULL, &err) < 0) {
                refuse(b, c, "quorum", err.message, NULL);
                return;
        }
        json_t *p = json_pack("[s,s,s,I,s,I]", room, name, pk, (json_int_t) node_id, address, (json_int_t) now);
        int r = bld_dq_exec_retry(&q, "INSERT INTO members (room, name, key, node_id, address, joined) VALUES (?, ?, ?, ?, ?, ?)",
                                  p);
        json_decref(p);
        if (r < 0) {
                osm_error_set(&err, r, 0, "%s", r == -EREMOTEIO ? q.err_msg : strerror(-r));
                osm_dq_close(&q);
                refuse(b, c, strstr(err.message, "UNIQUE") ? "member" : "quorum", err.message, NULL);
                return;
        }
        osm_bt_add_member(b->bt, c->peer);
        json_t *state = NULL;
        if (bld_read_state(b, &q, &state, NULL) < 0)
                state = json_pack("{s:[]}", "members");
        reply_line(c, json_pack("{s:b,s:I,s:s,s:s,s:O,s:s}", "ok", 1, "node_id", (json_int_t) node_id, "building",
                                b->building_id, "name", b->name, "members", json_object_get(state, "members"),
                                "room", room));
        json_decref(state);

        /* The joiner starts its node and listener, then says it is ready. */
        char line[256];
        json_t *ready = NULL;
        if (osm_btls_read_line(c, line, sizeof line, osm_now_mono_us() + JOIN_STEP_MS * 1000ull) == 0)
                ready = json_loads(line, 0, NULL);
        const char *op = json_string_value(json_object_get(ready, "op"));
        bool go = op && strcmp(op, "ready") == 0;
        json_decref(ready);
        if (go)
                r = change_retry(&q, node_id, address, 0);
        if (!go || r < 0) {
                osm_error_set(&err, !go ? -ETIMEDOUT : r, 0, "%s", !go ? "the joiner did not get ready" : q.err_msg);
                p = json_pack("[s]", room);
                bld_dq_exec_retry(&q, "DELETE FROM members WHERE room = ?", p);
                json_decref(p);
                osm_dq_close(&q);
                log_notice("building: join of %s failed: %s", room, err.message);
                reply_line(c, json_pack("{s:s,s:s}", "error", "JoinFailed", "message", err.message));
                return;
        }
        /* A first role at once (the leader's rebalancing refines it): a voter while there
         * are fewer than wanted, then standbys, else it stays a spare. */
        osm_dq_node *nodes = NULL;
        size_t nn = 0, voters = 0, standbys = 0;
        int role = OSM_DQ_SPARE;
        if (osm_dq_cluster(&q, &nodes, &nn) == 0) {
                for (size_t i = 0; i < nn; i++) {
                        voters += nodes[i].role == OSM_DQ_VOTER;
                        standbys += nodes[i].role == OSM_DQ_STANDBY;
                }
                size_t want = nn >= 7 ? 5 : 3;
                role = voters < want ? OSM_DQ_VOTER : standbys < 2 ? OSM_DQ_STANDBY : OSM_DQ_SPARE;
        }
        free(nodes);
        if (role != OSM_DQ_SPARE && (r = change_retry(&q, node_id, NULL, role)) < 0)
                log_notice("building: %s joined as a spare (%s: %s)", room, osm_dq_role_name(role), q.err_msg);
        osm_dq_close(&q);
        pthread_mutex_lock(&b->lock);
        b->counters.joins++;
        pthread_mutex_unlock(&b->lock);
        log_info("building: %s (\"%s\") joined at %s as node %llu", room, name, address, (unsigned long long) node_id);
        reply_line(c, json_pack("{s:b,s:s}", "ok", 1, "role", osm_dq_role_name(r < 0 ? OSM_DQ_SPARE : role)));
}

/* ---------- the joiner's side (the worker) ---------- */

/* HOST:PORT of the local end of c, with our building port. */
static void local_address(int fd, unsigned port, char *out, size_t size) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char host[INET6_ADDRSTRLEN] = "";
        out[0] = 0;
        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return;
        if (ss.ss_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, host, sizeof host);
                snprintf(out, size, "%s:%u", host, port);
        } else if (ss.ss_family == AF_INET6) {
                struct in6_addr *a = &((struct sockaddr_in6 *) &ss)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(a)) {
                        inet_ntop(AF_INET, &a->s6_addr[12], host, sizeof host);
                        snprintf(out, size, "%s:%u", host, port);
                } else {
                        inet_ntop(AF_INET6, a, host, sizeof host);
                        snprintf(out, size, "[%s]:%u", host, port);
                }
        }
}

static int read_json_line(osm_btls_conn *c, json_t **out, int timeout_ms) {
        char *line = malloc(JOIN_LINE_MAX);
        if (!line)
                return -ENOMEM;
        int r = osm_btls_read_line(c, line, JOIN_LINE_MAX, osm_now_mono_us() + (uint64_t) timeout_ms * 1000);
        if (r == 0 && !(*out = json_loads(line, 0, NULL)))
                r = -EPROTO;
        free(line);
        return r;
}

static void join_fail(bld_job *j, const char *error, const char *fmt, ...) OSM_PRINTF(3, 4);
static void join_fail(bld_job *j, const char *error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        j->error = error;
        vsnprintf(j->msg, sizeof j->msg, fmt, ap);
        va_end(ap);
}

void bld_join_work(osm_building *b, bld_job *j) {
        const char *text = json_string_value(json_object_get(j->in, "token"));
        const char *addr_opt = json_string_value(json_object_get(j->in, "address"));
        osm_token t;
        osm_error why = {};
        if (osm_token_parse(text, &t, &why) < 0) {
                /* InvalidParameter carries the parameter's name only (org.varlink.service): the CLI
                 * says what a bad token means; the reason goes to the log. */
                join_fail(j, OSM_E_VARLINK_INVALID_PARAMETER, "the join token is not valid: %s", why.message);
                j->bad_param = "token";
                log_info("building join: %s", j->msg);
                return;
        }
        /* Expiry is the inviter's to judge (and to count): its clock issued the token. */
        osm_btls tls;
        osm_error dl_err;
        if (osm_dl_building(&dl_err) < 0) {   /* OpenSSL and libdqlite: opened on joining */
                osm_token_wipe(&t);
                join_fail(j, OSM_E_NOT_AVAILABLE, "cannot join: %s", dl_err.message);
                return;
        }
        if (osm_btls_init(&tls, &b->d->identity, NULL, NULL) < 0) {
                osm_token_wipe(&t);
                join_fail(j, OSM_E_INTERNAL_ERROR, "%s", "cannot set up TLS with the identity key");
                return;
        }
        osm_btls_conn c = { .fd = -1 };
        int r = -EHOSTUNREACH;
        char tried[512] = "";
        for (size_t i = 0; i < t.n_addresses; i++) {
                r = osm_btls_connect(&tls, t.addresses[i], t.key, 5000, &c, &why);
                if (r == 0)
                        break;
                size_t n = strlen(tried);
                snprintf(tried + n, sizeof tried - n, "%s%s: %.200s", n ? "; " : "", t.addresses[i], why.message);
        }
        if (r < 0) {
                osm_token_wipe(&t);
                osm_btls_free(&tls);
                if (r == -EPERM)
                        join_fail(j, OSM_E_BUILDING_TOKEN_REFUSED, "the inviter's key does not match the token (%s)", tried);
                else
                        join_fail(j, OSM_E_BUILDING_UNREACHABLE, "cannot reach the inviter (%s)%s", tried,
                                  r == -EPROTO ? "; it takes no joins now: its invitations were used or expired" : "");
                if (r == -EPERM)
                        j->out = json_pack("{s:s}", "reason", "inviter-key");
                return;
        }
        char address[OSM_DQ_ADDR_MAX];
        unsigned port = (unsigned) b->d->cfg.building_port;
        bool has_port = addr_opt && strrchr(addr_opt, ':') &&
                        (addr_opt[0] == '[' ? strrchr(addr_opt, ':') > strchr(addr_opt, ']')
                                            : strchr(addr_opt, ':') == strrchr(addr_opt, ':'));
        if (addr_opt && *addr_opt && has_port)
                snprintf(address, sizeof address, "%s", addr_opt);
        else if (addr_opt && *addr_opt)
                snprintf(address, sizeof address, "%s:%u", addr_opt, port);
        else if (b->d->cfg.building_address && *b->d->cfg.building_address)
                snprintf(address, sizeof address, "%s:%u", b->d->cfg.building_address, port);
        else
                local_address(c.fd, port, address, sizeof address);
        char secret[sodium_base64_ENCODED_LEN(OSM_TOKEN_SECRET_BYTES, VARIANT)];
        sodium_bin2base64(secret, sizeof secret, t.secret, sizeof t.secret, VARIANT);
        osm_token_wipe(&t);
        json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:s}", "op", "join", "secret", secret, "building", t.building,
                                "name", b->d->cfg.name, "address", address);
        sodium_memzero(secret, sizeof secret);
        char *s = json_dumps(req, JSON_COMPACT);
        json_t *sv = json_object_get(req, "secret");
        sodium_memzero((char *) json_string_value(sv), json_string_length(sv));
        json_decref(req);
        json_t *rep = NULL;
        r = -ENOMEM;
        if (s) {
                size_t n = strlen(s);
                s[n] = '\n';   /* json_dumps left room for the NUL: replace it by the newline */
                r = osm_btls_write(&c, s, n + 1, osm_now_mono_us() + 5000000);
                sodium_memzero(s, n);
                free(s);
        }
        if (r == 0)
                r = read_json_line(&c, &rep, JOIN_STEP_MS);
        if (r < 0) {
                join_fail(j, OSM_E_BUILDING_UNREACHABLE, "the inviter did not answer: %s", strerror(-r));
                goto out;
        }
        if (json_object_get(rep, "error")) {
                const char *reason = json_string_value(json_object_get(rep, "reason"));
                j->error = OSM_E_BUILDING_TOKEN_REFUSED;
                j->out = json_pack("{s:s}", "reason", reason ? reason : "refused");
                snprintf(j->msg, sizeof j->msg, "the inviter refused: %s",
                         json_string_value(json_object_get(rep, "message")) ?: "no reason given");
                goto out;
        }
        json_int_t node_id = json_integer_value(json_object_get(rep, "node_id"));
        const char *bid = json_string_value(json_object_get(rep, "building"));
        const char *bname = json_string_value(json_object_get(rep, "name"));
        if (node_id < 2 || !bid || strcmp(bid, t.building) != 0 || !bname || strlen(bname) >= sizeof b->name) {
                join_fail(j, OSM_E_INTERNAL_ERROR, "%s", "the inviter's answer is not a join answer");
                goto out;
        }
        snprintf(b->building_id, sizeof b->building_id, "%s", bid);
        snprintf(b->name, sizeof b->name, "%s", bname);
        snprintf(b->address, sizeof b->address, "%s", address);
        b->node_id = (uint64_t) node_id;
        json_decref(b->cache);
        b->cache = json_pack("{s:O}", "members", json_object_get(rep, "members"));
        osm_error err = {};
        if ((r = bld_save_state(b)) < 0 || (r = bld_activate(b, &err)) < 0) {
                join_fail(j, OSM_E_INTERNAL_ERROR, "cannot start the building here: %s",
                          r == -EIO ? err.message : strerror(-r));
                bld_deactivate(b, true);
                goto out;
        }
        static const char ready[] = "{\"op\":\"ready\"}\n";
        json_decref(rep);
        rep = NULL;
        r = osm_btls_write(&c, ready, sizeof ready - 1, osm_now_mono_us() + 5000000);
        if (r == 0)
                r = read_json_line(&c, &rep, JOIN_STEP_MS * 2);
        if (r < 0 || json_object_get(rep, "error")) {
                join_fail(j, OSM_E_BUILDING_UNREACHABLE, "the inviter could not add this room: %s",
                          r < 0 ? strerror(-r) : json_string_value(json_object_get(rep, "message")) ?: "?");
                bld_deactivate(b, true);
                goto out;
        }
        j->out = json_pack("{s:s,s:s,s:I,s:s}", "building", b->building_id, "name", b->name, "members",
                           (json_int_t) json_array_size(json_object_get(b->cache, "members")), "role",
                           json_string_value(json_object_get(rep, "role")) ?: "spare");
        log_info("building: joined \"%s\" (%s) as %s", b->name, b->building_id, address);
out:
        json_decref(rep);
        osm_btls_close(&c);
        osm_btls_free(&tls);
}
