/*-------------------------------------------------------------------------
 * fuzz_note.c
 *	  libFuzzer target: cl_checkpoint_parse and cl_checkpoint_verify with a
 *	  fixed key, plus canonical-form properties of the parsers in note.c.
 *
 * Properties checked (abort() on violation):
 *	- a note that parses has a body that cl_checkpoint_body rebuilds byte
 *	  for byte from the parsed fields (one text per checkpoint);
 *	- base64 and hex that decode re-encode to exactly the input.
 *
 * The seed corpus notes are signed with the fixed seed below (32 bytes of
 * 0x42), so verification succeeds on them and fails on their mutations.
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "note.h"

#define MAX_CODEC_INPUT 4096

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t pubkey[CL_PUBKEY_LEN];
static int	ready = 0;

/* Derives the fixed public key once. */
static void
setup(void)
{
	uint8_t		seed[crypto_sign_SEEDBYTES];
	uint8_t		sk[crypto_sign_SECRETKEYBYTES];

	if (sodium_init() < 0)
		abort();
	memset(seed, 0x42, sizeof(seed));
	crypto_sign_seed_keypair(pubkey, sk, seed);
	ready = 1;
}

/* Checkpoint parsing and verification, and the body round trip. */
static void
fuzz_checkpoint(const char *note, size_t size)
{
	cl_checkpoint cp;
	const char *err = NULL;
	char		body[CL_MAX_NOTE + 1];
	cl_hash		h;
	size_t		n;

	if (!cl_checkpoint_parse(note, size, &cp, &err))
	{
		if (err == NULL)
			abort();
		return;
	}
	(void) cl_checkpoint_verify(&cp, note, CL_KEY_NAME, pubkey);
	(void) cl_checkpoint_verify(&cp, note, cp.sigs[0].keyname, pubkey);
	cl_note_hash(note, size, h);

	n = cl_checkpoint_body(cp.origin, cp.size, cp.root, cp.time, cp.prev,
						   body, sizeof(body));
	if (n == 0 || n != cp.bodylen || memcmp(body, note, n) != 0)
		abort();
	if (cp.nsigs < 1 || cp.nsigs > CL_MAX_SIGLINES)
		abort();

	/*
	 * Witness cosignatures: the lines found lie inside the note, in order;
	 * without them the note is no longer than before and still parses
	 * with the same body; verifying under a fixed key never crashes.
	 */
	{
		cl_cosignature cs[CL_MAX_SIGLINES];
		int			ncs = 0;
		char		stripped[CL_MAX_NOTE + 1];
		cl_checkpoint scp;
		int64_t		t = 0;
		char		names[1][CL_MAX_KEY_NAME + 1] = {"w"};

		if (cl_cosignatures_parse(&cp, note, size, cs, CL_MAX_SIGLINES, &ncs, &err))
		{
			size_t		prev_end = cp.bodylen + 1;

			for (int i = 0; i < ncs; i++)
			{
				if (cs[i].line_start < prev_end || cs[i].line_start + cs[i].line_len > size)
					abort();
				prev_end = cs[i].line_start + cs[i].line_len;
			}
			n = cl_note_without_cosignatures(note, size, cs, ncs, stripped);
			if (n > size || memcmp(stripped, note, cp.bodylen) != 0)
				abort();
			if (!cl_checkpoint_parse(stripped, n, &scp, &err) ||
				scp.bodylen != cp.bodylen || scp.nsigs != cp.nsigs)
				abort();
			if (ncs > 0)
			{
				(void) cl_cosignature_verify(&cp, note, cs, ncs, cs[0].keyname, pubkey, &t);
				strcpy(names[0], cs[0].keyname);
			}
			(void) cl_quorum_count(&cp, note, size, (const char (*)[CL_MAX_KEY_NAME + 1]) names,
								   (const uint8_t (*)[CL_PUBKEY_LEN]) &pubkey, 1, 0,
								   body, sizeof(body));
		}
	}
}

/* base64 and hex decoders accept only canonical encodings. */
static void
fuzz_codecs(const char *in, size_t size)
{
	static uint8_t out[MAX_CODEC_INPUT];
	static char enc[2 * MAX_CODEC_INPUT + 8];
	long		n;

	if (size > MAX_CODEC_INPUT)
		return;
	n = cl_base64_decode(in, size, out, sizeof(out));
	if (n >= 0)
	{
		cl_base64_encode(out, (size_t) n, enc);
		if (strlen(enc) != size || memcmp(enc, in, size) != 0)
			abort();
	}
	n = cl_hex_decode(in, size, out, sizeof(out));
	if (n >= 0)
	{
		cl_hex_encode(out, (size_t) n, enc);
		if (strlen(enc) != size || memcmp(enc, in, size) != 0)
			abort();
	}
}

/* libFuzzer entry point: never crashes, aborts only on a violated property. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready)
		setup();
	fuzz_checkpoint((const char *) data, size);
	fuzz_codecs((const char *) data, size);
	return 0;
}
