-- Signed audit: every change to an audited table and every read of
-- protected data lands in consent_ledger.audit_log, also when the
-- transaction rolls back, errors out or is read-only; records hold keys
-- and hashes, never the personal data.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Only seal() seals in this file (the sealer's interval is an hour), so
-- that each seal() returns a known number of rows: those committed into
-- ledgers since the previous one.  The second seal() of the settle seals
-- nothing: the first sealed everything before it.
ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

CREATE ROLE regress_audit_analyst LOGIN;
CREATE TABLE accounts (id int PRIMARY KEY, email text, balance numeric);
INSERT INTO accounts VALUES (1, 'ann@example.org', 100), (2, 'bo@example.org', 100), (3, 'cy@example.org', 100);
SELECT consent_ledger.audit('accounts');
SELECT consent_ledger.audit('accounts');
\echo :SQLSTATE
SELECT consent_ledger.audit('consent_ledger.audit_log');
\echo :SQLSTATE

CREATE TEMP TABLE marks AS SELECT coalesce(max(record_id), 0) AS before FROM consent_ledger.audit_log;
CREATE FUNCTION new_records() RETURNS TABLE (kind text, operation text, relation text, role_name text,
    purpose text, row_key text, old_hash boolean, new_hash boolean, outcome text,
    rows_returned bigint, rows_withheld bigint, rls_bypassed boolean)
  LANGUAGE sql AS $$
    SELECT kind, operation, relation, role_name, purpose, row_key,
           old_row_hash IS NOT NULL, new_row_hash IS NOT NULL, outcome,
           rows_returned, rows_withheld, rls_bypassed
    FROM consent_ledger.audit_log WHERE record_id > (SELECT before FROM marks)
    -- records of rolled-back work are written asynchronously: sort, do not rely on ids
    ORDER BY kind, outcome, operation, role_name, row_key, rows_returned, rows_withheld $$;
CREATE FUNCTION mark() RETURNS void LANGUAGE sql AS
  $$ UPDATE marks SET before = (SELECT coalesce(max(record_id), 0) FROM consent_ledger.audit_log) $$;

-- committed changes: written in the audited transaction itself
INSERT INTO accounts VALUES (4, 'di@example.org', 5);
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
DELETE FROM accounts WHERE id = 2;
SELECT * FROM new_records();
SELECT mark();

-- the record names the audited transaction and hashes the rows' contents
BEGIN;
UPDATE accounts SET balance = 7 WHERE id = 3;
SELECT xid = pg_current_xact_id() AS same_transaction,
       new_row_hash = consent_ledger.row_hash('accounts', a) AS new_hash_matches
FROM consent_ledger.audit_log, accounts a
WHERE record_id > (SELECT before FROM marks) AND a.id = 3;
COMMIT;
SELECT mark();

-- an audited UPDATE then ROLLBACK leaves its record, marked rolled back
BEGIN;
UPDATE accounts SET balance = 0 WHERE id = 1;
ROLLBACK;
-- and so does a rolled-back savepoint inside a committed transaction
BEGIN;
INSERT INTO accounts VALUES (5, 'ed@example.org', 1);
SAVEPOINT s;
UPDATE accounts SET balance = -1 WHERE id = 5;
ROLLBACK TO s;
COMMIT;
-- and a statement that fails halfway
UPDATE accounts SET balance = 1 / (id - 4);
TRUNCATE accounts;
SELECT consent_ledger.seal() AS sealed_rows_writer_caught_up;
SELECT * FROM new_records();
SELECT mark();

-- no personal data values in the trail
SELECT count(*) AS records_mentioning_an_email FROM consent_ledger.audit_log l
WHERE l::text LIKE '%example.org%';

-- reads of protected data
SELECT consent_ledger.define_purpose('support', 'customer support');
SELECT consent_ledger.authorize_purpose('regress_audit_analyst', 'support');
CREATE TABLE tickets (id int, customer int, body text);
INSERT INTO tickets SELECT g, g % 4, 'ticket ' || g FROM generate_series(1, 40) g;
SELECT consent_ledger.protect('tickets', 'customer');
GRANT SELECT ON tickets TO regress_audit_analyst;
SELECT consent_ledger.grant_consent(1, 'support') > 0 AS granted;
SELECT mark();
SET ROLE regress_audit_analyst;
SET consent_ledger.purpose = 'support';
SELECT count(*) FROM tickets;
-- a read in a READ ONLY transaction that is then rolled back
BEGIN READ ONLY;
SELECT id FROM tickets WHERE id < 10 ORDER BY id;
ROLLBACK;
-- a read that errors halfway
SELECT id / (id - 25) FROM tickets ORDER BY id;
-- a cursor never closed in a transaction that fails
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM tickets ORDER BY id;
FETCH 3 FROM c;
SELECT 1 / 0;
ROLLBACK;
RESET ROLE;
-- the superuser bypasses row-level security but not the audit
SELECT count(*) FROM tickets;
COPY tickets TO '/dev/null';
-- its outcome record is queued, not waited for: wait (30 s at most) until
-- the audit writer has written it (reading at once raced with the writer)
DO $$BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN EXISTS (SELECT FROM consent_ledger.audit_log WHERE relation = 'public.tickets'
                      AND operation = 'COPY TO' AND outcome = 'completed');
    PERFORM pg_sleep(0.05);
  END LOOP;
END$$;
SELECT * FROM new_records();

-- the audit ledger is a ledger: append-only, sealed, verified
UPDATE consent_ledger.audit_log SET outcome = 'committed';
\echo :SQLSTATE
DELETE FROM consent_ledger.audit_log;
\echo :SQLSTATE
SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, pending, valid, problem FROM consent_ledger.verify('consent_ledger.audit_log');
-- a superuser who edits a record behind the extension's back is caught
UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'consent_ledger.audit_log'::regclass;
ALTER TABLE consent_ledger.audit_log SET (fillfactor = 100);
UPDATE consent_ledger.audit_log SET role_name = 'somebody_else' WHERE operation = 'TRUNCATE';
UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'consent_ledger.audit_log'::regclass;
ALTER TABLE consent_ledger.audit_log SET (fillfactor = 100);
SELECT valid, problem ~ '^changed at leaf \d+' AS problem_found
FROM consent_ledger.verify('consent_ledger.audit_log');

-- the audit triggers cannot be switched off
ALTER TABLE accounts DISABLE TRIGGER ALL;
\echo :SQLSTATE
ALTER TABLE accounts DISABLE TRIGGER "~consent_ledger_audit";
\echo :SQLSTATE
DROP TRIGGER "~consent_ledger_audit" ON accounts;
\echo :SQLSTATE

-- Records say what happened, per statement and relation (issue #16).
-- Outcome records are queued, not waited for: wait (30 s at most) until
-- the writer wrote at least n of them for an application_name.
CREATE FUNCTION wait_outcomes(app text, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN (SELECT count(*) FROM consent_ledger.audit_log
               WHERE application_name = app AND outcome <> 'started') >= n;
    PERFORM pg_sleep(0.05);
  END LOOP;
END$$;
CREATE FUNCTION records_of(app text) RETURNS TABLE (kind text, operation text, relation text,
    role_name text, purpose text, outcome text, rows_returned bigint, rows_withheld bigint)
  LANGUAGE sql AS $$
    SELECT kind, operation, relation, role_name, purpose, outcome, rows_returned, rows_withheld
    FROM consent_ledger.audit_log WHERE application_name = app
    ORDER BY relation, outcome DESC, record_id $$;
CREATE TABLE visits (id int PRIMARY KEY, customer int);
INSERT INTO visits SELECT g, g % 5 FROM generate_series(1, 50) g;
SELECT consent_ledger.protect('visits', 'customer');
GRANT SELECT ON visits TO regress_audit_analyst;
-- a trusted role may create a foreign key to a protected table
CREATE TABLE visit_notes (visit int REFERENCES visits (id));
GRANT INSERT ON visit_notes TO regress_audit_analyst;
CREATE TABLE visit_notes_deferred (visit int REFERENCES visits (id) DEFERRABLE INITIALLY DEFERRED);
GRANT INSERT ON visit_notes_deferred TO regress_audit_analyst;

SET ROLE regress_audit_analyst;
SET consent_ledger.purpose = 'support';
-- a cursor read in three FETCHes: one outcome record, with the rows of all
-- three (2 + 3 + 5 of the 10 rows with consent) and the 30 rows withheld
SET application_name = 'cl_cursor';
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM tickets ORDER BY id;
FETCH 2 FROM c;
FETCH 3 FROM c;
FETCH 100 FROM c;
COMMIT;
-- a thousand references to one table in one statement: one read of it,
-- rows withheld summed over the references (a slot in shared memory holds
-- parallel workers' counts for 8 relations per query: not needed here)
SET application_name = 'cl_union';
SET max_parallel_workers_per_gather = 0;
\set ECHO none
SELECT 'SELECT count(*) FROM (' || string_agg('SELECT id FROM tickets', ' UNION ALL ') || ') u'
FROM generate_series(1, 1000) \gexec
\set ECHO all
RESET max_parallel_workers_per_gather;
-- withheld counts the rows the consent check hid, not the rows the query's
-- own (leakproof) condition drops: 8 hidden rows have body < 'ticket 2'
SET application_name = 'cl_where';
SELECT count(*) FROM tickets WHERE body < 'ticket 2';
-- two protected tables in one statement: each its own withheld
SET application_name = 'cl_join';
SELECT count(*) FROM tickets t JOIN visits v USING (id);
-- rows withheld in parallel workers count too (the leader takes no part
-- in the scan here: without the workers' counts it would say 0)
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
SET application_name = 'cl_parallel';
SELECT count(*) FROM tickets;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
-- foreign-key checks are recorded as what they are: one record per
-- statement and referenced table, the rows of every check summed
SET application_name = 'cl_fk';
INSERT INTO visit_notes VALUES (1), (2), (6);
SET application_name = 'cl_fk_fails';
INSERT INTO visit_notes VALUES (3), (9999);
-- deferred checks run at COMMIT, outside any statement: one record for
-- the transaction's checks of that table
SET application_name = 'cl_fk_deferred';
BEGIN;
INSERT INTO visit_notes_deferred VALUES (1);
INSERT INTO visit_notes_deferred VALUES (2), (3);
COMMIT;
RESET application_name;
RESET ROLE;
SELECT wait_outcomes('cl_cursor', 1), wait_outcomes('cl_union', 1), wait_outcomes('cl_where', 1),
       wait_outcomes('cl_join', 2), wait_outcomes('cl_fk', 1), wait_outcomes('cl_fk_fails', 1),
       wait_outcomes('cl_fk_deferred', 1), wait_outcomes('cl_parallel', 1);
SELECT * FROM records_of('cl_cursor');
SELECT count(*) AS union_records FROM consent_ledger.audit_log WHERE application_name = 'cl_union';
SELECT * FROM records_of('cl_union');
SELECT * FROM records_of('cl_where');
SELECT * FROM records_of('cl_join');
SELECT * FROM records_of('cl_parallel');
SELECT * FROM records_of('cl_fk');
SELECT * FROM records_of('cl_fk_fails');
SELECT * FROM records_of('cl_fk_deferred');

-- record ids come from a sequence, so they have gaps (an audited change
-- rolled back took an id for the record it wrote in its transaction; its
-- "rolled back" copy gets a new one); the log position of a sealed record
-- counts from 0 without a gap
BEGIN;
INSERT INTO accounts VALUES (9, 'gap@example.org', 1);
ROLLBACK;
DO $$BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN EXISTS (SELECT FROM consent_ledger.audit_log WHERE row_key = '(id)=(9)' AND outcome = 'rolled back');
    PERFORM pg_sleep(0.05);
  END LOOP;
END$$;
SELECT max(record_id) - min(record_id) + 1 > count(*) AS record_ids_have_gaps FROM consent_ledger.audit_log;
SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT count(*) = (SELECT count(*) FROM consent_ledger.audit_log) AS every_record_has_a_position,
       min(leaf) = 0 AND max(leaf) = count(*) - 1 AND count(DISTINCT leaf) = count(*) AS positions_gap_free
FROM consent_ledger.leaf_positions('consent_ledger.audit_log') p
JOIN consent_ledger.audit_log a USING (ledger_txn, ledger_ord);

ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
