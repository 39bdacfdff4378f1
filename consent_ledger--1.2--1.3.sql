/* consent_ledger--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.3'" to load this file. \quit

/*
 * 1.3: warehouse scale and throughput (issues #12, #13) and the newcomer's
 * path (issue #16).  Each section below names what it changes.
 */

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
