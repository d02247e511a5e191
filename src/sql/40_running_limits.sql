-- 40_running_limits.sql: running-slot accounting (SPEC section 9, DESIGN section 4).
--
-- A workspace claims a running slot when it is asked to run (live, desired
-- RUNNING), when its container is observed RUNNING, or while it is STARTING.
-- Every API path that can add a slot (create, set_desired_state,
-- wake_workspace) first takes a slot lock (_lock_running_slots), then
-- counts, then writes, and commits with the lock held. Under READ
-- COMMITTED each statement takes a fresh snapshot, so the count taken
-- after the lock sees every claim committed before it.
--
-- The locks are 16 rows of wsctl.locks, stripes: an owner's claims always
-- take the stripe of its owner_user_id, so the per-user limit is counted
-- under that owner's lock and two owners of different stripes do not wait
-- for each other. The global limit is shared: a claim may go on with its
-- stripe alone only while the claims of its stripe stay within a quota,
-- floor(max_running_global / 16), and every other stripe within its quota
-- too; then whatever the other stripes' transactions commit meanwhile, the
-- total stays within max_running_global. Near the limit (or with a global
-- limit below 16) a claim takes every stripe, in order, and counts exactly:
-- the old single lock. docs/decisions.md has the argument.
--
-- The reconciler's STARTING claim never adds to what the API counts (the
-- workspace is already desired RUNNING), so it takes its own lock,
-- 'starting_claims', with SKIP LOCKED: an API session idle in a
-- transaction that holds a slot lock never stalls the reconciler.

CREATE FUNCTION wsctl._slot_stripe(owner uuid)
RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT get_byte(uuid_send(owner), 15) & 15
$$;
COMMENT ON FUNCTION wsctl._slot_stripe(uuid) IS
	'The slot-lock stripe (0 .. 15) of an owner: the low 4 bits of its uuid';

-- The locks are rows of wsctl.locks, which no role but the extension's
-- owner can lock: an advisory key could be held forever by any LOGIN role.
CREATE FUNCTION wsctl._lock_running_slots(owner uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	quota  int := current_setting('wsctl.max_running_global')::int / 16;
	mine   int := wsctl._slot_stripe(owner);
	within bool;
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'running-slot claims require READ COMMITTED isolation'
			USING ERRCODE = '0A000',
				  DETAIL = format('The transaction runs at %s, whose snapshot could miss a concurrent claim.',
								  upper(current_setting('transaction_isolation'))),
				  HINT = 'Call the wsctl API outside REPEATABLE READ and SERIALIZABLE transactions.';
	END IF;
	IF owner IS NOT NULL AND quota > 0 THEN
		-- The stripe alone, in a subtransaction: if the quotas do not
		-- hold, rolling it back lets the stripe go before all are taken in
		-- order (holding one while waiting for the others could deadlock).
		BEGIN
			PERFORM 1 FROM wsctl.locks AS l
			  WHERE l.name = format('running_slots_%s', lpad(mine::text, 2, '0')) FOR UPDATE;
			-- claims per stripe: committed rows and the caller's own
			SELECT coalesce(bool_and(c.claims < quota OR (c.stripe <> mine AND c.claims <= quota)), true)
			  INTO within
			  FROM (SELECT wsctl._slot_stripe(w.owner_user_id) AS stripe, count(*) AS claims
					  FROM wsctl.workspaces AS w
					 WHERE (w.deleted_at IS NULL AND w.desired_state = 'RUNNING')
						OR w.observed_status = 'RUNNING' OR w.operation = 'STARTING'
					 GROUP BY 1) AS c;
			IF within THEN
				RETURN;
			END IF;
			RAISE EXCEPTION USING ERRCODE = 'WS4QU';	-- caught just below
		EXCEPTION WHEN SQLSTATE 'WS4QU' THEN
			NULL;
		END;
	END IF;
	PERFORM 1 FROM wsctl.locks AS l WHERE l.name LIKE 'running\_slots\_%' ORDER BY l.name FOR UPDATE;
END
$$;
COMMENT ON FUNCTION wsctl._lock_running_slots(uuid) IS
	'Serializes the API''s running-slot claims: the owner''s stripe of wsctl.locks while every stripe is within its quota, else all 16 stripes in order; held to commit';

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
