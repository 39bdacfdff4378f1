-- Composite types used by ledger columns keep their attributes' names and
-- types whatever the route of the change (README "Canonical row
-- encoding"): not only ALTER TYPE / ALTER TABLE on the type a ledger column
-- names, but inheritance children, typed tables (ALTER TYPE ... CASCADE)
-- and dependency cascades (DROP DOMAIN / DROP TYPE ... CASCADE dropping a
-- composite attribute).  The types belong to a non-superuser, who does the
-- DDL; ledgers of encoding version 2 and of version 1.  Runs in a
-- database of its own.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE DATABASE cl_type_routes;
\c cl_type_routes
SET client_min_messages = warning;
CREATE EXTENSION consent_ledger;
RESET client_min_messages;
CREATE ROLE cl_tr_owner LOGIN;
GRANT CREATE ON SCHEMA public TO cl_tr_owner;

-- ---------------------------------------------------------------------
-- version 2
-- ---------------------------------------------------------------------
SET ROLE cl_tr_owner;
CREATE TYPE base_t AS (a int, b text);
CREATE TABLE typed_t OF base_t;
CREATE TABLE par (a int, b text);
CREATE TABLE chi () INHERITS (par);
CREATE DOMAIN dd AS int;
CREATE TYPE en AS ENUM ('x', 'y');
CREATE TYPE outer_t AS (a dd, e en, z int);
CREATE TABLE tr_v2 (id int, c1 typed_t, c2 chi, o outer_t[]);
RESET ROLE;
SELECT consent_ledger.create_ledger('tr_v2');
SELECT encoding FROM consent_ledger.ledgers WHERE relid = 'tr_v2'::regclass;
SET ROLE cl_tr_owner;
INSERT INTO tr_v2 VALUES (1, ROW(1, 'x')::typed_t, ROW(2, 'y')::chi, ARRAY[ROW(5, 'y', 7)::outer_t]);
-- a typed table's attribute renamed, dropped or retyped through its type
ALTER TYPE base_t RENAME ATTRIBUTE b TO bb CASCADE;
\echo :SQLSTATE
ALTER TYPE base_t DROP ATTRIBUTE a CASCADE;
\echo :SQLSTATE
ALTER TYPE base_t ALTER ATTRIBUTE b TYPE varchar CASCADE;
\echo :SQLSTATE
-- an inheritance child's column renamed, dropped or retyped through its parent
ALTER TABLE par RENAME COLUMN b TO bb;
\echo :SQLSTATE
ALTER TABLE par DROP COLUMN a;
\echo :SQLSTATE
ALTER TABLE par ALTER COLUMN b TYPE varchar;
\echo :SQLSTATE
-- an attribute dropped by a cascade from its own type (inside an array)
DROP DOMAIN dd CASCADE;
\echo :SQLSTATE
DROP TYPE en CASCADE;
\echo :SQLSTATE
-- nothing changed
SELECT a, b FROM typed_t WHERE false;
SELECT a, b FROM chi WHERE false;
SELECT attname, atttypid::regtype FROM pg_attribute
 WHERE attrelid = (SELECT typrelid FROM pg_type WHERE oid = 'outer_t'::regtype) AND attnum > 0
 ORDER BY attnum;
-- what leaves version 2 values unchanged is allowed, by every route:
-- new attributes, and column changes that are neither names nor types
ALTER TYPE base_t ADD ATTRIBUTE c int CASCADE;
ALTER TABLE par ADD COLUMN c int;
ALTER TABLE par ALTER COLUMN b SET STORAGE EXTERNAL;
ALTER TABLE chi ALTER COLUMN a SET STATISTICS 50;
ALTER TABLE par ALTER COLUMN a SET NOT NULL;
-- tables no ledger uses are not restricted
CREATE TABLE free_par (a int, b text);
CREATE TABLE free_chi () INHERITS (free_par);
ALTER TABLE free_par RENAME COLUMN b TO bb;
ALTER TABLE free_par DROP COLUMN a;
RESET ROLE;

-- ---------------------------------------------------------------------
-- version 1 (made as sql/upgrade.sql's pre-1.2 ledgers are: with the
-- column default of encoding 1); adding an attribute is refused too,
-- since version 1 encodes composites by position
-- ---------------------------------------------------------------------
SET ROLE cl_tr_owner;
CREATE TYPE base1 AS (a int, b text);
CREATE TABLE typed1 OF base1;
CREATE TABLE par1 (a int, b text);
CREATE TABLE chi1 () INHERITS (par1);
CREATE DOMAIN dd1 AS int;
CREATE TYPE en1 AS ENUM ('x', 'y');
CREATE TYPE outer1 AS (a dd1, e en1, z int);
CREATE TABLE tr_v1 (id int, c1 typed1, c2 chi1, o outer1);
RESET ROLE;
ALTER TABLE consent_ledger.ledgers ALTER COLUMN encoding SET DEFAULT 1;
SELECT consent_ledger.create_ledger('tr_v1');
ALTER TABLE consent_ledger.ledgers ALTER COLUMN encoding SET DEFAULT 2;
SELECT encoding FROM consent_ledger.ledgers WHERE relid = 'tr_v1'::regclass;
SET ROLE cl_tr_owner;
INSERT INTO tr_v1 VALUES (1, ROW(1, 'secret')::typed1, ROW(2, 'y')::chi1, ROW(5, 'x', 7));
ALTER TYPE base1 RENAME ATTRIBUTE b TO public_note CASCADE;
\echo :SQLSTATE
ALTER TYPE base1 DROP ATTRIBUTE a CASCADE;
\echo :SQLSTATE
ALTER TYPE base1 ADD ATTRIBUTE c int CASCADE;
\echo :SQLSTATE
ALTER TABLE par1 RENAME COLUMN b TO bb;
\echo :SQLSTATE
ALTER TABLE par1 DROP COLUMN a;
\echo :SQLSTATE
ALTER TABLE par1 ADD COLUMN c int;
\echo :SQLSTATE
ALTER TABLE par1 ALTER COLUMN b TYPE varchar;
\echo :SQLSTATE
DROP DOMAIN dd1 CASCADE;
\echo :SQLSTATE
DROP TYPE en1 CASCADE;
\echo :SQLSTATE
ALTER TABLE chi1 ALTER COLUMN a SET STATISTICS 50;
SELECT a, b FROM typed1 WHERE false;
SELECT a, b FROM chi1 WHERE false;
RESET ROLE;

SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('tr_v2');
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('tr_v1');
SELECT * FROM tr_v1;

-- ---------------------------------------------------------------------
-- review 3: the refusal names no ledger to a role that does not own the
-- type or table (PostgreSQL's ownership error comes first); a type's send
-- function cannot change under a ledger (ALTER EXTENSION ltree UPDATE
-- 1.1 -> 1.2 adds one); a cast to text created later changes no tag
-- ---------------------------------------------------------------------
CREATE ROLE cl_tr_other LOGIN;
SET ROLE cl_tr_owner;
CREATE TYPE en3 AS ENUM ('p', 'q');
CREATE TABLE ow3 (a int, b text);
CREATE TABLE tr_r3 (id int, e en3, w ow3);
RESET ROLE;
SELECT consent_ledger.create_ledger('tr_r3');
INSERT INTO tr_r3 VALUES (1, 'p', ROW(1, 'one'));
SET ROLE cl_tr_other;
ALTER TYPE en3 RENAME VALUE 'p' TO 'pp';
\echo :SQLSTATE
ALTER TABLE ow3 RENAME COLUMN a TO aa;
\echo :SQLSTATE
ALTER TABLE ow3 DROP COLUMN a;
\echo :SQLSTATE
ALTER TABLE ow3 ALTER COLUMN b TYPE varchar;
\echo :SQLSTATE
SET ROLE cl_tr_owner;
ALTER TYPE en3 RENAME VALUE 'p' TO 'pp';
\echo :SQLSTATE
RESET ROLE;

SET client_min_messages = warning;
CREATE EXTENSION ltree VERSION '1.1';
RESET client_min_messages;
CREATE TABLE tr_lt (id int, p ltree, q lquery);
SELECT consent_ledger.create_ledger('tr_lt');
INSERT INTO tr_lt VALUES (1, 'top.science.astronomy', '*.science.*');
CREATE TABLE tr_cast (id int, v tsvector);
SELECT consent_ledger.create_ledger('tr_cast');
INSERT INTO tr_cast VALUES (1, 'a fat cat');
SELECT consent_ledger.seal() >= 0 AS sealed;
ALTER EXTENSION ltree UPDATE TO '1.2';
\echo :SQLSTATE
SELECT extversion FROM pg_extension WHERE extname = 'ltree';
SELECT typsend::regproc AS ltree_send FROM pg_type WHERE typname = 'ltree';
CREATE CAST (tsvector AS text) WITHOUT FUNCTION AS IMPLICIT;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('tr_lt');
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('tr_cast');
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('tr_r3');
DROP CAST (tsvector AS text);

\c contrib_regression
DROP DATABASE cl_type_routes WITH (FORCE);
DROP ROLE cl_tr_owner;
DROP ROLE cl_tr_other;
