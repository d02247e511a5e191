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

-- When the HealthMonitor last saw this workspace as it is recorded. The row's
-- own observed_at is written only when its observation changes (and the
-- first time); every complete tick since then that covered the row (it was
-- watched and not skipped) confirmed it, and the heartbeat holds the last.
-- NULL until the first observation. plpgsql, not sql: called once per API
-- result, and a plpgsql function keeps its query's plan for the session.
CREATE FUNCTION wsctl._observed_at(w wsctl.workspaces)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF w.observed_at IS NULL THEN
		RETURN NULL;
	END IF;
	IF w.deleted_at IS NOT NULL AND w.observed_status = 'DELETED' AND w.operation = 'NONE' THEN
		RETURN w.observed_at;		-- no longer watched
	END IF;
	RETURN greatest(w.observed_at,
					(SELECT h.observed_at FROM wsctl.health_observation AS h
					  WHERE h.instance_backend = w.instance_backend
						AND NOT (w.id = ANY (h.skipped))));
END
$$;
COMMENT ON FUNCTION wsctl._observed_at(wsctl.workspaces) IS
	'Last observation of a workspace: its observed_at or, when later and it was covered, the HealthMonitor heartbeat of its instance backend (wsctl.health_observation)';
