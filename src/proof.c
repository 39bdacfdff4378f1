/*-------------------------------------------------------------------------
 * proof.c
 *	  Parsing and verification of JSON inclusion and consistency proofs.
 *	  See proof.h.
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "json.h"
#include "note.h"
#include "proof.h"

/*
 * Reads the string member key of obj as the base64 of exactly one hash.
 * Sets *err (naming the problem) and returns false otherwise.
 */
static bool
get_hash(const cl_json_object *obj, const char *key, cl_hash out,
		 const char **err)
{
	const cl_json_member *m = cl_json_get(obj, key, CL_JSON_STRING);

	if (m == NULL)
	{
		*err = "a hash member is missing or not a string";
		return false;
	}
	if (m->strlen_ != 44 ||
		cl_base64_decode(m->str, m->strlen_, out, CL_HASH_LEN) != CL_HASH_LEN)
	{
		*err = "a hash member is not the base64 of 32 bytes";
		return false;
	}
	return true;
}

/* Reads the integer member key of obj; false with *err set if absent. */
static bool
get_int(const cl_json_object *obj, const char *key, uint64_t *out,
		const char **err)
{
	const cl_json_member *m = cl_json_get(obj, key, CL_JSON_INT);

	if (m == NULL)
	{
		*err = "a size or index member is missing or not an integer";
		return false;
	}
	*out = m->num;
	return true;
}

/*
 * Parses a proof document into *out (zeroed first).  Guarantees on
 * success: type is one of the two kinds, all hashes were 32-byte
 * base64, pathlen <= CL_MAX_PROOF.  Sizes are not checked against each
 * other here: cl_proof_verify rejects inconsistent ones.
 */
bool
cl_proof_parse(const char *text, size_t len, cl_proof *out, const char **err)
{
	cl_json_object obj;
	const cl_json_member *type;
	const cl_json_member *path;
	bool		ok = false;
	int			i;

	memset(out, 0, sizeof(*out));
	if (!cl_json_parse(text, len, &obj, err))
		return false;

	type = cl_json_get(&obj, "type", CL_JSON_STRING);
	if (type == NULL)
	{
		*err = "missing \"type\"";
		goto done;
	}
	if (strcmp(type->str, "inclusion") == 0 && type->strlen_ == 9)
	{
		out->type = CL_PROOF_INCLUSION;
		if (!get_int(&obj, "leaf_index", &out->leaf_index, err) ||
			!get_int(&obj, "tree_size", &out->tree_size, err) ||
			!get_hash(&obj, "leaf_hash", out->leaf_hash, err) ||
			!get_hash(&obj, "root_hash", out->root_hash, err))
			goto done;
	}
	else if (strcmp(type->str, "consistency") == 0 && type->strlen_ == 11)
	{
		out->type = CL_PROOF_CONSISTENCY;
		if (!get_int(&obj, "old_size", &out->old_size, err) ||
			!get_int(&obj, "new_size", &out->new_size, err) ||
			!get_hash(&obj, "old_root", out->old_root, err) ||
			!get_hash(&obj, "new_root", out->new_root, err))
			goto done;
	}
	else
	{
		*err = "\"type\" is neither \"inclusion\" nor \"consistency\"";
		goto done;
	}

	path = cl_json_get(&obj, "path", CL_JSON_ARRAY);
	if (path == NULL)
	{
		*err = "missing \"path\" array";
		goto done;
	}
	if (path->nitems > CL_MAX_PROOF)
	{
		*err = "\"path\" is too long";
		goto done;
	}
	for (i = 0; i < path->nitems; i++)
	{
		const char *s = path->items[i];

		if (strlen(s) != 44 ||
			cl_base64_decode(s, 44, out->path[i], CL_HASH_LEN) != CL_HASH_LEN)
		{
			*err = "a \"path\" item is not the base64 of 32 bytes";
			goto done;
		}
	}
	out->pathlen = (size_t) path->nitems;
	ok = true;

done:
	cl_json_free(&obj);
	if (!ok)
	{
		cl_proof_type t = out->type;

		memset(out, 0, sizeof(*out));
		out->type = t;
	}
	return ok;
}

/* Checks the proof with merkle.c; false with *err set when it fails. */
bool
cl_proof_verify(const cl_proof *proof, const char **err)
{
	if (proof->pathlen > CL_MAX_PROOF)
	{
		*err = "proof path is too long";
		return false;
	}
	if (proof->type == CL_PROOF_INCLUSION)
	{
		if (proof->leaf_index >= proof->tree_size)
		{
			*err = "leaf_index is not below tree_size";
			return false;
		}
		if (!cl_verify_inclusion(proof->leaf_index, proof->tree_size,
								 proof->leaf_hash, proof->path,
								 proof->pathlen, proof->root_hash))
		{
			*err = "inclusion proof does not lead to root_hash";
			return false;
		}
		return true;
	}
	if (proof->type == CL_PROOF_CONSISTENCY)
	{
		if (proof->old_size > proof->new_size)
		{
			*err = "old_size is larger than new_size";
			return false;
		}
		if (!cl_verify_consistency(proof->old_size, proof->new_size,
								   proof->old_root, proof->new_root,
								   proof->path, proof->pathlen))
		{
			*err = "consistency proof does not connect old_root to new_root";
			return false;
		}
		return true;
	}
	*err = "unknown proof type";
	return false;
}
