/*-------------------------------------------------------------------------
 * json.h
 *	  A small strict JSON reader for the external documents the project
 *	  accepts: checkpoints and proofs.  One flat object whose values are
 *	  strings, non-negative integers (< 2^63), booleans, null, or arrays of
 *	  strings.  Anything else (nesting, duplicate keys, trailing bytes,
 *	  invalid UTF-8 in strings, numbers with fraction or exponent) is an
 *	  error.  Pure C99; shared by the offline verifier and the fuzzers.
 *-------------------------------------------------------------------------
 */
#ifndef CL_JSON_H
#define CL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_JSON_MAX_MEMBERS 32
#define CL_JSON_MAX_ARRAY	128

typedef enum cl_json_type
{
	CL_JSON_STRING,
	CL_JSON_INT,
	CL_JSON_BOOL,
	CL_JSON_NULL,
	CL_JSON_ARRAY				/* of strings */
} cl_json_type;

typedef struct cl_json_member
{
	char	   *key;			/* NUL-terminated, unescaped */
	cl_json_type type;
	char	   *str;			/* STRING: unescaped, NUL-terminated; strlen may be < strlen_ if \u0000 */
	size_t		strlen_;
	uint64_t	num;			/* INT */
	bool		boolean;		/* BOOL */
	int			nitems;			/* ARRAY */
	char	   *items[CL_JSON_MAX_ARRAY];
} cl_json_member;

typedef struct cl_json_object
{
	int			nmembers;
	cl_json_member members[CL_JSON_MAX_MEMBERS];
} cl_json_object;

/* Parses; on failure returns false with *err set and nothing to free. */
extern bool cl_json_parse(const char *text, size_t len, cl_json_object *out,
						  const char **err);
extern void cl_json_free(cl_json_object *obj);
extern const cl_json_member *cl_json_get(const cl_json_object *obj,
										 const char *key, cl_json_type type);

/*
 * A document of several parts (a consent receipt): one object whose
 * members' values may themselves be objects or arrays (up to 4 levels).
 * Checks the whole document's syntax (values as cl_json_parse() reads
 * them: no fractions, exponents or negative numbers), refuses duplicate
 * keys at the top level, and returns each top-level member's key and the
 * bytes of its value, for a reader of that part.
 */
typedef struct cl_json_part
{
	char		key[64];
	const char *value;
	size_t		valuelen;
} cl_json_part;

extern bool cl_json_split(const char *text, size_t len, cl_json_part *parts,
						  int maxparts, int *nparts, const char **err);

#endif							/* CL_JSON_H */
