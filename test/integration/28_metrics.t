#!/usr/bin/env bash
# 28_metrics.t: the wsctl.metrics view and its scrape by the real
# prometheus-postgres-exporter (issue 11).
#
# Counters are cluster-wide and other test files run at the same time, so
# every assertion on a counter is on its growth across an action of this
# file (at least what the action must have caused), never on an absolute
# value. The exporter runs with docs/examples/prometheus/wsctl-queries.yaml
# as a LOGIN role that has only wsctl_monitor, on 127.0.0.1; its scrape is
# kept in the artifacts directory (WSCTL_TEST_ARTIFACTS) when there is one.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0028-000000000001
top=$(cd "$(dirname "$0")/../.." && pwd)
queries=$top/docs/examples/prometheus/wsctl-queries.yaml
dir=$WSCTL_TEST_TMP/metrics
mkdir -p "$dir"
monitor=wsctl_it_monitor
nobody=wsctl_it_nomonitor
bad=wsctl-missing:metrics
exporter_pid=

finish() {
	[ -n "$exporter_pid" ] && { kill -TERM "$exporter_pid" 2>/dev/null; wait "$exporter_pid" 2>/dev/null; }
	cleanup_owner "$owner" >/dev/null
	s3_forget_owner "$owner"
	q "DROP ROLE IF EXISTS $monitor; DROP ROLE IF EXISTS $nobody" >/dev/null 2>&1
}
trap finish EXIT

# m METRIC [LABELS-JSON]: the value of one series (0 when absent), as an integer.
m() { q "SELECT coalesce(sum(value), 0)::bigint FROM wsctl.metrics WHERE metric = '$1' AND labels @> '${2:-{\}}'"; }
# grew DESCRIPTION BEFORE AFTER AT-LEAST
grew() {
	if [ $(($3 - $2)) -ge "$4" ]; then ok "$1 (+$(($3 - $2)))"; else not_ok "$1"; diag "  before $2, after $3, expected at least +$4"; fi
}
as_role() { PGOPTIONS="$PGOPTIONS -c role=$1" sqlstate "$2"; }

# ---------------------------------------------------------------- 1. who may read it
q "DROP ROLE IF EXISTS $monitor; DROP ROLE IF EXISTS $nobody;
   CREATE ROLE $monitor LOGIN; GRANT wsctl_monitor TO $monitor;
   CREATE ROLE $nobody LOGIN" >/dev/null
is "a wsctl_monitor member reads wsctl.metrics" \
	"$(as_role $monitor "SELECT count(*) FROM wsctl.metrics")" OK
is "  but not the workspaces table" "$(as_role $monitor "SELECT count(*) FROM wsctl.workspaces")" 42501
is "a role without wsctl_monitor cannot read wsctl.metrics" \
	"$(as_role $nobody "SELECT count(*) FROM wsctl.metrics")" 42501
is "nobody but the extension's owner may count an operation (no forged metrics)" \
	"$(as_role $monitor "SELECT wsctl._count_operation('STARTING', 'completed')")" 42501
is "wsctl_admin includes wsctl_monitor" \
	"$(q "SELECT pg_has_role('wsctl_admin', 'wsctl_monitor', 'USAGE')")" t

# ---------------------------------------------------------------- 2. shape
is "every row is a counter or a gauge with object labels" \
	"$(q "SELECT count(*) FROM wsctl.metrics WHERE type NOT IN ('counter', 'gauge')
	        OR jsonb_typeof(labels) <> 'object' OR value IS NULL")" 0
is "counters end in _total or _sum, gauges do not" \
	"$(q "SELECT count(*) FROM wsctl.metrics
	       WHERE (type = 'counter') <> (metric LIKE '%\_total' OR metric LIKE '%\_sum')")" 0
is "every status and operation pair has a series (35)" \
	"$(q "SELECT count(*) FROM wsctl.metrics WHERE metric = 'wsctl_workspaces_count'")" 35
undocumented=$(q "SELECT DISTINCT metric FROM wsctl.metrics ORDER BY 1" |
	while read -r name; do grep -q "\`$name\`" "$top/docs/operations.md" || echo "$name"; done)
is "every metric is documented in docs/operations.md" "$undocumented" ""
unscraped=$(q "SELECT DISTINCT metric FROM wsctl.metrics ORDER BY 1" |
	while read -r name; do grep -q "'$name'" "$queries" || echo "$name"; done)
is "every metric is read by the exporter's queries file" "$unscraped" ""

# ---------------------------------------------------------------- 3. counted at commit
b=$(m wsctl_operations_total '{"operation": "DELETING", "outcome": "started"}')
q "BEGIN; SELECT wsctl._count_operation('DELETING', 'started'); ROLLBACK" >/dev/null
is "a count in a transaction that rolls back is not added" \
	"$(m wsctl_operations_total '{"operation": "DELETING", "outcome": "started"}')" "$b"
is "a count of an unknown outcome is an error" \
	"$(sqlstate "SELECT wsctl._count_operation('DELETING', 'finished')")" 22023

# ---------------------------------------------------------------- 4. a lifecycle
prov_started=$(m wsctl_operations_total '{"operation": "PROVISIONING", "outcome": "started"}')
start_done=$(m wsctl_operations_total '{"operation": "STARTING", "outcome": "completed"}')
docker_calls=$(m wsctl_backend_calls_total '{"service": "docker"}')
redis_calls=$(m wsctl_backend_calls_total '{"service": "redis"}')
shipped=$(m wsctl_events_shipped_total)
hm_ticks=$(m wsctl_worker_ticks_total '{"component": "health_monitor"}')
id=$(create_ws $owner metrics RUNNING)
check "a workspace reaches RUNNING" wait_state "$id" RUNNING 60
grew "PROVISIONING started is counted" "$prov_started" \
	"$(m wsctl_operations_total '{"operation": "PROVISIONING", "outcome": "started"}')" 1
grew "STARTING completed is counted" "$start_done" \
	"$(m wsctl_operations_total '{"operation": "STARTING", "outcome": "completed"}')" 1
grew "Docker calls are counted (volume, container, start at least)" "$docker_calls" \
	"$(m wsctl_backend_calls_total '{"service": "docker"}')" 3
check "events are shipped: the outbox drains" \
	wait_for 10 "SELECT value = 0 FROM wsctl.metrics WHERE metric = 'wsctl_outbox_pending'"
grew "events shipped are counted (at least 3 changes)" "$shipped" "$(m wsctl_events_shipped_total)" 3
grew "Redis commands are counted (XADD and PUBLISH per event)" "$redis_calls" \
	"$(m wsctl_backend_calls_total '{"service": "redis"}')" 6
grew "the HealthMonitor's ticks are counted" "$hm_ticks" \
	"$(m wsctl_worker_ticks_total '{"component": "health_monitor"}')" 1
is "the HealthMonitor's tick time is positive" \
	"$(q "SELECT value > 0 FROM wsctl.metrics WHERE metric = 'wsctl_worker_tick_seconds_sum'
	       AND labels ->> 'component' = 'health_monitor'")" t
is "every component is up" "$(q "SELECT count(*) FROM wsctl.metrics
	WHERE metric = 'wsctl_worker_up' AND value = 1")" 5
check "RUNNING/NONE counts this workspace" \
	test "$(m wsctl_workspaces_count '{"status": "RUNNING", "operation": "NONE"}')" -ge 1
is "the outbox lag is a number of seconds, not negative" \
	"$(q "SELECT value >= 0 FROM wsctl.metrics WHERE metric = 'wsctl_outbox_lag_seconds'")" t

# ---------------------------------------------------------------- 5. archive and restore
home=$(q "SELECT current_setting('wsctl.container_mount_path')")
check "3 MB of random data are written into the home" \
	dk exec "ws-$id" sh -c "head -c 3000000 /dev/urandom > '$home/payload'"
up=$(m wsctl_archive_bytes_total '{"direction": "upload"}')
down=$(m wsctl_archive_bytes_total '{"direction": "download"}')
s3_calls=$(m wsctl_backend_calls_total '{"service": "s3"}')
archive_done=$(m wsctl_operations_total '{"operation": "ARCHIVING", "outcome": "completed"}')
q "SELECT wsctl.set_desired_state('$id', 'PENDING')" >/dev/null
check "the workspace is archived" wait_for 90 \
	"SELECT observed_status = 'PENDING' AND operation = 'NONE' AND archive_key IS NOT NULL FROM wsctl.workspaces WHERE id = '$id'"
grew "upload bytes grow by at least the compressed 3 MB of random data" "$up" \
	"$(m wsctl_archive_bytes_total '{"direction": "upload"}')" 3000000
grew "S3 calls are counted (HEAD, upload, meta, HEAD)" "$s3_calls" "$(m wsctl_backend_calls_total '{"service": "s3"}')" 4
grew "ARCHIVING completed is counted" "$archive_done" \
	"$(m wsctl_operations_total '{"operation": "ARCHIVING", "outcome": "completed"}')" 1
check "the archived workspace is counted" test "$(m wsctl_archived_workspaces)" -ge 1
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
check "the workspace is restored" wait_state "$id" STANDBY 90
grew "download bytes grow by at least the 3 MB" "$down" \
	"$(m wsctl_archive_bytes_total '{"direction": "download"}')" 3000000

# ---------------------------------------------------------------- 6. errors
dk image inspect "$bad" >/dev/null 2>&1 && dk rmi "$bad" >/dev/null
action_failed=$(m wsctl_operation_errors_total '{"operation": "STARTING", "reason": "ActionFailed"}')
exceeded=$(m wsctl_operation_errors_total '{"operation": "STARTING", "reason": "RetryExceeded"}')
failed=$(m wsctl_operations_total '{"operation": "STARTING", "outcome": "failed"}')
docker_failures=$(m wsctl_backend_failures_total '{"service": "docker"}')
bid=$(create_ws $owner metrics-bad RUNNING "$bad")
check "a workspace whose image is missing ends in ERROR" wait_for 60 \
	"SELECT error_info ->> 'reason' = 'RetryExceeded' FROM wsctl.workspaces WHERE id = '$bid'"
# 4 attempts fail: the first 3 are recorded as ActionFailed, the last, which
# exhausts the retries, as RetryExceeded.
grew "the failed STARTING attempts count ActionFailed errors (3)" "$action_failed" \
	"$(m wsctl_operation_errors_total '{"operation": "STARTING", "reason": "ActionFailed"}')" 3
grew "the last, which exhausts the retries, counts a RetryExceeded" "$exceeded" \
	"$(m wsctl_operation_errors_total '{"operation": "STARTING", "reason": "RetryExceeded"}')" 1
grew "and a failed STARTING" "$failed" "$(m wsctl_operations_total '{"operation": "STARTING", "outcome": "failed"}')" 1
grew "Docker's refusals (404 No such image on create) are counted as failed calls" "$docker_failures" \
	"$(m wsctl_backend_failures_total '{"service": "docker"}')" 4
check "the workspace in ERROR is counted by reason" \
	test "$(m wsctl_workspace_errors_count '{"reason": "RetryExceeded", "terminal": "true"}')" -ge 1
check "and under status ERROR" \
	test "$(m wsctl_workspaces_count '{"status": "ERROR", "operation": "STARTING"}')" -ge 1

# ---------------------------------------------------------------- 7. the exporter
exporter=$(command -v prometheus-postgres-exporter || true)
check "prometheus-postgres-exporter is installed" test -n "$exporter"
eport=19187
while ss -Htln | awk -v p="$eport" '{ n = split($4, a, ":"); if (a[n] == p) f = 1 } END { exit !f }'; do
	eport=$((eport + 1))
done
DATA_SOURCE_NAME="host=$PGHOST port=$PGPORT user=$monitor dbname=$WSCTL_IT_DB sslmode=disable" \
	"$exporter" --web.listen-address="127.0.0.1:$eport" --extend.query-path="$queries" \
	--disable-default-metrics --disable-settings-metrics >"$dir/exporter.log" 2>&1 &
exporter_pid=$!
scrape=$dir/scrape.txt
check "the exporter serves wsctl's metrics on 127.0.0.1:$eport" \
	wait_cmd 20 sh -c "curl -sf 'http://127.0.0.1:$eport/metrics' >'$scrape' && grep -q '^wsctl_worker_up' '$scrape'"
series() { grep -E "^$1(\{| )" "$scrape" | grep -F -- "${2:-}" | awk '{ print $2 }' | head -1; }
is "its last scrape had no error" "$(series pg_exporter_last_scrape_error)" 0
is "wsctl_operations_total is a counter" "$(grep -c '^# TYPE wsctl_operations_total counter$' "$scrape")" 1
is "wsctl_workspaces_count is a gauge" "$(grep -c '^# TYPE wsctl_workspaces_count gauge$' "$scrape")" 1
is "each of the 35 status and operation pairs is scraped" "$(grep -c '^wsctl_workspaces_count{' "$scrape")" 35
check "STARTING completed is scraped, at least 1" \
	awk -v v="$(series wsctl_operations_total 'operation="STARTING",outcome="completed"')" 'BEGIN { exit !(v >= 1) }'
check "Docker calls are scraped, above 0" \
	awk -v v="$(series wsctl_backend_calls_total 'service="docker"')" 'BEGIN { exit !(v > 0) }'
is "the reconciler is up" "$(series wsctl_worker_up 'component="reconciler"')" 1
check "the STARTING RetryExceeded error is scraped" \
	awk -v v="$(series wsctl_operation_errors_total 'operation="STARTING",reason="RetryExceeded"')" 'BEGIN { exit !(v >= 1) }'
check "upload bytes are scraped, at least 3 MB" \
	awk -v v="$(series wsctl_archive_bytes_total 'direction="upload"')" 'BEGIN { exit !(v >= 3000000) }'
for name in wsctl_outbox_lag_seconds wsctl_outbox_pending wsctl_events_shipped_total \
	wsctl_events_last_shipped_id wsctl_archived_workspaces wsctl_operation_workers_busy \
	wsctl_worker_tick_seconds_sum wsctl_workspace_errors_count; do
	check "$name is scraped" test -n "$(series "$name")"
done
if [ -n "${WSCTL_TEST_ARTIFACTS:-}" ]; then
	mkdir -p "$WSCTL_TEST_ARTIFACTS" && grep '^wsctl_\|^# \(HELP\|TYPE\) wsctl_' "$scrape" >"$WSCTL_TEST_ARTIFACTS/metrics-scrape.txt"
	diag "scrape kept in $WSCTL_TEST_ARTIFACTS/metrics-scrape.txt"
fi

done_testing
