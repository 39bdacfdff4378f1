/*-------------------------------------------------------------------------
 * ledger.c
 *	  Ledger tables: create_ledger(), retire_ledger(), the stamp and guard
 *	  triggers, and the commit path that hands a transaction's leaves to
 *	  the sealer.
 *
 * The commit path stays parallel.  The BEFORE INSERT row trigger stamps
 * each row with the transaction's ledger id (ledger_txn, one value per
 * top-level transaction from consent_ledger.txn_seq) and a dense ordinal
 * (ledger_ord), computes its leaf hash from the canonical encoding, and
 * buffers the hash in backend memory.  Every CL_FLUSH_LEAVES leaves (when
 * no subtransaction is open), and at PRE_COMMIT (or PRE_PREPARE) for the
 * rest, the transaction writes "pending" records holding its leaf hashes
 * (RowExclusiveLock on consent_ledger.pending, taken by no other path in
 * a conflicting mode); the records commit atomically with the rows, so
 * the sealer sees rows exactly when they are committed, and never rows of
 * aborted transactions.  A rolled-back subtransaction drops its rows'
 * hashes and gives their ordinals back (its rows are dead, so reuse is
 * safe).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/cluster.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "executor/spi.h"
#include "optimizer/optimizer.h"
#include "access/sysattr.h"
#include "nodes/bitmapset.h"
#include "rewrite/rewriteHandler.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_create_ledger);
PG_FUNCTION_INFO_V1(cl_retire_ledger);
PG_FUNCTION_INFO_V1(cl_ledger_stamp);
PG_FUNCTION_INFO_V1(cl_ledger_guard);
PG_FUNCTION_INFO_V1(cl_ledger_use_table_am);

static void make_partitioned_ledger(Oid relid, List *personal, const char *subject);
static void make_ledger(Oid relid, bool table_am, List *personal, const char *subject);
static void retire_partitioned_ledger(Oid relid);

/* true while the extension itself runs DDL on a ledger (guard.c obeys) */
bool		cl_internal_ddl = false;

/*
 * true while a ledger's rewritten heap is swapped in and its indexes are
 * rebuilt (adoption, erasure): the owner's index expressions run then,
 * with the guards relaxed (cl_internal_ddl), so no utility command may
 * run at all (guard.c).
 */
bool		cl_swapping_ledger = false;

/*
 * Leaves one transaction inserted into one ledger, in ordinal order.
 * Ordinals 0 .. nflushed-1 are already in pending records (written during
 * the transaction: flush_leaves()); the buffer holds the rest, ordinal
 * nflushed + i at leaves[i], with the subtransaction that inserted it.
 */
typedef struct XactLedger
{
	struct XactLedger *next;
	Oid			relid;
	int32		ledger_id;
	int32		nleaves;		/* ordinals used: the next row's ordinal */
	int32		nflushed;		/* ordinals already in pending records */
	int32		capacity;		/* of leaves[] and subids[] */
	char	   *store;			/* a varlena header's room, then leaves[] */
	cl_hash    *leaves;			/* store + VARHDRSZ */
	SubTransactionId *subids;
} XactLedger;

/*
 * Bytes of a leaf store of n leaves: a varlena header's room, then the
 * leaves (a flush makes the store a bytea in place).
 */
#define LEAF_STORE_SIZE(n) (VARHDRSZ + sizeof(cl_hash) * (Size) (n))

/*
 * A transaction's leaves go into pending records while it runs, this many
 * at a time (2 MB), whenever no subtransaction is open: a bulk load keeps
 * one buffer instead of growing an array of 36 bytes per row until commit
 * (memory, and fresh pages to fault in, in proportion to the load), and
 * the commit writes only what is left.  Inside a subtransaction the buffer
 * grows instead: a leaf in a pending record can no longer be taken back
 * when its subtransaction rolls back, and a record inserted there would
 * vanish with it.
 */
#define CL_FLUSH_LEAVES (64 * 1024)

static XactLedger *xact_ledgers = NULL;
static int64 xact_txn = 0;
static bool xact_wrote_pending = false;

/*
 * Where a pending record's tuple is formed, kept for the transaction
 * (TopTransactionContext): a fresh 2 MB allocation per record, zeroed and
 * filled, cost the bulk load page faults in proportion to its rows.
 */
static char *pending_tuple_buf = NULL;
static Size pending_tuple_size = 0;

/* Per trigger call site: the encoder for this relation and a buffer. */
typedef struct StampCache
{
	struct StampCache *next;	/* the table AM's caches (one per relation) */
	Oid			relid;
	ClRowEncoder *enc;
	StringInfoData buf;
	/* checked once per query: a ledger cannot be retired while in use */
	int32		ledger_id;
	AttrNumber	txn_attnum;
	AttrNumber	ord_attnum;
	bool		consent_ledger; /* consent_ledger.consent_events */
	bool		key_ledger;		/* consent_ledger.subject_keys */
	/* stored generated columns, computed here in encoding version 2 */
	int			ngenerated;
	AttrNumber *gen_attnums;
	ExprState **gen_exprs;
	ExprContext *econtext;
	TupleTableSlot *slot;
} StampCache;

static XactLedger *
xact_ledger_get(Oid relid, int32 ledger_id)
{
	XactLedger *x;
	MemoryContext old;

	for (x = xact_ledgers; x != NULL; x = x->next)
		if (x->relid == relid)
			return x;
	old = MemoryContextSwitchTo(TopTransactionContext);
	x = palloc0(sizeof(XactLedger));
	x->relid = relid;
	x->ledger_id = ledger_id;
	x->capacity = 64;
	x->store = palloc(LEAF_STORE_SIZE(x->capacity));
	x->leaves = (cl_hash *) (x->store + VARHDRSZ);
	x->subids = palloc(sizeof(SubTransactionId) * x->capacity);
	x->nflushed = 0;
	x->next = xact_ledgers;
	xact_ledgers = x;
	MemoryContextSwitchTo(old);
	return x;
}

static void flush_leaves(XactLedger *x);

static int32
xact_ledger_append(XactLedger *x, const cl_hash leaf)
{
	int32		i;

	if (x->nleaves == PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many rows inserted into one ledger in one transaction")));
	i = x->nleaves - x->nflushed;
	if (i >= CL_FLUSH_LEAVES && GetCurrentTransactionNestLevel() == 1)
	{
		flush_leaves(x);
		i = 0;
	}
	if (i == x->capacity)
	{
		int32		newcap = (x->capacity > PG_INT32_MAX / 2) ? PG_INT32_MAX : x->capacity * 2;

		x->store = repalloc_huge(x->store, LEAF_STORE_SIZE(newcap));
		x->leaves = (cl_hash *) (x->store + VARHDRSZ);
		x->subids = repalloc_huge(x->subids, sizeof(SubTransactionId) * (Size) newcap);
		x->capacity = newcap;
	}
	memcpy(x->leaves[i], leaf, CL_HASH_LEN);
	x->subids[i] = GetCurrentSubTransactionId();
	return x->nleaves++;
}

/* The transaction's ledger id: one per top-level transaction. */
static int64
xact_txn_id(void)
{
	if (xact_txn == 0)
		xact_txn = nextval_internal(cl_internal_relid("txn_seq"), false);
	return xact_txn;
}

/* Ordinals first .. first+n-1 of one pending record. */
typedef struct OrdRange
{
	int64		first;
	int64		n;
} OrdRange;

static int
ord_range_cmp(const void *a, const void *b)
{
	int64		x = ((const OrdRange *) a)->first;
	int64		y = ((const OrdRange *) b)->first;

	return (x > y) - (x < y);
}

/*
 * The pending records this transaction wrote into a ledger so far: their
 * leaves copied to all[0 .. nflushed-1].  Read with SnapshotSelf, which
 * sees every record of the transaction whatever the caller's snapshot (a
 * cursor's, older than the last flush, sees fewer).
 */
static void
read_own_records(XactLedger *x, cl_hash *all)
{
	Relation	rel = table_open(cl_internal_relid("pending"), AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		wide = TupleDescAttr(desc, 2)->atttypid == INT8OID;
	Oid			index = get_relname_relid("pending_ledger_txn_idx", RelationGetNamespace(rel));
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	int64		next = 0;
	int			nranges = 0;
	int			maxranges = 16;
	OrdRange   *ranges = palloc(sizeof(OrdRange) * maxranges);

	ScanKeyInit(&key[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(x->ledger_id));
	ScanKeyInit(&key[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(xact_txn));
	scan = systable_beginscan(rel, index, OidIsValid(index), SnapshotSelf, 2, key);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull[6] = {false, false, false, false, false, false};
		Datum		values[6];
		int64		first;
		int64		n;
		int64		off = 0;
		bytea	   *leaves;

		heap_deform_tuple(tup, desc, values, isnull);
		first = wide ? DatumGetInt64(values[2]) : DatumGetInt32(values[2]);
		n = wide ? DatumGetInt64(values[3]) : DatumGetInt32(values[3]);
		if (desc->natts > 5 && !isnull[5])
			off = DatumGetInt64(values[5]);
		leaves = isnull[4] ? NULL : DatumGetByteaPP(values[4]);
		if (leaves == NULL || first < 0 || n <= 0 || off < 0 || first + n > x->nflushed ||
			VARSIZE_ANY_EXHDR(leaves) != (Size) (off + n) * CL_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a pending record of this transaction in ledger %d is malformed", x->ledger_id),
					 errdetail("Record from ordinal " INT64_FORMAT ", " INT64_FORMAT " leaves; the transaction wrote %d.",
							   first, n, x->nflushed),
					 errhint("Roll the transaction back.")));
		memcpy(all[first], VARDATA_ANY(leaves) + (Size) off * CL_HASH_LEN, (Size) n * CL_HASH_LEN);
		if (nranges == maxranges)
		{
			maxranges *= 2;
			ranges = repalloc(ranges, sizeof(OrdRange) * maxranges);
		}
		ranges[nranges].first = first;
		ranges[nranges].n = n;
		nranges++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	/* they must cover ordinals 0 .. nflushed-1 exactly once */
	qsort(ranges, nranges, sizeof(OrdRange), ord_range_cmp);
	for (int i = 0; i < nranges && next >= 0; i++)
		next = ranges[i].first == next ? next + ranges[i].n : -1;
	if (next != x->nflushed)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the pending records of this transaction in ledger %d are incomplete", x->ledger_id),
				 errdetail("They do not hold ordinals 0 to %d exactly once.", x->nflushed - 1),
				 errhint("Roll the transaction back.")));
	pfree(ranges);
}

/*
 * Every leaf this transaction has inserted into a ledger so far, in
 * ordinal order from 0: those of the pending records it already wrote
 * (which only it can see) and those still buffered.  verify() counts them
 * as pending, so that a transaction that inserted rows sees them as its
 * own, not as rows no record accounts for.  Returns the number of leaves
 * (0 when none) with *txn set and *leaves a copy in the caller's memory
 * context (32 bytes a leaf: pfree() it when done; NULL when none).
 */
int32
cl_ledger_own_leaves(Oid relid, int64 *txn, cl_hash **leaves)
{
	XactLedger *x;

	*txn = 0;
	*leaves = NULL;
	for (x = xact_ledgers; x != NULL; x = x->next)
		if (x->relid == relid && x->nleaves > 0)
		{
			cl_hash    *all = palloc_extended(sizeof(cl_hash) * (Size) x->nleaves, MCXT_ALLOC_HUGE);

			*txn = xact_txn;
			if (x->nflushed > 0)
				read_own_records(x, all);
			memcpy(all[x->nflushed], x->leaves, sizeof(cl_hash) * (Size) (x->nleaves - x->nflushed));
			*leaves = all;
			return x->nleaves;
		}
	return 0;
}

/* How many leaves this transaction has inserted into a ledger so far (*txn: its id). */
int32
cl_ledger_own_count(Oid relid, int64 *txn)
{
	XactLedger *x;

	*txn = 0;
	for (x = xact_ledgers; x != NULL; x = x->next)
		if (x->relid == relid && x->nleaves > 0)
		{
			*txn = xact_txn;
			return x->nleaves;
		}
	return 0;
}

/*
 * heap_form_tuple() (no nulls) into pending_tuple_buf, which grows as
 * needed and is reused by every record of the transaction.  Zeroed first,
 * as heap_form_tuple() does, so that alignment padding holds no stale
 * bytes.  The tuple belongs to that buffer: never heap_freetuple() it.
 */
static HeapTuple
form_pending_tuple(TupleDesc desc, Datum *values, bool *nulls)
{
	Size		hoff = MAXALIGN(SizeofHeapTupleHeader);
	Size		data_len = heap_compute_data_size(desc, values, nulls);
	Size		len = hoff + data_len;
	HeapTuple	tup;
	HeapTupleHeader td;

	for (int i = 0; i < desc->natts; i++)
		Assert(!nulls[i]);
	if (pending_tuple_size < HEAPTUPLESIZE + len)
	{
		/* forgotten first: a failed allocation caught by a savepoint leaves no dangling pointer */
		if (pending_tuple_buf != NULL)
			pfree(pending_tuple_buf);
		pending_tuple_buf = NULL;
		pending_tuple_size = 0;
		pending_tuple_buf = MemoryContextAllocHuge(TopTransactionContext, HEAPTUPLESIZE + len);
		pending_tuple_size = HEAPTUPLESIZE + len;
	}
	memset(pending_tuple_buf, 0, HEAPTUPLESIZE + len);
	tup = (HeapTuple) pending_tuple_buf;
	td = (HeapTupleHeader) (pending_tuple_buf + HEAPTUPLESIZE);
	tup->t_len = len;
	ItemPointerSetInvalid(&tup->t_self);
	tup->t_tableOid = InvalidOid;
	tup->t_data = td;
	HeapTupleHeaderSetDatumLength(td, len);
	HeapTupleHeaderSetTypeId(td, desc->tdtypeid);
	HeapTupleHeaderSetTypMod(td, desc->tdtypmod);
	HeapTupleHeaderSetNatts(td, desc->natts);
	ItemPointerSetInvalid(&td->t_ctid);
	td->t_hoff = hoff;
	heap_fill_tuple(desc, values, nulls, (char *) td + hoff, data_len, &td->t_infomask, NULL);
	return tup;
}

/*
 * Inserts one pending record: n leaf hashes of transaction txn from
 * ordinal first_ord, at store + VARHDRSZ (LEAF_STORE_SIZE(n) bytes: the
 * room before them gets a varlena header, making them the record's bytea
 * without copying them into one; forming the tuple and TOAST still copy
 * them).  first_ord and nleaves are bigint from 1.3 on and
 * integer before ALTER EXTENSION ... UPDATE; the datums follow the
 * installed columns.
 */
static void
pending_insert(Relation rel, int32 ledger_id, int64 txn, int64 first_ord,
			   char *store, int64 n)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		wide = TupleDescAttr(desc, 2)->atttypid == INT8OID;
	bytea	   *leaves = (bytea *) store;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	SET_VARSIZE(leaves, LEAF_STORE_SIZE(n));
	values[0] = Int32GetDatum(ledger_id);
	values[1] = Int64GetDatum(txn);
	values[2] = wide ? Int64GetDatum(first_ord) : Int32GetDatum((int32) first_ord);
	values[3] = wide ? Int64GetDatum(n) : Int32GetDatum((int32) n);
	values[4] = PointerGetDatum(leaves);
	values[5] = Int64GetDatum(0);	/* leaves_offset (1.3), when present */
	if (desc->natts > 6)
		elog(ERROR, "consent_ledger.pending has unexpected columns");
	CatalogTupleInsert(rel, form_pending_tuple(desc, values, nulls));
	/* keep a flush's size for the next record, not an adoption's 32 MB */
	if (pending_tuple_size > 2 * LEAF_STORE_SIZE(CL_FLUSH_LEAVES))
	{
		pfree(pending_tuple_buf);
		pending_tuple_buf = NULL;
		pending_tuple_size = 0;
	}
}

/*
 * Writes a ledger's buffered leaves into pending records and empties the
 * buffer.  The first record is the buffer itself, given its varlena
 * header in the room before leaves[0]; the others (more than
 * CL_MAX_LEAVES_PER_RECORD leaves buffered, which happens only when a
 * subtransaction was open) are copied.
 */
static void
flush_leaves(XactLedger *x)
{
	Relation	rel;
	int32		n = x->nleaves - x->nflushed;
	int32		done = 0;

	if (n == 0)
		return;
	rel = table_open(cl_internal_relid("pending"), RowExclusiveLock);
	while (done < n)
	{
		int32		k = Min(n - done, CL_MAX_LEAVES_PER_RECORD);
		char	   *store = x->store;

		if (done > 0)
		{
			store = palloc(LEAF_STORE_SIZE(k));
			memcpy(store + VARHDRSZ, x->leaves[done], (Size) k * CL_HASH_LEN);
		}
		pending_insert(rel, x->ledger_id, xact_txn, (int64) x->nflushed + done, store, k);
		if (done > 0)
			pfree(store);
		done += k;
	}
	table_close(rel, RowExclusiveLock);
	x->nflushed = x->nleaves;
	xact_wrote_pending = true;
}

/*
 * Writes the rest of the transaction's pending records.  Runs at
 * PRE_COMMIT or PRE_PREPARE, inside the transaction, so the records become
 * visible exactly when the rows do.
 */
static void
write_pending(void)
{
	XactLedger *x;

	for (x = xact_ledgers; x != NULL; x = x->next)
		flush_leaves(x);
}

static void
ledger_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			write_pending();
			break;
		case XACT_EVENT_COMMIT:
			if (xact_wrote_pending)
				cl_seal_wake(MyDatabaseId);
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* the memory went with TopTransactionContext */
			xact_ledgers = NULL;
			pending_tuple_buf = NULL;
			pending_tuple_size = 0;
			xact_txn = 0;
			xact_wrote_pending = false;
			break;
		default:
			break;
	}
}

/*
 * A rolled-back subtransaction's rows are dead: forget their leaves and
 * reuse their ordinals.  Leaves are appended in time order and
 * subtransaction ids grow, so the aborted ones are a suffix, and all of
 * them are still in the buffer (flush_leaves() runs only when no
 * subtransaction is open).
 */
static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	XactLedger *x;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (x = xact_ledgers; x != NULL; x = x->next)
		while (x->nleaves > x->nflushed &&
			   x->subids[x->nleaves - x->nflushed - 1] >= mySubid)
			x->nleaves--;
}

void
cl_ledger_init(void)
{
	RegisterXactCallback(ledger_xact_callback, NULL);
	RegisterSubXactCallback(ledger_subxact_callback, NULL);
}

/* Raises the refusal for a write a ledger does not allow. */
static void
refuse_change(Relation rel, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("cannot %s ledger table \"%s\"", what, RelationGetRelationName(rel)),
			 errdetail("Ledger tables are append-only: rows can be inserted but never changed or removed."),
			 errhint("Insert a new row that records the correction instead.")));
}

/*
 * BEFORE UPDATE OR DELETE OR TRUNCATE trigger (statement and row level,
 * ENABLE ALWAYS so session_replication_role does not switch it off).
 */
Datum
cl_ledger_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger_guard() must be called as a trigger")));
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		refuse_change(trigdata->tg_relation, "update");
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		refuse_change(trigdata->tg_relation, "delete from");
	else if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		refuse_change(trigdata->tg_relation, "truncate");
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger_guard() fired for an unexpected event")));
	PG_RETURN_NULL();
}

/*
 * The stamp must be the last BEFORE INSERT row trigger: a later one could
 * change the row after its hash was taken, or skip it after its leaf was
 * counted.
 */
static void
check_stamp_is_last(Relation rel, Trigger *self)
{
	TriggerDesc *td = rel->trigdesc;
	bool		seen = false;

	for (int i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (t->tgoid == self->tgoid)
		{
			seen = true;
			continue;
		}
		if (seen && t->tgenabled != TRIGGER_DISABLED &&
			TRIGGER_TYPE_MATCHES(t->tgtype, TRIGGER_TYPE_ROW,
								 TRIGGER_TYPE_BEFORE, TRIGGER_TYPE_INSERT))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("trigger \"%s\" on ledger table \"%s\" fires after the ledger stamp",
							t->tgname, RelationGetRelationName(rel)),
					 errdetail("BEFORE INSERT row triggers on a ledger table must fire before \"%s\", so that the hashed row is the stored row.",
							   CL_STAMP_TRIGGER),
					 errhint("Rename the trigger so that its name sorts before \"%s\".",
							 CL_STAMP_TRIGGER)));
	}
}

/*
 * Stored generated columns are computed by the executor after the BEFORE
 * row triggers, so the stamp trigger does not see their values.  Encoding
 * version 2 covers them (a stored value is part of the row), so the
 * trigger computes them itself from the same expressions over the same
 * values (generation expressions are immutable, and the stamp trigger
 * runs last), as ExecComputeStoredGenerated will.  Built in the current
 * memory context (the trigger's fn_mcxt).
 */
static void
prepare_generated(StampCache *cache, Relation rel, int encoding)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (cache->econtext != NULL)
		FreeExprContext(cache->econtext, true);
	if (cache->slot != NULL)
		ExecDropSingleTupleTableSlot(cache->slot);
	cache->ngenerated = 0;
	cache->econtext = NULL;
	cache->slot = NULL;
	if (encoding < CL_ENCODING_V2 || desc->constr == NULL ||
		!desc->constr->has_generated_stored)
		return;
	cache->gen_attnums = palloc(sizeof(AttrNumber) * desc->natts);
	cache->gen_exprs = palloc(sizeof(ExprState *) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *expr;

		if (att->attisdropped || att->attgenerated != ATTRIBUTE_GENERATED_STORED)
			continue;
		expr = build_column_default(rel, att->attnum);
		if (expr == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("no generation expression found for column \"%s\" of ledger table \"%s\"",
							NameStr(att->attname), RelationGetRelationName(rel))));
		cache->gen_attnums[cache->ngenerated] = att->attnum;
		cache->gen_exprs[cache->ngenerated] = ExecInitExpr(expression_planner((Expr *) expr), NULL);
		cache->ngenerated++;
	}
	/* a private descriptor copy: the slot must not pin the relcache's */
	cache->slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(desc), &TTSOpsVirtual);
	cache->econtext = CreateStandaloneExprContext();
}

/* Fills the stored generated columns of values/nulls (see prepare_generated). */
static void
compute_generated(StampCache *cache, TupleDesc desc, Datum *values, bool *nulls)
{
	TupleTableSlot *slot = cache->slot;
	ExprContext *econtext = cache->econtext;
	MemoryContext old;

	ResetExprContext(econtext);
	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * desc->natts);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * desc->natts);
	ExecStoreVirtualTuple(slot);
	econtext->ecxt_scantuple = slot;
	old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
	for (int k = 0; k < cache->ngenerated; k++)
	{
		int			idx = cache->gen_attnums[k] - 1;

		values[idx] = ExecEvalExpr(cache->gen_exprs[k], econtext, &nulls[idx]);
	}
	MemoryContextSwitchTo(old);
}

/*
 * The refusals every stamped insert meets, whichever path stamps it (the
 * stamp trigger or the table access method): the relation must be a
 * ledger, and a live one.  Returns its entry.
 */
static ClLedgerInfo *
stamp_target(Relation rel)
{
	ClLedgerInfo *info = cl_ledger_lookup(RelationGetRelid(rel));

	if (info == NULL || info->txn_attnum <= 0 || info->ord_attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"%s\" is not a ledger table",
						RelationGetRelationName(rel))));
	if (info->retired)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger table \"%s\" is retired", RelationGetRelationName(rel)),
				 errdetail("A retired ledger accepts no more rows."),
				 errhint("Create a new ledger table.")));
	return info;
}

/* (Re)builds a stamp cache for rel in mcxt; generated: compute stored generated columns. */
static StampCache *
stamp_cache_setup(StampCache *cache, Relation rel, ClLedgerInfo *info,
				  MemoryContext mcxt, bool generated)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);

	if (cache == NULL)
	{
		cache = palloc0(sizeof(StampCache));
		initStringInfo(&cache->buf);
	}
	else if (cache->enc != NULL)
		cl_encoder_free(cache->enc);
	cache->relid = RelationGetRelid(rel);
	cache->enc = cl_ledger_encoder(info, RelationGetDescr(rel), mcxt);
	cache->ledger_id = info->ledger_id;
	cache->txn_attnum = info->txn_attnum;
	cache->ord_attnum = info->ord_attnum;
	cache->consent_ledger = (cache->relid == cl_consent_events_relid(false));
	cache->key_ledger = (cache->relid == cl_subject_keys_relid());
	if (generated)
		prepare_generated(cache, rel, info->encoding);
	MemoryContextSwitchTo(old);
	return cache;
}

/*
 * The one stamping function, shared by the stamp trigger (ledgers made up
 * to 1.2, partitions, the extension's own ledgers) and the table access
 * method (tableam.c): values/nulls hold the row as it will be stored (for
 * the access method every BEFORE row trigger has run and stored generated
 * columns are computed; the trigger computes them here, see
 * prepare_generated).  Stamps ledger_txn/ledger_ord in values/nulls
 * (overwriting whatever the inserter supplied) with the transaction's
 * ledger id and the next ordinal, hashes the canonical encoding, and
 * appends the leaf to the transaction's list.  The buffer is kept in
 * bufcxt.
 */
static void
stamp_values(StampCache *cache, Relation rel, Datum *values, bool *nulls,
			 MemoryContext bufcxt)
{
	XactLedger *x;
	int64		txn;
	int32		ord;
	cl_hash		leaf;

	/* events enter the consent ledger only through the recording functions */
	if (cache->consent_ledger && !cl_migrating_consent)
	{
		if (!cl_recording_consent)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot insert into the consent ledger directly"),
					 errdetail("Consent events are recorded only by consent_ledger.grant_consent() and withdraw_consent(), which keep event ids in commit order and tell every session's consent checks about them."),
					 errhint("Call consent_ledger.grant_consent() or consent_ledger.withdraw_consent().")));
		/* one event per permission: the recorder sets it again for the next */
		cl_recording_consent = false;
	}
	/* keys enter the subject key ledger only through register_subject_key() */
	if (cache->key_ledger)
	{
		if (!cl_registering_subject_key)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot insert into the subject key ledger directly"),
					 errdetail("A subject's key is registered only by consent_ledger.register_subject_key(), which checks that the subject signed it."),
					 errhint("Call consent_ledger.register_subject_key().")));
		cl_registering_subject_key = false;
	}

	txn = xact_txn_id();
	x = xact_ledger_get(RelationGetRelid(rel), cache->ledger_id);
	ord = x->nleaves;

	values[cache->txn_attnum - 1] = Int64GetDatum(txn);
	nulls[cache->txn_attnum - 1] = false;
	values[cache->ord_attnum - 1] = Int32GetDatum(ord);
	nulls[cache->ord_attnum - 1] = false;
	cl_encoder_fill_salt(cache->enc, values, nulls);
	if (cache->ngenerated > 0)
		compute_generated(cache, RelationGetDescr(rel), values, nulls);

	resetStringInfo(&cache->buf);
	cl_encode_values(cache->enc, values, nulls, txn, ord, &cache->buf);
	cl_leaf_hash((const uint8_t *) cache->buf.data, cache->buf.len, leaf);
	if (cache->buf.maxlen > 1024 * 1024)
	{
		/* do not keep a huge row's buffer for the rest of the statement */
		MemoryContext old = MemoryContextSwitchTo(bufcxt);

		pfree(cache->buf.data);
		initStringInfo(&cache->buf);
		MemoryContextSwitchTo(old);
	}
	xact_ledger_append(x, leaf);
}

/*
 * BEFORE INSERT trigger ledger_stamp().
 *
 * As a row trigger (ledgers on heap: made up to 1.2, partitions, the
 * extension's own): stamps ledger_txn/ledger_ord (overwriting whatever the
 * inserter supplied) and records the row's leaf hash (stamp_values).
 *
 * As a statement trigger (ledgers on the consent_ledger table access
 * method, tableam.c, which stamps every row it stores): stamps nothing.
 * It marks the table as stamped by its access method (its absence while
 * pg_restore loads the rows leaves their stamps as dumped, as the row
 * trigger's does), and refuses the insert if the table is not on that
 * access method any more, so that no row goes in unstamped.
 */
Datum
cl_ledger_stamp(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	ClLedgerInfo *info;
	StampCache *cache;
	HeapTuple	newtup;
	Datum	   *values;
	bool	   *nulls;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger_stamp() must be a BEFORE INSERT trigger")));

	rel = trigdata->tg_relation;
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		if (!cl_tableam_stamps(rel))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("ledger table \"%s\" does not stamp its rows",
							RelationGetRelationName(rel)),
					 errdetail("Its stamp is done by the table access method \"%s\", which the table no longer uses.",
							   CL_TABLE_AM),
					 errhint("Restore the table with its access method (do not use pg_dump --no-table-access-method).")));
		PG_RETURN_POINTER(NULL);
	}

	cache = fcinfo->flinfo->fn_extra;
	if (cache == NULL || cache->relid != RelationGetRelid(rel) ||
		!cl_encoder_matches(cache->enc, RelationGetDescr(rel)))
	{
		info = stamp_target(rel);
		check_stamp_is_last(rel, trigdata->tg_trigger);
		cache = stamp_cache_setup(cache, rel, info, fcinfo->flinfo->fn_mcxt, true);
		fcinfo->flinfo->fn_extra = cache;
	}

	/* deform once: the same values make the stamped tuple and its encoding */
	values = cl_encoder_values(cache->enc);
	nulls = cl_encoder_nulls(cache->enc);
	heap_deform_tuple(trigdata->tg_trigtuple, RelationGetDescr(rel), values, nulls);
	stamp_values(cache, rel, values, nulls, fcinfo->flinfo->fn_mcxt);
	newtup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	newtup->t_self = trigdata->tg_trigtuple->t_self;
	newtup->t_tableOid = trigdata->tg_trigtuple->t_tableOid;

	return PointerGetDatum(newtup);
}

/* The table access method's stamp caches, one per relation (tableam.c). */
static StampCache *am_caches = NULL;
static MemoryContext am_cache_cxt = NULL;

/*
 * Whether the slot holds its row as values only (no formed tuple behind
 * them), so that the stamp can be written into tts_values in place.
 */
static bool
slot_is_virtual(TupleTableSlot *slot)
{
	if (TTS_IS_VIRTUAL(slot))
		return true;
	if (TTS_IS_HEAPTUPLE(slot) || TTS_IS_BUFFERTUPLE(slot))
		return ((HeapTupleTableSlot *) slot)->tuple == NULL;
	return false;
}

/*
 * Stamps rows the consent_ledger table access method is about to store
 * (tuple_insert, multi_insert: tableam.c), with the same refusals,
 * encoding and ordinals as the stamp trigger (stamp_values).  Each slot
 * is left holding the stamped row, so that indexes, RETURNING and AFTER
 * triggers see the stored values.
 */
void
cl_ledger_stamp_slots(Relation rel, TupleTableSlot **slots, int nslots)
{
	ClLedgerInfo *info = stamp_target(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	StampCache *cache;
	StampCache **link;

	if (am_cache_cxt == NULL)
		am_cache_cxt = AllocSetContextCreate(TopMemoryContext, "consent_ledger table AM stamp",
											 ALLOCSET_DEFAULT_SIZES);
	for (link = &am_caches; *link != NULL; link = &(*link)->next)
		if ((*link)->relid == RelationGetRelid(rel))
			break;
	cache = *link;
	if (cache == NULL || cache->ledger_id != info->ledger_id ||
		cl_encoder_version(cache->enc) != info->encoding ||
		!cl_encoder_matches(cache->enc, desc))
	{
		cache = stamp_cache_setup(cache, rel, info, am_cache_cxt, false);
		if (*link == NULL)
			*link = cache;
	}

	for (int i = 0; i < nslots; i++)
	{
		TupleTableSlot *slot = slots[i];

		slot_getallattrs(slot);
		if (slot_is_virtual(slot))
		{
			stamp_values(cache, rel, slot->tts_values, slot->tts_isnull, am_cache_cxt);

			/*
			 * The row's own copy now: a ledger_salt value points into the
			 * encoder's buffer, which the next row overwrites.  (COPY
			 * materializes every slot it batches, so a batch reaching
			 * multi_insert has none of these; a virtual slot is stored
			 * next, and storing forms the tuple anyway: nothing is added.)
			 */
			ExecMaterializeSlot(slot);
		}
		else
		{
			Datum	   *values = cl_encoder_values(cache->enc);
			bool	   *nulls = cl_encoder_nulls(cache->enc);
			HeapTuple	tup;

			memcpy(values, slot->tts_values, sizeof(Datum) * desc->natts);
			memcpy(nulls, slot->tts_isnull, sizeof(bool) * desc->natts);
			stamp_values(cache, rel, values, nulls, am_cache_cxt);
			/* formed before the slot lets go of the tuple the values point into */
			tup = heap_form_tuple(desc, values, nulls);
			ExecForceStoreHeapTuple(tup, slot, true);
		}
	}
}

/*
 * Inserts a row into a ledger table without the executor, as the stamp
 * trigger would have: stamps ledger_txn/ledger_ord, records the leaf hash
 * in this transaction's list (so the pending record covers it), and
 * inserts the tuple (maintaining indexes).  Used by the audit writer and
 * the audit trigger, where an executor round trip per record would cost
 * more than the record.
 */
void
cl_ledger_insert_direct(Relation rel, Datum *values, bool *nulls)
{
	ClLedgerInfo *info = cl_ledger_lookup(RelationGetRelid(rel));
	static ClRowEncoder *enc = NULL;
	static Oid	enc_relid = InvalidOid;
	static StringInfoData buf;
	XactLedger *x;
	HeapTuple	tup;
	int64		txn;
	cl_hash		leaf;

	if (info == NULL || info->retired)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"%s\" is not a live ledger table",
						RelationGetRelationName(rel))));
	if (enc == NULL || enc_relid != RelationGetRelid(rel) ||
		cl_encoder_version(enc) != info->encoding ||
		!cl_encoder_matches(enc, RelationGetDescr(rel)))
	{
		MemoryContext old;

		if (enc != NULL)
			cl_encoder_free(enc);
		enc = cl_ledger_encoder(info, RelationGetDescr(rel), TopMemoryContext);
		enc_relid = RelationGetRelid(rel);
		if (buf.data == NULL)
		{
			old = MemoryContextSwitchTo(TopMemoryContext);
			initStringInfo(&buf);
			MemoryContextSwitchTo(old);
		}
	}
	txn = xact_txn_id();
	x = xact_ledger_get(RelationGetRelid(rel), info->ledger_id);
	values[info->txn_attnum - 1] = Int64GetDatum(txn);
	nulls[info->txn_attnum - 1] = false;
	values[info->ord_attnum - 1] = Int32GetDatum(x->nleaves);
	nulls[info->ord_attnum - 1] = false;
	cl_encoder_fill_salt(enc, values, nulls);
	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	resetStringInfo(&buf);
	cl_encode_row(enc, tup, txn, x->nleaves, &buf);
	cl_leaf_hash((const uint8_t *) buf.data, buf.len, leaf);
	CatalogTupleInsert(rel, tup);
	xact_ledger_append(x, leaf);
	heap_freetuple(tup);
}

/*
 * Runs one statement through SPI as the given role (the extension's owner,
 * or a table's owner when its rows are adopted), with the guard hooks told
 * that the extension itself is at work.
 *
 * As PostgreSQL does for ANALYZE, CREATE INDEX and REFRESH MATERIALIZED
 * VIEW (CVE-2022-1552): the statement is a security-restricted operation
 * (no SET ROLE, no temporary objects, no LISTEN, ...), search_path is
 * pinned to pg_catalog, pg_temp, and every setting changed inside, also by
 * a plain SET or set_config(..., false) in a table owner's trigger or
 * operator, is rolled back when it ends.  So a table owner's code cannot
 * leave anything behind in the caller's session, and the statement's own
 * names resolve the same whatever the caller's search_path.
 */
void
cl_run_as_owner(const char *sql, Oid owner)
{
	Oid			save_userid;
	int			save_sec;
	int			nest;
	bool		save_ddl = cl_internal_ddl;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	cl_internal_ddl = true;
	PG_TRY();
	{
		if (SPI_execute(sql, false, 0) < 0)
			elog(ERROR, "SPI_execute failed: %s", sql);
	}
	PG_FINALLY();
	{
		cl_internal_ddl = save_ddl;
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	/* on error, the (sub)transaction abort rolls the nest level back */
	AtEOXact_GUC(false, nest);
}

/* Checks that a relation can become a ledger; ERROR otherwise. */
static void
check_convertible(Relation rel)
{
	Form_pg_class cls = RelationGetForm(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	const char *name = RelationGetRelationName(rel);

	if (cls->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an ordinary table", name),
				 errdetail("Only ordinary tables can become ledger tables; partitioned tables, views, foreign tables and materialized views cannot."),
				 errhint("Call create_ledger() on an ordinary table.")));
	if (cls->relispartition || has_superclass(RelationGetRelid(rel)) ||
		has_subclass(RelationGetRelid(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" takes part in inheritance or partitioning", name),
				 errdetail("A ledger table must stand alone so that every row it holds is in its log."),
				 errhint("Detach the table from its parent or children first.")));
	if (cls->relpersistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is not a permanent logged table", name),
				 errdetail("Unlogged and temporary tables lose rows on a crash or at session end."),
				 errhint("Use ALTER TABLE ... SET LOGGED, or create a permanent table.")));
	if (cl_ledger_lookup(RelationGetRelid(rel)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" is already a ledger table", name)));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped &&
			strncmp(NameStr(att->attname), CL_COLUMN_PREFIX, strlen(CL_COLUMN_PREFIX)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("table \"%s\" already has a column \"%s\"", name,
							NameStr(att->attname)),
					 errdetail("Column names beginning with \"%s\" are reserved for the ledger's own columns.",
							   CL_COLUMN_PREFIX),
					 errhint("Rename the column before calling create_ledger().")));
	}
}

/*
 * Adopts the rows a table already holds by rewriting it, as ALTER TABLE
 * does when a column needs a value in every row: each live row (in
 * physical order, under a fresh snapshot; the caller holds
 * AccessExclusiveLock) is copied into a new heap stamped with an
 * adoption ledger id and ordinal, its leaf hash is computed, and the
 * leaves go into pending records of CL_MAX_LEAVES_PER_RECORD as they
 * come; then the new heap takes the table's place and its indexes are
 * rebuilt.  No dead copy is left behind (an UPDATE would double the
 * table until VACUUM), memory stays bounded whatever the table's size,
 * and the number of rows is unlimited: every PG_INT32_MAX rows take a
 * new ledger id (ledger_ord is an integer).  The adoption ledger ids come
 * from consent_ledger.txn_seq like any transaction's, so rows this
 * transaction inserts afterwards have their own.
 *
 * None of the table owner's code runs but its index expressions and
 * predicates, while the indexes are rebuilt: PostgreSQL runs those as the
 * owner in a security-restricted operation with settings rolled back
 * (index_build(), as for REINDEX).  No trigger fires (the rows' values do
 * not change, only the two ledger columns are filled), so the owner's
 * triggers can neither run as the caller nor skip anything; row security
 * does not apply to a rewrite (every row is adopted).
 *
 * Progress: a NOTICE every consent_ledger.adopt_progress_rows rows.
 */
static void
adopt_rows(Oid relid, int32 ledger_id, int encoding)
{
	Relation	rel = relation_open(relid, NoLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TransactionId frozen_xid = rel->rd_rel->relfrozenxid;
	MultiXactId min_multi = rel->rd_rel->relminmxid;
	char		persistence = rel->rd_rel->relpersistence;
	char	   *relname = pstrdup(RelationGetRelationName(rel));
	AttrNumber	txn_att = get_attnum(relid, CL_TXN_COLUMN);
	AttrNumber	ord_att = get_attnum(relid, CL_ORD_COLUMN);
	Snapshot	snap;
	TableScanDesc scan;
	HeapTuple	tup;
	ClRowEncoder *enc;
	StringInfoData buf;
	Oid			new_heap;
	Relation	newrel;
	Relation	pendrel;
	BulkInsertState bistate;
	CommandId	cid;
	Datum	   *values;
	bool	   *nulls;
	char	   *store;
	cl_hash    *leaves;
	int64		nbuf = 0;
	int64		txn = 0;
	int64		ord = 0;
	int64		buf_first_ord = 0;
	uint64		nrows = 0;
	bool		save_ddl = cl_internal_ddl;
	volatile bool save_swapping;
	MemoryContext rowcxt;
	MemoryContext old;

	/* an empty table needs no rewrite */
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan_strat(rel, snap, 0, NULL, true, false);
	tup = cl_heap_getnext(scan, ForwardScanDirection);
	table_endscan(scan);
	if (tup == NULL)
	{
		UnregisterSnapshot(snap);
		relation_close(rel, NoLock);
		return;
	}

	new_heap = make_new_heap(relid, rel->rd_rel->reltablespace, rel->rd_rel->relam,
							 rel->rd_rel->relpersistence, AccessExclusiveLock);
	newrel = table_open(new_heap, AccessExclusiveLock);
	pendrel = table_open(cl_internal_relid("pending"), RowExclusiveLock);
	bistate = GetBulkInsertState();
	cid = GetCurrentCommandId(true);
	{
		ClLedgerInfo this_ledger = {0};

		this_ledger.ledger_id = ledger_id;
		this_ledger.encoding = encoding;
		enc = cl_ledger_encoder(&this_ledger, desc, CurrentMemoryContext);
	}
	initStringInfo(&buf);
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	store = palloc_extended(LEAF_STORE_SIZE(CL_MAX_LEAVES_PER_RECORD), MCXT_ALLOC_HUGE);
	leaves = (cl_hash *) (store + VARHDRSZ);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger adoption row",
								   ALLOCSET_DEFAULT_SIZES);

	scan = table_beginscan_strat(rel, snap, 0, NULL, true, false);
	while ((tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		HeapTuple	newtup;

		CHECK_FOR_INTERRUPTS();
		if (txn == 0 || ord == PG_INT32_MAX)
		{
			/* the records of the previous adoption id first */
			if (nbuf > 0)
				pending_insert(pendrel, ledger_id, txn, buf_first_ord, store, nbuf);
			nbuf = 0;
			txn = nextval_internal(cl_internal_relid("txn_seq"), false);
			ord = 0;
			buf_first_ord = 0;
		}
		old = MemoryContextSwitchTo(rowcxt);
		heap_deform_tuple(tup, desc, values, nulls);
		values[txn_att - 1] = Int64GetDatum(txn);
		nulls[txn_att - 1] = false;
		values[ord_att - 1] = Int32GetDatum((int32) ord);
		nulls[ord_att - 1] = false;
		cl_encoder_fill_salt(enc, values, nulls);
		newtup = heap_form_tuple(desc, values, nulls);
		resetStringInfo(&buf);
		cl_encode_values(enc, values, nulls, txn, (int32) ord, &buf);
		cl_leaf_hash((const uint8_t *) buf.data, buf.len, leaves[nbuf]);
		heap_insert(newrel, newtup, cid, 0, bistate);
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
		if (buf.maxlen > 1024 * 1024)
		{
			pfree(buf.data);
			initStringInfo(&buf);
		}
		nbuf++;
		ord++;
		nrows++;
		if (nbuf == CL_MAX_LEAVES_PER_RECORD)
		{
			pending_insert(pendrel, ledger_id, txn, buf_first_ord, store, nbuf);
			buf_first_ord += nbuf;
			nbuf = 0;
		}
		if (cl_adopt_progress_rows > 0 && nrows % (uint64) cl_adopt_progress_rows == 0)
			ereport(NOTICE,
					(errmsg("create_ledger: " UINT64_FORMAT " rows of \"%s\" adopted so far",
							nrows, relname)));
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	if (nbuf > 0)
		pending_insert(pendrel, ledger_id, txn, buf_first_ord, store, nbuf);
	xact_wrote_pending = true;
	FreeBulkInsertState(bistate);
	table_finish_bulk_insert(newrel, 0);
	table_close(pendrel, RowExclusiveLock);
	table_close(newrel, NoLock);
	cl_encoder_free(enc);
	pfree(store);
	MemoryContextDelete(rowcxt);
	/* the relcache entry goes before the swap; the lock stays */
	relation_close(rel, NoLock);

	/*
	 * The new heap takes the table's place; its indexes are rebuilt (as
	 * the owner, restricted: index_build()).  Every tuple in it carries
	 * this transaction's xid, so the old heap's freeze horizons hold.
	 */
	save_swapping = cl_swapping_ledger;
	cl_internal_ddl = true;
	cl_swapping_ledger = true;
	PG_TRY();
	{
		finish_heap_swap(relid, new_heap, false, false, false, true,
						 frozen_xid, min_multi, persistence);
	}
	PG_FINALLY();
	{
		cl_internal_ddl = save_ddl;
		cl_swapping_ledger = save_swapping;
	}
	PG_END_TRY();
	if (cl_adopt_progress_rows > 0 && nrows >= (uint64) cl_adopt_progress_rows)
		ereport(NOTICE,
				(errmsg("create_ledger: adopted " UINT64_FORMAT " rows of \"%s\"",
						nrows, relname)));
}

/*
 * Opens a table create_ledger() is given (AccessExclusiveLock, kept): the
 * caller must own it, and it must not be one of the extension's own.
 */
Relation
cl_open_ledger_candidate(Oid relid)
{
	Relation	rel = cl_open_owned_table(relid, AccessExclusiveLock);

	if (RelationGetNamespace(rel) == cl_schema_oid(true))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" belongs to consent_ledger", RelationGetRelationName(rel)),
				 errdetail("The extension's own tables are managed by the extension."),
				 errhint("Create ledger tables in a schema of your own.")));
	return rel;
}

/*
 * consent_ledger.create_ledger(relation regclass)
 *
 * Converts an ordinary table owned by the caller into a ledger table:
 * adds ledger_txn and ledger_ord, adopts existing rows into the log,
 * installs the stamp and guard triggers (ENABLE ALWAYS), and registers
 * the ledger with a fresh random origin.  Holds AccessExclusiveLock on
 * the table until commit, so no row slips in unstamped.
 */
Datum
cl_create_ledger(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel;

	rel = cl_open_ledger_candidate(relid);
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		relation_close(rel, NoLock);
		make_partitioned_ledger(relid, NIL, NULL);
		PG_RETURN_VOID();
	}
	relation_close(rel, NoLock);
	cl_make_user_ledger(relid, NIL, NULL);
	PG_RETURN_VOID();
}

/*
 * The encoding version a new ledger gets: the default of
 * consent_ledger.ledgers.encoding, which the 1.1--1.2 script sets to 2.
 * The column has no default before 1.2, so a library newer than the
 * installed SQL objects keeps writing version 1 until ALTER EXTENSION
 * UPDATE.
 */
int
cl_new_ledger_encoding(void)
{
	Relation	rel = table_open(cl_internal_relid("ledgers"), AccessShareLock);
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), "encoding");
	Node	   *def = attnum > 0 ? build_column_default(rel, attnum) : NULL;
	int			version = CL_ENCODING_V1;

	if (def != NULL)
	{
		def = eval_const_expressions(NULL, def);
		if (!IsA(def, Const) || ((Const *) def)->constisnull ||
			((Const *) def)->consttype != INT4OID)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the default of consent_ledger.ledgers.encoding is not an integer constant"),
					 errhint("ALTER EXTENSION consent_ledger UPDATE sets it; do not change it by hand.")));
		version = DatumGetInt32(((Const *) def)->constvalue);
	}
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * The conversion itself, for create_ledger() and for the extension's own
 * ledgers.  The caller holds AccessExclusiveLock on the table (kept until
 * commit, so no row slips in unstamped) and has checked ownership.
 */
void
cl_make_ledger(Oid relid)
{
	make_ledger(relid, false, NIL, NULL);
}

/*
 * The same, with personal columns (README "Erasure"), for the extension's
 * own ledgers (stamped by their row trigger): a ledger with personal
 * columns (names in personal, not empty) is a version 3 ledger with the
 * column ledger_salt; the caller has checked the names.
 */
void
cl_make_ledger_personal(Oid relid, List *personal, const char *subject)
{
	make_ledger(relid, false, personal, subject);
}

/*
 * create_ledger() of a partitioned table with personal columns (erase.c
 * checked the names on it).
 */
void
cl_make_partitioned_ledger_personal(Oid relid, List *personal, const char *subject)
{
	make_partitioned_ledger(relid, personal, subject);
}

/*
 * create_ledger() of an ordinary table, with or without personal columns:
 * on the consent_ledger table access method when it is installed.
 */
void
cl_make_user_ledger(Oid relid, List *personal, const char *subject)
{
	make_ledger(relid, cl_tableam_installed(), personal, subject);
}

/*
 * table_am: the table goes onto the consent_ledger table access method
 * (tableam.c), which stamps rows as it stores them, and gets the stamp
 * trigger as a statement trigger (which stamps nothing: see
 * cl_ledger_stamp); otherwise it stays on its access method with the
 * stamp as a BEFORE INSERT row trigger.  personal, subject: see
 * cl_make_ledger_personal.
 */
static void
make_ledger(Oid relid, bool table_am, List *personal, const char *subject)
{
	Oid			owner = cl_extension_owner();
	Relation	rel;
	char	   *qname;
	char	   *sql;
	int32		ledger_id;
	uint8_t		rnd[16];
	char		origin[64];
	char		hex[33];
	int			encoding;

	rel = relation_open(relid, AccessExclusiveLock);
	check_convertible(rel);
	/* a trigger of the owner's under one of the ledger's trigger names */
	cl_refuse_foreign_trigger(RelationGetRelid(rel), CL_STAMP_TRIGGER, "ledger_stamp");
	cl_refuse_foreign_trigger(RelationGetRelid(rel), CL_GUARD_TRIGGER, "ledger_guard");
	cl_refuse_foreign_trigger(RelationGetRelid(rel), CL_GUARD_ROW_TRIGGER, "ledger_guard");
	encoding = personal != NIL ? CL_ENCODING_V3 : cl_new_ledger_encoding();
	qname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									   RelationGetRelationName(rel));
	/* keep the lock, drop the reference: ALTER TABLE refuses tables in use */
	relation_close(rel, NoLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	cl_run_as_owner(psprintf("ALTER TABLE %s ADD COLUMN " CL_TXN_COLUMN " bigint, "
						  "ADD COLUMN " CL_ORD_COLUMN " integer%s", qname,
						  personal != NIL ? ", ADD COLUMN " CL_SALT_COLUMN " bytea" : ""),
				 owner);
	CommandCounterIncrement();

	ledger_id = (int32) nextval_internal(cl_internal_relid("ledger_id_seq"), false);
	randombytes_buf(rnd, sizeof(rnd));
	cl_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(origin, sizeof(origin), "consent_ledger/%s", hex);

	/* register first, so the adopted rows' pending record names this ledger */
	sql = psprintf("INSERT INTO consent_ledger.ledgers "
				   "(ledger_id, relid, origin, encoding, created_at) "
				   "VALUES (%d, %u::pg_catalog.oid, %s, %d, pg_catalog.now())",
				   ledger_id, relid, quote_literal_cstr(origin), encoding);
	cl_run_as_owner(sql, owner);
	if (personal != NIL)
		cl_run_as_owner(cl_erase_register_sql(ledger_id, personal, subject), owner);

	/* adopt_rows() reopens it: the descriptor now has the new columns */
	adopt_rows(relid, ledger_id, encoding);

	/*
	 * The access method after the adoption (which rewrites a heap): a
	 * rewrite that copies the stamped rows as they are (the new heap is
	 * no ledger, and no stamp trigger is there yet).
	 */
	if (table_am)
		cl_run_as_owner(psprintf("ALTER TABLE %s SET ACCESS METHOD %s", qname,
								 quote_identifier(CL_TABLE_AM)), owner);
	cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" BEFORE INSERT ON %s FOR EACH %s "
						  "EXECUTE FUNCTION consent_ledger.ledger_stamp()",
						  CL_STAMP_TRIGGER, qname, table_am ? "STATEMENT" : "ROW"), owner);
	cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" BEFORE UPDATE OR DELETE OR TRUNCATE ON %s "
						  "FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger.ledger_guard()",
						  CL_GUARD_TRIGGER, qname), owner);
	cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" BEFORE UPDATE OR DELETE ON %s "
						  "FOR EACH ROW EXECUTE FUNCTION consent_ledger.ledger_guard()",
						  CL_GUARD_ROW_TRIGGER, qname), owner);
	cl_run_as_owner(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER \"%s\", "
						  "ENABLE ALWAYS TRIGGER \"%s\", ENABLE ALWAYS TRIGGER \"%s\"",
						  qname, CL_STAMP_TRIGGER, CL_GUARD_TRIGGER, CL_GUARD_ROW_TRIGGER),
				 owner);

	SPI_finish();
	CacheInvalidateRelcacheByRelid(relid);
	cl_ledger_cache_reset();
	cl_seal_wake(MyDatabaseId);
}

/*
 * consent_ledger.retire_ledger(relation regclass)
 *
 * Closes a ledger: no more inserts, and DROP TABLE becomes possible.  Its
 * log and checkpoints stay, so exports and receipts remain verifiable.
 */
Datum
cl_retire_ledger(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ClLedgerInfo *info;
	Relation	rel;

	rel = cl_open_owned_table(relid, AccessExclusiveLock);

	/*
	 * A retired partition (a leaf, or a sub-partitioned one with its
	 * partitions) could be dropped and replaced under a live parent.
	 */
	if (rel->rd_rel->relispartition &&
		cl_is_partitioned_ledger(get_partition_parent(relid, true)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger table \"%s\" is a partition of partitioned ledger \"%s\"",
						RelationGetRelationName(rel), get_rel_name(get_partition_parent(relid, true))),
				 errdetail("A partitioned ledger is retired as a whole; a retired partition could be dropped and replaced while its parent stays live."),
				 errhint("Retire the topmost partitioned table: consent_ledger.retire_ledger() of it retires every partition's ledger.")));
	if (cl_is_partitioned_ledger(relid))
	{
		relation_close(rel, NoLock);
		retire_partitioned_ledger(relid);
		PG_RETURN_VOID();
	}
	info = cl_ledger_lookup(relid);
	if (info == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a ledger table", RelationGetRelationName(rel))));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_run_as_owner(psprintf("UPDATE consent_ledger.ledgers SET retired_at = pg_catalog.now() "
						  "WHERE ledger_id OPERATOR(pg_catalog.=) %d AND retired_at IS NULL",
						  info->ledger_id), cl_extension_owner());
	SPI_finish();
	relation_close(rel, NoLock);
	CacheInvalidateRelcacheByRelid(relid);
	cl_ledger_cache_reset();
	PG_RETURN_VOID();
}

/*
 * The access method stamps a row after the executor has checked its
 * constraints (the row trigger stamps before): a NOT NULL or CHECK
 * constraint on ledger_txn or ledger_ord, which the row trigger's stamp
 * always satisfies, would refuse every insert once the table is on the
 * access method.  use_table_am() refuses such a ledger.
 */
static void
check_stamp_columns_unconstrained(Relation rel, ClLedgerInfo *info, const char *hint)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	atts[2] = {info->txn_attnum, info->ord_attnum};
	bool		found = false;

	for (int i = 0; i < 2; i++)
		if (TupleDescAttr(desc, atts[i] - 1)->attnotnull)
			found = true;
	if (!found && desc->constr != NULL)
	{
		for (int i = 0; i < desc->constr->num_check && !found; i++)
		{
			Node	   *expr = stringToNode(desc->constr->check[i].ccbin);
			Bitmapset  *cols = NULL;

			pull_varattnos(expr, 1, &cols);
			for (int k = 0; k < 2; k++)
				if (bms_is_member(atts[k] - FirstLowInvalidHeapAttributeNumber, cols))
					found = true;
			/* a whole-row reference reads them too */
			if (bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, cols))
				found = true;
		}
	}
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger table \"%s\" has a NOT NULL or CHECK constraint on \"%s\" or \"%s\"",
						RelationGetRelationName(rel), CL_TXN_COLUMN, CL_ORD_COLUMN),
				 errdetail("On the table access method rows are stamped after their constraints are checked, so such a constraint would be checked against the values the inserter gave, not the stamp stored."),
				 errhint("%s", hint)));
}

/*
 * After an ALTER TABLE of a live ledger on the table access method (guard.c):
 * a NOT NULL or CHECK constraint on a stamp column, which the executor
 * checks before the access method stamps, is refused -- stored rows would
 * violate a validated constraint, and a dump of the ledger would not
 * restore (attack review R1, W2).  The row trigger stamps before the
 * constraints are checked: ledgers stamped by it are left alone.
 */
void
cl_refuse_stamp_constraints(Oid relid)
{
	ListCell   *lc;

	if (!OidIsValid(relid) || get_rel_relkind(relid) == '\0')
		return;

	/*
	 * The table and every table below it (an ALTER TABLE of a parent, a
	 * partitioned ledger or not, reaches its children): each ledger among
	 * them checked once.
	 */
	if (cl_ledger_lookup(relid) == NULL && !has_subclass(relid))
		return;					/* most tables: neither a ledger nor a parent */
	/* (no lock on the tables that are no ledgers: a parent may have thousands) */
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		ClLedgerInfo *info = cl_ledger_lookup(lfirst_oid(lc));
		Relation	rel;

		if (info == NULL || info->txn_attnum <= 0 || info->ord_attnum <= 0)
			continue;
		rel = try_relation_open(lfirst_oid(lc), AccessShareLock);
		if (rel == NULL)
			continue;
		if (!info->retired && cl_tableam_is(rel))
			check_stamp_columns_unconstrained(rel, info,
											  "The stamp always fills both columns: constrain other columns only.");

		/*
		 * And nothing erasure could not keep to (erase.c), also on a
		 * retired ledger, which erase_subject() still rewrites.
		 */
		if (info->encoding == CL_ENCODING_V3 &&
			RelationGetNamespace(rel) != cl_schema_oid(true))
		{
			char	   *subject;

			cl_check_personal_columns(rel, cl_ledger_personal(info->ledger_id, &subject));
		}
		relation_close(rel, AccessShareLock);
	}
}

/*
 * consent_ledger.use_table_am(relation regclass)
 *
 * Moves a ledger made before 1.3 (stamped by the BEFORE INSERT row
 * trigger) onto the consent_ledger table access method: the table is
 * rewritten as ALTER TABLE ... SET ACCESS METHOD does (its rows copied as
 * they are: stamps, log and checkpoints unchanged), and the row stamp
 * trigger becomes the statement trigger that marks the table as stamped
 * by its access method.  All under AccessExclusiveLock in the caller's
 * transaction; a ledger already on the access method is left as it is.
 * The caller must own the table.
 */
Datum
cl_ledger_use_table_am(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			owner = cl_extension_owner();
	Relation	rel;
	ClLedgerInfo *info;
	char	   *qname;

	rel = cl_open_owned_table(relid, AccessExclusiveLock);
	if (!cl_tableam_installed())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the table access method \"%s\" is not installed", CL_TABLE_AM),
				 errhint("ALTER EXTENSION consent_ledger UPDATE installs it.")));
	if (RelationGetNamespace(rel) == cl_schema_oid(true))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" belongs to consent_ledger", RelationGetRelationName(rel)),
				 errdetail("The extension's own ledgers keep their stamp trigger."),
				 errhint("Move ledger tables of your own.")));
	if (rel->rd_rel->relispartition)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ledger table \"%s\" is a partition", RelationGetRelationName(rel)),
				 errdetail("Partitions of a partitioned ledger keep their stamp trigger."),
				 errhint("Move ledger tables that are not partitions.")));
	info = cl_ledger_lookup(relid);
	if (info == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a ledger table", RelationGetRelationName(rel)),
				 errhint("Call consent_ledger.create_ledger() to make it one.")));
	if (info->retired)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger table \"%s\" is retired", RelationGetRelationName(rel)),
				 errdetail("A retired ledger accepts no more rows."),
				 errhint("Leave it as it is.")));
	if (cl_tableam_stamps(rel))
	{
		relation_close(rel, NoLock);
		PG_RETURN_VOID();
	}
	check_stamp_columns_unconstrained(rel, info,
									  "Drop the constraint (the stamp always fills both columns), then call use_table_am() again.");
	if (!cl_extension_trigger_present(relid, CL_STAMP_TRIGGER, "ledger_stamp"))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger table \"%s\" has no stamp trigger", RelationGetRelationName(rel)),
				 errdetail("Its rows are stamped neither by the trigger \"%s\" nor by the table access method.",
						   CL_STAMP_TRIGGER),
				 errhint("An administrator restores the ledger's triggers first.")));
	qname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									   RelationGetRelationName(rel));
	relation_close(rel, NoLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_run_as_owner(psprintf("DROP TRIGGER \"%s\" ON %s", CL_STAMP_TRIGGER, qname), owner);
	cl_run_as_owner(psprintf("ALTER TABLE %s SET ACCESS METHOD %s", qname,
							 quote_identifier(CL_TABLE_AM)), owner);
	cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" BEFORE INSERT ON %s FOR EACH STATEMENT "
							 "EXECUTE FUNCTION consent_ledger.ledger_stamp()",
							 CL_STAMP_TRIGGER, qname), owner);
	cl_run_as_owner(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER \"%s\"", qname, CL_STAMP_TRIGGER),
					owner);
	SPI_finish();
	CacheInvalidateRelcacheByRelid(relid);
	cl_ledger_cache_reset();
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Partitioned ledgers (partition.c): one log per leaf partition
 * --------------------------------------------------------------------- */

/*
 * The ledger's three triggers on one relation (a leaf partition gets all,
 * a partitioned table the statement guard only: row triggers on a
 * partitioned table would be cloned onto each new partition for whoever
 * creates it, who would need EXECUTE on the trigger functions).
 */
static void
add_ledger_triggers(Oid relid, const char *qname, bool row_triggers, const char *args)
{
	Oid			owner = cl_extension_owner();

	/*
	 * A trigger already there counts only if it calls the extension's
	 * function (custody.c): one of the table owner's with the same name is
	 * refused.
	 */
	if (row_triggers && cl_extension_trigger_present(relid, CL_STAMP_TRIGGER, "ledger_stamp") !=
		cl_extension_trigger_present(relid, CL_GUARD_ROW_TRIGGER, "ledger_guard"))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has only one of the ledger triggers \"%s\" and \"%s\"",
						get_rel_name(relid), CL_STAMP_TRIGGER, CL_GUARD_ROW_TRIGGER),
				 errdetail("A ledger partition needs both."),
				 errhint("An administrator drops the one left before attaching the table.")));
	if (row_triggers && !cl_extension_trigger_present(relid, CL_STAMP_TRIGGER, "ledger_stamp"))
	{
		cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" BEFORE INSERT ON %s FOR EACH ROW "
								 "EXECUTE FUNCTION consent_ledger.ledger_stamp()",
								 CL_STAMP_TRIGGER, qname), owner);
		cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" BEFORE UPDATE OR DELETE ON %s "
								 "FOR EACH ROW EXECUTE FUNCTION consent_ledger.ledger_guard()",
								 CL_GUARD_ROW_TRIGGER, qname), owner);
		cl_run_as_owner(psprintf("ALTER TABLE ONLY %s ENABLE ALWAYS TRIGGER \"%s\", ENABLE ALWAYS TRIGGER \"%s\"",
								 qname, CL_STAMP_TRIGGER, CL_GUARD_ROW_TRIGGER), owner);
	}
	if (cl_extension_trigger_present(relid, CL_GUARD_TRIGGER, "ledger_guard"))
		return;
	cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" BEFORE UPDATE OR DELETE OR TRUNCATE ON %s "
							 "FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger.ledger_guard(%s)",
							 CL_GUARD_TRIGGER, qname, args != NULL ? args : ""), owner);
	cl_run_as_owner(psprintf("ALTER TABLE ONLY %s ENABLE ALWAYS TRIGGER \"%s\"", qname, CL_GUARD_TRIGGER),
					owner);
}

static char *
partition_qname(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * The arguments of a partitioned ledger's statement guard: none, or, for
 * one with personal columns (README "Erasure"), its subject column and
 * then its personal columns, as SQL literals.  The guard itself ignores
 * them; they are how a partition added later learns what it must commit
 * to as personal data, and they travel with the trigger through pg_dump.
 */
static char *
guard_args(List *personal, const char *subject)
{
	StringInfoData b;
	ListCell   *lc;

	if (personal == NIL)
		return NULL;
	initStringInfo(&b);
	appendStringInfoString(&b, quote_literal_cstr(subject));
	foreach(lc, personal)
		appendStringInfo(&b, ", %s", quote_literal_cstr((const char *) lfirst(lc)));
	return b.data;
}

/*
 * The personal columns (a List of palloc'd names, NIL when none) and, with
 * them, the subject column of a partitioned ledger, from its statement
 * guard's arguments (guard_args()).
 */
List *
cl_partitioned_ledger_personal(Oid relid, char **subject)
{
	Relation	cat;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *personal = NIL;

	*subject = NULL;
	if (!OidIsValid(relid))
		return NIL;
	cat = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(CL_GUARD_TRIGGER));
	scan = systable_beginscan(cat, TriggerRelidNameIndexId, true, NULL, 2, keys);
	tup = systable_getnext(scan);
	/*
	 * Fails closed: a partitioned ledger with ledger_salt (made with
	 * personal columns) whose guard names none, one argument alone, or
	 * bytes left over are an edited catalog, not a ledger without them.
	 */
	if ((HeapTupleIsValid(tup) && ((Form_pg_trigger) GETSTRUCT(tup))->tgnargs > 0) ||
		get_attnum(relid, CL_SALT_COLUMN) > 0)
	{
		int			nargs = HeapTupleIsValid(tup) ? ((Form_pg_trigger) GETSTRUCT(tup))->tgnargs : 0;
		bool		isnull = true;
		Datum		d = nargs > 0 ? fastgetattr(tup, Anum_pg_trigger_tgargs, RelationGetDescr(cat), &isnull) : 0;
		bytea	   *args = isnull ? NULL : DatumGetByteaPP(d);
		const char *p = args != NULL ? VARDATA_ANY(args) : NULL;
		const char *end = args != NULL ? p + VARSIZE_ANY_EXHDR(args) : NULL;
		int			i;

		/* nargs strings, each ending in a zero byte (CreateTrigger) */
		for (i = 0; p != NULL && i < nargs && p < end; i++)
		{
			size_t		len = strnlen(p, end - p);

			if (len == (size_t) (end - p))
				break;			/* no terminating zero byte */
			if (i == 0)
				*subject = pnstrdup(p, len);
			else
				personal = lappend(personal, pnstrdup(p, len));
			p += len + 1;
		}
		if (personal == NIL || *subject == NULL || i != nargs || p != end)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the statement guard of partitioned ledger \"%s\" has malformed arguments",
							get_rel_name(relid)),
					 errhint("Only the extension creates that trigger: restore it from a dump.")));
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);
	return personal;
}

/* Whether two lists of names hold the same names (in any order). */
static bool
same_names(List *a, List *b)
{
	ListCell   *lc;

	if (list_length(a) != list_length(b))
		return false;
	foreach(lc, a)
	{
		ListCell   *lc2;
		bool		found = false;

		foreach(lc2, b)
			if (strcmp(lfirst(lc), lfirst(lc2)) == 0)
				found = true;
		if (!found)
			return false;
	}
	return true;
}

static void ledger_add_partition(Oid relid, List *personal, const char *subject);

/* Whether two ledgers' personal columns and subject columns are the same. */
static bool
same_personal(List *p1, const char *s1, List *p2, const char *s2)
{
	return same_names(p1, p2) && (s1 != NULL) == (s2 != NULL) &&
		(s1 == NULL || strcmp(s1, s2) == 0);
}

/*
 * Before a table is attached to a partitioned ledger (partition.c): the
 * table, or every ledger below it (a partitioned table that is a ledger
 * already, with its own leaves), must commit to the parent's personal
 * columns with its subject column -- or be no ledger yet, to become one
 * with them.
 */
void
cl_ledger_check_attach(Oid parent, Oid part)
{
	char	   *subject;
	List	   *personal = cl_partitioned_ledger_personal(parent, &subject);
	ListCell   *lc;

	foreach(lc, find_all_inheritors(part, AccessExclusiveLock, NULL))
	{
		Oid			relid = lfirst_oid(lc);
		ClLedgerInfo *info = cl_ledger_lookup(relid);
		char	   *own_subject = NULL;
		List	   *own;

		if (info != NULL)
			own = cl_ledger_personal(info->ledger_id, &own_subject);
		else if (cl_is_partitioned_ledger(relid))
			own = cl_partitioned_ledger_personal(relid, &own_subject);
		else
			continue;
		if (!same_personal(own, own_subject, personal, subject))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("ledger table \"%s\" does not have the personal columns of partitioned ledger \"%s\"",
							get_rel_name(relid), get_rel_name(parent)),
					 errdetail("Every partition of a partitioned ledger commits to the same personal columns with the same subject column, so that erasure reaches all of them."),
					 errhint("Attach a table that is not a ledger yet: it becomes one with the parent's personal columns.")));
	}
}

/*
 * Makes one partition of a partitioned ledger part of it (partition.c: a
 * partition created or attached later), with its parent's personal
 * columns.  Must be called inside SPI.
 */
void
cl_ledger_add_partition(Oid relid)
{
	char	   *subject;
	List	   *personal = cl_partitioned_ledger_personal(get_partition_parent(relid, true), &subject);

	ledger_add_partition(relid, personal, subject);
}

/*
 * Makes one partition of a partitioned ledger part of it: a leaf becomes a
 * ledger of its own (registered with a fresh origin, its rows adopted into
 * its log, the stamp and guards installed), a partitioned partition gets
 * the statement guard.  A partition that is already a ledger (attached)
 * keeps its log and triggers, and must have the same personal columns.
 * With personal columns (the partitioned ledger's) a new leaf is a
 * version 3 ledger committing to them, held to what erasure needs of them
 * (cl_check_personal_columns).  Must be called inside SPI; the partition
 * holds the ledger columns (it has its parent's).
 */
static void
ledger_add_partition(Oid relid, List *personal, const char *subject)
{
	Relation	rel = relation_open(relid, AccessExclusiveLock);
	char		relkind = rel->rd_rel->relkind;
	char	   *qname = partition_qname(relid);
	Oid			owner = cl_extension_owner();
	int32		ledger_id;
	uint8_t		rnd[16];
	char		hex[33];
	char		origin[64];
	int			encoding;
	ClLedgerInfo *info = cl_ledger_lookup(relid);

	/* a ledger already (attached): checked before the attach, again here */
	if (info != NULL || cl_is_partitioned_ledger(relid))
	{
		char	   *own_subject = NULL;
		List	   *own = info != NULL ? cl_ledger_personal(info->ledger_id, &own_subject) :
			cl_partitioned_ledger_personal(relid, &own_subject);

		if (!same_personal(own, own_subject, personal, subject))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("ledger table \"%s\" does not have the personal columns of its new parent",
							RelationGetRelationName(rel)),
					 errdetail("Every partition of a partitioned ledger commits to the same personal columns with the same subject column, so that erasure reaches all of them."),
					 errhint("Attach a table that is not a ledger yet: it becomes one with the parent's personal columns.")));
	}
	/* a partitioned partition may not be partitioned by a personal column */
	if (relkind == RELKIND_PARTITIONED_TABLE && personal != NIL)
		cl_check_personal_columns(rel, personal);
	if (relkind == RELKIND_PARTITIONED_TABLE || info != NULL)
	{
		relation_close(rel, NoLock);
		/* only a partitioned table's guard carries the personal columns */
		add_ledger_triggers(relid, qname, relkind != RELKIND_PARTITIONED_TABLE,
							relkind == RELKIND_PARTITIONED_TABLE ? guard_args(personal, subject) : NULL);
		return;
	}
	if (relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" cannot be a partition of a ledger table", RelationGetRelationName(rel)),
				 errdetail("Partitions of a ledger must be ordinary tables whose rows the ledger can read and hash."),
				 errhint("Use an ordinary table.")));
	if (rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is not a permanent logged table", RelationGetRelationName(rel)),
				 errdetail("Unlogged and temporary tables lose rows on a crash or at session end."),
				 errhint("Use ALTER TABLE ... SET LOGGED, or create a permanent table.")));
	if (personal != NIL)
	{
		cl_check_personal_columns(rel, personal);
		cl_refuse_referencing_foreign_keys(rel, personal);
	}
	relation_close(rel, NoLock);

	encoding = personal != NIL ? CL_ENCODING_V3 : cl_new_ledger_encoding();
	ledger_id = (int32) nextval_internal(cl_internal_relid("ledger_id_seq"), false);
	randombytes_buf(rnd, sizeof(rnd));
	cl_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(origin, sizeof(origin), "consent_ledger/%s", hex);
	cl_run_as_owner(psprintf("INSERT INTO consent_ledger.ledgers "
							 "(ledger_id, relid, origin, encoding, created_at) "
							 "VALUES (%d, %u::pg_catalog.oid, %s, %d, pg_catalog.now())",
							 ledger_id, relid, quote_literal_cstr(origin), encoding), owner);
	/* registered first, so the adopted rows' salts and leaves are version 3 */
	if (personal != NIL)
		cl_run_as_owner(cl_erase_register_sql(ledger_id, personal, subject), owner);
	adopt_rows(relid, ledger_id, encoding);
	add_ledger_triggers(relid, qname, true, NULL);
	CacheInvalidateRelcacheByRelid(relid);
	cl_ledger_cache_reset();
}

/*
 * create_ledger() of a partitioned table: the ledger columns on the
 * parent (and so on every partition), every leaf a ledger with its own
 * log (existing rows adopted) and its own triggers, the statement guard
 * on every partitioned table (partitions added later: partition.c).  The
 * caller owns the parent (checked) and must own every partition.  With
 * personal columns (names checked by the caller), ledger_salt too, every
 * leaf a version 3 ledger committing to them, and the statement guards
 * carry them for the partitions added later.
 */
static void
make_partitioned_ledger(Oid relid, List *personal, const char *subject)
{
	Oid			owner = cl_extension_owner();
	Relation	rel = relation_open(relid, AccessExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *qname = partition_qname(relid);
	List	   *all;
	ListCell   *lc;

	if (rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is not a permanent logged table", RelationGetRelationName(rel)),
				 errdetail("Unlogged and temporary tables lose rows on a crash or at session end."),
				 errhint("Create a permanent table.")));
	if (rel->rd_rel->relispartition)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is a partition", RelationGetRelationName(rel)),
				 errdetail("A ledger's partitions belong to a partitioned ledger as a whole."),
				 errhint("Call create_ledger() on the topmost partitioned table.")));
	if (cl_is_partitioned_ledger(relid))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" is already a ledger table", RelationGetRelationName(rel))));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped &&
			strncmp(NameStr(att->attname), CL_COLUMN_PREFIX, strlen(CL_COLUMN_PREFIX)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("table \"%s\" already has a column \"%s\"", RelationGetRelationName(rel),
							NameStr(att->attname)),
					 errdetail("Column names beginning with \"%s\" are reserved for the ledger's own columns.",
							   CL_COLUMN_PREFIX),
					 errhint("Rename the column before calling create_ledger().")));
	}
	relation_close(rel, NoLock);
	all = find_all_inheritors(relid, AccessExclusiveLock, NULL);
	foreach(lc, all)
	{
		Oid			part = lfirst_oid(lc);

		if (!pg_class_ownercheck(part, GetUserId()))
			aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(part));
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_run_as_owner(psprintf("ALTER TABLE %s ADD COLUMN " CL_TXN_COLUMN " bigint, "
							 "ADD COLUMN " CL_ORD_COLUMN " integer%s", qname,
							 personal != NIL ? ", ADD COLUMN " CL_SALT_COLUMN " bytea" : ""), owner);
	CommandCounterIncrement();
	foreach(lc, all)
	{
		if (lfirst_oid(lc) != relid)
			ledger_add_partition(lfirst_oid(lc), personal, subject);
	}
	/* the statement guard marks the partitioned table as a ledger */
	add_ledger_triggers(relid, qname, false, guard_args(personal, subject));
	SPI_finish();
	CacheInvalidateRelcacheByRelid(relid);
	cl_ledger_cache_reset();
	cl_seal_wake(MyDatabaseId);
}

/*
 * retire_ledger() of a partitioned ledger: every partition's ledger is
 * retired (no more inserts, its log and checkpoints kept), and the
 * partitioned tables lose the statement guard that made them a ledger:
 * the tree can then be dropped, and a partition added later is an
 * ordinary table.  The caller owns the partitioned table (checked).
 */
static void
retire_partitioned_ledger(Oid relid)
{
	Oid			owner = cl_extension_owner();
	ListCell   *lc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	foreach(lc, find_all_inheritors(relid, AccessExclusiveLock, NULL))
	{
		Oid			part = lfirst_oid(lc);
		ClLedgerInfo *info = cl_ledger_lookup(part);

		if (info != NULL)
			cl_run_as_owner(psprintf("UPDATE consent_ledger.ledgers SET retired_at = pg_catalog.now() "
									 "WHERE ledger_id OPERATOR(pg_catalog.=) %d AND retired_at IS NULL",
									 info->ledger_id), owner);
		else if (get_rel_relkind(part) == RELKIND_PARTITIONED_TABLE &&
				 cl_is_extension_trigger(part, CL_GUARD_TRIGGER))
			cl_run_as_owner(psprintf("DROP TRIGGER \"%s\" ON %s", CL_GUARD_TRIGGER,
									 partition_qname(part)), owner);
		CacheInvalidateRelcacheByRelid(part);
	}
	SPI_finish();
	cl_ledger_cache_reset();
}
