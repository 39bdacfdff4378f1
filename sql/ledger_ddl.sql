-- DDL on ledger tables: what would change stored rows or switch the
-- protection off is refused with 0A000; what cannot is allowed, and old
-- rows stay verifiable.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Only seal() seals in this file (the sealer's interval is an hour), so
-- that each seal() returns a known number of rows: those committed into
-- ledgers since the previous one.  The second seal() of the settle seals
-- nothing: the first sealed everything before it.
ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE events (id int PRIMARY KEY, what text, m mood,
                     total int GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO events (id, what, m) VALUES (1, 'one', 'ok'), (2, 'two', NULL);
SELECT consent_ledger.create_ledger('events');
INSERT INTO events (id, what, m) VALUES (3, 'three', 'happy');

ALTER TABLE events DROP COLUMN what;
\echo :SQLSTATE
ALTER TABLE events ALTER COLUMN what TYPE varchar(3);
\echo :SQLSTATE
ALTER TABLE events RENAME COLUMN what TO label;
\echo :SQLSTATE
ALTER TABLE events ALTER COLUMN total DROP EXPRESSION;
\echo :SQLSTATE
ALTER TABLE events SET ACCESS METHOD heap;
\echo :SQLSTATE
ALTER TABLE events SET UNLOGGED;
\echo :SQLSTATE
ALTER TABLE events DISABLE TRIGGER ALL;
\echo :SQLSTATE
ALTER TABLE events DISABLE TRIGGER USER;
\echo :SQLSTATE
ALTER TABLE events DISABLE TRIGGER "~consent_ledger_stamp";
\echo :SQLSTATE
ALTER TABLE events ENABLE TRIGGER "~consent_ledger_guard";
\echo :SQLSTATE
ALTER TABLE events ENABLE REPLICA TRIGGER "~consent_ledger_guard_row";
\echo :SQLSTATE
ALTER TRIGGER "~consent_ledger_stamp" ON events RENAME TO other;
\echo :SQLSTATE
DROP TRIGGER "~consent_ledger_guard" ON events;
\echo :SQLSTATE
CREATE RULE no_ins AS ON INSERT TO events DO INSTEAD NOTHING;
\echo :SQLSTATE
CREATE TABLE events_child () INHERITS (events);
\echo :SQLSTATE
CREATE TABLE plain_parent (id int);
ALTER TABLE events INHERIT plain_parent;
\echo :SQLSTATE
ALTER TABLE events ADD COLUMN note text DEFAULT 'x';
\echo :SQLSTATE
ALTER TABLE events ADD COLUMN note text NOT NULL;
\echo :SQLSTATE
ALTER TABLE events ADD COLUMN note2 int GENERATED ALWAYS AS IDENTITY;
\echo :SQLSTATE
ALTER TABLE events ADD COLUMN ledger_extra text;
\echo :SQLSTATE
DROP TABLE events;
\echo :SQLSTATE
DROP EXTENSION consent_ledger CASCADE;
\echo :SQLSTATE
-- a cascade that would drop a column of the ledger
CREATE DOMAIN short_text AS text;
CREATE TABLE dom_l (id int, s short_text);
SELECT consent_ledger.create_ledger('dom_l');
DROP DOMAIN short_text CASCADE;
\echo :SQLSTATE

-- allowed: nothing stored changes
ALTER TABLE events ADD COLUMN note text;
INSERT INTO events (id, m, note) VALUES (4, 'sad', 'with note');
ALTER TABLE events ALTER COLUMN note SET DEFAULT 'later rows only';
INSERT INTO events (id) VALUES (5);
CREATE INDEX ON events (m);
ALTER TABLE events ADD CONSTRAINT id_pos CHECK (id > 0);
ALTER TABLE events ALTER COLUMN m SET STATISTICS 100;
ALTER TABLE events RENAME TO events_renamed;
ALTER TABLE events_renamed RENAME TO events;
CLUSTER events USING events_pkey;
VACUUM FULL events;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events DISABLE ROW LEVEL SECURITY;
CREATE FUNCTION user_trig() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER a_user_trigger BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION user_trig();
ALTER TABLE events DISABLE TRIGGER a_user_trigger;
ALTER TABLE events ENABLE TRIGGER a_user_trigger;
INSERT INTO events (id) VALUES (6);
-- a BEFORE INSERT trigger named to fire after the stamp: on the table access method
-- (1.3) the row is stamped after every trigger, so it is accepted and hashed as
-- stored (a trigger-stamped ledger refuses it: test/tap/039_table_am_upgrade.pl)
CREATE TRIGGER "~~late" BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION user_trig();
INSERT INTO events (id) VALUES (7);
\echo :SQLSTATE
DROP TRIGGER "~~late" ON events;

SELECT id, m, total, note FROM events ORDER BY id;
SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('events');

-- retire, then drop
SELECT consent_ledger.retire_ledger('events');
INSERT INTO events (id) VALUES (8);
\echo :SQLSTATE
DROP TABLE events;
SELECT count(*) AS retired_ledgers FROM consent_ledger.ledgers l JOIN consent_ledger.dropped_ledgers d USING (ledger_id)
 WHERE d.table_name = 'events' AND l.retired_at IS NOT NULL;

ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
