#!/usr/bin/env bash
# archive_concurrency.sh: what N concurrent archives (and restores) of
# SIZE_MB homes cost the database host (issue 12, "Where the archive bytes
# flow"). The operation workers stream every home through the PostgreSQL
# host (Docker GET archive -> compress -> S3 multipart upload); this
# measures what is left for the control plane while they do.
#
#   1. starts its own services (test/services.sh start, a fresh temp dir;
#      stopped on exit), with wsctl.max_concurrent_operations = N,
#      wsctl.archive_part_size = 16MB (the production default) and the
#      archiving and restoring timeouts raised to 1 h;
#   2. creates N workspaces (STANDBY, one owner each), fills the first home
#      with SIZE_MB of mixed data (as storage.sh: 45% random, 45% text, 10%
#      in 4 kB files) through a helper container and copies it into the
#      others (the same bytes in every home: each archive is its own stream);
#   3. asks all N for PENDING in one statement and waits (polling, deadline
#      DEADLINE s) until every one shows ARCHIVED; fails otherwise. With
#      RESTORE=1 (default) it then asks all N for STANDBY and waits likewise;
#   4. during each phase samples every 0.5 s: the host's CPU (/proc/stat),
#      the PostgreSQL cluster's (postmaster + its children, /proc/PID/stat),
#      dockerd's + containerd's, the S3 server's (ceph-mon, ceph-osd,
#      radosgw), and each operation worker's VmRSS and VmHWM; and runs
#      pgbench as a wsctl_api login calling get_workspace on the N rows
#      (CLIENTS clients, RATE calls/s in all, 0 = as fast as they can), in
#      CHUNK-second runs whose per-call logs are cut to the phase's window;
#   5. measures the same pgbench for the same length with nothing running
#      (baseline), and prints one table.
#
# As root, the extension installed. Environment: N (10), SIZE_MB (1024),
# TRANSFERS (wsctl.max_concurrent_transfers: 2, the default; N lets all run
# at once, as before 0.3.0), CLIENTS (2), RATE (500), CHUNK (10), RESTORE (1),
# DEADLINE (3600),
# MEMSTORE_BYTES (the S3 store's RAM, default (N * SIZE_MB + 1024) MiB;
# an inherited WSCTL_RGW_MEMSTORE_BYTES, e.g. make bench's, is not used),
# WSCTL_TEST_KEEP=1 keeps the temp dir. Needs about N * SIZE_MB of disk
# under /tmp for the volumes.
set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
n=${N:-10}
size_mb=${SIZE_MB:-1024}
clients=${CLIENTS:-2}
rate=${RATE:-500}
chunk=${CHUNK:-10}
restore=${RESTORE:-1}
transfers=${TRANSFERS:-2}
deadline_s=${DEADLINE:-3600}
export WSCTL_RGW_MEMSTORE_BYTES=${MEMSTORE_BYTES:-$(((n * size_mb + 1024) * 1048576))}
ncpu=$(nproc)
hz=$(getconf CLK_TCK)
role=wsctl_bench_arch
owner_prefix=00000000-0000-0000-0000-0000000bd
TMP=''
work=''
T0=''
T1=''

die() { echo "archive_concurrency.sh: $*" >&2; exit 1; }

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	trap - EXIT
	# the sampler and pgbench loops of a phase cut short stop at their stop file
	[ -n "$work" ] && [ -d "$work" ] && touch "$work"/{archive,restore,base_archive,base_restore}.stop
	wait
	if [ -n "$TMP" ]; then
		"$TOP/test/services.sh" stop "$TMP" >/dev/null || echo "archive_concurrency.sh: test/services.sh stop failed" >&2
		if [ "${WSCTL_TEST_KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
	fi
}
trap cleanup EXIT
trap 'echo "archive_concurrency.sh: interrupted" >&2; exit 130' INT TERM

((EUID == 0)) || die "run as root"
((n >= 1 && n <= 64)) || die "N must be 1..64 (wsctl.max_concurrent_operations)"
TMP=$(mktemp -d /tmp/wsctl-bench-arch.XXXXXX)
chmod 755 "$TMP"
work=$TMP/bench
"$TOP/test/services.sh" start "$TMP" >"$TMP/services.log" 2>&1 ||
	{ tail -20 "$TMP/services.log" >&2; die "test/services.sh start failed"; }
# shellcheck source=/dev/null
. "$TMP/env.sh"
export PGDATABASE=$WSCTL_IT_DB
# q, dk, ws, create_ws, wait_for, set_config (and the history trigger)
# shellcheck source=test/integration/lib.sh
. "$TOP/test/integration/lib.sh"
mkdir -p "$work"
pgbench=$(pg_config --bindir)/pgbench

set_config wsctl.max_concurrent_operations "$n" || die "max_concurrent_operations"
set_config wsctl.max_concurrent_transfers "$transfers" || die "max_concurrent_transfers"
set_config wsctl.archive_part_size 16MB || die "archive_part_size"
set_config wsctl.timeout_archiving 1h || die "timeout_archiving"
set_config wsctl.timeout_restoring 1h || die "timeout_restoring"

# ---------------------------------------------------------------- workspaces
ids=()
for i in $(seq 1 "$n"); do
	ids+=("$(create_ws "$owner_prefix$(printf '%03d' "$i")" "arch-$i" STANDBY)") || die "create_workspace"
done
for id in "${ids[@]}"; do wait_state "$id" STANDBY 120 || die "workspace $id did not reach STANDBY"; done
idlist=$(printf "'%s'," "${ids[@]}")
idlist=${idlist%,}

echo "filling one home with ${size_mb} MB of mixed files, copying it into $((n - 1)) more..."
t=$SECONDS
# shellcheck disable=SC2017 # the same counts as storage.sh
dk run --rm --network none -v "ws-${ids[0]}-home:/home/coder" "$WSCTL_TEST_IMAGE" sh -c "
	cd /home/coder && mkdir -p random text small
	i=0; while [ \$i -lt $((size_mb * 45 / 100 / 8)) ]; do head -c 8000000 /dev/urandom > random/r\$i; i=\$((i+1)); done
	seq 1 800000 | sed 's/\$/ the quick brown fox jumps over the lazy dog/' > /tmp/t
	i=0; while [ \$i -lt $((size_mb * 45 / 100 / 8)) ]; do head -c 8000000 /tmp/t > text/t\$i; i=\$((i+1)); done
	i=0; while [ \$i -lt $((size_mb * 10 / 100 * 250)) ]; do head -c 4000 /dev/urandom > small/s\$i; i=\$((i+1)); done
	rm /tmp/t" || die "fill failed"
for id in "${ids[@]:1}"; do
	dk run --rm --network none -v "ws-${ids[0]}-home:/src:ro" -v "ws-$id-home:/home/coder" \
		"$WSCTL_TEST_IMAGE" cp -a /src/. /home/coder/ || die "copy into ws-$id-home failed"
done
# the size of one volume's tar as Docker streams it (every home is the same)
dk create --name bench-tar --network none -v "ws-${ids[0]}-home:/data" "$WSCTL_TEST_IMAGE" /x >/dev/null
tar_bytes=$(curl -s --unix-socket "${DOCKER_HOST#unix://}" "http://d/v1.41/containers/bench-tar/archive?path=/data" | wc -c)
dk rm -f bench-tar >/dev/null
sync
echo "filled in $((SECONDS - t)) s; one volume's tar: $tar_bytes bytes"

# ---------------------------------------------------------------- pgbench
q "CREATE TABLE public.bench_arch_ids AS
     SELECT (row_number() OVER (ORDER BY id) - 1)::int AS n, id FROM wsctl.workspaces WHERE id IN ($idlist);
   ALTER TABLE public.bench_arch_ids ADD PRIMARY KEY (n);
   CREATE ROLE $role LOGIN IN ROLE wsctl_api;
   GRANT SELECT ON public.bench_arch_ids TO $role" >/dev/null || die "bench table"
cat >"$work/get.sql" <<EOF
\set k random(0, $n - 1)
SELECT w.* FROM public.bench_arch_ids b, wsctl.get_workspace(b.id) w WHERE b.n = :k;
EOF
rate_args=()
((rate > 0)) && rate_args=(-R "$rate")

# pgbench_loop NAME [RUNS]: CHUNK-second pgbench runs, per-call logs in
# $work/NAME.log.K.*, until $work/NAME.stop exists (or RUNS runs).
pgbench_loop() {
	local name=$1 runs=${2:-0} k=0
	while [ ! -e "$work/$name.stop" ] && { ((runs == 0)) || ((k < runs)); }; do
		k=$((k + 1))
		"$pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$chunk" "${rate_args[@]}" \
			-U "$role" -f "$work/get.sql" -l --log-prefix="$work/$name.log.$k" "$PGDATABASE" \
			>>"$work/$name.pgbench.out" 2>&1 || echo "pgbench run $k of $name failed" >>"$work/$name.errors"
	done
}

# ---------------------------------------------------------------- sampler
# pid_in FILE: the number in FILE, if that process is alive.
pid_in() { local p; p=$(head -1 "$1" 2>/dev/null | tr -dc '0-9'); [ -n "$p" ] && [ -d "/proc/$p" ] && echo "$p"; }
pm=$(pid_in "$WSCTL_PGDATA/postmaster.pid") || die "no postmaster"
docker_pids=$(for f in "$TMP/docker/docker.pid" "$TMP/docker/exec/containerd/containerd.pid"; do pid_in "$f"; done)
s3_pids=$(for f in "$TMP"/rgw/run/*.pid; do pid_in "$f"; done)

# jiffies PID [WITH_CHILDREN]: sets J to utime + stime (+ cutime + cstime)
# of PID, 0 if it is gone (no fork: the sampler must cost next to nothing).
jiffies() {
	local st f
	J=0
	read -r st 2>/dev/null <"/proc/$1/stat" || return 0
	read -ra f <<<"${st##*) }"
	if [ -n "${2:-}" ]; then J=$((f[11] + f[12] + f[13] + f[14])); else J=$((f[11] + f[12])); fi
}

# sampler OUT STOPFILE: every 0.5 s one line
#   S time host_total host_idle pg docker s3         (jiffies)
# preceded by one line per operation worker
#   O time pid jiffies VmRSS_kB VmHWM_kB OPERATION
# pg = the postmaster's own time and its reaped children's (cutime, cstime)
# plus its live children's.
sampler() {
	local out=$1 stop=$2 t u ni sy id io ir so st pg dj sj p c cmd k v rss hwm kids
	while [ ! -e "$stop" ]; do
		t=$EPOCHREALTIME
		read -r _ u ni sy id io ir so st _ </proc/stat
		jiffies "$pm" 1; pg=$J
		dj=0; for p in $docker_pids; do jiffies "$p" 1; dj=$((dj + J)); done
		sj=0; for p in $s3_pids; do jiffies "$p"; sj=$((sj + J)); done
		kids=()
		read -ra kids 2>/dev/null <"/proc/$pm/task/$pm/children"
		for c in "${kids[@]}"; do
			jiffies "$c"
			pg=$((pg + J))
			cmd=''
			read -r -d '' cmd 2>/dev/null <"/proc/$c/cmdline"
			if [[ $cmd == *"wsctl operation"* ]]; then
				rss=0; hwm=0
				while read -r k v _; do
					case $k in VmRSS:) rss=$v ;; VmHWM:) hwm=$v ;; esac
				done 2>/dev/null <"/proc/$c/status"
				echo "O $t $c $J $rss $hwm ${cmd##*wsctl operation }"
			fi
		done
		echo "S $t $((u + ni + sy + id + io + ir + so + st)) $((id + io)) $pg $dj $sj"
		sleep 0.5
	done >"$out"
}

# stats NAME T0 T1: key=value lines for the phase NAME over [T0, T1].
stats() {
	local name=$1 t0=$2 t1=$3
	awk -v t0="$t0" -v t1="$t1" -v hz="$hz" -v ncpu="$ncpu" '
		$2 < t0 - 0.5 || $2 > t1 + 0.5 { next }
		$1 == "S" { if (!s) { s = 1; a = $2; ht = $3; hi = $4; pg = $5; dk = $6; s3 = $7 }
		            b = $2; ht2 = $3; hi2 = $4; pg2 = $5; dk2 = $6; s32 = $7
		            if (cnt[$2] + 0 > peak) peak = cnt[$2] }
		$1 == "O" { cnt[$2]++; opname[$3] = $7; if ($4 > jf[$3]) jf[$3] = $4; if ($6 > hwm[$3]) hwm[$3] = $6
		            rsum += $5; rn++; tot[$2] += $5 }
		END {
			secs = b - a; cores = hz * secs * ncpu / 100
			printf "window_s=%.1f\n", secs
			printf "host_cpu=%.0f\n", 100 * ((ht2 - ht) - (hi2 - hi)) / (ht2 - ht)
			printf "pg_cpu=%.0f\n", (pg2 - pg) / cores
			for (p in jf) opj += jf[p]
			printf "op_cpu=%.0f\n", opj / cores
			printf "pg_rest_cpu=%.0f\n", ((pg2 - pg) - opj) / cores
			printf "docker_cpu=%.0f\n", (dk2 - dk) / cores
			printf "s3_cpu=%.0f\n", (s32 - s3) / cores
			printf "other_cpu=%.0f\n", 100 * ((ht2 - ht) - (hi2 - hi)) / (ht2 - ht) - ((pg2 - pg) + (dk2 - dk) + (s32 - s3)) / cores
			for (p in hwm) { nw++; if (hwm[p] > ph) ph = hwm[p] }
			for (t in tot) if (tot[t] > pt) pt = tot[t]
			for (p in opname) byop[opname[p]]++
			for (o in byop) ops = ops (ops ? "," : "") o ":" byop[o]
			printf "workers=%d\npeak_workers=%d\nworker_ops=%s\n", nw, peak, (ops ? ops : "-")
			printf "rss_peak_mb=%.0f\nrss_mean_mb=%.0f\nrss_sum_peak_mb=%.0f\n", ph / 1024, (rn ? rsum / rn : 0) / 1024, pt / 1024
		}' "$work/$name.samples"
	# pgbench: the calls that ended in the window (epoch seconds in column 5)
	cat "$work/$name".log.* 2>/dev/null | awk -v t0="$t0" -v t1="$t1" '{ e = $5 + $6 / 1e6; if (e >= t0 && e <= t1) print $3 }' |
		sort -n | awk -v secs="$(echo "$t1 - $t0" | bc)" '
		{ v[NR] = $1; s += $1 }
		END {
			if (!NR) { print "calls=0\ncalls_s=0\nlat_avg=n/a\nlat_p50=n/a\nlat_p99=n/a\nlat_max=n/a"; exit }
			printf "calls=%d\ncalls_s=%.0f\n", NR, NR / secs
			i50 = int(NR * 0.50 + 0.5); if (i50 < 1) i50 = 1
			i99 = int(NR * 0.99 + 0.5); if (i99 < 1) i99 = 1
			printf "lat_avg=%.2f\nlat_p50=%.2f\nlat_p99=%.2f\nlat_max=%.1f\n", s / NR / 1000,
				v[i50] / 1000, v[i99] / 1000, v[NR] / 1000
		}'
	[ -s "$work/$name.errors" ] && echo "pgbench_errors=$(wc -l <"$work/$name.errors")"
	return 0
}

# started NAME: waits until the phase's first pgbench run has logged a call.
started() {
	local deadline=$((SECONDS + 30))
	until [ -n "$(cat "$work/$1".log.1.* 2>/dev/null | head -c 1)" ]; do
		((SECONDS < deadline)) || die "pgbench did not start ($(cat "$work/$1.pgbench.out" 2>/dev/null))"
		sleep 0.1
	done
}

display_count() {	# display_count STATUS: how many of the N show STATUS with no operation
	q "SELECT count(*) FROM wsctl.workspaces
	    WHERE id IN ($idlist) AND operation = 'NONE'
	      AND wsctl.display_status(wsctl.effective_status(observed_status, error_info), archive_key) = '$1'"
}

# phase NAME DESIRED DISPLAY: asks all N for DESIRED at once, waits until all
# show DISPLAY; samples and runs pgbench meanwhile. Sets T0 T1 (epoch s).
phase() {
	local name=$1 desired=$2 display=$3 done_n errs sp lp deadline
	sampler "$work/$name.samples" "$work/$name.stop" & sp=$!
	pgbench_loop "$name" & lp=$!
	started "$name"
	echo "$name: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	T0=$EPOCHREALTIME
	q "SELECT count(wsctl.set_desired_state(id, '$desired')) FROM wsctl.workspaces WHERE id IN ($idlist)" >/dev/null ||
		die "set_desired_state $desired"
	deadline=$((SECONDS + deadline_s))
	while :; do
		done_n=$(display_count "$display")
		[ "$done_n" = "$n" ] && break
		errs=$(display_count ERROR)
		[ "$errs" = 0 ] || die "$name: $errs workspace(s) in ERROR: $(q "SELECT string_agg(DISTINCT error_message, '; ') FROM wsctl.workspaces WHERE id IN ($idlist)")"
		((SECONDS < deadline)) || die "$name: only $done_n of $n $display after $deadline_s s"
		sleep 0.2
	done
	T1=$EPOCHREALTIME
	touch "$work/$name.stop"
	wait "$lp" "$sp"
}

# baseline NAME SECONDS: the same pgbench for that long, nothing else asked.
baseline() {
	local name=$1 runs=$(( ($2 + chunk - 1) / chunk )) sp
	sampler "$work/$name.samples" "$work/$name.stop" & sp=$!
	pgbench_loop "$name" "$runs"
	touch "$work/$name.stop"
	wait "$sp"
	# the window: from the first call's start to the last call's end
	read -r T0 T1 < <(cat "$work/$name".log.* | awk '{ e = $5 + $6 / 1e6; s = e - $3 / 1e6; if (!n++ || s < a) a = s; if (e > b) b = e } END { printf "%.6f %.6f\n", a, b }')
}

declare -A R
collect() {	# collect PHASE T0 T1
	local k v
	while IFS='=' read -r k v; do R[$1.$k]=$v; done < <(stats "$1" "$2" "$3")
	# from lib.sh's history trigger: when the first and the last workspace
	# were done, counted from the request, and the reasons of failed attempts
	IFS="|" read -r "R[$1.first_done]" "R[$1.last_done]" <<<"$(q "
		WITH h AS (SELECT * FROM public.it_history WHERE id IN ($idlist)
		             AND at BETWEEN to_timestamp($2) AND to_timestamp($3) + interval '1 s'),
		     d AS (SELECT id, min(at) AS at FROM h WHERE operation = 'NONE' GROUP BY id)
		SELECT (SELECT round(extract(epoch FROM min(at) - to_timestamp($2))::numeric, 1) FROM d),
		       (SELECT round(extract(epoch FROM max(at) - to_timestamp($2))::numeric, 1) FROM d)")"
	R[$1.reasons]=$(q "SELECT string_agg(DISTINCT error_reason, ',') FROM public.it_history
		WHERE id IN ($idlist) AND error_reason IS NOT NULL
		  AND at BETWEEN to_timestamp($2) AND to_timestamp($3) + interval '1 s'")
	# each retry is a new operation worker
	[ -n "${R[$1.workers]:-}" ] && [ "${R[$1.workers]}" -gt 0 ] && R[$1.retries]=$((R[$1.workers] - n))
	R[$1.wall]=$(printf '%.1f' "$(echo "$3 - $2" | bc)")
}

echo "archiving $n x ${size_mb} MB concurrently (pgbench: $clients clients, rate ${rate:-0}/s (0: unthrottled), get_workspace)..."
phase archive PENDING ARCHIVED
[ "$(display_count ARCHIVED)" = "$n" ] || die "not all $n ARCHIVED"
collect archive "$T0" "$T1"
echo "all $n ARCHIVED in ${R[archive.wall]} s; baseline pgbench for as long..."
baseline base_archive "${R[archive.wall]%.*}"
collect base_archive "$T0" "$T1"
phases="base_archive archive"

if [ "$restore" = 1 ]; then
	echo "restoring $n concurrently..."
	phase restore STANDBY STANDBY
	[ "$(display_count STANDBY)" = "$n" ] || die "not all $n STANDBY"
	collect restore "$T0" "$T1"
	echo "all $n STANDBY in ${R[restore.wall]} s; baseline pgbench for as long..."
	baseline base_restore "${R[restore.wall]%.*}"
	collect base_restore "$T0" "$T1"
	phases="$phases base_restore restore"
fi

# ---------------------------------------------------------------- table
gib=$(printf '%.2f' "$(echo "scale=3; $n * $size_mb / 1024" | bc)")
echo
echo "$n homes of $size_mb MB (${gib} GiB; tar $((n * tar_bytes / 1000000)) MB), zstd, part size 16MB, max_concurrent_operations $n, max_concurrent_transfers $transfers;"
echo "$ncpu cores; pgbench get_workspace: $clients clients, rate $rate/s (0: unthrottled), ${chunk}-s runs; CPU % of all $ncpu cores."
row() {	# row LABEL KEY [FORMAT]
	local p
	printf '%-34s' "$1"
	for p in $phases; do printf ' %14s' "${R[$p.$2]:--}"; done
	echo
}
printf '%-34s' ''; for p in $phases; do printf ' %14s' "$p"; done; echo
row "wall time (s)" wall
for p in $phases; do
	[ -n "${R[$p.first_done]:-}" ] && R[$p.done_s]="${R[$p.first_done]}/${R[$p.last_done]}"
	case $p in archive | restore) R[$p.mbs]=$(printf '%.1f' "$(echo "scale=3; $n * $tar_bytes / 1000000 / ${R[$p.wall]}" | bc)") ;; esac
done
row "aggregate MB/s (volume tar)" mbs
row "operation workers seen" workers
row "  at once (peak)" peak_workers
row "  by operation" worker_ops
row "retried attempts (workers - N)" retries
row "  reasons of the failures" reasons
row "first / last workspace done (s)" done_s
row "host CPU %" host_cpu
row "PostgreSQL CPU % (all)" pg_cpu
row "  operation workers" op_cpu
row "  the rest (backends, workers)" pg_rest_cpu
row "dockerd + containerd CPU %" docker_cpu
row "S3 server CPU %" s3_cpu
row "everything else CPU % (*)" other_cpu
row "op worker RSS peak (VmHWM, MB)" rss_peak_mb
row "op worker RSS mean (MB)" rss_mean_mb
row "op workers' RSS together, peak MB" rss_sum_peak_mb
row "get_workspace calls" calls
row "get_workspace calls/s" calls_s
row "latency avg (ms)" lat_avg
row "latency p50 (ms)" lat_p50
row "latency p99 (ms)" lat_p99
row "latency max (ms)" lat_max
for p in $phases; do [ -n "${R[$p.pgbench_errors]:-}" ] && echo "$p: ${R[$p.pgbench_errors]} pgbench runs failed (see $work)"; done
echo "(*) host minus the three above: pgbench, this script, the kernel, and anything else on the machine."
echo "pgbench latency is from each call's scheduled start (with a rate, it includes waiting behind a slow call)."
exit 0
