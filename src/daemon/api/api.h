/* api.h: the workload API subsystem (d->api): per-instance sockets serving io.osmose.Api. */
#pragma once

#include <stddef.h>

typedef struct osm_api osm_api;

struct osm_subsystem;
extern const struct osm_subsystem osm_api_subsystem;

/* Make the API socket of one instance: a directory state_dir/api/INSTANCE (0700, the
 * daemon's alone) holding api.sock (listening, owned by the host uid that the sandbox's
 * uid 0 maps to, mode 0600), served by a Varlink server of its own whose calls act for
 * this instance. Writes the socket's host path into path (size bytes), for the sandbox to
 * bind at /run/osmose/api.sock. A socket the instance already had is replaced.
 * Returns 0 or -errno (-EINVAL: bad id, -ENAMETOOLONG: path does not fit). The workload
 * subsystem calls it through its api hooks, once per instance before its first spawn. */
int osm_api_instance_create(osm_api *a, const char *instance_id, const char *workload, char *path, size_t size);

/* The instance has ended for good: close its clients (their watches end), withdraw its
 * services, remove its socket. Unknown ids are ignored. */
void osm_api_instance_destroy(osm_api *a, const char *instance_id);
