#!/usr/bin/env bash
# install-deps.sh: installs the Debian packages that building and testing wsctl need.
#
# Idempotent and fast: it asks dpkg which packages are missing and only then runs
# `apt-get update` and `apt-get install --no-install-recommends` for those.
# Services that packages would start on install (postgresql, redis, docker, ceph, etcd,
# patroni) are kept from starting: the test scripts start their own private instances on
# loopback (31_patroni.t's etcd on its own ports, so a system etcd on 2379 is no matter).
# Must run as root (apt-get). Usage: test/install-deps.sh
set -euo pipefail

PACKAGES=(
    build-essential
    postgresql-15
    postgresql-server-dev-15
    postgresql-15-pgtap
    libtap-parser-sourcehandler-pgtap-perl   # pg_prove
    libcurl4-openssl-dev
    libhiredis-dev
    libevent-dev                             # the wsctl-sse relay
    libjansson-dev                           # JSON in the relay (token claims)
    libssl-dev                               # HMAC-SHA256: SSE tokens, SigV4
    libarchive-dev                           # workspace archives (tar)
    libzstd-dev                              # archive compression (zstd)
    libxml2-dev                              # S3 responses (XML)
    zstd                                     # the zstd command: tests look inside archives
    clang                                    # libFuzzer, for test/fuzz
    libclang-rt-dev                          # its runtime (only a Recommends of clang)
    chromium                                 # the browser test of the relay
    chromium-driver                          # WebDriver for it (27_example.t drives the dashboard)
    python3-flask                            # docs/examples/api-server (make example, 27_example.t)
    python3-psycopg                          # its PostgreSQL driver (psycopg 3)
    python3-psycopg-pool                     # its connection pool
    redis-server
    docker.io
    busybox-static
    radosgw                                  # the test S3 server (test/rgw.sh)
    ceph-mon                                 # its one-node Ceph cluster: monitor
    ceph-osd                                 # and memstore OSD
    s3cmd                                    # an independent S3 client, by hand
    python3                                  # the ceph CLI is a Python program
    curl
    iproute2
    jq
    perl
    bc                                       # arithmetic in make demo and test/bench
    prometheus-postgres-exporter             # scrapes wsctl.metrics in 28_metrics.t
    patroni                                  # 31_patroni.t: docs/operations.md's Patroni example
    etcd-server                              # its DCS (31_patroni.t starts its own, never port 2379)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg -s "$pkg" 2>/dev/null | sed -n 's/^Status: //p' || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if ((EUID != 0)); then
    echo "install-deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
    exit 1
fi

echo "install-deps.sh: installing ${missing[*]}"

# Keep maintainer scripts from starting system services (a system dockerd would
# create a bridge and iptables rules; a system redis or postgres would take ports).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# temporary, written by wsctl test/install-deps.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
remove_policy() {
    if ((made_policy)); then
        rm -f "$policy"
    fi
}
trap remove_policy EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

echo "install-deps.sh: done"
