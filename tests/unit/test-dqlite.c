/* test-dqlite.c: our dqlite wire client against real in-process dqlite nodes: one node
 * (SQL, types, batches of rows, failures), then three (ADD, ASSIGN, CLUSTER, REMOVE,
 * TRANSFER, and a new leader after the old one stops). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/building/dq-client.h"
#include "daemon/building/node.h"
#include "osmose/util.h"
#include "tap.h"

static int connect_abstract(void *arg, const char *address, int *fd) {
        int r = osm_dq_connect_abstract(address);
        if (r < 0)
                return 1;
        *fd = r;
        return 0;
}

static char tmpdir[256];
static int test_pid;   /* the parent's: node 1 keeps its address (and its raft configuration) across cases */

static osm_bnode *start_node(uint64_t id, char *addr, size_t size) {
        snprintf(addr, size, "@osm-test-dq-%d-%llu", test_pid, (unsigned long long) id);
        char dir[300];
        snprintf(dir, sizeof dir, "%s/node%llu", tmpdir, (unsigned long long) id);
        osm_bnode_opts o = { .id = id, .address = addr, .bind = addr, .dir = dir, .latency_ms = 20,
                             .connect = connect_abstract };
        osm_bnode *n = NULL;
        osm_error err = {};
        int r = osm_bnode_start(&o, &n, &err);
        TAP_OK(r == 0, "node %llu starts (%s)", (unsigned long long) id, err.message);
        return n;
}

static int dial(osm_dq *c, const char *addr) {
        int fd = osm_dq_connect_abstract(addr);
        if (fd < 0)
                return fd;
        return osm_dq_init(c, fd, 5000);
}

/* Find the leader from any node and connect to it with the database open. */
static int dial_leader(osm_dq *c, const char *any, uint64_t *leader_id) {
        for (int tries = 0; tries < 200; tries++) {
                osm_dq probe;
                char addr[OSM_DQ_ADDR_MAX] = "";
                uint64_t id = 0;
                if (dial(&probe, any) == 0 && osm_dq_leader(&probe, &id, addr, sizeof addr) == 0 && id) {
                        osm_dq_close(&probe);
                        if (dial(c, addr) == 0 && osm_dq_open(c, "building") == 0) {
                                *leader_id = id;
                                return 0;
                        }
                        osm_dq_close(c);
                } else {
                        osm_dq_close(&probe);
                }
                usleep(20000);
        }
        return -ETIMEDOUT;
}

static void test_single(void) {
        char addr[128];
        osm_bnode *n = start_node(1, addr, sizeof addr);
        osm_dq c;
        uint64_t leader = 0;
        TAP_OK(dial_leader(&c, addr, &leader) == 0, "a single node elects itself and answers LEADER");
        TAP_EQ_INT(leader, 1, "leader id");
        TAP_OK(osm_dq_client(&c, 42) == 0, "CLIENT gets WELCOME");
        int r = osm_dq_exec(&c, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, x REAL, s TEXT, z TEXT);"
                                "CREATE TABLE u (v INTEGER)", NULL, NULL, NULL);
        TAP_OK(r == 0, "EXEC_SQL of two statements (%d %s)", r, c.err_msg);
        json_t *p = json_pack("[I,f,s,n]", (json_int_t) -5000000000LL, 2.5, "héllo", NULL);
        uint64_t last = 0, changes = 0;
        r = osm_dq_exec(&c, "INSERT INTO t (n, x, s, z) VALUES (?, ?, ?, ?)", p, &last, &changes);
        json_decref(p);
        TAP_OK(r == 0 && last == 1 && changes == 1, "INSERT with four parameter types (last %llu, changes %llu)",
               (unsigned long long) last, (unsigned long long) changes);
        json_t *cols = NULL, *rows = NULL;
        r = osm_dq_query(&c, "SELECT id, n, x, s, z FROM t", NULL, &cols, &rows);
        TAP_OK(r == 0 && json_array_size(rows) == 1, "QUERY_SQL gives one row");
        json_t *row = json_array_get(rows, 0);
        TAP_EQ_STR(json_string_value(json_array_get(cols, 3)), "s", "column names");
        TAP_EQ_INT(json_integer_value(json_array_get(row, 1)), -5000000000LL, "negative 64-bit integer round-trips");
        TAP_OK(json_real_value(json_array_get(row, 2)) == 2.5, "real round-trips");
        TAP_EQ_STR(json_string_value(json_array_get(row, 3)), "héllo", "UTF-8 text round-trips");
        TAP_OK(json_is_null(json_array_get(row, 4)), "NULL round-trips");
        json_decref(cols);
        json_decref(rows);

        /* More rows than one batch: the server sends ROWS_PART batches. */
        r = osm_dq_exec(&c, "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 3000) "
                            "INSERT INTO u SELECT i FROM k", NULL, NULL, &changes);
        TAP_OK(r == 0 && changes == 3000, "3000 rows inserted in one statement");
        json_t *params = json_pack("[i]", 0);
        r = osm_dq_query(&c, "SELECT v, 'some padding text to fill pages' FROM u WHERE v > ? ORDER BY v", params, &cols, &rows);
        json_decref(params);
        TAP_OK(r == 0 && json_array_size(rows) == 3000, "3000 rows come back over several batches (got %zu)",
               json_array_size(rows));
        TAP_EQ_INT(json_integer_value(json_array_get(json_array_get(rows, 2999), 0)), 3000, "last row in order");
        json_decref(cols);
        json_decref(rows);

        r = osm_dq_exec(&c, "INSERT INTO nosuch VALUES (1)", NULL, NULL, NULL);
        TAP_OK(r == -EREMOTEIO && c.err_code != 0 && strstr(c.err_msg, "nosuch"),
               "a failing statement gives FAILURE with a message (%s)", c.err_msg);
        r = osm_dq_query(&c, "SELECT count(*) FROM u", NULL, &cols, &rows);
        TAP_OK(r == 0 && json_integer_value(json_array_get(json_array_get(rows, 0), 0)) == 3000,
               "the connection is still usable after a failure");
        json_decref(cols);
        json_decref(rows);

        osm_dq_node *nodes = NULL;
        size_t nn = 0;
        r = osm_dq_cluster(&c, &nodes, &nn);
        TAP_OK(r == 0 && nn == 1 && nodes[0].id == 1 && nodes[0].role == OSM_DQ_VOTER &&
               strcmp(nodes[0].address, addr) == 0, "CLUSTER lists the one voter");
        free(nodes);
        osm_dq_close(&c);
        osm_bnode_stop(n);
}

static void test_three(void) {
        char a[3][128];
        osm_bnode *n[3];
        /* ids 11.. so none bootstraps but the first (id 1 is the bootstrap id) */
        n[0] = start_node(1, a[0], sizeof a[0]);
        n[1] = start_node(12, a[1], sizeof a[1]);
        n[2] = start_node(13, a[2], sizeof a[2]);
        osm_dq c;
        uint64_t leader = 0;
        TAP_OK(dial_leader(&c, a[0], &leader) == 0, "leader of the new cluster");
        int r = osm_dq_add(&c, 12, a[1]);
        TAP_OK(r == 0, "ADD node 12 (%s)", c.err_msg);
        r = osm_dq_assign(&c, 12, OSM_DQ_VOTER);
        TAP_OK(r == 0, "ASSIGN node 12 voter (%s)", c.err_msg);
        r = osm_dq_add(&c, 13, a[2]);
        TAP_OK(r == 0 && osm_dq_assign(&c, 13, OSM_DQ_VOTER) == 0, "ADD + ASSIGN node 13 voter");
        r = osm_dq_add(&c, 12, a[1]);
        TAP_OK(r == -EREMOTEIO, "ADD of a node already there fails (%s)", c.err_msg);
        osm_dq_node *nodes = NULL;
        size_t nn = 0, voters = 0;
        r = osm_dq_cluster(&c, &nodes, &nn);
        for (size_t i = 0; r == 0 && i < nn; i++)
                voters += nodes[i].role == OSM_DQ_VOTER;
        TAP_OK(r == 0 && nn == 3 && voters == 3, "CLUSTER: three voters");
        free(nodes);
        r = osm_dq_exec(&c, "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES ('a', 'b')",
                        NULL, NULL, NULL);
        TAP_OK(r == 0, "a write commits on three voters");
        r = osm_dq_transfer(&c, 12);
        TAP_OK(r == 0, "TRANSFER leadership to node 12 (%s)", c.err_msg);
        osm_dq_close(&c);
        r = dial_leader(&c, a[0], &leader);
        TAP_OK(r == 0 && leader == 12, "node 12 leads now (%llu)", (unsigned long long) leader);
        osm_dq_close(&c);

        /* Stop the leader: the other two elect one of themselves and have the data. */
        osm_bnode_stop(n[1]);
        n[1] = NULL;
        uint64_t t0 = osm_now_mono_us();
        r = dial_leader(&c, a[0], &leader);
        TAP_OK(r == 0 && leader != 12, "a new leader after the old one stopped (%llu, %.0f ms)",
               (unsigned long long) leader, (double) (osm_now_mono_us() - t0) / 1000);
        json_t *cols = NULL, *rows = NULL;
        r = osm_dq_query(&c, "SELECT v FROM kv WHERE k = 'a'", NULL, &cols, &rows);
        TAP_OK(r == 0 && json_array_size(rows) == 1, "the committed row survived the leader");
        json_decref(cols);
        json_decref(rows);
        r = osm_dq_remove(&c, 12);
        TAP_OK(r == 0, "REMOVE the stopped node (%s)", c.err_msg);
        r = osm_dq_cluster(&c, &nodes, &nn);
        TAP_OK(r == 0 && nn == 2, "CLUSTER: two nodes left");
        free(nodes);
        osm_dq_close(&c);
        osm_bnode_stop(n[0]);
        osm_bnode_stop(n[2]);
}

int main(int argc, char **argv) {
        /* Under qemu-user (meson's exe_wrapper for a cross build) a dqlite node crashes
         * (SIGSEGV inside libraft/libuv); the building is tested natively. */
        const char *wrapper = getenv("MESON_EXE_WRAPPER");
        if (wrapper && *wrapper) {
                printf("1..0 # SKIP dqlite nodes do not run under qemu-user\n");
                return 0;
        }
        signal(SIGPIPE, SIG_IGN);   /* dqlite writes to peers that just stopped */
        test_pid = (int) getpid();
        snprintf(tmpdir, sizeof tmpdir, "/tmp/osm-test-dqlite-%d", test_pid);
        static const tap_case cases[] = {
                TAP_CASE(test_single),
                TAP_CASE(test_three),
        };
        int r = tap_run(cases, TAP_N_CASES(cases), argc, argv);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        (void) !system(cmd);
        return r;
}
