#!/usr/bin/env bash
# 22_archive.t: ARCHIVING and RESTORING against the test Docker engine and
# the test S3 server (issue 11, tests 1, 2 and 7).
#  1. RUNNING -> PENDING goes through STOPPING then ARCHIVING; the object and
#     its meta ("sha256:<hex of the object>", checked here after an
#     independent download) are in the bucket under
#     archives/{id}/{op_id}/home.tar.zst; volume and helper are gone; the
#     workspace shows ARCHIVED.
#  2. A home tree (2,000 files, symlinks, a hard link, empty dirs, modes,
#     owners, UTF-8 names, special files, a 200 MB random file) survives the
#     round trip: the manifest taken in the container before the archive
#     equals the one after the restore, without the special files.
#     wsctl.operation_progress moves during both transfers; for RESTORING
#     bytes_total is the object's size. wsctl.archive_compression = gzip
#     gives home.tar.gz and restores the same. A re-archive makes a new key
#     and leaves the previous one to the GC.
#  7. A wrong S3 secret: ARCHIVING fails (S3_ACCESS_DENIED) into
#     RetryExceeded, keeps the volume, commits nothing, shows no secret, and
#     a non-superuser cannot read the S3 keys; with the right secret back,
#     recover_workspace archives it.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0022-000000000001
reader=wsctl_it22_reader
tmp=$(mktemp -d "${WSCTL_TEST_TMP:-/tmp}/it22.XXXXXX")
home=$(q "SELECT current_setting('wsctl.container_mount_path')")
cleaned=

finish() {
	reset_config wsctl.archive_compression wsctl.s3_secret_key
	[ -n "$cleaned" ] || cleanup_owner $owner >/dev/null
	s3_forget_owner $owner
	q "DROP TRIGGER IF EXISTS zz_it22_ops ON wsctl.workspaces;
	   DROP FUNCTION IF EXISTS public.it22_record();
	   DROP TABLE IF EXISTS public.it22_ops;
	   DROP ROLE IF EXISTS $reader" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap finish EXIT

# Every op_id a workspace gets, with its operation: the op_id of an ARCHIVING
# is cleared when it completes, and the key must be named after it.
q "CREATE TABLE IF NOT EXISTS public.it22_ops (seq bigserial PRIMARY KEY, id uuid, operation wsctl.operation, op_id uuid);
   CREATE OR REPLACE FUNCTION public.it22_record() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
	 INSERT INTO public.it22_ops (id, operation, op_id) VALUES (NEW.id, NEW.operation, NEW.op_id);
	 RETURN NULL;
   END \$\$;
   DROP TRIGGER IF EXISTS zz_it22_ops ON wsctl.workspaces;
   CREATE TRIGGER zz_it22_ops AFTER UPDATE ON wsctl.workspaces FOR EACH ROW
	 WHEN (NEW.op_id IS NOT NULL AND (OLD.op_id IS DISTINCT FROM NEW.op_id OR OLD.operation IS DISTINCT FROM NEW.operation))
	 EXECUTE FUNCTION public.it22_record();" >/dev/null

# op_of ID OPERATION: the op_id of the workspace's last OPERATION.
op_of() { q "SELECT op_id FROM public.it22_ops WHERE id = '$1' AND operation = '$2' ORDER BY seq DESC LIMIT 1"; }
# mark: the current end of the history, for path_since.
mark() { q "SELECT coalesce(max(seq), 0) FROM public.it_history"; }
# path_since ID COLUMN SEQ: successive distinct values of COLUMN (observed or
# operation, NONE left out) in the workspace's history after SEQ.
path_since() {
	q "SELECT coalesce(string_agg(v, ' ' ORDER BY seq), '') FROM (
	     SELECT seq, $2::text AS v, lag($2::text) OVER (ORDER BY seq) AS prev
	       FROM public.it_history WHERE id = '$1' AND seq > $3 AND $2::text <> 'NONE') h
	   WHERE prev IS DISTINCT FROM v"
}
job_exists() { dk inspect "ws-$1-job" >/dev/null 2>&1; }
display() { q "SELECT display_status FROM wsctl.get_workspace('$1')"; }
# in_ws ID SCRIPT: runs SCRIPT with sh in the workspace's container, in the home.
in_ws() { dk exec "ws-$1" sh -c "cd '$home' && $2"; }

# manifest ID FILE: every entry of the home with its name, mode, owner, type,
# link count, mtime (size and symlink target for non-directories), and the
# SHA-256 of every regular file; sorted.
manifest() {
	in_ws "$1" "find . ! -type d -exec stat -c '%n|%a|%u:%g|%F|%h|%Y|%s|%N' {} + ;
	            find . -type d -exec stat -c '%n|%a|%u:%g|%F|%h|%Y' {} + ;
	            find . -type f -exec sha256sum {} + | sed 's/^\([0-9a-f]*\)  \(.*\)\$/\2|sha256 \1/'" |
		LC_ALL=C sort >"$2"
}
# without_specials FILE: the manifest lines of anything but fifos, sockets, devices.
without_specials() { grep -v -E '\|(fifo|socket|character special file|block special file)\|' "$1"; }

# watch ID OPERATION OBSERVED SECONDS FILE: samples wsctl.operation_progress of
# the workspace's OPERATION into FILE ("bytes_done bytes_total op_id", one
# line per sample) until it is observed OBSERVED with no operation; false at
# the deadline.
watch() {
	local deadline=$((SECONDS + $4))
	: >"$5"
	while [ $SECONDS -lt $deadline ]; do
		q "SELECT bytes_done || ' ' || coalesce(bytes_total, -1) || ' ' || op_id FROM wsctl.operation_progress
		    WHERE workspace_id = '$1' AND operation = '$2'" >>"$5" 2>/dev/null
		[ "$(q "SELECT observed_status = '$3' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$1'")" = t ] && return 0
		sleep 0.05
	done
	return 1
}
# distinct_positive FILE: how many different bytes_done > 0 were sampled.
distinct_positive() { awk '$1 > 0 { print $1 }' "$1" | sort -u | wc -l; }

# fetch KEY FILE: downloads the object with the independent client.
fetch() { [ "$(s3_get "$1" "$2")" = 200 ]; }
# tar_listing FILE DECOMPRESSOR: "type|name|linkname|uid:gid|mode" per entry of the archive.
tar_listing() {
	$2 -dc <"$1" | python3 -c '
import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as t:
    for m in t:
        kind = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
                tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.FIFOTYPE: "fifo",
                tarfile.CHRTYPE: "chr", tarfile.BLKTYPE: "blk"}.get(m.type, "other")
        print("%s|%s|%s|%d:%d|%o" % (kind, m.name, m.linkname, m.uid, m.gid, m.mode))
'
}

# ------------------------------------------------------------------ 1 + 2: a full tree, archived and restored
id=$(create_ws $owner archive-tree RUNNING)
check "a workspace is RUNNING" wait_state "$id" RUNNING 60

check "a tree of 2,000 files in nested dirs is written" in_ws "$id" '
	for a in $(seq -w 0 19); do for b in $(seq 0 9); do
		d=tree/d$a/s$b; mkdir -p $d
		for c in $(seq 0 9); do echo "file $a/$b/$c" >$d/f$c.txt; done
	done; done
	[ $(find tree -type f | wc -l) -eq 2000 ]'
check "symlinks (absolute, relative, with .., dangling), a hard link, empty dirs" in_ws "$id" '
	ln -s /usr/bin bin && ln -s tree/d01/s2/f3.txt rel-link && ln -s ../../d02 tree/d03/up-link &&
	ln -s nowhere dangling &&
	echo linked >hard-a && ln hard-a tree/hard-b &&
	mkdir -p empty/nested/deeper empty2'
check "modes 700, 640, 755, owner 1000:1000, UTF-8 names with spaces" in_ws "$id" '
	mkdir private && echo secret >private/key && chmod 640 private/key && chmod 700 private &&
	printf "#!/bin/sh\necho hi\n" >run.sh && chmod 755 run.sh &&
	mkdir owned && echo mine >owned/file && chmod 600 owned/file && chown -R 1000:1000 owned run.sh &&
	echo naive >"naïve file.txt" && mkdir -p "日本/漢字 dir" && echo kanji >"日本/漢字 dir/ファイル.txt"'
check "special files: a fifo and a character device" in_ws "$id" 'mkdir sp && mkfifo sp/fifo && mknod sp/null c 1 3'
# busybox nc has no unix sockets; syslogd binds where /dev/log points.
in_ws "$id" "ln -sf '$home/sp/sock' /dev/log && syslogd -O /dev/null" >/dev/null 2>&1
check "  and a unix socket (busybox syslogd bound at sp/sock)" wait_cmd 10 in_ws "$id" 'test -S sp/sock'
check "a 200 MB file of random data" in_ws "$id" 'head -c 209715200 /dev/urandom >big.bin && [ $(stat -c %s big.bin) -eq 209715200 ]'

manifest "$id" "$tmp/before"
check "the manifest before has the tree ($(wc -l <"$tmp/before") lines), the specials, the hard link twice" \
	test "$(grep -c '|regular file|' "$tmp/before")" -ge 2008 \
	-a "$(grep -c -E '\|(fifo|socket|character special file)\|' "$tmp/before")" -eq 3 \
	-a "$(grep -c -E '^\./(hard-a|tree/hard-b)\|644\|0:0\|regular file\|2\|' "$tmp/before")" -eq 2

m=$(mark)
q "SELECT wsctl.set_desired_state('$id', 'PENDING')" >/dev/null
t0=$SECONDS
check "PENDING: archived (observed PENDING, no operation)" watch "$id" ARCHIVING PENDING 150 "$tmp/progress-archive"
diag "ARCHIVING of the 200 MB home took about $((SECONDS - t0)) s (stop included)"
is "  the path: STOPPING then ARCHIVING" "$(path_since "$id" operation "$m")" "STOPPING ARCHIVING"
is "  observed RUNNING, STANDBY, PENDING" "$(path_since "$id" observed "$m")" "RUNNING STANDBY PENDING"
key=$(ws "$id" archive_key)
op=$(op_of "$id" ARCHIVING)
is "  archive_key is archives/{id}/{op_id of the ARCHIVING}/home.tar.zst" "$key" "archives/$id/$op/home.tar.zst"
check "  the op_id is a uuid" test -n "$op"
is "  op_id is NULL once archived" "$(ws "$id" "coalesce(op_id::text, 'null')")" null
is "  display ARCHIVED (get_workspace)" "$(display "$id")" ARCHIVED
is "  display ARCHIVED (workspace_info)" "$(q "SELECT observed_status || ' ' || display_status FROM wsctl.workspace_info WHERE id = '$id'")" "PENDING ARCHIVED"
check "  the object is in the bucket" s3_exists "$key"
check "  its meta is in the bucket" s3_exists "$key.meta"
check "  the object downloads" fetch "$key" "$tmp/obj1"
obj1_size=$(stat -c %s "$tmp/obj1")
obj1_sha=$(sha256sum "$tmp/obj1" | cut -d' ' -f1)
is "  the meta is sha256:<SHA-256 of the object, computed here>" "$(s3_cat "$key.meta")" "sha256:$obj1_sha"
is "  s3_sha256 agrees" "$(s3_sha256 "$key")" "$obj1_sha"
is "  the object is a zstd frame" "$(head -c 4 "$tmp/obj1" | od -An -tx1 | tr -d ' ')" 28b52ffd
check "  the object holds the 200 MB (random data does not compress): $obj1_size bytes" test "$obj1_size" -gt 209715200
check "  the volume ws-$id-home is gone" bash -c "! docker -H '$DOCKER_HOST' volume inspect 'ws-$id-home' >/dev/null 2>&1"
check "  the helper ws-$id-job is gone" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$id-job' >/dev/null 2>&1"
check "  no container ws-$id" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$id' >/dev/null 2>&1"
is "  no helper container (label wsctl.role=job) of it is left" \
	"$(dk ps -aq --filter label=wsctl.role=job --filter "name=ws-$id" | wc -l)" 0
check "  ARCHIVING progress: bytes_done took >= 2 different values > 0 ($(distinct_positive "$tmp/progress-archive") seen)" \
	test "$(distinct_positive "$tmp/progress-archive")" -ge 2
is "  the progress rows name the ARCHIVING's op_id" "$(awk '{ print $3 }' "$tmp/progress-archive" | sort -u)" "$op"

tar_listing "$tmp/obj1" zstd >"$tmp/list1"
is "  the archive's first entry is the root, stored as \".\"" "$(head -1 "$tmp/list1" | cut -d'|' -f1,2)" "dir|."
is "  every name is relative and below the root (no data/ prefix, no /, no ..)" \
	"$(cut -d'|' -f2 "$tmp/list1" | grep -c -E '^(/|data/|data$|\.\./)|/\.\./' || true)" 0
is "  no fifo, device or socket is stored" "$(cut -d'|' -f1 "$tmp/list1" | grep -c -v -E '^(file|dir|symlink|hardlink)$' || true)" 0
check "  bin is stored as a symlink to /usr/bin" grep -qx 'symlink|bin|/usr/bin|0:0|777' "$tmp/list1"
check "  one of hard-a and tree/hard-b is stored as a hard link to the other" \
	grep -q -E '^hardlink\|(hard-a\|tree/hard-b|tree/hard-b\|hard-a)\|' "$tmp/list1"
check "  the UTF-8 names are stored as they are" grep -q '^file|日本/漢字 dir/ファイル.txt|' "$tmp/list1"

# Restore.
m=$(mark)
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
t0=$SECONDS
check "RUNNING again: restored and started" watch "$id" RESTORING RUNNING 150 "$tmp/progress-restore"
diag "RESTORING + STARTING took about $((SECONDS - t0)) s"
is "  the path: RESTORING then STARTING" "$(path_since "$id" operation "$m")" "RESTORING STARTING"
is "  archive_key stays after the restore" "$(ws "$id" archive_key)" "$key"
check "  RESTORING progress: bytes_done took >= 2 different values > 0 ($(distinct_positive "$tmp/progress-restore") seen)" \
	test "$(distinct_positive "$tmp/progress-restore")" -ge 2
is "  RESTORING bytes_total is the object's size" \
	"$(awk '$1 > 0 { print $2 }' "$tmp/progress-restore" | sort -u)" "$obj1_size"
check "  bytes_done never exceeds bytes_total" awk '$1 > $2 { exit 1 }' "$tmp/progress-restore"
check "  the helper is gone after the restore" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$id-job' >/dev/null 2>&1"

manifest "$id" "$tmp/after"
without_specials "$tmp/before" >"$tmp/before-data"
if diff "$tmp/before-data" "$tmp/after" >"$tmp/diff"; then
	ok "  the manifest after the restore equals the one before, special files left out ($(wc -l <"$tmp/after") lines)"
else
	not_ok "  the manifest after the restore equals the one before, special files left out"
	head -40 "$tmp/diff" | while IFS= read -r l; do diag "  $l"; done
fi
is "  no fifo, socket or device came back" "$(grep -c -E '\|(fifo|socket|character special file)\|' "$tmp/after" || true)" 0
is "  the hard link is one inode again" \
	"$(in_ws "$id" 'stat -c %i hard-a; stat -c %i tree/hard-b' | sort -u | wc -l)" 1
is "  bin -> /usr/bin and rel-link -> tree/d01/s2/f3.txt are symlinks" \
	"$(in_ws "$id" 'readlink bin; readlink rel-link; cat rel-link')" "$(printf '/usr/bin\ntree/d01/s2/f3.txt\nfile 01/2/3')"
is "  the 200 MB file's SHA-256 is unchanged" \
	"$(grep '^\./big.bin|sha256 ' "$tmp/after" | cut -d' ' -f2)" "$(grep '^\./big.bin|sha256 ' "$tmp/before" | cut -d' ' -f2)"

# Re-archive after a restore: a new op_id, a new key; the old one stays (GC's business).
in_ws "$id" 'rm big.bin && echo second >second.txt' >/dev/null
q "SELECT wsctl.set_desired_state('$id', 'PENDING')" >/dev/null
check "re-archived" wait_state "$id" PENDING 90
key2=$(ws "$id" archive_key)
op2=$(op_of "$id" ARCHIVING)
is "  the new key is named after the new ARCHIVING's op_id" "$key2" "archives/$id/$op2/home.tar.zst"
check "  a new op_id ($op2), so a new key" test -n "$op2" -a "$op2" != "$op"
check "  the new object is in the bucket" s3_exists "$key2"
check "  and its meta" s3_exists "$key2.meta"
is "  the new meta matches the new object" "$(s3_cat "$key2.meta")" "sha256:$(s3_sha256 "$key2")"
check "  the previous object is still in the bucket" s3_exists "$key"
is "  the previous meta too, unchanged" "$(s3_cat "$key.meta")" "sha256:$obj1_sha"
is "  the listing of archives/$id/ holds both archives" "$(s3_list "archives/$id/" | LC_ALL=C sort | paste -sd' ')" \
	"$(printf '%s\n' "$key" "$key.meta" "$key2" "$key2.meta" | LC_ALL=C sort | paste -sd' ')"

# ------------------------------------------------------------------ gzip
check "wsctl.archive_compression = gzip" set_config wsctl.archive_compression gzip
gz=$(create_ws $owner archive-gzip RUNNING)
check "a second workspace is RUNNING" wait_state "$gz" RUNNING 60
check "a small tree is written" in_ws "$gz" '
	mkdir -p a/b/c empty && echo one >a/one && echo two >a/b/two && chmod 640 a/b/two &&
	ln -s /usr/bin bin && ln -s b/two a/rel && echo h >hl && ln hl a/b/c/hl2 &&
	echo u >"naïve file.txt" && chown 1000:1000 a/one && mkfifo fifo'
manifest "$gz" "$tmp/gz-before"
q "SELECT wsctl.set_desired_state('$gz', 'PENDING')" >/dev/null
check "archived" wait_state "$gz" PENDING 90
gkey=$(ws "$gz" archive_key)
is "  to home.tar.gz under the ARCHIVING's op_id" "$gkey" "archives/$gz/$(op_of "$gz" ARCHIVING)/home.tar.gz"
check "  the object downloads" fetch "$gkey" "$tmp/obj-gz"
is "  it is gzip" "$(head -c 2 "$tmp/obj-gz" | od -An -tx1 | tr -d ' ')" 1f8b
is "  the meta matches it" "$(s3_cat "$gkey.meta")" "sha256:$(sha256sum "$tmp/obj-gz" | cut -d' ' -f1)"
check "  it lists as a tar with the root stored as \".\"" bash -c "$(declare -f tar_listing); tar_listing '$tmp/obj-gz' gzip 2>/dev/null | head -1 | grep -q '^dir|\.|'"
check "  the volume is gone" bash -c "! docker -H '$DOCKER_HOST' volume inspect 'ws-$gz-home' >/dev/null 2>&1"
reset_config wsctl.archive_compression
q "SELECT wsctl.set_desired_state('$gz', 'RUNNING')" >/dev/null
check "restored from gzip (with zstd the default again) and RUNNING" wait_state "$gz" RUNNING 90
manifest "$gz" "$tmp/gz-after"
without_specials "$tmp/gz-before" >"$tmp/gz-before-data"
if diff "$tmp/gz-before-data" "$tmp/gz-after" >"$tmp/gz-diff"; then
	ok "  the manifest is the same, the fifo left out ($(wc -l <"$tmp/gz-after") lines)"
else
	not_ok "  the manifest is the same, the fifo left out"
	head -40 "$tmp/gz-diff" | while IFS= read -r l; do diag "  $l"; done
fi
check "  (the fifo was there before)" grep -q '^\./fifo|.*|fifo|' "$tmp/gz-before"

# ------------------------------------------------------------------ 7: a wrong secret
wrong="wrong-it22-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
right=$WSCTL_S3_SECRET_KEY
sec=$(create_ws $owner archive-secret RUNNING)
check "a third workspace is RUNNING" wait_state "$sec" RUNNING 60
in_ws "$sec" 'echo precious >keep.txt' >/dev/null
check "wsctl.s3_secret_key is set to a wrong secret" set_config wsctl.s3_secret_key "$wrong"
q "SELECT wsctl.set_desired_state('$sec', 'PENDING')" >/dev/null
check "ARCHIVING with the wrong secret ends in ERROR RetryExceeded" \
	wait_for 90 "SELECT error_info ->> 'reason' = 'RetryExceeded' AND (error_info ->> 'is_terminal')::bool FROM wsctl.workspaces WHERE id = '$sec'"
is "  the failed operation was ARCHIVING" "$(ws "$sec" "error_info ->> 'operation'")" ARCHIVING
is "  the last code is S3_ACCESS_DENIED" "$(ws "$sec" "error_info -> 'context' ->> 'code'")" S3_ACCESS_DENIED
is "  after max_retries + 1 attempts" "$(ws "$sec" error_count)" "$(( $(q "SELECT current_setting('wsctl.max_retries')") + 1 ))"
check "  display ERROR" wait_for 20 "SELECT display_status = 'ERROR' FROM wsctl.get_workspace('$sec')"
is "  no archive_key" "$(ws "$sec" "coalesce(archive_key, 'null')")" null
check "  the volume is kept" volume_exists "$sec"
check "  no helper is left" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$sec-job' >/dev/null 2>&1"
failed_op=$(op_of "$sec" ARCHIVING)
is "  nothing was committed under archives/$sec/" "$(s3_list "archives/$sec/" | grep -c -v '^$' || true)" 0
leak=$(q "SELECT coalesce(error_message, '') || ' ' || coalesce(error_info::text, '') || ' ' ||
              coalesce((SELECT string_agg(payload::text, ' ') FROM wsctl.events WHERE workspace_id = '$sec'), '')
            FROM wsctl.workspaces WHERE id = '$sec'")
diag "error_message: $(ws "$sec" error_message)"
check "  error_message says access was denied" bash -c "grep -q -i -E 'denied|403|SignatureDoesNotMatch' <<<\"\$1\"" _ "$(ws "$sec" error_message)"
check "  neither error_message, error_info nor the events contain the wrong secret" bash -c '[[ $1 != *"$2"* ]]' _ "$leak" "$wrong"
check "  nor the right one" bash -c '[[ $1 != *"$2"* ]]' _ "$leak" "$right"

# What a non-superuser sees of the S3 settings.
q "DROP ROLE IF EXISTS $reader; CREATE ROLE $reader LOGIN" >/dev/null
as_reader() { psql -X -A -t -q -U "$reader" -c "$1" 2>&1; }
seen=$(as_reader "SELECT name || '=' || setting FROM pg_settings WHERE name LIKE 'wsctl.s3_%'")
diag "a non-superuser sees: $(paste -sd' ' <<<"$seen")"
check "a non-superuser's pg_settings lists other S3 settings (the query works)" grep -q '^wsctl.s3_bucket=' <<<"$seen"
check "  but not wsctl.s3_secret_key nor wsctl.s3_access_key" bash -c '! grep -q -E "^wsctl\.s3_(secret|access)_key" <<<"$1"' _ "$seen"
check "  no secret and no access key value in what it sees" \
	bash -c '[[ $1 != *"$2"* && $1 != *"$3"* && $1 != *"$4"* ]]' _ "$seen" "$wrong" "$right" "$WSCTL_S3_ACCESS_KEY"
out=$(as_reader "SHOW wsctl.s3_secret_key")
check "  SHOW wsctl.s3_secret_key is refused" bash -c '[[ $1 == *"ERROR"* && $1 == *"superuser"* && $1 != *"$2"* ]]' _ "$out" "$wrong"
out=$(as_reader "SHOW wsctl.s3_access_key")
check "  SHOW wsctl.s3_access_key is refused" bash -c '[[ $1 == *"ERROR"* && $1 != *"$2"* ]]' _ "$out" "$WSCTL_S3_ACCESS_KEY"
out=$(as_reader "SELECT current_setting('wsctl.s3_secret_key')")
check "  current_setting('wsctl.s3_secret_key') is refused" bash -c '[[ $1 == *"ERROR"* && $1 != *"$2"* ]]' _ "$out" "$wrong"
check "  (the superuser does see wsctl.s3_access_key in pg_settings: the check could fail)" \
	test "$(q "SELECT setting FROM pg_settings WHERE name = 'wsctl.s3_access_key'")" = "$WSCTL_S3_ACCESS_KEY"
q "DROP ROLE $reader" >/dev/null

# The right secret back, then recovery.
reset_config wsctl.s3_secret_key
check "the right secret is back" wait_for 10 "SELECT current_setting('wsctl.s3_secret_key') = '$right'"
is "recover_workspace clears the error" \
	"$(q "SELECT coalesce(error_info::text, 'none') || ' ' || error_count FROM wsctl.recover_workspace('$sec')")" "none 0"
check "  the reconciler archives it: PENDING" wait_state "$sec" PENDING 90
skey=$(ws "$sec" archive_key)
is "  display ARCHIVED" "$(display "$sec")" ARCHIVED
is "  the key is named after the op_id the failed attempts had" "$skey" "archives/$sec/$failed_op/home.tar.zst"
check "  object in the bucket" s3_exists "$skey"
is "  meta in the bucket, matching" "$(s3_cat "$skey.meta")" "sha256:$(s3_sha256 "$skey")"
is "  no error left" "$(ws "$sec" "coalesce(error_info::text, 'none')")" none
check "  the volume is gone" bash -c "! docker -H '$DOCKER_HOST' volume inspect 'ws-$sec-home' >/dev/null 2>&1"
q "SELECT wsctl.set_desired_state('$sec', 'RUNNING')" >/dev/null
check "  and it restores: RUNNING" wait_state "$sec" RUNNING 90
is "  with its file" "$(in_ws "$sec" 'cat keep.txt')" precious

check "cleanup" cleanup_owner $owner && cleaned=1
done_testing
