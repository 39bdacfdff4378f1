/*-------------------------------------------------------------------------
 * consent_ledger.h
 *	  The map of the extension: what each file provides to the others.
 *
 * Pure code (merkle.h, note.h, json.h) is shared with the offline
 * verifier and the fuzzers and must not include this header.
 *-------------------------------------------------------------------------
 */
#ifndef CONSENT_LEDGER_H
#define CONSENT_LEDGER_H

#include "postgres.h"

#include "access/htup.h"
#include "port/atomics.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "executor/execdesc.h"
#include "nodes/plannodes.h"
#include "storage/condition_variable.h"
#include "storage/lockdefs.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/guc.h"
#include "utils/relcache.h"

#include "fmgr.h"

#include "merkle.h"
#include "note.h"

/*
 * Every SQL-callable function of the extension (functions, trigger
 * functions, the policy checks) refuses to be looked up unless the library
 * was preloaded: PostgreSQL asks a C function for its info record (the
 * pg_finfo_ function this macro defines) when it first sets the function up
 * in a backend -- before the first call, as a trigger, a policy qual or a
 * CREATE FUNCTION validator alike -- and does not remember a lookup that
 * failed.  So without shared_preload_libraries no ledger row is stamped
 * without its pending record, no protected row is checked without its
 * audit, and nothing is half done.  (README "Configuration".)
 */
extern void cl_require_preloaded(const char *funcname);

/*
 * fmgr.h (included above, and guarded against a second inclusion) must
 * have defined its macro before it is replaced here: otherwise a later
 * #include "fmgr.h" would put the unchecked one back.  TAP test 020 checks
 * every C function of the extension through its info record.
 */
#if !defined(FMGR_H) || !defined(PG_FUNCTION_INFO_V1)
#error "consent_ledger.h must include fmgr.h before redefining PG_FUNCTION_INFO_V1"
#endif
#undef PG_FUNCTION_INFO_V1
#define PG_FUNCTION_INFO_V1(funcname) \
extern PGDLLEXPORT Datum funcname(PG_FUNCTION_ARGS); \
extern PGDLLEXPORT const Pg_finfo_record * CppConcat(pg_finfo_,funcname)(void); \
const Pg_finfo_record * \
CppConcat(pg_finfo_,funcname) (void) \
{ \
	static const Pg_finfo_record my_finfo = { 1 }; \
	cl_require_preloaded(CppAsString(funcname)); \
	return &my_finfo; \
} \
extern int no_such_variable

#define CL_SCHEMA			"consent_ledger"
#define CL_EXTENSION		"consent_ledger"
#define CL_TXN_COLUMN		"ledger_txn"
#define CL_ORD_COLUMN		"ledger_ord"
#define CL_COLUMN_PREFIX	"ledger_"
#define CL_STAMP_TRIGGER	"~consent_ledger_stamp"
#define CL_GUARD_TRIGGER	"~consent_ledger_guard"
#define CL_GUARD_ROW_TRIGGER "~consent_ledger_guard_row"
/* the table access method of ledgers made from 1.3 on (tableam.c) */
#define CL_TABLE_AM			"consent_ledger"
/* canonical row encoding versions (README "Canonical row encoding") */
#define CL_ENCODING_V1		1
#define CL_ENCODING_V2		2
#define CL_ENCODING_V3		3	/* version 2 + personal columns (README "Erasure") */
#define CL_SALT_COLUMN		"ledger_salt"
#define CL_SALT_LEN			32
#define CL_ADMIN_ROLE		"consent_ledger_admin"
#define CL_CUSTODIAN_ROLE	"consent_ledger_custodian"
/* leaves of one transaction written as one pending/log record at most */
#define CL_MAX_LEAVES_PER_RECORD (1024 * 1024)
/* leaves of one log row at most (its bytea stays well under 1 GB) */
#define CL_MAX_LEAVES_PER_LOG (4 * 1024 * 1024)
/* bytes of audit records queued per database for its writer */
#define CL_AUDIT_RING		(128 * 1024)

/* consent_ledger.c: GUCs and shared state */
extern int	cl_seal_interval_ms;
extern int	cl_seal_timeout_ms;
extern int	cl_seal_round_leaves;
extern int	cl_adopt_progress_rows;
extern int	cl_max_databases;
extern int	cl_verify_memory_kb;
extern char *cl_signing_key_file;

/*
 * One database served by a sealer and an audit writer.  A slot is taken
 * for a database that has (or is being checked for) the extension and
 * given back when it has not, or when the database is gone.  All fields
 * are protected by ClShared.lock.
 */
typedef struct ClSealSlot
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* running sealer, -1 starting, 0 none */
	pid_t		writer_pid;		/* running audit writer, -1 starting, 0 none */
	bool		wanted;			/* start a sealer (asked for, or to check) */
	bool		present;		/* a sealer found the extension here */
	TimestampTz blocked_until;	/* DROP/RENAME/... DATABASE in progress */
	TimestampTz sealer_started; /* when the launcher last started each */
	TimestampTz writer_started; /* ... (one start a second at most) */
	uint64		requested;		/* seal() requests */
	uint64		completed;		/* rounds finished after a request */
	uint64		last_sealed;	/* leaves sealed by the last round */
	Latch	   *latch;			/* the sealer's */
	Latch	   *writer_latch;	/* the audit writer's */
	/* audit queue of this database (ring: cl_audit_ring(slot number)) */
	uint64		audit_head;		/* bytes ever enqueued */
	uint64		audit_tail;		/* bytes ever dequeued */
	uint64		audit_enqueued; /* records ever enqueued */
	uint64		audit_written;	/* records ever committed to audit_log */
	uint64		audit_lost;		/* records that could not be queued */
	uint64		audit_lost_recorded;	/* of those, in a "gap" record */
} ClSealSlot;

typedef struct ClShared
{
	LWLock	   *lock;
	pg_atomic_uint64 purpose_generation;	/* bumped when purposes/grants change */
	pg_atomic_uint64 consent_commits;	/* bumped by every commit that recorded consent */
	pg_atomic_uint64 audit_lost_unslotted;	/* records lost for want of a slot */
	Latch	   *launcher_latch;
	ConditionVariable sealed_cv;
	ConditionVariable audit_cv;	/* queue space freed, or records written */
	int			nslots;			/* consent_ledger.max_databases */
	ClSealSlot	slots[FLEXIBLE_ARRAY_MEMBER];
	/* then nslots audit rings of CL_AUDIT_RING bytes each */
} ClShared;

extern ClShared *cl_shared;
extern char *cl_audit_ring(int slotno);

/* keys.c: the signing key, loaded at postmaster start */
extern void cl_keys_define_gucs(void);
extern void cl_keys_load(void);
extern void cl_keys_forget(void);
extern bool cl_keys_can_sign(void);
extern void cl_keys_sign(const uint8_t *msg, size_t len, uint8_t sig[CL_SIG_LEN]);
extern const uint8_t *cl_keys_public(void);
extern const uint8_t *cl_keys_id(void);
extern const char *cl_keys_rotation_note(void);

/* encode.c: canonical row encoding (README "Canonical row encoding") */
typedef struct ClRowEncoder ClRowEncoder;
extern ClRowEncoder *cl_encoder_create(TupleDesc desc, int version, MemoryContext mcxt);
extern int	cl_encoder_version(ClRowEncoder *enc);
extern bool cl_encoder_matches(ClRowEncoder *enc, TupleDesc desc);
extern void cl_encode_row(ClRowEncoder *enc, HeapTuple tuple, int64 txn,
						  int32 ord, StringInfo out);
extern void cl_encoder_free(ClRowEncoder *enc);
extern Datum *cl_encoder_values(ClRowEncoder *enc);
extern bool *cl_encoder_nulls(ClRowEncoder *enc);
extern void cl_encode_values(ClRowEncoder *enc, Datum *values, bool *nulls,
							 int64 txn, int32 ord, StringInfo out);
extern void cl_encoder_set_personal(ClRowEncoder *enc, List *names);
extern void cl_encoder_fill_salt(ClRowEncoder *enc, Datum *values, bool *nulls);
extern bool cl_encoder_erasable(ClRowEncoder *enc, Datum *values, bool *nulls);
extern bool cl_encoder_redact(ClRowEncoder *enc, Datum *values, bool *nulls);
extern AttrNumber cl_encoder_attnum(ClRowEncoder *enc, const char *name);
extern bool cl_salt_is_erased(bytea *salt);

/* catalog.c: the extension's own tables and the ledger registry */
typedef struct ClLedgerInfo
{
	Oid			relid;
	int32		ledger_id;
	AttrNumber	txn_attnum;
	AttrNumber	ord_attnum;
	bool		retired;
	int			encoding;		/* ledgers.encoding: CL_ENCODING_V1, _V2, _V3 */
	char	   *origin;
} ClLedgerInfo;
extern Oid	cl_schema_oid(bool missing_ok);
extern Oid	cl_internal_relid(const char *name);
extern bool cl_extension_present(void);
extern ClLedgerInfo *cl_ledger_lookup(Oid relid);
extern ClLedgerInfo *cl_ledger_by_id(int32 ledger_id);
extern List *cl_ledger_list(void);
extern void cl_ledger_cache_reset(void);
extern Oid	cl_extension_owner(void);
extern Oid	cl_check_internal_table(Oid relid, const char *name);
extern bool cl_registry_lookup(const char *table, Oid relid, int text_attnum,
							   MemoryContext mcxt, char **text_value);
extern bool cl_type_prints_alike(Oid typid);
extern bool cl_type_is_bpchar(Oid typid);
extern void cl_trim_bpchar(char *s);
extern AttrNumber cl_table_subject_attnum(Relation rel);
extern List *cl_personal_ledger_relids(void);
extern Relation cl_open_owned_table(Oid relid, LOCKMODE lockmode);
extern Relation cl_open_by_name_locked(Oid (*lookup) (bool create), bool create, LOCKMODE lockmode);
extern void cl_require_admin(const char *action, const char *may, const char *function);
extern void cl_refuse_taken_name(const char *relname, const char *why);
extern void cl_registry_forget(Oid relid);
extern void cl_ledger_note_dropped(Oid relid);
extern bool cl_ledger_was_dropped(int32 ledger_id);
extern Oid	cl_ledger_dropped_relid(int32 ledger_id);
extern ClLedgerInfo *cl_ledger_resolve(Oid relid);
extern List *cl_ledger_personal(int32 ledger_id, char **subject);
/* encode.c, with the catalog: an encoder for a ledger's rows */
extern ClRowEncoder *cl_ledger_encoder(ClLedgerInfo *info, TupleDesc desc, MemoryContext mcxt);

/*
 * Locks only the extension takes: on the extension object itself, with a
 * sub-id no SQL command uses, so no role can hold or queue for them (table
 * locks on the extension's tables can be taken, at parse time, before
 * PostgreSQL checks privileges).
 */
#define CL_LOCK_SEAL_ROUND	1	/* one sealing round at a time */
#define CL_LOCK_RECORDER	2	/* consent recorders, until commit */
#define CL_LOCK_WITNESS		3	/* witness_cosign(): check and record, until commit */
#define CL_LOCK_ERASE		4	/* erase_subject(): one at a time, until commit */
extern void cl_lock_extension(int which, LOCKMODE mode);

/* custody.c: the trust model and custody of protected tables */
extern bool cl_role_is_trusted(Oid roleid);
extern Oid	cl_custodian_oid(void);
extern Oid	cl_relation_owner(Oid relid);
extern bool cl_type_contains(Oid typid, Oid target);
extern void cl_check_protectable(Relation rel);
extern bool cl_is_extension_trigger_function(Oid fn, const char *proname);
extern bool cl_is_extension_trigger(Oid relid, const char *tgname);
extern bool cl_extension_trigger_present(Oid relid, const char *tgname, const char *proname);
extern void cl_refuse_foreign_trigger(Oid relid, const char *tgname, const char *proname);
extern void cl_take_custody(Oid relid);
extern void cl_release_custody(Oid relid);

/* ledger.c: create_ledger, the stamp and guard triggers, commit path */
extern void cl_ledger_init(void);
extern bool cl_internal_ddl;
extern bool cl_swapping_ledger;
extern void cl_make_ledger(Oid relid);
extern void cl_make_ledger_personal(Oid relid, List *personal, const char *subject);
extern void cl_make_partitioned_ledger_personal(Oid relid, List *personal, const char *subject);
extern void cl_ledger_check_attach(Oid parent, Oid part);
extern void cl_refuse_foreign_key_to_personal(Oid conoid, Oid relid, Bitmapset *pset);
extern void cl_refuse_foreign_keys_to_personal(Oid relid);
extern void cl_refuse_referencing_foreign_keys(Relation rel, List *personal);
extern List *cl_partitioned_ledger_personal(Oid relid, char **subject);
extern void cl_make_user_ledger(Oid relid, List *personal, const char *subject);
extern void cl_refuse_stamp_constraints(Oid relid);
extern Relation cl_open_ledger_candidate(Oid relid);
extern int	cl_new_ledger_encoding(void);
extern void cl_ledger_insert_direct(Relation rel, Datum *values, bool *nulls);
/* bytes of one string in an audit record (a longer row_key is cut) */
#define CL_AUDIT_STR_MAX	4096
extern char *cl_audit_row_key(Relation rel, HeapTuple tup);
extern int32 cl_ledger_own_leaves(Oid relid, int64 *txn, cl_hash **leaves);
extern int32 cl_ledger_own_count(Oid relid, int64 *txn);
extern void cl_run_as_owner(const char *sql, Oid owner);
extern void cl_ledger_add_partition(Oid relid);
extern void cl_ledger_stamp_slots(Relation rel, struct TupleTableSlot **slots, int nslots);

/* tableam.c: the consent_ledger table access method */
extern bool cl_tableam_is(Relation rel);
extern bool cl_tableam_stamps(Relation rel);
extern bool cl_tableam_installed(void);
extern void cl_tableam_refuse_writes(void);
extern void cl_tableam_release_tables(void);
extern HeapTuple cl_heap_getnext(struct TableScanDescData *scan, ScanDirection direction);

/* partition.c: partitioned tables protected, audited, ledgers */
extern bool cl_partition_parent_protected(Oid relid);
extern bool cl_is_partitioned_ledger(Oid relid);
extern void cl_partition_protect_children(Oid relid, const char *column);
extern void cl_partition_unprotect_children(Oid relid);
extern void cl_partition_refuse_unprotect_member(Oid relid);
extern void cl_partition_after_utility(Node *parsetree, Oid created, Oid attach_parent,
									   List *attached);
extern void cl_partition_before_ledger_attach(Oid parent, Oid part);
extern List *cl_partition_ledgers(Oid relid);

/* consent.c: the consent registry */
extern Oid	cl_consent_events_relid(bool create);
extern Relation cl_open_consent_events(LOCKMODE lockmode, bool create);
extern bool cl_migrating_consent;
extern void cl_consent_init(void);
extern void cl_consent_recorded(int64 event_id);
extern bool cl_recording_consent;

/* subject.c */
struct cl_statement;
extern bool cl_registering_subject_key;
extern Oid	cl_subject_keys_relid(void);
extern char *cl_statement_origin(void);
extern bool cl_subject_current_key(const char *subject, uint8 *key, int32 *key_no, int64 *stmt_time);
extern void cl_check_statement(const char *text, size_t len, int kind, struct cl_statement *st);
extern void cl_decode_signature(const char *b64, uint8 *sig);
extern bool cl_purpose_signed_only(const char *name);	/* policy.c */
extern bool cl_signed_only_purposes_exist(void);
/* verify.c: members of the JSON documents it writes */
extern void cl_append_json_b64(StringInfo buf, const char *key, const uint8 *p, size_t len, bool comma);
extern void cl_append_json_path(StringInfo buf, const cl_hash *path, int n);

/* erase.c: personal columns and erase_subject() (README "Erasure") */
extern char *cl_erase_register_sql(int32 ledger_id, List *personal, const char *subject);
extern void cl_check_personal_columns(Relation rel, List *personal);

/* record.c: recording consent, one event, set-wise and in bulk */
extern void cl_record_init(void);

/* consent_state.c: the server's consent state in shared memory */
#define CL_CS_MAX_PURPOSES 4096	/* distinct purposes with events, all databases */
#define CL_CS_GROUP_BITS 6
#define CL_CS_GROUP (1 << CL_CS_GROUP_BITS)	/* integer subjects read together */
extern int	cl_max_consent_states;
typedef struct ClCsKey
{
	uint64		k[2];			/* int64 subject and 0, or a keyed digest */
	uint64		hash;
} ClCsKey;
typedef struct ClCsQuery
{
	int			space;			/* this database's space */
	int64		horizon;		/* highest event id in force for the check */
} ClCsQuery;
typedef struct ClCsState
{
	bool		found;			/* some event at or below the horizon */
	bool		granted;		/* the latest is a grant */
	int64		last_event;
	int64		last_withdrawal;
	TimestampTz expires;		/* of the latest grant; DT_NOEND for none */
} ClCsState;
extern Size cl_cs_shmem_size(void);
extern void cl_cs_shmem_init(void);
extern bool cl_cs_canonical_int64(const char *s, int len, int64 *out);
extern void cl_cs_key_int(int64 v, ClCsKey *key);
extern void cl_cs_key_text(const char *s, int len, ClCsKey *key);
extern void cl_cs_begin(Oid incarnation, ClCsQuery *q);
extern int64 cl_cs_fix_horizon(Oid incarnation);
extern void cl_cs_begin_at(Oid incarnation, int64 horizon, ClCsQuery *q);
extern int	cl_cs_purpose_id(ClCsQuery *q, const char *name);
extern void cl_cs_get(ClCsQuery *q, const ClCsKey *key, int pid, const char *purpose_name,
					  const char *subject, int len, ClCsState *out);
extern void cl_cs_get_group(ClCsQuery *q, int64 first_key, int pid, const char *purpose_name,
							ClCsState *out);

/* policy.c: consent enforcement */
extern char *cl_purpose;
extern bool cl_committed_state(HeapTupleHeader th);
extern void cl_policy_init(void);
extern bool cl_check_purpose(char **newval, void **extra, GucSource source);
extern void cl_assign_purpose(const char *newval, void *extra);
extern void cl_policy_executor_start(QueryDesc *queryDesc);
extern char *cl_parallel_inputs;
extern int	cl_debug_worker_wait;
extern bool cl_check_parallel_inputs(char **newval, void **extra, GucSource source);
extern int	cl_policy_run_begin(QueryDesc *queryDesc, void **saved);
extern void cl_policy_run_end(int nestlevel, void *saved);
extern void cl_policy_run_failed(void *saved);
extern bool cl_is_protected(Oid relid);
extern bool cl_is_protected_cached(Oid relid);
extern List *cl_protected_relids(void);
extern const char *cl_view_purpose_cached(Oid view);
extern Oid	cl_view_base_cached(Oid view);
extern bool cl_purpose_views_in(Oid nsp);
extern void cl_protect_one(Oid relid, const char *column);
extern void cl_unprotect_one(Oid relid);
extern bool cl_policy_site_refused(FmgrInfo *finfo, uint64 *refused, Oid *view);

/* audit.c: signed audit of changes and protected reads */
extern void cl_audit_init(void);
extern Size cl_audit_shmem_size(void);
extern void cl_audit_shmem_init(void);
typedef enum ClDrainResult
{
	CL_DRAIN_IDLE,				/* nothing queued */
	CL_DRAIN_WROTE,				/* records (or a gap) written */
	CL_DRAIN_ABSENT				/* the extension is not installed here */
} ClDrainResult;
extern ClDrainResult cl_audit_drain(ClSealSlot *slot, int slotno);
extern void cl_audit_executor_start(QueryDesc *queryDesc);
extern void cl_audit_executor_progress(QueryDesc *queryDesc);
extern void cl_audit_executor_failed(QueryDesc *queryDesc);
extern void cl_audit_executor_end(QueryDesc *queryDesc);
extern void *cl_audit_copy_begin(Oid relid, const char *operation);
extern void cl_audit_copy_end(void *handle, uint64 rows);
extern bool cl_is_audited(Oid relid);
extern void cl_audit_partition(Oid relid);

/* standby.c: audited reads on a hot standby, forwarded to the primary */
#define CL_FWD_NPARAMS 15		/* record_standby_read() arguments after the name */
extern char *cl_standby_audit_conninfo;
extern char *cl_standby_name;
extern void cl_standby_define_gucs(void);
extern bool cl_standby_audit_configured(void);
extern const char *cl_standby_identity(void);
extern bool cl_standby_forward(const char *const (*vals)[CL_FWD_NPARAMS], int nrecs, bool in_abort);
extern void cl_standby_refuse_unconfigured(void) pg_attribute_noreturn();

/* tiles.c: stored subtree hashes (README "Stored tree hashes"); SPI connected */
typedef struct ClTreeReader ClTreeReader;
extern ClTreeReader *cl_tree_reader_create(int32 ledger_id, bool read_only);
extern void cl_tree_range(void *reader, uint64_t lo, uint64_t hi, cl_hash out);
extern void cl_tree_leaf(ClTreeReader *r, uint64 i, cl_hash out);
extern void cl_tree_reader_stats(ClTreeReader *r, uint64 *queries, uint64 *recomputed);
extern void cl_tiles_append(int32 ledger_id, uint64 first, const cl_hash *hashes, uint64 n);
typedef struct ClTilesChecker ClTilesChecker;
extern ClTilesChecker *cl_tiles_check_begin(int32 ledger_id);
extern void cl_tiles_check_leaf(ClTilesChecker *c, const cl_hash leaf);
extern bool cl_tiles_check_leaf_node(ClTilesChecker *c, const cl_hash leaf, cl_hash node);
extern char *cl_tiles_check_end(ClTilesChecker *c, uint64 *pos, int64 *nproblems,
								uint64 *missing);

/* subxact.c: a piece of a worker's work in a subtransaction of its own */
extern ErrorData *cl_run_in_subxact(void (*fn) (void *arg), void *arg);

/* hooks.c: executor hooks */
extern int	cl_executor_nesting;
extern void cl_hooks_init(void);

/* guard.c: utility and object-access hooks that keep ledgers append-only */
extern void cl_guard_init(void);
extern void cl_guard_check_plan(PlannedStmt *stmt);
extern bool cl_explain_analyze_active(void);
extern bool cl_allow_publish_protected;
extern void cl_refuse_if_published(Oid relid);

/* seal.c: launcher and per-database sealer workers */
extern void cl_seal_register_launcher(void);
extern ClSealSlot *cl_worker_attach(Oid dboid, bool writer);
extern void cl_seal_wake(Oid dboid);
extern void cl_seal_block_database(Oid dboid);
extern ClSealSlot *cl_slot_for(Oid dboid, bool create);
extern void cl_slot_release_if_unused(ClSealSlot *slot);
extern PGDLLEXPORT void cl_launcher_main(Datum arg);
extern PGDLLEXPORT void cl_sealer_main(Datum arg);

/* ship.c: checkpoint shipping, run by the sealer (README "Shipping checkpoints") */
extern char *cl_checkpoint_command;
extern int	cl_checkpoint_command_timeout_s;
extern void cl_ship_define_gucs(void);
extern void cl_ship_start(void);
extern void cl_ship_reloaded(void);
extern void cl_ship_checkpoints_made(void);
extern void cl_ship_work(void);
extern long cl_ship_wait_ms(long max_ms);
/* witness.c: witness cosigning and cosignatures (README "Witnesses") */
extern char *cl_witness_name;
extern void cl_witness_define_gucs(void);
extern Size cl_witness_shmem_size(void);
extern void cl_witness_shmem_init(void);
extern void cl_witness_serve(void);
extern char *cl_cosigned_note(int32 ledger_id, int64 seq, const char *note);
extern int	cl_witness_quorum(const char *note, struct ArrayType *witnesses, int quorum, char **reason);

/* writer.c: the per-database audit writer worker */
extern PGDLLEXPORT void cl_writer_main(Datum arg);

#endif							/* CONSENT_LEDGER_H */
