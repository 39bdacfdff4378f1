/*-------------------------------------------------------------------------
 * policy.c
 *	  Consent enforcement: the row-level policy checks, the purpose GUC,
 *	  authorize_purpose(), protect() and create_purpose_view().
 *
 * The checks run once per row of a protected table, so they never query
 * in the common case: the current consent state lives once per server in
 * shared memory (consent_state.c), maintained incrementally from the
 * consent ledger.  When a policy check is first evaluated in an executor
 * state, it brings that state up to date (recording transactions bump a
 * shared counter when they commit, consent.c) and fixes the executor
 * state's horizon, the highest event id in force for it: a withdrawal is
 * in force for every statement that starts after it commits, and a
 * session's own uncommitted recordings never are.  An entry changed after
 * the horizon is answered from the ledger as of the horizon.  Purposes,
 * authorizations and purpose views are small and cached per backend,
 * reloaded whole when their generation counter moves; they belong to one
 * incarnation of the extension (cl_check_incarnation, README "Uninstall").
 *
 * Every check of one executor state decides with the same inputs (horizon,
 * moment, purpose registry generation; StatementInputs): fixed by the
 * state's first check, or, when its plan may run in parallel, by the leader
 * before it starts any worker.  Parallel workers inherit the leader's
 * through the hidden setting consent_ledger.parallel_inputs (copied into
 * every worker with the leader's other settings, SerializeGUCState); nobody
 * can set it, not even a superuser.  While a parallel plan runs, the
 * leader's nested executor states (functions) use the plan's inputs too,
 * as the workers do.  So leader and workers decide every row alike.
 *
 * A validated decision (role, purpose, moment) lives in the call site's
 * FmgrInfo and is never reused by another call site, query or security
 * context; every later call of the site compares role and purpose and
 * fails if they changed (see StatementCheck).
 *
 * The caches are read with direct heap and index scans, not SPI: they
 * must work for roles that cannot read the internal tables, inside the
 * GUC check hook, and in parallel workers.  They read
 * the latest committed state, without a snapshot (cl_committed_state()), so
 * that parallel workers and the leader agree and a withdrawal committed a
 * moment ago counts even inside an old REPEATABLE READ transaction.
 *
 * Memory: a backend keeps no per-subject state.  Each check keeps a memo
 * of the decisions it made for integer subjects (2 bits per subject, in
 * pages of 32768 subjects, at most CHECK_MEMO_PAGES pages: 4 MiB), freed
 * with the executor state.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/multixact.h"
#include "access/transam.h"
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/regproc.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_allowed_text);
PG_FUNCTION_INFO_V1(cl_allowed_int8);
PG_FUNCTION_INFO_V1(cl_allowed_int4);
PG_FUNCTION_INFO_V1(cl_allowed_uuid);
PG_FUNCTION_INFO_V1(cl_view_allows_text);
PG_FUNCTION_INFO_V1(cl_view_allows_int8);
PG_FUNCTION_INFO_V1(cl_view_allows_int4);
PG_FUNCTION_INFO_V1(cl_view_allows_uuid);
PG_FUNCTION_INFO_V1(cl_authorize_purpose);
PG_FUNCTION_INFO_V1(cl_revoke_purpose);
PG_FUNCTION_INFO_V1(cl_protect);
PG_FUNCTION_INFO_V1(cl_unprotect);
PG_FUNCTION_INFO_V1(cl_create_purpose_view);

char	   *cl_purpose = NULL;

/*
 * Bumped by every assignment of consent_ledger.purpose (SET, RESET, a
 * function's SET clause and its undoing, transaction end): a check compares
 * the purpose text only when this moved since it last looked.
 */
static uint64 purpose_assignments = 0;

#define MAX_PURPOSE_NAME 63
#define POLICY_NAME "consent_ledger_read"

/* ---------- purposes, authorizations, purpose views ---------- */

typedef struct Purpose
{
	char		name[MAX_PURPOSE_NAME + 1];
	bool		defined;		/* still in consent_ledger.purposes */
	bool		consent_basis;	/* legal basis 'consent' */
	bool		signed_only;	/* require_subject_signature (1.6) */
	int			parent;			/* index, or -1 */
} Purpose;

typedef struct RoleGrant
{
	Oid			role;
	int			purpose;
} RoleGrant;

typedef struct PurposeView
{
	Oid			view;
	Oid			base;			/* the protected table it reads */
	int64		token;
	int			purpose;
} PurposeView;

static MemoryContext policy_cxt = NULL;
static Purpose *purposes = NULL;	/* indexes are stable: names only append */
static int	npurposes = 0;
static int	cap_purposes = 0;
static RoleGrant *grants = NULL;
static int	ngrants = 0;
static PurposeView *views = NULL;
static int	nviews = 0;
static Oid *protected_rels = NULL;	/* consent_ledger.protected, for the audit hook */
static int	nprotected = 0;
static uint64 loaded_generation = 0;
static XLogRecPtr registry_replay_lsn = InvalidXLogRecPtr;	/* standby: replay when last read */
static TimestampTz registry_stmt_start = 0;	/* standby: statement that last read it */

/* ---------- per evaluation site ---------- */

/*
 * A check's memo of integer subjects' decisions: pages of MEMO_PAGE_KEYS
 * consecutive keys, 2 bits each (0 not decided yet, 1 refused, 2 allowed),
 * allocated when first touched, found through a small open-addressing
 * directory.  Dense warehouse ids then cost one bit lookup per row after
 * the first row of each subject; the memory is bounded whatever the
 * number of subjects (beyond it, decisions are simply not remembered).
 */
#define MEMO_PAGE_SHIFT 15
#define MEMO_PAGE_KEYS (1 << MEMO_PAGE_SHIFT)
#define MEMO_DIR_SIZE 1024		/* power of two, > 2 * CHECK_MEMO_PAGES */
#define CHECK_MEMO_PAGES 512	/* 512 pages of 8 KiB: 4 MiB */

typedef struct MemoPage
{
	int64		page_no;
	uint64	   *bits;			/* NULL: free directory slot */
} MemoPage;




/*
 * One validated consent decision context, bound to one evaluation site of
 * a policy check (the FmgrInfo of that call in one executor state): the
 * role that evaluates it, the purpose in force, and the moment.  Nothing
 * validated here is reused by another call site, another query or another
 * security context; if the role or the purpose differs at a later call of
 * the same site (a cursor fetched after SET consent_ledger.purpose or SET
 * ROLE), the call fails instead of answering under different rules.
 */
typedef struct StatementCheck
{
	Oid			userid;			/* role it was validated for */
	int64		token;			/* purpose view token, 0 for the GUC check */
	char		purpose_name[MAX_PURPOSE_NAME + 1]; /* GUC value validated */
	uint64		purpose_seen;	/* purpose_assignments when last compared */
	int			purpose;
	bool		consent_basis;
	TimestampTz now;
	ClCsQuery	q;				/* shared state space and horizon */
	int			nrel;			/* relevant purposes with consent events */
	int		   *rel_id;		/* their ids in the shared state */
	const char **rel_name;	/* and names */
	MemoryContext mcxt;			/* the site's: memo pages live there */
	MemoPage   *dir;			/* MEMO_DIR_SIZE slots, or NULL */
	int			npages;
	int64		last_page_no;	/* one-page fast path */
	uint64	   *last_page;
	Oid			view;			/* purpose view of a view check, else invalid */
	uint64		refused;		/* rows this site refused: the audit's rows_withheld */
} StatementCheck;

/*
 * Executor states opened in this backend, with the role and purpose in
 * force when each was opened (ExecutorStart).  A policy check evaluated in
 * that executor state must run under the same role and purpose: a portal
 * keeps the purpose it was opened with, which is also what its audit
 * record names.
 */
/*
 * What every decision of a statement (an executor state) depends on besides
 * the subject, role and purpose: the consent horizon, the moment expiries
 * are compared with, and the generation of the purpose registry.  Fixed
 * once per executor state: by its first policy check, or, when its plan may
 * run in parallel, by the leader before any worker starts
 * (cl_policy_run_begin); the workers receive them through the hidden
 * setting consent_ledger.parallel_inputs, which PostgreSQL copies from the
 * leader into every worker (SerializeGUCState), and every check of the
 * executor state, in the leader or a worker, decides with them.
 */
typedef struct StatementInputs
{
	bool		fixed;
	bool		parallel;		/* shared with parallel workers */
	Oid			incarnation;
	int64		horizon;
	TimestampTz now;
	uint64		generation;		/* purpose_generation of the registry */
} StatementInputs;

typedef struct OpenedQuery
{
	MemoryContext cxt;			/* the executor state's es_query_cxt */
	Oid			userid;
	char		purpose[MAX_PURPOSE_NAME + 1];
	StatementInputs in;
	struct OpenedQuery *prev;
	struct OpenedQuery *next;
	MemoryContextCallback forget;
} OpenedQuery;

static OpenedQuery *opened_queries = NULL;

/*
 * Leader: the inputs of the parallel plan running now (between
 * cl_policy_run_begin and its end); a function it calls that reads a
 * protected table decides with them too, as it does in the workers.
 */
static StatementInputs *running_parallel = NULL;

/* consent_ledger.parallel_inputs: set only here, read by workers */
char	   *cl_parallel_inputs = NULL;
static bool setting_parallel_inputs = false;

/* consent_ledger.debug_parallel_worker_wait (test-only, superuser) */
int			cl_debug_worker_wait = 0;

static void
ensure_context(void)
{
	if (policy_cxt == NULL)
		policy_cxt = AllocSetContextCreate(CacheMemoryContext,
										   "consent_ledger consent cache",
										   ALLOCSET_DEFAULT_SIZES);
}

static int
purpose_index(const char *name, bool create)
{
	for (int i = 0; i < npurposes; i++)
		if (strcmp(purposes[i].name, name) == 0)
			return i;
	if (!create || strlen(name) > MAX_PURPOSE_NAME)
		return -1;
	if (npurposes == cap_purposes)
	{
		cap_purposes = Max(16, cap_purposes * 2);
		purposes = purposes == NULL ?
			MemoryContextAllocZero(policy_cxt, sizeof(Purpose) * cap_purposes) :
			repalloc(purposes, sizeof(Purpose) * cap_purposes);
	}
	memset(&purposes[npurposes], 0, sizeof(Purpose));
	strlcpy(purposes[npurposes].name, name, sizeof(purposes[npurposes].name));
	purposes[npurposes].parent = -1;
	return npurposes++;
}

/*
 * Whether a tuple of one of the extension's tables is part of the latest
 * committed state: inserted by a committed transaction (not this one, not
 * one still running) and not deleted by one.  The caches use this instead
 * of an MVCC snapshot: it needs no snapshot, so parallel workers get the
 * same answer as the leader, and a withdrawal or revocation committed a
 * moment ago counts even inside an older REPEATABLE READ transaction.
 * This transaction's own changes are not in force until it commits.
 */
bool
cl_committed_state(HeapTupleHeader th)
{
	TransactionId xmin = HeapTupleHeaderGetRawXmin(th);
	TransactionId xmax;

	if (!HeapTupleHeaderXminFrozen(th))
	{
		if (!TransactionIdIsNormal(xmin) && xmin != FrozenTransactionId &&
			xmin != BootstrapTransactionId)
			return false;
		if (TransactionIdIsCurrentTransactionId(xmin) || TransactionIdIsInProgress(xmin) ||
			!TransactionIdDidCommit(xmin))
			return false;
	}
	if (th->t_infomask & HEAP_XMAX_INVALID || HEAP_XMAX_IS_LOCKED_ONLY(th->t_infomask))
		return true;
	if (th->t_infomask & HEAP_XMAX_IS_MULTI)
		xmax = HeapTupleGetUpdateXid(th);
	else
		xmax = HeapTupleHeaderGetRawXmax(th);
	if (!TransactionIdIsValid(xmax) || TransactionIdIsCurrentTransactionId(xmax) ||
		TransactionIdIsInProgress(xmax))
		return true;
	return !TransactionIdDidCommit(xmax);
}

/* Grows an array held in policy_cxt to fit one more element. */
#define GROW(arr, n, cap) \
	do { \
		if ((arr) == NULL) \
		{ \
			(cap) = 16; \
			(arr) = MemoryContextAlloc(policy_cxt, sizeof(*(arr)) * (cap)); \
		} \
		else if ((n) == (cap)) \
		{ \
			(cap) *= 2; \
			(arr) = repalloc((arr), sizeof(*(arr)) * (cap)); \
		} \
	} while (0)

static int	cap_grants = 0;
static int	cap_views = 0;
static int	cap_protected = 0;

/*
 * On a hot standby: a hash of the registry's committed rows as loaded,
 * which stands for purpose_generation there (see refresh_purposes()).
 */
static uint64 registry_hash = 0;

/* Calls fn for every row of one of the extension's tables in the committed state. */
static void
scan_committed(const char *table, void (*fn) (HeapTuple tup, TupleDesc desc))
{
	Relation	rel = table_open(cl_internal_relid(table), AccessShareLock);
	TableScanDesc scan = table_beginscan(rel, SnapshotAny, 0, NULL);
	HeapTuple	tup;

	registry_hash = hash_bytes_extended((const unsigned char *) table, strlen(table), registry_hash);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		if (cl_committed_state(tup->t_data))
		{
			/* the row's data, not its header (hint bits differ between backends) */
			registry_hash = hash_bytes_extended((const unsigned char *) tup->t_data + tup->t_data->t_hoff,
												tup->t_len - tup->t_data->t_hoff, registry_hash);
			fn(tup, RelationGetDescr(rel));
		}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

static void
load_purpose(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	int			idx = purpose_index(TextDatumGetCString(heap_getattr(tup, 1, desc, &isnull)), true);
	char	   *basis = TextDatumGetCString(heap_getattr(tup, 3, desc, &isnull));
	Datum		parent = heap_getattr(tup, 4, desc, &isnull);

	if (idx < 0)
		return;
	purposes[idx].defined = true;
	purposes[idx].consent_basis = (strcmp(basis, "consent") == 0);
	purposes[idx].signed_only = false;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), "require_subject_signature") == 0)
		{
			bool		flag_null;
			Datum		d = heap_getattr(tup, a->attnum, desc, &flag_null);

			purposes[idx].signed_only = !flag_null && DatumGetBool(d);
		}
	}
	purposes[idx].parent = isnull ? -1 : purpose_index(TextDatumGetCString(parent), true);
}

static void
load_grant(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;

	GROW(grants, ngrants, cap_grants);
	grants[ngrants].role = DatumGetObjectId(heap_getattr(tup, 1, desc, &isnull));
	grants[ngrants].purpose = purpose_index(TextDatumGetCString(heap_getattr(tup, 2, desc, &isnull)), true);
	ngrants++;
}

static void
load_view(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;

	GROW(views, nviews, cap_views);
	views[nviews].view = DatumGetObjectId(heap_getattr(tup, 1, desc, &isnull));
	views[nviews].base = DatumGetObjectId(heap_getattr(tup, 2, desc, &isnull));
	views[nviews].purpose = purpose_index(TextDatumGetCString(heap_getattr(tup, 3, desc, &isnull)), true);
	views[nviews].token = DatumGetInt64(heap_getattr(tup, 4, desc, &isnull));
	nviews++;
}

static void
load_protected(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;

	GROW(protected_rels, nprotected, cap_protected);
	protected_rels[nprotected++] = DatumGetObjectId(heap_getattr(tup, 1, desc, &isnull));
}

static Oid cl_check_incarnation(void);

/*
 * Reloads purposes, authorizations, purpose views and protected tables when
 * their generation moved.  Small tables, read whole in the committed state.
 */
static void
refresh_purposes(void)
{
	uint64		gen;
	MemoryContext old;
	MemoryContext scratch;

	cl_check_incarnation();
	gen = pg_atomic_read_u64(&cl_shared->purpose_generation);

	/*
	 * A hot standby replays the registry's changes, but nothing bumps
	 * purpose_generation there (consent.c bumps it at commit, on the
	 * primary): once replay moved, the registry is read again, and its
	 * generation is a hash of its rows, the same in every backend
	 * (parallel workers compare it with their leader's), at most once per
	 * statement.  After a promotion the registry is read again once and
	 * the counter takes over.
	 */
	if (RecoveryInProgress())
	{
		XLogRecPtr	lsn = GetXLogReplayRecPtr(NULL);
		TimestampTz stmt = GetCurrentStatementStartTimestamp();

		/* at most once per statement: it decides with the registry of its start */
		if (loaded_generation != 0 && (lsn == registry_replay_lsn || stmt == registry_stmt_start))
			return;
		registry_replay_lsn = lsn;
		registry_stmt_start = stmt;
		gen = 0;				/* set from the hash below */
	}
	else if (registry_replay_lsn != InvalidXLogRecPtr)
	{
		registry_replay_lsn = InvalidXLogRecPtr;
		loaded_generation = 0;
	}
	if (gen != 0 && gen == loaded_generation)
		return;

	/*
	 * Inside CREATE EXTENSION the extension exists before its tables do (a
	 * schema left from an earlier incarnation is found already): nothing
	 * to load yet, and nothing is protected.
	 */
	if (!OidIsValid(get_relname_relid("protected", cl_schema_oid(false))))
	{
		ngrants = nviews = nprotected = 0;
		return;
	}
	ensure_context();
	/*
	 * Scans and detoasted values go to a scratch context: what is kept is
	 * allocated in policy_cxt explicitly (1.1 scanned in policy_cxt, which
	 * grew in CacheMemoryContext at every reload).
	 */
	scratch = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger reload",
									ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(scratch);
	for (int i = 0; i < npurposes; i++)
		purposes[i].defined = false;
	registry_hash = 0;
	scan_committed("purposes", load_purpose);
	ngrants = nviews = nprotected = 0;
	scan_committed("purpose_grants", load_grant);
	scan_committed("purpose_views", load_view);
	scan_committed("protected", load_protected);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(scratch);
	loaded_generation = gen != 0 ? gen : (registry_hash | UINT64CONST(0x8000000000000000));
}

/*
 * The per-backend caches of purposes, authorizations and purpose views
 * belong to one incarnation of the extension in this database.  DROP
 * EXTENSION and CREATE EXTENSION give a new consent ledger whose event ids
 * start at 1 again, and new purposes: a session that lived across them
 * forgets every purpose definition and authorization it had and loads the
 * new registry; the shared consent state keeps one space per database and
 * incarnation (consent_state.c).  The incarnation is told by the OID of
 * consent_ledger.purposes, an extension member created anew by every
 * CREATE EXTENSION: two syscache lookups, where the pg_extension OID would
 * cost an index scan per statement.
 */
static Oid	cache_incarnation = InvalidOid;

static Oid
cl_check_incarnation(void)
{
	Oid			nsp = cl_schema_oid(true);
	Oid			ext = OidIsValid(nsp) ? get_relname_relid("purposes", nsp) : InvalidOid;

	if (ext == cache_incarnation)
		return ext;
	for (int i = 0; i < npurposes; i++)
		purposes[i].defined = false;
	ngrants = nviews = nprotected = 0;
	loaded_generation = 0;
	cache_incarnation = ext;
	return ext;
}

/*
 * Whether the purpose takes only subject-signed grants (README
 * "Subject-signed consent"): the consent state counts no unsigned grant
 * for it (consent_state.c).
 */
bool
cl_purpose_signed_only(const char *name)
{
	int			idx;

	refresh_purposes();
	idx = purpose_index(name, false);
	return idx >= 0 && purposes[idx].defined && purposes[idx].signed_only;
}

/*
 * Whether any purpose takes only subject-signed grants: when none does,
 * loading the consent state looks at no event's signature.
 */
bool
cl_signed_only_purposes_exist(void)
{
	refresh_purposes();
	for (int i = 0; i < npurposes; i++)
	{
		if (purposes[i].defined && purposes[i].signed_only)
			return true;
	}
	return false;
}

static bool
role_authorized(Oid roleid, int purpose)
{
	if (superuser_arg(roleid))
		return true;
	for (int p = purpose; p >= 0; p = purposes[p].parent)
	{
		for (int g = 0; g < ngrants; g++)
			if (grants[g].purpose == p && has_privs_of_role(roleid, grants[g].role))
				return true;
		if (purposes[p].parent == p)
			break;
	}
	return false;
}

/*
 * The decision for one subject, from the states of the check's relevant
 * purposes as of its horizon: over them, the last withdrawal W; allowed
 * iff some relevant purpose's latest event is a grant after W that has
 * not expired.  Purposes defined after the check was made are not
 * relevant to it.  subject/len: the subject's text, NULL for an integer.
 */
static bool
decide_key(StatementCheck *check, const ClCsKey *key, const char *subject, int len)
{
	ClCsState	st[8];
	ClCsState  *states = check->nrel <= 8 ? st : palloc(sizeof(ClCsState) * check->nrel);
	int64		last_withdrawal = 0;
	bool		ok = false;

	for (int i = 0; i < check->nrel; i++)
	{
		cl_cs_get(&check->q, key, check->rel_id[i], check->rel_name[i], subject, len, &states[i]);
		if (states[i].found && states[i].last_withdrawal > last_withdrawal)
			last_withdrawal = states[i].last_withdrawal;
	}
	for (int i = 0; i < check->nrel && !ok; i++)
		if (states[i].found && states[i].granted &&
			states[i].last_event > last_withdrawal && states[i].expires > check->now)
			ok = true;
	if (states != st)
		pfree(states);
	return ok;
}

/* The memo page of page_no, allocated when create; NULL when none or full. */
static uint64 *
memo_page(StatementCheck *check, int64 page_no, bool create)
{
	uint32		i;

	if (check->dir == NULL)
	{
		if (!create)
			return NULL;
		check->dir = MemoryContextAllocZero(check->mcxt, sizeof(MemoPage) * MEMO_DIR_SIZE);
	}
	for (i = (uint32) (page_no * 0x9E3779B1u) & (MEMO_DIR_SIZE - 1);;
		 i = (i + 1) & (MEMO_DIR_SIZE - 1))
	{
		MemoPage   *p = &check->dir[i];

		if (p->bits != NULL && p->page_no == page_no)
			return p->bits;
		if (p->bits == NULL)
		{
			if (!create || check->npages >= CHECK_MEMO_PAGES)
				return NULL;
			p->page_no = page_no;
			p->bits = MemoryContextAllocZero(check->mcxt, MEMO_PAGE_KEYS / 4);
			check->npages++;
			return p->bits;
		}
	}
}

/*
 * Decides the CL_CS_GROUP integer subjects of key's group at once (their
 * states are read in one pass, see cl_cs_get_group) into the memo page;
 * returns key's decision.
 */
static bool
decide_group(StatementCheck *check, int64 key, uint64 *bits)
{
	int64		first = key & ~((int64) CL_CS_GROUP - 1);
	ClCsState  *st = palloc(sizeof(ClCsState) * CL_CS_GROUP * check->nrel);
	uint32		off = (uint32) (first & (MEMO_PAGE_KEYS - 1));
	bool		result = false;

	for (int i = 0; i < check->nrel; i++)
		cl_cs_get_group(&check->q, first, check->rel_id[i], check->rel_name[i],
						&st[i * CL_CS_GROUP]);
	for (int j = 0; j < CL_CS_GROUP; j++)
	{
		int64		last_withdrawal = 0;
		bool		ok = false;
		uint32		o = off + j;

		for (int i = 0; i < check->nrel; i++)
		{
			ClCsState  *s = &st[i * CL_CS_GROUP + j];

			if (s->found && s->last_withdrawal > last_withdrawal)
				last_withdrawal = s->last_withdrawal;
		}
		for (int i = 0; i < check->nrel && !ok; i++)
		{
			ClCsState  *s = &st[i * CL_CS_GROUP + j];

			ok = s->found && s->granted && s->last_event > last_withdrawal &&
				s->expires > check->now;
		}
		bits[o >> 5] |= (uint64) (ok ? 2 : 1) << ((o & 31) * 2);
		if (first + j == key)
			result = ok;
	}
	pfree(st);
	return result;
}

static inline bool
allowed_int(StatementCheck *check, int64 key)
{
	int64		page_no = key >> MEMO_PAGE_SHIFT;
	uint32		off = (uint32) (key & (MEMO_PAGE_KEYS - 1));
	uint64	   *bits;
	uint64		v;
	ClCsKey		k;

	if (likely(check->last_page != NULL && check->last_page_no == page_no))
		bits = check->last_page;
	else
	{
		bits = memo_page(check, page_no, true);
		if (bits != NULL)
		{
			check->last_page = bits;
			check->last_page_no = page_no;
		}
	}
	if (bits != NULL)
	{
		v = (bits[off >> 5] >> ((off & 31) * 2)) & 3;
		if (v != 0)
			return v == 2;
		return decide_group(check, key, bits);
	}
	/* the memo is full: decide this subject alone */
	cl_cs_key_int(key, &k);
	return decide_key(check, &k, NULL, 0);
}

static bool
allowed_text(StatementCheck *check, text *t)
{
	const char *p = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int64		iv;
	ClCsKey		k;

	if (cl_cs_canonical_int64(p, len, &iv))
		return allowed_int(check, iv);
	cl_cs_key_text(p, len, &k);
	return decide_key(check, &k, p, len);
}

static bool
allowed_uuid(StatementCheck *check, pg_uuid_t *u)
{
	char		buf[37];
	static const char hexd[] = "0123456789abcdef";
	int			j = 0;
	ClCsKey		k;

	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[j++] = '-';
		buf[j++] = hexd[u->data[i] >> 4];
		buf[j++] = hexd[u->data[i] & 0x0f];
	}
	buf[j] = '\0';
	cl_cs_key_text(buf, 36, &k);
	return decide_key(check, &k, buf, 36);
}

/*
 * Makes the check for one evaluation site, in that site's memory context
 * (it lives as long as the executor state that holds the site): brings
 * the shared consent state up to date and fixes the check's horizon.
 */
static void
fix_inputs(StatementInputs *in)
{
	refresh_purposes();
	in->incarnation = cache_incarnation;
	in->generation = loaded_generation;
	in->now = GetCurrentStatementStartTimestamp();
	in->horizon = OidIsValid(cache_incarnation) ? cl_cs_fix_horizon(cache_incarnation) : 0;
	in->fixed = true;
}

/*
 * Test-only (consent_ledger.debug_parallel_worker_wait, superuser): a
 * parallel worker waits before setting up its first check until a consent
 * commit happens or the time runs out, so that a test can commit a
 * withdrawal between the leader's set-up and the worker's.
 */
static void
debug_worker_wait(void)
{
	static bool waited = false;	/* once per worker process */
	uint64		seen = pg_atomic_read_u64(&cl_shared->consent_commits);
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cl_debug_worker_wait);

	if (waited)
		return;
	waited = true;

	while (pg_atomic_read_u64(&cl_shared->consent_commits) == seen &&
		   GetCurrentTimestamp() < end)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, WAIT_EVENT_PG_SLEEP);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
refuse_inputs(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("a parallel worker has no consent inputs from its leader"),
			 errdetail("%s", detail),
			 errhint("Run the statement again; if it keeps failing, set max_parallel_workers_per_gather = 0 and report it.")));
}

/*
 * The inputs the check of this evaluation site decides with: in a parallel
 * worker, the leader's; in the leader while a parallel plan runs, that
 * plan's; otherwise those of the executor state the site belongs to,
 * fixed by its first check.  NULL for a site outside any executor state
 * (decided with inputs of its own, as before).
 */
static StatementInputs *
statement_inputs(FmgrInfo *flinfo)
{
	static StatementInputs worker_inputs;

	if (IsParallelWorker())
	{
		unsigned int db,
					inc;
		long long	horizon,
					now;
		unsigned long long gen;
		char		tail;

		if (cl_parallel_inputs == NULL || cl_parallel_inputs[0] == '\0')
			refuse_inputs("The leader did not fix the statement's consent horizon before starting its workers.");
		if (sscanf(cl_parallel_inputs, "%u:%u:%lld:%lld:%llu%c", &db, &inc, &horizon, &now, &gen, &tail) != 5 ||
			db != MyDatabaseId || horizon < -1)
			refuse_inputs("The leader's consent inputs are not readable.");
		memset(&worker_inputs, 0, sizeof(worker_inputs));
		worker_inputs.fixed = worker_inputs.parallel = true;
		worker_inputs.incarnation = inc;
		worker_inputs.horizon = horizon;
		worker_inputs.now = now;
		worker_inputs.generation = gen;
		return &worker_inputs;
	}
	if (running_parallel != NULL && IsInParallelMode())
		return running_parallel;
	for (OpenedQuery *q = opened_queries; q != NULL; q = q->next)
		if (q->cxt == flinfo->fn_mcxt)
		{
			if (!q->in.fixed)
				fix_inputs(&q->in);
			return &q->in;
		}
	return NULL;
}

static StatementCheck *
make_check(FmgrInfo *flinfo, int purpose, int64 token, Oid view)
{
	StatementCheck *check = MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(StatementCheck));
	StatementInputs *in = statement_inputs(flinfo);

	if (in != NULL)
	{
		/*
		 * The registry this site validated with must be the one the
		 * statement fixed: the extension was not created again meanwhile,
		 * and in a parallel query no purpose, parent or authorization
		 * changed between the leader's set-up and this one.
		 */
		if (in->incarnation != cache_incarnation ||
			(in->parallel && in->generation != loaded_generation))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("the purposes of consent_ledger changed while a statement was reading a consent-protected table"),
					 errdetail("A statement, and every parallel worker it uses, decides all its rows with the purposes, authorizations and consent in force when it began."),
					 errhint("Run the statement again.")));
	}

	check->userid = GetUserId();
	check->token = token;
	check->view = view;
	if (token == 0 && cl_purpose != NULL)
		strlcpy(check->purpose_name, cl_purpose, sizeof(check->purpose_name));
	check->purpose_seen = purpose_assignments;
	check->purpose = purpose;
	check->consent_basis = purposes[purpose].consent_basis;
	check->now = in != NULL ? in->now : GetCurrentStatementStartTimestamp();
	check->mcxt = flinfo->fn_mcxt;
	if (check->consent_basis)
	{
		if (in != NULL)
			cl_cs_begin_at(cache_incarnation, in->horizon, &check->q);
		else
			cl_cs_begin(cache_incarnation, &check->q);
		check->rel_id = MemoryContextAlloc(flinfo->fn_mcxt, sizeof(int) * (npurposes + 1));
		check->rel_name = MemoryContextAlloc(flinfo->fn_mcxt, sizeof(char *) * (npurposes + 1));
		for (int p = purpose, depth = 0; p >= 0 && depth <= npurposes; p = purposes[p].parent, depth++)
		{
			int			id = cl_cs_purpose_id(&check->q, purposes[p].name);
			bool		dup = false;

			for (int i = 0; i < check->nrel; i++)
				dup |= check->rel_id[i] == id;
			/* a purpose no event names has no state: nothing to look up */
			if (id < 0 || dup)
				continue;
			check->rel_id[check->nrel] = id;
			check->rel_name[check->nrel] = MemoryContextStrdup(flinfo->fn_mcxt, purposes[p].name);
			check->nrel++;
		}
	}
	flinfo->fn_extra = check;
	return check;
}

static void
forget_opened_query(void *arg)
{
	OpenedQuery *q = arg;

	if (q->prev)
		q->prev->next = q->next;
	else
		opened_queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
}

/*
 * Called by the ExecutorStart hook once the executor state exists: notes
 * the role and purpose this query (or portal) is opened under.
 */
void
cl_policy_executor_start(QueryDesc *queryDesc)
{
	OpenedQuery *q;

	if (queryDesc->estate == NULL)
		return;
	q = MemoryContextAllocZero(queryDesc->estate->es_query_cxt, sizeof(OpenedQuery));
	q->cxt = queryDesc->estate->es_query_cxt;
	q->userid = GetUserId();
	if (cl_purpose != NULL)
		strlcpy(q->purpose, cl_purpose, sizeof(q->purpose));
	q->next = opened_queries;
	if (opened_queries)
		opened_queries->prev = q;
	opened_queries = q;
	q->forget.func = forget_opened_query;
	q->forget.arg = q;
	MemoryContextRegisterResetCallback(q->cxt, &q->forget);
}

static void
refuse_changed_context(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("the %s changed while a query was reading a consent-protected table", what),
			 errdetail("A query or cursor reads protected rows under the role and purpose in force when it was opened."),
			 errhint("Close the cursor, or finish the statement, before changing consent_ledger.purpose or the current role.")));
}

/*
 * Whether the role and purpose now in force are the ones the query that
 * holds this evaluation site was opened under.
 */
static void
check_opened_context(FmgrInfo *flinfo, bool uses_guc)
{
	for (OpenedQuery *q = opened_queries; q != NULL; q = q->next)
		if (q->cxt == flinfo->fn_mcxt)
		{
			if (q->userid != GetUserId())
				refuse_changed_context("current role");
			if (uses_guc && strcmp(q->purpose, cl_purpose ? cl_purpose : "") != 0)
				refuse_changed_context("declared purpose");
			return;
		}
}

/*
 * The check of the session's declared purpose for one evaluation site:
 * validated at the site's first call (declared, defined, authorized for
 * the current role, the same as when the query was opened), then only
 * compared.  Errors here depend only on the session, never on row data
 * (the checks are LEAKPROOF).
 */
static inline StatementCheck *
guc_statement_check(FunctionCallInfo fcinfo)
{
	StatementCheck *check = fcinfo->flinfo->fn_extra;
	int			idx;

	if (likely(check != NULL))
	{
		if (unlikely(check->userid != GetUserId()))
			refuse_changed_context("current role");
		if (unlikely(check->purpose_seen != purpose_assignments))
		{
			if (strcmp(check->purpose_name, cl_purpose ? cl_purpose : "") != 0)
				refuse_changed_context("declared purpose");
			check->purpose_seen = purpose_assignments;
		}
		return check;
	}
	if (cl_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger must be loaded via shared_preload_libraries")));
	if (IsParallelWorker() && cl_debug_worker_wait > 0)
		debug_worker_wait();
	check_opened_context(fcinfo->flinfo, true);
	if (cl_purpose == NULL || cl_purpose[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no purpose declared for reading a consent-protected table"),
				 errdetail("Rows of protected tables are shown only for a declared purpose their subjects consented to."),
				 errhint("Declare one with SET consent_ledger.purpose = '...', choosing a purpose your role is authorized for, or read through a purpose view.")));
	refresh_purposes();
	idx = purpose_index(cl_purpose, false);
	if (idx < 0 || !purposes[idx].defined)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("purpose \"%s\" is not defined", cl_purpose),
				 errhint("An administrator defines purposes with consent_ledger.define_purpose().")));
	if (!role_authorized(GetUserId(), idx))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" is not authorized for purpose \"%s\"",
						GetUserNameFromId(GetUserId(), false), cl_purpose),
				 errhint("An administrator grants purposes with consent_ledger.authorize_purpose().")));
	return make_check(fcinfo->flinfo, idx, 0, InvalidOid);
}

/*
 * The check of a purpose view's filter for one evaluation site: the view's
 * purpose, for a role that may read the view.
 */
static inline StatementCheck *
view_statement_check(FunctionCallInfo fcinfo, int64 token)
{
	StatementCheck *check = fcinfo->flinfo->fn_extra;
	int			purpose = -1;
	Oid			view = InvalidOid;

	if (likely(check != NULL && check->token == token))
	{
		if (unlikely(check->userid != GetUserId()))
			refuse_changed_context("current role");
		return check;
	}
	if (cl_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger must be loaded via shared_preload_libraries")));
	if (IsParallelWorker() && cl_debug_worker_wait > 0)
		debug_worker_wait();
	check_opened_context(fcinfo->flinfo, false);
	refresh_purposes();
	for (int i = 0; i < nviews; i++)
		if (views[i].token == token)
		{
			purpose = views[i].purpose;
			view = views[i].view;
		}
	if (purpose < 0 || !purposes[purpose].defined ||
		pg_class_aclcheck(view, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for purpose view \"%s\"",
						OidIsValid(view) && get_rel_name(view) ? get_rel_name(view) : "?"),
				 errhint("Read the purpose view itself; its owner grants SELECT on it.")));
	return make_check(fcinfo->flinfo, purpose, token, view);
}

/*
 * The body of every policy-check entry point: validate the statement (once
 * per statement), decide for the subject unless the purpose needs no
 * consent, count refusals at this evaluation site for the read's audit
 * record (cl_policy_site_refused).
 */
#define POLICY_CHECK(check_expr, decision_expr) \
	do { \
		StatementCheck *c = (check_expr); \
		bool		ok = !c->consent_basis || (decision_expr); \
		\
		if (!ok) \
			c->refused++; \
		PG_RETURN_BOOL(ok); \
	} while (0)

/* consent_ledger.allowed(subject): the row policy of protected tables */
Datum
cl_allowed_text(PG_FUNCTION_ARGS)
{
	POLICY_CHECK(guc_statement_check(fcinfo),
				 allowed_text(c, PG_GETARG_TEXT_PP(0)));
}

Datum
cl_allowed_int8(PG_FUNCTION_ARGS)
{
	POLICY_CHECK(guc_statement_check(fcinfo),
				 allowed_int(c, PG_GETARG_INT64(0)));
}

Datum
cl_allowed_int4(PG_FUNCTION_ARGS)
{
	POLICY_CHECK(guc_statement_check(fcinfo),
				 allowed_int(c, (int64) PG_GETARG_INT32(0)));
}

Datum
cl_allowed_uuid(PG_FUNCTION_ARGS)
{
	POLICY_CHECK(guc_statement_check(fcinfo),
				 allowed_uuid(c, PG_GETARG_UUID_P(0)));
}

/* consent_ledger.view_allows(view, subject): the filter of purpose views */
Datum
cl_view_allows_text(PG_FUNCTION_ARGS)
{
	POLICY_CHECK(view_statement_check(fcinfo, PG_GETARG_INT64(0)),
				 allowed_text(c, PG_GETARG_TEXT_PP(1)));
}

Datum
cl_view_allows_int8(PG_FUNCTION_ARGS)
{
	POLICY_CHECK(view_statement_check(fcinfo, PG_GETARG_INT64(0)),
				 allowed_int(c, PG_GETARG_INT64(1)));
}

Datum
cl_view_allows_int4(PG_FUNCTION_ARGS)
{
	POLICY_CHECK(view_statement_check(fcinfo, PG_GETARG_INT64(0)),
				 allowed_int(c, (int64) PG_GETARG_INT32(1)));
}

Datum
cl_view_allows_uuid(PG_FUNCTION_ARGS)
{
	POLICY_CHECK(view_statement_check(fcinfo, PG_GETARG_INT64(0)),
				 allowed_uuid(c, PG_GETARG_UUID_P(1)));
}

/*
 * Whether finfo is an evaluation site of a policy check (allowed() or
 * view_allows()), and if so how many rows it refused so far and, for a
 * purpose view's filter, which view.  The audit reads this from the
 * compiled quals of a query's scans (audit.c), so that rows_withheld is
 * counted per relation and per statement.  A site that has not run yet
 * refused nothing.  Reads only; never raises.
 */
bool
cl_policy_site_refused(FmgrInfo *finfo, uint64 *refused, Oid *view)
{
	PGFunction	f = finfo->fn_addr;
	StatementCheck *check;

	if (f != cl_allowed_text && f != cl_allowed_int8 && f != cl_allowed_int4 &&
		f != cl_allowed_uuid && f != cl_view_allows_text && f != cl_view_allows_int8 &&
		f != cl_view_allows_int4 && f != cl_view_allows_uuid)
		return false;
	check = finfo->fn_extra;
	*refused = check ? check->refused : 0;
	*view = check ? check->view : InvalidOid;
	return true;
}

/*
 * check hook of consent_ledger.purpose.  When set in the session (SET,
 * set_config(), a function's SET clause as it runs), refuse purposes the
 * current role may not declare.  Elsewhere (startup options, configuration
 * files, ALTER ROLE/DATABASE ... SET and CREATE FUNCTION ... SET, which
 * PostgreSQL checks as PGC_S_TEST on behalf of some other role, parallel
 * workers) the value is accepted here and checked when first used.
 */
bool
cl_check_purpose(char **newval, void **extra, GucSource source)
{
	int			idx;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (strlen(*newval) > MAX_PURPOSE_NAME)
	{
		GUC_check_errdetail("A purpose name has at most %d bytes.", MAX_PURPOSE_NAME);
		return false;
	}

	/*
	 * From every source (startup options are not converted from the
	 * client's encoding, and role settings are shared by databases of
	 * different encodings): the purpose goes into audit records, which
	 * must stay valid in the database encoding.
	 */
	if (!pg_verifymbstr(*newval, strlen(*newval), true))
	{
		GUC_check_errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE);
		GUC_check_errdetail("A purpose name must be valid in the database encoding (%s).",
							GetDatabaseEncodingName());
		GUC_check_errhint("Declare the purpose with SET, which converts from the client encoding.");
		return false;
	}
	if (source != PGC_S_SESSION || !IsTransactionState() || IsParallelWorker() ||
		!IsNormalProcessingMode() || cl_shared == NULL || !cl_extension_present())
		return true;
	refresh_purposes();
	idx = purpose_index(*newval, false);
	if (idx < 0 || !purposes[idx].defined)
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("purpose \"%s\" is not defined", *newval);
		GUC_check_errhint("An administrator defines purposes with consent_ledger.define_purpose().");
		return false;
	}
	if (!role_authorized(GetUserId(), idx))
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("role \"%s\" is not authorized for purpose \"%s\"",
						 GetUserNameFromId(GetUserId(), false), *newval);
		GUC_check_errhint("An administrator grants purposes with consent_ledger.authorize_purpose().");
		return false;
	}
	return true;
}

/* assign hook of consent_ledger.purpose */
void
cl_assign_purpose(const char *newval, void *extra)
{
	purpose_assignments++;
}

/* ---------- administration ---------- */

static void
require_purpose(const char *purpose)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(purpose)};

	if (SPI_execute_with_args("SELECT 1 FROM consent_ledger.purposes WHERE purpose OPERATOR(pg_catalog.=) $1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.purposes");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("purpose \"%s\" does not exist", purpose),
				 errhint("Define it with consent_ledger.define_purpose().")));
}

static void
change_grant(Oid role, const char *purpose, bool grant)
{
	Oid			owner = cl_extension_owner();
	char	   *sql;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", role)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	require_purpose(purpose);
	if (grant)
		sql = psprintf("INSERT INTO consent_ledger.purpose_grants (role, purpose, granted_at) "
					   "VALUES (%u::pg_catalog.oid, %s, pg_catalog.now()) ON CONFLICT DO NOTHING",
					   role, quote_literal_cstr(purpose));
	else
		sql = psprintf("DELETE FROM consent_ledger.purpose_grants WHERE role OPERATOR(pg_catalog.=) %u::pg_catalog.oid "
					   "AND purpose OPERATOR(pg_catalog.=) %s",
					   role, quote_literal_cstr(purpose));
	cl_run_as_owner(sql, owner);
	cl_run_as_owner("SELECT consent_ledger._purposes_changed()", owner);
	SPI_finish();
}

/* consent_ledger.authorize_purpose(role regrole, purpose text) */
Datum
cl_authorize_purpose(PG_FUNCTION_ARGS)
{
	change_grant(PG_GETARG_OID(0), text_to_cstring(PG_GETARG_TEXT_PP(1)), true);
	PG_RETURN_VOID();
}

/* consent_ledger.revoke_purpose(role regrole, purpose text) */
Datum
cl_revoke_purpose(PG_FUNCTION_ARGS)
{
	change_grant(PG_GETARG_OID(0), text_to_cstring(PG_GETARG_TEXT_PP(1)), false);
	PG_RETURN_VOID();
}

/* Whether a relation is protected (for the guard and the audit). */
bool
cl_is_protected(Oid relid)
{
	return cl_registry_lookup("protected", relid, 0, NULL, NULL);
}

/*
 * The same two questions for the executor hook, from the cache (reloaded
 * when purposes, authorizations, views or protections change): asked for
 * every relation of every statement, so no table scans.
 */
bool
cl_is_protected_cached(Oid relid)
{
	refresh_purposes();
	for (int i = 0; i < nprotected; i++)
		if (protected_rels[i] == relid)
			return true;
	return false;
}

/* The protected tables, from the cache. */
List *
cl_protected_relids(void)
{
	List	   *result = NIL;

	refresh_purposes();
	for (int i = 0; i < nprotected; i++)
		result = lappend_oid(result, protected_rels[i]);
	return result;
}

/* Whether a schema holds a purpose view. */
bool
cl_purpose_views_in(Oid nsp)
{
	refresh_purposes();
	for (int i = 0; i < nviews; i++)
		if (views[i].purpose >= 0 && get_rel_namespace(views[i].view) == nsp)
			return true;
	return false;
}

Oid
cl_view_base_cached(Oid view)
{
	refresh_purposes();
	for (int i = 0; i < nviews; i++)
		if (views[i].view == view && views[i].purpose >= 0)
			return views[i].base;
	return InvalidOid;
}

const char *
cl_view_purpose_cached(Oid view)
{
	refresh_purposes();
	for (int i = 0; i < nviews; i++)
		if (views[i].view == view && views[i].purpose >= 0)
			return purposes[views[i].purpose].name;
	return NULL;
}

/* SQL text of the policy-check call for a subject column of type typid */
static char *
check_call(const char *fn, const char *prefix, const char *colref, Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
		case INT8OID:
		case INT4OID:
		case UUIDOID:
			return psprintf("consent_ledger.%s(%s%s)", fn, prefix, colref);
		case INT2OID:
			return psprintf("consent_ledger.%s(%s%s::pg_catalog.int4)", fn, prefix, colref);
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
			return psprintf("consent_ledger.%s(%s%s::pg_catalog.text)", fn, prefix, colref);
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("subject column has type %s", format_type_be(typid)),
					 errhint("Subject columns must be text, varchar, integer, bigint, smallint or uuid.")));
	}
	return NULL;
}

/*
 * Protects one table (an ordinary table, a partitioned table or one of
 * its partitions): enables and forces row-level security with the consent
 * policies, registers it and takes it into custody.  The caller owns it.
 * A partition is protected only under a protected parent, with the
 * parent's subject column (partition.c keeps the tree whole).  Must be
 * called inside SPI.
 */
void
cl_protect_one(Oid relid, const char *column)
{
	Relation	rel;
	AttrNumber	att;
	Oid			typid;
	char	   *qname;
	char	   *call;
	Oid			save_userid;
	int			save_sec;
	char		relkind;

	rel = cl_open_owned_table(relid, AccessExclusiveLock);
	relkind = rel->rd_rel->relkind;
	if ((relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) ||
		(rel->rd_rel->relispartition && !cl_partition_parent_protected(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an ordinary or partitioned table", RelationGetRelationName(rel)),
				 rel->rd_rel->relispartition ?
				 errdetail("\"%s\" is a partition of a table that is not protected: read through its parent it would escape the policy.",
						   RelationGetRelationName(rel)) :
				 errdetail("Only tables can be protected."),
				 rel->rd_rel->relispartition ?
				 errhint("Protect the partitioned table: every partition, present and future, is protected with it.") :
				 errhint("Protect the table the view or relation reads from.")));
	att = get_attnum(relid, column);
	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, RelationGetRelationName(rel))));
	typid = get_atttype(relid, att);
	qname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									   RelationGetRelationName(rel));
	if (!cl_is_protected(relid))
	{
		cl_check_protectable(rel);
		cl_refuse_if_published(relid);
	}
	relation_close(rel, NoLock);
	if (cl_is_protected(relid))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" is already protected", get_rel_name(relid))));
	call = check_call("allowed", "", quote_identifier(column), getBaseType(typid));

	/* DDL as the owner (the caller), who may alter the table */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	cl_internal_ddl = true;
	PG_TRY();
	{
		const char *stmts[5];

		stmts[0] = psprintf("ALTER TABLE ONLY %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY", qname);
		stmts[1] = psprintf("CREATE POLICY " POLICY_NAME " ON %s AS PERMISSIVE FOR SELECT USING (%s)", qname, call);
		stmts[2] = psprintf("CREATE POLICY consent_ledger_insert ON %s AS PERMISSIVE FOR INSERT WITH CHECK (true)", qname);
		/* rows a statement may change are rows it may see: else a trigger could read them */
		stmts[3] = psprintf("CREATE POLICY consent_ledger_update ON %s AS PERMISSIVE FOR UPDATE USING (%s) WITH CHECK (true)", qname, call);
		stmts[4] = psprintf("CREATE POLICY consent_ledger_delete ON %s AS PERMISSIVE FOR DELETE USING (%s)", qname, call);
		for (int i = 0; i < 5; i++)
			if (SPI_execute(stmts[i], false, 0) < 0)
				elog(ERROR, "could not protect \"%s\"", qname);
	}
	PG_FINALLY();
	{
		cl_internal_ddl = false;
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	cl_run_as_owner(psprintf("INSERT INTO consent_ledger.protected (relid, subject_column, protected_at) "
							 "VALUES (%u::pg_catalog.oid, %s, pg_catalog.now())",
							 relid, quote_literal_cstr(column)), cl_extension_owner());
	cl_take_custody(relid);
}

/*
 * consent_ledger.protect(relation regclass, subject_column name)
 *
 * Enables and forces row-level security with a SELECT policy that shows a
 * row only when its subject consented to the session's declared purpose;
 * UPDATE and DELETE reach only such rows too (a trigger or a RETURNING
 * clause would otherwise see the others), INSERT is not restricted
 * (privileges govern writes).  A partitioned table is protected with
 * every partition (partition.c), so that a partition read directly is
 * held to the same policy; partitions created or attached later are
 * protected by the DDL that adds them.
 * Warns about roles that bypass row-level security or replicate (REPLICATION).
 */
Datum
cl_protect(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *column = NameStr(*PG_GETARG_NAME(1));
	StringInfoData bypass;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_protect_one(relid, column);
	cl_partition_protect_children(relid, column);
	cl_run_as_owner("SELECT consent_ledger._purposes_changed()", cl_extension_owner());

	/* who can read it without the policy? */
	if (SPI_execute("SELECT pg_catalog.string_agg(pg_catalog.quote_ident(rolname), ', ' ORDER BY rolname) "
					"FROM pg_catalog.pg_roles WHERE (rolsuper OR rolbypassrls OR rolreplication) "
					"AND oid OPERATOR(pg_catalog.<>) 10", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_roles");
	initStringInfo(&bypass);
	if (SPI_processed == 1)
	{
		char	   *names = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (names != NULL)
			appendStringInfoString(&bypass, names);
	}
	SPI_finish();
	if (bypass.len > 0)
		ereport(WARNING,
				(errmsg("roles %s bypass row-level security or replicate and can read \"%s\" without consent checks",
						bypass.data, get_rel_name(relid)),
				 errdetail("Superusers and roles with BYPASSRLS are not subject to row-level security policies; "
						   "roles with REPLICATION read every row, hidden ones included and unaudited, through logical decoding or a base backup."),
				 errhint("Remove SUPERUSER, BYPASSRLS or REPLICATION from roles that must not read personal data without consent.")));
	PG_RETURN_VOID();
}

/*
 * Removes what cl_protect_one() did, for one table.  Must be called
 * inside SPI; the caller owns the table (or is the custodian's member).
 */
void
cl_unprotect_one(Oid relid)
{
	Relation	rel;
	char	   *qname;
	Oid			save_userid;
	int			save_sec;

	rel = cl_open_owned_table(relid, AccessExclusiveLock);
	qname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									   RelationGetRelationName(rel));
	relation_close(rel, NoLock);
	if (!cl_is_protected(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid))));
	GetUserIdAndSecContext(&save_userid, &save_sec);
	cl_internal_ddl = true;
	PG_TRY();
	{
		const char *stmts[5];

		stmts[0] = psprintf("DROP POLICY " POLICY_NAME " ON %s", qname);
		stmts[1] = psprintf("DROP POLICY consent_ledger_insert ON %s", qname);
		stmts[2] = psprintf("DROP POLICY consent_ledger_update ON %s", qname);
		stmts[3] = psprintf("DROP POLICY consent_ledger_delete ON %s", qname);
		stmts[4] = psprintf("ALTER TABLE ONLY %s NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY", qname);
		for (int i = 0; i < 5; i++)
			if (SPI_execute(stmts[i], false, 0) < 0)
				elog(ERROR, "could not unprotect \"%s\"", qname);
	}
	PG_FINALLY();
	{
		cl_internal_ddl = false;
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	cl_release_custody(relid);
	cl_run_as_owner(psprintf("DELETE FROM consent_ledger.protected WHERE relid OPERATOR(pg_catalog.=) %u::pg_catalog.oid",
							 relid), cl_extension_owner());
}

/*
 * consent_ledger.unprotect(relation regclass): removes what protect() did,
 * from a partitioned table's partitions too (a partition cannot be
 * unprotected alone while its parent is protected).
 * Purpose views over the table keep filtering by consent.
 */
Datum
cl_unprotect(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cl_partition_refuse_unprotect_member(relid);
	cl_partition_unprotect_children(relid);
	cl_unprotect_one(relid);
	cl_run_as_owner("SELECT consent_ledger._purposes_changed()", cl_extension_owner());
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * consent_ledger.create_purpose_view(relation, purpose, view_name) RETURNS regclass
 *
 * A security-barrier view bound to one purpose: analysts granted SELECT on
 * it see exactly the consented rows and need no setting.  The view belongs
 * to the extension's owner, so the base table's session-purpose policy
 * does not apply to it; its own filter names the view by a random token
 * (stable across dump and restore, unlike its OID), and the check verifies
 * that whoever evaluates it may read the view the token belongs to.  The caller gets
 * SELECT on it WITH GRANT OPTION.
 */
Datum
cl_create_purpose_view(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *purpose = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *view_name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Oid			owner = cl_extension_owner();
	List	   *names;
	RangeVar   *rv;
	Oid			nsp;
	char	   *qview;
	char	   *qrel;
	char	   *column = NULL;
	char	   *call;
	Oid			viewid;
	int64		token;
	Oid			types[1] = {OIDOID};
	Datum		vals[1] = {ObjectIdGetDatum(relid)};
	AclResult	acl;

	relation_close(cl_open_owned_table(relid, AccessShareLock), NoLock);
	names = stringToQualifiedNameList(view_name);
	rv = makeRangeVarFromNameList(names);
	nsp = RangeVarGetAndCheckCreationNamespace(rv, NoLock, NULL);
	acl = pg_namespace_aclcheck(nsp, GetUserId(), ACL_CREATE);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_SCHEMA, get_namespace_name(nsp));
	qview = quote_qualified_identifier(get_namespace_name(nsp), rv->relname);
	qrel = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	require_purpose(purpose);
	if (SPI_execute_with_args("SELECT subject_column FROM consent_ledger.protected WHERE relid OPERATOR(pg_catalog.=) $1",
							  1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.protected");
	if (SPI_processed == 1)
		column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not protected", get_rel_name(relid)),
				 errhint("Call consent_ledger.protect() on it first.")));

	randombytes_buf(&token, sizeof(token));
	token &= PG_INT64_MAX;
	call = check_call("view_allows", psprintf(INT64_FORMAT "::pg_catalog.int8, t.", token),
					  quote_identifier(column),
					  getBaseType(get_atttype(relid, get_attnum(relid, column))));
	/* a partitioned table's rows are in its partitions: no ONLY there */
	cl_run_as_owner(psprintf("CREATE VIEW %s WITH (security_barrier) AS SELECT t.* FROM %s%s AS t WHERE %s",
							 qview, get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
							 qrel, call), owner);
	CommandCounterIncrement();
	viewid = RangeVarGetRelid(makeRangeVar(get_namespace_name(nsp), rv->relname, -1), NoLock, false);
	cl_run_as_owner(psprintf("GRANT SELECT ON %s TO %s WITH GRANT OPTION", qview,
							 quote_identifier(GetUserNameFromId(GetUserId(), false))), owner);
	cl_run_as_owner(psprintf("INSERT INTO consent_ledger.purpose_views (view, relid, purpose, token, created_at) "
							 "VALUES (%u::pg_catalog.oid, %u::pg_catalog.oid, %s, " INT64_FORMAT ", pg_catalog.now())",
							 viewid, relid, quote_literal_cstr(purpose), token), owner);
	cl_run_as_owner("SELECT consent_ledger._purposes_changed()", owner);
	SPI_finish();
	PG_RETURN_OID(viewid);
}

void
cl_policy_init(void)
{

}

/*
 * check hook of consent_ledger.parallel_inputs: nobody sets it (not a
 * superuser either: SET, startup options, ALTER ROLE/DATABASE SET,
 * function SET clauses); only cl_policy_run_begin, and PostgreSQL copying
 * the leader's value into a parallel worker.  A role able to set it could
 * make a statement decide with a horizon from before a withdrawal.
 */
bool
cl_check_parallel_inputs(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0' || setting_parallel_inputs ||
		InitializingParallelWorker || IsParallelWorker())
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("consent_ledger.parallel_inputs cannot be set");
	GUC_check_errdetail("It carries a statement's consent horizon from the leader of a parallel query to its workers.");
	GUC_check_errhint("consent_ledger sets it itself; there is nothing to configure.");
	return false;
}

/*
 * From the ExecutorRun hook, before the plan runs: when the plan may start
 * parallel workers (parallelModeNeeded; whether the run is the only one
 * does not matter, the inputs stay those of the executor state), fix the
 * executor state's inputs now, before any worker exists, and hand them to
 * the workers in consent_ledger.parallel_inputs (set at a new GUC nest
 * level, undone by cl_policy_run_end, or by the (sub)transaction's abort
 * on error).  Returns that nest level, or -1.
 */
int
cl_policy_run_begin(QueryDesc *queryDesc, void **saved)
{
	OpenedQuery *q = NULL;
	char		buf[128];
	int			nest;

	*saved = running_parallel;
	if (cl_shared == NULL || IsParallelWorker() || IsInParallelMode() ||
		queryDesc->estate == NULL || queryDesc->plannedstmt == NULL ||
		!queryDesc->plannedstmt->parallelModeNeeded || !IsTransactionState())
		return -1;
	for (OpenedQuery *o = opened_queries; o != NULL; o = o->next)
		if (o->cxt == queryDesc->estate->es_query_cxt)
			q = o;
	if (q == NULL || !OidIsValid(cl_check_incarnation()))
		return -1;
	if (!q->in.fixed)
		fix_inputs(&q->in);
	q->in.parallel = true;
	snprintf(buf, sizeof(buf), "%u:%u:" INT64_FORMAT ":" INT64_FORMAT ":" UINT64_FORMAT,
			 MyDatabaseId, q->in.incarnation, q->in.horizon, (int64) q->in.now,
			 q->in.generation);
	nest = NewGUCNestLevel();
	setting_parallel_inputs = true;
	PG_TRY();
	{
		(void) set_config_option("consent_ledger.parallel_inputs", buf,
								 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, ERROR, false);
	}
	PG_FINALLY();
	{
		setting_parallel_inputs = false;
	}
	PG_END_TRY();
	running_parallel = &q->in;
	return nest;
}

void
cl_policy_run_end(int nestlevel, void *saved)
{
	running_parallel = saved;
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);
}

/* When the run fails: must not raise (the GUC level goes with the abort). */
void
cl_policy_run_failed(void *saved)
{
	running_parallel = saved;
}
