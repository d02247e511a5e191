/*
 * jwt.h: verification of the HS256 tokens wsctl.sse_token() mints.
 */
#ifndef WSCTL_SSE_JWT_H
#define WSCTL_SSE_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* What a valid token grants: one owner's workspaces, or all of them. */
typedef struct TokenGrant
{
	bool		all;			/* sub = "*" */
	char		owner[37];		/* the owner uuid when !all */
	time_t		expires;
} TokenGrant;

/* Returns NULL and fills grant when token is valid now; else why not. */
extern const char *jwt_verify(const char *token, const unsigned char *secret,
							  size_t secret_len, time_t now, TokenGrant *grant);

#endif
