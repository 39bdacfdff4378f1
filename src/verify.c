/*-------------------------------------------------------------------------
 * verify.c
 *	  What auditors run: verify(), checkpoint(), verify_checkpoint(),
 *	  inclusion and consistency proofs, export() and leaf_data().
 *
 * Everything is recomputed from the rows themselves.  A ledger's state is
 * read under one snapshot (the statement's), so a sealing round that
 * moves records from "pending" to "log" is seen either wholly before or
 * wholly after.  The ledger table is read with a heap scan, not a query:
 * row-level security, rules and the caller's search_path play no part.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/varlena.h"
#include "utils/tuplesort.h"
#include "executor/tuptable.h"
#include "catalog/pg_operator_d.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_verify);
PG_FUNCTION_INFO_V1(cl_sql_checkpoint);
PG_FUNCTION_INFO_V1(cl_verify_checkpoint);
PG_FUNCTION_INFO_V1(cl_verify_checkpoint_detail);
PG_FUNCTION_INFO_V1(cl_verify_checkpoint_text);
PG_FUNCTION_INFO_V1(cl_verify_checkpoint_detail_text);
PG_FUNCTION_INFO_V1(cl_verify_checkpoint_quorum);
PG_FUNCTION_INFO_V1(cl_verify_checkpoint_quorum_text);
PG_FUNCTION_INFO_V1(cl_sql_ledger);
PG_FUNCTION_INFO_V1(cl_sql_inclusion_proof);
PG_FUNCTION_INFO_V1(cl_sql_consistency_proof);
PG_FUNCTION_INFO_V1(cl_export);
PG_FUNCTION_INFO_V1(cl_leaf_data);
PG_FUNCTION_INFO_V1(cl_public_key);
PG_FUNCTION_INFO_V1(cl_sql_key_id);
PG_FUNCTION_INFO_V1(cl_verifier_key);

#define MAX_SUSPECTS 64

/* A run of consecutive positions held by one pending or log record. */
typedef struct Chunk
{
	int64		txn;
	int64		first_ord;
	int64		n;
	uint64		first_pos;
	bool		pending;
	bool		own;			/* this transaction's, not yet in a pending record */
} Chunk;

typedef struct TxnEntry
{
	int64		txn;			/* hash key */
	int64		first_chunk;	/* index into chunks, chunks of a txn adjacent */
	int64		nchunks;
} TxnEntry;

typedef struct Checkpoint
{
	int64		seq;
	uint64		size;
	cl_hash		root;
	char	   *key_id;
	char	   *note;
} Checkpoint;

typedef struct Suspect
{
	uint64		pos;			/* where its stamp places it */
	HeapTuple	tuple;
} Suspect;

/*
 * What is known of a ledger's table.  A retired ledger's table may be
 * dropped (its log and checkpoints stay): it counts as dropped only when
 * no relation has its OID and consent_ledger.dropped_ledgers records the
 * drop.  While a relation has the OID its rows are rehashed whenever they
 * can be read; anything that does not fit -- stamp columns missing or of
 * another type, a recorded drop of a table that exists, a relation that
 * is not a table, an encoding version this library does not know -- is a
 * problem (valid = false), never a reason to trust the stored log instead
 * of the rows.
 */
typedef struct TableState
{
	bool		gone;			/* the ledger's table was dropped (relid NULL) */
	bool		locked;			/* AccessShareLock taken on the ledger's relid */
	bool		readable;		/* rows can be read and rehashed */
	AttrNumber	txn_attnum;
	AttrNumber	ord_attnum;
	char	   *problem;		/* NULL when nothing is wrong */
} TableState;

/* Everything known about one ledger under the current snapshot. */
typedef struct LedgerState
{
	ClLedgerInfo *info;
	Relation	rel;			/* NULL unless the rows can be read */
	bool		dropped;		/* the table was dropped (TableState.gone) */
	TableState	table;
	uint64		nsealed;		/* leaves in the log */
	uint64		npending;		/* leaves in pending records */
	cl_hash    *expected;		/* nsealed + npending hashes, log order then pending */
	Chunk	   *chunks;
	int64		nchunks;
	HTAB	   *txns;
	List	   *checkpoints;	/* Checkpoint *, seq order */
	/* results of the row scan */
	cl_hash    *actual;			/* recomputed, per position */
	bool	   *seen;
	uint64		first_problem;	/* position, or PG_UINT64_MAX */
	char	   *problem;
	int64		nproblems;
	Suspect		suspects[MAX_SUSPECTS];
	int			nsuspects;
} LedgerState;

static void
note_problem(LedgerState *st, uint64 pos, const char *fmt,...) pg_attribute_printf(3, 4);

static void
note_problem(LedgerState *st, uint64 pos, const char *fmt,...)
{
	va_list		args;
	StringInfoData buf;

	st->nproblems++;
	if (st->problem != NULL && pos >= st->first_problem)
		return;
	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	st->first_problem = pos;
	st->problem = buf.data;
}

static bool
encoding_known(int encoding)
{
	return encoding == CL_ENCODING_V1 || encoding == CL_ENCODING_V2 ||
		encoding == CL_ENCODING_V3;
}

static AttrNumber
stamp_column(Oid relid, const char *name, Oid type, char **problem)
{
	AttrNumber	attnum = get_attnum(relid, name);

	if (attnum <= 0)
	{
		if (*problem == NULL)
			*problem = psprintf("stamp column %s missing", name);
		return InvalidAttrNumber;
	}
	if (get_atttype(relid, attnum) != type)
	{
		if (*problem == NULL)
			*problem = psprintf("stamp column %s is not of type %s", name, format_type_be(type));
		return InvalidAttrNumber;
	}
	return attnum;
}

/*
 * The state of a ledger's table.  A ledger is dropped iff its relid in
 * consent_ledger.ledgers is NULL (set by the drop hook, catalog.c); its
 * drop must then be recorded in consent_ledger.dropped_ledgers and the
 * ledger retired.  A live ledger's table is locked (AccessShareLock)
 * before anything about it is read, so a concurrent DROP TABLE either
 * waits or has committed, and what is read here is what gets scanned.
 * A live ledger whose OID names no relation, or a relation that is not
 * its table, is a problem.
 */
static void
table_state(ClLedgerInfo *info, TableState *ts)
{
	bool		recorded = cl_ledger_was_dropped(info->ledger_id);
	char		relkind;

	memset(ts, 0, sizeof(*ts));
	if (!encoding_known(info->encoding))
		ts->problem = psprintf("unsupported encoding version %d", info->encoding);
	if (!OidIsValid(info->relid))
	{
		ts->gone = true;
		if (ts->problem == NULL && !recorded)
			ts->problem = pstrdup("the ledger has no table (relid is NULL in consent_ledger.ledgers), but no drop of its table is recorded in consent_ledger.dropped_ledgers");
		else if (ts->problem == NULL && !info->retired)
			ts->problem = pstrdup("the table was dropped, but the ledger was never retired");
		return;
	}
	LockRelationOid(info->relid, AccessShareLock);
	ts->locked = true;

	/*
	 * A DROP TABLE that held the lock has committed (and set relid to NULL)
	 * or rolled back: the ledger's entry is read again under the lock.
	 */
	{
		ClLedgerInfo *fresh = cl_ledger_by_id(info->ledger_id);

		if (fresh != NULL && fresh->relid != info->relid)
		{
			*info = *fresh;
			table_state(info, ts);
			return;
		}
	}
	relkind = get_rel_relkind(info->relid);
	if (relkind == '\0')
	{
		if (ts->problem == NULL)
			ts->problem = psprintf("table %u does not exist, but consent_ledger.ledgers still names it as the ledger's table%s",
								   info->relid, recorded ? " (a drop is recorded in consent_ledger.dropped_ledgers)" : "");
		return;
	}
	if (relkind != RELKIND_RELATION)
	{
		if (ts->problem == NULL)
			ts->problem = psprintf("relation \"%s\", which has the OID %u of the ledger's table, is not a table",
								   get_rel_name(info->relid), info->relid);
		return;
	}
	ts->txn_attnum = stamp_column(info->relid, CL_TXN_COLUMN, INT8OID, &ts->problem);
	ts->ord_attnum = stamp_column(info->relid, CL_ORD_COLUMN, INT4OID, &ts->problem);
	ts->readable = ts->txn_attnum > 0 && ts->ord_attnum > 0 && encoding_known(info->encoding);
	if (ts->problem == NULL && recorded)
		ts->problem = psprintf("recorded as dropped in consent_ledger.dropped_ledgers, but its table \"%s\" exists",
							   get_rel_name(info->relid));
}

/*
 * The OID a regclass argument reaches this ledger by: its table's, or for
 * a dropped ledger the one its table had, as long as no relation has
 * taken it since (cl_ledger_resolve); otherwise InvalidOid.
 */
static Oid
ledger_regclass(ClLedgerInfo *info)
{
	Oid			old;

	if (OidIsValid(info->relid))
		return info->relid;
	old = cl_ledger_dropped_relid(info->ledger_id);
	if (!OidIsValid(old) || SearchSysCacheExists1(RELOID, ObjectIdGetDatum(old)))
		return InvalidOid;
	return old;
}

/* The ledger's table name for messages, or a description once it is dropped. */
static const char *
ledger_name(ClLedgerInfo *info)
{
	char	   *name = OidIsValid(info->relid) ? get_rel_name(info->relid) : NULL;
	Oid			old;

	if (name != NULL)
		return name;
	if (OidIsValid(info->relid))
		return psprintf("ledger %d (table %u missing)", info->ledger_id, info->relid);
	old = cl_ledger_dropped_relid(info->ledger_id);
	if (OidIsValid(old))
		return psprintf("ledger %d (table %u dropped)", info->ledger_id, old);
	return psprintf("ledger %d (table dropped)", info->ledger_id);
}

static ClLedgerInfo *
ledger_or_error(Oid relid)
{
	ClLedgerInfo *info = cl_ledger_resolve(relid);

	if (info == NULL && cl_is_partitioned_ledger(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is a partitioned ledger table", get_rel_name(relid)),
				 errdetail("Each partition of a partitioned ledger has its own log, checkpoints and proofs."),
				 errhint("Name one of its partitions; consent_ledger.verify('%s') verifies them all, consent_ledger.partition_checkpoints('%s') gives a receipt for each.",
						 get_rel_name(relid), get_rel_name(relid))));
	if (info == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 get_rel_name(relid) ?
				 errmsg("\"%s\" is not a ledger table", get_rel_name(relid)) :
				 errmsg("relation with OID %u is not a ledger table", relid),
				 errhint("Use consent_ledger.create_ledger() to make it one.")));
	return info;
}

/* Appends one chunk (a pending record's worth of positions). */
static void
add_chunk(LedgerState *st, int64 *capacity, uint64 *cap_leaves, int64 txn,
		  int64 first_ord, int64 n, const uint8 *leaves, bool pending, bool own)
{
	uint64		total = st->nsealed + st->npending;
	Chunk	   *c;

	if (st->nchunks == *capacity)
	{
		*capacity *= 2;
		st->chunks = repalloc_huge(st->chunks, sizeof(Chunk) * *capacity);
	}
	c = &st->chunks[st->nchunks++];
	c->txn = txn;
	c->first_ord = first_ord;
	c->n = n;
	c->first_pos = total;
	c->pending = pending;
	c->own = own;
	while (total + n > *cap_leaves)
	{
		*cap_leaves *= 2;
		st->expected = repalloc_huge(st->expected, sizeof(cl_hash) * *cap_leaves);
	}
	memcpy(st->expected[total], leaves, (Size) n * CL_HASH_LEN);
	if (pending)
		st->npending += n;
	else
		st->nsealed += n;
}

/*
 * The pending records of a ledger, in the order the sealer takes them: the
 * rest of the transaction the last round cut (the log's last, last_txn)
 * first, then by (txn, first_ord) (seal.c).  Not those of the caller's
 * own open transaction (own_txn, 0 for none): its leaves, written to
 * records or not, come from cl_ledger_own_leaves() after the others, which
 * sees all of them whatever the caller's snapshot.  Columns: txn, first_ord,
 * nleaves (bigint whatever the width of the columns: 1.3 widened them),
 * leaves (as stored) and leaves_offset (0 before 1.3).
 */
static Portal
open_pending(int32 ledger_id, int64 last_txn, int64 own_txn)
{
	Oid			types[3] = {INT4OID, INT8OID, INT8OID};
	Datum		vals[3] = {Int32GetDatum(ledger_id), Int64GetDatum(last_txn), Int64GetDatum(own_txn)};

	/* leaves_offset (1.3): the leaves a round already sealed */
	bool		has_offset = get_attnum(cl_internal_relid("pending"), "leaves_offset") != InvalidAttrNumber;

	return SPI_cursor_open_with_args(NULL,
									 has_offset ?
									 "SELECT txn, first_ord::pg_catalog.int8, nleaves::pg_catalog.int8, leaves, leaves_offset "
									 "FROM consent_ledger.pending "
									 "WHERE ledger_id OPERATOR(pg_catalog.=) $1 AND txn OPERATOR(pg_catalog.<>) $3 "
									 "ORDER BY txn OPERATOR(pg_catalog.<>) $2, txn, first_ord" :
									 "SELECT txn, first_ord::pg_catalog.int8, nleaves::pg_catalog.int8, leaves, 0::pg_catalog.int8 "
									 "FROM consent_ledger.pending "
									 "WHERE ledger_id OPERATOR(pg_catalog.=) $1 AND txn OPERATOR(pg_catalog.<>) $3 "
									 "ORDER BY txn OPERATOR(pg_catalog.<>) $2, txn, first_ord",
									 3, types, vals, NULL, true, 0);
}

/*
 * One row of open_pending(): false (the problem noted) when it is
 * malformed.  A record a round cut holds its sealed leaves first: its
 * own are the n after the first *offset (read them with
 * DatumGetByteaPSlice from *offset * CL_HASH_LEN).
 */
static bool
pending_row(LedgerState *st, HeapTuple t, TupleDesc d, int64 *txn, int64 *first_ord,
			int64 *n, Datum *leaves, int64 *offset)
{
	bool		isnull;
	bool		null_leaves;
	bool		null_offset;

	*txn = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
	*first_ord = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
	*n = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
	*leaves = SPI_getbinval(t, d, 4, &null_leaves);
	*offset = DatumGetInt64(SPI_getbinval(t, d, 5, &null_offset));
	if (null_leaves || null_offset || *n <= 0 || *offset < 0 || *first_ord < 0 ||
		*n > CL_MAX_LEAVES_PER_LOG || *offset > CL_MAX_LEAVES_PER_LOG ||
		toast_raw_datum_size(*leaves) != VARHDRSZ + (Size) (*offset + *n) * CL_HASH_LEN)
	{
		note_problem(st, st->nsealed + st->npending,
					 "pending record of transaction " INT64_FORMAT " is malformed", *txn);
		return false;
	}
	return true;
}

/*
 * Loads the log (in leaf order) and then the pending records of a ledger
 * (SPI connected).  Positions 0 .. nsealed-1 are the log; pending leaves
 * follow, in the order the sealer will take them.
 */
static void
load_records(LedgerState *st)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(st->info->ledger_id)};
	int64		capacity = 64;
	uint64		cap_leaves = 1024;
	int64		last_log_txn = 0;
	int64		own_txn = 0;
	cl_hash    *own_leaves = NULL;
	int32		own_n = 0;
	HASHCTL		ctl;
	Portal		portal;

	st->chunks = palloc(sizeof(Chunk) * capacity);
	st->expected = palloc_extended(sizeof(cl_hash) * cap_leaves, MCXT_ALLOC_HUGE);

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT first_leaf, nleaves::pg_catalog.int8, txns, "
									   "first_ords::pg_catalog.int8[], counts::pg_catalog.int8[], leaves "
									   "FROM consent_ledger.log WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
									   "ORDER BY first_leaf",
									   1, types, vals, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 100);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;
			int64		first_leaf = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
			int64		nleaves = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
			ArrayType  *txns = DatumGetArrayTypeP(SPI_getbinval(t, d, 3, &isnull));
			ArrayType  *ords = DatumGetArrayTypeP(SPI_getbinval(t, d, 4, &isnull));
			ArrayType  *counts = DatumGetArrayTypeP(SPI_getbinval(t, d, 5, &isnull));
			bytea	   *leaves = DatumGetByteaPP(SPI_getbinval(t, d, 6, &isnull));
			int			nrec = ArrayGetNItems(ARR_NDIM(txns), ARR_DIMS(txns));
			int64	   *tx = (int64 *) ARR_DATA_PTR(txns);
			int64	   *od = (int64 *) ARR_DATA_PTR(ords);
			int64	   *ct = (int64 *) ARR_DATA_PTR(counts);
			const uint8 *p = (const uint8 *) VARDATA_ANY(leaves);
			int64		sum = 0;
			bool		ok;

			ok = ((uint64) first_leaf == st->nsealed &&
				  ARR_ELEMTYPE(txns) == INT8OID && ARR_ELEMTYPE(ords) == INT8OID &&
				  ARR_ELEMTYPE(counts) == INT8OID &&
				  !ARR_HASNULL(txns) && !ARR_HASNULL(ords) && !ARR_HASNULL(counts) &&
				  ArrayGetNItems(ARR_NDIM(ords), ARR_DIMS(ords)) == nrec &&
				  ArrayGetNItems(ARR_NDIM(counts), ARR_DIMS(counts)) == nrec);
			for (int k = 0; ok && k < nrec; k++)
			{
				ok = ct[k] > 0;
				sum += ct[k];
			}
			if (!ok || sum != nleaves ||
				VARSIZE_ANY_EXHDR(leaves) != (Size) nleaves * CL_HASH_LEN)
			{
				note_problem(st, st->nsealed,
							 "log corrupted at leaf " UINT64_FORMAT ": the log row that should start there is missing or malformed",
							 st->nsealed);
				break;
			}
			for (int k = 0; k < nrec; k++)
			{
				add_chunk(st, &capacity, &cap_leaves, tx[k], od[k], ct[k], p, false, false);
				p += (Size) ct[k] * CL_HASH_LEN;
				last_log_txn = tx[k];
			}
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);

	/*
	 * Rows the caller's own open transaction inserted are pending, never
	 * "extra" (SPEC section 3): all its leaves (in its records so far,
	 * which only it sees, and in this backend's memory) come after every
	 * committed pending record, as the sealer would take them.
	 */
	if (st->rel != NULL)
		own_n = cl_ledger_own_count(st->info->relid, &own_txn);

	/*
	 * The rest of a transaction a sealing round cut (the log's last) comes
	 * first: the next round takes it first (seal.c).
	 */
	portal = open_pending(st->info->ledger_id, last_log_txn, own_txn);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			int64		txn;
			int64		first_ord;
			int64		n;
			int64		off;
			Datum		lv;
			bytea	   *leaves;

			if (!pending_row(st, SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
							 &txn, &first_ord, &n, &lv, &off))
				continue;
			leaves = DatumGetByteaPSlice(lv, (int32) (off * CL_HASH_LEN), (int32) (n * CL_HASH_LEN));
			if (VARSIZE_ANY_EXHDR(leaves) != (Size) n * CL_HASH_LEN)
			{
				note_problem(st, st->nsealed + st->npending,
							 "pending record of transaction " INT64_FORMAT " is malformed", txn);
				continue;
			}
			add_chunk(st, &capacity, &cap_leaves, txn, first_ord, n,
					  (const uint8 *) VARDATA_ANY(leaves), true, false);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	if (own_n > 0)
	{
		own_n = cl_ledger_own_leaves(st->info->relid, &own_txn, &own_leaves);
		add_chunk(st, &capacity, &cap_leaves, own_txn, 0, own_n,
				  (const uint8 *) own_leaves, true, true);
		pfree(own_leaves);
	}

	/* txn -> chunks; chunks of one txn are adjacent within log or pending */
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(TxnEntry);
	ctl.hcxt = CurrentMemoryContext;
	st->txns = hash_create("consent_ledger verify txns", Max(st->nchunks, 16), &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int64 i = 0; i < st->nchunks; i++)
	{
		bool		found;
		TxnEntry   *e = hash_search(st->txns, &st->chunks[i].txn, HASH_ENTER, &found);

		if (!found)
		{
			e->first_chunk = i;
			e->nchunks = 1;
		}
		else if (e->first_chunk + e->nchunks == i)
			e->nchunks++;
		else
			note_problem(st, st->chunks[i].first_pos,
						 "log corrupted at leaf " UINT64_FORMAT ": transaction " INT64_FORMAT " appears twice",
						 st->chunks[i].first_pos, st->chunks[i].txn);
	}
}

/* Position of (txn, ord), or PG_UINT64_MAX. */
static uint64
position_of(LedgerState *st, int64 txn, int32 ord)
{
	TxnEntry   *e = hash_search(st->txns, &txn, HASH_FIND, NULL);

	if (e == NULL)
		return PG_UINT64_MAX;
	for (int64 i = 0; i < e->nchunks; i++)
	{
		Chunk	   *c = &st->chunks[e->first_chunk + i];

		if (ord >= c->first_ord && ord - c->first_ord < c->n)
			return c->first_pos + (uint64) (ord - c->first_ord);
	}
	return PG_UINT64_MAX;
}

/* The chunk holding a position (binary search; chunks are in position order). */
static Chunk *
chunk_at(LedgerState *st, uint64 pos)
{
	int64		lo = 0,
				hi = st->nchunks - 1;

	while (lo <= hi)
	{
		int64		mid = (lo + hi) / 2;
		Chunk	   *c = &st->chunks[mid];

		if (pos < c->first_pos)
			hi = mid - 1;
		else if (pos >= c->first_pos + (uint64) c->n)
			lo = mid + 1;
		else
			return c;
	}
	return NULL;
}

static void
hash_row(ClRowEncoder *enc, StringInfo buf, HeapTuple tup, int64 txn, int32 ord, cl_hash out)
{
	resetStringInfo(buf);
	cl_encode_row(enc, tup, txn, ord, buf);
	cl_leaf_hash((const uint8_t *) buf->data, buf->len, out);
}

/*
 * Reads every row of the ledger, recomputes its leaf hash and checks it
 * against the log: a row whose stamp names no record is "extra", two rows
 * with one stamp make the second "extra", a position no row fills is
 * "missing", a hash that differs is "changed" -- or "reordered" when the
 * row's content belongs at another position that also failed.
 */
static void
scan_rows(LedgerState *st)
{
	uint64		total = st->nsealed + st->npending;
	ClRowEncoder *enc;
	StringInfoData buf;
	TableScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc = RelationGetDescr(st->rel);
	uint64		nrows = 0;

	st->actual = palloc_extended(sizeof(cl_hash) * Max(total, 1), MCXT_ALLOC_HUGE);
	st->seen = palloc_extended(sizeof(bool) * Max(total, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	enc = cl_ledger_encoder(st->info, desc, CurrentMemoryContext);
	initStringInfo(&buf);

	scan = table_beginscan(st->rel, GetActiveSnapshot(), 0, NULL);
	while ((tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		n1,
					n2;
		Datum		d1 = heap_getattr(tup, st->info->txn_attnum, desc, &n1);
		Datum		d2 = heap_getattr(tup, st->info->ord_attnum, desc, &n2);
		int64		txn;
		int32		ord;
		uint64		pos;

		CHECK_FOR_INTERRUPTS();
		if ((++nrows % 1000000) == 0)
			ereport(NOTICE,
					(errmsg("verify of \"%s\": " UINT64_FORMAT " rows read",
							RelationGetRelationName(st->rel), nrows)));
		if (n1 || n2)
		{
			note_problem(st, total,
						 "extra row at ctid (%u,%u): it has no ledger stamp",
						 ItemPointerGetBlockNumber(&tup->t_self),
						 ItemPointerGetOffsetNumber(&tup->t_self));
			continue;
		}
		txn = DatumGetInt64(d1);
		ord = DatumGetInt32(d2);
		pos = position_of(st, txn, ord);
		if (pos == PG_UINT64_MAX)
		{
			note_problem(st, total,
						 "extra row at ctid (%u,%u): transaction " INT64_FORMAT " ordinal %d is in no sealed or pending record",
						 ItemPointerGetBlockNumber(&tup->t_self),
						 ItemPointerGetOffsetNumber(&tup->t_self), txn, ord);
			continue;
		}
		if (st->seen[pos])
		{
			note_problem(st, pos,
						 "extra row at leaf " UINT64_FORMAT ": a second row, at ctid (%u,%u), claims the same position",
						 pos, ItemPointerGetBlockNumber(&tup->t_self),
						 ItemPointerGetOffsetNumber(&tup->t_self));
			continue;
		}
		st->seen[pos] = true;
		hash_row(enc, &buf, tup, txn, ord, st->actual[pos]);
		if (memcmp(st->actual[pos], st->expected[pos], CL_HASH_LEN) != 0)
		{
			if (st->nsuspects < MAX_SUSPECTS)
			{
				st->suspects[st->nsuspects].pos = pos;
				st->suspects[st->nsuspects].tuple = heap_copytuple(tup);
				st->nsuspects++;
			}
			else
				note_problem(st, pos, "changed at leaf " UINT64_FORMAT ": the row does not hash to its log entry", pos);
		}
	}
	table_endscan(scan);

	/* reordered rows: content that hashes correctly at another failed position */
	for (int i = 0; i < st->nsuspects; i++)
	{
		Suspect    *s = &st->suspects[i];
		bool		placed = false;

		for (int j = 0; j < st->nsuspects && !placed; j++)
		{
			Chunk	   *c;
			uint64		q = st->suspects[j].pos;
			cl_hash		h;

			if (j == i || (c = chunk_at(st, q)) == NULL)
				continue;
			hash_row(enc, &buf, s->tuple, c->txn, (int32) (c->first_ord + (int64) (q - c->first_pos)), h);
			if (memcmp(h, st->expected[q], CL_HASH_LEN) == 0)
			{
				note_problem(st, Min(s->pos, q),
							 "reordered at leaf " UINT64_FORMAT ": the row there holds the content of leaf " UINT64_FORMAT,
							 s->pos, q);
				placed = true;
			}
		}
		if (!placed)
			note_problem(st, s->pos, "changed at leaf " UINT64_FORMAT ": the row does not hash to its log entry", s->pos);
	}

	for (uint64 pos = 0; pos < total; pos++)
		if (!st->seen[pos] && !chunk_at(st, pos)->own)
		{
			note_problem(st, pos, "missing at leaf " UINT64_FORMAT ": no row of transaction " INT64_FORMAT " holds it",
						 pos, chunk_at(st, pos) ? chunk_at(st, pos)->txn : 0);
			break;
		}
	cl_encoder_free(enc);
}

/*
 * True when some signature of a note verifies under a key recorded in
 * consent_ledger.keys with that key id (SPI connected); that key goes to
 * *signer.
 */
static bool
note_signed_by_known_key(const cl_checkpoint *cp, const char *note, uint8_t *signer)
{
	for (int i = 0; i < cp->nsigs; i++)
	{
		char		hex[CL_KEYID_LEN * 2 + 1];
		Oid			types[1] = {TEXTOID};
		Datum		vals[1];

		cl_hex_encode(cp->sigs[i].keyid, CL_KEYID_LEN, hex);
		vals[0] = CStringGetTextDatum(hex);
		if (SPI_execute_with_args("SELECT DISTINCT public_key FROM consent_ledger.keys "
								  "WHERE key_id OPERATOR(pg_catalog.=) $1",
								  1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read consent_ledger.keys");
		for (uint64 k = 0; k < SPI_processed; k++)
		{
			bool		isnull;
			bytea	   *b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[k],
														  SPI_tuptable->tupdesc, 1, &isnull));

			if (!isnull && VARSIZE_ANY_EXHDR(b) == CL_PUBKEY_LEN &&
				cl_checkpoint_verify(cp, note, cp->sigs[i].keyname, (const uint8_t *) VARDATA_ANY(b)))
			{
				memcpy(signer, VARDATA_ANY(b), CL_PUBKEY_LEN);
				return true;
			}
		}
	}
	return false;
}

/*
 * Key rotations (README "Keys"): the key of a ledger's first checkpoint
 * starts its chain of keys; a checkpoint signed by another key is
 * accepted only when a rotation statement recorded in consent_ledger.keys,
 * signed by both keys, links it to a key of the chain.  chain holds
 * *nchain keys of CL_PUBKEY_LEN bytes (room for 64); returns whether
 * signer is (now) in it.
 */
static bool
key_in_chain(const uint8_t *signer, uint8_t (*chain)[CL_PUBKEY_LEN], int *nchain)
{
	bool		grew = true;

	for (int i = 0; i < *nchain; i++)
		if (memcmp(chain[i], signer, CL_PUBKEY_LEN) == 0)
			return true;
	if (*nchain == 0)
	{
		memcpy(chain[(*nchain)++], signer, CL_PUBKEY_LEN);
		return true;
	}
	if (SPI_execute("SELECT endorsement FROM consent_ledger.keys WHERE endorsement IS NOT NULL",
					true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not read consent_ledger.keys")));
	while (grew && *nchain < 64)
	{
		grew = false;
		for (uint64 k = 0; k < SPI_processed && *nchain < 64; k++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1, &isnull);
			char	   *note = TextDatumGetCString(d);
			cl_key_rotation r;
			const char *err;
			bool		have_old = false,
						have_new = false;

			if (!cl_rotation_parse(note, strlen(note), &r, &err) || !cl_rotation_verify(&r, note))
				continue;
			for (int i = 0; i < *nchain; i++)
			{
				have_old |= memcmp(chain[i], r.oldpk, CL_PUBKEY_LEN) == 0;
				have_new |= memcmp(chain[i], r.newpk, CL_PUBKEY_LEN) == 0;
			}
			if (have_old && !have_new)
			{
				memcpy(chain[(*nchain)++], r.newpk, CL_PUBKEY_LEN);
				grew = true;
			}
		}
	}
	for (int i = 0; i < *nchain; i++)
		if (memcmp(chain[i], signer, CL_PUBKEY_LEN) == 0)
			return true;
	return false;
}

/*
 * Starts verifying one ledger: st gets its own copy of the ledger's entry
 * (with the stamp columns looked up afresh) and the state of its table,
 * opened when readable.  Shared by both verify paths; returns st->info.
 */
static ClLedgerInfo *
start_ledger_state(LedgerState *st, ClLedgerInfo *info)
{
	st->info = palloc(sizeof(ClLedgerInfo));
	*st->info = *info;
	st->first_problem = PG_UINT64_MAX;
	table_state(st->info, &st->table);
	st->dropped = st->table.gone;
	st->info->txn_attnum = st->table.txn_attnum;
	st->info->ord_attnum = st->table.ord_attnum;
	if (st->table.problem != NULL)
		note_problem(st, 0, "%s", st->table.problem);
	if (st->table.readable)
		st->rel = table_open(st->info->relid, AccessShareLock);
	return st->info;
}

/*
 * The sealing state stored with the last checkpoint (its RFC 9162 right-edge
 * frontier, from which the next round starts) must give that checkpoint's
 * signed root at its size: a frontier that does not would make every later
 * round sign a tree the log does not hold.  Shared by both verify paths.
 */
static void
check_stored_frontier(LedgerState *st, int64 seq, uint64 size, const uint8 *root,
					  uint64 problem_at)
{
	Oid			ftypes[2] = {INT4OID, INT8OID};
	Datum		fvals[2] = {Int32GetDatum(st->info->ledger_id), Int64GetDatum(seq)};
	bool		isnull;
	Datum		d;
	bytea	   *stored;
	cl_frontier sf;
	cl_hash		sroot;
	bool		ok = false;

	if (SPI_execute_with_args("SELECT frontier FROM consent_ledger.checkpoints "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 AND seq OPERATOR(pg_catalog.=) $2",
							  2, ftypes, fvals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	if (SPI_processed != 1)
		return;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	stored = isnull ? NULL : DatumGetByteaPP(d);
	if (stored != NULL &&
		cl_frontier_deserialize((uint8_t *) VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored), &sf) &&
		sf.size == size)
	{
		cl_frontier_root(&sf, sroot);
		ok = memcmp(sroot, root, CL_HASH_LEN) == 0;
	}
	if (!ok)
		note_problem(st, problem_at,
					 "bad frontier at checkpoint " INT64_FORMAT ": the sealing state stored with it does not match its signed tree, so the ledger cannot be sealed",
					 seq);
}

/*
 * Checks every stored checkpoint: well-formed, signed by a recorded key,
 * chained to the previous one, and its root equal to the root of the
 * log's leaves at its size.
 */
static void
check_checkpoints(LedgerState *st)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(st->info->ledger_id)};
	cl_hash		prev;
	cl_frontier f;
	int64		expect_seq = 1;
	uint64		last_size = 0;
	List	   *rows = NIL;
	ListCell   *lc;
	bool		complete = true;
	uint8_t		chain[64][CL_PUBKEY_LEN];
	int			nchain = 0;
	bool		unendorsed = false;

	memset(prev, 0, sizeof(prev));
	if (SPI_execute_with_args("SELECT seq, note FROM consent_ledger.checkpoints "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 ORDER BY seq",
							  1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Checkpoint *c = palloc0(sizeof(Checkpoint));

		c->seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		c->note = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		rows = lappend(rows, c);
	}

	cl_frontier_init(&f);
	foreach(lc, rows)
	{
		Checkpoint *c = lfirst(lc);
		cl_checkpoint cp;
		const char *err;
		cl_hash		root;
		size_t		len = strlen(c->note);
		uint8_t		signer[CL_PUBKEY_LEN];

		if (c->seq != expect_seq)
		{
			note_problem(st, last_size, "broken checkpoint chain: checkpoint " INT64_FORMAT " follows " INT64_FORMAT,
						 c->seq, expect_seq - 1);
			complete = false;
			break;
		}
		expect_seq++;
		if (!cl_checkpoint_parse(c->note, len, &cp, &err))
		{
			note_problem(st, last_size, "bad checkpoint " INT64_FORMAT ": %s", c->seq, err);
			complete = false;
			break;
		}
		c->size = cp.size;
		memcpy(c->root, cp.root, CL_HASH_LEN);
		if (strcmp(cp.origin, st->info->origin) != 0)
			note_problem(st, last_size, "bad checkpoint " INT64_FORMAT ": it names another ledger", c->seq);
		if (!note_signed_by_known_key(&cp, c->note, signer))
			note_problem(st, last_size, "bad signature on checkpoint " INT64_FORMAT " (tree size " UINT64_FORMAT ")",
						 c->seq, cp.size);
		else if (!unendorsed && !key_in_chain(signer, chain, &nchain))
		{
			char		hex[CL_KEYID_LEN * 2 + 1];
			uint8_t		id[CL_KEYID_LEN];

			/* reported once: every later checkpoint of that key follows */
			unendorsed = true;
			cl_key_id(CL_KEY_NAME, signer, id);
			cl_hex_encode(id, CL_KEYID_LEN, hex);
			note_problem(st, last_size, "unendorsed key rotation at checkpoint " INT64_FORMAT ": its key %s is not endorsed by the key that signed the earlier checkpoints",
						 c->seq, hex);
		}
		if (memcmp(cp.prev, prev, CL_HASH_LEN) != 0)
			note_problem(st, last_size, "broken checkpoint chain at checkpoint " INT64_FORMAT ": it does not commit to the previous checkpoint",
						 c->seq);
		cl_note_hash(c->note, len, prev);
		if (cp.size < last_size)
		{
			note_problem(st, cp.size, "broken checkpoint chain at checkpoint " INT64_FORMAT ": the tree shrank from " UINT64_FORMAT " to " UINT64_FORMAT,
						 c->seq, last_size, cp.size);
			complete = false;
			break;
		}
		if (cp.size > st->nsealed)
		{
			note_problem(st, st->nsealed, "missing at leaf " UINT64_FORMAT ": checkpoint " INT64_FORMAT " covers " UINT64_FORMAT " leaves but the log holds " UINT64_FORMAT,
						 st->nsealed, c->seq, cp.size, st->nsealed);
			complete = false;
			break;
		}
		while (f.size < cp.size)
			cl_frontier_append(&f, st->expected[f.size]);
		cl_frontier_root(&f, root);
		if (memcmp(root, cp.root, CL_HASH_LEN) != 0)
			note_problem(st, last_size,
						 "changed between leaf " UINT64_FORMAT " and leaf " UINT64_FORMAT ": the log does not match the signed root of checkpoint " INT64_FORMAT,
						 last_size, cp.size - 1, c->seq);
		last_size = cp.size;
	}
	if (complete && rows != NIL && last_size < st->nsealed)
		note_problem(st, last_size, "extra at leaf " UINT64_FORMAT ": the log holds " UINT64_FORMAT " leaves but the last checkpoint covers " UINT64_FORMAT,
					 last_size, st->nsealed, last_size);

	/*
	 * The sealer extends the frontier stored with the last checkpoint: it
	 * must be a frontier of that checkpoint's size and signed root, or the
	 * ledger cannot be sealed (the sealer skips it and says so in the
	 * server log).
	 */
	if (complete && rows != NIL)
	{
		Checkpoint *last = llast(rows);

		check_stored_frontier(st, last->seq, last->size, last->root, last_size);
	}
	st->checkpoints = rows;
}

/*
 * Recomputes every stored subtree hash (tiles.c) from the log's leaves and
 * reports one that differs, or a stored hash of a subtree the log does not
 * complete.  Missing ones are not a problem: proofs recompute them.
 */
static void
check_tree_hashes(LedgerState *st)
{
	ClTilesChecker *c = cl_tiles_check_begin(st->info->ledger_id);
	uint64		pos;
	int64		nproblems;
	uint64		missing;
	char	   *problem;

	for (uint64 i = 0; i < st->nsealed; i++)
		cl_tiles_check_leaf(c, st->expected[i]);
	problem = cl_tiles_check_end(c, &pos, &nproblems, &missing);
	if (problem != NULL)
	{
		note_problem(st, pos, "%s", problem);
		st->nproblems += nproblems - 1;
	}
	if (missing > 0)
		ereport(DEBUG1,
				(errmsg_internal("consent_ledger verify: " UINT64_FORMAT " stored tree hashes of ledger %d missing",
								 missing, st->info->ledger_id)));
}

static LedgerState *
load_ledger(ClLedgerInfo *info, bool rows)
{
	LedgerState *st = palloc0(sizeof(LedgerState));

	/*
	 * A fresh copy of the ledger's entry (the cache behind
	 * cl_ledger_lookup() is invalidated by create and retire, not by an
	 * edit of consent_ledger.ledgers), whose stamp columns are looked up
	 * afresh below.
	 */
	ClLedgerInfo *fresh = cl_ledger_by_id(info->ledger_id);

	info = start_ledger_state(st, fresh != NULL ? fresh : info);
	load_records(st);
	check_checkpoints(st);
	if (rows)
		check_tree_hashes(st);
	if (rows && st->rel != NULL)
		scan_rows(st);
	return st;
}

static void
release_ledger(LedgerState *st)
{
	if (st->rel != NULL)
		table_close(st->rel, AccessShareLock);
}

/*
 * verify() streamed, with memory bounded whatever the ledger's size: the
 * sorted pass, which words the problems when the merge pass (further
 * down: merge_ledger) does not settle a ledger.
 *
 * The log is read once, in leaf order, by a cursor (LogStream): each leaf
 * goes into the tree that checks the checkpoints (read by a cursor of
 * their own, in chain order), into the stored tree hashes' checker, and,
 * with its stamp (transaction, ordinal) and position, into sort A; the
 * pending records and the caller's own leaves follow.  The table is read
 * once by a heap scan: each row's stamp, ctid and recomputed leaf hash go
 * into sort B.  Both sorts are by stamp, and spill to disk past
 * maintenance_work_mem / 2 each.  Merging them finds what scan_rows()
 * finds with its in-memory map: a leaf no row holds (missing), a row no
 * leaf names or a second row for one leaf (extra), a row whose hash differs
 * (changed, or reordered when its content belongs at another failed
 * position: up to MAX_SUSPECTS of them are re-examined by ctid).
 */
#define SA_TXN 1
#define SA_ORD 2
#define SA_POS 3
#define SA_HASH 4
#define SA_OWN 5
#define SB_TXN 1
#define SB_ORD 2
#define SB_TID 3
#define SB_HASH 4

#define LOG_SLICE_LEAVES 65536	/* 2 MiB of leaf hashes */

/*
 * The right edge of the log's tree, built from the level-1 nodes the
 * stored hashes' checker computes (the roots of complete blocks of 256
 * leaves, cl_tiles_check_leaf_node) and the leaves of the block under
 * way: each leaf is hashed into the tree once, not once for the checker
 * and once more for the checkpoints' roots.
 */
typedef struct BlockFrontier
{
	uint64		size;			/* leaves */
	cl_frontier upper;			/* over the roots of complete blocks */
	int			fill;			/* leaves of the block under way */
	cl_hash		block[CL_TILE_WIDTH];
} BlockFrontier;

static void
block_frontier_append(BlockFrontier *bf, const uint8 *leaf, bool node_ready, const uint8 *node)
{
	memcpy(bf->block[bf->fill++], leaf, CL_HASH_LEN);
	bf->size++;
	if (node_ready)
	{
		Assert(bf->fill == CL_TILE_WIDTH);
		cl_frontier_append(&bf->upper, node);
		bf->fill = 0;
	}
	else if (bf->fill == CL_TILE_WIDTH)
		elog(ERROR, "consent_ledger: block of 256 leaves without its level-1 node");
}

/* RFC 9162 root of the leaves appended so far (as cl_frontier_root). */
static void
block_frontier_root(const BlockFrontier *bf, cl_hash out)
{
	cl_frontier f;
	cl_frontier low;

	cl_frontier_init(&f);
	cl_frontier_init(&low);
	for (int i = 0; i < bf->fill; i++)
		cl_frontier_append(&low, bf->block[i]);
	/* the partial block's perfect subtrees, then the complete blocks' */
	memcpy(f.nodes, low.nodes, sizeof(cl_hash) * CL_TILE_HEIGHT);
	memcpy(f.nodes[CL_TILE_HEIGHT], bf->upper.nodes, sizeof(cl_hash) * (64 - CL_TILE_HEIGHT));
	f.size = bf->size;
	cl_frontier_root(&f, out);
}

typedef struct LogStream
{
	LedgerState *st;
	Portal		portal;
	SPITupleTable *tt;
	uint64		ntt;
	uint64		row;			/* next row of tt */
	/* the current log row */
	int			nrec;
	int64	   *tx;
	int64	   *od;
	int64	   *ct;
	Datum		leaves;			/* the row's leaves, possibly still toasted */
	int64		nleaves;
	int64		next;			/* next leaf of the row */
	bytea	   *slice;			/* leaves slice_first .. + slice_n of the row */
	int64		slice_first;
	int64		slice_n;
	int			rec;			/* current record */
	int64		k;				/* next leaf in it */
	int64		last_txn;		/* the transaction of the log's last leaf */
	bool		have_row;
	bool		eof;
	ClTilesChecker *tiles;
	BlockFrontier *tree;		/* the tree of the leaves read so far */
	Tuplesortstate *sort;
	TupleTableSlot *slot;
	struct RowMatcher *match;	/* the merge path (match_leaf), or NULL */
	uint8	   *want_root;		/* the root at want_size leaves, or NULL */
	uint64		want_size;
	bool		have_want;
} LogStream;

static void match_leaf(struct RowMatcher *m, int64 txn, int32 ord, uint64 pos,
					   const uint8 *hash, bool own);

/* Puts one leaf into sort A (slot: a virtual slot of its descriptor). */
static void
sort_leaf(Tuplesortstate *sort, TupleTableSlot *slot, int64 txn, int32 ord,
		  uint64 pos, const uint8 *hash, bool own)
{
	bytea	   *h = (bytea *) palloc(VARHDRSZ + CL_HASH_LEN);

	SET_VARSIZE(h, VARHDRSZ + CL_HASH_LEN);
	memcpy(VARDATA(h), hash, CL_HASH_LEN);
	ExecClearTuple(slot);
	slot->tts_values[SA_TXN - 1] = Int64GetDatum(txn);
	slot->tts_values[SA_ORD - 1] = Int32GetDatum(ord);
	slot->tts_values[SA_POS - 1] = Int64GetDatum((int64) pos);
	slot->tts_values[SA_HASH - 1] = PointerGetDatum(h);
	slot->tts_values[SA_OWN - 1] = BoolGetDatum(own);
	memset(slot->tts_isnull, 0, sizeof(bool) * 5);
	ExecStoreVirtualTuple(slot);
	tuplesort_puttupleslot(sort, slot);
	pfree(h);
}

static void
put_leaf(LogStream *ls, int64 txn, int32 ord, uint64 pos, const uint8 *hash, bool own)
{
	if (ls->match != NULL)
	{
		match_leaf(ls->match, txn, ord, pos, hash, own);
		return;
	}
	if (ls->sort == NULL)
		return;
	sort_leaf(ls->sort, ls->slot, txn, ord, pos, hash, own);
}

/* Moves to the next well-formed log row; false at the end (or damage). */
static bool
log_next_row(LogStream *ls)
{
	LedgerState *st = ls->st;

	for (;;)
	{
		if (ls->tt == NULL || ls->row >= ls->ntt)
		{
			if (ls->tt != NULL)
				SPI_freetuptable(ls->tt);
			ls->tt = NULL;
			SPI_cursor_fetch(ls->portal, true, 16);
			ls->tt = SPI_tuptable;
			ls->ntt = SPI_processed;
			ls->row = 0;
			if (ls->ntt == 0)
				return false;
		}
		{
			HeapTuple	t = ls->tt->vals[ls->row++];
			TupleDesc	d = ls->tt->tupdesc;
			bool		isnull;
			int64		first_leaf = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
			int64		nleaves = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
			ArrayType  *txns = DatumGetArrayTypeP(SPI_getbinval(t, d, 3, &isnull));
			ArrayType  *ords = DatumGetArrayTypeP(SPI_getbinval(t, d, 4, &isnull));
			ArrayType  *counts = DatumGetArrayTypeP(SPI_getbinval(t, d, 5, &isnull));
			Datum		leaves = SPI_getbinval(t, d, 6, &isnull);
			int			nrec = ArrayGetNItems(ARR_NDIM(txns), ARR_DIMS(txns));
			int64		sum = 0;
			bool		ok;

			/* counts are read as bigint whatever the columns' width (1.3) */
			ok = ((uint64) first_leaf == st->nsealed &&
				  ARR_ELEMTYPE(txns) == INT8OID && ARR_ELEMTYPE(ords) == INT8OID &&
				  ARR_ELEMTYPE(counts) == INT8OID &&
				  !ARR_HASNULL(txns) && !ARR_HASNULL(ords) && !ARR_HASNULL(counts) &&
				  ArrayGetNItems(ARR_NDIM(ords), ARR_DIMS(ords)) == nrec &&
				  ArrayGetNItems(ARR_NDIM(counts), ARR_DIMS(counts)) == nrec);
			for (int k = 0; ok && k < nrec; k++)
			{
				ok = ((int64 *) ARR_DATA_PTR(counts))[k] > 0;
				sum += ((int64 *) ARR_DATA_PTR(counts))[k];
			}
			if (!ok || sum != nleaves || isnull ||
				toast_raw_datum_size(leaves) != VARHDRSZ + (Size) nleaves * CL_HASH_LEN)
			{
				note_problem(st, st->nsealed,
							 "log corrupted at leaf " UINT64_FORMAT ": the log row that should start there is missing or malformed",
							 st->nsealed);
				return false;
			}
			if (nrec == 0)
				continue;
			ls->nrec = nrec;
			ls->tx = (int64 *) ARR_DATA_PTR(txns);
			ls->od = (int64 *) ARR_DATA_PTR(ords);
			ls->ct = (int64 *) ARR_DATA_PTR(counts);
			ls->leaves = leaves;
			ls->nleaves = nleaves;
			ls->next = 0;
			if (ls->slice != NULL)
				pfree(ls->slice);
			ls->slice = NULL;
			ls->slice_first = ls->slice_n = 0;
			ls->rec = 0;
			ls->k = 0;
			return true;
		}
	}
}

/*
 * The next leaf of the log, in order (NULL at the end): fed to the stored
 * hashes' checker and sort A on the way.  The pointer is valid until the
 * next call.
 */
static const uint8 *
log_next(LogStream *ls)
{
	const uint8 *leaf;

	if (ls->eof)
		return NULL;
	while (!ls->have_row || ls->rec >= ls->nrec)
	{
		ls->have_row = log_next_row(ls);
		if (!ls->have_row)
		{
			ls->eof = true;
			return NULL;
		}
	}
	if (ls->slice == NULL || ls->next >= ls->slice_first + ls->slice_n)
	{
		/* a log row holds up to 4M leaves: read it LOG_SLICE_LEAVES at a time */
		if (ls->slice != NULL)
			pfree(ls->slice);
		ls->slice_first = ls->next;
		ls->slice_n = Min(LOG_SLICE_LEAVES, ls->nleaves - ls->next);
		ls->slice = DatumGetByteaPSlice(ls->leaves, (int32) (ls->slice_first * CL_HASH_LEN),
										(int32) (ls->slice_n * CL_HASH_LEN));
		if (VARSIZE_ANY_EXHDR(ls->slice) != (Size) ls->slice_n * CL_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("log row of ledger %d at leaf " UINT64_FORMAT " is malformed",
							ls->st->info->ledger_id, ls->st->nsealed),
					 errhint("Run consent_ledger.verify() on the ledger.")));
	}
	leaf = (const uint8 *) VARDATA_ANY(ls->slice) + (Size) (ls->next - ls->slice_first) * CL_HASH_LEN;
	put_leaf(ls, ls->tx[ls->rec], (int32) (ls->od[ls->rec] + ls->k), ls->st->nsealed, leaf, false);
	ls->last_txn = ls->tx[ls->rec];
	{
		cl_hash		node;
		bool		ready = cl_tiles_check_leaf_node(ls->tiles, leaf, node);

		block_frontier_append(ls->tree, leaf, ready, node);
		if (ls->want_root != NULL && ls->tree->size == ls->want_size)
		{
			block_frontier_root(ls->tree, ls->want_root);
			ls->have_want = true;
		}
	}
	ls->st->nsealed++;
	ls->next++;
	if (++ls->k >= ls->ct[ls->rec])
	{
		ls->rec++;
		ls->k = 0;
	}
	return leaf;
}

/*
 * check_checkpoints() over a LogStream: the same checks, with the
 * checkpoints read by a cursor and the leaves pulled as the frontier
 * needs them; then the rest of the log is drained.
 */
static void
check_checkpoints_streamed(LedgerState *st, LogStream *ls)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(st->info->ledger_id)};
	cl_hash		prev;
	BlockFrontier *tree = ls->tree;
	int64		expect_seq = 1;
	uint64		last_size = 0;
	bool		complete = true;
	bool		any = false;
	Checkpoint	last;
	uint8_t		chain[64][CL_PUBKEY_LEN];
	int			nchain = 0;
	bool		unendorsed = false;
	Portal		portal;
	MemoryContext cpcxt = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger checkpoint",
												ALLOCSET_DEFAULT_SIZES);

	memset(prev, 0, sizeof(prev));
	memset(&last, 0, sizeof(last));
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT seq, note FROM consent_ledger.checkpoints "
									   "WHERE ledger_id OPERATOR(pg_catalog.=) $1 ORDER BY seq",
									   1, types, vals, NULL, true, 0);
	while (complete)
	{
		SPITupleTable *tt;
		uint64		ntt;

		SPI_cursor_fetch(portal, true, 256);
		tt = SPI_tuptable;
		ntt = SPI_processed;
		if (ntt == 0)
		{
			SPI_freetuptable(tt);
			break;
		}
		for (uint64 i = 0; i < ntt && complete; i++)
		{
			bool		isnull;
			int64		seq = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
			char	   *note;
			cl_checkpoint cp;
			const char *err;
			cl_hash		root;
			size_t		len;
			uint8_t		signer[CL_PUBKEY_LEN];
			MemoryContext old;

			MemoryContextReset(cpcxt);
			old = MemoryContextSwitchTo(cpcxt);
			note = TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
			MemoryContextSwitchTo(old);
			len = strlen(note);
			any = true;
			CHECK_FOR_INTERRUPTS();
			if (seq != expect_seq)
			{
				note_problem(st, last_size, "broken checkpoint chain: checkpoint " INT64_FORMAT " follows " INT64_FORMAT,
							 seq, expect_seq - 1);
				complete = false;
				break;
			}
			expect_seq++;
			last.seq = seq;
			last.size = 0;
			if (!cl_checkpoint_parse(note, len, &cp, &err))
			{
				note_problem(st, last_size, "bad checkpoint " INT64_FORMAT ": %s", seq, err);
				complete = false;
				break;
			}
			last.size = cp.size;
			memcpy(last.root, cp.root, CL_HASH_LEN);
			if (strcmp(cp.origin, st->info->origin) != 0)
				note_problem(st, last_size, "bad checkpoint " INT64_FORMAT ": it names another ledger", seq);
			if (!note_signed_by_known_key(&cp, note, signer))
				note_problem(st, last_size, "bad signature on checkpoint " INT64_FORMAT " (tree size " UINT64_FORMAT ")",
							 seq, cp.size);
			else if (!unendorsed && !key_in_chain(signer, chain, &nchain))
			{
				char		hex[CL_KEYID_LEN * 2 + 1];
				uint8_t		id[CL_KEYID_LEN];

				unendorsed = true;
				cl_key_id(CL_KEY_NAME, signer, id);
				cl_hex_encode(id, CL_KEYID_LEN, hex);
				note_problem(st, last_size, "unendorsed key rotation at checkpoint " INT64_FORMAT ": its key %s is not endorsed by the key that signed the earlier checkpoints",
							 seq, hex);
			}
			if (memcmp(cp.prev, prev, CL_HASH_LEN) != 0)
				note_problem(st, last_size, "broken checkpoint chain at checkpoint " INT64_FORMAT ": it does not commit to the previous checkpoint",
							 seq);
			cl_note_hash(note, len, prev);
			if (cp.size < last_size)
			{
				note_problem(st, cp.size, "broken checkpoint chain at checkpoint " INT64_FORMAT ": the tree shrank from " UINT64_FORMAT " to " UINT64_FORMAT,
							 seq, last_size, cp.size);
				complete = false;
				break;
			}
			while (tree->size < cp.size)
			{
				if (log_next(ls) == NULL)
					break;
			}
			if (cp.size > tree->size)
			{
				note_problem(st, st->nsealed, "missing at leaf " UINT64_FORMAT ": checkpoint " INT64_FORMAT " covers " UINT64_FORMAT " leaves but the log holds " UINT64_FORMAT,
							 st->nsealed, seq, cp.size, st->nsealed);
				complete = false;
				break;
			}
			block_frontier_root(tree, root);
			if (memcmp(root, cp.root, CL_HASH_LEN) != 0)
				note_problem(st, last_size,
							 "changed between leaf " UINT64_FORMAT " and leaf " UINT64_FORMAT ": the log does not match the signed root of checkpoint " INT64_FORMAT,
							 last_size, cp.size - 1, seq);
			last_size = cp.size;
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);

	/* the rest of the log */
	while (log_next(ls) != NULL)
		CHECK_FOR_INTERRUPTS();

	if (complete && any && last_size < st->nsealed)
		note_problem(st, last_size, "extra at leaf " UINT64_FORMAT ": the log holds " UINT64_FORMAT " leaves but the last checkpoint covers " UINT64_FORMAT,
					 last_size, st->nsealed, last_size);

	/* the sealing state stored with the last checkpoint (see check_checkpoints) */
	if (complete && any)
		check_stored_frontier(st, last.seq, last.size, last.root, last_size);
	MemoryContextDelete(cpcxt);
}

/*
 * The pending records and the caller's own leaves, after the log, into
 * sort A, in the order the sealer takes them (open_pending()); a record's
 * leaves read LOG_SLICE_LEAVES at a time.
 */
static void
stream_pending(LedgerState *st, LogStream *ls)
{
	Portal		portal;
	int64		own_txn = 0;
	cl_hash    *own_leaves = NULL;
	int32		own_n = 0;

	if (st->rel != NULL)
		own_n = cl_ledger_own_count(st->info->relid, &own_txn);
	portal = open_pending(st->info->ledger_id, ls->last_txn, own_txn);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 100);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			int64		txn;
			int64		first_ord;
			int64		n;
			int64		off;
			Datum		lv;

			CHECK_FOR_INTERRUPTS();
			if (!pending_row(st, SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
							 &txn, &first_ord, &n, &lv, &off))
				continue;
			for (int64 from = 0; from < n; from += LOG_SLICE_LEAVES)
			{
				int64		k = Min(LOG_SLICE_LEAVES, n - from);
				bytea	   *slice = DatumGetByteaPSlice(lv, (int32) ((off + from) * CL_HASH_LEN),
														(int32) (k * CL_HASH_LEN));

				if (VARSIZE_ANY_EXHDR(slice) != (Size) k * CL_HASH_LEN)
					ereport(ERROR,
							(errcode(ERRCODE_DATA_CORRUPTED),
							 errmsg("pending record of ledger %d, transaction " INT64_FORMAT " is malformed",
									st->info->ledger_id, txn),
							 errhint("Run consent_ledger.verify() on the ledger.")));
				for (int64 j = 0; j < k; j++)
					put_leaf(ls, txn, (int32) (first_ord + from + j),
							 st->nsealed + st->npending + (uint64) (from + j),
							 (const uint8 *) VARDATA_ANY(slice) + (Size) j * CL_HASH_LEN, false);
				if ((Pointer) slice != DatumGetPointer(lv))
					pfree(slice);
			}
			st->npending += (uint64) n;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);

	if (own_n > 0)
	{
		own_n = cl_ledger_own_leaves(st->info->relid, &own_txn, &own_leaves);
		for (int32 k = 0; k < own_n; k++)
			put_leaf(ls, own_txn, k, st->nsealed + st->npending + (uint64) k, own_leaves[k], true);
		st->npending += (uint64) own_n;
		pfree(own_leaves);
	}
}

/*
 * Every row of the table: stamp, ctid and recomputed leaf hash into sort B.
 * The progress NOTICE is not repeated for the first "announced" rows (the
 * merge path, when it gave way to this one, announced them already).
 */
static void
stream_rows(LedgerState *st, Tuplesortstate *sort, TupleDesc bdesc, uint64 announced)
{
	ClRowEncoder *enc;
	StringInfoData buf;
	TableScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc = RelationGetDescr(st->rel);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(bdesc, &TTSOpsVirtual);
	uint64		nrows = 0;
	bytea	   *h = (bytea *) palloc(VARHDRSZ + CL_HASH_LEN);
	ItemPointerData tid;

	SET_VARSIZE(h, VARHDRSZ + CL_HASH_LEN);
	enc = cl_ledger_encoder(st->info, desc, CurrentMemoryContext);
	initStringInfo(&buf);
	scan = table_beginscan(st->rel, GetActiveSnapshot(), 0, NULL);
	while ((tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		n1,
					n2;
		Datum		d1 = heap_getattr(tup, st->info->txn_attnum, desc, &n1);
		Datum		d2 = heap_getattr(tup, st->info->ord_attnum, desc, &n2);

		CHECK_FOR_INTERRUPTS();
		if ((++nrows % 1000000) == 0 && nrows > announced)
			ereport(NOTICE,
					(errmsg("verify of \"%s\": " UINT64_FORMAT " rows read",
							RelationGetRelationName(st->rel), nrows)));
		if (n1 || n2)
		{
			note_problem(st, st->nsealed + st->npending,
						 "extra row at ctid (%u,%u): it has no ledger stamp",
						 ItemPointerGetBlockNumber(&tup->t_self),
						 ItemPointerGetOffsetNumber(&tup->t_self));
			continue;
		}
		hash_row(enc, &buf, tup, DatumGetInt64(d1), DatumGetInt32(d2), (uint8 *) VARDATA(h));
		tid = tup->t_self;
		ExecClearTuple(slot);
		slot->tts_values[SB_TXN - 1] = d1;
		slot->tts_values[SB_ORD - 1] = d2;
		slot->tts_values[SB_TID - 1] = PointerGetDatum(&tid);
		slot->tts_values[SB_HASH - 1] = PointerGetDatum(h);
		memset(slot->tts_isnull, 0, sizeof(bool) * 4);
		ExecStoreVirtualTuple(slot);
		tuplesort_puttupleslot(sort, slot);
	}
	table_endscan(scan);
	cl_encoder_free(enc);
	ExecDropSingleTupleTableSlot(slot);
}

typedef struct StreamSuspect
{
	uint64		pos;
	int64		txn;
	int32		ord;
	cl_hash		expected;
	ItemPointerData tid;
} StreamSuspect;

/*
 * A sort by stamp, then by the third column: the position for leaves (a
 * stamp the log holds twice is reported at its later position), the ctid
 * for rows (the first row in heap order keeps a contested position, as in
 * scan_rows()).
 */
static Tuplesortstate *
begin_stamp_sort(TupleDesc desc, bool rows, int workmem)
{
	AttrNumber	atts[3] = {1, 2, 3};
	Oid			ops[3] = {Int8LessOperator, Int4LessOperator,
	rows ? TIDLessOperator : Int8LessOperator};
	Oid			colls[3] = {InvalidOid, InvalidOid, InvalidOid};
	bool		nf[3] = {false, false, false};

	return tuplesort_begin_heap(desc, 3, atts, ops, colls, nf,
								workmem, NULL, TUPLESORT_NONE);
}

static int
suspect_tid_cmp(const void *a, const void *b)
{
	return ItemPointerCompare((ItemPointer) &((const StreamSuspect *) a)->tid,
							  (ItemPointer) &((const StreamSuspect *) b)->tid);
}

/*
 * Merges sort A (leaves) and sort B (rows), both by stamp, and reports
 * what scan_rows() reports.  "Extra" rows without a record are noted at
 * position nsealed + npending, as there.
 */
static void
merge_leaves_and_rows(LedgerState *st, Tuplesortstate *sa, TupleTableSlot *a,
					  Tuplesortstate *sb, TupleTableSlot *b)
{
	uint64		total = st->nsealed + st->npending;
	bool		have_a = tuplesort_gettupleslot(sa, true, false, a, NULL);
	bool		have_b = tuplesort_gettupleslot(sb, true, false, b, NULL);
	bool		a_matched = false;
	int64		prev_txn = 0;
	int32		prev_ord = 0;
	bool		have_prev = false;
	uint64		first_missing = PG_UINT64_MAX;
	int64		missing_txn = 0;
	StreamSuspect *sus = palloc(sizeof(StreamSuspect) * MAX_SUSPECTS);
	int			nsus = 0;
	bool		dup_noted = false;
	int64		dup_txn = 0;

	while (have_a || have_b)
	{
		int			cmp;
		bool		isnull;
		int64		atxn = 0,
					btxn = 0;
		int32		aord = 0,
					bord = 0;

		CHECK_FOR_INTERRUPTS();
		if (have_a)
		{
			atxn = DatumGetInt64(slot_getattr(a, SA_TXN, &isnull));
			aord = DatumGetInt32(slot_getattr(a, SA_ORD, &isnull));
		}
		if (have_b)
		{
			btxn = DatumGetInt64(slot_getattr(b, SB_TXN, &isnull));
			bord = DatumGetInt32(slot_getattr(b, SB_ORD, &isnull));
		}
		if (!have_b)
			cmp = -1;
		else if (!have_a)
			cmp = 1;
		else if (atxn != btxn)
			cmp = atxn < btxn ? -1 : 1;
		else
			cmp = aord == bord ? 0 : (aord < bord ? -1 : 1);

		if (cmp < 0)
		{
			uint64		pos = (uint64) DatumGetInt64(slot_getattr(a, SA_POS, &isnull));

			if (!a_matched && !DatumGetBool(slot_getattr(a, SA_OWN, &isnull)) &&
				pos < first_missing)
			{
				first_missing = pos;
				missing_txn = atxn;
			}
			prev_txn = atxn;
			prev_ord = aord;
			have_prev = true;
			have_a = tuplesort_gettupleslot(sa, true, false, a, NULL);
			a_matched = false;
			if (have_a && have_prev &&
				DatumGetInt64(slot_getattr(a, SA_TXN, &isnull)) == prev_txn &&
				DatumGetInt32(slot_getattr(a, SA_ORD, &isnull)) == prev_ord &&
				!(dup_noted && dup_txn == prev_txn))
			{
				uint64		dpos = (uint64) DatumGetInt64(slot_getattr(a, SA_POS, &isnull));

				/* once a transaction, as scan_rows() notes it once a record */
				dup_noted = true;
				dup_txn = prev_txn;
				note_problem(st, dpos,
							 "log corrupted at leaf " UINT64_FORMAT ": transaction " INT64_FORMAT " appears twice",
							 dpos, prev_txn);
			}
		}
		else if (cmp > 0)
		{
			ItemPointer tid = (ItemPointer) DatumGetPointer(slot_getattr(b, SB_TID, &isnull));

			note_problem(st, total,
						 "extra row at ctid (%u,%u): transaction " INT64_FORMAT " ordinal %d is in no sealed or pending record",
						 ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid), btxn, bord);
			have_b = tuplesort_gettupleslot(sb, true, false, b, NULL);
		}
		else
		{
			uint64		pos = (uint64) DatumGetInt64(slot_getattr(a, SA_POS, &isnull));
			ItemPointer tid = (ItemPointer) DatumGetPointer(slot_getattr(b, SB_TID, &isnull));

			if (a_matched)
				note_problem(st, pos,
							 "extra row at leaf " UINT64_FORMAT ": a second row, at ctid (%u,%u), claims the same position",
							 pos, ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid));
			else
			{
				bytea	   *ah = DatumGetByteaPP(slot_getattr(a, SA_HASH, &isnull));
				bytea	   *bh = DatumGetByteaPP(slot_getattr(b, SB_HASH, &isnull));

				a_matched = true;
				if (memcmp(VARDATA_ANY(ah), VARDATA_ANY(bh), CL_HASH_LEN) != 0)
				{
					if (nsus < MAX_SUSPECTS)
					{
						sus[nsus].pos = pos;
						sus[nsus].txn = atxn;
						sus[nsus].ord = aord;
						memcpy(sus[nsus].expected, VARDATA_ANY(ah), CL_HASH_LEN);
						sus[nsus].tid = *tid;
						nsus++;
					}
					else
						note_problem(st, pos, "changed at leaf " UINT64_FORMAT ": the row does not hash to its log entry", pos);
				}
			}
			have_b = tuplesort_gettupleslot(sb, true, false, b, NULL);
		}
	}

	/* reordered rows: content that hashes correctly at another failed position */
	if (nsus > 0)
	{
		ClRowEncoder *enc = cl_ledger_encoder(st->info, RelationGetDescr(st->rel),
											  CurrentMemoryContext);
		StringInfoData buf;

		initStringInfo(&buf);
		/* in heap order, as scan_rows() meets them */
		qsort(sus, nsus, sizeof(StreamSuspect), suspect_tid_cmp);
		for (int i = 0; i < nsus; i++)
		{
			bool		placed = false;
			HeapTupleData tuple;
			Buffer		buffer;

			tuple.t_self = sus[i].tid;
			if (!heap_fetch(st->rel, GetActiveSnapshot(), &tuple, &buffer, false))
			{
				note_problem(st, sus[i].pos, "changed at leaf " UINT64_FORMAT ": the row does not hash to its log entry", sus[i].pos);
				continue;
			}
			for (int j = 0; j < nsus && !placed; j++)
			{
				cl_hash		h;

				if (j == i)
					continue;
				hash_row(enc, &buf, &tuple, sus[j].txn, sus[j].ord, h);
				if (memcmp(h, sus[j].expected, CL_HASH_LEN) == 0)
				{
					note_problem(st, Min(sus[i].pos, sus[j].pos),
								 "reordered at leaf " UINT64_FORMAT ": the row there holds the content of leaf " UINT64_FORMAT,
								 sus[i].pos, sus[j].pos);
					placed = true;
				}
			}
			ReleaseBuffer(buffer);
			if (!placed)
				note_problem(st, sus[i].pos, "changed at leaf " UINT64_FORMAT ": the row does not hash to its log entry", sus[i].pos);
		}
		cl_encoder_free(enc);
	}
	if (first_missing != PG_UINT64_MAX)
		note_problem(st, first_missing, "missing at leaf " UINT64_FORMAT ": no row of transaction " INT64_FORMAT " holds it",
					 first_missing, missing_txn);
}

/* The descriptors of sort A (leaves) and sort B (rows) of the streamed paths. */
static void
make_sort_descs(TupleDesc *adesc, TupleDesc *bdesc)
{
	TupleDesc	a = CreateTemplateTupleDesc(5);
	TupleDesc	b = CreateTemplateTupleDesc(4);

	TupleDescInitEntry(a, SA_TXN, "txn", INT8OID, -1, 0);
	TupleDescInitEntry(a, SA_ORD, "ord", INT4OID, -1, 0);
	TupleDescInitEntry(a, SA_POS, "pos", INT8OID, -1, 0);
	TupleDescInitEntry(a, SA_HASH, "hash", BYTEAOID, -1, 0);
	TupleDescInitEntry(a, SA_OWN, "own", BOOLOID, -1, 0);
	TupleDescInitEntry(b, SB_TXN, "txn", INT8OID, -1, 0);
	TupleDescInitEntry(b, SB_ORD, "ord", INT4OID, -1, 0);
	TupleDescInitEntry(b, SB_TID, "tid", TIDOID, -1, 0);
	TupleDescInitEntry(b, SB_HASH, "hash", BYTEAOID, -1, 0);
	*adesc = a;
	*bdesc = b;
}

/*
 * Streams a ledger's log through ls (set up by the caller: what each leaf
 * feeds), checking checkpoints and stored tree hashes on the way, then its
 * pending records.  Shared by the sorted and the merge paths.
 */
static void
stream_log(LedgerState *st, int32 ledger_id, LogStream *ls)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1];
	uint64		pos;
	int64		ntiles;
	uint64		missing;
	char	   *tproblem;

	vals[0] = Int32GetDatum(ledger_id);
	ls->portal = SPI_cursor_open_with_args(NULL,
										   "SELECT first_leaf, nleaves::pg_catalog.int8, txns, "
										   "first_ords::pg_catalog.int8[], counts::pg_catalog.int8[], leaves "
										   "FROM consent_ledger.log WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
										   "ORDER BY first_leaf",
										   1, types, vals, NULL, true, 0);
	check_checkpoints_streamed(st, ls);
	SPI_cursor_close(ls->portal);
	if (ls->tt != NULL)
		SPI_freetuptable(ls->tt);
	tproblem = cl_tiles_check_end(ls->tiles, &pos, &ntiles, &missing);
	if (tproblem != NULL)
	{
		note_problem(st, pos, "%s", tproblem);
		st->nproblems += ntiles - 1;
	}
	stream_pending(st, ls);
}

/*
 * What load_ledger(info, true) establishes for verify(), streamed and
 * sorted: the same LedgerState fields verify_one() reads (nsealed,
 * npending, problem, nproblems, table state), without the per-leaf
 * arrays.  "announced": rows whose progress NOTICE was already sent.
 */
static LedgerState *
verify_ledger_sorted(ClLedgerInfo *info, uint64 announced)
{
	LedgerState *st = palloc0(sizeof(LedgerState));
	ClLedgerInfo *fresh = cl_ledger_by_id(info->ledger_id);
	int			workmem = Max(maintenance_work_mem / 2, 1024);
	TupleDesc	adesc;
	TupleDesc	bdesc;
	LogStream	ls;

	info = start_ledger_state(st, fresh != NULL ? fresh : info);

	make_sort_descs(&adesc, &bdesc);

	memset(&ls, 0, sizeof(ls));
	ls.st = st;
	ls.tiles = cl_tiles_check_begin(info->ledger_id);
	ls.tree = palloc0(sizeof(BlockFrontier));
	ls.slot = MakeSingleTupleTableSlot(adesc, &TTSOpsVirtual);
	/* without rows to match, the leaves need not be sorted */
	ls.sort = st->rel != NULL ? begin_stamp_sort(adesc, false, workmem) : NULL;
	stream_log(st, info->ledger_id, &ls);

	if (st->rel != NULL)
	{
		Tuplesortstate *sb = begin_stamp_sort(bdesc, true, workmem);
		TupleTableSlot *bslot = MakeSingleTupleTableSlot(bdesc, &TTSOpsMinimalTuple);
		TupleTableSlot *aslot = MakeSingleTupleTableSlot(adesc, &TTSOpsMinimalTuple);

		stream_rows(st, sb, bdesc, announced);
		tuplesort_performsort(ls.sort);
		tuplesort_performsort(sb);
		merge_leaves_and_rows(st, ls.sort, aslot, sb, bslot);
		tuplesort_end(sb);
		ExecDropSingleTupleTableSlot(bslot);
		ExecDropSingleTupleTableSlot(aslot);
	}
	if (ls.sort != NULL)
		tuplesort_end(ls.sort);
	ExecDropSingleTupleTableSlot(ls.slot);
	return st;
}

/*
 * verify() streamed, the merge path, tried first.
 *
 * The log's leaves come in leaf order and, as rows are inserted and sealed
 * in stamp order, usually in increasing stamp order too; a heap scan
 * usually meets the rows in that same order.  So the leaves are merged
 * with the heap scan as they are read (match_leaf(), called for every
 * leaf by the log stream in place of sort A): no sort at all when both
 * are in order.  What does not fit goes to sorts bounded like sort A and
 * sort B: a leaf whose row is not met within MATCH_LOOKAHEAD rows of the
 * scan ("A"), a row met ahead of its leaf beyond that window or after it
 * ("B").  Rows met ahead of their leaf are held in a min-heap (by stamp)
 * of at most MATCH_LOOKAHEAD rows.  A leaf that does not follow the
 * previous ones in stamp order (a transaction committed after a later one
 * was sealed) goes to sort A, and into sort "D", checked at the end
 * against every leaf for a stamp the log holds twice.
 *
 * The merge path only decides that everything is in order.  At the first
 * thing it does not settle -- a row that does not hash to its leaf, a row
 * without its leaf or without a stamp, a leaf without its row, a stamp
 * held twice, or any problem noted by the log's checks -- it gives way to
 * verify_ledger_sorted(), which verifies the ledger again from the start
 * and words the problems (so the problems reported, and their number, are
 * exactly that path's).  Memory: the min-heap (MATCH_LOOKAHEAD rows of 56
 * bytes) and the sorts, maintenance_work_mem / 3 each, created only when
 * something is out of order.
 */
#define MATCH_LOOKAHEAD 16384

typedef struct AheadRow
{
	int64		txn;
	int32		ord;
	ItemPointerData tid;
	cl_hash		hash;
} AheadRow;

typedef struct RowMatcher
{
	LedgerState *st;
	bool		dirty;			/* not settled here: verify_ledger_sorted() */
	TableScanDesc scan;
	bool		scan_done;
	TupleDesc	rdesc;
	ClRowEncoder *enc;
	Datum	   *values;
	bool	   *nulls;
	StringInfoData buf;
	uint64		nrows;			/* rows read (for the progress NOTICE) */
	bool		quiet;			/* no progress NOTICE (export()) */
	bool		have_max;		/* the greatest stamp of the leaves so far */
	int64		max_txn;
	int32		max_ord;
	AheadRow   *ahead;			/* min-heap by stamp */
	int			nahead;
	uint64		nheld;			/* rows ever held ahead of their leaf */
	int			workmem;
	TupleDesc	adesc;
	TupleDesc	bdesc;
	TupleTableSlot *aslot;
	TupleTableSlot *bslot;
	Tuplesortstate *sa;			/* leaves not met in order */
	Tuplesortstate *sb;			/* rows not met in order */
	Tuplesortstate *sd;			/* leaves out of stamp order (txn, ord, pos) */
	uint64		na;
	uint64		nb;
	uint64		nd;
} RowMatcher;

static inline int
stamp_cmp(int64 t1, int32 o1, int64 t2, int32 o2)
{
	if (t1 != t2)
		return t1 < t2 ? -1 : 1;
	if (o1 != o2)
		return o1 < o2 ? -1 : 1;
	return 0;
}

static inline bool
ahead_less(const AheadRow *a, const AheadRow *b)
{
	return stamp_cmp(a->txn, a->ord, b->txn, b->ord) < 0 ||
		(a->txn == b->txn && a->ord == b->ord && ItemPointerCompare((ItemPointer) &a->tid, (ItemPointer) &b->tid) < 0);
}

static void
ahead_push(RowMatcher *m, const AheadRow *r)
{
	int			i = m->nahead++;

	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (!ahead_less(r, &m->ahead[parent]))
			break;
		m->ahead[i] = m->ahead[parent];
		i = parent;
	}
	m->ahead[i] = *r;
}

static void
ahead_pop(RowMatcher *m, AheadRow *out)
{
	AheadRow	last;
	int			i = 0;

	*out = m->ahead[0];
	last = m->ahead[--m->nahead];
	for (;;)
	{
		int			c = 2 * i + 1;

		if (c >= m->nahead)
			break;
		if (c + 1 < m->nahead && ahead_less(&m->ahead[c + 1], &m->ahead[c]))
			c++;
		if (!ahead_less(&m->ahead[c], &last))
			break;
		m->ahead[i] = m->ahead[c];
		i = c;
	}
	if (m->nahead > 0)
		m->ahead[i] = last;
}

/* The next row of the heap scan, stamped and hashed; false at the end (or a row without a stamp). */
static bool
match_read_row(RowMatcher *m, AheadRow *r)
{
	LedgerState *st = m->st;
	HeapTuple	tup;
	AttrNumber	ta = st->info->txn_attnum - 1;
	AttrNumber	oa = st->info->ord_attnum - 1;

	if (m->scan_done || m->dirty)
		return false;
	/* from the first block (no synchronized scan), as the rows were inserted */
	if (m->scan == NULL)
		m->scan = table_beginscan_strat(st->rel, GetActiveSnapshot(), 0, NULL, true, false);
	tup = cl_heap_getnext(m->scan, ForwardScanDirection);
	if (tup == NULL)
	{
		m->scan_done = true;
		return false;
	}
	CHECK_FOR_INTERRUPTS();
	if ((++m->nrows % 1000000) == 0 && !m->quiet)
		ereport(NOTICE,
				(errmsg("verify of \"%s\": " UINT64_FORMAT " rows read",
						RelationGetRelationName(st->rel), m->nrows)));
	/* one deform for the stamp and the encoding */
	heap_deform_tuple(tup, m->rdesc, m->values, m->nulls);
	if (m->nulls[ta] || m->nulls[oa])
	{
		m->dirty = true;
		return false;
	}
	r->txn = DatumGetInt64(m->values[ta]);
	r->ord = DatumGetInt32(m->values[oa]);
	r->tid = tup->t_self;
	resetStringInfo(&m->buf);
	cl_encode_values(m->enc, m->values, m->nulls, r->txn, r->ord, &m->buf);
	cl_leaf_hash((const uint8_t *) m->buf.data, m->buf.len, r->hash);
	return true;
}

static void
match_spill_leaf(RowMatcher *m, Tuplesortstate **sort, int64 txn, int32 ord, uint64 pos,
				 const uint8 *hash, bool own)
{
	if (*sort == NULL)
		*sort = begin_stamp_sort(m->adesc, false, m->workmem);
	sort_leaf(*sort, m->aslot, txn, ord, pos, hash, own);
}

static void
match_spill_row(RowMatcher *m, const AheadRow *r)
{
	TupleTableSlot *slot = m->bslot;
	bytea	   *h = (bytea *) palloc(VARHDRSZ + CL_HASH_LEN);
	ItemPointerData tid = r->tid;

	if (m->sb == NULL)
		m->sb = begin_stamp_sort(m->bdesc, true, m->workmem);
	SET_VARSIZE(h, VARHDRSZ + CL_HASH_LEN);
	memcpy(VARDATA(h), r->hash, CL_HASH_LEN);
	ExecClearTuple(slot);
	slot->tts_values[SB_TXN - 1] = Int64GetDatum(r->txn);
	slot->tts_values[SB_ORD - 1] = Int32GetDatum(r->ord);
	slot->tts_values[SB_TID - 1] = PointerGetDatum(&tid);
	slot->tts_values[SB_HASH - 1] = PointerGetDatum(h);
	memset(slot->tts_isnull, 0, sizeof(bool) * 4);
	ExecStoreVirtualTuple(slot);
	tuplesort_puttupleslot(m->sb, slot);
	pfree(h);
	m->nb++;
}

/* A leaf and its row, met in order: their hashes must agree. */
static inline void
match_settle(RowMatcher *m, const AheadRow *r, const uint8 *hash)
{
	if (memcmp(r->hash, hash, CL_HASH_LEN) != 0)
		m->dirty = true;
}

/* The next leaf of the ledger, in position order (from put_leaf()). */
static void
match_leaf(RowMatcher *m, int64 txn, int32 ord, uint64 pos, const uint8 *hash, bool own)
{
	AheadRow	r;
	int			looked = 0;

	if (m->dirty)
		return;
	if (m->have_max && stamp_cmp(txn, ord, m->max_txn, m->max_ord) <= 0)
	{
		/* out of stamp order: matched by sorting, checked for a repeat */
		match_spill_leaf(m, &m->sa, txn, ord, pos, hash, own);
		match_spill_leaf(m, &m->sd, txn, ord, pos, hash, own);
		m->na++;
		m->nd++;
		return;
	}
	m->have_max = true;
	m->max_txn = txn;
	m->max_ord = ord;

	/* rows held ahead whose leaf is behind (or is no leaf): sorted */
	while (m->nahead > 0 && stamp_cmp(m->ahead[0].txn, m->ahead[0].ord, txn, ord) < 0)
	{
		ahead_pop(m, &r);
		match_spill_row(m, &r);
	}
	if (m->nahead > 0 && stamp_cmp(m->ahead[0].txn, m->ahead[0].ord, txn, ord) == 0)
	{
		ahead_pop(m, &r);
		match_settle(m, &r, hash);
		return;
	}
	while (looked < MATCH_LOOKAHEAD && match_read_row(m, &r))
	{
		int			c = stamp_cmp(r.txn, r.ord, txn, ord);

		looked++;
		if (c == 0)
		{
			match_settle(m, &r, hash);
			return;
		}
		if (c > 0 && m->nahead < MATCH_LOOKAHEAD)
		{
			ahead_push(m, &r);
			m->nheld++;
		}
		else
			match_spill_row(m, &r);
	}
	if (m->dirty)
		return;
	match_spill_leaf(m, &m->sa, txn, ord, pos, hash, own);
	m->na++;
}

static RowMatcher *
match_begin(LedgerState *st, TupleDesc adesc, TupleDesc bdesc)
{
	RowMatcher *m = palloc0(sizeof(RowMatcher));

	m->st = st;
	m->rdesc = RelationGetDescr(st->rel);
	m->enc = cl_ledger_encoder(st->info, m->rdesc, CurrentMemoryContext);
	m->values = cl_encoder_values(m->enc);
	m->nulls = cl_encoder_nulls(m->enc);
	initStringInfo(&m->buf);
	m->ahead = palloc(sizeof(AheadRow) * MATCH_LOOKAHEAD);
	m->workmem = Max(maintenance_work_mem / 3, 1024);
	m->adesc = adesc;
	m->bdesc = bdesc;
	m->aslot = MakeSingleTupleTableSlot(adesc, &TTSOpsVirtual);
	m->bslot = MakeSingleTupleTableSlot(bdesc, &TTSOpsVirtual);
	return m;
}

/*
 * The leaves that came out of stamp order (sort D) against every leaf, in
 * the order pass one met them: the leaves that were in order form
 * increasing ranges, one per record, recomputed from the log's and the
 * pending records' stamps alone (no leaf hash is read again).  A stamp of
 * sort D inside such a range, or twice in sort D, is held twice.
 */
typedef struct RepeatCheck
{
	RowMatcher *m;
	TupleTableSlot *slot;
	bool		have_d;
	int64		dtxn;
	int32		dord;
	bool		have_max;
	int64		max_txn;
	int32		max_ord;
} RepeatCheck;

static void
repeat_next_d(RepeatCheck *rc)
{
	bool		isnull;
	int64		ptxn = rc->dtxn;
	int32		pord = rc->dord;
	bool		had = rc->have_d;

	rc->have_d = tuplesort_gettupleslot(rc->m->sd, true, false, rc->slot, NULL);
	if (!rc->have_d)
		return;
	rc->dtxn = DatumGetInt64(slot_getattr(rc->slot, SA_TXN, &isnull));
	rc->dord = DatumGetInt32(slot_getattr(rc->slot, SA_ORD, &isnull));
	if (had && ptxn == rc->dtxn && pord == rc->dord)
		rc->m->dirty = true;
}

/* The leaves (txn, first .. first + n - 1), in order. */
static void
repeat_record(RepeatCheck *rc, int64 txn, int64 first, int64 n)
{
	int64		lo = first;
	int64		hi = first + n - 1;

	if (first < 0 || n <= 0 || hi > PG_INT32_MAX)
	{
		/* not how pass one met them: let the sorted path decide */
		rc->m->dirty = true;
		return;
	}
	if (rc->have_max && txn < rc->max_txn)
		return;
	if (rc->have_max && txn == rc->max_txn)
		lo = Max(lo, (int64) rc->max_ord + 1);
	if (lo > hi)
		return;
	rc->have_max = true;
	rc->max_txn = txn;
	rc->max_ord = (int32) hi;
	while (rc->have_d && !rc->m->dirty &&
		   stamp_cmp(rc->dtxn, rc->dord, txn, (int32) lo) < 0)
		repeat_next_d(rc);
	if (rc->have_d && rc->dtxn == txn && rc->dord <= hi)
		rc->m->dirty = true;
}

static void
match_check_repeats(RowMatcher *m, int64 last_txn)
{
	LedgerState *st = m->st;
	RepeatCheck rc;
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(st->info->ledger_id)};
	Portal		portal;
	int64		own_txn = 0;
	int32		own_n = 0;

	memset(&rc, 0, sizeof(rc));
	rc.m = m;
	rc.slot = MakeSingleTupleTableSlot(m->adesc, &TTSOpsMinimalTuple);
	tuplesort_performsort(m->sd);
	repeat_next_d(&rc);

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT txns, first_ords::pg_catalog.int8[], counts::pg_catalog.int8[] "
									   "FROM consent_ledger.log WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
									   "ORDER BY first_leaf",
									   1, types, vals, NULL, true, 0);
	while (rc.have_d && !m->dirty)
	{
		SPI_cursor_fetch(portal, true, 64);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed && rc.have_d && !m->dirty; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;
			ArrayType  *txns = DatumGetArrayTypeP(SPI_getbinval(t, d, 1, &isnull));
			ArrayType  *ords = DatumGetArrayTypeP(SPI_getbinval(t, d, 2, &isnull));
			ArrayType  *counts = DatumGetArrayTypeP(SPI_getbinval(t, d, 3, &isnull));
			int			nrec = ArrayGetNItems(ARR_NDIM(txns), ARR_DIMS(txns));

			CHECK_FOR_INTERRUPTS();
			/* pass one found these well-formed (or noted a problem: not here) */
			for (int k = 0; k < nrec && !m->dirty; k++)
				repeat_record(&rc, ((int64 *) ARR_DATA_PTR(txns))[k],
							  ((int64 *) ARR_DATA_PTR(ords))[k],
							  ((int64 *) ARR_DATA_PTR(counts))[k]);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);

	if (st->rel != NULL)
		own_n = cl_ledger_own_count(st->info->relid, &own_txn);
	if (rc.have_d && !m->dirty)
	{
		portal = open_pending(st->info->ledger_id, last_txn, own_txn);
		for (;;)
		{
			SPI_cursor_fetch(portal, true, 1000);
			if (SPI_processed == 0)
				break;
			for (uint64 i = 0; i < SPI_processed && rc.have_d && !m->dirty; i++)
			{
				HeapTuple	t = SPI_tuptable->vals[i];
				TupleDesc	d = SPI_tuptable->tupdesc;
				bool		isnull;

				repeat_record(&rc, DatumGetInt64(SPI_getbinval(t, d, 1, &isnull)),
							  DatumGetInt64(SPI_getbinval(t, d, 2, &isnull)),
							  DatumGetInt64(SPI_getbinval(t, d, 3, &isnull)));
			}
			SPI_freetuptable(SPI_tuptable);
			if (!rc.have_d || m->dirty)
				break;
		}
		SPI_cursor_close(portal);
	}
	if (rc.have_d && !m->dirty && own_n > 0)
		repeat_record(&rc, own_txn, 0, own_n);
	/* the rest of sort D, for a stamp it holds twice */
	while (rc.have_d && !m->dirty)
		repeat_next_d(&rc);
	ExecDropSingleTupleTableSlot(rc.slot);
}

/*
 * After the last leaf: the rows left go to sort B, and the two sorts must
 * pair off exactly (a leaf of the caller's own open transaction may lack
 * its row, as in scan_rows()).
 */
static void
match_finish(RowMatcher *m, int64 last_txn)
{
	AheadRow	r;

	while (!m->dirty && m->nahead > 0)
	{
		ahead_pop(m, &r);
		match_spill_row(m, &r);
	}
	while (!m->dirty && match_read_row(m, &r))
		match_spill_row(m, &r);
	if (m->dirty)
		return;
	if (m->sa != NULL || m->sb != NULL)
	{
		TupleTableSlot *a = MakeSingleTupleTableSlot(m->adesc, &TTSOpsMinimalTuple);
		TupleTableSlot *b = MakeSingleTupleTableSlot(m->bdesc, &TTSOpsMinimalTuple);
		bool		have_a = false;
		bool		have_b = false;

		if (m->sa != NULL)
		{
			tuplesort_performsort(m->sa);
			have_a = tuplesort_gettupleslot(m->sa, true, false, a, NULL);
		}
		if (m->sb != NULL)
		{
			tuplesort_performsort(m->sb);
			have_b = tuplesort_gettupleslot(m->sb, true, false, b, NULL);
		}
		while ((have_a || have_b) && !m->dirty)
		{
			bool		isnull;
			int			cmp;

			CHECK_FOR_INTERRUPTS();
			if (!have_b)
				cmp = -1;
			else if (!have_a)
				cmp = 1;
			else
				cmp = stamp_cmp(DatumGetInt64(slot_getattr(a, SA_TXN, &isnull)),
								DatumGetInt32(slot_getattr(a, SA_ORD, &isnull)),
								DatumGetInt64(slot_getattr(b, SB_TXN, &isnull)),
								DatumGetInt32(slot_getattr(b, SB_ORD, &isnull)));
			if (cmp < 0)
			{
				/* a leaf without its row: only the caller's own may */
				if (!DatumGetBool(slot_getattr(a, SA_OWN, &isnull)))
					m->dirty = true;
				have_a = tuplesort_gettupleslot(m->sa, true, false, a, NULL);
			}
			else if (cmp > 0)
				m->dirty = true;	/* a row without its leaf */
			else
			{
				bytea	   *ah = DatumGetByteaPP(slot_getattr(a, SA_HASH, &isnull));
				bytea	   *bh = DatumGetByteaPP(slot_getattr(b, SB_HASH, &isnull));

				if (memcmp(VARDATA_ANY(ah), VARDATA_ANY(bh), CL_HASH_LEN) != 0)
					m->dirty = true;
				have_a = tuplesort_gettupleslot(m->sa, true, false, a, NULL);
				have_b = tuplesort_gettupleslot(m->sb, true, false, b, NULL);
			}
		}
		ExecDropSingleTupleTableSlot(a);
		ExecDropSingleTupleTableSlot(b);
	}
	if (!m->dirty && m->sd != NULL)
		match_check_repeats(m, last_txn);
}

static void
match_end(RowMatcher *m)
{
	if (m->scan != NULL)
		table_endscan(m->scan);
	if (m->sa != NULL)
		tuplesort_end(m->sa);
	if (m->sb != NULL)
		tuplesort_end(m->sb);
	if (m->sd != NULL)
		tuplesort_end(m->sd);
	ExecDropSingleTupleTableSlot(m->aslot);
	ExecDropSingleTupleTableSlot(m->bslot);
	cl_encoder_free(m->enc);
	pfree(m->ahead);
}

/*
 * The merge pass over a ledger (see above): a LedgerState with its table
 * still open, and *settled when nothing was found wrong -- every row
 * paired with its leaf and hashing to it, and no problem noted by the
 * log's, checkpoints' and stored hashes' checks.  When want_root is not
 * NULL, the Merkle root of the log's first want_size leaves is put there
 * (*have_root says whether the log holds that many).  A ledger whose table
 * is dropped or cannot be read has no rows to pair: settled when no
 * problem was noted.
 */
static LedgerState *
merge_ledger(ClLedgerInfo *info, bool *settled, uint64 want_size, uint8 *want_root,
			 bool *have_root, uint64 *announced, uint64 *nsorted, bool progress)
{
	LedgerState *st = palloc0(sizeof(LedgerState));
	ClLedgerInfo *fresh = cl_ledger_by_id(info->ledger_id);
	TupleDesc	adesc;
	TupleDesc	bdesc;
	LogStream	ls;
	RowMatcher *m = NULL;

	info = start_ledger_state(st, fresh != NULL ? fresh : info);
	*settled = false;
	*announced = 0;

	make_sort_descs(&adesc, &bdesc);

	if (st->rel != NULL)
	{
		m = match_begin(st, adesc, bdesc);
		m->quiet = !progress;
	}
	memset(&ls, 0, sizeof(ls));
	ls.st = st;
	ls.tiles = cl_tiles_check_begin(info->ledger_id);
	ls.tree = palloc0(sizeof(BlockFrontier));
	ls.slot = MakeSingleTupleTableSlot(adesc, &TTSOpsVirtual);
	ls.match = m;
	ls.want_root = want_root;
	ls.want_size = want_size;
	if (want_root != NULL && want_size == 0)
	{
		block_frontier_root(ls.tree, want_root);
		ls.have_want = true;
	}
	stream_log(st, info->ledger_id, &ls);
	if (have_root != NULL)
		*have_root = ls.have_want;
	if (m != NULL)
	{
		if (st->problem == NULL)
			match_finish(m, ls.last_txn);
		ereport(DEBUG1,
				(errmsg_internal("consent_ledger verify of ledger %d, merge path: " UINT64_FORMAT " rows read, "
								 UINT64_FORMAT " leaves and " UINT64_FORMAT " rows sorted, " UINT64_FORMAT " leaves out of stamp order, %s",
								 info->ledger_id, m->nrows, m->na, m->nb, m->nd,
								 m->dirty || st->problem != NULL ? "not settled: verified again by sorting" : "settled")));
		*settled = !m->dirty && st->problem == NULL;
		*announced = m->nrows;
		if (nsorted != NULL)
			/* rows met out of leaf order: sorted, or held ahead a while */
			*nsorted = m->na + m->nb + m->nd + m->nheld;
		match_end(m);
	}
	else
		*settled = st->problem == NULL;
	ExecDropSingleTupleTableSlot(ls.slot);
	return st;
}

/*
 * What load_ledger(info, true) establishes for verify(), streamed: the
 * merge pass; verify_ledger_sorted() when it does not settle everything
 * (see above).  A ledger without rows to pair goes to the sorted path
 * directly, which sorts nothing then.
 */
static LedgerState *
verify_ledger_streamed(ClLedgerInfo *info)
{
	ClLedgerInfo *fresh = cl_ledger_by_id(info->ledger_id);
	ClLedgerInfo probe = fresh != NULL ? *fresh : *info;
	LedgerState *st;
	bool		settled;
	uint64		announced;

	if (!OidIsValid(probe.relid))
		return verify_ledger_sorted(info, 0);
	st = merge_ledger(info, &settled, 0, NULL, NULL, &announced, NULL, true);
	if (st->rel == NULL || !settled)
	{
		if (st->rel == NULL)
			announced = 0;
		release_ledger(st);
		return verify_ledger_sorted(info, announced);
	}
	return st;
}

/*
 * Whether verify() holds the ledger in memory (load_ledger: faster, about
 * VERIFY_BYTES_PER_LEAF bytes a leaf) or streams it (bounded memory):
 * in memory when the log's and the pending records' leaves fit in
 * consent_ledger.verify_memory (-1: maintenance_work_mem).  Two index
 * probes and a scan of the pending records' counts; SPI connected.
 */
#define VERIFY_BYTES_PER_LEAF 160

static bool
verify_in_memory(ClLedgerInfo *info)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(info->ledger_id)};
	bool		isnull;
	int64		leaves = 0;
	int64		limit_kb = cl_verify_memory_kb >= 0 ? cl_verify_memory_kb : maintenance_work_mem;

	if (limit_kb == 0)
		return false;
	if (SPI_execute_with_args("SELECT (SELECT first_leaf OPERATOR(pg_catalog.+) nleaves FROM consent_ledger.log "
							  "       WHERE ledger_id OPERATOR(pg_catalog.=) $1 ORDER BY first_leaf DESC LIMIT 1), "
							  "(SELECT pg_catalog.sum(nleaves) FROM consent_ledger.pending "
							  "  WHERE ledger_id OPERATOR(pg_catalog.=) $1)::pg_catalog.int8",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.log");
	for (int k = 1; k <= 2; k++)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, k, &isnull);

		if (!isnull)
			leaves += DatumGetInt64(d);
	}
	return leaves <= limit_kb * 1024 / VERIFY_BYTES_PER_LEAF;
}

/*
 * What verify() says of a ledger whose table was dropped: the rows are
 * gone, so they are not rechecked; the stored leaf hashes are, against
 * every signed checkpoint (their Merkle roots, the signatures, the chain).
 */
#define CL_DROPPED_NOTE "table dropped: rows not rechecked; log, checkpoint chain and signatures verified"

typedef struct VerifyOne
{
	ClLedgerInfo *info;
	Datum		values[5];
	bool		nulls[5];
} VerifyOne;

static void
verify_one(void *arg)
{
	VerifyOne  *v = arg;
	ClLedgerInfo *info = v->info;
	LedgerState *st;
	Oid			relation;

	if (verify_in_memory(info))
		st = load_ledger(info, true);
	else
		st = verify_ledger_streamed(info);
	relation = ledger_regclass(st->info);
	v->values[0] = ObjectIdGetDatum(relation);
	v->nulls[0] = !OidIsValid(relation);
	v->values[1] = Int64GetDatum((int64) (st->nsealed + st->npending));
	v->values[2] = Int64GetDatum((int64) st->npending);
	v->values[3] = BoolGetDatum(st->problem == NULL);
	if (st->problem == NULL && st->dropped)
		v->values[4] = CStringGetTextDatum(CL_DROPPED_NOTE);
	else if (st->problem == NULL)
		v->nulls[4] = true;
	else
	{
		char	   *p = st->problem;

		if (st->nproblems > 1)
			p = psprintf("%s (" INT64_FORMAT " problems in all)", p, st->nproblems);
		if (st->dropped)
			p = psprintf("%s (table dropped: rows not rechecked)", p);
		else if (st->rel == NULL)
			p = psprintf("%s (rows not rechecked)", p);
		v->values[4] = CStringGetTextDatum(p);
	}
	release_ledger(st);
}

/*
 * consent_ledger.verify(relation regclass DEFAULT NULL)
 *	 RETURNS TABLE (relation, rows, pending, valid, problem)
 *
 * Without an argument every ledger is verified, each in an internal
 * subtransaction: an error while verifying one (a table whose file cannot
 * be read, a damaged page) is reported as that ledger's problem, and the
 * others are still verified.  A cancel or shutdown still ends the call.
 * A dropped ledger's relation is the OID its table had, or NULL when a
 * relation has taken that OID since.
 */
Datum
cl_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *ledgers;
	ListCell   *lc;
	bool		all = PG_ARGISNULL(0);

	InitMaterializedSRF(fcinfo, 0);
	if (all)
		ledgers = cl_ledger_list();
	else if (get_rel_relkind(PG_GETARG_OID(0)) == RELKIND_PARTITIONED_TABLE &&
			 (ledgers = cl_partition_ledgers(PG_GETARG_OID(0))) != NIL)
		;						/* a partitioned ledger (or a retired one): a row per partition */
	else
		ledgers = list_make1(ledger_or_error(PG_GETARG_OID(0)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	foreach(lc, ledgers)
	{
		VerifyOne	v;

		memset(&v, 0, sizeof(v));
		v.info = lfirst(lc);
		if (!all)
			verify_one(&v);
		else
		{
			ErrorData  *edata = cl_run_in_subxact(verify_one, &v);

			if (edata != NULL)
			{
				Oid			relation;

				if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
					ReThrowError(edata);
				relation = ledger_regclass(v.info);
				memset(v.nulls, 0, sizeof(v.nulls));
				v.values[0] = ObjectIdGetDatum(relation);
				v.nulls[0] = !OidIsValid(relation);
				v.nulls[1] = v.nulls[2] = true;
				v.values[3] = BoolGetDatum(false);
				v.values[4] = CStringGetTextDatum(psprintf("could not be verified: %s (SQLSTATE %s)",
														   edata->message,
														   unpack_sql_state(edata->sqlerrcode)));
				FreeErrorData(edata);
			}
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v.values, v.nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * Builds the jsonb result in the caller's memory context and closes SPI:
 * everything palloc'd since SPI_connect() dies with SPI_finish().
 */
static Datum
jsonb_result_and_finish(const char *s, MemoryContext outer)
{
	MemoryContext old = MemoryContextSwitchTo(outer);
	Datum		result = DirectFunctionCall1(jsonb_in, CStringGetDatum(s));

	MemoryContextSwitchTo(old);
	SPI_finish();
	return result;
}

void
cl_append_json_b64(StringInfo buf, const char *key, const uint8_t *p, size_t len, bool comma)
{
	char	   *b = palloc(cl_base64_encoded_len(len) + 1);

	cl_base64_encode(p, len, b);
	appendStringInfo(buf, "%s\"%s\": \"%s\"", comma ? ", " : "", key, b);
	pfree(b);
}

/* consent_ledger.checkpoint(relation regclass) RETURNS jsonb: the latest one */
Datum
cl_sql_checkpoint(PG_FUNCTION_ARGS)
{
	ClLedgerInfo *info = ledger_or_error(PG_GETARG_OID(0));
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(info->ledger_id)};
	char	   *note;
	bool		isnull;
	cl_checkpoint cp;
	const char *err;
	StringInfoData buf;
	char		hex[CL_KEYID_LEN * 2 + 1];
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT note, seq FROM consent_ledger.checkpoints "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 ORDER BY seq DESC LIMIT 1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger \"%s\" has no checkpoint yet", ledger_name(info)),
				 errhint("Call consent_ledger.seal(), or wait consent_ledger.seal_interval.")));
	note = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* the note carries its witnesses' cosignature lines (README "Witnesses") */
	note = cl_cosigned_note(info->ledger_id,
							DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
							note);
	if (!cl_checkpoint_parse(note, strlen(note), &cp, &err))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored checkpoint of \"%s\" is malformed: %s", ledger_name(info), err),
				 errhint("Run consent_ledger.verify() on the ledger.")));

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"origin\": ");
	escape_json(&buf, cp.origin);
	appendStringInfo(&buf, ", \"tree_size\": " UINT64_FORMAT, cp.size);
	cl_append_json_b64(&buf, "root_hash", cp.root, CL_HASH_LEN, true);
	appendStringInfo(&buf, ", \"time\": " INT64_FORMAT, cp.time);
	cl_append_json_b64(&buf, "prev_hash", cp.prev, CL_HASH_LEN, true);
	cl_hex_encode(cp.sigs[0].keyid, CL_KEYID_LEN, hex);
	appendStringInfo(&buf, ", \"key_id\": \"%s\"", hex);
	cl_append_json_b64(&buf, "signature", cp.sigs[0].sig, CL_SIG_LEN, true);
	appendStringInfoString(&buf, ", \"note\": ");
	escape_json(&buf, note);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(jsonb_result_and_finish(buf.data, outer));
}

/*
 * A receipt's verdict once the root of its first size leaves is known:
 * rehashed from the rows, or from the stored log when the table is
 * dropped (and said so).
 */
static bool
root_verdict(LedgerState *st, ClLedgerInfo *info, uint64 size,
			 const uint8 *root, const uint8 *want, char **reason)
{
	if (memcmp(root, want, CL_HASH_LEN) != 0)
	{
		if (st->dropped)
			*reason = psprintf("the stored log of %s does not have the receipt's root at tree size " UINT64_FORMAT " (table dropped: rows not rehashed)",
							   ledger_name(info), size);
		else
			*reason = psprintf("the rows of %s, rehashed now, do not have the receipt's root at tree size " UINT64_FORMAT,
							   ledger_name(info), size);
		return false;
	}
	if (st->dropped)
		*reason = "table dropped: the stored log, not the rows, has the receipt's root at its tree size";
	return true;
}

/*
 * Checks a receipt (SPI connected).  Returns whether it holds; *reason is
 * set to why not, or, when it holds, to a remark on what was checked
 * (NULL when there is nothing to remark).  Never raises an error for
 * anything in the receipt: auditors run this over many receipts.
 *
 * The receipt holds only when cl_receipt_read() accepts it -- the reader
 * the offline verifier uses: a JSON object, strictly read, whose "note" is
 * a well formed checkpoint note and whose every convenience member agrees
 * with the note (or a bare note) --
 * the note is signed by a key recorded in consent_ledger.keys, names a
 * ledger of this database, and that ledger's rows -- rehashed now, not
 * read from stored hashes -- have exactly the note's root at the note's
 * size.  Because the first size leaves recomputed from the rows must
 * reproduce the receipt's root, this is the consistency check: the
 * ledger today is an append-only extension of the attested state.  When
 * the ledger's table was dropped, its rows are gone: the stored leaf
 * hashes of the log are checked against the receipt instead, and the
 * remark says so.  While a relation has the ledger's OID the stored log
 * never stands in for its rows: a table that cannot be read or does not
 * fit (TableState.problem) fails the receipt.
 */
static bool
check_receipt(const char *text, size_t len, char **reason)
{
	char	   *note;
	char	   *mnote;
	size_t		notelen;
	cl_checkpoint cp;
	char		why[256];
	ClLedgerInfo *info = NULL;
	ListCell   *lc;
	LedgerState *st;
	cl_frontier f;
	cl_hash		root;
	uint8_t		signer[CL_PUBKEY_LEN];
	bool		ok = true;

	*reason = NULL;
	if (!cl_receipt_read(text, len, &cp, &mnote, &notelen, why, sizeof(why)))
	{
		*reason = pstrdup(why);
		return false;
	}
	/* (malloc'd: copied before anything here can raise an error) */
	note = palloc(notelen + 1);
	memcpy(note, mnote, notelen + 1);
	free(mnote);
	if (strlen(note) != notelen)
	{
		*reason = "malformed checkpoint note: it contains U+0000";
		return false;
	}

	foreach(lc, cl_ledger_list())
	{
		ClLedgerInfo *l = lfirst(lc);

		if (strcmp(l->origin, cp.origin) == 0)
			info = l;
	}
	if (info == NULL)
	{
		*reason = psprintf("no ledger in this database has origin \"%s\"", cp.origin);
		return false;
	}
	if (!note_signed_by_known_key(&cp, note, signer))
	{
		*reason = "the note is not signed by a key recorded in consent_ledger.keys";
		return false;
	}

	/*
	 * The merge pass first (bounded memory), unless the ledger fits
	 * consent_ledger.verify_memory: when it settles the ledger, every row
	 * hashes to its leaf, so the rows' root at the receipt's size is the
	 * log's, which it computed on the way.  Otherwise the ledger is held
	 * in memory (load_ledger), which words the reasons.
	 */
	if (!verify_in_memory(info))
	{
		bool		settled;
		bool		have_root;
		uint64		announced;

		st = merge_ledger(info, &settled, cp.size, root, &have_root, &announced, NULL, true);
		if (settled)
		{
			if (cp.size > st->nsealed || !have_root)
			{
				*reason = psprintf("the receipt's tree size " UINT64_FORMAT " exceeds the " UINT64_FORMAT " leaves sealed in the log of %s",
								   cp.size, st->nsealed, ledger_name(info));
				ok = false;
			}
			else
				ok = root_verdict(st, info, cp.size, root, cp.root, reason);
			release_ledger(st);
			return ok;
		}
		release_ledger(st);
	}

	st = load_ledger(info, true);
	if (st->table.problem != NULL)
	{
		/* never the stored log instead of rows that exist */
		*reason = psprintf("%s: %s", ledger_name(info), st->table.problem);
		release_ledger(st);
		return false;
	}
	if (cp.size > st->nsealed)
	{
		*reason = psprintf("the receipt's tree size " UINT64_FORMAT " exceeds the " UINT64_FORMAT " leaves sealed in the log of %s",
						   cp.size, st->nsealed, ledger_name(info));
		ok = false;
	}
	for (uint64 i = 0; ok && !st->dropped && i < cp.size; i++)
		if (!st->seen[i])
		{
			*reason = psprintf("no row of %s holds leaf " UINT64_FORMAT, ledger_name(info), i);
			ok = false;
		}
	if (ok)
	{
		cl_frontier_init(&f);
		for (uint64 i = 0; i < cp.size; i++)
			cl_frontier_append(&f, st->dropped ? st->expected[i] : st->actual[i]);
		cl_frontier_root(&f, root);
		ok = root_verdict(st, info, cp.size, root, cp.root, reason);
	}
	release_ledger(st);
	return ok;
}

/*
 * A receipt argument as the text check_receipt() reads.  A text argument
 * is read as it is, byte for byte, by the strict reader the offline
 * verifier uses.  A jsonb argument is read as its text (jsonb's output):
 * what jsonb input already collapsed -- duplicate keys (the last one
 * kept), 3e0 or -0 (the number 3 or 0), whitespace, member order -- cannot
 * be seen.  NULL with *reason set when it is no JSON object.
 */
static char *
receipt_argument(FunctionCallInfo fcinfo, bool is_text, char **reason)
{
	Jsonb	   *jb;

	if (is_text)
		return text_to_cstring(PG_GETARG_TEXT_PP(0));
	jb = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
	{
		*reason = "the receipt is not a JSON object (pass the object consent_ledger.checkpoint() returns)";
		return NULL;
	}
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

static Datum
verify_checkpoint(FunctionCallInfo fcinfo, bool is_text)
{
	char	   *reason = NULL;
	char	   *text = receipt_argument(fcinfo, is_text, &reason);
	bool		ok = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (text != NULL)
		ok = check_receipt(text, strlen(text), &reason);
	if (!ok)
		ereport(NOTICE,
				(errmsg("receipt does not verify: %s", reason)));
	SPI_finish();
	PG_RETURN_BOOL(ok);
}

static Datum
verify_checkpoint_detail(FunctionCallInfo fcinfo, bool is_text)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *reason = NULL;
	char	   *text = receipt_argument(fcinfo, is_text, &reason);
	Datum		values[2];
	bool		nulls[2] = {false, false};

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = BoolGetDatum(text != NULL && check_receipt(text, strlen(text), &reason));
	if (reason == NULL)
		nulls[1] = true;
	else
		values[1] = CStringGetTextDatum(reason);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	SPI_finish();
	return (Datum) 0;
}

/*
 * consent_ledger.verify_checkpoint(checkpoint jsonb | text, witnesses text[],
 *	 quorum integer DEFAULT 1) RETURNS boolean
 *
 * check_receipt(), and then the quorum (README "Witnesses"): at least
 * quorum distinct witnesses among the given witness keys cosigned the
 * receipt's note (cl_quorum_count(), the offline verifier's rule), or a
 * later checkpoint of the ledger stored here that is consistent with it
 * (later_checkpoint_quorum()).  A history the log's own key re-signed has
 * no such cosignatures.  The reason for false is given as a NOTICE.
 */
/*
 * A receipt without its own quorum still holds when a later checkpoint of
 * the same ledger stored here has the quorum and is consistent with it:
 * both pass check_receipt(), so both roots are roots of the ledger's rows,
 * rehashed now, and the receipt's tree is a prefix of the later one's.
 * Newest first; on success *reason says which checkpoint vouched.
 */
static bool
later_checkpoint_quorum(const cl_checkpoint *cp, ArrayType *witnesses, int quorum, char **reason)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		vals[2] = {CStringGetTextDatum(cp->origin), Int64GetDatum((int64) cp->size)};
	int			n;
	int32	   *ids;
	int64	   *seqs;
	int64	   *sizes;
	char	  **notes;
	char	   *first_reason = *reason;

	if (!OidIsValid(get_relname_relid("cosignatures", cl_schema_oid(false))))
		return false;
	if (SPI_execute_with_args("SELECT c.ledger_id, c.seq, c.tree_size, c.note "
							  "FROM consent_ledger.checkpoints c "
							  "JOIN consent_ledger.ledgers l ON l.ledger_id OPERATOR(pg_catalog.=) c.ledger_id "
							  "WHERE l.origin OPERATOR(pg_catalog.=) $1 AND c.tree_size OPERATOR(pg_catalog.>=) $2 "
							  "AND EXISTS (SELECT FROM consent_ledger.cosignatures s "
							  "WHERE s.ledger_id OPERATOR(pg_catalog.=) c.ledger_id AND s.seq OPERATOR(pg_catalog.=) c.seq) "
							  "ORDER BY c.seq DESC",
							  2, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	n = (int) SPI_processed;
	ids = palloc(sizeof(int32) * Max(n, 1));
	seqs = palloc(sizeof(int64) * Max(n, 1));
	sizes = palloc(sizeof(int64) * Max(n, 1));
	notes = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;

		ids[i] = DatumGetInt32(SPI_getbinval(t, d, 1, &isnull));
		seqs[i] = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
		sizes[i] = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
		notes[i] = SPI_getvalue(t, d, 4);
	}
	for (int i = 0; i < n; i++)
	{
		char	   *full = cl_cosigned_note(ids[i], seqs[i], notes[i]);
		char	   *r = NULL;

		if (cl_witness_quorum(full, witnesses, quorum, &r) < quorum)
			continue;
		if (!check_receipt(full, strlen(full), &r))
			continue;
		*reason = psprintf("the receipt has no quorum of its own; the later checkpoint at tree size " INT64_FORMAT
						   " has it, and both are roots of the ledger's rows, rehashed now",
						   sizes[i]);
		return true;
	}
	*reason = first_reason;
	return false;
}

static Datum
verify_checkpoint_quorum(FunctionCallInfo fcinfo, bool is_text)
{
	char	   *reason = NULL;
	char	   *text;
	bool		ok = false;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	text = receipt_argument(fcinfo, is_text, &reason);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (text != NULL)
		ok = check_receipt(text, strlen(text), &reason);
	if (ok)
	{
		cl_checkpoint cp;
		char	   *note;
		size_t		notelen;
		char		why[256];

		/* the note as check_receipt() read it */
		if (!cl_receipt_read(text, strlen(text), &cp, &note, &notelen, why, sizeof(why)))
		{
			ok = false;
			reason = pstrdup(why);
		}
		else
		{
			char	   *pnote = pnstrdup(note, notelen);

			free(note);
			ok = cl_witness_quorum(pnote, PG_GETARG_ARRAYTYPE_P(1), PG_GETARG_INT32(2), &reason) >= PG_GETARG_INT32(2);
			if (!ok && later_checkpoint_quorum(&cp, PG_GETARG_ARRAYTYPE_P(1), PG_GETARG_INT32(2), &reason))
			{
				ok = true;
				ereport(NOTICE,
						(errmsg("receipt verifies: %s", reason)));
			}
		}
	}
	if (!ok)
		ereport(NOTICE,
				(errmsg("receipt does not verify: %s", reason)));
	SPI_finish();
	PG_RETURN_BOOL(ok);
}

Datum
cl_verify_checkpoint_quorum(PG_FUNCTION_ARGS)
{
	return verify_checkpoint_quorum(fcinfo, false);
}

Datum
cl_verify_checkpoint_quorum_text(PG_FUNCTION_ARGS)
{
	return verify_checkpoint_quorum(fcinfo, true);
}

/*
 * consent_ledger.verify_checkpoint(checkpoint jsonb | text) RETURNS boolean
 *
 * check_receipt()'s answer; the reason for false is given as a NOTICE
 * (verify_checkpoint_detail() returns it instead).
 */
Datum
cl_verify_checkpoint(PG_FUNCTION_ARGS)
{
	return verify_checkpoint(fcinfo, false);
}

Datum
cl_verify_checkpoint_text(PG_FUNCTION_ARGS)
{
	return verify_checkpoint(fcinfo, true);
}

/*
 * consent_ledger.verify_checkpoint_detail(checkpoint jsonb | text)
 *	 RETURNS TABLE (valid boolean, reason text)
 *
 * One row: check_receipt()'s answer and its reason (NULL when a receipt
 * holds with nothing to remark).
 */
Datum
cl_verify_checkpoint_detail(PG_FUNCTION_ARGS)
{
	return verify_checkpoint_detail(fcinfo, false);
}

Datum
cl_verify_checkpoint_detail_text(PG_FUNCTION_ARGS)
{
	return verify_checkpoint_detail(fcinfo, true);
}

/*
 * The dropped ledger whose table had this name ("table" or
 * "schema.table", read as an identifier list), or NULL.  A name several
 * dropped ledgers had is refused: the caller names one by id.
 */
static ClLedgerInfo *
dropped_ledger_by_name(const char *ref)
{
	List	   *names = stringToQualifiedNameList(ref);
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};
	ClLedgerInfo *found = NULL;
	int32		id;
	bool		isnull;

	if (list_length(names) == 1)
	{
		vals[0] = CStringGetTextDatum(strVal(linitial(names)));
		nulls[1] = 'n';
		vals[1] = (Datum) 0;
	}
	else if (list_length(names) == 2)
	{
		vals[0] = CStringGetTextDatum(strVal(lsecond(names)));
		vals[1] = CStringGetTextDatum(strVal(linitial(names)));
	}
	else
		return NULL;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT ledger_id FROM consent_ledger.dropped_ledgers "
							  "WHERE table_name OPERATOR(pg_catalog.=) $1 "
							  "AND ($2 IS NULL OR schema_name OPERATOR(pg_catalog.=) $2) "
							  "ORDER BY ledger_id",
							  2, types, vals, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.dropped_ledgers");
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("ledger name \"%s\" is ambiguous", ref),
				 errdetail("The tables of " UINT64_FORMAT " dropped ledgers had that name.", SPI_processed),
				 errhint("Name the ledger by its ledger id: SELECT * FROM consent_ledger.dropped_ledgers lists them.")));
	if (SPI_processed == 1)
	{
		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		found = cl_ledger_by_id(id);
	}
	else
		SPI_finish();
	return found;
}

/*
 * The relation a name denotes (as to_regclass() reads it), or InvalidOid:
 * no error for a name that is no relation or has bad syntax (*is_name is
 * then false).
 */
static Oid
live_relation_by_name(const char *ref, bool *is_name)
{
	char	   *copy = pstrdup(ref);
	List	   *parts;
	List	   *names;

	/* stringToQualifiedNameList() would raise 42602 for what this rejects */
	*is_name = SplitIdentifierString(copy, '.', &parts) && parts != NIL &&
		list_length(parts) <= 3;
	if (!*is_name)
		return InvalidOid;
	/* a three-part name elsewhere is a cross-database reference: none */
	if (list_length(parts) == 3 &&
		strcmp((char *) linitial(parts), get_database_name(MyDatabaseId)) != 0)
		return InvalidOid;
	names = stringToQualifiedNameList(ref);
	return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
}

/*
 * consent_ledger.ledger(ledger text) RETURNS regclass
 *
 * The relation of a ledger named by its ledger id (digits), its origin, or
 * its table's name (as a regclass would be read; for a dropped table, the
 * name it had when it was dropped).  For a dropped ledger (relid NULL)
 * the OID its table had, from consent_ledger.dropped_ledgers, which every
 * function taking a ledger's regclass accepts (cl_ledger_resolve) -- or an
 * error when a relation has taken that OID since, so that the other
 * relation is never returned for the dropped ledger.
 */
Datum
cl_sql_ledger(PG_FUNCTION_ARGS)
{
	char	   *ref = text_to_cstring(PG_GETARG_TEXT_PP(0));
	size_t		len = strlen(ref);
	ClLedgerInfo *found = NULL;
	ListCell   *lc;
	Oid			relation;
	bool		is_name = true;

	if (len > 0 && len <= 9 && strspn(ref, "0123456789") == len)
		found = cl_ledger_by_id((int32) strtol(ref, NULL, 10));
	else
	{
		foreach(lc, cl_ledger_list())
		{
			ClLedgerInfo *l = lfirst(lc);

			if (strcmp(l->origin, ref) == 0)
				found = l;
		}
		if (found == NULL)
		{
			/*
			 * A live table first, the name read as a regclass would be; a
			 * name that is no relation, or not a name at all (bad quoting,
			 * too many dots, another database), is no error: it is looked
			 * for among the dropped ledgers, and is otherwise 42704 ...
			 */
			Oid			relid = live_relation_by_name(ref, &is_name);

			if (OidIsValid(relid))
				found = cl_ledger_lookup(relid);
		}
		/* ... then the name a dropped ledger's table had */
		if (found == NULL && is_name)
			found = dropped_ledger_by_name(ref);
	}
	if (found == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no ledger \"%s\"", ref),
				 errdetail("A ledger is named by its ledger id, its origin, or the name of its table (for a dropped table, the name it had when it was dropped)."),
				 errhint("consent_ledger.ledgers lists every ledger, retired and dropped ones included; consent_ledger.dropped_ledgers the names of dropped ones.")));
	relation = ledger_regclass(found);
	if (!OidIsValid(relation))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger %d (\"%s\") has no relation to name it by", found->ledger_id, ref),
				 errdetail("Its table was dropped, and %s.",
						   OidIsValid(cl_ledger_dropped_relid(found->ledger_id)) ?
						   "the OID it had now belongs to another relation" :
						   "its drop is not recorded in consent_ledger.dropped_ledgers"),
				 errhint("consent_ledger.verify() without argument verifies it; its receipts verify by origin with consent_ledger.verify_checkpoint().")));
	PG_RETURN_OID(relation);
}

void
cl_append_json_path(StringInfo buf, const cl_hash *path, int n)
{
	appendStringInfoString(buf, ", \"path\": [");
	for (int i = 0; i < n; i++)
	{
		char		b[64];

		cl_base64_encode(path[i], CL_HASH_LEN, b);
		appendStringInfo(buf, "%s\"%s\"", i ? ", " : "", b);
	}
	appendStringInfoChar(buf, ']');
}

static uint64
latest_size(LedgerState *st)
{
	if (st->checkpoints == NIL)
		return 0;
	return ((Checkpoint *) llast(st->checkpoints))->size;
}

/*
 * The tree size of a ledger's latest checkpoint, read from its signed note
 * (0 when it has none, or the note does not parse: verify() reports that).
 * One index probe; SPI connected.
 */
static uint64
latest_checkpoint_size(ClLedgerInfo *info)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(info->ledger_id)};
	bool		isnull;
	char	   *note;
	cl_checkpoint cp;
	const char *err;

	if (SPI_execute_with_args("SELECT note, seq FROM consent_ledger.checkpoints "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 ORDER BY seq DESC LIMIT 1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	if (SPI_processed == 0)
		return 0;
	note = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* the note carries its witnesses' cosignature lines (README "Witnesses") */
	note = cl_cosigned_note(info->ledger_id,
							DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
							note);
	if (!cl_checkpoint_parse(note, strlen(note), &cp, &err))
		return 0;
	return cp.size;
}

static void
check_proof_size(ClLedgerInfo *info, uint64 latest, int64 size, const char *what)
{
	if (size < 0 || (uint64) size > latest)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s " INT64_FORMAT " is out of range", what, size),
				 errdetail("The latest checkpoint of \"%s\" covers " UINT64_FORMAT " leaves.",
						   ledger_name(info), latest),
				 errhint("Call consent_ledger.seal() to seal committed rows first.")));
}

static void
proof_stats(ClTreeReader *reader, const char *what)
{
	uint64		queries;
	uint64		recomputed;

	cl_tree_reader_stats(reader, &queries, &recomputed);
	ereport(DEBUG1,
			(errmsg_internal("consent_ledger %s: " UINT64_FORMAT " queries of stored hashes, " UINT64_FORMAT " missing nodes recomputed, %zu bytes allocated in the backend",
							 what, queries, recomputed,
							 MemoryContextMemAllocated(TopMemoryContext, true))));
}

/*
 * consent_ledger.inclusion_proof(relation, leaf [, tree_size]) RETURNS jsonb
 *
 * From the stored subtree hashes (tiles.c): O(log n) of them, read in about
 * two queries per level of 256, whatever the ledger's size.  The root is
 * computed from the same stored hashes; a client checks the path against
 * the root of a signed checkpoint, which a wrong stored hash cannot reach.
 */
Datum
cl_sql_inclusion_proof(PG_FUNCTION_ARGS)
{
	ClLedgerInfo *info = ledger_or_error(PG_GETARG_OID(0));
	int64		leaf = PG_GETARG_INT64(1);
	int64		size;
	uint64		latest;
	ClTreeReader *reader;
	cl_hash		path[CL_MAX_PROOF + 1];
	cl_hash		root;
	cl_hash		leaf_hash;
	int			n;
	StringInfoData buf;
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	latest = latest_checkpoint_size(info);
	size = PG_NARGS() > 2 ? PG_GETARG_INT64(2) : (int64) latest;
	check_proof_size(info, latest, size, "tree_size");
	if (leaf < 0 || leaf >= size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("leaf " INT64_FORMAT " is out of range for tree size " INT64_FORMAT, leaf, size),
				 errhint("Leaves are numbered from 0 to tree_size - 1.")));
	reader = cl_tree_reader_create(info->ledger_id, true);
	n = cl_inclusion_proof_from(cl_tree_range, reader, (uint64) size, (uint64) leaf, path);
	if (n < 0)
		elog(ERROR, "could not build inclusion proof");
	cl_tree_range(reader, 0, (uint64) size, root);
	cl_tree_leaf(reader, (uint64) leaf, leaf_hash);
	proof_stats(reader, "inclusion proof");

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"type\": \"inclusion\", \"origin\": ");
	escape_json(&buf, info->origin);
	appendStringInfo(&buf, ", \"leaf_index\": " INT64_FORMAT ", \"tree_size\": " INT64_FORMAT, leaf, size);
	cl_append_json_b64(&buf, "leaf_hash", leaf_hash, CL_HASH_LEN, true);
	cl_append_json_b64(&buf, "root_hash", root, CL_HASH_LEN, true);
	cl_append_json_path(&buf, path, n);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(jsonb_result_and_finish(buf.data, outer));
}

/*
 * consent_ledger.consistency_proof(relation, old_size, new_size) RETURNS jsonb
 *
 * From the stored subtree hashes, like inclusion_proof().
 */
Datum
cl_sql_consistency_proof(PG_FUNCTION_ARGS)
{
	ClLedgerInfo *info = ledger_or_error(PG_GETARG_OID(0));
	int64		old_size = PG_GETARG_INT64(1);
	int64		new_size = PG_GETARG_INT64(2);
	uint64		latest;
	ClTreeReader *reader;
	cl_hash		path[CL_MAX_PROOF + 1];
	cl_hash		r1,
				r2;
	int			n;
	StringInfoData buf;
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	latest = latest_checkpoint_size(info);
	check_proof_size(info, latest, new_size, "new_size");
	if (old_size < 1 || old_size > new_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("old_size " INT64_FORMAT " is out of range for new_size " INT64_FORMAT,
						old_size, new_size),
				 errhint("old_size must be between 1 and new_size.")));
	reader = cl_tree_reader_create(info->ledger_id, true);
	n = cl_consistency_proof_from(cl_tree_range, reader, (uint64) old_size, (uint64) new_size, path);
	if (n < 0)
		elog(ERROR, "could not build consistency proof");
	cl_tree_range(reader, 0, (uint64) old_size, r1);
	cl_tree_range(reader, 0, (uint64) new_size, r2);
	proof_stats(reader, "consistency proof");

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"type\": \"consistency\", \"origin\": ");
	escape_json(&buf, info->origin);
	appendStringInfo(&buf, ", \"old_size\": " INT64_FORMAT ", \"new_size\": " INT64_FORMAT,
					 old_size, new_size);
	cl_append_json_b64(&buf, "old_root", r1, CL_HASH_LEN, true);
	cl_append_json_b64(&buf, "new_root", r2, CL_HASH_LEN, true);
	cl_append_json_path(&buf, path, n);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(jsonb_result_and_finish(buf.data, outer));
}

/*
 * The checkpoints of a ledger the merge pass settled (so every note
 * parses), in chain order, as check_checkpoints() lists them.
 */
static List *
read_checkpoints(LedgerState *st)
{
	Oid			types[1] = {INT4OID};
	Datum		vals[1] = {Int32GetDatum(st->info->ledger_id)};
	List	   *rows = NIL;

	if (SPI_execute_with_args("SELECT seq, note FROM consent_ledger.checkpoints "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 ORDER BY seq",
							  1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Checkpoint *c = palloc0(sizeof(Checkpoint));
		cl_checkpoint cp;
		const char *err;

		c->seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		c->note = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		if (!cl_checkpoint_parse(c->note, strlen(c->note), &cp, &err))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("checkpoint " INT64_FORMAT " of ledger %d is malformed: %s",
							c->seq, st->info->ledger_id, err),
					 errhint("Run consent_ledger.verify() on the ledger.")));
		c->size = cp.size;
		memcpy(c->root, cp.root, CL_HASH_LEN);
		rows = lappend(rows, c);
	}
	return rows;
}

/* ctids of the rows at each sealed position, for export and leaf_data */
static ItemPointerData *
map_positions(LedgerState *st, uint64 upto)
{
	ItemPointerData *tids = palloc_extended(sizeof(ItemPointerData) * Max(upto, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	TableScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc = RelationGetDescr(st->rel);

	scan = table_beginscan(st->rel, GetActiveSnapshot(), 0, NULL);
	while ((tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		n1,
					n2;
		Datum		d1 = heap_getattr(tup, st->info->txn_attnum, desc, &n1);
		Datum		d2 = heap_getattr(tup, st->info->ord_attnum, desc, &n2);
		uint64		pos;

		if (n1 || n2)
			continue;
		pos = position_of(st, DatumGetInt64(d1), DatumGetInt32(d2));
		if (pos < upto)
			tids[pos] = tup->t_self;
	}
	table_endscan(scan);
	return tids;
}

static void
encode_at(LedgerState *st, ClRowEncoder *enc, ItemPointer tid, uint64 pos, StringInfo buf)
{
	HeapTupleData tuple;
	Buffer		buffer;
	Chunk	   *c = chunk_at(st, pos);

	tuple.t_self = *tid;
	if (!ItemPointerIsValid(tid) || c == NULL ||
		!heap_fetch(st->rel, GetActiveSnapshot(), &tuple, &buffer, false))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ledger \"%s\" has no row at leaf " UINT64_FORMAT,
						RelationGetRelationName(st->rel), pos),
				 errhint("Run consent_ledger.verify() on the ledger.")));
	resetStringInfo(buf);
	cl_encode_row(enc, &tuple, c->txn, (int32) (c->first_ord + (int64) (pos - c->first_pos)), buf);
	ReleaseBuffer(buffer);
}

/*
 * export() and leaf_data() return rows' contents.  On a consent-protected
 * ledger that would hand out rows whose subjects did not consent, with no
 * policy in the way: only roles trusted with hidden rows may call them
 * there (auditors verify with verify() and receipts instead), and the
 * read is audited like any other.
 */
static void *
begin_row_read(ClLedgerInfo *info, const char *what)
{
	TableState	ts;
	ClLedgerInfo *fresh = cl_ledger_by_id(info->ledger_id);

	if (fresh == NULL)
	{
		fresh = palloc(sizeof(ClLedgerInfo));
		*fresh = *info;
	}
	info = fresh;
	table_state(info, &ts);
	if (!ts.gone && !ts.readable)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("%s of %s is not possible: %s", what, ledger_name(info), ts.problem),
				 errhint("Run consent_ledger.verify() on the ledger.")));
	if (ts.gone)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s of %s is not possible: its table was dropped", what, ledger_name(info)),
				 errdetail("%s returns the rows' contents, and the rows went with the table; its log and checkpoints stay.", what),
				 errhint("verify(), checkpoint(), inclusion_proof(), consistency_proof() and verify_checkpoint() still work; verify an export taken before the drop with consent-ledger-verify.")));
	if (!cl_is_protected(info->relid))
		return NULL;
	if (!cl_role_is_trusted(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s of consent-protected ledger \"%s\" is not allowed for role \"%s\"",
						what, get_rel_name(info->relid), GetUserNameFromId(GetUserId(), false)),
				 errdetail("It returns every row's contents, rows whose subjects did not consent included."),
				 errhint("verify() and receipts check the ledger without its contents; an administrator can export it.")));
	return cl_audit_copy_begin(info->relid, what);
}

/*
 * consent_ledger.export(relation regclass) RETURNS SETOF text
 *
 * The export file (README "Export format"): the ledger's origin, every
 * recorded public key, the canonical bytes of every sealed leaf in log
 * order (re-encoded from the rows), and every checkpoint.
 */
Datum
cl_export(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ClLedgerInfo *info = ledger_or_error(PG_GETARG_OID(0));
	LedgerState *st;
	ItemPointerData *tids;
	ClRowEncoder *enc;
	StringInfoData buf;
	StringInfoData line;
	uint64		upto;
	ListCell   *lc;
	Datum		v;
	bool		isnull = false;
	void	   *read = begin_row_read(info, "export()");
	bool		in_order;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * The merge pass first (bounded memory), unless the ledger fits
	 * consent_ledger.verify_memory: a ledger it settles meeting every row
	 * in leaf order (nothing sorted, no row held ahead of its leaf) holds
	 * its rows in the heap in leaf order, so they are exported by one more
	 * heap scan.  Otherwise the positions of the rows
	 * are mapped in memory, as before (about 40 bytes a leaf).
	 */
	if (verify_in_memory(info))
	{
		in_order = false;
		st = load_ledger(info, false);
	}
	else
	{
		bool		settled;
		uint64		announced;
		uint64		nsorted = 1;

		st = merge_ledger(info, &settled, 0, NULL, NULL, &announced, &nsorted, false);
		in_order = settled && st->rel != NULL && nsorted == 0;
		if (in_order)
			st->checkpoints = read_checkpoints(st);
		else
		{
			release_ledger(st);
			st = load_ledger(info, false);
		}
	}
	upto = latest_size(st);

#define EMIT(s) do { v = CStringGetTextDatum(s); \
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull); } while (0)

	EMIT("consent-ledger-export 1");
	EMIT(psprintf("origin %s", info->origin));
	if (SPI_execute("SELECT public_key FROM consent_ledger.keys GROUP BY public_key "
					"ORDER BY pg_catalog.min(first_seen), public_key", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.keys");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		n;
		bytea	   *pk = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &n));
		char		b[64];

		if (n || VARSIZE_ANY_EXHDR(pk) != CL_PUBKEY_LEN)
			continue;
		cl_base64_encode((uint8_t *) VARDATA_ANY(pk), CL_PUBKEY_LEN, b);
		EMIT(psprintf("key %s %s", CL_KEY_NAME, b));
	}
	/* the rotation statements, for verifiers that trust only one key */
	if (SPI_execute("SELECT endorsement FROM consent_ledger.keys WHERE endorsement IS NOT NULL "
					"GROUP BY endorsement ORDER BY pg_catalog.min(first_seen), endorsement", true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not read consent_ledger.keys")));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		n;
		char	   *note = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &n));
		size_t		len = strlen(note);
		char	   *b;
		cl_key_rotation r;
		const char *err;

		/* only what a verifier can use: a malformed one would fail it */
		if (!cl_rotation_parse(note, len, &r, &err) || !cl_rotation_verify(&r, note))
			continue;
		b = palloc(cl_base64_encoded_len(len) + 1);
		cl_base64_encode((uint8_t *) note, len, b);
		EMIT(psprintf("endorsement %s", b));
	}

	enc = cl_ledger_encoder(st->info, RelationGetDescr(st->rel), CurrentMemoryContext);
	initStringInfo(&buf);
	initStringInfo(&line);
	if (in_order)
	{
		/* the heap holds the rows in leaf order: the first upto are the leaves */
		TableScanDesc scan = table_beginscan_strat(st->rel, GetActiveSnapshot(), 0, NULL, true, false);
		TupleDesc	desc = RelationGetDescr(st->rel);
		HeapTuple	tup;
		uint64		pos = 0;

		while (pos < upto && (tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			bool		n1,
						n2;
			Datum		d1 = heap_getattr(tup, st->info->txn_attnum, desc, &n1);
			Datum		d2 = heap_getattr(tup, st->info->ord_attnum, desc, &n2);

			CHECK_FOR_INTERRUPTS();
			resetStringInfo(&buf);
			cl_encode_row(enc, tup, DatumGetInt64(d1), DatumGetInt32(d2), &buf);
			resetStringInfo(&line);
			appendStringInfoString(&line, "leaf ");
			enlargeStringInfo(&line, buf.len * 2 + 1);
			cl_hex_encode((uint8_t *) buf.data, buf.len, line.data + line.len);
			line.len += buf.len * 2;
			EMIT(line.data);
			pos++;
		}
		table_endscan(scan);
		if (pos < upto)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("ledger \"%s\" has no row at leaf " UINT64_FORMAT,
							RelationGetRelationName(st->rel), pos),
					 errhint("Run consent_ledger.verify() on the ledger.")));
	}
	else
	{
		tids = map_positions(st, upto);
		for (uint64 pos = 0; pos < upto; pos++)
		{
			CHECK_FOR_INTERRUPTS();
			encode_at(st, enc, &tids[pos], pos, &buf);
			resetStringInfo(&line);
			appendStringInfoString(&line, "leaf ");
			enlargeStringInfo(&line, buf.len * 2 + 1);
			cl_hex_encode((uint8_t *) buf.data, buf.len, line.data + line.len);
			line.len += buf.len * 2;
			EMIT(line.data);
		}
	}
	foreach(lc, st->checkpoints)
	{
		Checkpoint *c = lfirst(lc);
		/* with its witnesses' cosignature lines (README "Witnesses") */
		char	   *note = cl_cosigned_note(st->info->ledger_id, c->seq, c->note);
		size_t		len = strlen(note);
		char	   *b = palloc(cl_base64_encoded_len(len) + 1);

		cl_base64_encode((uint8_t *) note, len, b);
		EMIT(psprintf("checkpoint %s", b));
		pfree(b);
	}
	EMIT(psprintf("end " UINT64_FORMAT, upto));
#undef EMIT
	release_ledger(st);
	SPI_finish();
	cl_audit_copy_end(read, upto);
	return (Datum) 0;
}

/*
 * The stamp (transaction, ordinal) of sealed leaf pos, read from the one
 * log row that holds it; false when pos is not sealed (*nsealed is then
 * the number of sealed leaves).  Two index probes; SPI connected.
 */
static bool
sealed_stamp(ClLedgerInfo *info, uint64 pos, int64 *txn, int32 *ord, uint64 *nsealed)
{
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		vals[2] = {Int32GetDatum(info->ledger_id), Int64GetDatum((int64) pos)};
	HeapTuple	t;
	TupleDesc	d;
	bool		isnull;
	int64		first;
	int64		n;
	ArrayType  *txns;
	ArrayType  *ords;
	ArrayType  *counts;
	int			nrec;
	uint64		at;

	if (SPI_execute_with_args("SELECT first_leaf OPERATOR(pg_catalog.+) nleaves FROM consent_ledger.log "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 ORDER BY first_leaf DESC LIMIT 1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.log");
	*nsealed = SPI_processed == 0 ? 0 :
		(uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (pos >= *nsealed)
		return false;
	/* counts read as bigint whatever the columns' width (1.3 widened them) */
	if (SPI_execute_with_args("SELECT first_leaf, nleaves::pg_catalog.int8, txns, first_ords::pg_catalog.int8[], "
							  "counts::pg_catalog.int8[] FROM consent_ledger.log "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 AND first_leaf OPERATOR(pg_catalog.<=) $2 "
							  "ORDER BY first_leaf DESC LIMIT 1",
							  2, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.log");
	if (SPI_processed != 1)
		goto corrupt;
	t = SPI_tuptable->vals[0];
	d = SPI_tuptable->tupdesc;
	first = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
	n = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
	txns = DatumGetArrayTypeP(SPI_getbinval(t, d, 3, &isnull));
	ords = DatumGetArrayTypeP(SPI_getbinval(t, d, 4, &isnull));
	counts = DatumGetArrayTypeP(SPI_getbinval(t, d, 5, &isnull));
	nrec = ArrayGetNItems(ARR_NDIM(txns), ARR_DIMS(txns));
	if (first < 0 || pos >= (uint64) first + (uint64) Max(n, 0) ||
		ARR_ELEMTYPE(txns) != INT8OID || ARR_ELEMTYPE(ords) != INT8OID ||
		ARR_ELEMTYPE(counts) != INT8OID ||
		ARR_HASNULL(txns) || ARR_HASNULL(ords) || ARR_HASNULL(counts) ||
		ArrayGetNItems(ARR_NDIM(ords), ARR_DIMS(ords)) != nrec ||
		ArrayGetNItems(ARR_NDIM(counts), ARR_DIMS(counts)) != nrec)
		goto corrupt;
	at = (uint64) first;
	for (int k = 0; k < nrec; k++)
	{
		int64		c = ((int64 *) ARR_DATA_PTR(counts))[k];

		if (c <= 0)
			goto corrupt;
		if (pos < at + (uint64) c)
		{
			*txn = ((int64 *) ARR_DATA_PTR(txns))[k];
			*ord = (int32) (((int64 *) ARR_DATA_PTR(ords))[k] + (int64) (pos - at));
			return true;
		}
		at += (uint64) c;
	}
corrupt:
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("the log of ledger \"%s\" is corrupted at leaf " UINT64_FORMAT, ledger_name(info), pos),
			 errhint("Run consent_ledger.verify() on the ledger.")));
	return false;				/* keep the compiler quiet */
}

/*
 * The canonical bytes of the row stamped (txn, ord), found by a heap scan
 * that stops at the first match: O(1) memory whatever the ledger's size.
 */
static bytea *
encode_stamped_row(Relation rel, ClLedgerInfo *info, int64 txn, int32 ord, uint64 pos)
{
	ScanKeyData keys[2];
	TableScanDesc scan;
	HeapTuple	tup;
	ClRowEncoder *enc;
	StringInfoData buf;
	bytea	   *result = NULL;

	ScanKeyInit(&keys[0], info->txn_attnum, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(txn));
	ScanKeyInit(&keys[1], info->ord_attnum, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(ord));
	enc = cl_ledger_encoder(info, RelationGetDescr(rel), CurrentMemoryContext);
	initStringInfo(&buf);
	scan = table_beginscan(rel, GetActiveSnapshot(), 2, keys);
	if ((tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		cl_encode_row(enc, tup, txn, ord, &buf);
		result = SPI_palloc(VARHDRSZ + buf.len);
		SET_VARSIZE(result, VARHDRSZ + buf.len);
		memcpy(VARDATA(result), buf.data, buf.len);
	}
	table_endscan(scan);
	cl_encoder_free(enc);
	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ledger \"%s\" has no row at leaf " UINT64_FORMAT,
						RelationGetRelationName(rel), pos),
				 errhint("Run consent_ledger.verify() on the ledger.")));
	return result;
}

/*
 * consent_ledger.leaf_data(relation, leaf) RETURNS bytea: a leaf's
 * canonical bytes.  A sealed leaf's stamp comes from the one log row that
 * holds it, its row from a heap scan that stops at the match; only a
 * pending leaf (not yet in the log) reads the pending records.
 */
Datum
cl_leaf_data(PG_FUNCTION_ARGS)
{
	ClLedgerInfo *info = ledger_or_error(PG_GETARG_OID(0));
	int64		leaf = PG_GETARG_INT64(1);
	LedgerState *st;
	ItemPointerData *tids;
	ClRowEncoder *enc;
	StringInfoData buf;
	bytea	   *result;
	uint64		total;
	uint64		nsealed;
	int64		txn;
	int32		ord;
	void	   *read = begin_row_read(info, "leaf_data()");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (leaf >= 0 && sealed_stamp(info, (uint64) leaf, &txn, &ord, &nsealed))
	{
		ClLedgerInfo *fresh = cl_ledger_by_id(info->ledger_id);
		TableState	ts;
		Relation	rel;

		if (fresh != NULL)
			info = fresh;
		table_state(info, &ts);
		info->txn_attnum = ts.txn_attnum;
		info->ord_attnum = ts.ord_attnum;
		rel = table_open(info->relid, AccessShareLock);
		result = encode_stamped_row(rel, info, txn, ord, (uint64) leaf);
		table_close(rel, AccessShareLock);
		SPI_finish();
		cl_audit_copy_end(read, 1);
		PG_RETURN_BYTEA_P(result);
	}

	/* a pending leaf, or out of range */
	st = load_ledger(info, false);
	total = st->nsealed + st->npending;
	if (leaf < 0 || (uint64) leaf >= total)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("leaf " INT64_FORMAT " is out of range", leaf),
				 errdetail("Ledger \"%s\" has " UINT64_FORMAT " leaves, sealed and pending.",
						   ledger_name(st->info), total)));
	tids = map_positions(st, total);
	enc = cl_ledger_encoder(st->info, RelationGetDescr(st->rel), CurrentMemoryContext);
	initStringInfo(&buf);
	encode_at(st, enc, &tids[leaf], (uint64) leaf, &buf);
	result = SPI_palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(result, VARHDRSZ + buf.len);
	memcpy(VARDATA(result), buf.data, buf.len);
	release_ledger(st);
	SPI_finish();
	cl_audit_copy_end(read, 1);
	PG_RETURN_BYTEA_P(result);
}

/* consent_ledger.public_key(): base64 of the 32-byte Ed25519 public key */
Datum
cl_public_key(PG_FUNCTION_ARGS)
{
	char		b[64];

	cl_base64_encode(cl_keys_public(), CL_PUBKEY_LEN, b);
	PG_RETURN_TEXT_P(cstring_to_text(b));
}

/* consent_ledger.key_id(): the C2SP key id, 8 hex digits */
Datum
cl_sql_key_id(PG_FUNCTION_ARGS)
{
	char		hex[CL_KEYID_LEN * 2 + 1];

	cl_hex_encode(cl_keys_id(), CL_KEYID_LEN, hex);
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

/* consent_ledger.verifier_key(): "name+keyid+base64(0x01||pk)", as note verifiers take it */
Datum
cl_verifier_key(PG_FUNCTION_ARGS)
{
	uint8_t		raw[1 + CL_PUBKEY_LEN];
	char		b[64];
	char		hex[CL_KEYID_LEN * 2 + 1];

	raw[0] = 0x01;
	memcpy(raw + 1, cl_keys_public(), CL_PUBKEY_LEN);
	cl_base64_encode(raw, sizeof(raw), b);
	cl_hex_encode(cl_keys_id(), CL_KEYID_LEN, hex);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s+%s+%s", CL_KEY_NAME, hex, b)));
}
