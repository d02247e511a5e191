#!/usr/bin/env bash
# pg.sh: starts and stops a throwaway PostgreSQL 15 cluster for wsctl's tests.
#
#   test/pg.sh start DIR [EXTRA_CONF_FILE]
#   test/pg.sh stop DIR
#
# start: creates DIR (owned by postgres, mode 755; it is also the unix socket
# directory), runs initdb into DIR/data as the `postgres` OS user (PostgreSQL refuses
# to run as root), picks the first free TCP port from 54320 up, listens on 127.0.0.1
# only, preloads wsctl, appends EXTRA_CONF_FILE to postgresql.conf (so it overrides
# the defaults below), starts the server (log: DIR/postgres.log) and writes
# DIR/env.sh, which exports PGHOST PGPORT PGUSER PGDATABASE WSCTL_PGDATA.
# stop: `pg_ctl stop -m fast` through DIR/data's pid file; does nothing when the
# server or DIR is not there. DIR is kept (logs); remove it yourself.
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
FIRST_PORT=54320
LAST_PORT=54419
MARKER=.wsctl-pg        # written into DIR by start; stop and restart trust only such dirs

usage() {
    echo "usage: $0 start DIR [EXTRA_CONF_FILE] | $0 stop DIR" >&2
    exit 2
}

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

# as_postgres CMD...: runs CMD as the postgres OS user from a directory it can read.
as_postgres() {
    (cd / && runuser -u postgres -- "$@")
}

# port_in_use PORT: true when some socket listens on TCP PORT (any address).
port_in_use() {
    ss -Htln | awk -v p="$1" '{ n = split($4, a, ":"); if (a[n] == p) found = 1 } END { exit !found }'
}

# server_running DATADIR: true when pg_ctl finds a live postmaster for DATADIR.
server_running() {
    [[ -f "$1/postmaster.pid" ]] && as_postgres "$PGBIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# ensure_docker_group: lets the postmaster (and so wsctl's workers) reach a test
# dockerd started with `--group wsctl-docker` (see test/docker.sh). Group membership
# is read when a process starts, so it must be in place before the postmaster starts.
ensure_docker_group() {
    if getent group wsctl-docker >/dev/null && ! id -nG postgres | tr ' ' '\n' | grep -qx wsctl-docker; then
        usermod -aG wsctl-docker postgres
    fi
}

cmd_start() {
    local dir=$1 extra=${2:-}
    [[ -n "$extra" && ! -r "$extra" ]] && die "extra config file '$extra' is not readable"
    ((EUID == 0)) || die "run as root (it switches to the postgres user itself)"
    id postgres >/dev/null 2>&1 || die "no postgres OS user; run test/install-deps.sh"
    [[ -x "$PGBIN/initdb" ]] || die "$PGBIN/initdb not found; run test/install-deps.sh"

    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    local data=$dir/data log=$dir/postgres.log

    if [[ -n "$(ls -A "$dir")" && ! -e "$dir/$MARKER" ]]; then
        die "$dir is not empty and was not made by pg.sh; refusing to use it"
    fi
    if server_running "$data"; then
        die "a server is already running in $data; run '$0 stop $dir' first"
    fi
    # A leftover cluster from an earlier run (crashed or stopped): start afresh.
    rm -rf "$data" "$dir/env.sh"
    touch "$dir/$MARKER"

    chown postgres:postgres "$dir"
    chmod 755 "$dir"
    as_postgres test -x "$dir" -a -w "$dir" ||
        die "postgres cannot use $dir: every parent directory must be traversable (o+x)"

    ensure_docker_group

    echo "pg.sh: initdb in $data"
    if ! as_postgres "$PGBIN/initdb" -D "$data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    fi

    : >"$log"
    chown postgres:postgres "$log"

    local port=$FIRST_PORT attempt
    for attempt in 1 2 3; do
        while port_in_use "$port"; do
            port=$((port + 1))
            ((port <= LAST_PORT)) || die "no free TCP port in $FIRST_PORT..$LAST_PORT"
        done

        # Our settings go into an include file; EXTRA_CONF_FILE is appended after it so
        # it can override any of them (the last setting in the file wins).
        cat >"$data/wsctl-test.conf" <<EOF
# written by test/pg.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'wsctl'
# fsync off only risks data on an OS crash. synchronous_commit stays on: the
# crash tests SIGKILL server processes, and a commit reported to a client must
# survive that, as it would in production.
fsync = off
full_page_writes = off
max_connections = 200
max_worker_processes = 32
logging_collector = off
log_min_messages = info
EOF
        {
            echo "include 'wsctl-test.conf'"
            if [[ -n "$extra" ]]; then
                echo "# --- from $extra"
                cat "$extra"
                echo
            fi
        } >"$data/wsctl-extra.conf"
        grep -q "^include 'wsctl-extra.conf'" "$data/postgresql.conf" ||
            echo "include 'wsctl-extra.conf'" >>"$data/postgresql.conf"
        chown postgres:postgres "$data/wsctl-test.conf" "$data/wsctl-extra.conf"

        echo "pg.sh: starting PostgreSQL on 127.0.0.1:$port (log $log)"
        if as_postgres "$PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null; then
            break
        fi
        # Do not leave a half-started postmaster behind.
        if server_running "$data"; then
            as_postgres "$PGBIN/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 || true
        fi
        if tail -n 20 "$log" | grep -q 'could not bind\|Address already in use' && ((attempt < 3)); then
            echo "pg.sh: port $port was taken meanwhile; trying the next one"
            port=$((port + 1))
            continue
        fi
        echo "pg.sh: PostgreSQL failed to start; last lines of $log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    done

    {
        echo "# written by test/pg.sh: source it to reach the test cluster"
        printf 'export PGHOST=%q\n' "$dir"
        printf 'export PGPORT=%q\n' "$port"
        echo "export PGUSER=postgres"
        echo "export PGDATABASE=postgres"
        printf 'export WSCTL_PGDATA=%q\n' "$data"
    } >"$dir/env.sh"
    echo "pg.sh: ready; . $dir/env.sh"
}

cmd_stop() {
    local dir=$1
    [[ -d "$dir" ]] || exit 0
    local data=$dir/data
    [[ -f "$data/postmaster.pid" ]] || exit 0
    if ! server_running "$data"; then
        echo "pg.sh: no server running in $data (stale pid file)"
        exit 0
    fi
    echo "pg.sh: stopping PostgreSQL in $data"
    if ! as_postgres "$PGBIN/pg_ctl" -D "$data" stop -m fast -w -t 60 >/dev/null; then
        echo "pg.sh: fast shutdown did not finish in 60 s; immediate shutdown" >&2
        as_postgres "$PGBIN/pg_ctl" -D "$data" stop -m immediate -w -t 30 >/dev/null
    fi
}

(($# >= 2)) || usage
case "$1" in
    start) (($# <= 3)) || usage; cmd_start "$2" "${3:-}" ;;
    stop) (($# == 2)) || usage; cmd_stop "$2" ;;
    *) usage ;;
esac
