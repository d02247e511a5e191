#!/usr/bin/env bash
# 12_crash_retry.t: a worker that dies counts as a failure on every
# attempt, retries included (issue 8, item 2). The operation worker of one
# workspace is killed with SIGKILL on each attempt (each kill makes the
# postmaster reinitialize shared memory, so the reconciler only finds an
# attempt without an outcome); the workspace must end in ERROR
# RetryExceeded after wsctl.max_retries retries instead of retrying forever.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0012-000000000001
max_retries=$(q "SELECT current_setting('wsctl.max_retries')")

trap 'reset_config wsctl.debug_operation_delay' EXIT
check "operation workers stay busy 3s after acting (a target to kill)" \
	set_config wsctl.debug_operation_delay 3s

id=$(create_ws $owner crash-loop STANDBY)
killed=0
for attempt in $(seq 1 $((max_retries + 1))); do
	pid=$(op_worker_pid "$id" 30)
	if [ -z "$pid" ]; then
		not_ok "attempt $attempt: an acting worker was found"
		break
	fi
	kill -KILL "$pid" && killed=$((killed + 1))
	ok "attempt $attempt: its worker (pid $pid) killed with SIGKILL"
	check "  the server and its workers are back" wait_leaders 60
	if [ "$attempt" -le "$max_retries" ]; then
		check "  the lost attempt counts: error_count = $attempt" \
			wait_for 20 "SELECT error_count = $attempt AND NOT coalesce((error_info ->> 'is_terminal')::bool, false)
			               FROM wsctl.workspaces WHERE id = '$id'"
	fi
done
check "after $killed kills the workspace is in ERROR RetryExceeded" \
	wait_for 30 "SELECT error_info ->> 'reason' = 'RetryExceeded' AND (error_info ->> 'is_terminal')::bool
	               FROM wsctl.workspaces WHERE id = '$id'"
check "  and is observed ERROR" wait_for 10 "SELECT observed_status = 'ERROR' FROM wsctl.workspaces WHERE id = '$id'"
is "  the last failure was a vanished worker" \
	"$(ws "$id" "error_info -> 'context' ->> 'last_reason' || ' ' || (error_info -> 'context' ->> 'code')")" \
	"Unreachable WORKER_VANISHED"
is "  every attempt is recorded as vanished" \
	"$(q "SELECT string_agg(outcome, ',' ORDER BY attempt) FROM wsctl.operation_attempts WHERE workspace_id = '$id'")" \
	"$(printf 'vanished%.0s,' $(seq 1 $((max_retries + 1))) | sed 's/,$//')"
is "  no worker is retrying it" "$(q "SELECT count(*) FROM wsctl.workers WHERE workspace_id = '$id'")" 0

# Recovery clears the error; the next attempt, left alone, succeeds.
reset_config wsctl.debug_operation_delay
q "SELECT wsctl.recover_workspace('$id')" >/dev/null
check "after recover_workspace the workspace is provisioned" wait_state "$id" STANDBY 30

cleanup_owner $owner
done_testing
