/*-------------------------------------------------------------------------
 * migrate.c
 *	  migrate_consent_ledger(): a consent ledger made before 1.3 moved into
 *	  a new consent ledger whose evidence is personal (README "Erasure").
 *
 * A consent ledger made before 1.3 has every event's evidence in its
 * leaves, so erase_subject() cannot redact it: any change would break the
 * hashes above it.  The migration copies every event, in event id order
 * (commit order) and with every column as recorded -- id, subject,
 * purpose, action, expiry, evidence, recorded_at, recorded_by -- into a
 * new consent ledger made as 1.3 makes it (evidence personal, subject
 * column "subject"); the events are new leaves there.  The old ledger is
 * retired and dropped in the same transaction: its log and checkpoints
 * stay, so every receipt taken of it still verifies, and its rows (the
 * evidence in clear) leave the live database.  The consent state does not
 * change: the same events under the same ids.
 *
 * Concurrency: the migration holds the erasure lock (no erase_subject()
 * meanwhile), the lock creators of the consent ledger take on
 * consent_ledger.purposes, the recorder lock (no recorder is inside a
 * transaction, none starts) and ACCESS EXCLUSIVE on the old table.
 * Readers and recorders that found the old table by name and wait for its
 * lock look the name up again once they have it
 * (cl_open_consent_events()), and go on with the new one.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_migrate_consent_ledger);

/*
 * The old table is dropped at the end: objects of others that depend on
 * it (a view over consent_events, a SQL function reading it) would make
 * that fail late with a hint to use CASCADE.  They are named now.  The
 * view consent_state is replaced over the new table (no dependency left).
 */
static void
refuse_dependents(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		vals[1] = {ObjectIdGetDatum(relid)};
	char	   *names = NULL;

	if (SPI_execute_with_args("SELECT pg_catalog.string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0), ', ') "
							  "FROM pg_catalog.pg_depend d "
							  "WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
							  "AND d.refobjid OPERATOR(pg_catalog.=) $1 AND d.deptype OPERATOR(pg_catalog.=) 'n' "
							  "AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass "
							  "  AND EXISTS (SELECT FROM pg_catalog.pg_constraint c WHERE c.oid OPERATOR(pg_catalog.=) d.objid "
							  "  AND c.conrelid OPERATOR(pg_catalog.=) $1)) "
							  "AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
							  "  AND EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.oid OPERATOR(pg_catalog.=) d.objid "
							  "  AND r.ev_class OPERATOR(pg_catalog.=) 'consent_ledger.consent_state'::pg_catalog.regclass))",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the consent ledger's dependents");
	if (SPI_processed == 1)
		names = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (names != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("the consent ledger's table is used by other objects"),
				 errdetail("The migration drops the old table; these depend on it: %s.", names),
				 errhint("Drop them, call migrate_consent_ledger(), and create them again over the new consent_ledger.consent_events (views over consent_ledger.consent_state need nothing).")));
}

/*
 * consent_ledger.migrate_consent_ledger() RETURNS bigint
 *
 * Returns the number of events moved: 0, with a NOTICE, when there is no
 * consent ledger or it already has personal columns.
 */
Datum
cl_migrate_consent_ledger(PG_FUNCTION_ARGS)
{
	Oid			old_relid;
	Oid			new_relid;
	Oid			pkey;
	Relation	rel;
	ClLedgerInfo *info;
	ClLedgerInfo *newinfo;
	int32		old_id;
	Oid			owner;
	char	   *oldname;
	char	   *qold;
	int64		moved;
	int64		rows = -1;
	int64		max_id = 0;
	bool		isnull;

	cl_require_admin("migrate the consent ledger",
					 "migrate the consent ledger; EXECUTE on the function is not enough",
					 "migrate_consent_ledger");
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot migrate the consent ledger during recovery"),
				 errhint("Call migrate_consent_ledger() on the primary.")));

	/*
	 * Every statement below must see the events committed while this one
	 * waited for its locks: a transaction snapshot (REPEATABLE READ,
	 * SERIALIZABLE) would leave them out of the copy (attack review).
	 */
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migrate_consent_ledger() must run in a READ COMMITTED transaction"),
				 errdetail("Under a transaction snapshot it would not see events committed while it waited for its locks."),
				 errhint("SET TRANSACTION ISOLATION LEVEL READ COMMITTED, or call it outside an explicit transaction with default_transaction_isolation at read committed.")));

	/*
	 * No erasure, no creator of the consent ledger; the table before the
	 * recorder lock, in the order recorders take them (record.c).
	 */
	cl_lock_extension(CL_LOCK_ERASE, ExclusiveLock);
	LockRelationOid(cl_internal_relid("purposes"), ShareRowExclusiveLock);
	rel = cl_open_consent_events(AccessExclusiveLock, false);
	cl_lock_extension(CL_LOCK_RECORDER, ExclusiveLock);
	if (rel == NULL)
	{
		ereport(NOTICE,
				(errmsg("there is no consent ledger to migrate"),
				 errdetail("The first grant_consent() or withdraw_consent() makes it, with personal evidence.")));
		PG_RETURN_INT64(0);
	}
	old_relid = RelationGetRelid(rel);
	pkey = RelationGetPrimaryKeyIndex(rel);
	table_close(rel, NoLock);
	info = cl_ledger_lookup(old_relid);
	if (info == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger.consent_events is not a ledger table"),
				 errhint("Check the extension's installation.")));
	if (info->encoding >= CL_ENCODING_V3)
	{
		ereport(NOTICE,
				(errmsg("the consent ledger already commits to its evidence as personal data"),
				 errdetail("It was made by version 1.3 or later (encoding version %d); erase_subject() erases its evidence.",
						   info->encoding)));
		PG_RETURN_INT64(0);
	}
	old_id = info->ledger_id;
	if (info->retired)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the consent ledger (ledger %d) is retired", old_id),
				 errhint("Check consent_ledger.ledgers: a retired consent ledger cannot be migrated.")));
	{
		int64		txn;

		/* its leaves would be sealed into the retired ledger's log */
		if (cl_ledger_own_count(old_relid, &txn) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("this transaction has recorded consent already"),
					 errdetail("Its events would go into the old consent ledger's log."),
					 errhint("Call migrate_consent_ledger() in a transaction of its own.")));
	}

	owner = cl_extension_owner();
	oldname = psprintf("consent_events_ledger_%d", old_id);
	qold = quote_qualified_identifier(CL_SCHEMA, oldname);
	cl_refuse_taken_name(oldname, "The migration renames the old consent ledger to this name before dropping it.");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	refuse_dependents(old_relid);

	/*
	 * The old table steps aside with its indexes (the new one's subject
	 * index is found by name).  The view consent_state is replaced by one
	 * over the new table (CREATE OR REPLACE VIEW, as the new ledger is
	 * made), not dropped: views of an administrator's or auditor's that
	 * use it then read the new table too.
	 */
	cl_run_as_owner(psprintf("ALTER TABLE consent_ledger.consent_events RENAME TO %s",
							 quote_identifier(oldname)), owner);
	if (OidIsValid(get_relname_relid("consent_events_subject_idx", cl_schema_oid(false))))
		cl_run_as_owner(psprintf("ALTER INDEX consent_ledger.consent_events_subject_idx RENAME TO %s",
								 quote_identifier(psprintf("%s_subject_idx", oldname))), owner);
	if (OidIsValid(pkey))
		cl_run_as_owner(psprintf("ALTER INDEX %s RENAME TO %s",
								 quote_qualified_identifier(CL_SCHEMA, get_rel_name(pkey)),
								 quote_identifier(psprintf("%s_pkey", oldname))), owner);
	cl_run_as_owner(psprintf("ALTER TABLE %s ALTER COLUMN event_id DROP DEFAULT", qold), owner);
	CommandCounterIncrement();

	/* the new consent ledger, as the first grant of 1.3 makes it */
	new_relid = cl_consent_events_relid(true);
	newinfo = cl_ledger_lookup(new_relid);
	if (newinfo == NULL || newinfo->encoding < CL_ENCODING_V3)
		elog(ERROR, "the new consent ledger has no personal columns");

	/* every event, in commit order, as recorded */
	cl_migrating_consent = true;
	PG_TRY();
	{
		/* 1.6's columns of subject-signed events, when the old ledger has them */
		const char *signed_cols = get_attnum(old_relid, "subject_signature") > 0 ?
			", subject_statement, subject_signature, subject_key" : "";

		cl_run_as_owner(psprintf("INSERT INTO consent_ledger.consent_events "
								 "(event_id, subject, purpose, action, expires_at, evidence, recorded_at, recorded_by%s) "
								 "SELECT event_id, subject, purpose, action, expires_at, evidence, recorded_at, recorded_by%s "
								 "FROM %s ORDER BY event_id", signed_cols, signed_cols, qold), owner);
		moved = (int64) SPI_processed;
	}
	PG_FINALLY();
	{
		cl_migrating_consent = false;
	}
	PG_END_TRY();
	cl_run_as_owner(psprintf("SELECT pg_catalog.count(*), pg_catalog.max(event_id) FROM %s", qold), owner);
	if (SPI_processed == 1)
	{
		rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		max_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull)
			max_id = 0;
	}
	if (rows != moved)
		elog(ERROR, "moved " INT64_FORMAT " of " INT64_FORMAT " consent events", moved, rows);

	/*
	 * Published at commit like a recording: a session that read protected
	 * data in this transaction saw the copied events as uncommitted and
	 * stopped there; the commit makes every session catch up again.
	 */
	if (max_id > 0)
		cl_consent_recorded(max_id);

	/* the old ledger: retired (its log and checkpoints stay), its rows dropped */
	cl_run_as_owner(psprintf("UPDATE consent_ledger.ledgers SET retired_at = pg_catalog.now() "
							 "WHERE ledger_id OPERATOR(pg_catalog.=) %d AND retired_at IS NULL", old_id),
					owner);
	CommandCounterIncrement();
	cl_ledger_cache_reset();
	/* recorded as dropped (the drop hook leaves the extension's own DDL alone) */
	cl_ledger_note_dropped(old_relid);
	cl_run_as_owner(psprintf("DROP TABLE %s", qold), owner);
	SPI_finish();
	CommandCounterIncrement();
	cl_ledger_cache_reset();
	cl_seal_wake(MyDatabaseId);

	ereport(NOTICE,
			(errmsg("moved " INT64_FORMAT " consent events into a new consent ledger (ledger %d)",
					moved, newinfo->ledger_id),
			 errdetail("The old consent ledger (ledger %d) is retired and dropped; its log and checkpoints are kept, so its receipts still verify.",
					   old_id)));
	PG_RETURN_INT64(moved);
}
