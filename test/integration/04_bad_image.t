#!/usr/bin/env bash
# 04_bad_image.t: a workspace whose image is not on the Docker host.
#
# wsctl never pulls (no registry is reachable): PROVISIONING succeeds, then
# STARTING fails once and is retried wsctl.max_retries (3) times, each
# retry wsctl.retry_delay after the previous failure, and ends in the
# terminal RetryExceeded error: observed ERROR, operation STARTING and op_id
# kept, requests refused with WS409. A second workspace that fails the same
# way is deleted while in ERROR: it goes straight to DELETING and ends
# DELETED. Then the cause is fixed (the image is tagged locally) and
# recover_workspace() lets the HealthMonitor re-observe STANDBY and the
# reconciler start the workspace: RUNNING with a running container.
#
# Helper defined here (not in lib.sh): a test-only trigger zz_it_errors
# records every change of error_info in public.it_errors with its time,
# error_count and op_id, because it_history keeps only error_info.reason
# and gets a row on every HealthMonitor tick, so it cannot tell retries apart.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0000-0000000a0004
bad=wsctl-missing:nope

untag() { dk image inspect "$bad" >/dev/null 2>&1 && dk rmi "$bad" >/dev/null 2>&1; return 0; }
trap untag EXIT
untag	# a leftover of an interrupted run

container_absent() { ! container_exists "$1"; }
volume_absent() { ! volume_exists "$1"; }
image_absent() { ! dk image inspect "$bad" >/dev/null 2>&1; }
image_present() { dk image inspect "$1" >/dev/null 2>&1; }
# ei ID EXPR: an expression over the workspace's current error_info (alias e).
ei() { q "SELECT $2 FROM wsctl.workspaces w, LATERAL (SELECT w.error_info AS e) x WHERE w.id = '$1'"; }

q "CREATE TABLE IF NOT EXISTS public.it_errors (
	 seq bigserial PRIMARY KEY, id uuid, error_count int, error_info jsonb, op_id uuid,
	 operation wsctl.operation, at timestamptz DEFAULT clock_timestamp());
   CREATE OR REPLACE FUNCTION public.it_record_error() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
	 INSERT INTO public.it_errors (id, error_count, error_info, op_id, operation)
	 VALUES (NEW.id, NEW.error_count, NEW.error_info, NEW.op_id, NEW.operation);
	 RETURN NULL;
   END \$\$;
   DROP TRIGGER IF EXISTS zz_it_errors ON wsctl.workspaces;
   CREATE TRIGGER zz_it_errors AFTER UPDATE ON wsctl.workspaces FOR EACH ROW
	 WHEN (OLD.error_info IS DISTINCT FROM NEW.error_info)
	 EXECUTE FUNCTION public.it_record_error();" >/dev/null

check "the image $bad is not on the Docker host" image_absent
retry_delay=$(q "SELECT extract(epoch FROM current_setting('wsctl.retry_delay')::interval)")
max_retries=$(q "SELECT current_setting('wsctl.max_retries')")
diag "wsctl.retry_delay = ${retry_delay}s, wsctl.max_retries = $max_retries"
is "wsctl.max_retries is 3" "$max_retries" 3

id=$(create_ws $owner bad-image RUNNING "$bad")
id2=$(create_ws $owner bad-image-deleted RUNNING "$bad")
check "create returns ids" test -n "$id" -a -n "$id2"

# PROVISIONING succeeds, STARTING fails until RetryExceeded.
check "it ends in RetryExceeded" \
	wait_for 60 "SELECT error_info ->> 'reason' = 'RetryExceeded' FROM wsctl.workspaces WHERE id = '$id'"
is "PROVISIONING succeeded, then STARTING" "$(history "$id" operation)" "NONE PROVISIONING NONE STARTING"
check "Docker: the volume was made" volume_exists "$id"
check "Docker: no container was made" container_absent "$id"
check "Docker: wsctl did not pull the image" image_absent

trail="FROM public.it_errors WHERE id = '$id' AND error_info IS NOT NULL"
is "failures recorded: 1, 2, 3 ActionFailed, then 4 RetryExceeded" \
	"$(q "SELECT string_agg((error_info ->> 'error_count') || ':' || (error_info ->> 'reason'), ' ' ORDER BY seq) $trail")" \
	"1:ActionFailed 2:ActionFailed 3:ActionFailed 4:RetryExceeded"
is "error_count column steps 1, 2, 3, 4 with error_info" \
	"$(q "SELECT string_agg(error_count::text, ' ' ORDER BY seq) $trail")" "1 2 3 4"
is "each attempt failed with code IMAGE_PULL_FAILED" \
	"$(q "SELECT string_agg(coalesce(error_info #>> '{context,code}', '-'), ' ' ORDER BY seq) $trail")" \
	"IMAGE_PULL_FAILED IMAGE_PULL_FAILED IMAGE_PULL_FAILED IMAGE_PULL_FAILED"
is "every failure is of operation STARTING" \
	"$(q "SELECT string_agg(DISTINCT error_info ->> 'operation', ',') $trail")" STARTING
gaps=$(q "SELECT string_agg(round(extract(epoch FROM at - prev)::numeric, 2)::text, ' ' ORDER BY seq)
          FROM (SELECT seq, at, lag(at) OVER (ORDER BY seq) AS prev $trail) g WHERE prev IS NOT NULL")
diag "seconds between consecutive failures (it_errors.at): $gaps"
is "consecutive failures are >= retry_delay apart (it_errors.at)" \
	"$(q "SELECT count(*) FILTER (WHERE at - prev >= current_setting('wsctl.retry_delay')::interval) || '/' || count(*)
	      FROM (SELECT at, lag(at) OVER (ORDER BY seq) AS prev $trail) g WHERE prev IS NOT NULL")" 3/3
is "consecutive failures are >= retry_delay apart (error_info.occurred_at)" \
	"$(q "SELECT count(*) FILTER (WHERE t - prev >= current_setting('wsctl.retry_delay')::interval) || '/' || count(*)
	      FROM (SELECT t, lag(t) OVER (ORDER BY seq) AS prev
	              FROM (SELECT seq, (error_info ->> 'occurred_at')::timestamptz AS t $trail) a) g
	     WHERE prev IS NOT NULL")" 3/3
is "the retries are not absurdly slow (each gap < retry_delay + 10s)" \
	"$(q "SELECT bool_and(at - prev < current_setting('wsctl.retry_delay')::interval + interval '10s')
	      FROM (SELECT at, lag(at) OVER (ORDER BY seq) AS prev $trail) g WHERE prev IS NOT NULL")" t
is "one op_id for all attempts" "$(q "SELECT count(DISTINCT op_id) || ':' || bool_and(op_id IS NOT NULL) $trail")" 1:true

# The terminal error.
is "error_info.reason RetryExceeded" "$(ei "$id" "e ->> 'reason'")" RetryExceeded
is "error_info.is_terminal true" "$(ei "$id" "e -> 'is_terminal'")" true
is "error_info.operation STARTING" "$(ei "$id" "e ->> 'operation'")" STARTING
is "error_info.error_count 4" "$(ei "$id" "e -> 'error_count'")" 4
is "error_count column 4" "$(ws "$id" error_count)" 4
is "context.last_error names the image" "$(ei "$id" "e #>> '{context,last_error}' LIKE '%$bad%'")" t
diag "context: $(ei "$id" "e -> 'context'")"
is "context.code IMAGE_PULL_FAILED or context.last_reason ActionFailed" \
	"$(ei "$id" "e #>> '{context,code}' = 'IMAGE_PULL_FAILED' OR e #>> '{context,last_reason}' = 'ActionFailed'")" t
is "context.max_retries 3" "$(ei "$id" "e #>> '{context,max_retries}'")" 3
is "occurred_at is a timestamp of the last failure" \
	"$(ei "$id" "(e ->> 'occurred_at')::timestamptz BETWEEN now() - interval '1 min' AND now()")" t
is "error_message mirrors error_info.message" "$(ei "$id" "error_message = e ->> 'message'")" t
is "previous_status STANDBY" "$(ws "$id" previous_status)" STANDBY

check "the HealthMonitor observes ERROR" \
	wait_for 30 "SELECT observed_status = 'ERROR' FROM wsctl.workspaces WHERE id = '$id'"
is "operation stays STARTING in ERROR" "$(ws "$id" operation)" STARTING
is "op_id is kept in ERROR (the one of the attempts)" \
	"$(q "SELECT w.op_id IS NOT NULL AND w.op_id = (SELECT op_id $trail ORDER BY seq DESC LIMIT 1)
	      FROM wsctl.workspaces w WHERE w.id = '$id'")" t
op_id=$(ws "$id" op_id)
is "get_workspace shows display_status ERROR" \
	"$(q "SELECT display_status FROM wsctl.get_workspace('$id')")" ERROR
is "set_desired_state(STANDBY) answers WS409" \
	"$(sqlstate "SELECT wsctl.set_desired_state('$id', 'STANDBY')")" WS409
is "set_desired_state(RUNNING) answers WS409" \
	"$(sqlstate "SELECT wsctl.set_desired_state('$id', 'RUNNING')")" WS409
is "wake_workspace says unavailable (502)" \
	"$(q "SELECT (r ->> 'action') || ' ' || (r ->> 'http_status') FROM wsctl.wake_workspace('$id') r")" "unavailable 502"
check "Docker: still no image pulled after all attempts" image_absent

# Delete while in ERROR (the second workspace, failed the same way).
check "second workspace: observed ERROR (RetryExceeded)" \
	wait_for 60 "SELECT observed_status = 'ERROR' AND error_info ->> 'reason' = 'RetryExceeded'
	             FROM wsctl.workspaces WHERE id = '$id2'"
is "second workspace: operation STARTING kept in ERROR" "$(ws "$id2" operation)" STARTING
is "second workspace: delete in ERROR succeeds" "$(sqlstate "SELECT wsctl.delete_workspace('$id2')")" OK
check "second workspace: ends DELETED with operation NONE" \
	wait_for 30 "SELECT observed_status = 'DELETED' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$id2'"
is "second workspace: STARTING is replaced by DELETING directly" \
	"$(history "$id2" operation)" "NONE PROVISIONING NONE STARTING DELETING NONE"
obs2=$(history "$id2" observed)
if [[ $obs2 =~ ^PENDING\ STANDBY\ ERROR\ (STANDBY\ )?DELETED$ ]]; then ok "second workspace: observed ERROR -> DELETED"
else not_ok "second workspace: observed ERROR -> DELETED"; diag "  got: '$obs2'"; fi
is "second workspace: deleted row has no error left" \
	"$(ws "$id2" "deleted_at IS NOT NULL AND error_info IS NULL AND error_count = 0")" t
check "second workspace: Docker: container gone" container_absent "$id2"
check "second workspace: Docker: volume gone" volume_absent "$id2"

# Fix the cause, then recover.
dk tag "$WSCTL_TEST_IMAGE" "$bad"
check "the image $bad is now on the Docker host" image_present "$bad"
is "first workspace: still ERROR before recovery" "$(ws "$id" "observed_status || ' ' || operation")" "ERROR STARTING"
# The row recover_workspace returns: the reconciler may claim STARTING again
# within milliseconds of the commit, so the table is not read afterwards.
is "recover_workspace clears the error and the operation (op_id kept)" \
	"$(q "SELECT (error_info IS NULL AND error_message IS NULL AND error_count = 0 AND op_started_at IS NULL
	              AND op_id = '$op_id')::text || '|' || operation FROM wsctl.recover_workspace('$id')")" "true|NONE"
check "the HealthMonitor re-observes and the reconciler starts it: RUNNING" wait_state "$id" RUNNING 60
is "observed path ERROR -> STANDBY -> RUNNING" "$(history "$id" observed)" "PENDING STANDBY ERROR STANDBY RUNNING"
is "operations: STARTING again after recovery" "$(history "$id" operation)" \
	"NONE PROVISIONING NONE STARTING NONE STARTING NONE"
is "no error left" "$(ws "$id" "error_info IS NULL AND error_count = 0 AND op_id IS NULL")" t
check "Docker: container ws-{id} is running" container_running "$id"
is "Docker: the container runs the image $bad" "$(dk inspect -f '{{.Config.Image}}' "ws-$id" 2>&1)" "$bad"
is "container label wsctl.workspace" "$(container_label "$id" wsctl.workspace)" "$id"
is "container label wsctl.managed" "$(container_label "$id" wsctl.managed)" true

cleanup_owner $owner
untag
check "the image $bad is untagged again" image_absent
check "the test image itself is still there" image_present "$WSCTL_TEST_IMAGE"
done_testing
