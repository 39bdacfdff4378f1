/*-------------------------------------------------------------------------
 * witness.c
 *	  Witness cosigning (README "Witnesses", SPEC section 10, issue #14).
 *
 * Witness side.  Any server with the extension can witness other logs:
 * witness_add_log() pins a log's origin to its verifier key, and
 * witness_cosign() checks a checkpoint note of that log -- its signature,
 * and that it is consistent with the last checkpoint this witness
 * cosigned for the origin -- and returns a C2SP tlog-cosignature line
 * (cosignature/v1, timestamped Ed25519, key id of type 0x04) under this
 * server's signing key and the name consent_ledger.witness_name.  The
 * witness's state is a ledger of its own, consent_ledger.witness_log
 * (created on first use, like the consent ledger): every checkpoint it
 * cosigned, and every one it refused as a rollback or a fork together
 * with the conflicting checkpoint it had cosigned -- the evidence.
 *
 * Client backends never hold the secret key (consent_ledger.c), so the
 * signature is made by this database's sealer: the backend posts the
 * cosignature/v1 message in a one-request channel in shared memory and
 * waits, bounded by consent_ledger.seal_timeout.  The sealer signs only a
 * message that is "cosignature/v1", a time line within five minutes of
 * its own clock and a well-formed checkpoint body: no SQL caller can have
 * it sign other bytes, and such a message can never be mistaken for a
 * checkpoint note or a key rotation statement of this server (their second
 * line is a tree size, or "old <key>").  A refusal raises an error, which
 * rolls back the caller's transaction: the evidence of a refusal is
 * therefore written by the sealer too, in a transaction of its own.
 *
 * Log side.  add_cosignature() stores the cosignature lines of a note
 * with the checkpoint of the ledger whose body it is; checkpoint(),
 * export() and receipts carry them (cl_cosigned_note()).  Quorum checks
 * (verify_checkpoint(..., witnesses, quorum)) use cl_quorum_count() of
 * note.c, the rule the offline verifier applies too.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"

#include <time.h>
#include <sodium.h>

#include "access/table.h"
#include "access/xlog.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consent_ledger.h"
#include "proof.h"
#include "sha256.h"

PG_FUNCTION_INFO_V1(cl_witness_add_log);
PG_FUNCTION_INFO_V1(cl_witness_cosign);
PG_FUNCTION_INFO_V1(cl_witness_last_size);
PG_FUNCTION_INFO_V1(cl_witness_key);
PG_FUNCTION_INFO_V1(cl_add_cosignature);

/* how far the message's time may be from the sealer's clock */
#define WITNESS_CLOCK_SLACK 300

/* the request channel: a message to sign, or evidence to record */
#define WITNESS_BUF		(3 * CL_MAX_NOTE + 16384)

typedef enum
{
	W_IDLE,						/* free */
	W_CLAIMED,					/* a backend is writing its request */
	W_REQUESTED,				/* waiting for the sealer */
	W_WORKING,					/* the sealer took it */
	W_DONE,
	W_FAILED
} WitnessState;

typedef enum
{
	W_SIGN,
	W_RECORD					/* a witness_log row, committed by the sealer */
} WitnessKind;

typedef struct ClWitnessShared
{
	slock_t		mutex;
	int			state;
	int			kind;
	Oid			dboid;
	uint64		ticket;
	Size		len;
	uint8		sig[CL_SIG_LEN];
	char		err[256];
	ConditionVariable cv;
	char		data[WITNESS_BUF];
} ClWitnessShared;

static ClWitnessShared *ws = NULL;

char	   *cl_witness_name = NULL;

Size
cl_witness_shmem_size(void)
{
	return MAXALIGN(sizeof(ClWitnessShared));
}

/* Called from the shared memory startup hook, AddinShmemInitLock held. */
void
cl_witness_shmem_init(void)
{
	bool		found;

	ws = ShmemInitStruct("consent_ledger witness", cl_witness_shmem_size(), &found);
	if (!found)
	{
		SpinLockInit(&ws->mutex);
		ws->state = W_IDLE;
		ws->ticket = 0;
		ConditionVariableInit(&ws->cv);
	}
}

static bool
check_witness_name(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!cl_key_name_ok(*newval, strlen(*newval)))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errdetail("A witness name is a signed-note key name: 1 to 63 bytes of UTF-8 without spaces, control characters or '+'.");
		return false;
	}
	return true;
}

/*
 * The one database of the cluster that witnesses (attack review R2, B2):
 * the witness signs with the server's key, one for the whole cluster,
 * while its state -- the size and root it last cosigned for each origin --
 * is kept in a database.  Two databases witnessing would each hold their
 * own state under the same key and could cosign two forks of one log.
 */
static char *cl_witness_database = NULL;

void
cl_witness_define_gucs(void)
{
	DefineCustomStringVariable("consent_ledger.witness_database",
							   "The one database of this server that may act as a witness (empty: none).",
							   NULL,
							   &cl_witness_database,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("consent_ledger.witness_name",
							   "Key name this server cosigns under as a witness (empty: consent_ledger/witness/<key id>).",
							   NULL,
							   &cl_witness_name,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_witness_name, NULL, NULL);
}

/* Refuses witness state changes outside consent_ledger.witness_database. */
static void
require_witness_database(const char *fn)
{
	const char *db = get_database_name(MyDatabaseId);

	if (cl_witness_database == NULL || cl_witness_database[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s(): this server is not a witness", fn),
				 errdetail("consent_ledger.witness_database names no database."),
				 errhint("Set consent_ledger.witness_database to the one database that witnesses (it takes a restart).")));
	if (db == NULL || strcmp(db, cl_witness_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s(): database \"%s\" is not this server's witness database", fn, db ? db : "?"),
				 errdetail("The witness signs with the server's one key; its state is kept in database \"%s\" only, so that no two databases cosign two forks of one log.",
						   cl_witness_database),
				 errhint("Connect to database \"%s\".", cl_witness_database)));
}

/* The witness name in force: the setting, or one derived from the key id. */
static char *
witness_name(void)
{
	char		hex[2 * CL_KEYID_LEN + 1];

	if (cl_witness_name != NULL && cl_witness_name[0] != '\0')
		return pstrdup(cl_witness_name);
	cl_hex_encode(cl_keys_id(), CL_KEYID_LEN, hex);
	return psprintf("consent_ledger/witness/%s", hex);
}

/*-------------------------------------------------------------------------
 * The request channel, backend side
 *-------------------------------------------------------------------------
 */

/* Sets the latch of this database's sealer, starting one if none runs. */
static void
wake_sealer(void)
{
	ClSealSlot *s;
	Latch	   *latch = NULL;

	cl_seal_wake(MyDatabaseId);
	LWLockAcquire(cl_shared->lock, LW_SHARED);
	s = cl_slot_for(MyDatabaseId, false);
	if (s != NULL && s->pid > 0)
		latch = s->latch;
	LWLockRelease(cl_shared->lock);
	if (latch)
		SetLatch(latch);
}

static void
channel_timeout(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("timed out waiting for the consent_ledger sealer to sign or record for the witness"),
			 errdetail("The sealer of this database did not answer within consent_ledger.seal_timeout (%d ms).",
					   cl_seal_timeout_ms),
			 errhint("Check the server log for sealer errors, and that this server has its signing key.")));
}

/*
 * Posts one request and waits for the sealer's answer.  For W_SIGN,
 * returns true and the signature in sig; false with the sealer's reason
 * in err when it refused.
 */
static bool
witness_request(WitnessKind kind, const char *data, Size len, uint8 sig[CL_SIG_LEN],
				char *err, size_t errlen)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cl_seal_timeout_ms);
	uint64		ticket = 0;
	volatile bool claimed = false;
	bool		ok = false;

	if (ws == NULL || cl_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger must be loaded via shared_preload_libraries")));
	if (len > WITNESS_BUF)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("witness request of %zu bytes is too large", (size_t) len),
				 errhint("The note and the consistency proof together must stay under %d bytes.", WITNESS_BUF)));

	ConditionVariablePrepareToSleep(&ws->cv);
	PG_TRY();
	{
		for (;;)
		{
			SpinLockAcquire(&ws->mutex);
			if (ws->state == W_IDLE)
			{
				ws->state = W_CLAIMED;
				ticket = ++ws->ticket;
				claimed = true;
			}
			SpinLockRelease(&ws->mutex);
			if (claimed)
				break;
			if (GetCurrentTimestamp() >= deadline)
				channel_timeout();
			(void) ConditionVariableTimedSleep(&ws->cv, 100, PG_WAIT_EXTENSION);
		}
		memcpy(ws->data, data, len);
		SpinLockAcquire(&ws->mutex);
		ws->len = len;
		ws->kind = kind;
		ws->dboid = MyDatabaseId;
		ws->err[0] = '\0';
		ws->state = W_REQUESTED;
		SpinLockRelease(&ws->mutex);
		wake_sealer();
		for (;;)
		{
			bool		done = false;

			SpinLockAcquire(&ws->mutex);
			if (ws->ticket == ticket && (ws->state == W_DONE || ws->state == W_FAILED))
			{
				done = true;
				ok = (ws->state == W_DONE);
				memcpy(sig, ws->sig, CL_SIG_LEN);
				strlcpy(err, ws->err, errlen);
				ws->state = W_IDLE;
				claimed = false;
			}
			SpinLockRelease(&ws->mutex);
			if (done)
				break;
			if (GetCurrentTimestamp() >= deadline)
				channel_timeout();
			wake_sealer();
			(void) ConditionVariableTimedSleep(&ws->cv, 100, PG_WAIT_EXTENSION);
		}
	}
	PG_CATCH();
	{
		ConditionVariableCancelSleep();
		if (claimed)
		{
			SpinLockAcquire(&ws->mutex);
			if (ws->ticket == ticket && ws->state != W_IDLE)
				ws->state = W_IDLE;
			SpinLockRelease(&ws->mutex);
			ConditionVariableBroadcast(&ws->cv);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	ConditionVariableCancelSleep();
	ConditionVariableBroadcast(&ws->cv);
	return ok;
}

/*-------------------------------------------------------------------------
 * The request channel, sealer side
 *-------------------------------------------------------------------------
 */

/* True when body[0..len) is exactly a checkpoint body the parser accepts. */
static bool
is_checkpoint_body(const char *body, size_t len)
{
	static const uint8_t zero[CL_KEYID_LEN + CL_SIG_LEN];
	char	   *buf = palloc(len + 256);
	cl_checkpoint cp;
	const char *err;
	size_t		n;
	bool		ok;

	memcpy(buf, body, len);
	n = cl_note_append_signature(buf, len, len + 256, "check", zero, zero + CL_KEYID_LEN);
	ok = n > 0 && cl_checkpoint_parse(buf, n, &cp, &err) && cp.bodylen == len;
	pfree(buf);
	return ok;
}

/* Checks and signs a cosignature/v1 message (sealer). */
static bool
serve_sign(const char *msg, size_t len, uint8 sig[CL_SIG_LEN], char *err, size_t errlen)
{
	const char *hdr = CL_COSIG_HEADER "\ntime ";
	size_t		hl = strlen(hdr);
	const char *p;
	const char *nl;
	int64		t = 0;

	if (len <= hl || memcmp(msg, hdr, hl) != 0)
	{
		snprintf(err, errlen, "not a cosignature/v1 message");
		return false;
	}
	p = msg + hl;
	nl = memchr(p, '\n', len - hl);
	if (nl == NULL || nl == p || nl - p > 18 || (*p == '0' && nl - p > 1))
	{
		snprintf(err, errlen, "invalid time line");
		return false;
	}
	for (; p < nl; p++)
	{
		if (*p < '0' || *p > '9')
		{
			snprintf(err, errlen, "invalid time line");
			return false;
		}
		t = t * 10 + (*p - '0');
	}
	if (t < (int64) time(NULL) - WITNESS_CLOCK_SLACK || t > (int64) time(NULL) + WITNESS_CLOCK_SLACK)
	{
		snprintf(err, errlen, "the cosignature time is not the sealer's time");
		return false;
	}
	if (!is_checkpoint_body(nl + 1, len - (size_t) (nl + 1 - msg)))
	{
		snprintf(err, errlen, "the message does not end with a checkpoint body");
		return false;
	}
	if (!cl_keys_can_sign())
	{
		snprintf(err, errlen, "this server has no signing key");
		return false;
	}
	cl_keys_sign((const uint8_t *) msg, len, sig);
	return true;
}

/* a W_RECORD request: NUL-terminated fields, "" for NULL */
#define RECORD_FIELDS 7
typedef struct RecordArgs
{
	/* kind, origin, reason, note, previous note, proof, cosignature */
	char	   *fields[RECORD_FIELDS];
} RecordArgs;

static Oid	witness_log_relid(bool create);
static void insert_witness_row(const char *kind, const char *origin, const char *note,
							   const char *previous, const char *proof, const char *reason,
							   const char *cosignature);

static void
insert_record(void *arg)
{
	RecordArgs *a = arg;
	char	  **f = a->fields;

	insert_witness_row(f[0], f[1], f[3], f[4][0] ? f[4] : NULL, f[5][0] ? f[5] : NULL,
					   f[2][0] ? f[2] : NULL, f[6][0] ? f[6] : NULL);
}

/*
 * Records a witness_log row in a transaction of the sealer's own: it is
 * committed before witness_cosign() returns, whatever becomes of the
 * caller's transaction (a refusal's error rolls that back; a cosignature
 * handed out must never be forgotten by a rollback).
 */
static bool
serve_record(char *data, size_t len, char *err, size_t errlen)
{
	RecordArgs	a;
	char	   *p = data;
	ErrorData  *edata;

	for (int i = 0; i < RECORD_FIELDS; i++)
	{
		char	   *z = memchr(p, '\0', len - (size_t) (p - data));

		if (z == NULL)
		{
			snprintf(err, errlen, "malformed witness record request");
			return false;
		}
		a.fields[i] = p;
		p = z + 1;
	}
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	edata = cl_run_in_subxact(insert_record, &a);
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (edata != NULL)
	{
		snprintf(err, errlen, "%s", edata->message);
		ereport(WARNING,
				(errmsg("consent_ledger witness: could not record in consent_ledger.witness_log: %s", edata->message)));
		FreeErrorData(edata);
		return false;
	}
	return true;
}

/*
 * Called by the sealer at every turn of its loop: serves a request of its
 * database, if one waits.
 */
void
cl_witness_serve(void)
{
	static char *buf = NULL;
	uint64		ticket;
	int			kind;
	Size		len;
	uint8		sig[CL_SIG_LEN];
	char		err[256] = "";
	bool		ok;

	if (ws == NULL)
		return;
	SpinLockAcquire(&ws->mutex);
	if (ws->state != W_REQUESTED || ws->dboid != MyDatabaseId)
	{
		SpinLockRelease(&ws->mutex);
		return;
	}
	ws->state = W_WORKING;
	ticket = ws->ticket;
	kind = ws->kind;
	len = ws->len;
	SpinLockRelease(&ws->mutex);

	if (buf == NULL)
		buf = MemoryContextAlloc(TopMemoryContext, WITNESS_BUF + 1);
	memcpy(buf, ws->data, len);
	buf[len] = '\0';
	memset(sig, 0, sizeof(sig));
	if (kind == W_SIGN)
		ok = serve_sign(buf, len, sig, err, sizeof(err));
	else
		ok = serve_record(buf, len, err, sizeof(err));

	SpinLockAcquire(&ws->mutex);
	if (ws->ticket == ticket && ws->state == W_WORKING)
	{
		ws->state = ok ? W_DONE : W_FAILED;
		memcpy(ws->sig, sig, CL_SIG_LEN);
		strlcpy(ws->err, err, sizeof(ws->err));
	}
	SpinLockRelease(&ws->mutex);
	ConditionVariableBroadcast(&ws->cv);
}

/*-------------------------------------------------------------------------
 * The witness ledger
 *-------------------------------------------------------------------------
 */
static const char *const create_witness_sql[] = {
	"CREATE TABLE consent_ledger.witness_log ("
	" origin pg_catalog.text NOT NULL,"
	" kind pg_catalog.text NOT NULL CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['cosigned', 'refused'])),"
	" tree_size pg_catalog.int8 NOT NULL,"
	" root pg_catalog.bytea NOT NULL,"
	" note pg_catalog.text NOT NULL,"
	" previous_note pg_catalog.text,"
	" consistency_proof pg_catalog.jsonb,"
	" reason pg_catalog.text,"
	" cosignature pg_catalog.text,"
	" recorded_at pg_catalog.timestamptz NOT NULL)",
	"CREATE INDEX witness_log_origin_idx ON consent_ledger.witness_log (origin, kind, tree_size)",
	"COMMENT ON TABLE consent_ledger.witness_log IS "
	"'the witness ledger: every checkpoint this server cosigned, and every one it refused with the conflicting checkpoint (evidence)'",
	"REVOKE ALL ON consent_ledger.witness_log FROM PUBLIC",
	"GRANT SELECT ON consent_ledger.witness_log TO consent_ledger_auditor, consent_ledger_admin",
	NULL
};

#define Natts_witness_log 10

/* OID of the witness ledger; with create, makes it when missing. */
static Oid
witness_log_relid(bool create)
{
	Oid			nsp = cl_schema_oid(false);
	Oid			relid = cl_check_internal_table(get_relname_relid("witness_log", nsp), "witness_log");
	Oid			owner;

	if (OidIsValid(relid) || !create)
		return relid;
	LockRelationOid(cl_internal_relid("witness_logs"), ShareRowExclusiveLock);
	relid = cl_check_internal_table(get_relname_relid("witness_log", nsp), "witness_log");
	if (OidIsValid(relid))
		return relid;
	owner = cl_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int i = 0; create_witness_sql[i] != NULL; i++)
		cl_run_as_owner(create_witness_sql[i], owner);
	SPI_finish();
	CommandCounterIncrement();
	relid = get_relname_relid("witness_log", nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "could not create consent_ledger.witness_log");
	cl_make_ledger(relid);
	return relid;
}

static void
insert_witness_row(const char *kind, const char *origin, const char *note,
				   const char *previous, const char *proof, const char *reason,
				   const char *cosignature)
{
	Oid			relid = witness_log_relid(false);
	Relation	rel;
	Datum		values[Natts_witness_log + 2];	/* and the two stamp columns */
	bool		nulls[Natts_witness_log + 2];
	cl_checkpoint cp;
	const char *err;
	bytea	   *root;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger.witness_log does not exist"),
				 errhint("Register a log with consent_ledger.witness_add_log() first.")));
	if (!cl_checkpoint_parse(note, strlen(note), &cp, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed checkpoint note: %s", err)));
	root = palloc(VARHDRSZ + CL_HASH_LEN);
	SET_VARSIZE(root, VARHDRSZ + CL_HASH_LEN);
	memcpy(VARDATA(root), cp.root, CL_HASH_LEN);
	memset(nulls, 0, sizeof(nulls));
	values[0] = CStringGetTextDatum(origin);
	values[1] = CStringGetTextDatum(kind);
	values[2] = Int64GetDatum((int64) cp.size);
	values[3] = PointerGetDatum(root);
	values[4] = CStringGetTextDatum(note);
	nulls[5] = previous == NULL;
	values[5] = previous ? CStringGetTextDatum(previous) : (Datum) 0;
	nulls[6] = proof == NULL;
	values[6] = proof ? DirectFunctionCall1(jsonb_in, CStringGetDatum(proof)) : (Datum) 0;
	nulls[7] = reason == NULL;
	values[7] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	nulls[8] = cosignature == NULL;
	values[8] = cosignature ? CStringGetTextDatum(cosignature) : (Datum) 0;
	values[9] = TimestampTzGetDatum(GetCurrentTimestamp());
	rel = table_open(relid, RowExclusiveLock);
	if (RelationGetDescr(rel)->natts != Natts_witness_log + 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("consent_ledger.witness_log has unexpected columns"),
				 errhint("A superuser should inspect consent_ledger.witness_log.")));
	cl_ledger_insert_direct(rel, values, nulls);
	table_close(rel, NoLock);
}

/*-------------------------------------------------------------------------
 * SQL: the witness side
 *-------------------------------------------------------------------------
 */

/* true when s is a valid checkpoint origin */
static bool
origin_ok(const char *s)
{
	char		buf[CL_MAX_NOTE];
	cl_hash		h;

	memset(h, 0, sizeof(h));
	return cl_checkpoint_body(s, 0, h, 0, h, buf, sizeof(buf)) > 0;
}

/*
 * consent_ledger.witness_add_log(origin text, verifier_key text) RETURNS void
 *
 * Pins a log: this server cosigns checkpoints of origin signed by this
 * key only.  The key is the vkey verifier_key() prints on the log's
 * server.  Adding the same pair again does nothing; another key for a
 * registered origin is refused (a log's key is pinned).
 */
Datum
cl_witness_add_log(PG_FUNCTION_ARGS)
{
	char	   *origin = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *vkey = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char		name[CL_MAX_KEY_NAME + 1];
	uint8_t		type;
	uint8_t		pk[CL_PUBKEY_LEN];
	char		pk64[64];
	const char *err = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(origin)};

	require_witness_database("witness_add_log");
	type = 0;
	if (!origin_ok(origin))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a valid checkpoint origin", origin),
				 errdetail("An origin is 1 to 255 bytes of UTF-8 without spaces, control characters or '+'."),
				 errhint("Give the origin line of the log's checkpoints (consent_ledger.checkpoint(...)->>'origin' on the log's server).")));
	if (!cl_vkey_parse(vkey, strlen(vkey), name, &type, pk, &err) || type != CL_SIGTYPE_ED25519)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid log verifier key \"%s\"", vkey),
				 errdetail("%s", type != CL_SIGTYPE_ED25519 && err == NULL ?
						   "A log's key is of signature type 0x01 (Ed25519 note signatures)." : err),
				 errhint("Give what consent_ledger.verifier_key() prints on the log's server.")));

	(void) witness_log_relid(true);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	LockRelationOid(cl_internal_relid("witness_logs"), ShareRowExclusiveLock);
	if (SPI_execute_with_args("SELECT verifier_key FROM consent_ledger.witness_logs "
							  "WHERE origin OPERATOR(pg_catalog.=) $1",
							  1, types, vals, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.witness_logs");
	if (SPI_processed > 0)
	{
		char	   *have = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (strcmp(have, vkey) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("log \"%s\" is already witnessed under another key", origin),
					 errdetail("Registered key: %s.", have),
					 errhint("A log's key is pinned.  If the log rotated its key, check its rotation statement and have a superuser update consent_ledger.witness_logs.")));
		SPI_finish();
		PG_RETURN_VOID();
	}
	cl_base64_encode(pk, CL_PUBKEY_LEN, pk64);
	cl_run_as_owner(psprintf("INSERT INTO consent_ledger.witness_logs "
							 "(origin, key_name, public_key, verifier_key, added_at, added_by) "
							 "VALUES (%s, %s, pg_catalog.decode(%s, 'base64'), %s, pg_catalog.now(), %s)",
							 quote_literal_cstr(origin), quote_literal_cstr(name),
							 quote_literal_cstr(pk64),
							 quote_literal_cstr(vkey),
							 quote_literal_cstr(GetUserNameFromId(GetUserId(), false))),
					cl_extension_owner());
	SPI_finish();
	PG_RETURN_VOID();
}

/* The last checkpoint cosigned for origin (SPI connected): false if none. */
static bool
last_cosigned(const char *origin, uint64 *size, cl_hash root, char **note)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(origin)};
	bool		isnull;
	bytea	   *r;

	if (!OidIsValid(witness_log_relid(false)))
		return false;
	if (SPI_execute_with_args("SELECT tree_size, root, note FROM consent_ledger.witness_log "
							  "WHERE origin OPERATOR(pg_catalog.=) $1 AND kind OPERATOR(pg_catalog.=) 'cosigned' "
							  "ORDER BY tree_size DESC, recorded_at DESC LIMIT 1",
							  1, types, vals, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.witness_log");
	if (SPI_processed == 0)
		return false;
	*size = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	r = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (VARSIZE_ANY_EXHDR(r) != CL_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("consent_ledger.witness_log holds a root that is not 32 bytes"),
				 errhint("Run consent_ledger.verify('consent_ledger.witness_log').")));
	memcpy(root, VARDATA_ANY(r), CL_HASH_LEN);
	*note = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	return true;
}

/*
 * Has the sealer commit a witness_log row (see serve_record()); false
 * with the reason in err when it could not.
 */
static bool
record_by_sealer(const char *kind, const char *origin, const char *reason, const char *note,
				 const char *previous, const char *proof, const char *cosignature,
				 char *err, size_t errlen)
{
	const char *f[RECORD_FIELDS] = {kind, origin, reason, note, previous, proof, cosignature};
	StringInfoData d;
	uint8		sig[CL_SIG_LEN];

	initStringInfo(&d);
	for (int i = 0; i < RECORD_FIELDS; i++)
		appendBinaryStringInfo(&d, f[i] ? f[i] : "", strlen(f[i] ? f[i] : "") + 1);
	return witness_request(W_RECORD, d.data, d.len, sig, err, errlen);
}

/* Records a refusal by way of the sealer (it outlives the error), then raises. */
static void
refuse(const char *origin, const char *note, const char *previous, const char *proof,
	   const char *what, const char *detail)
{
	char		err[256];
	bool		recorded;

	recorded = record_by_sealer("refused", origin, detail, note, previous, proof, NULL,
								err, sizeof(err));
	ereport(ERROR,
			(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
			 errmsg("witness refuses to cosign checkpoint of \"%s\": %s", origin, what),
			 errdetail("%s", detail),
			 recorded ?
			 errhint("The conflicting pair is recorded in consent_ledger.witness_log (kind 'refused'): evidence that the log rewrote its history.") :
			 errhint("Recording the evidence failed too (%s); keep this note and the one the witness cosigned.", err)));
}

/*
 * consent_ledger.witness_cosign(note text, consistency_proof jsonb) RETURNS text
 *
 * C2SP tlog-witness add-checkpoint, in SQL.  Returns one cosignature line
 * (ending in a newline) to append to the note.
 */
Datum
cl_witness_cosign(PG_FUNCTION_ARGS)
{
	char	   *note;
	char	   *prooftext = NULL;
	cl_checkpoint cp;
	const char *err;
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	char	   *keyname;
	bytea	   *pkb;
	bool		isnull;
	uint64		oldsize = 0;
	cl_hash		oldroot;
	char	   *oldnote = NULL;
	bool		have_old;
	char	   *name;
	int64		t;
	char	   *body;
	char		msg[CL_MAX_NOTE + 64];
	size_t		mlen;
	uint8		sig[CL_SIG_LEN];
	uint8		keyid[CL_KEYID_LEN];
	char		line[512];
	char		why[256];
	size_t		len;
	MemoryContext outer = CurrentMemoryContext;
	text	   *result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the checkpoint note must not be NULL"),
				 errhint("Pass the note the log's checkpoint() returns (its \"note\" member).")));
	require_witness_database("witness_cosign");
	note = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(1);

		prooftext = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
	len = strlen(note);
	/* tolerate the one extra newline "psql -At" and shells add */
	if (len >= 2 && note[len - 1] == '\n' && note[len - 2] == '\n')
		note[--len] = '\0';
	if (!cl_checkpoint_parse(note, len, &cp, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed checkpoint note: %s", err),
				 errhint("Pass the note the log's checkpoint() returns (its \"note\" member), byte for byte.")));

	if (cp.size == 0)
	{
		cl_hash		empty;

		cl_sha256("", 0, empty);
		if (memcmp(cp.root, empty, CL_HASH_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("checkpoint of size 0 does not have the empty tree's root"),
					 errhint("The root of an empty tree is SHA-256 of the empty string (RFC 6962 2.1).")));
	}
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("witness_cosign() must run in a READ COMMITTED transaction"),
				 errdetail("It reads the last checkpoint cosigned, which another cosigning may have committed after this transaction's snapshot was taken."),
				 errhint("Call it outside an explicit transaction, or in one at the default isolation level.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("a witness cannot cosign during recovery"),
				 errhint("Call consent_ledger.witness_cosign() on the witness's primary: it records what it cosigned.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* one cosigning at a time: the check and the new state commit together */
	cl_lock_extension(CL_LOCK_WITNESS, ExclusiveLock);
	vals[0] = CStringGetTextDatum(cp.origin);
	if (SPI_execute_with_args("SELECT key_name, public_key FROM consent_ledger.witness_logs "
							  "WHERE origin OPERATOR(pg_catalog.=) $1",
							  1, types, vals, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.witness_logs");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("log \"%s\" is not witnessed by this server", cp.origin),
				 errhint("An administrator of the witness registers it with consent_ledger.witness_add_log(origin, verifier_key).")));
	keyname = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	pkb = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull || VARSIZE_ANY_EXHDR(pkb) != CL_PUBKEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("consent_ledger.witness_logs holds a malformed key for \"%s\"", cp.origin),
				 errhint("Register the log again after a superuser deleted the row.")));
	if (!cl_checkpoint_verify(&cp, note, keyname, (const uint8_t *) VARDATA_ANY(pkb)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("checkpoint of \"%s\" is not signed by the log's registered key", cp.origin),
				 errdetail("No signature line of key \"%s\" verifies, or one of them fails.", keyname),
				 errhint("The note must be exactly what the log signed; a log with a new key must be registered again.")));

	have_old = last_cosigned(cp.origin, &oldsize, oldroot, &oldnote);
	if (have_old && cp.size < oldsize)
		refuse(cp.origin, note, oldnote, prooftext, "rollback",
			   psprintf("Its tree size " UINT64_FORMAT " is smaller than the " UINT64_FORMAT " this witness cosigned.",
						cp.size, oldsize));
	if (have_old && cp.size == oldsize && memcmp(cp.root, oldroot, CL_HASH_LEN) != 0)
		refuse(cp.origin, note, oldnote, prooftext, "fork",
			   psprintf("Its root at tree size " UINT64_FORMAT " differs from the root this witness cosigned at that size.",
						cp.size));
	if (have_old && cp.size > oldsize && oldsize > 0)
	{
		cl_proof proof;

		if (prooftext == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a consistency proof from tree size " UINT64_FORMAT " is needed", oldsize),
					 errdetail("This witness last cosigned \"%s\" at tree size " UINT64_FORMAT ".", cp.origin, oldsize),
					 errhint("Pass consent_ledger.consistency_proof(ledger, " UINT64_FORMAT ", " UINT64_FORMAT ") from the log.",
							 oldsize, cp.size)));
		if (!cl_proof_parse(prooftext, strlen(prooftext), &proof, &err) ||
			proof.type != CL_PROOF_CONSISTENCY)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("malformed consistency proof: %s", proof.type != CL_PROOF_CONSISTENCY ? "not a consistency proof" : err),
					 errhint("Pass what consent_ledger.consistency_proof() returns on the log.")));
		if (proof.old_size != oldsize || proof.new_size != cp.size)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the consistency proof is from tree size " UINT64_FORMAT " to " UINT64_FORMAT ", not from " UINT64_FORMAT " to " UINT64_FORMAT,
							proof.old_size, proof.new_size, oldsize, cp.size),
					 errdetail("This witness last cosigned \"%s\" at tree size " UINT64_FORMAT ".", cp.origin, oldsize),
					 errhint("Ask consent_ledger.witness_last_size() for the size to prove from.")));
		if (!cl_verify_consistency(oldsize, cp.size, oldroot, cp.root, proof.path, proof.pathlen))
			refuse(cp.origin, note, oldnote, prooftext, "fork",
				   psprintf("The consistency proof does not lead from the root this witness cosigned at tree size " UINT64_FORMAT " to the note's root at " UINT64_FORMAT ".",
							oldsize, cp.size));
	}

	/* sign, by way of the sealer */
	name = witness_name();
	t = (int64) time(NULL);
	body = pnstrdup(note, cp.bodylen);
	mlen = cl_cosignature_message(body, cp.bodylen, t, msg, sizeof(msg));
	if (mlen == 0)
		elog(ERROR, "could not build the cosignature message");
	if (!witness_request(W_SIGN, msg, mlen, sig, why, sizeof(why)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the sealer refused to sign the cosignature: %s", why),
				 errhint("Check that this server has its signing key and a correct clock.")));
	if (crypto_sign_verify_detached(sig, (const unsigned char *) msg, mlen, cl_keys_public()) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("the sealer's cosignature does not verify under this server's public key")));
	cl_key_id_typed(name, CL_SIGTYPE_COSIGNATURE, cl_keys_public(), keyid);
	if (cl_cosignature_line(name, keyid, t, sig, line, sizeof(line)) == 0)
		elog(ERROR, "could not build the cosignature line");
	/* persisted before the cosignature is handed out (C2SP tlog-witness) */
	if (!record_by_sealer("cosigned", cp.origin, NULL, note, NULL, prooftext, line, why, sizeof(why)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not record the cosigned checkpoint in consent_ledger.witness_log: %s", why),
				 errhint("Check the server log for sealer errors; nothing was cosigned.")));
	SPI_finish();
	result = (text *) MemoryContextAlloc(outer, VARHDRSZ + strlen(line));
	SET_VARSIZE(result, VARHDRSZ + strlen(line));
	memcpy(VARDATA(result), line, strlen(line));
	PG_RETURN_TEXT_P(result);
}

/* consent_ledger.witness_last_size(origin text) RETURNS bigint (NULL: never cosigned) */
Datum
cl_witness_last_size(PG_FUNCTION_ARGS)
{
	char	   *origin = text_to_cstring(PG_GETARG_TEXT_PP(0));
	uint64		size;
	cl_hash		root;
	char	   *note;
	bool		have;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	have = last_cosigned(origin, &size, root, &note);
	SPI_finish();
	if (!have)
		PG_RETURN_NULL();
	PG_RETURN_INT64((int64) size);
}

/* consent_ledger.witness_key() RETURNS text: "<name>+<key id>+base64(0x04 || key)" */
Datum
cl_witness_key(PG_FUNCTION_ARGS)
{
	char		out[256];
	char	   *name = witness_name();

	if (cl_vkey_format(name, CL_SIGTYPE_COSIGNATURE, cl_keys_public(), out, sizeof(out)) == 0)
		elog(ERROR, "could not format the witness key");
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*-------------------------------------------------------------------------
 * The log side
 *-------------------------------------------------------------------------
 */

/*
 * The note of checkpoint seq of a ledger with its stored cosignature
 * lines appended, in the order they were added (SPI connected).
 * Returns the note itself when it has none.
 */
char *
cl_cosigned_note(int32 ledger_id, int64 seq, const char *note)
{
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		vals[2] = {Int32GetDatum(ledger_id), Int64GetDatum(seq)};
	StringInfoData buf;

	/* an extension not yet updated to 1.3 has no cosignatures */
	if (!OidIsValid(get_relname_relid("cosignatures", cl_schema_oid(false))))
		return (char *) note;
	if (SPI_execute_with_args("SELECT line FROM consent_ledger.cosignatures "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 AND seq OPERATOR(pg_catalog.=) $2 "
							  "ORDER BY added_at, line",
							  2, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.cosignatures");
	if (SPI_processed == 0)
		return (char *) note;
	initStringInfo(&buf);
	appendStringInfoString(&buf, note);
	for (uint64 i = 0; i < SPI_processed; i++)
		appendStringInfoString(&buf, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return buf.data;
}

/*
 * consent_ledger.add_cosignature(relation regclass, note_with_cosignature text)
 *	 RETURNS integer
 *
 * Stores the cosignature lines (timestamped Ed25519, 76-byte signatures)
 * of a note whose body is exactly that of one of the ledger's checkpoints.
 * Lines of any witness are kept: whose count is the verifier's choice
 * (its configured witnesses); a line is stored once.  Returns the number
 * of lines newly stored.  The log's own signature and other lines are
 * not stored.
 */
Datum
cl_add_cosignature(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *note = text_to_cstring(PG_GETARG_TEXT_PP(1));
	size_t		len = strlen(note);
	ClLedgerInfo *info = cl_ledger_resolve(relid);
	cl_checkpoint cp;
	cl_cosignature cs[CL_MAX_SIGLINES];
	int			ncs = 0;
	const char *err;
	Oid			types[3] = {INT4OID, INT8OID, BYTEAOID};
	Datum		vals[3];
	bytea	   *root;
	int64		seq = -1;
	char	   *stored = NULL;
	int			added = 0;
	int			have;
	Oid			owner;

	if (info == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation with OID %u is not a ledger table", relid),
				 errhint("Name the ledger table (one partition for a partitioned ledger) whose checkpoint the witnesses cosigned.")));
	if (len >= 2 && note[len - 1] == '\n' && note[len - 2] == '\n')
		note[--len] = '\0';
	if (!cl_checkpoint_parse(note, len, &cp, &err) ||
		!cl_cosignatures_parse(&cp, note, len, cs, CL_MAX_SIGLINES, &ncs, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed cosigned note: %s", err),
				 errhint("Pass the checkpoint's note followed by the witnesses' cosignature lines.")));
	if (strcmp(cp.origin, info->origin) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the note's origin \"%s\" is not the ledger's \"%s\"", cp.origin, info->origin),
				 errhint("Add cosignatures to the ledger whose checkpoint they cosign.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	root = palloc(VARHDRSZ + CL_HASH_LEN);
	SET_VARSIZE(root, VARHDRSZ + CL_HASH_LEN);
	memcpy(VARDATA(root), cp.root, CL_HASH_LEN);
	vals[0] = Int32GetDatum(info->ledger_id);
	vals[1] = Int64GetDatum((int64) cp.size);
	vals[2] = PointerGetDatum(root);
	if (SPI_execute_with_args("SELECT seq, note FROM consent_ledger.checkpoints "
							  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 AND tree_size OPERATOR(pg_catalog.=) $2 "
							  "AND root OPERATOR(pg_catalog.=) $3 ORDER BY seq",
							  3, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.checkpoints");
	for (uint64 i = 0; i < SPI_processed && seq < 0; i++)
	{
		bool		isnull;
		char	   *n = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		if (strlen(n) > cp.bodylen && memcmp(n, note, cp.bodylen) == 0 && n[cp.bodylen] == '\n')
		{
			seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			stored = n;
		}
	}
	if (seq < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("ledger \"%s\" has no checkpoint with this note's body", get_rel_name(relid)),
				 errdetail("Tree size " UINT64_FORMAT ", time " INT64_FORMAT ".", cp.size, cp.time),
				 errhint("A cosignature is stored with the very checkpoint it cosigns.")));

	/* a checkpoint note holds at most CL_MAX_SIGLINES signature lines */
	{
		cl_checkpoint scp;
		char	   *withcs = cl_cosigned_note(info->ledger_id, seq, stored);

		if (!cl_checkpoint_parse(withcs, strlen(withcs), &scp, &err))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("stored checkpoint of \"%s\" is malformed: %s", get_rel_name(relid), err),
					 errhint("Run consent_ledger.verify() on the ledger.")));
		have = 0;
		for (const char *p = withcs + scp.bodylen + 1; *p; p++)
			if (*p == '\n')
				have++;
	}
	owner = cl_extension_owner();
	for (int i = 0; i < ncs; i++)
	{
		char	   *line = pnstrdup(note + cs[i].line_start, cs[i].line_len);
		char		hex[2 * CL_KEYID_LEN + 1];

		cl_hex_encode(cs[i].keyid, CL_KEYID_LEN, hex);
		vals[0] = Int32GetDatum(info->ledger_id);
		vals[1] = Int64GetDatum(seq);
		vals[2] = CStringGetTextDatum(line);
		{
			Oid			t3[3] = {INT4OID, INT8OID, TEXTOID};

			if (SPI_execute_with_args("SELECT 1 FROM consent_ledger.cosignatures WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
									  "AND seq OPERATOR(pg_catalog.=) $2 AND line OPERATOR(pg_catalog.=) $3",
									  3, t3, vals, NULL, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not read consent_ledger.cosignatures");
		}
		if (SPI_processed > 0)
			continue;
		if (have + 1 > CL_MAX_SIGLINES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("checkpoint of \"%s\" at tree size " UINT64_FORMAT " already has %d signature lines",
							get_rel_name(relid), cp.size, have),
					 errdetail("A note carries at most %d signature lines (the log's and the cosignatures).", CL_MAX_SIGLINES),
					 errhint("Cosign a later checkpoint instead.")));
		cl_run_as_owner(psprintf("INSERT INTO consent_ledger.cosignatures "
								 "(ledger_id, seq, witness, key_id, cosigned_at, line, added_at) "
								 "VALUES (%d, " INT64_FORMAT ", %s, %s, " INT64_FORMAT ", %s, pg_catalog.clock_timestamp())",
								 info->ledger_id, seq, quote_literal_cstr(cs[i].keyname),
								 quote_literal_cstr(hex), (int64) cs[i].time, quote_literal_cstr(line)),
						owner);
		have++;
		added++;
	}
	SPI_finish();
	PG_RETURN_INT32(added);
}

/*
 * Quorum of a receipt's note (verify_checkpoint(..., witnesses, quorum)):
 * the number of distinct given witnesses whose cosignature verifies.
 * Malformed witness keys are errors (they are configuration); a
 * malformed cosignature line gives -1 with *reason set.
 */
int
cl_witness_quorum(const char *note, ArrayType *witnesses, int quorum, char **reason)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char		(*names)[CL_MAX_KEY_NAME + 1];
	uint8_t		(*pks)[CL_PUBKEY_LEN];
	cl_checkpoint cp;
	const char *err;
	char		why[256];
	int			count;
	int			distinct = 0;

	if (ARR_NDIM(witnesses) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("witnesses must be a one-dimensional array of witness keys")));
	deconstruct_array(witnesses, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	names = palloc0(sizeof(*names) * Max(n, 1));
	pks = palloc0(sizeof(*pks) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		char	   *vk;
		uint8_t		type;
		bool		dup = false;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("witness key %d is NULL", i + 1),
					 errhint("Give each witness's key as consent_ledger.witness_key() prints it on the witness.")));
		vk = TextDatumGetCString(elems[i]);
		if (!cl_vkey_parse(vk, strlen(vk), names[i], &type, pks[i], &err) ||
			type != CL_SIGTYPE_COSIGNATURE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid witness key \"%s\"", vk),
					 errdetail("%s", type != CL_SIGTYPE_COSIGNATURE && err == NULL ?
							   "A witness key is of signature type 0x04 (timestamped Ed25519 cosignatures)." : err),
					 errhint("Give each witness's key as consent_ledger.witness_key() prints it on the witness.")));
		for (int j = 0; j < i && !dup; j++)
			dup = memcmp(pks[j], pks[i], CL_PUBKEY_LEN) == 0;
		if (!dup)
			distinct++;
	}
	if (quorum < 1 || quorum > distinct)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quorum %d is out of range for %d distinct witness keys", quorum, distinct),
				 errhint("The quorum must be between 1 and the number of distinct witnesses given.")));
	if (!cl_checkpoint_parse(note, strlen(note), &cp, &err))
	{
		*reason = psprintf("malformed checkpoint note: %s", err);
		return -1;
	}
	count = cl_quorum_count(&cp, note, strlen(note), (const char (*)[CL_MAX_KEY_NAME + 1]) names,
							(const uint8_t (*)[CL_PUBKEY_LEN]) pks, n, (int64_t) time(NULL),
							why, sizeof(why));
	if (count < 0)
		*reason = psprintf("malformed cosignature: %s", why);
	else if (count < quorum)
		*reason = psprintf("only %d of the %d distinct witnesses given cosigned the checkpoint, fewer than the quorum of %d%s%s",
						   count, distinct, quorum, why[0] ? "; " : "", why);
	return count;
}
