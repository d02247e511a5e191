-- 85_ttl.sql: the TTL manager's decisions and writes (SPEC 4.4, DESIGN 5).
--
-- The worker lists the RUNNING workspaces whose standby TTL is due or
-- nearly due, asks Redis for their connection counts and idle timers, and
-- then, per workspace, either warns (a ttl_warning event, once) or stops
-- it by setting desired_state = STANDBY with a compare-and-set, so that a
-- user's request or a connection that arrived meanwhile always wins.
-- last_access_at is the reference: the completion of STARTING, and every
-- connect or disconnect, set it; a workspace is never stopped less than its
-- standby_ttl_seconds after it.

-- When the standby TTL of a workspace runs out: standby_ttl_seconds after
-- its last access (the start, or a connect or disconnect).
CREATE FUNCTION wsctl._standby_ttl_due_at(w wsctl.workspaces)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(w.last_access_at, w.updated_at) + make_interval(secs => w.standby_ttl_seconds) $$;
COMMENT ON FUNCTION wsctl._standby_ttl_due_at(wsctl.workspaces) IS
	'When the workspace''s standby TTL runs out: last_access_at (or updated_at) + standby_ttl_seconds';

-- RUNNING workspaces at rest whose standby TTL falls within warn_before.
CREATE FUNCTION wsctl._standby_ttl_candidates(warn_before interval)
RETURNS TABLE (id uuid, due bool, seconds_left int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.id, c.due_at <= now(),
		   greatest(0, ceil(extract(epoch FROM c.due_at - now())))::int
	  FROM (SELECT x.id, wsctl._standby_ttl_due_at(x) AS due_at
			  FROM wsctl.workspaces AS x
			 WHERE x.deleted_at IS NULL AND x.observed_status = 'RUNNING' AND x.operation = 'NONE'
			   AND x.desired_state = 'RUNNING') AS c
	 WHERE c.due_at <= now() + warn_before
	 ORDER BY c.id
$$;
COMMENT ON FUNCTION wsctl._standby_ttl_candidates(interval) IS
	'TTL manager: RUNNING workspaces at rest whose standby TTL is due (due) or due within warn_before';

-- The stop: desired_state STANDBY only if nothing changed since the read
-- (compare-and-set on desired_state, status, operation and the TTL itself);
-- a row another session holds is left for the next tick.
CREATE FUNCTION wsctl._ttl_stop(workspace_id uuid)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'ttl_manager'
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE SKIP LOCKED;
	IF NOT FOUND OR w.deleted_at IS NOT NULL OR w.desired_state <> 'RUNNING'
	   OR w.observed_status <> 'RUNNING' OR w.operation <> 'NONE'
	   OR wsctl._standby_ttl_due_at(w) > now() THEN
		RETURN false;
	END IF;
	UPDATE wsctl.workspaces AS x SET desired_state = 'STANDBY' WHERE x.id = w.id;
	PERFORM wsctl._wake_reconciler();
	RAISE LOG 'wsctl ttl_manager: workspace % idle for its standby TTL (% s): desired_state STANDBY',
		w.id, w.standby_ttl_seconds;
	RETURN true;
END
$$;
COMMENT ON FUNCTION wsctl._ttl_stop(uuid) IS
	'TTL manager: desired_state RUNNING -> STANDBY with compare-and-set; false when anything changed meanwhile';

-- Archive TTL (SPEC 10.6): a STANDBY workspace at rest whose last access
-- (the stop, or a connect or disconnect) is older than archive_ttl_seconds.
CREATE FUNCTION wsctl._archive_ttl_due_at(w wsctl.workspaces)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(w.last_access_at, w.updated_at) + make_interval(secs => w.archive_ttl_seconds) $$;
COMMENT ON FUNCTION wsctl._archive_ttl_due_at(wsctl.workspaces) IS
	'When the workspace''s archive TTL runs out: last_access_at (or updated_at) + archive_ttl_seconds';

-- STANDBY workspaces at rest (desired = observed = STANDBY, no operation,
-- no error) whose archive TTL falls within warn_before. None while no
-- object storage is configured: there is nowhere to archive to.
CREATE FUNCTION wsctl._archive_ttl_candidates(warn_before interval)
RETURNS TABLE (id uuid, due bool, seconds_left int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.id, c.due_at <= now(),
		   greatest(0, ceil(extract(epoch FROM c.due_at - now())))::int
	  FROM (SELECT x.id, wsctl._archive_ttl_due_at(x) AS due_at
			  FROM wsctl.workspaces AS x
			 WHERE x.deleted_at IS NULL AND x.observed_status = 'STANDBY' AND x.operation = 'NONE'
			   AND x.desired_state = 'STANDBY' AND x.error_info IS NULL) AS c
	 WHERE c.due_at <= now() + warn_before
	   AND coalesce(current_setting('wsctl.s3_endpoint', true), '') <> ''
	 ORDER BY c.id
$$;
COMMENT ON FUNCTION wsctl._archive_ttl_candidates(interval) IS
	'TTL manager: STANDBY workspaces at rest whose archive TTL is due (due) or due within warn_before';

-- The archive: desired_state PENDING only if nothing changed since the read.
CREATE FUNCTION wsctl._ttl_archive(workspace_id uuid)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'ttl_manager'
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE SKIP LOCKED;
	IF NOT FOUND OR w.deleted_at IS NOT NULL OR w.desired_state <> 'STANDBY'
	   OR w.observed_status <> 'STANDBY' OR w.operation <> 'NONE' OR w.error_info IS NOT NULL
	   OR wsctl._archive_ttl_due_at(w) > now()
	   OR coalesce(current_setting('wsctl.s3_endpoint', true), '') = '' THEN
		RETURN false;
	END IF;
	UPDATE wsctl.workspaces AS x SET desired_state = 'PENDING' WHERE x.id = w.id;
	PERFORM wsctl._wake_reconciler();
	RAISE LOG 'wsctl ttl_manager: workspace % unused for its archive TTL (% s): desired_state PENDING',
		w.id, w.archive_ttl_seconds;
	RETURN true;
END
$$;
COMMENT ON FUNCTION wsctl._ttl_archive(uuid) IS
	'TTL manager: desired_state STANDBY -> PENDING (archive) with compare-and-set; false when anything changed meanwhile';

-- A ttl_warning event, once per idle period (none since last_access_at)
-- and action: STANDBY (the standby TTL stops it) or PENDING (archived).
CREATE FUNCTION wsctl._ttl_warn(workspace_id uuid, seconds_left int, action text DEFAULT 'STANDBY')
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id;
	IF NOT FOUND OR EXISTS (
		SELECT 1 FROM wsctl.events AS e
		 WHERE e.workspace_id = w.id AND e.payload ->> 'event' = 'ttl_warning'
		   AND e.payload ->> 'action' = action
		   AND e.created_at >= coalesce(w.last_access_at, w.updated_at)) THEN
		RETURN false;
	END IF;
	INSERT INTO wsctl.events (workspace_id, owner_user_id, payload)
	VALUES (w.id, w.owner_user_id,
			wsctl.change_event(w, false)
			|| jsonb_build_object('event', 'ttl_warning', 'action', action,
								  'in_seconds', seconds_left,
								  'message', CASE action WHEN 'PENDING'
									THEN format('unused: this workspace is archived in %s s unless it is started', seconds_left)
									ELSE format('idle: this workspace stops in %s s unless someone connects', seconds_left) END));
	PERFORM wsctl._wake_event_listener();
	RETURN true;
END
$$;
COMMENT ON FUNCTION wsctl._ttl_warn(uuid, int, text) IS
	'TTL manager: a ttl_warning event for a workspace about to be stopped (STANDBY) or archived (PENDING), at most once per idle period';
