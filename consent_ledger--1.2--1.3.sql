/* consent_ledger--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.3'" to load this file. \quit

/*
 * 1.3: warehouse scale and throughput (issues #12, #13) and the newcomer's
 * path (issue #16).  Each section below names what it changes.
 */

/*
 * Partitioned tables (issue #12, item 3; src/partition.c).
 */

-- A partitioned ledger keeps one log per leaf partition: its receipts are
-- the latest checkpoint of each (verify_checkpoint() checks each one).
CREATE FUNCTION consent_ledger.partition_checkpoints(relation pg_catalog.regclass)
	RETURNS TABLE (partition pg_catalog.regclass, checkpoint jsonb)
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT t.relid, consent_ledger.checkpoint(t.relid)
	FROM pg_catalog.pg_partition_tree($1) AS t
	JOIN consent_ledger.ledgers AS l ON l.relid OPERATOR(pg_catalog.=) t.relid
	WHERE t.isleaf
	ORDER BY t.relid::pg_catalog.text
$$;
COMMENT ON FUNCTION consent_ledger.partition_checkpoints(pg_catalog.regclass) IS
	'The latest signed checkpoint of each partition of a partitioned ledger (one log per partition).';
REVOKE ALL ON FUNCTION consent_ledger.partition_checkpoints(pg_catalog.regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.partition_checkpoints(pg_catalog.regclass)
	TO consent_ledger_auditor, consent_ledger_admin;

/*
 * 1.3 shared consent state (issue #12, item 1; README "Consent state in
 * shared memory"): consent state is held once per server in shared memory,
 * sized by consent_ledger.max_consent_states.  consent_state_usage() shows
 * how much of it is used, for monitoring (and the tests).
 */
CREATE FUNCTION consent_ledger.consent_state_usage(
	OUT max_states pg_catalog.int8, OUT states_in_use pg_catalog.int8,
	OUT states_this_database pg_catalog.int8, OUT entry_bytes pg_catalog.int8,
	OUT shared_bytes pg_catalog.int8)
	RETURNS record
	AS 'MODULE_PATHNAME', 'cl_consent_state_usage' LANGUAGE C STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.consent_state_usage() IS
	'use of the shared consent state: its size (consent_ledger.max_consent_states), states in use on the server and in this database, bytes per entry, shared memory in bytes';
REVOKE ALL ON FUNCTION consent_ledger.consent_state_usage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.consent_state_usage()
	TO consent_ledger_admin, consent_ledger_auditor;

/*
 * Sealing at any scale (issue #12 item 4, issue #13): counts are 64-bit
 * in every internal table (a pending record's first ordinal and leaf
 * count; a log row's leaf count, first ordinals and counts), and pending
 * is read through an index in (ledger, transaction, first ordinal) order,
 * the order the sealer takes it, so that a sealing round reads only what
 * it seals.  The conversion rewrites pending and log once.
 */
ALTER TABLE consent_ledger.pending
	ALTER COLUMN first_ord TYPE pg_catalog.int8,
	ALTER COLUMN nleaves TYPE pg_catalog.int8;
ALTER TABLE consent_ledger.log
	ALTER COLUMN nleaves TYPE pg_catalog.int8,
	ALTER COLUMN first_ords TYPE pg_catalog.int8[],
	ALTER COLUMN counts TYPE pg_catalog.int8[];
CREATE INDEX pending_ledger_txn_idx
	ON consent_ledger.pending (ledger_id, txn, first_ord);
-- A round of bounded size may seal only the first leaves of a record: it
-- moves first_ord on, lowers nleaves and raises leaves_offset (the
-- leaves already sealed at the start of leaves), leaving the stored
-- hashes as they are instead of rewriting them.
ALTER TABLE consent_ledger.pending
	ADD COLUMN leaves_offset pg_catalog.int8 NOT NULL DEFAULT 0;

/*
 * 1.3: stored subtree hashes (issue #12 item 4, README "Stored tree
 * hashes").  Inclusion and consistency proofs read O(log n) stored
 * hashes instead of the whole log.  tree_hashes holds the hash of every
 * complete subtree of height 8 * level (level >= 1) of a ledger's log:
 * node idx of a level is MTH of leaves idx * 256^level .. (idx + 1) *
 * 256^level - 1 (the entries of the C2SP tlog-tiles tiles of that level,
 * one hash a row; level 0, the leaf hashes, is consent_ledger.log).  The
 * sealer writes the nodes a round completes, in the round's transaction;
 * verify() recomputes every one from the log's leaves.  Logs sealed before
 * 1.3 get theirs here.
 */
CREATE TABLE consent_ledger.tree_hashes (
	ledger_id	pg_catalog.int4 NOT NULL,
	level		pg_catalog.int2 NOT NULL,
	idx			pg_catalog.int8 NOT NULL,
	hash		pg_catalog.bytea NOT NULL,
	PRIMARY KEY (ledger_id, level, idx)
);
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.tree_hashes', '');
REVOKE ALL ON consent_ledger.tree_hashes FROM PUBLIC;
GRANT SELECT ON consent_ledger.tree_hashes TO consent_ledger_auditor, consent_ledger_admin;
CREATE FUNCTION consent_ledger._build_tree_hashes() RETURNS pg_catalog.int8
	AS 'MODULE_PATHNAME', 'cl_build_tree_hashes_sql' LANGUAGE C STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION consent_ledger._build_tree_hashes() FROM PUBLIC;
SELECT consent_ledger._build_tree_hashes();
DROP FUNCTION consent_ledger._build_tree_hashes();

/* ---------------------------------------------------------------------
 * Consent recorded in bulk (issue #12 item 2; README "Recording consent
 * in bulk").  grant_consent() and withdraw_consent() -- text, bigint,
 * integer and uuid subjects -- are C functions (src/record.c) with the
 * same checks, errors and ordering as the PL/pgSQL ones they replace,
 * about ten times faster set-wise.  CREATE OR REPLACE keeps their
 * signatures and privileges (EXECUTE by consent_ledger_recorder and
 * consent_ledger_admin).  They are no longer SECURITY DEFINER: the C code
 * inserts as the extension's owner itself and depends on no search_path.
 * New: the bulk variants taking an array of subjects.
 * --------------------------------------------------------------------- */
CREATE OR REPLACE FUNCTION consent_ledger.grant_consent(subject text, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.grant_consent(subject bigint, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent_int8' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.grant_consent(subject integer, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent_int4' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.grant_consent(subject uuid, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent_uuid' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.withdraw_consent(subject text, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.withdraw_consent(subject bigint, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent_int8' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.withdraw_consent(subject integer, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent_int4' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.withdraw_consent(subject uuid, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent_uuid' LANGUAGE C VOLATILE;

CREATE FUNCTION consent_ledger.grant_consent(subjects text[], purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent_array' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.grant_consent(text[], text, timestamptz, jsonb) IS
	'bulk path: one grant per subject, in array order, all or nothing; returns the number recorded';
CREATE FUNCTION consent_ledger.withdraw_consent(subjects text[], purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent_array' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.withdraw_consent(text[], text, jsonb) IS
	'bulk path: one withdrawal per subject, in array order, all or nothing; returns the number recorded';
REVOKE ALL ON FUNCTION consent_ledger.grant_consent(text[], text, timestamptz, jsonb),
	consent_ledger.withdraw_consent(text[], text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.grant_consent(text[], text, timestamptz, jsonb),
	consent_ledger.withdraw_consent(text[], text, jsonb)
	TO consent_ledger_recorder, consent_ledger_admin;

/*
 * has_consent() reads consent_ledger.consent_events by name: it now refuses
 * one the extension did not create (42501), as the C code does (README
 * "Trust model").  Otherwise unchanged.
 */
CREATE FUNCTION consent_ledger._consent_events_checked() RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_consent_events_checked' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION consent_ledger._consent_events_checked() FROM PUBLIC;

CREATE OR REPLACE FUNCTION consent_ledger.has_consent(subject text, purpose text,
		at timestamptz DEFAULT now())
	RETURNS boolean
	LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	basis text;
	ok boolean;
BEGIN
	SELECT p.legal_basis INTO basis FROM consent_ledger.purposes p
	WHERE p.purpose OPERATOR(pg_catalog.=) has_consent.purpose;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_object',
			MESSAGE = pg_catalog.format('purpose "%s" does not exist', purpose),
			HINT = 'Define it with consent_ledger.define_purpose().';
	END IF;
	IF basis OPERATOR(pg_catalog.<>) 'consent' THEN
		RETURN true;
	END IF;
	IF NOT consent_ledger._consent_events_checked() THEN
		RETURN false;
	END IF;
	WITH RECURSIVE anc(purpose) AS (
		SELECT has_consent.purpose
		UNION
		SELECT p.parent FROM consent_ledger.purposes p JOIN anc ON p.purpose OPERATOR(pg_catalog.=) anc.purpose
		WHERE p.parent IS NOT NULL),
	ev AS (
		SELECT e.event_id, e.purpose, e.action, e.expires_at
		FROM consent_ledger.consent_events e
		WHERE e.subject OPERATOR(pg_catalog.=) has_consent.subject
		  AND e.purpose IN (SELECT anc.purpose FROM anc)
		  AND e.recorded_at OPERATOR(pg_catalog.<=) has_consent.at),
	w AS (SELECT coalesce(pg_catalog.max(ev.event_id), 0) AS last_withdrawal
		  FROM ev WHERE ev.action OPERATOR(pg_catalog.=) 'withdraw'),
	latest AS (SELECT DISTINCT ON (ev.purpose) ev.* FROM ev ORDER BY ev.purpose, ev.event_id DESC)
	SELECT EXISTS (SELECT FROM latest, w
				   WHERE latest.action OPERATOR(pg_catalog.=) 'grant'
					 AND latest.event_id OPERATOR(pg_catalog.>) w.last_withdrawal
					 AND (latest.expires_at IS NULL OR latest.expires_at OPERATOR(pg_catalog.>) has_consent.at))
	INTO ok;
	RETURN ok;
END
$$;

/*
 * 1.3 (issue #16): audit records that say what happened.  rows_withheld
 * counts the rows a consent check refused; a check is asked about every
 * row that reaches it, so the fewer rows that reach it only to be dropped
 * by the query's own conditions, the closer the count is to "rows the
 * consent policy hid".  PostgreSQL may evaluate a cheap LEAKPROOF
 * condition of the query (cost below 10 x cpu_operator_cost) before a
 * security qual, and orders conditions of equal standing by cost: at the
 * default cost of 1 a check tied with the query's comparison operators and
 * could run first.  At cost 10 (also closer to its real cost, a subject
 * lookup) every such condition runs before it.  Which rows reach a
 * non-leakproof condition does not change: only hidden rows' exposure to
 * leakproof functions, which PostgreSQL already allowed.
 */
ALTER FUNCTION consent_ledger.allowed(pg_catalog.text) COST 10;
ALTER FUNCTION consent_ledger.allowed(pg_catalog.int8) COST 10;
ALTER FUNCTION consent_ledger.allowed(pg_catalog.int4) COST 10;
ALTER FUNCTION consent_ledger.allowed(pg_catalog.uuid) COST 10;
ALTER FUNCTION consent_ledger.view_allows(pg_catalog.int8, pg_catalog.text) COST 10;
ALTER FUNCTION consent_ledger.view_allows(pg_catalog.int8, pg_catalog.int8) COST 10;
ALTER FUNCTION consent_ledger.view_allows(pg_catalog.int8, pg_catalog.int4) COST 10;
ALTER FUNCTION consent_ledger.view_allows(pg_catalog.int8, pg_catalog.uuid) COST 10;

/*
 * 1.3 (issue #16): the position of every sealed row of a ledger, the
 * gap-free ordinal an auditor can rely on.  A ledger's own ids (the audit
 * ledger's record_id, from a sequence) may have gaps: a sequence value is
 * not given back when the transaction that took it rolls back.  The log
 * position of a row is fixed when it is sealed, counts from 0 without a
 * gap, and is what checkpoints, inclusion proofs and leaf_data() name.
 * Read from consent_ledger.log (leaves in (transaction, ordinal) chunks,
 * as verify() maps them); rows not sealed yet have no position.
 */
CREATE FUNCTION consent_ledger.leaf_positions(relation pg_catalog.regclass)
	RETURNS TABLE (leaf pg_catalog.int8, ledger_txn pg_catalog.int8, ledger_ord pg_catalog.int4)
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, pg_temp
AS $body$
	SELECT c.first_leaf OPERATOR(pg_catalog.+) c.before OPERATOR(pg_catalog.+) o.i,
		   c.txn,
		   c.first_ord OPERATOR(pg_catalog.+) o.i
	FROM (SELECT l.first_leaf, u.txn, u.first_ord, u.cnt,
				 pg_catalog.sum(u.cnt) OVER (PARTITION BY l.first_leaf ORDER BY u.k)
					OPERATOR(pg_catalog.-) u.cnt AS before
			FROM consent_ledger.ledgers g
			JOIN consent_ledger.log l ON l.ledger_id OPERATOR(pg_catalog.=) g.ledger_id
			CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(l.txns), pg_catalog.unnest(l.first_ords),
										  pg_catalog.unnest(l.counts))
				 WITH ORDINALITY AS u(txn, first_ord, cnt, k)
		   WHERE g.relid OPERATOR(pg_catalog.=) $1) c
	CROSS JOIN LATERAL pg_catalog.generate_series(0, c.cnt OPERATOR(pg_catalog.-) 1) AS o(i)
$body$;
COMMENT ON FUNCTION consent_ledger.leaf_positions(pg_catalog.regclass) IS
	'the log position (leaf index, from 0, gap-free) of every sealed row of a ledger, by its (ledger_txn, ledger_ord) stamp';
REVOKE ALL ON FUNCTION consent_ledger.leaf_positions(pg_catalog.regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.leaf_positions(pg_catalog.regclass)
	TO consent_ledger_auditor, consent_ledger_admin;

/*
 * 1.3 (issue #15, README "Erasure"): right to erasure.  A ledger made by
 * create_ledger(relation, personal, subject) commits to its personal
 * columns through salted hashes (canonical encoding version 3, column
 * ledger_salt), so that erase_subject() can remove a subject's personal
 * values while every leaf hash, checkpoint, receipt and proof stays
 * valid.  consent_ledger.ledgers records each ledger's personal columns
 * and subject column (NULL for ledgers without: every ledger made
 * before 1.3).  Erasures are recorded in the ledger
 * consent_ledger.erasures, made on first use like the consent ledger.
 */
ALTER TABLE consent_ledger.ledgers
	ADD COLUMN personal pg_catalog.text[],
	ADD COLUMN subject pg_catalog.text;

CREATE FUNCTION consent_ledger.create_ledger(relation pg_catalog.regclass,
											 personal pg_catalog.name[],
											 subject pg_catalog.name)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_create_ledger_personal' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.create_ledger(pg_catalog.regclass, pg_catalog.name[], pg_catalog.name) IS
	'turns a table into a ledger table whose personal columns are committed through salted hashes, so that erase_subject() can erase them';
REVOKE ALL ON FUNCTION consent_ledger.create_ledger(pg_catalog.regclass, pg_catalog.name[], pg_catalog.name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.create_ledger(pg_catalog.regclass, pg_catalog.name[], pg_catalog.name)
	TO consent_ledger_admin;

CREATE FUNCTION consent_ledger.erase_subject(subject pg_catalog.text, reason pg_catalog.text)
	RETURNS TABLE (relation pg_catalog.regclass, rows pg_catalog.int8)
	AS 'MODULE_PATHNAME', 'cl_erase_subject' LANGUAGE C VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.erase_subject(pg_catalog.text, pg_catalog.text) IS
	'erases every personal value of a data subject in every ledger with personal columns, withdraws its consent for every purpose, and records the erasure';
REVOKE ALL ON FUNCTION consent_ledger.erase_subject(pg_catalog.text, pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.erase_subject(pg_catalog.text, pg_catalog.text)
	TO consent_ledger_admin;

CREATE FUNCTION consent_ledger.erased(ledger_salt pg_catalog.bytea)
	RETURNS pg_catalog.bool
	AS 'MODULE_PATHNAME', 'cl_erased' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION consent_ledger.erased(pg_catalog.bytea) IS
	'whether a row of a ledger with personal columns was erased, from its ledger_salt column';
REVOKE ALL ON FUNCTION consent_ledger.erased(pg_catalog.bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.erased(pg_catalog.bytea)
	TO consent_ledger_admin, consent_ledger_auditor;
