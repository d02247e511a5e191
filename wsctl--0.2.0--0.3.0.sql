-- wsctl--0.2.0--0.3.0.sql: ALTER EXTENSION wsctl UPDATE from 0.2.0 to 0.3.0.
--
-- 0.3.0 puts the backends behind the InstanceController / StorageProvider
-- interfaces (src/backends/backend.h), adds a second instance backend,
-- remote-docker (a second Docker daemon, wsctl.remote_docker_host),
-- stripes the API's running-slot lock by owner, and caps the transfers
-- claimed at once (wsctl.max_concurrent_transfers). Like
-- wsctl--0.1--0.2.0.sql (whose header says what each kind of change to
-- src/sql/ needs here), it turns an installed 0.2.0 into exactly what
-- CREATE EXTENSION gives with 0.3.0's install script; test/upgrade/upgrade.t
-- checks that through the chain 0.1 -> 0.2.0 -> 0.3.0.
--
-- The library: install the new build and restart PostgreSQL, then run
-- ALTER EXTENSION wsctl UPDATE. Until then the HealthMonitor observes the
-- local-docker site through 0.2.0's functions (docs/decisions.md).

-- The new enum value is not used in this script: PostgreSQL refuses a value
-- added in the same transaction.
ALTER TYPE wsctl.instance_backend ADD VALUE 'remote-docker';
COMMENT ON TYPE wsctl.instance_backend IS
	'Where the workspace container runs: local-docker (wsctl.docker_host), remote-docker (a second daemon, wsctl.remote_docker_host); k8s is designed, not built';

-- The heartbeat, one row per instance backend: the old single row is only a
-- heartbeat (every row keeps its own observed_at), so it is dropped, not
-- converted; the next tick writes the new row.
DROP TABLE wsctl.health_observation;
CREATE TABLE wsctl.health_observation (
	instance_backend wsctl.instance_backend PRIMARY KEY,
	observed_at      timestamptz,
	skipped          uuid[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE wsctl.health_observation IS
	'HealthMonitor heartbeat, one row per instance backend: when the last complete tick listed its site, and the workspaces it skipped';
GRANT SELECT ON wsctl.health_observation TO wsctl_api;

CREATE FUNCTION wsctl._backend_enabled(instance_backend text, storage_backend text)
RETURNS bool
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'wsctl_backend_enabled';
COMMENT ON FUNCTION wsctl._backend_enabled(text, text) IS
	'Whether wsctl.so implements this instance_backend / storage_backend pair and its setting enables it (remote-docker: wsctl.remote_docker_host set)';

CREATE OR REPLACE FUNCTION wsctl._observed_at(w wsctl.workspaces)
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

DROP FUNCTION wsctl._record_observations(uuid[], bool[], uuid[], timestamptz);
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

DROP FUNCTION wsctl._docker_resources_expected();
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

-- The running-slot lock, striped by owner. The old lock row goes; a
-- session of the old API that holds it finishes before this update can
-- take its own locks.
DELETE FROM wsctl.locks WHERE name = 'running_slots';
INSERT INTO wsctl.locks (name, note)
SELECT format('running_slots_%s', lpad(s::text, 2, '0')),
	   format('running-slot claims of the owners of stripe %s (create, set_desired_state, wake)', s)
  FROM generate_series(0, 15) AS s;
CREATE FUNCTION wsctl._slot_stripe(owner uuid)
RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT get_byte(uuid_send(owner), 15) & 15
$$;
COMMENT ON FUNCTION wsctl._slot_stripe(uuid) IS
	'The slot-lock stripe (0 .. 15) of an owner: the low 4 bits of its uuid';

DROP FUNCTION wsctl._lock_running_slots();
CREATE FUNCTION wsctl._lock_running_slots(owner uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	quota  int := current_setting('wsctl.max_running_global')::int / 16;
	mine   int := wsctl._slot_stripe(owner);
	within bool;
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'running-slot claims require READ COMMITTED isolation'
			USING ERRCODE = '0A000',
				  DETAIL = format('The transaction runs at %s, whose snapshot could miss a concurrent claim.',
								  upper(current_setting('transaction_isolation'))),
				  HINT = 'Call the wsctl API outside REPEATABLE READ and SERIALIZABLE transactions.';
	END IF;
	IF owner IS NOT NULL AND quota > 0 THEN
		-- The stripe alone, in a subtransaction: if the quotas do not
		-- hold, rolling it back lets the stripe go before all are taken in
		-- order (holding one while waiting for the others could deadlock).
		BEGIN
			PERFORM 1 FROM wsctl.locks AS l
			  WHERE l.name = format('running_slots_%s', lpad(mine::text, 2, '0')) FOR UPDATE;
			-- claims per stripe: committed rows and the caller's own
			SELECT coalesce(bool_and(c.claims < quota OR (c.stripe <> mine AND c.claims <= quota)), true)
			  INTO within
			  FROM (SELECT wsctl._slot_stripe(w.owner_user_id) AS stripe, count(*) AS claims
					  FROM wsctl.workspaces AS w
					 WHERE (w.deleted_at IS NULL AND w.desired_state = 'RUNNING')
						OR w.observed_status = 'RUNNING' OR w.operation = 'STARTING'
					 GROUP BY 1) AS c;
			IF within THEN
				RETURN;
			END IF;
			RAISE EXCEPTION USING ERRCODE = 'WS4QU';	-- caught just below
		EXCEPTION WHEN SQLSTATE 'WS4QU' THEN
			NULL;
		END;
	END IF;
	PERFORM 1 FROM wsctl.locks AS l WHERE l.name LIKE 'running\_slots\_%' ORDER BY l.name FOR UPDATE;
END
$$;
COMMENT ON FUNCTION wsctl._lock_running_slots(uuid) IS
	'Serializes the API''s running-slot claims: the owner''s stripe of wsctl.locks while every stripe is within its quota, else all 16 stripes in order; held to commit';

CREATE FUNCTION wsctl._owner_of(workspace_id uuid)
RETURNS uuid
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN (SELECT x.owner_user_id FROM wsctl.workspaces AS x WHERE x.id = workspace_id);
END
$$;
COMMENT ON FUNCTION wsctl._owner_of(uuid) IS
	'owner_user_id of a workspace, read without a lock (it never changes): the slot-lock stripe of its claims';

CREATE FUNCTION wsctl._check_backend(instance_backend wsctl.instance_backend)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM wsctl._check_not_null('instance_backend', instance_backend IS NULL);
	IF NOT wsctl._backend_enabled(instance_backend::text, 'docker-volume') THEN
		RAISE EXCEPTION 'instance backend % is not available', instance_backend
			USING ERRCODE = '0A000',
				  DETAIL = CASE instance_backend::text
					WHEN 'remote-docker' THEN 'wsctl.remote_docker_host is empty.'
					ELSE 'This wsctl.so has no implementation of it (docs/kubernetes.md describes the k8s backend).' END,
				  HINT = 'Use local-docker, or set wsctl.remote_docker_host for remote-docker.';
	END IF;
END
$$;
COMMENT ON FUNCTION wsctl._check_backend(wsctl.instance_backend) IS
	'0A000 for an instance backend that is not built (k8s) or not enabled (remote-docker without wsctl.remote_docker_host)';

DROP FUNCTION wsctl.create_workspace(uuid, text, text, wsctl.status, text, text, int, int);
CREATE FUNCTION wsctl.create_workspace(owner_user_id uuid, name text, image_ref text,
									   desired_state wsctl.status DEFAULT 'RUNNING',
									   description text DEFAULT NULL, memo text DEFAULT NULL,
									   standby_ttl_seconds int DEFAULT 300,
									   archive_ttl_seconds int DEFAULT 86400,
									   instance_backend wsctl.instance_backend DEFAULT 'local-docker')
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
	PERFORM wsctl._check_backend(create_workspace.instance_backend);

	IF desired_state = 'RUNNING' THEN
		PERFORM wsctl._lock_running_slots(owner_user_id);
		PERFORM wsctl._check_running_slot(owner_user_id, new_id);
	END IF;

	INSERT INTO wsctl.workspaces AS x
		(id, owner_user_id, name, description, memo, image_ref, instance_backend,
		 storage_backend, home_store_key, desired_state, standby_ttl_seconds, archive_ttl_seconds)
	VALUES
		(new_id, owner_user_id, name, description, memo, image_ref, create_workspace.instance_backend,
		 'docker-volume', 'ws-' || new_id::text || '-home',
		 desired_state, standby_ttl_seconds, archive_ttl_seconds)
	RETURNING x.* INTO w;

	PERFORM wsctl._wake_reconciler();
	RETURN wsctl._info(w);
END
$$;
COMMENT ON FUNCTION wsctl.create_workspace(uuid, text, text, wsctl.status, text, text, int, int, wsctl.instance_backend) IS
	'Creates a workspace (observed PENDING) on instance_backend that the workers bring to desired_state. WS422 bad input, WS429 running limit, 0A000 backend not available';
GRANT EXECUTE ON FUNCTION
	wsctl.create_workspace(uuid, text, text, wsctl.status, text, text, int, int, wsctl.instance_backend)
	TO wsctl_api;

CREATE OR REPLACE FUNCTION wsctl.set_desired_state(workspace_id uuid, desired_state wsctl.status)
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
	-- reconciler's STARTING claim, so the two can never deadlock. It is the
	-- owner's: read without a lock (owner_user_id never changes).
	IF desired_state = 'RUNNING' THEN
		PERFORM wsctl._lock_running_slots(wsctl._owner_of(workspace_id));
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

CREATE OR REPLACE FUNCTION wsctl.wake_workspace(workspace_id uuid)
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
	PERFORM wsctl._lock_running_slots(wsctl._owner_of(workspace_id));
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

CREATE OR REPLACE FUNCTION wsctl.get_workspace(workspace_id uuid)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w wsctl.workspaces;
BEGIN
	-- The common case in one query and no nested call; every other case
	-- goes to _live_workspace(), which raises WS422 or WS404 as it should.
	SELECT * INTO w FROM wsctl.workspaces AS x WHERE x.id = workspace_id;
	IF NOT FOUND OR w.deleted_at IS NOT NULL THEN
		w := wsctl._live_workspace(workspace_id, false);
	END IF;
	RETURN wsctl._info(w);
END
$$;
COMMENT ON FUNCTION wsctl.get_workspace(uuid) IS 'One live workspace. WS422 NULL id, WS404 unknown or deleted';

-- At most wsctl.max_concurrent_transfers transfers claimed at once.
CREATE FUNCTION wsctl._transfer_slot_free()
RETURNS bool
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN (SELECT count(*) FROM wsctl.workspaces AS x
			 WHERE x.operation IN ('ARCHIVING', 'RESTORING')
			   AND wsctl.effective_status(x.observed_status, x.error_info) <> 'ERROR')
		   < current_setting('wsctl.max_concurrent_transfers')::int;
END
$$;
COMMENT ON FUNCTION wsctl._transfer_slot_free() IS
	'Whether fewer than wsctl.max_concurrent_transfers ARCHIVING or RESTORING operations are claimed by workspaces not in ERROR (the reconciler claims one more only then)';

CREATE OR REPLACE FUNCTION wsctl._reconcile_workspace(workspace_id uuid, worker_state text, worker_op_id uuid,
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
	IF planned IN ('ARCHIVING', 'RESTORING') AND NOT wsctl._transfer_slot_free() THEN
		RETURN wsctl._action('none', detail => 'waiting for a transfer slot (wsctl.max_concurrent_transfers)');
	END IF;
	RETURN wsctl._claim(w, planned);
END
$$;
COMMENT ON FUNCTION wsctl._reconcile_workspace(uuid, text, uuid, timestamptz, text, text, text, bool) IS
	'StateReconciler step for one workspace: completes, times out, records failures, retries or claims; returns the process action';


-- ------------------------------------------------------------ as 90_privileges.sql ends
REVOKE ALL ON ALL TABLES IN SCHEMA wsctl FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA wsctl FROM PUBLIC;

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
