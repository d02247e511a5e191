#!/usr/bin/env bash
# 14_delete_race.t: deletes racing with the HealthMonitor's listings never
# produce a false ContainerWithoutVolume (issue 8, item 4). 20 running
# workspaces are deleted at once while the HealthMonitor ticks every 10 ms;
# a delete removes the container and then the volume, so a listing of
# containers followed by a listing of volumes could see the container
# without its volume. The HealthMonitor lists volumes first.
. "$(dirname "$0")/lib.sh"
prefix=00000000-0000-0000-0014-0000000000
n=20

trap 'reset_config wsctl.health_interval' EXIT
q "SELECT wsctl.create_workspace(('$prefix' || lpad(i::text, 2, '0'))::uuid, 'race-' || i, '$WSCTL_TEST_IMAGE', 'RUNNING')
     FROM generate_series(1, $n) i" >/dev/null
check "$n workspaces RUNNING" \
	wait_for 90 "SELECT count(*) = $n FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$prefix%'
	               AND observed_status = 'RUNNING' AND operation = 'NONE'"
check "HealthMonitor interval 10ms" set_config wsctl.health_interval 10ms
ticks=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'")
check "  it ticks at that pace" \
	wait_for 10 "SELECT ticks >= $ticks + 50 FROM wsctl.workers WHERE component = 'health_monitor'"

mark=$(q "SELECT coalesce(max(seq), 0) FROM public.it_history")
is "all $n deleted in one statement" \
	"$(q "SELECT count(wsctl.delete_workspace(id)) FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$prefix%'")" $n
check "all $n are observed DELETED" \
	wait_for 90 "SELECT count(*) = $n FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$prefix%'
	               AND observed_status = 'DELETED' AND operation = 'NONE'"
is "no ContainerWithoutVolume was recorded" \
	"$(q "SELECT count(*) FROM public.it_history h JOIN wsctl.workspaces w USING (id)
	       WHERE h.seq > $mark AND w.owner_user_id::text LIKE '$prefix%' AND h.error_reason IS NOT NULL")" 0
is "no workspace passed through ERROR" \
	"$(q "SELECT count(*) FROM public.it_history h JOIN wsctl.workspaces w USING (id)
	       WHERE h.seq > $mark AND w.owner_user_id::text LIKE '$prefix%' AND h.observed = 'ERROR'")" 0
is "no container or volume of theirs is left" \
	"$(dk ps -aq --filter label=wsctl.managed=true | while read -r c; do dk inspect -f '{{index .Config.Labels "wsctl.workspace"}}' "$c"; done | grep -c "^$prefix"; dk volume ls -q --filter label=wsctl.managed=true | grep -c "^ws-$prefix")" "0
0"
done_testing
