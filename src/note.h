/*-------------------------------------------------------------------------
 * note.h
 *	  Signed checkpoints in the C2SP tlog-checkpoint / signed-note format,
 *	  base64, key ids, and the export file's line format.
 *
 * Pure C99 + libsodium.  No PostgreSQL headers: shared by the extension,
 * the offline verifier and the fuzzers.  Every parser here takes
 * untrusted bytes with an explicit length, never reads past it, never
 * aborts, and reports a short English reason on failure.
 *
 * A checkpoint note is exactly:
 *
 *	<origin>\n
 *	<tree size, decimal, no leading zeros>\n
 *	<root hash, standard base64 with padding>\n
 *	time <unix seconds, decimal>\n
 *	prev <base64 SHA-256 of the previous checkpoint's complete note,
 *		  or 32 zero bytes for the first checkpoint>\n
 *	\n
 *	\u2014 <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>\n
 *
 * The signature covers the body: every byte before the blank line,
 * including the newline that ends the "prev" line.  The key id is the
 * C2SP one: the first 4 bytes of SHA-256(key name || "\n" || 0x01 ||
 * 32-byte public key).  A note may carry further signature lines (a
 * witness's cosignature); unknown ones are ignored.
 *-------------------------------------------------------------------------
 */
#ifndef CL_NOTE_H
#define CL_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "merkle.h"

#define CL_KEY_NAME			"consent_ledger"
#define CL_PUBKEY_LEN		32
#define CL_SIG_LEN			64
#define CL_KEYID_LEN		4
#define CL_MAX_ORIGIN		255
#define CL_MAX_NOTE			8192
#define CL_MAX_SIGLINES		16

/* base64 (RFC 4648 standard alphabet, padded) */
extern size_t cl_base64_encoded_len(size_t len);	/* without the NUL */
extern void cl_base64_encode(const uint8_t *in, size_t len, char *out); /* NUL-terminates */
/* decodes exactly; returns -1 on any bad character, padding or length, else bytes written (<= outmax) */
extern long cl_base64_decode(const char *in, size_t len, uint8_t *out, size_t outmax);

/* lower-case hex */
extern void cl_hex_encode(const uint8_t *in, size_t len, char *out);	/* NUL-terminates */
extern long cl_hex_decode(const char *in, size_t len, uint8_t *out, size_t outmax);

extern void cl_key_id(const char *keyname, const uint8_t pubkey[CL_PUBKEY_LEN],
					  uint8_t out[CL_KEYID_LEN]);

typedef struct cl_signature
{
	char		keyname[64];
	uint8_t		keyid[CL_KEYID_LEN];
	uint8_t		sig[CL_SIG_LEN];
} cl_signature;

typedef struct cl_checkpoint
{
	char		origin[CL_MAX_ORIGIN + 1];
	uint64_t	size;
	cl_hash		root;
	int64_t		time;
	cl_hash		prev;
	size_t		bodylen;		/* bytes of the note covered by signatures */
	int			nsigs;
	cl_signature sigs[CL_MAX_SIGLINES];
} cl_checkpoint;

/*
 * Writes the checkpoint body (the signed text, ending in "\n" after the
 * prev line, without the blank line) into buf; returns its length, or 0
 * if bufsize is too small, time is negative, size exceeds 2^63-1, or
 * origin is invalid (empty, too long, not UTF-8, or containing a control
 * character, a Unicode space or '+') -- exactly what the parser rejects.
 */
extern size_t cl_checkpoint_body(const char *origin, uint64_t size,
								 const cl_hash root, int64_t time,
								 const cl_hash prev, char *buf, size_t bufsize);

/*
 * Appends "\n\u2014 <keyname> <base64(keyid||sig)>\n" after a body to
 * make the complete note in buf (which holds the body in its first
 * bodylen bytes).  Returns the note's length or 0 if it does not fit.
 */
extern size_t cl_note_append_signature(char *buf, size_t bodylen, size_t bufsize,
									   const char *keyname,
									   const uint8_t keyid[CL_KEYID_LEN],
									   const uint8_t sig[CL_SIG_LEN]);

/* Parses a complete note.  false with *err set on any deviation. */
extern bool cl_checkpoint_parse(const char *note, size_t len,
								cl_checkpoint *out, const char **err);

/*
 * True when a signature line of the note names keyname and the key id of
 * this public key and its Ed25519 signature over the body verifies.  As
 * the signed-note spec requires, a line that names this key but does not
 * verify makes the whole note fail, even if another such line verifies.
 */
extern bool cl_checkpoint_verify(const cl_checkpoint *cp, const char *note,
								 const char *keyname,
								 const uint8_t pubkey[CL_PUBKEY_LEN]);

/* SHA-256 of a complete note: the "prev" of the next checkpoint */
extern void cl_note_hash(const char *note, size_t len, cl_hash out);

/*
 * Receipts.  consent_ledger.checkpoint() returns the note with convenience
 * members (origin, tree_size, root_hash, time, prev_hash, key_id,
 * signature).  A receipt is all-or-nothing: every one of these members
 * that is present must state exactly what the signed note states, or the
 * receipt is refused.  Callers describe each member of their JSON object
 * (the "note" member itself and unknown members are ignored here): kind is
 * the JSON type, text the string's bytes or, for an integral number, its
 * decimal digits without sign, leading zeros or fraction.  key_id and
 * signature must name one and the same signature line of the note.
 */
typedef enum cl_receipt_kind
{
	CL_RECEIPT_STRING,
	CL_RECEIPT_NUMBER,			/* an integral, non-negative JSON number */
	CL_RECEIPT_OTHER			/* null, boolean, array, object, fraction, negative */
} cl_receipt_kind;

typedef struct cl_receipt_member
{
	const char *name;
	cl_receipt_kind kind;
	const char *text;
	size_t		len;
} cl_receipt_member;

/*
 * True when every member agrees with cp.  Otherwise false, with a reason
 * such as "receipt member \"time\" does not match the signed note"
 * written into why (NUL-terminated, truncated to whylen).
 */
extern bool cl_receipt_members_match(const cl_checkpoint *cp,
									 const cl_receipt_member *members, int n,
									 char *why, size_t whylen);

/*
 * Key rotation statements (README "Keys").  When the server starts with a
 * new key and the previous secret key is at hand, the postmaster writes
 *
 *	consent_ledger key rotation\n
 *	old <base64 32-byte public key>\n
 *	new <base64 32-byte public key>\n
 *	time <unix seconds, decimal>\n
 *	\n
 *	\u2014 consent_ledger <base64(old key id || signature by the old key)>\n
 *	\u2014 consent_ledger <base64(new key id || signature by the new key)>\n
 *
 * Both keys sign the body, so the link can be followed either way: from
 * a trusted newer key back to the key it replaced, or forward from a
 * trusted older key.  A statement that does not carry a valid signature
 * of both keys endorses nothing.
 */
#define CL_ROTATION_HEADER	"consent_ledger key rotation"

typedef struct cl_key_rotation
{
	uint8_t		oldpk[CL_PUBKEY_LEN];
	uint8_t		newpk[CL_PUBKEY_LEN];
	int64_t		time;
	cl_checkpoint sigs;			/* only bodylen, nsigs and sigs are used */
} cl_key_rotation;

/* Writes the body (before the blank line) into buf; returns its length or 0. */
extern size_t cl_rotation_body(const uint8_t oldpk[CL_PUBKEY_LEN],
							   const uint8_t newpk[CL_PUBKEY_LEN],
							   int64_t time, char *buf, size_t bufsize);

/* Parses a complete rotation statement.  false with *err set on any deviation. */
extern bool cl_rotation_parse(const char *note, size_t len, cl_key_rotation *out,
							  const char **err);

/* True when both the old and the new key signed the parsed statement. */
extern bool cl_rotation_verify(const cl_key_rotation *r, const char *note);

/*
 * Reads a receipt from text[0..len): the JSON object checkpoint() returns
 * or a bare note, exactly as consent_ledger.verify_checkpoint() and the
 * offline verifier both read it.  The JSON is read by the strict reader of
 * json.h (one flat object, no duplicate keys, numbers only non-negative
 * integers without fraction or exponent, at most CL_JSON_MAX_MEMBERS
 * members; anything else refuses the receipt); its "note" string must be
 * a well-formed note and every member must pass
 * cl_receipt_members_match().  Text that does not start with '{' (after
 * whitespace), or that is no JSON but parses as a note, is a bare note;
 * a bare note may be followed by one extra "\n" (as "psql -At" saves it),
 * which is not part of the note handed on (see note.c for why only that).
 * On success *cp is the parsed note and *note a malloc'd NUL-terminated
 * copy of it (*notelen bytes; the caller frees it).  On failure returns
 * false with the reason in why and nothing to free.
 */
extern bool cl_receipt_read(const char *text, size_t len, cl_checkpoint *cp,
							char **note, size_t *notelen, char *why, size_t whylen);

/*-------------------------------------------------------------------------
 * Witness cosignatures (C2SP tlog-cosignature, Ed25519 "cosignature/v1").
 *
 * A witness signs, with Ed25519, the message
 *
 *	cosignature/v1\n
 *	time <T, decimal, no leading zeros>\n
 *	<the checkpoint body: every byte before the blank line>
 *
 * and the note gains the signature line
 *
 *	\u2014 <witness name> <base64(key id || 8-byte big-endian T || 64-byte signature)>\n
 *
 * whose key id is the first 4 bytes of SHA-256(name || "\n" || 0x04 ||
 * 32-byte public key).  A witness is configured by its verifier key
 * (signed-note "vkey"): "<name>+<hex key id>+<base64(0x04 || public key)>".
 *-------------------------------------------------------------------------
 */
#define CL_SIGTYPE_ED25519		0x01
#define CL_SIGTYPE_COSIGNATURE	0x04
#define CL_COSIG_HEADER			"cosignature/v1"
#define CL_COSIG_BLOB_LEN		(CL_KEYID_LEN + 8 + CL_SIG_LEN)	/* 76 */
#define CL_MAX_KEY_NAME			63

/* SHA-256(keyname || 0x0A || type || pubkey)[:4] (cl_key_id() is type 0x01) */
extern void cl_key_id_typed(const char *keyname, uint8_t type,
							const uint8_t pubkey[CL_PUBKEY_LEN],
							uint8_t out[CL_KEYID_LEN]);

/*
 * Parses a verifier key "<name>+<8 hex digits>+<base64(type || 32-byte key)>"
 * of signature type 0x01 or 0x04 whose key id is the one its name, type
 * and key give.  name must hold CL_MAX_KEY_NAME + 1 bytes.  false with
 * *err set on any deviation.
 */
extern bool cl_vkey_parse(const char *s, size_t len, char *name, uint8_t *type,
						  uint8_t pubkey[CL_PUBKEY_LEN], const char **err);

/* Writes a vkey (NUL-terminated) into out; returns its length or 0 if it does not fit. */
extern size_t cl_vkey_format(const char *name, uint8_t type,
							 const uint8_t pubkey[CL_PUBKEY_LEN], char *out, size_t outsize);

/* True when s[0..len) is a valid key name of at most CL_MAX_KEY_NAME bytes. */
extern bool cl_key_name_ok(const char *s, size_t len);

/*
 * Writes the cosignature/v1 message for body[0..bodylen) at time t into
 * buf; returns its length, or 0 if it does not fit or t is negative.
 */
extern size_t cl_cosignature_message(const char *body, size_t bodylen, int64_t t,
									 char *buf, size_t bufsize);

/*
 * Writes the signature line "\u2014 name base64(keyid || t || sig)\n"
 * (NUL-terminated) into out; returns its length or 0.
 */
extern size_t cl_cosignature_line(const char *name, const uint8_t keyid[CL_KEYID_LEN],
								  int64_t t, const uint8_t sig[CL_SIG_LEN],
								  char *out, size_t outsize);

typedef struct cl_cosignature
{
	char		keyname[CL_MAX_KEY_NAME + 1];
	uint8_t		keyid[CL_KEYID_LEN];
	int64_t		time;
	uint8_t		sig[CL_SIG_LEN];
	size_t		line_start;		/* offset of the line in the note */
	size_t		line_len;		/* with its newline */
} cl_cosignature;

/*
 * The timestamped Ed25519 cosignature lines (76-byte signatures) of a
 * parsed note: at most max of them into out, their number in *n.  The
 * note must be one cl_checkpoint_parse() accepted as cp.  A 76-byte line
 * whose timestamp exceeds 2^63 - 1 is malformed: false with *err set.
 */
extern bool cl_cosignatures_parse(const cl_checkpoint *cp, const char *note, size_t len,
								  cl_cosignature *out, int max, int *n, const char **err);

/*
 * True when the note holds at least one cosignature line naming this
 * witness (name and 0x04 key id) and every such line verifies; *time is
 * then the latest verifying line's timestamp.  A matching line that does
 * not verify makes it false (signed-note: reject the whole note).
 */
extern bool cl_cosignature_verify(const cl_checkpoint *cp, const char *note,
								  const cl_cosignature *cosigs, int ncosigs,
								  const char *name, const uint8_t pubkey[CL_PUBKEY_LEN],
								  int64_t *time);

/*
 * The note as the log signed it: the note without its cosignature lines
 * (what the next checkpoint's prev hashes).  Writes it into out (which
 * must hold len bytes) and returns its length.
 */
extern size_t cl_note_without_cosignatures(const char *note, size_t len,
										   const cl_cosignature *cosigs, int ncosigs,
										   char *out);

/*
 * The quorum rule shared by verify_checkpoint(..., witnesses, quorum) and
 * consent-ledger-verify --witness-key/--quorum: the number of distinct
 * witnesses (distinct public keys; a key given twice, under any names,
 * counts once) among names[i]/pubkeys[i] that have a cosignature line on
 * the parsed note which verifies, with no failing line of theirs, and a
 * timestamp at most CL_COSIG_MAX_FUTURE seconds after now.  -1 with why
 * set when the note's cosignature lines are malformed.
 */
#define CL_COSIG_MAX_FUTURE		300
extern int	cl_quorum_count(const cl_checkpoint *cp, const char *note, size_t len,
							const char (*names)[CL_MAX_KEY_NAME + 1],
							const uint8_t (*pubkeys)[CL_PUBKEY_LEN], int nwitnesses,
							int64_t now, char *why, size_t whylen);

/*-------------------------------------------------------------------------
 * Export files (consent_ledger.export(), read by consent-ledger-verify).
 * UTF-8 text, one record per line, "\n" line ends:
 *
 *	consent-ledger-export 1
 *	origin <origin>
 *	key <keyname> <base64 32-byte Ed25519 public key>		(zero or more)
 *	endorsement <base64 of a complete key rotation statement>	(zero or more)
 *	leaf <lower-case hex of the leaf's canonical bytes>		(log order)
 *	checkpoint <base64 of a complete checkpoint note>		(chain order)
 *	end <number of leaf lines>
 *
 * Record kinds appear in that order; "key", "endorsement", "leaf" and
 * "checkpoint" may repeat.  Leaf i is the i-th leaf line (0-based).
 *-------------------------------------------------------------------------
 */
typedef enum cl_export_kind
{
	CL_EXPORT_HEADER,
	CL_EXPORT_ORIGIN,
	CL_EXPORT_KEY,
	CL_EXPORT_ENDORSEMENT,
	CL_EXPORT_LEAF,
	CL_EXPORT_CHECKPOINT,
	CL_EXPORT_END
} cl_export_kind;

typedef struct cl_export_line
{
	cl_export_kind kind;
	/* ORIGIN: origin;  KEY: keyname and pubkey;  END: count;  HEADER: version in count */
	char		text[CL_MAX_ORIGIN + 1];
	uint8_t		pubkey[CL_PUBKEY_LEN];
	uint64_t	count;
	/* LEAF: decoded leaf bytes;  CHECKPOINT, ENDORSEMENT: decoded note; malloc'd, caller frees */
	uint8_t    *data;
	size_t		datalen;
} cl_export_line;

/* Parses one line (without its "\n"). */
extern bool cl_export_parse_line(const char *line, size_t len,
								 cl_export_line *out, const char **err);

#endif							/* CL_NOTE_H */
