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

owners() { q "SELECT DISTINCT owner_user_id FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$prefix%' AND deleted_at IS NULL"; }
finish() {
	reset_config wsctl.health_interval
	for o in $(owners); do cleanup_owner "$o"; done
}
trap finish EXIT
for o in $(owners); do cleanup_owner "$o"; done	# what an interrupted run left
t0=$(q "SELECT clock_timestamp()")
mine="owner_user_id::text LIKE '$prefix%' AND created_at >= '$t0'"	# this run's workspaces
q "SELECT wsctl.create_workspace(('$prefix' || lpad(i::text, 2, '0'))::uuid, 'race-' || i, '$WSCTL_TEST_IMAGE', 'RUNNING')
     FROM generate_series(1, $n) i" >/dev/null
check "$n workspaces RUNNING" \
	wait_for 90 "SELECT count(*) = $n FROM wsctl.workspaces WHERE $mine
	               AND observed_status = 'RUNNING' AND operation = 'NONE'"
check "HealthMonitor interval 10ms" set_config wsctl.health_interval 10ms
ticks=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'")
check "  it ticks at that pace" \
	wait_for 10 "SELECT ticks >= $ticks + 50 FROM wsctl.workers WHERE component = 'health_monitor'"

mark=$(q "SELECT coalesce(max(seq), 0) FROM public.it_history")
ids=$(q "SELECT id FROM wsctl.workspaces WHERE $mine")
pids=()
for id in $ids; do	# 20 API sessions at once, one delete each
	q "SELECT wsctl.delete_workspace('$id')" >/dev/null 2>&1 &
	pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
is "all $n deleted concurrently, each by its own session" "$failed/$(q "SELECT count(*) FROM wsctl.workspaces WHERE $mine AND deleted_at IS NOT NULL")" "0/$n"
check "all $n are observed DELETED" \
	wait_for 90 "SELECT count(*) = $n FROM wsctl.workspaces WHERE $mine
	               AND observed_status = 'DELETED' AND operation = 'NONE'"
is "no ContainerWithoutVolume was recorded" \
	"$(q "SELECT count(*) FROM public.it_history h JOIN wsctl.workspaces w USING (id)
	       WHERE h.seq > $mark AND w.$mine AND h.error_reason IS NOT NULL")" 0
is "no workspace passed through ERROR" \
	"$(q "SELECT count(*) FROM public.it_history h JOIN wsctl.workspaces w USING (id)
	       WHERE h.seq > $mark AND w.$mine AND h.observed = 'ERROR'")" 0
is "no container or volume of theirs is left" \
	"$(dk ps -aq --filter label=wsctl.managed=true | while read -r c; do dk inspect -f '{{index .Config.Labels "wsctl.workspace"}}' "$c"; done | grep -c "^$prefix"; dk volume ls -q --filter label=wsctl.managed=true | grep -c "^ws-$prefix")" "0
0"
done_testing
