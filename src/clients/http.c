/*
 * http.c: shared libcurl plumbing for wsctl's outbound HTTP (Docker, S3).
 *
 * Each process keeps one CURL easy handle, created on first use and reset
 * (not destroyed) between requests, so that libcurl's connection cache
 * survives and a request to the same server reuses its connection.
 *
 * The code runs in background workers: libcurl must never raise signals
 * (CURLOPT_NOSIGNAL), every transfer has a connect and a total timeout, and
 * a pending SIGTERM or query cancel, or the postmaster's death, stops a
 * transfer within about a second (progress callback). PostgreSQL errors are
 * never thrown through libcurl's stack: callbacks catch them and stop the
 * transfer instead. Proxies from the environment are ignored and redirects
 * are not followed, so a request only ever goes where its URL says.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "http.h"
#include "miscadmin.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"

/*
 * Newest libcurl feature relied on: CURLOPT_PROTOCOLS_STR (7.85.0). Others:
 * CURLOPT_UNIX_SOCKET_PATH (7.40.0), CURLOPT_XFERINFOFUNCTION (7.32.0),
 * curl_easy_escape with a NULL handle (7.82.0). Debian 12 has 7.88.1.
 */
StaticAssertDecl(LIBCURL_VERSION_NUM >= 0x075500,
				 "wsctl needs libcurl 7.85.0 or later");

/* Response headers are small; a server sending more than this is broken. */
#define HTTP_MAX_HEADER_BYTES	((size_t) 1024 * 1024)

/* The process's easy handle; its connection cache outlives each request. */
static CURL *http_handle = NULL;
static bool http_global_done = false;

/* State shared with libcurl's callbacks during one transfer. */
typedef struct HttpTransfer
{
	HttpResponse *response;
	size_t		max_response_bytes;
	const char *upload;			/* request body sent through http_read_body */
	size_t		upload_len;
	size_t		upload_pos;
	const char *abort_reason;	/* why a callback stopped the transfer */
	const char *failed_option;	/* name of a curl_easy_setopt that failed */
	char		errbuf[CURL_ERROR_SIZE];
} HttpTransfer;

/*
 * Set one libcurl option, and on failure remember which one and return the
 * CURLcode from the enclosing function (which must return CURLcode).
 */
#define HTTP_SETOPT(handle, xfer, option, value) \
	do { \
		CURLcode	setopt_rc_ = curl_easy_setopt((handle), (option), (value)); \
		if (setopt_rc_ != CURLE_OK) \
		{ \
			(xfer)->failed_option = #option; \
			return setopt_rc_; \
		} \
	} while (0)

/* The process's handle, created (with libcurl's global state) on first use. */
static CURL *
http_get_handle(void)
{
	if (http_handle != NULL)
		return http_handle;
	if (!http_global_done)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return NULL;
		http_global_done = true;
	}
	http_handle = curl_easy_init();
	return http_handle;
}

/*
 * Append received bytes to buf without letting a PostgreSQL error unwind
 * through libcurl: on overflow of cap or out of memory, record why and
 * return false so the callback can stop the transfer.
 */
static bool
http_append(HttpTransfer *xfer, StringInfo buf, const char *data, size_t len,
			size_t cap)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	cap = Min(cap, (size_t) MaxAllocSize - 1);
	if (len > cap || (size_t) buf->len > cap - len)
	{
		xfer->abort_reason = "response too large";
		return false;
	}

	PG_TRY();
	{
		appendBinaryStringInfo(buf, data, (int) len);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		xfer->abort_reason = "out of memory while reading the response";
		ok = false;
	}
	PG_END_TRY();

	return ok;
}

static size_t
http_write_body(char *data, size_t size, size_t nmemb, void *arg)
{
	HttpTransfer *xfer = (HttpTransfer *) arg;
	size_t		len = size * nmemb;

	if (!http_append(xfer, xfer->response->body, data, len,
					 xfer->max_response_bytes))
		return 0;				/* anything but len makes libcurl stop */
	return len;
}

/*
 * Keep the header lines of the final response only: a new status line (after
 * "100 Continue", say) starts the block over.
 */
static size_t
http_write_header(char *data, size_t size, size_t nmemb, void *arg)
{
	HttpTransfer *xfer = (HttpTransfer *) arg;
	size_t		len = size * nmemb;

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
		resetStringInfo(xfer->response->headers);
	if (!http_append(xfer, xfer->response->headers, data, len,
					 HTTP_MAX_HEADER_BYTES))
		return 0;
	return len;
}

/* Feeds the request body of an upload (PUT and the like). */
static size_t
http_read_body(char *dest, size_t size, size_t nitems, void *arg)
{
	HttpTransfer *xfer = (HttpTransfer *) arg;
	size_t		n = Min(size * nitems, xfer->upload_len - xfer->upload_pos);

	memcpy(dest, xfer->upload + xfer->upload_pos, n);
	xfer->upload_pos += n;
	return n;
}

/*
 * Lets libcurl rewind an upload, which it does when it resends a request on
 * a fresh connection because a reused one was closed by the server.
 */
static int
http_seek_body(void *arg, curl_off_t offset, int origin)
{
	HttpTransfer *xfer = (HttpTransfer *) arg;

	if (origin != SEEK_SET || offset < 0 || (size_t) offset > xfer->upload_len)
		return CURL_SEEKFUNC_CANTSEEK;
	xfer->upload_pos = (size_t) offset;
	return CURL_SEEKFUNC_OK;
}

/*
 * Called by libcurl at least once a second: stops the transfer when the
 * process has been asked to die or cancel, or the postmaster is gone, so a
 * slow server never delays shutdown by a whole request timeout.
 */
static int
http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			  curl_off_t ultotal, curl_off_t ulnow)
{
	HttpTransfer *xfer = (HttpTransfer *) arg;

	(void) dltotal;
	(void) dlnow;
	(void) ultotal;
	(void) ulnow;
	if (ProcDiePending || QueryCancelPending)
	{
		xfer->abort_reason = "interrupted";
		return 1;
	}
	if (!PostmasterIsAlive())
	{
		xfer->abort_reason = "postmaster died";
		return 1;
	}
	return 0;
}

/* Sets the request method and, if any, the request body. */
static CURLcode
http_set_method(CURL *h, const HttpRequest *req, HttpTransfer *xfer)
{
	const char *m = req->method;

	if (req->body == NULL)
	{
		if (strcmp(m, "GET") == 0)
			HTTP_SETOPT(h, xfer, CURLOPT_HTTPGET, 1L);
		else if (strcmp(m, "HEAD") == 0)
			HTTP_SETOPT(h, xfer, CURLOPT_NOBODY, 1L);
		else if (strcmp(m, "POST") == 0)
		{
			HTTP_SETOPT(h, xfer, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
			HTTP_SETOPT(h, xfer, CURLOPT_POSTFIELDS, "");
		}
		else
			HTTP_SETOPT(h, xfer, CURLOPT_CUSTOMREQUEST, m);
		return CURLE_OK;
	}

	if (strcmp(m, "POST") == 0)
	{
		/* size first, so that libcurl does not strlen() the body */
		HTTP_SETOPT(h, xfer, CURLOPT_POSTFIELDSIZE_LARGE,
					(curl_off_t) req->body_len);
		HTTP_SETOPT(h, xfer, CURLOPT_POSTFIELDS, req->body);
		return CURLE_OK;
	}

	/* any other method with a body is sent as an upload (PUT semantics) */
	xfer->upload = req->body;
	xfer->upload_len = req->body_len;
	HTTP_SETOPT(h, xfer, CURLOPT_UPLOAD, 1L);
	HTTP_SETOPT(h, xfer, CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->body_len);
	HTTP_SETOPT(h, xfer, CURLOPT_READFUNCTION, http_read_body);
	HTTP_SETOPT(h, xfer, CURLOPT_READDATA, xfer);
	HTTP_SETOPT(h, xfer, CURLOPT_SEEKFUNCTION, http_seek_body);
	HTTP_SETOPT(h, xfer, CURLOPT_SEEKDATA, xfer);
	if (strcmp(m, "PUT") != 0)
		HTTP_SETOPT(h, xfer, CURLOPT_CUSTOMREQUEST, m);
	return CURLE_OK;
}

/* Sets every option of one request on the freshly reset handle. */
static CURLcode
http_configure(CURL *h, const HttpRequest *req, HttpTransfer *xfer)
{
	long		connect_ms = req->connect_timeout_ms > 0 ?
		req->connect_timeout_ms : HTTP_CONNECT_TIMEOUT_MS;
	long		total_ms = req->timeout_ms > 0 ?
		req->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;

	HTTP_SETOPT(h, xfer, CURLOPT_ERRORBUFFER, xfer->errbuf);
	HTTP_SETOPT(h, xfer, CURLOPT_NOSIGNAL, 1L);
	HTTP_SETOPT(h, xfer, CURLOPT_URL, req->url);
	HTTP_SETOPT(h, xfer, CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SETOPT(h, xfer, CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SETOPT(h, xfer, CURLOPT_PROXY, "");	/* ignore http_proxy & co */
	HTTP_SETOPT(h, xfer, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	HTTP_SETOPT(h, xfer, CURLOPT_TIMEOUT_MS, total_ms);
	HTTP_SETOPT(h, xfer, CURLOPT_USERAGENT, "wsctl");
	if (req->unix_socket_path != NULL)
		HTTP_SETOPT(h, xfer, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket_path);
	if (req->headers != NULL)
		HTTP_SETOPT(h, xfer, CURLOPT_HTTPHEADER, req->headers);
	HTTP_SETOPT(h, xfer, CURLOPT_WRITEFUNCTION, http_write_body);
	HTTP_SETOPT(h, xfer, CURLOPT_WRITEDATA, xfer);
	HTTP_SETOPT(h, xfer, CURLOPT_HEADERFUNCTION, http_write_header);
	HTTP_SETOPT(h, xfer, CURLOPT_HEADERDATA, xfer);
	HTTP_SETOPT(h, xfer, CURLOPT_XFERINFOFUNCTION, http_progress);
	HTTP_SETOPT(h, xfer, CURLOPT_XFERINFODATA, xfer);
	HTTP_SETOPT(h, xfer, CURLOPT_NOPROGRESS, 0L);
	return http_set_method(h, req, xfer);
}

/* Makes text one line: control characters become spaces, trailing ones go. */
static char *
http_one_line(const char *text)
{
	char	   *line = pstrdup(text);
	int			len;

	for (char *p = line; *p; p++)
	{
		if ((unsigned char) *p < 0x20)
			*p = ' ';
	}
	len = strlen(line);
	while (len > 0 && line[len - 1] == ' ')
		line[--len] = '\0';
	return line;
}

/* Fills response as a transport failure. */
static void
http_fail(HttpResponse *response, CURLcode code, const char *text)
{
	response->ok = false;
	response->curl_code = code;
	response->status = 0;
	response->error = http_one_line(text);
}

/* The most specific explanation of a failed curl_easy_perform. */
static const char *
http_perform_error(const HttpTransfer *xfer, CURLcode rc)
{
	if (xfer->abort_reason != NULL)
		return xfer->abort_reason;
	if (xfer->errbuf[0] != '\0')
		return xfer->errbuf;
	return curl_easy_strerror(rc);
}

/* Checks what http_set_method relies on: an upper-case token. */
static bool
http_method_valid(const char *method)
{
	if (method == NULL || method[0] == '\0')
		return false;
	for (const char *p = method; *p; p++)
	{
		if (*p < 'A' || *p > 'Z')
			return false;
	}
	return true;
}

HttpResponse
http_perform(const HttpRequest *request)
{
	HttpResponse response;
	HttpTransfer xfer;
	CURL	   *h;
	CURLcode	rc;

	memset(&response, 0, sizeof(response));
	response.body = makeStringInfo();
	response.headers = makeStringInfo();
	memset(&xfer, 0, sizeof(xfer));
	xfer.response = &response;
	xfer.max_response_bytes = request->max_response_bytes > 0 ?
		request->max_response_bytes : HTTP_DEFAULT_MAX_RESPONSE;

	if (!http_method_valid(request->method) || request->url == NULL)
	{
		http_fail(&response, CURLE_BAD_FUNCTION_ARGUMENT,
				  "invalid HTTP method or missing URL");
		return response;
	}

	h = http_get_handle();
	if (h == NULL)
	{
		http_fail(&response, CURLE_FAILED_INIT, "could not initialize libcurl");
		return response;
	}
	curl_easy_reset(h);

	rc = http_configure(h, request, &xfer);
	if (rc != CURLE_OK)
		http_fail(&response, rc,
				  psprintf("curl_easy_setopt(%s) failed: %s",
						   xfer.failed_option, curl_easy_strerror(rc)));
	else if ((rc = curl_easy_perform(h)) != CURLE_OK)
	{
		long		os_errno = 0;

		http_fail(&response, rc, http_perform_error(&xfer, rc));
		if (curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK)
			response.os_errno = (int) os_errno;
	}
	else if ((rc = curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE,
									 &response.status)) != CURLE_OK)
		http_fail(&response, rc,
				  psprintf("curl_easy_getinfo(CURLINFO_RESPONSE_CODE) failed: %s",
						   curl_easy_strerror(rc)));
	else
		response.ok = true;

	/* drop the pointers into this stack frame; cached connections stay */
	curl_easy_reset(h);
	return response;
}

/* ---------------------------------------------------------------- async */

struct HttpAsync
{
	CURLM	   *multi;
	CURL	   *easy;
	HttpTransfer xfer;			/* the callbacks' argument: must not move */
	HttpResponse response;
	bool		done;
	CURLcode	result;
};

HttpAsync *
http_async_start(const HttpRequest *request)
{
	HttpAsync  *a = palloc0(sizeof(HttpAsync));
	CURLcode	rc;

	a->response.body = makeStringInfo();
	a->response.headers = makeStringInfo();
	a->xfer.response = &a->response;
	a->xfer.max_response_bytes = request->max_response_bytes > 0 ?
		request->max_response_bytes : HTTP_DEFAULT_MAX_RESPONSE;
	a->done = true;
	if (!http_method_valid(request->method) || request->url == NULL)
	{
		http_fail(&a->response, CURLE_BAD_FUNCTION_ARGUMENT, "invalid HTTP method or missing URL");
		return a;
	}
	/* the process's handle brings libcurl's global initialisation */
	if (http_get_handle() == NULL || (a->easy = curl_easy_init()) == NULL ||
		(a->multi = curl_multi_init()) == NULL)
	{
		http_fail(&a->response, CURLE_FAILED_INIT, "could not initialize libcurl");
		return a;
	}
	rc = http_configure(a->easy, request, &a->xfer);
	if (rc != CURLE_OK)
	{
		http_fail(&a->response, rc, psprintf("curl_easy_setopt(%s) failed: %s",
											 a->xfer.failed_option, curl_easy_strerror(rc)));
		return a;
	}
	if (curl_multi_add_handle(a->multi, a->easy) != CURLM_OK)
	{
		http_fail(&a->response, CURLE_FAILED_INIT, "curl_multi_add_handle failed");
		return a;
	}
	a->done = false;
	http_async_pump(a);
	return a;
}

bool
http_async_pump(HttpAsync *a)
{
	int			running;
	int			queued;
	CURLMsg    *msg;

	if (a->done)
		return true;
	if (curl_multi_perform(a->multi, &running) != CURLM_OK)
	{
		a->result = CURLE_FAILED_INIT;
		a->done = true;
		return true;
	}
	while ((msg = curl_multi_info_read(a->multi, &queued)) != NULL)
	{
		if (msg->msg == CURLMSG_DONE)
		{
			a->result = msg->data.result;
			a->done = true;
		}
	}
	return a->done;
}

HttpResponse
http_async_finish(HttpAsync *a)
{
	/* the progress callback ends the transfer on an interrupt */
	while (!http_async_pump(a))
		(void) curl_multi_poll(a->multi, NULL, 0, 100, NULL);
	if (a->easy != NULL && a->response.error == NULL)
	{
		if (a->result != CURLE_OK)
		{
			long		os_errno = 0;

			http_fail(&a->response, a->result, http_perform_error(&a->xfer, a->result));
			if (curl_easy_getinfo(a->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK)
				a->response.os_errno = (int) os_errno;
		}
		else if (curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE,
								   &a->response.status) != CURLE_OK)
			http_fail(&a->response, CURLE_FAILED_INIT, "no HTTP status");
		else
			a->response.ok = true;
	}
	if (a->multi != NULL && a->easy != NULL)
		curl_multi_remove_handle(a->multi, a->easy);
	if (a->easy != NULL)
		curl_easy_cleanup(a->easy);
	if (a->multi != NULL)
		curl_multi_cleanup(a->multi);
	a->easy = NULL;
	a->multi = NULL;
	return a->response;
}

char *
http_escape(const char *str)
{
	char	   *escaped = curl_easy_escape(NULL, str, 0);
	char	   *result;

	if (escaped == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_easy_escape failed.")));
	result = pstrdup(escaped);
	curl_free(escaped);
	return result;
}

bool
http_host_is_loopback(const char *host)
{
	size_t		len = strlen(host);
	struct in_addr a4;
	struct in6_addr a6;

	if (len > 2 && host[0] == '[' && host[len - 1] == ']')
	{
		char	   *inner = pnstrdup(host + 1, len - 2);
		bool		loopback;

		loopback = inet_pton(AF_INET6, inner, &a6) == 1 &&
			IN6_IS_ADDR_LOOPBACK(&a6);
		pfree(inner);
		return loopback;
	}
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return false;
}
