--
-- The SQL API end to end, as an API server uses it. The detailed, table-
-- driven checks are in test/pgtap/; this is the readable walkthrough.
--
CREATE FUNCTION pg_temp.try(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
		'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END
$$;

-- Create: observed PENDING, desired RUNNING by default.
SELECT id AS ws1 FROM wsctl.create_workspace(
	owner_user_id => '00000000-0000-0000-0000-0000000000a1', name => 'first',
	image_ref => 'wsctl-busybox:test', description => 'walkthrough') \gset
SELECT name, image_ref, observed_status, operation, desired_state, display_status,
	   standby_ttl_seconds, archive_ttl_seconds, home_store_key = 'ws-' || id || '-home' AS home_key_ok
  FROM wsctl.get_workspace(:'ws1');

-- Idempotent and validated requests.
SELECT desired_state FROM wsctl.set_desired_state(:'ws1', 'RUNNING');
SELECT desired_state FROM wsctl.set_desired_state(:'ws1', 'STANDBY');
SELECT pg_temp.try($$SELECT wsctl.set_desired_state('$$ || :'ws1' || $$', 'DELETED')$$);
SELECT pg_temp.try($$SELECT wsctl.set_desired_state(NULL, 'RUNNING')$$);
SELECT pg_temp.try($$SELECT wsctl.get_workspace('00000000-0000-0000-0000-00000000dead')$$);

-- Invalid input is refused with WS422.
SELECT pg_temp.try($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-0000000000a1', '', 'busybox')$$);
SELECT pg_temp.try($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-0000000000a1', repeat('n', 256), 'busybox')$$);
SELECT pg_temp.try($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-0000000000a1', 'x', 'Not An Image')$$);
SELECT pg_temp.try($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-0000000000a1', 'x', 'busybox', standby_ttl_seconds => -1)$$);

-- Running limit: two per user (the default); the third request is WS429.
SELECT id AS ws2 FROM wsctl.create_workspace('00000000-0000-0000-0000-0000000000a1', 'second', 'busybox') \gset
SELECT id AS ws3 FROM wsctl.create_workspace('00000000-0000-0000-0000-0000000000a1', 'third', 'busybox') \gset
SELECT pg_temp.try($$SELECT wsctl.create_workspace('00000000-0000-0000-0000-0000000000a1', 'fourth', 'busybox')$$);
SELECT pg_temp.try($$SELECT wsctl.set_desired_state('$$ || :'ws1' || $$', 'RUNNING')$$);
-- Another user is not affected.
SELECT display_status FROM wsctl.create_workspace('00000000-0000-0000-0000-0000000000b2', 'other', 'busybox');

-- An operation in progress makes requests WS409 (the reconciler claims it).
BEGIN;
SET LOCAL wsctl.component = 'reconciler';
UPDATE wsctl.workspaces SET operation = 'PROVISIONING', op_id = gen_random_uuid(), op_started_at = now()
 WHERE id = :'ws2';
COMMIT;
SELECT pg_temp.try($$SELECT wsctl.set_desired_state('$$ || :'ws2' || $$', 'STANDBY')$$);
SELECT pg_temp.try($$SELECT wsctl.delete_workspace('$$ || :'ws2' || $$')$$);
SELECT wsctl.wake_workspace(:'ws2') - 'display_status' AS wake;

-- ERROR: requests are refused and an admin recovers.
BEGIN;
SET LOCAL wsctl.component = 'reconciler';
UPDATE wsctl.workspaces
   SET error_info = '{"reason": "RetryExceeded", "message": "image not found", "is_terminal": true}',
	   error_message = 'image not found', error_count = 4
 WHERE id = :'ws2';
COMMIT;
SELECT pg_temp.try($$SELECT wsctl.set_desired_state('$$ || :'ws2' || $$', 'STANDBY')$$);
SELECT wsctl.wake_workspace(:'ws2');
SELECT operation, error_count, error_info IS NULL AS cleared, op_id IS NOT NULL AS op_id_kept
  FROM wsctl.recover_workspace(:'ws2');
SELECT pg_temp.try($$SELECT wsctl.recover_workspace('$$ || :'ws2' || $$')$$);

-- Update and list.
SELECT name, memo, standby_ttl_seconds FROM wsctl.update_workspace(:'ws3', name => 'renamed', standby_ttl_seconds => 60);
SELECT name, display_status FROM wsctl.list_workspaces('00000000-0000-0000-0000-0000000000a1');

-- Delete: soft, then 404 everywhere.
SELECT deleted_at IS NOT NULL AS deleted FROM wsctl.delete_workspace(:'ws3');
SELECT pg_temp.try($$SELECT wsctl.get_workspace('$$ || :'ws3' || $$')$$);
SELECT pg_temp.try($$SELECT wsctl.delete_workspace('$$ || :'ws3' || $$')$$);
SELECT count(*) AS rows_kept FROM wsctl.workspaces WHERE id = :'ws3';
SELECT name FROM wsctl.list_workspaces('00000000-0000-0000-0000-0000000000a1');
