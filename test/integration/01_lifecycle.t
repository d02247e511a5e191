#!/usr/bin/env bash
# 01_lifecycle.t: create (desired RUNNING) -> PROVISIONING -> STARTING ->
# RUNNING, with Docker's own view checked; a file written into /home/coder
# survives RUNNING -> STANDBY -> RUNNING (scenarios 1 and 2 of issue 3).
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0000-0000000a0001

id=$(create_ws $owner lifecycle RUNNING)
check "create returns an id" test -n "$id"
check "it reaches RUNNING with no operation left" wait_state "$id" RUNNING 30
is "observed path PENDING -> STANDBY -> RUNNING" "$(history "$id" observed)" "PENDING STANDBY RUNNING"
is "operations PROVISIONING then STARTING" "$(history "$id" operation)" "NONE PROVISIONING NONE STARTING NONE"
ops=$(q "SELECT string_agg(DISTINCT operation::text, ',') FROM wsctl.workspaces WHERE id = '$id'")
is "operation is NONE once RUNNING" "$ops" NONE
is "error_count is 0" "$(ws "$id" error_count)" 0
is "op_id is cleared after completion" "$(ws "$id" "op_id IS NULL")" t
check "Docker: container ws-{id} is running" container_running "$id"
check "Docker: volume ws-{id}-home exists" volume_exists "$id"
is "container label wsctl.managed" "$(container_label "$id" wsctl.managed)" true
is "container label wsctl.workspace" "$(container_label "$id" wsctl.workspace)" "$id"
is "volume label wsctl.managed" "$(volume_label "$id" wsctl.managed)" true
is "volume label wsctl.workspace" "$(volume_label "$id" wsctl.workspace)" "$id"
is "network mode is none" "$(dk inspect -f '{{.HostConfig.NetworkMode}}' "ws-$id")" none
is "the volume is mounted at /home/coder" \
	"$(dk inspect -f '{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}' "ws-$id")" "ws-$id-home:/home/coder"

dk exec "ws-$id" sh -c 'echo kept-across-standby > /home/coder/proof.txt'
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
check "RUNNING -> STANDBY completes" wait_state "$id" STANDBY 30
check "Docker: the container is gone in STANDBY" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$id' >/dev/null 2>&1"
check "Docker: the volume is kept in STANDBY" volume_exists "$id"
is "last_access_at is set when STOPPING completes" "$(ws "$id" "last_access_at IS NOT NULL")" t

q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "STANDBY -> RUNNING completes" wait_state "$id" RUNNING 30
is "the file written before STANDBY is still there" \
	"$(dk exec "ws-$id" cat /home/coder/proof.txt 2>&1)" kept-across-standby
is "exactly one container for the workspace" \
	"$(dk ps -a -q --filter "label=wsctl.workspace=$id" | wc -l)" 1

cleanup_owner $owner
done_testing
