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
 * Audited reads on hot standbys (issue #14, item 4; src/standby.c,
 * src/audit.c).  A standby forwards the audit record of every protected
 * read it serves to the primary, which writes it into its audit ledger
 * through record_standby_read() and commits it before the standby answers.
 * Whoever can call it can add read records to the audit ledger, so only
 * members of consent_ledger_standby (and superusers) may: the role a
 * standby's consent_ledger.standby_audit_conninfo logs in as.  Like the
 * other roles it is created NOLOGIN (a pre-existing one must be as safe:
 * the same check as in consent_ledger--1.0.sql); an administrator grants
 * it to a login role made for the standbys.
 */
DO $roles$
BEGIN
	IF EXISTS (SELECT FROM pg_catalog.pg_roles
			   WHERE rolname OPERATOR(pg_catalog.=) 'consent_ledger_standby') THEN
		IF EXISTS (SELECT FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) 'consent_ledger_standby'
					 AND (rolcanlogin OR rolsuper OR rolbypassrls OR rolcreaterole)) THEN
			RAISE EXCEPTION USING
				ERRCODE = 'insufficient_privilege',
				MESSAGE = 'role "consent_ledger_standby" already exists with unsafe attributes',
				DETAIL = 'consent_ledger grants privileges to this role; it must be NOLOGIN, NOSUPERUSER, NOBYPASSRLS and NOCREATEROLE.',
				HINT = 'Drop or alter the role, then run CREATE EXTENSION or ALTER EXTENSION again.';
		END IF;
	ELSE
		CREATE ROLE consent_ledger_standby NOLOGIN;
	END IF;
END
$roles$;
GRANT USAGE ON SCHEMA consent_ledger TO consent_ledger_standby;

CREATE FUNCTION consent_ledger.record_standby_read(
		standby pg_catalog.text, at pg_catalog.timestamptz, session_id pg_catalog.text,
		session_user_name pg_catalog.text, role_name pg_catalog.text,
		client_addr pg_catalog.text, application_name pg_catalog.text,
		purpose pg_catalog.text, relation pg_catalog.text, relid pg_catalog.oid,
		operation pg_catalog.text, outcome pg_catalog.text,
		rows_returned pg_catalog.int8, rows_withheld pg_catalog.int8,
		query_id pg_catalog.int8, rls_bypassed pg_catalog.bool)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_record_standby_read'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.record_standby_read(pg_catalog.text, pg_catalog.timestamptz,
		pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text,
		pg_catalog.text, pg_catalog.text, pg_catalog.oid, pg_catalog.text, pg_catalog.text,
		pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.bool) IS
	'the primary''s side of an audited read on a hot standby: writes one read record the standby forwards (called by the standby''s consent_ledger)';
REVOKE ALL ON FUNCTION consent_ledger.record_standby_read(pg_catalog.text, pg_catalog.timestamptz,
		pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text,
		pg_catalog.text, pg_catalog.text, pg_catalog.oid, pg_catalog.text, pg_catalog.text,
		pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.bool) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.record_standby_read(pg_catalog.text, pg_catalog.timestamptz,
		pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text,
		pg_catalog.text, pg_catalog.text, pg_catalog.oid, pg_catalog.text, pg_catalog.text,
		pg_catalog.int8, pg_catalog.int8, pg_catalog.int8, pg_catalog.bool) TO consent_ledger_standby;

/*
 * 1.3: checkpoint shipping (issue #14 item 1, src/ship.c, README "Shipping
 * checkpoints").  The sealer runs consent_ledger.checkpoint_command for
 * the newest checkpoint of each ledger and records the outcome here, in
 * transactions of its own, after the command has ended.
 * checkpoint_shipments has a row for every checkpoint shipped (attempts:
 * the command's runs for that ledger since the previous shipment, this one
 * included); checkpoint_shipping_status the failures of each ledger.
 * Neither is dumped (a restored database ships its newest checkpoints
 * afresh) and nobody but the extension writes them; checkpoint_shipping
 * is the view to read.  Existing ledgers need no row: nothing was shipped
 * before 1.3, and the view reads a missing row as "never shipped, never
 * failed".
 */
CREATE TABLE consent_ledger.checkpoint_shipments (
	ledger_id	pg_catalog.int4 NOT NULL,
	seq			pg_catalog.int8 NOT NULL,
	tree_size	pg_catalog.int8 NOT NULL,
	shipped_at	pg_catalog.timestamptz NOT NULL,
	attempts	pg_catalog.int4 NOT NULL,
	PRIMARY KEY (ledger_id, seq)
);
CREATE TABLE consent_ledger.checkpoint_shipping_status (
	ledger_id	pg_catalog.int4 PRIMARY KEY,
	failures	pg_catalog.int8 NOT NULL,
	consecutive_failures pg_catalog.int4 NOT NULL,
	last_failed_at pg_catalog.timestamptz,
	last_failed_size pg_catalog.int8,
	last_error	pg_catalog.text
);
REVOKE ALL ON consent_ledger.checkpoint_shipments,
	consent_ledger.checkpoint_shipping_status FROM PUBLIC;
GRANT SELECT ON consent_ledger.checkpoint_shipments,
	consent_ledger.checkpoint_shipping_status
	TO consent_ledger_auditor, consent_ledger_admin;

-- One row per ledger: its newest checkpoint, the last one shipped, how many
-- checkpoints were signed since (pending: 0 when the newest is shipped),
-- and the failures of checkpoint_command for it.
CREATE VIEW consent_ledger.checkpoint_shipping AS
	SELECT l.ledger_id, l.relid AS relation, l.origin,
		   c.tree_size AS checkpoint_size, c.signed_at AS checkpoint_at,
		   s.tree_size AS shipped_size, s.shipped_at, s.attempts AS shipped_attempts,
		   (SELECT pg_catalog.count(*) FROM consent_ledger.checkpoints k
			 WHERE k.ledger_id OPERATOR(pg_catalog.=) l.ledger_id
			   AND (s.seq IS NULL OR k.seq OPERATOR(pg_catalog.>) s.seq)) AS pending,
		   coalesce(st.failures, 0) AS failures,
		   coalesce(st.consecutive_failures, 0) AS consecutive_failures,
		   st.last_failed_at, st.last_failed_size, st.last_error
	  FROM consent_ledger.ledgers l
	  LEFT JOIN LATERAL (SELECT k.tree_size, k.signed_at FROM consent_ledger.checkpoints k
						  WHERE k.ledger_id OPERATOR(pg_catalog.=) l.ledger_id
						  ORDER BY k.seq DESC LIMIT 1) c ON true
	  LEFT JOIN LATERAL (SELECT x.seq, x.tree_size, x.shipped_at, x.attempts
						   FROM consent_ledger.checkpoint_shipments x
						  WHERE x.ledger_id OPERATOR(pg_catalog.=) l.ledger_id
						  ORDER BY x.seq DESC LIMIT 1) s ON true
	  LEFT JOIN consent_ledger.checkpoint_shipping_status st
		ON st.ledger_id OPERATOR(pg_catalog.=) l.ledger_id;
COMMENT ON VIEW consent_ledger.checkpoint_shipping IS
	'checkpoint shipping per ledger: newest checkpoint, last shipped, checkpoints pending, failures of consent_ledger.checkpoint_command';
REVOKE ALL ON consent_ledger.checkpoint_shipping FROM PUBLIC;
GRANT SELECT ON consent_ledger.checkpoint_shipping TO consent_ledger_auditor, consent_ledger_admin;

/*
 * 1.3: the consent_ledger table access method (issue #13, bulk load;
 * src/tableam.c, README "Table access method").  Heap, stamping ledger
 * rows as it stores them, so that COPY into a ledger keeps PostgreSQL's
 * multi-row insert (a BEFORE INSERT row trigger turns it off).
 * create_ledger() puts new ledgers (not partitioned ones) on it; ledgers
 * made before keep their stamp trigger until use_table_am() moves them.
 */
CREATE FUNCTION consent_ledger.table_am_handler(pg_catalog.internal)
	RETURNS pg_catalog.table_am_handler
	AS 'MODULE_PATHNAME', 'cl_tableam_handler' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION consent_ledger.table_am_handler(pg_catalog.internal) FROM PUBLIC;
CREATE ACCESS METHOD consent_ledger TYPE TABLE HANDLER consent_ledger.table_am_handler;
COMMENT ON ACCESS METHOD consent_ledger IS
	'heap, stamping the rows of ledger tables as it stores them (consent_ledger)';

CREATE FUNCTION consent_ledger.use_table_am(relation pg_catalog.regclass)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_ledger_use_table_am' LANGUAGE C STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.use_table_am(pg_catalog.regclass) IS
	'moves a ledger stamped by its row trigger (made before 1.3) onto the consent_ledger table access method (rewrites the table; rows, log and checkpoints unchanged)';
REVOKE ALL ON FUNCTION consent_ledger.use_table_am(pg_catalog.regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.use_table_am(pg_catalog.regclass) TO consent_ledger_admin;

-- (issue #13, bulk load) a pending record's leaves are random hashes:
-- stored without a compression attempt, as the log's are since 1.0.
ALTER TABLE consent_ledger.pending ALTER COLUMN leaves SET STORAGE EXTERNAL;

/* ---------------------------------------------------------------------
 * 1.3: witnesses (issue #14 items 2 and 3; README "Witnesses";
 * src/witness.c).
 *
 * Witness side: witness_logs pins each witnessed log's origin to its
 * verifier key; the witness's state -- every checkpoint it cosigned, and
 * every one it refused as a rollback or fork, with the conflicting
 * checkpoint -- is the ledger consent_ledger.witness_log, created on first
 * use by witness_add_log() (like the consent ledger, it is no extension
 * member, so pg_dump dumps and restores it as a ledger).
 *
 * Log side: cosignatures holds the witnesses' cosignature lines of each
 * checkpoint (by ledger and checkpoint seq); checkpoint() and export()
 * append them to the note.  Existing ledgers start with none.
 * --------------------------------------------------------------------- */
CREATE TABLE consent_ledger.witness_logs (
	origin			pg_catalog.text PRIMARY KEY,
	key_name		pg_catalog.text NOT NULL,
	public_key		pg_catalog.bytea NOT NULL,
	verifier_key	pg_catalog.text NOT NULL,
	added_at		pg_catalog.timestamptz NOT NULL,
	added_by		pg_catalog.text NOT NULL
);
COMMENT ON TABLE consent_ledger.witness_logs IS
	'logs this server witnesses: origin and the pinned verifier key of the log';
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.witness_logs', '');
REVOKE ALL ON consent_ledger.witness_logs FROM PUBLIC;
GRANT SELECT ON consent_ledger.witness_logs TO consent_ledger_auditor, consent_ledger_admin;

CREATE TABLE consent_ledger.cosignatures (
	ledger_id		pg_catalog.int4 NOT NULL,
	seq				pg_catalog.int8 NOT NULL,
	witness			pg_catalog.text NOT NULL,
	key_id			pg_catalog.text NOT NULL,
	cosigned_at		pg_catalog.int8 NOT NULL,
	line			pg_catalog.text NOT NULL,
	added_at		pg_catalog.timestamptz NOT NULL,
	PRIMARY KEY (ledger_id, seq, line)
);
COMMENT ON TABLE consent_ledger.cosignatures IS
	'witness cosignature lines (C2SP tlog-cosignature) of each checkpoint, as add_cosignature() stored them';
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.cosignatures', '');
REVOKE ALL ON consent_ledger.cosignatures FROM PUBLIC;
GRANT SELECT ON consent_ledger.cosignatures TO consent_ledger_auditor, consent_ledger_admin;

CREATE FUNCTION consent_ledger.witness_add_log(origin pg_catalog.text, verifier_key pg_catalog.text)
	RETURNS void
	AS 'MODULE_PATHNAME', 'cl_witness_add_log' LANGUAGE C STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.witness_add_log(pg_catalog.text, pg_catalog.text) IS
	'witness the log of this origin, whose checkpoints are signed by this verifier key (verifier_key() on the log)';
CREATE FUNCTION consent_ledger.witness_cosign(note pg_catalog.text,
		consistency_proof pg_catalog.jsonb DEFAULT NULL)
	RETURNS pg_catalog.text
	AS 'MODULE_PATHNAME', 'cl_witness_cosign' LANGUAGE C CALLED ON NULL INPUT VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.witness_cosign(pg_catalog.text, pg_catalog.jsonb) IS
	'check a witnessed log''s checkpoint (signature, consistency with the last one cosigned) and return this server''s C2SP cosignature line';
CREATE FUNCTION consent_ledger.witness_last_size(origin pg_catalog.text)
	RETURNS pg_catalog.int8
	AS 'MODULE_PATHNAME', 'cl_witness_last_size' LANGUAGE C STRICT STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.witness_last_size(pg_catalog.text) IS
	'tree size of the last checkpoint this witness cosigned for the origin (NULL: none)';
CREATE FUNCTION consent_ledger.witness_key()
	RETURNS pg_catalog.text
	AS 'MODULE_PATHNAME', 'cl_witness_key' LANGUAGE C STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.witness_key() IS
	'this server''s witness verifier key: <witness name>+<key id>+base64(0x04 || public key)';
CREATE FUNCTION consent_ledger.add_cosignature(relation pg_catalog.regclass,
		note_with_cosignature pg_catalog.text)
	RETURNS pg_catalog.int4
	AS 'MODULE_PATHNAME', 'cl_add_cosignature' LANGUAGE C STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.add_cosignature(pg_catalog.regclass, pg_catalog.text) IS
	'store the witness cosignature lines of a note with the ledger''s checkpoint of that body; returns how many were new';
CREATE FUNCTION consent_ledger.verify_checkpoint(checkpoint jsonb, witnesses pg_catalog.text[],
		quorum pg_catalog.int4 DEFAULT 1)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_verify_checkpoint_quorum' LANGUAGE C STRICT STABLE
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION consent_ledger.verify_checkpoint(checkpoint text, witnesses pg_catalog.text[],
		quorum pg_catalog.int4 DEFAULT 1)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_verify_checkpoint_quorum_text' LANGUAGE C STRICT STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.verify_checkpoint(jsonb, pg_catalog.text[], pg_catalog.int4) IS
	'verify_checkpoint(), and at least quorum distinct witnesses of the given keys cosigned the note';
COMMENT ON FUNCTION consent_ledger.verify_checkpoint(text, pg_catalog.text[], pg_catalog.int4) IS
	'verify_checkpoint(), and at least quorum distinct witnesses of the given keys cosigned the note';

REVOKE ALL ON FUNCTION consent_ledger.witness_add_log(pg_catalog.text, pg_catalog.text),
	consent_ledger.witness_cosign(pg_catalog.text, pg_catalog.jsonb),
	consent_ledger.witness_last_size(pg_catalog.text),
	consent_ledger.witness_key(),
	consent_ledger.add_cosignature(pg_catalog.regclass, pg_catalog.text),
	consent_ledger.verify_checkpoint(jsonb, pg_catalog.text[], pg_catalog.int4),
	consent_ledger.verify_checkpoint(text, pg_catalog.text[], pg_catalog.int4) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.witness_add_log(pg_catalog.text, pg_catalog.text),
	consent_ledger.witness_cosign(pg_catalog.text, pg_catalog.jsonb),
	consent_ledger.add_cosignature(pg_catalog.regclass, pg_catalog.text)
	TO consent_ledger_admin;
GRANT EXECUTE ON FUNCTION consent_ledger.witness_last_size(pg_catalog.text),
	consent_ledger.verify_checkpoint(jsonb, pg_catalog.text[], pg_catalog.int4),
	consent_ledger.verify_checkpoint(text, pg_catalog.text[], pg_catalog.int4)
	TO consent_ledger_auditor, consent_ledger_admin;
-- the witness's public key is public, like verifier_key()
GRANT EXECUTE ON FUNCTION consent_ledger.witness_key() TO PUBLIC;

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
