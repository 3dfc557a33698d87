/* store-put.c: checking puts and queueing them for the writer. */
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/store/store-internal.h"
#include "osmose/varlink.h"
#include "daemon/store/store-params.h"

#define MAX_QUEUED_OPS    200000        /* back-pressure: refuse puts beyond this queue length */

/* ---- puts ---- */

static bool writer_valid(const char *w) {
        size_t n = strnlen(w, OSM_STORE_MAX_WRITER + 1);
        if (n == 0 || n > OSM_STORE_MAX_WRITER)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) w[i] < 0x20 || w[i] == 0x7f)
                        return false;
        return true;
}

int osm_store_check_put(osm_store *s, const osm_store_put_req *req, size_t *body_len, const char **why) {
        const char *dummy;
        if (!why)
                why = &dummy;
        if (!req->collection || !osm_name_valid(req->collection, OSM_STORE_MAX_NAME, true)) {
                *why = "invalid collection name: 1-128 bytes of [A-Za-z0-9._-] segments separated by '/'";
                return -EINVAL;
        }
        if (!req->writer || !writer_valid(req->writer)) {
                *why = "invalid writer";
                return -EINVAL;
        }
        if (req->id && !osm_store_id_valid(req->id)) {
                *why = "invalid record id: expected <16 hex digits>-<sequence>";
                return -EINVAL;
        }
        if (!json_is_object(req->body)) {
                /* one rule for Put and PutBatch, osmosectl and workloads: the Varlink type is object */
                *why = "the record must be a JSON object";
                return -EINVAL;
        }
        if (req->time_us < 0 || req->time_us > INT64_C(253402300799999999)) {
                *why = "time out of range";
                return -ERANGE;
        }
        uint64_t max = atomic_load(&s->max_record_size);
        size_t n = *body_len;
        if (n == 0) {
                /* jansson can size the compact text without building it */
                n = json_dumpb(req->body, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
                if (n == 0) {
                        *why = "the body cannot be encoded as JSON";
                        return -EINVAL;
                }
        }
        if (n > max) {
                *why = "record too large";
                return -EMSGSIZE;
        }
        uint64_t budget = atomic_load(&s->db_budget);
        if (budget > 0 && atomic_load(&s->used_bytes) + n > budget) {
                *why = "database budget reached";
                return -EDQUOT;
        }
        *body_len = n;
        return 0;
}

/* Check req and build its op (not queued). */
static int put_op_new(osm_store *s, const osm_store_put_req *req, osm_store_put_cb cb, void *userdata,
                      const char **why, store_op **out) {
        if (s->closing) {
                *why = "the store is closing";
                return -ECANCELED;
        }
        /* encode once; the checks use its length */
        size_t body_len = 0;
        _cleanup_free_ char *text = req->body ? osm_vl_dump(req->body, &body_len) : NULL;
        if (text)
                body_len--;   /* osm_vl_dump counts the NUL */
        if (!text && req->body) {
                *why = "the body cannot be encoded as JSON";
                return -EINVAL;
        }
        int r = osm_store_check_put(s, req, &body_len, why);
        if (r < 0)
                return r;
        if (s->q_len > MAX_QUEUED_OPS) {   /* racy read is fine: a soft bound */
                *why = "too many writes queued";
                return -EBUSY;
        }
        size_t lc = strlen(req->collection) + 1, lw = strlen(req->writer) + 1;
        size_t li = req->id ? strlen(req->id) + 1 : 0;
        store_op *op = store_op_new(OP_PUT, lc + lw + li + body_len + 1);
        if (!op) {
                *why = "out of memory";
                return -ENOMEM;
        }
        char *p = op->buf;
        op->coll = memcpy(p, req->collection, lc);
        p += lc;
        op->writer = memcpy(p, req->writer, lw);
        p += lw;
        if (req->id) {
                op->rid = memcpy(p, req->id, li);
                p += li;
        }
        memcpy(p, text, body_len + 1);
        op->body = p;
        op->body_len = body_len;
        op->ts = req->time_us ? req->time_us : osm_now_real_us();
        op->put_cb = cb;
        op->userdata = userdata;
        *out = op;
        return 0;
}

int osm_store_put(osm_store *s, const osm_store_put_req *req, osm_store_put_cb cb, void *userdata,
                  const char **why) {
        const char *dummy;
        store_op *op;
        int r = put_op_new(s, req, cb, userdata, why ? why : &dummy, &op);
        if (r < 0)
                return r;
        store_enqueue(s, op);
        return 0;
}

size_t osm_store_put_many(osm_store *s, const osm_store_put_req *reqs, size_t n, osm_store_put_cb cb,
                          void *userdata, int *r, const char **why) {
        const char *dummy;
        store_op *head = NULL, **tail = &head;
        size_t i;
        *r = 0;
        for (i = 0; i < n; i++) {
                store_op *op;
                *r = put_op_new(s, &reqs[i], cb, userdata, why ? why : &dummy, &op);
                if (*r < 0)
                        break;
                *tail = op;
                tail = &op->next;
        }
        if (!head)
                return 0;
        /* one append, one wake-up: the writer never takes half of it */
        pthread_mutex_lock(&s->lock);
        *s->q_tail = head;
        s->q_tail = tail;
        s->q_len += i;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return i;
}

