#!/usr/bin/env bash
# docker.sh: starts and stops a private Docker engine for wsctl's tests.
#
#   test/docker.sh start DIR
#   test/docker.sh stop DIR
#   test/docker.sh pause DIR     (stop dockerd, keep its state; tests of an outage)
#   test/docker.sh resume DIR    (start it again on the same state)
#
# start: runs dockerd with no bridge and no iptables rules (containers get network
# mode none; nothing leaves the machine), its socket at DIR/docker.sock owned by the
# group wsctl-docker (the postgres OS user is put in it, so wsctl's workers can use
# the socket), and all its state under DIR. Then builds the workspace test image
# wsctl-busybox:test from Debian's busybox-static with `docker import`, checks it
# with a container that writes and reads a named volume, and writes DIR/env.sh,
# which exports DOCKER_HOST and WSCTL_TEST_IMAGE.
# stop: removes the containers and volumes labelled wsctl.managed=true (and any
# other container), stops dockerd through DIR/docker.pid, unmounts what is left
# under DIR and deletes DIR. Running it twice, or on a missing DIR, is fine.
set -euo pipefail

IMAGE=wsctl-busybox:test
GROUP=wsctl-docker
MARKER=.wsctl-docker    # written into DIR by start; stop deletes only such dirs
START_DEADLINE=60       # seconds for dockerd to answer
STOP_DEADLINE=30        # seconds for dockerd to exit after SIGTERM
APPLETS=(sh sleep ls cat echo touch mkdir rm tar sync
    cp mv chmod wc head grep sha256sum du find stat id env true false test)

# The docker.io package's client matches its engine (API 1.41); prefer it.
if [[ -x /usr/bin/docker ]]; then DOCKER_BIN=/usr/bin/docker; else DOCKER_BIN=docker; fi

usage() {
    echo "usage: $0 start|stop|pause|resume DIR" >&2
    exit 2
}

die() {
    echo "docker.sh: $*" >&2
    exit 1
}

# pid_is PIDFILE NEEDLE: prints the pid in PIDFILE when that process is alive and its
# command line contains NEEDLE (so a recycled pid is never signalled).
pid_is() {
    local file=$1 needle=$2 pid
    [[ -r "$file" ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n "$pid" && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle" || return 1
    echo "$pid"
}

# wait_gone PID SECONDS: polls until PID has exited; false if it outlives SECONDS.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        # A zombie has exited; it only waits for its parent to reap it.
        [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && return 0
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL if it is still there after SECONDS.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    if ! wait_gone "$pid" "$2"; then
        echo "docker.sh: pid $pid still running after $2 s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || echo "docker.sh: pid $pid survived SIGKILL" >&2
    fi
}

# mounts_under DIR: mount points at or below DIR, deepest first.
mounts_under() {
    local dir=$1 mp
    while read -r _ _ _ _ mp _; do
        mp=$(printf '%b' "$mp")   # mountinfo escapes blanks as \040
        if [[ "$mp" == "$dir" || "$mp" == "$dir"/* ]]; then
            echo "$mp"
        fi
    done </proc/self/mountinfo | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

# dk ARGS...: the docker client on this engine, bounded so a wedged daemon fails
# the start instead of hanging it.
dk() {
    timeout 120 "$DOCKER_BIN" -H "unix://$DIR/docker.sock" "$@"
}

# remove_all LIST_ARGS... -- REMOVE_ARGS...: docker LIST_ARGS prints ids; docker
# REMOVE_ARGS ids removes them. Failures are ignored.
remove_all() {
    local list=() ids=()
    while [[ $1 != -- ]]; do list+=("$1"); shift; done
    shift
    mapfile -t ids < <(timeout 20 "$DOCKER_BIN" -H "unix://$DIR/docker.sock" "${list[@]}" 2>/dev/null || true)
    ((${#ids[@]} == 0)) ||
        timeout 60 "$DOCKER_BIN" -H "unix://$DIR/docker.sock" "$@" "${ids[@]}" >/dev/null 2>&1 || true
}

cmd_stop() {
    [[ -d "$DIR" ]] || return 0
    [[ -e "$DIR/$MARKER" ]] || die "$DIR was not made by docker.sh; not touching it"
    local pid

    if pid=$(pid_is "$DIR/docker.pid" "$DIR/docker.sock"); then
        echo "docker.sh: removing wsctl containers and volumes"
        # Best effort, with timeouts: a wedged daemon must not block the stop.
        remove_all ps -aq --filter label=wsctl.managed=true -- rm -f
        # Anything else still running would make dockerd wait its shutdown timeout
        # (busybox sleep ignores SIGTERM as pid 1); this engine is throwaway anyway.
        remove_all ps -aq -- rm -f
        remove_all volume ls -q --filter label=wsctl.managed=true -- volume rm -f

        echo "docker.sh: stopping dockerd (pid $pid)"
        stop_pid "$pid" "$STOP_DEADLINE"
    fi

    # dockerd stops its containerd on a clean exit; after a SIGKILL it cannot.
    if pid=$(pid_is "$DIR/exec/containerd/containerd.pid" "$DIR/exec/containerd"); then
        echo "docker.sh: stopping leftover containerd (pid $pid)"
        stop_pid "$pid" 10
    fi
    # Leftover containers (only after a dockerd crash or SIGKILL): their init pids are
    # in the pid files containerd keeps; the parent of each is its runc shim, which
    # is killed too when its command line names this engine's containerd socket.
    local f shim
    while IFS= read -r f; do
        pid=$(tr -dc '0-9' <"$f")
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            shim=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            echo "docker.sh: killing leftover container process $pid ($f)"
            kill -KILL "$pid" 2>/dev/null || true
            if [[ -n "$shim" && -r /proc/$shim/cmdline ]] &&
                tr '\0' ' ' <"/proc/$shim/cmdline" | grep -qF -- "$DIR/exec/containerd/containerd.sock"; then
                echo "docker.sh: stopping its shim $shim"
                stop_pid "$shim" 5
            fi
        fi
    done < <(find "$DIR/exec/containerd" -name '*.pid' ! -name containerd.pid 2>/dev/null || true)

    local mp
    while IFS= read -r mp; do
        [[ -n "$mp" ]] || continue
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null ||
            echo "docker.sh: could not unmount $mp" >&2
    done < <(mounts_under "$DIR")
    if [[ -n "$(mounts_under "$DIR")" ]]; then
        mounts_under "$DIR" >&2
        die "mounts are left under $DIR; not deleting it"
    fi
    rm -rf --one-file-system "$DIR"
    echo "docker.sh: stopped, $DIR removed"
}

# build_image: a rootfs holding only busybox and a few applet links, imported as
# $IMAGE. Its command sleeps for ever; the container ends on SIGKILL (docker kill,
# docker rm -f, or docker stop after its timeout, since pid 1 ignores SIGTERM).
build_image() {
    local root=$DIR/rootfs applet
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/tmp" "$root/home/coder"
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in "${APPLETS[@]}"; do
        ln -s busybox "$root/bin/$applet"
    done
    tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
        dk import --change 'CMD ["/bin/busybox","sleep","2147483647"]' - "$IMAGE" >/dev/null
    rm -rf "$root"
}

# verify_image: the image runs with no network, a named volume at /home/coder keeps a
# file from one container to the next, and the default command keeps running.
verify_image() {
    local vol=wsctl-selftest-$$ out cid running
    dk volume create --label wsctl.selftest=true "$vol" >/dev/null
    dk run --rm --network none -v "$vol:/home/coder" "$IMAGE" \
        sh -c 'echo wsctl-volume-ok > /home/coder/probe && sync'
    out=$(dk run --rm --network none -v "$vol:/home/coder" "$IMAGE" cat /home/coder/probe)
    dk volume rm "$vol" >/dev/null
    [[ "$out" == wsctl-volume-ok ]] || die "image check: read back '$out' from the volume"

    cid=$(dk run -d --network none --label wsctl.selftest=true "$IMAGE")
    running=$(dk inspect -f '{{.State.Running}}' "$cid")
    dk rm -f "$cid" >/dev/null
    [[ "$running" == true ]] || die "image check: default command did not keep the container running"
}

# on_start_exit RC: EXIT trap of a start that launched dockerd.
on_start_exit() {
    trap - EXIT
    (($1 == 0)) && return 0
    if [[ -r "$DIR/dockerd.log" ]]; then
        echo "docker.sh: start failed; last lines of $DIR/dockerd.log:" >&2
        tail -n 30 "$DIR/dockerd.log" >&2
    fi
    cmd_stop || true
    exit "$1"
}

# launch_dockerd: starts dockerd on DIR and waits until it answers.
launch_dockerd() {
    echo "docker.sh: starting dockerd (socket $DIR/docker.sock, log $DIR/dockerd.log)"
    # setsid: the daemon outlives this script and its process group.
    # --live-restore: containers keep running while dockerd is down (pause),
    # as on a production host whose Docker daemon restarts.
    setsid dockerd \
        --bridge=none --iptables=false --ip6tables=false \
        --live-restore \
        --group "$GROUP" \
        -H "unix://$DIR/docker.sock" \
        --data-root "$DIR/data" \
        --exec-root "$DIR/exec" \
        --pidfile "$DIR/docker.pid" \
        </dev/null >>"$DIR/dockerd.log" 2>&1 &
    local launched=$! deadline=$((SECONDS + START_DEADLINE))
    until dk version >/dev/null 2>&1; do
        kill -0 "$launched" 2>/dev/null || die "dockerd exited during start"
        ((SECONDS < deadline)) || die "dockerd did not answer within $START_DEADLINE s"
        sleep 0.2
    done
}

# pause: stops dockerd and keeps everything (containers stop with it), so that
# tests can see how wsctl lives without Docker; resume starts it again.
cmd_pause() {
    [[ -e "$DIR/$MARKER" ]] || die "$DIR was not made by docker.sh"
    local pid
    pid=$(pid_is "$DIR/docker.pid" "$DIR/docker.sock") || die "dockerd is not running in $DIR"
    echo "docker.sh: pausing dockerd (pid $pid)"
    stop_pid "$pid" 60
}

cmd_resume() {
    [[ -e "$DIR/$MARKER" ]] || die "$DIR was not made by docker.sh"
    pid_is "$DIR/docker.pid" "$DIR/docker.sock" >/dev/null && die "dockerd is already running in $DIR"
    launch_dockerd
}

cmd_start() {
    ((EUID == 0)) || die "run as root"
    command -v dockerd >/dev/null || die "dockerd not found; run test/install-deps.sh"
    [[ -x /bin/busybox ]] || die "/bin/busybox not found; run test/install-deps.sh (busybox-static)"

    if [[ -d "$DIR" && -n "$(ls -A "$DIR")" && ! -e "$DIR/$MARKER" ]]; then
        die "$DIR is not empty and was not made by docker.sh; refusing to use it"
    fi
    # Unix socket paths are limited to 107 bytes; containerd's lives deepest.
    (($(printf '%s' "$DIR/exec/containerd/containerd.sock.ttrpc" | wc -c) <= 107)) ||
        die "DIR path too long for the daemons' unix sockets: $DIR"

    local pid=''
    if [[ -e "$DIR/$MARKER" ]]; then
        if pid=$(pid_is "$DIR/docker.pid" "$DIR/docker.sock") && dk version >/dev/null 2>&1; then
            echo "docker.sh: dockerd already running in $DIR (pid $pid)"
        else
            echo "docker.sh: cleaning up a dead engine in $DIR"
            cmd_stop
            pid=''
        fi
    fi

    getent group "$GROUP" >/dev/null || groupadd --system "$GROUP"
    if id postgres >/dev/null 2>&1 && ! id -nG postgres | tr ' ' '\n' | grep -qx "$GROUP"; then
        usermod -aG "$GROUP" postgres
    fi

    if [[ -z "$pid" ]]; then
        mkdir -p "$DIR"
        chmod 755 "$DIR"
        touch "$DIR/$MARKER"
        # From here on a failed start stops the engine again rather than leave it.
        trap 'on_start_exit $?' EXIT
        launch_dockerd
    fi

    if ! runuser -u postgres -- "$DOCKER_BIN" -H "unix://$DIR/docker.sock" ps >/dev/null 2>&1; then
        (cd / && runuser -u postgres -- "$DOCKER_BIN" -H "unix://$DIR/docker.sock" ps) || true
        die "the postgres user cannot use $DIR/docker.sock"
    fi

    if ! dk image inspect "$IMAGE" >/dev/null 2>&1; then
        echo "docker.sh: building $IMAGE from /bin/busybox"
        build_image
    fi
    echo "docker.sh: checking $IMAGE (named volume, network none)"
    verify_image

    {
        echo "# written by test/docker.sh: source it to reach the test Docker engine"
        printf 'export DOCKER_HOST=%q\n' "unix://$DIR/docker.sock"
        printf 'export WSCTL_TEST_IMAGE=%q\n' "$IMAGE"
    } >"$DIR/env.sh"
    echo "docker.sh: ready; . $DIR/env.sh"
}

(($# == 2)) || usage
DIR=$(realpath -m -- "$2")
[[ -n "$DIR" && "$DIR" != / ]] || die "refusing DIR '/'"
case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    pause) cmd_pause ;;
    resume) cmd_resume ;;
    *) usage ;;
esac
