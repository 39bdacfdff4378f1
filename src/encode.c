/*-------------------------------------------------------------------------
 * encode.c
 *	  The canonical encoding of a ledger row: the bytes its leaf hash
 *	  covers.  README.md "Canonical row encoding" is the specification;
 *	  this file is its implementation.
 *
 * The encoding depends only on the row's values: not on the physical
 * tuple (TOAST, compression, column order after dropped columns), not on
 * session settings (DateStyle, TimeZone, IntervalStyle,
 * extra_float_digits, bytea_output, client_encoding, lc_*), and not on
 * OIDs, so it survives pg_dump/pg_restore.  Columns are identified by
 * name and sorted bytewise; NULL columns are omitted, which is what lets
 * a nullable column be added to a ledger without changing old rows.
 *
 * Each ledger has an encoding version (consent_ledger.ledgers.encoding)
 * and every encoder is built for one version; both stay verifiable.
 * Version 2 differs from version 1 in: text-like types (varchar, bpchar,
 * types whose send function is text's: citext) are 't' and converted by
 * this file, never by a send function; "char" has its own tag 'C';
 * types that share a storage format but not a meaning have their own tags
 * (timestamptz 'Z' beside timestamp 'T', json 'J' and xml 'X' beside the
 * string family's 't'), so a catalog edit of a column's type between them
 * changes the bytes; multiranges are encoded as their ranges ('m'), not
 * by their send function, so their bounds carry their subtype's tag;
 * send functions run with the client encoding forced to UTF8 (version 1:
 * forced to the database encoding, which is what it wrote in the normal
 * case); composites carry their attribute names, sorted, NULLs omitted;
 * stored generated columns are encoded.
 *
 * Encoders are built once per table descriptor and reused for every row
 * (the trigger keeps one per relation in fn_extra; verify builds one per
 * scan), so the per-row cost is the value conversions and one append.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/multirangetypes.h"
#include "utils/rangetypes.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "consent_ledger.h"
#include "sha256.h"

typedef enum ValueKind
{
	VK_BOOL,
	VK_INT,						/* int2, int4, int8 */
	VK_FLOAT,					/* float4, float8 */
	VK_NUMERIC,
	VK_TEXT,					/* any type whose binary form is its text */
	VK_NAME,
	VK_CHAR,
	VK_BYTEA,
	VK_TIMESTAMP,				/* timestamp and timestamptz (tag: see get_codec) */
	VK_DATE,
	VK_TIME,
	VK_TIMETZ,
	VK_INTERVAL,
	VK_UUID,
	VK_JSONB,
	VK_ENUM,
	VK_ARRAY,
	VK_COMPOSITE,
	VK_RANGE,
	VK_MULTIRANGE,				/* version 2 (version 1: VK_SEND) */
	VK_SEND,					/* other types: binary send function (send
								 * encoding: see send_value) */
	VK_OUT						/* other types without send: output text */
} ValueKind;

typedef struct TypeCodec
{
	Oid			typid;			/* after stripping domains */
	ValueKind	kind;
	uint8		tag;			/* VK_TEXT, VK_TIMESTAMP: the value tag */
	int16		typlen;
	bool		typbyval;
	char		typalign;
	FmgrInfo	fn;				/* VK_SEND / VK_OUT / VK_NUMERIC */
	struct TypeCodec *elem;		/* VK_ARRAY: element; VK_RANGE: subtype;
								 * VK_MULTIRANGE: its range type */
	TypeCacheEntry *range;		/* VK_RANGE; VK_MULTIRANGE: the multirange's */
	Oid			elemtype;		/* VK_ARRAY */
} TypeCodec;

typedef struct ColumnCodec
{
	AttrNumber	attnum;
	char	   *name;			/* UTF-8 */
	int			namelen;
	TypeCodec  *codec;
	bool		personal;		/* version 3: committed through a salted hash */
} ColumnCodec;

struct ClRowEncoder
{
	int			version;		/* CL_ENCODING_V1 or CL_ENCODING_V2 */
	MemoryContext mcxt;
	MemoryContext rowcxt;		/* a row's temporary allocations (detoasted
								 * values, send results, deserialized
								 * ranges, converted names): reset after
								 * every row */
	TupleDesc	desc;			/* the descriptor it was built for */
	TupleDesc	copy;			/* a private copy, for cl_encoder_matches */
	int			ncols;
	ColumnCodec *cols;
	List	   *codecs;			/* every TypeCodec, for reuse by type */
	Datum	   *values;
	bool	   *nulls;
	/* version 3 (README "Erasure"): the salt column, and a salt's buffer */
	AttrNumber	salt_attnum;
	int			npersonal;
	bytea	   *saltbuf;
	uint8	   *saltpool;		/* random bytes for the next salts */
	int			saltpos;		/* bytes of saltpool used */
	StringInfoData valbuf;		/* a personal value's encoding, hashed */
};

/*
 * Salts are taken from a pool refilled by one randombytes_buf() call per
 * SALT_POOL_SALTS rows: the call is a getrandom() system call, which cost
 * more than the rest of a row's commitments together (README
 * "Performance").  Used bytes are wiped.
 */
#define SALT_POOL_SALTS 128
#define SALT_POOL_BYTES (SALT_POOL_SALTS * CL_SALT_LEN)

/* Value tags: one byte before every value (README table). */
#define TAG_NULL		'0'
#define TAG_BOOL		'b'
#define TAG_INT			'i'
#define TAG_FLOAT		'f'
#define TAG_NUMERIC		'n'
#define TAG_TEXT		't'		/* version 1: json and xml too */
#define TAG_JSON		'J'		/* version 2 */
#define TAG_XML			'X'		/* version 2 */
#define TAG_CHAR		'C'		/* version 2 */
#define TAG_BYTEA		'x'
#define TAG_TIMESTAMP	'T'		/* version 1: timestamptz too */
#define TAG_TIMESTAMPTZ	'Z'		/* version 2 */
#define TAG_DATE		'D'
#define TAG_TIME		'h'
#define TAG_TIMETZ		'z'
#define TAG_INTERVAL	'v'
#define TAG_UUID		'u'
#define TAG_JSONB		'j'
#define TAG_ARRAY		'a'
#define TAG_COMPOSITE	'c'
#define TAG_RANGE		'r'
#define TAG_MULTIRANGE	'm'		/* version 2 */
#define TAG_SEND		's'
#define TAG_OUT			'o'
#define TAG_COMMITMENT	'H'		/* version 3: a personal column's commitment */

static TypeCodec *get_codec(ClRowEncoder *enc, Oid typid);
static void encode_value(ClRowEncoder *enc, TypeCodec *c, Datum v, StringInfo out);
static bytea *send_value(ClRowEncoder *enc, TypeCodec *c, Datum v);
static void encode_composite_v2(ClRowEncoder *enc, Datum v, StringInfo out);
static void commit_value(ClRowEncoder *enc, ColumnCodec *col, Datum v,
						 const uint8 *salt, size_t saltlen, uint8 out[CL_SHA256_LEN]);
static bool erased_commitment(ColumnCodec *col, const uint8 *rec, size_t len,
							  uint8 out[CL_SHA256_LEN]);

static inline void
put_u8(StringInfo out, uint8 v)
{
	appendStringInfoCharMacro(out, (char) v);
}

/*
 * appendBinaryStringInfo() without its two calls when the bytes fit, as
 * they mostly do (the buffer is reused row after row): a bulk load
 * encodes a dozen fields a row.
 */
static inline void
put_raw(StringInfo out, const char *p, int len)
{
	if (likely(len < out->maxlen - out->len))
	{
		memcpy(out->data + out->len, p, len);
		out->len += len;
		out->data[out->len] = '\0';
	}
	else
		appendBinaryStringInfo(out, p, len);
}

static inline void
put_u16(StringInfo out, uint16 v)
{
	char		b[2] = {(char) (v >> 8), (char) v};

	put_raw(out, b, 2);
}

static inline void
put_u32(StringInfo out, uint32 v)
{
	char		b[4] = {(char) (v >> 24), (char) (v >> 16), (char) (v >> 8), (char) v};

	put_raw(out, b, 4);
}

static inline void
put_u64(StringInfo out, uint64 v)
{
	put_u32(out, (uint32) (v >> 32));
	put_u32(out, (uint32) v);
}

static inline void
put_bytes(StringInfo out, const char *p, size_t len)
{
	if (len > (size_t) PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value too large for the canonical row encoding")));
	put_u32(out, (uint32) len);
	put_raw(out, p, (int) len);
}

/* Text in the database encoding, written as UTF-8 with a length. */
static void
put_server_text(StringInfo out, const char *s, int len)
{
	char	   *u = pg_server_to_any(s, len, PG_UTF8);

	if (u == s)
		put_bytes(out, s, len);
	else
	{
		put_bytes(out, u, strlen(u));
		pfree(u);
	}
}

/*
 * Whether a send function is text's, declared by an extension as
 * LANGUAGE internal AS 'textsend' (citext's citextsend: its values are
 * text's).  Only a superuser creates an internal-language function.
 */
static bool
is_internal_textsend(Oid fn)
{
	HeapTuple	tup;
	bool		result = false;

	if (!OidIsValid(fn))
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		return false;
	if (((Form_pg_proc) GETSTRUCT(tup))->prolang == INTERNALlanguageId)
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);

		if (!isnull)
		{
			char	   *name = TextDatumGetCString(src);

			result = strcmp(name, "textsend") == 0;
			pfree(name);
		}
	}
	ReleaseSysCache(tup);
	return result;
}

/*
 * Classifies a type.  Built-in types with a settings-independent value
 * get a fixed binary form; containers recurse; anything else falls back
 * to its binary send function (which for the remaining built-in types is
 * independent of settings and OIDs), or to its output function.
 */
static TypeCodec *
get_codec(ClRowEncoder *enc, Oid typid)
{
	ListCell   *lc;
	TypeCodec  *c;
	HeapTuple	tup;
	Form_pg_type typ;
	Oid			base;
	int32		typmod = -1;
	MemoryContext old;

	base = getBaseTypeAndTypmod(typid, &typmod);
	foreach(lc, enc->codecs)
	{
		c = lfirst(lc);
		if (c->typid == base)
			return c;
	}

	old = MemoryContextSwitchTo(enc->mcxt);
	c = palloc0(sizeof(TypeCodec));
	c->typid = base;
	enc->codecs = lappend(enc->codecs, c);

	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(base));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", base);
	typ = (Form_pg_type) GETSTRUCT(tup);
	c->typlen = typ->typlen;
	c->typbyval = typ->typbyval;
	c->typalign = typ->typalign;

	switch (base)
	{
		case BOOLOID:
			c->kind = VK_BOOL;
			break;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			c->kind = VK_INT;
			break;
		case FLOAT4OID:
		case FLOAT8OID:
			c->kind = VK_FLOAT;
			break;
		case NUMERICOID:
			c->kind = VK_NUMERIC;
			break;
		case NAMEOID:
			c->kind = VK_NAME;
			break;
		case CHAROID:
			c->kind = VK_CHAR;
			break;
		case BYTEAOID:
			c->kind = VK_BYTEA;
			break;
		case TIMESTAMPOID:
			c->kind = VK_TIMESTAMP;
			c->tag = TAG_TIMESTAMP;
			break;
		case TIMESTAMPTZOID:
			c->kind = VK_TIMESTAMP;
			c->tag = enc->version >= CL_ENCODING_V2 ? TAG_TIMESTAMPTZ : TAG_TIMESTAMP;
			break;
		case DATEOID:
			c->kind = VK_DATE;
			break;
		case TIMEOID:
			c->kind = VK_TIME;
			break;
		case TIMETZOID:
			c->kind = VK_TIMETZ;
			break;
		case INTERVALOID:
			c->kind = VK_INTERVAL;
			break;
		case UUIDOID:
			c->kind = VK_UUID;
			break;
		case JSONBOID:
			c->kind = VK_JSONB;
			break;
		default:
			if (typ->typtype == TYPTYPE_ENUM)
				c->kind = VK_ENUM;
			else if (typ->typtype == TYPTYPE_COMPOSITE)
				c->kind = VK_COMPOSITE;
			else if (typ->typtype == TYPTYPE_RANGE)
				c->kind = VK_RANGE;
			else if (typ->typtype == TYPTYPE_MULTIRANGE && enc->version >= CL_ENCODING_V2)
				c->kind = VK_MULTIRANGE;
			else if (OidIsValid(typ->typelem) && typ->typlen == -1 &&
					 typ->typsubscript == F_ARRAY_SUBSCRIPT_HANDLER)
			{
				c->kind = VK_ARRAY;
				c->elemtype = typ->typelem;
			}
			else if (typ->typsend == F_TEXTSEND || typ->typoutput == F_TEXTOUT ||
					 base == XMLOID || base == JSONOID)
			{
				/* text, json, xml: in version 2, json and xml have their own tags */
				c->kind = VK_TEXT;
				c->tag = TAG_TEXT;
				if (enc->version >= CL_ENCODING_V2 && base == JSONOID)
					c->tag = TAG_JSON;
				else if (enc->version >= CL_ENCODING_V2 && base == XMLOID)
					c->tag = TAG_XML;
			}
			else if (enc->version >= CL_ENCODING_V2 &&
					 (base == BPCHAROID || base == VARCHAROID ||
					  is_internal_textsend(typ->typsend)))
			{
				/*
				 * the string family: bpchar, varchar, and types whose send
				 * function is text's own C function (citext).  Decided by the
				 * type's own definition, never by pg_cast: a later CREATE
				 * CAST ... WITHOUT FUNCTION must not change stored rows' tags.
				 */
				c->kind = VK_TEXT;
				c->tag = TAG_TEXT;
			}
			else if (OidIsValid(typ->typsend))
			{
				c->kind = VK_SEND;
				fmgr_info_cxt(typ->typsend, &c->fn, enc->mcxt);
			}
			else
			{
				c->kind = VK_OUT;
				fmgr_info_cxt(typ->typoutput, &c->fn, enc->mcxt);
			}
			break;
	}
	ReleaseSysCache(tup);

	if (c->kind == VK_ARRAY)
		c->elem = get_codec(enc, c->elemtype);
	else if (c->kind == VK_RANGE)
	{
		c->range = lookup_type_cache(base, TYPECACHE_RANGE_INFO);
		c->elem = get_codec(enc, c->range->rngelemtype->type_id);
	}
	else if (c->kind == VK_MULTIRANGE)
	{
		c->range = lookup_type_cache(base, TYPECACHE_MULTIRANGE_INFO);
		c->elem = get_codec(enc, c->range->rngtype->type_id);
	}
	MemoryContextSwitchTo(old);
	return c;
}

static void
encode_array(ClRowEncoder *enc, TypeCodec *c, Datum v, StringInfo out)
{
	ArrayType  *arr = DatumGetArrayTypeP(v);
	int			ndim = ARR_NDIM(arr);
	int		   *dims = ARR_DIMS(arr);
	int		   *lbs = ARR_LBOUND(arr);
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	put_u8(out, TAG_ARRAY);
	put_u32(out, (uint32) ndim);
	for (int i = 0; i < ndim; i++)
	{
		put_u32(out, (uint32) dims[i]);
		put_u32(out, (uint32) lbs[i]);
	}
	deconstruct_array(arr, c->elemtype, c->elem->typlen, c->elem->typbyval,
					  c->elem->typalign, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			put_u8(out, TAG_NULL);
		else
			encode_value(enc, c->elem, elems[i], out);
	}
	pfree(elems);
	pfree(nulls);
}

/*
 * Deforms a composite value: returns its row type's descriptor (release
 * it with ReleaseTupleDesc) and palloc'd values and nulls.
 */
static TupleDesc
deform_composite(Datum v, Datum **values, bool **nulls)
{
	HeapTupleHeader th = DatumGetHeapTupleHeader(v);
	TupleDesc	desc;
	HeapTupleData tuple;

	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(th),
								  HeapTupleHeaderGetTypMod(th));
	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	*values = palloc(Max(desc->natts, 1) * sizeof(Datum));
	*nulls = palloc(Max(desc->natts, 1) * sizeof(bool));
	heap_deform_tuple(&tuple, desc, *values, *nulls);
	return desc;
}

/* Bytewise order of UTF-8 names (columns, composite attributes). */
static int
name_cmp(const char *a, int alen, const char *b, int blen)
{
	int			r = memcmp(a, b, Min(alen, blen));

	if (r != 0)
		return r;
	return (alen > blen) - (alen < blen);
}

static void
encode_composite(ClRowEncoder *enc, Datum v, StringInfo out)
{
	Datum	   *values;
	bool	   *nulls;
	TupleDesc	desc = deform_composite(v, &values, &nulls);
	int			live = 0;

	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			live++;
	put_u8(out, TAG_COMPOSITE);
	put_u16(out, (uint16) live);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (nulls[i])
			put_u8(out, TAG_NULL);
		else
			encode_value(enc, get_codec(enc, att->atttypid), values[i], out);
	}
	ReleaseTupleDesc(desc);
	pfree(values);
	pfree(nulls);
}

typedef struct NamedAttr
{
	int			index;			/* in the composite's descriptor */
	char	   *name;			/* UTF-8 */
	int			namelen;
} NamedAttr;

static int
named_attr_cmp(const void *a, const void *b)
{
	const NamedAttr *x = a;
	const NamedAttr *y = b;

	return name_cmp(x->name, x->namelen, y->name, y->namelen);
}

/*
 * Version 2: a composite encodes like a row, so that its attributes are
 * bound by name: u16 number of non-NULL attributes, then in the bytewise
 * order of their UTF-8 names, each name length (u16), name and value.
 * Renaming an attribute changes the bytes; adding one (NULL in old
 * values) does not.
 */
static void
encode_composite_v2(ClRowEncoder *enc, Datum v, StringInfo out)
{
	Datum	   *values;
	bool	   *nulls;
	TupleDesc	desc = deform_composite(v, &values, &nulls);
	NamedAttr  *attrs = palloc(Max(desc->natts, 1) * sizeof(NamedAttr));
	int			n = 0;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);

		if (att->attisdropped || nulls[i])
			continue;
		attrs[n].index = i;
		attrs[n].name = pg_server_to_any(name, strlen(name), PG_UTF8);
		attrs[n].namelen = strlen(attrs[n].name);
		n++;
	}
	qsort(attrs, n, sizeof(NamedAttr), named_attr_cmp);
	put_u8(out, TAG_COMPOSITE);
	put_u16(out, (uint16) n);
	for (int k = 0; k < n; k++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, attrs[k].index);

		put_u16(out, (uint16) attrs[k].namelen);
		appendBinaryStringInfo(out, attrs[k].name, attrs[k].namelen);
		encode_value(enc, get_codec(enc, att->atttypid), values[attrs[k].index], out);
	}
	ReleaseTupleDesc(desc);
	pfree(values);
	pfree(nulls);
	pfree(attrs);
}

/*
 * A value's binary send form, independent of the session's
 * client_encoding: send functions that embed strings (varchar and bpchar
 * in version 1, hstore, tsvector, ...) convert them to the client
 * encoding, so the client encoding is switched for the call -- to UTF8 in
 * version 2, to the database encoding in version 1 (what version 1 wrote
 * in a session whose client encoding was the database's).  A NOTICE or
 * WARNING a send function raises during the call reaches the client
 * converted to the swapped encoding, not the session's: accepted (the
 * built-in send functions raise none; the message text may then show
 * wrong characters, the row's bytes are unaffected).
 */
static bytea *
send_value(ClRowEncoder *enc, TypeCodec *c, Datum v)
{
	int			target = enc->version >= CL_ENCODING_V2 ? PG_UTF8 : GetDatabaseEncoding();
	int			current = pg_get_client_encoding();
	bytea	   *volatile b = NULL;

	if (current == target)
		return SendFunctionCall(&c->fn, v);
	/* the conversion is prepared once and then found in mbutils' list */
	if (SetClientEncoding(target) < 0 &&
		(PrepareClientEncoding(target) < 0 || SetClientEncoding(target) < 0))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("no conversion from %s to %s for the canonical row encoding",
						GetDatabaseEncodingName(), pg_encoding_to_char(target)),
				 errhint("Create the default conversion between these encodings.")));
	PG_TRY();
	{
		b = SendFunctionCall(&c->fn, v);
	}
	PG_FINALLY();
	{
		if (SetClientEncoding(current) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not restore client_encoding %s",
							pg_encoding_to_char(current))));
	}
	PG_END_TRY();
	return b;
}

static void
encode_range(ClRowEncoder *enc, TypeCodec *c, Datum v, StringInfo out)
{
	RangeType  *r = DatumGetRangeTypeP(v);
	RangeBound	lower;
	RangeBound	upper;
	bool		empty;
	uint8		flags = 0;

	range_deserialize(c->range, r, &lower, &upper, &empty);
	if (empty)
		flags |= 0x01;
	if (lower.infinite)
		flags |= 0x02;
	if (upper.infinite)
		flags |= 0x04;
	if (lower.inclusive)
		flags |= 0x08;
	if (upper.inclusive)
		flags |= 0x10;
	put_u8(out, TAG_RANGE);
	put_u8(out, flags);
	if (!empty && !lower.infinite)
		encode_value(enc, c->elem, lower.val, out);
	if (!empty && !upper.infinite)
		encode_value(enc, c->elem, upper.val, out);
}

/*
 * Version 2: a multirange as its ranges, in their (normalized, sorted)
 * order: u32 count, then each range as a value (tag r).
 */
static void
encode_multirange(ClRowEncoder *enc, TypeCodec *c, Datum v, StringInfo out)
{
	MultirangeType *mr = DatumGetMultirangeTypeP(v);
	int32		count;
	RangeType **ranges;

	multirange_deserialize(c->range->rngtype, mr, &count, &ranges);
	put_u8(out, TAG_MULTIRANGE);
	put_u32(out, (uint32) count);
	for (int32 i = 0; i < count; i++)
		encode_value(enc, c->elem, RangeTypePGetDatum(ranges[i]), out);
}

static void
encode_value(ClRowEncoder *enc, TypeCodec *c, Datum v, StringInfo out)
{
	check_stack_depth();

	switch (c->kind)
	{
		case VK_BOOL:
			put_u8(out, TAG_BOOL);
			put_u8(out, DatumGetBool(v) ? 1 : 0);
			break;
		case VK_INT:
			{
				int64		i;

				if (c->typid == INT2OID)
					i = DatumGetInt16(v);
				else if (c->typid == INT4OID)
					i = DatumGetInt32(v);
				else
					i = DatumGetInt64(v);
				put_u8(out, TAG_INT);
				put_u64(out, (uint64) i);
				break;
			}
		case VK_FLOAT:
			{
				double		d;
				uint64		bits;

				d = (c->typid == FLOAT4OID) ? (double) DatumGetFloat4(v) : DatumGetFloat8(v);
				if (isnan(d))
					bits = UINT64CONST(0x7ff8000000000000);
				else
					memcpy(&bits, &d, sizeof(bits));
				put_u8(out, TAG_FLOAT);
				put_u64(out, bits);
				break;
			}
		case VK_NUMERIC:
			{
				char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, v));

				put_u8(out, TAG_NUMERIC);
				put_bytes(out, s, strlen(s));
				pfree(s);
				break;
			}
		case VK_TEXT:
			{
				text	   *t = DatumGetTextPP(v);

				put_u8(out, c->tag);
				put_server_text(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				if ((Pointer) t != DatumGetPointer(v))
					pfree(t);
				break;
			}
		case VK_NAME:
			{
				const char *s = NameStr(*DatumGetName(v));

				put_u8(out, TAG_TEXT);
				put_server_text(out, s, strlen(s));
				break;
			}
		case VK_CHAR:
			{
				char		ch = DatumGetChar(v);

				if (enc->version >= CL_ENCODING_V2)
				{
					/* the stored byte as it is; the empty "char" is 0 */
					put_u8(out, TAG_CHAR);
					put_u8(out, (uint8) ch);
					break;
				}
				put_u8(out, TAG_TEXT);
				put_bytes(out, &ch, ch == '\0' ? 0 : 1);
				break;
			}
		case VK_BYTEA:
			{
				bytea	   *b = DatumGetByteaPP(v);

				put_u8(out, TAG_BYTEA);
				put_bytes(out, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
				if ((Pointer) b != DatumGetPointer(v))
					pfree(b);
				break;
			}
		case VK_TIMESTAMP:
			put_u8(out, c->tag);
			put_u64(out, (uint64) DatumGetInt64(v));
			break;
		case VK_DATE:
			put_u8(out, TAG_DATE);
			put_u32(out, (uint32) DatumGetDateADT(v));
			break;
		case VK_TIME:
			put_u8(out, TAG_TIME);
			put_u64(out, (uint64) DatumGetTimeADT(v));
			break;
		case VK_TIMETZ:
			{
				TimeTzADT  *t = DatumGetTimeTzADTP(v);

				put_u8(out, TAG_TIMETZ);
				put_u64(out, (uint64) t->time);
				put_u32(out, (uint32) t->zone);
				break;
			}
		case VK_INTERVAL:
			{
				Interval   *iv = DatumGetIntervalP(v);

				put_u8(out, TAG_INTERVAL);
				put_u64(out, (uint64) iv->time);
				put_u32(out, (uint32) iv->day);
				put_u32(out, (uint32) iv->month);
				break;
			}
		case VK_UUID:
			put_u8(out, TAG_UUID);
			appendBinaryStringInfo(out, (char *) DatumGetUUIDP(v)->data, UUID_LEN);
			break;
		case VK_JSONB:
			{
				Jsonb	   *jb = DatumGetJsonbP(v);
				char	   *s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

				put_u8(out, TAG_JSONB);
				put_server_text(out, s, strlen(s));
				pfree(s);
				break;
			}
		case VK_ENUM:
			{
				HeapTuple	tup = SearchSysCache1(ENUMOID, v);
				const char *label;

				if (!HeapTupleIsValid(tup))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
							 errmsg("invalid internal value for enum: %u",
									DatumGetObjectId(v))));
				label = NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel);
				put_u8(out, TAG_TEXT);
				put_server_text(out, label, strlen(label));
				ReleaseSysCache(tup);
				break;
			}
		case VK_ARRAY:
			encode_array(enc, c, v, out);
			break;
		case VK_COMPOSITE:
			if (enc->version >= CL_ENCODING_V2)
				encode_composite_v2(enc, v, out);
			else
				encode_composite(enc, v, out);
			break;
		case VK_RANGE:
			encode_range(enc, c, v, out);
			break;
		case VK_MULTIRANGE:
			encode_multirange(enc, c, v, out);
			break;
		case VK_SEND:
			{
				bytea	   *b = send_value(enc, c, v);

				put_u8(out, TAG_SEND);
				put_bytes(out, VARDATA(b), VARSIZE(b) - VARHDRSZ);
				pfree(b);
				break;
			}
		case VK_OUT:
			{
				char	   *s = OutputFunctionCall(&c->fn, v);

				put_u8(out, TAG_OUT);
				put_server_text(out, s, strlen(s));
				pfree(s);
				break;
			}
	}
}

static int
column_cmp(const void *a, const void *b)
{
	const ColumnCodec *x = a;
	const ColumnCodec *y = b;

	return name_cmp(x->name, x->namelen, y->name, y->namelen);
}

/*
 * Builds an encoder for rows of desc in encoding version (a ledger's
 * ledgers.encoding), in mcxt.  Dropped columns and the ledger's own stamp
 * columns are not encoded, nor, in version 1, generated columns.
 */
ClRowEncoder *
cl_encoder_create(TupleDesc desc, int version, MemoryContext mcxt)
{
	MemoryContext cxt;
	MemoryContext old;
	ClRowEncoder *enc;

	if (version != CL_ENCODING_V1 && version != CL_ENCODING_V2 &&
		version != CL_ENCODING_V3)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("canonical row encoding version %d is not supported", version),
				 errdetail("This build of consent_ledger knows versions %d, %d and %d.",
						   CL_ENCODING_V1, CL_ENCODING_V2, CL_ENCODING_V3),
				 errhint("Install the consent_ledger version that wrote the ledger, or correct consent_ledger.ledgers.encoding.")));
	cxt = AllocSetContextCreate(mcxt, "consent_ledger encoder", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	enc = palloc0(sizeof(ClRowEncoder));
	enc->version = version;
	enc->mcxt = cxt;
	enc->rowcxt = AllocSetContextCreate(cxt, "consent_ledger encoder row",
										ALLOCSET_DEFAULT_SIZES);
	enc->desc = desc;
	enc->copy = CreateTupleDescCopy(desc);
	enc->cols = palloc0(sizeof(ColumnCodec) * Max(desc->natts, 1));
	enc->values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	enc->nulls = palloc(sizeof(bool) * Max(desc->natts, 1));

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		ColumnCodec *col;
		char	   *u;

		if (att->attisdropped)
			continue;
		if (att->attgenerated != '\0' && version < CL_ENCODING_V2)
			continue;
		if (strcmp(name, CL_TXN_COLUMN) == 0 || strcmp(name, CL_ORD_COLUMN) == 0)
			continue;
		if (version >= CL_ENCODING_V3 && strcmp(name, CL_SALT_COLUMN) == 0)
		{
			enc->salt_attnum = att->attnum;
			continue;
		}
		col = &enc->cols[enc->ncols++];
		col->attnum = att->attnum;
		u = pg_server_to_any(name, strlen(name), PG_UTF8);
		col->name = pstrdup(u);
		col->namelen = strlen(u);
		col->codec = get_codec(enc, att->atttypid);
	}
	qsort(enc->cols, enc->ncols, sizeof(ColumnCodec), column_cmp);
	if (version >= CL_ENCODING_V3)
	{
		enc->saltbuf = palloc(VARHDRSZ + CL_SALT_LEN);
		SET_VARSIZE(enc->saltbuf, VARHDRSZ + CL_SALT_LEN);
		enc->saltpool = palloc(SALT_POOL_BYTES);
		enc->saltpos = SALT_POOL_BYTES;
		initStringInfo(&enc->valbuf);
	}
	MemoryContextSwitchTo(old);
	return enc;
}

/* The encoding version an encoder writes. */
int
cl_encoder_version(ClRowEncoder *enc)
{
	return enc->version;
}

/* Whether an encoder built earlier still fits desc (cheap when unchanged). */
bool
cl_encoder_matches(ClRowEncoder *enc, TupleDesc desc)
{
	if (enc->desc == desc)
		return true;
	if (!equalTupleDescs(enc->copy, desc))
		return false;
	enc->desc = desc;
	return true;
}

void
cl_encoder_free(ClRowEncoder *enc)
{
	MemoryContextDelete(enc->mcxt);
}

/*
 * Appends the canonical encoding of one row to out:
 *	version (1 byte) | txn (8) | ord (4) | column count (2) |
 *	per non-NULL column in name order: name length (2) | name | value
 */
void
cl_encode_row(ClRowEncoder *enc, HeapTuple tuple, int64 txn, int32 ord,
			  StringInfo out)
{
	heap_deform_tuple(tuple, enc->copy, enc->values, enc->nulls);
	cl_encode_values(enc, enc->values, enc->nulls, txn, ord, out);
}

/* The encoder's own arrays, sized for its descriptor (for callers that deform themselves). */
Datum *
cl_encoder_values(ClRowEncoder *enc)
{
	return enc->values;
}

bool *
cl_encoder_nulls(ClRowEncoder *enc)
{
	return enc->nulls;
}

/*
 * Appends the canonical encoding of a row given as deformed values.  The
 * value conversions allocate in the encoder's row context, which is reset
 * when the row is done, so a scan's memory does not grow with its rows
 * (out grows in its own context: repalloc keeps a chunk's context).  A
 * codec built on the way (a composite's attribute type) is made in the
 * encoder's own context by get_codec.
 */
void
cl_encode_values(ClRowEncoder *enc, Datum *values, bool *nulls, int64 txn,
				 int32 ord, StringInfo out)
{
	int			countpos;
	int			count = 0;
	MemoryContext old;
	const uint8 *salt = NULL;
	size_t		saltlen = 0;

	put_u8(out, (uint8) enc->version);
	put_u64(out, (uint64) txn);
	put_u32(out, (uint32) ord);
	countpos = out->len;
	put_u16(out, 0);
	old = MemoryContextSwitchTo(enc->rowcxt);
	if (enc->npersonal > 0 && !nulls[enc->salt_attnum - 1])
	{
		bytea	   *b = DatumGetByteaPP(values[enc->salt_attnum - 1]);

		salt = (const uint8 *) VARDATA_ANY(b);
		saltlen = VARSIZE_ANY_EXHDR(b);
	}
	for (int i = 0; i < enc->ncols; i++)
	{
		ColumnCodec *col = &enc->cols[i];
		int			idx = col->attnum - 1;
		uint8		commitment[CL_SHA256_LEN];

		if (col->personal)
		{
			/* version 3: the commitment, from the value or the erasure record */
			if (!nulls[idx])
				commit_value(enc, col, values[idx], salt, saltlen, commitment);
			else if (!erased_commitment(col, salt, saltlen, commitment))
				continue;
			put_u16(out, (uint16) col->namelen);
			put_raw(out, col->name, col->namelen);
			put_u8(out, TAG_COMMITMENT);
			put_raw(out, (char *) commitment, CL_SHA256_LEN);
			count++;
			continue;
		}
		if (nulls[idx])
			continue;
		put_u16(out, (uint16) col->namelen);
		put_raw(out, col->name, col->namelen);
		encode_value(enc, col->codec, values[idx], out);
		count++;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(enc->rowcxt);
	out->data[countpos] = (char) (count >> 8);
	out->data[countpos + 1] = (char) count;
}

/* ---------------------------------------------------------------------
 * Version 3: personal columns (README "Erasure")
 *
 * A personal column's value enters the leaf only as a commitment,
 *	SHA-256(0x02 || salt || namelen:u16 || name || value)
 * where salt is the row's 32 random bytes in ledger_salt (filled by the
 * stamp) and value the column's value as version 2 encodes it.  Erasure
 * replaces the values by NULL and ledger_salt by an erasure record
 *	'E' || n:u16 || n * (namelen:u16 || name || commitment:32)
 * holding the commitments of the values it removed, so the leaf is the
 * same bytes before and after: the salt, which made a value guessable
 * from its commitment only with it, is gone with the value.  A live salt
 * is exactly 32 bytes; an erasure record never is (3 bytes at least, 37
 * with one entry).
 * --------------------------------------------------------------------- */

static void
commit_value(ClRowEncoder *enc, ColumnCodec *col, Datum v, const uint8 *salt,
			 size_t saltlen, uint8 out[CL_SHA256_LEN])
{
	static const uint8 prefix_live = 0x02;
	static const uint8 prefix_bad = 0x03;
	bool		live = salt != NULL && saltlen == CL_SALT_LEN;
	uint8		sl[4] = {(uint8) (saltlen >> 24), (uint8) (saltlen >> 16),
						 (uint8) (saltlen >> 8), (uint8) saltlen};
	uint8		nl[2] = {(uint8) (col->namelen >> 8), (uint8) col->namelen};
	cl_sha256_part parts[6];
	int			n = 0;

	resetStringInfo(&enc->valbuf);
	encode_value(enc, col->codec, v, &enc->valbuf);

	/*
	 * A value sits next to a live salt, exactly 32 bytes.  Anything else is
	 * tampering (an erasure record with a value put back, a salt grown by
	 * bytes taken from the front of the value: the salt has no length of
	 * its own in the commitment), hashed under another prefix with its
	 * length, so that it never gives a live commitment (attack review R2).
	 */
	parts[n].data = live ? &prefix_live : &prefix_bad;
	parts[n++].len = 1;
	if (!live)
	{
		parts[n].data = sl;
		parts[n++].len = 4;
	}
	parts[n].data = salt;
	parts[n++].len = salt != NULL ? saltlen : 0;
	parts[n].data = nl;
	parts[n++].len = 2;
	parts[n].data = col->name;
	parts[n++].len = col->namelen;
	parts[n].data = enc->valbuf.data;
	parts[n++].len = enc->valbuf.len;
	cl_sha256_parts(parts, n, out);
	if (enc->valbuf.maxlen > 1024 * 1024)
	{
		MemoryContext old = MemoryContextSwitchTo(enc->mcxt);

		pfree(enc->valbuf.data);
		initStringInfo(&enc->valbuf);
		MemoryContextSwitchTo(old);
	}
}

/* Whether rec (len bytes) is an erasure record (well formed or not). */
static bool
is_erasure_record(const uint8 *rec, size_t len)
{
	return rec != NULL && len != CL_SALT_LEN && len >= 1 && rec[0] == 'E';
}

/*
 * The commitment an erasure record holds for col; false when the record
 * is none, malformed, or has no entry for it (the value was NULL).
 */
static bool
erased_commitment(ColumnCodec *col, const uint8 *rec, size_t len,
				  uint8 out[CL_SHA256_LEN])
{
	size_t		pos = 3;
	int			n;

	if (!is_erasure_record(rec, len) || len < 3)
		return false;
	n = (rec[1] << 8) | rec[2];
	for (int i = 0; i < n; i++)
	{
		size_t		nl;

		if (len - pos < 2)
			return false;
		nl = (rec[pos] << 8) | rec[pos + 1];
		pos += 2;
		if (len - pos < nl + CL_SHA256_LEN)
			return false;
		if (nl == (size_t) col->namelen && memcmp(rec + pos, col->name, nl) == 0)
		{
			memcpy(out, rec + pos + nl, CL_SHA256_LEN);
			return true;
		}
		pos += nl + CL_SHA256_LEN;
	}
	return false;
}

/*
 * Marks the personal columns (names in the database encoding) of a
 * version 3 encoder.  A name no column has is ignored: a row that had a
 * value there no longer encodes as it did, which verify() reports.
 */
void
cl_encoder_set_personal(ClRowEncoder *enc, List *names)
{
	ListCell   *lc;

	if (enc->version < CL_ENCODING_V3)
		return;
	foreach(lc, names)
	{
		const char *name = lfirst(lc);

		for (int i = 0; i < enc->ncols; i++)
		{
			Form_pg_attribute att = TupleDescAttr(enc->copy, enc->cols[i].attnum - 1);

			if (!enc->cols[i].personal && strcmp(NameStr(att->attname), name) == 0)
			{
				enc->cols[i].personal = true;
				enc->npersonal++;
			}
		}
	}
	if (enc->npersonal > 0 && enc->salt_attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ledger table with personal columns has no column \"%s\"", CL_SALT_COLUMN),
				 errhint("The table was changed behind the extension's back; verify() reports its rows.")));
}

/* An encoder for a ledger's rows: its version, and in version 3 its personal columns. */
ClRowEncoder *
cl_ledger_encoder(ClLedgerInfo *info, TupleDesc desc, MemoryContext mcxt)
{
	ClRowEncoder *enc = cl_encoder_create(desc, info->encoding, mcxt);

	if (info->encoding >= CL_ENCODING_V3)
		cl_encoder_set_personal(enc, cl_ledger_personal(info->ledger_id, NULL));
	return enc;
}

/*
 * The stamp's part (one call, whatever the stamping path): gives a
 * version 3 row with personal columns a fresh random salt, overwriting
 * whatever the inserter supplied.  The datum points into the encoder and
 * is valid until the next call; the caller forms the tuple from it.
 */
void
cl_encoder_fill_salt(ClRowEncoder *enc, Datum *values, bool *nulls)
{
	if (enc->npersonal == 0)
		return;
	if (enc->saltpos == SALT_POOL_BYTES)
	{
		randombytes_buf(enc->saltpool, SALT_POOL_BYTES);
		enc->saltpos = 0;
	}
	memcpy(VARDATA(enc->saltbuf), enc->saltpool + enc->saltpos, CL_SALT_LEN);
	sodium_memzero(enc->saltpool + enc->saltpos, CL_SALT_LEN);
	enc->saltpos += CL_SALT_LEN;
	values[enc->salt_attnum - 1] = PointerGetDatum(enc->saltbuf);
	nulls[enc->salt_attnum - 1] = false;
}

/* Whether a ledger_salt value is an erasure record (the row was erased). */
bool
cl_salt_is_erased(bytea *salt)
{
	return is_erasure_record((const uint8 *) VARDATA_ANY(salt), VARSIZE_ANY_EXHDR(salt));
}

/* The attribute number of the subject column named subject, or 0. */
static AttrNumber
find_column(ClRowEncoder *enc, const char *name)
{
	for (int i = 0; i < enc->copy->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(enc->copy, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

AttrNumber
cl_encoder_attnum(ClRowEncoder *enc, const char *name)
{
	return find_column(enc, name);
}

/*
 * Erases the personal values of one deformed row of a version 3 ledger:
 * sets them NULL and replaces the salt by the erasure record of their
 * commitments (palloc'd in the current memory context), so the row's
 * encoding is unchanged.  Returns false, changing nothing, when the row
 * is not erasable: no live salt (already erased, or no personal
 * columns), or no personal value to erase (cl_encoder_erasable).
 */
bool
cl_encoder_erasable(ClRowEncoder *enc, Datum *values, bool *nulls)
{
	/*
	 * The salt's own length, also when the toaster moved it out of line (a
	 * wide row, SET STORAGE): not the length of its TOAST pointer.
	 */
	if (enc->npersonal == 0 || nulls[enc->salt_attnum - 1] ||
		toast_raw_datum_size(values[enc->salt_attnum - 1]) != VARHDRSZ + CL_SALT_LEN)
		return false;
	for (int i = 0; i < enc->ncols; i++)
		if (enc->cols[i].personal && !nulls[enc->cols[i].attnum - 1])
			return true;
	return false;
}

bool
cl_encoder_redact(ClRowEncoder *enc, Datum *values, bool *nulls)
{
	bytea	   *salt;
	const uint8 *s;
	size_t		slen;
	StringInfoData rec;
	int			n = 0;
	bytea	   *result;

	if (!cl_encoder_erasable(enc, values, nulls))
		return false;
	salt = DatumGetByteaPP(values[enc->salt_attnum - 1]);
	s = (const uint8 *) VARDATA_ANY(salt);
	slen = VARSIZE_ANY_EXHDR(salt);
	if (slen != CL_SALT_LEN)
		return false;
	initStringInfo(&rec);
	put_u8(&rec, 'E');
	put_u16(&rec, 0);
	for (int i = 0; i < enc->ncols; i++)
	{
		ColumnCodec *col = &enc->cols[i];
		int			idx = col->attnum - 1;
		uint8		commitment[CL_SHA256_LEN];
		MemoryContext old;

		if (!col->personal || nulls[idx])
			continue;
		old = MemoryContextSwitchTo(enc->rowcxt);
		commit_value(enc, col, values[idx], s, slen, commitment);
		MemoryContextSwitchTo(old);
		MemoryContextReset(enc->rowcxt);
		put_u16(&rec, (uint16) col->namelen);
		appendBinaryStringInfo(&rec, col->name, col->namelen);
		appendBinaryStringInfo(&rec, (char *) commitment, CL_SHA256_LEN);
		nulls[idx] = true;
		values[idx] = (Datum) 0;
		n++;
	}
	rec.data[1] = (char) (n >> 8);
	rec.data[2] = (char) n;
	result = palloc(VARHDRSZ + rec.len);
	SET_VARSIZE(result, VARHDRSZ + rec.len);
	memcpy(VARDATA(result), rec.data, rec.len);
	pfree(rec.data);
	values[enc->salt_attnum - 1] = PointerGetDatum(result);
	return true;
}
