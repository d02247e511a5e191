#!/usr/bin/env bash
# 06_volume_removed.t: the HealthMonitor's invariant violations.
#
#  1. DataLost: the volume of a STANDBY workspace (desired STANDBY) is
#     removed behind wsctl's back. The HealthMonitor observes ERROR and sets
#     error_info (reason DataLost, terminal; it was NULL), an 'error' change
#     event is sent, and nothing recreates the volume (an empty volume would
#     hide the data loss).
#  2. A workspace created with desired PENDING (never provisioned) is not
#     data loss: it stays PENDING, error_info NULL, no volume, across several
#     HealthMonitor ticks.
#  3. ContainerWithoutVolume: a running container pins its volume, so wsctl
#     never leaves one behind itself; but a container named ws-{id} with
#     wsctl's labels and no volume can still appear (made by hand, restored
#     from a backup). It is made here with `docker create` for the PENDING
#     workspace of case 2: observed ERROR, reason ContainerWithoutVolume; the
#     reconciler leaves it alone; delete then removes it.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0000-0000000a0006

work=$(mktemp -d)
flag=$work/listening
listener=
stop_listener() { rm -f "$flag"; [ -n "$listener" ] && wait "$listener" 2>/dev/null; listener=; }
trap 'stop_listener; rm -rf "$work"' EXIT

container_absent() { ! container_exists "$1"; }
volume_absent() { ! volume_exists "$1"; }
mark() { q "SELECT coalesce(max(seq), 0) FROM public.it_history"; }
ticks() { q "SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'"; }
ticks_at_least() { [ "$(ticks)" -ge "$1" ]; }
# ei ID EXPR: an expression over the workspace's current error_info (alias e).
ei() { q "SELECT $2 FROM wsctl.workspaces w, LATERAL (SELECT w.error_info AS e) x WHERE w.id = '$1'"; }
# events ID: the workspace_changes payloads received for ID, one a line.
events() { sed -n 's/^Asynchronous notification "workspace_changes" with payload "\(.*\)" received from.*/\1/p' \
	"$work/notifications" | grep -F "\"workspace_id\": \"$1\""; }

# A session that LISTENs to workspace_changes (psql prints notifications
# after each command, so it runs a trivial command five times a second).
touch "$flag"
( echo "LISTEN workspace_changes;"; echo "SELECT 'listening';"
  while [ -e "$flag" ]; do echo "SELECT 1;"; sleep 0.2; done ) |
	psql -X -q -A -t > "$work/notifications" 2>&1 &
listener=$!
check "a session listens to workspace_changes" wait_cmd 10 grep -q listening "$work/notifications"

# 1. DataLost.
id=$(create_ws $owner volume-removed STANDBY)
check "data-lost: reaches STANDBY" wait_state "$id" STANDBY 30
check "data-lost: Docker: volume exists" volume_exists "$id"
is "data-lost: error_info NULL before" "$(ws "$id" "error_info IS NULL")" t
m=$(mark)
dk volume rm "ws-$id-home" >/dev/null
check "data-lost: Docker: the volume is gone" volume_absent "$id"
check "data-lost: the HealthMonitor observes ERROR" \
	wait_for 30 "SELECT observed_status = 'ERROR' FROM wsctl.workspaces WHERE id = '$id'"
is "data-lost: error_info.reason DataLost" "$(ei "$id" "e ->> 'reason'")" DataLost
is "data-lost: error_info.is_terminal true" "$(ei "$id" "e -> 'is_terminal'")" true
is "data-lost: error_info.context: no container, no volume, no archive" \
	"$(ei "$id" "e -> 'context' = '{\"container_exists\": false, \"volume_exists\": false, \"archive_key\": null}'")" t
is "data-lost: error_info.message says the volume is gone" "$(ei "$id" "e ->> 'message' LIKE '%volume%'")" t
is "data-lost: error_info.occurred_at is a timestamp" \
	"$(ei "$id" "(e ->> 'occurred_at')::timestamptz BETWEEN now() - interval '1 min' AND now()")" t
is "data-lost: set in the same HealthMonitor write as observed ERROR" \
	"$(q "SELECT observed || ' ' || error_reason FROM public.it_history
	      WHERE id = '$id' AND seq > $m AND error_reason IS NOT NULL ORDER BY seq LIMIT 1")" "ERROR DataLost"
is "data-lost: error_info had been NULL all along before" \
	"$(q "SELECT count(*) FROM public.it_history WHERE id = '$id' AND seq <= $m AND error_reason IS NOT NULL")" 0
is "data-lost: observed path STANDBY -> ERROR" "$(history "$id" observed)" "PENDING STANDBY ERROR"
is "data-lost: operation NONE, error_count 0" "$(ws "$id" "operation || ' ' || error_count")" "NONE 0"
diag "data-lost: error_message column: '$(ws "$id" "coalesce(error_message, '<NULL>')")'"
check "data-lost: an 'error' change event is sent for the workspace" \
	wait_cmd 10 bash -c "grep -F '\"workspace_id\": \"$id\"' '$work/notifications' | grep -qF '\"event\": \"error\"'"
ev=$(events "$id" | grep -F '"event": "error"' | head -1)
diag "data-lost: event: $ev"
is "data-lost: the error event has status ERROR and the message" \
	"$(q "SELECT (j ->> 'status') || ' ' || (j ->> 'error_message' LIKE '%volume%')
	      FROM (SELECT \$j\$${ev//\\\"/\"}\$j\$::jsonb AS j) s")" "ERROR true"
is "data-lost: get_workspace shows display_status ERROR" \
	"$(q "SELECT display_status FROM wsctl.get_workspace('$id')")" ERROR
is "data-lost: set_desired_state(RUNNING) answers WS409" \
	"$(sqlstate "SELECT wsctl.set_desired_state('$id', 'RUNNING')")" WS409

# Nothing recreates the volume: watch it stay absent for 5 s (>= 2 health ticks).
t0=$(ticks)
end=$((SECONDS + 5)); appeared=0
while [ $SECONDS -lt $end ]; do
	volume_exists "$id" && appeared=1
	sleep 0.2
done
is "data-lost: no volume reappears within 5 s" "$appeared" 0
t1=$(ticks)
check "data-lost: the HealthMonitor ticked meanwhile ($t0 -> $t1)" test "$t1" -ge $((t0 + 2))
is "data-lost: no operation was started (still ERROR, NONE, DataLost)" \
	"$(ws "$id" "observed_status || ' ' || operation || ' ' || (error_info ->> 'reason')")" "ERROR NONE DataLost"
is "data-lost: operations stayed NONE after PROVISIONING" "$(history "$id" operation)" "NONE PROVISIONING NONE"
check "data-lost: Docker: still no volume" volume_absent "$id"

# 2. A never-provisioned PENDING workspace is not data loss.
p=$(create_ws $owner never-provisioned PENDING)
t0=$(ticks)
end=$((SECONDS + 30)); bad=0; n=0
while [ $SECONDS -lt $end ] && [ "$(ticks)" -lt $((t0 + 3)) ]; do
	[ "$(ws "$p" "observed_status || ' ' || operation || ' ' || (error_info IS NULL)")" = "PENDING NONE true" ] || bad=$((bad + 1))
	volume_exists "$p" && bad=$((bad + 1))
	n=$((n + 1))
	sleep 0.2
done
t1=$(ticks)
check "pending: the HealthMonitor ticked >= 3 times ($t0 -> $t1)" test "$t1" -ge $((t0 + 3))
is "pending: PENDING, NONE, error_info NULL, no volume in all $n samples" "$bad" 0
is "pending: the HealthMonitor has observed it" "$(ws "$p" "observed_at IS NOT NULL")" t
is "pending: it was never anything but PENDING/NONE without error" \
	"$(q "SELECT count(*) FILTER (WHERE observed <> 'PENDING' OR operation <> 'NONE' OR error_reason IS NOT NULL)
	      FROM public.it_history WHERE id = '$p'")" 0
check "pending: Docker: no volume" volume_absent "$p"

# 3. ContainerWithoutVolume: a labelled container ws-{id} without the volume.
m=$(mark)
dk create --name "ws-$p" --label wsctl.managed=true --label "wsctl.workspace=$p" --network none \
	"$WSCTL_TEST_IMAGE" >/dev/null
check "no-volume: Docker: container ws-{id} exists, no volume" bash -c "docker -H '$DOCKER_HOST' inspect 'ws-$p' >/dev/null 2>&1 && ! docker -H '$DOCKER_HOST' volume inspect 'ws-$p-home' >/dev/null 2>&1"
check "no-volume: the HealthMonitor observes ERROR" \
	wait_for 30 "SELECT observed_status = 'ERROR' FROM wsctl.workspaces WHERE id = '$p'"
is "no-volume: error_info.reason ContainerWithoutVolume" "$(ei "$p" "e ->> 'reason'")" ContainerWithoutVolume
is "no-volume: error_info.is_terminal true" "$(ei "$p" "e -> 'is_terminal'")" true
is "no-volume: error_info.context: container, no volume" \
	"$(ei "$p" "(e #>> '{context,container_exists}') || ' ' || (e #>> '{context,volume_exists}')")" "true false"
is "no-volume: set in the same HealthMonitor write as observed ERROR" \
	"$(q "SELECT observed || ' ' || error_reason FROM public.it_history
	      WHERE id = '$p' AND seq > $m AND error_reason IS NOT NULL ORDER BY seq LIMIT 1")" "ERROR ContainerWithoutVolume"
check "no-volume: an 'error' change event is sent for the workspace" \
	wait_cmd 10 bash -c "grep -F '\"workspace_id\": \"$p\"' '$work/notifications' | grep -qF '\"event\": \"error\"'"
t0=$(ticks)
check "no-volume: two more HealthMonitor ticks" wait_cmd 20 ticks_at_least $((t0 + 2))
check "no-volume: ... and wsctl left Docker alone: container still there" container_exists "$p"
check "no-volume: ... no volume made" volume_absent "$p"
is "no-volume: ... no operation" "$(history "$p" operation)" NONE
is "no-volume: delete in ERROR succeeds" "$(sqlstate "SELECT wsctl.delete_workspace('$p')")" OK
check "no-volume: ends DELETED with operation NONE" \
	wait_for 30 "SELECT observed_status = 'DELETED' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$p'"
is "no-volume: operation DELETING ran" "$(history "$p" operation)" "NONE DELETING NONE"
check "no-volume: Docker: the container is gone" container_absent "$p"
check "no-volume: Docker: no volume" volume_absent "$p"

stop_listener
cleanup_owner $owner
is "data-lost: deleted in the end (observed DELETED)" "$(ws "$id" "observed_status || ' ' || operation")" "DELETED NONE"
done_testing
