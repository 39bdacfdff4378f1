/*-------------------------------------------------------------------------
 * subxact.c
 *	  Running one piece of a background worker's work in a subtransaction
 *	  of its own, so that its failure rolls back that piece alone.
 *
 * The sealer seals each ledger this way (one damaged ledger never stops
 * the others) and the audit writer writes its batches and, if a batch
 * fails, each record this way (one record that cannot be written never
 * blocks the queue).  The pattern is PL/pgSQL's exception block: the
 * error is caught, copied out of the error context, the subtransaction is
 * rolled back, and the caller decides how to report it.  A request to
 * terminate is not the work's fault and is re-thrown.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/resowner.h"

#include "consent_ledger.h"

/*
 * Runs fn(arg) in an internal subtransaction.  Returns NULL when it
 * succeeded; otherwise the error, in the caller's memory context (free it
 * with FreeErrorData), with the subtransaction rolled back.
 */
ErrorData *
cl_run_in_subxact(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN || ProcDiePending)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}
