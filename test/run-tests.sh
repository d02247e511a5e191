#!/usr/bin/env bash
# run-tests.sh: what `make test` runs: every wsctl test suite against real services.
#
# As root, from anywhere (it works from the repository top):
#   1. test/install-deps.sh              install missing Debian packages
#   2. make clean all && make install    build and install the extension
#   3. a temp dir under /tmp; the fuzz and dist suites (test/fuzz/*.t,
#      test/dist/*.t: they need no services)
#   4. in the temp dir, test/services.sh: a private dockerd (test/docker.sh),
#      redis-server (test/redis.sh), an S3 server, Ceph's RADOS Gateway on a
#      one-node cluster (test/rgw.sh: bucket wsctl; WSCTL_S3_* and WSCTL_RGW_DIR
#      are exported for the tests, wsctl.s3_* set in postgresql.conf) and a
#      throwaway PostgreSQL 15 cluster preloading wsctl (test/pg.sh), database
#      wsctl_it
#   5. the suites, each one even if an earlier one failed:
#        fuzz         test/fuzz/*.t                     prove (run in step 3)
#        regress      pg_regress (sql/, expected/)      make installcheck
#        isolation    isolation specs (test/isolation/) make installcheck
#        pgtap        test/pgtap/*.sql                  pg_prove, database wsctl_tap
#        integration  test/integration/*.t              prove
#        dist         test/dist/*.t: make dist, META.json  prove (run in step 3)
#        upgrade      test/upgrade/*.t: 0.1 -> current    prove
#        install      test/install/*.t: README's install  prove (own Debian cluster)
#   6. stops the services, removes the temp dir, prints one line per suite and, as the
#      last line, "N passed, N failed". Exit status 1 if anything failed.
#
# Files a test keeps for people to look at (screenshots) go to test/artifacts/
# (git-ignored; WSCTL_TEST_ARTIFACTS in the tests' environment), named in the summary.
#
# Knobs (environment): WSCTL_TEST_KEEP=1 keeps the temp dir (logs) after the run;
# WSCTL_SUITE_TIMEOUT (s, default 1200) bounds each installcheck run;
# WSCTL_FILE_TIMEOUT (s, default 600) bounds each fuzz, pgTAP or integration file.
set -euo pipefail

cd "$(dirname "$0")/.."
TOP=$PWD
SUITE_TIMEOUT=${WSCTL_SUITE_TIMEOUT:-1200}
FILE_TIMEOUT=${WSCTL_FILE_TIMEOUT:-600}
IT_DB=wsctl_it
TAP_DB=wsctl_tap
DIFF_LINES=400          # at most this many lines of a diff file are printed
ARTIFACTS=$TOP/test/artifacts

total_pass=0
total_fail=0
any_fail=0
suite_lines=()
TMP=''
cleaned=0

header() {
    printf '\n========== %s ==========\n' "$*"
}

# record SUITE PASSED FAILED [NOTE]: adds a suite's result to the totals.
record() {
    local suite=$1 p=$2 f=$3 note=${4:-}
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    ((f == 0)) || any_fail=1
    suite_lines+=("$(printf '%-12s %4d passed, %4d failed%s' "$suite:" "$p" "$f" "${note:+  ($note)}")")
}

skip() {
    suite_lines+=("$(printf '%-12s skipped (%s)' "$1:" "$2")")
    echo "skipped: $2"
}

# show_file FILE TITLE: prints at most DIFF_LINES lines of FILE, if it exists.
show_file() {
    local file=$1 title=$2 n
    [[ -s "$file" ]] || return 0
    n=$(wc -l <"$file")
    echo "----- $title ($file, $n lines) -----"
    head -n "$DIFF_LINES" "$file"
    ((n <= DIFF_LINES)) || echo "[... $((n - DIFF_LINES)) more lines in $file]"
    echo "----- end of $title -----"
}

# show_tail FILE N: prints the last N lines of a log file, if it exists.
show_tail() {
    local file=$1 n=$2
    [[ -s "$file" ]] || return 0
    echo "----- last $n lines of $file -----"
    tail -n "$n" "$file"
    echo "----- end of $file -----"
}

# stop_services: stops PostgreSQL, Redis, the RADOS Gateway's cluster and dockerd
# and removes the temp dir; runs once, either before the summary or from the EXIT trap.
stop_services() {
    ((cleaned == 0)) || return 0
    cleaned=1
    [[ -n "$TMP" && -d "$TMP" ]] || return 0
    header "stopping services"
    if [[ "${WSCTL_TEST_KEEP:-0}" == 1 && -d "$TMP/rgw/log" ]]; then
        cp -r "$TMP/rgw/log" "$TMP/rgw-log"
    fi
    if [[ "${WSCTL_TEST_KEEP:-0}" == 1 && -r "$TMP/docker/dockerd.log" ]]; then
        cp "$TMP/docker/dockerd.log" "$TMP/dockerd.log"
    fi
    "$TOP/test/services.sh" stop "$TMP" || echo "run-tests.sh: test/services.sh stop failed" >&2
    if [[ "${WSCTL_TEST_KEEP:-0}" == 1 ]]; then
        echo "kept $TMP (postgres log: $TMP/pg/postgres.log, dockerd log: $TMP/dockerd.log, Ceph and RGW logs: $TMP/rgw-log)"
    else
        rm -rf "$TMP"
    fi
}

# finish: stops the services, prints the per-suite lines and the totals (last line).
finish() {
    stop_services
    header "summary"
    local line
    if [[ -d "$ARTIFACTS" ]] && compgen -G "$ARTIFACTS/*" >/dev/null; then
        echo "artifacts: $ARTIFACTS ($(find "$ARTIFACTS" -type f | wc -l) files)"
    fi
    for line in "${suite_lines[@]}"; do
        echo "$line"
    done
    echo "$total_pass passed, $total_fail failed"
    if ((any_fail || total_fail)); then exit 1; fi
    exit 0
}

# run_bounded SECONDS OUTFILE CMD...: runs CMD under timeout(1), output to OUTFILE,
# and waits for it. It runs in the background so that `wait` returns as soon as
# this script gets SIGINT or SIGTERM; on_signal then ends it: timeout(1) leads its
# own process group, which holds the whole test (prove, psql, the test's children).
# (The output is redirected here, not around the call: a redirection around the
# call would also swallow what the signal trap prints.)
CHILD=''
run_bounded() {
    local secs=$1 out=$2 rc=0
    shift 2
    timeout --kill-after=30 "$secs" "$@" </dev/null >"$out" 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=''
    return "$rc"
}

# shellcheck disable=SC2317  # called from the INT and TERM traps
on_signal() {
    echo "run-tests.sh: interrupted" >&2
    if [[ -n "$CHILD" ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null || true
    fi
    record interrupted 0 1 "signal $1"
    finish
}

trap 'stop_services' EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

# ---------------------------------------------------------------- regress results
# parse_regress LOG RC: sets P and F from pg_regress / pg_isolation_regress output.
# PG15 prints one line per test, `test NAME ... ok` (or `     NAME ... ok` inside a
# parallel group; isolation uses the same format), with FAILED, or
# `failed (ignored)` for tests in an ignore list, and ends with ` All N tests passed.`
# or ` N of M tests failed.` (possibly `, K of these failures ignored.`).
parse_regress() {
    local log=$1 rc=$2 lines_ok lines_bad
    lines_ok=$(grep -cE '^(test +| +)?[^ ]+ +\.\.\. +(ok|failed \(ignored\))' "$log" || true)
    lines_bad=$(grep -cE '^(test +| +)?[^ ]+ +\.\.\. +FAILED' "$log" || true)
    P=$lines_ok
    F=$lines_bad
    local all failed of
    all=$(sed -nE 's/^ *All ([0-9]+) tests passed.*/\1/p' "$log" | tail -n 1)
    failed=$(sed -nE 's/^ *([0-9]+) of ([0-9]+) tests failed.*/\1/p' "$log" | tail -n 1)
    of=$(sed -nE 's/^ *([0-9]+) of ([0-9]+) tests failed.*/\2/p' "$log" | tail -n 1)
    if [[ -n "$all" ]]; then
        P=$all
        F=0
    elif [[ -n "$failed" && -n "$of" ]]; then
        P=$((of - failed))
        F=$failed
    fi
    # No result at all, or a non-zero exit that no failed test explains: the
    # suite itself broke (no server, CREATE EXTENSION failed, timeout, ...).
    if ((rc != 0 && F == 0)); then
        F=1
        NOTE="exit status $rc without a failed test: the suite did not run to the end"
    fi
}

# run_installcheck SUITE DIFFS MAKE_VARS...: one `make installcheck` with REGRESS
# or ISOLATION emptied, so both suites always run even if the other one fails.
run_installcheck() {
    local suite=$1 diffs=$2 rc log
    shift 2
    log=$TMP/$suite.out
    rc=0
    run_bounded "$SUITE_TIMEOUT" "$log" make -s installcheck "$@" \
        PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres || rc=$?
    cat "$log"
    ((rc != 124)) || echo "run-tests.sh: $suite timed out after $SUITE_TIMEOUT s"
    NOTE=''
    parse_regress "$log" "$rc"
    record "$suite" "$P" "$F" "$NOTE"
    if ((F > 0)); then
        show_file "$diffs" "$suite diffs"
        suite_failed=1
    fi
}

# ---------------------------------------------------------------- TAP results
# run_tap_file SUITE FILE CMD...: runs one TAP test file with CMD (pg_prove or
# prove, verbose), counts its top-level `ok N` / `not ok N` lines (a `not ok N # TODO`
# is an expected failure and counts as passed; indented subtest lines and the
# harness's own bare `ok` verdict line are not counted), and counts a file that
# failed without any `not ok` (died, bad plan, timeout) as one failure.
run_tap_file() {
    local suite=$1 file=$2 out rc ok bad todo
    shift 2
    out=$TMP/tap.out
    rc=0
    run_bounded "$FILE_TIMEOUT" "$out" "$@" || rc=$?
    ok=$(grep -cE '^ok [0-9]+' "$out" || true)
    todo=$(grep -E '^not ok [0-9]+' "$out" | grep -ciE '#[[:space:]]*TODO' || true)
    bad=$(grep -E '^not ok [0-9]+' "$out" | grep -viE '#[[:space:]]*TODO' | grep -c . || true)
    ok=$((ok + todo))
    local why=''
    if ((rc != 0 && bad == 0)); then
        bad=1
        why="; exit status $rc without a failed test"
        ((rc != 124)) || why="; timed out after $FILE_TIMEOUT s"
    fi
    FILE_PASS=$((FILE_PASS + ok))
    FILE_FAIL=$((FILE_FAIL + bad))
    if ((bad == 0)); then
        printf '  ok    %s (%d passed)\n' "$file" "$ok"
    else
        printf '  FAIL  %s (%d passed, %d failed%s)\n' "$file" "$ok" "$bad" "$why"
        if [[ -s "$out" ]]; then sed 's/^/    | /' "$out"; else echo "    | (no output)"; fi
        suite_failed=1
    fi
}

# run_tap_suite SUITE GLOB_FILES... -- CMD...: every file through run_tap_file.
run_tap_suite() {
    local suite=$1 files=() f
    shift
    while [[ $1 != -- ]]; do files+=("$1"); shift; done
    shift
    FILE_PASS=0
    FILE_FAIL=0
    for f in "${files[@]}"; do
        run_tap_file "$suite" "$f" "$@" "$f"
    done
    record "$suite" "$FILE_PASS" "$FILE_FAIL" "${#files[@]} files"
}

# ================================================================ 1. packages
header "dependencies (test/install-deps.sh)"
if ! "$TOP/test/install-deps.sh"; then
    record deps 0 1 "test/install-deps.sh failed"
    finish
fi
echo "all packages present"

# ================================================================ 2. build
header "build (make clean all && make install)"
if ! { make -s clean all && make -s install; }; then
    record build 0 1 "build or install failed"
    finish
fi
echo "built and installed"

TMP=$(mktemp -d /tmp/wsctl-test.XXXXXX)
chmod 755 "$TMP"
echo "temp dir $TMP"
suite_failed=0

# ================================================================ 3. fuzz
header "fuzz (prove: test/fuzz/*.t)"
if compgen -G "test/fuzz/*.t" >/dev/null; then
    # --exec '': the files are executables that print TAP.
    run_tap_suite fuzz test/fuzz/*.t -- prove --verbose --exec ''
else
    skip fuzz "no test/fuzz/*.t"
fi

header "dist (prove: test/dist/*.t)"
if compgen -G "test/dist/*.t" >/dev/null; then
    run_tap_suite dist test/dist/*.t -- prove --verbose --exec ''
else
    skip dist "no test/dist/*.t"
fi

# ================================================================ 4. services
header "services (test/services.sh)"
if ! WSCTL_IT_DB=$IT_DB "$TOP/test/services.sh" start "$TMP"; then
    record services 0 1 "test/services.sh start failed"
    finish
fi
# PGHOST PGPORT DOCKER_HOST WSCTL_REDIS_URL WSCTL_S3_* WSCTL_RGW_DIR WSCTL_IT_DB ...
# shellcheck source=/dev/null
. "$TMP/env.sh"

# ================================================================ 5. suites
header "regress (pg_regress: sql/, expected/)"
if compgen -G "sql/*.sql" >/dev/null; then
    run_installcheck regress regression.diffs ISOLATION=
else
    skip regress "no sql/*.sql"
fi

header "isolation (pg_isolation_regress: test/isolation/specs/)"
if compgen -G "test/isolation/specs/*.spec" >/dev/null; then
    run_installcheck isolation output_iso/regression.diffs REGRESS=
else
    skip isolation "no test/isolation/specs/*.spec"
fi

header "pgtap (pg_prove: test/pgtap/*.sql, database $TAP_DB)"
if compgen -G "test/pgtap/*.sql" >/dev/null; then
    if createdb "$TAP_DB" &&
        psql -X -q -v ON_ERROR_STOP=1 -d "$TAP_DB" -c 'CREATE EXTENSION pgtap'; then
        run_tap_suite pgtap test/pgtap/*.sql -- pg_prove --verbose -d "$TAP_DB"
    else
        record pgtap 0 1 "could not create database $TAP_DB with pgtap"
        suite_failed=1
    fi
else
    skip pgtap "no test/pgtap/*.sql"
fi

header "integration (prove: test/integration/*.t)"
if compgen -G "test/integration/*.t" >/dev/null; then
    mkdir -p "$ARTIFACTS"
    export WSCTL_TEST_ARTIFACTS=$ARTIFACTS
    # --exec '': the files are executables (any language) that print TAP.
    run_tap_suite integration test/integration/*.t -- prove --verbose --exec ''
    if ((FILE_FAIL > 0)); then
        show_tail "$TMP/docker/dockerd.log" 40
        show_tail "$TMP/rgw/log/client.rgw.a.log" 40
    fi
else
    skip integration "no test/integration/*.t"
fi

header "upgrade (prove: test/upgrade/*.t)"
if compgen -G "test/upgrade/*.t" >/dev/null; then
    run_tap_suite upgrade test/upgrade/*.t -- prove --verbose --exec ''
else
    skip upgrade "no test/upgrade/*.t"
fi

header "install (prove: test/install/*.t)"
if compgen -G "test/install/*.t" >/dev/null; then
    run_tap_suite install test/install/*.t -- prove --verbose --exec ''
else
    skip install "no test/install/*.t"
fi

if ((suite_failed || total_fail)); then
    show_tail "$PGHOST/postgres.log" 80
fi

finish
