/*
 * metrics.c: the counters of the wsctl.metrics view, in shared memory.
 *
 * Calls to Docker, S3 and Redis, events shipped and archive bytes are
 * counted where they happen, by whichever process makes them. Operations
 * started, completed and failed, and the errors recorded by reason, are
 * counted by the state machine's SQL (wsctl._count_operation); those
 * counts are held in the backend until its transaction commits, so an
 * aborted reconcile step counts nothing.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "metrics.h"
#include "shmem.h"
#include "workers.h"

PG_FUNCTION_INFO_V1(wsctl_count_operation);
PG_FUNCTION_INFO_V1(wsctl_metrics_counters);

/* wsctl.operation without NONE, in the enum's order. */
static const char *const operation_names[] = {
	"PROVISIONING", "RESTORING", "STARTING", "STOPPING", "ARCHIVING", "DELETING"
};
#define NUM_OPERATIONS lengthof(operation_names)

static const char *const outcome_names[] = {"started", "completed", "failed"};
#define NUM_OUTCOMES lengthof(outcome_names)

/* SPEC 8.4's ErrorReason; anything else is counted as "other". */
static const char *const reason_names[] = {
	"Mismatch", "Unreachable", "ActionFailed", "Timeout", "RetryExceeded", "DataLost", "other"
};
#define NUM_REASONS lengthof(reason_names)

static const char *const service_names[WSCTL_NUM_SERVICES] = {"docker", "s3", "redis"};
static const char *const direction_names[WSCTL_NUM_ARCHIVE_DIRECTIONS] = {"upload", "download"};

typedef struct WsctlMetricsShared
{
	pg_atomic_uint64 calls[WSCTL_NUM_SERVICES];
	pg_atomic_uint64 call_failures[WSCTL_NUM_SERVICES];
	pg_atomic_uint64 operations[NUM_OPERATIONS][NUM_OUTCOMES];
	pg_atomic_uint64 errors[NUM_OPERATIONS][NUM_REASONS];
	pg_atomic_uint64 events_shipped;
	pg_atomic_uint64 archive_bytes[WSCTL_NUM_ARCHIVE_DIRECTIONS];
} WsctlMetricsShared;

static WsctlMetricsShared *metrics = NULL;

/* This transaction's operation counts, added to shared memory at commit. */
static uint32 pending_operations[NUM_OPERATIONS][NUM_OUTCOMES];
static uint32 pending_errors[NUM_OPERATIONS][NUM_REASONS];
static bool pending_any = false;

Size
wsctl_metrics_shmem_size(void)
{
	return MAXALIGN(sizeof(WsctlMetricsShared));
}

/* Called from the shmem startup hook, with AddinShmemInitLock held. */
void
wsctl_metrics_shmem_attach(void)
{
	bool		found;
	pg_atomic_uint64 *counter;
	Size		n = sizeof(WsctlMetricsShared) / sizeof(pg_atomic_uint64);

	StaticAssertStmt(sizeof(WsctlMetricsShared) % sizeof(pg_atomic_uint64) == 0,
					 "the metrics area holds counters only");
	metrics = ShmemInitStruct("wsctl metrics", sizeof(WsctlMetricsShared), &found);
	if (found)
		return;
	counter = (pg_atomic_uint64 *) metrics;
	for (Size i = 0; i < n; i++)
		pg_atomic_init_u64(&counter[i], 0);
}

void
wsctl_metrics_call(WsctlService service, bool failed)
{
	if (metrics == NULL)
		return;
	pg_atomic_fetch_add_u64(&metrics->calls[service], 1);
	if (failed)
		pg_atomic_fetch_add_u64(&metrics->call_failures[service], 1);
}

void
wsctl_metrics_events_shipped(uint64 n)
{
	if (metrics != NULL)
		pg_atomic_fetch_add_u64(&metrics->events_shipped, n);
}

void
wsctl_metrics_archive_bytes(WsctlArchiveDirection direction, uint64 n)
{
	if (metrics != NULL)
		pg_atomic_fetch_add_u64(&metrics->archive_bytes[direction], n);
}

static int
name_index(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

static void
pending_reset(void)
{
	memset(pending_operations, 0, sizeof(pending_operations));
	memset(pending_errors, 0, sizeof(pending_errors));
	pending_any = false;
}

static void
metrics_xact_callback(XactEvent event, void *arg)
{
	if (!pending_any)
		return;
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) && metrics != NULL)
	{
		for (int op = 0; op < NUM_OPERATIONS; op++)
		{
			for (int o = 0; o < NUM_OUTCOMES; o++)
				if (pending_operations[op][o])
					pg_atomic_fetch_add_u64(&metrics->operations[op][o], pending_operations[op][o]);
			for (int r = 0; r < NUM_REASONS; r++)
				if (pending_errors[op][r])
					pg_atomic_fetch_add_u64(&metrics->errors[op][r], pending_errors[op][r]);
		}
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		pending_reset();
}

/*
 * wsctl._count_operation(operation text, outcome text, reason text):
 * outcome started, completed or failed counts the operation; outcome error
 * counts one recorded error of the operation by reason. Only the state
 * machine's functions call it (EXECUTE is granted to nobody).
 */
Datum
wsctl_count_operation(PG_FUNCTION_ARGS)
{
	static bool callback_registered = false;
	char	   *operation;
	char	   *outcome;
	int			op;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_VOID();
	operation = text_to_cstring(PG_GETARG_TEXT_PP(0));
	outcome = text_to_cstring(PG_GETARG_TEXT_PP(1));
	op = name_index(operation_names, NUM_OPERATIONS, operation);
	if (op < 0)
		PG_RETURN_VOID();		/* NONE: nothing was in flight */
	if (!callback_registered)
	{
		RegisterXactCallback(metrics_xact_callback, NULL);
		callback_registered = true;
	}

	if (strcmp(outcome, "error") == 0)
	{
		const char *reason = PG_ARGISNULL(2) ? "other" : text_to_cstring(PG_GETARG_TEXT_PP(2));
		int			r = name_index(reason_names, NUM_REASONS, reason);

		pending_errors[op][r < 0 ? NUM_REASONS - 1 : r]++;
	}
	else
	{
		int			o = name_index(outcome_names, NUM_OUTCOMES, outcome);

		if (o < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid outcome: \"%s\"", outcome),
					 errdetail("An operation is counted as started, completed, failed or error.")));
		pending_operations[op][o]++;
	}
	pending_any = true;
	PG_RETURN_VOID();
}

/* One row of wsctl._metrics_counters(); labels is a JSON object text. */
static void
put_row(ReturnSetInfo *rsinfo, const char *metric, const char *type, char *labels, double value)
{
	Datum		values[4];
	bool		nulls[4] = {0};

	values[0] = CStringGetTextDatum(metric);
	values[1] = CStringGetTextDatum(type);
	values[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(labels));
	values[3] = Float8GetDatum(value);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

static double
counter(pg_atomic_uint64 *c)
{
	return (double) pg_atomic_read_u64(c);
}

static void
put_component_rows(ReturnSetInfo *rsinfo)
{
	for (int c = 0; c < WSCTL_NUM_COMPONENTS; c++)
	{
		WsctlComponentStatus s = wsctl_status_get((WsctlComponent) c);
		char	   *labels = psprintf("{\"component\": \"%s\"}", wsctl_component_name(c));

		put_row(rsinfo, "wsctl_worker_up", "gauge", labels, s.pid != 0 ? 1 : 0);
		put_row(rsinfo, "wsctl_worker_ticks_total", "counter", labels, (double) s.ticks);
		put_row(rsinfo, "wsctl_worker_tick_seconds_sum", "counter", labels, s.tick_ms_sum / 1000.0);
		put_row(rsinfo, "wsctl_worker_last_tick_seconds", "gauge", labels, s.last_tick_ms / 1000.0);
	}
	put_row(rsinfo, "wsctl_operation_workers_busy", "gauge", pstrdup("{}"),
			wsctl_op_slots_in_use());
}

/*
 * wsctl._metrics_counters(): the counters and worker figures held in shared
 * memory, one row per metric and label set; wsctl.metrics adds the gauges
 * the table answers.
 */
Datum
wsctl_metrics_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (metrics == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("wsctl's shared memory is not set up"),
				 errhint("Add wsctl to shared_preload_libraries and restart the server.")));

	for (int s = 0; s < WSCTL_NUM_SERVICES; s++)
	{
		char	   *labels = psprintf("{\"service\": \"%s\"}", service_names[s]);

		put_row(rsinfo, "wsctl_backend_calls_total", "counter", labels, counter(&metrics->calls[s]));
		put_row(rsinfo, "wsctl_backend_failures_total", "counter", labels,
				counter(&metrics->call_failures[s]));
	}
	for (int op = 0; op < NUM_OPERATIONS; op++)
	{
		for (int o = 0; o < NUM_OUTCOMES; o++)
			put_row(rsinfo, "wsctl_operations_total", "counter",
					psprintf("{\"operation\": \"%s\", \"outcome\": \"%s\"}",
							 operation_names[op], outcome_names[o]),
					counter(&metrics->operations[op][o]));
		for (int r = 0; r < NUM_REASONS; r++)
			put_row(rsinfo, "wsctl_operation_errors_total", "counter",
					psprintf("{\"operation\": \"%s\", \"reason\": \"%s\"}",
							 operation_names[op], reason_names[r]),
					counter(&metrics->errors[op][r]));
	}
	put_row(rsinfo, "wsctl_events_shipped_total", "counter", pstrdup("{}"),
			counter(&metrics->events_shipped));
	for (int d = 0; d < WSCTL_NUM_ARCHIVE_DIRECTIONS; d++)
		put_row(rsinfo, "wsctl_archive_bytes_total", "counter",
				psprintf("{\"direction\": \"%s\"}", direction_names[d]),
				counter(&metrics->archive_bytes[d]));
	put_component_rows(rsinfo);
	return (Datum) 0;
}
