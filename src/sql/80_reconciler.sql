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
	PERFORM wsctl._count_operation(w.operation::text, 'error', final);
	IF terminal THEN
		PERFORM wsctl._count_operation(w.operation::text, 'failed');
	END IF;
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

-- The attempt of the workspace's current operation that was launched last.
CREATE FUNCTION wsctl._current_attempt(w wsctl.workspaces)
RETURNS wsctl.operation_attempts
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.* FROM wsctl.operation_attempts AS a
	 WHERE a.workspace_id = w.id AND a.op_id = w.op_id
	 ORDER BY a.attempt DESC LIMIT 1
$$;
COMMENT ON FUNCTION wsctl._current_attempt(wsctl.workspaces) IS
	'The last attempt launched for the workspace''s current op_id, or NULL';

-- Records a new attempt and returns the launch action. The attempt row is
-- committed before the worker exists, so a worker that dies at any point
-- leaves an attempt without an outcome: the next tick counts it as failed.
-- The primary key makes it a compare-and-set: two reconcilers reading the
-- same row cannot both launch attempt n of one op_id.
CREATE FUNCTION wsctl._launch(w wsctl.workspaces, operation wsctl.operation, op_id uuid,
							  detail text)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	next_attempt int;
BEGIN
	SELECT coalesce(max(a.attempt), 0) + 1 INTO next_attempt
	  FROM wsctl.operation_attempts AS a
	 WHERE a.workspace_id = w.id AND a.op_id = _launch.op_id;
	INSERT INTO wsctl.operation_attempts AS a (workspace_id, op_id, attempt, operation)
	VALUES (w.id, _launch.op_id, next_attempt, _launch.operation)
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RETURN wsctl._action('none', detail => 'attempt already launched elsewhere');
	END IF;
	RAISE LOG 'wsctl reconciler: workspace % operation % attempt % launched (op_id %)',
		w.id, operation, next_attempt, op_id;
	RETURN wsctl._action('launch', operation, op_id, detail);
END
$$;
COMMENT ON FUNCTION wsctl._launch(wsctl.workspaces, wsctl.operation, uuid, text) IS
	'Records attempt n+1 of an operation (compare-and-set on its key) and returns the launch action';

-- Gives the current attempt its outcome (once: an attempt that has one keeps it).
CREATE FUNCTION wsctl._finish_attempt(w wsctl.workspaces, outcome text, reason text DEFAULT NULL,
									  code text DEFAULT NULL, message text DEFAULT NULL)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE wsctl.operation_attempts AS a
	   SET outcome = _finish_attempt.outcome, finished_at = clock_timestamp(),
		   reason = _finish_attempt.reason, code = nullif(_finish_attempt.code, ''),
		   message = _finish_attempt.message
	 WHERE a.workspace_id = w.id AND a.op_id = w.op_id AND a.outcome IS NULL
$$;
COMMENT ON FUNCTION wsctl._finish_attempt(wsctl.workspaces, text, text, text, text) IS
	'Records the outcome of the current attempt (succeeded, failed, vanished or superseded)';

-- Whether one more ARCHIVING or RESTORING may be claimed. Every transfer
-- streams through the database host, and ten at once move no more bytes
-- per second than two while starving the API of CPU (docs/performance.md),
-- so the next ones wait, unclaimed (their timeout not started), until one
-- ends. A workspace in ERROR keeps its failed operation but transfers
-- nothing, so it does not count. The reconciler claims one workspace at a
-- time, so the count taken here cannot race with another claim.
CREATE FUNCTION wsctl._transfer_slot_free()
RETURNS bool
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN (SELECT count(*) FROM wsctl.workspaces AS x
			 WHERE x.operation IN ('ARCHIVING', 'RESTORING')
			   AND wsctl.effective_status(x.observed_status, x.error_info) <> 'ERROR')
		   < current_setting('wsctl.max_concurrent_transfers')::int;
END
$$;
COMMENT ON FUNCTION wsctl._transfer_slot_free() IS
	'Whether fewer than wsctl.max_concurrent_transfers ARCHIVING or RESTORING operations are claimed by workspaces not in ERROR (the reconciler claims one more only then)';

-- Docker could not be reached at all (connection refused, socket missing).
-- That is not the workspace's failure: error_count does not move, and the
-- time until the next attempt does not count toward the timeout
-- (outage_since is subtracted from the elapsed time when it relaunches).
CREATE FUNCTION wsctl._record_outage(w wsctl.workspaces, attempt wsctl.operation_attempts,
									 code text, message text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE wsctl.workspaces AS x
	   SET error_message = 'waiting for Docker: ' || message,
		   error_info = jsonb_build_object(
				'reason', 'Unreachable', 'message', 'waiting for Docker: ' || message,
				'is_terminal', false, 'operation', w.operation, 'error_count', w.error_count,
				'context', jsonb_build_object(
					'code', code, 'waiting_for', 'docker',
					'outage_since', coalesce(w.error_info -> 'context' ->> 'outage_since',
											 attempt.launched_at::text)),
				'occurred_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
	 WHERE x.id = w.id
$$;
COMMENT ON FUNCTION wsctl._record_outage(wsctl.workspaces, wsctl.operation_attempts, text, text) IS
	'Records that an attempt found Docker unreachable: waiting, not failing (no retry used, timeout suspended)';

-- Whether the workspace's operation is waiting for Docker to come back.
CREATE FUNCTION wsctl._waiting_for_docker(w wsctl.workspaces)
RETURNS bool
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(w.error_info -> 'context' ->> 'outage_since', '') <> '' $$;
COMMENT ON FUNCTION wsctl._waiting_for_docker(wsctl.workspaces) IS
	'True between an attempt that found Docker unreachable and the next attempt';

CREATE FUNCTION wsctl._complete_operation(w wsctl.workspaces)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT wsctl._count_operation(w.operation::text, 'completed');
	DELETE FROM wsctl.operation_attempts AS a WHERE a.workspace_id = w.id;
	UPDATE wsctl.workspaces AS x
	   SET operation = 'NONE', op_id = NULL, op_started_at = NULL,
		   error_count = 0, error_info = NULL, error_message = NULL,
		   -- STOPPING and RESTORING start the archive TTL (a restore is a
		   -- use: its STANDBY must not be archived again at once), STARTING
		   -- the standby TTL's grace.
		   last_access_at = CASE WHEN w.operation IN ('STOPPING', 'RESTORING', 'STARTING') THEN now()
								 ELSE x.last_access_at END
	 WHERE x.id = w.id;
$$;
COMMENT ON FUNCTION wsctl._complete_operation(wsctl.workspaces) IS
	'Marks the operation complete: operation NONE, op_id cleared, errors reset, attempts removed (last_access_at on STOPPING, RESTORING and STARTING)';

-- Claims an operation with compare-and-set on the operation the row had
-- when it was read (NONE, or the failed operation an ERROR keeps when the
-- workspace is deleted). op_id is kept when recovery left one behind.
CREATE FUNCTION wsctl._claim(w wsctl.workspaces, planned wsctl.operation)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	claimed wsctl.workspaces;
BEGIN
	UPDATE wsctl.workspaces AS x
	   SET operation = planned, op_id = coalesce(x.op_id, gen_random_uuid()),
		   op_started_at = now(), error_count = 0, error_info = NULL, error_message = NULL
	 WHERE x.id = w.id AND x.operation = w.operation
	RETURNING x.* INTO claimed;
	IF NOT FOUND THEN
		RETURN wsctl._action('none', detail => 'claim lost');
	END IF;
	-- Attempts of an operation this claim replaces are history now.
	UPDATE wsctl.operation_attempts AS a
	   SET outcome = 'superseded', finished_at = clock_timestamp()
	 WHERE a.workspace_id = w.id AND a.outcome IS NULL;
	DELETE FROM wsctl.operation_attempts AS a
	 WHERE a.workspace_id = w.id AND a.op_id <> claimed.op_id;
	RAISE LOG 'wsctl reconciler: workspace % claimed % (op_id %)', w.id, planned, claimed.op_id;
	PERFORM wsctl._count_operation(planned::text, 'started');
	RETURN wsctl._launch(claimed, planned, claimed.op_id, 'claimed');
END
$$;
COMMENT ON FUNCTION wsctl._claim(wsctl.workspaces, wsctl.operation) IS
	'Compare-and-set claim of an operation and its first attempt; returns launch, or none when another writer won';

-- An operation is in flight: completion, timeout, the worker's outcome, retries.
-- An operation completes only when the worker of its current attempt
-- reported success for this op_id AND the observation equals the target: a
-- worker still acting, dead or failed never completes one.
CREATE FUNCTION wsctl._reconcile_in_flight(w wsctl.workspaces, worker_state text,
										   worker_finished_at timestamptz, worker_reason text,
										   worker_code text, worker_message text, can_launch bool)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	attempt   wsctl.operation_attempts := wsctl._current_attempt(w);
	waiting   bool := wsctl._waiting_for_docker(w);
	elapsed   interval := now() - w.op_started_at;
	retry_at  timestamptz;
BEGIN
	IF worker_state = 'succeeded'
	   AND wsctl.operation_complete(w.operation, w.observed_status, w.archive_key, w.id, w.op_id) THEN
		PERFORM wsctl._finish_attempt(w, 'succeeded');
		PERFORM wsctl._complete_operation(w);
		RAISE LOG 'wsctl reconciler: workspace % operation % complete', w.id, w.operation;
		RETURN wsctl._action('release', detail => 'complete');
	END IF;

	-- The time spent waiting for Docker to come back does not count.
	IF NOT waiting AND elapsed > wsctl.operation_timeout(w.operation) THEN
		PERFORM wsctl._record_failure(w, 'Timeout', NULL,
			format('%s did not complete within %s', w.operation, wsctl.operation_timeout(w.operation)),
			jsonb_build_object('operation', w.operation,
							   'elapsed_seconds', round(extract(epoch FROM elapsed))));
		IF worker_state = 'busy' THEN
			RETURN wsctl._action('terminate', detail => 'timeout');
		END IF;
		PERFORM wsctl._finish_attempt(w, CASE WHEN worker_state = 'none' THEN 'vanished' ELSE 'failed' END,
									  'Timeout');
		RETURN wsctl._action(CASE WHEN worker_state = 'none' THEN 'none' ELSE 'release' END,
							 detail => 'timeout');
	END IF;

	IF worker_state = 'busy' THEN
		RETURN wsctl._action('none', detail => 'worker busy');
	ELSIF worker_state = 'failed' AND worker_code = 'DOCKER_UNAVAILABLE' THEN
		PERFORM wsctl._finish_attempt(w, 'failed', worker_reason, worker_code, worker_message);
		PERFORM wsctl._record_outage(w, attempt, worker_code, worker_message);
		RETURN wsctl._action('release', detail => 'waiting for Docker: ' || worker_message);
	ELSIF worker_state = 'failed' THEN
		PERFORM wsctl._finish_attempt(w, 'failed', worker_reason, worker_code, worker_message);
		PERFORM wsctl._record_failure(w, worker_reason, nullif(worker_code, ''), worker_message);
		RETURN wsctl._action('release', detail => 'worker failed');
	ELSIF worker_state = 'succeeded' THEN
		-- An observation made after the worker finished that still
		-- disagrees is a Mismatch.
		IF wsctl._observed_at(w) >= worker_finished_at THEN
			PERFORM wsctl._finish_attempt(w, 'failed', 'Mismatch');
			PERFORM wsctl._record_failure(w, 'Mismatch', NULL,
				format('%s finished but the workspace is observed %s', w.operation, w.observed_status),
				jsonb_build_object('expected', wsctl.operation_target(w.operation),
								   'actual', w.observed_status));
			RETURN wsctl._action('release', detail => 'mismatch');
		END IF;
		RETURN wsctl._action('none', detail => 'waiting for observation');
	END IF;

	-- No worker. An attempt without an outcome lost its worker (it died,
	-- or a server restart wiped shared memory): a failure like any other,
	-- including during a retry.
	IF attempt.outcome IS NULL THEN
		IF attempt.attempt IS NULL THEN
			-- No attempt was ever recorded for this op_id: record this one.
			INSERT INTO wsctl.operation_attempts AS a (workspace_id, op_id, attempt, operation)
			VALUES (w.id, w.op_id, 1, w.operation);
		END IF;
		PERFORM wsctl._finish_attempt(w, 'vanished', 'Unreachable', 'WORKER_VANISHED');
		PERFORM wsctl._record_failure(w, 'Unreachable', 'WORKER_VANISHED',
			format('the worker of %s exited without reporting an outcome', w.operation));
		RETURN wsctl._action('none', detail => 'worker vanished');
	END IF;
	retry_at := attempt.finished_at + current_setting('wsctl.retry_delay')::interval;
	IF clock_timestamp() < retry_at OR NOT can_launch THEN
		RETURN wsctl._action('none', detail => CASE WHEN waiting THEN 'retry wait (Docker unavailable)' ELSE 'retry wait' END);
	END IF;
	IF waiting THEN
		-- Give the operation back the time Docker was away.
		UPDATE wsctl.workspaces AS x
		   SET op_started_at = x.op_started_at
				+ (now() - (x.error_info -> 'context' ->> 'outage_since')::timestamptz),
			   error_info = jsonb_set(x.error_info, '{context}',
									  (x.error_info -> 'context') - 'outage_since')
		 WHERE x.id = w.id;
	END IF;
	RAISE LOG 'wsctl reconciler: workspace % retrying % (attempt %)', w.id, w.operation, attempt.attempt + 1;
	RETURN wsctl._launch(w, w.operation, w.op_id, 'retry');
END
$$;
COMMENT ON FUNCTION wsctl._reconcile_in_flight(wsctl.workspaces, text, timestamptz, text, text, text, bool) IS
	'Reconciles a workspace whose operation is in flight';

-- One workspace, one transaction. worker_state is none, busy, succeeded or
-- failed, from the operation slot of this workspace in shared memory, and
-- worker_op_id the op_id that slot was launched for.
-- Rows locked by another session are skipped (SKIP LOCKED), so a client
-- idle in a transaction stalls at most its own workspace.
CREATE FUNCTION wsctl._reconcile_workspace(workspace_id uuid, worker_state text, worker_op_id uuid,
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
	slot_locked bool := false;
	idle      wsctl.reconcile_action := wsctl._action(
					CASE WHEN worker_state IN ('succeeded', 'failed') THEN 'release' ELSE 'none' END);
BEGIN
	-- Peek without a lock: a STARTING claim takes the claim lock first.
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id;
	IF NOT FOUND THEN
		RETURN idle;
	END IF;
	IF w.operation = 'NONE'
	   AND wsctl.plan_operation(w.observed_status, w.desired_state, w.archive_key, w.deleted_at) = 'STARTING' THEN
		PERFORM 1 FROM wsctl.locks AS l WHERE l.name = 'starting_claims' FOR UPDATE SKIP LOCKED;
		slot_locked := FOUND;
	END IF;
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE SKIP LOCKED;
	IF NOT FOUND THEN
		-- A worker's outcome stays in its slot until it can be recorded.
		RETURN wsctl._action('none', detail => 'row locked by another session; skipped');
	END IF;

	-- A slot left from an earlier op_id (the operation was recovered or
	-- replaced meanwhile) is never judged against the current one.
	IF worker_state <> 'none' AND worker_op_id IS DISTINCT FROM w.op_id THEN
		RETURN wsctl._action(CASE WHEN worker_state = 'busy' THEN 'terminate' ELSE 'release' END,
							 detail => 'worker of an earlier op_id');
	END IF;

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
		ELSIF finished THEN
			PERFORM wsctl._finish_attempt(w, CASE WHEN worker_state = 'succeeded' THEN 'succeeded' ELSE 'failed' END,
										  nullif(worker_reason, ''), worker_code, nullif(worker_message, ''));
			RETURN idle;
		ELSIF planned <> 'DELETING' OR w.operation = 'DELETING' OR NOT can_launch THEN
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
		-- The row changed between the peek and the lock, or another
		-- reconciler holds the claim lock: claim next time.
		IF NOT slot_locked THEN
			RETURN wsctl._action('none', detail => 'STARTING claim lock not taken; retry');
		END IF;
		BEGIN
			PERFORM wsctl._check_running_slot(w.owner_user_id, w.id, count_requests => false);
		EXCEPTION WHEN SQLSTATE 'WS429' THEN
			RETURN wsctl._action('none', detail => 'waiting for a running slot: ' || SQLERRM);
		END;
	END IF;
	IF planned IN ('ARCHIVING', 'RESTORING') AND NOT wsctl._transfer_slot_free() THEN
		RETURN wsctl._action('none', detail => 'waiting for a transfer slot (wsctl.max_concurrent_transfers)');
	END IF;
	RETURN wsctl._claim(w, planned);
END
$$;
COMMENT ON FUNCTION wsctl._reconcile_workspace(uuid, text, uuid, timestamptz, text, text, text, bool) IS
	'StateReconciler step for one workspace: completes, times out, records failures, retries or claims; returns the process action';

-- The reconciler's work list: rows not converged or in flight.
CREATE FUNCTION wsctl._reconcile_candidates()
RETURNS SETOF uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT x.id FROM wsctl.workspaces AS x
	 WHERE (x.deleted_at IS NULL AND (x.observed_status <> x.desired_state OR x.operation <> 'NONE'))
		OR (x.deleted_at IS NOT NULL AND (x.observed_status <> 'DELETED' OR x.operation <> 'NONE'))
	 ORDER BY x.op_started_at NULLS LAST, x.updated_at
$$;
COMMENT ON FUNCTION wsctl._reconcile_candidates() IS
	'Workspaces the reconciler must look at (matches idx_workspaces_reconcile)';
