-- 80_reconciler.sql: the StateReconciler's decisions and writes.
--
-- The C reconciler lists candidate workspaces, and for each one calls
-- _reconcile_workspace() in its own short transaction, passing what it
-- knows about the operation worker (from shared memory). The function
-- decides, writes the reconciler's columns, and returns what the C side
-- must do with processes: nothing, launch a worker, release a finished
-- worker's slot, or terminate a worker. The C side never decides.

CREATE TYPE wsctl.reconcile_action AS (
	action    text,				-- none | launch | release | terminate
	operation wsctl.operation,	-- for launch
	op_id     uuid,				-- for launch
	detail    text				-- for the log
);
COMMENT ON TYPE wsctl.reconcile_action IS 'What the reconciler process must do after _reconcile_workspace()';

CREATE FUNCTION wsctl.operation_timeout(operation wsctl.operation)
RETURNS interval
LANGUAGE sql STABLE
AS $$
	SELECT CASE WHEN operation = 'NONE' THEN NULL
		ELSE current_setting('wsctl.timeout_' || lower(operation::text))::interval END
$$;
COMMENT ON FUNCTION wsctl.operation_timeout(wsctl.operation) IS
	'The timeout of an operation (settings wsctl.timeout_*)';

CREATE FUNCTION wsctl._action(action text, operation wsctl.operation DEFAULT NULL,
							  op_id uuid DEFAULT NULL, detail text DEFAULT NULL)
RETURNS wsctl.reconcile_action
LANGUAGE sql IMMUTABLE
AS $$ SELECT ROW(action, operation, op_id, detail)::wsctl.reconcile_action $$;
COMMENT ON FUNCTION wsctl._action(text, wsctl.operation, uuid, text) IS 'Builds a reconcile_action';

-- Records one failed attempt of the workspace's operation (SPEC 8.4):
-- Timeout and DataLost are terminal at once; anything else is retried
-- wsctl.max_retries times, then becomes RetryExceeded. A terminal error
-- records previous_status and keeps the operation (GC protection).
CREATE FUNCTION wsctl._record_failure(w wsctl.workspaces, reason text, code text,
									  message text, context jsonb DEFAULT '{}')
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	failures    int := w.error_count + 1;
	max_retries int := current_setting('wsctl.max_retries')::int;
	final       text := reason;
	terminal    bool;
BEGIN
	IF reason NOT IN ('Timeout', 'DataLost') AND failures > max_retries THEN
		final := 'RetryExceeded';
		context := context || jsonb_build_object('max_retries', max_retries,
												 'last_reason', reason, 'last_error', message);
	END IF;
	terminal := final IN ('Timeout', 'DataLost', 'RetryExceeded');
	IF code IS NOT NULL THEN
		context := jsonb_build_object('code', code) || context;
	END IF;

	UPDATE wsctl.workspaces AS x
	   SET error_count = failures,
		   error_message = message,
		   error_info = jsonb_build_object(
				'reason', final, 'message', message, 'is_terminal', terminal,
				'operation', w.operation, 'error_count', failures, 'context', context,
				'occurred_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
		   previous_status = CASE WHEN terminal THEN w.observed_status ELSE x.previous_status END
	 WHERE x.id = w.id;

	RAISE LOG 'wsctl reconciler: workspace % operation % failed (%/%): %: %',
		w.id, w.operation, failures, max_retries + 1, final, message;
	RETURN terminal;
END
$$;
COMMENT ON FUNCTION wsctl._record_failure(wsctl.workspaces, text, text, text, jsonb) IS
	'Records a failed attempt in error_info/error_count; returns whether the error is terminal';

CREATE FUNCTION wsctl._complete_operation(w wsctl.workspaces)
RETURNS void
LANGUAGE sql
AS $$
	UPDATE wsctl.workspaces AS x
	   SET operation = 'NONE', op_id = NULL, op_started_at = NULL,
		   error_count = 0, error_info = NULL, error_message = NULL,
		   last_access_at = CASE WHEN w.operation = 'STOPPING' THEN now() ELSE x.last_access_at END
	 WHERE x.id = w.id;
$$;
COMMENT ON FUNCTION wsctl._complete_operation(wsctl.workspaces) IS
	'Marks the operation complete: operation NONE, op_id cleared, errors reset (last_access_at on STOPPING)';

-- Claims an operation with compare-and-set on the operation the row had
-- when it was read (NONE, or the failed operation an ERROR keeps when the
-- workspace is deleted). op_id is kept when recovery left one behind.
CREATE FUNCTION wsctl._claim(w wsctl.workspaces, planned wsctl.operation)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	claimed_op_id uuid;
BEGIN
	UPDATE wsctl.workspaces AS x
	   SET operation = planned, op_id = coalesce(x.op_id, gen_random_uuid()),
		   op_started_at = now(), error_count = 0, error_info = NULL, error_message = NULL
	 WHERE x.id = w.id AND x.operation = w.operation
	RETURNING x.op_id INTO claimed_op_id;
	IF NOT FOUND THEN
		RETURN wsctl._action('none', detail => 'claim lost');
	END IF;
	RAISE LOG 'wsctl reconciler: workspace % claimed % (op_id %)', w.id, planned, claimed_op_id;
	RETURN wsctl._action('launch', planned, claimed_op_id, 'claimed');
END
$$;
COMMENT ON FUNCTION wsctl._claim(wsctl.workspaces, wsctl.operation) IS
	'Compare-and-set claim of an operation; returns launch, or none when another writer won';

-- An operation is in flight: completion, timeout, the worker's outcome, retries.
CREATE FUNCTION wsctl._reconcile_in_flight(w wsctl.workspaces, worker_state text,
										   worker_finished_at timestamptz, worker_reason text,
										   worker_code text, worker_message text, can_launch bool)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	finished  bool := worker_state IN ('succeeded', 'failed');
	elapsed   interval := now() - w.op_started_at;
	retry_at  timestamptz;
BEGIN
	IF wsctl.operation_complete(w.operation, w.observed_status, w.archive_key, w.id, w.op_id) THEN
		PERFORM wsctl._complete_operation(w);
		RAISE LOG 'wsctl reconciler: workspace % operation % complete', w.id, w.operation;
		RETURN wsctl._action(CASE WHEN finished THEN 'release' ELSE 'none' END, detail => 'complete');
	END IF;

	IF elapsed > wsctl.operation_timeout(w.operation) THEN
		PERFORM wsctl._record_failure(w, 'Timeout', NULL,
			format('%s did not complete within %s', w.operation, wsctl.operation_timeout(w.operation)),
			jsonb_build_object('operation', w.operation,
							   'elapsed_seconds', round(extract(epoch FROM elapsed))));
		RETURN wsctl._action(CASE WHEN worker_state = 'busy' THEN 'terminate'
								  WHEN finished THEN 'release' ELSE 'none' END, detail => 'timeout');
	END IF;

	IF worker_state = 'busy' THEN
		RETURN wsctl._action('none', detail => 'worker busy');
	ELSIF worker_state = 'failed' THEN
		PERFORM wsctl._record_failure(w, worker_reason, nullif(worker_code, ''), worker_message);
		RETURN wsctl._action('release', detail => 'worker failed');
	ELSIF worker_state = 'succeeded' THEN
		-- Completion is judged from observation only. An observation made
		-- after the worker finished that still disagrees is a Mismatch.
		IF w.observed_at >= worker_finished_at THEN
			PERFORM wsctl._record_failure(w, 'Mismatch', NULL,
				format('%s finished but the workspace is observed %s', w.operation, w.observed_status),
				jsonb_build_object('expected', wsctl.operation_target(w.operation),
								   'actual', w.observed_status));
			RETURN wsctl._action('release', detail => 'mismatch');
		END IF;
		RETURN wsctl._action('none', detail => 'waiting for observation');
	END IF;

	-- No worker. Either a failed attempt waits for its retry, or the worker
	-- vanished without a word (a server restart wipes shared memory).
	IF w.error_info IS NULL THEN
		PERFORM wsctl._record_failure(w, 'Unreachable', 'WORKER_VANISHED',
			format('the worker of %s exited without reporting an outcome', w.operation));
		RETURN wsctl._action('none', detail => 'worker vanished');
	END IF;
	retry_at := (w.error_info ->> 'occurred_at')::timestamptz
				+ current_setting('wsctl.retry_delay')::interval;
	IF clock_timestamp() < retry_at OR NOT can_launch THEN
		RETURN wsctl._action('none', detail => 'retry wait');
	END IF;
	RAISE LOG 'wsctl reconciler: workspace % retrying % (attempt %)', w.id, w.operation, w.error_count + 1;
	RETURN wsctl._action('launch', w.operation, w.op_id, 'retry');
END
$$;
COMMENT ON FUNCTION wsctl._reconcile_in_flight(wsctl.workspaces, text, timestamptz, text, text, text, bool) IS
	'Reconciles a workspace whose operation is in flight';

-- One workspace, one transaction. worker_state is none, busy, succeeded or
-- failed, from the operation slot of this workspace in shared memory.
CREATE FUNCTION wsctl._reconcile_workspace(workspace_id uuid, worker_state text,
										   worker_finished_at timestamptz, worker_reason text,
										   worker_code text, worker_message text, can_launch bool)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'reconciler'
AS $$
DECLARE
	w         wsctl.workspaces;
	status    wsctl.status;
	planned   wsctl.operation;
	finished  bool := worker_state IN ('succeeded', 'failed');
	slot_locked bool;
	idle      wsctl.reconcile_action := wsctl._action(
					CASE WHEN worker_state IN ('succeeded', 'failed') THEN 'release' ELSE 'none' END);
BEGIN
	-- Peek without a lock: a STARTING claim must take the running-slot lock
	-- before the row lock, in the same order as the API.
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id;
	IF NOT FOUND THEN
		RETURN idle;
	END IF;
	slot_locked := w.operation = 'NONE'
		AND wsctl.plan_operation(w.observed_status, w.desired_state, w.archive_key, w.deleted_at) = 'STARTING';
	IF slot_locked THEN
		PERFORM wsctl._lock_running_slots();
	END IF;
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE;

	status := wsctl.effective_status(w.observed_status, w.error_info);
	planned := wsctl.plan_operation(status, w.desired_state, w.archive_key, w.deleted_at);

	-- ERROR is skipped, except that a deleted workspace is torn down,
	-- replacing the failed operation it kept; once DELETING is claimed the
	-- workspace is in flight again until the HealthMonitor re-observes it.
	IF status = 'ERROR'
	   AND NOT (w.deleted_at IS NOT NULL AND w.operation = 'DELETING'
				AND NOT coalesce((w.error_info ->> 'is_terminal')::bool, false)) THEN
		IF worker_state = 'busy' THEN
			RETURN wsctl._action('terminate', detail => 'workspace in ERROR');
		ELSIF finished OR planned <> 'DELETING' OR w.operation = 'DELETING' OR NOT can_launch THEN
			RETURN idle;
		END IF;
		RETURN wsctl._claim(w, 'DELETING');
	END IF;

	IF w.operation <> 'NONE' THEN
		RETURN wsctl._reconcile_in_flight(w, worker_state, worker_finished_at, worker_reason,
										  worker_code, worker_message, can_launch);
	END IF;

	IF planned = 'NONE' OR worker_state <> 'none' OR NOT can_launch THEN
		RETURN idle;
	END IF;
	IF planned = 'STARTING' THEN
		-- The row changed between the peek and the lock: claim next time,
		-- with the slot lock taken first.
		IF NOT slot_locked THEN
			RETURN wsctl._action('none', detail => 'changed while reading; retry');
		END IF;
		BEGIN
			PERFORM wsctl._check_running_slot(w.owner_user_id, w.id, count_requests => false);
		EXCEPTION WHEN SQLSTATE 'WS429' THEN
			RETURN wsctl._action('none', detail => 'waiting for a running slot: ' || SQLERRM);
		END;
	END IF;
	RETURN wsctl._claim(w, planned);
END
$$;
COMMENT ON FUNCTION wsctl._reconcile_workspace(uuid, text, timestamptz, text, text, text, bool) IS
	'StateReconciler step for one workspace: completes, times out, records failures, retries or claims; returns the process action';

-- The reconciler's work list: rows not converged or in flight.
CREATE FUNCTION wsctl._reconcile_candidates()
RETURNS SETOF uuid
LANGUAGE sql STABLE
AS $$
	SELECT x.id FROM wsctl.workspaces AS x
	 WHERE (x.deleted_at IS NULL AND (x.observed_status <> x.desired_state OR x.operation <> 'NONE'))
		OR (x.deleted_at IS NOT NULL AND (x.observed_status <> 'DELETED' OR x.operation <> 'NONE'))
	 ORDER BY x.op_started_at NULLS LAST, x.updated_at
$$;
COMMENT ON FUNCTION wsctl._reconcile_candidates() IS
	'Workspaces the reconciler must look at (matches idx_workspaces_reconcile)';
