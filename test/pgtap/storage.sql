-- test/pgtap/storage.sql: the SQL rules of the storage half (issue 9),
-- without workers or S3: the archive_key commit, the Archive GC's
-- protection rules and orphan bookkeeping, and who may call what.

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(35);

CREATE TEMP TABLE t (k text PRIMARY KEY, id uuid);
INSERT INTO t SELECT k, (wsctl.create_workspace(gen_random_uuid(), 'st-' || k, 'busybox', 'STANDBY')).id
  FROM unnest(ARRAY['a', 'b', 'c', 'd']) AS k;
CREATE FUNCTION pg_temp.id(key text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM t WHERE k = key $$;
-- set_op(k, operation): the reconciler's claim, with a fixed op_id.
CREATE FUNCTION pg_temp.set_op(key text, op wsctl.operation, op_id uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('wsctl.component', 'reconciler', true);
	UPDATE wsctl.workspaces SET operation = op, op_id = set_op.op_id, op_started_at = now()
	 WHERE id = pg_temp.id(key);
	PERFORM set_config('wsctl.component', '', true);
END $$;
CREATE FUNCTION pg_temp.key(key text) RETURNS text LANGUAGE sql AS $$
	SELECT archive_key FROM wsctl.workspaces WHERE id = pg_temp.id(key) $$;

-- _commit_archive: only this op_id's prefix, only during its ARCHIVING.
SELECT pg_temp.set_op('a', 'ARCHIVING', '10000000-0000-0000-0000-00000000000a');
SELECT is(wsctl._commit_archive(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000b',
		  wsctl.archive_prefix_for(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000b') || 'home.tar.zst'),
		  false, '_commit_archive refuses another op_id');
SELECT is(wsctl._commit_archive(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000a',
		  'archives/elsewhere/home.tar.zst'), false, '_commit_archive refuses a key outside the op_id''s prefix');
SELECT is(wsctl._commit_archive(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000a',
		  wsctl.archive_prefix_for(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000a') || 'home.tar.zst.meta'),
		  false, '_commit_archive refuses the meta as archive_key');
SELECT is(wsctl._commit_archive(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000a',
		  wsctl.archive_prefix_for(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000a') || '../../x/home.tar.zst'),
		  false, '_commit_archive refuses a key with ..');
SELECT is(pg_temp.key('a'), NULL, '  nothing committed so far');
SELECT is(wsctl._commit_archive(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000a',
		  wsctl.archive_prefix_for(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000a') || 'home.tar.zst'),
		  true, '_commit_archive commits this op_id''s key');
SELECT is(pg_temp.key('a'), wsctl.archive_prefix_for(pg_temp.id('a'), '10000000-0000-0000-0000-00000000000a') || 'home.tar.zst',
		  '  archive_key is set');
SELECT ok(wsctl.operation_complete('ARCHIVING', 'PENDING', pg_temp.key('a'), pg_temp.id('a'),
		  '10000000-0000-0000-0000-00000000000a'), '  which completes ARCHIVING once observed PENDING');
SELECT pg_temp.set_op('b', 'STOPPING', '10000000-0000-0000-0000-0000000000b0');
SELECT is(wsctl._commit_archive(pg_temp.id('b'), '10000000-0000-0000-0000-0000000000b0',
		  wsctl.archive_prefix_for(pg_temp.id('b'), '10000000-0000-0000-0000-0000000000b0') || 'home.tar.zst'),
		  false, '_commit_archive refuses a workspace whose operation is not ARCHIVING');
SELECT throws_ok(format('UPDATE wsctl.workspaces SET archive_key = %L WHERE id = %L', 'archives/x', pg_temp.id('b')),
		  'WS403', NULL, 'archive_key written outside the reconciler''s rule: refused by the ownership trigger');

-- The Archive GC's protection rules.
SELECT ok(wsctl._archive_protected(pg_temp.key('a')), 'a live workspace''s archive_key is protected');
SELECT ok(wsctl._archive_protected(pg_temp.key('a') || '.meta'), '  and its meta');
SELECT ok(wsctl._archive_protected(wsctl.archive_prefix_for(pg_temp.id('b'), '10000000-0000-0000-0000-0000000000b0') || 'home.tar.gz'),
		  'anything under the prefix of a live workspace''s op_id is protected');
SELECT ok(NOT wsctl._archive_protected('archives/' || pg_temp.id('c') || '/20000000-0000-0000-0000-000000000000/home.tar.zst'),
		  'an archive of another op_id of a workspace without op_id is not protected');
SELECT ok(NOT wsctl._archive_protected('archives/00000000-0000-0000-0000-000000000000/x/home.tar.zst'),
		  'an archive no workspace refers to is not protected');

-- An ERROR keeps op_id, so what it uploaded stays protected for recovery.
SELECT pg_temp.set_op('c', 'ARCHIVING', '10000000-0000-0000-0000-0000000000c0');
SELECT set_config('wsctl.component', 'reconciler', true);
UPDATE wsctl.workspaces SET error_info = '{"reason": "RetryExceeded", "is_terminal": true}', error_count = 4
 WHERE id = pg_temp.id('c');
SELECT set_config('wsctl.component', 'health_monitor', true);
UPDATE wsctl.workspaces SET observed_status = 'ERROR' WHERE id = pg_temp.id('c');
SELECT set_config('wsctl.component', '', true);
SELECT ok(wsctl._archive_protected(wsctl.archive_prefix_for(pg_temp.id('c'), '10000000-0000-0000-0000-0000000000c0') || 'home.tar.zst'),
		  'an ERROR workspace''s op_id prefix stays protected');

-- A soft-deleted workspace protects nothing.
SELECT pg_temp.set_op('d', 'ARCHIVING', '10000000-0000-0000-0000-0000000000d0');
SELECT wsctl._commit_archive(pg_temp.id('d'), '10000000-0000-0000-0000-0000000000d0',
		  wsctl.archive_prefix_for(pg_temp.id('d'), '10000000-0000-0000-0000-0000000000d0') || 'home.tar.zst');
SELECT set_config('wsctl.component', 'api', true);
UPDATE wsctl.workspaces SET deleted_at = now() WHERE id = pg_temp.id('d');
SELECT set_config('wsctl.component', '', true);
SELECT ok(NOT wsctl._archive_protected(pg_temp.key('d')), 'a soft-deleted workspace''s archive_key is not protected');

-- _gc_plan: orphans recorded with their first sight, returned after the delay.
CREATE TEMP TABLE listing AS
	SELECT ARRAY[pg_temp.key('a'), pg_temp.key('a') || '.meta', pg_temp.key('d'),
				 'archives/00000000-0000-0000-0000-000000000000/x/home.tar.zst',
				 'other/keep.txt'] AS keys;
SELECT is((SELECT count(*)::int FROM wsctl._gc_plan((SELECT keys FROM listing), '1 hour')), 0,
		  '_gc_plan returns nothing before the delay');
SELECT set_eq('SELECT key FROM wsctl.archive_orphans',
			  ARRAY[pg_temp.key('d'), 'archives/00000000-0000-0000-0000-000000000000/x/home.tar.zst'],
			  '  it records exactly the unprotected keys under archives/');
UPDATE wsctl.archive_orphans SET first_seen_at = now() - interval '3 hours';
SELECT set_eq($$SELECT wsctl._gc_plan((SELECT keys FROM listing), '2 hours')$$,
			  ARRAY[pg_temp.key('d'), 'archives/00000000-0000-0000-0000-000000000000/x/home.tar.zst'],
			  '_gc_plan returns the orphans older than the delay');
SELECT is((SELECT min(first_seen_at) FROM wsctl.archive_orphans) < now() - interval '2 hours', true,
		  '  a later cycle keeps the first sight');
SELECT ok(wsctl._gc_may_delete(pg_temp.key('d'), '2 hours'), '_gc_may_delete: an old orphan may go');
SELECT ok(NOT wsctl._gc_may_delete(pg_temp.key('a'), '0'), '_gc_may_delete: never a protected key');
SELECT wsctl._gc_deleted(pg_temp.key('d'));
SELECT is((SELECT count(*)::int FROM wsctl.archive_orphans WHERE key = pg_temp.key('d')), 0, '_gc_deleted forgets the key');
SELECT is((SELECT count(*)::int FROM wsctl._gc_plan(ARRAY['archives/00000000-0000-0000-0000-000000000000/x/home.tar.zst'], '2 hours')), 1,
		  'the remaining orphan is still due');
SELECT is((SELECT count(*)::int FROM wsctl._gc_plan('{}', '2 hours')), 0, 'a key gone from the listing is forgotten');

-- recover_workspace after a failed RESTORING retries the restore (a partial
-- volume must never be observed as the home); _complete_operation of a
-- RESTORING is a use (last_access_at), so its STANDBY is not archived at once.
SELECT pg_temp.set_op('c', 'RESTORING', '10000000-0000-0000-0000-00000000000c');
SELECT set_config('wsctl.component', 'reconciler', true);
UPDATE wsctl.workspaces SET op_started_at = now() - interval '1 hour',
	   last_access_at = now() - interval '10 days', error_count = 1, error_message = 'took too long',
	   error_info = '{"reason": "Timeout", "message": "took too long", "is_terminal": true, "operation": "RESTORING"}'
 WHERE id = pg_temp.id('c');
SELECT set_config('wsctl.component', 'health_monitor', true);
UPDATE wsctl.workspaces SET observed_status = 'ERROR' WHERE id = pg_temp.id('c');
SELECT set_config('wsctl.component', '', true);
SELECT lives_ok($$SELECT wsctl.recover_workspace(pg_temp.id('c'))$$, 'recover_workspace of a failed RESTORING');
SELECT is((SELECT operation::text || ' ' || op_id::text FROM wsctl.workspaces WHERE id = pg_temp.id('c')),
		  'RESTORING 10000000-0000-0000-0000-00000000000c', '  keeps the operation RESTORING and its op_id');
SELECT is((SELECT (error_info IS NULL AND error_message IS NULL AND error_count = 0)
			 FROM wsctl.workspaces WHERE id = pg_temp.id('c')), true, '  clears the error');
SELECT ok((SELECT op_started_at > now() - interval '1 minute' FROM wsctl.workspaces WHERE id = pg_temp.id('c')),
		  '  and restarts the operation''s clock (a new timeout)');
SELECT set_config('wsctl.component', 'reconciler', true);
SELECT wsctl._complete_operation(w) FROM wsctl.workspaces AS w WHERE w.id = pg_temp.id('c');
SELECT set_config('wsctl.component', '', true);
SELECT ok((SELECT operation = 'NONE' AND last_access_at > now() - interval '1 minute'
			 FROM wsctl.workspaces WHERE id = pg_temp.id('c')),
		  'the completion of RESTORING sets last_access_at');
SELECT pg_temp.set_op('b', 'STARTING', '10000000-0000-0000-0000-0000000000bb');
SELECT set_config('wsctl.component', 'reconciler', true);
UPDATE wsctl.workspaces
   SET error_info = '{"reason": "RetryExceeded", "message": "no", "is_terminal": true, "operation": "STARTING"}'
 WHERE id = pg_temp.id('b');
SELECT set_config('wsctl.component', '', true);
SELECT wsctl.recover_workspace(pg_temp.id('b'));
SELECT is((SELECT operation::text FROM wsctl.workspaces WHERE id = pg_temp.id('b')), 'NONE',
		  'recover_workspace of any other failed operation clears it (the HealthMonitor observes)');

-- Privileges: the API role may read progress but not touch the GC or the commit.
SELECT ok(has_table_privilege('wsctl_api', 'wsctl.operation_progress', 'SELECT'), 'wsctl_api may read wsctl.operation_progress');
SELECT ok(NOT has_function_privilege('wsctl_api', 'wsctl._commit_archive(uuid, uuid, text)', 'EXECUTE')
		  AND NOT has_function_privilege('wsctl_api', 'wsctl._gc_plan(text[], interval)', 'EXECUTE')
		  AND NOT has_table_privilege('wsctl_api', 'wsctl.archive_orphans', 'SELECT, INSERT, DELETE'),
		  'wsctl_api can neither commit archives nor touch the GC''s table');
CREATE ROLE wsctl_tap_nobody NOLOGIN;
SET LOCAL ROLE wsctl_tap_nobody;
CREATE TEMP TABLE seen AS
	SELECT count(*)::int AS n FROM pg_settings WHERE name IN ('wsctl.s3_access_key', 'wsctl.s3_secret_key');
RESET ROLE;
SELECT is((SELECT n FROM seen), 0, 'the S3 credentials are not in pg_settings for a role that is not superuser');
SELECT * FROM finish();
ROLLBACK;
