#!/usr/bin/env bash
# 19_ttl.t: activity and the standby TTL (issue 10, TTL part) with real
# Redis and Docker. The TTL manager ticks every 300 ms and warns 2 s ahead.
#  - a workspace nobody connects to is stopped standby_ttl_seconds after it
#    started (never earlier), after one ttl_warning event;
#  - a connected workspace stays RUNNING past its TTL; the last disconnect
#    starts an idle timer of standby_ttl_seconds, after which it stops;
#  - the connection count never goes below 0;
#  - Redis down: activity calls answer WS503, the rest of the API works,
#    and nothing is stopped on a guess.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
owner=00000000-0000-0000-0019-000000000001
owner2=00000000-0000-0000-0019-000000000002
rc() { redis-cli -h 127.0.0.1 -p "${WSCTL_REDIS_PORT:?}" "$@"; }
finish() {
	"$here/../redis.sh" resume "$WSCTL_REDIS_DIR" >/dev/null 2>&1 || true
	reset_config wsctl.ttl_interval wsctl.ttl_warning
}
trap finish EXIT
set_config wsctl.ttl_interval 300ms && set_config wsctl.ttl_warning 2s
check "TTL manager: 300 ms ticks, warnings 2 s ahead" test $? = 0
check "the TTL manager leads" wait_for 30 "SELECT leader FROM wsctl.workers WHERE component = 'ttl_manager'"

create() {	# OWNER NAME TTL: a RUNNING workspace with that standby TTL
	q "SELECT id FROM wsctl.create_workspace('$1', '$2', '$WSCTL_TEST_IMAGE', 'RUNNING', standby_ttl_seconds => $3)"
}
# stopped_after ID SINCE: seconds from SINCE to the TTL stop (its desired STANDBY event).
stopped_after() {
	q "SELECT round(extract(epoch FROM min(e.created_at) - '$2'::timestamptz)::numeric, 1)
	     FROM wsctl.events e WHERE e.workspace_id = '$1' AND e.payload ->> 'desired_state' = 'STANDBY'"
}

# 1. Nobody connects: stopped after the grace, warned first.
a=$(create $owner ttl-idle 4)
check "a RUNNING" wait_state "$a" RUNNING 30
started=$(q "SELECT last_access_at FROM wsctl.workspaces WHERE id = '$a'")
check "  its start set last_access_at" test -n "$started"
check "a is stopped by the TTL (desired STANDBY) and converges" wait_state "$a" STANDBY 30
after=$(stopped_after "$a" "$started")
check "  not before its 4 s standby TTL (stopped after ${after}s)" test "$(echo "$after >= 4" | bc)" = 1
is "  one ttl_warning event came first" \
	"$(q "SELECT count(*) || ' ' || bool_and(w.created_at < s.created_at) FROM wsctl.events w,
	        (SELECT min(created_at) AS created_at FROM wsctl.events WHERE workspace_id = '$a' AND payload ->> 'desired_state' = 'STANDBY') s
	      WHERE w.workspace_id = '$a' AND w.payload ->> 'event' = 'ttl_warning'")" "1 true"
is "  the warning says what and when" \
	"$(q "SELECT payload ->> 'action' || ' ' || ((payload ->> 'in_seconds')::int BETWEEN 0 AND 2) FROM wsctl.events WHERE workspace_id = '$a' AND payload ->> 'event' = 'ttl_warning'")" "STANDBY true"

# 2. A connected workspace stays RUNNING; the last disconnect starts the timer.
b=$(create $owner ttl-used 3)
check "b RUNNING" wait_state "$b" RUNNING 30
is "activity_connect: 1 connection" "$(q "SELECT wsctl.activity_connect('$b')")" 1
is "activity_connect: 2 connections" "$(q "SELECT wsctl.activity_connect('$b')")" 2
is "  Redis ws_conn:$b = 2" "$(rc GET "ws_conn:$b")" 2
connected=$(q "SELECT last_access_at FROM wsctl.workspaces WHERE id = '$b'")
ticks=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'ttl_manager'")
check "  (the TTL manager ticks on, 2 s past b's TTL)" \
	wait_for 20 "SELECT ticks >= $ticks + 5 AND now() > '$connected'::timestamptz + interval '5 s' FROM wsctl.workers WHERE component = 'ttl_manager'"
is "  b is still RUNNING, desired RUNNING" "$(ws "$b" "observed_status || ' ' || desired_state")" "RUNNING RUNNING"
is "activity_disconnect: 1 left" "$(q "SELECT wsctl.activity_disconnect('$b')")" 1
is "activity_disconnect: 0 left" "$(q "SELECT wsctl.activity_disconnect('$b')")" 0
check "  the idle timer runs for b's standby TTL (3 s)" \
	bash -c "t=\$(redis-cli -h 127.0.0.1 -p $WSCTL_REDIS_PORT PTTL idle_timer:$b); [ \"\$t\" -gt 0 ] && [ \"\$t\" -le 3000 ]"
is "activity_disconnect once more: still 0, never negative" "$(q "SELECT wsctl.activity_disconnect('$b')")" 0
is "  Redis ws_conn:$b = 0" "$(rc GET "ws_conn:$b")" 0
disconnected=$(q "SELECT last_access_at FROM wsctl.workspaces WHERE id = '$b'")
check "b is stopped once the idle timer expired" wait_state "$b" STANDBY 30
after=$(stopped_after "$b" "$disconnected")
check "  not before 3 s after the last disconnect (${after}s)" test "$(echo "$after >= 3" | bc)" = 1

# 3. Redis down: WS503 for activity, the rest works, nothing stopped.
c=$(create $owner2 ttl-redis-down 2)
check "c RUNNING" wait_state "$c" RUNNING 30
check "redis stopped" "$here/../redis.sh" pause "$WSCTL_REDIS_DIR"
is "activity_connect answers WS503" "$(sqlstate "SELECT wsctl.activity_connect('$c')")" WS503
is "get_workspace still works" "$(sqlstate "SELECT wsctl.get_workspace('$c')")" OK
is "update_workspace still works" "$(sqlstate "SELECT wsctl.update_workspace('$c', memo => 'redis is down')")" OK
check "the TTL manager reports Redis unreachable" \
	wait_for 10 "SELECT last_error LIKE '%nothing stopped this tick%' FROM wsctl.workers WHERE component = 'ttl_manager'"
ticks=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'ttl_manager'")
check "  (past c's TTL, 5 more ticks)" \
	wait_for 20 "SELECT ticks >= $ticks + 5 AND now() > last_access_at + interval '3 s' FROM wsctl.workers, wsctl.workspaces WHERE component = 'ttl_manager' AND id = '$c'"
is "  c is not stopped on a guess" "$(ws "$c" desired_state)" RUNNING
check "redis back" "$here/../redis.sh" resume "$WSCTL_REDIS_DIR"
check "c, unused, is stopped now" wait_state "$c" STANDBY 30

finish
cleanup_owner $owner
cleanup_owner $owner2
done_testing
