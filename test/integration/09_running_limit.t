#!/usr/bin/env bash
# 09_running_limit.t: the per-user running limit (wsctl.max_running_per_user
# = 2) against the real reconciler and Docker.
#
# Five STANDBY workspaces of one user are asked to run at once from five
# concurrent sessions: exactly 2 requests succeed and 3 get WS429. While the
# reconciler starts the winners, Docker's own list of running containers
# (and the table's claims: observed RUNNING or operation STARTING) is
# sampled in a loop, and never shows more than 2 of them. When a winner is
# stopped, a refused workspace can be started and reaches RUNNING, still
# with never more than 2 running.
#
# The limit is not changed by this test: it is 2 by default and in
# test/integration/postgresql.conf, and the test checks with SHOW (the API
# reads it in the calling session) and pg_settings (the value from the
# configuration files, which the workers use) that it is 2.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0000-0000000a0009

work=$(mktemp -d)
samplers=()
stop_samplers() {
	rm -f "$work/sampling"
	for p in "${samplers[@]}"; do wait "$p" 2>/dev/null; done
	samplers=()
}
trap 'stop_samplers; rm -rf "$work"' EXIT

# running_in_docker: how many of this test's workspaces Docker says run.
running_in_docker() {
	dk ps --filter label=wsctl.managed=true --format '{{.Label "wsctl.workspace"}}' |
		grep -c -x -F -f "$work/ids"
}
max_of() { sort -n "$1" | tail -1; }

is "SHOW wsctl.max_running_per_user is 2" "$(q "SHOW wsctl.max_running_per_user")" 2
is "pg_settings (the workers' configuration) says 2" \
	"$(q "SELECT reset_val FROM pg_settings WHERE name = 'wsctl.max_running_per_user'")" 2
global=$(q "SHOW wsctl.max_running_global")
busy=$(q "SELECT count(*) FROM wsctl.workspaces WHERE (deleted_at IS NULL AND desired_state = 'RUNNING')
          OR observed_status = 'RUNNING' OR operation = 'STARTING'")
diag "wsctl.max_running_global = $global, running-slot claims of other tests now: $busy"
check "the global limit leaves room for 2 more" test $((busy + 2)) -le "$global"

ids=()
for n in 1 2 3 4 5; do ids+=("$(create_ws $owner "limit-$n" STANDBY)"); done
printf '%s\n' "${ids[@]}" > "$work/ids"
in_list=$(printf "'%s'," "${ids[@]}"); in_list=${in_list%,}
check "5 workspaces created" test "$(grep -c . "$work/ids")" -eq 5
check "all 5 reach STANDBY" wait_for 60 "SELECT count(*) = 5 FROM wsctl.workspaces
	WHERE id IN ($in_list) AND observed_status = 'STANDBY' AND operation = 'NONE'"
is "Docker: none of them runs yet" "$(running_in_docker)" 0

# Samplers: Docker's running containers, and the table's running claims.
touch "$work/sampling"
( while [ -e "$work/sampling" ]; do running_in_docker >> "$work/docker_samples"; sleep 0.05; done ) &
samplers+=($!)
( while [ -e "$work/sampling" ]; do
	echo "SELECT count(*) FROM wsctl.workspaces WHERE id IN ($in_list)
	      AND (observed_status = 'RUNNING' OR operation = 'STARTING');"; sleep 0.05
  done ) | psql -X -A -t -q > "$work/db_samples" 2>&1 &
samplers+=($!)
sampling_start=$SECONDS

# Five concurrent requests, released together.
for n in 0 1 2 3 4; do
	( while [ ! -e "$work/go" ]; do sleep 0.01; done
	  sqlstate "SELECT wsctl.set_desired_state('${ids[$n]}', 'RUNNING')" > "$work/result.$n" ) &
	pids+=($!)
done
touch "$work/go"
for p in "${pids[@]}"; do wait "$p"; done
results=$(cat "$work"/result.* | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
diag "outcomes: $results"
is "exactly 2 requests succeed" "$(cat "$work"/result.* | grep -c -x OK)" 2
is "exactly 3 requests get WS429" "$(cat "$work"/result.* | grep -c -x WS429)" 3
winners=(); refused=()
for n in 0 1 2 3 4; do
	case $(cat "$work/result.$n") in OK) winners+=("${ids[$n]}") ;; WS429) refused+=("${ids[$n]}") ;; esac
done
is "desired RUNNING only for the 2 winners" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE id IN ($in_list) AND desired_state = 'RUNNING'")" 2

detail=$(psql -X -A -t -q -v VERBOSITY=verbose -c "SELECT wsctl.set_desired_state('${refused[0]}', 'RUNNING')" 2>&1 |
	sed -n 's/^DETAIL:  //p')
diag "WS429 detail: $detail"
is "the WS429 DETAIL says per_user, current 2, max 2, and names the 2 winners" \
	"$(q "SELECT (d ->> 'limit_type') || ' ' || (d ->> 'current') || ' ' || (d ->> 'max') || ' '
	             || (SELECT string_agg(x ->> 'id', ',' ORDER BY x ->> 'id') FROM jsonb_array_elements(d -> 'running_workspaces') x)
	      FROM (SELECT \$j\$$detail\$j\$::jsonb AS d) s")" \
	"per_user 2 2 $(printf '%s\n' "${winners[@]}" | sort | paste -sd,)"

for w in "${winners[@]}"; do
	check "winner ${w:0:8} reaches RUNNING" wait_state "$w" RUNNING 60
	check "Docker: winner ${w:0:8} is running" container_running "$w"
done
for r in "${refused[@]}"; do
	is "refused ${r:0:8} stays STANDBY (desired STANDBY, no operation)" \
		"$(ws "$r" "observed_status || ' ' || desired_state || ' ' || operation")" "STANDBY STANDBY NONE"
done

# Keep sampling for at least 5 s and 50 samples.
enough() { [ $((SECONDS - sampling_start)) -ge 5 ] && [ "$(grep -c . "$work/docker_samples")" -ge 50 ]; }
check "sampled for >= 5 s and >= 50 times" wait_cmd 30 enough
phase1=$(grep -c . "$work/docker_samples")
max1=$(max_of "$work/docker_samples")
is "Docker: never more than 2 running over $phase1 samples while starting (max seen)" "$max1" 2
is "table: never more than 2 claims (RUNNING or STARTING) while starting (max seen)" \
	"$(max_of "$work/db_samples")" 2

# Stop one winner; a refused workspace can then be started.
is "stopping a winner succeeds" "$(sqlstate "SELECT wsctl.set_desired_state('${winners[0]}', 'STANDBY')")" OK
check "the stopped winner reaches STANDBY" wait_state "${winners[0]}" STANDBY 60
check "Docker: its container is gone" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-${winners[0]}' >/dev/null 2>&1"
is "a refused workspace can now be started" "$(sqlstate "SELECT wsctl.set_desired_state('${refused[0]}', 'RUNNING')")" OK
is "a second refused one still gets WS429" "$(sqlstate "SELECT wsctl.set_desired_state('${refused[1]}', 'RUNNING')")" WS429
check "the started one reaches RUNNING" wait_state "${refused[0]}" RUNNING 60
check "Docker: it is running" container_running "${refused[0]}"
is "container label wsctl.workspace" "$(container_label "${refused[0]}" wsctl.workspace)" "${refused[0]}"

stop_samplers
total=$(grep -c . "$work/docker_samples")
diag "docker samples: $total (phase 1: $phase1), table samples: $(grep -c . "$work/db_samples")"
is "Docker: never more than 2 running over all $total samples (max seen)" "$(max_of "$work/docker_samples")" 2
is "table: never more than 2 claims over all samples (max seen)" "$(max_of "$work/db_samples")" 2
is "Docker: 2 running in the end" "$(running_in_docker)" 2
is "table: 2 observed RUNNING in the end" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE id IN ($in_list) AND observed_status = 'RUNNING'")" 2

cleanup_owner $owner
done_testing
