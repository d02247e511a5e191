#!/usr/bin/env bash
# run.sh: what `make example` runs. The example API server (server.py) and
# its live dashboard against a throwaway environment: the services of
# test/services.sh (Docker engine, Redis, S3 server, PostgreSQL preloading
# wsctl; database wsctl_example) under a temporary directory, the wsctl-sse
# relay, two LOGIN roles (one in wsctl_api for the server, one in
# wsctl_admin for recover), and server.py on 127.0.0.1. It prints the
# dashboard's URL and runs until Ctrl-C or SIGTERM, then stops everything
# it started and removes its directory. As root, like `make demo`.
#
# WSCTL_EXAMPLE_NO_BUILD=1 skips test/install-deps.sh and `make install`
# (the installed extension is used as it is).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
cd "$top"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '   %s\n' "$*"; }

# free_port FIRST: the first TCP port from FIRST that nothing listens on.
free_port() {
	local p=$1
	while ss -Htln | awk -v p="$p" '{ n = split($4, a, ":"); if (a[n] == p) f = 1 } END { exit !f }'; do
		p=$((p + 1))
	done
	echo "$p"
}

# wait_http URL: true once something answers at URL (10 s at most).
wait_http() {
	local _
	for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
	return 1
}

if [ "${WSCTL_EXAMPLE_NO_BUILD:-0}" != 1 ]; then
	say "Installing what is missing and building wsctl"
	test/install-deps.sh
	make -s && make -s install >/dev/null
fi

T=$(mktemp -d /tmp/wsctl-example.XXXXXX)
chmod 755 "$T"
pids=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	local p
	trap '' INT TERM	# a second Ctrl-C must not cut the cleanup short
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	say "Stopping the services"
	test/services.sh stop "$T" >/dev/null 2>&1 || true
	rm -rf "$T"
	step "done: nothing left running, $T removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting a private Docker engine, Redis, an S3 server (Ceph RGW) and PostgreSQL"
WSCTL_IT_DB=wsctl_example test/services.sh start "$T" 2>&1 | sed 's/^/   /'
# shellcheck source=/dev/null
. "$T/env.sh"
export PGDATABASE=wsctl_example PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION wsctl"
# The server's roles: least privilege, never a superuser (trust on the
# private cluster's socket; a real one has a password or a certificate).
q "CREATE ROLE wsctl_example_api LOGIN IN ROLE wsctl_api"
q "CREATE ROLE wsctl_example_admin LOGIN IN ROLE wsctl_admin"
step "database wsctl_example; roles wsctl_example_api (wsctl_api) and wsctl_example_admin (wsctl_admin)"

# The relay, with a fresh key shared with PostgreSQL (wsctl.sse_secret).
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077; printf '%s\n' "$secret" >"$T/sse-secret")
q "ALTER SYSTEM SET wsctl.sse_secret = '$secret'" && q "SELECT pg_reload_conf()" >/dev/null
until [ "$(q "SELECT current_setting('wsctl.sse_secret') = '$secret'")" = t ]; do sleep 0.1; done
relay_port=$(free_port 18390)
relay=http://127.0.0.1:$relay_port
"$(pg_config --bindir)/wsctl-sse" --listen "127.0.0.1:$relay_port" --redis "$WSCTL_REDIS_URL" \
	--secret-file "$T/sse-secret" 2>"$T/relay.log" &
pids+=($!)
wait_http "$relay/" || { echo "the relay did not start: $(cat "$T/relay.log")" >&2; exit 1; }
step "wsctl-sse relay on $relay"

port=$(free_port "${WSCTL_EXAMPLE_PORT:-8080}")
dsn="host=$PGHOST port=$PGPORT dbname=wsctl_example"
WSCTL_EXAMPLE_DSN="$dsn user=wsctl_example_api" WSCTL_EXAMPLE_ADMIN_DSN="$dsn user=wsctl_example_admin" \
	WSCTL_EXAMPLE_RELAY="$relay" WSCTL_EXAMPLE_PORT="$port" WSCTL_EXAMPLE_IMAGE="$WSCTL_TEST_IMAGE" \
	/usr/bin/python3 "$here/server.py" >"$T/server.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$port/" || { echo "server.py did not start: $(cat "$T/server.log")" >&2; exit 1; }

say "The example API server runs"
step "dashboard:  http://127.0.0.1:$port/   (another user: http://127.0.0.1:$port/?user=<uuid>)"
step "REST:       curl -s http://127.0.0.1:$port/api/workspaces"
step "            curl -s -X POST -H 'Content-Type: application/json' -d '{\"name\": \"mine\"}' http://127.0.0.1:$port/api/workspaces"
step "image:      $WSCTL_TEST_IMAGE (the default of POST /api/workspaces)"
step "logs:       $T/server.log, $T/relay.log, $T/pg/postgres.log"
step "Ctrl-C stops everything."
# Until the server ends or a signal comes (the trap then cleans up).
wait "${pids[-1]}" || true
echo "server.py exited: $(tail -n 5 "$T/server.log")" >&2
exit 1
