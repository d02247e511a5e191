#!/usr/bin/env bash
# rgw.sh: starts and stops a private S3 server for wsctl's tests: Ceph's RADOS
# Gateway on a throwaway one-node cluster (one ceph-mon, one memstore ceph-osd,
# radosgw; no ceph-mgr, S3 needs none), everything on 127.0.0.1 only. It really
# checks SigV4: a wrong secret gets 403 SignatureDoesNotMatch.
#
#   test/rgw.sh start DIR        builds the cluster under DIR and starts it
#   test/rgw.sh stop DIR         stops all its daemons and deletes DIR
#   test/rgw.sh stop-rgw DIR     stops only radosgw (mon, osd and the objects stay),
#                                for tests of an S3 outage
#   test/rgw.sh start-rgw DIR    starts radosgw again on the same port and waits
#                                until a signed request works
#   test/rgw.sh restart-rgw DIR  stop-rgw, then start-rgw
#
# start: the RGW port is 7480, or the first free one up to 7579 (outside the
# 6800-7300 range the OSD takes its ports from); the mon port the first free one
# from 3300 (a lock file serialises concurrent starts until the ports are bound).
# Creates the S3 user (access key wsctltest, secret wsctltestsecret) and the
# bucket wsctl, checks a signed PUT, GET and DELETE and a wrong-secret request,
# and writes DIR/env.sh, which exports WSCTL_S3_ENDPOINT, WSCTL_S3_BUCKET,
# WSCTL_S3_REGION, WSCTL_S3_ACCESS_KEY, WSCTL_S3_SECRET_KEY, WSCTL_RGW_DIR, and
# DIR/s3cfg (s3cmd -c DIR/s3cfg ls s3://wsctl). Logs are in DIR/log. The objects
# live in the OSD's RAM (capacity WSCTL_RGW_MEMSTORE_BYTES, default 4 GiB; RAM is taken only as it fills).
# Only processes recorded in DIR/run/*.pid whose command line names DIR/ceph.conf
# are ever signalled. Runs as root; so do the daemons.
set -euo pipefail

ACCESS_KEY=wsctltest
SECRET_KEY=wsctltestsecret
S3_UID=wsctl
BUCKET=wsctl
REGION=us-east-1
RGW_FIRST_PORT=7480
RGW_LAST_PORT=7579
MON_FIRST_PORT=3300
MON_LAST_PORT=3399
MEMSTORE_BYTES=${WSCTL_RGW_MEMSTORE_BYTES:-4294967296}
MARKER=.wsctl-rgw       # written into DIR by start; stop deletes only such dirs
LOCK=/tmp/.wsctl-rgw-ports.lock
START_DEADLINE=60       # seconds for each daemon to come up
STOP_DEADLINE=15        # seconds for a daemon to exit after SIGTERM
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
POOLS=(.rgw.root default.rgw.control default.rgw.meta default.rgw.log
    default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec)

usage() {
    echo "usage: $0 start|stop|start-rgw|stop-rgw|restart-rgw DIR" >&2
    exit 2
}

die() {
    echo "rgw.sh: $*" >&2
    exit 1
}

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "rgw.sh: [+$(elapsed)s] $*"; }

# port_in_use PORT: true when some socket listens on TCP PORT (any address).
port_in_use() {
    ss -Htln | awk -v p="$1" '{ n = split($4, a, ":"); if (a[n] == p) found = 1 } END { exit !found }'
}

# free_port FIRST LAST: the first port in FIRST..LAST nothing listens on.
free_port() {
    local port=$1
    while port_in_use "$port"; do
        port=$((port + 1))
        ((port <= $2)) || return 1
    done
    echo "$port"
}

# pid_of NAME: prints the pid in DIR/run/NAME.pid when that process is alive and
# one of its arguments is exactly DIR/ceph.conf (so a recycled pid is never signalled).
pid_of() {
    local file=$DIR/run/$1.pid pid
    [[ -r "$file" ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n "$pid" && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$CONF" || return 1
    [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
    echo "$pid"
}

# wait_gone PID SECONDS: polls until PID has exited; false if it outlives SECONDS.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        # A zombie has exited; it only waits for its parent to reap it.
        [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && return 0
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# halt NAME: stops the daemon NAME (mon.a, osd.0, client.rgw.a) through its pid
# file: SIGTERM, SIGKILL after STOP_DEADLINE. False if it survives.
halt() {
    local name=$1 pid
    pid=$(pid_of "$name") || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    if ! wait_gone "$pid" "$STOP_DEADLINE"; then
        echo "rgw.sh: $name (pid $pid) still running after $STOP_DEADLINE s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || { echo "rgw.sh: $name (pid $pid) survived SIGKILL" >&2; return 1; }
    fi
    rm -f "$DIR/run/$name.pid"
    echo "rgw.sh: stopped $name (pid $pid)"
}

# ceph ARGS...: the ceph CLI on this cluster, bounded so a wedged mon fails the start.
c() { timeout 30 ceph -c "$CONF" --connect-timeout 20 "$@"; }

# spawn NAME CMD...: starts a ceph daemon (it forks into the background and writes
# DIR/run/NAME.pid) in its own session, in /, with no terminal, lock or pipe of ours.
spawn() {
    local name=$1
    shift
    (cd / && setsid -w "$@" </dev/null >>"$DIR/log/$name.stderr.log" 2>&1 9>&-) ||
        die "$name failed to start (log $DIR/log/$name.log, $DIR/log/$name.stderr.log)"
}

# s3curl SECRET SHA256 CURL_ARGS...: curl with SigV4 as the test user.
s3curl() {
    local secret=$1 sha=$2
    shift 2
    curl -s --max-time 10 --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$secret" \
        -H "x-amz-content-sha256: $sha" "$@"
}

endpoint() { echo "http://127.0.0.1:$(cat "$DIR/rgw.port")"; }

# http_answers: radosgw serves an anonymous GET / (before the user exists).
http_answers() {
    [[ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$(endpoint)/")" == 200 ]]
}

# s3_answers: a signed HEAD of the bucket gets 200.
s3_answers() {
    [[ "$(s3curl "$SECRET_KEY" "$EMPTY_SHA" -I -o /dev/null -w '%{http_code}' "$(endpoint)/$BUCKET")" == 200 ]]
}

# wait_rgw WHAT CHECK...: polls CHECK until it succeeds while radosgw lives.
wait_rgw() {
    local what=$1 deadline=$((SECONDS + START_DEADLINE))
    shift
    until "$@"; do
        pid_of client.rgw.a >/dev/null || die "radosgw exited before $what (log $DIR/log/client.rgw.a.log)"
        ((SECONDS < deadline)) || die "radosgw: no $what within $START_DEADLINE s (log $DIR/log/client.rgw.a.log)"
        sleep 0.1
    done
}

launch_rgw() {
    [[ -s "$DIR/rgw.port" ]] || die "$DIR has no rgw.port; not made by rgw.sh start"
    port_in_use "$(cat "$DIR/rgw.port")" && die "127.0.0.1:$(cat "$DIR/rgw.port") is taken by another process"
    spawn client.rgw.a radosgw -c "$CONF" -n client.rgw.a
    wait_rgw "answer on $(endpoint)" http_answers
}

# on_start_exit RC: EXIT trap of start: on failure, the log's tail, and the daemons
# are stopped (DIR is kept for its logs; `rgw.sh stop DIR` deletes it).
on_start_exit() {
    trap - EXIT
    (($1 == 0)) && return 0
    local log
    for log in "$DIR/log/$STAGE.log" "$DIR/log/$STAGE.stderr.log"; do
        if [[ -s "$log" ]]; then
            echo "rgw.sh: start failed; last lines of $log:" >&2
            tail -n 20 "$log" >&2
        fi
    done
    halt client.rgw.a || true
    halt osd.0 || true
    halt mon.a || true
    echo "rgw.sh: start failed after $(elapsed) s; logs in $DIR/log" >&2
    exit "$1"
}

write_conf() {
    local mon_port=$1 rgw_port=$2
    cat >"$CONF" <<EOF
# written by test/rgw.sh: a throwaway one-node cluster on 127.0.0.1 only
[global]
fsid = $(cat /proc/sys/kernel/random/uuid)
mon host = [v2:127.0.0.1:$mon_port]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $DIR/keys/\$name.keyring
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
# one mon: commit map changes quickly (default 1 s each)
paxos propose interval = 0.05

[mon]
mon data = $DIR/mon/\$name
admin socket = $DIR/run/\$name.asok

[osd]
osd data = $DIR/osd/\$name
admin socket = $DIR/run/\$name.asok
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd op num shards = 2
osd op num threads per shard = 1

[client]
# the ceph CLI and radosgw-admin run concurrently; no admin socket for them
admin socket =

[client.rgw.a]
admin socket = $DIR/run/\$name.asok
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $DIR/rgw
rgw thread pool size = 32
rgw enable usage log = false
# tests stop radosgw during an upload: do not wait 120 s for it to drain
rgw exit timeout secs = 2
# deleted objects' space is reclaimed within seconds, not hours: the
# store is RAM, and tests and benchmarks delete what they upload
rgw gc obj min wait = 5
rgw gc processor period = 5
EOF
}

# self_check: signed PUT, GET, DELETE work and a wrong secret is refused.
self_check() {
    local key=.rgw-sh-check-$$ body=$DIR/check.body sha code
    printf 'rgw.sh check %s\n' "$(date +%s.%N)" >"$body"
    sha=$(sha256sum "$body" | cut -d' ' -f1)
    code=$(s3curl "$SECRET_KEY" "$sha" -o "$DIR/check.out" -w '%{http_code}' -T "$body" "$(endpoint)/$BUCKET/$key") || true
    [[ $code == 200 ]] || die "self-check: signed PUT -> HTTP $code: $(cat "$DIR/check.out")"
    code=$(s3curl "$SECRET_KEY" "$EMPTY_SHA" -o "$DIR/check.out" -w '%{http_code}' "$(endpoint)/$BUCKET/$key") || true
    if [[ $code != 200 ]] || ! cmp -s "$body" "$DIR/check.out"; then
        die "self-check: signed GET -> HTTP $code, or not the body put"
    fi
    code=$(s3curl "$SECRET_KEY-wrong" "$EMPTY_SHA" -o "$DIR/check.out" -w '%{http_code}' "$(endpoint)/$BUCKET/$key") || true
    if [[ $code != 403 ]] || ! grep -q SignatureDoesNotMatch "$DIR/check.out"; then
        die "self-check: a wrong secret was not refused: HTTP $code: $(cat "$DIR/check.out")"
    fi
    code=$(s3curl "$SECRET_KEY" "$EMPTY_SHA" -o /dev/null -w '%{http_code}' -X DELETE "$(endpoint)/$BUCKET/$key") || true
    [[ $code == 204 ]] || die "self-check: signed DELETE -> HTTP $code"
    rm -f "$body" "$DIR/check.out"
}

cmd_start() {
    ((EUID == 0)) || die "run as root"
    local bin
    for bin in ceph ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool curl flock; do
        command -v "$bin" >/dev/null || die "$bin not found; run test/install-deps.sh"
    done
    if [[ -e "$DIR/$MARKER" ]]; then
        if pid_of mon.a >/dev/null && pid_of osd.0 >/dev/null && pid_of client.rgw.a >/dev/null &&
            [[ -s "$DIR/env.sh" ]] && s3_answers; then
            say "already running in $DIR; . $DIR/env.sh"
            return 0
        fi
        echo "rgw.sh: a dead or partial cluster is in $DIR; removing it"
        cmd_stop
    elif [[ -d "$DIR" && -n "$(ls -A "$DIR")" ]]; then
        die "$DIR is not empty and was not made by rgw.sh; refusing to use it"
    fi
    # Unix socket paths are limited to 107 bytes.
    (($(printf '%s' "$DIR/run/client.rgw.a.asok" | wc -c) <= 107)) ||
        die "DIR path too long for the daemons' admin sockets: $DIR"

    mkdir -p "$DIR"/{mon,osd/osd.0,rgw,run,log,keys}
    touch "$DIR/$MARKER"
    STAGE=mon.a
    trap 'on_start_exit $?' EXIT

    # Ports: chosen and bound under one lock, so two concurrent starts differ.
    exec 9>>"$LOCK"
    flock -w 120 9 || die "could not lock $LOCK within 120 s"
    local mon_port rgw_port deadline
    mon_port=$(free_port "$MON_FIRST_PORT" "$MON_LAST_PORT") || die "no free port in $MON_FIRST_PORT..$MON_LAST_PORT"
    rgw_port=$(free_port "$RGW_FIRST_PORT" "$RGW_LAST_PORT") || die "no free port in $RGW_FIRST_PORT..$RGW_LAST_PORT"
    echo "$rgw_port" >"$DIR/rgw.port"
    echo "$mon_port" >"$DIR/mon.port"
    write_conf "$mon_port" "$rgw_port"

    # mon: keys, map, store, then the daemon.
    ceph-authtool --create-keyring "$DIR/keys/mon.a.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring "$DIR/keys/client.admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool --create-keyring "$DIR/keys/client.rgw.a.keyring" --gen-key -n client.rgw.a \
        --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
    # The mon's initial keyring holds every key it should know (saves CLI calls).
    ceph-authtool "$DIR/keys/mon.a.keyring" --import-keyring "$DIR/keys/client.admin.keyring" >/dev/null
    ceph-authtool "$DIR/keys/mon.a.keyring" --import-keyring "$DIR/keys/client.rgw.a.keyring" >/dev/null
    monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" \
        --fsid "$(sed -n 's/^fsid = //p' "$CONF")" "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keys/mon.a.keyring" \
        >>"$DIR/log/mon.a.stderr.log" 2>&1 || die "ceph-mon --mkfs failed (log $DIR/log/mon.a.stderr.log)"
    spawn mon.a ceph-mon -c "$CONF" -i a
    deadline=$((SECONDS + START_DEADLINE))
    until c mon stat >/dev/null 2>&1; do
        pid_of mon.a >/dev/null || die "ceph-mon exited (log $DIR/log/mon.a.log)"
        ((SECONDS < deadline)) || die "ceph-mon did not answer within $START_DEADLINE s (log $DIR/log/mon.a.log)"
        sleep 0.1
    done
    say "mon.a up on 127.0.0.1:$mon_port (pid $(pid_of mon.a))"

    # The pools radosgw would otherwise create one at a time, about 2 s each: made
    # while the OSD starts, by one ceph CLI process reading the commands from stdin
    # (it exits 0 even if one fails; the pools are checked below).
    local pool pools_pid
    for pool in "${POOLS[@]}"; do
        printf 'osd pool create %s 8 8 replicated\nosd pool application enable %s rgw\n' "$pool" "$pool"
    done | c >>"$DIR/log/pools.log" 2>&1 &
    pools_pid=$!

    # osd: its key is registered with the mon before mkfs (mkfs fetches its config).
    STAGE=osd.0
    local osd_uuid osd_key osd_id
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_key=$(ceph-authtool --gen-print-key)
    printf '{"cephx_secret": "%s"}\n' "$osd_key" >"$DIR/keys/osd.0.json"
    printf '[osd.0]\n\tkey = %s\n' "$osd_key" >"$DIR/keys/osd.0.keyring"
    osd_id=$(c osd new "$osd_uuid" 0 -i "$DIR/keys/osd.0.json") || die "ceph osd new failed"
    [[ $osd_id == 0 ]] || die "expected osd id 0, got '$osd_id'"
    ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/osd.0.stderr.log" 2>&1 ||
        die "ceph-osd --mkfs failed (log $DIR/log/osd.0.stderr.log)"
    spawn osd.0 ceph-osd -c "$CONF" -i 0
    deadline=$((SECONDS + START_DEADLINE))
    until c osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1,'; do
        pid_of osd.0 >/dev/null || die "ceph-osd exited (log $DIR/log/osd.0.log)"
        ((SECONDS < deadline)) || die "osd.0 not up within $START_DEADLINE s (log $DIR/log/osd.0.log)"
        sleep 0.1
    done
    say "osd.0 up (pid $(pid_of osd.0))"

    STAGE=client.admin
    wait "$pools_pid" || die "creating the rgw pools failed (log $DIR/log/pools.log)"
    local have
    have=$(c osd pool ls) || die "ceph osd pool ls failed (log $DIR/log/client.admin.log)"
    for pool in "${POOLS[@]}"; do
        grep -qxF -- "$pool" <<<"$have" || die "pool $pool was not created (log $DIR/log/pools.log)"
    done
    say "rgw pools created"

    STAGE=client.rgw.a
    launch_rgw
    # Every port is bound now: the next start may choose its own.
    flock -u 9
    exec 9>&-
    say "radosgw up on $(endpoint) (pid $(pid_of client.rgw.a))"

    radosgw-admin -c "$CONF" user create --uid "$S3_UID" --display-name "wsctl tests" \
        --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" >>"$DIR/log/user.log" 2>&1 ||
        die "radosgw-admin user create failed (log $DIR/log/user.log)"
    local code
    code=$(s3curl "$SECRET_KEY" "$EMPTY_SHA" -o "$DIR/log/bucket.out" -w '%{http_code}' -X PUT "$(endpoint)/$BUCKET") || true
    [[ $code == 200 ]] || die "creating bucket $BUCKET: HTTP $code: $(cat "$DIR/log/bucket.out")"
    wait_rgw "signed HEAD /$BUCKET with 200" s3_answers
    self_check
    say "user $S3_UID (key $ACCESS_KEY), bucket $BUCKET; signed PUT/GET/DELETE work, a wrong secret gets 403"

    cat >"$DIR/s3cfg" <<EOF
[default]
access_key = $ACCESS_KEY
secret_key = $SECRET_KEY
host_base = 127.0.0.1:$rgw_port
host_bucket = 127.0.0.1:$rgw_port
bucket_location = $REGION
use_https = False
signature_v2 = False
EOF
    {
        echo "# written by test/rgw.sh: source it to reach the test S3 server"
        printf 'export WSCTL_S3_ENDPOINT=%q\n' "$(endpoint)"
        printf 'export WSCTL_S3_BUCKET=%q\n' "$BUCKET"
        printf 'export WSCTL_S3_REGION=%q\n' "$REGION"
        printf 'export WSCTL_S3_ACCESS_KEY=%q\n' "$ACCESS_KEY"
        printf 'export WSCTL_S3_SECRET_KEY=%q\n' "$SECRET_KEY"
        printf 'export WSCTL_RGW_DIR=%q\n' "$DIR"
    } >"$DIR/env.sh"
    trap - EXIT
    say "ready on $(endpoint), bucket $BUCKET; . $DIR/env.sh (started in $(elapsed) s)"
}

cmd_stop() {
    [[ -d "$DIR" ]] || return 0
    [[ -e "$DIR/$MARKER" ]] || die "$DIR was not made by rgw.sh; not touching it"
    local rc=0
    halt client.rgw.a || rc=1
    halt osd.0 || rc=1
    halt mon.a || rc=1
    ((rc == 0)) || die "a daemon would not stop; $DIR kept"
    rm -rf --one-file-system "$DIR"
    echo "rgw.sh: stopped, $DIR removed"
}

cmd_stop_rgw() {
    [[ -e "$DIR/$MARKER" ]] || die "$DIR was not made by rgw.sh"
    if ! pid_of client.rgw.a >/dev/null; then
        echo "rgw.sh: radosgw is not running in $DIR"
        return 0
    fi
    halt client.rgw.a
}

cmd_start_rgw() {
    [[ -e "$DIR/$MARKER" ]] || die "$DIR was not made by rgw.sh"
    pid_of mon.a >/dev/null || die "ceph-mon is not running in $DIR (log $DIR/log/mon.a.log)"
    pid_of osd.0 >/dev/null || die "ceph-osd is not running in $DIR (log $DIR/log/osd.0.log)"
    if pid_of client.rgw.a >/dev/null; then
        wait_rgw "signed HEAD /$BUCKET with 200" s3_answers
        say "radosgw already running on $(endpoint)"
        return 0
    fi
    launch_rgw
    wait_rgw "signed HEAD /$BUCKET with 200" s3_answers
    say "radosgw up again on $(endpoint) (pid $(pid_of client.rgw.a))"
}

(($# == 2)) || usage
DIR=$(realpath -m -- "$2")
[[ -n "$DIR" && "$DIR" != / ]] || die "refusing DIR '/'"
CONF=$DIR/ceph.conf
STAGE=client.rgw.a
case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    stop-rgw) cmd_stop_rgw ;;
    start-rgw) cmd_start_rgw ;;
    restart-rgw)
        cmd_stop_rgw
        cmd_start_rgw
        ;;
    *) usage ;;
esac
