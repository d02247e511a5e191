/*
 * docker.c: the Docker Engine API (v1.41) client used by wsctl's workers.
 *
 * Each function makes the Docker object of one workspace (container ws-{id},
 * volume ws-{id}-home) change or reports on it, or lists every object that
 * wsctl manages, with one HTTP request. Answers are classified, never thrown:
 *
 *	 transport failure, HTTP 5xx, unreadable reply	-> DOCKER_UNREACHABLE
 *	 HTTP 404 on the object							-> DOCKER_NOT_FOUND
 *	 other HTTP 4xx, or a refused setting			-> DOCKER_ACTION_FAILED
 *
 * JSON is parsed with jsonb_in and read with the jsonb accessors; requests
 * are built with escape_json. Neither touches the catalogs, so everything
 * here works outside a transaction. Images are never pulled: no registry is
 * reachable, and a missing image is reported as IMAGE_PULL_FAILED.
 */
#include "postgres.h"

#include "docker.h"
#include "metrics.h"
#include "http.h"
#include "lib/stringinfo.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#define DOCKER_API_PREFIX	"/v1.41"
#define LABEL_MANAGED		"wsctl.managed"
#define LABEL_WORKSPACE		"wsctl.workspace"
#define LABEL_MARKER		"wsctl.marker"
#define MANAGED_FILTER		"{\"label\":[\"" LABEL_MANAGED "=true\"]}"

/* Longest message text kept from Docker (bytes), so messages stay short. */
#define DOCKER_MESSAGE_MAX	200

/* HTTP requests sent by this process (docker_request_count). */
static uint64 docker_requests = 0;

/* Where a daemon's setting points. */
typedef struct DockerEndpoint
{
	char	   *base_url;		/* "http://127.0.0.1:2375", "http://localhost" */
	char	   *socket_path;	/* unix socket path, or NULL for TCP */
} DockerEndpoint;

/* One Docker answer: its generic classification, plus what callers parse. */
typedef struct DockerReply
{
	DockerResult result;
	StringInfo	body;
	char	   *docker_message; /* Docker's "message" on a non-2xx answer */
} DockerReply;

char *
docker_container_name(const char *workspace_id)
{
	return psprintf("ws-%s", workspace_id);
}

char *
docker_volume_name(const char *workspace_id)
{
	return psprintf("ws-%s-home", workspace_id);
}

uint64
docker_request_count(void)
{
	return docker_requests;
}

static DockerResult
docker_ok(long http_status)
{
	DockerResult r = {DOCKER_OK, http_status, NULL, NULL};

	return r;
}

static DockerResult
docker_failure(DockerResultKind kind, long http_status, const char *code,
			   char *message)
{
	DockerResult r = {kind, http_status, code ? pstrdup(code) : NULL, message};

	return r;
}

/*
 * Docker's own text made fit for a one-line message: control characters
 * become spaces, and it is cut (at a UTF-8 character boundary) when long.
 */
static char *
docker_short_text(const char *text)
{
	int			len = strlen(text);
	char	   *out;

	if (len > DOCKER_MESSAGE_MAX)
	{
		len = DOCKER_MESSAGE_MAX;
		while (len > 0 && ((unsigned char) text[len] & 0xC0) == 0x80)
			len--;
	}
	out = pnstrdup(text, len);
	for (char *p = out; *p; p++)
	{
		if ((unsigned char) *p < 0x20)
			*p = ' ';
	}
	if (len < (int) strlen(text))
		out = psprintf("%s...", out);
	return out;
}

/*
 * Parses a reply body as jsonb. A malformed body is an answer we cannot use,
 * not an error for our caller: the error is caught, its text returned in
 * *error, and NULL returned.
 */
static Jsonb *
docker_parse_json(const char *text, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *volatile result = NULL;

	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													CStringGetDatum(text)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		*error = docker_short_text(edata->message);
		FreeErrorData(edata);
		result = NULL;
	}
	PG_END_TRY();

	return result;
}

/* The value of key in an object container, or NULL. */
static JsonbValue *
json_get(JsonbContainer *object, const char *key)
{
	if (object == NULL || !JsonContainerIsObject(object))
		return NULL;
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

/* The string value of key in an object container, palloc'd, or NULL. */
static char *
json_get_string(JsonbContainer *object, const char *key)
{
	JsonbValue *v = json_get(object, key);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The object or array value of key in an object container, or NULL. */
static JsonbContainer *
json_get_container(JsonbContainer *object, const char *key)
{
	JsonbValue *v = json_get(object, key);

	if (v == NULL || v->type != jbvBinary)
		return NULL;
	return v->val.binary.data;
}

/* Element i of an array container if it is an object or array, or NULL. */
static JsonbContainer *
json_array_container(JsonbContainer *array, uint32 i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(array, i);

	if (v == NULL || v->type != jbvBinary)
		return NULL;
	return v->val.binary.data;
}

static bool
json_is_array(JsonbContainer *c)
{
	return c != NULL && JsonContainerIsArray(c) && !JsonContainerIsScalar(c);
}

/* Docker's explanation of a failed call: the "message" field, else the body. */
static char *
docker_error_text(StringInfo body)
{
	char	   *ignored = NULL;
	Jsonb	   *jb;
	char	   *message = NULL;

	if (body->len == 0)
		return pstrdup("(empty reply)");
	jb = docker_parse_json(body->data, &ignored);
	if (jb != NULL)
		message = json_get_string(&jb->root, "message");
	return docker_short_text(message ? message : body->data);
}

/*
 * Reads the daemon's setting (wsctl.docker_host, wsctl.remote_docker_host).
 * Only a unix socket or a loopback TCP address is
 * accepted: wsctl never sends traffic to any other address.
 */
static bool
docker_endpoint(const DockerDaemon *d, DockerEndpoint *ep, char **error)
{
	const char *spec = *d->host;

	memset(ep, 0, sizeof(*ep));
	if (spec != NULL && strncmp(spec, "unix://", 7) == 0)
	{
		if (spec[7] != '/')
		{
			*error = psprintf("%s: the unix socket path must be absolute", d->setting);
			return false;
		}
		ep->base_url = "http://localhost";
		ep->socket_path = pstrdup(spec + 7);
		return true;
	}
	if (spec != NULL && strncmp(spec, "tcp://", 6) == 0)
	{
		const char *hostport = spec + 6;
		const char *colon = strrchr(hostport, ':');
		char	   *host;
		char	   *end;
		long		port;

		if (strchr(hostport, '@') != NULL)
		{
			*error = psprintf("%s must not contain user information", d->setting);
			return false;
		}
		if (colon == NULL)
		{
			*error = psprintf("%s: a tcp:// host needs a port", d->setting);
			return false;
		}
		host = pnstrdup(hostport, colon - hostport);
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (errno != 0 || end == colon + 1 || *end != '\0' ||
			port < 1 || port > 65535)
		{
			*error = psprintf("%s: invalid port", d->setting);
			return false;
		}
		if (!http_host_is_loopback(host))
		{
			*error = psprintf("%s: \"%s\" is not a loopback address literal (only 127.0.0.0/8 and [::1] are allowed)",
							  d->setting, docker_short_text(host));
			return false;
		}
		ep->base_url = psprintf("http://%s:%ld", host, port);
		return true;
	}
	*error = psprintf("%s must be unix:///path or tcp://127.0.0.1:PORT", d->setting);
	return false;
}

/*
 * The classification shared by every call. Messages name the method and the
 * path (without the query), never headers. libcurl's text for a unix socket
 * that refuses names "localhost port 80", so that case names the socket.
 */
static DockerResult
docker_classify(const char *method, const char *path, const char *socket_path,
				const HttpResponse *resp, char **docker_message)
{
	long		status = resp->status;
	DockerResultKind kind;

	*docker_message = NULL;
	/*
	 * Nothing listens (connection refused, socket missing): Docker is down,
	 * which the reconciler treats as an outage to wait out, not as a
	 * failure of the workspace (DOCKER_UNAVAILABLE).
	 */
	if (!resp->ok && resp->curl_code == CURLE_COULDNT_CONNECT &&
		socket_path != NULL)
		return docker_failure(DOCKER_UNREACHABLE, 0, "DOCKER_UNAVAILABLE",
							  psprintf("Docker %s %s: cannot connect to unix socket %s: %s",
									   method, path, socket_path,
									   resp->os_errno ? strerror(resp->os_errno) :
									   resp->error));
	if (!resp->ok)
		return docker_failure(DOCKER_UNREACHABLE, 0,
							  resp->curl_code == CURLE_COULDNT_CONNECT ? "DOCKER_UNAVAILABLE" : NULL,
							  psprintf("Docker %s %s: %s", method, path,
									   resp->error));
	if ((status >= 200 && status < 300) || status == 304)
		return docker_ok(status);

	*docker_message = docker_error_text(resp->body);
	if (status == 404)
		kind = DOCKER_NOT_FOUND;
	else if (status >= 400 && status < 500)
		kind = DOCKER_ACTION_FAILED;
	else
		kind = DOCKER_UNREACHABLE;	/* 5xx, or a status Docker never sends */
	return docker_failure(kind, status, NULL,
						  psprintf("Docker %s %s: HTTP %ld: %s", method, path,
								   status, *docker_message));
}

/*
 * Sends one request to Docker. path is below /v1.41 and already escaped;
 * query (or NULL) goes after '?'; body (or NULL) is JSON.
 */
static DockerReply
docker_call(const DockerDaemon *d, const char *method, const char *path, const char *query,
			const char *body, long timeout_ms)
{
	DockerReply reply;
	DockerEndpoint ep;
	HttpRequest req;
	HttpResponse resp;
	char	   *error = NULL;

	memset(&reply, 0, sizeof(reply));
	if (!docker_endpoint(d, &ep, &error))
	{
		reply.result = docker_failure(DOCKER_ACTION_FAILED, 0, NULL, error);
		reply.body = makeStringInfo();
		return reply;
	}

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = psprintf("%s%s%s%s%s", ep.base_url, DOCKER_API_PREFIX, path,
					   query ? "?" : "", query ? query : "");
	req.unix_socket_path = ep.socket_path;
	req.connect_timeout_ms = HTTP_CONNECT_TIMEOUT_MS;
	req.timeout_ms = timeout_ms;
	if (body != NULL)
	{
		req.headers = curl_slist_append(NULL, "Content-Type: application/json");
		if (req.headers == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		req.body = body;
		req.body_len = strlen(body);
	}

	docker_requests++;
	resp = http_perform(&req);
	curl_slist_free_all(req.headers);

	reply.body = resp.body;
	reply.result = docker_classify(method, path, ep.socket_path, &resp,
								   &reply.docker_message);
	/* a 404 answers a lookup or a delete; on a create or a start it is a refusal */
	wsctl_metrics_call(WSCTL_SERVICE_DOCKER,
					   reply.result.kind != DOCKER_OK &&
					   !(reply.result.kind == DOCKER_NOT_FOUND &&
						 (strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0)));
	elog(DEBUG2, "wsctl: Docker %s %s -> %ld", method, path, resp.status);
	return reply;
}

/* A 2xx answer whose body is not what the API promises. */
static DockerResult
docker_bad_reply(const char *method, const char *path, long status,
				 const char *detail)
{
	return docker_failure(DOCKER_UNREACHABLE, status, NULL,
						  psprintf("Docker %s %s: unexpected reply: %s",
								   method, path, detail));
}

/*
 * Workspace ids become parts of object names and URL paths: allow only what
 * a Docker name allows, so an id can never reach another object or route.
 */
static bool
docker_id_valid(const char *workspace_id, DockerResult *result)
{
	const char *p = workspace_id;

	if (p != NULL && *p != '\0')
	{
		for (; *p; p++)
		{
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
				  *p == '.'))
				break;
		}
		if (*p == '\0')
			return true;
	}
	*result = docker_failure(DOCKER_ACTION_FAILED, 0, NULL,
							 pstrdup("invalid workspace id for a Docker object name"));
	return false;
}

/* Appends the labels every wsctl object carries, as a JSON object. */
static void
append_labels(StringInfo buf, const char *workspace_id)
{
	appendStringInfoString(buf, "{\"" LABEL_MANAGED "\":\"true\",\""
						   LABEL_WORKSPACE "\":");
	escape_json(buf, workspace_id);
	appendStringInfoChar(buf, '}');
}

/* "/containers/ws-{id}" followed by suffix (e.g. "/json"). */
static char *
container_path(const char *workspace_id, const char *suffix)
{
	return psprintf("/containers/%s%s",
					http_escape(docker_container_name(workspace_id)), suffix);
}

static char *
volume_path(const char *workspace_id)
{
	return psprintf("/volumes/%s",
					http_escape(docker_volume_name(workspace_id)));
}

/*
 * Parses one entry of GET /containers/json; NULL when it has no workspace
 * label (not ours to report).
 */
static DockerContainer *
container_from_summary(JsonbContainer *summary)
{
	JsonbContainer *names = json_get_container(summary, "Names");
	char	   *workspace_id;
	char	   *state;
	DockerContainer *c;

	workspace_id = json_get_string(json_get_container(summary, "Labels"),
								   LABEL_WORKSPACE);
	if (workspace_id == NULL)
		return NULL;

	c = palloc0(sizeof(DockerContainer));
	c->workspace_id = workspace_id;
	c->name = pstrdup("");
	if (json_is_array(names) && JsonContainerSize(names) > 0)
	{
		JsonbValue *first = getIthJsonbValueFromContainer(names, 0);

		if (first != NULL && first->type == jbvString)
		{
			const char *s = first->val.string.val;
			int			len = first->val.string.len;

			if (len > 0 && s[0] == '/')
			{
				s++;
				len--;
			}
			c->name = pnstrdup(s, len);
		}
	}
	state = json_get_string(summary, "State");
	c->running = state != NULL && strcmp(state, "running") == 0;
	return c;
}

/*
 * A list call that Docker could not serve must never read as "nothing
 * exists": a 404 there means a wrong API, not a missing object.
 */
static DockerResult
docker_list_failure(DockerResult result)
{
	if (result.kind == DOCKER_NOT_FOUND)
		result.kind = DOCKER_ACTION_FAILED;
	return result;
}

DockerResult
docker_list_containers(const DockerDaemon *d, List **out)
{
	const char *path = "/containers/json";
	DockerReply reply;
	Jsonb	   *jb;
	char	   *error = NULL;
	List	   *result = NIL;

	*out = NIL;
	reply = docker_call(d, "GET", path,
						psprintf("all=true&filters=%s",
								 http_escape(MANAGED_FILTER)),
						NULL, HTTP_DEFAULT_TIMEOUT_MS);
	if (reply.result.kind != DOCKER_OK)
		return docker_list_failure(reply.result);

	jb = docker_parse_json(reply.body->data, &error);
	if (jb == NULL)
		return docker_bad_reply("GET", path, reply.result.http_status, error);
	if (!json_is_array(&jb->root))
		return docker_bad_reply("GET", path, reply.result.http_status,
								"not a JSON array");

	for (uint32 i = 0; i < JsonContainerSize(&jb->root); i++)
	{
		JsonbContainer *summary = json_array_container(&jb->root, i);
		DockerContainer *c;

		if (summary == NULL || !JsonContainerIsObject(summary))
			continue;
		c = container_from_summary(summary);
		if (c != NULL)
			result = lappend(result, c);
	}
	*out = result;
	return reply.result;
}

/*
 * The marker volume: wsctl keeps one volume named after the cluster's
 * system identifier on the daemon it manages, so the HealthMonitor can tell
 * its own daemon from another (or a wiped) one. Docker's /info ID cannot do
 * that: two daemons on one host may share it.
 */
char *
docker_marker_volume_name(uint64 system_identifier)
{
	return psprintf("wsctl-cluster-" UINT64_FORMAT, system_identifier);
}

DockerResult
docker_create_marker_volume(const DockerDaemon *d, const char *name)
{
	DockerReply reply;
	StringInfoData body;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"Name\":");
	escape_json(&body, name);
	appendStringInfoString(&body, ",\"Labels\":{\"" LABEL_MANAGED "\":\"true\",\""
						   LABEL_MARKER "\":\"true\"}}");
	reply = docker_call(d, "POST", "/volumes/create", NULL, body.data,
						HTTP_DEFAULT_TIMEOUT_MS);
	if (reply.result.kind == DOCKER_NOT_FOUND)
		reply.result.kind = DOCKER_ACTION_FAILED;
	return reply.result;
}

/*
 * Lists the managed volumes: the workspace ids of the home volumes in
 * *out, and in *marker_seen whether the volume named marker is among them.
 */
DockerResult
docker_list_volumes(const DockerDaemon *d, List **out, const char *marker, bool *marker_seen)
{
	const char *path = "/volumes";
	DockerReply reply;
	Jsonb	   *jb;
	JsonbContainer *volumes;
	char	   *error = NULL;
	List	   *result = NIL;

	*out = NIL;
	*marker_seen = false;
	reply = docker_call(d, "GET", path,
						psprintf("filters=%s", http_escape(MANAGED_FILTER)),
						NULL, HTTP_DEFAULT_TIMEOUT_MS);
	if (reply.result.kind != DOCKER_OK)
		return docker_list_failure(reply.result);

	jb = docker_parse_json(reply.body->data, &error);
	if (jb == NULL)
		return docker_bad_reply("GET", path, reply.result.http_status, error);
	if (!JsonContainerIsObject(&jb->root))
		return docker_bad_reply("GET", path, reply.result.http_status,
								"not a JSON object");

	/* "Volumes" is null, not [], on some engines when there are none */
	volumes = json_get_container(&jb->root, "Volumes");
	if (!json_is_array(volumes))
		volumes = NULL;
	for (uint32 i = 0; volumes != NULL && i < JsonContainerSize(volumes); i++)
	{
		JsonbContainer *volume = json_array_container(volumes, i);
		char	   *workspace_id;
		char	   *name;

		name = json_get_string(volume, "Name");
		if (name != NULL && marker != NULL && strcmp(name, marker) == 0)
			*marker_seen = true;
		workspace_id = json_get_string(json_get_container(volume, "Labels"),
									   LABEL_WORKSPACE);
		if (workspace_id != NULL)
			result = lappend(result, workspace_id);
	}
	*out = result;
	return reply.result;
}

DockerResult
docker_inspect_container(const DockerDaemon *d, const char *workspace_id, bool *exists, bool *running)
{
	DockerResult result;
	DockerReply reply;
	char	   *path;
	Jsonb	   *jb;
	JsonbValue *v;
	char	   *error = NULL;

	*exists = false;
	*running = false;
	if (!docker_id_valid(workspace_id, &result))
		return result;

	path = container_path(workspace_id, "/json");
	reply = docker_call(d, "GET", path, NULL, NULL, HTTP_DEFAULT_TIMEOUT_MS);
	if (reply.result.kind == DOCKER_NOT_FOUND)
		return docker_ok(reply.result.http_status);
	if (reply.result.kind != DOCKER_OK)
		return reply.result;

	jb = docker_parse_json(reply.body->data, &error);
	if (jb == NULL)
		return docker_bad_reply("GET", path, reply.result.http_status, error);
	v = json_get(json_get_container(&jb->root, "State"), "Running");
	if (v == NULL || v->type != jbvBool)
		return docker_bad_reply("GET", path, reply.result.http_status,
								"no State.Running");

	*exists = true;
	*running = v->val.boolean;
	return reply.result;
}

/* The body of POST /containers/create for a workspace. */
static char *
container_create_body(const char *workspace_id, const char *image_ref)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"Image\":");
	escape_json(&buf, image_ref);
	appendStringInfoString(&buf, ",\"Labels\":");
	append_labels(&buf, workspace_id);
	appendStringInfoString(&buf, ",\"HostConfig\":{\"NetworkMode\":");
	escape_json(&buf, wsctl_container_network);
	appendStringInfoString(&buf, ",\"Mounts\":[{\"Type\":\"volume\",\"Source\":");
	escape_json(&buf, docker_volume_name(workspace_id));
	appendStringInfoString(&buf, ",\"Target\":");
	escape_json(&buf, wsctl_container_mount_path);

	/*
	 * Should Docker have to create the volume itself (it does so when the
	 * volume is missing), it still carries our labels, so that no unlabelled
	 * object hides from the lists.
	 */
	appendStringInfoString(&buf, ",\"VolumeOptions\":{\"Labels\":");
	append_labels(&buf, workspace_id);
	appendStringInfoString(&buf, "}}]}}");
	return buf.data;
}

/* Checks the settings a container is created with before asking Docker. */
static bool
container_settings_valid(const char *image_ref, DockerResult *result)
{
	const char *problem = NULL;

	if (image_ref == NULL || image_ref[0] == '\0')
		problem = "no image given";
	else if (wsctl_container_network == NULL ||
			 wsctl_container_network[0] == '\0')
		problem = "wsctl.container_network is empty";
	else if (wsctl_container_mount_path == NULL ||
			 wsctl_container_mount_path[0] != '/')
		problem = "wsctl.container_mount_path must be an absolute path";
	if (problem == NULL)
		return true;
	*result = docker_failure(DOCKER_ACTION_FAILED, 0, "CONTAINER_CREATE_FAILED",
							 pstrdup(problem));
	return false;
}

DockerResult
docker_create_container(const DockerDaemon *d, const char *workspace_id, const char *image_ref)
{
	DockerResult result;
	DockerReply reply;
	char	   *name;

	if (!docker_id_valid(workspace_id, &result) ||
		!container_settings_valid(image_ref, &result))
		return result;

	name = docker_container_name(workspace_id);
	reply = docker_call(d, "POST", "/containers/create",
						psprintf("name=%s", http_escape(name)),
						container_create_body(workspace_id, image_ref),
						HTTP_LONG_TIMEOUT_MS);
	result = reply.result;
	if (result.kind == DOCKER_OK || result.kind == DOCKER_UNREACHABLE)
		return result;

	if (result.http_status == 404 && reply.docker_message != NULL &&
		strstr(reply.docker_message, "No such image") != NULL)
		return docker_failure(DOCKER_ACTION_FAILED, 404, "IMAGE_PULL_FAILED",
							  psprintf("image \"%s\" is not on the Docker host, and wsctl does not pull images",
									   docker_short_text(image_ref)));
	if (result.http_status == 409)
		return docker_failure(DOCKER_ACTION_FAILED, 409,
							  "CONTAINER_CREATE_FAILED",
							  psprintf("container %s already exists", name));

	/* a 404 here is about the image or network, not about our container */
	result.kind = DOCKER_ACTION_FAILED;
	result.code = pstrdup("CONTAINER_CREATE_FAILED");
	return result;
}

DockerResult
docker_start_container(const DockerDaemon *d, const char *workspace_id)
{
	DockerResult result;

	if (!docker_id_valid(workspace_id, &result))
		return result;
	/* 304 (already running) is classified as OK */
	return docker_call(d, "POST", container_path(workspace_id, "/start"), NULL,
					   NULL, HTTP_LONG_TIMEOUT_MS).result;
}

DockerResult
docker_remove_container(const DockerDaemon *d, const char *workspace_id)
{
	DockerResult result;

	if (!docker_id_valid(workspace_id, &result))
		return result;
	/* force: SIGKILL a running container, then remove it */
	return docker_call(d, "DELETE", container_path(workspace_id, ""), "force=true",
					   NULL, HTTP_LONG_TIMEOUT_MS).result;
}

/*
 * Volume creation is idempotent in Docker: an existing volume is returned
 * unchanged. It must then be ours, or the lists would never show it.
 */
static DockerResult
volume_check_labels(const char *workspace_id, DockerReply *reply)
{
	Jsonb	   *jb;
	JsonbContainer *labels;
	char	   *managed;
	char	   *owner;
	char	   *error = NULL;

	jb = docker_parse_json(reply->body->data, &error);
	if (jb == NULL)
		return docker_bad_reply("POST", "/volumes/create",
								reply->result.http_status, error);
	labels = json_get_container(&jb->root, "Labels");
	managed = json_get_string(labels, LABEL_MANAGED);
	owner = json_get_string(labels, LABEL_WORKSPACE);
	if (managed == NULL || strcmp(managed, "true") != 0 ||
		owner == NULL || strcmp(owner, workspace_id) != 0)
		return docker_failure(DOCKER_ACTION_FAILED, reply->result.http_status,
							  NULL,
							  psprintf("volume %s exists without the labels of workspace %s",
									   docker_volume_name(workspace_id),
									   workspace_id));
	return reply->result;
}

DockerResult
docker_create_volume(const DockerDaemon *d, const char *workspace_id)
{
	DockerResult result;
	DockerReply reply;
	StringInfoData body;

	if (!docker_id_valid(workspace_id, &result))
		return result;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"Name\":");
	escape_json(&body, docker_volume_name(workspace_id));
	appendStringInfoString(&body, ",\"Labels\":");
	append_labels(&body, workspace_id);
	appendStringInfoChar(&body, '}');

	reply = docker_call(d, "POST", "/volumes/create", NULL, body.data,
						HTTP_DEFAULT_TIMEOUT_MS);
	if (reply.result.kind == DOCKER_NOT_FOUND)
		reply.result.kind = DOCKER_ACTION_FAILED;	/* e.g. unknown driver */
	if (reply.result.kind != DOCKER_OK)
		return reply.result;
	return volume_check_labels(workspace_id, &reply);
}

DockerResult
docker_remove_volume(const DockerDaemon *d, const char *workspace_id)
{
	DockerResult result;

	if (!docker_id_valid(workspace_id, &result))
		return result;
	/* 404 -> NOT_FOUND; 409 (in use by a container) -> ACTION_FAILED */
	return docker_call(d, "DELETE", volume_path(workspace_id), NULL, NULL,
					   HTTP_DEFAULT_TIMEOUT_MS).result;
}

DockerResult
docker_volume_exists(const DockerDaemon *d, const char *workspace_id, bool *exists)
{
	DockerResult result;
	DockerReply reply;

	*exists = false;
	if (!docker_id_valid(workspace_id, &result))
		return result;

	reply = docker_call(d, "GET", volume_path(workspace_id), NULL, NULL,
						HTTP_DEFAULT_TIMEOUT_MS);
	if (reply.result.kind == DOCKER_NOT_FOUND)
		return docker_ok(reply.result.http_status);
	if (reply.result.kind == DOCKER_OK)
		*exists = true;
	return reply.result;
}

/*
 * The storage job's helper container, ws-{id}-job: created with the home
 * volume at /data and never started, it only gives Docker's archive
 * endpoints a path to the volume. It is labelled like every wsctl object
 * (and wsctl.role=job), so the HealthMonitor, which matches containers by
 * their exact name, never mistakes it for the workspace's container.
 */
char *
docker_job_container_name(const char *workspace_id)
{
	return psprintf("ws-%s-job", workspace_id);
}

static char *
job_container_path(const char *workspace_id, const char *suffix)
{
	return psprintf("/containers/%s%s",
					http_escape(docker_job_container_name(workspace_id)), suffix);
}

DockerResult
docker_create_job_container(const DockerDaemon *d, const char *workspace_id, const char *image_ref)
{
	DockerResult result;
	DockerReply reply;
	StringInfoData buf;

	if (!docker_id_valid(workspace_id, &result) ||
		!container_settings_valid(image_ref, &result))
		return result;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"Image\":");
	escape_json(&buf, image_ref);
	/* never run; Docker only wants a command to exist in the config */
	appendStringInfoString(&buf, ",\"Cmd\":[\"/wsctl-storage-job\"],\"NetworkDisabled\":true"
						   ",\"Labels\":{\"" LABEL_MANAGED "\":\"true\",\"wsctl.role\":\"job\",\""
						   LABEL_WORKSPACE "\":");
	escape_json(&buf, workspace_id);
	appendStringInfoString(&buf, "},\"HostConfig\":{\"NetworkMode\":\"none\","
						   "\"Mounts\":[{\"Type\":\"volume\",\"Source\":");
	escape_json(&buf, docker_volume_name(workspace_id));
	/* NoCopy: the image's files must never be copied into a home */
	appendStringInfoString(&buf, ",\"Target\":\"/data\",\"VolumeOptions\":{\"NoCopy\":true}}]}}");

	reply = docker_call(d, "POST", "/containers/create",
						psprintf("name=%s", http_escape(docker_job_container_name(workspace_id))),
						buf.data, HTTP_LONG_TIMEOUT_MS);
	result = reply.result;
	if (result.kind == DOCKER_ACTION_FAILED || result.kind == DOCKER_NOT_FOUND)
	{
		result.kind = DOCKER_ACTION_FAILED;
		result.code = pstrdup("JOB_CREATE_FAILED");
	}
	return result;
}

DockerResult
docker_remove_job_container(const DockerDaemon *d, const char *workspace_id)
{
	DockerResult result;

	if (!docker_id_valid(workspace_id, &result))
		return result;
	result = docker_call(d, "DELETE", job_container_path(workspace_id, ""), "force=true",
						 NULL, HTTP_LONG_TIMEOUT_MS).result;
	if (result.kind == DOCKER_NOT_FOUND)
		return docker_ok(result.http_status);
	return result;
}

/*
 * Where the archive of the job container's volume is read (GET, path
 * /data) or written (PUT, path /: entries are named data/...).
 */
bool
docker_archive_endpoint(const DockerDaemon *d, const char *workspace_id, bool put, char **url,
						char **socket_path, DockerResult *error)
{
	DockerEndpoint ep;
	char	   *message = NULL;

	if (!docker_id_valid(workspace_id, error))
		return false;
	if (!docker_endpoint(d, &ep, &message))
	{
		*error = docker_failure(DOCKER_ACTION_FAILED, 0, NULL, message);
		return false;
	}
	*url = psprintf("%s%s%s?path=%s", ep.base_url, DOCKER_API_PREFIX,
					job_container_path(workspace_id, "/archive"), put ? "%2F" : "%2Fdata");
	*socket_path = ep.socket_path;
	docker_requests++;
	return true;
}
