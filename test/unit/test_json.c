/*-------------------------------------------------------------------------
 * test_json.c
 *	  TAP unit tests for src/json.c, the strict flat JSON reader.
 *
 * Build and run (from the repository root):
 *	cc -std=c99 -O2 -Wall -Wextra -Werror -Wmissing-prototypes -Isrc \
 *		test/unit/test_json.c src/json.c -o /tmp/t && /tmp/t
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tap.h"

/* ---------------------------------------------------------------------- */

static cl_json_object obj;

/*
 * Parses the NUL-terminated text; on success the result stays in obj
 * until the next call (which frees it).
 */
static bool
parse(const char *text)
{
	const char *err = NULL;
	bool		r;

	cl_json_free(&obj);
	r = cl_json_parse(text, strlen(text), &obj, &err);
	if (!r && (err == NULL || obj.nmembers != 0))
		return true;			/* a failure must set err and leave nothing: flag it */
	return r;
}

/* Parses text[0..len) (may contain NUL bytes). */
static bool
parse_n(const char *text, size_t len)
{
	const char *err = NULL;

	cl_json_free(&obj);
	return cl_json_parse(text, len, &obj, &err);
}

/* The string member key, or NULL. */
static const cl_json_member *
str(const char *key)
{
	return cl_json_get(&obj, key, CL_JSON_STRING);
}

static void
test_basic(void)
{
	const cl_json_member *m;

	ok(parse("{\"s\":\"x\",\"n\":0,\"b\":true,\"f\":false,\"z\":null,\"a\":[\"p\",\"q\"],\"e\":[]}"),
	   "an object with every value type parses");
	ok(obj.nmembers == 7, "it has 7 members");
	m = str("s");
	ok(m && strcmp(m->str, "x") == 0 && m->strlen_ == 1, "string member");
	m = cl_json_get(&obj, "n", CL_JSON_INT);
	ok(m && m->num == 0, "integer member 0");
	m = cl_json_get(&obj, "b", CL_JSON_BOOL);
	ok(m && m->boolean, "true member");
	m = cl_json_get(&obj, "f", CL_JSON_BOOL);
	ok(m && !m->boolean, "false member");
	ok(cl_json_get(&obj, "z", CL_JSON_NULL) != NULL, "null member");
	m = cl_json_get(&obj, "a", CL_JSON_ARRAY);
	ok(m && m->nitems == 2 && strcmp(m->items[0], "p") == 0 && strcmp(m->items[1], "q") == 0,
	   "array of strings member");
	m = cl_json_get(&obj, "e", CL_JSON_ARRAY);
	ok(m && m->nitems == 0, "empty array member");
	ok(cl_json_get(&obj, "s", CL_JSON_INT) == NULL, "cl_json_get checks the type");
	ok(cl_json_get(&obj, "missing", CL_JSON_STRING) == NULL, "cl_json_get of a missing key is NULL");

	ok(parse(" \t\r\n{ \"a\" : 1 , \"b\" : [ \"x\" , \"y\" ] }\n\r\t "), "whitespace everywhere RFC 8259 allows it");
	ok(parse("{}") && obj.nmembers == 0, "the empty object parses");
	ok(parse("{ }") && obj.nmembers == 0, "the empty object with a space parses");
	ok(parse("{\"\":\"\"}") && str("") && str("")->strlen_ == 0, "empty key and empty string");
	ok(parse_n("{\"a\":1}garbage", 7) && cl_json_get(&obj, "a", CL_JSON_INT)->num == 1,
	   "the length is honoured, not a NUL terminator");
}

static void
test_strings(void)
{
	const cl_json_member *m;
	const char *raw_utf8 = "{\"k\":\"caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80\"}";

	ok(parse("{\"k\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}") && (m = str("k")) != NULL &&
	   m->strlen_ == 8 && memcmp(m->str, "\"\\/\b\f\n\r\t", 8) == 0,
	   "all the short escapes");
	ok(parse("{\"k\":\"\\u00e9\"}") && strcmp(str("k")->str, "\xc3\xa9") == 0, "\\u00e9 gives 2-byte UTF-8");
	ok(parse("{\"k\":\"\\u00E9\"}") && strcmp(str("k")->str, "\xc3\xa9") == 0, "upper-case \\u hex digits");
	ok(parse("{\"k\":\"\\u2014\"}") && strcmp(str("k")->str, "\xe2\x80\x94") == 0, "\\u2014 gives the em dash");
	ok(parse("{\"k\":\"\\u0041\"}") && strcmp(str("k")->str, "A") == 0, "\\u0041 gives A");
	ok(parse("{\"k\":\"\\ud83d\\ude00\"}") && strcmp(str("k")->str, "\xf0\x9f\x98\x80") == 0,
	   "a surrogate pair gives 4-byte UTF-8");
	ok(parse("{\"k\":\"\\udbff\\udfff\"}") && strcmp(str("k")->str, "\xf4\x8f\xbf\xbf") == 0,
	   "the highest surrogate pair gives U+10FFFF");
	ok(parse("{\"k\":\"a\\u0000b\"}") && (m = str("k")) != NULL && m->strlen_ == 3 &&
	   strlen(m->str) == 1 && memcmp(m->str, "a\0b", 3) == 0,
	   "\\u0000 is kept, and strlen_ counts past it");
	ok(parse(raw_utf8) && strcmp(str("k")->str, "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80") == 0,
	   "raw UTF-8 of 2, 3 and 4 bytes");
	ok(parse("{\"k\":\"\x7f\"}"), "DEL (U+007F) is not a control character in JSON");

	ok(!parse("{\"k\":\"\\ud83d\"}"), "an unpaired high surrogate is rejected");
	ok(!parse("{\"k\":\"\\ud83dx\"}"), "a high surrogate followed by a character is rejected");
	ok(!parse("{\"k\":\"\\ud83d\\u0041\"}"), "a high surrogate followed by a non-surrogate is rejected");
	ok(!parse("{\"k\":\"\\ud83d\\ud83d\"}"), "two high surrogates are rejected");
	ok(!parse("{\"k\":\"\\ude00\"}"), "a lone low surrogate is rejected");
	ok(!parse("{\"k\":\"\\ude00\\ud83d\"}"), "a reversed surrogate pair is rejected");
	ok(!parse("{\"k\":\"\\ud83d\\u"), "a truncated surrogate pair is rejected");
	ok(!parse("{\"k\":\"\\u12\"}"), "a short \\u escape is rejected");
	ok(!parse("{\"k\":\"\\u12G4\"}"), "a \\u escape with a non-hex digit is rejected");
	ok(!parse("{\"k\":\"\\x41\"}"), "an unknown escape is rejected");
	ok(!parse("{\"k\":\"\\'\"}"), "a \\' escape is rejected");
	ok(!parse("{\"k\":\"a\x01" "b\"}"), "a raw control character in a string is rejected");
	ok(!parse("{\"k\":\"a\nb\"}"), "a raw newline in a string is rejected");
	ok(!parse("{\"k\":\"a\tb\"}"), "a raw tab in a string is rejected");
	ok(!parse_n("{\"k\":\"a\0b\"}", 10), "a raw NUL in a string is rejected");
	ok(!parse("{\"k\":\"\xff\"}"), "the byte 0xff is rejected");
	ok(!parse("{\"k\":\"\xc0\x80\"}"), "overlong 2-byte UTF-8 is rejected");
	ok(!parse("{\"k\":\"\xe0\x80\x80\"}"), "overlong 3-byte UTF-8 is rejected");
	ok(!parse("{\"k\":\"\xf0\x80\x80\x80\"}"), "overlong 4-byte UTF-8 is rejected");
	ok(!parse("{\"k\":\"\xed\xa0\x80\"}"), "a UTF-8 encoded surrogate is rejected");
	ok(!parse("{\"k\":\"\xf4\x90\x80\x80\"}"), "UTF-8 above U+10FFFF is rejected");
	ok(!parse("{\"k\":\"\xe2\x80\"}"), "truncated UTF-8 is rejected");
	ok(!parse("{\"k\":\"\x80\"}"), "a lone continuation byte is rejected");
	ok(!parse("{\"k\":\"abc"), "an unterminated string is rejected");
	ok(!parse("{\"k\":\"abc\\"), "a string ending in a backslash is rejected");
	ok(!parse("{\"k\":'abc'}"), "single quotes are rejected");
	ok(!parse("{k:\"abc\"}"), "an unquoted key is rejected");
}

static void
test_numbers(void)
{
	const cl_json_member *m;

	ok(parse("{\"n\":9223372036854775807}") && (m = cl_json_get(&obj, "n", CL_JSON_INT)) &&
	   m->num == 9223372036854775807ULL, "2^63-1 is accepted");
	ok(parse("{\"n\":1234567890}") && cl_json_get(&obj, "n", CL_JSON_INT)->num == 1234567890,
	   "an ordinary integer");
	ok(!parse("{\"n\":9223372036854775808}"), "2^63 is rejected");
	ok(!parse("{\"n\":99999999999999999999999}"), "a huge number is rejected");
	ok(!parse("{\"n\":-1}"), "a negative number is rejected");
	ok(!parse("{\"n\":-0}"), "-0 is rejected");
	ok(!parse("{\"n\":+1}"), "a plus sign is rejected");
	ok(!parse("{\"n\":01}"), "a leading zero is rejected");
	ok(!parse("{\"n\":00}"), "00 is rejected");
	ok(!parse("{\"n\":1.0}"), "a fraction is rejected");
	ok(!parse("{\"n\":1e3}"), "an exponent is rejected");
	ok(!parse("{\"n\":1E3}"), "an upper-case exponent is rejected");
	ok(!parse("{\"n\":.5}"), "a leading dot is rejected");
	ok(!parse("{\"n\":0x10}"), "hex is rejected");
	ok(!parse("{\"n\":NaN}"), "NaN is rejected");
	ok(!parse("{\"n\":Infinity}"), "Infinity is rejected");
}

static void
test_structure(void)
{
	char		buf[8192];
	size_t		i;

	ok(!parse("{\"o\":{}}"), "a nested object is rejected");
	ok(!parse("{\"o\":{\"a\":1}}"), "a nested object with members is rejected");
	ok(!parse("{\"a\":[1]}"), "an array of numbers is rejected");
	ok(!parse("{\"a\":[\"x\",1]}"), "a mixed array is rejected");
	ok(!parse("{\"a\":[[]]}"), "a nested array is rejected");
	ok(!parse("{\"a\":[{}]}"), "an array of objects is rejected");
	ok(!parse("{\"a\":[null]}"), "an array with null is rejected");
	ok(!parse("{\"a\":[\"x\",]}"), "a trailing comma in an array is rejected");
	ok(!parse("{\"a\":[\"x\" \"y\"]}"), "a missing comma in an array is rejected");
	ok(!parse("{\"a\":[\"x\""), "an unterminated array is rejected");

	ok(!parse("{\"a\":1,\"a\":2}"), "a duplicate key is rejected");
	ok(!parse("{\"a\":1,\"\\u0061\":2}"), "a duplicate key spelled with an escape is rejected");
	ok(parse("{\"a\":1,\"A\":2}"), "keys are case sensitive");
	ok(!parse("{\"a\\u0000b\":1}"), "a key containing U+0000 is rejected");

	ok(!parse("{\"a\":1,}"), "a trailing comma in an object is rejected");
	ok(!parse("{\"a\" 1}"), "a missing colon is rejected");
	ok(!parse("{\"a\":}"), "a missing value is rejected");
	ok(!parse("{\"a\":1 \"b\":2}"), "a missing comma is rejected");
	ok(!parse("{\"a\":1"), "an unterminated object is rejected");
	ok(!parse("{"), "a lone brace is rejected");
	ok(!parse(""), "the empty input is rejected");
	ok(!parse("   "), "whitespace only is rejected");
	ok(!parse("[]"), "a top-level array is rejected");
	ok(!parse("\"x\""), "a top-level string is rejected");
	ok(!parse("1"), "a top-level number is rejected");
	ok(!parse("{} x"), "trailing bytes are rejected");
	ok(!parse("{}{}"), "two objects are rejected");
	ok(!parse("\xef\xbb\xbf{}"), "a byte order mark is rejected");
	ok(!parse_n("{}\0", 3), "a trailing NUL byte is rejected");
	ok(!parse("{\"a\":tru}"), "a misspelled true is rejected");
	ok(!parse("{\"a\":nul}"), "a misspelled null is rejected");
	ok(!parse("{\"a\":True}"), "a capitalised True is rejected");
	ok(!parse("{\"a\":truex}"), "true followed by letters is rejected");
	ok(!parse("{\"a\":1}\v"), "a vertical tab is not JSON whitespace");
	ok(!parse("{/*c*/}"), "comments are rejected");

	/* limits */
	strcpy(buf, "{");
	for (i = 0; i < CL_JSON_MAX_MEMBERS; i++)
		sprintf(buf + strlen(buf), "%s\"k%zu\":%zu", i ? "," : "", i, i);
	strcat(buf, "}");
	ok(parse(buf) && obj.nmembers == CL_JSON_MAX_MEMBERS, "CL_JSON_MAX_MEMBERS members are accepted");
	buf[strlen(buf) - 1] = '\0';
	strcat(buf, ",\"extra\":1}");
	ok(!parse(buf), "CL_JSON_MAX_MEMBERS + 1 members are rejected");

	strcpy(buf, "{\"a\":[");
	for (i = 0; i < CL_JSON_MAX_ARRAY; i++)
		sprintf(buf + strlen(buf), "%s\"%zu\"", i ? "," : "", i);
	strcat(buf, "]}");
	ok(parse(buf) && cl_json_get(&obj, "a", CL_JSON_ARRAY)->nitems == CL_JSON_MAX_ARRAY &&
	   strcmp(cl_json_get(&obj, "a", CL_JSON_ARRAY)->items[CL_JSON_MAX_ARRAY - 1], "127") == 0,
	   "CL_JSON_MAX_ARRAY items are accepted");
	buf[strlen(buf) - 2] = '\0';
	strcat(buf, ",\"x\"]}");
	ok(!parse(buf), "CL_JSON_MAX_ARRAY + 1 items are rejected");
}

static void
test_memory(void)
{
	size_t		n = 1 << 20;
	char	   *big = malloc(n + 16);
	cl_json_object o;
	const char *err = NULL;
	bool		r;

	if (big == NULL)
	{
		ok(false, "malloc for the large string");
		return;
	}
	memcpy(big, "{\"k\":\"", 6);
	memset(big + 6, 'x', n);
	memcpy(big + 6 + n, "\"}", 3);
	ok(parse(big) && str("k")->strlen_ == n, "a 1 MiB string parses");
	/* a failure at the very end frees everything (checked under ASan/valgrind) */
	memcpy(big + 6 + n, "\",}", 4);
	ok(!parse(big), "a failure after a large string is reported");
	free(big);

	r = cl_json_parse("{\"a\":\"x\",\"b\":[\"y\"],\"c\":-1}", 26, &o, &err);
	ok(!r && err != NULL && o.nmembers == 0, "a failed parse sets err and leaves nothing to free");
	ok(cl_json_parse("{\"a\":\"x\"}", 9, &o, &err), "parse into a second object");
	cl_json_free(&o);
	cl_json_free(&o);
	ok(o.nmembers == 0, "cl_json_free twice is safe");
}

/* Runs the tests; exit status 0 only when all pass. */
int
main(void)
{
	memset(&obj, 0, sizeof(obj));
	test_basic();
	test_strings();
	test_numbers();
	test_structure();
	test_memory();
	cl_json_free(&obj);
	return tap_done();
}
