#!/usr/bin/env bash
# redis.sh: starts and stops a private redis-server for wsctl's tests.
#
#   test/redis.sh start DIR     first free TCP port from 63790 up, on 127.0.0.1 only,
#                               no persistence, state and log under DIR; writes
#                               DIR/env.sh (WSCTL_REDIS_PORT, WSCTL_REDIS_URL)
#   test/redis.sh stop DIR      stops it through DIR/redis.pid and deletes DIR
#   test/redis.sh pause DIR     stops it, keeps DIR (tests of a Redis outage)
#   test/redis.sh resume DIR    starts it again on the same port
# Only the process recorded in DIR/redis.pid is ever signalled.
set -euo pipefail

FIRST_PORT=63790
LAST_PORT=63890
MARKER=.wsctl-redis
DEADLINE=20

die() { echo "redis.sh: $*" >&2; exit 1; }
usage() { echo "usage: $0 start|stop|pause|resume DIR" >&2; exit 2; }

# port_in_use PORT: true when some socket listens on TCP PORT (any address).
port_in_use() {
    ss -Htln | awk -v p="$1" '{ n = split($4, a, ":"); if (a[n] == p) found = 1 } END { exit !found }'
}

# pid_of DIR: the live redis-server recorded in DIR/redis.pid.
pid_of() {
    local pid
    [[ -r "$1/redis.pid" ]] || return 1
    pid=$(tr -dc '0-9' <"$1/redis.pid")
    [[ -n "$pid" && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q redis-server || return 1
    echo "$pid"
}

launch() {
    local dir=$1 port=$2 deadline=$((SECONDS + DEADLINE))
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
        --save '' --appendonly no --daemonize yes --dir "$dir" \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    until redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; do
        ((SECONDS < deadline)) || die "redis-server did not answer on port $port (log $dir/redis.log)"
        sleep 0.1
    done
}

halt() {
    local dir=$1 pid deadline=$((SECONDS + DEADLINE))
    pid=$(pid_of "$dir") || return 0
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || { kill -KILL "$pid" 2>/dev/null; break; }
        sleep 0.1
    done
}

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
case $cmd in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    touch "$dir/$MARKER"
    port=$FIRST_PORT
    while port_in_use "$port"; do
        port=$((port + 1))
        ((port <= LAST_PORT)) || die "no free TCP port in $FIRST_PORT..$LAST_PORT"
    done
    launch "$dir" "$port"
    echo "$port" >"$dir/port"
    {
        printf 'export WSCTL_REDIS_PORT=%q\n' "$port"
        printf 'export WSCTL_REDIS_URL=%q\n' "redis://127.0.0.1:$port/0"
        printf 'export WSCTL_REDIS_DIR=%q\n' "$dir"
    } >"$dir/env.sh"
    echo "redis.sh: ready on 127.0.0.1:$port; . $dir/env.sh"
    ;;
pause)
    halt "$dir"
    echo "redis.sh: paused"
    ;;
resume)
    [[ -r "$dir/port" ]] || die "$dir was not started by redis.sh"
    launch "$dir" "$(cat "$dir/port")"
    echo "redis.sh: resumed"
    ;;
stop)
    [[ -d "$dir" ]] || exit 0
    halt "$dir"
    [[ -e "$dir/$MARKER" ]] && rm -rf "$dir"
    echo "redis.sh: stopped"
    ;;
*) usage ;;
esac
