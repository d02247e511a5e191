-- wsctl--0.1--0.2.0.sql: ALTER EXTENSION wsctl UPDATE from 0.1 to 0.2.0.
--
-- It turns an installed 0.1 into exactly what CREATE EXTENSION wsctl gives
-- with 0.2.0's install script (the files of src/sql/ concatenated): the same
-- objects, definitions, privileges, owners and comments, every row kept.
-- test/upgrade/upgrade.t checks that, object by object, against a fresh
-- install, and fails on any difference.
--
-- What each change to src/sql/ since 0.1 needs here:
--   a new function or view   the same CREATE statement and COMMENT ON; the
--                            REVOKE ... FROM PUBLIC and the GRANTs that
--                            90_privileges.sql gives it (the two blocks at the
--                            end re-apply the revokes and the pinned search_path)
--   a changed function       CREATE OR REPLACE with the new body (a changed
--                            signature: DROP FUNCTION first, then grants and
--                            comment again)
--   a changed view           CREATE OR REPLACE VIEW (only adding columns at the
--                            end), else DROP VIEW and CREATE VIEW, then grants
--                            and comment again
--   a new column             ALTER TABLE ... ADD COLUMN, at the end of the table
--                            in src/sql/ too (the test compares column order)
--   changed seed rows        (wsctl.locks, wsctl.column_owners) INSERT/UPDATE
--                            them here
-- 0.1 is commit 83fb925; its script is kept in test/upgrade/wsctl--0.1.sql.
--
-- The library: 0.2.0's wsctl.so still exports every C symbol 0.1's script
-- names. It is preloaded, so install the new build, restart PostgreSQL, then
-- run ALTER EXTENSION wsctl UPDATE in every database that has the extension
-- (docs/operations.md, "Upgrading").

\echo Use "ALTER EXTENSION wsctl UPDATE TO '0.2.0'" to load this file. \quit

-- ------------------------------------------------------------ changes of 0.2.0

-- Metrics (issue 11): the counters behind wsctl.metrics (15_native.sql),
-- counted by the state machine (80_reconciler.sql), the view (88_metrics.sql)
-- and the role that reads it (90_privileges.sql).

CREATE FUNCTION wsctl._count_operation(operation text, outcome text, reason text DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_count_operation';
COMMENT ON FUNCTION wsctl._count_operation(text, text, text) IS
	'Counts an operation started, completed or failed, or an error by reason, for wsctl.metrics (added when the transaction commits); called by the state machine only';

CREATE FUNCTION wsctl._metrics_counters(
	OUT metric text, OUT type text, OUT labels jsonb, OUT value float8)
RETURNS SETOF record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_metrics_counters';
COMMENT ON FUNCTION wsctl._metrics_counters() IS
	'The counters and worker figures of wsctl.metrics, from shared memory';

CREATE OR REPLACE FUNCTION wsctl._record_failure(w wsctl.workspaces, reason text, code text,
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

CREATE OR REPLACE FUNCTION wsctl._complete_operation(w wsctl.workspaces)
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

CREATE OR REPLACE FUNCTION wsctl._claim(w wsctl.workspaces, planned wsctl.operation)
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

CREATE VIEW wsctl.metrics AS
SELECT c.metric, c.type, c.labels, c.value
  FROM wsctl._metrics_counters() AS c
UNION ALL
SELECT 'wsctl_workspaces_count', 'gauge',
	   jsonb_build_object('status', s.status, 'operation', o.operation),
	   (SELECT count(*) FROM wsctl.workspaces AS w
		 WHERE (w.deleted_at IS NULL OR w.operation <> 'NONE')
		   AND wsctl.effective_status(w.observed_status, w.error_info) = s.status
		   AND w.operation = o.operation)::float8
  FROM unnest(enum_range(NULL::wsctl.status)) AS s (status)
 CROSS JOIN unnest(enum_range(NULL::wsctl.operation)) AS o (operation)
UNION ALL
SELECT 'wsctl_workspace_errors_count', 'gauge',
	   jsonb_build_object('reason', e.reason, 'terminal', e.terminal), e.n::float8
  FROM (SELECT w.error_info ->> 'reason' AS reason,
			   coalesce(w.error_info ->> 'is_terminal', 'false') AS terminal, count(*) AS n
		  FROM wsctl.workspaces AS w
		 WHERE w.error_info IS NOT NULL AND (w.deleted_at IS NULL OR w.operation <> 'NONE')
		 GROUP BY 1, 2) AS e
UNION ALL
SELECT 'wsctl_archived_workspaces', 'gauge', '{}'::jsonb,
	   (SELECT count(*) FROM wsctl.workspaces AS w
		 WHERE w.deleted_at IS NULL AND w.archive_key IS NOT NULL)::float8
UNION ALL
SELECT 'wsctl_outbox_pending', 'gauge', '{}'::jsonb, p.n::float8
  FROM (SELECT (SELECT count(*) FROM wsctl.events AS e WHERE e.id IS NULL)
			 + (SELECT count(*) FROM wsctl.events AS e
				 WHERE e.id > (SELECT c.last_shipped FROM wsctl.event_cursor AS c WHERE c.sink = 'redis'))
			   AS n) AS p
UNION ALL
SELECT 'wsctl_outbox_lag_seconds', 'gauge', '{}'::jsonb,
	   coalesce(extract(epoch FROM now() - least(
		   (SELECT min(e.created_at) FROM wsctl.events AS e WHERE e.id IS NULL),
		   (SELECT min(e.created_at) FROM wsctl.events AS e
			 WHERE e.id > (SELECT c.last_shipped FROM wsctl.event_cursor AS c WHERE c.sink = 'redis')))),
				0)::float8
UNION ALL
SELECT 'wsctl_events_last_shipped_id', 'gauge', '{}'::jsonb, c.last_shipped::float8
  FROM wsctl.event_cursor AS c WHERE c.sink = 'redis';

COMMENT ON VIEW wsctl.metrics IS
	'wsctl''s metrics for monitoring (Prometheus names): metric, type (counter or gauge), labels, value';

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'wsctl_monitor') THEN
		CREATE ROLE wsctl_monitor NOLOGIN;
	END IF;
END
$$;
GRANT USAGE ON SCHEMA wsctl TO wsctl_monitor;
GRANT SELECT ON wsctl.metrics TO wsctl_monitor;
GRANT EXECUTE ON FUNCTION
	wsctl._metrics_counters(),
	wsctl.effective_status(wsctl.status, jsonb)
	TO wsctl_monitor;
GRANT wsctl_monitor TO wsctl_admin;


-- Idle cost (issue 12): the HealthMonitor writes only the rows whose
-- observation changed, plus one heartbeat row per tick (10_tables.sql,
-- 70_observation.sql); the last observation is wsctl._observed_at()
-- (20_state_machine.sql), which the API's observed_at (50_api.sql) and the
-- Mismatch rule (80_reconciler.sql) read.

CREATE TABLE wsctl.health_observation (
	singleton   bool PRIMARY KEY DEFAULT true CHECK (singleton),
	observed_at timestamptz,
	skipped     uuid[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE wsctl.health_observation IS
	'HealthMonitor heartbeat (one row): when the last complete tick listed Docker, and the workspaces it skipped';
INSERT INTO wsctl.health_observation DEFAULT VALUES;

CREATE FUNCTION wsctl._observed_at(w wsctl.workspaces)
RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
	SELECT CASE
		WHEN w.observed_at IS NULL THEN NULL
		WHEN w.deleted_at IS NOT NULL AND w.observed_status = 'DELETED' AND w.operation = 'NONE'
			THEN w.observed_at		-- no longer watched
		ELSE greatest(w.observed_at,
					  (SELECT h.observed_at FROM wsctl.health_observation AS h
						WHERE NOT (w.id = ANY (h.skipped))))
	END
$$;
COMMENT ON FUNCTION wsctl._observed_at(wsctl.workspaces) IS
	'Last observation of a workspace: its observed_at or, when later and it was covered, the HealthMonitor heartbeat (wsctl.health_observation)';

CREATE OR REPLACE FUNCTION wsctl._record_observations(container_ids uuid[], container_running bool[],
										   volume_ids uuid[], observed_at timestamptz)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'health_monitor'
AS $$
DECLARE
	r          record;
	w          wsctl.workspaces;
	status     wsctl.status;
	violation  text;
	new_error  jsonb;
	changed    int := 0;
	skipped_ids uuid[] := '{}';
BEGIN
	-- Judged first without locks, from the committed rows: most rows agree
	-- with Docker and are neither locked nor written.
	FOR r IN
		WITH c AS (SELECT u.id, bool_or(u.running) AS running
					 FROM unnest(container_ids, container_running) AS u(id, running)
					GROUP BY u.id),
			 v AS (SELECT DISTINCT u.id FROM unnest(volume_ids) AS u(id)),
			 o AS (SELECT x.id, x.observed_at AS seen_at, x.observed_status, x.error_info,
						  c.id IS NOT NULL AS has_c, coalesce(c.running, false) AS running,
						  v.id IS NOT NULL AS has_v,
						  wsctl.observe_status(x, c.id IS NOT NULL, coalesce(c.running, false),
											   v.id IS NOT NULL) AS status,
						  wsctl.observe_violation(x, c.id IS NOT NULL, coalesce(c.running, false),
												  v.id IS NOT NULL) AS violation
					 FROM wsctl.workspaces AS x
					 LEFT JOIN c ON c.id = x.id
					 LEFT JOIN v ON v.id = x.id
					WHERE x.deleted_at IS NULL OR x.observed_status <> 'DELETED' OR x.operation <> 'NONE')
		SELECT o.id, o.has_c, o.running, o.has_v
		  FROM o
		 WHERE o.seen_at IS NULL
			OR o.status IS DISTINCT FROM o.observed_status
			OR (o.violation IS NOT NULL AND o.error_info IS NULL AND o.status = 'ERROR')
		 ORDER BY o.id
	LOOP
		-- Then locked, and judged again from the locked row. A row another
		-- session holds (a client idle in a transaction) is skipped this tick
		-- instead of stalling every other workspace.
		SELECT x.* INTO w FROM wsctl.workspaces AS x WHERE x.id = r.id FOR UPDATE SKIP LOCKED;
		IF NOT FOUND THEN
			skipped_ids := skipped_ids || r.id;
			CONTINUE;
		END IF;
		status := wsctl.observe_status(w, r.has_c, r.running, r.has_v);
		violation := wsctl.observe_violation(w, r.has_c, r.running, r.has_v);
		-- An invariant violation is recorded only over an empty error_info.
		new_error := CASE WHEN violation IS NOT NULL AND w.error_info IS NULL AND status = 'ERROR'
					 THEN wsctl.invariant_error(violation, w.operation, r.has_c, r.has_v, w.archive_key) END;
		BEGIN
			UPDATE wsctl.workspaces AS x
			   SET observed_status = status,
				   observed_at = _record_observations.observed_at,
				   error_info = coalesce(new_error, x.error_info),
				   error_message = coalesce(new_error ->> 'message', x.error_message)
			 WHERE x.id = w.id;
			IF status IS DISTINCT FROM w.observed_status THEN
				changed := changed + 1;
				RAISE LOG 'wsctl health_monitor: workspace % observed % -> %', w.id, w.observed_status, status;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			skipped_ids := skipped_ids || w.id;
			RAISE WARNING 'wsctl health_monitor: workspace %: observation not recorded: %', w.id, SQLERRM;
		END;
	END LOOP;

	-- The heartbeat: every watched row not named in skipped agrees with
	-- this tick's listing.
	UPDATE wsctl.health_observation AS h
	   SET observed_at = _record_observations.observed_at, skipped = skipped_ids;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION wsctl._record_observations(uuid[], bool[], uuid[], timestamptz) IS
	'HealthMonitor write: observe_status() for every watched workspace from one listing of containers and volumes; writes only the rows whose observation changed (or never observed) and the heartbeat; returns how many statuses changed';

CREATE OR REPLACE VIEW wsctl.workspace_info AS
	SELECT
		w.id, w.owner_user_id, w.name, w.description, w.memo, w.image_ref, w.instance_backend,
		w.storage_backend, w.home_store_key, w.home_ctx, w.observed_status, w.operation,
		w.op_started_at, w.op_id, w.desired_state, w.archive_key,
		wsctl._observed_at(w) AS observed_at, w.last_access_at, w.standby_ttl_seconds,
		w.archive_ttl_seconds, w.error_message, w.error_info, w.error_count, w.previous_status,
		w.created_at, w.updated_at, w.deleted_at,
		wsctl.display_status(wsctl.effective_status(w.observed_status, w.error_info),
							 w.archive_key) AS display_status
	  FROM wsctl.workspaces AS w
	 WHERE w.deleted_at IS NULL;

CREATE OR REPLACE FUNCTION wsctl._info(w wsctl.workspaces)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN ROW(
		w.id, w.owner_user_id, w.name, w.description, w.memo, w.image_ref, w.instance_backend,
		w.storage_backend, w.home_store_key, w.home_ctx, w.observed_status, w.operation,
		w.op_started_at, w.op_id, w.desired_state, w.archive_key,
		wsctl._observed_at(w), w.last_access_at, w.standby_ttl_seconds,
		w.archive_ttl_seconds, w.error_message, w.error_info, w.error_count, w.previous_status,
		w.created_at, w.updated_at, w.deleted_at,
		wsctl.display_status(wsctl.effective_status(w.observed_status, w.error_info),
							 w.archive_key))::wsctl.workspace_info;
END
$$;

CREATE OR REPLACE FUNCTION wsctl._reconcile_in_flight(w wsctl.workspaces, worker_state text,
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

GRANT SELECT ON wsctl.health_observation TO wsctl_api;
GRANT EXECUTE ON FUNCTION wsctl._observed_at(wsctl.workspaces) TO wsctl_api;

-- ------------------------------------------------------------ as 90_privileges.sql ends
-- Nothing in schema wsctl is for PUBLIC, and every function runs with a
-- pinned search_path: applied again so that what was added above is covered
-- as a fresh install covers it (both are no-ops on 0.1's objects).

REVOKE ALL ON ALL TABLES IN SCHEMA wsctl FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA wsctl FROM PUBLIC;

DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
		 WHERE p.pronamespace = 'wsctl'::regnamespace
		   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%')
	LOOP
		EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
	END LOOP;
END
$$;
