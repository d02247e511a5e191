/*
 * s3.h: wsctl's S3 client (path-style requests, AWS Signature Version 4).
 *
 * Like the Docker client, nothing here throws for a storage-side problem:
 * every call returns an S3Result whose kind tells the caller how to
 * classify the failure (SPEC 5.1: S3_ACCESS_ERROR is Unreachable, retried).
 * Messages name the method and the key, never a credential. Calls are made
 * outside any transaction. Memory comes from CurrentMemoryContext.
 */
#ifndef WSCTL_S3_H
#define WSCTL_S3_H

#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

typedef enum S3ResultKind
{
	S3_OK = 0,
	S3_NOT_FOUND,				/* 404: NoSuchKey, NoSuchUpload */
	S3_UNREACHABLE,				/* no answer, timeout, HTTP 5xx */
	S3_DENIED,					/* 403: wrong key or secret, no permission */
	S3_FAILED					/* any other refusal, or a setting is wrong */
} S3ResultKind;

typedef struct S3Result
{
	S3ResultKind kind;
	long		http_status;	/* 0 when there was no HTTP answer */
	char	   *s3_code;		/* S3's <Code>, e.g. SignatureDoesNotMatch, or NULL */
	char	   *message;		/* one line, never NULL when kind != S3_OK */
} S3Result;

/* One object of a listing. */
typedef struct S3Object
{
	char	   *key;
	int64		size;
} S3Object;

/* A signed request the caller performs itself (streamed GET). */
typedef struct S3SignedRequest
{
	char	   *url;
	struct curl_slist *headers;	/* caller frees with curl_slist_free_all */
} S3SignedRequest;

/* Settings (GUC variables, defined in wsctl.c). */
extern char *wsctl_s3_endpoint;
extern char *wsctl_s3_bucket;
extern char *wsctl_s3_region;
extern char *wsctl_s3_access_key;
extern char *wsctl_s3_secret_key;

extern S3Result s3_head(const char *key, bool *exists, int64 *size);
extern S3Result s3_put(const char *key, const char *body, size_t len);
extern S3Result s3_get_small(const char *key, size_t max_bytes, StringInfo *body);
extern S3Result s3_delete(const char *key);
extern S3Result s3_list(const char *prefix, const char *continuation,
						List **objects, char **next_continuation);

extern S3Result s3_multipart_create(const char *key, char **upload_id);
extern S3Result s3_multipart_upload_part(const char *key, const char *upload_id,
										 int part_number, const char *body,
										 size_t len, char **etag);

/*
 * A part uploaded while the caller produces the next one: start, pump when
 * convenient (never blocks; true once it has ended), finish (waits). The
 * body must stay valid until finish.
 */
typedef struct S3PartUpload S3PartUpload;

extern S3PartUpload *s3_multipart_upload_part_start(const char *key, const char *upload_id,
													int part_number, const char *body, size_t len);
extern bool s3_multipart_upload_part_pump(S3PartUpload *upload);
extern S3Result s3_multipart_upload_part_finish(S3PartUpload *upload, char **etag);
extern S3Result s3_multipart_complete(const char *key, const char *upload_id,
									  List *etags);
extern S3Result s3_multipart_abort(const char *key, const char *upload_id);

extern S3Result s3_sign_get(const char *key, S3SignedRequest *out);

/* Counts of requests and failures made by this process (metrics). */
extern uint64 s3_request_count(void);

#endif							/* WSCTL_S3_H */
