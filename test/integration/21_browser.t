#!/usr/bin/env bash
# 21_browser.t: a real browser (headless Chromium) opens an EventSource on
# wsctl-sse from a page of another origin and sees a workspace's events
# live (issue 10). The page reports each event it receives by requesting
# /seen?id=N from the little server that served it, whose request log the
# test reads. Chromium is confined to loopback: every other host resolves
# to nothing and would go through a proxy that does not exist.
. "$(dirname "$0")/lib.sh"
owner=00000000-0000-0000-0021-000000000001
relay_setup "$WSCTL_TEST_TMP/browser"
browser=$(command -v chromium || true)
pids=()
finish() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	stop_relay
	reset_config wsctl.sse_secret
}
trap finish EXIT

check "chromium is installed" test -n "$browser"
check "wsctl.sse_secret = the relay's key" set_config wsctl.sse_secret "$secret"
check "the relay runs" start_relay
id=$(create_ws $owner browser STANDBY)
check "the workspace is STANDBY" wait_state "$id" STANDBY 30
token=$(q "SELECT wsctl.sse_token('$owner')")

cat >"$dir/page.html" <<'HTML'
<!doctype html>
<title>wsctl events</title>
<ul id="events"></ul>
<script>
const p = new URLSearchParams(location.search);
const es = new EventSource(p.get("relay") + "/api/v1/workspaces/" + p.get("ws") +
                           "/events?access_token=" + encodeURIComponent(p.get("token")));
es.onopen = () => fetch("/opened");
// n: the order in which the EventSource delivered the events (the reports
// below are separate requests, which may reach the server in another order)
let n = 0;
es.addEventListener("state_changed", (e) => {
  const d = JSON.parse(e.data);
  const li = document.createElement("li");
  li.textContent = e.lastEventId + " " + d.status + " " + d.operation;
  document.getElementById("events").append(li);
  fetch("/seen?n=" + (++n) + "&id=" + e.lastEventId + "&status=" + d.status);
});
</script>
HTML
page_port=$((port + 100))
python3 -m http.server "$page_port" --bind 127.0.0.1 --directory "$dir" 2>"$dir/page.log" >/dev/null &
pids+=($!)
check "the page is served from another origin (port $page_port)" wait_cmd 10 curl -sf -o /dev/null "http://127.0.0.1:$page_port/page.html"

"$browser" --headless=new --no-sandbox --disable-gpu --no-first-run --no-default-browser-check \
	--user-data-dir="$dir/profile" --disable-background-networking --disable-component-update \
	--disable-sync --disable-extensions --no-pings --metrics-recording-only \
	--host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
	--proxy-server="http://127.0.0.1:9" --proxy-bypass-list="127.0.0.1" \
	"http://127.0.0.1:$page_port/page.html?relay=$base&ws=$id&token=$token" >"$dir/chromium.log" 2>&1 &
pids+=($!)
check "Chromium's EventSource is open" wait_cmd 60 grep -q 'GET /opened' "$dir/page.log"

mark=$(q "SELECT coalesce(max(id), 0) FROM wsctl.events")
q "SELECT wsctl.set_desired_state('$id', 'RUNNING')" >/dev/null
check "RUNNING" wait_state "$id" RUNNING 30
check "  shipped" wait_for 20 "SELECT bool_and(id IS NOT NULL) AND max(id) <= (SELECT last_shipped FROM wsctl.event_cursor) FROM wsctl.events WHERE workspace_id = '$id'"
want=$(q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM wsctl.events WHERE workspace_id = '$id' AND id > $mark")
# seen: the ids the page reported, in the order the EventSource delivered them.
seen() {
	sed -n 's|.*GET /seen?n=\([0-9]*\)&id=\([0-9]*\)&.*|\1 \2|p' "$dir/page.log" | sort -n | cut -d' ' -f2 | paste -sd' '
}
export -f seen
export dir
check "the browser saw every event live, in order" wait_cmd 20 bash -c "[ \"\$(seen)\" = '$want' ]"
is "  ids $(seen)" "$(seen)" "$want"
check "  the last one says RUNNING" bash -c "grep 'GET /seen?n=[0-9]*&id=${want##* }&' '$dir/page.log' | grep -q 'status=RUNNING'"

finish
cleanup_owner $owner
done_testing
