/* consent_ledger--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION consent_ledger" to load this file. \quit

/*
 * Hygiene (CVE-2022-2625, CVE-2023-39417): every object is created with a
 * plain CREATE and referred to by its schema-qualified name; SECURITY
 * DEFINER functions pin search_path; EXECUTE and table privileges are
 * revoked from PUBLIC and granted to the extension's roles only.
 */

-- Refuse to install unless the library was preloaded (it checks in C too).
CREATE FUNCTION consent_ledger._assert_preloaded() RETURNS void
	AS 'MODULE_PATHNAME', 'cl_assert_preloaded' LANGUAGE C STRICT;
SELECT consent_ledger._assert_preloaded();
DROP FUNCTION consent_ledger._assert_preloaded();

/*
 * Roles are cluster-wide and outlive the extension.  A role that already
 * exists is accepted only if it cannot log in and holds no superuser,
 * BYPASSRLS or CREATEROLE attribute, so a pre-created trap role cannot
 * receive the extension's privileges.
 */
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['consent_ledger_admin', 'consent_ledger_auditor',
							 'consent_ledger_recorder']
	LOOP
		IF EXISTS (SELECT FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) r) THEN
			IF EXISTS (SELECT FROM pg_catalog.pg_roles
					   WHERE rolname OPERATOR(pg_catalog.=) r
						 AND (rolcanlogin OR rolsuper OR rolbypassrls OR rolcreaterole)) THEN
				RAISE EXCEPTION USING
					ERRCODE = 'insufficient_privilege',
					MESSAGE = pg_catalog.format('role "%s" already exists with unsafe attributes', r),
					DETAIL = 'consent_ledger grants privileges to this role; it must be NOLOGIN, NOSUPERUSER, NOBYPASSRLS and NOCREATEROLE.',
					HINT = 'Drop or alter the role, then run CREATE EXTENSION again.';
			END IF;
		ELSE
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$roles$;

/* ---------------------------------------------------------------------
 * Internal tables.  Nobody but the extension writes them; every one is
 * dumped by pg_dump so a restored database verifies.
 * --------------------------------------------------------------------- */

CREATE SEQUENCE consent_ledger.ledger_id_seq AS integer;
CREATE SEQUENCE consent_ledger.txn_seq AS bigint;

-- One row per ledger table.
CREATE TABLE consent_ledger.ledgers (
	ledger_id	integer PRIMARY KEY,
	relid		pg_catalog.regclass NOT NULL UNIQUE,
	origin		text NOT NULL UNIQUE,
	encoding	integer NOT NULL,
	created_at	timestamptz NOT NULL,
	retired_at	timestamptz
);

-- Leaves of committed transactions not yet sealed into the log (written
-- at pre-commit by the inserting transaction; no index, by design).
CREATE TABLE consent_ledger.pending (
	ledger_id	integer NOT NULL,
	txn			bigint NOT NULL,
	first_ord	integer NOT NULL,
	nleaves		integer NOT NULL,
	leaves		bytea NOT NULL
);
ALTER TABLE consent_ledger.pending ALTER COLUMN leaves SET STORAGE EXTERNAL;

-- The log: leaf hashes in log order.  One row per sealing round and ledger
-- (split past CL_MAX_LEAVES_PER_LOG leaves): the pending records it sealed,
-- in order, as parallel arrays (transaction, first ordinal, leaf count), and
-- their leaf hashes concatenated.  Leaf first_leaf + k is the k-th hash.
CREATE TABLE consent_ledger.log (
	ledger_id	integer NOT NULL,
	first_leaf	bigint NOT NULL,
	nleaves		integer NOT NULL,
	txns		bigint[] NOT NULL,
	first_ords	integer[] NOT NULL,
	counts		integer[] NOT NULL,
	leaves		bytea NOT NULL,
	PRIMARY KEY (ledger_id, first_leaf)
);
ALTER TABLE consent_ledger.log ALTER COLUMN leaves SET STORAGE EXTERNAL;

-- Signed checkpoints, chained by the hash of the previous note.
CREATE TABLE consent_ledger.checkpoints (
	ledger_id	integer NOT NULL,
	seq			bigint NOT NULL,
	tree_size	bigint NOT NULL,
	root		bytea NOT NULL,
	signed_at	timestamptz NOT NULL,
	prev		bytea NOT NULL,
	key_id		text NOT NULL,
	note		text NOT NULL,
	frontier	bytea NOT NULL,
	PRIMARY KEY (ledger_id, seq)
);

-- Every public key that signed something here, and how it was endorsed.
CREATE TABLE consent_ledger.keys (
	key_id		text PRIMARY KEY,
	public_key	bytea NOT NULL,
	first_seen	timestamptz NOT NULL,
	endorsement	text
);

SELECT pg_catalog.pg_extension_config_dump('consent_ledger.ledger_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.txn_seq', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.ledgers', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.pending', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.log', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.checkpoints', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.keys', '');

REVOKE ALL ON ALL TABLES IN SCHEMA consent_ledger FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA consent_ledger FROM PUBLIC;
GRANT USAGE ON SCHEMA consent_ledger TO consent_ledger_admin,
	consent_ledger_auditor, consent_ledger_recorder;
GRANT SELECT ON consent_ledger.ledgers, consent_ledger.log,
	consent_ledger.checkpoints, consent_ledger.keys, consent_ledger.pending
	TO consent_ledger_auditor, consent_ledger_admin;

/* ---------------------------------------------------------------------
 * Ledger tables
 * --------------------------------------------------------------------- */

CREATE FUNCTION consent_ledger.ledger_stamp() RETURNS trigger
	AS 'MODULE_PATHNAME', 'cl_ledger_stamp' LANGUAGE C;
CREATE FUNCTION consent_ledger.ledger_guard() RETURNS trigger
	AS 'MODULE_PATHNAME', 'cl_ledger_guard' LANGUAGE C;

CREATE FUNCTION consent_ledger.create_ledger(relation pg_catalog.regclass)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_create_ledger' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION consent_ledger.create_ledger(pg_catalog.regclass) IS
	'turn an ordinary table into an append-only, hash-chained ledger table';

CREATE FUNCTION consent_ledger.retire_ledger(relation pg_catalog.regclass)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_retire_ledger' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION consent_ledger.retire_ledger(pg_catalog.regclass) IS
	'seal a ledger for the last time and allow DROP TABLE on it';

CREATE FUNCTION consent_ledger.verify(relation pg_catalog.regclass DEFAULT NULL)
	RETURNS TABLE (relation pg_catalog.regclass, "rows" bigint, pending bigint,
				   valid boolean, problem text)
	AS 'MODULE_PATHNAME', 'cl_verify' LANGUAGE C CALLED ON NULL INPUT STABLE;

CREATE FUNCTION consent_ledger.seal() RETURNS bigint
	AS 'MODULE_PATHNAME', 'cl_seal' LANGUAGE C VOLATILE;

/* ---------------------------------------------------------------------
 * Keys, checkpoints and proofs
 * --------------------------------------------------------------------- */

CREATE FUNCTION consent_ledger.public_key() RETURNS text
	AS 'MODULE_PATHNAME', 'cl_public_key' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION consent_ledger.key_id() RETURNS text
	AS 'MODULE_PATHNAME', 'cl_sql_key_id' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION consent_ledger.verifier_key() RETURNS text
	AS 'MODULE_PATHNAME', 'cl_verifier_key' LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION consent_ledger.checkpoint(relation pg_catalog.regclass)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'cl_sql_checkpoint' LANGUAGE C STRICT STABLE;
CREATE FUNCTION consent_ledger.verify_checkpoint(checkpoint jsonb)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_verify_checkpoint' LANGUAGE C STRICT STABLE;
CREATE FUNCTION consent_ledger.inclusion_proof(relation pg_catalog.regclass,
											   leaf bigint)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'cl_sql_inclusion_proof' LANGUAGE C STRICT STABLE;
CREATE FUNCTION consent_ledger.inclusion_proof(relation pg_catalog.regclass,
											   leaf bigint, tree_size bigint)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'cl_sql_inclusion_proof' LANGUAGE C STRICT STABLE;
CREATE FUNCTION consent_ledger.consistency_proof(relation pg_catalog.regclass,
												 old_size bigint, new_size bigint)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'cl_sql_consistency_proof' LANGUAGE C STRICT STABLE;
CREATE FUNCTION consent_ledger.export(relation pg_catalog.regclass)
	RETURNS SETOF text
	AS 'MODULE_PATHNAME', 'cl_export' LANGUAGE C STRICT STABLE;
CREATE FUNCTION consent_ledger.leaf_data(relation pg_catalog.regclass, leaf bigint)
	RETURNS bytea
	AS 'MODULE_PATHNAME', 'cl_leaf_data' LANGUAGE C STRICT STABLE;

/* ---------------------------------------------------------------------
 * Privileges
 * --------------------------------------------------------------------- */

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA consent_ledger FROM PUBLIC;

GRANT EXECUTE ON FUNCTION consent_ledger.create_ledger(pg_catalog.regclass),
	consent_ledger.retire_ledger(pg_catalog.regclass),
	consent_ledger.seal()
	TO consent_ledger_admin;

GRANT EXECUTE ON FUNCTION
	consent_ledger.verify(pg_catalog.regclass),
	consent_ledger.checkpoint(pg_catalog.regclass),
	consent_ledger.verify_checkpoint(jsonb),
	consent_ledger.inclusion_proof(pg_catalog.regclass, bigint),
	consent_ledger.inclusion_proof(pg_catalog.regclass, bigint, bigint),
	consent_ledger.consistency_proof(pg_catalog.regclass, bigint, bigint),
	consent_ledger.export(pg_catalog.regclass),
	consent_ledger.leaf_data(pg_catalog.regclass, bigint)
	TO consent_ledger_auditor, consent_ledger_admin;

-- The public key is public.
GRANT EXECUTE ON FUNCTION consent_ledger.public_key(),
	consent_ledger.key_id(), consent_ledger.verifier_key() TO PUBLIC;
