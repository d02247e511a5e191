# lib.sh: shared helpers of the integration tests (sourced by test/integration/*.t).
#
# Each .t file is a TAP producer run by `prove`. It talks to the real
# services started by test/run-tests.sh, found through the environment:
#   PGHOST PGPORT PGUSER   the PostgreSQL cluster (wsctl preloaded)
#   WSCTL_IT_DB            database the workers run in (wsctl.database)
#   WSCTL_PGDATA           its data directory (for restarts)
#   DOCKER_HOST            the test dockerd's socket
#   WSCTL_TEST_IMAGE       a locally built busybox image
#   WSCTL_DOCKER_DIR       the test dockerd's directory (test/docker.sh)
#   WSCTL_S3_ENDPOINT      the test S3 server (Ceph RADOS Gateway, test/rgw.sh),
#                          http://127.0.0.1:PORT, path-style requests
#   WSCTL_S3_BUCKET        its bucket (wsctl)
#   WSCTL_S3_REGION        the SigV4 region (us-east-1)
#   WSCTL_S3_ACCESS_KEY    the S3 user's access key
#   WSCTL_S3_SECRET_KEY    and its secret
#   WSCTL_RGW_DIR          the cluster's directory (test/rgw.sh stop-rgw/start-rgw)
#   S3_LIST_MAX_KEYS       (optional) page size of s3_list, to exercise paging
# Asynchronous behaviour is awaited by polling a condition with a deadline.

set -uo pipefail
: "${WSCTL_IT_DB:=wsctl_it}"
: "${WSCTL_TEST_IMAGE:=wsctl-busybox:test}"
export PGDATABASE="$WSCTL_IT_DB"
export PGOPTIONS="-c client_min_messages=warning"

tap_n=0
tap_failed=0

ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok() { tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1)); echo "not ok $tap_n - $*"; }
diag() { echo "# $*"; }

# check DESCRIPTION COMMAND...: ok when the command succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

# is DESCRIPTION GOT EXPECTED
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; diag "  got: '$2'"; diag "  expected: '$3'"; fi
}

done_testing() { echo "1..$tap_n"; exit $((tap_failed > 0)); }

# q SQL: one value (or rows, |-separated) from the test database.
q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }

dk() { docker -H "$DOCKER_HOST" "$@"; }

# sqlstate SQL: the SQLSTATE the statement fails with, or OK when it succeeds.
sqlstate() {
	local out
	if out=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$1" 2>&1); then
		echo OK
	else
		sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' <<<"$out" | head -1
	fi
}

# wait_for SECONDS SQL: polls until SQL returns t; false at the deadline.
wait_for() {
	local deadline=$((SECONDS + $1)) sql=$2
	while [ $SECONDS -lt $deadline ]; do
		[ "$(q "$sql" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_cmd SECONDS COMMAND...: polls until the command succeeds.
wait_cmd() {
	local deadline=$((SECONDS + $1)); shift
	while [ $SECONDS -lt $deadline ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# create_ws OWNER NAME [DESIRED [IMAGE]]: prints the new id.
create_ws() {
	q "SELECT id FROM wsctl.create_workspace('$1', '$2', '${4:-$WSCTL_TEST_IMAGE}', '${3:-RUNNING}')"
}

# ws ID COLUMN: one column of a workspace row (deleted rows included).
ws() { q "SELECT $2 FROM wsctl.workspaces WHERE id = '$1'"; }

# wait_state ID OBSERVED [SECONDS]: observed_status reaches OBSERVED with no operation.
wait_state() {
	wait_for "${3:-30}" "SELECT observed_status = '$2' AND operation = 'NONE' FROM wsctl.workspaces WHERE id = '$1'"
}

container_running() { [ "$(dk inspect -f '{{.State.Running}}' "ws-$1" 2>/dev/null)" = true ]; }
container_exists() { dk inspect "ws-$1" >/dev/null 2>&1; }
volume_exists() { dk volume inspect "ws-$1-home" >/dev/null 2>&1; }
container_label() { dk inspect -f "{{index .Config.Labels \"$2\"}}" "ws-$1" 2>/dev/null; }
volume_label() { dk volume inspect -f "{{index .Labels \"$2\"}}" "ws-$1-home" 2>/dev/null; }

# cleanup_owner OWNER: deletes the owner's workspaces and waits until they are DELETED.
cleanup_owner() {
	local deadline=$((SECONDS + 90))
	while [ $SECONDS -lt $deadline ]; do
		# Deletable now: no operation in flight, or failed into ERROR.
		q "SELECT count(wsctl.delete_workspace(id)) FROM wsctl.workspaces
		   WHERE owner_user_id = '$1' AND deleted_at IS NULL
		     AND (operation = 'NONE' OR wsctl.effective_status(observed_status, error_info) = 'ERROR')" >/dev/null 2>&1
		[ "$(q "SELECT count(*) = 0 FROM wsctl.workspaces WHERE owner_user_id = '$1'
		        AND (observed_status <> 'DELETED' OR operation <> 'NONE')")" = t ] && return 0
		sleep 0.2
	done
	diag "cleanup of $1 did not finish"
	return 1
}

# The extension exists in the workers' database once per test run, and a
# test-only trigger keeps the history of each workspace's (observed_status,
# operation) so that tests can assert the path taken, however fast.
q "CREATE EXTENSION IF NOT EXISTS wsctl" >/dev/null
q "CREATE TABLE IF NOT EXISTS public.it_history (
	 seq bigserial PRIMARY KEY, id uuid, observed wsctl.status, operation wsctl.operation,
	 error_reason text, at timestamptz DEFAULT clock_timestamp());
   CREATE OR REPLACE FUNCTION public.it_record() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
	 INSERT INTO public.it_history (id, observed, operation, error_reason)
	 VALUES (NEW.id, NEW.observed_status, NEW.operation, NEW.error_info ->> 'reason');
	 RETURN NULL;
   END \$\$;
   CREATE INDEX IF NOT EXISTS it_history_id ON public.it_history (id, seq);
   DROP TRIGGER IF EXISTS zz_it_history ON wsctl.workspaces;
   DROP TRIGGER IF EXISTS zz_it_history_insert ON wsctl.workspaces;
   CREATE TRIGGER zz_it_history_insert AFTER INSERT ON wsctl.workspaces
	 FOR EACH ROW EXECUTE FUNCTION public.it_record();
   CREATE TRIGGER zz_it_history AFTER UPDATE ON wsctl.workspaces
	 FOR EACH ROW
	 WHEN (OLD.observed_status IS DISTINCT FROM NEW.observed_status
		   OR OLD.operation IS DISTINCT FROM NEW.operation
		   OR OLD.error_info IS DISTINCT FROM NEW.error_info)
	 EXECUTE FUNCTION public.it_record();" >/dev/null 2>&1

# history ID COLUMN: the successive distinct values of observed or operation.
history() {
	q "SELECT string_agg(v, ' ' ORDER BY seq) FROM (
	     SELECT seq, $2::text AS v, lag($2::text) OVER (ORDER BY seq) AS prev
	       FROM public.it_history WHERE id = '$1') h
	   WHERE prev IS DISTINCT FROM v"
}

# set_config NAME VALUE: ALTER SYSTEM SET and reload; waits until a new
# session sees VALUE (new processes, e.g. operation workers, then have it;
# the long-lived workers reload at their next wait, within one interval).
set_config() {
	q "ALTER SYSTEM SET $1 = '$2'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	wait_for 10 "SELECT current_setting('$1') = '$2'"
}
# reset_config NAME...: ALTER SYSTEM RESET each and reload.
reset_config() {
	local n
	for n in "$@"; do q "ALTER SYSTEM RESET $n" >/dev/null; done
	q "SELECT pg_reload_conf()" >/dev/null
}

# worker_pid COMPONENT: pid of a wsctl component worker (health_monitor, reconciler).
component_pid() { q "SELECT pid FROM wsctl.workers WHERE component = '$1' AND pid IS NOT NULL"; }

# wait_leaders [SECONDS]: both components run and lead (after a restart).
wait_leaders() {
	wait_for "${1:-60}" "SELECT count(*) = 2 FROM wsctl.workers WHERE component IN ('health_monitor', 'reconciler') AND leader"
}

# op_worker_pid ID [SECONDS]: pid of the operation worker acting for workspace ID (polls).
op_worker_pid() {
	local pid= deadline=$((SECONDS + ${2:-20}))
	while [ -z "$pid" ] && [ $SECONDS -lt $deadline ]; do
		pid=$(q "SELECT pid FROM wsctl.workers WHERE workspace_id = '$1' AND component LIKE 'operation %(acting)' AND pid IS NOT NULL LIMIT 1" 2>/dev/null)
		[ -n "$pid" ] || sleep 0.05
	done
	echo "$pid"
}

# relay_setup DIR: for the tests of wsctl-sse: a fresh key in DIR/secret
# (also in $secret), a free port ($port, $base), the relay program
# ($relay: WSCTL_SSE_BIN or the installed one). start_relay and stop_relay
# then run it (pid in DIR/relay.pid, log in DIR/relay.log).
relay_setup() {
	dir=$1
	mkdir -p "$dir"
	relay=${WSCTL_SSE_BIN:-$(pg_config --bindir)/wsctl-sse}
	secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s\n' "$secret" >"$dir/secret"
	port=18090
	while ss -Htln | awk -v p="$port" '{ n = split($4, a, ":"); if (a[n] == p) f = 1 } END { exit !f }'; do
		port=$((port + 1))
	done
	base=http://127.0.0.1:$port
}
start_relay() {
	"$relay" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$WSCTL_REDIS_PORT/0" \
		--secret-file "$dir/secret" --heartbeat 1 2>>"$dir/relay.log" &
	echo $! >"$dir/relay.pid"
	wait_cmd 10 curl -s -o /dev/null "$base/"
}
stop_relay() {
	local pid
	pid=$(cat "$dir/relay.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# ---------------------------------------------------------------- S3
# The bucket as an independent client sees it: curl --aws-sigv4, never wsctl.
# Helpers that print an HTTP code print 000 when nothing answered (RGW down),
# and succeed only on a 2xx.
# curl 7.88 signs the path and query exactly as written: keys are sent
# percent-encoded (RFC 3986, '/' kept) and queries already canonical (parameters
# sorted by name, values encoded with '/' as %2F).
_S3_EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
_S3_RGW_SH=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/rgw.sh

# s3_uri STRING: STRING percent-encoded as SigV4 wants it (unreserved kept).
s3_uri() { jq -rn --arg v "$1" '$v | @uri'; }
# _s3_url KEY: the object's URL, each path segment of KEY encoded.
_s3_url() {
	printf '%s/%s/%s' "$WSCTL_S3_ENDPOINT" "$WSCTL_S3_BUCKET" \
		"$(jq -rn --arg v "$1" '$v | split("/") | map(@uri) | join("/")')"
}
# _s3_curl PAYLOAD_SHA256 CURL_ARGS...: one signed request.
_s3_curl() {
	local sha=$1
	shift
	curl -s --max-time 120 --aws-sigv4 "aws:amz:${WSCTL_S3_REGION:-us-east-1}:s3" \
		--user "$WSCTL_S3_ACCESS_KEY:$WSCTL_S3_SECRET_KEY" -H "x-amz-content-sha256: $sha" "$@"
}
# _s3_code CODE: prints CODE (000 if empty), succeeds when it is a 2xx.
_s3_code() { local c=${1:-000}; echo "$c"; [[ $c == 2?? ]]; }

# s3_head KEY: prints the HTTP code of a HEAD (200, 404, ...).
s3_head() { _s3_code "$(_s3_curl "$_S3_EMPTY_SHA" -I -o /dev/null -w '%{http_code}' "$(_s3_url "$1")")"; }
# s3_exists KEY: true when a HEAD gets 200.
s3_exists() { [ "$(s3_head "$1")" = 200 ]; }
# s3_get KEY FILE: downloads into FILE (an error's XML body on failure), prints the code.
s3_get() { _s3_code "$(_s3_curl "$_S3_EMPTY_SHA" -o "$2" -w '%{http_code}' "$(_s3_url "$1")")"; }
# s3_put KEY FILE: uploads FILE (one PUT), prints the code.
s3_put() {
	local sha
	sha=$(sha256sum "$2" | cut -d' ' -f1) || return 1
	_s3_code "$(_s3_curl "$sha" -o /dev/null -w '%{http_code}' -T "$2" "$(_s3_url "$1")")"
}
# s3_delete KEY: deletes the object, prints the code (204, also when it was absent).
s3_delete() { _s3_code "$(_s3_curl "$_S3_EMPTY_SHA" -o /dev/null -w '%{http_code}' -X DELETE "$(_s3_url "$1")")"; }
# s3_cat KEY: prints the object's body (small files: meta data); fails unless 200.
s3_cat() {
	local tmp code
	tmp=$(mktemp) || return 1
	code=$(s3_get "$1" "$tmp")
	[ "$code" = 200 ] && cat "$tmp"
	rm -f "$tmp"
	[ "$code" = 200 ]
}
# s3_sha256 KEY: the hex SHA-256 of the object, computed here after a download.
s3_sha256() {
	local tmp code
	tmp=$(mktemp) || return 1
	code=$(s3_get "$1" "$tmp")
	[ "$code" = 200 ] && sha256sum "$tmp" | cut -d' ' -f1
	rm -f "$tmp"
	[ "$code" = 200 ]
}
# s3_list [PREFIX]: every key under PREFIX, one a line, in S3's (lexical) order:
# ListObjectsV2, following continuation tokens (page size S3_LIST_MAX_KEYS, or the
# server's 1000). Fails, with a diagnostic, on any non-200 page.
s3_list() {
	local prefix=${1:-} token='' query code tmp pages=0
	tmp=$(mktemp) || return 1
	while :; do
		# sorted: continuation-token, list-type, max-keys, prefix
		query=''
		[ -n "$token" ] && query="continuation-token=$(s3_uri "$token")&"
		query="${query}list-type=2"
		[ -n "${S3_LIST_MAX_KEYS:-}" ] && query="$query&max-keys=$S3_LIST_MAX_KEYS"
		[ -n "$prefix" ] && query="$query&prefix=$(s3_uri "$prefix")"
		code=$(_s3_curl "$_S3_EMPTY_SHA" -o "$tmp" -w '%{http_code}' \
			"$WSCTL_S3_ENDPOINT/$WSCTL_S3_BUCKET?$query")
		if [ "$code" != 200 ]; then
			diag "s3_list '$prefix': HTTP ${code:-000}: $(head -c 300 "$tmp" 2>/dev/null)" >&2
			rm -f "$tmp"
			return 1
		fi
		grep -o '<Key>[^<]*</Key>' "$tmp" | sed -e 's:^<Key>::' -e 's:</Key>$::' \
			-e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&quot;/"/g' -e "s/&apos;/'/g" -e 's/&amp;/\&/g'
		pages=$((pages + 1))
		grep -q '<IsTruncated>true</IsTruncated>' "$tmp" || break
		token=$(sed -n 's:.*<NextContinuationToken>\([^<]*\)</NextContinuationToken>.*:\1:p' "$tmp")
		if [ -z "$token" ] || [ $pages -ge 100000 ]; then
			diag "s3_list '$prefix': truncated listing without a continuation token" >&2
			rm -f "$tmp"
			return 1
		fi
	done
	rm -f "$tmp"
}

# s3_forget_owner OWNER: deletes what is under archives/ID/ for each of
# OWNER's workspaces (a test's archives: the Archive GC would collect them
# only after gc_orphan_delay, and the test S3 store is RAM).
s3_forget_owner() {
	local id k
	for id in $(q "SELECT id FROM wsctl.workspaces WHERE owner_user_id = '$1'"); do
		for k in $(s3_list "archives/$id/" 2>/dev/null); do s3_delete "$k" >/dev/null; done
	done
}

# rgw_stop / rgw_start: stop radosgw (mon, osd and the objects stay) and start it
# again; rgw_start returns once a signed request works. Output as TAP comments.
_rgw() {
	local out rc=0
	out=$("$_S3_RGW_SH" "$1" "$WSCTL_RGW_DIR" 2>&1) || rc=$?
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/# /'
	return $rc
}
rgw_stop() { _rgw stop-rgw; }
rgw_start() { _rgw start-rgw; }
