/* consent_ledger--1.4--1.5.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.5'" to load this file. \quit

/*
 * 1.5: audit records name the subjects of the rows they record (issue #15;
 * README "Erasure").  An audit ledger made by 1.5's library has two more
 * personal columns, old_subject and new_subject: the subject column's text
 * form (a protected table's, else a ledger's subject) in the audited row
 * before and after the change, by which erase_subject() finds a record
 * whatever became of the row since.  The update changes no table: the
 * audit ledger in use keeps its columns (and its records are still found
 * by their row keys) until an administrator rotates it.
 */
COMMENT ON FUNCTION consent_ledger.rotate_audit_ledger() IS
	'retires the audit ledger under the name consent_ledger.audit_log_ledger_<id> and starts a new one whose row keys, row hashes and row subjects are personal; returns the old table, to export and then drop';

/*
 * create_ledger(relation, personal, subject) of a partitioned table: every
 * leaf partition a version 3 ledger with those personal columns; the
 * statement guard of each partitioned table carries them (as trigger
 * arguments) for the partitions added later.  No SQL object changes.
 */
COMMENT ON FUNCTION consent_ledger.create_ledger(pg_catalog.regclass, pg_catalog.name[], pg_catalog.name) IS
	'turns a table, or every partition of a partitioned table, into a ledger table whose personal columns are committed through salted hashes, so that erase_subject() can erase them';
