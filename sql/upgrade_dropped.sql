-- ALTER EXTENSION ... UPDATE from 1.1 to 1.2 with a ledger retired and
-- dropped under 1.1: the update records it in dropped_ledgers (without a
-- name: 1.1 kept none), and it stays verifiable.  Runs in a database of
-- its own.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE DATABASE cl_upgrade_dropped;
\c cl_upgrade_dropped
CREATE EXTENSION consent_ledger VERSION '1.1';
CREATE TABLE gone (id int, v text);
SELECT consent_ledger.create_ledger('gone');
INSERT INTO gone SELECT g, 'value ' || g FROM generate_series(1, 6) g;
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
CREATE TABLE kept AS
  SELECT consent_ledger.checkpoint('gone') AS cp, 'gone'::regclass::oid AS relid,
         (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'gone'::regclass) AS ledger_id;
SELECT consent_ledger.retire_ledger('gone');
DROP TABLE gone;

ALTER EXTENSION consent_ledger UPDATE TO '1.2';
SELECT extversion FROM pg_extension WHERE extname = 'consent_ledger';
SELECT d.relid = k.relid AS same_relid, d.schema_name, d.table_name
FROM consent_ledger.dropped_ledgers d JOIN kept k USING (ledger_id);
SELECT v."rows", v.valid, v.problem FROM kept k, consent_ledger.verify(k.relid::regclass) v;
SELECT consent_ledger.ledger(ledger_id::text)::oid = relid AS by_id FROM kept;
SELECT d.* FROM kept, consent_ledger.verify_checkpoint_detail(cp) d;
-- the dropped ledger keeps no reference to its old OID in ledgers (only
-- dropped_ledgers has it), and relid may be NULL from now on
SELECT l.relid IS NULL AS relid_cleared FROM consent_ledger.ledgers l JOIN kept USING (ledger_id);
SELECT attnotnull FROM pg_attribute
WHERE attrelid = 'consent_ledger.ledgers'::regclass AND attname = 'relid';
\c contrib_regression
DROP DATABASE cl_upgrade_dropped WITH (FORCE);
