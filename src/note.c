/*-------------------------------------------------------------------------
 * note.c
 *	  Signed checkpoints (C2SP tlog-checkpoint / signed-note), base64, hex,
 *	  C2SP key ids and the export file's line format.  See note.h.
 *
 * Pure C99 + libsodium.  Every parser takes untrusted bytes with an
 * explicit length, never reads past it, never aborts, and on failure
 * sets *err to a static English string.
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "json.h"
#include "note.h"
#include "sha256.h"

/* U+2014 EM DASH followed by a space: the start of every signature line */
#define EM_DASH_SPACE		"\xe2\x80\x94 "
#define EM_DASH_SPACE_LEN	4

/* base64 length of a 4-byte key id followed by a 64-byte signature */
#define SIGLINE_B64_LEN		92

static const char b64_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char hex_digits[] = "0123456789abcdef";

/*
 * Value of one base64 alphabet character, or -1 for any other byte
 * (including '=').
 */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Length of the padded base64 encoding of len bytes, without the NUL.
 * Guarantees no intermediate overflow for any len < SIZE_MAX / 4 * 3.
 */
size_t
cl_base64_encoded_len(size_t len)
{
	return (len / 3 + (len % 3 != 0)) * 4;
}

/*
 * Writes the padded standard base64 of in[0..len) to out followed by a
 * NUL; out must hold cl_base64_encoded_len(len) + 1 bytes.
 */
void
cl_base64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t		i = 0;
	size_t		o = 0;

	while (len - i >= 3)
	{
		uint32_t	v = ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8) | in[i + 2];

		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
		i += 3;
	}
	if (len - i == 1)
	{
		uint32_t	v = (uint32_t) in[i] << 16;

		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	}
	else if (len - i == 2)
	{
		uint32_t	v = ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8);

		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
}

/*
 * Decodes canonical padded standard base64.  Returns -1 unless len is a
 * multiple of 4, every character is in the alphabet except one or two
 * '=' at the very end, the unused bits of the last group are zero (so
 * that each byte string has exactly one accepted encoding) and the
 * result fits in outmax bytes; otherwise returns the number of bytes
 * written to out.  Never reads past in[len - 1] nor writes past
 * out[outmax - 1].
 */
long
cl_base64_decode(const char *in, size_t len, uint8_t *out, size_t outmax)
{
	const unsigned char *s = (const unsigned char *) in;
	size_t		npad = 0;
	size_t		outlen;
	size_t		i;
	size_t		o = 0;

	if (len % 4 != 0)
		return -1;
	if (len == 0)
		return 0;
	if (s[len - 1] == '=')
	{
		npad = 1;
		if (s[len - 2] == '=')
			npad = 2;
	}
	outlen = len / 4 * 3 - npad;
	if (outlen > outmax || outlen > (size_t) LONG_MAX)
		return -1;

	for (i = 0; i < len; i += 4)
	{
		int			v[4];
		size_t		k;
		bool		last = (i + 4 == len);
		size_t		nchars = last ? 4 - npad : 4;

		for (k = 0; k < nchars; k++)
		{
			v[k] = b64_value(s[i + k]);
			if (v[k] < 0)
				return -1;
		}
		if (nchars == 4)
		{
			uint32_t	x = ((uint32_t) v[0] << 18) | ((uint32_t) v[1] << 12) |
			((uint32_t) v[2] << 6) | (uint32_t) v[3];

			out[o++] = (uint8_t) (x >> 16);
			out[o++] = (uint8_t) (x >> 8);
			out[o++] = (uint8_t) x;
		}
		else if (nchars == 3)
		{
			/* two bytes; the low 2 bits of the third char must be zero */
			if (v[2] & 3)
				return -1;
			out[o++] = (uint8_t) ((v[0] << 2) | (v[1] >> 4));
			out[o++] = (uint8_t) (((v[1] & 15) << 4) | (v[2] >> 2));
		}
		else
		{
			/* one byte; the low 4 bits of the second char must be zero */
			if (v[1] & 15)
				return -1;
			out[o++] = (uint8_t) ((v[0] << 2) | (v[1] >> 4));
		}
	}
	return (long) o;
}

/*
 * Writes the lower-case hex of in[0..len) and a NUL to out, which must
 * hold 2 * len + 1 bytes.
 */
void
cl_hex_encode(const uint8_t *in, size_t len, char *out)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = hex_digits[in[i] >> 4];
		out[2 * i + 1] = hex_digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* value of one lower-case hex digit, or -1 */
static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Decodes lower-case hex (the canonical form: upper-case digits are
 * rejected).  Returns -1 on an odd length, any other character, or a
 * result longer than outmax; else the number of bytes written.
 */
long
cl_hex_decode(const char *in, size_t len, uint8_t *out, size_t outmax)
{
	const unsigned char *s = (const unsigned char *) in;
	size_t		i;

	if (len % 2 != 0 || len / 2 > outmax || len / 2 > (size_t) LONG_MAX)
		return -1;
	for (i = 0; i < len; i += 2)
	{
		int			hi = hex_value(s[i]);
		int			lo = hex_value(s[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (uint8_t) ((hi << 4) | lo);
	}
	return (long) (len / 2);
}

/*
 * The C2SP key id of an Ed25519 key: the first 4 bytes of
 * SHA-256(keyname || 0x0A || 0x01 || pubkey).
 */
void
cl_key_id(const char *keyname, const uint8_t pubkey[CL_PUBKEY_LEN],
		  uint8_t out[CL_KEYID_LEN])
{
	static const uint8_t sep[2] = {0x0a, 0x01};
	uint8_t		digest[CL_SHA256_LEN];
	cl_sha256_part parts[3] = {{keyname, strlen(keyname)}, {sep, sizeof(sep)},
	{pubkey, CL_PUBKEY_LEN}};

	cl_sha256_parts(parts, 3, digest);
	memcpy(out, digest, CL_KEYID_LEN);
}

/*
 * Decodes one UTF-8 sequence at s[0..len).  Returns its length (1-4) and
 * the code point in *cp, or 0 for an invalid, overlong, truncated or
 * surrogate sequence or a code point above U+10FFFF.
 */
static size_t
utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t	c;
	size_t		n;
	size_t		i;

	if (len == 0)
		return 0;
	if (s[0] < 0x80)
	{
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
	{
		n = 2;
		c = s[0] & 0x1f;
	}
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
	{
		n = 3;
		c = s[0] & 0x0f;
	}
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
	{
		n = 4;
		c = s[0] & 0x07;
	}
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++)
	{
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
		c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* True for the Unicode White_Space code points. */
static bool
is_unicode_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 ||
		c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
		c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/*
 * True when s[0..len) is a valid origin or key name: non-empty, valid
 * UTF-8, no control character (below U+0020, or U+007F), no Unicode
 * space and no '+'.
 */
static bool
valid_name(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		i = 0;

	if (len == 0)
		return false;
	while (i < len)
	{
		uint32_t	c;
		size_t		n = utf8_decode(u + i, len - i, &c);

		if (n == 0 || c < 0x20 || c == 0x7f || c == '+' || is_unicode_space(c))
			return false;
		i += n;
	}
	return true;
}

/*
 * Parses a canonical unsigned decimal in s[0..len): at least one digit,
 * only digits, no leading zero unless it is "0", value <= 2^63 - 1.
 */
static bool
parse_decimal(const char *s, size_t len, uint64_t *out)
{
	uint64_t	v = 0;
	size_t		i;

	if (len == 0 || (len > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < len; i++)
	{
		unsigned	d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (unsigned) (s[i] - '0');
		if (v > ((uint64_t) INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/*
 * Decodes base64 s[0..len) that must encode exactly one 32-byte hash.
 */
static bool
parse_hash_b64(const char *s, size_t len, cl_hash out)
{
	if (len != 44)
		return false;
	return cl_base64_decode(s, len, out, CL_HASH_LEN) == CL_HASH_LEN;
}

/*
 * Writes the checkpoint body into buf and returns its length; returns 0
 * when the origin is not a valid name (see valid_name) or longer than
 * CL_MAX_ORIGIN, when size > 2^63 - 1 or time < 0 (the parser would
 * reject either), or when buf cannot hold the body and a NUL.  On
 * success buf is NUL-terminated (the NUL is not counted).
 */
size_t
cl_checkpoint_body(const char *origin, uint64_t size,
				   const cl_hash root, int64_t time,
				   const cl_hash prev, char *buf, size_t bufsize)
{
	char		root64[45];
	char		prev64[45];
	size_t		olen = strlen(origin);
	int			n;

	if (olen > CL_MAX_ORIGIN || !valid_name(origin, olen))
		return 0;
	if (size > (uint64_t) INT64_MAX || time < 0)
		return 0;
	cl_base64_encode(root, CL_HASH_LEN, root64);
	cl_base64_encode(prev, CL_HASH_LEN, prev64);
	n = snprintf(buf, bufsize, "%s\n%" PRIu64 "\n%s\ntime %" PRId64 "\nprev %s\n",
				 origin, size, root64, time, prev64);
	if (n < 0 || (size_t) n >= bufsize)
		return 0;
	return (size_t) n;
}

/*
 * Appends the blank line and one signature line to the body held in
 * buf[0..bodylen).  Returns the complete note's length, or 0 when it
 * does not fit in bufsize, bodylen is 0, or keyname is not a valid key
 * name of at most 63 bytes (one the parser could not store).  When
 * there is room, buf is NUL-terminated (the NUL is not counted).
 */
size_t
cl_note_append_signature(char *buf, size_t bodylen, size_t bufsize,
						 const char *keyname,
						 const uint8_t keyid[CL_KEYID_LEN],
						 const uint8_t sig[CL_SIG_LEN])
{
	uint8_t		raw[CL_KEYID_LEN + CL_SIG_LEN];
	char		b64[SIGLINE_B64_LEN + 1];
	size_t		namelen = strlen(keyname);
	size_t		total;
	size_t		pos = bodylen;

	if (bodylen == 0 || namelen >= sizeof(((cl_signature *) 0)->keyname) ||
		!valid_name(keyname, namelen))
		return 0;
	total = 1 + EM_DASH_SPACE_LEN + namelen + 1 + SIGLINE_B64_LEN + 1;
	if (bodylen > bufsize || bufsize - bodylen < total)
		return 0;
	memcpy(raw, keyid, CL_KEYID_LEN);
	memcpy(raw + CL_KEYID_LEN, sig, CL_SIG_LEN);
	cl_base64_encode(raw, sizeof(raw), b64);

	buf[pos++] = '\n';
	memcpy(buf + pos, EM_DASH_SPACE, EM_DASH_SPACE_LEN);
	pos += EM_DASH_SPACE_LEN;
	memcpy(buf + pos, keyname, namelen);
	pos += namelen;
	buf[pos++] = ' ';
	memcpy(buf + pos, b64, SIGLINE_B64_LEN);
	pos += SIGLINE_B64_LEN;
	buf[pos++] = '\n';
	if (pos < bufsize)
		buf[pos] = '\0';
	return pos;
}

/*
 * Finds the next "\n"-terminated line at *pos.  On success *line and
 * *linelen describe it (without the newline) and *pos moves past the
 * newline; false when no complete line remains.
 */
static bool
next_line(const char *s, size_t len, size_t *pos, const char **line,
		  size_t *linelen)
{
	const char *start = s + *pos;
	const char *nl;

	if (*pos >= len)
		return false;
	nl = memchr(start, '\n', len - *pos);
	if (nl == NULL)
		return false;
	*line = start;
	*linelen = (size_t) (nl - start);
	*pos += *linelen + 1;
	return true;
}

/*
 * True when s[0..len) is valid UTF-8 with no control character other
 * than newline (the signed-note rule for a complete note).
 */
static bool
valid_note_text(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		i = 0;

	while (i < len)
	{
		uint32_t	c;
		size_t		n = utf8_decode(u + i, len - i, &c);

		if (n == 0 || (c < 0x20 && c != '\n'))
			return false;
		i += n;
	}
	return true;
}

/*
 * Parses one signature line (without its newline).  Returns false with
 * *err set when it is malformed; otherwise true, and when it is an
 * Ed25519-sized signature (4 + 64 bytes) from a key name of at most 63
 * bytes it is stored in *sig and *stored set, else it is skipped as a
 * signature of some other kind.
 */
static bool
parse_sigline(const char *line, size_t len, cl_signature *sig, bool *stored,
			  const char **err)
{
	uint8_t		raw[CL_MAX_NOTE];
	const char *name;
	const char *sp;
	size_t		namelen;
	const char *b64;
	size_t		b64len;
	long		n;

	*stored = false;
	if (len < EM_DASH_SPACE_LEN || memcmp(line, EM_DASH_SPACE, EM_DASH_SPACE_LEN) != 0)
	{
		*err = "signature line does not start with an em dash and a space";
		return false;
	}
	name = line + EM_DASH_SPACE_LEN;
	sp = memchr(name, ' ', len - EM_DASH_SPACE_LEN);
	if (sp == NULL)
	{
		*err = "signature line has no signature";
		return false;
	}
	namelen = (size_t) (sp - name);
	if (!valid_name(name, namelen))
	{
		*err = "signature line has an invalid key name";
		return false;
	}
	b64 = sp + 1;
	b64len = len - EM_DASH_SPACE_LEN - namelen - 1;
	n = cl_base64_decode(b64, b64len, raw, sizeof(raw));
	if (n < 0)
	{
		*err = "signature line has invalid base64";
		return false;
	}
	if (n < CL_KEYID_LEN + 1)
	{
		*err = "signature line's signature is too short";
		return false;
	}
	if (n != CL_KEYID_LEN + CL_SIG_LEN || namelen >= sizeof(sig->keyname))
		return true;			/* another kind of signature: ignored */
	memcpy(sig->keyname, name, namelen);
	sig->keyname[namelen] = '\0';
	memcpy(sig->keyid, raw, CL_KEYID_LEN);
	memcpy(sig->sig, raw + CL_KEYID_LEN, CL_SIG_LEN);
	*stored = true;
	return true;
}

/* The messages of one kind of signed text: a checkpoint note, a rotation statement. */
typedef struct SignedTextKind
{
	const char *too_long;
	const char *no_newline;
	const char *bad_text;
} SignedTextKind;

static const SignedTextKind note_kind = {
	"note is too long",
	"note does not end with a newline",
	"note is not valid UTF-8 or contains a control character"
};
static const SignedTextKind rotation_kind = {
	"rotation statement is too long",
	"rotation statement does not end with a newline",
	"rotation statement is not valid UTF-8 or contains a control character"
};

/* What every signed text must be before its lines are read. */
static bool
signed_text_ok(const char *s, size_t len, const SignedTextKind *kind, const char **err)
{
	if (len > CL_MAX_NOTE)
		*err = kind->too_long;
	else if (len == 0 || s[len - 1] != '\n')
		*err = kind->no_newline;
	else if (!valid_note_text(s, len))
		*err = kind->bad_text;
	else
		return true;
	return false;
}

/*
 * The signature lines from *pos to the end of s: at most CL_MAX_SIGLINES
 * (*nlines counts them all), the Ed25519-sized ones appended to
 * sigs[*nsigs].  false with *err set on a malformed or extra line.
 */
static bool
parse_siglines(const char *s, size_t len, size_t *pos, cl_signature *sigs,
			   int *nsigs, int *nlines, const char **err)
{
	const char *line;
	size_t		linelen;

	while (next_line(s, len, pos, &line, &linelen))
	{
		bool		stored;

		if (++*nlines > CL_MAX_SIGLINES)
		{
			*err = "too many signature lines";
			return false;
		}
		if (!parse_sigline(line, linelen, &sigs[*nsigs], &stored, err))
			return false;
		if (stored)
			(*nsigs)++;
	}
	return true;
}

/*
 * Parses a complete checkpoint note (see note.h for the exact format).
 * Returns true and fills *out only when every rule holds: length <=
 * CL_MAX_NOTE, valid UTF-8 without control characters other than
 * newline, exactly the five body lines, a blank line, 1 to
 * CL_MAX_SIGLINES well-formed signature lines of which at least one is
 * an Ed25519-sized one (others are skipped).  Otherwise returns false
 * with *err set; *out is then zeroed.
 */
bool
cl_checkpoint_parse(const char *note, size_t len, cl_checkpoint *out,
					const char **err)
{
	const char *line;
	size_t		linelen;
	size_t		pos = 0;
	uint64_t	v;
	int			nlines = 0;

	memset(out, 0, sizeof(*out));
	if (!signed_text_ok(note, len, &note_kind, err))
		return false;

	/* origin */
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (linelen > CL_MAX_ORIGIN || !valid_name(line, linelen))
	{
		*err = "invalid origin line";
		goto fail;
	}
	memcpy(out->origin, line, linelen);
	out->origin[linelen] = '\0';

	/* tree size */
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (!parse_decimal(line, linelen, &out->size))
	{
		*err = "invalid tree size line";
		goto fail;
	}

	/* root hash */
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (!parse_hash_b64(line, linelen, out->root))
	{
		*err = "invalid root hash line";
		goto fail;
	}

	/* time */
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (linelen < 5 || memcmp(line, "time ", 5) != 0)
	{
		*err = "missing time line";
		goto fail;
	}
	if (!parse_decimal(line + 5, linelen - 5, &v))
	{
		*err = "invalid time line";
		goto fail;
	}
	out->time = (int64_t) v;

	/* prev */
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (linelen < 5 || memcmp(line, "prev ", 5) != 0)
	{
		*err = "missing prev line";
		goto fail;
	}
	if (!parse_hash_b64(line + 5, linelen - 5, out->prev))
	{
		*err = "invalid prev line";
		goto fail;
	}
	out->bodylen = pos;

	/* blank line */
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (linelen != 0)
	{
		if (linelen >= EM_DASH_SPACE_LEN && memcmp(line, EM_DASH_SPACE, EM_DASH_SPACE_LEN) == 0)
			*err = "missing blank line before the signatures";
		else
			*err = "extra line in the checkpoint body";
		goto fail;
	}

	/* signature lines, up to the end */
	if (!parse_siglines(note, len, &pos, out->sigs, &out->nsigs, &nlines, err))
		goto fail;
	if (nlines == 0)
	{
		*err = "note has no signature line";
		goto fail;
	}
	if (out->nsigs == 0)
	{
		*err = "note has no Ed25519 signature line";
		goto fail;
	}
	return true;

truncated:
	*err = "note is truncated";
fail:
	memset(out, 0, sizeof(*out));
	return false;
}

/*
 * True when the parsed note carries at least one signature line with
 * this key name and this key's C2SP key id, and every such line holds a
 * valid Ed25519 signature by pubkey over note[0..cp->bodylen).  As the
 * signed-note spec advises, a failing signature from the known key
 * rejects the note even if another line of the same key verifies.
 * Lines of other names or key ids are ignored.
 */
bool
cl_checkpoint_verify(const cl_checkpoint *cp, const char *note,
					 const char *keyname,
					 const uint8_t pubkey[CL_PUBKEY_LEN])
{
	uint8_t		keyid[CL_KEYID_LEN];
	bool		found = false;
	int			i;

	if (cp->bodylen == 0 || cp->nsigs <= 0 || cp->nsigs > CL_MAX_SIGLINES)
		return false;
	if (sodium_init() < 0)
		return false;
	cl_key_id(keyname, pubkey, keyid);
	for (i = 0; i < cp->nsigs; i++)
	{
		const cl_signature *s = &cp->sigs[i];

		if (strncmp(s->keyname, keyname, sizeof(s->keyname)) != 0 ||
			memcmp(s->keyid, keyid, CL_KEYID_LEN) != 0)
			continue;
		if (crypto_sign_verify_detached(s->sig, (const unsigned char *) note,
										cp->bodylen, pubkey) != 0)
			return false;
		found = true;
	}
	return found;
}

/*
 * Writes a key rotation statement's body into buf (NUL-terminated when
 * there is room); returns its length, or 0 when it does not fit or time
 * is negative.
 */
size_t
cl_rotation_body(const uint8_t oldpk[CL_PUBKEY_LEN],
				 const uint8_t newpk[CL_PUBKEY_LEN],
				 int64_t time, char *buf, size_t bufsize)
{
	char		o[64];
	char		n[64];
	int			len;

	if (time < 0)
		return 0;
	cl_base64_encode(oldpk, CL_PUBKEY_LEN, o);
	cl_base64_encode(newpk, CL_PUBKEY_LEN, n);
	len = snprintf(buf, bufsize, "%s\nold %s\nnew %s\ntime %lld\n",
				   CL_ROTATION_HEADER, o, n, (long long) time);
	if (len < 0 || (size_t) len >= bufsize)
		return 0;
	return (size_t) len;
}

/* "<word> <base64 of 32 bytes>" into pk */
static bool
parse_key_line(const char *line, size_t len, const char *word, uint8_t pk[CL_PUBKEY_LEN])
{
	size_t		wl = strlen(word);

	return len > wl + 1 && memcmp(line, word, wl) == 0 && line[wl] == ' ' &&
		cl_base64_decode(line + wl + 1, len - wl - 1, pk, CL_PUBKEY_LEN) == CL_PUBKEY_LEN;
}

/*
 * Parses a complete key rotation statement (note.h): the four body lines,
 * a blank line and 1 to CL_MAX_SIGLINES signature lines, of which the
 * Ed25519-sized ones are kept in out->sigs.  false with *err set (and
 * *out zeroed) on any deviation.
 */
bool
cl_rotation_parse(const char *note, size_t len, cl_key_rotation *out,
				  const char **err)
{
	const char *line;
	size_t		linelen;
	size_t		pos = 0;
	uint64_t	v;
	int			nlines = 0;

	memset(out, 0, sizeof(*out));
	if (!signed_text_ok(note, len, &rotation_kind, err))
		return false;
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (linelen != strlen(CL_ROTATION_HEADER) || memcmp(line, CL_ROTATION_HEADER, linelen) != 0)
	{
		*err = "not a key rotation statement";
		goto fail;
	}
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (!parse_key_line(line, linelen, "old", out->oldpk))
	{
		*err = "invalid old key line";
		goto fail;
	}
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (!parse_key_line(line, linelen, "new", out->newpk))
	{
		*err = "invalid new key line";
		goto fail;
	}
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (linelen < 5 || memcmp(line, "time ", 5) != 0 ||
		!parse_decimal(line + 5, linelen - 5, &v))
	{
		*err = "invalid time line";
		goto fail;
	}
	out->time = (int64_t) v;
	out->sigs.bodylen = pos;
	if (!next_line(note, len, &pos, &line, &linelen))
		goto truncated;
	if (linelen != 0)
	{
		*err = "missing blank line before the signatures";
		goto fail;
	}
	if (!parse_siglines(note, len, &pos, out->sigs.sigs, &out->sigs.nsigs, &nlines, err))
		goto fail;
	if (pos != len)
		goto truncated;
	if (out->sigs.nsigs == 0)
	{
		*err = "rotation statement has no Ed25519 signature line";
		goto fail;
	}
	return true;

truncated:
	*err = "rotation statement is truncated";
fail:
	memset(out, 0, sizeof(*out));
	return false;
}

/*
 * True when the statement carries a valid signature of its old key and
 * one of its new key over its body (and no failing line of either).
 */
bool
cl_rotation_verify(const cl_key_rotation *r, const char *note)
{
	return memcmp(r->oldpk, r->newpk, CL_PUBKEY_LEN) != 0 &&
		cl_checkpoint_verify(&r->sigs, note, CL_KEY_NAME, r->oldpk) &&
		cl_checkpoint_verify(&r->sigs, note, CL_KEY_NAME, r->newpk);
}

/* SHA-256 of the complete note note[0..len). */
void
cl_note_hash(const char *note, size_t len, cl_hash out)
{
	cl_sha256(note, len, out);
}

/* True when text[0..len) is exactly the NUL-terminated string s. */
static bool
same_text(const char *text, size_t len, const char *s)
{
	return strlen(s) == len && memcmp(text, s, len) == 0;
}

/*
 * Checks a receipt's convenience members against its parsed note (see
 * note.h).  Each known member must have the JSON type checkpoint() gives
 * it and exactly the note's value in checkpoint()'s spelling: base64 for
 * hashes and the signature, lower-case hex for the key id, decimal for
 * sizes and times.
 */
bool
cl_receipt_members_match(const cl_checkpoint *cp, const cl_receipt_member *members,
						 int n, char *why, size_t whylen)
{
	char		buf[128];
	int			key_sig = -1;	/* signature line named by key_id */
	int			sig_sig = -1;	/* signature line named by signature */
	int			i;

	for (i = 0; i < n; i++)
	{
		const cl_receipt_member *m = &members[i];
		bool		number = false;
		bool		ok = false;

		if (strcmp(m->name, "origin") == 0)
			ok = m->kind == CL_RECEIPT_STRING && same_text(m->text, m->len, cp->origin);
		else if (strcmp(m->name, "tree_size") == 0)
		{
			number = true;
			snprintf(buf, sizeof(buf), "%" PRIu64, cp->size);
			ok = m->kind == CL_RECEIPT_NUMBER && same_text(m->text, m->len, buf);
		}
		else if (strcmp(m->name, "root_hash") == 0 || strcmp(m->name, "prev_hash") == 0)
		{
			cl_base64_encode(m->name[0] == 'r' ? cp->root : cp->prev, CL_HASH_LEN, buf);
			ok = m->kind == CL_RECEIPT_STRING && same_text(m->text, m->len, buf);
		}
		else if (strcmp(m->name, "time") == 0)
		{
			number = true;
			snprintf(buf, sizeof(buf), "%" PRId64, cp->time);
			ok = m->kind == CL_RECEIPT_NUMBER && same_text(m->text, m->len, buf);
		}
		else if (strcmp(m->name, "key_id") == 0 || strcmp(m->name, "signature") == 0)
		{
			bool		is_key = (m->name[0] == 'k');
			int			j;

			for (j = 0; !ok && m->kind == CL_RECEIPT_STRING && j < cp->nsigs; j++)
			{
				if (is_key)
					cl_hex_encode(cp->sigs[j].keyid, CL_KEYID_LEN, buf);
				else
					cl_base64_encode(cp->sigs[j].sig, CL_SIG_LEN, buf);
				if (same_text(m->text, m->len, buf))
				{
					ok = true;
					if (is_key)
						key_sig = j;
					else
						sig_sig = j;
				}
			}
		}
		else
			continue;			/* "note", or a member checkpoint() does not give */
		if (!ok)
		{
			if (m->kind != (number ? CL_RECEIPT_NUMBER : CL_RECEIPT_STRING))
				snprintf(why, whylen, "receipt member \"%s\" is not a %s", m->name,
						 number ? "non-negative integer" : "string");
			else
				snprintf(why, whylen, "receipt member \"%s\" does not match the signed note", m->name);
			return false;
		}
	}
	if (key_sig >= 0 && sig_sig >= 0 &&
		memcmp(cp->sigs[sig_sig].keyid, cp->sigs[key_sig].keyid, CL_KEYID_LEN) != 0)
	{
		snprintf(why, whylen, "receipt members \"key_id\" and \"signature\" name different signature lines of the note");
		return false;
	}
	return true;
}

/*
 * Reads a receipt (see note.h).  The one reader behind
 * consent_ledger.verify_checkpoint() and the offline verifier.
 */
bool
cl_receipt_read(const char *text, size_t len, cl_checkpoint *cp,
				char **note, size_t *notelen, char *why, size_t whylen)
{
	size_t		i = 0;
	cl_json_object obj;
	const cl_json_member *m;
	const char *err;
	bool		ok = false;

	memset(&obj, 0, sizeof(obj));	/* cl_json_free() of it is a no-op */
	*note = NULL;
	*notelen = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
		i++;
	if (i == len || text[i] != '{')
	{
		/* a bare note */
		if (!cl_checkpoint_parse(text, len, cp, &err))
		{
			/*
			 * A note saved by "psql -At", echo or a shell "$(...)" round
			 * trip ends with one newline more than the note: its last
			 * signature line already ends with one.  That one byte is
			 * tolerated, and only it: the note handed on (and hashed into
			 * the next checkpoint's prev, compared, verified) is the text
			 * without it, so the signed bytes are exactly the note's as
			 * before.  The byte lies after the last signature line, which
			 * no signature covers, and dropping it cannot change which
			 * note this is: a note never ends with an empty line.  Any
			 * other difference -- two extra newlines, "\r\n", a space,
			 * anything inside the note -- still refuses the receipt, with
			 * the reason for the text as given.
			 */
			const char *err2;

			if (len >= 2 && text[len - 1] == '\n' && text[len - 2] == '\n' &&
				cl_checkpoint_parse(text, len - 1, cp, &err2))
			{
				len--;
				m = NULL;
				goto copy;
			}
			snprintf(why, whylen, "the receipt is not a JSON object, nor a checkpoint note: %s", err);
			return false;
		}
		m = NULL;
		goto copy;
	}
	if (!cl_json_parse(text, len, &obj, &err))
	{
		const char *err2;

		/* an origin may start with '{': try the bare form before giving up */
		if (cl_checkpoint_parse(text, len, cp, &err2))
		{
			m = NULL;
			goto copy;
		}
		snprintf(why, whylen, "malformed receipt: %s", err);
		return false;
	}
	m = cl_json_get(&obj, "note", CL_JSON_STRING);
	if (m == NULL)
	{
		snprintf(why, whylen, "the receipt has no \"note\" string member");
		goto done;
	}
	if (m->strlen_ > CL_MAX_NOTE || !cl_checkpoint_parse(m->str, m->strlen_, cp, &err))
	{
		snprintf(why, whylen, "malformed checkpoint note: %s",
				 m->strlen_ > CL_MAX_NOTE ? "note is too long" : err);
		goto done;
	}
	{
		cl_receipt_member rm[CL_JSON_MAX_MEMBERS];
		char		digits[CL_JSON_MAX_MEMBERS][24];
		int			k;

		for (k = 0; k < obj.nmembers; k++)
		{
			const cl_json_member *x = &obj.members[k];

			rm[k].name = x->key;
			rm[k].text = "";
			rm[k].len = 0;
			rm[k].kind = CL_RECEIPT_OTHER;
			if (x->type == CL_JSON_STRING)
			{
				rm[k].kind = CL_RECEIPT_STRING;
				rm[k].text = x->str;
				rm[k].len = x->strlen_;
			}
			else if (x->type == CL_JSON_INT)
			{
				snprintf(digits[k], sizeof(digits[k]), "%" PRIu64, x->num);
				rm[k].kind = CL_RECEIPT_NUMBER;
				rm[k].text = digits[k];
				rm[k].len = strlen(digits[k]);
			}
		}
		if (!cl_receipt_members_match(cp, rm, obj.nmembers, why, whylen))
			goto done;
	}

copy:
	{
		const char *src = m ? m->str : text;
		size_t		n = m ? m->strlen_ : len;

		*note = malloc(n + 1);
		if (*note == NULL)
			snprintf(why, whylen, "out of memory");
		else
		{
			memcpy(*note, src, n);
			(*note)[n] = '\0';
			*notelen = n;
			ok = true;
		}
	}
done:
	cl_json_free(&obj);
	return ok;
}

/*
 * True when line[0..len) starts with the record word kw followed by a
 * space; *rest and *restlen then describe what follows the space.
 */
static bool
record_word(const char *line, size_t len, const char *kw, const char **rest,
			size_t *restlen)
{
	size_t		kwlen = strlen(kw);

	if (len <= kwlen || memcmp(line, kw, kwlen) != 0 || line[kwlen] != ' ')
		return false;
	*rest = line + kwlen + 1;
	*restlen = len - kwlen - 1;
	return true;
}

/*
 * The base64 payload of a "checkpoint" or "endorsement" export record: a
 * signed text of 1 to CL_MAX_NOTE bytes, decoded into out->data (malloc'd).
 */
static bool
read_signed_text(const char *rest, size_t rlen, cl_export_line *out,
				 const char *bad_size, const char *bad_base64, const char **err)
{
	size_t		max = rlen / 4 * 3;
	long		n;

	if (rlen == 0 || rlen > cl_base64_encoded_len(CL_MAX_NOTE))
	{
		*err = bad_size;
		return false;
	}
	out->data = malloc(max > 0 ? max : 1);
	if (out->data == NULL)
	{
		*err = "out of memory";
		return false;
	}
	n = cl_base64_decode(rest, rlen, out->data, max);
	if (n <= 0 || n > CL_MAX_NOTE)
	{
		free(out->data);
		out->data = NULL;
		*err = n < 0 ? bad_base64 : bad_size;
		return false;
	}
	out->datalen = (size_t) n;
	return true;
}

/*
 * Parses one export line (without its newline) into *out.  On success
 * LEAF and CHECKPOINT records own a malloc'd out->data (the decoded leaf
 * bytes, or the decoded note of 1..CL_MAX_NOTE bytes) that the caller
 * frees; for other records out->data is NULL.  The header's version
 * number is returned in out->count.  On failure nothing is allocated,
 * out->data is NULL and *err is set.
 */
bool
cl_export_parse_line(const char *line, size_t len, cl_export_line *out,
					 const char **err)
{
	const char *rest;
	size_t		rlen;

	memset(out, 0, sizeof(*out));

	if (record_word(line, len, "leaf", &rest, &rlen))
	{
		size_t		n = rlen / 2;

		out->kind = CL_EXPORT_LEAF;
		if (rlen % 2 != 0)
		{
			*err = "leaf: odd number of hex digits";
			return false;
		}
		out->data = malloc(n > 0 ? n : 1);
		if (out->data == NULL)
		{
			*err = "out of memory";
			return false;
		}
		if (cl_hex_decode(rest, rlen, out->data, n) != (long) n)
		{
			free(out->data);
			out->data = NULL;
			*err = "leaf: invalid lower-case hex";
			return false;
		}
		out->datalen = n;
		return true;
	}
	if (record_word(line, len, "checkpoint", &rest, &rlen))
	{
		out->kind = CL_EXPORT_CHECKPOINT;
		return read_signed_text(rest, rlen, out, "checkpoint: note is empty or too long",
								"checkpoint: invalid base64", err);
	}
	if (record_word(line, len, "endorsement", &rest, &rlen))
	{
		out->kind = CL_EXPORT_ENDORSEMENT;
		return read_signed_text(rest, rlen, out, "endorsement: statement is empty or too long",
								"endorsement: invalid base64", err);
	}
	if (record_word(line, len, "key", &rest, &rlen))
	{
		const char *sp = memchr(rest, ' ', rlen);
		size_t		namelen;

		out->kind = CL_EXPORT_KEY;
		if (sp == NULL)
		{
			*err = "key: missing public key";
			return false;
		}
		namelen = (size_t) (sp - rest);
		if (namelen > CL_MAX_ORIGIN || !valid_name(rest, namelen))
		{
			*err = "key: invalid key name";
			return false;
		}
		if (cl_base64_decode(sp + 1, rlen - namelen - 1, out->pubkey,
							 CL_PUBKEY_LEN) != CL_PUBKEY_LEN)
		{
			*err = "key: public key is not the base64 of 32 bytes";
			return false;
		}
		memcpy(out->text, rest, namelen);
		out->text[namelen] = '\0';
		return true;
	}
	if (record_word(line, len, "origin", &rest, &rlen))
	{
		out->kind = CL_EXPORT_ORIGIN;
		if (rlen > CL_MAX_ORIGIN || !valid_name(rest, rlen))
		{
			*err = "origin: invalid origin";
			return false;
		}
		memcpy(out->text, rest, rlen);
		out->text[rlen] = '\0';
		return true;
	}
	if (record_word(line, len, "end", &rest, &rlen))
	{
		out->kind = CL_EXPORT_END;
		if (!parse_decimal(rest, rlen, &out->count))
		{
			*err = "end: invalid leaf count";
			return false;
		}
		return true;
	}
	if (record_word(line, len, "consent-ledger-export", &rest, &rlen))
	{
		out->kind = CL_EXPORT_HEADER;
		if (!parse_decimal(rest, rlen, &out->count))
		{
			*err = "header: invalid version";
			return false;
		}
		return true;
	}
	*err = "unknown record";
	return false;
}

/*-------------------------------------------------------------------------
 * Witness cosignatures (see note.h and c2sp.org/tlog-cosignature)
 *-------------------------------------------------------------------------
 */

void
cl_key_id_typed(const char *keyname, uint8_t type, const uint8_t pubkey[CL_PUBKEY_LEN],
				uint8_t out[CL_KEYID_LEN])
{
	uint8_t		sep[2] = {0x0a, type};
	uint8_t		digest[CL_SHA256_LEN];
	cl_sha256_part parts[3] = {{keyname, strlen(keyname)}, {sep, sizeof(sep)},
	{pubkey, CL_PUBKEY_LEN}};

	cl_sha256_parts(parts, 3, digest);
	memcpy(out, digest, CL_KEYID_LEN);
}

bool
cl_key_name_ok(const char *s, size_t len)
{
	return len <= CL_MAX_KEY_NAME && valid_name(s, len);
}

bool
cl_vkey_parse(const char *s, size_t len, char *name, uint8_t *type,
			  uint8_t pubkey[CL_PUBKEY_LEN], const char **err)
{
	const char *p1 = memchr(s, '+', len);
	const char *p2;
	size_t		namelen;
	uint8_t		id[CL_KEYID_LEN];
	uint8_t		want[CL_KEYID_LEN];
	uint8_t		raw[1 + CL_PUBKEY_LEN + 1];

	if (p1 == NULL)
	{
		*err = "a verifier key is \"<name>+<key id>+<key>\"";
		return false;
	}
	namelen = (size_t) (p1 - s);
	p2 = memchr(p1 + 1, '+', len - namelen - 1);
	if (p2 == NULL || p2 - p1 - 1 != 2 * CL_KEYID_LEN)
	{
		*err = "a verifier key is \"<name>+<key id, 8 hex digits>+<key>\"";
		return false;
	}
	if (!cl_key_name_ok(s, namelen))
	{
		*err = "the verifier key's name is not a valid key name (1 to 63 bytes of UTF-8, no space, control character or '+')";
		return false;
	}
	if (cl_hex_decode(p1 + 1, 2 * CL_KEYID_LEN, id, CL_KEYID_LEN) != CL_KEYID_LEN)
	{
		*err = "the verifier key's key id is not 8 lower-case hex digits";
		return false;
	}
	if (cl_base64_decode(p2 + 1, len - (size_t) (p2 + 1 - s), raw, sizeof(raw)) != 1 + CL_PUBKEY_LEN ||
		(raw[0] != CL_SIGTYPE_ED25519 && raw[0] != CL_SIGTYPE_COSIGNATURE))
	{
		*err = "the verifier key's key is not the base64 of a signature type (0x01 or 0x04) and a 32-byte Ed25519 public key";
		return false;
	}
	memcpy(name, s, namelen);
	name[namelen] = '\0';
	cl_key_id_typed(name, raw[0], raw + 1, want);
	if (memcmp(id, want, CL_KEYID_LEN) != 0)
	{
		*err = "the verifier key's key id is not the id of its name, type and key";
		return false;
	}
	*type = raw[0];
	memcpy(pubkey, raw + 1, CL_PUBKEY_LEN);
	return true;
}

size_t
cl_vkey_format(const char *name, uint8_t type, const uint8_t pubkey[CL_PUBKEY_LEN],
			   char *out, size_t outsize)
{
	uint8_t		raw[1 + CL_PUBKEY_LEN];
	uint8_t		id[CL_KEYID_LEN];
	char		hex[2 * CL_KEYID_LEN + 1];
	char		b64[64];
	int			n;

	if (!cl_key_name_ok(name, strlen(name)))
		return 0;
	raw[0] = type;
	memcpy(raw + 1, pubkey, CL_PUBKEY_LEN);
	cl_base64_encode(raw, sizeof(raw), b64);
	cl_key_id_typed(name, type, pubkey, id);
	cl_hex_encode(id, CL_KEYID_LEN, hex);
	n = snprintf(out, outsize, "%s+%s+%s", name, hex, b64);
	if (n < 0 || (size_t) n >= outsize)
		return 0;
	return (size_t) n;
}

size_t
cl_cosignature_message(const char *body, size_t bodylen, int64_t t,
					   char *buf, size_t bufsize)
{
	int			n;

	if (t < 0)
		return 0;
	n = snprintf(buf, bufsize, "%s\ntime %" PRId64 "\n", CL_COSIG_HEADER, t);
	if (n < 0 || (size_t) n >= bufsize || bufsize - (size_t) n <= bodylen)
		return 0;
	memcpy(buf + n, body, bodylen);
	buf[n + bodylen] = '\0';
	return (size_t) n + bodylen;
}

size_t
cl_cosignature_line(const char *name, const uint8_t keyid[CL_KEYID_LEN], int64_t t,
					const uint8_t sig[CL_SIG_LEN], char *out, size_t outsize)
{
	uint8_t		raw[CL_COSIG_BLOB_LEN];
	char		b64[((CL_COSIG_BLOB_LEN + 2) / 3) * 4 + 1];
	int			n;
	int			i;

	if (t < 0 || !cl_key_name_ok(name, strlen(name)))
		return 0;
	memcpy(raw, keyid, CL_KEYID_LEN);
	for (i = 0; i < 8; i++)
		raw[CL_KEYID_LEN + i] = (uint8_t) ((uint64_t) t >> (56 - 8 * i));
	memcpy(raw + CL_KEYID_LEN + 8, sig, CL_SIG_LEN);
	cl_base64_encode(raw, sizeof(raw), b64);
	n = snprintf(out, outsize, "%s%s %s\n", EM_DASH_SPACE, name, b64);
	if (n < 0 || (size_t) n >= outsize)
		return 0;
	return (size_t) n;
}

bool
cl_cosignatures_parse(const cl_checkpoint *cp, const char *note, size_t len,
					  cl_cosignature *out, int max, int *n, const char **err)
{
	size_t		pos = cp->bodylen + 1;	/* past the blank line */
	const char *line;
	size_t		linelen;

	*n = 0;
	if (cp->bodylen == 0 || cp->bodylen >= len)
	{
		*err = "not a parsed note";
		return false;
	}
	while (next_line(note, len, &pos, &line, &linelen))
	{
		uint8_t		raw[CL_MAX_NOTE];
		const char *name = line + EM_DASH_SPACE_LEN;
		const char *sp;
		size_t		namelen;
		long		k;
		uint64_t	t = 0;
		int			i;

		if (linelen < EM_DASH_SPACE_LEN || memcmp(line, EM_DASH_SPACE, EM_DASH_SPACE_LEN) != 0)
			continue;			/* (the parser refused such notes) */
		sp = memchr(name, ' ', linelen - EM_DASH_SPACE_LEN);
		if (sp == NULL)
			continue;
		namelen = (size_t) (sp - name);
		k = cl_base64_decode(sp + 1, linelen - EM_DASH_SPACE_LEN - namelen - 1, raw, sizeof(raw));
		if (k != CL_COSIG_BLOB_LEN || namelen > CL_MAX_KEY_NAME)
			continue;			/* not a timestamped Ed25519 cosignature */
		for (i = 0; i < 8; i++)
			t = (t << 8) | raw[CL_KEYID_LEN + i];
		if (t > (uint64_t) INT64_MAX)
		{
			*err = "a cosignature's timestamp exceeds 2^63 - 1";
			return false;
		}
		if (*n >= max)
		{
			*err = "too many cosignature lines";
			return false;
		}
		memcpy(out[*n].keyname, name, namelen);
		out[*n].keyname[namelen] = '\0';
		memcpy(out[*n].keyid, raw, CL_KEYID_LEN);
		out[*n].time = (int64_t) t;
		memcpy(out[*n].sig, raw + CL_KEYID_LEN + 8, CL_SIG_LEN);
		out[*n].line_start = (size_t) (line - note);
		out[*n].line_len = linelen + 1;
		(*n)++;
	}
	return true;
}

bool
cl_cosignature_verify(const cl_checkpoint *cp, const char *note,
					  const cl_cosignature *cosigs, int ncosigs,
					  const char *name, const uint8_t pubkey[CL_PUBKEY_LEN],
					  int64_t *time)
{
	uint8_t		keyid[CL_KEYID_LEN];
	char		msg[CL_MAX_NOTE + 64];
	bool		found = false;
	int			i;

	if (cp->bodylen == 0 || sodium_init() < 0)
		return false;
	cl_key_id_typed(name, CL_SIGTYPE_COSIGNATURE, pubkey, keyid);
	for (i = 0; i < ncosigs; i++)
	{
		const cl_cosignature *c = &cosigs[i];
		size_t		mlen;

		if (strcmp(c->keyname, name) != 0 || memcmp(c->keyid, keyid, CL_KEYID_LEN) != 0)
			continue;
		mlen = cl_cosignature_message(note, cp->bodylen, c->time, msg, sizeof(msg));

		/*
		 * A line that does not verify vouches for nothing -- and vetoes
		 * nothing: the log stores the lines its witnesses' answers held
		 * (add_cosignature() cannot check a line of a witness it does not
		 * know), so a bad line in the name of an honest witness, from
		 * another witness or a broken one, must not cancel that witness's
		 * good line (attack review R2, W5).
		 */
		if (mlen == 0 ||
			crypto_sign_verify_detached(c->sig, (const unsigned char *) msg, mlen, pubkey) != 0)
			continue;
		if (!found || c->time > *time)
			*time = c->time;
		found = true;
	}
	return found;
}

size_t
cl_note_without_cosignatures(const char *note, size_t len,
							 const cl_cosignature *cosigs, int ncosigs, char *out)
{
	size_t		o = 0;
	size_t		pos = 0;
	int			i;

	/* cosignature lines are in note order */
	for (i = 0; i < ncosigs; i++)
	{
		memcpy(out + o, note + pos, cosigs[i].line_start - pos);
		o += cosigs[i].line_start - pos;
		pos = cosigs[i].line_start + cosigs[i].line_len;
	}
	memcpy(out + o, note + pos, len - pos);
	return o + len - pos;
}

int
cl_quorum_count(const cl_checkpoint *cp, const char *note, size_t len,
				const char (*names)[CL_MAX_KEY_NAME + 1],
				const uint8_t (*pubkeys)[CL_PUBKEY_LEN], int nwitnesses,
				int64_t now, char *why, size_t whylen)
{
	cl_cosignature cs[CL_MAX_SIGLINES];
	int			ncs = 0;
	int			count = 0;
	const char *err;
	int			i;

	if (!cl_cosignatures_parse(cp, note, len, cs, CL_MAX_SIGLINES, &ncs, &err))
	{
		snprintf(why, whylen, "%s", err);
		return -1;
	}
	why[0] = '\0';
	for (i = 0; i < nwitnesses; i++)
	{
		int64_t		t = 0;
		bool		dup = false;
		int			j;

		for (j = 0; j < i && !dup; j++)
			dup = memcmp(pubkeys[j], pubkeys[i], CL_PUBKEY_LEN) == 0;
		if (dup)
			continue;
		if (!cl_cosignature_verify(cp, note, cs, ncs, names[i], pubkeys[i], &t))
			continue;
		if (t > now + CL_COSIG_MAX_FUTURE)
		{
			snprintf(why, whylen, "the cosignature of witness %s is dated %" PRId64 ", in the future", names[i], t);
			continue;
		}
		count++;
	}
	return count;
}
