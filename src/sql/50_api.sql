-- 50_api.sql: the SQL API an API server calls (DESIGN section 4).
--
-- Every function is SECURITY DEFINER with a pinned search_path and carries
-- its component as a function-level SET, so the ownership trigger knows who
-- writes and the setting never leaks into the caller's transaction.
-- Refusals raise class WS SQLSTATEs that map one-to-one onto HTTP statuses
-- (docs/sql-api.md).

-- Every column of the table, observed_at as the last observation
-- (wsctl._observed_at: the HealthMonitor writes a row only when its
-- observation changes).
CREATE VIEW wsctl.workspace_info AS
	SELECT
		w.id, w.owner_user_id, w.name, w.description, w.memo, w.image_ref, w.instance_backend,
		w.storage_backend, w.home_store_key, w.home_ctx, w.observed_status, w.operation,
		w.op_started_at, w.op_id, w.desired_state, w.archive_key,
		wsctl._observed_at(w) AS observed_at, w.last_access_at, w.standby_ttl_seconds,
		w.archive_ttl_seconds, w.error_message, w.error_info, w.error_count, w.previous_status,
		w.created_at, w.updated_at, w.deleted_at,
		wsctl.display_status(wsctl.effective_status(w.observed_status, w.error_info),
							 w.archive_key) AS display_status
	  FROM wsctl.workspaces AS w
	 WHERE w.deleted_at IS NULL;
COMMENT ON VIEW wsctl.workspace_info IS
	'Live workspaces: every column of wsctl.workspaces plus display_status (the API''s result type); a terminal error shows as ERROR at once';

-- plpgsql rather than sql: a SQL function that is not inlined (its pinned
-- search_path prevents it) is planned again at every call from another
-- function, while plpgsql keeps its plans for the session; every API call
-- ends here (get_workspace: 140 us -> 34 us, docs/performance.md).
CREATE FUNCTION wsctl._info(w wsctl.workspaces)
RETURNS wsctl.workspace_info
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN ROW(
		w.id, w.owner_user_id, w.name, w.description, w.memo, w.image_ref, w.instance_backend,
		w.storage_backend, w.home_store_key, w.home_ctx, w.observed_status, w.operation,
		w.op_started_at, w.op_id, w.desired_state, w.archive_key,
		wsctl._observed_at(w), w.last_access_at, w.standby_ttl_seconds,
		w.archive_ttl_seconds, w.error_message, w.error_info, w.error_count, w.previous_status,
		w.created_at, w.updated_at, w.deleted_at,
		wsctl.display_status(wsctl.effective_status(w.observed_status, w.error_info),
							 w.archive_key))::wsctl.workspace_info;
END
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

-- The owner of a workspace, read without a lock (NULL when there is none):
-- which slot-lock stripe its claims take. owner_user_id never changes.
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

-- API -----------------------------------------------------------------------

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
