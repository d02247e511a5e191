/*
 * s3.c: the S3 client of wsctl's operation workers and Archive GC.
 *
 * Every request is path-style (wsctl.s3_endpoint/bucket/key), signed with
 * our own SigV4 (s3_sigv4.c) and carries x-amz-content-sha256, the hash of
 * its body, so the server checks the bytes it stores. Buffered requests go
 * through http.c; a streamed GET is only signed here and performed by the
 * caller (curl_stream.c). Answers are classified, never thrown:
 *
 *	 no answer, timeout, HTTP 5xx		-> S3_UNREACHABLE (retried later)
 *	 HTTP 404							-> S3_NOT_FOUND
 *	 HTTP 403 (SignatureDoesNotMatch,
 *	 InvalidAccessKeyId, AccessDenied)	-> S3_DENIED
 *	 any other refusal					-> S3_FAILED
 *
 * S3's XML (errors, listings, multipart answers) is read with libxml2, with
 * network access and entity expansion off. Neither the access key's secret
 * nor the Authorization header ever reaches a message or the server log.
 */
#include "postgres.h"

#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "http.h"
#include "metrics.h"
#include "s3.h"
#include "s3_sigv4.h"

#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_MESSAGE_MAX	200

char	   *wsctl_s3_endpoint = NULL;
char	   *wsctl_s3_bucket = NULL;
char	   *wsctl_s3_region = NULL;
char	   *wsctl_s3_access_key = NULL;
char	   *wsctl_s3_secret_key = NULL;

static uint64 s3_requests = 0;

uint64
s3_request_count(void)
{
	return s3_requests;
}

static S3Result
s3_ok(long status)
{
	S3Result	r = {S3_OK, status, NULL, NULL};

	return r;
}

static S3Result
s3_failure(S3ResultKind kind, long status, const char *s3_code, char *message)
{
	S3Result	r = {kind, status, s3_code ? pstrdup(s3_code) : NULL, message};

	return r;
}

/* Server text made fit for a one-line message. */
static char *
s3_short_text(const char *text)
{
	int			len = strlen(text);
	char	   *out;

	if (len > S3_MESSAGE_MAX)
	{
		len = S3_MESSAGE_MAX;
		while (len > 0 && ((unsigned char) text[len] & 0xC0) == 0x80)
			len--;
	}
	out = pnstrdup(text, len);
	for (char *p = out; *p; p++)
	{
		if ((unsigned char) *p < 0x20)
			*p = ' ';
	}
	return out;
}

/* Parses S3's XML without the network and without expanding entities. */
static xmlDocPtr
s3_parse_xml(const StringInfo body)
{
	if (body == NULL || body->len == 0)
		return NULL;
	return xmlReadMemory(body->data, body->len, "s3.xml", NULL,
						 XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool
node_is(xmlNodePtr node, const char *name)
{
	return node != NULL && node->type == XML_ELEMENT_NODE &&
		xmlStrcmp(node->name, (const xmlChar *) name) == 0;
}

/* The text of an element, palloc'd ("" when empty). */
static char *
node_text(xmlNodePtr node)
{
	xmlChar    *content = xmlNodeGetContent(node);
	char	   *text = pstrdup(content ? (const char *) content : "");

	if (content)
		xmlFree(content);
	return text;
}

/* The text of the first child element called name, or NULL. */
static char *
child_text(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
	{
		if (node_is(n, name))
			return node_text(n);
	}
	return NULL;
}

/*
 * The configuration as a request needs it. An unusable setting is an
 * S3_FAILED result (it is the operator's to fix), never a crash.
 */
typedef struct S3Config
{
	const char *endpoint;		/* without a trailing slash */
	char	   *host;			/* Host header: host[:port] */
} S3Config;

static bool
s3_config(S3Config *c, S3Result *err)
{
	const char *ep = wsctl_s3_endpoint;
	const char *hostpart;
	const char *problem = NULL;
	int			len;

	if (ep == NULL || ep[0] == '\0')
		problem = "wsctl.s3_endpoint is not set";
	else if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
		problem = "wsctl.s3_endpoint must start with http:// or https://";
	else if (wsctl_s3_bucket == NULL || wsctl_s3_bucket[0] == '\0' ||
			 strpbrk(wsctl_s3_bucket, "/?#% ") != NULL)
		problem = "wsctl.s3_bucket is empty or not a valid bucket name";
	else if (wsctl_s3_access_key == NULL || wsctl_s3_access_key[0] == '\0' ||
			 wsctl_s3_secret_key == NULL || wsctl_s3_secret_key[0] == '\0')
		problem = "wsctl.s3_access_key and wsctl.s3_secret_key must be set";
	if (problem != NULL)
	{
		*err = s3_failure(S3_FAILED, 0, NULL, pstrdup(problem));
		return false;
	}
	hostpart = strstr(ep, "://") + 3;
	len = strcspn(hostpart, "/?#");
	if (len == 0 || memchr(hostpart, '@', len) != NULL)
	{
		*err = s3_failure(S3_FAILED, 0, NULL,
						  pstrdup("wsctl.s3_endpoint needs a host and no user information"));
		return false;
	}
	c->host = pnstrdup(hostpart, len);
	c->endpoint = pnstrdup(ep, (hostpart - ep) + len);
	return true;
}

/* Now as SigV4 wants it: 20150830T123600Z. */
static void
amz_date_now(char *buf, size_t len)
{
	time_t		now = time(NULL);
	struct tm	tm;

	gmtime_r(&now, &tm);
	strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm);
}

/*
 * Builds the URL and the signed headers of one request. key may be NULL
 * (the bucket itself); query is unencoded "k=v&k2=v2" or NULL.
 */
static bool
s3_sign(const char *method, const char *key, const char *query,
		const char *payload_hash, const char *content_type,
		S3SignedRequest *out, S3Result *err)
{
	S3Config	c;
	char		amz_date[32];
	char	   *path;
	char	   *q;
	SigV4Header headers[4];
	int			nheaders = 0;
	SigV4Request req;
	SigV4Key	k;
	char	   *auth;
	struct curl_slist *list = NULL;

	if (!s3_config(&c, err))
		return false;
	amz_date_now(amz_date, sizeof(amz_date));
	path = key ? psprintf("/%s/%s", wsctl_s3_bucket, key) : psprintf("/%s", wsctl_s3_bucket);
	q = sigv4_canonical_query(query);

	headers[nheaders++] = (SigV4Header) {"host", c.host};
	headers[nheaders++] = (SigV4Header) {"x-amz-content-sha256", payload_hash};
	headers[nheaders++] = (SigV4Header) {"x-amz-date", amz_date};
	req.method = method;
	req.path = path;
	req.query = query ? query : "";
	req.headers = headers;
	req.nheaders = nheaders;
	req.payload_hash = payload_hash;
	k.access_key = wsctl_s3_access_key;
	k.secret_key = wsctl_s3_secret_key;
	k.region = (wsctl_s3_region && wsctl_s3_region[0]) ? wsctl_s3_region : "us-east-1";
	k.service = "s3";
	auth = sigv4_authorization(&req, &k, amz_date, NULL, NULL);

	out->url = psprintf("%s%s%s%s", c.endpoint, sigv4_uri_encode(path, true),
						q[0] ? "?" : "", q);
	list = curl_slist_append(list, psprintf("x-amz-content-sha256: %s", payload_hash));
	list = curl_slist_append(list, psprintf("x-amz-date: %s", amz_date));
	list = curl_slist_append(list, psprintf("Authorization: %s", auth));
	/* no "Expect: 100-continue" round trip on uploads */
	list = curl_slist_append(list, "Expect:");
	if (content_type)
		list = curl_slist_append(list, psprintf("Content-Type: %s", content_type));
	memset(auth, 0, strlen(auth));
	if (list == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	out->headers = list;
	return true;
}

/* The classification shared by every call; what names the request. */
static S3Result
s3_classify_response(const char *what, const HttpResponse *resp)
{
	long		status = resp->status;
	xmlDocPtr	doc;
	char	   *code = NULL;
	char	   *message = NULL;
	S3ResultKind kind;

	if (!resp->ok)
		return s3_failure(S3_UNREACHABLE, 0, NULL,
						  psprintf("S3 %s: %s", what, resp->error));
	if (status >= 200 && status < 300)
		return s3_ok(status);

	doc = s3_parse_xml(resp->body);
	if (doc != NULL)
	{
		xmlNodePtr	root = xmlDocGetRootElement(doc);

		if (node_is(root, "Error"))
		{
			code = child_text(root, "Code");
			message = child_text(root, "Message");
		}
		xmlFreeDoc(doc);
	}
	if (status == 404)
		kind = S3_NOT_FOUND;
	else if (status == 403)
		kind = S3_DENIED;
	else if (status >= 500 || status == 408 || status == 429)
		kind = S3_UNREACHABLE;
	else
		kind = S3_FAILED;
	return s3_failure(kind, status, code,
					  psprintf("S3 %s: HTTP %ld%s%s%s%s", what, status,
							   code ? " " : "", code ? s3_short_text(code) : "",
							   message && message[0] ? ": " : "",
							   message && message[0] ? s3_short_text(message) : ""));
}

/* A signed request, ready for http_perform() or http_async_start(). */
typedef struct S3Prepared
{
	HttpRequest req;
	char	   *what;			/* "METHOD key", for messages */
} S3Prepared;

/* Every answer is classified here once, and counted for wsctl.metrics. */
static S3Result
s3_classify(const S3Prepared *p, const HttpResponse *resp)
{
	S3Result	r = s3_classify_response(p->what, resp);
	const char *method = p->req.method;
	bool		lookup = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
		strcmp(method, "DELETE") == 0;

	/* a 404 answers a lookup or a delete; on an upload it is a refusal */
	wsctl_metrics_call(WSCTL_SERVICE_S3,
					   r.kind != S3_OK && !(r.kind == S3_NOT_FOUND && lookup));
	return r;
}

static bool
s3_prepare(const char *method, const char *key, const char *query,
		   const char *body, size_t len, const char *content_type,
		   long timeout_ms, S3Prepared *p, S3Result *err)
{
	S3SignedRequest sreq;
	const char *hash = body ? sigv4_sha256_hex(body, len) : S3_EMPTY_SHA256;

	p->what = psprintf("%s %s%s%s", method, key ? key : wsctl_s3_bucket,
					   query ? "?" : "", query ? query : "");
	/* an upload id or a continuation token is noise in a message */
	if (strchr(p->what, '?'))
		*strchr(p->what, '?') = '\0';
	if (!s3_sign(method, key, query, hash, content_type, &sreq, err))
		return false;
	memset(&p->req, 0, sizeof(p->req));
	p->req.method = method;
	p->req.url = sreq.url;
	p->req.headers = sreq.headers;
	p->req.body = body;
	p->req.body_len = len;
	p->req.connect_timeout_ms = HTTP_CONNECT_TIMEOUT_MS;
	p->req.timeout_ms = timeout_ms;
	s3_requests++;
	return true;
}

/* One buffered request. */
static S3Result
s3_call(const char *method, const char *key, const char *query,
		const char *body, size_t len, const char *content_type,
		long timeout_ms, HttpResponse *resp_out)
{
	S3Prepared	p;
	S3Result	err;
	HttpResponse resp;

	if (!s3_prepare(method, key, query, body, len, content_type, timeout_ms, &p, &err))
		return err;
	resp = http_perform(&p.req);
	curl_slist_free_all(p.req.headers);
	elog(DEBUG2, "wsctl: S3 %s -> %ld", p.what, resp.status);
	if (resp_out)
		*resp_out = resp;
	return s3_classify(&p, &resp);
}

S3Result
s3_head(const char *key, bool *exists, int64 *size)
{
	HttpResponse resp;
	S3Result	r = s3_call("HEAD", key, NULL, NULL, 0, NULL, HTTP_DEFAULT_TIMEOUT_MS, &resp);

	*exists = false;
	if (size)
		*size = -1;
	if (r.kind == S3_NOT_FOUND)
		return s3_ok(r.http_status);
	if (r.kind != S3_OK)
	{
		/* a HEAD answer has no body: say what a 403 usually means */
		if (r.kind == S3_DENIED)
			r.message = psprintf("%s (access denied: wrong access key or secret, or no permission)",
								 r.message);
		return r;
	}
	*exists = true;
	if (size)
	{
		const char *h = resp.headers->data;

		for (const char *line = h; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		{
			if (pg_strncasecmp(line, "Content-Length:", 15) == 0)
			{
				*size = strtoll(line + 15, NULL, 10);
				break;
			}
		}
	}
	return r;
}

S3Result
s3_put(const char *key, const char *body, size_t len)
{
	return s3_call("PUT", key, NULL, body, len, "application/octet-stream",
				   HTTP_LONG_TIMEOUT_MS, NULL);
}

S3Result
s3_get_small(const char *key, size_t max_bytes, StringInfo *body)
{
	HttpResponse resp;
	S3Result	r = s3_call("GET", key, NULL, NULL, 0, NULL, HTTP_DEFAULT_TIMEOUT_MS, &resp);

	*body = NULL;
	if (r.kind == S3_OK)
	{
		if ((size_t) resp.body->len > max_bytes)
			return s3_failure(S3_FAILED, r.http_status, NULL,
							  psprintf("S3 GET %s: object larger than %zu bytes", key, max_bytes));
		*body = resp.body;
	}
	return r;
}

S3Result
s3_delete(const char *key)
{
	S3Result	r = s3_call("DELETE", key, NULL, NULL, 0, NULL, HTTP_DEFAULT_TIMEOUT_MS, NULL);

	if (r.kind == S3_NOT_FOUND)
		return s3_ok(r.http_status);
	return r;
}

/* A 2xx answer whose XML is not what S3 promises. */
static S3Result
s3_bad_reply(const char *what)
{
	return s3_failure(S3_UNREACHABLE, 200, NULL,
					  psprintf("S3 %s: unexpected reply", what));
}

S3Result
s3_list(const char *prefix, const char *continuation, List **objects,
		char **next_continuation)
{
	HttpResponse resp;
	char	   *query;
	S3Result	r;
	xmlDocPtr	doc;
	xmlNodePtr	root;
	char	   *truncated;

	*objects = NIL;
	*next_continuation = NULL;
	query = psprintf("list-type=2&prefix=%s%s%s", prefix,
					 continuation ? "&continuation-token=" : "",
					 continuation ? continuation : "");
	r = s3_call("GET", NULL, query, NULL, 0, NULL, HTTP_DEFAULT_TIMEOUT_MS, &resp);
	if (r.kind != S3_OK)
		return r;
	doc = s3_parse_xml(resp.body);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!node_is(root, "ListBucketResult"))
	{
		if (doc)
			xmlFreeDoc(doc);
		return s3_bad_reply("ListObjectsV2");
	}
	for (xmlNodePtr n = root->children; n; n = n->next)
	{
		S3Object   *o;
		char	   *size;

		if (!node_is(n, "Contents"))
			continue;
		o = palloc0(sizeof(S3Object));
		o->key = child_text(n, "Key");
		size = child_text(n, "Size");
		o->size = size ? strtoll(size, NULL, 10) : -1;
		if (o->key == NULL)
		{
			xmlFreeDoc(doc);
			return s3_bad_reply("ListObjectsV2");
		}
		*objects = lappend(*objects, o);
	}
	truncated = child_text(root, "IsTruncated");
	if (truncated && strcmp(truncated, "true") == 0)
	{
		*next_continuation = child_text(root, "NextContinuationToken");
		if (*next_continuation == NULL || (*next_continuation)[0] == '\0')
		{
			xmlFreeDoc(doc);
			return s3_bad_reply("ListObjectsV2 (truncated without a token)");
		}
	}
	xmlFreeDoc(doc);
	return r;
}

S3Result
s3_multipart_create(const char *key, char **upload_id)
{
	HttpResponse resp;
	S3Result	r = s3_call("POST", key, "uploads=", NULL, 0, "application/octet-stream",
							HTTP_DEFAULT_TIMEOUT_MS, &resp);
	xmlDocPtr	doc;
	xmlNodePtr	root;

	*upload_id = NULL;
	if (r.kind != S3_OK)
		return r;
	doc = s3_parse_xml(resp.body);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (node_is(root, "InitiateMultipartUploadResult"))
		*upload_id = child_text(root, "UploadId");
	if (doc)
		xmlFreeDoc(doc);
	if (*upload_id == NULL || (*upload_id)[0] == '\0')
		return s3_bad_reply("CreateMultipartUpload");
	return r;
}

/* The ETag header of an answer, or NULL. */
static char *
s3_etag(const HttpResponse *resp)
{
	for (char *line = resp->headers->data; line && *line;)
	{
		char	   *end = strchr(line, '\n');

		if (pg_strncasecmp(line, "ETag:", 5) == 0)
		{
			char	   *v = line + 5;
			int			n;

			while (*v == ' ')
				v++;
			n = end ? end - v : strlen(v);
			while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == ' '))
				n--;
			return pnstrdup(v, n);
		}
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

struct S3PartUpload
{
	S3Prepared	p;
	HttpAsync  *async;			/* NULL when the request could not be signed */
	S3Result	sign_error;
};

S3PartUpload *
s3_multipart_upload_part_start(const char *key, const char *upload_id, int part_number,
							   const char *body, size_t len)
{
	S3PartUpload *u = palloc0(sizeof(S3PartUpload));

	if (s3_prepare("PUT", key, psprintf("partNumber=%d&uploadId=%s", part_number, upload_id),
				   body, len, NULL, HTTP_LONG_TIMEOUT_MS, &u->p, &u->sign_error))
		u->async = http_async_start(&u->p.req);
	return u;
}

bool
s3_multipart_upload_part_pump(S3PartUpload *u)
{
	return u->async == NULL || http_async_pump(u->async);
}

S3Result
s3_multipart_upload_part_finish(S3PartUpload *u, char **etag)
{
	HttpResponse resp;
	S3Result	r;

	*etag = NULL;
	if (u->async == NULL)
		return u->sign_error;
	resp = http_async_finish(u->async);
	curl_slist_free_all(u->p.req.headers);
	elog(DEBUG2, "wsctl: S3 %s -> %ld", u->p.what, resp.status);
	r = s3_classify(&u->p, &resp);
	if (r.kind != S3_OK)
		return r;
	*etag = s3_etag(&resp);
	if (*etag == NULL)
		return s3_bad_reply("UploadPart (no ETag)");
	return r;
}

S3Result
s3_multipart_upload_part(const char *key, const char *upload_id, int part_number,
						 const char *body, size_t len, char **etag)
{
	return s3_multipart_upload_part_finish(
		s3_multipart_upload_part_start(key, upload_id, part_number, body, len), etag);
}

static void
append_xml_text(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		if (*s == '&')
			appendStringInfoString(buf, "&amp;");
		else if (*s == '<')
			appendStringInfoString(buf, "&lt;");
		else if (*s == '>')
			appendStringInfoString(buf, "&gt;");
		else
			appendStringInfoChar(buf, *s);
	}
}

S3Result
s3_multipart_complete(const char *key, const char *upload_id, List *etags)
{
	StringInfoData body;
	HttpResponse resp;
	S3Result	r;
	ListCell   *lc;
	xmlDocPtr	doc;
	xmlNodePtr	root;
	bool		completed;

	initStringInfo(&body);
	appendStringInfoString(&body, "<CompleteMultipartUpload>");
	foreach(lc, etags)
	{
		appendStringInfo(&body, "<Part><PartNumber>%d</PartNumber><ETag>",
						 foreach_current_index(lc) + 1);
		append_xml_text(&body, lfirst(lc));
		appendStringInfoString(&body, "</ETag></Part>");
	}
	appendStringInfoString(&body, "</CompleteMultipartUpload>");
	r = s3_call("POST", key, psprintf("uploadId=%s", upload_id), body.data, body.len,
				"application/xml", HTTP_LONG_TIMEOUT_MS, &resp);
	if (r.kind != S3_OK)
		return r;

	/* S3 may answer 200 and still report an error in the body. */
	doc = s3_parse_xml(resp.body);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	completed = node_is(root, "CompleteMultipartUploadResult");
	if (!completed && node_is(root, "Error"))
		r = s3_failure(S3_UNREACHABLE, r.http_status, NULL,
					   psprintf("S3 CompleteMultipartUpload %s: %s", key,
								s3_short_text(child_text(root, "Code") ?: "error")));
	else if (!completed)
		r = s3_bad_reply("CompleteMultipartUpload");
	if (doc)
		xmlFreeDoc(doc);
	return r;
}

S3Result
s3_multipart_abort(const char *key, const char *upload_id)
{
	S3Result	r = s3_call("DELETE", key, psprintf("uploadId=%s", upload_id),
							NULL, 0, NULL, HTTP_DEFAULT_TIMEOUT_MS, NULL);

	if (r.kind == S3_NOT_FOUND)
		return s3_ok(r.http_status);
	return r;
}

S3Result
s3_sign_get(const char *key, S3SignedRequest *out)
{
	S3Result	err;

	if (!s3_sign("GET", key, NULL, S3_EMPTY_SHA256, NULL, out, &err))
		return err;
	s3_requests++;
	return s3_ok(0);
}
