/*-------------------------------------------------------------------------
 * record.c
 *	  Recording consent: grant_consent() and withdraw_consent(), one event
 *	  per call (also used set-wise, one call per row of a query) and in
 *	  bulk (the variants taking an array of subjects).
 *
 * Every path checks an event exactly as the PL/pgSQL functions of 1.0-1.2
 * did (same SQLSTATEs, messages and order of checks) and inserts it into
 * the consent ledger through the executor's row path,
 * ExecSimpleRelationInsert() (the one logical replication's apply uses):
 * BEFORE ROW triggers -- the ledger stamp --, constraints, heap and index
 * insertion, AFTER ROW triggers.  The insert runs as the extension's owner,
 * as the SECURITY DEFINER functions did.
 *
 * What a PL/pgSQL call did for every event is done once per transaction:
 * finding the consent ledger (creating it on first use) and the
 * extension's owner, taking the recorder lock (CL_LOCK_RECORDER, held until
 * commit so that event ids are in commit order, see consent.c), checking
 * that a purpose exists (a purpose is never removed, so one seen in this
 * transaction stays), and building the executor state for the insert
 * (result relation, trigger functions, index info, constraint
 * expressions).  The executor state holds no resource: no relation,
 * buffer or tuple descriptor reference survives a call, so an error, a
 * rolled-back subtransaction or a DROP between calls leaves nothing open.
 * A rolled-back subtransaction forgets all of it but the last timestamp
 * (its lock went with it, and a purpose or the consent ledger it created
 * is gone); a relcache invalidation of the consent ledger rebuilds the
 * executor state.
 *
 * recorded_at is the clock at the insert, and strictly increases with
 * event id within a transaction as it did with one PL/pgSQL call per event
 * (an event taken in the same microsecond as the previous one is stamped
 * one microsecond later).  Across transactions the recorder lock orders
 * them.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "consent_ledger.h"
#include "note.h"
#include "statement.h"

PG_FUNCTION_INFO_V1(cl_grant_consent);
PG_FUNCTION_INFO_V1(cl_grant_consent_int8);
PG_FUNCTION_INFO_V1(cl_grant_consent_int4);
PG_FUNCTION_INFO_V1(cl_grant_consent_uuid);
PG_FUNCTION_INFO_V1(cl_withdraw_consent);
PG_FUNCTION_INFO_V1(cl_withdraw_consent_int8);
PG_FUNCTION_INFO_V1(cl_withdraw_consent_int4);
PG_FUNCTION_INFO_V1(cl_withdraw_consent_uuid);
PG_FUNCTION_INFO_V1(cl_grant_consent_array);
PG_FUNCTION_INFO_V1(cl_withdraw_consent_array);
PG_FUNCTION_INFO_V1(cl_consent_events_checked);
PG_FUNCTION_INFO_V1(cl_record_signed_consent);

/* the consent ledger's columns, by name */
enum
{
	COL_EVENT_ID,
	COL_SUBJECT,
	COL_PURPOSE,
	COL_ACTION,
	COL_EXPIRES_AT,
	COL_EVIDENCE,
	COL_RECORDED_AT,
	COL_RECORDED_BY,
	NCOLS,
	/* 1.6: a subject-signed event's; absent from consent ledgers not updated yet */
	COL_STATEMENT = NCOLS,
	COL_SIGNATURE,
	COL_SUBJECT_KEY,
	NCOLS_ALL
};
static const char *const col_names[NCOLS_ALL] = {
	"event_id", "subject", "purpose", "action", "expires_at", "evidence",
	"recorded_at", "recorded_by", "subject_statement", "subject_signature", "subject_key"
};

/*
 * Per transaction: everything below lives in rec_cxt, a child of
 * TopTransactionContext.
 */
typedef struct Recorder
{
	bool		ready;			/* relid .. estate below are set up */
	Oid			relid;			/* consent_ledger.consent_events */
	Oid			seqrelid;		/* consent_ledger.consent_event_seq */
	Oid			owner;			/* the extension's owner */
	AttrNumber	att[NCOLS_ALL];	/* column numbers, 0 if absent */
	int			natts;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;		/* descriptor is an unpinned copy */
	int			nindexes;
	Oid		   *index_oids;
	SubTransactionId ready_subid;	/* when relid was found (or made) */
	bool		locked;			/* we hold the recorder lock */
	SubTransactionId lock_subid;	/* when it was taken */
	HTAB	   *purposes;		/* purposes known to exist */
	Oid			session_user;	/* recorded_by is this role's name */
	Datum		recorded_by;
} Recorder;

static MemoryContext rec_cxt = NULL;
static Recorder rec;
static TimestampTz rec_last_at = 0;	/* recorded_at of the last event */

/*
 * True only while recorder_insert() inserts an event: the consent ledger's
 * stamp trigger refuses every other insert (ledger.c).  Readers of the
 * shared consent state learn of new events from the commit counter that
 * cl_consent_recorded() bumps, and rely on event ids being taken under the
 * recorder lock (commit order): a row added any other way -- a superuser's
 * INSERT or COPY -- would do neither, so the policy could go on ignoring a
 * committed withdrawal.
 */
bool		cl_recording_consent = false;
/* migrate_consent_ledger() is copying events into a new consent ledger (migrate.c) */
bool		cl_migrating_consent = false;

typedef struct PurposeEntry
{
	char		name[NAMEDATALEN];
	SubTransactionId subid;		/* when it was seen */
	bool		signed_only;	/* require_subject_signature */
} PurposeEntry;

static void
record_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* rec_cxt went with TopTransactionContext */
			rec_cxt = NULL;
			memset(&rec, 0, sizeof(rec));
			rec_last_at = 0;
			break;
		default:
			break;
	}
}

static void
record_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS status;
	PurposeEntry *p;

	/*
	 * Forget what the rolled-back subtransaction (or one it contains) found
	 * or took.  Only flags and hash entries: this may run inside one of our
	 * inserts (a trigger's subtransaction), so nothing is freed here.
	 */
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	if (rec.locked && rec.lock_subid >= mySubid)
		rec.locked = false;
	if (rec.ready && rec.ready_subid >= mySubid)
		rec.ready = false;
	if (rec.purposes != NULL)
	{
		hash_seq_init(&status, rec.purposes);
		while ((p = hash_seq_search(&status)) != NULL)
		{
			if (p->subid >= mySubid)
				(void) hash_search(rec.purposes, p->name, HASH_REMOVE, NULL);
		}
	}
}

static void
record_relcache_callback(Datum arg, Oid relid)
{
	/* rebuilt at the next call (never during one: DDL waits for our lock) */
	if (rec.ready && (relid == InvalidOid || relid == rec.relid))
		rec.ready = false;
}

void
cl_record_init(void)
{
	RegisterXactCallback(record_xact_callback, NULL);
	RegisterSubXactCallback(record_subxact_callback, NULL);
	CacheRegisterRelcacheCallback(record_relcache_callback, (Datum) 0);
}

/* Subject and purpose checks of the PL/pgSQL functions, in their order. */
static void
check_subject_purpose(const char *subject, bool purpose_null)
{
	if (subject == NULL || subject[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("subject must not be NULL or empty")));
	if (strlen(subject) > 1024)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("subject is longer than 1024 bytes"),
				 errhint("Identify subjects by a key (an id, a uuid, a hash), not by personal data.")));
	if (purpose_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("purpose must not be NULL")));
}

static void
check_expiry(bool expires_null, TimestampTz expires_at)
{
	if (!expires_null && expires_at <= GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at lies in the past"),
				 errhint("Pass a future time, or NULL for a grant without expiry.")));
}

/*
 * ERROR unless the purpose is defined (read under the current snapshot, as
 * the PL/pgSQL functions did); remembered for the transaction once found.
 */
static bool
check_purpose(const char *purpose)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	bool		found;
	bool		signed_only = false;
	size_t		len = strlen(purpose);
	Oid			save_userid;
	int			save_sec;
	PurposeEntry *entry;
	bool		has_flag;

	if (rec.purposes != NULL && len < NAMEDATALEN &&
		(entry = hash_search(rec.purposes, purpose, HASH_FIND, NULL)) != NULL)
		return entry->signed_only;
	/* 1.6's column; a library newer than the SQL objects reads without it */
	has_flag = get_attnum(cl_internal_relid("purposes"), "require_subject_signature") > 0;

	/* as the extension's owner, like the SECURITY DEFINER functions did */
	vals[0] = CStringGetTextDatum(purpose);
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rec.ready ? rec.owner : cl_extension_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args(has_flag ?
								  "SELECT require_subject_signature FROM consent_ledger.purposes WHERE purpose OPERATOR(pg_catalog.=) $1" :
								  "SELECT false FROM consent_ledger.purposes WHERE purpose OPERATOR(pg_catalog.=) $1",
								  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read consent_ledger.purposes");
		found = SPI_processed > 0;
		if (found)
		{
			bool		isnull;

			signed_only = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("purpose \"%s\" does not exist", purpose),
				 errhint("Define it with consent_ledger.define_purpose().")));

	if (len >= NAMEDATALEN)
		return signed_only;
	if (rec_cxt == NULL)
		rec_cxt = AllocSetContextCreate(TopTransactionContext, "consent recorder",
										ALLOCSET_DEFAULT_SIZES);
	if (rec.purposes == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(PurposeEntry);
		ctl.hcxt = rec_cxt;
		rec.purposes = hash_create("consent recorder purposes", 16, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	entry = hash_search(rec.purposes, purpose, HASH_ENTER, NULL);
	entry->subid = GetCurrentSubTransactionId();
	entry->signed_only = signed_only;
	return signed_only;
}

/* An unsigned grant for a purpose that takes only subject-signed ones. */
static void
refuse_unsigned(const char *purpose)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("purpose \"%s\" takes only grants signed by the subject", purpose),
			 errdetail("The purpose was defined with require_subject_signature => true."),
			 errhint("Record the subject's signed statement with consent_ledger.record_signed_consent().")));
}

/*
 * Makes the consent ledger (on first use), takes the recorder lock, and
 * builds the executor state for inserting into it; a no-op when done
 * earlier in this transaction.  Called after the event's checks, like
 * _record_begin() was.
 */
static void
recorder_prepare(void)
{
	MemoryContext old;
	Relation	rel;
	TupleDesc	desc;
	ResultRelInfo *rri;
	Oid			session_user = GetSessionUserId();

	if (!rec.ready)
	{
		/* locked, and looked up again under the lock (a migration may replace it) */
		Relation	crel = cl_open_consent_events(RowExclusiveLock, true);
		Oid			relid = RelationGetRelid(crel);
		Recorder	keep = rec;

		/* a stale executor state (relcache invalidation) is rebuilt whole */
		if (rec.estate != NULL)
		{
			MemoryContextDelete(rec.estate->es_query_cxt);
			rec.estate = NULL;
		}
		if (rec_cxt == NULL)
			rec_cxt = AllocSetContextCreate(TopTransactionContext, "consent recorder",
											ALLOCSET_DEFAULT_SIZES);
		memset(&rec, 0, sizeof(rec));
		rec.purposes = keep.purposes;
		rec.locked = keep.locked;
		rec.lock_subid = keep.lock_subid;
		rec.ready_subid = GetCurrentSubTransactionId();
		rec.relid = relid;
		rec.seqrelid = cl_internal_relid("consent_event_seq");
		rec.owner = cl_extension_owner();

		old = MemoryContextSwitchTo(rec_cxt);
		rel = crel;
		desc = RelationGetDescr(rel);
		rec.natts = desc->natts;
		for (int c = 0; c < NCOLS_ALL; c++)
		{
			for (int i = 0; i < desc->natts; i++)
			{
				Form_pg_attribute a = TupleDescAttr(desc, i);

				if (!a->attisdropped && strcmp(NameStr(a->attname), col_names[c]) == 0)
					rec.att[c] = a->attnum;
			}
			if (rec.att[c] == 0 && c < NCOLS)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("relation %s.consent_events has no column \"%s\"",
								CL_SCHEMA, col_names[c]),
						 errhint("A superuser should inspect %s.consent_events.", CL_SCHEMA)));
		}

		/*
		 * Everything that outlives this call is memory only: the slot's
		 * descriptor is a copy (a relation's would be pinned by the current
		 * resource owner), trigger functions are looked up into rec_cxt
		 * now, and the indexes are opened by each call.
		 */
		rec.estate = CreateExecutorState();
		MemoryContextSwitchTo(rec.estate->es_query_cxt);
		rri = makeNode(ResultRelInfo);
		InitResultRelInfo(rri, rel, 1, NULL, 0);
		ExecOpenIndices(rri, false);
		rec.nindexes = rri->ri_NumIndices;
		rec.index_oids = palloc(sizeof(Oid) * Max(rec.nindexes, 1));
		for (int i = 0; i < rec.nindexes; i++)
		{
			rec.index_oids[i] = RelationGetRelid(rri->ri_IndexRelationDescs[i]);
			index_close(rri->ri_IndexRelationDescs[i], NoLock);
			rri->ri_IndexRelationDescs[i] = NULL;
		}
		if (rri->ri_TrigDesc != NULL)
		{
			for (int i = 0; i < rri->ri_TrigDesc->numtriggers; i++)
				fmgr_info_cxt(rri->ri_TrigDesc->triggers[i].tgfoid,
							  &rri->ri_TrigFunctions[i], rec.estate->es_query_cxt);
		}
		rec.slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(desc), &TTSOpsVirtual);
		rri->ri_RelationDesc = NULL;
		rec.rri = rri;
		table_close(rel, NoLock);
		MemoryContextSwitchTo(old);
		rec.ready = true;
	}

	if (!rec.locked)
	{
		cl_lock_extension(CL_LOCK_RECORDER, ExclusiveLock);
		rec.locked = true;
		rec.lock_subid = GetCurrentSubTransactionId();
	}
	if (rec.session_user != session_user)
	{
		old = MemoryContextSwitchTo(rec_cxt);
		rec.recorded_by = CStringGetTextDatum(GetUserNameFromId(session_user, false));
		rec.session_user = session_user;
		MemoryContextSwitchTo(old);
	}
}

/* Opens the consent ledger and its indexes for this call's inserts. */
static void
recorder_open(void)
{
	Relation	rel = table_open(rec.relid, RowExclusiveLock);

	/* the lock may have brought an invalidation: then start again */
	if (!rec.ready || RelationGetDescr(rel)->natts != rec.natts)
	{
		table_close(rel, RowExclusiveLock);
		rec.ready = false;
		recorder_prepare();
		rel = table_open(rec.relid, RowExclusiveLock);
	}
	rec.rri->ri_RelationDesc = rel;
	for (int i = 0; i < rec.nindexes; i++)
		rec.rri->ri_IndexRelationDescs[i] = index_open(rec.index_oids[i], RowExclusiveLock);
}

static void
recorder_close(void)
{
	for (int i = 0; i < rec.nindexes; i++)
	{
		index_close(rec.rri->ri_IndexRelationDescs[i], NoLock);
		rec.rri->ri_IndexRelationDescs[i] = NULL;
	}
	table_close(rec.rri->ri_RelationDesc, NoLock);
	rec.rri->ri_RelationDesc = NULL;
}

/*
 * Inserts one checked event (between recorder_open and recorder_close) and
 * returns its id.  Runs as the extension's owner.
 */
static int64
recorder_insert(Datum subject, Datum purpose, bool withdraw,
				bool expires_null, TimestampTz expires_at,
				bool evidence_null, Datum evidence, const Datum *signed_cols)
{
	TupleTableSlot *slot = rec.slot;
	MemoryContext old;
	Oid			save_userid;
	int			save_sec;
	int64		id;
	TimestampTz at;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rec.owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		ResetPerTupleExprContext(rec.estate);
		old = MemoryContextSwitchTo(GetPerTupleMemoryContext(rec.estate));
		ExecClearTuple(slot);
		memset(slot->tts_isnull, true, sizeof(bool) * rec.natts);
		id = nextval_internal(rec.seqrelid, false);
		at = GetCurrentTimestamp();
		if (at <= rec_last_at)
			at = rec_last_at + 1;
		rec_last_at = at;
#define SETCOL(c, v) do { slot->tts_values[rec.att[c] - 1] = (v); slot->tts_isnull[rec.att[c] - 1] = false; } while (0)
		SETCOL(COL_EVENT_ID, Int64GetDatum(id));
		SETCOL(COL_SUBJECT, subject);
		SETCOL(COL_PURPOSE, purpose);
		SETCOL(COL_ACTION, CStringGetTextDatum(withdraw ? "withdraw" : "grant"));
		if (!expires_null)
			SETCOL(COL_EXPIRES_AT, TimestampTzGetDatum(expires_at));
		if (!evidence_null)
			SETCOL(COL_EVIDENCE, evidence);
		SETCOL(COL_RECORDED_AT, TimestampTzGetDatum(at));
		SETCOL(COL_RECORDED_BY, rec.recorded_by);
		if (signed_cols != NULL)
		{
			SETCOL(COL_STATEMENT, signed_cols[0]);
			SETCOL(COL_SIGNATURE, signed_cols[1]);
			SETCOL(COL_SUBJECT_KEY, signed_cols[2]);
		}
#undef SETCOL
		ExecStoreVirtualTuple(slot);
		cl_recording_consent = true;
		ExecSimpleRelationInsert(rec.rri, rec.estate, slot);
		cl_recording_consent = false;
		ExecClearTuple(slot);
		MemoryContextSwitchTo(old);
	}
	PG_FINALLY();
	{
		cl_recording_consent = false;
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();

	cl_consent_recorded(id);
	return id;
}

/* One event, the whole way: what a call of grant_consent() does. */
static int64
record_one(const char *subject, FunctionCallInfo fcinfo, bool withdraw)
{
	char	   *purpose;
	bool		expires_null = true;
	TimestampTz expires_at = 0;
	bool		evidence_null;
	Datum		evidence;
	int			evidence_arg = withdraw ? 2 : 3;
	int64		id;

	check_subject_purpose(subject, PG_ARGISNULL(1));
	if (!withdraw)
	{
		expires_null = PG_ARGISNULL(2);
		if (!expires_null)
			expires_at = PG_GETARG_TIMESTAMPTZ(2);
		check_expiry(expires_null, expires_at);
	}
	evidence_null = PG_ARGISNULL(evidence_arg);
	evidence = evidence_null ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(evidence_arg));
	purpose = TextDatumGetCString(PG_GETARG_DATUM(1));

	if (check_purpose(purpose) && !withdraw)
		refuse_unsigned(purpose);
	recorder_prepare();
	recorder_open();
	id = recorder_insert(CStringGetTextDatum(subject), PointerGetDatum(PG_GETARG_TEXT_PP(1)), withdraw,
						 expires_null, expires_at, evidence_null, evidence, NULL);
	recorder_close();
	return id;
}

static char *
subject_arg(FunctionCallInfo fcinfo, Oid typid)
{
	if (PG_ARGISNULL(0))
		return NULL;
	switch (typid)
	{
		case INT8OID:
			return DatumGetCString(DirectFunctionCall1(int8out, PG_GETARG_DATUM(0)));
		case INT4OID:
			return DatumGetCString(DirectFunctionCall1(int4out, PG_GETARG_DATUM(0)));
		case UUIDOID:
			return DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));
		default:
			return TextDatumGetCString(PG_GETARG_DATUM(0));
	}
}

/*
 * consent_ledger.grant_consent(subject text|bigint|integer|uuid, purpose
 * text, expires_at timestamptz, evidence jsonb) RETURNS bigint, and
 * withdraw_consent(subject, purpose, evidence): the event's id.
 */
#define RECORD_FN(name, typid, withdraw) \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_INT64(record_one(subject_arg(fcinfo, typid), fcinfo, withdraw)); \
}
RECORD_FN(cl_grant_consent, TEXTOID, false)
RECORD_FN(cl_grant_consent_int8, INT8OID, false)
RECORD_FN(cl_grant_consent_int4, INT4OID, false)
RECORD_FN(cl_grant_consent_uuid, UUIDOID, false)
RECORD_FN(cl_withdraw_consent, TEXTOID, true)
RECORD_FN(cl_withdraw_consent_int8, INT8OID, true)
RECORD_FN(cl_withdraw_consent_int4, INT4OID, true)
RECORD_FN(cl_withdraw_consent_uuid, UUIDOID, true)

/* error context of the bulk path: which element failed */
static void
bulk_error_context(void *arg)
{
	int64	   *n = (int64 *) arg;

	if (*n > 0)
		errcontext("element %lld of the subjects array", (long long) *n);
}

/*
 * consent_ledger.grant_consent(subjects text[], purpose text, expires_at
 * timestamptz, evidence jsonb) RETURNS bigint and withdraw_consent(subjects
 * text[], purpose text, evidence jsonb): the bulk path.  One event per
 * element, in array order, each checked as a single call checks it (the
 * error names the element); the purpose, expiry and evidence are checked
 * once.  All or nothing: an error records none.  Returns the number of
 * events recorded.
 */
static int64
record_array(FunctionCallInfo fcinfo, bool withdraw)
{
	ArrayType  *subjects;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			nelems;
	char	   *purpose;
	Datum		purpose_d;
	bool		expires_null = true;
	TimestampTz expires_at = 0;
	bool		evidence_null;
	Datum		evidence;
	int			evidence_arg = withdraw ? 2 : 3;
	int64		n = 0;
	ErrorContextCallback errcb;
	MemoryContext elem_cxt;
	MemoryContext old;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("subjects must not be NULL"),
				 errhint("Pass an array of subjects; an empty array records nothing.")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("purpose must not be NULL")));
	if (!withdraw)
	{
		expires_null = PG_ARGISNULL(2);
		if (!expires_null)
			expires_at = PG_GETARG_TIMESTAMPTZ(2);
		check_expiry(expires_null, expires_at);
	}
	evidence_null = PG_ARGISNULL(evidence_arg);
	evidence = evidence_null ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(evidence_arg));

	subjects = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(subjects) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("subjects must be a one-dimensional array"),
				 errdetail("The array has %d dimensions.", ARR_NDIM(subjects)),
				 errhint("Pass one subject per element, e.g. with array_agg().")));
	deconstruct_array(subjects, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &elem_nulls, &nelems);
	if (nelems == 0)
		return 0;

	/* every subject first: a bad one records nothing and takes no lock */
	errcb.callback = bulk_error_context;
	errcb.arg = &n;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	elem_cxt = AllocSetContextCreate(CurrentMemoryContext, "consent bulk element",
									 ALLOCSET_SMALL_SIZES);
	for (n = 1; n <= nelems; n++)
	{
		text	   *t;

		if (elem_nulls[n - 1])
			check_subject_purpose(NULL, false);
		t = (text *) DatumGetPointer(elems[n - 1]);
		if (VARSIZE_ANY_EXHDR(t) == 0)
			check_subject_purpose("", false);
		if (VARSIZE_ANY_EXHDR(t) > 1024)
		{
			old = MemoryContextSwitchTo(elem_cxt);
			check_subject_purpose(text_to_cstring(t), false);
			MemoryContextSwitchTo(old);
		}
		/* a NUL byte cannot be in a text value: length is the C length */
	}
	n = 0;

	purpose_d = PointerGetDatum(PG_GETARG_TEXT_PP(1));
	purpose = TextDatumGetCString(purpose_d);
	if (check_purpose(purpose) && !withdraw)
		refuse_unsigned(purpose);
	recorder_prepare();
	recorder_open();
	for (n = 1; n <= nelems; n++)
	{
		CHECK_FOR_INTERRUPTS();
		(void) recorder_insert(elems[n - 1], purpose_d, withdraw,
							   expires_null, expires_at, evidence_null, evidence, NULL);
	}
	recorder_close();
	error_context_stack = errcb.previous;
	MemoryContextDelete(elem_cxt);
	return nelems;
}

Datum
cl_grant_consent_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(record_array(fcinfo, false));
}

Datum
cl_withdraw_consent_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(record_array(fcinfo, true));
}

/*
 * consent_ledger._consent_events_checked() RETURNS boolean: whether the
 * consent ledger exists, for has_consent(), which reads it by name.  A
 * table of that name someone else created is refused (42501, as
 * everywhere else, see cl_check_internal_table).
 */
Datum
cl_consent_events_checked(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(OidIsValid(cl_consent_events_relid(false)));
}

/*
 * The purposes whose events decide together with the statement's purpose:
 * its ancestors (consent to a parent covers it, a parent's withdrawal
 * withdraws it) and its descendants (for which it is an ancestor).
 */
static List *
purpose_family(const char *purpose)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(purpose)};
	Oid			save_userid;
	int			save_sec;
	List	   *family = NIL;
	MemoryContext caller = CurrentMemoryContext;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rec.owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("WITH RECURSIVE up(p) AS (SELECT $1 UNION"
								  " SELECT q.parent FROM consent_ledger.purposes q JOIN up ON q.purpose OPERATOR(pg_catalog.=) up.p"
								  " WHERE q.parent IS NOT NULL),"
								  " down(p) AS (SELECT $1 UNION"
								  " SELECT q.purpose FROM consent_ledger.purposes q JOIN down ON q.parent OPERATOR(pg_catalog.=) down.p)"
								  " SELECT p FROM up UNION SELECT p FROM down",
								  1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read consent_ledger.purposes");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *p = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

			if (p != NULL)
			{
				MemoryContext old = MemoryContextSwitchTo(caller);

				family = lappend(family, pstrdup(p));
				MemoryContextSwitchTo(old);
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	return family;
}

/*
 * ERROR when the consent ledger already holds this signed statement (a
 * replay), or a signed statement of the subject, for the purpose or one
 * whose events decide with it (purpose_family), that is not older than
 * it: a subject's signed events are recorded in the order the subject
 * signed them, each once, so that recording them in another order cannot
 * turn a later withdrawal into an earlier one.  Reads the latest committed
 * events and this transaction's own, the current command's included,
 * through the (subject, purpose, event_id) index; the caller holds the
 * recorder lock, so no other transaction records meanwhile.
 */
static void
check_signed_order(const cl_statement *st, const char *sig_b64)
{
	Relation	rel;
	Oid			idx;
	Relation	irel;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	TupleDesc	desc;
	List	   *family = purpose_family(st->purpose);
	ListCell   *lc;

	/* the rows this very command inserted before (one SELECT recording several) */
	CommandCounterIncrement();
	rel = table_open(rec.relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	idx = get_relname_relid("consent_events_subject_idx", cl_schema_oid(false));
	if (!OidIsValid(idx))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the consent ledger has no index consent_events_subject_idx"),
				 errhint("Only the extension's owner creates objects in schema consent_ledger: recreate the index as src/consent.c does.")));
	irel = index_open(idx, AccessShareLock);
	if (irel->rd_index->indrelid != rec.relid || irel->rd_index->indnkeyatts != 3 ||
		irel->rd_index->indkey.values[0] != rec.att[COL_SUBJECT] ||
		irel->rd_index->indkey.values[1] != rec.att[COL_PURPOSE])
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("index \"%s\" is not the consent ledger's index on (subject, purpose, event_id)",
						RelationGetRelationName(irel)),
				 errhint("Only the extension's owner creates objects in schema consent_ledger: recreate the index as src/consent.c does.")));
	snap = RegisterSnapshot(GetLatestSnapshot());
	foreach(lc, family)
	{
		const char *purpose = lfirst(lc);
		ScanKeyData keys[2];

		ScanKeyEntryInitialize(&keys[0], 0, rec.att[COL_SUBJECT], BTEqualStrategyNumber, InvalidOid,
							   irel->rd_indcollation[0], F_TEXTEQ, CStringGetTextDatum(st->subject));
		ScanKeyEntryInitialize(&keys[1], 0, rec.att[COL_PURPOSE], BTEqualStrategyNumber, InvalidOid,
							   irel->rd_indcollation[1], F_TEXTEQ, CStringGetTextDatum(purpose));
		scan = systable_beginscan_ordered(rel, irel, snap, 2, keys);
		while ((tup = systable_getnext_ordered(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			Datum		d = heap_getattr(tup, rec.att[COL_SIGNATURE], desc, &isnull);
			char	   *stmt_text;
			cl_statement old;
			const char *err;

			if (isnull)
			{
				/*
				 * An unsigned withdrawal (the operator's, erase_subject()'s)
				 * recorded at or after the moment the subject signed a grant
				 * is later than the grant: recording the grant after it
				 * would undo it.  Refused; the subject signs a new grant.
				 */
				text	   *a;
				TimestampTz at;

				if (st->withdraw)
					continue;
				a = DatumGetTextPP(heap_getattr(tup, rec.att[COL_ACTION], desc, &isnull));
				if (isnull || VARSIZE_ANY_EXHDR(a) != 8 || memcmp(VARDATA_ANY(a), "withdraw", 8) != 0)
					continue;
				at = DatumGetTimestampTz(heap_getattr(tup, rec.att[COL_RECORDED_AT], desc, &isnull));
				/*
				 * The statement's time is the device's clock, which may run
				 * up to CL_STMT_SKEW_SECONDS ahead: only a grant dated more
				 * than that after the withdrawal is known to follow it.
				 */
				if (!isnull && at / USECS_PER_SEC + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY >=
					st->time - CL_STMT_SKEW_SECONDS)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("consent for purpose \"%s\" was withdrawn after the subject signed this grant, or too shortly before", purpose),
							 errdetail("Consent event %lld, a withdrawal recorded by the operator, is not %d seconds older than this statement (time %lld).",
									   (long long) DatumGetInt64(heap_getattr(tup, rec.att[COL_EVENT_ID], desc, &isnull)),
									   CL_STMT_SKEW_SECONDS, (long long) st->time),
							 errhint("A grant signed before a withdrawal would undo it; the subject signs a new grant %d seconds after the withdrawal.",
									 CL_STMT_SKEW_SECONDS)));
				continue;
			}
			if (strcmp(TextDatumGetCString(d), sig_b64) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNIQUE_VIOLATION),
						 errmsg("this signed statement is already recorded"),
						 errdetail("It is consent event %lld; a subject's signed statement is recorded once.",
								   (long long) DatumGetInt64(heap_getattr(tup, rec.att[COL_EVENT_ID], desc, &isnull)))));
			d = heap_getattr(tup, rec.att[COL_STATEMENT], desc, &isnull);
			if (isnull)
				continue;
			stmt_text = TextDatumGetCString(d);
			if (!cl_statement_parse(stmt_text, strlen(stmt_text), &old, &err))
				continue;
			if (old.time >= st->time)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the subject signed a statement for purpose \"%s\" at the same time or later", purpose),
						 errdetail("Consent event %lld carries a statement of time %lld; this one, for purpose \"%s\", has time %lld.",
								   (long long) DatumGetInt64(heap_getattr(tup, rec.att[COL_EVENT_ID], desc, &isnull)),
								   (long long) old.time, st->purpose, (long long) st->time),
						 errhint("A subject's signed events for a purpose, its parents and its children are recorded in the order they were signed; sign a new statement.")));
		}
		systable_endscan_ordered(scan);
	}
	UnregisterSnapshot(snap);
	index_close(irel, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/*
 * consent_ledger.record_signed_consent(statement text, signature text,
 * evidence jsonb) RETURNS bigint: records the grant or withdrawal a data
 * subject signed (README "Subject-signed consent"); returns its event id.
 * Checked as grant_consent() and withdraw_consent() check an event, and
 * then: the statement names this database's consent ledger, the
 * signature verifies under the subject's key in force, and the statement
 * is newer than every signed one recorded for its subject and purpose.
 */
Datum
cl_record_signed_consent(PG_FUNCTION_ARGS)
{
	char	   *stmt;
	char	   *sig_b64;
	uint8		sig[CL_SUBJECT_SIG_LEN];
	uint8		key[CL_SUBJECT_KEY_LEN];
	char		key_b64[64];
	int32		key_no;
	int64		key_time;
	cl_statement st;
	bool		expires_null;
	TimestampTz expires_at = 0;
	bool		evidence_null = PG_ARGISNULL(2);
	Datum		evidence = evidence_null ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(2));
	Datum		signed_cols[3];
	int64		id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("statement and signature must not be NULL"),
				 errhint("Unsigned consent is recorded with consent_ledger.grant_consent() and withdraw_consent().")));
	stmt = TextDatumGetCString(PG_GETARG_DATUM(0));
	sig_b64 = TextDatumGetCString(PG_GETARG_DATUM(1));
	cl_decode_signature(sig_b64, sig);
	cl_check_statement(stmt, strlen(stmt), CL_STMT_CONSENT, &st);
	check_subject_purpose(st.subject, false);
	expires_null = st.expires_never;
	if (!expires_null)
	{
		expires_at = (TimestampTz) (st.expires -
									(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
		check_expiry(false, expires_at);
	}
	(void) check_purpose(st.purpose);
	recorder_prepare();
	if (rec.att[COL_STATEMENT] == 0 || rec.att[COL_SIGNATURE] == 0 || rec.att[COL_SUBJECT_KEY] == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the consent ledger has no columns for subject signatures"),
				 errhint("Update the extension: ALTER EXTENSION consent_ledger UPDATE.")));

	/* under the recorder lock: the key in force, the subject's earlier statements */
	if (!cl_subject_current_key(st.subject, key, &key_no, &key_time))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the subject has no registered key"),
				 errhint("Register the subject's public key with consent_ledger.register_subject_key() first.")));
	if (!cl_statement_signature_ok(stmt, strlen(stmt), sig, key))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the signature does not verify under the subject's key %d", key_no),
				 errdetail("The statement was not signed by the subject's registered key in force, or was changed after signing."),
				 errhint("Sign the statement's exact bytes with the subject's current private key.")));
	check_signed_order(&st, sig_b64);

	cl_base64_encode(key, CL_SUBJECT_KEY_LEN, key_b64);
	signed_cols[0] = CStringGetTextDatum(stmt);
	signed_cols[1] = CStringGetTextDatum(sig_b64);
	signed_cols[2] = CStringGetTextDatum(key_b64);
	recorder_open();
	id = recorder_insert(CStringGetTextDatum(st.subject), CStringGetTextDatum(st.purpose), st.withdraw,
						 expires_null, expires_at, evidence_null, evidence, signed_cols);
	recorder_close();
	PG_RETURN_INT64(id);
}
