-- 65_sse_token.sql: tokens for the wsctl-sse relay (DESIGN section 7).
--
-- An HS256 JWT whose sub is the owner whose workspaces the bearer may
-- watch, or "*" (every workspace) for a superuser's token. The key is the
-- superuser-only setting wsctl.sse_secret; the relay reads the same key
-- from its --secret-file.

CREATE FUNCTION wsctl._sse_sign(signing_input text)
RETURNS text
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'wsctl_sse_sign';
COMMENT ON FUNCTION wsctl._sse_sign(text) IS
	'base64url(HMAC-SHA256(wsctl.sse_secret, signing_input)): the signature part of an SSE token';

CREATE FUNCTION wsctl._base64url(data text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT rtrim(translate(encode(convert_to(data, 'UTF8'), 'base64'), E'+/\n', '-_'), '=') $$;
COMMENT ON FUNCTION wsctl._base64url(text) IS 'base64url without padding (JWT parts)';

CREATE FUNCTION wsctl.sse_token(owner_user_id uuid, ttl interval DEFAULT '1 hour')
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	signing_input text;
BEGIN
	IF owner_user_id IS NULL
	   AND NOT coalesce((SELECT r.rolsuper FROM pg_roles AS r WHERE r.rolname = session_user), false) THEN
		RAISE EXCEPTION 'only a superuser may mint a token for every workspace'
			USING ERRCODE = 'WS403',
				  HINT = 'Mint a token for one owner: wsctl.sse_token(owner_user_id).';
	END IF;
	IF ttl IS NULL OR ttl <= interval '0' OR ttl > interval '7 days' THEN
		RAISE EXCEPTION 'invalid ttl: %', ttl
			USING ERRCODE = 'WS422', DETAIL = 'A token lives more than 0 and at most 7 days.';
	END IF;
	signing_input := wsctl._base64url('{"alg":"HS256","typ":"JWT"}') || '.'
		|| wsctl._base64url(jsonb_build_object(
				'sub', coalesce(owner_user_id::text, '*'),
				'iat', floor(extract(epoch FROM now()))::bigint,
				'exp', floor(extract(epoch FROM now() + ttl))::bigint)::text);
	RETURN signing_input || '.' || wsctl._sse_sign(signing_input);
END
$$;
COMMENT ON FUNCTION wsctl.sse_token(uuid, interval) IS
	'An HS256 token for wsctl-sse: the events of owner_user_id''s workspaces (NULL = every workspace, superuser only: WS403) for ttl (WS422 unless 0 < ttl <= 7 days)';
