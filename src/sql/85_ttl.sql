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

-- A ttl_warning event, once per idle period (none since last_access_at).
CREATE FUNCTION wsctl._ttl_warn(workspace_id uuid, seconds_left int)
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
		   AND e.created_at >= coalesce(w.last_access_at, w.updated_at)) THEN
		RETURN false;
	END IF;
	INSERT INTO wsctl.events (workspace_id, owner_user_id, payload)
	VALUES (w.id, w.owner_user_id,
			wsctl.change_event(w, false)
			|| jsonb_build_object('event', 'ttl_warning', 'action', 'STANDBY',
								  'in_seconds', seconds_left,
								  'message', format('idle: this workspace stops in %s s unless someone connects', seconds_left)));
	PERFORM wsctl._wake_event_listener();
	RETURN true;
END
$$;
COMMENT ON FUNCTION wsctl._ttl_warn(uuid, int) IS
	'TTL manager: a ttl_warning event for a workspace about to be stopped, at most once per idle period';
