/*-------------------------------------------------------------------------
 * test_cosignature.c
 *	  TAP unit tests for the witness cosignature code of src/note.c
 *	  (c2sp.org/tlog-cosignature, Ed25519 "cosignature/v1"):
 *	  - the C2SP examples: the signed-note verifier key example (name, key
 *	    id, signature type, and its signed note verifies), and the
 *	    tlog-cosignature example line (key id 8d66cf3f, timestamp
 *	    1679315147, the message layout the spec shows) -- the spec
 *	    publishes no key for its cosignature, so only its framing can be
 *	    checked against it;
 *	  - a known-answer vector computed independently with Python's
 *	    "cryptography" package (OpenSSL Ed25519) from the spec's
 *	    definition (seed 00 01 .. 1f, name witness.example/w1);
 *	  - signatures made here with OpenSSL's EVP Ed25519 (not libsodium)
 *	    over a message built here from the spec's text, verified by
 *	    cl_cosignature_verify(), and the other way round.
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "note.h"

static int	ntests = 0;
static int	nfailed = 0;

static void
ok(bool cond, const char *name)
{
	ntests++;
	if (!cond)
		nfailed++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", ntests, name);
}

/* The Python vector (see the file comment). */
static const char *const PY_VKEY = "witness.example/w1+e75f6532+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
static const char *const PY_BODY =
"example.org/log\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 1700000000\n"
"prev AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
static const char *const PY_LINE =
"\xe2\x80\x94 witness.example/w1 519lMgAAAABlU/F7ReLeeOY9LhH1rUsnGCHXZhhjKppNghz8CYeE0+238yJCLkggBjJZ8t2DyTMEv8fjlYzRPyIj7L9baZjx4RfMAg==\n";
#define PY_TIME 1700000123

/* A log signature line (a dummy of the right shape; these tests never verify it). */
static const char *const LOG_LINE =
"\xe2\x80\x94 consent_ledger AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

static size_t
make_note(char *buf, size_t size, const char *body, const char *l1, const char *l2)
{
	return (size_t) snprintf(buf, size, "%s\n%s%s%s", body, LOG_LINE, l1, l2 ? l2 : "");
}

/* Ed25519 with OpenSSL from a 32-byte seed: public key and signature. */
static bool
openssl_sign(const uint8_t seed[32], const uint8_t *msg, size_t len, uint8_t pk[32], uint8_t sig[64])
{
	EVP_PKEY   *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t		pklen = 32;
	size_t		siglen = 64;
	bool		good = k != NULL && ctx != NULL &&
		EVP_PKEY_get_raw_public_key(k, pk, &pklen) == 1 &&
		EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
		EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1 && siglen == 64;

	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return good;
}

static bool
openssl_verify(const uint8_t pk[32], const uint8_t *msg, size_t len, const uint8_t sig[64])
{
	EVP_PKEY   *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool		good = k != NULL && ctx != NULL &&
		EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
		EVP_DigestVerify(ctx, sig, 64, msg, len) == 1;

	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return good;
}

static void
test_spec_examples(void)
{
	/* c2sp.org/signed-note "Verifier keys" example */
	const char *vk = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
	const char *text = "This is an example message.\n";
	const char *sigb64 = "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=";
	char		name[CL_MAX_KEY_NAME + 1];
	uint8_t		type = 0;
	uint8_t		pk[32];
	uint8_t		raw[68];
	const char *err = NULL;
	char		vkout[256];
	bool		parsed = cl_vkey_parse(vk, strlen(vk), name, &type, pk, &err);

	ok(parsed && strcmp(name, "example.com/foo") == 0 && type == 0x01,
	   "signed-note vkey example parses: name example.com/foo, type 0x01, key id 530d903a checked");
	ok(parsed && cl_base64_decode(sigb64, strlen(sigb64), raw, sizeof(raw)) == 68 &&
	   memcmp(raw, "\x53\x0d\x90\x3a", 4) == 0 &&
	   crypto_sign_verify_detached(raw + 4, (const uint8_t *) text, strlen(text), pk) == 0,
	   "signed-note example note verifies under the example vkey");
	ok(parsed && cl_vkey_format(name, type, pk, vkout, sizeof(vkout)) == strlen(vk) &&
	   strcmp(vkout, vk) == 0, "cl_vkey_format() gives the example vkey back");
	ok(!cl_vkey_parse("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
					  strlen(vk), name, &type, pk, &err),
	   "a vkey whose key id is not its key's is refused");
	ok(!cl_vkey_parse("example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
					  strlen(vk), name, &type, pk, &err),
	   "a vkey with upper-case hex is refused");

	/* c2sp.org/tlog-cosignature example line and message layout */
	{
		char		note[2048];
		cl_checkpoint cp;
		cl_cosignature cs[4];
		int			n = 0;
		size_t		len;
		char		msg[512];
		const char *spec_msg = "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
			"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
		const char *spec_body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

		len = make_note(note, sizeof(note), PY_BODY,
						"\xe2\x80\x94 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n",
						NULL);
		ok(cl_checkpoint_parse(note, len, &cp, &err) &&
		   cl_cosignatures_parse(&cp, note, len, cs, 4, &n, &err) && n == 1 &&
		   strcmp(cs[0].keyname, "witness.example.com/w1") == 0 &&
		   memcmp(cs[0].keyid, "\x8d\x66\xcf\x3f", 4) == 0 && cs[0].time == 1679315147,
		   "tlog-cosignature example line: name, key id 8d66cf3f, timestamp 1679315147");
		ok(n == 1 && cl_cosignature_line("witness.example.com/w1", cs[0].keyid, cs[0].time, cs[0].sig,
										 msg, sizeof(msg)) > 0 &&
		   strncmp(msg, note + cs[0].line_start, cs[0].line_len) == 0,
		   "cl_cosignature_line() writes the example line back byte for byte");
		len = cl_cosignature_message(spec_body, strlen(spec_body), 1679315147, msg, sizeof(msg));
		ok(len == strlen(spec_msg) && memcmp(msg, spec_msg, len) == 0,
		   "cl_cosignature_message() is the spec's example message");
	}
}

static void
test_python_vector(void)
{
	char		name[CL_MAX_KEY_NAME + 1];
	uint8_t		type = 0;
	uint8_t		pk[32];
	const char *err = NULL;
	char		note[2048];
	size_t		len;
	cl_checkpoint cp;
	cl_cosignature cs[4];
	int			n = 0;
	int64_t		t = 0;
	uint8_t		seed[32];
	uint8_t		sodpk[32];
	uint8_t		sk[64];
	uint8_t		sig[64];
	uint8_t		keyid[4];
	char		msg[1024];
	char		line[512];
	size_t		mlen;
	char		stripped[2048];

	ok(cl_vkey_parse(PY_VKEY, strlen(PY_VKEY), name, &type, pk, &err) && type == 0x04,
	   "the Python vector's witness vkey parses (type 0x04, key id SHA-256(name\\n0x04 key)[:4])");
	len = make_note(note, sizeof(note), PY_BODY, PY_LINE, NULL);
	ok(cl_checkpoint_parse(note, len, &cp, &err) &&
	   cl_cosignatures_parse(&cp, note, len, cs, 4, &n, &err) && n == 1 && cs[0].time == PY_TIME,
	   "the Python vector's line parses as a cosignature at its timestamp");
	ok(n == 1 && cl_cosignature_verify(&cp, note, cs, n, name, pk, &t) && t == PY_TIME,
	   "the Python (OpenSSL) cosignature verifies");

	/* libsodium signing from the same seed gives the very same line */
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t) i;
	crypto_sign_seed_keypair(sodpk, sk, seed);
	ok(memcmp(sodpk, pk, 32) == 0, "seed 00..1f gives the vector's public key");
	mlen = cl_cosignature_message(PY_BODY, strlen(PY_BODY), PY_TIME, msg, sizeof(msg));
	crypto_sign_detached(sig, NULL, (const uint8_t *) msg, mlen, sk);
	cl_key_id_typed("witness.example/w1", CL_SIGTYPE_COSIGNATURE, sodpk, keyid);
	ok(cl_cosignature_line("witness.example/w1", keyid, PY_TIME, sig, line, sizeof(line)) > 0 &&
	   strcmp(line, PY_LINE) == 0, "our cosignature line is the Python one, byte for byte");

	/* refusals */
	ok(!cl_cosignature_verify(&cp, note, cs, n, "witness.example/w2", pk, &t),
	   "another witness name does not match the line");
	cs[0].time++;
	ok(!cl_cosignature_verify(&cp, note, cs, n, name, pk, &t),
	   "a changed timestamp fails (the time line is signed)");
	cs[0].time--;
	{
		char		other[2048];
		cl_checkpoint cp2;
		cl_cosignature cs2[4];
		int			n2 = 0;
		char		body2[512];

		snprintf(body2, sizeof(body2), "%s", PY_BODY);
		body2[16] = '6';		/* tree size 6: another checkpoint body */
		len = make_note(other, sizeof(other), body2, PY_LINE, NULL);
		ok(cl_checkpoint_parse(other, len, &cp2, &err) &&
		   cl_cosignatures_parse(&cp2, other, len, cs2, 4, &n2, &err) && n2 == 1 &&
		   !cl_cosignature_verify(&cp2, other, cs2, n2, name, pk, &t),
		   "the cosignature does not verify on another checkpoint body");
	}
	len = make_note(note, sizeof(note), PY_BODY, PY_LINE, NULL);
	(void) cl_checkpoint_parse(note, len, &cp, &err);
	(void) cl_cosignatures_parse(&cp, note, len, cs, 4, &n, &err);
	ok(cl_note_without_cosignatures(note, len, cs, n, stripped) == strlen(PY_BODY) + 1 + strlen(LOG_LINE) &&
	   memcmp(stripped + strlen(PY_BODY) + 1, LOG_LINE, strlen(LOG_LINE)) == 0,
	   "cl_note_without_cosignatures() gives back the log's note");
}

static void
test_openssl_roundtrip(void)
{
	uint8_t		seed[32];
	uint8_t		pk[32];
	uint8_t		sig[64];
	uint8_t		keyid[4];
	char		msg[1024];
	char		line[512];
	char		note[2048];
	size_t		mlen;
	size_t		len;
	cl_checkpoint cp;
	cl_cosignature cs[4];
	int			n = 0;
	int64_t		t = 0;
	const char *err;
	/* the message written out from the spec's text, not by our code */
	const char *spec_built = "cosignature/v1\ntime 1800000000\n";

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t) (0xa0 + i);
	snprintf(msg, sizeof(msg), "%s%s", spec_built, PY_BODY);
	mlen = strlen(msg);
	ok(openssl_sign(seed, (const uint8_t *) msg, mlen, pk, sig), "OpenSSL signs");
	cl_key_id_typed("w.example/openssl", 0x04, pk, keyid);
	(void) cl_cosignature_line("w.example/openssl", keyid, 1800000000, sig, line, sizeof(line));
	len = make_note(note, sizeof(note), PY_BODY, PY_LINE, line);
	ok(cl_checkpoint_parse(note, len, &cp, &err) &&
	   cl_cosignatures_parse(&cp, note, len, cs, 4, &n, &err) && n == 2 &&
	   cl_cosignature_verify(&cp, note, cs, n, "w.example/openssl", pk, &t) && t == 1800000000,
	   "an OpenSSL cosignature over the spec-built message verifies (two witnesses on one note)");

	/* the other way: our message, libsodium signature, OpenSSL verifies */
	{
		uint8_t		spk[32];
		uint8_t		ssk[64];
		char		m2[1024];
		size_t		l2;

		crypto_sign_seed_keypair(spk, ssk, seed);
		l2 = cl_cosignature_message(PY_BODY, strlen(PY_BODY), 1800000000, m2, sizeof(m2));
		crypto_sign_detached(sig, NULL, (const uint8_t *) m2, l2, ssk);
		ok(l2 == mlen && memcmp(m2, msg, mlen) == 0 && openssl_verify(pk, (const uint8_t *) m2, l2, sig),
		   "our message equals the spec-built one and OpenSSL verifies libsodium's signature");
	}
}

int
main(void)
{
	if (sodium_init() < 0)
		return 2;
	test_spec_examples();
	test_python_vector();
	test_openssl_roundtrip();
	printf("1..%d\n", ntests);
	return nfailed ? 1 : 0;
}
