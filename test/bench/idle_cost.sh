#!/usr/bin/env bash
# idle_cost.sh: what an idle control plane costs as the number of
# workspaces grows (issue 12). For N = 1,000, 10,000 and 50,000 workspaces,
# all converged and idle (created PENDING through the API: desired =
# observed, nothing on Docker, nothing to do), it samples each worker's
# tick time from wsctl.workers, the HealthMonitor's Docker calls per tick,
# and the WAL the cluster writes per idle second. The integration cluster
# ticks every second (health_interval, reconcile_interval = 1 s), so WAL/s
# is the cost of one HealthMonitor tick per second.
# Targets: Docker calls/tick <= 2, HealthMonitor tick < 1 s and reconciler
# idle tick < 10 ms at 10,000, WAL < 8 kB per idle second.
# Environment as for test/integration (lib.sh). SIZES overrides the list.
. "$(dirname "$0")/../integration/lib.sh"
sizes=${SIZES:-1000 10000 50000}
prefix=00000000-0000-0000-0000-0000000bc
total=0
window=10

# owner N: 100 workspaces per owner (owners differ only in their last digits).
cleanup() {
	q "SET wsctl.component = 'admin';
	   DELETE FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$prefix%'" >/dev/null
}
trap cleanup EXIT
cleanup

# tick_ms COMPONENT: median last_tick_ms over the component's next 5 ticks.
tick_ms() {
	local last ticks ms samples=()
	last=$(q "SELECT ticks FROM wsctl.workers WHERE component = '$1'")
	local deadline=$((SECONDS + 120))
	while [ ${#samples[@]} -lt 5 ] && [ $SECONDS -lt $deadline ]; do
		IFS='|' read -r ticks ms <<<"$(q "SELECT ticks, last_tick_ms FROM wsctl.workers WHERE component = '$1'")"
		if [ "$ticks" != "$last" ]; then samples+=("$ms"); last=$ticks; fi
		sleep 0.02
	done
	[ ${#samples[@]} -eq 0 ] && { echo n/a; return; }
	printf '%s\n' "${samples[@]}" | sort -n | sed -n "$(((${#samples[@]} + 1) / 2))p" | xargs printf '%.2f'
}

printf '%-8s %-9s %-12s %-13s %-12s %-12s %-10s %-11s %-10s\n' \
	N create_s hm_tick_ms docker/tick rec_tick_ms ttl_tick_ms el_tick_ms gc_tick_ms WAL_B/s
for n in $sizes; do
	start=$(date +%s.%N)
	q "SELECT count(wsctl.create_workspace(('$prefix' || lpad((g / 100)::text, 3, '0'))::uuid,
	                                       'idle-' || g, '$WSCTL_TEST_IMAGE', 'PENDING'))
	     FROM generate_series($total, $n - 1) g" >/dev/null
	create_s=$(echo "$(date +%s.%N) - $start" | bc)
	total=$n
	q "VACUUM ANALYZE wsctl.workspaces" >/dev/null
	wait_for 120 "SELECT count(*) = 0 FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$prefix%'
	              AND (observed_status <> desired_state OR operation <> 'NONE')" ||
		{ echo "the $n workspaces did not settle"; exit 1; }
	hm=$(tick_ms health_monitor)
	calls=$(q "SELECT docker_calls_last_tick FROM wsctl.workers WHERE component = 'health_monitor'")
	rec=$(tick_ms reconciler)
	ttl=$(q "SELECT round(last_tick_ms::numeric, 2) FROM wsctl.workers WHERE component = 'ttl_manager'")
	el=$(tick_ms event_listener)
	gc=$(q "SELECT round(last_tick_ms::numeric, 2) FROM wsctl.workers WHERE component = 'archive_gc'")
	lsn0=$(q "SELECT pg_current_wal_insert_lsn()")
	sleep "$window"   # a measuring window, not a synchronisation
	wal=$(q "SELECT round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn0') / $window)")
	printf '%-8s %-9.1f %-12s %-13s %-12s %-12s %-10s %-11s %-10s\n' \
		"$n" "$create_s" "$hm" "$calls" "$rec" "$ttl" "$el" "$gc" "$wal"
done
