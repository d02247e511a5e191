#!/usr/bin/env bash
# 32_transfer_cap.t: wsctl.max_concurrent_transfers (issue 12, "where the
# archive bytes flow"). Four workspaces are asked to archive at once with a
# cap of 1: a sampler sees at most one ARCHIVING claimed at any moment, the
# others wait unclaimed (no op_id, no attempt, their timeout not started)
# and all four end ARCHIVED; the transfer's worker runs at nice 10. A
# workspace in ERROR that keeps its failed RESTORING holds no transfer slot.
# Needs the S3 server (test/rgw.sh).
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0032-000000000001
samples=$(mktemp)
finish() {
	[ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null
	reset_config wsctl.max_concurrent_transfers
	rm -f "$samples"
	cleanup_owner $owner >/dev/null 2>&1 || true
}
trap finish EXIT

check "the cap is 2 by default" test "$(q "SHOW wsctl.max_concurrent_transfers")" = 2
check "wsctl.max_concurrent_transfers = 1" set_config wsctl.max_concurrent_transfers 1
# A RESTORING that ends in ERROR (its archive deleted behind wsctl's back)
# keeps operation RESTORING: it must not hold the only transfer slot.
e=$(create_ws $owner cap-error STANDBY)
check "a workspace STANDBY" wait_state "$e" STANDBY 60
q "SELECT wsctl.set_desired_state('$e', 'PENDING')" >/dev/null
check "  archived" wait_for 60 "SELECT observed_status = 'PENDING' AND operation = 'NONE' AND archive_key IS NOT NULL FROM wsctl.workspaces WHERE id = '$e'"
is "  its archive deleted from the bucket" "$(s3_delete "$(ws "$e" archive_key)")" 204
q "SELECT wsctl.set_desired_state('$e', 'RUNNING')" >/dev/null
check "  RUNNING asked: RESTORING ends in ERROR DataLost, the operation kept" \
	wait_for 60 "SELECT operation = 'RESTORING' AND wsctl.effective_status(observed_status, error_info) = 'ERROR' FROM wsctl.workspaces WHERE id = '$e'"
ids=()
for i in 1 2 3 4; do ids+=("$(create_ws $owner cap-$i STANDBY)"); done
list=$(printf "'%s'," "${ids[@]}"); list=${list%,}
check "four workspaces STANDBY" wait_for 60 "SELECT bool_and(observed_status = 'STANDBY' AND operation = 'NONE') FROM wsctl.workspaces WHERE id IN ($list)"
for id in "${ids[@]}"; do
	dk run --rm --network none -v "ws-$id-home:/h" "$WSCTL_TEST_IMAGE" sh -c 'head -c 3000000 /dev/urandom > /h/blob' >/dev/null
done
ok "each home gets 3 MB of random data"

# one row per sample: claimed transfers, and how many of the four wait with no op_id
# (one session, a fresh snapshot per statement)
yes "SELECT count(*) FILTER (WHERE operation = 'ARCHIVING') || ' ' ||
            count(*) FILTER (WHERE operation = 'NONE' AND desired_state = 'PENDING' AND archive_key IS NULL AND op_id IS NULL)
       FROM wsctl.workspaces WHERE id IN ($list);" | psql -X -A -t -q >"$samples" 2>/dev/null &
sampler=$!
q "SELECT count(wsctl.set_desired_state(id, 'PENDING')) FROM wsctl.workspaces WHERE id IN ($list)" >/dev/null
nice_seen=
deadline=$((SECONDS + 60))
while [ -z "$nice_seen" ] && [ $SECONDS -lt $deadline ]; do
	pid=$(q "SELECT pid FROM wsctl.workers WHERE component LIKE 'operation %(acting)' AND workspace_id IN ($list) AND pid IS NOT NULL LIMIT 1" 2>/dev/null)
	[ -n "$pid" ] && nice_seen=$(ps -o ni= -p "$pid" 2>/dev/null | tr -d ' ')
	[ "$nice_seen" = 0 ] && nice_seen=		# caught before it lowered its priority: look again
	[ -n "$nice_seen" ] || sleep 0.05
done
is "an ARCHIVING worker runs at nice 10" "$nice_seen" 10
check "all four end ARCHIVED" wait_for 180 "SELECT bool_and(observed_status = 'PENDING' AND operation = 'NONE' AND archive_key IS NOT NULL) FROM wsctl.workspaces WHERE id IN ($list)"
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; sampler=
n=$(wc -l <"$samples")
check "the sampler took samples ($n)" test "$n" -gt 100
is "never more than one ARCHIVING claimed at once" "$(cut -d' ' -f1 "$samples" | sort -n | tail -1)" 1
check "some samples saw workspaces waiting unclaimed (no op_id) behind the one transfer" \
	test "$(awk '$1 == 1 && $2 >= 1' "$samples" | wc -l)" -gt 0
is "the ERROR workspace still has its RESTORING (it was counted out, not cleared)" "$(ws "$e" operation)" RESTORING
is "no transfer failed or was retried (one claim each: PENDING -> ARCHIVING -> NONE)" \
	"$(for id in "${ids[@]}"; do history "$id" operation; done | sort -u)" "NONE PROVISIONING NONE ARCHIVING NONE"
done_testing
