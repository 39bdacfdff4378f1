/* consent_ledger--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.3'" to load this file. \quit

/*
 * 1.3: warehouse scale and throughput (issues #12, #13) and the newcomer's
 * path (issue #16).  Each section below names what it changes.
 */

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
