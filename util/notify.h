/* The service manager's readiness protocol (sd_notify(3)): one datagram of
 * "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET. Written
 * here in a few lines rather than linking libsystemd: the protocol is
 * stable and documented, and the proxy then runs the same under systemd,
 * under any other manager that speaks it, and without one. */
#ifndef OCIGATE_UTIL_NOTIFY_H
#define OCIGATE_UTIL_NOTIFY_H

#include "util/common.h"

/* Sends msg ("READY=1\nSTATUS=..."). Without $NOTIFY_SOCKET it does
 * nothing and returns 0; -1 when the socket is set but cannot be reached
 * (the caller logs it; a service manager that went away is no reason to
 * stop serving). */
OG_WARN_UNUSED int notify_send(const char *msg);

/* "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>\n" followed by
 * extra (may be NULL): systemd's Type=notify-reload wants the timestamp. */
OG_WARN_UNUSED int notify_reloading(const char *extra);

#endif
