#!/usr/bin/env bash
# 15_wrong_daemon.t: a listing from another (empty) Docker daemon is not
# believed (issue 8, item 5). A second real dockerd is started on another
# socket and wsctl.docker_host is pointed at it: the HealthMonitor finds no
# marker volume of this cluster there, writes nothing, and says so in
# wsctl.workers.last_error; no workspace goes to ERROR. Pointed back, it
# observes as before. Needs WSCTL_TEST_TMP (test/docker.sh).
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
owner=00000000-0000-0000-0015-000000000001
other=${WSCTL_TEST_TMP:?}/docker2
own_host=$(q "SELECT current_setting('wsctl.docker_host')")
marker=wsctl-cluster-$(q "SELECT system_identifier FROM pg_control_system()")

finish() {
	reset_config wsctl.docker_host
	"$here/../docker.sh" stop "$other" >/dev/null 2>&1 || true
}
trap finish EXIT

a=$(create_ws $owner daemon-a RUNNING)
b=$(create_ws $owner daemon-b STANDBY)
check "a RUNNING" wait_state "$a" RUNNING 30
check "b STANDBY" wait_state "$b" STANDBY 30
check "wsctl's daemon carries the marker volume $marker" dk volume inspect "$marker"
is "  labelled wsctl.marker" "$(dk volume inspect -f '{{index .Labels "wsctl.marker"}}' "$marker")" true

check "a second dockerd starts on another socket" "$here/../docker.sh" start "$other"
other_dk() { docker -H "unix://$other/docker.sock" "$@"; }
mark=$(q "SELECT coalesce(max(seq), 0) FROM public.it_history")
switched_at=$(q "SELECT clock_timestamp()")
check "wsctl.docker_host points at the other daemon" set_config wsctl.docker_host "unix://$other/docker.sock"
check "the HealthMonitor reports the missing marker in wsctl.workers.last_error" \
	wait_for 20 "SELECT last_error LIKE '%does not carry this cluster''s marker volume $marker%'
	               AND last_error_at > '$switched_at' FROM wsctl.workers WHERE component = 'health_monitor'"
# From here on every tick sees the other daemon (the reload is done).
ticks=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'")
# observed_at as the API shows it (wsctl._observed_at: the row's own, or the heartbeat)
seen=$(q "SELECT max(observed_at) FROM wsctl.workspace_info WHERE owner_user_id = '$owner'")
check "  it keeps ticking (5 more ticks)" \
	wait_for 20 "SELECT ticks >= $ticks + 5 FROM wsctl.workers WHERE component = 'health_monitor'"
is "  nothing was written: no status changed" \
	"$(q "SELECT count(*) FROM public.it_history h JOIN wsctl.workspaces w USING (id)
	       WHERE h.seq > $mark AND w.owner_user_id = '$owner'")" 0
is "  no workspace is in ERROR" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND (observed_status = 'ERROR' OR error_info IS NOT NULL)")" 0
is "  observed_at did not move (nor the heartbeat)" \
	"$(q "SELECT max(observed_at) FROM wsctl.workspace_info WHERE owner_user_id = '$owner'")" "$seen"
is "  no marker was planted on the other daemon" \
	"$(other_dk volume ls -q --filter label=wsctl.marker=true | wc -l)" 0

back_at=$(q "SELECT clock_timestamp()")
check "wsctl.docker_host points back at wsctl's daemon" set_config wsctl.docker_host "$own_host"
check "observations resume" \
	wait_for 20 "SELECT bool_and(observed_at > '$back_at') FROM wsctl.workspace_info WHERE owner_user_id = '$owner'"
is "a is RUNNING and b STANDBY, as before" \
	"$(q "SELECT string_agg(observed_status::text || '/' || operation, ' ' ORDER BY name) FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND deleted_at IS NULL")" \
	"RUNNING/NONE STANDBY/NONE"
check "a's container still runs" container_running "$a"
is "no error on any workspace" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND error_info IS NOT NULL")" 0

cleanup_owner $owner
done_testing
