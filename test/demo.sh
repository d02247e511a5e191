#!/usr/bin/env bash
# demo.sh: what `make demo` runs. A throwaway environment (its own Docker
# engine, Redis, S3 server (Ceph RGW) and PostgreSQL under a temporary
# directory, test/services.sh, plus the wsctl-sse relay) and one workspace
# taken through its whole lifecycle with the SQL API:
#   create -> RUNNING -> STANDBY -> ARCHIVED (upload progress) ->
#   RESTORING (download progress) -> RUNNING -> DELETED
# Each transition is printed as it arrives from the relay's SSE stream, as
# a browser would see it. Files written into the home before the archive
# are checked after the restore. Everything it started is stopped and its
# directory removed, on success, on failure and on Ctrl-C.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '   %s\n' "$*"; }
fail() { printf '\n\033[1mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

say "Installing what is missing and building wsctl"
test/install-deps.sh
make -s && make -s install >/dev/null

T=$(mktemp -d /tmp/wsctl-demo.XXXXXX)
chmod 755 "$T"
pids=()
cleanup() {
	local p
	trap '' INT TERM	# a second Ctrl-C must not cut the cleanup short
	# the printer's tail first: the rest of its pipeline then ends by itself
	[ -s "$T/tail.pid" ] && kill "$(cat "$T/tail.pid")" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	say "Stopping the services"
	test/services.sh stop "$T" >/dev/null 2>&1 || true
	rm -rf "$T"
	step "done: nothing left running, $T removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting a private Docker engine (no bridge, no iptables), Redis, an S3 server (Ceph RGW) and PostgreSQL"
WSCTL_IT_DB=wsctl_demo test/services.sh start "$T" 2>&1 | sed 's/^/   /'
. "$T/env.sh"
export PGDATABASE=wsctl_demo PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION wsctl"
step "CREATE EXTENSION wsctl in database wsctl_demo; the workers run there"

# The relay, with a fresh key shared with PostgreSQL (wsctl.sse_secret).
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$secret" >"$T/sse-secret"
q "ALTER SYSTEM SET wsctl.sse_secret = '$secret'" && q "SELECT pg_reload_conf()" >/dev/null
port=18290
while ss -Htln | awk -v p="$port" '{ n = split($4, a, ":"); if (a[n] == p) f = 1 } END { exit !f }'; do
	port=$((port + 1))
done
"$(pg_config --bindir)/wsctl-sse" --listen "127.0.0.1:$port" --redis "$WSCTL_REDIS_URL" \
	--secret-file "$T/sse-secret" 2>"$T/relay.log" &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
step "wsctl-sse relay on http://127.0.0.1:$port"

owner=00000000-0000-0000-0000-00000000d3e0
until [ "$(q "SELECT current_setting('wsctl.sse_secret') = '$secret'")" = t ]; do sleep 0.1; done
token=$(q "SELECT wsctl.sse_token('$owner', interval '1 hour')")
curl -sN "http://127.0.0.1:$port/api/v1/events?access_token=$token" >"$T/stream" 2>/dev/null &
pids+=($!)
until grep -q ': connected' "$T/stream" 2>/dev/null; do sleep 0.1; done
step "an SSE client follows the owner's events (GET /api/v1/events with a token from wsctl.sse_token)"

# The printer: every event, as it arrives on the SSE stream.
t0=$(date +%s.%N)
{ tail -n +1 -f "$T/stream" & echo $! >"$T/tail.pid"; wait; } | sed -un 's/^data: //p' |
	jq --unbuffered -r --arg t0 "$t0" '
		"   \u001b[36m[sse]\u001b[0m " + (.event | . + " " * (13 - length))
		+ " display " + ((.display // "-") | . + " " * (9 - length))
		+ " operation " + ((.operation // "-") | . + " " * (12 - length))
		+ " desired " + (.desired_state // "-")
		+ (if .error_message then "  error: " + .error_message else "" end)' &
pids+=($!)

# until DISPLAY: waits until the SSE stream has said the workspace is DISPLAY
# with no operation in progress (the client's view, not the table's).
until_display() {
	local want=$1 deadline=$((SECONDS + 300))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(sed -n 's/^data: //p' "$T/stream" | jq -r --arg id "$id" \
			'select(.workspace_id == $id and .event == "state_changed") | .display + "/" + .operation' | tail -1)" = "$want/NONE" ] &&
			return 0
		sleep 0.1
	done
	fail "the workspace did not reach $want (see $T)"
}

# progress OPERATION: one line per half second while OPERATION moves bytes.
progress() {
	local op=$1 row seen=0 wait_until=$((SECONDS + 10))
	# (the reconciler claims the operation right after the request's commit)
	while [ "$(q "SELECT operation FROM wsctl.workspaces WHERE id = '$id'")" != "$op" ] && [ $SECONDS -lt $wait_until ]; do
		sleep 0.05
	done
	while [ "$(q "SELECT operation FROM wsctl.workspaces WHERE id = '$id'")" = "$op" ]; do
		row=$(q "SELECT round(bytes_done / 1e6, 1) || '|' || coalesce(round(bytes_total / 1e6, 1)::text, '') || '|' || coalesce(round(rate / 1e6, 1)::text, '0')
		           FROM wsctl.operation_progress WHERE workspace_id = '$id' AND operation = '$op'")
		if [ -n "$row" ]; then
			IFS='|' read -r done total rate <<<"$row"
			if [ -n "$total" ]; then
				printf '   %-9s %8s of %8s MB  %6s MB/s\n' "$op" "$done" "$total" "$rate"
			else
				printf '   %-9s %8s MB read   %6s MB/s\n' "$op" "$done" "$rate"
			fi
			seen=1
		fi
		sleep 0.5
	done
	[ $seen = 1 ] || step "($op was over before the first progress sample)"
}

say "create_workspace(owner, 'demo', '$WSCTL_TEST_IMAGE'): desired RUNNING"
id=$(q "SELECT id FROM wsctl.create_workspace(owner_user_id => '$owner', name => 'demo', image_ref => '$WSCTL_TEST_IMAGE')")
step "workspace $id"
until_display RUNNING
step "Docker: $(docker -H "$DOCKER_HOST" ps --filter "label=wsctl.workspace=$id" --format '{{.Names}} {{.Status}} network={{.Networks}}')"

say "Writing files into the home: notes, a tree of 200 files, a symlink, 100 MB of random data, text"
docker -H "$DOCKER_HOST" exec "ws-$id" sh -c 'cd /home/coder && echo "hello from $(date)" > notes.txt &&
	mkdir -p project/src && i=0 && while [ $i -lt 200 ]; do echo "line $i" > project/src/f$i.txt; i=$((i+1)); done &&
	ln -s project/src/f1.txt link && head -c 100000000 /dev/urandom > data.bin &&
	seq 1 3000000 > numbers.txt'
sums() { docker -H "$DOCKER_HOST" exec "ws-$id" sh -c 'cd /home/coder && find . -type f -exec sha256sum {} + | sort -k2 | sha256sum | cut -c1-16'; }
before=$(sums)
step "$(docker -H "$DOCKER_HOST" exec "ws-$id" sh -c 'cd /home/coder && find . | wc -l') entries, $(docker -H "$DOCKER_HOST" exec "ws-$id" du -sm /home/coder | cut -f1) MB; digest of every file: $before"

say "set_desired_state(id, 'STANDBY'): the container goes, the volume stays"
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
until_display STANDBY

say "set_desired_state(id, 'PENDING'): archived to S3 (zstd, multipart, SHA-256 meta), the volume removed"
q "SELECT wsctl.set_desired_state('$id', 'PENDING')" >/dev/null
progress ARCHIVING
until_display ARCHIVED
key=$(q "SELECT archive_key FROM wsctl.workspaces WHERE id = '$id'")
step "archive_key $key"
step "Docker volumes left for it: $(docker -H "$DOCKER_HOST" volume ls -q --filter "label=wsctl.workspace=$id" | wc -l)"

say "set_desired_state(id, 'RUNNING'): restored from S3 (verified before use), then started"
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
progress RESTORING
until_display RUNNING
after=$(sums)
if [ "$after" = "$before" ]; then
	step "digest of every file after the round trip: $after, the same"
else
	fail "the home changed: $before before, $after after"
fi
step "notes.txt: $(docker -H "$DOCKER_HOST" exec "ws-$id" cat /home/coder/notes.txt)"

say "The workers (wsctl.workers)"
psql -X -c "SELECT component, pid, leader, ticks, round(last_tick_ms::numeric, 1) AS last_tick_ms FROM wsctl.workers WHERE component NOT LIKE 'operation%'" | sed 's/^/   /'

say "delete_workspace(id): container, then volume; the row stays (soft delete)"
q "SELECT wsctl.delete_workspace('$id')" >/dev/null
until_display DELETED
step "Docker objects left for it: $(docker -H "$DOCKER_HOST" ps -aq --filter "label=wsctl.workspace=$id" | wc -l) containers, $(docker -H "$DOCKER_HOST" volume ls -q --filter "label=wsctl.workspace=$id" | wc -l) volumes"
step "the archive stays in the bucket until the Archive GC finds it orphaned for wsctl.gc_orphan_delay"
step "history: $(q "SELECT count(*) FROM wsctl.workspace_history('$id')") transitions in wsctl.workspace_history(id)"
sleep 0.3	# the printer's last lines
say "Demo finished in $(printf '%.0f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
