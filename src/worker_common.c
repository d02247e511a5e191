/*
 * worker_common.c: the parts every wsctl background worker shares.
 *
 * The loop shape follows PostgreSQL's worker_spi: signal handlers that only
 * set flags and the latch, WaitLatch between ticks, a SIGHUP reload, and
 * one short transaction per unit of work.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "shmem.h"
#include "worker_common.h"

/* Advisory lock class of the component leader locks: (2003987, 100 + c). */
#define WSCTL_LOCK_CLASS 2003987
#define WSCTL_LEADER_LOCK_BASE 100

static bool is_leader = false;

/* The memory context the caller of wsctl_xact_begin was in. */
static MemoryContext xact_caller_cxt = NULL;

/* Signals, database connection; the caller has just been started. */
void
wsctl_worker_start(const char *name)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(wsctl_database, NULL, 0);
	pgstat_report_appname(name);
}

static void
clear_status_at_exit(int code, Datum arg)
{
	wsctl_status_set_stopped((WsctlComponent) DatumGetInt32(arg));
}

/* wsctl.workers shows the component as stopped once this process exits. */
void
wsctl_worker_track_status(WsctlComponent c)
{
	before_shmem_exit(clear_status_at_exit, Int32GetDatum((int32) c));
}

/*
 * Start-up of a component (HealthMonitor, reconciler): signals, database
 * connection, status tracking, and the memory context its ticks run in
 * (reset by the caller after every tick).
 */
MemoryContext
wsctl_component_start(WsctlComponent c, const char *name)
{
	wsctl_worker_start(name);
	wsctl_worker_track_status(c);
	ereport(LOG, (errmsg("%s started (database \"%s\")", name, wsctl_database)));
	return AllocSetContextCreate(TopMemoryContext, "wsctl tick", ALLOCSET_DEFAULT_SIZES);
}

/*
 * Sleeps until the timeout or a latch wake-up, then handles interrupts and
 * a pending configuration reload. Returns true when woken by the latch.
 */
bool
wsctl_worker_wait(long timeout_ms)
{
	int			rc;

	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				   timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	return (rc & WL_LATCH_SET) != 0;
}

/*
 * Starts a short transaction with SPI and a snapshot. The caller's memory
 * context is remembered: committing leaves CurrentMemoryContext at
 * TopMemoryContext, where anything allocated per tick would leak.
 */
void
wsctl_xact_begin(const char *activity)
{
	xact_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "wsctl: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

void
wsctl_xact_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(xact_caller_cxt);
}

/*
 * In a PG_CATCH block: copies the error message into cxt, clears the error
 * and rolls the transaction back, so the worker can go on with the next
 * unit of work.
 */
char *
wsctl_xact_abort(MemoryContext cxt)
{
	ErrorData  *edata;
	char	   *message;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	message = pstrdup(edata->message ? edata->message : "unknown error");
	FreeErrorData(edata);
	MemoryContextSwitchTo(cxt);
	return message;
}

/*
 * Whether this component should work now: not on a standby, only once the
 * extension exists, and only while this process holds the component's
 * leader lock (one active instance per database). The lock is a session
 * advisory lock taken with pg_try_advisory_lock, so it never waits and is
 * released by PostgreSQL when the process dies.
 */
bool
wsctl_component_active(WsctlComponent c, bool *leader)
{
	bool		active = false;

	if (RecoveryInProgress())
	{
		*leader = is_leader;
		return false;
	}

	wsctl_xact_begin("wsctl: checking leadership");
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'wsctl'",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "wsctl: could not look up the extension");
	if (SPI_processed == 1)
	{
		if (!is_leader)
		{
			Datum		args[2] = {Int32GetDatum(WSCTL_LOCK_CLASS),
			Int32GetDatum(WSCTL_LEADER_LOCK_BASE + (int) c)};
			Oid			types[2] = {INT4OID, INT4OID};
			bool		isnull;
			int			ret;

			ret = SPI_execute_with_args("SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
										2, types, args, NULL, true, 1);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "wsctl: leader lock query failed: %s", SPI_result_code_string(ret));
			is_leader = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
		}
		active = is_leader;
	}
	wsctl_xact_commit();
	*leader = is_leader;
	return active;
}
