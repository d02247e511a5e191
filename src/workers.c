/*
 * workers.c: registration of wsctl's static background workers, and the
 * wsctl.workers view's data.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "shmem.h"
#include "workers.h"
#include "wsctl.h"

PG_FUNCTION_INFO_V1(wsctl_worker_status);
PG_FUNCTION_INFO_V1(wsctl_operation_progress);

static const char *const component_names[WSCTL_NUM_COMPONENTS] = {
	"health_monitor", "reconciler", "event_listener", "ttl_manager", "archive_gc"
};

/* The component's name in wsctl.workers and wsctl.metrics. */
const char *
wsctl_component_name(int component)
{
	return component_names[component];
}

static void
register_component(const char *name, const char *function)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;	/* seconds; all state is in the table */
	strlcpy(worker.bgw_library_name, "wsctl", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "wsctl %s", name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "wsctl %s", name);
	RegisterBackgroundWorker(&worker);
}

void
wsctl_register_workers(void)
{
	int			needed = WSCTL_NUM_COMPONENTS + wsctl_max_concurrent_operations;

	register_component("health_monitor", "wsctl_health_monitor_main");
	register_component("reconciler", "wsctl_reconciler_main");
	register_component("event_listener", "wsctl_event_listener_main");
	register_component("ttl_manager", "wsctl_ttl_manager_main");
	register_component("archive_gc", "wsctl_archive_gc_main");

	if (max_worker_processes < needed + max_parallel_workers)
		ereport(WARNING,
				(errmsg("max_worker_processes (%d) is smaller than wsctl needs (%d) plus max_parallel_workers (%d)",
						max_worker_processes, needed, max_parallel_workers),
				 errhint("wsctl runs %d components and up to wsctl.max_concurrent_operations = %d operation workers; see docs/configuration.md.",
						 WSCTL_NUM_COMPONENTS, wsctl_max_concurrent_operations)));
}

/*
 * What a component row of wsctl.workers says on a standby. The static
 * workers are registered with BgWorkerStart_RecoveryFinished, so on a
 * standby no component has a pid, which alone reads like a crash loop or a
 * missing database; the view says why instead, in last_error, so that its
 * columns stay those of every version (no upgrade script needed).
 */
#define WSCTL_STANDBY_IDLE_TEXT "standby (in recovery): idle until promoted"

static Datum
timestamp_or_null(TimestampTz t, bool *isnull)
{
	*isnull = (t == 0);
	return TimestampTzGetDatum(t);
}

/* Rows of wsctl.workers: the components, then the busy operation slots. */
Datum
wsctl_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		standby = RecoveryInProgress();

	InitMaterializedSRF(fcinfo, 0);
	for (int c = 0; c < WSCTL_NUM_COMPONENTS; c++)
	{
		WsctlComponentStatus s = wsctl_status_get((WsctlComponent) c);
		Datum		values[11];
		bool		nulls[11] = {0};

		values[0] = CStringGetTextDatum(component_names[c]);
		values[1] = Int32GetDatum(s.pid);
		nulls[1] = (s.pid == 0);
		values[2] = BoolGetDatum(s.leader && s.pid != 0);
		values[3] = timestamp_or_null(s.started_at, &nulls[3]);
		values[4] = timestamp_or_null(s.last_tick, &nulls[4]);
		values[5] = Int64GetDatum((int64) s.ticks);
		values[6] = Float8GetDatum(s.last_tick_ms);
		values[7] = Int64GetDatum((int64) s.docker_calls_last_tick);
		values[8] = CStringGetTextDatum(s.last_error);
		nulls[8] = (s.last_error[0] == '\0');
		values[9] = timestamp_or_null(s.last_error_at, &nulls[9]);

		/*
		 * A standby's workers never ran since its postmaster started (a
		 * server leaves recovery only once), so there is no error of
		 * theirs to hide. last_error_at stays NULL: this is a state, not
		 * an error that happened at some time, and checks that alert on a
		 * recent last_error_at stay quiet on a healthy standby.
		 */
		if (standby && s.pid == 0)
		{
			values[8] = CStringGetTextDatum(WSCTL_STANDBY_IDLE_TEXT);
			nulls[8] = false;
			nulls[9] = true;
		}
		nulls[10] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (int i = 0; i < WSCTL_MAX_OPERATION_SLOTS; i++)
	{
		WsctlOpSlot s = wsctl_op_slot_get(i);
		Datum		values[11];
		bool		nulls[11] = {0};
		static const char *const states[] = {"free", "launched", "acting", "succeeded", "failed"};

		if (s.state == OP_SLOT_FREE)
			continue;
		values[0] = CStringGetTextDatum(psprintf("operation %s (%s)", s.operation, states[s.state]));
		values[1] = Int32GetDatum(s.pid);
		nulls[1] = (s.pid == 0);
		values[2] = BoolGetDatum(false);
		values[3] = timestamp_or_null(s.launched_at, &nulls[3]);
		values[4] = timestamp_or_null(s.finished_at, &nulls[4]);
		values[5] = Int64GetDatum(0);
		nulls[6] = nulls[7] = true;
		values[8] = CStringGetTextDatum(s.message);
		nulls[8] = (s.message[0] == '\0');
		nulls[9] = true;
		values[10] = UUIDPGetDatum(&s.workspace_id);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Rows of wsctl.operation_progress: each operation worker that reported
 * progress of a transfer (archive, restore), from shared memory.
 */
Datum
wsctl_operation_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < WSCTL_MAX_OPERATION_SLOTS; i++)
	{
		WsctlOpSlot s = wsctl_op_slot_get(i);
		Datum		values[7];
		bool		nulls[7] = {0};

		if (s.state == OP_SLOT_FREE || s.progress_at == 0)
			continue;
		values[0] = UUIDPGetDatum(&s.workspace_id);
		values[1] = CStringGetTextDatum(s.operation);
		values[2] = UUIDPGetDatum(&s.op_id);
		values[3] = Int64GetDatum(s.bytes_done);
		values[4] = Int64GetDatum(s.bytes_total);
		nulls[4] = (s.bytes_total < 0);
		values[5] = timestamp_or_null(s.launched_at, &nulls[5]);
		values[6] = timestamp_or_null(s.progress_at, &nulls[6]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
