/*-------------------------------------------------------------------------
 * fuzz_leaf.c
 *	  libFuzzer target: cl_leaf_decode (the offline verifier's --decode)
 *	  on arbitrary bytes.
 *
 * Properties checked (abort() on violation): checking alone and checking
 * while printing give the same verdict; a leaf accepted stays accepted
 * with one more byte refused ("bytes after the last column").
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leaf.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink = NULL;
	const char *a;
	const char *b;

	if (sink == NULL && (sink = fopen("/dev/null", "w")) == NULL)
		abort();
	a = cl_leaf_decode(data, size, NULL);
	b = cl_leaf_decode(data, size, sink);
	if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
		abort();
	if (a == NULL)
	{
		uint8_t    *more = malloc(size + 1);

		if (more == NULL)
			abort();
		memcpy(more, data, size);
		more[size] = 0;
		if (cl_leaf_decode(more, size + 1, NULL) == NULL)
			abort();
		free(more);
	}
	return 0;
}
