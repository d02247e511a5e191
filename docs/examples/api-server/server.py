#!/usr/bin/python3
"""server.py: an example REST API server in front of wsctl's SQL API.

A starting point for a platform team, not a product: every route is one
call of a wsctl SQL function (docs/sql-api.md), made by a LOGIN role that
is a member of wsctl_api (never a superuser), and every SQLSTATE is turned
into the HTTP status docs/sql-api.md names. It also serves the one-page
dashboard in static/, which follows the user's workspaces live over the
wsctl-sse relay with a token from GET /api/sse-token.

Debian 12 packages only: python3-flask (2.2), python3-psycopg (3.1),
python3-psycopg-pool. Run it with /usr/bin/python3:

    WSCTL_EXAMPLE_DSN='host=/var/run/postgresql dbname=mydb user=api_server' \
    WSCTL_EXAMPLE_RELAY=http://127.0.0.1:8090 \
    /usr/bin/python3 server.py

Environment:
    WSCTL_EXAMPLE_DSN        libpq connection string of a wsctl_api member (required)
    WSCTL_EXAMPLE_ADMIN_DSN  of a wsctl_admin member, for POST .../recover (optional:
                             without it recover is called as the API role and the
                             database refuses it, 42501, answered 403)
    WSCTL_EXAMPLE_RELAY      the relay's base URL as the browser reaches it
                             (default http://127.0.0.1:8090)
    WSCTL_EXAMPLE_PORT       port on 127.0.0.1 (default 8080)
    WSCTL_EXAMPLE_IMAGE      image_ref when a create request names none (default:
                             none, and the database answers 422)
    WSCTL_EXAMPLE_USER       the owner uuid of requests without X-User-Id
                             (default 00000000-0000-0000-0000-0000000000e1)
    WSCTL_EXAMPLE_TOKEN_TTL  lifetime of SSE tokens in seconds (default 900)
    WSCTL_EXAMPLE_POOL_SIZE  most connections kept open (default 4)

Authentication is NOT done here: the user is whatever uuid the X-User-Id
header says. A real deployment authenticates the user (session, OIDC, ...)
and derives the owner uuid from that; see README.md.
"""

import atexit
import json
import logging
import os
import sys
import uuid

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout
from flask import Flask, jsonify, request, send_from_directory

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_USER = os.environ.get("WSCTL_EXAMPLE_USER", "00000000-0000-0000-0000-0000000000e1")
RELAY = os.environ.get("WSCTL_EXAMPLE_RELAY", "http://127.0.0.1:8090").rstrip("/")
PORT = int(os.environ.get("WSCTL_EXAMPLE_PORT", "8080"))
DEFAULT_IMAGE = os.environ.get("WSCTL_EXAMPLE_IMAGE") or None
TOKEN_TTL = int(os.environ.get("WSCTL_EXAMPLE_TOKEN_TTL", "900"))
POOL_SIZE = int(os.environ.get("WSCTL_EXAMPLE_POOL_SIZE", "4"))

log = logging.getLogger("wsctl-example")

# The columns of wsctl.workspace_info a user sees. home_ctx, op_id and the
# whole error_info stay inside (error_info.context may name Docker or S3
# details); error_reason is error_info ->> 'reason'.
COLUMNS = """w.id, w.owner_user_id, w.name, w.description, w.memo, w.image_ref,
    w.display_status, w.observed_status, w.operation, w.desired_state,
    w.error_message, w.error_info ->> 'reason' AS error_reason, w.error_count,
    w.previous_status, w.op_started_at, w.last_access_at, w.standby_ttl_seconds,
    w.archive_ttl_seconds, w.created_at, w.updated_at, w.deleted_at"""

# The transfer in progress, if any (ARCHIVING or RESTORING), from the view
# wsctl.operation_progress; NULLs otherwise.
PROGRESS_JOIN = """LEFT JOIN wsctl.operation_progress p
    ON p.workspace_id = w.id AND p.operation = w.operation::text"""
PROGRESS_COLUMNS = "p.bytes_done, p.bytes_total, p.rate"


# ---------------------------------------------------------------- errors

class ApiError(Exception):
    """An error answered as JSON: {"message", "detail", "hint", "sqlstate"}."""

    def __init__(self, status, message, detail=None, hint=None, sqlstate=None):
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "detail": detail, "hint": hint, "sqlstate": sqlstate}


# SQLSTATE -> HTTP status, as docs/sql-api.md ("Errors: SQLSTATE and HTTP
# status") names them. 0A000 is handled in http_status(): it has two causes.
STATUS = {
    "WS404": 404,
    "WS409": 409,
    "WS422": 422,
    "WS429": 429,
    "WS403": 403,  # (b) sse_token for every workspace; (a) is a wsctl bug, logged below
    "WS503": 503,
    "22P02": 422,  # malformed uuid, a status that is not a wsctl.status label
    "22003": 422,  # a TTL outside the int range
    "42501": 403,  # recover_workspace without wsctl_admin: an admin call exposed to users
    "40P01": 503,  # deadlock: retry
    "55P03": 503,  # lock_timeout: retry
    "57014": 503,  # statement_timeout: retry
}


def http_status(sqlstate, message):
    if sqlstate == "0A000":
        # (b) archiving without object storage is a feature this deployment
        # lacks: 501. (a) a slot claim outside READ COMMITTED is our bug: 500.
        return 501 if message.startswith("archiving is not available") else 500
    return STATUS.get(sqlstate, 500)


def from_db_error(e):
    """The ApiError for a psycopg error, with the DB's message, DETAIL and HINT."""
    sqlstate = e.sqlstate
    diag = e.diag
    message = diag.message_primary or str(e)
    if sqlstate is None:
        # No SQLSTATE: the connection failed or broke (the database is down).
        log.warning("database unavailable: %s", e)
        return ApiError(503, "the database is unavailable", hint="Retry in a moment.")
    status = http_status(sqlstate, message)
    if status == 500:
        # Unexpected (38000, 55000, 42883, WS403 (a), ...): the details are
        # for the operator's log, not for the user.
        log.error("SQLSTATE %s: %s; DETAIL %s; HINT %s", sqlstate, message,
                  diag.message_detail, diag.message_hint)
        return ApiError(500, "internal error", hint="The API server's log has the details.",
                        sqlstate=sqlstate)
    detail = diag.message_detail
    if sqlstate == "WS429" and detail:
        # The DETAIL of WS429 is a JSON object: pass it on as one.
        try:
            detail = json.loads(detail)
        except ValueError:
            pass
    return ApiError(status, message, detail, diag.message_hint, sqlstate)


def not_found(ws_id):
    """What the database answers for an unknown id (another owner's workspace
    gets the same answer, so that ids of other tenants cannot be probed)."""
    return ApiError(404, f"workspace {ws_id} not found", "No workspace has this id.",
                    sqlstate="WS404")


# ---------------------------------------------------------------- database

def _pool(dsn, name):
    # autocommit: one call per transaction, at READ COMMITTED (docs/sql-api.md,
    # "How an API server calls").
    return ConnectionPool(dsn, min_size=1, max_size=POOL_SIZE, timeout=5, name=name,
                          kwargs={"autocommit": True, "row_factory": dict_row,
                                  "application_name": "wsctl-example-api"})


api_pool = None
admin_pool = None


def call(sql, params, pool=None, one=True):
    """Runs one statement on a pooled connection; rows are dicts."""
    try:
        with (pool or api_pool).connection() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchone() if one else cur.fetchall()
    except PoolTimeout as e:  # (a psycopg.Error too: caught first)
        log.warning("no database connection: %s", e)
        raise ApiError(503, "the database is unavailable", hint="Retry in a moment.") from e
    except psycopg.Error as e:
        raise from_db_error(e) from e


def jsonable(row):
    """A row as JSON values: uuids and timestamps as strings."""
    out = {}
    for k, v in row.items():
        if isinstance(v, uuid.UUID):
            v = str(v)
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[k] = v
    return out


def workspace(row):
    """A workspace_info row (plus progress columns, if joined) as the API's JSON."""
    w = jsonable(row)
    done = w.pop("bytes_done", None)
    total = w.pop("bytes_total", None)
    rate = w.pop("rate", None)
    w["progress"] = None if done is None else {"bytes_done": done, "bytes_total": total,
                                               "rate": rate}
    return w


# ---------------------------------------------------------------- requests

def current_user():
    """The owner uuid of this request. NOT authentication: see README.md."""
    raw = request.headers.get("X-User-Id") or DEFAULT_USER
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(400, "X-User-Id is not a uuid") from None


def body():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def field(data, name, kind):
    """An optional field of the body, of the given Python type (or None)."""
    v = data.get(name)
    if v is None or (isinstance(v, kind) and not isinstance(v, bool)):
        return v
    raise ApiError(400, f"{name} must be a {'string' if kind is str else 'integer'}")


def owned(ws_id, user):
    """The user's live workspace ws_id (with its progress), or 404.

    wsctl_api may read and steer every workspace: tenant isolation is the
    API server's job (docs/sql-api.md, list_workspaces). An owner never
    changes, so checking it before the call is enough."""
    try:
        row = call(f"""SELECT {COLUMNS}, {PROGRESS_COLUMNS}
                         FROM wsctl.get_workspace(workspace_id => %s::uuid) w {PROGRESS_JOIN}""",
                   (ws_id,))
    except ApiError as e:
        if e.status == 404:
            raise not_found(ws_id) from None  # "deleted" would tell others' ids apart
        raise
    if str(row["owner_user_id"]) != user:
        raise not_found(ws_id)
    return row


def returned(sql, params, pool=None):
    """Runs a call returning wsctl.workspace_info; its row as JSON."""
    return workspace(call(f"SELECT {COLUMNS} FROM {sql} w", params, pool))


app = Flask(__name__, static_folder=os.path.join(HERE, "static"), static_url_path="/static")
app.json.sort_keys = False


@app.errorhandler(ApiError)
def api_error(e):
    return jsonify(e.body), e.status


@app.errorhandler(404)
def no_route(e):
    return jsonify({"message": "no such endpoint", "detail": None, "hint": None,
                    "sqlstate": None}), 404


@app.errorhandler(405)
def no_method(e):
    return jsonify({"message": "method not allowed", "detail": None, "hint": None,
                    "sqlstate": None}), 405


@app.after_request
def headers(resp):
    # The page may load only its own files and open streams only on the relay.
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'self'; connect-src 'self' {RELAY}; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    if request.path.startswith("/api/"):
        resp.headers["Cache-Control"] = "no-store"
    return resp


@app.get("/")
def index():
    return send_from_directory(app.static_folder, "index.html")


@app.get("/api/workspaces")
def list_workspaces():
    rows = call(f"""SELECT {COLUMNS}, {PROGRESS_COLUMNS}
                      FROM wsctl.list_workspaces(owner_user_id => %s::uuid) w {PROGRESS_JOIN}""",
                (current_user(),), one=False)
    return jsonify([workspace(r) for r in rows])


@app.post("/api/workspaces")
def create_workspace():
    data = body()
    params = {
        "owner": current_user(),
        "name": field(data, "name", str),
        "image_ref": field(data, "image_ref", str) or DEFAULT_IMAGE,
        "desired_state": field(data, "desired_state", str) or "RUNNING",
        "description": field(data, "description", str),
        "memo": field(data, "memo", str),
        "standby_ttl_seconds": field(data, "standby_ttl_seconds", int),
        "archive_ttl_seconds": field(data, "archive_ttl_seconds", int),
    }
    # Named notation, each parameter cast to the declared type; the TTLs
    # keep their SQL defaults when the request leaves them out.
    ttls = "".join(f", {k} => %({k})s::int" for k in ("standby_ttl_seconds", "archive_ttl_seconds")
                   if params[k] is not None)
    w = returned(f"""wsctl.create_workspace(owner_user_id => %(owner)s::uuid,
                        name => %(name)s::text, image_ref => %(image_ref)s::text,
                        desired_state => %(desired_state)s::wsctl.status,
                        description => %(description)s::text, memo => %(memo)s::text{ttls})""",
                 params)
    return jsonify(w), 201, {"Location": f"/api/workspaces/{w['id']}"}


@app.get("/api/workspaces/<ws_id>")
def get_workspace(ws_id):
    return jsonify(workspace(owned(ws_id, current_user())))


@app.patch("/api/workspaces/<ws_id>")
def update_workspace(ws_id):
    data = body()
    owned(ws_id, current_user())
    params = {"id": ws_id,
              "name": field(data, "name", str),
              "description": field(data, "description", str),
              "memo": field(data, "memo", str),
              "standby_ttl_seconds": field(data, "standby_ttl_seconds", int),
              "archive_ttl_seconds": field(data, "archive_ttl_seconds", int)}
    return jsonify(returned("""wsctl.update_workspace(workspace_id => %(id)s::uuid,
                                 name => %(name)s::text, description => %(description)s::text,
                                 memo => %(memo)s::text,
                                 standby_ttl_seconds => %(standby_ttl_seconds)s::int,
                                 archive_ttl_seconds => %(archive_ttl_seconds)s::int)""", params))


@app.route("/api/workspaces/<ws_id>/desired_state", methods=["PUT", "POST"])
def set_desired_state(ws_id):
    state = field(body(), "desired_state", str)
    owned(ws_id, current_user())
    return jsonify(returned("""wsctl.set_desired_state(workspace_id => %s::uuid,
                                 desired_state => %s::wsctl.status)""", (ws_id, state)))


@app.delete("/api/workspaces/<ws_id>")
def delete_workspace(ws_id):
    owned(ws_id, current_user())
    return jsonify(returned("wsctl.delete_workspace(workspace_id => %s::uuid)", (ws_id,)))


@app.post("/api/workspaces/<ws_id>/recover")
def recover_workspace(ws_id):
    # An administrator's call (wsctl_admin). With WSCTL_EXAMPLE_ADMIN_DSN it
    # runs as that role; without, as the API role, which the database refuses
    # (42501, answered 403). A real server would let only operators call it.
    owned(ws_id, current_user())
    return jsonify(returned("wsctl.recover_workspace(workspace_id => %s::uuid)", (ws_id,),
                            admin_pool))


@app.post("/api/workspaces/<ws_id>/activity/connect")
def activity_connect(ws_id):
    owned(ws_id, current_user())
    row = call("SELECT wsctl.activity_connect(workspace_id => %s::uuid) AS n", (ws_id,))
    return jsonify({"connections": row["n"]})


@app.post("/api/workspaces/<ws_id>/activity/disconnect")
def activity_disconnect(ws_id):
    owned(ws_id, current_user())
    row = call("SELECT wsctl.activity_disconnect(workspace_id => %s::uuid) AS n", (ws_id,))
    return jsonify({"connections": row["n"]})


@app.get("/api/sse-token")
def sse_token():
    user = current_user()
    row = call("""SELECT wsctl.sse_token(owner_user_id => %s::uuid,
                                         ttl => make_interval(secs => %s::int)) AS token""",
               (user, TOKEN_TTL))
    return jsonify({"token": row["token"], "relay": RELAY, "owner": user,
                    "expires_in": TOKEN_TTL})


def main():
    global api_pool, admin_pool
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    dsn = os.environ.get("WSCTL_EXAMPLE_DSN")
    if not dsn:
        sys.exit("server.py: set WSCTL_EXAMPLE_DSN to the connection string of a wsctl_api member")
    api_pool = _pool(dsn, "api")
    admin_dsn = os.environ.get("WSCTL_EXAMPLE_ADMIN_DSN")
    admin_pool = _pool(admin_dsn, "admin") if admin_dsn else api_pool
    atexit.register(api_pool.close)
    if admin_pool is not api_pool:
        atexit.register(admin_pool.close)
    # Refuse to run as a superuser: the example must show the least privilege.
    try:
        row = call("SELECT rolsuper, pg_has_role('wsctl_api', 'MEMBER') AS api "
                   "FROM pg_roles WHERE rolname = current_user", ())
    except ApiError as e:
        sys.exit(f"server.py: cannot use WSCTL_EXAMPLE_DSN: {e.body['message']} {e.body['sqlstate'] or ''}")
    if row["rolsuper"] or not row["api"]:
        sys.exit("server.py: WSCTL_EXAMPLE_DSN must log in as a member of wsctl_api "
                 "that is not a superuser")
    log.info("listening on http://127.0.0.1:%d/ (relay %s, recover %s)", PORT, RELAY,
             "as wsctl_admin" if admin_dsn else "refused: no WSCTL_EXAMPLE_ADMIN_DSN")
    # Loopback only; put a TLS-terminating proxy (and a production WSGI
    # server) in front for anything else.
    app.run(host="127.0.0.1", port=PORT, threaded=True)


if __name__ == "__main__":
    main()
