-- test/pgtap/outbox.sql: the outbox wsctl.events and the EventListener's
-- SQL steps (issue 10, outbox part), without workers or Redis.
--
-- Covers: one row per change, written in the changing transaction (a
-- rollback leaves none); the payload; ids assigned by _sequence_events in
-- insertion order, never at insert; _events_to_ship after the cursor and
-- _events_shipped; pruning by age and only once shipped; workspace_history;
-- who may read and write the outbox.

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(26);

CREATE TEMP TABLE t (k text PRIMARY KEY, id uuid);
INSERT INTO t SELECT 'a', (wsctl.create_workspace('00000000-0000-0000-0000-0000000000f1', 'outbox-a', 'busybox', 'STANDBY')).id;

SELECT is((SELECT count(*) FROM wsctl.events e JOIN t ON t.id = e.workspace_id), 1::bigint,
		  'create_workspace wrote one event');
SELECT is((SELECT payload ->> 'owner_user_id' FROM wsctl.events e JOIN t ON t.id = e.workspace_id),
		  '00000000-0000-0000-0000-0000000000f1', '  its payload names the owner');
SELECT is((SELECT payload ->> 'event' FROM wsctl.events e JOIN t ON t.id = e.workspace_id),
		  'state_changed', '  it is a state_changed event');
SELECT ok((SELECT e.id IS NULL FROM wsctl.events e JOIN t ON t.id = e.workspace_id),
		  '  it has no public id yet (ids are assigned in commit order)');

SAVEPOINT before_change;
SELECT wsctl.set_desired_state(id, 'RUNNING') FROM t WHERE k = 'a';
SELECT is((SELECT count(*) FROM wsctl.events e JOIN t ON t.id = e.workspace_id), 2::bigint,
		  'set_desired_state wrote a second event');
ROLLBACK TO SAVEPOINT before_change;
SELECT is((SELECT count(*) FROM wsctl.events e JOIN t ON t.id = e.workspace_id), 1::bigint,
		  '  which a rollback takes back');

SELECT wsctl.update_workspace(id, memo => 'not an event') FROM t WHERE k = 'a';
SELECT is((SELECT count(*) FROM wsctl.events e JOIN t ON t.id = e.workspace_id), 1::bigint,
		  'a change of memo is no event');
SELECT wsctl.set_desired_state(id, 'RUNNING') FROM t WHERE k = 'a';
SELECT wsctl.set_desired_state(id, 'STANDBY') FROM t WHERE k = 'a';
SELECT is((SELECT count(*) FROM wsctl.events e JOIN t ON t.id = e.workspace_id), 3::bigint,
		  'two desired_state changes: three events');

-- The EventListener's steps.
SELECT is(wsctl._sequence_events(1000) >= 3, true, '_sequence_events numbers them');
SELECT is((SELECT bool_and(ok) FROM (SELECT id > lag(id, 1, 0::bigint) OVER (ORDER BY entry) AS ok
										FROM wsctl.events) s), true,
		  '  in insertion order');
SELECT is(wsctl._sequence_events(1000), 0, '  and numbers nothing twice');
SELECT is((SELECT count(*) FROM wsctl._events_to_ship(1000)), (SELECT count(*) FROM wsctl.events),
		  '_events_to_ship: everything after cursor 0');
SELECT is((SELECT (payload::jsonb ->> 'id')::bigint = id FROM wsctl._events_to_ship(1) LIMIT 1), true,
		  '  the shipped payload carries its id');
SELECT wsctl._events_shipped((SELECT max(id) - 1 FROM wsctl.events));
SELECT is((SELECT count(*) FROM wsctl._events_to_ship(1000)), 1::bigint,
		  '_events_shipped(max - 1): one event left to ship');
SELECT wsctl._events_shipped(1);
SELECT is((SELECT last_shipped FROM wsctl.event_cursor WHERE sink = 'redis'), (SELECT max(id) - 1 FROM wsctl.events),
		  '  the cursor never moves back');

-- Pruning: old and shipped only.
UPDATE wsctl.events SET created_at = now() - interval '30 days';
SELECT is(wsctl._prune_events(), (SELECT count(*) - 1 FROM wsctl.events),
		  '_prune_events removes old shipped events');
SELECT is((SELECT count(*) FROM wsctl.events), 1::bigint, '  and keeps the one not shipped yet');
SELECT wsctl._events_shipped((SELECT max(id) FROM wsctl.events));
UPDATE wsctl.events SET created_at = now();
SELECT is(wsctl._prune_events(), 0::bigint, '  and never a recent one');

-- workspace_history.
SELECT wsctl.set_desired_state(id, 'RUNNING') FROM t WHERE k = 'a';
SELECT is((SELECT count(*) FROM wsctl.workspace_history((SELECT id FROM t WHERE k = 'a'))), 2::bigint,
		  'workspace_history: the events left of the workspace');
SELECT is((SELECT string_agg(desired_state::text, ',' ORDER BY at) FROM wsctl.workspace_history((SELECT id FROM t WHERE k = 'a'))),
		  'STANDBY,RUNNING', '  oldest first, with desired_state');
SELECT is((SELECT count(*) FROM wsctl.workspace_history((SELECT id FROM t WHERE k = 'a'), "limit" => 1)), 1::bigint,
		  '  limit');
SELECT throws_ok($$SELECT * FROM wsctl.workspace_history(gen_random_uuid())$$, 'WS404', NULL, '  WS404 for an unknown workspace');
SELECT throws_ok($$SELECT * FROM wsctl.workspace_history((SELECT id FROM t WHERE k = 'a'), "limit" => 0)$$, 'WS422', NULL, '  WS422 for limit 0');

-- Privileges.
SELECT ok(has_table_privilege('wsctl_api', 'wsctl.events', 'SELECT'), 'wsctl_api may read the outbox');
SELECT ok(NOT has_table_privilege('wsctl_api', 'wsctl.events', 'INSERT, UPDATE, DELETE, TRUNCATE'),
		  '  but not write it');
SELECT ok(has_function_privilege('wsctl_api', 'wsctl.workspace_history(uuid, timestamptz, int)', 'EXECUTE'),
		  '  and may call workspace_history');

SELECT * FROM finish();
ROLLBACK;
