/*
 * workers.h: registration and entry points of wsctl's background workers.
 */
#ifndef WSCTL_WORKERS_H
#define WSCTL_WORKERS_H

#include "postgres.h"

extern void wsctl_register_workers(void);
extern const char *wsctl_component_name(int component);

extern PGDLLEXPORT void wsctl_health_monitor_main(Datum arg);
extern PGDLLEXPORT void wsctl_reconciler_main(Datum arg);
extern PGDLLEXPORT void wsctl_event_listener_main(Datum arg);
extern PGDLLEXPORT void wsctl_ttl_manager_main(Datum arg);
extern PGDLLEXPORT void wsctl_archive_gc_main(Datum arg);
extern PGDLLEXPORT void wsctl_operation_main(Datum arg);

#endif							/* WSCTL_WORKERS_H */
