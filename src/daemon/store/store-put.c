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

int osm_store_check_put(osm_store *s, const osm_store_put_req *req, size_t *body_len, osm_error *err) {
        if (!req->collection || !osm_name_valid(req->collection, OSM_STORE_MAX_NAME, true)) {
                return osm_error_set(err, -EINVAL, OSM_STORE_BAD_NAME, "invalid collection name: 1-128 bytes of [A-Za-z0-9._-] segments separated by '/'");
        }
        if (!req->writer || !writer_valid(req->writer)) {
                return osm_error_set(err, -EINVAL, 0, "invalid writer");
        }
        if (req->id && !osm_store_id_valid(req->id)) {
                return osm_error_set(err, -EINVAL, 0, "invalid record id: expected <16 hex digits>-<sequence>");
        }
        if (!osm_vl_is_object(req->body)) {
                /* one rule for Put and PutBatch, osmosectl and workloads: the Varlink type is object */
                return osm_error_set(err, -EINVAL, 0, "the record must be a JSON object");
        }
        if (req->time_us < 0 || req->time_us > INT64_C(253402300799999999)) {
                return osm_error_set(err, -ERANGE, 0, "time out of range");
        }
        uint64_t max = atomic_load(&s->max_record_size);
        size_t n = *body_len;
        if (n == 0) {
                /* jansson can size the compact text without building it */
                n = json_dumpb(req->body, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
                if (n == 0) {
                        return osm_error_set(err, -EINVAL, 0, "the body cannot be encoded as JSON");
                }
        }
        if (n > max) {
                return osm_error_set(err, -EMSGSIZE, 0, "record too large");
        }
        uint64_t budget = atomic_load(&s->db_budget);
        if (budget > 0 && atomic_load(&s->used_bytes) + n > budget) {
                return osm_error_set(err, -EDQUOT, 0, "database budget reached");
        }
        *body_len = n;
        return 0;
}

/* Check req and build its op (not queued). */
static int put_op_new(osm_store *s, const osm_store_put_req *req, osm_store_put_cb cb, void *userdata,
                      osm_error *err, store_op **out) {
        if (s->closing) {
                return osm_error_set(err, -ECANCELED, 0, "the store is closing");
        }
        /* encode once (a raw object is its text already); the checks use its length */
        size_t body_len = 0;
        const char *raw = osm_vl_raw_object(req->body, &body_len);
        _cleanup_free_ char *dumped = !raw && req->body ? osm_vl_dump(req->body, &body_len) : NULL;
        const char *text = raw ? raw : dumped;
        if (dumped)
                body_len--;   /* osm_vl_dump counts the NUL */
        if (!text && req->body) {
                return osm_error_set(err, -EINVAL, 0, "the body cannot be encoded as JSON");
        }
        int r = osm_store_check_put(s, req, &body_len, err);
        if (r < 0)
                return r;
        if (s->q_len > MAX_QUEUED_OPS) {   /* racy read is fine: a soft bound */
                return osm_error_set(err, -EBUSY, 0, "too many writes queued");
        }
        size_t lc = strlen(req->collection) + 1, lw = strlen(req->writer) + 1;
        size_t li = req->id ? strlen(req->id) + 1 : 0;
        store_op *op = store_op_new(OP_PUT, lc + lw + li + body_len + 1);
        if (!op) {
                return osm_error_set(err, -ENOMEM, 0, "out of memory");
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
        memcpy(p, text, body_len);
        p[body_len] = 0;
        op->body = p;
        op->body_len = body_len;
        op->ts = req->time_us ? req->time_us : osm_now_real_us();
        op->put_cb = cb;
        op->userdata = userdata;
        *out = op;
        return 0;
}

int osm_store_put(osm_store *s, const osm_store_put_req *req, osm_store_put_cb cb, void *userdata,
                  osm_error *err) {
        store_op *op;
        int r = put_op_new(s, req, cb, userdata, err, &op);
        if (r < 0)
                return r;
        store_enqueue(s, op);
        return 0;
}

size_t osm_store_put_many(osm_store *s, const osm_store_put_req *reqs, size_t n, osm_store_put_cb cb,
                          void *userdata, int *r, osm_error *err) {
        store_op *head = NULL, **tail = &head;
        size_t i;
        *r = 0;
        for (i = 0; i < n; i++) {
                store_op *op;
                *r = put_op_new(s, &reqs[i], cb, userdata, err, &op);
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

