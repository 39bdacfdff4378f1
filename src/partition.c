/*-------------------------------------------------------------------------
 * partition.c
 *	  Partitioned tables: protection, audit and ledgers that cover every
 *	  partition, present and future.
 *
 * PostgreSQL applies a partitioned table's row-level security policies to
 * rows read through it, but a partition read directly is governed by its
 * own policies (none, unless someone made them).  So protect() protects
 * the parent and every partition as tables in their own right: each gets
 * the consent policies, forced row-level security, a row in
 * consent_ledger.protected and custody.  Whatever the guard refuses on a
 * protected table (NO FORCE, another permissive policy, DROP POLICY, a
 * trigger by an untrusted role...) it then refuses on each partition,
 * and a partition's former owner, no longer its owner, cannot alter it.
 *
 * A partitioned ledger keeps one log per leaf partition.  Each leaf is an
 * ordinary ledger in consent_ledger.ledgers, with its own origin, log,
 * checkpoints, stamp and guard triggers, so a partition read, proved or
 * exported directly verifies on its own, the sealer and the verifier need
 * nothing new, and attaching a ledger keeps its log.  verify(parent)
 * verifies every leaf; partition_checkpoints(parent) gives a receipt per
 * leaf.  Partitioned tables of the tree carry the statement guard only
 * (it also marks them as ledgers): row triggers on a partitioned table
 * are cloned by PostgreSQL onto each new partition with the privileges of
 * whoever creates it, who would need EXECUTE on the extension's trigger
 * functions.  The audit triggers are placed per partition likewise.
 *
 * Partitions added later are covered by the utility hook
 * (cl_partition_after_utility) in the same transaction as the CREATE
 * TABLE ... PARTITION OF or ATTACH PARTITION: an error there (a table
 * that cannot be protected, a non-empty table attached to a ledger)
 * rolls the DDL back.  DETACH PARTITION of a protected partition leaves it
 * protected (unprotect() it explicitly); DETACH of a ledger partition is
 * refused (the guard), since a ledger's rows are never removed.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "consent_ledger.h"

/* The partitioned table a partition belongs to, or InvalidOid. */
static Oid
partition_parent(Oid relid)
{
	if (!OidIsValid(relid) || !get_rel_relispartition(relid))
		return InvalidOid;
	return get_partition_parent(relid, true);
}

/* Whether relid is a partition of a protected table. */
bool
cl_partition_parent_protected(Oid relid)
{
	Oid			parent = partition_parent(relid);

	return OidIsValid(parent) && cl_is_protected(parent);
}

/*
 * Whether relid is a partitioned ledger (or a partitioned partition of
 * one): a partitioned table carrying the ledger's statement guard, a
 * trigger of that name calling consent_ledger.ledger_guard(), which only
 * the extension and administrators may execute (a trigger of the same
 * name calling a function of the table owner's does not count), and which
 * the guard keeps.
 */
bool
cl_is_partitioned_ledger(Oid relid)
{
	Relation	rel;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		result = false;

	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		return false;
	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(CL_GUARD_TRIGGER));
	scan = systable_beginscan(rel, TriggerRelidNameIndexId, true, NULL, 2, keys);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Oid			fn = ((Form_pg_trigger) GETSTRUCT(tup))->tgfoid;

		result = cl_is_extension_trigger_function(fn, "ledger_guard");
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * The subject column a protected table was protected with.  Inside SPI:
 * the string lives until SPI_finish().
 */
static char *
subject_column(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		vals[1] = {ObjectIdGetDatum(relid)};
	char	   *column = NULL;

	if (SPI_execute_with_args("SELECT subject_column::pg_catalog.text FROM consent_ledger.protected "
							  "WHERE relid OPERATOR(pg_catalog.=) $1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.protected");
	if (SPI_processed == 1)
		column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid))));
	return column;
}

/* Every partition below relid, parents before their children. */
static List *
descendants(Oid relid)
{
	List	   *all;

	if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		return NIL;
	all = find_all_inheritors(relid, AccessExclusiveLock, NULL);
	return list_delete_first(all);
}

/*
 * protect(): protects every partition below a table just protected, with
 * its subject column.  The caller must own them (as for the parent); a
 * partition whose subject column differs in type is impossible (a
 * partition has its parent's columns).
 */
void
cl_partition_protect_children(Oid relid, const char *column)
{
	ListCell   *lc;

	foreach(lc, descendants(relid))
	{
		Oid			child = lfirst_oid(lc);

		if (cl_is_protected(child))
		{
			char	   *other = subject_column(child);

			if (strcmp(other, column) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("partition \"%s\" is protected with subject column \"%s\", not \"%s\"",
								get_rel_name(child), other, column),
						 errdetail("Every partition of a protected table is held to its parent's policy."),
						 errhint("Unprotect the partition first.")));
			continue;
		}
		cl_protect_one(child, column);
	}
}

/* unprotect(): the partitions first, children before their parents. */
void
cl_partition_unprotect_children(Oid relid)
{
	List	   *all = descendants(relid);

	for (int i = list_length(all) - 1; i >= 0; i--)
	{
		Oid			child = list_nth_oid(all, i);

		if (cl_is_protected(child))
			cl_unprotect_one(child);
	}
}

/* unprotect() of one partition while its parent stays protected. */
void
cl_partition_refuse_unprotect_member(Oid relid)
{
	if (cl_partition_parent_protected(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("\"%s\" is a partition of protected table \"%s\"",
						get_rel_name(relid), get_rel_name(partition_parent(relid))),
				 errdetail("A partition read directly is held to its parent's policy."),
				 errhint("Unprotect the partitioned table, or detach the partition first.")));
}

/*
 * A partition just created or attached under a protected, audited or
 * ledger parent gets what its parent has.  Runs in the utility hook,
 * after the command, in its transaction.
 */
static void
adopt_partition(Oid relid)
{
	Oid			parent = partition_parent(relid);
	ListCell   *lc;

	if (!OidIsValid(parent) || !cl_extension_present())
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * The ledger first: registering a leaf reads it as its owner with
	 * row_security off (adopt_rows), which forced row-level security would
	 * refuse once the partition is protected.
	 */
	if (cl_is_partitioned_ledger(parent))
	{
		cl_ledger_add_partition(relid);
		foreach(lc, descendants(relid))
			cl_ledger_add_partition(lfirst_oid(lc));
	}
	if (cl_is_audited(parent))
	{
		cl_audit_partition(relid);
		foreach(lc, descendants(relid))
			cl_audit_partition(lfirst_oid(lc));
	}
	if (cl_is_protected(parent))
	{
		char	   *column = subject_column(parent);

		if (cl_is_protected(relid))
		{
			char	   *own = subject_column(relid);

			if (strcmp(own, column) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("table \"%s\" is protected with subject column \"%s\", its new parent \"%s\" with \"%s\"",
								get_rel_name(relid), own, get_rel_name(parent), column),
						 errdetail("Every partition of a protected table is held to its parent's policy."),
						 errhint("Unprotect the table before attaching it.")));
		}
		else
			cl_protect_one(relid, column);
		cl_partition_protect_children(relid, column);
		cl_run_as_owner("SELECT consent_ledger._purposes_changed()", cl_extension_owner());
	}
	SPI_finish();
}

/*
 * After a utility command: CREATE TABLE ... PARTITION OF and ALTER TABLE
 * ... ATTACH PARTITION extend their parent's protection, audit and ledger
 * to the new partition (and its own partitions).
 */
void
cl_partition_after_utility(Node *parsetree, Oid created, Oid attach_parent, List *attached)
{
	ListCell   *lc;

	/* pg_upgrade restores the catalogs as they were, partitions included */
	if (IsBinaryUpgrade)
		return;
	/* the table CREATE TABLE ... PARTITION OF made (by OID: guard.c) */
	if ((IsA(parsetree, CreateStmt) || IsA(parsetree, CreateForeignTableStmt)) &&
		((CreateStmt *) parsetree)->partbound != NULL && OidIsValid(created))
		adopt_partition(created);
	if (!OidIsValid(attach_parent) || get_rel_relkind(attach_parent) != RELKIND_PARTITIONED_TABLE ||
		!cl_extension_present())
		return;
	/* ALTER TABLE parent ATTACH PARTITION: the partition named, as found before */
	foreach(lc, attached)
		if (OidIsValid(lfirst_oid(lc)) && partition_parent(lfirst_oid(lc)) == attach_parent)
			adopt_partition(lfirst_oid(lc));

	/*
	 * PostgreSQL looks the partition up by name after the bound's
	 * expressions ran (they could change search_path or names): every
	 * partition of the parent not given what the parent has is adopted
	 * too.
	 */
	{
		bool		ledger = cl_is_partitioned_ledger(attach_parent);
		bool		audited = cl_is_audited(attach_parent);
		bool		protected = cl_is_protected(attach_parent);
		List	   *children;
		List	   *todo = NIL;
		char	   *column = NULL;

		if (!ledger && !audited && !protected)
			return;
		children = find_inheritance_children(attach_parent, NoLock);

		/* (the registry read with the latest snapshot: adoptions just made count) */
		if (protected)
			(void) cl_registry_lookup("protected", attach_parent, 2, CurrentMemoryContext, &column);
		foreach(lc, children)
		{
			Oid			child = lfirst_oid(lc);
			char	   *own = NULL;

			if ((ledger && cl_ledger_lookup(child) == NULL && !cl_is_partitioned_ledger(child)) ||
				(audited && !cl_is_audited(child)) ||
				(protected && column != NULL &&
				 (!cl_registry_lookup("protected", child, 2, CurrentMemoryContext, &own) ||
				  own == NULL || strcmp(own, column) != 0)))
				todo = lappend_oid(todo, child);
		}
		foreach(lc, todo)
			adopt_partition(lfirst_oid(lc));
	}
}

/* Whether a table holds any row (visible to a fresh snapshot). */
static bool
table_has_rows(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan = table_beginscan(rel, snap, 0, NULL);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);

	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Before ALTER TABLE parent ATTACH PARTITION part, parent a partitioned
 * ledger.  A table that is already a ledger keeps its log.  Any other
 * table must be empty, so that no row enters the ledger without its leaf;
 * its leaves are registered after the attach.
 */
void
cl_partition_before_ledger_attach(Oid parent, Oid part)
{
	List	   *leaves;
	ListCell   *lc;

	if (!OidIsValid(part))
		return;
	leaves = get_rel_relkind(part) == RELKIND_PARTITIONED_TABLE ?
		find_all_inheritors(part, AccessExclusiveLock, NULL) : list_make1_oid(part);
	/* ledgers among them commit to the parent's personal columns */
	cl_ledger_check_attach(parent, part);
	foreach(lc, leaves)
	{
		Oid			leaf = lfirst_oid(lc);
		ClLedgerInfo *info;

		if (get_rel_relkind(leaf) == RELKIND_PARTITIONED_TABLE)
			continue;
		/* not scanned: a foreign table has no table access method */
		if (get_rel_relkind(leaf) != RELKIND_RELATION)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" cannot be a partition of a ledger table", get_rel_name(leaf)),
					 errdetail("Partitions of a ledger must be ordinary tables whose rows the ledger can read and hash."),
					 errhint("Use an ordinary table.")));
		info = cl_ledger_lookup(leaf);
		if (info != NULL && info->retired)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("ledger table \"%s\" is retired", get_rel_name(leaf)),
					 errdetail("A retired ledger accepts no more rows; a partition of a ledger must."),
					 errhint("Attach a live ledger or an empty table.")));
		if (info == NULL && table_has_rows(leaf))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" has rows and is not a ledger table", get_rel_name(leaf)),
					 errdetail("Rows attached to ledger \"%s\" would be in no log.", get_rel_name(parent)),
					 errhint("Make it a ledger first (consent_ledger.create_ledger() adopts its rows into a log of its own), then attach it; or attach an empty table.")));
	}
}

/*
 * verify(parent) of a partitioned ledger: the ledgers of its leaf
 * partitions, in the order find_all_inheritors() gives (parents first).
 */
List *
cl_partition_ledgers(Oid relid)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, AccessShareLock, NULL))
	{
		ClLedgerInfo *info = cl_ledger_lookup(lfirst_oid(lc));
		ClLedgerInfo *copy;

		if (info == NULL)
			continue;
		/* a copy: the lookup's cache may be reset while verifying */
		copy = palloc(sizeof(ClLedgerInfo));
		*copy = *info;
		copy->origin = info->origin ? pstrdup(info->origin) : NULL;
		result = lappend(result, copy);
	}
	return result;
}
