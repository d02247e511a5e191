#!/usr/bin/env bash
# 25_archive_gc.t: the Archive GC (SPEC 4.5) against the test S3 server. The
# bucket is read and written here with lib.sh's own S3 client, never wsctl's.
#  1. A re-archive after a restore makes a new key under a new op_id; while
#     the workspace runs from its archive, that archive is in use (no orphan).
#  2. With wsctl.gc_orphan_delay = 1h (postgresql.conf) the old archive, its
#     meta and planted orphans (a superseded op_id of a live workspace; a key
#     no workspace knows, with spaces, '+', '&' and UTF-8 in it) are recorded
#     in wsctl.archive_orphans and survive; the current archive, an ERROR
#     workspace's and the objects outside archives/ are never recorded.
#  3. The first sightings survive a PostgreSQL restart (same first_seen_at).
#  4. radosgw stopped: each cycle is skipped with the archive_gc last_error in
#     wsctl.workers, no cycle completes, wsctl.archive_orphans does not move
#     although the delay is lowered so that every orphan is due; meanwhile two
#     workspaces end in ERROR (a failed ARCHIVING, a failed RESTORING).
#  5. radosgw back: the GC resumes; its first cycle deletes all the due
#     orphans, each never before first_seen_at + delay; an orphan planted
#     now survives its delay (several cycles), then goes. With the delay at
#     0 an orphan goes at once, while the current archive, the ERROR
#     workspaces' objects (archive_key, and under the failed operation's
#     op_id) and the objects outside archives/ survive every cycle.
#  6. Deleted workspaces protect nothing: their archives go.
# The delay is lowered with ALTER SYSTEM (set_config) and reset at exit.
. "$(dirname "$0")/lib.sh"
pg_ctl=/usr/lib/postgresql/15/bin/pg_ctl
owner_a=00000000-0000-0000-0025-000000000001	# archived, restored, re-archived
owner_e1=00000000-0000-0000-0025-000000000002	# ARCHIVING fails during the outage
owner_e2=00000000-0000-0000-0025-000000000003	# RESTORING fails during the outage
home=$(q "SELECT current_setting('wsctl.container_mount_path')")
tmp=$(mktemp -d "${WSCTL_TEST_TMP:-/tmp}/it25.XXXXXX")
uuid() { cat /proc/sys/kernel/random/uuid; }
run=$(uuid)	# makes the planted keys of this run unique
delay=6	# seconds: the lowered wsctl.gc_orphan_delay
rgw_down=0
cleaned=
planted=()	# every key planted here (deleted at exit if still there)
a= e1= e2=

finish() {
	local k id
	if [ "$rgw_down" = 1 ]; then rgw_start; rgw_down=0; fi
	reset_config wsctl.gc_orphan_delay
	if [ -z "$cleaned" ]; then
		for id in $owner_a $owner_e1 $owner_e2; do cleanup_owner "$id" >/dev/null; done
	fi
	for k in "${planted[@]}"; do s3_delete "$k" >/dev/null; done
	for id in $a $e1 $e2; do
		for k in $(s3_list "archives/$id/" 2>/dev/null); do s3_delete "$k" >/dev/null; done
	done
	rm -rf "$tmp"
}
trap finish EXIT

# lit STRING: STRING as an SQL literal.
lit() { printf "'%s'" "${1//\'/\'\'}"; }
# arr KEY...: the keys as an SQL text[].
arr() {
	local k out=
	for k in "$@"; do out="$out${out:+, }$(lit "$k")"; done
	echo "ARRAY[$out]::text[]"
}
dbnow() { q "SELECT extract(epoch FROM clock_timestamp())"; }
gc() { q "SELECT $1 FROM wsctl.workers WHERE component = 'archive_gc'"; }
ticks() { gc ticks; }
# wait_ticks N [SECONDS]: N more GC cycles complete.
wait_ticks() {
	local t
	t=$(ticks)
	wait_for "${2:-30}" "SELECT ticks >= $t + $1 FROM wsctl.workers WHERE component = 'archive_gc'"
}
# orphans KEY...: "key first_seen_epoch" of the keys that have a row, sorted.
orphans() {
	q "SELECT string_agg(key || ' ' || extract(epoch FROM first_seen_at), E'\n' ORDER BY key)
	     FROM wsctl.archive_orphans WHERE key = ANY ($(arr "$@"))"
}
# recorded KEY...: the keys that have a row, one a line, sorted.
recorded() { q "SELECT string_agg(key, E'\n' ORDER BY key) FROM wsctl.archive_orphans WHERE key = ANY ($(arr "$@"))"; }
sorted() { printf '%s\n' "$@" | LC_ALL=C sort; }
first_seen() { q "SELECT extract(epoch FROM first_seen_at) FROM wsctl.archive_orphans WHERE key = $(lit "$1")"; }
# plant KEY: a small object (and the key is remembered for the cleanup).
plant() {
	planted+=("$1")
	printf 'it25 %s\n' "$1" >"$tmp/body"
	[ "$(s3_put "$1" "$tmp/body")" = 200 ]
}
plant_all() { local k; for k in "$@"; do plant "$k" || { diag "  could not plant $k"; return 1; }; done; }
all_exist() { local k; for k in "$@"; do s3_exists "$k" || { diag "  missing: $k"; return 1; }; done; }
none_exists() { local k; for k in "$@"; do [ "$(s3_head "$k")" = 404 ] || return 1; done; }
empty_prefix() { local l; l=$(s3_list "$1") && [ -z "$l" ]; }
in_ws() { dk exec "ws-$1" sh -c "cd '$home' && $2"; }
archived_sql() { echo "SELECT observed_status = 'PENDING' AND operation = 'NONE' AND archive_key IS NOT NULL FROM wsctl.workspaces WHERE id = '$1'"; }
# terminal_sql ID: observed ERROR after a terminal failure (the operation stays, with its op_id).
terminal_sql() { echo "SELECT observed_status = 'ERROR' AND coalesce((error_info ->> 'is_terminal')::bool, false) FROM wsctl.workspaces WHERE id = '$1'"; }
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }	# A >= B (floats)

# watch_gone KEY DUE SECONDS: polls until KEY is gone from the bucket. Sets
# $gone_at (DB clock right after the first 404, empty if it never went) and
# $present_ticks (GC ticks read just before the last HEAD that found it).
watch_gone() {
	local deadline=$((SECONDS + $3)) t code
	gone_at= present_ticks=
	while [ $SECONDS -lt $deadline ]; do
		t=$(ticks)
		code=$(s3_head "$1")
		if [ "$code" = 404 ]; then
			gone_at=$(dbnow)
			return 0
		fi
		[ "$code" = 200 ] && present_ticks=$t
		sleep 0.1
	done
	return 1
}
# gone_checks LABEL KEY FIRST_SEEN: KEY goes within 20 s, not before FIRST_SEEN + $delay.
gone_checks() {
	if watch_gone "$2" "$3" 20; then
		ok "  $1 is deleted"
		if gt "$gone_at" "$(awk -v f="$3" -v d="$delay" 'BEGIN { printf "%.6f", f + d }')"; then
			ok "    not before its delay ($(awk -v g="$gone_at" -v f="$3" 'BEGIN { printf "%.1f", g - f }') s after first sight >= $delay s)"
		else
			not_ok "    not before its delay"; diag "  gone by $gone_at, first seen $3, delay $delay s"
		fi
	else
		not_ok "  $1 is deleted"; diag "  still there: $2"
	fi
}

# ------------------------------------------------------------------ 0. the settings, the worker
check "the test S3 server is known (WSCTL_S3_ENDPOINT, WSCTL_RGW_DIR)" \
	test -n "${WSCTL_S3_ENDPOINT:-}" -a -d "${WSCTL_RGW_DIR:-/nonexistent}"
is "wsctl archives to it" "$(q "SELECT current_setting('wsctl.s3_endpoint')")" "$WSCTL_S3_ENDPOINT"
is "wsctl.gc_interval is 1s, wsctl.gc_orphan_delay 1h" \
	"$(q "SELECT current_setting('wsctl.gc_interval') || ' ' || current_setting('wsctl.gc_orphan_delay')")" "1s 1h"
check "the archive_gc worker leads and completes cycles" \
	wait_for 60 "SELECT leader AND pid IS NOT NULL AND ticks >= 1 FROM wsctl.workers WHERE component = 'archive_gc'"
check "  one cycle about every second (3 more within 10 s)" wait_ticks 3 10

# ------------------------------------------------------------------ 1. archive, restore, re-archive
a=$(create_ws $owner_a gc-rearchive RUNNING)
e1=$(create_ws $owner_e1 gc-error-archiving RUNNING)
e2=$(create_ws $owner_e2 gc-error-restoring RUNNING)
all_run() { wait_state "$a" RUNNING 60 && wait_state "$e1" RUNNING 60 && wait_state "$e2" RUNNING 60; }
fill_all() {
	local id
	for id in "$a" "$e1" "$e2"; do in_ws "$id" 'mkdir -p d/e && echo one >d/a && echo two >d/e/b && ln -s d/a l' || return 1; done
}
check "1. three workspaces run" all_run
check "  a few files in each home" fill_all
q "SELECT wsctl.set_desired_state(id, 'PENDING') FROM unnest(ARRAY['$a', '$e2']::uuid[]) AS id" >/dev/null
check "  $a archived" wait_for 90 "$(archived_sql "$a")"
check "  $e2 archived" wait_for 90 "$(archived_sql "$e2")"
key1=$(ws "$a" archive_key)
key_e2=$(ws "$e2" archive_key)
check "  archive_key $key1 is under archives/$a/" test "${key1#archives/$a/}" != "$key1"
check "  the archive and its meta are in the bucket" all_exist "$key1" "$key1.meta" "$key_e2" "$key_e2.meta"
q "SELECT wsctl.set_desired_state('$a', 'RUNNING')" >/dev/null
check "  restored, it runs" wait_state "$a" RUNNING 90
is "  with its files" "$(in_ws "$a" 'cat d/a d/e/b l' | paste -sd' ')" "one two one"
is "  archive_key is still $key1" "$(ws "$a" archive_key)" "$key1"
check "  two more GC cycles" wait_ticks 2
is "  the archive it runs from is not an orphan" "$(recorded "$key1" "$key1.meta")" ""
in_ws "$a" 'echo three >d/c' >/dev/null
q "SELECT wsctl.set_desired_state('$a', 'PENDING')" >/dev/null
check "  re-archived" wait_for 90 "$(archived_sql "$a")"
key2=$(ws "$a" archive_key)
op1=$(cut -d/ -f3 <<<"$key1")
op2=$(cut -d/ -f3 <<<"$key2")
check "  a new key: $key2" test -n "$key2" -a "$key2" != "$key1" -a "$op2" != "$op1"
is "  named after the new op_id" "$key2" "archives/$a/$op2/${key1##*/}"
check "  the new archive and its meta are in the bucket" all_exist "$key2" "$key2.meta"
check "  the old ones still are" all_exist "$key1" "$key1.meta"
check "  Docker: the volumes of the archived workspaces are gone" eval '! volume_exists "$a" && ! volume_exists "$e2"'

# ------------------------------------------------------------------ 2. orphans recorded, delay 1h
# Planted: a superseded op_id of workspace A (what a crash and retry leave),
# a key no workspace knows (spaces, '+', '&', UTF-8), and objects outside
# archives/ (one of them only looks like it).
orphan_op="archives/$a/$(uuid)/home.tar.zst"
orphan_odd="archives/it25-$run/x y+z&ü/home tar.zst"
outside=("it25-$run.txt" "archives-it25-$run/home.tar.zst" "Archives/it25-$run/home.tar.zst" "it25/$run/archives/x")
check "2. planted: $orphan_op (+ .meta)" plant_all "$orphan_op" "$orphan_op.meta"
check "  planted: '$orphan_odd'" plant_all "$orphan_odd"
check "  planted outside archives/: ${outside[*]}" plant_all "${outside[@]}"
old=("$key1" "$key1.meta" "$orphan_op" "$orphan_op.meta" "$orphan_odd")
kept=("$key2" "$key2.meta" "$key_e2" "$key_e2.meta" "${outside[@]}")
check "  the GC records the old archive, its meta and the planted orphans" \
	wait_for 15 "SELECT count(*) = ${#old[@]} FROM wsctl.archive_orphans WHERE key = ANY ($(arr "${old[@]}"))"
snap1=$(orphans "${old[@]}")
declare -A seen1
for k in "${old[@]}"; do seen1[$k]=$(first_seen "$k"); done
check "  wait 3 more cycles" wait_ticks 3
is "  their first_seen_at did not move" "$(orphans "${old[@]}")" "$snap1"
is "  exactly these rows for archives/$a/ and archives/it25-$run/" \
	"$(q "SELECT string_agg(key, E'\n' ORDER BY key) FROM wsctl.archive_orphans
	       WHERE starts_with(key, 'archives/$a/') OR starts_with(key, 'archives/it25-$run/')")" \
	"$(sorted "${old[@]}")"
is "  the current archives (and metas) and the objects outside archives/ have no row" "$(recorded "${kept[@]}")" ""
is "  no row at all outside archives/" "$(q "SELECT count(*) FROM wsctl.archive_orphans WHERE NOT starts_with(key, 'archives/')")" 0
check "  every object is still in the bucket (delay 1h)" all_exist "${old[@]}" "${kept[@]}"
is "  archives/$a/ lists the two archives, their metas and the planted orphan" "$(s3_list "archives/$a/")" \
	"$(sorted "$key1" "$key1.meta" "$key2" "$key2.meta" "$orphan_op" "$orphan_op.meta")"

# ------------------------------------------------------------------ 3. a restart keeps the first sightings
check "3. pg_ctl restart -m fast" \
	bash -c "cd / && runuser -u postgres -- '$pg_ctl' -D '$WSCTL_PGDATA' -m fast -w -t 60 restart -l '$WSCTL_PGDATA/../postgres.log' -s"
check "  the archive_gc worker leads again and completes 2 cycles" \
	wait_for 60 "SELECT leader AND ticks >= 2 FROM wsctl.workers WHERE component = 'archive_gc'"
is "  the orphans keep their first_seen_at" "$(orphans "${old[@]}")" "$snap1"
check "  every object is still in the bucket" all_exist "${old[@]}" "${kept[@]}"

# ------------------------------------------------------------------ 4. radosgw down
t_stop=$(dbnow)
rgw_stop && rgw_down=1
check "4. radosgw stopped" test "$rgw_down" = 1
q "SELECT wsctl.set_desired_state('$e1', 'PENDING'), wsctl.set_desired_state('$e2', 'RUNNING')" >/dev/null
check "  wsctl.workers shows the archive_gc last_error: listing failed, cycle skipped" \
	wait_for 15 "SELECT last_error LIKE 'listing archives/ failed, cycle skipped: %' AND last_error_at > to_timestamp($t_stop)
	             FROM wsctl.workers WHERE component = 'archive_gc'"
diag "  last_error: $(gc last_error)"
ticks_down=$(ticks)
set_config wsctl.gc_orphan_delay "${delay}s"
check "  wsctl.gc_orphan_delay lowered to ${delay}s" test $? = 0
t_set=$(dbnow)
check "  so every recorded orphan is due (first seen >= ${delay} s ago; waited for if needed)" \
	wait_for $((delay + 5)) "SELECT bool_and(first_seen_at <= now() - interval '$delay s') FROM wsctl.archive_orphans WHERE key = ANY ($(arr "${old[@]}"))"
check "  $e1: its ARCHIVING ends in ERROR" wait_for 60 "$(terminal_sql "$e1")"
check "  $e2: its RESTORING ends in ERROR" wait_for 60 "$(terminal_sql "$e2")"
check "  the GC keeps failing (last_error_at >= 3 s after the delay was lowered)" \
	wait_for 15 "SELECT last_error_at > to_timestamp($t_set + 3) FROM wsctl.workers WHERE component = 'archive_gc'"
is "  no cycle completed while radosgw was down" "$(ticks)" "$ticks_down"
is "  wsctl.archive_orphans did not move: same rows, same first_seen_at" "$(orphans "${old[@]}")" "$snap1"
is "  and holds nothing of the ERROR workspaces" \
	"$(q "SELECT count(*) FROM wsctl.archive_orphans WHERE starts_with(key, 'archives/$e1/') OR starts_with(key, 'archives/$e2/')")" 0
is "  $e1 failed in ARCHIVING, op_id kept, no archive_key" \
	"$(ws "$e1" "operation || ' ' || (error_info ->> 'operation') || ' ' || (op_id IS NOT NULL) || ' ' || coalesce(archive_key, 'null')")" "ARCHIVING ARCHIVING true null"
is "  $e2 failed in RESTORING, archive_key kept" \
	"$(ws "$e2" "operation || ' ' || (error_info ->> 'operation') || ' ' || archive_key")" "RESTORING RESTORING $key_e2"
diag "  errors: $(ws "$e1" "error_info ->> 'reason'"), $(ws "$e2" "error_info ->> 'reason'")"
op_e1=$(ws "$e1" op_id)
rgw_start && rgw_down=0
check "  radosgw is back" test "$rgw_down" = 0

# ------------------------------------------------------------------ 5. resumed
check "5. the GC completes a cycle again" \
	wait_for 20 "SELECT ticks > $ticks_down AND last_tick > to_timestamp($t_stop) FROM wsctl.workers WHERE component = 'archive_gc'"
# A cycle's tick is counted after its deletes: the first complete cycle
# deleted every orphan that is due, not only some of them.
cycles=$(($(ticks) - ticks_down))
left=$(for k in "${old[@]}"; do [ "$(s3_head "$k")" = 404 ] || echo "$k"; done)
is "  its first cycle deleted all ${#old[@]} due orphans ($cycles cycle(s) done, $(grep -c . <<<"$left" || true) orphans left)" "$left" ""
# What a crashed attempt of the failed ARCHIVING would have left under its op_id.
key_e1="archives/$e1/$op_e1/home.tar.zst"
check "  planted under $e1's failed op_id: $key_e1 (+ .meta)" plant_all "$key_e1" "$key_e1.meta"
kept+=("$key_e1" "$key_e1.meta")
for k in "${old[@]}"; do
	gone_checks "'$k'" "$k" "${seen1[$k]}"
done
check "  their rows are gone" wait_for 10 "SELECT count(*) = 0 FROM wsctl.archive_orphans WHERE key = ANY ($(arr "${old[@]}"))"
orphan_new="archives/it25-$run/late/home.tar.zst"
check "  a new orphan planted: $orphan_new" plant "$orphan_new"
check "  recorded" wait_for 10 "SELECT count(*) = 1 FROM wsctl.archive_orphans WHERE key = $(lit "$orphan_new")"
f_new=$(first_seen "$orphan_new")
t_new=$(ticks)
gone_checks "it" "$orphan_new" "$f_new"
check "    it was still there $((${present_ticks:-0} - t_new)) cycles after its first sight (>= 3)" \
	test "$((${present_ticks:-0} - t_new))" -ge 3

set_config wsctl.gc_orphan_delay 0
check "  wsctl.gc_orphan_delay 0" test $? = 0
orphan_zero="archives/it25-$run/zero/home.tar.zst"
check "  an orphan planted now: $orphan_zero" plant "$orphan_zero"
check "    goes at once (within 10 s)" wait_cmd 10 none_exists "$orphan_zero"
check "  5 more cycles" wait_ticks 5
check "  the current archive of $a, $e2's archive, what is under $e1's op_id, and the objects outside archives/ survive" \
	all_exist "${kept[@]}"
is "  archives/$a/ holds only the current archive and its meta" "$(s3_list "archives/$a/")" "$(sorted "$key2" "$key2.meta")"
is "  none of them has a row in wsctl.archive_orphans" "$(recorded "${kept[@]}")" ""
is "  archive_key of $a is $key2" "$(ws "$a" archive_key)" "$key2"
is "  $e1 and $e2 are still in ERROR" \
	"$(q "SELECT string_agg(wsctl.effective_status(observed_status, error_info)::text, ' ' ORDER BY owner_user_id) FROM wsctl.workspaces WHERE id IN ('$e1', '$e2')")" \
	"ERROR ERROR"
check "  Docker: $e1's volume is kept (its home is not archived)" volume_exists "$e1"

# ------------------------------------------------------------------ 6. deleted workspaces
delete_all() {
	cleanup_owner $owner_a && cleanup_owner $owner_e1 && cleanup_owner $owner_e2
}
check "6. the three workspaces are deleted" delete_all && cleaned=1
is "  their deleted_at is set" "$(q "SELECT count(*) FROM wsctl.workspaces WHERE id IN ('$a', '$e1', '$e2') AND deleted_at IS NOT NULL")" 3
no_docker() {
	local id
	for id in "$a" "$e1" "$e2"; do
		! container_exists "$id" && ! volume_exists "$id" || return 1
	done
}
all_empty() { empty_prefix "archives/$a/" && empty_prefix "archives/$e1/" && empty_prefix "archives/$e2/"; }
check "  Docker: no container or volume of theirs is left" no_docker
check "  their archives are orphans now, and go (archives/$a/, $e1/, $e2/ empty)" wait_cmd 20 all_empty
check "  the objects outside archives/ are still there" all_exist "${outside[@]}"
for k in "${outside[@]}"; do s3_delete "$k" >/dev/null; done
check "  and deleted here" none_exists "${outside[@]}"
reset_config wsctl.gc_orphan_delay
check "wsctl.gc_orphan_delay is 1h again" wait_for 10 "SELECT current_setting('wsctl.gc_orphan_delay') = '1h'"
done_testing
