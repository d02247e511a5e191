#!/usr/bin/env bash
# 07_crash.t: crash-only design (scenario 7 of issue 3). SIGKILL of the
# reconciler and of an operation worker in the middle of STARTING, and an
# immediate-mode PostgreSQL restart in the middle of a batch of 20
# workspaces: everything converges, no duplicate containers, no workspace
# left with an operation and no worker. Needs WSCTL_PGDATA.
. "$(dirname "$0")/lib.sh"
pg_ctl=/usr/lib/postgresql/15/bin/pg_ctl
owner_prefix=00000000-0000-0000-0007

# worker_pid COMPONENT-PATTERN: pid of a wsctl worker, from wsctl.workers.
worker_pid() { q "SELECT pid FROM wsctl.workers WHERE component LIKE '$1' AND pid IS NOT NULL LIMIT 1"; }

# acting_worker: pid of an operation worker that is calling Docker (polls 20 s).
acting_worker() {
	local pid= deadline=$((SECONDS + 20))
	while [ -z "$pid" ] && [ $SECONDS -lt $deadline ]; do
		pid=$(q "SELECT pid FROM wsctl.workers WHERE component LIKE 'operation %(acting)' AND pid IS NOT NULL LIMIT 1")
	done
	echo "$pid"
}

# The server is back and its workers run again after a crash-restart.
wait_workers() {
	wait_for 60 "SELECT count(*) = 2 FROM wsctl.workers WHERE component IN ('health_monitor', 'reconciler') AND leader"
}

# converged OWNER-PREFIX N: N workspaces RUNNING, nothing in flight, one container each.
converged() {
	wait_for 90 "SELECT count(*) = $2 FROM wsctl.workspaces
	             WHERE owner_user_id::text LIKE '$1%' AND observed_status = 'RUNNING' AND operation = 'NONE'"
}
containers_of() {	# OWNER-PREFIX: running containers of those workspaces, and all of them
	local ids; ids=$(q "SELECT string_agg('ws-' || id, ' ') FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$1%' AND deleted_at IS NULL")
	local all=0 running=0 n
	for n in $ids; do
		dk inspect "$n" >/dev/null 2>&1 && all=$((all + 1))
		[ "$(dk inspect -f '{{.State.Running}}' "$n" 2>/dev/null)" = true ] && running=$((running + 1))
	done
	echo "$running/$all"
}

# 1. SIGKILL the reconciler while a workspace is STARTING.
o1=$owner_prefix-000000000001
id=$(create_ws $o1 kill-reconciler STANDBY)
wait_state "$id" STANDBY 30
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
rp=$(worker_pid reconciler)
if wait_for 10 "SELECT operation = 'STARTING' FROM wsctl.workspaces WHERE id = '$id'"; then
	kill -KILL "$rp" && ok "reconciler (pid $rp) killed with SIGKILL during STARTING"
else
	ok "STARTING was over before the kill (pid $rp killed anyway)"; kill -KILL "$rp"
fi
check "workers are back after the crash-restart" wait_workers
check "the workspace converges to RUNNING" converged $o1 1
is "one running container, no duplicate" "$(containers_of $o1)" 1/1

# 2. SIGKILL an operation worker in the middle of STARTING (5 at once to
# give the kill a target).
o2=$owner_prefix-0000000000
ids=()
for i in 1 2 3 4 5; do
	ids+=("$(q "SELECT id FROM wsctl.create_workspace('$o2$(printf %02d $((i + 10)))', 'kill-op-$i', '$WSCTL_TEST_IMAGE', 'RUNNING')")")
done
killed=$(acting_worker)
if [ -n "$killed" ]; then
	kill -KILL "$killed" 2>/dev/null; ok "an operation worker (pid $killed) killed with SIGKILL while acting"
else
	not_ok "no acting operation worker was seen to kill"
fi
check "workers are back after the crash-restart" wait_workers
check "all 5 converge to RUNNING" converged "${o2}1" 5
is "5 running containers, no duplicates" "$(containers_of "${o2}1")" 5/5

# 2b. SIGTERM instead: the reconciler and an operation worker exit cleanly
# (no crash-restart); the postmaster restarts the reconciler, the failed
# operation is recorded and retried.
o4=$owner_prefix-0000000004
ids=()
for i in 1 2 3 4; do
	ids+=("$(q "SELECT id FROM wsctl.create_workspace('$o4$(printf %02d "$i")', 'term-$i', '$WSCTL_TEST_IMAGE', 'RUNNING')")")
done
termed=$(acting_worker)
rp=$(worker_pid reconciler)
if [ -n "$termed" ]; then
	kill -TERM "$termed" 2>/dev/null; ok "an operation worker (pid $termed) sent SIGTERM while acting"
else
	not_ok "no acting operation worker was seen to terminate"
fi
kill -TERM "$rp" && ok "reconciler (pid $rp) sent SIGTERM"
check "the reconciler is restarted (new pid)" \
	wait_for 30 "SELECT pid IS NOT NULL AND pid <> $rp AND leader FROM wsctl.workers WHERE component = 'reconciler'"
check "all 4 converge to RUNNING" converged "$o4" 4
is "4 running containers, no duplicates" "$(containers_of "$o4")" 4/4

# 3. Immediate restart of PostgreSQL in the middle of a batch of 20.
o3=$owner_prefix-0000000003
q "SELECT wsctl.create_workspace(('$o3' || lpad(n::text, 2, '0'))::uuid, 'batch-' || n, '$WSCTL_TEST_IMAGE', 'RUNNING') FROM generate_series(1, 20) n" >/dev/null
wait_for 20 "SELECT count(*) > 0 FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$o3%' AND operation <> 'NONE'"
inflight=$(q "SELECT count(*) FILTER (WHERE operation <> 'NONE') || ' in flight, ' || count(*) FILTER (WHERE observed_status = 'RUNNING') || ' running' FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$o3%'")
diag "restarting PostgreSQL (immediate) with $inflight"
check "pg_ctl restart -m immediate" runuser -u postgres -- "$pg_ctl" -D "$WSCTL_PGDATA" -m immediate -w -t 60 restart -l "$WSCTL_PGDATA/../postgres.log" -s
check "workers are back after the restart" wait_workers
check "all 20 converge to RUNNING" converged "$o3" 20
is "20 running containers, no duplicates" "$(containers_of "$o3")" 20/20
is "no workspace is left with an operation" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE operation <> 'NONE' AND deleted_at IS NULL AND owner_user_id::text LIKE '$owner_prefix%'")" 0
is "no operation worker is left" "$(q "SELECT count(*) FROM wsctl.workers WHERE workspace_id IS NOT NULL")" 0
is "no workspace ended in ERROR" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE observed_status = 'ERROR' AND owner_user_id::text LIKE '$owner_prefix%'")" 0

for o in $(q "SELECT DISTINCT owner_user_id FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$owner_prefix%' AND deleted_at IS NULL"); do
	cleanup_owner "$o"
done
done_testing
