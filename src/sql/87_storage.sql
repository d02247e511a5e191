-- 87_storage.sql: archives in object storage: the archive_key commit, the
-- progress of transfers, and the Archive GC's rules (SPEC 4.5, 5).

-- The commit point of ARCHIVING (SPEC 5.1: archive_key is stored before the
-- volume is removed, never after). archive_key is the reconciler's column;
-- this is the reconciler's rule, called by the operation worker once the
-- object and its meta are in the bucket. It accepts only a key below this
-- op_id's prefix, and only while the workspace still has this operation.
CREATE FUNCTION wsctl._commit_archive(workspace_id uuid, op_id uuid, key text)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'reconciler'
AS $$
BEGIN
	UPDATE wsctl.workspaces AS x
	   SET archive_key = key
	 WHERE x.id = workspace_id AND x.op_id = _commit_archive.op_id
	   AND x.operation = 'ARCHIVING' AND x.deleted_at IS NULL
	   AND starts_with(key, wsctl.archive_prefix_for(workspace_id, _commit_archive.op_id))
	   AND key NOT LIKE '%/../%' AND key NOT LIKE '%.meta';
	IF FOUND THEN
		RAISE LOG 'wsctl: workspace % ARCHIVING committed archive_key % (op_id %)',
			workspace_id, key, op_id;
	END IF;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION wsctl._commit_archive(uuid, uuid, text) IS
	'Commits archive_key once an ARCHIVING worker has uploaded the object and its meta; false if the operation was superseded';

-- Progress of long transfers, from the operation workers' shared memory.
CREATE FUNCTION wsctl._operation_progress(
	OUT workspace_id uuid, OUT operation text, OUT op_id uuid, OUT bytes_done bigint,
	OUT bytes_total bigint, OUT started_at timestamptz, OUT updated_at timestamptz)
RETURNS SETOF record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_operation_progress';
COMMENT ON FUNCTION wsctl._operation_progress() IS 'Data of the wsctl.operation_progress view, from shared memory';

CREATE VIEW wsctl.operation_progress AS
	SELECT p.workspace_id, p.operation, p.op_id, p.bytes_done, p.bytes_total,
		   p.started_at, p.updated_at,
		   -- bytes per second since the worker started
		   CASE WHEN p.updated_at > p.started_at
				THEN round(p.bytes_done / extract(epoch FROM p.updated_at - p.started_at))::bigint
		   END AS rate
	  FROM wsctl._operation_progress() AS p;
COMMENT ON VIEW wsctl.operation_progress IS
	'Bytes moved by each running ARCHIVING (read from the volume) or RESTORING (downloaded; bytes_total = the archive''s size) operation, and the rate in bytes per second';

-- Archive GC ----------------------------------------------------------------

CREATE TABLE wsctl.archive_orphans (
	key           text PRIMARY KEY,
	first_seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wsctl.archive_orphans IS
	'Objects under archives/ that no workspace protects, and when the Archive GC first saw each (survives restarts)';

-- Whether a key is protected (SPEC 4.5): the archive_key of a live
-- workspace (and its meta), or anything under archives/{id}/{op_id}/ of a
-- live workspace whose op_id is set (an operation in flight, or an ERROR
-- that keeps it for recovery). A soft-deleted workspace protects nothing.
CREATE FUNCTION wsctl._archive_protected(key text)
RETURNS bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (
		SELECT 1 FROM wsctl.workspaces AS w
		 WHERE w.deleted_at IS NULL
		   AND ((w.archive_key IS NOT NULL AND key IN (w.archive_key, w.archive_key || '.meta'))
				OR (w.op_id IS NOT NULL
					AND starts_with(key, wsctl.archive_prefix_for(w.id, w.op_id)))))
$$;
COMMENT ON FUNCTION wsctl._archive_protected(text) IS
	'Whether the Archive GC must keep an object: a live workspace''s archive_key (and meta), or under the prefix of its op_id';

-- One GC cycle's bookkeeping, given the complete listing of archives/: the
-- orphans are recorded (first sight kept), rows of keys that are protected
-- again or gone are dropped, and the orphans older than the delay returned.
CREATE FUNCTION wsctl._gc_plan(listed text[], orphan_delay interval)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	orphans text[];
BEGIN
	SELECT coalesce(array_agg(k), '{}') INTO orphans
	  FROM unnest(listed) AS k
	 WHERE starts_with(k, 'archives/') AND NOT wsctl._archive_protected(k);
	DELETE FROM wsctl.archive_orphans AS o WHERE o.key <> ALL (orphans);
	INSERT INTO wsctl.archive_orphans AS o (key)
	SELECT k FROM unnest(orphans) AS k
	ON CONFLICT DO NOTHING;
	RETURN QUERY
		SELECT o.key FROM wsctl.archive_orphans AS o
		 WHERE o.first_seen_at <= now() - orphan_delay
		 ORDER BY o.key;
END
$$;
COMMENT ON FUNCTION wsctl._gc_plan(text[], interval) IS
	'Archive GC: records the orphans of a complete listing of archives/ and returns those orphaned for longer than the delay';

-- Asked again right before each delete, in its own transaction: a key that
-- became protected since the plan is kept.
CREATE FUNCTION wsctl._gc_may_delete(key text, orphan_delay interval)
RETURNS bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM wsctl.archive_orphans AS o
					WHERE o.key = _gc_may_delete.key
					  AND o.first_seen_at <= now() - orphan_delay)
		   AND NOT wsctl._archive_protected(key)
$$;
COMMENT ON FUNCTION wsctl._gc_may_delete(text, interval) IS
	'Archive GC: whether an orphan may be deleted now (still unprotected and orphaned for longer than the delay)';

CREATE FUNCTION wsctl._gc_deleted(key text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM wsctl.archive_orphans AS o WHERE o.key = _gc_deleted.key $$;
COMMENT ON FUNCTION wsctl._gc_deleted(text) IS 'Archive GC: forgets an orphan it deleted from the bucket';
