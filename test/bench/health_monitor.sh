#!/usr/bin/env bash
# health_monitor.sh: HealthMonitor tick time and Docker calls per tick for
# 10, 100 and 1000 STANDBY workspaces (volumes only). Prints one line per
# size. Target: Docker calls per tick constant; 1000 workspaces < 1 s.
# Environment as for test/integration (lib.sh).
. "$(dirname "$0")/../integration/lib.sh"
owner=00000000-0000-0000-0000-0000000be001
total=0

printf '%-11s %-13s %-22s %-22s %-16s\n' workspaces provision_s tick_ms_median tick_ms_max docker_calls/tick
for n in 10 100 1000; do
	add=$((n - total))
	start=$(date +%s.%N)
	q "SELECT count(wsctl.create_workspace('$owner', 'bench-' || g, '$WSCTL_TEST_IMAGE', 'STANDBY'))
	   FROM generate_series($total + 1, $n) g" >/dev/null
	wait_for 600 "SELECT count(*) = $n FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND observed_status = 'STANDBY' AND operation = 'NONE'" \
		|| { echo "provisioning $n workspaces did not finish"; exit 1; }
	provision=$(echo "$(date +%s.%N) - $start" | bc)
	total=$n
	# Sample the next 10 ticks of the HealthMonitor.
	samples=()
	calls=()
	last=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'")
	while [ ${#samples[@]} -lt 10 ]; do
		row=$(q "SELECT ticks, last_tick_ms, docker_calls_last_tick FROM wsctl.workers WHERE component = 'health_monitor'")
		IFS='|' read -r ticks ms dc <<< "$row"
		if [ "$ticks" != "$last" ]; then samples+=("$ms"); calls+=("$dc"); last=$ticks; fi
		sleep 0.05
	done
	median=$(printf '%s\n' "${samples[@]}" | sort -n | sed -n 5p)
	max=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
	ucalls=$(printf '%s\n' "${calls[@]}" | sort -u | tr '\n' ' ')
	printf '%-11s %-13.1f %-22.1f %-22.1f %-16s\n' "$n" "$provision" "$median" "$max" "$ucalls"
done
cleanup_owner $owner >/dev/null
