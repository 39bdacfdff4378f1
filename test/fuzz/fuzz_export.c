/*-------------------------------------------------------------------------
 * fuzz_export.c
 *	  libFuzzer target: cl_export_parse_line on every line of the input,
 *	  and cl_checkpoint_parse on the note of every checkpoint record.
 *
 * Properties checked (abort() on violation): failures allocate nothing;
 * a leaf record's bytes re-encode to its hex, a checkpoint record's note
 * re-encodes to its base64.
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "note.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses one line and checks the record against the line. */
static void
one_line(const char *line, size_t len)
{
	cl_export_line rec;
	const char *err = NULL;
	char	   *enc;

	if (!cl_export_parse_line(line, len, &rec, &err))
	{
		if (err == NULL || rec.data != NULL)
			abort();
		return;
	}
	switch (rec.kind)
	{
		case CL_EXPORT_LEAF:
			enc = malloc(2 * rec.datalen + 1);
			if (enc == NULL)
				abort();
			cl_hex_encode(rec.data, rec.datalen, enc);
			if (len != 5 + 2 * rec.datalen || memcmp(enc, line + 5, 2 * rec.datalen) != 0)
				abort();
			free(enc);
			break;
		case CL_EXPORT_CHECKPOINT:
			{
				cl_checkpoint cp;

				if (rec.datalen == 0 || rec.datalen > CL_MAX_NOTE)
					abort();
				enc = malloc(cl_base64_encoded_len(rec.datalen) + 1);
				if (enc == NULL)
					abort();
				cl_base64_encode(rec.data, rec.datalen, enc);
				if (len != 11 + strlen(enc) || memcmp(enc, line + 11, strlen(enc)) != 0)
					abort();
				free(enc);
				(void) cl_checkpoint_parse((const char *) rec.data, rec.datalen, &cp, &err);
				break;
			}
		case CL_EXPORT_ENDORSEMENT:
			{
				cl_key_rotation r;

				if (rec.datalen == 0 || rec.datalen > CL_MAX_NOTE)
					abort();
				enc = malloc(cl_base64_encoded_len(rec.datalen) + 1);
				if (enc == NULL)
					abort();
				cl_base64_encode(rec.data, rec.datalen, enc);
				if (len != 12 + strlen(enc) || memcmp(enc, line + 12, strlen(enc)) != 0)
					abort();
				free(enc);
				if (cl_rotation_parse((const char *) rec.data, rec.datalen, &r, &err))
					(void) cl_rotation_verify(&r, (const char *) rec.data);
				break;
			}
		default:
			if (rec.data != NULL)
				abort();
			break;
	}
	free(rec.data);
}

/* libFuzzer entry point: each "\n"-separated line is one record. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *) data;
	size_t		pos = 0;

	while (pos <= size)
	{
		const char *nl = pos < size ? memchr(s + pos, '\n', size - pos) : NULL;
		size_t		len = nl ? (size_t) (nl - (s + pos)) : size - pos;

		one_line(s + pos, len);
		pos += len + 1;
	}
	return 0;
}
