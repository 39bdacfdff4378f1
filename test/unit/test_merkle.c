/*-------------------------------------------------------------------------
 * test_merkle.c
 *	  Standalone TAP unit test for src/merkle.c (RFC 9162 Merkle trees).
 *
 * Build and run:
 *	  cc -std=c99 -O2 -Wall -Wextra -Werror -Isrc test/unit/test_merkle.c \
 *		src/merkle.c -lsodium -o /tmp/test_merkle && /tmp/test_merkle
 *
 * Output is TAP ("1..N" first, then one "ok"/"not ok" line per test) so that
 * prove(1) can run it; the exit status is non-zero if any test failed.
 * Results are buffered and printed at the end so the plan comes first;
 * diagnostics go to stderr as they happen.
 *
 * Known-answer vectors (leaf inputs, roots for sizes 0..8, node hashes,
 * compact trees, inclusion and consistency proofs) are those published with
 * the RFC 6962 test suites of google/certificate-transparency and
 * transparency-dev/merkle (testonly/constants.go, proof/verify_test.go).
 *
 * Besides the vectors, every proof is checked against a reference verifier
 * written here directly from the recursive RFC 9162 definitions of PATH
 * and SUBPROOF (sharing no code with merkle.c; it hashes with one-shot
 * crypto_hash_sha256 on concatenated buffers), and against a symbolic
 * oracle that predicts, without hashing, whether a proof generated for one
 * (index, size) or (old, new) pair must verify for another.
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "merkle.h"
#include "sha256.h"

/* ---------------------------------------------------------------------
 * Minimal TAP harness
 * ---------------------------------------------------------------------
 */
#define MAX_TESTS 1024

typedef struct tap_result
{
	bool		ok;
	char		desc[160];
} tap_result;

static tap_result results[MAX_TESTS];
static int	ntests = 0;
static int	nfailed = 0;

static void diag(const char *fmt,...);
static bool check(bool ok, const char *fmt,...);

/* print a diagnostic line to stderr, prefixed with "# " */
static void
diag(const char *fmt,...)
{
	va_list		ap;

	fputs("# ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* record one test result; returns ok */
static bool
check(bool ok, const char *fmt,...)
{
	va_list		ap;
	tap_result *r;

	if (ntests >= MAX_TESTS)
	{
		printf("Bail out! too many tests, raise MAX_TESTS\n");
		exit(2);
	}
	r = &results[ntests++];
	r->ok = ok;
	va_start(ap, fmt);
	vsnprintf(r->desc, sizeof(r->desc), fmt, ap);
	va_end(ap);
	if (!ok)
	{
		nfailed++;
		diag("FAILED test %d: %s", ntests, r->desc);
	}
	return ok;
}

/* ---------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------
 */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* decode hex into out (at most cap bytes); returns the length, aborts on junk */
static size_t
unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t		n = strlen(hex);
	size_t		i;

	if (n % 2 != 0 || n / 2 > cap)
	{
		printf("Bail out! bad hex literal %s\n", hex);
		exit(2);
	}
	for (i = 0; i < n / 2; i++)
	{
		int			hi = hexval(hex[2 * i]);
		int			lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
		{
			printf("Bail out! bad hex literal %s\n", hex);
			exit(2);
		}
		out[i] = (uint8_t) (hi * 16 + lo);
	}
	return n / 2;
}

static void
hexhash(const char *hex, cl_hash out)
{
	if (unhex(hex, out, CL_HASH_LEN) != CL_HASH_LEN)
	{
		printf("Bail out! hash literal of wrong length %s\n", hex);
		exit(2);
	}
}

static bool
heq(const cl_hash a, const cl_hash b)
{
	return memcmp(a, b, CL_HASH_LEN) == 0;
}

static const char *
hashstr(const cl_hash h)
{
	static char buf[4][2 * CL_HASH_LEN + 1];
	static int	which = 0;
	char	   *s = buf[which++ % 4];
	int			i;

	for (i = 0; i < CL_HASH_LEN; i++)
		sprintf(s + 2 * i, "%02x", h[i]);
	return s;
}

/* deterministic pseudo-random generator (splitmix64) */
static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t
rng_next(void)
{
	uint64_t	z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
rng_hash(cl_hash out)
{
	int			i;

	for (i = 0; i < CL_HASH_LEN; i += 8)
	{
		uint64_t	v = rng_next();
		int			j;

		for (j = 0; j < 8; j++)
			out[i + j] = (uint8_t) (v >> (8 * j));
	}
}

/* heap copy of exactly n hashes (so ASan/valgrind catch over-reads) */
static cl_hash *
dup_hashes(const cl_hash *src, size_t n)
{
	cl_hash    *p = malloc(n > 0 ? n * sizeof(cl_hash) : 1);

	if (p == NULL)
	{
		printf("Bail out! out of memory\n");
		exit(2);
	}
	if (n > 0)
		memcpy(p, src, n * sizeof(cl_hash));
	return p;
}

/* heap copy of proof[0 .. len-1] with extra inserted before element e */
static cl_hash *
with_inserted(const cl_hash *proof, size_t len, size_t e, const cl_hash extra)
{
	cl_hash    *p = malloc((len + 1) * sizeof(cl_hash));

	if (p == NULL)
	{
		printf("Bail out! out of memory\n");
		exit(2);
	}
	if (e > 0)
		memcpy(p, proof, e * sizeof(cl_hash));
	memcpy(p[e], extra, CL_HASH_LEN);
	if (len > e)
		memcpy(p + e + 1, proof + e, (len - e) * sizeof(cl_hash));
	return p;
}

/* ---------------------------------------------------------------------
 * Independent reference implementation, straight from the RFC text
 * ---------------------------------------------------------------------
 */

/* SHA-256(0x00 || data), one-shot on a concatenated buffer */
static void
ref_leaf(const uint8_t *data, size_t len, cl_hash out)
{
	uint8_t		buf[1 + 64];

	if (len > 64)
	{
		printf("Bail out! ref_leaf data too long\n");
		exit(2);
	}
	buf[0] = 0x00;
	if (len > 0)
		memcpy(buf + 1, data, len);
	crypto_hash_sha256(out, buf, 1 + len);
}

/* SHA-256(0x01 || l || r), one-shot on a concatenated buffer */
static void
ref_node(const cl_hash l, const cl_hash r, cl_hash out)
{
	uint8_t		buf[1 + 2 * CL_HASH_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, l, CL_HASH_LEN);
	memcpy(buf + 1 + CL_HASH_LEN, r, CL_HASH_LEN);
	crypto_hash_sha256(out, buf, sizeof(buf));
}

/* largest power of two < n (n >= 2), computed as the top bit of n - 1 */
static uint64_t
ref_split(uint64_t n)
{
	uint64_t	k = 1;

	while (((n - 1) >> 1) >= k)
		k <<= 1;
	return k;
}

/* MTH(D[n]) by the recursive definition */
static void
ref_mth(const cl_hash *d, uint64_t n, cl_hash out)
{
	cl_hash		l,
				r;
	uint64_t	k;

	if (n == 0)
	{
		crypto_hash_sha256(out, (const unsigned char *) "", 0);
		return;
	}
	if (n == 1)
	{
		memcpy(out, d[0], CL_HASH_LEN);
		return;
	}
	k = ref_split(n);
	ref_mth(d, k, l);
	ref_mth(d + k, n - k, r);
	ref_node(l, r, out);
}

/*
 * Recompute MTH of a size-n tree from leaf m's hash and its PATH, following
 * PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])      if m < k
 *               = PATH(m - k, D[k:n]) : MTH(D[0:k])  if m >= k
 * The sub-path comes first, so the recursion consumes the deepest element
 * first.  Fails if the proof runs out.
 */
static bool
ref_incl(uint64_t m, uint64_t n, const cl_hash leaf, const cl_hash *proof,
		 size_t len, size_t *pos, cl_hash out)
{
	cl_hash		sub;
	uint64_t	k;

	if (n == 1)
	{
		memcpy(out, leaf, CL_HASH_LEN);
		return m == 0;
	}
	k = ref_split(n);
	if (m < k)
	{
		if (!ref_incl(m, k, leaf, proof, len, pos, sub) || *pos >= len)
			return false;
		ref_node(sub, proof[(*pos)++], out);
	}
	else
	{
		if (!ref_incl(m - k, n - k, leaf, proof, len, pos, sub) || *pos >= len)
			return false;
		ref_node(proof[(*pos)++], sub, out);
	}
	return true;
}

static bool
ref_verify_inclusion(uint64_t index, uint64_t size, const cl_hash leaf,
					 const cl_hash *proof, size_t len, const cl_hash root)
{
	size_t		pos = 0;
	cl_hash		r;

	if (index >= size)
		return false;
	if (!ref_incl(index, size, leaf, proof, len, &pos, r))
		return false;
	return pos == len && heq(r, root);
}

/*
 * Recompute, for the subtree D[n] holding m old leaves, both
 * MTH(D[0:m]) (oldr) and MTH(D[n]) (newr) from its SUBPROOF(m, D[n], b):
 *   m == n, b:     {}                     (oldr = newr = the known old root)
 *   m == n, !b:    {MTH(D[m])}
 *   m <= k:        SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
 *   m > k:         SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
 */
static bool
ref_cons(uint64_t m, uint64_t n, bool b, const cl_hash old_root,
		 const cl_hash *proof, size_t len, size_t *pos,
		 cl_hash oldr, cl_hash newr)
{
	cl_hash		so,
				sn;
	uint64_t	k;

	if (m == n)
	{
		if (b)
		{
			memcpy(oldr, old_root, CL_HASH_LEN);
			memcpy(newr, old_root, CL_HASH_LEN);
			return true;
		}
		if (*pos >= len)
			return false;
		memcpy(oldr, proof[*pos], CL_HASH_LEN);
		memcpy(newr, proof[*pos], CL_HASH_LEN);
		(*pos)++;
		return true;
	}
	k = ref_split(n);
	if (m <= k)
	{
		if (!ref_cons(m, k, b, old_root, proof, len, pos, so, sn) ||
			*pos >= len)
			return false;
		memcpy(oldr, so, CL_HASH_LEN);
		ref_node(sn, proof[(*pos)++], newr);
	}
	else
	{
		if (!ref_cons(m - k, n - k, false, old_root, proof, len, pos, so, sn) ||
			*pos >= len)
			return false;
		ref_node(proof[*pos], so, oldr);
		ref_node(proof[*pos], sn, newr);
		(*pos)++;
	}
	return true;
}

static bool
ref_verify_consistency(uint64_t old_size, uint64_t new_size,
					   const cl_hash old_root, const cl_hash new_root,
					   const cl_hash *proof, size_t len)
{
	size_t		pos = 0;
	cl_hash		o,
				n;

	if (old_size == 0 || old_size > new_size)
		return false;
	if (old_size == new_size)
		return len == 0 && heq(old_root, new_root);
	if (!ref_cons(old_size, new_size, true, old_root, proof, len, &pos, o, n))
		return false;
	return pos == len && heq(o, old_root) && heq(n, new_root);
}

/* ---------------------------------------------------------------------
 * Symbolic oracle: the root expressions a proof stands for
 *
 * "L" is the leaf, "pI" proof element I, "o" the verifier's old root and
 * H(a,b) a node hash.  Two (index, size) pairs accept the same proof iff
 * their expressions are identical (with distinct leaves no two different
 * expressions can hash alike short of a SHA-256 collision).  Note that
 * this is not the same as "the sizes are equal": e.g. the proof of leaf 0
 * in a tree of 3 also verifies as leaf 0 of a tree of 4 against the size-3
 * root.  Binding a root to its size is the job of the signed tree head.
 * ---------------------------------------------------------------------
 */
#define SYMLEN 1024

/* out = "H(" a "," b ")"; bails out if it does not fit */
static void
sym_node(char *out, const char *a, const char *b)
{
	size_t		la = strlen(a);
	size_t		lb = strlen(b);

	if (la + lb + 4 >= SYMLEN)
	{
		printf("Bail out! symbolic expression too long\n");
		exit(2);
	}
	memmove(out + 2, a, la);	/* a may live in out */
	out[0] = 'H';
	out[1] = '(';
	out[2 + la] = ',';
	memcpy(out + 3 + la, b, lb);
	out[3 + la + lb] = ')';
	out[4 + la + lb] = '\0';
}

/* the atom for proof element pos */
static void
sym_atom(char *out, int pos)
{
	snprintf(out, 16, "p%d", pos);
}

static void
sym_incl(uint64_t m, uint64_t n, int *pos, char *out)
{
	char		sub[SYMLEN];
	char		atom[16];
	uint64_t	k;

	if (n == 1)
	{
		strcpy(out, "L");
		return;
	}
	k = ref_split(n);
	if (m < k)
	{
		sym_incl(m, k, pos, sub);
		sym_atom(atom, *pos);
		sym_node(out, sub, atom);
	}
	else
	{
		sym_incl(m - k, n - k, pos, sub);
		sym_atom(atom, *pos);
		sym_node(out, atom, sub);
	}
	(*pos)++;
}

static void
sym_cons(uint64_t m, uint64_t n, bool b, int *pos, char *eo, char *en)
{
	char		so[SYMLEN],
				sn[SYMLEN];
	char		atom[16];
	uint64_t	k;

	if (m == n)
	{
		if (b)
		{
			strcpy(eo, "o");
			strcpy(en, "o");
		}
		else
		{
			sym_atom(eo, *pos);
			sym_atom(en, *pos);
			(*pos)++;
		}
		return;
	}
	k = ref_split(n);
	if (m <= k)
	{
		sym_cons(m, k, b, pos, so, sn);
		strcpy(eo, so);
		sym_atom(atom, *pos);
		sym_node(en, sn, atom);
	}
	else
	{
		sym_cons(m - k, n - k, false, pos, so, sn);
		sym_atom(atom, *pos);
		sym_node(eo, atom, so);
		sym_node(en, atom, sn);
	}
	(*pos)++;
}

/* replace the atom "o" in in by repl */
static void
sym_subst_o(const char *in, const char *repl, char *out)
{
	size_t		j = 0;

	for (; *in; in++)
	{
		if (*in == 'o')
		{
			size_t		rl = strlen(repl);

			if (j + rl >= SYMLEN)
				break;
			memcpy(out + j, repl, rl);
			j += rl;
		}
		else if (j + 1 < SYMLEN)
			out[j++] = *in;
	}
	out[j] = '\0';
}

/* must the genuine proof of leaf i in a tree of n verify as (i2, n2)? */
static bool
oracle_inclusion(uint64_t i, uint64_t n, uint64_t i2, uint64_t n2)
{
	char		e1[SYMLEN],
				e2[SYMLEN];
	int			p1 = 0,
				p2 = 0;

	if (i2 >= n2)
		return false;
	sym_incl(i, n, &p1, e1);
	sym_incl(i2, n2, &p2, e2);
	return p1 == p2 && strcmp(e1, e2) == 0;
}

/*
 * Must the genuine consistency proof (len elements) between sizes o and n,
 * whose roots are equal iff roots_equal, verify as (o2, n2)?
 */
static bool
oracle_consistency(uint64_t o, uint64_t n, size_t len, bool roots_equal,
				   uint64_t o2, uint64_t n2)
{
	char		eo[SYMLEN],
				en[SYMLEN],
				eo2[SYMLEN],
				en2[SYMLEN],
				s[SYMLEN];
	int			p = 0,
				p2 = 0;

	if (o2 == 0 || o2 > n2)
		return false;
	if (o2 == n2)
		return len == 0 && roots_equal;
	if (len == 0)
		return false;
	sym_cons(o2, n2, true, &p2, eo2, en2);
	if ((size_t) p2 != len)
		return false;
	sym_cons(o, n, true, &p, eo, en);
	/* the verifier's "o" is the genuine old root, i.e. eo */
	sym_subst_o(eo2, eo, s);
	if (strcmp(s, eo) != 0)
		return false;
	sym_subst_o(en2, eo, s);
	return strcmp(s, en) == 0;
}

/* ---------------------------------------------------------------------
 * Published vectors (RFC 6962 test data, see header comment)
 * ---------------------------------------------------------------------
 */
static const char *const ct_leaf_inputs[8] = {
	"", "00", "10", "2021", "3031", "40414243",
	"5051525354555657", "606162636465666768696a6b6c6d6e6f"
};

/* MTH of the first n leaves, n = 0..8 */
static const char *const ct_roots[9] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

/* perfect-subtree hashes: level L, position j = MTH(D[j*2^L : (j+1)*2^L]) */
static const char *const ct_nodes_l0[8] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
	"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
	"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
	"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
};
static const char *const ct_nodes_l1[4] = {
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
};
static const char *const ct_nodes_l2[2] = {
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
};

typedef struct proof_vector
{
	uint64_t	a;				/* leaf index, or old size */
	uint64_t	b;				/* tree size, or new size */
	int			len;
	const char *hashes[3];
} proof_vector;

/* inclusion proofs; leaf indexes are 0-based here (the Go tests use 1-based) */
static const proof_vector ct_inclusion[] = {
	{0, 1, 0, {NULL, NULL, NULL}},
	{0, 8, 3, {
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{5, 8, 3, {
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 3, 1, {
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125", NULL, NULL}},
	{1, 5, 3, {
			"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static const proof_vector ct_consistency[] = {
	{1, 1, 0, {NULL, NULL, NULL}},
	{1, 8, 3, {
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{6, 8, 3, {
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 5, 2, {
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", NULL}},
	{6, 7, 3, {
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
			"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static cl_hash ct_leaves[8];	/* leaf hashes of ct_leaf_inputs */
static cl_hash ct_root[9];		/* decoded ct_roots */

/* ---------------------------------------------------------------------
 * Tests
 * ---------------------------------------------------------------------
 */

/* leaf/node hashing and MTH against the published vectors */
static void
test_known_answers(void)
{
	int			i,
				n;
	bool		ok;
	cl_hash		h,
				want;

	/* leaf hashes: cl_leaf_hash == ref_leaf == published level-0 nodes */
	ok = true;
	for (i = 0; i < 8; i++)
	{
		uint8_t		data[16];
		size_t		len = unhex(ct_leaf_inputs[i], data, sizeof(data));
		cl_hash		r;

		cl_leaf_hash(len > 0 ? data : NULL, len, h);
		ref_leaf(data, len, r);
		hexhash(ct_nodes_l0[i], want);
		if (!heq(h, want) || !heq(r, want))
		{
			diag("leaf %d: got %s want %s", i, hashstr(h), hashstr(want));
			ok = false;
		}
		memcpy(ct_leaves[i], want, CL_HASH_LEN);
	}
	check(ok, "cl_leaf_hash matches the 8 published leaf hashes");

	/* cl_node_hash, including aliasing of out with an input */
	ok = true;
	for (i = 0; i < 4; i++)
	{
		cl_hash		r,
					a;

		cl_node_hash(ct_leaves[2 * i], ct_leaves[2 * i + 1], h);
		ref_node(ct_leaves[2 * i], ct_leaves[2 * i + 1], r);
		hexhash(ct_nodes_l1[i], want);
		memcpy(a, ct_leaves[2 * i], CL_HASH_LEN);
		cl_node_hash(a, ct_leaves[2 * i + 1], a);	/* out aliases left */
		ok = ok && heq(h, want) && heq(r, want) && heq(a, want);
		memcpy(a, ct_leaves[2 * i + 1], CL_HASH_LEN);
		cl_node_hash(ct_leaves[2 * i], a, a);	/* out aliases right */
		ok = ok && heq(a, want);
	}
	check(ok, "cl_node_hash matches the published level-1 nodes (also with out aliasing an input)");

	/* MTH for sizes 0..8 */
	for (n = 0; n <= 8; n++)
	{
		cl_hash		r;

		hexhash(ct_roots[n], ct_root[n]);
		cl_merkle_root(n > 0 ? ct_leaves : NULL, (uint64_t) n, h);
		ref_mth(ct_leaves, (uint64_t) n, r);
		if (!heq(h, ct_root[n]) || !heq(r, ct_root[n]))
			diag("size %d: got %s ref %s want %s", n, hashstr(h), hashstr(r),
				 hashstr(ct_root[n]));
		check(heq(h, ct_root[n]) && heq(r, ct_root[n]),
			  "cl_merkle_root of the first %d test leaves is %.16s...", n,
			  ct_roots[n]);
	}

	/* every perfect subtree against the published node hashes */
	ok = true;
	for (i = 0; i < 4; i++)
	{
		hexhash(ct_nodes_l1[i], want);
		cl_merkle_root(ct_leaves + 2 * i, 2, h);
		ok = ok && heq(h, want);
	}
	for (i = 0; i < 2; i++)
	{
		hexhash(ct_nodes_l2[i], want);
		cl_merkle_root(ct_leaves + 4 * i, 4, h);
		ok = ok && heq(h, want);
	}
	check(ok, "cl_merkle_root of every perfect subtree matches the published node hashes");
}

/* published inclusion and consistency proofs */
static void
test_published_proofs(void)
{
	size_t		v;
	int			i;

	for (v = 0; v < NELEM(ct_inclusion); v++)
	{
		const proof_vector *pv = &ct_inclusion[v];
		cl_hash		want[3],
					got[CL_MAX_PROOF];
		int			len;
		bool		same;

		for (i = 0; i < pv->len; i++)
			hexhash(pv->hashes[i], want[i]);
		len = cl_inclusion_proof(ct_leaves, pv->b, pv->a, got);
		same = len == pv->len;
		for (i = 0; same && i < len; i++)
			same = heq(got[i], want[i]);
		check(same, "inclusion proof of leaf %d in tree of %d equals the published one",
			  (int) pv->a, (int) pv->b);
		check(cl_verify_inclusion(pv->a, pv->b, ct_leaves[pv->a], want,
								  (size_t) pv->len, ct_root[pv->b]),
			  "published inclusion proof of leaf %d in tree of %d verifies",
			  (int) pv->a, (int) pv->b);
	}

	for (v = 0; v < NELEM(ct_consistency); v++)
	{
		const proof_vector *pv = &ct_consistency[v];
		cl_hash		want[3],
					got[CL_MAX_PROOF];
		int			len;
		bool		same;

		for (i = 0; i < pv->len; i++)
			hexhash(pv->hashes[i], want[i]);
		len = cl_consistency_proof(ct_leaves, pv->a, pv->b, got);
		same = len == pv->len;
		for (i = 0; same && i < len; i++)
			same = heq(got[i], want[i]);
		check(same, "consistency proof %d -> %d equals the published one",
			  (int) pv->a, (int) pv->b);
		check(cl_verify_consistency(pv->a, pv->b, ct_root[pv->a], ct_root[pv->b],
									want, (size_t) pv->len),
			  "published consistency proof %d -> %d verifies",
			  (int) pv->a, (int) pv->b);
	}
}

/* both verifiers on one inclusion probe; true iff both reject */
static bool
incl_both_reject(uint64_t index, uint64_t size, const cl_hash leaf,
				 const cl_hash *proof, size_t len, const cl_hash root)
{
	bool		lib = cl_verify_inclusion(index, size, leaf, proof, len, root);
	bool		ref = ref_verify_inclusion(index, size, leaf, proof, len, root);

	return !lib && !ref;
}

/*
 * Tampered inclusion proofs: flip every byte of every element, of the leaf
 * and of the root, drop each element, insert extra elements anywhere.
 * Returns the number of tampered variants that were wrongly accepted.
 */
static int
tamper_inclusion(uint64_t index, uint64_t size, const cl_hash leaf,
				 const cl_hash *proof, size_t len, const cl_hash root,
				 int *variants)
{
	int			bad = 0;
	size_t		e,
				j,
				c;
	cl_hash		t,
				extra[4];
	cl_hash    *p;

	/* flipped bytes in proof elements */
	for (e = 0; e < len; e++)
		for (j = 0; j < CL_HASH_LEN; j++)
		{
			p = dup_hashes(proof, len);
			p[e][j] ^= 0x01;
			bad += !incl_both_reject(index, size, leaf, p, len, root);
			(*variants)++;
			free(p);
		}
	/* flipped bytes in leaf and root */
	for (j = 0; j < CL_HASH_LEN; j++)
	{
		memcpy(t, leaf, CL_HASH_LEN);
		t[j] ^= 0x80;
		bad += !incl_both_reject(index, size, t, proof, len, root);
		memcpy(t, root, CL_HASH_LEN);
		t[j] ^= 0x80;
		bad += !incl_both_reject(index, size, leaf, proof, len, t);
		*variants += 2;
	}
	/* dropped last element, with the genuine element still in memory */
	if (len > 0)
	{
		bad += !incl_both_reject(index, size, leaf, proof, len - 1, root);
		(*variants)++;
	}
	/* dropped element e (exact-size heap copies) */
	for (e = 0; e < len; e++)
	{
		p = dup_hashes(proof, len);
		memmove(p[e], p[e + 1], (len - e - 1) * sizeof(cl_hash));
		bad += !incl_both_reject(index, size, leaf, p, len - 1, root);
		(*variants)++;
		free(p);
	}
	/* empty proof where one is needed */
	if (len > 0)
	{
		bad += !incl_both_reject(index, size, leaf, NULL, 0, root);
		(*variants)++;
	}
	/* an extra element inserted at every position */
	memset(extra[0], 0, CL_HASH_LEN);
	memcpy(extra[1], root, CL_HASH_LEN);
	memcpy(extra[2], leaf, CL_HASH_LEN);
	if (len > 0)
		memcpy(extra[3], proof[0], CL_HASH_LEN);
	else
		rng_hash(extra[3]);
	for (c = 0; c < 4; c++)
		for (e = 0; e <= len; e++)
		{
			p = with_inserted(proof, len, e, extra[c]);
			bad += !incl_both_reject(index, size, leaf, p, len + 1, root);
			(*variants)++;
			free(p);
		}
	return bad;
}

/* all (leaf, size) with 1 <= size <= 8 over the published leaves */
static void
test_inclusion_small(void)
{
	uint64_t	n,
				i;

	for (n = 1; n <= 8; n++)
		for (i = 0; i < n; i++)
		{
			cl_hash		proof[CL_MAX_PROOF];
			cl_hash    *exact;
			int			len;
			int			symlen = 0;
			char		expr[SYMLEN];
			int			variants = 0;
			int			bad;
			int			mismatches = 0;
			int			probes = 0;
			uint64_t	i2,
						n2;

			sym_incl(i, n, &symlen, expr);
			len = cl_inclusion_proof(ct_leaves, n, i, proof);
			exact = dup_hashes(proof, len > 0 ? (size_t) len : 0);
			check(len == symlen &&
				  cl_verify_inclusion(i, n, ct_leaves[i], exact, (size_t) len,
									  ct_root[n]),
				  "inclusion leaf %d size %d: %d-hash proof generated, cl_verify_inclusion accepts",
				  (int) i, (int) n, len);
			check(len >= 0 &&
				  ref_verify_inclusion(i, n, ct_leaves[i], exact, (size_t) len,
									   ct_root[n]),
				  "inclusion leaf %d size %d: reference PATH checker accepts (root %s)",
				  (int) i, (int) n, expr);
			if (len < 0)
				len = 0;
			bad = tamper_inclusion(i, n, ct_leaves[i], exact, (size_t) len,
								   ct_root[n], &variants);
			check(bad == 0,
				  "inclusion leaf %d size %d: all %d tampered proofs rejected (%d accepted)",
				  (int) i, (int) n, variants, bad);

			/* every other index and size, 0..17 each */
			for (n2 = 0; n2 <= 17; n2++)
				for (i2 = 0; i2 <= 17; i2++)
				{
					bool		want = oracle_inclusion(i, n, i2, n2);
					bool		lib = cl_verify_inclusion(i2, n2, ct_leaves[i], exact,
														  (size_t) len, ct_root[n]);
					bool		ref = ref_verify_inclusion(i2, n2, ct_leaves[i], exact,
														   (size_t) len, ct_root[n]);

					probes++;
					if (lib != want || ref != want)
					{
						if (mismatches < 3)
							diag("inclusion %d/%d as %d/%d: lib %d ref %d oracle %d",
								 (int) i, (int) n, (int) i2, (int) n2, lib, ref, want);
						mismatches++;
					}
					/* a wrong index in the same tree must always fail */
					if (n2 == n && i2 != i && (lib || ref))
						mismatches++;
				}
			check(mismatches == 0,
				  "inclusion leaf %d size %d: %d other (index, size) pairs decided as the oracle predicts",
				  (int) i, (int) n, probes);
			free(exact);
		}
}

static bool
cons_both_reject(uint64_t o, uint64_t n, const cl_hash oldr, const cl_hash newr,
				 const cl_hash *proof, size_t len)
{
	bool		lib = cl_verify_consistency(o, n, oldr, newr, proof, len);
	bool		ref = ref_verify_consistency(o, n, oldr, newr, proof, len);

	return !lib && !ref;
}

/* tampered consistency proofs; returns the number wrongly accepted */
static int
tamper_consistency(uint64_t o, uint64_t n, const cl_hash oldr,
				   const cl_hash newr, const cl_hash *proof, size_t len,
				   int *variants)
{
	int			bad = 0;
	size_t		e,
				j,
				c;
	cl_hash		t,
				extra[4];
	cl_hash    *p;

	for (e = 0; e < len; e++)
		for (j = 0; j < CL_HASH_LEN; j++)
		{
			p = dup_hashes(proof, len);
			p[e][j] ^= 0x10;
			bad += !cons_both_reject(o, n, oldr, newr, p, len);
			(*variants)++;
			free(p);
		}
	for (j = 0; j < CL_HASH_LEN; j++)
	{
		memcpy(t, oldr, CL_HASH_LEN);
		t[j] ^= 0x80;
		bad += !cons_both_reject(o, n, t, newr, proof, len);
		memcpy(t, newr, CL_HASH_LEN);
		t[j] ^= 0x80;
		bad += !cons_both_reject(o, n, oldr, t, proof, len);
		*variants += 2;
	}
	if (!heq(oldr, newr))
	{
		bad += !cons_both_reject(o, n, newr, oldr, proof, len);
		(*variants)++;
	}
	if (len > 0)
	{
		/* truncated, genuine last element still in memory */
		bad += !cons_both_reject(o, n, oldr, newr, proof, len - 1);
		/* empty */
		bad += !cons_both_reject(o, n, oldr, newr, NULL, 0);
		*variants += 2;
	}
	for (e = 0; e < len; e++)
	{
		p = dup_hashes(proof, len);
		memmove(p[e], p[e + 1], (len - e - 1) * sizeof(cl_hash));
		bad += !cons_both_reject(o, n, oldr, newr, p, len - 1);
		(*variants)++;
		free(p);
	}
	memset(extra[0], 0, CL_HASH_LEN);
	memcpy(extra[1], oldr, CL_HASH_LEN);
	memcpy(extra[2], newr, CL_HASH_LEN);
	if (len > 0)
		memcpy(extra[3], proof[0], CL_HASH_LEN);
	else
		rng_hash(extra[3]);
	for (c = 0; c < 4; c++)
		for (e = 0; e <= len; e++)
		{
			p = with_inserted(proof, len, e, extra[c]);
			bad += !cons_both_reject(o, n, oldr, newr, p, len + 1);
			(*variants)++;
			free(p);
		}
	return bad;
}

/* all (old, new) with 1 <= old <= new <= 8 over the published leaves */
static void
test_consistency_small(void)
{
	uint64_t	o,
				n;

	for (n = 1; n <= 8; n++)
		for (o = 1; o <= n; o++)
		{
			cl_hash		proof[CL_MAX_PROOF];
			cl_hash    *exact;
			int			len;
			int			symlen = 0;
			char		eo[SYMLEN],
						en[SYMLEN];
			int			variants = 0;
			int			bad;
			int			mismatches = 0;
			int			probes = 0;
			uint64_t	o2,
						n2;

			sym_cons(o, n, true, &symlen, eo, en);
			len = cl_consistency_proof(ct_leaves, o, n, proof);
			exact = dup_hashes(proof, len > 0 ? (size_t) len : 0);
			check(len == symlen &&
				  cl_verify_consistency(o, n, ct_root[o], ct_root[n], exact,
										(size_t) len),
				  "consistency %d -> %d: %d-hash proof generated, cl_verify_consistency accepts",
				  (int) o, (int) n, len);
			check(len >= 0 &&
				  ref_verify_consistency(o, n, ct_root[o], ct_root[n], exact,
										 (size_t) len),
				  "consistency %d -> %d: reference SUBPROOF checker accepts (new root %s)",
				  (int) o, (int) n, en);
			if (len < 0)
				len = 0;
			bad = tamper_consistency(o, n, ct_root[o], ct_root[n], exact,
									 (size_t) len, &variants);
			check(bad == 0,
				  "consistency %d -> %d: all %d tampered proofs rejected (%d accepted)",
				  (int) o, (int) n, variants, bad);

			for (n2 = 0; n2 <= 17; n2++)
				for (o2 = 0; o2 <= 17; o2++)
				{
					bool		want = oracle_consistency(o, n, (size_t) len,
														  o == n, o2, n2);
					bool		lib = cl_verify_consistency(o2, n2, ct_root[o], ct_root[n],
															exact, (size_t) len);
					bool		ref = ref_verify_consistency(o2, n2, ct_root[o], ct_root[n],
															 exact, (size_t) len);

					probes++;
					if (lib != want || ref != want)
					{
						if (mismatches < 3)
							diag("consistency %d->%d as %d->%d: lib %d ref %d oracle %d",
								 (int) o, (int) n, (int) o2, (int) n2, lib, ref, want);
						mismatches++;
					}
				}
			check(mismatches == 0,
				  "consistency %d -> %d: %d other (old, new) pairs decided as the oracle predicts",
				  (int) o, (int) n, probes);
			free(exact);
		}
}

/* argument checking of generators and verifiers */
static void
test_arguments(void)
{
	cl_hash		out[CL_MAX_PROOF + 2];
	cl_hash		junk[1000];
	int			i;
	bool		ok;

	check(cl_inclusion_proof(ct_leaves, 0, 0, out) == -1 &&
		  cl_inclusion_proof(ct_leaves, 5, 5, out) == -1 &&
		  cl_inclusion_proof(ct_leaves, 5, 7, out) == -1 &&
		  cl_inclusion_proof(ct_leaves, 1, 0, out) == 0,
		  "cl_inclusion_proof: -1 for index >= size, 0 for the single-leaf tree");

	ok = cl_consistency_proof(ct_leaves, 0, 0, out) == -1 &&
		cl_consistency_proof(ct_leaves, 0, 5, out) == -1 &&
		cl_consistency_proof(ct_leaves, 5, 3, out) == -1 &&
		cl_consistency_proof(ct_leaves, 9, 8, out) == -1;
	for (i = 1; i <= 8; i++)
		ok = ok && cl_consistency_proof(ct_leaves, (uint64_t) i, (uint64_t) i, out) == 0;
	check(ok, "cl_consistency_proof: -1 for old == 0 or old > new, empty for old == new");

	check(!cl_verify_inclusion(0, 0, ct_leaves[0], NULL, 0, ct_root[0]) &&
		  !cl_verify_inclusion(1, 1, ct_leaves[0], NULL, 0, ct_leaves[0]) &&
		  !cl_verify_inclusion(8, 8, ct_leaves[0], NULL, 0, ct_root[8]) &&
		  !cl_verify_inclusion(UINT64_MAX, UINT64_MAX, ct_leaves[0], NULL, 0, ct_leaves[0]) &&
		  !cl_verify_inclusion(9, 8, ct_leaves[0], ct_leaves, 3, ct_root[8]),
		  "cl_verify_inclusion rejects index >= size");

	check(cl_verify_inclusion(0, 1, ct_leaves[0], NULL, 0, ct_root[1]) &&
		  !cl_verify_inclusion(0, 1, ct_leaves[1], NULL, 0, ct_root[1]) &&
		  !cl_verify_inclusion(0, 1, ct_leaves[0], NULL, 1, ct_root[1]) &&
		  !cl_verify_inclusion(0, 1, ct_leaves[0], ct_leaves, 1, ct_root[1]),
		  "cl_verify_inclusion of a single-leaf tree: empty proof, NULL proof with nonzero length rejected");

	for (i = 0; i < 1000; i++)
		rng_hash(junk[i]);
	check(!cl_verify_inclusion(0, 8, ct_leaves[0], junk, 1000, ct_root[8]) &&
		  !cl_verify_inclusion(UINT64_MAX - 1, UINT64_MAX, ct_leaves[0], junk, 1000, junk[0]) &&
		  !cl_verify_consistency(3, 8, ct_root[3], ct_root[8], junk, 1000) &&
		  !cl_verify_consistency(UINT64_MAX - 1, UINT64_MAX, junk[0], junk[1], junk, 1000),
		  "over-long (1000-hash) proofs are rejected");

	check(!cl_verify_consistency(0, 0, ct_root[0], ct_root[0], NULL, 0) &&
		  !cl_verify_consistency(0, 5, ct_root[0], ct_root[5], NULL, 0) &&
		  !cl_verify_consistency(0, 5, ct_root[0], ct_root[5], ct_leaves, 3),
		  "cl_verify_consistency rejects old_size == 0");

	check(!cl_verify_consistency(5, 3, ct_root[5], ct_root[3], NULL, 0) &&
		  !cl_verify_consistency(5, 4, ct_root[5], ct_root[4], ct_leaves, 2) &&
		  !cl_verify_consistency(UINT64_MAX, 1, ct_root[1], ct_root[1], NULL, 0),
		  "cl_verify_consistency rejects old_size > new_size");

	ok = true;
	for (i = 1; i <= 8; i++)
	{
		ok = ok && cl_verify_consistency((uint64_t) i, (uint64_t) i, ct_root[i],
										 ct_root[i], NULL, 0);
		ok = ok && !cl_verify_consistency((uint64_t) i, (uint64_t) i, ct_root[i],
										  ct_root[i], ct_leaves, 1);
		ok = ok && !cl_verify_consistency((uint64_t) i, (uint64_t) i, ct_root[i],
										  ct_root[i - 1], NULL, 0);
	}
	check(ok, "equal sizes: only the empty proof with equal roots verifies");

	check(!cl_verify_consistency(3, 5, ct_root[3], ct_root[5], NULL, 0) &&
		  !cl_verify_consistency(4, 8, ct_root[4], ct_root[8], ct_leaves, 0) &&
		  !cl_verify_consistency(3, 5, ct_root[3], ct_root[5], NULL, 2),
		  "cl_verify_consistency rejects an empty or NULL proof for old < new");
}

/*
 * Proofs for trees too large to build: random proof elements, the roots
 * they imply computed by the reference recursion, then cl_verify_* must
 * accept exactly the right length.
 */
static void
test_huge_sizes(void)
{
	static const uint64_t sizes[] = {
		2, 3, (1ULL << 32) + 1, (1ULL << 62) + 12345, (1ULL << 63) - 1,
		1ULL << 63, (1ULL << 63) + 1, UINT64_MAX - 1, UINT64_MAX,
		0xdeadbeefcafef00dULL
	};
	cl_hash		proof[70];
	cl_hash		leaf,
				root,
				oldr,
				newr,
				known_old;
	size_t		s;
	int			k;
	bool		ok_incl = true,
				ok_cons = true;
	size_t		maxincl = 0,
				maxcons = 0;

	for (k = 0; k < 70; k++)
		rng_hash(proof[k]);
	rng_hash(leaf);
	rng_hash(known_old);

	for (s = 0; s < NELEM(sizes); s++)
	{
		uint64_t	n = sizes[s];
		uint64_t	idx[6];
		uint64_t	olds[6];

		idx[0] = 0;
		idx[1] = n / 3;
		idx[2] = n / 2;
		idx[3] = n - 2;
		idx[4] = n - 1;
		idx[5] = rng_next() % n;
		olds[0] = 1;
		olds[1] = n / 2 > 0 ? n / 2 : 1;
		olds[2] = n - 1 > 0 ? n - 1 : 1;
		olds[3] = (n > (1ULL << 31)) ? (1ULL << 31) : 1;
		olds[4] = 1 + rng_next() % (n - 1);
		olds[5] = 3 <= n - 1 ? 3 : 1;

		for (k = 0; k < 6; k++)
		{
			size_t		pos = 0;
			uint64_t	i = idx[k];

			if (!ref_incl(i, n, leaf, proof, 70, &pos, root))
			{
				ok_incl = false;
				continue;
			}
			if (pos > maxincl)
				maxincl = pos;
			if (!cl_verify_inclusion(i, n, leaf, proof, pos, root) ||
				cl_verify_inclusion(i, n, leaf, proof, pos - 1, root) ||
				cl_verify_inclusion(i, n, leaf, proof, pos + 1, root) ||
				cl_verify_inclusion(i ^ 1, n, leaf, proof, pos, root) ||
				pos > CL_MAX_PROOF)
			{
				diag("huge inclusion %llu/%llu failed (len %zu)",
					 (unsigned long long) i, (unsigned long long) n, pos);
				ok_incl = false;
			}
		}

		for (k = 0; k < 6; k++)
		{
			size_t		pos = 0;
			uint64_t	o = olds[k];

			if (o >= n)
				continue;
			if (!ref_cons(o, n, true, known_old, proof, 70, &pos, oldr, newr))
			{
				ok_cons = false;
				continue;
			}
			if (pos > maxcons)
				maxcons = pos;
			if (!cl_verify_consistency(o, n, oldr, newr, proof, pos) ||
				cl_verify_consistency(o, n, oldr, newr, proof, pos - 1) ||
				cl_verify_consistency(o, n, oldr, newr, proof, pos + 1) ||
				cl_verify_consistency(o, n, newr, oldr, proof, pos))
			{
				diag("huge consistency %llu->%llu failed (len %zu)",
					 (unsigned long long) o, (unsigned long long) n, pos);
				ok_cons = false;
			}
		}
	}
	check(ok_incl, "inclusion verification at sizes up to 2^64-1 (longest proof %zu hashes)",
		  maxincl);
	check(ok_cons, "consistency verification at sizes up to 2^64-1 (longest proof %zu hashes)",
		  maxcons);
}

/* ---------------------------------------------------------------------
 * Frontier
 * ---------------------------------------------------------------------
 */
#define FRONTIER_LEAVES 1001

static cl_hash big_leaves[2048];

static void
make_big_leaves(void)
{
	int			i;

	for (i = 0; i < (int) NELEM(big_leaves); i++)
	{
		uint8_t		d[6] = {'c', 'l', (uint8_t) (i >> 24), (uint8_t) (i >> 16),
		(uint8_t) (i >> 8), (uint8_t) i};

		ref_leaf(d, sizeof(d), big_leaves[i]);
	}
}

static bool
frontier_equal(const cl_frontier *a, const cl_frontier *b)
{
	int			level;

	if (a->size != b->size)
		return false;
	for (level = 0; level < 64; level++)
		if (((a->size >> level) & 1) && !heq(a->nodes[level], b->nodes[level]))
			return false;
	return true;
}

static void
test_frontier(void)
{
	cl_frontier f,
				g,
				saved;
	cl_hash		want,
				got,
				ref;
	uint8_t		buf[2200],
				buf2[2200];
	int			n,
				i;
	bool		ok,
				ok_ref,
				ok_rt,
				ok_bad;
	long		rejected = 0;

	/* published compact trees for sizes 0..8 */
	{
		/* the published CompactTrees are the perfect-subtree node hashes */
		cl_hash		l0[8],
					l1[4],
					l2[2];

		for (i = 0; i < 8; i++)
			hexhash(ct_nodes_l0[i], l0[i]);
		for (i = 0; i < 4; i++)
			hexhash(ct_nodes_l1[i], l1[i]);
		for (i = 0; i < 2; i++)
			hexhash(ct_nodes_l2[i], l2[i]);

		ok = true;
		cl_frontier_init(&f);
		for (n = 0; n <= 8; n++)
		{
			int			level;

			if (n > 0)
				cl_frontier_append(&f, ct_leaves[n - 1]);
			cl_frontier_root(&f, got);
			ok = ok && f.size == (uint64_t) n && heq(got, ct_root[n]);
			for (level = 0; level < 4; level++)
			{
				const uint8_t *w;
				int			pos;

				if (!((n >> level) & 1))
					continue;
				/* the subtree at this level starts right after the higher ones */
				pos = (n >> (level + 1)) << 1;	/* index in units of 2^level */
				if (level == 0)
					w = l0[pos];
				else if (level == 1)
					w = l1[pos];
				else if (level == 2)
					w = l2[pos];
				else
					w = ct_root[8];
				ok = ok && heq(f.nodes[level], w);
			}
		}
		check(ok, "frontier nodes and roots for sizes 0..8 match the published compact trees");
	}

	/* exact serialized form for size 7: size, then levels 2, 1, 0 */
	{
		uint8_t		want7[8 + 3 * CL_HASH_LEN];

		memset(want7, 0, 8);
		want7[7] = 7;
		hexhash(ct_nodes_l2[0], want7 + 8);
		hexhash(ct_nodes_l1[2], want7 + 8 + CL_HASH_LEN);
		hexhash(ct_nodes_l0[6], want7 + 8 + 2 * CL_HASH_LEN);
		cl_frontier_init(&f);
		for (i = 0; i < 7; i++)
			cl_frontier_append(&f, ct_leaves[i]);
		memset(buf, 0xee, sizeof(buf));
		cl_frontier_serialize(&f, buf);
		check(cl_frontier_serialized_len(7) == sizeof(want7) &&
			  memcmp(buf, want7, sizeof(want7)) == 0 &&
			  buf[sizeof(want7)] == 0xee,
			  "serialized frontier of size 7 is big-endian size + levels 2,1,0 (104 bytes, nothing more written)");
	}

	check(cl_frontier_serialized_len(0) == 8 &&
		  cl_frontier_serialized_len(1) == 40 &&
		  cl_frontier_serialized_len(1024) == 40 &&
		  cl_frontier_serialized_len(1023) == 8 + 10 * 32 &&
		  cl_frontier_serialized_len(UINT64_MAX) == 8 + 64 * 32,
		  "cl_frontier_serialized_len = 8 + 32 * popcount(size)");

	/* append 0..1000 one by one; root == cl_merkle_root (and ref) each size */
	ok = ok_ref = ok_rt = ok_bad = true;
	cl_frontier_init(&f);
	for (n = 0; n <= FRONTIER_LEAVES; n++)
	{
		size_t		len;

		if (n > 0)
			cl_frontier_append(&f, big_leaves[n - 1]);
		cl_frontier_root(&f, got);
		cl_merkle_root(big_leaves, (uint64_t) n, want);
		if (f.size != (uint64_t) n || !heq(got, want))
		{
			if (ok)
				diag("frontier size %d: root %s, cl_merkle_root %s", n,
					 hashstr(got), hashstr(want));
			ok = false;
		}
		if (n <= 64 || n % 13 == 0 || n == FRONTIER_LEAVES)
		{
			ref_mth(big_leaves, (uint64_t) n, ref);
			ok_ref = ok_ref && heq(ref, want);
		}

		/* round trip */
		len = cl_frontier_serialized_len(f.size);
		cl_frontier_serialize(&f, buf);
		memset(&g, 0xa5, sizeof(g));
		if (!cl_frontier_deserialize(buf, len, &g) || !frontier_equal(&f, &g))
			ok_rt = false;
		else
		{
			static const cl_hash zero;
			int			level;

			/* slots for clear bits come back zeroed, not as leftovers */
			for (level = 0; level < 64; level++)
				if (!((g.size >> level) & 1) && !heq(g.nodes[level], zero))
					ok_rt = false;

			cl_frontier_root(&g, ref);
			cl_frontier_serialize(&g, buf2);
			if (!heq(ref, got) || memcmp(buf, buf2, len) != 0)
				ok_rt = false;
		}

		/* every truncation and a few extensions must be rejected */
		memset(&g, 0x5a, sizeof(g));
		saved = g;
		for (i = 0; i < (int) len; i++)
		{
			if (cl_frontier_deserialize(buf, (size_t) i, &g))
				ok_bad = false;
			rejected++;
		}
		buf[len] = 0;
		buf[len + 1] = 0;
		if (cl_frontier_deserialize(buf, len + 1, &g) ||
			cl_frontier_deserialize(buf, len + 2, &g) ||
			cl_frontier_deserialize(buf, len + 32, &g) ||
			cl_frontier_deserialize(buf, len + 64, &g))
			ok_bad = false;
		rejected += 4;
		if (memcmp(&g, &saved, sizeof(g)) != 0)
			ok_bad = false;
	}
	check(ok, "frontier: root equals cl_merkle_root after each of %d appends",
		  FRONTIER_LEAVES);
	check(ok_ref, "cl_merkle_root equals the recursive reference MTH for sizes 0..64 and every 13th size");
	check(ok_rt, "frontier: serialize/deserialize round trip at every size 0..%d, unused slots zeroed",
		  FRONTIER_LEAVES);
	check(ok_bad, "frontier: all %ld truncated/extended buffers rejected, target left untouched",
		  rejected);

	/* resume appending from a deserialized frontier */
	cl_frontier_init(&f);
	for (i = 0; i < 500; i++)
		cl_frontier_append(&f, big_leaves[i]);
	cl_frontier_serialize(&f, buf);
	ok = cl_frontier_deserialize(buf, cl_frontier_serialized_len(500), &g);
	for (i = 500; i < FRONTIER_LEAVES; i++)
		cl_frontier_append(&g, big_leaves[i]);
	cl_frontier_root(&g, got);
	cl_merkle_root(big_leaves, FRONTIER_LEAVES, want);
	check(ok && heq(got, want),
		  "a deserialized frontier keeps growing to the right root");

	/* header size inconsistent with the length */
	memset(buf, 0, sizeof(buf));
	buf[7] = 3;					/* size 3 needs 8 + 64 bytes */
	ok = !cl_frontier_deserialize(buf, 40, &g) &&
		!cl_frontier_deserialize(buf, 8, &g) &&
		cl_frontier_deserialize(buf, 72, &g) && g.size == 3;
	memset(buf, 0xff, 8);		/* size 2^64-1 needs 2056 bytes */
	ok = ok && !cl_frontier_deserialize(buf, 2055, &g) &&
		!cl_frontier_deserialize(buf, 2057, &g) &&
		!cl_frontier_deserialize(buf, 40, &g) &&
		cl_frontier_deserialize(buf, 2056, &g) && g.size == UINT64_MAX;
	ok = ok && !cl_frontier_deserialize(NULL, 0, &g) &&
		!cl_frontier_deserialize(NULL, 8, &g);
	memset(buf, 0, 8);
	ok = ok && cl_frontier_deserialize(buf, 8, &g) && g.size == 0;
	cl_frontier_root(&g, got);
	ok = ok && heq(got, ct_root[0]);
	check(ok, "frontier: header sizes that disagree with the buffer length are rejected");

	/* the maximal frontier cannot grow; it is left unchanged */
	memset(buf, 0xff, 8);
	for (i = 8; i < 2056; i++)
		buf[i] = (uint8_t) i;
	ok = cl_frontier_deserialize(buf, 2056, &f);
	saved = f;
	cl_frontier_append(&f, big_leaves[0]);
	check(ok && memcmp(&f, &saved, sizeof(f)) == 0,
		  "frontier: appending to a frontier of 2^64-1 leaves leaves it unchanged");
}

/* larger trees: a handful of sizes up to 2000, several indices/old sizes */
static void
test_larger(void)
{
	static const uint64_t sizes[] = {
		9, 13, 16, 17, 31, 32, 33, 100, 127, 128, 129, 255, 256, 257,
		511, 513, 1000, 1023, 1024, 1025, 1500, 1999, 2000
	};
	size_t		s;

	for (s = 0; s < NELEM(sizes); s++)
	{
		uint64_t	n = sizes[s];
		uint64_t	idx[6],
					olds[7];
		cl_hash		root,
					oldroot,
					proof[CL_MAX_PROOF];
		int			k;
		bool		ok_i = true,
					ok_c = true;
		int			maxlen = 0;

		cl_merkle_root(big_leaves, n, root);
		idx[0] = 0;
		idx[1] = 1;
		idx[2] = n / 2;
		idx[3] = n - 2;
		idx[4] = n - 1;
		idx[5] = rng_next() % n;
		olds[0] = 1;
		olds[1] = 2;
		olds[2] = n / 3;
		olds[3] = n - 1;
		olds[4] = n;
		olds[5] = 1 + rng_next() % n;
		olds[6] = 7;

		for (k = 0; k < 6; k++)
		{
			int			len = cl_inclusion_proof(big_leaves, n, idx[k], proof);
			cl_hash    *exact;

			if (len < 0)
			{
				ok_i = false;
				continue;
			}
			if (len > maxlen)
				maxlen = len;
			exact = dup_hashes(proof, (size_t) len);
			if (!cl_verify_inclusion(idx[k], n, big_leaves[idx[k]], exact,
									 (size_t) len, root) ||
				!ref_verify_inclusion(idx[k], n, big_leaves[idx[k]], exact,
									  (size_t) len, root) ||
				(len > 0 &&
				 cl_verify_inclusion(idx[k], n, big_leaves[idx[k]], exact,
									 (size_t) len - 1, root)) ||
				cl_verify_inclusion(idx[k] ^ 1, n, big_leaves[idx[k]], exact,
									(size_t) len, root))
			{
				diag("inclusion %llu/%llu failed", (unsigned long long) idx[k],
					 (unsigned long long) n);
				ok_i = false;
			}
			free(exact);
		}
		check(ok_i, "size %d: inclusion proofs for 6 indices verify (lib and reference), longest %d",
			  (int) n, maxlen);

		for (k = 0; k < 7; k++)
		{
			uint64_t	o = olds[k];
			int			len;
			cl_hash    *exact;

			if (o == 0 || o > n)
				continue;
			len = cl_consistency_proof(big_leaves, o, n, proof);
			if (len < 0)
			{
				ok_c = false;
				continue;
			}
			exact = dup_hashes(proof, (size_t) len);
			cl_merkle_root(big_leaves, o, oldroot);
			if (!cl_verify_consistency(o, n, oldroot, root, exact, (size_t) len) ||
				!ref_verify_consistency(o, n, oldroot, root, exact, (size_t) len) ||
				(len > 0 &&
				 cl_verify_consistency(o, n, oldroot, root, exact, (size_t) len - 1)) ||
				(o < n && cl_verify_consistency(o, n, root, oldroot, exact, (size_t) len)))
			{
				diag("consistency %llu->%llu failed", (unsigned long long) o,
					 (unsigned long long) n);
				ok_c = false;
			}
			free(exact);
		}
		check(ok_c, "size %d: consistency proofs from 6 old sizes verify (lib and reference)",
			  (int) n);
	}
}

/* ---------------------------------------------------------------------
 * Proofs from stored subtree hashes (cl_tree_range_hash, *_proof_from)
 * ---------------------------------------------------------------------
 */

/* a store of the complete nodes at heights level * tile_height */
typedef struct test_store
{
	int			tile_height;
	uint64_t	size;			/* only nodes complete in a tree of size leaves */
	long		calls;
	long		bad;			/* requests outside the store's contract */
} test_store;

static void
store_hashes(void *ctx, int level, uint64_t first, uint64_t count, cl_hash *out)
{
	test_store *st = ctx;
	uint64_t	span = UINT64_C(1) << (level * st->tile_height);

	st->calls++;
	if (count == 0 || count >= (UINT64_C(1) << st->tile_height) ||
		(first % count) != 0 || (first + count) * span > st->size)
	{
		st->bad++;
		return;
	}
	for (uint64_t j = 0; j < count; j++)
		cl_merkle_root((const cl_hash *) big_leaves + (first + j) * span, span, out[j]);
}

typedef struct test_range_ctx
{
	test_store *store;
} test_range_ctx;

static void
store_range_hash(void *ctx, uint64_t lo, uint64_t hi, cl_hash out)
{
	test_store *st = ctx;

	cl_tree_range_hash(store_hashes, st, st->tile_height, lo, hi, out);
}

static void
test_stored_hash_proofs(void)
{
	for (int th = 1; th <= 3; th++)
	{
		long		mismatches = 0;
		long		bad = 0;
		long		maxcalls = 0;

		for (uint64_t n = 1; n <= 300; n++)
		{
			test_store	st = {th, n, 0, 0};
			cl_hash		want[CL_MAX_PROOF];
			cl_hash		got[CL_MAX_PROOF];
			cl_hash		r1,
						r2;

			cl_merkle_root((const cl_hash *) big_leaves, n, r1);
			store_range_hash(&st, 0, n, r2);
			mismatches += !heq(r1, r2);
			for (uint64_t i = 0; i < n; i++)
			{
				int			a = cl_inclusion_proof((const cl_hash *) big_leaves, n, i, want);
				int			b;

				st.calls = 0;
				b = cl_inclusion_proof_from(store_range_hash, &st, n, i, got);
				if (a != b || memcmp(want, got, (size_t) (a > 0 ? a : 0) * CL_HASH_LEN) != 0)
					mismatches++;
				if (st.calls > maxcalls)
					maxcalls = st.calls;
			}
			for (uint64_t o = 1; o <= n; o++)
			{
				int			a = cl_consistency_proof((const cl_hash *) big_leaves, o, n, want);
				int			b = cl_consistency_proof_from(store_range_hash, &st, o, n, got);

				if (a != b || memcmp(want, got, (size_t) (a > 0 ? a : 0) * CL_HASH_LEN) != 0)
					mismatches++;
			}
			bad += st.bad;
		}
		check(mismatches == 0 && bad == 0,
			  "tile height %d: roots, inclusion and consistency proofs from stored subtree hashes equal the ones from the leaves (n = 1..300, every index and old size)",
			  th);
		/* O(log n) reads: at most two per proof level (a sibling may be a right edge) */
		check(maxcalls <= 2 * 9,
			  "tile height %d: an inclusion proof asks the store at most %d times (asked %ld)",
			  th, 2 * 9, maxcalls);
	}
	{
		cl_hash		e1,
					e2;
		test_store	st = {8, 0, 0, 0};

		cl_sha256(NULL, 0, e1);
		cl_tree_range_hash(store_hashes, &st, 8, 5, 5, e2);
		check(heq(e1, e2) && st.calls == 0, "cl_tree_range_hash of the empty range is SHA-256(\"\") and reads nothing");
	}
}

int
main(void)
{
	int			i;

	if (sodium_init() < 0)
	{
		printf("Bail out! sodium_init failed\n");
		return 2;
	}

	make_big_leaves();
	test_known_answers();
	test_published_proofs();
	test_inclusion_small();
	test_consistency_small();
	test_arguments();
	test_huge_sizes();
	test_frontier();
	test_larger();
	test_stored_hash_proofs();

	printf("1..%d\n", ntests);
	for (i = 0; i < ntests; i++)
		printf("%sok %d - %s\n", results[i].ok ? "" : "not ", i + 1,
			   results[i].desc);
	fflush(stdout);
	return nfailed == 0 ? 0 : 1;
}
