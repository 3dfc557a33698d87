/* main.c: osmosed's command line. */
#include <getopt.h>
#include <malloc.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"
#include "osmose/log.h"

static void usage(FILE *f) {
        fprintf(f,
                "Usage: osmosed [OPTION]...\n"
                "The Osmose daemon: keeps a room's data, runs its programs, finds its building.\n\n"
                "  -c, --config FILE     configuration file (default %s/osmosed.conf,\n"
                "                        or DIR/osmosed.conf with --state-dir DIR)\n"
                "  -d, --state-dir DIR   keep everything under DIR: identity, data, socket\n"
                "                        (default %s, socket %s/osmosed.sock)\n"
                "  -s, --socket PATH     control socket\n"
                "  -n, --name NAME       human name of this space\n"
                "      --check-config    check the configuration and exit\n"
                "      --dump-config     print the effective configuration and exit\n"
                "  -V, --version         print the version and exit\n"
                "  -h, --help            this help\n",
                OSM_SYSCONFDIR, OSM_LOCALSTATEDIR, OSM_RUNDIR);
}

int main(int argc, char **argv) {
        enum { OPT_CHECK = 256, OPT_DUMP };
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "state-dir", required_argument, NULL, 'd' },
                { "socket", required_argument, NULL, 's' },
                { "name", required_argument, NULL, 'n' },
                { "check-config", no_argument, NULL, OPT_CHECK },
                { "dump-config", no_argument, NULL, OPT_DUMP },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        /* Memory an idle daemon need not hold (bench/footprint.sh measures it). SQLite gives
         * every connection a bulk page cache of 20 pages (about 90 KiB, all touched) at its
         * first read; with none, pages are allocated as they are needed. glibc gives every
         * thread that allocates an arena of its own (64 KiB or more each, for the store's
         * writer and each thread-pool worker): two are enough for a loop and its helpers. */
        sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
        mallopt(M_ARENA_MAX, 2);
        osm_daemon_opts o = { 0 };
        bool check = false, dump = false;
        int c;
        while ((c = getopt_long(argc, argv, "c:d:s:n:Vh", opts, NULL)) != -1) {
                switch (c) {
                case 'c': o.config_path = optarg; break;
                case 'd': o.state_dir = optarg; break;
                case 's': o.socket_path = optarg; break;
                case 'n': o.name = optarg; break;
                case OPT_CHECK: check = true; break;
                case OPT_DUMP: dump = true; break;
                case 'V': printf("osmosed %s\n", OSM_VERSION); return 0;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "osmosed: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        /* Relative paths would change meaning if the daemon ever changed directory. */
        char absdir[4096];
        if (o.state_dir && o.state_dir[0] != '/') {
                if (!realpath(o.state_dir, absdir)) {
                        if (!getcwd(absdir, sizeof absdir - strlen(o.state_dir) - 2))
                                return 1;
                        strcat(absdir, "/");
                        strcat(absdir, o.state_dir);
                }
                o.state_dir = absdir;
        }
        if (check || dump) {
                osm_config cfg;
                char *used = NULL;
                osm_error_list errs = {};
                int r = osm_daemon_load_config(&o, &cfg, &used, &errs);
                osm_error_list_print(&errs, stderr);
                osm_error_list_done(&errs);
                if (dump && r >= 0)
                        osm_config_dump(&cfg, stdout);
                if (check) {
                        if (r == 0)
                                printf("configuration OK (%s)\n", used ? used : "embedded defaults");
                        else
                                fprintf(stderr, "configuration has %d problem(s)\n", r < 0 ? 1 : r);
                }
                free(used);
                osm_config_free(&cfg);
                return r == 0 ? 0 : 1;
        }
        return osm_daemon_run(&o);
}
