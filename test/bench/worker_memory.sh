#!/usr/bin/env bash
# worker_memory.sh: resident memory of each wsctl worker before and after
# 1000 ticks (no growth = no leak). The intervals are lowered to 10 ms for
# the run and restored afterwards. Prints RssAnon (private memory, where a
# leak would show) and VmRSS per component.
. "$(dirname "$0")/../integration/lib.sh"
owner=00000000-0000-0000-0000-0000000be003
ticks=${TICKS:-1000}

# Some workspaces to look at on every tick.
q "SELECT count(wsctl.create_workspace('$owner', 'mem-' || g, '$WSCTL_TEST_IMAGE', 'STANDBY')) FROM generate_series(1, 20) g" >/dev/null
wait_for 120 "SELECT count(*) = 20 FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND observed_status = 'STANDBY' AND operation = 'NONE'"

q "ALTER SYSTEM SET wsctl.health_interval = '10ms'" >/dev/null
q "ALTER SYSTEM SET wsctl.reconcile_interval = '10ms'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
mem() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

declare -A pid0 tick0 anon0 rss0
for c in health_monitor reconciler; do
	IFS='|' read -r pid0[$c] tick0[$c] <<< "$(q "SELECT pid, ticks FROM wsctl.workers WHERE component = '$c'")"
done
# Let the first hundred ticks warm the caches (plans, catalog) first.
wait_for 120 "SELECT bool_and(ticks >= 100 + CASE component WHEN 'health_monitor' THEN ${tick0[health_monitor]} ELSE ${tick0[reconciler]} END) FROM wsctl.workers WHERE component IN ('health_monitor', 'reconciler')"
for c in health_monitor reconciler; do
	IFS='|' read -r p t <<< "$(q "SELECT pid, ticks FROM wsctl.workers WHERE component = '$c'")"
	pid0[$c]=$p; tick0[$c]=$t; anon0[$c]=$(mem "$p" RssAnon); rss0[$c]=$(mem "$p" VmRSS)
done
wait_for 600 "SELECT bool_and(ticks >= $ticks + CASE component WHEN 'health_monitor' THEN ${tick0[health_monitor]} ELSE ${tick0[reconciler]} END) FROM wsctl.workers WHERE component IN ('health_monitor', 'reconciler')"

printf '%-15s %-7s %-8s %-14s %-14s %-14s %-14s\n' component pid ticks RssAnon_kB_0 RssAnon_kB_1 VmRSS_kB_0 VmRSS_kB_1
for c in health_monitor reconciler; do
	IFS='|' read -r p t <<< "$(q "SELECT pid, ticks FROM wsctl.workers WHERE component = '$c'")"
	[ "$p" = "${pid0[$c]}" ] || echo "# $c restarted during the run (pid ${pid0[$c]} -> $p)"
	printf '%-15s %-7s %-8s %-14s %-14s %-14s %-14s\n' "$c" "$p" "$((t - tick0[$c]))" \
		"${anon0[$c]}" "$(mem "$p" RssAnon)" "${rss0[$c]}" "$(mem "$p" VmRSS)"
done

q "ALTER SYSTEM RESET wsctl.health_interval" >/dev/null
q "ALTER SYSTEM RESET wsctl.reconcile_interval" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
cleanup_owner $owner >/dev/null
