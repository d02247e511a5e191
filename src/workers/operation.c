/*
 * operation.c: the operation worker, a dynamic background worker that
 * performs one operation of one workspace against Docker, then exits.
 *
 * The reconciler claims the operation in the table and starts this worker
 * on an operation slot. The worker reads the workspace (one short
 * transaction), acts on Docker with no transaction open, reports the
 * actuator's outcome in its slot and asks the HealthMonitor to observe at
 * once. It never writes the table: completion is judged from observation
 * by the reconciler, and failures are recorded by the reconciler from the
 * slot. Every Docker step is idempotent, so a retried or repeated
 * operation converges to the same resources.
 */
#include "postgres.h"

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

#include "docker.h"
#include "operation.h"
#include "shmem.h"
#include "storage_job.h"
#include "worker_common.h"
#include "workers.h"

/* How long STARTING waits for Docker to report the container running. */
#define HEALTH_CHECK_TIMEOUT_MS 30000
#define HEALTH_CHECK_POLL_MS 100

static int	my_slot = -1;

static OpOutcome
act_provisioning(const char *id)
{
	DockerResult r = docker_create_volume(id);
	bool		exists;

	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, "VOLUME_CREATE_FAILED");
	r = docker_volume_exists(id, &exists);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	if (!exists)
		return op_failed("Mismatch", NULL, psprintf("volume %s is missing after it was created",
												 docker_volume_name(id)));
	return op_succeeded();
}

/* Polls until the container runs: start() succeeding is not enough. */
static OpOutcome
wait_until_running(const char *id)
{
	for (int waited = 0;; waited += HEALTH_CHECK_POLL_MS)
	{
		bool		exists,
					running;
		DockerResult r = docker_inspect_container(id, &exists, &running);

		if (r.kind != DOCKER_OK)
			return op_docker_failed(r, NULL);
		if (exists && running)
			return op_succeeded();
		if (!exists || waited >= HEALTH_CHECK_TIMEOUT_MS)
			return op_failed("ActionFailed", "HEALTH_CHECK_FAILED",
						  psprintf("container %s is %s after start", docker_container_name(id),
								   exists ? "not running" : "gone"));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 HEALTH_CHECK_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Start: the volume must exist (Docker would silently create an empty
 * one); a running container is left alone; one that exists but does not
 * run is removed and created again.
 */
static OpOutcome
act_starting(const char *id, const char *image_ref)
{
	bool		exists,
				running;
	DockerResult r = docker_volume_exists(id, &exists);

	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	if (!exists)
		return op_failed("Mismatch", "VOLUME_NOT_FOUND",
					  psprintf("volume %s does not exist", docker_volume_name(id)));

	r = docker_inspect_container(id, &exists, &running);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	if (exists && running)
		return op_succeeded();
	if (exists)
	{
		r = docker_remove_container(id);
		if (r.kind != DOCKER_OK && r.kind != DOCKER_NOT_FOUND)
			return op_docker_failed(r, NULL);
	}
	r = docker_create_container(id, image_ref);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, "CONTAINER_CREATE_FAILED");
	r = docker_start_container(id);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, "CONTAINER_START_FAILED");
	return wait_until_running(id);
}

static OpOutcome
remove_container(const char *id)
{
	bool		exists,
				running;
	DockerResult r = docker_remove_container(id);

	if (r.kind != DOCKER_OK && r.kind != DOCKER_NOT_FOUND)
		return op_docker_failed(r, NULL);
	r = docker_inspect_container(id, &exists, &running);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	if (exists)
		return op_failed("Mismatch", NULL, psprintf("container %s still exists after removal",
												 docker_container_name(id)));
	return op_succeeded();
}

/* Delete: the container first, then the volume, never the reverse. */
static OpOutcome
act_deleting(const char *id)
{
	OpOutcome		o = remove_container(id);
	DockerResult r;
	bool		exists;

	if (!o.ok)
		return o;
	/* a storage job's helper left by a crash would keep the volume in use */
	r = docker_remove_job_container(id);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	r = docker_remove_volume(id);
	if (r.kind != DOCKER_OK && r.kind != DOCKER_NOT_FOUND)
		return op_docker_failed(r, NULL);
	r = docker_volume_exists(id, &exists);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	if (exists)
		return op_failed("Mismatch", NULL, psprintf("volume %s still exists after removal",
												 docker_volume_name(id)));
	return op_succeeded();
}

static OpOutcome
act(const char *operation, const OpTarget *t)
{
	if (strcmp(operation, "PROVISIONING") == 0)
		return act_provisioning(t->id);
	if (strcmp(operation, "STARTING") == 0)
		return act_starting(t->id, t->image_ref);
	if (strcmp(operation, "STOPPING") == 0)
		return remove_container(t->id);
	if (strcmp(operation, "DELETING") == 0)
		return act_deleting(t->id);
	if (strcmp(operation, "ARCHIVING") == 0)
		return act_archiving(t);
	if (strcmp(operation, "RESTORING") == 0)
		return act_restoring(t);
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
	ret = SPI_execute_with_args("SELECT image_ref, archive_key FROM wsctl.workspaces "
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
	}
	wsctl_xact_commit();
	MemoryContextSwitchTo(cxt);
	return found;
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
	else
	{
		ereport(LOG, (errmsg("wsctl operation: workspace %s: %s started", t.id, s.operation)));
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
