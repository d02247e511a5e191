#!/usr/bin/env bash
# 16_outage_timeout.t: a Docker outage is not the workspace's failure
# (issue 8, item 6). dockerd is stopped for 20 s while a workspace is
# requested, with 8-second operation timeouts, 3 retries and a 1-second
# retry delay: without the outage rule it would end in Timeout or
# RetryExceeded. Its operation waits instead (error_message and
# wsctl.workers.last_error say so, error_count stays 0) and the workspace
# becomes RUNNING once dockerd is back. Needs WSCTL_DOCKER_DIR.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
owner=00000000-0000-0000-0016-000000000001
outage=20

finish() {
	"$here/../docker.sh" resume "$WSCTL_DOCKER_DIR" >/dev/null 2>&1 || true
	reset_config wsctl.timeout_provisioning wsctl.timeout_starting wsctl.max_retries wsctl.retry_delay
}
trap finish EXIT
check "WSCTL_DOCKER_DIR names the test engine" test -e "${WSCTL_DOCKER_DIR:-/nonexistent}/.wsctl-docker"
set_config wsctl.timeout_provisioning 8s && set_config wsctl.timeout_starting 8s &&
	set_config wsctl.max_retries 3 && set_config wsctl.retry_delay 1s
check "timeouts 8s, 3 retries, retry delay 1s" test $? = 0

check "dockerd stopped" "$here/../docker.sh" pause "$WSCTL_DOCKER_DIR"
down_at=$SECONDS
id=$(create_ws $owner outage RUNNING)
check "the operation waits for Docker (error_message)" \
	wait_for 15 "SELECT operation = 'PROVISIONING' AND error_message LIKE 'waiting for Docker:%'
	               FROM wsctl.workspaces WHERE id = '$id'"
check "  and says so in wsctl.workers.last_error" \
	wait_for 10 "SELECT last_error LIKE '%$id: waiting for Docker:%' FROM wsctl.workers WHERE component = 'reconciler'"
worst=0
while [ $((SECONDS - down_at)) -lt $outage ]; do	# the outage itself, watched
	state=$(q "SELECT coalesce((error_info ->> 'is_terminal')::bool, false) || ' ' || error_count FROM wsctl.workspaces WHERE id = '$id'")
	[ "${state% *}" = true ] && worst=terminal
	[ "$worst" = 0 ] && [ "${state#* }" != 0 ] && worst="error_count ${state#* }"
	sleep 0.5
done
is "during ${outage}s of outage: never terminal, error_count stayed 0" "$worst" 0
is "  the workspace is still PROVISIONING" "$(ws "$id" operation)" PROVISIONING
check "  attempts were made and found Docker unavailable" \
	test "$(q "SELECT count(*) FROM wsctl.operation_attempts WHERE workspace_id = '$id' AND code = 'DOCKER_UNAVAILABLE'")" -ge 3

check "dockerd back" "$here/../docker.sh" resume "$WSCTL_DOCKER_DIR"
check "the workspace becomes RUNNING" wait_state "$id" RUNNING 60
is "no Timeout or RetryExceeded was ever recorded" \
	"$(q "SELECT count(*) FROM public.it_history WHERE id = '$id' AND error_reason IN ('Timeout', 'RetryExceeded')")" 0
is "errors are cleared" "$(ws "$id" "error_count || coalesce(error_info::text, '')")" 0
check "its container runs" container_running "$id"

finish
cleanup_owner $owner
done_testing
