/*-------------------------------------------------------------------------
 * catalog.c
 *	  The extension's own tables, and the registry of ledger tables with a
 *	  backend-local cache.
 *
 * The cache maps a relation OID to its ledger entry (or to "not a
 * ledger").  An entry changes only when a ledger is created or retired,
 * both of which send a relcache invalidation for the table (they alter
 * its triggers), so a relcache callback keeps every backend's cache
 * exact without polling.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "executor/spi.h"
#include "commands/extension.h"
#include "storage/lmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consent_ledger.h"

/*
 * The ledger cache.  A ledger's entry is never removed: an invalidation
 * only marks it stale, and the next lookup refreshes the entry in place.
 * So a ClLedgerInfo pointer a caller holds stays a pointer to that
 * relation's entry even when code it runs processes invalidations (a
 * removed dynahash entry would be reused for another relation), and
 * refreshing allocates nothing in CacheMemoryContext unless the origin
 * changed.  An entry that says "not a ledger" (and never was one: no
 * origin) has no holders, since lookups return NULL for it: an
 * invalidation removes it, so that a session that creates, touches and
 * drops many tables (temporary ones, say) does not grow the cache.
 */
typedef struct LedgerCacheEntry
{
	Oid			relid;			/* hash key */
	bool		valid;
	bool		is_ledger;
	ClLedgerInfo info;			/* info.origin in CacheMemoryContext, or NULL */
} LedgerCacheEntry;

static HTAB *ledger_cache = NULL;

/* attribute numbers of consent_ledger.ledgers */
#define Anum_ledgers_ledger_id	1
#define Anum_ledgers_relid		2
#define Anum_ledgers_origin		3
#define Anum_ledgers_encoding	4
#define Anum_ledgers_created_at 5
#define Anum_ledgers_retired_at 6

/* of consent_ledger.protected */
#define Anum_protected_subject_column 2

/* Invalidation: a negative entry goes, a ledger's is marked stale. */
static void
forget_entry(LedgerCacheEntry *entry)
{
	if (!entry->is_ledger && entry->info.origin == NULL)
		(void) hash_search(ledger_cache, &entry->relid, HASH_REMOVE, NULL);
	else
		entry->valid = false;
}

static void
ledger_cache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	LedgerCacheEntry *entry;

	if (ledger_cache == NULL)
		return;
	if (OidIsValid(relid))
	{
		entry = hash_search(ledger_cache, &relid, HASH_FIND, NULL);
		if (entry != NULL)
			forget_entry(entry);
		return;
	}
	/* removing the entry just returned is allowed during a scan */
	hash_seq_init(&status, ledger_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
		forget_entry(entry);
}

void
cl_ledger_cache_reset(void)
{
	ledger_cache_callback((Datum) 0, InvalidOid);
}

static void
ledger_cache_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(LedgerCacheEntry);
	ctl.hcxt = CacheMemoryContext;
	ledger_cache = hash_create("consent_ledger ledgers", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(ledger_cache_callback, (Datum) 0);
}

Oid
cl_schema_oid(bool missing_ok)
{
	return get_namespace_oid(CL_SCHEMA, missing_ok);
}

bool
cl_extension_present(void)
{
	return OidIsValid(get_extension_oid(CL_EXTENSION, true));
}

/*
 * One of the extension's own ledgers, found by name (lookup(create): its
 * OID, made when missing with create), opened with lockmode; NULL when
 * there is none.  The OID is locked before the relation is opened and
 * looked up again once the lock is held: a migration or rotation may have
 * replaced the table this session found by name while it waited, and the
 * caller then goes on with the new one.  (The lock has made this backend
 * read the invalidations.)
 */
Relation
cl_open_by_name_locked(Oid (*lookup) (bool create), bool create, LOCKMODE lockmode)
{
	for (;;)
	{
		Oid			relid = lookup(create);

		if (!OidIsValid(relid))
			return NULL;
		LockRelationOid(relid, lockmode);
		if (lookup(false) == relid)
			return table_open(relid, NoLock);
		UnlockRelationOid(relid, lockmode);
	}
}

/*
 * Refuses a caller who is neither a superuser nor a member of
 * consent_ledger_admin (whoever was granted EXECUTE on the function):
 * "permission denied to <action>", who may (<may>) and the function to
 * ask an administrator for.
 */
void
cl_require_admin(const char *action, const char *may, const char *function)
{
	Oid			admin = get_role_oid(CL_ADMIN_ROLE, true);

	if (superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s", action),
			 errdetail("Only superusers and members of %s may %s.", CL_ADMIN_ROLE, may),
			 errhint("Ask an administrator to call consent_ledger.%s().", function)));
}

/* Refuses when relname is taken in the extension's schema (what is renamed to it, and why). */
void
cl_refuse_taken_name(const char *relname, const char *why)
{
	if (OidIsValid(get_relname_relid(relname, cl_schema_oid(false))))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s.%s\" already exists", CL_SCHEMA, relname),
				 errdetail("%s", why),
				 errhint("Drop or rename that relation first.")));
}

/* OID of one of the extension's tables or sequences; ERROR if missing. */
Oid
cl_internal_relid(const char *name)
{
	Oid			nsp = cl_schema_oid(true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger is not installed in this database"),
				 errhint("Run CREATE EXTENSION consent_ledger.")));
	return relid;
}

/* Owner of the extension: the role internal writes run as. */
Oid
cl_extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(CL_EXTENSION));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger is not installed in this database"),
				 errhint("Run CREATE EXTENSION consent_ledger.")));
	return owner;
}

/*
 * The consent and audit ledgers are found by name in the extension's
 * schema (they are created on first use, not by the install script).  One
 * that someone else made is never used (README "Trust model"): it must be
 * an ordinary table owned by the extension's owner or by a superuser;
 * otherwise ERROR.  Returns relid.
 */
Oid
cl_check_internal_table(Oid relid, const char *name)
{
	HeapTuple	tup;
	Form_pg_class cls;
	Oid			owner;
	Oid			extowner;
	char		relkind;

	if (!OidIsValid(relid))
		return relid;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return relid;
	cls = (Form_pg_class) GETSTRUCT(tup);
	owner = cls->relowner;
	relkind = cls->relkind;
	ReleaseSysCache(tup);
	extowner = cl_extension_owner();
	if ((owner == extowner || superuser_arg(owner)) && relkind == RELKIND_RELATION)
		return relid;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("relation %s.%s was not created by consent_ledger", CL_SCHEMA, name),
			 errdetail("It is owned by role \"%s\"%s; the extension only uses an ordinary table owned by its owner \"%s\" (or a superuser), "
					   "and never reads or writes one someone else created.",
					   GetUserNameFromId(owner, false),
					   relkind == RELKIND_RELATION ? "" : " and is not an ordinary table",
					   GetUserNameFromId(extowner, false)),
			 errhint("A superuser should inspect %s.%s and drop it or move it out of schema %s; the extension then creates its own on first use.",
					 CL_SCHEMA, name, CL_SCHEMA)));
	return InvalidOid;			/* keep compiler quiet */
}

static void
fill_info(ClLedgerInfo *info, HeapTuple tup, TupleDesc desc, MemoryContext mcxt)
{
	bool		isnull;
	Datum		d;

	info->ledger_id = DatumGetInt32(heap_getattr(tup, Anum_ledgers_ledger_id, desc, &isnull));
	d = heap_getattr(tup, Anum_ledgers_relid, desc, &isnull);
	/* NULL once the ledger's table was dropped (cl_ledger_note_dropped) */
	info->relid = isnull ? InvalidOid : DatumGetObjectId(d);
	d = heap_getattr(tup, Anum_ledgers_origin, desc, &isnull);
	info->origin = MemoryContextStrdup(mcxt, TextDatumGetCString(d));
	(void) heap_getattr(tup, Anum_ledgers_retired_at, desc, &isnull);
	info->retired = !isnull;
	info->encoding = DatumGetInt32(heap_getattr(tup, Anum_ledgers_encoding, desc, &isnull));
	info->txn_attnum = OidIsValid(info->relid) ? get_attnum(info->relid, CL_TXN_COLUMN) : InvalidAttrNumber;
	info->ord_attnum = OidIsValid(info->relid) ? get_attnum(info->relid, CL_ORD_COLUMN) : InvalidAttrNumber;
}

/*
 * Scans consent_ledger.ledgers with a fresh snapshot.  The table has a
 * handful of rows, so a sequential scan is the cheapest access.
 */
static List *
scan_ledgers(Oid relid, int32 ledger_id, MemoryContext mcxt)
{
	Oid			tabid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	List	   *result = NIL;

	if (!OidIsValid(cl_schema_oid(true)))
		return NIL;
	tabid = get_relname_relid("ledgers", cl_schema_oid(false));
	if (!OidIsValid(tabid))
		return NIL;

	rel = table_open(tabid, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		rd = heap_getattr(tup, Anum_ledgers_relid, RelationGetDescr(rel), &isnull);
		Oid			r = isnull ? InvalidOid : DatumGetObjectId(rd);
		int32		id = DatumGetInt32(heap_getattr(tup, Anum_ledgers_ledger_id,
													RelationGetDescr(rel), &isnull));
		MemoryContext old;
		ClLedgerInfo *info;

		/* a dropped ledger (relid NULL) is never found by a relid */
		if (OidIsValid(relid) && r != relid)
			continue;
		if (ledger_id != 0 && id != ledger_id)
			continue;
		old = MemoryContextSwitchTo(mcxt);
		info = palloc0(sizeof(ClLedgerInfo));
		fill_info(info, tup, RelationGetDescr(rel), mcxt);
		result = lappend(result, info);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * The ledger entry of a relation, or NULL when it is not a ledger table.
 * The result points into the cache: valid until the next invalidation.
 */
ClLedgerInfo *
cl_ledger_lookup(Oid relid)
{
	LedgerCacheEntry *entry;
	bool		found;
	List	   *l;
	ClLedgerInfo *fresh;
	char	   *origin;

	if (!OidIsValid(relid))
		return NULL;
	if (ledger_cache == NULL)
		ledger_cache_init();

	entry = hash_search(ledger_cache, &relid, HASH_FIND, NULL);
	if (entry != NULL && entry->valid)
		return entry->is_ledger ? &entry->info : NULL;

	/* scanned in the caller's memory; only the origin is kept */
	l = scan_ledgers(relid, 0, CurrentMemoryContext);
	fresh = l != NIL ? (ClLedgerInfo *) linitial(l) : NULL;
	entry = hash_search(ledger_cache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		entry->is_ledger = false;
		entry->info.origin = NULL;
	}
	origin = entry->info.origin;
	if (fresh != NULL)
	{
		if (origin == NULL || strcmp(origin, fresh->origin) != 0)
		{
			/* a holder may still read the old string: it is left as is */
			origin = MemoryContextStrdup(CacheMemoryContext, fresh->origin);
		}
		entry->info = *fresh;
		entry->info.origin = origin;
	}
	entry->is_ledger = (fresh != NULL);
	entry->valid = true;
	if (l != NIL)
	{
		pfree(fresh->origin);
		list_free_deep(l);
	}
	return entry->is_ledger ? &entry->info : NULL;
}

/*
 * The personal columns of a ledger (README "Erasure"): a List of palloc'd
 * names from consent_ledger.ledgers.personal (NIL when none, or before
 * the 1.3 columns exist), and with subject its subject column (NULL when
 * none).  Read with a fresh snapshot every time: an encoder is built
 * from them, so an edit of the catalog shows in the next verify().
 */
List *
cl_ledger_personal(int32 ledger_id, char **subject)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	AttrNumber	pers_att;
	AttrNumber	subj_att;
	List	   *result = NIL;

	if (subject != NULL)
		*subject = NULL;
	rel = table_open(cl_internal_relid("ledgers"), AccessShareLock);
	pers_att = get_attnum(RelationGetRelid(rel), "personal");
	subj_att = get_attnum(RelationGetRelid(rel), "subject");
	if (pers_att <= 0 || subj_att <= 0)
	{
		table_close(rel, AccessShareLock);
		return NIL;
	}
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		d;

		if (DatumGetInt32(heap_getattr(tup, Anum_ledgers_ledger_id,
									   RelationGetDescr(rel), &isnull)) != ledger_id)
			continue;
		d = heap_getattr(tup, pers_att, RelationGetDescr(rel), &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *enulls;
			int			n;

			deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &enulls, &n);
			for (int i = 0; i < n; i++)
				if (!enulls[i])
					result = lappend(result, TextDatumGetCString(elems[i]));
		}
		d = heap_getattr(tup, subj_att, RelationGetDescr(rel), &isnull);
		if (!isnull && subject != NULL)
			*subject = TextDatumGetCString(d);
		break;
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * The tables of the ledgers with personal columns (live or retired, their
 * tables not dropped), read with a fresh snapshot and no privilege check,
 * for the guard whoever the current role is.
 */
List *
cl_personal_ledger_relids(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	AttrNumber	pers_att;
	List	   *result = NIL;

	rel = table_open(cl_internal_relid("ledgers"), AccessShareLock);
	pers_att = get_attnum(RelationGetRelid(rel), "personal");
	if (pers_att <= 0)
	{
		table_close(rel, AccessShareLock);
		return NIL;
	}
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		pnull;
		bool		rnull;
		Datum		r = heap_getattr(tup, Anum_ledgers_relid, RelationGetDescr(rel), &rnull);

		(void) heap_getattr(tup, pers_att, RelationGetDescr(rel), &pnull);
		if (!pnull && !rnull)
			result = lappend_oid(result, DatumGetObjectId(r));
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return result;
}

/* The ledger with this id (palloc'd in the current context), or NULL. */
ClLedgerInfo *
cl_ledger_by_id(int32 ledger_id)
{
	List	   *l;

	/* ledger ids are positive; 0 would mean "any ledger" to scan_ledgers() */
	if (ledger_id <= 0)
		return NULL;
	l = scan_ledgers(InvalidOid, ledger_id, CurrentMemoryContext);

	return l == NIL ? NULL : (ClLedgerInfo *) linitial(l);
}

/* Every registered ledger, retired ones included, ordered by ledger id. */
static int
ledger_cmp(const ListCell *a, const ListCell *b)
{
	int32		x = ((ClLedgerInfo *) lfirst(a))->ledger_id;
	int32		y = ((ClLedgerInfo *) lfirst(b))->ledger_id;

	return (x > y) - (x < y);
}

List *
cl_ledger_list(void)
{
	List	   *l = scan_ledgers(InvalidOid, 0, CurrentMemoryContext);

	list_sort(l, ledger_cmp);
	return l;
}

/*
 * The first row of consent_ledger.<table> whose first column (an oid or an
 * int4) is key, under the latest snapshot; with text_attnum > 0 also that
 * column's value, palloc'd in mcxt.
 */
static bool
registry_scan(const char *table, uint32 key, int text_attnum,
			  MemoryContext mcxt, char **text_value)
{
	Oid			nsp = cl_schema_oid(true);
	Oid			tab = OidIsValid(nsp) ? get_relname_relid(table, nsp) : InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	bool		found = false;

	if (!OidIsValid(tab))
		return false;
	rel = table_open(tab, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while (!found && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;

		Datum		d1 = heap_getattr(tup, 1, RelationGetDescr(rel), &isnull);

		/* compared as 32 bits: an oid and an int4 are fetched alike */
		if (isnull || DatumGetUInt32(d1) != key)
			continue;
		found = true;
		if (text_attnum > 0 && text_value != NULL)
		{
			Datum		d = heap_getattr(tup, text_attnum, RelationGetDescr(rel), &isnull);

			*text_value = isnull ? NULL :
				TupleDescAttr(RelationGetDescr(rel), text_attnum - 1)->atttypid == NAMEOID ?
				MemoryContextStrdup(mcxt, NameStr(*DatumGetName(d))) :
				MemoryContextStrdup(mcxt, TextDatumGetCString(d));
		}
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Looks up relid in one of the extension's registries (a table whose first
 * column is a regclass: protected, audited, purpose_views), with a heap
 * scan under the latest snapshot -- no privileges needed, so it serves the
 * guard, the policy and the audit whoever the current role is.  Returns
 * whether it is there; with text_attnum > 0 also that column's value (a
 * text or name column), palloc'd in mcxt.
 */
bool
cl_registry_lookup(const char *table, Oid relid, int text_attnum,
				   MemoryContext mcxt, char **text_value)
{
	return registry_scan(table, (uint32) relid, text_attnum, mcxt, text_value);
}

/*
 * Whether a value's text form (its type's output function) is the same in
 * every session: the integer types, oid, numeric, boolean, uuid and the
 * text types print alike whatever the settings; a timestamptz or a float
 * prints per TimeZone, DateStyle, extra_float_digits of the session.
 */
bool
cl_type_prints_alike(Oid typid)
{
	switch (getBaseType(typid))
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case NUMERICOID:
		case BOOLOID:
		case UUIDOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return true;
		default:
			return false;
	}
}

/*
 * A subject's text form is its value cast to text, as the consent policy
 * compares it (protect(): subject::text): a char(n) value without its
 * trailing blanks, every other type's output as it is.  Callers decide
 * once per column whether to trim (cl_type_is_bpchar) and trim each value.
 */
bool
cl_type_is_bpchar(Oid typid)
{
	return getBaseType(typid) == BPCHAROID;
}

void
cl_trim_bpchar(char *s)
{
	size_t		len = strlen(s);

	while (len > 0 && s[len - 1] == ' ')
		len--;
	s[len] = '\0';
}

/* The attribute number of a column of rel by name (not dropped), or 0. */
static AttrNumber
column_attnum(Relation rel, const char *name)
{
	for (int i = 0; i < RelationGetDescr(rel)->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(RelationGetDescr(rel), i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->attnum;
	}
	return InvalidAttrNumber;
}

/*
 * The column whose text form the audit writer records as the subject of
 * every audited version of rel's rows (README "Erasure"): the column a
 * protected table was protected with (consent_ledger.protected), or a
 * ledger's subject column (consent_ledger.ledgers.subject) -- when the
 * table has exactly one of them, or both are the same column, and its
 * text form is the same in every session (cl_type_prints_alike: a writer
 * whose session, or the table owner's trigger, sets DateStyle would
 * otherwise record a text erase_subject() does not look for).
 * InvalidAttrNumber otherwise: the records then name no subject and are
 * found by their row key.
 */
AttrNumber
cl_table_subject_attnum(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	char	   *protected_col = NULL;
	char	   *ledger_col = NULL;
	ClLedgerInfo *info = cl_ledger_lookup(relid);
	AttrNumber	att;

	/* the cache first: most audited tables are neither */
	if (cl_is_protected_cached(relid))
		(void) cl_registry_lookup("protected", relid, Anum_protected_subject_column,
								  CurrentMemoryContext, &protected_col);
	if (info != NULL)
		list_free_deep(cl_ledger_personal(info->ledger_id, &ledger_col));
	if (protected_col != NULL && ledger_col != NULL && strcmp(protected_col, ledger_col) != 0)
		return InvalidAttrNumber;	/* two subject columns: which one is meant */
	if (protected_col == NULL && ledger_col == NULL)
		return InvalidAttrNumber;
	att = column_attnum(rel, protected_col != NULL ? protected_col : ledger_col);
	if (att > 0 && !cl_type_prints_alike(TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid))
		return InvalidAttrNumber;
	return att;
}

/*
 * Opens a table for one of the extension's functions that act on it as its
 * owner would (create_ledger, retire_ledger, protect, unprotect, audit):
 * ERROR if it does not exist or the current role does not own it.
 */
Relation
cl_open_owned_table(Oid relid, LOCKMODE lockmode)
{
	Relation	rel = try_relation_open(relid, lockmode);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
	return rel;
}

/*
 * A retired ledger's table is being dropped (object-access hook, OAT_DROP):
 * remember which ledger it was, the OID and the name its table had, in
 * consent_ledger.dropped_ledgers, and set the ledger's relid in
 * consent_ledger.ledgers to NULL, so that no live-looking reference to the
 * OID is left: a relation that later gets the same OID (OID wraparound, or
 * any relation after a dump and restore, where the OID is only history) is
 * never taken for the ledger's table, and never collides with the UNIQUE
 * relid of a live ledger.  Both writes go in (or not) with the dropping
 * transaction, as ordinary DML run as the extension's owner (these are
 * the extension's tables, not catalogs).  No privilege check: whoever may
 * drop the table records the fact.
 */
void
cl_ledger_note_dropped(Oid relid)
{
	ClLedgerInfo *info = cl_ledger_lookup(relid);
	Oid			nsp = cl_schema_oid(true);
	Oid			tab = OidIsValid(nsp) ? get_relname_relid("dropped_ledgers", nsp) : InvalidOid;
	char	   *relname = get_rel_name(relid);
	char	   *nspname = get_namespace_name(get_rel_namespace(relid));
	int32		ledger_id;
	Oid			owner;

	if (info == NULL || !OidIsValid(tab) || relname == NULL || nspname == NULL ||
		cl_ledger_was_dropped(info->ledger_id))
		return;
	ledger_id = info->ledger_id;
	owner = cl_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_run_as_owner(psprintf("INSERT INTO consent_ledger.dropped_ledgers "
							 "(ledger_id, relid, schema_name, table_name, dropped_at) "
							 "VALUES (%d, %u::pg_catalog.oid, %s, %s, pg_catalog.now())",
							 ledger_id, relid, quote_literal_cstr(nspname),
							 quote_literal_cstr(relname)), owner);
	cl_run_as_owner(psprintf("UPDATE consent_ledger.ledgers SET relid = NULL "
							 "WHERE ledger_id OPERATOR(pg_catalog.=) %d", ledger_id), owner);
	SPI_finish();
	CommandCounterIncrement();
	cl_ledger_cache_reset();
}

/*
 * The most recent drop recorded in consent_ledger.dropped_ledgers (latest
 * snapshot) whose column keycol (1: ledger_id, 2: relid) equals key, the
 * higher ledger id winning a tie; false when there is none.  Its ledger id
 * and table OID go to *ledger_id and *relid.
 */
static bool
latest_drop(int keycol, uint32 key, int32 *ledger_id, Oid *relid)
{
	Oid			nsp = cl_schema_oid(true);
	Oid			tab = OidIsValid(nsp) ? get_relname_relid("dropped_ledgers", nsp) : InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	bool		found = false;
	TimestampTz latest = 0;

	if (!OidIsValid(tab))
		return false;
	rel = table_open(tab, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		idnull,
					rnull,
					atnull;
		Datum		id = heap_getattr(tup, 1, desc, &idnull);
		Datum		r = heap_getattr(tup, 2, desc, &rnull);
		Datum		at = heap_getattr(tup, 5, desc, &atnull);
		TimestampTz t = atnull ? 0 : DatumGetTimestampTz(at);

		if (idnull || rnull ||
			DatumGetUInt32(keycol == 1 ? id : r) != key)
			continue;
		if (!found || t > latest || (t == latest && DatumGetInt32(id) > *ledger_id))
		{
			found = true;
			latest = t;
			*ledger_id = DatumGetInt32(id);
			*relid = DatumGetObjectId(r);
		}
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The OID a dropped ledger's table had, from its most recent drop recorded
 * in consent_ledger.dropped_ledgers (latest snapshot), or InvalidOid.
 */
Oid
cl_ledger_dropped_relid(int32 ledger_id)
{
	int32		id;
	Oid			relid;

	return latest_drop(1, (uint32) ledger_id, &id, &relid) ? relid : InvalidOid;
}

/*
 * The ledger a regclass argument names (palloc'd, or pointing into the
 * cache for a live ledger), or NULL.  First the live ledger whose table
 * has this OID; then, when no relation has this OID now, the dropped
 * ledger whose table had it (the most recent drop).  An OID that names a
 * relation always means that relation: a dropped ledger whose old OID a
 * new relation took (after a dump and restore, or OID wraparound) is not
 * reached by that OID; verify() without argument still verifies it and its
 * receipts are verified by origin (README "Retired and dropped ledgers").
 */
ClLedgerInfo *
cl_ledger_resolve(Oid relid)
{
	ClLedgerInfo *info;
	int32		id;
	Oid			old;

	if (!OidIsValid(relid))
		return NULL;
	info = cl_ledger_lookup(relid);
	if (info != NULL)
		return info;
	if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)) ||
		!latest_drop(2, (uint32) relid, &id, &old))
		return NULL;
	info = cl_ledger_by_id(id);
	/* only a ledger that is dropped (relid NULL) is reached by its history */
	if (info != NULL && OidIsValid(info->relid))
		return NULL;
	return info;
}

/*
 * Whether the table of this ledger was dropped (recorded in
 * consent_ledger.dropped_ledgers, seen under the latest snapshot).
 */
bool
cl_ledger_was_dropped(int32 ledger_id)
{
	return registry_scan("dropped_ledgers", (uint32) ledger_id, 0, NULL, NULL);
}

/* See CL_LOCK_SEAL_ROUND in consent_ledger.h. */
void
cl_lock_extension(int which, LOCKMODE mode)
{
	LockDatabaseObject(ExtensionRelationId, get_extension_oid(CL_EXTENSION, false), which, mode);
}

/*
 * A protected table, purpose view or audited table is being dropped:
 * remove it from the registries, so that its OID, if ever reused, names
 * nothing protected.  Called from the object-access hook at OAT_DROP.
 */
void
cl_registry_forget(Oid relid)
{
	static const char *const registries[] = {"protected", "purpose_views", "audited"};
	Oid			nsp = cl_schema_oid(true);

	if (!OidIsValid(nsp))
		return;
	for (int i = 0; i < lengthof(registries); i++)
	{
		Oid			tab = get_relname_relid(registries[i], nsp);
		Relation	rel;
		TableScanDesc scan;
		HeapTuple	tup;
		Snapshot	snap;

		if (!OidIsValid(tab) || tab == relid)
			continue;
		rel = table_open(tab, RowExclusiveLock);
		snap = RegisterSnapshot(GetLatestSnapshot());
		scan = table_beginscan(rel, snap, 0, NULL);
		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;

			if (DatumGetObjectId(heap_getattr(tup, 1, RelationGetDescr(rel), &isnull)) == relid)
				CatalogTupleDelete(rel, &tup->t_self);
		}
		table_endscan(scan);
		UnregisterSnapshot(snap);
		table_close(rel, RowExclusiveLock);
	}
}
