-- Ledger tables: conversion, adoption of existing rows, every insert form,
-- stamping that inserters cannot forge, and the refusal of every change.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Only seal() seals in this file (the sealer's interval is an hour), so
-- that each seal() returns a known number of rows: those committed into
-- ledgers since the previous one.  The second seal() of the settle seals
-- nothing: the first sealed everything before it.
ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric(12,2),
                     placed timestamptz DEFAULT '2025-01-01 00:00:00+00');
INSERT INTO orders VALUES (1, 'ada', 10.50), (2, 'bob', NULL);
SELECT consent_ledger.create_ledger('orders');

-- existing rows were adopted: one transaction, ordinals in physical order
SELECT id, ledger_ord, ledger_txn IS NOT NULL AS stamped FROM orders ORDER BY id;
SELECT count(DISTINCT ledger_txn) AS adoption_txns FROM orders;

-- single-row, multi-row, INSERT ... SELECT, COPY
INSERT INTO orders (id, customer) VALUES (3, 'cy');
INSERT INTO orders (id, customer, amount) VALUES (4, 'di', 1), (5, 'ed', 2), (6, 'fa', 3);
INSERT INTO orders (id, customer) SELECT g, 'gen' || g FROM generate_series(7, 9) g;
COPY orders (id, customer, amount) FROM stdin;
10	copy1	1.00
11	copy2	\N
\.

-- an inserter cannot choose the stamps
INSERT INTO orders (id, customer, ledger_txn, ledger_ord) VALUES (12, 'forger', -1, -1);
SELECT ledger_txn > 0 AS txn_assigned, ledger_ord FROM orders WHERE id = 12;

-- one transaction id per transaction, dense ordinals
SELECT count(DISTINCT ledger_txn) = 1 AS one_txn, array_agg(ledger_ord ORDER BY ledger_ord) AS ords
FROM orders WHERE id BETWEEN 4 AND 6;

-- rolled-back savepoints give their ordinals back; aborted rows never count
BEGIN;
INSERT INTO orders (id, customer) VALUES (20, 'keep1');
SAVEPOINT a;
INSERT INTO orders (id, customer) VALUES (21, 'gone1'), (22, 'gone2');
ROLLBACK TO a;
INSERT INTO orders (id, customer) VALUES (23, 'keep2');
SAVEPOINT b;
INSERT INTO orders (id, customer) VALUES (24, 'keep3');
RELEASE b;
COMMIT;
SELECT id, ledger_ord FROM orders WHERE id >= 20 ORDER BY id;
BEGIN;
INSERT INTO orders (id, customer) VALUES (30, 'aborted');
ROLLBACK;

-- a failed statement in a savepoint
BEGIN;
INSERT INTO orders (id, customer) VALUES (31, 'ok');
SAVEPOINT c;
INSERT INTO orders (id, customer) VALUES (31, 'duplicate');
ROLLBACK TO c;
COMMIT;

SELECT relation, "rows", valid, problem FROM consent_ledger.verify('orders');
SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('orders');
SELECT count(*) AS row_count FROM orders;

-- every change is refused, for the owner and the superuser alike
UPDATE orders SET amount = 0 WHERE id = 1;
\echo :SQLSTATE
DELETE FROM orders WHERE id = 1;
\echo :SQLSTATE
UPDATE orders SET amount = 0 WHERE false;
\echo :SQLSTATE
TRUNCATE orders;
\echo :SQLSTATE
MERGE INTO orders o USING (VALUES (1)) v(id) ON o.id = v.id
  WHEN MATCHED THEN UPDATE SET amount = 0;
\echo :SQLSTATE
MERGE INTO orders o USING (VALUES (1)) v(id) ON o.id = v.id
  WHEN MATCHED THEN DELETE;
\echo :SQLSTATE
INSERT INTO orders (id, customer) VALUES (1, 'x') ON CONFLICT DO NOTHING;
\echo :SQLSTATE
INSERT INTO orders (id, customer) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET customer = 'y';
\echo :SQLSTATE
WITH w AS (INSERT INTO orders (id, customer) VALUES (1, 'x') ON CONFLICT DO NOTHING RETURNING 1)
  SELECT * FROM w;
\echo :SQLSTATE
-- session_replication_role does not switch the protection off
SET session_replication_role = replica;
UPDATE orders SET amount = 0 WHERE id = 1;
\echo :SQLSTATE
DELETE FROM orders;
\echo :SQLSTATE
RESET session_replication_role;
-- MERGE that only inserts is allowed
MERGE INTO orders o USING (VALUES (40, 'merged')) v(id, c) ON o.id = v.id
  WHEN NOT MATCHED THEN INSERT (id, customer) VALUES (v.id, v.c);

SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('orders');

-- what cannot become a ledger
CREATE VIEW orders_v AS SELECT * FROM orders;
SELECT consent_ledger.create_ledger('orders_v');
\echo :SQLSTATE
-- (since 1.3 a partitioned table can: sql/partitions.sql)
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
SELECT consent_ledger.create_ledger('parted');
\echo :SQLSTATE
CREATE UNLOGGED TABLE unlogged_t (id int);
SELECT consent_ledger.create_ledger('unlogged_t');
\echo :SQLSTATE
SELECT consent_ledger.create_ledger('orders');
\echo :SQLSTATE
CREATE TABLE reserved_t (id int, ledger_note text);
SELECT consent_ledger.create_ledger('reserved_t');
\echo :SQLSTATE
SELECT consent_ledger.verify('reserved_t');
\echo :SQLSTATE

-- an empty table, and one made a ledger in the same transaction as its rows
CREATE TABLE empty_l (id int);
SELECT consent_ledger.create_ledger('empty_l');
BEGIN;
CREATE TABLE same_txn (id int, note text);
INSERT INTO same_txn VALUES (1, 'before');
SELECT consent_ledger.create_ledger('same_txn');
INSERT INTO same_txn VALUES (2, 'after');
COMMIT;
SELECT id, ledger_ord FROM same_txn ORDER BY id;
-- the adopted rows have a ledger id of their own (1.3), the rows the
-- transaction inserted afterwards the transaction's
SELECT count(DISTINCT ledger_txn) AS txns FROM same_txn;
SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify()
WHERE relation::text IN ('orders', 'empty_l', 'same_txn') ORDER BY relation::text;

-- adoption rewrites the table: no dead copy of its rows is left behind
-- (an UPDATE doubled it), and it reports progress every
-- consent_ledger.adopt_progress_rows rows
CREATE TABLE adopt_big (id int, pad text);
INSERT INTO adopt_big SELECT g, repeat('p', 200) FROM generate_series(1, 1000) g;
SELECT pg_relation_size('adopt_big') AS size_before \gset
SET consent_ledger.adopt_progress_rows = 400;
SELECT consent_ledger.create_ledger('adopt_big');
RESET consent_ledger.adopt_progress_rows;
SELECT pg_relation_size('adopt_big') < 1.2 * :size_before AS no_dead_copy;
SELECT count(*), count(DISTINCT ledger_txn) AS txns, min(ledger_ord), max(ledger_ord),
       bool_and(ledger_ord = id - 1) AS physical_order FROM adopt_big;
SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('adopt_big');

ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
