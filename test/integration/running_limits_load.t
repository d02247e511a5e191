#!/usr/bin/env bash
# running_limits_load.t: running limits hold under concurrency.
#
# pgbench fires set_desired_state(..., 'RUNNING') (and some releases) from
# 24 separate sessions at once, first for the workspaces of one user, then
# for workspaces spread over many users, while a sampler records the
# largest number of running-slot claims it ever sees. Neither the sample
# maximum nor the final count may exceed wsctl.max_running_per_user (per
# owner) or wsctl.max_running_global. Needs PGHOST/PGPORT/PGUSER.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
db=wsctl_load
pgbench=/usr/lib/postgresql/15/bin/pgbench
work=$(mktemp -d)
sampler_pid=
cleanup() {
	[ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }
q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

echo "1..15"
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q "CREATE EXTENSION wsctl"
q "ALTER DATABASE $db SET wsctl.max_running_per_user = 2"
q "ALTER DATABASE $db SET wsctl.max_running_global = 7"
q "CREATE TABLE load_ws (n int PRIMARY KEY, id uuid NOT NULL, owner uuid NOT NULL)"
q "CREATE TABLE load_outcome (outcome text NOT NULL)"
q "CREATE FUNCTION load_claim(k int, release bool) RETURNS text LANGUAGE plpgsql AS \$\$
   DECLARE ws uuid := (SELECT id FROM load_ws WHERE n = k); result text;
   BEGIN
     BEGIN
       PERFORM wsctl.set_desired_state(ws, CASE WHEN release THEN 'STANDBY' ELSE 'RUNNING' END::wsctl.status);
       result := CASE WHEN release THEN 'released' ELSE 'granted' END;
     EXCEPTION WHEN SQLSTATE 'WS429' THEN result := 'refused';
     END;
     INSERT INTO load_outcome VALUES (result);
     RETURN result;
   END \$\$"

# The largest per-owner and global claim counts seen so far, sampled in a
# loop for as long as the load runs.
sample_sql="SELECT coalesce(max(c), 0), coalesce(sum(c), 0) FROM (SELECT count(*) AS c FROM wsctl.workspaces WHERE (deleted_at IS NULL AND desired_state = 'RUNNING') OR observed_status = 'RUNNING' OR operation = 'STARTING' GROUP BY owner_user_id) s"
start_sampler() {	# one session, one fresh snapshot per statement
	yes "$sample_sql;" | psql -X -A -t -q -d "$db" > "$work/samples" 2>/dev/null &
	sampler_pid=$!
}
stop_sampler() { kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=; }

run_load() {	# $1 = number of workspaces, $2 = label
	q "TRUNCATE load_outcome"
	start_sampler
	"$pgbench" -n -c 24 -j 2 -t 60 -D workspaces="$1" -f "$here/../load/claim.sql" "$db" > "$work/pgbench.$2" 2>&1 || { cat "$work/pgbench.$2"; return 1; }
	stop_sampler
}

# One user, 12 workspaces: never more than 2 claims.
owner=00000000-0000-0000-0000-00000000f001
q "INSERT INTO load_ws SELECT n, (wsctl.create_workspace('$owner', 'load-' || n, 'busybox', 'STANDBY')).id, '$owner' FROM generate_series(1, 12) n"
if run_load 12 one_user; then ok "pgbench: 24 sessions x 60 requests for one user's workspaces"; else not_ok "pgbench one user"; fi
granted=$(q "SELECT count(*) FROM load_outcome WHERE outcome = 'granted'")
refused=$(q "SELECT count(*) FROM load_outcome WHERE outcome = 'refused'")
echo "# one user: granted=$granted refused=$refused samples=$(wc -l < "$work/samples")"
check "some requests were granted and some refused with WS429" "[ $granted -gt 0 ] && [ $refused -gt 0 ]"
max_user=$(cut -d'|' -f1 "$work/samples" | sort -n | tail -1)
check "per-user claims never exceeded 2 while sampled (max seen: $max_user)" "[ ${max_user:-99} -le 2 ]"
final=$(q "SELECT count(*) FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND desired_state = 'RUNNING'")
check "per-user claims after the load: $final <= 2" "[ $final -le 2 ]"
check "the sampler saw the limit reached (2)" "[ ${max_user:-0} -eq 2 ]"

# Many users, 40 workspaces over 20 owners, global limit 7.
q "UPDATE load_ws SET n = n + 1000"
q "INSERT INTO load_ws SELECT n, (wsctl.create_workspace(('00000000-0000-0000-0000-' || lpad(((n % 20) + 1)::text, 12, '0'))::uuid, 'many-' || n, 'busybox', 'STANDBY')).id, ('00000000-0000-0000-0000-' || lpad(((n % 20) + 1)::text, 12, '0'))::uuid FROM generate_series(1, 40) n"
if run_load 40 many_users; then ok "pgbench: 24 sessions x 60 requests over 20 users"; else not_ok "pgbench many users"; fi
granted=$(q "SELECT count(*) FROM load_outcome WHERE outcome = 'granted'")
refused=$(q "SELECT count(*) FROM load_outcome WHERE outcome = 'refused'")
echo "# many users: granted=$granted refused=$refused samples=$(wc -l < "$work/samples")"
check "some requests were granted and some refused with WS429" "[ $granted -gt 0 ] && [ $refused -gt 0 ]"
max_user=$(cut -d'|' -f1 "$work/samples" | sort -n | tail -1)
max_global=$(cut -d'|' -f2 "$work/samples" | sort -n | tail -1)
check "per-user claims never exceeded 2 while sampled (max seen: $max_user)" "[ ${max_user:-99} -le 2 ]"
check "global claims never exceeded 7 while sampled (max seen: $max_global)" "[ ${max_global:-99} -le 7 ]"
final=$(q "SELECT count(*) FROM wsctl.workspaces WHERE desired_state = 'RUNNING'")
check "global claims after the load: $final <= 7" "[ $final -le 7 ]"

# Striped slot locks (0.3.0): a global limit of 40 gives each of the 16
# stripes a quota of 2, so claims of owners in different stripes take one
# stripe each until the quotas fill, then every stripe. 120 workspaces over
# 60 owners whose uuids spread over all stripes; the global limit must hold.
q "ALTER DATABASE $db SET wsctl.max_running_global = 40"
q "SELECT count(wsctl.set_desired_state(id, 'STANDBY')) FROM wsctl.workspaces WHERE desired_state = 'RUNNING' AND deleted_at IS NULL" >/dev/null
q "UPDATE load_ws SET n = n + 10000"
q "INSERT INTO load_ws SELECT n, (wsctl.create_workspace(('00000000-0000-0000-0001-' || lpad(to_hex((n % 60) + 1), 12, '0'))::uuid, 'striped-' || n, 'busybox', 'STANDBY')).id, ('00000000-0000-0000-0001-' || lpad(to_hex((n % 60) + 1), 12, '0'))::uuid FROM generate_series(1, 120) n"
check "the 60 owners spread over all 16 stripes" "[ \"\$(q \"SELECT count(DISTINCT wsctl._slot_stripe(owner)) FROM load_ws WHERE n <= 120\")\" = 16 ]"
if run_load 120 striped; then ok "pgbench: 24 sessions x 60 requests over 60 owners in 16 stripes"; else not_ok "pgbench striped"; fi
granted=$(q "SELECT count(*) FROM load_outcome WHERE outcome = 'granted'")
refused=$(q "SELECT count(*) FROM load_outcome WHERE outcome = 'refused'")
echo "# striped: granted=$granted refused=$refused samples=$(wc -l < "$work/samples")"
check "some requests were granted and some refused with WS429" "[ $granted -gt 0 ] && [ $refused -gt 0 ]"
max_global=$(cut -d'|' -f2 "$work/samples" | sort -n | tail -1)
check "global claims never exceeded 40 while sampled (max seen: $max_global)" "[ ${max_global:-99} -le 40 ]"
final=$(q "SELECT count(*) FROM wsctl.workspaces WHERE desired_state = 'RUNNING'")
check "global claims after the load: $final <= 40" "[ $final -le 40 ]"

dropdb "$db"
exit $((failed > 0))
