/*
 * redis.h: wsctl's thin Redis client (hiredis, synchronous, with timeouts).
 *
 * One connection per process, opened on first use from wsctl.redis_url and
 * dropped after any transport error, so the next call reconnects. Errors
 * name the host and port, never the password.
 */
#ifndef WSCTL_REDIS_H
#define WSCTL_REDIS_H

#include "postgres.h"

typedef enum RedisStatus
{
	REDIS_OK_STATUS = 0,
	REDIS_UNREACHABLE,			/* cannot connect, timeout, connection lost */
	REDIS_REFUSED				/* Redis answered with an error reply */
} RedisStatus;

typedef struct RedisResult
{
	RedisStatus status;
	char	   *message;		/* palloc'd, for logs and last_error */
} RedisResult;

extern char *wsctl_redis_url;

extern RedisResult wsctl_redis_command(int argc, const char **argv);
extern RedisResult wsctl_redis_integer(int argc, const char **argv, long long *value);
extern RedisResult wsctl_redis_stream_field(const char *key, const char *entry_id,
											const char *field, char **value);
extern void wsctl_redis_disconnect(void);

#endif							/* WSCTL_REDIS_H */
