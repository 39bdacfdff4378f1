/* consent_ledger--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.3'" to load this file. \quit

/*
 * 1.3: warehouse scale and throughput (issues #12, #13) and the newcomer's
 * path (issue #16).  Each section below names what it changes.
 */

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
