/*
 * curl_stream.c: HTTP transfers driven a piece at a time (curl multi).
 *
 * libarchive pulls the bytes it reads and pushes the bytes it writes; an
 * HTTP transfer pushes what it receives and pulls what it sends. A stream
 * turns one into the other with a bounded buffer and libcurl's pause: a
 * download pauses when its buffer is full and is resumed when the reader
 * has emptied it; an upload pauses when it has nothing to send and is
 * resumed when the writer has added bytes. So memory stays at one buffer
 * per stream whatever the size of the body, and a slow side slows the
 * other through TCP's flow control instead of filling memory.
 *
 * Callbacks only copy bytes (no PostgreSQL call that could throw runs on
 * libcurl's stack); interrupts are checked in the caller's loop, between
 * calls into libcurl.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "curl_stream.h"

/* Bytes buffered per stream: a few of libcurl's 16 kB write chunks. */
#define STREAM_BUFFER_BYTES		(256 * 1024)
/* How much of an error body is kept for the message. */
#define STREAM_ERROR_BODY_MAX	2048
/* How long one wait for socket activity lasts before interrupts are checked. */
#define STREAM_POLL_MS			100
/* A transfer that moves nothing for this long has failed (not while paused). */
#define STREAM_LOW_SPEED_SECONDS 120L

struct CurlStream
{
	CURLM	   *multi;
	CURL	   *easy;
	bool		upload;
	const char *what;
	char	   *buf;
	size_t		start;			/* first unread byte */
	size_t		end;			/* one past the last byte */
	bool		paused;
	bool		eof;			/* upload: the writer has finished */
	bool		done;			/* libcurl finished the transfer */
	CURLcode	result;
	long		status;
	int64		bytes;
	StringInfo	error_body;		/* body of a non-2xx answer (bounded) */
	char	   *error;
	char		errbuf[CURL_ERROR_SIZE];
};

static long
stream_status(CurlStream *s)
{
	long		status = 0;

	if (s->status == 0 &&
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
		s->status = status;
	return s->status;
}

static void
keep_error_body(CurlStream *s, const char *data, size_t len)
{
	size_t		room = STREAM_ERROR_BODY_MAX - s->error_body->len;

	appendBinaryStringInfo(s->error_body, data, Min(len, room));
}

/* Received body bytes: buffered for the reader, or kept as the error. */
static size_t
stream_receive(char *data, size_t size, size_t nmemb, void *arg)
{
	CurlStream *s = (CurlStream *) arg;
	size_t		len = size * nmemb;
	long		status = stream_status(s);

	if (s->upload || status < 200 || status >= 300)
	{
		keep_error_body(s, data, len);
		return len;
	}
	if (s->end + len > STREAM_BUFFER_BYTES && s->start > 0)
	{
		memmove(s->buf, s->buf + s->start, s->end - s->start);
		s->end -= s->start;
		s->start = 0;
	}
	if (s->end + len > STREAM_BUFFER_BYTES)
	{
		s->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	memcpy(s->buf + s->end, data, len);
	s->end += len;
	s->bytes += len;
	return len;
}

/* Body bytes to send: what the writer buffered, or a pause until it has more. */
static size_t
stream_send(char *dest, size_t size, size_t nitems, void *arg)
{
	CurlStream *s = (CurlStream *) arg;
	size_t		n = Min(size * nitems, s->end - s->start);

	if (n == 0)
	{
		if (s->eof)
			return 0;
		s->paused = true;
		return CURL_READFUNC_PAUSE;
	}
	memcpy(dest, s->buf + s->start, n);
	s->start += n;
	s->bytes += n;
	return n;
}

static CurlStream *
stream_open(const CurlStreamTarget *t, bool upload)
{
	CurlStream *s = palloc0(sizeof(CurlStream));
	CURLcode	rc = CURLE_OK;

	s->upload = upload;
	s->what = pstrdup(t->what);
	s->buf = palloc(STREAM_BUFFER_BYTES);
	s->error_body = makeStringInfo();
	s->multi = curl_multi_init();
	s->easy = curl_easy_init();
	if (s->multi == NULL || s->easy == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("could not initialize libcurl for %s", t->what)));

#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(s->easy, opt, val); } while (0)
	SET(CURLOPT_ERRORBUFFER, s->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_URL, t->url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, STREAM_LOW_SPEED_SECONDS);
	SET(CURLOPT_USERAGENT, "wsctl");
	if (t->unix_socket_path)
		SET(CURLOPT_UNIX_SOCKET_PATH, t->unix_socket_path);
	if (t->headers)
		SET(CURLOPT_HTTPHEADER, t->headers);
	SET(CURLOPT_WRITEFUNCTION, stream_receive);
	SET(CURLOPT_WRITEDATA, s);
	if (upload)
	{
		SET(CURLOPT_UPLOAD, 1L);
		SET(CURLOPT_READFUNCTION, stream_send);
		SET(CURLOPT_READDATA, s);
		if (strcmp(t->method, "PUT") != 0)
			SET(CURLOPT_CUSTOMREQUEST, t->method);
	}
	else
		SET(CURLOPT_HTTPGET, 1L);
#undef SET
	if (rc != CURLE_OK)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("could not set up %s: %s", t->what, curl_easy_strerror(rc))));
	if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("could not start %s", t->what)));
	return s;
}

CurlStream *
curl_stream_open_download(const CurlStreamTarget *target)
{
	return stream_open(target, false);
}

CurlStream *
curl_stream_open_upload(const CurlStreamTarget *target)
{
	return stream_open(target, true);
}

/* Lets libcurl move bytes once, waiting briefly for the socket if it has to. */
static void
stream_pump(CurlStream *s)
{
	int			running = 0;
	int			queued;
	CURLMsg    *msg;

	CHECK_FOR_INTERRUPTS();
	if (s->paused)
	{
		s->paused = false;
		curl_easy_pause(s->easy, CURLPAUSE_CONT);
	}
	curl_multi_perform(s->multi, &running);
	while ((msg = curl_multi_info_read(s->multi, &queued)) != NULL)
	{
		if (msg->msg == CURLMSG_DONE)
		{
			s->done = true;
			s->result = msg->data.result;
			(void) stream_status(s);
		}
	}
	if (!s->done && !s->paused)
		curl_multi_poll(s->multi, NULL, 0, STREAM_POLL_MS, NULL);
}

/* Records why a finished transfer failed; true when it succeeded. */
static bool
stream_check(CurlStream *s)
{
	if (s->error != NULL)
		return false;
	if (s->done && s->result != CURLE_OK)
		s->error = psprintf("%s: %s", s->what,
							s->errbuf[0] ? s->errbuf : curl_easy_strerror(s->result));
	else if (s->done && (s->status < 200 || s->status >= 300))
	{
		char	   *body = pnstrdup(s->error_body->data, Min(s->error_body->len, 300));

		for (char *p = body; *p; p++)
			if ((unsigned char) *p < 0x20)
				*p = ' ';
		s->error = psprintf("%s: HTTP %ld: %s", s->what, s->status, body);
	}
	return s->error == NULL;
}

ssize_t
curl_stream_read(CurlStream *s, char *buf, size_t len)
{
	size_t		n;

	while (s->start == s->end && !s->done)
		stream_pump(s);
	if (s->start == s->end)
		return stream_check(s) ? 0 : -1;
	if (!stream_check(s))
		return -1;
	n = Min(len, s->end - s->start);
	memcpy(buf, s->buf + s->start, n);
	s->start += n;
	if (s->start == s->end)
		s->start = s->end = 0;
	return (ssize_t) n;
}

bool
curl_stream_write(CurlStream *s, const char *buf, size_t len)
{
	while (len > 0)
	{
		size_t		room;

		if (s->done)
		{
			/* the server answered before the body ended: always a failure */
			if (stream_check(s))
				s->error = psprintf("%s: the server answered HTTP %ld before the upload ended",
									s->what, s->status);
			return false;
		}
		if (s->start == s->end)
			s->start = s->end = 0;
		else if (s->start > 0 && s->end == STREAM_BUFFER_BYTES)
		{
			memmove(s->buf, s->buf + s->start, s->end - s->start);
			s->end -= s->start;
			s->start = 0;
		}
		room = STREAM_BUFFER_BYTES - s->end;
		if (room == 0)
		{
			stream_pump(s);
			continue;
		}
		room = Min(room, len);
		memcpy(s->buf + s->end, buf, room);
		s->end += room;
		buf += room;
		len -= room;
		if (s->paused)
			stream_pump(s);
	}
	return true;
}

bool
curl_stream_finish(CurlStream *s)
{
	s->eof = true;
	while (!s->done)
	{
		stream_pump(s);
		/* a download nobody reads to the end would stall: discard the rest */
		if (!s->upload)
			s->start = s->end = 0;
	}
	return stream_check(s);
}

long
curl_stream_status(CurlStream *s)
{
	return stream_status(s);
}

const char *
curl_stream_error(CurlStream *s)
{
	if (s->error == NULL && !stream_check(s))
		return s->error;
	return s->error ? s->error : "no error";
}

bool
curl_stream_failed(CurlStream *s)
{
	return !stream_check(s);
}

bool
curl_stream_connect_failed(CurlStream *s)
{
	return s->done && s->result == CURLE_COULDNT_CONNECT;
}

int64
curl_stream_bytes(CurlStream *s)
{
	return s->bytes;
}

void
curl_stream_close(CurlStream *s)
{
	if (s == NULL)
		return;
	curl_multi_remove_handle(s->multi, s->easy);
	curl_easy_cleanup(s->easy);
	curl_multi_cleanup(s->multi);
	pfree(s->buf);
}
