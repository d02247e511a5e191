/*
 * metrics.h: counters behind the wsctl.metrics view.
 *
 * Counters live in shared memory as atomics: every process adds to them
 * without a lock, and a server restart sets them back to zero (Prometheus'
 * rate() and increase() expect exactly that of a counter). Gauges that the
 * table can answer (workspaces by status, outbox lag) are computed by the
 * view in SQL and are not here.
 */
#ifndef WSCTL_METRICS_H
#define WSCTL_METRICS_H

#include "postgres.h"

/* The services wsctl calls; each call counts once, failed or not. */
typedef enum WsctlService
{
	WSCTL_SERVICE_DOCKER = 0,
	WSCTL_SERVICE_S3,
	WSCTL_SERVICE_REDIS,
	WSCTL_NUM_SERVICES
} WsctlService;

/* Directions of archive bytes: compressed bytes sent to or read from S3. */
typedef enum WsctlArchiveDirection
{
	WSCTL_ARCHIVE_UPLOADED = 0,
	WSCTL_ARCHIVE_DOWNLOADED,
	WSCTL_NUM_ARCHIVE_DIRECTIONS
} WsctlArchiveDirection;

extern Size wsctl_metrics_shmem_size(void);
extern void wsctl_metrics_shmem_attach(void);

extern void wsctl_metrics_call(WsctlService service, bool failed);
extern void wsctl_metrics_events_shipped(uint64 n);
extern void wsctl_metrics_archive_bytes(WsctlArchiveDirection direction, uint64 n);

#endif							/* WSCTL_METRICS_H */
