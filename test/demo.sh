#!/usr/bin/env bash
# demo.sh: what `make demo` runs. A throwaway environment (its own Docker
# engine and PostgreSQL cluster under a temporary directory) and one
# workspace taken through its lifecycle with the SQL API: create, run,
# standby, run again (the home directory survives), delete. Prints each
# state transition as it happens and the change events that reached Redis
# (the outbox wsctl.events, shipped by the EventListener).
# Everything it started is stopped at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '   %s\n' "$*"; }

say "Installing what is missing and building wsctl"
test/install-deps.sh
make -s && make -s install >/dev/null

T=$(mktemp -d /tmp/wsctl-demo.XXXXXX)
chmod 755 "$T"
listener=
cleanup() {
	[ -n "$listener" ] && kill "$listener" 2>/dev/null || true
	say "Stopping the services"
	test/pg.sh stop "$T/pg" >/dev/null 2>&1 || true
	test/docker.sh stop "$T/docker" >/dev/null 2>&1 || true
	test/redis.sh stop "$T/redis" >/dev/null 2>&1 || true
	rm -rf "$T"
	step "done"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting a private Docker engine (no bridge, no iptables), Redis and PostgreSQL"
test/docker.sh start "$T/docker" | sed 's/^/   /'
test/redis.sh start "$T/redis" | sed 's/^/   /'
. "$T/redis/env.sh"
{
	echo "wsctl.redis_url = '$WSCTL_REDIS_URL'"
	echo "wsctl.database = 'wsctl_demo'"
	echo "wsctl.docker_host = 'unix://$T/docker/docker.sock'"
	echo "wsctl.health_interval = '2s'"
	echo "wsctl.reconcile_interval = '2s'"
} > "$T/demo.conf"
test/pg.sh start "$T/pg" "$T/demo.conf" | sed 's/^/   /'
. "$T/pg/env.sh"
. "$T/docker/env.sh"
export PGDATABASE=wsctl_demo PGOPTIONS="-c client_min_messages=warning"
createdb wsctl_demo
q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION wsctl"
step "CREATE EXTENSION wsctl in database wsctl_demo; the workers run there"

# A session that LISTENs and prints every notification it receives.
( echo "LISTEN workspace_changes;"; while sleep 0.2; do echo "SELECT;"; done ) |
	psql -X -q -A -t > "$T/events" 2>/dev/null &
listener=$!

# watch ID UNTIL_STATUS: prints each (observed, operation) change with the time.
watch() {
	local id=$1 want=$2 last= now t0=$SECONDS
	while :; do
		now=$(q "SELECT observed_status || ' / ' || operation || CASE WHEN error_message IS NULL THEN '' ELSE ' (' || error_message || ')' END FROM wsctl.workspaces WHERE id = '$id'")
		if [ "$now" != "$last" ]; then
			printf '   %5.1fs  observed / operation: %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$now"
			last=$now
		fi
		[ "$now" = "$want / NONE" ] && return 0
		[ $((SECONDS - t0)) -gt 120 ] && { echo "   gave up waiting for $want"; return 1; }
		sleep 0.05
	done
}

owner=00000000-0000-0000-0000-00000000d3e0
say "create_workspace(owner, 'demo', '$WSCTL_TEST_IMAGE'): desired RUNNING"
start=$(date +%s.%N)
id=$(q "SELECT id FROM wsctl.create_workspace(owner_user_id => '$owner', name => 'demo', image_ref => '$WSCTL_TEST_IMAGE')")
step "workspace $id"
watch "$id" RUNNING
step "Docker: $(docker -H "$DOCKER_HOST" ps --filter "label=wsctl.workspace=$id" --format '{{.Names}} {{.Status}} network={{.Networks}}')"
docker -H "$DOCKER_HOST" exec "ws-$id" sh -c 'echo "hello from $(date)" > /home/coder/notes.txt'
step "wrote /home/coder/notes.txt inside the container"

say "set_desired_state(id, 'STANDBY'): the container goes, the volume stays"
start=$(date +%s.%N)
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
watch "$id" STANDBY
step "Docker containers: $(docker -H "$DOCKER_HOST" ps -a -q --filter "label=wsctl.workspace=$id" | wc -l), volumes: $(docker -H "$DOCKER_HOST" volume ls -q --filter "label=wsctl.workspace=$id")"

say "set_desired_state(id, 'RUNNING'): back, with the same home directory"
start=$(date +%s.%N)
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
watch "$id" RUNNING
step "/home/coder/notes.txt: $(docker -H "$DOCKER_HOST" exec "ws-$id" cat /home/coder/notes.txt)"

say "Refusals are SQLSTATEs an API server maps to HTTP"
for sql in "SELECT wsctl.create_workspace('$owner', 'two', '$WSCTL_TEST_IMAGE')" \
	"SELECT wsctl.create_workspace('$owner', 'three', 'busybox')" \
	"SELECT wsctl.create_workspace('$owner', '', 'busybox')" \
	"SELECT wsctl.get_workspace('00000000-0000-0000-0000-000000000000')"; do
	out=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$sql" 2>&1 >/dev/null | head -1 || true)
	step "${sql:0:70}... -> ${out:-ok}"
done

say "The workers (wsctl.workers)"
psql -X -c "SELECT component, pid, leader, ticks, round(last_tick_ms::numeric, 1) AS last_tick_ms, docker_calls_last_tick FROM wsctl.workers" | sed 's/^/   /'

say "delete_workspace(id): container, then volume; the row stays (soft delete)"
start=$(date +%s.%N)
# The second workspace from the refusals above finishes starting first:
# operations are not interrupted, so a delete meanwhile would be WS409.
until [ "$(q "SELECT bool_and(operation = 'NONE') FROM wsctl.workspaces WHERE owner_user_id = '$owner'")" = t ]; do sleep 0.1; done
q "SELECT wsctl.delete_workspace(id) FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND deleted_at IS NULL" >/dev/null
watch "$id" DELETED
step "Docker objects left for it: $(docker -H "$DOCKER_HOST" ps -aq --filter "label=wsctl.workspace=$id" | wc -l) containers, $(docker -H "$DOCKER_HOST" volume ls -q --filter "label=wsctl.workspace=$id" | wc -l) volumes"
step "get_workspace now: $(psql -X -q -v VERBOSITY=verbose -c "SELECT wsctl.get_workspace('$id')" 2>&1 >/dev/null | head -1)"

sleep 0.5	# let the listener print the last notifications before it is stopped
kill "$listener" 2>/dev/null || true
listener=
# The EventListener ships the outbox to Redis within milliseconds of each commit.
for _ in $(seq 100); do
	[ "$(q "SELECT (SELECT last_shipped FROM wsctl.event_cursor) >= coalesce(max(id), 0) AND bool_and(id IS NOT NULL) FROM wsctl.events")" = t ] && break
	sleep 0.1
done
say "Change events in the Redis stream wsctl:events ($(redis-cli -h 127.0.0.1 -p "$WSCTL_REDIS_PORT" XLEN wsctl:events) in all; $(grep -c 'Asynchronous notification' "$T/events") NOTIFYs were sent too)"
redis-cli -h 127.0.0.1 -p "$WSCTL_REDIS_PORT" --raw XRANGE wsctl:events - + |
	awk 'prev == "data" { print } { prev = $0 }' |
	jq -r '"   id \(.id | tostring | (" " * (3 - length)) + .)  \(.event)  ws \(.workspace_id[0:8])...  status=\(.status) operation=\(.operation) desired=\(.desired_state) deleted=\(.deleted)"'
