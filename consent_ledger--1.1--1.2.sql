/* consent_ledger--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.2'" to load this file. \quit

/*
 * 1.2: ledger correctness and life cycle (encoding version 2, receipts,
 * life cycle without preloading, publications, re-creation, keys).
 * Each section below names what it changes.
 */

/*
 * Encoding version 2 (issue 11, README "Canonical row encoding").  The
 * library reads the encoding version of each ledger from
 * consent_ledger.ledgers.encoding and verifies, proves and exports every
 * ledger in its own version, so ledgers made before 1.2 keep version 1.
 * A ledger made from now on -- by create_ledger(), or the consent and
 * audit ledgers when they are first made -- gets the column's default.
 * The library reads this default (no default: version 1), so it keeps
 * making version 1 ledgers until this script has run.
 */
ALTER TABLE consent_ledger.ledgers ALTER COLUMN encoding SET DEFAULT 2;
COMMENT ON COLUMN consent_ledger.ledgers.encoding IS
	'canonical row encoding version of the ledger''s rows (README "Canonical row encoding"); new ledgers get the default';
