#!/usr/bin/env bash
# 30_remote_docker.t: the second instance backend (issue 12, "backends behind
# one C interface"). A second real dockerd stands for another node; with
# wsctl.remote_docker_host pointing at it, workspaces created with
# instance_backend 'remote-docker' live there (container and volume), go
# through their whole lifecycle (archive to S3 and restore included) through
# the same operation worker and HealthMonitor code, and never touch the local
# daemon, nor do local workspaces touch it. The HealthMonitor observes each
# site with its own two calls, and one site's outage neither stops the other
# site's observation nor puts the other site's workspaces in error.
# Needs WSCTL_TEST_TMP (test/docker.sh) and the S3 server (test/rgw.sh).
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
owner=00000000-0000-0000-0030-000000000001
node=${WSCTL_TEST_TMP:?}/docker-node2
marker=wsctl-cluster-$(q "SELECT system_identifier FROM pg_control_system()")

finish() {
	"$here/../docker.sh" resume "$node" >/dev/null 2>&1 || true
	cleanup_owner $owner >/dev/null 2>&1 || true
	reset_config wsctl.remote_docker_host
	"$here/../docker.sh" stop "$node" >/dev/null 2>&1 || true
}
trap finish EXIT

node_dk() { timeout 60 docker -H "unix://$node/docker.sock" "$@"; }
on_node() { node_dk inspect "$1" >/dev/null 2>&1; }
node_volume() { node_dk volume inspect "$1" >/dev/null 2>&1; }
create_on() {	# create_on BACKEND NAME DESIRED
	q "SELECT id FROM wsctl.create_workspace('$owner', '$2', '$WSCTL_TEST_IMAGE', '$3',
	                                         instance_backend => '$1')"
}
heartbeat() { q "SELECT coalesce(observed_at::text, 'none') FROM wsctl.health_observation WHERE instance_backend = '$1'"; }

# --- not enabled: refused, clearly -------------------------------------------
is "remote-docker is refused while wsctl.remote_docker_host is empty (0A000)" \
	"$(sqlstate "SELECT wsctl.create_workspace('$owner', 'r0', '$WSCTL_TEST_IMAGE', 'STANDBY', instance_backend => 'remote-docker')")" 0A000
is "k8s, designed but not built, is refused (0A000)" \
	"$(sqlstate "SELECT wsctl.create_workspace('$owner', 'k0', '$WSCTL_TEST_IMAGE', 'STANDBY', instance_backend => 'k8s')")" 0A000
is "  and the message names the backend" \
	"$(psql -X -A -t -q -c "SELECT wsctl.create_workspace('$owner', 'k0', '$WSCTL_TEST_IMAGE', instance_backend => 'k8s')" 2>&1 | grep -c 'instance backend k8s is not available')" 1
is "the API role may pass instance_backend (the argument is granted)" \
	"$(q "SELECT has_function_privilege('wsctl_api', 'wsctl.create_workspace(uuid, text, text, wsctl.status, text, text, int, int, wsctl.instance_backend)', 'EXECUTE')")" t

# --- a second node --------------------------------------------------------------
check "a second dockerd (the other node) starts on its own socket" "$here/../docker.sh" start "$node"
check "wsctl.remote_docker_host points at it" set_config wsctl.remote_docker_host "unix://$node/docker.sock"
check "the HealthMonitor observes the new site: its heartbeat row appears" \
	wait_for 20 "SELECT observed_at IS NOT NULL FROM wsctl.health_observation WHERE instance_backend = 'remote-docker'"
check "  and plants this cluster's marker volume there" node_volume "$marker"
check "  two calls per site per tick: 4 Docker calls" \
	wait_for 20 "SELECT docker_calls_last_tick = 4 FROM wsctl.workers WHERE component = 'health_monitor'"

l=$(create_ws $owner local-1 RUNNING)
r=$(create_on remote-docker remote-1 RUNNING)
is "the remote workspace records its backend" "$(ws "$r" "instance_backend || '/' || storage_backend")" "remote-docker/docker-volume"
check "both reach RUNNING" wait_for 60 "SELECT bool_and(observed_status = 'RUNNING' AND operation = 'NONE') FROM wsctl.workspaces WHERE id IN ('$l', '$r')"
is "the remote container runs on the other node" "$(node_dk inspect -f '{{.State.Running}}' "ws-$r" 2>/dev/null)" true
check "  with its volume there" node_volume "ws-$r-home"
check "  and nothing of it on the local daemon" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$r' >/dev/null 2>&1 && ! docker -H '$DOCKER_HOST' volume inspect 'ws-$r-home' >/dev/null 2>&1"
check "the local workspace runs on the local daemon" container_running "$l"
check "  and nothing of it on the other node" bash -c "! docker -H 'unix://$node/docker.sock' inspect 'ws-$l' >/dev/null 2>&1"
is "the remote container carries wsctl's labels" "$(node_dk inspect -f '{{index .Config.Labels "wsctl.workspace"}}' "ws-$r")" "$r"

# --- the home through S3 and back, on the other node --------------------------------
node_dk exec "ws-$r" sh -c 'echo remote-home > /home/coder/proof && mkdir -p /home/coder/d && echo x > /home/coder/d/y'
is "a file is written into the remote home" "$(node_dk exec "ws-$r" cat /home/coder/proof)" remote-home
q "SELECT wsctl.set_desired_state('$r', 'PENDING')" >/dev/null
check "PENDING: the remote workspace is archived" wait_state "$r" PENDING 120
key=$(ws "$r" archive_key)
check "  its archive and meta are in the bucket ($key)" bash -c "[ -n '$key' ]"
check "  object" s3_exists "$key"
check "  meta" s3_exists "$key.meta"
check "  the volume is gone from the other node" bash -c "! docker -H 'unix://$node/docker.sock' volume inspect 'ws-$r-home' >/dev/null 2>&1"
check "  and the helper container too" bash -c "! docker -H 'unix://$node/docker.sock' inspect 'ws-$r-job' >/dev/null 2>&1"
q "SELECT wsctl.set_desired_state('$r', 'RUNNING')" >/dev/null
check "RUNNING: restored and started on the other node" wait_state "$r" RUNNING 120
is "  the home came back whole" "$(node_dk exec "ws-$r" cat /home/coder/proof /home/coder/d/y | tr '\n' ' ')" "remote-home x "
check "  nothing was restored onto the local daemon" bash -c "! docker -H '$DOCKER_HOST' volume inspect 'ws-$r-home' >/dev/null 2>&1"
is "the remote workspace's operations, in order" "$(history "$r" operation)" \
	"NONE PROVISIONING NONE STARTING NONE STOPPING NONE ARCHIVING NONE RESTORING NONE STARTING NONE"

# --- the HealthMonitor watches each site for its own workspaces -------------------------
mark=$(q "SELECT coalesce(max(seq), 0) FROM public.it_history")
node_dk rm -f "ws-$r" >/dev/null
check "a container removed behind wsctl's back on the other node is seen and started again" \
	wait_for 60 "SELECT EXISTS (SELECT 1 FROM public.it_history WHERE id = '$r' AND seq > $mark AND observed = 'STANDBY')"
check "  RUNNING again" wait_state "$r" RUNNING 60
check "  its container runs on the other node" bash -c "[ \"\$(docker -H 'unix://$node/docker.sock' inspect -f '{{.State.Running}}' 'ws-$r')\" = true ]"

# --- one site down: the other goes on ----------------------------------------------
check "the other node's dockerd stops (its state kept)" "$here/../docker.sh" pause "$node"
check "the HealthMonitor says the remote-docker site's tick was skipped" \
	wait_for 20 "SELECT last_error LIKE 'remote-docker: tick skipped%' FROM wsctl.workers WHERE component = 'health_monitor'"
remote_beat=$(heartbeat remote-docker)
local_beat=$(heartbeat local-docker)
check "  the local site's heartbeat goes on" \
	wait_for 20 "SELECT observed_at > '$local_beat' FROM wsctl.health_observation WHERE instance_backend = 'local-docker'"
is "  the remote site's heartbeat stopped" "$(heartbeat remote-docker)" "$remote_beat"
q "SELECT wsctl.set_desired_state('$l', 'STANDBY')" >/dev/null
q "SELECT wsctl.set_desired_state('$r', 'STANDBY')" >/dev/null
check "a local stop completes while the other node is down" wait_state "$l" STANDBY 60
check "the remote stop waits for its daemon: an outage, not a failure" \
	wait_for 30 "SELECT error_info -> 'context' ->> 'code' = 'DOCKER_UNAVAILABLE' AND error_count = 0 FROM wsctl.workspaces WHERE id = '$r'"
is "  the remote workspace is not in ERROR" "$(ws "$r" observed_status)" RUNNING
check "the other node's dockerd comes back" "$here/../docker.sh" resume "$node"
check "  the remote stop completes" wait_state "$r" STANDBY 90
check "  its container is gone from the other node, its volume kept" \
	bash -c "! docker -H 'unix://$node/docker.sock' inspect 'ws-$r' >/dev/null 2>&1 && docker -H 'unix://$node/docker.sock' volume inspect 'ws-$r-home' >/dev/null 2>&1"
is "no workspace of this test is in ERROR" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND observed_status = 'ERROR'")" 0

# --- delete, and disabling the backend -------------------------------------------
q "SELECT wsctl.delete_workspace('$r')" >/dev/null
check "the remote workspace is deleted" wait_for 60 "SELECT observed_status = 'DELETED' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$r'"
check "  its volume is gone from the other node" bash -c "! docker -H 'unix://$node/docker.sock' volume inspect 'ws-$r-home' >/dev/null 2>&1"
cleanup_owner $owner
check "wsctl.remote_docker_host emptied" set_config wsctl.remote_docker_host ""
is "remote-docker is refused again" \
	"$(sqlstate "SELECT wsctl.create_workspace('$owner', 'r9', '$WSCTL_TEST_IMAGE', 'STANDBY', instance_backend => 'remote-docker')")" 0A000
check "the HealthMonitor is back to 2 Docker calls per tick" \
	wait_for 20 "SELECT docker_calls_last_tick = 2 FROM wsctl.workers WHERE component = 'health_monitor'"

done_testing
