#!/usr/bin/env bash
# 23_archive_verify.t: RESTORING trusts nothing in the bucket (issue 11,
# tests 5 and 6). Each workspace is archived normally first, then what is at
# its archive_key is changed with an independent S3 client:
#  5. bytes flipped in the object (meta unchanged): DataLost CHECKSUM_MISMATCH;
#     the meta deleted: META_NOT_FOUND; the object deleted: ARCHIVE_NOT_FOUND.
#     Each is terminal at once, the workspace is never observed RUNNING and
#     no volume (nor helper) is left.
#  6. hostile archives with a matching meta, so that only the entry checker
#     can refuse them ("../escape", "/etc/x", a file through a symlink to /,
#     a hard link to /etc/passwd): DataLost UNSAFE_ENTRY naming the entry, no
#     volume left, nothing written outside. An ordinary archive planted the
#     same way, with absolute and relative symlinks, restores them as such.
# Each workspace has its own owner, so that the ones asked to run (and left
# in ERROR) never meet wsctl.max_running_per_user.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d "${WSCTL_TEST_TMP:-/tmp}/it23.XXXXXX")
home=$(q "SELECT current_setting('wsctl.container_mount_path')")
owners=()
cleaned=

finish() {
	local o
	if [ -z "$cleaned" ]; then
		for o in "${owners[@]}"; do cleanup_owner "$o" >/dev/null; done
	fi
	for o in "${owners[@]}"; do s3_forget_owner "$o"; done
	rm -rf "$tmp"
}
trap finish EXIT

# new_ws VAR NAME DESIRED: a workspace of a fresh owner
# (00000000-0000-0000-0023-00000000000N), its id stored in VAR (not printed:
# a command substitution would run in a subshell and lose the owners list).
new_ws() {
	local o
	o=$(printf '00000000-0000-0000-0023-%012d' $((${#owners[@]} + 1)))
	owners+=("$o")
	printf -v "$1" '%s' "$(create_ws "$o" "$2" "$3")"
}
mark() { q "SELECT coalesce(max(seq), 0) FROM public.it_history"; }
# seen_since ID SEQ CONDITION: how many history rows of the workspace after SEQ match CONDITION.
seen_since() { q "SELECT count(*) FROM public.it_history WHERE id = '$1' AND seq > $2 AND ($3)"; }
in_ws() { dk exec "ws-$1" sh -c "cd '$home' && $2"; }
no_volume() { ! dk volume inspect "ws-$1-home" >/dev/null 2>&1; }
no_job() { ! dk inspect "ws-$1-job" >/dev/null 2>&1; }
# data_lost ID: waits for the terminal DataLost error; prints its code.
data_lost() {
	wait_for 60 "SELECT error_info ->> 'reason' = 'DataLost' FROM wsctl.workspaces WHERE id = '$1'" &&
		ws "$1" "error_info -> 'context' ->> 'code'"
}
# plant ID TARFILE: TARFILE compressed with zstd at the workspace's
# archive_key, with the matching meta "sha256:<hex of the compressed file>".
plant() {
	local key
	key=$(ws "$1" archive_key)
	zstd -q -f "$2" -o "$2.zst" || return 1
	printf 'sha256:%s' "$(sha256sum "$2.zst" | cut -d' ' -f1)" >"$2.meta"
	s3_put "$key" "$2.zst" >/dev/null && s3_put "$key.meta" "$2.meta" >/dev/null &&
		[ "$(s3_sha256 "$key")" = "$(sha256sum "$2.zst" | cut -d' ' -f1)" ]
}
# tar_names TARFILE: "type name -> link" of each entry, as python's tarfile reads them.
tar_names() {
	python3 -c '
import sys, tarfile
for m in tarfile.open(sys.argv[1]):
    print("%s %s -> %s" % (m.type.decode(), m.name, m.linkname))' "$1"
}

# ------------------------------------------------------------------ setup: every workspace archived
new_ws flip verify-flip RUNNING
new_ws nometa verify-nometa STANDBY
new_ws noobj verify-noobj STANDBY
new_ws dotdot hostile-dotdot STANDBY
new_ws absolute hostile-absolute STANDBY
new_ws through hostile-through-symlink STANDBY
new_ws hardout hostile-hardlink STANDBY
new_ws benign planted-benign STANDBY
all=("$nometa" "$noobj" "$dotdot" "$absolute" "$through" "$hardout" "$benign")

check "the workspace with data is RUNNING" wait_state "$flip" RUNNING 60
check "  it gets a text file and 1 MB of random data" in_ws "$flip" \
	'echo hello >hello.txt && head -c 1048576 /dev/urandom >random.bin && mkdir -p d && echo x >d/x'
archived_ok=0
for w in "${all[@]}"; do wait_state "$w" STANDBY 60 && archived_ok=$((archived_ok + 1)); done
is "the other seven are STANDBY" "$archived_ok" 7
for w in "$flip" "${all[@]}"; do q "SELECT wsctl.set_desired_state('$w', 'PENDING')" >/dev/null; done
archived_ok=0
for w in "$flip" "${all[@]}"; do
	wait_for 90 "SELECT observed_status = 'PENDING' AND operation = 'NONE' AND archive_key IS NOT NULL FROM wsctl.workspaces WHERE id = '$w'" &&
		s3_exists "$(ws "$w" archive_key).meta" && archived_ok=$((archived_ok + 1))
done
is "all eight are archived (PENDING, archive_key set, meta in the bucket)" "$archived_ok" 8

# ------------------------------------------------------------------ 5: bytes changed in the bucket
key=$(ws "$flip" archive_key)
meta=$(s3_cat "$key.meta")
is "the archive downloads" "$(s3_get "$key" "$tmp/flip.zst")" 200
size=$(stat -c %s "$tmp/flip.zst")
is "  and matches its meta before the change" "sha256:$(sha256sum "$tmp/flip.zst" | cut -d' ' -f1)" "$meta"
# flip 16 bytes in the middle (inside the random data)
python3 -c '
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
for i in range(off, off + 16): b[i] ^= 0xff
open(p, "wb").write(b)' "$tmp/flip.zst" $((size / 2))
check "16 bytes flipped in the middle of the object, uploaded to the same key" s3_put "$key" "$tmp/flip.zst"
is "  the object keeps its size" "$(stat -c %s "$tmp/flip.zst")" "$size"
check "  its SHA-256 now differs from the meta, which is unchanged" \
	test "sha256:$(s3_sha256 "$key")" != "$meta" -a "$(s3_cat "$key.meta")" = "$meta"
m=$(mark)
q "SELECT wsctl.set_desired_state('$flip', 'RUNNING')" >/dev/null
is "RUNNING requested: ERROR DataLost, code CHECKSUM_MISMATCH" "$(data_lost "$flip")" CHECKSUM_MISMATCH
check "  the message gives both hashes" bash -c '[[ $1 == *"${2#sha256:}"* ]]' _ "$(ws "$flip" error_message)" "$meta"
is "  the error is terminal, of RESTORING" "$(ws "$flip" "(error_info ->> 'is_terminal') || ' ' || (error_info ->> 'operation')")" "true RESTORING"
check "  display ERROR" wait_for 20 "SELECT display_status = 'ERROR' FROM wsctl.get_workspace('$flip')"
is "  never observed RUNNING after the archive" "$(seen_since "$flip" "$m" "observed = 'RUNNING'")" 0
is "  no STARTING was ever planned" "$(seen_since "$flip" "$m" "operation = 'STARTING'")" 0
is "  RESTORING never completed (no STANDBY without an operation)" "$(seen_since "$flip" "$m" "observed = 'STANDBY' AND operation = 'NONE'")" 0
check "  no volume ws-$flip-home is left" no_volume "$flip"
check "  no helper is left" no_job "$flip"
check "  no container ws-$flip" bash -c "! docker -H '$DOCKER_HOST' inspect 'ws-$flip' >/dev/null 2>&1"
is "  archive_key is kept" "$(ws "$flip" archive_key)" "$key"

# The meta deleted.
key=$(ws "$nometa" archive_key)
check "the meta of another archive is deleted" s3_delete "$key.meta"
is "  (it is gone)" "$(s3_head "$key.meta")" 404
check "  the object is there" s3_exists "$key"
m=$(mark)
q "SELECT wsctl.set_desired_state('$nometa', 'RUNNING')" >/dev/null
is "RUNNING requested: ERROR DataLost, code META_NOT_FOUND" "$(data_lost "$nometa")" META_NOT_FOUND
is "  never observed RUNNING" "$(seen_since "$nometa" "$m" "observed = 'RUNNING'")" 0
check "  no volume is left" no_volume "$nometa"
check "  no helper is left" no_job "$nometa"

# The object deleted, its meta kept.
key=$(ws "$noobj" archive_key)
check "the object of a third archive is deleted" s3_delete "$key"
is "  (it is gone)" "$(s3_head "$key")" 404
check "  its meta is kept" s3_exists "$key.meta"
m=$(mark)
q "SELECT wsctl.set_desired_state('$noobj', 'RUNNING')" >/dev/null
is "RUNNING requested: ERROR DataLost, code ARCHIVE_NOT_FOUND" "$(data_lost "$noobj")" ARCHIVE_NOT_FOUND
is "  never observed RUNNING" "$(seen_since "$noobj" "$m" "observed = 'RUNNING'")" 0
check "  no volume is left" no_volume "$noobj"
check "  no helper is left" no_job "$noobj"

# ------------------------------------------------------------------ 6: hostile archives
# Each starts with the root and an ordinary file (extracted before the bad
# entry is met: the volume must still go), then the bad entry.
check "hostile and ordinary tars are built with python's tarfile" python3 - "$tmp" <<'EOF'
import io, sys, tarfile, time
d = sys.argv[1]
now = int(time.time())
def entry(name, kind="file", data=b"", link="", mode=None):
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.uid, ti.gid = now, 0, 0
    if kind == "dir":
        ti.type, ti.mode = tarfile.DIRTYPE, mode or 0o755
    elif kind == "symlink":
        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, link, 0o777
    elif kind == "hardlink":
        ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, link, 0o644
    else:
        ti.size, ti.mode = len(data), mode or 0o644
    return ti, (io.BytesIO(data) if kind == "file" else None)
def write(name, entries):
    with tarfile.open("%s/%s.tar" % (d, name), "w", format=tarfile.PAX_FORMAT) as t:
        for ti, f in entries:
            t.addfile(ti, f)
# (a fresh lead for each tar: an entry's data is a stream, read once)
def lead():
    return [entry(".", "dir"), entry("before.txt", data=b"extracted before the bad entry\n")]
write("dotdot", lead() + [entry("../escape", data=b"escaped\n")])
write("absolute", lead() + [entry("/etc/x", data=b"escaped\n")])
write("through", lead() + [entry("s", "symlink", link="/"), entry("s/etc/x", data=b"escaped\n")])
write("hardout", lead() + [entry("h", "hardlink", link="/etc/passwd")])
write("benign", [entry(".", "dir"), entry("sub", "dir"), entry("sub/file", data=b"hello\n", mode=0o640),
                 entry("bin", "symlink", link="/usr/bin"), entry("rel", "symlink", link="sub/file"),
                 entry("deep", "dir"), entry("deep/up", "symlink", link="../sub/file")])
EOF
check "  they hold the entries as written" bash -c "
	$(declare -f tar_names)
	tar_names '$tmp/dotdot.tar' | grep -qx '0 ../escape -> ' &&
	tar_names '$tmp/absolute.tar' | grep -qx '0 /etc/x -> ' &&
	tar_names '$tmp/through.tar' | tail -2 | paste -sd'|' | grep -qx '2 s -> /|0 s/etc/x -> ' &&
	tar_names '$tmp/hardout.tar' | grep -qx '1 h -> /etc/passwd'"

host_x_before=$(test -e /etc/x && echo present || echo absent)
volumes_dir=${WSCTL_DOCKER_DIR:+$WSCTL_DOCKER_DIR/data/volumes}

# hostile ID TARNAME ENTRY: plants the tar, asks for RUNNING, checks the refusal.
hostile() {
	local w=$1 name=$2 bad=$3 m
	check "$name: planted at the archive_key with a matching meta" plant "$w" "$tmp/$name.tar"
	m=$(mark)
	q "SELECT wsctl.set_desired_state('$w', 'RUNNING')" >/dev/null
	is "  RUNNING requested: ERROR DataLost, code UNSAFE_ENTRY" "$(data_lost "$w")" UNSAFE_ENTRY
	check "  the message names the entry \"$bad\"" bash -c '[[ $1 == *"entry \"$2\""* ]]' _ "$(ws "$w" error_message)" "$bad"
	diag "  $(ws "$w" error_message)"
	is "  never observed RUNNING" "$(seen_since "$w" "$m" "observed = 'RUNNING'")" 0
	check "  no volume is left" no_volume "$w"
	check "  the helper is gone" no_job "$w"
}
hostile "$dotdot" dotdot "../escape"
hostile "$absolute" absolute "/etc/x"
hostile "$through" through "s/etc/x"
hostile "$hardout" hardout "h"

is "nothing at /etc/x on the host (absent before: $host_x_before)" "$(test -e /etc/x && echo present || echo absent)" absent
if [ -n "$volumes_dir" ] && [ -d "$volumes_dir" ]; then
	is "nothing named escape or x next to the volumes (where ../escape of a volume would land)" \
		"$(find "$volumes_dir" -maxdepth 3 \( -name escape -o -name x \) 2>/dev/null | wc -l)" 0
else
	diag "WSCTL_DOCKER_DIR not set: the Docker volumes directory is not checked"
fi
is "no helper container (label wsctl.role=job) is left at all" \
	"$(dk ps -aq --filter label=wsctl.role=job | wc -l)" 0
is "no container has /escape or /etc/x" \
	"$(for c in $(dk ps -q); do dk exec "$c" sh -c 'ls /escape /etc/x 2>/dev/null'; done | wc -l)" 0

# ------------------------------------------------------------------ an ordinary planted archive
check "benign: an archive with absolute and relative symlinks planted" plant "$benign" "$tmp/benign.tar"
q "SELECT wsctl.set_desired_state('$benign', 'RUNNING')" >/dev/null
check "  restored and RUNNING" wait_state "$benign" RUNNING 60
is "  bin, rel, deep/up are symlinks" \
	"$(in_ws "$benign" 'stat -c "%n %F" bin rel deep/up')" "$(printf 'bin symbolic link\nrel symbolic link\ndeep/up symbolic link')"
is "  with their targets" \
	"$(in_ws "$benign" 'for l in bin rel deep/up; do readlink $l; done')" "$(printf '/usr/bin\nsub/file\n../sub/file')"
is "  the relative ones resolve inside the home" "$(in_ws "$benign" 'cat rel deep/up')" "$(printf 'hello\nhello')"
is "  sub/file has its mode" "$(in_ws "$benign" 'stat -c %a sub/file')" 640
is "  nothing but the archive's entries" "$(in_ws "$benign" 'find . | sort | paste -sd" "')" ". ./bin ./deep ./deep/up ./rel ./sub ./sub/file"
is "  no error" "$(ws "$benign" "coalesce(error_info::text, 'none')")" none

ok_all=1
for o in "${owners[@]}"; do cleanup_owner "$o" || ok_all=0; done
check "cleanup" test $ok_all = 1 && cleaned=1
done_testing
