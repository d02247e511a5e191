-- test/pgtap/state_machine.sql: the pure state-machine functions, table-driven.
--
-- Every row of the tables of SPEC section 2 (2.2 levels and display, 2.6 the
-- requests a state accepts, 2.10 operation selection), the completion rules
-- of SPEC 4.3 with DESIGN section 2's decisions (DELETING from every live
-- state and from ERROR, ARCHIVING complete only with its own archive_key),
-- and the HealthMonitor's seven-step observation table of DESIGN section 2
-- over the full cross product of real resources x workspace row.
--
-- Covers: status_level, plan_operation, operation_target, operation_complete,
-- archive_key_for, display_status, effective_status, request_allowed,
-- observe_status, observe_violation, valid_image_ref.
--
-- Expected values are written out from the spec, never computed with the
-- functions under test.

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(355);

-- ---------------------------------------------------------------------------
-- status_level (SPEC 2.2, DESIGN I1)
-- ---------------------------------------------------------------------------

SELECT is(wsctl.status_level(s::wsctl.status), lvl, format('status_level(%s) = %s', s, lvl))
  FROM (VALUES ('PENDING', 0), ('STANDBY', 10), ('RUNNING', 20),
			   ('ERROR', -1), ('DELETED', -2)) AS t(s, lvl);

SELECT is(wsctl.status_level(NULL), NULL, 'status_level(NULL) is NULL');

SELECT ok(wsctl.status_level('PENDING') < wsctl.status_level('STANDBY')
		  AND wsctl.status_level('STANDBY') < wsctl.status_level('RUNNING'),
		  'PENDING < STANDBY < RUNNING');

SELECT set_eq(
	$$SELECT e::text FROM unnest(enum_range(NULL::wsctl.status)) AS e$$,
	ARRAY['PENDING', 'STANDBY', 'RUNNING', 'ERROR', 'DELETED'],
	'wsctl.status has exactly the five statuses of SPEC 2.2');

SELECT set_eq(
	$$SELECT e::text FROM unnest(enum_range(NULL::wsctl.operation)) AS e$$,
	ARRAY['NONE', 'PROVISIONING', 'RESTORING', 'STARTING', 'STOPPING', 'ARCHIVING', 'DELETING'],
	'wsctl.operation has exactly the seven operations of SPEC 2.3');

-- ---------------------------------------------------------------------------
-- plan_operation: full cross product observed x desired x archive x deleted
-- (SPEC 2.10 + DESIGN section 2 and I5)
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE plan_expected (observed text, desired text, has_archive bool,
								 is_deleted bool, op text);
INSERT INTO plan_expected VALUES
	-- live workspaces
	('PENDING', 'PENDING', false, false, 'NONE'),
	('PENDING', 'PENDING', true,  false, 'NONE'),
	('PENDING', 'STANDBY', false, false, 'PROVISIONING'),
	('PENDING', 'STANDBY', true,  false, 'RESTORING'),
	('PENDING', 'RUNNING', false, false, 'PROVISIONING'),
	('PENDING', 'RUNNING', true,  false, 'RESTORING'),
	('STANDBY', 'PENDING', false, false, 'ARCHIVING'),
	('STANDBY', 'PENDING', true,  false, 'ARCHIVING'),
	('STANDBY', 'STANDBY', false, false, 'NONE'),
	('STANDBY', 'STANDBY', true,  false, 'NONE'),
	('STANDBY', 'RUNNING', false, false, 'STARTING'),
	('STANDBY', 'RUNNING', true,  false, 'STARTING'),
	('RUNNING', 'PENDING', false, false, 'STOPPING'),	-- through STANDBY: stop first
	('RUNNING', 'PENDING', true,  false, 'STOPPING'),
	('RUNNING', 'STANDBY', false, false, 'STOPPING'),
	('RUNNING', 'STANDBY', true,  false, 'STOPPING'),
	('RUNNING', 'RUNNING', false, false, 'NONE'),
	('RUNNING', 'RUNNING', true,  false, 'NONE'),
	('ERROR',   'PENDING', false, false, 'NONE'),		-- ERROR is skipped
	('ERROR',   'PENDING', true,  false, 'NONE'),
	('ERROR',   'STANDBY', false, false, 'NONE'),
	('ERROR',   'STANDBY', true,  false, 'NONE'),
	('ERROR',   'RUNNING', false, false, 'NONE'),
	('ERROR',   'RUNNING', true,  false, 'NONE'),
	('DELETED', 'PENDING', false, false, 'NONE'),
	('DELETED', 'PENDING', true,  false, 'NONE'),
	('DELETED', 'STANDBY', false, false, 'NONE'),
	('DELETED', 'STANDBY', true,  false, 'NONE'),
	('DELETED', 'RUNNING', false, false, 'NONE'),
	('DELETED', 'RUNNING', true,  false, 'NONE'),
	-- deleted_at set: DELETING from every state, ERROR included; DELETED is done
	('PENDING', 'PENDING', false, true, 'DELETING'),
	('PENDING', 'PENDING', true,  true, 'DELETING'),
	('PENDING', 'STANDBY', false, true, 'DELETING'),
	('PENDING', 'STANDBY', true,  true, 'DELETING'),
	('PENDING', 'RUNNING', false, true, 'DELETING'),
	('PENDING', 'RUNNING', true,  true, 'DELETING'),
	('STANDBY', 'PENDING', false, true, 'DELETING'),
	('STANDBY', 'PENDING', true,  true, 'DELETING'),
	('STANDBY', 'STANDBY', false, true, 'DELETING'),
	('STANDBY', 'STANDBY', true,  true, 'DELETING'),
	('STANDBY', 'RUNNING', false, true, 'DELETING'),
	('STANDBY', 'RUNNING', true,  true, 'DELETING'),
	('RUNNING', 'PENDING', false, true, 'DELETING'),
	('RUNNING', 'PENDING', true,  true, 'DELETING'),
	('RUNNING', 'STANDBY', false, true, 'DELETING'),
	('RUNNING', 'STANDBY', true,  true, 'DELETING'),
	('RUNNING', 'RUNNING', false, true, 'DELETING'),
	('RUNNING', 'RUNNING', true,  true, 'DELETING'),
	('ERROR',   'PENDING', false, true, 'DELETING'),
	('ERROR',   'PENDING', true,  true, 'DELETING'),
	('ERROR',   'STANDBY', false, true, 'DELETING'),
	('ERROR',   'STANDBY', true,  true, 'DELETING'),
	('ERROR',   'RUNNING', false, true, 'DELETING'),
	('ERROR',   'RUNNING', true,  true, 'DELETING'),
	('DELETED', 'PENDING', false, true, 'NONE'),
	('DELETED', 'PENDING', true,  true, 'NONE'),
	('DELETED', 'STANDBY', false, true, 'NONE'),
	('DELETED', 'STANDBY', true,  true, 'NONE'),
	('DELETED', 'RUNNING', false, true, 'NONE'),
	('DELETED', 'RUNNING', true,  true, 'NONE');

SELECT is((SELECT count(*)::int FROM plan_expected), 60,
		  'plan_operation table has all 5 x 3 x 2 x 2 rows');

SELECT is(wsctl.plan_operation(observed::wsctl.status, desired::wsctl.status,
							   CASE WHEN has_archive THEN 'archives/a/b/home.tar.gz' END,
							   CASE WHEN is_deleted THEN now() END)::text,
		  op,
		  format('plan_operation(%s, %s, archive %s, deleted %s) = %s',
				 observed, desired, CASE WHEN has_archive THEN 'set' ELSE 'NULL' END,
				 CASE WHEN is_deleted THEN 'set' ELSE 'NULL' END, op))
  FROM plan_expected
 ORDER BY is_deleted, observed, desired, has_archive;

SELECT set_eq(
	$$SELECT o::text, d::text, a, x,
			 wsctl.plan_operation(o, d, CASE WHEN a THEN 'k' END, CASE WHEN x THEN now() END)::text
		FROM unnest(enum_range(NULL::wsctl.status)) AS o,
			 unnest(ARRAY['PENDING', 'STANDBY', 'RUNNING']::wsctl.status[]) AS d,
			 unnest(ARRAY[false, true]) AS a,
			 unnest(ARRAY[false, true]) AS x$$,
	$$SELECT observed, desired, has_archive, is_deleted, op FROM plan_expected$$,
	'plan_operation over the full cross product equals the table');

SELECT is(wsctl.plan_operation(NULL, 'RUNNING', NULL, NULL), NULL, 'plan_operation(NULL observed) is NULL');
SELECT is(wsctl.plan_operation('PENDING', NULL, NULL, NULL), NULL, 'plan_operation(NULL desired) is NULL');
SELECT is(wsctl.plan_operation(NULL, NULL, NULL, now()), NULL, 'plan_operation(NULL, NULL, deleted) is NULL');
SELECT is(wsctl.plan_operation('PENDING', 'RUNNING', '', NULL), 'RESTORING',
		  'plan_operation: an empty (non-NULL) archive_key counts as set');

-- ---------------------------------------------------------------------------
-- operation_target (SPEC 4.3 completion table)
-- ---------------------------------------------------------------------------

SELECT is(wsctl.operation_target(op::wsctl.operation)::text, target,
		  format('operation_target(%s) = %s', op, coalesce(target, 'NULL')))
  FROM (VALUES ('NONE', NULL), ('PROVISIONING', 'STANDBY'), ('RESTORING', 'STANDBY'),
			   ('STARTING', 'RUNNING'), ('STOPPING', 'STANDBY'), ('ARCHIVING', 'PENDING'),
			   ('DELETING', 'DELETED')) AS t(op, target);

SELECT is(wsctl.operation_target(NULL), NULL, 'operation_target(NULL) is NULL');

-- ---------------------------------------------------------------------------
-- archive_key_for (SPEC 5.1 naming)
-- ---------------------------------------------------------------------------

SELECT is(wsctl.archive_key_for('11111111-1111-1111-1111-111111111111',
								'22222222-2222-2222-2222-222222222222'),
		  'archives/11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222/' ||
		  CASE current_setting('wsctl.archive_compression') WHEN 'gzip' THEN 'home.tar.gz' ELSE 'home.tar.zst' END,
		  'archive_key_for = archives/{id}/{op_id}/home.tar.zst (home.tar.gz with wsctl.archive_compression = gzip)');
SELECT is(wsctl.archive_prefix_for('11111111-1111-1111-1111-111111111111',
								   '22222222-2222-2222-2222-222222222222'),
		  'archives/11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222/',
		  'archive_prefix_for = archives/{id}/{op_id}/');
SELECT ok(wsctl.operation_complete('ARCHIVING', 'PENDING',
		  'archives/11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222/home.tar.gz',
		  '11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222'),
		  'ARCHIVING completes with a gzip archive of its op_id as well (keys compared by prefix)');
SELECT is(wsctl.archive_key_for(NULL, '22222222-2222-2222-2222-222222222222'), NULL,
		  'archive_key_for(NULL id) is NULL');
SELECT is(wsctl.archive_key_for('11111111-1111-1111-1111-111111111111', NULL), NULL,
		  'archive_key_for(NULL op_id) is NULL');
SELECT isnt(wsctl.archive_key_for('11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222'),
			wsctl.archive_key_for('11111111-1111-1111-1111-111111111111', '33333333-3333-3333-3333-333333333333'),
			'archive_key_for: a new op_id gives a new key');

-- ---------------------------------------------------------------------------
-- operation_complete: every operation x every observed status x archive key
-- (NULL, this operation's own, a stale one). Complete exactly when observed
-- is the operation's target; ARCHIVING also needs its own archive_key.
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE complete_true (op text, observed text, key_kind text);
INSERT INTO complete_true VALUES
	('PROVISIONING', 'STANDBY', 'null'), ('PROVISIONING', 'STANDBY', 'own'), ('PROVISIONING', 'STANDBY', 'stale'),
	('RESTORING',    'STANDBY', 'null'), ('RESTORING',    'STANDBY', 'own'), ('RESTORING',    'STANDBY', 'stale'),
	('STARTING',     'RUNNING', 'null'), ('STARTING',     'RUNNING', 'own'), ('STARTING',     'RUNNING', 'stale'),
	('STOPPING',     'STANDBY', 'null'), ('STOPPING',     'STANDBY', 'own'), ('STOPPING',     'STANDBY', 'stale'),
	('DELETING',     'DELETED', 'null'), ('DELETING',     'DELETED', 'own'), ('DELETING',     'DELETED', 'stale'),
	('ARCHIVING',    'PENDING', 'own');

CREATE TEMP TABLE complete_actual AS
SELECT op::text, obs::text AS observed, k AS key_kind,
	   wsctl.operation_complete(op, obs,
			CASE k WHEN 'null' THEN NULL
				   WHEN 'own' THEN 'archives/aaaaaaaa-0000-0000-0000-000000000001/bbbbbbbb-0000-0000-0000-000000000002/home.tar.gz'
				   ELSE 'archives/aaaaaaaa-0000-0000-0000-000000000001/cccccccc-0000-0000-0000-000000000003/home.tar.gz' END,
			'aaaaaaaa-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002') AS complete
  FROM unnest(enum_range(NULL::wsctl.operation)) AS op,
	   unnest(enum_range(NULL::wsctl.status)) AS obs,
	   unnest(ARRAY['null', 'own', 'stale']) AS k;

SELECT is((SELECT count(*)::int FROM complete_actual), 105, 'operation_complete: 7 x 5 x 3 combinations');
SELECT is((SELECT count(*)::int FROM complete_actual WHERE complete IS NULL), 0,
		  'operation_complete never returns NULL over the cross product');
SELECT set_eq($$SELECT op, observed, key_kind FROM complete_actual WHERE complete$$,
			  $$SELECT op, observed, key_kind FROM complete_true$$,
			  'operation_complete is true exactly on the rows of the completion table');

-- One assertion per operation and observed status (archive key: own).
SELECT is(a.complete, t.op IS NOT NULL,
		  format('operation_complete(%s, observed %s, own key) = %s', a.op, a.observed, t.op IS NOT NULL))
  FROM complete_actual AS a
  LEFT JOIN complete_true AS t USING (op, observed, key_kind)
 WHERE a.key_kind = 'own'
 ORDER BY a.op, a.observed;

-- ARCHIVING: the key must be this operation's own.
SELECT is(wsctl.operation_complete('ARCHIVING', 'PENDING', NULL,
								   'aaaaaaaa-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002'),
		  false, 'ARCHIVING with observed PENDING and NULL archive_key is not complete');
SELECT is(wsctl.operation_complete('ARCHIVING', 'PENDING',
								   'archives/aaaaaaaa-0000-0000-0000-000000000001/cccccccc-0000-0000-0000-000000000003/home.tar.gz',
								   'aaaaaaaa-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002'),
		  false, 'ARCHIVING with a stale archive_key (older op_id) is not complete');
SELECT is(wsctl.operation_complete('ARCHIVING', 'PENDING',
								   'archives/dddddddd-0000-0000-0000-000000000004/bbbbbbbb-0000-0000-0000-000000000002/home.tar.gz',
								   'aaaaaaaa-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002'),
		  false, 'ARCHIVING with another workspace''s key for the same op_id is not complete');
SELECT is(wsctl.operation_complete('ARCHIVING', 'PENDING',
								   'archives/aaaaaaaa-0000-0000-0000-000000000001/bbbbbbbb-0000-0000-0000-000000000002/home.tar.gz',
								   'aaaaaaaa-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002'),
		  true, 'ARCHIVING with observed PENDING and its own archive_key is complete');
SELECT is(wsctl.operation_complete('ARCHIVING', 'STANDBY',
								   'archives/aaaaaaaa-0000-0000-0000-000000000001/bbbbbbbb-0000-0000-0000-000000000002/home.tar.gz',
								   'aaaaaaaa-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002'),
		  false, 'ARCHIVING with its key but the volume still there (STANDBY) is not complete');
SELECT is(wsctl.operation_complete('ARCHIVING', 'PENDING',
								   'archives/aaaaaaaa-0000-0000-0000-000000000001/bbbbbbbb-0000-0000-0000-000000000002/home.tar.gz',
								   'aaaaaaaa-0000-0000-0000-000000000001', NULL),
		  false, 'ARCHIVING without an op_id is not complete (false, not NULL)');
SELECT is(wsctl.operation_complete(NULL, 'STANDBY', NULL, NULL, NULL), false,
		  'operation_complete(NULL operation) is false');
SELECT is(wsctl.operation_complete('STARTING', NULL, NULL, NULL, NULL), false,
		  'operation_complete with NULL observed is false');

-- ---------------------------------------------------------------------------
-- display_status (SPEC 2.2 derived states)
-- ---------------------------------------------------------------------------

SELECT is(wsctl.display_status(s::wsctl.status, CASE WHEN a THEN 'archives/x/y/home.tar.gz' END),
		  shown, format('display_status(%s, archive %s) = %s', s, CASE WHEN a THEN 'set' ELSE 'NULL' END, shown))
  FROM (VALUES ('PENDING', false, 'PENDING'), ('PENDING', true, 'ARCHIVED'),
			   ('STANDBY', false, 'STANDBY'), ('STANDBY', true, 'STANDBY'),
			   ('RUNNING', false, 'RUNNING'), ('RUNNING', true, 'RUNNING'),
			   ('ERROR',   false, 'ERROR'),   ('ERROR',   true, 'ERROR'),
			   ('DELETED', false, 'DELETED'), ('DELETED', true, 'DELETED')) AS t(s, a, shown);

SELECT is(wsctl.display_status(NULL, NULL), NULL, 'display_status(NULL) is NULL');

-- ---------------------------------------------------------------------------
-- effective_status: terminal error_info means ERROR before it is observed
-- ---------------------------------------------------------------------------

SELECT is(wsctl.effective_status(s::wsctl.status, info::jsonb)::text, expected,
		  format('effective_status(%s, %s) = %s', s, coalesce(info, 'NULL'), expected))
  FROM (VALUES
		('PENDING', NULL, 'PENDING'),
		('STANDBY', NULL, 'STANDBY'),
		('RUNNING', NULL, 'RUNNING'),
		('ERROR',   NULL, 'ERROR'),
		('DELETED', NULL, 'DELETED'),
		('PENDING', '{"reason": "Mismatch", "is_terminal": false}', 'PENDING'),
		('STANDBY', '{"reason": "Mismatch", "is_terminal": false}', 'STANDBY'),
		('RUNNING', '{"reason": "Unreachable", "is_terminal": false}', 'RUNNING'),
		('ERROR',   '{"reason": "Mismatch", "is_terminal": false}', 'ERROR'),
		('DELETED', '{"reason": "Mismatch", "is_terminal": false}', 'DELETED'),
		('PENDING', '{"reason": "Timeout", "is_terminal": true}', 'ERROR'),
		('STANDBY', '{"reason": "RetryExceeded", "is_terminal": true}', 'ERROR'),
		('RUNNING', '{"reason": "DataLost", "is_terminal": true}', 'ERROR'),
		('ERROR',   '{"reason": "Timeout", "is_terminal": true}', 'ERROR'),
		('DELETED', '{"reason": "Timeout", "is_terminal": true}', 'DELETED'),
		('RUNNING', '{"reason": "Mismatch"}', 'RUNNING'),
		('STANDBY', '{}', 'STANDBY')) AS t(s, info, expected);

-- ---------------------------------------------------------------------------
-- request_allowed: SPEC 2.6 (every status x every request, operation NONE
-- and every operation in progress). '-' in the spec (asking for the current
-- state) is accepted as an idempotent no-op.
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE request_expected (status text, request text, when_idle bool, when_busy bool);
INSERT INTO request_expected VALUES
	('PENDING', 'PENDING', true,  false),
	('PENDING', 'STANDBY', true,  false),
	('PENDING', 'RUNNING', true,  false),
	('PENDING', 'DELETE',  true,  false),
	('STANDBY', 'PENDING', true,  false),
	('STANDBY', 'STANDBY', true,  false),
	('STANDBY', 'RUNNING', true,  false),
	('STANDBY', 'DELETE',  true,  false),
	('RUNNING', 'PENDING', true,  false),
	('RUNNING', 'STANDBY', true,  false),
	('RUNNING', 'RUNNING', true,  false),
	('RUNNING', 'DELETE',  true,  false),
	('ERROR',   'PENDING', false, false),	-- after recovery
	('ERROR',   'STANDBY', false, false),
	('ERROR',   'RUNNING', false, false),
	('ERROR',   'DELETE',  true,  true),	-- whatever operation ERROR kept
	('DELETED', 'PENDING', false, false),
	('DELETED', 'STANDBY', false, false),
	('DELETED', 'RUNNING', false, false),
	('DELETED', 'DELETE',  false, false);

SELECT is(wsctl.request_allowed(status::wsctl.status, 'NONE', request), when_idle,
		  format('request_allowed(%s, NONE, %s) = %s', status, request, when_idle))
  FROM request_expected ORDER BY status, request;

SELECT is(array_agg(wsctl.request_allowed(r.status::wsctl.status, op, r.request) ORDER BY op),
		  array_fill(r.when_busy, ARRAY[6]),
		  format('request_allowed(%s, <each of the 6 operations>, %s) = %s', r.status, r.request, r.when_busy))
  FROM request_expected AS r,
	   unnest(enum_range('PROVISIONING'::wsctl.operation, NULL)) AS op
 GROUP BY r.status, r.request, r.when_busy
 ORDER BY r.status, r.request;

SELECT is(wsctl.request_allowed(s, 'NONE', req), false,
		  format('request_allowed(%s, NONE, %s) refuses an unknown request', s, coalesce(quote_literal(req), 'NULL')))
  FROM unnest(ARRAY['PENDING', 'RUNNING']::wsctl.status[]) AS s,
	   unnest(ARRAY['ERROR', 'DELETED', 'running', '', 'DROP', NULL]) AS req;

SELECT is(wsctl.request_allowed(NULL, 'NONE', 'DELETE'), false, 'request_allowed(NULL status) is false');
SELECT is(wsctl.request_allowed('PENDING', NULL, 'DELETE'), false, 'request_allowed(NULL operation) is false');

-- ---------------------------------------------------------------------------
-- observe_status / observe_violation: DESIGN section 2, first match wins
--   1 deleted_at, no container, no volume       -> DELETED
--   2 error_info.is_terminal                    -> ERROR
--   3 container without volume                  -> ERROR  (ContainerWithoutVolume)
--   4 container running                         -> RUNNING
--   5 volume exists                             -> STANDBY (stopped container too, I25)
--   6 archive_key set                           -> PENDING (ARCHIVED)
--   7 nothing, no archive: ERROR (DataLost) if last observed STANDBY/RUNNING and
--     no ARCHIVING/DELETING in progress; otherwise PENDING
-- ---------------------------------------------------------------------------

CREATE TEMP TABLE resources (ce bool, cr bool, ve bool);
INSERT INTO resources VALUES
	(false, false, false), (false, false, true),
	(true,  false, false), (true,  false, true),
	(true,  true,  false), (true,  true,  true);

CREATE TEMP TABLE errors (err text, info jsonb, terminal bool);
INSERT INTO errors VALUES
	('none',         NULL, false),
	('retrying',     '{"reason": "Mismatch", "message": "m", "is_terminal": false, "error_count": 1}', false),
	('terminal',     '{"reason": "Timeout", "message": "t", "is_terminal": true, "operation": "STARTING"}', true);

-- The workspace rows: archive x error x deleted x last observed x operation.
CREATE TEMP TABLE ws_cases AS
SELECT a AS has_archive, e.err, e.terminal, d AS is_deleted, last::text AS last_observed, op::text AS op,
	   jsonb_populate_record(NULL::wsctl.workspaces, jsonb_build_object(
			'id', 'aaaaaaaa-0000-0000-0000-000000000001',
			'owner_user_id', 'bbbbbbbb-0000-0000-0000-000000000002',
			'name', 'w', 'image_ref', 'busybox',
			'home_store_key', 'ws-aaaaaaaa-0000-0000-0000-000000000001-home',
			'observed_status', last, 'operation', op, 'desired_state', 'RUNNING',
			'op_id', CASE WHEN op <> 'NONE' THEN 'cccccccc-0000-0000-0000-000000000003' END,
			'archive_key', CASE WHEN a THEN 'archives/aaaaaaaa-0000-0000-0000-000000000001/dddddddd-0000-0000-0000-000000000004/home.tar.gz' END,
			'error_info', e.info,
			'error_count', 0,
			'deleted_at', CASE WHEN d THEN '2024-01-01T00:00:00Z' END)) AS ws
  FROM unnest(ARRAY[false, true]) AS a,
	   errors AS e,
	   unnest(ARRAY[false, true]) AS d,
	   unnest(ARRAY['PENDING', 'STANDBY', 'RUNNING']) AS last,
	   unnest(ARRAY['NONE', 'ARCHIVING', 'DELETING', 'STARTING']) AS op;

CREATE TEMP TABLE observe_actual AS
SELECT r.ce, r.cr, r.ve, c.has_archive, c.err, c.terminal, c.is_deleted, c.last_observed, c.op,
	   wsctl.observe_status(c.ws, r.ce, r.cr, r.ve)::text AS status,
	   wsctl.observe_violation(c.ws, r.ce, r.cr, r.ve) AS violation
  FROM resources AS r, ws_cases AS c;

SELECT is((SELECT count(*)::int FROM observe_actual), 6 * 2 * 3 * 2 * 3 * 4,
		  'observe_status: full cross product (6 resource sets x 144 rows) evaluated');

-- The expected result, written as the seven rules in order.
CREATE TEMP TABLE observe_expected AS
SELECT ce, cr, ve, has_archive, err, terminal, is_deleted, last_observed, op,
	   CASE
		WHEN is_deleted AND NOT ce AND NOT ve THEN 'DELETED'
		WHEN terminal THEN 'ERROR'
		WHEN ce AND NOT ve THEN 'ERROR'
		WHEN ce AND cr THEN 'RUNNING'
		WHEN ve THEN 'STANDBY'
		WHEN has_archive THEN 'PENDING'
		WHEN last_observed IN ('STANDBY', 'RUNNING') AND op NOT IN ('ARCHIVING', 'DELETING') THEN 'ERROR'
		ELSE 'PENDING'
	   END AS status,
	   CASE
		WHEN ce AND NOT ve THEN 'ContainerWithoutVolume'
		WHEN NOT ce AND NOT ve AND NOT has_archive AND NOT is_deleted
			 AND last_observed IN ('STANDBY', 'RUNNING') AND op NOT IN ('ARCHIVING', 'DELETING')
			THEN 'DataLost'
	   END AS violation
  FROM resources, errors, unnest(ARRAY[false, true]) AS has_archive,
	   unnest(ARRAY[false, true]) AS is_deleted,
	   unnest(ARRAY['PENDING', 'STANDBY', 'RUNNING']) AS last_observed,
	   unnest(ARRAY['NONE', 'ARCHIVING', 'DELETING', 'STARTING']) AS op;

SELECT set_eq(
	$$SELECT ce, cr, ve, has_archive, err, is_deleted, last_observed, op, status FROM observe_actual$$,
	$$SELECT ce, cr, ve, has_archive, err, is_deleted, last_observed, op, status FROM observe_expected$$,
	'observe_status over the full cross product follows the seven-step priority table');

SELECT set_eq(
	$$SELECT ce, cr, ve, has_archive, err, is_deleted, last_observed, op, coalesce(violation, '-') FROM observe_actual$$,
	$$SELECT ce, cr, ve, has_archive, err, is_deleted, last_observed, op, coalesce(violation, '-') FROM observe_expected$$,
	'observe_violation over the full cross product: ContainerWithoutVolume, DataLost or NULL');

-- One assertion per resource set x error x deleted (24 rows each), listing any
-- row whose status or violation differs, for readable failures.
SELECT is(string_agg(format('last %s op %s archive %s: got %s/%s, want %s/%s',
							a.last_observed, a.op, a.has_archive, a.status, coalesce(a.violation, '-'),
							x.status, coalesce(x.violation, '-')), '; ')
			FILTER (WHERE a.status IS DISTINCT FROM x.status OR a.violation IS DISTINCT FROM x.violation),
		  NULL,
		  format('observe_status/observe_violation with container exists %s running %s, volume %s, error %s, deleted %s',
				 a.ce, a.cr, a.ve, a.err, a.is_deleted))
  FROM observe_actual AS a
  JOIN observe_expected AS x USING (ce, cr, ve, has_archive, err, is_deleted, last_observed, op)
 GROUP BY a.ce, a.cr, a.ve, a.err, a.is_deleted
 ORDER BY a.ce, a.cr, a.ve, a.err, a.is_deleted;

SELECT is((SELECT count(*)::int FROM observe_actual
			WHERE (violation IS NOT NULL) AND status NOT IN ('ERROR', 'DELETED')), 0,
		  'a violation never leaves the workspace in a healthy status');

-- Named cases from the brief and the spec's scenarios.
SELECT is(wsctl.observe_status(c.ws, x.ce, x.cr, x.ve)::text || '/' || coalesce(wsctl.observe_violation(c.ws, x.ce, x.cr, x.ve), '-'),
		  x.expected, x.description)
  FROM (VALUES
	-- last observed, op, archive, error, deleted, container, running, volume
	('PENDING', 'NONE',         false, 'none',     false, false, false, false, 'PENDING/-',
	 'never provisioned: PENDING, no volume, no archive -> PENDING, not DataLost'),
	('PENDING', 'NONE',         true,  'none',     false, false, false, false, 'PENDING/-',
	 'archived: no volume, archive -> PENDING (shown ARCHIVED)'),
	('STANDBY', 'NONE',         false, 'none',     false, false, false, false, 'ERROR/DataLost',
	 'last STANDBY, volume gone, no archive -> ERROR DataLost'),
	('RUNNING', 'NONE',         false, 'none',     false, false, false, false, 'ERROR/DataLost',
	 'last RUNNING, everything gone, no archive -> ERROR DataLost'),
	('RUNNING', 'STARTING',     false, 'none',     false, false, false, false, 'ERROR/DataLost',
	 'last RUNNING during STARTING, everything gone -> ERROR DataLost'),
	('STANDBY', 'ARCHIVING',    false, 'none',     false, false, false, false, 'PENDING/-',
	 'ARCHIVING removes the volume on purpose: not DataLost'),
	('STANDBY', 'DELETING',     false, 'none',     false, false, false, false, 'PENDING/-',
	 'DELETING (deleted_at not yet visible) removes the volume on purpose: not DataLost'),
	('STANDBY', 'NONE',         true,  'none',     false, false, false, false, 'PENDING/-',
	 'last STANDBY, volume gone but archive kept -> PENDING'),
	('STANDBY', 'NONE',         false, 'none',     false, true,  false, false, 'ERROR/ContainerWithoutVolume',
	 'stopped container without volume -> ERROR ContainerWithoutVolume'),
	('RUNNING', 'NONE',         false, 'none',     false, true,  true,  false, 'ERROR/ContainerWithoutVolume',
	 'running container without volume -> ERROR ContainerWithoutVolume'),
	('PENDING', 'NONE',         false, 'none',     false, true,  true,  false, 'ERROR/ContainerWithoutVolume',
	 'ContainerWithoutVolume even for a never-provisioned workspace'),
	('RUNNING', 'NONE',         false, 'none',     false, true,  false, true,  'STANDBY/-',
	 'stopped container + volume -> STANDBY (I25)'),
	('STANDBY', 'NONE',         false, 'none',     false, false, false, true,  'STANDBY/-',
	 'volume only -> STANDBY'),
	('STANDBY', 'STARTING',     false, 'none',     false, true,  true,  true,  'RUNNING/-',
	 'running container + volume -> RUNNING'),
	('RUNNING', 'NONE',         false, 'none',     true,  false, false, false, 'DELETED/-',
	 'deleted, nothing left -> DELETED'),
	('ERROR',   'DELETING',     false, 'terminal', true,  false, false, false, 'DELETED/-',
	 'deleted ERROR workspace, nothing left -> DELETED (rule 1 before rule 2)'),
	('RUNNING', 'DELETING',     false, 'none',     true,  true,  true,  true,  'RUNNING/-',
	 'deleted but container still running -> RUNNING'),
	('RUNNING', 'DELETING',     false, 'none',     true,  false, false, true,  'STANDBY/-',
	 'deleted, container removed, volume left -> STANDBY'),
	('RUNNING', 'NONE',         false, 'terminal', false, true,  true,  true,  'ERROR/-',
	 'terminal error_info -> ERROR even with healthy resources'),
	('STANDBY', 'NONE',         false, 'retrying', false, false, false, true,  'STANDBY/-',
	 'non-terminal error_info does not change the observation'),
	('ERROR',   'STARTING',     false, 'none',     false, false, false, true,  'STANDBY/-',
	 'after recovery (error cleared) the real resources decide: volume -> STANDBY'),
	('ERROR',   'NONE',         true,  'none',     false, false, false, false, 'PENDING/-',
	 'after recovery, archive only -> PENDING')
	) AS x(last_observed, op, has_archive, err, is_deleted, ce, cr, ve, expected, description)
  CROSS JOIN LATERAL (
	SELECT jsonb_populate_record(NULL::wsctl.workspaces, jsonb_build_object(
			'id', 'aaaaaaaa-0000-0000-0000-000000000001',
			'observed_status', x.last_observed, 'operation', x.op,
			'archive_key', CASE WHEN x.has_archive THEN 'archives/k' END,
			'error_info', (SELECT info FROM errors WHERE errors.err = x.err),
			'deleted_at', CASE WHEN x.is_deleted THEN '2024-01-01T00:00:00Z' END)) AS ws) AS c;

-- ROW(...)::wsctl.workspaces also works as the argument (column order of the table).
SELECT is(wsctl.observe_status(ROW('aaaaaaaa-0000-0000-0000-000000000001', 'bbbbbbbb-0000-0000-0000-000000000002',
		'w', NULL, NULL, 'busybox', 'local-docker', 'docker-volume',
		'ws-aaaaaaaa-0000-0000-0000-000000000001-home', NULL,
		'RUNNING', 'NONE', NULL, NULL, 'RUNNING', NULL, NULL, NULL, 300, 86400,
		NULL, NULL, 0, NULL, now(), now(), NULL)::wsctl.workspaces, false, false, false)::text,
		  'ERROR', 'observe_status(ROW(...)::wsctl.workspaces): RUNNING and everything gone -> ERROR');

-- ---------------------------------------------------------------------------
-- valid_image_ref: Docker's reference grammar, at most 512 characters
-- ---------------------------------------------------------------------------

SELECT is(wsctl.valid_image_ref(ref), true, format('valid image reference %s', left(to_json(ref)::text, 80)))
  FROM unnest(ARRAY[
	'busybox',
	'debian:12',
	'ubuntu:22.04',
	'library/ubuntu',
	'docker.io/library/ubuntu:latest',
	'ghcr.io/owner/repo/image:v1.2.3',
	'localhost:5000/myimage',
	'localhost:5000/team/app:dev',
	'registry.example.com/app',
	'Registry.Example.COM/app',
	'my-registry.local:443/a/b/c:tag_1',
	'10.0.0.1:5000/img',
	'a',
	'a1',
	'my_image',
	'my__image',
	'my.image',
	'my-image',
	'my---image',
	'wsctl-busybox:test',
	'image:Tag_With.Mixed-Case',
	'image:' || repeat('t', 128),
	'busybox@sha256:' || repeat('a', 64),
	'busybox:1.36@sha256:' || repeat('0123456789abcdef', 4),
	'localhost:5000/img:tag@sha256:' || repeat('F', 64),
	'localhost',
	'localhost:5000',
	'localhost/app',
	'registryhost:5000/app',
	repeat('a/', 255) || 'ab'
  ]) AS ref;

SELECT is(wsctl.valid_image_ref(ref), false, format('invalid image reference %s', left(to_json(ref)::text, 80)))
  FROM unnest(ARRAY[
	'',
	'MyReg/app',			-- an uppercase first component is not a registry without a dot or port
	'Team/app:1',
	'Ubuntu',
	'UBUNTU:latest',
	'ubuntu:',
	':latest',
	'ubuntu latest',
	' ubuntu',
	'ubuntu ',
	'-ubuntu',
	'ubuntu-',
	'_ubuntu',
	'.ubuntu',
	'ubuntu//app',
	'/ubuntu',
	'ubuntu/',
	'ubuntu:la test',
	'ubuntu:-tag',
	'ubuntu:.tag',
	'image:' || repeat('t', 129),
	'ubuntu@sha256:abc',
	'ubuntu@sha256',
	'ubuntu@' || repeat('a', 64),
	'ubuntu:1@',
	'my.-image',
	'my_-image',
	'my___image',
	'my..image',
	E'debian:12\n',
	E'debian\t:12',
	'debian;rm -rf /',
	'$(reboot)',
	'debian:12''',
	'http://registry/app',
	'-registry.com/app',
	'registry-.com/app',
	'registry.com:port/app',
	'registry.com:123456/app',
	'ubuntu:22.04:extra',
	'우분투',
	repeat('a/', 256) || 'a'
  ]) AS ref;

SELECT is(char_length(repeat('a/', 255) || 'ab'), 512, 'the long valid reference above is exactly 512 characters');
SELECT is(char_length(repeat('a/', 256) || 'a'), 513, 'the long invalid reference above is 513 characters');
SELECT is(wsctl.valid_image_ref(NULL), NULL, 'valid_image_ref(NULL) is NULL (STRICT)');

SELECT * FROM finish();
ROLLBACK;
