/*-------------------------------------------------------------------------
 * standby.c
 *	  Audited reads on a hot standby: the audit records of a protected read
 *	  are forwarded to the primary and acknowledged before the read goes on.
 *
 * A standby cannot write its own audit ledger (it replays the primary's),
 * so every record of a protected read served by a standby is written by
 * the primary: the standby backend that runs the read holds a libpq
 * connection to the primary (consent_ledger.standby_audit_conninfo, to the
 * database of the same name) and calls consent_ledger.record_standby_read()
 * there once per record (audit.c), all the records of one step of a read
 * in one implicit transaction.  The call returns when that transaction has
 * committed, with the primary's own synchronous_commit = on (so a
 * synchronous standby of the primary has it too, as for a record written
 * by the primary's audit writer): only then is the read allowed to go on.
 *
 * Why the backend and not a worker: a standby runs none of the extension's
 * workers (they write, and start only after recovery), and a backend that
 * waits for its own acknowledgement needs no queue in between: one
 * connection per standby session that reads protected data, opened at its
 * first such read and kept while it works.
 *
 * Fail closed: when no conninfo is set, when the primary cannot be reached
 * or does not answer within consent_ledger.seal_timeout, or refuses the
 * record, the read is refused (SQLSTATE 25006, 08001, 08006 or 55000, see
 * cl_standby_forward()).  Every wait is on the latch and the socket
 * (WaitLatchOrSocket, as libpqwalreceiver.c does), services interrupts,
 * and is bounded by the deadline.  From an abort callback (the "failed"
 * record of a read that was answered in part) the wait is bounded by
 * ABORT_WAIT_MS, gives up at once on a cancel or terminate request and
 * never raises; such a record, if lost, is counted and announced to the
 * primary as a "gap" record with the next records this session forwards.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"			/* PG_WAIT_EXTENSION */
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "consent_ledger.h"

#define ABORT_WAIT_MS		5000	/* longest wait while aborting */

char	   *cl_standby_audit_conninfo = NULL;
char	   *cl_standby_name = NULL;

static PGconn *conn = NULL;
static char *conn_key = NULL;	/* conninfo and database it was opened with */
static bool exit_registered = false;

void
cl_standby_define_gucs(void)
{
	DefineCustomStringVariable("consent_ledger.standby_audit_conninfo",
							   "Connection string a hot standby uses to forward the audit records of protected reads to the primary.",
							   "Empty: protected reads on a standby are refused. The database is always the one the read runs in.",
							   &cl_standby_audit_conninfo,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("consent_ledger.standby_name",
							   "Name of this standby in the audit records it forwards.",
							   "Empty: cluster_name, else the host name.",
							   &cl_standby_name,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
}

bool
cl_standby_audit_configured(void)
{
	return cl_standby_audit_conninfo != NULL && cl_standby_audit_conninfo[0] != '\0';
}

/* The name standby-origin records carry (never empty). */
const char *
cl_standby_identity(void)
{
	static char host[256];

	if (cl_standby_name && cl_standby_name[0])
		return cl_standby_name;
	if (cluster_name && cluster_name[0])
		return cluster_name;
	if (gethostname(host, sizeof(host) - 1) == 0 && host[0])
	{
		host[sizeof(host) - 1] = '\0';
		return host;
	}
	return "standby";
}

static void
drop_connection(void)
{
	if (conn != NULL)
		PQfinish(conn);
	conn = NULL;
}

static void
standby_exit(int code, Datum arg)
{
	drop_connection();
}

/* Why a forward failed: kind (an SQLSTATE of ours) and the words. */
typedef struct FwdError
{
	int			sqlstate;
	char		why[512];
	char		remote_state[6];	/* the primary's SQLSTATE, "" if none */
} FwdError;

static void
set_error(FwdError *e, int sqlstate, const char *fmt,...) pg_attribute_printf(3, 4);

static void
set_error(FwdError *e, int sqlstate, const char *fmt,...)
{
	va_list		ap;
	int			len;

	e->sqlstate = sqlstate;
	va_start(ap, fmt);
	vsnprintf(e->why, sizeof(e->why), fmt, ap);
	va_end(ap);
	/* libpq messages end with a newline */
	len = strlen(e->why);
	while (len > 0 && (e->why[len - 1] == '\n' || e->why[len - 1] == ' '))
		e->why[--len] = '\0';
}

/*
 * Waits for the connection's socket (events) or the latch, until deadline.
 * Services interrupts (may raise) unless in_abort, where a cancel or
 * terminate request ends the wait.  False (with e set) when the wait must
 * end.
 */
static bool
wait_socket(int events, TimestampTz deadline, bool in_abort, FwdError *e)
{
	long		ms = (long) ((deadline - GetCurrentTimestamp()) / 1000);
	int			rc;

	if (ms <= 0)
	{
		set_error(e, ERRCODE_CONNECTION_FAILURE, "the primary did not answer within %d ms",
				  in_abort ? Min(ABORT_WAIT_MS, cl_seal_timeout_ms) : cl_seal_timeout_ms);
		return false;
	}
	if (PQsocket(conn) < 0)
	{
		set_error(e, ERRCODE_CONNECTION_FAILURE, "the connection to the primary has no socket");
		return false;
	}
	rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | events,
						   PQsocket(conn), ms, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		if (in_abort)
		{
			if (QueryCancelPending || ProcDiePending)
			{
				set_error(e, ERRCODE_CONNECTION_FAILURE, "the wait was cancelled");
				return false;
			}
		}
		else
			CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/*
 * A connection to the primary, in the state to send a query: the one kept,
 * or a new one (at most until deadline).  NULL with e set on failure.
 */
static PGconn *
get_connection(TimestampTz deadline, bool in_abort, FwdError *e)
{
	const char *keys[6];
	const char *vals[6];
	char	   *dbname;
	char	   *key;
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;

	if (in_abort)
	{
		/* no catalog access, no new connection while aborting: the open one or none */
		if (conn != NULL && PQstatus(conn) == CONNECTION_OK &&
			PQtransactionStatus(conn) == PQTRANS_IDLE)
			return conn;
		drop_connection();
		set_error(e, ERRCODE_CONNECTION_FAILURE, "there was no open connection to the primary");
		return NULL;
	}
	dbname = get_database_name(MyDatabaseId);
	if (dbname == NULL)
	{
		set_error(e, ERRCODE_CONNECTION_FAILURE, "the database of this session has no name");
		return NULL;
	}
	key = psprintf("%s\n%s", cl_standby_audit_conninfo, dbname);

	/* a connection in any other state than idle (an interrupted call) is dropped */
	if (conn != NULL &&
		(PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE ||
		 conn_key == NULL || strcmp(conn_key, key) != 0))
		drop_connection();
	if (conn != NULL)
		return conn;
	if (!exit_registered)
	{
		on_proc_exit(standby_exit, (Datum) 0);
		exit_registered = true;
	}
	if (conn_key)
		pfree(conn_key);
	conn_key = MemoryContextStrdup(TopMemoryContext, key);

	/* the first dbname is expanded as a conninfo string; the second wins */
	keys[0] = "dbname";
	vals[0] = cl_standby_audit_conninfo;
	keys[1] = "dbname";
	vals[1] = dbname;
	keys[2] = "fallback_application_name";
	vals[2] = "consent_ledger standby audit";
	keys[3] = "client_encoding";
	vals[3] = GetDatabaseEncodingName();
	keys[4] = "options";
	vals[4] = "-c synchronous_commit=on -c default_transaction_read_only=off";
	keys[5] = NULL;
	vals[5] = NULL;
	conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL)
	{
		set_error(e, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, "out of memory");
		return NULL;
	}
	if (PQstatus(conn) == CONNECTION_BAD)
	{
		set_error(e, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, "%s", PQerrorMessage(conn));
		drop_connection();
		return NULL;
	}
	for (;;)
	{
		if (status == PGRES_POLLING_OK)
			break;
		if (status == PGRES_POLLING_FAILED)
		{
			set_error(e, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, "%s", PQerrorMessage(conn));
			drop_connection();
			return NULL;
		}
		if (!wait_socket(status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE,
						 deadline, in_abort, e))
		{
			e->sqlstate = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
			drop_connection();
			return NULL;
		}
		status = PQconnectPoll(conn);
	}
	return conn;
}

/*
 * Waits for events on the primary's socket, then reads what arrived.  False
 * with e set (and the connection dropped) when the wait or the read failed.
 */
static bool
wait_and_read(int events, TimestampTz deadline, bool in_abort, FwdError *e)
{
	if (!wait_socket(events, deadline, in_abort, e))
	{
		drop_connection();
		return false;
	}
	if (!PQconsumeInput(conn))
	{
		set_error(e, ERRCODE_CONNECTION_FAILURE, "%s", PQerrorMessage(conn));
		drop_connection();
		return false;
	}
	return true;
}

/*
 * Runs sql (several statements: one implicit transaction) on the primary
 * and reads every result.  False with e set if sending, waiting or any
 * statement failed; the connection is then dropped unless it is idle.
 */
static bool
run_on_primary(const char *sql, TimestampTz deadline, bool in_abort, FwdError *e)
{
	bool		ok = true;
	int			r;

	if (!PQsendQuery(conn, sql))
	{
		set_error(e, ERRCODE_CONNECTION_FAILURE, "%s", PQerrorMessage(conn));
		drop_connection();
		return false;
	}
	while ((r = PQflush(conn)) == 1)
	{
		if (!wait_and_read(WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE, deadline, in_abort, e))
			return false;
	}
	if (r < 0)
	{
		set_error(e, ERRCODE_CONNECTION_FAILURE, "%s", PQerrorMessage(conn));
		drop_connection();
		return false;
	}
	for (;;)
	{
		PGresult   *res;

		while (PQisBusy(conn))
		{
			if (!wait_and_read(WL_SOCKET_READABLE, deadline, in_abort, e))
				return false;
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		if (ok && PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

			ok = false;
			set_error(e, state ? ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE : ERRCODE_CONNECTION_FAILURE,
					  "%s", msg ? msg : PQerrorMessage(conn));
			if (state)
				strlcpy(e->remote_state, state, sizeof(e->remote_state));
		}
		PQclear(res);
	}
	if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE)
	{
		/* the connection went away (a FATAL of a stopping primary has a SQLSTATE too) */
		if (!ok && PQstatus(conn) != CONNECTION_OK)
			e->sqlstate = ERRCODE_CONNECTION_FAILURE;
		drop_connection();
	}
	return ok;
}

/* Records lost while aborting, announced with the next forward. */
static uint64 lost_records = 0;

/* Appends one SQL literal (or NULL) to buf, escaped for conn. */
static bool
append_literal(StringInfo buf, const char *v, const char *cast)
{
	char	   *lit;

	if (v == NULL)
	{
		appendStringInfo(buf, "NULL::%s", cast);
		return true;
	}
	lit = PQescapeLiteral(conn, v, strlen(v));
	if (lit == NULL)
		return false;
	appendStringInfo(buf, "%s::%s", lit, cast);
	PQfreemem(lit);
	return true;
}

static const char *const param_types[CL_FWD_NPARAMS] = {
	"pg_catalog.timestamptz",	/* at */
	"pg_catalog.text",			/* session_id */
	"pg_catalog.text",			/* session_user_name */
	"pg_catalog.text",			/* role_name */
	"pg_catalog.text",			/* client_addr */
	"pg_catalog.text",			/* application_name */
	"pg_catalog.text",			/* purpose */
	"pg_catalog.text",			/* relation */
	"pg_catalog.oid",			/* relid */
	"pg_catalog.text",			/* operation */
	"pg_catalog.text",			/* outcome */
	"pg_catalog.int8",			/* rows_returned */
	"pg_catalog.int8",			/* rows_withheld */
	"pg_catalog.int8",			/* query_id */
	"pg_catalog.bool",			/* rls_bypassed */
};

/*
 * One attempt: the records as statements for conn, run on the primary.
 * False with e set on failure.
 */
static bool
forward_once(const char *const (*vals)[CL_FWD_NPARAMS], int nrecs, TimestampTz deadline,
			 bool in_abort, FwdError *e)
{
	StringInfoData sql;
	char	   *name;
	bool		ok;

	if (get_connection(deadline, in_abort, e) == NULL)
		return false;
	initStringInfo(&sql);
	name = PQescapeLiteral(conn, cl_standby_identity(), strlen(cl_standby_identity()));
	ok = (name != NULL);
	if (ok && lost_records > 0)
		appendStringInfo(&sql,
						 "SELECT consent_ledger.record_standby_read(%s, pg_catalog.now(), '%lx.%x', NULL, NULL, NULL, NULL, NULL, '?', NULL, 'LOST', 'lost', " UINT64_FORMAT ", NULL, NULL, NULL);\n",
						 name, (long) MyStartTime, MyProcPid, lost_records);
	for (int i = 0; ok && i < nrecs; i++)
	{
		appendStringInfo(&sql, "SELECT consent_ledger.record_standby_read(%s", name);
		for (int p = 0; ok && p < CL_FWD_NPARAMS; p++)
		{
			appendStringInfoString(&sql, ", ");
			ok = append_literal(&sql, vals[i][p], param_types[p]);
		}
		appendStringInfoString(&sql, ");\n");
	}
	if (name)
		PQfreemem(name);
	if (!ok)
		set_error(e, ERRCODE_CONNECTION_FAILURE, "%s", PQerrorMessage(conn));
	else
		ok = run_on_primary(sql.data, deadline, in_abort, e);
	pfree(sql.data);
	return ok;
}

/*
 * Forwards nrecs records (vals[i][0..CL_FWD_NPARAMS), in the order of
 * record_standby_read()'s arguments after the standby's name) to the
 * primary and waits until it committed them.
 *
 * Not in_abort: raises on failure (the read is refused): 25006 when no
 * conninfo is set, 08001 when no connection could be made within
 * consent_ledger.seal_timeout, 08006 when the connection failed or the
 * primary did not answer in time, 55000 when the primary refused the
 * records (its SQLSTATE and message in the detail).  A kept connection that
 * fails (the primary restarted since) is replaced once, within the same
 * deadline; a record may then reach the primary twice, never not at all
 * when the read goes on.  in_abort: never raises; waits at most
 * ABORT_WAIT_MS, uses only an open connection, and counts what it could
 * not forward (a WARNING says so); returns whether it forwarded.
 */
bool
cl_standby_forward(const char *const (*vals)[CL_FWD_NPARAMS], int nrecs, bool in_abort)
{
	TimestampTz deadline;
	FwdError	e;
	bool		ok = false;

	memset(&e, 0, sizeof(e));
	if (!cl_standby_audit_configured())
	{
		if (in_abort)
		{
			lost_records += nrecs;
			return false;
		}
		cl_standby_refuse_unconfigured();
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   in_abort ? Min(ABORT_WAIT_MS, cl_seal_timeout_ms) : cl_seal_timeout_ms);
	for (int attempt = 0; attempt < 2 && !ok; attempt++)
	{
		bool		reused = (conn != NULL);

		memset(&e, 0, sizeof(e));
		ok = forward_once(vals, nrecs, deadline, in_abort, &e);
		if (ok || !reused || in_abort || e.sqlstate == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE ||
			GetCurrentTimestamp() >= deadline)
			break;
	}
	if (ok)
	{
		lost_records = 0;
		return true;
	}
	if (in_abort)
	{
		lost_records += nrecs;
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("%d audit records of a failed read on this standby could not be forwarded to the primary: %s",
						nrecs, e.why),
				 errdetail("They are counted in a \"gap\" record that this session forwards with its next records.")));
		return false;
	}
	if (e.sqlstate == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the primary refused the audit record of this read"),
				 errdetail("The primary answered (SQLSTATE %s): %s. The read is not answered without its audit record.",
						   e.remote_state, e.why),
				 errhint("The role of consent_ledger.standby_audit_conninfo must be a member of consent_ledger_standby, and the primary must have consent_ledger 1.3.")));
	if (e.sqlstate == ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION)
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to the primary to forward the audit record of this read"),
				 errdetail("Forwarding failed: %s. A standby answers a protected read only once the primary has written its audit record; it waits at most consent_ledger.seal_timeout (%d ms).",
						   e.why, cl_seal_timeout_ms),
				 errhint("Check that the primary is up and reachable with consent_ledger.standby_audit_conninfo, or read on the primary.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("could not forward the audit record of this read to the primary"),
			 errdetail("Forwarding failed: %s. A standby answers a protected read only once the primary has written its audit record; it waits at most consent_ledger.seal_timeout (%d ms).",
					   e.why, cl_seal_timeout_ms),
			 errhint("Check that the primary is up and reachable with consent_ledger.standby_audit_conninfo, or read on the primary.")));
	return false;				/* keep the compiler quiet */
}

/* A protected read on a standby with no conninfo: refused, as before 1.3. */
void
cl_standby_refuse_unconfigured(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("cannot read consent-protected data on a standby"),
			 errdetail("Every read of protected data must be recorded in the audit ledger; a standby forwards its records to the primary only when consent_ledger.standby_audit_conninfo is set."),
			 errhint("Set consent_ledger.standby_audit_conninfo on the standby (README \"Standbys\"), or read protected data on the primary.")));
}
