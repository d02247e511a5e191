/*
 * operation.c: the operation worker, a dynamic background worker that
 * performs one operation of one workspace against its backends, then exits.
 *
 * The reconciler claims the operation in the table and starts this worker
 * on an operation slot. The worker reads the workspace (one short
 * transaction), acts through the InstanceController and StorageProvider of
 * its instance_backend / storage_backend (backend.h) with no transaction
 * open, reports the actuator's outcome in its slot and asks the
 * HealthMonitor to observe at once. It never writes the table: completion is judged from observation
 * by the reconciler, and failures are recorded by the reconciler from the
 * slot. Every backend method is idempotent, so a retried or repeated
 * operation converges to the same resources.
 */
#include "postgres.h"

#include <sys/resource.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "backend.h"
#include "operation.h"
#include "shmem.h"
#include "worker_common.h"
#include "workers.h"

/* How long STARTING waits for the backend to report the instance running. */
#define HEALTH_CHECK_TIMEOUT_MS 30000
#define HEALTH_CHECK_POLL_MS 100

/* The nice value of an ARCHIVING or RESTORING worker (0 is the server's). */
#define TRANSFER_NICE 10

static int	my_slot = -1;

static OpOutcome
act_provisioning(const OpTarget *t)
{
	const StorageProvider *s = t->storage;
	OpOutcome	o = s->create_home(s, t->id);
	bool		exists;

	if (!o.ok)
		return o;
	o = s->home_exists(s, t->id, &exists);
	if (!o.ok)
		return o;
	if (!exists)
		return op_failed("Mismatch", NULL, psprintf("%s is missing after it was created",
													 s->describe(s, t->id)));
	return op_succeeded();
}

/* Polls until the instance runs: start() succeeding is not enough. */
static OpOutcome
wait_until_running(const OpTarget *t)
{
	const InstanceController *ic = t->instance;

	for (int waited = 0;; waited += HEALTH_CHECK_POLL_MS)
	{
		InstanceState st;
		OpOutcome	o = ic->get_instance(ic, t->id, &st);

		if (!o.ok)
			return o;
		if (st.exists && st.running)
			return op_succeeded();
		if (!st.exists || waited >= HEALTH_CHECK_TIMEOUT_MS)
			return op_failed("ActionFailed", "HEALTH_CHECK_FAILED",
							 psprintf("%s is %s after start", ic->describe(ic, t->id),
									  st.exists ? "not running" : "gone"));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 HEALTH_CHECK_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Start (SPEC 6.5): the home must exist (Docker would silently create an
 * empty volume); a running instance is left alone; one that exists but does
 * not run is removed and created again.
 */
static OpOutcome
act_starting(const OpTarget *t)
{
	const InstanceController *ic = t->instance;
	const StorageProvider *s = t->storage;
	InstanceState st;
	bool		exists;
	OpOutcome	o = s->home_exists(s, t->id, &exists);

	if (!o.ok)
		return o;
	if (!exists)
		return op_failed("Mismatch", "VOLUME_NOT_FOUND",
						 psprintf("%s does not exist", s->describe(s, t->id)));

	o = ic->get_instance(ic, t->id, &st);
	if (!o.ok)
		return o;
	if (st.exists && st.running)
		return op_succeeded();
	if (st.exists)
	{
		o = ic->remove_instance(ic, t->id);
		if (!o.ok)
			return o;
	}
	o = ic->create_instance(ic, t->id, t->image_ref);
	if (!o.ok)
		return o;
	o = ic->start_instance(ic, t->id);
	if (!o.ok)
		return o;
	return wait_until_running(t);
}

static OpOutcome
remove_instance(const OpTarget *t)
{
	const InstanceController *ic = t->instance;
	InstanceState st;
	OpOutcome	o = ic->remove_instance(ic, t->id);

	if (!o.ok)
		return o;
	o = ic->get_instance(ic, t->id, &st);
	if (!o.ok)
		return o;
	if (st.exists)
		return op_failed("Mismatch", NULL, psprintf("%s still exists after removal",
													 ic->describe(ic, t->id)));
	return op_succeeded();
}

/* Delete: the instance first, then the home, never the reverse. */
static OpOutcome
act_deleting(const OpTarget *t)
{
	const StorageProvider *s = t->storage;
	OpOutcome	o = remove_instance(t);
	bool		exists;

	if (!o.ok)
		return o;
	/* a transfer's helper left by a crash would keep the home in use */
	o = s->remove_transfers(s, t->id);
	if (!o.ok)
		return o;
	o = s->remove_home(s, t->id);
	if (!o.ok)
		return o;
	o = s->home_exists(s, t->id, &exists);
	if (!o.ok)
		return o;
	if (exists)
		return op_failed("Mismatch", NULL, psprintf("%s still exists after removal",
													 s->describe(s, t->id)));
	return op_succeeded();
}

/*
 * A transfer compresses, hashes and checks a whole home: the process that
 * does it asks the kernel to run it after the database's own backends
 * (the API's calls) when the CPU is short. It exits when the operation
 * ends, so the priority is never given back.
 */
static void
yield_cpu(void)
{
	errno = 0;
	if (setpriority(PRIO_PROCESS, 0, TRANSFER_NICE) != 0)
		ereport(LOG, (errmsg("wsctl operation: could not lower this transfer's CPU priority: %m")));
}

static OpOutcome
act(const char *operation, const OpTarget *t)
{
	if (strcmp(operation, "PROVISIONING") == 0)
		return act_provisioning(t);
	if (strcmp(operation, "STARTING") == 0)
		return act_starting(t);
	if (strcmp(operation, "STOPPING") == 0)
		return remove_instance(t);
	if (strcmp(operation, "DELETING") == 0)
		return act_deleting(t);
	if (strcmp(operation, "ARCHIVING") == 0)
	{
		yield_cpu();
		return act_archiving(t);
	}
	if (strcmp(operation, "RESTORING") == 0)
	{
		yield_cpu();
		return act_restoring(t);
	}
	return op_failed("ActionFailed", "NOT_IMPLEMENTED",
					 psprintf("unknown operation %s", operation));
}

/*
 * Reads what the operation needs. Returns false when the workspace no
 * longer has this operation (recovered or superseded meanwhile).
 */
static bool
read_workspace(OpTarget *t, const char *operation)
{
	Oid			types[3] = {UUIDOID, UUIDOID, TEXTOID};
	Datum		args[3] = {UUIDPGetDatum(&t->workspace), UUIDPGetDatum(&t->op_id),
	CStringGetTextDatum(operation)};
	MemoryContext cxt = CurrentMemoryContext;
	bool		found;
	int			ret;

	wsctl_xact_begin("wsctl operation: reading the workspace");
	ret = SPI_execute_with_args("SELECT image_ref, archive_key, instance_backend::text, "
								"storage_backend::text FROM wsctl.workspaces "
								"WHERE id = $1 AND op_id = $2 AND operation::text = $3",
								3, types, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl operation: reading the workspace failed: %s",
			 SPI_result_code_string(ret));
	found = SPI_processed == 1;
	if (found)
	{
		char	   *key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		t->image_ref = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 1));
		t->archive_key = key ? MemoryContextStrdup(cxt, key) : NULL;
		t->instance_backend = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0],
																	SPI_tuptable->tupdesc, 3));
		t->storage_backend = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0],
																   SPI_tuptable->tupdesc, 4));
	}
	wsctl_xact_commit();
	MemoryContextSwitchTo(cxt);
	return found;
}

/*
 * The site of the workspace's (instance_backend, storage_backend). A
 * backend that is not built, or whose setting was emptied, is a refusal
 * counted like any other (ActionFailed BACKEND_DISABLED).
 */
static bool
choose_backends(OpTarget *t, OpOutcome *o)
{
	const BackendSite *site = backend_site_find(t->instance_backend, t->storage_backend);

	if (site == NULL || !site->enabled())
	{
		*o = op_failed("ActionFailed", "BACKEND_DISABLED",
					   site == NULL ?
					   psprintf("no backend implements instance_backend %s with storage_backend %s",
								t->instance_backend, t->storage_backend) :
					   psprintf("instance backend %s is not enabled: %s is empty",
								t->instance_backend, site->setting));
		return false;
	}
	t->instance = site->instance;
	t->storage = site->storage;
	return true;
}

/*
 * wsctl.debug_operation_delay: the worker stays busy this long after
 * acting, so tests can watch an operation whose resources already look
 * done while its worker has not reported (it must not complete).
 */
static void
delay_report(void)
{
	TimestampTz until;

	if (wsctl_debug_operation_delay_ms <= 0)
		return;
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wsctl_debug_operation_delay_ms);
	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* A worker that dies without reporting (error, SIGTERM) still reports. */
static void
report_unexpected_exit(int code, Datum arg)
{
	WsctlOpSlot s = wsctl_op_slot_get(my_slot);

	if (s.state == OP_SLOT_ACTING && s.pid == MyProcPid)
	{
		wsctl_op_slot_finish(my_slot, false, "Unreachable", "WORKER_EXITED",
							 "the operation worker stopped before finishing (see the server log)");
		wsctl_wake_component(WSCTL_RECONCILER);
	}
}

void
wsctl_operation_main(Datum arg)
{
	OpTarget	t = {0};
	WsctlOpSlot s;
	OpOutcome	o;

	my_slot = DatumGetInt32(arg);
	memcpy(&t.workspace, MyBgworkerEntry->bgw_extra, sizeof(pg_uuid_t));
	memcpy(&t.op_id, MyBgworkerEntry->bgw_extra + sizeof(pg_uuid_t), sizeof(pg_uuid_t));
	t.slot = my_slot;
	wsctl_worker_start("wsctl operation");

	/* The slot must still be the one we were started for. */
	s = wsctl_op_slot_get(my_slot);
	if (s.state != OP_SLOT_LAUNCHED || memcmp(&s.workspace_id, &t.workspace, sizeof(pg_uuid_t)) != 0 ||
		memcmp(&s.op_id, &t.op_id, sizeof(pg_uuid_t)) != 0)
		proc_exit(0);
	before_shmem_exit(report_unexpected_exit, (Datum) 0);
	wsctl_op_slot_set_acting(my_slot, MyProcPid);

	t.id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&t.workspace)));
	t.op_id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&t.op_id)));
	if (!read_workspace(&t, s.operation))
		o = op_failed("Mismatch", "SUPERSEDED",
				   psprintf("workspace no longer has operation %s", s.operation));
	else if (!choose_backends(&t, &o))
		;
	else
	{
		ereport(LOG, (errmsg("wsctl operation: workspace %s: %s started on %s",
							 t.id, s.operation, t.instance_backend)));
		o = act(s.operation, &t);
	}

	delay_report();
	if (o.ok)
		ereport(LOG, (errmsg("wsctl operation: workspace %s: %s actuated, awaiting observation",
							 t.id, s.operation)));
	else
		ereport(LOG, (errmsg("wsctl operation: workspace %s: %s failed: %s%s%s: %s", t.id,
							 s.operation, o.reason, o.code ? " " : "", o.code ? o.code : "",
							 o.message)));
	wsctl_op_slot_finish(my_slot, o.ok, o.reason, o.code, o.message);
	wsctl_request_observation();
	wsctl_wake_component(WSCTL_RECONCILER);
	proc_exit(0);
}
