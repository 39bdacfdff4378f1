/*-------------------------------------------------------------------------
 * writer.c
 *	  The audit writer: one background worker per database with the
 *	  extension, started by the launcher (seal.c) next to the sealer.
 *
 * Backends queue read records (and the records of rolled-back changes) in
 * their database's ring in shared memory and set the writer's latch; the
 * writer takes whatever is queued and writes it into
 * consent_ledger.audit_log in a transaction of its own (audit.c,
 * cl_audit_drain), then wakes the readers waiting for their record.
 *
 * It is a process of its own so that a protected read waits only for its
 * record to be written, never for a sealing round in progress: a round
 * over millions of rows, or one waiting for a lock, does not delay audit
 * records.  The records it writes are ledger rows like any other and are
 * sealed by the next round.
 *
 * The writer exits when the extension is not installed in its database
 * (the launcher gives the slot back) and when DROP/ALTER/RENAME DATABASE
 * needs the database free (cl_seal_block_database).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/timestamp.h"

#include "consent_ledger.h"

/* how long the writer sleeps when nothing wakes it */
#define WRITER_NAP_MS	1000

static ClSealSlot *my_slot = NULL;

void
cl_writer_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	int			slotno;

	my_slot = cl_worker_attach(dboid, true);
	slotno = my_slot - cl_shared->slots;
	pgstat_report_activity(STATE_IDLE, NULL);

	for (;;)
	{
		ClDrainResult r;

		/* reset first: a record queued from now on sets the latch again */
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		r = cl_audit_drain(my_slot, slotno);
		if (r == CL_DRAIN_ABSENT)
		{
			LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
			my_slot->present = false;
			LWLockRelease(cl_shared->lock);
			proc_exit(0);
		}
		if (r == CL_DRAIN_WROTE)
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WRITER_NAP_MS, PG_WAIT_EXTENSION);
	}
}
