/*
 * ttl_manager.c: the TTL manager background worker (SPEC 4.4).
 *
 * Every wsctl.ttl_interval it stops the RUNNING workspaces that nobody
 * uses: no open connection (Redis ws_conn:{id} is 0), no idle timer left
 * (idle_timer:{id} expired), and at least standby_ttl_seconds since
 * last_access_at (the start, or the last connect or disconnect). It only
 * sets desired_state = STANDBY, with a compare-and-set in SQL; the
 * reconciler does the rest. A workspace about to be stopped (within
 * wsctl.ttl_warning) gets one ttl_warning event first.
 * Redis unreachable: nothing is stopped on a guess; the tick says so in
 * wsctl.workers.last_error.
 * The archive TTL needs no Redis: a STANDBY workspace at rest whose last
 * access is older than archive_ttl_seconds gets desired_state = PENDING
 * (archived), again with a compare-and-set and a ttl_warning first.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "redis.h"
#include "shmem.h"
#include "worker_common.h"
#include "workers.h"

typedef struct TtlCandidate
{
	char	   *id;
	bool		due;
	int			seconds_left;
} TtlCandidate;

/* The candidates of one TTL: sql takes the warning window as $1. */
static List *
ttl_candidates(const char *sql, MemoryContext cxt)
{
	Datum		arg = DirectFunctionCall3(interval_in, CStringGetDatum(psprintf("%d ms", wsctl_ttl_warning_ms)),
										  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	Oid			type = INTERVALOID;
	List	   *out = NIL;
	int			ret;

	wsctl_xact_begin("wsctl ttl_manager: listing idle candidates");
	ret = SPI_execute_with_args(sql, 1, &type, &arg, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl ttl_manager: %s failed: %s", sql, SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(cxt);
		TtlCandidate *c = palloc0(sizeof(TtlCandidate));
		bool		isnull;

		c->id = SPI_getvalue(tup, desc, 1);
		c->due = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		c->seconds_left = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		out = lappend(out, c);
		MemoryContextSwitchTo(spi);
	}
	wsctl_xact_commit();
	return out;
}

/*
 * Runs one of the TTL manager's SQL writes on one workspace: _ttl_stop($1)
 * or _ttl_archive($1) (nargs 1) or _ttl_warn($1, $2, ...) (nargs 2, the
 * seconds left).
 */
static bool
ttl_write(const char *sql, int nargs, const char *id, int seconds_left)
{
	Oid			types[2] = {UUIDOID, INT4OID};
	Datum		args[2] = {DirectFunctionCall1(uuid_in, CStringGetDatum(id)),
	Int32GetDatum(seconds_left)};
	bool		isnull;
	bool		done;
	int			ret;

	wsctl_xact_begin("wsctl ttl_manager: acting on an idle workspace");
	ret = SPI_execute_with_args(sql, nargs, types, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "wsctl ttl_manager: %s failed: %s", sql, SPI_result_code_string(ret));
	done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	wsctl_xact_commit();
	return done;
}

/*
 * Reads the workspace's activity from Redis: open connections and the
 * idle timer's remaining milliseconds (-2: no timer).
 */
static RedisResult
read_activity(const char *id, long long *connections, long long *timer_ms)
{
	const char *get[2] = {"GET", psprintf("ws_conn:%s", id)};
	const char *pttl[2] = {"PTTL", psprintf("idle_timer:%s", id)};
	RedisResult r = wsctl_redis_integer(2, get, connections);

	if (r.status != REDIS_OK_STATUS)
		return r;
	return wsctl_redis_integer(2, pttl, timer_ms);
}

/* Standby TTL: RUNNING workspaces nobody is connected to. */
static void
standby_ttl(MemoryContext tick_cxt)
{
	List	   *candidates = ttl_candidates("SELECT id::text, due, seconds_left FROM wsctl._standby_ttl_candidates($1)",
											tick_cxt);
	ListCell   *lc;

	foreach(lc, candidates)
	{
		TtlCandidate *c = lfirst(lc);
		long long	connections,
					timer_ms;
		RedisResult r = read_activity(c->id, &connections, &timer_ms);

		if (r.status != REDIS_OK_STATUS)
		{
			char	   *message = psprintf("%s; nothing stopped this tick", r.message);

			ereport(WARNING, (errmsg("wsctl ttl_manager: %s", message)));
			wsctl_status_error(WSCTL_TTL_MANAGER, message);
			break;
		}
		if (connections > 0)
			continue;			/* in use */
		if (timer_ms >= 0 || timer_ms == -1)
		{
			/* the idle timer runs: warn when it is about to expire */
			if (timer_ms >= 0 && timer_ms <= wsctl_ttl_warning_ms)
				(void) ttl_write("SELECT wsctl._ttl_warn($1, $2)", 2, c->id, (int) ((timer_ms + 999) / 1000));
			continue;
		}
		if (c->due)
			(void) ttl_write("SELECT wsctl._ttl_stop($1)", 1, c->id, 0);
		else
			(void) ttl_write("SELECT wsctl._ttl_warn($1, $2)", 2, c->id, c->seconds_left);
	}
}

/* Archive TTL: STANDBY workspaces unused for archive_ttl_seconds. */
static void
archive_ttl(MemoryContext tick_cxt)
{
	List	   *candidates = ttl_candidates("SELECT id::text, due, seconds_left FROM wsctl._archive_ttl_candidates($1)",
											tick_cxt);
	ListCell   *lc;

	foreach(lc, candidates)
	{
		TtlCandidate *c = lfirst(lc);

		if (c->due)
			(void) ttl_write("SELECT wsctl._ttl_archive($1)", 1, c->id, 0);
		else
			(void) ttl_write("SELECT wsctl._ttl_warn($1, $2, 'PENDING')", 2, c->id, c->seconds_left);
	}
}

static void
ttl_manager_tick(MemoryContext tick_cxt)
{
	instr_time	start,
				elapsed;

	INSTR_TIME_SET_CURRENT(start);
	standby_ttl(tick_cxt);
	archive_ttl(tick_cxt);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	wsctl_status_tick(WSCTL_TTL_MANAGER, INSTR_TIME_GET_MILLISEC(elapsed), 0);
}

void
wsctl_ttl_manager_main(Datum arg)
{
	MemoryContext tick_cxt;
	bool		leader = false;

	tick_cxt = wsctl_component_start(WSCTL_TTL_MANAGER, "wsctl ttl_manager");

	for (;;)
	{
		MemoryContextSwitchTo(tick_cxt);
		if (wsctl_component_active(WSCTL_TTL_MANAGER, &leader))
		{
			wsctl_status_set_running(WSCTL_TTL_MANAGER, true);
			PG_TRY();
			{
				ttl_manager_tick(tick_cxt);
			}
			PG_CATCH();
			{
				char	   *message = wsctl_xact_abort(tick_cxt);

				ereport(WARNING, (errmsg("wsctl ttl_manager: tick failed: %s", message)));
				wsctl_status_error(WSCTL_TTL_MANAGER, message);
			}
			PG_END_TRY();
		}
		else
			wsctl_status_set_running(WSCTL_TTL_MANAGER, leader);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(tick_cxt);
		wsctl_worker_wait(wsctl_ttl_interval_ms);
	}
}
