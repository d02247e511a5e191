-- test/pgtap/attempts.sql: the reconciler's judgement of operation attempts
-- (issue 8, items 1, 2, 6 and 7), driven through wsctl._reconcile_workspace
-- with the worker's state given by hand, as the C reconciler passes it from
-- shared memory. No workers run in this database.
--
-- Covers:
--   * completion needs the worker's success: observation equal to the
--     target with a busy, failed or absent worker never completes;
--   * every attempt is recorded; an attempt whose worker vanished counts as
--     a failure, retries included, up to RetryExceeded;
--   * a slot of another op_id is terminated or released, never judged;
--   * Docker unavailable: no retry used, timeout suspended, time given back;
--   * a second reconciler cannot claim or launch the same attempt;
--   * every extension function pins search_path; TRUNCATE is refused;
--     the API takes no advisory lock.

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(41);

-- rec(id, worker_state, worker_op_id, finished_at, reason, code, message):
-- one reconciler step; returns 'action operation' (operation only for launch).
CREATE FUNCTION pg_temp.rec(ws uuid, state text, op uuid DEFAULT NULL,
							finished timestamptz DEFAULT NULL, reason text DEFAULT '',
							code text DEFAULT '', message text DEFAULT '')
RETURNS text LANGUAGE sql AS $$
	SELECT a.action || coalesce(' ' || a.operation::text, '')
	  FROM wsctl._reconcile_workspace(ws, state, op, finished, reason, code, message, true) AS a
$$;
CREATE FUNCTION pg_temp.row_of(ws uuid) RETURNS wsctl.workspaces
LANGUAGE sql AS $$ SELECT * FROM wsctl.workspaces WHERE id = ws $$;
-- as(component, sql): runs a write as one component.
CREATE FUNCTION pg_temp.as_component(component text, statement text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('wsctl.component', component, true);
	EXECUTE statement;
	PERFORM set_config('wsctl.component', '', true);
END $$;
CREATE FUNCTION pg_temp.observe(ws uuid, status wsctl.status) RETURNS void
LANGUAGE sql AS $$
	SELECT pg_temp.as_component('health_monitor',
		format('UPDATE wsctl.workspaces SET observed_status = %L, observed_at = clock_timestamp() WHERE id = %L', status, ws))
$$;
-- Moves the last attempt's end back, so that the retry delay has passed.
CREATE FUNCTION pg_temp.age_attempt(ws uuid) RETURNS void
LANGUAGE sql AS $$
	UPDATE wsctl.operation_attempts SET finished_at = finished_at - interval '1 hour'
	 WHERE workspace_id = ws AND finished_at IS NOT NULL
$$;

CREATE TEMP TABLE t (k text PRIMARY KEY, id uuid);
INSERT INTO t SELECT 'a', (wsctl.create_workspace(gen_random_uuid(), 'attempts-a', 'busybox', 'STANDBY')).id;

-- 1. Completion needs the worker's success ---------------------------------
SELECT is(pg_temp.rec(id, 'none'), 'launch PROVISIONING', 'a new workspace: PROVISIONING claimed and launched') FROM t WHERE k = 'a';
SELECT is((SELECT count(*) FROM wsctl.operation_attempts a JOIN t ON a.workspace_id = t.id AND t.k = 'a'
			WHERE a.attempt = 1 AND a.outcome IS NULL AND a.op_id = (pg_temp.row_of(t.id)).op_id), 1::bigint,
		  'attempt 1 is recorded for the op_id, without an outcome');
SELECT pg_temp.observe(id, 'STANDBY') FROM t WHERE k = 'a';
SELECT is(pg_temp.rec(id, 'busy', (pg_temp.row_of(id)).op_id), 'none', 'observed STANDBY, worker busy: nothing') FROM t WHERE k = 'a';
SELECT is((pg_temp.row_of(id)).operation, 'PROVISIONING', '  the operation is still in progress') FROM t WHERE k = 'a';
SELECT is(pg_temp.rec(id, 'succeeded', gen_random_uuid(), clock_timestamp()), 'release',
		  'a success reported for another op_id is released, not judged') FROM t WHERE k = 'a';
SELECT is((pg_temp.row_of(id)).operation, 'PROVISIONING', '  and completes nothing') FROM t WHERE k = 'a';
SELECT is(pg_temp.rec(id, 'busy', gen_random_uuid()), 'terminate',
		  'a busy worker of another op_id is terminated') FROM t WHERE k = 'a';
SELECT is(pg_temp.rec(id, 'succeeded', (pg_temp.row_of(id)).op_id, clock_timestamp() - interval '1 s'), 'release',
		  'worker succeeded and observation = target: released') FROM t WHERE k = 'a';
SELECT is((pg_temp.row_of(id)).operation, 'NONE', '  the operation is complete') FROM t WHERE k = 'a';
SELECT is((SELECT count(*) FROM wsctl.operation_attempts a JOIN t ON a.workspace_id = t.id AND t.k = 'a'), 0::bigint,
		  '  and its attempts are removed');

-- A failed worker never completes, even when observation equals the target.
SELECT wsctl.set_desired_state(id, 'RUNNING') FROM t WHERE k = 'a';
SELECT is(pg_temp.rec(id, 'none'), 'launch STARTING', 'STARTING claimed') FROM t WHERE k = 'a';
SELECT pg_temp.observe(id, 'RUNNING') FROM t WHERE k = 'a';
SELECT is(pg_temp.rec(id, 'failed', (pg_temp.row_of(id)).op_id, clock_timestamp(), 'ActionFailed', 'HEALTH_CHECK_FAILED', 'boom'),
		  'release', 'observed RUNNING but the worker failed: released') FROM t WHERE k = 'a';
SELECT is((pg_temp.row_of(id)).operation, 'STARTING', '  the operation is not complete') FROM t WHERE k = 'a';
SELECT is((pg_temp.row_of(id)).error_count, 1, '  the failure is counted') FROM t WHERE k = 'a';
SELECT is((SELECT outcome || ' ' || code FROM wsctl.operation_attempts a JOIN t ON a.workspace_id = t.id AND t.k = 'a' WHERE attempt = 1),
		  'failed HEALTH_CHECK_FAILED', '  attempt 1 is recorded as failed with its code');
SELECT is(pg_temp.rec(id, 'none'), 'none', 'within the retry delay: nothing') FROM t WHERE k = 'a';
SELECT pg_temp.age_attempt(id) FROM t WHERE k = 'a';
SELECT is(pg_temp.rec(id, 'none'), 'launch STARTING', 'after the retry delay: attempt 2 launched') FROM t WHERE k = 'a';
SELECT is(pg_temp.rec(id, 'succeeded', (pg_temp.row_of(id)).op_id, clock_timestamp() - interval '1 s'), 'release',
		  'attempt 2 succeeded and RUNNING is observed: complete') FROM t WHERE k = 'a';
SELECT is((pg_temp.row_of(id)).operation::text || ' ' || (pg_temp.row_of(id)).error_count, 'NONE 0', '  errors reset') FROM t WHERE k = 'a';

-- 2. A vanished worker counts, on every attempt ------------------------------
INSERT INTO t SELECT 'b', (wsctl.create_workspace(gen_random_uuid(), 'attempts-b', 'busybox', 'STANDBY')).id;
SELECT is(pg_temp.rec(id, 'none'), 'launch PROVISIONING', 'b: PROVISIONING launched') FROM t WHERE k = 'b';
SELECT is(pg_temp.rec(id, 'none'), 'none', 'no worker and no outcome: the worker vanished') FROM t WHERE k = 'b';
SELECT is((pg_temp.row_of(id)).error_count, 1, '  counted as failure 1') FROM t WHERE k = 'b';
SELECT is(pg_temp.rec(id, 'none'), 'none', '  retry wait: not counted twice') FROM t WHERE k = 'b';
SELECT is((pg_temp.row_of(id)).error_count, 1, '  still failure 1') FROM t WHERE k = 'b';
SELECT pg_temp.age_attempt(id) FROM t WHERE k = 'b';
SELECT is(pg_temp.rec(id, 'none'), 'launch PROVISIONING', 'retry 1 launched') FROM t WHERE k = 'b';
SELECT is(pg_temp.rec(id, 'none'), 'none', 'retry 1 vanished too') FROM t WHERE k = 'b';
SELECT is((pg_temp.row_of(id)).error_count, 2, '  counted: failure 2 (a crash during a retry counts)') FROM t WHERE k = 'b';
SELECT pg_temp.age_attempt(id) FROM t WHERE k = 'b';
SELECT pg_temp.rec(id, 'none') FROM t WHERE k = 'b';
SELECT pg_temp.rec(id, 'none') FROM t WHERE k = 'b';
SELECT pg_temp.age_attempt(id) FROM t WHERE k = 'b';
SELECT pg_temp.rec(id, 'none') FROM t WHERE k = 'b';
SELECT is(pg_temp.rec(id, 'none'), 'none', 'the 4th vanished attempt') FROM t WHERE k = 'b';
SELECT is((pg_temp.row_of(id)).error_info ->> 'reason', 'RetryExceeded', '  ends in RetryExceeded (max_retries 3)') FROM t WHERE k = 'b';
SELECT is((SELECT string_agg(outcome, ',' ORDER BY attempt) FROM wsctl.operation_attempts a JOIN t ON a.workspace_id = t.id AND t.k = 'b'),
		  'vanished,vanished,vanished,vanished', '  four attempts, all vanished');

-- 6. Docker unavailable: waiting, not failing --------------------------------
INSERT INTO t SELECT 'c', (wsctl.create_workspace(gen_random_uuid(), 'attempts-c', 'busybox', 'STANDBY')).id;
SELECT is(pg_temp.rec(id, 'none'), 'launch PROVISIONING', 'c: PROVISIONING launched') FROM t WHERE k = 'c';
SELECT is(pg_temp.rec(id, 'failed', (pg_temp.row_of(id)).op_id, clock_timestamp(), 'Unreachable', 'DOCKER_UNAVAILABLE', 'cannot connect'),
		  'release', 'the worker found Docker unavailable: released') FROM t WHERE k = 'c';
SELECT is((pg_temp.row_of(id)).error_count, 0, '  no retry is used') FROM t WHERE k = 'c';
SELECT is((pg_temp.row_of(id)).error_message, 'waiting for Docker: cannot connect', '  error_message says it waits') FROM t WHERE k = 'c';
SELECT is((pg_temp.row_of(id)).error_info -> 'context' ->> 'waiting_for', 'docker', '  error_info.context.waiting_for = docker') FROM t WHERE k = 'c';
-- The operation started long ago (far beyond its timeout) but waits for Docker.
SELECT pg_temp.as_component('reconciler', format(
	'UPDATE wsctl.workspaces SET op_started_at = now() - interval ''1 hour'' WHERE id = %L', id)) FROM t WHERE k = 'c';
SELECT is(pg_temp.rec(id, 'none'), 'none', 'past its timeout while waiting for Docker: no Timeout') FROM t WHERE k = 'c';
SELECT is(coalesce((pg_temp.row_of(id)).error_info ->> 'is_terminal', 'false'), 'false', '  not terminal') FROM t WHERE k = 'c';

-- 7. Two reconcilers: the row lock and the attempt key --------------------
SELECT is((SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), 0::bigint,
		  'the API and the reconciler took no advisory lock');

-- Pinned search_path and TRUNCATE ------------------------------------------
SELECT is((SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'wsctl'::regnamespace
			AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c = 'search_path=pg_catalog, pg_temp')),
		  0::bigint, 'every wsctl function pins search_path = pg_catalog, pg_temp');
SELECT throws_ok('TRUNCATE wsctl.workspaces CASCADE', 'WS403', NULL, 'TRUNCATE without a component: WS403');
SELECT set_config('wsctl.component', 'api', true);
SELECT throws_ok('TRUNCATE wsctl.workspaces CASCADE', 'WS403', NULL, 'TRUNCATE as component api: WS403');
SELECT set_config('wsctl.component', '', true);

SELECT * FROM finish();
ROLLBACK;
