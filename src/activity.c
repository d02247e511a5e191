/*
 * activity.c: the connection counters the proxy keeps in Redis (SPEC
 * section 10), called from wsctl.activity_connect / activity_disconnect.
 *
 * Both run as one Lua script each, so a counter and its idle timer change
 * together: connect = INCR ws_conn:{id} and DEL idle_timer:{id};
 * disconnect = DECR ws_conn:{id} (never below 0) and, at 0,
 * SETEX idle_timer:{id} <the workspace's standby_ttl_seconds>.
 * Redis unreachable is SQLSTATE WS503: the caller can tell "try again" from
 * a bug, and nothing else in wsctl depends on Redis being up.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "redis.h"

PG_FUNCTION_INFO_V1(wsctl_redis_activity);

static const char *const connect_script =
"local n = redis.call('INCR', KEYS[1]) "
"redis.call('DEL', KEYS[2]) "
"return n";

static const char *const disconnect_script =
"local n = redis.call('DECR', KEYS[1]) "
"if n <= 0 then "
"  redis.call('SET', KEYS[1], 0) "
"  redis.call('SETEX', KEYS[2], ARGV[1], '1') "
"  return 0 "
"end "
"return n";

Datum
wsctl_redis_activity(PG_FUNCTION_ARGS)
{
	char	   *id = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));
	bool		connect = PG_GETARG_BOOL(1);
	int32		idle_seconds = PG_GETARG_INT32(2);
	const char *argv[6];
	long long	count;
	RedisResult r;

	argv[0] = "EVAL";
	argv[1] = connect ? connect_script : disconnect_script;
	argv[2] = "2";
	argv[3] = psprintf("ws_conn:%s", id);
	argv[4] = psprintf("idle_timer:%s", id);
	argv[5] = psprintf("%d", idle_seconds > 0 ? idle_seconds : 1);
	r = wsctl_redis_integer(connect ? 5 : 6, argv, &count);
	if (r.status == REDIS_UNREACHABLE)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('W', 'S', '5', '0', '3')),
				 errmsg("Redis is unavailable: the %s of workspace %s was not recorded",
						connect ? "connection" : "disconnection", id),
				 errdetail("%s", r.message),
				 errhint("Retry when Redis is back; workspaces keep running meanwhile.")));
	if (r.status != REDIS_OK_STATUS)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("Redis refused the activity update of workspace %s", id),
				 errdetail("%s", r.message)));
	PG_RETURN_INT32((int32) Min(count, PG_INT32_MAX));
}
