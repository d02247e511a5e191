#!/usr/bin/env bash
# 26_ttl_lifecycle.t: a whole TTL-driven lifecycle, watched as a browser
# would: through the wsctl-sse relay (issue 10's archive TTL, on top of
# issue 9's ARCHIVING). A workspace that nobody uses goes
#   RUNNING -(standby TTL)-> STANDBY -(archive TTL)-> ARCHIVED
# with a ttl_warning before each step, every transition arriving on the
# client's event stream in order; then a start restores it (RUNNING again)
# and the client sees that too; then it is deleted. Every event of the
# workspace reaches the live client once, in order, with the outbox's ids,
# and a client that connects afterwards with Last-Event-ID 0 gets the same.
# Real PostgreSQL, Docker, Redis and Ceph RGW.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0026-000000000001
relay_setup "$WSCTL_TEST_TMP/ttl-sse"
client=''

finish() {
	[ -n "$client" ] && kill "$client" 2>/dev/null
	[ -n "${replay:-}" ] && kill "$replay" 2>/dev/null
	stop_relay
	reset_config wsctl.ttl_interval wsctl.ttl_warning wsctl.sse_secret
}
trap finish EXIT

set_config wsctl.ttl_interval 300ms && set_config wsctl.ttl_warning 2s
check "TTL manager: 300 ms ticks, warnings 2 s ahead" test $? = 0
check "wsctl.sse_secret = the relay's key" set_config wsctl.sse_secret "$secret"
check "the relay runs" start_relay

# The user's stream: every event of this owner, live.
tok=$(q "SELECT wsctl.sse_token('$owner', interval '10 minutes')")
curl -sN "$base/api/v1/events?access_token=$tok" >"$dir/stream" 2>/dev/null &
client=$!
check "the client is connected" wait_cmd 10 grep -q ': connected' "$dir/stream"

id=$(q "SELECT id FROM wsctl.create_workspace('$owner', 'ttl-life', '$WSCTL_TEST_IMAGE', 'RUNNING',
          standby_ttl_seconds => 3, archive_ttl_seconds => 4)")
check "RUNNING" wait_state "$id" RUNNING 30
dk exec "ws-$id" sh -c 'echo "still here" > /home/coder/note.txt' >/dev/null
check "nobody connects: stopped by the standby TTL" wait_state "$id" STANDBY 30
check "nobody starts it: archived by the archive TTL" wait_state "$id" PENDING 90
is "  displayed ARCHIVED" "$(q "SELECT display_status FROM wsctl.get_workspace('$id')")" ARCHIVED
key=$(ws "$id" archive_key)
check "  its archive is in the bucket" s3_exists "$key"
check "  and its volume is gone" bash -c "! docker -H '$DOCKER_HOST' volume inspect 'ws-$id-home' >/dev/null 2>&1"

# What the client saw: the sequence of (event, display, operation) for this
# workspace, consecutive repeats folded.
seen() {
	jq -r --arg id "$id" 'select(.workspace_id == $id)
		| if .event == "ttl_warning" then "warning:" + .action else .display + "/" + .operation end' \
		< <(sed -n 's/^data: //p' "$dir/stream") | uniq | paste -sd' '
}
check "the client received the archive's completion" \
	wait_cmd 20 bash -c "grep -q '\"display\": *\"ARCHIVED\"' '$dir/stream'"
path=$(seen)
diag "events seen: $path"
# The order that matters, whatever intermediate events lie between.
in_order() {
	local rest=" $path " step
	for step in "$@"; do
		case "$rest" in
			*" $step "*) rest=${rest#*" $step "}; rest=" $rest" ;;
			*) return 1 ;;
		esac
	done
}
check "  warning:STANDBY, then STOPPING, STANDBY" in_order warning:STANDBY STANDBY/STOPPING STANDBY/NONE
check "  then warning:PENDING, ARCHIVING, ARCHIVED" in_order STANDBY/NONE warning:PENDING STANDBY/ARCHIVING ARCHIVED/NONE
is "  ids strictly increase (the outbox order)" \
	"$(sed -n 's/^id: //p' "$dir/stream" | awk 'NR > 1 && $1 <= p { bad = 1 } { p = $1 } END { print bad ? "no" : "yes" }')" yes

# The user comes back: restore, and the client sees it happen.
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "a start restores the archive: RUNNING" wait_state "$id" RUNNING 60
is "  the home survived the round trip" "$(dk exec "ws-$id" cat /home/coder/note.txt)" "still here"
check "  the client saw RESTORING then RUNNING" \
	wait_cmd 20 bash -c "grep -q '\"operation\": *\"RESTORING\"' '$dir/stream' && grep -q '\"display\": *\"RUNNING\"' '$dir/stream'"
path=$(seen)
check "  in that order" in_order ARCHIVED/NONE ARCHIVED/RESTORING RUNNING/NONE

# Deleted: the last transition, then the whole history compared with the outbox.
q "SELECT wsctl.delete_workspace('$id')" >/dev/null
check "deleted: observed DELETED" \
	wait_for 60 "SELECT observed_status = 'DELETED' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$id'"
check "  every event of the workspace is shipped" \
	wait_for 20 "SELECT bool_and(id IS NOT NULL) AND max(id) <= (SELECT last_shipped FROM wsctl.event_cursor) FROM wsctl.events WHERE workspace_id = '$id'"
want=$(q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM wsctl.events WHERE workspace_id = '$id'")
diag "outbox ids: $want"
# ids_for FILE: the SSE ids of this workspace's events in a stream, in arrival order.
ids_for() { awk -v ws="$id" '/^id: / { i = $2 } /^data: / && index($0, ws) { print i }' "$1" | paste -sd' '; }
check "the live client received the deletion" \
	wait_cmd 20 bash -c "grep -q '\"display\": *\"DELETED\"' '$dir/stream'"
is "  it got every event of the workspace once, in order, with the outbox's ids" "$(ids_for "$dir/stream")" "$want"
curl -sN -H 'Last-Event-ID: 0' "$base/api/v1/workspaces/$id/events?access_token=$tok" >"$dir/replay" 2>/dev/null &
replay=$!
check "a client connecting afterwards with Last-Event-ID 0 gets the history up to the deletion" \
	wait_cmd 20 bash -c "grep -qx 'id: ${want##* }' '$dir/replay'"
is "  every event once, in order, with the outbox's ids" "$(ids_for "$dir/replay")" "$want"
# (Older events of other tests may be out of the stream's reach: then a
# reset comes first, saying so, and nothing of this workspace is lost.)
is "  a reset, if any, comes before them" \
	"$(awk '/^event: reset/ { if (other) bad = 1 } /^event: / && !/^event: reset/ { other = 1 } END { print bad ? "after" : "before" }' "$dir/replay")" before

cleanup_owner $owner >/dev/null
done_testing
