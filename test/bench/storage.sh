#!/usr/bin/env bash
# storage.sh: archive and restore throughput of wsctl against the floor
# measured in the same run on the same data, and the operation worker's
# peak memory (issue 9's benchmark).
#
#   floor, archive:  Docker GET archive | zstd -1 (or gzip -1) > file, one PUT
#   floor, restore:  one GET > file, zstd -d (gzip -d) | Docker PUT archive
#   wsctl:           set_desired_state PENDING (from STANDBY) / STANDBY (from
#                    ARCHIVED), timed from the request to completion
#
# MB/s are megabytes (10^6) of the volume's tar per second. Peak RSS is the
# operation worker's VmHWM, read from /proc while it runs. Data: a mix of
# incompressible and compressible files plus many small ones (SIZE_MB,
# default 1024); BIG_MB (default 4096; 0 to skip) is archived once more for
# the memory figure only. Runs against the environment of lib.sh (see
# test/bench/run.sh, which starts one with a large enough S3 store).
. "$(dirname "$0")/../integration/lib.sh"
owner=00000000-0000-0000-0000-0000000be009
size_mb=${SIZE_MB:-1024}
big_mb=${BIG_MB:-4096}
work=$(mktemp -d /tmp/wsctl-bench-storage.XXXXXX)
trap 'rm -rf "$work"; reset_config wsctl.archive_compression wsctl.archive_part_size >/dev/null 2>&1' EXIT
# the production default, not the tests' small parts
set_config wsctl.archive_part_size 16MB >/dev/null

now() { date +%s.%N; }
mbps() { echo "scale=1; $1 / 1000000 / $2" | bc; }
secs() { echo "scale=2; $2 - $1" | bc; }

# fill ID MB: MB of data in the home: 45% random, 45% text, 10% in 4 kB files.
fill() {
	local id=$1 mb=$2
	dk exec "ws-$id" sh -c "
		cd /home/coder && mkdir -p random text small
		i=0; while [ \$i -lt $((mb * 45 / 100 / 8)) ]; do head -c 8000000 /dev/urandom > random/r\$i; i=\$((i+1)); done
		seq 1 800000 | sed 's/\$/ the quick brown fox jumps over the lazy dog/' > /tmp/t
		i=0; while [ \$i -lt $((mb * 45 / 100 / 8)) ]; do head -c 8000000 /tmp/t > text/t\$i; i=\$((i+1)); done
		i=0; while [ \$i -lt $((mb * 10 / 100 * 250)) ]; do head -c 4000 /dev/urandom > small/s\$i; i=\$((i+1)); done
		rm /tmp/t"
}

# tar_bytes ID: the size of the volume's tar as Docker streams it.
tar_bytes() {
	dk create --name "bench-$1" --network none -v "ws-$1-home:/data" "$WSCTL_TEST_IMAGE" /x >/dev/null
	curl -s --unix-socket "${DOCKER_HOST#unix://}" "http://d/v1.41/containers/bench-$1/archive?path=/data" | wc -c
}

# follow OPERATION ID KEY_BEFORE: follows the operation worker of ID until it
# exits; prints its largest VmHWM (kB) and the time (date +%s.%N) at which the
# workspace's archive_key first differed from KEY_BEFORE (0 if it never did).
follow() {
	local op=$1 id=$2 before=$3 pid='' hwm=0 v committed=0
	while [ -z "$pid" ]; do
		pid=$(q "SELECT pid FROM wsctl.workers WHERE workspace_id = '$id' AND component LIKE 'operation $op%' AND pid IS NOT NULL" 2>/dev/null)
		[ "$(ws "$id" operation)" = "$op" ] || [ -n "$pid" ] || { [ "$(ws "$id" operation)" = NONE ] && break; }
		sleep 0.05
	done
	while [ -n "$pid" ] && v=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$v" ]; do
		((v > hwm)) && hwm=$v
		if [ "$committed" = 0 ] && [ "$(ws "$id" "coalesce(archive_key, '')")" != "$before" ]; then
			committed=$(now)
		fi
		sleep 0.05
	done
	echo "$hwm $committed"
}

# run_op ID DESIRED TARGET OPERATION: prints "seconds peak_rss_kB transfer_seconds":
# seconds from the request to completion; transfer_seconds from the request to
# the commit of a new archive_key (ARCHIVING: the object and meta are in the
# bucket; what follows is the removal of the volume), else = seconds.
run_op() {
	local id=$1 t0 t1 rss committed before
	before=$(ws "$id" "coalesce(archive_key, '')")
	t0=$(now)
	q "SELECT wsctl.set_desired_state('$id', '$2')" >/dev/null
	read -r rss committed <<<"$(follow "$4" "$id" "$before")"
	wait_state "$id" "$3" 3600 || { echo "failed: $(ws "$id" error_message)" >&2; return 1; }
	t1=$(now)
	[ "$committed" != 0 ] || committed=$t1
	echo "$(secs "$t0" "$t1") $rss $(secs "$t0" "$committed")"
}

floor() {	# ID TAR_BYTES COMPRESSOR
	local id=$1 bytes=$2 c=$3 t0 t1 t2 t3 key="bench/floor.$3"
	t0=$(now)
	curl -s --unix-socket "${DOCKER_HOST#unix://}" "http://d/v1.41/containers/bench-$id/archive?path=/data" |
		"$c" -1 -c >"$work/floor"
	s3_put "$key" "$work/floor" >/dev/null
	t1=$(now)
	rm -f "$work/floor"
	t2=$(now)
	s3_get "$key" "$work/floor" >/dev/null
	"$c" -d -c <"$work/floor" | curl -s -X PUT --unix-socket "${DOCKER_HOST#unix://}" \
		-H 'Content-Type: application/x-tar' --data-binary @- "http://d/v1.41/containers/bench-$id/archive?path=/tmp" -o /dev/null
	t3=$(now)
	rm -f "$work/floor"
	s3_delete "$key" >/dev/null
	echo "$(mbps "$bytes" "$(secs "$t0" "$t1")") $(mbps "$bytes" "$(secs "$t2" "$t3")")"
}

id=$(create_ws $owner bench-storage STANDBY)
wait_state "$id" STANDBY 60 || { echo "no workspace"; exit 1; }
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
wait_state "$id" RUNNING 60
echo "filling the home with ${size_mb} MB of mixed files..."
fill "$id" "$size_mb"
q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
wait_state "$id" STANDBY 60
bytes=$(tar_bytes "$id")
echo "volume tar: $bytes bytes ($(echo "scale=0; $bytes / 1000000" | bc) MB), part size $(q "SHOW wsctl.archive_part_size")"
echo "wsctl_MB/s: from the request to the archive committed (archive) or restored (restore);"
echo "end_to_end: seconds to completion, the archive's including the removal of the volume."
printf '\n%-6s %-9s %10s %10s %6s %10s %10s %8s %10s\n' codec direction floor_MB/s wsctl_MB/s ratio transfer_s end_to_end peak_MB stored_MB
for codec in zstd gzip; do
	set_config wsctl.archive_compression "$codec" >/dev/null
	read -r f_arch f_rest <<<"$(floor "$id" "$bytes" "$codec")"
	dk rm -f "bench-$id" >/dev/null
	read -r s_arch rss_arch x_arch <<<"$(run_op "$id" PENDING PENDING ARCHIVING)" || exit 1
	stored=$(ws "$id" archive_key)
	stored_bytes=$(curl -s -I --aws-sigv4 "aws:amz:us-east-1:s3" --user "$WSCTL_S3_ACCESS_KEY:$WSCTL_S3_SECRET_KEY" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
		"$WSCTL_S3_ENDPOINT/$WSCTL_S3_BUCKET/$stored" | awk 'tolower($1) == "content-length:" {print $2+0}')
	read -r s_rest rss_rest x_rest <<<"$(run_op "$id" STANDBY STANDBY RESTORING)" || exit 1
	for dir in archive restore; do
		if [ $dir = archive ]; then f=$f_arch; s=$s_arch; r=$rss_arch; x=$x_arch; else f=$f_rest; s=$s_rest; r=$rss_rest; x=$x_rest; fi
		w=$(mbps "$bytes" "$x")
		printf '%-6s %-9s %10s %10s %6s %10s %10s %8s %10s\n' "$codec" "$dir" "$f" "$w" \
			"$(echo "scale=2; $w / $f" | bc)" "$x" "$s" "$((r / 1024))" "$((stored_bytes / 1000000))"
	done
	tar_bytes "$id" >/dev/null
done
dk rm -f "bench-$id" >/dev/null

if [ "$big_mb" -gt 0 ]; then
	reset_config wsctl.archive_compression
	q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
	wait_state "$id" RUNNING 600
	echo "adding $((big_mb - size_mb)) MB for the ${big_mb} MB memory run..."
	dk exec "ws-$id" sh -c "cd /home/coder && i=0; while [ \$i -lt $(((big_mb - size_mb) / 8)) ]; do head -c 8000000 /dev/urandom > random/b\$i; i=\$((i+1)); done"
	q "SELECT wsctl.set_desired_state('$id', 'STANDBY')" >/dev/null
	wait_state "$id" STANDBY 600
	read -r s rss x <<<"$(run_op "$id" PENDING PENDING ARCHIVING)" || exit 1
	printf '\n%s MB home: archive %s s, operation worker peak RSS %s MB\n' "$big_mb" "$s" "$((rss / 1024))"
	read -r s rss x <<<"$(run_op "$id" STANDBY STANDBY RESTORING)" || exit 1
	printf '%s MB home: restore %s s, operation worker peak RSS %s MB\n' "$big_mb" "$s" "$((rss / 1024))"
fi
cleanup_owner $owner >/dev/null
