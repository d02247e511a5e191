#!/usr/bin/env bash
# readme_install.t: README.md's "Installing into your own PostgreSQL 15" works
# as written. The shell block between <!-- install:begin --> and
# <!-- install:end --> is run as it is, by bash -e, after its variable lines
# at the top (NAME=value) have been given this test's values:
#   PG_CLUSTER       wsctltest, a stock Debian cluster this test creates with
#                    pg_createcluster 15 wsctltest -p <first free port from
#                    55432>, listen_addresses = '127.0.0.1' (its postgresql.conf;
#                    loopback only, the unix socket in /var/run/postgresql),
#                    started with
#                    pg_ctlcluster, dropped with pg_dropcluster --stop at the
#                    end, whatever happens (EXIT trap)
#   DOCKER_HOST_URL  the test's private dockerd (DOCKER_HOST of test/services.sh)
#   DOCKER_GROUP     wsctl-docker, the group of its socket
#   REDIS_URL        the test's redis-server, database 7 (the services' cluster
#                    ships its events to database 0: two outboxes must not
#                    share a stream); its stream is deleted before and after
#   the S3 variables keep the README's values: empty, no archiving (the
#   services' cluster owns the test bucket; another cluster's Archive GC
#   would take its archives for orphans)
# Then: the workers run (wsctl.workers: the five components with a pid, the
# four that work without S3 leaders), the server listens on 127.0.0.1 only,
# and a workspace created by the README's API role, over TCP with its
# password, reaches RUNNING on the real Docker engine, and is deleted.
# As root, with the environment of test/services.sh (run-tests.sh exports it).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=0
failed=0
report() {	# OK(0|1) DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
diag() { sed 's/^/# /'; }
finish() { echo "1..$n"; [ "$failed" -eq 0 ]; exit $?; }

CLUSTER=wsctltest
DB=wsctl_readme
API_ROLE=api_server
API_PASSWORD=readme-test-$$
image=${WSCTL_TEST_IMAGE:-wsctl-busybox:test}

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP run as root (pg_createcluster, make install, usermod)"
	exit 0
fi
for v in DOCKER_HOST WSCTL_REDIS_URL; do
	if [ -z "${!v:-}" ]; then
		echo "1..0 # SKIP no $v: run with the environment of test/services.sh"
		exit 0
	fi
done

# The cluster's own Redis database: its event ids start at 1 again, and a
# stream left by an earlier run would refuse them (XADD ids only grow), so
# the test's stream is deleted before and after.
redis_url=${WSCTL_REDIS_URL%/*}/7
redis-cli -u "$redis_url" DEL wsctl:events >/dev/null 2>&1

tmp=$(mktemp -d /tmp/wsctl-readme.XXXXXX)
chmod 755 "$tmp"
cleanup() {
	# The workspaces of the cluster go with it; their containers and volumes,
	# and the cluster's marker volume, are removed from the dockerd here.
	if [ -n "${marker:-}" ]; then
		docker -H "$DOCKER_HOST" volume rm -f "$marker" >/dev/null 2>&1
	fi
	if [ -n "${ws:-}" ]; then
		docker -H "$DOCKER_HOST" rm -f "ws-$ws" >/dev/null 2>&1
		docker -H "$DOCKER_HOST" volume rm -f "ws-$ws-home" >/dev/null 2>&1
	fi
	pg_dropcluster --stop 15 "$CLUSTER" >/dev/null 2>&1
	redis-cli -u "$redis_url" DEL wsctl:events >/dev/null 2>&1
	rm -rf "$tmp"
}

# A leftover of an interrupted run goes first.
if pg_lsclusters -h | awk '$1 == 15 { print $2 }' | grep -qx "$CLUSTER"; then
	pg_dropcluster --stop 15 "$CLUSTER"
fi
trap cleanup EXIT

port_in_use() {
	ss -Htln | awk -v p="$1" '{ k = split($4, a, ":"); if (a[k] == p) found = 1 } END { exit !found }'
}
port=55432
while port_in_use "$port" || [ -e "/var/run/postgresql/.s.PGSQL.$port" ]; do port=$((port + 1)); done

# --------------------------------------------------------------- the README's block
awk '/<!-- install:begin -->/ { on = 1; next } /<!-- install:end -->/ { on = 0 }
	on && /^```/ { fence = !fence; next } on && fence' "$top/README.md" >"$tmp/block.sh"
[ -s "$tmp/block.sh" ] && r=0 || r=1
report $r "README.md has an install block between <!-- install:begin --> and <!-- install:end --> ($(wc -l <"$tmp/block.sh") lines)"
[ $r -eq 0 ] || finish

# Our values for the variables the README defines at the top of its block.
declare -A values=(
	[PG_CLUSTER]=$CLUSTER
	[PG_PORT]=$port
	[WSCTL_DB]=$DB
	[DOCKER_HOST_URL]=$DOCKER_HOST
	[DOCKER_GROUP]=wsctl-docker
	[REDIS_URL]=$redis_url
	[API_ROLE]=$API_ROLE
	[API_PASSWORD]=$API_PASSWORD
)
missing=()
cp "$tmp/block.sh" "$tmp/run.sh"
for v in "${!values[@]}"; do
	if grep -qE "^$v=" "$tmp/block.sh"; then
		line=$(printf '%s=%q' "$v" "${values[$v]}")
		V=$v L=$line perl -i -pe 's/^\Q$ENV{V}\E=.*$/$ENV{L}/' "$tmp/run.sh"
	else
		missing+=("$v")
	fi
done
report ${#missing[@]} "the block defines its variables at the top: ${!values[*]}"
[ ${#missing[@]} -eq 0 ] || { echo "not defined: ${missing[*]}" | diag; finish; }
# Only the variable lines changed: the rest is run as the README says.
changed=$(diff "$tmp/block.sh" "$tmp/run.sh" | grep -c '^>')
[ "$changed" -eq ${#values[@]} ] && r=0 || r=1
report $r "only the ${#values[@]} variable lines differ from the README's block"
diff "$tmp/block.sh" "$tmp/run.sh" | grep '^[<>]' | diag

# --------------------------------------------------------------- a stock Debian cluster
if pg_createcluster 15 "$CLUSTER" -p "$port" --start-conf=manual >"$tmp/create.log" 2>&1 &&
	echo "listen_addresses = '127.0.0.1'" >>"/etc/postgresql/15/$CLUSTER/postgresql.conf" &&
	pg_ctlcluster 15 "$CLUSTER" start >>"$tmp/create.log" 2>&1; then r=0; else r=1; fi
report $r "pg_createcluster 15 $CLUSTER -p $port (listen_addresses 127.0.0.1), pg_ctlcluster start"
[ $r -eq 0 ] || { diag <"$tmp/create.log"; finish; }

# --------------------------------------------------------------- run it
# In a root shell's environment: the services' PG* variables would point
# psql at the other cluster.
(cd "$top" && env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGOPTIONS \
	timeout 900 bash -e -x "$tmp/run.sh") >"$tmp/run.log" 2>&1
rc=$?
report $rc "the README's commands run without an error (bash -e; $(grep -c '^+ ' "$tmp/run.log") commands)"
if [ $rc -ne 0 ]; then
	tail -n 40 "$tmp/run.log" | diag
	tail -n 30 "/var/log/postgresql/postgresql-15-$CLUSTER.log" 2>/dev/null | diag
	finish
fi
sed -n '/SELECT component, pid/,$p' "$tmp/run.log" | grep -v '^+' | diag

sql() { runuser -u postgres -- psql -X -A -t -q -h /var/run/postgresql -p "$port" -d "$DB" -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
api() { PGPASSWORD=$API_PASSWORD psql -X -A -t -q -h 127.0.0.1 -p "$port" -U "$API_ROLE" -d "$DB" -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
wait_for() {	# SECONDS SQL: until SQL returns t
	local deadline=$((SECONDS + $1))
	while [ $SECONDS -lt "$deadline" ]; do
		[ "$(sql "$2")" = t ] && return 0
		sleep 0.5
	done
	return 1
}

is_loopback=$(sql "SELECT current_setting('listen_addresses') = '127.0.0.1'")
[ "$is_loopback" = t ] && ! ss -Htln | awk -v p="$port" '{ k = split($4, a, ":"); if (a[k] == p) print $4 }' | grep -vq '^127\.0\.0\.1:' && r=0 || r=1
report $r "the cluster listens on 127.0.0.1:$port only"

report "$( [ "$(sql "SELECT current_setting('wsctl.docker_host') = '$DOCKER_HOST' AND current_setting('wsctl.database') = '$DB'")" = t ] && echo 0 || echo 1)" \
	"the settings of conf.d/wsctl.conf are in force (wsctl.database, wsctl.docker_host)"

if wait_for 60 "SELECT count(*) = 5 FROM wsctl.workers WHERE workspace_id IS NULL AND pid IS NOT NULL AND component IN ('health_monitor', 'reconciler', 'event_listener', 'ttl_manager', 'archive_gc')" &&
	wait_for 60 "SELECT count(*) = 4 FROM wsctl.workers WHERE leader AND component IN ('health_monitor', 'reconciler', 'event_listener', 'ttl_manager')"; then r=0; else r=1; fi
report $r "wsctl.workers: the five components run (pid), the four that need no S3 lead"
sql "SELECT component, pid, leader, ticks, last_error FROM wsctl.workers" | diag

ws=$(api "SELECT id FROM wsctl.create_workspace('33333333-3333-4333-8333-333333333333', 'readme', '$image', 'RUNNING')")
[[ "$ws" =~ ^[0-9a-f-]{36}$ ]] && r=0 || r=1
report $r "the README's API role ($API_ROLE, password, TCP) creates a workspace"
[ $r -eq 0 ] || { echo "$ws" | diag; ws=''; finish; }
marker=$(sql "SELECT 'wsctl-cluster-' || system_identifier FROM pg_control_system()")

if wait_for 120 "SELECT observed_status = 'RUNNING' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$ws'"; then r=0; else r=1; fi
running=$(docker -H "$DOCKER_HOST" inspect -f '{{.State.Running}}' "ws-$ws" 2>/dev/null)
[ $r -eq 0 ] && [ "$running" = true ] && r=0 || r=1
report $r "the workspace reaches RUNNING, its container ws-$ws running on the Docker engine"
[ $r -eq 0 ] || { sql "SELECT observed_status, operation, error_info FROM wsctl.workspaces WHERE id = '$ws'" | diag
	tail -n 30 "/var/log/postgresql/postgresql-15-$CLUSTER.log" | diag; }

wait_for 30 "SELECT last_shipped > 0 FROM wsctl.event_cursor WHERE sink = 'redis'" &&
	[ "$(redis-cli -u "$redis_url" XLEN wsctl:events 2>/dev/null)" -gt 0 ] 2>/dev/null && r=0 || r=1
report $r "the EventListener ships the workspace's events to Redis ($redis_url, stream wsctl:events)"
[ $r -eq 0 ] || { sql "SELECT last_shipped, (SELECT count(*) FROM wsctl.events) AS events, (SELECT last_error FROM wsctl.workers WHERE component = 'event_listener') FROM wsctl.event_cursor" | diag
	echo "XLEN: $(redis-cli -u "$redis_url" XLEN wsctl:events 2>&1)" | diag; }

api "SELECT 1 FROM wsctl.delete_workspace('$ws')" >/dev/null
if wait_for 120 "SELECT observed_status = 'DELETED' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$ws'" &&
	! docker -H "$DOCKER_HOST" inspect "ws-$ws" >/dev/null 2>&1; then r=0; else r=1; fi
report $r "deleted through the API: DELETED, the container gone"

finish
