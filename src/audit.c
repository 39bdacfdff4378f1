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
 *	  in shared memory per database, drained by that database's audit
 *	  writer (writer.c), which writes the records in transactions of its
 *	  own and never waits for sealing.  Before the statement runs, the
 *	  reader waits until a "started" record is committed, so no row is
 *	  answered without its trace; the outcome ("completed" with the rows
 *	  returned and withheld, or "failed") follows at the end.  A read in a
 *	  READ ONLY transaction, or one that is rolled back, is recorded all the
 *	  same.  A statement gets one record pair per relation it reads,
 *	  however often it refers to it; rows are summed over every run of the
 *	  statement (each FETCH of a cursor), rows withheld are read from the
 *	  policy checks' own counters in the statement's scans (and handed over
 *	  by parallel workers).  PostgreSQL's foreign-key checks are recorded
 *	  as kind "foreign key check", one per statement and referenced table.
 *
 * Waits are interruptible and bounded: a statement waits for queue space
 * or for its record at most consent_ledger.seal_timeout, then fails.  The
 * abort and commit callbacks never raise an error: an aborting backend
 * (which still holds its locks) waits for queue space at most
 * ABORT_WAIT_MS, gives up at once on a cancel or terminate request, and
 * when the database has no audit slot it does not wait at all.  Records
 * it could not queue are counted (ClSealSlot.audit_lost, with a WARNING),
 * and the writer records each such gap in the audit ledger as a record of
 * kind "gap" whose rows_returned is the number of records lost.
 *
 * Every string a record holds is made valid in the database encoding
 * (bytes that are not become '?') and cut on a character boundary at
 * AUDIT_STR_MAX bytes, so that nothing recorded can make pg_dump or
 * pg_restore fail.  On a hot standby nothing can be written, so protected
 * reads are refused there.  Records hold hashes of rows and the rows'
 * keys, never their values.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"


#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/execExpr.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/libpq-be.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "nodes/pathnodes.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
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
#include "sha256.h"

PG_FUNCTION_INFO_V1(cl_audit);
PG_FUNCTION_INFO_V1(cl_rotate_audit_ledger);
PG_FUNCTION_INFO_V1(cl_audit_row);
PG_FUNCTION_INFO_V1(cl_row_hash);
PG_FUNCTION_INFO_V1(cl_record_standby_read);

#define AUDIT_TRIGGER		"~consent_ledger_audit"
#define AUDIT_TRUNC_TRIGGER "~consent_ledger_audit_truncate"
#define MAX_KEPT_CHANGES	100000	/* rollback copies kept per transaction */
#define AUDIT_STR_MAX		CL_AUDIT_STR_MAX	/* bytes of one string in a record */
#define ABORT_WAIT_MS		5000	/* longest wait for queue space while aborting */

/* attribute numbers of consent_ledger.audit_log */
enum
{
	A_RECORD_ID = 1, A_AT, A_KIND, A_OPERATION, A_RELATION, A_RELID,
	A_SESSION, A_SESSION_USER, A_ROLE, A_CLIENT, A_APP, A_PURPOSE,
	A_ROW_KEY, A_OLD_HASH, A_NEW_HASH, A_XID, A_OUTCOME, A_ROWS,
	A_WITHHELD, A_QUERY_ID, A_BYPASSED, A_OLD_SUBJECT, A_NEW_SUBJECT,
	A_NATTS = A_NEW_SUBJECT
};

/* the strings of a record */
enum
{
	S_KIND, S_OPERATION, S_RELATION, S_SESSION, S_SESSION_USER, S_ROLE,
	S_CLIENT, S_APP, S_PURPOSE, S_ROW_KEY, S_OLD_SUBJECT, S_NEW_SUBJECT,
	NSTR
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
	bool		has_withheld;	/* rows_withheld is known (else NULL) */
	bool		bypassed;
	bool		has_old;
	bool		has_new;
	uint8		old_hash[CL_HASH_LEN];
	uint8		new_hash[CL_HASH_LEN];
	char		outcome;		/* 'c' committed, 'r' rolled back, 's' started, 'd' done, 'f' failed, 'l' lost (gap) */
	uint16		strlen[NSTR];
} AuditHead;

typedef struct AuditRecord
{
	AuditHead	h;
	const char *str[NSTR];
} AuditRecord;

/* Change records of the current transaction, for the rollback path */
typedef struct KeptChange
{
	SubTransactionId subid;
	Size		len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} KeptChange;

static List *kept_changes = NIL;	/* in TopTransactionContext */

/*
 * Per query and audited table: the encoder for its rows, the audit ledger,
 * and the table's subject column when the ledger records subjects
 */
typedef struct AuditTriggerCache
{
	Oid			relid;
	ClRowEncoder *enc;
	Oid			log_relid;
	AttrNumber	subject;		/* or InvalidAttrNumber */
	FmgrInfo	subject_out;
	bool		subject_trim;	/* char(n): without trailing blanks, as ::text */
} AuditTriggerCache;
static int64 kept_dropped = 0;

/*
 * Protected reads in progress in this backend: one per statement (query
 * descriptor), with one entry per distinct protected relation or purpose
 * view it reads, however often the statement refers to it.
 */
typedef struct OpenRead
{
	QueryDesc  *qd;
	int			nrels;
	Oid		   *relids;
	char	  **relnames;		/* per relation: its qualified name */
	char	  **purposes;		/* per relation: the purpose in force */
	char	  **operations;		/* per relation: how it was read */
	uint64	   *withheld;		/* per relation: rows its consent checks refused */
	char	   *session_user_name;	/* names resolved at the start: no */
	char	   *role_name;		/* catalog access when the read aborts */
	bool		bypassed;
	bool		wait;			/* rows reach the client: "started" first */
	bool		fk_check;		/* PostgreSQL's referential-integrity check */
	bool		withheld_known; /* false if parallel workers' counts were lost */
	uint64	   *worker_withheld;	/* per relation: refusals in parallel workers */
	int			nexpanded;		/* partitions read through a protected parent: */
	Oid		   *expanded_child;	/* each partition scanned, and */
	Oid		   *expanded_parent;	/* the relation whose record covers it */
	SubTransactionId subid;
	SubTransactionId failed_subid;	/* a run failed there: no ExecutorEnd will come */
	uint64		rows;			/* summed over every run (each FETCH of a cursor) */
	int64		query_id;
	bool		forwarded;		/* standby: the primary acknowledged "started" */
} OpenRead;

static List *open_reads = NIL;	/* in TopMemoryContext */

/*
 * Foreign-key checks of the current statement, one entry per referenced
 * relation (OpenRead with qd NULL, rows summed over the checks): PostgreSQL
 * runs one query per checked row, and the statement gets one record per
 * relation, written when the top-level statement ends; checks that run
 * outside an executor (COPY FROM, deferred constraints, SET CONSTRAINTS)
 * are written at the end of the next top-level statement that runs the
 * executor or at the end of the transaction (PRE_COMMIT or abort, in the
 * callbacks' never-raise mode), whichever comes first.
 */
static List *fk_pending = NIL;	/* in TopMemoryContext */

static uint64 record_read(OpenRead *r, char outcome, bool in_abort);
static void clear_worker_withheld(void);

/* ---------------------------------------------------------------------
 * Serialization and the shared queue
 * --------------------------------------------------------------------- */

/*
 * A string as a record may hold it: valid in the database encoding (each
 * byte that does not start a valid character becomes '?') and at most
 * AUDIT_STR_MAX bytes, cut on a character boundary.  Returns the string
 * (the argument itself when it needed no change) and its length.
 */
static const char *
audit_string(const char *s, int *lenp)
{
	int			len = strlen(s);

	if (!pg_verifymbstr(s, len, true))
	{
		int			enc = GetDatabaseEncoding();
		char	   *clean = palloc(len + 1);
		int			i = 0;
		int			j = 0;

		while (i < len)
		{
			int			l = pg_encoding_verifymbchar(enc, s + i, len - i);

			if (l <= 0)
			{
				clean[j++] = '?';
				i++;
			}
			else
			{
				memcpy(clean + j, s + i, l);
				i += l;
				j += l;
			}
		}
		clean[j] = '\0';
		s = clean;
		len = j;
	}
	if (len > AUDIT_STR_MAX)
		len = pg_mbcliplen(s, len, AUDIT_STR_MAX);
	*lenp = len;
	return s;
}

static char *
serialize(AuditRecord *r, Size *lenp)
{
	Size		len = sizeof(AuditHead);
	const char *str[NSTR];
	char	   *buf;
	char	   *p;

	for (int i = 0; i < NSTR; i++)
	{
		int			n = 0;

		str[i] = r->str[i] ? audit_string(r->str[i], &n) : "";
		r->h.strlen[i] = (uint16) n;
		len += n;
	}
	r->h.len = (uint32) len;
	buf = palloc(len);
	memcpy(buf, &r->h, sizeof(AuditHead));
	p = buf + sizeof(AuditHead);
	for (int i = 0; i < NSTR; i++)
	{
		memcpy(p, str[i], r->h.strlen[i]);
		p += r->h.strlen[i];
	}
	*lenp = len;
	return buf;
}

/* Wakes the audit writer of a slot, or has the launcher start one. */
static void
wake_writer(ClSealSlot *s)
{
	Latch	   *latch;
	Latch	   *launcher = NULL;

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	if (s->dboid != MyDatabaseId)
	{
		LWLockRelease(cl_shared->lock);
		return;
	}
	latch = s->writer_latch;
	if (latch == NULL)
	{
		/* no writer (yet): the launcher starts one, and a sealer if needed */
		if (s->pid == 0)
			s->wanted = true;
		launcher = cl_shared->launcher_latch;
	}
	LWLockRelease(cl_shared->lock);
	if (latch)
		SetLatch(latch);
	if (launcher)
		SetLatch(launcher);
}

/*
 * Records of the current abort that could not be queued, and why; the
 * abort paths report them once (abort_report()).
 */
static uint64 abort_lost = 0;
static const char *abort_reason = NULL;

/*
 * Appends one serialized record to this database's queue, waiting for
 * space, and returns its sequence number.
 *
 * in_abort: called from an abort callback (interrupts are held, locks
 * still held).  Never raises; waits at most ABORT_WAIT_MS and gives up at
 * once on a cancel or terminate request or without a slot.  A record not
 * queued is counted in abort_lost and 0 is returned.  Otherwise it waits
 * at most consent_ledger.seal_timeout, servicing interrupts, then fails.
 */
static uint64
enqueue(const char *data, Size len, bool in_abort)
{
	TimestampTz start = GetCurrentTimestamp();
	int			limit_ms = in_abort ? Min(ABORT_WAIT_MS, cl_seal_timeout_ms) : cl_seal_timeout_ms;
	bool		sleeping = false;
	uint64		seq = 0;

	if (in_abort && abort_reason != NULL)
	{
		/* an earlier record of this abort already gave up: do not wait again */
		abort_lost++;
		return 0;
	}
	if (len > CL_AUDIT_RING)
	{
		if (in_abort)
		{
			abort_reason = "a record is larger than the audit queue";
			abort_lost++;
			return 0;
		}
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("audit record of %zu bytes is too large for the audit queue", (size_t) len),
				 errdetail("The audit queue of a database holds %d bytes.", CL_AUDIT_RING),
				 errhint("Shorten what the record holds: the key values of the row, the application_name, the purpose.")));
	}
	for (;;)
	{
		ClSealSlot *s;
		int			slotno;
		bool		queued = false;
		long		waited;

		LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
		s = cl_slot_for(MyDatabaseId, true);
		if (s == NULL)
		{
			LWLockRelease(cl_shared->lock);
			if (sleeping)
				ConditionVariableCancelSleep();
			if (in_abort)
			{
				abort_reason = "this database has no audit slot (consent_ledger.max_databases)";
				abort_lost++;
				return 0;
			}
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("consent_ledger can audit at most %d databases", cl_shared->nslots),
					 errdetail("Every audit slot is taken by another database with the extension; this read cannot be recorded, so it is refused."),
					 errhint("Raise consent_ledger.max_databases (and max_worker_processes: each database needs two workers) and restart the server.")));
		}
		slotno = s - cl_shared->slots;
		if (CL_AUDIT_RING - (s->audit_head - s->audit_tail) >= len)
		{
			char	   *ring = cl_audit_ring(slotno);
			uint64		off = s->audit_head % CL_AUDIT_RING;
			Size		first = Min(len, CL_AUDIT_RING - off);

			memcpy(ring + off, data, first);
			if (first < len)
				memcpy(ring, data + first, len - first);
			s->audit_head += len;
			seq = ++s->audit_enqueued;
			queued = true;
		}
		LWLockRelease(cl_shared->lock);
		wake_writer(s);
		if (queued)
			break;

		waited = (long) ((GetCurrentTimestamp() - start) / 1000);
		if (in_abort)
		{
			if (QueryCancelPending || ProcDiePending || waited >= limit_ms)
			{
				abort_reason = ProcDiePending ? "the session is terminating" :
					QueryCancelPending ? "the wait was cancelled" :
					psprintf("the audit queue stayed full for %d ms", limit_ms);
				abort_lost++;
				return 0;
			}
			/* the latch is set by a cancel or terminate request */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 10, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		if (waited >= limit_ms)
		{
			if (sleeping)
				ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("timed out waiting for space in the audit queue"),
					 errdetail("The audit writer of this database wrote nothing within consent_ledger.seal_timeout (%d ms).",
							   cl_seal_timeout_ms),
					 errhint("Check the server log for errors of the consent_ledger audit writer.")));
		}
		if (!sleeping)
			ConditionVariablePrepareToSleep(&cl_shared->audit_cv);
		sleeping = true;
		(void) ConditionVariableTimedSleep(&cl_shared->audit_cv, 100, PG_WAIT_EXTENSION);
	}
	if (sleeping)
		ConditionVariableCancelSleep();
	return seq;
}

/*
 * Reports and counts the records an abort could not queue: a WARNING in
 * the session and the server log, and the slot's audit_lost, from which
 * the writer records the gap.  Never raises.
 */
static void
abort_report(bool committing)
{
	ClSealSlot *s;

	if (abort_lost == 0)
	{
		abort_reason = NULL;
		return;
	}
	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	s = cl_slot_for(MyDatabaseId, false);
	if (s != NULL)
		s->audit_lost += abort_lost;
	else
		pg_atomic_fetch_add_u64(&cl_shared->audit_lost_unslotted, abort_lost);
	LWLockRelease(cl_shared->lock);
	if (s != NULL)
		wake_writer(s);
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 committing ?
			 errmsg(UINT64_FORMAT " foreign-key check records of a committing transaction were not queued: %s",
					abort_lost, abort_reason ? abort_reason : "unknown reason") :
			 errmsg(UINT64_FORMAT " audit records of a rolled-back transaction were not queued: %s",
					abort_lost, abort_reason ? abort_reason : "unknown reason"),
			 s != NULL ?
			 errdetail("The audit writer records the gap in consent_ledger.audit_log (kind \"gap\").") :
			 errdetail("This database has no audit slot, so the gap cannot be recorded in its audit ledger."),
			 errhint("Rolled-back work is recorded through a queue in shared memory; see the Audit section of the consent_ledger README.")));
	abort_lost = 0;
	abort_reason = NULL;
}

/*
 * Waits until this database's writer committed record seq: at most
 * consent_ledger.seal_timeout, servicing interrupts.
 */
static void
wait_written(uint64 seq)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cl_seal_timeout_ms);

	/* 0: nothing queued (a standby's records are acknowledged when forwarded) */
	if (seq == 0)
		return;

	ConditionVariablePrepareToSleep(&cl_shared->audit_cv);
	for (;;)
	{
		ClSealSlot *s;
		uint64		written = 0;
		bool		gone;

		LWLockAcquire(cl_shared->lock, LW_SHARED);
		s = cl_slot_for(MyDatabaseId, false);
		gone = (s == NULL);
		if (s)
			written = s->audit_written;
		LWLockRelease(cl_shared->lock);
		if (gone)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the audit queue of this database went away before the record of this read was written"),
					 errdetail("The read is not answered without its audit record."),
					 errhint("Retry the statement.")));
		}
		if (written >= seq)
			break;
		wake_writer(s);
		if (GetCurrentTimestamp() >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("timed out waiting for the audit record of this read to be written"),
					 errdetail("The record is queued and will be written; the read is not answered until it is."),
					 errhint("Check the server log for errors of the consent_ledger audit writer.")));
		}
		(void) ConditionVariableTimedSleep(&cl_shared->audit_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

/* ---------------------------------------------------------------------
 * Building records
 * --------------------------------------------------------------------- */

/* Qualified name of a relation, for a record */
static char *
audit_relname(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		return pstrdup("?");
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname);
}

/*
 * The context of a record.  relname, session_user_name and role_name may
 * be given (resolved earlier: an aborting read must not read catalogs);
 * NULL means look them up now.
 */
static void
fill_context(AuditRecord *r, const char *kind, const char *operation, Oid relid,
			 const char *relname, const char *purpose,
			 const char *session_user_name, const char *role_name)
{
	memset(r, 0, sizeof(AuditRecord));
	r->h.at = GetCurrentTimestamp();
	r->h.relid = relid;
	r->h.xid = GetTopFullTransactionIdIfAny();
	r->str[S_KIND] = kind;
	r->str[S_OPERATION] = operation;
	r->str[S_RELATION] = relname ? relname : audit_relname(relid);
	r->str[S_SESSION] = psprintf("%lx.%x", (long) MyStartTime, MyProcPid);
	r->str[S_SESSION_USER] = session_user_name ? session_user_name :
		GetUserNameFromId(GetSessionUserId(), true);
	r->str[S_ROLE] = role_name ? role_name : GetUserNameFromId(GetUserId(), true);
	r->str[S_CLIENT] = (MyProcPort && MyProcPort->remote_host) ? MyProcPort->remote_host : NULL;
	r->str[S_APP] = application_name;
	r->str[S_PURPOSE] = (purpose && purpose[0]) ? purpose : NULL;
}

/*
 * Key columns of a row: primary key, else replica identity, as text
 * "(columns)=(values)"; NULL when the table has neither.  erase.c finds a
 * subject's audit records by it (the same text for the same row).
 */
char *
cl_audit_row_key(Relation rel, HeapTuple tup)
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
static Oid	audit_log_relid(bool create);

/*
 * The encoding version of row hashes: the audit ledger's own (version 1
 * in an audit ledger made before 1.2, so old and new records' row hashes
 * compare), or the version a new ledger would get when there is no audit
 * ledger yet.
 */
static int
row_hash_encoding(Oid log_relid)
{
	ClLedgerInfo *info = cl_ledger_lookup(log_relid);

	int			encoding = info != NULL ? info->encoding : cl_new_ledger_encoding();

	/*
	 * An audit ledger with personal columns (version 3) hashes rows in
	 * version 2: a row hash covers every column of the row, a ledger's
	 * ledger_salt included, and no commitment.
	 */
	return Min(encoding, CL_ENCODING_V2);
}

/* SHA-256 of a row's canonical encoding (ledger header zeroed) */
static void
row_hash(Relation rel, HeapTuple tup, uint8 *out)
{
	ClRowEncoder *enc = cl_encoder_create(RelationGetDescr(rel),
										  row_hash_encoding(audit_log_relid(false)),
										  CurrentMemoryContext);

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
	cl_sha256(buf.data, buf.len, out);
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

	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errhint("Pass an existing table, e.g. row_hash('t', t.*) ... FROM t.")));
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
	" record_id pg_catalog.int8 NOT NULL,"
	" at pg_catalog.timestamptz NOT NULL,"
	" kind pg_catalog.text NOT NULL,"
	" operation pg_catalog.text NOT NULL,"
	" relation pg_catalog.text NOT NULL,"
	" relid pg_catalog.oid,"
	" session_id pg_catalog.text NOT NULL,"
	" session_user_name pg_catalog.text,"
	" role_name pg_catalog.text,"
	" client_addr pg_catalog.text,"
	" application_name pg_catalog.text,"
	" purpose pg_catalog.text,"
	" row_key pg_catalog.text,"
	" old_row_hash pg_catalog.bytea,"
	" new_row_hash pg_catalog.bytea,"
	" xid pg_catalog.xid8,"
	" outcome pg_catalog.text NOT NULL,"
	" rows_returned pg_catalog.int8,"
	" rows_withheld pg_catalog.int8,"
	" query_id pg_catalog.int8,"
	" rls_bypassed pg_catalog.bool,"
	" old_subject pg_catalog.text,"
	" new_subject pg_catalog.text)",
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
	Oid			relid = cl_check_internal_table(get_relname_relid("audit_log", nsp), "audit_log");
	Oid			owner;

	if (OidIsValid(relid) || !create)
		return relid;
	LockRelationOid(cl_internal_relid("audited"), ShareRowExclusiveLock);
	relid = cl_check_internal_table(get_relname_relid("audit_log", nsp), "audit_log");
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
	/*
	 * Personal data (README "Erasure"), from 1.3's SQL objects on: row_key,
	 * the hashes of the audited row's versions, which whoever can guess
	 * every column of an ordinary table's row could recompute, and the
	 * versions' subjects (audit ledgers made by the first 1.3 builds have
	 * row_key alone, those made before 1.5's library no subjects).
	 */
	if (get_attnum(cl_internal_relid("ledgers"), "personal") > 0)
		cl_make_ledger_personal(relid, list_make5(pstrdup("row_key"), pstrdup("old_row_hash"),
												  pstrdup("new_row_hash"), pstrdup("old_subject"),
												  pstrdup("new_subject")), "row_key");
	else
		cl_make_ledger(relid);
	CommandCounterIncrement();
	return relid;
}

/*
 * Opens the audit ledger for inserting records.  The OID is locked before
 * the relation is opened, and looked up again once the lock is held: a
 * rotation (rotate_audit_ledger(): the old ledger retired and renamed, a
 * new one made) may have replaced the table this session found by name
 * while it waited, and the records then go into the new one.  known is the
 * ledger the caller used last (the trigger's, per query): once locked, it
 * is taken when its own catalog entry still names it
 * consent_ledger.audit_log, without the lookup by name and its checks.
 */
static Relation
open_audit_log(Oid known)
{
	if (OidIsValid(known))
	{
		char	   *name;

		LockRelationOid(known, RowExclusiveLock);
		/* still consent_ledger.audit_log (a rotation renames it) */
		name = get_rel_name(known);
		if (name != NULL && strcmp(name, "audit_log") == 0 &&
			get_rel_namespace(known) == cl_schema_oid(false))
			return table_open(known, NoLock);
		UnlockRelationOid(known, RowExclusiveLock);
	}
	return cl_open_by_name_locked(audit_log_relid, true, RowExclusiveLock);
}

/*
 * Whether an audit ledger has the old_subject and new_subject columns
 * (those made by this library do; older ones end with rls_bypassed).
 */
static bool
audit_log_has_subjects(TupleDesc desc)
{
	return desc->natts >= A_NEW_SUBJECT &&
		strcmp(NameStr(TupleDescAttr(desc, A_OLD_SUBJECT - 1)->attname), "old_subject") == 0 &&
		strcmp(NameStr(TupleDescAttr(desc, A_NEW_SUBJECT - 1)->attname), "new_subject") == 0;
}

/*
 * The text form of a row version's subject column, as the consent policy
 * compares it (char(n) without trailing blanks); NULL when null.
 */
static char *
row_subject(AuditTriggerCache *cache, Relation rel, HeapTuple tup)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, cache->subject, RelationGetDescr(rel), &isnull);
	char	   *s;

	if (isnull)
		return NULL;
	s = OutputFunctionCall(&cache->subject_out, d);
	if (cache->subject_trim)
		cl_trim_bpchar(s);
	return s;
}

/* Inserts one record into the audit ledger (inside the current transaction). */
static void
insert_record(Relation rel, const AuditHead *h, const char *strings)
{
	Datum		values[A_NATTS + 3];	/* + ledger_txn, ledger_ord, ledger_salt */
	bool		nulls[A_NATTS + 3];
	const char *str[NSTR];
	const char *p = strings;
	char		oc;
	int			natts = RelationGetDescr(rel)->natts;

	if (natts > A_NATTS + 3)
		elog(ERROR, "consent_ledger.audit_log has unexpected columns");
	for (int i = 0; i < NSTR; i++)
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
	SETS(A_ROW_KEY, str[S_ROW_KEY]);
	if (audit_log_has_subjects(RelationGetDescr(rel)))
	{
		SETS(A_OLD_SUBJECT, str[S_OLD_SUBJECT]);
		SETS(A_NEW_SUBJECT, str[S_NEW_SUBJECT]);
	}
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
		 oc == 'f' ? "failed" : oc == 's' ? "started" : oc == 'l' ? "lost" : "completed");
	if (h->has_rows && oc != 's')
	{
		SETV(A_ROWS, Int64GetDatum(h->rows));
		if (h->has_withheld)
			SETV(A_WITHHELD, Int64GetDatum(h->withheld));
	}
	if (h->query_id != 0)
		SETV(A_QUERY_ID, Int64GetDatum(h->query_id));
	if (strcmp(str[S_KIND] ? str[S_KIND] : "", "read") == 0 ||
		strcmp(str[S_KIND] ? str[S_KIND] : "", "foreign key check") == 0)
		SETV(A_BYPASSED, BoolGetDatum(h->bypassed));
#undef SETS
#undef SETV
	cl_ledger_insert_direct(rel, values, nulls);
}

/*
 * A "gap" record: n records of this database could not be queued (an
 * aborting backend gave up waiting, was cancelled, or failed).
 */
static void
insert_gap(Relation rel, uint64 n)
{
	AuditRecord r;
	Size		len;
	char	   *data;

	fill_context(&r, "gap", "LOST", RelationGetRelid(rel), NULL, NULL, NULL, NULL);
	r.h.outcome = 'l';
	r.h.has_rows = true;
	r.h.rows = (int64) n;
	data = serialize(&r, &len);
	insert_record(rel, (AuditHead *) data, data + sizeof(AuditHead));
	pfree(data);
}

/*
 * Inserts the queued records copy[0..n) one at a time, each in a
 * subtransaction of its own: the fallback when a batch fails, so that one
 * record that cannot be written never blocks the queue.  Returns the
 * number of records that could not be written.
 */
/* One record, or a whole batch, to insert (cl_run_in_subxact) */
typedef struct InsertWork
{
	Relation	rel;
	const char *copy;
	Size		off;
	Size		end;
} InsertWork;

static void
insert_work(void *arg)
{
	InsertWork *w = arg;
	Size		off = w->off;

	while (off < w->end)
	{
		AuditHead	h;

		memcpy(&h, w->copy + off, sizeof(AuditHead));
		if (h.len < sizeof(AuditHead) || off + h.len > w->end)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("corrupt audit queue")));
		insert_record(w->rel, &h, w->copy + off + sizeof(AuditHead));
		off += h.len;
	}
}

static uint64
insert_one_by_one(Relation rel, const char *copy, Size n)
{
	uint64		failed = 0;
	Size		off = 0;

	while (off < n)
	{
		AuditHead	h;
		InsertWork	w;
		ErrorData  *edata;

		memcpy(&h, copy + off, sizeof(AuditHead));
		if (h.len < sizeof(AuditHead) || off + h.len > n)
		{
			/* cannot happen: the queue is written by serialize() only */
			ereport(WARNING,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the audit queue of this database is corrupt; the rest of it is dropped")));
			failed++;
			break;
		}
		w.rel = rel;
		w.copy = copy;
		w.off = off;
		w.end = off + h.len;
		edata = cl_run_in_subxact(insert_work, &w);
		if (edata != NULL)
		{
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("consent_ledger could not write an audit record: %s", edata->message),
					 errdetail("The record is counted in a \"gap\" record of the audit ledger instead.")));
			FreeErrorData(edata);
			failed++;
		}
		off += h.len;
	}
	return failed;
}

/*
 * The audit writer's work (writer.c): takes the queued records (the queue
 * space is freed once they are committed), writes them in a transaction of
 * its own, records any gap, and then tells the waiting readers.  A batch
 * that fails is written again one record at a time, so that a record that
 * cannot be written is counted as a gap instead of stopping the writer.
 */
ClDrainResult
cl_audit_drain(ClSealSlot *slot, int slotno)
{
	char	   *ring = cl_audit_ring(slotno);
	char	   *copy = NULL;
	uint64		head,
				tail,
				last_seq,
				lost,
				lost_recorded;
	Size		n;
	Relation	rel;
	uint64		failed = 0;

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	head = slot->audit_head;
	tail = slot->audit_tail;
	last_seq = slot->audit_enqueued;
	lost = slot->audit_lost;
	lost_recorded = slot->audit_lost_recorded;
	LWLockRelease(cl_shared->lock);
	if (head == tail && lost == lost_recorded)
		return CL_DRAIN_IDLE;
	n = head - tail;
	if (n > 0)
	{
		copy = palloc(n);
		for (Size i = 0; i < n;)
		{
			uint64		o = (tail + i) % CL_AUDIT_RING;
			Size		chunk = Min(n - i, CL_AUDIT_RING - o);

			memcpy(copy + i, ring + o, chunk);
			i += chunk;
		}
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!cl_extension_present())
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		if (copy)
			pfree(copy);
		return CL_DRAIN_ABSENT;
	}
	pgstat_report_activity(STATE_RUNNING, "writing audit records");
	rel = open_audit_log(InvalidOid);

	/* the whole batch in one subtransaction; one by one if it fails */
	{
		InsertWork	w = {rel, copy, 0, n};
		ErrorData  *edata = cl_run_in_subxact(insert_work, &w);

		if (edata != NULL)
		{
			ereport(LOG,
					(errmsg("consent_ledger audit writer: a batch of audit records failed (%s); writing them one by one",
							edata->message)));
			FreeErrorData(edata);
			failed = insert_one_by_one(rel, copy, n);
		}
	}

	if (lost + failed > lost_recorded)
		insert_gap(rel, lost + failed - lost_recorded);
	/* the lock is kept until commit, as for every insert (rotate_audit_ledger() waits for it) */
	table_close(rel, NoLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	slot->audit_tail = head;
	slot->audit_written = last_seq;
	/* records that failed were counted in the gap just written */
	slot->audit_lost += failed;
	slot->audit_lost_recorded = lost + failed;
	LWLockRelease(cl_shared->lock);
	ConditionVariableBroadcast(&cl_shared->audit_cv);
	if (copy)
		pfree(copy);
	return CL_DRAIN_WROTE;
}

/*
 * consent_ledger.record_standby_read(standby, at, session_id,
 *     session_user_name, role_name, client_addr, application_name, purpose,
 *     relation, relid, operation, outcome, rows_returned, rows_withheld,
 *     query_id, rls_bypassed) RETURNS void
 *
 * The primary's side of an audited read on a hot standby (standby.c): one
 * record of a read the standby serves, written into this database's audit
 * ledger in the caller's transaction, as the audit writer writes the
 * primary's own read records (insert_record).  The caller's commit is made
 * synchronous (synchronous_commit = on for the transaction): the standby
 * answers the read once the call's transaction committed, as a reader on
 * the primary goes on once its record is committed.  The record's
 * session_id is "<standby>/<session on the standby>", which names the
 * standby that served the read.  Outcome "lost" writes a "gap" record
 * (rows_returned records of that standby could not be forwarded).
 *
 * EXECUTE is granted to consent_ledger_standby only (and superusers):
 * whoever can call it can add read records, so no other role may.
 */
Datum
cl_record_standby_read(PG_FUNCTION_ARGS)
{
	AuditRecord rec;
	const char *outcome;
	Relation	rel;
	Size		len;
	char	   *data;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot record a standby's read during recovery"),
				 errdetail("Standby reads are recorded by the primary; this server is itself a standby."),
				 errhint("Point consent_ledger.standby_audit_conninfo at the primary.")));
	if (cl_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger must be loaded via shared_preload_libraries"),
				 errhint("Add consent_ledger to shared_preload_libraries and restart the server.")));
	for (int i = 0; i < 12; i++)
		if (PG_ARGISNULL(i) && (i == 0 || i == 2 || i == 8 || i == 10 || i == 11))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("standby, session_id, relation, operation and outcome of a standby read must not be NULL"),
					 errhint("This function is called by a standby's consent_ledger, not by hand.")));
	outcome = text_to_cstring(PG_GETARG_TEXT_PP(11));
	memset(&rec, 0, sizeof(rec));
	if (strcmp(outcome, "started") == 0)
		rec.h.outcome = 's';
	else if (strcmp(outcome, "completed") == 0)
		rec.h.outcome = 'd';
	else if (strcmp(outcome, "failed") == 0)
		rec.h.outcome = 'f';
	else if (strcmp(outcome, "lost") == 0)
		rec.h.outcome = 'l';
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid outcome \"%s\" of a standby read", outcome),
				 errhint("The outcome is one of started, completed, failed, lost.")));
	if (text_to_cstring(PG_GETARG_TEXT_PP(0))[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the name of the standby must not be empty"),
				 errhint("Set consent_ledger.standby_name or cluster_name on the standby.")));

	rec.h.at = PG_ARGISNULL(1) ? GetCurrentTimestamp() : PG_GETARG_TIMESTAMPTZ(1);
	rec.h.relid = PG_ARGISNULL(9) ? InvalidOid : PG_GETARG_OID(9);
	rec.h.xid = InvalidFullTransactionId;	/* a standby read has no transaction id */
	rec.str[S_KIND] = rec.h.outcome == 'l' ? "gap" : "read";
	rec.str[S_OPERATION] = text_to_cstring(PG_GETARG_TEXT_PP(10));
	rec.str[S_RELATION] = text_to_cstring(PG_GETARG_TEXT_PP(8));
	rec.str[S_SESSION] = psprintf("%s/%s", text_to_cstring(PG_GETARG_TEXT_PP(0)),
								  text_to_cstring(PG_GETARG_TEXT_PP(2)));
	rec.str[S_SESSION_USER] = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	rec.str[S_ROLE] = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
	rec.str[S_CLIENT] = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	rec.str[S_APP] = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	rec.str[S_PURPOSE] = PG_ARGISNULL(7) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(7));
	rec.h.has_rows = !PG_ARGISNULL(12);
	rec.h.rows = PG_ARGISNULL(12) ? 0 : PG_GETARG_INT64(12);
	rec.h.has_withheld = !PG_ARGISNULL(13);
	rec.h.withheld = PG_ARGISNULL(13) ? 0 : PG_GETARG_INT64(13);
	rec.h.query_id = PG_ARGISNULL(14) ? 0 : PG_GETARG_INT64(14);
	rec.h.bypassed = PG_ARGISNULL(15) ? false : PG_GETARG_BOOL(15);

	/* durable before the standby answers, whatever the caller's setting */
	(void) set_config_option("synchronous_commit", "on", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	data = serialize(&rec, &len);
	rel = open_audit_log(InvalidOid);
	insert_record(rel, (AuditHead *) data, data + sizeof(AuditHead));
	table_close(rel, NoLock);	/* kept until commit */
	pfree(data);
	PG_RETURN_VOID();
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
	/* first: the log decides the row hashes' encoding (it may be a new one) */
	cache = fcinfo->flinfo->fn_extra;
	log = open_audit_log(cache != NULL ? cache->log_relid : InvalidOid);
	if (cache == NULL || cache->relid != RelationGetRelid(rel) ||
		cache->log_relid != RelationGetRelid(log) ||
		!cl_encoder_matches(cache->enc, RelationGetDescr(rel)))
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (cache == NULL)
			cache = palloc0(sizeof(AuditTriggerCache));
		else
			cl_encoder_free(cache->enc);
		cache->relid = RelationGetRelid(rel);
		cache->log_relid = RelationGetRelid(log);
		cache->enc = cl_encoder_create(RelationGetDescr(rel), row_hash_encoding(cache->log_relid),
									   fcinfo->flinfo->fn_mcxt);
		cache->subject = audit_log_has_subjects(RelationGetDescr(log)) ?
			cl_table_subject_attnum(rel) : InvalidAttrNumber;
		if (cache->subject > 0)
		{
			Oid			out;
			bool		varlena;

			getTypeOutputInfo(TupleDescAttr(RelationGetDescr(rel), cache->subject - 1)->atttypid,
							  &out, &varlena);
			fmgr_info_cxt(out, &cache->subject_out, fcinfo->flinfo->fn_mcxt);
			cache->subject_trim =
				cl_type_is_bpchar(TupleDescAttr(RelationGetDescr(rel), cache->subject - 1)->atttypid);
		}
		fcinfo->flinfo->fn_extra = cache;
		MemoryContextSwitchTo(old);
	}
	op = TRIGGER_FIRED_BY_INSERT(td->tg_event) ? "INSERT" :
		TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? "UPDATE" :
		TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "DELETE" : "TRUNCATE";
	fill_context(&r, "change", op, RelationGetRelid(rel), NULL, cl_purpose, NULL, NULL);
	r.h.xid = GetTopFullTransactionId();
	r.h.outcome = 'c';
	if (TRIGGER_FIRED_FOR_ROW(td->tg_event))
	{
		HeapTuple	keytup = TRIGGER_FIRED_BY_INSERT(td->tg_event) ? td->tg_trigtuple :
			TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

		r.str[S_ROW_KEY] = cl_audit_row_key(rel, keytup);
		if (cache->subject > 0)
		{
			if (!TRIGGER_FIRED_BY_INSERT(td->tg_event))
				r.str[S_OLD_SUBJECT] = row_subject(cache, rel, td->tg_trigtuple);
			r.str[S_NEW_SUBJECT] = TRIGGER_FIRED_BY_INSERT(td->tg_event) ?
				row_subject(cache, rel, td->tg_trigtuple) :
				TRIGGER_FIRED_BY_UPDATE(td->tg_event) ?
				row_subject(cache, rel, td->tg_newtuple) : NULL;

			/*
			 * A record keeps at most AUDIT_STR_MAX bytes of a string: a
			 * longer subject, cut, would name another (its prefix) and not
			 * itself.  Then the record names no subject and is found by
			 * its row key.
			 */
			if ((r.str[S_OLD_SUBJECT] != NULL && strlen(r.str[S_OLD_SUBJECT]) > AUDIT_STR_MAX) ||
				(r.str[S_NEW_SUBJECT] != NULL && strlen(r.str[S_NEW_SUBJECT]) > AUDIT_STR_MAX))
				r.str[S_OLD_SUBJECT] = r.str[S_NEW_SUBJECT] = NULL;
		}
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
	insert_record(log, (AuditHead *) data, data + sizeof(AuditHead));
	/*
	 * The lock is kept until the audited transaction ends, as for any
	 * insert: a rotation (ACCESS EXCLUSIVE) then waits until the record is
	 * committed or rolled back, never retiring the ledger under it.
	 */
	table_close(log, NoLock);
	pfree(data);
	r.h.outcome = 'r';
	keep_change(&r);
	return PointerGetDatum(NULL);
}

/*
 * consent_ledger.rotate_audit_ledger() RETURNS regclass (README "Rotating
 * the audit ledger")
 *
 * Retires the audit ledger and renames its table
 * consent_ledger.audit_log_ledger_<id>, and makes a new audit ledger (with
 * personal row keys and row hashes), all in the caller's transaction:
 * records of changes and reads that waited go into the new one (they look
 * the ledger up again under its lock: open_audit_log()).  The old one
 * keeps its rows until an administrator has exported it and drops it; its
 * log and checkpoints stay.  Returns the old table (NULL, with a NOTICE,
 * when there is no audit ledger).
 */
Datum
cl_rotate_audit_ledger(PG_FUNCTION_ARGS)
{
	Relation	rel;
	Oid			relid;
	Oid			new_relid;
	ClLedgerInfo *info;
	char	   *oldname;
	Oid			owner;

	cl_require_admin("rotate the audit ledger",
					 "rotate the audit ledger; EXECUTE on the function is not enough",
					 "rotate_audit_ledger");
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot rotate the audit ledger during recovery"),
				 errhint("Call rotate_audit_ledger() on the primary.")));

	/* no erasure (it rewrites the audit ledger), no other creator */
	cl_lock_extension(CL_LOCK_ERASE, ExclusiveLock);
	LockRelationOid(cl_internal_relid("audited"), ShareRowExclusiveLock);
	rel = cl_open_by_name_locked(audit_log_relid, false, AccessExclusiveLock);
	if (rel == NULL)
	{
		ereport(NOTICE,
				(errmsg("there is no audit ledger to rotate"),
				 errdetail("The first audited change or read makes it, with personal row keys and row hashes.")));
		PG_RETURN_NULL();
	}
	relid = RelationGetRelid(rel);
	table_close(rel, NoLock);
	info = cl_ledger_lookup(relid);
	if (info == NULL || info->retired)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger.audit_log is not a live ledger table"),
				 errhint("Check the extension's installation.")));
	oldname = psprintf("audit_log_ledger_%d", info->ledger_id);
	cl_refuse_taken_name(oldname, "The rotation renames the audit ledger's table to this name.");

	owner = cl_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_run_as_owner(psprintf("UPDATE consent_ledger.ledgers SET retired_at = pg_catalog.now() "
							 "WHERE ledger_id OPERATOR(pg_catalog.=) %d AND retired_at IS NULL",
							 info->ledger_id), owner);
	cl_run_as_owner(psprintf("ALTER TABLE consent_ledger.audit_log RENAME TO %s",
							 quote_identifier(oldname)), owner);
	SPI_finish();
	CommandCounterIncrement();
	CacheInvalidateRelcacheByRelid(relid);
	cl_ledger_cache_reset();
	new_relid = audit_log_relid(true);
	ereport(NOTICE,
			(errmsg("the audit ledger (ledger %d) is retired as %s.%s; new records go to a new audit ledger (ledger %d)",
					info->ledger_id, CL_SCHEMA, oldname, cl_ledger_lookup(new_relid)->ledger_id),
			 errhint("Export it after seal(), verify the export offline, then drop the table: its log and checkpoints stay.")));
	PG_RETURN_OID(relid);
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
	/* a trigger of the owner's under one of the audit trigger names */
	cl_refuse_foreign_trigger(relid, AUDIT_TRIGGER, "audit_row");
	cl_refuse_foreign_trigger(relid, AUDIT_TRUNC_TRIGGER, "audit_row");
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
	/* a partitioned table: per partition, present (here) and future (partition.c) */
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
	{
		List	   *all = find_all_inheritors(relid, ShareRowExclusiveLock, NULL);
		ListCell   *lc;

		foreach(lc, all)
			cl_audit_partition(lfirst_oid(lc));
		SPI_finish();
		PG_RETURN_VOID();
	}
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

/*
 * One relation of an audited partitioned table (the parent included):
 * registered as audited, so the guard keeps its triggers; a leaf gets the
 * row trigger, every one the TRUNCATE trigger (a TRUNCATE of a partition
 * fires only its own statement triggers).  No row trigger on a
 * partitioned table: PostgreSQL would clone it onto each new partition
 * with the privileges of whoever creates it, who may not execute
 * audit_row(); partition.c audits new partitions instead.  Inside SPI.
 */
void
cl_audit_partition(Oid relid)
{
	Oid			owner = cl_extension_owner();
	char	   *qname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid));

	if (cl_is_audited(relid))
		return;
	/* a trigger already there counts only if it calls audit_row() (custody.c) */
	if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE &&
		!cl_extension_trigger_present(relid, AUDIT_TRIGGER, "audit_row"))
	{
		cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" AFTER INSERT OR UPDATE OR DELETE ON %s "
								 "FOR EACH ROW EXECUTE FUNCTION consent_ledger.audit_row()",
								 AUDIT_TRIGGER, qname), owner);
		cl_run_as_owner(psprintf("ALTER TABLE ONLY %s ENABLE ALWAYS TRIGGER \"%s\"",
								 qname, AUDIT_TRIGGER), owner);
	}
	if (!cl_extension_trigger_present(relid, AUDIT_TRUNC_TRIGGER, "audit_row"))
	{
		cl_run_as_owner(psprintf("CREATE TRIGGER \"%s\" AFTER TRUNCATE ON %s "
								 "FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger.audit_row()",
								 AUDIT_TRUNC_TRIGGER, qname), owner);
		cl_run_as_owner(psprintf("ALTER TABLE ONLY %s ENABLE ALWAYS TRIGGER \"%s\"",
								 qname, AUDIT_TRUNC_TRIGGER), owner);
	}
	cl_run_as_owner(psprintf("INSERT INTO consent_ledger.audited (relid, audited_at) "
							 "VALUES (%u::pg_catalog.oid, pg_catalog.now())", relid), owner);
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

/*
 * Resolves the names a read's records hold while catalogs can be read: if
 * the read fails, its record is queued during abort, which must not.
 */
static void
capture_names(OpenRead *r)
{
	/*
	 * Looked up in a context of their own, then copied: the lookups' own
	 * allocations (the schema and table names a qualified name is built
	 * from) must not stay in TopMemoryContext, where callers run this.
	 */
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger audit names",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	char	   *name;

	r->relnames = MemoryContextAlloc(TopMemoryContext, sizeof(char *) * r->nrels);
	for (int i = 0; i < r->nrels; i++)
		r->relnames[i] = MemoryContextStrdup(TopMemoryContext, audit_relname(r->relids[i]));
	name = GetUserNameFromId(GetSessionUserId(), true);
	r->session_user_name = name ? MemoryContextStrdup(TopMemoryContext, name) : NULL;
	name = GetUserNameFromId(GetUserId(), true);
	r->role_name = name ? MemoryContextStrdup(TopMemoryContext, name) : NULL;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
}

static bool
protected_relations_exist(void)
{
	static uint64 checked_generation = 0;
	static bool exist = false;
	uint64		gen = pg_atomic_read_u64(&cl_shared->purpose_generation);
	Oid			nsp;

	/* a standby replays protect() and CREATE EXTENSION: nothing bumps the counter */
	if (RecoveryInProgress())
		gen = GetXLogReplayRecPtr(NULL) | UINT64CONST(0x8000000000000000);
	if (gen == checked_generation)
		return exist;
	nsp = cl_schema_oid(true);
	exist = OidIsValid(nsp) && OidIsValid(get_relname_relid("protected", nsp));
	checked_generation = gen;
	return exist;
}

/*
 * On a hot standby a read is answered only when its records can be
 * forwarded to the primary (standby.c); without a conninfo none is.
 */
static void
refuse_read_on_standby(void)
{
	if (RecoveryInProgress() && !cl_standby_audit_configured())
		cl_standby_refuse_unconfigured();
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

/* Whether (relid, operation, purpose) is among the first n entries. */
static bool
already_listed(Oid *relids, char **operations, char **purposes, int n,
			   Oid relid, const char *operation, const char *purpose)
{
	for (int i = 0; i < n; i++)
		if (relids[i] == relid && strcmp(operations[i], operation) == 0 &&
			(purposes[i] == NULL ? purpose == NULL :
			 purpose != NULL && strcmp(purposes[i], purpose) == 0))
			return true;
	return false;
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
	Bitmapset  *expanded = NULL;
	int			nexp = 0;
	Oid		   *exp_child = NULL;
	Oid		   *exp_parent = NULL;
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

		/*
		 * Only the view's own entry (the one permissions are checked on),
		 * not the OLD/NEW entries its rule leaves in the range table: each
		 * reference of a purpose view brings exactly one entry of its base
		 * table, which it covers.
		 */
		if (rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_VIEW &&
			(rte->requiredPerms & ACL_SELECT) &&
			OidIsValid(base = cl_view_base_cached(rte->relid)))
		{
			uses[nuses].base = base;
			uses[nuses].owner = cl_relation_owner(rte->relid);
			nuses++;
		}
	}

	/*
	 * Partitions expanded from a protected parent: the parent's entry
	 * stands for them (its record, its purpose view, its refusal), so a
	 * read through a partitioned table is one read of that table.  A
	 * partition read directly is an entry of its own.
	 */
	foreach(lc, stmt->appendRelations)
	{
		AppendRelInfo *ai = lfirst_node(AppendRelInfo, lc);
		RangeTblEntry *parent = rt_fetch(ai->parent_relid, stmt->rtable);

		if (parent->rtekind == RTE_RELATION && cl_is_protected_cached(parent->relid))
			expanded = bms_add_member(expanded, ai->child_relid);
	}

	/*
	 * Each expanded partition's scans count their refusals for the topmost
	 * relation it was expanded from (that relation's record covers it):
	 * follow appendRelations up from the partition's entry.
	 */
	if (!bms_is_empty(expanded))
	{
		int			rti = -1;

		exp_child = palloc(sizeof(Oid) * bms_num_members(expanded));
		exp_parent = palloc(sizeof(Oid) * bms_num_members(expanded));
		while ((rti = bms_next_member(expanded, rti)) >= 0)
		{
			Index		top = (Index) rti;
			bool		moved = true;

			for (int depth = 0; moved && depth < list_length(stmt->appendRelations); depth++)
			{
				moved = false;
				foreach(lc, stmt->appendRelations)
				{
					AppendRelInfo *ai = lfirst_node(AppendRelInfo, lc);

					if (ai->child_relid == top && bms_is_member((int) top, expanded))
					{
						top = ai->parent_relid;
						moved = true;
						break;
					}
				}
			}
			exp_child[nexp] = rt_fetch(rti, stmt->rtable)->relid;
			exp_parent[nexp] = rt_fetch(top, stmt->rtable)->relid;
			nexp++;
		}
	}

	foreach(lc, stmt->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		char	   *purpose = NULL;
		char	   *operation = "SELECT";
		Oid			as_role;

		if (bms_is_member(foreach_current_index(lc) + 1, expanded))
			continue;

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
			purpose = pstrdup(vp);
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
				purpose = cl_purpose ? pstrdup(cl_purpose) : NULL;
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

			/*
			 * A read that bypasses row-level security records the purpose
			 * its session declared, as a COPY TO of the table does
			 * (cl_audit_copy_begin); a foreign-key check has none.
			 */
			if (purpose == NULL && !fk_check && cl_purpose && cl_purpose[0])
				purpose = pstrdup(cl_purpose);	/* copied below, with the rest */
		}

		/*
		 * One entry per relation read the same way for the same purpose,
		 * however many times the statement refers to it (a self-join, a
		 * UNION ALL of a thousand branches): the statement reads it once.
		 */
		if (already_listed(relids, operations, purposes, n, rte->relid, operation, purpose))
			continue;
		if (n == cap)
		{
			cap = Max(4, cap * 2);
			/*
			 * In the statement's memory until every refusal below has had
			 * its chance: an error must not leave them in TopMemoryContext.
			 */
			relids = relids ? repalloc(relids, sizeof(Oid) * cap) : palloc(sizeof(Oid) * cap);
			purposes = purposes ? repalloc(purposes, sizeof(char *) * cap) : palloc(sizeof(char *) * cap);
			operations = operations ? repalloc(operations, sizeof(char *) * cap) : palloc(sizeof(char *) * cap);
		}
		relids[n] = rte->relid;
		purposes[n] = purpose;
		operations[n] = operation;
		n++;
	}
	pfree(uses);
	if (n == 0)
		return;
	refuse_read_on_standby();
	old = MemoryContextSwitchTo(TopMemoryContext);
	r = palloc0(sizeof(OpenRead));
	r->qd = queryDesc;
	r->nrels = n;
	r->relids = palloc(sizeof(Oid) * n);
	r->purposes = palloc(sizeof(char *) * n);
	r->operations = palloc(sizeof(char *) * n);
	r->withheld = palloc0(sizeof(uint64) * n);
	r->worker_withheld = palloc0(sizeof(uint64) * n);
	r->nexpanded = nexp;
	if (nexp > 0)
	{
		r->expanded_child = palloc(sizeof(Oid) * nexp);
		r->expanded_parent = palloc(sizeof(Oid) * nexp);
		memcpy(r->expanded_child, exp_child, sizeof(Oid) * nexp);
		memcpy(r->expanded_parent, exp_parent, sizeof(Oid) * nexp);
	}
	for (int i = 0; i < n; i++)
	{
		r->relids[i] = relids[i];
		r->purposes[i] = purposes[i] ? pstrdup(purposes[i]) : NULL;
		r->operations[i] = pstrdup(operations[i]);
	}
	capture_names(r);
	r->bypassed = bypassed;
	r->wait = !fk_check;
	r->fk_check = fk_check;
	r->withheld_known = true;
	r->query_id = (int64) stmt->queryId;
	/* a foreign-key check runs as the table's owner: name who caused it */
	if (fk_check)
	{
		if (r->role_name)
			pfree(r->role_name);
		r->role_name = MemoryContextStrdup(TopMemoryContext, GetUserNameFromId(GetOuterUserId(), false));
	}
	r->subid = GetCurrentSubTransactionId();
	/* no parallel query of this backend runs: nothing in its slot is current */
	if (open_reads == NIL)
		clear_worker_withheld();
	open_reads = lappend(open_reads, r);
	MemoryContextSwitchTo(old);

	/*
	 * Before the first row can reach the client, a "started" record must be
	 * committed: rows are sent while the executor runs, long before
	 * ExecutorEnd.  The outcome record follows at the end.  A foreign-key
	 * check sends no rows: its outcome record is enough.
	 */
	if (r->wait)
		wait_written(record_read(r, 's', false));
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

/*
 * Rows withheld, per relation of a read: the refusals counted at every
 * evaluation site of a policy check (allowed(), view_allows()) in the
 * quals of the statement's scans (policy.c counts them per site).  A site
 * in the scan of a protected table counts for that table; a purpose
 * view's filter counts for the view.  The counters live as long as the
 * executor state, so the totals cover every run of a cursor or portal.
 *
 * Parallel workers count in their own copies of the plan: at its
 * ExecutorEnd each worker adds its counts, per relation, to its leader's
 * slot in shared memory (WorkerWithheld, one per backend), and the leader
 * takes them after each run (a parallel plan runs once, and its workers
 * have finished when ExecutorRun returns).  Only one parallel query runs
 * at a time in a leader.  A worker whose plan names more relations than a
 * slot holds marks the slot overflowed: the record's rows_withheld is then
 * unknown (NULL).
 *
 * The walk reads executor state only (no allocation, no catalog access,
 * no ereport): it also runs while a failed run's error is being thrown.
 */
#define WITHHELD_RELS 8

typedef struct WorkerWithheld
{
	slock_t		mutex;
	bool		overflow;
	int			n;
	Oid			relid[WITHHELD_RELS];
	uint64		count[WITHHELD_RELS];
} WorkerWithheld;

static WorkerWithheld *worker_withheld = NULL;	/* MaxBackends + 1 slots */

Size
cl_audit_shmem_size(void)
{
	return mul_size(sizeof(WorkerWithheld), MaxBackends + 1);
}

/* Called from the shared memory startup hook, AddinShmemInitLock held. */
void
cl_audit_shmem_init(void)
{
	bool		found;

	worker_withheld = ShmemInitStruct("consent_ledger withheld", cl_audit_shmem_size(), &found);
	if (!found)
	{
		memset(worker_withheld, 0, cl_audit_shmem_size());
		for (int i = 0; i <= MaxBackends; i++)
			SpinLockInit(&worker_withheld[i].mutex);
	}
}

static WorkerWithheld *
withheld_slot(BackendId id)
{
	if (worker_withheld == NULL || id == InvalidBackendId || id < 0 || id > MaxBackends)
		return NULL;
	return &worker_withheld[id];
}

/* Where a walk puts what it finds: a read's relations, or a worker's list. */
typedef struct WithheldWalk
{
	EState	   *estate;
	OpenRead   *r;				/* leader: the read */
	bool		workers;		/* leader: a Gather launched workers */
	int			n;				/* worker: relations found */
	bool		overflow;
	Oid			relid[WITHHELD_RELS];
	uint64		count[WITHHELD_RELS];
} WithheldWalk;

/* The relation whose record covers relid in read r (relid itself, or the parent it was expanded from). */
static Oid
covering_relation(OpenRead *r, Oid relid)
{
	for (int i = 0; i < r->nexpanded; i++)
		if (r->expanded_child[i] == relid)
			return r->expanded_parent[i];
	return relid;
}

static void
add_withheld(WithheldWalk *w, Oid relid, uint64 n)
{
	if (w->r != NULL)
	{
		relid = covering_relation(w->r, relid);
		for (int i = 0; i < w->r->nrels; i++)
			if (w->r->relids[i] == relid)
			{
				w->r->withheld[i] += n;
				return;
			}
		return;
	}
	for (int i = 0; i < w->n; i++)
		if (w->relid[i] == relid)
		{
			w->count[i] += n;
			return;
		}
	if (w->n == WITHHELD_RELS)
	{
		w->overflow = true;
		return;
	}
	w->relid[w->n] = relid;
	w->count[w->n] = n;
	w->n++;
}

static bool
withheld_walker(PlanState *ps, void *arg)
{
	WithheldWalk *w = arg;
	Oid			scan_relid = InvalidOid;

	if (ps == NULL)
		return false;
	switch (nodeTag(ps->plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
			{
				Index		scanrelid = ((Scan *) ps->plan)->scanrelid;

				if (scanrelid > 0 && scanrelid <= (Index) w->estate->es_range_table_size)
					scan_relid = exec_rt_fetch(scanrelid, w->estate)->relid;
				break;
			}
		case T_Gather:
			if (((GatherState *) ps)->nworkers_launched > 0)
				w->workers = true;
			break;
		case T_GatherMerge:
			if (((GatherMergeState *) ps)->nworkers_launched > 0)
				w->workers = true;
			break;
		default:
			break;
	}
	if (ps->qual != NULL && OidIsValid(scan_relid))
	{
		ExprState  *q = ps->qual;

		for (int i = 0; i < q->steps_len; i++)
		{
			ExprEvalStep *op = &q->steps[i];
			ExprEvalOp	opcode = ExecEvalStepOp(q, op);
			uint64		n;
			Oid			view;

			if (opcode != EEOP_FUNCEXPR && opcode != EEOP_FUNCEXPR_STRICT &&
				opcode != EEOP_FUNCEXPR_FUSAGE && opcode != EEOP_FUNCEXPR_STRICT_FUSAGE)
				continue;
			if (cl_policy_site_refused(op->d.func.finfo, &n, &view))
				add_withheld(w, OidIsValid(view) ? view : scan_relid, n);
		}
	}
	return planstate_tree_walker(ps, withheld_walker, arg);
}

/* Empties this backend's slot: no parallel query of it is running. */
static void
clear_worker_withheld(void)
{
	WorkerWithheld *slot = withheld_slot(MyBackendId);

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->n = 0;
	slot->overflow = false;
	SpinLockRelease(&slot->mutex);
}

/* Leader: takes what its workers added to its slot. */
static void
take_worker_withheld(OpenRead *r)
{
	WorkerWithheld *slot = withheld_slot(MyBackendId);

	if (slot == NULL)
	{
		r->withheld_known = false;
		return;
	}
	SpinLockAcquire(&slot->mutex);
	if (slot->overflow)
		r->withheld_known = false;
	for (int k = 0; k < slot->n; k++)
		for (int i = 0; i < r->nrels; i++)
			if (r->relids[i] == covering_relation(r, slot->relid[k]))
			{
				r->worker_withheld[i] += slot->count[k];
				break;
			}
	slot->n = 0;
	slot->overflow = false;
	SpinLockRelease(&slot->mutex);
}

/* Worker, at its ExecutorEnd: adds its refusals to its leader's slot. */
static void
give_worker_withheld(QueryDesc *qd)
{
	WithheldWalk w;
	WorkerWithheld *slot = withheld_slot(ParallelLeaderBackendId);

	if (slot == NULL || qd->planstate == NULL || qd->estate == NULL)
		return;
	memset(&w, 0, sizeof(w));
	w.estate = qd->estate;
	(void) withheld_walker(qd->planstate, &w);
	if (w.n == 0 && !w.overflow)
		return;
	SpinLockAcquire(&slot->mutex);
	if (w.overflow)
		slot->overflow = true;
	for (int k = 0; k < w.n; k++)
	{
		int			i;

		for (i = 0; i < slot->n; i++)
			if (slot->relid[i] == w.relid[k])
				break;
		if (i == slot->n)
		{
			if (slot->n == WITHHELD_RELS)
			{
				slot->overflow = true;
				continue;
			}
			slot->relid[i] = w.relid[k];
			slot->count[i] = 0;
			slot->n++;
		}
		slot->count[i] += w.count[k];
	}
	SpinLockRelease(&slot->mutex);
}

static void
collect_withheld(OpenRead *r, QueryDesc *qd)
{
	WithheldWalk w;

	if (qd == NULL || qd->planstate == NULL || qd->estate == NULL || r->fk_check)
		return;
	for (int i = 0; i < r->nrels; i++)
		r->withheld[i] = 0;
	memset(&w, 0, sizeof(w));
	w.r = r;
	w.estate = qd->estate;
	(void) withheld_walker(qd->planstate, &w);
	if (w.workers)
		take_worker_withheld(r);
	for (int i = 0; i < r->nrels; i++)
		r->withheld[i] += r->worker_withheld[i];
}

/*
 * After each ExecutorRun (and when one fails): the rows it returned are
 * added (each FETCH of a cursor is a run of its own), and the rows
 * withheld so far are taken.
 */
void
cl_audit_executor_progress(QueryDesc *queryDesc)
{
	OpenRead   *r;

	if (open_reads == NIL || (r = find_read(queryDesc)) == NULL)
		return;
	if (queryDesc->estate)
		r->rows += queryDesc->estate->es_processed;
	collect_withheld(r, queryDesc);
}

/*
 * When an ExecutorRun fails: the (sub)transaction it ran in aborts, and
 * PostgreSQL never calls ExecutorEnd for the failed portal, even when the
 * portal (a cursor) was opened in an outer, surviving transaction level.
 * The abort of that subtransaction flushes the read (flush_open_reads).
 */
void
cl_audit_executor_failed(QueryDesc *queryDesc)
{
	OpenRead   *r;

	/*
	 * Called in cl_ExecutorRun's PG_CATCH: must not raise (an error here
	 * would replace the one being thrown), so no allocation, no catalog
	 * access, no ereport -- only the rows returned so far (as
	 * cl_audit_executor_progress) and the failing subtransaction.
	 */
	if (open_reads == NIL || (r = find_read(queryDesc)) == NULL)
		return;
	if (queryDesc->estate)
		r->rows += queryDesc->estate->es_processed;
	collect_withheld(r, queryDesc);
	if (r->failed_subid == InvalidSubTransactionId)
		r->failed_subid = GetCurrentSubTransactionId();
}

/*
 * On a hot standby: forwards the records of one read to the primary
 * (standby.c), one per relation, in one transaction there, and returns
 * once the primary committed them.  A read whose "started" record never
 * reached the primary was not answered: its outcome is not forwarded.
 */
static void
forward_read(OpenRead *r, char outcome, bool in_abort)
{
	const char *(*vals)[CL_FWD_NPARAMS];

	if (outcome != 's' && r->wait && !r->forwarded)
		return;
	vals = palloc0(sizeof(*vals) * r->nrels);
	for (int i = 0; i < r->nrels; i++)
	{
		AuditRecord rec;
		struct pg_tm tm;
		fsec_t		fsec;

		fill_context(&rec, r->fk_check ? "foreign key check" : "read",
					 r->operations ? r->operations[i] : "SELECT",
					 r->relids[i], r->relnames ? r->relnames[i] : NULL, r->purposes[i],
					 r->session_user_name, r->role_name);
		/* UTC, ISO: independent of the session's DateStyle and TimeZone */
		if (timestamp2tm(rec.h.at, NULL, &tm, &fsec, NULL, NULL) == 0)
			vals[i][0] = psprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
								  tm.tm_year, tm.tm_mon, tm.tm_mday,
								  tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
		vals[i][1] = rec.str[S_SESSION];
		vals[i][2] = rec.str[S_SESSION_USER];
		vals[i][3] = rec.str[S_ROLE];
		vals[i][4] = rec.str[S_CLIENT];
		vals[i][5] = rec.str[S_APP];
		vals[i][6] = rec.str[S_PURPOSE];
		vals[i][7] = rec.str[S_RELATION];
		vals[i][8] = psprintf("%u", r->relids[i]);
		vals[i][9] = rec.str[S_OPERATION];
		vals[i][10] = outcome == 's' ? "started" : outcome == 'f' ? "failed" : "completed";
		vals[i][11] = outcome == 's' ? NULL : psprintf(UINT64_FORMAT, r->rows);
		vals[i][12] = (outcome == 's' || !r->withheld_known || r->fk_check) ? NULL :
			psprintf(UINT64_FORMAT, r->withheld[i]);
		vals[i][13] = r->query_id != 0 ? psprintf(INT64_FORMAT, r->query_id) : NULL;
		vals[i][14] = r->bypassed ? "true" : "false";
	}
	if (cl_standby_forward((const char *const (*)[CL_FWD_NPARAMS]) vals, r->nrels, in_abort) &&
		outcome == 's')
		r->forwarded = true;
}

/* Queues the records of one read; returns the last sequence number. */
static uint64
record_read(OpenRead *r, char outcome, bool in_abort)
{
	uint64		seq = 0;

	if (RecoveryInProgress())
	{
		forward_read(r, outcome, in_abort);
		return 0;
	}

	for (int i = 0; i < r->nrels; i++)
	{
		AuditRecord rec;
		Size		len;
		char	   *data;

		fill_context(&rec, r->fk_check ? "foreign key check" : "read",
					 r->operations ? r->operations[i] : "SELECT",
					 r->relids[i], r->relnames ? r->relnames[i] : NULL, r->purposes[i],
					 r->session_user_name, r->role_name);
		rec.h.outcome = outcome;
		rec.h.has_rows = true;
		rec.h.rows = (int64) r->rows;
		/* a foreign-key check bypasses row-level security: nothing is withheld */
		rec.h.has_withheld = r->withheld_known && !r->fk_check;
		rec.h.withheld = (int64) r->withheld[i];
		rec.h.query_id = r->query_id;
		rec.h.bypassed = r->bypassed;
		data = serialize(&rec, &len);
		seq = enqueue(data, len, in_abort);
		pfree(data);
	}
	return seq;
}

static void
forget_read(OpenRead *r)
{
	open_reads = list_delete_ptr(open_reads, r);
	fk_pending = list_delete_ptr(fk_pending, r);
	for (int i = 0; i < r->nrels; i++)
	{
		if (r->purposes[i])
			pfree(r->purposes[i]);
		if (r->operations)
			pfree(r->operations[i]);
	}
	if (r->relnames)
	{
		for (int i = 0; i < r->nrels; i++)
			pfree(r->relnames[i]);
		pfree(r->relnames);
	}
	if (r->session_user_name)
		pfree(r->session_user_name);
	if (r->role_name)
		pfree(r->role_name);
	pfree(r->relids);
	pfree(r->purposes);
	pfree(r->withheld);
	pfree(r->worker_withheld);
	if (r->expanded_child)
		pfree(r->expanded_child);
	if (r->expanded_parent)
		pfree(r->expanded_parent);
	if (r->operations)
		pfree(r->operations);
	pfree(r);
}

/*
 * A foreign-key check query ended: its rows (1 when the referenced key
 * exists) join the statement's record for that relation and role.  The
 * check's own read entry is handed over when there is none yet.
 */
static void
merge_fk_check(OpenRead *r)
{
	ListCell   *lc;
	MemoryContext old;

	open_reads = list_delete_ptr(open_reads, r);
	foreach(lc, fk_pending)
	{
		OpenRead   *p = lfirst(lc);

		if (p->relids[0] == r->relids[0] && p->subid == r->subid &&
			strcmp(p->role_name ? p->role_name : "", r->role_name ? r->role_name : "") == 0)
		{
			p->rows += r->rows;
			forget_read(r);
			return;
		}
	}
	Assert(r->nrels == 1);
	r->qd = NULL;
	old = MemoryContextSwitchTo(TopMemoryContext);
	fk_pending = lappend(fk_pending, r);
	MemoryContextSwitchTo(old);
}

/*
 * Writes the pending foreign-key check records whose subtransaction is
 * "from" or later (all: InvalidSubTransactionId).  in_abort: from an end
 * of transaction callback (never raises; see enqueue()).
 */
static void
flush_fk_checks(SubTransactionId from, char outcome, bool in_abort)
{
	while (fk_pending != NIL)
	{
		OpenRead   *found = NULL;
		ListCell   *lc;

		foreach(lc, fk_pending)
			if (((OpenRead *) lfirst(lc))->subid >= from)
			{
				found = lfirst(lc);
				break;
			}
		if (found == NULL)
			break;
		(void) record_read(found, outcome, in_abort);
		forget_read(found);
	}
}

/*
 * ExecutorEnd: the outcome of the read (rows returned and withheld).  Its
 * "started" record is already committed, so this one need not be waited
 * for.  At the end of a top-level statement, the records of the
 * foreign-key checks it caused follow.
 */
void
cl_audit_executor_end(QueryDesc *queryDesc)
{
	OpenRead   *r;

	if (IsParallelWorker())
	{
		if (cl_shared != NULL)
			give_worker_withheld(queryDesc);
		return;
	}

	if (open_reads != NIL && (r = find_read(queryDesc)) != NULL)
	{
		collect_withheld(r, queryDesc);
		if (r->fk_check)
			merge_fk_check(r);
		else
		{
			(void) record_read(r, 'd', false);
			forget_read(r);
		}
	}
	if (fk_pending != NIL && cl_executor_nesting == 0 &&
		!InNoForceRLSOperation())
		flush_fk_checks(InvalidSubTransactionId, 'd', false);
}

/*
 * A server-side COPY ... TO of a protected table by a role that row-level
 * security does not apply to reads the heap without the executor (so do
 * export() and leaf_data() of a protected ledger, verify.c): like a
 * read, it gets a "started" record, committed before the first row is
 * sent, and an outcome record at the end ("failed", from the abort path,
 * if the COPY fails or is cancelled midway).  Returns the open read for
 * cl_audit_copy_end(), or NULL when the table is not protected.
 */
void *
cl_audit_copy_begin(Oid relid, const char *operation)
{
	OpenRead   *r;
	MemoryContext old;

	if (cl_shared == NULL || !cl_extension_present() || !cl_is_protected_cached(relid))
		return NULL;
	refuse_read_on_standby();
	old = MemoryContextSwitchTo(TopMemoryContext);
	r = palloc0(sizeof(OpenRead));
	r->nrels = 1;
	r->relids = palloc(sizeof(Oid));
	r->relids[0] = relid;
	r->purposes = palloc(sizeof(char *));
	r->purposes[0] = (cl_purpose && cl_purpose[0]) ? pstrdup(cl_purpose) : NULL;
	r->operations = palloc(sizeof(char *));
	r->operations[0] = pstrdup(operation);
	r->withheld = palloc0(sizeof(uint64));
	r->worker_withheld = palloc0(sizeof(uint64));
	capture_names(r);
	r->bypassed = true;
	r->wait = true;
	r->withheld_known = true;	/* row-level security does not apply: nothing withheld */
	r->subid = GetCurrentSubTransactionId();
	open_reads = lappend(open_reads, r);
	MemoryContextSwitchTo(old);
	wait_written(record_read(r, 's', false));
	return r;
}

void
cl_audit_copy_end(void *handle, uint64 rows)
{
	OpenRead   *r = handle;

	if (r == NULL || !list_member_ptr(open_reads, r))
		return;
	r->rows = rows;
	(void) record_read(r, 'd', false);
	forget_read(r);
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
	{
		OpenRead   *r = lfirst(lc);

		/* opened in the aborted levels, or failed there (a cursor) */
		if (r->subid >= from ||
			(r->failed_subid != InvalidSubTransactionId && r->failed_subid >= from))
			todo = lappend(todo, r);
	}
	foreach(lc, todo)
	{
		OpenRead   *r = lfirst(lc);

		r->qd = NULL;
		(void) record_read(r, 'f', true);
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
			(void) enqueue(k->data, k->len, true);
			kept_changes = foreach_delete_current(kept_changes, lc);
		}
	}
}

/*
 * The abort paths: queue the records of open reads, of the pending
 * foreign-key checks and of rolled-back changes from subtransaction
 * "from" on.  At commit (committing) only the foreign-key checks are left
 * to queue.  Never raises: an error (out of memory) becomes a WARNING, and
 * what was not queued is counted.
 */
static void
flush_at_end(SubTransactionId from, bool committing)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	if (cl_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	if (open_reads == NIL && kept_changes == NIL && fk_pending == NIL)
		return;
	PG_TRY();
	{
		if (!committing)
			flush_open_reads(from);
		flush_fk_checks(from, committing ? 'd' : 'f', true);
		if (!committing)
			flush_changes(from);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* what is left is not queued */
		abort_lost += list_length(kept_changes) + list_length(fk_pending);
		kept_changes = NIL;
		open_reads = NIL;
		fk_pending = NIL;
		if (abort_reason == NULL)
			abort_reason = "an error occurred while queueing them";
		ereport(WARNING,
				(errmsg("could not queue the audit records of an ending transaction: %s",
						edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	abort_report(committing);
}

static void
audit_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* deferred foreign-key checks have run by now */
			flush_at_end(InvalidSubTransactionId, true);
			break;
		case XACT_EVENT_ABORT:
			flush_at_end(InvalidSubTransactionId, false);
			if (kept_dropped > 0)
				ereport(WARNING,
						(errmsg("%lld rolled-back audited changes were not itemized in the audit ledger",
								(long long) kept_dropped),
						 errdetail("A transaction keeps at most %d change records for its rollback.",
								   MAX_KEPT_CHANGES)));
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
	/* changes, and reads of statements that failed inside the savepoint */
	if (event == SUBXACT_EVENT_ABORT_SUB)
		flush_at_end(mySubid, false);
}

void
cl_audit_init(void)
{
	RegisterXactCallback(audit_xact_callback, NULL);
	RegisterSubXactCallback(audit_subxact_callback, NULL);
}
