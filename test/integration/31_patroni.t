#!/usr/bin/env bash
# 31_patroni.t: the Patroni + etcd example of docs/operations.md, failed over
# (issue 12).
#
# The test runs the YAML of docs/operations.md ("Patroni and etcd: an
# example"), read from the doc itself, so that the doc is what is tested. It
# changes only what one machine shared with other tests needs (names, ports,
# paths, passwords) and what 29_replica.t changes too (the wsctl.* settings:
# intervals of 1 s, the test dockerd, Redis database 10, no S3); Patroni's
# ttl, loop_wait, retry_timeout, synchronous_mode, use_pg_rewind, use_slots,
# synchronous_commit and the rest stay as the doc has them. Everything is
# its own, in $WSCTL_TEST_TMP/patroni: one etcd (etcd-server; 127.0.0.1 on
# free ports from 23790, never 2379, where the package's service would
# listen), two Patroni nodes pg1 and pg2 (REST API and PostgreSQL 15 on
# 127.0.0.1, free ports), run as the postgres user. Their workers talk to
# the shared test dockerd and to the test Redis in its database 10 (the
# stream wsctl:events is per installation: 0 is the main test cluster's, 9
# is 29_replica.t's), and to no S3 (wsctl.s3_endpoint empty: their Archive
# GC stays idle and never lists the shared bucket). Their workspaces' ids
# are random uuids and their marker volume is named after their own system
# identifier, so the main cluster's HealthMonitor ignores them and theirs
# ignores the main cluster's.
#
#  1. Bootstrap: pg1 leads, pg2 is made by Patroni (pg_basebackup) and
#     becomes its synchronous standby; the wsctl.* settings reach both;
#     pg2's components are idle and wsctl.workers says "standby (in
#     recovery): idle until promoted"; a workspace is driven to RUNNING by
#     pg1's workers and is on pg2 as soon as it is committed (remote_apply).
#  2. A hard failover: five operations in flight on pg1 (held by
#     wsctl.debug_operation_delay after acting), then pg1's Patroni, its
#     postmaster and every child of it are killed with SIGKILL (by pid, as a
#     lost machine would). Patroni promotes pg2 within ttl + loop_wait plus
#     slack (the time is printed); its workers lead (printed); each
#     in-flight operation is found vanished and retried under the same
#     op_id; every workspace reaches its desired state; no container is
#     created or started twice (Docker's own events); every workspace
#     committed before the kill is there; the events are shipped once each.
#  3. pg1's Patroni is started again: it rewinds pg1 (pg_rewind, or a
#     reinit; the log says which) and it follows pg2 as a replica, becomes
#     its synchronous standby, and its wsctl workers stay idle and say so.
# Everything it starts is stopped in the EXIT trap by pid (Patroni with
# SIGTERM, which stops its PostgreSQL; then SIGKILL for what is left) and
# checked gone; its workspaces, their Docker objects, its marker volume and
# its Redis database are removed, and so is its directory.
. "$(dirname "$0")/lib.sh"

DOC=$(cd "$(dirname "$0")/../.." && pwd)/docs/operations.md
PY=/usr/bin/python3       # Debian's, with python3-yaml (a dependency of patroni)
REDIS_DB=10
dir=${WSCTL_TEST_TMP:?}/patroni
: "${WSCTL_REDIS_PORT:?}" "${DOCKER_HOST:?}"
DELAY_S=8                 # debug_operation_delay on pg1, the first leader
INTERVAL_S=1              # wsctl.health_interval = reconcile_interval = ttl_interval
PROMOTE_SLACK_S=20        # beyond ttl + loop_wait: the promotion itself, a loaded machine
TAKEOVER_SLACK_S=10       # after the promotion: worker start-up
owner=00000000-0000-0000-0031-000000000001

pw() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
SUPW=$(pw)
REPLPW=$(pw)
SSE_SECRET=$(pw)

as_pg() { (cd / && runuser -u postgres -- "$@"); }
now_epoch() { date +%s.%N; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
port_in_use() {
	ss -Htln | awk -v p="$1" '{ n = split($4, a, ":"); if (a[n] == p) found = 1 } END { exit !found }'
}
# free_port FROM [TAKEN...]: the first TCP port from FROM up that nothing
# listens on and that is not among TAKEN (chosen, not yet listening).
free_port() {
	local p=$1 t busy
	shift
	while :; do
		busy=0
		port_in_use "$p" && busy=1
		for t in "$@"; do [ "$t" = "$p" ] && busy=1; done
		[ $busy = 0 ] && break
		p=$((p + 1))
	done
	echo "$p"
}
pid_alive() { [ -n "$1" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
# pid_runs PID WORD: PID is alive and its command line has WORD (a pid
# read from a file is never signalled once it may have been reused).
pid_runs() { pid_alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -F -- "$2"; }
not() { ! "$@"; }

EPORT=$(free_port 23790)
EPEER=$(free_port 23800 "$EPORT")
R1=$(free_port 18108 "$EPORT" "$EPEER")
R2=$(free_port 18118 "$EPORT" "$EPEER" "$R1")
P1=$(free_port 54480 "$EPORT" "$EPEER" "$R1" "$R2")
P2=$(free_port 54490 "$EPORT" "$EPEER" "$R1" "$R2" "$P1")

# qn N SQL: one value (or |-separated rows) from the workers' database of pgN.
qn() {
	local port
	port=$([ "$1" = 1 ] && echo "$P1" || echo "$P2")
	PGPASSWORD=$SUPW psql -X -A -t -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "${QDB:-$DB}" -c "$2"
}
# wait_sql N SECONDS SQL: polls until SQL returns t on pgN.
wait_sql() {
	local deadline=$((SECONDS + $2))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(qn "$1" "$3" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}
rc10() { redis-cli -h 127.0.0.1 -p "$WSCTL_REDIS_PORT" -n $REDIS_DB "$@"; }
# api N PATH: the HTTP status of a GET on pgN's Patroni REST API.
api() {
	local port
	port=$([ "$1" = 1 ] && echo "$R1" || echo "$R2")
	curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port$2"
}
api_is() { [ "$(api "$1" "$2")" = 200 ]; }

# ------------------------------------------------------------ processes and clean-up
etcd_pid=''
declare -A wrapper=() # node -> the runuser that runs its Patroni (our child)
ids_file=$dir/workspace-ids
sysid=''
patroni_pid() { cat "$dir/pg$1.patroni.pid" 2>/dev/null; }
postmaster_pid() { head -1 "$dir/pg$1/postmaster.pid" 2>/dev/null; }
# node_pids N: pgN's Patroni, its postmaster and the postmaster's children,
# those alive and (for the files' pids) still theirs.
node_pids() {
	local pp pm
	pp=$(patroni_pid "$1")
	pm=$(postmaster_pid "$1")
	pid_runs "$pp" "pg$1.yml" && { echo "$pp"; ps -o pid= --ppid "$pp"; }
	pid_runs "$pm" "$dir/pg$1" && { echo "$pm"; ps -o pid= --ppid "$pm"; }
}
# wait_gone SECONDS PID...: polls until none of the pids is alive.
wait_gone() {
	local deadline=$((SECONDS + $1)) p alive
	shift
	while :; do
		alive=0
		for p in "$@"; do pid_alive "$p" && alive=1; done
		[ $alive = 0 ] && return 0
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

finish() {
	local rc=$? n pp pids=() left id
	# Patroni stops its PostgreSQL on SIGTERM (fast shutdown); both at once,
	# so neither takes over from the other meanwhile.
	for n in 1 2; do
		pp=$(patroni_pid $n)
		pid_runs "$pp" "pg$n.yml" && kill -TERM "$pp" 2>/dev/null
	done
	for n in 1 2; do
		pp=$(patroni_pid $n)
		pid_runs "$pp" "pg$n.yml" && pids+=("$pp")
	done
	[ ${#pids[@]} -gt 0 ] && wait_gone 60 "${pids[@]}"
	for n in 1 2; do
		left=$(node_pids $n | tr '\n' ' ')
		if [ -n "${left// /}" ]; then
			echo "# 31_patroni: pg$n still runs after SIGTERM to its Patroni: SIGKILL to $left"
			# shellcheck disable=SC2086
			kill -KILL $left 2>/dev/null
			# shellcheck disable=SC2086
			wait_gone 10 $left || echo "# 31_patroni: pg$n: $left still alive"
		fi
		[ -n "${wrapper[$n]:-}" ] && wait "${wrapper[$n]}" 2>/dev/null
	done
	if pid_runs "$etcd_pid" "$dir/etcd"; then
		kill -TERM "$etcd_pid" 2>/dev/null
		wait_gone 15 "$etcd_pid" || kill -KILL "$etcd_pid" 2>/dev/null
		wait "$etcd_pid" 2>/dev/null
	fi
	pid_alive "$etcd_pid" && echo "# 31_patroni: etcd $etcd_pid still runs"
	# Whatever the workspaces' deletion left (a failed run), and the marker.
	if [ -s "$ids_file" ]; then
		while read -r id; do
			dk rm -f "ws-$id" >/dev/null 2>&1
			dk volume rm -f "ws-$id-home" >/dev/null 2>&1
		done <"$ids_file"
	fi
	[ -n "$sysid" ] && dk volume rm -f "wsctl-cluster-$sysid" >/dev/null 2>&1
	rc10 FLUSHDB >/dev/null 2>&1
	# A failed run keeps the logs (Patroni's, PostgreSQL's, etcd's).
	if [ $rc = 0 ] && [ $tap_failed = 0 ]; then
		rm -rf "$dir"
	else
		rm -rf "$dir/pg1" "$dir/pg2" "$dir/etcd"
		echo "# 31_patroni: logs kept in $dir"
	fi
	return $rc
}
trap finish EXIT

rm -rf "$dir"
mkdir -p "$dir/log-pg1" "$dir/log-pg2"
chown -R postgres:postgres "$dir"
chmod 755 "$dir"
: >"$ids_file"
rc10 FLUSHDB >/dev/null

# bail NAME COMMAND...: a set-up step; without it nothing after makes sense.
bail() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; echo "Bail out! $d failed (logs in $dir)"; exit 1; fi
}

# ------------------------------------------------------------ the configuration, from the doc
# pgN.yml: the doc's YAML block, with each changed key required to be in it
# (a doc that changes shape fails here, not silently). Prints the doc's
# values the test relies on as shell assignments.
make_configs() {
	DIR=$dir EPORT=$EPORT R1=$R1 R2=$R2 P1=$P1 P2=$P2 SUPW=$SUPW REPLPW=$REPLPW \
	SSE_SECRET=$SSE_SECRET DOCKER_HOST=$DOCKER_HOST INTERVAL_S=$INTERVAL_S \
	REDIS_URL="redis://127.0.0.1:$WSCTL_REDIS_PORT/$REDIS_DB" "$PY" - "$DOC" <<'EOF'
import copy, os, re, sys, yaml
text = open(sys.argv[1]).read()
section = text.split('### Patroni and etcd: an example', 1)[1]
doc = yaml.safe_load(re.search(r'```yaml\n(.*?)```', section, re.S).group(1))
e = os.environ

def put(tree, path, value, new=False):
    *head, last = path.split('/')
    for k in head:
        tree = tree[k]
    if not new and last not in tree:
        sys.exit('docs/operations.md: the Patroni YAML has no ' + path)
    tree[last] = value

dcs = doc['bootstrap']['dcs']
params = dcs['postgresql']['parameters']
for n, rport, pport in ((1, e['R1'], e['P1']), (2, e['R2'], e['P2'])):
    c = copy.deepcopy(doc)
    put(c, 'name', 'pg%d' % n)
    put(c, 'restapi/listen', '127.0.0.1:%s' % rport)
    put(c, 'restapi/connect_address', '127.0.0.1:%s' % rport)
    put(c, 'etcd3/hosts', '127.0.0.1:%s' % e['EPORT'])
    put(c, 'postgresql/listen', '127.0.0.1:%s' % pport)
    put(c, 'postgresql/connect_address', '127.0.0.1:%s' % pport)
    put(c, 'postgresql/data_dir', '%s/pg%d' % (e['DIR'], n))
    put(c, 'postgresql/pgpass', '%s/pg%d.pgpass' % (e['DIR'], n))
    put(c, 'postgresql/authentication/superuser/password', e['SUPW'])
    put(c, 'postgresql/authentication/replication/password', e['REPLPW'])
    local = 'postgresql/parameters/'
    put(c, local + 'wsctl.sse_secret', e['SSE_SECRET'])
    put(c, local + 'unix_socket_directories', e['DIR'])
    # test only: each node's server log in a file of its own, out of the
    # data directory (pg_rewind and a reinit replace that); no fsync.
    for k, v in (('logging_collector', 'on'), ('log_directory', '%s/log-pg%d' % (e['DIR'], n)),
                 ('log_filename', 'postgresql.log'), ('log_min_messages', 'info'), ('fsync', 'off')):
        put(c, local + k, v, new=True)
    g = 'bootstrap/dcs/postgresql/parameters/'
    put(c, g + 'wsctl.docker_host', e['DOCKER_HOST'])
    put(c, g + 'wsctl.redis_url', e['REDIS_URL'])
    put(c, g + 'wsctl.reconcile_interval', '%ss' % e['INTERVAL_S'])
    put(c, g + 'wsctl.health_interval', '%ss' % e['INTERVAL_S'])
    put(c, g + 'wsctl.retry_delay', '1s')
    # as in 29_replica.t: no S3, and the TTL manager looks every interval
    for k, v in (('wsctl.s3_endpoint', ''), ('wsctl.ttl_interval', '%ss' % e['INTERVAL_S']),
                 ('wsctl.max_running_per_user', 10), ('wsctl.max_concurrent_operations', 10)):
        put(c, g + k, v, new=True)
    with open('%s/pg%d.yml' % (e['DIR'], n), 'w') as f:
        yaml.safe_dump(c, f, sort_keys=False)
print('DOC_TTL=%d DOC_LOOP_WAIT=%d DOC_RETRY_TIMEOUT=%d DB=%s DOC_SYNC=%s DOC_REWIND=%s DOC_COMMIT=%s' % (
    dcs['ttl'], dcs['loop_wait'], dcs['retry_timeout'], params['wsctl.database'],
    str(dcs['synchronous_mode']).lower(), str(dcs['postgresql']['use_pg_rewind']).lower(),
    params['synchronous_commit']))
EOF
}
doc_values=$(make_configs) && eval "$doc_values"
bail "pg1.yml and pg2.yml made from the YAML of docs/operations.md" test -s "$dir/pg2.yml"
chown postgres:postgres "$dir"/pg?.yml
diag "the doc's settings: $doc_values"
is "  the doc asks for synchronous_mode, use_pg_rewind and synchronous_commit = remote_apply" \
	"$DOC_SYNC $DOC_REWIND $DOC_COMMIT" "true true remote_apply"

# ------------------------------------------------------------ etcd
start_etcd() {
	etcd --name wsctl-31 --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$EPORT" --advertise-client-urls "http://127.0.0.1:$EPORT" \
		--listen-peer-urls "http://127.0.0.1:$EPEER" --initial-advertise-peer-urls "http://127.0.0.1:$EPEER" \
		--initial-cluster "wsctl-31=http://127.0.0.1:$EPEER" --initial-cluster-state new \
		>"$dir/etcd.log" 2>&1 &
	etcd_pid=$!
	wait_cmd 30 bash -c "curl -s -m 2 http://127.0.0.1:$EPORT/health | grep -q '\"health\":\"true\"'"
}
bail "etcd runs on 127.0.0.1:$EPORT (peer $EPEER)" start_etcd
diag "etcd pid $etcd_pid"

# ------------------------------------------------------------ Patroni
# start_patroni N: pgN's Patroni as postgres; its pid in pgN.patroni.pid.
start_patroni() {
	rm -f "$dir/pg$1.patroni.pid"
	(cd / && exec runuser -u postgres -- /bin/sh -c 'echo $$ >"$1"; exec /usr/bin/patroni "$2"' \
		sh "$dir/pg$1.patroni.pid" "$dir/pg$1.yml") >>"$dir/pg$1.patroni.log" 2>&1 &
	wrapper[$1]=$!
	wait_cmd 10 test -s "$dir/pg$1.patroni.pid"
}
bootstrap_start=$(date +%s%N)
bail "pg1's Patroni starts" start_patroni 1
bail "pg1 bootstraps (initdb) and leads: GET /primary is 200" wait_cmd 90 api_is 1 /primary
diag "pg1 led $(ms_since "$bootstrap_start") ms after its Patroni started (Patroni pid $(patroni_pid 1), postmaster $(postmaster_pid 1))"
QDB=postgres qn 1 "CREATE DATABASE $DB" >/dev/null
bail "the extension is created in $DB on the leader" qn 1 "CREATE EXTENSION wsctl"
sysid=$(qn 1 "SELECT system_identifier FROM pg_control_system()")
# Test-only history, in the replicated database: which server (its port)
# wrote each attempt and each change of a workspace's operation.
qn 1 "
CREATE TABLE public.ha_attempts (seq bigserial PRIMARY KEY, workspace_id uuid, op_id uuid,
	attempt int, operation text, outcome text, code text, port int);
CREATE FUNCTION public.ha_attempt_log() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO public.ha_attempts (workspace_id, op_id, attempt, operation, outcome, code, port)
	VALUES (NEW.workspace_id, NEW.op_id, NEW.attempt, NEW.operation, NEW.outcome, NEW.code,
			current_setting('port')::int);
	RETURN NULL;
END \$\$;
CREATE TRIGGER zz_ha_attempts AFTER INSERT OR UPDATE ON wsctl.operation_attempts
	FOR EACH ROW EXECUTE FUNCTION public.ha_attempt_log();
-- and each op_id a workspace gets (the claim), in the claim's transaction
CREATE TABLE public.ha_ops (seq bigserial PRIMARY KEY, workspace_id uuid, op_id uuid, port int);
CREATE FUNCTION public.ha_op_log() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO public.ha_ops (workspace_id, op_id, port) VALUES (NEW.id, NEW.op_id, current_setting('port')::int);
	RETURN NULL;
END \$\$;
CREATE TRIGGER zz_ha_ops_insert AFTER INSERT ON wsctl.workspaces
	FOR EACH ROW WHEN (NEW.op_id IS NOT NULL) EXECUTE FUNCTION public.ha_op_log();
CREATE TRIGGER zz_ha_ops AFTER UPDATE ON wsctl.workspaces
	FOR EACH ROW WHEN (NEW.op_id IS NOT NULL AND NEW.op_id IS DISTINCT FROM OLD.op_id)
	EXECUTE FUNCTION public.ha_op_log();" >/dev/null
leaders="SELECT count(*) = 4 FROM wsctl.workers WHERE leader AND pid IS NOT NULL
          AND component IN ('health_monitor', 'reconciler', 'event_listener', 'ttl_manager')"
check "pg1's workers lead" wait_sql 1 30 "$leaders"

replica_start=$(date +%s%N)
bail "pg2's Patroni starts" start_patroni 2
bail "pg2 is made from pg1 and runs as a replica: GET /replica is 200" wait_cmd 90 api_is 2 /replica
bail "pg2 streams from pg1" wait_sql 1 30 \
	"SELECT count(*) = 1 FROM pg_stat_replication WHERE application_name = 'pg2' AND state = 'streaming'"
bail "Patroni makes pg2 the synchronous standby (GET /sync 200, sync_state sync)" \
	wait_cmd $((DOC_LOOP_WAIT + 20)) api_is 2 /sync
check "  pg1 sees it so" wait_sql 1 10 "SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'pg2'"
diag "pg2 synchronous $(ms_since "$replica_start") ms after its Patroni started"
is "the doc's parameters reached both servers (wsctl.*, synchronous_commit)" \
	"$(qn 1 "SELECT current_setting('wsctl.database') || ' ' || current_setting('wsctl.docker_host') || ' ' || current_setting('wsctl.redis_url') || ' ' || current_setting('synchronous_commit') || ' ' || current_setting('shared_preload_libraries') || ' ' || (current_setting('wsctl.sse_secret') = '$SSE_SECRET')")|$(qn 2 "SELECT current_setting('wsctl.database') || ' ' || current_setting('wsctl.docker_host') || ' ' || current_setting('wsctl.redis_url') || ' ' || current_setting('synchronous_commit') || ' ' || current_setting('shared_preload_libraries') || ' ' || (current_setting('wsctl.sse_secret') = '$SSE_SECRET')")" \
	"$DB $DOCKER_HOST redis://127.0.0.1:$WSCTL_REDIS_PORT/$REDIS_DB remote_apply wsctl true|$DB $DOCKER_HOST redis://127.0.0.1:$WSCTL_REDIS_PORT/$REDIS_DB remote_apply wsctl true"
is "pg2 is in recovery, with pg1's system identifier" \
	"$(qn 2 "SELECT pg_is_in_recovery() || ' ' || system_identifier FROM pg_control_system()")" "true $sysid"

# ------------------------------------------------------------ 1. workers on the standby
idle_msg="standby (in recovery): idle until promoted @null"
idle_rows="SELECT count(*) || '/' || count(pid) || '/' || count(*) FILTER (WHERE leader) || ' ' ||
                  string_agg(DISTINCT coalesce(last_error, '<null>') || ' @' || coalesce(last_error_at::text, 'null'), ',')
             FROM wsctl.workers WHERE workspace_id IS NULL"
is "pg2: five component rows, no pid, none leading, each saying why" "$(qn 2 "$idle_rows")" "5/0/0 $idle_msg"
stat_wsctl="SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'wsctl%' OR application_name LIKE 'wsctl%'"
is "pg2: no wsctl process in pg_stat_activity" "$(qn 2 "$stat_wsctl")" 0

t_a=$(now_epoch)
a=$(qn 1 "SELECT id FROM wsctl.create_workspace('$owner', 'pat-a', '$WSCTL_TEST_IMAGE', 'RUNNING')")
echo "$a" >>"$ids_file"
is "a workspace created on pg1 is on pg2 as soon as it is committed (remote_apply)" \
	"$(qn 2 "SELECT desired_state FROM wsctl.workspaces WHERE id = '$a'")" RUNNING
check "pg1's workers take it to RUNNING" wait_sql 1 30 \
	"SELECT observed_status = 'RUNNING' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$a'"
pg1_log=$dir/log-pg1/postgresql.log
pg2_log=$dir/log-pg2/postgresql.log
is "pg2's log has no wsctl worker at all" "$(grep -c -e 'wsctl operation' -e 'started (database' "$pg2_log")" 0

# ------------------------------------------------------------ 2. a hard failover with operations in flight
for n in 1 2 3; do
	qn 1 "SELECT id FROM wsctl.create_workspace('$owner', 'pat-b$n', '$WSCTL_TEST_IMAGE', 'STANDBY')" >>"$ids_file"
done
mapfile -t bs < <(qn 1 "SELECT id FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND name LIKE 'pat-b%' ORDER BY name")
check "b1, b2, b3 reach STANDBY" wait_sql 1 30 \
	"SELECT count(*) = 3 FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND name LIKE 'pat-b%'
	   AND observed_status = 'STANDBY' AND operation = 'NONE'"
# On pg1 only: postgresql.auto.conf is not replicated, and pg2 was made before.
qn 1 "ALTER SYSTEM SET wsctl.debug_operation_delay = '${DELAY_S}s'" >/dev/null
qn 1 "SELECT pg_reload_conf()" >/dev/null
check "pg1: operation workers stay busy ${DELAY_S}s after acting" \
	wait_sql 1 10 "SELECT current_setting('wsctl.debug_operation_delay') = '${DELAY_S}s'"

c1=$(qn 1 "SELECT id FROM wsctl.create_workspace('$owner', 'pat-c1', '$WSCTL_TEST_IMAGE', 'RUNNING')")
c2=$(qn 1 "SELECT id FROM wsctl.create_workspace('$owner', 'pat-c2', '$WSCTL_TEST_IMAGE', 'STANDBY')")
printf '%s\n' "$c1" "$c2" >>"$ids_file"
for id in "${bs[@]}"; do qn 1 "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null; done
flight=("${bs[@]}" "$c1" "$c2")
in_flight=$(printf "'%s'," "${flight[@]}")
in_flight=${in_flight%,}
actuated() {
	local id
	[ "$(qn 1 "SELECT count(DISTINCT workspace_id) FROM wsctl.workers
	            WHERE workspace_id IN ($in_flight) AND component LIKE 'operation %(acting)' AND pid IS NOT NULL")" = 5 ] || return 1
	for id in "${bs[@]}"; do container_running "$id" || return 1; done
	for id in "$c1" "$c2"; do volume_exists "$id" || return 1; done
}
check "five operations in flight, actuated, their workers not reported yet" wait_cmd 20 actuated
is "  three STARTING, two PROVISIONING" \
	"$(qn 1 "SELECT string_agg(name || ':' || operation, ' ' ORDER BY name) FROM wsctl.workspaces WHERE id IN ($in_flight)")" \
	"pat-b1:STARTING pat-b2:STARTING pat-b3:STARTING pat-c1:PROVISIONING pat-c2:PROVISIONING"
# One more, committed just before the kill: it must survive the failover.
d=$(qn 1 "SELECT id FROM wsctl.create_workspace('$owner', 'pat-d', '$WSCTL_TEST_IMAGE', 'STANDBY')")
echo "$d" >>"$ids_file"
rows="SELECT string_agg(name || ':' || desired_state || ':' || operation || ':' || coalesce(op_id::text, '-'), ' ' ORDER BY name)
        FROM wsctl.workspaces WHERE owner_user_id = '$owner'"
before=$(qn 1 "$rows")
# What was committed, in forms that pg2's workers will not change: each
# workspace's desired state, each op_id claimed, each outbox row.
desired="SELECT string_agg(name || ':' || desired_state, ' ' ORDER BY name) FROM wsctl.workspaces WHERE owner_user_id = '$owner'"
desired_before=$(qn 1 "$desired")
op_ids_before=$(qn 1 "SELECT string_agg(op_id::text, ' ' ORDER BY op_id::text) FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND op_id IS NOT NULL")
entries_before=$(qn 1 "SELECT string_agg(entry::text, ',' ORDER BY entry) FROM wsctl.events")
ops_before=$(qn 1 "SELECT string_agg(id || ':' || op_id, ' ' ORDER BY id) FROM wsctl.workspaces WHERE id IN ($in_flight)")
docker_ids() {
	local id
	for id in "$a" "${bs[@]}"; do dk inspect -f '{{.Id}}' "ws-$id"; done
}
docker_before=$(docker_ids)
check "pg2 is still the synchronous standby" api_is 2 /sync
is "pg2 has every claim and op_id already (remote_apply)" "$(qn 2 "$rows")" "$before"

# The kill: pg1's Patroni, its postmaster and all the postmaster's children
# (backends, wsctl's workers) at once, as a lost machine would stop them.
victims=$(node_pids 1 | tr '\n' ' ')
old_pm=$(postmaster_pid 1)
old_patroni=$(patroni_pid 1)
diag "SIGKILL to pg1's Patroni $old_patroni, postmaster $old_pm and its children: $victims"
kill_start=$(date +%s%N)
# shellcheck disable=SC2086
kill -KILL $victims
# shellcheck disable=SC2086
check "pg1's Patroni, postmaster and every child of it are gone" wait_gone 10 $victims
wait "${wrapper[1]}" 2>/dev/null
is "  none of the five workers had reported (the delay outlasted the kill)" \
	"$(grep -c -e "workspace \($c1\|$c2\): PROVISIONING actuated" \
	           -e "workspace \(${bs[0]}\|${bs[1]}\|${bs[2]}\): STARTING actuated" "$pg1_log" | tr -d ' ')" 0

promote_limit=$((DOC_TTL + DOC_LOOP_WAIT + PROMOTE_SLACK_S))
if wait_sql 2 "$promote_limit" "SELECT NOT pg_is_in_recovery()"; then
	promoted_ms=$(ms_since "$kill_start")
	ok "Patroni promotes pg2 within ttl $DOC_TTL s + loop_wait $DOC_LOOP_WAIT s + ${PROMOTE_SLACK_S}s"
	diag "promotion: ${promoted_ms} ms from the kill to pg2 out of recovery"
else
	not_ok "Patroni promotes pg2 within ttl $DOC_TTL s + loop_wait $DOC_LOOP_WAIT s + ${PROMOTE_SLACK_S}s"
	tail -n 20 "$dir/pg2.patroni.log" | sed 's/^/# /'
	echo "Bail out! no promotion"
	exit 1
fi
promoted_at=$(date +%s%N)
if wait_sql 2 $((INTERVAL_S + TAKEOVER_SLACK_S)) "$leaders"; then
	ok "pg2's workers run and lead within ${INTERVAL_S}s + ${TAKEOVER_SLACK_S}s of the promotion"
	diag "takeover: $(ms_since "$promoted_at") ms from the promotion seen to the four components leading ($(ms_since "$kill_start") ms from the kill)"
else
	not_ok "pg2's workers run and lead within ${INTERVAL_S}s + ${TAKEOVER_SLACK_S}s of the promotion"
	qn 2 "SELECT component, pid, leader, last_error FROM wsctl.workers" | sed 's/^/# /'
fi
check "GET /primary on pg2 is 200" wait_cmd 20 api_is 2 /primary
check "Patroni's log: pg2 took the leader lock" grep -q "promoted self to leader" "$dir/pg2.patroni.log"
is "no component row says standby any more" "$(qn 2 "SELECT count(*) FROM wsctl.workers WHERE last_error LIKE 'standby%'")" 0
check "pg2's wsctl processes are in pg_stat_activity" test "$(qn 2 "$stat_wsctl")" -ge 4
# (pg2's workers are already at work: the rows themselves may have moved on.)
is "nothing committed before the kill is lost (synchronous mode): every workspace and its desired state" \
	"$(qn 2 "$desired")" "$desired_before"
is "  every op_id claimed on pg1 (logged by a trigger in the claim's transaction)" \
	"$(qn 2 "SELECT string_agg(DISTINCT op_id::text, ' ' ORDER BY op_id::text) FROM public.ha_ops
	         WHERE port = $P1 AND op_id = ANY (string_to_array('$op_ids_before', ' ')::uuid[])")" "$op_ids_before"
is "  every outbox row ($(tr ',' '\n' <<<"$entries_before" | wc -l | tr -d ' ') of them)" \
	"$(qn 2 "SELECT string_agg(entry::text, ',' ORDER BY entry) FROM wsctl.events WHERE entry IN ($entries_before)")" "$entries_before"

goal="SELECT count(*) = 7 FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND operation = 'NONE'
        AND error_info IS NULL AND observed_status::text = desired_state::text"
if wait_sql 2 60 "$goal"; then
	ok "every workspace reaches its desired state on the new leader"
	diag "converged $(ms_since "$kill_start") ms after the kill (pg2 has no debug delay)"
else
	not_ok "every workspace reaches its desired state on the new leader"
	qn 2 "SELECT name, desired_state, observed_status, operation, error_info FROM wsctl.workspaces WHERE owner_user_id = '$owner'" | sed 's/^/# /'
fi
is "  a, b1..b3, c1 RUNNING; c2, d STANDBY" \
	"$(qn 2 "SELECT string_agg(name || '=' || observed_status, ' ' ORDER BY name) FROM wsctl.workspaces WHERE owner_user_id = '$owner'")" \
	"pat-a=RUNNING pat-b1=RUNNING pat-b2=RUNNING pat-b3=RUNNING pat-c1=RUNNING pat-c2=STANDBY pat-d=STANDBY"

expected_attempts="1:launch@pg1 1:vanished@pg2 2:launch@pg2 2:succeeded@pg2"
for id in "${flight[@]}"; do
	op=$(sed -n "s/.*$id:\([^ ]*\).*/\1/p" <<<"$ops_before")
	is "$(qn 2 "SELECT name FROM wsctl.workspaces WHERE id = '$id'"): op_id $op vanished, retried under the same op_id" \
		"$(qn 2 "SELECT string_agg(attempt || ':' || coalesce(outcome, 'launch') || '@' ||
		               CASE port WHEN $P1 THEN 'pg1' WHEN $P2 THEN 'pg2' END, ' ' ORDER BY seq)
		          FROM public.ha_attempts WHERE workspace_id = '$id' AND op_id = '$op'")" "$expected_attempts"
done
is "the vanished attempts were WORKER_VANISHED" \
	"$(qn 2 "SELECT count(*) FROM public.ha_attempts WHERE workspace_id IN ($in_flight) AND outcome = 'vanished' AND code = 'WORKER_VANISHED'")" 5
is "no other attempt failed or vanished" \
	"$(qn 2 "SELECT count(*) FROM public.ha_attempts WHERE outcome IN ('failed', 'vanished') AND code IS DISTINCT FROM 'WORKER_VANISHED'")" 0

is "Docker: the containers are the ones pg1's workers made (same ids)" "$(docker_ids)" "$docker_before"
events=$(dk events --since "$t_a" --until "$(now_epoch)" --filter type=container --filter type=volume \
	--format '{{.Type}} {{.Action}} {{if .Actor.Attributes.name}}{{.Actor.Attributes.name}}{{else}}{{.Actor.ID}}{{end}}')
is "Docker: no container or volume of theirs was destroyed (nothing re-made)" \
	"$(grep -E "^(container|volume) destroy " <<<"$events" | grep -c -F -f <(sed 's/^/ ws-/' "$ids_file") | tr -d ' ')" 0
per_ws() { grep -c -x "container $1 ws-$2" <<<"$events" | tr -d ' '; }
for id in "$a" "${flight[@]}" "$d"; do
	name=$(qn 2 "SELECT name FROM wsctl.workspaces WHERE id = '$id'")
	case $name in pat-c2 | pat-d) n=0 ;; *) n=1 ;; esac
	is "$name: Docker created its container $n time(s), started it $n time(s), holds $n" \
		"$(per_ws create "$id") $(per_ws start "$id") $(dk ps -a -q --filter "label=wsctl.workspace=$id" | wc -l)" "$n $n $n"
done
check "pg2 ships every event (cursor at the outbox's last id)" wait_sql 2 30 \
	"SELECT count(*) FILTER (WHERE id IS NULL) = 0 AND max(id) = (SELECT last_shipped FROM wsctl.event_cursor)
	   FROM wsctl.events"
is "the stream holds each outbox event once, with its id" \
	"$(rc10 --raw XRANGE wsctl:events - + | grep -E '^[0-9]+-0$' | sed 's/-0$//' | sort -n | tr '\n' ' ')" \
	"$(qn 2 "SELECT string_agg(id::text, ' ' ORDER BY id) || ' ' FROM wsctl.events")"

# ------------------------------------------------------------ 3. the old leader comes back as a replica
log_lines=$(wc -l <"$pg1_log")
rejoin_start=$(date +%s%N)
bail "pg1's Patroni starts again" start_patroni 1
if wait_cmd 120 api_is 1 /replica; then
	ok "Patroni brings pg1 back as a replica of pg2 (GET /replica 200)"
	diag "rejoin: $(ms_since "$rejoin_start") ms from pg1's Patroni start to a running replica"
else
	not_ok "Patroni brings pg1 back as a replica of pg2 (GET /replica 200)"
	tail -n 30 "$dir/pg1.patroni.log" | sed 's/^/# /'
fi
if grep -q "running pg_rewind from pg2" "$dir/pg1.patroni.log"; then
	diag "pg1 came back by pg_rewind ($(grep -c 'pg_rewind' "$dir/pg1.patroni.log") log lines about it)"
elif grep -q "reinitializ" "$dir/pg1.patroni.log"; then
	diag "pg1 came back by a reinit (a new base backup)"
else
	diag "pg1 came back with neither pg_rewind nor a reinit in Patroni's log"
fi
# pg2's timeline: the first 8 hex digits of its current WAL file's name.
tl2=$(qn 2 "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
is "pg2 is on a new timeline (2)" "$tl2" 2
check "pg1 is in recovery, streaming from pg2 on its timeline" wait_sql 1 30 \
	"SELECT pg_is_in_recovery() AND status = 'streaming' AND received_tli = $tl2 FROM pg_stat_wal_receiver"
check "Patroni on pg2 makes pg1 its synchronous standby" \
	wait_cmd $((DOC_LOOP_WAIT + 30)) api_is 1 /sync
diag "pg1 synchronous $(ms_since "$rejoin_start") ms after its Patroni started again"
is "pg1: five component rows, no pid, none leading, idle until promoted" "$(qn 1 "$idle_rows")" "5/0/0 $idle_msg"
is "pg1: no wsctl process in pg_stat_activity" "$(qn 1 "$stat_wsctl")" 0
is "pg1 has every workspace as pg2 has it" "$(qn 1 "$rows")" "$(qn 2 "$rows")"
is "pg1's log since its return has no wsctl worker" \
	"$(tail -n +$((log_lines + 1)) "$pg1_log" | grep -c -e 'wsctl operation' -e 'started (database')" 0
diag "patronictl list:"
patronictl -c "$dir/pg2.yml" list 2>&1 | sed 's/^/#   /'

# ------------------------------------------------------------ clean-up through the new leader
deleted() {
	qn 2 "SELECT count(wsctl.delete_workspace(id)) FROM wsctl.workspaces
	      WHERE owner_user_id = '$owner' AND deleted_at IS NULL AND operation = 'NONE'" >/dev/null
	[ "$(qn 2 "SELECT count(*) = 0 FROM wsctl.workspaces WHERE owner_user_id = '$owner'
	             AND (observed_status <> 'DELETED' OR operation <> 'NONE')")" = t ]
}
check "the workspaces are deleted by pg2" wait_cmd 60 deleted
is "  and the deletions are on pg1 at once (synchronous again)" \
	"$(qn 1 "SELECT count(*) FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND observed_status <> 'DELETED'")" 0
is "no container or volume of theirs is left" \
	"$(while read -r id; do dk ps -aq --filter "label=wsctl.workspace=$id"; dk volume ls -q --filter "label=wsctl.workspace=$id"; done <"$ids_file" | wc -l)" 0
done_testing
