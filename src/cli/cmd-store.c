/* cmd-store.c: records: put (one, or JSON Lines with --batch), query, collections, retention. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/jsonl.h"

#define BATCH_RECORDS 1000                 /* records per PutBatch message */
#define BATCH_BYTES   (768u * 1024u)       /* and bytes of JSON, well under the 1 MiB message cap */
#define ONE_MAX       (1024u * 1024u)      /* a single record read from stdin */
/* The one rule for put and put --batch (and the daemon's, for every writer): a record is a
 * JSON object, so that fields can be added later and null, a bare number or a string do not
 * slip in by a quoting mistake of the shell. */
#define NOT_OBJECT    "the record must be a JSON object, e.g. '{\"t\":20.5}'"

/* "7d", "36h", "90s", "1500ms": the largest unit that divides evenly. */
static const char *format_duration(uint64_t us, char *buf, size_t size) {
        static const struct { uint64_t mul; const char *suf; } units[] = {
                { 86400000000ull, "d" }, { 3600000000ull, "h" }, { 60000000ull, "m" },
                { 1000000ull, "s" }, { 1000ull, "ms" }, { 1ull, "us" },
        };
        for (size_t i = 0; i < OSM_ARRAY_SIZE(units); i++)
                if (us % units[i].mul == 0) {
                        snprintf(buf, size, "%" PRIu64 "%s", us / units[i].mul, units[i].suf);
                        return buf;
                }
        snprintf(buf, size, "%" PRIu64 "us", us);
        return buf;
}

/* ---- put ---- */

/* put --batch keeps chunks in flight on several connections: while the daemon commits one,
 * the next is parsed, sent and queued, so they share a group commit. Each chunk carries an
 * increasing time, so queries return the records in line order whichever lands first.
 * A chunk is the call's parameters as text: each line is checked here (to say which line
 * is wrong), then goes as it was read, not serialized again from a tree. Chunks are sent
 * one after the other in line order (each is written whole before the next starts), so
 * that the daemon takes them in that order: a limit reached (the budget) then stops the
 * batch at a line, with the lines before it stored. */
#define IN_FLIGHT 4

typedef struct chunk {
        struct chunk *next;
        osm_jbuf params;               /* {"collection":…,"records":[the lines…],"time":…} */
        size_t lines[BATCH_RECORDS];   /* the input line of each record */
        size_t n;
        size_t seq;                    /* 0, 1, 2…: the chunk's place in line order */
        int64_t time;
        bool sent, finished;
        int r;
        osm_client_error err;
        json_t *reply;
} chunk;

typedef struct batch_ctx {
        const char *coll;
        const char *socket;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        chunk *head, *tail;            /* in line order; finished ones leave from the head */
        size_t n_chunks;               /* made so far */
        size_t next_send;              /* seq of the chunk whose turn it is to be sent */
        bool closing;
} batch_ctx;

static void *sender_main(void *arg) {
        batch_ctx *b = arg;
        osm_client *c = NULL;
        int cr = osm_client_connect(b->socket, &c);
        for (;;) {
                pthread_mutex_lock(&b->lock);
                chunk *k = NULL;
                while (!k) {
                        for (chunk *i = b->head; i; i = i->next)
                                if (!i->sent) {
                                        k = i;
                                        break;
                                }
                        if (k || b->closing)
                                break;
                        pthread_cond_wait(&b->cond, &b->lock);
                }
                if (k)
                        k->sent = true;
                pthread_mutex_unlock(&b->lock);
                if (!k)
                        break;
                /* wait for its turn: the chunks before it are written whole */
                pthread_mutex_lock(&b->lock);
                while (b->next_send != k->seq)
                        pthread_cond_wait(&b->cond, &b->lock);
                pthread_mutex_unlock(&b->lock);
                bool sent = false;
                if (cr < 0) {
                        k->r = cr;
                        snprintf(k->err.message, sizeof(k->err.message), "cannot connect to %s: %s", b->socket,
                                 strerror(-cr));
                } else if (k->params.failed)
                        k->r = -ENOMEM;
                else
                        sent = (k->r = osm_client_send_raw(c, OSM_M_STORE_PUT_BATCH, k->params.p, k->params.len,
                                                           &k->err)) >= 0;
                pthread_mutex_lock(&b->lock);
                b->next_send++;
                pthread_cond_broadcast(&b->cond);
                pthread_mutex_unlock(&b->lock);
                if (sent)
                        k->r = osm_client_read_reply(c, &k->reply, &k->err);
                pthread_mutex_lock(&b->lock);
                k->finished = true;
                pthread_cond_broadcast(&b->cond);
                pthread_mutex_unlock(&b->lock);
        }
        osm_client_free(c);
        return NULL;
}

static void chunk_free(chunk *k) {
        free(k->params.p);
        json_decref(k->reply);
        osm_client_error_clear(&k->err);
        free(k);
}

/* at: the time of every record (--time), or 0 for now; chunks after the first get one
 * microsecond more each, so that queries keep the line order. */
static int put_batch(osm_ctl *ctl, const char *coll, int64_t at) {
        osm_jsonl reader;
        batch_ctx b = { .coll = coll, .socket = ctl->socket };
        pthread_t threads[IN_FLIGHT];
        size_t n_threads = 0;
        uint64_t stored = 0, stored_after = 0;
        char first[80] = "", last[80] = "", msg[600] = "";
        size_t in_flight = 0;
        int64_t last_time = 0;
        chunk *cur = NULL;
        size_t chunk_bytes = 0;
        bool failed = false;

        if (osm_jsonl_init(&reader, stdin, ONE_MAX) < 0)
                return osm_ctl_fail("put: out of memory");
        pthread_mutex_init(&b.lock, NULL);
        pthread_cond_init(&b.cond, NULL);
        for (; n_threads < IN_FLIGHT; n_threads++)
                if (pthread_create(&threads[n_threads], NULL, sender_main, &b) != 0)
                        break;
        if (n_threads == 0) {
                osm_jsonl_done(&reader);
                return osm_ctl_fail("put: cannot start a thread");
        }

        for (;;) {
                bool is_object = false;   /* the line is only checked, then sent as text */
                osm_error why;   /* read only after a failure, which fills it */
                int r = failed ? 0 : osm_jsonl_next_checked(&reader, &is_object, &why);
                if (r == 1 && !is_object) {
                        /* as a line that is not JSON: what came before it is sent, then stop */
                        r = osm_error_set(&why, -EINVAL, 0, "%s", NOT_OBJECT);
                }
                bool flush = cur && (r <= 0 || cur->n >= BATCH_RECORDS || chunk_bytes + reader.last_len > BATCH_BYTES);
                if (flush) {
                        /* a strictly increasing time per chunk keeps the line order in queries */
                        int64_t now = at ? at : osm_now_real_us();
                        cur->time = now > last_time ? now : last_time + 1;
                        last_time = cur->time;
                        osm_jbuf_put(&cur->params, "],\"time\":", 9);
                        osm_jbuf_int(&cur->params, cur->time);
                        osm_jbuf_put(&cur->params, "}", 1);
                        pthread_mutex_lock(&b.lock);
                        cur->seq = b.n_chunks++;
                        if (b.tail)
                                b.tail->next = cur;
                        else
                                b.head = cur;
                        b.tail = cur;
                        in_flight++;
                        pthread_cond_broadcast(&b.cond);
                        pthread_mutex_unlock(&b.lock);
                        cur = NULL;
                        chunk_bytes = 0;
                }
                /* take finished chunks in line order; wait while too many are in flight, and at the end */
                pthread_mutex_lock(&b.lock);
                for (;;) {
                        while (b.head && b.head->finished) {
                                chunk *k = b.head;
                                b.head = k->next;
                                if (!b.head)
                                        b.tail = NULL;
                                in_flight--;
                                if (k->r < 0 && !failed) {
                                        failed = true;
                                        json_t *p = k->err.parameters;
                                        json_t *idx = json_object_get(p, "index");
                                        size_t ok = (size_t) json_integer_value(json_object_get(p, "stored"));
                                        /* the first record not stored: the one named, else the one after those stored */
                                        size_t bad = idx ? (size_t) json_integer_value(idx) : ok;
                                        char text[400];
                                        osm_ctl_error_text(OSM_M_STORE_PUT_BATCH, &k->err, text, sizeof text);
                                        if (k->err.name && bad < k->n)
                                                snprintf(msg, sizeof(msg), "put: line %zu: %s; %" PRIu64
                                                         " records before it are stored", k->lines[bad], text, stored + ok);
                                        else
                                                snprintf(msg, sizeof(msg), "put: %s; %" PRIu64 " records before line %zu "
                                                         "are stored (those from it on may or may not be)",
                                                         text, stored, k->lines[0]);
                                } else if (k->r >= 0 && failed)
                                        stored_after += (uint64_t) json_integer_value(json_object_get(k->reply, "stored"));
                                else if (k->r >= 0) {
                                        stored += (uint64_t) json_integer_value(json_object_get(k->reply, "stored"));
                                        if (!first[0])
                                                snprintf(first, sizeof(first), "%s",
                                                         json_string_value(json_object_get(k->reply, "first")));
                                        snprintf(last, sizeof(last), "%s", json_string_value(json_object_get(k->reply, "last")));
                                }
                                chunk_free(k);
                        }
                        bool end = r <= 0 || failed;
                        if ((end && in_flight == 0) || (!end && in_flight < IN_FLIGHT))
                                break;
                        pthread_cond_wait(&b.cond, &b.lock);
                }
                pthread_mutex_unlock(&b.lock);
                if (r < 0 && !failed) {
                        failed = true;
                        snprintf(msg, sizeof(msg), "put: line %zu: %s; %" PRIu64 " records before it are stored",
                                 reader.line, why.message, stored);
                }
                if (r <= 0 || failed)
                        break;   /* a line read, but a chunk before it failed: not sent */
                if (!cur) {
                        cur = calloc(1, sizeof(*cur));
                        if (cur) {
                                osm_jbuf_put(&cur->params, "{\"collection\":", 14);
                                osm_jbuf_string(&cur->params, coll);
                                osm_jbuf_put(&cur->params, ",\"records\":[", 12);
                        }
                        if (!cur || cur->params.failed) {
                                if (cur)
                                        chunk_free(cur);
                                cur = NULL;
                                failed = true;
                                snprintf(msg, sizeof(msg), "put: out of memory; %" PRIu64 " records are stored", stored);
                                break;
                        }
                }
                /* the line as read, without its end of line: JSON the parse above accepted */
                size_t len = reader.last_len;
                while (len > 0 && (reader.buf[len - 1] == '\n' || reader.buf[len - 1] == '\r'))
                        len--;
                if (cur->n)
                        osm_jbuf_put(&cur->params, ",", 1);
                osm_jbuf_put(&cur->params, reader.buf, len);
                cur->lines[cur->n++] = reader.line;
                chunk_bytes += reader.last_len + 8;
        }
        pthread_mutex_lock(&b.lock);
        b.closing = true;
        pthread_cond_broadcast(&b.cond);
        pthread_mutex_unlock(&b.lock);
        for (size_t i = 0; i < n_threads; i++)
                pthread_join(threads[i], NULL);
        if (cur)
                chunk_free(cur);
        pthread_mutex_destroy(&b.lock);
        pthread_cond_destroy(&b.cond);
        osm_jsonl_done(&reader);

        if (failed) {
                if (stored_after)
                        osm_ctl_fail("%s; %" PRIu64 " records after it, already sent, are stored too", msg, stored_after);
                else
                        osm_ctl_fail("%s", msg);
                return 1;
        }
        if (ctl->json) {
                _cleanup_json_ json_t *o = json_pack("{s:s, s:I}", "collection", coll, "stored", (json_int_t) stored);
                if (stored) {
                        json_object_set_new(o, "first", json_string(first));
                        json_object_set_new(o, "last", json_string(last));
                }
                osm_print_json(o);
        } else
                printf("stored %" PRIu64 " record%s in %s\n", stored, stored == 1 ? "" : "s", coll);
        return 0;
}

int cmd_put(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "batch", no_argument, NULL, 'b' },
                { "time", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool batch = false;
        int64_t at = 0;
        int c;
        while ((c = getopt_long(argc, argv, "bt:h", opts, NULL)) != -1) {
                switch (c) {
                case 'b': batch = true; break;
                case 't':
                        if (osm_ctl_parse_time("put", "--time", optarg, &at))
                                return 2;
                        if (at <= 0)
                                return osm_ctl_usage_error("put: --time '%s': before 1970", optarg);
                        break;
                case 'h':
                        osm_ctl_usage("put", "COLLECTION [JSON] [--time T] | COLLECTION --batch [--time T]",
                                "Store one record (JSON from the argument, or stdin), or with --batch one record per\n"
                                "line of JSON Lines from stdin, streamed in chunks. put returns once the records are\n"
                                "durable: committed and synced, they survive a crash or a power cut. A bad line stops\n"
                                "the batch with its line number; the records before it stay stored.",
                                "  -b, --batch    JSON Lines from stdin (blank lines are skipped)\n"
                                "  -t, --time T   the record's time instead of now, to import history\n"
                                "                 (" OSM_CTL_TIME_FORMS ");\n"
                                "                 with --batch every record gets T (+1 us a chunk of 1000)\n"
                                "A record is a JSON object, e.g. '{\"t\":20.5}'.\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind >= argc)
                return osm_ctl_usage_error("put: missing COLLECTION (osmosectl put --help)");
        const char *coll = argv[optind];
        if (!osm_name_valid(coll, 128, true))
                return osm_ctl_usage_error("put: invalid collection name '%s': 1-128 bytes of [A-Za-z0-9._-] segments separated by '/'",
                                    coll);
        if (batch) {
                if (optind + 1 < argc)
                        return osm_ctl_usage_error("put: --batch reads stdin; unexpected argument '%s'", argv[optind + 1]);
                return put_batch(ctl, coll, at);
        }
        if (optind + 2 < argc)
                return osm_ctl_usage_error("put: unexpected argument '%s' (quote the JSON)", argv[optind + 2]);

        json_error_t e;
        _cleanup_json_ json_t *body = NULL;
        if (optind + 1 < argc) {
                body = json_loads(argv[optind + 1], JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
        } else {
                _cleanup_free_ char *buf = malloc(ONE_MAX + 1);
                size_t n = buf ? fread(buf, 1, ONE_MAX + 1, stdin) : 0;
                if (!buf)
                        return osm_ctl_fail("put: out of memory");
                if (ferror(stdin))
                        return osm_ctl_fail("put: cannot read stdin");
                if (n > ONE_MAX)
                        return osm_ctl_fail("put: the record on stdin is larger than 1 MiB");
                body = json_loadb(buf, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
        }
        if (!body)
                return osm_ctl_fail("put: invalid JSON at line %d, column %d: %s", e.line, e.column, e.text);
        if (!json_is_object(body))
                return osm_ctl_fail("put: %s", NOT_OBJECT);

        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_store_put(coll, body, &(osm_req_store_put_opt){ .time = OSM_IF(at, at) }),
                            &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("%s\n", json_string_value(json_object_get(rep, "id")));
        return 0;
}

/* ---- query ---- */

#define RECENT 1024   /* ids of the records printed last, for --follow to skip what Watch repeats */

typedef struct recent_ids {
        char ids[RECENT][48];
        size_t n;
} recent_ids;

static void recent_add(recent_ids *r, const char *id) {
        if (r && id)
                snprintf(r->ids[r->n++ % RECENT], sizeof r->ids[0], "%s", id);
}

static bool recent_has(const recent_ids *r, const char *id) {
        for (size_t i = 0; id && i < OSM_MIN(r->n, (size_t) RECENT); i++)
                if (strcmp(r->ids[i], id) == 0)
                        return true;
        return false;
}

typedef struct follow_state {
        osm_ctl *ctl;
        recent_ids *recent;
} follow_state;

/* One record of the Watch stream: a JSON line, or a line of the table's columns. */
static int follow_record(json_t *params, bool continues, void *userdata) {
        follow_state *fs = userdata;
        json_t *rec = json_object_get(params, "record");
        const char *id = json_string_value(json_object_get(rec, "id"));
        if (!rec || recent_has(fs->recent, id))
                return 0;
        if (fs->ctl->json)
                osm_print_json_line(rec);
        else {
                char tb[64];
                size_t blen;
                _cleanup_free_ char *body = osm_vl_dump(json_object_get(rec, "body"), &blen);
                osm_table *t = osm_table_new("", "", "", "", NULL);
                osm_table_add(t, osm_format_time(json_integer_value(json_object_get(rec, "time")), tb, sizeof(tb)),
                              id, json_string_value(json_object_get(rec, "writer")), body);
                osm_table_print_rows(t);
        }
        fflush(stdout);
        return ferror(stdout) ? -EPIPE : 0;
}

static void print_record(osm_ctl *ctl, osm_table *t, json_t *rec) {
        if (ctl->json) {
                osm_print_json_line(rec);
                return;
        }
        char tb[64];
        size_t blen;
        _cleanup_free_ char *body = osm_vl_dump(json_object_get(rec, "body"), &blen);
        osm_table_add(t, osm_format_time(json_integer_value(json_object_get(rec, "time")), tb, sizeof(tb)),
                      json_string_value(json_object_get(rec, "id")),
                      json_string_value(json_object_get(rec, "writer")), body);
}

int cmd_query(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "since", required_argument, NULL, 's' },
                { "until", required_argument, NULL, 'u' },
                { "limit", required_argument, NULL, 'n' },
                { "reverse", no_argument, NULL, 'r' },
                { "follow", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int64_t since = INT64_MIN, until = INT64_MAX;
        uint64_t limit = UINT64_MAX;
        bool reverse = false, follow = false;
        int c;
        while ((c = getopt_long(argc, argv, "s:u:n:rfh", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        if (osm_ctl_parse_time("query", "--since", optarg, &since))
                                return 2;
                        break;
                case 'u':
                        if (osm_ctl_parse_time("query", "--until", optarg, &until))
                                return 2;
                        break;
                case 'f': follow = true; break;
                case 'n':
                        if (osm_parse_u64(optarg, &limit) < 0 || limit == 0)
                                return osm_ctl_usage_error("query: --limit '%s': expected a positive number", optarg);
                        break;
                case 'r': reverse = true; break;
                case 'h':
                        osm_ctl_usage("query", "COLLECTION [--since T] [--until T] [--limit N] [--reverse] [--follow]",
                                "Print the records of a collection in [since, until), oldest first. With --json, one\n"
                                "record per line (JSON Lines). Times T: " OSM_CTL_TIME_FORMS ".",
                                "  -s, --since T   from this time on (inclusive)\n"
                                "  -u, --until T   before this time (exclusive)\n"
                                "  -n, --limit N   at most N records\n"
                                "  -r, --reverse   newest first\n"
                                "  -f, --follow    then print new records as they are committed, until interrupted\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind >= argc)
                return osm_ctl_usage_error("query: missing COLLECTION (osmosectl query --help)");
        if (optind + 1 < argc)
                return osm_ctl_usage_error("query: unexpected argument '%s'", argv[optind + 1]);
        const char *coll = argv[optind];
        if (!osm_name_valid(coll, 128, true))
                return osm_ctl_usage_error("query: invalid collection name '%s'", coll);
        if (since > until)
                return osm_ctl_usage_error("query: --since is after --until");
        if (follow && (reverse || until != INT64_MAX))
                return osm_ctl_usage_error("query: --follow prints new records as they come: not with --reverse or --until");

        /* --follow: the Watch starts before the query, so that nothing committed in between is
         * missed; a record both return is printed once (the ids printed last are kept). */
        _cleanup_client_ osm_client *watch = NULL;
        if (follow) {
                osm_client_error err = { 0 };
                int r = osm_client_connect(ctl->socket, &watch);
                _cleanup_request_ osm_vl_request wreq = osm_req_store_watch(coll);
                if (r == 0 && (wreq.failed || osm_client_start_more(watch, wreq.method, wreq.params, &err) < 0)) {
                        if (wreq.failed)
                                return osm_ctl_fail("query: out of memory");
                        osm_ctl_call_failed(OSM_M_STORE_WATCH, &err);
                        osm_client_error_clear(&err);
                        return 1;
                }
                /* One round trip on the other connection: the daemon has read the Watch
                 * request, sent before, by the time it answers (one event loop, level-triggered). */
                if (r < 0 || osm_ctl_request(ctl, osm_req_varlink_get_info(), NULL))
                        return r < 0 ? osm_ctl_fail("cannot connect to %s: %s", ctl->socket, strerror(-r)) : 1;
        }

        osm_table *t = NULL;
        _cleanup_free_ char *cursor = NULL;
        _cleanup_free_ recent_ids *recent = follow ? calloc(1, sizeof(recent_ids)) : NULL;
        if (follow && !recent)
                return osm_ctl_fail("query: out of memory");
        uint64_t got = 0;
        int rc = 0;
        do {
                osm_req_store_query_opt q = {
                        .since = OSM_IF(since != INT64_MIN, since),
                        .until = OSM_IF(until != INT64_MAX, until),
                        .limit = OSM_IF(limit != UINT64_MAX, (int64_t) OSM_MIN(limit - got, (uint64_t) 1000)),
                        .reverse = OSM_SOME(reverse),
                        .cursor = cursor,
                };
                _cleanup_json_ json_t *rep = NULL;
                if (osm_ctl_request(ctl, osm_req_store_query(coll, &q), &rep)) {
                        rc = 1;
                        break;
                }
                if (!ctl->json && !t)
                        t = osm_table_new("TIME", "ID", "WRITER", "BODY", NULL);
                size_t i;
                json_t *rec;
                json_array_foreach(json_object_get(rep, "records"), i, rec) {
                        print_record(ctl, t, rec);
                        recent_add(recent, json_string_value(json_object_get(rec, "id")));
                        got++;
                }
                free(cursor);
                const char *next = json_string_value(json_object_get(rep, "cursor"));
                cursor = next ? strdup(next) : NULL;
        } while (cursor && got < limit);
        /* a failure after some pages still prints what came, then the error stands */
        if (t)
                osm_table_print(t);
        if (!follow || rc)
                return rc;
        fflush(stdout);
        follow_state fs = { .ctl = ctl, .recent = recent };
        osm_client_error err = { 0 };
        int r = osm_client_read_more(watch, follow_record, &fs, &err);
        if (r == -EPIPE)
                return 0;
        if (r < 0) {
                osm_ctl_call_failed(OSM_M_STORE_WATCH, &err);
                osm_client_error_clear(&err);
                return 1;
        }
        return 0;
}

/* ---- collections and retention ---- */

static void format_retention(json_t *c, char *buf, size_t size) {
        char a[32], b[32];
        uint64_t age = (uint64_t) json_integer_value(json_object_get(c, "max_age"));
        uint64_t recs = (uint64_t) json_integer_value(json_object_get(c, "max_records"));
        uint64_t bytes = (uint64_t) json_integer_value(json_object_get(c, "max_bytes"));
        size_t n = 0;
        buf[0] = 0;
        if (age)
                n += (size_t) snprintf(buf + n, size - n, "%s%s", n ? ", " : "", format_duration(age, a, sizeof(a)));
        if (recs && n < size)
                n += (size_t) snprintf(buf + n, size - n, "%s%" PRIu64 " records", n ? ", " : "", recs);
        if (bytes && n < size)
                n += (size_t) snprintf(buf + n, size - n, "%s%s", n ? ", " : "", osm_format_bytes(bytes, b, sizeof(b)));
        if (!buf[0])
                snprintf(buf, size, "keep all");
}

int cmd_collections(osm_ctl *ctl, int argc, char **argv) {
        if (osm_ctl_wants_help(argc, argv)) {
                osm_ctl_usage("collections", "", "List the collections with their records, bytes, time span and retention.", NULL);
                return 0;
        }
        if (argc > 1)
                return osm_ctl_usage_error("collections: unexpected argument '%s'", argv[1]);
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_store_collections(), &rep))
                return 1;
        if (ctl->json) {
                osm_print_json(rep);
                return 0;
        }
        osm_table *t = osm_table_new("NAME", "RECORDS", "BYTES", "OLDEST", "NEWEST", "RETENTION", NULL);
        size_t i;
        json_t *col;
        json_array_foreach(json_object_get(rep, "collections"), i, col) {
                char n[32], b[32], o[64], w[64], ret[128];
                snprintf(n, sizeof(n), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(col, "records")));
                osm_format_bytes((uint64_t) json_integer_value(json_object_get(col, "bytes")), b, sizeof(b));
                json_t *old = json_object_get(col, "oldest"), *new = json_object_get(col, "newest");
                format_retention(col, ret, sizeof(ret));
                osm_table_add(t, json_string_value(json_object_get(col, "name")), n, b,
                              old ? osm_format_time(json_integer_value(old), o, sizeof(o)) : NULL,
                              new ? osm_format_time(json_integer_value(new), w, sizeof(w)) : NULL, ret);
        }
        osm_table_print(t);
        return 0;
}

int cmd_retention(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "max-age", required_argument, NULL, 'a' },
                { "max-records", required_argument, NULL, 'n' },
                { "max-bytes", required_argument, NULL, 'b' },
                { "create", no_argument, NULL, 'C' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint64_t age = 0, recs = 0, bytes = 0;
        bool set_age = false, set_recs = false, set_bytes = false, create = false;
        int c;
        while ((c = getopt_long(argc, argv, "a:n:b:h", opts, NULL)) != -1) {
                switch (c) {
                case 'a':
                        if (osm_parse_duration(optarg, &age) < 0 || age > INT64_MAX)
                                return osm_ctl_usage_error("retention: --max-age '%s': expected a duration like 7d, 12h, 30m (0: no limit)", optarg);
                        set_age = true;
                        break;
                case 'n':
                        if (osm_parse_u64(optarg, &recs) < 0 || recs > INT64_MAX)
                                return osm_ctl_usage_error("retention: --max-records '%s': expected a number (0: no limit)", optarg);
                        set_recs = true;
                        break;
                case 'b':
                        if (osm_parse_size(optarg, &bytes) < 0 || bytes > INT64_MAX)
                                return osm_ctl_usage_error("retention: --max-bytes '%s': expected a size like 64M, 1G (0: no limit)", optarg);
                        set_bytes = true;
                        break;
                case 'C': create = true; break;
                case 'h':
                        osm_ctl_usage("retention", "COLLECTION [--max-age D] [--max-records N] [--max-bytes B] [--create]",
                                "Show or set how much of a collection is kept; the oldest records beyond any limit are\n"
                                "deleted in the background, a little at a time. Limits not given stay as they are; 0\n"
                                "removes a limit. A collection that does not exist is an error, unless --create.",
                                "  --max-age D       drop records older than D (7d, 12h, 30m)\n"
                                "  --max-records N   keep at most N records\n"
                                "  --max-bytes B     keep at most B bytes of record bodies (64M, 1G)\n"
                                "  --create          make the collection if it does not exist yet\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind >= argc)
                return osm_ctl_usage_error("retention: missing COLLECTION (osmosectl retention --help)");
        if (optind + 1 < argc)
                return osm_ctl_usage_error("retention: unexpected argument '%s'", argv[optind + 1]);
        const char *coll = argv[optind];
        if (!osm_name_valid(coll, 128, true))
                return osm_ctl_usage_error("retention: invalid collection name '%s'", coll);

        /* Limits not given keep their current value. */
        _cleanup_json_ json_t *cols = NULL;
        if (osm_ctl_request(ctl, osm_req_store_collections(), &cols))
                return 1;
        json_t *cur = NULL, *col;
        size_t i;
        json_array_foreach(json_object_get(cols, "collections"), i, col)
                if (strcmp(json_string_value(json_object_get(col, "name")), coll) == 0)
                        cur = col;
        if (!set_age && !set_recs && !set_bytes) {
                if (!cur)
                        return osm_ctl_fail("retention: no collection '%s'", coll);
                if (ctl->json) {
                        _cleanup_json_ json_t *o = json_pack("{s:s, s:O, s:O, s:O}", "collection", coll,
                                "max_age", json_object_get(cur, "max_age"), "max_records", json_object_get(cur, "max_records"),
                                "max_bytes", json_object_get(cur, "max_bytes"));
                        osm_print_json(o);
                } else {
                        char ret[128];
                        format_retention(cur, ret, sizeof(ret));
                        printf("%s: %s\n", coll, ret);
                }
                return 0;
        }
        if (cur) {
                if (!set_age)
                        age = (uint64_t) json_integer_value(json_object_get(cur, "max_age"));
                if (!set_recs)
                        recs = (uint64_t) json_integer_value(json_object_get(cur, "max_records"));
                if (!set_bytes)
                        bytes = (uint64_t) json_integer_value(json_object_get(cur, "max_bytes"));
        }
        osm_req_store_set_retention_opt rp = {
                .max_age = OSM_SOME((int64_t) age), .max_records = OSM_SOME((int64_t) recs),
                .max_bytes = OSM_SOME((int64_t) bytes), .create = OSM_SOME(create),
        };
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_store_set_retention(coll, &rp), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else {
                char ret[128];
                format_retention(rep, ret, sizeof(ret));
                printf("%s: %s\n", coll, ret);
        }
        return 0;
}

/* ---- delete (erasure) ---- */

int cmd_delete(osm_ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = {
                { "until", required_argument, NULL, 'u' },
                { "where-writer", required_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *writer = NULL;
        int64_t until = 0;
        bool have_until = false;
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'u':
                        if (osm_parse_time(optarg, osm_now_real_us(), &until) < 0)
                                return osm_ctl_usage_error("delete: --until '%s': expected a time such as -30d, "
                                                           "2026-12-02T00:00:00Z", optarg);
                        have_until = true;
                        break;
                case 'w': writer = optarg; break;
                case 'h':
                        osm_ctl_usage("delete", "COLLECTION [--until T] [--where-writer W]",
                                "Erase records of a collection, for good: all of them, those before T, and/or those\n"
                                "written by W (user:NAME, workload:NAME, peer:ID, remote:NAME). Their bytes are\n"
                                "overwritten in the database and its write-ahead log before this returns; the erasure\n"
                                "is recorded (what, how many, when). The collection and its retention stay.",
                                "  --until T          only records older than T (-30d, 2026-12-02, RFC 3339)\n"
                                "  --where-writer W   only records written by W\n");
                        return 0;
                default: return 2;
                }
        }
        if (optind != argc - 1)
                return osm_ctl_usage_error("delete: usage: osmosectl delete COLLECTION [--until T] [--where-writer W]");
        const char *coll = argv[optind];
        if (!osm_name_valid(coll, 128, true))
                return osm_ctl_usage_error("delete: invalid collection name '%s'", coll);
        osm_req_store_delete_opt del = { .until = OSM_IF(have_until, until), .writer = writer };
        _cleanup_json_ json_t *rep = NULL;
        if (osm_ctl_request(ctl, osm_req_store_delete(coll, &del), &rep))
                return 1;
        if (ctl->json)
                osm_print_json(rep);
        else
                printf("%s: erased %lld records\n", coll, (long long) json_integer_value(json_object_get(rep, "deleted")));
        return 0;
}
