-- 40_running_limits.sql: running-slot accounting (SPEC section 9, DESIGN section 4).
--
-- A workspace claims a running slot when it is asked to run (live, desired
-- RUNNING), when its container is observed RUNNING, or while it is STARTING.
-- Every API path that can add a slot (create, set_desired_state,
-- wake_workspace) first takes the row lock 'running_slots' in wsctl.locks,
-- then counts, then writes, and commits with the lock held. Under READ
-- COMMITTED each statement takes a fresh snapshot, so the count taken
-- after the lock sees every claim committed before it: two claims for the
-- last slot are serialized and the second sees the first.
-- The reconciler's STARTING claim never adds to what the API counts (the
-- workspace is already desired RUNNING), so it takes its own lock,
-- 'starting_claims', with SKIP LOCKED: an API session idle in a
-- transaction that holds 'running_slots' never stalls the reconciler.

-- The lock is a row of wsctl.locks, which no role but the extension's owner
-- can lock: an advisory key could be held forever by any LOGIN role.
CREATE FUNCTION wsctl._lock_running_slots()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'running-slot claims require READ COMMITTED isolation'
			USING ERRCODE = '0A000',
				  DETAIL = format('The transaction runs at %s, whose snapshot could miss a concurrent claim.',
								  upper(current_setting('transaction_isolation'))),
				  HINT = 'Call the wsctl API outside REPEATABLE READ and SERIALIZABLE transactions.';
	END IF;
	PERFORM 1 FROM wsctl.locks AS l WHERE l.name = 'running_slots' FOR UPDATE;
END
$$;
COMMENT ON FUNCTION wsctl._lock_running_slots() IS
	'Serializes the API''s running-slot claims: row lock on wsctl.locks ''running_slots'', held to commit';

-- Raises WS429 unless one more slot fits for workspace_id's owner. The
-- caller holds the lock (_lock_running_slots). The workspace itself is not
-- counted, so re-asking for a slot it already holds never fails.
-- count_requests = false is the reconciler's re-check: it counts only
-- workspaces that are really running or starting (SPEC 9.3).
CREATE FUNCTION wsctl._check_running_slot(owner uuid, workspace_id uuid,
										  count_requests bool DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	per_user_max int := current_setting('wsctl.max_running_per_user')::int;
	global_max   int := current_setting('wsctl.max_running_global')::int;
	holders      jsonb;
	n            int;
BEGIN
	SELECT count(*), coalesce(jsonb_agg(jsonb_build_object(
				'id', w.id, 'name', w.name,
				'display_status', wsctl.display_status(w.observed_status, w.archive_key))
			ORDER BY w.created_at, w.id), '[]')
	  INTO n, holders
	  FROM wsctl.workspaces AS w
	 WHERE w.owner_user_id = owner AND w.id IS DISTINCT FROM workspace_id
	   AND ((count_requests AND w.deleted_at IS NULL AND w.desired_state = 'RUNNING')
			OR w.observed_status = 'RUNNING' OR w.operation = 'STARTING');
	IF n >= per_user_max THEN
		RAISE EXCEPTION 'running limit exceeded: % of % workspaces per user already running', n, per_user_max
			USING ERRCODE = 'WS429',
				  DETAIL = jsonb_build_object('error', 'workspace_limit_exceeded',
						'limit_type', 'per_user', 'current', n, 'max', per_user_max,
						'running_workspaces', holders)::text,
				  HINT = 'Stop one of the running workspaces (set its desired_state to STANDBY) and try again.';
	END IF;

	SELECT count(*) INTO n
	  FROM wsctl.workspaces AS w
	 WHERE w.id IS DISTINCT FROM workspace_id
	   AND ((count_requests AND w.deleted_at IS NULL AND w.desired_state = 'RUNNING')
			OR w.observed_status = 'RUNNING' OR w.operation = 'STARTING');
	IF n >= global_max THEN
		RAISE EXCEPTION 'running limit exceeded: % of % workspaces already running system-wide', n, global_max
			USING ERRCODE = 'WS429',
				  DETAIL = jsonb_build_object('error', 'workspace_limit_exceeded',
						'limit_type', 'global', 'current', n, 'max', global_max,
						'running_workspaces', '[]'::jsonb)::text,
				  HINT = 'Try again when other workspaces have stopped.';
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_running_slot(uuid, uuid, bool) IS
	'WS429 with a JSON DETAIL unless a running slot is free (per user first, then global); caller holds the slot lock';
