#!/usr/bin/env bash
# 13_idle_client.t: a client idle in a transaction stalls at most its own
# workspace (issue 8, item 3). One API session locks workspace A's row and
# the API's running-slot lock (wake_workspace takes both) and then sits
# idle in its transaction. A is a workspace in ERROR, which the reconciler
# looks at on every tick and the HealthMonitor observes on every tick.
# Meanwhile workspace C is created and must be provisioned and started (a
# STARTING claim, re-checked against the running limits), workspace B must
# stop, and the HealthMonitor must keep ticking.
. "$(dirname "$0")/lib.sh"
oa=00000000-0000-0000-0013-00000000000a
ob=00000000-0000-0000-0013-00000000000b
oc=00000000-0000-0000-0013-00000000000c
fifo=$(mktemp -u /tmp/wsctl-idle.XXXXXX)
holder=

finish() {
	[ -n "$holder" ] && { echo "ROLLBACK;" >&3; exec 3>&-; wait "$holder" 2>/dev/null; }
	rm -f "$fifo"
	reset_config wsctl.debug_operation_delay
}
trap finish EXIT

a=$(create_ws $oa idle-a RUNNING wsctl-no-such-image:13)
b=$(create_ws $ob idle-b RUNNING)
check "A (image missing) ends in ERROR" \
	wait_for 60 "SELECT observed_status = 'ERROR' FROM wsctl.workspaces WHERE id = '$a'"
check "B is RUNNING" wait_state "$b" RUNNING 30
# C's operations take 2 s each, so its STARTING claim surely happens while
# the idle session holds its locks.
check "operation workers report 2s after acting" set_config wsctl.debug_operation_delay 2s

c=$(create_ws $oc idle-c RUNNING)
mkfifo "$fifo"
psql -X -q -v ON_ERROR_STOP=1 <"$fifo" >/dev/null 2>&1 &
holder=$!
exec 3>"$fifo"
echo "SET application_name = 'wsctl-idle-holder'; BEGIN; SELECT wsctl.wake_workspace('$a');" >&3
check "a session is idle in transaction holding A's row lock" \
	wait_for 10 "SELECT count(*) = 1 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
	               WHERE a.application_name = 'wsctl-idle-holder' AND a.state = 'idle in transaction'
	                 AND l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock'"
check "  and the running-slot lock row" \
	wait_for 5 "SELECT count(*) = 1 FROM pg_stat_activity a
	              WHERE a.application_name = 'wsctl-idle-holder' AND a.state = 'idle in transaction'
	                AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.relation = 'wsctl.locks'::regclass)"
ticks=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'health_monitor'")
rticks=$(q "SELECT ticks FROM wsctl.workers WHERE component = 'reconciler'")

q "SELECT wsctl.set_desired_state('$b', 'STANDBY')" >/dev/null
check "B converges to STANDBY meanwhile" wait_state "$b" STANDBY 30
check "C is provisioned and started meanwhile (STARTING claimed under the held API lock)" \
	wait_state "$c" RUNNING 40
check "the HealthMonitor keeps ticking" \
	wait_for 10 "SELECT ticks >= $ticks + 5 FROM wsctl.workers WHERE component = 'health_monitor'"
check "the reconciler keeps ticking" \
	wait_for 10 "SELECT ticks >= $rticks + 5 FROM wsctl.workers WHERE component = 'reconciler'"
is "the holder is still idle in its transaction" \
	"$(q "SELECT state FROM pg_stat_activity WHERE application_name = 'wsctl-idle-holder'")" "idle in transaction"
is "no worker is waiting on a lock" \
	"$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'wsctl%' AND wait_event_type = 'Lock'")" 0

echo "ROLLBACK;" >&3; exec 3>&-; wait "$holder"; holder=
# observed_at as the API shows it: A's row needs no write (still ERROR), the
# HealthMonitor's heartbeat covers it.
check "after the holder ends, A is observed again (still ERROR)" \
	wait_for 10 "SELECT observed_status = 'ERROR' AND observed_at > now() - interval '3 s' FROM wsctl.workspace_info WHERE id = '$a'"

reset_config wsctl.debug_operation_delay
cleanup_owner $oa
cleanup_owner $ob
cleanup_owner $oc
done_testing
