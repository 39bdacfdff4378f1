-- ALTER EXTENSION ... UPDATE from 1.0 (the released version) to 1.1 with
-- real data: a sealed ledger and a table protected under 1.0, which the
-- update takes into custody.  Runs in a database of its own.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE DATABASE cl_upgrade;
\c cl_upgrade
CREATE EXTENSION consent_ledger VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'consent_ledger';
CREATE ROLE up_loader LOGIN;
CREATE ROLE up_reader LOGIN;
CREATE TABLE up_ledger (id int, note text);
INSERT INTO up_ledger SELECT g, 'before ' || g FROM generate_series(1, 20) g;
SELECT consent_ledger.create_ledger('up_ledger');
INSERT INTO up_ledger SELECT g, 'adopted ' || g FROM generate_series(21, 30) g;
SELECT consent_ledger.define_purpose('up_analytics');
SELECT count(consent_ledger.grant_consent(s, 'up_analytics')) FROM generate_series(1, 3) s;
SELECT consent_ledger.authorize_purpose('up_reader', 'up_analytics');
CREATE TABLE up_facts (id serial PRIMARY KEY, subject bigint, v int);
ALTER TABLE up_facts OWNER TO up_loader;
SET ROLE up_loader;
INSERT INTO up_facts (subject, v) SELECT g % 5, g FROM generate_series(1, 10) g;
GRANT SELECT ON up_facts TO up_reader;
RESET ROLE;
-- under the 1.0 objects protect() works, without custody
SELECT consent_ledger.protect('up_facts', 'subject');
SELECT relowner::regrole AS owner_under_1_0 FROM pg_class WHERE oid = 'up_facts'::regclass;
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
SELECT tree_size AS size_before FROM consent_ledger.checkpoints c
  JOIN consent_ledger.ledgers l USING (ledger_id)
 WHERE l.relid = 'up_ledger'::regclass ORDER BY seq DESC LIMIT 1;

ALTER EXTENSION consent_ledger UPDATE TO '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'consent_ledger';
SELECT relowner::regrole AS owner_after_update FROM pg_class WHERE oid = 'up_facts'::regclass;
SELECT previous_owner FROM consent_ledger.protected WHERE relid = 'up_facts'::regclass;
-- the previous owner still loads the table (its serial sequence included), but has no DDL
SET ROLE up_loader;
INSERT INTO up_facts (subject, v) VALUES (1, 11);
ALTER TABLE up_facts ADD COLUMN leak text GENERATED ALWAYS AS (v::text) STORED;
\echo :SQLSTATE
RESET ROLE;
-- the ledger keeps growing and verifies, old rows and new
INSERT INTO up_ledger SELECT g, 'after ' || g FROM generate_series(31, 35) g;
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('up_ledger');
SELECT bool_and(valid) AS all_ledgers_valid FROM consent_ledger.verify();
-- an analyst sees the consented rows (subjects 1, 2, 3) only
SET ROLE up_reader;
SET consent_ledger.purpose = 'up_analytics';
SELECT count(*) AS consented_rows FROM up_facts;
RESET consent_ledger.purpose;
RESET ROLE;
-- unprotect() after the update gives the table back to its 1.0 owner
SELECT consent_ledger.unprotect('up_facts');
SELECT relowner::regrole AS owner_after_unprotect FROM pg_class WHERE oid = 'up_facts'::regclass;
\c contrib_regression
DROP DATABASE cl_upgrade WITH (FORCE);
DROP ROLE up_loader, up_reader;
