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
