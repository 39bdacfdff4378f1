/*-------------------------------------------------------------------------
 * fuzz_statement.c
 *	  libFuzzer target: cl_statement_parse (the statements data subjects
 *	  sign), cl_json_split (a consent receipt's parts) and cl_leaf_column
 *	  on arbitrary bytes.
 *
 * Properties checked (abort() on violation): a statement accepted is
 * exactly the canonical form of what was read from it (one byte form per
 * statement, so a signature covers one meaning); a refusal says why; a
 * split document's parts lie inside it, in order; a column found in a leaf
 * lies inside it.
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "leaf.h"
#include "note.h"
#include "statement.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cl_statement st;
	const char *err = NULL;
	char		canon[CL_STMT_MAX_LEN + 256];
	cl_json_part parts[8];
	int			n;
	uint8_t		tag;
	const uint8_t *v;
	size_t		vlen;

	if (cl_statement_parse((const char *) data, size, &st, &err))
	{
		int			len;

		if (st.kind == CL_STMT_CONSENT)
		{
			char		expires[24];

			if (st.expires_never)
				strcpy(expires, "never");
			else
				snprintf(expires, sizeof(expires), "%lld", (long long) st.expires);
			len = snprintf(canon, sizeof(canon),
						   CL_CONSENT_STATEMENT_V1 "\norigin %s\nsubject %s\npurpose %s\naction %s\nexpires %s\ntime %lld\nnonce %s\n",
						   st.origin, st.subject, st.purpose, st.withdraw ? "withdraw" : "grant", expires,
						   (long long) st.time, st.nonce);
		}
		else
		{
			char		key64[64];

			cl_base64_encode(st.key, CL_SUBJECT_KEY_LEN, key64);
			len = snprintf(canon, sizeof(canon),
						   CL_KEY_STATEMENT_V1 "\norigin %s\nsubject %s\nkey %s\ntime %lld\nnonce %s\n",
						   st.origin, st.subject, key64, (long long) st.time, st.nonce);
		}
		if (len < 0 || (size_t) len != size || memcmp(canon, data, size) != 0)
			abort();
	}
	else if (err == NULL)
		abort();

	if (cl_json_split((const char *) data, size, parts, 8, &n, &err))
	{
		const char *prev = (const char *) data;

		if (n < 0 || n > 8)
			abort();
		for (int i = 0; i < n; i++)
		{
			if (parts[i].value < prev || parts[i].value + parts[i].valuelen > (const char *) data + size)
				abort();
			prev = parts[i].value + parts[i].valuelen;
		}
	}

	if (cl_leaf_column(data, size, "subject", &tag, &v, &vlen) == NULL && tag != 0 &&
		(v < data || v + vlen > data + size))
		abort();
	return 0;
}
