#!/usr/bin/env bash
# 05_container_removed.t: the container of a RUNNING workspace (desired
# RUNNING) disappears or stops behind wsctl's back.
#
#  1. `docker rm -f ws-{id}`: the HealthMonitor observes STANDBY (the volume
#     is still there), the reconciler starts the workspace again: RUNNING in
#     a new container, on the same volume, with the file written before.
#  2. `docker stop ws-{id}`: the container exists but does not run, which is
#     STANDBY (I25); STARTING removes it and creates a new one: RUNNING with
#     exactly one container.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0000-0000000a0005

# matches DESCRIPTION STRING REGEX
matches() {
	if [[ $2 =~ $3 ]]; then ok "$1"; else not_ok "$1"; diag "  got: '$2'"; diag "  expected to match: /$3/"; fi
}
# history_since ID COLUMN SEQ: like lib.sh's history, only it_history rows after SEQ.
history_since() {
	q "SELECT string_agg(v, ' ' ORDER BY seq) FROM (
	     SELECT seq, $2::text AS v, lag($2::text) OVER (ORDER BY seq) AS prev
	       FROM public.it_history WHERE id = '$1' AND seq > $3) h
	   WHERE prev IS DISTINCT FROM v"
}
mark() { q "SELECT coalesce(max(seq), 0) FROM public.it_history"; }
# observed_since ID STATUS SEQ: SQL true once the HealthMonitor wrote STATUS after SEQ.
observed_since() {
	echo "SELECT EXISTS (SELECT 1 FROM public.it_history WHERE id = '$1' AND seq > $3 AND observed = '$2')"
}
container_id() { dk inspect -f '{{.Id}}' "ws-$1" 2>/dev/null; }
volume_created() { dk volume inspect -f '{{.CreatedAt}}' "ws-$1-home" 2>/dev/null; }
containers_of() { dk ps -a -q --filter "label=wsctl.workspace=$1" | wc -l; }
container_stopped() { [ "$(dk inspect -f '{{.State.Running}}' "ws-$1" 2>/dev/null)" = false ]; }

id=$(create_ws $owner container-removed RUNNING)
check "it reaches RUNNING" wait_state "$id" RUNNING 30
check "Docker: container running" container_running "$id"
dk exec "ws-$id" sh -c 'echo survives-container-loss > /home/coder/proof.txt'
is "a file is written into /home/coder" "$(dk exec "ws-$id" cat /home/coder/proof.txt 2>&1)" survives-container-loss
vol=$(volume_created "$id")
c1=$(container_id "$id")

# 1. The container is removed.
m=$(mark)
dk rm -f "ws-$id" >/dev/null
check "rm: Docker: the container is gone" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$id' >/dev/null 2>&1"
check "rm: the HealthMonitor observes STANDBY" wait_for 30 "$(observed_since "$id" STANDBY "$m")"
check "rm: the reconciler brings it back to RUNNING" wait_state "$id" RUNNING 30
matches "rm: observed RUNNING -> STANDBY -> RUNNING" "$(history_since "$id" observed "$m")" '^(RUNNING )?STANDBY RUNNING$'
matches "rm: operation STARTING ran again" "$(history_since "$id" operation "$m")" '^(NONE )?STARTING NONE$'
is "rm: no error on the way" \
	"$(q "SELECT count(*) FROM public.it_history WHERE id = '$id' AND seq > $m AND error_reason IS NOT NULL")" 0
is "rm: desired_state still RUNNING, error_count 0" "$(ws "$id" "desired_state || ' ' || error_count")" "RUNNING 0"
check "rm: Docker: a container is running" container_running "$id"
c2=$(container_id "$id")
check "rm: Docker: it is a new container" test -n "$c2" -a "$c2" != "$c1"
is "rm: Docker: exactly one container for the workspace" "$(containers_of "$id")" 1
is "rm: container label wsctl.workspace" "$(container_label "$id" wsctl.workspace)" "$id"
is "rm: container label wsctl.managed" "$(container_label "$id" wsctl.managed)" true
is "rm: Docker: the same volume is kept (same CreatedAt)" "$(volume_created "$id")" "$vol"
is "rm: the file written before is still there" \
	"$(dk exec "ws-$id" cat /home/coder/proof.txt 2>&1)" survives-container-loss

# 2. The container is stopped (it exists, it does not run).
m=$(mark)
dk stop -t 1 "ws-$id" >/dev/null
check "stop: Docker: the container exists and is not running" container_stopped "$id"
check "stop: the HealthMonitor observes STANDBY" wait_for 30 "$(observed_since "$id" STANDBY "$m")"
check "stop: the reconciler brings it back to RUNNING" wait_state "$id" RUNNING 30
matches "stop: observed RUNNING -> STANDBY -> RUNNING" "$(history_since "$id" observed "$m")" '^(RUNNING )?STANDBY RUNNING$'
matches "stop: operation STARTING ran again" "$(history_since "$id" operation "$m")" '^(NONE )?STARTING NONE$'
is "stop: no error on the way" \
	"$(q "SELECT count(*) FROM public.it_history WHERE id = '$id' AND seq > $m AND error_reason IS NOT NULL")" 0
check "stop: Docker: a container is running" container_running "$id"
c3=$(container_id "$id")
check "stop: Docker: the stopped container was replaced by a new one" test -n "$c3" -a "$c3" != "$c2"
is "stop: Docker: exactly one container for the workspace (running or not)" "$(containers_of "$id")" 1
is "stop: Docker: the same volume is kept (same CreatedAt)" "$(volume_created "$id")" "$vol"
is "stop: the file written before is still there" \
	"$(dk exec "ws-$id" cat /home/coder/proof.txt 2>&1)" survives-container-loss
is "stop: the volume is mounted at /home/coder" \
	"$(dk inspect -f '{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}' "ws-$id")" "ws-$id-home:/home/coder"

cleanup_owner $owner
done_testing
