/*-------------------------------------------------------------------------
 * custody.c
 *	  Who is trusted with hidden rows, and custody of protected tables.
 *
 * Trust model (SPEC section 5): only superusers, roles with BYPASSRLS and
 * members of consent_ledger_admin may see rows their subjects did not
 * consent to.  Everyone else is designed against, the table's owner
 * included.  A table owner can run code over every row of its table in
 * more ways than a guard could list (ALTER COLUMN ... TYPE ... USING,
 * generated columns, extended statistics, exclusion constraints, policies
 * and triggers, CASCADE), so protect() does not try to list them: it takes
 * the table into custody.  The table then belongs to
 * consent_ledger_custodian, a role nobody logs in as, of which only
 * consent_ledger_admin is a member; the previous owner keeps what it needs
 * to load and read the table under the policy (SELECT, INSERT, UPDATE,
 * DELETE, TRUNCATE and the use of the table's own sequences) and
 * PostgreSQL itself refuses its DDL.  unprotect() gives the table back.
 *
 * What the owner could have planted before protect() would run later as
 * someone else over hidden rows, so protect() refuses a table that has
 * triggers, rules or policies of its own, expression or partial indexes,
 * expression statistics, columns of a domain an untrusted role owns
 * (a domain's owner validates new constraints over every row) or of a
 * collation one owns (DROP COLLATION ... CASCADE), and stored expressions
 * (CHECK, partition key, generated column, default) that call anything
 * but immutable functions of trusted roles and, in defaults, a short list
 * of built-ins (see "What a stored expression ... may call" below).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_partitioned_table.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_range.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_statistic_ext.h"
#include "catalog/pg_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_take_custody_sql);

/*
 * Whether a role is trusted with hidden rows: superuser, BYPASSRLS, or a
 * member of consent_ledger_admin.
 */
bool
cl_role_is_trusted(Oid roleid)
{
	Oid			admin;

	if (superuser_arg(roleid) || has_bypassrls_privilege(roleid))
		return true;
	admin = get_role_oid(CL_ADMIN_ROLE, true);
	return OidIsValid(admin) && has_privs_of_role(roleid, admin);
}

Oid
cl_custodian_oid(void)
{
	Oid			custodian = get_role_oid(CL_CUSTODIAN_ROLE, true);

	if (!OidIsValid(custodian))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("role \"%s\" does not exist", CL_CUSTODIAN_ROLE),
				 errdetail("Protected tables are owned by this role, created by version 1.1 of the extension."),
				 errhint("Run ALTER EXTENSION consent_ledger UPDATE.")));
	return custodian;
}

static void
refuse_protect(Relation rel, const char *what, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table \"%s\" has %s \"%s\"", RelationGetRelationName(rel), what, name),
			 errdetail("Code attached to a protected table runs over rows whose subjects did not consent, on behalf of whoever changes or maintains the table."),
			 errhint("Drop it before protecting the table; an administrator can add it again afterwards.")));
}

Oid
cl_relation_owner(Oid relid)
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

static Oid
function_owner(Oid funcid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Oid			owner = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

/*
 * Whether fn is one of the extension's trigger functions: proname, or any
 * of ledger_stamp, ledger_guard and audit_row when proname is NULL.  It
 * must be a function of that name in the extension's schema and a member
 * of the extension.  The extension's triggers are recognised by the
 * function they call, never by their name: any table owner can name a
 * trigger of its own "~consent_ledger_...", but only the extension and
 * administrators may execute these functions (EXECUTE is revoked from
 * PUBLIC).
 */
bool
cl_is_extension_trigger_function(Oid fn, const char *proname)
{
	char	   *name;
	Oid			ext;
	Oid			nsp = cl_schema_oid(true);

	if (!OidIsValid(fn) || !OidIsValid(nsp) || get_func_namespace(fn) != nsp)
		return false;
	name = get_func_name(fn);
	if (name == NULL)
		return false;
	if (proname != NULL ? strcmp(name, proname) != 0 :
		(strcmp(name, "ledger_stamp") != 0 && strcmp(name, "ledger_guard") != 0 &&
		 strcmp(name, "audit_row") != 0))
		return false;
	ext = get_extension_oid(CL_EXTENSION, true);
	return OidIsValid(ext) && getExtensionOfObject(ProcedureRelationId, fn) == ext;
}

/*
 * The function (tgfoid) and firing state (tgenabled) of the trigger named
 * tgname on relid; false if there is none.
 */
static bool
trigger_by_name(Oid relid, const char *tgname, Oid *fn, char *enabled)
{
	Relation	cat;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(relid) || tgname == NULL)
		return false;
	cat = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(tgname));
	scan = systable_beginscan(cat, TriggerRelidNameIndexId, true, NULL, 2, keys);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger t = (Form_pg_trigger) GETSTRUCT(tup);

		found = true;
		if (fn)
			*fn = t->tgfoid;
		if (enabled)
			*enabled = t->tgenabled;
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);
	return found;
}

/*
 * Whether the trigger named tgname on relid is one of the extension's (it
 * calls one of the extension's trigger functions).  A trigger of that name
 * calling any other function is the table owner's.
 */
bool
cl_is_extension_trigger(Oid relid, const char *tgname)
{
	Oid			fn = InvalidOid;

	return trigger_by_name(relid, tgname, &fn, NULL) &&
		cl_is_extension_trigger_function(fn, NULL);
}

/*
 * Whether relid already carries the extension's trigger tgname calling
 * consent_ledger.proname(), firing ALWAYS (made so if it calls that
 * function but fires otherwise).  A trigger of that name calling another
 * function is refused: it would stand in for the extension's.  Inside
 * SPI.
 */
bool
cl_extension_trigger_present(Oid relid, const char *tgname, const char *proname)
{
	Oid			fn = InvalidOid;
	char		enabled = TRIGGER_DISABLED;

	cl_refuse_foreign_trigger(relid, tgname, proname);
	if (!trigger_by_name(relid, tgname, &fn, &enabled))
		return false;
	if (enabled != TRIGGER_FIRES_ALWAYS)
		cl_run_as_owner(psprintf("ALTER TABLE ONLY %s ENABLE ALWAYS TRIGGER %s",
								 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
															get_rel_name(relid)),
								 quote_identifier(tgname)),
						cl_extension_owner());
	return true;
}

/*
 * Refuses (55000) a trigger named tgname on relid that does not call
 * consent_ledger.proname(): it would stand in for the extension's trigger
 * of that name.
 */
void
cl_refuse_foreign_trigger(Oid relid, const char *tgname, const char *proname)
{
	Oid			fn = InvalidOid;

	if (trigger_by_name(relid, tgname, &fn, NULL) &&
		!cl_is_extension_trigger_function(fn, proname))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has trigger \"%s\", which does not call consent_ledger.%s()",
						get_rel_name(relid), tgname, proname),
				 errdetail("The name is reserved for the extension's own trigger; a trigger of that name calling another function would stand in for it."),
				 errhint("Drop or rename the trigger first.")));
}

static void
refuse_column_type(Relation rel, Form_pg_attribute att, Oid typid, Oid owner,
				   const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("column \"%s\" of table \"%s\" uses type %s, which depends on role \"%s\"",
					NameStr(att->attname), RelationGetRelationName(rel),
					format_type_be(typid), GetUserNameFromId(owner, false)),
			 errdetail("%s", why),
			 errhint("Make a trusted role (an administrator) the owner of the type and of its functions first.")));
}

/* The subtype_diff function of a range type, or InvalidOid. */
static Oid
range_subtype_diff(Oid rangeOid)
{
	HeapTuple	tup = SearchSysCache1(RANGETYPE, ObjectIdGetDatum(rangeOid));
	Oid			diff = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		diff = ((Form_pg_range) GETSTRUCT(tup))->rngsubdiff;
		ReleaseSysCache(tup);
	}
	return diff;
}


/*
 * Calls fn for typid and every type it is made of: the element of an
 * array, the base of a domain, the range of a multirange, the subtype of a
 * range, the attributes of a composite.  Stops, returning true, as soon as
 * fn does.
 */
static bool
walk_type(Oid typid, int depth, bool (*fn) (Oid typid, char typtype, Oid owner, void *arg),
		  void *arg)
{
	HeapTuple	tup;
	Form_pg_type t;
	char		typtype;
	Oid			owner;
	Oid			base;
	Oid			elem;
	Oid			typrelid;
	bool		found = false;

	if (!OidIsValid(typid))
		return false;
	if (depth > 32)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("type %s is nested too deeply to be checked", format_type_be(typid)),
				 errdetail("consent_ledger follows arrays, domains, ranges and composite types 32 levels deep."),
				 errhint("Use a less deeply nested column type.")));
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		return false;
	t = (Form_pg_type) GETSTRUCT(tup);
	typtype = t->typtype;
	owner = t->typowner;
	base = t->typbasetype;
	elem = t->typelem;
	typrelid = t->typrelid;
	ReleaseSysCache(tup);

	if (OidIsValid(elem) && typtype == TYPTYPE_BASE)
		return walk_type(elem, depth + 1, fn, arg);
	if (fn(typid, typtype, owner, arg))
		return true;
	switch (typtype)
	{
		case TYPTYPE_DOMAIN:
			return walk_type(base, depth + 1, fn, arg);
		case TYPTYPE_MULTIRANGE:
			return walk_type(get_multirange_range(typid), depth + 1, fn, arg);
		case TYPTYPE_RANGE:
			return walk_type(get_range_subtype(typid), depth + 1, fn, arg);
		case TYPTYPE_COMPOSITE:
			if (OidIsValid(typrelid))
			{
				Relation	crel = relation_open(typrelid, AccessShareLock);
				TupleDesc	cdesc = RelationGetDescr(crel);

				for (int i = 0; i < cdesc->natts && !found; i++)
					if (!TupleDescAttr(cdesc, i)->attisdropped)
						found = walk_type(TupleDescAttr(cdesc, i)->atttypid, depth + 1, fn, arg);
				relation_close(crel, AccessShareLock);
			}
			return found;
		default:
			return false;
	}
}

/*
 * What a stored expression of a table given to protect() may call.
 *
 * PostgreSQL evaluates a CHECK constraint, a partition key and a column
 * default over rows other roles write, as those roles: whatever the
 * expression calls sees the row (or, for a default, can read the table as
 * the inserting role) and can hand it on.  The owner of a function is not
 * the whole story: bootstrap-owned built-ins such as query_to_xml(),
 * cursor_to_xml() and ts_stat() run SQL text the table's owner wrote,
 * pg_notify() sends the row to a channel the owner listens on, set_config()
 * changes the inserting session.  So:
 *
 * - CHECK constraints, partition keys and generated columns may call only
 *   IMMUTABLE functions owned by trusted roles.  PostgreSQL documents that
 *   CHECK constraints must be immutable (and requires it of partition keys
 *   and generated columns), so no sound table loses anything.
 * - A column default may call IMMUTABLE functions owned by trusted roles
 *   and, besides, only the volatile or stable built-ins commonly used in
 *   defaults, none of which runs SQL, reads a table or talks to another
 *   session: now(), statement_timestamp(), transaction_timestamp(),
 *   clock_timestamp() (CURRENT_TIMESTAMP, CURRENT_USER and the like are
 *   SQLValueFunctions, not calls), gen_random_uuid(), random(), and
 *   nextval() of a constant sequence owned by a trusted role or owned by a
 *   column of the table itself (serial and identity columns: such a
 *   sequence goes into custody with the table).  A sequence of an untrusted
 *   role would let it count the table's inserts.
 * - Any type the expression produces along the way (an input or I/O
 *   conversion to a composite, array, range or domain; a constant) must be
 *   made only of types of trusted roles, and every domain in it may check
 *   only with such IMMUTABLE expressions: record_in(), array_in() and
 *   range_in() run the checks of the domains their values contain.
 */
typedef enum StoredExprKind
{
	STORED_CHECK,				/* CHECK, partition key, generated column */
	STORED_DEFAULT				/* column default */
} StoredExprKind;

typedef struct StoredExprCheck
{
	StoredExprKind kind;
	Oid			relid;			/* the table given to protect() */
	int			depth;
	bool		untrusted;		/* found: code or type of an untrusted role */
	bool		direct;			/* ... called or coerced to in the expression itself */
	Oid			func;			/* found: this function */
	Oid			type;			/* found: this type (a domain, or owned by an untrusted role) */
} StoredExprCheck;

static bool stored_expr_walker(Node *node, void *context);
static bool stored_type_refused(Oid typid, StoredExprCheck *c);

static bool
default_builtin_allowed(Oid funcid)
{
	switch (funcid)
	{
		case F_NOW:
		case F_STATEMENT_TIMESTAMP:
		case F_TRANSACTION_TIMESTAMP:
		case F_CLOCK_TIMESTAMP:
		case F_GEN_RANDOM_UUID:
		case F_RANDOM:
			return true;
		default:
			return false;
	}
}

static bool
stored_function_refused(Oid funcid, void *context)
{
	StoredExprCheck *c = context;
	Oid			owner = function_owner(funcid);

	if (!OidIsValid(owner) || !cl_role_is_trusted(owner))
	{
		c->untrusted = true;
		c->direct = (c->depth == 0);
		c->func = funcid;
		return true;
	}
	if (func_volatile(funcid) == PROVOLATILE_IMMUTABLE)
		return false;
	if (c->kind == STORED_DEFAULT && (default_builtin_allowed(funcid) || funcid == F_NEXTVAL))
		return false;			/* nextval()'s sequence: stored_expr_walker */
	c->func = funcid;
	return true;
}

/* nextval(seq) in a default: seq must be a constant sequence we trust. */
static bool
nextval_refused(FuncExpr *f, StoredExprCheck *c)
{
	Node	   *arg;
	Oid			seq;
	Oid			table;
	int32		col;

	if (list_length(f->args) != 1)
		return true;
	arg = linitial(f->args);
	if (!IsA(arg, Const) || ((Const *) arg)->constisnull ||
		((Const *) arg)->consttype != REGCLASSOID)
		return true;
	seq = DatumGetObjectId(((Const *) arg)->constvalue);
	if (cl_role_is_trusted(cl_relation_owner(seq)))
		return false;
	if ((sequenceIsOwned(seq, DEPENDENCY_AUTO, &table, &col) ||
		 sequenceIsOwned(seq, DEPENDENCY_INTERNAL, &table, &col)) && table == c->relid)
		return false;
	return true;
}

/* The type an expression node produces, for the nodes that convert or build values. */
static Oid
produced_type(Node *node)
{
	switch (nodeTag(node))
	{
		case T_Const:
		case T_FuncExpr:
		case T_OpExpr:
		case T_RelabelType:
		case T_CoerceViaIO:
		case T_ArrayCoerceExpr:
		case T_ConvertRowtypeExpr:
		case T_CoerceToDomain:
		case T_RowExpr:
		case T_ArrayExpr:
		case T_FieldSelect:
		case T_CaseExpr:
		case T_CoalesceExpr:
		case T_MinMaxExpr:
			return exprType(node);
		default:
			return InvalidOid;
	}
}

static bool
stored_expr_walker(Node *node, void *context)
{
	StoredExprCheck *c = context;
	Oid			typid;

	if (node == NULL)
		return false;
	/* the types first, so that the domain or type is named, not record_in() */
	typid = produced_type(node);
	if (OidIsValid(typid) && !IsA(node, CoerceToDomain) && stored_type_refused(typid, c))
		return true;
	if (check_functions_in_node(node, stored_function_refused, context))
		return true;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == F_NEXTVAL &&
		nextval_refused((FuncExpr *) node, c))
	{
		c->func = F_NEXTVAL;
		return true;
	}
	/* a coercion to a domain runs its constraints, which its owner chose */
	if (IsA(node, CoerceToDomain))
	{
		HeapTuple	tup = SearchSysCache1(TYPEOID,
										  ObjectIdGetDatum(((CoerceToDomain *) node)->resulttype));
		Oid			owner = InvalidOid;

		if (HeapTupleIsValid(tup))
		{
			owner = ((Form_pg_type) GETSTRUCT(tup))->typowner;
			ReleaseSysCache(tup);
		}
		if (!OidIsValid(owner) || !cl_role_is_trusted(owner))
		{
			c->untrusted = true;
			c->direct = (c->depth == 0);
			c->type = ((CoerceToDomain *) node)->resulttype;
			return true;
		}
	}
	if (IsA(node, CoerceToDomain) && stored_type_refused(((CoerceToDomain *) node)->resulttype, c))
		return true;
	return expression_tree_walker(node, stored_expr_walker, context);
}

/*
 * Whether a domain's CHECK constraints (and, with its default, its default)
 * would be refused as stored expressions of the table.
 */
static bool
domain_code_refused(Oid domain, bool with_default, StoredExprCheck *outer)
{
	Relation	cat;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		refused = false;
	StoredExprCheck c = {STORED_CHECK, outer->relid, outer->depth + 1, false, false, InvalidOid, InvalidOid};

	if (c.depth > 32)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("domain %s is nested too deeply to be checked", format_type_be(domain)),
				 errdetail("consent_ledger follows the constraints of domains 32 levels deep."),
				 errhint("Use simpler domains in the table.")));
	cat = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_constraint_contypid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(domain));
	scan = systable_beginscan(cat, ConstraintTypidIndexId, true, NULL, 1, &key);
	while (!refused && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		bin = heap_getattr(tup, Anum_pg_constraint_conbin, RelationGetDescr(cat), &isnull);

		if (!isnull)
			refused = stored_expr_walker(stringToNode(TextDatumGetCString(bin)), &c);
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);

	if (!refused && with_default)
	{
		HeapTuple	ttup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(domain));

		if (HeapTupleIsValid(ttup))
		{
			bool		isnull;
			Datum		bin = SysCacheGetAttr(TYPEOID, ttup, Anum_pg_type_typdefaultbin, &isnull);

			c.kind = STORED_DEFAULT;
			if (!isnull)
				refused = stored_expr_walker(stringToNode(TextDatumGetCString(bin)), &c);
			ReleaseSysCache(ttup);
		}
	}
	if (refused)
	{
		outer->untrusted = c.untrusted;
		outer->func = c.func;
		outer->type = domain;
	}
	return refused;
}

typedef struct StoredTypeWalk
{
	StoredExprCheck *c;
	bool		with_default;
} StoredTypeWalk;

static bool
stored_type_part_refused(Oid typid, char typtype, Oid owner, void *arg)
{
	StoredTypeWalk *w = arg;

	if (!cl_role_is_trusted(owner))
	{
		w->c->untrusted = true;
		w->c->type = typid;
		return true;
	}
	return typtype == TYPTYPE_DOMAIN && domain_code_refused(typid, w->with_default, w->c);
}

/* Whether a type produced by a stored expression is made of anything refused. */
static bool
stored_type_refused(Oid typid, StoredExprCheck *c)
{
	StoredTypeWalk w = {c, false};

	return walk_type(typid, 0, stored_type_part_refused, &w);
}

/*
 * Checks one stored expression (nodeToString form) of the table; on
 * refusal fills c and returns true.
 */
static bool
stored_expr_refused(Datum stored, StoredExprKind kind, Oid relid, StoredExprCheck *c)
{
	Node	   *expr = stringToNode(TextDatumGetCString(stored));

	c->kind = kind;
	c->relid = relid;
	c->depth = 0;
	c->untrusted = false;
	c->direct = false;
	c->func = InvalidOid;
	c->type = InvalidOid;
	return stored_expr_walker(expr, c);
}

/* Refuses protect() over a stored expression that calls what it may not. */
static void
refuse_stored_expr(Relation rel, const char *what, const char *name, StoredExprCheck *c)
{
	char	   *callee;

	if (OidIsValid(c->type) && OidIsValid(c->func))
		callee = psprintf("domain %s, which calls %s", format_type_be(c->type),
						  format_procedure(c->func));
	else if (OidIsValid(c->type))
		callee = psprintf("type %s", format_type_be(c->type));
	else
		callee = psprintf("function %s", format_procedure(c->func));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table \"%s\" has %s \"%s\" that uses %s",
					RelationGetRelationName(rel), what, name, callee),
			 errdetail("The %s \"%s\" would, through %s, run code over rows whose subjects did not consent, on behalf of whoever writes the table; %s.",
					   what, name, callee,
					   c->untrusted ? "that code belongs to a role not trusted with hidden rows" :
					   c->kind == STORED_DEFAULT ?
					   "a default may call only immutable functions, now(), statement_timestamp(), transaction_timestamp(), clock_timestamp(), gen_random_uuid(), random() and nextval() of the table's own sequences or of a trusted role's" :
					   "a CHECK constraint, partition key or generated column may call only immutable functions of trusted roles"),
			 errhint("Drop it before protecting the table (ALTER TABLE ... DROP CONSTRAINT or ALTER COLUMN ... DROP DEFAULT), or ask an administrator (a member of consent_ledger_admin) to replace it with one that does not.")));
}

typedef struct ColumnTypeCheck
{
	Relation	rel;
	Form_pg_attribute att;
} ColumnTypeCheck;

/*
 * A column's type must not run code of an untrusted role over the stored
 * values: a domain's owner validates new constraints over every value, a
 * range type's subtype_diff function runs over every sampled value when
 * the table is analyzed (by autovacuum too).  Nor may it belong to an
 * untrusted role at all: DROP TYPE ... CASCADE would drop the column.
 */
static bool
check_column_type(Oid typid, char typtype, Oid owner, void *arg)
{
	ColumnTypeCheck *c = arg;

	if (typtype == TYPTYPE_DOMAIN && !cl_role_is_trusted(owner))
		refuse_column_type(c->rel, c->att, typid, owner,
						   "The owner of a domain checks new domain constraints against every value of it, hidden rows included.");
	if (typtype == TYPTYPE_RANGE)
	{
		Oid			diff = range_subtype_diff(typid);

		if (OidIsValid(diff) && !cl_role_is_trusted(function_owner(diff)))
			refuse_column_type(c->rel, c->att, typid, function_owner(diff),
							   "The range type's subtype_diff function runs over every sampled value when the table is analyzed, hidden rows included.");
	}
	if (typtype == TYPTYPE_DOMAIN && cl_role_is_trusted(owner))
	{
		StoredExprCheck sc = {STORED_CHECK, RelationGetRelid(c->rel), 0, false, false, InvalidOid, InvalidOid};

		if (domain_code_refused(typid, true, &sc))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of table \"%s\" uses domain %s, whose constraints or default use %s %s",
							NameStr(c->att->attname), RelationGetRelationName(c->rel), format_type_be(typid),
							OidIsValid(sc.func) ? "function" : "type",
							OidIsValid(sc.func) ? format_procedure(sc.func) : format_type_be(sc.type)),
					 errdetail("A domain's constraints run over every value written to the column, hidden rows included; they may call only immutable functions of trusted roles (a domain default only what a column default may call)."),
					 errhint("Use another type for the column, or ask an administrator to change the domain.")));
	}
	if (!cl_role_is_trusted(owner))
		refuse_column_type(c->rel, c->att, typid, owner,
						   "The owner of a type can drop it with CASCADE, which drops the column of the protected table, or change what its values mean.");
	return false;
}

static bool
is_type(Oid typid, char typtype, Oid owner, void *arg)
{
	return typid == *(Oid *) arg;
}

/* Whether type typid is target or is made of it (guard.c, ALTER DOMAIN). */
bool
cl_type_contains(Oid typid, Oid target)
{
	return walk_type(typid, 0, is_type, &target);
}

/*
 * Refuses a table that carries code an untrusted role could have put
 * there to run over hidden rows later.  Called by protect() before it
 * takes the table into custody.
 */
void
cl_check_protectable(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes;
	ListCell   *lc;
	Relation	cat;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	StoredExprCheck sc;

	/* triggers other than the extension's own */
	cat = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(cat, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger t = (Form_pg_trigger) GETSTRUCT(tup);

		if (!t->tgisinternal && !cl_is_extension_trigger_function(t->tgfoid, NULL))
			refuse_protect(rel, "trigger", NameStr(t->tgname));
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);

	/* policies not made by protect() (protect() refuses a protected table) */
	cat = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_policy_polrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(cat, PolicyPolrelidPolnameIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		refuse_protect(rel, "policy", NameStr(((Form_pg_policy) GETSTRUCT(tup))->polname));
	systable_endscan(scan);
	table_close(cat, AccessShareLock);

	/* rules */
	cat = table_open(RewriteRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_rewrite_ev_class, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(cat, RewriteRelRulenameIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		refuse_protect(rel, "rule", NameStr(((Form_pg_rewrite) GETSTRUCT(tup))->rulename));
	systable_endscan(scan);
	table_close(cat, AccessShareLock);

	/* expression and partial indexes */
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	itup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(itup))
			continue;
		if (!heap_attisnull(itup, Anum_pg_index_indexprs, NULL) ||
			!heap_attisnull(itup, Anum_pg_index_indpred, NULL))
		{
			char	   *name = get_rel_name(lfirst_oid(lc));

			ReleaseSysCache(itup);
			refuse_protect(rel, "expression or partial index", name);
		}
		ReleaseSysCache(itup);
	}
	list_free(indexes);

	/* extended statistics on expressions */
	cat = table_open(StatisticExtRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_statistic_ext_stxrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(cat, StatisticExtRelidIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		if (!heap_attisnull(tup, Anum_pg_statistic_ext_stxexprs, NULL))
			refuse_protect(rel, "expression statistics",
						   NameStr(((Form_pg_statistic_ext) GETSTRUCT(tup))->stxname));
	systable_endscan(scan);
	table_close(cat, AccessShareLock);

	/*
	 * partition key expressions calling code of untrusted roles: PostgreSQL
	 * evaluates them over every row routed into the table, and over the
	 * rows of a partition (the default one included) checked against a new
	 * partition's bounds, on behalf of whoever inserts, updates or adds a
	 * partition.  Each partitioned table of the tree is checked when it is
	 * protected (partitions added later too: partition.c).
	 */
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		HeapTuple	ptup = SearchSysCache1(PARTRELID, ObjectIdGetDatum(relid));

		if (HeapTupleIsValid(ptup))
		{
			bool		isnull;
			Datum		exprs = SysCacheGetAttr(PARTRELID, ptup, Anum_pg_partitioned_table_partexprs,
												&isnull);

			if (!isnull && stored_expr_refused(exprs, STORED_CHECK, relid, &sc))
			{
				char	   *key = TextDatumGetCString(DirectFunctionCall1(pg_get_partkeydef,
																		  ObjectIdGetDatum(relid)));

				ReleaseSysCache(ptup);
				if (sc.direct)
					refuse_protect(rel, "a partition key calling a function or domain of an untrusted role",
								   key);
				refuse_stored_expr(rel, "partition key", key, &sc);
			}
			ReleaseSysCache(ptup);
		}
	}

	/*
	 * inheritance: read through a parent, the table escapes its own policy.
	 * Partitioning is not refused: protect() holds every partition and its
	 * parent to the same policy (partition.c).
	 */
	if (!rel->rd_rel->relispartition && rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE &&
		(has_superclass(relid) || has_subclass(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" takes part in table inheritance", RelationGetRelationName(rel)),
				 errdetail("Rows read through an inheritance parent are filtered by the parent's policies only, not by the child's."),
				 errhint("ALTER TABLE ... NO INHERIT first.")));

	/*
	 * CHECK constraints calling code of untrusted roles, and foreign keys
	 * from tables of untrusted roles (inserting into the referencing table
	 * tells which keys exist)
	 */
	cat = table_open(ConstraintRelationId, AccessShareLock);
	scan = systable_beginscan(cat, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint c = (Form_pg_constraint) GETSTRUCT(tup);
		bool		isnull;
		Datum		bin;

		if (c->conrelid == relid && c->contype == CONSTRAINT_CHECK)
		{
			bin = heap_getattr(tup, Anum_pg_constraint_conbin, RelationGetDescr(cat), &isnull);
			if (!isnull && stored_expr_refused(bin, STORED_CHECK, relid, &sc))
			{
				if (sc.direct)
					refuse_protect(rel, "a CHECK constraint calling a function of an untrusted role",
								   NameStr(c->conname));
				refuse_stored_expr(rel, "CHECK constraint", NameStr(c->conname), &sc);
			}
		}
		if (c->contype == CONSTRAINT_FOREIGN && c->conrelid != c->confrelid)
		{
			/*
			 * Either end of a foreign key probes the other: the owner of a
			 * referencing table inserts keys and sees which exist; the owner
			 * of a referenced table deletes keys and sees which are still
			 * referenced, hidden rows included.
			 */
			if (c->confrelid == relid && !cl_role_is_trusted(cl_relation_owner(c->conrelid)))
				refuse_protect(rel, "a foreign key from a table of an untrusted role",
							   NameStr(c->conname));
			if (c->conrelid == relid && !cl_role_is_trusted(cl_relation_owner(c->confrelid)))
				refuse_protect(rel, "a foreign key to a table of an untrusted role",
							   NameStr(c->conname));
		}
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);

	/* generated columns and defaults calling code of untrusted roles */
	cat = table_open(AttrDefaultRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_attrdef_adrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(cat, AttrDefaultIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_attrdef d = (Form_pg_attrdef) GETSTRUCT(tup);
		bool		isnull;
		Datum		bin = heap_getattr(tup, Anum_pg_attrdef_adbin, RelationGetDescr(cat), &isnull);
		Form_pg_attribute att = TupleDescAttr(desc, d->adnum - 1);
		bool		generated = att->attgenerated != '\0';

		if (!isnull && stored_expr_refused(bin, generated ? STORED_CHECK : STORED_DEFAULT, relid, &sc))
		{
			if (sc.direct)
				refuse_protect(rel, "a default or generated column calling a function of an untrusted role",
							   NameStr(att->attname));
			refuse_stored_expr(rel, generated ? "generated column" : "default of column",
							   NameStr(att->attname), &sc);
		}
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);

	/* column types that run code of untrusted roles over stored values */
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		ColumnTypeCheck c = {rel, att};

		if (att->attisdropped)
			continue;
		(void) walk_type(att->atttypid, 0, check_column_type, &c);

		/*
		 * A collation's owner can drop it with CASCADE, which drops every
		 * column using it, in tables of other roles too.
		 */
		if (OidIsValid(att->attcollation))
		{
			HeapTuple	ctup = SearchSysCache1(COLLOID, ObjectIdGetDatum(att->attcollation));

			if (HeapTupleIsValid(ctup))
			{
				Form_pg_collation coll = (Form_pg_collation) GETSTRUCT(ctup);
				Oid			owner = coll->collowner;
				char	   *collname = pstrdup(NameStr(coll->collname));

				ReleaseSysCache(ctup);
				if (!cl_role_is_trusted(owner))
					ereport(ERROR,
							(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							 errmsg("column \"%s\" of table \"%s\" uses collation \"%s\", which belongs to role \"%s\"",
									NameStr(att->attname), RelationGetRelationName(rel), collname,
									GetUserNameFromId(owner, false)),
							 errdetail("The owner of a collation can drop it with CASCADE, which drops the column of the protected table, hidden rows' values included."),
							 errhint("Use a collation of a trusted role (ALTER TABLE ... ALTER COLUMN ... TYPE ... COLLATE), or ask an administrator to take ownership of the collation.")));
			}
		}
	}
}

/*
 * Whether the extension's objects are those of 1.1 (the custodian role and
 * protected.previous_owner): with the 1.0 objects, until ALTER EXTENSION
 * ... UPDATE, tables are protected without custody, and the update takes
 * them into custody.
 */
static bool
custody_available(void)
{
	Oid			protected = cl_internal_relid("protected");

	return get_attnum(protected, "previous_owner") != InvalidAttrNumber;
}

/* GRANTs the previous owner needs on the table and its own sequences. */
static void
grant_loader(const char *verb, const char *qname, Oid relid, const char *role)
{
	const char *dir = strcmp(verb, "GRANT") == 0 ? "TO" : "FROM";
	List	   *seqs = getOwnedSequences(relid);
	ListCell   *lc;
	Oid			runner = cl_extension_owner();

	cl_run_as_owner(psprintf("%s SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON %s %s %s",
							 verb, qname, dir, role), runner);
	foreach(lc, seqs)
	{
		Oid			seq = lfirst_oid(lc);

		cl_run_as_owner(psprintf("%s USAGE, SELECT, UPDATE ON SEQUENCE %s %s %s", verb,
								 quote_qualified_identifier(get_namespace_name(get_rel_namespace(seq)),
															get_rel_name(seq)),
								 dir, role), runner);
	}
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * Roles not trusted with hidden rows keep no grant option on a table in
 * custody, nor TRIGGER or REFERENCES: a trigger runs its owner's code over
 * rows others insert, a foreign key probes which keys exist.  Whatever
 * they granted on goes too (CASCADE).
 */
static void
strip_untrusted_grants(Oid relid, const char *qname)
{
	Oid			types[1] = {OIDOID};
	Datum		vals[1] = {ObjectIdGetDatum(relid)};
	Oid			custodian = cl_custodian_oid();

	for (int pass = 0; pass < 2; pass++)
	{
		List	   *stmts = NIL;
		ListCell   *lc;

		if (SPI_execute_with_args("SELECT a.grantee, a.privilege_type, a.is_grantable "
								  "FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a "
								  "WHERE c.oid OPERATOR(pg_catalog.=) $1",
								  1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the privileges of \"%s\"", qname);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;
			Oid			grantee = DatumGetObjectId(SPI_getbinval(t, d, 1, &isnull));
			char	   *priv = SPI_getvalue(t, d, 2);
			bool		grantable = DatumGetBool(SPI_getbinval(t, d, 3, &isnull));
			const char *who;

			if (grantee == custodian || (OidIsValid(grantee) && cl_role_is_trusted(grantee)))
				continue;
			who = OidIsValid(grantee) ? quote_identifier(GetUserNameFromId(grantee, false)) : "PUBLIC";
			if (pass == 0 && grantable)
				stmts = lappend(stmts, psprintf("REVOKE GRANT OPTION FOR %s ON %s FROM %s CASCADE",
												priv, qname, who));
			if (pass == 1 && (strcmp(priv, "TRIGGER") == 0 || strcmp(priv, "REFERENCES") == 0))
				stmts = lappend(stmts, psprintf("REVOKE %s ON %s FROM %s CASCADE", priv, qname, who));
		}
		foreach(lc, stmts)
			cl_run_as_owner(lfirst(lc), cl_extension_owner());
		CommandCounterIncrement();
	}
}

/*
 * Takes a protected table into custody: consent_ledger_custodian becomes
 * its owner, the previous owner is recorded and keeps the privileges to
 * load and read it.  Must be called inside SPI, after the registry row
 * of the table exists.
 */
void
cl_take_custody(Oid relid)
{
	Oid			custodian;
	Oid			owner;
	char	   *qname;
	char	   *role;

	if (!custody_available())
	{
		ereport(WARNING,
				(errmsg("table \"%s\" is protected but not taken into custody", get_rel_name(relid)),
				 errdetail("The extension's objects are still those of version 1.0; its owner can still change it."),
				 errhint("Run ALTER EXTENSION consent_ledger UPDATE, which takes protected tables into custody.")));
		return;
	}
	custodian = cl_custodian_oid();
	owner = cl_relation_owner(relid);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (owner == custodian)
		return;
	qname = qualified_name(relid);
	role = pstrdup(quote_identifier(GetUserNameFromId(owner, false)));
	cl_run_as_owner(psprintf("UPDATE consent_ledger.protected SET previous_owner = %u::pg_catalog.oid::pg_catalog.regrole "
							 "WHERE relid OPERATOR(pg_catalog.=) %u::pg_catalog.oid",
							 owner, relid), cl_extension_owner());
	cl_run_as_owner(psprintf("ALTER TABLE %s OWNER TO %s", qname, CL_CUSTODIAN_ROLE),
					cl_extension_owner());
	grant_loader("GRANT", qname, relid, role);
	strip_untrusted_grants(relid, qname);
}

/*
 * Gives a table back to the owner it had before protect() (when that
 * role still exists), taking back the grants custody made.  Must be
 * called inside SPI, before the registry row is removed.
 */
void
cl_release_custody(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		vals[1] = {ObjectIdGetDatum(relid)};
	Oid			previous = InvalidOid;
	char	   *qname = qualified_name(relid);
	char	   *role;

	if (!custody_available())
		return;
	if (SPI_execute_with_args("SELECT previous_owner::pg_catalog.oid FROM consent_ledger.protected "
							  "WHERE relid OPERATOR(pg_catalog.=) $1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.protected");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			previous = DatumGetObjectId(d);
	}
	if (!OidIsValid(previous) || !SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(previous)))
	{
		ereport(NOTICE,
				(errmsg("table \"%s\" stays owned by %s", get_rel_name(relid), CL_CUSTODIAN_ROLE),
				 errdetail("The role that owned it before protect() is not known or no longer exists."),
				 errhint("An administrator can change its owner with ALTER TABLE ... OWNER TO.")));
		return;
	}
	role = pstrdup(quote_identifier(GetUserNameFromId(previous, false)));
	grant_loader("REVOKE", qname, relid, role);
	cl_run_as_owner(psprintf("ALTER TABLE %s OWNER TO %s", qname, role), cl_extension_owner());
}

/*
 * consent_ledger._take_custody(relation regclass): used once by the 1.1
 * upgrade script for tables protected under 1.0.
 */
Datum
cl_take_custody_sql(PG_FUNCTION_ARGS)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the extension's update may take tables into custody")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_take_custody(PG_GETARG_OID(0));
	SPI_finish();
	PG_RETURN_VOID();
}
