/*-------------------------------------------------------------------------
 * fuzz_proof.c
 *	  libFuzzer target: a JSON proof document through cl_proof_parse and
 *	  cl_proof_verify, the code path of "consent-ledger-verify inclusion"
 *	  and "consistency" (and so into cl_verify_inclusion and
 *	  cl_verify_consistency with hostile sizes and path lengths).
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proof.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point: never crashes, aborts only on a violated property. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cl_proof	proof;
	const char *err = NULL;

	if (!cl_proof_parse((const char *) data, size, &proof, &err))
	{
		if (err == NULL)
			abort();
		return 0;
	}
	if (proof.pathlen > CL_MAX_PROOF)
		abort();
	err = NULL;
	if (!cl_proof_verify(&proof, &err) && err == NULL)
		abort();
	return 0;
}
