/*
 * health_monitor.c: the HealthMonitor background worker.
 *
 * Each tick looks at every enabled backend site (backend.h) with exactly
 * two calls, one listing its homes and one its instances, whatever the
 * number of workspaces, and hands both lists to
 * wsctl._record_observations(), which applies the priority table
 * (observe_status) to every watched workspace of that site. A failed call
 * skips that site's part of the tick: the HealthMonitor never writes a
 * guess, and one site's outage does not stop the others' observation. It ticks every wsctl.health_interval, and at once when an
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

#include "backend.h"
#include "shmem.h"
#include "worker_common.h"
#include "workers.h"

/* Backend labels carry any string; only a canonical uuid is a workspace id. */
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

/*
 * Whether the database's wsctl has the per-site functions (0.3.0). Between
 * installing a new wsctl.so and ALTER EXTENSION UPDATE a database keeps
 * working (docs/decisions.md, "One library for all versions"): at 0.2.0 it
 * has only the local-docker site and the functions without a backend
 * argument. Called inside the caller's transaction.
 */
static bool
schema_has_sites(void)
{
	bool		isnull;
	int			ret = SPI_execute("SELECT to_regprocedure('wsctl._backend_resources_expected(wsctl.instance_backend)') IS NOT NULL",
								  true, 1);

	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "wsctl health_monitor: reading the catalog failed: %s",
			 SPI_result_code_string(ret));
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Before ALTER EXTENSION UPDATE to 0.3.0 only local-docker can be observed. */
static void
refuse_old_schema(const BackendSite *site)
{
	if (strcmp(site->instance_backend, "local-docker") != 0)
		ereport(ERROR,
				(errmsg("%s cannot be observed: the extension in this database is older than 0.3.0",
						site->instance_backend),
				 errhint("Run ALTER EXTENSION wsctl UPDATE.")));
}

static void
record_observations(const BackendSite *site, List *instances, List *homes,
					TimestampTz observed_at, int *changed)
{
	int			nc = 0,
				nv = 0;
	Datum	   *cids = palloc(sizeof(Datum) * (list_length(instances) + 1));
	Datum	   *crun = palloc(sizeof(Datum) * (list_length(instances) + 1));
	Datum	   *vids = palloc(sizeof(Datum) * (list_length(homes) + 1));
	ListCell   *lc;
	Datum		args[5];
	Oid			types[5] = {TEXTOID, UUIDARRAYOID, BOOLARRAYOID, UUIDARRAYOID, TIMESTAMPTZOID};
	bool		isnull;
	int			ret;

	foreach(lc, instances)
	{
		ObservedInstance *c = lfirst(lc);

		if (!looks_like_uuid(c->workspace_id))
			continue;
		cids[nc] = uuid_datum(c->workspace_id);
		crun[nc++] = BoolGetDatum(c->running);
	}
	foreach(lc, homes)
	{
		const char *id = lfirst(lc);

		if (looks_like_uuid(id))
			vids[nv++] = uuid_datum(id);
	}
	args[0] = CStringGetTextDatum(site->instance_backend);
	args[1] = PointerGetDatum(construct_array(cids, nc, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[2] = PointerGetDatum(construct_array(crun, nc, BOOLOID, 1, true, TYPALIGN_CHAR));
	args[3] = PointerGetDatum(construct_array(vids, nv, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[4] = TimestampTzGetDatum(observed_at);

	wsctl_xact_begin("wsctl health_monitor: recording observations");
	if (schema_has_sites())
		ret = SPI_execute_with_args("SELECT wsctl._record_observations($1::wsctl.instance_backend, $2, $3, $4, $5)",
									5, types, args, NULL, false, 1);
	else
	{
		refuse_old_schema(site);
		ret = SPI_execute_with_args("SELECT wsctl._record_observations($1, $2, $3, $4)",
									4, types + 1, args + 1, NULL, false, 1);
	}
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl health_monitor: _record_observations failed: %s",
			 SPI_result_code_string(ret));
	*changed += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	wsctl_xact_commit();
}

/*
 * Whether the table expects resources on the site: a workspace of it
 * observed STANDBY or RUNNING has a home there.
 */
static bool
resources_expected(const BackendSite *site)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(site->instance_backend)};
	bool		expected;
	bool		isnull;
	int			ret;

	wsctl_xact_begin("wsctl health_monitor: checking the site's marker");
	if (schema_has_sites())
		ret = SPI_execute_with_args("SELECT wsctl._backend_resources_expected($1::wsctl.instance_backend)",
									1, types, args, NULL, true, 1);
	else
	{
		refuse_old_schema(site);
		ret = SPI_execute("SELECT wsctl._docker_resources_expected()", true, 1);
	}
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "wsctl health_monitor: _backend_resources_expected failed: %s",
			 SPI_result_code_string(ret));
	expected = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	wsctl_xact_commit();
	return expected;
}

/*
 * Whether the listing comes from the site wsctl manages. A site without
 * the cluster's marker is another one (its setting changed) or a wiped
 * one: believing its empty listing would put every workspace of the site
 * into terminal ERROR, so nothing is written. The marker is created only
 * while the table expects nothing there (a new installation); after a
 * deliberate wipe an operator creates it (docs/operations.md).
 */
static bool
site_trusted(const BackendSite *site, bool marker_seen, uint64 sysid)
{
	const StorageProvider *sp = site->storage;
	OpOutcome	o;

	if (marker_seen)
		return true;
	if (resources_expected(site))
		return false;
	o = sp->create_marker(sp, sysid);
	if (!o.ok)
	{
		ereport(WARNING,
				(errmsg("wsctl health_monitor: %s: could not create the %s: %s",
						site->instance_backend, sp->marker_name(sp, sysid), o.message)));
		return false;
	}
	ereport(LOG, (errmsg("wsctl health_monitor: %s: created the %s on %s",
						 site->instance_backend, sp->marker_name(sp, sysid),
						 sp->describe_site(sp))));
	return true;
}

/*
 * One site: homes first, then instances (one call each). A home is created
 * before its instance and removed after it, so an instance seen in the
 * second listing had its home during the first: a delete racing with this
 * tick can never look like an instance without a home. A failed call
 * skips the site, which writes nothing; the other sites go on.
 */
static void
observe_site(const BackendSite *site, TimestampTz observed_at, MemoryContext tick_cxt,
			 int *changed)
{
	const StorageProvider *sp = site->storage;
	const InstanceController *ic = site->instance;
	uint64		sysid = GetSystemIdentifier();
	List	   *instances = NIL;
	List	   *homes = NIL;
	bool		marker_seen = false;
	OpOutcome	o;

	o = sp->list_homes(sp, sysid, &homes, &marker_seen);
	if (o.ok)
		o = ic->list_instances(ic, &instances);
	if (!o.ok)
	{
		char	   *message = psprintf("%s: tick skipped, nothing written: %s",
									   site->instance_backend, o.message);

		ereport(WARNING, (errmsg("wsctl health_monitor: %s", message)));
		wsctl_status_error(WSCTL_HEALTH_MONITOR, message);
		return;
	}

	PG_TRY();
	{
		if (site_trusted(site, marker_seen, sysid))
			record_observations(site, instances, homes, observed_at, changed);
		else
		{
			char	   *message = psprintf("%s: %s does not carry this cluster's %s: "
										   "another site, or a wiped one; nothing written this tick",
										   site->instance_backend, sp->describe_site(sp),
										   sp->marker_name(sp, sysid));

			ereport(WARNING,
					(errmsg("wsctl health_monitor: %s", message),
					 errhint("Point %s back at wsctl's daemon; if this daemon was wiped on purpose, create the marker volume (docs/operations.md).",
							 site->setting)));
			wsctl_status_error(WSCTL_HEALTH_MONITOR, message);
		}
	}
	PG_CATCH();
	{
		char	   *message = wsctl_xact_abort(tick_cxt);

		ereport(WARNING, (errmsg("wsctl health_monitor: %s: tick failed: %s",
								 site->instance_backend, message)));
		wsctl_status_error(WSCTL_HEALTH_MONITOR, message);
	}
	PG_END_TRY();
}

static void
health_monitor_tick(MemoryContext tick_cxt)
{
	TimestampTz observed_at = GetCurrentTimestamp();
	uint64		calls_before = backend_request_count();
	instr_time	start,
				elapsed;
	int			changed = 0;

	INSTR_TIME_SET_CURRENT(start);
	for (int i = 0; i < backend_site_count(); i++)
	{
		const BackendSite *site = backend_site(i);

		if (site->enabled())
			observe_site(site, observed_at, tick_cxt, &changed);
	}

	/* A changed status may complete an operation: tell the reconciler now. */
	if (changed > 0)
		wsctl_wake_component(WSCTL_RECONCILER);

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	wsctl_status_tick(WSCTL_HEALTH_MONITOR, INSTR_TIME_GET_MILLISEC(elapsed),
					  backend_request_count() - calls_before);
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
