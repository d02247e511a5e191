-- test/pgtap/sigv4.sql: wsctl's AWS Signature Version 4 signer (issue 9)
-- against AWS's published answers, with no server: four requests of the
-- AWS SigV4 test suite (credentials AKIDEXAMPLE, 20150830T123600Z,
-- us-east-1, service "service") and the S3 documentation's signed
-- GetObject example (AKIAIOSFODNN7EXAMPLE, 20130524T000000Z, s3).

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION wsctl;

SELECT plan(9);

CREATE FUNCTION pg_temp.suite(method text, path text, query text, headers text[], payload_hash text)
RETURNS text[] LANGUAGE sql AS $$
	SELECT wsctl._sigv4_authorization(method, path, query, headers, payload_hash,
		'AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', 'us-east-1', 'service', '20150830T123600Z')
$$;
CREATE FUNCTION pg_temp.empty_hash() RETURNS text LANGUAGE sql AS $$ SELECT encode(sha256(''::bytea), 'hex') $$;

SELECT is((pg_temp.suite('GET', '/', '', '{host:example.amazonaws.com,x-amz-date:20150830T123600Z}', pg_temp.empty_hash()))[1],
	'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
	'get-vanilla');
SELECT is((pg_temp.suite('GET', '/', '', '{host:example.amazonaws.com,x-amz-date:20150830T123600Z}', pg_temp.empty_hash()))[2],
	E'GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
	'  its canonical request');
SELECT is(right((pg_temp.suite('GET', '/', 'Param2=value2&Param1=value1', '{host:example.amazonaws.com,x-amz-date:20150830T123600Z}', pg_temp.empty_hash()))[1], 64),
	'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500',
	'get-vanilla-query-order-key-case: the query is sorted');
SELECT is(right((pg_temp.suite('GET', E'/\u1234', '', '{host:example.amazonaws.com,x-amz-date:20150830T123600Z}', pg_temp.empty_hash()))[1], 64),
	'8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85',
	'get-utf8: the path is percent-encoded as UTF-8');
SELECT is(split_part((pg_temp.suite('GET', E'/\u1234', '', '{host:example.amazonaws.com,x-amz-date:20150830T123600Z}', pg_temp.empty_hash()))[2], E'\n', 2),
	'/%E1%88%B4', '  its canonical path');
SELECT is((pg_temp.suite('POST', '/', '', '{content-type:application/x-www-form-urlencoded,host:example.amazonaws.com,x-amz-date:20150830T123600Z}',
						encode(sha256('Param1=value1'::bytea), 'hex')))[1],
	'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a',
	'post-x-www-form-urlencoded: a signed body');
SELECT is(right((wsctl._sigv4_authorization('GET', '/test.txt', '',
		'{host:examplebucket.s3.amazonaws.com,"range:bytes=0-9",x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,x-amz-date:20130524T000000Z}',
		pg_temp.empty_hash(), 'AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'us-east-1', 's3', '20130524T000000Z'))[1], 64),
	'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
	'S3 documentation: GetObject with a Range header');
SELECT is(split_part((pg_temp.suite('GET', '/', '', '{"My-Header1:  a   b  ",host:example.amazonaws.com,x-amz-date:20150830T123600Z}', pg_temp.empty_hash()))[2], E'\n', 5),
	'my-header1:a b', 'header names are lowercased, values trimmed and blanks folded');
SELECT ok(NOT has_function_privilege('wsctl_api', 'wsctl._sigv4_authorization(text, text, text, text[], text, text, text, text, text, text)', 'EXECUTE'),
	'the signer is granted to nobody');

SELECT * FROM finish();
ROLLBACK;
