-- Bad input to the SQL API: relations that are not ledgers, NULL
-- arguments, out-of-range leaves and sizes, malformed and tampered
-- checkpoints.
--
-- Checkpoints and proofs need a sealed ledger, and the sealer only sees
-- committed rows, so a small ledger is created, filled and sealed in
-- committed transactions first; the tests themselves run in one
-- transaction that is rolled back, and the ledger is retired and dropped
-- at the end.
SET client_min_messages = warning;
CREATE TABLE public.cl03_ledger (id int PRIMARY KEY, v text);
DO $$ BEGIN PERFORM consent_ledger.create_ledger('public.cl03_ledger'); END $$;
DO $$ BEGIN PERFORM consent_ledger.seal(); END $$;
INSERT INTO public.cl03_ledger (id, v) SELECT g, 'row ' || g FROM generate_series(1, 5) g;
DO $$ BEGIN PERFORM consent_ledger.seal(); END $$;
INSERT INTO public.cl03_ledger (id, v) VALUES (6, 'six');
DO $$ BEGIN PERFORM consent_ledger.seal(); END $$;

BEGIN;
SELECT plan(102);

-- ---------------------------------------------------------------------
-- The sealed ledger the tests use
-- ---------------------------------------------------------------------
SELECT results_eq($$SELECT rows, pending, valid, problem FROM consent_ledger.verify('public.cl03_ledger')$$,
	$$VALUES (6::bigint, 0::bigint, true, NULL::text)$$, 'setup: the ledger holds 6 sealed rows and verifies');
SELECT is((consent_ledger.checkpoint('public.cl03_ledger')->>'tree_size')::bigint, 6::bigint,
	'setup: its latest checkpoint covers the 6 rows');

-- ---------------------------------------------------------------------
-- Relations that are not ledgers
-- ---------------------------------------------------------------------
CREATE TABLE public.cl03_plain (id int);
CREATE VIEW public.cl03_view AS SELECT 1 AS id;
CREATE TABLE public.cl03_parted (id int) PARTITION BY RANGE (id);
CREATE MATERIALIZED VIEW public.cl03_matview AS SELECT 1 AS id;
CREATE SEQUENCE public.cl03_seq;
CREATE TEMP TABLE cl03_temp (id int);
CREATE UNLOGGED TABLE public.cl03_unlogged (id int);
CREATE TABLE public.cl03_inh_parent (id int);
CREATE TABLE public.cl03_inh_child () INHERITS (public.cl03_inh_parent);
CREATE TABLE public.cl03_reserved (id int, ledger_note text);
CREATE TABLE public.cl03_part PARTITION OF public.cl03_parted FOR VALUES FROM (0) TO (10);
CREATE TABLE public.cl03_parted_ok (id int) PARTITION BY RANGE (id);
CREATE FOREIGN DATA WRAPPER cl03_fdw;
CREATE SERVER cl03_server FOREIGN DATA WRAPPER cl03_fdw;
CREATE FOREIGN TABLE public.cl03_foreign (id int) SERVER cl03_server;

SELECT throws_ok($$SELECT * FROM consent_ledger.verify('public.cl03_plain')$$, '42809', NULL,
	'verify of a plain table: 42809');
SELECT throws_ok($$SELECT * FROM consent_ledger.verify('public.cl03_view')$$, '42809', NULL,
	'verify of a view: 42809');
SELECT throws_ok($$SELECT * FROM consent_ledger.verify(2147483647::oid::regclass)$$, '42809', NULL,
	'verify of a relation OID that does not exist: 42809');
SELECT throws_ok($$SELECT consent_ledger.checkpoint('public.cl03_plain')$$, '42809', NULL,
	'checkpoint of a plain table: 42809');
SELECT throws_ok($$SELECT * FROM consent_ledger.export('public.cl03_plain')$$, '42809', NULL,
	'export of a plain table: 42809');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_plain', 0)$$, '42809', NULL,
	'inclusion_proof(relation, leaf) of a plain table: 42809');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_plain', 0, 1)$$, '42809', NULL,
	'inclusion_proof(relation, leaf, tree_size) of a plain table: 42809');
SELECT throws_ok($$SELECT consent_ledger.consistency_proof('public.cl03_plain', 1, 1)$$, '42809', NULL,
	'consistency_proof of a plain table: 42809');
SELECT throws_ok($$SELECT consent_ledger.leaf_data('public.cl03_plain', 0)$$, '42809', NULL,
	'leaf_data of a plain table: 42809');
SELECT throws_ok($$SELECT consent_ledger.retire_ledger('public.cl03_plain')$$, '42809', NULL,
	'retire_ledger of a plain table: 42809');

-- create_ledger on what cannot become a ledger
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_view')$$, '42809', NULL,
	'create_ledger of a view: 42809');
-- (1.3: a partitioned table becomes a ledger, each partition with a log of its own)
SELECT lives_ok($$SELECT consent_ledger.create_ledger('public.cl03_parted_ok')$$,
	'create_ledger of a partitioned table');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_matview')$$, '42809', NULL,
	'create_ledger of a materialized view: 42809');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_seq')$$, '42809', NULL,
	'create_ledger of a sequence: 42809');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_foreign')$$, '42809', NULL,
	'create_ledger of a foreign table: 42809');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_part')$$, '0A000', NULL,
	'create_ledger of a partition: 0A000');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_ledger')$$, '42710', NULL,
	'create_ledger of a ledger (twice): 42710');
SELECT throws_ok($$SELECT consent_ledger.create_ledger(2147483647::oid::regclass)$$, '42P01', NULL,
	'create_ledger of a relation OID that does not exist: 42P01');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('cl03_temp')$$, '0A000', NULL,
	'create_ledger of a temporary table: 0A000');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_unlogged')$$, '0A000', NULL,
	'create_ledger of an unlogged table: 0A000');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_inh_parent')$$, '0A000', NULL,
	'create_ledger of an inheritance parent: 0A000');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_inh_child')$$, '0A000', NULL,
	'create_ledger of an inheritance child: 0A000');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl03_reserved')$$, '42701', NULL,
	'create_ledger of a table with a ledger_* column: 42701');
SELECT is_empty($$SELECT relid FROM consent_ledger.ledgers WHERE relid::oid IN (
		'public.cl03_plain'::regclass, 'public.cl03_view'::regclass, 'public.cl03_parted'::regclass,
		'public.cl03_matview'::regclass, 'public.cl03_seq'::regclass, 'cl03_temp'::regclass,
		'public.cl03_unlogged'::regclass, 'public.cl03_inh_parent'::regclass,
		'public.cl03_inh_child'::regclass, 'public.cl03_reserved'::regclass,
		'public.cl03_foreign'::regclass, 'public.cl03_part'::regclass)$$,
	'none of the refused relations was registered');

-- ---------------------------------------------------------------------
-- NULL arguments: STRICT functions return NULL; verify(NULL) means all
-- ---------------------------------------------------------------------
SELECT ok(consent_ledger.create_ledger(NULL) IS NULL, 'create_ledger(NULL) is NULL');
SELECT ok(consent_ledger.retire_ledger(NULL) IS NULL, 'retire_ledger(NULL) is NULL');
SELECT ok(consent_ledger.checkpoint(NULL) IS NULL, 'checkpoint(NULL) is NULL');
SELECT ok(consent_ledger.verify_checkpoint(NULL) IS NULL, 'verify_checkpoint(NULL) is NULL');
SELECT ok(consent_ledger.inclusion_proof(NULL, 0) IS NULL, 'inclusion_proof(NULL, 0) is NULL');
SELECT ok(consent_ledger.inclusion_proof('public.cl03_ledger', NULL) IS NULL, 'inclusion_proof(ledger, NULL) is NULL');
SELECT ok(consent_ledger.inclusion_proof('public.cl03_ledger', 0, NULL) IS NULL, 'inclusion_proof(ledger, 0, NULL) is NULL');
SELECT ok(consent_ledger.consistency_proof(NULL, 1, 2) IS NULL, 'consistency_proof(NULL, 1, 2) is NULL');
SELECT ok(consent_ledger.consistency_proof('public.cl03_ledger', NULL, 2) IS NULL, 'consistency_proof(ledger, NULL, 2) is NULL');
SELECT ok(consent_ledger.consistency_proof('public.cl03_ledger', 1, NULL) IS NULL, 'consistency_proof(ledger, 1, NULL) is NULL');
SELECT ok(consent_ledger.leaf_data(NULL, 0) IS NULL, 'leaf_data(NULL, 0) is NULL');
SELECT ok(consent_ledger.leaf_data('public.cl03_ledger', NULL) IS NULL, 'leaf_data(ledger, NULL) is NULL');
SELECT is_empty($$SELECT * FROM consent_ledger.export(NULL)$$, 'export(NULL) returns no rows');
SELECT lives_ok($$SELECT consent_ledger.create_ledger(NULL)$$, '... and create_ledger(NULL) raises nothing');

-- (a dropped ledger's relid is NULL; verify(NULL) reports the OID its
-- table had, kept in dropped_ledgers)
SELECT set_eq($$SELECT relation FROM consent_ledger.verify(NULL)$$,
	$$SELECT coalesce(l.relid::oid, d.relid)::regclass FROM consent_ledger.ledgers l
	  LEFT JOIN consent_ledger.dropped_ledgers d USING (ledger_id)$$,
	'verify(NULL) reports every ledger, retired and dropped ones included');
SELECT results_eq($$SELECT * FROM consent_ledger.verify() ORDER BY relation::oid$$,
	$$SELECT * FROM consent_ledger.verify(NULL) ORDER BY relation::oid$$,
	'verify() with no argument is verify(NULL)');
SELECT results_eq($$SELECT rows, pending, valid FROM consent_ledger.verify(NULL) WHERE relation = 'public.cl03_ledger'::regclass$$,
	$$VALUES (6::bigint, 0::bigint, true)$$, 'verify(NULL) includes the sealed ledger, valid');
-- a ledger created (and not committed) here is included too, with no rows
CREATE TABLE public.cl03_fresh (id int);
SELECT lives_ok($$SELECT consent_ledger.create_ledger('public.cl03_fresh')$$, 'setup: a fresh, unsealed ledger');
SELECT results_eq($$SELECT rows, pending, valid FROM consent_ledger.verify(NULL) WHERE relation = 'public.cl03_fresh'::regclass$$,
	$$VALUES (0::bigint, 0::bigint, true)$$, 'verify(NULL) includes a ledger with no rows and no checkpoint');
SELECT throws_ok($$SELECT consent_ledger.checkpoint('public.cl03_fresh')$$, '55000', NULL,
	'checkpoint of a ledger with no checkpoint yet: 55000');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_fresh', 0)$$, '22023', NULL,
	'inclusion_proof of a ledger with nothing sealed: 22023');
-- a retired and dropped ledger stays in verify(NULL): its log and
-- checkpoints are checked, its rows (gone) are not, and it says so
CREATE TABLE public.cl03_gone (id int);
SELECT lives_ok($$SELECT consent_ledger.create_ledger('public.cl03_gone')$$, 'setup: another ledger');
SELECT ledger_id AS cl03_gone_id FROM consent_ledger.ledgers WHERE relid = 'public.cl03_gone'::regclass \gset
SELECT lives_ok($$SELECT consent_ledger.retire_ledger('public.cl03_gone')$$, 'setup: ... retired');
SELECT lives_ok($$DROP TABLE public.cl03_gone$$, 'setup: ... and dropped');
SELECT results_eq($$SELECT v.valid, v.problem FROM consent_ledger.verify(NULL) v
				   JOIN consent_ledger.dropped_ledgers d ON d.relid = v.relation::oid
				   JOIN consent_ledger.ledgers l ON l.ledger_id = d.ledger_id AND l.relid IS NULL
				   WHERE l.ledger_id = $$ || :cl03_gone_id,
	$$VALUES (true, 'table dropped: rows not rechecked; log, checkpoint chain and signatures verified')$$,
	'verify(NULL) includes a retired, dropped ledger and says its rows were not rechecked');

-- ---------------------------------------------------------------------
-- Out-of-range leaves and sizes: 22023
-- ---------------------------------------------------------------------
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_ledger', 6)$$, '22023', NULL,
	'inclusion_proof leaf = tree size: 22023');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_ledger', 1000)$$, '22023', NULL,
	'inclusion_proof leaf far beyond the tree: 22023');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_ledger', -1)$$, '22023', NULL,
	'inclusion_proof leaf -1: 22023');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_ledger', 3, 3)$$, '22023', NULL,
	'inclusion_proof leaf = the given tree_size: 22023');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_ledger', 0, 7)$$, '22023', NULL,
	'inclusion_proof tree_size beyond the latest checkpoint: 22023');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_ledger', 0, 0)$$, '22023', NULL,
	'inclusion_proof tree_size 0: 22023');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl03_ledger', 0, -1)$$, '22023', NULL,
	'inclusion_proof tree_size -1: 22023');
SELECT results_eq($$SELECT (p->>'leaf_index')::bigint, (p->>'tree_size')::bigint
					  FROM consent_ledger.inclusion_proof('public.cl03_ledger', 5) p$$,
	$$VALUES (5::bigint, 6::bigint)$$, 'inclusion_proof of the last leaf works');
SELECT results_eq($$SELECT (p->>'leaf_index')::bigint, (p->>'tree_size')::bigint
					  FROM consent_ledger.inclusion_proof('public.cl03_ledger', 0, 1) p$$,
	$$VALUES (0::bigint, 1::bigint)$$, 'inclusion_proof in a tree of one leaf works');

SELECT throws_ok($$SELECT consent_ledger.consistency_proof('public.cl03_ledger', 0, 6)$$, '22023', NULL,
	'consistency_proof old_size 0: 22023');
SELECT throws_ok($$SELECT consent_ledger.consistency_proof('public.cl03_ledger', -1, 6)$$, '22023', NULL,
	'consistency_proof old_size -1: 22023');
SELECT throws_ok($$SELECT consent_ledger.consistency_proof('public.cl03_ledger', 4, 3)$$, '22023', NULL,
	'consistency_proof old_size > new_size: 22023');
SELECT throws_ok($$SELECT consent_ledger.consistency_proof('public.cl03_ledger', 1, 7)$$, '22023', NULL,
	'consistency_proof new_size beyond the latest checkpoint: 22023');
SELECT throws_ok($$SELECT consent_ledger.consistency_proof('public.cl03_ledger', 1, -1)$$, '22023', NULL,
	'consistency_proof new_size -1: 22023');
SELECT results_eq($$SELECT (p->>'old_size')::bigint, (p->>'new_size')::bigint
					  FROM consent_ledger.consistency_proof('public.cl03_ledger', 3, 6) p$$,
	$$VALUES (3::bigint, 6::bigint)$$, 'consistency_proof(3, 6) works');
SELECT results_eq($$SELECT (p->>'old_size')::bigint, (p->>'new_size')::bigint
					  FROM consent_ledger.consistency_proof('public.cl03_ledger', 6, 6) p$$,
	$$VALUES (6::bigint, 6::bigint)$$, 'consistency_proof(6, 6) works');

SELECT throws_ok($$SELECT consent_ledger.leaf_data('public.cl03_ledger', 6)$$, '22023', NULL,
	'leaf_data leaf = number of leaves: 22023');
SELECT throws_ok($$SELECT consent_ledger.leaf_data('public.cl03_ledger', -1)$$, '22023', NULL,
	'leaf_data leaf -1: 22023');
SELECT ok(length(consent_ledger.leaf_data('public.cl03_ledger', 5)) > 0, 'leaf_data of the last leaf works');

-- ---------------------------------------------------------------------
-- verify_checkpoint: malformed input and tampered notes (false, not an error)
-- ---------------------------------------------------------------------
CREATE TEMP TABLE cl03_cp AS
	SELECT consent_ledger.checkpoint('public.cl03_ledger') AS cp,
		   consent_ledger.checkpoint('public.cl03_ledger')->>'note' AS note;
-- the note's lines: origin, size, root, time, prev, blank, signature
CREATE FUNCTION pg_temp.cl03_line(n int) RETURNS text LANGUAGE sql AS
	$$SELECT split_part(note, E'\n', n) FROM cl03_cp$$;
-- the checkpoint with its note replaced
CREATE FUNCTION pg_temp.cl03_with_note(newnote text) RETURNS jsonb LANGUAGE sql AS
	$$SELECT jsonb_set(cp, '{note}', to_jsonb(newnote)) FROM cl03_cp$$;
-- base64 with one byte flipped (PostgreSQL's encoder wraps lines: unwrap)
CREATE FUNCTION pg_temp.cl03_flip(b64 text, pos int) RETURNS text LANGUAGE sql AS
	$$SELECT replace(encode(set_byte(decode(b64, 'base64'), pos,
									  get_byte(decode(b64, 'base64'), pos) # 1), 'base64'), E'\n', '')$$;

SELECT ok((SELECT note LIKE '%' || E'\n' FROM cl03_cp), 'setup: the note ends with a newline');
SELECT is(pg_temp.cl03_line(6), '', 'setup: line 6 of the note is the blank line');
SELECT ok(pg_temp.cl03_line(7) LIKE '— % %', 'setup: line 7 of the note is the signature line');
SELECT is(length(decode(split_part(pg_temp.cl03_line(7), ' ', 3), 'base64')), 68,
	'setup: the signature line holds a 4-byte key id and a 64-byte signature');

SELECT is(consent_ledger.verify_checkpoint('{}'), false,
	'verify_checkpoint(''{}''): false, not an error');
SELECT is(consent_ledger.verify_checkpoint('[]'), false,
	'verify_checkpoint of an array: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('"a note"'), false,
	'verify_checkpoint of a string: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": 5}'), false,
	'verify_checkpoint with a numeric note: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": null}'), false,
	'verify_checkpoint with a null note: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": ""}'), false,
	'verify_checkpoint with an empty note: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": "garbage"}'), false,
	'verify_checkpoint with a garbage note: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": "garbage\n"}'), false,
	'verify_checkpoint with a one-line note: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(
		pg_temp.cl03_with_note(rtrim((SELECT note FROM cl03_cp), E'\n'))), false,
	'verify_checkpoint with a real note lacking its final newline: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(
		array_to_string(ARRAY[pg_temp.cl03_line(1), pg_temp.cl03_line(2), pg_temp.cl03_line(3),
							  pg_temp.cl03_line(4), pg_temp.cl03_line(5), '', ''], E'\n'))), false,
	'verify_checkpoint with a real note without its signature line: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(
		replace((SELECT note FROM cl03_cp), E'\n' || pg_temp.cl03_line(2) || E'\n', E'\nsix\n'))), false,
	'verify_checkpoint with a non-numeric tree size: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(
		replace((SELECT note FROM cl03_cp), E'\n', E'\r\n'))), false,
	'verify_checkpoint with CRLF line ends: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(
		replace((SELECT note FROM cl03_cp), E'\n\n', E'\nextra line\n\n'))), false,
	'verify_checkpoint with an extra body line: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(
		replace((SELECT note FROM cl03_cp), E'\n\n', E'\n'))), false,
	'verify_checkpoint without the blank line before the signature: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(
		replace((SELECT note FROM cl03_cp), pg_temp.cl03_line(3), 'root'))), false,
	'verify_checkpoint with a root line that is not base64: false, not an error');

-- the genuine article, and tampered copies
SELECT is(consent_ledger.verify_checkpoint((SELECT cp FROM cl03_cp)), true,
	'the ledger''s own checkpoint verifies');
SELECT is(consent_ledger.verify_checkpoint(jsonb_build_object('note', (SELECT note FROM cl03_cp))), true,
	'... also given as {"note": ...} alone');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(replace((SELECT note FROM cl03_cp),
		split_part(pg_temp.cl03_line(7), ' ', 3),
		pg_temp.cl03_flip(split_part(pg_temp.cl03_line(7), ' ', 3), 10)))), false,
	'a note whose signature has one byte flipped does not verify');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(replace((SELECT note FROM cl03_cp),
		split_part(pg_temp.cl03_line(7), ' ', 3),
		pg_temp.cl03_flip(split_part(pg_temp.cl03_line(7), ' ', 3), 67)))), false,
	'a note whose last signature byte is flipped does not verify');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(replace((SELECT note FROM cl03_cp),
		split_part(pg_temp.cl03_line(7), ' ', 3),
		pg_temp.cl03_flip(split_part(pg_temp.cl03_line(7), ' ', 3), 0)))), false,
	'a note signed by an unknown key id does not verify');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(replace((SELECT note FROM cl03_cp),
		E'\n' || pg_temp.cl03_line(3) || E'\n',
		E'\n' || pg_temp.cl03_flip(pg_temp.cl03_line(3), 0) || E'\n'))), false,
	'a note whose root hash has one byte flipped does not verify');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(replace((SELECT note FROM cl03_cp),
		E'\n6\n', E'\n5\n'))), false,
	'a note whose tree size was changed does not verify');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl03_with_note(replace((SELECT note FROM cl03_cp),
		E'\n' || pg_temp.cl03_line(4) || E'\n', E'\ntime 1\n'))), false,
	'a note whose time was changed does not verify');
SELECT is(consent_ledger.verify_checkpoint((SELECT cp || '{"tree_size": 5}' FROM cl03_cp)), false,
	'a checkpoint whose tree_size member disagrees with its note does not verify');
SELECT is(consent_ledger.verify_checkpoint((SELECT cp || '{"tree_size": -1}' FROM cl03_cp)), false,
	'a checkpoint with a negative tree_size member does not verify');
SELECT is(consent_ledger.verify_checkpoint((SELECT cp || '{"tree_size": "6"}' FROM cl03_cp)), false,
	'a checkpoint with a non-numeric tree_size member does not verify');
-- every earlier checkpoint of the ledger still verifies (the ledger only grew)
SELECT is_empty($$
	SELECT c.seq FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id)
	 WHERE l.relid = 'public.cl03_ledger'::regclass
	   AND NOT consent_ledger.verify_checkpoint(jsonb_build_object('note', c.note))
$$, 'every stored checkpoint of the ledger verifies');
SELECT results_eq($$
	SELECT c.seq, c.tree_size FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id)
	 WHERE l.relid = 'public.cl03_ledger'::regclass ORDER BY c.seq
$$, $$VALUES (1::bigint, 0::bigint), (2, 5), (3, 6)$$,
	'... and they are the three the setup sealed: sizes 0, 5 and 6');

SELECT * FROM finish();
ROLLBACK;

-- clean up the committed setup
DO $$ BEGIN PERFORM consent_ledger.retire_ledger('public.cl03_ledger'); END $$;
DROP TABLE public.cl03_ledger;
