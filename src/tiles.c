/*-------------------------------------------------------------------------
 * tiles.c
 *	  Stored subtree hashes: what lets a proof read O(log n) hashes
 *	  instead of the whole log (README "Stored tree hashes").
 *
 * consent_ledger.tree_hashes holds, for every ledger, the hash of every
 * complete subtree of height 8, 16, 24, ... (level 1, 2, 3, ...): the
 * entries of the C2SP tlog-tiles tiles of level >= 1, one hash a row,
 * keyed (ledger_id, level, idx).  Level 0 -- the leaf hashes -- is the log
 * itself (consent_ledger.log).  A node of level L and index j is
 * MTH(D[j * 256^L : (j + 1) * 256^L]); once complete it never changes,
 * whatever the tree size, because the log only grows.
 *
 * Writing: cl_tiles_append(), called by the sealer for every log row it
 * inserts, hashes the nodes the new leaves complete (255 node hashes per
 * 256 leaves, and 255 per 256 nodes above) and inserts them.  The few
 * hashes of an incomplete node that came before (at most 255 per level)
 * are read back from the log and from tree_hashes.
 *
 * Reading: a ClTreeReader answers MTH(D[lo:hi]) for any node of the
 * RFC 9162 tree (cl_tree_range_hash in merkle.c splits it into aligned
 * perfect subtrees) from at most 128 hashes of one level per subtree.  It
 * keeps one window of 256 hashes (one tile) per level, so a proof costs
 * about two queries per level and 8 KiB per level of memory.  A stored
 * node that is missing (a table restored from a dump made before 1.3, or
 * deleted rows) is recomputed from the level below -- slower, never wrong.
 * A stored node that is wrong makes the proof's path disagree with the
 * signed root, so clients reject it; verify() recomputes every stored node
 * from the log's leaves (ClTilesChecker) and reports one that differs.
 *
 * Every function here runs with SPI connected.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "consent_ledger.h"

PG_FUNCTION_INFO_V1(cl_build_tree_hashes_sql);

#define W			CL_TILE_WIDTH
#define MAX_LEVELS	8			/* 8 levels of 8 bits: 2^64 leaves */

typedef struct TreeWindow
{
	bool		loaded;
	uint64		base;			/* index of hashes[0]: a multiple of W */
	bool		have[W];
	cl_hash		hashes[W];
} TreeWindow;

struct ClTreeReader
{
	int32		ledger_id;
	bool		read_only;
	TreeWindow	win[MAX_LEVELS];
	bool		stored;			/* tree_hashes exists */
	bool		no_recompute;	/* the sealer's: a missing hash is not recomputed */
	bool		unavailable;	/* ... and is noted here (zeros returned) */
	uint64		queries;		/* statistics, for DEBUG1 */
	uint64		recomputed;
};

static SPIPlanPtr leaves_plan = NULL;
static SPIPlanPtr nodes_plan = NULL;
static SPIPlanPtr insert_plan = NULL;

static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "could not prepare a query of consent_ledger.tree_hashes: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*slot = p;
	}
	return *slot;
}

/*
 * Whether consent_ledger.tree_hashes exists: the library also serves
 * databases whose extension is not yet updated to 1.3.  There nothing is
 * stored, and readers recompute every node from the leaves.
 */
static bool
tree_hashes_present(void)
{
	Oid			nsp = cl_schema_oid(true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("tree_hashes", nsp));
}

ClTreeReader *
cl_tree_reader_create(int32 ledger_id, bool read_only)
{
	ClTreeReader *r = palloc0(sizeof(ClTreeReader));

	r->ledger_id = ledger_id;
	r->read_only = read_only;
	r->stored = tree_hashes_present();
	return r;
}

/*
 * Loads the leaf hashes of [base, base + W) that the log holds: the log
 * rows overlapping the range, each sliced (a log row's leaves are stored
 * uncompressed, so only the slice is read from TOAST).
 */
static void
load_leaves(ClTreeReader *r, TreeWindow *w)
{
	Oid			types[3] = {INT4OID, INT8OID, INT8OID};
	Datum		vals[3] = {Int32GetDatum(r->ledger_id), Int64GetDatum((int64) w->base),
	Int64GetDatum((int64) (w->base + W))};
	SPIPlanPtr	plan = keep_plan(&leaves_plan,
								 "SELECT first_leaf, nleaves::pg_catalog.int8, leaves FROM consent_ledger.log "
								 "WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
								 "AND first_leaf OPERATOR(pg_catalog.<) $3 "
								 "AND first_leaf OPERATOR(pg_catalog.>=) "
								 "(SELECT pg_catalog.max(l.first_leaf) FROM consent_ledger.log l "
								 " WHERE l.ledger_id OPERATOR(pg_catalog.=) $1 "
								 " AND l.first_leaf OPERATOR(pg_catalog.<=) $2) "
								 "ORDER BY first_leaf",
								 3, types);

	if (SPI_execute_plan(plan, vals, NULL, r->read_only, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.log");
	r->queries++;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		first = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		int64		n = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
		Datum		leaves = SPI_getbinval(t, d, 3, &isnull);
		uint64		from,
					to;
		bytea	   *slice;

		if (isnull || n <= 0 || first < 0 ||
			toast_raw_datum_size(leaves) != VARHDRSZ + (Size) n * CL_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("log row of ledger %d at leaf " INT64_FORMAT " is malformed",
							r->ledger_id, first),
					 errhint("Run consent_ledger.verify() on the ledger.")));
		from = Max((uint64) first, w->base);
		to = Min((uint64) first + (uint64) n, w->base + W);
		if (from >= to)
			continue;
		slice = DatumGetByteaPSlice(leaves, (int32) ((from - (uint64) first) * CL_HASH_LEN),
									(int32) ((to - from) * CL_HASH_LEN));
		if (VARSIZE_ANY_EXHDR(slice) != (to - from) * CL_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("log row of ledger %d at leaf " INT64_FORMAT " is malformed",
							r->ledger_id, first),
					 errhint("Run consent_ledger.verify() on the ledger.")));
		memcpy(w->hashes[from - w->base], VARDATA_ANY(slice), (to - from) * CL_HASH_LEN);
		for (uint64 k = from; k < to; k++)
			w->have[k - w->base] = true;
	}
	SPI_freetuptable(SPI_tuptable);
}

/* Loads the stored nodes of one level in [base, base + W). */
static void
load_nodes(ClTreeReader *r, int level, TreeWindow *w)
{
	Oid			types[4] = {INT4OID, INT2OID, INT8OID, INT8OID};
	Datum		vals[4] = {Int32GetDatum(r->ledger_id), Int16GetDatum((int16) level),
		Int64GetDatum((int64) w->base), Int64GetDatum((int64) (w->base + W))};
	SPIPlanPtr	plan = keep_plan(&nodes_plan,
								 "SELECT idx, hash FROM consent_ledger.tree_hashes "
								 "WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
								 "AND level OPERATOR(pg_catalog.=) $2 "
								 "AND idx OPERATOR(pg_catalog.>=) $3 AND idx OPERATOR(pg_catalog.<) $4",
								 4, types);

	if (SPI_execute_plan(plan, vals, NULL, r->read_only, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read consent_ledger.tree_hashes");
	r->queries++;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		n1,
					n2;
		int64		idx = DatumGetInt64(SPI_getbinval(t, d, 1, &n1));
		Datum		h = SPI_getbinval(t, d, 2, &n2);
		bytea	   *b;

		if (n1 || n2)
			continue;
		b = DatumGetByteaPP(h);
		/* a malformed row counts as missing: the node is recomputed */
		if (VARSIZE_ANY_EXHDR(b) != CL_HASH_LEN)
			continue;
		memcpy(w->hashes[idx - (int64) w->base], VARDATA_ANY(b), CL_HASH_LEN);
		w->have[idx - (int64) w->base] = true;
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Writes count hashes of a level, from index first, to out.  The range
 * lies within one window of W.  Leaves the log does not hold are an
 * error; a missing stored node is recomputed from the level below.
 */
static void
level_hashes(ClTreeReader *r, int level, uint64 first, uint64 count, cl_hash *out)
{
	TreeWindow *w;
	uint64		base = first - first % W;

	if (level < 0 || level >= MAX_LEVELS || count == 0 || first - base + count > W)
		elog(ERROR, "stored tree hash request out of range (level %d, first " UINT64_FORMAT ", count " UINT64_FORMAT ")",
			 level, first, count);
	w = &r->win[level];
	if (!w->loaded || w->base != base)
	{
		memset(w->have, 0, sizeof(w->have));
		w->base = base;
		w->loaded = true;
		if (level == 0)
			load_leaves(r, w);
		else if (r->stored)
			load_nodes(r, level, w);
	}
	for (uint64 k = 0; k < count; k++)
	{
		uint64		slot = first - base + k;

		if (!w->have[slot] && r->no_recompute)
		{
			r->unavailable = true;
			memset(out[k], 0, CL_HASH_LEN);
			continue;
		}
		if (!w->have[slot])
		{
			cl_hash    *below;

			if (level == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("the log of ledger %d has no leaf " UINT64_FORMAT,
								r->ledger_id, first + k),
						 errhint("Run consent_ledger.verify() on the ledger.")));
			below = palloc(sizeof(cl_hash) * W);
			level_hashes(r, level - 1, (first + k) * W, W, below);
			cl_merkle_root((const cl_hash *) below, W, w->hashes[slot]);
			pfree(below);
			w->have[slot] = true;
			r->recomputed++;
			/* the level below may have moved its window: ours is intact */
		}
		memcpy(out[k], w->hashes[slot], CL_HASH_LEN);
	}
}

static void
level_hashes_cb(void *ctx, int level, uint64_t first, uint64_t count, cl_hash *out)
{
	level_hashes((ClTreeReader *) ctx, level, first, count, out);
}

/* out = MTH(D[lo:hi]) for a node [lo, hi) of the tree (see merkle.h) */
void
cl_tree_range(void *reader, uint64_t lo, uint64_t hi, cl_hash out)
{
	CHECK_FOR_INTERRUPTS();
	cl_tree_range_hash(level_hashes_cb, reader, CL_TILE_HEIGHT, lo, hi, out);
}

/* The leaf hash at position i of the log. */
void
cl_tree_leaf(ClTreeReader *r, uint64 i, cl_hash out)
{
	level_hashes(r, 0, i, 1, (cl_hash *) out);
}

void
cl_tree_reader_stats(ClTreeReader *r, uint64 *queries, uint64 *recomputed)
{
	*queries = r->queries;
	*recomputed = r->recomputed;
}

/*
 * Inserts the nodes of a level from index first on whose known[] is true
 * (count in all).  A NULL element is left out.
 */
static void
insert_nodes(int32 ledger_id, int level, uint64 first, const cl_hash *h, const bool *known,
			 uint64 count)
{
	Oid			types[4] = {INT4OID, INT2OID, INT8OID, BYTEAARRAYOID};
	Datum		vals[4];
	Datum	   *elems = palloc(sizeof(Datum) * count);
	bool	   *nulls = palloc(sizeof(bool) * count);
	int			dims[1] = {(int) count};
	int			lbs[1] = {1};
	uint64		nknown = 0;
	SPIPlanPtr	plan = keep_plan(&insert_plan,
								 "INSERT INTO consent_ledger.tree_hashes (ledger_id, level, idx, hash) "
								 "SELECT $1, $2, $3 OPERATOR(pg_catalog.+) u.o OPERATOR(pg_catalog.-) 1, u.h "
								 "FROM pg_catalog.unnest($4) WITH ORDINALITY AS u(h, o) WHERE u.h IS NOT NULL",
								 4, types);

	for (uint64 k = 0; k < count; k++)
	{
		bytea	   *b;

		nulls[k] = !known[k];
		elems[k] = (Datum) 0;
		if (!known[k])
			continue;
		b = palloc(VARHDRSZ + CL_HASH_LEN);
		SET_VARSIZE(b, VARHDRSZ + CL_HASH_LEN);
		memcpy(VARDATA(b), h[k], CL_HASH_LEN);
		elems[k] = PointerGetDatum(b);
		nknown++;
	}
	if (nknown == 0)
		return;
	vals[0] = Int32GetDatum(ledger_id);
	vals[1] = Int16GetDatum((int16) level);
	vals[2] = Int64GetDatum((int64) first);
	vals[3] = PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(plan, vals, NULL, false, 0) != SPI_OK_INSERT ||
		SPI_processed != nknown)
		elog(ERROR, "could not insert into consent_ledger.tree_hashes");
}

/*
 * cl_tiles_append
 *		Stores the subtree hashes completed by appending the n leaf hashes
 *		at positions first .. first + n - 1 to a ledger's log.
 *
 * Called by the sealer (round_new_leaves() in seal.c) for every log row a
 * round writes, in the round's transaction (so a round that rolls back
 * takes its stored hashes with it).  Level by level: the new nodes of
 * level L + 1 are the blocks of 256 level-L hashes that end inside the new
 * range; the part of the first block that came before (at most 255
 * hashes) is read back from the log and tree_hashes.  A hash of that part
 * that is not there (leaves missing from the log, a stored node missing)
 * is not recomputed -- that could read the whole history -- and the nodes
 * that depend on it are not stored (proofs recompute missing nodes,
 * verify() does not count them as problems).  Costs about n / 255 node
 * hashes beyond the leaves' own, at most 255 hashes read back per level,
 * and one INSERT per level that gained nodes; memory n / 256 hashes.
 */
void
cl_tiles_append(int32 ledger_id, uint64 first, const cl_hash *hashes, uint64 n)
{
	ClTreeReader *r;
	const cl_hash *cur = hashes;
	const bool *cur_known = NULL;	/* NULL: all known */
	uint64		base = first;	/* index of cur[0] at this level */
	uint64		end = first + n;	/* complete nodes at this level */
	int			level = 0;
	cl_hash    *block = palloc(sizeof(cl_hash) * W);
	MemoryContext mcxt = AllocSetContextCreate(CurrentMemoryContext,
											   "consent_ledger tree hashes",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(mcxt);

	r = cl_tree_reader_create(ledger_id, false);
	r->no_recompute = true;
	if (!r->stored)
		level = MAX_LEVELS;		/* extension not updated to 1.3 yet */
	while (level + 1 < MAX_LEVELS)
	{
		uint64		pbase = base / W;
		uint64		pend = end / W;
		cl_hash    *parents;
		bool	   *known;

		if (pend <= pbase)
			break;
		parents = palloc_extended(sizeof(cl_hash) * (pend - pbase), MCXT_ALLOC_HUGE);
		known = palloc_extended(sizeof(bool) * (pend - pbase), MCXT_ALLOC_HUGE);
		for (uint64 j = pbase; j < pend; j++)
		{
			uint64		start = j * W;
			uint64		from = Max(start, base);
			bool		ok = true;

			if (cur_known != NULL)
				for (uint64 k = from; k < start + W && ok; k++)
					ok = cur_known[k - base];
			if (ok && start < base)
			{
				/* the block began before this append: read its first part */
				uint64		before = base - start;

				r->unavailable = false;
				level_hashes(r, level, start, before, block);
				ok = !r->unavailable;
				memcpy(block[before], cur[0], (W - before) * CL_HASH_LEN);
				if (ok)
					cl_merkle_root((const cl_hash *) block, W, parents[j - pbase]);
			}
			else if (ok)
				cl_merkle_root(cur + (start - base), W, parents[j - pbase]);
			known[j - pbase] = ok;
			if (!ok)
				memset(parents[j - pbase], 0, CL_HASH_LEN);
		}
		insert_nodes(ledger_id, level + 1, pbase, parents, known, pend - pbase);
		cur = parents;
		cur_known = known;
		base = pbase;
		end = pend;
		level++;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(mcxt);
	pfree(block);
}

/*
 * consent_ledger._build_tree_hashes() RETURNS bigint (1.2 -> 1.3 update
 * only): stores the subtree hashes of every ledger's existing log, one
 * log row at a time, as the sealer would have.  Returns the number of
 * leaves covered.
 */
Datum
cl_build_tree_hashes_sql(PG_FUNCTION_ARGS)
{
	Portal		portal;
	int64		total = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("DELETE FROM consent_ledger.tree_hashes", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not empty consent_ledger.tree_hashes");
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT ledger_id, first_leaf, nleaves::pg_catalog.int8, leaves FROM consent_ledger.log "
									   "ORDER BY ledger_id, first_leaf",
									   0, NULL, NULL, NULL, false, 0);
	for (;;)
	{
		SPITupleTable *tt;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, 16);
		if (SPI_processed == 0)
			break;
		tt = SPI_tuptable;
		nrows = SPI_processed;
		for (uint64 i = 0; i < nrows; i++)
		{
			bool		isnull;
			int32		ledger_id = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
			int64		first = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
			int64		n = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
			bytea	   *leaves = DatumGetByteaPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));

			CHECK_FOR_INTERRUPTS();
			/* a malformed row is left for verify() to report */
			if (n > 0 && first >= 0 && VARSIZE_ANY_EXHDR(leaves) == (Size) n * CL_HASH_LEN)
				cl_tiles_append(ledger_id, (uint64) first,
								(const cl_hash *) VARDATA_ANY(leaves), (uint64) n);
			total += n;
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	PG_RETURN_INT64(total);
}

/*
 * Verification of the stored hashes against the log's leaves, streamed:
 * the leaves are fed in log order; every 256 hashes of a level make a
 * node of the level above, which is compared with the stored one (one
 * cursor per level, read in index order).  Memory: one tile per level.
 */
typedef struct CheckLevel
{
	int			fill;
	cl_hash		block[W];
	uint64		computed;		/* nodes of this level computed so far */
	Portal		cursor;			/* stored nodes of this level, by idx */
	SPITupleTable *rows;
	uint64		nrows;
	uint64		next;
	bool		done;
} CheckLevel;

struct ClTilesChecker
{
	int32		ledger_id;
	bool		stored;			/* tree_hashes exists */
	CheckLevel	lv[MAX_LEVELS];
	uint64		leaves;
	uint64		changed;
	uint64		missing;
	uint64		extra;
	uint64		first_pos;
	char	   *problem;
	bool		node_ready;		/* a leaf completed a level-1 node (cl_tiles_check_leaf_node) */
	cl_hash		node;
};

ClTilesChecker *
cl_tiles_check_begin(int32 ledger_id)
{
	ClTilesChecker *c = palloc0(sizeof(ClTilesChecker));

	c->ledger_id = ledger_id;
	c->stored = tree_hashes_present();
	c->first_pos = PG_UINT64_MAX;
	return c;
}

static void
check_problem(ClTilesChecker *c, uint64 pos, char *msg)
{
	if (c->problem == NULL || pos < c->first_pos)
	{
		c->first_pos = pos;
		c->problem = msg;
	}
}

static uint64
node_first_leaf(int level, uint64 idx)
{
	return idx << (level * CL_TILE_HEIGHT);
}

/* Next stored row of a level (idx, hash), or false when there is none. */
static bool
next_stored(ClTilesChecker *c, int level, int64 *idx, bytea **hash)
{
	CheckLevel *l = &c->lv[level];

	if (l->done || !c->stored)
		return false;
	if (l->cursor == NULL)
	{
		Oid			types[2] = {INT4OID, INT2OID};
		Datum		vals[2] = {Int32GetDatum(c->ledger_id), Int16GetDatum((int16) level)};

		l->cursor = SPI_cursor_open_with_args(NULL,
											  "SELECT idx, hash FROM consent_ledger.tree_hashes "
											  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
											  "AND level OPERATOR(pg_catalog.=) $2 ORDER BY idx",
											  2, types, vals, NULL, true, 0);
	}
	if (l->rows == NULL || l->next >= l->nrows)
	{
		if (l->rows != NULL)
			SPI_freetuptable(l->rows);
		SPI_cursor_fetch(l->cursor, true, W);
		l->rows = SPI_tuptable;
		l->nrows = SPI_processed;
		l->next = 0;
		if (l->nrows == 0)
		{
			SPI_freetuptable(l->rows);
			l->rows = NULL;
			SPI_cursor_close(l->cursor);
			l->cursor = NULL;
			l->done = true;
			return false;
		}
	}
	{
		HeapTuple	t = l->rows->vals[l->next];
		bool		n1,
					n2;
		Datum		h;

		*idx = DatumGetInt64(SPI_getbinval(t, l->rows->tupdesc, 1, &n1));
		h = SPI_getbinval(t, l->rows->tupdesc, 2, &n2);
		*hash = n2 ? NULL : DatumGetByteaPP(h);
	}
	return true;
}

/* Compares the computed node (level, idx) with the stored one. */
static void
check_node(ClTilesChecker *c, int level, uint64 idx, const cl_hash h)
{
	int64		sidx;
	bytea	   *shash;

	while (next_stored(c, level, &sidx, &shash))
	{
		CheckLevel *l = &c->lv[level];

		if (sidx > (int64) idx)
			break;				/* ours is missing: recomputed when needed */
		l->next++;
		if (sidx < (int64) idx)
		{
			/* only a negative index can come before (rows are by idx) */
			c->extra++;
			check_problem(c, 0, psprintf("stored tree hash at level %d index " INT64_FORMAT " names no subtree",
										 level, sidx));
			continue;
		}
		if (shash == NULL || VARSIZE_ANY_EXHDR(shash) != CL_HASH_LEN ||
			memcmp(VARDATA_ANY(shash), h, CL_HASH_LEN) != 0)
		{
			uint64		from = node_first_leaf(level, idx);

			c->changed++;
			check_problem(c, from,
						  psprintf("changed stored tree hash at level %d index " UINT64_FORMAT " (leaves " UINT64_FORMAT " to " UINT64_FORMAT "): it is not the hash of the log's leaves",
								   level, idx, from, node_first_leaf(level, idx + 1) - 1));
		}
		return;
	}
	c->missing++;
}

static void
feed(ClTilesChecker *c, int level, const cl_hash h)
{
	CheckLevel *l = &c->lv[level];

	memcpy(l->block[l->fill++], h, CL_HASH_LEN);
	if (l->fill == W && level + 1 < MAX_LEVELS)
	{
		cl_hash		parent;
		uint64		idx = c->lv[level + 1].computed++;

		cl_merkle_root((const cl_hash *) l->block, W, parent);
		l->fill = 0;
		if (level == 0)
		{
			memcpy(c->node, parent, CL_HASH_LEN);
			c->node_ready = true;
		}
		check_node(c, level + 1, idx, parent);
		feed(c, level + 1, parent);
	}
	else if (l->fill == W)
		l->fill = 0;
}

/* The next leaf hash of the log, in log order. */
void
cl_tiles_check_leaf(ClTilesChecker *c, const cl_hash leaf)
{
	c->leaves++;
	feed(c, 0, leaf);
}

/*
 * cl_tiles_check_leaf(), and when that leaf completes a level-1 node (the
 * root of leaves 256k .. 256k + 255), true with that node in *node: a
 * caller that needs the tree's root too (verify()) builds it from these
 * nodes instead of hashing the same subtrees again.
 */
bool
cl_tiles_check_leaf_node(ClTilesChecker *c, const cl_hash leaf, cl_hash node)
{
	c->node_ready = false;
	cl_tiles_check_leaf(c, leaf);
	if (!c->node_ready)
		return false;
	memcpy(node, c->node, CL_HASH_LEN);
	return true;
}

/*
 * Ends the check: stored rows past what the log's leaves complete are
 * extra.  Returns the first problem (its first leaf in *pos) or NULL;
 * *nproblems counts changed and extra stored hashes.  Missing ones are
 * not a problem (proofs recompute them) and are counted in *missing.
 */
char *
cl_tiles_check_end(ClTilesChecker *c, uint64 *pos, int64 *nproblems, uint64 *missing)
{
	for (int level = 1; level < MAX_LEVELS; level++)
	{
		int64		sidx;
		bytea	   *shash;

		while (next_stored(c, level, &sidx, &shash))
		{
			c->lv[level].next++;
			c->extra++;
			check_problem(c, Min(c->leaves, node_first_leaf(level, Max(sidx, 0))),
						  psprintf("extra stored tree hash at level %d index " INT64_FORMAT ": the log's " UINT64_FORMAT " leaves do not complete that subtree",
								   level, sidx, c->leaves));
		}
	}
	if (c->stored)
	{
		Oid			types[2] = {INT4OID, INT2OID};
		Datum		vals[2] = {Int32GetDatum(c->ledger_id), Int16GetDatum(MAX_LEVELS)};

		if (SPI_execute_with_args("SELECT level FROM consent_ledger.tree_hashes "
								  "WHERE ledger_id OPERATOR(pg_catalog.=) $1 "
								  "AND (level OPERATOR(pg_catalog.<) 1 OR level OPERATOR(pg_catalog.>=) $2) LIMIT 1",
								  2, types, vals, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read consent_ledger.tree_hashes");
		if (SPI_processed > 0)
		{
			c->extra++;
			check_problem(c, 0, pstrdup("stored tree hash at a level that does not exist"));
		}
	}
	*pos = c->first_pos;
	*nproblems = (int64) (c->changed + c->extra);
	*missing = c->missing;
	return c->problem;
}
