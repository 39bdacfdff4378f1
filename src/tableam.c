/*-------------------------------------------------------------------------
 * tableam.c
 *	  The consent_ledger table access method: heap, stamping ledger rows
 *	  as they are stored.
 *
 * A BEFORE INSERT row trigger makes COPY insert row by row (copyfrom.c
 * uses CIM_SINGLE when a table has one) and deforms and forms every row
 * once more.  Ledgers made by create_ledger() from 1.3 on live on this
 * access method instead: it is PostgreSQL's heap (a copy of
 * GetHeapamTableAmRoutine(), same files, same WAL, same visibility) whose
 * tuple_insert and multi_insert stamp every row of a ledger through the
 * one stamping function of ledger.c (cl_ledger_stamp_slots: the same
 * encoding, ordinals, leaf hashes and refusals as the stamp trigger)
 * before heap stores it, so COPY keeps heap_multi_insert.
 *
 * Which rows are stamped: those stored into a relation that has the
 * extension's stamp trigger as a BEFORE INSERT statement trigger (enabled;
 * a ledger's triggers are ENABLE ALWAYS and cannot be changed).  The
 * trigger is the marker, as the row trigger is on heap ledgers: a table
 * pg_restore is filling has no triggers yet (pg_dump puts them after the
 * data), so restored rows keep their stamps exactly as with the trigger;
 * anything else using the access method passes through untouched, among
 * them the transient heap of a rewrite (ALTER TABLE's ATRewriteTable
 * inserts into a new relation with table_tuple_insert; CLUSTER and
 * VACUUM FULL copy through relation_copy_for_cluster, heap's, which
 * inserts nothing through these callbacks).  INSERT ... ON CONFLICT
 * (tuple_insert_speculative) is refused on a ledger, as the planner hook
 * already does (guard.c): a row skipped on conflict would be counted.
 *
 * Costs (README "Table access method"): heap-only code that compares a
 * relation's access method with heap's refuses these tables, e.g.
 * heap_getnext() (the extension scans through cl_heap_getnext()).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_am.h"
#include "catalog/pg_trigger.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "fmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "storage/lmgr.h"

#include "consent_ledger.h"

/*
 * The handler's info record is PostgreSQL's own, not the one of
 * consent_ledger.h that refuses without preloading: a table on this
 * access method must stay readable (SELECT, pg_dump) when the library is
 * not preloaded, as a heap ledger is.  What must not run then refuses on
 * its own: storing a row into a ledger (cl_require_preloaded() below; its
 * statement stamp trigger refuses before that).
 */
extern PGDLLEXPORT Datum cl_tableam_handler(PG_FUNCTION_ARGS);
extern PGDLLEXPORT const Pg_finfo_record *pg_finfo_cl_tableam_handler(void);
const Pg_finfo_record *
pg_finfo_cl_tableam_handler(void)
{
	static const Pg_finfo_record my_finfo = {1};

	return &my_finfo;
}

static TableAmRoutine cl_tableam;
static bool cl_tableam_ready = false;

/* What the relcache remembers of a relation on this access method. */
typedef struct ClAmCache
{
	bool		stamp;			/* rows stored into it are stamped */
} ClAmCache;

/*
 * Whether rows stored into rel (on this access method) are stamped: it
 * has the extension's stamp trigger, enabled, as a BEFORE INSERT
 * statement trigger.  Kept in rd_amcache, which goes with every relcache
 * rebuild (CREATE/DROP TRIGGER, create_ledger(), retire_ledger() send one).
 */
static bool
am_stamps(Relation rel)
{
	ClAmCache  *c = (ClAmCache *) rel->rd_amcache;

	if (c == NULL)
	{
		TriggerDesc *td = rel->trigdesc;
		bool		stamp = false;

		for (int i = 0; td != NULL && i < td->numtriggers; i++)
		{
			Trigger    *t = &td->triggers[i];

			if (strcmp(t->tgname, CL_STAMP_TRIGGER) == 0 &&
				t->tgenabled != TRIGGER_DISABLED &&
				TRIGGER_TYPE_MATCHES(t->tgtype, TRIGGER_TYPE_STATEMENT,
									 TRIGGER_TYPE_BEFORE, TRIGGER_TYPE_INSERT) &&
				cl_is_extension_trigger_function(t->tgfoid, "ledger_stamp"))
				stamp = true;
		}
		c = MemoryContextAlloc(CacheMemoryContext, sizeof(ClAmCache));
		c->stamp = stamp;
		rel->rd_amcache = c;
	}
	return c->stamp;
}

static void
cl_tuple_insert(Relation rel, TupleTableSlot *slot, CommandId cid,
				int options, BulkInsertState bistate)
{
	if (am_stamps(rel))
	{
		cl_require_preloaded(NULL);
		cl_ledger_stamp_slots(rel, &slot, 1);
	}
	GetHeapamTableAmRoutine()->tuple_insert(rel, slot, cid, options, bistate);
}

static void
cl_multi_insert(Relation rel, TupleTableSlot **slots, int nslots,
				CommandId cid, int options, BulkInsertState bistate)
{
	if (am_stamps(rel))
	{
		cl_require_preloaded(NULL);
		cl_ledger_stamp_slots(rel, slots, nslots);
	}
	GetHeapamTableAmRoutine()->multi_insert(rel, slots, nslots, cid, options, bistate);
}

static void
cl_tuple_insert_speculative(Relation rel, TupleTableSlot *slot, CommandId cid,
							int options, BulkInsertState bistate, uint32 specToken)
{
	if (am_stamps(rel))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("INSERT ... ON CONFLICT is not supported on ledger table \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("A row skipped on conflict would already be counted in the ledger's log."),
				 errhint("Check for the row first, or insert into a staging table.")));
	GetHeapamTableAmRoutine()->tuple_insert_speculative(rel, slot, cid, options,
														bistate, specToken);
}

/*
 * A ledger's TOAST table is a plain heap (heap's callback would give it
 * this access method, and heap-only code such as heap_getnext() would
 * then refuse it): only the table's own rows are stamped.
 */
static Oid
cl_relation_toast_am(Relation rel)
{
	return HEAP_TABLE_AM_OID;
}

/*
 * Heap's index build and validation scans read the table with
 * heap_getnext(), which refuses a relation whose rd_tableam is not heap's
 * routine (it compares the pointers).  They run with the relation
 * showing heap's routine for the duration (restored after, also on
 * error).  No row may be stored in that window, because heap's
 * tuple_insert would not stamp it: heap_window counts the scans under
 * way, and cl_tableam_refuse_writes() (the ExecutorStart and
 * ProcessUtility hooks, for any statement that writes, including COPY
 * FROM) refuses writes while it is not zero.  Only code run by the index
 * build itself (expressions and predicates of the index, which must be
 * immutable) can run then.
 */
static int	heap_window = 0;

void
cl_tableam_refuse_writes(void)
{
	if (heap_window > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot write to tables while an index of a ledger table is built"),
				 errdetail("An index expression or predicate of a ledger table tried to change data."),
				 errhint("Index expressions and predicates must be immutable.")));
}

static double
cl_index_build_range_scan(Relation table_rel, Relation index_rel,
						  struct IndexInfo *index_info, bool allow_sync,
						  bool anyvisible, bool progress,
						  BlockNumber start_blockno, BlockNumber numblocks,
						  IndexBuildCallback callback, void *callback_state,
						  TableScanDesc scan)
{
	const TableAmRoutine *self = table_rel->rd_tableam;
	double		result = 0;

	heap_window++;
	table_rel->rd_tableam = GetHeapamTableAmRoutine();
	PG_TRY();
	{
		result = GetHeapamTableAmRoutine()->index_build_range_scan(table_rel, index_rel, index_info,
																   allow_sync, anyvisible, progress,
																   start_blockno, numblocks,
																   callback, callback_state, scan);
	}
	PG_FINALLY();
	{
		table_rel->rd_tableam = self;
		heap_window--;
	}
	PG_END_TRY();
	return result;
}

static void
cl_index_validate_scan(Relation table_rel, Relation index_rel,
					   struct IndexInfo *index_info, Snapshot snapshot,
					   struct ValidateIndexState *state)
{
	const TableAmRoutine *self = table_rel->rd_tableam;

	heap_window++;
	table_rel->rd_tableam = GetHeapamTableAmRoutine();
	PG_TRY();
	{
		GetHeapamTableAmRoutine()->index_validate_scan(table_rel, index_rel, index_info,
													   snapshot, state);
	}
	PG_FINALLY();
	{
		table_rel->rd_tableam = self;
		heap_window--;
	}
	PG_END_TRY();
}

/* consent_ledger.table_am_handler(internal): the access method's routine */
Datum
cl_tableam_handler(PG_FUNCTION_ARGS)
{
	if (!cl_tableam_ready)
	{
		cl_tableam = *GetHeapamTableAmRoutine();
		cl_tableam.tuple_insert = cl_tuple_insert;
		cl_tableam.multi_insert = cl_multi_insert;
		cl_tableam.tuple_insert_speculative = cl_tuple_insert_speculative;
		cl_tableam.relation_toast_am = cl_relation_toast_am;
		cl_tableam.index_build_range_scan = cl_index_build_range_scan;
		cl_tableam.index_validate_scan = cl_index_validate_scan;
		cl_tableam_ready = true;
	}
	PG_RETURN_POINTER(&cl_tableam);
}

/* Whether rel is on this access method. */
bool
cl_tableam_is(Relation rel)
{
	return cl_tableam_ready && rel->rd_tableam == &cl_tableam;
}

/* Whether rel is on this access method and its rows are stamped by it. */
bool
cl_tableam_stamps(Relation rel)
{
	return cl_tableam_is(rel) && am_stamps(rel);
}

/*
 * Whether the access method is installed in this database by the
 * extension (its 1.3 SQL objects; a 1.2 installation has none, and its
 * new ledgers then keep the stamp trigger).
 */
bool
cl_tableam_installed(void)
{
	Oid			am = get_table_am_oid(CL_TABLE_AM, true);
	Oid			ext = get_extension_oid(CL_EXTENSION, true);

	return OidIsValid(am) && OidIsValid(ext) &&
		getExtensionOfObject(AccessMethodRelationId, am) == ext;
}

/*
 * heap_getnext() for a scan of a heap or of a relation on this access
 * method: heap_getnext() itself refuses any access method but heap's
 * (it compares rd_tableam with heap's routine), though the scan is a
 * heap scan here.  Returns the scan's current tuple as heap_getnext()
 * does (valid until the next call, the buffer pinned by the scan).
 */
HeapTuple
cl_heap_getnext(TableScanDesc scan, ScanDirection direction)
{
	static TupleTableSlot *slot = NULL;
	HeapTuple	tup = NULL;

	if (!cl_tableam_is(scan->rs_rd))
		return heap_getnext(scan, direction);
	if (slot == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		slot = MakeSingleTupleTableSlot(CreateTemplateTupleDesc(0), &TTSOpsBufferHeapTuple);
		MemoryContextSwitchTo(old);
	}
	if (GetHeapamTableAmRoutine()->scan_getnextslot(scan, direction, slot))
		tup = &((HeapScanDesc) scan)->rs_ctup;
	/* the scan keeps its own pin on the page */
	ExecClearTuple(slot);
	return tup;
}

/*
 * DROP EXTENSION (guard.c): every table and materialized view on this
 * access method goes back to heap first, so that the drop, which takes the
 * access method with it, keeps retired ledgers (and any other relation on
 * it) instead of refusing or, with CASCADE, dropping them.
 *
 * The access method stores heap's pages, so going back is a catalog change
 * only: pg_class.relam and the relation's dependency on the access method
 * (heap is pinned: the dependency goes).  No rewrite, so nothing of the
 * owner's runs (an index expression that raises cannot stop the drop) and
 * other sessions' temporary tables are changed like any other (attack
 * review R1, W1).  Each relation is locked first (ACCESS EXCLUSIVE): no
 * insert runs through the access method while its routine changes.
 */
void
cl_tableam_release_tables(void)
{
	Oid			amoid = get_table_am_oid(CL_TABLE_AM, true);
	List	   *relids = NIL;
	ListCell   *lc;
	Relation	classrel;
	TableScanDesc scan;
	HeapTuple	tup;

	if (!OidIsValid(amoid))
		return;
	classrel = table_open(RelationRelationId, AccessShareLock);
	scan = table_beginscan_catalog(classrel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_class form = (Form_pg_class) GETSTRUCT(tup);

		if (form->relam == amoid &&
			(form->relkind == RELKIND_RELATION || form->relkind == RELKIND_MATVIEW))
			relids = lappend_oid(relids, form->oid);
	}
	table_endscan(scan);
	table_close(classrel, AccessShareLock);

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);
		HeapTuple	copy;

		LockRelationOid(relid, AccessExclusiveLock);
		classrel = table_open(RelationRelationId, RowExclusiveLock);
		copy = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(relid));
		if (HeapTupleIsValid(copy) && ((Form_pg_class) GETSTRUCT(copy))->relam == amoid)
		{
			((Form_pg_class) GETSTRUCT(copy))->relam = HEAP_TABLE_AM_OID;
			CatalogTupleUpdate(classrel, &copy->t_self, copy);
			changeDependencyFor(RelationRelationId, relid,
								AccessMethodRelationId, amoid, HEAP_TABLE_AM_OID);
			heap_freetuple(copy);
		}
		table_close(classrel, RowExclusiveLock);
		CacheInvalidateRelcacheByRelid(relid);
	}
	CommandCounterIncrement();
}
