#!/usr/bin/env bash
# 03_delete.t: delete_workspace from RUNNING, STANDBY and PENDING (never
# provisioned). Each goes through operation DELETING and ends observed
# DELETED with operation NONE; Docker no longer has the container nor the
# volume; the row stays (soft delete: deleted_at set), leaves the live view,
# and the API answers WS404 for it (get, set_desired_state, delete again,
# recover, wake).
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0000-0000000a0003

container_absent() { ! container_exists "$1"; }
volume_absent() { ! volume_exists "$1"; }
# wait_deleted ID: observed DELETED, operation NONE, deleted_at set.
wait_deleted() {
	wait_for 30 "SELECT observed_status = 'DELETED' AND operation = 'NONE' AND deleted_at IS NOT NULL
	             FROM wsctl.workspaces WHERE id = '$1'"
}
# matches DESCRIPTION STRING REGEX
matches() {
	if [[ $2 =~ $3 ]]; then ok "$1"; else not_ok "$1"; diag "  got: '$2'"; diag "  expected to match: /$3/"; fi
}

# check_deleted LABEL ID OPS_BEFORE: everything that must hold once deleted.
check_deleted() {
	local l=$1 id=$2 before=$3
	check "$l: reaches observed DELETED with operation NONE" wait_deleted "$id"
	is "$l: operations end with DELETING then NONE" "$(history "$id" operation)" "$before DELETING NONE"
	matches "$l: observed path ends in DELETED" "$(history "$id" observed)" ' DELETED$'
	is "$l: the row stays, deleted_at set" "$(ws "$id" "deleted_at IS NOT NULL")" t
	is "$l: error columns clean, op_id cleared" \
		"$(ws "$id" "error_info IS NULL AND error_message IS NULL AND error_count = 0 AND op_id IS NULL")" t
	is "$l: gone from the live view wsctl.workspace_info" \
		"$(q "SELECT count(*) FROM wsctl.workspace_info WHERE id = '$id'")" 0
	is "$l: gone from list_workspaces(owner)" \
		"$(q "SELECT count(*) FROM wsctl.list_workspaces('$owner') WHERE id = '$id'")" 0
	check "$l: Docker: container ws-{id} is gone" container_absent "$id"
	check "$l: Docker: volume ws-{id}-home is gone" volume_absent "$id"
	is "$l: Docker: nothing labelled with the workspace is left" \
		"$(dk ps -a -q --filter "label=wsctl.workspace=$id" | wc -l) $(dk volume ls -q --filter "label=wsctl.workspace=$id" | wc -l)" "0 0"
	is "$l: get_workspace answers WS404" "$(sqlstate "SELECT wsctl.get_workspace('$id')")" WS404
	is "$l: set_desired_state answers WS404" \
		"$(sqlstate "SELECT wsctl.set_desired_state('$id', 'RUNNING')")" WS404
	is "$l: delete again answers WS404" "$(sqlstate "SELECT wsctl.delete_workspace('$id')")" WS404
	is "$l: recover_workspace answers WS404" "$(sqlstate "SELECT wsctl.recover_workspace('$id')")" WS404
	is "$l: wake_workspace answers WS404" "$(sqlstate "SELECT wsctl.wake_workspace('$id')")" WS404
}

# 1. From RUNNING.
id=$(create_ws $owner del-running RUNNING)
check "running: reaches RUNNING" wait_state "$id" RUNNING 30
check "running: Docker: container running before the delete" container_running "$id"
is "running: delete_workspace succeeds" "$(sqlstate "SELECT wsctl.delete_workspace('$id')")" OK
check_deleted running "$id" "NONE PROVISIONING NONE STARTING NONE"
# Between container removal and volume removal the HealthMonitor may see STANDBY.
matches "running: observed path RUNNING -> [STANDBY ->] DELETED" "$(history "$id" observed)" \
	'^PENDING STANDBY RUNNING (STANDBY )?DELETED$'
is "running: the DELETING claim was made while observed RUNNING" \
	"$(q "SELECT observed FROM public.it_history WHERE id = '$id' AND operation = 'DELETING' ORDER BY seq LIMIT 1")" RUNNING

# 2. From STANDBY.
id=$(create_ws $owner del-standby STANDBY)
check "standby: reaches STANDBY" wait_state "$id" STANDBY 30
check "standby: Docker: volume exists before the delete" volume_exists "$id"
is "standby: delete_workspace succeeds" "$(sqlstate "SELECT wsctl.delete_workspace('$id')")" OK
check_deleted standby "$id" "NONE PROVISIONING NONE"
is "standby: observed path STANDBY -> DELETED" "$(history "$id" observed)" "PENDING STANDBY DELETED"

# 3. From PENDING: never provisioned (desired PENDING), nothing in Docker.
id=$(create_ws $owner del-pending PENDING)
check "pending: observed PENDING by the HealthMonitor, no operation" \
	wait_for 10 "SELECT observed_status = 'PENDING' AND operation = 'NONE' AND observed_at IS NOT NULL
	             FROM wsctl.workspaces WHERE id = '$id'"
check "pending: Docker: no volume was ever made" volume_absent "$id"
is "pending: delete_workspace succeeds" "$(sqlstate "SELECT wsctl.delete_workspace('$id')")" OK
check_deleted pending "$id" "NONE"
is "pending: observed path PENDING -> DELETED" "$(history "$id" observed)" "PENDING DELETED"

cleanup_owner $owner
done_testing
