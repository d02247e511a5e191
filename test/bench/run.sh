#!/usr/bin/env bash
# run.sh: what `make bench` runs: every benchmark of test/bench/ against
# services started once (test/services.sh), each printing its figures.
# Not part of `make test`: the storage benchmark alone moves gigabytes.
#
#   make bench                           all of them
#   WSCTL_BENCH="storage sse" make bench only these (file names without .sh)
#
# As root. Installs what is missing and installs the extension first, like
# make test. The S3 store lives in RAM: WSCTL_RGW_MEMSTORE_BYTES (default
# here 12 GiB) must hold what storage.sh keeps at once (its archives plus
# the floor's object; deleted space comes back within seconds).
# archive_concurrency starts services of its own (its S3 store sized for
# N * SIZE_MB) beside these, which idle meanwhile.
# WSCTL_TEST_KEEP=1 keeps the temp dir (logs). Exit status 1 if a
# benchmark failed to run to the end.
set -euo pipefail

cd "$(dirname "$0")/../.."
TOP=$PWD
export WSCTL_RGW_MEMSTORE_BYTES=${WSCTL_RGW_MEMSTORE_BYTES:-12884901888}
benches=${WSCTL_BENCH:-storage convergence health_monitor idle_cost api_throughput worker_memory sse archive_concurrency}
TMP=''
failed=()

cleanup() {
    [[ -n "$TMP" ]] || return 0
    "$TOP/test/services.sh" stop "$TMP" || echo "run.sh: test/services.sh stop failed" >&2
    if [[ "${WSCTL_TEST_KEEP:-0}" == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
    TMP=''
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

"$TOP/test/install-deps.sh"
make -s all && make -s install
TMP=$(mktemp -d /tmp/wsctl-bench.XXXXXX)
chmod 755 "$TMP"
"$TOP/test/services.sh" start "$TMP"
# shellcheck source=/dev/null
. "$TMP/env.sh"

for b in $benches; do
    printf '\n========== %s ==========\n' "test/bench/$b.sh"
    start=$SECONDS
    if ! "$TOP/test/bench/$b.sh"; then failed+=("$b"); fi
    echo "($b: $((SECONDS - start)) s)"
done

cleanup
if ((${#failed[@]})); then
    echo "failed to run: ${failed[*]}"
    exit 1
fi
echo "all benchmarks ran: $benches"
