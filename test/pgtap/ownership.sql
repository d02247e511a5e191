-- test/pgtap/ownership.sql: the Single Writer Principle as the database enforces it
-- (DESIGN section 3, SPEC 3.4 with decisions I2, I3, I16, I19, I21).
--
-- Covers:
--   * the full matrix: every column of wsctl.workspaces x every component
--     (api, ttl_manager, health_monitor, reconciler, admin, none declared):
--     an UPDATE of that one column to a different valid value succeeds iff
--     the component owns the column; a refusal is WS403 naming the column,
--     the component and (in DETAIL) the owners. The expected matrix is
--     written out below, independently of wsctl.column_owners;
--   * the HealthMonitor's one exception: error_info from NULL to a terminal
--     ContainerWithoutVolume / DataLost error, nothing else;
--   * INSERT only by api and only in the initial state; DELETE only by admin;
--     an undeclared or unknown component;
--   * updated_at: maintained on a real change, not on an observed_at-only
--     heartbeat, never writable;
--   * privileges: ordinary roles cannot touch the table even when they
--     declare a component themselves; wsctl_api can use the API and the
--     view but not recover_workspace; wsctl_admin can.

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(267);

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- A fresh live row in its initial state (desired STANDBY so that no running
-- slot is involved), inserted as component api.
CREATE FUNCTION pg_temp.fixture(fixed_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
	new_id uuid := coalesce(fixed_id, gen_random_uuid());
	prior  text := current_setting('wsctl.component', true);
BEGIN
	PERFORM set_config('wsctl.component', 'api', true);
	INSERT INTO wsctl.workspaces (id, owner_user_id, name, description, memo, image_ref,
								  home_store_key, desired_state)
	VALUES (new_id, gen_random_uuid(), 'fixture', 'fixture description', 'fixture memo',
			'busybox:1.36', 'ws-' || new_id || '-home', 'STANDBY');
	PERFORM set_config('wsctl.component', coalesce(prior, ''), true);
	RETURN new_id;
END
$$;

-- Runs one statement as one component; returns 'ok' or
-- 'SQLSTATE|message|detail' (the owner list in DETAIL sorted, so that the
-- expectation does not depend on the order column_owners stores it in).
-- The component setting is restored afterwards.
CREATE FUNCTION pg_temp.as_component(component text, statement text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	prior  text := current_setting('wsctl.component', true);
	st     text;
	msg    text;
	det    text;
	owners text;
BEGIN
	BEGIN
		PERFORM set_config('wsctl.component', component, true);
		EXECUTE statement;
		PERFORM set_config('wsctl.component', coalesce(prior, ''), true);
		RETURN 'ok';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	END;
	PERFORM set_config('wsctl.component', coalesce(prior, ''), true);
	owners := substring(det FROM 'is owned by: (.*)\.$');
	IF owners IS NOT NULL THEN
		det := replace(det, owners,
					   (SELECT string_agg(o, ', ' ORDER BY o) FROM unnest(string_to_array(owners, ', ')) AS o));
	END IF;
	RETURN st || '|' || msg || '|' || coalesce(det, '');
END
$$;

-- The new value each column is set to: valid for the column's type and
-- constraints and different from the fixture's value.
CREATE TEMP TABLE new_values (column_name text PRIMARY KEY, new_value text NOT NULL);
INSERT INTO new_values VALUES
	('id',                  'gen_random_uuid()'),
	('owner_user_id',       'gen_random_uuid()'),
	('name',                '''renamed'''),
	('description',         '''another description'''),
	('memo',                '''another memo'''),
	('image_ref',           '''alpine:3.19'''),
	('instance_backend',    '''k8s'''),
	('storage_backend',     '''minio'''),
	('home_store_key',      '''ws-other-home'''),
	('home_ctx',            '''{"bucket": "homes"}'''),
	('observed_status',     '''STANDBY'''),
	('observed_at',         'now()'),
	('operation',           '''PROVISIONING'''),
	('op_started_at',       'now()'),
	('op_id',               'gen_random_uuid()'),
	('desired_state',       '''PENDING'''),
	('archive_key',         '''archives/x/y/home.tar.gz'''),
	('last_access_at',      'now()'),
	('standby_ttl_seconds', '600'),
	('archive_ttl_seconds', '7200'),
	('error_message',       '''boom'''),
	('error_info',          '''{"reason": "Mismatch", "message": "boom", "is_terminal": false}'''),
	('error_count',         '1'),
	('previous_status',     '''RUNNING'''),
	('created_at',          'now() - interval ''1 day'''),
	('updated_at',          'now() - interval ''1 day'''),
	('deleted_at',          'now()');

-- The expected ownership matrix (SPEC 3.4 + DESIGN section 3), written out.
CREATE TEMP TABLE expected_owners (column_name text PRIMARY KEY,
	api bool, ttl_manager bool, health_monitor bool, reconciler bool, admin bool);
INSERT INTO expected_owners VALUES
	--                       api    ttl    hm     rec    admin
	('id',                  false, false, false, false, false),
	('owner_user_id',       false, false, false, false, false),
	('name',                true,  false, false, false, false),
	('description',         true,  false, false, false, false),
	('memo',                true,  false, false, false, false),
	('image_ref',           false, false, false, false, false),
	('instance_backend',    false, false, false, false, false),
	('storage_backend',     false, false, false, false, false),
	('home_store_key',      false, false, false, false, false),
	('home_ctx',            false, false, false, true,  false),
	('observed_status',     false, false, true,  false, false),
	('observed_at',         false, false, true,  false, false),
	('operation',           false, false, false, true,  true),
	('op_started_at',       false, false, false, true,  true),
	('op_id',               false, false, false, true,  false),
	('desired_state',       true,  true,  false, false, false),
	('archive_key',         false, false, false, true,  false),
	('last_access_at',      true,  false, false, true,  false),
	('standby_ttl_seconds', true,  false, false, false, false),
	('archive_ttl_seconds', true,  false, false, false, false),
	('error_message',       false, false, false, true,  true),
	('error_info',          false, false, false, true,  true),
	('error_count',         false, false, false, true,  true),
	('previous_status',     false, false, false, true,  false),
	('created_at',          false, false, false, false, false),
	('updated_at',          false, false, false, false, false),
	('deleted_at',          true,  false, false, false, false);

CREATE TEMP VIEW expected_matrix AS
SELECT e.column_name, c.component,
	   CASE c.component WHEN 'api' THEN e.api WHEN 'ttl_manager' THEN e.ttl_manager
						WHEN 'health_monitor' THEN e.health_monitor WHEN 'reconciler' THEN e.reconciler
						WHEN 'admin' THEN e.admin ELSE false END AS allowed,
	   nullif(concat_ws(', ', CASE WHEN e.admin THEN 'admin' END, CASE WHEN e.api THEN 'api' END,
						CASE WHEN e.health_monitor THEN 'health_monitor' END,
						CASE WHEN e.reconciler THEN 'reconciler' END,
						CASE WHEN e.ttl_manager THEN 'ttl_manager' END), '') AS owner_list,
	   c.ord
  FROM expected_owners AS e,
	   (VALUES (1, 'api'), (2, 'ttl_manager'), (3, 'health_monitor'), (4, 'reconciler'),
			   (5, 'admin'), (6, '')) AS c(ord, component);

-- One cell: a fresh row, one column updated by one component. 'ok' also
-- requires that the column really changed; a refusal also requires that
-- the row is untouched.
CREATE FUNCTION pg_temp.cell(col text, component text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	ws_id  uuid := pg_temp.fixture();
	before jsonb;
	after  jsonb;
	result text;
BEGIN
	SELECT to_jsonb(w) INTO before FROM wsctl.workspaces AS w WHERE w.id = ws_id;
	result := pg_temp.as_component(component,
		format('UPDATE wsctl.workspaces SET %I = %s WHERE id = %L',
			   col, (SELECT new_value FROM new_values AS n WHERE n.column_name = col), ws_id));
	SELECT to_jsonb(w) INTO after FROM wsctl.workspaces AS w WHERE w.id = ws_id;
	IF result = 'ok' AND after -> col IS NOT DISTINCT FROM before -> col THEN
		RETURN 'ok but the column did not change';
	END IF;
	IF result <> 'ok' AND after IS DISTINCT FROM before THEN
		RETURN result || ' (but the row changed)';
	END IF;
	RETURN result;
END
$$;

-- ---------------------------------------------------------------------------
-- The matrix
-- ---------------------------------------------------------------------------

SELECT set_eq(
	$$SELECT attname::text FROM pg_attribute
	   WHERE attrelid = 'wsctl.workspaces'::regclass AND attnum > 0 AND NOT attisdropped$$,
	$$SELECT column_name FROM expected_owners$$,
	'the expected matrix covers exactly the columns of wsctl.workspaces');

SELECT is(pg_temp.cell(m.column_name, m.component),
		  CASE
			WHEN m.allowed THEN 'ok'
			WHEN m.component = '' THEN
				'WS403|write to wsctl.workspaces without a declared component|The setting wsctl.component is not set in this transaction.'
			ELSE format('WS403|component "%s" may not change column "%s" of wsctl.workspaces|%s',
						m.component, m.column_name,
						CASE WHEN m.owner_list IS NULL THEN format('Column "%s" cannot be changed.', m.column_name)
							 ELSE format('Column "%s" is owned by: %s.', m.column_name, m.owner_list) END)
		  END,
		  format('%s by %s: %s', m.column_name, CASE WHEN m.component = '' THEN '(no component)' ELSE m.component END,
				 CASE WHEN m.allowed THEN 'allowed' ELSE 'WS403' END))
  FROM expected_matrix AS m
  JOIN pg_attribute AS a ON a.attrelid = 'wsctl.workspaces'::regclass AND a.attname = m.column_name
 ORDER BY a.attnum, m.ord;

-- Several columns at once: refused if any one is not owned, and the first
-- such column (alphabetically) is named.
SELECT is(pg_temp.as_component('reconciler',
			format('UPDATE wsctl.workspaces SET operation = ''STARTING'', observed_status = ''RUNNING'' WHERE id = %L',
				   pg_temp.fixture())),
		  'WS403|component "reconciler" may not change column "observed_status" of wsctl.workspaces|Column "observed_status" is owned by: health_monitor.',
		  'reconciler cannot write operation and observed_status together (I24)');
SELECT is(pg_temp.as_component('admin',
			format('UPDATE wsctl.workspaces SET operation = ''NONE'', op_started_at = NULL, error_info = NULL, '
				   'error_message = NULL, error_count = 0, op_id = NULL WHERE id = %L', pg_temp.fixture())),
		  'ok', 'admin may reset operation and error columns together (recovery); op_id unchanged (NULL = NULL)');

-- A no-op update of a column one does not own is not a change.
SELECT is(pg_temp.as_component('ttl_manager',
			format('UPDATE wsctl.workspaces SET name = name, observed_status = observed_status WHERE id = %L',
				   pg_temp.fixture())),
		  'ok', 'writing a column with its current value is not a change (allowed for anyone)');

-- An unknown component cannot even be declared: the setting only takes
-- '' or one of the five components.
SELECT throws_ok($$SELECT set_config('wsctl.component', 'proxy', true)$$, '22023', NULL,
				 'an unknown component ("proxy") cannot be declared (22023)');
SELECT throws_ok($$SET LOCAL wsctl.component = 'API'$$, '22023', NULL,
				 'component names are exact: "API" cannot be declared (22023)');
SELECT is(current_setting('wsctl.component'), '', 'the refused declarations left no component declared');

-- ---------------------------------------------------------------------------
-- The HealthMonitor may set error_info only from NULL to a terminal
-- ContainerWithoutVolume or DataLost error (I3).
-- ---------------------------------------------------------------------------

CREATE FUNCTION pg_temp.hm_error(initial jsonb, new_info text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	ws_id uuid := pg_temp.fixture();
BEGIN
	IF initial IS NOT NULL THEN
		PERFORM pg_temp.as_component('reconciler',
			format('UPDATE wsctl.workspaces SET error_info = %L WHERE id = %L', initial, ws_id));
	END IF;
	RETURN pg_temp.as_component('health_monitor',
		format('UPDATE wsctl.workspaces SET error_info = %s WHERE id = %L', new_info, ws_id));
END
$$;

SELECT is(pg_temp.hm_error(NULL,
			$$'{"reason": "ContainerWithoutVolume", "message": "container without volume", "is_terminal": true}'$$),
		  'ok', 'health_monitor: NULL -> terminal ContainerWithoutVolume is allowed');
SELECT is(pg_temp.hm_error(NULL, $$'{"reason": "DataLost", "message": "volume gone", "is_terminal": true}'$$),
		  'ok', 'health_monitor: NULL -> terminal DataLost is allowed');

SELECT is(pg_temp.hm_error(i.initial, i.new_info),
		  'WS403|component "health_monitor" may not change column "error_info" of wsctl.workspaces|Column "error_info" is owned by: admin, reconciler.',
		  'health_monitor refused: ' || i.description)
  FROM (VALUES
	(NULL::jsonb, $$'{"reason": "DataLost", "is_terminal": false}'$$, 'NULL -> non-terminal DataLost'),
	(NULL, $$'{"reason": "DataLost"}'$$, 'NULL -> DataLost without is_terminal'),
	(NULL, $$'{"reason": "ContainerWithoutVolume", "is_terminal": false}'$$, 'NULL -> non-terminal ContainerWithoutVolume'),
	(NULL, $$'{"reason": "Timeout", "is_terminal": true}'$$, 'NULL -> terminal Timeout (not an invariant violation)'),
	(NULL, $$'{"reason": "RetryExceeded", "is_terminal": true}'$$, 'NULL -> terminal RetryExceeded'),
	(NULL, $$'{"reason": "Mismatch", "is_terminal": false}'$$, 'NULL -> Mismatch'),
	(NULL, $$'{"reason": "datalost", "is_terminal": true}'$$, 'NULL -> "datalost" (reason is case-sensitive)'),
	('{"reason": "Mismatch", "is_terminal": false}', $$'{"reason": "DataLost", "is_terminal": true}'$$,
	 'over an existing (retrying) error'),
	('{"reason": "Timeout", "is_terminal": true}', $$'{"reason": "ContainerWithoutVolume", "is_terminal": true}'$$,
	 'over an existing terminal error'),
	('{"reason": "DataLost", "is_terminal": true}', $$'{"reason": "ContainerWithoutVolume", "is_terminal": true}'$$,
	 'replacing its own DataLost'),
	('{"reason": "DataLost", "is_terminal": true}', 'NULL', 'clearing an error')
	) AS i(initial, new_info, description);

SELECT is(pg_temp.as_component('health_monitor',
			format($$UPDATE wsctl.workspaces SET observed_status = 'ERROR', observed_at = now(),
					 error_info = '{"reason": "DataLost", "message": "volume gone", "is_terminal": true}'
					 WHERE id = %L$$, pg_temp.fixture())),
		  'ok', 'health_monitor records DataLost and observes ERROR in one update');
SELECT is(pg_temp.as_component('health_monitor',
			format($$UPDATE wsctl.workspaces SET error_message = 'volume gone',
					 error_info = '{"reason": "DataLost", "message": "volume gone", "is_terminal": true}'
					 WHERE id = %L$$, pg_temp.fixture())),
		  'ok', 'health_monitor may mirror its error_info message into error_message');
SELECT is(pg_temp.as_component('health_monitor',
			format($$UPDATE wsctl.workspaces SET error_message = 'something else',
					 error_info = '{"reason": "DataLost", "message": "volume gone", "is_terminal": true}'
					 WHERE id = %L$$, pg_temp.fixture())),
		  'WS403|component "health_monitor" may not change column "error_message" of wsctl.workspaces|Column "error_message" is owned by: admin, reconciler.',
		  'health_monitor may not write an error_message other than its error_info message');
SELECT is(pg_temp.as_component('health_monitor',
			format($$UPDATE wsctl.workspaces SET error_message = 'volume gone' WHERE id = %L$$, pg_temp.fixture())),
		  'WS403|component "health_monitor" may not change column "error_message" of wsctl.workspaces|Column "error_message" is owned by: admin, reconciler.',
		  'health_monitor may not write error_message on its own');
SELECT is(pg_temp.as_component('api',
			format($$UPDATE wsctl.workspaces SET error_info = '{"reason": "DataLost", "is_terminal": true}'
					 WHERE id = %L$$, pg_temp.fixture())),
		  'WS403|component "api" may not change column "error_info" of wsctl.workspaces|Column "error_info" is owned by: admin, reconciler.',
		  'the DataLost exception is the health_monitor''s only: api is refused');

-- ---------------------------------------------------------------------------
-- INSERT: only api, only in the initial state
-- ---------------------------------------------------------------------------

CREATE FUNCTION pg_temp.insert_as(component text, extra_column text DEFAULT NULL, extra_value text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	new_id uuid := gen_random_uuid();
BEGIN
	RETURN pg_temp.as_component(component, format(
		'INSERT INTO wsctl.workspaces (id, owner_user_id, name, image_ref, home_store_key%s) '
		'VALUES (%L, gen_random_uuid(), ''inserted'', ''busybox'', %L%s)',
		CASE WHEN extra_column IS NOT NULL THEN ', ' || quote_ident(extra_column) ELSE '' END,
		new_id, 'ws-' || new_id || '-home',
		CASE WHEN extra_column IS NOT NULL THEN ', ' || extra_value ELSE '' END));
END
$$;

SELECT is(pg_temp.insert_as('api'), 'ok', 'api may insert a workspace in its initial state');

SELECT is(pg_temp.insert_as(c),
		  format('WS403|component "%s" may not create workspaces|', c),
		  format('%s may not insert a workspace', c))
  FROM unnest(ARRAY['ttl_manager', 'health_monitor', 'reconciler', 'admin']) AS c;
SELECT is(pg_temp.insert_as(''),
		  'WS403|write to wsctl.workspaces without a declared component|The setting wsctl.component is not set in this transaction.',
		  'an insert without a declared component is refused');

SELECT is(pg_temp.insert_as('api', v.col, v.val),
		  'WS403|component "api" may only create a workspace in its initial state|',
		  format('api may not insert with %s set', v.col))
  FROM (VALUES ('observed_status', '''RUNNING'''), ('operation', '''STARTING'''),
			   ('op_id', 'gen_random_uuid()'), ('op_started_at', 'now()'),
			   ('archive_key', '''archives/x/y/home.tar.gz'''), ('observed_at', 'now()'),
			   ('error_info', '''{"reason": "DataLost", "is_terminal": true}'''),
			   ('error_message', '''boom'''), ('error_count', '1'),
			   ('previous_status', '''RUNNING'''), ('home_ctx', '''{}'''),
			   ('deleted_at', 'now()')) AS v(col, val);

SELECT is(pg_temp.insert_as('api', v.col, v.val), 'ok', format('api may choose %s at creation', v.col))
  FROM (VALUES ('desired_state', '''PENDING'''), ('description', '''d'''), ('memo', '''m'''),
			   ('standby_ttl_seconds', '60'), ('instance_backend', '''k8s''')) AS v(col, val);

SELECT is(pg_temp.as_component('api', $$
		INSERT INTO wsctl.workspaces (id, owner_user_id, name, image_ref, home_store_key, created_at, updated_at)
		VALUES ('0000000a-0000-0000-0000-000000000001', gen_random_uuid(), 'backdated', 'busybox',
				'ws-0000000a-0000-0000-0000-000000000001-home', '2000-01-01', '2000-01-01')$$),
		  'ok', 'an insert with explicit created_at/updated_at is accepted ...');
SELECT is((SELECT (created_at, updated_at) = (now(), now()) FROM wsctl.workspaces
			WHERE id = '0000000a-0000-0000-0000-000000000001'),
		  true, '... and both are forced to now()');

-- ---------------------------------------------------------------------------
-- DELETE: only admin purges rows
-- ---------------------------------------------------------------------------

SELECT is(pg_temp.as_component(c, format('DELETE FROM wsctl.workspaces WHERE id = %L', pg_temp.fixture())),
		  format('WS403|component "%s" may not remove workspace rows|', c),
		  format('%s may not delete a workspace row', c))
  FROM unnest(ARRAY['api', 'ttl_manager', 'health_monitor', 'reconciler']) AS c;
SELECT is(pg_temp.as_component('', format('DELETE FROM wsctl.workspaces WHERE id = %L', pg_temp.fixture())),
		  'WS403|write to wsctl.workspaces without a declared component|The setting wsctl.component is not set in this transaction.',
		  'a delete without a declared component is refused');
SELECT is(pg_temp.as_component('admin', format('DELETE FROM wsctl.workspaces WHERE id = %L',
											   pg_temp.fixture('0000000b-0000-0000-0000-000000000001'))),
		  'ok', 'admin may purge a workspace row');
SELECT is((SELECT count(*)::int FROM wsctl.workspaces WHERE id = '0000000b-0000-0000-0000-000000000001'), 0,
		  'the purged row is gone');

-- ---------------------------------------------------------------------------
-- updated_at
-- ---------------------------------------------------------------------------

SELECT is(pg_temp.fixture('0000000c-0000-0000-0000-000000000001'), '0000000c-0000-0000-0000-000000000001',
		  'fixture for the updated_at checks');

CREATE FUNCTION pg_temp.updated_at() RETURNS timestamptz LANGUAGE sql AS $$
	SELECT updated_at FROM wsctl.workspaces WHERE id = '0000000c-0000-0000-0000-000000000001'
$$;

-- Backdates updated_at behind the guard (replica mode skips ordinary triggers),
-- because now() is constant within this transaction.
CREATE FUNCTION pg_temp.backdate() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	SET LOCAL session_replication_role = replica;
	UPDATE wsctl.workspaces SET updated_at = '2000-01-01 00:00:00+00'
	 WHERE id = '0000000c-0000-0000-0000-000000000001';
	SET LOCAL session_replication_role = origin;
	RETURN CASE WHEN pg_temp.updated_at() = '2000-01-01 00:00:00+00' THEN 'backdated' ELSE 'not backdated' END;
END
$$;

SELECT is(pg_temp.backdate(), 'backdated', 'updated_at backdated to 2000-01-01 (replica mode)');
SELECT is(pg_temp.as_component('health_monitor',
			$$UPDATE wsctl.workspaces SET observed_at = now() WHERE id = '0000000c-0000-0000-0000-000000000001'$$),
		  'ok', 'health_monitor heartbeat (observed_at only) is accepted');
SELECT is(pg_temp.updated_at(), '2000-01-01 00:00:00+00'::timestamptz,
		  'updated_at does not change when only observed_at changes');

SELECT is(pg_temp.as_component('api',
			$$UPDATE wsctl.workspaces SET name = name WHERE id = '0000000c-0000-0000-0000-000000000001'$$),
		  'ok', 'a no-op update is accepted');
SELECT is(pg_temp.updated_at(), '2000-01-01 00:00:00+00'::timestamptz,
		  'updated_at does not change on a no-op update');

SELECT is(pg_temp.as_component('health_monitor',
			$$UPDATE wsctl.workspaces SET observed_status = 'STANDBY', observed_at = now()
			   WHERE id = '0000000c-0000-0000-0000-000000000001'$$),
		  'ok', 'health_monitor observes STANDBY');
SELECT is(pg_temp.updated_at(), now(), 'updated_at changes when observed_status changes');

SELECT is(pg_temp.backdate(), 'backdated', 'updated_at backdated to 2000-01-01 (replica mode)');
SELECT is(pg_temp.as_component('api',
			$$UPDATE wsctl.workspaces SET memo = 'changed' WHERE id = '0000000c-0000-0000-0000-000000000001'$$),
		  'ok', 'api changes memo');
SELECT is(pg_temp.updated_at(), now(), 'updated_at changes on an api change');

SELECT is(pg_temp.backdate(), 'backdated', 'updated_at backdated to 2000-01-01 (replica mode)');
SELECT is(pg_temp.as_component('reconciler',
			$$UPDATE wsctl.workspaces SET operation = 'STARTING', op_id = gen_random_uuid(), op_started_at = now()
			   WHERE id = '0000000c-0000-0000-0000-000000000001'$$),
		  'ok', 'reconciler claims an operation');
SELECT is(pg_temp.updated_at(), now(), 'updated_at changes on a reconciler change');

SELECT is(pg_temp.as_component(c,
			$$UPDATE wsctl.workspaces SET updated_at = now() - interval '1 hour'
			   WHERE id = '0000000c-0000-0000-0000-000000000001'$$),
		  format('WS403|component "%s" may not change column "updated_at" of wsctl.workspaces|Column "updated_at" cannot be changed.', c),
		  format('an explicit write of updated_at by %s is refused', c))
  FROM unnest(ARRAY['api', 'admin']) AS c;

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

CREATE ROLE wsctl_tap_plain NOLOGIN;
CREATE ROLE wsctl_tap_api NOLOGIN IN ROLE wsctl_api;
CREATE ROLE wsctl_tap_admin NOLOGIN IN ROLE wsctl_admin;

SELECT is(pg_temp.as_component('reconciler', format($$UPDATE wsctl.workspaces
	SET error_info = '{"reason": "Timeout", "message": "t", "is_terminal": true}', error_message = 't',
		operation = 'STARTING', op_id = '0000000d-0000-0000-0000-0000000000ff'
	WHERE id = %L$$, pg_temp.fixture('0000000d-0000-0000-0000-000000000001'))),
		  'ok', 'fixture in (terminal) ERROR with its STARTING operation kept');
SELECT is(pg_temp.fixture('0000000d-0000-0000-0000-000000000002'), '0000000d-0000-0000-0000-000000000002',
		  'fixture for the role checks');

-- An ordinary role, declaring a component itself.
SET LOCAL ROLE wsctl_tap_plain;
SET LOCAL wsctl.component = 'reconciler';
SELECT throws_ok($$UPDATE wsctl.workspaces SET operation = 'STARTING' WHERE id = '0000000d-0000-0000-0000-000000000002'$$,
				 '42501', NULL, 'ordinary role as "reconciler": UPDATE refused (42501)');
SELECT throws_ok($$INSERT INTO wsctl.workspaces (id, owner_user_id, name, image_ref, home_store_key)
				   VALUES ('0000000d-0000-0000-0000-000000000009', gen_random_uuid(), 'x', 'busybox',
						   'ws-0000000d-0000-0000-0000-000000000009-home')$$,
				 '42501', NULL, 'ordinary role as "reconciler": INSERT refused (42501)');
SELECT throws_ok($$DELETE FROM wsctl.workspaces$$, '42501', NULL,
				 'ordinary role as "reconciler": DELETE refused (42501)');
SELECT throws_ok($$SELECT * FROM wsctl.workspaces$$, '42501', NULL,
				 'ordinary role: SELECT wsctl.workspaces refused (42501)');
SELECT throws_ok($$SELECT * FROM wsctl.workspace_info$$, '42501', NULL,
				 'ordinary role: SELECT wsctl.workspace_info refused (42501)');
SELECT throws_ok($$SELECT wsctl.get_workspace('0000000d-0000-0000-0000-000000000002')$$, '42501', NULL,
				 'ordinary role: the API functions are not callable (42501)');
RESET ROLE;
SELECT is((SELECT operation::text FROM wsctl.workspaces WHERE id = '0000000d-0000-0000-0000-000000000002'), 'NONE',
		  'the ordinary role changed nothing');

-- A wsctl_api member: the API and the view, nothing more.
SET LOCAL ROLE wsctl_tap_api;
SET LOCAL wsctl.component = 'reconciler';
SELECT throws_ok($$UPDATE wsctl.workspaces SET operation = 'STARTING' WHERE id = '0000000d-0000-0000-0000-000000000002'$$,
				 '42501', NULL, 'wsctl_api member as "reconciler": UPDATE wsctl.workspaces refused (42501)');
SELECT throws_ok($$INSERT INTO wsctl.workspaces (id, owner_user_id, name, image_ref, home_store_key)
				   VALUES ('0000000d-0000-0000-0000-000000000009', gen_random_uuid(), 'x', 'busybox',
						   'ws-0000000d-0000-0000-0000-000000000009-home')$$,
				 '42501', NULL, 'wsctl_api member: INSERT wsctl.workspaces refused (42501)');
SELECT throws_ok($$DELETE FROM wsctl.workspaces$$, '42501', NULL,
				 'wsctl_api member: DELETE wsctl.workspaces refused (42501)');
SELECT throws_ok($$SELECT * FROM wsctl.workspaces$$, '42501', NULL,
				 'wsctl_api member: SELECT wsctl.workspaces refused (42501)');
SELECT throws_ok($$UPDATE wsctl.workspace_info SET desired_state = 'RUNNING'$$, '42501', NULL,
				 'wsctl_api member: UPDATE through the view workspace_info refused (42501)');
SELECT throws_ok($$INSERT INTO wsctl.workspace_info (owner_user_id, name, image_ref, home_store_key)
				   VALUES (gen_random_uuid(), 'x', 'busybox', 'k')$$, '42501', NULL,
				 'wsctl_api member: INSERT through the view workspace_info refused (42501)');
SELECT throws_ok($$DELETE FROM wsctl.workspace_info$$, '42501', NULL,
				 'wsctl_api member: DELETE through the view workspace_info refused (42501)');
SELECT throws_ok($$SELECT * FROM wsctl.column_owners$$, '42501', NULL,
				 'wsctl_api member: SELECT wsctl.column_owners refused (42501)');
SELECT throws_ok($$SELECT wsctl._check_running_slot(gen_random_uuid(), NULL)$$, '42501', NULL,
				 'wsctl_api member: internal functions are not callable (42501)');
SELECT throws_ok($$SELECT wsctl.recover_workspace('0000000d-0000-0000-0000-000000000001')$$, '42501', NULL,
				 'wsctl_api member: recover_workspace refused (42501)');
SELECT is((SELECT count(*)::int FROM wsctl.workspace_info WHERE id = '0000000d-0000-0000-0000-000000000002'), 1,
		  'wsctl_api member can SELECT wsctl.workspace_info');
SELECT is((SELECT name FROM wsctl.create_workspace('0000000e-0000-0000-0000-000000000001', 'by api role', 'busybox',
												   'STANDBY')),
		  'by api role', 'wsctl_api member can create_workspace (while declaring "reconciler" itself)');
SELECT is((SELECT name FROM wsctl.list_workspaces('0000000e-0000-0000-0000-000000000001')), 'by api role',
		  'wsctl_api member can list_workspaces');
SELECT is((SELECT name FROM wsctl.get_workspace('0000000d-0000-0000-0000-000000000002')), 'fixture',
		  'wsctl_api member can get_workspace');
SELECT is((SELECT desired_state::text FROM wsctl.set_desired_state('0000000d-0000-0000-0000-000000000002', 'PENDING')),
		  'PENDING', 'wsctl_api member can set_desired_state');
SELECT is((SELECT memo FROM wsctl.update_workspace('0000000d-0000-0000-0000-000000000002', memo => 'via api role')),
		  'via api role', 'wsctl_api member can update_workspace');
SELECT is(wsctl.wake_workspace('0000000d-0000-0000-0000-000000000002') ->> 'message', 'start required',
		  'wsctl_api member can wake_workspace');
SELECT is((SELECT deleted_at IS NOT NULL FROM wsctl.delete_workspace('0000000d-0000-0000-0000-000000000002')),
		  true, 'wsctl_api member can delete_workspace');
SELECT is(current_setting('wsctl.component'), 'reconciler',
		  'the API functions'' component setting does not leak into the caller''s transaction');
SELECT is(wsctl.plan_operation('STANDBY', 'RUNNING', NULL, NULL)::text, 'STARTING',
		  'wsctl_api member can call the pure state-machine functions');
RESET ROLE;

-- A wsctl_admin member: recover_workspace too.
SET LOCAL ROLE wsctl_tap_admin;
SET LOCAL wsctl.component = '';
SELECT is((SELECT (operation, error_info IS NULL, op_id)::text
			 FROM wsctl.recover_workspace('0000000d-0000-0000-0000-000000000001')),
		  '(NONE,t,0000000d-0000-0000-0000-0000000000ff)',
		  'wsctl_admin member can recover_workspace (operation reset, error cleared, op_id kept)');
SELECT is((SELECT name FROM wsctl.get_workspace('0000000d-0000-0000-0000-000000000001')), 'fixture',
		  'wsctl_admin member can use the API too (member of wsctl_api)');
SELECT throws_ok($$DELETE FROM wsctl.workspaces$$, '42501', NULL,
				 'wsctl_admin member cannot purge rows directly (42501)');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
