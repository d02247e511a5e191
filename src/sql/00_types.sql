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

CREATE TYPE wsctl.instance_backend AS ENUM ('local-docker', 'k8s', 'remote-docker');
COMMENT ON TYPE wsctl.instance_backend IS
	'Where the workspace container runs: local-docker (wsctl.docker_host), remote-docker (a second daemon, wsctl.remote_docker_host); k8s is designed, not built';

CREATE TYPE wsctl.storage_backend AS ENUM ('docker-volume', 'minio');
COMMENT ON TYPE wsctl.storage_backend IS 'Where the workspace home volume lives';

-- The components that may write wsctl.workspaces (DESIGN section 3).
CREATE TYPE wsctl.component AS ENUM
	('api', 'ttl_manager', 'health_monitor', 'reconciler', 'admin');
COMMENT ON TYPE wsctl.component IS 'Writers of wsctl.workspaces, declared in the setting wsctl.component';
