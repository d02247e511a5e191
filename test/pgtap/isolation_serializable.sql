-- test/pgtap/isolation_serializable.sql: running-slot claims refuse SERIALIZABLE too.
--
-- isolation_level.sql covers every API path under REPEATABLE READ; the
-- check is one comparison with READ COMMITTED, so this file only shows
-- that SERIALIZABLE takes the same path. One SERIALIZABLE transaction.

BEGIN ISOLATION LEVEL SERIALIZABLE;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;
SELECT plan(4);

SELECT is(current_setting('transaction_isolation'), 'serializable', 'this file runs in SERIALIZABLE');
SELECT throws_ok($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-00000000aa01', 'sr', 'busybox')$$,
				 '0A000', 'running-slot claims require READ COMMITTED isolation',
				 'create_workspace(desired RUNNING) in SERIALIZABLE: 0A000');
CREATE TEMP TABLE made AS
SELECT id FROM wsctl.create_workspace('00000000-0000-0000-0000-00000000aa01', 'standby', 'busybox', 'STANDBY');
SELECT is((SELECT count(*)::int FROM made), 1, 'create_workspace(desired STANDBY) works in SERIALIZABLE');
SELECT throws_ok(format('SELECT wsctl.set_desired_state(%L, ''RUNNING'')', (SELECT id FROM made)),
				 '0A000', 'running-slot claims require READ COMMITTED isolation',
				 'set_desired_state(RUNNING) in SERIALIZABLE: 0A000');

SELECT * FROM finish();
ROLLBACK;
