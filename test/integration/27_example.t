#!/usr/bin/env bash
# 27_example.t: the example API server and dashboard of
# docs/examples/api-server (issue 11), against the real workers and relay.
#
# server.py runs with /usr/bin/python3 (Debian's Flask and psycopg) as a
# LOGIN role that is a member of wsctl_api only, on a free loopback port;
# it refuses a superuser. curl checks the REST mapping of the SQL API:
# 201 create, 422 with the JSON error body (sqlstate WS422, 22P02), 404 for
# an unknown id and for another owner's workspace, update, activity counts,
# the SSE token (accepted by the relay), 429 with the WS429 DETAIL as a
# JSON object, 409 for a workspace in ERROR, 403 for recover without
# wsctl_admin, 404 for a repeated delete.
# Then headless Chromium, confined to loopback as in 21_browser.t, driven
# through chromedriver's WebDriver HTTP API with curl and jq: the dashboard
# creates a workspace and its row goes through PROVISIONING and STARTING to
# RUNNING, then through STOPPING to STANDBY, from the relay's events alone
# (the page is never reloaded: a mark set after load is still there); a
# workspace failing to start shows ERROR and its message live; the page shows
# the API's error for a refused recover; a delete removes the row live.
# Screenshots (PNG) go to $WSCTL_TEST_ARTIFACTS (run-tests.sh sets it) or to
# this test's temp dir.
# shellcheck disable=SC2317  # the helpers below are called through check and wait_cmd
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
server_py=$top/docs/examples/api-server/server.py
owner=00000000-0000-0000-0027-000000000001
other=00000000-0000-0000-0027-000000000002
sfx=$(printf '%04x%04x' $RANDOM $RANDOM)
role=wsctl_it_example_$sfx
relay_setup "$WSCTL_TEST_TMP/example"
art=${WSCTL_TEST_ARTIFACTS:-$dir/artifacts}
mkdir -p "$art"
browser=$(command -v chromium || true)
driver=/usr/bin/chromedriver
pids=()
session=''
browser_pid=''

# free_port FIRST: the first TCP port from FIRST that nothing listens on.
free_port() {
	local p=$1
	while ss -Htln | awk -v p="$p" '{ n = split($4, a, ":"); if (a[n] == p) f = 1 } END { exit !f }'; do
		p=$((p + 1))
	done
	echo "$p"
}

# listening PORT: the local addresses listening on PORT, one a line.
listening() { ss -Htln | awk -v p="$1" '{ n = split($4, a, ":"); if (a[n] == p) print $4 }' | sort -u; }

finish() {
	local p
	[ -n "$session" ] && curl -s --max-time 10 -X DELETE "$wd/session/$session" >/dev/null
	session=''
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	pids=()
	# a browser its driver left behind (it was killed before the session ended)
	[ -n "$browser_pid" ] && kill -0 "$browser_pid" 2>/dev/null && kill -TERM "$browser_pid" 2>/dev/null
	browser_pid=''
	stop_relay
	reset_config wsctl.sse_secret
	q "DROP ROLE IF EXISTS $role" >/dev/null 2>&1
}
trap finish EXIT

check "chromium is installed" test -n "$browser"
check "chromedriver is installed" test -x "$driver"
check "/usr/bin/python3 has Flask, psycopg and psycopg_pool" /usr/bin/python3 -c 'import flask, psycopg, psycopg_pool'
check "wsctl.sse_secret = the relay's key" set_config wsctl.sse_secret "$secret"
check "the relay runs" start_relay

# ---------------------------------------------------------------- the server
q "CREATE ROLE $role LOGIN IN ROLE wsctl_api" >/dev/null
is "the server's role is a wsctl_api member, not a superuser" \
	"$(q "SELECT pg_has_role('$role', 'wsctl_api', 'MEMBER') AND NOT rolsuper FROM pg_roles WHERE rolname = '$role'")" t
dsn="host=$PGHOST port=$PGPORT dbname=$WSCTL_IT_DB user=$role"
api_port=$(free_port 18590)
api=http://127.0.0.1:$api_port
# start_server DSN [COMMAND PREFIX...]: execs server.py (call it in a
# subshell or with &: the pid is then the server's).
start_server() {
	local d=$1
	shift
	exec "$@" env -u WSCTL_EXAMPLE_ADMIN_DSN WSCTL_EXAMPLE_DSN="$d" WSCTL_EXAMPLE_PORT="$api_port" \
		WSCTL_EXAMPLE_RELAY="$base" WSCTL_EXAMPLE_IMAGE="$WSCTL_TEST_IMAGE" \
		/usr/bin/python3 "$server_py" >>"$dir/server.log" 2>&1
}
(start_server "host=$PGHOST port=$PGPORT dbname=$WSCTL_IT_DB user=postgres" timeout 30)
rc=$?
check "server.py refuses to run as a superuser" grep -q 'not a superuser' "$dir/server.log"
check "  and exits non-zero (not killed at 30 s)" test "$rc" -ne 0 -a "$rc" -ne 124
start_server "$dsn" &
pids+=($!)
check "server.py answers on $api" wait_cmd 20 curl -sf -o /dev/null "$api/api/workspaces"
is "  it listens on 127.0.0.1 only" "$(listening "$api_port" | paste -sd' ')" "127.0.0.1:$api_port"

# ---------------------------------------------------------------- REST
# req METHOD PATH [JSON] [USER]: the response body in $dir/body; prints the status.
req() {
	local args=(-s -o "$dir/body" -w '%{http_code}' -X "$1" -H "X-User-Id: ${4:-$owner}")
	[ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' -d "$3")
	curl "${args[@]}" "$api$2"
}
# jb FILTER: a jq filter over the last response body.
jb() { jq -r "$1" "$dir/body" 2>/dev/null; }

is "POST /api/workspaces: 201" "$(req POST /api/workspaces '{"name": "rest-a", "desired_state": "STANDBY"}')" 201
a=$(jb .id)
is "  the row of create_workspace, display PENDING, desired STANDBY" "$(jb '[.name, .display_status, .desired_state] | join(" ")')" "rest-a PENDING STANDBY"
is "  the workspace is the owner's, in the table" "$(q "SELECT owner_user_id FROM wsctl.workspaces WHERE id = '$a'")" "$owner"
is "  Location header" "$(curl -s -o /dev/null -D - -X POST -H "X-User-Id: $other" -H 'Content-Type: application/json' \
	-d '{"name": "rest-loc", "desired_state": "PENDING"}' "$api/api/workspaces" | tr -d '\r' | sed -n 's/^Location: //p' | cut -d/ -f1-3)" /api/workspaces
is "a blank name: 422" "$(req POST /api/workspaces '{"name": "   "}')" 422
is "  JSON body with sqlstate WS422 and the database's message" "$(jb '.sqlstate + " " + .message')" "WS422 invalid name: must not be empty"
check "  and the keys message, detail, hint, sqlstate" bash -c "jq -e 'has(\"message\") and has(\"detail\") and has(\"hint\") and has(\"sqlstate\")' '$dir/body' >/dev/null"
is "an unknown id: 404" "$(req GET /api/workspaces/00000000-0000-0000-0027-00000000dead)" 404
is "  sqlstate WS404" "$(jb .sqlstate)" WS404
is "another owner's workspace: 404" "$(req GET "/api/workspaces/$a" '' "$other")" 404
is "  the same answer as an unknown id" "$(jb .detail)" "No workspace has this id."
is "a malformed id: 422 (22P02)" "$(req GET /api/workspaces/nope)/$(jb .sqlstate)" 422/22P02
is "a malformed X-User-Id: 400" "$(req GET /api/workspaces '' not-a-uuid)" 400
is "GET /api/workspaces/ID: 200" "$(req GET "/api/workspaces/$a")" 200
is "  its id" "$(jb .id)" "$a"
is "GET /api/workspaces: the owner's workspaces only" "$(req GET /api/workspaces)/$(jb '[.[].name] | join(",")')" 200/rest-a
is "PATCH: 200, memo set" "$(req PATCH "/api/workspaces/$a" '{"memo": "from the API"}')/$(jb .memo)" "200/from the API"
is "PATCH standby_ttl_seconds 0: 422" "$(req PATCH "/api/workspaces/$a" '{"standby_ttl_seconds": 0}')/$(jb .sqlstate)" 422/WS422
is "desired_state FOO: 422 (22P02)" "$(req PUT "/api/workspaces/$a/desired_state" '{"desired_state": "FOO"}')/$(jb .sqlstate)" 422/22P02
is "activity connect: 200, 1 connection" "$(req POST "/api/workspaces/$a/activity/connect")/$(jb .connections)" 200/1
is "activity disconnect: 200, 0 connections" "$(req POST "/api/workspaces/$a/activity/disconnect")/$(jb .connections)" 200/0
is "GET /api/sse-token: 200" "$(req GET /api/sse-token)" 200
is "  the relay's base URL" "$(jb .relay)" "$base"
token=$(jb .token)
claims=$(cut -d. -f2 <<<"$token" | tr '_-' '/+')
while [ $((${#claims} % 4)) -ne 0 ]; do claims="$claims="; done
is "  a token for the owner (sub)" "$(base64 -d <<<"$claims" 2>/dev/null | jq -r .sub)" "$owner"
check "  the relay accepts it" bash -c "curl -s --max-time 2 '$base/api/v1/events?access_token=$token' | grep -q '^: connected'"

# ---------------------------------------------------------------- WebDriver
wd_port=$(free_port 19515)
wd=http://127.0.0.1:$wd_port
# Without --allowed-ips chromedriver listens on loopback only (with it, on
# every address, filtering by the peer's address).
"$driver" --port="$wd_port" --log-path="$dir/chromedriver.log" >/dev/null 2>&1 &
pids+=($!)
check "chromedriver answers" wait_cmd 20 curl -sf -o /dev/null "$wd/status"
check "  it listens on 127.0.0.1" grep -qx "127.0.0.1:$wd_port" <<<"$(listening "$wd_port")"
is "  and on no address but loopback" "$(listening "$wd_port" | grep -cvE '^(127\.0\.0\.1|\[::1\]):')" 0

# wd METHOD PATH [JSON]: one WebDriver command of the session; prints .value (JSON).
wd() {
	local body=()
	[ "$1" = POST ] && body=(-H 'Content-Type: application/json' -d "${3:-"{}"}")
	curl -s --max-time 60 -X "$1" "${body[@]}" "$wd/session/$session$2" | jq -c .value
}
# js SCRIPT: runs SCRIPT in the page (a function body); prints its result (raw).
js() { wd POST /execute/sync "$(jq -n --arg s "$1" '{script: $s, args: []}')" | jq -r .; }
# el CSS: the id of the first element matching CSS.
el() {
	wd POST /element "$(jq -n --arg v "$1" '{using: "css selector", value: $v}')" |
		jq -r '.["element-6066-11e4-a52e-4f735466cecf"] // empty'
}
click() { local e; e=$(el "$1") && [ -n "$e" ] && [ "$(wd POST "/element/$e/click")" = null ]; }
# wait_js SECONDS SCRIPT EXPECTED: polls until the script's result is EXPECTED.
wait_js() {
	local deadline=$((SECONDS + $1))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(js "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	diag "  last: $(js "$2")"
	return 1
}
# row NAME: status|operation|history of the dashboard's row of that name.
row() {
	js "const tr = document.querySelector('tr[data-ws-name=\"$1\"]');
	    return tr ? tr.querySelector('.status').textContent + '|' + tr.dataset.operation + '|' + (tr.dataset.history || '') : 'none';"
}
# screenshot FILE: the page as a PNG; checks it is one.
screenshot() {
	wd GET /screenshot | jq -r . | base64 -d >"$1" 2>/dev/null
	[ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
		[ "$(dd if="$1" bs=1 skip=12 count=4 2>/dev/null)" = IHDR ] &&
		[ "$(stat -c %s "$1")" -gt 10000 ] &&
		[ "$(od -An -tu1 -j16 -N4 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')" -ge 800 ]
}

caps=$(jq -n --arg bin "$browser" --arg profile "$dir/profile" '{capabilities: {alwaysMatch: {
	browserName: "chrome", "goog:chromeOptions": {binary: $bin, args: [
	"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
	"--user-data-dir=" + $profile, "--disable-background-networking", "--disable-component-update",
	"--disable-sync", "--disable-extensions", "--no-pings", "--metrics-recording-only",
	"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
	"--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1", "--window-size=1280,800"]}}}}')
curl -s --max-time 60 -X POST -H 'Content-Type: application/json' -d "$caps" "$wd/session" >"$dir/session.json"
session=$(jq -r '.value.sessionId // empty' "$dir/session.json")
browser_pid=$(jq -r '.value.capabilities["goog:processID"] // empty' "$dir/session.json")
check "a WebDriver session with headless Chromium" test -n "$session"
[ -n "$session" ] || diag "  $(head -c 500 "$dir/session.json")"

check "the dashboard loads" test "$(wd POST /url "$(jq -n --arg u "$api/?user=$owner" '{url: $u}')")" = null
is "  its title" "$(wd GET /title | jq -r .)" "wsctl: workspaces"
check "  its event stream is live" wait_js 30 "return document.getElementById('stream').dataset.state;" live
check "  the table lists rest-a" wait_js 10 "return !!document.querySelector('tr[data-ws-name=\"rest-a\"]');" true
is "  no URL of another site in the page's files" \
	"$(grep -lE 'https?://|(src|href)="//' "$top"/docs/examples/api-server/static/* | wc -l)" 0
loaded=$(js "window.__it27 = '$sfx'; return String(window.wsctlDashboard.loadedAt);")

live=live-$sfx
new_name=$(el '#new-name')
check "the name field" test -n "$new_name"
is "typing the name" "$(wd POST "/element/$new_name/value" "$(jq -n --arg t "$live" '{text: $t}')")" null
check "clicking Create" click '#create'
check "the new row reaches RUNNING, operation done, live" wait_js 60 \
	"const tr = document.querySelector('tr[data-ws-name=\"$live\"]');
	 return tr ? tr.querySelector('.status').textContent + '/' + tr.dataset.operation : '';" RUNNING/NONE
hist=$(row "$live" | cut -d'|' -f3)
diag "  shown: $hist"
check "  it showed PROVISIONING on its way" grep -q '/PROVISIONING' <<<"$hist"
check "  and STARTING" grep -q '/STARTING' <<<"$hist"
is "  the page was not reloaded" "$(js "return (window.__it27 || '') + ' ' + window.wsctlDashboard.loadedAt;")" "$sfx $loaded"
check "  events came from the relay" test "$(js 'return String(window.wsctlDashboard.seq > 0 && window.wsctlDashboard.lastEventId !== null);')" = true
live_id=$(q "SELECT id FROM wsctl.workspaces WHERE owner_user_id = '$owner' AND name = '$live'")
is "  the row is the workspace the API created" "$(js "return document.querySelector('tr[data-ws-name=\"$live\"]').dataset.wsId;")" "$live_id"
check "  Docker runs its container" container_running "$live_id"

check "clicking Stop" click "tr[data-ws-name=\"$live\"] button.stop"
check "the row reaches STANDBY, live" wait_js 60 \
	"const tr = document.querySelector('tr[data-ws-name=\"$live\"]');
	 return tr.querySelector('.status').textContent + '/' + tr.dataset.operation;" STANDBY/NONE
check "  it showed STOPPING on its way" grep -q '/STOPPING' <<<"$(row "$live" | cut -d'|' -f3)"
is "  desired_state STANDBY in the table" "$(ws "$live_id" desired_state)" STANDBY
is "  the page was not reloaded" "$(js "return window.__it27 || '';")" "$sfx"
check "screenshot $art/27_example-dashboard.png is a PNG" screenshot "$art/27_example-dashboard.png"

# ---------------------------------------------------------------- errors
is "a workspace whose image is missing: 201" \
	"$(req POST /api/workspaces '{"name": "rest-bad", "image_ref": "wsctl-missing:example27"}')" 201
bad=$(jb .id)
is "rest-a asked RUNNING: 200" "$(req PUT "/api/workspaces/$a/desired_state" '{"desired_state": "RUNNING"}')" 200
is "a third RUNNING workspace: 429" "$(req POST /api/workspaces '{"name": "rest-c"}')" 429
is "  the WS429 DETAIL as a JSON object" "$(jb '.sqlstate + " " + .detail.error + " " + .detail.limit_type + " " + (.detail.running_workspaces | length | tostring)')" \
	"WS429 workspace_limit_exceeded per_user 2"
check "rest-bad ends in ERROR (RetryExceeded)" \
	wait_for 60 "SELECT wsctl.effective_status(observed_status, error_info) = 'ERROR' FROM wsctl.workspaces WHERE id = '$bad'"
is "  set_desired_state: 409" "$(req PUT "/api/workspaces/$bad/desired_state" '{"desired_state": "STANDBY"}')" 409
is "  sqlstate WS409, DETAIL reason: message" "$(jb '.sqlstate + " " + (.detail | split(":")[0])')" "WS409 RetryExceeded"
is "  recover without wsctl_admin: 403 (42501)" "$(req POST "/api/workspaces/$bad/recover")/$(jb .sqlstate)" 403/42501
check "the dashboard shows rest-bad in ERROR, live" wait_js 60 \
	"const tr = document.querySelector('tr[data-ws-name=\"rest-bad\"]');
	 return tr ? tr.querySelector('.status').textContent : '';" ERROR
check "  with its error message" wait_js 10 \
	"return document.querySelector('tr[data-ws-name=\"rest-bad\"] .error').textContent.includes('wsctl-missing:example27');" true
check "clicking its Recover" click 'tr[data-ws-name="rest-bad"] button.recover'
check "  the page shows the API's error" wait_js 10 \
	"const e = document.getElementById('error'); return e.hidden ? '' : document.getElementById('error-title').textContent;" \
	"403: permission denied for function recover_workspace (42501)"
check "screenshot $art/27_example-error.png is a PNG" screenshot "$art/27_example-error.png"
check "clicking Delete on the stopped workspace" click "tr[data-ws-name=\"$live\"] button.delete"
check "  its row goes once it is DELETED, live" wait_js 60 "return !document.querySelector('tr[data-ws-name=\"$live\"]');" true
is "  observed DELETED in the table" "$(ws "$live_id" observed_status)" DELETED
is "  the page was not reloaded" "$(js "return window.__it27 || '';")" "$sfx"
is "DELETE of the workspace in ERROR: 200" "$(req DELETE "/api/workspaces/$bad")" 200
is "  deleted_at set in the answer" "$(jb '.deleted_at != null')" true
is "  a second DELETE: 404" "$(req DELETE "/api/workspaces/$bad")/$(jb .sqlstate)" 404/WS404

finish
check "the workspaces are cleaned up" cleanup_owner $owner
cleanup_owner $other >/dev/null
is "the server's role is dropped" "$(q "SELECT count(*) FROM pg_roles WHERE rolname = '$role'")" 0
diag "screenshots: $art/27_example-dashboard.png $art/27_example-error.png"
done_testing
