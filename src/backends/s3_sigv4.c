/*
 * s3_sigv4.c: AWS Signature Version 4, written for wsctl (HMAC-SHA256 and
 * SHA-256 from OpenSSL).
 *
 *   canonical request = method \n encoded path \n sorted encoded query \n
 *                       lowercase sorted headers "name:value" \n \n
 *                       signed header names ; joined \n payload hash
 *   string to sign    = AWS4-HMAC-SHA256 \n amz_date \n scope \n
 *                       hex SHA-256 of the canonical request
 *   signing key       = HMAC chain over "AWS4" secret, date, region,
 *                       service, "aws4_request"
 * Paths are encoded once (S3's rule): every byte but the unreserved
 * characters and '/'. Known-answer tests from AWS's published suite are in
 * test/pgtap/sigv4.sql. Nothing here logs: the secret never leaves it.
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "s3_sigv4.h"

PG_FUNCTION_INFO_V1(wsctl_sigv4_authorization);

static void
hex(const unsigned char *bin, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++)
	{
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * len] = '\0';
}

char *
sigv4_sha256_hex(const void *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char	   *out = palloc(2 * EVP_MAX_MD_SIZE + 1);

	if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL))
		elog(ERROR, "wsctl: SHA-256 failed");
	hex(md, md_len, out);
	return out;
}

static void
hmac(const void *key, size_t key_len, const char *data, unsigned char *out, unsigned int *out_len)
{
	if (HMAC(EVP_sha256(), key, (int) key_len, (const unsigned char *) data, strlen(data),
			 out, out_len) == NULL)
		elog(ERROR, "wsctl: HMAC-SHA256 failed");
}

/* RFC 3986 unreserved characters stay; every other byte becomes %XX. */
char *
sigv4_uri_encode(const char *s, bool keep_slash)
{
	StringInfoData out;

	initStringInfo(&out);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
			(keep_slash && *p == '/'))
			appendStringInfoChar(&out, (char) *p);
		else
			appendStringInfo(&out, "%%%02X", *p);
	}
	return out.data;
}

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* "b=2&a=1" -> "a=1&b=2", each name and value encoded, sorted by name then value. */
char *
sigv4_canonical_query(const char *query)
{
	List	   *parts = NIL;
	char	  **sorted;
	char	   *copy = pstrdup(query ? query : "");
	char	   *save = NULL;
	StringInfoData out;
	int			n = 0;

	for (char *pair = strtok_r(copy, "&", &save); pair; pair = strtok_r(NULL, "&", &save))
	{
		char	   *eq = strchr(pair, '=');
		char	   *value = eq ? eq + 1 : "";

		if (eq)
			*eq = '\0';
		parts = lappend(parts, psprintf("%s=%s", sigv4_uri_encode(pair, false),
										sigv4_uri_encode(value, false)));
	}
	sorted = palloc(sizeof(char *) * (list_length(parts) + 1));
	{
		ListCell   *lc;

		foreach(lc, parts)
			sorted[n++] = lfirst(lc);
	}
	qsort(sorted, n, sizeof(char *), compare_strings);
	initStringInfo(&out);
	for (int i = 0; i < n; i++)
		appendStringInfo(&out, "%s%s", i ? "&" : "", sorted[i]);
	return out.data;
}

/* Trims a header value and folds runs of blanks into one space. */
static char *
canonical_value(const char *v)
{
	StringInfoData out;
	bool		blank = false;

	initStringInfo(&out);
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++)
	{
		if (*v == ' ' || *v == '\t')
			blank = true;
		else
		{
			if (blank && out.len > 0)
				appendStringInfoChar(&out, ' ');
			blank = false;
			appendStringInfoChar(&out, *v);
		}
	}
	return out.data;
}

/* "name:value" lines sorted by name (values of a repeated name joined by ','). */
static void
canonical_headers(const SigV4Request *req, StringInfo lines, StringInfo names)
{
	char	  **sorted = palloc(sizeof(char *) * (req->nheaders + 1));
	char	   *prev = NULL;

	for (int i = 0; i < req->nheaders; i++)
	{
		char	   *name = pstrdup(req->headers[i].name);

		for (char *p = name; *p; p++)
			*p = (char) pg_tolower((unsigned char) *p);
		/* the index keeps repeated names in the caller's order */
		sorted[i] = psprintf("%s\x01%04d\x01%s", name, i, canonical_value(req->headers[i].value));
	}
	qsort(sorted, req->nheaders, sizeof(char *), compare_strings);
	for (int i = 0; i < req->nheaders; i++)
	{
		char	   *name = sorted[i];
		char	   *value = strrchr(name, '\x01') + 1;

		*strchr(name, '\x01') = '\0';
		if (prev != NULL && strcmp(prev, name) == 0)
			appendStringInfo(lines, ",%s", value);
		else
		{
			appendStringInfo(lines, "%s%s:%s", prev ? "\n" : "", name, value);
			appendStringInfo(names, "%s%s", prev ? ";" : "", name);
		}
		prev = name;
	}
	appendStringInfoChar(lines, '\n');
}

char *
sigv4_authorization(const SigV4Request *req, const SigV4Key *key, const char *amz_date,
					char **canonical_request, char **string_to_sign)
{
	StringInfoData creq;
	StringInfoData lines;
	StringInfoData names;
	char		date[9];
	char	   *scope;
	char	   *sts;
	unsigned char k[EVP_MAX_MD_SIZE];
	unsigned int k_len = 0;
	char		sig[2 * EVP_MAX_MD_SIZE + 1];
	char	   *secret = psprintf("AWS4%s", key->secret_key);

	strlcpy(date, amz_date, sizeof(date));
	initStringInfo(&lines);
	initStringInfo(&names);
	canonical_headers(req, &lines, &names);
	initStringInfo(&creq);
	appendStringInfo(&creq, "%s\n%s\n%s\n%s\n%s\n%s", req->method,
					 sigv4_uri_encode(req->path, true), sigv4_canonical_query(req->query),
					 lines.data, names.data, req->payload_hash);
	scope = psprintf("%s/%s/%s/aws4_request", date, key->region, key->service);
	sts = psprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope,
				   sigv4_sha256_hex(creq.data, creq.len));

	hmac(secret, strlen(secret), date, k, &k_len);
	hmac(k, k_len, key->region, k, &k_len);
	hmac(k, k_len, key->service, k, &k_len);
	hmac(k, k_len, "aws4_request", k, &k_len);
	hmac(k, k_len, sts, k, &k_len);
	hex(k, k_len, sig);
	memset(secret, 0, strlen(secret));

	if (canonical_request)
		*canonical_request = creq.data;
	if (string_to_sign)
		*string_to_sign = sts;
	return psprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
					key->access_key, scope, names.data, sig);
}

/*
 * SQL access for the known-answer tests (not granted to anyone):
 * wsctl._sigv4_authorization(method, path, query, headers text[] of
 * "name:value", payload_hash, access_key, secret_key, region, service,
 * amz_date) -> {authorization, canonical_request, string_to_sign}.
 */
Datum
wsctl_sigv4_authorization(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(3);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	SigV4Header *headers;
	SigV4Request req;
	SigV4Key	key;
	char	   *creq;
	char	   *sts;
	char	   *auth;
	Datum		out[3];

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	headers = palloc(sizeof(SigV4Header) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		char	   *h = TextDatumGetCString(elems[i]);
		char	   *colon = strchr(h, ':');

		if (colon == NULL)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("header \"%s\" is not name:value", h)));
		*colon = '\0';
		headers[i].name = h;
		headers[i].value = colon + 1;
	}
	req.method = text_to_cstring(PG_GETARG_TEXT_PP(0));
	req.path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	req.query = text_to_cstring(PG_GETARG_TEXT_PP(2));
	req.headers = headers;
	req.nheaders = n;
	req.payload_hash = text_to_cstring(PG_GETARG_TEXT_PP(4));
	key.access_key = text_to_cstring(PG_GETARG_TEXT_PP(5));
	key.secret_key = text_to_cstring(PG_GETARG_TEXT_PP(6));
	key.region = text_to_cstring(PG_GETARG_TEXT_PP(7));
	key.service = text_to_cstring(PG_GETARG_TEXT_PP(8));
	auth = sigv4_authorization(&req, &key, text_to_cstring(PG_GETARG_TEXT_PP(9)), &creq, &sts);
	out[0] = CStringGetTextDatum(auth);
	out[1] = CStringGetTextDatum(creq);
	out[2] = CStringGetTextDatum(sts);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, 3, TEXTOID, -1, false, TYPALIGN_INT));
}
