/*-------------------------------------------------------------------------
 * make_export.c
 *	  Test helper for test_verifier.sh and the fuzz seed corpus: writes
 *	  exports, checkpoints and proofs signed with a keygen secret key file.
 *
 *	make_export export SKFILE ORIGIN SIZES [HEX ...]
 *		an export of the leaves, with a checkpoint chain at the
 *		comma-separated SIZES ("2,4")
 *	make_export checkpoint-json SKFILE ORIGIN SIZE [HEX ...]
 *	make_export checkpoint-note SKFILE ORIGIN SIZE [HEX ...]
 *		one checkpoint (prev = 32 zero bytes) of the first SIZE leaves, as
 *		consent_ledger.checkpoint()'s JSON or as a raw note
 *	make_export inclusion INDEX [HEX ...]
 *	make_export consistency OLD_SIZE [HEX ...]
 *		a proof document over all the leaves
 *
 * Output on stdout; exit 2 on any error.  Test code: not installed.
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "merkle.h"
#include "note.h"

#define FIRST_TIME	1700000000

static uint8_t sk[crypto_sign_SECRETKEYBYTES];
static uint8_t pk[crypto_sign_PUBLICKEYBYTES];

/* Prints the message and exits 2. */
static void
die(const char *msg)
{
	fprintf(stderr, "make_export: %s\n", msg);
	exit(2);
}

/* Loads the keygen-format secret key file (base64 seed, one line). */
static void
load_secret(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		buf[128];
	uint8_t		seed[32];
	size_t		n;

	if (f == NULL)
		die("cannot open the secret key file");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (cl_base64_decode(buf, n, seed, sizeof(seed)) != 32)
		die("malformed secret key file");
	crypto_sign_seed_keypair(pk, sk, seed);
}

/* Decodes the leaf arguments into their leaf hashes (malloc'd). */
static cl_hash *
leaf_hashes(int argc, char **argv)
{
	cl_hash    *h = malloc(sizeof(cl_hash) * (size_t) (argc > 0 ? argc : 1));
	int			i;

	if (h == NULL)
		die("out of memory");
	for (i = 0; i < argc; i++)
	{
		size_t		len = strlen(argv[i]);
		uint8_t    *d = malloc(len / 2 + 1);

		if (d == NULL)
			die("out of memory");
		if (cl_hex_decode(argv[i], len, d, len / 2) != (long) (len / 2))
			die("a leaf is not lower-case hex");
		cl_leaf_hash(d, len / 2, h[i]);
		free(d);
	}
	return h;
}

/* Builds and signs one checkpoint note into buf; returns its length. */
static size_t
make_note(const char *origin, uint64_t size, const cl_hash root, int64_t t,
		  const cl_hash prev, char *buf, size_t bufsize)
{
	uint8_t		keyid[CL_KEYID_LEN];
	uint8_t		sig[CL_SIG_LEN];
	size_t		bodylen;
	size_t		len;

	bodylen = cl_checkpoint_body(origin, size, root, t, prev, buf, bufsize);
	if (bodylen == 0)
		die("cannot build the checkpoint body");
	crypto_sign_detached(sig, NULL, (const uint8_t *) buf, bodylen, sk);
	cl_key_id(CL_KEY_NAME, pk, keyid);
	len = cl_note_append_signature(buf, bodylen, bufsize, CL_KEY_NAME, keyid, sig);
	if (len == 0)
		die("cannot append the signature");
	return len;
}

/* Prints s as a JSON string literal. */
static void
json_string(const char *s, size_t len)
{
	size_t		i;

	putchar('"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* Prints a JSON array of base64 hashes. */
static void
json_path(const cl_hash *p, int n)
{
	char		b[45];
	int			i;

	putchar('[');
	for (i = 0; i < n; i++)
	{
		cl_base64_encode(p[i], CL_HASH_LEN, b);
		printf("%s\"%s\"", i ? "," : "", b);
	}
	putchar(']');
}

/* Parses a decimal argument. */
static uint64_t
number(const char *s)
{
	char	   *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*s == '\0' || *end != '\0')
		die("bad number");
	return (uint64_t) v;
}

/* Dispatches to the helper subcommand; exit 2 on any error. */
int
main(int argc, char **argv)
{
	char		note[CL_MAX_NOTE + 1];
	char		b64[(CL_MAX_NOTE + 2) / 3 * 4 + 1];
	cl_hash		zero;
	cl_hash		root;

	if (sodium_init() < 0)
		die("sodium_init failed");
	memset(zero, 0, sizeof(zero));
	if (argc >= 5 && strcmp(argv[1], "export") == 0)
	{
		const char *origin = argv[3];
		const char *sizes = argv[4];
		int			nleaves = argc - 5;
		cl_hash    *h;
		cl_hash		prev;
		int			i;
		int64_t		t = FIRST_TIME;

		load_secret(argv[2]);
		h = leaf_hashes(nleaves, argv + 5);
		printf("consent-ledger-export 1\norigin %s\n", origin);
		cl_base64_encode(pk, sizeof(pk), b64);
		printf("key %s %s\n", CL_KEY_NAME, b64);
		for (i = 0; i < nleaves; i++)
			printf("leaf %s\n", argv[5 + i]);
		memcpy(prev, zero, sizeof(prev));
		while (*sizes)
		{
			char	   *end;
			unsigned long long s = strtoull(sizes, &end, 10);
			size_t		len;

			if (end == sizes || s > (unsigned long long) nleaves)
				die("bad checkpoint size list");
			cl_merkle_root((const cl_hash *) h, s, root);
			len = make_note(origin, s, root, t++, prev, note, sizeof(note));
			cl_note_hash(note, len, prev);
			cl_base64_encode((const uint8_t *) note, len, b64);
			printf("checkpoint %s\n", b64);
			sizes = (*end == ',') ? end + 1 : end;
		}
		printf("end %d\n", nleaves);
		free(h);
		return 0;
	}
	if (argc >= 5 && (strcmp(argv[1], "checkpoint-json") == 0 ||
					  strcmp(argv[1], "checkpoint-note") == 0))
	{
		const char *origin = argv[3];
		uint64_t	size = number(argv[4]);
		int			nleaves = argc - 5;
		cl_hash    *h;
		size_t		len;
		char		r64[45];
		char		p64[45];
		uint8_t		keyid[CL_KEYID_LEN];
		char		idhex[9];
		const char *sigstart;
		uint8_t		blob[CL_KEYID_LEN + CL_SIG_LEN];
		char		s64[89];

		load_secret(argv[2]);
		h = leaf_hashes(nleaves, argv + 5);
		if (size > (uint64_t) nleaves)
			die("size exceeds the leaves");
		cl_merkle_root((const cl_hash *) h, size, root);
		len = make_note(origin, size, root, FIRST_TIME, zero, note, sizeof(note));
		free(h);
		if (strcmp(argv[1], "checkpoint-note") == 0)
		{
			fwrite(note, 1, len, stdout);
			return 0;
		}
		cl_base64_encode(root, CL_HASH_LEN, r64);
		cl_base64_encode(zero, CL_HASH_LEN, p64);
		cl_key_id(CL_KEY_NAME, pk, keyid);
		cl_hex_encode(keyid, CL_KEYID_LEN, idhex);
		/* "signature" is the 64-byte Ed25519 signature, as checkpoint() gives it */
		sigstart = strrchr(note, ' ') + 1;
		if (cl_base64_decode(sigstart, 92, blob, sizeof(blob)) != (long) sizeof(blob))
			die("cannot decode the signature line");
		cl_base64_encode(blob + CL_KEYID_LEN, CL_SIG_LEN, s64);
		printf("{\"origin\": ");
		json_string(origin, strlen(origin));
		printf(", \"tree_size\": %" PRIu64 ", \"root_hash\": \"%s\", \"time\": %d, "
			   "\"prev_hash\": \"%s\", \"key_id\": \"%s\", \"signature\": \"%s\", \"note\": ",
			   size, r64, FIRST_TIME, p64, idhex, s64);
		json_string(note, len);
		printf("}\n");
		return 0;
	}
	if (argc >= 3 && (strcmp(argv[1], "inclusion") == 0 ||
					  strcmp(argv[1], "consistency") == 0))
	{
		uint64_t	a = number(argv[2]);
		int			nleaves = argc - 3;
		cl_hash    *h = leaf_hashes(nleaves, argv + 3);
		cl_hash		path[CL_MAX_PROOF];
		char		x[45];
		char		y[45];
		int			n;

		cl_merkle_root((const cl_hash *) h, (uint64_t) nleaves, root);
		cl_base64_encode(root, CL_HASH_LEN, y);
		if (strcmp(argv[1], "inclusion") == 0)
		{
			n = cl_inclusion_proof((const cl_hash *) h, (uint64_t) nleaves, a, path);
			if (n < 0)
				die("bad inclusion arguments");
			cl_base64_encode(h[a], CL_HASH_LEN, x);
			printf("{\"type\":\"inclusion\",\"leaf_index\":%" PRIu64 ",\"tree_size\":%d,"
				   "\"leaf_hash\":\"%s\",\"root_hash\":\"%s\",\"path\":",
				   a, nleaves, x, y);
		}
		else
		{
			cl_hash		oldroot;

			n = cl_consistency_proof((const cl_hash *) h, a, (uint64_t) nleaves, path);
			if (n < 0)
				die("bad consistency arguments");
			cl_merkle_root((const cl_hash *) h, a, oldroot);
			cl_base64_encode(oldroot, CL_HASH_LEN, x);
			printf("{\"type\":\"consistency\",\"old_size\":%" PRIu64 ",\"new_size\":%d,"
				   "\"old_root\":\"%s\",\"new_root\":\"%s\",\"path\":",
				   a, nleaves, x, y);
		}
		json_path((const cl_hash *) path, n);
		printf("}\n");
		free(h);
		return 0;
	}
	die("usage: make_export export|checkpoint-json|checkpoint-note|inclusion|consistency ...");
	return 2;
}
