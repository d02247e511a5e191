-- test/pgtap/isolation_level.sql: running-slot claims refuse REPEATABLE READ.
--
-- The running limits are enforced by counting under an advisory lock; that
-- is only sound when each statement takes a fresh snapshot (READ COMMITTED,
-- SPEC 9.6, DESIGN section 4). A caller in a REPEATABLE READ transaction
-- could count from a stale snapshot, so every API path that claims a slot
-- (create RUNNING, set_desired_state RUNNING, wake_workspace) refuses with
-- SQLSTATE 0A000, while calls that claim nothing still work.
-- This whole file is one REPEATABLE READ transaction.

BEGIN ISOLATION LEVEL REPEATABLE READ;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(17);

SELECT is(current_setting('transaction_isolation'), 'repeatable read', 'this file runs in REPEATABLE READ');

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

SELECT is(pg_temp.outcome($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000aa01', 'rr', 'busybox')$$),
		  '{"state": "0A000", "message": "running-slot claims require READ COMMITTED isolation",
			"detail": "The transaction runs at REPEATABLE READ, whose snapshot could miss a concurrent claim.",
			"hint": "Call the wsctl API outside REPEATABLE READ and SERIALIZABLE transactions."}',
		  'create_workspace(desired RUNNING) in REPEATABLE READ: 0A000 with DETAIL and HINT');
SELECT throws_ok($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000aa01', 'rr', 'busybox', 'RUNNING')$$,
				 '0A000', 'running-slot claims require READ COMMITTED isolation',
				 'create_workspace with explicit RUNNING: 0A000');
SELECT is((SELECT count(*)::int FROM wsctl.workspaces), 0, 'the refused creates inserted nothing');

-- Requests that claim no slot still work.
CREATE TEMP TABLE made AS
SELECT id FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000aa01', 'standby', 'busybox', 'STANDBY');
SELECT is((SELECT count(*)::int FROM made), 1, 'create_workspace(desired STANDBY) works in REPEATABLE READ');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state((SELECT id FROM made), 'PENDING')), 'PENDING',
		  'set_desired_state(PENDING) works in REPEATABLE READ');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state((SELECT id FROM made), 'STANDBY')), 'STANDBY',
		  'set_desired_state(STANDBY) works in REPEATABLE READ');
SELECT is((SELECT name::text FROM wsctl.update_workspace((SELECT id FROM made), name => 'renamed')), 'renamed',
		  'update_workspace works in REPEATABLE READ');
SELECT is((SELECT name::text FROM wsctl.get_workspace((SELECT id FROM made))), 'renamed',
		  'get_workspace works in REPEATABLE READ');

-- Slot claims are refused.
SELECT throws_ok(format('SELECT wsctl.set_desired_state(%L, ''RUNNING'')', (SELECT id FROM made)),
				 '0A000', 'running-slot claims require READ COMMITTED isolation',
				 'set_desired_state(RUNNING) in REPEATABLE READ: 0A000');
SELECT is((SELECT desired_state::text FROM wsctl.workspaces WHERE id = (SELECT id FROM made)), 'STANDBY',
		  '... and desired_state is unchanged');

-- wake_workspace takes the slot lock for every workspace.
DO $$ BEGIN
	PERFORM set_config('wsctl.component', 'health_monitor', true);
	UPDATE wsctl.workspaces SET observed_status = 'STANDBY' WHERE id = (SELECT id FROM made);
	PERFORM set_config('wsctl.component', '', true);
END $$;
SELECT throws_ok(format('SELECT wsctl.wake_workspace(%L)', (SELECT id FROM made)),
				 '0A000', 'running-slot claims require READ COMMITTED isolation',
				 'wake_workspace of a STANDBY workspace in REPEATABLE READ: 0A000');
SELECT is((SELECT desired_state::text FROM wsctl.workspaces WHERE id = (SELECT id FROM made)), 'STANDBY',
		  '... and the workspace is not woken');

-- Even a request that would be idempotent is refused before the row is read.
DO $$ BEGIN
	PERFORM set_config('wsctl.component', 'api', true);
	INSERT INTO wsctl.workspaces (id, owner_user_id, name, image_ref, home_store_key, desired_state)
	VALUES ('00000000-0000-0000-0000-00000000aa02', '00000000-0000-0000-0000-00000000aa01', 'runs', 'busybox',
			'ws-00000000-0000-0000-0000-00000000aa02-home', 'RUNNING');
	PERFORM set_config('wsctl.component', '', true);
END $$;
SELECT throws_ok($$SELECT wsctl.set_desired_state('00000000-0000-0000-0000-00000000aa02', 'RUNNING')$$,
				 '0A000', 'running-slot claims require READ COMMITTED isolation',
				 'set_desired_state(RUNNING) on a workspace already desired RUNNING: 0A000 too');
SELECT throws_ok($$SELECT wsctl.set_desired_state('00000000-0000-0000-0000-0000deadbeef', 'RUNNING')$$,
				 '0A000', 'running-slot claims require READ COMMITTED isolation',
				 'set_desired_state(RUNNING) of an unknown id: the isolation check comes first');

-- Deleting needs no slot.
SELECT is((SELECT deleted_at IS NOT NULL FROM wsctl.delete_workspace('00000000-0000-0000-0000-00000000aa02')), true,
		  'delete_workspace works in REPEATABLE READ');
SELECT is(current_setting('transaction_isolation'), 'repeatable read', 'still REPEATABLE READ at the end');

SELECT * FROM finish();
ROLLBACK;
