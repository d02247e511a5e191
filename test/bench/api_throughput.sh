#!/usr/bin/env bash
# api_throughput.sh: calls per second of the SQL API with pgbench at 10,000
# workspaces (issue 12): get_workspace, set_desired_state to a state that
# needs no running slot (PENDING), and set_desired_state to RUNNING, which
# takes the running-slot lock, in a transaction rolled back so that nothing
# is actuated (the lock is held to the end of the transaction, as in a real
# call that commits). Owners are distinct per client, so the RUNNING line
# shows how much the one running-slot lock serialises unrelated owners.
# Targets: set_desired_state >= 2,000/s, get_workspace >= 10,000/s.
# Environment as for test/integration (lib.sh). N, CLIENTS, SECONDS_EACH
# override the defaults (10000, 4, 10).
. "$(dirname "$0")/../integration/lib.sh"
n=${N:-10000}
clients=${CLIENTS:-4}
secs=${SECONDS_EACH:-10}
prefix=00000000-0000-0000-0000-0000000ba
pgbench=$(pg_config --bindir)/pgbench
dir=$(mktemp -d /tmp/wsctl-api-bench.XXXXXX)
role=wsctl_bench_api

cleanup() {
	q "SET wsctl.component = 'admin';
	   DELETE FROM wsctl.workspaces WHERE owner_user_id::text LIKE '$prefix%';
	   DROP TABLE IF EXISTS public.bench_ids" >/dev/null
	q "DROP ROLE IF EXISTS $role" >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT
cleanup
dir=$(mktemp -d /tmp/wsctl-api-bench.XXXXXX)

q "SELECT count(wsctl.create_workspace(('$prefix' || lpad((g / 100)::text, 3, '0'))::uuid,
                                       'api-' || g, '$WSCTL_TEST_IMAGE', 'PENDING'))
     FROM generate_series(0, $n - 1) g" >/dev/null
q "CREATE TABLE public.bench_ids AS
     SELECT (row_number() OVER (ORDER BY id) - 1)::int AS n, id FROM wsctl.workspaces
      WHERE owner_user_id::text LIKE '$prefix%';
   ALTER TABLE public.bench_ids ADD PRIMARY KEY (n);
   CREATE ROLE $role LOGIN IN ROLE wsctl_api;
   GRANT SELECT ON public.bench_ids TO $role" >/dev/null
q "VACUUM ANALYZE wsctl.workspaces" >/dev/null
q "ANALYZE public.bench_ids" >/dev/null

cat >"$dir/get.sql" <<EOF
\set k random(0, $n - 1)
SELECT (wsctl.get_workspace(id)).display_status FROM public.bench_ids WHERE n = :k;
EOF
cat >"$dir/pending.sql" <<EOF
\set k random(0, $n - 1)
SELECT (wsctl.set_desired_state(id, 'PENDING')).desired_state FROM public.bench_ids WHERE n = :k;
EOF
# Each client works on its own owners' rows (client_id spreads them).
cat >"$dir/running.sql" <<EOF
\set k (:client_id * 997 + random(0, 99)) % $n
BEGIN;
SELECT (wsctl.set_desired_state(id, 'RUNNING')).desired_state FROM public.bench_ids WHERE n = :k;
ROLLBACK;
EOF

run() {	# run NAME SCRIPT: prints calls/s
	"$pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$secs" -U "$role" -f "$2" "$WSCTL_IT_DB" 2>"$dir/$1.err" |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p'
}
printf '%-8s %-8s %-24s %-12s %-12s\n' N clients call calls_per_s target
printf '%-8s %-8s %-24s %-12.0f %-12s\n' "$n" "$clients" get_workspace "$(run get "$dir/get.sql")" ">= 10000"
printf '%-8s %-8s %-24s %-12.0f %-12s\n' "$n" "$clients" "set_desired_state PEND" "$(run pending "$dir/pending.sql")" ">= 2000"
printf '%-8s %-8s %-24s %-12.0f %-12s\n' "$n" "$clients" "set_desired_state RUN*" "$(run running "$dir/running.sql")" ">= 2000"
# The same with one client: how much four clients on unrelated owners gain.
printf '%-8s %-8s %-24s %-12.0f %-12s\n' "$n" 1 "set_desired_state RUN*" "$(clients=1 run running1 "$dir/running.sql")" "-"
# The same with every claim on all 16 stripes (a global limit below 16
# gives a quota of 0): the single lock of 0.2.0, for comparison.
set_config wsctl.max_running_global 15 >/dev/null
printf '%-8s %-8s %-24s %-12.0f %-12s\n' "$n" "$clients" "set_desired_state RUN*1" "$(run running_one "$dir/running.sql")" "-"
reset_config wsctl.max_running_global
echo "* in a transaction rolled back (BEGIN, the call, ROLLBACK: three statements): the slot lock is taken and released, nothing is actuated"
echo "1 every claim takes all 16 stripes (wsctl.max_running_global 15, quota 0): what one lock for everybody gives"
