/*-------------------------------------------------------------------------
 * sha256.h
 *	  The one SHA-256 entry point of consent_ledger.
 *
 * Every hash the extension, the offline verifier, the unit tests and the
 * fuzzers compute goes through here, so they cannot disagree.  Pure C99,
 * no PostgreSQL headers.  The implementation is OpenSSL's libcrypto
 * (SHA-NI/AVX2 code paths; about 4x libsodium's portable SHA-256 on short
 * inputs); libsodium stays for Ed25519, key memory and randomness.
 *-------------------------------------------------------------------------
 */
#ifndef CL_SHA256_H
#define CL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CL_SHA256_LEN 32

/* One piece of a message: the hash covers the pieces in order. */
typedef struct cl_sha256_part
{
	const void *data;			/* may be NULL when len is 0 */
	size_t		len;
} cl_sha256_part;

/*
 * out = SHA-256(parts[0] || ... || parts[nparts-1]).  out may alias an
 * input: every input is absorbed before out is written.
 */
extern void cl_sha256_parts(const cl_sha256_part *parts, int nparts,
							uint8_t out[CL_SHA256_LEN]);

/* out = SHA-256(data[0 .. len-1]) */
extern void cl_sha256(const void *data, size_t len, uint8_t out[CL_SHA256_LEN]);

#endif							/* CL_SHA256_H */
