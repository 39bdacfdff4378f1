-- A superuser who bypasses the extension (catalog edits that switch the
-- ledger's triggers off) changes, deletes, inserts and swaps rows, and
-- rewrites stored hashes; verify() finds each and names its position.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Only seal() seals in this file, so that log rows and checkpoint numbers
-- are deterministic (the second seal() makes sure the sealer has seen the
-- new interval).
ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

-- switch the ledger's triggers off behind the extension's back: a direct
-- catalog edit, then a harmless ALTER so every backend reloads the triggers
CREATE FUNCTION bypass(rel regclass, on_ boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE pg_trigger SET tgenabled = CASE WHEN on_ THEN 'A' ELSE 'D' END
  WHERE tgrelid = rel AND tgname LIKE '~consent_ledger%';
  EXECUTE format('ALTER TABLE %s SET (fillfactor = 100)', rel);
END $$;
CREATE FUNCTION make_ledger(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE %I (id int, v text)', name);
  PERFORM consent_ledger.create_ledger(name::regclass);
END $$;
-- one transaction per row, so that each row is its own log record
CREATE PROCEDURE fill(rel regclass) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 0..7 LOOP
    EXECUTE format('INSERT INTO %s (id, v) VALUES (%s, %L)', rel, i, 'value ' || i);
    COMMIT;
  END LOOP;
END $$;

-- 1. a changed value
SELECT make_ledger('t_changed');
CALL fill('t_changed');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT bypass('t_changed', false);
UPDATE t_changed SET v = 'forged' WHERE id = 5;
SELECT bypass('t_changed', true);
SELECT valid, problem FROM consent_ledger.verify('t_changed');

-- 2. a deleted row
SELECT make_ledger('t_deleted');
CALL fill('t_deleted');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT bypass('t_deleted', false);
DELETE FROM t_deleted WHERE id = 3;
SELECT bypass('t_deleted', true);
SELECT valid, regexp_replace(problem, 'transaction \d+', 'transaction N') AS problem
FROM consent_ledger.verify('t_deleted');

-- 3. an inserted row, with and without a plausible stamp
SELECT make_ledger('t_inserted');
CALL fill('t_inserted');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT bypass('t_inserted', false);
INSERT INTO t_inserted (id, v, ledger_txn, ledger_ord)
  SELECT 99, 'smuggled', ledger_txn, 1 FROM t_inserted WHERE id = 2;
SELECT bypass('t_inserted', true);
SELECT valid, regexp_replace(regexp_replace(problem, 'ctid \(\d+,\d+\)', 'ctid (b,o)'),
                             'transaction \d+', 'transaction N') AS problem
FROM consent_ledger.verify('t_inserted');
SELECT bypass('t_inserted', false);
DELETE FROM t_inserted WHERE id = 99;
INSERT INTO t_inserted (id, v) VALUES (98, 'unstamped');
SELECT bypass('t_inserted', true);
SELECT valid, regexp_replace(regexp_replace(problem, 'ctid \(\d+,\d+\)', 'ctid (b,o)'),
                             'transaction \d+', 'transaction N') AS problem
FROM consent_ledger.verify('t_inserted');

-- 4. two swapped rows: contents swapped, and stamps swapped
SELECT make_ledger('t_swapped');
CALL fill('t_swapped');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT bypass('t_swapped', false);
UPDATE t_swapped SET v = CASE id WHEN 2 THEN 'value 6' ELSE 'value 2' END, id = 8 - id WHERE id IN (2, 6);
SELECT bypass('t_swapped', true);
SELECT valid, problem FROM consent_ledger.verify('t_swapped');

SELECT make_ledger('t_swapped2');
CALL fill('t_swapped2');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT bypass('t_swapped2', false);
UPDATE t_swapped2 a SET ledger_txn = b.ledger_txn, ledger_ord = b.ledger_ord
  FROM t_swapped2 b WHERE (a.id, b.id) IN ((1, 4), (4, 1));
SELECT bypass('t_swapped2', true);
SELECT valid, problem FROM consent_ledger.verify('t_swapped2');

-- 5. a changed row whose stored leaf hash was recomputed to match:
--    the log no longer matches the signed checkpoint root
SELECT make_ledger('t_rehashed');
CALL fill('t_rehashed');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT bypass('t_rehashed', false);
UPDATE t_rehashed SET v = 'forged' WHERE id = 4;
SELECT bypass('t_rehashed', true);
UPDATE consent_ledger.log l
   SET leaves = overlay(leaves PLACING sha256('\x00'::bytea || consent_ledger.leaf_data('t_rehashed', 4))
                        FROM (4 - first_leaf)::int * 32 + 1 FOR 32)
 WHERE l.ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 't_rehashed'::regclass)
   AND 4 BETWEEN l.first_leaf AND l.first_leaf + l.nleaves - 1;
SELECT valid, problem FROM consent_ledger.verify('t_rehashed');

-- 6. the attacker also re-signs nothing but rewrites the checkpoint's root:
--    the signature no longer verifies
SELECT make_ledger('t_resigned');
CALL fill('t_resigned');
SELECT consent_ledger.seal() AS sealed_rows;
UPDATE consent_ledger.checkpoints
   SET note = regexp_replace(note, '\ntime (\d+)', E'\ntime 1')
 WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 't_resigned'::regclass);
SELECT valid, problem FROM consent_ledger.verify('t_resigned');

-- 7. a deleted log record: the log is shorter than the signed tree
SELECT make_ledger('t_log_cut');
CALL fill('t_log_cut');
SELECT consent_ledger.seal() AS sealed_rows;
UPDATE consent_ledger.log
   SET nleaves = nleaves - 1,
       txns = txns[1:nleaves - 1], first_ords = first_ords[1:nleaves - 1],
       counts = counts[1:nleaves - 1], leaves = substring(leaves FROM 1 FOR (nleaves - 1) * 32)
 WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 't_log_cut'::regclass);
SELECT valid, problem FROM consent_ledger.verify('t_log_cut');

-- the untouched ledgers are still fine
SELECT make_ledger('t_clean');
CALL fill('t_clean');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('t_clean');

ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
