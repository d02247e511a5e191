-- 60_events.sql: change events (DESIGN section 7).
--
-- An AFTER trigger sends pg_notify('workspace_changes', json) on insert and
-- whenever a watched column changes. Writers know nothing about events; the
-- EventListener worker relays each notification to Redis.

CREATE FUNCTION wsctl.change_event(w wsctl.workspaces, is_error bool)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
	SELECT jsonb_build_object(
		'workspace_id', w.id,
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
BEGIN
	PERFORM pg_notify('workspace_changes',
		wsctl.change_event(NEW,
			TG_OP = 'UPDATE' AND NEW.error_info IS NOT NULL
			AND NEW.error_info IS DISTINCT FROM OLD.error_info)::text);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION wsctl._notify_change() IS
	'AFTER trigger: NOTIFY workspace_changes with change_event()';

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
