/*
 * curl_stream.h: one HTTP transfer driven a piece at a time, so that an
 * archive flows from one server to another through a bounded buffer.
 *
 * A download is read with curl_stream_read() as libarchive asks for bytes;
 * an upload is fed with curl_stream_write() as libarchive produces them
 * (sent with chunked encoding). Each stream has its own curl multi handle
 * and is only ever driven from the caller's loop, never from inside
 * another transfer's callback. Neither call throws for a transport
 * problem: it returns failure and curl_stream_error() says why.
 */
#ifndef WSCTL_CURL_STREAM_H
#define WSCTL_CURL_STREAM_H

#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"

typedef struct CurlStream CurlStream;

/* Where a stream connects: unix_socket_path NULL for TCP. */
typedef struct CurlStreamTarget
{
	const char *method;			/* GET for a download; PUT for an upload */
	const char *url;
	const char *unix_socket_path;
	struct curl_slist *headers;	/* not freed by the stream */
	const char *what;			/* names the transfer in messages */
} CurlStreamTarget;

extern CurlStream *curl_stream_open_download(const CurlStreamTarget *target);
extern CurlStream *curl_stream_open_upload(const CurlStreamTarget *target);

/* Download: up to len bytes; 0 at the end of a successful body; -1 on failure. */
extern ssize_t curl_stream_read(CurlStream *s, char *buf, size_t len);

/* Upload: false when the transfer failed or the server already answered. */
extern bool curl_stream_write(CurlStream *s, const char *buf, size_t len);

/* Upload: ends the body and waits for the answer. Download: waits for the end. */
extern bool curl_stream_finish(CurlStream *s);

/* HTTP status (0 before headers or without an answer). */
extern long curl_stream_status(CurlStream *s);

/* Why the stream failed: a transport error, or the server's error body. */
extern const char *curl_stream_error(CurlStream *s);

/* Whether the transfer has failed (so far). */
extern bool curl_stream_failed(CurlStream *s);

/* Whether the failure was a connection that could not be made at all. */
extern bool curl_stream_connect_failed(CurlStream *s);

/* Bytes moved so far (body bytes read or sent). */
extern int64 curl_stream_bytes(CurlStream *s);

extern void curl_stream_close(CurlStream *s);

#endif							/* WSCTL_CURL_STREAM_H */
