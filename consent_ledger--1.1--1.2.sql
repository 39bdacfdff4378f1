/* consent_ledger--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.2'" to load this file. \quit

/*
 * 1.2: ledger correctness and life cycle (encoding version 2, receipts,
 * life cycle without preloading, publications, re-creation, keys).
 * Each section below names what it changes.
 */

/*
 * 1.2 life cycle: without preloading nothing is half done.  Every C
 * function refuses (55000) when the library was not preloaded; this event
 * trigger makes DDL in the database refuse too, since the utility hook that
 * guards ledgers and protected tables is only installed by preloading.
 * A superuser can still ALTER EVENT TRIGGER consent_ledger_require_preload
 * DISABLE (commands on event triggers do not fire them).
 */
CREATE FUNCTION consent_ledger._require_preload() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'cl_require_preload_ddl' LANGUAGE C;
REVOKE ALL ON FUNCTION consent_ledger._require_preload() FROM PUBLIC;
CREATE EVENT TRIGGER consent_ledger_require_preload ON ddl_command_start
	EXECUTE FUNCTION consent_ledger._require_preload();
