/*
 * worker_common.h: what every wsctl background worker shares: start-up,
 * the wait between ticks, leader election, and short SPI transactions.
 */
#ifndef WSCTL_WORKER_COMMON_H
#define WSCTL_WORKER_COMMON_H

#include "postgres.h"

#include "wsctl.h"

extern void wsctl_worker_start(const char *name);
extern void wsctl_worker_track_status(WsctlComponent c);
extern MemoryContext wsctl_component_start(WsctlComponent c, const char *name);
extern bool wsctl_worker_wait(long timeout_ms);
extern bool wsctl_component_active(WsctlComponent c, bool *leader);

extern void wsctl_xact_begin(const char *activity);
extern void wsctl_xact_commit(void);
extern char *wsctl_xact_abort(MemoryContext cxt);

#endif							/* WSCTL_WORKER_COMMON_H */
