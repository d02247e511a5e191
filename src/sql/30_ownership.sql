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
