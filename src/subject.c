/*-------------------------------------------------------------------------
 * subject.c
 *	  Data subjects' own keys (README "Subject-signed consent").
 *
 * A subject may register an Ed25519 public key; from then on grants and
 * withdrawals can carry the subject's signature over a consent statement
 * (statement.c), which record.c checks here before it records the event.
 * Keys are kept in the ledger consent_ledger.subject_keys, made on first
 * use like the consent ledger (not an extension member, so pg_dump dumps
 * its rows and a restored database verifies).  Key number 1 is registered
 * with a key statement signed by that very key (proof of possession);
 * every later key with one signed by the key it replaces, so once a
 * subject holds a key nobody else can replace it, the operator included.
 * Rows enter the ledger only through register_subject_key() (ledger.c
 * refuses any other insert).
 *
 * Key registrations take the consent recorder lock (CL_LOCK_RECORDER, see
 * consent.c) until commit, and read the latest committed state after
 * taking it, so two rotations of one key cannot both succeed and a signed
 * event is checked against the key in force when it is recorded.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consent_ledger.h"
#include "note.h"
#include "statement.h"

PG_FUNCTION_INFO_V1(cl_consent_origin);
PG_FUNCTION_INFO_V1(cl_register_subject_key);

/* true only while register_subject_key() inserts its row (ledger.c) */
bool		cl_registering_subject_key = false;

static const char *const create_subject_keys_sql[] = {
	"CREATE TABLE consent_ledger.subject_keys ("
	" subject pg_catalog.text NOT NULL,"
	" key_no pg_catalog.int4 NOT NULL,"
	" public_key pg_catalog.text NOT NULL,"
	" statement pg_catalog.text NOT NULL,"
	" signature pg_catalog.text NOT NULL,"
	" registered_at pg_catalog.timestamptz NOT NULL,"
	" registered_by pg_catalog.text NOT NULL,"
	" PRIMARY KEY (subject, key_no))",
	"COMMENT ON TABLE consent_ledger.subject_keys IS "
	"'data subjects'' Ed25519 public keys: the first signed by itself, each later one by the key it replaces'",
	"REVOKE ALL ON consent_ledger.subject_keys FROM PUBLIC",
	"GRANT SELECT ON consent_ledger.subject_keys TO consent_ledger_auditor, consent_ledger_admin",
	NULL
};

/* OID of the subject key ledger, InvalidOid when there is none yet. */
Oid
cl_subject_keys_relid(void)
{
	Oid			nsp = cl_schema_oid(true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return cl_check_internal_table(get_relname_relid("subject_keys", nsp), "subject_keys");
}

static Oid
ensure_subject_keys(void)
{
	Oid			relid = cl_subject_keys_relid();

	if (OidIsValid(relid))
		return relid;
	/* creators are serialized by the recorder lock, which the caller holds */
	for (int i = 0; create_subject_keys_sql[i] != NULL; i++)
		cl_run_as_owner(create_subject_keys_sql[i], cl_extension_owner());
	CommandCounterIncrement();
	relid = get_relname_relid("subject_keys", cl_schema_oid(false));
	if (!OidIsValid(relid))
		elog(ERROR, "could not create consent_ledger.subject_keys");
	cl_make_ledger(relid);
	return relid;
}

/* The origin statements name: the consent ledger's (made on first use). */
char *
cl_statement_origin(void)
{
	Oid			relid = cl_consent_events_relid(true);
	ClLedgerInfo *info = cl_ledger_lookup(relid);

	if (info == NULL || info->origin == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger.consent_events is not a ledger table"),
				 errhint("A superuser should inspect consent_ledger.ledgers.")));
	return pstrdup(info->origin);
}

/* consent_ledger.consent_origin() RETURNS text */
Datum
cl_consent_origin(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(cl_statement_origin()));
}

static AttrNumber
attnum_of(Relation rel, const char *name)
{
	AttrNumber	a = get_attnum(RelationGetRelid(rel), name);

	if (a <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation %s.%s has no column \"%s\"", CL_SCHEMA,
						RelationGetRelationName(rel), name),
				 errhint("A superuser should inspect %s.%s.", CL_SCHEMA, RelationGetRelationName(rel))));
	return a;
}

/*
 * The subject's key in force (the highest key number) as of the latest
 * committed state: false when it has none.  Caller holds the recorder
 * lock, so no registration is in progress.
 */
bool
cl_subject_current_key(const char *subject, uint8 *key, int32 *key_no,
					   int64 *stmt_time)
{
	Oid			relid = cl_subject_keys_relid();
	Relation	rel;
	Relation	irel;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	bool		found = false;

	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, AccessShareLock);
	irel = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyEntryInitialize(&skey, 0, attnum_of(rel, "subject"), BTEqualStrategyNumber, InvalidOid,
						   irel->rd_indcollation[0], F_TEXTEQ, CStringGetTextDatum(subject));
	scan = systable_beginscan_ordered(rel, irel, snap, 1, &skey);
	tup = systable_getnext_ordered(scan, BackwardScanDirection);
	if (tup != NULL)
	{
		bool		isnull;
		char	   *b64 = TextDatumGetCString(heap_getattr(tup, attnum_of(rel, "public_key"),
														   RelationGetDescr(rel), &isnull));
		char	   *stmt = TextDatumGetCString(heap_getattr(tup, attnum_of(rel, "statement"),
															RelationGetDescr(rel), &isnull));
		cl_statement st;
		const char *err;

		*key_no = DatumGetInt32(heap_getattr(tup, attnum_of(rel, "key_no"),
											 RelationGetDescr(rel), &isnull));
		if (!cl_statement_b64(b64, strlen(b64), key, CL_SUBJECT_KEY_LEN) ||
			!cl_statement_parse(stmt, strlen(stmt), &st, &err))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("key %d of a subject in consent_ledger.subject_keys is malformed", *key_no),
					 errhint("Run consent_ledger.verify('consent_ledger.subject_keys').")));
		*stmt_time = st.time;
		found = true;
	}
	systable_endscan_ordered(scan);
	UnregisterSnapshot(snap);
	index_close(irel, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Checks what every signed statement must satisfy whatever it says: a
 * well-formed statement of the kind expected, naming this database's
 * consent ledger, not from the future.  Returns the parsed statement.
 */
void
cl_check_statement(const char *text, size_t len, int kind, cl_statement *st)
{
	const char *err;
	char	   *origin;
	int64		now_s = (int64) (GetCurrentTimestamp() / USECS_PER_SEC) +
		(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

	if (!cl_statement_parse(text, len, st, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("malformed statement"),
				 errdetail("%s.", err),
				 errhint("A statement is signed exactly as README \"Subject-signed consent\" lays it out, every line ending in a line feed.")));
	if (st->kind != kind)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("this is a %s statement, not a %s statement",
						st->kind == CL_STMT_KEY ? "key" : "consent",
						kind == CL_STMT_KEY ? "key" : "consent"),
				 errhint("%s", kind == CL_STMT_KEY ?
						 "Register keys with a \"" CL_KEY_STATEMENT_V1 "\" statement." :
						 "Record consent with a \"" CL_CONSENT_STATEMENT_V1 "\" statement.")));
	origin = cl_statement_origin();
	if (strcmp(st->origin, origin) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the statement is for origin \"%s\", not this database's consent ledger", st->origin),
				 errdetail("A statement signed for another database, or for a consent ledger since migrated, is not recorded here."),
				 errhint("Sign a new statement for origin \"%s\" (consent_ledger.consent_origin()).", origin)));
	if (st->time > now_s + CL_STMT_SKEW_SECONDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the statement's time lies more than %d seconds in the future", CL_STMT_SKEW_SECONDS),
				 errdetail("Statement time %lld, server time %lld (Unix seconds).",
						   (long long) st->time, (long long) now_s),
				 errhint("Check the signing device's clock.")));
}

/* A base64 Ed25519 signature, or ERROR. */
void
cl_decode_signature(const char *b64, uint8 *sig)
{
	if (!cl_statement_b64(b64, strlen(b64), sig, CL_SUBJECT_SIG_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed signature"),
				 errdetail("A signature is the standard base64 (with padding) of a 64-byte Ed25519 signature."),
				 errhint("Encode the raw signature, e.g. openssl pkeyutl -sign -rawin ... | base64 -w0.")));
}

/*
 * consent_ledger.register_subject_key(subject text, public_key text,
 * statement text, signature text) RETURNS integer: the key's number.
 */
Datum
cl_register_subject_key(PG_FUNCTION_ARGS)
{
	char	   *subject;
	char	   *pk_b64;
	char	   *stmt;
	char	   *sig_b64;
	uint8_t		pk[CL_SUBJECT_KEY_LEN];
	uint8_t		sig[CL_SUBJECT_SIG_LEN];
	uint8_t		cur[CL_SUBJECT_KEY_LEN];
	int32		cur_no = 0;
	int64		cur_time = 0;
	bool		has_key;
	cl_statement st;
	Oid			owner;
	bool		save_flag = cl_registering_subject_key;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("subject, public_key, statement and signature must not be NULL")));
	subject = TextDatumGetCString(PG_GETARG_DATUM(0));
	pk_b64 = TextDatumGetCString(PG_GETARG_DATUM(1));
	stmt = TextDatumGetCString(PG_GETARG_DATUM(2));
	sig_b64 = TextDatumGetCString(PG_GETARG_DATUM(3));

	if (subject[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("subject must not be NULL or empty")));
	if (!cl_statement_b64(pk_b64, strlen(pk_b64), pk, CL_SUBJECT_KEY_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed public key"),
				 errdetail("A subject's key is the standard base64 (with padding) of a 32-byte Ed25519 public key."),
				 errhint("openssl pkey -in key.pem -pubout -outform DER | tail -c 32 | base64")));
	cl_decode_signature(sig_b64, sig);
	cl_check_statement(stmt, strlen(stmt), CL_STMT_KEY, &st);
	if (strcmp(st.subject, subject) != 0 || memcmp(st.key, pk, CL_SUBJECT_KEY_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the statement names another subject or key than the arguments"),
				 errhint("Pass the subject and public key the signed statement names.")));

	/* one registration or recording at a time, until commit */
	cl_lock_extension(CL_LOCK_RECORDER, ExclusiveLock);
	has_key = cl_subject_current_key(subject, cur, &cur_no, &cur_time);
	if (has_key)
	{
		if (memcmp(cur, pk, CL_SUBJECT_KEY_LEN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("this key is already the subject's key %d", cur_no),
					 errdetail("A key statement is recorded once: this one, or another for the same key, was recorded before.")));
		if (st.time <= cur_time)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the statement is not later than the subject's key %d", cur_no),
					 errdetail("Statement time %lld; key %d was registered by a statement of time %lld.",
							   (long long) st.time, cur_no, (long long) cur_time),
					 errhint("Sign a new statement with the current time.")));
		if (!cl_statement_signature_ok(stmt, strlen(stmt), sig, cur))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("the signature does not verify under the subject's key %d", cur_no),
					 errdetail("A new key of a subject who has one is registered by a statement signed with the key it replaces."),
					 errhint("Sign the key statement with the subject's current private key.")));
	}
	else if (!cl_statement_signature_ok(stmt, strlen(stmt), sig, pk))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the signature does not verify under the key being registered"),
				 errdetail("A subject's first key is registered by a statement signed with that key."),
				 errhint("Sign the key statement with the private half of the key registered.")));

	owner = cl_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	(void) ensure_subject_keys();
	cl_registering_subject_key = true;
	PG_TRY();
	{
		cl_run_as_owner(psprintf("INSERT INTO consent_ledger.subject_keys "
								 "(subject, key_no, public_key, statement, signature, registered_at, registered_by) "
								 "VALUES (%s, %d, %s, %s, %s, pg_catalog.clock_timestamp(), %s)",
								 quote_literal_cstr(subject), cur_no + 1, quote_literal_cstr(pk_b64),
								 quote_literal_cstr(stmt), quote_literal_cstr(sig_b64),
								 quote_literal_cstr(GetUserNameFromId(GetSessionUserId(), false))),
						owner);
	}
	PG_FINALLY();
	{
		cl_registering_subject_key = save_flag;
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_INT32(cur_no + 1);
}
