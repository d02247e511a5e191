/*
 * health_monitor.c: the HealthMonitor background worker.
 *
 * Each tick makes exactly two Docker calls, one listing the managed
 * volumes and one the managed containers, whatever the number of
 * workspaces, and hands both lists to wsctl._record_observations(), which
 * applies the priority table (observe_status) to every watched workspace.
 * A failed Docker call skips the whole tick: the HealthMonitor never writes
 * a guess. It ticks every wsctl.health_interval, and at once when an
 * operation worker asks for an observation.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "docker.h"
#include "shmem.h"
#include "worker_common.h"
#include "workers.h"

/* Docker labels carry any string; only a canonical uuid is a workspace id. */
static bool
looks_like_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		bool		dash = (i == 8 || i == 13 || i == 18 || i == 23);

		if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

static Datum
uuid_datum(const char *s)
{
	return DirectFunctionCall1(uuid_in, CStringGetDatum(s));
}

/* The workspace container itself is ws-{id}; helper containers are not. */
static bool
is_workspace_container(const DockerContainer *c)
{
	return looks_like_uuid(c->workspace_id) &&
		strcmp(c->name, docker_container_name(c->workspace_id)) == 0;
}

static void
record_observations(List *containers, List *volumes, TimestampTz observed_at,
					int *changed)
{
	int			nc = 0,
				nv = 0;
	Datum	   *cids = palloc(sizeof(Datum) * (list_length(containers) + 1));
	Datum	   *crun = palloc(sizeof(Datum) * (list_length(containers) + 1));
	Datum	   *vids = palloc(sizeof(Datum) * (list_length(volumes) + 1));
	ListCell   *lc;
	Datum		args[4];
	Oid			types[4] = {UUIDARRAYOID, BOOLARRAYOID, UUIDARRAYOID, TIMESTAMPTZOID};
	bool		isnull;
	int			ret;

	foreach(lc, containers)
	{
		DockerContainer *c = lfirst(lc);

		if (!is_workspace_container(c))
			continue;
		cids[nc] = uuid_datum(c->workspace_id);
		crun[nc++] = BoolGetDatum(c->running);
	}
	foreach(lc, volumes)
	{
		const char *id = lfirst(lc);

		if (looks_like_uuid(id))
			vids[nv++] = uuid_datum(id);
	}
	args[0] = PointerGetDatum(construct_array(cids, nc, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[1] = PointerGetDatum(construct_array(crun, nc, BOOLOID, 1, true, TYPALIGN_CHAR));
	args[2] = PointerGetDatum(construct_array(vids, nv, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[3] = TimestampTzGetDatum(observed_at);

	wsctl_xact_begin("wsctl health_monitor: recording observations");
	ret = SPI_execute_with_args("SELECT wsctl._record_observations($1, $2, $3, $4)",
								4, types, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl health_monitor: _record_observations failed: %s",
			 SPI_result_code_string(ret));
	*changed = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	wsctl_xact_commit();
}

/*
 * Whether the table expects resources on Docker: a workspace observed
 * STANDBY or RUNNING has a volume somewhere.
 */
static bool
resources_expected(void)
{
	bool		expected;
	bool		isnull;
	int			ret;

	wsctl_xact_begin("wsctl health_monitor: checking the Docker daemon");
	ret = SPI_execute("SELECT wsctl._docker_resources_expected()", true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "wsctl health_monitor: _docker_resources_expected failed: %s",
			 SPI_result_code_string(ret));
	expected = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	wsctl_xact_commit();
	return expected;
}

/*
 * Whether the listing comes from wsctl's own daemon. A daemon without the
 * cluster's marker volume is another daemon (wsctl.docker_host changed) or
 * a wiped one: believing its empty listing would put every workspace into
 * terminal ERROR, so nothing is written. The marker is created only while
 * the table expects nothing on Docker (a new installation); after a
 * deliberate wipe an operator creates it (docs/operations.md).
 */
static bool
daemon_trusted(bool marker_seen, const char *marker)
{
	DockerResult r;

	if (marker_seen)
		return true;
	if (resources_expected())
		return false;
	r = docker_create_marker_volume(marker);
	if (r.kind != DOCKER_OK)
	{
		ereport(WARNING,
				(errmsg("wsctl health_monitor: could not create the marker volume %s: %s",
						marker, r.message)));
		return false;
	}
	ereport(LOG, (errmsg("wsctl health_monitor: created the marker volume %s on %s",
						 marker, wsctl_docker_host)));
	return true;
}

static void
health_monitor_tick(MemoryContext tick_cxt)
{
	TimestampTz observed_at = GetCurrentTimestamp();
	uint64		calls_before = docker_request_count();
	char	   *marker = docker_marker_volume_name(GetSystemIdentifier());
	List	   *containers = NIL;
	List	   *volumes = NIL;
	bool		marker_seen = false;
	DockerResult r;
	instr_time	start,
				elapsed;
	int			changed = 0;

	/*
	 * Volumes first, then containers. A workspace's volume is created
	 * before its container and removed after it, so a container seen in
	 * the second listing had its volume during the first: a delete racing
	 * with this tick can never look like a container without a volume.
	 */
	INSTR_TIME_SET_CURRENT(start);
	r = docker_list_volumes(&volumes, marker, &marker_seen);
	if (r.kind == DOCKER_OK)
		r = docker_list_containers(&containers);
	if (r.kind != DOCKER_OK)
	{
		ereport(WARNING,
				(errmsg("wsctl health_monitor: tick skipped, nothing written: %s", r.message)));
		wsctl_status_error(WSCTL_HEALTH_MONITOR, r.message);
		wsctl_status_tick(WSCTL_HEALTH_MONITOR, 0, docker_request_count() - calls_before);
		return;
	}

	PG_TRY();
	{
		if (daemon_trusted(marker_seen, marker))
			record_observations(containers, volumes, observed_at, &changed);
		else
		{
			char	   *message = psprintf("Docker at %s does not carry this cluster's marker volume %s: "
										   "another daemon, or a wiped one; nothing written this tick",
										   wsctl_docker_host, marker);

			ereport(WARNING,
					(errmsg("wsctl health_monitor: %s", message),
					 errhint("Point wsctl.docker_host back at wsctl's daemon; if this daemon was wiped on purpose, create the marker volume (docs/operations.md).")));
			wsctl_status_error(WSCTL_HEALTH_MONITOR, message);
		}
	}
	PG_CATCH();
	{
		char	   *message = wsctl_xact_abort(tick_cxt);

		ereport(WARNING, (errmsg("wsctl health_monitor: tick failed: %s", message)));
		wsctl_status_error(WSCTL_HEALTH_MONITOR, message);
	}
	PG_END_TRY();

	/* A changed status may complete an operation: tell the reconciler now. */
	if (changed > 0)
		wsctl_wake_component(WSCTL_RECONCILER);

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	wsctl_status_tick(WSCTL_HEALTH_MONITOR, INSTR_TIME_GET_MILLISEC(elapsed),
					  docker_request_count() - calls_before);
}

void
wsctl_health_monitor_main(Datum arg)
{
	MemoryContext tick_cxt;
	bool		leader = false;

	tick_cxt = wsctl_component_start(WSCTL_HEALTH_MONITOR, "wsctl health_monitor");

	for (;;)
	{
		MemoryContext old = MemoryContextSwitchTo(tick_cxt);

		if (wsctl_component_active(WSCTL_HEALTH_MONITOR, &leader))
		{
			wsctl_status_set_running(WSCTL_HEALTH_MONITOR, true);
			(void) wsctl_take_observation_request();
			health_monitor_tick(tick_cxt);
		}
		else
			wsctl_status_set_running(WSCTL_HEALTH_MONITOR, leader);
		MemoryContextSwitchTo(old);
		MemoryContextReset(tick_cxt);

		/* An observation asked for during the tick is served at once. */
		if (!wsctl_take_observation_request())
			wsctl_worker_wait(wsctl_health_interval_ms);
		else
			CHECK_FOR_INTERRUPTS();
	}
}
