/*-------------------------------------------------------------------------
 * fuzz_json.c
 *	  libFuzzer target: cl_json_parse, cl_json_get and cl_json_free, and
 *	  cl_receipt_read (the receipt reader of verify_checkpoint() and the
 *	  offline verifier) on the same bytes.
 *
 * Properties checked (abort() on violation): a failure sets err and
 * leaves no members; a success has unique, NUL-free keys, and every
 * string's strlen_ is within the input length.  cl_receipt_read fails
 * with a NUL-terminated reason and no note, or succeeds with a note of
 * at most the input's length, NUL-terminated.
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "note.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer entry point: never crashes, aborts only on a violated property. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *keys[] = {"type", "note", "path", "tree_size", "x", ""};
	cl_json_object obj;
	const char *err = NULL;
	int			i;
	int			j;
	cl_checkpoint cp;
	char	   *note = NULL;
	size_t		notelen = 0;
	char		why[160];

	why[0] = 'x';
	why[sizeof(why) - 1] = 'x';
	if (cl_receipt_read((const char *) data, size, &cp, &note, &notelen, why, sizeof(why)))
	{
		if (note == NULL || notelen > size || note[notelen] != '\0')
			abort();
		free(note);
	}
	else if (note != NULL || memchr(why, '\0', sizeof(why)) == NULL)
		abort();

	if (!cl_json_parse((const char *) data, size, &obj, &err))
	{
		if (err == NULL || obj.nmembers != 0)
			abort();
		return 0;
	}
	if (obj.nmembers < 0 || obj.nmembers > CL_JSON_MAX_MEMBERS)
		abort();
	for (i = 0; i < obj.nmembers; i++)
	{
		const cl_json_member *m = &obj.members[i];

		if (m->key == NULL || strlen(m->key) >= size)
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(obj.members[j].key, m->key) == 0)
				abort();
		if (m->type == CL_JSON_STRING && (m->str == NULL || m->strlen_ >= size ||
										  m->str[m->strlen_] != '\0'))
			abort();
		if (m->type == CL_JSON_ARRAY)
		{
			if (m->nitems < 0 || m->nitems > CL_JSON_MAX_ARRAY)
				abort();
			for (j = 0; j < m->nitems; j++)
				if (m->items[j] == NULL)
					abort();
		}
		if (m->type == CL_JSON_INT && m->num > (uint64_t) INT64_MAX)
			abort();
	}
	for (i = 0; i < (int) (sizeof(keys) / sizeof(keys[0])); i++)
	{
		(void) cl_json_get(&obj, keys[i], CL_JSON_STRING);
		(void) cl_json_get(&obj, keys[i], CL_JSON_ARRAY);
		(void) cl_json_get(&obj, keys[i], CL_JSON_INT);
	}
	cl_json_free(&obj);
	cl_json_free(&obj);
	return 0;
}
