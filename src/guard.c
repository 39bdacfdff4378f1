/*-------------------------------------------------------------------------
 * guard.c
 *	  The hooks that keep ledger tables append-only against DDL.
 *
 * Row changes are refused by the ledger's own ENABLE ALWAYS triggers
 * (ledger.c).  What a trigger cannot see is refused here:
 *
 *	- ProcessUtility_hook: ALTER TABLE subcommands that would change stored
 *	  values or switch the protection off, column and trigger renames,
 *	  rules, DROP EXTENSION while live ledgers exist, and the database-level
 *	  commands that need the sealer to let go of its database.
 *	- object_access_hook (OAT_DROP): every drop path, cascades included, of
 *	  a live ledger table, one of its columns or one of its triggers; and
 *	  (OAT_DROP, OAT_POST_ALTER, OAT_POST_CREATE on a relation attribute)
 *	  every route that drops, renames, retypes or (for version 1) adds an
 *	  attribute of a row type a ledger column's type contains.
 *	- cl_guard_check_plan(), from the ExecutorStart hook: INSERT ... ON
 *	  CONFLICT into a ledger (however it is reached), where a silently
 *	  skipped row would already have been counted by the stamp.
 *
 * Consent-protected tables (policy.c) keep their policy: disabling or
 * un-forcing row-level security, dropping, renaming or altering the
 * consent policies, and adding another permissive policy (which would be
 * OR-ed past the consent check) are refused until unprotect().
 *
 * A superuser can still bypass all of this (catalog edits, file edits);
 * verify() detects the result.  These hooks only make the honest path
 * safe and the refusal explicit.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/relation.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/partition.h"
#include "catalog/index.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_publication.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/defrem.h"
#include "commands/tablespace.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "consent_ledger.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access = NULL;
static bool dropping_extension = false;

/*
 * Relations created by the utility command running now (OAT_POST_CREATE),
 * in TopTransactionContext: after the command, what CREATE TABLE made is
 * taken by its OID, not by its name looked up again (search_path could
 * have changed meanwhile, or a temporary table of the same name shadow it).
 */
static List *created_relations = NIL;
static bool collecting_created = false; /* only while CREATE TABLE runs */

/*
 * Protected tables that lost a consent policy during the current utility
 * command (a CASCADE from a dropped column, function or type): unless the
 * table itself went too, the command is refused when it ends.
 */
static List *policy_lost = NIL;	/* OIDs, in TopMemoryContext */

/* parts of protected tables an untrusted role's command drops (PartDrop, in TopMemoryContext) */
typedef struct PartDrop
{
	Oid			relid;
	const char *what;
	char	   *description;
	Oid			roleid;
} PartDrop;
static List *part_lost = NIL;

/* EXPLAIN ANALYZE commands running in this backend */
static int	explain_analyze_level = 0;

static bool
is_live_ledger(Oid relid)
{
	ClLedgerInfo *info;

	if (cl_internal_ddl || !OidIsValid(relid))
		return false;
	info = cl_ledger_lookup(relid);
	return (info != NULL && !info->retired) || cl_is_partitioned_ledger(relid);
}

/*
 * Whether relid is a retired ledger that still holds personal data: a
 * version 3 ledger, which erase_subject() still reads by its subject and
 * personal columns (README "Erasure") until its table is dropped.
 */
static bool
is_retired_erasable_ledger(Oid relid)
{
	ClLedgerInfo *info;

	if (cl_internal_ddl || !OidIsValid(relid))
		return false;
	info = cl_ledger_lookup(relid);
	return info != NULL && info->retired && info->encoding >= CL_ENCODING_V3;
}

static void
refuse_ddl(const char *relname, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s is not allowed on ledger table \"%s\"", what, relname),
			 errdetail("Ledger tables are append-only; this would change stored rows or switch their protection off."),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * Whether the trigger named name on relid is one of the extension's: it
 * calls one of the extension's trigger functions (custody.c).  Recognised
 * by its function, not by its name: a trigger the table owner named
 * "~consent_ledger_..." is the owner's.
 */
static bool
is_our_trigger(Oid relid, const char *name)
{
	return name != NULL && cl_is_extension_trigger(relid, name);
}

/* Names reserved for the extension's triggers. */
static bool
is_reserved_trigger_name(const char *name)
{
	return name != NULL && strncmp(name, "~consent_ledger_", strlen("~consent_ledger_")) == 0;
}

static void
refuse_reserved_trigger_name(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_RESERVED_NAME),
			 errmsg("trigger name \"%s\" is reserved for consent_ledger's own triggers", name),
			 errdetail("Trigger names starting with \"~consent_ledger_\" are kept for triggers calling the extension's trigger functions."),
			 errhint("Choose another name.")));
}

/* Audited tables keep their audit triggers (there is no "unaudit"). */
static void
check_audited_alter(Oid relid, List *cmds)
{
	ListCell   *lc;

	foreach(lc, cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		bool		refuse = false;

		switch (cmd->subtype)
		{
			case AT_EnableTrig:
			case AT_EnableReplicaTrig:
			case AT_DisableTrig:
				refuse = is_our_trigger(relid, cmd->name);
				break;
			case AT_DisableTrigAll:
			case AT_DisableTrigUser:
			case AT_EnableTrigAll:
			case AT_EnableTrigUser:
				refuse = true;
				break;
			default:
				break;
		}
		if (refuse)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("changing when the audit triggers fire is not allowed on audited table \"%s\"",
							get_rel_name(relid)),
					 errdetail("Every change to an audited table is recorded in the audit ledger."),
					 errhint("Enable or disable the table's other triggers by name.")));
	}
}

/* Protected tables keep their consent policy until unprotect(). */
static void
refuse_unprotect(Oid relid, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed on consent-protected table \"%s\"", what, get_rel_name(relid)),
			 errdetail("It would let rows be read without their subjects' consent."),
			 errhint("An administrator removes the protection with consent_ledger.unprotect().")));
}

static bool
policy_exists(Oid relid, const char *name)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&keys[0], Anum_pg_policy_polrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_policy_polname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(name));
	scan = systable_beginscan(rel, PolicyPolrelidPolnameIndexId, true, NULL, 2, keys);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Whether a raw policy qual is a call of consent_ledger.allowed(). */
static bool
is_consent_check(Node *qual)
{
	FuncCall   *fc;

	if (qual == NULL || !IsA(qual, FuncCall))
		return false;
	fc = (FuncCall *) qual;
	return list_length(fc->funcname) == 2 &&
		strcmp(strVal(linitial(fc->funcname)), CL_SCHEMA) == 0 &&
		strcmp(strVal(lsecond(fc->funcname)), "allowed") == 0 &&
		list_length(fc->args) == 1;
}

static bool
is_consent_policy(const char *name)
{
	return name != NULL && strncmp(name, "consent_ledger_", strlen("consent_ledger_")) == 0;
}

/* Whether a raw expression is the constant true. */
static bool
is_const_true(Node *n)
{
	A_Const    *c;

	if (n == NULL || !IsA(n, A_Const))
		return false;
	c = (A_Const *) n;
	return !c->isnull && IsA(&c->val, Boolean) && boolVal(&c->val);
}

/*
 * Whether CREATE POLICY re-creates one of the consent policies, missing
 * from the table, exactly as protect() made it (what pg_restore does).
 */
static bool
is_consent_policy_restore(Oid relid, CreatePolicyStmt *ps)
{
	const char *name = ps->policy_name;

	if (policy_exists(relid, name))
		return false;
	if (strcmp(name, "consent_ledger_read") == 0)
		return strcmp(ps->cmd_name, "select") == 0 && is_consent_check(ps->qual) &&
			ps->with_check == NULL;
	if (strcmp(name, "consent_ledger_insert") == 0)
		return strcmp(ps->cmd_name, "insert") == 0 && ps->qual == NULL &&
			is_const_true(ps->with_check);
	if (strcmp(name, "consent_ledger_update") == 0)
		return strcmp(ps->cmd_name, "update") == 0 && is_consent_check(ps->qual) &&
			is_const_true(ps->with_check);
	if (strcmp(name, "consent_ledger_delete") == 0)
		return strcmp(ps->cmd_name, "delete") == 0 && is_consent_check(ps->qual) &&
			ps->with_check == NULL;
	return false;
}

/* The caller is not trusted with hidden rows (custody.c): refuse what. */
static void
refuse_untrusted(Oid relid, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed on consent-protected table \"%s\"", what, get_rel_name(relid)),
			 errdetail("Role \"%s\" is not trusted with rows whose subjects did not consent, and this would reveal whether or what they are.",
					   GetUserNameFromId(GetUserId(), false)),
			 errhint("%s", hint)));
}

/*
 * A foreign key that references a protected table lets whoever inserts
 * into the referencing table probe which keys exist, hidden rows
 * included: only trusted roles may create one.
 */
static void
check_foreign_key(Constraint *c, Oid onrel)
{
	Oid			pk;

	if (c == NULL || c->contype != CONSTR_FOREIGN || c->pktable == NULL || cl_internal_ddl)
		return;
	pk = RangeVarGetRelid(c->pktable, NoLock, true);
	if (OidIsValid(pk) && cl_extension_present() && cl_is_protected(pk) &&
		!cl_role_is_trusted(GetUserId()))
		refuse_untrusted(pk, "a foreign key referencing it",
						 "An administrator (a member of consent_ledger_admin) can create the foreign key.");
	/* the referenced table's owner would probe the protected table's values */
	if (OidIsValid(pk) && OidIsValid(onrel) && cl_extension_present() && cl_is_protected(onrel) &&
		!cl_role_is_trusted(cl_relation_owner(pk)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a foreign key from consent-protected table \"%s\" to table \"%s\" is not allowed",
						get_rel_name(onrel), get_rel_name(pk)),
				 errdetail("The owner of \"%s\", role \"%s\", is not trusted with hidden rows: deleting its keys would tell which are still referenced.",
						   get_rel_name(pk), GetUserNameFromId(cl_relation_owner(pk), false)),
				 errhint("Reference a table owned by an administrator.")));
}

static void
check_column_foreign_keys(ColumnDef *def, Oid onrel)
{
	ListCell   *lc;

	foreach(lc, def->constraints)
		if (IsA(lfirst(lc), Constraint))
			check_foreign_key((Constraint *) lfirst(lc), onrel);
}

static void
check_create_foreign_keys(CreateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->tableElts)
	{
		Node	   *elt = lfirst(lc);

		if (IsA(elt, ColumnDef))
			check_column_foreign_keys((ColumnDef *) elt, InvalidOid);
		else if (IsA(elt, Constraint))
			check_foreign_key((Constraint *) elt, InvalidOid);
	}
	foreach(lc, stmt->constraints)
		if (IsA(lfirst(lc), Constraint))
			check_foreign_key((Constraint *) lfirst(lc), InvalidOid);
}

/*
 * Whether type typid is domain, or a domain over it (a chain of domains).
 * An array or composite containing the domain does not count: erasure
 * sets the whole column NULL, which checks none of its elements'
 * constraints.  Syscache lookups only, no lock, no recursion.
 */
static bool
domain_chain_has(Oid typid, Oid domain)
{
	while (OidIsValid(typid))
	{
		HeapTuple	tup;
		Form_pg_type t;
		Oid			next = InvalidOid;

		if (typid == domain)
			return true;
		tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
		if (!HeapTupleIsValid(tup))
			return false;
		t = (Form_pg_type) GETSTRUCT(tup);
		if (t->typtype == TYPTYPE_DOMAIN)
			next = t->typbasetype;
		ReleaseSysCache(tup);
		typid = next;
	}
	return false;
}

/*
 * A constraint added to a domain that a personal column of a ledger uses
 * (README "Erasure"): erase_subject() writes NULL into personal columns,
 * so erased rows would violate it (and a dump would not restore).
 * create_ledger() refuses such a domain; so is adding one later, whoever
 * adds it, NOT VALID included.
 */
static void
refuse_personal_domain_constraint(AlterDomainStmt *stmt)
{
	Oid			domain = LookupTypeNameOid(NULL, makeTypeNameFromNameList(stmt->typeName), true);
	ListCell   *lc;

	if (!OidIsValid(domain))
		return;
	foreach(lc, cl_personal_ledger_relids())
	{
		Oid			relid = lfirst_oid(lc);
		ClLedgerInfo *info = cl_ledger_lookup(relid);
		ListCell   *lc2;

		if (info == NULL)
			continue;
		foreach(lc2, cl_ledger_personal(info->ledger_id, NULL))
		{
			AttrNumber	att = get_attnum(relid, (const char *) lfirst(lc2));

			if (att > 0 && domain_chain_has(get_atttype(relid, att), domain))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("cannot add a constraint to domain \"%s\": personal column \"%s\" of ledger \"%s\" uses it",
								format_type_be(domain), (const char *) lfirst(lc2), get_rel_name(relid)),
						 errdetail("Erasure sets a subject's personal values to NULL; erased rows would not satisfy the constraint."),
						 errhint("Constrain the values where they are written (a trigger, the application), not in the domain of a personal column.")));
		}
	}
}

/*
 * ALTER DOMAIN ... ADD CONSTRAINT (validated) and VALIDATE CONSTRAINT run
 * the constraint over every stored value of the domain, without row-level
 * security: on a domain that a protected table uses, only trusted roles
 * may do that.
 */
static void
check_alter_domain(AlterDomainStmt *stmt)
{
	Oid			domain;
	ListCell   *lc;

	if (cl_internal_ddl || !cl_extension_present())
		return;
	/* SET NOT NULL, ADD CONSTRAINT (NOT VALID too): for every role */
	if (stmt->subtype == 'O' || stmt->subtype == 'C')
		refuse_personal_domain_constraint(stmt);
	if (cl_role_is_trusted(GetUserId()))
		return;
	if (!(stmt->subtype == 'V' ||
		  (stmt->subtype == 'C' && IsA(stmt->def, Constraint) &&
		   !((Constraint *) stmt->def)->skip_validation)))
		return;
	domain = LookupTypeNameOid(NULL, makeTypeNameFromNameList(stmt->typeName), true);
	if (!OidIsValid(domain))
		return;
	foreach(lc, cl_protected_relids())
	{
		Oid			relid = lfirst_oid(lc);
		Relation	rel = try_relation_open(relid, AccessShareLock);
		TupleDesc	desc;

		if (rel == NULL)
			continue;
		desc = RelationGetDescr(rel);
		for (int i = 0; i < desc->natts; i++)
			if (!TupleDescAttr(desc, i)->attisdropped &&
				cl_type_contains(TupleDescAttr(desc, i)->atttypid, domain))
			{
				relation_close(rel, AccessShareLock);
				refuse_untrusted(relid, "validating a domain constraint over the columns of a domain it uses",
								 "Add the constraint NOT VALID, or ask an administrator to validate it.");
			}
		relation_close(rel, AccessShareLock);
	}
}

/* A column added to a ledger must read as NULL in every existing row. */
static void
check_add_column(const char *relname, ColumnDef *def)
{
	ListCell   *lc;
	Oid			typid;
	int32		typmod;

	if (strncmp(def->colname, CL_COLUMN_PREFIX, strlen(CL_COLUMN_PREFIX)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("column name \"%s\" is reserved on ledger table \"%s\"",
						def->colname, relname),
				 errdetail("Names beginning with \"%s\" belong to the ledger.", CL_COLUMN_PREFIX)));
	if (def->raw_default || def->cooked_default || def->is_not_null ||
		def->identity || def->generated)
		refuse_ddl(relname, "ADD COLUMN with a default, NOT NULL, identity or generated value",
				   "Add the column as nullable without a default, then ALTER COLUMN ... SET DEFAULT for future rows.");
	foreach(lc, def->constraints)
	{
		Constraint *c = lfirst(lc);

		if (c->contype == CONSTR_DEFAULT || c->contype == CONSTR_NOTNULL ||
			c->contype == CONSTR_IDENTITY || c->contype == CONSTR_GENERATED ||
			c->contype == CONSTR_PRIMARY)
			refuse_ddl(relname, "ADD COLUMN with a default, NOT NULL, identity or generated value",
					   "Add the column as nullable without a default, then ALTER COLUMN ... SET DEFAULT for future rows.");
	}
	typenameTypeIdAndMod(NULL, def->typeName, &typid, &typmod);
	if (get_typtype(typid) == TYPTYPE_DOMAIN)
	{
		HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
		bool		hasdefault = false;

		if (HeapTupleIsValid(tup))
		{
			hasdefault = !heap_attisnull(tup, Anum_pg_type_typdefaultbin, NULL);
			ReleaseSysCache(tup);
		}
		if (hasdefault)
			refuse_ddl(relname, "ADD COLUMN of a domain with a default",
					   "Use a domain without a default, or the base type.");
	}
}

static void
check_alter_table(AlterTableStmt *stmt)
{
	Oid			relid;
	const char *relname;
	ListCell   *lc;

	if (stmt->objtype != OBJECT_TABLE)
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);

	/* another table attaching a ledger as partition or as parent */
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype == AT_AddConstraint && IsA(cmd->def, Constraint))
			check_foreign_key((Constraint *) cmd->def, relid);
		if (cmd->subtype == AT_AddColumn && IsA(cmd->def, ColumnDef))
			check_column_foreign_keys((ColumnDef *) cmd->def, relid);

		if (cmd->subtype == AT_AttachPartition && IsA(cmd->def, PartitionCmd))
		{
			Oid			part = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);

			/* (a ledger attached to a partitioned ledger keeps its log: below) */
			if ((is_live_ledger(part) || is_retired_erasable_ledger(part)) && !is_live_ledger(relid))
				refuse_ddl(get_rel_name(part), "ATTACH PARTITION",
						   "A ledger can only be attached to a partitioned ledger.");
		}
		if (cmd->subtype == AT_AddInherit && IsA(cmd->def, RangeVar))
		{
			Oid			parent = RangeVarGetRelid((RangeVar *) cmd->def, NoLock, true);

			if (is_live_ledger(parent))
				refuse_ddl(get_rel_name(parent), "INHERIT from it", NULL);
		}
	}

	if (OidIsValid(relid) && !cl_internal_ddl && cl_extension_present() && cl_is_audited(relid))
		check_audited_alter(relid, stmt->cmds);
	if (OidIsValid(relid) && !cl_internal_ddl && cl_extension_present() && cl_is_protected(relid))
	{
		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);

			if (cmd->subtype == AT_DisableRowSecurity || cmd->subtype == AT_NoForceRowSecurity)
				refuse_unprotect(relid, "disabling row-level security");
			/* read through a parent, a child's rows bypass the child's policy */
			if (cmd->subtype == AT_AddInherit)
				refuse_unprotect(relid, "INHERIT");
			/* validating a constraint evaluates it on every row, hidden ones too */
			if (cmd->subtype == AT_ValidateConstraint)
				refuse_unprotect(relid, "VALIDATE CONSTRAINT");
			if (cmd->subtype == AT_AddConstraint && IsA(cmd->def, Constraint) &&
				((Constraint *) cmd->def)->contype == CONSTR_CHECK &&
				!((Constraint *) cmd->def)->skip_validation)
				refuse_unprotect(relid, "a CHECK constraint validated over existing rows");
		}
	}
	/* attaching a protected table as a partition: read through the parent, likewise */
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype == AT_AttachPartition && IsA(cmd->def, PartitionCmd) &&
			!cl_internal_ddl && cl_extension_present())
		{
			Oid			part = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);

			/* under a protected parent it stays protected (partition.c) */
			if (OidIsValid(part) && cl_is_protected(part) &&
				!(OidIsValid(relid) && cl_is_protected(relid)))
				refuse_unprotect(part, "ATTACH PARTITION");
		}
	}

	/* the columns erase_subject() reads stay as they are */
	if (is_retired_erasable_ledger(relid))
		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);

			if (cmd->subtype == AT_DropColumn || cmd->subtype == AT_AlterColumnType ||
				cmd->subtype == AT_AddInherit)
				refuse_ddl(get_rel_name(relid),
						   cmd->subtype == AT_DropColumn ? "DROP COLUMN" :
						   cmd->subtype == AT_AddInherit ? "INHERIT" : "ALTER COLUMN ... TYPE",
						   "A retired ledger with personal columns is still erased by erase_subject(); drop the table when it is no longer needed.");
		}
	if (!is_live_ledger(relid))
		return;
	relname = get_rel_name(relid);

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		switch (cmd->subtype)
		{
			case AT_AddColumn:
				check_add_column(relname, castNode(ColumnDef, cmd->def));
				break;
			case AT_ColumnDefault:
			case AT_DropNotNull:
			case AT_SetNotNull:
			case AT_CheckNotNull:
			case AT_SetStatistics:
			case AT_SetOptions:
			case AT_ResetOptions:
			case AT_SetStorage:
			case AT_SetCompression:
			case AT_AddIndex:
			case AT_AddConstraint:
			case AT_AlterConstraint:
			case AT_ValidateConstraint:
			case AT_AddIndexConstraint:
			case AT_DropConstraint:
			case AT_AlterColumnGenericOptions:
			case AT_ChangeOwner:
			case AT_ClusterOn:
			case AT_DropCluster:
			case AT_SetLogged:
			case AT_SetTableSpace:
			case AT_SetRelOptions:
			case AT_ResetRelOptions:
			case AT_ReplaceRelOptions:
			case AT_EnableRowSecurity:
			case AT_DisableRowSecurity:
			case AT_ForceRowSecurity:
			case AT_NoForceRowSecurity:
			case AT_ReplicaIdentity:
			case AT_GenericOptions:
			case AT_AddIdentity:
			case AT_SetIdentity:
			case AT_DropIdentity:
			case AT_EnableRule:
			case AT_EnableAlwaysRule:
			case AT_EnableReplicaRule:
			case AT_DisableRule:
				break;
			case AT_EnableAlwaysTrig:
				/* the state the ledger needs (pg_restore re-applies it) */
				break;
			case AT_EnableTrig:
			case AT_EnableReplicaTrig:
			case AT_DisableTrig:
				if (is_our_trigger(relid, cmd->name))
					refuse_ddl(relname, "changing when the ledger's own triggers fire",
							   "Ledger triggers always fire, whatever session_replication_role says.");
				break;
			case AT_EnableTrigAll:
			case AT_DisableTrigAll:
			case AT_EnableTrigUser:
			case AT_DisableTrigUser:
				refuse_ddl(relname, "ENABLE/DISABLE TRIGGER ALL or USER",
						   "Enable or disable the table's other triggers by name.");
				break;
			case AT_DropColumn:
				refuse_ddl(relname, "DROP COLUMN",
						   "Retire the ledger and create a new one to change its columns.");
				break;
			case AT_AlterColumnType:
				refuse_ddl(relname, "ALTER COLUMN ... TYPE",
						   "Add a new nullable column of the wanted type instead.");
				break;
			case AT_DropExpression:
				refuse_ddl(relname, "ALTER COLUMN ... DROP EXPRESSION", NULL);
				break;
			case AT_SetAccessMethod:
				refuse_ddl(relname, "SET ACCESS METHOD", NULL);
				break;
			case AT_SetUnLogged:
				refuse_ddl(relname, "SET UNLOGGED",
						   "An unlogged table loses committed rows on a crash.");
				break;
			case AT_AttachPartition:
				/* a partitioned ledger takes new partitions (partition.c) */
				if (cl_is_partitioned_ledger(relid) && IsA(cmd->def, PartitionCmd))
				{
					cl_partition_before_ledger_attach(relid,
													  RangeVarGetRelid(((PartitionCmd *) cmd->def)->name,
																	   NoLock, true));
					break;
				}
				refuse_ddl(relname, "inheritance or partitioning", NULL);
				break;
			case AT_DetachPartition:
			case AT_DetachPartitionFinalize:
				if (cl_is_partitioned_ledger(relid))
					refuse_ddl(relname, "DETACH PARTITION",
							   "A ledger's rows are never removed from it; retire the ledger instead if it is no longer needed.");
				refuse_ddl(relname, "inheritance or partitioning", NULL);
				break;
			case AT_AddInherit:
			case AT_DropInherit:
				refuse_ddl(relname, "inheritance or partitioning", NULL);
				break;
			case AT_AddOf:
			case AT_DropOf:
				refuse_ddl(relname, "OF / NOT OF", NULL);
				break;
			default:
				refuse_ddl(relname, "this ALTER TABLE subcommand", NULL);
				break;
		}
	}
}

static void
check_rename(RenameStmt *stmt)
{
	Oid			relid;

	if (stmt->renameType == OBJECT_POLICY && stmt->relation != NULL && !cl_internal_ddl &&
		is_consent_policy(stmt->subname))
	{
		relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (OidIsValid(relid) && cl_extension_present() && cl_is_protected(relid))
			refuse_unprotect(relid, "renaming its consent policy");
	}
	if (stmt->renameType != OBJECT_COLUMN && stmt->renameType != OBJECT_TRIGGER)
		return;
	if (stmt->relation == NULL)
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	/* a trigger of the owner's does not take a name kept for the extension's */
	if (stmt->renameType == OBJECT_TRIGGER && OidIsValid(relid) && !cl_internal_ddl &&
		is_reserved_trigger_name(stmt->newname) && cl_extension_present() &&
		!cl_role_is_trusted(GetUserId()) && !is_our_trigger(relid, stmt->subname))
		refuse_reserved_trigger_name(stmt->newname);
	if (stmt->renameType == OBJECT_TRIGGER && is_our_trigger(relid, stmt->subname) &&
		OidIsValid(relid) && !cl_internal_ddl && cl_extension_present() && cl_is_audited(relid))
		refuse_ddl(get_rel_name(relid), "renaming the audit triggers", NULL);
	if (stmt->renameType == OBJECT_COLUMN && is_retired_erasable_ledger(relid))
		refuse_ddl(get_rel_name(relid), "RENAME COLUMN",
				   "A retired ledger with personal columns is still erased by erase_subject(), by its column names; drop the table when it is no longer needed.");
	if (!is_live_ledger(relid))
		return;
	if (stmt->renameType == OBJECT_COLUMN)
		refuse_ddl(get_rel_name(relid), "RENAME COLUMN",
				   "Row hashes name their columns; add a new column instead.");
	if (stmt->renameType == OBJECT_TRIGGER && is_our_trigger(relid, stmt->subname))
		refuse_ddl(get_rel_name(relid), "renaming the ledger's own triggers", NULL);
}

/*
 * DROP EXTENSION consent_ledger (README "Uninstall").  The consent ledger,
 * its consent_state view and the audit ledger are created on first use and
 * are not extension members (so pg_dump dumps them like user ledgers):
 * PostgreSQL would leave them behind without their triggers and defaults,
 * under their own names, and a new CREATE EXTENSION would then write into
 * them unstamped.  So, before the drop: one that holds no rows is dropped;
 * one that holds rows must be retired first (like a user ledger), and is
 * then kept as a plain table, its triggers and the event id default
 * removed, moved to a new schema consent_ledger_dropped_<extension OID>.
 * After the drop, the schema consent_ledger goes too when nothing is left
 * in it, so that CREATE EXTENSION starts afresh.
 */
static Oid	drop_extension_schema = InvalidOid;

/*
 * Whether one of the internal ledgers holds rows, read as the extension's
 * owner with row_security off: a row the caller (or the owner, under a
 * forced policy) cannot see must not let the table be dropped -- a policy
 * that would hide rows makes this fail instead.
 */
static bool
internal_ledger_has_rows(const char *qname, Oid owner)
{
	int			nest = NewGUCNestLevel();
	bool		rows;

	(void) set_config_option("row_security", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	cl_run_as_owner(psprintf("SELECT 1 FROM ONLY %s LIMIT 1", qname), owner);
	rows = SPI_processed > 0;
	AtEOXact_GUC(false, nest);
	return rows;
}

/*
 * DROP EXTENSION ... CASCADE on tables still protected: the policies whose
 * expressions call the extension's functions go with it, but protect()'s
 * consent_ledger_insert policy (WITH CHECK (true)) depends on nothing of
 * the extension and would stay, so that protect() after a new CREATE
 * EXTENSION refused the table.  All four are dropped here; row-level
 * security stays enabled and forced, so hidden rows stay hidden (README
 * "Uninstall").
 */
static void
drop_protect_policies(Oid owner)
{
	static const char *const policies[] = {
		"consent_ledger_read", "consent_ledger_insert",
		"consent_ledger_update", "consent_ledger_delete"
	};
	List	   *relids = NIL;
	ListCell   *lc;

	if (SPI_execute("SELECT relid FROM consent_ledger.protected", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.protected");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			relids = lappend_oid(relids, DatumGetObjectId(d));
	}
	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);
		char	   *relname = get_rel_name(relid);
		char	   *qname;

		if (relname == NULL)
			continue;
		qname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname);
		for (int i = 0; i < lengthof(policies); i++)
			cl_run_as_owner(psprintf("DROP POLICY IF EXISTS %s ON %s", policies[i], qname), owner);
	}
}

static void archive_internal_ledger(const char *name, Oid nsp, Oid extoid, Oid owner,
									const char *base, const char *archive, bool *archive_made);

static void
drop_extension_internal_ledgers(void)
{
	static const char *const names[] = {"consent_events", "audit_log", "witness_log", "erasures", "subject_keys",
	"datasets", "dataset_subjects"};
	Oid			nsp = cl_schema_oid(true);
	Oid			extoid = get_extension_oid(CL_EXTENSION, false);
	Oid			owner = cl_extension_owner();
	char	   *base = psprintf("%s_dropped_%u", CL_SCHEMA, extoid);
	char	   *archive = base;
	bool		archive_made = false;

	drop_extension_schema = nsp;
	if (!OidIsValid(nsp))
		return;

	/*
	 * The archive schema is always created here, by the extension's owner:
	 * one that already exists (the extension's OID is public, anyone with
	 * CREATE on the database can make it) is never used; the first free
	 * name base_2, base_3, ... is taken instead, and a NOTICE says which.
	 */
	for (int n = 2; OidIsValid(get_namespace_oid(archive, true)); n++)
		archive = psprintf("%s_%d", base, n);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	drop_protect_policies(owner);
	/* tables on the extension's table access method back to heap (tableam.c) */
	cl_tableam_release_tables();
	/* and the audit ledgers rotate_audit_ledger() retired, not dropped yet */
	{
		List	   *all = NIL;
		ListCell   *lc;

		for (int i = 0; i < lengthof(names); i++)
			all = lappend(all, (char *) names[i]);
		if (SPI_execute(psprintf("SELECT relname::pg_catalog.text FROM pg_catalog.pg_class "
								 "WHERE relnamespace OPERATOR(pg_catalog.=) %u "
								 "AND relname OPERATOR(pg_catalog.~) '^audit_log_ledger_[0-9]+$' "
								 "AND relkind OPERATOR(pg_catalog.=) 'r' ORDER BY 1", nsp),
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not list the rotated audit ledgers");
		for (uint64 r = 0; r < SPI_processed; r++)
			all = lappend(all, SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));
		foreach(lc, all)
			archive_internal_ledger(lfirst(lc), nsp, extoid, owner, base, archive, &archive_made);
	}
	SPI_finish();
	CommandCounterIncrement();
	cl_ledger_cache_reset();
}

/*
 * One of the extension's ledgers at DROP EXTENSION: dropped when empty,
 * refused when live, else moved to the archive schema (made on first use).
 */
static void
archive_internal_ledger(const char *name, Oid nsp, Oid extoid, Oid owner, const char *base,
						const char *archive, bool *archive_made)
{
	Oid			relid = get_relname_relid(name, nsp);
	char	   *qname = quote_qualified_identifier(CL_SCHEMA, name);
	ClLedgerInfo *info;

	if (!OidIsValid(relid) || getExtensionOfObject(RelationRelationId, relid) == extoid)
		return;
	(void) cl_check_internal_table(relid, name);
	info = cl_ledger_lookup(relid);
	if (strcmp(name, "consent_events") == 0)
		cl_run_as_owner("DROP VIEW IF EXISTS consent_ledger.consent_state", owner);
	if (!internal_ledger_has_rows(qname, owner))
	{
		cl_run_as_owner(psprintf("DROP TABLE %s", qname), owner);
		return;
	}
	if (info != NULL && !info->retired)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension consent_ledger because ledger table \"%s\" is live",
						qname),
				 errdetail("Dropping the extension drops the log and the checkpoints of every ledger."),
				 errhint("Export it first (consent_ledger.export('%s')), then call consent_ledger.retire_ledger('%s'); "
						 "its rows are then kept as a plain table in schema %s.",
						 qname, qname, archive)));
	if (info != NULL)
	{
		cl_run_as_owner(psprintf("DROP TRIGGER IF EXISTS \"%s\" ON %s", CL_STAMP_TRIGGER, qname), owner);
		cl_run_as_owner(psprintf("DROP TRIGGER IF EXISTS \"%s\" ON %s", CL_GUARD_TRIGGER, qname), owner);
		cl_run_as_owner(psprintf("DROP TRIGGER IF EXISTS \"%s\" ON %s", CL_GUARD_ROW_TRIGGER, qname), owner);
	}
	if (strcmp(name, "consent_events") == 0)
		cl_run_as_owner(psprintf("ALTER TABLE %s ALTER COLUMN event_id DROP DEFAULT", qname), owner);
	if (!*archive_made)
	{
		cl_run_as_owner(psprintf("CREATE SCHEMA %s", quote_identifier(archive)), owner);
		*archive_made = true;
		if (strcmp(archive, base) != 0)
			ereport(NOTICE,
					(errmsg("consent_ledger: retired consent and audit ledgers are kept in schema %s",
							quote_identifier(archive)),
					 errdetail("A schema named %s already existed; it was not created by the extension and is not used.",
							   quote_identifier(base))));
	}
	cl_run_as_owner(psprintf("ALTER TABLE %s SET SCHEMA %s", qname, quote_identifier(archive)), owner);
}

/* After DROP EXTENSION: the schema it created goes when it is empty. */
static void
drop_extension_schema_if_empty(Oid nsp)
{
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	bool		used;
	Oid			owner;

	if (!OidIsValid(nsp) || !SearchSysCacheExists1(NAMESPACEOID, ObjectIdGetDatum(nsp)))
		return;
	CommandCounterIncrement();
	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(NamespaceRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(nsp));
	scan = systable_beginscan(rel, DependReferenceIndexId, true, NULL, 2, key);
	used = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (used)
		return;
	{
		HeapTuple	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));

		if (!HeapTupleIsValid(tup))
			return;
		owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
		ReleaseSysCache(tup);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_run_as_owner(psprintf("DROP SCHEMA %s", quote_identifier(get_namespace_name(nsp))), owner);
	SPI_finish();
}

/*
 * Publications (README "Logical replication").  A subscriber of a protected
 * table receives every row, hidden ones included, with no consent check and
 * no audit record: adding a protected table to a publication -- by name,
 * by its schema or FOR ALL TABLES -- is refused, and so is protecting a
 * published table, unless a superuser has set
 * consent_ledger.allow_publish_protected (then a WARNING says what it
 * means).
 */
bool		cl_allow_publish_protected = false;

static void
refuse_publish(Oid relid, const char *how)
{
	if (cl_allow_publish_protected)
	{
		ereport(WARNING,
				(errmsg("protected table \"%s\" is published %s", get_rel_name(relid), how),
				 errdetail("Subscribers receive every row, also those whose subjects did not consent, with no consent check and no audit record."),
				 errhint("consent_ledger.allow_publish_protected is on.")));
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("protected table \"%s\" cannot be published %s", get_rel_name(relid), how),
			 errdetail("A subscriber would receive every row, also those whose subjects did not consent, with no consent check and no audit record."),
			 errhint("A superuser may SET consent_ledger.allow_publish_protected = on to publish it anyway.")));
}

/* Whether the relation is in a publication: by name, by schema, or all tables. */
void
cl_refuse_if_published(Oid relid)
{
	const char *how = NULL;

	if (GetRelationPublications(relid) != NIL)
		how = "it is in a publication";
	else if (GetSchemaPublications(get_rel_namespace(relid)) != NIL)
		how = "its schema is in a publication";
	else if (GetAllTablesPublications() != NIL)
		how = "a publication FOR ALL TABLES exists";
	if (how == NULL)
		return;
	if (cl_allow_publish_protected)
	{
		ereport(WARNING,
				(errmsg("protecting published table \"%s\" (%s)", get_rel_name(relid), how),
				 errdetail("Subscribers receive every row, also those whose subjects did not consent, with no consent check and no audit record."),
				 errhint("consent_ledger.allow_publish_protected is on.")));
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot protect table \"%s\": %s", get_rel_name(relid), how),
			 errdetail("A subscriber would receive every row, also those whose subjects did not consent, with no consent check and no audit record."),
			 errhint("Take the table out of the publication first; a superuser may SET consent_ledger.allow_publish_protected = on to protect it anyway.")));
}

/*
 * The protected tables as of now, this transaction's own protect() calls
 * included (the policy cache holds the committed state only).
 */
static List *
protected_relids_now(void)
{
	Oid			nsp = cl_schema_oid(true);
	Oid			tab = OidIsValid(nsp) ? get_relname_relid("protected", nsp) : InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	List	   *result = NIL;

	if (!OidIsValid(tab))
		return NIL;
	rel = table_open(tab, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;

		result = lappend_oid(result,
							 DatumGetObjectId(heap_getattr(tup, 1, RelationGetDescr(rel), &isnull)));
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return result;
}

static void
check_publication_objects(List *pubobjects, bool for_all_tables)
{
	ListCell   *lc;

	if (!cl_extension_present())
		return;
	if (for_all_tables)
	{
		foreach(lc, protected_relids_now())
			refuse_publish(lfirst_oid(lc), "FOR ALL TABLES");
		return;
	}
	foreach(lc, pubobjects)
	{
		PublicationObjSpec *obj = lfirst(lc);

		if (obj->pubobjtype == PUBLICATIONOBJ_TABLE && obj->pubtable != NULL)
		{
			Oid			relid = RangeVarGetRelid(obj->pubtable->relation, NoLock, true);

			if (OidIsValid(relid) && cl_is_protected(relid))
				refuse_publish(relid, "FOR TABLE");
		}
		else if (obj->pubobjtype == PUBLICATIONOBJ_TABLES_IN_SCHEMA ||
				 obj->pubobjtype == PUBLICATIONOBJ_TABLES_IN_CUR_SCHEMA)
		{
			Oid			nsp;
			ListCell   *lc2;

			if (obj->pubobjtype == PUBLICATIONOBJ_TABLES_IN_CUR_SCHEMA)
			{
				List	   *path = fetch_search_path(false);

				nsp = path != NIL ? linitial_oid(path) : InvalidOid;
			}
			else
				nsp = get_namespace_oid(obj->name, true);
			if (!OidIsValid(nsp))
				continue;
			foreach(lc2, protected_relids_now())
				if (get_rel_namespace(lfirst_oid(lc2)) == nsp)
					refuse_publish(lfirst_oid(lc2), "FOR TABLES IN SCHEMA");
		}
	}
}

/* User ledgers still alive: DROP EXTENSION must not orphan them. */
static void
check_drop_extension(DropStmt *stmt)
{
	ListCell   *lc;
	bool		ours = false;

	foreach(lc, stmt->objects)
	{
		Node	   *obj = lfirst(lc);

		if (IsA(obj, String) && strcmp(strVal(obj), CL_EXTENSION) == 0)
			ours = true;
	}
	if (!ours || !cl_extension_present())
		return;

	/*
	 * PostgreSQL checks that the caller owns the extension only when it
	 * drops it, after this hook: check it here first, with its own error,
	 * so that a non-owner's DROP EXTENSION learns nothing of the ledgers
	 * and nothing below runs for it.
	 */
	if (!pg_extension_ownercheck(get_extension_oid(CL_EXTENSION, false), GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_EXTENSION, CL_EXTENSION);
	foreach(lc, cl_ledger_list())
	{
		ClLedgerInfo *info = lfirst(lc);

		if (info->retired || !OidIsValid(get_rel_namespace(info->relid)))
			continue;
		if (getExtensionOfObject(RelationRelationId, info->relid) ==
			get_extension_oid(CL_EXTENSION, false) ||
			get_rel_namespace(info->relid) == cl_schema_oid(true))
			continue;			/* the extension's own ledgers: see below */
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension consent_ledger because ledger table \"%s\" is live",
						get_rel_name(info->relid)),
				 errdetail("Dropping the extension would remove the protection and the log of that ledger."),
				 errhint("Call consent_ledger.retire_ledger() for each ledger table first.")));
	}
	dropping_extension = true;
	drop_extension_internal_ledgers();
}

/* DROP TABLE naming a live ledger: say so before any dependent goes. */
static void
check_drop_table(DropStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (is_live_ledger(relid))
			refuse_ddl(get_rel_name(relid), "DROP TABLE",
					   "Call consent_ledger.retire_ledger() first; its log and checkpoints are kept.");
	}
}

/*
 * The database-level commands that need a database free of connections
 * stop its sealer and audit writer (cl_seal_block_database) -- but only
 * when PostgreSQL will let the current role run the command, and only for
 * the forms that need the database free.  The checks below repeat
 * PostgreSQL's own, so that a role that would be refused never pauses
 * sealing or auditing; a check that passes here and fails later (a race)
 * pauses them for BLOCK_SECONDS at most.
 *
 *	DROP DATABASE						owner
 *	ALTER DATABASE ... RENAME TO		owner and CREATEDB, new name free
 *	ALTER DATABASE ... SET TABLESPACE	owner and CREATE on the tablespace,
 *										which is not the current one
 *	CREATE DATABASE ... TEMPLATE x		CREATEDB, and x a template or owned
 *
 * Other forms of ALTER DATABASE (CONNECTION LIMIT, ALLOW_CONNECTIONS,
 * IS_TEMPLATE, SET, OWNER) never need the database free.  The current
 * database cannot be dropped, renamed or moved, so it is never blocked.
 */
static Oid
database_to_free(Node *parsetree)
{
	Oid			dboid = InvalidOid;
	Oid			me = GetUserId();

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			dboid = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);
			if (!OidIsValid(dboid) || !pg_database_ownercheck(dboid, me))
				return InvalidOid;
			break;
		case T_RenameStmt:
			{
				RenameStmt *rs = (RenameStmt *) parsetree;

				if (rs->renameType != OBJECT_DATABASE)
					return InvalidOid;
				dboid = get_database_oid(rs->subname, true);
				if (!OidIsValid(dboid) || !pg_database_ownercheck(dboid, me) ||
					!have_createdb_privilege() ||
					OidIsValid(get_database_oid(rs->newname, true)))
					return InvalidOid;
				break;
			}
		case T_AlterDatabaseStmt:
			{
				AlterDatabaseStmt *as = (AlterDatabaseStmt *) parsetree;
				ListCell   *lc;
				Oid			spc = InvalidOid;
				HeapTuple	tup;
				bool		moves = false;

				foreach(lc, as->options)
				{
					DefElem    *d = lfirst(lc);

					if (strcmp(d->defname, "tablespace") == 0)
						spc = get_tablespace_oid(defGetString(d), true);
				}
				if (!OidIsValid(spc))
					return InvalidOid;
				dboid = get_database_oid(as->dbname, true);
				if (!OidIsValid(dboid) || !pg_database_ownercheck(dboid, me) ||
					pg_tablespace_aclcheck(spc, me, ACL_CREATE) != ACLCHECK_OK)
					return InvalidOid;
				tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
				if (HeapTupleIsValid(tup))
				{
					moves = ((Form_pg_database) GETSTRUCT(tup))->dattablespace != spc;
					ReleaseSysCache(tup);
				}
				if (!moves)
					return InvalidOid;
				break;
			}
		case T_CreatedbStmt:
			{
				ListCell   *lc;
				const char *template = "template1";
				HeapTuple	tup;
				bool		may_copy = false;

				foreach(lc, ((CreatedbStmt *) parsetree)->options)
				{
					DefElem    *d = lfirst(lc);

					if (strcmp(d->defname, "template") == 0)
						template = defGetString(d);
				}
				if (!have_createdb_privilege())
					return InvalidOid;
				dboid = get_database_oid(template, true);
				if (!OidIsValid(dboid))
					return InvalidOid;
				tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
				if (HeapTupleIsValid(tup))
				{
					may_copy = ((Form_pg_database) GETSTRUCT(tup))->datistemplate ||
						pg_database_ownercheck(dboid, me);
					ReleaseSysCache(tup);
				}
				if (!may_copy)
					return InvalidOid;
				break;
			}
		default:
			return InvalidOid;
	}
	if (dboid == MyDatabaseId)
		return InvalidOid;
	return dboid;
}

/*
 * CREATE TRIGGER and CREATE RULE lock their table before PostgreSQL checks
 * that the caller owns it: on the extension's own tables, a role that may
 * name them (a member of the extension's roles) could queue a strong lock
 * behind another session's lock and so stall the sealer or the audit
 * writer.  Refused at once unless the caller is a superuser or the
 * extension's owner.
 */
static void
check_internal_table_lock(Oid relid, const char *what)
{
	Oid			nsp;

	if (!OidIsValid(relid) || cl_internal_ddl || superuser() || !cl_extension_present())
		return;
	nsp = cl_schema_oid(true);
	if (!OidIsValid(nsp) || get_rel_namespace(relid) != nsp || GetUserId() == cl_extension_owner())
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s on \"%s.%s\" is not allowed", what, CL_SCHEMA, get_rel_name(relid)),
			 errdetail("The extension's own tables are changed by the extension only."),
			 errhint("Nothing needs to attach code to them.")));
}

/*
 * VACUUM FULL and REINDEX DATABASE may be run by a database's owner on
 * tables it does not own; on the extension's tables they hold locks that
 * stop the sealer and the audit writer for as long as they run.  A
 * database owner need not be trusted: only a superuser or the extension's
 * owner may run them over the extension's tables.
 */
static void
check_maintenance(Node *parsetree)
{
	Oid			nsp;
	bool		full = false;
	ListCell   *lc;

	if (superuser() || !cl_extension_present() || GetUserId() == cl_extension_owner())
		return;
	nsp = cl_schema_oid(true);
	if (IsA(parsetree, ReindexStmt))
	{
		if (((ReindexStmt *) parsetree)->kind == REINDEX_OBJECT_DATABASE)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("REINDEX DATABASE is not allowed where consent_ledger is installed, except for a superuser"),
					 errdetail("It would lock the extension's tables against the sealer and the audit writer for as long as it runs."),
					 errhint("Reindex your tables by name (REINDEX TABLE or REINDEX SCHEMA).")));
		return;
	}
	if (!IsA(parsetree, VacuumStmt) || !((VacuumStmt *) parsetree)->is_vacuumcmd)
		return;
	foreach(lc, ((VacuumStmt *) parsetree)->options)
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, "full") == 0)
			full = defGetBoolean(opt);
	}
	if (!full)
		return;
	if (((VacuumStmt *) parsetree)->rels == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("VACUUM FULL of the whole database is not allowed where consent_ledger is installed, except for a superuser"),
				 errdetail("It would lock the extension's tables against the sealer and the audit writer for as long as it runs."),
				 errhint("Name the tables to VACUUM FULL.")));
	foreach(lc, ((VacuumStmt *) parsetree)->rels)
	{
		VacuumRelation *vr = lfirst(lc);
		Oid			relid = vr->relation ? RangeVarGetRelid(vr->relation, NoLock, true) : vr->oid;

		if (OidIsValid(relid) && OidIsValid(nsp) && get_rel_namespace(relid) == nsp)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("VACUUM FULL of \"%s.%s\" is not allowed", CL_SCHEMA, get_rel_name(relid)),
					 errdetail("It would lock the extension's table against the sealer and the audit writer for as long as it runs."),
					 errhint("A superuser may run it.")));
	}
}

/*
 * Renaming the schema a purpose view lives in takes the view off the
 * analysts' search_path, so that a view of the schema owner's own could
 * answer in its place: only trusted roles may.  The same holds for a
 * schema holding a protected table (rev2 F8).
 */
static void
check_schema_rename(const char *schema)
{
	Oid			nsp = get_namespace_oid(schema, true);

	if (!OidIsValid(nsp) || !cl_extension_present() || cl_role_is_trusted(GetUserId()))
		return;
	if (cl_purpose_views_in(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("renaming schema \"%s\" is not allowed for role \"%s\"",
						schema, GetUserNameFromId(GetUserId(), false)),
				 errdetail("It holds purpose views that analysts read by name."),
				 errhint("Ask a member of consent_ledger_admin.")));
	/* likewise protected tables, which loaders write to by name */
	{
		ListCell   *lc;

		foreach(lc, cl_protected_relids())
			if (get_rel_namespace(lfirst_oid(lc)) == nsp)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("renaming schema \"%s\" is not allowed for role \"%s\"",
								schema, GetUserNameFromId(GetUserId(), false)),
						 errdetail("It holds consent-protected table \"%s\": a table of the schema owner's, without the consent policy, could take its place under the old name.",
								   get_rel_name(lfirst_oid(lc))),
						 errhint("Ask a member of consent_ledger_admin.")));
	}
}

/* Whether EXPLAIN runs the statement with row counts (ANALYZE). */
static bool
explain_analyzes(ExplainStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, "analyze") == 0)
			return defGetBoolean(opt);
	}
	return false;
}

/*
 * Whether an EXPLAIN ANALYZE is running: its per-node row counts ("Rows
 * Removed by Filter") would tell an untrusted role how many hidden rows
 * match its conditions (audit.c refuses such reads of protected data).
 */
bool
cl_explain_analyze_active(void)
{
	return explain_analyze_level > 0;
}

/*
 * An untrusted role's command drops part of a protected table.  Refused at
 * the end of the command rather than at once: when the command drops the
 * whole table, PostgreSQL reports its indexes, sequences and constraints
 * first, and the table's own refusal (above) says more.
 */
static void
note_part_drop(Oid relid, const char *what, Oid classId, Oid objectId, int subId)
{
	ObjectAddress addr;
	MemoryContext old;
	PartDrop   *d;

	addr.classId = classId;
	addr.objectId = objectId;
	addr.objectSubId = subId;
	old = MemoryContextSwitchTo(TopMemoryContext);
	d = palloc(sizeof(PartDrop));
	d->relid = relid;
	d->what = what;
	d->description = getObjectDescription(&addr, true);
	d->roleid = GetUserId();
	part_lost = lappend(part_lost, d);
	MemoryContextSwitchTo(old);
}

static void
forget_part_drops(void)
{
	list_free_deep(part_lost);
	part_lost = NIL;
}

/* Refuses the command if it dropped part of a protected table that still exists. */
static void
check_parts_kept(void)
{
	ListCell   *lc;

	foreach(lc, part_lost)
	{
		PartDrop   *d = lfirst(lc);

		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(d->relid)) && cl_is_protected(d->relid))
		{
			char	   *what = pstrdup(d->what);
			char	   *desc = pstrdup(d->description ? d->description : d->what);
			char	   *rel = get_rel_name(d->relid);
			char	   *role = GetUserNameFromId(d->roleid, false);

			forget_part_drops();
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("dropping %s of consent-protected table \"%s\" is not allowed for role \"%s\"",
							what, rel, role),
					 errdetail("The command would drop %s, removing data or integrity constraints of the protected table, hidden rows included.",
							   desc),
					 errhint("An administrator (a member of consent_ledger_admin) can drop it.")));
		}
	}
	forget_part_drops();
}

/* Refuses the command if a protected table that still exists lost a consent policy. */
static void
check_policies_kept(void)
{
	List	   *lost = policy_lost;
	ListCell   *lc;

	if (lost == NIL)
		return;
	policy_lost = NIL;
	foreach(lc, lost)
	{
		Oid			relid = lfirst_oid(lc);

		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)) && cl_is_protected(relid))
		{
			list_free(lost);
			refuse_unprotect(relid, "dropping its consent policies (by CASCADE)");
		}
	}
	list_free(lost);
}

/* The table of a row-level policy (InvalidOid if none) and, if name, its name. */
static Oid
policy_of(Oid policy, NameData *name)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_policy_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(policy));
	scan = systable_beginscan(rel, PolicyOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_policy p = (Form_pg_policy) GETSTRUCT(tup);

		relid = p->polrelid;
		if (name != NULL)
			*name = p->polname;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return relid;
}

/* A policy is being dropped: note protected tables that lose a consent policy. */
static void
note_policy_drop(Oid policy)
{
	NameData	name;
	Oid			relid = policy_of(policy, &name);

	if (OidIsValid(relid) && is_consent_policy(NameStr(name)) && cl_is_protected(relid))
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		policy_lost = lappend_oid(policy_lost, relid);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Types whose change would alter what stored ledger rows mean without
 * touching their bytes (README "Canonical row encoding"): renaming an
 * enum label, or renaming, dropping or retyping an attribute of a
 * composite type (ALTER TYPE, or ALTER TABLE on a table whose row type is
 * used), while a column of a ledger -- live or retired, its rows still
 * verify -- has a type that contains it (arrays, domains, ranges and
 * nested composites followed by cl_type_contains).  Adding an attribute
 * leaves encoding version 2 values unchanged but not version 1's, so it
 * is refused only while a version 1 ledger uses the type.  Adding an enum
 * value changes nothing stored.
 */
static bool
type_has_dependents(Oid typid, int depth)
{
	Relation	rel;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			array = get_array_type(typid);
	bool		found = false;

	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(TypeRelationId));
	ScanKeyInit(&keys[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(typid));
	scan = systable_beginscan(rel, DependReferenceIndexId, true, NULL, 2, keys);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend d = (Form_pg_depend) GETSTRUCT(tup);

		/* the type's own array type: used only if something uses the array */
		if (d->classid == TypeRelationId && d->objid == array && depth == 0)
			found = type_has_dependents(array, depth + 1);
		else
			found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Reads the ledgers' column types from the catalog caches, without opening
 * or locking a ledger table: this runs for column DDL on any table while
 * PostgreSQL holds ACCESS EXCLUSIVE on it, and must neither queue behind a
 * lock a ledger's owner holds nor add a deadlock.  Most types are used by
 * no column at all (a table's row type, typically): pg_depend says so
 * first, the way find_composite_type_dependencies() asks it (a column,
 * domain, range, array or composite attribute using the type depends on
 * it), and then no ledger is looked at.
 */
static bool
ledger_column_using(Oid typid, bool v1_only, char **ledger, char **column)
{
	ListCell   *lc;

	if (!OidIsValid(typid))
		return false;
	/* (built-in types are pinned: pg_depend records no use of them) */
	if (typid >= FirstNormalObjectId && !type_has_dependents(typid, 0))
		return false;
	foreach(lc, cl_ledger_list())
	{
		ClLedgerInfo *info = lfirst(lc);
		HeapTuple	reltup;
		int16		natts;

		if (v1_only && info->encoding != CL_ENCODING_V1)
			continue;
		reltup = SearchSysCache1(RELOID, ObjectIdGetDatum(info->relid));
		if (!HeapTupleIsValid(reltup))
			continue;			/* a dropped retired ledger: no rows left */
		natts = ((Form_pg_class) GETSTRUCT(reltup))->relnatts;
		for (int16 attnum = 1; attnum <= natts; attnum++)
		{
			HeapTuple	atttup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(info->relid),
												 Int16GetDatum(attnum));
			Form_pg_attribute att;
			bool		found;

			if (!HeapTupleIsValid(atttup))
				continue;
			att = (Form_pg_attribute) GETSTRUCT(atttup);
			found = !att->attisdropped && cl_type_contains(att->atttypid, typid);
			if (found)
			{
				*ledger = pstrdup(NameStr(((Form_pg_class) GETSTRUCT(reltup))->relname));
				*column = pstrdup(NameStr(att->attname));
			}
			ReleaseSysCache(atttup);
			if (found)
			{
				ReleaseSysCache(reltup);
				return true;
			}
		}
		ReleaseSysCache(reltup);
	}
	return false;
}

static void
refuse_type_change(Oid typid, const char *what, bool v1_only, const char *detail,
				   const char *hint)
{
	char	   *ledger;
	char	   *column;

	if (!ledger_column_using(typid, v1_only, &ledger, &column))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s type %s: column \"%s\" of ledger table \"%s\" uses it",
					what, format_type_be(typid), column, ledger),
			 errdetail("%s", detail),
			 errhint("%s", hint)));
}

#define TYPE_DETAIL_ATTRS "Ledger rows are hashed with the attribute names and values of their composite values; this would change what rows already in the ledger say."
#define TYPE_HINT_ATTRS "Create a new type and a new column or ledger that uses it."

/*
 * Runs before PostgreSQL's own checks, so it says nothing unless the
 * current user owns the object the statement alters: another role gets
 * PostgreSQL's ownership error, which names no ledger table or column.
 * (The object access hook below checks the same changes again, after
 * PostgreSQL's checks, on every route.)
 */
static void
check_type_meaning(Node *parsetree)
{
	NodeTag		tag = nodeTag(parsetree);

	/* cheap tests first: this runs for every utility statement */
	if (tag != T_AlterEnumStmt && tag != T_RenameStmt && tag != T_AlterTableStmt)
		return;
	if (cl_internal_ddl || !cl_extension_present())
		return;
	switch (tag)
	{
		case T_AlterEnumStmt:
			{
				AlterEnumStmt *es = (AlterEnumStmt *) parsetree;

				Oid			typid;

				if (es->oldVal == NULL)
					break;		/* ADD VALUE */
				typid = LookupTypeNameOid(NULL, makeTypeNameFromNameList(es->typeName), true);
				if (!OidIsValid(typid) || !pg_type_ownercheck(typid, GetUserId()))
					break;		/* PostgreSQL's own error names no ledger */
				refuse_type_change(typid, "rename a value of enum", false,
								   "Ledger rows are hashed with enum labels; renaming one would change what rows already in the ledger say.",
								   "Add a new value with ALTER TYPE ... ADD VALUE instead.");
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *rs = (RenameStmt *) parsetree;
				Oid			relid;

				if ((rs->renameType != OBJECT_ATTRIBUTE && rs->renameType != OBJECT_COLUMN) ||
					rs->relation == NULL)
					break;
				relid = RangeVarGetRelid(rs->relation, NoLock, true);
				if (OidIsValid(relid) && pg_class_ownercheck(relid, GetUserId()))
					refuse_type_change(get_rel_type_id(relid), "rename an attribute of", false,
									   TYPE_DETAIL_ATTRS, TYPE_HINT_ATTRS);
				break;
			}
		case T_AlterTableStmt:
			{
				AlterTableStmt *as = (AlterTableStmt *) parsetree;
				Oid			relid;
				Oid			rowtype;
				ListCell   *lc;
				bool		relevant = false;

				foreach(lc, as->cmds)
				{
					AlterTableType t = lfirst_node(AlterTableCmd, lc)->subtype;

					if (t == AT_DropColumn || t == AT_AlterColumnType || t == AT_AddColumn)
						relevant = true;
				}
				if (!relevant)
					break;
				relid = RangeVarGetRelid(as->relation, NoLock, true);
				rowtype = OidIsValid(relid) && pg_class_ownercheck(relid, GetUserId()) ?
					get_rel_type_id(relid) : InvalidOid;
				if (!OidIsValid(rowtype))
					break;
				foreach(lc, as->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_DropColumn)
						refuse_type_change(rowtype, "drop an attribute of", false,
										   TYPE_DETAIL_ATTRS, TYPE_HINT_ATTRS);
					else if (cmd->subtype == AT_AlterColumnType)
						refuse_type_change(rowtype, "change an attribute's type in", false,
										   TYPE_DETAIL_ATTRS, TYPE_HINT_ATTRS);
					else if (cmd->subtype == AT_AddColumn)
						refuse_type_change(rowtype, "add an attribute to", true,
										   "A ledger in encoding version 1 hashes composite values by position, so a new attribute would change rows already in the ledger.",
										   "Create a new type, or use it in ledgers made since version 1.2 (encoding version 2).");
				}
				break;
			}
		default:
			break;
	}
}

/*
 * The same rule, whatever the route (README "Canonical row encoding"):
 * check_type_meaning() above sees only the object a statement names, but
 * a column is also renamed, dropped, retyped or added through inheritance
 * children, typed tables (ALTER TYPE ... CASCADE) and dependency cascades
 * (DROP DOMAIN / DROP TYPE ... CASCADE dropping a composite attribute).
 * PostgreSQL invokes the object access hook for every one of them, on the
 * attribute itself (classId RelationRelationId, subId = attnum):
 * OAT_DROP from dependency.c's deleteOneObject before the attribute goes,
 * OAT_POST_ALTER from renameatt_internal and ATExecAlterColumnType after
 * the catalog update and before the command counter moves (so the old row
 * is visible to the catalog snapshot and the new one to SnapshotSelf),
 * and OAT_POST_CREATE from ATExecAddColumn.
 */
typedef struct AttrState
{
	NameData	name;
	Oid			typid;
	int32		typmod;
} AttrState;

static bool
fetch_attr_state(Oid relid, int16 attnum, Snapshot snap, AttrState *st)
{
	Relation	rel = table_open(AttributeRelationId, AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&keys[0], Anum_pg_attribute_attrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_attribute_attnum, BTEqualStrategyNumber, F_INT2EQ,
				Int16GetDatum(attnum));
	scan = systable_beginscan(rel, AttributeRelidNumIndexId, true, snap, 2, keys);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(tup);

		st->name = att->attname;
		st->typid = att->atttypid;
		st->typmod = att->atttypmod;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static void
refuse_attribute_change(Oid relid, const char *verb, const char *attname, bool v1_only)
{
	Oid			rowtype = get_rel_type_id(relid);
	char	   *ledger;
	char	   *column;

	if (!OidIsValid(rowtype) || !ledger_column_using(rowtype, v1_only, &ledger, &column))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s attribute \"%s\" %s type %s", verb, attname,
					v1_only ? "to" : "of", format_type_be(rowtype)),
			 v1_only ?
			 errdetail("Column \"%s\" of ledger table \"%s\" uses type %s, and a ledger in encoding version 1 hashes composite values by position, so a new attribute would change rows already in the ledger.",
					   column, ledger, format_type_be(rowtype)) :
			 errdetail("Column \"%s\" of ledger table \"%s\" uses type %s. Ledger rows are hashed with the attribute names and values of their composite values; this would change what rows already in the ledger say.",
					   column, ledger, format_type_be(rowtype)),
			 v1_only ?
			 errhint("Create a new type, or use it in ledgers made since version 1.2 (encoding version 2).") :
			 errhint(TYPE_HINT_ATTRS)));
}

static void
check_attribute_access(ObjectAccessType access, Oid relid, int16 attnum)
{
	AttrState	old;
	AttrState	cur;

	switch (access)
	{
		case OAT_DROP:
			/* a live ledger's own column: refused by cl_object_access */
			if (fetch_attr_state(relid, attnum, NULL, &old))
				refuse_attribute_change(relid, "drop", NameStr(old.name), false);
			break;
		case OAT_POST_CREATE:
			if (fetch_attr_state(relid, attnum, SnapshotSelf, &cur))
				refuse_attribute_change(relid, "add", NameStr(cur.name), true);
			break;
		case OAT_POST_ALTER:
			/* SET STATISTICS, SET STORAGE, NOT NULL ... change neither */
			if (!fetch_attr_state(relid, attnum, NULL, &old) ||
				!fetch_attr_state(relid, attnum, SnapshotSelf, &cur))
				break;
			/* (a ledger's own columns: no parent, not typed, RENAME refused) */
			if (strcmp(NameStr(old.name), NameStr(cur.name)) != 0)
				refuse_attribute_change(relid, "rename", NameStr(old.name), false);
			if (old.typid != cur.typid || old.typmod != cur.typmod)
				refuse_attribute_change(relid, "change the type of", NameStr(old.name), false);
			break;
		default:
			break;
	}
}

/*
 * A column of a retired ledger with personal columns, which erase_subject()
 * still rewrites by their names (README "Erasure"): not dropped, renamed or
 * retyped, by any route -- directly (check_alter_table, check_rename), or
 * through a parent it was attached to or inherits from.
 */
static void
check_retired_column_change(ObjectAccessType access, Oid relid, int16 attnum)
{
	AttrState	old;
	AttrState	cur;
	const char *what = NULL;

	if (!fetch_attr_state(relid, attnum, NULL, &old))
		return;
	if (access == OAT_DROP)
		what = "DROP COLUMN";
	else if (access == OAT_POST_ALTER && fetch_attr_state(relid, attnum, SnapshotSelf, &cur))
	{
		if (strcmp(NameStr(old.name), NameStr(cur.name)) != 0)
			what = "RENAME COLUMN";
		else if (old.typid != cur.typid || old.typmod != cur.typmod)
			what = "ALTER COLUMN ... TYPE";
	}
	if (what != NULL)
		refuse_ddl(get_rel_name(relid), what,
				   "A retired ledger with personal columns is still erased by erase_subject(), by its column names; drop the table when it is no longer needed.");
}

/*
 * ALTER TYPE ... SET (SEND = ..., RECEIVE = ...), which an extension
 * update runs (ltree 1.1 -> 1.2 and cube 1.4 -> 1.5 add binary send
 * functions), changes how the canonical row encoding writes the type's
 * values (tag 'o' becomes 's'): every ledger row holding one would stop
 * verifying.  Refused while a ledger column's type contains the type.
 * OAT_POST_ALTER comes from AlterTypeRecurse after the catalog update and
 * before the command counter moves: the old pg_type row is visible to the
 * catalog snapshot, the new one to SnapshotSelf.
 */
typedef struct TypeCodecState
{
	Oid			typinput;
	Oid			typoutput;
	Oid			typreceive;
	Oid			typsend;
} TypeCodecState;

static bool
fetch_type_codec(Oid typid, Snapshot snap, TypeCodecState *st)
{
	Relation	rel = table_open(TypeRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_pg_type_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(typid));
	scan = systable_beginscan(rel, TypeOidIndexId, true, snap, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_type t = (Form_pg_type) GETSTRUCT(tup);

		st->typinput = t->typinput;
		st->typoutput = t->typoutput;
		st->typreceive = t->typreceive;
		st->typsend = t->typsend;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

static void
check_type_codec_change(Oid typid)
{
	TypeCodecState old;
	TypeCodecState cur;
	char	   *ledger;
	char	   *column;

	if (!fetch_type_codec(typid, NULL, &old) || !fetch_type_codec(typid, SnapshotSelf, &cur))
		return;
	if (old.typinput == cur.typinput && old.typoutput == cur.typoutput &&
		old.typreceive == cur.typreceive && old.typsend == cur.typsend)
		return;					/* RENAME, OWNER, SET SCHEMA, SET (STORAGE ...) */
	if (!ledger_column_using(typid, false, &ledger, &column))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot change the input, output, send or receive function of type %s: column \"%s\" of ledger table \"%s\" uses it",
					format_type_be(typid), column, ledger),
			 errdetail("Ledger rows are hashed with the type's binary send form, or its output text when it has none; changing its functions would change the bytes of rows already in the ledger, and they would no longer verify."),
			 errhint("Keep the extension or type at its current version while a ledger stores it, or retire and drop the ledgers that use it first.")));
}

typedef struct ColumnNames
{
	Oid			relid;
	List	   *names;
} ColumnNames;

/*
 * Column names a raw expression refers to (the last field of each
 * ColumnRef); "*" for a whole-row reference: t.*, or a bare name that is
 * no column of the table (the table's own name, as in f(t)).
 */
static bool
collect_column_names(Node *node, ColumnNames *cn)
{
	if (node == NULL)
		return false;
	if (IsA(node, ColumnRef))
	{
		List	   *fields = ((ColumnRef *) node)->fields;
		Node	   *last = llast(fields);

		if (!IsA(last, String))
			cn->names = lappend(cn->names, "*");
		else if (list_length(fields) == 1 && get_attnum(cn->relid, strVal(last)) == InvalidAttrNumber)
			cn->names = lappend(cn->names, "*");
		else
			cn->names = lappend(cn->names, strVal(last));
		return false;
	}
	return raw_expression_tree_walker(node, collect_column_names, (void *) cn);
}

/*
 * CREATE INDEX on a ledger with personal columns (or a partitioned one),
 * checked before it runs -- CREATE INDEX CONCURRENTLY commits before any
 * check after it: no unique or exclusion index in which erased rows
 * (personal values NULL, the salt an erasure record) could collide
 * (erase.c, refuse_indexes, checks the built ones after ALTER TABLE).
 */
static void
check_index_stmt(IndexStmt *stmt, Oid relid)
{
	ClLedgerInfo *info;
	List	   *personal;
	char	   *subject;
	ColumnNames cn = {relid, NIL};
	List	   *names;
	ListCell   *lc;

	if (!OidIsValid(relid) || cl_internal_ddl || (!stmt->unique && !stmt->excludeOpNames) ||
		!cl_extension_present())
		return;
	info = cl_ledger_lookup(relid);
	if (info != NULL && info->encoding >= CL_ENCODING_V3)
		personal = cl_ledger_personal(info->ledger_id, NULL);
	else if (info == NULL && cl_is_partitioned_ledger(relid))
		personal = cl_partitioned_ledger_personal(relid, &subject);
	else
		return;
	if (personal == NIL)
		return;
	personal = lappend(list_copy(personal), (void *) CL_SALT_COLUMN);
	foreach(lc, stmt->indexParams)
	{
		IndexElem  *e = lfirst(lc);

		if (e->expr != NULL)
			(void) collect_column_names(e->expr, &cn);
		else if (e->name != NULL && stmt->nulls_not_distinct)
			cn.names = lappend(cn.names, e->name);
	}
	(void) collect_column_names(stmt->whereClause, &cn);
	names = cn.names;
	foreach(lc, names)
	{
		ListCell   *lc2;

		foreach(lc2, personal)
			if (strcmp((const char *) lfirst(lc), "*") == 0 ||
				strcmp((const char *) lfirst(lc), (const char *) lfirst(lc2)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("unique index on \"%s\" would let erased rows collide", get_rel_name(relid)),
						 errdetail("Erasure sets a subject's personal values to NULL and replaces the salt by an erasure record; with NULLS NOT DISTINCT, or an expression or predicate reading them, rows that differed may then be equal in the index."),
						 errhint("Index the personal columns plainly (NULLs are distinct), or leave them out of the expression and the predicate.")));
	}
}

/*
 * Of the relations CREATE TABLE created itself (those nested commands
 * created are in their own lists), the table: the first of a table's kind
 * (its TOAST table, indexes and sequences are of other kinds).  By OID: a
 * function in a partition bound may rename it before the command ends.
 */
static Oid
created_table(void)
{
	ListCell   *lc;

	foreach(lc, created_relations)
	{
		Oid			relid = lfirst_oid(lc);
		char		relkind = get_rel_relkind(relid);

		if (relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE ||
			relkind == RELKIND_FOREIGN_TABLE)
			return relid;
	}
	return InvalidOid;
}

static void
cl_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				  ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		save_dropping = dropping_extension;
	int			save_explain = explain_analyze_level;
	void	   *copy_read = NULL;
	List	   *save_created = created_relations;
	bool		save_collecting = collecting_created;
	Oid			target = InvalidOid;	/* the table ALTER TABLE or CREATE INDEX acts on */
	Oid			created = InvalidOid;	/* the table CREATE TABLE made */
	bool		attaching = false;
	List	   *attached = NIL; /* the partitions ATTACH names, as found before */

	/*
	 * While a ledger's rewritten heap is swapped in, the table owner's
	 * index expressions run with the guards relaxed: nothing they run may
	 * change anything (ledger.c, cl_swapping_ledger).
	 */
	if (cl_swapping_ledger)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no command may run while consent_ledger rewrites a ledger"),
				 errdetail("An index expression or predicate of the ledger ran a command while its indexes were rebuilt."),
				 errhint("Index expressions must not run SQL commands.")));

	/*
	 * Looked up before the command runs, as PostgreSQL looks them up, before
	 * any code of the user's runs (a partition bound's function, a
	 * CHECK's, a default may change search_path, or names).  ATTACH
	 * PARTITION looks its partition up after the bound is computed: every
	 * partition of the target is reconciled after it instead.
	 */
	if (IsA(parsetree, AlterTableStmt) && ((AlterTableStmt *) parsetree)->objtype == OBJECT_TABLE)
	{
		ListCell   *lc;

		target = RangeVarGetRelid(((AlterTableStmt *) parsetree)->relation, NoLock, true);
		foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);

			if (cmd->subtype == AT_AttachPartition && IsA(cmd->def, PartitionCmd))
			{
				attaching = true;
				attached = lappend_oid(attached,
									   RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true));
			}
		}
	}
	else if (IsA(parsetree, IndexStmt))
	{
		target = RangeVarGetRelid(((IndexStmt *) parsetree)->relation, NoLock, true);
		check_index_stmt((IndexStmt *) parsetree, target);
	}

	check_type_meaning(parsetree);
	if (IsA(parsetree, CopyStmt) && ((CopyStmt *) parsetree)->is_from)
		cl_tableam_refuse_writes();
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			check_alter_table((AlterTableStmt *) parsetree);
			break;
		case T_RenameStmt:
			check_rename((RenameStmt *) parsetree);
			if (((RenameStmt *) parsetree)->renameType == OBJECT_SCHEMA)
				check_schema_rename(((RenameStmt *) parsetree)->subname);
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				cl_seal_block_database(database_to_free(parsetree));
			break;
		case T_CreatePolicyStmt:
			{
				CreatePolicyStmt *ps = (CreatePolicyStmt *) parsetree;
				Oid			relid = RangeVarGetRelid(ps->table, NoLock, true);

				/*
				 * Another permissive policy, for any command, would be OR-ed
				 * past the consent check of that command (a permissive DELETE
				 * policy lets a trigger or RETURNING see hidden rows).
				 * Re-creating one of the consent policies exactly while it is
				 * missing is what pg_restore does.
				 */
				if (OidIsValid(relid) && !cl_internal_ddl && ps->permissive &&
					cl_extension_present() && cl_is_protected(relid) &&
					!is_consent_policy_restore(relid, ps))
					refuse_unprotect(relid, "another permissive policy");
				break;
			}
		case T_IndexStmt:
			{
				IndexStmt  *is = (IndexStmt *) parsetree;
				Oid			relid = RangeVarGetRelid(is->relation, NoLock, true);
				ListCell   *lc;
				bool		computes = is->whereClause != NULL;

				foreach(lc, is->indexParams)
					if (((IndexElem *) lfirst(lc))->expr != NULL)
						computes = true;
				/* an expression or partial index evaluates code on every row */
				if (computes && OidIsValid(relid) && !cl_internal_ddl &&
					cl_extension_present() && cl_is_protected(relid))
					refuse_unprotect(relid, "an expression or partial index");
				break;
			}
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *ts = (CreateTrigStmt *) parsetree;
				Oid			relid = RangeVarGetRelid(ts->relation, NoLock, true);

				check_internal_table_lock(relid, "CREATE TRIGGER");

				/*
				 * Names "~consent_ledger_..." are kept for the extension's
				 * triggers (which are recognised by their function anyway:
				 * custody.c): an untrusted role's trigger may not take one.
				 */
				if (OidIsValid(relid) && !cl_internal_ddl && is_reserved_trigger_name(ts->trigname) &&
					cl_extension_present() && !cl_role_is_trusted(GetUserId()) &&
					!cl_is_extension_trigger_function(LookupFuncName(ts->funcname, 0, NULL, true), NULL))
					refuse_reserved_trigger_name(ts->trigname);

				/*
				 * CREATE OR REPLACE TRIGGER over one of the extension's
				 * triggers would drop it as surely as DROP TRIGGER: refused
				 * on a live ledger and an audited table, for every role.
				 */
				if (ts->replace && OidIsValid(relid) && !cl_internal_ddl && cl_extension_present() &&
					is_our_trigger(relid, ts->trigname))
				{
					if (is_live_ledger(relid))
						refuse_ddl(get_rel_name(relid), "replacing the ledger's own triggers",
								   "Call consent_ledger.retire_ledger() first if the ledger is no longer needed.");
					if (cl_is_audited(relid))
						ereport(ERROR,
								(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
								 errmsg("replacing the audit triggers is not allowed on audited table \"%s\"",
										get_rel_name(relid)),
								 errdetail("Every change to an audited table is recorded in the audit ledger.")));
				}

				/* a trigger runs its author's code over rows others write */
				if (OidIsValid(relid) && !cl_internal_ddl && cl_extension_present() &&
					cl_is_protected(relid) && !cl_role_is_trusted(GetUserId()))
					refuse_untrusted(relid, "a trigger",
									 "An administrator (a member of consent_ledger_admin) can create triggers on protected tables.");
				break;
			}
		case T_VacuumStmt:
		case T_ReindexStmt:
			check_maintenance(parsetree);
			break;
		case T_AlterDomainStmt:
			check_alter_domain((AlterDomainStmt *) parsetree);
			break;
		case T_AlterPolicyStmt:
			{
				AlterPolicyStmt *ps = (AlterPolicyStmt *) parsetree;
				Oid			relid = RangeVarGetRelid(ps->table, NoLock, true);

				if (OidIsValid(relid) && !cl_internal_ddl && cl_extension_present() &&
					cl_is_protected(relid))
					refuse_unprotect(relid, "ALTER POLICY");
				break;
			}
		case T_CreateStmt:
			{
				ListCell   *lc;

				check_create_foreign_keys((CreateStmt *) parsetree);

				foreach(lc, ((CreateStmt *) parsetree)->inhRelations)
				{
					Oid			parent = RangeVarGetRelid(lfirst_node(RangeVar, lc), NoLock, true);

					/* a partition of a partitioned ledger is a ledger (partition.c) */
					if (is_live_ledger(parent) &&
						!(((CreateStmt *) parsetree)->partbound != NULL &&
						  cl_is_partitioned_ledger(parent)))
						refuse_ddl(get_rel_name(parent), "INHERITS or PARTITION OF",
								   "A ledger table must stand alone.");
				}
				break;
			}
		case T_RuleStmt:
			{
				RuleStmt   *rs = (RuleStmt *) parsetree;
				Oid			relid = RangeVarGetRelid(rs->relation, NoLock, true);

				check_internal_table_lock(relid, "CREATE RULE");

				if (is_live_ledger(relid))
					refuse_ddl(get_rel_name(relid), "CREATE RULE",
							   "A rule could redirect or drop inserted rows.");
				/* (an ON SELECT rule would turn a table erasure rewrites into a view) */
				if (is_retired_erasable_ledger(relid))
					refuse_ddl(get_rel_name(relid), "CREATE RULE",
							   "A retired ledger with personal columns is still erased by erase_subject(); drop the table when it is no longer needed.");
				break;
			}
		case T_DropStmt:
			if (((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
				check_drop_extension((DropStmt *) parsetree);
			else if (((DropStmt *) parsetree)->removeType == OBJECT_TABLE)
				check_drop_table((DropStmt *) parsetree);
			else if (((DropStmt *) parsetree)->removeType == OBJECT_POLICY && !cl_internal_ddl &&
					 cl_extension_present())
			{
				ListCell   *lc;

				foreach(lc, ((DropStmt *) parsetree)->objects)
				{
					List	   *name = (List *) lfirst(lc);
					Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(list_truncate(list_copy(name), list_length(name) - 1)),
														 NoLock, true);

					if (OidIsValid(relid) && is_consent_policy(strVal(llast(name))) &&
						cl_is_protected(relid))
						refuse_unprotect(relid, "dropping its consent policy");
				}
			}
			break;
		case T_AlterObjectSchemaStmt:
			{
				/* a protected table moved into a published schema */
				AlterObjectSchemaStmt *as = (AlterObjectSchemaStmt *) parsetree;

				if (as->objectType == OBJECT_TABLE && as->relation != NULL && cl_extension_present())
				{
					Oid			relid = RangeVarGetRelid(as->relation, NoLock, true);
					Oid			nsp = get_namespace_oid(as->newschema, true);

					if (OidIsValid(relid) && OidIsValid(nsp) && cl_is_protected(relid) &&
						GetSchemaPublications(nsp) != NIL)
						refuse_publish(relid, "FOR TABLES IN SCHEMA");
				}
				break;
			}
		case T_CreatePublicationStmt:
			check_publication_objects(((CreatePublicationStmt *) parsetree)->pubobjects,
									  ((CreatePublicationStmt *) parsetree)->for_all_tables);
			break;
		case T_AlterPublicationStmt:
			if (((AlterPublicationStmt *) parsetree)->action != AP_DropObjects)
				check_publication_objects(((AlterPublicationStmt *) parsetree)->pubobjects,
										  ((AlterPublicationStmt *) parsetree)->for_all_tables);
			break;
		case T_DropdbStmt:
		case T_AlterDatabaseStmt:
		case T_CreatedbStmt:
			cl_seal_block_database(database_to_free(parsetree));
			break;
		default:
			break;
	}

	/*
	 * COPY table TO by a role that row-level security does not apply to
	 * reads the heap without the executor: audited here, started before
	 * the first row goes out.  (When RLS applies, COPY runs a query and
	 * the executor hooks record it.)
	 */
	if (IsA(parsetree, CopyStmt) && !((CopyStmt *) parsetree)->is_from &&
		((CopyStmt *) parsetree)->relation != NULL)
	{
		Oid			relid = RangeVarGetRelid(((CopyStmt *) parsetree)->relation, NoLock, true);

		if (OidIsValid(relid) && check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED)
			copy_read = cl_audit_copy_begin(relid, "COPY TO");
	}
	if (IsA(parsetree, ExplainStmt) && explain_analyzes((ExplainStmt *) parsetree))
		explain_analyze_level++;
	else
		save_explain = -1;
	PG_TRY();
	{
		/* (set here: an error before leaves them as they were) */
		created_relations = NIL;
		collecting_created = IsA(parsetree, CreateStmt) || IsA(parsetree, CreateForeignTableStmt);
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
		if (collecting_created)
			created = created_table();
		created_relations = save_created;
		collecting_created = save_collecting;
	}
	PG_CATCH();
	{
		dropping_extension = save_dropping;
		created_relations = save_created;
		collecting_created = save_collecting;
		if (save_explain >= 0)
			explain_analyze_level = save_explain;
		list_free(policy_lost);
		policy_lost = NIL;
		forget_part_drops();
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (dropping_extension && !save_dropping)
	{
		Oid			nsp = drop_extension_schema;

		drop_extension_schema = InvalidOid;
		if (!cl_extension_present())
			drop_extension_schema_if_empty(nsp);
	}
	dropping_extension = save_dropping;
	if (save_explain >= 0)
		explain_analyze_level = save_explain;
	check_policies_kept();
	check_parts_kept();
	{
		/* new partitions get their parent's protection, audit and ledger */
		cl_partition_after_utility(parsetree, created, attaching ? target : InvalidOid, attached);
		/* (no catalog lookup after BEGIN, COMMIT and the like) */
		if ((OidIsValid(target) || OidIsValid(created)) && cl_extension_present())
		{
			/*
			 * No constraint on the stamp of a ledger on the access method,
			 * nor one erasure could not keep to (ledger.c), after ALTER
			 * TABLE and CREATE INDEX; no foreign key to a personal column
			 * of a ledger (erase.c), after ALTER and CREATE TABLE.
			 */
			if (OidIsValid(target))
				cl_refuse_stamp_constraints(target);
			if (OidIsValid(target) && IsA(parsetree, AlterTableStmt))
				cl_refuse_foreign_keys_to_personal(target);
			if (OidIsValid(created))
				cl_refuse_foreign_keys_to_personal(created);
		}
	}

	cl_audit_copy_end(copy_read, qc ? qc->nprocessed : 0);
}

static void
check_drop_trigger(Oid trigoid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);

		if ((cl_is_extension_trigger_function(trig->tgfoid, "ledger_stamp") ||
			 cl_is_extension_trigger_function(trig->tgfoid, "ledger_guard")) &&
			is_live_ledger(trig->tgrelid))
			refuse_ddl(get_rel_name(trig->tgrelid), "dropping the ledger's own triggers",
					   "Call consent_ledger.retire_ledger() first if the ledger is no longer needed.");
		if (cl_is_extension_trigger_function(trig->tgfoid, "audit_row") &&
			cl_is_audited(trig->tgrelid))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("dropping the audit triggers is not allowed on audited table \"%s\"",
							get_rel_name(trig->tgrelid)),
					 errdetail("Every change to an audited table is recorded in the audit ledger.")));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * The protected table a dropped object belongs to, or InvalidOid: a column
 * of it, its index, a sequence it owns (serial, identity), a column
 * default, a constraint or a policy on it.  Such objects go with the
 * table into custody, yet PostgreSQL lets the owner of their schema drop
 * them, and the owner of a type, domain, collation or function they depend
 * on drop them with CASCADE (rev3 F2, F2b).
 */
static Oid
protected_table_of(Oid classId, Oid objectId, int subId, const char **what)
{
	Oid			relid = InvalidOid;

	if (classId == RelationRelationId && subId > 0)
	{
		relid = objectId;
		*what = "a column";
	}
	else if (classId == RelationRelationId)
	{
		char		relkind = get_rel_relkind(objectId);
		int32		col;

		if (relkind == RELKIND_INDEX || relkind == RELKIND_PARTITIONED_INDEX)
		{
			relid = IndexGetRelation(objectId, true);
			*what = "an index";
		}
		else if (relkind == RELKIND_SEQUENCE &&
				 (sequenceIsOwned(objectId, DEPENDENCY_AUTO, &relid, &col) ||
				  sequenceIsOwned(objectId, DEPENDENCY_INTERNAL, &relid, &col)))
			*what = "a sequence";
		else
			relid = InvalidOid;
	}
	else if (classId == AttrDefaultRelationId)
	{
		ObjectAddress col = GetAttrDefaultColumnAddress(objectId);

		relid = col.objectId;
		*what = "a column default";
	}
	else if (classId == ConstraintRelationId)
	{
		HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(objectId));

		if (HeapTupleIsValid(tup))
		{
			relid = ((Form_pg_constraint) GETSTRUCT(tup))->conrelid;
			ReleaseSysCache(tup);
		}
		*what = "a constraint";
	}
	else if (classId == PolicyRelationId)
	{
		relid = policy_of(objectId, NULL);
		*what = "a policy";
	}
	return (OidIsValid(relid) && cl_is_protected(relid)) ? relid : InvalidOid;
}

static void
cl_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);

	if ((access != OAT_DROP && access != OAT_POST_ALTER && access != OAT_POST_CREATE) ||
		dropping_extension || cl_internal_ddl)
		return;
	if (access == OAT_POST_CREATE && classId == RelationRelationId && subId == 0 &&
		collecting_created)
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		created_relations = lappend_oid(created_relations, objectId);
		MemoryContextSwitchTo(old);
		return;
	}
	if (access == OAT_POST_ALTER && classId == TypeRelationId && subId == 0)
	{
		if (cl_extension_present())
			check_type_codec_change(objectId);
		return;
	}
	if (access != OAT_DROP && (classId != RelationRelationId || subId <= 0))
		return;					/* cheap tests first: every CREATE and ALTER comes here */
	if (!cl_extension_present())
		return;
	/* (a live ledger's own column drop is refused below, with its own message) */
	if (classId == RelationRelationId && subId > 0 &&
		(access != OAT_DROP || !is_live_ledger(objectId)))
		check_attribute_access(access, objectId, (int16) subId);
	if (classId == RelationRelationId && subId > 0 && is_retired_erasable_ledger(objectId))
		check_retired_column_change(access, objectId, (int16) subId);
	if (access != OAT_DROP)
		return;
	/*
	 * A purpose view lives in a schema an administrator chose; the owner of
	 * that schema (public's is the database owner) could drop it and put a
	 * view of its own in its place.  Only trusted roles drop purpose views.
	 */
	if (classId == RelationRelationId && subId == 0 && cl_view_purpose_cached(objectId) != NULL &&
		!cl_role_is_trusted(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("dropping purpose view \"%s\" is not allowed for role \"%s\"",
						get_rel_name(objectId), GetUserNameFromId(GetUserId(), false)),
				 errdetail("Analysts read consented rows through it; only an administrator drops it."),
				 errhint("Ask a member of consent_ledger_admin.")));
	/*
	 * Likewise a protected table (any partition of one): the owner of its
	 * schema could drop it, also by DROP SCHEMA ... CASCADE, and put a table
	 * of its own, without the consent policy, in its place.  Trusted roles
	 * drop it (after unprotect(), or directly).  Internal drops (temporary
	 * tables at session end) are not refused.
	 */
	if (classId == RelationRelationId && subId == 0 &&
		(arg == NULL || (((ObjectAccessDrop *) arg)->dropflags & PERFORM_DELETION_INTERNAL) == 0) &&
		!cl_role_is_trusted(GetUserId()) && cl_is_protected(objectId))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("dropping consent-protected table \"%s\" is not allowed for role \"%s\"",
						get_rel_name(objectId), GetUserNameFromId(GetUserId(), false)),
				 errdetail("A table of another role could be put in its place, without the consent policy."),
				 errhint("An administrator (a member of consent_ledger_admin) drops it, or removes the protection with consent_ledger.unprotect() first.")));

	/*
	 * Nor what the table is made of: a column (DROP COLLATION / DOMAIN /
	 * TYPE ... CASCADE), an index or owned sequence (by the schema's
	 * owner), a default, constraint or policy (by the owner of a function
	 * or type it uses, with CASCADE).  PostgreSQL reports each object a
	 * cascade removes, so whatever the route, an untrusted role's command
	 * that would take part of a protected table away is refused.
	 */
	if ((classId == RelationRelationId || classId == AttrDefaultRelationId ||
		 classId == ConstraintRelationId || classId == PolicyRelationId) &&
		(arg == NULL || (((ObjectAccessDrop *) arg)->dropflags & PERFORM_DELETION_INTERNAL) == 0) &&
		!cl_role_is_trusted(GetUserId()))
	{
		const char *what = NULL;
		Oid			prot = protected_table_of(classId, objectId, subId, &what);

		if (OidIsValid(prot))
			note_part_drop(prot, what, classId, objectId, subId);
	}

	/*
	 * A retired partition still attached to a live partitioned ledger: dropped,
	 * a new partition of the same bounds would take its place and verify()
	 * of the parent would pass over the swapped rows.
	 */
	if (classId == RelationRelationId && subId == 0 && get_rel_relispartition(objectId))
	{
		Oid			parent = get_partition_parent(objectId, true);

		if (OidIsValid(parent) && is_live_ledger(parent))
			refuse_ddl(get_rel_name(objectId), "DROP TABLE of a partition of a live ledger",
					   "Retire the partitioned ledger first: consent_ledger.retire_ledger() of its topmost table.");
	}
	if (classId == RelationRelationId && subId == 0 && !is_live_ledger(objectId))
	{
		cl_registry_forget(objectId);
		/* a retired ledger's table: its log and checkpoints stay (verify.c) */
		cl_ledger_note_dropped(objectId);
	}
	if (classId == RelationRelationId && is_live_ledger(objectId))
	{
		if (subId == 0)
			refuse_ddl(get_rel_name(objectId), "DROP TABLE",
					   "Call consent_ledger.retire_ledger() first; its log and checkpoints are kept.");
		else
			refuse_ddl(get_rel_name(objectId), "dropping a column",
					   "Retire the ledger and create a new one to change its columns.");
	}
	else if (classId == TriggerRelationId)
		check_drop_trigger(objectId);
	else if (classId == PolicyRelationId)
		note_policy_drop(objectId);
}

/*
 * INSERT ... ON CONFLICT whose target is a live ledger, wherever it comes
 * from: a plain statement, a CTE, an updatable view, a rule or a function
 * body.  Checked on the plan, at executor start, so that nothing escapes
 * (a BEGIN ATOMIC body is never parsed again).  A data-modifying CTE's
 * ModifyTable is a top node of one of the statement's subplans.
 */
static void
check_modify_table(PlannedStmt *stmt, Plan *plan)
{
	ModifyTable *mt;
	ListCell   *lc;

	if (plan == NULL || !IsA(plan, ModifyTable))
		return;
	mt = (ModifyTable *) plan;
	if (mt->operation != CMD_INSERT || mt->onConflictAction == ONCONFLICT_NONE)
		return;
	foreach(lc, mt->resultRelations)
	{
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), stmt->rtable);

		if (rte->rtekind == RTE_RELATION && is_live_ledger(rte->relid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("INSERT ... ON CONFLICT is not supported on ledger table \"%s\"",
							get_rel_name(rte->relid)),
					 errdetail("A row skipped on conflict would already be counted in the ledger's log."),
					 errhint("Check for the row first, or insert into a staging table.")));
	}
}

void
cl_guard_check_plan(PlannedStmt *stmt)
{
	ListCell   *lc;

	if (stmt->commandType == CMD_SELECT && !stmt->hasModifyingCTE)
		return;
	/* no row stored while a ledger's index build shows heap's routine (tableam.c) */
	cl_tableam_refuse_writes();
	if (!cl_extension_present())
		return;
	check_modify_table(stmt, stmt->planTree);
	foreach(lc, stmt->subplans)
		check_modify_table(stmt, (Plan *) lfirst(lc));
}

void
cl_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = cl_ProcessUtility;
	prev_object_access = object_access_hook;
	object_access_hook = cl_object_access;
}
