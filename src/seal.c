/*-------------------------------------------------------------------------
 * seal.c
 *	  Sealing: a launcher and one sealer worker per database move
 *	  committed pending records into the log and sign checkpoints.
 *
 * The launcher (a static background worker connected to no database)
 * runs, for every database with the extension, two workers of their own:
 * a sealer and an audit writer (writer.c), so that a protected read never
 * waits for a sealing round.  A database takes one of the
 * consent_ledger.max_databases slots only while it needs one: when the
 * server starts, the launcher checks each connectable database in turn (a
 * sealer started there exits at once, giving the slot back, if the
 * extension is not installed); afterwards a database gets a slot when a
 * backend there asks (a ledger commit, seal(), an audit record).  The
 * slot of a dropped database is given back.
 *
 * A sealing round is one transaction of the sealer's own.  It takes the
 * extension's round lock (CL_LOCK_SEAL_ROUND: no two rounds ever
 * interleave, even if two sealers were to run for one database; no other
 * role can hold or queue for it) and then a fresh
 * snapshot, so it sees every pending record committed before the round
 * began.  For each ledger, in a subtransaction of its own, it appends the
 * pending records' leaves to the log in (txn, first_ord) order, extends
 * the RFC 9162 frontier kept with the last checkpoint, signs the new
 * checkpoint, chains it to the previous one, and deletes the pending
 * records it sealed.  A ledger that cannot be sealed (a damaged frontier,
 * a corrupt pending record) is rolled back alone, reported once in the
 * server log, and skipped; the others are sealed.  The log's order is the
 * order of sealing; it need not equal commit order.
 *
 * DROP DATABASE, ALTER DATABASE ... SET TABLESPACE, ALTER DATABASE ...
 * RENAME and CREATE DATABASE ... TEMPLATE need the database free of
 * connections: guard.c calls cl_seal_block_database() -- only for a role
 * PostgreSQL will let run the command -- which stops that database's
 * workers and keeps them stopped for a while.
 *
 * A session of pg_restore brings its own log and checkpoints; while one is
 * connected the sealer leaves the database alone.  Only a privileged
 * session counts (superuser or the extension's owner): application_name
 * is set by the client, and a plain role must not pause sealing.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_seal);

#define LAUNCHER_NAP_MS		10000
#define BLOCK_SECONDS		10
#define WORKER_LOCK_TIMEOUT "10s"
#define WORKER_RESTART_MS	1000
#define NO_WORKER_WARNING_MS 60000

static ClSealSlot *my_slot = NULL;
static uint64 last_round_sealed = 0;

/*
 * Slot of a database, taking a free one if asked (it is then wanted: the
 * launcher starts a sealer there).  The caller holds cl_shared->lock.
 */
ClSealSlot *
cl_slot_for(Oid dboid, bool create)
{
	ClSealSlot *free_slot = NULL;

	for (int i = 0; i < cl_shared->nslots; i++)
	{
		ClSealSlot *s = &cl_shared->slots[i];

		if (s->dboid == dboid)
			return s;
		if (!OidIsValid(s->dboid) && free_slot == NULL)
			free_slot = s;
	}
	if (!create || free_slot == NULL || !OidIsValid(dboid))
		return NULL;
	memset(free_slot, 0, sizeof(ClSealSlot));
	free_slot->dboid = dboid;
	free_slot->wanted = true;
	return free_slot;
}

/*
 * Gives a slot back when nothing runs or waits for it.  Queued audit
 * records of a database without the extension can never be written: they
 * are dropped with the slot (counted, and logged).  Caller holds the lock.
 */
void
cl_slot_release_if_unused(ClSealSlot *s)
{
	if (s->pid != 0 || s->writer_pid != 0 || s->wanted)
		return;
	if (s->audit_head != s->audit_tail || s->audit_lost != s->audit_lost_recorded)
	{
		uint64		n = s->audit_enqueued - s->audit_written +
			(s->audit_lost - s->audit_lost_recorded);

		pg_atomic_fetch_add_u64(&cl_shared->audit_lost_unslotted, n);
		ereport(LOG,
				(errmsg("consent_ledger dropped " UINT64_FORMAT " queued audit records of database %u, which no longer has the extension",
						n, s->dboid)));
	}
	memset(s, 0, sizeof(ClSealSlot));
}

/*
 * Makes sure a sealer runs for the database: cheap when it already does
 * (one unlocked read), otherwise flags it wanted and wakes the launcher.
 * Never raises: it is called at commit.
 */
void
cl_seal_wake(Oid dboid)
{
	ClSealSlot *s;
	Latch	   *launcher = NULL;

	if (cl_shared == NULL)
		return;

	/*
	 * Fast path, taken by nearly every commit: an unlocked read that finds
	 * the sealer running.  A stale answer only delays sealing until the
	 * launcher's next look (it rescans every few seconds).
	 */
	for (int i = 0; i < cl_shared->nslots; i++)
	{
		volatile ClSealSlot *vs = &cl_shared->slots[i];

		if (vs->dboid == dboid && vs->pid != 0)
			return;
	}

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	s = cl_slot_for(dboid, true);
	if (s != NULL && s->pid == 0)
	{
		s->wanted = true;
		launcher = cl_shared->launcher_latch;
	}
	LWLockRelease(cl_shared->lock);
	if (launcher)
		SetLatch(launcher);
}

/*
 * Stops the sealer and the audit writer of a database and keeps them from
 * restarting for BLOCK_SECONDS, so that a command needing the database to
 * itself can proceed.  Waits up to 5 s for them to exit.  The caller
 * (guard.c) has checked that PostgreSQL will let the current role run the
 * command.
 */
void
cl_seal_block_database(Oid dboid)
{
	ClSealSlot *s;
	pid_t		pid = 0;
	pid_t		writer = 0;

	if (cl_shared == NULL || !OidIsValid(dboid))
		return;
	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	s = cl_slot_for(dboid, false);
	if (s != NULL)
	{
		s->blocked_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   BLOCK_SECONDS * 1000);
		pid = s->pid;
		writer = s->writer_pid;
	}
	LWLockRelease(cl_shared->lock);
	if (pid > 0)
		kill(pid, SIGTERM);
	if (writer > 0)
		kill(writer, SIGTERM);
	if (pid <= 0 && writer <= 0)
		return;
	for (int i = 0; i < 500; i++)
	{
		bool		gone;

		LWLockAcquire(cl_shared->lock, LW_SHARED);
		gone = (s->dboid != dboid) ||
			((pid <= 0 || s->pid != pid) && (writer <= 0 || s->writer_pid != writer));
		LWLockRelease(cl_shared->lock);
		if (gone)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The sealer and the audit writer run as the bootstrap superuser, but in a
 * database whose owner (not a trusted role) may have set defaults for it
 * with ALTER DATABASE ... SET.  None of those may steer them: search_path
 * (a function or operator of the owner's own would run as superuser), read
 * only transactions, statement and idle timeouts (rounds would fail),
 * isolation level, synchronous_commit (a read's "started" record must be
 * durable before its rows go out), exit_on_error, tablespaces.  Every one
 * they depend on is forced here.  They never
 * wait for a lock without a bound either: a lock they cannot get within
 * WORKER_LOCK_TIMEOUT fails the round (the error names the lock) and the
 * worker starts again.
 */
static void
worker_settings(void)
{
	static const char *const settings[][2] = {
		{"search_path", "pg_catalog, pg_temp"},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"default_transaction_deferrable", "off"},
		{"statement_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"session_replication_role", "origin"},
		{"synchronous_commit", "on"},	/* a record is durable when its reader goes on */
		{"exit_on_error", "off"},
		{"force_parallel_mode", "off"},
		{"default_tablespace", ""},
		{"temp_tablespaces", ""},
		{"lock_timeout", WORKER_LOCK_TIMEOUT},
	};

	/*
	 * role and session_authorization first: a database owner may make
	 * every session of its database, the workers' included, run as itself
	 * (ALTER DATABASE ... SET role); the workers run as the bootstrap
	 * superuser they connected as.
	 */
	StartTransactionCommand();	/* the role settings look names up */
	SetConfigOption("session_authorization",
					GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false),
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	CommitTransactionCommand();
	if (GetUserId() != BOOTSTRAP_SUPERUSERID || GetSessionUserId() != BOOTSTRAP_SUPERUSERID)
		ereport(FATAL,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("consent_ledger worker could not run as the bootstrap superuser")));
	for (int i = 0; i < lengthof(settings); i++)
		SetConfigOption(settings[i][0], settings[i][1], PGC_SUSET, PGC_S_OVERRIDE);
}

void
cl_seal_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "consent_ledger");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cl_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "consent_ledger launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "consent_ledger launcher");
	RegisterBackgroundWorker(&worker);
}

/* Starts the sealer or the audit writer of a database. */
static bool
start_worker(Oid dboid, bool writer)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	const char *what = writer ? "audit writer" : "sealer";

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "consent_ledger");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, writer ? "cl_writer_main" : "cl_sealer_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "consent_ledger %s for database %u", what, dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "consent_ledger %s", what);
	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

/* Connectable, non-template databases, read from the shared catalog. */
static List *
list_databases(void)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext outer = CurrentMemoryContext;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(outer);
		result = lappend_oid(result, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return result;
}

void
cl_launcher_main(Datum arg)
{
	List	   *to_check = NIL;
	bool		first = true;
	TimestampTz last_no_worker_warning = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	cl_shared->launcher_latch = MyLatch;
	LWLockRelease(cl_shared->lock);

	for (;;)
	{
		List	   *dbs;
		ListCell   *lc;
		TimestampTz now = GetCurrentTimestamp();
		bool		full = false;
		bool		backoff = false;
		Oid			unstarted = InvalidOid;	/* a database whose worker could not be registered */

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		dbs = list_databases();
		if (first)
		{
			/* every database is checked once for the extension */
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			to_check = list_copy(dbs);
			MemoryContextSwitchTo(old);
			first = false;
		}
		LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
		/*
		 * Give back the slots of databases that are gone, and of those found
		 * without the extension that nobody asked for since.
		 */
		for (int i = 0; i < cl_shared->nslots; i++)
		{
			ClSealSlot *s = &cl_shared->slots[i];

			if (!OidIsValid(s->dboid) || s->pid != 0 || s->writer_pid != 0)
				continue;
			if (!list_member_oid(dbs, s->dboid))
				s->wanted = false;
			else if (s->wanted || s->present || s->blocked_until > now)
				continue;
			cl_slot_release_if_unused(s);
		}
		/* databases still to be checked, as far as slots are free */
		foreach(lc, to_check)
		{
			Oid			dboid = lfirst_oid(lc);

			if (!list_member_oid(dbs, dboid) || cl_slot_for(dboid, true) != NULL)
				to_check = foreach_delete_current(to_check, lc);
			else
				full = true;
		}
		/* start the workers each database in a slot needs */
		for (int i = 0; i < cl_shared->nslots; i++)
		{
			ClSealSlot *s = &cl_shared->slots[i];

			if (!OidIsValid(s->dboid) || s->blocked_until > now)
				continue;

			/*
			 * A worker that keeps failing at once is started again once a
			 * second at most, not as often as backends ask for it.
			 */
			if (s->pid == 0 && (s->wanted || s->present) &&
				!TimestampDifferenceExceeds(s->sealer_started, now, WORKER_RESTART_MS))
				backoff = true;
			else if (s->pid == 0 && (s->wanted || s->present))
			{
				s->wanted = false;
				s->pid = -1;	/* starting */
				s->sealer_started = now;
				if (!start_worker(s->dboid, false))
				{
					s->pid = 0;
					s->wanted = true;	/* no worker slot free: next time */
					unstarted = s->dboid;
				}
			}
			if (s->writer_pid == 0 && s->present &&
				!TimestampDifferenceExceeds(s->writer_started, now, WORKER_RESTART_MS))
				backoff = true;
			else if (s->writer_pid == 0 && s->present)
			{
				s->writer_pid = -1;
				s->writer_started = now;
				if (!start_worker(s->dboid, true))
				{
					s->writer_pid = 0;
					unstarted = s->dboid;
				}
			}
		}
		LWLockRelease(cl_shared->lock);
		list_free(dbs);

		/*
		 * PostgreSQL says nothing when no background worker slot is free,
		 * and audited reads wait for the writer: say it, once a minute.
		 */
		if (OidIsValid(unstarted) &&
			TimestampDifferenceExceeds(last_no_worker_warning, now, NO_WORKER_WARNING_MS))
		{
			last_no_worker_warning = now;
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("consent_ledger could not start a background worker for the database with OID %u",
							unstarted),
					 errdetail("Every background worker slot (max_worker_processes = %d) is taken. Until the database's sealer and audit writer run, its ledgers are not sealed and its audited reads wait for their records to be written.",
							   max_worker_processes),
					 errhint("Raise max_worker_processes: each database with the extension needs 2 workers, plus 1 for the launcher and those parallel queries and other extensions use.")));
		}
		if (full)
			ereport(DEBUG1,
					(errmsg("consent_ledger: %d databases wait for a slot to be checked for the extension",
							list_length(to_check))));

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (full || to_check != NIL || backoff) ? WORKER_RESTART_MS :
						 Min(LAUNCHER_NAP_MS, BLOCK_SECONDS * 1000 / 2),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* The slot's fields of one kind of worker: the sealer's, or the writer's. */
static void
worker_fields(ClSealSlot *s, bool writer, pid_t **pid, Latch ***latch)
{
	*pid = writer ? &s->writer_pid : &s->pid;
	*latch = writer ? &s->writer_latch : &s->latch;
}

/* before_shmem_exit callback: the worker gives its place in the slot back */
static void
worker_exit(int code, Datum arg)
{
	ClSealSlot *s = &cl_shared->slots[DatumGetInt32(arg) >> 1];
	bool		writer = DatumGetInt32(arg) & 1;
	pid_t	   *pid;
	Latch	  **latch;

	worker_fields(s, writer, &pid, &latch);
	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	if (*pid == MyProcPid)
	{
		*pid = 0;
		*latch = NULL;
	}
	LWLockRelease(cl_shared->lock);
	/* waiters (seal(), readers waiting for a record) see it gone */
	ConditionVariableBroadcast(writer ? &cl_shared->audit_cv : &cl_shared->sealed_cv);
}

/*
 * The start of the sealer's and the writer's main functions: signals, the
 * database's slot (exit at once when there is none, the database is
 * blocked, or another worker of the kind runs), the connection, and
 * bounded lock waits.
 */
ClSealSlot *
cl_worker_attach(Oid dboid, bool writer)
{
	ClSealSlot *s;
	pid_t	   *pid = NULL;
	Latch	  **latch;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
	s = cl_slot_for(dboid, false);
	if (s != NULL)
		worker_fields(s, writer, &pid, &latch);
	if (s == NULL || s->blocked_until > GetCurrentTimestamp() ||
		(*pid > 0 && *pid != MyProcPid))
	{
		if (pid && *pid == -1)
			*pid = 0;
		LWLockRelease(cl_shared->lock);
		proc_exit(0);
	}
	*pid = MyProcPid;
	*latch = MyLatch;
	LWLockRelease(cl_shared->lock);
	before_shmem_exit(worker_exit, Int32GetDatum((int32) ((s - cl_shared->slots) << 1 | (writer ? 1 : 0))));

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	worker_settings();
	return s;
}

static int64
unix_seconds(TimestampTz ts)
{
	return (int64) (ts / USECS_PER_SEC) +
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);
}

static Datum
bytea_datum(const void *p, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), p, len);
	return PointerGetDatum(b);
}

/*
 * Records the running key (and its endorsement, if any) in
 * consent_ledger.keys.  A key recorded earlier without an endorsement
 * gets this start's, when the key that signed it is recorded here too
 * (the previous key was provided after the rotation: README "Keys").
 */
static void
record_key(void)
{
	char		hex[CL_KEYID_LEN * 2 + 1];
	Oid			types[3] = {TEXTOID, BYTEAOID, TEXTOID};
	Datum		vals[3];
	char		nulls[3] = {' ', ' ', ' '};
	const char *rotation = cl_keys_rotation_note();
	bool		endorsed = false;

	if (!cl_keys_can_sign())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger cannot seal: this server has no signing key"),
				 errdetail("It started as a standby without its key file."),
				 errhint("Provide the key file (consent_ledger.signing_key_file) and restart the server (README \"Keys\").")));
	cl_hex_encode(cl_keys_id(), CL_KEYID_LEN, hex);
	vals[0] = CStringGetTextDatum(hex);
	vals[1] = bytea_datum(cl_keys_public(), CL_PUBKEY_LEN);
	if (SPI_execute_with_args("SELECT endorsement IS NOT NULL FROM consent_ledger.keys WHERE key_id OPERATOR(pg_catalog.=) $1 "
							  "AND public_key OPERATOR(pg_catalog.=) $2",
							  2, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.keys");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		endorsed |= DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (SPI_processed > 0 && (endorsed || rotation == NULL))
		return;
	if (rotation)
		vals[2] = CStringGetTextDatum(rotation);
	else
		nulls[2] = 'n';
	if (SPI_processed > 0)
	{
		cl_key_rotation r;
		const char *err;
		Datum		old;

		/* endorse the recorded key only when its predecessor is recorded too */
		if (!cl_rotation_parse(rotation, strlen(rotation), &r, &err))
			return;
		old = bytea_datum(r.oldpk, CL_PUBKEY_LEN);
		if (SPI_execute_with_args("UPDATE consent_ledger.keys SET endorsement = $3 "
								  "WHERE key_id OPERATOR(pg_catalog.=) $1 AND public_key OPERATOR(pg_catalog.=) $2 "
								  "AND endorsement IS NULL AND EXISTS (SELECT FROM consent_ledger.keys o "
								  "WHERE o.public_key OPERATOR(pg_catalog.=) $4)",
								  4, (Oid[]) {TEXTOID, BYTEAOID, TEXTOID, BYTEAOID},
								  (Datum[]) {vals[0], vals[1], vals[2], old}, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record the signing key's endorsement");
		return;
	}
	if (SPI_execute_with_args("INSERT INTO consent_ledger.keys (key_id, public_key, first_seen, endorsement) "
							  "VALUES ($1, $2, pg_catalog.now(), $3)",
							  3, types, vals, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the signing key");
}

/*
 * The log rows a sealing round of one ledger is writing.  Leaves are
 * added in log order with round_append(); each log row holds at most
 * CL_MAX_LEAVES_PER_LOG leaves and the records (transaction, first
 * ordinal, count) they come from.
 */
typedef struct SealRound
{
	int32		ledger_id;
	cl_frontier *frontier;
	uint64		row_first_leaf; /* first leaf of the log row being built */
	StringInfoData leaves;		/* its leaf hashes */
	int64		row_nleaves;
	int			nrec;
	int			caprec;
	Datum	   *txns;
	Datum	   *ords;
	Datum	   *counts;
} SealRound;

/*
 * Where a round has the new leaves' hashes, in log order: leaves
 * first_leaf .. first_leaf + n - 1 of the ledger, about to be written as
 * one log row.  This is the one place to hook anything that must see
 * every sealed leaf (stored interior hashes, for instance); it runs in
 * the round's transaction, so whatever it writes commits or rolls back
 * with the log row and the checkpoint.
 */
static void
round_new_leaves(int32 ledger_id, uint64 first_leaf, const uint8 *hashes, int64 n)
{
	/* the subtree hashes these leaves complete (tiles.c) */
	cl_tiles_append(ledger_id, first_leaf, (const cl_hash *) hashes, (uint64) n);
}

/*
 * Writes the log row being built, if it has leaves.  From 1.3 (bigint
 * counts) the row goes straight into the heap and the primary key, with
 * its leaf hashes passed in place: through SPI the 32 MiB bytea of a
 * large round was copied by the planner (a parameter folded into a
 * constant) and again by the executor before being toasted.
 */
static void
round_flush(SealRound *r)
{
	bytea	   *leaves = (bytea *) r->leaves.data;
	Datum		lvals[7];
	Relation	log;

	if (r->row_nleaves == 0)
		return;
	SET_VARSIZE(leaves, r->leaves.len);
	round_new_leaves(r->ledger_id, r->row_first_leaf, (const uint8 *) VARDATA(leaves),
					 r->row_nleaves);
	lvals[0] = Int32GetDatum(r->ledger_id);
	lvals[1] = Int64GetDatum((int64) r->row_first_leaf);
	lvals[2] = Int64GetDatum(r->row_nleaves);
	lvals[3] = PointerGetDatum(construct_array(r->txns, r->nrec, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	lvals[4] = PointerGetDatum(construct_array(r->ords, r->nrec, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	lvals[5] = PointerGetDatum(construct_array(r->counts, r->nrec, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	lvals[6] = PointerGetDatum(leaves);

	log = table_open(cl_internal_relid("log"), RowExclusiveLock);
	if (RelationGetDescr(log)->natts == 7 &&
		TupleDescAttr(RelationGetDescr(log), 2)->atttypid == INT8OID &&
		TupleDescAttr(RelationGetDescr(log), 4)->atttypid == INT8ARRAYOID &&
		TupleDescAttr(RelationGetDescr(log), 5)->atttypid == INT8ARRAYOID)
	{
		bool		nulls[7] = {false, false, false, false, false, false, false};
		HeapTuple	tup = heap_form_tuple(RelationGetDescr(log), lvals, nulls);

		CatalogTupleInsert(log, tup);
		heap_freetuple(tup);
		table_close(log, RowExclusiveLock);
	}
	else
	{
		/*
		 * Before ALTER EXTENSION ... UPDATE to 1.3 the columns are integer:
		 * the assignment casts apply (the values fit: one log row holds at
		 * most CL_MAX_LEAVES_PER_LOG leaves).
		 */
		Oid			ltypes[7] = {INT4OID, INT8OID, INT8OID, INT8ARRAYOID, INT8ARRAYOID,
		INT8ARRAYOID, BYTEAOID};

		table_close(log, RowExclusiveLock);
		if (SPI_execute_with_args("INSERT INTO consent_ledger.log "
								  "(ledger_id, first_leaf, nleaves, txns, first_ords, counts, leaves) "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7)",
								  7, ltypes, lvals, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not append to consent_ledger.log");
	}
	CommandCounterIncrement();
	r->row_first_leaf += (uint64) r->row_nleaves;
	r->row_nleaves = 0;
	r->nrec = 0;
	resetStringInfo(&r->leaves);
	appendStringInfoSpaces(&r->leaves, VARHDRSZ);
}

/* Appends n leaves of record (txn, first_ord) to the round, in log order. */
static void
round_append(SealRound *r, int64 txn, int64 first_ord, const uint8 *p, int64 n)
{
	while (n > 0)
	{
		int64		k = Min(n, CL_MAX_LEAVES_PER_LOG - r->row_nleaves);

		if (r->nrec == r->caprec)
		{
			r->caprec *= 2;
			r->txns = repalloc(r->txns, sizeof(Datum) * r->caprec);
			r->ords = repalloc(r->ords, sizeof(Datum) * r->caprec);
			r->counts = repalloc(r->counts, sizeof(Datum) * r->caprec);
		}
		for (int64 j = 0; j < k; j++)
			cl_frontier_append(r->frontier, p + (Size) j * CL_HASH_LEN);
		appendBinaryStringInfo(&r->leaves, (const char *) p, (int) (k * CL_HASH_LEN));
		r->txns[r->nrec] = Int64GetDatum(txn);
		r->ords[r->nrec] = Int64GetDatum(first_ord);
		r->counts[r->nrec] = Int64GetDatum(k);
		r->nrec++;
		r->row_nleaves += k;
		if (r->row_nleaves == CL_MAX_LEAVES_PER_LOG)
			round_flush(r);
		p += (Size) k * CL_HASH_LEN;
		first_ord += k;
		n -= k;
	}
}

/*
 * Takes pending records of one ledger into the round, in index order
 * (ledger_id, txn, first_ord), 64 at a time: those of transaction only_txn
 * when only is true, otherwise those of every transaction but skip_txn.
 * Stops when the round has budget leaves.  A record taken whole is added
 * to *done (its ctid, for one DELETE); a record the budget cuts is left
 * with its remaining leaves (*cut set).  Reads only the leaves it takes
 * (the hashes are stored uncompressed out of line, so a slice costs only
 * its own chunks).
 */
static void
round_take(SealRound *r, bool only, int64 the_txn, int64 *budget,
		   Datum **done, uint64 *ndone, uint64 *capdone, bool *cut)
{
	int64		after_txn = PG_INT64_MIN;
	int64		after_ord = -1;
	/* leaves_offset exists from 1.3 on (before, a cut record is rewritten) */
	bool		has_offset = get_attnum(cl_internal_relid("pending"), "leaves_offset") != InvalidAttrNumber;
	const char *cols = has_offset ?
		"SELECT ctid, txn, first_ord::pg_catalog.int8, nleaves::pg_catalog.int8, leaves, leaves_offset " :
		"SELECT ctid, txn, first_ord::pg_catalog.int8, nleaves::pg_catalog.int8, leaves, 0::pg_catalog.int8 ";
	int			nest = NewGUCNestLevel();

	/*
	 * Always through the index (ledger_id, txn, first_ord), in its order:
	 * a sequential scan and a sort would read every pending record of
	 * every ledger, and a planner that finds pending small (it mostly is)
	 * would pick one.
	 */
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	while (*budget > 0 && !*cut)
	{
		Oid			types[4] = {INT4OID, INT8OID, INT8OID, INT8OID};
		Datum		vals[4];
		uint64		nrows;
		SPITupleTable *tt;

		vals[0] = Int32GetDatum(r->ledger_id);
		vals[1] = Int64GetDatum(the_txn);
		vals[2] = Int64GetDatum(after_txn);
		vals[3] = Int64GetDatum(after_ord);
		if (SPI_execute_with_args(psprintf("%s%s", cols, only ?
								  "FROM consent_ledger.pending WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
								  "AND txn OPERATOR(pg_catalog.=) $2 "
								  "AND first_ord OPERATOR(pg_catalog.>) $4 "
								  "ORDER BY ledger_id, txn, first_ord LIMIT 64" :
								  "FROM consent_ledger.pending WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
								  "AND (txn, first_ord) OPERATOR(pg_catalog.>) ($3, $4) "
								  "AND txn OPERATOR(pg_catalog.<>) $2 "
								  "ORDER BY ledger_id, txn, first_ord LIMIT 64"),
								  4, types, vals, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read consent_ledger.pending");
		tt = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			break;
		for (uint64 i = 0; i < nrows && *budget > 0; i++)
		{
			HeapTuple	t = tt->vals[i];
			TupleDesc	d = tt->tupdesc;
			bool		isnull;
			int64		txn = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
			int64		first_ord = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
			int64		n = DatumGetInt64(SPI_getbinval(t, d, 4, &isnull));
			Datum		lv = SPI_getbinval(t, d, 5, &isnull);
			int64		off = DatumGetInt64(SPI_getbinval(t, d, 6, &isnull));
			int64		k = Min(n, *budget);
			/* the stored length, without fetching the value */
			Size		rawsize = toast_raw_datum_size(lv) - VARHDRSZ;
			bytea	   *slice;

			if (n <= 0 || first_ord < 0 || off < 0 || rawsize != (Size) (off + n) * CL_HASH_LEN)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("pending record of ledger %d, transaction " INT64_FORMAT " is corrupt",
								r->ledger_id, txn)));
			slice = DatumGetByteaPSlice(lv, (int32) (off * CL_HASH_LEN), (int32) (k * CL_HASH_LEN));
			if (VARSIZE_ANY_EXHDR(slice) != (Size) k * CL_HASH_LEN)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("pending record of ledger %d, transaction " INT64_FORMAT " is corrupt",
								r->ledger_id, txn)));
			round_append(r, txn, first_ord, (const uint8 *) VARDATA_ANY(slice), k);
			if ((Pointer) slice != DatumGetPointer(lv))
				pfree(slice);
			*budget -= k;
			if (k < n)
			{
				/* the rest stays pending, first in line for the next round */
				Oid			utypes[2] = {TIDOID, INT8OID};
				Datum		uvals[2] = {SPI_getbinval(t, d, 1, &isnull), Int64GetDatum(k)};

				/*
				 * From 1.3 the stored hashes stay as they are (the new
				 * tuple keeps their toast pointer): O(1) whatever the
				 * record's size.
				 */
				if (SPI_execute_with_args(has_offset ?
										  "UPDATE consent_ledger.pending SET "
										  "first_ord = first_ord OPERATOR(pg_catalog.+) $2, "
										  "nleaves = nleaves OPERATOR(pg_catalog.-) $2, "
										  "leaves_offset = leaves_offset OPERATOR(pg_catalog.+) $2 "
										  "WHERE ctid OPERATOR(pg_catalog.=) $1" :
										  "UPDATE consent_ledger.pending SET "
										  "first_ord = first_ord OPERATOR(pg_catalog.+) $2, "
										  "nleaves = nleaves OPERATOR(pg_catalog.-) $2, "
										  "leaves = pg_catalog.substr(leaves, ($2 OPERATOR(pg_catalog.*) 32 OPERATOR(pg_catalog.+) 1)::pg_catalog.int4) "
										  "WHERE ctid OPERATOR(pg_catalog.=) $1",
										  2, utypes, uvals, NULL, false, 0) != SPI_OK_UPDATE ||
					SPI_processed != 1)
					elog(ERROR, "could not update a partly sealed record of consent_ledger.pending");
				*cut = true;
				break;
			}
			if (*ndone == *capdone)
			{
				*capdone *= 2;
				*done = repalloc_huge(*done, sizeof(Datum) * *capdone);
			}
			(*done)[(*ndone)++] = datumCopy(SPI_getbinval(t, d, 1, &isnull), false, sizeof(ItemPointerData));
			after_txn = txn;
			after_ord = first_ord;
		}
		SPI_freetuptable(tt);
		if (nrows < 64)
			break;
	}
	AtEOXact_GUC(true, nest);
}

/*
 * Seals one ledger: appends committed pending records to the log and
 * signs a checkpoint over the new tree.  Also writes the first (empty)
 * checkpoint of a new ledger, which anchors its origin.  Returns the
 * number of leaves sealed; *more is set when the round stopped at
 * consent_ledger.seal_round_size with records possibly left.
 *
 * The cost does not depend on the ledger's history: the last checkpoint
 * (by its primary key) gives the RFC 9162 frontier, the last log row (by
 * its primary key) must end where that checkpoint's tree does, and
 * pending is read in the order of its index, only as far as the round
 * takes.  A round takes at most seal_round_size leaves: first the rest
 * of the transaction the previous round cut (a transaction's leaves stay
 * contiguous in the log), then whole records in (txn, first_ord) order,
 * cutting the last one if needed.
 */
static uint64
seal_ledger(int32 ledger_id, const char *origin, bool *more)
{
	Oid			types[6] = {INT4OID, INT8OID, INT8OID, INT4OID, INT4OID, BYTEAOID};
	Datum		vals[9];
	cl_frontier frontier;
	cl_hash		prev;
	cl_hash		root;
	int64		seq = 0;
	uint64		sealed = 0;
	bool		have_checkpoint;
	int64		last_txn = 0;
	bool		have_last_txn = false;
	int64		budget = cl_seal_round_leaves;
	SealRound	r;
	Datum	   *done;
	uint64		ndone = 0;
	uint64		capdone = 64;
	bool		cut = false;

	*more = false;
	vals[0] = Int32GetDatum(ledger_id);
	if (SPI_execute_with_args("SELECT seq, note, frontier FROM consent_ledger.checkpoints "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 ORDER BY seq DESC LIMIT 1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	have_checkpoint = SPI_processed > 0;
	if (have_checkpoint)
	{
		HeapTuple	t = SPI_tuptable->vals[0];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		text	   *note;
		bytea	   *fr;

		seq = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		note = DatumGetTextPP(SPI_getbinval(t, d, 2, &isnull));
		fr = DatumGetByteaPP(SPI_getbinval(t, d, 3, &isnull));
		cl_note_hash(VARDATA_ANY(note), VARSIZE_ANY_EXHDR(note), prev);
		if (!cl_frontier_deserialize((uint8_t *) VARDATA_ANY(fr), VARSIZE_ANY_EXHDR(fr), &frontier))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("stored frontier of ledger %d is corrupt", ledger_id),
					 errhint("Run consent_ledger.verify() on the ledger.")));
	}
	else
	{
		cl_frontier_init(&frontier);
		memset(prev, 0, sizeof(prev));
	}

	/*
	 * The log must end exactly where the last checkpoint's tree does before
	 * anything is appended.  It does not while pg_restore is still copying
	 * the log, the checkpoints or the pending records in, or after damage:
	 * then leave the ledger alone (verify() reports damage).  Only the last
	 * log row is read (its primary key): the round never reads the
	 * ledger's history.
	 */
	if (SPI_execute_with_args("SELECT (first_leaf OPERATOR(pg_catalog.+) nleaves)::pg_catalog.int8, "
							  "txns[pg_catalog.array_upper(txns, 1)] "
							  "FROM consent_ledger.log WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
							  "ORDER BY ledger_id DESC, first_leaf DESC LIMIT 1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.log");
	{
		int64		logged = 0;

		if (SPI_processed > 0)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			logged = isnull ? -1 : DatumGetInt64(d);
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			if (!isnull)
			{
				last_txn = DatumGetInt64(d);
				have_last_txn = true;
			}
		}
		if (logged < 0 || (uint64) logged != frontier.size)
		{
			ereport(DEBUG1,
					(errmsg("consent_ledger: not sealing ledger %d: its log ends at leaf " INT64_FORMAT ", its last checkpoint at " UINT64_FORMAT,
							ledger_id, logged, frontier.size)));
			return 0;
		}
	}

	memset(&r, 0, sizeof(r));
	r.ledger_id = ledger_id;
	r.frontier = &frontier;
	r.row_first_leaf = frontier.size;
	initStringInfo(&r.leaves);
	appendStringInfoSpaces(&r.leaves, VARHDRSZ);	/* the bytea header, set at flush */
	r.caprec = 64;
	r.txns = palloc(sizeof(Datum) * r.caprec);
	r.ords = palloc(sizeof(Datum) * r.caprec);
	r.counts = palloc(sizeof(Datum) * r.caprec);
	done = palloc(sizeof(Datum) * capdone);

	/* the rest of a transaction the previous round cut comes first */
	if (have_last_txn)
		round_take(&r, true, last_txn, &budget, &done, &ndone, &capdone, &cut);
	if (!cut)
		round_take(&r, false, have_last_txn ? last_txn : PG_INT64_MIN, &budget,
				   &done, &ndone, &capdone, &cut);
	round_flush(&r);
	*more = (budget == 0);
	if (ndone > 0)
	{
		Oid			tidarr[1] = {TIDARRAYOID};
		Datum		arr = PointerGetDatum(construct_array(done, (int) ndone, TIDOID,
														  sizeof(ItemPointerData), false,
														  TYPALIGN_SHORT));

		if (SPI_execute_with_args("DELETE FROM consent_ledger.pending "
								  "WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)",
								  1, tidarr, &arr, NULL, false, 0) != SPI_OK_DELETE ||
			SPI_processed != ndone)
			elog(ERROR, "could not delete sealed records from consent_ledger.pending");
	}
	sealed = (uint64) (cl_seal_round_leaves - budget);
	if (sealed == 0 && have_checkpoint)
		return 0;

	/* sign the new checkpoint */
	{
		char		note[CL_MAX_NOTE];
		char		hex[CL_KEYID_LEN * 2 + 1];
		uint8_t		sig[CL_SIG_LEN];
		size_t		bodylen;
		size_t		notelen;
		TimestampTz now = GetCurrentTimestamp();
		int64		secs = unix_seconds(now);
		size_t		flen = cl_frontier_serialized_len(frontier.size);
		uint8_t    *fbuf = palloc(flen);
		Oid			ctypes[9] = {INT4OID, INT8OID, INT8OID, BYTEAOID, TIMESTAMPTZOID,
		BYTEAOID, TEXTOID, TEXTOID, BYTEAOID};

		cl_frontier_root(&frontier, root);
		bodylen = cl_checkpoint_body(origin, frontier.size, root, secs, prev, note, sizeof(note));
		if (bodylen == 0)
			elog(ERROR, "could not format checkpoint of ledger %d", ledger_id);
		cl_keys_sign((const uint8_t *) note, bodylen, sig);
		notelen = cl_note_append_signature(note, bodylen, sizeof(note), CL_KEY_NAME,
										   cl_keys_id(), sig);
		if (notelen == 0)
			elog(ERROR, "could not format checkpoint of ledger %d", ledger_id);
		note[notelen] = '\0';
		cl_frontier_serialize(&frontier, fbuf);
		cl_hex_encode(cl_keys_id(), CL_KEYID_LEN, hex);

		vals[0] = Int32GetDatum(ledger_id);
		vals[1] = Int64GetDatum(seq + 1);
		vals[2] = Int64GetDatum((int64) frontier.size);
		vals[3] = bytea_datum(root, CL_HASH_LEN);
		vals[4] = TimestampTzGetDatum(now - (now % USECS_PER_SEC));
		vals[5] = bytea_datum(prev, CL_HASH_LEN);
		vals[6] = CStringGetTextDatum(hex);
		vals[7] = CStringGetTextDatum(note);
		vals[8] = bytea_datum(fbuf, flen);
		if (SPI_execute_with_args("INSERT INTO consent_ledger.checkpoints "
								  "(ledger_id, seq, tree_size, root, signed_at, prev, key_id, note, frontier) "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
								  9, ctypes, vals, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into consent_ledger.checkpoints");
	}
	return sealed;
}

/* Ledgers whose last attempt failed (reported once, until they seal again) */
static List *failed_ledgers = NIL;	/* of ledger ids, in TopMemoryContext */

static char *
ledger_name(ClLedgerInfo *info)
{
	char	   *rel = OidIsValid(info->relid) ? get_rel_name(info->relid) : NULL;

	if (rel == NULL)
		return psprintf("ledger %d", info->ledger_id);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(info->relid)), rel);
}

/*
 * Seals one ledger in a subtransaction of its own: an error (a damaged
 * frontier, a corrupt pending record) rolls back that ledger alone and is
 * reported with a WARNING the first time, so that one damaged ledger
 * never stops the others from being sealed.
 */
typedef struct SealWork
{
	ClLedgerInfo *info;
	uint64		sealed;
	bool		more;
} SealWork;

static void
seal_work(void *arg)
{
	SealWork   *w = arg;

	w->sealed = seal_ledger(w->info->ledger_id, w->info->origin, &w->more);
}

static uint64
seal_ledger_isolated(ClLedgerInfo *info, bool *more)
{
	SealWork	w = {info, 0, false};
	bool		failed_before = list_member_int(failed_ledgers, info->ledger_id);
	ErrorData  *edata = cl_run_in_subxact(seal_work, &w);

	if (edata != NULL)
	{
		ereport(failed_before ? DEBUG1 : WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("consent_ledger could not seal ledger \"%s\": %s",
						ledger_name(info), edata->message),
				 errdetail("The other ledgers of the database are still sealed; this one is skipped until it can be sealed again."),
				 errhint("Run consent_ledger.verify('%s') to locate the damage.",
						 ledger_name(info))));
		FreeErrorData(edata);
		if (!failed_before)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			failed_ledgers = lappend_int(failed_ledgers, info->ledger_id);
			MemoryContextSwitchTo(old);
		}
		return 0;
	}
	*more |= w.more;
	if (failed_before)
	{
		failed_ledgers = list_delete_int(failed_ledgers, info->ledger_id);
		ereport(LOG,
				(errmsg("consent_ledger sealed ledger \"%s\" again", ledger_name(info))));
	}
	return w.sealed;
}

/*
 * Whether a privileged pg_restore session is connected to this database:
 * one whose role is a superuser or owns the extension.  application_name
 * is chosen by the client, so a plain role's session never counts.
 */
static bool
restore_in_progress(void)
{
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		vals[2] = {ObjectIdGetDatum(MyDatabaseId), ObjectIdGetDatum(cl_extension_owner())};

	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_stat_activity a "
							  "JOIN pg_catalog.pg_authid r ON r.oid OPERATOR(pg_catalog.=) a.usesysid "
							  "WHERE a.datid OPERATOR(pg_catalog.=) $1 "
							  "AND a.application_name OPERATOR(pg_catalog.=) 'pg_restore' "
							  "AND (r.rolsuper OR r.oid OPERATOR(pg_catalog.=) $2)",
							  2, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_stat_activity");
	return SPI_processed > 0;
}

/*
 * One sealing round over every ledger of the database, in a transaction of
 * its own.  Adds what it sealed to last_round_sealed.  Returns false when
 * the extension is not installed here; *more is set when a ledger had
 * more to seal than consent_ledger.seal_round_size (the caller runs
 * another round at once).
 */
static bool
seal_round(bool *more)
{
	bool		present;

	*more = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	present = cl_extension_present();
	if (present)
	{
		List	   *ledgers;
		ListCell   *lc;

		pgstat_report_activity(STATE_RUNNING, "sealing");
		cl_lock_extension(CL_LOCK_SEAL_ROUND, ExclusiveLock);
		/* a snapshot taken after the lock sees every earlier round's work */
		PopActiveSnapshot();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		/* a restore in progress brings its own log and checkpoints: wait */
		if (restore_in_progress())
		{
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			pgstat_report_activity(STATE_IDLE, NULL);
			return true;
		}
		record_key();
		ledgers = cl_ledger_list();
		foreach(lc, ledgers)
			last_round_sealed += seal_ledger_isolated((ClLedgerInfo *) lfirst(lc), more);
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return present;
}

static TimestampTz last_round = 0;

/* Whether seal_interval has passed since the last round. */
static bool
round_due(void)
{
	return TimestampDifferenceExceeds(last_round, GetCurrentTimestamp(), cl_seal_interval_ms);
}

/* Sleeps until the next round is due, or the latch is set (a seal()
 * request, or audit records queued). */
static void
wait_for_work(void)
{
	long		remaining = cl_seal_interval_ms;
	TimestampTz next = TimestampTzPlusMilliseconds(last_round, cl_seal_interval_ms);
	TimestampTz now = GetCurrentTimestamp();

	if (next > now)
		remaining = (long) ((next - now) / 1000) + 1;
	else
		remaining = 0;
	/* a shipping command to look at, or a checkpoint to ship (ship.c) */
	remaining = cl_ship_wait_ms(remaining);
	if (remaining > 0)
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 remaining, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

void
cl_sealer_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	my_slot = cl_worker_attach(dboid, false);
	cl_ship_start();

	for (;;)
	{
		uint64		request;
		bool		present;
		bool		more;
		Latch	   *launcher = NULL;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			cl_ship_reloaded();
		}

		/*
		 * Checkpoint shipping (ship.c) between rounds, never inside one: it
		 * starts consent_ledger.checkpoint_command and records how it
		 * ended, and never waits for it.
		 */
		cl_ship_work();
		/* a witness cosignature to sign or evidence to record (witness.c) */
		cl_witness_serve();

		LWLockAcquire(cl_shared->lock, LW_SHARED);
		request = my_slot->requested;
		LWLockRelease(cl_shared->lock);

		if (request == my_slot->completed && !round_due())
		{
			wait_for_work();
			continue;
		}
		/*
		 * A backlog larger than consent_ledger.seal_round_size is sealed
		 * over several rounds, back to back, each its own transaction with
		 * its own checkpoint; the request counts as done when a round
		 * found no more than it could take.
		 */
		last_round_sealed = 0;
		present = seal_round(&more);
		while (present && more)
		{
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
				cl_ship_reloaded();
			}
			pgstat_report_stat(false);
			cl_ship_checkpoints_made();
			cl_ship_work();
			present = seal_round(&more);
		}
		if (present)
			cl_ship_checkpoints_made();
		/* the rounds' table statistics (pending's dead rows for autovacuum) */
		pgstat_report_stat(true);
		last_round = GetCurrentTimestamp();

		LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
		my_slot->completed = request;
		my_slot->last_sealed = last_round_sealed;
		if (present && !my_slot->present)
		{
			/* the launcher starts the audit writer now */
			my_slot->present = true;
			launcher = cl_shared->launcher_latch;
		}
		if (!present)
		{
			/* no extension here: give the slot back unless someone asked */
			my_slot->present = false;
			my_slot->pid = 0;
			my_slot->latch = NULL;
			if (!my_slot->wanted)
				cl_slot_release_if_unused(my_slot);
			my_slot = NULL;
		}
		LWLockRelease(cl_shared->lock);
		ConditionVariableBroadcast(&cl_shared->sealed_cv);
		if (launcher)
			SetLatch(launcher);
		if (!present)
			proc_exit(0);
		wait_for_work();
	}
}

/*
 * Waits until this database's audit writer has written every record (and
 * recorded every gap) queued before the call, so that the round seal()
 * asks for covers them.  Bounded by the caller's deadline.
 */
static void
audit_caught_up(TimestampTz deadline)
{
	ClSealSlot *s;
	uint64		enqueued;
	uint64		lost;

	LWLockAcquire(cl_shared->lock, LW_SHARED);
	s = cl_slot_for(MyDatabaseId, false);
	if (s == NULL)
	{
		LWLockRelease(cl_shared->lock);
		return;
	}
	enqueued = s->audit_enqueued;
	lost = s->audit_lost;
	LWLockRelease(cl_shared->lock);

	ConditionVariablePrepareToSleep(&cl_shared->audit_cv);
	for (;;)
	{
		bool		done;
		Latch	   *writer;
		Latch	   *launcher = NULL;

		LWLockAcquire(cl_shared->lock, LW_SHARED);
		done = s->dboid != MyDatabaseId ||
			(s->audit_written >= enqueued && s->audit_lost_recorded >= lost);
		writer = s->writer_latch;
		if (writer == NULL)
			launcher = cl_shared->launcher_latch;
		LWLockRelease(cl_shared->lock);
		if (done)
			break;
		if (writer)
			SetLatch(writer);
		else if (launcher)
			SetLatch(launcher);
		if (GetCurrentTimestamp() >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("timed out waiting for the consent_ledger audit writer"),
					 errdetail("Audit records queued before seal() were not written within consent_ledger.seal_timeout (%d ms).",
							   cl_seal_timeout_ms),
					 errhint("Check the server log for errors of the audit writer.")));
		}
		(void) ConditionVariableTimedSleep(&cl_shared->audit_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

/*
 * consent_ledger.seal(): waits until the audit writer has written the
 * records queued before the call, then asks this database's sealer for a
 * round and waits until a round that started after the request has
 * committed.  Seals
 * what was committed before the call (not the caller's own open
 * transaction).  Returns the number of rows that round sealed.
 */
Datum
cl_seal(PG_FUNCTION_ARGS)
{
	ClSealSlot *s;
	uint64		target = 0;
	uint64		sealed = 0;
	TimestampTz deadline;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot seal ledgers during recovery"),
				 errhint("Sealing happens on the primary; a standby receives its checkpoints by replication.")));
	if (cl_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger must be loaded via shared_preload_libraries")));

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cl_seal_timeout_ms);
	audit_caught_up(deadline);
	ConditionVariablePrepareToSleep(&cl_shared->sealed_cv);
	for (;;)
	{
		Latch	   *latch = NULL;
		bool		done = false;
		bool		need_launch = false;

		LWLockAcquire(cl_shared->lock, LW_EXCLUSIVE);
		s = cl_slot_for(MyDatabaseId, true);
		if (s == NULL)
		{
			LWLockRelease(cl_shared->lock);
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("consent_ledger can seal at most %d databases", cl_shared->nslots),
					 errdetail("Every slot is taken by a database with the extension."),
					 errhint("Raise consent_ledger.max_databases (and max_worker_processes: each database needs two workers) and restart the server.")));
		}
		if (s->pid > 0)
		{
			if (target == 0)
				target = ++s->requested;
			latch = s->latch;
			done = (s->completed >= target);
			sealed = s->last_sealed;
		}
		else if (s->pid == 0)
		{
			s->wanted = true;
			need_launch = true;
		}
		LWLockRelease(cl_shared->lock);

		if (done)
			break;
		if (latch)
			SetLatch(latch);
		if (need_launch && cl_shared->launcher_latch)
			SetLatch(cl_shared->launcher_latch);
		if (GetCurrentTimestamp() >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("timed out waiting for the consent_ledger sealer"),
					 errdetail("No sealing round finished within consent_ledger.seal_timeout (%d ms).",
							   cl_seal_timeout_ms),
					 errhint("Check the server log for sealer errors.")));
		}
		(void) ConditionVariableTimedSleep(&cl_shared->sealed_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	PG_RETURN_INT64((int64) sealed);
}
