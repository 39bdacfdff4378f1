/*-------------------------------------------------------------------------
 * consent-ledger-verify.c
 *	  The offline verifier auditors run against consent_ledger exports,
 *	  checkpoints and proofs.  Pure C99 + POSIX + libsodium; built from
 *	  src/merkle.c, src/note.c, src/json.c and src/proof.c, no PostgreSQL.
 *
 *	consent-ledger-verify export --public-key KEY [--public-key KEY ...]
 *		[--checkpoint FILE] [--decode] EXPORT_FILE	(EXPORT_FILE "-" is stdin)
 *	consent-ledger-verify inclusion PROOF_FILE [--leaf-data HEX]
 *		[--checkpoint FILE --public-key KEY ...]
 *	consent-ledger-verify consistency PROOF_FILE
 *		[--checkpoint FILE --public-key KEY ...]
 *	consent-ledger-verify checkpoint --public-key KEY CHECKPOINT_FILE
 *	consent-ledger-verify keygen OUTFILE
 *
 * KEY is the base64 of a 32-byte Ed25519 public key (public_key()), a
 * verifier key "consent_ledger+<key id>+<base64(0x01 || key)>"
 * (verifier_key()), or a file whose first line is one of those.  For an export, the keys its endorsement records link to
 * a given key (rotation statements signed by both keys) are trusted too,
 * so the newest trusted key is enough across endorsed rotations.  A checkpoint FILE holds a raw note or the JSON that
 * consent_ledger.checkpoint() returns (with at least a "note" member).
 *
 * Verdicts go to stdout: one line "OK: ..." (exit 0) or "FAIL: ..."
 * naming the first problem (exit 1).  Usage, I/O and memory errors go to
 * stderr and exit 2.
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "json.h"
#include "leaf.h"
#include "merkle.h"
#include "note.h"
#include "proof.h"
#include "statement.h"

#define EXIT_VERIFIED	0
#define EXIT_FAILED		1
#define EXIT_USAGE		2

#define MAX_KEYS		16
#define MAX_TRUSTED		256		/* given keys plus keys endorsement links reach */
#define MAX_ENDORSEMENTS 256
#define MAX_DOCUMENT	(1024 * 1024)	/* proof and checkpoint files */
#define MAX_KEYFILE		4096

static const char *progname = "consent-ledger-verify";

typedef struct options
{
	uint8_t		keys[MAX_KEYS][CL_PUBKEY_LEN];
	int			nkeys;
	/* checkpoint --witness-key (repeatable) --quorum N */
	char		wnames[MAX_KEYS][CL_MAX_KEY_NAME + 1];
	uint8_t		wkeys[MAX_KEYS][CL_PUBKEY_LEN];
	int			nwitnesses;
	long		quorum;			/* 0: not given */
	const char *later;			/* checkpoint --later FILE */
	const char *later_proof;	/* checkpoint --consistency-proof FILE */
	const char *checkpoint;
	const char *leaf_data;
	bool		decode;			/* export --decode */
	const char *subject_key;	/* receipt --subject-key KEY */
	const char *origin;			/* receipt --origin ORIGIN */
	const char *args[2];
	int			nargs;
} options;

/* Prints the usage text to stderr; returns EXIT_USAGE. */
static int
usage(void)
{
	fprintf(stderr,
			"usage:\n"
			"  %s export --public-key KEY [--public-key KEY ...] [--checkpoint FILE] [--decode] EXPORT_FILE\n"
			"  %s inclusion PROOF_FILE [--leaf-data HEX] [--checkpoint FILE --public-key KEY ...]\n"
			"  %s consistency PROOF_FILE [--checkpoint FILE --public-key KEY ...]\n"
			"  %s checkpoint --public-key KEY [--witness-key WKEY ... --quorum N\n"
			"      [--later LATER_CHECKPOINT_FILE --consistency-proof PROOF_FILE]] CHECKPOINT_FILE\n"
			"  %s receipt --public-key KEY [--subject-key SUBJECT_KEY] [--origin ORIGIN]\n"
			"      [--witness-key WKEY ... --quorum N] RECEIPT_FILE\n"
			"  %s keygen OUTFILE\n"
			"KEY is what consent_ledger.public_key() or consent_ledger.verifier_key() prints,\n"
			"or a file whose first line is one of those.\n"
			"An export's endorsements (key rotations signed by both keys) extend the given keys.\n"
			"EXPORT_FILE \"-\" reads standard input.\n"
			"WKEY is a witness key as consent_ledger.witness_key() prints it on the witness;\n"
			"--quorum N accepts the checkpoint only when N distinct given witnesses cosigned it,\n"
			"or cosigned the --later checkpoint of the same log that the consistency proof leads to.\n"
			"RECEIPT_FILE is what consent_ledger.consent_receipt() returns; SUBJECT_KEY is the\n"
			"base64 Ed25519 public key the subject's signature must verify under; ORIGIN the\n"
			"consent ledger's (consent_ledger.consent_origin()).\n"
			"Exit status: 0 verified, 1 verification failed, 2 usage or I/O error.\n",
			progname, progname, progname, progname, progname, progname);
	return EXIT_USAGE;
}

/* Prints "consent-ledger-verify: <message>" to stderr; returns EXIT_USAGE. */
static int
error(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/* Prints "FAIL: <message>" to stdout; returns EXIT_FAILED. */
static int
failure(const char *fmt,...)
{
	va_list		ap;

	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	return EXIT_FAILED;
}

/*
 * Reads the whole file at path (at most max bytes) into a malloc'd,
 * NUL-terminated buffer.  Returns 0, or EXIT_USAGE after printing why.
 */
static int
read_whole_file(const char *path, size_t max, char **buf, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *b;
	size_t		n;

	*buf = NULL;
	*len = 0;
	if (f == NULL)
		return error("cannot open \"%s\": %s", path, strerror(errno));
	b = malloc(max + 1);
	if (b == NULL)
	{
		fclose(f);
		return error("out of memory");
	}
	n = fread(b, 1, max + 1, f);
	if (ferror(f))
	{
		int			e = errno;

		free(b);
		fclose(f);
		return error("cannot read \"%s\": %s", path, strerror(e));
	}
	fclose(f);
	if (n > max)
	{
		free(b);
		return error("\"%s\" is larger than %zu bytes", path, max);
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/*
 * Reads a note verifier key, "<name>+<8 hex digits key id>+<base64 of
 * 0x01 || 32-byte Ed25519 public key>", as consent_ledger.verifier_key()
 * prints it (the signed-note form other note verifiers take), from
 * s[0..len).  The name must be ours and the key id must be the one the
 * key has under that name, so a key pasted with another key's id is
 * refused rather than trusted.  Returns 1 with pk set, 0 when s is not of
 * that form at all, or -1 with *why set when it is of that form
 * but wrong.
 */
static int
parse_verifier_key(const char *s, size_t len, uint8_t pk[CL_PUBKEY_LEN],
				   const char **why)
{
	const char *p1 = memchr(s, '+', len);
	const char *p2;
	uint8_t		raw[1 + CL_PUBKEY_LEN + 1];
	uint8_t		id[CL_KEYID_LEN];
	uint8_t		want[CL_KEYID_LEN];
	size_t		namelen;

	/* base64 has '+' too: the form is two '+' with 8 characters between */
	if (p1 == NULL)
		return 0;
	namelen = p1 - s;
	p2 = memchr(p1 + 1, '+', len - namelen - 1);
	if (p2 == NULL || p2 - p1 - 1 != 2 * CL_KEYID_LEN)
		return 0;
	if (namelen != strlen(CL_KEY_NAME) || memcmp(s, CL_KEY_NAME, namelen) != 0)
	{
		*why = "the verifier key's name is not " CL_KEY_NAME;
		return -1;
	}
	if (cl_hex_decode(p1 + 1, 2 * CL_KEYID_LEN, id, CL_KEYID_LEN) != CL_KEYID_LEN)
	{
		*why = "the verifier key's key id is not 8 hex digits";
		return -1;
	}
	if (cl_base64_decode(p2 + 1, len - (p2 + 1 - s), raw, sizeof(raw)) != 1 + CL_PUBKEY_LEN ||
		raw[0] != 0x01)
	{
		*why = "the verifier key's key is not the base64 of 0x01 and a 32-byte Ed25519 public key";
		return -1;
	}
	cl_key_id(CL_KEY_NAME, raw + 1, want);
	if (memcmp(id, want, CL_KEYID_LEN) != 0)
	{
		*why = "the verifier key's key id is not the id of its key";
		return -1;
	}
	memcpy(pk, raw + 1, CL_PUBKEY_LEN);
	return 1;
}

/*
 * Decodes a KEY given as s[0..len): the base64 of a 32-byte public key
 * (consent_ledger.public_key()) or a verifier key
 * (consent_ledger.verifier_key()).  Returns 1, 0 when it is neither, or
 * -1 with *why set for a verifier key that is malformed.
 */
static int
decode_key(const char *s, size_t len, uint8_t pk[CL_PUBKEY_LEN], const char **why)
{
	if (cl_base64_decode(s, len, pk, CL_PUBKEY_LEN) == CL_PUBKEY_LEN)
		return 1;
	return parse_verifier_key(s, len, pk, why);
}

/*
 * Decodes a KEY argument: the base64 of a 32-byte public key, a verifier
 * key, or a file whose first line is one of those.  Returns 0, or
 * EXIT_USAGE after printing why.
 */
static int
load_key(const char *arg, uint8_t pk[CL_PUBKEY_LEN])
{
	char	   *buf;
	size_t		len;
	size_t		linelen;
	int			rc;
	const char *why = NULL;

	rc = decode_key(arg, strlen(arg), pk, &why);
	if (rc == 1)
		return 0;
	if (rc < 0)
		return error("--public-key \"%s\": %s", arg, why);
	if (access(arg, F_OK) != 0)
		return error("--public-key \"%s\" is neither a public key (the base64 of a 32-byte "
					 "Ed25519 key, as consent_ledger.public_key() prints it), nor a verifier key "
					 "(as consent_ledger.verifier_key() prints it), nor a file holding one", arg);
	rc = read_whole_file(arg, MAX_KEYFILE, &buf, &len);
	if (rc != 0)
		return rc;
	linelen = strcspn(buf, "\n");
	while (linelen > 0 && (buf[linelen - 1] == '\r' || buf[linelen - 1] == ' ' ||
						   buf[linelen - 1] == '\t'))
		linelen--;
	rc = decode_key(buf, linelen, pk, &why);
	free(buf);
	if (rc < 0)
		return error("the first line of key file \"%s\": %s", arg, why);
	if (rc == 0)
		return error("the first line of key file \"%s\" is neither a public key nor a verifier key", arg);
	return 0;
}

/*
 * Parses the command line after the subcommand into *o.  Options may be
 * given as "--name value" or "--name=value" and mixed with positional
 * arguments; "--" ends the options.  Returns 0 or EXIT_USAGE.
 */
static int
parse_options(int argc, char **argv, options *o)
{
	bool		options_done = false;
	int			i;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < argc; i++)
	{
		const char *a = argv[i];
		const char *name;
		const char *value = NULL;
		size_t		namelen;

		if (options_done || strncmp(a, "--", 2) != 0)
		{
			if (o->nargs >= 2)
				return error("too many arguments");
			o->args[o->nargs++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0)
		{
			options_done = true;
			continue;
		}
		name = a + 2;
		if (strcmp(name, "decode") == 0)
		{
			o->decode = true;
			continue;
		}
		namelen = strcspn(name, "=");
		if (name[namelen] == '=')
			value = name + namelen + 1;
		else if (i + 1 < argc)
			value = argv[++i];
		else
			return error("option %s needs a value", a);

		if (namelen == 10 && strncmp(name, "public-key", 10) == 0)
		{
			int			rc;

			if (o->nkeys >= MAX_KEYS)
				return error("at most %d --public-key options", MAX_KEYS);
			rc = load_key(value, o->keys[o->nkeys]);
			if (rc != 0)
				return rc;
			o->nkeys++;
		}
		else if (namelen == 11 && strncmp(name, "witness-key", 11) == 0)
		{
			uint8_t		type = 0;
			const char *why = NULL;

			if (o->nwitnesses >= MAX_KEYS)
				return error("at most %d --witness-key options", MAX_KEYS);
			if (!cl_vkey_parse(value, strlen(value), o->wnames[o->nwitnesses], &type,
							   o->wkeys[o->nwitnesses], &why))
				return error("--witness-key \"%s\": %s", value, why);
			if (type != CL_SIGTYPE_COSIGNATURE)
				return error("--witness-key \"%s\": not a witness key (signature type 0x04, as consent_ledger.witness_key() prints it)", value);
			o->nwitnesses++;
		}
		else if (namelen == 6 && strncmp(name, "quorum", 6) == 0)
		{
			char	   *end;

			errno = 0;
			o->quorum = strtol(value, &end, 10);
			if (errno != 0 || *end != '\0' || end == value || o->quorum < 1)
				return error("--quorum \"%s\" is not a positive integer", value);
		}
		else if (namelen == 10 && strncmp(name, "checkpoint", 10) == 0)
		{
			if (o->checkpoint != NULL)
				return error("--checkpoint given twice");
			o->checkpoint = value;
		}
		else if (namelen == 5 && strncmp(name, "later", 5) == 0)
		{
			if (o->later != NULL)
				return error("--later given twice");
			o->later = value;
		}
		else if (namelen == 17 && strncmp(name, "consistency-proof", 17) == 0)
		{
			if (o->later_proof != NULL)
				return error("--consistency-proof given twice");
			o->later_proof = value;
		}
		else if (namelen == 6 && strncmp(name, "origin", 6) == 0)
		{
			if (o->origin != NULL)
				return error("--origin given twice");
			o->origin = value;
		}
		else if (namelen == 11 && strncmp(name, "subject-key", 11) == 0)
		{
			if (o->subject_key != NULL)
				return error("--subject-key given twice");
			o->subject_key = value;
		}
		else if (namelen == 9 && strncmp(name, "leaf-data", 9) == 0)
		{
			if (o->leaf_data != NULL)
				return error("--leaf-data given twice");
			o->leaf_data = value;
		}
		else
			return error("unknown option \"%.*s\"", (int) namelen + 2, a);
	}
	return 0;
}

/*
 * Index of the first key of keys[0..nkeys) under which the note's
 * CL_KEY_NAME signature verifies, or -1.
 */
static int
verify_under(const cl_checkpoint *cp, const char *note,
			 const uint8_t (*keys)[CL_PUBKEY_LEN], int nkeys)
{
	int			i;

	for (i = 0; i < nkeys; i++)
	{
		if (cl_checkpoint_verify(cp, note, CL_KEY_NAME, keys[i]))
			return i;
	}
	return -1;
}

/* The number of distinct --witness-key keys given. */
static int
distinct_witnesses(const options *o)
{
	int			distinct = 0;

	for (int i = 0; i < o->nwitnesses; i++)
	{
		bool		dup = false;

		for (int j = 0; j < i && !dup; j++)
			dup = memcmp(o->wkeys[j], o->wkeys[i], CL_PUBKEY_LEN) == 0;
		distinct += !dup;
	}
	return distinct;
}

/* Index of the first given key under which the note verifies, or -1. */
static int
verify_under_keys(const cl_checkpoint *cp, const char *note, const options *o)
{
	return verify_under(cp, note, (const uint8_t (*)[CL_PUBKEY_LEN]) o->keys, o->nkeys);
}

/* The keys an export's checkpoints may be signed by (README "Keys"). */
typedef struct trust
{
	uint8_t		keys[MAX_TRUSTED][CL_PUBKEY_LEN];
	int			nkeys;
	int			nendorsed;		/* of them reached through endorsements */
	/* the export's rotation statements, as read */
	char	   *notes[MAX_ENDORSEMENTS];
	size_t		lens[MAX_ENDORSEMENTS];
	int			nnotes;
	/* the export's key records (informational: for messages only) */
	uint8_t		listed[MAX_TRUSTED][CL_PUBKEY_LEN];
	int			nlisted;
} trust;

static bool
trusted_key(const trust *t, const uint8_t pk[CL_PUBKEY_LEN])
{
	for (int i = 0; i < t->nkeys; i++)
		if (memcmp(t->keys[i], pk, CL_PUBKEY_LEN) == 0)
			return true;
	return false;
}

/*
 * Extends the given keys along the export's endorsement links: a rotation
 * statement signed by both its old and its new key links them, so when
 * one of them is trusted the other is too (the newest key reaches every
 * older one of an unbroken chain, the oldest every newer one).  Returns
 * 0, or EXIT_FAILED after printing why (a statement that is malformed or
 * does not carry both signatures: an export does not hold such).
 */
static int
close_trust(trust *t)
{
	bool		grew = true;

	for (int i = 0; i < t->nnotes; i++)
	{
		cl_key_rotation r;
		const char *err;

		if (!cl_rotation_parse(t->notes[i], t->lens[i], &r, &err))
			return failure("endorsement %d: %s", i + 1, err);
		if (!cl_rotation_verify(&r, t->notes[i]))
			return failure("endorsement %d: not signed by both its old and its new key", i + 1);
	}
	while (grew)
	{
		grew = false;
		for (int i = 0; i < t->nnotes; i++)
		{
			cl_key_rotation r;
			const char *err;
			bool		o,
						n;

			(void) cl_rotation_parse(t->notes[i], t->lens[i], &r, &err);
			o = trusted_key(t, r.oldpk);
			n = trusted_key(t, r.newpk);
			if (o == n)
				continue;
			if (t->nkeys >= MAX_TRUSTED)
				return failure("more than %d keys linked by endorsements", MAX_TRUSTED);
			memcpy(t->keys[t->nkeys++], o ? r.newpk : r.oldpk, CL_PUBKEY_LEN);
			t->nendorsed++;
			grew = true;
		}
	}
	return 0;
}

/*
 * Why no trusted key verifies a note: when one of its signature lines
 * names a key the export lists, that key is not linked to any given key.
 */
static const char *
untrusted_reason(const trust *t, const cl_checkpoint *cp, char *buf, size_t bufsize)
{
	for (int s = 0; s < cp->nsigs; s++)
		for (int i = 0; i < t->nlisted; i++)
		{
			uint8_t		id[CL_KEYID_LEN];
			char		hex[CL_KEYID_LEN * 2 + 1];

			cl_key_id(CL_KEY_NAME, t->listed[i], id);
			if (memcmp(id, cp->sigs[s].keyid, CL_KEYID_LEN) != 0 || trusted_key(t, t->listed[i]))
				continue;
			cl_hex_encode(id, CL_KEYID_LEN, hex);
			snprintf(buf, bufsize,
					 "it is signed by key id %s, which no given public key endorses "
					 "(unendorsed key rotation; pass --public-key for that key only if you trust it)", hex);
			return buf;
		}
	return "signature does not verify under any given public key or any key endorsed by one";
}

/* Base64 of a hash into a caller buffer of 45 bytes; returns it. */
static const char *
hash64(const cl_hash h, char out[45])
{
	cl_base64_encode(h, CL_HASH_LEN, out);
	return out;
}

/*
 * Reads a checkpoint file: a raw note, or JSON with a "note" member (and
 * optionally the members checkpoint() adds -- origin, tree_size,
 * root_hash, time, prev_hash, key_id, signature -- each of which must
 * then agree with the note), read by cl_receipt_read(), the reader
 * consent_ledger.verify_checkpoint() uses too.  On success returns 0 with
 * *note (malloc'd) and *cp set.  Returns EXIT_USAGE on I/O errors
 * (printed), or EXIT_FAILED with *why set when the content is not a valid
 * checkpoint.
 */
static int
load_checkpoint_file(const char *path, char **note, size_t *notelen,
					 cl_checkpoint *cp, const char **why)
{
	static char reason[256];
	char	   *buf;
	size_t		len;
	int			rc;

	*note = NULL;
	rc = read_whole_file(path, MAX_DOCUMENT, &buf, &len);
	if (rc != 0)
		return rc;
	if (!cl_receipt_read(buf, len, cp, note, notelen, reason, sizeof(reason)))
	{
		free(buf);
		*why = reason;
		return EXIT_FAILED;
	}
	free(buf);
	return 0;
}

/* Human name of an export record kind, for error messages. */
static const char *
kind_name(cl_export_kind k)
{
	switch (k)
	{
		case CL_EXPORT_HEADER:
			return "header";
		case CL_EXPORT_ORIGIN:
			return "origin";
		case CL_EXPORT_KEY:
			return "key";
		case CL_EXPORT_ENDORSEMENT:
			return "endorsement";
		case CL_EXPORT_LEAF:
			return "leaf";
		case CL_EXPORT_CHECKPOINT:
			return "checkpoint";
		case CL_EXPORT_END:
			return "end";
	}
	return "unknown";
}

/*
 * The export subcommand.  Streams the export line by line keeping only
 * the leaf hashes, checks every rule (see the file header of note.h and
 * the usage), and compares the optional receipt.
 */
static int
cmd_export(const options *o)
{
	const char *path;
	FILE	   *f;
	char	   *line = NULL;
	size_t		linecap = 0;
	ssize_t		n;
	uint64_t	lineno = 0;
	cl_hash    *leaves = NULL;
	uint64_t	nleaves = 0;
	uint64_t	leafcap = 0;
	uint64_t	ncheckpoints = 0;
	uint64_t	lastsize = 0;
	cl_hash		lastroot;
	cl_hash		prevhash;
	cl_frontier frontier;
	char		origin[CL_MAX_ORIGIN + 1] = "";
	int			lastkind = -1;
	bool		ended = false;
	int			rc = EXIT_FAILED;
	char	   *receipt = NULL;
	size_t		receiptlen = 0;
	cl_checkpoint receipt_cp;
	cl_export_line rec;
	char		b1[45];
	char		b2[45];
	char		why[256];
	trust	   *t;
	bool		closed = false;

	if (o->nkeys == 0)
	{
		error("export needs at least one --public-key");
		return usage();
	}
	if (o->nargs != 1 || o->leaf_data != NULL)
		return usage();
	path = o->args[0];
	t = calloc(1, sizeof(trust));
	if (t == NULL)
		return error("out of memory");
	memcpy(t->keys, o->keys, sizeof(o->keys[0]) * o->nkeys);
	t->nkeys = o->nkeys;

	/* the auditor's stored receipt, read and checked first */
	if (o->checkpoint != NULL)
	{
		const char *why;

		rc = load_checkpoint_file(o->checkpoint, &receipt, &receiptlen,
								  &receipt_cp, &why);
		if (rc == EXIT_FAILED)
		{
			free(t);
			return failure("--checkpoint %s: %s", o->checkpoint, why);
		}
		if (rc != 0)
		{
			free(t);
			return rc;
		}
		/* its signature is checked at the end, against the keys endorsements reach */
		rc = EXIT_FAILED;
	}

	if (strcmp(path, "-") == 0)
		f = stdin;
	else
	{
		f = fopen(path, "rb");
		if (f == NULL)
		{
			free(receipt);
			free(t);
			return error("cannot open \"%s\": %s", path, strerror(errno));
		}
	}

	memset(prevhash, 0, sizeof(prevhash));
	memset(lastroot, 0, sizeof(lastroot));
	cl_frontier_init(&frontier);
	memset(&rec, 0, sizeof(rec));

	while ((n = getline(&line, &linecap, f)) != -1)
	{
		const char *err;
		size_t		len = (size_t) n;

		lineno++;
		if (ended)
		{
			failure("line %" PRIu64 ": data after the end record", lineno);
			goto out;
		}
		if (len == 0 || line[len - 1] != '\n')
		{
			failure("line %" PRIu64 ": missing newline at the end of the file (truncated export?)",
					lineno);
			goto out;
		}
		len--;
		if (!cl_export_parse_line(line, len, &rec, &err))
		{
			if (len >= 5 && memcmp(line, "leaf ", 5) == 0)
				failure("line %" PRIu64 " (leaf %" PRIu64 "): %s", lineno, nleaves, err);
			else if (len >= 11 && memcmp(line, "checkpoint ", 11) == 0)
				failure("line %" PRIu64 " (checkpoint %" PRIu64 "): %s",
						lineno, ncheckpoints + 1, err);
			else
				failure("line %" PRIu64 ": %s", lineno, err);
			goto out;
		}

		/* record order: header, origin, key*, leaf*, checkpoint*, end */
		if (lineno == 1 && rec.kind != CL_EXPORT_HEADER)
		{
			failure("line 1: not a consent-ledger export (no header)");
			goto out;
		}
		if (lineno == 2 && rec.kind != CL_EXPORT_ORIGIN)
		{
			failure("line 2: expected the origin record, found a %s record",
					kind_name(rec.kind));
			goto out;
		}
		if (lineno > 2 && (rec.kind == CL_EXPORT_HEADER || rec.kind == CL_EXPORT_ORIGIN ||
						   (int) rec.kind < lastkind))
		{
			failure("line %" PRIu64 ": %s record out of order (after a %s record)",
					lineno, kind_name(rec.kind), kind_name((cl_export_kind) lastkind));
			goto out;
		}
		lastkind = (int) rec.kind;

		switch (rec.kind)
		{
			case CL_EXPORT_HEADER:
				if (rec.count != 1)
				{
					failure("line 1: unsupported export version %" PRIu64, rec.count);
					goto out;
				}
				break;
			case CL_EXPORT_ORIGIN:
				memcpy(origin, rec.text, sizeof(origin));
				break;
			case CL_EXPORT_KEY:
				/* informational: trust comes from --public-key and endorsements */
				if (t->nlisted < MAX_TRUSTED)
					memcpy(t->listed[t->nlisted++], rec.pubkey, CL_PUBKEY_LEN);
				break;
			case CL_EXPORT_ENDORSEMENT:
				if (t->nnotes >= MAX_ENDORSEMENTS)
				{
					failure("line %" PRIu64 ": more than %d endorsements", lineno, MAX_ENDORSEMENTS);
					goto out;
				}
				t->notes[t->nnotes] = (char *) rec.data;
				t->lens[t->nnotes++] = rec.datalen;
				rec.data = NULL;	/* kept until the end */
				break;
			case CL_EXPORT_LEAF:
				if (nleaves == leafcap)
				{
					uint64_t	newcap = leafcap ? leafcap * 2 : 1024;
					cl_hash    *nl;

					if (newcap > SIZE_MAX / sizeof(cl_hash) ||
						newcap > (uint64_t) INT64_MAX)
					{
						rc = error("too many leaves");
						goto out;
					}
					nl = realloc(leaves, (size_t) newcap * sizeof(cl_hash));
					if (nl == NULL)
					{
						rc = error("out of memory after %" PRIu64 " leaves", nleaves);
						goto out;
					}
					leaves = nl;
					leafcap = newcap;
				}
				cl_leaf_hash(rec.data, rec.datalen, leaves[nleaves]);
				if (o->decode)
				{
					const char *why;

					printf("leaf %" PRIu64 ": ", nleaves);
					why = cl_leaf_decode(rec.data, rec.datalen, stdout);
					printf("\n");
					if (why != NULL)
					{
						failure("line %" PRIu64 " (leaf %" PRIu64 "): not a canonical row encoding: %s",
								lineno, nleaves, why);
						goto out;
					}
				}
				nleaves++;
				break;
			case CL_EXPORT_CHECKPOINT:
				{
					cl_checkpoint cp;
					cl_hash		root;
					const char *note = (const char *) rec.data;
					uint64_t	k = ++ncheckpoints;

					if (!cl_checkpoint_parse(note, rec.datalen, &cp, &err))
					{
						failure("checkpoint %" PRIu64 " (line %" PRIu64 "): %s", k, lineno, err);
						goto out;
					}
					if (strcmp(cp.origin, origin) != 0)
					{
						failure("checkpoint %" PRIu64 " (line %" PRIu64 "): origin \"%s\" is not the export's \"%s\"",
								k, lineno, cp.origin, origin);
						goto out;
					}
					if (!closed)
					{
						if (close_trust(t) != 0)
							goto out;
						closed = true;
					}
					if (verify_under(&cp, note, (const uint8_t (*)[CL_PUBKEY_LEN]) t->keys, t->nkeys) < 0)
					{
						failure("checkpoint %" PRIu64 " (line %" PRIu64 "): %s",
								k, lineno, untrusted_reason(t, &cp, why, sizeof(why)));
						goto out;
					}
					if (k > 1 && cp.size < lastsize)
					{
						failure("checkpoint %" PRIu64 " (line %" PRIu64 "): tree size %" PRIu64 " is smaller than the previous checkpoint's %" PRIu64,
								k, lineno, cp.size, lastsize);
						goto out;
					}
					if (memcmp(cp.prev, prevhash, CL_HASH_LEN) != 0)
					{
						if (k == 1)
							failure("checkpoint 1 (line %" PRIu64 "): prev is not 32 zero bytes", lineno);
						else
							failure("checkpoint %" PRIu64 " (line %" PRIu64 "): prev is not the hash of checkpoint %" PRIu64,
									k, lineno, k - 1);
						goto out;
					}
					if (cp.size > nleaves)
					{
						failure("checkpoint %" PRIu64 " (line %" PRIu64 "): tree size %" PRIu64 " exceeds the %" PRIu64 " leaves in the export",
								k, lineno, cp.size, nleaves);
						goto out;
					}
					while (frontier.size < cp.size)
						cl_frontier_append(&frontier, leaves[frontier.size]);
					cl_frontier_root(&frontier, root);
					if (memcmp(root, cp.root, CL_HASH_LEN) != 0)
					{
						failure("checkpoint %" PRIu64 " (line %" PRIu64 "): root hash %s is not the root of the first %" PRIu64 " leaves (computed %s)",
								k, lineno, hash64(cp.root, b1), cp.size, hash64(root, b2));
						goto out;
					}
					{
						/* prev hashes the note as the log signed it (README "Witnesses") */
						cl_cosignature cs[CL_MAX_SIGLINES];
						int			ncs = 0;
						char	   *lognote = malloc(rec.datalen + 1);

						if (lognote == NULL)
						{
							rc = error("out of memory");
							goto out;
						}
						if (!cl_cosignatures_parse(&cp, note, rec.datalen, cs, CL_MAX_SIGLINES, &ncs, &err))
						{
							free(lognote);
							failure("checkpoint %" PRIu64 " (line %" PRIu64 "): %s", k, lineno, err);
							goto out;
						}
						cl_note_hash(lognote, cl_note_without_cosignatures(note, rec.datalen, cs, ncs, lognote),
									 prevhash);
						free(lognote);
					}
					lastsize = cp.size;
					memcpy(lastroot, cp.root, CL_HASH_LEN);
					break;
				}
			case CL_EXPORT_END:
				if (rec.count != nleaves)
				{
					failure("line %" PRIu64 ": end record counts %" PRIu64 " leaves but the export has %" PRIu64,
							lineno, rec.count, nleaves);
					goto out;
				}
				if (ncheckpoints == 0)
				{
					failure("line %" PRIu64 ": the export has no checkpoint", lineno);
					goto out;
				}
				if (lastsize != nleaves)
				{
					failure("checkpoint %" PRIu64 ": the latest checkpoint covers %" PRIu64 " of the %" PRIu64 " leaves",
							ncheckpoints, lastsize, nleaves);
					goto out;
				}
				ended = true;
				break;
		}
		free(rec.data);
		rec.data = NULL;
	}
	if (ferror(f))
	{
		rc = error("cannot read \"%s\": %s", path, strerror(errno));
		goto out;
	}
	if (lineno == 0)
	{
		failure("empty export");
		goto out;
	}
	if (!ended)
	{
		failure("line %" PRIu64 ": the export ends without an end record (truncated?)", lineno);
		goto out;
	}

	if (receipt != NULL)
	{
		cl_hash		root;

		if (verify_under(&receipt_cp, receipt, (const uint8_t (*)[CL_PUBKEY_LEN]) t->keys, t->nkeys) < 0)
		{
			failure("--checkpoint %s: %s", o->checkpoint,
					untrusted_reason(t, &receipt_cp, why, sizeof(why)));
			goto out;
		}
		if (strcmp(receipt_cp.origin, origin) != 0)
		{
			failure("--checkpoint: origin \"%s\" is not the export's \"%s\"",
					receipt_cp.origin, origin);
			goto out;
		}
		if (receipt_cp.size > nleaves)
		{
			failure("--checkpoint: tree size %" PRIu64 " exceeds the %" PRIu64 " leaves in the export",
					receipt_cp.size, nleaves);
			goto out;
		}
		cl_merkle_root((const cl_hash *) leaves, receipt_cp.size, root);
		if (memcmp(root, receipt_cp.root, CL_HASH_LEN) != 0)
		{
			failure("--checkpoint: the export does not extend it: root of its first %" PRIu64 " leaves is %s, the checkpoint says %s",
					receipt_cp.size, hash64(root, b1), hash64(receipt_cp.root, b2));
			goto out;
		}
	}

	printf("OK: origin %s, %" PRIu64 " leaves, %" PRIu64 " checkpoints, latest size %" PRIu64 ", root %s",
		   origin, nleaves, ncheckpoints, lastsize, hash64(lastroot, b1));
	if (receipt != NULL)
		printf(", extends --checkpoint of size %" PRIu64, receipt_cp.size);
	if (t->nendorsed > 0)
		printf(", %d older or newer key%s trusted through endorsements", t->nendorsed,
			   t->nendorsed == 1 ? "" : "s");
	putchar('\n');
	rc = EXIT_VERIFIED;

out:
	free(rec.data);
	free(line);
	free(leaves);
	free(receipt);
	for (int i = 0; i < t->nnotes; i++)
		free(t->notes[i]);
	free(t);
	if (f != stdin)
		fclose(f);
	return rc;
}

/*
 * Reads and parses the proof file; returns 0, EXIT_FAILED (printed) or
 * EXIT_USAGE (printed).  When origin is not NULL, copies the proof's
 * "origin" string member into it ("" when it has none).
 */
static int
load_proof(const char *path, cl_proof *proof, char origin[CL_MAX_ORIGIN + 1])
{
	char	   *buf;
	size_t		len;
	const char *err;
	int			rc = read_whole_file(path, MAX_DOCUMENT, &buf, &len);

	if (rc != 0)
		return rc;
	if (!cl_proof_parse(buf, len, proof, &err))
	{
		free(buf);
		return failure("%s: %s", path, err);
	}
	if (origin != NULL)
	{
		cl_json_object obj;
		const cl_json_member *m;

		origin[0] = '\0';
		if (cl_json_parse(buf, len, &obj, &err))
		{
			m = cl_json_get(&obj, "origin", CL_JSON_STRING);
			if (m != NULL && m->strlen_ <= CL_MAX_ORIGIN && strlen(m->str) == m->strlen_)
				memcpy(origin, m->str, m->strlen_ + 1);
			cl_json_free(&obj);
		}
	}
	free(buf);
	return 0;
}

/*
 * Loads --checkpoint for a proof subcommand and checks its signature
 * under the --public-key keys: a proof binds a leaf or an older root to a
 * root, and only a signed checkpoint binds that root to a tree size and
 * origin.  Returns 0 with *cp and idhex (the signing key id) set, or
 * EXIT_FAILED / EXIT_USAGE (printed).
 */
static int
load_signed_checkpoint(const options *o, cl_checkpoint *cp, char idhex[2 * CL_KEYID_LEN + 1])
{
	char	   *note;
	size_t		notelen;
	const char *why;
	uint8_t		keyid[CL_KEYID_LEN];
	int			k;
	int			rc;

	if (o->nkeys == 0)
	{
		error("--checkpoint needs at least one --public-key");
		return usage();
	}
	rc = load_checkpoint_file(o->checkpoint, &note, &notelen, cp, &why);
	if (rc == EXIT_FAILED)
		return failure("--checkpoint %s: %s", o->checkpoint, why);
	if (rc != 0)
		return rc;
	k = verify_under_keys(cp, note, o);
	free(note);
	if (k < 0)
		return failure("--checkpoint %s: signature does not verify under any given public key",
					   o->checkpoint);
	cl_key_id(CL_KEY_NAME, o->keys[k], keyid);
	cl_hex_encode(keyid, CL_KEYID_LEN, idhex);
	return 0;
}

/* The inclusion subcommand. */
static int
cmd_inclusion(const options *o)
{
	cl_proof	proof;
	const char *err;
	char		b1[45];
	char		origin[CL_MAX_ORIGIN + 1];
	cl_checkpoint cp;
	char		idhex[2 * CL_KEYID_LEN + 1];
	int			rc;

	if (o->nargs != 1 || (o->nkeys != 0 && o->checkpoint == NULL) || o->decode)
		return usage();
	rc = load_proof(o->args[0], &proof, origin);
	if (rc != 0)
		return rc;
	if (o->checkpoint != NULL)
	{
		rc = load_signed_checkpoint(o, &cp, idhex);
		if (rc != 0)
			return rc;
	}
	if (proof.type != CL_PROOF_INCLUSION)
		return failure("%s: not an inclusion proof", o->args[0]);

	if (o->leaf_data != NULL)
	{
		size_t		hexlen = strlen(o->leaf_data);
		char	   *hex = malloc(hexlen + 1);
		uint8_t    *data = malloc(hexlen / 2 + 1);
		cl_hash		h;
		size_t		i;

		if (hex == NULL || data == NULL)
		{
			free(hex);
			free(data);
			return error("out of memory");
		}
		for (i = 0; i < hexlen; i++)
			hex[i] = (char) tolower((unsigned char) o->leaf_data[i]);
		hex[hexlen] = '\0';
		if (cl_hex_decode(hex, hexlen, data, hexlen / 2) != (long) (hexlen / 2))
		{
			free(hex);
			free(data);
			return error("--leaf-data is not hex");
		}
		cl_leaf_hash(data, hexlen / 2, h);
		free(hex);
		free(data);
		if (memcmp(h, proof.leaf_hash, CL_HASH_LEN) != 0)
			return failure("the leaf data hashes to %s, not to the proof's leaf_hash",
						   hash64(h, b1));
	}
	if (!cl_proof_verify(&proof, &err))
		return failure("%s", err);
	if (o->checkpoint == NULL)
	{
		/* the path fits every tree size of the same shape: no size is claimed */
		printf("OK: leaf %" PRIu64 " is included in the tree with root %s%s; "
			   "tree size and origin not checked (give --checkpoint and --public-key)\n",
			   proof.leaf_index, hash64(proof.root_hash, b1),
			   o->leaf_data ? " (leaf data matches)" : "");
		return EXIT_VERIFIED;
	}
	if (proof.tree_size != cp.size)
		return failure("the proof is for tree size %" PRIu64 ", --checkpoint attests size %" PRIu64,
					   proof.tree_size, cp.size);
	if (memcmp(proof.root_hash, cp.root, CL_HASH_LEN) != 0)
		return failure("the proof's root_hash is not the root --checkpoint signs");
	if (origin[0] != '\0' && strcmp(origin, cp.origin) != 0)
		return failure("the proof's origin \"%s\" is not --checkpoint's \"%s\"", origin, cp.origin);
	printf("OK: leaf %" PRIu64 " is included in the tree of size %" PRIu64 " with root %s%s, "
		   "signed for %s by key id %s (--checkpoint)\n",
		   proof.leaf_index, cp.size, hash64(cp.root, b1),
		   o->leaf_data ? " (leaf data matches)" : "", cp.origin, idhex);
	return EXIT_VERIFIED;
}

/* The consistency subcommand. */
static int
cmd_consistency(const options *o)
{
	cl_proof	proof;
	const char *err;
	char		b1[45];
	char		b2[45];
	char		origin[CL_MAX_ORIGIN + 1];
	cl_checkpoint cp;
	char		idhex[2 * CL_KEYID_LEN + 1];
	bool		is_new;
	int			rc;

	if (o->nargs != 1 || (o->nkeys != 0 && o->checkpoint == NULL) ||
		o->leaf_data != NULL || o->decode)
		return usage();
	rc = load_proof(o->args[0], &proof, origin);
	if (rc != 0)
		return rc;
	if (o->checkpoint != NULL)
	{
		rc = load_signed_checkpoint(o, &cp, idhex);
		if (rc != 0)
			return rc;
	}
	if (proof.type != CL_PROOF_CONSISTENCY)
		return failure("%s: not a consistency proof", o->args[0]);
	if (!cl_proof_verify(&proof, &err))
		return failure("%s", err);
	if (o->checkpoint == NULL)
	{
		printf("OK: the tree with root %s is a prefix of the tree with root %s; "
			   "tree sizes and origin not checked (give --checkpoint and --public-key)\n",
			   hash64(proof.old_root, b1), hash64(proof.new_root, b2));
		return EXIT_VERIFIED;
	}

	/* the signed checkpoint must be the proof's new tree or its old one */
	is_new = (proof.new_size == cp.size && memcmp(proof.new_root, cp.root, CL_HASH_LEN) == 0);
	if (!is_new && !(proof.old_size == cp.size && memcmp(proof.old_root, cp.root, CL_HASH_LEN) == 0))
		return failure("--checkpoint (size %" PRIu64 ") is neither the proof's old tree nor its new tree",
					   cp.size);
	if (origin[0] != '\0' && strcmp(origin, cp.origin) != 0)
		return failure("the proof's origin \"%s\" is not --checkpoint's \"%s\"", origin, cp.origin);
	if (is_new)
		printf("OK: the tree with root %s is a prefix of the tree of size %" PRIu64 " with root %s, "
			   "signed for %s by key id %s (--checkpoint); the old size is not checked\n",
			   hash64(proof.old_root, b1), cp.size, hash64(proof.new_root, b2), cp.origin, idhex);
	else
		printf("OK: the tree of size %" PRIu64 " with root %s, signed for %s by key id %s (--checkpoint), "
			   "is a prefix of the tree with root %s; the new size is not checked\n",
			   cp.size, hash64(proof.old_root, b1), cp.origin, idhex, hash64(proof.new_root, b2));
	return EXIT_VERIFIED;
}

/*
 * checkpoint --later FILE --consistency-proof FILE: a checkpoint without
 * its own quorum holds when a later checkpoint of the same log, signed by
 * a given key, has the quorum and the consistency proof leads from the
 * first to it -- the witnesses checked that the later tree extends every
 * tree they cosigned before, and the proof shows this one is its prefix
 * (as verify_checkpoint(..., witnesses, quorum) does with the later
 * checkpoints it stores).  Returns EXIT_VERIFIED or a failure.
 */
static int
later_quorum(const options *o, const cl_checkpoint *cp, int distinct)
{
	char	   *note;
	size_t		notelen;
	cl_checkpoint later;
	const char *why;
	cl_proof	proof;
	char		origin[CL_MAX_ORIGIN + 1];
	const char *err;
	char		reason[256];
	int			count;
	int			rc;

	rc = load_checkpoint_file(o->later, &note, &notelen, &later, &why);
	if (rc == EXIT_FAILED)
		return failure("%s: %s", o->later, why);
	if (rc != 0)
		return rc;
	if (verify_under_keys(&later, note, o) < 0)
	{
		free(note);
		return failure("%s: signature does not verify under any given public key", o->later);
	}
	if (strcmp(later.origin, cp->origin) != 0)
	{
		free(note);
		return failure("%s: origin \"%s\" is not the checkpoint's \"%s\"", o->later, later.origin, cp->origin);
	}
	count = cl_quorum_count(&later, note, notelen, (const char (*)[CL_MAX_KEY_NAME + 1]) o->wnames,
							(const uint8_t (*)[CL_PUBKEY_LEN]) o->wkeys, o->nwitnesses,
							(int64_t) time(NULL), reason, sizeof(reason));
	free(note);
	if (count < 0)
		return failure("%s: malformed cosignature: %s", o->later, reason);
	if (count < o->quorum)
		return failure("%s: only %d of the %d distinct witnesses given cosigned the later checkpoint either, fewer than the quorum of %ld",
					   o->later, count, distinct, o->quorum);
	rc = load_proof(o->later_proof, &proof, origin);
	if (rc != 0)
		return rc;
	if (proof.type != CL_PROOF_CONSISTENCY)
		return failure("%s: not a consistency proof", o->later_proof);
	if (origin[0] != '\0' && strcmp(origin, cp->origin) != 0)
		return failure("%s: the proof's origin \"%s\" is not the checkpoint's \"%s\"", o->later_proof, origin, cp->origin);
	if (proof.old_size != cp->size || memcmp(proof.old_root, cp->root, CL_HASH_LEN) != 0 ||
		proof.new_size != later.size || memcmp(proof.new_root, later.root, CL_HASH_LEN) != 0)
		return failure("%s: the proof does not lead from the checkpoint (size %" PRIu64 ") to the later one (size %" PRIu64 ")",
					   o->later_proof, cp->size, later.size);
	if (!cl_proof_verify(&proof, &err))
		return failure("%s: %s", o->later_proof, err);
	printf("OK: %d of %d witnesses cosigned a later checkpoint (size %" PRIu64 ") consistent with it (quorum %ld)\n",
		   count, distinct, later.size, o->quorum);
	return EXIT_VERIFIED;
}

/* The checkpoint subcommand: verifies and prints the fields. */
static int
cmd_checkpoint(const options *o)
{
	char	   *note;
	size_t		notelen;
	cl_checkpoint cp;
	const char *why;
	uint8_t		keyid[CL_KEYID_LEN];
	char		idhex[2 * CL_KEYID_LEN + 1];
	char		b1[45];
	int			k;
	int			rc;

	if (o->nkeys == 0)
	{
		error("checkpoint needs at least one --public-key");
		return usage();
	}
	if (o->nargs != 1 || o->checkpoint != NULL || o->leaf_data != NULL || o->decode)
		return usage();
	rc = load_checkpoint_file(o->args[0], &note, &notelen, &cp, &why);
	if (rc == EXIT_FAILED)
		return failure("%s: %s", o->args[0], why);
	if (rc != 0)
		return rc;
	if ((o->nwitnesses > 0) != (o->quorum > 0))
	{
		free(note);
		error("--witness-key and --quorum go together");
		return usage();
	}
	if ((o->later != NULL || o->later_proof != NULL) &&
		(o->quorum == 0 || o->later == NULL || o->later_proof == NULL))
	{
		free(note);
		error("--later and --consistency-proof go together, with --quorum");
		return usage();
	}
	k = verify_under_keys(&cp, note, o);
	if (k < 0)
	{
		free(note);
		return failure("%s: signature does not verify under any given public key",
					   o->args[0]);
	}
	if (o->quorum > 0)
	{
		char		why[256];
		int			distinct = distinct_witnesses(o);
		int			count;

		if (o->quorum > distinct)
		{
			free(note);
			return error("--quorum %ld exceeds the %d distinct --witness-key given", o->quorum, distinct);
		}
		count = cl_quorum_count(&cp, note, notelen, (const char (*)[CL_MAX_KEY_NAME + 1]) o->wnames,
								(const uint8_t (*)[CL_PUBKEY_LEN]) o->wkeys, o->nwitnesses,
								(int64_t) time(NULL), why, sizeof(why));
		free(note);
		if (count < 0)
			return failure("%s: malformed cosignature: %s", o->args[0], why);
		if (count < o->quorum && o->later != NULL)
		{
			rc = later_quorum(o, &cp, distinct);
			if (rc != EXIT_VERIFIED)
				return rc;
		}
		else if (count < o->quorum)
			return failure("%s: only %d of the %d distinct witnesses given cosigned the checkpoint, fewer than the quorum of %ld%s%s",
						   o->args[0], count, distinct, o->quorum, why[0] ? "; " : "", why);
		else
			printf("OK: %d of %d witnesses cosigned (quorum %ld)\n", count, distinct, o->quorum);
	}
	else
		free(note);
	cl_key_id(CL_KEY_NAME, o->keys[k], keyid);
	cl_hex_encode(keyid, CL_KEYID_LEN, idhex);
	printf("OK: checkpoint signature verifies under key id %s\n", idhex);
	printf("origin %s\n", cp.origin);
	printf("tree_size %" PRIu64 "\n", cp.size);
	printf("root_hash %s\n", hash64(cp.root, b1));
	printf("time %" PRId64 "\n", cp.time);
	printf("prev_hash %s\n", hash64(cp.prev, b1));
	printf("key_id %s\n", idhex);
	return EXIT_VERIFIED;
}

/*
 * A leaf's 'Z' (timestamptz) value as UTC text to the microsecond, the form
 * consent_receipt() writes (YYYY-MM-DDTHH:MM:SS.uuuuuuZ); Unix seconds
 * through *unix_s.
 */
static void
leaf_time(const uint8_t *v, char out[48], int64_t *unix_s)
{
	int64_t		us = 0;
	int64_t		frac;
	time_t		t;
	struct tm	tm;
	char		date[32];

	for (int i = 0; i < 8; i++)
		us = (int64_t) (((uint64_t) us << 8) | v[i]);
	/* PostgreSQL's infinite timestamps (an expiry of 'infinity') */
	if (us == INT64_MAX || us == INT64_MIN)
	{
		snprintf(out, 48, "%s", us == INT64_MAX ? "infinity" : "-infinity");
		*unix_s = us;
		return;
	}
	/* microseconds since 2000-01-01, floored to seconds */
	frac = us % 1000000;
	if (frac < 0)
		frac += 1000000;
	*unix_s = (us - frac) / 1000000 + INT64_C(946684800);
	t = (time_t) *unix_s;
	if (gmtime_r(&t, &tm) == NULL || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(out, 48, "%" PRId64 " us after 2000", us);
	else
		snprintf(out, 48, "%s.%06" PRId64 "Z", date, frac);
}

/* A member of the receipt's event equals the leaf's value (NULL: absent). */
static bool
member_is(const cl_json_object *ev, const char *key, const char *want)
{
	const cl_json_member *m = NULL;

	for (int i = 0; i < ev->nmembers; i++)
	{
		if (strcmp(ev->members[i].key, key) == 0)
			m = &ev->members[i];
	}
	if (m == NULL)
		return false;
	if (want == NULL)
		return m->type == CL_JSON_NULL;
	return m->type == CL_JSON_STRING && m->strlen_ == strlen(want) && strcmp(m->str, want) == 0;
}

/*
 * A text column of the leaf as a NUL-terminated string (malloc'd), NULL
 * when the leaf has no such column; *bad when it has one of another type.
 */
static char *
leaf_text(const uint8_t *leaf, size_t len, const char *name, bool *bad)
{
	uint8_t		tag;
	const uint8_t *v;
	size_t		n;
	char	   *s;

	if (cl_leaf_column(leaf, len, name, &tag, &v, &n) != NULL || tag == 0)
		return NULL;
	if (tag != 't' || memchr(v, '\0', n) != NULL)
	{
		*bad = true;
		return NULL;
	}
	s = malloc(n + 1);
	if (s == NULL)
	{
		*bad = true;
		return NULL;
	}
	memcpy(s, v, n);
	s[n] = '\0';
	return s;
}

/*
 * The receipt subcommand: checks a consent receipt (consent_receipt())
 * offline -- the checkpoint's signature (and witnesses' cosignatures), the
 * inclusion of the leaf in its tree, that the leaf is the event the
 * receipt names, and the subject's signature over the statement the leaf
 * carries -- and prints what the person consented to.
 */
static int
cmd_receipt(const options *o)
{
	char	   *buf = NULL;
	size_t		len;
	cl_json_part parts[8];
	int			nparts;
	const char *err;
	const cl_json_part *p_type = NULL, *p_event = NULL, *p_index = NULL,
			   *p_leaf = NULL, *p_proof = NULL, *p_cp = NULL;
	cl_checkpoint cp;
	char	   *note = NULL;
	size_t		notelen;
	char		why[256];
	cl_proof	proof;
	cl_json_object ev;
	bool		ev_parsed = false;
	uint8_t    *leaf = NULL;
	size_t		leaflen = 0;
	cl_hash		h;
	char		b1[45];
	char		idhex[2 * CL_KEYID_LEN + 1];
	uint8_t		keyid[CL_KEYID_LEN];
	char	   *subject = NULL, *purpose = NULL, *action = NULL, *stmt = NULL,
			   *sig64 = NULL, *key64 = NULL;
	bool		bad = false;
	uint8_t		tag;
	const uint8_t *v;
	size_t		n;
	int64_t		event_id = 0;
	char		recorded[48] = "";
	char		expires[48] = "no expiry";
	char	   *recorded_by = NULL;
	int64_t		recorded_s = 0;
	int64_t		expires_s = 0;
	bool		has_expiry = false;
	int			k;
	int			rc;
	char		tmp[64];

	if (o->nkeys == 0)
	{
		error("receipt needs at least one --public-key");
		return usage();
	}
	if (o->nargs != 1 || o->checkpoint != NULL || o->leaf_data != NULL || o->decode ||
		o->later != NULL || o->later_proof != NULL)
		return usage();
	if ((o->nwitnesses > 0) != (o->quorum > 0))
	{
		error("--witness-key and --quorum go together");
		return usage();
	}
	rc = read_whole_file(o->args[0], MAX_DOCUMENT, &buf, &len);
	if (rc != 0)
		return rc;
#define RFAIL(...) do { rc = failure(__VA_ARGS__); goto done; } while (0)
	if (!cl_json_split(buf, len, parts, 8, &nparts, &err))
		RFAIL("%s: malformed receipt: %s", o->args[0], err);
	for (int i = 0; i < nparts; i++)
	{
		const cl_json_part **slot =
			strcmp(parts[i].key, "type") == 0 ? &p_type :
			strcmp(parts[i].key, "event") == 0 ? &p_event :
			strcmp(parts[i].key, "leaf_index") == 0 ? &p_index :
			strcmp(parts[i].key, "leaf_data") == 0 ? &p_leaf :
			strcmp(parts[i].key, "proof") == 0 ? &p_proof :
			strcmp(parts[i].key, "checkpoint") == 0 ? &p_cp : NULL;

		if (slot == NULL)
			RFAIL("%s: malformed receipt: unknown member \"%s\"", o->args[0], parts[i].key);
		*slot = &parts[i];
	}
	if (p_type == NULL || p_event == NULL || p_index == NULL || p_leaf == NULL ||
		p_proof == NULL || p_cp == NULL)
		RFAIL("%s: malformed receipt: it needs the members type, event, leaf_index, leaf_data, proof and checkpoint",
			  o->args[0]);
	if (p_type->valuelen != strlen("\"consent_ledger/consent-receipt/v1\"") ||
		memcmp(p_type->value, "\"consent_ledger/consent-receipt/v1\"", p_type->valuelen) != 0)
		RFAIL("%s: not a consent receipt of version 1 (member type)", o->args[0]);

	/* 1. the checkpoint: signed by the log's key (and cosigned) */
	if (!cl_receipt_read(p_cp->value, p_cp->valuelen, &cp, &note, &notelen, why, sizeof(why)))
		RFAIL("%s: checkpoint: %s", o->args[0], why);
	k = verify_under_keys(&cp, note, o);
	if (k < 0)
		RFAIL("%s: the checkpoint's signature does not verify under any given public key", o->args[0]);
	cl_key_id(CL_KEY_NAME, o->keys[k], keyid);
	cl_hex_encode(keyid, CL_KEYID_LEN, idhex);
	if (o->quorum > 0)
	{
		int			distinct = distinct_witnesses(o);
		int			count;

		if (o->quorum > distinct)
		{
			rc = error("--quorum %ld exceeds the %d distinct --witness-key given", o->quorum, distinct);
			goto done;
		}
		count = cl_quorum_count(&cp, note, notelen, (const char (*)[CL_MAX_KEY_NAME + 1]) o->wnames,
								(const uint8_t (*)[CL_PUBKEY_LEN]) o->wkeys, o->nwitnesses,
								(int64_t) time(NULL), why, sizeof(why));
		if (count < 0)
			RFAIL("%s: malformed cosignature: %s", o->args[0], why);
		if (count < o->quorum)
			RFAIL("%s: only %d of the %d distinct witnesses given cosigned the checkpoint, fewer than the quorum of %ld",
				  o->args[0], count, distinct, o->quorum);
		printf("OK: %d of %d witnesses cosigned the checkpoint (quorum %ld)\n", count, distinct, o->quorum);
	}

	if (o->origin != NULL && strcmp(o->origin, cp.origin) != 0)
		RFAIL("%s: the checkpoint is of %s, not of --origin %s", o->args[0], cp.origin, o->origin);

	/* 2. the proof: the leaf is in that tree */
	if (!cl_proof_parse(p_proof->value, p_proof->valuelen, &proof, &err))
		RFAIL("%s: proof: %s", o->args[0], err);
	if (proof.type != CL_PROOF_INCLUSION)
		RFAIL("%s: proof: not an inclusion proof", o->args[0]);
	if (p_index->valuelen >= sizeof(tmp))
		RFAIL("%s: malformed receipt: leaf_index", o->args[0]);
	memcpy(tmp, p_index->value, p_index->valuelen);
	tmp[p_index->valuelen] = '\0';
	if (strspn(tmp, "0123456789") != p_index->valuelen || strtoull(tmp, NULL, 10) != proof.leaf_index)
		RFAIL("%s: leaf_index is not the proof's leaf_index", o->args[0]);
	if (proof.tree_size != cp.size || memcmp(proof.root_hash, cp.root, CL_HASH_LEN) != 0)
		RFAIL("%s: the proof is not for the tree the checkpoint signs", o->args[0]);
	if (p_leaf->valuelen < 2 || p_leaf->value[0] != '"' || p_leaf->value[p_leaf->valuelen - 1] != '"' ||
		(p_leaf->valuelen - 2) % 2 != 0)
		RFAIL("%s: leaf_data is not a hex string", o->args[0]);
	leaflen = (p_leaf->valuelen - 2) / 2;
	leaf = malloc(leaflen + 1);
	if (leaf == NULL)
	{
		rc = error("out of memory");
		goto done;
	}
	if (cl_hex_decode(p_leaf->value + 1, p_leaf->valuelen - 2, leaf, leaflen) != (long) leaflen)
		RFAIL("%s: leaf_data is not lower-case hex", o->args[0]);
	cl_leaf_hash(leaf, leaflen, h);
	if (memcmp(h, proof.leaf_hash, CL_HASH_LEN) != 0)
		RFAIL("%s: leaf_data hashes to %s, not to the proof's leaf_hash", o->args[0], hash64(h, b1));
	if (!cl_proof_verify(&proof, &err))
		RFAIL("%s: proof: %s", o->args[0], err);

	/* 3. the leaf is a consent event, the one the receipt names */
	err = cl_leaf_decode(leaf, leaflen, NULL);
	if (err != NULL)
		RFAIL("%s: leaf_data: %s", o->args[0], err);
	if (cl_leaf_column(leaf, leaflen, "event_id", &tag, &v, &n) != NULL || tag != 'i')
		RFAIL("%s: the leaf is not a consent event (no event_id)", o->args[0]);
	for (int i = 0; i < 8; i++)
		event_id = (int64_t) (((uint64_t) event_id << 8) | v[i]);
	subject = leaf_text(leaf, leaflen, "subject", &bad);
	purpose = leaf_text(leaf, leaflen, "purpose", &bad);
	action = leaf_text(leaf, leaflen, "action", &bad);
	stmt = leaf_text(leaf, leaflen, "subject_statement", &bad);
	sig64 = leaf_text(leaf, leaflen, "subject_signature", &bad);
	key64 = leaf_text(leaf, leaflen, "subject_key", &bad);
	if (bad || subject == NULL || purpose == NULL || action == NULL)
		RFAIL("%s: the leaf is not a consent event (subject, purpose, action)", o->args[0]);
	recorded_by = leaf_text(leaf, leaflen, "recorded_by", &bad);
	if (cl_leaf_column(leaf, leaflen, "recorded_at", &tag, &v, &n) == NULL && tag == 'Z')
		leaf_time(v, recorded, &recorded_s);
	if (cl_leaf_column(leaf, leaflen, "expires_at", &tag, &v, &n) == NULL && tag == 'Z')
	{
		leaf_time(v, expires, &expires_s);
		has_expiry = true;
	}
	if (!cl_json_parse(p_event->value, p_event->valuelen, &ev, &err))
		RFAIL("%s: event: %s", o->args[0], err);
	ev_parsed = true;
	{
		/* every member the receipt shows is the leaf's, and nothing else is shown */
		static const char *const known[] = {"event_id", "subject", "purpose", "action", "expires_at",
			"recorded_at", "recorded_by", "subject_statement", "subject_signature", "subject_key"};
		const cl_json_member *m_id = cl_json_get(&ev, "event_id", CL_JSON_INT);

		for (int i = 0; i < ev.nmembers; i++)
		{
			bool		ok = false;

			for (int j = 0; j < (int) (sizeof(known) / sizeof(known[0])); j++)
				ok |= strcmp(ev.members[i].key, known[j]) == 0;
			if (!ok)
				RFAIL("%s: the event has a member the verifier does not check: \"%s\"", o->args[0], ev.members[i].key);
		}
		if (m_id == NULL || (int64_t) m_id->num != event_id ||
			!member_is(&ev, "subject", subject) || !member_is(&ev, "purpose", purpose) ||
			!member_is(&ev, "action", action) || !member_is(&ev, "recorded_by", recorded_by) ||
			!member_is(&ev, "recorded_at", recorded[0] ? recorded : NULL) ||
			!member_is(&ev, "expires_at", has_expiry ? expires : NULL) ||
			!member_is(&ev, "subject_statement", stmt) || !member_is(&ev, "subject_signature", sig64) ||
			!member_is(&ev, "subject_key", key64))
			RFAIL("%s: the event the receipt shows is not the one its leaf holds", o->args[0]);
	}

	/* 4. the subject's signature, when the event carries one */
	if ((stmt != NULL) != (sig64 != NULL) || (stmt != NULL) != (key64 != NULL))
		RFAIL("%s: the leaf has part of a subject signature", o->args[0]);
	if (stmt != NULL)
	{
		cl_statement st;
		uint8_t		sig[CL_SUBJECT_SIG_LEN];
		uint8_t		skey[CL_SUBJECT_KEY_LEN];

		if (!cl_statement_parse(stmt, strlen(stmt), &st, &err) || st.kind != CL_STMT_CONSENT)
			RFAIL("%s: the subject's statement is malformed: %s", o->args[0], err ? err : "not a consent statement");
		if (!cl_statement_b64(sig64, strlen(sig64), sig, sizeof(sig)) ||
			!cl_statement_b64(key64, strlen(key64), skey, sizeof(skey)))
			RFAIL("%s: the subject's signature or key is malformed", o->args[0]);
		if (!cl_statement_signature_ok(stmt, strlen(stmt), sig, skey))
			RFAIL("%s: the subject's signature does not verify over the statement", o->args[0]);
		/* the subject signed for this consent ledger, not for another ledger of the server */
		if (strcmp(st.origin, cp.origin) != 0)
			RFAIL("%s: the subject signed for origin %s, but the checkpoint is of %s", o->args[0], st.origin, cp.origin);
		if (strcmp(st.subject, subject) != 0 || strcmp(st.purpose, purpose) != 0 ||
			strcmp(action, st.withdraw ? "withdraw" : "grant") != 0 ||
			st.expires_never == has_expiry || (has_expiry && st.expires != expires_s))
			RFAIL("%s: the event is not what the subject signed (subject, purpose, action or expiry differ)",
				  o->args[0]);
		if (o->subject_key != NULL && strcmp(o->subject_key, key64) != 0)
			RFAIL("%s: the subject signed with key %s, not with --subject-key", o->args[0], key64);
	}
	else if (o->subject_key != NULL)
		RFAIL("%s: the event carries no subject signature (--subject-key given)", o->args[0]);

	printf("OK: consent event %" PRId64 " is leaf %" PRIu64 " of the tree of size %" PRIu64
		   " with root %s, signed for %s by key id %s\n",
		   event_id, proof.leaf_index, cp.size, hash64(cp.root, b1), cp.origin, idhex);
	printf("subject %s\npurpose %s\naction %s\nexpires %s\nrecorded %s\n",
		   subject, purpose, action, expires, recorded);
	if (stmt != NULL)
		printf("subject-signed: yes, by key %s\n", key64);
	else
		printf("subject-signed: no (recorded by the operator)\n");
	/* what the receipt alone cannot tell: which ledger is the consent ledger, whose key */
	if (o->origin == NULL)
		printf("note: --origin not given: any ledger signed by the server's key is taken for the consent ledger\n");
	if (stmt != NULL && o->subject_key == NULL)
		printf("note: --subject-key not given: the key is the one the leaf names, not one you know is the subject's\n");
	rc = EXIT_VERIFIED;
#undef RFAIL
done:
	if (ev_parsed)
		cl_json_free(&ev);
	free(subject);
	free(purpose);
	free(action);
	free(stmt);
	free(sig64);
	free(key64);
	free(recorded_by);
	free(leaf);
	free(note);
	free(buf);
	return rc;
}

/*
 * The keygen subcommand: writes base64(seed) and a newline to a new
 * file (O_EXCL, mode 0600) and prints the public key and key id.
 */
static int
cmd_keygen(int argc, char **argv)
{
	uint8_t		seed[crypto_sign_SEEDBYTES];
	uint8_t		pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t		sk[crypto_sign_SECRETKEYBYTES];
	uint8_t		keyid[CL_KEYID_LEN];
	char		line[64];
	char		pk64[45];
	char		idhex[2 * CL_KEYID_LEN + 1];
	const char *path;
	size_t		len;
	size_t		off = 0;
	int			fd;

	if (argc != 1 || strncmp(argv[0], "--", 2) == 0)
		return usage();
	path = argv[0];

	randombytes_buf(seed, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(sk, sizeof(sk));
	cl_base64_encode(seed, sizeof(seed), line);
	sodium_memzero(seed, sizeof(seed));
	len = strlen(line);
	line[len++] = '\n';

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		sodium_memzero(line, sizeof(line));
		return error("cannot create \"%s\": %s", path, strerror(errno));
	}
	if (fchmod(fd, S_IRUSR | S_IWUSR) != 0)
		goto write_error;
	while (off < len)
	{
		ssize_t		w = write(fd, line + off, len - off);

		if (w < 0)
		{
			if (errno == EINTR)
				continue;
			goto write_error;
		}
		off += (size_t) w;
	}
	if (fsync(fd) != 0)
		goto write_error;
	if (close(fd) != 0)
	{
		fd = -1;
		goto write_error;
	}
	sodium_memzero(line, sizeof(line));

	cl_base64_encode(pk, sizeof(pk), pk64);
	cl_key_id(CL_KEY_NAME, pk, keyid);
	cl_hex_encode(keyid, CL_KEYID_LEN, idhex);
	printf("%s\n", pk64);
	printf("key id %s (key name %s)\n", idhex, CL_KEY_NAME);
	return EXIT_VERIFIED;

write_error:
	{
		int			e = errno;

		sodium_memzero(line, sizeof(line));
		if (fd >= 0)
			close(fd);
		unlink(path);
		return error("cannot write \"%s\": %s", path, strerror(e));
	}
}

/*
 * Dispatches to the subcommand.  Exit status: 0 verified (or keygen
 * done), 1 verification failed, 2 usage, I/O or resource error.
 */
int
main(int argc, char **argv)
{
	options		o;
	const char *cmd;
	int			rc;

	if (sodium_init() < 0)
		return error("cannot initialize libsodium");
	if (argc < 2)
		return usage();
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
	{
		usage();
		return 0;
	}
	if (strcmp(cmd, "keygen") == 0)
		rc = cmd_keygen(argc - 2, argv + 2);
	else
	{
		rc = parse_options(argc - 2, argv + 2, &o);
		if (rc != 0)
			return rc;
		if (strcmp(cmd, "export") == 0)
			rc = cmd_export(&o);
		else if (strcmp(cmd, "inclusion") == 0)
			rc = cmd_inclusion(&o);
		else if (strcmp(cmd, "consistency") == 0)
			rc = cmd_consistency(&o);
		else if (strcmp(cmd, "checkpoint") == 0)
			rc = cmd_checkpoint(&o);
		else if (strcmp(cmd, "receipt") == 0)
			rc = cmd_receipt(&o);
		else
		{
			error("unknown command \"%s\"", cmd);
			return usage();
		}
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		return error("cannot write to standard output");
	return rc;
}
