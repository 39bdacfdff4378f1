/*-------------------------------------------------------------------------
 * sha256.c
 *	  SHA-256 through OpenSSL's libcrypto.  See sha256.h.
 *
 * This uses the SHA256_Init/Update/Final functions, which OpenSSL 3
 * marks deprecated in favour of EVP_Digest*.  They are still part of the
 * OpenSSL 3 API, run the same assembly as EVP, keep their state on the
 * stack and cannot fail; the EVP interface would add an allocated context
 * and a failure path to every hash (about 30% slower on a 70-byte leaf,
 * measured on this project's build machine).  Only this file knows.
 *-------------------------------------------------------------------------
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "sha256.h"

#include <openssl/sha.h>

void
cl_sha256_parts(const cl_sha256_part *parts, int nparts, uint8_t out[CL_SHA256_LEN])
{
	SHA256_CTX	ctx;

	SHA256_Init(&ctx);
	for (int i = 0; i < nparts; i++)
		if (parts[i].len > 0)
			SHA256_Update(&ctx, parts[i].data, parts[i].len);
	SHA256_Final(out, &ctx);
}

void
cl_sha256(const void *data, size_t len, uint8_t out[CL_SHA256_LEN])
{
	cl_sha256_part part = {data, len};

	cl_sha256_parts(&part, 1, out);
}
