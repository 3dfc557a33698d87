/* errors.c: what a person reads when a call fails: one table from the daemon's error name
 * (and, where the words depend on it, the method and the parameter) to a sentence that says
 * what was wrong, names the thing and suggests the fix. */
#include <stdio.h>
#include <string.h>

#include "cli/output.h"

/* {key} is replaced by the error parameter key (a string, a number, or strings joined with
 * ", "), {method} by the method called and {message} by the daemon's own words. An entry
 * whose parameters are missing is skipped, so a later, more general one applies. */
typedef struct error_text {
        const char *name;
        const char *method;     /* NULL: any; OSM_I_WORKLOAD ".": any method of it */
        const char *param;      /* for InvalidParameter: the parameter named, or NULL */
        const char *text;
} error_text;

static const error_text texts[] = {
        /* org.varlink.service: the protocol itself */
        { OSM_E_VARLINK_INVALID_PARAMETER, OSM_M_STORE_PUT, "body",
          "the record must be a JSON object, e.g. '{\"t\":20.5}'" },
        /* InvalidParameter carries only the parameter's name: the words for it are here. */
        { OSM_E_VARLINK_INVALID_PARAMETER, OSM_M_WORKLOAD_TRUST_ADD, "public_key",
          "not a publisher key: expected an Ed25519 public key in URL-safe base64 (43 characters, as 'osmosectl keygen' prints)" },
        { OSM_E_VARLINK_INVALID_PARAMETER, OSM_M_WORKLOAD_TRUST_REMOVE, "public_key",
          "not a publisher key: expected an Ed25519 public key in URL-safe base64 (43 characters; see 'osmosectl trust ls')" },
        { OSM_E_VARLINK_INVALID_PARAMETER, OSM_M_WORKLOAD_INSTALL, "url",
          "the bundle URL must start with http:// or https:// and be at most 2048 bytes" },
        { OSM_E_VARLINK_INVALID_PARAMETER, OSM_M_WORKLOAD_RUN, "args",
          "too many arguments, or one too long, for a run (at most 64, of at most 4096 bytes each)" },
        { OSM_E_VARLINK_INVALID_PARAMETER, OSM_M_FEDERATION_SHARE, "collection",
          "not a valid collection name, or the collection is already shared with that remote (see 'osmosectl federation status')" },
        { OSM_E_VARLINK_INVALID_PARAMETER, OSM_M_BUILDING_JOIN, "token",
          "the join token is not valid: it is damaged or incomplete (copy the whole token 'osmosectl building invite' "
          "printed on the inviting room, or ask for a new one; the daemon's log says what is wrong with it)" },
        { OSM_E_VARLINK_INVALID_PARAMETER, OSM_M_FEDERATION_ENABLE, "listen",
          "the listen address must be ADDR:PORT or [ADDR6]:PORT with a numeric address" },
        { OSM_E_VARLINK_INVALID_PARAMETER, NULL, NULL,
          "the daemon refused the value of '{parameter}' given to {method}; 'osmosectl COMMAND --help' shows what it takes" },
        { OSM_E_VARLINK_METHOD_NOT_FOUND, NULL, NULL,
          "the daemon does not know {method}: is osmosed older than osmosectl? ('osmosectl status' shows its version)" },
        { OSM_E_VARLINK_METHOD_NOT_IMPLEMENTED, NULL, NULL,
          "the daemon does not implement {method}: is osmosed older than osmosectl? ('osmosectl status' shows its version)" },
        { OSM_E_VARLINK_INTERFACE_NOT_FOUND, NULL, NULL,
          "the daemon has no interface {interface}: is osmosed older than osmosectl, or built without it? "
          "('osmosectl status' shows its version)" },
        /* io.osmose: every interface */
        { OSM_E_PERMISSION_DENIED, NULL, NULL,
          "{message}" },
        { OSM_E_MESSAGE_TOO_LARGE, NULL, NULL,
          "the request is larger than the daemon accepts ({limit} bytes)" },
        { OSM_E_BUSY, NULL, NULL, "{message} (the daemon is busy: try again)" },
        { OSM_E_INTERNAL_ERROR, NULL, NULL, "the daemon failed: {message} (its log says more)" },
        { OSM_E_NOT_FOUND, OSM_M_WORKLOAD_TRUST_REMOVE, NULL, "{message} (see 'osmosectl trust ls')" },
        { OSM_E_NOT_FOUND, OSM_M_WORKLOAD_REVOKE, NULL, "{message} (see 'osmosectl workloads')" },
        { OSM_E_NOT_FOUND, OSM_M_WORKLOAD_LOGS, NULL, "{message} (see 'osmosectl ps')" },
        { OSM_E_NOT_FOUND, OSM_M_WORKLOAD_STOP, NULL, "{message} (see 'osmosectl ps')" },
        { OSM_E_NOT_FOUND, OSM_M_WORKLOAD_STATS, NULL, "{message} (see 'osmosectl ps')" },
        { OSM_E_NOT_FOUND, OSM_I_WORKLOAD ".", NULL, "{message} (see 'osmosectl workloads')" },
        /* io.osmose.Daemon */
        { OSM_E_DAEMON_CONFIG_INVALID, NULL, NULL,
          "the configuration file has {problems} problem(s); the configuration in force is unchanged:\n  {errors}" },
        { OSM_E_DAEMON_CONFIG_INVALID, NULL, NULL,
          "the configuration file has {problems} problem(s); the configuration in force is unchanged "
          "(the daemon's log lists them)" },
        /* io.osmose.Store */
        { OSM_E_STORE_NO_SUCH_COLLECTION, NULL, NULL,
          "no collection named '{collection}' (see 'osmosectl collections')" },
        { OSM_E_STORE_NO_SUCH_OBJECT, NULL, NULL, "no object {hash} (see 'osmosectl object ls')" },
        { OSM_E_STORE_INVALID_NAME, NULL, NULL,
          "'{name}' is not a valid name: 1-128 bytes of [A-Za-z0-9._-] segments separated by '/'" },
        { OSM_E_STORE_INVALID_HASH, NULL, NULL,
          "'{hash}' is not an object hash: expected 64 lowercase hex digits" },
        { OSM_E_STORE_INVALID_RECORD, NULL, NULL, "invalid record: {message}" },
        { OSM_E_STORE_RECORD_TOO_LARGE, NULL, NULL,
          "{message} (raise store.max-record-size in osmosed.conf, or store the data as an object)" },
        { OSM_E_STORE_BUDGET_EXCEEDED, NULL, NULL,
          "{message}" },
        { OSM_E_STORE_DISK_FULL, NULL, NULL, "{message}" },
        { OSM_E_STORE_OBJECT_TOO_LARGE, NULL, NULL, "{message}" },
        /* io.osmose.Discovery */
        { OSM_E_DISCOVERY_PEER_NOT_FOUND, NULL, NULL, "no peer with the id {id} (see 'osmosectl peers')" },
        { OSM_E_DISCOVERY_PEER_CONFLICT, NULL, NULL,
          "{message}: the id {id} is claimed by {instances}" },
        { OSM_E_DISCOVERY_DISABLED, NULL, NULL, "{message} (discovery is off or has no avahi-daemon)" },
        /* io.osmose.Federation */
        { OSM_E_FEDERATION_REMOTE_NOT_FOUND, NULL, NULL, "no remote named '{name}' (see 'osmosectl remote ls')" },
        { OSM_E_FEDERATION_FEDERATION_DISABLED, NULL, NULL,
          "{message} (turn it on with 'osmosectl federation enable')" },
        { OSM_E_FEDERATION_REMOTE_EXISTS, NULL, NULL, "{message} (see 'osmosectl remote ls')" },
        { OSM_E_FEDERATION_INVALID_KEY, NULL, NULL,
          "{message}" },
        /* io.osmose.Workload */
        { OSM_E_WORKLOAD_UNTRUSTED, NULL, NULL,
          "{message} (trust the publisher with 'osmosectl trust add {signer}', or install with --allow-unsigned)" },
        { OSM_E_WORKLOAD_UNTRUSTED, NULL, NULL,
          "{message} (trust the publisher with 'osmosectl trust add KEY', or install with --allow-unsigned)" },
        { OSM_E_WORKLOAD_DOWNGRADE, NULL, NULL,
          "{message}" },
        { OSM_E_WORKLOAD_BAD_CAPABILITY, NULL, NULL,
          "{message} ('osmosectl workloads' shows what it requests and holds)" },
};

static bool method_matches(const char *want, const char *method) {
        if (!want)
                return true;
        if (!method)
                return false;
        size_t n = strlen(want);
        if (n && want[n - 1] == '.')
                return strncmp(want, method, n) == 0;
        return strcmp(want, method) == 0;
}

/* Append the value of {key}; false when the error has no such parameter. */
static bool put_value(json_t *params, const char *key, size_t klen, const char *method, const char *message,
                      char *buf, size_t size, size_t *o) {
        char k[64];
        if (klen >= sizeof k)
                return false;
        memcpy(k, key, klen);
        k[klen] = 0;
        const char *s = NULL;
        char num[32];
        json_t *v = NULL;
        if (strcmp(k, "method") == 0)
                s = method;
        else if (strcmp(k, "message") == 0)
                s = message;
        else if ((v = json_object_get(params, k)) && json_is_string(v))
                s = json_string_value(v);
        else if (json_is_integer(v)) {
                snprintf(num, sizeof num, "%lld", (long long) json_integer_value(v));
                s = num;
        } else if (json_is_array(v) && json_array_size(v) > 0) {
                size_t i;
                json_t *e;
                json_array_foreach(v, i, e) {
                        int n = snprintf(buf + *o, size - *o, "%s%s", i ? (strcmp(k, "errors") ? ", " : "\n  ") : "",
                                         json_is_string(e) ? json_string_value(e) : "?");
                        *o = OSM_MIN(size - 1, *o + (size_t) (n > 0 ? n : 0));
                }
                return true;
        }
        if (!s || !*s)
                return false;
        int n = snprintf(buf + *o, size - *o, "%s", s);
        *o = OSM_MIN(size - 1, *o + (size_t) (n > 0 ? n : 0));
        return true;
}

static bool render(const char *text, const osm_client_error *err, const char *method, char *buf, size_t size) {
        size_t o = 0;
        buf[0] = 0;
        for (const char *p = text; *p && o + 1 < size; p++) {
                const char *end;
                if (*p == '{' && (end = strchr(p, '}')) && end - p > 1 && strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_") ==
                                                                             (size_t) (end - p - 1)) {
                        if (!put_value(err->parameters, p + 1, (size_t) (end - p - 1), method, err->message, buf, size, &o))
                                return false;
                        p = end;
                        continue;
                }
                buf[o++] = *p;
                buf[o] = 0;
        }
        return true;
}

const char *osm_ctl_error_text(const char *method, const osm_client_error *err, char *buf, size_t size) {
        if (!err->name) {
                snprintf(buf, size, "%s", err->message);
                return buf;
        }
        const char *param = json_string_value(json_object_get(err->parameters, "parameter"));
        for (size_t i = 0; i < OSM_ARRAY_SIZE(texts); i++) {
                const error_text *t = &texts[i];
                if (strcmp(t->name, err->name) != 0 || !method_matches(t->method, method))
                        continue;
                if (t->param && (!param || strcmp(t->param, param) != 0))
                        continue;
                if (render(t->text, err, method, buf, size))
                        return buf;
        }
        /* Not in the table: the daemon's words, and the name for a search. */
        if (strcmp(err->message, err->name) == 0)
                snprintf(buf, size, "%s failed: %s", method ? method : "the call", err->name);
        else
                snprintf(buf, size, "%s (%s)", err->message, err->name);
        return buf;
}
