-- Receipts are all-or-nothing (issue #11 item 3), the inserting
-- transaction's own rows are pending (item 2), and retired and dropped
-- ledgers stay verifiable by relid, id, origin or name (item 7).
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Only seal() seals in this file (the second seal() makes sure the sealer
-- has seen the new interval).
ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() >= 0 AS sealer_settled;

CREATE TABLE rc (id int, v text);
SELECT consent_ledger.create_ledger('rc');
INSERT INTO rc SELECT g, 'value ' || g FROM generate_series(1, 5) g;
SELECT consent_ledger.seal() >= 0 AS sealed;
CREATE TABLE rc_receipts AS SELECT consent_ledger.checkpoint('rc') AS cp;

-- ---------------------------------------------------------------------
-- 1. A receipt is all-or-nothing: each member checkpoint() gives, changed
--    alone to another value of the right type, makes it fail, with the
--    reason; the genuine receipt holds, and so does its bare note.
-- ---------------------------------------------------------------------
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_receipts));
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT jsonb_build_object('note', cp->'note') FROM rc_receipts));
CREATE TABLE rc_forged (member text, forged jsonb);
INSERT INTO rc_forged
SELECT m, jsonb_set(cp, ARRAY[m], v)
FROM rc_receipts, LATERAL (VALUES
  ('origin', to_jsonb('consent_ledger/' || repeat('0', 32))),
  ('tree_size', to_jsonb((cp->>'tree_size')::int - 1)),
  ('root_hash', to_jsonb(encode(sha256('other root'), 'base64'))),
  ('time', to_jsonb((cp->>'time')::bigint + 1)),
  ('prev_hash', to_jsonb(encode(sha256('other prev'), 'base64'))),
  ('key_id', to_jsonb(CASE WHEN cp->>'key_id' = '00000000' THEN '00000001' ELSE '00000000' END)),
  ('signature', to_jsonb(replace(encode(sha512('other signature'), 'base64'), E'\n', '')))
) AS t(m, v);
-- (each forgery differs from the genuine receipt in exactly its member)
SELECT member, (SELECT count(*) FROM jsonb_each(forged) f JOIN jsonb_each(cp) g USING (key)
                WHERE f.value <> g.value) AS members_changed,
       forged->member <> cp->member AS this_member_changed
FROM rc_forged, rc_receipts ORDER BY member;
SELECT member, consent_ledger.verify_checkpoint(forged) AS verifies
FROM rc_forged ORDER BY member;
SELECT member, d.valid, d.reason
FROM rc_forged, consent_ledger.verify_checkpoint_detail(forged) d ORDER BY member;
-- members of the wrong JSON type
SELECT t.m, d.valid, d.reason
FROM rc_receipts, LATERAL (VALUES ('tree_size', to_jsonb((cp->>'tree_size'))), ('time', 'null'::jsonb),
                                  ('tree_size', '4.5'::jsonb), ('time', to_jsonb(-1)),
                                  ('origin', '["x"]'::jsonb), ('key_id', 'true'::jsonb)) AS t(m, v),
     consent_ledger.verify_checkpoint_detail(jsonb_set(cp, ARRAY[t.m], t.v)) d;
-- a number written with a fraction (even of zeros) is refused, as the
-- offline verifier refuses it (section 9); members checkpoint() does not
-- give are not checked
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp || jsonb_build_object('tree_size', (cp->>'tree_size')::numeric(10,2), 'comment', 'mine') FROM rc_receipts));
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp || jsonb_build_object('comment', 'mine') FROM rc_receipts));

-- ---------------------------------------------------------------------
-- 2. Malformed receipts and unknown origins: false and a reason, not an
--    error, so that many receipts can be checked in one query.
-- ---------------------------------------------------------------------
SELECT r.label, d.valid, d.reason
FROM (VALUES ('empty object', '{}'::jsonb), ('array', '[1, 2]'), ('string', '"a note"'), ('null', 'null'),
             ('numeric note', '{"note": 5}'), ('garbage note', '{"note": "garbage\n"}'),
             ('note without its signature line', (SELECT jsonb_build_object('note', split_part(cp->>'note', E'\n\n', 1) || E'\n') FROM rc_receipts)),
             ('unknown origin', (SELECT jsonb_build_object('note', replace(cp->>'note', cp->>'origin', 'consent_ledger/' || repeat('0', 32))) FROM rc_receipts)),
             ('genuine', (SELECT cp FROM rc_receipts))) AS r(label, receipt),
     consent_ledger.verify_checkpoint_detail(r.receipt) d;
SELECT consent_ledger.verify_checkpoint('{"note": "garbage\n"}') AS garbage_receipt;

-- ---------------------------------------------------------------------
-- 3. Rows of the caller's own open transaction are pending, never extra
--    (also after a rolled-back savepoint, and rows the statement's own
--    snapshot cannot see yet); committed and sealed, they verify.
-- ---------------------------------------------------------------------
BEGIN;
INSERT INTO rc VALUES (6, 'mine');
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc');
SAVEPOINT s;
INSERT INTO rc VALUES (7, 'rolled back');
ROLLBACK TO s;
INSERT INTO rc VALUES (8, 'mine too');
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc');
WITH ins AS (INSERT INTO rc VALUES (9, 'same statement') RETURNING id)
SELECT v."rows", v.pending, v.valid, v.problem FROM consent_ledger.verify('rc') v, ins;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify() WHERE relation = 'rc'::regclass;
-- the receipt of the sealed rows still holds in the transaction
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_receipts));
COMMIT;
SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc');
-- an uncommitted row another transaction inserted is invisible, not extra
-- (it has no pending record yet): and a rolled-back transaction's rows
-- never count
BEGIN;
INSERT INTO rc VALUES (10, 'aborted');
ROLLBACK;
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc');

-- ---------------------------------------------------------------------
-- 3b. A large transaction writes its pending records while it runs, 65536
--     leaves at a time, but only when no savepoint is open: a rolled-back
--     savepoint still takes back all of its leaves, and verify() in the
--     transaction counts both its records and its leaves still in memory
--     (every verify path), in ordinal order.
-- ---------------------------------------------------------------------
CREATE TABLE rc_big (id int, note text);
SELECT consent_ledger.create_ledger('rc_big') IS NOT NULL AS made;
CREATE FUNCTION rc_big_records(OUT records bigint, OUT leaves bigint, OUT ords text) LANGUAGE sql AS $$
	SELECT count(*), coalesce(sum(p.nleaves), 0),
		coalesce(string_agg(p.first_ord || '+' || p.nleaves, ' ' ORDER BY p.first_ord), '')
	FROM consent_ledger.pending p JOIN consent_ledger.ledgers l USING (ledger_id)
	WHERE l.relid = 'rc_big'::regclass $$;
BEGIN;
-- in a savepoint nothing is written early, and rolling it back forgets all
SAVEPOINT s1;
INSERT INTO rc_big SELECT g, 'rolled back' FROM generate_series(1, 70000) g;
SELECT * FROM rc_big_records();
ROLLBACK TO s1;
RELEASE s1;
-- released, its leaves are the transaction's: the next insert at top level writes them
SAVEPOINT s2;
INSERT INTO rc_big SELECT g, 'released' FROM generate_series(1, 66000) g;
RELEASE s2;
SELECT * FROM rc_big_records();
INSERT INTO rc_big VALUES (66001, 'top');
SELECT * FROM rc_big_records();
INSERT INTO rc_big SELECT g, 'top' FROM generate_series(66002, 140000) g;
SELECT * FROM rc_big_records();
SAVEPOINT s3;
INSERT INTO rc_big SELECT g, 'rolled back' FROM generate_series(1, 10) g;
ROLLBACK TO s3;
RELEASE s3;
INSERT INTO rc_big VALUES (140001, 'last');
SELECT min(ledger_ord), max(ledger_ord), count(*), count(DISTINCT ledger_ord) FROM rc_big;
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
SET LOCAL consent_ledger.verify_memory = '1GB';
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
COMMIT;
SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT * FROM rc_big_records();
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
-- a snapshot older than the last early write (a cursor's) still finds
-- every leaf of the transaction (attack review: it did not see the record)
BEGIN;
INSERT INTO rc_big SELECT g, 'cursor' FROM generate_series(1, 65536) g;
DECLARE rc_cur CURSOR FOR SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
INSERT INTO rc_big VALUES (0, 'writes the record');
SELECT * FROM rc_big_records();
FETCH rc_cur;
CLOSE rc_cur;
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
COMMIT;
SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
-- and a record written by the statement that calls verify() (its own
-- snapshot cannot see it) counts too
BEGIN;
INSERT INTO rc_big SELECT g, 'cte' FROM generate_series(1, 65536) g;
WITH ins AS (INSERT INTO rc_big VALUES (0, 'writes the record') RETURNING id)
SELECT v.* FROM ins, LATERAL (SELECT "rows", pending, valid, problem
                              FROM consent_ledger.verify('rc_big') WHERE ins.id IS NOT NULL) v;
SELECT * FROM rc_big_records();
COMMIT;
SELECT consent_ledger.seal() >= 0 AS sealed;
-- another transaction that wrote records early and rolled back leaves none
BEGIN;
INSERT INTO rc_big SELECT g, 'aborted' FROM generate_series(1, 70000) g;
SELECT * FROM rc_big_records();
ROLLBACK;
SELECT * FROM rc_big_records();
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
-- more than a record's 2^20 leaves buffered in a savepoint: the next
-- insert at top level writes them as a full record and the rest (each
-- record its own leaves, in order)
BEGIN;
SAVEPOINT s4;
INSERT INTO rc_big SELECT g, 's' FROM generate_series(1, 1048576 + 3) g;
RELEASE s4;
SELECT * FROM rc_big_records();
INSERT INTO rc_big VALUES (0, 'writes both records');
SELECT * FROM rc_big_records();
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
COMMIT;
SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc_big');
SELECT consent_ledger.retire_ledger('rc_big') IS NOT NULL AS retired;
DROP TABLE rc_big;
DROP FUNCTION rc_big_records();

-- ---------------------------------------------------------------------
-- 4. A retired ledger: verify, export, checkpoint, proofs and receipts.
-- ---------------------------------------------------------------------
CREATE TABLE rc_retired_receipts AS SELECT consent_ledger.checkpoint('rc') AS cp;
SELECT consent_ledger.retire_ledger('rc');
SELECT "rows", pending, valid, problem FROM consent_ledger.verify('rc');
SELECT consent_ledger.ledger('rc') = 'rc'::regclass AS by_name;
SELECT consent_ledger.checkpoint('rc') = (SELECT cp FROM rc_retired_receipts) AS same_checkpoint;
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_receipts));
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_retired_receipts));
SELECT (consent_ledger.inclusion_proof('rc', 2)->>'root_hash') = (SELECT cp->>'root_hash' FROM rc_retired_receipts) AS inclusion_root_ok,
       (consent_ledger.consistency_proof('rc', 5, 8)->>'old_root') = (SELECT cp->>'root_hash' FROM rc_receipts) AS consistency_old_root_ok;
SELECT split_part(line, ' ', 1) AS kind, count(*) FROM consent_ledger.export('rc') AS line GROUP BY 1 ORDER BY 1;
-- keep what an auditor would have taken before the drop
CREATE TABLE rc_before_drop AS
  SELECT consent_ledger.inclusion_proof('rc', 2) AS incl, consent_ledger.consistency_proof('rc', 5, 8) AS cons,
         (SELECT l.ledger_id FROM consent_ledger.ledgers l WHERE l.relid = 'rc'::regclass) AS ledger_id,
         'rc'::regclass::oid AS relid, (SELECT cp->>'origin' FROM rc_receipts) AS origin;

-- ---------------------------------------------------------------------
-- 5. ... and once its table was dropped: by the relid recorded in
--    consent_ledger.ledgers, or through ledger() by id, origin or the
--    name the table had (kept in consent_ledger.dropped_ledgers).  The
--    rows are gone: verify() checks the stored log against the signed
--    checkpoints and says the rows were not rechecked; receipts are
--    checked against the stored log; export() and leaf_data() are
--    refused cleanly.
-- ---------------------------------------------------------------------
DROP TABLE rc;
SELECT d.schema_name, d.table_name, d.relid = b.relid AS same_relid
FROM consent_ledger.dropped_ledgers d JOIN rc_before_drop b USING (ledger_id);
SELECT consent_ledger.ledger(ledger_id::text) = relid::regclass AS by_id,
       consent_ledger.ledger(origin) = relid::regclass AS by_origin,
       consent_ledger.ledger('rc') = relid::regclass AS by_name,
       consent_ledger.ledger('public.rc') = relid::regclass AS by_qualified_name
FROM rc_before_drop;
SELECT v."rows", v.pending, v.valid, v.problem
FROM rc_before_drop b, consent_ledger.verify(b.relid::regclass) v;
SELECT v."rows", v.pending, v.valid, v.problem
FROM rc_before_drop b, consent_ledger.verify(consent_ledger.ledger(b.ledger_id::text)) v;
SELECT v."rows", v.valid, v.problem
FROM rc_before_drop b JOIN consent_ledger.verify(NULL) v ON v.relation = b.relid::regclass;
SELECT consent_ledger.checkpoint(relid::regclass) = (SELECT cp FROM rc_retired_receipts) AS same_checkpoint
FROM rc_before_drop;
SELECT consent_ledger.inclusion_proof(relid::regclass, 2) = incl AS same_inclusion_proof,
       consent_ledger.consistency_proof(relid::regclass, 5, 8) = cons AS same_consistency_proof
FROM rc_before_drop;
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_receipts));
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_retired_receipts));
SELECT consent_ledger.verify_checkpoint((SELECT cp FROM rc_retired_receipts)) AS retired_receipt_verifies;
-- (ids and OIDs in messages vary: shown as N)
CREATE FUNCTION error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hnt text;
BEGIN
  EXECUTE sql;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN st || E'\n' || regexp_replace(msg, '\d+', 'N', 'g') || E'\nDETAIL: ' || det || E'\nHINT: ' || hnt;
END $$;
SELECT error_of(format('SELECT count(*) FROM consent_ledger.export(%s)', relid)) FROM rc_before_drop;
SELECT error_of(format('SELECT consent_ledger.leaf_data(%s, 0)', relid)) FROM rc_before_drop;
SELECT consent_ledger.ledger('no_such_ledger');
SELECT consent_ledger.ledger('999999');
-- a name two dropped ledgers had is ambiguous: name one by id
CREATE TABLE rc (id int);
SELECT consent_ledger.create_ledger('rc');
SELECT consent_ledger.retire_ledger('rc');
DROP TABLE rc;
SELECT consent_ledger.ledger('rc');

-- the stored log of the dropped ledger rewritten: verify() and the
-- receipts catch it
UPDATE consent_ledger.log l
   SET leaves = overlay(leaves PLACING sha256('forged') FROM (2 - first_leaf)::int * 32 + 1 FOR 32)
  FROM rc_before_drop b
 WHERE l.ledger_id = b.ledger_id AND 2 BETWEEN l.first_leaf AND l.first_leaf + l.nleaves - 1;
SELECT v."rows", v.valid, v.problem
FROM rc_before_drop b, consent_ledger.verify(b.relid::regclass) v;
SELECT d.valid, regexp_replace(d.reason, 'ledger \d+ \(table \d+ dropped\)', 'ledger N (table N dropped)') AS reason
FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_receipts)) d;

-- ---------------------------------------------------------------------
-- 6. A live ledger made to look dropped (attack review 1, F1).  A
--    superuser rewrites a row with the triggers off, then renames a stamp
--    column, changes its type, or marks the ledger retired and records a
--    drop, all by catalog edits.  The table is still there: its rows are
--    rehashed whenever they can be read, anything that does not fit makes
--    the ledger invalid, and a receipt never falls back to the stored log.
-- ---------------------------------------------------------------------
CREATE TABLE rc_live (id int, amount int);
SELECT consent_ledger.create_ledger('rc_live');
INSERT INTO rc_live VALUES (1, 100), (2, 200);
SELECT consent_ledger.seal() AS sealed_rows;
CREATE TABLE rc_live_receipt AS SELECT consent_ledger.checkpoint('rc_live') AS cp;
UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'rc_live'::regclass AND tgname LIKE '~consent_ledger%';
ALTER TABLE rc_live SET (fillfactor = 100);
UPDATE rc_live SET amount = 999999 WHERE id = 1;
SELECT valid, problem FROM consent_ledger.verify('rc_live');
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_live_receipt));
-- a stamp column renamed
BEGIN;
UPDATE pg_attribute SET attname = 'ledger_txn_' WHERE attrelid = 'rc_live'::regclass AND attname = 'ledger_txn';
SELECT valid, problem FROM consent_ledger.verify('rc_live');
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_live_receipt));
SELECT error_of('SELECT count(*) FROM consent_ledger.export(''rc_live'')');
ROLLBACK;
-- a stamp column's type changed to another of the same size
BEGIN;
UPDATE pg_attribute SET atttypid = 'oid'::regtype WHERE attrelid = 'rc_live'::regclass AND attname = 'ledger_ord';
SELECT valid, problem FROM consent_ledger.verify('rc_live');
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_live_receipt));
ROLLBACK;
-- marked retired, and its drop recorded
BEGIN;
UPDATE consent_ledger.ledgers SET retired_at = now() WHERE relid = 'rc_live'::regclass;
INSERT INTO consent_ledger.dropped_ledgers (ledger_id, relid, schema_name, table_name, dropped_at)
  SELECT ledger_id, relid, 'public', 'rc_live', now() FROM consent_ledger.ledgers WHERE relid = 'rc_live'::regclass;
SELECT valid, problem FROM consent_ledger.verify('rc_live');
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_live_receipt));
SELECT consent_ledger.ledger('rc_live') = 'rc_live'::regclass AS live_table_named;
ROLLBACK;
-- a dropped table whose drop is not recorded is not taken for dropped
-- (its OID is then not known: verify() reports it with relation NULL, and
-- neither its old OID nor ledger() reach it)
BEGIN;
DELETE FROM consent_ledger.dropped_ledgers d USING rc_before_drop b WHERE d.ledger_id = b.ledger_id;
SELECT v.valid, regexp_replace(v.problem, '\d+', 'N', 'g') AS problem
FROM consent_ledger.verify() v WHERE v.relation IS NULL;
SELECT error_of(format('SELECT * FROM consent_ledger.verify(%s)', relid)) FROM rc_before_drop;
SELECT error_of(format('SELECT consent_ledger.ledger(%L)', ledger_id)) FROM rc_before_drop;
SELECT d.valid, regexp_replace(d.reason, '\d+', 'N', 'g') AS reason
FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_retired_receipts)) d;
ROLLBACK;
-- a ledger whose relid still names its dropped table (as before 1.2) is
-- not taken for dropped either: a live ledger's table must exist
BEGIN;
UPDATE consent_ledger.ledgers l SET relid = b.relid::regclass FROM rc_before_drop b WHERE l.ledger_id = b.ledger_id;
SELECT v.valid, regexp_replace(v.problem, '\d+', 'N', 'g') AS problem
FROM rc_before_drop b JOIN consent_ledger.verify() v ON v.relation = b.relid::regclass;
SELECT d.valid, regexp_replace(d.reason, '\d+', 'N', 'g') AS reason
FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_retired_receipts)) d;
ROLLBACK;
-- the row put back: the ledger verifies again
UPDATE rc_live SET amount = 100 WHERE id = 1;
UPDATE pg_trigger SET tgenabled = 'O' WHERE tgrelid = 'rc_live'::regclass AND tgname LIKE '~consent_ledger%';
ALTER TABLE rc_live SET (fillfactor = 100);
SELECT valid, problem FROM consent_ledger.verify('rc_live');
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_live_receipt));

-- ---------------------------------------------------------------------
-- 7. An unknown encoding version (F7) is that ledger's problem: verify()
--    still reports every other ledger; a dropped ledger too is invalid.
-- ---------------------------------------------------------------------
BEGIN;
UPDATE consent_ledger.ledgers SET encoding = 4 WHERE relid = 'rc_live'::regclass;
UPDATE consent_ledger.ledgers l SET encoding = 4 FROM rc_before_drop b WHERE l.ledger_id = b.ledger_id;
SELECT count(*) = (SELECT count(*) FROM consent_ledger.ledgers) AS every_ledger_reported
FROM consent_ledger.verify();
SELECT v.valid, v.problem FROM consent_ledger.verify() v WHERE v.relation = 'rc_live'::regclass;
SELECT v.valid, v.problem FROM rc_before_drop b JOIN consent_ledger.verify() v ON v.relation = b.relid::regclass;
SELECT valid, problem FROM consent_ledger.verify('rc_live');
SELECT v.valid, v.problem FROM rc_before_drop b, consent_ledger.verify(b.relid::regclass) v;
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_live_receipt));
SELECT error_of('SELECT count(*) FROM consent_ledger.export(''rc_live'')');
ROLLBACK;

-- ---------------------------------------------------------------------
-- 8. ledger(text) (F5, F6): a live ledger's name resolves to it before
--    the names of dropped ledgers, and is never ambiguous because of
--    them; ledger id 0 names no ledger; verify() of an OID that is no
--    ledger names the OID.
-- ---------------------------------------------------------------------
CREATE SCHEMA rc_s2;
CREATE TABLE public.rc_pay (id int);
SELECT consent_ledger.create_ledger('public.rc_pay');
CREATE TABLE rc_s2.rc_pay (id int);
SELECT consent_ledger.create_ledger('rc_s2.rc_pay');
SELECT consent_ledger.retire_ledger('rc_s2.rc_pay');
DROP TABLE rc_s2.rc_pay;
SELECT consent_ledger.ledger('rc_pay') = 'public.rc_pay'::regclass AS live_first;
CREATE TABLE rc_s2.rc_pay (id int);
SELECT consent_ledger.create_ledger('rc_s2.rc_pay');
SELECT consent_ledger.retire_ledger('rc_s2.rc_pay');
DROP TABLE rc_s2.rc_pay;
SELECT count(*) AS dropped_named_rc_pay FROM consent_ledger.dropped_ledgers WHERE table_name = 'rc_pay';
SELECT consent_ledger.ledger('rc_pay') = 'public.rc_pay'::regclass AS live_not_ambiguous,
       consent_ledger.ledger('public.rc_pay') = 'public.rc_pay'::regclass AS live_qualified;
SELECT error_of('SELECT consent_ledger.ledger(''rc_s2.rc_pay'')');
SELECT error_of('SELECT consent_ledger.ledger(''0'')');
SELECT error_of('SELECT consent_ledger.ledger(''000'')');
SELECT error_of('SELECT * FROM consent_ledger.verify(0)');
SELECT error_of('SELECT * FROM consent_ledger.verify(4000000000)');

-- ---------------------------------------------------------------------
-- 9. One reader for receipts (F2): the text form is read byte for byte by
--    the strict reader the offline verifier uses (test/tap/016 runs every
--    variant through both and compares): duplicate keys, fractions and
--    exponents, negative numbers, nesting and more than 32 members refuse
--    a receipt, wherever they are.  A string literal resolves to the text
--    form.  The jsonb form reads jsonb's text, after jsonb input kept the
--    last of duplicate keys and made 3e0 the number 3.
-- ---------------------------------------------------------------------
CREATE TABLE rc_variants (label text, receipt text);
INSERT INTO rc_variants
SELECT v.label, v.receipt
FROM (SELECT cp::text AS full, to_json(cp->>'note')::text AS note, cp->>'note' AS bare,
             cp->>'origin' AS origin, cp->>'key_id' AS key_id, cp->>'time' AS time
      FROM rc_live_receipt) r,
LATERAL (VALUES
  ('plain', '{"note": ' || r.note || '}'),
  ('full', r.full),
  ('ts_2.0', '{"note": ' || r.note || ', "tree_size": 2.0}'),
  ('ts_2e0', '{"note": ' || r.note || ', "tree_size": 2e0}'),
  ('ts_str', '{"note": ' || r.note || ', "tree_size": "2"}'),
  ('ts_neg0', '{"note": ' || r.note || ', "tree_size": -0}'),
  ('dup_ts', '{"tree_size": 999, "note": ' || r.note || ', "tree_size": 2}'),
  ('dup_ts_rev', '{"tree_size": 2, "note": ' || r.note || ', "tree_size": 999}'),
  ('dup_note', '{"note": "garbage", "note": ' || r.note || '}'),
  ('dup_other', '{"note": ' || r.note || ', "x": 1, "x": 1}'),
  ('nested_other', '{"note": ' || r.note || ', "extra": {"a": 1}}'),
  ('neg_other', '{"note": ' || r.note || ', "extra": -1}'),
  ('frac_other', '{"note": ' || r.note || ', "extra": 1.5}'),
  ('bigint_other', '{"note": ' || r.note || ', "extra": 99999999999999999999}'),
  ('arr_other', '{"note": ' || r.note || ', "extra": [1,2]}'),
  ('time_.00', '{"note": ' || r.note || ', "time": ' || r.time || '.00}'),
  ('origin_escaped', '{"note": ' || r.note || ', "origin": "' || replace(r.origin, '_', '\u005f') || '"}'),
  -- (a key id of digits only has no upper case: another id stands in, refused alike)
  ('keyid_upper', '{"note": ' || r.note || ', "key_id": "' ||
     CASE WHEN upper(r.key_id) <> r.key_id THEN upper(r.key_id)
          ELSE translate(r.key_id, '0123456789', '123456789A') END || '"}'),
  ('many_members', '{"note": ' || r.note || ', ' || (SELECT string_agg(format('"m%s": 1', g), ', ') FROM generate_series(0, 99) g) || '}'),
  ('32_members', '{"note": ' || r.note || ', ' || (SELECT string_agg(format('"m%s": 1', g), ', ') FROM generate_series(1, 31) g) || '}'),
  ('trailing', '{"note": ' || r.note || '} x'),
  ('bare note', r.bare)
) AS v(label, receipt);
CREATE FUNCTION jsonb_or_null(t text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RETURN t::jsonb;
EXCEPTION WHEN OTHERS THEN
  RETURN NULL;
END $$;
SELECT v.label, t.valid, t.reason, j.valid AS jsonb_valid, j.reason AS jsonb_reason
FROM rc_variants v
CROSS JOIN LATERAL consent_ledger.verify_checkpoint_detail(v.receipt) t
LEFT JOIN LATERAL consent_ledger.verify_checkpoint_detail(jsonb_or_null(v.receipt)) j ON true
ORDER BY v.label;
-- verify_checkpoint() gives the same answer as the detail form
SELECT count(*) AS variants,
       count(*) FILTER (WHERE consent_ledger.verify_checkpoint(v.receipt) = t.valid) AS same_answer
FROM rc_variants v, consent_ledger.verify_checkpoint_detail(v.receipt) t;
-- a string literal resolves to the text form, an explicit jsonb to jsonb
SELECT consent_ledger.verify_checkpoint('{"note": "x\n", "note": "y\n"}') AS literal_duplicate;
SELECT * FROM consent_ledger.verify_checkpoint_detail('{"note": "x\n", "note": "y\n"}');
SELECT * FROM consent_ledger.verify_checkpoint_detail(checkpoint => '{"note": "x\n", "note": "y\n"}');
SELECT * FROM consent_ledger.verify_checkpoint_detail('{"note": "x\n", "note": "y\n"}'::jsonb);
SELECT consent_ledger.verify_checkpoint(NULL) IS NULL AS null_is_null;
SELECT p.oid::regprocedure AS overload FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'consent_ledger' AND p.proname IN ('verify_checkpoint', 'verify_checkpoint_detail')
ORDER BY 1::text;

-- ---------------------------------------------------------------------
-- 10. A dropped ledger keeps no live-looking reference to its table's OID
--     (review 3, item 1, R2): consent_ledger.ledgers.relid is NULL, the
--     OID is only history in dropped_ledgers.  When a new relation gets
--     that OID (OID wraparound, or after a dump and restore: TAP 017 does
--     it for real with pg_resetwal -o; here the history is pointed at a
--     new table, which is the same state), the OID means the new
--     relation: verify() still reports the dropped ledger as dropped and
--     valid, the new table can become a ledger, ledger('old name') never
--     returns the new table.
-- ---------------------------------------------------------------------
CREATE TABLE rc_old (id int);
SELECT consent_ledger.create_ledger('rc_old');
INSERT INTO rc_old VALUES (1), (2), (3);
SELECT consent_ledger.seal() AS sealed_rows;
CREATE TABLE rc_old_receipt AS SELECT consent_ledger.checkpoint('rc_old') AS cp,
  (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'rc_old'::regclass) AS ledger_id;
SELECT consent_ledger.retire_ledger('rc_old');
DROP TABLE rc_old;
SELECT l.relid IS NULL AS relid_cleared, d.table_name
FROM rc_old_receipt r JOIN consent_ledger.ledgers l USING (ledger_id) JOIN consent_ledger.dropped_ledgers d USING (ledger_id);
CREATE TABLE rc_new (id int, other text);
UPDATE consent_ledger.dropped_ledgers d SET relid = 'rc_new'::regclass
  FROM rc_old_receipt r WHERE d.ledger_id = r.ledger_id;
SELECT v.relation, v."rows", v.valid, v.problem
FROM consent_ledger.verify() v WHERE v.relation IS NULL;
SELECT error_of('SELECT * FROM consent_ledger.verify(''rc_new'')');
SELECT error_of('SELECT consent_ledger.ledger(''rc_old'')');
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_old_receipt));
SELECT consent_ledger.create_ledger('rc_new');
INSERT INTO rc_new VALUES (1, 'new');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT consent_ledger.ledger('rc_new') = 'rc_new'::regclass AS new_is_live;
SELECT error_of('SELECT consent_ledger.ledger(''rc_old'')') AS old_by_name;
SELECT v.relation, v."rows", v.valid, v.problem FROM consent_ledger.verify('rc_new') v;
SELECT v.relation, v."rows", v.valid, v.problem
FROM consent_ledger.verify() v WHERE v.relation IS NULL OR v.relation = 'rc_new'::regclass ORDER BY 1 NULLS FIRST;
SELECT * FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM rc_old_receipt));
SELECT consent_ledger.retire_ledger('rc_new');
DROP TABLE rc_new;
-- two drops recorded with the same OID: the OID names the most recent
SELECT count(*) AS drops_of_that_oid FROM consent_ledger.dropped_ledgers
WHERE relid = (SELECT relid FROM consent_ledger.dropped_ledgers d JOIN rc_old_receipt USING (ledger_id));
SELECT consent_ledger.ledger('rc_new')::oid = (SELECT relid FROM consent_ledger.dropped_ledgers d JOIN rc_old_receipt USING (ledger_id))
       AS same_oid,
       (SELECT v.problem FROM consent_ledger.verify(consent_ledger.ledger('rc_new')) v) AS newest_drop,
       (SELECT "rows" FROM consent_ledger.verify(consent_ledger.ledger('rc_new'))) AS its_rows;

ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();

-- ledger(): a name with bad syntax (unterminated quote, too many dots, another
-- database) is no ledger: 42704 like any unknown name, not 42602/42601/0A000
SELECT error_of($$SELECT consent_ledger.ledger('"unterminated')$$);
SELECT error_of($$SELECT consent_ledger.ledger('a.b.c.d')$$);
SELECT error_of($$SELECT consent_ledger.ledger('otherdb.public.rc_live')$$);
SELECT error_of($$SELECT consent_ledger.ledger('')$$);
-- a three-part name in this database still finds the live ledger
SELECT consent_ledger.ledger(current_database() || '.public.rc_live') = 'rc_live'::regclass AS three_part;
