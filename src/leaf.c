/*-------------------------------------------------------------------------
 * leaf.c
 *	  Decoding of a leaf's canonical row encoding (README "Canonical row
 *	  encoding"), for the offline verifier: checks a leaf's bytes against
 *	  the encoding of its version byte (1, 2 or 3) and renders it as one line
 *	  of text.  An export's hashes do not need this (a leaf is hashed as it
 *	  is); it lets an auditor read what a receipt covers, and catches a
 *	  leaf no version of the encoding could have produced.  Pure C99, no
 *	  PostgreSQL (shared with the fuzzers).
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "leaf.h"

#define LEAF_MAX_DEPTH	64

typedef struct leafdec
{
	const uint8_t *p;
	size_t		len;
	size_t		pos;
	int			version;
	FILE	   *out;			/* NULL: check only */
	const char *err;
} leafdec;

static bool
ld_fail(leafdec *d, const char *why)
{
	if (d->err == NULL)
		d->err = why;
	return false;
}

static bool
ld_need(leafdec *d, size_t n)
{
	if (d->len - d->pos < n)
		return ld_fail(d, "truncated");
	return true;
}

static uint64_t
ld_uint(leafdec *d, int nbytes)
{
	uint64_t	v = 0;

	for (int i = 0; i < nbytes; i++)
		v = (v << 8) | d->p[d->pos++];
	return v;
}

static void
ld_printf(leafdec *d, const char *fmt,...)
{
	va_list		ap;

	if (d->out == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(d->out, fmt, ap);
	va_end(ap);
}

/* a string as "...": printable ASCII and UTF-8 bytes as they are, others \xHH */
/*
 * The length of the well-formed UTF-8 character (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF) of two to four bytes at s, or 0
 * when there is none or it is a C1 control (U+0080..U+009F), which a
 * terminal would act on.
 */
static size_t
ld_utf8_char(const uint8_t *s, size_t n)
{
	uint32_t	cp;
	size_t		len;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
	{
		len = 2;
		cp = s[0] & 0x1f;
	}
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
	{
		len = 3;
		cp = s[0] & 0x0f;
	}
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
	{
		len = 4;
		cp = s[0] & 0x07;
	}
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t k = 1; k < len; k++)
	{
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		(cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
		return 0;
	return len;
}

static void
ld_quoted(leafdec *d, const uint8_t *s, size_t n)
{
	if (d->out == NULL)
		return;
	fputc('"', d->out);
	for (size_t i = 0; i < n; i++)
	{
		size_t		len;

		if (s[i] == '"' || s[i] == '\\')
			fprintf(d->out, "\\%c", s[i]);
		else if (s[i] < 0x20 || s[i] == 0x7f)
			fprintf(d->out, "\\x%02x", s[i]);
		else if (s[i] < 0x80)
			fputc(s[i], d->out);
		else if ((len = ld_utf8_char(s + i, n - i)) > 0)
		{
			fwrite(s + i, 1, len, d->out);
			i += len - 1;
		}
		else
			fprintf(d->out, "\\x%02x", s[i]);	/* not UTF-8, or a C1 control */
	}
	fputc('"', d->out);
}

static void
ld_hex(leafdec *d, const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n && d->out != NULL; i++)
		fprintf(d->out, "%02x", s[i]);
}

/* u32 length + bytes; returns the bytes through *s, *n */
static bool
ld_counted(leafdec *d, const uint8_t **s, size_t *n)
{
	if (!ld_need(d, 4))
		return false;
	*n = (size_t) ld_uint(d, 4);
	if (!ld_need(d, *n))
		return false;
	*s = d->p + d->pos;
	d->pos += *n;
	return true;
}

/*
 * u16 count of (u16 name length | name | value), names strictly increasing,
 * no NULL values: a row's columns, and a version 2 composite's attributes.
 */
static bool ld_value(leafdec *d, int depth);

static bool
ld_named_list(leafdec *d, int depth)
{
	uint64_t	count;
	const uint8_t *prev = NULL;
	size_t		prevlen = 0;

	if (!ld_need(d, 2))
		return false;
	count = ld_uint(d, 2);
	ld_printf(d, "{");
	for (uint64_t i = 0; i < count; i++)
	{
		size_t		namelen;
		const uint8_t *name;
		int			cmp;

		if (!ld_need(d, 2))
			return false;
		namelen = (size_t) ld_uint(d, 2);
		if (!ld_need(d, namelen))
			return false;
		name = d->p + d->pos;
		d->pos += namelen;
		if (prev != NULL)
		{
			cmp = memcmp(prev, name, prevlen < namelen ? prevlen : namelen);
			if (cmp > 0 || (cmp == 0 && prevlen >= namelen))
				return ld_fail(d, "names not in strictly increasing byte order");
		}
		prev = name;
		prevlen = namelen;
		ld_printf(d, "%s", i > 0 ? ", " : "");
		ld_quoted(d, name, namelen);
		ld_printf(d, ": ");
		if (d->pos < d->len && d->p[d->pos] == '0')
			return ld_fail(d, "a NULL column or attribute (NULLs are omitted)");
		if (!ld_value(d, depth + 1))
			return false;
	}
	ld_printf(d, "}");
	return true;
}

static bool
ld_value(leafdec *d, int depth)
{
	uint8_t		tag;
	const uint8_t *s;
	size_t		n;

	if (depth > LEAF_MAX_DEPTH)
		return ld_fail(d, "values nested too deeply");
	if (!ld_need(d, 1))
		return false;
	tag = d->p[d->pos++];
	/* the tag version 3 added: a personal column's salted commitment */
	if (tag == 'H')
	{
		if (d->version < 3)
			return ld_fail(d, "tag H (commitment) in a version 1 or 2 leaf");
		if (depth != 1)
			return ld_fail(d, "a commitment inside a value");
		if (!ld_need(d, 32))
			return false;
		ld_printf(d, "H:");
		ld_hex(d, d->p + d->pos, 32);
		d->pos += 32;
		return true;
	}
	/* tags that version 2 added */
	if (d->version < 2 &&
		(tag == 'C' || tag == 'Z' || tag == 'J' || tag == 'X' || tag == 'm'))
		return ld_fail(d, tag == 'C' ? "tag C (\"char\") in a version 1 leaf" :
					   "a version 2 tag in a version 1 leaf");
	switch (tag)
	{
		case '0':
			ld_printf(d, "null");
			return true;
		case 'b':
			if (!ld_need(d, 1))
				return false;
			if (d->p[d->pos] > 1)
				return ld_fail(d, "bool value is neither 0 nor 1");
			ld_printf(d, "b:%s", d->p[d->pos++] ? "true" : "false");
			return true;
		case 'i':
			if (!ld_need(d, 8))
				return false;
			ld_printf(d, "i:%" PRId64, (int64_t) ld_uint(d, 8));
			return true;
		case 'f':
		case 'T':
		case 'Z':
		case 'h':
			if (!ld_need(d, 8))
				return false;
			if (tag == 'f')
				ld_printf(d, "f:%016" PRIx64, ld_uint(d, 8));
			else
				ld_printf(d, "%c:%" PRId64, tag, (int64_t) ld_uint(d, 8));
			return true;
		case 'D':
			if (!ld_need(d, 4))
				return false;
			ld_printf(d, "D:%" PRId32, (int32_t) ld_uint(d, 4));
			return true;
		case 'z':
			if (!ld_need(d, 12))
				return false;
			ld_printf(d, "z:%" PRId64, (int64_t) ld_uint(d, 8));
			ld_printf(d, ",%" PRId32, (int32_t) ld_uint(d, 4));
			return true;
		case 'v':
			if (!ld_need(d, 16))
				return false;
			ld_printf(d, "v:%" PRId64, (int64_t) ld_uint(d, 8));
			ld_printf(d, ",%" PRId32 "d", (int32_t) ld_uint(d, 4));
			ld_printf(d, ",%" PRId32 "m", (int32_t) ld_uint(d, 4));
			return true;
		case 'u':
			if (!ld_need(d, 16))
				return false;
			ld_printf(d, "u:");
			ld_hex(d, d->p + d->pos, 16);
			d->pos += 16;
			return true;
		case 'C':
			if (!ld_need(d, 1))
				return false;
			ld_printf(d, "C:%02x", d->p[d->pos++]);
			return true;
		case 'n':
		case 't':
		case 'J':
		case 'X':
		case 'j':
		case 'o':
			if (!ld_counted(d, &s, &n))
				return false;
			ld_printf(d, "%c:", tag);
			ld_quoted(d, s, n);
			return true;
		case 'x':
		case 's':
			if (!ld_counted(d, &s, &n))
				return false;
			ld_printf(d, "%c:", tag);
			ld_hex(d, s, n);
			return true;
		case 'a':
			{
				uint64_t	ndim;
				uint64_t	nelem = 1;

				if (!ld_need(d, 4))
					return false;
				ndim = ld_uint(d, 4);
				if (ndim > 6)
					return ld_fail(d, "array with more than 6 dimensions");
				if (!ld_need(d, 8 * ndim))
					return false;
				ld_printf(d, "a[");
				for (uint64_t i = 0; i < ndim; i++)
				{
					int32_t		dim = (int32_t) ld_uint(d, 4);
					int32_t		lb = (int32_t) ld_uint(d, 4);

					if (dim < 0)
						return ld_fail(d, "negative array dimension");
					/* (compared before multiplying: the product cannot overflow) */
					if (dim > 0 && nelem > (uint64_t) d->len / (uint64_t) dim)
						return ld_fail(d, "more array elements than bytes");
					nelem *= (uint64_t) dim;
					ld_printf(d, "%s%" PRId32 "@%" PRId32, i > 0 ? "," : "", dim, lb);
				}
				if (ndim == 0)
					nelem = 0;
				ld_printf(d, "]{");
				for (uint64_t i = 0; i < nelem; i++)
				{
					ld_printf(d, "%s", i > 0 ? ", " : "");
					if (!ld_value(d, depth + 1))
						return false;
				}
				ld_printf(d, "}");
				return true;
			}
		case 'c':
			ld_printf(d, "c");
			if (d->version >= 2)
				return ld_named_list(d, depth);
			else
			{
				uint64_t	count;

				if (!ld_need(d, 2))
					return false;
				count = ld_uint(d, 2);
				ld_printf(d, "(");
				for (uint64_t i = 0; i < count; i++)
				{
					ld_printf(d, "%s", i > 0 ? ", " : "");
					if (!ld_value(d, depth + 1))
						return false;
				}
				ld_printf(d, ")");
				return true;
			}
		case 'r':
			{
				uint8_t		flags;

				if (!ld_need(d, 1))
					return false;
				flags = d->p[d->pos++];
				if (flags & ~0x1f)
					return ld_fail(d, "unknown range flags");
				ld_printf(d, "r:%02x(", flags);
				if (flags & 0x01)
				{
					if (flags != 0x01)
						return ld_fail(d, "an empty range with other flags");
				}
				else
				{
					if (!(flags & 0x02) && !ld_value(d, depth + 1))
						return false;
					ld_printf(d, ",");
					if (!(flags & 0x04) && !ld_value(d, depth + 1))
						return false;
				}
				ld_printf(d, ")");
				return true;
			}
		case 'm':
			{
				uint64_t	count;

				if (!ld_need(d, 4))
					return false;
				count = ld_uint(d, 4);
				if (count > d->len - d->pos)
					return ld_fail(d, "more ranges than bytes");
				ld_printf(d, "m{");
				for (uint64_t i = 0; i < count; i++)
				{
					ld_printf(d, "%s", i > 0 ? ", " : "");
					if (!ld_need(d, 1))
						return false;
					if (d->p[d->pos] != 'r')
						return ld_fail(d, "a multirange member that is not a range");
					if (!ld_value(d, depth + 1))
						return false;
				}
				ld_printf(d, "}");
				return true;
			}
		default:
			return ld_fail(d, "unknown value tag");
	}
}

/* See leaf.h. */
const char *
cl_leaf_decode(const uint8_t *p, size_t len, FILE *out)
{
	leafdec		d = {p, len, 0, 0, out, NULL};
	int64_t		txn;
	int32_t		ord;

	if (len < 1)
		return "empty leaf";
	d.version = p[0];
	if (d.version != 1 && d.version != 2 && d.version != 3)
		return "unknown encoding version";
	d.pos = 1;
	if (!ld_need(&d, 12))
		return d.err;
	txn = (int64_t) ld_uint(&d, 8);
	ord = (int32_t) ld_uint(&d, 4);
	ld_printf(&d, "v%d txn %" PRId64 " ord %" PRId32 " ", d.version, txn, ord);
	if (!ld_named_list(&d, 0))
		return d.err;
	if (d.pos != d.len)
		return "bytes after the last column";
	return NULL;
}

/* See leaf.h. */
const char *
cl_leaf_column(const uint8_t *p, size_t len, const char *name,
			   uint8_t *tag, const uint8_t **val, size_t *vlen)
{
	leafdec		d = {p, len, 0, 0, NULL, NULL};
	size_t		want = strlen(name);
	uint64_t	count;
	const char *err = cl_leaf_decode(p, len, NULL);

	*tag = 0;
	*val = NULL;
	*vlen = 0;
	if (err != NULL)
		return err;
	/* well formed: walk the columns again, without the checks */
	d.version = p[0];
	d.pos = 1 + 12;
	count = ld_uint(&d, 2);
	for (uint64_t i = 0; i < count; i++)
	{
		size_t		namelen = (size_t) ld_uint(&d, 2);
		const uint8_t *n = d.p + d.pos;
		size_t		start;

		d.pos += namelen;
		start = d.pos;
		if (!ld_value(&d, 1))
			return d.err;
		if (namelen == want && memcmp(n, name, want) == 0)
		{
			*tag = d.p[start];
			start++;
			/* counted values: the bytes after their length */
			if (strchr("ntJXjoxs", *tag) != NULL)
				start += 4;
			*val = d.p + start;
			*vlen = d.pos - start;
			return NULL;
		}
	}
	return NULL;
}
