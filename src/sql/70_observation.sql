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
