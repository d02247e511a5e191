/*
 * jwt.c: HS256 JSON Web Token verification for wsctl-sse.
 *
 * A token is header.payload.signature, each base64url without padding;
 * the signature is HMAC-SHA256(secret, header "." payload). The header
 * must say alg HS256 (no "none", no other algorithm); the payload must
 * carry sub (an owner uuid, or "*" for every workspace) and exp (seconds
 * since the epoch). Comparison of signatures takes constant time.
 */
#include "jwt.h"

#include <ctype.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MAX_TOKEN 4096

/* Decodes base64url (no padding) into out; returns its length or -1. */
static long
b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	char		buf[MAX_TOKEN + 4] = {0};
	size_t		n = 0;
	int			decoded;

	if (len > MAX_TOKEN)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		char		c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!isalnum((unsigned char) c))
			return -1;
		buf[n++] = c;
	}
	while (n % 4 != 0)
		buf[n++] = '=';
	if (n / 4 * 3 > cap)
		return -1;
	decoded = EVP_DecodeBlock(out, (const unsigned char *) buf, (int) n);
	if (decoded < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes */
	for (size_t i = n; i > 0 && buf[i - 1] == '='; i--)
		decoded--;
	return decoded;
}

static bool
is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		bool		dash = (i == 8 || i == 13 || i == 18 || i == 23);

		if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

static json_t *
decode_part(const char *part, size_t len)
{
	unsigned char raw[MAX_TOKEN];
	long		n = b64url_decode(part, len, raw, sizeof(raw) - 1);

	if (n < 0)
		return NULL;
	return json_loadb((const char *) raw, (size_t) n, 0, NULL);
}

const char *
jwt_verify(const char *token, const unsigned char *secret, size_t secret_len,
		   time_t now, TokenGrant *grant)
{
	const char *dot1;
	const char *dot2;
	unsigned char expected[EVP_MAX_MD_SIZE];
	unsigned int expected_len = 0;
	unsigned char encoded[2 * EVP_MAX_MD_SIZE];
	int			encoded_len;
	const char *given;
	json_t	   *header;
	json_t	   *payload;
	const char *alg;
	const char *sub;
	json_t	   *exp;
	const char *why = NULL;

	memset(grant, 0, sizeof(*grant));
	if (token == NULL || *token == '\0')
		return "no token";
	if (strlen(token) > MAX_TOKEN)
		return "token too long";
	dot1 = strchr(token, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
		return "not a JWT";

	if (HMAC(EVP_sha256(), secret, (int) secret_len, (const unsigned char *) token,
			 (size_t) (dot2 - token), expected, &expected_len) == NULL)
		return "cannot compute HMAC";
	/*
	 * Compare the text, not decoded bytes: base64url's last character has
	 * spare bits, so decoding would accept several spellings of one
	 * signature. Only the canonical one is valid.
	 */
	encoded_len = EVP_EncodeBlock(encoded, expected, (int) expected_len);
	while (encoded_len > 0 && encoded[encoded_len - 1] == '=')
		encoded_len--;
	for (int i = 0; i < encoded_len; i++)
	{
		if (encoded[i] == '+')
			encoded[i] = '-';
		else if (encoded[i] == '/')
			encoded[i] = '_';
	}
	given = dot2 + 1;
	if (strlen(given) != (size_t) encoded_len ||
		CRYPTO_memcmp(given, encoded, (size_t) encoded_len) != 0)
		return "bad signature";

	header = decode_part(token, (size_t) (dot1 - token));
	payload = decode_part(dot1 + 1, (size_t) (dot2 - dot1 - 1));
	alg = json_string_value(json_object_get(header, "alg"));
	sub = json_string_value(json_object_get(payload, "sub"));
	exp = json_object_get(payload, "exp");
	if (header == NULL || payload == NULL)
		why = "unreadable token";
	else if (alg == NULL || strcmp(alg, "HS256") != 0)
		why = "token algorithm is not HS256";
	else if (sub == NULL || (strcmp(sub, "*") != 0 && !is_uuid(sub)))
		why = "token has no valid sub";
	else if (!json_is_number(exp))
		why = "token has no exp";
	else if ((time_t) json_number_value(exp) <= now)
		why = "token expired";
	else
	{
		grant->all = strcmp(sub, "*") == 0;
		if (!grant->all)
		{
			strncpy(grant->owner, sub, sizeof(grant->owner) - 1);
			for (char *p = grant->owner; *p; p++)
				*p = (char) tolower((unsigned char) *p);
		}
		grant->expires = (time_t) json_number_value(exp);
	}
	json_decref(header);
	json_decref(payload);
	return why;
}
