/*
 * http.h: shared libcurl plumbing for wsctl's outbound HTTP (Docker, S3).
 *
 * One blocking request at a time per process, on a lazily created CURL easy
 * handle that is kept for the life of the process so that connections are
 * reused. http_perform() never throws for a transport or HTTP problem: it
 * reports it in the returned HttpResponse. Memory comes from
 * CurrentMemoryContext. Nothing here logs URLs, headers or bodies, so
 * credentials carried in headers never reach the server log.
 */
#ifndef WSCTL_HTTP_H
#define WSCTL_HTTP_H

#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"

/* Defaults callers may use for HttpRequest's timeouts. */
#define HTTP_CONNECT_TIMEOUT_MS		5000L
#define HTTP_DEFAULT_TIMEOUT_MS		30000L
#define HTTP_LONG_TIMEOUT_MS		120000L

/* Cap on a buffered response body when max_response_bytes is 0. */
#define HTTP_DEFAULT_MAX_RESPONSE	((size_t) 64 * 1024 * 1024)

typedef struct HttpRequest
{
	const char *method;			/* "GET", "POST", "PUT", "DELETE", "HEAD" */
	const char *url;			/* full URL, host as a literal address */
	const char *unix_socket_path;	/* connect here instead of the URL's host;
									 * NULL for TCP */
	struct curl_slist *headers; /* extra request headers, or NULL; not freed */
	const char *body;			/* request body bytes, or NULL for none */
	size_t		body_len;
	long		connect_timeout_ms; /* 0 means HTTP_CONNECT_TIMEOUT_MS */
	long		timeout_ms;		/* whole request; 0: HTTP_DEFAULT_TIMEOUT_MS */
	size_t		max_response_bytes; /* 0 means HTTP_DEFAULT_MAX_RESPONSE */
} HttpRequest;

typedef struct HttpResponse
{
	bool		ok;				/* an HTTP response was received */
	CURLcode	curl_code;		/* CURLE_OK when ok */
	int			os_errno;		/* errno of a failed connect, or 0 */
	char	   *error;			/* one-line transport error, NULL when ok */
	long		status;			/* HTTP status, 0 when !ok */
	StringInfo	body;			/* response body, never NULL */
	StringInfo	headers;		/* raw header lines of the final response */
} HttpResponse;

extern HttpResponse http_perform(const HttpRequest *request);

/*
 * A request that runs while the caller does other work: started, advanced
 * by http_async_pump() whenever the caller has a moment (it never blocks),
 * and collected by http_async_finish(), which waits for the end. It has a
 * connection of its own; the request, its headers and its body must stay
 * valid until finish. Interrupts stop it as they stop http_perform().
 */
typedef struct HttpAsync HttpAsync;

extern HttpAsync *http_async_start(const HttpRequest *request);
extern bool http_async_pump(HttpAsync *async);	/* true once it has ended */
extern HttpResponse http_async_finish(HttpAsync *async);

/* Percent-encode a string for use in a URL path segment or query value. */
extern char *http_escape(const char *str);

/* Whether host (as in a URL, IPv6 in brackets) is a loopback literal. */
extern bool http_host_is_loopback(const char *host);

#endif							/* WSCTL_HTTP_H */
