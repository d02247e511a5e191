/*
 * reconciler.c: the StateReconciler background worker.
 *
 * Each tick lists the workspaces that are not converged or have an
 * operation in flight and reconciles each one in its own short transaction
 * through wsctl._reconcile_workspace(), which makes every decision and
 * every write. This file only does what SQL cannot: it tells SQL what the
 * operation workers are doing (from the slots in shared memory) and then
 * starts, releases or terminates those workers as SQL says. Docker is never
 * called here. A failure on one workspace is logged and skipped.
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "shmem.h"
#include "worker_common.h"
#include "workers.h"

/* A slot launched so long ago whose worker never reported is given up. */
#define LAUNCH_GIVE_UP_MS 60000

/* Handles of the workers this process started, by slot. */
static BackgroundWorkerHandle *handles[WSCTL_MAX_OPERATION_SLOTS];

/* Slots whose worker could not be registered; launched again next tick. */
static bool registration_failed[WSCTL_MAX_OPERATION_SLOTS];

typedef struct ReconcileAction
{
	char	   *action;
	char	   *operation;
	pg_uuid_t	op_id;
	char	   *detail;
} ReconcileAction;

static const char *
slot_state_name(OpSlotState state)
{
	switch (state)
	{
		case OP_SLOT_FREE:
			return "none";
		case OP_SLOT_LAUNCHED:
		case OP_SLOT_ACTING:
			return "busy";
		case OP_SLOT_SUCCEEDED:
			return "succeeded";
		case OP_SLOT_FAILED:
			return "failed";
	}
	return "none";
}

static bool
start_operation_worker(int slot)
{
	BackgroundWorker worker;
	WsctlOpSlot s = wsctl_op_slot_get(slot);
	MemoryContext old;
	bool		registered;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "wsctl", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "wsctl_operation_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "wsctl operation %s", s.operation);
	strlcpy(worker.bgw_type, "wsctl operation", BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(slot);
	memcpy(worker.bgw_extra, &s.workspace_id, sizeof(pg_uuid_t));
	memcpy(worker.bgw_extra + sizeof(pg_uuid_t), &s.op_id, sizeof(pg_uuid_t));
	worker.bgw_notify_pid = MyProcPid;

	if (handles[slot])
		pfree(handles[slot]);
	handles[slot] = NULL;
	old = MemoryContextSwitchTo(TopMemoryContext);	/* the handle outlives the tick */
	registered = RegisterDynamicBackgroundWorker(&worker, &handles[slot]);
	MemoryContextSwitchTo(old);
	registration_failed[slot] = !registered;
	if (!registered)
	{
		ereport(WARNING,
				(errmsg("wsctl reconciler: could not start an operation worker for %s, will retry",
						s.operation),
				 errhint("Raise max_worker_processes (see docs/configuration.md).")));
		handles[slot] = NULL;
		return false;
	}
	return true;
}

/*
 * Brings the slots up to date with the processes: a worker that exited
 * without reporting failed; a launch that could not be registered is tried
 * again; a launch whose handle this process lost (it restarted) and that
 * never reported is given up after LAUNCH_GIVE_UP_MS.
 */
static void
refresh_slots(void)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < WSCTL_MAX_OPERATION_SLOTS; i++)
	{
		WsctlOpSlot s = wsctl_op_slot_get(i);
		pid_t		pid;

		if (s.state != OP_SLOT_LAUNCHED && s.state != OP_SLOT_ACTING)
			continue;
		if (handles[i] != NULL)
		{
			if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
				wsctl_op_slot_finish(i, false, "Unreachable", "WORKER_EXITED",
									 "the operation worker exited without reporting an outcome");
		}
		else if (s.state == OP_SLOT_LAUNCHED)
		{
			if (TimestampDifferenceExceeds(s.launched_at, now, LAUNCH_GIVE_UP_MS))
				wsctl_op_slot_finish(i, false, "Unreachable", "WORKER_NOT_STARTED",
									 "the operation worker could not be started");
			else if (registration_failed[i])
				(void) start_operation_worker(i);
		}
	}
}

static ReconcileAction
call_reconcile(const char *workspace_id, int slot)
{
	WsctlOpSlot s;
	Oid			types[8] = {UUIDOID, TEXTOID, UUIDOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID,
	BOOLOID};
	Datum		args[8];
	char		nulls[8] = "        ";
	bool		can_launch;
	ReconcileAction a;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int			ret;

	memset(&s, 0, sizeof(s));
	if (slot >= 0)
		s = wsctl_op_slot_get(slot);
	can_launch = slot < 0 && wsctl_op_slots_in_use() < wsctl_max_concurrent_operations;

	args[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(workspace_id));
	args[1] = CStringGetTextDatum(slot_state_name(s.state));
	args[2] = UUIDPGetDatum(&s.op_id);
	args[3] = TimestampTzGetDatum(s.finished_at);
	args[4] = CStringGetTextDatum(s.reason);
	args[5] = CStringGetTextDatum(s.code);
	args[6] = CStringGetTextDatum(s.message);
	args[7] = BoolGetDatum(can_launch);
	if (s.state == OP_SLOT_FREE)
		nulls[2] = 'n';
	if (s.state != OP_SLOT_SUCCEEDED && s.state != OP_SLOT_FAILED)
		nulls[3] = 'n';

	ret = SPI_execute_with_args("SELECT a.action, a.operation::text, a.op_id::text, a.detail "
								"FROM wsctl._reconcile_workspace($1, $2, $3, $4, $5, $6, $7, $8) a",
								8, types, args, nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "wsctl reconciler: _reconcile_workspace failed: %s", SPI_result_code_string(ret));

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	memset(&a, 0, sizeof(a));
	a.action = SPI_getvalue(tup, desc, 1);
	a.operation = SPI_getvalue(tup, desc, 2);
	a.detail = SPI_getvalue(tup, desc, 4);
	(void) SPI_getbinval(tup, desc, 3, &isnull);
	if (!isnull)
		a.op_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in,
													 CStringGetDatum(SPI_getvalue(tup, desc, 3))));
	if (a.action == NULL)
		a.action = "none";
	return a;
}

static void
launch(const char *workspace_id, ReconcileAction *a)
{
	pg_uuid_t  *ws = DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(workspace_id)));
	int			slot = wsctl_op_slot_acquire(ws, &a->op_id, a->operation);

	if (slot == WSCTL_SLOT_TAKEN)
	{
		ereport(WARNING,
				(errmsg("wsctl reconciler: workspace %s: %s not launched: the workspace already has an operation worker",
						workspace_id, a->operation)));
		return;
	}
	if (slot < 0)
	{
		ereport(WARNING,
				(errmsg("wsctl reconciler: workspace %s: no free operation slot for %s",
						workspace_id, a->operation)));
		return;
	}
	ereport(DEBUG1, (errmsg("wsctl reconciler: workspace %s: starting %s worker",
							workspace_id, a->operation)));
	(void) start_operation_worker(slot);
}

static void
terminate(int slot)
{
	WsctlOpSlot s = wsctl_op_slot_get(slot);

	if (handles[slot] != NULL)
		TerminateBackgroundWorker(handles[slot]);
	else if (s.pid != 0)
		kill(s.pid, SIGTERM);	/* our own worker, started before a restart of ours */
}

static void
release(int slot)
{
	wsctl_op_slot_release(slot);
	registration_failed[slot] = false;
	if (handles[slot])
		pfree(handles[slot]);
	handles[slot] = NULL;
}

/*
 * Reconciles one workspace. After a finished worker's slot is released the
 * workspace is looked at once more, so a retry or the next step starts in
 * the same tick.
 */
static void
reconcile_one(const char *workspace_id, MemoryContext tick_cxt)
{
	for (int round = 0; round < 2; round++)
	{
		pg_uuid_t  *ws = DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(workspace_id)));
		int			slot = wsctl_op_slot_find(ws);
		ReconcileAction a;
		char	   *action;

		wsctl_xact_begin("wsctl reconciler: reconciling a workspace");
		a = call_reconcile(workspace_id, slot);
		action = MemoryContextStrdup(tick_cxt, a.action);
		a.operation = a.operation ? MemoryContextStrdup(tick_cxt, a.operation) : NULL;
		a.detail = a.detail ? MemoryContextStrdup(tick_cxt, a.detail) : NULL;
		wsctl_xact_commit();
		MemoryContextSwitchTo(tick_cxt);

		if (a.detail != NULL && strncmp(a.detail, "waiting for Docker", 18) == 0)
			wsctl_status_error(WSCTL_RECONCILER,
							   psprintf("workspace %s: %s", workspace_id, a.detail));
		if (strcmp(action, "launch") == 0)
			launch(workspace_id, &a);
		else if (strcmp(action, "terminate") == 0 && slot >= 0)
			terminate(slot);
		else if (strcmp(action, "release") == 0 && slot >= 0)
		{
			release(slot);
			continue;
		}
		break;
	}
}

static List *slot_holders(bool finished);

static List *
append_unique(List *ids, char *id)
{
	ListCell   *lc;

	foreach(lc, ids)
		if (strcmp(lfirst(lc), id) == 0)
			return ids;
	return lappend(ids, id);
}

/*
 * The workspaces to look at this tick, in order. Those whose worker has
 * finished come first: their slots are released before anything else is
 * launched, so a due retry gets a slot ahead of new claims (the SQL
 * candidates are ordered in-flight first). Busy slots are appended, so a
 * workspace recovered meanwhile still gets its slot back when it is done.
 */
static List *
candidate_ids(MemoryContext tick_cxt)
{
	List	   *ids = slot_holders(true);
	ListCell   *lc;
	int			ret;

	wsctl_xact_begin("wsctl reconciler: listing candidates");
	ret = SPI_execute("SELECT id::text FROM wsctl._reconcile_candidates() AS id", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl reconciler: candidates query failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext spi_cxt = MemoryContextSwitchTo(tick_cxt);	/* outlive SPI_finish */

		ids = append_unique(ids, pstrdup(id));
		MemoryContextSwitchTo(spi_cxt);
	}
	wsctl_xact_commit();
	MemoryContextSwitchTo(tick_cxt);

	foreach(lc, slot_holders(false))
		ids = append_unique(ids, lfirst(lc));
	return ids;
}

/* Workspace ids of the slots that are finished (or, if !finished, busy). */
static List *
slot_holders(bool finished)
{
	List	   *ids = NIL;

	for (int i = 0; i < WSCTL_MAX_OPERATION_SLOTS; i++)
	{
		WsctlOpSlot s = wsctl_op_slot_get(i);
		bool		done = s.state == OP_SLOT_SUCCEEDED || s.state == OP_SLOT_FAILED;

		if (s.state != OP_SLOT_FREE && done == finished)
			ids = lappend(ids, DatumGetCString(DirectFunctionCall1(uuid_out,
																	UUIDPGetDatum(&s.workspace_id))));
	}
	return ids;
}

static void
reconciler_tick(MemoryContext tick_cxt)
{
	List	   *volatile ids;
	ListCell   *lc;
	instr_time	start,
				elapsed;

	INSTR_TIME_SET_CURRENT(start);
	refresh_slots();
	ids = candidate_ids(tick_cxt);
	foreach(lc, ids)
	{
		const char *id = lfirst(lc);

		PG_TRY();
		{
			reconcile_one(id, tick_cxt);
		}
		PG_CATCH();
		{
			char	   *message = wsctl_xact_abort(tick_cxt);

			ereport(WARNING, (errmsg("wsctl reconciler: workspace %s skipped this tick: %s",
									 id, message)));
			wsctl_status_error(WSCTL_RECONCILER, message);
		}
		PG_END_TRY();
	}
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	wsctl_status_tick(WSCTL_RECONCILER, INSTR_TIME_GET_MILLISEC(elapsed), 0);
}

void
wsctl_reconciler_main(Datum arg)
{
	MemoryContext tick_cxt;
	bool		leader = false;

	tick_cxt = wsctl_component_start(WSCTL_RECONCILER, "wsctl reconciler");

	for (;;)
	{
		MemoryContextSwitchTo(tick_cxt);
		if (wsctl_component_active(WSCTL_RECONCILER, &leader))
		{
			wsctl_status_set_running(WSCTL_RECONCILER, true);
			PG_TRY();
			{
				reconciler_tick(tick_cxt);
			}
			PG_CATCH();
			{
				char	   *message = wsctl_xact_abort(tick_cxt);

				ereport(WARNING, (errmsg("wsctl reconciler: tick failed: %s", message)));
				wsctl_status_error(WSCTL_RECONCILER, message);
			}
			PG_END_TRY();
		}
		else
			wsctl_status_set_running(WSCTL_RECONCILER, leader);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(tick_cxt);
		wsctl_worker_wait(wsctl_reconcile_interval_ms);
	}
}
