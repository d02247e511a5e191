/*
 * archive_gc.c: the Archive GC background worker (SPEC 4.5).
 *
 * Every wsctl.gc_interval it lists archives/ (and only it) with
 * ListObjectsV2, page by page, and hands the complete listing to
 * wsctl._gc_plan(), which applies the protection rules in SQL, records
 * when each orphan was first seen (wsctl.archive_orphans, so a restart
 * does not reset the clock) and returns the orphans older than
 * wsctl.gc_orphan_delay. Each of those is checked again in its own
 * transaction right before DeleteObject.
 *
 * Safety first: a listing that fails part-way, or a database error, skips
 * the whole cycle; nothing is ever deleted on a partial view. A failed
 * delete skips that key until the next cycle. With no wsctl.s3_endpoint
 * the worker stays idle.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "s3.h"
#include "shmem.h"
#include "worker_common.h"
#include "workers.h"

#define GC_PREFIX "archives/"

/* The interval wsctl.gc_orphan_delay as a Datum. */
static Datum
orphan_delay(void)
{
	return DirectFunctionCall3(interval_in,
							   CStringGetDatum(psprintf("%d s", wsctl_gc_orphan_delay_s)),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/* Every key under archives/; false (with *error) if any page failed. */
static bool
list_archives(List **keys, char **error)
{
	char	   *token = NULL;

	*keys = NIL;
	do
	{
		List	   *page;
		ListCell   *lc;
		S3Result	r = s3_list(GC_PREFIX, token, &page, &token);

		if (r.kind != S3_OK)
		{
			*error = r.message;
			return false;
		}
		foreach(lc, page)
			*keys = lappend(*keys, ((S3Object *) lfirst(lc))->key);
	} while (token != NULL);
	return true;
}

/* Records the listing and returns the keys due for deletion. */
static List *
plan(List *keys, MemoryContext cxt)
{
	Datum	   *elems = palloc(sizeof(Datum) * (list_length(keys) + 1));
	Oid			types[2] = {TEXTARRAYOID, INTERVALOID};
	Datum		args[2];
	List	   *due = NIL;
	ListCell   *lc;
	int			n = 0;
	int			ret;

	foreach(lc, keys)
		elems[n++] = CStringGetTextDatum(lfirst(lc));
	args[0] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = orphan_delay();

	wsctl_xact_begin("wsctl archive_gc: recording orphans");
	ret = SPI_execute_with_args("SELECT k FROM wsctl._gc_plan($1, $2) AS k",
								2, types, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl archive_gc: _gc_plan failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *key = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		/* the list, not only its keys, must outlive SPI's memory */
		MemoryContext spi = MemoryContextSwitchTo(cxt);

		due = lappend(due, pstrdup(key));
		MemoryContextSwitchTo(spi);
	}
	wsctl_xact_commit();
	MemoryContextSwitchTo(cxt);
	return due;
}

/* Runs one of the per-key statements ($1 key, $2 delay); returns its bool. */
static bool
key_statement(const char *sql, const char *key)
{
	Oid			types[2] = {TEXTOID, INTERVALOID};
	Datum		args[2] = {CStringGetTextDatum(key), orphan_delay()};
	bool		isnull = true;
	bool		result = false;
	int			ret;

	wsctl_xact_begin("wsctl archive_gc: one orphan");
	ret = SPI_execute_with_args(sql, 2, types, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wsctl archive_gc: %s failed: %s", sql, SPI_result_code_string(ret));
	if (SPI_processed == 1)
		result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											1, &isnull));
	wsctl_xact_commit();
	return !isnull && result;
}

static void
archive_gc_tick(MemoryContext tick_cxt)
{
	List	   *keys;
	List	   *due;
	ListCell   *lc;
	char	   *error = NULL;
	int			deleted = 0;
	instr_time	start,
				elapsed;

	INSTR_TIME_SET_CURRENT(start);
	if (!list_archives(&keys, &error))
	{
		char	   *message = psprintf("listing %s failed, cycle skipped: %s", GC_PREFIX, error);

		ereport(WARNING, (errmsg("wsctl archive_gc: %s", message)));
		wsctl_status_error(WSCTL_ARCHIVE_GC, message);
		return;
	}
	due = plan(keys, tick_cxt);
	foreach(lc, due)
	{
		const char *key = lfirst(lc);
		S3Result	r;

		if (!key_statement("SELECT wsctl._gc_may_delete($1, $2)", key))
			continue;
		r = s3_delete(key);
		if (r.kind != S3_OK)
		{
			ereport(WARNING, (errmsg("wsctl archive_gc: %s; kept until the next cycle", r.message)));
			wsctl_status_error(WSCTL_ARCHIVE_GC, r.message);
			continue;
		}
		(void) key_statement("SELECT true FROM wsctl._gc_deleted($1) WHERE $2 IS NOT NULL", key);
		ereport(LOG, (errmsg("wsctl archive_gc: deleted orphan %s", key)));
		deleted++;
	}
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	if (deleted > 0 || list_length(due) > 0)
		ereport(DEBUG1, (errmsg("wsctl archive_gc: %d objects listed, %d due, %d deleted",
								list_length(keys), list_length(due), deleted)));
	wsctl_status_tick(WSCTL_ARCHIVE_GC, INSTR_TIME_GET_MILLISEC(elapsed), 0);
}

void
wsctl_archive_gc_main(Datum arg)
{
	MemoryContext tick_cxt;
	bool		leader = false;

	tick_cxt = wsctl_component_start(WSCTL_ARCHIVE_GC, "wsctl archive_gc");

	for (;;)
	{
		MemoryContextSwitchTo(tick_cxt);
		if (wsctl_s3_endpoint == NULL || wsctl_s3_endpoint[0] == '\0')
			wsctl_status_set_running(WSCTL_ARCHIVE_GC, false);
		else if (wsctl_component_active(WSCTL_ARCHIVE_GC, &leader))
		{
			wsctl_status_set_running(WSCTL_ARCHIVE_GC, true);
			PG_TRY();
			{
				archive_gc_tick(tick_cxt);
			}
			PG_CATCH();
			{
				char	   *message = wsctl_xact_abort(tick_cxt);

				ereport(WARNING, (errmsg("wsctl archive_gc: cycle failed, nothing more deleted: %s",
										 message)));
				wsctl_status_error(WSCTL_ARCHIVE_GC, message);
			}
			PG_END_TRY();
		}
		else
			wsctl_status_set_running(WSCTL_ARCHIVE_GC, leader);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(tick_cxt);
		wsctl_worker_wait(wsctl_gc_interval_ms);
	}
}
