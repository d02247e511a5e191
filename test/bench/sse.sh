#!/usr/bin/env bash
# sse.sh: wsctl-sse figures (issue 10): latency from the writing
# transaction to the SSE client (p50/p99/max) with 1 and with 1,000
# clients at 100 events/s, a burst of 1,000 events to 1,000 clients, and
# the relay's peak RSS with a client that stopped reading. Prints a table.
# Targets: p99 < 50 ms; every event delivered; RSS < 200 MB.
# Environment as for test/integration (lib.sh), plus WSCTL_REDIS_PORT and
# WSCTL_TEST_TMP; the relay is the installed one. The clients are
# sse_clients.c (libevent), latency taken on every event of every client.
. "$(dirname "$0")/../integration/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
ulimit -n 8192
dir=$WSCTL_TEST_TMP/sse-bench
mkdir -p "$dir"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$secret" >"$dir/secret"
set_config wsctl.sse_secret "$secret" || exit 1
port=18190
# The clients: C and libevent, built here (the Python asyncio clients of
# sse_clients.py spent a core of their own at 1,000 clients).
gcc -O2 -Wall -Wextra -Werror -o "$dir/sse_clients" "$here/sse_clients.c" -levent || exit 1
"$(pg_config --bindir)/wsctl-sse" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$WSCTL_REDIS_PORT/0" \
	--secret-file "$dir/secret" 2>"$dir/relay.log" &
relay=$!
trap 'kill -TERM $relay 2>/dev/null; wait $relay 2>/dev/null; reset_config wsctl.sse_secret' EXIT
wait_cmd 10 curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "the relay did not start"; exit 1; }
owner=00000000-0000-0000-0000-0000000be5e0
fake=00000000-0000-0000-0000-0000000be5e1
url="http://127.0.0.1:$port/api/v1/workspaces/$fake/events?access_token=$(q "SELECT wsctl.sse_token('$owner')")"
peak=0
rss() { awk '/VmHWM/ { print $2 }' /proc/$relay/status; }

# events N PAUSE: N events of the fake workspace, one transaction each, PAUSE s apart.
events() {
	local i
	for ((i = 1; i <= $1; i++)); do
		echo "BEGIN; INSERT INTO wsctl.events (workspace_id, owner_user_id, payload) VALUES ('$fake', '$owner',
		      jsonb_build_object('event', 'bench', 'workspace_id', '$fake', 'n', $i,
		                         'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')));
		      SELECT wsctl._wake_event_listener(); COMMIT;"
		[ "$2" = 0 ] || echo "SELECT pg_sleep($2);"
	done | psql -X -q -o /dev/null
}
# burst N: N events in one transaction.
burst() {
	q "INSERT INTO wsctl.events (workspace_id, owner_user_id, payload)
	   SELECT '$fake', '$owner', jsonb_build_object('event', 'bench', 'workspace_id', '$fake', 'n', g,
	          'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
	     FROM generate_series(1, $1) g; SELECT wsctl._wake_event_listener();" >/dev/null
}
# run CLIENTS EVENTS GENERATOR...: clients connect, then the generator runs.
run() {
	local n=$1 expect=$2 out fd pid; shift 2
	coproc CLIENTS { "$dir/sse_clients" "$port" "${url#http://127.0.0.1:$port}" "$n" "$expect" 120; }
	# (a copy of the pipe: bash drops CLIENTS once the coproc has exited)
	exec {fd}<&"${CLIENTS[0]}"
	pid=$CLIENTS_PID
	read -r line <&"$fd"	# READY
	"$@"
	read -r out <&"$fd"
	exec {fd}<&-
	wait "$pid" 2>/dev/null
	echo "$out"
}

printf '%-34s %8s %9s %8s %8s %8s %10s\n' scenario clients complete p50_ms p99_ms max_ms rss_peak_kB
report() {
	local name=$1 json=$2
	printf '%-34s %8s %9s %8s %8s %8s %10s\n' "$name" \
		"$(jq -r .clients <<<"$json")" "$(jq -r .complete <<<"$json")" "$(jq -r .p50_ms <<<"$json")" \
		"$(jq -r .p99_ms <<<"$json")" "$(jq -r .max_ms <<<"$json")" "$(rss)"
}
report "1 client, 200 events at 100/s" "$(run 1 200 events 200 0.01)"
report "1,000 clients, 200 events at 100/s" "$(run 1000 200 events 200 0.01)"
report "1,000 clients, burst of 1,000" "$(run 1000 1000 burst 1000)"

# A client that stops reading, while 1,000 events of 20 kB go by.
python3 - "$port" "${url#*access_token=}" "$fake" <<'PY' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(("GET /api/v1/workspaces/%s/events?access_token=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (sys.argv[3], sys.argv[2])).encode())
time.sleep(20)
PY
stalled=$!
q "INSERT INTO wsctl.events (workspace_id, owner_user_id, payload)
   SELECT '$fake', '$owner', jsonb_build_object('event', 'bench', 'workspace_id', '$fake', 'filler', repeat('x', 20000),
          'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
     FROM generate_series(1, 1000); SELECT wsctl._wake_event_listener();" >/dev/null
if wait_cmd 30 grep -q "read nothing" "$dir/relay.log"; then verdict="cut off"; else verdict="NOT cut"; fi
printf '%-34s %8s %9s %8s %8s %8s %10s\n' "1 stalled client, 20 MB burst" 1 "$verdict" - - - "$(rss)"
kill "$stalled" 2>/dev/null
