#!/usr/bin/env bash
# 18_events.t: the outbox and the EventListener against a real redis-server
# (issue 10, outbox part). Every change of a workspace is a row of
# wsctl.events, shipped once, in id order, to the Redis stream wsctl:events
# (entry id = event id) and published on workspace:{id}; events committed
# while Redis is down arrive when it is back; a restart of the EventListener
# loses and duplicates nothing; a forged NOTIFY never becomes an event.
# Needs WSCTL_REDIS_PORT and WSCTL_REDIS_DIR (test/redis.sh).
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
owner=00000000-0000-0000-0018-000000000001
rc() { redis-cli -h 127.0.0.1 -p "${WSCTL_REDIS_PORT:?}" "$@"; }
sub_pid=

finish() {
	[ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
	"$here/../redis.sh" resume "$WSCTL_REDIS_DIR" >/dev/null 2>&1 || true
}
trap finish EXIT

# stream_ids WS: the stream's entry ids (without -0) of workspace WS, in stream order.
stream_ids() {
	rc --raw XRANGE wsctl:events - + |
		awk -v ws="$1" '/^[0-9]+-0$/ { entry = $0; sub(/-0$/, "", entry) }
		                prev == "workspace_id" && $0 == ws { print entry }
		                { prev = $0 }' | paste -sd' '
}
# outbox_ids WS [MIN]: the outbox's ids of workspace WS above MIN, in id order.
outbox_ids() {
	q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM wsctl.events WHERE workspace_id = '$1' AND id > ${2:-0}"
}
# shipped WS: every event of WS has an id and the cursor is past them all.
shipped() {
	wait_for 20 "SELECT count(*) > 0 AND bool_and(e.id IS NOT NULL) AND max(e.id) <= (SELECT last_shipped FROM wsctl.event_cursor WHERE sink = 'redis')
	               FROM wsctl.events e WHERE e.workspace_id = '$1'"
}

check "redis answers" bash -c "rc() { redis-cli -h 127.0.0.1 -p $WSCTL_REDIS_PORT \"\$@\"; }; rc ping | grep -q PONG"
check "the EventListener leads" \
	wait_for 30 "SELECT leader FROM wsctl.workers WHERE component = 'event_listener'"

# 1. A lifecycle: every event once, in order, ids = outbox ids.
id=$(create_ws $owner events RUNNING)
rc SUBSCRIBE "workspace:$id" >"$WSCTL_TEST_TMP/sub-$id" 2>&1 &
sub_pid=$!
check "RUNNING" wait_state "$id" RUNNING 30
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
check "STANDBY" wait_state "$id" STANDBY 30
check "every event of the workspace got an id and was shipped" shipped "$id"
outbox=$(outbox_ids "$id")
is "the stream holds exactly the outbox's events, in order ($(wc -w <<<"$outbox") events)" "$(stream_ids "$id")" "$outbox"
is "ids follow the order the events were written in" \
	"$(q "SELECT bool_and(ok) FROM (SELECT id > lag(id, 1, 0::bigint) OVER (ORDER BY entry) AS ok FROM wsctl.events WHERE workspace_id = '$id') s")" t
first=${outbox%% *}
is "an entry carries the event's JSON with its id" \
	"$(rc --raw XRANGE wsctl:events "$first-0" "$first-0" | awk 'prev == "data" { print } { prev = $0 }' | jq -r '"\(.id) \(.workspace_id) \(.owner_user_id)"')" \
	"$first $id $owner"
check "the events were published on workspace:$id" \
	wait_cmd 10 bash -c "[ \$(grep -c '\"workspace_id\": \"$id\"' '$WSCTL_TEST_TMP/sub-$id') -ge 4 ]"
kill "$sub_pid" 2>/dev/null; sub_pid=

# 2. Redis down: nothing is lost.
before=$(q "SELECT last_shipped FROM wsctl.event_cursor WHERE sink = 'redis'")
check "redis stopped" "$here/../redis.sh" pause "$WSCTL_REDIS_DIR"
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "the workspace still converges (RUNNING) while Redis is down" wait_state "$id" RUNNING 30
check "the EventListener reports Redis unreachable" \
	wait_for 10 "SELECT last_error LIKE '%Redis at 127.0.0.1:$WSCTL_REDIS_PORT%' FROM wsctl.workers WHERE component = 'event_listener'"
is "the cursor did not move" "$(q "SELECT last_shipped FROM wsctl.event_cursor WHERE sink = 'redis'")" "$before"
pending=$(outbox_ids "$id" "$before")
check "events wait in the outbox ($(wc -w <<<"$pending"))" test -n "$pending"
check "redis back (empty: it keeps nothing on disk)" "$here/../redis.sh" resume "$WSCTL_REDIS_DIR"
check "the events committed during the outage are shipped" shipped "$id"
is "  all of them, once, in order" "$(stream_ids "$id")" "$(outbox_ids "$id" "$before")"

# 3. A restart of the EventListener: it resumes from its durable cursor.
after_outage=$(q "SELECT last_shipped FROM wsctl.event_cursor WHERE sink = 'redis'")
elp=$(component_pid event_listener)
is "the EventListener (pid $elp) is terminated" "$(q "SELECT pg_terminate_backend($elp)")" t
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
check "it comes back (new pid) and leads" \
	wait_for 30 "SELECT pid <> $elp AND leader FROM wsctl.workers WHERE component = 'event_listener'"
check "STANDBY" wait_state "$id" STANDBY 30
check "the events of the meantime are shipped" shipped "$id"
is "  nothing lost, nothing twice" "$(stream_ids "$id")" "$(outbox_ids "$id" "$before")"

# 4. A forged NOTIFY is not an event.
forged="{\"workspace_id\": \"$id\", \"event\": \"state_changed\", \"status\": \"RUNNING\", \"forged\": true}"
q "NOTIFY workspace_changes, '$forged'" >/dev/null
q "SELECT wsctl.update_workspace('$id', memo => 'after the forgery')" >/dev/null
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "a real change after it is shipped" shipped "$id"
is "no forged event in the outbox" "$(q "SELECT count(*) FROM wsctl.events WHERE payload ? 'forged'")" 0
is "none in the stream" "$(rc --raw XRANGE wsctl:events - + | grep -c '"forged"')" 0
is "the stream still matches the outbox" "$(stream_ids "$id")" "$(outbox_ids "$id" "$before")"

check "RUNNING" wait_state "$id" RUNNING 30

# 5. Shipped again after a crash between XADD and the cursor: no duplicate.
shipped "$id" >/dev/null
entries=$(rc XLEN wsctl:events)
top=$(q "SELECT last_shipped FROM wsctl.event_cursor WHERE sink = 'redis'")
q "UPDATE wsctl.event_cursor SET last_shipped = last_shipped - 3 WHERE sink = 'redis'" >/dev/null
q "SELECT wsctl.update_workspace('$id', memo => 'nudge')" >/dev/null
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
check "with the cursor moved back 3 events, shipping resumes past them" \
	wait_for 20 "SELECT last_shipped > $top FROM wsctl.event_cursor WHERE sink = 'redis'"
check "STANDBY" wait_state "$id" STANDBY 30
check "  everything shipped" shipped "$id"
is "  the 3 events already in the stream were recognised, not added again" \
	"$(rc XLEN wsctl:events)" "$((entries + $(q "SELECT count(*) FROM wsctl.events WHERE id > $top")))"
is "  the stream still matches the outbox" "$(stream_ids "$id")" "$(outbox_ids "$id" "$before")"

# 6. A stream that holds someone else's later entries stops the shipping
# loudly instead of dropping events (a re-created extension, a shared Redis).
rc XADD wsctl:events 99999999-0 data foreign >/dev/null
stuck=$(q "SELECT last_shipped FROM wsctl.event_cursor WHERE sink = 'redis'")
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "an entry beyond our ids: the EventListener says why it stopped" \
	wait_for 20 "SELECT last_error LIKE '%another installation shares it, or wsctl was re-created%' FROM wsctl.workers WHERE component = 'event_listener'"
is "  and drops nothing: the cursor did not move" "$(q "SELECT last_shipped FROM wsctl.event_cursor WHERE sink = 'redis'")" "$stuck"
rc DEL wsctl:events >/dev/null
check "once the operator removed the stream, the waiting events are shipped" shipped "$id"
is "  all of them, in order" "$(stream_ids "$id")" "$(outbox_ids "$id" "$stuck")"

check "RUNNING" wait_state "$id" RUNNING 30
cleanup_owner $owner
done_testing
