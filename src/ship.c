/*-------------------------------------------------------------------------
 * ship.c
 *	  Checkpoint shipping: the sealer runs consent_ledger.checkpoint_command
 *	  for the newest checkpoint of each ledger, in the style of
 *	  archive_command (README "Shipping checkpoints").
 *
 * The command never runs inside a sealing round and never makes the sealer
 * wait for it.  The sealer starts it as a child process of its own
 * ("/bin/sh -c", in a process group of its own, with the signals the
 * sealer ignores or blocks set back to their defaults) and goes on
 * sealing; between rounds it looks whether the child has ended
 * (waitpid(WNOHANG); a SIGCHLD handler sets the sealer's latch so it looks
 * at once).  One command runs at a time per database.  A command still
 * running after consent_ledger.checkpoint_command_timeout is terminated
 * (SIGTERM to its process group, SIGKILL five seconds later) and counts
 * as failed.  pgarch.c, by contrast, runs archive_command with system()
 * and waits: the archiver has nothing else to do, the sealer has.  Nor
 * does the sealer read a command killed by a signal, or an exit status
 * above 125, as a sign to exit (the archiver does, because system() leaves
 * SIGINT/SIGQUIT to the child): for the sealer that is one more failure,
 * retried; it exits only when told to, and then terminates a running
 * command instead of letting it finish.
 *
 * What is shipped: for each ledger, the newest checkpoint, when it is
 * newer than the last one shipped.  Checkpoints signed while the command
 * was unset, failing or busy with another ledger are not shipped one by
 * one: the next shipment is the newest, which a witness can check against
 * the last one it saw with one consistency proof.
 *
 * Each outcome is recorded after the command has ended, in a short
 * transaction of the sealer's own: a success as a row of
 * consent_ledger.checkpoint_shipments, a failure in
 * consent_ledger.checkpoint_shipping_status (and a WARNING with the
 * command's exit status, as pgarch logs).  A ledger whose command failed is
 * retried after 1 s, then 2, 4, ... 60 s at most; a configuration reload
 * retries at once.  Nothing is recorded for a command interrupted by a
 * shutdown, and a crash may come between a command's success and its
 * record: such a checkpoint is shipped again after the restart (at least
 * once, never forgotten).
 *
 * The note file is written, mode 0600, into $PGDATA/consent_ledger_shipping
 * (created 0700) as <database oid>-<ledger id>-<checkpoint seq>.note, and
 * removed when the command ends; a sealer starting removes its database's
 * leftovers.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/file_perm.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consent_ledger.h"

#define SHIP_DIR			"consent_ledger_shipping"
#define SHIP_BACKOFF_MIN_MS	1000
#define SHIP_BACKOFF_MAX_MS	60000
#define SHIP_KILL_GRACE_MS	5000
/* while a command runs, the sealer looks at least this often (SIGCHLD aside) */
#define SHIP_POLL_MS		1000

char	   *cl_checkpoint_command = NULL;
int			cl_checkpoint_command_timeout_s = 60;

/* a ledger whose last command failed: when to try it again */
typedef struct ShipBackoff
{
	int32		ledger_id;
	int			failures;		/* in a row, since this sealer started */
	TimestampTz next_try;
} ShipBackoff;

/* the checkpoint a command is shipping (or about to) */
typedef struct ShipJob
{
	int32		ledger_id;
	int64		seq;
	int64		tree_size;
	char	   *origin;
	char	   *note;
} ShipJob;

static MemoryContext ship_cxt = NULL;	/* jobs, the running command */
static List *backoffs = NIL;	/* of ShipBackoff *, in TopMemoryContext */
static bool check_needed = true;	/* look for checkpoints to ship */
static TimestampTz next_check = 0;	/* a backoff ends (0: none pending) */
static int32 last_ledger = 0;	/* round robin between ledgers */

/* the running command */
static pid_t child_pid = 0;
static ShipJob *child_job = NULL;
static char child_file[MAXPGPATH];
static char *child_command = NULL;
static TimestampTz child_started;
static TimestampTz child_term_sent;
static bool child_timed_out;
static int	child_timeout_s;	/* the limit it ran out of */

void
cl_ship_define_gucs(void)
{
	DefineCustomStringVariable("consent_ledger.checkpoint_command",
							   "Shell command the sealer runs to ship each new checkpoint (like archive_command).",
							   "%f is replaced by the path of a file holding the signed note, %o by the ledger's origin, %s by the tree size, %% by a percent sign. Empty: checkpoints are not shipped.",
							   &cl_checkpoint_command,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("consent_ledger.checkpoint_command_timeout",
							"A checkpoint_command running longer is terminated and counts as failed.",
							NULL,
							&cl_checkpoint_command_timeout_s,
							60, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* SIGCHLD: a command ended; wake the sealer to record it */
static void
ship_sigchld(SIGNAL_ARGS)
{
	int			save_errno = errno;

	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * Signals the running command's process group (the shell and whatever it
 * started) and, until it has been reaped, the shell itself (in case it had
 * not made its group yet).
 */
static void
kill_child(int sig, bool reaped)
{
	if (child_pid <= 0)
		return;
	(void) kill(-child_pid, sig);
	if (!reaped)
		(void) kill(child_pid, sig);
}

/*
 * before_shmem_exit callback: a command still running when the sealer
 * exits is terminated and its file removed; nothing is recorded, so its
 * checkpoint is shipped again by the next sealer.
 */
static void
ship_exit(int code, Datum arg)
{
	if (child_pid > 0)
	{
		kill_child(SIGTERM, false);
		(void) unlink(child_file);
		child_pid = 0;
	}
}

static char *
ship_dir(void)
{
	return psprintf("%s/%s", DataDir, SHIP_DIR);
}

/* Removes the note files an earlier sealer of this database left behind. */
static void
remove_leftovers(void)
{
	char	   *dir = ship_dir();
	char		prefix[32];
	DIR		   *d;
	struct dirent *de;

	snprintf(prefix, sizeof(prefix), "%u-", MyDatabaseId);
	d = AllocateDir(dir);
	if (d == NULL)
	{
		pfree(dir);
		return;					/* not created yet */
	}
	while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
		{
			char	   *path = psprintf("%s/%s", dir, de->d_name);

			if (unlink(path) != 0)
				ereport(LOG,
						(errcode_for_file_access(),
						 errmsg("could not remove file \"%s\": %m", path)));
			pfree(path);
		}
	}
	FreeDir(d);
	pfree(dir);
}

/* Called once by the sealer when it starts. */
void
cl_ship_start(void)
{
	ship_cxt = AllocSetContextCreate(TopMemoryContext, "consent_ledger shipping",
									 ALLOCSET_SMALL_SIZES);
	pqsignal(SIGCHLD, ship_sigchld);
	before_shmem_exit(ship_exit, (Datum) 0);
	remove_leftovers();
}

/* After a configuration reload: a new command, or the same: retry now. */
void
cl_ship_reloaded(void)
{
	list_free_deep(backoffs);
	backoffs = NIL;
	next_check = 0;
	check_needed = true;
}

/* After sealing rounds: there may be new checkpoints. */
void
cl_ship_checkpoints_made(void)
{
	check_needed = true;
}

static ShipBackoff *
backoff_of(int32 ledger_id)
{
	ListCell   *lc;

	foreach(lc, backoffs)
	{
		ShipBackoff *b = lfirst(lc);

		if (b->ledger_id == ledger_id)
			return b;
	}
	return NULL;
}

/*
 * Runs fn(arg) with SPI in a short transaction of the sealer's own, outside
 * any sealing round.  An error (the extension dropped meanwhile, a lock
 * that could not be had) is logged and reported as false: shipping
 * bookkeeping never stops the sealer.
 */
static bool
ship_xact(void (*fn) (void *arg), void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	bool		ok;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	ok = cl_extension_present();
	if (ok)
	{
		ErrorData  *edata;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		edata = cl_run_in_subxact(fn, arg);
		if (edata != NULL)
		{
			/* reported here: edata lives in SPI's memory */
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("consent_ledger could not record checkpoint shipping: %s", edata->message),
					 errdetail("A checkpoint whose shipment was not recorded is shipped again.")));
			FreeErrorData(edata);
			ok = false;
		}
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return ok;
}

/* --- outcomes ------------------------------------------------------------ */

typedef struct ShipOutcome
{
	ShipJob    *job;
	const char *error;			/* NULL: shipped */
} ShipOutcome;

static void
record_outcome(void *arg)
{
	ShipOutcome *o = arg;
	Datum		vals[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	vals[0] = Int32GetDatum(o->job->ledger_id);
	if (o->error == NULL)
	{
		vals[1] = Int64GetDatum(o->job->seq);
		vals[2] = Int64GetDatum(o->job->tree_size);
		/* attempts: the failures in a row before this success, plus one */
		if (SPI_execute_with_args("INSERT INTO consent_ledger.checkpoint_shipments "
								  "(ledger_id, seq, tree_size, shipped_at, attempts) "
								  "SELECT $1, $2, $3, pg_catalog.now(), "
								  "1 OPERATOR(pg_catalog.+) coalesce((SELECT s.consecutive_failures "
								  "FROM consent_ledger.checkpoint_shipping_status s "
								  "WHERE s.ledger_id OPERATOR(pg_catalog.=) $1), 0) "
								  "ON CONFLICT (ledger_id, seq) DO NOTHING",
								  3, (Oid[]) {INT4OID, INT8OID, INT8OID}, vals, NULL,
								  false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into consent_ledger.checkpoint_shipments");
		if (SPI_execute_with_args("UPDATE consent_ledger.checkpoint_shipping_status "
								  "SET consecutive_failures = 0 "
								  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
								  "AND consecutive_failures OPERATOR(pg_catalog.<>) 0",
								  1, (Oid[]) {INT4OID}, vals, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update consent_ledger.checkpoint_shipping_status");
		return;
	}
	vals[1] = Int64GetDatum(o->job->tree_size);
	vals[2] = CStringGetTextDatum(o->error);
	if (SPI_execute_with_args("INSERT INTO consent_ledger.checkpoint_shipping_status AS s "
							  "(ledger_id, failures, consecutive_failures, last_failed_at, last_failed_size, last_error) "
							  "VALUES ($1, 1, 1, pg_catalog.now(), $2, $3) "
							  "ON CONFLICT (ledger_id) DO UPDATE SET "
							  "failures = s.failures OPERATOR(pg_catalog.+) 1, "
							  "consecutive_failures = s.consecutive_failures OPERATOR(pg_catalog.+) 1, "
							  "last_failed_at = excluded.last_failed_at, "
							  "last_failed_size = excluded.last_failed_size, "
							  "last_error = excluded.last_error",
							  3, (Oid[]) {INT4OID, INT8OID, TEXTOID}, vals, nulls,
							  false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not update consent_ledger.checkpoint_shipping_status");
}

/*
 * A failure: logged (WARNING, with the command and how it failed), recorded,
 * and the ledger retried after a backoff.
 */
static void
ship_failed(ShipJob *job, const char *command, const char *how)
{
	ShipOutcome o = {job, how};
	ShipBackoff *b = backoff_of(job->ledger_id);
	int			delay;

	if (command != NULL)
		ereport(WARNING,
				(errmsg("consent_ledger could not ship the checkpoint of \"%s\" at tree size " INT64_FORMAT ": checkpoint_command %s",
						job->origin, job->tree_size, how),
				 errdetail("The failed command was: %s", command),
				 errhint("It is retried with a backoff; consent_ledger.checkpoint_shipping shows the failures.")));
	else
		ereport(WARNING,
				(errmsg("consent_ledger could not ship the checkpoint of \"%s\" at tree size " INT64_FORMAT ": %s",
						job->origin, job->tree_size, how),
				 errhint("It is retried with a backoff; consent_ledger.checkpoint_shipping shows the failures.")));
	if (b == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		b = palloc0(sizeof(ShipBackoff));
		b->ledger_id = job->ledger_id;
		backoffs = lappend(backoffs, b);
		MemoryContextSwitchTo(old);
	}
	b->failures++;
	delay = SHIP_BACKOFF_MIN_MS << Min(b->failures - 1, 10);
	b->next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											  Min(delay, SHIP_BACKOFF_MAX_MS));
	(void) ship_xact(record_outcome, &o);
}

static void
ship_succeeded(ShipJob *job)
{
	ShipOutcome o = {job, NULL};
	ShipBackoff *b = backoff_of(job->ledger_id);

	if (b != NULL)
	{
		backoffs = list_delete_ptr(backoffs, b);
		pfree(b);
	}
	(void) ship_xact(record_outcome, &o);
}

/* How a command ended, in words (as pgarch.c words archive_command's end). */
static char *
ended_how(int status)
{
	if (WIFEXITED(status))
		return psprintf("failed with exit code %d", WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return psprintf("was terminated by signal %d: %s",
						WTERMSIG(status), pg_strsignal(WTERMSIG(status)));
	return psprintf("exited with unrecognized status %d", status);
}

/*
 * Looks at the running command: records its end, or terminates it when
 * it ran out of time.  Returns true when no command runs any more.
 */
static bool
reap_child(void)
{
	int			status = 0;
	int			wait_errno;
	pid_t		r;
	TimestampTz now;
	MemoryContext old;

	if (child_pid <= 0)
		return true;
	r = waitpid(child_pid, &status, WNOHANG);
	wait_errno = errno;
	if (r == 0 || (r < 0 && wait_errno == EINTR))
	{
		now = GetCurrentTimestamp();
		if (child_term_sent == 0 &&
			TimestampDifferenceExceeds(child_started, now, cl_checkpoint_command_timeout_s * 1000))
		{
			kill_child(SIGTERM, false);
			child_term_sent = now;
			child_timed_out = true;
			child_timeout_s = cl_checkpoint_command_timeout_s;
		}
		else if (child_term_sent != 0 &&
				 TimestampDifferenceExceeds(child_term_sent, now, SHIP_KILL_GRACE_MS))
			kill_child(SIGKILL, false);
		return false;
	}
	/* a command that timed out goes with whatever it left behind */
	if (child_timed_out)
		kill_child(SIGKILL, true);
	child_pid = 0;
	(void) unlink(child_file);
	check_needed = true;
	old = MemoryContextSwitchTo(ship_cxt);
	if (r < 0)
		ship_failed(child_job, child_command, psprintf("could not be waited for: %s", strerror(wait_errno)));
	else if (child_timed_out)
		ship_failed(child_job, child_command,
					psprintf("timed out after %d s (consent_ledger.checkpoint_command_timeout) and was terminated",
							 child_timeout_s));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		ship_succeeded(child_job);
	else
		ship_failed(child_job, child_command, ended_how(status));
	MemoryContextSwitchTo(old);
	MemoryContextReset(ship_cxt);
	child_job = NULL;
	child_command = NULL;
	return true;
}

/* --- starting a command ------------------------------------------------- */

typedef struct ShipPick
{
	ShipJob    *job;			/* the next to ship, in ship_cxt, or NULL */
	TimestampTz next_check;		/* a pending ledger's backoff ends */
} ShipPick;

/*
 * The newest checkpoint of each ledger not shipped yet, oldest ledger id
 * first; takes the first one after the last ledger shipped (round robin)
 * whose backoff has run out.
 */
static void
pick_job(void *arg)
{
	ShipPick   *p = arg;
	TimestampTz now = GetCurrentTimestamp();
	int			first = -1;
	int			after = -1;
	int			chosen;

	if (SPI_execute("SELECT l.ledger_id, l.origin, c.seq, c.tree_size, c.note "
					"FROM consent_ledger.ledgers l "
					"CROSS JOIN LATERAL (SELECT k.seq, k.tree_size, k.note "
					"  FROM consent_ledger.checkpoints k "
					"  WHERE k.ledger_id OPERATOR(pg_catalog.=) l.ledger_id "
					"  ORDER BY k.seq DESC LIMIT 1) c "
					"WHERE NOT EXISTS (SELECT FROM consent_ledger.checkpoint_shipments s "
					"  WHERE s.ledger_id OPERATOR(pg_catalog.=) l.ledger_id "
					"  AND s.seq OPERATOR(pg_catalog.>=) c.seq) "
					"ORDER BY l.ledger_id", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		ShipBackoff *b = backoff_of(id);

		if (b != NULL && b->next_try > now)
		{
			if (p->next_check == 0 || b->next_try < p->next_check)
				p->next_check = b->next_try;
			continue;
		}
		if (first < 0)
			first = (int) i;
		if (after < 0 && id > last_ledger)
			after = (int) i;
	}
	chosen = after >= 0 ? after : first;
	if (chosen >= 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[chosen];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		ShipJob    *job = MemoryContextAllocZero(ship_cxt, sizeof(ShipJob));

		job->ledger_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		job->origin = MemoryContextStrdup(ship_cxt, SPI_getvalue(tup, desc, 2));
		job->seq = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		job->tree_size = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		job->note = MemoryContextStrdup(ship_cxt, SPI_getvalue(tup, desc, 5));
		p->job = job;
	}
}

/*
 * An origin goes into a shell command line: only the characters the
 * extension's own origins use (consent_ledger/<hex>) and a few other
 * harmless ones are passed; any other origin (a restored catalog edited by
 * hand) is refused rather than quoted.
 */
static bool
origin_is_safe(const char *origin)
{
	if (*origin == '\0' || *origin == '-')
		return false;
	for (const char *c = origin; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || strchr("/._:+-", *c) != NULL))
			return false;
	return true;
}

/* The command line: %f, %o, %s and %% replaced, any other % kept. */
static char *
expand_command(const char *tmpl, const char *file, const ShipJob *job)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const char *c = tmpl; *c; c++)
	{
		if (c[0] == '%' && c[1] == 'f')
			appendStringInfoString(&buf, file), c++;
		else if (c[0] == '%' && c[1] == 'o')
			appendStringInfoString(&buf, job->origin), c++;
		else if (c[0] == '%' && c[1] == 's')
			appendStringInfo(&buf, INT64_FORMAT, job->tree_size), c++;
		else if (c[0] == '%' && c[1] == '%')
			appendStringInfoChar(&buf, '%'), c++;
		else
			appendStringInfoChar(&buf, *c);
	}
	return buf.data;
}

/* Writes the note file; false (and a message in *err) when it cannot. */
static bool
write_note(const char *path, const char *note, char **err)
{
	char	   *dir = ship_dir();
	int			fd;
	size_t		len = strlen(note);
	struct stat st;

	if (MakePGDirectory(dir) != 0 && errno != EEXIST)
	{
		*err = psprintf("could not create directory \"%s\": %s", dir, strerror(errno));
		return false;
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
	{
		*err = psprintf("\"%s\" is not a directory of the server's user", dir);
		return false;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | PG_BINARY, pg_file_create_mode);
	if (fd < 0)
	{
		*err = psprintf("could not create file \"%s\": %s", path, strerror(errno));
		return false;
	}
	if (write(fd, note, len) != (ssize_t) len)
	{
		*err = psprintf("could not write file \"%s\": %s", path,
						errno ? strerror(errno) : "short write");
		close(fd);
		(void) unlink(path);
		return false;
	}
	if (close(fd) != 0)
	{
		*err = psprintf("could not close file \"%s\": %s", path, strerror(errno));
		(void) unlink(path);
		return false;
	}
	return true;
}

/* Starts the command for a job; a failure to start is a failure. */
static void
start_child(ShipJob *job)
{
	MemoryContext old = MemoryContextSwitchTo(ship_cxt);
	char	   *err = NULL;
	pid_t		pid;
	int			fork_errno;
	sigset_t	all;
	sigset_t	saved;

	last_ledger = job->ledger_id;
	if (!origin_is_safe(job->origin))
	{
		ship_failed(job, NULL, "its origin has characters not passed to a shell command");
		goto done;
	}
	snprintf(child_file, sizeof(child_file), "%s/%s/%u-%d-" INT64_FORMAT ".note",
			 DataDir, SHIP_DIR, MyDatabaseId, job->ledger_id, job->seq);
	if (!write_note(child_file, job->note, &err))
	{
		ship_failed(job, NULL, err);
		goto done;
	}
	child_command = expand_command(cl_checkpoint_command, child_file, job);

	/*
	 * Signals stay blocked across fork(), so that none of the sealer's
	 * handlers runs in the child before exec: the child sets every
	 * disposition back to the default, then unblocks.
	 */
	sigfillset(&all);
	(void) sigprocmask(SIG_SETMASK, &all, &saved);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
	{
		/* the child: only async-signal-safe calls until exec */
		sigset_t	none;

		(void) setpgid(0, 0);
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				(void) signal(sig, SIG_DFL);
		sigemptyset(&none);
		(void) sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/bin/sh", "sh", "-c", child_command, (char *) NULL);
		_exit(127);
	}
	fork_errno = errno;
	(void) sigprocmask(SIG_SETMASK, &saved, NULL);
	if (pid < 0)
	{
		(void) unlink(child_file);
		ship_failed(job, child_command, psprintf("could not be started: could not fork: %s", strerror(fork_errno)));
		goto done;
	}
	/* also here: the parent may signal the group before the child ran */
	(void) setpgid(pid, pid);
	child_pid = pid;
	child_job = job;
	child_started = GetCurrentTimestamp();
	child_term_sent = 0;
	child_timed_out = false;
	MemoryContextSwitchTo(old);
	return;

done:
	MemoryContextSwitchTo(old);
	MemoryContextReset(ship_cxt);
	check_needed = true;		/* another ledger may be shippable */
}

/*
 * The sealer's shipping step, between rounds: records a command that has
 * ended, terminates one that ran out of time, and starts the next one
 * when there is a checkpoint to ship.  Never waits.
 */
void
cl_ship_work(void)
{
	ShipPick	p = {NULL, 0};

	if (!reap_child())
		return;
	if (cl_checkpoint_command == NULL || cl_checkpoint_command[0] == '\0')
	{
		check_needed = false;
		next_check = 0;
		return;
	}
	if (!check_needed &&
		(next_check == 0 || GetCurrentTimestamp() < next_check))
		return;
	check_needed = false;
	next_check = 0;
	if (!ship_xact(pick_job, &p))
	{
		MemoryContextReset(ship_cxt);
		return;
	}
	next_check = p.next_check;
	if (p.job != NULL)
		start_child(p.job);
}

/*
 * How long the sealer may sleep before shipping needs it again (at most
 * max_ms): a running command's end is signalled, but its time limit is
 * not; a backoff ends.
 */
long
cl_ship_wait_ms(long max_ms)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz due = 0;
	long		ms = max_ms;

	if (child_pid > 0)
	{
		ms = Min(ms, SHIP_POLL_MS);
		due = child_term_sent != 0 ?
			TimestampTzPlusMilliseconds(child_term_sent, SHIP_KILL_GRACE_MS) :
			TimestampTzPlusMilliseconds(child_started, cl_checkpoint_command_timeout_s * 1000);
	}
	else if (cl_checkpoint_command == NULL || cl_checkpoint_command[0] == '\0')
		return ms;
	else if (check_needed)
		return 0;
	else
		due = next_check;
	if (due != 0)
	{
		long		until = due > now ? (long) ((due - now) / 1000) + 1 : 0;

		ms = Min(ms, until);
	}
	return ms;
}
