#!/usr/bin/env bash
# 20_sse.t: the wsctl-sse relay end to end (issue 10, relay part): real
# PostgreSQL, Docker and Redis, the relay installed by `make install`, and
# curl as the client. Tokens from wsctl.sse_token; live events with
# id = outbox id; another owner sees nothing; Last-Event-ID replays; a
# reset when history no longer reaches back; Redis and relay restarts lose
# nothing; heartbeats; 401/400/404; SIGTERM ends it within 3 s.
# Needs WSCTL_REDIS_PORT, WSCTL_REDIS_DIR and WSCTL_TEST_TMP.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
owner=00000000-0000-0000-0020-000000000001
other=00000000-0000-0000-0020-000000000002
relay_setup "$WSCTL_TEST_TMP/sse"
curls=()

finish() {
	local c
	for c in "${curls[@]}"; do kill "$c" 2>/dev/null; done
	stop_relay
	"$here/../redis.sh" resume "$WSCTL_REDIS_DIR" >/dev/null 2>&1 || true
	reset_config wsctl.sse_secret
}
trap finish EXIT
# stream NAME URL [CURL ARGS...]: a client reading URL into $dir/NAME.
stream() {
	local name=$1 url=$2; shift 2
	curl -sN -D "$dir/$name.headers" "$@" "$url" >"$dir/$name" 2>/dev/null &
	curls+=($!)
	wait_cmd 10 grep -q ': connected' "$dir/$name"
}
ids_of() { sed -n 's/^id: //p' "$dir/$1" | paste -sd' '; }
# events_of WS [MIN]: the outbox ids of WS above MIN, once shipped to Redis.
shipped_ids() {
	wait_for 20 "SELECT coalesce(bool_and(id IS NOT NULL), true) AND coalesce(max(id), 0) <= (SELECT last_shipped FROM wsctl.event_cursor) FROM wsctl.events WHERE workspace_id = '$1'" >/dev/null
	q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM wsctl.events WHERE workspace_id = '$1' AND id > ${2:-0}"
}

check "the relay is installed ($relay)" test -x "$relay"
check "--help documents every option" bash -c "'$relay' --help | grep -q -- --listen && '$relay' --help | grep -q -- --redis && '$relay' --help | grep -q -- --secret-file && '$relay' --help | grep -q -- --heartbeat"
check "wsctl.sse_secret = the relay's key" set_config wsctl.sse_secret "$secret"
check "the relay listens on 127.0.0.1:$port" start_relay

id=$(create_ws $owner sse STANDBY)
check "the workspace is STANDBY" wait_state "$id" STANDBY 30
tok=$(q "SELECT wsctl.sse_token('$owner')")
tok_other=$(q "SELECT wsctl.sse_token('$other')")
tok_all=$(q "SELECT wsctl.sse_token(NULL)")

# Refusals.
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
is "no token: 401" "$(code "$base/api/v1/workspaces/$id/events")" 401
sig=${tok##*.}; flip=${sig:0:10}; flip=${flip//[A-Za-z0-9_-]/A}
is "a forged token (signature changed): 401" "$(code "$base/api/v1/workspaces/$id/events?access_token=${tok%.*}.$flip${sig:10}")" 401
last=${sig: -1}; [ "$last" = A ] && other_last=B || other_last=A
is "the same signature spelled with other spare bits: 401" "$(code "$base/api/v1/workspaces/$id/events?access_token=${tok%?}$other_last")" 401
expired=$(q "SELECT s || '.' || wsctl._sse_sign(s) FROM (SELECT wsctl._base64url('{\"alg\":\"HS256\",\"typ\":\"JWT\"}') || '.' || wsctl._base64url('{\"sub\":\"$owner\",\"exp\":1000}') AS s) x")
is "an expired token: 401" "$(code "$base/api/v1/workspaces/$id/events?access_token=$expired")" 401
none=$(q "SELECT s || '.' FROM (SELECT wsctl._base64url('{\"alg\":\"none\"}') || '.' || wsctl._base64url('{\"sub\":\"*\",\"exp\":9999999999}') AS s) x")
is "alg none: 401" "$(code "$base/api/v1/events?access_token=$none")" 401
is "a malformed workspace id: 400" "$(code -H "Authorization: Bearer $tok" "$base/api/v1/workspaces/not-a-uuid/events")" 400
is "an unknown path: 404" "$(code -H "Authorization: Bearer $tok" "$base/api/v2/events")" 404
api_role=wsctl_sse_api_$$
q "CREATE ROLE $api_role LOGIN IN ROLE wsctl_api" >/dev/null
is "a token for every workspace, minted by a wsctl_api member: WS403" \
	"$(PGUSER=$api_role sqlstate "SELECT wsctl.sse_token(NULL)")" WS403
is "  one for an owner: fine" "$(PGUSER=$api_role sqlstate "SELECT wsctl.sse_token('$owner', '5 minutes')")" OK
is "  a ttl of 8 days: WS422" "$(PGUSER=$api_role sqlstate "SELECT wsctl.sse_token('$owner', '8 days')")" WS422
q "DROP ROLE $api_role" >/dev/null

# Live.
stream live "$base/api/v1/workspaces/$id/events" -H "Authorization: Bearer $tok"
check "  text/event-stream with CORS" bash -c "grep -qi '^content-type: text/event-stream' '$dir/live.headers' && grep -qi '^access-control-allow-origin: \*' '$dir/live.headers'"
stream spy "$base/api/v1/workspaces/$id/events?access_token=$tok_other"
stream all "$base/api/v1/events?access_token=$tok_all&last_event_id=0"
mark=$(q "SELECT coalesce(max(id), 0) FROM wsctl.events")
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "RUNNING" wait_state "$id" RUNNING 30
want=$(shipped_ids "$id" "$mark")
check "the owner's stream gets the new events live" wait_cmd 10 bash -c "[ \"\$(sed -n 's/^id: //p' '$dir/live' | paste -sd' ')\" = '$want' ]"
is "  exactly them, once, in order, with the outbox ids" "$(ids_of live)" "$want"
check "  as SSE events: event: and data: lines with the JSON" \
	bash -c "grep -q '^event: state_changed' '$dir/live' && grep -q '^data: {.*\"workspace_id\": \"$id\"' '$dir/live'"
check "  and heartbeats on the stream" grep -q '^: heartbeat' "$dir/live"
is "another owner's token sees none of it" "$(ids_of spy)" ""
# The stream holds what Redis kept (earlier tests restarted it empty): from
# its first entry on, the outbox and the replay must agree.
first=$(redis-cli -h 127.0.0.1 -p "$WSCTL_REDIS_PORT" --raw XRANGE wsctl:events - + COUNT 1 | head -1); first=${first%-0}
all_want=$(q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM wsctl.events WHERE id >= $first AND id <= (SELECT max(id) FROM wsctl.events WHERE workspace_id = '$id')")
check "a superuser's token from Last-Event-ID 0 replays every event Redis holds (from $first), then live" \
	wait_cmd 10 bash -c "[ \"\$(sed -n 's/^id: //p' '$dir/all' | paste -sd' ')\" = '$all_want' ]"
is "  after a reset event when the history starts after id 1" \
	"$(grep -c '^event: reset' "$dir/all")" "$([ "$first" -gt 1 ] && echo 1 || echo 0)"

# A forged NOTIFY never reaches a client.
q "NOTIFY workspace_changes, '{\"workspace_id\": \"$id\", \"forged\": true}'" >/dev/null
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
check "STANDBY" wait_state "$id" STANDBY 30
want=$(shipped_ids "$id" "$mark")
check "the next real events arrive" wait_cmd 10 bash -c "[ \"\$(sed -n 's/^id: //p' '$dir/live' | paste -sd' ')\" = '$want' ]"
is "  and nothing forged" "$(grep -c forged "$dir/live")" 0

# Redis restarted mid-stream: nothing lost for a connected client.
check "redis stopped" "$here/../redis.sh" pause "$WSCTL_REDIS_DIR"
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "RUNNING meanwhile" wait_state "$id" RUNNING 30
check "redis back" "$here/../redis.sh" resume "$WSCTL_REDIS_DIR"
want=$(shipped_ids "$id" "$mark")
check "the connected client gets the events of the outage" \
	wait_cmd 20 bash -c "[ \"\$(sed -n 's/^id: //p' '$dir/live' | paste -sd' ')\" = '$want' ]"

# The relay restarted: the client comes back with Last-Event-ID.
seen=$(ids_of live); last=${seen##* }
t0=$SECONDS
stop_relay
is "the relay stops on SIGTERM within 3 s" "$(( SECONDS - t0 <= 3 ))" 1
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
check "STANDBY while the relay is down" wait_state "$id" STANDBY 30
check "the relay is back" start_relay
stream again "$base/api/v1/workspaces/$id/events" -H "Authorization: Bearer $tok" -H "Last-Event-ID: $last"
want=$(shipped_ids "$id" "$last")
check "Last-Event-ID $last: the missed events, then live" \
	wait_cmd 10 bash -c "[ \"\$(sed -n 's/^id: //p' '$dir/again' | paste -sd' ')\" = '$want' ]"
is "  no reset (history reaches back)" "$(grep -c '^event: reset' "$dir/again")" 0

# History no longer reaching back: Redis restarted empty, so id 1 is gone.
stream old "$base/api/v1/workspaces/$id/events?last_event_id=1" -H "Authorization: Bearer $tok"
check "Last-Event-ID older than the stream: a reset event first" \
	wait_cmd 10 grep -q '^event: reset' "$dir/old"

# A stream ends when its token expires.
short=$(q "SELECT wsctl.sse_token('$owner', '2 seconds')")
stream short "$base/api/v1/workspaces/$id/events?access_token=$short"
check "a stream whose token expires gets token_expired and is closed" \
	wait_cmd 10 bash -c "grep -q '^event: token_expired' '$dir/short' && ! kill -0 ${curls[-1]} 2>/dev/null"

# A client that stops reading is cut off; the others get everything.
python3 - "$port" "$tok_all" >"$dir/slow.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(("GET /api/v1/events?access_token=%s HTTP/1.1\r\nHost: x\r\n\r\n" % sys.argv[2]).encode())
time.sleep(30)          # never reads: the relay must give up on it
s.setblocking(False)
try:
    while s.recv(65536):
        pass
    print("closed by the relay")
except BlockingIOError:
    print("still open")
PY
slow=$!
curls+=($slow)
stream fast "$base/api/v1/events?access_token=$tok_all"
fake=00000000-0000-0000-0020-0000000000ff
q "INSERT INTO wsctl.events (workspace_id, owner_user_id, payload)
   SELECT '$fake', '$owner', jsonb_build_object('event', 'state_changed', 'workspace_id', '$fake', 'n', n, 'filler', repeat('x', 20000))
     FROM generate_series(1, 600) n" >/dev/null
q "SELECT wsctl._wake_event_listener()" >/dev/null
check "600 events of 20 kB each reach the client that reads" \
	wait_cmd 60 bash -c "[ \$(grep -c '\"workspace_id\": \"$fake\"' '$dir/fast') -ge 600 ]"
check "the client that does not read was disconnected" \
	wait_cmd 30 grep -q "read nothing for .* disconnected" "$dir/relay.log"
diag "relay RSS after 12 MB to a stalled client: $(awk '/VmRSS/ { print $2, $3 }' /proc/"$(cat "$dir/relay.pid")"/status)"

finish
cleanup_owner $owner
done_testing
