#!/usr/bin/env bash
# 17_error_report.t: an error caught in a worker is reported whole (issue 8,
# item 8): the server log gets its SQLSTATE, DETAIL and CONTEXT, and
# wsctl.workers.last_error the SQLSTATE and the detail, not the message
# alone. A test trigger (created by the superuser, as only the table's
# owner can) fails the reconciler's claim of one workspace.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0017-000000000001
log=${WSCTL_PG_LOG:-$PGHOST/postgres.log}

finish() {
	q "DROP TRIGGER IF EXISTS zz_it_fail ON wsctl.workspaces; DROP FUNCTION IF EXISTS public.it_fail()" >/dev/null 2>&1
}
trap finish EXIT
check "the server log is readable" test -r "$log"
q "CREATE FUNCTION public.it_fail() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
	 IF NEW.name = 'fail-in-worker' AND current_setting('wsctl.component', true) = 'reconciler' THEN
	   RAISE EXCEPTION 'planted failure' USING ERRCODE = 'XW001', DETAIL = 'planted detail', HINT = 'planted hint';
	 END IF;
	 RETURN NEW;
   END \$\$;
   CREATE TRIGGER zz_it_fail BEFORE UPDATE ON wsctl.workspaces FOR EACH ROW EXECUTE FUNCTION public.it_fail();" >/dev/null
lines_before=$(wc -l <"$log")

id=$(create_ws $owner fail-in-worker STANDBY)
check "wsctl.workers.last_error has the SQLSTATE, the message and the detail" \
	wait_for 20 "SELECT last_error = 'XW001: planted failure DETAIL: planted detail' FROM wsctl.workers WHERE component = 'reconciler'"
rpid=$(component_pid reconciler)
# The reconciler's report: its lines and the CONTEXT lines continuing them.
report=$(tail -n +"$((lines_before + 1))" "$log" | grep -F -A12 "[$rpid] ERROR:  planted failure")
check "the log has the error" grep -q "ERROR:  planted failure" <<<"$report"
check "  its DETAIL" grep -q "DETAIL:  planted detail" <<<"$report"
check "  its HINT" grep -q "HINT:  planted hint" <<<"$report"
check "  and its CONTEXT" grep -q "CONTEXT:  PL/pgSQL function public.it_fail()" <<<"$report"
check "  down to where in wsctl it happened" grep -q "function wsctl._reconcile_workspace" <<<"$report"
check "the workspace is skipped, not the tick: the reconciler keeps ticking" \
	wait_for 10 "SELECT ticks > 0 AND last_tick > now() - interval '3 s' FROM wsctl.workers WHERE component = 'reconciler'"
is "  and the workspace is still waiting for its claim" "$(ws "$id" operation)" NONE

finish
check "once the trigger is gone the workspace is provisioned" wait_state "$id" STANDBY 30
cleanup_owner $owner
done_testing
