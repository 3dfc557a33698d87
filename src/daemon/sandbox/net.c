/* net.c: the network a grant gives: a veth pair from the operator's bridge into the sandbox's network namespace (libnl). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osmose/util.h"
#include "daemon/sandbox/sandbox-internal.h"

#ifdef HAVE_LIBNL
#include "daemon/dl-nl.h"
#endif

static int set_err(osm_error *err, int code, const char *what, const char *detail) {
        return osm_error_set(err, code, 0, "network: %s: %s", what, detail);
}

#ifdef HAVE_LIBNL   /* addresses are only handed out where veths can be made */
/* The bridge's IPv4 address and prefix, from the host's interfaces. */
static int bridge_addr(const char *bridge, uint32_t *addr, int *prefix) {
        struct ifaddrs *ifa = NULL;
        if (getifaddrs(&ifa) < 0)
                return -errno;
        int r = -EADDRNOTAVAIL;
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || strcmp(i->ifa_name, bridge) != 0)
                        continue;
                *addr = ntohl(((struct sockaddr_in *) i->ifa_addr)->sin_addr.s_addr);
                uint32_t mask = ntohl(((struct sockaddr_in *) i->ifa_netmask)->sin_addr.s_addr);
                *prefix = __builtin_popcount(mask);
                r = 0;
                break;
        }
        freeifaddrs(ifa);
        return r;
}

/* Lowest free host address of the bridge's subnet (not the network, the broadcast or
 * the bridge itself). */
static int lease_addr(osm_net *net, uint32_t br, int prefix, uint32_t *out) {
        if (prefix < 8 || prefix > 30)
                return -ERANGE;
        uint32_t mask = prefix ? 0xffffffffu << (32 - prefix) : 0;
        uint32_t base = br & mask, size = ~mask + 1;
        for (uint32_t h = 1; h < size - 1 && h < 65536; h++) {
                uint32_t a = base + h;
                if (a == br)
                        continue;
                bool used = false;
                for (size_t i = 0; i < net->n_leases && !used; i++)
                        used = net->leases[i] == a;
                if (used)
                        continue;
                uint32_t *l = realloc(net->leases, (net->n_leases + 1) * sizeof(*l));
                if (!l)
                        return -ENOMEM;
                net->leases = l;
                net->leases[net->n_leases++] = a;
                *out = a;
                return 0;
        }
        return -EADDRINUSE;
}
#endif /* HAVE_LIBNL */

void osm_net_release(osm_net *net, uint32_t addr) {
        for (size_t i = 0; addr && i < net->n_leases; i++)
                if (net->leases[i] == addr) {
                        net->leases[i] = net->leases[--net->n_leases];
                        return;
                }
}

void osm_net_clear(osm_net *net) {
        free(net->leases);
        net->leases = NULL;
        net->n_leases = 0;
}

#ifdef HAVE_LIBNL

/* Run with the calling thread in pid's network namespace: open a netlink socket there
 * (a socket stays in the namespace it was made in), then come back. setns(CLONE_NEWNET)
 * only moves this thread, so the daemon's other threads never notice. */
static int socket_in_netns(pid_t pid, struct nl_sock **out) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int) pid);
        _cleanup_close_ int target = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (target < 0 || self < 0)
                return -errno;
        if (setns(target, CLONE_NEWNET) < 0)
                return -errno;
        struct nl_sock *s = sym_nl_socket_alloc();
        int r = s ? sym_nl_connect(s, NETLINK_ROUTE) : -NLE_NOMEM;
        if (setns(self, CLONE_NEWNET) < 0)
                abort();   /* a thread stuck in a sandbox's namespace: a broken invariant */
        if (r < 0) {
                sym_nl_socket_free(s);
                return -EIO;
        }
        *out = s;
        return 0;
}

static int link_up(struct nl_sock *s, const char *name, int master) {
        struct rtnl_link *l = NULL, *change = sym_rtnl_link_alloc();
        int r = change ? sym_rtnl_link_get_kernel(s, 0, name, &l) : -NLE_NOMEM;
        if (r >= 0) {
                if (master > 0)
                        sym_rtnl_link_set_master(change, master);
                sym_rtnl_link_set_flags(change, IFF_UP);
                r = sym_rtnl_link_change(s, l, change, 0);
        }
        sym_rtnl_link_put(l);
        sym_rtnl_link_put(change);
        return r;
}

int osm_net_attach(osm_net *net, pid_t pid, unsigned seq, uint32_t *addr_out, osm_error *err) {
        uint32_t br = 0, me = 0;
        int prefix = 0;
        *addr_out = 0;
        osm_error dl_err;
        int r = osm_dl_nl(&dl_err);
        if (r < 0)
                return set_err(err, r, "libnl", dl_err.message);
        r = bridge_addr(net->bridge, &br, &prefix);
        if (r < 0)
                return set_err(err, r, net->bridge, "no such bridge with an IPv4 address");
        r = lease_addr(net, br, prefix, &me);
        if (r < 0)
                return set_err(err, r, net->bridge, "no free address in its subnet");
        struct nl_sock *host = sym_nl_socket_alloc(), *in = NULL;
        struct rtnl_addr *a = NULL;
        struct rtnl_route *rt = NULL;
        struct nl_addr *local = NULL, *gw = NULL, *any = NULL;
        char veth[IFNAMSIZ];
        snprintf(veth, sizeof(veth), "osm%x.%x", (unsigned) pid & 0xffffff, seq & 0xff);
        int br_index = (int) if_nametoindex(net->bridge);
        const char *step = "netlink";
        if (!host || sym_nl_connect(host, NETLINK_ROUTE) < 0)
                goto fail;
        step = "creating the veth pair";
        r = sym_rtnl_link_veth_add(host, veth, "eth0", pid);
        if (r < 0)
                goto fail;
        step = "attaching to the bridge";
        if (br_index <= 0 || link_up(host, veth, br_index) < 0)
                goto fail;
        step = "entering the sandbox's network namespace";
        if (socket_in_netns(pid, &in) < 0)
                goto fail;
        step = "bringing eth0 up";
        if (link_up(in, "eth0", 0) < 0)
                goto fail;
        step = "adding the address";
        uint32_t be = htonl(me), bgw = htonl(br), zero = 0;
        local = sym_nl_addr_build(AF_INET, &be, 4);
        gw = sym_nl_addr_build(AF_INET, &bgw, 4);
        any = sym_nl_addr_build(AF_INET, &zero, 4);
        a = sym_rtnl_addr_alloc();
        if (!local || !gw || !any || !a)
                goto fail;
        sym_nl_addr_set_prefixlen(local, prefix);
        sym_nl_addr_set_prefixlen(any, 0);
        {
                struct rtnl_link *eth = NULL;
                if (sym_rtnl_link_get_kernel(in, 0, "eth0", &eth) < 0)
                        goto fail;
                int idx = sym_rtnl_link_get_ifindex(eth);
                sym_rtnl_link_put(eth);
                sym_rtnl_addr_set_ifindex(a, idx);
                sym_rtnl_addr_set_local(a, local);
                sym_rtnl_addr_set_prefixlen(a, prefix);
                if (sym_rtnl_addr_add(in, a, 0) < 0)
                        goto fail;
                step = "adding the default route";
                rt = sym_rtnl_route_alloc();
                struct rtnl_nexthop *nh = sym_rtnl_route_nh_alloc();
                if (!rt || !nh)
                        goto fail;
                sym_rtnl_route_set_family(rt, AF_INET);
                sym_rtnl_route_set_dst(rt, any);
                sym_rtnl_route_nh_set_gateway(nh, gw);
                sym_rtnl_route_nh_set_ifindex(nh, idx);
                sym_rtnl_route_add_nexthop(rt, nh);
                if (sym_rtnl_route_add(in, rt, 0) < 0)
                        goto fail;
        }
        *addr_out = me;
        r = 0;
        goto out;
fail:
        r = set_err(err, -EIO, step, "failed");
        osm_net_release(net, me);
out:
        sym_rtnl_route_put(rt);
        sym_rtnl_addr_put(a);
        sym_nl_addr_put(local);
        sym_nl_addr_put(gw);
        sym_nl_addr_put(any);
        sym_nl_socket_free(in);
        sym_nl_socket_free(host);
        return r;
}

#else

int osm_net_attach(osm_net *net, pid_t pid, unsigned seq, uint32_t *addr_out, osm_error *err) {
        *addr_out = 0;
        return set_err(err, -EOPNOTSUPP, net->bridge,
                       "this osmosed was built without libnl (bridge networks unsupported)");
}

#endif
