-- test/pgtap/ttl.sql: the TTL manager's SQL steps (issue 10, TTL part),
-- without workers or Redis: which workspaces are candidates, the
-- compare-and-set stop, and the ttl_warning event (once per idle period).

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(22);

CREATE TEMP TABLE t (k text PRIMARY KEY, id uuid);
INSERT INTO t SELECT 'a', (wsctl.create_workspace(gen_random_uuid(), 'ttl-a', 'busybox', 'RUNNING', standby_ttl_seconds => 60)).id;
-- observe(k, status): the HealthMonitor's write; touch(k, ago): last_access_at.
CREATE FUNCTION pg_temp.observe(key text, status wsctl.status) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('wsctl.component', 'health_monitor', true);
	UPDATE wsctl.workspaces SET observed_status = status, observed_at = now() WHERE id = (SELECT id FROM t WHERE k = key);
	PERFORM set_config('wsctl.component', '', true);
END $$;
CREATE FUNCTION pg_temp.touch(key text, ago interval) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('wsctl.component', 'api', true);
	UPDATE wsctl.workspaces SET last_access_at = now() - ago WHERE id = (SELECT id FROM t WHERE k = key);
	PERFORM set_config('wsctl.component', '', true);
END $$;
CREATE FUNCTION pg_temp.cand(warn interval DEFAULT '0') RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(c.due::text || ' ' || c.seconds_left, ','), 'none')
	  FROM wsctl._standby_ttl_candidates(warn) c JOIN t ON t.id = c.id
$$;

SELECT pg_temp.touch('a', interval '1 hour');
SELECT is(pg_temp.cand(), 'none', 'not observed RUNNING yet: no candidate');
SELECT pg_temp.observe('a', 'RUNNING');
SELECT is(pg_temp.cand(), 'true 0', 'RUNNING and idle for an hour (TTL 60 s): due');
SELECT pg_temp.touch('a', interval '30 seconds');
SELECT is(pg_temp.cand(), 'none', 'touched 30 s ago: not a candidate');
SELECT is(pg_temp.cand(interval '45 seconds'), 'false 30', '  but within a 45 s warning window: 30 s left');
SELECT is(wsctl._ttl_stop(id), false, '_ttl_stop refuses before the TTL') FROM t WHERE k = 'a';

SELECT is(wsctl._ttl_warn(id, 30), true, '_ttl_warn writes a ttl_warning event') FROM t WHERE k = 'a';
SELECT is(wsctl._ttl_warn(id, 20), false, '  once per idle period') FROM t WHERE k = 'a';
SELECT is((SELECT payload ->> 'action' || ' ' || (payload ->> 'in_seconds') FROM wsctl.events e JOIN t ON t.id = e.workspace_id
			WHERE e.payload ->> 'event' = 'ttl_warning'), 'STANDBY 30', '  saying what and in how long');

SELECT pg_temp.touch('a', interval '2 minutes');
SELECT is(wsctl._ttl_stop(id), true, '_ttl_stop after the TTL: stopped') FROM t WHERE k = 'a';
SELECT is((SELECT desired_state FROM wsctl.workspaces w JOIN t USING (id) WHERE t.k = 'a'), 'STANDBY', '  desired_state STANDBY');
SELECT is((SELECT payload ->> 'desired_state' FROM wsctl.events e JOIN t ON t.id = e.workspace_id ORDER BY e.entry DESC LIMIT 1),
		  'STANDBY', '  as a state_changed event');
SELECT is(wsctl._ttl_stop(id), false, '  not twice') FROM t WHERE k = 'a';

-- A user's request in between wins: desired_state is no longer RUNNING.
INSERT INTO t SELECT 'b', (wsctl.create_workspace(gen_random_uuid(), 'ttl-b', 'busybox', 'RUNNING', standby_ttl_seconds => 60)).id;
SELECT pg_temp.observe('b', 'RUNNING');
SELECT pg_temp.touch('b', interval '1 hour');
SELECT wsctl.delete_workspace(id) FROM t WHERE k = 'b';
SELECT is(wsctl._ttl_stop(id), false, 'a deleted workspace is never stopped by the TTL') FROM t WHERE k = 'b';
SELECT is(pg_temp.cand(), 'none', '  nor a candidate');

-- Archive TTL: a STANDBY workspace at rest, unused for archive_ttl_seconds.
INSERT INTO t SELECT 'c', (wsctl.create_workspace(gen_random_uuid(), 'ttl-c', 'busybox', 'STANDBY', archive_ttl_seconds => 600)).id;
CREATE FUNCTION pg_temp.acand(warn interval DEFAULT '0') RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(c.due::text || ' ' || c.seconds_left, ','), 'none')
	  FROM wsctl._archive_ttl_candidates(warn) c JOIN t ON t.id = c.id
$$;
SELECT pg_temp.observe('c', 'STANDBY');
SELECT pg_temp.touch('c', interval '5 minutes');
SELECT is(pg_temp.acand(), 'none',
		  'archive TTL: unused for 5 of 10 minutes: not a candidate');
SELECT is(pg_temp.acand(interval '6 minutes'),
		  CASE WHEN current_setting('wsctl.s3_endpoint') = '' THEN 'none' ELSE 'false 300' END,
		  '  within a 6-minute warning window: 300 s left (none without object storage)');
SELECT is(wsctl._ttl_warn(id, 300, 'PENDING'), true, '_ttl_warn with action PENDING') FROM t WHERE k = 'c';
SELECT is((SELECT payload ->> 'action' FROM wsctl.events e JOIN t ON t.id = e.workspace_id
			WHERE t.k = 'c' AND e.payload ->> 'event' = 'ttl_warning'), 'PENDING', '  the warning says it will be archived');
SELECT is(wsctl._ttl_archive(id), false, '_ttl_archive refuses before the TTL') FROM t WHERE k = 'c';
SELECT pg_temp.touch('c', interval '11 minutes');
SELECT is(wsctl._ttl_archive(id), current_setting('wsctl.s3_endpoint') <> '',
		  '_ttl_archive after the TTL: archived (refused without object storage)') FROM t WHERE k = 'c';
SELECT is((SELECT desired_state::text FROM wsctl.workspaces w JOIN t USING (id) WHERE t.k = 'c'),
		  CASE WHEN current_setting('wsctl.s3_endpoint') = '' THEN 'STANDBY' ELSE 'PENDING' END,
		  '  desired_state PENDING');
SELECT is(wsctl._ttl_archive(id), false, '  not twice (desired_state is no longer STANDBY)') FROM t WHERE k = 'c';

SELECT * FROM finish();
ROLLBACK;
