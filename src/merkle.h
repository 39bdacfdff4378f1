/*-------------------------------------------------------------------------
 * merkle.h
 *	  RFC 9162 section 2.1 Merkle tree hashing, proofs and the compact
 *	  right-edge "frontier" used to extend a log in O(log n) state.
 *
 * Pure C99 + sha256.h.  No PostgreSQL headers: this file is
 * shared by the extension, the offline verifier and the fuzzers.
 *
 * All hashes are raw 32-byte SHA-256 digests.  Leaf hash =
 * SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right); the
 * hash of the empty tree is SHA-256("").
 *-------------------------------------------------------------------------
 */
#ifndef CL_MERKLE_H
#define CL_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_HASH_LEN 32
/* the longest inclusion or consistency proof of a tree of < 2^63 leaves */
#define CL_MAX_PROOF 64

typedef uint8_t cl_hash[CL_HASH_LEN];

extern void cl_leaf_hash(const uint8_t *data, size_t len, cl_hash out);
extern void cl_node_hash(const cl_hash left, const cl_hash right, cl_hash out);

/* MTH(D[0:n]) over leaf hashes; n == 0 gives SHA-256 of the empty string */
extern void cl_merkle_root(const cl_hash *leaves, uint64_t n, cl_hash out);

/*
 * The frontier: for every set bit i of size, the root of the perfect
 * subtree of 2^i leaves on the right edge of the tree.  nodes[i] is
 * meaningful only when bit i of size is set.
 */
typedef struct cl_frontier
{
	uint64_t	size;
	cl_hash		nodes[64];
} cl_frontier;

extern void cl_frontier_init(cl_frontier *f);
extern void cl_frontier_append(cl_frontier *f, const cl_hash leaf);
extern void cl_frontier_root(const cl_frontier *f, cl_hash out);

/*
 * Serialized frontier: 8-byte big-endian size, then the subtree roots
 * for the set bits of size from the most significant to the least.
 * cl_frontier_serialized_len(size) gives the length; deserialize returns
 * false on a length mismatch.
 */
extern size_t cl_frontier_serialized_len(uint64_t size);
extern void cl_frontier_serialize(const cl_frontier *f, uint8_t *out);
extern bool cl_frontier_deserialize(const uint8_t *in, size_t len, cl_frontier *f);

/*
 * Proof generation from the leaf hashes of a tree (RFC 9162 2.1.3.1 and
 * 2.1.4.1).  leaves holds at least n (resp. new_size) hashes.  Returns
 * the number of hashes written to out (at most CL_MAX_PROOF), or -1 when
 * the arguments are out of range (index >= size, old_size > new_size,
 * old_size == 0 for consistency).
 */
extern int	cl_inclusion_proof(const cl_hash *leaves, uint64_t size,
							   uint64_t index, cl_hash *out);
extern int	cl_consistency_proof(const cl_hash *leaves, uint64_t old_size,
								 uint64_t new_size, cl_hash *out);

/*
 * Proof generation from any source of subtree hashes.  fn(ctx, lo, hi,
 * out) must set out = MTH(D[lo:hi]); it is only asked for nodes of the
 * RFC 9162 tree (ranges whose start is a multiple of a power of two at
 * least as large as their length).  The proofs are the ones the array
 * versions above give; the array versions are these with cl_merkle_root
 * as fn.
 */
typedef void (*cl_range_hash_fn) (void *ctx, uint64_t lo, uint64_t hi, cl_hash out);
extern int	cl_inclusion_proof_from(cl_range_hash_fn fn, void *ctx, uint64_t size,
									uint64_t index, cl_hash *out);
extern int	cl_consistency_proof_from(cl_range_hash_fn fn, void *ctx,
									  uint64_t old_size, uint64_t new_size,
									  cl_hash *out);

/*
 * Stored subtree hashes (README "Stored tree hashes"), in the layout of
 * C2SP tlog-tiles: the nodes of height level * tile_height (level >= 1)
 * whose subtree is complete, indexed from 0 left to right; level 0 are
 * the leaf hashes.  fn(ctx, level, first, count, out) must write the
 * count hashes of that level starting at index first (count is a power of
 * two below 2^tile_height, first a multiple of it).
 *
 * cl_tree_range_hash sets out = MTH(D[lo:hi]) for a node [lo, hi) of the
 * RFC 9162 tree: it splits the range into aligned perfect subtrees
 * (largest first), hashes each from at most 2^(tile_height-1) hashes of
 * the highest level it spans, and folds them right to left.  tile_height
 * is 1..8 (8 in the extension; the unit tests use smaller ones).
 */
#define CL_TILE_HEIGHT 8
#define CL_TILE_WIDTH (1 << CL_TILE_HEIGHT)
typedef void (*cl_level_hashes_fn) (void *ctx, int level, uint64_t first,
									uint64_t count, cl_hash *out);
extern void cl_tree_range_hash(cl_level_hashes_fn fn, void *ctx, int tile_height,
							   uint64_t lo, uint64_t hi, cl_hash out);

/*
 * Proof verification (RFC 9162 2.1.3.2 and 2.1.4.2).  Never reads past
 * proof[prooflen - 1]; any malformed input yields false.
 */
extern bool cl_verify_inclusion(uint64_t index, uint64_t size,
								const cl_hash leaf, const cl_hash *proof,
								size_t prooflen, const cl_hash root);
extern bool cl_verify_consistency(uint64_t old_size, uint64_t new_size,
								  const cl_hash old_root, const cl_hash new_root,
								  const cl_hash *proof, size_t prooflen);

#endif							/* CL_MERKLE_H */
