/*-------------------------------------------------------------------------
 * hooks.c
 *	  Executor hooks: statement boundaries for the consent checks, and the
 *	  plan check of the ledger guard.
 *
 * Every hook calls the previous hook or the standard function exactly
 * once.  ExecutorStart marks a new statement, so that the policy checks
 * validate the declared purpose and refresh their cache once per
 * statement (policy.c).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"

#include "consent_ledger.h"

static ExecutorStart_hook_type prev_ExecutorStart = NULL;

static void
cl_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	cl_statement_start();
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
		cl_guard_check_plan(queryDesc->plannedstmt);
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

void
cl_hooks_init(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = cl_ExecutorStart;
}
