--
-- The extension as a whole: what CREATE EXTENSION installs, that DROP
-- EXTENSION removes every object it created, and the settings it defines.
--
SELECT extname, extversion, extrelocatable, nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'wsctl';

-- Members of the extension, by kind.
SELECT classid::regclass AS kind, count(*)
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'wsctl')
 GROUP BY 1 ORDER BY 1::text;

-- The settings exist with their defaults.
SELECT name, boot_val AS default, unit, context FROM pg_settings WHERE name LIKE 'wsctl.%' ORDER BY name;

-- wsctl.component only takes a component name.
SET wsctl.component = 'bogus';
SET wsctl.component = 'reconciler';
RESET wsctl.component;

-- Ordinary roles get nothing by default.
SELECT has_table_privilege('public', 'wsctl.workspaces', 'SELECT') AS public_select,
	   has_function_privilege('public', 'wsctl.create_workspace(uuid,text,text,wsctl.status,text,text,int,int,wsctl.instance_backend)', 'EXECUTE') AS public_execute,
	   has_function_privilege('wsctl_api', 'wsctl.create_workspace(uuid,text,text,wsctl.status,text,text,int,int,wsctl.instance_backend)', 'EXECUTE') AS api_execute,
	   has_table_privilege('wsctl_api', 'wsctl.workspaces', 'UPDATE') AS api_update;

-- DROP EXTENSION removes every object it created.
SELECT (wsctl.create_workspace('00000000-0000-0000-0000-0000000000d1', 'doomed', 'busybox')).id IS NOT NULL AS created;
DROP EXTENSION wsctl;
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'wsctl';
SELECT count(*) AS leftover_types FROM pg_type WHERE typname IN ('status', 'operation', 'component', 'workspaces', 'workspace_info');
SELECT count(*) AS leftover_functions FROM pg_proc WHERE prosrc LIKE '%wsctl.%' OR probin LIKE '%wsctl%';
SELECT count(*) AS leftover_triggers FROM pg_trigger WHERE tgname LIKE 'workspaces_%';
-- Roles are cluster-wide and stay, without privileges in this database.
SELECT rolname FROM pg_roles WHERE rolname LIKE 'wsctl\_%' ORDER BY 1;
CREATE EXTENSION wsctl;
SELECT count(*) AS workspaces_after_recreate FROM wsctl.workspaces;
