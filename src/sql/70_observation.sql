-- 70_observation.sql: what the HealthMonitor writes after each look at a
-- backend site.
--
-- For each enabled site the worker lists instances and homes (one call
-- each: Docker containers and volumes) and hands the lists to
-- _record_observations(), which applies observe_status() to every
-- workspace of that instance backend that still needs watching. Idle costs nothing per
-- workspace: only rows whose observation differs from what they record (or
-- that were never observed) are locked and written, one subtransaction
-- each, so that one bad row never costs the tick; every other row is
-- covered by the site's single heartbeat row, wsctl.health_observation
-- (wsctl._observed_at() combines the two). A row that must change but is
-- held by another session is skipped (SKIP LOCKED) and named in the
-- heartbeat, so it does not count as observed by this tick.

CREATE FUNCTION wsctl._record_observations(backend wsctl.instance_backend,
										   container_ids uuid[], container_running bool[],
										   volume_ids uuid[], observed_at timestamptz)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'health_monitor'
AS $$
DECLARE
	r          record;
	w          wsctl.workspaces;
	status     wsctl.status;
	violation  text;
	new_error  jsonb;
	changed    int := 0;
	skipped_ids uuid[] := '{}';
BEGIN
	-- Judged first without locks, from the committed rows: most rows agree
	-- with Docker and are neither locked nor written.
	FOR r IN
		WITH c AS (SELECT u.id, bool_or(u.running) AS running
					 FROM unnest(container_ids, container_running) AS u(id, running)
					GROUP BY u.id),
			 v AS (SELECT DISTINCT u.id FROM unnest(volume_ids) AS u(id)),
			 o AS (SELECT x.id, x.observed_at AS seen_at, x.observed_status, x.error_info,
						  c.id IS NOT NULL AS has_c, coalesce(c.running, false) AS running,
						  v.id IS NOT NULL AS has_v,
						  wsctl.observe_status(x, c.id IS NOT NULL, coalesce(c.running, false),
											   v.id IS NOT NULL) AS status,
						  wsctl.observe_violation(x, c.id IS NOT NULL, coalesce(c.running, false),
												  v.id IS NOT NULL) AS violation
					 FROM wsctl.workspaces AS x
					 LEFT JOIN c ON c.id = x.id
					 LEFT JOIN v ON v.id = x.id
					WHERE x.instance_backend = backend
					  AND (x.deleted_at IS NULL OR x.observed_status <> 'DELETED' OR x.operation <> 'NONE'))
		SELECT o.id, o.has_c, o.running, o.has_v
		  FROM o
		 WHERE o.seen_at IS NULL
			OR o.status IS DISTINCT FROM o.observed_status
			OR (o.violation IS NOT NULL AND o.error_info IS NULL AND o.status = 'ERROR')
		 ORDER BY o.id
	LOOP
		-- Then locked, and judged again from the locked row. A row another
		-- session holds (a client idle in a transaction) is skipped this tick
		-- instead of stalling every other workspace.
		SELECT x.* INTO w FROM wsctl.workspaces AS x WHERE x.id = r.id FOR UPDATE SKIP LOCKED;
		IF NOT FOUND THEN
			skipped_ids := skipped_ids || r.id;
			CONTINUE;
		END IF;
		status := wsctl.observe_status(w, r.has_c, r.running, r.has_v);
		violation := wsctl.observe_violation(w, r.has_c, r.running, r.has_v);
		-- An invariant violation is recorded only over an empty error_info.
		new_error := CASE WHEN violation IS NOT NULL AND w.error_info IS NULL AND status = 'ERROR'
					 THEN wsctl.invariant_error(violation, w.operation, r.has_c, r.has_v, w.archive_key) END;
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
			skipped_ids := skipped_ids || w.id;
			RAISE WARNING 'wsctl health_monitor: workspace %: observation not recorded: %', w.id, SQLERRM;
		END;
	END LOOP;

	-- The heartbeat: every watched row of the site not named in skipped
	-- agrees with this tick's listing.
	INSERT INTO wsctl.health_observation AS h (instance_backend, observed_at, skipped)
	VALUES (backend, _record_observations.observed_at, skipped_ids)
	ON CONFLICT (instance_backend)
	DO UPDATE SET observed_at = excluded.observed_at, skipped = excluded.skipped;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION wsctl._record_observations(wsctl.instance_backend, uuid[], bool[], uuid[], timestamptz) IS
	'HealthMonitor write: observe_status() for every watched workspace of one instance backend from one listing of its site''s instances and homes; writes only the rows whose observation changed (or never observed) and the site''s heartbeat; returns how many statuses changed';

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

CREATE FUNCTION wsctl._backend_resources_expected(backend wsctl.instance_backend)
RETURNS bool
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM wsctl.workspaces AS x
					WHERE x.instance_backend = backend
					  AND x.observed_status IN ('STANDBY', 'RUNNING'))
$$;
COMMENT ON FUNCTION wsctl._backend_resources_expected(wsctl.instance_backend) IS
	'Whether some workspace of this instance backend is observed STANDBY or RUNNING, i.e. has resources on its site (the HealthMonitor creates the site''s marker only when none does)';
