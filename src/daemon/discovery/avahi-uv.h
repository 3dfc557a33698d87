/* avahi-uv.h: an AvahiPoll whose watches and timeouts live on a libuv loop. */
#pragma once

#include <avahi-common/watch.h>
#include <uv.h>

typedef struct osm_avahi_poll osm_avahi_poll;

/* Make an AvahiPoll running on loop. Returns 0 or -ENOMEM. */
int osm_avahi_poll_new(uv_loop_t *loop, osm_avahi_poll **out);

/* The AvahiPoll to hand to avahi_client_new(); valid until osm_avahi_poll_free(). */
const AvahiPoll *osm_avahi_poll_get(osm_avahi_poll *p);

/* Free the adapter. Free every Avahi object using it first (avahi_client_free); any
 * watch or timeout still registered is closed here. Accepts NULL, returns NULL. The
 * libuv handles finish closing on the next loop iteration. */
osm_avahi_poll *osm_avahi_poll_free(osm_avahi_poll *p);

/* Number of libuv handles the adapter holds open (for tests and leak checks). */
unsigned osm_avahi_poll_n_handles(const osm_avahi_poll *p);
