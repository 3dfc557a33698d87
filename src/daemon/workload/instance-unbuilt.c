/* instance-unbuilt.c: used only while the sandbox implementation is not in the tree (see
 * meson.build): the workload subsystem installs and grants, but registers no run methods,
 * and its status says why. Deleted once src/daemon/sandbox/sandbox.c lands. */
#include "daemon/workload/wl.h"

const osm_method wl_instance_methods[] = { { NULL, NULL, OSM_ACCESS_WRITE } };
const size_t wl_n_instance_methods = 0;

void wl_instances_begin_shutdown(osm_workloads *w) {}
void wl_instances_stop_all(osm_workloads *w) {}
void wl_instances_stop_workload(osm_workloads *w, const char *name) {}
void wl_instances_sigchld(osm_workloads *w) {}
