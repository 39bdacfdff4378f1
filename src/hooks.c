/*-------------------------------------------------------------------------
 * hooks.c
 *	  Executor hooks: statement boundaries for the consent checks, the plan
 *	  check of the ledger guard, and read auditing (audit.c).
 *
 * Every hook calls the previous hook or the standard function exactly
 * once.  ExecutorStart notes the role and purpose each query is opened
 * under, which the policy checks evaluated in it must match (policy.c).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/plancat.h"
#include "catalog/pg_class.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/selfuncs.h"

#include "consent_ledger.h"

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

/*
 * How many ExecutorRun/ExecutorFinish calls are in progress in this
 * backend: 0 when a query that ends is a top-level one (not run by a
 * trigger, a foreign-key check or a function of an outer query's run).
 * The audit closes a statement's foreign-key check records there.
 */
int			cl_executor_nesting = 0;
static get_relation_stats_hook_type prev_get_relation_stats = NULL;
static get_relation_info_hook_type prev_get_relation_info = NULL;

/*
 * Column statistics of a protected table describe every row, hidden ones
 * included: with a leakproof operator the planner would estimate from
 * them, and an untrusted role's EXPLAIN would show how common a value is
 * that only hidden rows hold.  For such a role the planner gets no
 * statistics of protected tables, per column or extended, and uses its
 * default estimates.
 */
static bool
hide_statistics(Oid relid)
{
	Oid			nsp;
	HeapTuple	tup;
	bool		forced;

	if (cl_shared == NULL || !IsTransactionState() || creating_extension)
		return false;
	/* cheap first (the planner asks for every column): protect() forces RLS */
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return false;
	forced = ((Form_pg_class) GETSTRUCT(tup))->relforcerowsecurity;
	ReleaseSysCache(tup);
	if (!forced || !cl_extension_present())
		return false;
	nsp = cl_schema_oid(true);
	return OidIsValid(nsp) && OidIsValid(get_relname_relid("protected", nsp)) &&
		cl_is_protected_cached(relid) && !cl_role_is_trusted(GetUserId());
}

static bool
cl_get_relation_stats(PlannerInfo *root, RangeTblEntry *rte, AttrNumber attnum,
					  VariableStatData *vardata)
{
	if (prev_get_relation_stats && prev_get_relation_stats(root, rte, attnum, vardata))
		return true;
	if (rte->rtekind != RTE_RELATION || !hide_statistics(rte->relid))
		return false;
	vardata->statsTuple = NULL;
	vardata->freefunc = NULL;
	return true;
}

/* ... nor its extended statistics (multi-column MCV lists, ndistinct). */
static void
cl_get_relation_info(PlannerInfo *root, Oid relid, bool inhparent, RelOptInfo *rel)
{
	if (prev_get_relation_info)
		prev_get_relation_info(root, relid, inhparent, rel);
	if (rel->statlist != NIL && hide_statistics(relid))
		rel->statlist = NIL;
}

static void
cl_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
		cl_guard_check_plan(queryDesc->plannedstmt);
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	cl_policy_executor_start(queryDesc);
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
		cl_audit_executor_start(queryDesc);
}

/*
 * Keeps the count of rows returned so far, also when the run fails, so
 * that a read that errors halfway is recorded with what it returned.
 */
static void
cl_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
			   bool execute_once)
{
	void	   *saved_parallel;
	int			nest;

	cl_executor_nesting++;
	nest = cl_policy_run_begin(queryDesc, &saved_parallel);
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_CATCH();
	{
		cl_executor_nesting--;
		/*
		 * Nothing here may raise and replace the error being thrown:
		 * cl_audit_executor_failed() only reads a list and sets two fields
		 * (no allocation, no catalog access, no ereport), and
		 * cl_policy_run_failed() sets a pointer.
		 */
		cl_policy_run_failed(saved_parallel);
		cl_audit_executor_failed(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	cl_policy_run_end(nest, saved_parallel);
	cl_executor_nesting--;
	cl_audit_executor_progress(queryDesc);
}

/* ExecutorFinish runs AFTER triggers, foreign-key checks among them. */
static void
cl_ExecutorFinish(QueryDesc *queryDesc)
{
	cl_executor_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		cl_executor_nesting--;
	}
	PG_END_TRY();
}

static void
cl_ExecutorEnd(QueryDesc *queryDesc)
{
	cl_audit_executor_end(queryDesc);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

void
cl_hooks_init(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = cl_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = cl_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = cl_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = cl_ExecutorEnd;
	prev_get_relation_stats = get_relation_stats_hook;
	get_relation_stats_hook = cl_get_relation_stats;
	prev_get_relation_info = get_relation_info_hook;
	get_relation_info_hook = cl_get_relation_info;
}
