-- test/pgtap/observation.sql: the HealthMonitor's write (issue 12, idle
-- cost): _record_observations() writes only the rows whose observation
-- changed (and each row once, at its first observation); every other
-- watched row is covered by the heartbeat, wsctl.health_observation, which
-- wsctl._observed_at() and the API's observed_at read.

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(22);

CREATE TEMP TABLE t (k text PRIMARY KEY, id uuid);
INSERT INTO t SELECT 'a', (wsctl.create_workspace(gen_random_uuid(), 'obs-a', 'busybox', 'PENDING')).id;
INSERT INTO t SELECT 'b', (wsctl.create_workspace(gen_random_uuid(), 'obs-b', 'busybox', 'PENDING')).id;
CREATE FUNCTION pg_temp.id(key text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM t WHERE k = key $$;
CREATE FUNCTION pg_temp.ctid(key text) RETURNS tid LANGUAGE sql AS $$
	SELECT w.ctid FROM wsctl.workspaces w WHERE w.id = pg_temp.id(key) $$;
-- observe(volumes, at): one tick of local-docker's site that lists no container and these volumes.
CREATE FUNCTION pg_temp.observe(volumes uuid[], at timestamptz) RETURNS int LANGUAGE sql AS $$
	SELECT wsctl._record_observations('local-docker', '{}', '{}', volumes, at) $$;

SELECT is((SELECT count(*) FROM wsctl.health_observation), 0::bigint, 'no heartbeat before the first tick');
SELECT is(pg_temp.observe('{}', '2026-01-01 00:00:01+00'), 0, 'first tick: no status changes');
SELECT is((SELECT observed_at FROM wsctl.workspaces WHERE id = pg_temp.id('a')),
		  '2026-01-01 00:00:01+00'::timestamptz, 'a row is written at its first observation');
CREATE TEMP TABLE before AS SELECT k, pg_temp.ctid(k) AS row_at FROM t;

SELECT is((SELECT array_agg(instance_backend::text) FROM wsctl.health_observation), '{local-docker}',
		  'the tick wrote its site''s heartbeat row');
SELECT is(pg_temp.observe('{}', '2026-01-01 00:00:02+00'), 0, 'second tick: nothing changed');
SELECT is((SELECT count(*) FROM before WHERE pg_temp.ctid(k) <> row_at), 0::bigint,
		  'rows whose observation did not change are not written');
SELECT is((SELECT observed_at FROM wsctl.health_observation), '2026-01-01 00:00:02+00'::timestamptz,
		  'the heartbeat holds the tick''s time');
SELECT is((SELECT observed_at FROM wsctl.workspace_info WHERE id = pg_temp.id('a')),
		  '2026-01-01 00:00:02+00'::timestamptz, 'the API''s observed_at is the heartbeat''s');
SELECT is((SELECT observed_at FROM wsctl.workspaces WHERE id = pg_temp.id('a')),
		  '2026-01-01 00:00:01+00'::timestamptz, 'while the row keeps its own');

SELECT is(pg_temp.observe(ARRAY[pg_temp.id('b')], '2026-01-01 00:00:03+00'), 1,
		  'b''s volume appears: one status changed');
SELECT is((SELECT observed_status::text || ' ' || observed_at FROM wsctl.workspaces WHERE id = pg_temp.id('b')),
		  'STANDBY 2026-01-01 00:00:03+00', 'b is written: STANDBY, observed now');
SELECT is((SELECT pg_temp.ctid('a') = row_at FROM before WHERE k = 'a'), true, 'a is still not written');

-- A tick that skipped a row (held by another session) does not cover it.
UPDATE wsctl.health_observation SET skipped = ARRAY[pg_temp.id('a')];
SELECT is((SELECT wsctl._observed_at(w) FROM wsctl.workspaces w WHERE id = pg_temp.id('a')),
		  '2026-01-01 00:00:01+00'::timestamptz, 'a skipped row keeps its own observed_at');
SELECT is((SELECT wsctl._observed_at(w) FROM wsctl.workspaces w WHERE id = pg_temp.id('b')),
		  '2026-01-01 00:00:03+00'::timestamptz, 'the others have the heartbeat''s');


-- One site's listing says nothing about another site's workspaces.
INSERT INTO t SELECT 'c', (wsctl.create_workspace(gen_random_uuid(), 'obs-c', 'busybox', 'PENDING')).id;
SET LOCAL session_replication_role = replica;	-- instance_backend is set at creation only
UPDATE wsctl.workspaces SET instance_backend = 'remote-docker' WHERE id = pg_temp.id('c');
SET LOCAL session_replication_role = origin;
SELECT is(pg_temp.observe(ARRAY[pg_temp.id('b')], '2026-01-01 00:00:04+00'), 0, 'a local tick that lists b''s volume, not c''s');
SELECT is((SELECT observed_at FROM wsctl.workspaces WHERE id = pg_temp.id('c')), NULL,
		  'does not observe the remote-docker workspace');
SELECT is((SELECT wsctl._observed_at(w) FROM wsctl.workspaces w WHERE id = pg_temp.id('c')), NULL,
		  'and the local heartbeat does not cover it');
SELECT is(wsctl._record_observations('remote-docker', '{}', '{}', ARRAY[pg_temp.id('c')], '2026-01-01 00:00:05+00'),
		  1, 'the remote site''s tick sees c''s volume');
SELECT is((SELECT observed_status::text FROM wsctl.workspaces WHERE id = pg_temp.id('c')), 'STANDBY',
		  'c is STANDBY');
SELECT is((SELECT observed_status::text FROM wsctl.workspaces WHERE id = pg_temp.id('b')), 'STANDBY',
		  'and b, a local workspace missing from the remote listing, is untouched');
SELECT is((SELECT count(*) FROM wsctl.health_observation), 2::bigint, 'one heartbeat row per site');
SELECT ok(wsctl._backend_resources_expected('remote-docker') AND wsctl._backend_resources_expected('local-docker')
		  AND NOT wsctl._backend_resources_expected('k8s'), 'resources are expected per site');

SELECT * FROM finish();
ROLLBACK;
