/* roles.c: who votes. As LXD's cluster Rebalance: 3 voters (5 from 7 rooms up), 2
 * standbys, the rest spares; a voter that is offline is replaced by an online standby
 * (or spare) — the replacement promoted first, then the offline one demoted, so that the
 * number of online voters never drops on the way. */
#include <stddef.h>

#include "daemon/building/building-internal.h"

static size_t count(const bld_role_node *n, size_t len, int role, int online /* -1 any */) {
        size_t k = 0;
        for (size_t i = 0; i < len; i++)
                if (n[i].role == role && (online < 0 || n[i].online == (online != 0)))
                        k++;
        return k;
}

/* The first node with role and online state, or -1 (the leader only if allowed). */
static long pick_ex(const bld_role_node *n, size_t len, int role, bool online, bool leader_ok) {
        for (size_t i = 0; i < len; i++)
                if (n[i].role == role && n[i].online == online && (leader_ok || !n[i].leader))
                        return (long) i;
        return -1;
}

static long pick(const bld_role_node *n, size_t len, int role, bool online) {
        return pick_ex(n, len, role, online, true);
}

size_t bld_roles_plan(const bld_role_node *nodes, size_t n, bld_role_change *out, size_t max) {
        size_t want_voters = n >= 7 ? 5 : 3, want_standbys = 2, k = 0;
        if (want_voters > n)
                want_voters = n;
        if (want_standbys > n - want_voters)
                want_standbys = n - want_voters;
        if (max == 0)
                return 0;
        size_t voters = count(nodes, n, OSM_DQ_VOTER, -1), standbys = count(nodes, n, OSM_DQ_STANDBY, -1);

        /* Too few voters, or an offline voter to replace: promote an online standby, else
         * an online spare. */
        size_t online_voters = count(nodes, n, OSM_DQ_VOTER, 1);
        if (voters < want_voters || online_voters < want_voters) {
                long c = pick(nodes, n, OSM_DQ_STANDBY, true);
                if (c < 0)
                        c = pick(nodes, n, OSM_DQ_SPARE, true);
                if (c >= 0) {
                        out[k++] = (bld_role_change) { nodes[c].id, OSM_DQ_VOTER };
                        return k;   /* one change at a time: raft takes them one by one */
                }
        }
        /* More voters than wanted (after a replacement): demote an offline one first. */
        if (voters > want_voters) {
                long c = pick(nodes, n, OSM_DQ_VOTER, false);
                if (c < 0)
                        c = pick_ex(nodes, n, OSM_DQ_VOTER, true, false);
                /* never demote the last online voters below what is wanted */
                if (c >= 0 && (!nodes[c].online || count(nodes, n, OSM_DQ_VOTER, 1) > want_voters)) {
                        out[k++] = (bld_role_change) { nodes[c].id, nodes[c].online ? OSM_DQ_STANDBY : OSM_DQ_SPARE };
                        return k;
                }
        }
        /* Standbys: replace an offline one, fill up, or trim. */
        if (standbys < want_standbys || count(nodes, n, OSM_DQ_STANDBY, 1) < want_standbys) {
                long c = pick(nodes, n, OSM_DQ_SPARE, true);
                if (c >= 0) {
                        out[k++] = (bld_role_change) { nodes[c].id, OSM_DQ_STANDBY };
                        return k;
                }
        }
        if (standbys > want_standbys) {
                long c = pick(nodes, n, OSM_DQ_STANDBY, false);
                if (c < 0)
                        c = pick(nodes, n, OSM_DQ_STANDBY, true);
                if (c >= 0)
                        out[k++] = (bld_role_change) { nodes[c].id, OSM_DQ_SPARE };
        }
        return k;
}
