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
--   running_slots_00 .. running_slots_15
--                    the API's running-slot claims, striped by owner
--                    (wsctl._lock_running_slots)
--   starting_claims  serializes the reconciler's STARTING claims
CREATE TABLE wsctl.locks (
	name text PRIMARY KEY,
	note text NOT NULL
);
COMMENT ON TABLE wsctl.locks IS
	'Rows whose FOR UPDATE locks serialize running-slot claims; only the extension owner can lock them';
INSERT INTO wsctl.locks (name, note)
SELECT format('running_slots_%s', lpad(s::text, 2, '0')),
	   format('running-slot claims of the owners of stripe %s (create, set_desired_state, wake)', s)
  FROM generate_series(0, 15) AS s
UNION ALL
SELECT 'starting_claims', 'the reconciler''s STARTING claims, re-checked against the limits';

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

-- The HealthMonitor's heartbeat: one row per instance backend, rewritten
-- by every complete tick of that backend's site
-- (wsctl._record_observations), instead of every workspace's observed_at.
-- observed_at is when the tick listed the site; skipped names the watched
-- workspaces of the site the tick could not record (held by another
-- session, or a failed write), which that tick did not observe.
-- wsctl._observed_at() reads it. A site whose tick fails (its daemon
-- unreachable, the wrong daemon) keeps its row as it was, so the heartbeat
-- of that site stops as its observation stops; the other sites go on.
CREATE TABLE wsctl.health_observation (
	instance_backend wsctl.instance_backend PRIMARY KEY,
	observed_at      timestamptz,
	skipped          uuid[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE wsctl.health_observation IS
	'HealthMonitor heartbeat, one row per instance backend: when the last complete tick listed its site, and the workspaces it skipped';
