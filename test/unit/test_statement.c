/*-------------------------------------------------------------------------
 * test_statement.c
 *	  TAP unit tests for src/statement.c (the statements data subjects
 *	  sign), cl_json_split() (src/json.c: the consent receipt's parts) and
 *	  cl_leaf_column() (src/leaf.c: a column of a leaf), pure code the
 *	  extension and the offline verifier share.
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "json.h"
#include "leaf.h"
#include "note.h"
#include "statement.h"
#include "tap.h"

/* ---------------------------------------------------------------------- */

#define ORIGIN "consent_ledger/0123456789abcdef0123456789abcdef"
#define GOOD "consent-ledger-consent/v1\norigin " ORIGIN "\nsubject p-17\npurpose research.x\n" \
	"action grant\nexpires 1800000000\ntime 1700000000\nnonce abcdefghijklmnop\n"

static bool
parses(const char *text, cl_statement *st)
{
	const char *err = NULL;
	bool		r = cl_statement_parse(text, strlen(text), st, &err);

	/* a refusal must say why: one that does not counts as accepted (and fails the test) */
	return r || err == NULL;
}

/* The statement with the first occurrence of from replaced by to. */
static char *
edit(const char *text, const char *from, const char *to)
{
	static char buf[4096];
	const char *p = strstr(text, from);

	if (p == NULL)
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int) (p - text), text, to, p + strlen(from));
	return buf;
}

static void
test_parse(void)
{
	cl_statement st;
	char		key[4096];
	unsigned char pk[32];
	char		pk64[64];

	ok(parses(GOOD, &st) && st.kind == CL_STMT_CONSENT && strcmp(st.subject, "p-17") == 0 &&
	   strcmp(st.purpose, "research.x") == 0 && !st.withdraw && !st.expires_never &&
	   st.expires == 1800000000 && st.time == 1700000000 && strcmp(st.origin, ORIGIN) == 0 &&
	   strcmp(st.nonce, "abcdefghijklmnop") == 0, "a consent statement parses, every field");
	ok(parses(edit(GOOD, "action grant\nexpires 1800000000", "action withdraw\nexpires never"), &st) &&
	   st.withdraw && st.expires_never, "a withdrawal with expires never");
	ok(!parses(edit(GOOD, "action grant\nexpires 1800000000", "action withdraw\nexpires 1800000000"), &st),
	   "a withdrawal with an expiry is refused");
	ok(!parses(edit(GOOD, "nonce abcdefghijklmnop\n", "nonce abcdefghijklmnop"), &st), "no final line feed");
	ok(!parses(edit(GOOD, "nonce abcdefghijklmnop\n", "nonce abcdefghijklmnop\n\n"), &st), "a trailing blank line");
	ok(!parses(edit(GOOD, "\nsubject", "\r\nsubject"), &st), "a carriage return");
	ok(!parses(edit(GOOD, "subject p-17", "subject p-17\t"), &st), "a control character in a value");
	ok(!parses(edit(GOOD, "subject p-17", "subject "), &st), "an empty value");
	ok(parses(edit(GOOD, "subject p-17", "subject  p-17"), &st) && strcmp(st.subject, " p-17") == 0,
	   "a value may start with a space (it is part of it)");
	ok(!parses(edit(GOOD, "subject p-17\npurpose research.x", "purpose research.x\nsubject p-17"), &st),
	   "lines out of order");
	ok(!parses(edit(GOOD, "consent-ledger-consent/v1", "consent-ledger-consent/v2"), &st), "another version");
	ok(!parses(edit(GOOD, "time 1700000000", "time 01700000000"), &st), "a leading zero");
	ok(!parses(edit(GOOD, "time 1700000000", "time +1700000000"), &st), "a sign");
	ok(!parses(edit(GOOD, "time 1700000000", "time 99999999999"), &st), "a time beyond 2^33");
	ok(!parses(edit(GOOD, "nonce abcdefghijklmnop", "nonce abcdefghijklmno"), &st), "a nonce of 15 characters");
	ok(!parses(edit(GOOD, "nonce abcdefghijklmnop", "nonce abcdefghijklmno!"), &st), "a nonce with another character");
	ok(!parses(edit(GOOD, "purpose research.x", "purpose 1research"), &st), "a purpose name not starting with a letter");
	ok(!parses(edit(GOOD, "origin " ORIGIN, "origin a b"), &st), "an origin with a space");
	ok(!parses(edit(GOOD, "action grant", "action Grant"), &st), "an unknown action");
	memset(key, 'x', 1024);
	key[1024] = '\0';
	ok(parses(edit(GOOD, "p-17", key), &st) && strlen(st.subject) == 1024, "a subject of 1024 bytes");
	strcat(key, "x");
	ok(!parses(edit(GOOD, "p-17", key), &st), "a subject of 1025 bytes");
	{
		char		nul[] = GOOD;
		const char *err = NULL;

		nul[40] = '\0';
		ok(!cl_statement_parse(nul, sizeof(nul) - 1, &st, &err) && err != NULL, "a NUL byte");
	}
	randombytes_buf(pk, sizeof(pk));
	cl_base64_encode(pk, 32, pk64);
	snprintf(key, sizeof(key), "consent-ledger-subject-key/v1\norigin %s\nsubject p-17\nkey %s\ntime 1700000000\nnonce abcdefghijklmnop\n",
			 ORIGIN, pk64);
	ok(parses(key, &st) && st.kind == CL_STMT_KEY && memcmp(st.key, pk, 32) == 0, "a key statement parses, its key");
	ok(!parses(edit(key, pk64, "AAAA"), &st), "a key of 3 bytes");
}

static void
test_signature(void)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char sig[crypto_sign_BYTES];
	unsigned char other[crypto_sign_PUBLICKEYBYTES];
	unsigned char osk[crypto_sign_SECRETKEYBYTES];
	char		text[] = GOOD;

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(other, osk);
	crypto_sign_detached(sig, NULL, (const unsigned char *) GOOD, strlen(GOOD), sk);
	ok(cl_statement_signature_ok(GOOD, strlen(GOOD), sig, pk), "a signature over the exact bytes verifies");
	ok(!cl_statement_signature_ok(GOOD, strlen(GOOD), sig, other), "not under another key");
	ok(!cl_statement_signature_ok(GOOD, strlen(GOOD) - 1, sig, pk), "not over the bytes without the last line feed");
	text[60] ^= 1;
	ok(!cl_statement_signature_ok(text, strlen(text), sig, pk), "not over a changed byte");
	sig[63] ^= 0x80;
	ok(!cl_statement_signature_ok(GOOD, strlen(GOOD), sig, pk), "not a changed signature");
}

static void
test_split(void)
{
	cl_json_part parts[8];
	int			n;
	const char *err;
	const char *doc = "{\"a\": {\"x\": [1, {\"y\": null}], \"z\": \"s\"}, \"b\": \"t\", \"c\": 7}";

	ok(cl_json_split(doc, strlen(doc), parts, 8, &n, &err) && n == 3 && strcmp(parts[0].key, "a") == 0 &&
	   parts[0].valuelen == strlen("{\"x\": [1, {\"y\": null}], \"z\": \"s\"}") &&
	   parts[0].value[0] == '{' && strncmp(parts[1].value, "\"t\"", parts[1].valuelen) == 0 &&
	   strncmp(parts[2].value, "7", parts[2].valuelen) == 0, "three parts, nested values kept whole");
	ok(!cl_json_split("{\"a\": 1, \"a\": 2}", 18, parts, 8, &n, &err), "a duplicate top-level key");
	ok(!cl_json_split("{\"a\": [1, 2}", 13, parts, 8, &n, &err), "unbalanced brackets");
	ok(!cl_json_split("{\"a\": 1.5}", 10, parts, 8, &n, &err), "a fraction");
	ok(!cl_json_split("{\"a\": -1}", 9, parts, 8, &n, &err), "a negative number");
	ok(!cl_json_split("{\"a\": [[[[[1]]]]]}", 18, parts, 8, &n, &err), "nesting deeper than 4 levels");
	ok(!cl_json_split("{\"a\": \"x}", 10, parts, 8, &n, &err), "an unterminated string");
	ok(!cl_json_split("{\"a\": 1} x", 11, parts, 8, &n, &err), "bytes after the object");
	ok(!cl_json_split("{\"a\":1,\"b\":2,\"c\":3}", 19, parts, 2, &n, &err), "more members than room");
}

static void
test_leaf_column(void)
{
	/* v3 txn 1 ord 0, two columns: "a" t:"hi", "b" i:258 */
	static const unsigned char leaf[] = {
		3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2,
		0, 1, 'a', 't', 0, 0, 0, 2, 'h', 'i',
		0, 1, 'b', 'i', 0, 0, 0, 0, 0, 0, 1, 2};
	uint8_t		tag;
	const uint8_t *v;
	size_t		n;

	ok(cl_leaf_column(leaf, sizeof(leaf), "a", &tag, &v, &n) == NULL && tag == 't' && n == 2 &&
	   memcmp(v, "hi", 2) == 0, "a text column: its bytes");
	ok(cl_leaf_column(leaf, sizeof(leaf), "b", &tag, &v, &n) == NULL && tag == 'i' && n == 8 && v[7] == 2 &&
	   v[6] == 1, "an integer column: its 8 bytes");
	ok(cl_leaf_column(leaf, sizeof(leaf), "c", &tag, &v, &n) == NULL && tag == 0, "an absent column: tag 0");
	ok(cl_leaf_column(leaf, sizeof(leaf) - 1, "a", &tag, &v, &n) != NULL, "a truncated leaf: an error");
}

int
main(void)
{
	if (sodium_init() < 0)
		return 2;
	test_parse();
	test_signature();
	test_split();
	test_leaf_column();
	return tap_done();
}
