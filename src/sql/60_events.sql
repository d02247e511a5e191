-- 60_events.sql: change events (DESIGN section 7).
--
-- An AFTER trigger writes each change into the outbox, wsctl.events, in the
-- same transaction as the change: the rows are the events. Writers know
-- nothing about events. The EventListener worker gives every committed row
-- its public id, in commit order, and ships the rows to Redis in id order.
-- The trigger also sends pg_notify('workspace_changes', json) for sessions
-- that LISTEN; any role can NOTIFY that channel, so it proves nothing and
-- never feeds the outbox.

-- The outbox. entry orders rows by insertion; id, the event's public id
-- (the SSE id), is assigned by the EventListener when it sees the row
-- committed, so ids follow commit order: a transaction that commits later
-- always gets higher ids, and a reader that resumes after id n misses
-- nothing (identity values taken at insert would not: a long transaction
-- could commit a lower one after a higher one was shipped).
CREATE TABLE wsctl.events (
	entry         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id            bigint UNIQUE,
	workspace_id  uuid NOT NULL,
	owner_user_id uuid NOT NULL,
	payload       jsonb NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wsctl.events IS
	'The outbox: one row per change event, written in the changing transaction; id (the SSE id) is assigned in commit order';
COMMENT ON COLUMN wsctl.events.id IS 'Public event id, assigned in commit order by the EventListener; NULL until then';
CREATE INDEX events_unsequenced ON wsctl.events (entry) WHERE id IS NULL;
CREATE INDEX events_workspace ON wsctl.events (workspace_id, entry);
CREATE INDEX events_created ON wsctl.events (created_at);

CREATE SEQUENCE wsctl.event_id_seq AS bigint;
COMMENT ON SEQUENCE wsctl.event_id_seq IS 'Public event ids, drawn by the EventListener in commit order';

-- How far the EventListener has shipped (durable, so a restart resumes).
CREATE TABLE wsctl.event_cursor (
	sink         text PRIMARY KEY,
	last_shipped bigint NOT NULL DEFAULT 0,
	shipped_at   timestamptz
);
COMMENT ON TABLE wsctl.event_cursor IS 'Last event id shipped to each sink (redis)';
INSERT INTO wsctl.event_cursor (sink) VALUES ('redis');

CREATE FUNCTION wsctl.change_event(w wsctl.workspaces, is_error bool)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
	SELECT jsonb_build_object(
		'workspace_id', w.id,
		'owner_user_id', w.owner_user_id,
		'event', CASE WHEN is_error THEN 'error' ELSE 'state_changed' END,
		'status', w.observed_status,
		'display', wsctl.display_status(w.observed_status, w.archive_key),
		'operation', w.operation,
		'desired_state', w.desired_state,
		-- Bounded so the payload stays far below NOTIFY's 8000-byte limit.
		'error_message', left(coalesce(w.error_message, w.error_info ->> 'message'), 1000),
		'error_count', w.error_count,
		'deleted', w.deleted_at IS NOT NULL,
		'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;
COMMENT ON FUNCTION wsctl.change_event(wsctl.workspaces, bool) IS
	'The JSON payload of a workspace_changes notification';

CREATE FUNCTION wsctl._notify_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	payload jsonb := wsctl.change_event(NEW,
		TG_OP = 'UPDATE' AND NEW.error_info IS NOT NULL
		AND NEW.error_info IS DISTINCT FROM OLD.error_info);
BEGIN
	INSERT INTO wsctl.events (workspace_id, owner_user_id, payload)
	VALUES (NEW.id, NEW.owner_user_id, payload);
	PERFORM wsctl._wake_event_listener();
	PERFORM pg_notify('workspace_changes', payload::text);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION wsctl._notify_change() IS
	'AFTER trigger: the change event into the outbox wsctl.events, a wake-up of the EventListener at commit, NOTIFY workspace_changes';

CREATE TRIGGER workspaces_notify_insert
	AFTER INSERT ON wsctl.workspaces
	FOR EACH ROW EXECUTE FUNCTION wsctl._notify_change();

CREATE TRIGGER workspaces_notify_change
	AFTER UPDATE ON wsctl.workspaces
	FOR EACH ROW
	WHEN (OLD.observed_status IS DISTINCT FROM NEW.observed_status
		  OR OLD.operation IS DISTINCT FROM NEW.operation
		  OR OLD.desired_state IS DISTINCT FROM NEW.desired_state
		  OR OLD.error_info IS DISTINCT FROM NEW.error_info
		  OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
	EXECUTE FUNCTION wsctl._notify_change();

-- EventListener steps --------------------------------------------------------

-- Gives the committed rows without an id their ids, in insertion order,
-- at most max_rows of them. Only the EventListener calls it, so the ids
-- it draws follow the order in which commits became visible to it.
CREATE FUNCTION wsctl._sequence_events(max_rows int)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN
		SELECT e.entry FROM wsctl.events AS e
		 WHERE e.id IS NULL ORDER BY e.entry LIMIT max_rows
		 FOR UPDATE SKIP LOCKED
	LOOP
		UPDATE wsctl.events AS e SET id = nextval('wsctl.event_id_seq') WHERE e.entry = r.entry;
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION wsctl._sequence_events(int) IS
	'EventListener: assigns public ids, in commit order, to committed events that have none';

CREATE FUNCTION wsctl._events_to_ship(max_rows int)
RETURNS TABLE (id bigint, workspace_id uuid, owner_user_id uuid, event text, payload text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT e.id, e.workspace_id, e.owner_user_id, e.payload ->> 'event',
		   (e.payload || jsonb_build_object('id', e.id))::text
	  FROM wsctl.events AS e
	 WHERE e.id > (SELECT c.last_shipped FROM wsctl.event_cursor AS c WHERE c.sink = 'redis')
	 ORDER BY e.id
	 LIMIT max_rows
$$;
COMMENT ON FUNCTION wsctl._events_to_ship(int) IS
	'EventListener: the next events to ship to Redis, in id order (the payload carries its id)';

CREATE FUNCTION wsctl._events_shipped(last_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE wsctl.event_cursor AS c
	   SET last_shipped = greatest(c.last_shipped, last_id), shipped_at = now()
	 WHERE c.sink = 'redis'
$$;
COMMENT ON FUNCTION wsctl._events_shipped(bigint) IS
	'EventListener: records that every event up to last_id reached Redis';

CREATE FUNCTION wsctl._prune_events()
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	WITH gone AS (
		DELETE FROM wsctl.events AS e
		 WHERE e.created_at < now() - current_setting('wsctl.events_retention')::interval
		   AND e.id <= (SELECT c.last_shipped FROM wsctl.event_cursor AS c WHERE c.sink = 'redis')
		RETURNING 1)
	SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION wsctl._prune_events() IS
	'EventListener: removes shipped events older than wsctl.events_retention';

-- The audit trail of one workspace, from the outbox (deleted workspaces
-- included: their history is what an audit asks for).
CREATE FUNCTION wsctl.workspace_history(workspace_id uuid, since timestamptz DEFAULT NULL,
										"limit" int DEFAULT 100)
RETURNS TABLE (id bigint, at timestamptz, event text, status wsctl.status,
			   operation wsctl.operation, desired_state wsctl.status, payload jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM wsctl._check_not_null('workspace_id', workspace_id IS NULL);
	PERFORM wsctl._check_range('limit', "limit", 1, 10000);
	IF NOT EXISTS (SELECT 1 FROM wsctl.workspaces AS x WHERE x.id = workspace_history.workspace_id) THEN
		RAISE EXCEPTION 'workspace % not found', workspace_id
			USING ERRCODE = 'WS404', DETAIL = 'No workspace has this id.';
	END IF;
	RETURN QUERY
		SELECT e.id, e.created_at, e.payload ->> 'event', (e.payload ->> 'status')::wsctl.status,
			   (e.payload ->> 'operation')::wsctl.operation,
			   (e.payload ->> 'desired_state')::wsctl.status, e.payload
		  FROM wsctl.events AS e
		 WHERE e.workspace_id = workspace_history.workspace_id
		   AND (since IS NULL OR e.created_at >= since)
		 ORDER BY e.entry
		 LIMIT "limit";
END
$$;
COMMENT ON FUNCTION wsctl.workspace_history(uuid, timestamptz, int) IS
	'The change events of one workspace (deleted ones included), oldest first: id (NULL until published), time, event, status, operation, desired_state, payload. WS404 unknown, WS422 bad limit';
