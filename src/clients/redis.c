/*
 * redis.c: wsctl's thin Redis client.
 *
 * wsctl.redis_url is redis://[:password@]host[:port][/db]. The connection
 * is opened on first use with a connect timeout, every command has a
 * timeout, and any transport error drops the connection so that the next
 * command reconnects (Redis restarts are routine). Only the worker that
 * calls this keeps a connection; nothing here is shared between processes.
 */
#include "postgres.h"

#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "utils/memutils.h"

#include "metrics.h"
#include "redis.h"

#define REDIS_CONNECT_TIMEOUT_MS 2000
#define REDIS_COMMAND_TIMEOUT_MS 5000

typedef struct RedisEndpoint
{
	char	   *host;
	int			port;
	char	   *password;		/* NULL: no AUTH */
	int			db;
} RedisEndpoint;

static redisContext *conn = NULL;
static char *conn_url = NULL;	/* the URL conn was opened with */
static char *conn_where = NULL;	/* its host:port, for messages */

static struct timeval
ms_to_timeval(int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

static RedisResult
redis_result(RedisStatus status, char *message)
{
	RedisResult r = {status, message};

	return r;
}

/* Parses redis://[:password@]host[:port][/db]; false with *error on nonsense. */
static bool
parse_url(const char *url, RedisEndpoint *ep, char **error)
{
	const char *p;
	const char *at;
	const char *slash;
	const char *colon;
	char	   *hostport;

	memset(ep, 0, sizeof(*ep));
	ep->port = 6379;
	if (url == NULL || strncmp(url, "redis://", 8) != 0)
	{
		*error = "wsctl.redis_url must start with redis://";
		return false;
	}
	p = url + 8;
	at = strrchr(p, '@');
	if (at != NULL)
	{
		const char *pw = memchr(p, ':', at - p);

		if (pw != NULL)
			ep->password = pnstrdup(pw + 1, at - pw - 1);
		p = at + 1;
	}
	slash = strchr(p, '/');
	hostport = slash ? pnstrdup(p, slash - p) : pstrdup(p);
	if (slash != NULL && slash[1] != '\0')
	{
		char	   *end;
		long		db = strtol(slash + 1, &end, 10);

		if (*end != '\0' || db < 0 || db > 65535)
		{
			*error = "the database number in wsctl.redis_url is not a number";
			return false;
		}
		ep->db = (int) db;
	}
	colon = strrchr(hostport, ':');
	if (colon != NULL)
	{
		char	   *end;
		long		port = strtol(colon + 1, &end, 10);

		if (*end != '\0' || port <= 0 || port > 65535)
		{
			*error = "the port in wsctl.redis_url is not a port number";
			return false;
		}
		ep->port = (int) port;
		hostport[colon - hostport] = '\0';
	}
	if (hostport[0] == '\0')
	{
		*error = "wsctl.redis_url names no host";
		return false;
	}
	ep->host = hostport;
	return true;
}

void
wsctl_redis_disconnect(void)
{
	if (conn != NULL)
		redisFree(conn);
	conn = NULL;
	if (conn_url != NULL)
		pfree(conn_url);
	if (conn_where != NULL)
		pfree(conn_where);
	conn_url = conn_where = NULL;
}

/*
 * Sends one command on the open connection and classifies the answer: no
 * reply drops the connection (REDIS_UNREACHABLE), an error reply is
 * REDIS_REFUSED. On success the reply is handed to the caller in *reply
 * (who frees it) or freed here when reply is NULL.
 */
static RedisResult
send_command_uncounted(int argc, const char **argv, const char *where, redisReply **reply)
{
	redisReply *r = redisCommandArgv(conn, argc, argv, NULL);
	RedisResult result;

	if (reply != NULL)
		*reply = NULL;
	if (r == NULL)
	{
		result = redis_result(REDIS_UNREACHABLE,
							  psprintf("Redis at %s: %s: %s", where, argv[0],
									   conn->errstr[0] ? conn->errstr : "connection lost"));
		wsctl_redis_disconnect();
		return result;
	}
	if (r->type == REDIS_REPLY_ERROR)
	{
		result = redis_result(REDIS_REFUSED, psprintf("Redis at %s: %s: %s", where, argv[0],
													  r->str ? r->str : "error"));
		freeReplyObject(r);
		return result;
	}
	if (reply != NULL)
		*reply = r;
	else
		freeReplyObject(r);
	return redis_result(REDIS_OK_STATUS, NULL);
}

/* Every command goes through here, counted for wsctl.metrics. */
static RedisResult
send_command(int argc, const char **argv, const char *where, redisReply **reply)
{
	RedisResult r = send_command_uncounted(argc, argv, where, reply);

	wsctl_metrics_call(WSCTL_SERVICE_REDIS, r.status != REDIS_OK_STATUS);
	return r;
}

/* Opens the connection if there is none (or the URL changed with a reload). */
static RedisResult
ensure_connected(char **where)
{
	RedisEndpoint ep;
	char	   *error = NULL;
	RedisResult r;

	if (conn != NULL && conn_url != NULL && wsctl_redis_url != NULL &&
		strcmp(conn_url, wsctl_redis_url) == 0)
	{
		*where = conn_where;
		return redis_result(REDIS_OK_STATUS, NULL);
	}
	wsctl_redis_disconnect();
	if (!parse_url(wsctl_redis_url, &ep, &error))
		return redis_result(REDIS_REFUSED, pstrdup(error));
	*where = psprintf("%s:%d", ep.host, ep.port);

	conn = redisConnectWithTimeout(ep.host, ep.port, ms_to_timeval(REDIS_CONNECT_TIMEOUT_MS));
	if (conn == NULL || conn->err)
	{
		wsctl_metrics_call(WSCTL_SERVICE_REDIS, true);	/* the connection is the call that failed */
		r = redis_result(REDIS_UNREACHABLE,
						 psprintf("Redis at %s: cannot connect: %s", *where,
								  conn ? conn->errstr : "out of memory"));
		wsctl_redis_disconnect();
		return r;
	}
	if (redisSetTimeout(conn, ms_to_timeval(REDIS_COMMAND_TIMEOUT_MS)) != REDIS_OK)
	{
		r = redis_result(REDIS_UNREACHABLE, psprintf("Redis at %s: cannot set a timeout", *where));
		wsctl_redis_disconnect();
		return r;
	}
	if (ep.password != NULL)
	{
		const char *auth[2] = {"AUTH", ep.password};

		r = send_command(2, auth, *where, NULL);
		if (r.status != REDIS_OK_STATUS)
		{
			wsctl_redis_disconnect();
			return redis_result(r.status, psprintf("Redis at %s: AUTH failed", *where));
		}
	}
	if (ep.db != 0)
	{
		const char *select[2] = {"SELECT", psprintf("%d", ep.db)};

		r = send_command(2, select, *where, NULL);
		if (r.status != REDIS_OK_STATUS)
		{
			wsctl_redis_disconnect();
			return r;
		}
	}
	conn_url = MemoryContextStrdup(TopMemoryContext, wsctl_redis_url);
	conn_where = MemoryContextStrdup(TopMemoryContext, *where);
	return redis_result(REDIS_OK_STATUS, NULL);
}

/*
 * Runs a command whose reply is an integer (INCR, PTTL, EVAL of a script
 * that returns a number); a nil reply reads as 0.
 */
RedisResult
wsctl_redis_integer(int argc, const char **argv, long long *value)
{
	char	   *where = NULL;
	RedisResult r = ensure_connected(&where);
	redisReply *reply;

	*value = 0;
	if (r.status == REDIS_OK_STATUS)
		r = send_command(argc, argv, where, &reply);
	if (r.status != REDIS_OK_STATUS)
		return r;
	if (reply->type == REDIS_REPLY_INTEGER)
		*value = reply->integer;
	else if (reply->type == REDIS_REPLY_STRING)
		*value = strtoll(reply->str, NULL, 10);
	freeReplyObject(reply);
	return r;
}

/*
 * The value of one field of one stream entry (XRANGE key id id), or *value
 * NULL when the entry or the field does not exist.
 */
RedisResult
wsctl_redis_stream_field(const char *key, const char *entry_id, const char *field,
						 char **value)
{
	char	   *where = NULL;
	RedisResult r = ensure_connected(&where);
	const char *argv[4] = {"XRANGE", key, entry_id, entry_id};
	redisReply *reply;

	*value = NULL;
	if (r.status == REDIS_OK_STATUS)
		r = send_command(lengthof(argv), argv, where, &reply);
	if (r.status != REDIS_OK_STATUS)
		return r;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
		reply->element[0]->type == REDIS_REPLY_ARRAY &&
		reply->element[0]->elements == 2 &&
		reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
	{
		redisReply *fields = reply->element[0]->element[1];

		for (size_t i = 0; i + 1 < fields->elements; i += 2)
			if (fields->element[i]->type == REDIS_REPLY_STRING &&
				strcmp(fields->element[i]->str, field) == 0 &&
				fields->element[i + 1]->type == REDIS_REPLY_STRING)
				*value = pnstrdup(fields->element[i + 1]->str, fields->element[i + 1]->len);
	}
	freeReplyObject(reply);
	return r;
}

/*
 * Runs one command. REDIS_UNREACHABLE drops the connection (the next call
 * reconnects); REDIS_REFUSED is Redis's own error reply, in message.
 */
RedisResult
wsctl_redis_command(int argc, const char **argv)
{
	char	   *where = NULL;
	RedisResult r = ensure_connected(&where);

	if (r.status != REDIS_OK_STATUS)
		return r;
	return send_command(argc, argv, where, NULL);
}
