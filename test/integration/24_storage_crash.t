#!/usr/bin/env bash
# 24_storage_crash.t: a home survives crashes and S3 outages in the middle of
# a transfer (issue tests 3 and 4). Needs WSCTL_PGDATA and the test S3 server
# (WSCTL_S3_*, WSCTL_RGW_DIR).
#  1. SIGKILL of the operation worker in the middle of the upload of a
#     150 MB home: ARCHIVING is retried under the same op_id and ends with
#     exactly one archive (and its meta, which matches it), the volume gone.
#  2. An immediate-mode PostgreSQL restart in the middle of the restore of
#     that archive: RESTORING starts over and the workspace runs with the same
#     data; no helper container is left and the archive stays in the bucket.
#     (This restore is also the data check of 1: the RGW test cluster keeps
#     its objects in RAM, so the file uploads one 150 MB home, not two.)
#  2b. RESTORING stopped by its timeout (a partial volume may be left), then
#     recover_workspace: the restore runs again and the home is whole.
#  3. radosgw stopped in the middle of an upload: the volume is never removed
#     without a committed archive of this operation, whether radosgw is back
#     within the retries (a: archived) or not (b: ERROR RetryExceeded with the
#     volume kept; recover_workspace then archives it under the same op_id).
#     Homes of many small files keep the upload going for seconds with a
#     small archive.
. "$(dirname "$0")/lib.sh"
pg_ctl=/usr/lib/postgresql/15/bin/pg_ctl
owner_prefix=00000000-0000-0000-0024-
home=/home/coder
big_mb=150
small_files=25000
rgw_down=0

finish() {
	if [ "$rgw_down" = 1 ]; then rgw_start; rgw_down=0; fi
	reset_config wsctl.max_retries wsctl.retry_delay wsctl.timeout_restoring
}
trap finish EXIT

# wait_server: the server is back and its workers lead again after a crash-restart.
wait_server() { wait_leaders 90; }

# fill_big ID MB: MB of random data and a small tree (modes, owners, a symlink, UTF-8 names).
fill_big() {
	dk exec "ws-$1" sh -c "cd $home && head -c $(($2 * 1048576)) /dev/urandom > big &&
		mkdir -p src/deep && echo hello > src/deep/a.txt && echo 'ü' > 'src/naïve name.txt' &&
		ln -s deep/a.txt src/link && chmod 700 src && chmod 640 src/deep/a.txt && chown -R 1000:1000 src"
}
# fill_many ID N: N small files (a long tar stream that compresses to little).
fill_many() {
	dk exec "ws-$1" sh -c "mkdir -p $home/many && cd $home/many &&
		awk 'BEGIN { for (i = 0; i < $2; i++) { f = \"f\" i; print \"line of file\", i > f; close(f) } }' &&
		echo 'ü' > $home/marker && chown 1000:1000 $home/marker"
}
# home_sum ID: one digest of the home: each path with its type, mode, owner and
# mtime, and each file's SHA-256. Empty if the container cannot be reached.
home_sum() {
	local out
	out=$(dk exec "ws-$1" sh -c "cd $home && { find . -exec stat -c '%n %F %a %u:%g %Y' {} + &&
		find . -type f -exec sha256sum {} + ; } | sort") || return 1
	sha256sum <<<"$out" | cut -d' ' -f1
}

# in_flight ID OPERATION [SECONDS]: polls (every 20 ms) until OPERATION has
# moved bytes for workspace ID; prints "PID BYTES_DONE BYTES_TOTAL ARCHIVE_KEY"
# (its acting worker; bytes_total -1 when unknown; the workspace's archive_key or -).
in_flight() {
	local row= deadline=$((SECONDS + ${3:-60}))
	while [ -z "$row" ] && [ $SECONDS -lt $deadline ]; do
		row=$(q "SELECT w.pid || ' ' || p.bytes_done || ' ' || coalesce(p.bytes_total, -1) || ' ' || coalesce(x.archive_key, '-')
		           FROM wsctl.operation_progress p
		           JOIN wsctl.workers w ON w.workspace_id = p.workspace_id
		           JOIN wsctl.workspaces x ON x.id = p.workspace_id
		          WHERE p.workspace_id = '$1' AND p.operation = '$2' AND p.bytes_done > 0
		            AND w.component = 'operation $2 (acting)' AND w.pid IS NOT NULL" 2>/dev/null)
		[ -n "$row" ] || sleep 0.02
	done
	echo "$row"
}

archived_sql() {	# ID: the workspace is archived and nothing is in flight
	echo "SELECT observed_status = 'PENDING' AND operation = 'NONE' AND archive_key IS NOT NULL
	        FROM wsctl.workspaces WHERE id = '$1'"
}
no_volume() { ! volume_exists "$1"; }
empty_prefix() { local l; l=$(s3_list "$1") && [ -z "$l" ]; }	# PREFIX: listed, and nothing there
no_job_container() { ! dk inspect "ws-$1-job" >/dev/null 2>&1; }
job_container_exists() { dk inspect "ws-$1-job" >/dev/null 2>&1; }
# error_events ID OPERATION: the error messages the outbox carried for OPERATION, one a line.
error_events() {
	q "SELECT payload ->> 'error_message' FROM wsctl.events
	    WHERE workspace_id = '$1' AND payload ->> 'event' = 'error' AND payload ->> 'operation' = '$2'
	    ORDER BY entry"
}
# archive_checks ID KEY PREFIX: under archives/ID/ the bucket holds exactly KEY
# and KEY.meta, KEY is below PREFIX, and the meta names KEY's SHA-256.
archive_checks() {
	local listing sha meta
	case "$2" in "$3"*) ok "  archive_key $2 is below $3" ;; *) not_ok "  archive_key '$2' is below $3" ;; esac
	listing=$(s3_list "archives/$1/")
	is "  archives/$1/ holds exactly the archive and its meta" "$listing" "$2
$2.meta"
	sha=$(s3_sha256 "$2")
	meta=$(s3_cat "$2.meta")
	if [ -n "$sha" ] && [ "$meta" = "sha256:$sha" ]; then
		ok "  its meta matches the object (sha256:${sha:0:16}...)"
	else
		not_ok "  its meta matches the object"; diag "  meta '$meta', object sha256 '$sha'"
	fi
}
# s3_forget ID: deletes what is under archives/ID/ (a deleted workspace's
# archives, orphans the Archive GC would collect later).
s3_forget() {
	local k
	for k in $(s3_list "archives/$1/"); do s3_delete "$k" >/dev/null; done
}

# watch_home ID OP_ID SECONDS SQL: polls until SQL returns t (false at the
# deadline). At every sample the home must exist somewhere: the volume, or
# else a committed archive_key of this operation (read after the volume, so a
# removal right after the commit is not miscounted). Adds the samples without
# either to $lost, all samples to $samples.
watch_home() {
	local deadline=$((SECONDS + $3)) committed
	while [ $SECONDS -lt $deadline ]; do
		samples=$((samples + 1))
		if ! volume_exists "$1"; then
			committed=$(q "SELECT starts_with(coalesce(archive_key, ''), 'archives/$1/$2/') FROM wsctl.workspaces WHERE id = '$1'")
			if [ "$committed" != t ]; then
				lost=$((lost + 1))
				diag "  volume gone without a committed archive ($(ws "$1" "observed_status || ' ' || operation || ' ' || coalesce(archive_key, 'no archive_key')"))"
			fi
		fi
		[ "$(q "$4" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}

check "the test S3 server is known (WSCTL_S3_ENDPOINT, WSCTL_RGW_DIR)" \
	test -n "${WSCTL_S3_ENDPOINT:-}" -a -d "${WSCTL_RGW_DIR:-/nonexistent}"
is "wsctl archives to it" "$(q "SELECT current_setting('wsctl.s3_endpoint')")" "$WSCTL_S3_ENDPOINT"
set_config wsctl.max_retries 3 && set_config wsctl.retry_delay 1s
check "3 retries, retry delay 1s" test $? = 0

# ---------------------------------------------------------------- 1. SIGKILL mid-upload
o1=${owner_prefix}000000000001
id=$(create_ws $o1 kill-upload RUNNING)
check "1. a workspace runs" wait_state "$id" RUNNING 60
check "  its home gets ${big_mb} MB of random data" fill_big "$id" $big_mb
sum=$(home_sum "$id")
check "  checksum of the home taken" test -n "$sum"

q "SELECT wsctl.set_desired_state('$id', 'PENDING')" >/dev/null
read -r pid done total key <<<"$(in_flight "$id" ARCHIVING 60)"
if [ -n "${pid:-}" ]; then
	kill -KILL "$pid"
	ok "  the ARCHIVING worker (pid $pid) killed with SIGKILL after $done bytes read, no archive committed ($key)"
	diag "  progress at the kill: $(q "SELECT bytes_done || ' bytes, ' || coalesce(rate, 0) || ' B/s' FROM wsctl.operation_progress WHERE workspace_id = '$id'" 2>/dev/null)"
	is "  it had not committed an archive yet" "$key" -
else
	not_ok "  an ARCHIVING worker was seen uploading"
fi
check "  the server and its workers are back after the crash-restart" wait_server
check "  the workspace converges to PENDING with an archive" wait_for 120 "$(archived_sql "$id")"
is "  it is displayed ARCHIVED" "$(ws "$id" "wsctl.display_status(observed_status, archive_key)")" ARCHIVED
check "  the killed attempt was reported as a worker that vanished (exited without an outcome)" \
	grep -q 'exited without reporting an outcome' <<<"$(error_events "$id" ARCHIVING)"
key1=$(ws "$id" archive_key)
archive_checks "$id" "$key1" "archives/$id/"
check "  the volume is gone" no_volume "$id"
check "  no helper container is left" no_job_container "$id"
check "  no container is left" wait_cmd 10 eval "! container_exists $id"
n_uploads=$(_s3_curl "$_S3_EMPTY_SHA" "$WSCTL_S3_ENDPOINT/$WSCTL_S3_BUCKET?prefix=$(s3_uri "archives/$id/")&uploads=" | grep -o '<UploadId>' | wc -l)
diag "  unfinished multipart uploads left under archives/$id/: $n_uploads (the killed attempt's parts)"

# ---------------------------------------------------------------- 2. immediate restart mid-restore
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
read -r pid done total key <<<"$(in_flight "$id" RESTORING 60)"
if [ -n "${pid:-}" ]; then
	ok "2. RESTORING under way: $done of $total bytes downloaded (worker pid $pid)"
else
	not_ok "2. RESTORING was seen downloading"
fi
diag "restarting PostgreSQL (immediate)"
check "  pg_ctl restart -m immediate" \
	bash -c "cd / && runuser -u postgres -- '$pg_ctl' -D '$WSCTL_PGDATA' -m immediate -w -t 60 restart -l '$WSCTL_PGDATA/../postgres.log' -s"
check "  the workers are back after the restart" wait_server
check "  the workspace converges to RUNNING" wait_state "$id" RUNNING 120
check "  the interrupted restore was reported as a worker that vanished (exited without an outcome)" \
	grep -q 'exited without reporting an outcome' <<<"$(error_events "$id" RESTORING)"
is "  its home has the same data as before archiving" "$(home_sum "$id")" "$sum"
is "  big is ${big_mb} MB" "$(dk exec "ws-$id" stat -c %s $home/big 2>/dev/null)" $((big_mb * 1048576))
check "  no helper container is left" no_job_container "$id"
is "  archive_key is unchanged" "$(ws "$id" archive_key)" "$key1"
check "  the archive is still in the bucket" s3_exists "$key1"
check "  and its meta" s3_exists "$key1.meta"

# ---------------------------------------------------------------- 2b. restore timed out, then recovered
# A RESTORING stopped by its timeout can leave a partial volume behind;
# recover_workspace must not let an observation take it for the home: the
# restore runs again from an empty volume, and the home is whole.
# $small_files more files make the restore last seconds, far past the timeout.
check "2b. the home gets $small_files more files" fill_many "$id" $small_files
sum=$(home_sum "$id")
check "  checksum of the home taken" test -n "$sum"
q "SELECT wsctl.set_desired_state('$id', 'PENDING')" >/dev/null
check "  archived again" wait_for 120 "$(archived_sql "$id")"
key2=$(ws "$id" archive_key)
set_config wsctl.timeout_restoring 100ms
check "  timeout_restoring 100ms" test $? = 0
m=$(q "SELECT coalesce(max(seq), 0) FROM public.it_history")
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "  RESTORING ends in ERROR Timeout" \
	wait_for 60 "SELECT error_info ->> 'reason' = 'Timeout' AND operation = 'RESTORING' FROM wsctl.workspaces WHERE id = '$id'"
check "  the timed-out worker is gone" wait_for 30 "SELECT count(*) = 0 FROM wsctl.workers WHERE workspace_id = '$id' AND pid IS NOT NULL"
diag "  volume after the timeout: $(volume_exists "$id" && echo 'left behind (partial)' || echo removed)"
reset_config wsctl.timeout_restoring
check "  timeout_restoring back to the test value" test $? = 0
is "  recover_workspace" "$(sqlstate "SELECT wsctl.recover_workspace('$id')")" OK
is "  the restore is in flight again, same op_id, no error" \
	"$(ws "$id" "operation || ' ' || (op_id IS NOT NULL) || ' ' || coalesce(error_info::text, 'none')")" "RESTORING true none"
check "  the workspace converges to RUNNING" wait_state "$id" RUNNING 120
# (An observation of the volume during a restore is normal: only the
# worker's success completes it. What must not happen is the operation
# leaving RESTORING, the partial volume then taken for the home.)
# Each change of operation, with the status observed then: RESTORING must
# end in a completion (STANDBY), not in a recovery that clears it (ERROR).
is "  operations since the request: RESTORING until a restore succeeded, then STARTING" \
	"$(q "SELECT string_agg(operation || ':' || observed, ' ' ORDER BY seq) FROM (
	        SELECT seq, operation, observed, lag(operation) OVER (ORDER BY seq) AS prev
	          FROM public.it_history WHERE id = '$id' AND seq > $m) AS h
	       WHERE prev IS DISTINCT FROM operation")" "RESTORING:PENDING NONE:STANDBY STARTING:STANDBY NONE:RUNNING"
is "  its home is whole: the same data as before archiving" "$(home_sum "$id")" "$sum"
is "  archive_key unchanged" "$(ws "$id" archive_key)" "$key2"
check "  no helper container is left" no_job_container "$id"
cleanup_owner $o1
s3_forget "$id"

# ---------------------------------------------------------------- 3. radosgw down mid-upload
# outage ID: starts ARCHIVING of a running workspace and stops radosgw once the
# upload moves bytes. Sets $op (the op_id).
outage() {
	q "SELECT wsctl.set_desired_state('$1', 'PENDING')" >/dev/null
	read -r pid done total key <<<"$(in_flight "$1" ARCHIVING 60)"
	op=$(ws "$1" op_id)
	if [ -n "${pid:-}" ] && [ "$key" = - ]; then
		ok "  ARCHIVING under way ($done bytes read, op_id $op)"
	else
		not_ok "  ARCHIVING was seen uploading, before any commit (${key:-no progress})"
	fi
	rgw_stop && rgw_down=1
	check "  radosgw stopped" test "$rgw_down" = 1
}

# 3a. radosgw back within the retries: archived, never a lost home. A 2 s
# retry delay leaves room for rgw_start (about 2 s) before the last retry.
o3=${owner_prefix}000000000003
set_config wsctl.retry_delay 2s
check "3a. retry delay 2s" test $? = 0
id=$(create_ws $o3 outage-short RUNNING)
check "  a workspace runs" wait_state "$id" RUNNING 60
check "  its home gets $small_files files" fill_many "$id" $small_files
sum=$(home_sum "$id")
check "  checksum of the home taken" test -n "$sum"
lost=0 samples=0
outage "$id"
check "  the outage fails an attempt, not terminally" \
	watch_home "$id" "$op" 30 "SELECT error_count >= 1 AND NOT coalesce((error_info ->> 'is_terminal')::bool, false) FROM wsctl.workspaces WHERE id = '$id'"
is "  with Unreachable S3_ACCESS_ERROR" "$(ws "$id" "error_info ->> 'reason' || ' ' || (error_info -> 'context' ->> 'code')")" \
	"Unreachable S3_ACCESS_ERROR"
rgw_start && rgw_down=0
check "  radosgw is back" test "$rgw_down" = 0
check "  the workspace converges to PENDING with an archive" watch_home "$id" "$op" 90 "$(archived_sql "$id")"
is "  the home existed at all $samples samples (volume, or committed archive)" "$lost" 0
is "  it never became terminal (no RetryExceeded)" \
	"$(q "SELECT count(*) FROM public.it_history WHERE id = '$id' AND error_reason = 'RetryExceeded'")" 0
archive_checks "$id" "$(ws "$id" archive_key)" "archives/$id/$op/"
check "  the volume is gone" no_volume "$id"
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "  restored, it runs" wait_state "$id" RUNNING 120
is "  with the same data" "$(home_sum "$id")" "$sum"
check "  no helper container is left" no_job_container "$id"

# 3b. radosgw down for longer than the retries: ERROR RetryExceeded, the
# volume kept; once it is back, recover_workspace archives it.
set_config wsctl.retry_delay 1s
check "3b. retry delay 1s" test $? = 0
id=$(create_ws $o3 outage-long RUNNING)
check "  a workspace runs" wait_state "$id" RUNNING 60
check "  its home gets $small_files files" fill_many "$id" $small_files
sum=$(home_sum "$id")
check "  checksum of the home taken" test -n "$sum"
lost=0 samples=0
outage "$id"
check "  the workspace ends in ERROR RetryExceeded while radosgw is down" \
	watch_home "$id" "$op" 60 "SELECT error_info ->> 'reason' = 'RetryExceeded' AND (error_info ->> 'is_terminal')::bool FROM wsctl.workspaces WHERE id = '$id'"
is "  the last failure was Unreachable S3_ACCESS_ERROR" \
	"$(ws "$id" "(error_info -> 'context' ->> 'last_reason') || ' ' || (error_info -> 'context' ->> 'code')")" \
	"Unreachable S3_ACCESS_ERROR"
check "  it is observed ERROR" wait_for 15 "SELECT observed_status = 'ERROR' FROM wsctl.workspaces WHERE id = '$id'"
check "  the volume is kept" volume_exists "$id"
is "  archive_key is NULL" "$(ws "$id" "coalesce(archive_key, 'NULL')")" NULL
is "  the op_id is kept" "$(ws "$id" op_id)" "$op"
check "  no helper container is left" no_job_container "$id"
is "  the home existed at all $samples samples" "$lost" 0
rgw_start && rgw_down=0
check "  radosgw is back" test "$rgw_down" = 0
check "  nothing complete was uploaded under the op_id" empty_prefix "archives/$id/"
is "  recover_workspace" "$(sqlstate "SELECT wsctl.recover_workspace('$id')")" OK
check "  the workspace converges to PENDING with an archive" watch_home "$id" "$op" 90 "$(archived_sql "$id")"
is "  the home existed at all $samples samples" "$lost" 0
archive_checks "$id" "$(ws "$id" archive_key)" "archives/$id/$op/"
check "  the volume is gone" no_volume "$id"
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "  restored, it runs" wait_state "$id" RUNNING 120
is "  with the same data" "$(home_sum "$id")" "$sum"

finish
cleanup_owner $o3
for id in $(q "SELECT id FROM wsctl.workspaces WHERE owner_user_id = '$o3'"); do s3_forget "$id"; done
done_testing
