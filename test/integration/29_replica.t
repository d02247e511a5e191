#!/usr/bin/env bash
# 29_replica.t: a streaming replica and a failover (issue 12).
#
# The test makes its own two clusters in $WSCTL_TEST_TMP/replica: a primary
# preloading wsctl (wal_level = replica, a replication slot, the workers'
# database wsctl_ha with synchronous_commit = remote_apply, the standby named
# in synchronous_standby_names) and a standby made from it with
# pg_basebackup -R, both on 127.0.0.1 and unix sockets only, as the postgres
# user. Their workers talk to the shared test dockerd and to the test Redis
# in its database 9 (the stream wsctl:events is per installation: sharing db
# 0 with the main test cluster would mix two outboxes' ids), and to no S3
# (wsctl.s3_endpoint empty: their Archive GC stays idle and never lists the
# shared bucket). Their workspaces' ids are random uuids and their marker
# volume is named after their own system identifier, so the main cluster's
# HealthMonitor ignores them and theirs ignores the main cluster's.
#
#  1. The standby: no component runs (pid NULL, no wsctl process in
#     pg_stat_activity), wsctl.workers says "standby (in recovery): idle
#     until promoted", and a workspace created on the primary is driven by
#     the primary's workers only (one container, created once; the
#     standby's log has no wsctl worker line).
#  2. A failover: operations in flight on the primary (their workers held
#     by wsctl.debug_operation_delay after acting), `pg_ctl stop -m
#     immediate`, `pg_ctl promote` of the standby. Its workers lead within
#     one interval plus slack; each in-flight operation is found vanished
#     and retried under the same op_id; every workspace reaches its desired
#     state; no container is created or started twice (Docker's own
#     events); every workspace committed before the stop is there; the
#     events are shipped once each.
# Everything it starts is stopped in the EXIT trap by data directory (and
# checked gone by pid); its workspaces, their Docker objects, its marker
# volume and its Redis database are removed.
. "$(dirname "$0")/lib.sh"

PGBIN=/usr/lib/postgresql/15/bin
DB=wsctl_ha
REDIS_DB=9
SLOT=wsctl_standby
dir=${WSCTL_TEST_TMP:?}/replica
pdata=$dir/primary
sdata=$dir/standby
: "${WSCTL_REDIS_PORT:?}" "${DOCKER_HOST:?}"
DELAY_S=8                 # debug_operation_delay on the old primary
INTERVAL_S=1              # wsctl.health_interval = wsctl.reconcile_interval
TAKEOVER_SLACK_S=10       # promotion's end-of-recovery checkpoint, worker start-up
owner=00000000-0000-0000-0029-000000000001

as_pg() { (cd / && runuser -u postgres -- "$@"); }
# qn PORT SQL: one value (or |-separated rows) from wsctl_ha on that server.
qn() { psql -X -A -t -q -v ON_ERROR_STOP=1 -h "$dir" -p "$1" -U postgres -d $DB -c "$2"; }
# wait_sql PORT SECONDS SQL: polls until SQL returns t on that server.
wait_sql() {
	local deadline=$((SECONDS + $2))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(qn "$1" "$3" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}
rc9() { redis-cli -h 127.0.0.1 -p "$WSCTL_REDIS_PORT" -n $REDIS_DB "$@"; }
now_epoch() { date +%s.%N; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

port_in_use() {
	ss -Htln | awk -v p="$1" '{ n = split($4, a, ":"); if (a[n] == p) found = 1 } END { exit !found }'
}
# free_port FROM: the first TCP port from FROM up that nothing listens on.
free_port() {
	local p=$1
	while port_in_use "$p"; do p=$((p + 1)); done
	echo "$p"
}

# write_conf DATADIR PORT: the settings of both servers (the standby gets a
# copy through pg_basebackup and is given its own port here).
write_conf() {
	cat >"$1/wsctl-ha.conf" <<EOF
# written by test/integration/29_replica.t
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '$dir'
shared_preload_libraries = 'wsctl'
wal_level = replica
max_wal_senders = 4
max_replication_slots = 4
hot_standby = on
fsync = off
max_connections = 50
max_worker_processes = 32
logging_collector = off
log_min_messages = info
wsctl.database = '$DB'
wsctl.docker_host = '$DOCKER_HOST'
wsctl.redis_url = 'redis://127.0.0.1:$WSCTL_REDIS_PORT/$REDIS_DB'
wsctl.s3_endpoint = ''
wsctl.health_interval = '${INTERVAL_S}s'
wsctl.reconcile_interval = '${INTERVAL_S}s'
# A component that started before CREATE EXTENSION looks again only after
# its interval (60 s for the TTL manager by default).
wsctl.ttl_interval = '${INTERVAL_S}s'
wsctl.retry_delay = '1s'
wsctl.max_retries = 3
wsctl.max_running_per_user = 10
wsctl.max_concurrent_operations = 10
EOF
	grep -q "^include 'wsctl-ha.conf'" "$1/postgresql.conf" ||
		echo "include 'wsctl-ha.conf'" >>"$1/postgresql.conf"
	chown postgres:postgres "$1/wsctl-ha.conf"
}

# start_server DATADIR: pg_ctl start, on a fresh free port if the one in the
# conf was taken meanwhile; sets PORT.
start_server() {
	local data=$1 attempt
	for attempt in 1 2 3; do
		PORT=$(free_port $((54460 + attempt * 7)))
		write_conf "$data" "$PORT"
		as_pg "$PGBIN/pg_ctl" -D "$data" -l "$data.log" -w -t 60 start >/dev/null && return 0
		as_pg "$PGBIN/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1
	done
	return 1
}
# pid_alive PID: a live process (a zombie its parent has not reaped is not).
pid_alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
not() { ! "$@"; }
server_pid() { head -1 "$1/postmaster.pid" 2>/dev/null; }
server_up() { [ -f "$1/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$1" status >/dev/null 2>&1; }

ids_file=$dir/workspace-ids
sysid=''
pids=()
finish() {
	local data pid id rc=$?
	for data in "$sdata" "$pdata"; do
		if server_up "$data"; then
			as_pg "$PGBIN/pg_ctl" -D "$data" stop -m fast -w -t 60 >/dev/null 2>&1 ||
				as_pg "$PGBIN/pg_ctl" -D "$data" stop -m immediate -w -t 30 >/dev/null 2>&1
		fi
	done
	for pid in "${pids[@]}"; do
		pid_alive "$pid" && echo "# 29_replica: postmaster $pid still runs after pg_ctl stop"
	done
	# Whatever the workspaces' deletion left (a failed run), and the marker.
	if [ -s "$ids_file" ]; then
		while read -r id; do
			dk rm -f "ws-$id" >/dev/null 2>&1
			dk volume rm -f "ws-$id-home" >/dev/null 2>&1
		done <"$ids_file"
	fi
	[ -n "$sysid" ] && dk volume rm -f "wsctl-cluster-$sysid" >/dev/null 2>&1
	rc9 FLUSHDB >/dev/null 2>&1
	# The data directories are large; the logs stay for a failed run.
	rm -rf "$pdata" "$sdata"
	return $rc
}
trap finish EXIT

rm -rf "$dir"
mkdir -p "$dir"
chown postgres:postgres "$dir"
chmod 755 "$dir"
: >"$ids_file"
rc9 FLUSHDB >/dev/null

# ------------------------------------------------------------ the primary
# bail NAME COMMAND...: a set-up step; without it nothing after makes sense.
bail() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; echo "Bail out! $d failed (logs in $dir)"; exit 1; fi
}
initdb_primary() {
	as_pg "$PGBIN/initdb" -D "$pdata" -U postgres --auth=trust --encoding=UTF8 \
		--locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1
}
bail "initdb of the primary" initdb_primary
bail "the primary starts (preloading wsctl, wal_level = replica)" start_server "$pdata"
pport=$PORT
pids+=("$(server_pid "$pdata")")
diag "primary on 127.0.0.1:$pport, pid ${pids[0]}"
psql -X -q -h "$dir" -p "$pport" -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null
bail "the extension is created in $DB" qn "$pport" "CREATE EXTENSION wsctl"
sysid=$(qn "$pport" "SELECT system_identifier FROM pg_control_system()")
# Test-only history, in the replicated database: which server (its port)
# wrote each attempt and each change of a workspace's operation.
qn "$pport" "
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
	FOR EACH ROW EXECUTE FUNCTION public.ha_attempt_log();" >/dev/null
check "the primary's workers lead" wait_sql "$pport" 30 \
	"SELECT count(*) = 4 FROM wsctl.workers WHERE leader AND pid IS NOT NULL
	  AND component IN ('health_monitor', 'reconciler', 'event_listener', 'ttl_manager')"

# ------------------------------------------------------------ the standby
bail "pg_basebackup -R of the primary, with the replication slot $SLOT" \
	as_pg "$PGBIN/pg_basebackup" -d "host=$dir port=$pport user=postgres" -D "$sdata" \
	-R -C -S $SLOT -X stream -c fast --no-sync
# The name synchronous_standby_names refers to.
echo "primary_conninfo = 'host=$dir port=$pport user=postgres application_name=$SLOT'" >>"$sdata/postgresql.auto.conf"
bail "the standby starts" start_server "$sdata"
sport=$PORT
pids+=("$(server_pid "$sdata")")
diag "standby on 127.0.0.1:$sport, pid ${pids[1]}"
bail "it streams from the primary" wait_sql "$pport" 30 \
	"SELECT count(*) = 1 FROM pg_stat_replication WHERE application_name = '$SLOT' AND state = 'streaming'"
# The control plane's writes wait until the standby applied them. Set after
# the base backup, so the standby (once promoted, alone) does not wait for
# a standby of its own.
qn "$pport" "ALTER SYSTEM SET synchronous_standby_names = '$SLOT'" >/dev/null
qn "$pport" "ALTER DATABASE $DB SET synchronous_commit = remote_apply" >/dev/null
qn "$pport" "SELECT pg_reload_conf()" >/dev/null
bail "the standby is synchronous" wait_sql "$pport" 30 \
	"SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = '$SLOT'"
is "the standby is in recovery" "$(qn "$sport" "SELECT pg_is_in_recovery()")" t
is "its system identifier is the primary's" "$(qn "$sport" "SELECT system_identifier FROM pg_control_system()")" "$sysid"

# ------------------------------------------------------------ 1. workers on the standby
is "standby: five component rows in wsctl.workers, none with a pid or leading" \
	"$(qn "$sport" "SELECT count(*) || '/' || count(pid) || '/' || count(*) FILTER (WHERE leader)
	                  FROM wsctl.workers WHERE workspace_id IS NULL")" "5/0/0"
is "standby: every component row says why it is idle (last_error_at NULL)" \
	"$(qn "$sport" "SELECT string_agg(DISTINCT coalesce(last_error, '<null>') || ' @' || coalesce(last_error_at::text, 'null'), ',')
	                  FROM wsctl.workers WHERE workspace_id IS NULL")" \
	"standby (in recovery): idle until promoted @null"
is "primary: no component row says standby" \
	"$(qn "$pport" "SELECT count(*) FROM wsctl.workers WHERE last_error LIKE 'standby%'")" 0
stat_wsctl="SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'wsctl%' OR application_name LIKE 'wsctl%'"
is "standby: no wsctl process in pg_stat_activity" "$(qn "$sport" "$stat_wsctl")" 0
check "primary: its wsctl processes are in pg_stat_activity" test "$(qn "$pport" "$stat_wsctl")" -ge 4

t_a=$(now_epoch)
a=$(qn "$pport" "SELECT id FROM wsctl.create_workspace('$owner', 'ha-a', '$WSCTL_TEST_IMAGE', 'RUNNING')")
echo "$a" >>"$ids_file"
# remote_apply: the commit returned only once the standby replayed it, so
# it is there at once (no polling).
is "the workspace created on the primary is on the standby as soon as it is committed" \
	"$(qn "$sport" "SELECT desired_state FROM wsctl.workspaces WHERE id = '$a'")" RUNNING
check "the primary's workers take it to RUNNING" wait_sql "$pport" 30 \
	"SELECT observed_status = 'RUNNING' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$a'"
check "the standby replays RUNNING" wait_sql "$sport" 10 \
	"SELECT observed_status = 'RUNNING' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$a'"
is "Docker: one container for it" "$(dk ps -a -q --filter "label=wsctl.workspace=$a" | wc -l)" 1
is "Docker: created once and started once (docker events)" \
	"$(dk events --since "$t_a" --until "$(now_epoch)" --filter type=container --filter "container=ws-$a" \
	   --format '{{.Action}}' | grep -cx -e create -e start | tr -d ' ')" 2
check "the primary's log has its operation workers" grep -q "wsctl operation: workspace $a: PROVISIONING started" "$pdata.log"
is "the standby's log has no wsctl worker at all" \
	"$(grep -c -e 'wsctl operation' -e 'started (database' "$sdata.log")" 0
standby_write=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h "$dir" -p "$sport" -U postgres -d $DB \
	-c "SELECT wsctl.create_workspace('$owner', 'ha-refused', '$WSCTL_TEST_IMAGE', 'RUNNING')" 2>&1)
is "standby: the API's writes are refused as read-only (SQLSTATE 25006)" \
	"$(sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' <<<"$standby_write" | head -1)" 25006
is "standby: still no wsctl process, no pid in wsctl.workers" \
	"$(qn "$sport" "$stat_wsctl")/$(qn "$sport" "SELECT count(pid) FROM wsctl.workers")" "0/0"

# ------------------------------------------------------------ 2. failover with operations in flight
# b1..b3 are provisioned first (normal speed), then asked to run: their
# STARTING creates and starts the container. c1 (asked RUNNING) and c2
# (asked STANDBY) are new: their PROVISIONING creates the volume. Each
# worker then waits out the delay before reporting, and the primary dies.
for n in 1 2 3; do
	qn "$pport" "SELECT id FROM wsctl.create_workspace('$owner', 'ha-b$n', '$WSCTL_TEST_IMAGE', 'STANDBY')" >>"$ids_file"
done
mapfile -t bs < <(qn "$pport" "SELECT id FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND name LIKE 'ha-b%' ORDER BY name")
check "b1, b2, b3 reach STANDBY" wait_sql "$pport" 30 \
	"SELECT count(*) = 3 FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND name LIKE 'ha-b%'
	   AND observed_status = 'STANDBY' AND operation = 'NONE'"

qn "$pport" "ALTER SYSTEM SET wsctl.debug_operation_delay = '${DELAY_S}s'" >/dev/null
qn "$pport" "SELECT pg_reload_conf()" >/dev/null
check "primary: operation workers stay busy ${DELAY_S}s after acting" \
	wait_sql "$pport" 10 "SELECT current_setting('wsctl.debug_operation_delay') = '${DELAY_S}s'"

c1=$(qn "$pport" "SELECT id FROM wsctl.create_workspace('$owner', 'ha-c1', '$WSCTL_TEST_IMAGE', 'RUNNING')")
c2=$(qn "$pport" "SELECT id FROM wsctl.create_workspace('$owner', 'ha-c2', '$WSCTL_TEST_IMAGE', 'STANDBY')")
printf '%s\n' "$c1" "$c2" >>"$ids_file"
for id in "${bs[@]}"; do qn "$pport" "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null; done
flight=("${bs[@]}" "$c1" "$c2")
in_flight=$(printf "'%s'," "${flight[@]}"); in_flight=${in_flight%,}

# actuated: every in-flight workspace's worker is acting (held by the
# delay) and Docker already shows what it did: b* running, c* a volume.
actuated() {
	local id
	[ "$(qn "$pport" "SELECT count(DISTINCT workspace_id) FROM wsctl.workers
	                   WHERE workspace_id IN ($in_flight) AND component LIKE 'operation %(acting)' AND pid IS NOT NULL")" = 5 ] || return 1
	for id in "${bs[@]}"; do container_running "$id" || return 1; done
	for id in "$c1" "$c2"; do volume_exists "$id" || return 1; done
}
check "five operations in flight, actuated, their workers not reported yet" wait_cmd 20 actuated
is "  three STARTING, two PROVISIONING" \
	"$(qn "$pport" "SELECT string_agg(name || ':' || operation, ' ' ORDER BY name) FROM wsctl.workspaces WHERE id IN ($in_flight)")" \
	"ha-b1:STARTING ha-b2:STARTING ha-b3:STARTING ha-c1:PROVISIONING ha-c2:PROVISIONING"
# One more, committed just before the stop: it must survive the failover.
d=$(qn "$pport" "SELECT id FROM wsctl.create_workspace('$owner', 'ha-d', '$WSCTL_TEST_IMAGE', 'STANDBY')")
echo "$d" >>"$ids_file"
rows="SELECT string_agg(name || ':' || desired_state || ':' || operation || ':' || coalesce(op_id::text, '-'), ' ' ORDER BY name)
        FROM wsctl.workspaces WHERE owner_user_id = '$owner'"
before=$(qn "$pport" "$rows")
ops_before=$(qn "$pport" "SELECT string_agg(id || ':' || op_id, ' ' ORDER BY id) FROM wsctl.workspaces WHERE id IN ($in_flight)")
# Docker's own identity of the containers the old primary made.
docker_ids() {
	local id
	for id in "$a" "${bs[@]}"; do dk inspect -f '{{.Id}}' "ws-$id"; done
}
docker_before=$(docker_ids)
is "the standby has every claim and op_id already (remote_apply)" "$(qn "$sport" "$rows")" "$before"

check "the primary is stopped hard: pg_ctl stop -m immediate" \
	as_pg "$PGBIN/pg_ctl" -D "$pdata" stop -m immediate -w -t 30
check "  its postmaster (pid ${pids[0]}) is gone" not pid_alive "${pids[0]}"
is "  none of the five workers had reported (the delay outlasted the stop)" \
	"$(grep -c -e "workspace \($c1\|$c2\): PROVISIONING actuated" \
	           -e "workspace \(${bs[0]}\|${bs[1]}\|${bs[2]}\): STARTING actuated" "$pdata.log" | tr -d ' ')" 0

promote_start=$(date +%s%N)
check "pg_ctl promote of the standby" as_pg "$PGBIN/pg_ctl" -D "$sdata" promote -w -t 60
leaders="SELECT count(*) = 4 FROM wsctl.workers WHERE leader AND pid IS NOT NULL
          AND component IN ('health_monitor', 'reconciler', 'event_listener', 'ttl_manager')"
if wait_sql "$sport" $((INTERVAL_S + TAKEOVER_SLACK_S)) "$leaders"; then
	took=$(ms_since "$promote_start")
	ok "its workers run and lead within ${INTERVAL_S}s + ${TAKEOVER_SLACK_S}s of pg_ctl promote"
	diag "takeover: ${took} ms from pg_ctl promote to the four components leading"
else
	not_ok "its workers run and lead within ${INTERVAL_S}s + ${TAKEOVER_SLACK_S}s of pg_ctl promote"
	qn "$sport" "SELECT component, pid, leader, last_error FROM wsctl.workers" | sed 's/^/# /'
fi
is "it is out of recovery" "$(qn "$sport" "SELECT pg_is_in_recovery()")" f
is "no component row says standby any more" "$(qn "$sport" "SELECT count(*) FROM wsctl.workers WHERE last_error LIKE 'standby%'")" 0
check "its wsctl processes are in pg_stat_activity" test "$(qn "$sport" "$stat_wsctl")" -ge 4
is "every workspace committed before the stop is there, as it was" "$(qn "$sport" "$rows")" "$before"

goal="SELECT count(*) = 7 FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND operation = 'NONE'
        AND error_info IS NULL AND observed_status::text = desired_state::text"
if wait_sql "$sport" 60 "$goal"; then
	ok "every workspace reaches its desired state on the new primary"
	diag "converged $(ms_since "$promote_start") ms after pg_ctl promote (the new primary has no debug delay)"
else
	not_ok "every workspace reaches its desired state on the new primary"
	qn "$sport" "SELECT name, desired_state, observed_status, operation, error_info FROM wsctl.workspaces WHERE owner_user_id = '$owner'" | sed 's/^/# /'
fi
is "  a, b1..b3, c1 RUNNING; c2, d STANDBY" \
	"$(qn "$sport" "SELECT string_agg(name || '=' || observed_status, ' ' ORDER BY name) FROM wsctl.workspaces WHERE owner_user_id = '$owner'")" \
	"ha-a=RUNNING ha-b1=RUNNING ha-b2=RUNNING ha-b3=RUNNING ha-c1=RUNNING ha-c2=STANDBY ha-d=STANDBY"

# The attempts of each in-flight op_id, as ha_attempts logged them: the old
# primary launched attempt 1; the new primary found it without a worker
# (vanished), launched attempt 2 of the SAME op_id, and it succeeded.
expected_attempts="1:launch@primary 1:vanished@promoted 2:launch@promoted 2:succeeded@promoted"
for id in "${flight[@]}"; do
	op=$(sed -n "s/.*$id:\([^ ]*\).*/\1/p" <<<"$ops_before")
	is "$(qn "$sport" "SELECT name FROM wsctl.workspaces WHERE id = '$id'"): op_id $op vanished, retried under the same op_id" \
		"$(qn "$sport" "SELECT string_agg(attempt || ':' || coalesce(outcome, 'launch') || '@' ||
		                   CASE port WHEN $pport THEN 'primary' WHEN $sport THEN 'promoted' END, ' ' ORDER BY seq)
		                  FROM public.ha_attempts WHERE workspace_id = '$id' AND op_id = '$op'")" "$expected_attempts"
done
is "the vanished attempts were WORKER_VANISHED" \
	"$(qn "$sport" "SELECT count(*) FROM public.ha_attempts WHERE workspace_id IN ($in_flight) AND outcome = 'vanished' AND code = 'WORKER_VANISHED'")" 5
is "no other attempt failed or vanished" \
	"$(qn "$sport" "SELECT count(*) FROM public.ha_attempts WHERE outcome IN ('failed', 'vanished') AND code IS DISTINCT FROM 'WORKER_VANISHED'")" 0

is "Docker: the containers are the ones the old primary made (same ids)" "$(docker_ids)" "$docker_before"
# Docker's events from the first workspace's creation until now. A volume
# create is logged even when the volume exists (and returned as it is), so
# "made once" is: no container or volume of theirs was ever destroyed.
events=$(dk events --since "$t_a" --until "$(now_epoch)" --filter type=container --filter type=volume \
	--format '{{.Type}} {{.Action}} {{if .Actor.Attributes.name}}{{.Actor.Attributes.name}}{{else}}{{.Actor.ID}}{{end}}')
is "Docker: no container or volume of theirs was destroyed (nothing re-made)" \
	"$(grep -E "^(container|volume) destroy " <<<"$events" | grep -c -F -f <(sed 's/^/ ws-/' "$ids_file") | tr -d ' ')" 0
per_ws() { grep -c -x "container $1 ws-$2" <<<"$events" | tr -d ' '; }
for id in "$a" "${flight[@]}" "$d"; do
	name=$(qn "$sport" "SELECT name FROM wsctl.workspaces WHERE id = '$id'")
	case $name in ha-c2 | ha-d) n=0 ;; *) n=1 ;; esac
	is "$name: Docker created its container $n time(s), started it $n time(s), holds $n" \
		"$(per_ws create "$id") $(per_ws start "$id") $(dk ps -a -q --filter "label=wsctl.workspace=$id" | wc -l)" "$n $n $n"
done

# Events: the new EventListener resumes from the replicated cursor; an
# event the old one shipped without moving the cursor is refused by Redis
# as a duplicate entry, so the stream holds each event once.
check "the new primary ships every event (cursor at the outbox's last id)" wait_sql "$sport" 30 \
	"SELECT count(*) FILTER (WHERE id IS NULL) = 0 AND max(id) = (SELECT last_shipped FROM wsctl.event_cursor)
	   FROM wsctl.events"
diag "event ids: $(qn "$sport" "SELECT string_agg(id::text, ' ' ORDER BY id) FROM wsctl.events")"
is "the stream holds each outbox event once, with its id" \
	"$(rc9 --raw XRANGE wsctl:events - + | grep -E '^[0-9]+-0$' | sed 's/-0$//' | sort -n | tr '\n' ' ')" \
	"$(qn "$sport" "SELECT string_agg(id::text, ' ' ORDER BY id) || ' ' FROM wsctl.events")"

# ------------------------------------------------------------ clean-up through the new primary
deleted() {
	qn "$sport" "SELECT count(wsctl.delete_workspace(id)) FROM wsctl.workspaces
	             WHERE owner_user_id = '$owner' AND deleted_at IS NULL AND operation = 'NONE'" >/dev/null
	[ "$(qn "$sport" "SELECT count(*) = 0 FROM wsctl.workspaces WHERE owner_user_id = '$owner'
	                    AND (observed_status <> 'DELETED' OR operation <> 'NONE')")" = t ]
}
check "the workspaces are deleted by the new primary" wait_cmd 60 deleted
is "no container or volume of theirs is left" \
	"$(while read -r id; do dk ps -aq --filter "label=wsctl.workspace=$id"; dk volume ls -q --filter "label=wsctl.workspace=$id"; done <"$ids_file" | wc -l)" 0
done_testing
