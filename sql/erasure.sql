-- Right to erasure (issue #15, README "Erasure"): personal columns are
-- committed through salted hashes (encoding version 3); erase_subject()
-- removes a subject's personal values while verify(), receipts, proofs
-- and leaf bytes stay as they were; forged erasures are detected.
\set VERBOSITY default
\set SHOW_CONTEXT never

ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

CREATE FUNCTION bypass(rel regclass, on_ boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE pg_trigger SET tgenabled = CASE WHEN on_ THEN 'A' ELSE 'D' END
  WHERE tgrelid = rel AND tgname LIKE '~consent_ledger%';
  EXECUTE format('ALTER TABLE %s SET (fillfactor = 100)', rel);
END $$;

-- 1. a ledger with two personal columns; the row already there is adopted
CREATE TABLE customers (id int, email text, name text, city text);
CREATE INDEX customers_email_idx ON customers (email);
INSERT INTO customers VALUES (9101, 'ann@example.org', 'Ann', 'Oslo');
SELECT consent_ledger.create_ledger('customers', personal => ARRAY['email', 'name'], subject => 'id');
SELECT encoding, personal, subject FROM consent_ledger.ledgers WHERE relid = 'customers'::regclass;
-- an inserter's own salt is overwritten by a random one
INSERT INTO customers (id, email, name, city, ledger_salt)
  VALUES (9102, 'bob@example.org', 'Bob', 'Rome', '\x00'::bytea);
INSERT INTO customers VALUES (9101, 'ann@work.example', 'Ann', 'Oslo'), (9103, NULL, 'Cy', 'Lima');
SELECT id, email, name, city, length(ledger_salt) AS salt_bytes, consent_ledger.erased(ledger_salt)
  FROM customers ORDER BY ledger_txn, ledger_ord;
-- the leaves hold commitments (tag H), never the personal values
SELECT i, position('\x48'::bytea IN substring(consent_ledger.leaf_data('customers', i) FROM 16)) > 0 AS has_commitment,
       position(convert_to('ann@', 'UTF8') IN consent_ledger.leaf_data('customers', i)) = 0 AS no_email,
       position(convert_to('Ann', 'UTF8') IN consent_ledger.leaf_data('customers', i)) = 0 AS no_name
  FROM generate_series(0, 3) i;
SELECT consent_ledger.seal() AS sealed;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('customers');

-- the auditor's receipt, every leaf and a proof before the erasure
CREATE TABLE before_erasure AS
  SELECT consent_ledger.checkpoint('customers')::text AS receipt,
         (SELECT array_agg(consent_ledger.leaf_data('customers', i) ORDER BY i)
            FROM generate_series(0, 3) i) AS leaves,
         consent_ledger.inclusion_proof('customers', 2) AS proof;

-- 2. erasure: admin only
CREATE ROLE erasure_owner;
CREATE ROLE erasure_admin;
GRANT consent_ledger_admin TO erasure_admin;
GRANT USAGE ON SCHEMA consent_ledger TO erasure_owner;
ALTER TABLE customers OWNER TO erasure_owner;
SET ROLE erasure_owner;
SELECT * FROM consent_ledger.erase_subject('9101', 'owner tries');
\echo :SQLSTATE
RESET ROLE;
-- EXECUTE granted to a non-admin is not enough either
GRANT EXECUTE ON FUNCTION consent_ledger.erase_subject(text, text) TO erasure_owner;
SET ROLE erasure_owner;
SELECT * FROM consent_ledger.erase_subject('9101', 'owner tries');
\echo :SQLSTATE
RESET ROLE;
REVOKE EXECUTE ON FUNCTION consent_ledger.erase_subject(text, text) FROM erasure_owner;
SELECT * FROM consent_ledger.erase_subject(NULL, 'no subject');
SELECT * FROM consent_ledger.erase_subject('9101', '');

-- consent of the subject, withdrawn by the erasure
SELECT consent_ledger.define_purpose('erasure_newsletter');
SELECT consent_ledger.define_purpose('erasure_analytics');
SELECT consent_ledger.grant_consent('9101', 'erasure_newsletter', evidence => '{"ip": "192.0.2.1"}') > 0 AS granted;
-- the consent ledger commits to evidence as personal data
SELECT encoding, personal, subject FROM consent_ledger.ledgers WHERE relid = 'consent_ledger.consent_events'::regclass;
SELECT consent_ledger.grant_consent('9101', 'erasure_analytics') > 0 AS granted;
SELECT consent_ledger.grant_consent('9102', 'erasure_analytics') > 0 AS granted;

-- an audited ledger keyed by the subject: the audit ledger's row_key
-- "(customer_id)=(9101)" is the subject's too, and so are the hashes of
-- the row's versions (personal: recomputable by whoever guesses the row)
SELECT encoding, personal, subject FROM consent_ledger.ledgers WHERE relid = 'consent_ledger.audit_log'::regclass;
CREATE TABLE erasure_profiles (customer_id int PRIMARY KEY, email text);
SELECT consent_ledger.create_ledger('erasure_profiles', personal => ARRAY['email'], subject => 'customer_id');
SELECT consent_ledger.audit('erasure_profiles');
INSERT INTO erasure_profiles VALUES (9101, 'ann@profile.example'), (9102, 'bob@profile.example');
SELECT row_key, new_row_hash IS NOT NULL AS new_hash, consent_ledger.erased(ledger_salt) FROM consent_ledger.audit_log
 WHERE relation = 'public.erasure_profiles' ORDER BY record_id;
-- tables keyed by something else than their subject column (an order id;
-- an e-mail address), audited before they are protected: the records
-- written before name no subject (the subject column was not known), only
-- the subject's rows by that key, and are the subject's by it -- also a
-- row updated since, and a deleted one still in the table (not vacuumed)
CREATE TABLE erasure_orders (order_id int PRIMARY KEY, customer_id int, item text);
CREATE TABLE erasure_contacts (email text PRIMARY KEY, customer_id int);
SELECT consent_ledger.audit('erasure_orders');
SELECT consent_ledger.audit('erasure_contacts');
INSERT INTO erasure_orders VALUES (1, 9101, 'book'), (2, 9102, 'pen'), (3, 9101, 'lamp');
UPDATE erasure_orders SET item = 'desk lamp' WHERE order_id = 3;
INSERT INTO erasure_contacts VALUES ('ann@contact.example', 9101), ('bob@contact.example', 9102);
DELETE FROM erasure_contacts WHERE email = 'ann@contact.example';
-- an aborted insert does not make a key the subject's (a table owner
-- cannot plant the subject's name on another's row), and a row moved from
-- one subject to another is ambiguous: its records are left to both
BEGIN;
DELETE FROM erasure_orders WHERE order_id = 2;
INSERT INTO erasure_orders VALUES (2, 9101, 'planted');
ROLLBACK;
INSERT INTO erasure_orders VALUES (4, 9101, 'moved');
UPDATE erasure_orders SET customer_id = 9102 WHERE order_id = 4;
-- a session quoting every identifier records ("order_id")=(5): found too
SET quote_all_identifiers = on;
INSERT INTO erasure_orders VALUES (5, 9101, 'quoted');
RESET quote_all_identifiers;
SELECT consent_ledger.protect('erasure_orders', 'customer_id');
SELECT consent_ledger.protect('erasure_contacts', 'customer_id');
SELECT relid::regclass AS tbl, operation, row_key, consent_ledger.erased(ledger_salt) FROM consent_ledger.audit_log
 WHERE relid IN ('erasure_orders'::regclass, 'erasure_contacts'::regclass) AND row_key IS NOT NULL
 ORDER BY relid::regclass::text, row_key, operation;
SELECT count(*) AS records_naming_subjects FROM consent_ledger.audit_log
 WHERE relid IN ('erasure_orders'::regclass, 'erasure_contacts'::regclass)
   AND (old_subject IS NOT NULL OR new_subject IS NOT NULL);
-- records of a protected table name the audited versions' subjects
-- (old_subject, new_subject): they are the subject's by them, also where
-- the table has no key (no row_key) and where the rows are no longer in
-- the table (TRUNCATE); a record naming another subject is still looked
-- up by its key (the table's subject column may have changed since), so
-- a key the subject's row took after another's row was gone makes that
-- one's record the subject's too (the documented false positive)
CREATE TABLE erasure_visits (customer_id int, page text);
CREATE TABLE erasure_tickets (ticket_id int PRIMARY KEY, customer_id int);
SELECT consent_ledger.protect('erasure_visits', 'customer_id');
SELECT consent_ledger.protect('erasure_tickets', 'customer_id');
SELECT consent_ledger.audit('erasure_visits');
SELECT consent_ledger.audit('erasure_tickets');
INSERT INTO erasure_visits VALUES (9101, '/a'), (9102, '/b');
UPDATE erasure_visits SET page = '/c' WHERE customer_id = 9101;
INSERT INTO erasure_tickets VALUES (1, 9101), (2, 9102);
TRUNCATE erasure_tickets;
INSERT INTO erasure_tickets VALUES (2, 9101);
SELECT relid::regclass AS tbl, operation, row_key, old_subject, new_subject, consent_ledger.erased(ledger_salt)
  FROM consent_ledger.audit_log WHERE relid IN ('erasure_visits'::regclass, 'erasure_tickets'::regclass)
   AND operation <> 'SELECT'
 ORDER BY record_id;
-- no subject is recorded where its text could mislead: a table that is a
-- ledger with one subject column and protected with another, a subject
-- whose text depends on session settings (timestamptz), a subject too
-- long for a record (cut, it would name its prefix); those records are
-- found by their keys
CREATE TABLE erasure_both (email text PRIMARY KEY, customer_id int, note text);
SELECT consent_ledger.create_ledger('erasure_both', ARRAY['note'], 'email');
SELECT consent_ledger.protect('erasure_both', 'customer_id');
SELECT consent_ledger.audit('erasure_both');
INSERT INTO erasure_both VALUES ('both@example.org', 9103, 'a note');
CREATE TABLE erasure_born (id int PRIMARY KEY, born timestamptz, note text);
SELECT consent_ledger.create_ledger('erasure_born', ARRAY['note'], 'born');
SELECT consent_ledger.audit('erasure_born');
INSERT INTO erasure_born VALUES (1, '2000-01-02 03:04:05+00', 'born note');
CREATE TABLE erasure_long (id int PRIMARY KEY, subj text, v text);
SELECT consent_ledger.protect('erasure_long', 'subj');
SELECT consent_ledger.audit('erasure_long');
INSERT INTO erasure_long VALUES (1, repeat('a', 5000), 'long'), (2, repeat('a', 4096), 'prefix');
SELECT relid::regclass AS tbl, row_key, old_subject IS NULL AND new_subject IS NULL AS no_subject
  FROM consent_ledger.audit_log
 WHERE relid IN ('erasure_both'::regclass, 'erasure_born'::regclass, 'erasure_long'::regclass)
   AND operation = 'INSERT' ORDER BY record_id;
-- (sql/audit.sql tampered with one audit record on purpose: the verdict
-- must be the same before and after the erasure)
CREATE TABLE audit_verdict AS SELECT valid, problem FROM consent_ledger.verify('consent_ledger.audit_log');

SET ROLE erasure_admin;
-- (the erasing session's own quoting changes nothing)
SET quote_all_identifiers = on;
CREATE TEMP TABLE erased_now AS SELECT * FROM consent_ledger.erase_subject('9101', 'GDPR Art. 17 request 42');
RESET quote_all_identifiers;
SELECT * FROM erased_now ORDER BY relation::text;
DROP TABLE erased_now;
RESET ROLE;
SELECT id, email, name, city, length(ledger_salt) AS record_bytes, consent_ledger.erased(ledger_salt)
  FROM customers ORDER BY ledger_txn, ledger_ord;
-- the index was rebuilt: no entry holds an erased value
SET enable_seqscan = off;
SELECT count(*) AS found_by_index FROM customers WHERE email = 'ann@example.org';
RESET enable_seqscan;
SELECT subject, purpose, action, evidence, consent_ledger.erased(ledger_salt) FROM consent_ledger.consent_events
 WHERE subject LIKE '910_' ORDER BY event_id;
SELECT relation, valid, problem FROM consent_ledger.verify('consent_ledger.consent_events');
SELECT customer_id, email, consent_ledger.erased(ledger_salt) FROM erasure_profiles ORDER BY customer_id;
SELECT row_key, new_row_hash IS NOT NULL AS new_hash, consent_ledger.erased(ledger_salt) FROM consent_ledger.audit_log
 WHERE relation = 'public.erasure_profiles' ORDER BY record_id;
-- (the aborted transaction's records arrive in no fixed order: sorted;
-- so do the read records the audit writer writes, left out below)
SELECT relid::regclass AS tbl, operation, row_key, consent_ledger.erased(ledger_salt) FROM consent_ledger.audit_log
 WHERE relid IN ('erasure_orders'::regclass, 'erasure_contacts'::regclass) AND operation <> 'SELECT'
 ORDER BY relid::regclass::text, row_key NULLS FIRST, operation;
SELECT relid::regclass AS tbl, operation, row_key, old_subject, new_subject, consent_ledger.erased(ledger_salt)
  FROM consent_ledger.audit_log WHERE relid IN ('erasure_visits'::regclass, 'erasure_tickets'::regclass)
   AND operation <> 'SELECT'
 ORDER BY record_id;
SELECT v.valid IS NOT DISTINCT FROM b.valid AND v.problem IS NOT DISTINCT FROM b.problem AS same_audit_verdict
  FROM consent_ledger.verify('consent_ledger.audit_log') v, audit_verdict b;
SELECT subject, purpose, state FROM consent_ledger.consent_state WHERE purpose LIKE 'erasure%' AND subject LIKE '910_' ORDER BY subject, purpose;
SELECT erased_by, reason, ledger = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = relation::regclass) AS right_ledger,
       relation, rows, purposes_withdrawn FROM consent_ledger.erasures ORDER BY relation;
-- an erasure again finds nothing left to erase, and is recorded
SELECT * FROM consent_ledger.erase_subject('9101', 'second request');
SELECT count(*) AS erasure_records FROM consent_ledger.erasures;
-- the records that name no subject: found by key (erasure_both's by the
-- ledger's subject column, its key; erasure_born's by its id, once the
-- erasing session prints the timestamptz subject as given: ISO, UTC); the 4096-byte
-- prefix of a longer subject is a subject of its own: only its record goes
SET TimeZone = 'UTC';
SET DateStyle = 'ISO';
SELECT relation, rows FROM consent_ledger.erase_subject('both@example.org', 'the ledger subject of a protected ledger')
 ORDER BY relation::text;
SELECT relation, rows FROM consent_ledger.erase_subject('2000-01-02 03:04:05+00', 'a timestamptz subject')
 ORDER BY relation::text;
RESET TimeZone;
RESET DateStyle;
SELECT relation, rows FROM consent_ledger.erase_subject(repeat('a', 4096), 'the prefix') ORDER BY relation::text;
SELECT relid::regclass AS tbl, row_key, consent_ledger.erased(ledger_salt) FROM consent_ledger.audit_log
 WHERE relid IN ('erasure_both'::regclass, 'erasure_born'::regclass, 'erasure_long'::regclass)
   AND operation = 'INSERT' ORDER BY record_id;

-- 3. everything the auditor held before still holds
SELECT consent_ledger.seal() > 0 AS sealed_new_rows;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('customers');
SELECT relation, valid, problem FROM consent_ledger.verify('consent_ledger.erasures');
SELECT consent_ledger.verify_checkpoint(receipt) AS old_receipt_holds FROM before_erasure;
SELECT leaves = (SELECT array_agg(consent_ledger.leaf_data('customers', i) ORDER BY i)
                   FROM generate_series(0, 3) i) AS same_leaf_bytes,
       proof = consent_ledger.inclusion_proof('customers', 2, (proof->>'tree_size')::bigint) AS same_proof
  FROM before_erasure;

-- 4. forged erasures, as a superuser bypassing the extension; after
-- each, the rows are put back as they were and verify() is valid again
CREATE TABLE saved AS SELECT * FROM customers;
CREATE FUNCTION put_back() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM bypass('customers', false);
  DELETE FROM customers;
  INSERT INTO customers SELECT * FROM saved;
  PERFORM bypass('customers', true);
  RETURN (SELECT valid FROM consent_ledger.verify('customers'));
END $$;
-- a commitment as README "Erasure" specifies it (text values: tag t)
CREATE FUNCTION commitment(salt bytea, col text, val text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT sha256('\x02'::bytea || salt || substring(int4send(octet_length(col)) FROM 3) || convert_to(col, 'UTF8')
                || '\x74'::bytea || int4send(octet_length(convert_to(val, 'UTF8'))) || convert_to(val, 'UTF8'))
$$;
CREATE FUNCTION entry(col text, c bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT substring(int4send(octet_length(col)) FROM 3) || convert_to(col, 'UTF8') || c
$$;

-- 4a. a value put back, changed, into an erased row
SELECT bypass('customers', false);
UPDATE customers SET email = 'someone@else.example' WHERE id = 9101 AND city = 'Oslo'
   AND ledger_txn = (SELECT min(ledger_txn) FROM customers);
SELECT bypass('customers', true);
SELECT valid, problem FROM consent_ledger.verify('customers');
SELECT put_back();
-- 4b. one bit of a commitment in an erasure record changed
SELECT bypass('customers', false);
UPDATE customers SET ledger_salt = set_byte(ledger_salt, 20, get_byte(ledger_salt, 20) # 1) WHERE id = 9101;
SELECT bypass('customers', true);
SELECT valid, problem FROM consent_ledger.verify('customers');
SELECT put_back();
-- 4c. Bob "erased" with the commitments of other values (Ann's record)
SELECT bypass('customers', false);
UPDATE customers SET email = NULL, name = NULL,
       ledger_salt = (SELECT ledger_salt FROM saved WHERE id = 9101 LIMIT 1) WHERE id = 9102;
SELECT bypass('customers', true);
SELECT valid, problem FROM consent_ledger.verify('customers');
SELECT put_back();
-- 4d. Bob's row erased by hand, correctly: the same leaf (what erasure
-- is), so verify() holds ...
SELECT bypass('customers', false);
UPDATE customers SET email = NULL, name = NULL,
       ledger_salt = '\x450002'::bytea || entry('email', commitment(ledger_salt, 'email', email))
                                       || entry('name', commitment(ledger_salt, 'name', name))
 WHERE id = 9102;
SELECT bypass('customers', true);
SELECT id, email, name, city, consent_ledger.erased(ledger_salt) FROM customers WHERE id = 9102;
SELECT valid, problem FROM consent_ledger.verify('customers');
SELECT put_back();
-- ... but the same with a non-personal column "redacted" too is detected,
-- its commitment computed just as correctly
SELECT bypass('customers', false);
UPDATE customers SET email = NULL, name = NULL, city = NULL,
       ledger_salt = '\x450003'::bytea || entry('city', commitment(ledger_salt, 'city', city))
                                       || entry('email', commitment(ledger_salt, 'email', email))
                                       || entry('name', commitment(ledger_salt, 'name', name))
 WHERE id = 9102;
SELECT bypass('customers', true);
SELECT valid, problem FROM consent_ledger.verify('customers');
SELECT put_back();
-- 4e. a column declared personal after the fact (catalog edit)
UPDATE consent_ledger.ledgers SET personal = personal || '{city}' WHERE relid = 'customers'::regclass;
SELECT valid, problem FROM consent_ledger.verify('customers');
UPDATE consent_ledger.ledgers SET personal = '{email,name}' WHERE relid = 'customers'::regclass;
SELECT valid AS restored FROM consent_ledger.verify('customers');

-- 5. refusals of create_ledger() with personal columns
CREATE TABLE p_bad (id int, email text, g text GENERATED ALWAYS AS (upper(email)) STORED);
SELECT consent_ledger.create_ledger('p_bad', ARRAY['nope'], 'id');
SELECT consent_ledger.create_ledger('p_bad', ARRAY['email'], 'nope');
SELECT consent_ledger.create_ledger('p_bad', ARRAY['g'], 'id');
SELECT consent_ledger.create_ledger('p_bad', ARRAY[]::name[], 'id');
SELECT consent_ledger.create_ledger('p_bad', ARRAY['email', 'email'], 'id');
SELECT consent_ledger.create_ledger('p_bad', ARRAY['email'], NULL);
-- what erasure could not keep to (attack review R2): a NOT NULL or CHECK
-- on a personal column, a generated column computed from one
CREATE TABLE p_nn (id int, email text NOT NULL);
SELECT consent_ledger.create_ledger('p_nn', ARRAY['email'], 'id');
CREATE TABLE p_ck (id int, email text CHECK (email LIKE '%@%'));
SELECT consent_ledger.create_ledger('p_ck', ARRAY['email'], 'id');
CREATE TABLE p_gen (id int, email text, up text GENERATED ALWAYS AS (upper(email)) STORED);
SELECT consent_ledger.create_ledger('p_gen', ARRAY['email'], 'id');
-- ... and the same through a domain (attack review 4)
CREATE DOMAIN p_email AS text CHECK (VALUE LIKE '%@%');
CREATE DOMAIN p_email_nn AS p_email NOT NULL;
CREATE TABLE p_dom_ck (id int, email p_email);
SELECT consent_ledger.create_ledger('p_dom_ck', ARRAY['email'], 'id');
CREATE TABLE p_dom_nn (id int, email p_email_nn);
SELECT consent_ledger.create_ledger('p_dom_nn', ARRAY['email'], 'id');
SELECT count(*) AS not_ledgers FROM consent_ledger.ledgers
  WHERE relid IN ('p_bad'::regclass, 'p_nn'::regclass, 'p_ck'::regclass, 'p_gen'::regclass,
                  'p_dom_ck'::regclass, 'p_dom_nn'::regclass);
-- ... nor added to a ledger later, by its owner
CREATE TABLE p_later (id int, email text);
SELECT consent_ledger.create_ledger('p_later', ARRAY['email'], 'id');
INSERT INTO p_later (id, email) VALUES (1, 'one@example.org');
ALTER TABLE p_later ALTER COLUMN email SET NOT NULL;
SELECT attnotnull FROM pg_attribute WHERE attrelid = 'p_later'::regclass AND attname = 'email';
ALTER TABLE customers ADD CONSTRAINT email_at CHECK (email LIKE '%@%') NOT VALID;
ALTER TABLE customers ADD CONSTRAINT whole CHECK (customers IS NOT NULL) NOT VALID;
ALTER TABLE customers ADD CONSTRAINT city_ok CHECK (city <> '') NOT VALID;
SELECT conname FROM pg_constraint WHERE conrelid = 'customers'::regclass ORDER BY conname;
ALTER TABLE customers DROP CONSTRAINT city_ok;
-- UPDATE stays refused on a ledger with personal columns
UPDATE customers SET email = NULL WHERE id = 9102;
-- a ledger without personal columns keeps its encoding and gets no salt column
CREATE TABLE plain (id int, v text);
SELECT consent_ledger.create_ledger('plain');
SELECT encoding, personal IS NULL AS no_personal FROM consent_ledger.ledgers WHERE relid = 'plain'::regclass;
SELECT count(*) AS salt_columns FROM pg_attribute WHERE attrelid = 'plain'::regclass AND attname = 'ledger_salt';

-- 6. COPY into a ledger with personal columns on the table access method
-- stores a batch of rows at once (multi-insert): each row keeps the salt
-- its leaf was hashed with, so the ledger verifies and every salt differs
CREATE TABLE copied (id int, email text);
SELECT consent_ledger.create_ledger('copied', ARRAY['email'], 'id');
SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = 'copied'::regclass;
COPY copied (id, email) FROM stdin;
9201	a@example.org
9202	b@example.org
9203	c@example.org
9204	d@example.org
\.
INSERT INTO copied (id, email) SELECT 9300 + g, 'x' || g || '@example.org' FROM generate_series(1, 20) g;
SELECT count(*) AS rows, count(DISTINCT ledger_salt) AS distinct_salts FROM copied;
SELECT consent_ledger.seal() > 0 AS sealed;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('copied');
SELECT * FROM consent_ledger.erase_subject('9202', 'copied row erased');
SELECT id, email, consent_ledger.erased(ledger_salt) FROM copied WHERE id BETWEEN 9201 AND 9203 ORDER BY id;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('copied');

-- 7. bytes moved from the front of a personal value to the end of its
-- salt give the commitment the same input bytes (the salt has no length
-- of its own in it), but a value next to a salt that is not 32 bytes is
-- never a live commitment: verify() finds the change (attack review R2)
CREATE TABLE docs (id int, doc bytea);
SELECT consent_ledger.create_ledger('docs', ARRAY['doc'], 'id');
-- the planted value: namelen, name, tag and length of a shorter value, then it
INSERT INTO docs (id, doc) VALUES (70, '\x0003646f6378000000034e4557');
SELECT consent_ledger.seal() > 0 AS sealed;
SELECT relation, valid FROM consent_ledger.verify('docs');
SELECT bypass('docs', false);
UPDATE docs SET doc = '\x4e4557', ledger_salt = ledger_salt || '\x0003646f63780000000d'::bytea WHERE id = 70;
SELECT bypass('docs', true);
SELECT doc, length(ledger_salt) AS salt_bytes, consent_ledger.erased(ledger_salt) FROM docs;
SELECT relation, valid, problem FROM consent_ledger.verify('docs');

-- 8. a partitioned ledger with personal columns: every leaf partition is
-- a version 3 ledger committing to them, a sub-partitioned one's too, and
-- so is a partition created later (its parent's statement guard carries
-- the personal and subject columns); erase_subject() reaches every one
CREATE TABLE pers_parted (id int, customer_id int, email text, city text) PARTITION BY RANGE (id);
CREATE TABLE pers_parted_1 PARTITION OF pers_parted FOR VALUES FROM (0) TO (100);
CREATE TABLE pers_parted_2 PARTITION OF pers_parted FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (id);
CREATE TABLE pers_parted_2a PARTITION OF pers_parted_2 FOR VALUES FROM (100) TO (200);
INSERT INTO pers_parted VALUES (1, 9601, 'p1@example.org', 'Oslo'), (2, 9602, 'p2@example.org', 'Bern'),
  (120, 9601, 'p3@example.org', 'Rome');
SELECT consent_ledger.create_ledger('pers_parted', ARRAY['email'], 'customer_id');
CREATE TABLE pers_parted_3 PARTITION OF pers_parted FOR VALUES FROM (200) TO (300);
INSERT INTO pers_parted VALUES (250, 9601, 'p4@example.org', 'Lyon');
SELECT relid::regclass AS partition, encoding, personal, subject FROM consent_ledger.ledgers
  WHERE relid::text LIKE 'pers_parted%' ORDER BY relid::text;
SELECT consent_ledger.seal() > 0 AS sealed;
SELECT * FROM consent_ledger.erase_subject('9601', 'partitioned ledger erasure');
SELECT tableoid::regclass AS partition, id, customer_id, email, city, consent_ledger.erased(ledger_salt)
  FROM pers_parted ORDER BY id;
SELECT relation, valid, problem FROM consent_ledger.verify() WHERE relation::text LIKE 'pers_parted%' ORDER BY 1;
-- refused: a partition whose personal column is NOT NULL, a CHECK on the
-- parent reading one, and attaching a ledger with other personal columns
CREATE TABLE pers_parted_4 PARTITION OF pers_parted (email NOT NULL) FOR VALUES FROM (300) TO (400);
ALTER TABLE pers_parted ADD CONSTRAINT pers_parted_email CHECK (email LIKE '%@%');
CREATE TABLE pers_parted_other (id int, customer_id int, email text, city text);
SELECT consent_ledger.create_ledger('pers_parted_other', ARRAY['city'], 'customer_id');
ALTER TABLE pers_parted ATTACH PARTITION pers_parted_other FOR VALUES FROM (400) TO (500);
-- ... nor a partitioned ledger whose leaves commit to other personal
-- columns (attack review: its own guard was kept), nor a foreign table
-- (it has no rows the ledger could read; the check crashed on it before)
CREATE TABLE pers_parted_sub (id int, customer_id int, email text, city text) PARTITION BY RANGE (id);
CREATE TABLE pers_parted_sub_1 PARTITION OF pers_parted_sub FOR VALUES FROM (500) TO (600);
SELECT consent_ledger.create_ledger('pers_parted_sub', ARRAY['city'], 'id');
ALTER TABLE pers_parted ATTACH PARTITION pers_parted_sub FOR VALUES FROM (500) TO (600);
CREATE FOREIGN DATA WRAPPER pers_parted_fdw;
CREATE SERVER pers_parted_server FOREIGN DATA WRAPPER pers_parted_fdw;
CREATE FOREIGN TABLE pers_parted_foreign (id int, customer_id int, email text, city text,
  ledger_txn bigint, ledger_ord int, ledger_salt bytea) SERVER pers_parted_server;
ALTER TABLE pers_parted ATTACH PARTITION pers_parted_foreign FOR VALUES FROM (600) TO (700);
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'pers_parted'::regclass;
-- a domain that a personal column uses takes no new constraint, whoever
-- adds it, NOT VALID too (erased rows would violate it)
CREATE DOMAIN pers_email AS text;
CREATE TABLE pers_domain (id int, email pers_email);
SELECT consent_ledger.create_ledger('pers_domain', ARRAY['email'], 'id');
ALTER DOMAIN pers_email ADD CONSTRAINT pers_email_at CHECK (VALUE LIKE '%@%') NOT VALID;
ALTER DOMAIN pers_email SET NOT NULL;
-- a retired ledger with personal columns is still erased: its columns
-- keep their names and types until its table is dropped
SELECT consent_ledger.retire_ledger('pers_domain');
ALTER TABLE pers_domain RENAME COLUMN id TO id_old;
ALTER TABLE pers_domain DROP COLUMN email;
ALTER TABLE pers_domain ALTER COLUMN id TYPE bigint;
SELECT count(*) FROM consent_ledger.erase_subject('no such subject', 'a retired ledger is still read');
ALTER TABLE pers_domain ALTER COLUMN email SET NOT NULL;
ALTER TABLE pers_domain ADD CONSTRAINT pers_domain_email CHECK (email IS NOT NULL) NOT VALID;
CREATE TABLE pers_domain_parent (id int, email pers_email);
ALTER TABLE pers_domain INHERIT pers_domain_parent;
-- ... nor through a parent: a retired partitioned ledger (its parent is no
-- ledger any more) renamed or constrained at the top reaches its leaves
CREATE TABLE pers_retired (id int, email text) PARTITION BY RANGE (id);
CREATE TABLE pers_retired_1 PARTITION OF pers_retired FOR VALUES FROM (0) TO (10);
SELECT consent_ledger.create_ledger('pers_retired', ARRAY['email'], 'id');
SELECT consent_ledger.retire_ledger('pers_retired');
ALTER TABLE pers_retired RENAME COLUMN email TO mail;
ALTER TABLE pers_retired ALTER COLUMN email SET NOT NULL;
-- the salt: erasure replaces it by a longer record, so no CHECK on it
ALTER TABLE customers ADD CONSTRAINT salt_length CHECK (octet_length(ledger_salt) = 32) NOT VALID;
-- foreign keys: MATCH FULL over a personal column (erasure NULLs it
-- alone), and a key of another table referencing a personal column
CREATE TABLE pers_ref (email text, id int, UNIQUE (email, id));
CREATE TABLE pers_fk (id int, email text);
SELECT consent_ledger.create_ledger('pers_fk', ARRAY['email'], 'id');
ALTER TABLE pers_fk ADD FOREIGN KEY (email, id) REFERENCES pers_ref (email, id) MATCH FULL;
ALTER TABLE pers_fk ADD FOREIGN KEY (email, id) REFERENCES pers_ref (email, id);
CREATE UNIQUE INDEX pers_fk_email ON pers_fk (email);
CREATE TABLE pers_fk_child (email text REFERENCES pers_fk (email));
CREATE TABLE pers_fk_child (email text);
ALTER TABLE pers_fk_child ADD FOREIGN KEY (email) REFERENCES pers_fk (email);
-- a char(n) subject is the subject as the consent policy casts it (::text,
-- without trailing blanks): in a ledger, and in the audit records
CREATE TABLE pers_char (id int PRIMARY KEY, code char(6), email text);
SELECT consent_ledger.create_ledger('pers_char', ARRAY['email'], 'code');
SELECT consent_ledger.audit('pers_char');
INSERT INTO pers_char VALUES (1, 'abc', 'abc@example.org'), (2, 'abd', 'abd@example.org');
SELECT new_subject FROM consent_ledger.audit_log WHERE relid = 'pers_char'::regclass ORDER BY record_id;
SELECT relation, rows FROM consent_ledger.erase_subject('abc', 'a char(6) subject') ORDER BY relation::text;
SELECT id, code, email, consent_ledger.erased(ledger_salt) FROM pers_char ORDER BY id;
-- a protected table protected again with another subject column: the
-- records naming the first column's subjects are still found by key
CREATE TABLE pers_acct (id int PRIMARY KEY, person text, holder text, email text);
SELECT consent_ledger.protect('pers_acct', 'person');
SELECT consent_ledger.audit('pers_acct');
INSERT INTO pers_acct VALUES (7, 'p-1', 'h-1', 'one@example.org');
SELECT consent_ledger.unprotect('pers_acct');
SELECT consent_ledger.protect('pers_acct', 'holder');
SELECT relation, rows FROM consent_ledger.erase_subject('h-1', 'a subject column changed') ORDER BY relation::text;
SELECT row_key, new_subject, consent_ledger.erased(ledger_salt) FROM consent_ledger.audit_log
 WHERE relid = 'pers_acct'::regclass AND operation = 'INSERT';

-- attack review 4: a wide row's salt moved out of line by the toaster is
-- still a live salt (the row was skipped, its e-mail kept)
CREATE TABLE pers_wide (id int, email text, blob text);
ALTER TABLE pers_wide ALTER COLUMN blob SET STORAGE PLAIN;
SELECT consent_ledger.create_ledger('pers_wide', ARRAY['email'], 'id');
INSERT INTO pers_wide VALUES (81, 'wide@example.org', repeat('x', 2100)), (82, 'narrow@example.org', 'x');
SELECT pg_relation_size(reltoastrelid) > 0 AS values_out_of_line FROM pg_class WHERE oid = 'pers_wide'::regclass;
SELECT relation, rows FROM consent_ledger.erase_subject('81', 'a wide row') ORDER BY relation::text;
SELECT id, email, consent_ledger.erased(ledger_salt) FROM pers_wide ORDER BY id;
SELECT relation, valid, problem FROM consent_ledger.verify('pers_wide');
-- no rule on a retired ledger with personal columns (a view would be scanned as a table)
CREATE RULE pers_rule AS ON INSERT TO pers_domain DO INSTEAD NOTHING;
-- the checks after ALTER TABLE take the table PostgreSQL took, whatever
-- search_path a function in the command sets
CREATE FUNCTION pers_flip() RETURNS boolean LANGUAGE plpgsql AS
  $$BEGIN PERFORM set_config('search_path', 'pg_catalog', false); RETURN true; END$$;
ALTER TABLE pers_fk ADD CONSTRAINT pers_fk_flip CHECK (public.pers_flip()), ALTER COLUMN email SET NOT NULL;
RESET search_path;
-- unique indexes where erased rows could collide; partitioning by a
-- personal column; foreign keys over or to the salt; a foreign key to a
-- partitioned ledger's personal column
CREATE UNIQUE INDEX pers_fk_nnd ON pers_fk (email) NULLS NOT DISTINCT;
CREATE UNIQUE INDEX pers_fk_partial ON pers_fk (id) WHERE email IS NULL;
CREATE UNIQUE INDEX pers_fk_expr ON pers_fk ((coalesce(email, '')));
CREATE TABLE pers_parted_email PARTITION OF pers_parted FOR VALUES FROM (800) TO (900) PARTITION BY LIST (email);
CREATE TABLE pers_bylist (id int, email text) PARTITION BY LIST (email);
SELECT consent_ledger.create_ledger('pers_bylist', ARRAY['email'], 'id');
CREATE TABLE pers_salts (s bytea PRIMARY KEY);
ALTER TABLE pers_fk ADD FOREIGN KEY (ledger_salt) REFERENCES pers_salts (s);
CREATE UNIQUE INDEX pers_fk_salt ON pers_fk (ledger_salt);
CREATE TABLE pers_saltref (s bytea REFERENCES pers_fk (ledger_salt));
ALTER TABLE pers_parted ADD UNIQUE (email, id);
CREATE TABLE pers_parted_ref (email text, id int, FOREIGN KEY (email, id) REFERENCES pers_parted (email, id));
-- a partition named like a temporary table of the session is still made a
-- ledger (the name was looked up again after the command: pg_temp first)
CREATE TEMP TABLE pers_shadow (z int);
DO $$BEGIN EXECUTE 'CREATE TABLE pers_shadow PARTITION OF pers_parted FOR VALUES FROM (900) TO (1000)'; END$$;
SELECT relid::regclass AS partition, encoding, personal FROM consent_ledger.ledgers
 WHERE relid = 'public.pers_shadow'::regclass;
DROP TABLE pers_shadow;
-- attack review 5: a partition renamed by its own bound's function, and
-- a partition attached after the bound's function changed search_path,
-- are still the ledger's (taken by OID, and every partition reconciled)
CREATE FUNCTION pers_rename() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN EXECUTE 'ALTER TABLE public.pers_renamed RENAME TO pers_renamed_x'; RETURN 1100; END$$;
CREATE TABLE pers_renamed PARTITION OF pers_parted FOR VALUES FROM (pers_rename()) TO (1200);
CREATE SCHEMA pers_ms;
CREATE TABLE pers_ms.pers_att (LIKE pers_parted);
CREATE TABLE public.pers_att (LIKE pers_parted);
CREATE FUNCTION pers_sp() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN PERFORM set_config('search_path', 'pers_ms, public', false); RETURN 1200; END$$;
ALTER TABLE pers_parted ATTACH PARTITION pers_att FOR VALUES FROM (pers_sp()) TO (1300);
RESET search_path;
SELECT c.relnamespace::regnamespace AS schema, c.relname, l.encoding, l.personal
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid LEFT JOIN consent_ledger.ledgers l ON l.relid = c.oid
 WHERE i.inhparent = 'pers_parted'::regclass AND c.relname IN ('pers_renamed_x', 'pers_att') ORDER BY 1, 2;
-- a refused CREATE TABLE left the hook's state half set (the next erasure
-- crashed the server)
CREATE TABLE pers_bad (x int) INHERITS (pers_parted_1);
SELECT count(*) >= 0 AS erased_once FROM consent_ledger.erase_subject('no one', 'after a refused command');
SELECT count(*) >= 0 AS erased_twice FROM consent_ledger.erase_subject('no one either', 'after a refused command');
-- an index expression may run no command while an erasure rebuilds the
-- ledger's indexes (the guards are relaxed then)
CREATE TABLE pers_flag (on_ boolean);
INSERT INTO pers_flag VALUES (false);
CREATE FUNCTION pers_vol(i int) RETURNS int LANGUAGE plpgsql AS
  $$BEGIN IF (SELECT on_ FROM public.pers_flag) THEN
      EXECUTE 'ALTER TABLE public.pers_flag ADD COLUMN x int'; END IF; RETURN i; END$$;
CREATE FUNCTION pers_imm(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT public.pers_vol(i)';
CREATE TABLE pers_idx (id int, email text);
SELECT consent_ledger.create_ledger('pers_idx', ARRAY['email'], 'id');
CREATE INDEX pers_idx_imm ON pers_idx (pers_imm(id));
INSERT INTO pers_idx VALUES (91, 'idx@example.org');
UPDATE pers_flag SET on_ = true;
SELECT * FROM consent_ledger.erase_subject('91', 'an index expression running a command');
UPDATE pers_flag SET on_ = false;
SELECT relation, rows FROM consent_ledger.erase_subject('91', 'an index expression running nothing');
SELECT count(*) AS flag_columns FROM pg_attribute WHERE attrelid = 'pers_flag'::regclass AND attnum > 0;
-- CREATE INDEX CONCURRENTLY commits before any check after it: refused before
CREATE UNIQUE INDEX CONCURRENTLY pers_idx_nnd ON pers_idx (email) NULLS NOT DISTINCT;
-- ... also when the expression reads the personal column through the whole row
CREATE FUNCTION pers_em(pers_idx) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT coalesce($1.email, ''erased'')';
CREATE UNIQUE INDEX CONCURRENTLY pers_idx_wr ON pers_idx ((pers_em(pers_idx)));
CREATE UNIQUE INDEX CONCURRENTLY pers_idx_wr2 ON pers_idx (id) WHERE pers_em(pers_idx) <> '';
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'pers_idx'::regclass;

DROP TABLE saved, before_erasure, audit_verdict;
-- (the ledgers stay, live, as other tests' do)
ALTER TABLE customers OWNER TO CURRENT_USER;
DROP TABLE p_bad, p_nn, p_ck, p_gen, p_dom_ck, p_dom_nn;
DROP DOMAIN p_email_nn, p_email;
DROP FUNCTION put_back(), commitment(bytea, text, text), entry(text, bytea), bypass(regclass, boolean);
REVOKE USAGE ON SCHEMA consent_ledger FROM erasure_owner;
DROP ROLE erasure_owner;
REVOKE consent_ledger_admin FROM erasure_admin;
DROP ROLE erasure_admin;
ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
