/* dl-mosquitto.h: libmosquitto, opened when the first MQTT bridge starts. It links OpenSSL
 * (libssl, libcrypto: 1.7 MiB resident), so a room without a bridge maps none of it. */
#pragma once

#include <mosquitto.h>

#include "daemon/dl.h"

#define OSM_DL_MOSQUITTO_SYMBOLS(X)                                                              \
        X(mosquitto_lib_init) X(mosquitto_new) X(mosquitto_destroy) X(mosquitto_threaded_set)     \
        X(mosquitto_int_option) X(mosquitto_connect_with_flags_callback_set)                      \
        X(mosquitto_disconnect_callback_set) X(mosquitto_message_callback_set)                    \
        X(mosquitto_subscribe_callback_set) X(mosquitto_username_pw_set) X(mosquitto_tls_set)     \
        X(mosquitto_connect_async) X(mosquitto_subscribe_multiple) X(mosquitto_socket)            \
        X(mosquitto_loop_read) X(mosquitto_loop_write) X(mosquitto_loop_misc)                     \
        X(mosquitto_want_write) X(mosquitto_strerror) X(mosquitto_connack_string)

OSM_DL_MOSQUITTO_SYMBOLS(OSM_DL_DECLARE_X)

/* Open it (and run mosquitto_lib_init() once). 0, or -EOPNOTSUPP and err naming the package. */
int osm_dl_mosquitto(osm_error *err);
