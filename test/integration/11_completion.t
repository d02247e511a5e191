#!/usr/bin/env bash
# 11_completion.t: an operation completes only when its worker reported
# success AND the observation equals the target (issue 8, item 1).
# wsctl.debug_operation_delay keeps each operation worker busy for 4 s after
# it has acted: Docker already shows the result (the HealthMonitor observes
# the target state) but the worker has not reported, so the operation must
# stay in progress until it does.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0011-000000000001
delay_s=4

trap 'reset_config wsctl.debug_operation_delay' EXIT
check "operation workers report ${delay_s}s after acting" set_config wsctl.debug_operation_delay "${delay_s}s"

# held ID OBSERVED OPERATION: seconds during which the workspace was observed
# OBSERVED while OPERATION was still in progress (from the history table).
held() {
	q "SELECT coalesce(extract(epoch FROM max(h.at) FILTER (WHERE h.operation = 'NONE' AND h.observed = '$2')
	                                - min(h.at) FILTER (WHERE h.observed = '$2' AND h.operation = '$3')), -1)::numeric(6,1)
	     FROM public.it_history h WHERE h.id = '$1'"
}

id=$(create_ws $owner slow-worker STANDBY)
check "PROVISIONING: the volume is observed (STANDBY) while the worker is busy" \
	wait_for 20 "SELECT observed_status = 'STANDBY' AND operation = 'PROVISIONING' FROM wsctl.workspaces WHERE id = '$id'"
check "  and the worker is still acting" \
	wait_for 5 "SELECT count(*) = 1 FROM wsctl.workers WHERE workspace_id = '$id' AND component LIKE 'operation PROVISIONING (acting)'"
check "  two more HealthMonitor ticks later the operation is still PROVISIONING" \
	bash -c "t=\$(psql -X -A -t -c \"SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'\");
	         for i in \$(seq 100); do
	           n=\$(psql -X -A -t -c \"SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'\");
	           [ \"\$n\" -ge \$((t + 2)) ] && break; sleep 0.05; done
	         [ \"\$(psql -X -A -t -c \"SELECT operation FROM wsctl.workspaces WHERE id = '$id'\")\" = PROVISIONING ]"
check "PROVISIONING completes once the worker reports" wait_state "$id" STANDBY 20
held_s=$(held "$id" STANDBY PROVISIONING)
check "  it was observed STANDBY for ${held_s}s before completing (>= $((delay_s - 2))s)" \
	test "$(echo "$held_s >= $((delay_s - 2))" | bc)" = 1

q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "STARTING: the container is observed RUNNING while the worker is busy" \
	wait_for 20 "SELECT observed_status = 'RUNNING' AND operation = 'STARTING' FROM wsctl.workspaces WHERE id = '$id'"
check "STARTING completes once the worker reports" wait_state "$id" RUNNING 20
held_s=$(held "$id" RUNNING STARTING)
check "  it was observed RUNNING for ${held_s}s before completing (>= $((delay_s - 2))s)" \
	test "$(echo "$held_s >= $((delay_s - 2))" | bc)" = 1
is "each completed operation had one successful attempt, and none is left" \
	"$(q "SELECT count(*) FROM wsctl.operation_attempts WHERE workspace_id = '$id'")" 0

# A worker that fails never completes an operation, even when the resources
# look right: STOPPING whose worker is terminated after acting.
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
pid=$(op_worker_pid "$id")
check "STOPPING: the container is gone while the worker is busy" \
	wait_for 10 "SELECT observed_status = 'STANDBY' AND operation = 'STOPPING' FROM wsctl.workspaces WHERE id = '$id'"
is "  the worker (pid $pid) is terminated before it reports" \
	"$(q "SELECT pg_terminate_backend($pid)")" t
check "  the attempt is recorded as failed, not as a completion" \
	wait_for 10 "SELECT outcome = 'failed' FROM wsctl.operation_attempts WHERE workspace_id = '$id' AND attempt = 1"
is "  and error_count counts it" "$(ws "$id" error_count)" 1
check "  the retry's worker succeeds and STOPPING completes" wait_state "$id" STANDBY 30
is "  errors are cleared after completion" "$(ws "$id" "coalesce(error_info::text, 'none')")" none

cleanup_owner $owner
done_testing
