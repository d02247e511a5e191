/*
 * operation_storage.c: the ARCHIVING and RESTORING actuators.
 *
 * ARCHIVING, in the order that keeps a home safe (SPEC 5.1):
 *   1. HEAD the object and the meta of this op_id: both there means an
 *      earlier attempt uploaded it (a retry is a HEAD check);
 *   2. otherwise upload the object, then the meta (storage_job.c);
 *   3. commit archive_key (wsctl._commit_archive, the reconciler's rule);
 *   4. HEAD both again, and only then remove the helper and the volume.
 * The volume is never removed without a committed archive_key whose object
 * and meta are in the bucket.
 *
 * RESTORING is crash-only: whatever an earlier attempt left is removed, the
 * meta and the object are checked, the volume is created empty and filled
 * by one verified pass. On any failure the volume is removed again, so no
 * unverified or partial home is ever left to be observed.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "operation.h"
#include "archive_store.h"
#include "worker_common.h"

/*
 * Commits archive_key through the reconciler's SQL rule, which accepts only
 * a key below this op_id's prefix while the workspace still has this
 * ARCHIVING operation. false: the operation was superseded meanwhile.
 */
static bool
commit_archive_key(const OpTarget *t, const char *key)
{
	Oid			types[3] = {UUIDOID, UUIDOID, TEXTOID};
	Datum		args[3] = {UUIDPGetDatum(&t->workspace), UUIDPGetDatum(&t->op_id),
	CStringGetTextDatum(key)};
	bool		isnull;
	bool		committed;
	int			ret;

	wsctl_xact_begin("wsctl operation: committing archive_key");
	ret = SPI_execute_with_args("SELECT wsctl._commit_archive($1, $2, $3)",
								3, types, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "wsctl operation: committing archive_key failed: %s",
			 SPI_result_code_string(ret));
	committed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										   1, &isnull));
	wsctl_xact_commit();
	return !isnull && committed;
}

/* The key this op_id's archive has, if an earlier attempt uploaded it whole. */
static OpOutcome
find_uploaded(const OpTarget *t, const char *prefix, char **key)
{
	const char *names[2] = {storage_archive_file_name(), NULL};
	List	   *candidates = NIL;
	ListCell   *lc;

	names[1] = strcmp(names[0], "home.tar.zst") == 0 ? "home.tar.gz" : "home.tar.zst";
	*key = NULL;
	if (t->archive_key != NULL && strncmp(t->archive_key, prefix, strlen(prefix)) == 0)
		candidates = lappend(candidates, t->archive_key);
	for (int i = 0; i < 2; i++)
		candidates = lappend(candidates, psprintf("%s%s", prefix, names[i]));
	foreach(lc, candidates)
	{
		bool		present;
		OpOutcome	o = storage_archive_present(lfirst(lc), &present);

		if (!o.ok)
			return o;
		if (present)
		{
			*key = lfirst(lc);
			break;
		}
	}
	return op_succeeded();
}

/* Uploads the home: the provider streams it to key, then key.meta. */
static OpOutcome
upload_home(const OpTarget *t, const char *key)
{
	const StorageProvider *s = t->storage;
	TransferRequest req = {0};
	bool		exists;
	OpOutcome	o = s->home_exists(s, t->id, &exists);

	if (!o.ok)
		return o;
	if (!exists)
		return op_failed("Mismatch", "VOLUME_NOT_FOUND",
						 psprintf("%s does not exist and no archive of this operation was found",
								  s->describe(s, t->id)));
	req.workspace_id = t->id;
	req.image_ref = t->image_ref;
	req.key = key;
	req.progress_slot = t->slot;
	return s->archive_home(s, &req);
}

OpOutcome
act_archiving(const OpTarget *t)
{
	const StorageProvider *s = t->storage;
	char	   *prefix = psprintf("archives/%s/%s/", t->id, t->op_id_text);
	char	   *key;
	bool		present;
	bool		exists;
	OpOutcome	o = find_uploaded(t, prefix, &key);

	if (!o.ok)
		return o;
	if (key != NULL)
		ereport(LOG, (errmsg("wsctl operation: workspace %s: ARCHIVING: %s already uploaded by an earlier attempt",
							 t->id, key)));
	else
	{
		key = psprintf("%s%s", prefix, storage_archive_file_name());
		o = upload_home(t, key);
		if (!o.ok)
			return o;
	}

	if (!commit_archive_key(t, key))
		return op_failed("Mismatch", "SUPERSEDED",
						 pstrdup("the workspace no longer has this ARCHIVING operation; nothing was removed"));

	/* the home goes only while its committed archive is in the bucket */
	o = storage_archive_present(key, &present);
	if (!o.ok)
		return o;
	if (!present)
		return op_failed("ActionFailed", "ARCHIVE_NOT_FOUND",
						 psprintf("archive %s or its meta is missing after the commit; the volume is kept",
								  key));
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

OpOutcome
act_restoring(const OpTarget *t)
{
	const StorageProvider *s = t->storage;
	TransferRequest req = {0};
	int64		size = -1;
	char	   *sha256 = NULL;
	OpOutcome	o;

	if (t->archive_key == NULL)
		return op_failed("DataLost", "ARCHIVE_NOT_FOUND",
						 pstrdup("the workspace has no archive to restore"));
	/* crash-only: start from nothing, whatever an earlier attempt left */
	o = s->remove_transfers(s, t->id);
	if (o.ok)
		o = s->remove_home(s, t->id);
	if (!o.ok)
		return o;
	o = storage_check_archive(t->archive_key, &size, &sha256);
	if (!o.ok)
		return o;

	req.workspace_id = t->id;
	req.image_ref = t->image_ref;
	req.key = t->archive_key;
	req.expected_sha256 = sha256;
	req.size = size;
	req.progress_slot = t->slot;
	return s->restore_home(s, &req);
}
