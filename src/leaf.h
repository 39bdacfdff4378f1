/*-------------------------------------------------------------------------
 * leaf.h
 *	  Decoding of canonical row encodings (leaf.c).  Pure C99.
 *-------------------------------------------------------------------------
 */
#ifndef CL_LEAF_H
#define CL_LEAF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Checks a leaf (len bytes at p) against the encoding of its version byte;
 * with out, prints it there as "v<version> txn <txn> ord <ord> {"name":
 * value, ...}" (no newline; possibly partial when the leaf is malformed).
 * Returns NULL when the leaf is well formed, or a static string saying
 * what is wrong.
 */
extern const char *cl_leaf_decode(const uint8_t *p, size_t len, FILE *out);

/*
 * Finds the top-level column name of a well-formed leaf: *tag is its value
 * tag (0 when the leaf has no such column: NULL or absent), *val and *vlen its
 * value's bytes (for counted values, text and bytea among them, the bytes
 * after the length; for 'i' and 'Z', 8 bytes big-endian).  Returns NULL,
 * or what is wrong with the leaf.
 */
extern const char *cl_leaf_column(const uint8_t *p, size_t len, const char *name,
								  uint8_t *tag, const uint8_t **val, size_t *vlen);

#endif							/* CL_LEAF_H */
