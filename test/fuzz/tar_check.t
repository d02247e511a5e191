#!/usr/bin/env bash
# tar_check.t: the restore archive's entry checker (src/backends/tar_check.c), tested
# without PostgreSQL: it compiles with the extension's warnings, passes its
# unit cases (unit.c), survives every input kept in regressions/ and
# corpus/, and then a bounded libFuzzer run (tar_check_fuzz.c, which also
# cross-checks every decision against a reference model).
#
#   prove --exec '' test/fuzz/tar_check.t                   # 60 s of fuzzing
#   WSCTL_FUZZ_SECONDS=600 prove --exec '' test/fuzz/tar_check.t
#
# Everything built or generated goes to a temporary directory, removed at
# the end; the only thing ever written to the repository is a new crash,
# copied to test/fuzz/regressions/ so that it is replayed from then on.
set -u

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../src/backends" && pwd)
seconds=${WSCTL_FUZZ_SECONDS:-60}
tmp=$(mktemp -d /tmp/wsctl-tar-check.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT

n=0
failed=0

# report OK? DESCRIPTION: one TAP line; non-zero OK is a failure.
report() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

skip() {
	n=$((n + 1))
	echo "ok $n # SKIP $1"
}

# The last lines of a log, as TAP diagnostics.
diag_tail() {
	tail -n "${2:-20}" "$1" | sed 's/^/# /'
}

case $seconds in
'' | *[!0-9]*)
	echo "1..0 # SKIP WSCTL_FUZZ_SECONDS must be a whole number of seconds, not '$seconds'"
	exit 1
	;;
esac

# 1. The extension compiles this file with these flags (PGXS adds pg_config's).
pgflags=$(pg_config --cflags 2>/dev/null)
# shellcheck disable=SC2086
gcc -c $pgflags -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-o "$tmp/tar_check.o" "$src/tar_check.c" >"$tmp/cc.log" 2>&1
rc=$?
report $rc "src/backends/tar_check.c compiles cleanly with the extension's warnings"
[ $rc -eq 0 ] || diag_tail "$tmp/cc.log"

# 2. The unit cases, each passed on as a test of its own.
gcc -Wall -Wextra -Werror -g -O1 -I"$src" -o "$tmp/unit" "$here/unit.c" "$src/tar_check.c" \
	>"$tmp/unit-cc.log" 2>&1
rc=$?
report $rc "unit.c builds with gcc -Wall -Wextra -Werror"
if [ $rc -eq 0 ]; then
	"$tmp/unit" >"$tmp/unit.out" 2>&1
	unit_rc=$?
	while IFS= read -r line; do
		case $line in
		"ok "* | "not ok "*)
			verdict=${line%% [0-9]*}
			name=${line#* - }
			[ "$verdict" = ok ] && ok=0 || ok=1
			report $ok "unit: $name"
			;;
		1..*) ;;
		"#"*) echo "$line" ;;
		*) echo "# $line" ;;
		esac
	done <"$tmp/unit.out"
	report $unit_rc "the unit test ran to the end and passed (exit status $unit_rc)"
else
	diag_tail "$tmp/unit-cc.log"
fi

# 3. The fuzzer, with every sanitizer finding fatal (UBSan only warns otherwise).
fuzzer=$tmp/fuzzer
clang -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-I"$src" -o "$fuzzer" "$here/tar_check_fuzz.c" "$src/tar_check.c" >"$tmp/fuzz-cc.log" 2>&1
rc=$?
report $rc "the fuzzer builds with clang -fsanitize=fuzzer,address,undefined"
if [ $rc -ne 0 ]; then
	diag_tail "$tmp/fuzz-cc.log"
	skip "replaying regressions/ and corpus/: no fuzzer"
	skip "fuzzing: no fuzzer"
	echo "1..$n"
	exit 1
fi

# 4. Every input ever kept, once each.
inputs=()
for f in "$here"/regressions/* "$here"/corpus/*; do
	[ -f "$f" ] || continue
	case $(basename "$f") in README*) continue ;; esac
	inputs+=("$f")
done
nregress=0
for f in "${inputs[@]}"; do
	case $f in "$here"/regressions/*) nregress=$((nregress + 1)) ;; esac
done
"$fuzzer" "${inputs[@]}" >"$tmp/replay.log" 2>&1
rc=$?
report $rc "${#inputs[@]} kept inputs replay cleanly ($nregress from regressions/, the rest from corpus/)"
[ $rc -eq 0 ] || diag_tail "$tmp/replay.log" 30

# 5. Bounded fuzzing, from a copy of the kept inputs.
if [ "$seconds" -eq 0 ]; then
	skip "fuzzing: WSCTL_FUZZ_SECONDS=0"
else
	work=$tmp/work
	mkdir -p "$work/corpus" "$work/artifacts"
	cp "${inputs[@]}" "$work/corpus/"
	# -max_len 8200: room for paths past the 4096-byte limit even unstretched.
	(cd "$work" && "$fuzzer" -max_total_time="$seconds" -max_len=8200 -timeout=30 \
		-dict="$here/tar_check.dict" -artifact_prefix="$work/artifacts/" \
		-print_final_stats=1 corpus >"$work/fuzz.log" 2>&1)
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log")
	found=$(find "$work/artifacts" -type f | wc -l)
	echo "# fuzzed ${seconds} s: ${runs:-?} executions, ${rate:-?} per second," \
		"corpus grew from ${#inputs[@]} to $(find "$work/corpus" -type f | wc -l) inputs"
	if [ "$found" -gt 0 ]; then
		for f in "$work"/artifacts/*; do
			cp "$f" "$here/regressions/"
			echo "# kept test/fuzz/regressions/$(basename "$f")"
		done
		grep -m1 -A1 -E 'INVARIANT VIOLATED|ERROR: (Address|Undefined|libFuzzer)|runtime error' \
			"$work/fuzz.log" | sed 's/^/# /'
		rc=1
	fi
	[ $rc -eq 0 ] || [ "$found" -gt 0 ] || diag_tail "$work/fuzz.log"
	report $rc "fuzzing for $seconds s finds no crash and no disagreement with the model"
fi

echo "1..$n"
[ $failed -eq 0 ]
