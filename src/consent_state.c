/*-------------------------------------------------------------------------
 * consent_state.c
 *	  The server's one copy of the current consent state, in shared memory.
 *
 * The policy checks (policy.c) decide per row whether a subject consented
 * to a purpose.  They read this table, kept once per server rather than
 * once per backend: a new session, and every parallel worker, starts with
 * the state already in memory and its private memory does not grow with
 * the number of subjects.
 *
 * Layout (README "Consent state in shared memory").  One fixed
 * open-addressing table (linear probing) of ClCsEntry, 48 bytes each, one
 * per (database space, subject, purpose); consent_ledger.max_consent_states
 * of them may be in use, the table has a quarter more slots so that probe
 * chains stay short when it is full: 60 bytes per state.  Entries are
 * never moved or freed one by one, only turned into tombstones when the
 * space they belong to goes away, so a reader can probe without a lock.
 *
 * Spaces.  Several databases may have the extension, and it can be dropped
 * and created again (a new consent ledger whose event ids start at 1).  A
 * space is one (database, incarnation) pair (the incarnation is the OID of
 * consent_ledger.purposes, see cl_check_incarnation in policy.c); there is
 * at most one space per database, consent_ledger.max_databases of them.
 * When a database's incarnation changes the old space's entries become
 * tombstones; the space of a database that no longer exists is reclaimed
 * when a new database needs one.  Purposes get a small id (uint16) from a
 * shared dictionary of CL_CS_MAX_PURPOSES names.
 *
 * Subjects.  An integer subject (and a text subject that is the canonical
 * decimal form of an int64, as int8out prints it: "42" and 42 are the same
 * subject, as before) is stored as its int64.  Any other text subject (and
 * a uuid, by its text form) is stored as a 128-bit BLAKE2b digest
 * (crypto_generichash) keyed with a random key made when the shared
 * memory is set up.  Why a digest and not the text: entries stay fixed
 * size (subjects can be long), so the table is one array with no
 * allocator and no pointer a lock-free reader could follow into freed
 * memory.  Why keyed and 128 bits: a collision would merge two subjects'
 * consent; with a secret key nobody can search for colliding subjects
 * offline, and a chance collision among 2^32 subjects has probability
 * below 2^-64.  The digest lives only in memory, so a new key at every
 * start costs nothing.
 *
 * Writers.  The state is maintained from the consent ledger, in event id
 * order, which is commit order (recorders hold CL_LOCK_RECORDER until
 * they commit, consent.c).  Whoever sets up a policy check and finds that
 * consent_commits (bumped by every commit that recorded consent) moved
 * since the space was last brought up to date reads the new committed
 * events through the ledger's primary key and applies them, holding the
 * state lock exclusively (in batches, so that a first load of millions of
 * events can be interrupted between them).  After a restart or a crash the
 * shared memory starts empty and the first protected read in each
 * database loads the whole ledger once for the server.
 *
 * Readers never lock per row: each entry has a sequence counter (odd while
 * the single writer changes it; read, copy, re-read, as a seqlock).
 *
 * Horizons.  A statement (an executor state) fixes, when its first policy
 * check is set up or, for a parallel plan, before the leader starts its
 * workers, the highest event id applied to its space (its horizon): every
 * event committed before the statement started is at or below it.  Every
 * check of the statement, in the leader or a parallel worker, uses that
 * horizon (cl_cs_begin_at; policy.c, StatementInputs).  An entry whose latest event is
 * above the horizon was changed after the check began; it is not used as
 * is, the check reads that (subject, purpose)'s events up to the horizon
 * from the ledger instead, through its (subject, purpose, event_id) index
 * (cl_cs_get).  So the answer is the one of the moment the check was set
 * up, as when every backend had its own cache.
 *
 * Full.  When an event needs a new entry and max_consent_states are in use
 * (or the purpose dictionary is full), the space stops at that event and
 * every protected read in that database fails closed with SQLSTATE 53200,
 * naming the setting; recording consent still works (the ledger is the
 * truth), and the space catches up once there is room again.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>
#include <sys/mman.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "consent_ledger.h"

int			cl_max_consent_states = 1048576;

#define CS_TOMBSTONE	0xFFFF
#define CS_BATCH		10000	/* events applied per hold of the lock */

typedef struct ClCsEntry
{
	pg_atomic_uint32 seq;		/* odd while the writer changes the entry */
	uint16		space;			/* 0: empty, CS_TOMBSTONE, else space index + 1 */
	uint16		purpose;		/* index in the purpose dictionary */
	uint64		key[2];			/* int64 subject, 0; or a digest (key[1] odd) */
	int64		last_event;		/* latest event for (subject, purpose) */
	int64		last_withdrawal;	/* latest withdrawal; == last_event: withdrawn */
	TimestampTz expires;		/* of the latest grant; DT_NOEND for none */
} ClCsEntry;

StaticAssertDecl(sizeof(ClCsEntry) == 48, "consent state entry is 48 bytes");

typedef struct ClCsSpace
{
	Oid			dboid;			/* InvalidOid: free */
	Oid			incarnation;
	int64		applied_upto;	/* every committed event up to it is applied */
	uint64		commits_seen;	/* consent_commits the last full catch-up read */
	XLogRecPtr	replay_seen;	/* standby: replay position the last catch-up read; 0 after one on a primary */
	bool		loaded;			/* caught up at least once */
	int64		blocked_at;		/* event that did not fit, 0 when none */
	uint64		nstates;		/* entries in use */
} ClCsSpace;

typedef struct ClCsPurpose
{
	uint16		space;			/* 0: free */
	char		name[NAMEDATALEN];
} ClCsPurpose;

typedef struct ClCsShared
{
	LWLock	   *lock;
	uint8		digest_key[crypto_generichash_KEYBYTES];
	uint64		capacity;		/* slots */
	uint64		max_states;		/* consent_ledger.max_consent_states */
	uint64		live;			/* entries in use, all spaces */
	uint64		used;			/* live entries and tombstones */
	int			nspaces;
	ClCsSpace	spaces[FLEXIBLE_ARRAY_MEMBER];
	/* then CL_CS_MAX_PURPOSES ClCsPurpose, then capacity ClCsEntry */
} ClCsShared;

static ClCsShared *cs = NULL;
static ClCsPurpose *cs_purposes = NULL;
static ClCsEntry *cs_entries = NULL;

static uint64
cs_capacity(void)
{
	return (uint64) cl_max_consent_states + (uint64) cl_max_consent_states / 4 + 1;
}

static Size
cs_purposes_offset(void)
{
	return MAXALIGN(add_size(offsetof(ClCsShared, spaces),
							 mul_size(sizeof(ClCsSpace), cl_max_databases)));
}

static Size
cs_entries_offset(void)
{
	return TYPEALIGN(64, add_size(cs_purposes_offset(),
								  mul_size(sizeof(ClCsPurpose), CL_CS_MAX_PURPOSES)));
}

Size
cl_cs_shmem_size(void)
{
	return add_size(add_size(cs_entries_offset(), 64),
					mul_size(sizeof(ClCsEntry), cs_capacity()));
}

void
cl_cs_shmem_init(void)
{
	bool		found;

	/* ShmemInitStruct gives cache-line aligned memory: entries are aligned */
	cs = ShmemInitStruct("consent_ledger consent state", cl_cs_shmem_size(), &found);
	cs_purposes = (ClCsPurpose *) ((char *) cs + cs_purposes_offset());
	cs_entries = (ClCsEntry *) ((char *) cs + cs_entries_offset());
	if (found)
		return;
	memset(cs, 0, cs_entries_offset());
	cs->lock = &(GetNamedLWLockTranche("consent_ledger_state"))->lock;
	randombytes_buf(cs->digest_key, sizeof(cs->digest_key));
	cs->capacity = cs_capacity();
	cs->max_states = cl_max_consent_states;
	cs->nspaces = cl_max_databases;
	for (uint64 i = 0; i < cs->capacity; i++)
	{
		pg_atomic_init_u32(&cs_entries[i].seq, 0);
		cs_entries[i].space = 0;
	}
}

/* ---------- keys ---------- */

/* splitmix64 finalizer */
static inline uint64
mix64(uint64 z)
{
	z += UINT64CONST(0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * UINT64CONST(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void
cl_cs_key_int(int64 v, ClCsKey *key)
{
	key->k[0] = (uint64) v;
	key->k[1] = 0;
	key->hash = 0;				/* unused: see slot_of() */
}

/* Whether text is the canonical decimal form of an int64 (as int8out prints it). */
bool
cl_cs_canonical_int64(const char *s, int len, int64 *out)
{
	uint64		v = 0;
	bool		neg = false;
	int			i = 0;

	if (len == 0 || len > 20)
		return false;
	if (s[0] == '-')
	{
		neg = true;
		i = 1;
		if (len == 1)
			return false;
	}
	if (s[i] == '0' && len > i + 1)
		return false;
	if (neg && s[i] == '0')
		return false;
	for (; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (PG_UINT64_MAX - (s[i] - '0')) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (!neg && v > (uint64) PG_INT64_MAX)
		return false;
	if (neg && v > (uint64) PG_INT64_MAX + 1)
		return false;
	*out = neg ? (int64) (0 - v) : (int64) v;
	return true;
}

void
cl_cs_key_text(const char *s, int len, ClCsKey *key)
{
	int64		iv;
	uint8		d[16];

	if (cl_cs_canonical_int64(s, len, &iv))
	{
		cl_cs_key_int(iv, key);
		return;
	}
	crypto_generichash(d, sizeof(d), (const unsigned char *) s, len,
					   cs->digest_key, sizeof(cs->digest_key));
	memcpy(&key->k[0], d, 8);
	memcpy(&key->k[1], d + 8, 8);
	key->k[1] |= 1;				/* never equal to an integer key (k[1] == 0) */
	key->hash = key->k[0];		/* already uniform */
}

/*
 * The home slot of (key, space, purpose).  Integer subjects come in groups
 * of CL_CS_GROUP consecutive ids whose home slots are consecutive: dense
 * warehouse ids then sit together, and a check reads a whole group's
 * states in one sequential pass (cl_cs_get_group) instead of 64 random
 * ones.  Digests are uniform already.  Multiply-shift range reduction:
 * the capacity need not be a power of two.
 */
static inline uint64
slot_of(const ClCsKey *key, int space, int purpose)
{
	uint64		salt = ((uint64) purpose << 32) ^ (uint64) space;

	if (key->k[1] == 0)
	{
		uint64		g = key->k[0] >> CL_CS_GROUP_BITS;
		uint64		h = mix64(mix64(g) ^ salt);
		uint64		base = (uint64) (((unsigned __int128) h * cs->capacity) >> 64);

		return (base + (key->k[0] & (CL_CS_GROUP - 1))) % cs->capacity;
	}
	return (uint64) (((unsigned __int128) mix64(key->hash ^ salt) * cs->capacity) >> 64);
}

/* ---------- reading an entry ---------- */

typedef struct EntryCopy
{
	uint16		space;
	uint16		purpose;
	uint64		key[2];
	int64		last_event;
	int64		last_withdrawal;
	TimestampTz expires;
} EntryCopy;

static inline void
read_entry(ClCsEntry *e, EntryCopy *c)
{
	volatile ClCsEntry *v = e;

	for (;;)
	{
		uint32		s1 = pg_atomic_read_u32(&e->seq);
		uint32		s2;

		if (s1 & 1)
		{
			pg_spin_delay();
			continue;
		}
		pg_read_barrier();
		c->space = v->space;
		c->purpose = v->purpose;
		c->key[0] = v->key[0];
		c->key[1] = v->key[1];
		c->last_event = v->last_event;
		c->last_withdrawal = v->last_withdrawal;
		c->expires = v->expires;
		pg_read_barrier();
		s2 = pg_atomic_read_u32(&e->seq);
		if (s1 == s2)
			return;
	}
}

static inline void
write_begin(ClCsEntry *e)
{
	pg_atomic_write_u32(&e->seq, pg_atomic_read_u32(&e->seq) + 1);
	pg_write_barrier();
}

static inline void
write_end(ClCsEntry *e)
{
	pg_write_barrier();
	pg_atomic_write_u32(&e->seq, pg_atomic_read_u32(&e->seq) + 1);
}

/* ---------- spaces and purposes (state lock held) ---------- */

static void
sweep_space(int idx)
{
	uint16		tag = idx + 1;

	for (uint64 i = 0; i < cs->capacity; i++)
	{
		ClCsEntry  *e = &cs_entries[i];

		if (e->space != tag)
			continue;
		write_begin(e);
		e->space = CS_TOMBSTONE;
		write_end(e);
		cs->live--;
	}
	for (int p = 0; p < CL_CS_MAX_PURPOSES; p++)
		if (cs_purposes[p].space == tag)
			cs_purposes[p].space = 0;
	memset(&cs->spaces[idx], 0, sizeof(ClCsSpace));
}

static bool
database_exists(Oid dboid)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));

	if (!HeapTupleIsValid(tup))
		return false;
	ReleaseSysCache(tup);
	return true;
}

/*
 * The space of this database and incarnation: found, or taken (a new
 * incarnation replaces the old one's, a dropped database's is reclaimed).
 * Called with the lock held exclusively.  When every slot is taken:
 * refuse (53400), or, unless refuse, release the lock and return -1.
 */
static int
claim_space(Oid incarnation, bool refuse)
{
	int			free_idx = -1;

	for (int i = 0; i < cs->nspaces; i++)
	{
		ClCsSpace  *sp = &cs->spaces[i];

		if (sp->dboid == MyDatabaseId)
		{
			if (sp->incarnation == incarnation)
				return i;
			sweep_space(i);
			free_idx = i;
			break;
		}
		if (sp->dboid == InvalidOid && free_idx < 0)
			free_idx = i;
	}
	if (free_idx < 0)
	{
		for (int i = 0; i < cs->nspaces; i++)
			if (!database_exists(cs->spaces[i].dboid))
			{
				sweep_space(i);
				free_idx = i;
				break;
			}
	}
	if (free_idx < 0)
	{
		LWLockRelease(cs->lock);
		if (!refuse)
			return -1;
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no room for the consent state of another database"),
				 errdetail("All %d database slots of the shared consent state are used by other databases.",
						   cs->nspaces),
				 errhint("Raise consent_ledger.max_databases and restart the server.")));
	}
	cs->spaces[free_idx].dboid = MyDatabaseId;
	cs->spaces[free_idx].incarnation = incarnation;
	return free_idx;
}

/* The id of purpose in space, -1 when it has none.  Lock held. */
static int
purpose_id(int space, const char *name)
{
	for (int p = 0; p < CL_CS_MAX_PURPOSES; p++)
		if (cs_purposes[p].space == space + 1 && strcmp(cs_purposes[p].name, name) == 0)
			return p;
	return -1;
}

/* ---------- applying events (lock held exclusively) ---------- */

typedef struct PendingEvent
{
	int64		id;
	bool		grant;
	TimestampTz expires;
	ClCsKey		key;
	char		purpose[NAMEDATALEN];
} PendingEvent;

/* Applies one event; false when it does not fit. */
static bool
apply_event(int space, PendingEvent *ev)
{
	int			pid = purpose_id(space, ev->purpose);
	uint64		i;
	int64		tomb = -1;
	ClCsEntry  *e;

	if (pid < 0)
	{
		for (int p = 0; p < CL_CS_MAX_PURPOSES; p++)
			if (cs_purposes[p].space == 0)
			{
				strlcpy(cs_purposes[p].name, ev->purpose, NAMEDATALEN);
				pg_write_barrier();
				cs_purposes[p].space = space + 1;
				pid = p;
				break;
			}
		if (pid < 0)
			return false;
	}
	i = slot_of(&ev->key, space + 1, pid);
	for (uint64 n = 0; n < cs->capacity; n++)
	{
		e = &cs_entries[i];
		if (e->space == 0)
			break;
		if (e->space == CS_TOMBSTONE)
		{
			if (tomb < 0)
				tomb = i;
		}
		else if (e->space == space + 1 && e->purpose == pid &&
				 e->key[0] == ev->key.k[0] && e->key[1] == ev->key.k[1])
		{
			write_begin(e);
			e->last_event = ev->id;
			if (ev->grant)
				e->expires = ev->expires;
			else
				e->last_withdrawal = ev->id;
			write_end(e);
			return true;
		}
		if (++i == cs->capacity)
			i = 0;
	}
	/* a new entry */
	if (cs->live >= cs->max_states)
		return false;
	if (tomb >= 0)
		e = &cs_entries[tomb];
	else
	{
		if (e->space != 0 || cs->used + 1 >= cs->capacity)
			return false;
		cs->used++;
	}
	write_begin(e);
	e->purpose = pid;
	e->key[0] = ev->key.k[0];
	e->key[1] = ev->key.k[1];
	e->last_event = ev->id;
	e->last_withdrawal = ev->grant ? 0 : ev->id;
	e->expires = ev->grant ? ev->expires : DT_NOEND;
	pg_write_barrier();
	e->space = space + 1;
	write_end(e);
	cs->live++;
	cs->spaces[space].nstates++;
	return true;
}

/*
 * Brings space up to date with the consent ledger: applies the committed
 * events above applied_upto, in event id order, stopping at the first one
 * of a transaction still running (this one's included: its own recordings
 * are never in force; recorders hold CL_LOCK_RECORDER until they end, so
 * no later event id is committed yet).  Events of aborted transactions
 * are skipped.  published is consent_commits read before the scan.
 */
/* The consent ledger's subject_signature column (1.6), 0 when it has none. */
static AttrNumber
signature_attnum(TupleDesc desc)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), "subject_signature") == 0)
			return a->attnum;
	}
	return 0;
}

/*
 * Whether a grant counts: not when its purpose takes only grants the
 * subject signed (README "Subject-signed consent") and it carries no
 * signature.  record_signed_consent() verified the signature of every
 * signed event; the consent ledger's chain and verify() keep it as it was.
 */
static bool
event_counts(HeapTuple tup, TupleDesc desc, AttrNumber sigatt, const char *purpose)
{
	bool		isnull = true;

	if (!cl_purpose_signed_only(purpose))
		return true;
	if (sigatt > 0)
		(void) heap_getattr(tup, sigatt, desc, &isnull);
	return !isnull;
}

static void
catch_up(int space, Oid incarnation, uint64 published, XLogRecPtr replayed)
{
	Relation	rel = cl_open_consent_events(AccessShareLock, false);
	Oid			pkey;
	TupleDesc	desc;
	SysScanDesc scan;
	ScanKeyData skey;
	HeapTuple	tup;
	PendingEvent *batch;
	int			n;
	bool		done = false;
	int64		from;
	MemoryContext rowcxt;
	MemoryContext old;
	AttrNumber	sigatt;
	bool		any_signed_only;

	LWLockAcquire(cs->lock, LW_SHARED);
	from = cs->spaces[space].applied_upto;
	LWLockRelease(cs->lock);

	if (rel == NULL)
	{
		LWLockAcquire(cs->lock, LW_EXCLUSIVE);
		if (cs->spaces[space].dboid == MyDatabaseId &&
			cs->spaces[space].incarnation == incarnation)
		{
			cs->spaces[space].loaded = true;
			cs->spaces[space].commits_seen = Max(cs->spaces[space].commits_seen, published);
			cs->spaces[space].replay_seen = replayed == InvalidXLogRecPtr ? InvalidXLogRecPtr :
				Max(cs->spaces[space].replay_seen, replayed);
		}
		LWLockRelease(cs->lock);
		return;
	}

	batch = palloc(sizeof(PendingEvent) * CS_BATCH);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger state load",
								   ALLOCSET_SMALL_SIZES);
	desc = RelationGetDescr(rel);
	sigatt = signature_attnum(desc);
	any_signed_only = cl_signed_only_purposes_exist();
	pkey = RelationGetPrimaryKeyIndex(rel);
	ScanKeyInit(&skey, 1, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(from));
	scan = systable_beginscan(rel, pkey, OidIsValid(pkey), SnapshotAny, 1, &skey);
	while (!done)
	{
		bool		blocked = false;

		n = 0;
		while (n < CS_BATCH)
		{
			bool		isnull;
			text	   *subject;
			Datum		d;
			TransactionId xmin;

			tup = systable_getnext(scan);
			if (tup == NULL)
			{
				done = true;
				break;
			}
			xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
			if (!HeapTupleHeaderXminFrozen(tup->t_data) &&
				(TransactionIdIsCurrentTransactionId(xmin) || TransactionIdIsInProgress(xmin)))
			{
				done = true;
				break;
			}
			if (!cl_committed_state(tup->t_data))
				continue;
			/* detoasted values go to a per-row context (1.2 kept them to the end) */
			old = MemoryContextSwitchTo(rowcxt);
			batch[n].id = DatumGetInt64(heap_getattr(tup, 1, desc, &isnull));
			subject = DatumGetTextPP(heap_getattr(tup, 2, desc, &isnull));
			cl_cs_key_text(VARDATA_ANY(subject), VARSIZE_ANY_EXHDR(subject), &batch[n].key);
			d = heap_getattr(tup, 3, desc, &isnull);
			text_to_cstring_buffer(DatumGetTextPP(d), batch[n].purpose, NAMEDATALEN);
			d = heap_getattr(tup, 4, desc, &isnull);
			{
				text	   *a = DatumGetTextPP(d);

				batch[n].grant = VARSIZE_ANY_EXHDR(a) == 5 && memcmp(VARDATA_ANY(a), "grant", 5) == 0;
			}
			d = heap_getattr(tup, 5, desc, &isnull);
			batch[n].expires = isnull ? DT_NOEND : DatumGetTimestampTz(d);
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
			/* an unsigned grant for a purpose that takes only signed ones is no event */
			if (batch[n].grant && any_signed_only && !event_counts(tup, desc, sigatt, batch[n].purpose))
				continue;
			n++;
		}

		LWLockAcquire(cs->lock, LW_EXCLUSIVE);
		if (cs->spaces[space].dboid != MyDatabaseId ||
			cs->spaces[space].incarnation != incarnation)
		{
			/* the space was taken over meanwhile: the caller retries */
			LWLockRelease(cs->lock);
			break;
		}
		for (int i = 0; i < n; i++)
		{
			ClCsSpace  *sp = &cs->spaces[space];

			if (batch[i].id <= sp->applied_upto)
				continue;
			if (!apply_event(space, &batch[i]))
			{
				sp->blocked_at = batch[i].id;
				blocked = true;
				break;
			}
			sp->applied_upto = batch[i].id;
		}
		if (!blocked)
			cs->spaces[space].blocked_at = 0;
		if (done && !blocked)
		{
			cs->spaces[space].loaded = true;
			cs->spaces[space].commits_seen = Max(cs->spaces[space].commits_seen, published);
			cs->spaces[space].replay_seen = replayed == InvalidXLogRecPtr ? InvalidXLogRecPtr :
				Max(cs->spaces[space].replay_seen, replayed);
		}
		LWLockRelease(cs->lock);
		if (blocked)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	MemoryContextDelete(rowcxt);
	pfree(batch);
}

static void
refuse_full(ClCsSpace *sp_copy, bool purposes_full)
{
	if (purposes_full)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the shared consent state has no room for another purpose"),
				 errdetail("Consent events use more than %d distinct purposes across the databases of this server; "
						   "the event with id " INT64_FORMAT " could not be applied, so protected rows are not shown.",
						   CL_CS_MAX_PURPOSES, sp_copy->blocked_at),
				 errhint("Drop purposes no longer used, or the extension in databases that do not need it.")));
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("the shared consent state is full"),
			 errdetail("All " UINT64_FORMAT " consent states (one per subject and purpose with consent events, all databases) are in use; "
					   "the event with id " INT64_FORMAT " could not be applied, so protected rows are not shown. "
					   "This database holds " UINT64_FORMAT " of them.",
					   cs->max_states, sp_copy->blocked_at, sp_copy->nstates),
			 errhint("Raise consent_ledger.max_consent_states (each takes 60 bytes of shared memory) and restart the server.")));
}

/*
 * A process maps the pages of shared memory it touches one fault at a time
 * (fork does not copy the postmaster's page tables for shared mappings),
 * and a fault is expensive (tens of microseconds measured on a virtual
 * machine): a new session or parallel worker reading the groups of a
 * million subjects spread over hundreds of MB would spend seconds in
 * faults.  So once a process has read MAP_AFTER groups or entries in a
 * region of MAP_REGION bytes of the table, it maps the whole region in one
 * call (MADV_POPULATE_READ, Linux 5.14; where it is missing, pages fault in
 * as they are read).  A query reading few subjects takes the few faults it
 * needs; one reading many maps the regions it reads in batches of 512
 * pages.  Huge pages (huge_pages = on) make all this moot.
 */
#define MAP_REGION ((uintptr_t) 2 * 1024 * 1024)
#define MAP_AFTER 16

static bool cs_begin(Oid incarnation, ClCsQuery *q, bool refuse);

static uint64 *mapped_regions = NULL;
static uint8 *region_reads = NULL;

static inline void
map_region_of(uint64 slot)
{
#ifdef MADV_POPULATE_READ
	uintptr_t	base = TYPEALIGN_DOWN(MAP_REGION, (uintptr_t) cs_entries);
	uintptr_t	r = ((uintptr_t) &cs_entries[slot] - base) / MAP_REGION;

	if (unlikely(mapped_regions == NULL))
	{
		uintptr_t	nregions = ((uintptr_t) (cs_entries + cs->capacity) - base) / MAP_REGION + 1;

		mapped_regions = MemoryContextAllocZero(TopMemoryContext,
												sizeof(uint64) * (nregions / 64 + 1));
		region_reads = MemoryContextAllocZero(TopMemoryContext, nregions);
	}
	if (likely(mapped_regions[r / 64] & (UINT64CONST(1) << (r % 64))))
		return;
	if (++region_reads[r] < MAP_AFTER)
		return;
	mapped_regions[r / 64] |= UINT64CONST(1) << (r % 64);
	{
		uintptr_t	start = Max(base + r * MAP_REGION, TYPEALIGN_DOWN(4096, (uintptr_t) cs_entries));
		uintptr_t	end = Min(base + (r + 1) * MAP_REGION, (uintptr_t) (cs_entries + cs->capacity));

		(void) madvise((void *) start, end - start, MADV_POPULATE_READ);
	}
#endif
}

/*
 * Sets up q for a policy check: brings this database's space up to date
 * and fixes the horizon.  Fails closed (53200) when the state is full.
 */
void
cl_cs_begin(Oid incarnation, ClCsQuery *q)
{
	(void) cs_begin(incarnation, q, true);
}

/*
 * The horizon a statement fixes for all its checks (policy.c,
 * StatementInputs): the state brought up to date as for a check, but a
 * full state, or no free database slot (then -1), is not refused here (the
 * statement may read no protected table; its checks refuse it when they
 * are set up).
 */
int64
cl_cs_fix_horizon(Oid incarnation)
{
	ClCsQuery	q;

	(void) cs_begin(incarnation, &q, false);
	return q.horizon;
}

/*
 * Sets up q for a policy check whose horizon was fixed earlier for its
 * statement (by the leader of a parallel query, or by the statement's
 * first check): the state is brought up to date as by cl_cs_begin (and a
 * full state refused), then the check answers as of that horizon.  The
 * state of a space only grows, so it always holds the fixed horizon; if it
 * does not (the space was released and loaded again meanwhile), refuse.
 */
void
cl_cs_begin_at(Oid incarnation, int64 horizon, ClCsQuery *q)
{
	(void) cs_begin(incarnation, q, true);
	if (q->horizon < horizon || horizon < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the shared consent state is behind the horizon of this statement"),
				 errdetail("The statement fixed consent event " INT64_FORMAT " as its horizon; the shared state holds events up to " INT64_FORMAT ".",
						   horizon, q->horizon),
				 errhint("Run the statement again.")));
	q->horizon = horizon;
}

static bool
cs_begin(Oid incarnation, ClCsQuery *q, bool refuse)
{
	uint64		published;
	XLogRecPtr	replayed;
	int			space = -1;
	bool		tried = false;

	if (cs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger must be loaded via shared_preload_libraries")));

	/*
	 * Every consent commit counted here happened before this check began:
	 * the state must have read the ledger after it, and then it holds all
	 * their events (a later catch-up by any session will do).
	 */
	published = pg_atomic_read_u64(&cl_shared->consent_commits);

	/*
	 * On a hot standby nothing bumps consent_commits (the committing
	 * backend on the primary does): the events a check must see are those
	 * replayed before it began, so the state is up to date once it read the
	 * ledger after the replay position of now.  A withdrawal is in force
	 * from the first statement that begins after its commit was replayed.
	 * After a promotion, one catch-up as a primary (replay_seen 0) reads
	 * whatever was replayed last.
	 */
	replayed = RecoveryInProgress() ? GetXLogReplayRecPtr(NULL) : InvalidXLogRecPtr;
	for (;;)
	{
		ClCsSpace	copy;

		LWLockAcquire(cs->lock, LW_SHARED);
		if (space < 0 || cs->spaces[space].dboid != MyDatabaseId ||
			cs->spaces[space].incarnation != incarnation)
		{
			space = -1;
			for (int i = 0; i < cs->nspaces; i++)
				if (cs->spaces[i].dboid == MyDatabaseId &&
					cs->spaces[i].incarnation == incarnation)
					space = i;
		}
		if (space < 0)
		{
			LWLockRelease(cs->lock);
			LWLockAcquire(cs->lock, LW_EXCLUSIVE);
			space = claim_space(incarnation, refuse);
			if (space < 0)
			{
				/* no slot: the statement's checks will refuse (53400) */
				q->space = -1;
				q->horizon = -1;
				return false;
			}
			LWLockRelease(cs->lock);
			continue;
		}
		copy = cs->spaces[space];
		LWLockRelease(cs->lock);
		if (copy.loaded && copy.commits_seen >= published && copy.blocked_at == 0 &&
			(replayed == InvalidXLogRecPtr ? copy.replay_seen == InvalidXLogRecPtr :
			 copy.replay_seen >= replayed))
		{
			q->space = space;
			q->horizon = copy.applied_upto;
			return true;
		}
		if (tried && copy.blocked_at != 0 && !refuse)
		{
			q->space = space;
			q->horizon = copy.applied_upto;
			return false;
		}
		if (tried && copy.blocked_at != 0)
		{
			bool		purposes_full = true;

			for (int p = 0; p < CL_CS_MAX_PURPOSES; p++)
				if (cs_purposes[p].space == 0)
					purposes_full = false;
			refuse_full(&copy, purposes_full && cs->live < cs->max_states);
		}
		catch_up(space, incarnation, published, replayed);
		tried = true;
	}
}

/* The id of a purpose in q's space, -1 when no event names it. */
int
cl_cs_purpose_id(ClCsQuery *q, const char *name)
{
	int			id;

	LWLockAcquire(cs->lock, LW_SHARED);
	id = purpose_id(q->space, name);
	LWLockRelease(cs->lock);
	return id;
}

/*
 * The state of (subject, purpose) as of the horizon, from the ledger:
 * its latest event at or below it and its latest withdrawal.
 */
static void
exact_state(ClCsQuery *q, const char *subject, int len, const char *purpose,
			ClCsState *out)
{
	Oid			idx;
	Relation	rel;
	Relation	irel;
	ScanKeyData keys[3];
	SysScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc;
	AttrNumber	sigatt;
	bool		signed_only;

	out->found = false;
	out->last_event = out->last_withdrawal = 0;
	out->expires = DT_NOEND;
	rel = cl_open_consent_events(AccessShareLock, false);
	if (rel == NULL)
		return;
	/* looked up under the table's lock (a migration renames the old one's) */
	idx = get_relname_relid("consent_events_subject_idx", cl_schema_oid(false));
	if (!OidIsValid(idx))
	{
		table_close(rel, AccessShareLock);
		return;
	}
	irel = index_open(idx, AccessShareLock);
	if (irel->rd_index->indrelid != RelationGetRelid(rel) || irel->rd_rel->relam != BTREE_AM_OID ||
		!irel->rd_index->indisvalid || RelationGetIndexPredicate(irel) != NIL ||
		RelationGetIndexExpressions(irel) != NIL || irel->rd_index->indnkeyatts != 3 ||
		irel->rd_index->indkey.values[0] != 2 || irel->rd_index->indkey.values[1] != 3 ||
		irel->rd_index->indkey.values[2] != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("index \"%s\" is not the consent ledger's index on (subject, purpose, event_id)",
						RelationGetRelationName(irel)),
				 errdetail("The consent state is read through a valid, complete b-tree index of the consent ledger on those columns."),
				 errhint("Only the extension's owner creates objects in schema consent_ledger: recreate the index as src/consent.c does, or restore the extension's objects.")));
	desc = RelationGetDescr(rel);
	sigatt = signature_attnum(desc);
	signed_only = cl_purpose_signed_only(purpose);
	/* heap attribute numbers: systable_beginscan_ordered maps them to the index's */
	ScanKeyEntryInitialize(&keys[0], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   irel->rd_indcollation[0], F_TEXTEQ,
						   PointerGetDatum(cstring_to_text_with_len(subject, len)));
	ScanKeyEntryInitialize(&keys[1], 0, 3, BTEqualStrategyNumber, InvalidOid,
						   irel->rd_indcollation[1], F_TEXTEQ,
						   CStringGetTextDatum(purpose));
	ScanKeyEntryInitialize(&keys[2], 0, 1, BTLessEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_INT8LE, Int64GetDatum(q->horizon));
	scan = systable_beginscan_ordered(rel, irel, SnapshotAny, 3, keys);
	while ((tup = systable_getnext_ordered(scan, BackwardScanDirection)) != NULL)
	{
		bool		isnull;
		int64		id;
		text	   *a;
		bool		grant;

		if (!cl_committed_state(tup->t_data))
			continue;
		id = DatumGetInt64(heap_getattr(tup, 1, desc, &isnull));
		if (id > q->horizon)
			continue;
		a = DatumGetTextPP(heap_getattr(tup, 4, desc, &isnull));
		grant = VARSIZE_ANY_EXHDR(a) == 5 && memcmp(VARDATA_ANY(a), "grant", 5) == 0;
		if (grant && signed_only && !event_counts(tup, desc, sigatt, purpose))
			continue;
		if (!out->found)
		{
			Datum		d = heap_getattr(tup, 5, desc, &isnull);

			out->found = true;
			out->last_event = id;
			out->granted = grant;
			out->expires = (grant && !isnull) ? DatumGetTimestampTz(d) : DT_NOEND;
		}
		if (!grant)
		{
			out->last_withdrawal = id;
			break;
		}
	}
	systable_endscan_ordered(scan);
	index_close(irel, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/*
 * The state of (key, purpose) as of q's horizon.  subject/len is the
 * subject's text (for an integer key, NULL: its decimal form is used),
 * read only when the shared entry changed after the horizon.
 */
void
cl_cs_get(ClCsQuery *q, const ClCsKey *key, int pid, const char *purpose_name,
		  const char *subject, int len, ClCsState *out)
{
	uint64		i = slot_of(key, q->space + 1, pid);
	EntryCopy	c;

	map_region_of(i);
	out->found = false;
	for (uint64 n = 0; n < cs->capacity; n++)
	{
		read_entry(&cs_entries[i], &c);
		if (c.space == 0)
			return;
		if (c.space == q->space + 1 && c.purpose == pid &&
			c.key[0] == key->k[0] && c.key[1] == key->k[1])
		{
			if (c.last_event > q->horizon)
			{
				char		buf[32];

				if (subject == NULL)
				{
					len = snprintf(buf, sizeof(buf), INT64_FORMAT, (int64) key->k[0]);
					subject = buf;
				}
				exact_state(q, subject, len, purpose_name, out);
				return;
			}
			out->found = true;
			out->last_event = c.last_event;
			out->last_withdrawal = c.last_withdrawal;
			out->granted = c.last_event != c.last_withdrawal;
			out->expires = c.expires;
			return;
		}
		if (++i == cs->capacity)
			i = 0;
	}
}

/*
 * The states as of q's horizon of the CL_CS_GROUP integer subjects
 * first_key .. first_key + CL_CS_GROUP - 1 (first_key a multiple of
 * CL_CS_GROUP) for one purpose, in one sequential pass: their home slots
 * are consecutive, and each one's probe ends at the first empty slot after
 * its home, so the pass covers the home slots and goes on to the first
 * empty slot after the last of them.
 */
void
cl_cs_get_group(ClCsQuery *q, int64 first_key, int pid, const char *purpose_name,
				ClCsState *out)
{
	ClCsKey		key;
	uint64		i;
	uint64		g = (uint64) first_key >> CL_CS_GROUP_BITS;
	EntryCopy	c;

	cl_cs_key_int(first_key, &key);
	i = slot_of(&key, q->space + 1, pid);
	map_region_of(i);
	map_region_of((i + CL_CS_GROUP) % cs->capacity);
	/* the group's home slots are consecutive: ask for them all at once */
	for (int j = 0; j < CL_CS_GROUP * (int) sizeof(ClCsEntry); j += 64)
		__builtin_prefetch((char *) &cs_entries[i] + j);
	for (int j = 0; j < CL_CS_GROUP; j++)
		out[j].found = false;
	for (uint64 n = 0; n < cs->capacity; n++)
	{
		read_entry(&cs_entries[i], &c);
		if (c.space == 0 && n >= CL_CS_GROUP - 1)
			return;
		if (c.space == q->space + 1 && c.purpose == pid && c.key[1] == 0 &&
			(c.key[0] >> CL_CS_GROUP_BITS) == g)
		{
			ClCsState  *o = &out[c.key[0] & (CL_CS_GROUP - 1)];

			if (c.last_event > q->horizon)
			{
				char		buf[32];
				int			len = snprintf(buf, sizeof(buf), INT64_FORMAT, (int64) c.key[0]);

				exact_state(q, buf, len, purpose_name, o);
			}
			else
			{
				o->found = true;
				o->last_event = c.last_event;
				o->last_withdrawal = c.last_withdrawal;
				o->granted = c.last_event != c.last_withdrawal;
				o->expires = c.expires;
			}
		}
		if (++i == cs->capacity)
			i = 0;
	}
}

/* consent_ledger.consent_state_usage(): for monitoring and tests */
PG_FUNCTION_INFO_V1(cl_consent_state_usage);
Datum
cl_consent_state_usage(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {0};
	uint64		here = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("consent_state_usage() must return a record")));
	if (cs == NULL)
		cl_require_preloaded(NULL);
	LWLockAcquire(cs->lock, LW_SHARED);
	for (int i = 0; i < cs->nspaces; i++)
		if (cs->spaces[i].dboid == MyDatabaseId)
			here = cs->spaces[i].nstates;
	values[0] = Int64GetDatum((int64) cs->max_states);
	values[1] = Int64GetDatum((int64) cs->live);
	values[2] = Int64GetDatum((int64) here);
	values[3] = Int64GetDatum((int64) sizeof(ClCsEntry));
	values[4] = Int64GetDatum((int64) cl_cs_shmem_size());
	LWLockRelease(cs->lock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
