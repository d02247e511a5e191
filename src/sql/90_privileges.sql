-- 90_privileges.sql: who may call what (DESIGN section 3).
--
-- Roles are cluster-wide, so they are not members of the extension:
-- CREATE EXTENSION creates them when missing and DROP EXTENSION leaves them
-- (with no privileges left); docs/operations.md says how to drop them.
--   wsctl_api    EXECUTE on the API functions, SELECT on wsctl.workspace_info
--   wsctl_admin  wsctl_api plus recover_workspace
--   wsctl_monitor  SELECT on wsctl.metrics (for a metrics exporter); wsctl_admin has it
-- Nobody but the extension owner can write wsctl.workspaces directly.

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'wsctl_api') THEN
		CREATE ROLE wsctl_api NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'wsctl_admin') THEN
		CREATE ROLE wsctl_admin NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'wsctl_monitor') THEN
		CREATE ROLE wsctl_monitor NOLOGIN;
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
-- wsctl.workspace_info's observed_at reads the HealthMonitor's heartbeat
-- through wsctl._observed_at(), with the reader's rights.
GRANT SELECT ON wsctl.health_observation TO wsctl_api;

GRANT EXECUTE ON FUNCTION
	wsctl.create_workspace(uuid, text, text, wsctl.status, text, text, int, int, wsctl.instance_backend),
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
	wsctl.valid_image_ref(text),
	wsctl._observed_at(wsctl.workspaces)
	TO wsctl_api;

GRANT EXECUTE ON FUNCTION wsctl.recover_workspace(uuid) TO wsctl_admin;
GRANT SELECT ON wsctl.workers TO wsctl_admin;
GRANT EXECUTE ON FUNCTION wsctl._worker_status() TO wsctl_admin;

-- The metrics view reads the table with its owner's rights; the functions
-- it calls need EXECUTE of whoever reads it.
GRANT USAGE ON SCHEMA wsctl TO wsctl_monitor;
GRANT SELECT ON wsctl.metrics TO wsctl_monitor;
GRANT EXECUTE ON FUNCTION
	wsctl._metrics_counters(),
	wsctl.effective_status(wsctl.status, jsonb)
	TO wsctl_monitor;
GRANT wsctl_monitor TO wsctl_admin;

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
