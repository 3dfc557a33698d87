/* test-config.c: defaults, layouts, parsing with file:line errors, validation, dump. */
#include <stdio.h>
#include <string.h>

#include "daemon/config.h"
#include "osmose/log.h"
#include "tap.h"

static int load_text(osm_config *cfg, const char *text, char **errors) {
        char path[] = "/tmp/osm-cfg-XXXXXX";
        int fd = mkstemp(path);
        write(fd, text, strlen(text));
        close(fd);
        size_t len;
        FILE *err = open_memstream(errors, &len);
        osm_error_list errs = {};
        int r = osm_config_load(cfg, path, &errs);
        osm_error_list_print(&errs, err);
        osm_error_list_done(&errs);
        fclose(err);
        unlink(path);
        return r;
}

static void test_defaults(void) {
        osm_config cfg;
        TAP_OK(osm_config_defaults(&cfg, NULL) == 0, "installed defaults");
        TAP_OK(strstr(cfg.socket_path, "/run/osmose/osmosed.sock") != NULL, "installed socket path");
        TAP_OK(osm_config_validate(&cfg, NULL) == 0, "defaults are valid");
        osm_config_free(&cfg);
}

static void test_load_and_validate(void) {
        osm_config cfg;
        char *errs = NULL;
        TAP_OK(osm_config_defaults(&cfg, "/tmp/demo") == 0 && strcmp(cfg.socket_path, "/tmp/demo/osmosed.sock") == 0 &&
               strcmp(cfg.state_dir, "/tmp/demo") == 0, "one-directory layout");
        TAP_OK(load_text(&cfg, "[daemon]\nname = lab\nlog-level = debug\n[control]\nmax-connections = 7\n"
                               "idle-timeout = 2min\nsocket-mode = 0600\n[store]\ndb-budget = 2G\n", &errs) == 0,
               "valid file parses");
        TAP_EQ_STR(cfg.name, "lab", "name set");
        TAP_EQ_INT(cfg.log_level, LOG_DEBUG, "log level set");
        TAP_EQ_INT(cfg.max_connections, 7, "uint set");
        TAP_OK(cfg.idle_timeout_us == 120000000ull, "duration set");
        TAP_EQ_INT(cfg.socket_mode, 0600, "mode set");
        TAP_OK(cfg.db_budget == 2ull << 30, "size set");
        free(errs);

        int r = load_text(&cfg, "[daemon]\nname = x\nbogus = 1\n[nowhere]\na = b\n[control]\nmax-connections = lots\n"
                                "this line is wrong\n", &errs);
        TAP_EQ_INT(r, 4, "four problems found");

        TAP_OK(errs && strstr(errs, ":3: unknown key 'bogus' in section [daemon]") != NULL, "unknown key with line");
        TAP_OK(errs && strstr(errs, ":4: unknown section [nowhere]") != NULL, "unknown section at its header line");
        TAP_OK(errs && strstr(errs, ":7: [control] max-connections = lots: expected a non-negative integer") != NULL,
               "bad value with line and reason");
        TAP_OK(errs && strstr(errs, ":8: syntax error") != NULL, "syntax error with line");
        free(errs);
        r = load_text(&cfg, "[bogus]\n[daemon]\nname = x\n", &errs);
        TAP_OK(r == 1 && errs && strstr(errs, ":1: unknown section [bogus]"), "an empty unknown section is a problem too");
        free(errs);

        cfg.max_message_size = 10;
        TAP_OK(osm_config_validate(&cfg, NULL) > 0, "too small max-message-size refused");
        cfg.max_message_size = 1 << 20;
        TAP_OK(osm_config_validate(&cfg, NULL) == 0, "valid again");
        TAP_OK(cfg.building_heartbeat_interval_us == 60000000ull, "building heartbeat-interval: 60 s by default");
        cfg.building_heartbeat_interval_us = cfg.building_status_interval_us - 1;
        TAP_OK(osm_config_validate(&cfg, NULL) > 0, "a heartbeat-interval shorter than status-interval refused");
        osm_config_free(&cfg);
}

static void test_copy_and_dump(void) {
        char *errs = NULL;
        osm_config a, b;
        osm_config_defaults(&a, "/tmp/x");
        TAP_OK(osm_config_copy(&b, &a) == 0 && b.name != a.name && strcmp(b.name, a.name) == 0, "deep copy");
        char *dump = NULL;
        size_t dl;
        FILE *f = open_memstream(&dump, &dl);
        osm_config_dump(&a, f);
        fclose(f);
        bool every = true;
        for (size_t i = 0; i < osm_config_n_keys; i++) {
                char want[128];
                snprintf(want, sizeof want, "\n%s = ", osm_config_keys[i].key);
                every &= strstr(dump, want) != NULL;
        }
        TAP_OK(every, "dump lists every key");
        /* the dump parses back to the same configuration */
        osm_config c;
        osm_config_defaults(&c, "/tmp/y");
        TAP_OK(load_text(&c, dump, &errs) == 0 && strcmp(c.state_dir, "/tmp/x") == 0 &&
               c.max_buffered == a.max_buffered && c.idle_timeout_us == a.idle_timeout_us, "dump round trips");
        free(errs);
        free(dump);
        osm_config_free(&a);
        osm_config_free(&b);
        osm_config_free(&c);
}

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_defaults),
                TAP_CASE(test_load_and_validate),
                TAP_CASE(test_copy_and_dump),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
