#!/usr/bin/env bash
# dist.t: `make dist` builds the PGXN source distribution wsctl-<version>.tar.gz
# of HEAD: one top directory wsctl-<version>/, META.json, the build files,
# src/ and docs/ in it, no build products; its META.json passes the PGXN Meta
# Spec 1.0.0 checks of test/dist/meta_check.pl (which rejects broken ones);
# the versions of META.json, wsctl.control and the Makefile agree; and the
# unpacked tarball builds with PGXS. Needs git, make, a compiler and the
# -dev packages; no service. Works in a temp dir, removed at the end.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
check=$top/test/dist/meta_check.pl
n=0
failed=0
report() {	# OK(0|1) DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
diag() { sed 's/^/# /'; }

tmp=$(mktemp -d /tmp/wsctl-dist.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$top" || exit 1

# The version, as each file states it (work tree).
make_ver=$(sed -nE 's/^EXTVERSION[[:space:]]*=[[:space:]]*([^[:space:]]+).*/\1/p' Makefile)
control_ver=$(sed -nE "s/^default_version[[:space:]]*=[[:space:]]*'([^']*)'.*/\1/p" wsctl.control)
meta_ver=$(perl -MJSON::PP -e 'local $/; print JSON::PP->new->decode(<STDIN>)->{version}' <META.json)
meta_ext_ver=$(perl -MJSON::PP -e 'local $/; print JSON::PP->new->decode(<STDIN>)->{provides}{wsctl}{version}' <META.json)
if [ -n "$make_ver" ] && [ "$make_ver" = "$control_ver" ] && [ "$make_ver" = "$meta_ver" ] &&
	[ "$make_ver" = "$meta_ext_ver" ]; then r=0; else r=1; fi
report $r "one version everywhere: Makefile EXTVERSION '$make_ver', wsctl.control '$control_ver', META.json '$meta_ver' (provides.wsctl '$meta_ext_ver')"
ver=$make_ver
name=wsctl-$ver
tarball=$tmp/$name.tar.gz

# make dist, into the temp dir
if make -s dist DIST_DIR="$tmp" >"$tmp/dist.log" 2>&1 && [ -s "$tarball" ]; then r=0; else r=1; fi
report $r "make dist DIST_DIR=... writes $name.tar.gz"
[ $r -eq 0 ] || diag <"$tmp/dist.log"

tar -tzf "$tarball" 2>/dev/null | sort >"$tmp/list"
tops=$(sed 's|/.*||' "$tmp/list" | sort -u)
[ "$tops" = "$name" ] && r=0 || r=1
report $r "every entry is under one top directory $name/"
[ $r -eq 0 ] || echo "$tops" | head | diag

missing=()
# every update script of the work tree (wsctl--0.1--0.2.0.sql, ...), the last one ending at $ver
mapfile -t updates < <(cd "$top" && ls wsctl--*--*.sql)
for f in META.json Makefile wsctl.control README.md src/wsctl.c src/sql/00_types.sql src/relay/wsctl-sse.c \
	src/backends/backend.h docs/operations.md docs/sql-api.md test/run-tests.sh "${updates[@]}"; do
	grep -qx "$name/$f" "$tmp/list" || missing+=("$f")
done
report ${#missing[@]} "the tarball holds META.json, Makefile, the control file, the update scripts (${updates[*]}), src/, docs/, test/"
is_last=$(printf '%s\n' "${updates[@]}" | grep -c -- "--$ver\.sql\$")
report $((is_last == 1 ? 0 : 1)) "one update script ends at $ver"
[ ${#missing[@]} -eq 0 ] || echo "missing: ${missing[*]}" | diag

# Build products, and what `make`/`make installcheck` leave behind, are not tracked.
grep -E '\.(o|so|bc|tar\.gz)$|^[^/]+/wsctl--[^-/]+\.sql$|/src/relay/wsctl-sse$|/(results|output_iso|tmp_check|log)/|/regression\.(diffs|out)$' \
	"$tmp/list" >"$tmp/products"
report $([ -s "$tmp/products" ] && echo 1 || echo 0) "no build products in the tarball (objects, wsctl.so, the built wsctl--$ver.sql, wsctl-sse, test output)"
diag <"$tmp/products"

# The tarball is HEAD: each file equals HEAD's.
git ls-tree -r --name-only HEAD | sed "s|^|$name/|" | sort >"$tmp/head"
grep -v '/$' "$tmp/list" >"$tmp/files"
if cmp -s "$tmp/head" "$tmp/files"; then r=0; else r=1; fi
report $r "the tarball holds exactly the files of HEAD"
[ $r -eq 0 ] || diff "$tmp/head" "$tmp/files" | head -20 | diag

tar -xzf "$tarball" -C "$tmp" 2>/dev/null
dist=$tmp/$name

# META.json of the tarball against the spec, its paths checked in the tarball.
out=$("$check" --dist "$dist" "$dist/META.json" 2>&1) && r=0 || r=1
report $r "META.json of the tarball passes the PGXN Meta Spec 1.0.0 checks"
echo "$out" | diag

tar_make_ver=$(sed -nE 's/^EXTVERSION[[:space:]]*=[[:space:]]*([^[:space:]]+).*/\1/p' "$dist/Makefile")
tar_control_ver=$(sed -nE "s/^default_version[[:space:]]*=[[:space:]]*'([^']*)'.*/\1/p" "$dist/wsctl.control")
tar_meta_ver=$(perl -MJSON::PP -e 'local $/; print JSON::PP->new->decode(<STDIN>)->{version}' <"$dist/META.json")
[ "$tar_make_ver" = "$ver" ] && [ "$tar_control_ver" = "$ver" ] && [ "$tar_meta_ver" = "$ver" ] && r=0 || r=1
report $r "in the tarball too: Makefile '$tar_make_ver', wsctl.control '$tar_control_ver', META.json '$tar_meta_ver' = $ver"

# The checker can fail: each broken META.json is rejected with the reason.
# broken NAME PERL_EXPR EXPECTED_MESSAGE: META.json changed by PERL_EXPR ($m is
# the decoded document) must be rejected with a line matching EXPECTED_MESSAGE.
broken() {
	local what=$1 expr=$2 expect=$3 out rc
	perl -MJSON::PP -e 'local $/; my $m = JSON::PP->new->decode(<STDIN>); '"$expr"'; print JSON::PP->new->canonical->pretty->encode($m)' \
		<"$dist/META.json" >"$tmp/broken.json"
	out=$("$check" --dist "$dist" "$tmp/broken.json" 2>&1)
	rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q -- "$expect"; then r=0; else r=1; fi
	report $r "a META.json with $what is rejected"
	[ $r -eq 0 ] || echo "exit $rc; expected '$expect'; got: $out" | diag
}
broken "no license" 'delete $m->{license}' '\$.license: required key is missing'
broken "a two-part version" '$m->{version} = "0.2"' 'is not a semantic version'
broken "an unknown top-level key" '$m->{homepage} = "https://example.net/"' '\$.homepage: unknown key'
broken "a license string not in the spec" '$m->{license} = "gpl"' "'gpl' is not a License String"
broken "a provides entry without its file" 'delete $m->{provides}{wsctl}{file}' 'provides.wsctl.file: required key is missing'
broken "a provides file not in the distribution" '$m->{provides}{wsctl}{file} = "sql/wsctl.sql"' 'is not a file of the distribution'
broken "an unknown prereqs phase" '$m->{prereqs}{install} = {requires => {PostgreSQL => "15.0.0"}}' 'unknown phase'
broken "a bad version range" '$m->{prereqs}{runtime}{requires}{PostgreSQL} = "~15"' 'is not a Version Range'
broken "meta-spec 2.0.0" '$m->{"meta-spec"}{version} = "2.0.0"' 'is not supported'
printf '{ "name": "wsctl", ' >"$tmp/broken.json"
"$check" "$tmp/broken.json" >/dev/null 2>&1
[ $? -eq 2 ] && r=0 || r=1
report $r "a META.json that is not JSON is rejected"
# ... and custom keys are allowed where the spec allows them.
perl -MJSON::PP -e 'local $/; my $m = JSON::PP->new->decode(<STDIN>); $m->{x_wsctl} = {any => [1]}; $m->{resources}{X_chat} = "irc://x"; print JSON::PP->new->encode($m)' \
	<"$dist/META.json" >"$tmp/custom.json"
out=$("$check" --dist "$dist" "$tmp/custom.json" 2>&1) && r=0 || r=1
report $r "custom x_ / X_ keys are accepted"
[ $r -eq 0 ] && true || echo "$out" | diag

# The unpacked tarball builds (PGXS, -Werror): nothing it needs is untracked.
if make -C "$dist" -s -j4 >"$tmp/build.log" 2>&1 && [ -f "$dist/wsctl.so" ] && [ -f "$dist/wsctl--$ver.sql" ]; then r=0; else r=1; fi
report $r "the unpacked tarball builds with make (wsctl.so, wsctl--$ver.sql)"
[ $r -eq 0 ] || tail -n 30 "$tmp/build.log" | diag

echo "1..$n"
[ "$failed" -eq 0 ]
