/* store-reply.c: store failures and batch outcomes as Varlink replies (see store-reply.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "daemon/store/store-reply.h"
#include "osmose/varlink.h"

/* The cases a caller of the store tells apart, whatever interface it serves. */
typedef enum fault {
        F_BAD_NAME,
        F_BAD_RECORD,
        F_TOO_LARGE,
        F_BUDGET,
        F_OBJECT_TOO_LARGE,
        F_DISK_FULL,
        F_NO_COLLECTION,
        F_BUSY,
        F_OTHER,
        _F_MAX,
} fault;

static fault fault_of(int code, const osm_error *err) {
        switch (code) {
        case -EINVAL:
        case -ERANGE:
                return err && err->kind == OSM_STORE_BAD_NAME ? F_BAD_NAME : F_BAD_RECORD;
        case -EMSGSIZE: return F_TOO_LARGE;
        case -EDQUOT: return F_BUDGET;
        case -EFBIG: return F_OBJECT_TOO_LARGE;
        case -ENOSPC: return F_DISK_FULL;
        case -ENOENT: return F_NO_COLLECTION;
        case -EBUSY: return F_BUSY;
        default: return F_OTHER;
        }
}

/* Each interface's error for each case, with exactly the fields its .varlink file declares
 * (the generated constructors take those and no others). */
static osm_vl_error store_error(fault k, const osm_store_failure *f, const char *coll, uint64_t limit,
                                const char *msg) {
        int64_t index = (int64_t) f->index, stored = (int64_t) f->stored;
        switch (k) {
        case F_BAD_NAME: return osm_error_store_invalid_name(coll, msg);
        case F_BAD_RECORD: return osm_error_store_invalid_record(index, stored, msg);
        case F_TOO_LARGE:
                return osm_error_store_record_too_large(index, stored, (int64_t) f->size, (int64_t) limit, msg);
        case F_BUDGET: return osm_error_store_budget_exceeded(stored, msg);
        case F_OBJECT_TOO_LARGE: return osm_error_store_object_too_large((int64_t) limit, msg);
        case F_DISK_FULL: return osm_error_store_disk_full(stored, msg);
        case F_NO_COLLECTION: return osm_error_store_no_such_collection(coll, msg);
        case F_BUSY: return osm_error_busy(msg);
        default: return osm_error_store_store_error(msg);
        }
}

/* A workload's interface says less: no sizes or limits of the gateway's store. */
static osm_vl_error api_error(fault k, const osm_store_failure *f, const char *coll, const char *msg) {
        int64_t stored = (int64_t) f->stored;
        switch (k) {
        case F_BAD_NAME: return osm_error_api_invalid_name(coll, msg);
        case F_BAD_RECORD:
        case F_TOO_LARGE: return osm_error_api_invalid_record((int64_t) f->index, stored, msg);
        case F_NO_COLLECTION: return osm_error_api_no_such_collection(coll);
        case F_BUSY: return osm_error_busy(msg);
        default: return osm_error_api_store_error(stored, msg);   /* budget, object size, disk, other */
        }
}

void osm_store_reply_error(osm_call *call, osm_store_iface iface, const osm_config *cfg,
                           const osm_store_failure *f) {
        fault k = fault_of(f->code, f->err);
        const char *why = osm_error_message(f->err, NULL);
        const char *coll = f->collection ? f->collection : "";
        uint64_t limit = 0;
        char msg[OSM_ERROR_MAX + 64], b1[32], b2[32];
        switch (k) {
        case F_BAD_NAME:
        case F_BAD_RECORD:
                snprintf(msg, sizeof(msg), "%s", why ? why : "invalid record");
                break;
        case F_TOO_LARGE:
                limit = cfg->max_record_size;
                if (f->size)
                        snprintf(msg, sizeof(msg), "record %zu is %s, over the limit of %s (max-record-size)", f->index,
                                 osm_format_bytes(f->size, b1, sizeof(b1)), osm_format_bytes(limit, b2, sizeof(b2)));
                else
                        snprintf(msg, sizeof(msg), "record %zu is over the limit of %s (max-record-size)", f->index,
                                 osm_format_bytes(limit, b2, sizeof(b2)));
                break;
        case F_BUDGET:
                snprintf(msg, sizeof(msg), "the database budget (%s) is reached%s",
                         osm_format_bytes(cfg->db_budget, b1, sizeof(b1)),
                         iface == OSM_STORE_IFACE_STORE ? "; raise db_budget or set retention" : "");
                break;
        case F_OBJECT_TOO_LARGE:
                limit = cfg->max_object_size;
                snprintf(msg, sizeof(msg), "the object is larger than max-object-size (%s)",
                         osm_format_bytes(limit, b1, sizeof(b1)));
                break;
        case F_DISK_FULL:
                snprintf(msg, sizeof(msg), "no space left on the device holding the state directory");
                break;
        case F_NO_COLLECTION:
                snprintf(msg, sizeof(msg), "no collection '%s'", coll);
                break;
        case F_BUSY:
                snprintf(msg, sizeof(msg), "%s", why ? why : "the store is busy; try again");
                break;
        default:
                snprintf(msg, sizeof(msg), "%s%s%s", why ? why : "", why ? ": " : "", strerror(-f->code));
                break;
        }
        osm_call_fail(call, iface == OSM_STORE_IFACE_API ? api_error(k, f, coll, msg) :
                                                           store_error(k, f, coll, limit, msg));
}

static void copy_id(char *dst, size_t size, const char *id) {
        size_t n = strnlen(id, size - 1);
        memcpy(dst, id, n);
        dst[n] = 0;
}

void osm_store_batch_init(osm_store_batch *b) {
        *b = (osm_store_batch) { .bad_index = SIZE_MAX };
}

bool osm_store_batch_done(osm_store_batch *b, int r, const char *id, size_t *index) {
        size_t i = b->done++;
        if (index)
                *index = i;
        if (r < 0) {
                if (i < b->bad_index) {
                        b->bad_index = i;
                        b->bad = (osm_error) { .code = r };
                        b->bad_size = 0;
                }
        } else {
                b->stored++;
                /* a copy, not snprintf: this runs for every record of every batch */
                if (b->stored == 1 || i < b->first_index) {
                        copy_id(b->first, sizeof(b->first), id);
                        b->first_index = i;
                }
                if (b->stored == 1 || i >= b->last_index) {
                        copy_id(b->last, sizeof(b->last), id);
                        b->last_index = i;
                }
        }
        return b->done == b->queued;
}

void osm_store_batch_refused(osm_store_batch *b, size_t i, int r, const osm_error *err, size_t size) {
        b->bad_index = i;
        if (err)
                b->bad = *err;
        b->bad.code = r;
        b->bad_size = size;
}

void osm_store_batch_reply(osm_call *call, osm_store_iface iface, const osm_config *cfg,
                           const osm_store_batch *b, const char *collection) {
        if (b->bad_index != SIZE_MAX) {
                osm_store_failure f = {
                        .code = b->bad.code, .err = &b->bad, .collection = collection,
                        .index = b->bad_index, .stored = b->stored, .size = b->bad_size,
                };
                osm_store_reply_error(call, iface, cfg, &f);
                return;
        }
        json_t *o = json_pack("{s:I}", "stored", (json_int_t) b->stored);
        if (o && b->stored > 0) {
                json_object_set_new(o, "first", json_string(b->first));
                json_object_set_new(o, "last", json_string(b->last));
        }
        osm_call_reply(call, o, false);
}
