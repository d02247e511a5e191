-- test/pgtap/api.sql: the SQL API (DESIGN section 4; SPEC 2.6, 2.7, 8.7, 9).
--
-- Covers every refusal of every API function with its SQLSTATE and message:
--   WS404 unknown or deleted workspace (get, set, delete, update, recover, wake);
--   WS409 operation in progress, ERROR (delete still allowed), recover of a
--         workspace not in ERROR;
--   WS429 per-user and global running limits, with the JSON DETAIL
--         (limit_type, current, max, running_workspaces), and what claims a slot;
--   WS422 names, images, desired states, TTLs, description/memo lengths, NULLs;
-- the happy paths (create defaults, idempotent set_desired_state, soft delete,
-- update_workspace, list_workspaces, recover_workspace), wake_workspace for
-- every display status, and hostile strings (stored byte for byte or WS422).
-- Fixture states come from the workers' components (health_monitor,
-- reconciler) writing the table directly as superuser.
-- REPEATABLE READ callers: test/pgtap/isolation_level.sql.

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(337);

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- Fixtures by name.
CREATE TEMP TABLE fx (k text PRIMARY KEY, id uuid NOT NULL);
CREATE FUNCTION pg_temp.id(k text) RETURNS uuid LANGUAGE sql AS $$
	SELECT id FROM fx WHERE fx.k = $1
$$;

-- Creates a workspace through the API and records it under a name.
CREATE FUNCTION pg_temp.new(k text, owner text, desired text DEFAULT 'STANDBY', nm text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
	new_id uuid;
BEGIN
	SELECT w.id INTO new_id
	  FROM wsctl.create_workspace(owner::uuid, coalesce(nm, k), 'busybox:1.36', desired::wsctl.status) AS w;
	INSERT INTO fx VALUES (k, new_id);
	RETURN new_id;
END
$$;

-- Runs one statement as a worker component (restoring the setting after).
CREATE FUNCTION pg_temp.as_component(component text, statement text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('wsctl.component', component, true);
	EXECUTE statement;
	PERFORM set_config('wsctl.component', '', true);
END
$$;

-- Puts a workspace into a state the way the workers would: the reconciler
-- writes archive_key, operation (with op_id) and error_info; the
-- HealthMonitor writes observed_status.
CREATE FUNCTION pg_temp.force(k text, observed text DEFAULT NULL, op text DEFAULT NULL,
							  archive boolean DEFAULT false, error jsonb DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
	ws uuid := pg_temp.id(k);
BEGIN
	IF archive THEN
		PERFORM pg_temp.as_component('reconciler', format(
			'UPDATE wsctl.workspaces SET archive_key = wsctl.archive_key_for(id, gen_random_uuid()) WHERE id = %L', ws));
	END IF;
	IF op IS NOT NULL THEN
		PERFORM pg_temp.as_component('reconciler', format(
			'UPDATE wsctl.workspaces SET operation = %L, op_id = coalesce(op_id, gen_random_uuid()), '
			'op_started_at = now() WHERE id = %L', op, ws));
	END IF;
	IF error IS NOT NULL THEN
		PERFORM pg_temp.as_component('reconciler', format(
			'UPDATE wsctl.workspaces SET error_info = %L, error_message = %L, error_count = 4 WHERE id = %L',
			error, error ->> 'message', ws));
	END IF;
	IF observed IS NOT NULL THEN
		PERFORM pg_temp.as_component('health_monitor', format(
			'UPDATE wsctl.workspaces SET observed_status = %L, observed_at = now() WHERE id = %L', observed, ws));
	END IF;
	RETURN ws;
END
$$;

-- The outcome of a statement: {"state": "ok"} or its SQLSTATE, message,
-- DETAIL and HINT (GET STACKED DIAGNOSTICS).
CREATE FUNCTION pg_temp.outcome(statement text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	EXECUTE statement;
	RETURN '{"state": "ok"}';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
							det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	RETURN jsonb_build_object('state', st, 'message', msg, 'detail', det, 'hint', hnt);
END
$$;

CREATE FUNCTION pg_temp.row_of(ws uuid) RETURNS jsonb LANGUAGE sql AS $$
	SELECT to_jsonb(w) FROM wsctl.workspaces AS w WHERE w.id = ws
$$;

CREATE FUNCTION pg_temp.desired(k text) RETURNS text LANGUAGE sql AS $$
	SELECT desired_state::text FROM wsctl.workspaces WHERE id = pg_temp.id(k)
$$;

SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'wsctl.max_running_per_user'), '2',
		  'default per-user running limit is 2');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'wsctl.max_running_global'), '100',
		  'default global running limit is 100');
-- The file assumes the defaults, whatever the cluster is configured with.
SET LOCAL wsctl.max_running_per_user = 2;
SET LOCAL wsctl.max_running_global = 100;

-- ===========================================================================
-- WS429, global limit (first, while the database holds no other claims)
-- ===========================================================================

DO $$ BEGIN
	PERFORM pg_temp.new('g1', '00000000-0000-0000-0000-00000000a001', 'RUNNING');
	PERFORM pg_temp.new('g2_standby', '00000000-0000-0000-0000-00000000a002', 'STANDBY');
	PERFORM pg_temp.force('g2_standby', observed => 'STANDBY');
END $$;

SET LOCAL wsctl.max_running_global = 1;

CREATE TEMP TABLE g_create AS
SELECT pg_temp.outcome($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000a002', 'g2', 'busybox')$$) AS o;

SELECT is((SELECT o - 'detail' - 'hint' FROM g_create),
		  '{"state": "WS429", "message": "running limit exceeded: 1 of 1 workspaces already running system-wide"}',
		  'global limit 1, one claimed: create RUNNING for another user is WS429');
SELECT is((SELECT (o ->> 'detail')::jsonb FROM g_create),
		  '{"error": "workspace_limit_exceeded", "limit_type": "global", "current": 1, "max": 1, "running_workspaces": []}',
		  'global WS429 DETAIL: limit_type global, current 1, max 1, no workspace list');
SELECT matches((SELECT o ->> 'hint' FROM g_create), 'stopped', 'global WS429 has a HINT');

SELECT is((pg_temp.outcome(format($$SELECT wsctl.set_desired_state(%L, 'RUNNING')$$, pg_temp.id('g2_standby')))
			->> 'detail')::jsonb,
		  '{"max": 1, "error": "workspace_limit_exceeded", "current": 1, "limit_type": "global", "running_workspaces": []}',
		  'global limit: set_desired_state RUNNING is WS429 global');
SELECT is(pg_temp.desired('g2_standby'), 'STANDBY', '... and desired_state is unchanged');

SELECT is(wsctl.wake_workspace(pg_temp.id('g2_standby')),
		  '{"action": "unavailable", "http_status": 429, "display_status": "STANDBY",
			"message": "running limit reached; stop another workspace first",
			"limit": {"error": "workspace_limit_exceeded", "limit_type": "global", "current": 1, "max": 1,
					  "running_workspaces": []}}'::jsonb,
		  'global limit: waking a STANDBY workspace answers 429 with the limit');
SELECT is(pg_temp.desired('g2_standby'), 'STANDBY', '... and leaves desired_state STANDBY');

SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('g1'), 'RUNNING')), 'RUNNING',
		  'global limit reached: re-asking RUNNING for the slot holder is idempotent, not WS429');
SELECT is((SELECT desired_state::text FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000a002', 'g2 standby',
																  'busybox', 'STANDBY')),
		  'STANDBY', 'global limit reached: creating a STANDBY workspace needs no slot');

SET LOCAL wsctl.max_running_per_user = 1;
SELECT is(pg_temp.outcome($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000a001', 'g1 again', 'busybox')$$)
			->> 'message',
		  'running limit exceeded: 1 of 1 workspaces per user already running',
		  'both limits reached: the per-user limit is checked (and reported) first');
SET LOCAL wsctl.max_running_per_user = 2;
SET LOCAL wsctl.max_running_global = 100;

SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('g2_standby'), 'RUNNING')), 'RUNNING',
		  'with the global limit back to 100 the request succeeds');

-- ===========================================================================
-- WS429, per-user limit
-- ===========================================================================

DO $$ BEGIN
	PERFORM pg_temp.new('u1a', '00000000-0000-0000-0000-00000000b001', 'RUNNING');
	PERFORM pg_temp.new('u1b', '00000000-0000-0000-0000-00000000b001', 'RUNNING');
	PERFORM pg_temp.new('u1c', '00000000-0000-0000-0000-00000000b001', 'STANDBY');
END $$;

-- The DETAIL read in a DO block with GET STACKED DIAGNOSTICS.
CREATE TEMP TABLE u1_refusal (state text, message text, detail jsonb, hint text);
DO $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	PERFORM wsctl.create_workspace('00000000-0000-0000-0000-00000000b001', 'third', 'busybox');
	INSERT INTO u1_refusal VALUES ('ok', NULL, NULL, NULL);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	INSERT INTO u1_refusal VALUES (st, msg, det::jsonb, hnt);
END
$$;

SELECT is((SELECT state FROM u1_refusal), 'WS429', 'third RUNNING workspace of one user: WS429');
SELECT is((SELECT message FROM u1_refusal), 'running limit exceeded: 2 of 2 workspaces per user already running',
		  'per-user WS429 message');
SELECT is((SELECT detail ->> 'error' FROM u1_refusal), 'workspace_limit_exceeded', 'DETAIL error = workspace_limit_exceeded');
SELECT is((SELECT detail ->> 'limit_type' FROM u1_refusal), 'per_user', 'DETAIL limit_type = per_user');
SELECT is((SELECT (detail -> 'current')::int FROM u1_refusal), 2, 'DETAIL current = 2');
SELECT is((SELECT (detail -> 'max')::int FROM u1_refusal), 2, 'DETAIL max = 2');
SELECT is((SELECT jsonb_typeof(detail -> 'running_workspaces') FROM u1_refusal), 'array', 'DETAIL running_workspaces is an array');
SELECT set_eq($$SELECT (r ->> 'id')::uuid AS id, r ->> 'name' AS name, r ->> 'display_status' AS shown
				FROM u1_refusal, jsonb_array_elements(detail -> 'running_workspaces') AS r$$,
			  $$VALUES (pg_temp.id('u1a'), 'u1a', 'PENDING'), (pg_temp.id('u1b'), 'u1b', 'PENDING')$$,
			  'DETAIL running_workspaces lists the two slot holders with id, name and display_status');
SELECT is((SELECT array_agg(k ORDER BY k) FROM u1_refusal, jsonb_object_keys(detail) AS k),
		  ARRAY['current', 'error', 'limit_type', 'max', 'running_workspaces'], 'DETAIL has exactly the documented keys');
SELECT matches((SELECT hint FROM u1_refusal), 'Stop one of the running workspaces', 'per-user WS429 HINT says what to do');

SELECT throws_ok(format($$SELECT wsctl.set_desired_state(%L, 'RUNNING')$$, pg_temp.id('u1c')),
				 'WS429', 'running limit exceeded: 2 of 2 workspaces per user already running',
				 'per-user limit: set_desired_state RUNNING of a third workspace is WS429');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('u1a'), 'RUNNING')), 'RUNNING',
		  'per-user limit reached: set_desired_state RUNNING on a slot holder is idempotent');
SELECT is((SELECT display_status FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000b002', 'other user', 'busybox')),
		  'PENDING', 'another user is not affected by the first user''s limit');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('u1a'), 'STANDBY')), 'STANDBY',
		  'a slot holder asks for STANDBY ...');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('u1c'), 'RUNNING')), 'RUNNING',
		  '... which frees its slot for another workspace');
SELECT is((SELECT deleted_at IS NOT NULL FROM wsctl.delete_workspace(pg_temp.id('u1b'))), true,
		  'deleting a slot holder that never ran ...');
SELECT is((SELECT desired_state::text FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000b001', 'after delete',
																  'busybox')),
		  'RUNNING', '... frees its slot');

-- What claims a slot: observed RUNNING (even deleted, until the container is
-- gone), operation STARTING, desired RUNNING (live only).
DO $$ BEGIN
	PERFORM pg_temp.new('u3a', '00000000-0000-0000-0000-00000000b003', 'RUNNING');
	PERFORM pg_temp.force('u3a', observed => 'RUNNING');
	PERFORM wsctl.delete_workspace(pg_temp.id('u3a'));
	PERFORM pg_temp.new('u3b', '00000000-0000-0000-0000-00000000b003', 'RUNNING');
	PERFORM pg_temp.new('u4a', '00000000-0000-0000-0000-00000000b004', 'STANDBY');
	PERFORM pg_temp.force('u4a', observed => 'STANDBY', op => 'STARTING');
	PERFORM pg_temp.new('u4b', '00000000-0000-0000-0000-00000000b004', 'RUNNING');
	PERFORM pg_temp.new('u5a', '00000000-0000-0000-0000-00000000b005', 'STANDBY');
	PERFORM pg_temp.force('u5a', observed => 'RUNNING');
	PERFORM pg_temp.new('u5b', '00000000-0000-0000-0000-00000000b005', 'RUNNING');
	PERFORM pg_temp.new('u6a', '00000000-0000-0000-0000-00000000b006', 'RUNNING');
	PERFORM pg_temp.force('u6a', observed => 'RUNNING');
	PERFORM pg_temp.new('u6b', '00000000-0000-0000-0000-00000000b006', 'STANDBY');
	PERFORM pg_temp.force('u6b', observed => 'STANDBY');
END $$;

SELECT is(pg_temp.outcome($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000b003', 'x', 'busybox')$$)
			->> 'state', 'WS429', 'a deleted workspace whose container still runs keeps its slot');
SELECT is(pg_temp.outcome($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000b004', 'x', 'busybox')$$)
			->> 'state', 'WS429', 'a STARTING claim holds a slot');
SELECT is(pg_temp.outcome($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000b005', 'x', 'busybox')$$)
			->> 'state', 'WS429', 'an observed RUNNING workspace asked to stop still holds its slot');
SELECT is((SELECT r ->> 'display_status'
			 FROM jsonb_array_elements((pg_temp.outcome($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000b004',
																						 'x', 'busybox')$$)
										->> 'detail')::jsonb -> 'running_workspaces') AS r
			WHERE (r ->> 'id')::uuid = pg_temp.id('u4a')),
		  'STANDBY', 'the STARTING holder is listed with its display status');
SELECT is((SELECT desired_state::text FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000b006', 'x', 'busybox',
																  'STANDBY')),
		  'STANDBY', 'one RUNNING of two: creating a STANDBY workspace is fine');
SELECT is(wsctl.wake_workspace(pg_temp.id('u6b')) ->> 'action', 'wait',
		  'one RUNNING of two: waking a STANDBY workspace takes the second slot');
SELECT is(pg_temp.desired('u6b'), 'RUNNING', '... and sets its desired_state to RUNNING');

SET LOCAL wsctl.max_running_per_user = 3;
SELECT is((SELECT desired_state::text FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000b005', 'third', 'busybox')),
		  'RUNNING', 'wsctl.max_running_per_user = 3 allows a third');
SET LOCAL wsctl.max_running_per_user = 2;

-- ===========================================================================
-- Happy paths
-- ===========================================================================

-- create_workspace: the returned row and its defaults.
CREATE TEMP TABLE created AS
SELECT * FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000c001', 'my workspace', 'debian:12');

SELECT results_eq(
	$$SELECT owner_user_id, name::text, description, memo, image_ref::text, instance_backend::text, storage_backend::text,
			 home_store_key::text, home_ctx, observed_status::text, operation::text, op_started_at, op_id,
			 desired_state::text, archive_key::text, observed_at, last_access_at, standby_ttl_seconds,
			 archive_ttl_seconds, error_message, error_info, error_count, previous_status::text,
			 created_at, updated_at, deleted_at, display_status
		FROM created$$,
	$$SELECT '00000000-0000-0000-0000-00000000c001'::uuid, 'my workspace', NULL::text, NULL::text,
			 'debian:12', 'local-docker', 'docker-volume',
			 'ws-' || (SELECT id FROM created) || '-home', NULL::jsonb, 'PENDING', 'NONE',
			 NULL::timestamptz, NULL::uuid, 'RUNNING', NULL::text, NULL::timestamptz, NULL::timestamptz,
			 300, 86400, NULL::text, NULL::jsonb, 0, NULL::text, now(), now(), NULL::timestamptz, 'PENDING'$$,
	'create_workspace returns the new row with its defaults and display_status');
SELECT is(pg_temp.row_of((SELECT id FROM created)), (SELECT to_jsonb(c) - 'display_status' FROM created AS c),
		  'the returned row is the stored row');
SELECT is((SELECT count(*)::int FROM wsctl.workspace_info WHERE id = (SELECT id FROM created)), 1,
		  'the new workspace is in workspace_info');

SELECT results_eq(
	$$SELECT name::text, description, memo, desired_state::text, standby_ttl_seconds, archive_ttl_seconds, display_status
		FROM wsctl.create_workspace(owner_user_id => '00000000-0000-0000-0000-00000000c001', name => 'named',
									image_ref => 'ghcr.io/acme/dev:1.0', desired_state => 'STANDBY',
									description => 'a description', memo => 'a memo',
									standby_ttl_seconds => 60, archive_ttl_seconds => 3600)$$,
	$$VALUES ('named', 'a description', 'a memo', 'STANDBY', 60, 3600, 'PENDING')$$,
	'create_workspace with every argument by name');
SELECT is((SELECT desired_state::text FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000c001', 'p',
																  'busybox', 'PENDING')),
		  'PENDING', 'create_workspace with desired PENDING');

-- set_desired_state: transitions and idempotence.
DO $$ BEGIN PERFORM pg_temp.new('s1', '00000000-0000-0000-0000-00000000c002', 'STANDBY'); END $$;
CREATE TEMP TABLE s1_ctid AS SELECT ctid AS before FROM wsctl.workspaces WHERE id = pg_temp.id('s1');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('s1'), 'STANDBY')), 'STANDBY',
		  'set_desired_state to the current desired state returns the row');
SELECT is((SELECT ctid FROM wsctl.workspaces WHERE id = pg_temp.id('s1')), (SELECT before FROM s1_ctid),
		  '... without writing it (idempotent: same tuple)');
SELECT is((SELECT (desired_state::text, display_status) FROM wsctl.set_desired_state(pg_temp.id('s1'), 'PENDING'))::text,
		  '(PENDING,PENDING)', 'set_desired_state PENDING');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('s1'), 'RUNNING')), 'RUNNING',
		  'set_desired_state RUNNING');
SELECT is(pg_temp.desired('s1'), 'RUNNING', 'the new desired_state is stored');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('s1'), 'RUNNING')), 'RUNNING',
		  'set_desired_state RUNNING twice is idempotent');

-- delete_workspace: soft delete, then 404 and invisible.
DO $$ BEGIN PERFORM pg_temp.new('d1', '00000000-0000-0000-0000-00000000c003', 'STANDBY'); END $$;
SELECT is((SELECT (deleted_at = now(), display_status) FROM wsctl.delete_workspace(pg_temp.id('d1')))::text,
		  '(t,PENDING)', 'delete_workspace sets deleted_at and returns the row');
SELECT throws_ok(format('SELECT wsctl.get_workspace(%L)', pg_temp.id('d1')), 'WS404',
				 format('workspace %s not found', pg_temp.id('d1')), 'a deleted workspace is WS404');
SELECT is((SELECT count(*)::int FROM wsctl.list_workspaces('00000000-0000-0000-0000-00000000c003')), 0,
		  'a deleted workspace is not listed');
SELECT is((SELECT count(*)::int FROM wsctl.workspace_info WHERE id = pg_temp.id('d1')), 0,
		  'a deleted workspace is not in workspace_info');
SELECT is((SELECT count(*)::int FROM wsctl.workspaces WHERE id = pg_temp.id('d1') AND deleted_at IS NOT NULL), 1,
		  'the row itself stays (soft delete)');

-- update_workspace: only the given fields change.
DO $$ BEGIN
	PERFORM pg_temp.new('up', '00000000-0000-0000-0000-00000000c004', 'STANDBY');
	PERFORM wsctl.update_workspace(pg_temp.id('up'), description => 'd0', memo => 'm0');
END $$;
CREATE TEMP TABLE up_before AS SELECT pg_temp.row_of(pg_temp.id('up')) AS r;

SELECT is((SELECT to_jsonb(w) - 'display_status' FROM wsctl.update_workspace(pg_temp.id('up'), name => 'renamed') AS w),
		  (SELECT r || '{"name": "renamed"}' FROM up_before), 'update_workspace(name) changes only name');
SELECT is((SELECT to_jsonb(w) - 'display_status' FROM wsctl.update_workspace(pg_temp.id('up'), memo => 'm1') AS w),
		  (SELECT r || '{"name": "renamed", "memo": "m1"}' FROM up_before), 'update_workspace(memo) changes only memo');
SELECT is((SELECT to_jsonb(w) - 'display_status' FROM wsctl.update_workspace(pg_temp.id('up'), description => 'd1') AS w),
		  (SELECT r || '{"name": "renamed", "memo": "m1", "description": "d1"}' FROM up_before),
		  'update_workspace(description) changes only description');
SELECT is((SELECT to_jsonb(w) - 'display_status' FROM wsctl.update_workspace(pg_temp.id('up'), standby_ttl_seconds => 1) AS w),
		  (SELECT r || '{"name": "renamed", "memo": "m1", "description": "d1", "standby_ttl_seconds": 1}' FROM up_before),
		  'update_workspace(standby_ttl_seconds) changes only that TTL');
SELECT is((SELECT to_jsonb(w) - 'display_status'
			 FROM wsctl.update_workspace(pg_temp.id('up'), archive_ttl_seconds => 31536000) AS w),
		  (SELECT r || '{"name": "renamed", "memo": "m1", "description": "d1", "standby_ttl_seconds": 1,
						 "archive_ttl_seconds": 31536000}' FROM up_before),
		  'update_workspace(archive_ttl_seconds) changes only that TTL');
SELECT is((SELECT to_jsonb(w) - 'display_status' FROM wsctl.update_workspace(pg_temp.id('up')) AS w),
		  pg_temp.row_of(pg_temp.id('up')), 'update_workspace with no fields changes nothing');
SELECT is((SELECT (name, description, memo, standby_ttl_seconds, archive_ttl_seconds)::text
			 FROM wsctl.update_workspace(pg_temp.id('up'), 'n2', 'd2', 'm2', 2592000, 1)),
		  '(n2,d2,m2,2592000,1)', 'update_workspace with every field (positional), TTL bounds inclusive');

-- list_workspaces: one owner's live rows, oldest first (then by id).
DO $$ BEGIN
	PERFORM pg_temp.new('l1', '00000000-0000-0000-0000-00000000c005', 'STANDBY');
	PERFORM pg_temp.new('l2', '00000000-0000-0000-0000-00000000c005', 'PENDING');
	PERFORM pg_temp.new('l3', '00000000-0000-0000-0000-00000000c005', 'RUNNING');
	PERFORM pg_temp.new('l4', '00000000-0000-0000-0000-00000000c005', 'STANDBY');
	PERFORM wsctl.delete_workspace(pg_temp.id('l4'));
	PERFORM pg_temp.force('l1', archive => true);
END $$;
SELECT results_eq(
	$$SELECT id, name::text, display_status FROM wsctl.list_workspaces('00000000-0000-0000-0000-00000000c005')$$,
	$$SELECT id, k, CASE k WHEN 'l1' THEN 'ARCHIVED' ELSE 'PENDING' END FROM fx WHERE k IN ('l1', 'l2', 'l3') ORDER BY id$$,
	'list_workspaces(owner) returns the owner''s live workspaces in (created_at, id) order');
SELECT is((SELECT count(*)::int FROM wsctl.list_workspaces('00000000-0000-0000-0000-0000000000ff')), 0,
		  'list_workspaces of an owner without workspaces is empty');
SELECT set_eq($$SELECT id FROM wsctl.list_workspaces()$$,
			  $$SELECT id FROM wsctl.workspaces WHERE deleted_at IS NULL$$,
			  'list_workspaces() returns every live workspace');
SELECT set_eq($$SELECT id FROM wsctl.list_workspaces(NULL)$$, $$SELECT id FROM wsctl.workspace_info$$,
			  'list_workspaces(NULL) equals workspace_info');
SELECT is((SELECT display_status FROM wsctl.get_workspace(pg_temp.id('l1'))), 'ARCHIVED',
		  'get_workspace shows PENDING with an archive as ARCHIVED');

-- recover_workspace: clears the error and the failed operation, keeps op_id.
DO $$ BEGIN
	PERFORM pg_temp.new('r1', '00000000-0000-0000-0000-00000000c006', 'RUNNING');
	PERFORM pg_temp.force('r1', observed => 'STANDBY');
	PERFORM pg_temp.force('r1', op => 'STARTING');
	PERFORM pg_temp.as_component('reconciler', format(
		'UPDATE wsctl.workspaces SET previous_status = ''STANDBY'' WHERE id = %L', pg_temp.id('r1')));
	PERFORM pg_temp.force('r1', observed => 'ERROR',
		error => '{"reason": "RetryExceeded", "message": "image not found", "is_terminal": true, "operation": "STARTING"}');
END $$;
CREATE TEMP TABLE r1_before AS SELECT pg_temp.row_of(pg_temp.id('r1')) AS r;
CREATE TEMP TABLE r1_after AS SELECT * FROM wsctl.recover_workspace(pg_temp.id('r1'));

SELECT results_eq(
	$$SELECT error_info, error_message, error_count, operation::text, op_started_at FROM r1_after$$,
	$$VALUES (NULL::jsonb, NULL::text, 0, 'NONE', NULL::timestamptz)$$,
	'recover_workspace clears error_info, error_message, error_count, operation, op_started_at');
SELECT is((SELECT op_id FROM r1_after), (SELECT (r ->> 'op_id')::uuid FROM r1_before),
		  'recover_workspace keeps op_id (archives made under it stay protected)');
SELECT isnt((SELECT op_id FROM r1_after), NULL, '... which was set');
SELECT is((SELECT (observed_status::text, previous_status::text, desired_state::text, display_status) FROM r1_after)::text,
		  '(ERROR,STANDBY,RUNNING,ERROR)',
		  'recover_workspace leaves observed_status (the HealthMonitor re-observes), previous_status and desired_state');
SELECT is(pg_temp.row_of(pg_temp.id('r1')), (SELECT to_jsonb(a) - 'display_status' FROM r1_after AS a),
		  'the returned row is the stored row');
SELECT is((SELECT (pg_temp.row_of(pg_temp.id('r1')) - 'error_info' - 'error_message' - 'error_count' - 'operation'
				   - 'op_started_at' - 'updated_at') = (r - 'error_info' - 'error_message' - 'error_count' - 'operation'
				   - 'op_started_at' - 'updated_at') FROM r1_before),
		  true, 'recover_workspace changes nothing else');

-- Recovery of a workspace whose error is terminal but not yet observed.
DO $$ BEGIN
	PERFORM pg_temp.new('r2', '00000000-0000-0000-0000-00000000c006', 'STANDBY');
	PERFORM pg_temp.force('r2', observed => 'STANDBY',
		error => '{"reason": "Timeout", "message": "took too long", "is_terminal": true}');
END $$;
SELECT is((SELECT (error_info IS NULL, display_status) FROM wsctl.recover_workspace(pg_temp.id('r2')))::text,
		  '(t,STANDBY)', 'recover_workspace accepts a terminal error not yet observed as ERROR');

-- ===========================================================================
-- wake_workspace for every display status (SPEC 2.7, DESIGN section 4)
-- ===========================================================================

DO $$ BEGIN
	PERFORM pg_temp.new('w_run', '00000000-0000-0000-0000-00000000d001', 'RUNNING');
	PERFORM pg_temp.force('w_run', observed => 'RUNNING');
	PERFORM pg_temp.new('w_run_ttl', '00000000-0000-0000-0000-00000000d002', 'STANDBY');
	PERFORM pg_temp.force('w_run_ttl', observed => 'RUNNING');
	PERFORM pg_temp.new('w_stopping', '00000000-0000-0000-0000-00000000d003', 'STANDBY');
	PERFORM pg_temp.force('w_stopping', observed => 'RUNNING', op => 'STOPPING');
	PERFORM pg_temp.new('w_sb', '00000000-0000-0000-0000-00000000d004', 'STANDBY');
	PERFORM pg_temp.force('w_sb', observed => 'STANDBY');
	PERFORM pg_temp.new('w_sb_run', '00000000-0000-0000-0000-00000000d005', 'RUNNING');
	PERFORM pg_temp.force('w_sb_run', observed => 'STANDBY');
	PERFORM pg_temp.new('w_lim1', '00000000-0000-0000-0000-00000000d006', 'RUNNING', 'limit one');
	PERFORM pg_temp.force('w_lim1', observed => 'RUNNING');
	PERFORM pg_temp.new('w_lim2', '00000000-0000-0000-0000-00000000d006', 'RUNNING', 'limit two');
	PERFORM pg_temp.new('w_sb_limit', '00000000-0000-0000-0000-00000000d006', 'STANDBY');
	PERFORM pg_temp.force('w_sb_limit', observed => 'STANDBY');
	PERFORM pg_temp.new('w_starting', '00000000-0000-0000-0000-00000000d007', 'RUNNING');
	PERFORM pg_temp.force('w_starting', observed => 'STANDBY', op => 'STARTING');
	PERFORM pg_temp.new('w_archiving', '00000000-0000-0000-0000-00000000d008', 'STANDBY');
	PERFORM pg_temp.force('w_archiving', observed => 'STANDBY', op => 'ARCHIVING');
	PERFORM pg_temp.new('w_pend', '00000000-0000-0000-0000-00000000d009', 'STANDBY');
	PERFORM pg_temp.new('w_prov', '00000000-0000-0000-0000-00000000d00a', 'RUNNING');
	PERFORM pg_temp.force('w_prov', op => 'PROVISIONING');
	PERFORM pg_temp.new('w_arch', '00000000-0000-0000-0000-00000000d00b', 'PENDING');
	PERFORM pg_temp.force('w_arch', archive => true);
	PERFORM pg_temp.new('w_restoring', '00000000-0000-0000-0000-00000000d00c', 'RUNNING');
	PERFORM pg_temp.force('w_restoring', archive => true, op => 'RESTORING');
	PERFORM pg_temp.new('w_err', '00000000-0000-0000-0000-00000000d00d', 'RUNNING');
	PERFORM pg_temp.force('w_err', op => 'STARTING', observed => 'ERROR',
		error => '{"reason": "Timeout", "message": "start timed out", "is_terminal": true}');
	PERFORM pg_temp.new('w_err_eff', '00000000-0000-0000-0000-00000000d00e', 'RUNNING');
	PERFORM pg_temp.force('w_err_eff', observed => 'RUNNING',
		error => '{"reason": "RetryExceeded", "message": "stop failed", "is_terminal": true}');
	PERFORM pg_temp.new('w_err_dl', '00000000-0000-0000-0000-00000000d00f', 'STANDBY');
	PERFORM pg_temp.force('w_err_dl', observed => 'STANDBY');
	PERFORM pg_temp.as_component('health_monitor', format($q$UPDATE wsctl.workspaces
		SET observed_status = 'ERROR', error_info = '{"reason": "DataLost", "message": "volume gone", "is_terminal": true}'
		WHERE id = %L$q$, pg_temp.id('w_err_dl')));
END $$;

CREATE TEMP TABLE wake_expected (k text, answer jsonb, desired_after text);
INSERT INTO wake_expected VALUES
	('w_run',       '{"action": "connect", "http_status": 200, "display_status": "RUNNING", "message": "workspace is running"}', 'RUNNING'),
	('w_run_ttl',   '{"action": "connect", "http_status": 200, "display_status": "RUNNING", "message": "workspace is running"}', 'RUNNING'),
	('w_stopping',  '{"action": "wait", "http_status": 202, "display_status": "RUNNING", "message": "operation STOPPING in progress"}', 'STANDBY'),
	('w_sb',        '{"action": "wait", "http_status": 202, "display_status": "STANDBY", "message": "workspace is starting"}', 'RUNNING'),
	('w_sb_run',    '{"action": "wait", "http_status": 202, "display_status": "STANDBY", "message": "workspace is starting"}', 'RUNNING'),
	('w_starting',  '{"action": "wait", "http_status": 202, "display_status": "STANDBY", "message": "operation STARTING in progress"}', 'RUNNING'),
	('w_archiving', '{"action": "wait", "http_status": 202, "display_status": "STANDBY", "message": "operation ARCHIVING in progress"}', 'STANDBY'),
	('w_pend',      '{"action": "unavailable", "http_status": 502, "display_status": "PENDING", "message": "start required"}', 'STANDBY'),
	('w_prov',      '{"action": "wait", "http_status": 202, "display_status": "PENDING", "message": "operation PROVISIONING in progress"}', 'RUNNING'),
	('w_arch',      '{"action": "unavailable", "http_status": 502, "display_status": "ARCHIVED", "message": "restore required"}', 'PENDING'),
	('w_restoring', '{"action": "wait", "http_status": 202, "display_status": "ARCHIVED", "message": "operation RESTORING in progress"}', 'RUNNING'),
	('w_err',       '{"action": "unavailable", "http_status": 502, "display_status": "ERROR", "message": "an error occurred"}', 'RUNNING'),
	('w_err_eff',   '{"action": "unavailable", "http_status": 502, "display_status": "ERROR", "message": "an error occurred"}', 'RUNNING'),
	('w_err_dl',    '{"action": "unavailable", "http_status": 502, "display_status": "ERROR", "message": "an error occurred"}', 'STANDBY');

SELECT is(wsctl.wake_workspace(pg_temp.id(k)), answer, format('wake_workspace(%s) = %s', k, answer))
  FROM wake_expected ORDER BY k;
SELECT is(pg_temp.desired(k), desired_after, format('after wake_workspace(%s) desired_state is %s', k, desired_after))
  FROM wake_expected ORDER BY k;

SELECT is(wsctl.wake_workspace(pg_temp.id('w_sb_limit')) - 'limit',
		  '{"action": "unavailable", "http_status": 429, "display_status": "STANDBY",
			"message": "running limit reached; stop another workspace first"}',
		  'wake_workspace(STANDBY at the per-user limit) answers 429');
SELECT is((wsctl.wake_workspace(pg_temp.id('w_sb_limit')) -> 'limit') - 'running_workspaces',
		  '{"error": "workspace_limit_exceeded", "limit_type": "per_user", "current": 2, "max": 2}',
		  '... with the limit detail');
SELECT set_eq($$SELECT r ->> 'id' AS id, r ->> 'name' AS name, r ->> 'display_status' AS shown
				FROM jsonb_array_elements(wsctl.wake_workspace(pg_temp.id('w_sb_limit')) -> 'limit' -> 'running_workspaces') AS r$$,
			  $$VALUES (pg_temp.id('w_lim1')::text, 'limit one', 'RUNNING'), (pg_temp.id('w_lim2')::text, 'limit two', 'PENDING')$$,
			  '... listing the running workspaces for the information page');
SELECT is(pg_temp.desired('w_sb_limit'), 'STANDBY', '... and leaves desired_state STANDBY');

SELECT is(wsctl.wake_workspace(pg_temp.id('w_sb')), '{"action": "wait", "http_status": 202, "display_status": "STANDBY",
			"message": "workspace is starting"}', 'waking twice is idempotent');

-- ===========================================================================
-- WS404: unknown and deleted workspaces, every function taking an id
-- ===========================================================================

DO $$ BEGIN
	PERFORM pg_temp.new('gone', '00000000-0000-0000-0000-00000000e001', 'STANDBY');
	PERFORM pg_temp.force('gone', error => '{"reason": "Timeout", "message": "t", "is_terminal": true}');
	PERFORM wsctl.delete_workspace(pg_temp.id('gone'));
	-- Torn down: the HealthMonitor has observed it DELETED.
	PERFORM pg_temp.force('gone', observed => 'DELETED');
	-- Deleted, but its teardown failed: not gone yet, so recoverable.
	PERFORM pg_temp.new('stuck', '00000000-0000-0000-0000-00000000e002', 'STANDBY');
	PERFORM wsctl.delete_workspace(pg_temp.id('stuck'));
	PERFORM pg_temp.force('stuck', op => 'DELETING',
						  error => '{"reason": "RetryExceeded", "message": "volume in use", "is_terminal": true}');
END $$;

SELECT is((SELECT (operation, error_info IS NULL, deleted_at IS NOT NULL)::text
			 FROM wsctl.recover_workspace(pg_temp.id('stuck'))), '(NONE,t,t)',
		  'recover_workspace recovers a deleted workspace whose teardown failed');

SELECT is(pg_temp.outcome(format(f.call, w.id)) - 'hint',
		  jsonb_build_object('state', 'WS404', 'message', format('workspace %s not found', w.id), 'detail', w.detail),
		  format('%s on %s workspace: WS404', f.name, w.kind))
  FROM (VALUES
		('get_workspace',     'SELECT wsctl.get_workspace(%L)'),
		('set_desired_state', 'SELECT wsctl.set_desired_state(%L, ''STANDBY'')'),
		('set_desired_state RUNNING', 'SELECT wsctl.set_desired_state(%L, ''RUNNING'')'),
		('delete_workspace',  'SELECT wsctl.delete_workspace(%L)'),
		('update_workspace',  'SELECT wsctl.update_workspace(%L, name => ''x'')'),
		('recover_workspace', 'SELECT wsctl.recover_workspace(%L)'),
		('wake_workspace',    'SELECT wsctl.wake_workspace(%L)')) AS f(name, call),
	   (VALUES ('an unknown', '00000000-0000-0000-0000-0000deadbeef'::uuid, 'No workspace has this id.'),
			   ('a deleted', (SELECT id FROM fx WHERE k = 'gone'), 'The workspace was deleted.')) AS w(kind, id, detail);

SELECT is((SELECT deleted_at FROM wsctl.workspaces WHERE id = pg_temp.id('gone')), now(),
		  'delete_workspace on a deleted workspace did not touch it');

-- ===========================================================================
-- WS409: operation in progress, ERROR, recover when not in ERROR
-- ===========================================================================

DO $$ BEGIN
	PERFORM pg_temp.new('op_PROVISIONING', '00000000-0000-0000-0000-00000000f001', 'STANDBY');
	PERFORM pg_temp.force('op_PROVISIONING', op => 'PROVISIONING');
	PERFORM pg_temp.new('op_RESTORING', '00000000-0000-0000-0000-00000000f002', 'STANDBY');
	PERFORM pg_temp.force('op_RESTORING', archive => true, op => 'RESTORING');
	PERFORM pg_temp.new('op_STARTING', '00000000-0000-0000-0000-00000000f003', 'RUNNING');
	PERFORM pg_temp.force('op_STARTING', observed => 'STANDBY', op => 'STARTING');
	PERFORM pg_temp.new('op_STOPPING', '00000000-0000-0000-0000-00000000f004', 'STANDBY');
	PERFORM pg_temp.force('op_STOPPING', observed => 'RUNNING', op => 'STOPPING');
	PERFORM pg_temp.new('op_ARCHIVING', '00000000-0000-0000-0000-00000000f005', 'PENDING');
	PERFORM pg_temp.force('op_ARCHIVING', observed => 'STANDBY', op => 'ARCHIVING');
END $$;

SELECT is(pg_temp.outcome(format('SELECT wsctl.set_desired_state(%L, %L)', pg_temp.id('op_' || op), d)),
		  jsonb_build_object('state', 'WS409',
							 'message', format('workspace %s has operation %s in progress', pg_temp.id('op_' || op), op),
							 'detail', '',
							 'hint', 'Operations cannot be interrupted; retry when the operation has finished.'),
		  format('set_desired_state(%s) during %s: WS409', d, op))
  FROM unnest(ARRAY['PROVISIONING', 'RESTORING', 'STARTING', 'STOPPING', 'ARCHIVING']) AS op,
	   unnest(ARRAY['PENDING', 'STANDBY', 'RUNNING']) AS d
 ORDER BY op, d;

SELECT is(pg_temp.outcome(format('SELECT wsctl.delete_workspace(%L)', pg_temp.id('op_' || op))) - 'detail' - 'hint',
		  jsonb_build_object('state', 'WS409',
							 'message', format('workspace %s has operation %s in progress', pg_temp.id('op_' || op), op)),
		  format('delete_workspace during %s: WS409', op))
  FROM unnest(ARRAY['PROVISIONING', 'RESTORING', 'STARTING', 'STOPPING', 'ARCHIVING']) AS op;

SELECT is((SELECT count(*)::int FROM wsctl.workspaces WHERE id IN (SELECT id FROM fx WHERE k LIKE 'op\_%')
			AND deleted_at IS NULL), 5, 'the refused deletes deleted nothing');

-- ERROR: observed ERROR (and effective ERROR: terminal error not yet observed).
DO $$ BEGIN
	PERFORM pg_temp.new('e_obs', '00000000-0000-0000-0000-00000000f101', 'RUNNING');
	PERFORM pg_temp.force('e_obs', observed => 'ERROR',
		error => '{"reason": "RetryExceeded", "message": "image not found", "is_terminal": true}');
	PERFORM pg_temp.new('e_eff', '00000000-0000-0000-0000-00000000f102', 'STANDBY');
	PERFORM pg_temp.force('e_eff', observed => 'STANDBY',
		error => '{"reason": "Timeout", "message": "archive timed out", "is_terminal": true}');
	PERFORM pg_temp.new('e_kept_op', '00000000-0000-0000-0000-00000000f103', 'RUNNING');
	PERFORM pg_temp.force('e_kept_op', observed => 'STANDBY', op => 'STARTING');
	PERFORM pg_temp.force('e_kept_op', observed => 'ERROR',
		error => '{"reason": "Timeout", "message": "start timed out", "is_terminal": true}');
	PERFORM pg_temp.new('e_retrying', '00000000-0000-0000-0000-00000000f104', 'STANDBY');
	PERFORM pg_temp.force('e_retrying', observed => 'STANDBY',
		error => '{"reason": "Unreachable", "message": "docker down", "is_terminal": false}');
END $$;

SELECT is(pg_temp.outcome(format('SELECT wsctl.set_desired_state(%L, %L)', pg_temp.id(e.k), d)),
		  jsonb_build_object('state', 'WS409', 'message', format('workspace %s is in ERROR', pg_temp.id(e.k)),
							 'detail', e.detail,
							 'hint', 'An administrator recovers it with wsctl.recover_workspace(); it can still be deleted.'),
		  format('set_desired_state(%s) on %s: WS409 ERROR', d, e.k))
  FROM (VALUES ('e_obs', 'RetryExceeded: image not found'), ('e_eff', 'Timeout: archive timed out'),
			   ('e_kept_op', 'Timeout: start timed out')) AS e(k, detail),
	   unnest(ARRAY['PENDING', 'STANDBY', 'RUNNING']) AS d
 ORDER BY e.k, d;

-- An invariant violation recorded by the HealthMonitor: it may write
-- error_info but not error_message (ownership.sql), so the refusal must
-- take the reason's message from error_info.
DO $$ BEGIN
	PERFORM pg_temp.new('e_hm', '00000000-0000-0000-0000-00000000f105', 'STANDBY');
	PERFORM pg_temp.force('e_hm', observed => 'STANDBY');
	PERFORM pg_temp.as_component('health_monitor', format($q$UPDATE wsctl.workspaces
		SET observed_status = 'ERROR', error_info = '{"reason": "DataLost", "message": "volume gone", "is_terminal": true}'
		WHERE id = %L$q$, pg_temp.id('e_hm')));
END $$;
SELECT is((SELECT error_message FROM wsctl.workspaces WHERE id = pg_temp.id('e_hm')), NULL,
		  'a HealthMonitor-recorded DataLost leaves error_message NULL');
SELECT is(pg_temp.outcome(format('SELECT wsctl.set_desired_state(%L, ''RUNNING'')', pg_temp.id('e_hm'))) ->> 'detail',
		  'DataLost: volume gone',
		  'WS409 DETAIL for a HealthMonitor-recorded error gives its reason and message');

-- Archiving needs object storage: refused (0A000) only when no endpoint is configured.
SELECT is(pg_temp.outcome(format('SELECT wsctl.set_desired_state(%L, ''PENDING'')', pg_temp.id('e_retrying'))) ->> 'state',
		  CASE WHEN current_setting('wsctl.s3_endpoint') = '' THEN '0A000' ELSE 'ok' END,
		  'asking a STANDBY workspace for PENDING (archiving): 0A000 without wsctl.s3_endpoint, accepted with one');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state(pg_temp.id('e_retrying'), 'RUNNING')), 'RUNNING',
		  'a non-terminal error_info (retrying) does not block requests');

SELECT is((SELECT (deleted_at IS NOT NULL, display_status) FROM wsctl.delete_workspace(pg_temp.id(k)))::text,
		  format('(t,%s)', shown), format('delete_workspace is allowed in ERROR (%s)', k))
  FROM (VALUES ('e_obs', 'ERROR'), ('e_eff', 'ERROR'), ('e_kept_op', 'ERROR')) AS t(k, shown);
SELECT is((SELECT operation::text FROM wsctl.workspaces WHERE id = pg_temp.id('e_kept_op')), 'STARTING',
		  'deleting an ERROR workspace keeps its failed operation (the reconciler takes over)');

-- recover_workspace of a workspace not in ERROR.
DO $$ BEGIN
	PERFORM pg_temp.new('nr_pending', '00000000-0000-0000-0000-00000000f201', 'STANDBY');
	PERFORM pg_temp.new('nr_standby', '00000000-0000-0000-0000-00000000f202', 'STANDBY');
	PERFORM pg_temp.force('nr_standby', observed => 'STANDBY');
	PERFORM pg_temp.new('nr_running', '00000000-0000-0000-0000-00000000f203', 'RUNNING');
	PERFORM pg_temp.force('nr_running', observed => 'RUNNING', op => 'STOPPING');
	PERFORM pg_temp.new('nr_archived', '00000000-0000-0000-0000-00000000f204', 'PENDING');
	PERFORM pg_temp.force('nr_archived', archive => true);
	PERFORM pg_temp.new('nr_retrying', '00000000-0000-0000-0000-00000000f205', 'STANDBY');
	PERFORM pg_temp.force('nr_retrying', observed => 'STANDBY', op => 'STARTING',
		error => '{"reason": "Mismatch", "message": "not yet", "is_terminal": false}');
END $$;

SELECT is(pg_temp.outcome(format('SELECT wsctl.recover_workspace(%L)', pg_temp.id(k))) - 'hint',
		  jsonb_build_object('state', 'WS409', 'message', format('workspace %s is not in ERROR', pg_temp.id(k)),
							 'detail', format('Its status is %s.', shown)),
		  format('recover_workspace of %s: WS409 not in ERROR', k))
  FROM (VALUES ('nr_pending', 'PENDING'), ('nr_standby', 'STANDBY'), ('nr_running', 'RUNNING'),
			   ('nr_archived', 'ARCHIVED'), ('nr_retrying', 'STANDBY')) AS t(k, shown);
SELECT is((SELECT (operation, error_count)::text FROM wsctl.workspaces WHERE id = pg_temp.id('nr_retrying')),
		  '(STARTING,4)', 'a refused recover changed nothing');

-- ===========================================================================
-- WS422: invalid input
-- ===========================================================================

CREATE FUNCTION pg_temp.create_outcome(nm text, image text DEFAULT 'busybox', desired text DEFAULT 'STANDBY',
									   descr text DEFAULT NULL, mem text DEFAULT NULL,
									   standby int DEFAULT 300, archive int DEFAULT 86400,
									   owner uuid DEFAULT '00000000-0000-0000-0000-0000000fa001')
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text;
	w  wsctl.workspace_info;
BEGIN
	SELECT * INTO w FROM wsctl.create_workspace(owner, nm, image, desired::wsctl.status, descr, mem, standby, archive);
	RETURN jsonb_build_object('state', 'ok', 'name', w.name, 'image_ref', w.image_ref,
							  'description', w.description, 'memo', w.memo, 'id', w.id);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN jsonb_build_object('state', st, 'message', msg);
END
$$;

-- Names.
SELECT is(pg_temp.create_outcome(nm) - 'id',
		  CASE WHEN expected LIKE 'invalid%' THEN jsonb_build_object('state', 'WS422', 'message', expected)
			   ELSE jsonb_build_object('state', 'ok', 'name', nm, 'image_ref', 'busybox',
									   'description', NULL, 'memo', NULL) END,
		  format('create_workspace name %s: %s', description, CASE WHEN expected LIKE 'invalid%' THEN 'WS422' ELSE 'accepted' END))
  FROM (VALUES
	(NULL,                    'NULL',               'invalid name: must not be NULL'),
	('',                      'empty',              'invalid name: must not be empty'),
	(' ',                     'one space',          'invalid name: must not be empty'),
	('          ',            'spaces only',        'invalid name: must not be empty'),
	(repeat('n', 256),        '256 characters',     'invalid name: is 256 characters long; the maximum is 255'),
	(repeat('한', 256),        '256 Korean characters', 'invalid name: is 256 characters long; the maximum is 255'),
	(repeat('n', 255),        '255 characters',     'ok'),
	(repeat('한', 255),        '255 Korean characters (765 bytes)', 'ok'),
	(repeat('🚀', 255),       '255 emoji (1020 bytes)', 'ok'),
	('x',                     'one character',      'ok'),
	(' padded ',              'with surrounding spaces', 'ok'),
	(E'line\nbreak',          'with a newline',     'invalid name: must not contain control characters'),
	(E'carriage\rreturn',     'with a carriage return', 'invalid name: must not contain control characters'),
	(E'tab\there',            'with a tab',         'invalid name: must not contain control characters'),
	(E'\t',                   'a single tab',       'invalid name: must not be empty'),
	(E'bell\x07',             'with BEL',           'invalid name: must not contain control characters'),
	(E'esc\x1b[31mred',       'with an ANSI escape', 'invalid name: must not contain control characters'),
	(E'del\x7f',              'with DEL',           'invalid name: must not contain control characters'),
	(E'nel\u0085',            'with NEL (C1 control)', 'invalid name: must not contain control characters'),
	(E'\u3000\u3000',         'ideographic spaces only (U+3000)', 'invalid name: must not be empty'),
	(E'\u00a0',               'a no-break space only (U+00A0)', 'invalid name: must not be empty')
	) AS t(nm, description, expected);

-- Images.
SELECT is(pg_temp.create_outcome('img', image) ->> 'state', 'ok', format('image_ref %s accepted', left(image, 40)))
  FROM unnest(ARRAY['busybox', 'debian:12', 'localhost:5000/team/app:dev', 'ghcr.io/acme/dev@sha256:' || repeat('a', 64),
					repeat('a/', 255) || 'ab']) AS image;
SELECT is(pg_temp.create_outcome('img', image) ->> 'message', 'invalid image_ref: is not a valid image reference',
		  format('image_ref %s: WS422', to_json(image)::text))
  FROM unnest(ARRAY['', 'Ubuntu', 'ubuntu:', ':latest', 'ubuntu latest', 'ubuntu//app', 'ubuntu@sha256:abc',
					E'debian:12\n', 'debian;rm -rf /', '$(reboot)', 'http://registry/app', '-ubuntu']) AS image;
SELECT is(pg_temp.outcome($$SELECT wsctl.create_workspace(gen_random_uuid(), 'x', 'Not An Image')$$) ->> 'hint',
		  'Use the form [registry[:port]/]name[:tag][@sha256:digest], e.g. debian:12.',
		  'a malformed image_ref refusal shows the expected form');
SELECT is(pg_temp.create_outcome('img', repeat('a/', 256) || 'a'),
		  '{"state": "WS422", "message": "invalid image_ref: is 513 characters long; the maximum is 512"}',
		  'image_ref of 513 characters: WS422 naming the length');
SELECT is(pg_temp.create_outcome('img', repeat('a', 10000)),
		  '{"state": "WS422", "message": "invalid image_ref: is 10000 characters long; the maximum is 512"}',
		  'image_ref of 10000 characters: WS422');
SELECT is(pg_temp.create_outcome('img', NULL),
		  '{"state": "WS422", "message": "invalid image_ref: must not be NULL"}', 'image_ref NULL: WS422');

-- Owner, desired state.
SELECT is(pg_temp.create_outcome('x', owner => NULL),
		  '{"state": "WS422", "message": "invalid owner_user_id: must not be NULL"}', 'owner_user_id NULL: WS422');
SELECT is(pg_temp.create_outcome('x', desired => NULL),
		  '{"state": "WS422", "message": "invalid desired_state: must not be NULL"}', 'create desired_state NULL: WS422');
SELECT is(pg_temp.create_outcome('x', desired => d),
		  jsonb_build_object('state', 'WS422', 'message', format('invalid desired_state: %s cannot be requested', d)),
		  format('create with desired_state %s: WS422', d))
  FROM unnest(ARRAY['ERROR', 'DELETED']) AS d;

-- TTLs.
SELECT is(pg_temp.create_outcome('x', standby => v) ->> 'message', expected,
		  format('standby_ttl_seconds %s: %s', coalesce(v::text, 'NULL'), coalesce(expected, 'accepted')))
  FROM (VALUES (NULL::int, 'invalid standby_ttl_seconds: must not be NULL'),
			   (-1, 'invalid standby_ttl_seconds: -1 is out of range'),
			   (0, 'invalid standby_ttl_seconds: 0 is out of range'),
			   (1, NULL), (2592000, NULL),
			   (2592001, 'invalid standby_ttl_seconds: 2592001 is out of range'),
			   (2147483647, 'invalid standby_ttl_seconds: 2147483647 is out of range'),
			   (-2147483648, 'invalid standby_ttl_seconds: -2147483648 is out of range')) AS t(v, expected);
SELECT is(pg_temp.create_outcome('x', archive => v) ->> 'message', expected,
		  format('archive_ttl_seconds %s: %s', coalesce(v::text, 'NULL'), coalesce(expected, 'accepted')))
  FROM (VALUES (NULL::int, 'invalid archive_ttl_seconds: must not be NULL'),
			   (-1, 'invalid archive_ttl_seconds: -1 is out of range'),
			   (0, 'invalid archive_ttl_seconds: 0 is out of range'),
			   (1, NULL), (31536000, NULL),
			   (31536001, 'invalid archive_ttl_seconds: 31536001 is out of range')) AS t(v, expected);
SELECT is(pg_temp.outcome($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-0000000fa001', 'x', 'busybox',
						 'STANDBY', standby_ttl_seconds => 0)$$) ->> 'hint',
		  'Use a value from 1 to 2592000.', 'a TTL refusal says the allowed range');
SELECT is(pg_temp.create_outcome('x', standby => 0, archive => 0) ->> 'state', 'WS422', 'both TTLs invalid: WS422');

-- Description and memo lengths.
SELECT is(pg_temp.create_outcome('x', descr => repeat('d', 4096)) ->> 'state', 'ok', 'description of 4096 characters accepted');
SELECT is(pg_temp.create_outcome('x', descr => repeat('d', 4097)) ->> 'message',
		  'invalid description: is 4097 characters long; the maximum is 4096', 'description of 4097 characters: WS422');
SELECT is(pg_temp.create_outcome('x', mem => repeat('m', 65536)) ->> 'state', 'ok', 'memo of 65536 characters accepted');
SELECT is(pg_temp.create_outcome('x', mem => repeat('m', 65537)) ->> 'message',
		  'invalid memo: is 65537 characters long; the maximum is 65536', 'memo of 65537 characters: WS422');
SELECT is(pg_temp.create_outcome('x', descr => repeat('설', 4096)) ->> 'state', 'ok',
		  'description limit counts characters, not bytes (4096 Korean characters)');

-- NULL workspace ids.
SELECT throws_ok(call, 'WS422', 'invalid workspace_id: must not be NULL', format('%s: WS422', call))
  FROM unnest(ARRAY[
	'SELECT wsctl.get_workspace(NULL)',
	'SELECT wsctl.set_desired_state(NULL, ''STANDBY'')',
	'SELECT wsctl.set_desired_state(NULL, ''RUNNING'')',
	'SELECT wsctl.delete_workspace(NULL)',
	'SELECT wsctl.update_workspace(NULL, name => ''x'')',
	'SELECT wsctl.recover_workspace(NULL)',
	'SELECT wsctl.wake_workspace(NULL)']) AS call;

-- set_desired_state arguments.
DO $$ BEGIN PERFORM pg_temp.new('v1', '00000000-0000-0000-0000-0000000fa002', 'STANDBY'); END $$;
SELECT throws_ok(format('SELECT wsctl.set_desired_state(%L, %L)', pg_temp.id('v1'), d), 'WS422',
				 format('invalid desired_state: %s cannot be requested', d),
				 format('set_desired_state(%s): WS422', d))
  FROM unnest(ARRAY['ERROR', 'DELETED']) AS d;
SELECT throws_ok(format('SELECT wsctl.set_desired_state(%L, NULL)', pg_temp.id('v1')), 'WS422',
				 'invalid desired_state: must not be NULL', 'set_desired_state(NULL desired): WS422');
SELECT is(pg_temp.outcome(format('SELECT wsctl.set_desired_state(%L, ''DELETED'')', pg_temp.id('v1'))) ->> 'hint',
		  'Request PENDING, STANDBY or RUNNING; use delete_workspace() to delete.',
		  'the DELETED refusal points to delete_workspace()');
SELECT throws_ok(format('SELECT wsctl.set_desired_state(%L, ''STOPPED'')', pg_temp.id('v1')), '22P02', NULL,
				 'an unknown desired state is not even a wsctl.status (22P02)');

-- update_workspace arguments.
CREATE TEMP TABLE v1_before AS SELECT pg_temp.row_of(pg_temp.id('v1')) AS r;
SELECT throws_ok(format('SELECT wsctl.update_workspace(%L, %s)', pg_temp.id('v1'), args), 'WS422', message,
				 format('update_workspace(%s): WS422', left(args, 60)))
  FROM (VALUES
	($a$name => ''$a$, 'invalid name: must not be empty'),
	($a$name => '   '$a$, 'invalid name: must not be empty'),
	($a$name => repeat('n', 256)$a$, 'invalid name: is 256 characters long; the maximum is 255'),
	($a$name => E'a\nb'$a$, 'invalid name: must not contain control characters'),
	($a$description => repeat('d', 4097)$a$, 'invalid description: is 4097 characters long; the maximum is 4096'),
	($a$memo => repeat('m', 65537)$a$, 'invalid memo: is 65537 characters long; the maximum is 65536'),
	($a$standby_ttl_seconds => 0$a$, 'invalid standby_ttl_seconds: 0 is out of range'),
	($a$standby_ttl_seconds => -5$a$, 'invalid standby_ttl_seconds: -5 is out of range'),
	($a$standby_ttl_seconds => 2592001$a$, 'invalid standby_ttl_seconds: 2592001 is out of range'),
	($a$archive_ttl_seconds => 0$a$, 'invalid archive_ttl_seconds: 0 is out of range'),
	($a$archive_ttl_seconds => 31536001$a$, 'invalid archive_ttl_seconds: 31536001 is out of range'),
	($a$name => 'ok', memo => repeat('m', 65537)$a$, 'invalid memo: is 65537 characters long; the maximum is 65536')
	) AS t(args, message);
SELECT is(pg_temp.row_of(pg_temp.id('v1')), (SELECT r FROM v1_before), 'the refused updates changed nothing');

-- ===========================================================================
-- Hostile strings: stored and read back byte for byte, or WS422
-- ===========================================================================

CREATE TEMP TABLE hostile (label text, s text);
INSERT INTO hostile VALUES
	('single quote',        'O''Reilly''s '' workspace'),
	('double quotes',       '"quoted" "name"'),
	('semicolons',          'a; b; c;'),
	('SQL injection',       '''); DROP TABLE wsctl.workspaces; --'),
	('SQL injection 2',     'x''); DELETE FROM wsctl.workspaces; SELECT (''1'),
	('comment',             '/* comment */ -- line'),
	('backslashes',         'C:\new\table\\ \x00 \'''),
	('dollar quotes',       '$$ $body$ $1 $$; DROP TABLE wsctl.workspaces; $$'),
	('format specifiers',   '%s %I %L %% %1$s'),
	('HTML',                '<script>alert("x")</script>&amp;'),
	('JSON',                '{"action": "connect", "id": null}'),
	('Korean',              '한국어 작업 공간 이름'),
	('emoji',               '🚀 rocket 👩‍💻 dev 🇰🇷'),
	('combining marks',     E'e\u0301 vs \u00e9'),
	('right-to-left',       E'abc \u202e fed'),
	('zero-width',          E'a\u200bb\ufeffc'),
	('high plane',          E'\U0001F600\U00010348'),
	('LIKE wildcards',      '%_\%\_'),
	('regex',               '^.*$[a-z]+(?:x)|\d'),
	('enum label',          'RUNNING'),
	('uuid-like',           '00000000-0000-0000-0000-000000000000');

-- As name, description and memo at once (all of these are valid names).
CREATE TEMP TABLE hostile_made AS
SELECT h.label, h.s, pg_temp.create_outcome(h.s, descr => h.s, mem => h.s,
											owner => '00000000-0000-0000-0000-0000000fb001') AS o
  FROM hostile AS h;

SELECT is((SELECT name::text FROM wsctl.get_workspace((o ->> 'id')::uuid)), s,
		  format('hostile name (%s) stored and read back identical', label))
  FROM hostile_made ORDER BY label;
SELECT is((SELECT convert_to(description, 'UTF8') = convert_to(s, 'UTF8')
				  AND convert_to(memo, 'UTF8') = convert_to(s, 'UTF8')
			 FROM wsctl.get_workspace((o ->> 'id')::uuid)),
		  true, format('hostile description and memo (%s) stored byte for byte', label))
  FROM hostile_made ORDER BY label;

-- Through update_workspace as well, and through the list.
SELECT is((SELECT memo FROM wsctl.update_workspace(pg_temp.id('v1'), memo => s)), s,
		  format('update_workspace stores a hostile memo (%s)', label))
  FROM hostile WHERE label IN ('SQL injection', 'dollar quotes', 'backslashes', 'emoji') ORDER BY label;
SELECT is((SELECT name::text FROM wsctl.update_workspace(pg_temp.id('v1'), name => s)), s,
		  format('update_workspace stores a hostile name (%s)', label))
  FROM hostile WHERE label IN ('SQL injection 2', 'single quote', 'Korean') ORDER BY label;
SELECT set_eq($$SELECT name::text FROM wsctl.list_workspaces('00000000-0000-0000-0000-0000000fb001')$$,
			  $$SELECT s FROM hostile$$, 'list_workspaces returns every hostile name unchanged');

-- As an image reference: always refused.
SELECT is(pg_temp.create_outcome('x', image => s) ->> 'state', 'WS422', format('hostile image_ref (%s): WS422', label))
  FROM hostile WHERE label NOT IN ('enum label', 'uuid-like') ORDER BY label;

-- Line breaks and tabs are fine in description and memo (not in a name).
SELECT is((SELECT (description, memo)::text FROM wsctl.get_workspace(
			(pg_temp.create_outcome('multi-line', descr => E'line 1\nline 2\ttab', mem => E'a\r\nb\\n') ->> 'id')::uuid)),
		  (ROW(E'line 1\nline 2\ttab', E'a\r\nb\\n'))::text, 'control characters are kept in description and memo');

-- A 1 MB string: refused wherever it cannot fit, never truncated.
CREATE TEMP TABLE megabyte AS SELECT repeat('0123456789abcdef', 65536) AS s;
SELECT is(octet_length((SELECT s FROM megabyte)), 1048576, 'the test string is 1 MB');
SELECT is(pg_temp.create_outcome((SELECT s FROM megabyte)) ->> 'message',
		  'invalid name: is 1048576 characters long; the maximum is 255', '1 MB name: WS422');
SELECT is(pg_temp.create_outcome('x', descr => (SELECT s FROM megabyte)) ->> 'message',
		  'invalid description: is 1048576 characters long; the maximum is 4096', '1 MB description: WS422');
SELECT is(pg_temp.create_outcome('x', mem => (SELECT s FROM megabyte)) ->> 'message',
		  'invalid memo: is 1048576 characters long; the maximum is 65536', '1 MB memo: WS422');
SELECT is(pg_temp.create_outcome('x', image => (SELECT s FROM megabyte)) ->> 'message',
		  'invalid image_ref: is 1048576 characters long; the maximum is 512', '1 MB image_ref: WS422');
SELECT throws_ok(format('SELECT wsctl.update_workspace(%L, memo => (SELECT s FROM megabyte))', pg_temp.id('v1')),
				 'WS422', 'invalid memo: is 1048576 characters long; the maximum is 65536', '1 MB memo via update_workspace: WS422');
SELECT throws_ok(format('SELECT wsctl.update_workspace(%L, name => (SELECT s FROM megabyte))', pg_temp.id('v1')),
				 'WS422', 'invalid name: is 1048576 characters long; the maximum is 255', '1 MB name via update_workspace: WS422');

SELECT has_table('wsctl', 'workspaces', 'wsctl.workspaces still exists after the hostile strings');
SELECT cmp_ok((SELECT count(*)::int FROM wsctl.workspaces), '>', 100, 'and still holds every workspace made in this file');

SELECT * FROM finish();
ROLLBACK;
