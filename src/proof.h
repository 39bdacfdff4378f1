/*-------------------------------------------------------------------------
 * proof.h
 *	  Proof documents as the offline verifier reads them: JSON inclusion
 *	  and consistency proofs (RFC 9162 2.1.3 and 2.1.4).
 *
 *	inclusion:   {"type":"inclusion","leaf_index":i,"tree_size":n,
 *				  "leaf_hash":"b64","root_hash":"b64","path":["b64",...]}
 *	consistency: {"type":"consistency","old_size":m,"new_size":n,
 *				  "old_root":"b64","new_root":"b64","path":["b64",...]}
 *
 * Hashes are standard padded base64 of 32 bytes.  Other members are
 * ignored.  Pure C99 + libsodium; shared by consent-ledger-verify and the
 * fuzzers.
 *-------------------------------------------------------------------------
 */
#ifndef CL_PROOF_H
#define CL_PROOF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "merkle.h"

typedef enum cl_proof_type
{
	CL_PROOF_INCLUSION,
	CL_PROOF_CONSISTENCY
} cl_proof_type;

typedef struct cl_proof
{
	cl_proof_type type;
	/* INCLUSION: leaf_index, tree_size, leaf_hash, root_hash */
	uint64_t	leaf_index;
	uint64_t	tree_size;
	cl_hash		leaf_hash;
	cl_hash		root_hash;
	/* CONSISTENCY: old_size, new_size, old_root, new_root */
	uint64_t	old_size;
	uint64_t	new_size;
	cl_hash		old_root;
	cl_hash		new_root;
	size_t		pathlen;
	cl_hash		path[CL_MAX_PROOF];
} cl_proof;

/*
 * Parses a proof document.  false with *err set when it is not valid
 * JSON (see json.h), lacks a member, has a member of the wrong type, a
 * hash that is not the base64 of 32 bytes, or a path longer than
 * CL_MAX_PROOF.
 */
extern bool cl_proof_parse(const char *text, size_t len, cl_proof *out,
						   const char **err);

/* Verifies a parsed proof; false with *err set when it does not hold. */
extern bool cl_proof_verify(const cl_proof *proof, const char **err);

#endif							/* CL_PROOF_H */
