/*-------------------------------------------------------------------------
 * statement.c
 *	  Statements a data subject signs with their own Ed25519 key (README
 *	  "Subject-signed consent").  A consent statement:
 *
 *		consent-ledger-consent/v1
 *		origin <the consent ledger's origin>
 *		subject <subject>
 *		purpose <purpose>
 *		action grant|withdraw
 *		expires <Unix seconds>|never
 *		time <Unix seconds>
 *		nonce <16 to 64 of A-Z a-z 0-9 _ ->
 *
 *	  and a key statement (the registration of a subject's first key,
 *	  signed by that key, or a rotation, signed by the key it replaces):
 *
 *		consent-ledger-subject-key/v1
 *		origin <origin>
 *		subject <subject>
 *		key <base64 of the 32-byte Ed25519 public key>
 *		time <Unix seconds>
 *		nonce <nonce>
 *
 *	  Every line ends in one LF; there is nothing before, between or after
 *	  them.  A value is everything after the first space up to the LF; it
 *	  has no control characters.  Integers are decimal, without sign or
 *	  leading zeros.  So each statement has exactly one byte form, and the
 *	  signature covers exactly those bytes.  Pure C99 (libsodium for the
 *	  signature), shared by the extension and the offline verifier.
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include <sodium.h>

#include "note.h"
#include "statement.h"

/* 2^33 seconds: beyond the year 2242, well inside PostgreSQL's timestamps */
#define MAX_UNIX_SECONDS	INT64_C(8589934592)

typedef struct reader
{
	const char *p;
	size_t		len;
	size_t		pos;
	const char *err;
} reader;

/*
 * The next line, which must start with key and a space (or be key alone
 * when value is NULL); its value through value/vlen.
 */
static bool
next_line(reader *r, const char *key, const char **value, size_t *vlen)
{
	size_t		klen = strlen(key);
	const char *nl;
	size_t		end;

	if (r->pos >= r->len)
	{
		r->err = "the statement ends early";
		return false;
	}
	nl = memchr(r->p + r->pos, '\n', r->len - r->pos);
	if (nl == NULL)
	{
		r->err = "the last line does not end in a line feed";
		return false;
	}
	end = (size_t) (nl - r->p);
	if (value == NULL)
	{
		if (end - r->pos != klen || memcmp(r->p + r->pos, key, klen) != 0)
		{
			r->err = "unknown statement type (first line)";
			return false;
		}
	}
	else
	{
		if (end - r->pos < klen + 1 || memcmp(r->p + r->pos, key, klen) != 0 ||
			r->p[r->pos + klen] != ' ')
		{
			r->err = "a line is missing, out of order, or not \"<name> <value>\"";
			return false;
		}
		*value = r->p + r->pos + klen + 1;
		*vlen = end - (r->pos + klen + 1);
		for (size_t i = 0; i < *vlen; i++)
		{
			unsigned char c = (unsigned char) (*value)[i];

			if (c < 0x20 || c == 0x7f)
			{
				r->err = "a control character in a value";
				return false;
			}
		}
		if (*vlen == 0)
		{
			r->err = "an empty value";
			return false;
		}
	}
	r->pos = end + 1;
	return true;
}

static bool
copy_value(reader *r, const char *v, size_t n, char *out, size_t max, const char *what)
{
	if (n > max)
	{
		r->err = what;
		return false;
	}
	memcpy(out, v, n);
	out[n] = '\0';
	return true;
}

static bool
read_seconds(reader *r, const char *v, size_t n, int64_t *out)
{
	int64_t		x = 0;

	if (n == 0 || n > 10 || (n > 1 && v[0] == '0'))
	{
		r->err = "a time is not decimal Unix seconds without leading zeros";
		return false;
	}
	for (size_t i = 0; i < n; i++)
	{
		if (v[i] < '0' || v[i] > '9')
		{
			r->err = "a time is not decimal Unix seconds without leading zeros";
			return false;
		}
		x = x * 10 + (v[i] - '0');
	}
	if (x > MAX_UNIX_SECONDS)
	{
		r->err = "a time lies beyond 2^33 seconds";
		return false;
	}
	*out = x;
	return true;
}

static bool
purpose_ok(const char *v, size_t n)
{
	if (n == 0 || n > CL_STMT_MAX_PURPOSE)
		return false;
	if (!((v[0] >= 'A' && v[0] <= 'Z') || (v[0] >= 'a' && v[0] <= 'z')))
		return false;
	for (size_t i = 1; i < n; i++)
	{
		char		c = v[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '.' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

static bool
nonce_ok(const char *v, size_t n)
{
	if (n < CL_STMT_MIN_NONCE || n > CL_STMT_MAX_NONCE)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		char		c = v[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* See statement.h. */
bool
cl_statement_b64(const char *in, size_t len, uint8_t *out, size_t n)
{
	return cl_base64_decode(in, len, out, n) == (long) n;
}

/* See statement.h. */
bool
cl_statement_parse(const char *text, size_t len, cl_statement *out, const char **err)
{
	reader		r = {text, len, 0, NULL};
	const char *v;
	size_t		n;

	memset(out, 0, sizeof(*out));
	if (len > CL_STMT_MAX_LEN)
	{
		*err = "the statement is longer than 2048 bytes";
		return false;
	}
	if (len > 0 && memchr(text, '\0', len) != NULL)
	{
		*err = "a NUL byte in the statement";
		return false;
	}
	if (len >= strlen(CL_KEY_STATEMENT_V1) + 1 &&
		memcmp(text, CL_KEY_STATEMENT_V1 "\n", strlen(CL_KEY_STATEMENT_V1) + 1) == 0)
		out->kind = CL_STMT_KEY;
	else
		out->kind = CL_STMT_CONSENT;
	if (!next_line(&r, out->kind == CL_STMT_KEY ? CL_KEY_STATEMENT_V1 : CL_CONSENT_STATEMENT_V1,
				   NULL, NULL))
		goto fail;

	if (!next_line(&r, "origin", &v, &n) ||
		!copy_value(&r, v, n, out->origin, CL_STMT_MAX_ORIGIN, "the origin is longer than 255 bytes"))
		goto fail;
	for (size_t i = 0; i < n; i++)
	{
		if (v[i] == ' ' || (unsigned char) v[i] > 0x7e)
		{
			r.err = "the origin has a space or a byte outside printable ASCII";
			goto fail;
		}
	}
	if (!next_line(&r, "subject", &v, &n) ||
		!copy_value(&r, v, n, out->subject, CL_STMT_MAX_SUBJECT, "the subject is longer than 1024 bytes"))
		goto fail;

	if (out->kind == CL_STMT_CONSENT)
	{
		if (!next_line(&r, "purpose", &v, &n))
			goto fail;
		if (!purpose_ok(v, n))
		{
			r.err = "the purpose is not a purpose name";
			goto fail;
		}
		memcpy(out->purpose, v, n);
		out->purpose[n] = '\0';
		if (!next_line(&r, "action", &v, &n))
			goto fail;
		if (n == 5 && memcmp(v, "grant", 5) == 0)
			out->withdraw = false;
		else if (n == 8 && memcmp(v, "withdraw", 8) == 0)
			out->withdraw = true;
		else
		{
			r.err = "the action is neither grant nor withdraw";
			goto fail;
		}
		if (!next_line(&r, "expires", &v, &n))
			goto fail;
		if (n == 5 && memcmp(v, "never", 5) == 0)
			out->expires_never = true;
		else if (!read_seconds(&r, v, n, &out->expires))
			goto fail;
		if (out->withdraw && !out->expires_never)
		{
			r.err = "a withdrawal with an expiry (it must say \"expires never\")";
			goto fail;
		}
	}
	else
	{
		if (!next_line(&r, "key", &v, &n))
			goto fail;
		if (!cl_statement_b64(v, n, out->key, CL_SUBJECT_KEY_LEN))
		{
			r.err = "the key is not the base64 of 32 bytes";
			goto fail;
		}
	}
	if (!next_line(&r, "time", &v, &n) || !read_seconds(&r, v, n, &out->time))
		goto fail;
	if (!next_line(&r, "nonce", &v, &n))
		goto fail;
	if (!nonce_ok(v, n))
	{
		r.err = "the nonce is not 16 to 64 characters of A-Z a-z 0-9 _ -";
		goto fail;
	}
	memcpy(out->nonce, v, n);
	out->nonce[n] = '\0';
	if (r.pos != len)
	{
		r.err = "bytes after the nonce line";
		goto fail;
	}
	*err = NULL;
	return true;

fail:
	*err = r.err;
	return false;
}

/* See statement.h. */
bool
cl_statement_signature_ok(const char *text, size_t len, const uint8_t sig[CL_SUBJECT_SIG_LEN],
						  const uint8_t key[CL_SUBJECT_KEY_LEN])
{
	return crypto_sign_verify_detached(sig, (const unsigned char *) text, len, key) == 0;
}
