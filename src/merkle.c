/*-------------------------------------------------------------------------
 * merkle.c
 *	  RFC 9162 section 2.1 Merkle tree hashing, the compact right-edge
 *	  "frontier", and inclusion / consistency proof generation and
 *	  verification.
 *
 * Pure C99 + sha256.h; no PostgreSQL headers.  See merkle.h for
 * the contract.
 *
 * Notation used in the comments below follows RFC 9162: D[n] is the list of
 * n leaf hashes, MTH(D[n]) its Merkle tree hash, and for n > 1 the tree is
 * split at k, the largest power of two strictly smaller than n, into
 * D[0:k] (a perfect tree) and D[k:n].
 *
 * Nothing in this file recurses: every tree walk is an explicit loop that
 * descends from the root, so stack use is bounded by a fixed number of
 * hashes (at most 64 levels) no matter how many leaves there are.
 *-------------------------------------------------------------------------
 */
#include "merkle.h"

#include <string.h>

#include "sha256.h"

static const uint8_t leaf_prefix = 0x00;
static const uint8_t node_prefix = 0x01;

static uint64_t split_point(uint64_t n);
static int	popcount64(uint64_t v);
static bool hash_equal(const cl_hash a, const cl_hash b);
static void reverse_hashes(cl_hash *h, int count);
static bool leaf_count_ok(uint64_t n);

/*
 * split_point
 *		Largest power of two strictly smaller than n.
 *
 * Requires n >= 2; the result k satisfies n/2 <= k < n.  Written so that no
 * intermediate value overflows, even for n close to UINT64_MAX.
 */
static uint64_t
split_point(uint64_t n)
{
	uint64_t	k = 1;

	/* "k < n - k" is "2k < n" without the overflow of 2k */
	while (k < n - k)
		k <<= 1;
	return k;
}

/*
 * popcount64
 *		Number of set bits in v (0..64).
 */
static int
popcount64(uint64_t v)
{
	int			count = 0;

	while (v != 0)
	{
		v &= v - 1;
		count++;
	}
	return count;
}

/*
 * hash_equal
 *		True iff the two digests are byte-for-byte identical.
 *
 * Tree hashes are public values, so an ordinary memcmp is adequate.
 */
static bool
hash_equal(const cl_hash a, const cl_hash b)
{
	return memcmp(a, b, CL_HASH_LEN) == 0;
}

/*
 * reverse_hashes
 *		Reverse the order of h[0 .. count-1] in place.
 *
 * Proof generation walks the tree from the root down, which yields the
 * proof in root-first order; RFC 9162 lists it leaf-first.
 */
static void
reverse_hashes(cl_hash *h, int count)
{
	int			i = 0;
	int			j = count - 1;

	while (i < j)
	{
		cl_hash		tmp;

		memcpy(tmp, h[i], CL_HASH_LEN);
		memcpy(h[i], h[j], CL_HASH_LEN);
		memcpy(h[j], tmp, CL_HASH_LEN);
		i++;
		j--;
	}
}

/*
 * leaf_count_ok
 *		True iff an in-memory array of n leaf hashes is addressable at all.
 *
 * Proof generation indexes a caller-supplied array of n hashes; a count that
 * cannot be the length of any array in this address space is rejected as
 * out of range instead of letting pointer arithmetic overflow.  It also
 * keeps every generated proof far below CL_MAX_PROOF hashes.
 */
static bool
leaf_count_ok(uint64_t n)
{
	return n <= (uint64_t) (SIZE_MAX / sizeof(cl_hash));
}

/*
 * cl_leaf_hash
 *		out = SHA-256(0x00 || data[0 .. len-1]).
 *
 * data may be NULL when len is 0.  The prefix is streamed into the hash
 * state, so data is never copied.  out may not overlap data.
 */
void
cl_leaf_hash(const uint8_t *data, size_t len, cl_hash out)
{
	cl_sha256_part parts[2] = {{&leaf_prefix, 1}, {data, len}};

	cl_sha256_parts(parts, 2, out);
}

/*
 * cl_node_hash
 *		out = SHA-256(0x01 || left || right).
 *
 * out may alias left and/or right: both inputs are fully absorbed into the
 * hash state before out is written.
 */
void
cl_node_hash(const cl_hash left, const cl_hash right, cl_hash out)
{
	cl_sha256_part parts[3] = {{&node_prefix, 1}, {left, CL_HASH_LEN}, {right, CL_HASH_LEN}};

	cl_sha256_parts(parts, 3, out);
}

/*
 * cl_merkle_root
 *		out = MTH(leaves[0 .. n-1]); for n == 0, SHA-256 of the empty string.
 *
 * Runs in O(n) time (exactly n - 1 node hashes) and O(log n) extra memory
 * by streaming the leaves through a frontier kept on the stack.  leaves may
 * be NULL when n is 0.
 */
void
cl_merkle_root(const cl_hash *leaves, uint64_t n, cl_hash out)
{
	cl_frontier f;
	uint64_t	i;

	cl_frontier_init(&f);
	for (i = 0; i < n; i++)
		cl_frontier_append(&f, leaves[i]);
	cl_frontier_root(&f, out);
}

/*
 * cl_frontier_init
 *		Make f the frontier of the empty tree (size 0, all nodes zeroed).
 */
void
cl_frontier_init(cl_frontier *f)
{
	memset(f, 0, sizeof(*f));
}

/*
 * cl_frontier_append
 *		Extend the tree described by f by one leaf hash.
 *
 * Like a binary counter increment: the new leaf is merged with the perfect
 * subtrees for the trailing set bits of size (each of them lies directly to
 * its left), and the merged subtree is stored at the first clear bit.
 * O(log n) time.  Afterwards f describes the tree of size + 1 leaves.
 *
 * A frontier already holding UINT64_MAX leaves cannot grow (the size would
 * wrap and there is no slot for a 2^64-leaf subtree); it is left unchanged.
 * Callers that can get anywhere near that must check f->size themselves,
 * since this function has no way to report the condition.
 */
void
cl_frontier_append(cl_frontier *f, const cl_hash leaf)
{
	cl_hash		carry;
	int			level = 0;

	if (f->size == UINT64_MAX)
		return;

	memcpy(carry, leaf, CL_HASH_LEN);
	while ((f->size >> level) & 1)
	{
		/* nodes[level] is the left sibling of the subtree being carried */
		cl_node_hash(f->nodes[level], carry, carry);
		level++;
	}
	/* level <= 63 here, because size != UINT64_MAX has a clear bit */
	memcpy(f->nodes[level], carry, CL_HASH_LEN);

	/* the merged lower slots are no longer meaningful; keep them zeroed */
	if (level > 0)
		memset(f->nodes, 0, (size_t) level * CL_HASH_LEN);
	f->size++;
}

/*
 * cl_frontier_root
 *		out = MTH of the tree described by f.
 *
 * The right edge of an RFC 9162 tree is the sequence of perfect subtrees
 * for the set bits of size, largest (leftmost) first, and MTH nests them
 * right-to-left: H(big, H(medium, small)).  So fold from the least
 * significant set bit upward.  The empty tree gives SHA-256("").
 */
void
cl_frontier_root(const cl_frontier *f, cl_hash out)
{
	cl_hash		acc;
	bool		have = false;
	int			level;

	if (f->size == 0)
	{
		cl_sha256(NULL, 0, out);
		return;
	}

	for (level = 0; level < 64; level++)
	{
		if (!((f->size >> level) & 1))
			continue;
		if (!have)
		{
			memcpy(acc, f->nodes[level], CL_HASH_LEN);
			have = true;
		}
		else
			cl_node_hash(f->nodes[level], acc, acc);
	}
	memcpy(out, acc, CL_HASH_LEN);
}

/*
 * cl_frontier_serialized_len
 *		Length in bytes of the serialized frontier of a tree of size leaves:
 *		8 + 32 * popcount(size).
 *
 * The result is at most 8 + 32 * 64 = 2056, so it cannot overflow size_t.
 */
size_t
cl_frontier_serialized_len(uint64_t size)
{
	return 8 + (size_t) popcount64(size) * CL_HASH_LEN;
}

/*
 * cl_frontier_serialize
 *		Write f to out: 8-byte big-endian size, then nodes[i] for every set
 *		bit i of size, most significant bit first.
 *
 * out must have room for cl_frontier_serialized_len(f->size) bytes; exactly
 * that many are written.
 */
void
cl_frontier_serialize(const cl_frontier *f, uint8_t *out)
{
	int			i;
	int			level;
	uint8_t    *p = out;

	for (i = 0; i < 8; i++)
		*p++ = (uint8_t) (f->size >> (56 - 8 * i));

	for (level = 63; level >= 0; level--)
	{
		if ((f->size >> level) & 1)
		{
			memcpy(p, f->nodes[level], CL_HASH_LEN);
			p += CL_HASH_LEN;
		}
	}
}

/*
 * cl_frontier_deserialize
 *		Parse len bytes at in (the format of cl_frontier_serialize) into f.
 *
 * Returns false, leaving f untouched, unless len is at least 8 and exactly
 * equals cl_frontier_serialized_len() of the encoded size; so truncated or
 * extended buffers are rejected and nothing beyond in[len - 1] is read.
 * On success f->nodes is zeroed for every clear bit of f->size.  (Any
 * 32-byte value is a possible subtree root, so the contents of the node
 * hashes cannot be checked here.)
 */
bool
cl_frontier_deserialize(const uint8_t *in, size_t len, cl_frontier *f)
{
	uint64_t	size = 0;
	const uint8_t *p;
	int			i;
	int			level;

	if (in == NULL || len < 8)
		return false;

	for (i = 0; i < 8; i++)
		size = (size << 8) | in[i];

	/* serialized_len() <= 2056, so this comparison cannot be fooled */
	if (len != cl_frontier_serialized_len(size))
		return false;

	memset(f, 0, sizeof(*f));
	f->size = size;
	p = in + 8;
	for (level = 63; level >= 0; level--)
	{
		if ((size >> level) & 1)
		{
			memcpy(f->nodes[level], p, CL_HASH_LEN);
			p += CL_HASH_LEN;
		}
	}
	return true;
}

/* the array source: MTH of leaves[lo .. hi-1] */
static void
array_range_hash(void *ctx, uint64_t lo, uint64_t hi, cl_hash out)
{
	const cl_hash *leaves = ctx;

	cl_merkle_root(leaves + lo, hi - lo, out);
}

/*
 * cl_inclusion_proof
 *		Write the RFC 9162 2.1.3.1 inclusion proof PATH(index, D[size]) to
 *		out and return its length, or -1 if index >= size (or size is
 *		larger than any addressable leaf array).
 *
 * The proof is leaf-first: out[0] is the sibling of the leaf, the last
 * element is the sibling of the root's child on the leaf's side.  At most
 * ceil(log2(size)) <= CL_MAX_PROOF hashes are written.
 *
 * With the array source, every sibling subtree is hashed with
 * cl_merkle_root.  Those subtrees are disjoint, so the total cost is
 * O(size) hashes and O(log size) memory.
 */
int
cl_inclusion_proof(const cl_hash *leaves, uint64_t size, uint64_t index,
				   cl_hash *out)
{
	if (leaves == NULL || !leaf_count_ok(size))
		return -1;
	return cl_inclusion_proof_from(array_range_hash, (void *) leaves, size, index, out);
}

/*
 * cl_inclusion_proof_from
 *		cl_inclusion_proof with the sibling subtrees' hashes asked of fn.
 *
 * The walk descends from the root; at each node fn is asked for the hash
 * of the subtree not containing the leaf: at most ceil(log2(size)) calls.
 */
int
cl_inclusion_proof_from(cl_range_hash_fn fn, void *ctx, uint64_t size,
						uint64_t index, cl_hash *out)
{
	uint64_t	lo = 0;			/* first leaf of the current subtree */
	uint64_t	n = size;		/* leaves in the current subtree */
	uint64_t	m = index;		/* target leaf, relative to lo */
	int			count = 0;

	if (fn == NULL || out == NULL || index >= size)
		return -1;

	while (n > 1)
	{
		uint64_t	k = split_point(n);

		if (count >= CL_MAX_PROOF)
			return -1;			/* cannot happen: n at least halves */

		if (m < k)
		{
			/* leaf is on the left: the right subtree D[k:n] is a sibling */
			fn(ctx, lo + k, lo + n, out[count++]);
			n = k;
		}
		else
		{
			/* leaf is on the right: the left subtree D[0:k] is a sibling */
			fn(ctx, lo, lo + k, out[count++]);
			lo += k;
			m -= k;
			n -= k;
		}
	}

	reverse_hashes(out, count);
	return count;
}

/*
 * cl_consistency_proof
 *		Write the RFC 9162 2.1.4.1 consistency proof
 *		PROOF(old_size, D[new_size]) = SUBPROOF(old_size, D[new_size], true)
 *		to out and return its length, or -1 if old_size == 0,
 *		old_size > new_size (or new_size is larger than any addressable leaf
 *		array).
 *
 * Equal sizes give the empty proof (0).  The proof is leaf-first as in the
 * RFC.  Runs in O(new_size) hashes and O(log new_size) memory, like
 * cl_inclusion_proof.
 */
int
cl_consistency_proof(const cl_hash *leaves, uint64_t old_size,
					 uint64_t new_size, cl_hash *out)
{
	if (leaves == NULL || !leaf_count_ok(new_size))
		return -1;
	return cl_consistency_proof_from(array_range_hash, (void *) leaves,
									 old_size, new_size, out);
}

/*
 * cl_consistency_proof_from
 *		cl_consistency_proof with the subtrees' hashes asked of fn (at most
 *		ceil(log2(new_size)) + 1 calls).
 */
int
cl_consistency_proof_from(cl_range_hash_fn fn, void *ctx, uint64_t old_size,
						  uint64_t new_size, cl_hash *out)
{
	uint64_t	lo = 0;			/* first leaf of the current subtree */
	uint64_t	n = new_size;	/* leaves in the current subtree */
	uint64_t	m = old_size;	/* old leaves inside the current subtree */
	bool		whole_old = true;	/* SUBPROOF's "b" flag */
	int			count = 0;

	if (fn == NULL || out == NULL || old_size == 0 || old_size > new_size)
		return -1;

	/* invariant: 1 <= m <= n; the loop runs while the subtree has new leaves */
	while (m < n)
	{
		uint64_t	k = split_point(n); /* n >= 2 because m >= 1 */

		if (count >= CL_MAX_PROOF)
			return -1;			/* cannot happen for addressable sizes */

		if (m <= k)
		{
			/* old leaves all on the left: prove D[k:n] as a sibling */
			fn(ctx, lo + k, lo + n, out[count++]);
			n = k;
		}
		else
		{
			/* left subtree D[0:k] entirely old: give it, go right */
			fn(ctx, lo, lo + k, out[count++]);
			lo += k;
			m -= k;
			n -= k;
			whole_old = false;
		}
	}

	/*
	 * m == n: SUBPROOF(m, D[m], true) is empty (the verifier already knows
	 * the old root); with b == false the subtree's own hash is needed.
	 */
	if (!whole_old)
	{
		if (count >= CL_MAX_PROOF)
			return -1;
		fn(ctx, lo, lo + n, out[count++]);
	}

	reverse_hashes(out, count);
	return count;
}

/*
 * cl_tree_range_hash
 *		out = MTH(D[lo:hi]) from stored subtree hashes (see merkle.h).
 *
 * For a node of the RFC 9162 tree, lo is a multiple of a power of two at
 * least hi - lo, so taking at each step the largest aligned power of two
 * that fits gives perfect subtrees of strictly decreasing size: exactly
 * the right edge of the node, which MTH nests right to left.  A perfect
 * subtree of height h = level * tile_height + r (r < tile_height) is the
 * root of the 2^r stored hashes of that level below it.  At most 64
 * subtrees, each from at most 2^(tile_height - 1) hashes on the stack.
 * The empty range gives SHA-256("").
 */
void
cl_tree_range_hash(cl_level_hashes_fn fn, void *ctx, int tile_height,
				   uint64_t lo, uint64_t hi, cl_hash out)
{
	cl_hash		parts[64];
	cl_hash		buf[1 << (CL_TILE_HEIGHT - 1)];
	int			nparts = 0;

	if (tile_height < 1 || tile_height > CL_TILE_HEIGHT)
		tile_height = CL_TILE_HEIGHT;
	if (hi <= lo)
	{
		cl_sha256(NULL, 0, out);
		return;
	}
	while (lo < hi && nparts < 64)
	{
		int			h = 0;
		int			level;
		int			r;
		uint64_t	count;

		/* the largest aligned perfect subtree starting at lo that fits */
		while (h < 63 && (lo & ((UINT64_C(2) << h) - 1)) == 0 &&
			   (UINT64_C(2) << h) <= hi - lo)
			h++;
		level = h / tile_height;
		r = h % tile_height;
		count = UINT64_C(1) << r;
		fn(ctx, level, lo >> (level * tile_height), count, buf);
		cl_merkle_root((const cl_hash *) buf, count, parts[nparts++]);
		lo += UINT64_C(1) << h;
	}
	while (nparts > 1)
	{
		cl_node_hash(parts[nparts - 2], parts[nparts - 1], parts[nparts - 2]);
		nparts--;
	}
	memcpy(out, parts[0], CL_HASH_LEN);
}

/*
 * cl_verify_inclusion
 *		True iff proof[0 .. prooflen-1] proves that leaf is the leaf hash at
 *		position index of the tree of size leaves whose root is root
 *		(RFC 9162 2.1.3.2).
 *
 * False for index >= size and for any proof of the wrong length; at most
 * prooflen elements are read (proof may be NULL when prooflen is 0).  The
 * loop does at most 64 iterations whatever prooflen is.
 */
bool
cl_verify_inclusion(uint64_t index, uint64_t size, const cl_hash leaf,
					const cl_hash *proof, size_t prooflen,
					const cl_hash root)
{
	uint64_t	fn;
	uint64_t	sn;
	cl_hash		r;
	size_t		i;

	if (index >= size)
		return false;
	if (prooflen > 0 && proof == NULL)
		return false;

	fn = index;
	sn = size - 1;
	memcpy(r, leaf, CL_HASH_LEN);

	for (i = 0; i < prooflen; i++)
	{
		/* proof longer than the path from the leaf to the root */
		if (sn == 0)
			return false;

		if ((fn & 1) || fn == sn)
		{
			/* proof[i] is a left sibling */
			cl_node_hash(proof[i], r, r);
			/* skip levels where the node is a lone right-edge child */
			if (!(fn & 1))
			{
				while (fn != 0 && !(fn & 1))
				{
					fn >>= 1;
					sn >>= 1;
				}
			}
		}
		else
		{
			/* proof[i] is a right sibling */
			cl_node_hash(r, proof[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}

	/* sn != 0 means the proof was too short */
	return sn == 0 && hash_equal(r, root);
}

/*
 * cl_verify_consistency
 *		True iff proof[0 .. prooflen-1] proves that the tree of old_size
 *		leaves with root old_root is a prefix of the tree of new_size leaves
 *		with root new_root (RFC 9162 2.1.4.2).
 *
 * False when old_size == 0 or old_size > new_size.  For equal sizes the
 * proof must be empty and the roots equal.  Otherwise the proof must be
 * non-empty and of exactly the right length; at most prooflen elements are
 * read (proof may be NULL when prooflen is 0) and the loop does at most 64
 * iterations whatever prooflen is.
 *
 * When old_size is a power of two the RFC prepends old_root to the proof;
 * here that is done virtually, by seeding the running hashes with old_root
 * instead of proof[0], so the proof is never copied.
 */
bool
cl_verify_consistency(uint64_t old_size, uint64_t new_size,
					  const cl_hash old_root, const cl_hash new_root,
					  const cl_hash *proof, size_t prooflen)
{
	uint64_t	fn;
	uint64_t	sn;
	cl_hash		fr;
	cl_hash		sr;
	size_t		i;

	if (old_size == 0 || old_size > new_size)
		return false;
	if (prooflen > 0 && proof == NULL)
		return false;

	if (old_size == new_size)
		return prooflen == 0 && hash_equal(old_root, new_root);

	/* RFC 9162 2.1.4.2 step 1 */
	if (prooflen == 0)
		return false;

	fn = old_size - 1;
	sn = new_size - 1;

	/* step 2 (virtually) and step 5 */
	if ((old_size & (old_size - 1)) == 0)
	{
		memcpy(fr, old_root, CL_HASH_LEN);
		i = 0;
	}
	else
	{
		memcpy(fr, proof[0], CL_HASH_LEN);
		i = 1;
	}
	memcpy(sr, fr, CL_HASH_LEN);

	/* step 4: climb to the root of the largest perfect old subtree */
	while (fn & 1)
	{
		fn >>= 1;
		sn >>= 1;
	}

	/* step 6 */
	for (; i < prooflen; i++)
	{
		if (sn == 0)
			return false;

		if ((fn & 1) || fn == sn)
		{
			/* proof[i] is a left sibling, inside the old tree */
			cl_node_hash(proof[i], fr, fr);
			cl_node_hash(proof[i], sr, sr);
			if (!(fn & 1))
			{
				while (fn != 0 && !(fn & 1))
				{
					fn >>= 1;
					sn >>= 1;
				}
			}
		}
		else
		{
			/* proof[i] is a right sibling, only in the new tree */
			cl_node_hash(sr, proof[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}

	/* step 7 */
	return sn == 0 && hash_equal(fr, old_root) && hash_equal(sr, new_root);
}
