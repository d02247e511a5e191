// app.js: the dashboard of docs/examples/api-server. Lists the user's
// workspaces through the REST API (server.py) and keeps the table up to
// date with the change events the wsctl-sse relay streams (docs/relay.md),
// without polling: one EventSource on /api/v1/events, with a token from
// GET /api/sse-token. Only transfers (ARCHIVING, RESTORING) are polled, for
// their byte counts (wsctl.operation_progress, via the API).
"use strict";

const params = new URLSearchParams(location.search);
// Demo only: the page names its user. A real platform's session decides.
const user = params.get("user");

// The page's state; also read by the integration test (27_example.t).
const state = {
  rows: new Map(),        // workspace id -> { tr, data, seq }
  seq: 0,                 // events applied so far (all workspaces)
  lastEventId: null,      // the last SSE id received, to resume after it
  es: null,
  opened: 0,              // how many times a stream opened
  loadedAt: Date.now(),
};
window.wsctlDashboard = state;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (user) headers["X-User-Id"] = user;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, { message: "the API server cannot be reached" });
  }
  let data = null;
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// ---------------------------------------------------------------- messages

function showError(e) {
  const b = e.body || {};
  $("error-title").textContent =
    (e.status ? `${e.status}: ` : "") + (b.message || e.message) + (b.sqlstate ? ` (${b.sqlstate})` : "");
  let detail = b.detail;
  if (detail && typeof detail === "object" && detail.error === "workspace_limit_exceeded") {
    // WS429: the DETAIL object (docs/sql-api.md, "WS429 DETAIL")
    const names = (detail.running_workspaces || []).map((w) => `${w.name} (${w.display_status})`);
    detail = `${detail.limit_type} limit: ${detail.current} of ${detail.max} already running` +
      (names.length ? `: ${names.join(", ")}` : "");
  } else if (detail && typeof detail === "object") {
    detail = JSON.stringify(detail);
  }
  $("error-detail").textContent = detail || "";
  $("error-hint").textContent = b.hint || "";
  $("error").hidden = false;
}

function clearError() { $("error").hidden = true; }

let noticeTimer = null;
function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { $("notice").hidden = true; }, 15000);
}

// ---------------------------------------------------------------- table

const STEP = {
  PROVISIONING: "creating the home volume",
  STARTING: "starting the container",
  STOPPING: "stopping the container",
  DELETING: "removing container and volume",
};

function mb(bytes) { return (bytes / 1e6).toFixed(1); }

function progressText(d) {
  if (d.operation === "NONE" || !d.operation || d.display === "ERROR") return "";
  const p = d.progress;
  if (p && p.bytes_done != null) {
    const rate = p.rate ? ` · ${mb(p.rate)} MB/s` : "";
    return p.bytes_total
      ? `${mb(p.bytes_done)} of ${mb(p.bytes_total)} MB (${Math.round(100 * p.bytes_done / p.bytes_total)} %)${rate}`
      : `${mb(p.bytes_done)} MB read${rate}`;
  }
  return STEP[d.operation] || (d.operation === "ARCHIVING" ? "uploading the home" : "downloading the home");
}

function render(row) {
  const d = row.data, tr = row.tr;
  tr.dataset.wsId = d.id;
  tr.dataset.wsName = d.name == null ? "" : d.name;
  tr.dataset.status = d.display || "";
  tr.dataset.operation = d.operation || "";
  tr.querySelector(".name").textContent = d.name == null ? "…" : d.name;
  tr.querySelector(".status").textContent = d.display || "";
  tr.querySelector(".status").dataset.value = d.display || "";
  // ERROR keeps the operation that failed
  tr.querySelector(".operation").textContent = d.operation === "NONE" || !d.operation ? ""
    : d.display === "ERROR" ? `${d.operation} (failed)` : d.operation;
  tr.querySelector(".desired").textContent = d.desired || "";
  tr.querySelector(".progress").textContent = progressText(d);
  tr.querySelector(".error").textContent = d.error || "";
  const busy = d.operation && d.operation !== "NONE";
  const failed = d.display === "ERROR" || (d.error && d.errorCount > 0 && !busy);
  for (const b of tr.querySelectorAll("button")) {
    const a = b.dataset.action;
    if (a === "recover") b.disabled = !failed;
    else if (a === "delete") b.disabled = busy && !failed;
    else b.disabled = (busy && !failed) || failed || d.desired === a;
  }
  tr.className = "st-" + (d.display || "unknown").toLowerCase() + (busy && !failed ? " busy" : "");
  $("empty").hidden = state.rows.size > 0;
}

// note(row): the display/operation pair joins the row's history (a data
// attribute: what the table showed, in order, whatever came in between).
function note(row) {
  const step = `${row.data.display}/${row.data.operation}`;
  const h = row.tr.dataset.history ? row.tr.dataset.history.split(" ") : [];
  if (h[h.length - 1] !== step) {
    h.push(step);
    row.tr.dataset.history = h.join(" ");
  }
}

function rowFor(id) {
  let row = state.rows.get(id);
  if (!row) {
    const tr = $("row-template").content.firstElementChild.cloneNode(true);
    tr.id = "ws-" + id;
    row = { tr, data: { id }, seq: 0 };
    state.rows.set(id, row);
    $("rows").append(tr);
  }
  return row;
}

function removeRow(id) {
  const row = state.rows.get(id);
  if (!row) return;
  row.tr.remove();
  state.rows.delete(id);
  $("empty").hidden = state.rows.size > 0;
}

// fromApi(w): the fields a workspace JSON of the API gives the row.
function fromApi(w) {
  return { id: w.id, name: w.name, display: w.display_status, operation: w.operation,
           desired: w.desired_state, error: w.error_message, errorCount: w.error_count,
           progress: w.progress };
}

// applyApi(w, since): an API answer, unless an event for that row arrived
// after the request was sent (state.seq was `since` then): events are newer.
function applyApi(w, since) {
  const row = rowFor(w.id);
  const fresh = fromApi(w);
  if (row.seq > since) {
    row.data.name = fresh.name;
    row.data.progress = fresh.progress;
  } else {
    row.data = fresh;
    note(row);
  }
  render(row);
  watchProgress();
}

// applyEvent(d): a change event from the relay (docs/sql-api.md, "Change events").
function applyEvent(d) {
  if (!d || !d.workspace_id) return;
  state.seq += 1;
  if (d.deleted && d.status === "DELETED") { removeRow(d.workspace_id); return; }
  const known = state.rows.has(d.workspace_id);
  const row = rowFor(d.workspace_id);
  row.seq = state.seq;
  Object.assign(row.data, {
    display: d.display, operation: d.operation, desired: d.desired_state,
    error: d.error_message, errorCount: d.error_count,
  });
  if (d.operation !== "ARCHIVING" && d.operation !== "RESTORING") row.data.progress = null;
  note(row);
  render(row);
  if (!known) fillIn(d.workspace_id);  // created elsewhere (another tab, the API): its name
  watchProgress();
}

async function fillIn(id) {
  const since = state.seq;
  try {
    applyApi(await api("GET", `/api/workspaces/${id}`), since);
  } catch (e) {
    if (e.status === 404) removeRow(id); else showError(e);
  }
}

async function loadAll() {
  const since = state.seq;
  let list;
  try {
    list = await api("GET", "/api/workspaces");
  } catch (e) { showError(e); return; }
  const seen = new Set();
  for (const w of list) { seen.add(w.id); applyApi(w, since); }
  for (const [id, row] of state.rows) {
    if (!seen.has(id) && row.seq <= since) removeRow(id);
  }
  $("empty").hidden = state.rows.size > 0;
}

// Transfers: poll the API once a second while one is in progress.
let progressTimer = null;
function watchProgress() {
  const moving = [...state.rows.values()].some((r) =>
    r.data.operation === "ARCHIVING" || r.data.operation === "RESTORING");
  if (moving && !progressTimer) {
    progressTimer = setInterval(async () => {
      for (const [id, r] of state.rows) {
        if (r.data.operation !== "ARCHIVING" && r.data.operation !== "RESTORING") continue;
        try {
          const w = await api("GET", `/api/workspaces/${id}`);
          r.data.progress = w.progress;
          render(r);
        } catch (e) { /* the next event tells */ }
      }
    }, 1000);
  } else if (!moving && progressTimer) {
    clearInterval(progressTimer);
    progressTimer = null;
  }
}

// ---------------------------------------------------------------- actions

$("create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearError();
  const input = $("new-name");
  const button = $("create");
  button.disabled = true;
  const since = state.seq;
  try {
    const w = await api("POST", "/api/workspaces", { name: input.value });
    applyApi(w, since);
    input.value = "";
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
});

$("rows").addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (!b) return;
  const id = b.closest("tr").dataset.wsId;
  const a = b.dataset.action;
  clearError();
  const since = state.seq;
  try {
    let w;
    if (a === "delete") w = await api("DELETE", `/api/workspaces/${id}`);
    else if (a === "recover") w = await api("POST", `/api/workspaces/${id}/recover`);
    else w = await api("PUT", `/api/workspaces/${id}/desired_state`, { desired_state: a });
    if (a !== "delete") applyApi(w, since);
  } catch (e) {
    showError(e);
  }
});

$("error-close").addEventListener("click", clearError);

// ---------------------------------------------------------------- events

function setStream(s, text) {
  $("stream").dataset.state = s;
  $("stream").textContent = "events: " + (text || s);
}

let retryTimer = null;
function reconnectSoon(ms) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, ms);
}

async function connect() {
  if (state.es) { state.es.close(); state.es = null; }
  setStream("connecting", "connecting…");
  let tok;
  try {
    tok = await api("GET", "/api/sse-token");
  } catch (e) {
    setStream("down", `no token (${e.message}); retrying`);
    reconnectSoon(5000);
    return;
  }
  $("user").textContent = "user " + tok.owner;
  // A new EventSource does not send Last-Event-ID: resume with the query parameter.
  const resume = state.lastEventId === null ? "" : `&last_event_id=${encodeURIComponent(state.lastEventId)}`;
  const es = new EventSource(`${tok.relay}/api/v1/events?access_token=${encodeURIComponent(tok.token)}${resume}`);
  state.es = es;
  es.onopen = () => {
    state.opened += 1;
    setStream("live");
    // Without a position to resume from, events before this moment are not
    // coming: take the current state from the API.
    if (state.lastEventId === null) loadAll();
  };
  const on = (name, f) => es.addEventListener(name, (e) => {
    if (e.lastEventId) state.lastEventId = e.lastEventId;
    f(e);
  });
  on("state_changed", (e) => applyEvent(JSON.parse(e.data)));
  on("ttl_warning", (e) => {
    const d = JSON.parse(e.data);
    const row = state.rows.get(d.workspace_id);
    notice(`${row && row.data.name ? row.data.name : d.workspace_id}: ${d.message}`);
  });
  on("reset", () => loadAll());  // events were lost to this page: reload the state
  on("token_expired", () => connect());
  // "error" is both wsctl's event (with data) and EventSource's own.
  on("error", (e) => {
    if (e.data) { applyEvent(JSON.parse(e.data)); return; }
    if (es.readyState === EventSource.CLOSED) {
      // Given up (e.g. 401 after the token expired while away): new token.
      setStream("down", "disconnected; retrying");
      reconnectSoon(2000);
    } else {
      setStream("reconnecting", "reconnecting…");  // the browser retries with Last-Event-ID
    }
  });
}

loadAll();
connect();
