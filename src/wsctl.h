/*
 * wsctl.h: settings and shared declarations of the wsctl extension.
 *
 * The GUC variables are defined in wsctl.c; every worker reads them after
 * a SIGHUP reload. Time-valued settings are stored in milliseconds.
 */
#ifndef WSCTL_H
#define WSCTL_H

#include "postgres.h"

/* Components that hold a leader lock and show up in wsctl.workers. */
typedef enum WsctlComponent
{
	WSCTL_HEALTH_MONITOR = 0,
	WSCTL_RECONCILER,
	WSCTL_EVENT_LISTENER,
	WSCTL_TTL_MANAGER,
	WSCTL_ARCHIVE_GC,
	WSCTL_NUM_COMPONENTS
} WsctlComponent;

/* Upper bound of wsctl.max_concurrent_operations (sizes shared memory). */
#define WSCTL_MAX_OPERATION_SLOTS 64

extern char *wsctl_database;
extern int	wsctl_health_interval_ms;
extern int	wsctl_reconcile_interval_ms;
extern int	wsctl_max_retries;
extern int	wsctl_retry_delay_ms;
extern int	wsctl_timeout_provisioning_ms;
extern int	wsctl_timeout_restoring_ms;
extern int	wsctl_timeout_starting_ms;
extern int	wsctl_timeout_stopping_ms;
extern int	wsctl_timeout_archiving_ms;
extern int	wsctl_timeout_deleting_ms;
extern int	wsctl_max_concurrent_operations;
extern int	wsctl_debug_operation_delay_ms;
extern int	wsctl_events_retention_s;
extern int	wsctl_ttl_interval_ms;
extern int	wsctl_ttl_warning_ms;
extern char *wsctl_sse_secret;
extern int	wsctl_gc_interval_ms;
extern int	wsctl_gc_orphan_delay_s;

#endif							/* WSCTL_H */
