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

#include "docker.h"
#include "operation.h"
#include "storage_job.h"
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

/* Uploads the volume through a fresh helper container. */
static OpOutcome
upload_volume(const OpTarget *t, const char *key)
{
	bool		exists;
	DockerResult r = docker_volume_exists(t->id, &exists);
	OpOutcome	o;

	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	if (!exists)
		return op_failed("Mismatch", "VOLUME_NOT_FOUND",
						 psprintf("volume %s does not exist and no archive of this operation was found",
								  docker_volume_name(t->id)));
	r = docker_remove_job_container(t->id);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	r = docker_create_job_container(t->id, t->image_ref);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, "JOB_CREATE_FAILED");
	o = storage_archive(t->id, key, t->slot);
	if (!o.ok)
		(void) docker_remove_job_container(t->id);
	return o;
}

OpOutcome
act_archiving(const OpTarget *t)
{
	char	   *prefix = psprintf("archives/%s/%s/", t->id, t->op_id_text);
	char	   *key;
	bool		present;
	bool		exists;
	DockerResult r;
	OpOutcome	o = find_uploaded(t, prefix, &key);

	if (!o.ok)
		return o;
	if (key != NULL)
		ereport(LOG, (errmsg("wsctl operation: workspace %s: ARCHIVING: %s already uploaded by an earlier attempt",
							 t->id, key)));
	else
	{
		key = psprintf("%s%s", prefix, storage_archive_file_name());
		o = upload_volume(t, key);
		if (!o.ok)
			return o;
	}

	if (!commit_archive_key(t, key))
		return op_failed("Mismatch", "SUPERSEDED",
						 pstrdup("the workspace no longer has this ARCHIVING operation; nothing was removed"));

	/* the volume goes only while its committed archive is in the bucket */
	o = storage_archive_present(key, &present);
	if (!o.ok)
		return o;
	if (!present)
		return op_failed("ActionFailed", "ARCHIVE_NOT_FOUND",
						 psprintf("archive %s or its meta is missing after the commit; the volume is kept",
								  key));
	r = docker_remove_job_container(t->id);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	r = docker_remove_volume(t->id);
	if (r.kind != DOCKER_OK && r.kind != DOCKER_NOT_FOUND)
		return op_docker_failed(r, NULL);
	r = docker_volume_exists(t->id, &exists);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	if (exists)
		return op_failed("Mismatch", NULL, psprintf("volume %s still exists after removal",
													docker_volume_name(t->id)));
	return op_succeeded();
}

/* Removes the helper and the volume; an unverified home must not stay. */
static OpOutcome
remove_home(const OpTarget *t)
{
	DockerResult r = docker_remove_job_container(t->id);

	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	r = docker_remove_volume(t->id);
	if (r.kind != DOCKER_OK && r.kind != DOCKER_NOT_FOUND)
		return op_docker_failed(r, NULL);
	return op_succeeded();
}

OpOutcome
act_restoring(const OpTarget *t)
{
	int64		size = -1;
	char	   *sha256 = NULL;
	DockerResult r;
	OpOutcome	o;

	if (t->archive_key == NULL)
		return op_failed("DataLost", "ARCHIVE_NOT_FOUND",
						 pstrdup("the workspace has no archive to restore"));
	/* crash-only: start from nothing, whatever an earlier attempt left */
	o = remove_home(t);
	if (!o.ok)
		return o;
	o = storage_check_archive(t->archive_key, &size, &sha256);
	if (!o.ok)
		return o;

	r = docker_create_volume(t->id);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, "VOLUME_CREATE_FAILED");
	r = docker_create_job_container(t->id, t->image_ref);
	if (r.kind != DOCKER_OK)
	{
		(void) remove_home(t);
		return op_docker_failed(r, "JOB_CREATE_FAILED");
	}
	o = storage_restore(t->id, t->archive_key, size, sha256, t->slot);
	if (!o.ok)
	{
		OpOutcome	removed = remove_home(t);

		if (!removed.ok)
			ereport(WARNING,
					(errmsg("wsctl operation: workspace %s: RESTORING failed and the unverified volume could not be removed: %s",
							t->id, removed.message)));
		return o;
	}
	r = docker_remove_job_container(t->id);
	if (r.kind != DOCKER_OK)
		return op_docker_failed(r, NULL);
	return op_succeeded();
}
