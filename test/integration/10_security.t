#!/usr/bin/env bash
# 10_security.t: wsctl against a hostile tenant of the same PostgreSQL.
#
# Every LOGIN role is hostile. The probes, each against the real workers:
#   1. an operator on an extension type (public.=(wsctl.status, wsctl.status))
#      whose function tries ALTER ROLE ... SUPERUSER, with the database's
#      search_path putting public first and the workers restarted under it;
#      a whole lifecycle is driven by the hostile role through the API
#   2. the same with an operator on a core type, public.=(uuid, uuid), ahead
#      of pg_catalog
#   3. advisory-lock squatting on the old leader and slot keys, then worker
#      restarts and a RUNNING workspace
#   4. locking wsctl.locks / wsctl.workspaces as a non-owner
#   5. superuser-only settings and wsctl.workers are not readable
#   6. TRUNCATE and direct writes of wsctl.workspaces are refused
#   7. pg_temp shadowing (temp tables named like our tables and types,
#      temp now()) in an API session
#   8. 1 MB arguments and malformed ids get clean errors, quickly
#   9. the workers still lead and tick, nobody became superuser
#
# The hostile operators are armed (a hostile session resolves them) and a
# control shows that an unpinned superuser session that resolves them does
# get the hostile role promoted, so "still not superuser" can fail.
# The hostile function escalates only where wsctl code runs: in a worker
# (backend_type not 'client backend') or inside a SECURITY DEFINER function
# (session_user <> current_user); plain superuser sessions of concurrent
# tests are not turned into false alarms. This test's own superuser
# sessions pin search_path, as the database's setting is hostile for a while.
. "$(dirname "$0")/lib.sh"
export PGOPTIONS="-c client_min_messages=warning -c search_path=pg_catalog,pg_temp"
role_opts="-c client_min_messages=warning"

sfx=$(printf '%04x%04x' $RANDOM $RANDOM)
hostile=wsctl_sec_op_$sfx		# wsctl_api + CREATE on public
api=wsctl_sec_api_$sfx			# wsctl_api
admin=wsctl_sec_admin_$sfx		# wsctl_admin
squat=wsctl_sec_squat_$sfx		# LOGIN only
roles="$hostile $api $admin $squat"
role_list="'$hostile', '$api', '$admin', '$squat'"
control_app=wsctl-sec-control-$sfx
log=public.wsctl_sec_log_$sfx
owner_prefix=00000000-0000-0000-0010-0000000000
o1=${owner_prefix}01 o2=${owner_prefix}02 o3=${owner_prefix}03 o7=${owner_prefix}07 o8=${owner_prefix}08
owners="$o1 $o2 $o3 $o7 $o8"
db=$WSCTL_IT_DB

work=$(mktemp -d)
squat_pid=
squat_fd_open=

# The database's search_path before the test, restored at the end.
db_search_path() {
	q "SELECT c FROM pg_db_role_setting s, unnest(s.setconfig) c
	    WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
	      AND s.setrole = 0 AND c LIKE 'search\_path=%'"
}
orig_sp=$(db_search_path)
restore_search_path() {
	if [ -n "$orig_sp" ]; then
		q "ALTER DATABASE \"$db\" SET search_path = ${orig_sp#search_path=}" >/dev/null 2>&1
	else
		q "ALTER DATABASE \"$db\" RESET search_path" >/dev/null 2>&1
	fi
}
close_squatter() {
	if [ -n "$squat_fd_open" ]; then exec 7>&-; squat_fd_open=; fi
	if [ -n "$squat_pid" ]; then
		wait_cmd 10 bash -c "! kill -0 $squat_pid" || kill "$squat_pid" 2>/dev/null
		wait "$squat_pid" 2>/dev/null
		squat_pid=
	fi
}
# Idempotent: run before done_testing and again by the trap after a failure.
cleanup() {
	restore_search_path
	close_squatter
	q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename IN ($role_list)" >/dev/null 2>&1
	q "DROP FUNCTION IF EXISTS public.wsctl_sec_eq_status_$sfx(wsctl.status, wsctl.status),
	                           public.wsctl_sec_ne_status_$sfx(wsctl.status, wsctl.status),
	                           public.wsctl_sec_eq_uuid_$sfx(uuid, uuid),
	                           public.wsctl_sec_ne_uuid_$sfx(uuid, uuid) CASCADE" >/dev/null 2>&1
	for o in $owners; do
		[ "$(q "SELECT count(*) > 0 FROM wsctl.workspaces WHERE owner_user_id = '$o'
		        AND (observed_status <> 'DELETED' OR operation <> 'NONE')" 2>/dev/null)" = t ] && cleanup_owner "$o"
	done
	for r in $roles; do
		[ "$(q "SELECT count(*) FROM pg_roles WHERE rolname = '$r'")" = 1 ] || continue
		q "ALTER ROLE $r NOSUPERUSER" >/dev/null 2>&1
		q "DROP OWNED BY $r" >/dev/null 2>&1
		q "DROP ROLE $r" >/dev/null 2>&1
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# as ROLE SQL: one value (or rows) from a session of ROLE (the database's
# settings apply: no pinned search_path).
as() { PGOPTIONS="$role_opts ${extra_opts:-}" psql -X -A -t -q -v ON_ERROR_STOP=1 -U "$1" -c "$2"; }
# state_of OUTPUT-OF-PSQL: the SQLSTATE of the first error (psql -c or -f).
state_of() { sed -n 's/.*ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' | head -1; }
# sqlstate_as ROLE SQL: OK, or the SQLSTATE the statement fails with.
sqlstate_as() {
	local out
	if out=$(PGOPTIONS="$role_opts ${extra_opts:-}" psql -X -A -t -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -U "$1" -c "$2" 2>&1); then
		echo OK
	else
		state_of <<<"$out"
	fi
}
# sqlstate_file ROLE FILE: the same for a script (large literals do not fit in argv).
sqlstate_file() {
	local out
	if out=$(PGOPTIONS="$role_opts ${extra_opts:-}" psql -X -A -t -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -U "$1" -f "$2" 2>&1); then
		echo OK
	else
		state_of <<<"$out"
	fi
}
is_uuid() { [[ $1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; }
rolsuper() { q "SELECT rolsuper FROM pg_roles WHERE rolname = '$1'"; }
ms() { echo $(($(date +%s%N) / 1000000)); }

# restart_workers: terminates every component, waits for new leaders of all.
restart_workers() {
	local old n all
	all=$(q "SELECT count(*) FROM wsctl.workers WHERE workspace_id IS NULL")
	old=$(q "SELECT string_agg(pid::text, ',') FROM wsctl.workers WHERE workspace_id IS NULL AND pid IS NOT NULL")
	n=$(q "SELECT count(*) FILTER (WHERE t) FROM (SELECT pg_terminate_backend(pid) AS t
	       FROM wsctl.workers WHERE workspace_id IS NULL AND pid IS NOT NULL) s")
	[ "$n" = "$all" ] || { diag "terminated $n of $all component workers (pids: ${old:-none})"; return 1; }
	wait_for 30 "SELECT count(*) = $all FROM wsctl.workers
	             WHERE workspace_id IS NULL AND leader AND pid NOT IN ($old)"
}

# Setup -----------------------------------------------------------------------
start_time=$(q "SELECT pg_postmaster_start_time()")
for o in $owners; do cleanup_owner "$o" >/dev/null; done
q "CREATE ROLE $hostile LOGIN IN ROLE wsctl_api;
   CREATE ROLE $api LOGIN IN ROLE wsctl_api;
   CREATE ROLE $admin LOGIN IN ROLE wsctl_admin;
   CREATE ROLE $squat LOGIN;
   GRANT CREATE ON SCHEMA public TO $hostile" >/dev/null
is "the test roles exist and none is superuser" \
	"$(q "SELECT count(*) FILTER (WHERE NOT rolsuper) FROM pg_roles WHERE rolname IN ($role_list)")" 4
is "the roles can log in (trust over the socket)" "$(as "$squat" "SELECT current_user")" "$squat"
check "workers lead at the start" wait_for 30 "SELECT count(*) = 2 FROM wsctl.workers
	WHERE component IN ('health_monitor', 'reconciler') AND leader"

# The hostile role's log of where its operator functions ran.
as "$hostile" "CREATE TABLE $log (at timestamptz DEFAULT clock_timestamp(), op text, backend_type text,
                                 sess_role name, cur_role name, app text, pid int);
               GRANT INSERT ON $log TO PUBLIC" >/dev/null

# hostile_ops TYPE TAG EQ-FUNCTION NE-FUNCTION: the SQL (run as the hostile
# role) creating public.= and public.<> on TYPE with escalating functions.
hostile_ops() {
	local type=$1 tag=$2 sql=
	for pair in "eq:$3:=" "ne:$4:<>"; do
		local kind=${pair%%:*} rest=${pair#*:}
		local cmp=${rest%%:*} opname=${rest#*:}
		local f=public.wsctl_sec_${kind}_${tag}_$sfx
		sql+="
CREATE FUNCTION $f(a $type, b $type) RETURNS pg_catalog.bool
LANGUAGE plpgsql SECURITY INVOKER AS \$fn\$
DECLARE
	bt          pg_catalog.text;
	interesting pg_catalog.bool := false;
BEGIN
	BEGIN
		IF session_user OPERATOR(pg_catalog.<>) current_user
		   OR session_user OPERATOR(pg_catalog.=) '$hostile'
		   OR pg_catalog.current_setting('application_name') OPERATOR(pg_catalog.=) '$control_app' THEN
			interesting := true;
		ELSE
			bt := pg_catalog.current_setting('wsctl_sec_$sfx.backend_type', true);
			IF bt IS NULL OR bt OPERATOR(pg_catalog.=) '' THEN
				SELECT s.backend_type INTO bt FROM pg_catalog.pg_stat_activity AS s
				 WHERE s.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
				bt := coalesce(bt, 'unknown');
				PERFORM pg_catalog.set_config('wsctl_sec_$sfx.backend_type', bt, false);
			END IF;
			interesting := bt OPERATOR(pg_catalog.<>) 'client backend';
		END IF;
		IF interesting THEN
			SELECT s.backend_type INTO bt FROM pg_catalog.pg_stat_activity AS s
			 WHERE s.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
			INSERT INTO $log (op, backend_type, sess_role, cur_role, app, pid)
			VALUES ('$type $opname', bt, session_user, current_user,
					pg_catalog.current_setting('application_name'), pg_catalog.pg_backend_pid());
		END IF;
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	IF interesting THEN
		BEGIN
			EXECUTE 'ALTER ROLE $hostile SUPERUSER';
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
	END IF;
	RETURN $cmp(a, b);
END
\$fn\$;
CREATE OPERATOR public.$opname (LEFTARG = $type, RIGHTARG = $type, FUNCTION = $f);"
	done
	echo "$sql"
}

# logged SQL-CONDITION: how many logged invocations match.
logged() { q "SELECT count(*) FROM $log WHERE $1"; }

# hostile_probe LABEL TYPE TAG OWNER ARM-SQL: probes 1 and 2.
hostile_probe() {
	local label=$1 type=$2 tag=$3 owner=$4 arm_sql=$5 id
	local eqf=pg_catalog.enum_eq nef=pg_catalog.enum_ne
	[ "$tag" = uuid ] && { eqf=pg_catalog.uuid_eq; nef=pg_catalog.uuid_ne; }

	is "$label: the hostile role creates public.= and public.<> on $type" \
		"$(sqlstate_as "$hostile" "$(hostile_ops "$type" "$tag" "$eqf" "$nef")")" OK
	is "$label: the database's search_path puts public ahead of pg_catalog" \
		"$(sqlstate_as postgres "ALTER DATABASE \"$db\" SET search_path = public, pg_catalog")" OK
	is "$label: a new session gets it" "$(as "$hostile" "SHOW search_path")" "public, pg_catalog"

	# Armed: an unpinned session resolves the hostile operator.
	local before; before=$(logged "sess_role = '$hostile'")
	is "$label: in the hostile role's session, $arm_sql is true" "$(as "$hostile" "SELECT $arm_sql")" t
	check "$label: ... and it ran the hostile function (the trap is armed)" \
		test "$(logged "sess_role = '$hostile'")" -gt "$before"
	is "$label: ... which could not escalate there" "$(rolsuper "$hostile")" f

	# Control: an unpinned superuser session that resolves it promotes the role.
	PGAPPNAME=$control_app PGOPTIONS="$role_opts" psql -X -A -t -q -U postgres -c "SELECT $arm_sql" >/dev/null 2>&1
	is "$label: control: an unpinned superuser session resolving it makes the role superuser" "$(rolsuper "$hostile")" t
	q "ALTER ROLE $hostile NOSUPERUSER" >/dev/null
	is "$label: control undone" "$(rolsuper "$hostile")" f
	local control_rows; control_rows=$(logged "app = '$control_app'")

	check "$label: the workers restart under the hostile setting (new pids, both leader)" restart_workers

	# A whole lifecycle driven by the hostile role: every worker runs queries.
	id=$(as "$hostile" "SELECT id FROM wsctl.create_workspace('$owner', 'sec-$tag', '$WSCTL_TEST_IMAGE', 'RUNNING')" 2>&1)
	check "$label: the hostile role creates a RUNNING workspace" is_uuid "$id"
	check "$label: it reaches RUNNING" wait_state "$id" RUNNING 60
	check "$label: Docker: its container runs" container_running "$id"
	is "$label: get_workspace as the hostile role says RUNNING" \
		"$(as "$hostile" "SELECT display_status FROM wsctl.get_workspace('$id')" 2>&1)" RUNNING
	is "$label: list_workspaces as the hostile role lists it" \
		"$(as "$hostile" "SELECT string_agg(id::text, ',') FROM wsctl.list_workspaces('$owner')" 2>&1)" "$id"
	is "$label: set STANDBY" "$(sqlstate_as "$hostile" "SELECT wsctl.set_desired_state('$id', 'STANDBY')")" OK
	check "$label: it reaches STANDBY" wait_state "$id" STANDBY 60
	is "$label: delete" "$(sqlstate_as "$hostile" "SELECT wsctl.delete_workspace('$id')")" OK
	check "$label: it reaches DELETED" wait_state "$id" DELETED 60
	check "$label: Docker: container and volume are gone" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$id' >/dev/null 2>&1 &&
		! docker -H '$DOCKER_HOST' volume inspect 'ws-$id-home' >/dev/null 2>&1"

	is "$label: the hostile role is still not superuser" "$(rolsuper "$hostile")" f
	is "$label: the hostile function never ran in a worker" \
		"$(logged "backend_type IS DISTINCT FROM 'client backend'")" 0
	is "$label: ... nor inside a SECURITY DEFINER function (current_user <> session_user)" \
		"$(logged "sess_role <> cur_role")" 0
	diag "$label: logged invocations: $(q "SELECT coalesce(string_agg(n || ' by ' || k, '; '), 'none') FROM (
	        SELECT count(*) n, coalesce(backend_type, '?') || '/' || sess_role || '/' || cur_role || '/' || app k
	          FROM $log WHERE op LIKE '$type %' GROUP BY 2) s") (control: $control_rows)"

	q "DROP FUNCTION public.wsctl_sec_eq_${tag}_$sfx($type, $type), public.wsctl_sec_ne_${tag}_$sfx($type, $type) CASCADE" >/dev/null
	is "$label: the hostile operators are dropped" \
		"$(q "SELECT count(*) FROM pg_operator WHERE oprnamespace = 'public'::regnamespace AND oprleft = '$type'::regtype")" 0
}

# 1. Operator on an extension type --------------------------------------------
hostile_probe "1 (wsctl.status)" wsctl.status status $o1 \
	"'RUNNING'::wsctl.status = 'RUNNING'::wsctl.status AND NOT ('RUNNING'::wsctl.status <> 'RUNNING')"

# 2. Operator on a core type ahead of pg_catalog ------------------------------
hostile_probe "2 (uuid)" uuid uuid $o2 \
	"gen_random_uuid() <> gen_random_uuid() AND '$o2'::uuid = '$o2'"

restore_search_path
is "the database's search_path is restored" "$(db_search_path)" "$orig_sp"

# 3. Advisory-lock squatting --------------------------------------------------
mkfifo "$work/squat.in"
PGOPTIONS="$role_opts" psql -X -A -t -q -U "$squat" < "$work/squat.in" > "$work/squat.out" 2>&1 &
squat_pid=$!
exec 7> "$work/squat.in"
squat_fd_open=1
cat >&7 <<EOF
SELECT pg_advisory_lock(2003987, k) FROM generate_series(0, 255) k;
SELECT pg_advisory_lock(2003987);
SELECT pg_advisory_lock((2003987::bigint << 32) + k) FROM generate_series(0, 15) k;
SELECT pg_advisory_lock(k, 2003987) FROM generate_series(0, 3) k;
SELECT 'squatting ' || pg_backend_pid();
EOF
squatter_locks="SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                WHERE a.usename = '$squat' AND l.locktype = 'advisory' AND l.granted"
check "3: a LOGIN-only role holds 277 session advisory locks" wait_for 15 "SELECT ($squatter_locks) = 277"
is "3: ... among them (2003987, 1), (2003987, 100), (2003987, 101), (2003987, 102)" \
	"$(q "$squatter_locks AND l.classid = 2003987 AND l.objid IN (1, 100, 101, 102) AND l.objsubid = 2")" 4
check "3: the workers restart while it squats (new pids, both leader)" restart_workers
t0=$(ms)
id3=$(extra_opts="-c statement_timeout=5s" as "$api" "SELECT id FROM wsctl.create_workspace('$o3', 'sec-squat', '$WSCTL_TEST_IMAGE', 'RUNNING')" 2>&1)
t1=$(ms)
check "3: create_workspace(RUNNING) answers under a 5 s statement_timeout" is_uuid "$id3"
diag "3: create_workspace took $((t1 - t0)) ms"
check "3: it reaches RUNNING within 30 s" wait_state "$id3" RUNNING 30
check "3: Docker: its container runs" container_running "$id3"
is "3: set_desired_state(STANDBY) answers under the timeout" \
	"$(extra_opts="-c statement_timeout=5s" sqlstate_as "$api" "SELECT wsctl.set_desired_state('$id3', 'STANDBY')")" OK
is "3: the squatter still held every lock meanwhile" "$(q "$squatter_locks")" 277
close_squatter
check "3: the squatting session is closed" wait_for 10 "SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = '$squat'"

# 4. Locks on wsctl's tables --------------------------------------------------
for r in "$api" "$admin"; do
	who=${r%_$sfx}; who=${who#wsctl_sec_}
	is "4 ($who): SELECT FROM wsctl.locks FOR UPDATE -> 42501" \
		"$(sqlstate_as "$r" "SELECT * FROM wsctl.locks FOR UPDATE")" 42501
	is "4 ($who): SELECT FROM wsctl.locks FOR KEY SHARE SKIP LOCKED -> 42501" \
		"$(sqlstate_as "$r" "SELECT * FROM wsctl.locks FOR KEY SHARE SKIP LOCKED")" 42501
	is "4 ($who): LOCK TABLE wsctl.locks -> 42501" \
		"$(sqlstate_as "$r" "BEGIN; LOCK TABLE wsctl.locks; ROLLBACK")" 42501
	is "4 ($who): LOCK TABLE wsctl.workspaces -> 42501" \
		"$(sqlstate_as "$r" "BEGIN; LOCK TABLE wsctl.workspaces; ROLLBACK")" 42501
	is "4 ($who): LOCK TABLE wsctl.workspaces IN ACCESS SHARE MODE -> 42501" \
		"$(sqlstate_as "$r" "BEGIN; LOCK TABLE wsctl.workspaces IN ACCESS SHARE MODE; ROLLBACK")" 42501
	is "4 ($who): SELECT FROM wsctl.workspaces FOR UPDATE -> 42501" \
		"$(sqlstate_as "$r" "SELECT * FROM wsctl.workspaces FOR UPDATE")" 42501
	is "4 ($who): SELECT FROM wsctl.workspace_info FOR UPDATE -> 42501" \
		"$(sqlstate_as "$r" "SELECT * FROM wsctl.workspace_info FOR UPDATE")" 42501
	is "4 ($who): SELECT FROM wsctl.workspace_info FOR KEY SHARE -> 42501" \
		"$(sqlstate_as "$r" "SELECT * FROM wsctl.workspace_info FOR KEY SHARE")" 42501
	is "4 ($who): LOCK TABLE wsctl.workspace_info IN EXCLUSIVE MODE -> 42501" \
		"$(sqlstate_as "$r" "BEGIN; LOCK TABLE wsctl.workspace_info IN EXCLUSIVE MODE; ROLLBACK")" 42501
	is "4 ($who): wsctl._lock_running_slots(uuid) -> 42501" \
		"$(sqlstate_as "$r" "SELECT wsctl._lock_running_slots(NULL::uuid)")" 42501
done
wpid=$(q "SELECT pid FROM wsctl.workers WHERE component = 'reconciler'")
is "4: a wsctl_admin role cannot terminate the reconciler -> 42501" \
	"$(sqlstate_as "$admin" "SELECT pg_terminate_backend($wpid)")" 42501
is "4: ... nor cancel it -> 42501" "$(sqlstate_as "$admin" "SELECT pg_cancel_backend($wpid)")" 42501

# 5. Settings and wsctl.workers -----------------------------------------------
for s in docker_host remote_docker_host database container_network debug_operation_delay; do
	is "5: SHOW wsctl.$s as a wsctl_api role -> 42501" "$(sqlstate_as "$api" "SHOW wsctl.$s")" 42501
done
# 0.3.0: the backend registry, the slot stripes and the transfer cap are
# the extension's own; the heartbeat rows may be read, never written.
for f in "wsctl._backend_enabled(text, text)" "wsctl._check_backend(wsctl.instance_backend)" \
	"wsctl._slot_stripe(uuid)" "wsctl._owner_of(uuid)" "wsctl._transfer_slot_free()" \
	"wsctl._backend_resources_expected(wsctl.instance_backend)"; do
	is "5: $f is not executable by a wsctl_api role" \
		"$(q "SELECT has_function_privilege('$api', '$f', 'EXECUTE')")" f
done
is "5: SET wsctl.max_concurrent_transfers as a wsctl_api role -> 55P02 (server setting)" \
	"$(sqlstate_as "$api" "SET wsctl.max_concurrent_transfers = 64")" 55P02
is "5: forging a heartbeat row (INSERT wsctl.health_observation) -> 42501" \
	"$(sqlstate_as "$api" "INSERT INTO wsctl.health_observation (instance_backend, observed_at) VALUES ('remote-docker', now())")" 42501
is "5: moving the heartbeat (UPDATE wsctl.health_observation) -> 42501" \
	"$(sqlstate_as "$api" "UPDATE wsctl.health_observation SET observed_at = now()")" 42501
is "5: current_setting('wsctl.docker_host') -> 42501" \
	"$(sqlstate_as "$api" "SELECT current_setting('wsctl.docker_host')")" 42501
is "5: current_setting('wsctl.docker_host', true) -> 42501" \
	"$(sqlstate_as "$api" "SELECT current_setting('wsctl.docker_host', true)")" 42501
is "5: SHOW wsctl.docker_host as a wsctl_admin role -> 42501" "$(sqlstate_as "$admin" "SHOW wsctl.docker_host")" 42501
is "5: SHOW ALL as a wsctl_api role shows none of them" \
	"$(as "$api" "SHOW ALL" | grep -c -E '^wsctl\.(docker_host|database|container_network|debug_operation_delay)\|')" 0
is "5: pg_settings has no row wsctl.docker_host for it" \
	"$(as "$api" "SELECT count(*) FROM pg_settings WHERE name = 'wsctl.docker_host'")" 0
is "5: pg_settings hides all four superuser-only settings" \
	"$(as "$api" "SELECT count(*) FROM pg_settings WHERE name IN ('wsctl.docker_host', 'wsctl.database', 'wsctl.container_network', 'wsctl.debug_operation_delay')")" 0
is "5: ... which the superuser sees (control)" \
	"$(q "SELECT count(*) FROM pg_settings WHERE name IN ('wsctl.docker_host', 'wsctl.database', 'wsctl.container_network', 'wsctl.debug_operation_delay')")" 4
is "5: other wsctl settings stay visible (control)" \
	"$(as "$api" "SELECT count(*) FROM pg_settings WHERE name = 'wsctl.max_running_per_user'")" 1
is "5: wsctl.workers is not readable by a wsctl_api role -> 42501" \
	"$(sqlstate_as "$api" "SELECT * FROM wsctl.workers")" 42501
is "5: nor wsctl._worker_status() -> 42501" \
	"$(sqlstate_as "$api" "SELECT * FROM wsctl._worker_status()")" 42501
is "5: nor by a LOGIN-only role -> 42501" "$(sqlstate_as "$squat" "SELECT * FROM wsctl.workers")" 42501
is "5: a wsctl_admin role reads it (control)" \
	"$(as "$admin" "SELECT count(*) FROM wsctl.workers WHERE component IN ('health_monitor', 'reconciler')")" 2

# 6. TRUNCATE and direct writes ------------------------------------------------
# Every TRUNCATE here runs in a transaction that is rolled back anyway.
for r in "$admin" "$api" "$squat"; do
	who=${r%_$sfx}; who=${who#wsctl_sec_}
	is "6 ($who): TRUNCATE wsctl.workspaces CASCADE -> 42501" \
		"$(sqlstate_as "$r" "BEGIN; TRUNCATE wsctl.workspaces CASCADE; ROLLBACK")" 42501
done
is "6 (admin): TRUNCATE wsctl.locks -> 42501" "$(sqlstate_as "$admin" "BEGIN; TRUNCATE wsctl.locks; ROLLBACK")" 42501
is "6 (admin): TRUNCATE wsctl.operation_attempts -> 42501" \
	"$(sqlstate_as "$admin" "BEGIN; TRUNCATE wsctl.operation_attempts; ROLLBACK")" 42501
trunc="SET LOCAL lock_timeout = '10s'; SET LOCAL wsctl.component = '';"
st=$(sqlstate "BEGIN; $trunc TRUNCATE wsctl.workspaces; ROLLBACK")
check "6 (superuser): plain TRUNCATE wsctl.workspaces is refused (got $st: the foreign key of operation_attempts)" \
	test -n "$st" -a "$st" != OK
is "6 (superuser): TRUNCATE wsctl.workspaces CASCADE without a component -> WS403" \
	"$(sqlstate "BEGIN; $trunc TRUNCATE wsctl.workspaces CASCADE; ROLLBACK")" WS403
is "6 (superuser): TRUNCATE wsctl.workspaces, wsctl.operation_attempts -> WS403" \
	"$(sqlstate "BEGIN; $trunc TRUNCATE wsctl.workspaces, wsctl.operation_attempts; ROLLBACK")" WS403
is "6 (superuser): ... with wsctl.component = 'api' -> WS403" \
	"$(sqlstate "BEGIN; $trunc SET LOCAL wsctl.component = 'api'; TRUNCATE wsctl.workspaces CASCADE; ROLLBACK")" WS403
is "6 (superuser): ... with wsctl.component = 'reconciler' -> WS403" \
	"$(sqlstate "BEGIN; $trunc SET LOCAL wsctl.component = 'reconciler'; TRUNCATE wsctl.workspaces CASCADE; ROLLBACK")" WS403
is "6: INSERT INTO wsctl.workspaces as a wsctl_api role -> 42501" \
	"$(sqlstate_as "$api" "INSERT INTO wsctl.workspaces (id, owner_user_id, name, image_ref, home_store_key)
	   VALUES ('${owner_prefix}99', '$o8', 'direct', 'busybox', 'ws-${owner_prefix}99-home')")" 42501
is "6: UPDATE wsctl.workspaces -> 42501" \
	"$(sqlstate_as "$api" "UPDATE wsctl.workspaces SET memo = 'x' WHERE owner_user_id = '$o8'")" 42501
is "6: DELETE FROM wsctl.workspaces -> 42501" \
	"$(sqlstate_as "$api" "DELETE FROM wsctl.workspaces WHERE owner_user_id = '$o8'")" 42501
is "6: INSERT through the view wsctl.workspace_info -> 42501" \
	"$(sqlstate_as "$api" "INSERT INTO wsctl.workspace_info (owner_user_id, name, image_ref, home_store_key)
	   VALUES ('$o8', 'direct', 'busybox', 'x')")" 42501
is "6: UPDATE through wsctl.workspace_info -> 42501" \
	"$(sqlstate_as "$api" "UPDATE wsctl.workspace_info SET memo = 'x' WHERE owner_user_id = '$o8'")" 42501
is "6: UPDATE wsctl.locks as wsctl_admin -> 42501" \
	"$(sqlstate_as "$admin" "UPDATE wsctl.locks SET note = 'x'")" 42501
is "6: wsctl.locks still has its rows (16 slot stripes, starting_claims)" \
	"$(q "SELECT count(*) FILTER (WHERE name LIKE 'running_slots_%') || ',' || string_agg(name, ',') FILTER (WHERE name NOT LIKE 'running_slots_%') FROM wsctl.locks")" "16,starting_claims"

# 6b. The outbox, the event cursor, tokens and the signers --------------------------
is "6b: SELECT wsctl.events as a LOGIN-only role -> 42501" "$(sqlstate_as "$squat" "SELECT count(*) FROM wsctl.events")" 42501
is "6b: INSERT INTO wsctl.events as wsctl_api (a forged event) -> 42501" \
	"$(sqlstate_as "$api" "INSERT INTO wsctl.events (workspace_id, owner_user_id, payload) VALUES ('$o8', '$o8', '{}')")" 42501
is "6b: UPDATE wsctl.event_cursor as wsctl_admin -> 42501" \
	"$(sqlstate_as "$admin" "UPDATE wsctl.event_cursor SET last_shipped = 0")" 42501
is "6b: wsctl.sse_token as a LOGIN-only role -> 42501" \
	"$(sqlstate_as "$squat" "SELECT wsctl.sse_token('$o8')")" 42501
is "6b: wsctl.activity_connect as a LOGIN-only role -> 42501" \
	"$(sqlstate_as "$squat" "SELECT wsctl.activity_connect('$o8')")" 42501
is "6b: wsctl._sse_sign (signs any claims) as wsctl_admin -> 42501" \
	"$(sqlstate_as "$admin" "SELECT wsctl._sse_sign('x.y')")" 42501
is "6b: wsctl._sequence_events as wsctl_admin -> 42501" \
	"$(sqlstate_as "$admin" "SELECT wsctl._sequence_events(1)")" 42501
is "6b: SHOW wsctl.sse_secret as wsctl_admin -> 42501" "$(sqlstate_as "$admin" "SHOW wsctl.sse_secret")" 42501
is "6b: SHOW wsctl.redis_url as wsctl_api -> 42501" "$(sqlstate_as "$api" "SHOW wsctl.redis_url")" 42501

# 7. pg_temp shadowing -----------------------------------------------------------
# pg_temp is searched first for relations and types unless placed otherwise;
# the API functions pin it last. Everything this script itself writes is
# qualified, since its own session is shadowed.
cat > "$work/shadow.sql" <<EOF
CREATE TEMP TABLE workspaces (id pg_catalog.uuid, owner_user_id pg_catalog.uuid, name pg_catalog.text);
CREATE TEMP TABLE locks (name pg_catalog.text, note pg_catalog.text);
CREATE TEMP TABLE operation_attempts (x pg_catalog.int4);
CREATE TEMP VIEW workspace_info AS SELECT * FROM pg_temp.workspaces;
CREATE TEMP TABLE status (x pg_catalog.int4);
CREATE TEMP TABLE operation (x pg_catalog.int4);
CREATE TEMP TABLE component (x pg_catalog.int4);
CREATE TEMP TABLE text (x pg_catalog.int4);
CREATE TEMP TABLE uuid (x pg_catalog.int4);
CREATE TEMP TABLE jsonb (x pg_catalog.int4);
CREATE TEMP TABLE int4 (x pg_catalog.int4);
CREATE TEMP TABLE bool (x pg_catalog.int4);
CREATE TEMP TABLE timestamptz (x pg_catalog.int4);
CREATE TEMP TABLE pg_extension (x pg_catalog.int4);
CREATE FUNCTION pg_temp.now() RETURNS pg_catalog.timestamptz LANGUAGE sql
	AS 'SELECT ''2000-01-01 00:00:00+00''::pg_catalog.timestamptz';
CREATE FUNCTION pg_temp.gen_random_uuid() RETURNS pg_catalog.uuid LANGUAGE sql
	AS 'SELECT ''${owner_prefix}ff''::pg_catalog.uuid';
INSERT INTO pg_temp.workspaces VALUES ('${owner_prefix}fe', '$o7', 'decoy');
SELECT pg_catalog.to_regtype('text') OPERATOR(pg_catalog.<>) 'pg_catalog.text'::pg_catalog.regtype AS shadowing \gset
\echo shadowing=:shadowing
SELECT id AS new_id FROM wsctl.create_workspace('$o7', 'shadow', '$WSCTL_TEST_IMAGE', 'PENDING', 'desc', 'memo') \gset
\echo new_id=:new_id
SELECT id AS del_id FROM wsctl.create_workspace('$o7', 'shadow-del', '$WSCTL_TEST_IMAGE', 'PENDING') \gset
SELECT name AS got_name FROM wsctl.get_workspace(:'new_id') \gset
\echo got_name=:got_name
SELECT pg_catalog.string_agg(name::pg_catalog.text, ',' ORDER BY name) AS listed FROM wsctl.list_workspaces('$o7') \gset
\echo listed=:listed
SELECT pg_catalog.count(*) AS info FROM wsctl.workspace_info AS i WHERE i.owner_user_id OPERATOR(pg_catalog.=) '$o7'::pg_catalog.uuid \gset
\echo info=:info
SELECT name AS upd_name FROM wsctl.update_workspace(:'new_id', 'shadow-2') \gset
\echo upd_name=:upd_name
SELECT wsctl.wake_workspace(:'new_id') OPERATOR(pg_catalog.->>) 'action' AS wake \gset
\echo wake=:wake
SELECT deleted_at IS NOT NULL AS deleted FROM wsctl.delete_workspace(:'del_id') \gset
\echo deleted=:deleted
SELECT pg_catalog.count(*) AS temp_rows FROM pg_temp.workspaces \gset
\echo temp_rows=:temp_rows
EOF
shadow_out=$(PGOPTIONS="$role_opts" psql -X -A -t -q -v ON_ERROR_STOP=1 -U "$api" -f "$work/shadow.sql" 2>&1)
shadow_rc=$?
val() { sed -n "s/^$1=//p" <<<"$shadow_out" | head -1; }
is "7: the shadowing session ran to the end" "$shadow_rc" 0
[ "$shadow_rc" = 0 ] || diag "$(tail -3 <<<"$shadow_out")"
is "7: its own unqualified 'text' is the temp table (shadowing is real)" "$(val shadowing)" t
id7=$(val new_id)
check "7: create_workspace returns an id" is_uuid "$id7"
check "7: ... a real one, not the temp gen_random_uuid()" test "$id7" != "${owner_prefix}ff"
is "7: get_workspace returns it" "$(val got_name)" shadow
is "7: list_workspaces lists the real rows" "$(val listed)" "shadow,shadow-del"
is "7: the real workspace_info view shows both" "$(val info)" 2
is "7: update_workspace works" "$(val upd_name)" shadow-2
is "7: wake_workspace answers (unavailable: start required)" "$(val wake)" unavailable
is "7: delete_workspace works" "$(val deleted)" t
is "7: the temp workspaces table still holds only the decoy" "$(val temp_rows)" 1
is "7: the superuser sees the row in wsctl.workspaces, created now (not by the temp now())" \
	"$(q "SELECT owner_user_id || ' ' || name || ' ' || (created_at > now() - interval '1 hour') || ' ' || (updated_at > now() - interval '1 hour')
	      FROM wsctl.workspaces WHERE id = '$id7'")" "$o7 shadow-2 true true"
is "7: the decoy id is not in wsctl.workspaces" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE id IN ('${owner_prefix}fe', '${owner_prefix}ff')")" 0

# 8. Huge and malformed inputs --------------------------------------------------
mb=1048576
big="repeat('x', $mb)"
pids_before=$(q "SELECT string_agg(pid::text, ',' ORDER BY component) FROM wsctl.workers WHERE workspace_id IS NULL")
t0=$(ms)
export extra_opts="-c statement_timeout=10s"
is "8: create_workspace with a 1 MB name -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.create_workspace('$o8', $big, '$WSCTL_TEST_IMAGE', 'PENDING')")" WS422
is "8: ... a 1 MB image_ref -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.create_workspace('$o8', 'big', $big, 'PENDING')")" WS422
is "8: ... a 1 MB image_ref of valid characters -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.create_workspace('$o8', 'big', repeat('a-', $mb / 2), 'PENDING')")" WS422
is "8: ... a 1 MB description -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.create_workspace('$o8', 'big', '$WSCTL_TEST_IMAGE', 'PENDING', $big)")" WS422
is "8: ... a 1 MB memo -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.create_workspace('$o8', 'big', '$WSCTL_TEST_IMAGE', 'PENDING', NULL, $big)")" WS422
is "8: ... a 1 MB name of spaces -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.create_workspace('$o8', repeat(' ', $mb), '$WSCTL_TEST_IMAGE', 'PENDING')")" WS422
is "8: ... a 511-character pathological image_ref -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.create_workspace('$o8', 'big', repeat('a-', 255) || '!', 'PENDING')")" WS422
is "8: ... standby_ttl_seconds 2147483647 -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.create_workspace('$o8', 'big', '$WSCTL_TEST_IMAGE', 'PENDING', NULL, NULL, 2147483647)")" WS422
head -c $mb /dev/zero | tr '\0' x > "$work/x"
{ printf "SELECT wsctl.create_workspace('%s', '" "$o8"; cat "$work/x"; printf "', '%s', 'PENDING');\n" "$WSCTL_TEST_IMAGE"; } > "$work/big_name.sql"
is "8: a 1 MB name sent as a literal by the client -> WS422" "$(sqlstate_file "$api" "$work/big_name.sql")" WS422
{ printf "SELECT wsctl.get_workspace('"; cat "$work/x"; printf "');\n"; } > "$work/big_id.sql"
is "8: get_workspace with a 1 MB non-uuid literal -> 22P02" "$(sqlstate_file "$api" "$work/big_id.sql")" 22P02
is "8: get_workspace('not-a-uuid') -> 22P02" "$(sqlstate_as "$api" "SELECT wsctl.get_workspace('not-a-uuid')")" 22P02
is "8: delete_workspace('') -> 22P02" "$(sqlstate_as "$api" "SELECT wsctl.delete_workspace('')")" 22P02
is "8: set_desired_state(id, 'BOGUS') -> 22P02" \
	"$(sqlstate_as "$api" "SELECT wsctl.set_desired_state('$id7', 'BOGUS')")" 22P02
is "8: get_workspace(NULL) -> WS422" "$(sqlstate_as "$api" "SELECT wsctl.get_workspace(NULL)")" WS422
is "8: update_workspace with a 1 MB memo -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', memo => $big)")" WS422
is "8: ... a 1 MB description -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', description => $big)")" WS422
is "8: ... a 1 MB name -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', name => $big)")" WS422
is "8: ... memo of 65536 characters (the maximum) is accepted" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', memo => repeat('m', 65536))")" OK
is "8: ... memo of 65537 characters -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', memo => repeat('m', 65537))")" WS422
is "8: ... description of 4096 characters (the maximum) is accepted" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', description => repeat('d', 4096))")" OK
is "8: ... description of 4097 characters -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', description => repeat('d', 4097))")" WS422
is "8: ... name of 255 characters (the maximum) is accepted" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', name => repeat('n', 255))")" OK
is "8: ... name of 256 characters -> WS422" \
	"$(sqlstate_as "$api" "SELECT wsctl.update_workspace('$id7', name => repeat('n', 256))")" WS422
unset extra_opts
t1=$(ms)
diag "8: the input probes took $((t1 - t0)) ms"
is "8: the row keeps the accepted values only" \
	"$(q "SELECT char_length(name) || ' ' || char_length(description) || ' ' || char_length(memo) FROM wsctl.workspaces WHERE id = '$id7'")" \
	"255 4096 65536"
is "8: no workspace was created for the rejected owner" \
	"$(q "SELECT count(*) FROM wsctl.workspaces WHERE owner_user_id = '$o8'")" 0
is "8: no crash: the server and the component workers are the same processes" \
	"$(q "SELECT string_agg(pid::text, ',' ORDER BY component) FROM wsctl.workers WHERE workspace_id IS NULL") $(q "SELECT pg_postmaster_start_time()")" \
	"$pids_before $start_time"

# 9. Afterwards ----------------------------------------------------------------
for c in health_monitor reconciler; do
	t=$(q "SELECT ticks FROM wsctl.workers WHERE component = '$c' AND leader")
	check "9: $c is leader" test -n "$t"
	check "9: $c keeps ticking" wait_for 15 "SELECT leader AND ticks > ${t:--1} FROM wsctl.workers WHERE component = '$c'"
done
for o in $o3 $o7; do check "9: workspaces of $o are cleaned up" cleanup_owner "$o"; done
is "9: no role of this test is superuser" \
	"$(q "SELECT count(*) FROM pg_roles WHERE rolname IN ($role_list) AND rolsuper")" 0
is "9: wsctl_api and wsctl_admin are not superuser" \
	"$(q "SELECT count(*) FROM pg_roles WHERE rolname IN ('wsctl_api', 'wsctl_admin') AND rolsuper")" 0
is "9: the server was not restarted" "$(q "SELECT pg_postmaster_start_time()")" "$start_time"

cleanup
trap - EXIT
is "the test roles are dropped" "$(q "SELECT count(*) FROM pg_roles WHERE rolname IN ($role_list)")" 0
is "no operator of this test is left in public" \
	"$(q "SELECT count(*) FROM pg_proc WHERE proname LIKE 'wsctl\_sec\_%$sfx'")" 0
done_testing
