#!/usr/bin/env bash
# convergence.sh: latency of set_desired_state STANDBY -> RUNNING until
# observed RUNNING, p50 and p95 over 20 runs, beside the floor: the same
# Docker calls made directly with curl (inspect volume, inspect container,
# create, start, inspect). Target: within 0.5 s of the floor at p50.
. "$(dirname "$0")/../integration/lib.sh"
owner=00000000-0000-0000-0000-0000000be002
runs=${RUNS:-20}
sock=${DOCKER_HOST#unix://}
api=http://localhost/v1.41

id=$(create_ws $owner latency STANDBY)
wait_state "$id" STANDBY 60 || { echo "workspace did not reach STANDBY"; exit 1; }

# One session: ask, commit (which wakes the reconciler), then poll the row.
measure() { psql -X -A -t -q -c "CREATE OR REPLACE PROCEDURE pg_temp.converge(ws uuid, target wsctl.status, INOUT seconds float8)
   LANGUAGE plpgsql AS \$\$
   DECLARE t0 timestamptz := clock_timestamp();
   BEGIN
     PERFORM wsctl.set_desired_state(ws, target);
     COMMIT;
     LOOP
       EXIT WHEN (SELECT observed_status = target AND operation = 'NONE' FROM wsctl.workspaces WHERE id = ws);
       IF clock_timestamp() - t0 > interval '60 s' THEN RAISE EXCEPTION 'no convergence'; END IF;
       PERFORM pg_sleep(0.002);
       COMMIT;
     END LOOP;
     seconds := extract(epoch FROM clock_timestamp() - t0);
   END \$\$" -c "CALL pg_temp.converge('$id', '$1', NULL)"; }

floor_once() {	# the Docker calls of a STARTING operation, made with curl
	local name=wsctl-floor-$$ t0 t1
	t0=$(date +%s.%N)
	curl -sf --unix-socket "$sock" "$api/volumes/ws-$id-home" >/dev/null
	curl -s --unix-socket "$sock" "$api/containers/$name/json" >/dev/null
	curl -sf --unix-socket "$sock" -H 'Content-Type: application/json' -X POST \
		-d "{\"Image\":\"$WSCTL_TEST_IMAGE\",\"HostConfig\":{\"NetworkMode\":\"none\"}}" \
		"$api/containers/create?name=$name" >/dev/null
	curl -sf --unix-socket "$sock" -X POST "$api/containers/$name/start" >/dev/null
	curl -sf --unix-socket "$sock" "$api/containers/$name/json" >/dev/null
	t1=$(date +%s.%N)
	curl -s --unix-socket "$sock" -X DELETE "$api/containers/$name?force=true" >/dev/null
	echo "$t1 - $t0" | bc
}

lat=()
floor=()
for i in $(seq "$runs"); do
	lat+=("$(measure RUNNING)")
	measure STANDBY >/dev/null
	floor+=("$(floor_once)")
done
pct() { printf '%s\n' "${@:2}" | sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; printf "%.3f", a[i]}'; }
printf '%-28s %-8s %-8s\n' "" p50_s p95_s
printf '%-28s %-8s %-8s\n' "wsctl STANDBY->RUNNING" "$(pct 50 "${lat[@]}")" "$(pct 95 "${lat[@]}")"
printf '%-28s %-8s %-8s\n' "floor (same calls, curl)" "$(pct 50 "${floor[@]}")" "$(pct 95 "${floor[@]}")"
cleanup_owner $owner >/dev/null
