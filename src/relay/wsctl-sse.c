/*
 * wsctl-sse: the Server-Sent Events relay of wsctl.
 *
 * One libevent loop serves every client (evhttp) and talks to Redis with
 * hiredis's async API on two connections: "live" runs XREAD BLOCK on the
 * stream wsctl:events that the EventListener fills (one entry per event,
 * entry id = event id) and fans each new entry out to the clients whose
 * token and path match; "query" answers the XRANGE reads of clients that
 * catch up from a Last-Event-ID. A client is live only once its catch-up
 * read came back empty and the live reader has not passed it meanwhile,
 * so an event is sent to it exactly once, in id order, whichever
 * connection saw it first. Redis gone: both connections are re-opened
 * every second; the live reader resumes after the last id it saw.
 *
 *   GET /api/v1/workspaces/{id}/events   one workspace
 *   GET /api/v1/events                   every workspace the token may see
 *
 * Authorisation: an HS256 JWT from wsctl.sse_token() (?access_token= or
 * Authorization: Bearer); sub is an owner uuid, or "*" for everything.
 * Slow clients: once MAX_BACKLOG bytes wait for a client, it is fed no
 * more; Redis is its buffer, and it catches up from there (XRANGE) when
 * its backlog has drained. One that makes no progress for STALL_SECONDS
 * is disconnected. Memory per client stays bounded, and nobody waits for
 * anybody.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "jwt.h"

#define STREAM_KEY "wsctl:events"
#define CATCH_UP_BATCH "100"	/* entries per catch-up read: bounds reply memory per lagging client */
#define MAX_BACKLOG (64 * 1024)	/* bytes waiting for one client: bounds memory per client */
#define STALL_SECONDS 10		/* a client stuck over MAX_BACKLOG this long is cut off */
#define PUMP_MS 200				/* how often lagging clients are looked at */
#define RECONNECT_SECONDS 1

typedef struct Client
{
	struct Client *next;
	long		serial;			/* stable handle for async callbacks */
	struct evhttp_request *req;
	TokenGrant	grant;
	char		workspace[37];	/* "" = every workspace */
	long long	last_sent;		/* the last event id this client has had */
	int			live;			/* caught up: fed by the live reader */
	int			querying;		/* a catch-up XRANGE is in flight */
	time_t		stalled_since;	/* over MAX_BACKLOG since then; 0 if not */
	int			from_now;		/* no Last-Event-ID: starts at the live position */
} Client;

static struct event_base *base;
static redisAsyncContext *live_conn;
static redisAsyncContext *query_conn;
static char *redis_host;
static int	redis_port = 6379;
static int	redis_db;
static unsigned char *secret;
static size_t secret_len;
static int	heartbeat_seconds = 30;
static long long live_last = -1;	/* -1: the live reader has not started */
static Client *clients;
static long next_serial = 1;

static void connect_redis(void);
static void catch_up(Client *c);
static Client *find_client(long serial);

static void
die(const char *message)
{
	fprintf(stderr, "wsctl-sse: %s\n", message);
	exit(1);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: wsctl-sse --secret-file FILE [options]\n"
			"Relays wsctl's change events (the Redis stream wsctl:events) to browsers as\n"
			"Server-Sent Events.\n\n"
			"  --listen ADDR:PORT   address to serve on (default 127.0.0.1:8090)\n"
			"  --redis URL          redis://HOST[:PORT][/DB] (default redis://127.0.0.1:6379/0)\n"
			"  --secret-file FILE   the HS256 key, the same as the setting wsctl.sse_secret\n"
			"  --heartbeat SECONDS  comment line sent on every stream this often (default 30)\n"
			"  --help               this text\n\n"
			"Endpoints: GET /api/v1/workspaces/{id}/events and GET /api/v1/events, with a\n"
			"token from wsctl.sse_token() as ?access_token= or Authorization: Bearer, and\n"
			"Last-Event-ID (header, or ?last_event_id=) to replay what a client missed.\n");
}

static Client *
find_client(long serial)
{
	for (Client *c = clients; c; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

static void
remove_client(Client *gone)
{
	for (Client **p = &clients; *p; p = &(*p)->next)
		if (*p == gone)
		{
			*p = gone->next;
			free(gone);
			return;
		}
}

static void
client_closed(struct evhttp_connection *conn, void *arg)
{
	Client	   *c = find_client((long) (intptr_t) arg);

	if (c)
		remove_client(c);
}

static size_t
backlog(Client *c)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(c->req);

	return evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(conn)));
}

static void
send_text(Client *c, const char *text, size_t len)
{
	struct evbuffer *buf = evbuffer_new();

	evbuffer_add(buf, text, len);
	evhttp_send_reply_chunk(c->req, buf);
	evbuffer_free(buf);
}

typedef struct Entry
{
	long long	id;
	const char *event;
	const char *workspace_id;
	const char *owner_user_id;
	const char *data;
	char	   *text;			/* its SSE lines, formatted once for every client */
	int			text_len;
} Entry;

/* Formats the entry's SSE lines, once. */
static void
entry_text(Entry *e)
{
	if (e->text == NULL)
	{
		e->text_len = asprintf(&e->text, "id: %lld\nevent: %s\ndata: %s\n\n", e->id,
							   e->event ? e->event : "state_changed", e->data);
		if (e->text_len < 0)
			die("out of memory");
	}
}

static int
entry_from_reply(redisReply *r, Entry *e)
{
	redisReply *fields;

	memset(e, 0, sizeof(*e));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		r->element[0]->type != REDIS_REPLY_STRING ||
		r->element[1]->type != REDIS_REPLY_ARRAY)
		return -1;
	e->id = strtoll(r->element[0]->str, NULL, 10);
	fields = r->element[1];
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
	{
		const char *k = fields->element[i]->str;
		const char *v = fields->element[i + 1]->str;

		if (k == NULL || v == NULL)
			continue;
		if (strcmp(k, "event") == 0)
			e->event = v;
		else if (strcmp(k, "workspace_id") == 0)
			e->workspace_id = v;
		else if (strcmp(k, "owner_user_id") == 0)
			e->owner_user_id = v;
		else if (strcmp(k, "data") == 0)
			e->data = v;
	}
	return e->data && e->workspace_id && e->owner_user_id ? 0 : -1;
}

static int
may_see(const Client *c, const Entry *e)
{
	if (!c->grant.all && strcmp(c->grant.owner, e->owner_user_id) != 0)
		return 0;
	return c->workspace[0] == '\0' || strcmp(c->workspace, e->workspace_id) == 0;
}

/*
 * Adds one entry to out, the client's pending chunk, unless the client had
 * it. Returns 1 when the client has too much waiting already: it is fed no
 * more (not even this entry) until the pump sees its backlog drained and
 * lets it catch up from Redis. Entries are sent as one chunk per Redis
 * reply, not one per event: every chunk costs buffer chains of its own.
 */
static int
deliver(Client *c, Entry *e, struct evbuffer *out)
{
	if (e->id <= c->last_sent)
		return 0;
	if (backlog(c) + evbuffer_get_length(out) > MAX_BACKLOG)
	{
		c->live = 0;
		if (c->stalled_since == 0)
			c->stalled_since = time(NULL);
		return 1;
	}
	c->last_sent = e->id;
	if (may_see(c, e))
	{
		entry_text(e);
		evbuffer_add(out, e->text, e->text_len);
	}
	return 0;
}

/* A lagging client's last chunk went out: it catches up at once. */
static void
on_drained(struct evhttp_connection *conn, void *arg)
{
	Client	   *c = find_client((long) (intptr_t) arg);

	if (c != NULL && c->stalled_since != 0 && !c->querying && backlog(c) <= MAX_BACKLOG / 2)
	{
		c->stalled_since = 0;
		catch_up(c);
	}
}

/*
 * Sends what deliver() gathered for the client, as one chunk. For a client
 * that is lagging, libevent calls back once the chunk is written, so a
 * fast reader behind a burst is not held to the pump's pace.
 */
static void
flush(Client *c, struct evbuffer *out)
{
	if (evbuffer_get_length(out) > 0)
	{
		if (c->stalled_since != 0)
			evhttp_send_reply_chunk_with_cb(c->req, out, on_drained, (void *) (intptr_t) c->serial);
		else
			evhttp_send_reply_chunk(c->req, out);
	}
	evbuffer_free(out);
}

/* Live reader ----------------------------------------------------------- */

static void read_live(void);

static void
read_live_later(evutil_socket_t fd, short what, void *arg)
{
	if (live_conn != NULL)
		read_live();
}

static void
on_live(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
	redisReply *r = reply_ptr;

	if (r == NULL)
		return;					/* disconnected: reconnect re-arms the reader */
	if (r->type == REDIS_REPLY_ERROR)
	{
		static struct event *retry;
		struct timeval tv = {RECONNECT_SECONDS, 0};

		/* e.g. NOAUTH: say so and try again in a second, not in a loop */
		fprintf(stderr, "wsctl-sse: Redis refused XREAD: %s\n", r->str ? r->str : "error");
		if (retry == NULL)
			retry = evtimer_new(base, read_live_later, NULL);
		evtimer_add(retry, &tv);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
	{
		redisReply *entries = r->element[0]->element[1];
		Entry	   *parsed = calloc(entries->elements + 1, sizeof(Entry));
		size_t		n = 0;

		for (size_t i = 0; i < entries->elements; i++)
			if (entry_from_reply(entries->element[i], &parsed[n]) == 0)
			{
				if (parsed[n].id > live_last)
					live_last = parsed[n].id;
				n++;
			}
		for (Client *c = clients; c; c = c->next)
		{
			struct evbuffer *out;

			if (!c->live)
				continue;
			out = evbuffer_new();
			for (size_t i = 0; i < n && deliver(c, &parsed[i], out) == 0; i++)
				;
			flush(c, out);
		}
		for (size_t i = 0; i < n; i++)
			free(parsed[i].text);
		free(parsed);
	}
	read_live();
}

static void
read_live(void)
{
	char		from[32];

	snprintf(from, sizeof(from), "%lld-0", live_last < 0 ? 0 : live_last);
	redisAsyncCommand(live_conn, on_live, NULL, "XREAD BLOCK 5000 COUNT 1000 STREAMS %s %s",
					  STREAM_KEY, from);
}

/* The live reader starts after the stream's last entry. */
static void
on_last_entry(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
	redisReply *r = reply_ptr;

	if (r == NULL)
		return;
	if (live_last < 0)
	{
		live_last = 0;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 1)
		{
			Entry		e;

			if (entry_from_reply(r->element[0], &e) == 0)
				live_last = e.id;
		}
		/* clients that came before Redis answered start from here, too */
		for (Client *c = clients; c; c = c->next)
			if (c->from_now && c->last_sent < live_last)
				c->last_sent = live_last;
	}
	read_live();
	for (Client *c = clients; c; c = c->next)
		if (!c->live && !c->querying)
			catch_up(c);
}

/* Catch-up -------------------------------------------------------------- */

static void
on_catch_up(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
	redisReply *r = reply_ptr;
	Client	   *c = find_client((long) (intptr_t) privdata);
	size_t		n = 0;
	struct evbuffer *out;

	if (c == NULL)
		return;
	c->querying = 0;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return;					/* retried when Redis is back */
	n = r->elements;
	out = evbuffer_new();
	for (size_t i = 0; i < r->elements; i++)
	{
		Entry		e;
		int			full;

		if (entry_from_reply(r->element[i], &e) != 0)
			continue;
		full = deliver(c, &e, out);
		free(e.text);
		if (full)
		{
			flush(c, out);
			return;				/* too much waiting: the pump resumes it */
		}
	}
	flush(c, out);
	if (n == 0 && live_last >= 0 && live_last <= c->last_sent)
		c->live = 1;
	else
		catch_up(c);
}

/* A Last-Event-ID older than the stream reaches back is a reset. */
static void
on_first_entry(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
	redisReply *r = reply_ptr;
	Client	   *c = find_client((long) (intptr_t) privdata);
	Entry		e;

	if (c == NULL)
		return;
	c->querying = 0;
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		entry_from_reply(r->element[0], &e) == 0 && e.id > c->last_sent + 1)
	{
		char	   *text;
		int			len = asprintf(&text, "event: reset\ndata: {\"reason\": \"history_trimmed\", \"last_event_id\": %lld, \"oldest_available\": %lld}\n\n",
								  c->last_sent, e.id);

		if (len > 0)
		{
			send_text(c, text, (size_t) len);
			free(text);
		}
	}
	catch_up(c);
}

static void
catch_up(Client *c)
{
	char		from[32];

	if (query_conn == NULL || live_last < 0)
		return;					/* started when Redis answers */
	c->querying = 1;
	snprintf(from, sizeof(from), "%lld-0", c->last_sent + 1);
	redisAsyncCommand(query_conn, on_catch_up, (void *) (intptr_t) c->serial,
					  "XRANGE %s %s + COUNT %s", STREAM_KEY, from, CATCH_UP_BATCH);
}

/* Redis connections --------------------------------------------------------- */

static void
reconnect_later(evutil_socket_t fd, short what, void *arg)
{
	connect_redis();
}

static void
schedule_reconnect(void)
{
	static struct event *timer;
	struct timeval tv = {RECONNECT_SECONDS, 0};

	if (timer == NULL)
		timer = evtimer_new(base, reconnect_later, NULL);
	if (!evtimer_pending(timer, NULL))
		evtimer_add(timer, &tv);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	if (ac == live_conn)
		live_conn = NULL;
	if (ac == query_conn)
		query_conn = NULL;
	for (Client *c = clients; c; c = c->next)
		c->querying = 0;
	fprintf(stderr, "wsctl-sse: Redis connection lost%s%s; reconnecting\n",
			ac->errstr[0] ? ": " : "", ac->errstr);
	schedule_reconnect();
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
	{
		fprintf(stderr, "wsctl-sse: cannot connect to Redis at %s:%d: %s\n",
				redis_host, redis_port, ac->errstr);
		if (ac == live_conn)
			live_conn = NULL;
		if (ac == query_conn)
			query_conn = NULL;
		schedule_reconnect();
	}
}

static redisAsyncContext *
open_conn(void)
{
	redisAsyncContext *ac = redisAsyncConnect(redis_host, redis_port);

	if (ac == NULL || ac->err)
	{
		if (ac)
			redisAsyncFree(ac);
		return NULL;
	}
	redisLibeventAttach(ac, base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (redis_db != 0)
		redisAsyncCommand(ac, NULL, NULL, "SELECT %d", redis_db);
	return ac;
}

static void
connect_redis(void)
{
	if (query_conn == NULL)
		query_conn = open_conn();
	if (live_conn == NULL)
	{
		live_conn = open_conn();
		if (live_conn)
			redisAsyncCommand(live_conn, on_last_entry, NULL, "XREVRANGE %s + - COUNT 1", STREAM_KEY);
	}
	if (live_conn == NULL || query_conn == NULL)
		schedule_reconnect();
}

/* HTTP ------------------------------------------------------------------- */

static void
reply_error(struct evhttp_request *req, int code, const char *reason, const char *message)
{
	struct evbuffer *body = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Access-Control-Allow-Origin", "*");
	evbuffer_add_printf(body, "{\"error\": \"%s\"}\n", message);
	evhttp_send_reply(req, code, reason, body);
	evbuffer_free(body);
}

static int
parse_uuid(const char *s, size_t len, char out[37])
{
	if (len != 36)
		return -1;
	for (size_t i = 0; i < 36; i++)
	{
		int			dash = (i == 8 || i == 13 || i == 18 || i == 23);

		if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
			return -1;
		out[i] = (char) tolower((unsigned char) s[i]);
	}
	out[36] = '\0';
	return 0;
}

static void
handle(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri);
	const char *query = evhttp_uri_get_query(uri);
	struct evkeyvalq params;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *token;
	const char *last_id;
	const char *auth = evhttp_find_header(in, "Authorization");
	char		workspace[37] = "";
	TokenGrant	grant;
	const char *why;
	Client	   *c;
	const char *prefix = "/api/v1/workspaces/";

	if (evhttp_request_get_command(req) == EVHTTP_REQ_OPTIONS)
	{
		evhttp_add_header(out, "Access-Control-Allow-Origin", "*");
		evhttp_add_header(out, "Access-Control-Allow-Headers", "Authorization, Last-Event-ID");
		evhttp_send_reply(req, 204, "No Content", NULL);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
	{
		reply_error(req, 405, "Method Not Allowed", "only GET");
		return;
	}
	if (path == NULL)
		path = "/";
	if (strcmp(path, "/api/v1/events") != 0)
	{
		size_t		plen = strlen(prefix);
		const char *rest = path + plen;
		const char *slash;

		if (strncmp(path, prefix, plen) != 0 || (slash = strchr(rest, '/')) == NULL ||
			strcmp(slash, "/events") != 0)
		{
			reply_error(req, 404, "Not Found", "no such endpoint");
			return;
		}
		if (parse_uuid(rest, (size_t) (slash - rest), workspace) != 0)
		{
			reply_error(req, 400, "Bad Request", "the workspace id is not a uuid");
			return;
		}
	}

	memset(&params, 0, sizeof(params));
	if (evhttp_parse_query_str(query ? query : "", &params) != 0)
	{
		reply_error(req, 400, "Bad Request", "malformed query string");
		return;
	}
	token = evhttp_find_header(&params, "access_token");
	if (token == NULL && auth != NULL && strncmp(auth, "Bearer ", 7) == 0)
		token = auth + 7;
	why = jwt_verify(token, secret, secret_len, time(NULL), &grant);
	if (why != NULL)
	{
		evhttp_add_header(out, "WWW-Authenticate", "Bearer");
		reply_error(req, 401, "Unauthorized", why);
		evhttp_clear_headers(&params);
		return;
	}
	last_id = evhttp_find_header(in, "Last-Event-ID");
	if (last_id == NULL)
		last_id = evhttp_find_header(&params, "last_event_id");

	c = calloc(1, sizeof(Client));
	c->serial = next_serial++;
	c->req = req;
	c->grant = grant;
	memcpy(c->workspace, workspace, sizeof(workspace));
	if (last_id != NULL)
	{
		char	   *end;
		long long	v = strtoll(last_id, &end, 10);

		if (*last_id == '\0' || *end != '\0' || v < 0)
		{
			free(c);
			evhttp_clear_headers(&params);
			reply_error(req, 400, "Bad Request", "Last-Event-ID is not an event id");
			return;
		}
		c->last_sent = v;
	}
	else
	{
		c->from_now = 1;
		c->last_sent = live_last;	/* from now on (set when Redis first answers) */
	}
	if (c->last_sent < 0)
		c->last_sent = 0;
	evhttp_clear_headers(&params);

	evhttp_add_header(out, "Content-Type", "text/event-stream");
	evhttp_add_header(out, "Cache-Control", "no-cache");
	evhttp_add_header(out, "Access-Control-Allow-Origin", "*");
	evhttp_add_header(out, "X-Accel-Buffering", "no");
	evhttp_send_reply_start(req, 200, "OK");
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), client_closed,
								  (void *) (intptr_t) c->serial);
	c->next = clients;
	clients = c;
	send_text(c, ": connected\n\n", 13);
	if (last_id != NULL && query_conn != NULL && live_last >= 0)
	{
		c->querying = 1;
		redisAsyncCommand(query_conn, on_first_entry, (void *) (intptr_t) c->serial,
						  "XRANGE %s - + COUNT 1", STREAM_KEY);
	}
	else
		catch_up(c);
}

static void
heartbeat(evutil_socket_t fd, short what, void *arg)
{
	for (Client *c = clients; c; c = c->next)
		if (backlog(c) < MAX_BACKLOG)
			send_text(c, ": heartbeat\n\n", 13);
}

/*
 * Lagging clients: one whose backlog has drained catches up from Redis;
 * one stuck over MAX_BACKLOG for STALL_SECONDS is disconnected.
 */
static void
pump(evutil_socket_t fd, short what, void *arg)
{
	time_t		now = time(NULL);
	Client	   *c = clients;

	while (c)
	{
		Client	   *next = c->next;

		if (c->grant.expires <= now)
		{
			if (backlog(c) > MAX_BACKLOG)
				evhttp_connection_free(evhttp_request_get_connection(c->req));	/* runs client_closed */
			else
			{
				send_text(c, "event: token_expired\ndata: {}\n\n", 31);
				evhttp_send_reply_end(c->req);
				remove_client(c);	/* the connection ends after the flush */
			}
			c = next;
			continue;
		}
		if (c->stalled_since != 0)
		{
			if (backlog(c) <= MAX_BACKLOG / 2)
			{
				c->stalled_since = 0;
				if (!c->querying)
					catch_up(c);
			}
			else if (now - c->stalled_since >= STALL_SECONDS)
			{
				fprintf(stderr, "wsctl-sse: a client read nothing for %d s with %zu bytes waiting: disconnected\n",
						STALL_SECONDS, backlog(c));
				evhttp_connection_free(evhttp_request_get_connection(c->req));	/* runs client_closed */
			}
		}
		c = next;
	}
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	fprintf(stderr, "wsctl-sse: signal %d, stopping\n", (int) sig);
	event_base_loopexit(base, NULL);
}

/* Options ------------------------------------------------------------------ */

static void
parse_redis_url(const char *url)
{
	const char *p;
	char	   *copy;
	char	   *slash;
	char	   *colon;

	if (strncmp(url, "redis://", 8) != 0)
		die("--redis must be redis://HOST[:PORT][/DB]");
	p = url + 8;
	if (strchr(p, '@'))
		p = strchr(p, '@') + 1;	/* a password is not supported here: use ACLs on loopback */
	copy = strdup(p);
	slash = strchr(copy, '/');
	if (slash)
	{
		*slash = '\0';
		redis_db = atoi(slash + 1);
	}
	colon = strrchr(copy, ':');
	if (colon)
	{
		*colon = '\0';
		redis_port = atoi(colon + 1);
		if (redis_port <= 0 || redis_port > 65535)
			die("--redis: bad port");
	}
	if (*copy == '\0')
		die("--redis: no host");
	redis_host = copy;
}

static void
read_secret(const char *file)
{
	FILE	   *f = fopen(file, "rb");
	static unsigned char buf[4096];
	size_t		n;

	if (f == NULL)
	{
		fprintf(stderr, "wsctl-sse: cannot read %s: %s\n", file, strerror(errno));
		exit(1);
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0)
		die("the secret file is empty");
	secret = buf;
	secret_len = n;
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"listen", required_argument, NULL, 'l'},
		{"redis", required_argument, NULL, 'r'},
		{"secret-file", required_argument, NULL, 's'},
		{"heartbeat", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *listen_on = "127.0.0.1:8090";
	const char *secret_file = NULL;
	char	   *host;
	char	   *colon;
	int			port;
	int			opt;
	struct evhttp *http;
	struct event *hb;
	struct event *pumper;
	struct timeval pump_tv = {0, PUMP_MS * 1000};
	struct event *sigterm;
	struct event *sigint;
	struct timeval tv;

	parse_redis_url("redis://127.0.0.1:6379/0");
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1)
	{
		switch (opt)
		{
			case 'l':
				listen_on = optarg;
				break;
			case 'r':
				parse_redis_url(optarg);
				break;
			case 's':
				secret_file = optarg;
				break;
			case 'b':
				heartbeat_seconds = atoi(optarg);
				if (heartbeat_seconds <= 0)
					die("--heartbeat must be a positive number of seconds");
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (secret_file == NULL)
	{
		usage(stderr);
		die("--secret-file is required");
	}
	read_secret(secret_file);
	host = strdup(listen_on);
	colon = strrchr(host, ':');
	if (colon == NULL)
		die("--listen must be ADDRESS:PORT");
	*colon = '\0';
	port = atoi(colon + 1);
	if (port <= 0 || port > 65535)
		die("--listen: bad port");

	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	http = evhttp_new(base);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_POST);
	evhttp_set_gencb(http, handle, NULL);
	if (evhttp_bind_socket(http, host, (ev_uint16_t) port) != 0)
	{
		fprintf(stderr, "wsctl-sse: cannot listen on %s\n", listen_on);
		return 1;
	}
	tv.tv_sec = heartbeat_seconds;
	tv.tv_usec = 0;
	hb = event_new(base, -1, EV_PERSIST, heartbeat, NULL);
	event_add(hb, &tv);
	pumper = event_new(base, -1, EV_PERSIST, pump, NULL);
	event_add(pumper, &pump_tv);
	sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
	sigint = evsignal_new(base, SIGINT, on_signal, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	connect_redis();
	fprintf(stderr, "wsctl-sse: listening on %s, Redis %s:%d/%d\n", listen_on, redis_host,
			redis_port, redis_db);
	event_base_dispatch(base);

	while (clients)
	{
		Client	   *c = clients;

		clients = c->next;
		free(c);
	}
	evhttp_free(http);
	fprintf(stderr, "wsctl-sse: stopped\n");
	return 0;
}
