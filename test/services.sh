#!/usr/bin/env bash
# services.sh: the services every suite and benchmark runs against, started
# once into one directory and stopped from it.
#
#   test/services.sh start DIR   redis-server (test/redis.sh), Ceph's RADOS
#                                Gateway (test/rgw.sh, bucket wsctl), a private
#                                dockerd (test/docker.sh) and a PostgreSQL
#                                cluster preloading wsctl (test/pg.sh) whose
#                                wsctl.* settings point at them, plus
#                                test/integration/postgresql.conf; database
#                                $WSCTL_IT_DB (default wsctl_it) created.
#                                DIR/env.sh exports what lib.sh needs.
#   test/services.sh stop DIR    stops them, each by its pid file.
#
# The extension must be installed first (make install). As root.
# WSCTL_RGW_MEMSTORE_BYTES sizes the S3 store (RAM; test/rgw.sh).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
DIR=${2:-}
IT_DB=${WSCTL_IT_DB:-wsctl_it}
[[ -n "$cmd" && -n "$DIR" ]] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

start() {
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    "$TOP/test/redis.sh" start "$DIR/redis"
    # shellcheck source=/dev/null
    . "$DIR/redis/env.sh"
    "$TOP/test/rgw.sh" start "$DIR/rgw"
    # WSCTL_S3_ENDPOINT, _BUCKET, _REGION, _ACCESS_KEY, _SECRET_KEY, WSCTL_RGW_DIR
    # shellcheck source=/dev/null
    . "$DIR/rgw/env.sh"
    {
        echo "# written by test/services.sh"
        echo "wsctl.database = '$IT_DB'"
        echo "wsctl.docker_host = 'unix://$DIR/docker/docker.sock'"
        echo "wsctl.redis_url = '$WSCTL_REDIS_URL'"
        echo "wsctl.s3_endpoint = '$WSCTL_S3_ENDPOINT'"
        echo "wsctl.s3_bucket = '$WSCTL_S3_BUCKET'"
        echo "wsctl.s3_region = '$WSCTL_S3_REGION'"
        echo "wsctl.s3_access_key = '$WSCTL_S3_ACCESS_KEY'"
        echo "wsctl.s3_secret_key = '$WSCTL_S3_SECRET_KEY'"
        echo "# --- test/integration/postgresql.conf"
        cat "$TOP/test/integration/postgresql.conf"
        echo
    } >"$DIR/pg-extra.conf"
    "$TOP/test/docker.sh" start "$DIR/docker"
    "$TOP/test/pg.sh" start "$DIR/pg" "$DIR/pg-extra.conf"
    # shellcheck source=/dev/null
    . "$DIR/pg/env.sh"
    createdb "$IT_DB"
    {
        cat "$DIR/redis/env.sh" "$DIR/rgw/env.sh" "$DIR/pg/env.sh" "$DIR/docker/env.sh"
        echo "export WSCTL_IT_DB=$IT_DB WSCTL_DOCKER_DIR=$DIR/docker WSCTL_TEST_TMP=$DIR"
    } >"$DIR/env.sh"
    echo "services.sh: PostgreSQL on $PGHOST port $PGPORT, Docker at unix://$DIR/docker/docker.sock," \
        "Redis at $WSCTL_REDIS_URL, S3 at $WSCTL_S3_ENDPOINT (bucket $WSCTL_S3_BUCKET), database $IT_DB;" \
        ". $DIR/env.sh"
}

# Each stop runs even if another failed; the status says whether all did.
stop() {
    local rc=0
    "$TOP/test/pg.sh" stop "$DIR/pg" || { echo "services.sh: pg.sh stop failed" >&2; rc=1; }
    "$TOP/test/redis.sh" stop "$DIR/redis" || { echo "services.sh: redis.sh stop failed" >&2; rc=1; }
    "$TOP/test/rgw.sh" stop "$DIR/rgw" || { echo "services.sh: rgw.sh stop failed" >&2; rc=1; }
    "$TOP/test/docker.sh" stop "$DIR/docker" || { echo "services.sh: docker.sh stop failed" >&2; rc=1; }
    return $rc
}

case $cmd in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
