/* dl-nl.h: libnl-3 and libnl-route-3, opened on first use (a workload granted a network). */
#pragma once

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include "daemon/dl.h"

#define OSM_DL_NL_SYMBOLS(X)                                                                     \
        X(nl_socket_alloc) X(nl_socket_free) X(nl_connect) X(nl_addr_build) X(nl_addr_put)        \
        X(nl_addr_set_prefixlen)
#define OSM_DL_NL_ROUTE_SYMBOLS(X)                                                               \
        X(rtnl_link_alloc) X(rtnl_link_put) X(rtnl_link_get_kernel) X(rtnl_link_change)           \
        X(rtnl_link_set_master) X(rtnl_link_set_flags) X(rtnl_link_get_ifindex)                   \
        X(rtnl_link_veth_add) X(rtnl_addr_alloc) X(rtnl_addr_put) X(rtnl_addr_set_ifindex)        \
        X(rtnl_addr_set_local) X(rtnl_addr_set_prefixlen) X(rtnl_addr_add) X(rtnl_route_alloc)    \
        X(rtnl_route_put) X(rtnl_route_set_family) X(rtnl_route_set_dst) X(rtnl_route_add)        \
        X(rtnl_route_add_nexthop) X(rtnl_route_nh_alloc) X(rtnl_route_nh_set_gateway)             \
        X(rtnl_route_nh_set_ifindex)

OSM_DL_NL_SYMBOLS(OSM_DL_DECLARE_X)
OSM_DL_NL_ROUTE_SYMBOLS(OSM_DL_DECLARE_X)

/* Both libraries. 0, or -EOPNOTSUPP and err naming the package to install. */
int osm_dl_nl(osm_error *err);
