-- What an untrusted table owner could plant before protect() (rev2 F5,
-- F6) and how it could remove a protected table afterwards (rev2 F8).
-- The owner is not an administrator; the loader may only insert.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE regress_cn_owner LOGIN;
CREATE ROLE regress_cn_loader LOGIN;
CREATE ROLE regress_cn_admin LOGIN IN ROLE consent_ledger_admin;
CREATE SCHEMA cn AUTHORIZATION regress_cn_owner;
GRANT USAGE ON SCHEMA cn TO regress_cn_loader, regress_cn_admin;
-- (renaming a schema needs CREATE on the database besides owning it)
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_cn_owner', current_database()); END $$;

-- F5: a trigger of the owner's named like one of the extension's.  The
-- names are reserved (42939), also as the target of a rename ...
SET ROLE regress_cn_owner;
CREATE TABLE cn.visits (id int, subject int, note text) PARTITION BY RANGE (id);
CREATE TABLE cn.visits_a PARTITION OF cn.visits FOR VALUES FROM (0) TO (1000);
CREATE TABLE cn.loot (op text, r text);
GRANT INSERT ON cn.loot TO PUBLIC;
CREATE FUNCTION cn.leak() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO cn.loot VALUES (TG_OP || ' as ' || current_user, row_to_json(NEW)::text);
  RETURN NULL; END $$;
CREATE TRIGGER "~consent_ledger_audit_leak" AFTER INSERT OR UPDATE OR DELETE ON cn.visits_a
  FOR EACH ROW EXECUTE FUNCTION cn.leak();
\echo :SQLSTATE
CREATE TRIGGER leak AFTER INSERT OR UPDATE OR DELETE ON cn.visits_a
  FOR EACH ROW EXECUTE FUNCTION cn.leak();
ALTER TRIGGER leak ON cn.visits_a RENAME TO "~consent_ledger_stamp";
\echo :SQLSTATE
DROP TRIGGER leak ON cn.visits_a;
RESET ROLE;
-- ... and a trigger that has such a name anyway (made before the
-- extension was installed, or by an administrator) is recognised by the
-- function it calls, not by its name: protect() refuses it, naming it
CREATE TRIGGER "~consent_ledger_audit_leak" AFTER INSERT OR UPDATE OR DELETE ON cn.visits_a
  FOR EACH ROW EXECUTE FUNCTION cn.leak();
SELECT consent_ledger.protect('cn.visits', 'subject');
\echo :SQLSTATE
-- a plain table too
SET ROLE regress_cn_owner;
CREATE TABLE cn.notes (id int, subject int, note text);
RESET ROLE;
CREATE TRIGGER "~consent_ledger_stamp" BEFORE INSERT ON cn.notes
  FOR EACH ROW EXECUTE FUNCTION cn.leak();
SELECT consent_ledger.protect('cn.notes', 'subject');
\echo :SQLSTATE
-- create_ledger() and audit() refuse such a trigger where theirs would go
SELECT consent_ledger.create_ledger('cn.notes');
\echo :SQLSTATE
ALTER TRIGGER "~consent_ledger_stamp" ON cn.notes RENAME TO "~consent_ledger_audit";
SELECT consent_ledger.audit('cn.notes');
\echo :SQLSTATE
ALTER TRIGGER "~consent_ledger_audit" ON cn.notes RENAME TO "~consent_ledger_stamp";
SELECT (SELECT count(*) FROM consent_ledger.ledgers WHERE relid = 'cn.notes'::regclass) AS ledgers,
       (SELECT count(*) FROM consent_ledger.audited WHERE relid = 'cn.notes'::regclass) AS audited;
-- the owner's trigger, whatever its name, is the owner's to drop
SET ROLE regress_cn_owner;
DROP TRIGGER "~consent_ledger_audit_leak" ON cn.visits_a;
DROP TRIGGER "~consent_ledger_stamp" ON cn.notes;
RESET ROLE;
SELECT consent_ledger.protect('cn.visits', 'subject');
GRANT INSERT ON cn.visits TO regress_cn_loader;
SET ROLE regress_cn_loader;
INSERT INTO cn.visits VALUES (1, 42, 'note of subject 42, who did not consent');
RESET ROLE;
UPDATE cn.visits SET note = note || '.';
SELECT count(*) AS leaked FROM cn.loot;

-- F6: a partition key calling a function of the owner's runs over every
-- row routed into the table, hidden ones included, and over a default
-- partition's rows when an administrator adds a partition: refused, at
-- every level of the tree
SET ROLE regress_cn_owner;
CREATE TABLE cn.loot2 (who text, subject int, note text);
GRANT INSERT ON cn.loot2 TO PUBLIC;
CREATE FUNCTION cn.grab(s int, n text) RETURNS int LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN INSERT INTO cn.loot2 VALUES (current_user, s, n); RETURN 0; END $$;
GRANT EXECUTE ON FUNCTION cn.grab(int, text) TO PUBLIC;
CREATE FUNCTION cn.k(s int, n text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$ BEGIN PERFORM cn.grab(s, n); RETURN s % 2; END $$;
CREATE TABLE cn.ev (id int, subject int, note text) PARTITION BY LIST (cn.k(subject, note));
CREATE TABLE cn.ev_0 PARTITION OF cn.ev FOR VALUES IN (0);
CREATE TABLE cn.ev_d PARTITION OF cn.ev DEFAULT;
CREATE TABLE cn.ev2 (id int, subject int, note text) PARTITION BY RANGE (id);
CREATE TABLE cn.ev2_a PARTITION OF cn.ev2 FOR VALUES FROM (0) TO (100)
  PARTITION BY LIST (cn.k(subject, note));
CREATE TABLE cn.ev2_a0 PARTITION OF cn.ev2_a FOR VALUES IN (0);
CREATE DOMAIN cn.dom AS int CHECK (cn.k(VALUE, 'via a domain') IS NOT NULL);
CREATE TABLE cn.ev4 (id int, subject int, note text) PARTITION BY LIST ((subject::cn.dom));
CREATE TABLE cn.ev4_d PARTITION OF cn.ev4 DEFAULT;
RESET ROLE;
SELECT consent_ledger.protect('cn.ev4', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('cn.ev', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('cn.ev2', 'subject');
\echo :SQLSTATE
-- a key of built-in functions only is fine
SET ROLE regress_cn_owner;
CREATE TABLE cn.ev3 (id int, subject int, note text) PARTITION BY LIST ((subject % 2));
CREATE TABLE cn.ev3_0 PARTITION OF cn.ev3 FOR VALUES IN (0);
CREATE TABLE cn.ev3_d PARTITION OF cn.ev3 DEFAULT;
RESET ROLE;
SELECT consent_ledger.protect('cn.ev3', 'subject');
-- partitions added later with such a key: refused by that command
CREATE TABLE cn.ev3_1 PARTITION OF cn.ev3 FOR VALUES IN (1) PARTITION BY LIST (cn.k(subject, note));
\echo :SQLSTATE
CREATE TABLE cn.ev3_1d PARTITION OF cn.ev3_1 DEFAULT;
SET ROLE regress_cn_owner;
CREATE TABLE cn.ev3_2 (id int, subject int, note text) PARTITION BY LIST (cn.k(subject, note));
RESET ROLE;
ALTER TABLE cn.ev3 ATTACH PARTITION cn.ev3_2 FOR VALUES IN (3);
\echo :SQLSTATE
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'cn.ev3'::regclass ORDER BY 1;
SELECT relid::regclass FROM consent_ledger.protected WHERE relid::text LIKE 'cn.ev%' ORDER BY 1;
GRANT INSERT ON cn.ev3 TO regress_cn_loader;
SET ROLE regress_cn_loader;
INSERT INTO cn.ev3 VALUES (1, 43, 'note of subject 43'), (2, 44, 'note of subject 44');
RESET ROLE;
SELECT count(*) AS leaked FROM cn.loot2;

-- F8: the owner of the schema cannot drop a protected table (any
-- partition), directly or by DROP SCHEMA ... CASCADE, to put a table of
-- its own in its place
SET ROLE regress_cn_owner;
CREATE TABLE cn.plain (id int, subject int);
RESET ROLE;
SELECT consent_ledger.protect('cn.plain', 'subject');
SET ROLE regress_cn_owner;
ALTER SCHEMA cn RENAME TO cn_moved;
\echo :SQLSTATE
DROP TABLE cn.visits_a;
\echo :SQLSTATE
DROP TABLE cn.visits;
\echo :SQLSTATE
DROP TABLE cn.plain;
\echo :SQLSTATE
DROP SCHEMA cn CASCADE;
\echo :SQLSTATE
RESET ROLE;
SELECT relid::regclass FROM consent_ledger.protected WHERE relid::text LIKE 'cn.%' ORDER BY 1;
-- trusted roles still can: unprotect() gives the table back to its owner,
-- who drops it; an administrator drops a protected table directly
SELECT consent_ledger.unprotect('cn.plain');
SET ROLE regress_cn_owner;
DROP TABLE cn.plain;
RESET ROLE;
SET ROLE regress_cn_admin;
DROP TABLE cn.visits;
RESET ROLE;
SELECT relid::regclass FROM consent_ledger.protected WHERE relid::text LIKE 'cn.%' ORDER BY 1;

-- rev3 F1/F1c: a CHECK constraint calling a bootstrap-owned built-in that
-- runs SQL text (query_to_xml) or talks to other sessions (pg_notify):
-- every function in a CHECK must be IMMUTABLE (55000), whoever owns it
SET ROLE regress_cn_owner;
CREATE TABLE cn.leakbox (v text);
GRANT INSERT ON cn.leakbox TO PUBLIC;
CREATE FUNCTION cn.leak(t text) RETURNS boolean LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO cn.leakbox VALUES (t); RETURN true; END$$;
CREATE TABLE cn.f1 (subject text, payload text,
  CONSTRAINT c1 CHECK (query_to_xml('select cn.leak(' || quote_literal(subject || ':' || coalesce(payload, '')) || ')', false, false, '') IS NOT NULL));
CREATE TABLE cn.f1c (subject text, payload text,
  CONSTRAINT c17 CHECK (length(pg_notify('leak17', subject || '=' || payload)::text) >= 0));
RESET ROLE;
SELECT consent_ledger.protect('cn.f1', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('cn.f1c', 'subject');
\echo :SQLSTATE
-- rev3 F1 (2): an I/O conversion into a composite, an array or a range
-- holding the owner's domain runs the domain's CHECK (record_in, array_in)
SET ROLE regress_cn_owner;
CREATE DOMAIN cn.evil_dom AS text CHECK (cn.leak('dom:' || VALUE));
CREATE TYPE cn.evil_comp AS (a cn.evil_dom);
CREATE TABLE cn.f1_comp (subject text, payload text,
  CONSTRAINT c2 CHECK ((('(' || subject || ')')::cn.evil_comp) IS NOT NULL));
CREATE TABLE cn.f1_arr (subject text, payload text,
  CONSTRAINT c3 CHECK ((('{' || subject || '}')::cn.evil_dom[]) IS NOT NULL));
RESET ROLE;
SELECT consent_ledger.protect('cn.f1_comp', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('cn.f1_arr', 'subject');
\echo :SQLSTATE
-- rev3 F1b: ... also when the domain belongs to a trusted role but its
-- CHECK calls the owner's function, inside an administrator's composite
CREATE DOMAIN cn.adm_dom AS text CHECK (cn.leak('adm:' || VALUE));
CREATE TYPE cn.adm_comp AS (a cn.adm_dom);
SET ROLE regress_cn_owner;
CREATE TABLE cn.f1b (subject text, payload text,
  CONSTRAINT c4 CHECK ((('(' || subject || ')')::cn.adm_comp) IS NOT NULL));
CREATE TABLE cn.f1b_col (subject text, payload cn.adm_comp);
RESET ROLE;
SELECT consent_ledger.protect('cn.f1b', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('cn.f1b_col', 'subject');
\echo :SQLSTATE
-- rev3 F1b (defaults): a default running SQL text as the inserting role
SET ROLE regress_cn_owner;
CREATE TABLE cn.f13 (subject text, payload text,
  note text DEFAULT (query_to_xml('select cn.leak(string_agg(subject, '','')) from cn.f13', false, false, ''))::text);
CREATE SEQUENCE cn.counter;
CREATE TABLE cn.f13_seq (subject text, n bigint DEFAULT nextval('cn.counter'));
RESET ROLE;
SELECT consent_ledger.protect('cn.f13', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('cn.f13_seq', 'subject');
\echo :SQLSTATE
-- the defaults tables commonly have are accepted: serial, identity, now(),
-- CURRENT_USER, gen_random_uuid(), and immutable CHECKs
SET ROLE regress_cn_owner;
CREATE TABLE cn.usual (id serial, id2 int GENERATED ALWAYS AS IDENTITY, subject text,
  at timestamptz DEFAULT now(), by_whom text DEFAULT CURRENT_USER,
  u uuid DEFAULT gen_random_uuid(), CHECK (length(subject) < 100));
RESET ROLE;
SELECT consent_ledger.protect('cn.usual', 'subject');

-- rev3 F2: a collation of the owner's: DROP COLLATION ... CASCADE would
-- drop the column of the protected table
SET ROLE regress_cn_owner;
CREATE COLLATION cn.own_c (locale = 'C');
CREATE TABLE cn.f2 (subject text, payload text COLLATE cn.own_c);
RESET ROLE;
SELECT consent_ledger.protect('cn.f2', 'subject');
\echo :SQLSTATE
-- rev3 F2b: the owner of the schema drops an index, an owned sequence
-- (with the default), a column typed with a domain (DROP DOMAIN ...
-- CASCADE) or through a collation of an administrator's in its schema:
-- refused for untrusted roles (42501)
SET ROLE regress_cn_owner;
CREATE TABLE cn.f2b (id serial, subject text, payload text);
CREATE UNIQUE INDEX f2b_uq ON cn.f2b (id);
RESET ROLE;
CREATE DOMAIN cn.plain_dom AS text;
CREATE COLLATION cn.adm_c (locale = 'C');
ALTER TABLE cn.f2b ADD COLUMN extra cn.plain_dom, ADD COLUMN sorted text COLLATE cn.adm_c;
SELECT consent_ledger.protect('cn.f2b', 'subject');
SET ROLE regress_cn_owner;
DROP INDEX cn.f2b_uq;
\echo :SQLSTATE
DROP SEQUENCE cn.f2b_id_seq CASCADE;
\echo :SQLSTATE
DROP DOMAIN cn.plain_dom CASCADE;
\echo :SQLSTATE
DROP COLLATION cn.adm_c CASCADE;
\echo :SQLSTATE
RESET ROLE;
SELECT count(*) AS columns FROM pg_attribute WHERE attrelid = 'cn.f2b'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'cn.f2b'::regclass;
-- an administrator still can
SET ROLE regress_cn_admin;
DROP INDEX cn.f2b_uq;
RESET ROLE;
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'cn.f2b'::regclass;
SELECT consent_ledger.unprotect('cn.f2b');
SELECT consent_ledger.unprotect('cn.usual');

DROP SCHEMA cn CASCADE;
DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM regress_cn_owner', current_database()); END $$;
DROP ROLE regress_cn_owner, regress_cn_loader, regress_cn_admin;
