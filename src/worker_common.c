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
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "shmem.h"
#include "worker_common.h"

/* The memory context the caller of wsctl_xact_begin was in. */
static MemoryContext xact_caller_cxt = NULL;

/*
 * Settings a worker's session must have whatever the database or a role
 * says (ALTER DATABASE ... SET is open to the database owner): nothing
 * another role defines may run inside a worker, and nothing may make it
 * wait, refuse to write or change what its queries mean.
 *   search_path       only the catalog: every wsctl object is qualified, so
 *                     an operator or function planted in public (or any
 *                     schema) is never resolved
 *   role              the worker keeps its own (superuser) identity
 *   lock_timeout      a backstop; row locks are taken with SKIP LOCKED
 */
static const char *const pinned_settings[][2] = {
	{"search_path", "pg_catalog, pg_temp"},
	{"role", "none"},
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_read_only", "off"},
	{"default_transaction_deferrable", "off"},
	{"statement_timeout", "0"},
	{"lock_timeout", "5s"},
	{"idle_in_transaction_session_timeout", "0"},
	{"plpgsql.variable_conflict", "error"},
	{"plpgsql.extra_errors", "none"},
	{"plpgsql.extra_warnings", "none"},
};

/* Signals, database connection; the caller has just been started. */
void
wsctl_worker_start(const char *name)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(wsctl_database, NULL, 0);
	for (int i = 0; i < lengthof(pinned_settings); i++)
		SetConfigOption(pinned_settings[i][0], pinned_settings[i][1],
						PGC_SUSET, PGC_S_SESSION);
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
 * In a PG_CATCH block: reports the error whole to the server log (SQLSTATE,
 * detail, hint, context: EmitErrorReport), clears it and rolls the
 * transaction back, so the worker can go on with the next unit of work.
 * Returns, allocated in cxt, a one-line summary with the SQLSTATE and the
 * detail for wsctl.workers.last_error.
 */
char *
wsctl_xact_abort(MemoryContext cxt)
{
	ErrorData  *edata;
	char	   *summary;

	MemoryContextSwitchTo(cxt);
	EmitErrorReport();
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(cxt);
	summary = psprintf("%s: %s%s%s", unpack_sql_state(edata->sqlerrcode),
					   edata->message ? edata->message : "unknown error",
					   edata->detail ? " DETAIL: " : "",
					   edata->detail ? edata->detail : "");
	FreeErrorData(edata);
	return summary;
}

/*
 * Whether this component should work now: not on a standby, only once the
 * extension exists, and only while this process is the component's leader
 * (one active instance per database). Leadership is kept in shared memory
 * (wsctl_leader_acquire), never in a lock another role could take.
 */
bool
wsctl_component_active(WsctlComponent c, bool *leader)
{
	bool		exists;

	if (RecoveryInProgress())
	{
		*leader = false;
		return false;
	}

	wsctl_xact_begin("wsctl: checking the extension");
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'wsctl'",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "wsctl: could not look up the extension");
	exists = (SPI_processed == 1);
	wsctl_xact_commit();
	*leader = exists && wsctl_leader_acquire(c);
	return *leader;
}
