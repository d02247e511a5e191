#!/usr/bin/env bash
# 08_docker_outage.t: dockerd stopped for 30 seconds while workspaces change
# state (scenario 8 of issue 3). The workers keep running, the
# HealthMonitor writes no observed_status while it cannot see Docker, and
# everything converges once dockerd is back. retry_delay is raised to 15 s
# for the test, so that the retries of an operation outlast the outage (the
# default, 30 s, does too). Needs WSCTL_DOCKER_DIR (test/docker.sh).
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
owner=00000000-0000-0000-0000-0000000a0008	# a and b
owner2=00000000-0000-0000-0000-0000000b0008	# c and d: their own running slots
outage=${OUTAGE_SECONDS:-30}

set_retry_delay() {
	q "ALTER SYSTEM SET wsctl.retry_delay = '$1'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	wait_for 10 "SELECT current_setting('wsctl.retry_delay') = '$1'"
}
restore() {
	q "ALTER SYSTEM RESET wsctl.retry_delay" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null
	"$here/../docker.sh" resume "$WSCTL_DOCKER_DIR" >/dev/null 2>&1 || true
}
trap restore EXIT

check "WSCTL_DOCKER_DIR names the test engine" test -e "${WSCTL_DOCKER_DIR:-/nonexistent}/.wsctl-docker"
set_retry_delay 15s

a=$(create_ws $owner outage-a RUNNING)
b=$(create_ws $owner outage-b RUNNING)
c=$(create_ws $owner2 outage-c STANDBY)
check "a RUNNING before the outage" wait_state "$a" RUNNING 30
check "b RUNNING before the outage" wait_state "$b" RUNNING 30
check "c STANDBY before the outage" wait_state "$c" STANDBY 30
pids_before=$(q "SELECT string_agg(pid::text, ',' ORDER BY component) FROM wsctl.workers WHERE workspace_id IS NULL")
hm_ticks=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'")

check "dockerd paused (containers keep running: --live-restore)" "$here/../docker.sh" pause "$WSCTL_DOCKER_DIR"
down_at=$SECONDS
mark=$(q "SELECT coalesce(max(seq), 0) FROM public.it_history")
q "SELECT wsctl.set_desired_state('$a', 'STANDBY')" >/dev/null
q "SELECT wsctl.set_desired_state('$c', 'RUNNING')" >/dev/null
d=$(create_ws $owner2 outage-d RUNNING)
check "the HealthMonitor reports Docker unreachable" \
	wait_for 15 "SELECT last_error LIKE '%Docker%' AND last_error_at > now() - interval '10 s' FROM wsctl.workers WHERE component = 'health_monitor'"
check "operations fail as Unreachable and wait to be retried" \
	wait_for 15 "SELECT error_info ->> 'reason' = 'Unreachable' AND NOT (error_info ->> 'is_terminal')::bool FROM wsctl.workspaces WHERE id = '$a'"
while [ $((SECONDS - down_at)) -lt "$outage" ]; do sleep 0.5; done	# the outage itself

is "workers kept running (same pids)" \
	"$(q "SELECT string_agg(pid::text, ',' ORDER BY component) FROM wsctl.workers WHERE workspace_id IS NULL")" "$pids_before"
check "the HealthMonitor kept ticking" \
	test "$(q "SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'")" -gt $((hm_ticks + 10))
is "no observed_status was written during the outage" \
	"$(q "SELECT count(*) FROM (
	        SELECT h.seq, h.observed, lag(h.observed) OVER (PARTITION BY h.id ORDER BY h.seq) AS before
	          FROM public.it_history h JOIN wsctl.workspaces w USING (id)
	         WHERE w.owner_user_id IN ('$owner', '$owner2')) c
	      WHERE c.seq > $mark AND c.before IS NOT NULL AND c.observed IS DISTINCT FROM c.before")" 0
is "no workspace went to ERROR" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE id IN ('$a', '$b', '$c', '$d') AND (error_info ->> 'is_terminal')::bool")" 0

check "dockerd resumed" "$here/../docker.sh" resume "$WSCTL_DOCKER_DIR"
check "a converges to STANDBY" wait_state "$a" STANDBY 90
check "b converges back to RUNNING" wait_state "$b" RUNNING 90
check "c converges to RUNNING" wait_state "$c" RUNNING 90
check "d (created during the outage) converges to RUNNING" wait_state "$d" RUNNING 90
check "Docker: a has no container, its volume is kept" bash -c "! docker -H '$DOCKER_HOST' inspect ws-$a >/dev/null 2>&1 && docker -H '$DOCKER_HOST' volume inspect ws-$a-home >/dev/null"
for w in "$b" "$c" "$d"; do check "Docker: ws-$w is running" container_running "$w"; done
is "errors are cleared after convergence" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE id IN ('$a', '$b', '$c', '$d') AND error_info IS NOT NULL")" 0

cleanup_owner $owner
cleanup_owner $owner2
done_testing
