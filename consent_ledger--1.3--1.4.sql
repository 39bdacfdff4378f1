/* consent_ledger--1.3--1.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.4'" to load this file. \quit

/*
 * 1.4: the right to erasure for the extension's own ledgers made before
 * 1.3 (issue #15; README "Erasure").
 */

/*
 * The consent ledger (src/migrate.c).  One made before 1.3 has its events'
 * evidence in its leaves, so erase_subject() cannot redact it.  An
 * administrator moves its events into a new consent ledger whose evidence
 * is personal; the old ledger is retired and dropped, its log and
 * checkpoints kept.  Nothing else changes: the update itself moves no
 * data (the migration takes the consent ledger's locks; run it when it
 * suits).
 */
CREATE FUNCTION consent_ledger.migrate_consent_ledger()
	RETURNS pg_catalog.int8
	AS 'MODULE_PATHNAME', 'cl_migrate_consent_ledger' LANGUAGE C STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.migrate_consent_ledger() IS
	'moves the events of a consent ledger made before 1.3 into a new consent ledger whose evidence is personal (erasable); the old one is retired and dropped, its log and checkpoints kept; returns the number of events moved';
REVOKE ALL ON FUNCTION consent_ledger.migrate_consent_ledger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.migrate_consent_ledger() TO consent_ledger_admin;

/*
 * The audit ledger (src/audit.c): only the extension writes it, so it is
 * rotated rather than migrated.  The old one is retired and renamed, a new
 * one (row keys and row hashes personal) made in the same transaction; an
 * administrator exports the old one and drops it (README "Rotating the
 * audit ledger").
 */
CREATE FUNCTION consent_ledger.rotate_audit_ledger()
	RETURNS pg_catalog.regclass
	AS 'MODULE_PATHNAME', 'cl_rotate_audit_ledger' LANGUAGE C VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION consent_ledger.rotate_audit_ledger() IS
	'retires the audit ledger under the name consent_ledger.audit_log_ledger_<id> and starts a new one whose row keys and row hashes are personal; returns the old table, to export and then drop';
REVOKE ALL ON FUNCTION consent_ledger.rotate_audit_ledger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.rotate_audit_ledger() TO consent_ledger_admin;
