/* test-building-roles.c: who votes — 3 voters (5 from 7 rooms), 2 standbys, the rest
 * spares; an offline voter replaced by an online standby (promoted first, then the
 * offline one demoted), one change at a time, converging. */
#include <string.h>

#include "daemon/building/building-internal.h"
#include "tap.h"

#define V OSM_DQ_VOTER
#define S OSM_DQ_STANDBY
#define P OSM_DQ_SPARE

/* Apply the plan until it has nothing more to change (at most 20 steps). */
static int converge(bld_role_node *n, size_t len) {
        for (int steps = 0; steps < 20; steps++) {
                bld_role_change ch[1];
                if (bld_roles_plan(n, len, ch, 1) == 0)
                        return steps;
                for (size_t i = 0; i < len; i++)
                        if (n[i].id == ch[0].id)
                                n[i].role = ch[0].role;
        }
        return -1;
}

static size_t count(const bld_role_node *n, size_t len, int role, bool online_only) {
        size_t k = 0;
        for (size_t i = 0; i < len; i++)
                k += n[i].role == role && (!online_only || n[i].online);
        return k;
}

static void test_growing(void) {
        bld_role_change ch[4];
        bld_role_node one[] = { { 1, V, true } };
        TAP_EQ_INT(bld_roles_plan(one, 1, ch, 4), 0, "one room: nothing to change");

        bld_role_node three[] = { { 1, V, true }, { 2, P, true }, { 3, P, true } };
        TAP_OK(converge(three, 3) >= 0 && count(three, 3, V, false) == 3, "three rooms: three voters");

        bld_role_node five[] = { { 1, V, true }, { 2, V, true }, { 3, V, true }, { 4, P, true }, { 5, P, true } };
        TAP_OK(bld_roles_plan(five, 5, ch, 4) == 1 && ch[0].role == S, "five rooms: a spare becomes a standby first");
        TAP_OK(converge(five, 5) >= 0 && count(five, 5, V, false) == 3 && count(five, 5, S, false) == 2,
               "five rooms: 3 voters, 2 standbys");
}

static void test_offline_voter(void) {
        bld_role_change ch[4];
        bld_role_node five[] = { { 1, V, true }, { 2, V, true }, { 3, V, true }, { 4, P, true }, { 5, P, true } };
        TAP_OK(converge(five, 5) >= 0, "five rooms converge first");
        /* A voter goes offline: the online standby is promoted, then the dead one demoted. */
        five[1].online = false;
        TAP_OK(bld_roles_plan(five, 5, ch, 4) == 1 && ch[0].role == V && five[ch[0].id - 1].role == S &&
               five[ch[0].id - 1].online, "an offline voter: an online standby is promoted first");
        TAP_OK(converge(five, 5) >= 0, "converges");
        TAP_EQ_INT(count(five, 5, V, true), 3, "three online voters again");
        TAP_EQ_INT(five[1].role, P, "the offline voter ends a spare");
        TAP_EQ_INT(count(five, 5, S, true), 1, "the standby left is online (no spare online to refill)");
}

static void test_seven_and_six(void) {
        bld_role_node seven[7];
        for (int i = 0; i < 7; i++)
                seven[i] = (bld_role_node) { (uint64_t) i + 1, i < 3 ? V : P, true };
        TAP_OK(converge(seven, 7) >= 0 && count(seven, 7, V, false) == 5 && count(seven, 7, S, false) == 2,
               "seven rooms: 5 voters, 2 standbys");
        /* seven rooms, one less: back to 3 voters */
        TAP_OK(converge(seven, 6) >= 0 && count(seven, 6, V, false) == 3 && count(seven, 6, S, false) == 2,
               "six rooms: 3 voters, 2 standbys (extra voters demoted)");
}

static void test_leader_and_stuck(void) {
        bld_role_change ch[4];
        /* Extra voters are demoted, but never the leader. */
        bld_role_node lead[] = { { 1, V, true, true }, { 2, V, true, false }, { 3, V, true, false }, { 4, V, true, false } };
        TAP_OK(bld_roles_plan(lead, 4, ch, 4) == 1 && ch[0].id != 1 && ch[0].role == S, "an extra voter is demoted, not the leader");

        /* Without an online replacement, an offline voter stays: demoting it would not help. */
        bld_role_node stuck[] = { { 1, V, true }, { 2, V, false }, { 3, V, false } };
        TAP_EQ_INT(bld_roles_plan(stuck, 3, ch, 4), 0, "no online replacement: no change");
}

static void test_thirty(void) {
        bld_role_node many[30];
        for (int i = 0; i < 30; i++)
                many[i] = (bld_role_node) { (uint64_t) i + 1, i == 0 ? V : P, i % 4 != 3 };
        TAP_OK(converge(many, 30) >= 0 && count(many, 30, V, true) == 5 && count(many, 30, S, true) == 2,
               "thirty rooms, a quarter offline: 5 online voters, 2 online standbys");
}

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_growing),
                TAP_CASE(test_offline_voter),
                TAP_CASE(test_seven_and_six),
                TAP_CASE(test_leader_and_stuck),
                TAP_CASE(test_thirty),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
