/*
 * sse_token.c: the signature of the tokens that authorise wsctl-sse
 * clients (HS256 JWT, RFC 7519), computed with OpenSSL's HMAC-SHA256 and
 * the key in wsctl.sse_secret, a superuser-only setting: SQL never sees
 * the key, only the signature (wsctl.sse_token builds the rest).
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "wsctl.h"

PG_FUNCTION_INFO_V1(wsctl_sse_sign);

char	   *wsctl_sse_secret = NULL;

/* base64url without padding (RFC 7515, section 2). */
static char *
base64url(const unsigned char *data, int len)
{
	char	   *out = palloc(4 * ((len + 2) / 3) + 1);
	int			n = EVP_EncodeBlock((unsigned char *) out, data, len);

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++)
	{
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	return out;
}

Datum
wsctl_sse_sign(PG_FUNCTION_ARGS)
{
	text	   *input = PG_GETARG_TEXT_PP(0);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;

	if (wsctl_sse_secret == NULL || strlen(wsctl_sse_secret) < 16)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("wsctl.sse_secret is not set, or shorter than 16 bytes"),
				 errhint("A superuser sets it in postgresql.conf to the key wsctl-sse reads from --secret-file.")));
	if (HMAC(EVP_sha256(), wsctl_sse_secret, (int) strlen(wsctl_sse_secret),
			 (const unsigned char *) VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input),
			 mac, &mac_len) == NULL)
		ereport(ERROR, (errmsg("HMAC-SHA256 failed")));
	PG_RETURN_TEXT_P(cstring_to_text(base64url(mac, (int) mac_len)));
}
