/*-------------------------------------------------------------------------
 * consent.c
 *	  The consent registry: the consent ledger and its bookkeeping.
 *
 * consent_ledger.consent_events is an ordinary ledger table holding every
 * grant and withdrawal; nothing is ever updated in place.  It is created
 * on first use rather than by the install script, so that it is not an
 * extension member: pg_dump then dumps it like any user ledger (schema,
 * rows, and only then its triggers), and a restored database verifies.
 *
 * Event ids come from a sequence, taken while the recording transaction
 * holds the extension's recorder lock (CL_LOCK_RECORDER) until it commits,
 * so event ids are in commit order.  At commit the backend bumps a counter
 * in shared memory; the shared consent state (consent_state.c) reads the
 * events above the highest id it has applied whenever the counter moved.
 * Purpose definitions and authorizations bump a generation counter
 * instead: they are small and reloaded whole.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_record_begin);
PG_FUNCTION_INFO_V1(cl_record_done);
PG_FUNCTION_INFO_V1(cl_purposes_changed);
PG_FUNCTION_INFO_V1(cl_replace_consent_state_view);

typedef struct RecordedEvent
{
	int64		event_id;
	SubTransactionId subid;
} RecordedEvent;

static List *xact_events = NIL;	/* RecordedEvent *, in TopTransactionContext */
static bool xact_purposes_changed = false;
static SubTransactionId purposes_changed_subid = InvalidSubTransactionId;

/*
 * The view of the current state.  OR REPLACE: a migration rebinds the old
 * ledger's view, and its users' views.  From 1.6's SQL objects on, it
 * counts what the consent checks count (consent_ledger--1.5--1.6.sql
 * replaces it alike): no unsigned grant for a purpose that takes only
 * signed ones.
 */
#define CONSENT_STATE_VIEW "(the view)"
#define CONSENT_STATE_SELECT \
	"CREATE OR REPLACE VIEW consent_ledger.consent_state AS" \
	" SELECT DISTINCT ON (e.subject, e.purpose) e.subject, e.purpose," \
	"  CASE WHEN e.action OPERATOR(pg_catalog.=) 'withdraw' THEN 'withdrawn'" \
	"       WHEN e.expires_at IS NOT NULL AND e.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 'expired'" \
	"       ELSE 'granted' END AS state," \
	"  e.recorded_at AS since, e.expires_at, e.event_id AS last_event_id" \
	" FROM consent_ledger.consent_events e"
#define CONSENT_STATE_ORDER " ORDER BY e.subject, e.purpose, e.event_id DESC"
static const char *const consent_state_view[2] = {
	CONSENT_STATE_SELECT CONSENT_STATE_ORDER,
	CONSENT_STATE_SELECT
	" WHERE NOT (e.action OPERATOR(pg_catalog.=) 'grant' AND e.subject_signature IS NULL"
	"   AND e.purpose IN (SELECT p.purpose FROM consent_ledger.purposes p WHERE p.require_subject_signature))"
	CONSENT_STATE_ORDER
};

static const char *const create_consent_sql[] = {
	"CREATE TABLE consent_ledger.consent_events ("
	" event_id pg_catalog.int8 PRIMARY KEY DEFAULT pg_catalog.nextval('consent_ledger.consent_event_seq'),"
	" subject pg_catalog.text NOT NULL,"
	" purpose pg_catalog.text NOT NULL,"
	" action pg_catalog.text NOT NULL CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY['grant', 'withdraw'])),"
	" expires_at pg_catalog.timestamptz,"
	" evidence pg_catalog.jsonb,"
	" recorded_at pg_catalog.timestamptz NOT NULL,"
	" recorded_by pg_catalog.text NOT NULL,"
	/* 1.6: a subject-signed event's (record.c); NULL otherwise, so not encoded */
	" subject_statement pg_catalog.text,"
	" subject_signature pg_catalog.text,"
	" subject_key pg_catalog.text)",
	"CREATE INDEX consent_events_subject_idx ON consent_ledger.consent_events (subject, purpose, event_id)",
	"COMMENT ON TABLE consent_ledger.consent_events IS "
	"'the consent ledger: every grant and withdrawal, append-only, hash-chained, signed'",
	CONSENT_STATE_VIEW,
	"COMMENT ON VIEW consent_ledger.consent_state IS "
	"'current state per (subject, purpose), derived from the consent ledger; has_consent() applies purpose hierarchy'",
	"REVOKE ALL ON consent_ledger.consent_events, consent_ledger.consent_state FROM PUBLIC",
	"GRANT SELECT ON consent_ledger.consent_events TO consent_ledger_auditor, consent_ledger_admin",
	"GRANT SELECT ON consent_ledger.consent_state TO consent_ledger_auditor, consent_ledger_admin, consent_ledger_recorder",
	NULL
};

/*
 * OID of the consent ledger.  With create, makes it (as the extension's
 * owner) when it does not exist yet; creators are serialized by a lock on
 * consent_ledger.purposes, taken before looking, so two first grants
 * cannot both create it.
 */
Oid
cl_consent_events_relid(bool create)
{
	Oid			nsp = cl_schema_oid(false);
	Oid			relid = cl_check_internal_table(get_relname_relid("consent_events", nsp),
												"consent_events");
	Oid			owner;

	if (OidIsValid(relid) || !create)
		return relid;

	/* the relation lock also makes us see a concurrent creator's commit */
	LockRelationOid(cl_internal_relid("purposes"), ShareRowExclusiveLock);
	relid = cl_check_internal_table(get_relname_relid("consent_events", nsp), "consent_events");
	if (OidIsValid(relid))
		return relid;

	owner = cl_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int i = 0; create_consent_sql[i] != NULL; i++)
	{
		const char *sql = create_consent_sql[i];

		if (strcmp(sql, CONSENT_STATE_VIEW) == 0)
			sql = consent_state_view[get_attnum(cl_internal_relid("purposes"),
												"require_subject_signature") > 0 ? 1 : 0];
		cl_run_as_owner(sql, owner);
	}
	SPI_finish();
	CommandCounterIncrement();
	relid = get_relname_relid("consent_events", nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "could not create consent_ledger.consent_events");
	/* evidence is personal data (README "Erasure"), from 1.3's SQL objects on */
	if (get_attnum(cl_internal_relid("ledgers"), "personal") > 0)
		cl_make_ledger_personal(relid, list_make1(pstrdup("evidence")), "subject");
	else
		cl_make_ledger(relid);
	return relid;
}

/*
 * consent_ledger._replace_consent_state_view(): the update script's way to
 * give the view consent_state 1.6's definition.  The view belongs to the
 * consent ledger, not to the extension (see create_consent_sql), and an
 * extension script may not replace an object that is not its member; nor
 * may it drop and create it, which would make it a member and drop the
 * users' views over it.  So it is replaced here, outside the script's
 * membership bookkeeping, as its owner.  Nothing to do without a consent
 * ledger: the first grant makes both.
 */
Datum
cl_replace_consent_state_view(PG_FUNCTION_ARGS)
{
	bool		save_creating = creating_extension;
	Oid			save_object = CurrentExtensionObject;

	if (!OidIsValid(cl_consent_events_relid(false)))
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	creating_extension = false;
	CurrentExtensionObject = InvalidOid;
	PG_TRY();
	{
		cl_run_as_owner(consent_state_view[1], cl_extension_owner());
	}
	PG_FINALLY();
	{
		creating_extension = save_creating;
		CurrentExtensionObject = save_object;
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * The consent ledger opened with lockmode (with create, made when
 * missing), or NULL when there is none; looked up again under its lock
 * (cl_open_by_name_locked): migrate_consent_ledger() may have replaced it.
 */
Relation
cl_open_consent_events(LOCKMODE lockmode, bool create)
{
	return cl_open_by_name_locked(cl_consent_events_relid, create, lockmode);
}

/*
 * consent_ledger._record_begin(purpose): called by grant_consent() and
 * withdraw_consent() before they insert.  Checks the purpose, makes sure
 * the consent ledger exists, and serializes recorders until commit so
 * that event ids are assigned in commit order.
 */
Datum
cl_record_begin(PG_FUNCTION_ARGS)
{
	char	   *purpose = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(purpose)};
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT 1 FROM consent_ledger.purposes WHERE purpose OPERATOR(pg_catalog.=) $1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.purposes");
	found = SPI_processed > 0;
	SPI_finish();
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("purpose \"%s\" does not exist", purpose),
				 errhint("Define it with consent_ledger.define_purpose().")));

	(void) cl_consent_events_relid(true);
	cl_lock_extension(CL_LOCK_RECORDER, ExclusiveLock);
	/* the 1.0-1.2 SQL functions insert next: let the stamp trigger accept it */
	cl_recording_consent = true;
	PG_RETURN_VOID();
}

/*
 * An event was recorded in this (sub)transaction: publish it when we
 * commit.  Consecutive events of one subtransaction share an entry (the
 * highest id), so a bulk load keeps one entry, not one per event.
 */
void
cl_consent_recorded(int64 event_id)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	RecordedEvent *ev;
	MemoryContext old;

	if (xact_events != NIL)
	{
		ev = (RecordedEvent *) llast(xact_events);
		if (ev->subid == subid)
		{
			ev->event_id = Max(ev->event_id, event_id);
			return;
		}
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	ev = palloc(sizeof(RecordedEvent));
	ev->event_id = event_id;
	ev->subid = subid;
	xact_events = lappend(xact_events, ev);
	MemoryContextSwitchTo(old);
}

/* consent_ledger._record_done(event_id): publish the id when we commit. */
Datum
cl_record_done(PG_FUNCTION_ARGS)
{
	cl_recording_consent = false;
	cl_consent_recorded(PG_GETARG_INT64(0));
	PG_RETURN_VOID();
}

/* consent_ledger._purposes_changed(): bump the generation when we commit. */
Datum
cl_purposes_changed(PG_FUNCTION_ARGS)
{
	if (!xact_purposes_changed)
		purposes_changed_subid = GetCurrentSubTransactionId();
	xact_purposes_changed = true;
	PG_RETURN_VOID();
}

static void
consent_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (cl_shared != NULL)
			{
				uint64		max = 0;

				foreach(lc, xact_events)
					max = Max(max, (uint64) ((RecordedEvent *) lfirst(lc))->event_id);
				/*
				 * A counter, not the highest event id: ids are per database
				 * and start again when the extension is created again,
				 * while this is shared by the cluster (README "Uninstall").
				 */
				if (max > 0)
					pg_atomic_fetch_add_u64(&cl_shared->consent_commits, 1);
				if (xact_purposes_changed)
					pg_atomic_fetch_add_u64(&cl_shared->purpose_generation, 1);
			}
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			xact_events = NIL;
			xact_purposes_changed = false;
			cl_recording_consent = false;
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (xact_events != NIL || xact_purposes_changed)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that recorded consent or changed purposes"),
						 errdetail("Other sessions learn of consent changes when the recording transaction commits."),
						 errhint("Record consent in an ordinary transaction.")));
			break;
		default:
			break;
	}
}

static void
consent_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, xact_events)
	{
		if (((RecordedEvent *) lfirst(lc))->subid >= mySubid)
			xact_events = foreach_delete_current(xact_events, lc);
	}
	if (xact_purposes_changed && purposes_changed_subid >= mySubid)
		xact_purposes_changed = false;
}

void
cl_consent_init(void)
{
	RegisterXactCallback(consent_xact_callback, NULL);
	RegisterSubXactCallback(consent_subxact_callback, NULL);
	cl_record_init();
}
