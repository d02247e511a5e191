-- test/upgrade/wsctl--0.1.sql: a kept copy of wsctl 0.1's install script, for
-- the upgrade test (test/upgrade/upgrade.t) only; never installed by `make install`.
--
-- Generated from commit 83fb925 (the last commit of 0.1) exactly as its
-- Makefile built wsctl--0.1.sql, the files of src/sql/ concatenated in byte
-- order, with this header in front:
--
--   for f in $(git ls-tree --name-only 83fb925 src/sql/ | grep '\.sql$' | LC_ALL=C sort); do
--       git show "83fb925:$f"
--   done
--
-- Do not edit: it is what databases created with 0.1 hold.

-- 00_types.sql: wsctl's enums.
--
-- The extension's objects live in schema wsctl, which the script creates
-- so that it is a member of the extension and DROP EXTENSION removes it
-- (the control file names pg_catalog, as pg_cron does, so that nothing
-- lands in whatever schema happens to be first in search_path).
-- This file is the first of the ordered sources that the Makefile
-- concatenates into wsctl--<version>.sql.

\echo Use "CREATE EXTENSION wsctl" to load this file. \quit

CREATE SCHEMA wsctl;
COMMENT ON SCHEMA wsctl IS 'wsctl: workspace control plane (state machine, SQL API, workers)';

-- Observed status. PENDING < STANDBY < RUNNING are ordered (status_level);
-- ERROR and DELETED are outside the order. desired_state reuses this type
-- but a CHECK keeps it to the three ordered values.
CREATE TYPE wsctl.status AS ENUM ('PENDING', 'STANDBY', 'RUNNING', 'ERROR', 'DELETED');
COMMENT ON TYPE wsctl.status IS 'Workspace status: PENDING(0) < STANDBY(10) < RUNNING(20); ERROR and DELETED are unordered';

CREATE TYPE wsctl.operation AS ENUM
	('NONE', 'PROVISIONING', 'RESTORING', 'STARTING', 'STOPPING', 'ARCHIVING', 'DELETING');
COMMENT ON TYPE wsctl.operation IS 'Operation in progress on a workspace; NONE when stable';

CREATE TYPE wsctl.instance_backend AS ENUM ('local-docker', 'k8s');
COMMENT ON TYPE wsctl.instance_backend IS 'Where the workspace container runs';

CREATE TYPE wsctl.storage_backend AS ENUM ('docker-volume', 'minio');
COMMENT ON TYPE wsctl.storage_backend IS 'Where the workspace home volume lives';

-- The components that may write wsctl.workspaces (DESIGN section 3).
CREATE TYPE wsctl.component AS ENUM
	('api', 'ttl_manager', 'health_monitor', 'reconciler', 'admin');
COMMENT ON TYPE wsctl.component IS 'Writers of wsctl.workspaces, declared in the setting wsctl.component';
-- 10_tables.sql: the workspaces table and its partial indexes (SPEC 3.2, 3.7).

CREATE TABLE wsctl.workspaces (
	id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	owner_user_id       uuid NOT NULL,
	name                varchar(255) NOT NULL,
	description         text,
	memo                text,
	image_ref           varchar(512) NOT NULL,
	instance_backend    wsctl.instance_backend NOT NULL DEFAULT 'local-docker',
	storage_backend     wsctl.storage_backend NOT NULL DEFAULT 'docker-volume',
	home_store_key      varchar(512) NOT NULL,
	home_ctx            jsonb,
	observed_status     wsctl.status NOT NULL DEFAULT 'PENDING',
	operation           wsctl.operation NOT NULL DEFAULT 'NONE',
	op_started_at       timestamptz,
	op_id               uuid,
	desired_state       wsctl.status NOT NULL DEFAULT 'RUNNING',
	archive_key         varchar(512),
	observed_at         timestamptz,
	last_access_at      timestamptz,
	standby_ttl_seconds int NOT NULL DEFAULT 300,
	archive_ttl_seconds int NOT NULL DEFAULT 86400,
	error_message       text,
	error_info          jsonb,
	error_count         int NOT NULL DEFAULT 0,
	previous_status     wsctl.status,
	created_at          timestamptz NOT NULL DEFAULT now(),
	updated_at          timestamptz NOT NULL DEFAULT now(),
	deleted_at          timestamptz,

	CONSTRAINT workspaces_desired_state_check
		CHECK (desired_state IN ('PENDING', 'STANDBY', 'RUNNING')),
	CONSTRAINT workspaces_home_store_key_check
		CHECK (home_store_key = 'ws-' || id::text || '-home'),
	CONSTRAINT workspaces_error_count_check CHECK (error_count >= 0),
	CONSTRAINT workspaces_error_info_check
		CHECK (error_info IS NULL OR jsonb_typeof(error_info) = 'object')
);

COMMENT ON TABLE wsctl.workspaces IS
	'One row per workspace; each column has one owning component (docs/ownership.md)';
COMMENT ON COLUMN wsctl.workspaces.observed_status IS 'Last observed status (health_monitor)';
COMMENT ON COLUMN wsctl.workspaces.operation IS 'Operation in progress (reconciler)';
COMMENT ON COLUMN wsctl.workspaces.op_id IS 'Idempotency key of the current operation, kept across retries and in ERROR (reconciler)';
COMMENT ON COLUMN wsctl.workspaces.desired_state IS 'Target state: PENDING, STANDBY or RUNNING (api, ttl_manager)';
COMMENT ON COLUMN wsctl.workspaces.archive_key IS 'Key of the committed archive in S3 (reconciler)';
COMMENT ON COLUMN wsctl.workspaces.error_info IS 'Structured error: reason, message, is_terminal, operation, error_count, context, occurred_at';
COMMENT ON COLUMN wsctl.workspaces.deleted_at IS 'Soft-delete time (api); the row stays for the archive GC';

-- TTL manager polling (SPEC 3.7).
CREATE INDEX idx_workspaces_ttl_check ON wsctl.workspaces (observed_status)
	WHERE deleted_at IS NULL AND observed_status IN ('RUNNING', 'STANDBY') AND operation = 'NONE';

-- Reconciler work list: live rows not converged or in flight, and deleted
-- rows whose deletion has not finished. This is the one index that also
-- covers deleted rows: DELETING is driven by deleted_at (DESIGN section 2).
CREATE INDEX idx_workspaces_reconcile ON wsctl.workspaces (id)
	WHERE (deleted_at IS NULL AND (observed_status <> desired_state OR operation <> 'NONE'))
	   OR (deleted_at IS NOT NULL AND (observed_status <> 'DELETED' OR operation <> 'NONE'));

-- Operations in progress.
CREATE INDEX idx_workspaces_operation ON wsctl.workspaces (operation)
	WHERE deleted_at IS NULL AND operation <> 'NONE';

-- Running-slot counts (per user and global): a slot is claimed by a
-- request to run, an observed RUNNING container, or a STARTING claim
-- (DESIGN section 4, I27).
-- A deleted workspace whose container still runs keeps its slot until the
-- container is gone.
CREATE INDEX idx_workspaces_user_running ON wsctl.workspaces (owner_user_id)
	WHERE (deleted_at IS NULL AND desired_state = 'RUNNING')
	   OR observed_status = 'RUNNING' OR operation = 'STARTING';
CREATE INDEX idx_workspaces_running ON wsctl.workspaces (id)
	WHERE (deleted_at IS NULL AND desired_state = 'RUNNING')
	   OR observed_status = 'RUNNING' OR operation = 'STARTING';

CREATE INDEX idx_workspaces_owner ON wsctl.workspaces (owner_user_id, created_at)
	WHERE deleted_at IS NULL;

-- Locks the workers and the API functions depend on. They are row locks on
-- this table, which nobody but the extension's owner may read or update,
-- so no other role can take or block them (an advisory-lock key could be
-- taken by any LOGIN role: DESIGN section 5).
--   running_slots    serializes the API's running-slot claims
--   starting_claims  serializes the reconciler's STARTING claims
CREATE TABLE wsctl.locks (
	name text PRIMARY KEY,
	note text NOT NULL
);
COMMENT ON TABLE wsctl.locks IS
	'Rows whose FOR UPDATE locks serialize running-slot claims; only the extension owner can lock them';
INSERT INTO wsctl.locks (name, note) VALUES
	('running_slots', 'API functions that can add a running slot (create, set_desired_state, wake)'),
	('starting_claims', 'the reconciler''s STARTING claims, re-checked against the limits');

-- Every attempt at an operation, launched by the reconciler and judged from
-- its worker's outcome. An attempt without an outcome and without a live
-- worker has vanished (its worker died, or the server restarted): that
-- counts as a failure like any other, so a crash loop ends in RetryExceeded.
-- Rows of an operation are removed when it completes or is superseded.
CREATE TABLE wsctl.operation_attempts (
	workspace_id uuid NOT NULL REFERENCES wsctl.workspaces (id) ON DELETE CASCADE,
	op_id        uuid NOT NULL,
	attempt      int NOT NULL CHECK (attempt > 0),
	operation    wsctl.operation NOT NULL,
	launched_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at  timestamptz,
	outcome      text CHECK (outcome IN ('succeeded', 'failed', 'vanished', 'superseded')),
	reason       text,
	code         text,
	message      text,
	PRIMARY KEY (workspace_id, op_id, attempt),
	CHECK ((outcome IS NULL) = (finished_at IS NULL))
);
COMMENT ON TABLE wsctl.operation_attempts IS
	'Attempts at the operations in flight or failed: launched by the reconciler, finished with the worker''s outcome';
-- 15_native.sql: functions implemented in C (wsctl.so).

CREATE FUNCTION wsctl._wake_reconciler()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_wake_reconciler';
COMMENT ON FUNCTION wsctl._wake_reconciler() IS
	'Wakes the StateReconciler when the current transaction commits (no effect if it aborts)';

CREATE FUNCTION wsctl._wake_event_listener()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_wake_event_listener';
COMMENT ON FUNCTION wsctl._wake_event_listener() IS
	'Wakes the EventListener when the current transaction commits (no effect if it aborts)';

CREATE FUNCTION wsctl._wake_health_monitor()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_wake_health_monitor';
COMMENT ON FUNCTION wsctl._wake_health_monitor() IS
	'Asks the HealthMonitor to observe as soon as the current transaction commits';

CREATE FUNCTION wsctl._worker_status(
	OUT component text, OUT pid int, OUT leader bool, OUT started_at timestamptz,
	OUT last_tick timestamptz, OUT ticks bigint, OUT last_tick_ms float8,
	OUT docker_calls_last_tick bigint, OUT last_error text, OUT last_error_at timestamptz,
	OUT workspace_id uuid)
RETURNS SETOF record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_worker_status';
COMMENT ON FUNCTION wsctl._worker_status() IS 'Data of the wsctl.workers view, from shared memory';

CREATE VIEW wsctl.workers AS SELECT * FROM wsctl._worker_status();
COMMENT ON VIEW wsctl.workers IS
	'wsctl background workers: each component (pid, leader, ticks, last error) and each busy operation worker';

CREATE FUNCTION wsctl._sigv4_authorization(method text, path text, query text, headers text[],
										   payload_hash text, access_key text, secret_key text,
										   region text, service text, amz_date text)
RETURNS text[]
LANGUAGE c IMMUTABLE STRICT
AS 'MODULE_PATHNAME', 'wsctl_sigv4_authorization';
COMMENT ON FUNCTION wsctl._sigv4_authorization(text, text, text, text[], text, text, text, text, text, text) IS
	'AWS Signature V4 of one request (the S3 client''s signer): {Authorization, canonical request, string to sign}; for the known-answer tests, granted to nobody';
-- 20_state_machine.sql: the state machine as pure functions (DESIGN section 2).
--
-- Every rule about which operation to run, when it is complete, what a set
-- of real resources means and which requests a state accepts lives here
-- once. The C workers and the API functions call these; nothing else
-- re-implements them, so the whole machine is testable without Docker.

CREATE FUNCTION wsctl.status_level(wsctl.status)
RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
	SELECT CASE $1
		WHEN 'PENDING' THEN 0
		WHEN 'STANDBY' THEN 10
		WHEN 'RUNNING' THEN 20
		WHEN 'ERROR' THEN -1
		WHEN 'DELETED' THEN -2
	END
$$;
COMMENT ON FUNCTION wsctl.status_level(wsctl.status) IS
	'Order of a status: PENDING 0, STANDBY 10, RUNNING 20; ERROR -1 and DELETED -2 are never compared';

CREATE FUNCTION wsctl.plan_operation(observed wsctl.status, desired wsctl.status,
									 archive_key text, deleted_at timestamptz)
RETURNS wsctl.operation
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN observed IS NULL OR desired IS NULL THEN NULL
		-- A deleted workspace is torn down from any state, ERROR included.
		WHEN deleted_at IS NOT NULL THEN
			CASE WHEN observed = 'DELETED' THEN 'NONE' ELSE 'DELETING' END
		WHEN observed IN ('ERROR', 'DELETED') THEN 'NONE'
		WHEN observed = desired THEN 'NONE'
		WHEN observed = 'PENDING' AND desired IN ('STANDBY', 'RUNNING') THEN
			CASE WHEN archive_key IS NULL THEN 'PROVISIONING' ELSE 'RESTORING' END
		WHEN observed = 'STANDBY' AND desired = 'RUNNING' THEN 'STARTING'
		WHEN observed = 'STANDBY' AND desired = 'PENDING' THEN 'ARCHIVING'
		-- RUNNING -> PENDING goes through STANDBY: stop first, archive next.
		WHEN observed = 'RUNNING' AND desired IN ('STANDBY', 'PENDING') THEN 'STOPPING'
		ELSE 'NONE'
	END::wsctl.operation
$$;
COMMENT ON FUNCTION wsctl.plan_operation(wsctl.status, wsctl.status, text, timestamptz) IS
	'The operation that moves observed one step towards desired (SPEC 2.10 with DESIGN section 2)';

CREATE FUNCTION wsctl.operation_target(wsctl.operation)
RETURNS wsctl.status
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
	SELECT CASE $1
		WHEN 'PROVISIONING' THEN 'STANDBY'
		WHEN 'RESTORING' THEN 'STANDBY'
		WHEN 'STARTING' THEN 'RUNNING'
		WHEN 'STOPPING' THEN 'STANDBY'
		WHEN 'ARCHIVING' THEN 'PENDING'
		WHEN 'DELETING' THEN 'DELETED'
	END::wsctl.status
$$;
COMMENT ON FUNCTION wsctl.operation_target(wsctl.operation) IS
	'The observed status at which an operation is complete; NULL for NONE';

CREATE FUNCTION wsctl.archive_prefix_for(workspace_id uuid, op_id uuid)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
	SELECT 'archives/' || workspace_id::text || '/' || op_id::text || '/'
$$;
COMMENT ON FUNCTION wsctl.archive_prefix_for(uuid, uuid) IS
	'Prefix of every object one ARCHIVING operation writes: archives/{id}/{op_id}/ (SPEC 5.1 naming)';

-- The file name follows wsctl.archive_compression at the time of the first
-- upload; a retry reuses whatever its op_id already uploaded, so keys are
-- compared by prefix, never rebuilt from the current setting.
CREATE FUNCTION wsctl.archive_key_for(workspace_id uuid, op_id uuid)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE STRICT
AS $$
	SELECT wsctl.archive_prefix_for(workspace_id, op_id) ||
		CASE current_setting('wsctl.archive_compression') WHEN 'gzip' THEN 'home.tar.gz'
			 ELSE 'home.tar.zst' END
$$;
COMMENT ON FUNCTION wsctl.archive_key_for(uuid, uuid) IS
	'Object key a new archive of one ARCHIVING operation gets: home.tar.zst, or home.tar.gz with wsctl.archive_compression = gzip';

CREATE FUNCTION wsctl.operation_complete(operation wsctl.operation, observed wsctl.status,
										 archive_key text, workspace_id uuid, op_id uuid)
RETURNS bool
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN operation IS NULL OR operation = 'NONE' THEN false
		WHEN observed IS DISTINCT FROM wsctl.operation_target(operation) THEN false
		-- ARCHIVING completes only with this operation's own archive: a
		-- workspace restored from an old archive still carries the old key.
		WHEN operation = 'ARCHIVING' THEN
			coalesce(starts_with(archive_key, wsctl.archive_prefix_for(workspace_id, op_id)), false)
		ELSE true
	END
$$;
COMMENT ON FUNCTION wsctl.operation_complete(wsctl.operation, wsctl.status, text, uuid, uuid) IS
	'Whether an operation is finished, judged from observation only (observed = target; ARCHIVING also needs its own archive_key)';

CREATE FUNCTION wsctl.display_status(observed wsctl.status, archive_key text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN observed = 'PENDING' AND archive_key IS NOT NULL THEN 'ARCHIVED'
		ELSE observed::text
	END
$$;
COMMENT ON FUNCTION wsctl.display_status(wsctl.status, text) IS
	'Status shown to users: PENDING with an archive is ARCHIVED, anything else unchanged';

-- The status a request is judged against: a workspace whose error_info is
-- terminal is in ERROR even before the HealthMonitor has observed it.
CREATE FUNCTION wsctl.effective_status(observed wsctl.status, error_info jsonb)
RETURNS wsctl.status
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN observed <> 'DELETED' AND coalesce((error_info ->> 'is_terminal')::bool, false)
			THEN 'ERROR'::wsctl.status
		ELSE observed
	END
$$;
COMMENT ON FUNCTION wsctl.effective_status(wsctl.status, jsonb) IS
	'observed_status, or ERROR when error_info is already terminal';

CREATE FUNCTION wsctl.request_allowed(observed wsctl.status, operation wsctl.operation,
									  request text)
RETURNS bool
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN observed IS NULL OR operation IS NULL OR request IS NULL THEN false
		WHEN observed = 'DELETED' THEN false
		-- ERROR keeps its failed operation; deleting is still allowed.
		WHEN observed = 'ERROR' THEN request = 'DELETE'
		-- Non-preemptive: nothing is accepted while an operation runs.
		WHEN operation <> 'NONE' THEN false
		ELSE request IN ('PENDING', 'STANDBY', 'RUNNING', 'DELETE')
	END
$$;
COMMENT ON FUNCTION wsctl.request_allowed(wsctl.status, wsctl.operation, text) IS
	'Whether the API accepts a request (PENDING, STANDBY, RUNNING or DELETE) in this state (SPEC 2.6)';

CREATE FUNCTION wsctl.observe_violation(ws wsctl.workspaces, container_exists bool,
										container_running bool, volume_exists bool)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN container_exists AND NOT volume_exists THEN 'ContainerWithoutVolume'
		-- Nothing left and no archive is data loss only if there was data:
		-- never for a workspace that was not provisioned yet, nor while an
		-- operation that removes the volume on purpose is under way.
		WHEN NOT container_exists AND NOT volume_exists AND ws.archive_key IS NULL
			 AND ws.deleted_at IS NULL
			 AND ws.observed_status IN ('STANDBY', 'RUNNING')
			 AND ws.operation NOT IN ('ARCHIVING', 'DELETING') THEN 'DataLost'
	END
$$;
COMMENT ON FUNCTION wsctl.observe_violation(wsctl.workspaces, bool, bool, bool) IS
	'The invariant a set of real resources violates for this workspace (ContainerWithoutVolume or DataLost), or NULL';

CREATE FUNCTION wsctl.observe_status(ws wsctl.workspaces, container_exists bool,
									 container_running bool, volume_exists bool)
RETURNS wsctl.status
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN ws.deleted_at IS NOT NULL AND NOT container_exists AND NOT volume_exists
			THEN 'DELETED'
		WHEN coalesce((ws.error_info ->> 'is_terminal')::bool, false) THEN 'ERROR'
		WHEN wsctl.observe_violation(ws, container_exists, container_running, volume_exists)
			IS NOT NULL THEN 'ERROR'
		WHEN container_exists AND container_running THEN 'RUNNING'
		-- A stopped container with its volume is STANDBY (I25).
		WHEN volume_exists THEN 'STANDBY'
		-- No volume: archived (archive_key set) or never provisioned.
		ELSE 'PENDING'
	END::wsctl.status
$$;
COMMENT ON FUNCTION wsctl.observe_status(wsctl.workspaces, bool, bool, bool) IS
	'HealthMonitor priority table (DESIGN section 2): what the real container and volume mean for this workspace';
-- 30_ownership.sql: the Single Writer Principle, enforced (DESIGN section 3).
--
-- Every write path declares its component in the setting wsctl.component
-- (the API functions carry it as a function-level SET; the workers set it
-- per transaction). A BEFORE trigger compares each changed column with the
-- ownership table below and rejects a write by anyone else with WS403.
-- Ordinary roles cannot write the table at all, so declaring a component
-- yourself buys nothing.

CREATE TABLE wsctl.column_owners (
	column_name name PRIMARY KEY,
	owners      wsctl.component[] NOT NULL,
	note        text
);
COMMENT ON TABLE wsctl.column_owners IS
	'Which components may change each column of wsctl.workspaces; an empty list means immutable';

INSERT INTO wsctl.column_owners (column_name, owners, note) VALUES
	('id',                  '{}', 'set at creation'),
	('owner_user_id',       '{}', 'set at creation'),
	('name',                '{api}', NULL),
	('description',         '{api}', NULL),
	('memo',                '{api}', NULL),
	('image_ref',           '{}', 'set at creation'),
	('instance_backend',    '{}', 'set at creation'),
	('storage_backend',     '{}', 'set at creation'),
	('home_store_key',      '{}', 'set at creation: ws-{id}-home'),
	('home_ctx',            '{reconciler}', 'storage provider context'),
	('observed_status',     '{health_monitor}', NULL),
	('observed_at',         '{health_monitor}', NULL),
	('operation',           '{reconciler,admin}', 'admin resets it on recovery'),
	('op_started_at',       '{reconciler,admin}', 'admin resets it on recovery'),
	('op_id',               '{reconciler}', 'kept in ERROR for GC protection'),
	('desired_state',       '{api,ttl_manager}', 'ttl_manager writes with compare-and-set'),
	('archive_key',         '{reconciler}', NULL),
	('last_access_at',      '{reconciler,api}', 'STOPPING, RESTORING and STARTING completion, and activity functions'),
	('standby_ttl_seconds', '{api}', NULL),
	('archive_ttl_seconds', '{api}', NULL),
	('error_message',       '{reconciler,admin}', 'mirrors error_info.message; health_monitor with its error_info'),
	('error_info',          '{reconciler,admin}', 'health_monitor only for invariant violations, when NULL'),
	('error_count',         '{reconciler,admin}', NULL),
	('previous_status',     '{reconciler}', NULL),
	('created_at',          '{}', 'set at creation'),
	('updated_at',          '{}', 'maintained by the trigger'),
	('deleted_at',          '{api}', NULL);

-- The one exception to the table: the HealthMonitor records the two
-- invariant violations it detects, and only over an empty error_info (I3).
CREATE FUNCTION wsctl._health_monitor_may_set_error(old_info jsonb, new_info jsonb)
RETURNS bool
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT old_info IS NULL
		AND new_info ->> 'reason' IN ('ContainerWithoutVolume', 'DataLost')
		AND (new_info ->> 'is_terminal')::bool IS TRUE
$$;
COMMENT ON FUNCTION wsctl._health_monitor_may_set_error(jsonb, jsonb) IS
	'Whether a HealthMonitor write of error_info records an invariant violation over a NULL error_info';

CREATE FUNCTION wsctl._declared_component()
RETURNS wsctl.component
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	declared text := current_setting('wsctl.component', true);
BEGIN
	IF declared IS NULL OR declared = '' THEN
		RAISE EXCEPTION 'write to wsctl.workspaces without a declared component'
			USING ERRCODE = 'WS403',
				  DETAIL = 'The setting wsctl.component is not set in this transaction.',
				  HINT = 'Change workspaces through the wsctl API functions.';
	END IF;
	RETURN declared::wsctl.component;
END
$$;
COMMENT ON FUNCTION wsctl._declared_component() IS
	'The component declared in wsctl.component; WS403 when none is';

CREATE FUNCTION wsctl._guard_workspace_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	component wsctl.component := wsctl._declared_component();
	refused   record;
BEGIN
	IF TG_OP = 'INSERT' THEN
		IF component <> 'api' THEN
			RAISE EXCEPTION 'component "%" may not create workspaces', component
				USING ERRCODE = 'WS403', HINT = 'Only component "api" creates workspaces.';
		END IF;
		-- A new workspace starts from nothing: the columns other components
		-- own must hold their initial values.
		IF NEW.observed_status <> 'PENDING' OR NEW.operation <> 'NONE'
		   OR NEW.op_id IS NOT NULL OR NEW.op_started_at IS NOT NULL
		   OR NEW.archive_key IS NOT NULL OR NEW.observed_at IS NOT NULL
		   OR NEW.error_info IS NOT NULL OR NEW.error_message IS NOT NULL
		   OR NEW.error_count <> 0 OR NEW.previous_status IS NOT NULL
		   OR NEW.home_ctx IS NOT NULL OR NEW.deleted_at IS NOT NULL THEN
			RAISE EXCEPTION 'component "api" may only create a workspace in its initial state'
				USING ERRCODE = 'WS403';
		END IF;
		NEW.created_at := now();
		NEW.updated_at := NEW.created_at;
		RETURN NEW;
	END IF;

	IF TG_OP = 'DELETE' THEN
		IF component <> 'admin' THEN
			RAISE EXCEPTION 'component "%" may not remove workspace rows', component
				USING ERRCODE = 'WS403',
					  HINT = 'Workspaces are soft-deleted with wsctl.delete_workspace(); only component "admin" purges rows.';
		END IF;
		RETURN OLD;
	END IF;

	SELECT n.key AS column_name, c.owners
	  INTO refused
	  FROM jsonb_each(to_jsonb(NEW)) AS n
	  JOIN jsonb_each(to_jsonb(OLD)) AS o USING (key)
	  LEFT JOIN wsctl.column_owners AS c ON c.column_name = n.key
	 WHERE n.value IS DISTINCT FROM o.value
	   AND NOT component = ANY (coalesce(c.owners, '{}'))
	   AND NOT (component = 'health_monitor'
				AND wsctl._health_monitor_may_set_error(OLD.error_info, NEW.error_info)
				AND (n.key = 'error_info'
					 OR (n.key = 'error_message'
						 AND NEW.error_message IS NOT DISTINCT FROM NEW.error_info ->> 'message')))
	 ORDER BY n.key
	 LIMIT 1;

	IF FOUND THEN
		RAISE EXCEPTION 'component "%" may not change column "%" of wsctl.workspaces',
				component, refused.column_name
			USING ERRCODE = 'WS403',
				  DETAIL = CASE WHEN cardinality(coalesce(refused.owners, '{}')) = 0
							   THEN format('Column "%s" cannot be changed.', refused.column_name)
							   ELSE format('Column "%s" is owned by: %s.', refused.column_name,
										   array_to_string(refused.owners, ', '))
						   END;
	END IF;

	-- observed_at alone is the HealthMonitor's heartbeat, not a change.
	IF (to_jsonb(NEW) - 'observed_at') IS DISTINCT FROM (to_jsonb(OLD) - 'observed_at') THEN
		NEW.updated_at := now();
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION wsctl._guard_workspace_write() IS
	'BEFORE trigger: rejects (WS403) any change to a column the declared component does not own; maintains updated_at';

CREATE TRIGGER workspaces_guard_write
	BEFORE INSERT OR UPDATE OR DELETE ON wsctl.workspaces
	FOR EACH ROW EXECUTE FUNCTION wsctl._guard_workspace_write();

-- TRUNCATE fires no row trigger, so it gets its own: it is a removal of
-- rows like DELETE, which only component "admin" may do.
CREATE FUNCTION wsctl._guard_workspace_truncate()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	component wsctl.component := wsctl._declared_component();
BEGIN
	IF component <> 'admin' THEN
		RAISE EXCEPTION 'component "%" may not truncate wsctl.workspaces', component
			USING ERRCODE = 'WS403',
				  HINT = 'Workspaces are soft-deleted with wsctl.delete_workspace(); only component "admin" purges rows.';
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION wsctl._guard_workspace_truncate() IS
	'BEFORE TRUNCATE trigger: WS403 unless the declared component is admin';

CREATE TRIGGER workspaces_guard_truncate
	BEFORE TRUNCATE ON wsctl.workspaces
	FOR EACH STATEMENT EXECUTE FUNCTION wsctl._guard_workspace_truncate();
-- 40_running_limits.sql: running-slot accounting (SPEC section 9, DESIGN section 4).
--
-- A workspace claims a running slot when it is asked to run (live, desired
-- RUNNING), when its container is observed RUNNING, or while it is STARTING.
-- Every API path that can add a slot (create, set_desired_state,
-- wake_workspace) first takes the row lock 'running_slots' in wsctl.locks,
-- then counts, then writes, and commits with the lock held. Under READ
-- COMMITTED each statement takes a fresh snapshot, so the count taken
-- after the lock sees every claim committed before it: two claims for the
-- last slot are serialized and the second sees the first.
-- The reconciler's STARTING claim never adds to what the API counts (the
-- workspace is already desired RUNNING), so it takes its own lock,
-- 'starting_claims', with SKIP LOCKED: an API session idle in a
-- transaction that holds 'running_slots' never stalls the reconciler.

-- The lock is a row of wsctl.locks, which no role but the extension's owner
-- can lock: an advisory key could be held forever by any LOGIN role.
CREATE FUNCTION wsctl._lock_running_slots()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'running-slot claims require READ COMMITTED isolation'
			USING ERRCODE = '0A000',
				  DETAIL = format('The transaction runs at %s, whose snapshot could miss a concurrent claim.',
								  upper(current_setting('transaction_isolation'))),
				  HINT = 'Call the wsctl API outside REPEATABLE READ and SERIALIZABLE transactions.';
	END IF;
	PERFORM 1 FROM wsctl.locks AS l WHERE l.name = 'running_slots' FOR UPDATE;
END
$$;
COMMENT ON FUNCTION wsctl._lock_running_slots() IS
	'Serializes the API''s running-slot claims: row lock on wsctl.locks ''running_slots'', held to commit';

-- Raises WS429 unless one more slot fits for workspace_id's owner. The
-- caller holds the lock (_lock_running_slots). The workspace itself is not
-- counted, so re-asking for a slot it already holds never fails.
-- count_requests = false is the reconciler's re-check: it counts only
-- workspaces that are really running or starting (SPEC 9.3).
CREATE FUNCTION wsctl._check_running_slot(owner uuid, workspace_id uuid,
										  count_requests bool DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	per_user_max int := current_setting('wsctl.max_running_per_user')::int;
	global_max   int := current_setting('wsctl.max_running_global')::int;
	holders      jsonb;
	n            int;
BEGIN
	SELECT count(*), coalesce(jsonb_agg(jsonb_build_object(
				'id', w.id, 'name', w.name,
				'display_status', wsctl.display_status(w.observed_status, w.archive_key))
			ORDER BY w.created_at, w.id), '[]')
	  INTO n, holders
	  FROM wsctl.workspaces AS w
	 WHERE w.owner_user_id = owner AND w.id IS DISTINCT FROM workspace_id
	   AND ((count_requests AND w.deleted_at IS NULL AND w.desired_state = 'RUNNING')
			OR w.observed_status = 'RUNNING' OR w.operation = 'STARTING');
	IF n >= per_user_max THEN
		RAISE EXCEPTION 'running limit exceeded: % of % workspaces per user already running', n, per_user_max
			USING ERRCODE = 'WS429',
				  DETAIL = jsonb_build_object('error', 'workspace_limit_exceeded',
						'limit_type', 'per_user', 'current', n, 'max', per_user_max,
						'running_workspaces', holders)::text,
				  HINT = 'Stop one of the running workspaces (set its desired_state to STANDBY) and try again.';
	END IF;

	SELECT count(*) INTO n
	  FROM wsctl.workspaces AS w
	 WHERE w.id IS DISTINCT FROM workspace_id
	   AND ((count_requests AND w.deleted_at IS NULL AND w.desired_state = 'RUNNING')
			OR w.observed_status = 'RUNNING' OR w.operation = 'STARTING');
	IF n >= global_max THEN
		RAISE EXCEPTION 'running limit exceeded: % of % workspaces already running system-wide', n, global_max
			USING ERRCODE = 'WS429',
				  DETAIL = jsonb_build_object('error', 'workspace_limit_exceeded',
						'limit_type', 'global', 'current', n, 'max', global_max,
						'running_workspaces', '[]'::jsonb)::text,
				  HINT = 'Try again when other workspaces have stopped.';
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_running_slot(uuid, uuid, bool) IS
	'WS429 with a JSON DETAIL unless a running slot is free (per user first, then global); caller holds the slot lock';
-- 50_api.sql: the SQL API an API server calls (DESIGN section 4).
--
-- Every function is SECURITY DEFINER with a pinned search_path and carries
-- its component as a function-level SET, so the ownership trigger knows who
-- writes and the setting never leaks into the caller's transaction.
-- Refusals raise class WS SQLSTATEs that map one-to-one onto HTTP statuses
-- (docs/sql-api.md).

CREATE VIEW wsctl.workspace_info AS
	SELECT w.*, wsctl.display_status(wsctl.effective_status(w.observed_status, w.error_info),
									 w.archive_key) AS display_status
	  FROM wsctl.workspaces AS w
	 WHERE w.deleted_at IS NULL;
COMMENT ON VIEW wsctl.workspace_info IS
	'Live workspaces: every column of wsctl.workspaces plus display_status (the API''s result type); a terminal error shows as ERROR at once';

CREATE FUNCTION wsctl._info(w wsctl.workspaces)
RETURNS wsctl.workspace_info
LANGUAGE sql STABLE
AS $$
	SELECT ROW(w.*, wsctl.display_status(wsctl.effective_status(w.observed_status, w.error_info),
										 w.archive_key))::wsctl.workspace_info
$$;
COMMENT ON FUNCTION wsctl._info(wsctl.workspaces) IS
	'A workspaces row as the API result type (also for rows no longer in the live view)';

-- Input validation: each raises WS422 naming the argument. ------------------

CREATE FUNCTION wsctl._invalid(argument text, problem text, hint text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	IF hint IS NULL THEN
		RAISE EXCEPTION 'invalid %: %', argument, problem USING ERRCODE = 'WS422';
	END IF;
	RAISE EXCEPTION 'invalid %: %', argument, problem USING ERRCODE = 'WS422', HINT = hint;
END
$$;
COMMENT ON FUNCTION wsctl._invalid(text, text, text) IS 'Raises WS422 for one argument';

CREATE FUNCTION wsctl._check_not_null(argument text, is_null bool)
RETURNS void
LANGUAGE sql
AS $$
	SELECT CASE WHEN is_null THEN wsctl._invalid(argument, 'must not be NULL') END
$$;
COMMENT ON FUNCTION wsctl._check_not_null(text, bool) IS 'WS422 when a required argument is NULL';

-- Blank also means made only of Unicode spaces (no-break, ideographic, ...),
-- which [[:space:]] does not match in every locale.
CREATE FUNCTION wsctl._is_blank(value text)
RETURNS bool
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF current_setting('server_encoding') <> 'UTF8' THEN
		RETURN btrim(value, E' \t\n\r\f\v') = '';
	END IF;
	RETURN value ~ ('^[[:space:]' || chr(160) || chr(5760) || chr(8192) || '-' || chr(8203)
					|| chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288)
					|| chr(65279) || ']*$');
END
$$;
COMMENT ON FUNCTION wsctl._is_blank(text) IS 'Whether a text is empty or only (Unicode) white space';

CREATE FUNCTION wsctl._check_name(name text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM wsctl._check_not_null('name', name IS NULL);
	IF wsctl._is_blank(name) THEN
		PERFORM wsctl._invalid('name', 'must not be empty');
	ELSIF char_length(name) > 255 THEN
		PERFORM wsctl._invalid('name', format('is %s characters long; the maximum is 255', char_length(name)));
	ELSIF name ~ '[[:cntrl:]]' THEN
		PERFORM wsctl._invalid('name', 'must not contain control characters');
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_name(text) IS 'WS422 unless name is 1..255 characters without control characters';

CREATE FUNCTION wsctl.valid_image_ref(image_ref text)
RETURNS bool
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
	-- Docker's reference grammar: [registry/]path[:tag][@digest]. The first
	-- component is a registry only if it has a dot or a port, or is
	-- localhost; otherwise it is a (lowercase) path component.
	SELECT char_length(image_ref) <= 512
		AND image_ref ~ ('^'
			|| '(?:(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+'
			||     '|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?=:[0-9]))(?::[0-9]{1,5})?/)?'
			|| '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
			|| '(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*'
			|| '(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?'
			|| '(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?'
			|| '$')
$$;
COMMENT ON FUNCTION wsctl.valid_image_ref(text) IS
	'Whether a string is a well-formed container image reference of at most 512 characters';

CREATE FUNCTION wsctl._check_image_ref(image_ref text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM wsctl._check_not_null('image_ref', image_ref IS NULL);
	IF char_length(image_ref) > 512 THEN
		PERFORM wsctl._invalid('image_ref', format('is %s characters long; the maximum is 512', char_length(image_ref)));
	ELSIF NOT wsctl.valid_image_ref(image_ref) THEN
		PERFORM wsctl._invalid('image_ref', 'is not a valid image reference',
							   'Use the form [registry[:port]/]name[:tag][@sha256:digest], e.g. debian:12.');
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_image_ref(text) IS 'WS422 unless image_ref is a well-formed reference';

CREATE FUNCTION wsctl._check_desired_state(desired_state wsctl.status)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM wsctl._check_not_null('desired_state', desired_state IS NULL);
	IF desired_state NOT IN ('PENDING', 'STANDBY', 'RUNNING') THEN
		PERFORM wsctl._invalid('desired_state', format('%s cannot be requested', desired_state),
							   'Request PENDING, STANDBY or RUNNING; use delete_workspace() to delete.');
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_desired_state(wsctl.status) IS 'WS422 unless desired_state is PENDING, STANDBY or RUNNING';

CREATE FUNCTION wsctl._check_range(argument text, value bigint, min_value bigint, max_value bigint)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM wsctl._check_not_null(argument, value IS NULL);
	IF value < min_value OR value > max_value THEN
		PERFORM wsctl._invalid(argument, format('%s is out of range', value),
							   format('Use a value from %s to %s.', min_value, max_value));
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_range(text, bigint, bigint, bigint) IS 'WS422 unless min <= value <= max';

CREATE FUNCTION wsctl._check_length(argument text, value text, max_chars int)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	IF char_length(value) > max_chars THEN
		PERFORM wsctl._invalid(argument, format('is %s characters long; the maximum is %s',
												 char_length(value), max_chars));
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_length(text, text, int) IS 'WS422 when an optional text is too long';

-- TTL bounds: at least a second, at most 30 days (standby) / 365 days (archive).
CREATE FUNCTION wsctl._check_ttls(standby_ttl_seconds int, archive_ttl_seconds int)
RETURNS void
LANGUAGE sql
AS $$
	SELECT wsctl._check_range('standby_ttl_seconds', standby_ttl_seconds, 1, 2592000),
		   wsctl._check_range('archive_ttl_seconds', archive_ttl_seconds, 1, 31536000)
$$;
COMMENT ON FUNCTION wsctl._check_ttls(int, int) IS 'WS422 unless both TTLs are within their bounds';

-- Row access ----------------------------------------------------------------

-- The live row, locked for update when asked; WS404 when unknown or deleted.
CREATE FUNCTION wsctl._live_workspace(workspace_id uuid, for_update bool)
RETURNS wsctl.workspaces
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	PERFORM wsctl._check_not_null('workspace_id', workspace_id IS NULL);
	IF for_update THEN
		SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE;
	ELSE
		SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id;
	END IF;
	IF NOT FOUND OR w.deleted_at IS NOT NULL THEN
		RAISE EXCEPTION 'workspace % not found', workspace_id
			USING ERRCODE = 'WS404',
				  DETAIL = CASE WHEN FOUND THEN 'The workspace was deleted.' ELSE 'No workspace has this id.' END;
	END IF;
	RETURN w;
END
$$;
COMMENT ON FUNCTION wsctl._live_workspace(uuid, bool) IS 'The live workspace row (optionally FOR UPDATE); WS404 otherwise';

-- WS409 unless the workspace in its current state accepts the request.
CREATE FUNCTION wsctl._check_request(w wsctl.workspaces, request text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	status wsctl.status := wsctl.effective_status(w.observed_status, w.error_info);
BEGIN
	IF wsctl.request_allowed(status, w.operation, request) THEN
		RETURN;
	END IF;
	IF status = 'ERROR' THEN
		RAISE EXCEPTION 'workspace % is in ERROR', w.id
			USING ERRCODE = 'WS409',
				  DETAIL = format('%s: %s', w.error_info ->> 'reason',
								  coalesce(w.error_message, w.error_info ->> 'message')),
				  HINT = 'An administrator recovers it with wsctl.recover_workspace(); it can still be deleted.';
	END IF;
	RAISE EXCEPTION 'workspace % has operation % in progress', w.id, w.operation
		USING ERRCODE = 'WS409',
			  HINT = 'Operations cannot be interrupted; retry when the operation has finished.';
END
$$;
COMMENT ON FUNCTION wsctl._check_request(wsctl.workspaces, text) IS 'WS409 unless request_allowed() accepts the request';

-- Archiving needs object storage: with no wsctl.s3_endpoint configured, a
-- request that would archive is refused up front rather than accepted and
-- failed into ERROR by the workers.
CREATE FUNCTION wsctl._check_archiving_available(w wsctl.workspaces, desired_state wsctl.status)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	IF desired_state = 'PENDING' AND w.observed_status IN ('STANDBY', 'RUNNING')
	   AND coalesce(current_setting('wsctl.s3_endpoint', true), '') = '' THEN
		RAISE EXCEPTION 'archiving is not available: object storage is not configured'
			USING ERRCODE = '0A000',
				  DETAIL = 'desired_state PENDING would archive the home volume to object storage, and wsctl.s3_endpoint is empty.',
				  HINT = 'Set wsctl.s3_endpoint and the S3 credentials, or use STANDBY to stop the workspace and keep its volume.';
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_archiving_available(wsctl.workspaces, wsctl.status) IS
	'0A000 for a request that would start ARCHIVING while no object storage is configured (wsctl.s3_endpoint empty)';

-- API -----------------------------------------------------------------------

CREATE FUNCTION wsctl.create_workspace(owner_user_id uuid, name text, image_ref text,
									   desired_state wsctl.status DEFAULT 'RUNNING',
									   description text DEFAULT NULL, memo text DEFAULT NULL,
									   standby_ttl_seconds int DEFAULT 300,
									   archive_ttl_seconds int DEFAULT 86400)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$
DECLARE
	new_id uuid := gen_random_uuid();
	w      wsctl.workspaces;
BEGIN
	PERFORM wsctl._check_not_null('owner_user_id', owner_user_id IS NULL);
	PERFORM wsctl._check_name(name);
	PERFORM wsctl._check_image_ref(image_ref);
	PERFORM wsctl._check_desired_state(desired_state);
	PERFORM wsctl._check_length('description', description, 4096);
	PERFORM wsctl._check_length('memo', memo, 65536);
	PERFORM wsctl._check_ttls(standby_ttl_seconds, archive_ttl_seconds);

	IF desired_state = 'RUNNING' THEN
		PERFORM wsctl._lock_running_slots();
		PERFORM wsctl._check_running_slot(owner_user_id, new_id);
	END IF;

	INSERT INTO wsctl.workspaces AS x
		(id, owner_user_id, name, description, memo, image_ref, home_store_key,
		 desired_state, standby_ttl_seconds, archive_ttl_seconds)
	VALUES
		(new_id, owner_user_id, name, description, memo, image_ref, 'ws-' || new_id::text || '-home',
		 desired_state, standby_ttl_seconds, archive_ttl_seconds)
	RETURNING x.* INTO w;

	PERFORM wsctl._wake_reconciler();
	RETURN wsctl._info(w);
END
$$;
COMMENT ON FUNCTION wsctl.create_workspace(uuid, text, text, wsctl.status, text, text, int, int) IS
	'Creates a workspace (observed PENDING) that the workers bring to desired_state. WS422 bad input, WS429 running limit';

CREATE FUNCTION wsctl.set_desired_state(workspace_id uuid, desired_state wsctl.status)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	PERFORM wsctl._check_not_null('workspace_id', workspace_id IS NULL);
	PERFORM wsctl._check_desired_state(desired_state);
	-- The slot lock comes before the row lock, in the same order as the
	-- reconciler's STARTING claim, so the two can never deadlock.
	IF desired_state = 'RUNNING' THEN
		PERFORM wsctl._lock_running_slots();
	END IF;
	w := wsctl._live_workspace(workspace_id, true);
	PERFORM wsctl._check_request(w, desired_state::text);
	IF w.desired_state = desired_state THEN
		RETURN wsctl._info(w);		/* already asked for: idempotent */
	END IF;
	PERFORM wsctl._check_archiving_available(w, desired_state);
	IF desired_state = 'RUNNING' THEN
		PERFORM wsctl._check_running_slot(w.owner_user_id, w.id);
	END IF;

	UPDATE wsctl.workspaces AS x SET desired_state = set_desired_state.desired_state
	 WHERE x.id = w.id
	RETURNING x.* INTO w;

	PERFORM wsctl._wake_reconciler();
	RETURN wsctl._info(w);
END
$$;
COMMENT ON FUNCTION wsctl.set_desired_state(uuid, wsctl.status) IS
	'Asks for PENDING, STANDBY or RUNNING. WS404 unknown, WS409 operation in progress or ERROR, WS422 bad input, WS429 running limit';

CREATE FUNCTION wsctl.delete_workspace(workspace_id uuid)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$
DECLARE
	w wsctl.workspaces := wsctl._live_workspace(workspace_id, true);
BEGIN
	PERFORM wsctl._check_request(w, 'DELETE');
	UPDATE wsctl.workspaces AS x SET deleted_at = now()
	 WHERE x.id = w.id
	RETURNING x.* INTO w;

	PERFORM wsctl._wake_reconciler();
	RETURN wsctl._info(w);
END
$$;
COMMENT ON FUNCTION wsctl.delete_workspace(uuid) IS
	'Soft-deletes a workspace; the workers then remove its container and volume. WS404 unknown, WS409 operation in progress';

CREATE FUNCTION wsctl.recover_workspace(workspace_id uuid)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'admin'
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	PERFORM wsctl._check_not_null('workspace_id', workspace_id IS NULL);
	-- A deleted workspace whose teardown failed can be recovered too: it
	-- is not gone until it is observed DELETED.
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE;
	IF NOT FOUND OR (w.deleted_at IS NOT NULL AND w.observed_status = 'DELETED') THEN
		RAISE EXCEPTION 'workspace % not found', workspace_id
			USING ERRCODE = 'WS404',
				  DETAIL = CASE WHEN FOUND THEN 'The workspace was deleted.' ELSE 'No workspace has this id.' END;
	END IF;
	IF wsctl.effective_status(w.observed_status, w.error_info) <> 'ERROR' THEN
		RAISE EXCEPTION 'workspace % is not in ERROR', w.id
			USING ERRCODE = 'WS409',
				  DETAIL = format('Its status is %s.', wsctl.display_status(w.observed_status, w.archive_key));
	END IF;
	IF w.operation = 'RESTORING' THEN
		-- A failed restore may have left a partial volume, which an
		-- observation would take for a home (STANDBY) and ARCHIVING would
		-- then upload over the good archive. So the restore runs again
		-- instead, under the same op_id, as a retry: it starts from an
		-- empty volume and verifies everything again.
		UPDATE wsctl.workspaces AS x
		   SET error_info = NULL, error_message = NULL, error_count = 0,
			   op_started_at = now()
		 WHERE x.id = w.id
		RETURNING x.* INTO w;
		PERFORM wsctl._wake_reconciler();
		RETURN wsctl._info(w);
	END IF;
	-- op_id stays: an archive made under it remains protected and reusable.
	UPDATE wsctl.workspaces AS x
	   SET error_info = NULL, error_message = NULL, error_count = 0,
		   operation = 'NONE', op_started_at = NULL
	 WHERE x.id = w.id
	RETURNING x.* INTO w;

	-- Recovery is finished by an observation of the real resources (I20).
	PERFORM wsctl._wake_health_monitor();
	RETURN wsctl._info(w);
END
$$;
COMMENT ON FUNCTION wsctl.recover_workspace(uuid) IS
	'Administrator recovery from ERROR: clears the error and the failed operation; the HealthMonitor then re-observes. A failed RESTORING is run again instead (same op_id, from an empty volume). WS404, WS409 not in ERROR';

CREATE FUNCTION wsctl.update_workspace(workspace_id uuid, name text DEFAULT NULL,
									   description text DEFAULT NULL, memo text DEFAULT NULL,
									   standby_ttl_seconds int DEFAULT NULL,
									   archive_ttl_seconds int DEFAULT NULL)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$
DECLARE
	w wsctl.workspaces := wsctl._live_workspace(workspace_id, true);
BEGIN
	IF name IS NOT NULL THEN
		PERFORM wsctl._check_name(name);
	END IF;
	PERFORM wsctl._check_length('description', description, 4096);
	PERFORM wsctl._check_length('memo', memo, 65536);
	PERFORM wsctl._check_ttls(coalesce(standby_ttl_seconds, w.standby_ttl_seconds),
							  coalesce(archive_ttl_seconds, w.archive_ttl_seconds));

	UPDATE wsctl.workspaces AS x
	   SET name = coalesce(update_workspace.name, x.name),
		   description = coalesce(update_workspace.description, x.description),
		   memo = coalesce(update_workspace.memo, x.memo),
		   standby_ttl_seconds = coalesce(update_workspace.standby_ttl_seconds, x.standby_ttl_seconds),
		   archive_ttl_seconds = coalesce(update_workspace.archive_ttl_seconds, x.archive_ttl_seconds)
	 WHERE x.id = w.id
	RETURNING x.* INTO w;
	RETURN wsctl._info(w);
END
$$;
COMMENT ON FUNCTION wsctl.update_workspace(uuid, text, text, text, int, int) IS
	'Changes name, description, memo or TTLs; NULL leaves a field unchanged. WS404, WS422';

CREATE FUNCTION wsctl.get_workspace(workspace_id uuid)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN wsctl._info(wsctl._live_workspace(workspace_id, false));
END
$$;
COMMENT ON FUNCTION wsctl.get_workspace(uuid) IS 'One live workspace. WS404 unknown or deleted';

CREATE FUNCTION wsctl.list_workspaces(owner_user_id uuid DEFAULT NULL)
RETURNS SETOF wsctl.workspace_info
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT i.* FROM wsctl.workspace_info AS i
	 WHERE list_workspaces.owner_user_id IS NULL OR i.owner_user_id = list_workspaces.owner_user_id
	 ORDER BY i.created_at, i.id
$$;
COMMENT ON FUNCTION wsctl.list_workspaces(uuid) IS 'Live workspaces, all or one owner''s, oldest first';

CREATE FUNCTION wsctl.wake_workspace(workspace_id uuid)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$
DECLARE
	w       wsctl.workspaces;
	display text;
	answer  jsonb;
BEGIN
	PERFORM wsctl._check_not_null('workspace_id', workspace_id IS NULL);
	PERFORM wsctl._lock_running_slots();
	w := wsctl._live_workspace(workspace_id, true);
	display := wsctl.display_status(wsctl.effective_status(w.observed_status, w.error_info), w.archive_key);

	IF display = 'ERROR' THEN
		answer := jsonb_build_object('action', 'unavailable', 'http_status', 502,
									 'message', 'an error occurred');
	ELSIF w.operation <> 'NONE' THEN
		answer := jsonb_build_object('action', 'wait', 'http_status', 202,
									 'message', format('operation %s in progress', w.operation));
	ELSIF display = 'ARCHIVED' THEN
		answer := jsonb_build_object('action', 'unavailable', 'http_status', 502,
									 'message', 'restore required');
	ELSIF display = 'RUNNING' THEN
		-- A user is here: cancel a pending TTL stop that has not started.
		IF w.desired_state <> 'RUNNING' THEN
			UPDATE wsctl.workspaces AS x SET desired_state = 'RUNNING' WHERE x.id = w.id;
		END IF;
		answer := jsonb_build_object('action', 'connect', 'http_status', 200,
									 'message', 'workspace is running');
	ELSIF display = 'STANDBY' THEN
		IF w.desired_state <> 'RUNNING' THEN
			BEGIN
				PERFORM wsctl._check_running_slot(w.owner_user_id, w.id);
			EXCEPTION WHEN SQLSTATE 'WS429' THEN
				GET STACKED DIAGNOSTICS answer = PG_EXCEPTION_DETAIL;
				RETURN jsonb_build_object('action', 'unavailable', 'http_status', 429,
										  'display_status', display,
										  'message', 'running limit reached; stop another workspace first')
					   || jsonb_build_object('limit', answer::jsonb);
			END;
			UPDATE wsctl.workspaces AS x SET desired_state = 'RUNNING' WHERE x.id = w.id;
			PERFORM wsctl._wake_reconciler();
		END IF;
		answer := jsonb_build_object('action', 'wait', 'http_status', 202,
									 'message', 'workspace is starting');
	ELSE
		answer := jsonb_build_object('action', 'unavailable', 'http_status', 502,
									 'message', 'start required');
	END IF;
	RETURN answer || jsonb_build_object('display_status', display);
END
$$;
COMMENT ON FUNCTION wsctl.wake_workspace(uuid) IS
	'The proxy''s auto-wake: {"action": connect|wait|unavailable, "http_status", "display_status", "message"}; wakes a STANDBY workspace (running limit checked). WS404 unknown';
-- 55_activity.sql: the proxy's activity calls (SPEC section 10).
--
-- The proxy calls activity_connect when a user opens a connection to a
-- workspace and activity_disconnect when it closes. The counters live in
-- Redis (ws_conn:{id}, idle_timer:{id}), as the TTL manager reads them;
-- last_access_at is updated in the table. Redis down is WS503 here and
-- nowhere else: every other function works without Redis.

CREATE FUNCTION wsctl._redis_activity(workspace_id uuid, connect bool, idle_seconds int)
RETURNS int
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'wsctl_redis_activity';
COMMENT ON FUNCTION wsctl._redis_activity(uuid, bool, int) IS
	'Redis side of the activity calls: INCR/DEL on connect, DECR (never below 0) and SETEX idle_timer at 0 on disconnect; WS503 when Redis is unreachable';

CREATE FUNCTION wsctl._activity(workspace_id uuid, connect bool)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w wsctl.workspaces := wsctl._live_workspace(workspace_id, false);
	n int;
BEGIN
	n := wsctl._redis_activity(w.id, connect, w.standby_ttl_seconds);
	UPDATE wsctl.workspaces AS x SET last_access_at = now() WHERE x.id = w.id;
	RETURN n;
END
$$;
COMMENT ON FUNCTION wsctl._activity(uuid, bool) IS 'Shared body of activity_connect and activity_disconnect';

CREATE FUNCTION wsctl.activity_connect(workspace_id uuid)
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$ SELECT wsctl._activity(workspace_id, true) $$;
COMMENT ON FUNCTION wsctl.activity_connect(uuid) IS
	'A user connected to the workspace: its connection count (Redis ws_conn) + 1, idle timer cancelled, last_access_at now. Returns the open connections. WS404 unknown or deleted, WS503 Redis unavailable';

CREATE FUNCTION wsctl.activity_disconnect(workspace_id uuid)
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$ SELECT wsctl._activity(workspace_id, false) $$;
COMMENT ON FUNCTION wsctl.activity_disconnect(uuid) IS
	'A user disconnected: connection count - 1 (never below 0); at 0 the idle timer starts for the workspace''s standby_ttl_seconds; last_access_at now. Returns the open connections. WS404, WS503';
-- 60_events.sql: change events (DESIGN section 7).
--
-- An AFTER trigger writes each change into the outbox, wsctl.events, in the
-- same transaction as the change: the rows are the events. Writers know
-- nothing about events. The EventListener worker gives every committed row
-- its public id, in commit order, and ships the rows to Redis in id order.
-- The trigger also sends pg_notify('workspace_changes', json) for sessions
-- that LISTEN; any role can NOTIFY that channel, so it proves nothing and
-- never feeds the outbox.

-- The outbox. entry orders rows by insertion; id, the event's public id
-- (the SSE id), is assigned by the EventListener when it sees the row
-- committed, so ids follow commit order: a transaction that commits later
-- always gets higher ids, and a reader that resumes after id n misses
-- nothing (identity values taken at insert would not: a long transaction
-- could commit a lower one after a higher one was shipped).
CREATE TABLE wsctl.events (
	entry         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id            bigint UNIQUE,
	workspace_id  uuid NOT NULL,
	owner_user_id uuid NOT NULL,
	payload       jsonb NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wsctl.events IS
	'The outbox: one row per change event, written in the changing transaction; id (the SSE id) is assigned in commit order';
COMMENT ON COLUMN wsctl.events.id IS 'Public event id, assigned in commit order by the EventListener; NULL until then';
CREATE INDEX events_unsequenced ON wsctl.events (entry) WHERE id IS NULL;
CREATE INDEX events_workspace ON wsctl.events (workspace_id, entry);
CREATE INDEX events_created ON wsctl.events (created_at);

CREATE SEQUENCE wsctl.event_id_seq AS bigint;
COMMENT ON SEQUENCE wsctl.event_id_seq IS 'Public event ids, drawn by the EventListener in commit order';

-- How far the EventListener has shipped (durable, so a restart resumes).
CREATE TABLE wsctl.event_cursor (
	sink         text PRIMARY KEY,
	last_shipped bigint NOT NULL DEFAULT 0,
	shipped_at   timestamptz
);
COMMENT ON TABLE wsctl.event_cursor IS 'Last event id shipped to each sink (redis)';
INSERT INTO wsctl.event_cursor (sink) VALUES ('redis');

CREATE FUNCTION wsctl.change_event(w wsctl.workspaces, is_error bool)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
	SELECT jsonb_build_object(
		'workspace_id', w.id,
		'owner_user_id', w.owner_user_id,
		'event', CASE WHEN is_error THEN 'error' ELSE 'state_changed' END,
		'status', w.observed_status,
		'display', wsctl.display_status(w.observed_status, w.archive_key),
		'operation', w.operation,
		'desired_state', w.desired_state,
		-- Bounded so the payload stays far below NOTIFY's 8000-byte limit.
		'error_message', left(coalesce(w.error_message, w.error_info ->> 'message'), 1000),
		'error_count', w.error_count,
		'deleted', w.deleted_at IS NOT NULL,
		'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;
COMMENT ON FUNCTION wsctl.change_event(wsctl.workspaces, bool) IS
	'The JSON payload of a workspace_changes notification';

CREATE FUNCTION wsctl._notify_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	payload jsonb := wsctl.change_event(NEW,
		TG_OP = 'UPDATE' AND NEW.error_info IS NOT NULL
		AND NEW.error_info IS DISTINCT FROM OLD.error_info);
BEGIN
	INSERT INTO wsctl.events (workspace_id, owner_user_id, payload)
	VALUES (NEW.id, NEW.owner_user_id, payload);
	PERFORM wsctl._wake_event_listener();
	PERFORM pg_notify('workspace_changes', payload::text);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION wsctl._notify_change() IS
	'AFTER trigger: the change event into the outbox wsctl.events, a wake-up of the EventListener at commit, NOTIFY workspace_changes';

CREATE TRIGGER workspaces_notify_insert
	AFTER INSERT ON wsctl.workspaces
	FOR EACH ROW EXECUTE FUNCTION wsctl._notify_change();

CREATE TRIGGER workspaces_notify_change
	AFTER UPDATE ON wsctl.workspaces
	FOR EACH ROW
	WHEN (OLD.observed_status IS DISTINCT FROM NEW.observed_status
		  OR OLD.operation IS DISTINCT FROM NEW.operation
		  OR OLD.desired_state IS DISTINCT FROM NEW.desired_state
		  OR OLD.error_info IS DISTINCT FROM NEW.error_info
		  OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
	EXECUTE FUNCTION wsctl._notify_change();

-- EventListener steps --------------------------------------------------------

-- Gives the committed rows without an id their ids, in insertion order,
-- at most max_rows of them. Only the EventListener calls it, so the ids
-- it draws follow the order in which commits became visible to it.
CREATE FUNCTION wsctl._sequence_events(max_rows int)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN
		SELECT e.entry FROM wsctl.events AS e
		 WHERE e.id IS NULL ORDER BY e.entry LIMIT max_rows
		 FOR UPDATE SKIP LOCKED
	LOOP
		UPDATE wsctl.events AS e SET id = nextval('wsctl.event_id_seq') WHERE e.entry = r.entry;
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION wsctl._sequence_events(int) IS
	'EventListener: assigns public ids, in commit order, to committed events that have none';

CREATE FUNCTION wsctl._events_to_ship(max_rows int)
RETURNS TABLE (id bigint, workspace_id uuid, owner_user_id uuid, event text, payload text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT e.id, e.workspace_id, e.owner_user_id, e.payload ->> 'event',
		   (e.payload || jsonb_build_object('id', e.id))::text
	  FROM wsctl.events AS e
	 WHERE e.id > (SELECT c.last_shipped FROM wsctl.event_cursor AS c WHERE c.sink = 'redis')
	 ORDER BY e.id
	 LIMIT max_rows
$$;
COMMENT ON FUNCTION wsctl._events_to_ship(int) IS
	'EventListener: the next events to ship to Redis, in id order (the payload carries its id)';

CREATE FUNCTION wsctl._events_shipped(last_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE wsctl.event_cursor AS c
	   SET last_shipped = greatest(c.last_shipped, last_id), shipped_at = now()
	 WHERE c.sink = 'redis'
$$;
COMMENT ON FUNCTION wsctl._events_shipped(bigint) IS
	'EventListener: records that every event up to last_id reached Redis';

CREATE FUNCTION wsctl._prune_events()
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	WITH gone AS (
		DELETE FROM wsctl.events AS e
		 WHERE e.created_at < now() - current_setting('wsctl.events_retention')::interval
		   AND e.id <= (SELECT c.last_shipped FROM wsctl.event_cursor AS c WHERE c.sink = 'redis')
		RETURNING 1)
	SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION wsctl._prune_events() IS
	'EventListener: removes shipped events older than wsctl.events_retention';

-- The audit trail of one workspace, from the outbox (deleted workspaces
-- included: their history is what an audit asks for).
CREATE FUNCTION wsctl.workspace_history(workspace_id uuid, since timestamptz DEFAULT NULL,
										"limit" int DEFAULT 100)
RETURNS TABLE (id bigint, at timestamptz, event text, status wsctl.status,
			   operation wsctl.operation, desired_state wsctl.status, payload jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM wsctl._check_not_null('workspace_id', workspace_id IS NULL);
	PERFORM wsctl._check_range('limit', "limit", 1, 10000);
	IF NOT EXISTS (SELECT 1 FROM wsctl.workspaces AS x WHERE x.id = workspace_history.workspace_id) THEN
		RAISE EXCEPTION 'workspace % not found', workspace_id
			USING ERRCODE = 'WS404', DETAIL = 'No workspace has this id.';
	END IF;
	RETURN QUERY
		SELECT e.id, e.created_at, e.payload ->> 'event', (e.payload ->> 'status')::wsctl.status,
			   (e.payload ->> 'operation')::wsctl.operation,
			   (e.payload ->> 'desired_state')::wsctl.status, e.payload
		  FROM wsctl.events AS e
		 WHERE e.workspace_id = workspace_history.workspace_id
		   AND (since IS NULL OR e.created_at >= since)
		 ORDER BY e.entry
		 LIMIT "limit";
END
$$;
COMMENT ON FUNCTION wsctl.workspace_history(uuid, timestamptz, int) IS
	'The change events of one workspace (deleted ones included), oldest first: id (NULL until published), time, event, status, operation, desired_state, payload. WS404 unknown, WS422 bad limit';
-- 65_sse_token.sql: tokens for the wsctl-sse relay (DESIGN section 7).
--
-- An HS256 JWT whose sub is the owner whose workspaces the bearer may
-- watch, or "*" (every workspace) for a superuser's token. The key is the
-- superuser-only setting wsctl.sse_secret; the relay reads the same key
-- from its --secret-file.

CREATE FUNCTION wsctl._sse_sign(signing_input text)
RETURNS text
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'wsctl_sse_sign';
COMMENT ON FUNCTION wsctl._sse_sign(text) IS
	'base64url(HMAC-SHA256(wsctl.sse_secret, signing_input)): the signature part of an SSE token';

CREATE FUNCTION wsctl._base64url(data text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT rtrim(translate(encode(convert_to(data, 'UTF8'), 'base64'), E'+/\n', '-_'), '=') $$;
COMMENT ON FUNCTION wsctl._base64url(text) IS 'base64url without padding (JWT parts)';

CREATE FUNCTION wsctl.sse_token(owner_user_id uuid, ttl interval DEFAULT '1 hour')
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	signing_input text;
BEGIN
	IF owner_user_id IS NULL
	   AND NOT coalesce((SELECT r.rolsuper FROM pg_roles AS r WHERE r.rolname = session_user), false) THEN
		RAISE EXCEPTION 'only a superuser may mint a token for every workspace'
			USING ERRCODE = 'WS403',
				  HINT = 'Mint a token for one owner: wsctl.sse_token(owner_user_id).';
	END IF;
	IF ttl IS NULL OR ttl <= interval '0' OR ttl > interval '7 days' THEN
		RAISE EXCEPTION 'invalid ttl: %', ttl
			USING ERRCODE = 'WS422', DETAIL = 'A token lives more than 0 and at most 7 days.';
	END IF;
	signing_input := wsctl._base64url('{"alg":"HS256","typ":"JWT"}') || '.'
		|| wsctl._base64url(jsonb_build_object(
				'sub', coalesce(owner_user_id::text, '*'),
				'iat', floor(extract(epoch FROM now()))::bigint,
				'exp', floor(extract(epoch FROM now() + ttl))::bigint)::text);
	RETURN signing_input || '.' || wsctl._sse_sign(signing_input);
END
$$;
COMMENT ON FUNCTION wsctl.sse_token(uuid, interval) IS
	'An HS256 token for wsctl-sse: the events of owner_user_id''s workspaces (NULL = every workspace, superuser only: WS403) for ttl (WS422 unless 0 < ttl <= 7 days)';
-- 70_observation.sql: what the HealthMonitor writes after each look at Docker.
--
-- The worker lists containers and volumes (one Docker call each) and hands
-- the lists to _record_observations(), which applies observe_status() to
-- every workspace that still needs watching, in one transaction, one
-- subtransaction per workspace so that one bad row never costs the tick.
-- Rows locked by another session are skipped (SKIP LOCKED).

CREATE FUNCTION wsctl._record_observations(container_ids uuid[], container_running bool[],
										   volume_ids uuid[], observed_at timestamptz)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'health_monitor'
AS $$
DECLARE
	r          record;
	w          wsctl.workspaces;
	has_c      bool;
	running    bool;
	has_v      bool;
	status     wsctl.status;
	violation  text;
	new_error  jsonb;
	changed    int := 0;
BEGIN
	FOR r IN
		SELECT x AS ws, c.id IS NOT NULL AS has_c, coalesce(c.running, false) AS running,
			   v.id IS NOT NULL AS has_v
		  FROM wsctl.workspaces AS x
		  LEFT JOIN (SELECT u.id, bool_or(u.running) AS running
					   FROM unnest(container_ids, container_running) AS u(id, running)
					  GROUP BY u.id) AS c ON c.id = x.id
		  LEFT JOIN (SELECT DISTINCT u.id FROM unnest(volume_ids) AS u(id)) AS v ON v.id = x.id
		 WHERE x.deleted_at IS NULL OR x.observed_status <> 'DELETED' OR x.operation <> 'NONE'
		 ORDER BY x.id
		 -- A row another session holds (a client idle in a transaction) is
		 -- skipped this tick instead of stalling every other workspace.
		 FOR UPDATE OF x SKIP LOCKED
	LOOP
		w := r.ws;
		has_c := r.has_c;
		running := r.running;
		has_v := r.has_v;
		status := wsctl.observe_status(w, has_c, running, has_v);
		violation := wsctl.observe_violation(w, has_c, running, has_v);
		-- An invariant violation is recorded only over an empty error_info.
		new_error := CASE WHEN violation IS NOT NULL AND w.error_info IS NULL AND status = 'ERROR'
					 THEN wsctl.invariant_error(violation, w.operation, has_c, has_v, w.archive_key) END;
		BEGIN
			UPDATE wsctl.workspaces AS x
			   SET observed_status = status,
				   observed_at = _record_observations.observed_at,
				   error_info = coalesce(new_error, x.error_info),
				   error_message = coalesce(new_error ->> 'message', x.error_message)
			 WHERE x.id = w.id;
			IF status IS DISTINCT FROM w.observed_status THEN
				changed := changed + 1;
				RAISE LOG 'wsctl health_monitor: workspace % observed % -> %', w.id, w.observed_status, status;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'wsctl health_monitor: workspace %: observation not recorded: %', w.id, SQLERRM;
		END;
	END LOOP;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION wsctl._record_observations(uuid[], bool[], uuid[], timestamptz) IS
	'HealthMonitor write: observe_status() for every watched workspace from one listing of containers and volumes; returns how many statuses changed';

CREATE FUNCTION wsctl.invariant_error(violation text, operation wsctl.operation,
									  container_exists bool, volume_exists bool, archive_key text)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
	SELECT jsonb_build_object(
		'reason', violation,
		'message', CASE violation
			WHEN 'ContainerWithoutVolume' THEN 'a container exists but its home volume does not'
			ELSE 'the home volume is gone and there is no archive' END,
		'is_terminal', true,
		'operation', operation,
		'error_count', 0,
		'context', jsonb_build_object('container_exists', container_exists,
									  'volume_exists', volume_exists,
									  'archive_key', archive_key),
		'occurred_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;
COMMENT ON FUNCTION wsctl.invariant_error(text, wsctl.operation, bool, bool, text) IS
	'error_info the HealthMonitor records for an invariant violation (ContainerWithoutVolume, DataLost)';

CREATE FUNCTION wsctl._docker_resources_expected()
RETURNS bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM wsctl.workspaces AS x
					WHERE x.observed_status IN ('STANDBY', 'RUNNING'))
$$;
COMMENT ON FUNCTION wsctl._docker_resources_expected() IS
	'Whether some workspace is observed STANDBY or RUNNING, i.e. has resources on Docker (the HealthMonitor creates its marker volume only when none does)';
-- 80_reconciler.sql: the StateReconciler's decisions and writes.
--
-- The C reconciler lists candidate workspaces, and for each one calls
-- _reconcile_workspace() in its own short transaction, passing what it
-- knows about the operation worker (from shared memory). The function
-- decides, writes the reconciler's columns, and returns what the C side
-- must do with processes: nothing, launch a worker, release a finished
-- worker's slot, or terminate a worker. The C side never decides.

CREATE TYPE wsctl.reconcile_action AS (
	action    text,				-- none | launch | release | terminate
	operation wsctl.operation,	-- for launch
	op_id     uuid,				-- for launch
	detail    text				-- for the log
);
COMMENT ON TYPE wsctl.reconcile_action IS 'What the reconciler process must do after _reconcile_workspace()';

CREATE FUNCTION wsctl.operation_timeout(operation wsctl.operation)
RETURNS interval
LANGUAGE sql STABLE
AS $$
	SELECT CASE WHEN operation = 'NONE' THEN NULL
		ELSE current_setting('wsctl.timeout_' || lower(operation::text))::interval END
$$;
COMMENT ON FUNCTION wsctl.operation_timeout(wsctl.operation) IS
	'The timeout of an operation (settings wsctl.timeout_*)';

CREATE FUNCTION wsctl._action(action text, operation wsctl.operation DEFAULT NULL,
							  op_id uuid DEFAULT NULL, detail text DEFAULT NULL)
RETURNS wsctl.reconcile_action
LANGUAGE sql IMMUTABLE
AS $$ SELECT ROW(action, operation, op_id, detail)::wsctl.reconcile_action $$;
COMMENT ON FUNCTION wsctl._action(text, wsctl.operation, uuid, text) IS 'Builds a reconcile_action';

-- Records one failed attempt of the workspace's operation (SPEC 8.4):
-- Timeout and DataLost are terminal at once; anything else is retried
-- wsctl.max_retries times, then becomes RetryExceeded. A terminal error
-- records previous_status and keeps the operation (GC protection).
CREATE FUNCTION wsctl._record_failure(w wsctl.workspaces, reason text, code text,
									  message text, context jsonb DEFAULT '{}')
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	failures    int := w.error_count + 1;
	max_retries int := current_setting('wsctl.max_retries')::int;
	final       text := reason;
	terminal    bool;
BEGIN
	IF reason NOT IN ('Timeout', 'DataLost') AND failures > max_retries THEN
		final := 'RetryExceeded';
		context := context || jsonb_build_object('max_retries', max_retries,
												 'last_reason', reason, 'last_error', message);
	END IF;
	terminal := final IN ('Timeout', 'DataLost', 'RetryExceeded');
	IF code IS NOT NULL THEN
		context := jsonb_build_object('code', code) || context;
	END IF;

	UPDATE wsctl.workspaces AS x
	   SET error_count = failures,
		   error_message = message,
		   error_info = jsonb_build_object(
				'reason', final, 'message', message, 'is_terminal', terminal,
				'operation', w.operation, 'error_count', failures, 'context', context,
				'occurred_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
		   previous_status = CASE WHEN terminal THEN w.observed_status ELSE x.previous_status END
	 WHERE x.id = w.id;

	RAISE LOG 'wsctl reconciler: workspace % operation % failed (%/%): %: %',
		w.id, w.operation, failures, max_retries + 1, final, message;
	RETURN terminal;
END
$$;
COMMENT ON FUNCTION wsctl._record_failure(wsctl.workspaces, text, text, text, jsonb) IS
	'Records a failed attempt in error_info/error_count; returns whether the error is terminal';

-- The attempt of the workspace's current operation that was launched last.
CREATE FUNCTION wsctl._current_attempt(w wsctl.workspaces)
RETURNS wsctl.operation_attempts
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.* FROM wsctl.operation_attempts AS a
	 WHERE a.workspace_id = w.id AND a.op_id = w.op_id
	 ORDER BY a.attempt DESC LIMIT 1
$$;
COMMENT ON FUNCTION wsctl._current_attempt(wsctl.workspaces) IS
	'The last attempt launched for the workspace''s current op_id, or NULL';

-- Records a new attempt and returns the launch action. The attempt row is
-- committed before the worker exists, so a worker that dies at any point
-- leaves an attempt without an outcome: the next tick counts it as failed.
-- The primary key makes it a compare-and-set: two reconcilers reading the
-- same row cannot both launch attempt n of one op_id.
CREATE FUNCTION wsctl._launch(w wsctl.workspaces, operation wsctl.operation, op_id uuid,
							  detail text)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	next_attempt int;
BEGIN
	SELECT coalesce(max(a.attempt), 0) + 1 INTO next_attempt
	  FROM wsctl.operation_attempts AS a
	 WHERE a.workspace_id = w.id AND a.op_id = _launch.op_id;
	INSERT INTO wsctl.operation_attempts AS a (workspace_id, op_id, attempt, operation)
	VALUES (w.id, _launch.op_id, next_attempt, _launch.operation)
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RETURN wsctl._action('none', detail => 'attempt already launched elsewhere');
	END IF;
	RAISE LOG 'wsctl reconciler: workspace % operation % attempt % launched (op_id %)',
		w.id, operation, next_attempt, op_id;
	RETURN wsctl._action('launch', operation, op_id, detail);
END
$$;
COMMENT ON FUNCTION wsctl._launch(wsctl.workspaces, wsctl.operation, uuid, text) IS
	'Records attempt n+1 of an operation (compare-and-set on its key) and returns the launch action';

-- Gives the current attempt its outcome (once: an attempt that has one keeps it).
CREATE FUNCTION wsctl._finish_attempt(w wsctl.workspaces, outcome text, reason text DEFAULT NULL,
									  code text DEFAULT NULL, message text DEFAULT NULL)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE wsctl.operation_attempts AS a
	   SET outcome = _finish_attempt.outcome, finished_at = clock_timestamp(),
		   reason = _finish_attempt.reason, code = nullif(_finish_attempt.code, ''),
		   message = _finish_attempt.message
	 WHERE a.workspace_id = w.id AND a.op_id = w.op_id AND a.outcome IS NULL
$$;
COMMENT ON FUNCTION wsctl._finish_attempt(wsctl.workspaces, text, text, text, text) IS
	'Records the outcome of the current attempt (succeeded, failed, vanished or superseded)';

-- Docker could not be reached at all (connection refused, socket missing).
-- That is not the workspace's failure: error_count does not move, and the
-- time until the next attempt does not count toward the timeout
-- (outage_since is subtracted from the elapsed time when it relaunches).
CREATE FUNCTION wsctl._record_outage(w wsctl.workspaces, attempt wsctl.operation_attempts,
									 code text, message text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE wsctl.workspaces AS x
	   SET error_message = 'waiting for Docker: ' || message,
		   error_info = jsonb_build_object(
				'reason', 'Unreachable', 'message', 'waiting for Docker: ' || message,
				'is_terminal', false, 'operation', w.operation, 'error_count', w.error_count,
				'context', jsonb_build_object(
					'code', code, 'waiting_for', 'docker',
					'outage_since', coalesce(w.error_info -> 'context' ->> 'outage_since',
											 attempt.launched_at::text)),
				'occurred_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
	 WHERE x.id = w.id
$$;
COMMENT ON FUNCTION wsctl._record_outage(wsctl.workspaces, wsctl.operation_attempts, text, text) IS
	'Records that an attempt found Docker unreachable: waiting, not failing (no retry used, timeout suspended)';

-- Whether the workspace's operation is waiting for Docker to come back.
CREATE FUNCTION wsctl._waiting_for_docker(w wsctl.workspaces)
RETURNS bool
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(w.error_info -> 'context' ->> 'outage_since', '') <> '' $$;
COMMENT ON FUNCTION wsctl._waiting_for_docker(wsctl.workspaces) IS
	'True between an attempt that found Docker unreachable and the next attempt';

CREATE FUNCTION wsctl._complete_operation(w wsctl.workspaces)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	DELETE FROM wsctl.operation_attempts AS a WHERE a.workspace_id = w.id;
	UPDATE wsctl.workspaces AS x
	   SET operation = 'NONE', op_id = NULL, op_started_at = NULL,
		   error_count = 0, error_info = NULL, error_message = NULL,
		   -- STOPPING and RESTORING start the archive TTL (a restore is a
		   -- use: its STANDBY must not be archived again at once), STARTING
		   -- the standby TTL's grace.
		   last_access_at = CASE WHEN w.operation IN ('STOPPING', 'RESTORING', 'STARTING') THEN now()
								 ELSE x.last_access_at END
	 WHERE x.id = w.id;
$$;
COMMENT ON FUNCTION wsctl._complete_operation(wsctl.workspaces) IS
	'Marks the operation complete: operation NONE, op_id cleared, errors reset, attempts removed (last_access_at on STOPPING, RESTORING and STARTING)';

-- Claims an operation with compare-and-set on the operation the row had
-- when it was read (NONE, or the failed operation an ERROR keeps when the
-- workspace is deleted). op_id is kept when recovery left one behind.
CREATE FUNCTION wsctl._claim(w wsctl.workspaces, planned wsctl.operation)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	claimed wsctl.workspaces;
BEGIN
	UPDATE wsctl.workspaces AS x
	   SET operation = planned, op_id = coalesce(x.op_id, gen_random_uuid()),
		   op_started_at = now(), error_count = 0, error_info = NULL, error_message = NULL
	 WHERE x.id = w.id AND x.operation = w.operation
	RETURNING x.* INTO claimed;
	IF NOT FOUND THEN
		RETURN wsctl._action('none', detail => 'claim lost');
	END IF;
	-- Attempts of an operation this claim replaces are history now.
	UPDATE wsctl.operation_attempts AS a
	   SET outcome = 'superseded', finished_at = clock_timestamp()
	 WHERE a.workspace_id = w.id AND a.outcome IS NULL;
	DELETE FROM wsctl.operation_attempts AS a
	 WHERE a.workspace_id = w.id AND a.op_id <> claimed.op_id;
	RAISE LOG 'wsctl reconciler: workspace % claimed % (op_id %)', w.id, planned, claimed.op_id;
	RETURN wsctl._launch(claimed, planned, claimed.op_id, 'claimed');
END
$$;
COMMENT ON FUNCTION wsctl._claim(wsctl.workspaces, wsctl.operation) IS
	'Compare-and-set claim of an operation and its first attempt; returns launch, or none when another writer won';

-- An operation is in flight: completion, timeout, the worker's outcome, retries.
-- An operation completes only when the worker of its current attempt
-- reported success for this op_id AND the observation equals the target: a
-- worker still acting, dead or failed never completes one.
CREATE FUNCTION wsctl._reconcile_in_flight(w wsctl.workspaces, worker_state text,
										   worker_finished_at timestamptz, worker_reason text,
										   worker_code text, worker_message text, can_launch bool)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	attempt   wsctl.operation_attempts := wsctl._current_attempt(w);
	waiting   bool := wsctl._waiting_for_docker(w);
	elapsed   interval := now() - w.op_started_at;
	retry_at  timestamptz;
BEGIN
	IF worker_state = 'succeeded'
	   AND wsctl.operation_complete(w.operation, w.observed_status, w.archive_key, w.id, w.op_id) THEN
		PERFORM wsctl._finish_attempt(w, 'succeeded');
		PERFORM wsctl._complete_operation(w);
		RAISE LOG 'wsctl reconciler: workspace % operation % complete', w.id, w.operation;
		RETURN wsctl._action('release', detail => 'complete');
	END IF;

	-- The time spent waiting for Docker to come back does not count.
	IF NOT waiting AND elapsed > wsctl.operation_timeout(w.operation) THEN
		PERFORM wsctl._record_failure(w, 'Timeout', NULL,
			format('%s did not complete within %s', w.operation, wsctl.operation_timeout(w.operation)),
			jsonb_build_object('operation', w.operation,
							   'elapsed_seconds', round(extract(epoch FROM elapsed))));
		IF worker_state = 'busy' THEN
			RETURN wsctl._action('terminate', detail => 'timeout');
		END IF;
		PERFORM wsctl._finish_attempt(w, CASE WHEN worker_state = 'none' THEN 'vanished' ELSE 'failed' END,
									  'Timeout');
		RETURN wsctl._action(CASE WHEN worker_state = 'none' THEN 'none' ELSE 'release' END,
							 detail => 'timeout');
	END IF;

	IF worker_state = 'busy' THEN
		RETURN wsctl._action('none', detail => 'worker busy');
	ELSIF worker_state = 'failed' AND worker_code = 'DOCKER_UNAVAILABLE' THEN
		PERFORM wsctl._finish_attempt(w, 'failed', worker_reason, worker_code, worker_message);
		PERFORM wsctl._record_outage(w, attempt, worker_code, worker_message);
		RETURN wsctl._action('release', detail => 'waiting for Docker: ' || worker_message);
	ELSIF worker_state = 'failed' THEN
		PERFORM wsctl._finish_attempt(w, 'failed', worker_reason, worker_code, worker_message);
		PERFORM wsctl._record_failure(w, worker_reason, nullif(worker_code, ''), worker_message);
		RETURN wsctl._action('release', detail => 'worker failed');
	ELSIF worker_state = 'succeeded' THEN
		-- An observation made after the worker finished that still
		-- disagrees is a Mismatch.
		IF w.observed_at >= worker_finished_at THEN
			PERFORM wsctl._finish_attempt(w, 'failed', 'Mismatch');
			PERFORM wsctl._record_failure(w, 'Mismatch', NULL,
				format('%s finished but the workspace is observed %s', w.operation, w.observed_status),
				jsonb_build_object('expected', wsctl.operation_target(w.operation),
								   'actual', w.observed_status));
			RETURN wsctl._action('release', detail => 'mismatch');
		END IF;
		RETURN wsctl._action('none', detail => 'waiting for observation');
	END IF;

	-- No worker. An attempt without an outcome lost its worker (it died,
	-- or a server restart wiped shared memory): a failure like any other,
	-- including during a retry.
	IF attempt.outcome IS NULL THEN
		IF attempt.attempt IS NULL THEN
			-- No attempt was ever recorded for this op_id: record this one.
			INSERT INTO wsctl.operation_attempts AS a (workspace_id, op_id, attempt, operation)
			VALUES (w.id, w.op_id, 1, w.operation);
		END IF;
		PERFORM wsctl._finish_attempt(w, 'vanished', 'Unreachable', 'WORKER_VANISHED');
		PERFORM wsctl._record_failure(w, 'Unreachable', 'WORKER_VANISHED',
			format('the worker of %s exited without reporting an outcome', w.operation));
		RETURN wsctl._action('none', detail => 'worker vanished');
	END IF;
	retry_at := attempt.finished_at + current_setting('wsctl.retry_delay')::interval;
	IF clock_timestamp() < retry_at OR NOT can_launch THEN
		RETURN wsctl._action('none', detail => CASE WHEN waiting THEN 'retry wait (Docker unavailable)' ELSE 'retry wait' END);
	END IF;
	IF waiting THEN
		-- Give the operation back the time Docker was away.
		UPDATE wsctl.workspaces AS x
		   SET op_started_at = x.op_started_at
				+ (now() - (x.error_info -> 'context' ->> 'outage_since')::timestamptz),
			   error_info = jsonb_set(x.error_info, '{context}',
									  (x.error_info -> 'context') - 'outage_since')
		 WHERE x.id = w.id;
	END IF;
	RAISE LOG 'wsctl reconciler: workspace % retrying % (attempt %)', w.id, w.operation, attempt.attempt + 1;
	RETURN wsctl._launch(w, w.operation, w.op_id, 'retry');
END
$$;
COMMENT ON FUNCTION wsctl._reconcile_in_flight(wsctl.workspaces, text, timestamptz, text, text, text, bool) IS
	'Reconciles a workspace whose operation is in flight';

-- One workspace, one transaction. worker_state is none, busy, succeeded or
-- failed, from the operation slot of this workspace in shared memory, and
-- worker_op_id the op_id that slot was launched for.
-- Rows locked by another session are skipped (SKIP LOCKED), so a client
-- idle in a transaction stalls at most its own workspace.
CREATE FUNCTION wsctl._reconcile_workspace(workspace_id uuid, worker_state text, worker_op_id uuid,
										   worker_finished_at timestamptz, worker_reason text,
										   worker_code text, worker_message text, can_launch bool)
RETURNS wsctl.reconcile_action
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'reconciler'
AS $$
DECLARE
	w         wsctl.workspaces;
	status    wsctl.status;
	planned   wsctl.operation;
	finished  bool := worker_state IN ('succeeded', 'failed');
	slot_locked bool := false;
	idle      wsctl.reconcile_action := wsctl._action(
					CASE WHEN worker_state IN ('succeeded', 'failed') THEN 'release' ELSE 'none' END);
BEGIN
	-- Peek without a lock: a STARTING claim takes the claim lock first.
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id;
	IF NOT FOUND THEN
		RETURN idle;
	END IF;
	IF w.operation = 'NONE'
	   AND wsctl.plan_operation(w.observed_status, w.desired_state, w.archive_key, w.deleted_at) = 'STARTING' THEN
		PERFORM 1 FROM wsctl.locks AS l WHERE l.name = 'starting_claims' FOR UPDATE SKIP LOCKED;
		slot_locked := FOUND;
	END IF;
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE SKIP LOCKED;
	IF NOT FOUND THEN
		-- A worker's outcome stays in its slot until it can be recorded.
		RETURN wsctl._action('none', detail => 'row locked by another session; skipped');
	END IF;

	-- A slot left from an earlier op_id (the operation was recovered or
	-- replaced meanwhile) is never judged against the current one.
	IF worker_state <> 'none' AND worker_op_id IS DISTINCT FROM w.op_id THEN
		RETURN wsctl._action(CASE WHEN worker_state = 'busy' THEN 'terminate' ELSE 'release' END,
							 detail => 'worker of an earlier op_id');
	END IF;

	status := wsctl.effective_status(w.observed_status, w.error_info);
	planned := wsctl.plan_operation(status, w.desired_state, w.archive_key, w.deleted_at);

	-- ERROR is skipped, except that a deleted workspace is torn down,
	-- replacing the failed operation it kept; once DELETING is claimed the
	-- workspace is in flight again until the HealthMonitor re-observes it.
	IF status = 'ERROR'
	   AND NOT (w.deleted_at IS NOT NULL AND w.operation = 'DELETING'
				AND NOT coalesce((w.error_info ->> 'is_terminal')::bool, false)) THEN
		IF worker_state = 'busy' THEN
			RETURN wsctl._action('terminate', detail => 'workspace in ERROR');
		ELSIF finished THEN
			PERFORM wsctl._finish_attempt(w, CASE WHEN worker_state = 'succeeded' THEN 'succeeded' ELSE 'failed' END,
										  nullif(worker_reason, ''), worker_code, nullif(worker_message, ''));
			RETURN idle;
		ELSIF planned <> 'DELETING' OR w.operation = 'DELETING' OR NOT can_launch THEN
			RETURN idle;
		END IF;
		RETURN wsctl._claim(w, 'DELETING');
	END IF;

	IF w.operation <> 'NONE' THEN
		RETURN wsctl._reconcile_in_flight(w, worker_state, worker_finished_at, worker_reason,
										  worker_code, worker_message, can_launch);
	END IF;

	IF planned = 'NONE' OR worker_state <> 'none' OR NOT can_launch THEN
		RETURN idle;
	END IF;
	IF planned = 'STARTING' THEN
		-- The row changed between the peek and the lock, or another
		-- reconciler holds the claim lock: claim next time.
		IF NOT slot_locked THEN
			RETURN wsctl._action('none', detail => 'STARTING claim lock not taken; retry');
		END IF;
		BEGIN
			PERFORM wsctl._check_running_slot(w.owner_user_id, w.id, count_requests => false);
		EXCEPTION WHEN SQLSTATE 'WS429' THEN
			RETURN wsctl._action('none', detail => 'waiting for a running slot: ' || SQLERRM);
		END;
	END IF;
	RETURN wsctl._claim(w, planned);
END
$$;
COMMENT ON FUNCTION wsctl._reconcile_workspace(uuid, text, uuid, timestamptz, text, text, text, bool) IS
	'StateReconciler step for one workspace: completes, times out, records failures, retries or claims; returns the process action';

-- The reconciler's work list: rows not converged or in flight.
CREATE FUNCTION wsctl._reconcile_candidates()
RETURNS SETOF uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT x.id FROM wsctl.workspaces AS x
	 WHERE (x.deleted_at IS NULL AND (x.observed_status <> x.desired_state OR x.operation <> 'NONE'))
		OR (x.deleted_at IS NOT NULL AND (x.observed_status <> 'DELETED' OR x.operation <> 'NONE'))
	 ORDER BY x.op_started_at NULLS LAST, x.updated_at
$$;
COMMENT ON FUNCTION wsctl._reconcile_candidates() IS
	'Workspaces the reconciler must look at (matches idx_workspaces_reconcile)';
-- 85_ttl.sql: the TTL manager's decisions and writes (SPEC 4.4, DESIGN 5).
--
-- The worker lists the RUNNING workspaces whose standby TTL is due or
-- nearly due, asks Redis for their connection counts and idle timers, and
-- then, per workspace, either warns (a ttl_warning event, once) or stops
-- it by setting desired_state = STANDBY with a compare-and-set, so that a
-- user's request or a connection that arrived meanwhile always wins.
-- last_access_at is the reference: the completion of STARTING, and every
-- connect or disconnect, set it; a workspace is never stopped less than its
-- standby_ttl_seconds after it.

-- When the standby TTL of a workspace runs out: standby_ttl_seconds after
-- its last access (the start, or a connect or disconnect).
CREATE FUNCTION wsctl._standby_ttl_due_at(w wsctl.workspaces)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(w.last_access_at, w.updated_at) + make_interval(secs => w.standby_ttl_seconds) $$;
COMMENT ON FUNCTION wsctl._standby_ttl_due_at(wsctl.workspaces) IS
	'When the workspace''s standby TTL runs out: last_access_at (or updated_at) + standby_ttl_seconds';

-- RUNNING workspaces at rest whose standby TTL falls within warn_before.
CREATE FUNCTION wsctl._standby_ttl_candidates(warn_before interval)
RETURNS TABLE (id uuid, due bool, seconds_left int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.id, c.due_at <= now(),
		   greatest(0, ceil(extract(epoch FROM c.due_at - now())))::int
	  FROM (SELECT x.id, wsctl._standby_ttl_due_at(x) AS due_at
			  FROM wsctl.workspaces AS x
			 WHERE x.deleted_at IS NULL AND x.observed_status = 'RUNNING' AND x.operation = 'NONE'
			   AND x.desired_state = 'RUNNING') AS c
	 WHERE c.due_at <= now() + warn_before
	 ORDER BY c.id
$$;
COMMENT ON FUNCTION wsctl._standby_ttl_candidates(interval) IS
	'TTL manager: RUNNING workspaces at rest whose standby TTL is due (due) or due within warn_before';

-- The stop: desired_state STANDBY only if nothing changed since the read
-- (compare-and-set on desired_state, status, operation and the TTL itself);
-- a row another session holds is left for the next tick.
CREATE FUNCTION wsctl._ttl_stop(workspace_id uuid)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'ttl_manager'
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE SKIP LOCKED;
	IF NOT FOUND OR w.deleted_at IS NOT NULL OR w.desired_state <> 'RUNNING'
	   OR w.observed_status <> 'RUNNING' OR w.operation <> 'NONE'
	   OR wsctl._standby_ttl_due_at(w) > now() THEN
		RETURN false;
	END IF;
	UPDATE wsctl.workspaces AS x SET desired_state = 'STANDBY' WHERE x.id = w.id;
	PERFORM wsctl._wake_reconciler();
	RAISE LOG 'wsctl ttl_manager: workspace % idle for its standby TTL (% s): desired_state STANDBY',
		w.id, w.standby_ttl_seconds;
	RETURN true;
END
$$;
COMMENT ON FUNCTION wsctl._ttl_stop(uuid) IS
	'TTL manager: desired_state RUNNING -> STANDBY with compare-and-set; false when anything changed meanwhile';

-- Archive TTL (SPEC 10.6): a STANDBY workspace at rest whose last access
-- (the stop, or a connect or disconnect) is older than archive_ttl_seconds.
CREATE FUNCTION wsctl._archive_ttl_due_at(w wsctl.workspaces)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(w.last_access_at, w.updated_at) + make_interval(secs => w.archive_ttl_seconds) $$;
COMMENT ON FUNCTION wsctl._archive_ttl_due_at(wsctl.workspaces) IS
	'When the workspace''s archive TTL runs out: last_access_at (or updated_at) + archive_ttl_seconds';

-- STANDBY workspaces at rest (desired = observed = STANDBY, no operation,
-- no error) whose archive TTL falls within warn_before. None while no
-- object storage is configured: there is nowhere to archive to.
CREATE FUNCTION wsctl._archive_ttl_candidates(warn_before interval)
RETURNS TABLE (id uuid, due bool, seconds_left int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.id, c.due_at <= now(),
		   greatest(0, ceil(extract(epoch FROM c.due_at - now())))::int
	  FROM (SELECT x.id, wsctl._archive_ttl_due_at(x) AS due_at
			  FROM wsctl.workspaces AS x
			 WHERE x.deleted_at IS NULL AND x.observed_status = 'STANDBY' AND x.operation = 'NONE'
			   AND x.desired_state = 'STANDBY' AND x.error_info IS NULL) AS c
	 WHERE c.due_at <= now() + warn_before
	   AND coalesce(current_setting('wsctl.s3_endpoint', true), '') <> ''
	 ORDER BY c.id
$$;
COMMENT ON FUNCTION wsctl._archive_ttl_candidates(interval) IS
	'TTL manager: STANDBY workspaces at rest whose archive TTL is due (due) or due within warn_before';

-- The archive: desired_state PENDING only if nothing changed since the read.
CREATE FUNCTION wsctl._ttl_archive(workspace_id uuid)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'ttl_manager'
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id FOR UPDATE SKIP LOCKED;
	IF NOT FOUND OR w.deleted_at IS NOT NULL OR w.desired_state <> 'STANDBY'
	   OR w.observed_status <> 'STANDBY' OR w.operation <> 'NONE' OR w.error_info IS NOT NULL
	   OR wsctl._archive_ttl_due_at(w) > now()
	   OR coalesce(current_setting('wsctl.s3_endpoint', true), '') = '' THEN
		RETURN false;
	END IF;
	UPDATE wsctl.workspaces AS x SET desired_state = 'PENDING' WHERE x.id = w.id;
	PERFORM wsctl._wake_reconciler();
	RAISE LOG 'wsctl ttl_manager: workspace % unused for its archive TTL (% s): desired_state PENDING',
		w.id, w.archive_ttl_seconds;
	RETURN true;
END
$$;
COMMENT ON FUNCTION wsctl._ttl_archive(uuid) IS
	'TTL manager: desired_state STANDBY -> PENDING (archive) with compare-and-set; false when anything changed meanwhile';

-- A ttl_warning event, once per idle period (none since last_access_at)
-- and action: STANDBY (the standby TTL stops it) or PENDING (archived).
CREATE FUNCTION wsctl._ttl_warn(workspace_id uuid, seconds_left int, action text DEFAULT 'STANDBY')
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id;
	IF NOT FOUND OR EXISTS (
		SELECT 1 FROM wsctl.events AS e
		 WHERE e.workspace_id = w.id AND e.payload ->> 'event' = 'ttl_warning'
		   AND e.payload ->> 'action' = action
		   AND e.created_at >= coalesce(w.last_access_at, w.updated_at)) THEN
		RETURN false;
	END IF;
	INSERT INTO wsctl.events (workspace_id, owner_user_id, payload)
	VALUES (w.id, w.owner_user_id,
			wsctl.change_event(w, false)
			|| jsonb_build_object('event', 'ttl_warning', 'action', action,
								  'in_seconds', seconds_left,
								  'message', CASE action WHEN 'PENDING'
									THEN format('unused: this workspace is archived in %s s unless it is started', seconds_left)
									ELSE format('idle: this workspace stops in %s s unless someone connects', seconds_left) END));
	PERFORM wsctl._wake_event_listener();
	RETURN true;
END
$$;
COMMENT ON FUNCTION wsctl._ttl_warn(uuid, int, text) IS
	'TTL manager: a ttl_warning event for a workspace about to be stopped (STANDBY) or archived (PENDING), at most once per idle period';
-- 87_storage.sql: archives in object storage: the archive_key commit, the
-- progress of transfers, and the Archive GC's rules (SPEC 4.5, 5).

-- The commit point of ARCHIVING (SPEC 5.1: archive_key is stored before the
-- volume is removed, never after). archive_key is the reconciler's column;
-- this is the reconciler's rule, called by the operation worker once the
-- object and its meta are in the bucket. It accepts only a key below this
-- op_id's prefix, and only while the workspace still has this operation.
CREATE FUNCTION wsctl._commit_archive(workspace_id uuid, op_id uuid, key text)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'reconciler'
AS $$
BEGIN
	UPDATE wsctl.workspaces AS x
	   SET archive_key = key
	 WHERE x.id = workspace_id AND x.op_id = _commit_archive.op_id
	   AND x.operation = 'ARCHIVING' AND x.deleted_at IS NULL
	   AND starts_with(key, wsctl.archive_prefix_for(workspace_id, _commit_archive.op_id))
	   AND key NOT LIKE '%/../%' AND key NOT LIKE '%.meta';
	IF FOUND THEN
		RAISE LOG 'wsctl: workspace % ARCHIVING committed archive_key % (op_id %)',
			workspace_id, key, op_id;
	END IF;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION wsctl._commit_archive(uuid, uuid, text) IS
	'Commits archive_key once an ARCHIVING worker has uploaded the object and its meta; false if the operation was superseded';

-- Progress of long transfers, from the operation workers' shared memory.
CREATE FUNCTION wsctl._operation_progress(
	OUT workspace_id uuid, OUT operation text, OUT op_id uuid, OUT bytes_done bigint,
	OUT bytes_total bigint, OUT started_at timestamptz, OUT updated_at timestamptz)
RETURNS SETOF record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_operation_progress';
COMMENT ON FUNCTION wsctl._operation_progress() IS 'Data of the wsctl.operation_progress view, from shared memory';

CREATE VIEW wsctl.operation_progress AS
	SELECT p.workspace_id, p.operation, p.op_id, p.bytes_done, p.bytes_total,
		   p.started_at, p.updated_at,
		   -- bytes per second since the worker started
		   CASE WHEN p.updated_at > p.started_at
				THEN round(p.bytes_done / extract(epoch FROM p.updated_at - p.started_at))::bigint
		   END AS rate
	  FROM wsctl._operation_progress() AS p;
COMMENT ON VIEW wsctl.operation_progress IS
	'Bytes moved by each running ARCHIVING (read from the volume) or RESTORING (downloaded; bytes_total = the archive''s size) operation, and the rate in bytes per second';

-- Archive GC ----------------------------------------------------------------

CREATE TABLE wsctl.archive_orphans (
	key           text PRIMARY KEY,
	first_seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wsctl.archive_orphans IS
	'Objects under archives/ that no workspace protects, and when the Archive GC first saw each (survives restarts)';

-- Whether a key is protected (SPEC 4.5): the archive_key of a live
-- workspace (and its meta), or anything under archives/{id}/{op_id}/ of a
-- live workspace whose op_id is set (an operation in flight, or an ERROR
-- that keeps it for recovery). A soft-deleted workspace protects nothing.
CREATE FUNCTION wsctl._archive_protected(key text)
RETURNS bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (
		SELECT 1 FROM wsctl.workspaces AS w
		 WHERE w.deleted_at IS NULL
		   AND ((w.archive_key IS NOT NULL AND key IN (w.archive_key, w.archive_key || '.meta'))
				OR (w.op_id IS NOT NULL
					AND starts_with(key, wsctl.archive_prefix_for(w.id, w.op_id)))))
$$;
COMMENT ON FUNCTION wsctl._archive_protected(text) IS
	'Whether the Archive GC must keep an object: a live workspace''s archive_key (and meta), or under the prefix of its op_id';

-- One GC cycle's bookkeeping, given the complete listing of archives/: the
-- orphans are recorded (first sight kept), rows of keys that are protected
-- again or gone are dropped, and the orphans older than the delay returned.
CREATE FUNCTION wsctl._gc_plan(listed text[], orphan_delay interval)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	orphans text[];
BEGIN
	SELECT coalesce(array_agg(k), '{}') INTO orphans
	  FROM unnest(listed) AS k
	 WHERE starts_with(k, 'archives/') AND NOT wsctl._archive_protected(k);
	DELETE FROM wsctl.archive_orphans AS o WHERE o.key <> ALL (orphans);
	INSERT INTO wsctl.archive_orphans AS o (key)
	SELECT k FROM unnest(orphans) AS k
	ON CONFLICT DO NOTHING;
	RETURN QUERY
		SELECT o.key FROM wsctl.archive_orphans AS o
		 WHERE o.first_seen_at <= now() - orphan_delay
		 ORDER BY o.key;
END
$$;
COMMENT ON FUNCTION wsctl._gc_plan(text[], interval) IS
	'Archive GC: records the orphans of a complete listing of archives/ and returns those orphaned for longer than the delay';

-- Asked again right before each delete, in its own transaction: a key that
-- became protected since the plan is kept.
CREATE FUNCTION wsctl._gc_may_delete(key text, orphan_delay interval)
RETURNS bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM wsctl.archive_orphans AS o
					WHERE o.key = _gc_may_delete.key
					  AND o.first_seen_at <= now() - orphan_delay)
		   AND NOT wsctl._archive_protected(key)
$$;
COMMENT ON FUNCTION wsctl._gc_may_delete(text, interval) IS
	'Archive GC: whether an orphan may be deleted now (still unprotected and orphaned for longer than the delay)';

CREATE FUNCTION wsctl._gc_deleted(key text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM wsctl.archive_orphans AS o WHERE o.key = _gc_deleted.key $$;
COMMENT ON FUNCTION wsctl._gc_deleted(text) IS 'Archive GC: forgets an orphan it deleted from the bucket';
-- 90_privileges.sql: who may call what (DESIGN section 3).
--
-- Roles are cluster-wide, so they are not members of the extension:
-- CREATE EXTENSION creates them when missing and DROP EXTENSION leaves them
-- (with no privileges left); docs/operations.md says how to drop them.
--   wsctl_api    EXECUTE on the API functions, SELECT on wsctl.workspace_info
--   wsctl_admin  wsctl_api plus recover_workspace
-- Nobody but the extension owner can write wsctl.workspaces directly.

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'wsctl_api') THEN
		CREATE ROLE wsctl_api NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'wsctl_admin') THEN
		CREATE ROLE wsctl_admin NOLOGIN;
	END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA wsctl FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA wsctl FROM PUBLIC;

GRANT USAGE ON SCHEMA wsctl TO wsctl_api, wsctl_admin;
GRANT wsctl_api TO wsctl_admin;

GRANT SELECT ON wsctl.workspace_info TO wsctl_api;
GRANT SELECT ON wsctl.events TO wsctl_api;
GRANT SELECT ON wsctl.operation_progress TO wsctl_api;

GRANT EXECUTE ON FUNCTION
	wsctl.create_workspace(uuid, text, text, wsctl.status, text, text, int, int),
	wsctl.set_desired_state(uuid, wsctl.status),
	wsctl.delete_workspace(uuid),
	wsctl.update_workspace(uuid, text, text, text, int, int),
	wsctl.get_workspace(uuid),
	wsctl.list_workspaces(uuid),
	wsctl.wake_workspace(uuid),
	wsctl.activity_connect(uuid),
	wsctl.activity_disconnect(uuid),
	wsctl.sse_token(uuid, interval),
	wsctl.workspace_history(uuid, timestamptz, int),
	-- The pure state-machine functions are safe for anyone who can see the schema.
	wsctl.status_level(wsctl.status),
	wsctl.plan_operation(wsctl.status, wsctl.status, text, timestamptz),
	wsctl.operation_target(wsctl.operation),
	wsctl.operation_complete(wsctl.operation, wsctl.status, text, uuid, uuid),
	wsctl.archive_key_for(uuid, uuid),
	wsctl.archive_prefix_for(uuid, uuid),
	wsctl._operation_progress(),
	wsctl.display_status(wsctl.status, text),
	wsctl.effective_status(wsctl.status, jsonb),
	wsctl.request_allowed(wsctl.status, wsctl.operation, text),
	wsctl.valid_image_ref(text)
	TO wsctl_api;

GRANT EXECUTE ON FUNCTION wsctl.recover_workspace(uuid) TO wsctl_admin;
GRANT SELECT ON wsctl.workers TO wsctl_admin;
GRANT EXECUTE ON FUNCTION wsctl._worker_status() TO wsctl_admin;

-- Every function of the extension runs with a pinned search_path, so that
-- nothing a caller (or a database owner, through ALTER DATABASE ... SET)
-- puts in a schema can be resolved inside it: an operator on one of our
-- types, or one on a core type placed ahead of pg_catalog. Functions
-- written with their own SET clause keep it; this pins the rest, and a
-- pgTAP test checks that none is left without one.
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
		 WHERE p.pronamespace = 'wsctl'::regnamespace
		   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%')
	LOOP
		EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
	END LOOP;
END
$$;
