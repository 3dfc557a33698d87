/* varlink.h: the Varlink wire format shared by osmosed and its clients (NUL-terminated JSON). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "osmose/error.h"
#include "osmose/util.h"

/* jansson (>= 2.9) provides json_decrefp for cleanup attributes. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Limits on what one peer may send. */
#define OSM_VARLINK_MAX_MESSAGE   (1024u * 1024u)   /* bytes in one message, NUL excluded */
#define OSM_VARLINK_MAX_FDS       8                 /* fds passed with one message */

/* Method and error names, error constructors: generated from the .varlink files. */
#include "osmose/protocol.h"   /* IWYU pragma: export */

/* The one name older code still uses (tests/unit/test-server.c). */
#define OSM_ERR_INTERNAL   OSM_E_INTERNAL_ERROR
#define OSM_ERR_INTERNAL_M OSM_E_INTERNAL_ERROR

/* A parsed call as sent by a client. Borrowed pointers into `root`. */
typedef struct osm_vl_call {
        json_t *root;          /* the whole message (owned) */
        const char *method;    /* fully qualified "io.osmose.Daemon.GetStatus" */
        json_t *parameters;    /* an object, never NULL (empty object if absent) */
        bool more;
        bool oneway;
        bool upgrade;
} osm_vl_call;

/* Parse one message (without its NUL) as a call. On failure returns -EBADMSG and fills
 * err (see error.h) with a sentence naming the problem. */
int osm_vl_parse_call(const char *buf, size_t len, osm_vl_call *out, osm_error *err);
void osm_vl_call_done(osm_vl_call *c);

/* Calls of method (a string that stays) parse the elements of their parameter param (an
 * array of objects) into raw objects where they can (see varlink.c): 0 or -ENOSPC. */
int osm_vl_set_raw_objects(const char *method, const char *param);
/* The text of the object v stands for, if v is a raw object (its length in *len), or NULL. */
const char *osm_vl_raw_object(json_t *v, size_t *len);
/* A JSON object, raw or a tree. */
bool osm_vl_is_object(json_t *v);
/* json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) of the object v stands for. */
size_t osm_vl_dumpb_size(json_t *v);

/* A parsed reply. */
typedef struct osm_vl_reply {
        json_t *root;          /* owned */
        json_t *parameters;    /* object, never NULL */
        const char *error;     /* NULL unless an error reply */
        bool continues;
} osm_vl_reply;

int osm_vl_parse_reply(const char *buf, size_t len, osm_vl_reply *out, osm_error *err);
void osm_vl_reply_done(osm_vl_reply *r);

/* Serialize {"method":…,"parameters":…,"more":…} / a reply / an error; the result is a
 * malloc'd buffer including its terminating NUL, *len counts the NUL. NULL on ENOMEM. */
char *osm_vl_format_call(const char *method, json_t *params, bool more, bool oneway, size_t *len);
char *osm_vl_format_reply(json_t *params, bool continues, size_t *len);
char *osm_vl_format_error(const char *error, json_t *params, size_t *len);

/* The same for parameters already serialized (params: one JSON object, params_len bytes),
 * for replies written without a tree and calls whose parameters are mostly text the caller
 * has checked (put --batch's lines). */
char *osm_vl_format_reply_raw(const char *params, size_t params_len, bool continues, size_t *len);
/* The same reply as three pieces to send without copying params: the frame's head, params,
 * its tail with the NUL; returns their total length (osm_vl_format_reply_raw()'s *len). */
size_t osm_vl_reply_iov(const char *params, size_t params_len, bool continues, struct iovec iov[static 3]);
char *osm_vl_format_call_raw(const char *method, const char *params, size_t params_len, size_t *len);

/* Compact JSON written into a growing buffer, without building a tree (varlink.c). Start
 * with osm_jbuf b = { 0 }; on ENOMEM the buffer is marked failed and later writes do
 * nothing; osm_jbuf_finish adds the NUL and returns the malloc'd text (or NULL, freed). */
typedef struct osm_jbuf {
        char *p;
        size_t len, cap;
        bool failed;
} osm_jbuf;
void osm_jbuf_put(osm_jbuf *b, const char *s, size_t n);        /* raw bytes */
bool osm_jbuf_reserve(osm_jbuf *b, size_t more);                /* room for more bytes at p + len */
void osm_jbuf_string(osm_jbuf *b, const char *s);               /* a quoted, escaped string */
void osm_jbuf_string_n(osm_jbuf *b, const char *s, size_t n);
void osm_jbuf_int(osm_jbuf *b, long long v);
size_t osm_fmt_int(char buf[static 21], long long v);         /* decimal, no NUL; its length */
void osm_jbuf_real(osm_jbuf *b, double d);                      /* shortest round-tripping */
/* Its fast way for short decimals: the same text, or 0 when it does not apply (varlink.c). */
int osm_real_short(double d, char num[static 32]);
void osm_jbuf_value(osm_jbuf *b, json_t *v);                    /* any jansson value */
char *osm_jbuf_finish(osm_jbuf *b, size_t *len);

/* sendmsg(2) of buf with n_fds (≤ OSM_VARLINK_MAX_FDS) file descriptors attached as
 * SCM_RIGHTS; flags as for sendmsg (MSG_NOSIGNAL is added). Returns bytes sent or -errno. */
ssize_t osm_vl_sendmsg(int fd, const void *buf, size_t len, const int *fds, size_t n_fds, int flags);
/* The same of n_iov pieces, sent as one. */
ssize_t osm_vl_sendmsgv(int fd, const struct iovec *iov, size_t n_iov, const int *fds, size_t n_fds, int flags);
/* recvmsg(2) into buf with MSG_CMSG_CLOEXEC; received fds are stored in fds (room for
 * OSM_VARLINK_MAX_FDS), their count in *n_fds. If the kernel had to drop some, or more than
 * fit arrived (the extra ones are closed), *truncated is set. Returns bytes (0 at EOF)
 * or -errno. */
ssize_t osm_vl_recvmsg(int fd, void *buf, size_t len, int flags, int *fds, size_t *n_fds, bool *truncated);

/* Compact JSON of any value, NUL-terminated (*len counts the NUL); NULL on ENOMEM. */
char *osm_vl_dump(json_t *v, size_t *len);
/* The same laid out as jansson's JSON_INDENT(indent) lays it out, for people to read (indent
 * < 0: compact, osm_vl_dump); reals as osm_vl_dump writes them (20.9, not 20.899999999999999). */
char *osm_vl_dump_indented(json_t *v, int indent, size_t *len);

/* Split a qualified method "a.b.C.Method" into interface and member. Returns false
 * if it is not of that form. iface must hold at least 256 bytes. */
bool osm_vl_split_method(const char *method, char *iface, size_t size, const char **member);

/* The interface definitions compiled into the library (generated from src/lib/interfaces). */
typedef enum osm_vl_kind {
        OSM_VL_STRING = 's', OSM_VL_INT = 'i', OSM_VL_FLOAT = 'f', OSM_VL_BOOL = 'b',
        OSM_VL_OBJECT = 'o', OSM_VL_ARRAY = 'a', OSM_VL_MAP = 'm', OSM_VL_ANY = 'x',
} osm_vl_kind;

typedef struct osm_vl_field {
        const char *name;
        char kind;              /* osm_vl_kind */
        bool optional;
        const char *const *enum_values;   /* for enums (kind 's'), NULL-terminated; else NULL */
} osm_vl_field;

typedef struct osm_vl_method {
        const char *name;       /* qualified */
        const osm_vl_field *in;
        size_t n_in;
} osm_vl_method;

typedef struct osm_vl_interface {
        const char *name;
        const char *description;   /* the .varlink text */
        const osm_vl_method *methods;
        size_t n_methods;
} osm_vl_interface;

extern const osm_vl_interface *const osm_vl_interfaces[];
extern const size_t osm_vl_n_interfaces;

const osm_vl_interface *osm_vl_find_interface(const char *name);
const osm_vl_method *osm_vl_find_method(const char *qualified);

/* Check the top-level fields of params against a method's input definition: unknown
 * fields, missing required ones, wrong JSON types, values outside an enum. Returns 0,
 * or -EINVAL with *bad_field set to the offending field's name. */
int osm_vl_check_params(const osm_vl_method *m, json_t *params, const char **bad_field);
