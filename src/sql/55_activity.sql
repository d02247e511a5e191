-- 55_activity.sql: the proxy's activity calls (SPEC section 10).
--
-- The proxy calls activity_connect when a user opens a connection to a
-- workspace and activity_disconnect when it closes. The counters live in
-- Redis (ws_conn:{id}, idle_timer:{id}), as the TTL manager reads them;
-- last_access_at is updated in the table. Redis down is WS503 here and
-- nowhere else: every other function works without Redis.

CREATE FUNCTION wsctl._redis_activity(workspace_id uuid, connect bool, idle_seconds int)
RETURNS int
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'wsctl_redis_activity';
COMMENT ON FUNCTION wsctl._redis_activity(uuid, bool, int) IS
	'Redis side of the activity calls: INCR/DEL on connect, DECR (never below 0) and SETEX idle_timer at 0 on disconnect; WS503 when Redis is unreachable';

CREATE FUNCTION wsctl._activity(workspace_id uuid, connect bool)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w wsctl.workspaces := wsctl._live_workspace(workspace_id, false);
	n int;
BEGIN
	n := wsctl._redis_activity(w.id, connect, w.standby_ttl_seconds);
	UPDATE wsctl.workspaces AS x SET last_access_at = now() WHERE x.id = w.id;
	RETURN n;
END
$$;
COMMENT ON FUNCTION wsctl._activity(uuid, bool) IS 'Shared body of activity_connect and activity_disconnect';

CREATE FUNCTION wsctl.activity_connect(workspace_id uuid)
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$ SELECT wsctl._activity(workspace_id, true) $$;
COMMENT ON FUNCTION wsctl.activity_connect(uuid) IS
	'A user connected to the workspace: its connection count (Redis ws_conn) + 1, idle timer cancelled, last_access_at now. Returns the open connections. WS404 unknown or deleted, WS503 Redis unavailable';

CREATE FUNCTION wsctl.activity_disconnect(workspace_id uuid)
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET wsctl.component = 'api'
AS $$ SELECT wsctl._activity(workspace_id, false) $$;
COMMENT ON FUNCTION wsctl.activity_disconnect(uuid) IS
	'A user disconnected: connection count - 1 (never below 0); at 0 the idle timer starts for the workspace''s standby_ttl_seconds; last_access_at now. Returns the open connections. WS404, WS503';
