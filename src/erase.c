/*-------------------------------------------------------------------------
 * erase.c
 *	  Right to erasure (README "Erasure"): ledgers with personal columns,
 *	  create_ledger(relation, personal, subject), erase_subject() and
 *	  erased().
 *
 * A personal column enters its row's leaf only as a salted commitment
 * (encode.c, version 3), so erasing the value and its salt leaves the
 * leaf -- and every hash, checkpoint, receipt and proof above it --
 * unchanged.  Ledgers refuse UPDATE to every role; erasure is not an
 * UPDATE: erase_subject() rewrites each affected ledger into a new heap,
 * as CLUSTER does (rewriteheap.c keeps every tuple's visibility
 * information, so the rewrite is safe for concurrent snapshots), with the
 * subject's rows redacted on the way, and the new heap takes the table's
 * place.  The old heap, its TOAST table and its indexes are dropped at
 * commit: their files are truncated at commit (and unlinked at the next
 * checkpoint), on a standby when it replays the commit; no dead tuple
 * version is left for VACUUM to find later.  The only path to that
 * rewrite is erase_subject(), which only a superuser or a member of
 * consent_ledger_admin may run; no guard trigger fires (no UPDATE is
 * executed), and nothing else in the extension calls it.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/rewriteheap.h"
#include "access/stratnum.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/genam.h"
#include "catalog/heap.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_statistic_ext_data.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "commands/cluster.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_create_ledger_personal);
PG_FUNCTION_INFO_V1(cl_erase_subject);
PG_FUNCTION_INFO_V1(cl_erased);

/* the erasure ledger, made on first use like the consent ledger (consent.c) */
static const char *const create_erasures_sql[] = {
	"CREATE TABLE consent_ledger.erasures ("
	" erased_at pg_catalog.timestamptz NOT NULL,"
	" erased_by pg_catalog.text NOT NULL,"
	" reason pg_catalog.text NOT NULL,"
	" ledger pg_catalog.int4,"
	" relation pg_catalog.text,"
	" rows pg_catalog.int8 NOT NULL,"
	" purposes_withdrawn pg_catalog.int4 NOT NULL)",
	"COMMENT ON TABLE consent_ledger.erasures IS "
	"'the erasure ledger: every erase_subject() call, per ledger, append-only, hash-chained, signed'",
	"REVOKE ALL ON consent_ledger.erasures FROM PUBLIC",
	"GRANT SELECT ON consent_ledger.erasures TO consent_ledger_auditor, consent_ledger_admin",
	NULL
};

/*
 * The SQL statement that records a new ledger's personal columns and
 * subject column in consent_ledger.ledgers (run by cl_make_ledger_personal
 * as the extension's owner).
 */
char *
cl_erase_register_sql(int32 ledger_id, List *personal, const char *subject)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "UPDATE consent_ledger.ledgers SET personal = ARRAY[");
	foreach(lc, personal)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_literal_cstr(lfirst(lc)));
	appendStringInfo(&buf, "]::pg_catalog.text[], subject = %s "
					 "WHERE ledger_id OPERATOR(pg_catalog.=) %d",
					 subject != NULL ? quote_literal_cstr(subject) : "NULL", ledger_id);
	return buf.data;
}

/* ---------------------------------------------------------------------
 * create_ledger(relation, personal name[], subject name)
 * --------------------------------------------------------------------- */

static AttrNumber
check_column(Relation rel, const char *name, const char *what)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);
	Form_pg_attribute att;

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						name, RelationGetRelationName(rel)),
				 errdetail("The %s column must be a column of the table.", what)));
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	if (strncmp(name, CL_COLUMN_PREFIX, strlen(CL_COLUMN_PREFIX)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("table \"%s\" already has a column \"%s\"",
						RelationGetRelationName(rel), name),
				 errdetail("Column names beginning with \"%s\" are reserved for the ledger's own columns.",
						   CL_COLUMN_PREFIX),
				 errhint("Rename the column before calling create_ledger().")));
	if (att->attgenerated != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("generated column \"%s\" cannot be a %s column", name, what),
				 errdetail("Erasure sets personal values to NULL; a generated column's value is computed from others."),
				 errhint("Mark the columns it is computed from as personal instead.")));
	return attnum;
}

/*
 * Unique and exclusion indexes in which erased rows (personal values NULL,
 * the salt an erasure record) could collide where the rows did not: a key
 * with NULLS NOT DISTINCT over a personal column, or an expression or a
 * predicate reading one or the salt (coalesce(email, ''), WHERE email IS
 * NULL).  The rewrite rebuilds them, and a dump would not restore.  Plain
 * keys are fine: NULLs are distinct, erasure records differ.
 */
static void
refuse_indexes(Relation rel, Bitmapset *pset)
{
	ListCell   *lc;
	List	   *indexes = RelationGetIndexList(rel);

	foreach(lc, indexes)
	{
		Relation	irel = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = irel->rd_index;
		Bitmapset  *cols = NULL;
		bool		bad = false;

		if (ind->indisunique || ind->indisexclusion)
		{
			if (ind->indnullsnotdistinct)
				for (int i = 0; i < ind->indnkeyatts; i++)
					if (ind->indkey.values[i] > 0 &&
						bms_is_member(ind->indkey.values[i] - FirstLowInvalidHeapAttributeNumber, pset))
						bad = true;
			pull_varattnos((Node *) RelationGetIndexExpressions(irel), 1, &cols);
			pull_varattnos((Node *) RelationGetIndexPredicate(irel), 1, &cols);
			if (bms_overlap(cols, pset))
				bad = true;
		}
		if (bad)
		{
			char	   *name = pstrdup(RelationGetRelationName(irel));

			index_close(irel, AccessShareLock);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("unique index \"%s\" of \"%s\" would let erased rows collide", name,
							RelationGetRelationName(rel)),
					 errdetail("Erasure sets a subject's personal values to NULL and replaces the salt by an erasure record; with NULLS NOT DISTINCT, or an expression or predicate reading them, rows that differed may then be equal in the index."),
					 errhint("Index the personal columns plainly (NULLs are distinct), or leave them out of the expression and the predicate.")));
		}
		index_close(irel, AccessShareLock);
	}
	list_free(indexes);
}

/*
 * A partition key or partition bound over a personal column or the salt:
 * an erased row would no longer belong in its partition (a dump would not
 * restore it).
 */
static void
refuse_partition_bounds(Relation rel, Bitmapset *pset)
{
	Bitmapset  *cols = NULL;

	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		PartitionKey key = RelationGetPartitionKey(rel);

		for (int i = 0; i < key->partnatts; i++)
			if (key->partattrs[i] > 0)
				cols = bms_add_member(cols, key->partattrs[i] - FirstLowInvalidHeapAttributeNumber);
		pull_varattnos((Node *) key->partexprs, 1, &cols);
	}
	if (rel->rd_rel->relispartition)
		pull_varattnos((Node *) RelationGetPartitionQual(rel), 1, &cols);
	if (bms_overlap(cols, pset))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("\"%s\" is partitioned by a personal column, or is a partition of a table that is",
						RelationGetRelationName(rel)),
				 errdetail("Erasure sets a subject's personal values to NULL: an erased row would no longer belong in its partition."),
				 errhint("Partition by columns that are not personal.")));
}

/*
 * Foreign keys a personal column is part of (pset: the personal columns'
 * attribute numbers, offset by FirstLowInvalidHeapAttributeNumber).  With
 * MATCH FULL a key whose columns are not all NULL or all set is refused,
 * so erasure, which sets only the personal ones NULL, would leave rows a
 * dump does not restore.  A key of another table referencing a personal
 * column would point at a value erasure removes.
 */
static void
refuse_foreign_keys(Relation rel, Bitmapset *pset, AttrNumber salt)
{
	ListCell   *lc;

	foreach(lc, RelationGetFKeyList(rel))
	{
		ForeignKeyCacheInfo *fk = lfirst(lc);
		HeapTuple	ctup;
		bool		full;

		ctup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(fk->conoid));
		if (!HeapTupleIsValid(ctup))
			continue;
		full = ((Form_pg_constraint) GETSTRUCT(ctup))->confmatchtype == FKCONSTR_MATCH_FULL;
		ReleaseSysCache(ctup);
		for (int i = 0; i < fk->nkeys; i++)
			if ((full && bms_is_member(fk->conkey[i] - FirstLowInvalidHeapAttributeNumber, pset)) ||
				(salt > 0 && fk->conkey[i] == salt))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("foreign key \"%s\" of \"%s\" is MATCH FULL over a personal column, or over the salt",
								get_constraint_name(fk->conoid), RelationGetRelationName(rel)),
						 errdetail("Erasure sets a subject's personal values to NULL and keeps the others, and replaces the salt by an erasure record."),
						 errhint("Use MATCH SIMPLE, and leave ledger_salt out of the key.")));
	}
}

/*
 * Foreign keys of other tables referencing rel's personal columns or its
 * salt (pset), for create_ledger() and a partition becoming a ledger:
 * keys added later are checked on the referencing table
 * (cl_refuse_foreign_keys_to_personal).
 */
void
cl_refuse_referencing_foreign_keys(Relation rel, List *personal)
{
	Bitmapset  *pset = NULL;
	ListCell   *lc;
	Relation	cat;
	SysScanDesc scan;
	HeapTuple	tup;

	foreach(lc, personal)
	{
		AttrNumber	att = get_attnum(RelationGetRelid(rel), (const char *) lfirst(lc));

		if (att > 0)
			pset = bms_add_member(pset, att - FirstLowInvalidHeapAttributeNumber);
	}
	if (get_attnum(RelationGetRelid(rel), CL_SALT_COLUMN) > 0)
		pset = bms_add_member(pset, get_attnum(RelationGetRelid(rel), CL_SALT_COLUMN) -
							  FirstLowInvalidHeapAttributeNumber);
	/* (pg_constraint has no index on confrelid) */
	cat = table_open(ConstraintRelationId, AccessShareLock);
	scan = systable_beginscan(cat, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint c = (Form_pg_constraint) GETSTRUCT(tup);

		if (c->contype == CONSTRAINT_FOREIGN && c->confrelid == RelationGetRelid(rel))
			cl_refuse_foreign_key_to_personal(c->oid, RelationGetRelid(rel), pset);
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);
}

/*
 * A foreign key (conoid) referencing relid, a table whose personal
 * columns are pset: refused when it references one of them.
 */
void
cl_refuse_foreign_key_to_personal(Oid conoid, Oid relid, Bitmapset *pset)
{
	HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	bool		isnull;
	Datum		d;
	ArrayType  *arr;
	int16	   *keys;
	int			n;

	if (!HeapTupleIsValid(tup))
		return;
	d = SysCacheGetAttr(CONSTROID, tup, Anum_pg_constraint_confkey, &isnull);
	if (isnull)
	{
		ReleaseSysCache(tup);
		return;
	}
	arr = DatumGetArrayTypeP(d);
	n = ARR_DIMS(arr)[0];
	keys = (int16 *) ARR_DATA_PTR(arr);
	for (int i = 0; i < n; i++)
		if (bms_is_member(keys[i] - FirstLowInvalidHeapAttributeNumber, pset))
		{
			Oid			from = ((Form_pg_constraint) GETSTRUCT(tup))->conrelid;

			ReleaseSysCache(tup);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("foreign key \"%s\" of \"%s\" references a personal column of \"%s\"",
							get_constraint_name(conoid), get_rel_name(from), get_rel_name(relid)),
					 errdetail("Erasure sets a subject's personal values to NULL: the referencing rows would point at a value that is gone, and a dump would not restore."),
					 errhint("Reference a key that is not personal (an id), and keep the personal value in one place.")));
		}
	ReleaseSysCache(tup);
}

/*
 * After CREATE TABLE or ALTER TABLE of any table (guard.c): its foreign
 * keys may not reference a personal column of a ledger.
 */
void
cl_refuse_foreign_keys_to_personal(Oid relid)
{
	Relation	rel;
	ListCell   *lc;

	if (!OidIsValid(relid) || get_rel_relkind(relid) == '\0')
		return;
	rel = relation_open(relid, AccessShareLock);
	foreach(lc, RelationGetFKeyList(rel))
	{
		ForeignKeyCacheInfo *fk = lfirst(lc);
		ClLedgerInfo *info = cl_ledger_lookup(fk->confrelid);
		Bitmapset  *pset = NULL;
		List	   *personal;
		char	   *subject;
		ListCell   *lc2;

		/* a ledger's, or a partitioned ledger's (its guard's arguments) */
		if (info != NULL && info->encoding >= CL_ENCODING_V3)
			personal = cl_ledger_personal(info->ledger_id, NULL);
		else if (info == NULL && cl_is_partitioned_ledger(fk->confrelid))
			personal = cl_partitioned_ledger_personal(fk->confrelid, &subject);
		else
			continue;
		foreach(lc2, personal)
		{
			AttrNumber	att = get_attnum(fk->confrelid, (const char *) lfirst(lc2));

			if (att > 0)
				pset = bms_add_member(pset, att - FirstLowInvalidHeapAttributeNumber);
		}
		if (get_attnum(fk->confrelid, CL_SALT_COLUMN) > 0)
			pset = bms_add_member(pset, get_attnum(fk->confrelid, CL_SALT_COLUMN) -
								  FirstLowInvalidHeapAttributeNumber);
		cl_refuse_foreign_key_to_personal(fk->conoid, fk->confrelid, pset);
	}
	relation_close(rel, AccessShareLock);
}

/*
 * What erasure needs of a table with personal columns (attack review R2):
 * erasure writes NULL into them, so none may be NOT NULL or in a CHECK
 * constraint (stored rows would violate a validated constraint and the
 * dump would not restore), and no stored generated column may be computed
 * from them (it would keep the erased value, in the row and in the leaf).
 * A whole-row reference counts as a reference to every column.  Called by
 * create_ledger() and after every ALTER TABLE of a version 3 ledger.
 */
void
cl_check_personal_columns(Relation rel, List *personal)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Bitmapset  *pset = NULL;
	ListCell   *lc;

	foreach(lc, personal)
	{
		AttrNumber	attnum = get_attnum(RelationGetRelid(rel), (char *) lfirst(lc));

		if (attnum <= 0)
			continue;
		if (TupleDescAttr(desc, attnum - 1)->attnotnull)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("personal column \"%s\" of \"%s\" is NOT NULL", (char *) lfirst(lc),
							RelationGetRelationName(rel)),
					 errdetail("Erasure sets a subject's personal values to NULL."),
					 errhint("ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL first.")));
		if (DomainHasConstraints(TupleDescAttr(desc, attnum - 1)->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("personal column \"%s\" of \"%s\" has a domain type with constraints",
							(char *) lfirst(lc), RelationGetRelationName(rel)),
					 errdetail("Erasure sets a subject's personal values to NULL; the domain's NOT NULL or CHECK constraint would not hold for erased rows."),
					 errhint("Give the column the domain's base type, or drop the domain's constraints.")));
		pset = bms_add_member(pset, attnum - FirstLowInvalidHeapAttributeNumber);
	}
	refuse_foreign_keys(rel, pset, get_attnum(RelationGetRelid(rel), CL_SALT_COLUMN));
	/* the salt too: erasure replaces it by a longer erasure record */
	if (get_attnum(RelationGetRelid(rel), CL_SALT_COLUMN) > 0)
		pset = bms_add_member(pset, get_attnum(RelationGetRelid(rel), CL_SALT_COLUMN) -
							  FirstLowInvalidHeapAttributeNumber);
	pset = bms_add_member(pset, 0 - FirstLowInvalidHeapAttributeNumber);
	refuse_indexes(rel, pset);
	refuse_partition_bounds(rel, pset);
	if (desc->constr != NULL)
		for (int i = 0; i < desc->constr->num_check; i++)
		{
			Bitmapset  *cols = NULL;

			pull_varattnos(stringToNode(desc->constr->check[i].ccbin), 1, &cols);
			if (bms_overlap(cols, pset))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("check constraint \"%s\" of \"%s\" reads a personal column or the salt",
								desc->constr->check[i].ccname, RelationGetRelationName(rel)),
						 errdetail("Erasure sets a subject's personal values to NULL and replaces the salt by an erasure record; the constraint would no longer hold for erased rows."),
						 errhint("Drop the constraint, or constrain other columns only.")));
		}
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *expr;
		Bitmapset  *cols = NULL;

		if (att->attisdropped || att->attgenerated == '\0')
			continue;
		expr = build_column_default(rel, att->attnum);
		if (expr == NULL)
			continue;
		pull_varattnos(expr, 1, &cols);
		if (bms_overlap(cols, pset))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("generated column \"%s\" of \"%s\" is computed from a personal column",
							NameStr(att->attname), RelationGetRelationName(rel)),
					 errdetail("Erasure could not reach it: it would keep the erased value, in the row and in its leaf."),
					 errhint("Drop the generated column, or compute it in a view.")));
	}
}

/*
 * consent_ledger.create_ledger(relation regclass, personal name[], subject name)
 *
 * create_ledger() of an ordinary or partitioned table, with personal
 * columns: the ledger (every partition's) encodes them through salted
 * commitments (encoding version 3) and gets the column ledger_salt;
 * erase_subject() finds a subject's rows by the subject column (compared
 * by its text form).
 */
Datum
cl_create_ledger_personal(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Relation	rel;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *enulls;
	int			n;
	List	   *personal = NIL;
	char	   *subject;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("create_ledger() with personal columns needs a relation, personal columns and a subject column"),
				 errhint("Call create_ledger(relation) for a ledger without personal columns.")));
	relid = PG_GETARG_OID(0);
	arr = PG_GETARG_ARRAYTYPE_P(1);
	subject = NameStr(*PG_GETARG_NAME(2));

	rel = cl_open_ledger_candidate(relid);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("personal columns must be a one-dimensional array"),
				 errhint("Give the names as ARRAY['column', ...].")));
	deconstruct_array(arr, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &elems, &enulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no personal columns given"),
				 errhint("Call create_ledger(relation) for a ledger without personal columns.")));
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		ListCell   *lc;

		if (enulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a personal column name is NULL"),
					 errhint("Name every personal column.")));
		name = pstrdup(NameStr(*DatumGetName(elems[i])));
		(void) check_column(rel, name, "personal");
		foreach(lc, personal)
			if (strcmp(lfirst(lc), name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("column \"%s\" is named twice as personal", name),
						 errhint("Name each personal column once.")));
		personal = lappend(personal, name);
	}
	(void) check_column(rel, subject, "subject");
	cl_check_personal_columns(rel, personal);
	cl_refuse_referencing_foreign_keys(rel, personal);
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		/* every partition is checked as it becomes a ledger */
		relation_close(rel, NoLock);
		cl_make_partitioned_ledger_personal(relid, personal, pstrdup(subject));
		PG_RETURN_VOID();
	}
	relation_close(rel, NoLock);
	cl_make_user_ledger(relid, personal, pstrdup(subject));
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * erase_subject(subject text, reason text)
 * --------------------------------------------------------------------- */

/*
 * How a ledger's rows of a subject are found.  Usually by the text form
 * of the ledger's subject column (a char(n) one without trailing blanks,
 * as the consent policy's ::text has it).  An audit ledger's record is the
 * subject's when it names the subject as the subject of the audited row
 * before or after the change (old_subject, new_subject: written by the
 * audit trigger where the table had one subject column printing alike, in
 * audit ledgers made by 1.5), or by its subject column row_key, the key
 * of the audited row as "(columns)=(values)" (cl_audit_row_key()): when
 * its relid is a table whose subject column is known -- a ledger's
 * (consent_ledger.ledgers.subject) or a protected table's
 * (consent_ledger.protected.subject_column) -- and its row_key is the key
 * of a row of that table whose subject column is the subject (any version
 * of the row still in the table), or "(that column)=(subject)".
 */
typedef struct AuditKey
{
	Oid			relid;
	const char *key;
} AuditKey;

typedef struct SubjectMatch
{
	const char *subject;
	AttrNumber	subj;
	FmgrInfo	out;
	bool		trim;			/* char(n) subject column: compared as ::text */
	bool		audit;
	AttrNumber	relid_att;		/* audit: the relid column */
	AttrNumber	subject_atts[2];	/* audit: old_subject, new_subject, or 0 */
	HTAB	   *keys;			/* audit: (relid, row_key) of the subject's rows */
} SubjectMatch;

static HTSV_Result tuple_state(TableScanDesc scan, HeapTuple tup, TransactionId oldest_xmin);

static uint32
audit_key_hash(const void *key, Size keysize)
{
	const AuditKey *k = key;

	return hash_combine(hash_bytes_uint32(k->relid),
						hash_bytes((const unsigned char *) k->key, (int) strlen(k->key)));
}

static int
audit_key_match(const void *key1, const void *key2, Size keysize)
{
	const AuditKey *a = key1;
	const AuditKey *b = key2;

	return (a->relid == b->relid && strcmp(a->key, b->key) == 0) ? 0 : 1;
}

/* A hash table of AuditKey-keyed entries of entrysize bytes in cxt. */
static HTAB *
audit_key_table(const char *name, Size entrysize, MemoryContext cxt)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(AuditKey);
	ctl.entrysize = entrysize;
	ctl.hash = audit_key_hash;
	ctl.match = audit_key_match;
	ctl.hcxt = cxt;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* Adds (relid, key) to the audit keys; key is copied into their context. */
static void
audit_key_add(HTAB *keys, MemoryContext cxt, Oid relid, const char *key)
{
	AuditKey	k;
	bool		found;

	k.relid = relid;
	k.key = key;
	if (hash_search(keys, &k, HASH_FIND, NULL) != NULL)
		return;
	k.key = MemoryContextStrdup(cxt, key);
	(void) hash_search(keys, &k, HASH_ENTER, &found);
}

static bool
row_is_subject(HeapTuple tup, TupleDesc desc, SubjectMatch *m)
{
	bool		isnull;
	Datum		v;
	char	   *s;
	bool		result = false;

	/*
	 * An audit record naming the subject (old_subject, new_subject) is the
	 * subject's; one that does not is still looked up by its key below: the
	 * table's subject column may have changed since the record was written
	 * (protect() again with another column, a ledger protected later).
	 */
	for (int i = 0; m->audit && i < 2; i++)
	{
		if (m->subject_atts[i] <= 0)
			continue;
		v = heap_getattr(tup, m->subject_atts[i], desc, &isnull);
		if (isnull)
			continue;
		s = TextDatumGetCString(v);
		result = strcmp(s, m->subject) == 0;
		pfree(s);
		if (result)
			return true;
	}
	v = heap_getattr(tup, m->subj, desc, &isnull);
	if (isnull)
		return false;
	s = OutputFunctionCall(&m->out, v);
	if (!m->audit)
	{
		if (m->trim)
			cl_trim_bpchar(s);
		result = strcmp(s, m->subject) == 0;
	}
	else
	{
		Datum		r;
		AuditKey	k;

		if (m->relid_att <= 0)
		{
			pfree(s);
			return false;
		}
		r = heap_getattr(tup, m->relid_att, desc, &isnull);

		k.relid = DatumGetObjectId(r);
		k.key = s;
		result = !isnull && m->keys != NULL && hash_search(m->keys, &k, HASH_FIND, NULL) != NULL;
	}
	pfree(s);
	return result;
}

/*
 * Whether a tuple's subject or key columns are stored out of line: of a
 * tuple dead to everyone, the TOAST values may already be vacuumed away.
 */
static bool
holds_external(HeapTuple tup, TupleDesc desc, Bitmapset *attrs, AttrNumber subj)
{
	int			i = -1;

	while (true)
	{
		AttrNumber	att;
		bool		isnull;
		Datum		v;

		if (i == -2)
			break;
		if ((i = bms_next_member(attrs, i)) >= 0)
			att = i + FirstLowInvalidHeapAttributeNumber;
		else
		{
			att = subj;
			i = -2;
		}
		if (att <= 0 || TupleDescAttr(desc, att - 1)->attlen != -1)
			continue;
		v = heap_getattr(tup, att, desc, &isnull);
		if (!isnull && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(v)))
			return true;
	}
	return false;
}

/* Whether a tuple's insert committed (it was a row once). */
static bool
inserted(HeapTuple tup)
{
	HeapTupleHeader t = tup->t_data;

	if (HeapTupleHeaderXminCommitted(t))
		return true;			/* also frozen */
	if (HeapTupleHeaderXminInvalid(t))
		return false;
	return TransactionIdDidCommit(HeapTupleHeaderGetRawXmin(t));
}

/*
 * The start of a row_key, "(names)=(", with the key columns' names as
 * quote_identifier() gives them with quote_all_identifiers off
 * (cl_erase_subject() keeps it off) or, all_quoted, as it gives them with
 * it on.
 */
static char *
key_names(Relation rel, Bitmapset *attrs, bool all_quoted)
{
	StringInfoData b;
	int			i = -1;
	bool		first = true;

	initStringInfo(&b);
	appendStringInfoChar(&b, '(');
	while ((i = bms_next_member(attrs, i)) >= 0)
	{
		AttrNumber	att = i + FirstLowInvalidHeapAttributeNumber;
		const char *name;

		if (att <= 0)
			continue;
		name = NameStr(TupleDescAttr(RelationGetDescr(rel), att - 1)->attname);
		if (!first)
			appendStringInfoChar(&b, ',');
		first = false;
		if (all_quoted)
		{
			appendStringInfoChar(&b, '"');
			for (const char *c = name; *c; c++)
			{
				if (*c == '"')
					appendStringInfoChar(&b, '"');
				appendStringInfoChar(&b, *c);
			}
			appendStringInfoChar(&b, '"');
		}
		else
			appendStringInfoString(&b, quote_identifier(name));
	}
	appendStringInfoString(&b, ")=(");
	return b.data;
}

/* A key of the subject's rows in one table, and whether another's row has it too */
typedef struct TableKey
{
	AuditKey	k;
	bool		shared;
} TableKey;

/*
 * The keys of a table's rows of the subject, as the audit writer records
 * them (cl_audit_row_key()): of every version of a row still in the table
 * whose insert committed (a row updated or deleted and not yet vacuumed
 * counts) and whose subject column's text form is the subject.  Not a
 * version whose insert aborted or is in progress (a writer could plant
 * the subject's name on another's key), nor one dead to everyone whose
 * subject or key is stored out of line (its TOAST may already be vacuumed
 * away).  Read before any ledger is rewritten (a subject column can be
 * personal).  A key that a version of another subject's
 * row has too (a row moved from one subject to another, a key reused, two
 * keys printing alike) is left out: which subject a record of it is about
 * cannot be told.  Not needed when the key is the subject column itself.
 */
/*
 * Whether a key's text names one row whatever the session: each column's
 * output does not depend on settings (a timestamptz or a float key prints
 * per TimeZone, DateStyle, extra_float_digits of the audited session,
 * which the erasing session cannot know), and, with several columns, no
 * column is text-like (values are joined by a bare comma: ('a,b','c') and
 * ('a','b,c') print alike).  Keys of other types are not searched.
 */
static bool
key_prints_alike(Relation rel, Bitmapset *attrs)
{
	int			i = -1;
	int			n = bms_num_members(attrs);

	while ((i = bms_next_member(attrs, i)) >= 0)
	{
		AttrNumber	att = i + FirstLowInvalidHeapAttributeNumber;
		Oid			type;

		if (att <= 0)
			return false;
		type = getBaseType(TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid);
		if (!cl_type_prints_alike(type))
			return false;
		if (n > 1 && (type == TEXTOID || type == VARCHAROID || type == BPCHAROID))
			return false;
	}
	return true;
}

static void
audit_keys_of_table(HTAB *result, const char *subject, MemoryContext cxt, Oid relid,
					const char *subject_col)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);
	TupleDesc	desc;
	AttrNumber	subj;
	Bitmapset  *attrs;
	FmgrInfo	out;
	Oid			outfn;
	bool		isvarlena;
	TransactionId oldest_xmin;
	MemoryContext tabcxt;
	MemoryContext rowcxt;
	MemoryContext old;
	HTAB	   *keys;
	HASH_SEQ_STATUS seq;
	TableKey   *e;
	char	   *plain;
	char	   *quoted;
	bool		trim;

	if (rel == NULL)
		return;
	desc = RelationGetDescr(rel);
	subj = get_attnum(relid, subject_col);
	attrs = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	if (bms_is_empty(attrs))
		attrs = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
	/* (a key that is the subject column is "(column)=(subject)", unless char(n) pads it) */
	if (rel->rd_rel->relkind != RELKIND_RELATION || subj <= 0 || bms_is_empty(attrs) ||
		(bms_num_members(attrs) == 1 &&
		 bms_is_member(subj - FirstLowInvalidHeapAttributeNumber, attrs) &&
		 !cl_type_is_bpchar(TupleDescAttr(desc, subj - 1)->atttypid)) ||
		!key_prints_alike(rel, attrs))
	{
		relation_close(rel, AccessShareLock);
		return;
	}
	getTypeOutputInfo(TupleDescAttr(desc, subj - 1)->atttypid, &outfn, &isvarlena);
	fmgr_info(outfn, &out);
	trim = cl_type_is_bpchar(TupleDescAttr(desc, subj - 1)->atttypid);
	oldest_xmin = GetOldestNonRemovableTransactionId(rel);
	tabcxt = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger erasure table keys",
								   ALLOCSET_DEFAULT_SIZES);
	rowcxt = AllocSetContextCreate(tabcxt, "consent_ledger erasure row", ALLOCSET_DEFAULT_SIZES);
	keys = audit_key_table("consent_ledger erasure table keys", sizeof(TableKey), tabcxt);

	/* pass 1: the subject's keys; pass 2 (only if any): who else has them */
	for (int pass = 1; pass <= 2; pass++)
	{
		TableScanDesc scan;
		HeapTuple	tup;

		if (pass == 2 && hash_get_num_entries(keys) == 0)
			break;
		scan = table_beginscan(rel, SnapshotAny, 0, NULL);
		while ((tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			Datum		v;
			bool		mine;
			char	   *key;

			CHECK_FOR_INTERRUPTS();
			if (!inserted(tup) || heap_attisnull(tup, subj, desc) ||
				(tuple_state(scan, tup, oldest_xmin) != HEAPTUPLE_LIVE &&
				 holds_external(tup, desc, attrs, subj)))
				continue;
			old = MemoryContextSwitchTo(rowcxt);
			v = heap_getattr(tup, subj, desc, &isnull);
			if (!isnull)
			{
				char	   *text = OutputFunctionCall(&out, v);

				if (trim)
					cl_trim_bpchar(text);
				mine = strcmp(text, subject) == 0;
			}
			else
				mine = false;
			if (mine == (pass == 1) && (key = cl_audit_row_key(rel, tup)) != NULL &&
				strlen(key) <= CL_AUDIT_STR_MAX)
			{
				AuditKey	k;

				k.relid = relid;
				k.key = key;
				if (pass == 1)
				{
					if (hash_search(keys, &k, HASH_FIND, NULL) == NULL)
					{
						k.key = MemoryContextStrdup(tabcxt, key);
						e = hash_search(keys, &k, HASH_ENTER, NULL);
						e->shared = false;
					}
				}
				else if ((e = hash_search(keys, &k, HASH_FIND, NULL)) != NULL)
					e->shared = true;
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
		}
		table_endscan(scan);
	}
	plain = key_names(rel, attrs, false);
	quoted = key_names(rel, attrs, true);
	hash_seq_init(&seq, keys);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (!e->shared)
		{
			audit_key_add(result, cxt, relid, e->k.key);
			/* as a session with quote_all_identifiers on recorded it */
			if (strcmp(plain, quoted) != 0 && strncmp(e->k.key, plain, strlen(plain)) == 0)
				audit_key_add(result, cxt, relid,
							  psprintf("%s%s", quoted, e->k.key + strlen(plain)));
		}
	MemoryContextDelete(tabcxt);
	relation_close(rel, NoLock);
}

/*
 * The audit ledger's records of the subject, as (relid, row_key): for every
 * table whose subject column is known, "(that column)=(subject)" and the
 * keys of the subject's rows (audit_keys_of_table).
 */
static HTAB *
build_audit_keys(const char *subject)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(subject)};
	MemoryContext cxt = CurrentMemoryContext;
	List	   *relids = NIL;
	List	   *columns = NIL;
	ListCell   *lc1;
	ListCell   *lc2;
	HTAB	   *keys;

	keys = audit_key_table("consent_ledger erasure audit keys", sizeof(AuditKey), cxt);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the key as recorded with quote_all_identifiers off (kept off here) and on */
	if (SPI_execute_with_args("SELECT relid::pg_catalog.oid, s, "
							  "'(' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s) "
							  "OPERATOR(pg_catalog.||) ')=(' OPERATOR(pg_catalog.||) $1 OPERATOR(pg_catalog.||) ')', "
							  "'(\"' OPERATOR(pg_catalog.||) pg_catalog.replace(s, '\"', '\"\"') "
							  "OPERATOR(pg_catalog.||) '\")=(' OPERATOR(pg_catalog.||) $1 OPERATOR(pg_catalog.||) ')' "
							  "FROM (SELECT relid, subject::pg_catalog.text FROM consent_ledger.ledgers "
							  "      WHERE subject IS NOT NULL AND relid IS NOT NULL "
							  "      UNION ALL "
							  "      SELECT relid, subject_column::pg_catalog.text FROM consent_ledger.protected) t(relid, s)",
							  1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the subject columns");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		n1,
					n2,
					n3;
		Datum		r = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &n1);
		Datum		c = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &n2);
		Datum		k = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &n3);
		bool		n4;
		Datum		q = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4, &n4);
		MemoryContext old;

		if (n1 || n2 || n3 || n4)
			continue;
		old = MemoryContextSwitchTo(cxt);
		audit_key_add(keys, cxt, DatumGetObjectId(r), TextDatumGetCString(k));
		audit_key_add(keys, cxt, DatumGetObjectId(r), TextDatumGetCString(q));
		relids = lappend_oid(relids, DatumGetObjectId(r));
		columns = lappend(columns, TextDatumGetCString(c));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	/* tables keyed by something else than their subject column */
	forboth(lc1, relids, lc2, columns)
	{
		Oid			relid = lfirst_oid(lc1);

		if (get_rel_namespace(relid) == cl_schema_oid(true))
			continue;			/* the extension's own ledgers are not audited */
		audit_keys_of_table(keys, subject, cxt, relid, (const char *) lfirst(lc2));
	}
	return keys;
}

/*
 * An audit ledger's matching: by the recorded subjects, and by (relid,
 * row_key) in the keys built first.
 */
static void
audit_match_setup(SubjectMatch *m, TupleDesc desc, HTAB *keys)
{
	m->audit = true;
	m->keys = keys;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (a->attisdropped)
			continue;
		if (strcmp(NameStr(a->attname), "relid") == 0)
			m->relid_att = i + 1;
		else if (a->atttypid == TEXTOID && strcmp(NameStr(a->attname), "old_subject") == 0)
			m->subject_atts[0] = i + 1;
		else if (a->atttypid == TEXTOID && strcmp(NameStr(a->attname), "new_subject") == 0)
			m->subject_atts[1] = i + 1;
	}
}

/*
 * Whether a tuple of a SnapshotAny heap scan is dead to everyone (an
 * aborted insert, a deletion older than every snapshot): its TOAST values
 * may already be vacuumed away, so it is not read (not even its subject),
 * and it is no row of anybody's.
 */
static HTSV_Result
tuple_state(TableScanDesc scan, HeapTuple tup, TransactionId oldest_xmin)
{
	Buffer		buf = ((HeapScanDesc) scan)->rs_cbuf;
	HTSV_Result r;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	r = HeapTupleSatisfiesVacuum(tup, oldest_xmin, buf);
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
	return r;
}

static bool
tuple_is_dead(TableScanDesc scan, HeapTuple tup, TransactionId oldest_xmin)
{
	return tuple_state(scan, tup, oldest_xmin) == HEAPTUPLE_DEAD;
}

/*
 * Whether any version of a row of the subject still holds a personal
 * value to erase (a live salt and a non-NULL personal column).
 */
static bool
has_erasable_rows(Relation rel, ClRowEncoder *enc, SubjectMatch *m)
{
	TransactionId oldest_xmin = GetOldestNonRemovableTransactionId(rel);
	TableScanDesc scan = table_beginscan(rel, SnapshotAny, 0, NULL);
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	HeapTuple	tup;
	bool		found = false;
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger erasure search",
												 ALLOCSET_DEFAULT_SIZES);

	while (!found && (tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (tuple_is_dead(scan, tup, oldest_xmin))
			continue;
		old = MemoryContextSwitchTo(rowcxt);
		if (row_is_subject(tup, desc, m))
		{
			heap_deform_tuple(tup, desc, values, nulls);
			found = cl_encoder_erasable(enc, values, nulls);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
	}
	table_endscan(scan);
	MemoryContextDelete(rowcxt);
	pfree(values);
	pfree(nulls);
	return found;
}

/* Deletes the data of a table's extended statistics (MCV lists and the rest). */
static void
remove_ext_stats_data(Relation rel)
{
	List	   *stats = RelationGetStatExtList(rel);
	ListCell   *lc;
	Relation	sd = table_open(StatisticExtDataRelationId, RowExclusiveLock);

	foreach(lc, stats)
	{
		for (int inh = 0; inh <= 1; inh++)
		{
			HeapTuple	tup = SearchSysCache2(STATEXTDATASTXOID,
											  ObjectIdGetDatum(lfirst_oid(lc)),
											  BoolGetDatum(inh == 1));

			if (HeapTupleIsValid(tup))
			{
				CatalogTupleDelete(sd, &tup->t_self);
				ReleaseSysCache(tup);
			}
		}
	}
	table_close(sd, RowExclusiveLock);
	list_free(stats);
}

/* Deletes a table's pg_statistic rows of the named columns (both stainherit). */
static void
remove_column_stats(Oid relid, List *columns)
{
	ListCell   *lc;

	foreach(lc, columns)
	{
		AttrNumber	att = get_attnum(relid, (const char *) lfirst(lc));

		if (att > 0)
			RemoveStatistics(relid, att);
	}
}

/*
 * Removes the planner's statistics that can hold a rewritten ledger's
 * personal values, or let them be guessed: pg_statistic's rows of its
 * personal columns (most common values, histogram bounds) and of
 * ledger_salt (an erased row's old salt next to its commitment, kept in
 * the redacted row, would let low-entropy values be tried), those of its
 * indexes (an expression index's own statistics), and the data of its
 * extended statistics (MCV lists).  A ledger has no inheritance parent
 * whose statistics would sample it (create_ledger() and ALTER TABLE refuse
 * inheritance).  The next ANALYZE computes them again from the redacted
 * rows.  The deleted catalog rows stay in pg_statistic's files until it is
 * vacuumed (README "Erasure").
 */
static void
remove_statistics(Relation rel, List *personal)
{
	List	   *columns = lappend(list_copy(personal), (void *) CL_SALT_COLUMN);
	List	   *indexes;
	ListCell   *lc;

	remove_column_stats(RelationGetRelid(rel), columns);
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
		RemoveStatistics(lfirst_oid(lc), 0);
	list_free(indexes);
	remove_ext_stats_data(rel);
	list_free(columns);
	CommandCounterIncrement();
}

/*
 * Whether a relation is one of the extension's audit ledgers: the live one,
 * or one rotate_audit_ledger() retired under the name audit_log_ledger_<id>
 * and an administrator has not dropped yet (only the extension's owner
 * creates relations in its schema).
 */
static bool
is_audit_ledger(Oid relid)
{
	char	   *name = get_rel_name(relid);

	return name != NULL && get_rel_namespace(relid) == cl_schema_oid(true) &&
		(strcmp(name, "audit_log") == 0 || strncmp(name, "audit_log_ledger_", 17) == 0);
}

/*
 * Erases a subject's personal values in one version 3 ledger; returns the
 * number of rows erased (rows visible now that held a personal value).
 * The table is rewritten only when some row of the subject holds one.
 *
 * The rewrite is CLUSTER's (copy_table_data, without the sort): under
 * AccessExclusiveLock, every tuple that is not dead to every snapshot is
 * written to the new heap by rewrite_heap_tuple(), which keeps its
 * xmin/xmax, so snapshots older than this transaction see the table as
 * they did; the subject's tuples are written redacted
 * (cl_encoder_redact: values NULL, salt replaced by the commitments).
 * Tuples dead to everyone (rows of aborted inserts) are left behind.
 * finish_heap_swap() then swaps the files, rebuilds the indexes (an index
 * on a personal column held the values too) and drops the old heap and
 * TOAST table at commit.
 */
static int64
erase_in_ledger(ClLedgerInfo *info, const char *subject, HTAB *audit_keys)
{
	Relation	rel;
	TupleDesc	desc;
	char	   *subject_col;
	List	   *personal = cl_ledger_personal(info->ledger_id, &subject_col);
	ClRowEncoder *enc;
	AttrNumber	subj;
	AttrNumber	salt;
	Oid			outfn;
	bool		isvarlena;
	SubjectMatch m = {0};
	Oid			new_heap;
	Relation	newrel;
	RewriteState rw;
	TransactionId oldest_xmin;
	TransactionId frozen_xid;
	MultiXactId min_multi;
	char		persistence;
	TableScanDesc scan;
	HeapTuple	tup;
	Datum	   *values;
	bool	   *nulls;
	int64		erased = 0;
	bool		save_ddl = cl_internal_ddl;
	volatile bool save_swapping;
	MemoryContext rowcxt;
	MemoryContext old;

	if (personal == NIL || subject_col == NULL)
		return 0;

	/*
	 * Searched under AccessShareLock: a ledger where the subject has no row
	 * to erase is neither rewritten nor closed to readers or inserters.
	 * Where it has one, the lock is raised to AccessExclusiveLock, which
	 * waits for every open inserter (the rewrite then erases their rows of
	 * the subject too).  Not ShareLock first: a session that read the
	 * ledger and then inserts into it would deadlock with the raise.  A
	 * row of the subject inserted into a ledger after its search found
	 * none is not erased (README "Erasure").
	 */
	rel = table_open(info->relid, AccessShareLock);
	/* a ledger's table made into something else (a view) holds no rows to rewrite */
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_tableam == NULL)
	{
		ereport(WARNING,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("ledger %d's relation \"%s\" is not a table any more: not searched",
						info->ledger_id, RelationGetRelationName(rel)),
				 errhint("Run consent_ledger.verify() on it.")));
		table_close(rel, AccessShareLock);
		return 0;
	}
	desc = RelationGetDescr(rel);
	enc = cl_ledger_encoder(info, desc, CurrentMemoryContext);
	subj = cl_encoder_attnum(enc, subject_col);
	salt = cl_encoder_attnum(enc, CL_SALT_COLUMN);
	if (subj <= 0 || salt <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ledger table \"%s\" has no column \"%s\"", RelationGetRelationName(rel),
						subj <= 0 ? subject_col : CL_SALT_COLUMN),
				 errdetail("consent_ledger.ledgers names it for the ledger's personal data."),
				 errhint("Run consent_ledger.verify() on the ledger.")));
	getTypeOutputInfo(TupleDescAttr(desc, subj - 1)->atttypid, &outfn, &isvarlena);
	fmgr_info(outfn, &m.out);
	m.trim = cl_type_is_bpchar(TupleDescAttr(desc, subj - 1)->atttypid);
	m.subject = subject;
	m.subj = subj;
	if (is_audit_ledger(info->relid))
		audit_match_setup(&m, desc, audit_keys);
	if (!has_erasable_rows(rel, enc, &m))
	{
		cl_encoder_free(enc);
		table_close(rel, NoLock);
		return 0;
	}
	/* the rewrite needs the table to itself (erasures run one at a time) */
	LockRelationOid(info->relid, AccessExclusiveLock);

	frozen_xid = rel->rd_rel->relfrozenxid;
	min_multi = rel->rd_rel->relminmxid;
	persistence = rel->rd_rel->relpersistence;
	oldest_xmin = GetOldestNonRemovableTransactionId(rel);
	new_heap = make_new_heap(info->relid, rel->rd_rel->reltablespace, rel->rd_rel->relam,
							 persistence, AccessExclusiveLock);
	newrel = table_open(new_heap, AccessExclusiveLock);
	/* nothing is frozen that was not: the old horizons are the new ones */
	rw = begin_heap_rewrite(rel, newrel, oldest_xmin, frozen_xid, min_multi);
	values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger erasure row",
								   ALLOCSET_DEFAULT_SIZES);

	scan = table_beginscan(rel, SnapshotAny, 0, NULL);
	while ((tup = cl_heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Buffer		buf = ((HeapScanDesc) scan)->rs_cbuf;
		bool		dead;
		bool		visible;
		HeapTuple	newtup;

		CHECK_FOR_INTERRUPTS();
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		switch (HeapTupleSatisfiesVacuum(tup, oldest_xmin, buf))
		{
			case HEAPTUPLE_DEAD:
				dead = true;
				visible = false;
				break;
			case HEAPTUPLE_RECENTLY_DEAD:
			case HEAPTUPLE_DELETE_IN_PROGRESS:
				dead = false;
				visible = false;
				break;
			case HEAPTUPLE_LIVE:
			case HEAPTUPLE_INSERT_IN_PROGRESS:
				/* in progress under AccessExclusiveLock: our own insert */
				dead = false;
				visible = true;
				break;
			default:
				elog(ERROR, "unexpected HeapTupleSatisfiesVacuum result");
				dead = visible = false; /* keep compiler quiet */
				break;
		}
		LockBuffer(buf, BUFFER_LOCK_UNLOCK);
		if (dead)
		{
			(void) rewrite_heap_dead_tuple(rw, tup);
			continue;
		}
		old = MemoryContextSwitchTo(rowcxt);
		heap_deform_tuple(tup, desc, values, nulls);
		if (row_is_subject(tup, desc, &m) &&
			cl_encoder_redact(enc, values, nulls) && visible)
			erased++;
		newtup = heap_form_tuple(desc, values, nulls);
		MemoryContextSwitchTo(old);
		rewrite_heap_tuple(rw, tup, newtup);
		MemoryContextReset(rowcxt);
	}
	table_endscan(scan);
	end_heap_rewrite(rw);
	MemoryContextDelete(rowcxt);
	cl_encoder_free(enc);
	table_close(newrel, NoLock);
	table_close(rel, NoLock);

	save_swapping = cl_swapping_ledger;
	cl_internal_ddl = true;
	cl_swapping_ledger = true;
	PG_TRY();
	{
		finish_heap_swap(info->relid, new_heap, false, false, false, true,
						 frozen_xid, min_multi, persistence);
	}
	PG_FINALLY();
	{
		cl_internal_ddl = save_ddl;
		cl_swapping_ledger = save_swapping;
	}
	PG_END_TRY();
	rel = table_open(info->relid, NoLock);
	remove_statistics(rel, personal);
	table_close(rel, NoLock);
	return erased;
}

/* Withdraws the subject's consent for every purpose it is not withdrawn for. */
static int
withdraw_all(const char *subject)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(subject)};
	List	   *purposes = NIL;
	ListCell   *lc;

	if (!OidIsValid(cl_consent_events_relid(false)))
		return 0;
	if (SPI_execute_with_args("SELECT purpose FROM consent_ledger.consent_state "
							  "WHERE subject OPERATOR(pg_catalog.=) $1 "
							  "AND state OPERATOR(pg_catalog.<>) 'withdrawn' ORDER BY purpose",
							  1, types, vals, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.consent_state");
	for (uint64 i = 0; i < SPI_processed; i++)
		purposes = lappend(purposes, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	foreach(lc, purposes)
	{
		Oid			wtypes[2] = {TEXTOID, TEXTOID};
		Datum		wvals[2] = {CStringGetTextDatum(subject), CStringGetTextDatum(lfirst(lc))};

		/* no evidence: the erasure ledger says why, in the same transaction */
		if (SPI_execute_with_args("SELECT consent_ledger.withdraw_consent($1, $2)",
								  2, wtypes, wvals, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not withdraw consent");
	}
	return list_length(purposes);
}

/* The erasure ledger, made (as the extension's owner) on first use. */
static void
ensure_erasures_ledger(void)
{
	Oid			nsp = cl_schema_oid(false);
	Oid			relid;

	relid = cl_check_internal_table(get_relname_relid("erasures", nsp), "erasures");
	if (OidIsValid(relid))
		return;
	for (int i = 0; create_erasures_sql[i] != NULL; i++)
		cl_run_as_owner(create_erasures_sql[i], cl_extension_owner());
	CommandCounterIncrement();
	relid = get_relname_relid("erasures", nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "could not create consent_ledger.erasures");
	cl_make_ledger(relid);
}

static void
record_erasure(const char *reason, ClLedgerInfo *info, const char *relname,
			   int64 rows, int withdrawn)
{
	char	   *who = GetUserNameFromId(GetUserId(), false);

	cl_run_as_owner(psprintf("INSERT INTO consent_ledger.erasures "
							 "(erased_at, erased_by, reason, ledger, relation, rows, purposes_withdrawn) "
							 "VALUES (pg_catalog.now(), %s, %s, %s, %s, " INT64_FORMAT ", %d)",
							 quote_literal_cstr(who), quote_literal_cstr(reason),
							 info != NULL ? psprintf("%d", info->ledger_id) : "NULL",
							 relname != NULL ? quote_literal_cstr(relname) : "NULL",
							 rows, withdrawn),
					cl_extension_owner());
}

static int
ledger_id_cmp(const ListCell *a, const ListCell *b)
{
	int32		x = ((ClLedgerInfo *) lfirst(a))->ledger_id;
	int32		y = ((ClLedgerInfo *) lfirst(b))->ledger_id;

	return (x > y) - (x < y);
}

/*
 * consent_ledger.erase_subject(subject text, reason text)
 *	RETURNS TABLE (relation regclass, rows bigint)
 *
 * Erases the personal values of every row of the subject in every ledger
 * with personal columns (retired ones included), in ledger id order;
 * withdraws the subject's consent for every purpose; records the erasure
 * in consent_ledger.erasures (who, when, why, rows per ledger).  Returns
 * one row per ledger whose rows it erased.
 */
Datum
cl_erase_subject(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *subject;
	char	   *reason;
	List	   *ledgers;
	ListCell   *lc;
	int			withdrawn;
	bool		recorded = false;
	List	   *done = NIL;
	List	   *counts = NIL;
	ListCell   *lc2;
	HTAB	   *audit_keys = NULL;
	int			guc_nest;

	cl_require_admin("erase a data subject",
					 "erase personal data; owning a ledger table, or EXECUTE on the function, is not enough",
					 "erase_subject");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) ||
		VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(0)) == 0 ||
		VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(1)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("erase_subject() needs a subject and a reason"),
				 errdetail("The reason is recorded in the erasure ledger."),
				 errhint("Give the subject as the text form of its subject column, and say why it is erased.")));
	subject = text_to_cstring(PG_GETARG_TEXT_PP(0));
	reason = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot erase a data subject during recovery"),
				 errhint("Call erase_subject() on the primary.")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	/*
	 * One erasure at a time: two erasures that searched one ledger would
	 * deadlock raising their locks to rewrite it.
	 */
	cl_lock_extension(CL_LOCK_ERASE, ExclusiveLock);

	/*
	 * Names as a session with the default quoting prints them, whatever the
	 * caller's quote_all_identifiers: the audit keys searched for and the
	 * relation names the erasure ledger records.
	 */
	guc_nest = NewGUCNestLevel();
	(void) set_config_option("quote_all_identifiers", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	/*
	 * In ledger id order, the audit ledger last: it is written by every
	 * audited change, so it is held ACCESS EXCLUSIVE for the shortest time.
	 * The keys of the subject's audit records are read first, before any
	 * ledger is rewritten (a subject column may be personal).
	 */
	ledgers = list_copy(cl_ledger_list());
	list_sort(ledgers, ledger_id_cmp);
	{
		List	   *audit = NIL;

		foreach(lc, ledgers)
		{
			ClLedgerInfo *info = lfirst(lc);

			if (OidIsValid(info->relid) && is_audit_ledger(info->relid))
			{
				ledgers = foreach_delete_current(ledgers, lc);
				audit = lappend(audit, info);
				if (info->encoding >= CL_ENCODING_V3 && audit_keys == NULL)
					audit_keys = build_audit_keys(subject);
			}
		}
		/* the live one and those rotated but not dropped yet, last */
		ledgers = list_concat(ledgers, audit);
	}
	foreach(lc, ledgers)
	{
		ClLedgerInfo *info = lfirst(lc);
		int64		n;

		if (info->encoding < CL_ENCODING_V3 || !OidIsValid(info->relid) ||
			get_rel_name(info->relid) == NULL)
			continue;
		n = erase_in_ledger(info, subject, audit_keys);
		if (n > 0)
		{
			done = lappend(done, info);
			counts = lappend(counts, palloc(sizeof(int64)));
			*(int64 *) llast(counts) = n;
		}
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	withdrawn = withdraw_all(subject);
	SPI_finish();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ensure_erasures_ledger();
	SPI_finish();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	forboth(lc, done, lc2, counts)
	{
		ClLedgerInfo *info = lfirst(lc);
		int64		n = *(int64 *) lfirst(lc2);
		char	   *relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(info->relid)),
														 get_rel_name(info->relid));
		Datum		v[2];
		bool		isnull[2] = {false, false};

		record_erasure(reason, info, relname, n, withdrawn);
		recorded = true;
		v[0] = ObjectIdGetDatum(info->relid);
		v[1] = Int64GetDatum(n);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, isnull);
	}
	if (!recorded)
		record_erasure(reason, NULL, NULL, 0, withdrawn);
	SPI_finish();
	AtEOXact_GUC(true, guc_nest);
	return (Datum) 0;
}

/*
 * consent_ledger.erased(ledger_salt bytea) RETURNS boolean
 *
 * Whether a row of a ledger with personal columns was erased, from its
 * ledger_salt: true for an erasure record, false for a live salt.
 */
Datum
cl_erased(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(cl_salt_is_erased(PG_GETARG_BYTEA_PP(0)));
}
