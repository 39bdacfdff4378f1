/*-------------------------------------------------------------------------
 * json.c
 *	  A small strict JSON reader for checkpoint and proof documents.
 *	  See json.h.
 *
 * Accepts one RFC 8259 object whose member values are strings,
 * non-negative integers below 2^63 (no sign, fraction, exponent or
 * leading zero), true, false, null, or arrays of strings.  Strings must
 * be valid UTF-8 without raw control characters; \uXXXX escapes must
 * form valid code points (surrogates only as a high/low pair).  Keys
 * must be unique and must not contain U+0000.
 *
 * Memory: every unescaped string is at most as long as its escaped form
 * including its quotes, so the strings of one parse need at most len
 * bytes plus one malloc header per string (at most
 * CL_JSON_MAX_MEMBERS * (CL_JSON_MAX_ARRAY + 1) strings).
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct json_parser
{
	const unsigned char *s;
	size_t		len;
	size_t		pos;
	const char *err;
} json_parser;

/* Skips RFC 8259 whitespace: space, tab, line feed, carriage return. */
static void
skip_ws(json_parser *p)
{
	while (p->pos < p->len &&
		   (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
			p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

/* Records the first error; returns false for use in return statements. */
static bool
fail(json_parser *p, const char *err)
{
	if (p->err == NULL)
		p->err = err;
	return false;
}

/*
 * Length (1-4) of the valid UTF-8 sequence at s[0..len), or 0 when it is
 * invalid, overlong, truncated, a surrogate or above U+10FFFF.
 */
static size_t
utf8_len(const unsigned char *s, size_t len)
{
	uint32_t	c;
	size_t		n;
	size_t		i;

	if (len == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
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
	return n;
}

/* Reads exactly 4 hex digits (either case) at s[0..4); false otherwise. */
static bool
hex4(const unsigned char *s, uint32_t *out)
{
	uint32_t	v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		unsigned char c = s[i];
		uint32_t	d;

		if (c >= '0' && c <= '9')
			d = (uint32_t) (c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (uint32_t) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (uint32_t) (c - 'A' + 10);
		else
			return false;
		v = (v << 4) | d;
	}
	*out = v;
	return true;
}

/*
 * Writes code point c (a valid scalar value) as UTF-8 to out when out is
 * not NULL; returns the number of bytes it takes.
 */
static size_t
put_utf8(uint32_t c, char *out)
{
	if (c < 0x80)
	{
		if (out)
			out[0] = (char) c;
		return 1;
	}
	if (c < 0x800)
	{
		if (out)
		{
			out[0] = (char) (0xc0 | (c >> 6));
			out[1] = (char) (0x80 | (c & 0x3f));
		}
		return 2;
	}
	if (c < 0x10000)
	{
		if (out)
		{
			out[0] = (char) (0xe0 | (c >> 12));
			out[1] = (char) (0x80 | ((c >> 6) & 0x3f));
			out[2] = (char) (0x80 | (c & 0x3f));
		}
		return 3;
	}
	if (out)
	{
		out[0] = (char) (0xf0 | (c >> 18));
		out[1] = (char) (0x80 | ((c >> 12) & 0x3f));
		out[2] = (char) (0x80 | ((c >> 6) & 0x3f));
		out[3] = (char) (0x80 | (c & 0x3f));
	}
	return 4;
}

/*
 * Scans the string starting at the opening quote at p->pos.  With out ==
 * NULL only validates and returns the unescaped length in *outlen; with
 * out it writes the unescaped bytes (caller provides *outlen + 1 bytes)
 * and a NUL.  On success p->pos is just past the closing quote.
 */
static bool
scan_string(json_parser *p, char *out, size_t *outlen)
{
	size_t		n = 0;

	if (p->pos >= p->len || p->s[p->pos] != '"')
		return fail(p, "expected a string");
	p->pos++;
	for (;;)
	{
		unsigned char c;

		if (p->pos >= p->len)
			return fail(p, "unterminated string");
		c = p->s[p->pos];
		if (c == '"')
		{
			p->pos++;
			break;
		}
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c == '\\')
		{
			unsigned char e;
			uint32_t	cp;

			if (p->len - p->pos < 2)
				return fail(p, "unterminated string");
			e = p->s[p->pos + 1];
			p->pos += 2;
			switch (e)
			{
				case '"':
				case '\\':
				case '/':
					cp = e;
					break;
				case 'b':
					cp = '\b';
					break;
				case 'f':
					cp = '\f';
					break;
				case 'n':
					cp = '\n';
					break;
				case 'r':
					cp = '\r';
					break;
				case 't':
					cp = '\t';
					break;
				case 'u':
					if (p->len - p->pos < 4 || !hex4(p->s + p->pos, &cp))
						return fail(p, "invalid \\u escape");
					p->pos += 4;
					if (cp >= 0xdc00 && cp <= 0xdfff)
						return fail(p, "unpaired low surrogate");
					if (cp >= 0xd800 && cp <= 0xdbff)
					{
						uint32_t	lo;

						if (p->len - p->pos < 6 || p->s[p->pos] != '\\' ||
							p->s[p->pos + 1] != 'u' ||
							!hex4(p->s + p->pos + 2, &lo) ||
							lo < 0xdc00 || lo > 0xdfff)
							return fail(p, "unpaired high surrogate");
						p->pos += 6;
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					}
					break;
				default:
					return fail(p, "invalid escape in string");
			}
			n += put_utf8(cp, out ? out + n : NULL);
		}
		else
		{
			size_t		k = utf8_len(p->s + p->pos, p->len - p->pos);

			if (k == 0)
				return fail(p, "invalid UTF-8 in string");
			if (out)
				memcpy(out + n, p->s + p->pos, k);
			n += k;
			p->pos += k;
		}
	}
	if (out)
		out[n] = '\0';
	*outlen = n;
	return true;
}

/*
 * Parses the string at p->pos into a fresh malloc'd NUL-terminated
 * buffer (*out, length *outlen).  On failure *out is NULL.
 */
static bool
parse_string(json_parser *p, char **out, size_t *outlen)
{
	size_t		start = p->pos;
	size_t		n;

	*out = NULL;
	if (!scan_string(p, NULL, &n))
		return false;
	*out = malloc(n + 1);
	if (*out == NULL)
		return fail(p, "out of memory");
	p->pos = start;
	if (!scan_string(p, *out, &n))
	{
		/* cannot happen: the first pass accepted the same bytes */
		free(*out);
		*out = NULL;
		return false;
	}
	*outlen = n;
	return true;
}

/*
 * Parses a non-negative integer below 2^63 without sign, leading zero,
 * fraction or exponent.
 */
static bool
parse_number(json_parser *p, uint64_t *out)
{
	uint64_t	v = 0;
	size_t		start = p->pos;

	if (p->s[p->pos] == '-')
		return fail(p, "negative numbers are not accepted");
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
	{
		unsigned	d = (unsigned) (p->s[p->pos] - '0');

		if (p->pos > start && p->s[start] == '0')
			return fail(p, "number with a leading zero");
		if (v > ((uint64_t) INT64_MAX - d) / 10)
			return fail(p, "number too large");
		v = v * 10 + d;
		p->pos++;
	}
	if (p->pos == start)
		return fail(p, "invalid number");
	if (p->pos < p->len &&
		(p->s[p->pos] == '.' || p->s[p->pos] == 'e' || p->s[p->pos] == 'E'))
		return fail(p, "numbers with a fraction or exponent are not accepted");
	*out = v;
	return true;
}

/* Consumes the literal word if it is next; false otherwise. */
static bool
literal(json_parser *p, const char *word)
{
	size_t		n = strlen(word);

	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return fail(p, "invalid literal");
	p->pos += n;
	return true;
}

/*
 * Parses an array of strings at p->pos into m.  m->nitems counts the
 * items allocated so far, so that a failure leaves m freeable.
 */
static bool
parse_array(json_parser *p, cl_json_member *m)
{
	p->pos++;					/* '[' */
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ']')
	{
		p->pos++;
		return true;
	}
	for (;;)
	{
		size_t		n;

		skip_ws(p);
		if (p->pos >= p->len)
			return fail(p, "unterminated array");
		if (p->s[p->pos] != '"')
		{
			if (p->s[p->pos] == '[' || p->s[p->pos] == '{')
				return fail(p, "nested arrays and objects are not accepted");
			return fail(p, "arrays may only hold strings");
		}
		if (m->nitems >= CL_JSON_MAX_ARRAY)
			return fail(p, "array has too many items");
		if (!parse_string(p, &m->items[m->nitems], &n))
			return false;
		m->nitems++;
		skip_ws(p);
		if (p->pos >= p->len)
			return fail(p, "unterminated array");
		if (p->s[p->pos] == ']')
		{
			p->pos++;
			return true;
		}
		if (p->s[p->pos] != ',')
			return fail(p, "expected ',' or ']' in array");
		p->pos++;
	}
}

/* Parses one member value at p->pos into m. */
static bool
parse_value(json_parser *p, cl_json_member *m)
{
	unsigned char c;

	if (p->pos >= p->len)
		return fail(p, "missing value");
	c = p->s[p->pos];
	switch (c)
	{
		case '"':
			m->type = CL_JSON_STRING;
			return parse_string(p, &m->str, &m->strlen_);
		case '[':
			m->type = CL_JSON_ARRAY;
			return parse_array(p, m);
		case '{':
			return fail(p, "nested objects are not accepted");
		case 't':
			m->type = CL_JSON_BOOL;
			m->boolean = true;
			return literal(p, "true");
		case 'f':
			m->type = CL_JSON_BOOL;
			m->boolean = false;
			return literal(p, "false");
		case 'n':
			m->type = CL_JSON_NULL;
			return literal(p, "null");
		default:
			if (c == '-' || (c >= '0' && c <= '9'))
			{
				m->type = CL_JSON_INT;
				return parse_number(p, &m->num);
			}
			return fail(p, "unexpected character");
	}
}

/* Frees every string of obj and leaves it empty; safe to call twice. */
void
cl_json_free(cl_json_object *obj)
{
	int			i;
	int			k;

	if (obj == NULL)
		return;
	for (i = 0; i < obj->nmembers && i < CL_JSON_MAX_MEMBERS; i++)
	{
		cl_json_member *m = &obj->members[i];

		free(m->key);
		m->key = NULL;
		free(m->str);
		m->str = NULL;
		for (k = 0; k < m->nitems && k < CL_JSON_MAX_ARRAY; k++)
		{
			free(m->items[k]);
			m->items[k] = NULL;
		}
		m->nitems = 0;
	}
	obj->nmembers = 0;
}

/*
 * Parses text[0..len) as one JSON object under the rules in the file
 * header; optional whitespace may surround it, nothing else.  On success
 * *out owns malloc'd strings released by cl_json_free.  On failure
 * returns false with *err set, and *out holds nothing to free.
 */
bool
cl_json_parse(const char *text, size_t len, cl_json_object *out,
			  const char **err)
{
	json_parser p;

	memset(out, 0, sizeof(*out));
	p.s = (const unsigned char *) text;
	p.len = len;
	p.pos = 0;
	p.err = NULL;

	skip_ws(&p);
	if (p.pos >= p.len || p.s[p.pos] != '{')
	{
		fail(&p, "expected a JSON object");
		goto error;
	}
	p.pos++;
	skip_ws(&p);
	if (p.pos < p.len && p.s[p.pos] == '}')
		p.pos++;
	else
	{
		for (;;)
		{
			cl_json_member *m;
			size_t		keylen;
			int			i;

			skip_ws(&p);
			if (out->nmembers >= CL_JSON_MAX_MEMBERS)
			{
				fail(&p, "object has too many members");
				goto error;
			}
			m = &out->members[out->nmembers++];
			if (!parse_string(&p, &m->key, &keylen))
				goto error;
			if (strlen(m->key) != keylen)
			{
				fail(&p, "key contains U+0000");
				goto error;
			}
			for (i = 0; i < out->nmembers - 1; i++)
			{
				if (strcmp(out->members[i].key, m->key) == 0)
				{
					fail(&p, "duplicate key");
					goto error;
				}
			}
			skip_ws(&p);
			if (p.pos >= p.len || p.s[p.pos] != ':')
			{
				fail(&p, "expected ':' after key");
				goto error;
			}
			p.pos++;
			skip_ws(&p);
			if (!parse_value(&p, m))
				goto error;
			skip_ws(&p);
			if (p.pos >= p.len)
			{
				fail(&p, "unterminated object");
				goto error;
			}
			if (p.s[p.pos] == '}')
			{
				p.pos++;
				break;
			}
			if (p.s[p.pos] != ',')
			{
				fail(&p, "expected ',' or '}' in object");
				goto error;
			}
			p.pos++;
		}
	}
	skip_ws(&p);
	if (p.pos != p.len)
	{
		fail(&p, "trailing bytes after the object");
		goto error;
	}
	return true;

error:
	cl_json_free(out);
	memset(out, 0, sizeof(*out));
	*err = p.err ? p.err : "invalid JSON";
	return false;
}

/* The member named key with the given type, or NULL. */
const cl_json_member *
cl_json_get(const cl_json_object *obj, const char *key, cl_json_type type)
{
	int			i;

	for (i = 0; i < obj->nmembers && i < CL_JSON_MAX_MEMBERS; i++)
	{
		const cl_json_member *m = &obj->members[i];

		if (m->type == type && m->key != NULL && strcmp(m->key, key) == 0)
			return m;
	}
	return NULL;
}

/*
 * Skips one value of a document cl_json_split() reads: a string, a
 * non-negative integer, true, false, null, or an object or array of them
 * (at most depth levels).
 */
static bool
skip_value(json_parser *p, int depth)
{
	size_t		n;
	uint64_t	num;

	if (depth < 0)
		return fail(p, "values nested too deeply");
	skip_ws(p);
	if (p->pos >= p->len)
		return fail(p, "expected a value");
	switch (p->s[p->pos])
	{
		case '"':
			return scan_string(p, NULL, &n);
		case 't':
			return literal(p, "true");
		case 'f':
			return literal(p, "false");
		case 'n':
			return literal(p, "null");
		case '{':
		case '[':
			{
				bool		object = p->s[p->pos] == '{';
				char		close = object ? '}' : ']';

				p->pos++;
				skip_ws(p);
				if (p->pos < p->len && p->s[p->pos] == close)
				{
					p->pos++;
					return true;
				}
				for (;;)
				{
					skip_ws(p);
					if (object)
					{
						if (!scan_string(p, NULL, &n))
							return false;
						skip_ws(p);
						if (p->pos >= p->len || p->s[p->pos] != ':')
							return fail(p, "expected ':' after key");
						p->pos++;
					}
					if (!skip_value(p, depth - 1))
						return false;
					skip_ws(p);
					if (p->pos >= p->len)
						return fail(p, object ? "unterminated object" : "unterminated array");
					if (p->s[p->pos] == close)
					{
						p->pos++;
						return true;
					}
					if (p->s[p->pos] != ',')
						return fail(p, "expected ',' between values");
					p->pos++;
				}
			}
		default:
			return parse_number(p, &num);
	}
}

/* See json.h. */
bool
cl_json_split(const char *text, size_t len, cl_json_part *parts, int maxparts,
			  int *nparts, const char **err)
{
	json_parser p;

	*nparts = 0;
	p.s = (const unsigned char *) text;
	p.len = len;
	p.pos = 0;
	p.err = NULL;
	skip_ws(&p);
	if (p.pos >= p.len || p.s[p.pos] != '{')
	{
		fail(&p, "expected a JSON object");
		goto error;
	}
	p.pos++;
	skip_ws(&p);
	if (p.pos < p.len && p.s[p.pos] == '}')
		p.pos++;
	else
	{
		for (;;)
		{
			cl_json_part *m;
			char	   *key;
			size_t		keylen;

			skip_ws(&p);
			if (*nparts >= maxparts)
			{
				fail(&p, "object has too many members");
				goto error;
			}
			m = &parts[*nparts];
			if (!parse_string(&p, &key, &keylen))
				goto error;
			if (strlen(key) != keylen || keylen >= sizeof(m->key))
			{
				free(key);
				fail(&p, "a key contains U+0000 or is too long");
				goto error;
			}
			memcpy(m->key, key, keylen + 1);
			free(key);
			for (int i = 0; i < *nparts; i++)
			{
				if (strcmp(parts[i].key, m->key) == 0)
				{
					fail(&p, "duplicate key");
					goto error;
				}
			}
			(*nparts)++;
			skip_ws(&p);
			if (p.pos >= p.len || p.s[p.pos] != ':')
			{
				fail(&p, "expected ':' after key");
				goto error;
			}
			p.pos++;
			skip_ws(&p);
			m->value = text + p.pos;
			if (!skip_value(&p, 4))
				goto error;
			m->valuelen = p.pos - (size_t) (m->value - text);
			skip_ws(&p);
			if (p.pos >= p.len)
			{
				fail(&p, "unterminated object");
				goto error;
			}
			if (p.s[p.pos] == '}')
			{
				p.pos++;
				break;
			}
			if (p.s[p.pos] != ',')
			{
				fail(&p, "expected ',' or '}' in object");
				goto error;
			}
			p.pos++;
		}
	}
	skip_ws(&p);
	if (p.pos != p.len)
	{
		fail(&p, "trailing bytes after the object");
		goto error;
	}
	return true;

error:
	*err = p.err ? p.err : "invalid JSON";
	return false;
}
