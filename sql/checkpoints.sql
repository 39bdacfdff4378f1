-- Signed checkpoints, receipts, RFC 9162 proofs, and a superuser who
-- rewrites history so consistently that the server re-signs it: only the
-- auditor's receipt catches that.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Only seal() seals in this file, so that log rows and checkpoint numbers
-- are deterministic (the second seal() makes sure the sealer has seen the
-- new interval).
ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

CREATE TABLE hist (id int, v text);
SELECT consent_ledger.create_ledger('hist');
CREATE PROCEDURE add_rows(a int, b int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN a..b LOOP
    INSERT INTO hist VALUES (i, 'value ' || i);
    COMMIT;
  END LOOP;
END $$;
CALL add_rows(0, 5);
SELECT consent_ledger.seal() AS sealed_rows;

-- the receipt an auditor keeps
CREATE TABLE receipts AS SELECT 1 AS n, consent_ledger.checkpoint('hist') AS cp;
SELECT cp ? 'note' AS has_note, (cp->>'tree_size')::int AS tree_size,
       cp->>'key_id' = consent_ledger.key_id() AS signed_by_server_key,
       length(decode(cp->>'root_hash', 'base64')) AS root_bytes,
       length(decode(cp->>'signature', 'base64')) AS sig_bytes,
       split_part(cp->>'note', E'\n', 1) = cp->>'origin' AS origin_first_line,
       split_part(cp->>'note', E'\n', 2) AS size_line,
       position(E'\n\n\u2014 consent_ledger ' IN cp->>'note') > 0 AS c2sp_signature_line
FROM receipts;
SELECT consent_ledger.verify_checkpoint(cp) FROM receipts;

-- more rows; the old receipt still verifies (append-only extension)
CALL add_rows(6, 10);
SELECT consent_ledger.seal() AS sealed_rows;
INSERT INTO receipts SELECT 2, consent_ledger.checkpoint('hist');
SELECT n, (cp->>'tree_size')::int AS size, consent_ledger.verify_checkpoint(cp) FROM receipts ORDER BY n;

-- checkpoints chain: each one commits to the one before
SELECT bool_and(c.prev = sha256(convert_to(p.note, 'UTF8'))) AS chained
FROM consent_ledger.checkpoints c
JOIN consent_ledger.checkpoints p ON p.ledger_id = c.ledger_id AND p.seq = c.seq - 1
WHERE c.ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'hist'::regclass);

-- a forged receipt: flipped signature, tampered size, swapped root (the
-- forged notes alone, without the members that would give them away:
-- sql/receipts.sql shows those refused too)
SELECT consent_ledger.verify_checkpoint(jsonb_build_object('note',
         regexp_replace(cp->>'note', '(\u2014 consent_ledger ........)(.)', '\1' ||
           CASE WHEN substring(cp->>'note' from '\u2014 consent_ledger ........(.)') = 'A' THEN 'B' ELSE 'A' END)))
  AS flipped_signature
FROM receipts WHERE n = 1;
SELECT consent_ledger.verify_checkpoint(jsonb_set(cp, '{tree_size}', '5')) AS wrong_size_member
FROM receipts WHERE n = 1;
SELECT consent_ledger.verify_checkpoint(jsonb_build_object('note',
         replace(r1.cp->>'note', r1.cp->>'root_hash', r2.cp->>'root_hash')))
  AS swapped_root
FROM receipts r1, receipts r2 WHERE r1.n = 1 AND r2.n = 2;
SELECT consent_ledger.verify_checkpoint('{"note": "nonsense"}');
SELECT consent_ledger.verify_checkpoint('{}');
SELECT consent_ledger.verify_checkpoint('[1,2]');

-- RFC 9162 proofs
SELECT p->>'type' AS type, (p->>'leaf_index')::int AS leaf, (p->>'tree_size')::int AS size,
       jsonb_array_length(p->'path') AS path_len,
       p->>'root_hash' = (SELECT cp->>'root_hash' FROM receipts WHERE n = 2) AS root_is_checkpoint_root
FROM (SELECT consent_ledger.inclusion_proof('hist', 3) AS p) s;
SELECT jsonb_array_length(consent_ledger.inclusion_proof('hist', 0, 1)->'path') AS path_len_size1;
SELECT p->>'old_root' = (SELECT cp->>'root_hash' FROM receipts WHERE n = 1) AS old_root_ok,
       p->>'new_root' = (SELECT cp->>'root_hash' FROM receipts WHERE n = 2) AS new_root_ok,
       jsonb_array_length(p->'path') AS path_len
FROM (SELECT consent_ledger.consistency_proof('hist', 6, 11) AS p) s;
SELECT consent_ledger.inclusion_proof('hist', 11);
SELECT consent_ledger.inclusion_proof('hist', -1);
SELECT consent_ledger.inclusion_proof('hist', 0, 12);
SELECT consent_ledger.consistency_proof('hist', 0, 5);
SELECT consent_ledger.consistency_proof('hist', 6, 5);

-- the export: header, keys, one line per sealed leaf, every checkpoint
SELECT split_part(line, ' ', 1) AS kind, count(*)
FROM consent_ledger.export('hist') AS line GROUP BY 1 ORDER BY 1;
SELECT count(*) AS checkpoints FROM consent_ledger.checkpoints
WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'hist'::regclass);

-- A superuser rewrites leaf 4 and rebuilds the log so that the server itself
-- re-seals and re-signs the forged history.  (Every transaction of hist
-- inserted one row, so the k-th transaction of a log row is leaf
-- first_leaf + k - 1.)
UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'hist'::regclass;
ALTER TABLE hist SET (fillfactor = 100);
UPDATE hist SET v = 'rewritten' WHERE id = 4;
UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'hist'::regclass;
ALTER TABLE hist SET (fillfactor = 100);
BEGIN;
INSERT INTO consent_ledger.pending (ledger_id, txn, first_ord, nleaves, leaves)
  SELECT l.ledger_id, r.txn, r.first_ord, 1,
         sha256('\x00'::bytea || consent_ledger.leaf_data('hist', l.first_leaf + r.k - 1))
  FROM consent_ledger.log l,
       unnest(l.txns, l.first_ords) WITH ORDINALITY AS r(txn, first_ord, k)
  WHERE l.ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'hist'::regclass);
DELETE FROM consent_ledger.log
  WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'hist'::regclass);
DELETE FROM consent_ledger.checkpoints
  WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'hist'::regclass);
COMMIT;
SELECT consent_ledger.seal() AS sealed_rows;
-- the rewritten history is self-consistent and freshly signed...
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('hist');
-- ...but the receipts taken before prove the rewrite
SELECT n, consent_ledger.verify_checkpoint(cp) FROM receipts ORDER BY n;

ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
