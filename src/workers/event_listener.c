/*
 * event_listener.c: the EventListener background worker.
 *
 * The change trigger writes every event into the outbox (wsctl.events) in
 * the transaction that makes the change, and wakes this worker at commit.
 * Each tick, this worker
 *   1. gives the newly committed events their public ids, in commit order
 *      (wsctl._sequence_events);
 *   2. ships the events after the durable cursor to Redis, in id order: one
 *      entry per event in the stream wsctl:events, with the event id as the
 *      entry id (<id>-0, so a retried XADD is refused as a duplicate and the
 *      stream never holds an event twice), and a PUBLISH on
 *      workspace:{id} for live subscribers;
 *   3. moves the cursor past what Redis acknowledged.
 * Redis down: nothing is lost, the cursor waits, and the events committed
 * meanwhile are shipped when Redis is back. Events shipped and older than
 * wsctl.events_retention are pruned. NOTIFY plays no part: any role can
 * send one, so it is never trusted as an event.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "metrics.h"
#include "redis.h"
#include "shmem.h"
#include "worker_common.h"
#include "workers.h"

#define EVENT_BATCH 500			/* events per Redis round */
#define EVENT_MAX_BATCHES 20	/* per tick; the rest waits for the next */
#define EVENT_TICK_MS 1000		/* fallback when no commit wakes us */
#define PRUNE_EVERY_MS 60000
#define STREAM_KEY "wsctl:events"
#define STREAM_MAXLEN "1000000" /* approximate (MAXLEN ~): bounds Redis memory */

typedef struct OutboxEvent
{
	int64		id;
	char	   *workspace_id;
	char	   *owner_user_id;
	char	   *event;
	char	   *payload;
} OutboxEvent;

static int
sequence_events(void)
{
	Datum		arg = Int32GetDatum(EVENT_BATCH * EVENT_MAX_BATCHES);
	Oid			type = INT4OID;
	bool		isnull;
	int			n;
	int			ret;

	wsctl_xact_begin("wsctl event_listener: numbering committed events");
	ret = SPI_execute_with_args("SELECT wsctl._sequence_events($1)", 1, &type, &arg, NULL,
								false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "wsctl event_listener: _sequence_events failed: %s",
			 SPI_result_code_string(ret));
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	wsctl_xact_commit();
	return n;
}

/* The next batch after the cursor, copied into cxt. */
static List *
events_to_ship(MemoryContext cxt)
{
	Datum		arg = Int32GetDatum(EVENT_BATCH);
	Oid			type = INT4OID;
	List	   *events = NIL;
	int			ret;

	wsctl_xact_begin("wsctl event_listener: reading events to ship");
	ret = SPI_execute_with_args("SELECT id, workspace_id::text, owner_user_id::text, event, payload "
								"FROM wsctl._events_to_ship($1)", 1, &type, &arg, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl event_listener: _events_to_ship failed: %s",
			 SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(cxt);
		OutboxEvent *e = palloc0(sizeof(OutboxEvent));
		char	   *event = SPI_getvalue(tup, desc, 4);
		bool		isnull;

		e->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		e->workspace_id = SPI_getvalue(tup, desc, 2);
		e->owner_user_id = SPI_getvalue(tup, desc, 3);
		e->event = event ? event : pstrdup("state_changed");
		e->payload = SPI_getvalue(tup, desc, 5);
		events = lappend(events, e);
		MemoryContextSwitchTo(spi);
	}
	wsctl_xact_commit();
	return events;
}

static void
record_shipped(int64 last_id)
{
	Datum		arg = Int64GetDatum(last_id);
	Oid			type = INT8OID;
	int			ret;

	wsctl_xact_begin("wsctl event_listener: moving the cursor");
	ret = SPI_execute_with_args("SELECT wsctl._events_shipped($1)", 1, &type, &arg, NULL,
								false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl event_listener: _events_shipped failed: %s",
			 SPI_result_code_string(ret));
	wsctl_xact_commit();
}

static void
prune_events(void)
{
	int			ret;

	wsctl_xact_begin("wsctl event_listener: pruning old events");
	ret = SPI_execute("SELECT wsctl._prune_events()", false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl event_listener: _prune_events failed: %s",
			 SPI_result_code_string(ret));
	wsctl_xact_commit();
}

/*
 * Ships one event: XADD with the event id as the entry id, then PUBLISH.
 * An entry id Redis already has is this event only if the entry holds the
 * same data: then a previous run shipped it and died before moving the
 * cursor, and it counts as shipped (and is not published twice). Any other
 * entry there (the extension was re-created and its ids started again, or
 * another installation shares the stream) stops the shipping loudly:
 * counting it as shipped would drop the event in silence.
 */
static RedisResult
ship_one(const OutboxEvent *e)
{
	char	   *entry_id = psprintf(INT64_FORMAT "-0", e->id);
	const char *xadd[14] = {"XADD", STREAM_KEY, "MAXLEN", "~", STREAM_MAXLEN, entry_id,
		"event", e->event, "workspace_id", e->workspace_id,
	"owner_user_id", e->owner_user_id, "data", e->payload};
	const char *publish[3] = {"PUBLISH", psprintf("workspace:%s", e->workspace_id), e->payload};
	RedisResult r = wsctl_redis_command(lengthof(xadd), xadd);

	if (r.status == REDIS_REFUSED && r.message != NULL &&
		strstr(r.message, "equal or smaller") != NULL)
	{
		char	   *held = NULL;

		r = wsctl_redis_stream_field(STREAM_KEY, entry_id, "data", &held);
		if (r.status != REDIS_OK_STATUS)
			return r;
		if (held != NULL && strcmp(held, e->payload) == 0)
			return r;			/* shipped before: nothing more to do */
		r.status = REDIS_REFUSED;
		r.message = psprintf("the stream %s already holds %s entry %s, or a later one: another installation shares it, or wsctl was re-created (DEL %s once its readers are done)",
							 STREAM_KEY, held ? "a different" : "no", entry_id, STREAM_KEY);
		return r;
	}
	if (r.status != REDIS_OK_STATUS)
		return r;
	return wsctl_redis_command(lengthof(publish), publish);
}

/* Ships a batch in order; returns false (with *error) when Redis failed. */
static bool
ship_batch(List *events, int64 *last_id, char **error)
{
	ListCell   *lc;

	*last_id = 0;
	foreach(lc, events)
	{
		OutboxEvent *e = lfirst(lc);
		RedisResult r = ship_one(e);

		if (r.status != REDIS_OK_STATUS)
		{
			*error = psprintf("event %lld (workspace %s) not shipped: %s",
							  (long long) e->id, e->workspace_id, r.message);
			return false;
		}
		*last_id = e->id;
		wsctl_metrics_events_shipped(1);
	}
	return true;
}

static void
event_listener_tick(MemoryContext tick_cxt, TimestampTz *last_prune)
{
	instr_time	start,
				elapsed;

	INSTR_TIME_SET_CURRENT(start);
	(void) sequence_events();
	for (int batch = 0; batch < EVENT_MAX_BATCHES; batch++)
	{
		List	   *events = events_to_ship(tick_cxt);
		int64		last_id;
		char	   *error = NULL;
		bool		ok;

		if (events == NIL)
			break;
		ok = ship_batch(events, &last_id, &error);
		if (last_id > 0)
			record_shipped(last_id);
		if (!ok)
		{
			ereport(WARNING, (errmsg("wsctl event_listener: %s; will retry", error)));
			wsctl_status_error(WSCTL_EVENT_LISTENER, error);
			break;
		}
		if (list_length(events) < EVENT_BATCH)
			break;
	}
	if (TimestampDifferenceExceeds(*last_prune, GetCurrentTimestamp(), PRUNE_EVERY_MS))
	{
		prune_events();
		*last_prune = GetCurrentTimestamp();
	}
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	wsctl_status_tick(WSCTL_EVENT_LISTENER, INSTR_TIME_GET_MILLISEC(elapsed), 0);
}

void
wsctl_event_listener_main(Datum arg)
{
	MemoryContext tick_cxt;
	bool		leader = false;
	static TimestampTz last_prune = 0;	/* static: survives a longjmp */

	tick_cxt = wsctl_component_start(WSCTL_EVENT_LISTENER, "wsctl event_listener");

	for (;;)
	{
		MemoryContextSwitchTo(tick_cxt);
		if (wsctl_component_active(WSCTL_EVENT_LISTENER, &leader))
		{
			wsctl_status_set_running(WSCTL_EVENT_LISTENER, true);
			PG_TRY();
			{
				event_listener_tick(tick_cxt, &last_prune);
			}
			PG_CATCH();
			{
				char	   *message = wsctl_xact_abort(tick_cxt);

				ereport(WARNING, (errmsg("wsctl event_listener: tick failed: %s", message)));
				wsctl_status_error(WSCTL_EVENT_LISTENER, message);
			}
			PG_END_TRY();
		}
		else
			wsctl_status_set_running(WSCTL_EVENT_LISTENER, leader);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(tick_cxt);
		wsctl_worker_wait(EVENT_TICK_MS);
	}
}
