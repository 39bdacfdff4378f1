/*-------------------------------------------------------------------------
 * audit.c
 *	  Signed audit: every change to an audited table and every read of a
 *	  protected table or purpose view becomes a record in
 *	  consent_ledger.audit_log, a ledger table (so records are hash-chained
 *	  and covered by the signed checkpoints of every sealing round).
 *
 * Two paths, so that no record is lost to a rollback and no committed
 * change is ever without its record:
 *
 *	- Changes (AFTER ROW / AFTER TRUNCATE triggers, audit_row()) are written
 *	  into audit_log inside the audited transaction: they commit, and
 *	  survive a crash, exactly when the change does.  A copy is kept in
 *	  memory; if the transaction or savepoint rolls back, the copies are
 *	  handed to the side channel with outcome "rolled back".
 *	- Reads (executor hooks: a statement whose range table holds a
 *	  protected table or purpose view) always take the side channel: a ring
 *	  in shared memory per database, drained by that database's sealer
 *	  process, which writes the records in transactions of its own.  Before
 *	  the statement runs, the reader waits until a "started" record is
 *	  committed, so no row is answered without its trace; the outcome
 *	  ("completed" with the rows returned and withheld, or "failed") follows
 *	  at the end.  A read in a READ ONLY transaction, or one that is rolled
 *	  back, is recorded all the same.
 *
 * The queue never drops a record: an enqueuer waits for space.  On a hot
 * standby nothing can be written, so protected reads are refused there.
 * Records hold hashes of rows and the rows' keys, never their values.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "parser/parsetree.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_audit);
PG_FUNCTION_INFO_V1(cl_audit_row);
PG_FUNCTION_INFO_V1(cl_row_hash);

#define AUDIT_TRIGGER		"~consent_ledger_audit"
#define AUDIT_TRUNC_TRIGGER "~consent_ledger_audit_truncate"
#define MAX_KEPT_CHANGES	100000	/* rollback copies kept per transaction */

uint64		cl_rows_withheld = 0;

/* attribute numbers of consent_ledger.audit_log */
enum
{
	A_RECORD_ID = 1, A_AT, A_KIND, A_OPERATION, A_RELATION, A_RELID,
	A_SESSION, A_SESSION_USER, A_ROLE, A_CLIENT, A_APP, A_PURPOSE,
	A_ROW_KEY, A_OLD_HASH, A_NEW_HASH, A_XID, A_OUTCOME, A_ROWS,
	A_WITHHELD, A_QUERY_ID, A_BYPASSED, A_NATTS = A_BYPASSED
};

#define NSTR 9
enum
{
	S_KIND, S_OPERATION, S_RELATION, S_SESSION, S_SESSION_USER, S_ROLE,
	S_CLIENT, S_APP, S_PURPOSE
};

/* One audit record, as queued (fixed part, then the strings) */
typedef struct AuditHead
{
	uint32		len;			/* of the whole serialized record */
	TimestampTz at;
	Oid			relid;
	FullTransactionId xid;
	int64		rows;
	int64		withheld;
	int64		query_id;
	bool		has_rows;
	bool		bypassed;
	bool		has_old;
	bool		has_new;
	uint8		old_hash[CL_HASH_LEN];
	uint8		new_hash[CL_HASH_LEN];
	char		outcome;		/* 'c' committed, 'r' rolled back, 's' started, 'd' done, 'f' failed */
	uint16		strlen[NSTR + 1];	/* + row key */
} AuditHead;

typedef struct AuditRecord
{
	AuditHead	h;
	const char *str[NSTR + 1];
} AuditRecord;

/* Change records of the current transaction, for the rollback path */
typedef struct KeptChange
{
	SubTransactionId subid;
	Size		len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} KeptChange;

static List *kept_changes = NIL;	/* in TopTransactionContext */

/* Per query and audited table: the encoder for its rows, the audit ledger */
typedef struct AuditTriggerCache
{
	Oid			relid;
	ClRowEncoder *enc;
	Oid			log_relid;
} AuditTriggerCache;
static int64 kept_dropped = 0;

/* Protected reads in progress in this backend */
typedef struct OpenRead
{
	QueryDesc  *qd;
	int			nrels;
	Oid		   *relids;
	char	  **purposes;		/* per relation: the purpose in force */
	char	  **operations;		/* per relation: how it was read */
	bool		bypassed;
	bool		wait;			/* rows reach the client: "started" first */
	char	   *role;			/* role_name to record, if not the current role */
	SubTransactionId subid;
	uint64		withheld_at_start;
	uint64		rows;
	int			nesting;
} OpenRead;

static List *open_reads = NIL;	/* in TopMemoryContext */

static uint64 record_read(OpenRead *r, char outcome, bool interruptible);

/* ---------------------------------------------------------------------
 * Serialization and the shared queue
 * --------------------------------------------------------------------- */

static char *
serialize(AuditRecord *r, Size *lenp)
{
	Size		len = sizeof(AuditHead);
	char	   *buf;
	char	   *p;

	for (int i = 0; i <= NSTR; i++)
	{
		Size		n = r->str[i] ? strlen(r->str[i]) : 0;

		r->h.strlen[i] = (uint16) Min(n, 4096);
		len += r->h.strlen[i];
	}
	r->h.len = (uint32) len;
	buf = palloc(len);
	memcpy(buf, &r->h, sizeof(AuditHead));
	p = buf + sizeof(AuditHead);
	for (int i = 0; i <= NSTR; i++)
	{
		memcpy(p, r->str[i] ? r->str[i] : "", r->h.strlen[i]);
		p += r->h.strlen[i];
	}
	*lenp = len;
	return buf;
}

static ClSealSlot *
my_slot(int *slotno)
{
	ClSealSlot *s = NULL;

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < CL_MAX_DATABASES; i++)
		if (cl_shared->slots[i].dboid == MyDatabaseId)
		{
			s = &cl_shared->slots[i];
			*slotno = i;
		}
	if (s == NULL)
		for (int i = 0; i < CL_MAX_DATABASES; i++)
			if (!OidIsValid(cl_shared->slots[i].dboid))
			{
				s = &cl_shared->slots[i];
				memset(s, 0, sizeof(ClSealSlot));
				s->dboid = MyDatabaseId;
				*slotno = i;
				break;
			}
	LWLockRelease(cl_shared->lock);
	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("consent_ledger can serve at most %d databases", CL_MAX_DATABASES)));
	return s;
}

/*
 * Appends one serialized record to this database's queue, waiting for
 * space, and returns its sequence number.  When interruptible is false
 * (abort processing) it waits without servicing interrupts, except a
 * request to terminate.
 */
static uint64
enqueue(const char *data, Size len, bool interruptible)
{
	int			slotno = 0;
	ClSealSlot *s = my_slot(&slotno);
	char	   *ring = cl_shared->audit_ring[slotno];
	uint64		seq;
	bool		sleeping = false;

	if (len + sizeof(uint32) > CL_AUDIT_RING)
		elog(ERROR, "audit record too large");
	for (;;)
	{
		Latch	   *latch;

		LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
		if (CL_AUDIT_RING - (s->audit_head - s->audit_tail) >= len)
		{
			uint64		off = s->audit_head % CL_AUDIT_RING;
			Size		first = Min(len, CL_AUDIT_RING - off);

			memcpy(ring + off, data, first);
			if (first < len)
				memcpy(ring, data + first, len - first);
			s->audit_head += len;
			seq = ++s->audit_enqueued;
			latch = s->latch;
			LWLockRelease(cl_shared->lock);
			if (latch)
				SetLatch(latch);
			else
				cl_seal_wake(MyDatabaseId);
			break;
		}
		latch = s->latch;
		LWLockRelease(cl_shared->lock);
		if (latch)
			SetLatch(latch);
		else
			cl_seal_wake(MyDatabaseId);
		if (interruptible)
		{
			if (!sleeping)
				ConditionVariablePrepareToSleep(&cl_shared->audit_cv);
			sleeping = true;
			(void) ConditionVariableTimedSleep(&cl_shared->audit_cv, 100, PG_WAIT_EXTENSION);
		}
		else
		{
			if (ProcDiePending)
				ereport(WARNING,
						(errmsg("audit records of a rolled-back transaction were not queued: the session is terminating")));
			if (ProcDiePending)
				return 0;
			pg_usleep(10000L);
		}
	}
	if (sleeping)
		ConditionVariableCancelSleep();
	return seq;
}

/* Waits until this database's writer committed record seq. */
static void
wait_written(uint64 seq)
{
	int			slotno = 0;
	ClSealSlot *s = my_slot(&slotno);
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cl_seal_timeout_ms);

	ConditionVariablePrepareToSleep(&cl_shared->audit_cv);
	for (;;)
	{
		uint64		written;
		Latch	   *latch;

		LWLockAcquire(cl_shared->lock, LW_SHARED);
		written = s->audit_written;
		latch = s->latch;
		LWLockRelease(cl_shared->lock);
		if (written >= seq)
			break;
		if (latch)
			SetLatch(latch);
		else
			cl_seal_wake(MyDatabaseId);
		if (GetCurrentTimestamp() >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for the audit record of this read to be written"),
					 errdetail("The record is queued and will be written; the read is not answered until it is."),
					 errhint("Check the server log for errors of the consent_ledger sealer.")));
		}
		(void) ConditionVariableTimedSleep(&cl_shared->audit_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

/* ---------------------------------------------------------------------
 * Building records
 * --------------------------------------------------------------------- */

static void
fill_context(AuditRecord *r, const char *kind, const char *operation, Oid relid,
			 const char *purpose)
{
	char	   *relname = get_rel_name(relid);
	char	   *nsp = relname ? get_namespace_name(get_rel_namespace(relid)) : NULL;

	memset(r, 0, sizeof(AuditRecord));
	r->h.at = GetCurrentTimestamp();
	r->h.relid = relid;
	r->h.xid = GetTopFullTransactionIdIfAny();
	r->str[S_KIND] = kind;
	r->str[S_OPERATION] = operation;
	r->str[S_RELATION] = relname ? quote_qualified_identifier(nsp, relname) : "?";
	r->str[S_SESSION] = psprintf("%lx.%x", (long) MyStartTime, MyProcPid);
	r->str[S_SESSION_USER] = GetUserNameFromId(GetSessionUserId(), true);
	r->str[S_ROLE] = GetUserNameFromId(GetUserId(), true);
	r->str[S_CLIENT] = (MyProcPort && MyProcPort->remote_host) ? MyProcPort->remote_host : NULL;
	r->str[S_APP] = application_name;
	r->str[S_PURPOSE] = (purpose && purpose[0]) ? purpose : NULL;
}

/* Key columns of a row: primary key, else replica identity, as text */
static char *
row_key(Relation rel, HeapTuple tup)
{
	Bitmapset  *attrs = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	StringInfoData names;
	StringInfoData vals;
	int			i = -1;
	bool		first = true;

	if (bms_is_empty(attrs))
		attrs = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
	if (bms_is_empty(attrs))
		return NULL;
	initStringInfo(&names);
	initStringInfo(&vals);
	while ((i = bms_next_member(attrs, i)) >= 0)
	{
		AttrNumber	att = i + FirstLowInvalidHeapAttributeNumber;
		Form_pg_attribute a;
		bool		isnull;
		Datum		d;

		if (att <= 0)
			continue;
		a = TupleDescAttr(RelationGetDescr(rel), att - 1);
		d = heap_getattr(tup, att, RelationGetDescr(rel), &isnull);
		appendStringInfo(&names, "%s%s", first ? "" : ",", quote_identifier(NameStr(a->attname)));
		if (isnull)
			appendStringInfo(&vals, "%sNULL", first ? "" : ",");
		else
		{
			Oid			out;
			bool		varlena;

			getTypeOutputInfo(a->atttypid, &out, &varlena);
			appendStringInfo(&vals, "%s%s", first ? "" : ",", OidOutputFunctionCall(out, d));
		}
		first = false;
	}
	return psprintf("(%s)=(%s)", names.data, vals.data);
}

static void row_hash_with(ClRowEncoder *enc, HeapTuple tup, uint8 *out);

/* SHA-256 of a row's canonical encoding (ledger header zeroed) */
static void
row_hash(Relation rel, HeapTuple tup, uint8 *out)
{
	ClRowEncoder *enc = cl_encoder_create(RelationGetDescr(rel), CurrentMemoryContext);

	row_hash_with(enc, tup, out);
	cl_encoder_free(enc);
}

/* The same with an encoder the caller keeps (the trigger, per query). */
static void
row_hash_with(ClRowEncoder *enc, HeapTuple tup, uint8 *out)
{
	StringInfoData buf;

	initStringInfo(&buf);
	cl_encode_row(enc, tup, 0, 0, &buf);
	crypto_hash_sha256(out, (const unsigned char *) buf.data, buf.len);
	pfree(buf.data);
}

/*
 * consent_ledger.row_hash(relation regclass, row anyelement) RETURNS bytea
 *
 * The hash the audit ledger records for a row of relation (SHA-256 of its
 * canonical encoding with a zero ledger header), so that an auditor can
 * match an audit record to a row without the record holding the row.
 */
Datum
cl_row_hash(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	HeapTupleHeader th;
	HeapTupleData tuple;
	Relation	rel;
	bytea	   *result;

	if (get_fn_expr_argtype(fcinfo->flinfo, 1) != get_rel_type_id(relid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("row is not a row of relation \"%s\"", get_rel_name(relid)),
				 errhint("Pass the table's whole-row value, e.g. row_hash('t', t.*) ... FROM t.")));
	th = PG_GETARG_HEAPTUPLEHEADER(1);
	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = relid;
	tuple.t_data = th;
	rel = table_open(relid, AccessShareLock);
	result = palloc(VARHDRSZ + CL_HASH_LEN);
	SET_VARSIZE(result, VARHDRSZ + CL_HASH_LEN);
	row_hash(rel, &tuple, (uint8 *) VARDATA(result));
	table_close(rel, AccessShareLock);
	PG_RETURN_BYTEA_P(result);
}

/* ---------------------------------------------------------------------
 * The audit ledger
 * --------------------------------------------------------------------- */

static const char *const create_audit_sql[] = {
	"CREATE TABLE consent_ledger.audit_log ("
	" record_id bigint NOT NULL,"
	" at timestamptz NOT NULL,"
	" kind text NOT NULL,"
	" operation text NOT NULL,"
	" relation text NOT NULL,"
	" relid oid,"
	" session_id text NOT NULL,"
	" session_user_name text,"
	" role_name text,"
	" client_addr text,"
	" application_name text,"
	" purpose text,"
	" row_key text,"
	" old_row_hash bytea,"
	" new_row_hash bytea,"
	" xid xid8,"
	" outcome text NOT NULL,"
	" rows_returned bigint,"
	" rows_withheld bigint,"
	" query_id bigint,"
	" rls_bypassed boolean)",
	"COMMENT ON TABLE consent_ledger.audit_log IS "
	"'the audit ledger: every change to audited tables and every read of protected data; append-only, hash-chained, signed'",
	"REVOKE ALL ON consent_ledger.audit_log FROM PUBLIC",
	"GRANT SELECT ON consent_ledger.audit_log TO consent_ledger_auditor, consent_ledger_admin",
	NULL
};

/* OID of the audit ledger; with create, makes it when missing. */
static Oid
audit_log_relid(bool create)
{
	Oid			nsp = cl_schema_oid(false);
	Oid			relid = get_relname_relid("audit_log", nsp);
	Oid			owner;

	if (OidIsValid(relid) || !create)
		return relid;
	LockRelationOid(cl_internal_relid("audited"), ShareRowExclusiveLock);
	relid = get_relname_relid("audit_log", nsp);
	if (OidIsValid(relid))
		return relid;
	owner = cl_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int i = 0; create_audit_sql[i] != NULL; i++)
		cl_run_as_owner(create_audit_sql[i], owner);
	SPI_finish();
	CommandCounterIncrement();
	relid = get_relname_relid("audit_log", nsp);
	cl_make_ledger(relid);
	CommandCounterIncrement();
	return relid;
}

/* Inserts one record into the audit ledger (inside the current transaction). */
static void
insert_record(Relation rel, const AuditHead *h, const char *strings)
{
	Datum		values[A_NATTS + 2];
	bool		nulls[A_NATTS + 2];
	const char *str[NSTR + 1];
	const char *p = strings;
	char		oc;
	int			natts = RelationGetDescr(rel)->natts;

	if (natts > A_NATTS + 2)
		elog(ERROR, "consent_ledger.audit_log has unexpected columns");
	for (int i = 0; i <= NSTR; i++)
	{
		str[i] = h->strlen[i] ? pnstrdup(p, h->strlen[i]) : NULL;
		p += h->strlen[i];
	}
	memset(nulls, true, sizeof(nulls));
#define SETV(att, v) do { values[(att) - 1] = (v); nulls[(att) - 1] = false; } while (0)
#define SETS(att, s) do { if (s) SETV(att, CStringGetTextDatum(s)); } while (0)
	SETV(A_RECORD_ID, Int64GetDatum(nextval_internal(cl_internal_relid("audit_record_seq"), false)));
	SETV(A_AT, TimestampTzGetDatum(h->at));
	SETS(A_KIND, str[S_KIND]);
	SETS(A_OPERATION, str[S_OPERATION]);
	SETS(A_RELATION, str[S_RELATION] ? str[S_RELATION] : "?");
	if (OidIsValid(h->relid))
		SETV(A_RELID, ObjectIdGetDatum(h->relid));
	SETS(A_SESSION, str[S_SESSION]);
	SETS(A_SESSION_USER, str[S_SESSION_USER]);
	SETS(A_ROLE, str[S_ROLE]);
	SETS(A_CLIENT, str[S_CLIENT]);
	SETS(A_APP, str[S_APP]);
	SETS(A_PURPOSE, str[S_PURPOSE]);
	SETS(A_ROW_KEY, str[NSTR]);
	if (h->has_old)
	{
		bytea	   *b = palloc(VARHDRSZ + CL_HASH_LEN);

		SET_VARSIZE(b, VARHDRSZ + CL_HASH_LEN);
		memcpy(VARDATA(b), h->old_hash, CL_HASH_LEN);
		SETV(A_OLD_HASH, PointerGetDatum(b));
	}
	if (h->has_new)
	{
		bytea	   *b = palloc(VARHDRSZ + CL_HASH_LEN);

		SET_VARSIZE(b, VARHDRSZ + CL_HASH_LEN);
		memcpy(VARDATA(b), h->new_hash, CL_HASH_LEN);
		SETV(A_NEW_HASH, PointerGetDatum(b));
	}
	if (FullTransactionIdIsValid(h->xid))
		SETV(A_XID, FullTransactionIdGetDatum(h->xid));
	oc = h->outcome;
	SETS(A_OUTCOME, oc == 'c' ? "committed" : oc == 'r' ? "rolled back" :
		 oc == 'f' ? "failed" : oc == 's' ? "started" : "completed");
	if (h->has_rows && oc != 's')
	{
		SETV(A_ROWS, Int64GetDatum(h->rows));
		SETV(A_WITHHELD, Int64GetDatum(h->withheld));
	}
	if (h->query_id != 0)
		SETV(A_QUERY_ID, Int64GetDatum(h->query_id));
	if (strcmp(str[S_KIND] ? str[S_KIND] : "", "read") == 0)
		SETV(A_BYPASSED, BoolGetDatum(h->bypassed));
#undef SETS
#undef SETV
	cl_ledger_insert_direct(rel, values, nulls);
}

/*
 * The writer: called by this database's sealer.  Takes the queued records
 * (the queue space is freed at once), writes them in a transaction of its
 * own, and then tells the waiting readers.
 */
void
cl_audit_drain(ClSealSlot *slot, int slotno)
{
	char	   *ring = cl_shared->audit_ring[slotno];
	char	   *copy;
	uint64		head,
				tail,
				last_seq;
	Size		n;
	Relation	rel;
	Size		off = 0;

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	head = slot->audit_head;
	tail = slot->audit_tail;
	last_seq = slot->audit_enqueued;
	LWLockRelease(cl_shared->lock);
	if (head == tail)
		return;
	n = head - tail;
	copy = palloc(n);
	for (Size i = 0; i < n;)
	{
		uint64		o = (tail + i) % CL_AUDIT_RING;
		Size		chunk = Min(n - i, CL_AUDIT_RING - o);

		memcpy(copy + i, ring + o, chunk);
		i += chunk;
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!cl_extension_present())
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return;
	}
	pgstat_report_activity(STATE_RUNNING, "writing audit records");
	rel = table_open(audit_log_relid(true), RowExclusiveLock);
	while (off < n)
	{
		AuditHead	h;

		memcpy(&h, copy + off, sizeof(AuditHead));
		if (h.len < sizeof(AuditHead) || off + h.len > n)
			elog(ERROR, "corrupt audit queue");
		insert_record(rel, &h, copy + off + sizeof(AuditHead));
		off += h.len;
	}
	table_close(rel, RowExclusiveLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	slot->audit_tail = head;
	slot->audit_written = last_seq;
	LWLockRelease(cl_shared->lock);
	ConditionVariableBroadcast(&cl_shared->audit_cv);
	pfree(copy);
}

/* ---------------------------------------------------------------------
 * Changes: audit() and its trigger
 * --------------------------------------------------------------------- */

static void
keep_change(AuditRecord *r)
{
	MemoryContext old;
	Size		len;
	char	   *data;
	KeptChange *k;

	if (list_length(kept_changes) >= MAX_KEPT_CHANGES)
	{
		kept_dropped++;
		return;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	data = serialize(r, &len);
	k = palloc(offsetof(KeptChange, data) + len);
	k->subid = GetCurrentSubTransactionId();
	k->len = len;
	memcpy(k->data, data, len);
	pfree(data);
	kept_changes = lappend(kept_changes, k);
	MemoryContextSwitchTo(old);
}

/*
 * AFTER INSERT/UPDATE/DELETE row and AFTER TRUNCATE statement trigger of
 * audited tables.  Writes the record in the audited transaction.
 */
Datum
cl_audit_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	AuditRecord r;
	const char *op;
	Relation	log;
	Size		len;
	char	   *data;
	AuditTriggerCache *cache;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("audit_row() must be an AFTER trigger")));
	rel = td->tg_relation;
	cache = fcinfo->flinfo->fn_extra;
	if (cache == NULL || cache->relid != RelationGetRelid(rel) ||
		!cl_encoder_matches(cache->enc, RelationGetDescr(rel)))
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (cache == NULL)
			cache = palloc0(sizeof(AuditTriggerCache));
		else
			cl_encoder_free(cache->enc);
		cache->relid = RelationGetRelid(rel);
		cache->enc = cl_encoder_create(RelationGetDescr(rel), fcinfo->flinfo->fn_mcxt);
		cache->log_relid = audit_log_relid(true);
		fcinfo->flinfo->fn_extra = cache;
		MemoryContextSwitchTo(old);
	}
	op = TRIGGER_FIRED_BY_INSERT(td->tg_event) ? "INSERT" :
		TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? "UPDATE" :
		TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "DELETE" : "TRUNCATE";
	fill_context(&r, "change", op, RelationGetRelid(rel), cl_purpose);
	r.h.xid = GetTopFullTransactionId();
	r.h.outcome = 'c';
	if (TRIGGER_FIRED_FOR_ROW(td->tg_event))
	{
		HeapTuple	keytup = TRIGGER_FIRED_BY_INSERT(td->tg_event) ? td->tg_trigtuple :
			TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

		r.str[NSTR] = row_key(rel, keytup);
		if (!TRIGGER_FIRED_BY_INSERT(td->tg_event))
		{
			row_hash_with(cache->enc, td->tg_trigtuple, r.h.old_hash);
			r.h.has_old = true;
		}
		if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		{
			row_hash_with(cache->enc, td->tg_trigtuple, r.h.new_hash);
			r.h.has_new = true;
		}
		else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		{
			row_hash_with(cache->enc, td->tg_newtuple, r.h.new_hash);
			r.h.has_new = true;
		}
	}
	data = serialize(&r, &len);
	log = table_open(cache->log_relid, RowExclusiveLock);
	insert_record(log, (AuditHead *) data, data + sizeof(AuditHead));
	table_close(log, RowExclusiveLock);
	pfree(data);
	r.h.outcome = 'r';
	keep_change(&r);
	return PointerGetDatum(NULL);
}

/*
 * consent_ledger.audit(relation regclass): audits every change to the
 * table from now on.  The triggers fire ALWAYS and the guard refuses to
 * disable or drop them.
 */
Datum
cl_audit(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			owner = cl_extension_owner();
	Relation	rel;
	char	   *qname;

	rel = cl_open_owned_table(relid, ShareRowExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION && rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel))));
	if (relid == audit_log_relid(false))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the audit ledger cannot audit itself")));
	qname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									   RelationGetRelationName(rel));
	relation_close(rel, NoLock);
	(void) audit_log_relid(true);
	if (cl_is_audited(relid))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" is already audited", get_rel_name(relid))));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" AFTER INSERT OR UPDATE OR DELETE ON %s "
							 "FOR EACH ROW EXECUTE FUNCTION consent_ledger.audit_row()",
							 AUDIT_TRIGGER, qname), owner);
	cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" AFTER TRUNCATE ON %s "
							 "FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger.audit_row()",
							 AUDIT_TRUNC_TRIGGER, qname), owner);
	cl_run_as_owner(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER \"%s\", ENABLE ALWAYS TRIGGER \"%s\"",
							 qname, AUDIT_TRIGGER, AUDIT_TRUNC_TRIGGER), owner);
	cl_run_as_owner(psprintf("INSERT INTO consent_ledger.audited (relid, audited_at) "
							 "VALUES (%u::pg_catalog.oid, pg_catalog.now())", relid), owner);
	SPI_finish();
	PG_RETURN_VOID();
}

/* Whether a table is audited (for the guard). */
bool
cl_is_audited(Oid relid)
{
	return cl_registry_lookup("audited", relid, 0, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Reads
 * --------------------------------------------------------------------- */

static bool
protected_relations_exist(void)
{
	static uint64 checked_generation = 0;
	static bool exist = false;
	uint64		gen = pg_atomic_read_u64(&cl_shared->purpose_generation);
	Oid			nsp;

	if (gen == checked_generation)
		return exist;
	nsp = cl_schema_oid(true);
	exist = OidIsValid(nsp) && OidIsValid(get_relname_relid("protected", nsp));
	checked_generation = gen;
	return exist;
}

static Oid
relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

/* A range table entry of a purpose view, for matching its base table's entry. */
typedef struct ViewUse
{
	Oid			base;
	Oid			owner;
	bool		used;
} ViewUse;

/*
 * Whether a protected table's range table entry is the base table of one
 * of the statement's purpose views (the view's own record covers it):
 * the view's base table, read with the rights of the view's owner, and
 * not already matched to another entry.
 */
static bool
covered_by_purpose_view(RangeTblEntry *rte, ViewUse *uses, int nuses)
{
	for (int i = 0; i < nuses; i++)
		if (!uses[i].used && uses[i].base == rte->relid && uses[i].owner == rte->checkAsUser)
		{
			uses[i].used = true;
			return true;
		}
	return false;
}

static void
refuse_explain_analyze(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("EXPLAIN ANALYZE of a query that reads consent-protected \"%s\" is not allowed for role \"%s\"",
					get_rel_name(relid), GetUserNameFromId(GetUserId(), false)),
			 errdetail("Its row counts would tell how many rows without consent match the query."),
			 errhint("Use EXPLAIN without ANALYZE, or ask an administrator.")));
}

/*
 * ExecutorStart: note the statement if it reads a protected table or a
 * purpose view, whatever views, functions or rules it passes through.
 *
 * A protected table read with the rights of another role (a view's owner)
 * that bypasses row-level security would be read without any consent
 * check: unless it is the base table of a purpose view, or the reader
 * itself is trusted with hidden rows, the read is refused.  Foreign-key
 * checks are recorded as such.  On a hot standby no read can be recorded,
 * so it is refused.
 */
void
cl_audit_executor_start(QueryDesc *queryDesc)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;
	ListCell   *lc;
	Oid		   *relids = NULL;
	char	  **purposes = NULL;
	char	  **operations = NULL;
	int			n = 0;
	int			cap = 0;
	bool		bypassed = false;
	bool		fk_check = InNoForceRLSOperation();
	bool		instrumented;
	ViewUse    *uses;
	int			nuses = 0;
	OpenRead   *r;
	MemoryContext old;

	if (cl_shared == NULL || IsParallelWorker() || stmt->utilityStmt != NULL ||
		!IsTransactionState() || !cl_extension_present() || !protected_relations_exist())
		return;
	instrumented = queryDesc->instrument_options != 0 && cl_explain_analyze_active() &&
		!cl_role_is_trusted(GetUserId());

	/* purpose views first: they cover their own base table's entry */
	uses = palloc0(sizeof(ViewUse) * Max(list_length(stmt->rtable), 1));
	foreach(lc, stmt->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		Oid			base;

		if (rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_VIEW &&
			OidIsValid(base = cl_view_base_cached(rte->relid)))
		{
			uses[nuses].base = base;
			uses[nuses].owner = relation_owner(rte->relid);
			nuses++;
		}
	}

	foreach(lc, stmt->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		char	   *purpose = NULL;
		char	   *operation = "SELECT";
		Oid			as_role;

		/*
		 * Relations the statement reads, and inheritance children expanded
		 * from them (PostgreSQL 15 gives those no required permissions; so
		 * it does the OLD/NEW entries a view's rule leaves behind, which
		 * are not reads).
		 */
		if (rte->rtekind != RTE_RELATION ||
			!((rte->requiredPerms & ACL_SELECT) ||
			  (rte->requiredPerms == 0 && rte->relkind != RELKIND_VIEW)))
			continue;
		as_role = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
		if (rte->relkind == RELKIND_VIEW)
		{
			const char *vp = cl_view_purpose_cached(rte->relid);

			if (vp == NULL)
				continue;
			if (instrumented)
				refuse_explain_analyze(rte->relid);
			purpose = MemoryContextStrdup(TopMemoryContext, vp);
		}
		else
		{
			if (!cl_is_protected_cached(rte->relid))
				continue;
			if (instrumented)
				refuse_explain_analyze(rte->relid);
			if (fk_check)
				operation = "FOREIGN KEY CHECK";
			else if (as_role != GetUserId())
				operation = psprintf("SELECT (with the rights of %s)",
									 quote_identifier(GetUserNameFromId(as_role, false)));
			if (check_enable_rls(rte->relid, rte->checkAsUser, true) == RLS_ENABLED)
				purpose = cl_purpose ? MemoryContextStrdup(TopMemoryContext, cl_purpose) : NULL;
			else if (as_role != GetUserId() && !fk_check)
			{
				/* the base table of a purpose view: the view's record covers it */
				if (covered_by_purpose_view(rte, uses, nuses))
					continue;
				if (!cl_role_is_trusted(GetUserId()))
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("reading consent-protected \"%s\" with the rights of role \"%s\" is not allowed",
									get_rel_name(rte->relid), GetUserNameFromId(as_role, false)),
							 errdetail("Role \"%s\" bypasses row-level security, so no consent would be checked for role \"%s\".",
									   GetUserNameFromId(as_role, false),
									   GetUserNameFromId(GetUserId(), false)),
							 errhint("Read through a purpose view (consent_ledger.create_purpose_view), or make the view security_invoker.")));
				bypassed = true;
			}
			else
				bypassed = true;
		}
		if (n == cap)
		{
			cap = Max(4, cap * 2);
			relids = relids ? repalloc(relids, sizeof(Oid) * cap) : MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * cap);
			purposes = purposes ? repalloc(purposes, sizeof(char *) * cap) : MemoryContextAlloc(TopMemoryContext, sizeof(char *) * cap);
			operations = operations ? repalloc(operations, sizeof(char *) * cap) : MemoryContextAlloc(TopMemoryContext, sizeof(char *) * cap);
		}
		relids[n] = rte->relid;
		purposes[n] = purpose;
		operations[n] = MemoryContextStrdup(TopMemoryContext, operation);
		n++;
	}
	pfree(uses);
	if (n == 0)
		return;
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot read consent-protected data on a standby"),
				 errdetail("Every read of protected data must be recorded in the audit ledger, and a standby cannot write it."),
				 errhint("Read protected data on the primary.")));
	old = MemoryContextSwitchTo(TopMemoryContext);
	r = palloc0(sizeof(OpenRead));
	r->qd = queryDesc;
	r->nrels = n;
	r->relids = relids;
	r->purposes = purposes;
	r->operations = operations;
	r->bypassed = bypassed;
	r->wait = !fk_check;
	/* a foreign-key check runs as the table's owner: name who caused it */
	if (fk_check)
		r->role = MemoryContextStrdup(TopMemoryContext, GetUserNameFromId(GetOuterUserId(), false));
	r->withheld_at_start = cl_rows_withheld;
	r->subid = GetCurrentSubTransactionId();
	open_reads = lappend(open_reads, r);
	MemoryContextSwitchTo(old);

	/*
	 * Before the first row can reach the client, a "started" record must be
	 * committed: rows are sent while the executor runs, long before
	 * ExecutorEnd.  The outcome record follows at the end.  A foreign-key
	 * check sends no rows: its outcome record is enough.
	 */
	if (r->wait)
		wait_written(record_read(r, 's', true));
}

static OpenRead *
find_read(QueryDesc *qd)
{
	ListCell   *lc;

	foreach(lc, open_reads)
		if (((OpenRead *) lfirst(lc))->qd == qd)
			return lfirst(lc);
	return NULL;
}

/* After each ExecutorRun (and when one fails): rows returned so far. */
void
cl_audit_executor_progress(QueryDesc *queryDesc)
{
	OpenRead   *r;

	if (open_reads == NIL || (r = find_read(queryDesc)) == NULL)
		return;
	if (queryDesc->estate)
		r->rows = queryDesc->estate->es_processed;
}

/* Queues the records of one read; returns the last sequence number. */
static uint64
record_read(OpenRead *r, char outcome, bool interruptible)
{
	uint64		seq = 0;
	int64		query_id = r->qd ? (int64) r->qd->plannedstmt->queryId : 0;

	for (int i = 0; i < r->nrels; i++)
	{
		AuditRecord rec;
		Size		len;
		char	   *data;

		fill_context(&rec, "read", r->operations ? r->operations[i] : "SELECT",
					 r->relids[i], r->purposes[i]);
		if (r->role)
			rec.str[S_ROLE] = r->role;
		rec.h.outcome = outcome;
		rec.h.has_rows = true;
		rec.h.rows = (int64) r->rows;
		rec.h.withheld = (int64) (cl_rows_withheld - r->withheld_at_start);
		rec.h.query_id = query_id;
		rec.h.bypassed = r->bypassed;
		data = serialize(&rec, &len);
		seq = enqueue(data, len, interruptible);
		pfree(data);
	}
	return seq;
}

static void
forget_read(OpenRead *r)
{
	open_reads = list_delete_ptr(open_reads, r);
	for (int i = 0; i < r->nrels; i++)
	{
		if (r->purposes[i])
			pfree(r->purposes[i]);
		if (r->operations)
			pfree(r->operations[i]);
	}
	pfree(r->relids);
	pfree(r->purposes);
	if (r->operations)
		pfree(r->operations);
	if (r->role)
		pfree(r->role);
	pfree(r);
}

/*
 * ExecutorEnd: the outcome of the read (rows returned and withheld).  Its
 * "started" record is already committed, so this one need not be waited
 * for.
 */
void
cl_audit_executor_end(QueryDesc *queryDesc)
{
	OpenRead   *r;

	if (open_reads == NIL || (r = find_read(queryDesc)) == NULL)
		return;
	if (queryDesc->estate)
		r->rows = queryDesc->estate->es_processed;
	r->qd = queryDesc;
	(void) record_read(r, 'd', true);
	forget_read(r);
}

/* A server-side COPY ... TO of a protected table, which bypasses the executor */
void
cl_audit_copy_to(Oid relid, uint64 rows)
{
	OpenRead	r;
	Oid			relids[1] = {relid};
	char	   *purposes[1] = {cl_purpose};
	uint64		seq;

	if (cl_shared == NULL || !cl_extension_present() || !cl_is_protected(relid))
		return;
	memset(&r, 0, sizeof(r));
	r.nrels = 1;
	r.relids = relids;
	r.purposes = purposes;
	r.bypassed = true;
	r.rows = rows;
	r.withheld_at_start = cl_rows_withheld;
	seq = record_read(&r, 'd', true);
	wait_written(seq);
}

/*
 * Transaction and savepoint ends: reads still open (a failed statement, a
 * cursor that was never closed) and the change records of rolled-back work
 * go to the side channel.
 */
static void
flush_open_reads(SubTransactionId from)
{
	ListCell   *lc;
	List	   *todo = NIL;

	foreach(lc, open_reads)
		if (((OpenRead *) lfirst(lc))->subid >= from)
			todo = lappend(todo, lfirst(lc));
	foreach(lc, todo)
	{
		OpenRead   *r = lfirst(lc);

		r->qd = NULL;
		(void) record_read(r, 'f', false);
		forget_read(r);
	}
	list_free(todo);
}

static void
flush_changes(SubTransactionId from)
{
	ListCell   *lc;

	foreach(lc, kept_changes)
	{
		KeptChange *k = lfirst(lc);

		if (k->subid >= from)
		{
			((AuditHead *) k->data)->outcome = 'r';
			(void) enqueue(k->data, k->len, false);
			kept_changes = foreach_delete_current(kept_changes, lc);
		}
	}
}

static void
audit_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
			if (cl_shared != NULL && MyDatabaseId != InvalidOid)
			{
				flush_open_reads(InvalidSubTransactionId);
				flush_changes(InvalidSubTransactionId);
				if (kept_dropped > 0)
					ereport(WARNING,
							(errmsg("%lld rolled-back audited changes were not itemized in the audit ledger",
									(long long) kept_dropped),
							 errdetail("A transaction keeps at most %d change records for its rollback.",
									   MAX_KEPT_CHANGES)));
			}
			/* FALLTHROUGH */
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			kept_changes = NIL;
			kept_dropped = 0;
			break;
		default:
			break;
	}
}

static void
audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && cl_shared != NULL)
	{
		flush_changes(mySubid);
		/* reads of statements that failed inside the savepoint */
		flush_open_reads(mySubid);
	}
}

void
cl_audit_init(void)
{
	RegisterXactCallback(audit_xact_callback, NULL);
	RegisterSubXactCallback(audit_subxact_callback, NULL);
}
