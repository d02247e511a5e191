/*
 * s3_sigv4.h: AWS Signature Version 4 for wsctl's S3 client.
 */
#ifndef WSCTL_S3_SIGV4_H
#define WSCTL_S3_SIGV4_H

#include "postgres.h"

typedef struct SigV4Header
{
	const char *name;
	const char *value;
} SigV4Header;

typedef struct SigV4Request
{
	const char *method;
	const char *path;			/* not yet encoded: "/bucket/archives/x y" */
	const char *query;			/* not yet encoded "k=v&k2=v2", or "" */
	const SigV4Header *headers; /* every header to sign, host and x-amz-date included */
	int			nheaders;
	const char *payload_hash;	/* lowercase hex SHA-256, or UNSIGNED-PAYLOAD */
} SigV4Request;

typedef struct SigV4Key
{
	const char *access_key;
	const char *secret_key;
	const char *region;
	const char *service;
} SigV4Key;

/* The Authorization header's value; canonical request and string to sign on request. */
extern char *sigv4_authorization(const SigV4Request *req, const SigV4Key *key,
								 const char *amz_date, char **canonical_request,
								 char **string_to_sign);
extern char *sigv4_canonical_query(const char *query);
extern char *sigv4_uri_encode(const char *s, bool keep_slash);
extern char *sigv4_sha256_hex(const void *data, size_t len);

#endif							/* WSCTL_S3_SIGV4_H */
