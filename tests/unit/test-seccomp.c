/* test-seccomp.c: the compiled seccomp policies: architectures, cache, the masked TIOCSTI compare (no loading: runs under qemu too). */
#include <errno.h>
#include <linux/audit.h>
#include <stdio.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>

#include "daemon/sandbox/sandbox-internal.h"
#include "tap.h"

#if defined(__x86_64__)
#define NATIVE AUDIT_ARCH_X86_64
#define FOREIGN AUDIT_ARCH_I386
#elif defined(__aarch64__)
#define NATIVE AUDIT_ARCH_AARCH64
#define FOREIGN AUDIT_ARCH_ARM
#elif defined(__arm__)
#define NATIVE AUDIT_ARCH_ARM
#define FOREIGN AUDIT_ARCH_AARCH64
#endif

/* Does prog compare the accumulator with k anywhere (a BPF_JMP|BPF_JEQ|BPF_K)? */
static bool compares(const struct sock_fprog *p, uint32_t k) {
        for (unsigned i = 0; i < p->len; i++)
                if (p->filter[i].code == (BPF_JMP | BPF_JEQ | BPF_K) && p->filter[i].k == k)
                        return true;
        return false;
}

/* A classic-BPF interpreter for what libseccomp emits, to run a policy on a made-up
 * syscall without loading it (so this runs under qemu-user as well). Returns the
 * filter's answer (SECCOMP_RET_*), or 0xdeadbeef for a program it cannot run. */
static uint32_t run_filter(const struct sock_fprog *p, uint32_t arch, int nr, const uint64_t args[6]) {
        struct seccomp_data d;
        memset(&d, 0, sizeof(d));
        d.nr = nr;
        d.arch = arch;
        for (int i = 0; i < 6; i++)
                d.args[i] = args ? args[i] : 0;
        const unsigned char *data = (const unsigned char *) &d;
        uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = { 0 };
        for (unsigned pc = 0; pc < p->len; pc++) {
                const struct sock_filter *f = &p->filter[pc];
                switch (f->code) {
                case BPF_LD | BPF_W | BPF_ABS:
                        if (f->k + 4 > sizeof(d))
                                return 0xdeadbeef;
                        memcpy(&A, data + f->k, 4);
                        break;
                case BPF_LD | BPF_IMM: A = f->k; break;
                case BPF_LDX | BPF_IMM: X = f->k; break;
                case BPF_LD | BPF_MEM: A = M[f->k % BPF_MEMWORDS]; break;
                case BPF_LDX | BPF_MEM: X = M[f->k % BPF_MEMWORDS]; break;
                case BPF_ST: M[f->k % BPF_MEMWORDS] = A; break;
                case BPF_STX: M[f->k % BPF_MEMWORDS] = X; break;
                case BPF_ALU | BPF_AND | BPF_K: A &= f->k; break;
                case BPF_ALU | BPF_OR | BPF_K: A |= f->k; break;
                case BPF_MISC | BPF_TAX: X = A; break;
                case BPF_MISC | BPF_TXA: A = X; break;
                case BPF_JMP | BPF_JA: pc += f->k; break;
                case BPF_JMP | BPF_JEQ | BPF_K: pc += A == f->k ? f->jt : f->jf; break;
                case BPF_JMP | BPF_JGT | BPF_K: pc += A > f->k ? f->jt : f->jf; break;
                case BPF_JMP | BPF_JGE | BPF_K: pc += A >= f->k ? f->jt : f->jf; break;
                case BPF_JMP | BPF_JSET | BPF_K: pc += (A & f->k) ? f->jt : f->jf; break;
                case BPF_RET | BPF_K: return f->k;
                case BPF_RET | BPF_A: return A;
                default: return 0xdeadbeef;
                }
        }
        return 0xdeadbeef;
}

/* Both filters, as the kernel combines them: the most restrictive answer wins (lower
 * action values, as signed 32-bit, are stricter: KILL_PROCESS is 0x80000000). */
static uint32_t verdict(const osm_seccomp_prog *p, uint32_t arch, int nr, const uint64_t args[6]) {
        uint32_t a = run_filter(&p->allow, arch, nr, args), b = run_filter(&p->deny, arch, nr, args);
        return (int32_t) (a & SECCOMP_RET_ACTION_FULL) < (int32_t) (b & SECCOMP_RET_ACTION_FULL) ? a : b;
}

#define ERRNO(e) (SECCOMP_RET_ERRNO | (e))

/* The default policy, compiled (a case's own cache); NULL after a failed check. */
static const osm_seccomp_prog *default_policy(osm_seccomp_cache *c) {
        const osm_seccomp_prog *p = NULL;
        int r = osm_seccomp_get(c, 0, &p);
        TAP_OK(r == 0 && p && p->allow.len > 50 && p->deny.len > 5, "the default policy compiles (%d: %u + %u insns)", r,
               p ? p->allow.len : 0, p ? p->deny.len : 0);
        return r < 0 ? NULL : p;
}

static void test_default_policy(void) {
        osm_seccomp_cache c = { 0 };
        const osm_seccomp_prog *p = default_policy(&c), *again = NULL;
        if (!p)
                return;
        TAP_OK(osm_seccomp_get(&c, 0, &again) == 0 && again == p, "it is compiled once and cached");
#ifdef NATIVE
        TAP_OK(compares(&p->allow, NATIVE) && compares(&p->deny, NATIVE), "both filters check the native architecture");
        TAP_OK(!compares(&p->allow, FOREIGN) && !compares(&p->deny, FOREIGN),
               "no foreign architecture is let in (it hits the kill action)");
#endif
        TAP_OK(compares(&p->deny, TIOCSTI), "the denylist refuses TIOCSTI");
        TAP_OK(!compares(&p->allow, TIOCSTI), "the allowlist allows ioctl as such");
        osm_seccomp_cache_clear(&c);
}

/* The filters run on the arguments of calls (a BPF interpreter in the test). */
static void test_verdicts(void) {
#ifdef NATIVE
        osm_seccomp_cache c = { 0 };
        const osm_seccomp_prog *p = default_policy(&c);
        if (!p)
                return;
        uint64_t a_sti[6] = { 0, TIOCSTI }, a_sti_hi[6] = { 0, TIOCSTI | (1ULL << 32) }, a_get[6] = { 0, TCGETS };
        uint64_t a_fork[6] = { SIGCHLD }, a_userns[6] = { CLONE_NEWUSER | SIGCHLD }, a_netns[6] = { CLONE_NEWNET };
        TAP_EQ_INT(verdict(p, NATIVE, SYS_ioctl, a_sti), ERRNO(EPERM), "run: ioctl(TIOCSTI) -> EPERM");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_ioctl, a_sti_hi), ERRNO(EPERM),
                   "run: ioctl(TIOCSTI | 1 << 32) -> EPERM (only the low 32 bits are compared)");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_ioctl, a_get), SECCOMP_RET_ALLOW, "run: ioctl(TCGETS) -> allowed");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_getpid, NULL), SECCOMP_RET_ALLOW, "run: getpid -> allowed");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_bpf, NULL), ERRNO(EPERM), "run: bpf -> EPERM (default action)");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_ptrace, NULL), ERRNO(EPERM), "run: ptrace -> EPERM");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_mount, NULL), ERRNO(EPERM), "run: mount -> EPERM");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_clone3, NULL), ERRNO(ENOSYS), "run: clone3 -> ENOSYS (libc falls back to clone)");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_clone, a_fork), SECCOMP_RET_ALLOW, "run: clone(SIGCHLD) -> allowed");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_clone, a_userns), ERRNO(EPERM), "run: clone(CLONE_NEWUSER) -> EPERM");
        TAP_EQ_INT(verdict(p, NATIVE, SYS_clone, a_netns), ERRNO(EPERM), "run: clone(CLONE_NEWNET) -> EPERM");
        uint32_t foreign = verdict(p, FOREIGN, 20, NULL) & SECCOMP_RET_ACTION_FULL;
        TAP_OK(foreign == SECCOMP_RET_KILL_PROCESS || foreign == SECCOMP_RET_KILL_THREAD,
               "run: any syscall of a foreign architecture -> killed (0x%x)", foreign);
        osm_seccomp_cache_clear(&c);
#else
        tap_skip("no native architecture known to the test", "verdicts");
#endif
}

static void test_other_policies(void) {
        osm_seccomp_cache c = { 0 };
        const osm_seccomp_prog *p = default_policy(&c);
        if (!p)
                return;
        const osm_seccomp_prog *p32 = NULL;
        int r = osm_seccomp_get(&c, OSM_SECCOMP_COMPAT32, &p32);
#if defined(__aarch64__)
        TAP_OK(r == 0 && p32 != p, "a compat32 policy exists on arm64");
        TAP_OK(r == 0 && compares(&p32->allow, AUDIT_ARCH_ARM) && compares(&p32->allow, AUDIT_ARCH_AARCH64),
               "…admitting the 32-bit ARM ABI beside the native one");
        uint64_t arm_sti[6] = { 0, TIOCSTI | (1ULL << 32) };
        TAP_OK(r == 0 && compares(&p32->deny, AUDIT_ARCH_ARM) &&
                       verdict(p32, AUDIT_ARCH_ARM, 54 /* arm ioctl */, arm_sti) == ERRNO(EPERM),
               "…and TIOCSTI is refused on the 32-bit ABI too");
        TAP_OK(r == 0 && verdict(p32, AUDIT_ARCH_ARM, 20 /* arm getpid */, NULL) == SECCOMP_RET_ALLOW &&
                       verdict(p32, AUDIT_ARCH_ARM, 26 /* arm ptrace */, NULL) == ERRNO(EPERM),
               "…where getpid is allowed and ptrace refused");
#else
        TAP_OK(r == -EOPNOTSUPP, "no compat32 policy off arm64: 32-bit ABIs stay denied (%d)", r);
#endif
        TAP_OK(osm_seccomp_get(&c, 7, &p32) == -EINVAL, "an unknown policy is refused");
        osm_seccomp_cache_clear(&c);
}

int main(int argc, char **argv) {
        static const tap_case cases[] = {
                TAP_CASE(test_default_policy),
                TAP_CASE(test_verdicts),
                TAP_CASE(test_other_policies),
        };
        return tap_run(cases, TAP_N_CASES(cases), argc, argv);
}
