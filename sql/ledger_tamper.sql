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
CREATE FUNCTION ledger_id_of(rel regclass) RETURNS int LANGUAGE sql STABLE AS
  $$SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = rel$$;
-- RFC 9162 Merkle tree hash of concatenated 32-byte leaf hashes
CREATE FUNCTION merkle_root(leaves bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  n int := length(leaves) / 32;
  k int := 1;
BEGIN
  IF n = 0 THEN RETURN sha256(''::bytea); END IF;
  IF n = 1 THEN RETURN leaves; END IF;
  WHILE k * 2 < n LOOP k := k * 2; END LOOP;
  RETURN sha256('\x01'::bytea || merkle_root(substring(leaves FROM 1 FOR k * 32))
                              || merkle_root(substring(leaves FROM k * 32 + 1)));
END $$;
-- rounds sealing rounds of 4 rows (one transaction each): checkpoint k
-- covers 4k leaves
CREATE PROCEDURE fill_rounds(rel regclass, rounds int) LANGUAGE plpgsql AS $$
BEGIN
  FOR r IN 0..rounds - 1 LOOP
    FOR i IN 0..3 LOOP
      EXECUTE format('INSERT INTO %s (id, v) VALUES (%s, %L)', rel, 4 * r + i, 'value ' || 4 * r + i);
      COMMIT;
    END LOOP;
    PERFORM consent_ledger.seal();
    COMMIT;
  END LOOP;
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
-- (the latest receipt fails too, and says why)
SELECT * FROM consent_ledger.verify_checkpoint_detail(consent_ledger.checkpoint('t_deleted'));

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

-- 6. the attacker changes a row, recomputes its stored leaf hash, and
--    rewrites the checkpoint to match: the root line of the note, the
--    root column and the sealer's frontier (8 leaves: the size, then the
--    root).  Everything agrees but the signature, which they cannot make.
SELECT make_ledger('t_resigned');
CALL fill('t_resigned');
SELECT consent_ledger.seal() AS sealed_rows;
-- (the test's Merkle function gives the genuine signed root)
SELECT c.root = merkle_root(string_agg(l.leaves, ''::bytea ORDER BY l.first_leaf)) AS merkle_root_matches
FROM consent_ledger.checkpoints c JOIN consent_ledger.log l USING (ledger_id)
WHERE c.ledger_id = ledger_id_of('t_resigned') GROUP BY c.root;
SELECT bypass('t_resigned', false);
UPDATE t_resigned SET v = 'forged' WHERE id = 4;
SELECT bypass('t_resigned', true);
UPDATE consent_ledger.log l
   SET leaves = overlay(leaves PLACING sha256('\x00'::bytea || consent_ledger.leaf_data('t_resigned', 4))
                        FROM (4 - first_leaf)::int * 32 + 1 FOR 32)
 WHERE l.ledger_id = ledger_id_of('t_resigned')
   AND 4 BETWEEN l.first_leaf AND l.first_leaf + l.nleaves - 1;
UPDATE consent_ledger.checkpoints c
   SET note = regexp_replace(note, '^([^\n]*\n[^\n]*\n)[^\n]*\n', '\1' || encode(r.root, 'base64') || E'\n'),
       root = r.root,
       frontier = '\x0000000000000008'::bytea || r.root
  FROM (SELECT merkle_root(string_agg(leaves, ''::bytea ORDER BY first_leaf)) AS root
          FROM consent_ledger.log WHERE ledger_id = ledger_id_of('t_resigned')) r
 WHERE c.ledger_id = ledger_id_of('t_resigned');
-- (the rewrite is real: the note's root line is the forged log's root,
-- and it is no longer the root that was signed)
SELECT split_part(c.note, E'\n', 3) = encode(merkle_root(string_agg(l.leaves, ''::bytea ORDER BY l.first_leaf)), 'base64')
         AS note_root_is_forged_root,
       c.root = merkle_root(string_agg(l.leaves, ''::bytea ORDER BY l.first_leaf)) AS root_column_forged
FROM consent_ledger.checkpoints c JOIN consent_ledger.log l USING (ledger_id)
WHERE c.ledger_id = ledger_id_of('t_resigned') GROUP BY c.note, c.root;
SELECT valid, problem FROM consent_ledger.verify('t_resigned');

-- 6b. only the checkpoint's time line rewritten: the signature fails too
SELECT make_ledger('t_retimed');
CALL fill('t_retimed');
SELECT consent_ledger.seal() AS sealed_rows;
UPDATE consent_ledger.checkpoints
   SET note = regexp_replace(note, '\ntime (\d+)', E'\ntime 1')
 WHERE ledger_id = ledger_id_of('t_retimed');
SELECT valid, problem FROM consent_ledger.verify('t_retimed');

-- 7. a deleted log record: the log is shorter than the signed tree
SELECT make_ledger('t_log_cut');
CALL fill('t_log_cut');
SELECT consent_ledger.seal() AS sealed_rows;
UPDATE consent_ledger.log
   SET nleaves = nleaves - 1,
       txns = txns[1:nleaves - 1], first_ords = first_ords[1:nleaves - 1],
       counts = counts[1:nleaves - 1], leaves = substring(leaves FROM 1 FOR ((nleaves - 1) * 32)::int)
 WHERE ledger_id = ledger_id_of('t_log_cut');
SELECT valid, problem FROM consent_ledger.verify('t_log_cut');
SELECT * FROM consent_ledger.verify_checkpoint_detail(consent_ledger.checkpoint('t_log_cut'));

-- Every other problem verify() can report (issue #18), each triggered
-- alone where it can be: the text of the first problem is asserted.

-- 8. a second row with an existing row's stamp claims its position
SELECT make_ledger('t_twin');
CALL fill('t_twin');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT bypass('t_twin', false);
INSERT INTO t_twin (id, v, ledger_txn, ledger_ord) SELECT id, v, ledger_txn, ledger_ord FROM t_twin WHERE id = 2;
SELECT bypass('t_twin', true);
SELECT valid, regexp_replace(problem, 'ctid \(\d+,\d+\)', 'ctid (b,o)') AS problem FROM consent_ledger.verify('t_twin');

-- 9. more changed rows than verify() keeps to look for reorderings (64):
--    the rest are reported as changed directly
SELECT make_ledger('t_many');
INSERT INTO t_many SELECT g, 'value ' || g FROM generate_series(0, 69) g;
SELECT consent_ledger.seal() AS sealed_rows;
SELECT bypass('t_many', false);
UPDATE t_many SET v = v || ' forged';
SELECT bypass('t_many', true);
SELECT valid, problem FROM consent_ledger.verify('t_many');

-- 10. a log row made malformed (its leaf count no longer adds up)
SELECT make_ledger('t_log_bad');
CALL fill_rounds('t_log_bad', 2);
UPDATE consent_ledger.log SET nleaves = nleaves + 1
 WHERE ledger_id = ledger_id_of('t_log_bad') AND first_leaf = 4;
SELECT valid, problem FROM consent_ledger.verify('t_log_bad');

-- 11. a log row that names a transaction of an earlier log row
SELECT make_ledger('t_log_twice');
CALL fill_rounds('t_log_twice', 2);
UPDATE consent_ledger.log l SET txns[2] = (SELECT txns[1] FROM consent_ledger.log
                                          WHERE ledger_id = l.ledger_id AND first_leaf = 0)
 WHERE ledger_id = ledger_id_of('t_log_twice') AND first_leaf = 4;
SELECT valid, regexp_replace(problem, 'transaction \d+', 'transaction N', 'g') AS problem
FROM consent_ledger.verify('t_log_twice');

-- 12. a malformed pending record (its leaves do not match its count)
SELECT make_ledger('t_pending_bad');
CALL fill('t_pending_bad');
SELECT consent_ledger.seal() AS sealed_rows;
INSERT INTO consent_ledger.pending (ledger_id, txn, first_ord, nleaves, leaves)
  VALUES (ledger_id_of('t_pending_bad'), 999999999, 0, 2, sha256('one leaf only'));
SELECT valid, problem FROM consent_ledger.verify('t_pending_bad');
DELETE FROM consent_ledger.pending WHERE ledger_id = ledger_id_of('t_pending_bad');

-- 13. a checkpoint note that is no note at all
SELECT make_ledger('t_cp_garbage');
CALL fill('t_cp_garbage');
SELECT consent_ledger.seal() AS sealed_rows;
UPDATE consent_ledger.checkpoints SET note = 'garbage' WHERE ledger_id = ledger_id_of('t_cp_garbage');
SELECT valid, problem FROM consent_ledger.verify('t_cp_garbage');

-- 14. another ledger's genuine, validly signed checkpoint put in its place
SELECT make_ledger('t_cp_foreign');
CALL fill('t_cp_foreign');
SELECT consent_ledger.seal() AS sealed_rows;
UPDATE consent_ledger.checkpoints
   SET note = (SELECT note FROM consent_ledger.checkpoints WHERE ledger_id = ledger_id_of('t_twin') AND seq = 1)
 WHERE ledger_id = ledger_id_of('t_cp_foreign');
SELECT valid, problem FROM consent_ledger.verify('t_cp_foreign');

-- 15. a checkpoint removed from the middle of the chain
SELECT make_ledger('t_cp_gap');
CALL fill_rounds('t_cp_gap', 3);
DELETE FROM consent_ledger.checkpoints WHERE ledger_id = ledger_id_of('t_cp_gap') AND seq = 2;
SELECT valid, problem FROM consent_ledger.verify('t_cp_gap');

-- 16. ... and the later one renumbered to close the gap: every note is
--     genuinely signed, but the chain of prev hashes is broken
SELECT make_ledger('t_cp_renumbered');
CALL fill_rounds('t_cp_renumbered', 3);
DELETE FROM consent_ledger.checkpoints WHERE ledger_id = ledger_id_of('t_cp_renumbered') AND seq = 2;
UPDATE consent_ledger.checkpoints SET seq = 2 WHERE ledger_id = ledger_id_of('t_cp_renumbered') AND seq = 3;
SELECT valid, problem FROM consent_ledger.verify('t_cp_renumbered');

-- 17. the latest checkpoint removed: log leaves no checkpoint covers
SELECT make_ledger('t_cp_dropped');
CALL fill_rounds('t_cp_dropped', 2);
DELETE FROM consent_ledger.checkpoints WHERE ledger_id = ledger_id_of('t_cp_dropped') AND seq = 2;
SELECT valid, problem FROM consent_ledger.verify('t_cp_dropped');

-- 18. the sealing state stored with the last checkpoint damaged
SELECT make_ledger('t_frontier');
CALL fill('t_frontier');
SELECT consent_ledger.seal() AS sealed_rows;
UPDATE consent_ledger.checkpoints SET frontier = '\x00'::bytea WHERE ledger_id = ledger_id_of('t_frontier');
SELECT valid, problem FROM consent_ledger.verify('t_frontier');

-- 19. the sealer made to sign a rolled-back tree: the attacker removes the
--     last round from the log and stores the older frontier with the last
--     checkpoint, hands the sealer the first removed leaf as a pending
--     record, lets it seal (a genuinely signed checkpoint of size 5,
--     chained to the checkpoint of size 8), then puts the log back.  Every
--     signature and prev hash holds; the tree shrank.
SELECT make_ledger('t_shrunk');
CALL fill_rounds('t_shrunk', 2);
CREATE TABLE t_shrunk_round2 AS
  SELECT * FROM consent_ledger.log WHERE ledger_id = ledger_id_of('t_shrunk') AND first_leaf = 4;
BEGIN;
DELETE FROM consent_ledger.log WHERE ledger_id = ledger_id_of('t_shrunk') AND first_leaf = 4;
UPDATE consent_ledger.checkpoints
   SET frontier = (SELECT frontier FROM consent_ledger.checkpoints WHERE ledger_id = ledger_id_of('t_shrunk') AND seq = 1)
 WHERE ledger_id = ledger_id_of('t_shrunk') AND seq = 2;
INSERT INTO consent_ledger.pending (ledger_id, txn, first_ord, nleaves, leaves)
  SELECT ledger_id, txns[1], first_ords[1], 1, substring(leaves FROM 1 FOR 32) FROM t_shrunk_round2;
COMMIT;
SELECT consent_ledger.seal() AS sealed_rows;
SELECT seq, tree_size FROM consent_ledger.checkpoints WHERE ledger_id = ledger_id_of('t_shrunk') ORDER BY seq;
BEGIN;
DELETE FROM consent_ledger.log WHERE ledger_id = ledger_id_of('t_shrunk') AND first_leaf = 4;
INSERT INTO consent_ledger.log SELECT * FROM t_shrunk_round2;
COMMIT;
SELECT valid, problem FROM consent_ledger.verify('t_shrunk');

-- the untouched ledgers are still fine
SELECT make_ledger('t_clean');
CALL fill('t_clean');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('t_clean');

ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
