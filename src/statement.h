/*-------------------------------------------------------------------------
 * statement.h
 *	  Statements a data subject signs (statement.c): a grant or withdrawal
 *	  of consent, and the registration or rotation of the subject's key.
 *	  README "Subject-signed consent" is the specification.  Pure C99,
 *	  shared by the extension and the offline verifier.
 *-------------------------------------------------------------------------
 */
#ifndef CL_STATEMENT_H
#define CL_STATEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_CONSENT_STATEMENT_V1	"consent-ledger-consent/v1"
#define CL_KEY_STATEMENT_V1		"consent-ledger-subject-key/v1"
#define CL_STMT_MAX_SUBJECT		1024
#define CL_STMT_MAX_ORIGIN		255
#define CL_STMT_MAX_PURPOSE		63
#define CL_STMT_MAX_NONCE		64
#define CL_STMT_MIN_NONCE		16
#define CL_STMT_MAX_LEN			2048
#define CL_SUBJECT_KEY_LEN		32
#define CL_SUBJECT_SIG_LEN		64
/*
 * How far a statement's time may lie ahead of the server's clock; and so
 * how long after an operator's withdrawal a grant must be signed to be
 * known to come after it (record.c).
 */
#define CL_STMT_SKEW_SECONDS	60

typedef enum cl_statement_kind
{
	CL_STMT_CONSENT,
	CL_STMT_KEY
} cl_statement_kind;

typedef struct cl_statement
{
	cl_statement_kind kind;
	char		origin[CL_STMT_MAX_ORIGIN + 1];
	char		subject[CL_STMT_MAX_SUBJECT + 1];
	char		purpose[CL_STMT_MAX_PURPOSE + 1];	/* consent */
	bool		withdraw;		/* consent: action withdraw */
	bool		expires_never;	/* consent */
	int64_t		expires;		/* consent: Unix seconds, unless never */
	uint8_t		key[CL_SUBJECT_KEY_LEN];	/* key: the key registered */
	int64_t		time;			/* Unix seconds */
	char		nonce[CL_STMT_MAX_NONCE + 1];
} cl_statement;

/*
 * Reads a statement of either kind (told by its first line).  Strict: the
 * lines in their order, each ending in one LF, nothing else.  On failure
 * returns false with *err saying what is wrong.
 */
extern bool cl_statement_parse(const char *text, size_t len, cl_statement *out,
							   const char **err);

/* Ed25519 (RFC 8032, pure) over the statement's bytes exactly. */
extern bool cl_statement_signature_ok(const char *text, size_t len,
									  const uint8_t sig[CL_SUBJECT_SIG_LEN],
									  const uint8_t key[CL_SUBJECT_KEY_LEN]);

/* A base64 text of exactly n bytes decoded into out (false otherwise). */
extern bool cl_statement_b64(const char *in, size_t len, uint8_t *out, size_t n);

#endif							/* CL_STATEMENT_H */
