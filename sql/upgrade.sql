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
-- a ledger of encoding version 1 with the types whose v1 encoding went
-- through send functions (varchar, bpchar: client_encoding) and a
-- composite (encoded by position in version 1)
CREATE TYPE up_pair AS (payer text, payee text);
CREATE TABLE up_v1 (id int, vc varchar(8), bp char(4), cp up_pair);
SELECT consent_ledger.create_ledger('up_v1');
INSERT INTO up_v1 VALUES (1, U&'v\00e9', U&'\00e9', ROW('alice', U&'b\00e9b'));
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

-- 1.2: version 1 ledgers keep version 1 and verify in every session, new
-- rows included (written as if client_encoding were the database's, as
-- version 1 wrote them in the normal case); new ledgers use version 2
ALTER EXTENSION consent_ledger UPDATE TO '1.2';
SELECT extversion FROM pg_extension WHERE extname = 'consent_ledger';
SELECT l.relid, l.encoding FROM consent_ledger.ledgers l
 WHERE l.relid IN ('up_ledger'::regclass, 'up_v1'::regclass) ORDER BY 1;
SET client_encoding = 'LATIN1';
INSERT INTO up_v1 VALUES (2, U&'w\00e9', U&'\00e9\00e9', ROW(U&'\00e9', 'x'));
SELECT encode(substr(consent_ledger.leaf_data('up_v1', 1), 14), 'hex') AS v1_row_under_latin1;
RESET client_encoding;
SELECT encode(substr(consent_ledger.leaf_data('up_v1', 0), 1, 1), 'hex') AS v1_version_byte,
       encode(substr(consent_ledger.leaf_data('up_v1', 0), 14), 'hex') AS v1_row;
-- streamed, with the new row pending (integer first_ord and nleaves)
SET consent_ledger.verify_memory = 0;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('up_v1');
SET consent_ledger.verify_memory = '1GB';  -- in memory
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('up_v1');
SET client_encoding = 'LATIN1';
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('up_v1');
SET client_encoding = 'EUC_JP';
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('up_v1');
RESET client_encoding;
-- version 1 hashes composites by position: a new attribute would change
-- old rows, so it is refused while a version 1 ledger uses the type
ALTER TYPE up_pair ADD ATTRIBUTE memo text;
\echo :SQLSTATE
CREATE TABLE up_v2 (id int);
SELECT consent_ledger.create_ledger('up_v2');
SELECT encoding FROM consent_ledger.ledgers WHERE relid = 'up_v2'::regclass;
SELECT bool_and(valid) AS all_ledgers_valid FROM consent_ledger.verify();
-- 1.3 stored tree hashes: a log sealed before the update, in rounds that
-- cross a 256-leaf tile edge.  Its proofs (recomputed from the leaves: the
-- 1.2 schema has no tree_hashes) are kept to compare with those after.
INSERT INTO up_ledger SELECT g, 'tile ' || g FROM generate_series(36, 300) g;
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
INSERT INTO up_ledger SELECT g, 'tile ' || g FROM generate_series(301, 600) g;
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
CREATE TABLE up_proofs AS
SELECT i, n, consent_ledger.inclusion_proof('up_ledger', i, n) AS inc,
       consent_ledger.consistency_proof('up_ledger', i + 1, n) AS con
  FROM unnest(ARRAY[0, 255, 256, 511, 512, 599]) i, unnest(ARRAY[513, 600]) n
 WHERE i < n;
-- the library verifies the 1.2 log (integer counts) streamed as well as
-- in memory
SET consent_ledger.verify_memory = 0;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('up_ledger');
SELECT bool_and(valid) AS all_ledgers_valid_streamed FROM consent_ledger.verify();
SET consent_ledger.verify_memory = '1GB';  -- in memory

-- 1.3: the update to the current version keeps every ledger valid
ALTER EXTENSION consent_ledger UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'consent_ledger';
SELECT bool_and(valid) AS all_ledgers_valid FROM consent_ledger.verify();
-- 1.3: the internal tables' counts are 64-bit and pending has its index;
-- the log rows written before (integer counts) still verify, and the log
-- keeps growing with the same tree
SELECT a.attrelid::regclass AS tab, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a
 WHERE a.attrelid IN ('consent_ledger.log'::regclass, 'consent_ledger.pending'::regclass)
   AND a.attname IN ('first_ord', 'nleaves', 'first_ords', 'counts') ORDER BY 1, 2;
SELECT pg_catalog.pg_get_indexdef(indexrelid) AS pending_index
  FROM pg_index WHERE indrelid = 'consent_ledger.pending'::regclass;
INSERT INTO up_ledger SELECT g, 'after 1.3 ' || g FROM generate_series(601, 605) g;
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('up_ledger');
SELECT count(*) AS log_rows_before_and_after FROM consent_ledger.log g
  JOIN consent_ledger.ledgers l USING (ledger_id) WHERE l.relid = 'up_ledger'::regclass;
-- the update stored the subtree hashes of the old log (600 leaves: two
-- complete subtrees of 256), and the proofs built from them are the ones
-- recomputed before
SELECT t.level, t.idx, l.relid FROM consent_ledger.tree_hashes t
  JOIN consent_ledger.ledgers l USING (ledger_id) ORDER BY l.relid::text, t.level, t.idx;
SELECT count(*) AS proofs,
       count(*) FILTER (WHERE inc = consent_ledger.inclusion_proof('up_ledger', i, n)
                          AND con = consent_ledger.consistency_proof('up_ledger', i + 1, n)) AS unchanged
  FROM up_proofs;
-- a changed one is found by verify(), in memory and streamed
CREATE TEMP TABLE kept_hash AS SELECT * FROM consent_ledger.tree_hashes
 WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'up_ledger'::regclass)
   AND level = 1 AND idx = 0;
UPDATE consent_ledger.tree_hashes SET hash = pg_catalog.sha256('x'::bytea)
 WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'up_ledger'::regclass)
   AND level = 1 AND idx = 0;
SELECT relation, valid, problem FROM consent_ledger.verify('up_ledger');
SET consent_ledger.verify_memory = 0;
SELECT relation, valid, problem FROM consent_ledger.verify('up_ledger');
SET consent_ledger.verify_memory = '1GB';  -- in memory
-- put back, every ledger verifies again (in memory and streamed)
UPDATE consent_ledger.tree_hashes t SET hash = k.hash FROM kept_hash k
 WHERE t.ledger_id = k.ledger_id AND t.level = k.level AND t.idx = k.idx;
SELECT bool_and(valid) AS all_ledgers_valid FROM consent_ledger.verify();
SET consent_ledger.verify_memory = 0;
SELECT bool_and(valid) AS all_ledgers_valid_streamed FROM consent_ledger.verify();
SET consent_ledger.verify_memory = '1GB';  -- in memory
-- 1.3: every row sealed before the update has its gap-free log position
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
SELECT count(*) AS rows, count(p.leaf) AS positioned,
       min(p.leaf) AS first, max(p.leaf) AS last, count(DISTINCT p.leaf) AS distinct_positions
FROM up_ledger u LEFT JOIN consent_ledger.leaf_positions('up_ledger') p USING (ledger_txn, ledger_ord);
-- and the consent checks cost 10, so cheap leakproof conditions run first
SELECT p.oid::regprocedure AS check, p.procost FROM pg_proc p
 WHERE p.pronamespace = 'consent_ledger'::regnamespace AND p.proname IN ('allowed', 'view_allows')
 ORDER BY 1::text;
\c contrib_regression
DROP DATABASE cl_upgrade WITH (FORCE);
DROP ROLE up_loader, up_reader;
