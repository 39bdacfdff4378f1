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
-- No unique key: a sealer may record the server's key while pg_restore is
-- copying the dumped rows in; duplicates are harmless.
CREATE TABLE consent_ledger.keys (
	key_id		text NOT NULL,
	public_key	bytea NOT NULL,
	first_seen	timestamptz NOT NULL,
	endorsement	text
);
CREATE INDEX keys_key_id_idx ON consent_ledger.keys (key_id);

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
 * Consent registry (README "Consent")
 *
 * The consent ledger itself, consent_ledger.consent_events, and the
 * consent_state view are created on first use by the extension's C code
 * and are deliberately not members of the extension: pg_dump then dumps
 * the ledger like any user ledger (rows first, its triggers after), so a
 * restored database verifies.
 * --------------------------------------------------------------------- */

CREATE TABLE consent_ledger.purposes (
	purpose		text PRIMARY KEY
		CHECK (purpose OPERATOR(pg_catalog.~) '^[A-Za-z][A-Za-z0-9_.:-]{0,62}$'),
	description	text,
	legal_basis	text NOT NULL
		CHECK (legal_basis OPERATOR(pg_catalog.=) ANY (ARRAY['consent', 'contract',
			'legal_obligation', 'vital_interests', 'public_task', 'legitimate_interests'])),
	parent		text REFERENCES consent_ledger.purposes,
	defined_at	timestamptz NOT NULL
);

-- Which roles may declare which purposes (and their descendants).
CREATE TABLE consent_ledger.purpose_grants (
	role		pg_catalog.regrole NOT NULL,
	purpose		text NOT NULL REFERENCES consent_ledger.purposes,
	granted_at	timestamptz NOT NULL,
	PRIMARY KEY (role, purpose)
);

-- Protected tables and purpose views.
CREATE TABLE consent_ledger.protected (
	relid			pg_catalog.regclass PRIMARY KEY,
	subject_column	name NOT NULL,
	protected_at	timestamptz NOT NULL
);
-- token: the random number the view's filter names it by (an OID would
-- change in a dump and restore)
CREATE TABLE consent_ledger.purpose_views (
	view			pg_catalog.regclass PRIMARY KEY,
	relid			pg_catalog.regclass NOT NULL,
	purpose			text NOT NULL REFERENCES consent_ledger.purposes,
	token			bigint NOT NULL UNIQUE,
	created_at		timestamptz NOT NULL
);

CREATE SEQUENCE consent_ledger.consent_event_seq AS bigint;

SELECT pg_catalog.pg_extension_config_dump('consent_ledger.purposes', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.purpose_grants', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.protected', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.purpose_views', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.consent_event_seq', '');
REVOKE ALL ON consent_ledger.purposes, consent_ledger.purpose_grants,
	consent_ledger.protected, consent_ledger.purpose_views,
	consent_ledger.consent_event_seq FROM PUBLIC;
GRANT SELECT ON consent_ledger.purposes, consent_ledger.purpose_grants,
	consent_ledger.protected, consent_ledger.purpose_views
	TO consent_ledger_auditor, consent_ledger_admin, consent_ledger_recorder;

-- C helpers of the functions below (not callable by PUBLIC).
CREATE FUNCTION consent_ledger._record_begin(purpose text) RETURNS void
	AS 'MODULE_PATHNAME', 'cl_record_begin' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION consent_ledger._record_done(event_id bigint) RETURNS void
	AS 'MODULE_PATHNAME', 'cl_record_done' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION consent_ledger._purposes_changed() RETURNS void
	AS 'MODULE_PATHNAME', 'cl_purposes_changed' LANGUAGE C VOLATILE;

CREATE FUNCTION consent_ledger.define_purpose(purpose text, description text DEFAULT NULL,
		legal_basis text DEFAULT 'consent', parent text DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF purpose IS NULL OR legal_basis IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'purpose and legal_basis must not be NULL';
	END IF;
	IF legal_basis NOT IN ('consent', 'contract', 'legal_obligation', 'vital_interests',
						   'public_task', 'legitimate_interests') THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('invalid legal basis "%s"', legal_basis),
			DETAIL = 'The legal bases are those of GDPR Art. 6(1).',
			HINT = 'Use one of consent, contract, legal_obligation, vital_interests, public_task, legitimate_interests.';
	END IF;
	IF purpose !~ '^[A-Za-z][A-Za-z0-9_.:-]{0,62}$' THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('invalid purpose name "%s"', purpose),
			HINT = 'A purpose name starts with a letter and has at most 63 letters, digits, "_", ".", ":" or "-".';
	END IF;
	IF parent IS NOT NULL AND NOT EXISTS
		(SELECT FROM consent_ledger.purposes p WHERE p.purpose = define_purpose.parent) THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_object',
			MESSAGE = format('parent purpose "%s" does not exist', parent),
			HINT = 'Define the parent purpose first.';
	END IF;
	IF EXISTS (SELECT FROM consent_ledger.purposes p WHERE p.purpose = define_purpose.purpose) THEN
		RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
			MESSAGE = format('purpose "%s" already exists', purpose),
			DETAIL = 'Purposes are defined once and never changed, so that past consent keeps its meaning.';
	END IF;
	INSERT INTO consent_ledger.purposes (purpose, description, legal_basis, parent, defined_at)
	VALUES (define_purpose.purpose, define_purpose.description, define_purpose.legal_basis,
			define_purpose.parent, now());
	PERFORM consent_ledger._purposes_changed();
END
$$;

CREATE FUNCTION consent_ledger.grant_consent(subject text, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	id bigint;
BEGIN
	IF subject IS NULL OR subject = '' THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'subject must not be NULL or empty';
	END IF;
	IF octet_length(subject) > 1024 THEN
		RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
			MESSAGE = 'subject is longer than 1024 bytes',
			HINT = 'Identify subjects by a key (an id, a uuid, a hash), not by personal data.';
	END IF;
	IF purpose IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'purpose must not be NULL';
	END IF;
	IF expires_at IS NOT NULL AND expires_at <= clock_timestamp() THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = 'expires_at lies in the past',
			HINT = 'Pass a future time, or NULL for a grant without expiry.';
	END IF;
	PERFORM consent_ledger._record_begin(grant_consent.purpose);
	INSERT INTO consent_ledger.consent_events
		(subject, purpose, action, expires_at, evidence, recorded_at, recorded_by)
	VALUES (grant_consent.subject, grant_consent.purpose, 'grant', grant_consent.expires_at,
			grant_consent.evidence, clock_timestamp(), session_user)
	RETURNING event_id INTO id;
	PERFORM consent_ledger._record_done(id);
	RETURN id;
END
$$;

CREATE FUNCTION consent_ledger.withdraw_consent(subject text, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	id bigint;
BEGIN
	IF subject IS NULL OR subject = '' THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'subject must not be NULL or empty';
	END IF;
	IF octet_length(subject) > 1024 THEN
		RAISE EXCEPTION USING ERRCODE = 'string_data_right_truncation',
			MESSAGE = 'subject is longer than 1024 bytes',
			HINT = 'Identify subjects by a key (an id, a uuid, a hash), not by personal data.';
	END IF;
	IF purpose IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'purpose must not be NULL';
	END IF;
	PERFORM consent_ledger._record_begin(withdraw_consent.purpose);
	INSERT INTO consent_ledger.consent_events
		(subject, purpose, action, expires_at, evidence, recorded_at, recorded_by)
	VALUES (withdraw_consent.subject, withdraw_consent.purpose, 'withdraw', NULL,
			withdraw_consent.evidence, clock_timestamp(), session_user)
	RETURNING event_id INTO id;
	PERFORM consent_ledger._record_done(id);
	RETURN id;
END
$$;

/*
 * Point-in-time consent, from the ledger alone.  For subject s, purpose p
 * and moment t, over the events recorded at or before t for p and its
 * ancestors: let W be the last withdrawal among them; s consents iff for
 * some such purpose the latest event is a grant later than W that has not
 * expired at t.  A purpose whose legal basis is not consent needs none.
 */
CREATE FUNCTION consent_ledger.has_consent(subject text, purpose text,
		at timestamptz DEFAULT now())
	RETURNS boolean
	LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	basis text;
	ok boolean;
BEGIN
	SELECT p.legal_basis INTO basis FROM consent_ledger.purposes p
	WHERE p.purpose = has_consent.purpose;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_object',
			MESSAGE = format('purpose "%s" does not exist', purpose),
			HINT = 'Define it with consent_ledger.define_purpose().';
	END IF;
	IF basis <> 'consent' THEN
		RETURN true;
	END IF;
	IF to_regclass('consent_ledger.consent_events') IS NULL THEN
		RETURN false;
	END IF;
	WITH RECURSIVE anc(purpose) AS (
		SELECT has_consent.purpose
		UNION
		SELECT p.parent FROM consent_ledger.purposes p JOIN anc ON p.purpose = anc.purpose
		WHERE p.parent IS NOT NULL),
	ev AS (
		SELECT e.event_id, e.purpose, e.action, e.expires_at
		FROM consent_ledger.consent_events e
		WHERE e.subject = has_consent.subject
		  AND e.purpose IN (SELECT anc.purpose FROM anc)
		  AND e.recorded_at <= has_consent.at),
	w AS (SELECT coalesce(max(ev.event_id), 0) AS last_withdrawal FROM ev WHERE ev.action = 'withdraw'),
	latest AS (SELECT DISTINCT ON (ev.purpose) ev.* FROM ev ORDER BY ev.purpose, ev.event_id DESC)
	SELECT EXISTS (SELECT FROM latest, w
				   WHERE latest.action = 'grant' AND latest.event_id > w.last_withdrawal
					 AND (latest.expires_at IS NULL OR latest.expires_at > has_consent.at))
	INTO ok;
	RETURN ok;
END
$$;

-- Overloads for warehouse key columns.
CREATE FUNCTION consent_ledger.grant_consent(subject bigint, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL) RETURNS bigint
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.grant_consent(subject::text, purpose, expires_at, evidence);
CREATE FUNCTION consent_ledger.grant_consent(subject integer, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL) RETURNS bigint
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.grant_consent(subject::text, purpose, expires_at, evidence);
CREATE FUNCTION consent_ledger.grant_consent(subject uuid, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL) RETURNS bigint
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.grant_consent(subject::text, purpose, expires_at, evidence);
CREATE FUNCTION consent_ledger.withdraw_consent(subject bigint, purpose text,
		evidence jsonb DEFAULT NULL) RETURNS bigint
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.withdraw_consent(subject::text, purpose, evidence);
CREATE FUNCTION consent_ledger.withdraw_consent(subject integer, purpose text,
		evidence jsonb DEFAULT NULL) RETURNS bigint
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.withdraw_consent(subject::text, purpose, evidence);
CREATE FUNCTION consent_ledger.withdraw_consent(subject uuid, purpose text,
		evidence jsonb DEFAULT NULL) RETURNS bigint
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.withdraw_consent(subject::text, purpose, evidence);
CREATE FUNCTION consent_ledger.has_consent(subject bigint, purpose text,
		at timestamptz DEFAULT now()) RETURNS boolean
	LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.has_consent(subject::text, purpose, at);
CREATE FUNCTION consent_ledger.has_consent(subject integer, purpose text,
		at timestamptz DEFAULT now()) RETURNS boolean
	LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.has_consent(subject::text, purpose, at);
CREATE FUNCTION consent_ledger.has_consent(subject uuid, purpose text,
		at timestamptz DEFAULT now()) RETURNS boolean
	LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
	RETURN consent_ledger.has_consent(subject::text, purpose, at);

/* ---------------------------------------------------------------------
 * Enforcement (README "Enforcement")
 * --------------------------------------------------------------------- */

CREATE FUNCTION consent_ledger.authorize_purpose(role pg_catalog.regrole, purpose text)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_authorize_purpose' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION consent_ledger.revoke_purpose(role pg_catalog.regrole, purpose text)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_revoke_purpose' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION consent_ledger.protect(relation pg_catalog.regclass, subject_column name)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_protect' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION consent_ledger.unprotect(relation pg_catalog.regclass)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_unprotect' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION consent_ledger.create_purpose_view(relation pg_catalog.regclass,
		purpose text, view_name text)
	RETURNS pg_catalog.regclass
	AS 'MODULE_PATHNAME', 'cl_create_purpose_view' LANGUAGE C STRICT VOLATILE;

-- The policy checks.  LEAKPROOF: they never raise an error that depends
-- on their argument (only "no purpose declared" / "not authorized", which
-- depend on the session), so the planner may evaluate them first.
CREATE FUNCTION consent_ledger.allowed(subject text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_allowed_text' LANGUAGE C STABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION consent_ledger.allowed(subject bigint) RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_allowed_int8' LANGUAGE C STABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION consent_ledger.allowed(subject integer) RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_allowed_int4' LANGUAGE C STABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION consent_ledger.allowed(subject uuid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_allowed_uuid' LANGUAGE C STABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION consent_ledger.view_allows(view_token bigint, subject text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_view_allows_text' LANGUAGE C STABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION consent_ledger.view_allows(view_token bigint, subject bigint) RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_view_allows_int8' LANGUAGE C STABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION consent_ledger.view_allows(view_token bigint, subject integer) RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_view_allows_int4' LANGUAGE C STABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION consent_ledger.view_allows(view_token bigint, subject uuid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_view_allows_uuid' LANGUAGE C STABLE STRICT PARALLEL SAFE LEAKPROOF;

/* ---------------------------------------------------------------------
 * Signed audit (README "Audit").  consent_ledger.audit_log, a ledger
 * table, is created on first use, outside the extension, like the
 * consent ledger.
 * --------------------------------------------------------------------- */

CREATE TABLE consent_ledger.audited (
	relid		pg_catalog.regclass PRIMARY KEY,
	audited_at	timestamptz NOT NULL
);
CREATE SEQUENCE consent_ledger.audit_record_seq AS bigint;
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.audited', '');
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.audit_record_seq', '');
REVOKE ALL ON consent_ledger.audited, consent_ledger.audit_record_seq FROM PUBLIC;
GRANT SELECT ON consent_ledger.audited TO consent_ledger_auditor, consent_ledger_admin;

CREATE FUNCTION consent_ledger.audit_row() RETURNS trigger
	AS 'MODULE_PATHNAME', 'cl_audit_row' LANGUAGE C;
CREATE FUNCTION consent_ledger.audit(relation pg_catalog.regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'cl_audit' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION consent_ledger.audit(pg_catalog.regclass) IS
	'record every change to the table in the signed audit ledger';
CREATE FUNCTION consent_ledger.row_hash(relation pg_catalog.regclass, "row" anyelement)
	RETURNS bytea
	AS 'MODULE_PATHNAME', 'cl_row_hash' LANGUAGE C STRICT STABLE;

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
	consent_ledger.leaf_data(pg_catalog.regclass, bigint),
	consent_ledger.row_hash(pg_catalog.regclass, anyelement)
	TO consent_ledger_auditor, consent_ledger_admin;

-- The public key is public.  (USAGE on the schema only lets PUBLIC name the
-- objects it was granted: every table and function is revoked from PUBLIC.)
GRANT USAGE ON SCHEMA consent_ledger TO PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.public_key(),
	consent_ledger.key_id(), consent_ledger.verifier_key() TO PUBLIC;

GRANT EXECUTE ON FUNCTION
	consent_ledger.define_purpose(text, text, text, text),
	consent_ledger.authorize_purpose(pg_catalog.regrole, text),
	consent_ledger.revoke_purpose(pg_catalog.regrole, text),
	consent_ledger.protect(pg_catalog.regclass, name),
	consent_ledger.unprotect(pg_catalog.regclass),
	consent_ledger.audit(pg_catalog.regclass),
	consent_ledger.create_purpose_view(pg_catalog.regclass, text, text)
	TO consent_ledger_admin;

GRANT EXECUTE ON FUNCTION
	consent_ledger.grant_consent(text, text, timestamptz, jsonb),
	consent_ledger.grant_consent(bigint, text, timestamptz, jsonb),
	consent_ledger.grant_consent(integer, text, timestamptz, jsonb),
	consent_ledger.grant_consent(uuid, text, timestamptz, jsonb),
	consent_ledger.withdraw_consent(text, text, jsonb),
	consent_ledger.withdraw_consent(bigint, text, jsonb),
	consent_ledger.withdraw_consent(integer, text, jsonb),
	consent_ledger.withdraw_consent(uuid, text, jsonb)
	TO consent_ledger_recorder, consent_ledger_admin;

GRANT EXECUTE ON FUNCTION
	consent_ledger.has_consent(text, text, timestamptz),
	consent_ledger.has_consent(bigint, text, timestamptz),
	consent_ledger.has_consent(integer, text, timestamptz),
	consent_ledger.has_consent(uuid, text, timestamptz)
	TO consent_ledger_recorder, consent_ledger_admin, consent_ledger_auditor;

-- Policy checks run as whoever reads a protected table or purpose view.
GRANT EXECUTE ON FUNCTION
	consent_ledger.allowed(text), consent_ledger.allowed(bigint),
	consent_ledger.allowed(integer), consent_ledger.allowed(uuid),
	consent_ledger.view_allows(bigint, text),
	consent_ledger.view_allows(bigint, bigint),
	consent_ledger.view_allows(bigint, integer),
	consent_ledger.view_allows(bigint, uuid)
	TO PUBLIC;
