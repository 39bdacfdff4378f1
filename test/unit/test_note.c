/*-------------------------------------------------------------------------
 * test_note.c
 *	  TAP unit tests for src/note.c: base64, hex, C2SP key ids, checkpoint
 *	  bodies, signed notes and export lines.
 *
 * Build and run (from the repository root):
 *	cc -std=c99 -O2 -Wall -Wextra -Werror -Wmissing-prototypes -Isrc \
 *		test/unit/test_note.c src/note.c src/merkle.c -lsodium -o /tmp/t && /tmp/t
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "note.h"
#include "tap.h"

/* ---------------------------------------------------------------------- */

#define EMDASH "\xe2\x80\x94"

static uint8_t pk1[32];
static uint8_t sk1[64];
static uint8_t pk2[32];
static uint8_t sk2[64];
static cl_hash root_a;
static cl_hash prev_a;
static uint8_t junk[128];		/* arbitrary bytes for odd-sized fields */

/* Makes the two deterministic test keys and hashes. */
static void
setup(void)
{
	uint8_t		seed[32];

	memset(seed, 0x11, sizeof(seed));
	crypto_sign_seed_keypair(pk1, sk1, seed);
	memset(seed, 0x22, sizeof(seed));
	crypto_sign_seed_keypair(pk2, sk2, seed);
	crypto_hash_sha256(root_a, (const uint8_t *) "root", 4);
	crypto_hash_sha256(prev_a, (const uint8_t *) "prev", 4);
	memset(junk, 0x5c, sizeof(junk));
}

/* Base64 of data into a static buffer (for building test notes). */
static const char *
b64(const uint8_t *data, size_t len)
{
	static char buf[4][12000];
	static int	which = 0;
	char	   *out = buf[which++ % 4];

	cl_base64_encode(data, len, out);
	return out;
}

/*
 * Signs body (NUL-terminated) with sk under keyname/pk and returns the
 * signature line "— name b64\n" in a static buffer.
 */
static const char *
sigline(const char *body, const char *keyname, const uint8_t *pk,
		const uint8_t *sk)
{
	static char buf[2][256];
	static int	which = 0;
	char	   *out = buf[which++ % 2];
	uint8_t		raw[68];

	cl_key_id(keyname, pk, raw);
	crypto_sign_detached(raw + 4, NULL, (const uint8_t *) body, strlen(body), sk);
	snprintf(out, 256, EMDASH " %s %s\n", keyname, b64(raw, 68));
	return out;
}

/* A signed test note: body + "\n" + signature by key 1, in a static buffer. */
static const char *
signed_note(const char *body)
{
	static char buf[2][CL_MAX_NOTE * 2];
	static int	which = 0;
	char	   *out = buf[which++ % 2];

	snprintf(out, sizeof(buf[0]), "%s\n%s", body, sigline(body, CL_KEY_NAME, pk1, sk1));
	return out;
}

/* True when the NUL-terminated note parses. */
static bool
parses(const char *note)
{
	cl_checkpoint cp;
	const char *err;

	return cl_checkpoint_parse(note, strlen(note), &cp, &err);
}

/* The standard valid body used by many tests, in a static buffer. */
static const char *
std_body(void)
{
	static char body[1024];
	size_t		n = cl_checkpoint_body("example.com/ledger", 5, root_a, 1700000000,
									   prev_a, body, sizeof(body));

	return n ? body : "";
}

/* A body from its five line texts (each without newline). */
static const char *
body5(const char *origin, const char *size, const char *root,
	  const char *time, const char *prev)
{
	static char buf[2][2048];
	static int	which = 0;
	char	   *out = buf[which++ % 2];

	snprintf(out, sizeof(buf[0]), "%s\n%s\n%s\n%s\n%s\n", origin, size, root, time, prev);
	return out;
}

/* ---------------------------------------------------------------------- */

static void
test_base64(void)
{
	static const char *vec[][2] = {
		{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
		{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}
	};
	static const char *bad[] = {
		"Zg=", "Zh==", "Zm9=", "Z===", "====", "=Zg=", "Zg==Zg==", "Zm9v\n",
		"Zm-v", "Zm_v", "Zm9v ", " Zm9", "Zg=\0", "Zm8=Zm8=", "Z", "Zm\xc3\xa9"
	};
	char		enc[80];
	uint8_t		dec[64];
	uint8_t		rnd[48];
	size_t		i;
	bool		all = true;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++)
	{
		size_t		n = strlen(vec[i][0]);

		cl_base64_encode((const uint8_t *) vec[i][0], n, enc);
		ok(strcmp(enc, vec[i][1]) == 0 && cl_base64_encoded_len(n) == strlen(vec[i][1]),
		   "base64 encode RFC 4648 vector \"%s\"", vec[i][0]);
		ok(cl_base64_decode(vec[i][1], strlen(vec[i][1]), dec, sizeof(dec)) == (long) n &&
		   memcmp(dec, vec[i][0], n) == 0,
		   "base64 decode RFC 4648 vector \"%s\"", vec[i][1]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		size_t		len = strlen(bad[i]);

		if (strcmp(bad[i], "Zg=") == 0 && i == 12)
			len = 4;			/* "Zg=\0": a NUL in place of '=' */
		ok(cl_base64_decode(bad[i], len, dec, sizeof(dec)) == -1,
		   "base64 rejects non-canonical or invalid input #%zu", i);
	}
	ok(cl_base64_decode("Zm9vYmFy", 8, dec, 5) == -1, "base64 rejects output longer than outmax");
	ok(cl_base64_decode("Zm9vYmFy", 8, dec, 6) == 6, "base64 accepts output exactly outmax");
	ok(cl_base64_decode("Zm9v", 0, dec, 0) == 0, "base64 of the empty string decodes to 0 bytes");

	randombytes_buf(rnd, sizeof(rnd));
	for (i = 0; i <= sizeof(rnd); i++)
	{
		cl_base64_encode(rnd, i, enc);
		if (strlen(enc) != cl_base64_encoded_len(i) ||
			cl_base64_decode(enc, strlen(enc), dec, sizeof(dec)) != (long) i ||
			memcmp(dec, rnd, i) != 0)
			all = false;
	}
	ok(all, "base64 round trips random data of lengths 0..48");
}

static void
test_hex(void)
{
	uint8_t		in[4] = {0x00, 0xff, 0x10, 0xab};
	uint8_t		out[8];
	char		enc[16];

	cl_hex_encode(in, 4, enc);
	ok(strcmp(enc, "00ff10ab") == 0, "hex encodes lower case");
	ok(cl_hex_decode("00ff10ab", 8, out, sizeof(out)) == 4 && memcmp(out, in, 4) == 0,
	   "hex decodes");
	ok(cl_hex_decode("", 0, out, 0) == 0, "hex decodes the empty string");
	ok(cl_hex_decode("00FF", 4, out, sizeof(out)) == -1, "hex rejects upper case");
	ok(cl_hex_decode("abc", 3, out, sizeof(out)) == -1, "hex rejects an odd length");
	ok(cl_hex_decode("0g", 2, out, sizeof(out)) == -1, "hex rejects a non-hex digit");
	ok(cl_hex_decode("0 ", 2, out, sizeof(out)) == -1, "hex rejects a space");
	ok(cl_hex_decode("00ff10ab", 8, out, 3) == -1, "hex rejects output longer than outmax");
}

/*
 * Known values from Go's golang.org/x/mod/sumdb/note documentation and
 * tests: the key "PeterNeumann+c74f20a3+ARpc2QcU..." and its signature
 * over the Peter Neumann quote.
 */
static void
test_known_values(void)
{
	const char *vkey_b64 = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
	const char *skey_b64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
	const char *text = "If you think cryptography is the answer to your problem,\n"
		"then you don't know what your problem is.\n";
	const char *want = "If you think cryptography is the answer to your problem,\n"
		"then you don't know what your problem is.\n"
		"\n"
		EMDASH " PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
	uint8_t		vkey[33];
	uint8_t		skey[33];
	uint8_t		pk[32];
	uint8_t		sk[64];
	uint8_t		keyid[4];
	uint8_t		sig[64];
	uint8_t		abc[32];
	char		buf[512];
	char		hex[65];
	size_t		len;
	static const uint8_t want_id[4] = {0xc7, 0x4f, 0x20, 0xa3};

	ok(cl_base64_decode(vkey_b64, strlen(vkey_b64), vkey, sizeof(vkey)) == 33 &&
	   vkey[0] == 0x01, "decode the Go verifier key (type byte 0x01 + 32 bytes)");
	cl_key_id("PeterNeumann", vkey + 1, keyid);
	ok(memcmp(keyid, want_id, 4) == 0, "C2SP key id of PeterNeumann is c74f20a3");

	ok(cl_base64_decode(skey_b64, strlen(skey_b64), skey, sizeof(skey)) == 33 &&
	   skey[0] == 0x01, "decode the Go signer key seed");
	crypto_sign_seed_keypair(pk, sk, skey + 1);
	ok(memcmp(pk, vkey + 1, 32) == 0, "the seed gives the published public key");

	crypto_sign_detached(sig, NULL, (const uint8_t *) text, strlen(text), sk);
	memcpy(buf, text, strlen(text));
	len = cl_note_append_signature(buf, strlen(text), sizeof(buf), "PeterNeumann", keyid, sig);
	ok(len == strlen(want) && memcmp(buf, want, len) == 0,
	   "signing the quote reproduces Go's signed note byte for byte");
	ok(crypto_sign_verify_detached(sig, (const uint8_t *) text, strlen(text), pk) == 0,
	   "its signature verifies over the text including the final newline");

	cl_note_hash("abc", 3, abc);
	cl_hex_encode(abc, 32, hex);
	ok(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
	   "cl_note_hash is SHA-256 (FIPS 180-2 \"abc\")");
}

static void
test_body(void)
{
	char		buf[1024];
	char		want[1024];
	char		big[300];
	size_t		n;

	n = cl_checkpoint_body("example.com/ledger", 5, root_a, 1700000000, prev_a,
						   buf, sizeof(buf));
	snprintf(want, sizeof(want), "example.com/ledger\n5\n%s\ntime 1700000000\nprev %s\n",
			 b64(root_a, 32), b64(prev_a, 32));
	ok(n == strlen(want) && strcmp(buf, want) == 0, "cl_checkpoint_body writes the exact five lines");
	ok(cl_checkpoint_body("example.com/ledger", 5, root_a, 1700000000, prev_a, buf, n) == 0,
	   "cl_checkpoint_body: 0 when the buffer has no room for the NUL");
	ok(cl_checkpoint_body("example.com/ledger", 5, root_a, 1700000000, prev_a, buf, n + 1) == n,
	   "cl_checkpoint_body: fits exactly with the NUL");
	ok(cl_checkpoint_body("", 5, root_a, 0, prev_a, buf, sizeof(buf)) == 0,
	   "cl_checkpoint_body rejects an empty origin");
	ok(cl_checkpoint_body("a b", 5, root_a, 0, prev_a, buf, sizeof(buf)) == 0,
	   "cl_checkpoint_body rejects an origin with a space");
	ok(cl_checkpoint_body("a+b", 5, root_a, 0, prev_a, buf, sizeof(buf)) == 0,
	   "cl_checkpoint_body rejects an origin with '+'");
	ok(cl_checkpoint_body("a\nb", 5, root_a, 0, prev_a, buf, sizeof(buf)) == 0,
	   "cl_checkpoint_body rejects an origin with a newline");
	memset(big, 'a', 256);
	big[256] = '\0';
	ok(cl_checkpoint_body(big, 5, root_a, 0, prev_a, buf, sizeof(buf)) == 0,
	   "cl_checkpoint_body rejects a 256-byte origin");
	big[255] = '\0';
	ok(cl_checkpoint_body(big, 5, root_a, 0, prev_a, buf, sizeof(buf)) > 0,
	   "cl_checkpoint_body accepts a 255-byte origin");
	ok(cl_checkpoint_body("o", (uint64_t) INT64_MAX + 1, root_a, 0, prev_a, buf, sizeof(buf)) == 0,
	   "cl_checkpoint_body rejects a size of 2^63");
	ok(cl_checkpoint_body("o", 0, root_a, -1, prev_a, buf, sizeof(buf)) == 0,
	   "cl_checkpoint_body rejects a negative time");
}

static void
test_roundtrip(void)
{
	char		buf[CL_MAX_NOTE];
	cl_checkpoint cp;
	const char *err = NULL;
	uint8_t		keyid[4];
	uint8_t		sig[64];
	size_t		bodylen;
	size_t		len;
	bool		good;
	cl_hash		h;
	cl_hash		h2;

	bodylen = cl_checkpoint_body("example.com/ledger", 5, root_a, 1700000000, prev_a,
								 buf, sizeof(buf));
	crypto_sign_detached(sig, NULL, (const uint8_t *) buf, bodylen, sk1);
	cl_key_id(CL_KEY_NAME, pk1, keyid);
	ok(cl_note_append_signature(buf, bodylen, bodylen + 10, CL_KEY_NAME, keyid, sig) == 0,
	   "cl_note_append_signature: 0 when it does not fit");
	ok(cl_note_append_signature(buf, bodylen, sizeof(buf), "bad name", keyid, sig) == 0,
	   "cl_note_append_signature: 0 for an invalid key name");
	len = cl_note_append_signature(buf, bodylen, sizeof(buf), CL_KEY_NAME, keyid, sig);
	ok(len > bodylen && buf[bodylen] == '\n' &&
	   memcmp(buf + bodylen + 1, EMDASH " consent_ledger ", 19) == 0 && buf[len - 1] == '\n',
	   "cl_note_append_signature writes a blank line and an em dash signature line");

	good = cl_checkpoint_parse(buf, len, &cp, &err);
	ok(good, "round trip: the signed checkpoint parses%s%s", good ? "" : ": ", good ? "" : err);
	ok(strcmp(cp.origin, "example.com/ledger") == 0 && cp.size == 5 &&
	   memcmp(cp.root, root_a, 32) == 0 && cp.time == 1700000000 &&
	   memcmp(cp.prev, prev_a, 32) == 0,
	   "round trip: origin, size, root, time and prev come back");
	ok(cp.bodylen == bodylen, "round trip: bodylen covers the five body lines");
	ok(cp.nsigs == 1 && strcmp(cp.sigs[0].keyname, CL_KEY_NAME) == 0 &&
	   memcmp(cp.sigs[0].keyid, keyid, 4) == 0 && memcmp(cp.sigs[0].sig, sig, 64) == 0,
	   "round trip: the signature line comes back");
	ok(cl_checkpoint_verify(&cp, buf, CL_KEY_NAME, pk1), "round trip: verifies under the signing key");
	ok(!cl_checkpoint_verify(&cp, buf, CL_KEY_NAME, pk2), "does not verify under another key");
	ok(!cl_checkpoint_verify(&cp, buf, "other_name", pk1), "does not verify under another key name");

	cl_note_hash(buf, len, h);
	crypto_hash_sha256(h2, (const uint8_t *) buf, len);
	ok(memcmp(h, h2, 32) == 0, "cl_note_hash hashes the complete note");

	/* a tampered body byte: change the time */
	{
		char		t[CL_MAX_NOTE];
		char	   *p;

		memcpy(t, buf, len);
		p = strstr(t, "time 1700000000");
		p[14] = '1';
		ok(cl_checkpoint_parse(t, len, &cp, &err), "a note with a tampered time still parses");
		ok(!cl_checkpoint_verify(&cp, t, CL_KEY_NAME, pk1), "a tampered body byte fails verification");
	}
	/* a tampered signature byte */
	{
		char		t[CL_MAX_NOTE];

		memcpy(t, buf, len);
		t[len - 10] = (t[len - 10] == 'A') ? 'B' : 'A';
		ok(cl_checkpoint_parse(t, len, &cp, &err) && !cl_checkpoint_verify(&cp, t, CL_KEY_NAME, pk1),
		   "a tampered signature byte fails verification");
	}
	/* the right name and signature but a wrong key id */
	{
		char		t[CL_MAX_NOTE];
		uint8_t		badid[4];
		size_t		l;

		memcpy(t, buf, bodylen);
		memcpy(badid, keyid, 4);
		badid[0] ^= 1;
		l = cl_note_append_signature(t, bodylen, sizeof(t), CL_KEY_NAME, badid, sig);
		ok(cl_checkpoint_parse(t, l, &cp, &err) && !cl_checkpoint_verify(&cp, t, CL_KEY_NAME, pk1),
		   "a valid signature under a wrong key id is not accepted");
	}
}

static void
test_cosignatures(void)
{
	const char *body = std_body();
	char		note[CL_MAX_NOTE * 2];
	cl_checkpoint cp;
	const char *err;
	uint8_t		raw[4 + 72];
	uint8_t		bad[68];
	int			i;

	/* a witness cosignature with another key */
	snprintf(note, sizeof(note), "%s\n%s%s", body, sigline(body, CL_KEY_NAME, pk1, sk1),
			 sigline(body, "witness.example/w1", pk2, sk2));
	ok(cl_checkpoint_parse(note, strlen(note), &cp, &err) && cp.nsigs == 2,
	   "a cosignature line from another key parses");
	ok(cl_checkpoint_verify(&cp, note, CL_KEY_NAME, pk1),
	   "the log signature verifies next to a cosignature");
	ok(cl_checkpoint_verify(&cp, note, "witness.example/w1", pk2),
	   "the cosignature verifies under the witness key");

	/* cosignature first, log signature second */
	snprintf(note, sizeof(note), "%s\n%s%s", body, sigline(body, "witness.example/w1", pk2, sk2),
			 sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(cl_checkpoint_parse(note, strlen(note), &cp, &err) &&
	   cl_checkpoint_verify(&cp, note, CL_KEY_NAME, pk1),
	   "the log signature verifies after a cosignature line");

	/* a timestamped cosignature (4 + 72 bytes) is skipped, not rejected */
	memset(raw, 0x5a, sizeof(raw));
	snprintf(note, sizeof(note), "%s\n%s" EMDASH " witness.example/w2 %s\n", body,
			 sigline(body, CL_KEY_NAME, pk1, sk1), b64(raw, sizeof(raw)));
	ok(cl_checkpoint_parse(note, strlen(note), &cp, &err) && cp.nsigs == 1 &&
	   cl_checkpoint_verify(&cp, note, CL_KEY_NAME, pk1),
	   "a signature line of another length is ignored");

	/* only non-Ed25519 lines: rejected */
	snprintf(note, sizeof(note), "%s\n" EMDASH " witness.example/w2 %s\n", body, b64(raw, sizeof(raw)));
	ok(!parses(note), "a note with no Ed25519-sized signature line is rejected");

	/* an unknown key with our name but another key id: ignored */
	cl_key_id(CL_KEY_NAME, pk2, bad);
	memset(bad + 4, 0x33, 64);
	snprintf(note, sizeof(note), "%s\n" EMDASH " %s %s\n%s", body, CL_KEY_NAME, b64(bad, 68),
			 sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(cl_checkpoint_parse(note, strlen(note), &cp, &err) && cp.nsigs == 2 &&
	   cl_checkpoint_verify(&cp, note, CL_KEY_NAME, pk1),
	   "a signature of an unknown key with the same name is ignored");

	/* our key id with a bad signature next to a good one: rejected */
	cl_key_id(CL_KEY_NAME, pk1, bad);
	snprintf(note, sizeof(note), "%s\n%s" EMDASH " %s %s\n", body,
			 sigline(body, CL_KEY_NAME, pk1, sk1), CL_KEY_NAME, b64(bad, 68));
	ok(cl_checkpoint_parse(note, strlen(note), &cp, &err) &&
	   !cl_checkpoint_verify(&cp, note, CL_KEY_NAME, pk1),
	   "a failing signature of the known key rejects the note");

	/* a witness signature alone does not verify for the log key */
	snprintf(note, sizeof(note), "%s\n%s", body, sigline(body, "witness.example/w1", pk2, sk2));
	ok(cl_checkpoint_parse(note, strlen(note), &cp, &err) &&
	   !cl_checkpoint_verify(&cp, note, CL_KEY_NAME, pk1),
	   "a note signed only by another key does not verify");

	/* CL_MAX_SIGLINES lines are accepted, one more is not */
	snprintf(note, sizeof(note), "%s\n", body);
	for (i = 0; i < CL_MAX_SIGLINES; i++)
		strcat(note, sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(cl_checkpoint_parse(note, strlen(note), &cp, &err) && cp.nsigs == CL_MAX_SIGLINES &&
	   cl_checkpoint_verify(&cp, note, CL_KEY_NAME, pk1),
	   "CL_MAX_SIGLINES signature lines are accepted");
	strcat(note, sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(!parses(note), "CL_MAX_SIGLINES + 1 signature lines are rejected");
}

/* A note of exactly total bytes: the standard one plus a padding signature line. */
static size_t
sized_note(char *out, size_t total)
{
	const char *base = signed_note(std_body());
	size_t		blen = strlen(base);
	size_t		rest = total - blen;	/* bytes for the padding line */
	size_t		nb = (rest - 6) / 4 * 3;	/* decoded size: leaves room for the name */
	size_t		b64len;
	size_t		namelen;
	uint8_t		raw[CL_MAX_NOTE];

	/* line = 3 (dash) + 1 + name + 1 + b64 + 1 */
	for (;;)
	{
		b64len = cl_base64_encoded_len(nb);
		if (b64len + 6 + 1 <= rest)
			break;
		nb -= 3;
	}
	namelen = rest - 6 - b64len;
	memset(raw, 0x77, nb);
	memcpy(out, base, blen);
	memcpy(out + blen, EMDASH " ", 4);
	memset(out + blen + 4, 'w', namelen);
	out[blen + 4 + namelen] = ' ';
	cl_base64_encode(raw, nb, out + blen + 5 + namelen);
	out[total - 1] = '\n';
	out[total] = '\0';
	return strlen(out);
}

static void
test_rejections(void)
{
	char		r[45];
	char		p[45];
	char		prevline[64];
	char		big[CL_MAX_NOTE + 64];
	char		note[CL_MAX_NOTE * 2];
	char		origin[300];
	const char *body = std_body();
	cl_checkpoint cp;
	const char *err;
	cl_hash		badroot;
	char		rootbad[64];

	cl_base64_encode(root_a, 32, r);
	cl_base64_encode(prev_a, 32, p);
	snprintf(prevline, sizeof(prevline), "prev %s", p);

	ok(parses(signed_note(body5("o", "5", r, "time 1", prevline))), "a minimal valid note parses");
	ok(!parses(""), "the empty note is rejected");
	{
		const char *n = signed_note(body5("o", "5", r, "time 1", prevline));

		ok(!cl_checkpoint_parse(n, strlen(n) - 1, &cp, &err), "a note without its final newline is rejected");
		ok(!cl_checkpoint_parse(n, strlen(n) - 30, &cp, &err), "a truncated note is rejected");
	}

	/* origin */
	ok(!parses(signed_note(body5("", "5", r, "time 1", prevline))), "an empty origin is rejected");
	ok(!parses(signed_note(body5("a b", "5", r, "time 1", prevline))), "an origin with a space is rejected");
	ok(!parses(signed_note(body5("a+b", "5", r, "time 1", prevline))), "an origin with '+' is rejected");
	ok(!parses(signed_note(body5("a\tb", "5", r, "time 1", prevline))), "an origin with a tab is rejected");
	ok(!parses(signed_note(body5("a\x01" "b", "5", r, "time 1", prevline))), "an origin with a control character is rejected");
	ok(!parses(signed_note(body5("a\xc2\xa0" "b", "5", r, "time 1", prevline))), "an origin with U+00A0 (a Unicode space) is rejected");
	ok(!parses(signed_note(body5("a\xff" "b", "5", r, "time 1", prevline))), "an origin with invalid UTF-8 is rejected");
	ok(!parses(signed_note(body5("a\xc0\xaf", "5", r, "time 1", prevline))), "an origin with overlong UTF-8 is rejected");
	ok(parses(signed_note(body5("caf\xc3\xa9.example/log", "5", r, "time 1", prevline))), "an origin with non-ASCII UTF-8 is accepted");
	memset(origin, 'a', 256);
	origin[256] = '\0';
	ok(!parses(signed_note(body5(origin, "5", r, "time 1", prevline))), "a 256-byte origin is rejected");
	origin[255] = '\0';
	ok(parses(signed_note(body5(origin, "5", r, "time 1", prevline))), "a 255-byte origin is accepted");

	/* tree size */
	ok(parses(signed_note(body5("o", "0", r, "time 1", prevline))), "tree size 0 is accepted");
	ok(!parses(signed_note(body5("o", "05", r, "time 1", prevline))), "a tree size with a leading zero is rejected");
	ok(!parses(signed_note(body5("o", "00", r, "time 1", prevline))), "tree size 00 is rejected");
	ok(!parses(signed_note(body5("o", "-1", r, "time 1", prevline))), "a negative tree size is rejected");
	ok(!parses(signed_note(body5("o", "+5", r, "time 1", prevline))), "a tree size with '+' is rejected");
	ok(!parses(signed_note(body5("o", "", r, "time 1", prevline))), "an empty tree size is rejected");
	ok(!parses(signed_note(body5("o", "5 ", r, "time 1", prevline))), "a tree size with a trailing space is rejected");
	ok(!parses(signed_note(body5("o", "0x5", r, "time 1", prevline))), "a hex tree size is rejected");
	ok(parses(signed_note(body5("o", "9223372036854775807", r, "time 1", prevline))), "tree size 2^63-1 is accepted");
	ok(!parses(signed_note(body5("o", "9223372036854775808", r, "time 1", prevline))), "tree size 2^63 is rejected");
	ok(!parses(signed_note(body5("o", "18446744073709551616", r, "time 1", prevline))), "tree size 2^64 is rejected");

	/* root */
	memset(badroot, 0, 32);
	cl_base64_encode(badroot, 32, rootbad);
	rootbad[42] = 'B';			/* "...AB=": non-zero pad bits */
	ok(!parses(signed_note(body5("o", "5", rootbad, "time 1", prevline))), "a non-canonical base64 root is rejected");
	ok(!parses(signed_note(body5("o", "5", b64(root_a, 31), "time 1", prevline))), "a 31-byte root is rejected");
	ok(!parses(signed_note(body5("o", "5", b64(junk, 33), "time 1", prevline))), "a 33-byte root is rejected");
	{
		char		nopad[64];

		strcpy(nopad, r);
		nopad[43] = '\0';
		ok(!parses(signed_note(body5("o", "5", nopad, "time 1", prevline))), "an unpadded root is rejected");
	}

	/* time */
	ok(parses(signed_note(body5("o", "5", r, "time 0", prevline))), "time 0 is accepted");
	ok(!parses(signed_note(body5("o", "5", r, "time -1", prevline))), "a negative time is rejected");
	ok(!parses(signed_note(body5("o", "5", r, "time 01", prevline))), "a time with a leading zero is rejected");
	ok(!parses(signed_note(body5("o", "5", r, "time 1.5", prevline))), "a fractional time is rejected");
	ok(!parses(signed_note(body5("o", "5", r, "time abc", prevline))), "a non-decimal time is rejected");
	ok(!parses(signed_note(body5("o", "5", r, "time ", prevline))), "an empty time is rejected");
	ok(!parses(signed_note(body5("o", "5", r, "time  1", prevline))), "a time with two spaces is rejected");
	ok(!parses(signed_note(body5("o", "5", r, "Time 1", prevline))), "a misspelled time line is rejected");
	ok(!parses(signed_note(body5("o", "5", r, "time 9223372036854775808", prevline))), "a time of 2^63 is rejected");

	/* prev */
	{
		char		body4[1024];
		char		badprev[64];

		snprintf(body4, sizeof(body4), "o\n5\n%s\ntime 1\n", r);
		ok(!parses(signed_note(body4)), "a note without the prev line is rejected");
		ok(!parses(signed_note(body5("o", "5", r, "time 1", "prev"))), "an empty prev line is rejected");
		snprintf(badprev, sizeof(badprev), "prev %s", b64(prev_a, 30));
		ok(!parses(signed_note(body5("o", "5", r, "time 1", badprev))), "a prev of 30 bytes is rejected");
		ok(!parses(signed_note(body5("o", "5", r, prevline, "time 1"))), "prev and time swapped are rejected");
	}

	/* layout */
	snprintf(note, sizeof(note), "%s%s", body, sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(!parses(note), "a note without the blank line is rejected");
	snprintf(note, sizeof(note), "%sextra\n\n%s", body, sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(!parses(note), "an extra body line is rejected");
	snprintf(note, sizeof(note), "%s\n", body);
	ok(!parses(note), "a note with no signature line is rejected");
	ok(!parses(body), "a bare body is rejected");
	snprintf(note, sizeof(note), "%s\n\n%s", body, sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(!parses(note), "two blank lines are rejected");
	snprintf(note, sizeof(note), "%s\n%s\n", body, sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(!parses(note), "a blank line after the signatures is rejected");
	snprintf(note, sizeof(note), "%s\n-- %s", body, sigline(body, CL_KEY_NAME, pk1, sk1) + 4);
	ok(!parses(note), "a signature line with \"--\" instead of an em dash is rejected");
	snprintf(note, sizeof(note), "%s\n" EMDASH "%s", body, sigline(body, CL_KEY_NAME, pk1, sk1) + 4);
	ok(!parses(note), "a signature line without the space after the em dash is rejected");
	snprintf(note, sizeof(note), "%s\n" EMDASH "  %s", body, sigline(body, CL_KEY_NAME, pk1, sk1) + 4);
	ok(!parses(note), "a signature line with an empty key name is rejected");
	snprintf(note, sizeof(note), "%s\n" EMDASH " consent_ledger\n", body);
	ok(!parses(note), "a signature line without a signature is rejected");
	snprintf(note, sizeof(note), "%s\n" EMDASH " consent_ledger !!!!\n", body);
	ok(!parses(note), "a signature line with invalid base64 is rejected");
	snprintf(note, sizeof(note), "%s\n" EMDASH " consent_ledger AAAA\n", body);
	ok(!parses(note), "a signature shorter than key id + 1 byte is rejected");
	snprintf(note, sizeof(note), "%s\n" EMDASH " consent_ledger %s\n", body, b64(junk, 67));
	ok(!parses(note), "a lone 4+63-byte signature line leaves no Ed25519 signature: rejected");
	{
		const char *sl = sigline(body, CL_KEY_NAME, pk1, sk1);

		snprintf(note, sizeof(note), "%s\n%.*s\r\n", body, (int) strlen(sl) - 1, sl);
		ok(!parses(note), "a CRLF line end is rejected");
		snprintf(note, sizeof(note), "%s\n%.*s \n", body, (int) strlen(sl) - 1, sl);
		ok(!parses(note), "a trailing space after the signature is rejected");
	}
	{
		const char *n = signed_note(body);
		size_t		l = strlen(n);

		memcpy(note, n, l);
		note[3] = '\0';
		ok(!cl_checkpoint_parse(note, l, &cp, &err), "a NUL byte in the note is rejected");
	}

	/* size limit */
	ok(sized_note(big, CL_MAX_NOTE) == CL_MAX_NOTE && parses(big),
	   "a note of exactly CL_MAX_NOTE bytes is accepted");
	ok(sized_note(big, CL_MAX_NOTE + 1) == CL_MAX_NOTE + 1 && !parses(big),
	   "a note of CL_MAX_NOTE + 1 bytes is rejected");

	/* failed parse leaves *out zeroed and *err set */
	err = NULL;
	memset(&cp, 0xff, sizeof(cp));
	ok(!cl_checkpoint_parse("x\n", 2, &cp, &err) && err != NULL && cp.nsigs == 0 && cp.bodylen == 0,
	   "a failed parse sets err and clears the output");
}

static void
test_export_lines(void)
{
	cl_export_line l;
	const char *err;
	char		line[CL_MAX_NOTE * 2];
	const char *note = signed_note(std_body());
	char		pkline[128];

#define PARSE(s) cl_export_parse_line((s), strlen(s), &l, &err)

	ok(PARSE("consent-ledger-export 1") && l.kind == CL_EXPORT_HEADER && l.count == 1,
	   "export header parses with its version");
	ok(!PARSE("consent-ledger-export 01"), "export header with a leading zero is rejected");
	ok(!PARSE("consent-ledger-export"), "export header without a version is rejected");
	ok(PARSE("origin example.com/ledger") && l.kind == CL_EXPORT_ORIGIN &&
	   strcmp(l.text, "example.com/ledger") == 0 && l.data == NULL, "origin record parses");
	ok(!PARSE("origin "), "empty origin record is rejected");
	ok(!PARSE("origin a b"), "origin record with a space is rejected");
	ok(!PARSE("origin a+b"), "origin record with '+' is rejected");

	snprintf(pkline, sizeof(pkline), "key consent_ledger %s", b64(pk1, 32));
	ok(PARSE(pkline) && l.kind == CL_EXPORT_KEY && strcmp(l.text, CL_KEY_NAME) == 0 &&
	   memcmp(l.pubkey, pk1, 32) == 0, "key record parses");
	snprintf(pkline, sizeof(pkline), "key consent_ledger %s", b64(pk1, 31));
	ok(!PARSE(pkline), "key record with a 31-byte key is rejected");
	ok(!PARSE("key consent_ledger"), "key record without a key is rejected");

	ok(PARSE("leaf 00ff") && l.kind == CL_EXPORT_LEAF && l.datalen == 2 &&
	   l.data[0] == 0 && l.data[1] == 0xff, "leaf record parses to its bytes");
	free(l.data);
	ok(PARSE("leaf ") && l.kind == CL_EXPORT_LEAF && l.datalen == 0 && l.data != NULL,
	   "an empty leaf parses");
	free(l.data);
	ok(!PARSE("leaf 0") && l.data == NULL, "leaf record with odd hex is rejected");
	ok(!PARSE("leaf 00FF") && l.data == NULL, "leaf record with upper-case hex is rejected");
	ok(!PARSE("leaf 00 ff"), "leaf record with a space is rejected");
	ok(!PARSE("leaf"), "leaf record without data is rejected");
	ok(!PARSE("leaf 00\r"), "leaf record with a carriage return is rejected");

	snprintf(line, sizeof(line), "checkpoint %s", b64((const uint8_t *) note, strlen(note)));
	ok(PARSE(line) && l.kind == CL_EXPORT_CHECKPOINT && l.datalen == strlen(note) &&
	   memcmp(l.data, note, l.datalen) == 0, "checkpoint record decodes the note");
	free(l.data);
	ok(!PARSE("checkpoint "), "empty checkpoint record is rejected");
	ok(!PARSE("checkpoint Zg=") && l.data == NULL, "checkpoint record with bad base64 is rejected");
	{
		static uint8_t huge[CL_MAX_NOTE + 3];

		memset(huge, 'x', sizeof(huge));
		snprintf(line, sizeof(line), "checkpoint %s", b64(huge, sizeof(huge)));
		ok(!PARSE(line) && l.data == NULL, "checkpoint record longer than CL_MAX_NOTE is rejected");
	}

	ok(PARSE("end 5") && l.kind == CL_EXPORT_END && l.count == 5, "end record parses");
	ok(PARSE("end 0") && l.count == 0, "end 0 parses");
	ok(!PARSE("end 05"), "end record with a leading zero is rejected");
	ok(!PARSE("end -1"), "negative end count is rejected");
	ok(!PARSE("end 5 "), "end record with a trailing space is rejected");
	ok(!PARSE("end"), "end record without a count is rejected");
	ok(!PARSE("end 9223372036854775808"), "end count of 2^63 is rejected");
	ok(!PARSE("foo bar") && l.data == NULL, "an unknown record is rejected");
	ok(!PARSE(""), "an empty line is rejected");
	ok(!PARSE("Leaf 00"), "record words are case sensitive");
	ok(!cl_export_parse_line("leaf 00", 6, &l, &err), "the length is honoured, not the NUL");

#undef PARSE
}

/* Key rotation statements: both keys sign; anything less endorses nothing. */
static void
test_rotations(void)
{
	char		body[512];
	char		note[2048];
	char		bad[2048];
	cl_key_rotation r;
	const char *err;
	size_t		n = cl_rotation_body(pk1, pk2, 1700000000, body, sizeof(body));

	ok(n > 0 && strncmp(body, "consent_ledger key rotation\nold ", 32) == 0,
	   "rotation body starts with its header and the old key");
	snprintf(note, sizeof(note), "%s\n%s%s", body,
			 sigline(body, CL_KEY_NAME, pk1, sk1), sigline(body, CL_KEY_NAME, pk2, sk2));
	ok(cl_rotation_parse(note, strlen(note), &r, &err), "rotation statement parses");
	ok(memcmp(r.oldpk, pk1, 32) == 0 && memcmp(r.newpk, pk2, 32) == 0 && r.time == 1700000000,
	   "rotation statement: old key, new key, time");
	ok(cl_rotation_verify(&r, note), "signed by both keys: verifies");

	snprintf(bad, sizeof(bad), "%s\n%s", body, sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(cl_rotation_parse(bad, strlen(bad), &r, &err) && !cl_rotation_verify(&r, bad),
	   "signed by the old key only: does not verify");
	snprintf(bad, sizeof(bad), "%s\n%s", body, sigline(body, CL_KEY_NAME, pk2, sk2));
	ok(cl_rotation_parse(bad, strlen(bad), &r, &err) && !cl_rotation_verify(&r, bad),
	   "signed by the new key only: does not verify");
	snprintf(bad, sizeof(bad), "%s\n%s%s", body,
			 sigline(body, CL_KEY_NAME, pk1, sk1), sigline(body, CL_KEY_NAME, pk2, sk1));
	ok(cl_rotation_parse(bad, strlen(bad), &r, &err) && !cl_rotation_verify(&r, bad),
	   "a line naming the new key with another key's signature: does not verify");
	memcpy(bad, note, strlen(note) + 1);
	bad[strlen("consent_ledger key rotation\nold ")] ^= 1;
	ok(!cl_rotation_parse(bad, strlen(bad), &r, &err) || !cl_rotation_verify(&r, bad),
	   "a changed old key: does not verify");
	n = cl_rotation_body(pk1, pk1, 1, body, sizeof(body));
	snprintf(bad, sizeof(bad), "%s\n%s", body, sigline(body, CL_KEY_NAME, pk1, sk1));
	ok(cl_rotation_parse(bad, strlen(bad), &r, &err) && !cl_rotation_verify(&r, bad),
	   "a rotation from a key to itself endorses nothing");
	ok(!cl_rotation_parse(std_body(), strlen(std_body()), &r, &err), "a checkpoint body is no rotation");
	ok(!cl_rotation_parse(note, strlen(note) - 1, &r, &err), "a truncated statement does not parse");
}

/* Runs the tests; exit status 0 only when all pass. */

/* Receipt members against their note (cl_receipt_members_match). */
static void
test_receipt_members(void)
{
	const char *body = std_body();
	char		note[CL_MAX_NOTE * 2];
	cl_checkpoint cp;
	const char *err;
	char		why[160];
	char		size[32];
	char		time[32];
	char		root[64];
	char		prev[64];
	char		key0[16];
	char		key1[16];
	char		sig0[128];
	char		sig1[128];
	cl_receipt_member m[8];

	/* the log's signature, then a witness's */
	snprintf(note, sizeof(note), "%s\n%s%s", body, sigline(body, CL_KEY_NAME, pk1, sk1),
			 sigline(body, "witness.example/w1", pk2, sk2));
	if (!cl_checkpoint_parse(note, strlen(note), &cp, &err) || cp.nsigs != 2)
	{
		ok(false, "receipt members: the cosigned test note parses");
		return;
	}
	snprintf(size, sizeof(size), "%" PRIu64, cp.size);
	snprintf(time, sizeof(time), "%" PRId64, cp.time);
	cl_base64_encode(cp.root, CL_HASH_LEN, root);
	cl_base64_encode(cp.prev, CL_HASH_LEN, prev);
	cl_hex_encode(cp.sigs[0].keyid, CL_KEYID_LEN, key0);
	cl_hex_encode(cp.sigs[1].keyid, CL_KEYID_LEN, key1);
	cl_base64_encode(cp.sigs[0].sig, CL_SIG_LEN, sig0);
	cl_base64_encode(cp.sigs[1].sig, CL_SIG_LEN, sig1);

#define MEMBER(i, n, k, t) (m[i].name = (n), m[i].kind = (k), m[i].text = (t), m[i].len = strlen(t))
	MEMBER(0, "origin", CL_RECEIPT_STRING, cp.origin);
	MEMBER(1, "tree_size", CL_RECEIPT_NUMBER, size);
	MEMBER(2, "root_hash", CL_RECEIPT_STRING, root);
	MEMBER(3, "time", CL_RECEIPT_NUMBER, time);
	MEMBER(4, "prev_hash", CL_RECEIPT_STRING, prev);
	MEMBER(5, "key_id", CL_RECEIPT_STRING, key0);
	MEMBER(6, "signature", CL_RECEIPT_STRING, sig0);
	MEMBER(7, "comment", CL_RECEIPT_OTHER, "");
	ok(cl_receipt_members_match(&cp, m, 8, why, sizeof(why)), "receipt members that agree with the note match");
	ok(cl_receipt_members_match(&cp, m, 0, why, sizeof(why)), "a receipt without members matches");
	MEMBER(5, "key_id", CL_RECEIPT_STRING, key1);
	MEMBER(6, "signature", CL_RECEIPT_STRING, sig1);
	ok(cl_receipt_members_match(&cp, m, 8, why, sizeof(why)), "key_id and signature of the cosignature line match");
	MEMBER(6, "signature", CL_RECEIPT_STRING, sig0);
	ok(!cl_receipt_members_match(&cp, m, 8, why, sizeof(why)) &&
	   strcmp(why, "receipt members \"key_id\" and \"signature\" name different signature lines of the note") == 0,
	   "key_id of one signature line with the signature of another does not match");
	MEMBER(5, "key_id", CL_RECEIPT_STRING, key0);
	MEMBER(1, "tree_size", CL_RECEIPT_NUMBER, "99");
	ok(!cl_receipt_members_match(&cp, m, 8, why, sizeof(why)) &&
	   strcmp(why, "receipt member \"tree_size\" does not match the signed note") == 0,
	   "a tree_size other than the note's does not match, and the reason names it");
	MEMBER(1, "tree_size", CL_RECEIPT_STRING, size);
	ok(!cl_receipt_members_match(&cp, m, 8, why, sizeof(why)) &&
	   strcmp(why, "receipt member \"tree_size\" is not a non-negative integer") == 0,
	   "a tree_size given as a string does not match");
	MEMBER(1, "tree_size", CL_RECEIPT_NUMBER, size);
	MEMBER(0, "origin", CL_RECEIPT_STRING, "example.com/other");
	ok(!cl_receipt_members_match(&cp, m, 8, why, sizeof(why)), "another origin does not match");
	MEMBER(0, "origin", CL_RECEIPT_OTHER, "");
	ok(!cl_receipt_members_match(&cp, m, 8, why, sizeof(why)) &&
	   strcmp(why, "receipt member \"origin\" is not a string") == 0,
	   "an origin that is not a string does not match");
	MEMBER(0, "origin", CL_RECEIPT_STRING, cp.origin);
	MEMBER(5, "key_id", CL_RECEIPT_STRING, "00000000");
	ok(!cl_receipt_members_match(&cp, m, 8, why, sizeof(why)), "a key id of no signature line does not match");
#undef MEMBER
}

int
main(void)
{
	if (sodium_init() < 0)
	{
		printf("Bail out! sodium_init failed\n");
		return 2;
	}
	setup();
	test_base64();
	test_hex();
	test_known_values();
	test_body();
	test_roundtrip();
	test_cosignatures();
	test_rejections();
	test_export_lines();
	test_receipt_members();
	test_rotations();
	return tap_done();
}
