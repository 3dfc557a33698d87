/* output.h: what every osmosectl command shares: the context, calls with one-line errors,
 * aligned tables, and JSON output. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "osmose/client.h"
#include "osmose/util.h"

typedef struct osm_ctl {
        const char *socket;     /* resolved socket path */
        bool json;              /* --json */
        osm_client *client;     /* connected on first use */
} osm_ctl;

/* A command: argv[0] is the command's own name; returns the exit status. */
typedef int (*osm_ctl_fn)(osm_ctl *ctl, int argc, char **argv);

typedef struct osm_ctl_command {
        const char *name;
        osm_ctl_fn fn;
        const char *args;       /* synopsis of the arguments */
        const char *help;       /* one line */
} osm_ctl_command;

/* Print "osmosectl: …" on stderr; returns 1 (the exit status for failures). */
int osm_ctl_fail(const char *fmt, ...) OSM_PRINTF(1, 2);
/* The same for a usage error (the command line is wrong; nothing was sent): returns 2. */
int osm_ctl_usage_error(const char *fmt, ...) OSM_PRINTF(1, 2);

/* Connect if needed; on failure prints one line naming the socket and returns NULL. */
osm_client *osm_ctl_client(osm_ctl *ctl);

/* Call method; on failure prints one line and returns 1; on success returns 0 and
 * *reply (may be NULL to discard) holds the reply parameters. params is borrowed. */
int osm_ctl_call(osm_ctl *ctl, const char *method, json_t *params, json_t **reply);
/* The same with fds to send and fds to receive (see osm_client_call). */
int osm_ctl_call_fds(osm_ctl *ctl, const char *method, json_t *params, const int *fds, size_t n_fds,
                     json_t **reply, int *reply_fds, size_t *n_reply_fds);
/* The same for a call made by a generated builder of osmose/protocol.h, which names the
 * method and takes its declared parameters only (consumed):
 *     osm_ctl_request(ctl, osm_req_store_delete(coll, &(osm_req_store_delete_opt){ .writer = w }), &rep)
 * Commands call these; osm_ctl_call is left for `osmosectl call`, whose method is the user's. */
int osm_ctl_request(osm_ctl *ctl, osm_vl_request req, json_t **reply);
int osm_ctl_request_fds(osm_ctl *ctl, osm_vl_request req, const int *fds, size_t n_fds, json_t **reply,
                        int *reply_fds, size_t *n_reply_fds);
/* Print an error of a call for a person ("osmosectl: COMMAND: what was wrong (the fix)"),
 * in the words of errors.c; returns 1. */
int osm_ctl_call_failed(const char *method, const osm_client_error *err);
/* errors.c: the sentence for an error reply of method, in buf. */
const char *osm_ctl_error_text(const char *method, const osm_client_error *err, char *buf, size_t size);
/* The command the messages name ("put", "remote add"); set by main and the group dispatch. */
void osm_ctl_set_command(const char *group, const char *sub);

/* What a command that changes something prints: with --json, the object what (owned) with
 * the daemon's reply merged in (reply borrowed, may be NULL); else the line fmt. */
void osm_print_done(osm_ctl *ctl, json_t *reply, json_t *what, const char *fmt, ...) OSM_PRINTF(4, 5);

/* The forms of a time T that every command takes (osm_parse_time), for messages. */
#define OSM_CTL_TIME_FORMS "RFC 3339 (2026-12-02T10:00:00Z), a date (2026-12-02, midnight UTC), a time ago " \
        "(-1h30m or 1h30m), +2h, now, today, yesterday, or microseconds since the epoch"
/* Parse the value of option opt of cmd as a time: 0, or a usage error printed (2). */
int osm_ctl_parse_time(const char *cmd, const char *opt, const char *value, int64_t *out);

/* Print a JSON value as one document (indented) or one line (JSON Lines). */
void osm_print_json(json_t *v);
void osm_print_json_line(json_t *v);

/* An aligned table for humans. Cells are copied. */
typedef struct osm_table osm_table;
osm_table *osm_table_new(const char *first_header, ...);   /* NULL-terminated headers */
void osm_table_add(osm_table *t, const char *first_cell, ...); /* one cell per column, NULL → "-" */
void osm_table_print(osm_table *t);   /* prints and frees */
void osm_table_print_rows(osm_table *t);   /* the same without the header row (a stream's lines) */

/* Parse a command's options: "-h/--help" prints usage and returns 0 through *exit_now.
 * A helper for the common pattern of commands without further options. */
bool osm_ctl_wants_help(int argc, char **argv);
/* A publisher key is base64url, so one in 64 starts with '-', which getopt would take for
 * options ("invalid option -- 'T'"). Before getopt runs: the first argument ahead of any
 * "--" that starts with '-', is a well-formed key and is not the value of one of opts's
 * options, is taken out of argv (those after it move up, *argc drops) and returned; NULL
 * if there is none. */
struct option;
const char *osm_ctl_take_key_operand(int *argc, char **argv, const struct option *opts);
void osm_ctl_usage(const char *cmd, const char *args, const char *help, const char *details);

/* Look a command up in a table (for groups with subcommands) and run it; prints the
 * group's usage for an unknown or missing subcommand. */
int osm_ctl_dispatch(osm_ctl *ctl, const char *group, const osm_ctl_command *table, size_t n,
                     int argc, char **argv);
