-- Bypass attempts by untrusted roles (SPEC section 5 trust model): a
-- hostile analyst, a table owner who is not an administrator, and a role
-- with a few stray privileges.  Each block fails open on consent_ledger
-- 1.0 and must be refused (or filtered) now.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE bp_owner LOGIN;			-- owns the table, loads it; not trusted
CREATE ROLE bp_analyst LOGIN;		-- reads for purposes bp_a and bp_c
CREATE ROLE bp_colleague LOGIN;		-- also authorized for bp_a
CREATE ROLE bp_definer NOLOGIN;		-- authorized for bp_b only
CREATE ROLE bp_admin LOGIN IN ROLE consent_ledger_admin;
GRANT CREATE ON SCHEMA public TO bp_owner, bp_analyst;
SELECT current_user AS superuser \gset
SELECT consent_ledger.define_purpose('bp_a', 'purpose A');
SELECT consent_ledger.define_purpose('bp_b', 'purpose B');
SELECT consent_ledger.define_purpose('bp_c', 'purpose C');
SELECT consent_ledger.authorize_purpose('bp_analyst', 'bp_a');
SELECT consent_ledger.authorize_purpose('bp_analyst', 'bp_c');
SELECT consent_ledger.authorize_purpose('bp_colleague', 'bp_a');
SELECT consent_ledger.authorize_purpose('bp_definer', 'bp_b');

-- subject 1 consents to A, 2 to B, 3 to C, 4 to nothing
CREATE TABLE bp_t (id serial PRIMARY KEY, subject bigint, secret text);
ALTER TABLE bp_t OWNER TO bp_owner;
SET ROLE bp_owner;
INSERT INTO bp_t (subject, secret) VALUES (1, 's1'), (2, 's2'), (3, 's3'), (4, 's4');
GRANT SELECT ON bp_t TO bp_analyst, bp_colleague, bp_definer;
RESET ROLE;
SELECT consent_ledger.grant_consent(1, 'bp_a') > 0 AS g1,
       consent_ledger.grant_consent(2, 'bp_b') > 0 AS g2,
       consent_ledger.grant_consent(3, 'bp_c') > 0 AS g3;

-- protect() takes the table into custody; the owner keeps what loading needs
SELECT consent_ledger.protect('bp_t', 'subject');
SELECT relowner::regrole AS owner_now FROM pg_class WHERE oid = 'bp_t'::regclass;
SELECT previous_owner FROM consent_ledger.protected WHERE relid = 'bp_t'::regclass;
SELECT p AS privilege, has_table_privilege('bp_owner', 'bp_t', p) AS granted
  FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p;

-- 1. a purpose decision never crosses security contexts
CREATE FUNCTION bp_f() RETURNS int LANGUAGE sql SECURITY DEFINER
  SET consent_ledger.purpose = 'bp_b' AS 'SELECT count(*)::int FROM public.bp_t';
ALTER FUNCTION bp_f() OWNER TO bp_definer;
SET ROLE bp_analyst;
-- no purpose of its own: the definer's purpose B must not leak into the outer scan
SELECT id, subject FROM bp_t WHERE (SELECT bp_f()) IS NOT NULL;
\echo :SQLSTATE
SELECT id, subject, (SELECT bp_f()) AS inner_rows FROM bp_t;
\echo :SQLSTATE
-- with purpose A: A's rows only, whatever the definer's purpose was
SET consent_ledger.purpose = 'bp_a';
SELECT id, subject FROM bp_t WHERE (SELECT bp_f()) IS NOT NULL ORDER BY id;
SELECT bp_f() AS definer_sees_b_rows;
-- a cursor keeps the purpose it was opened with
BEGIN;
DECLARE c CURSOR FOR SELECT id, subject FROM bp_t ORDER BY id;
FETCH 1 FROM c;
SET consent_ledger.purpose = 'bp_c';
FETCH 1 FROM c;
\echo :SQLSTATE
ROLLBACK;
-- ... also when it was opened but not yet read
SET consent_ledger.purpose = 'bp_a';
BEGIN;
DECLARE c CURSOR FOR SELECT id, subject FROM bp_t ORDER BY id;
SET consent_ledger.purpose = 'bp_c';
FETCH ALL FROM c;
\echo :SQLSTATE
ROLLBACK;
RESET consent_ledger.purpose;
RESET ROLE;
-- ... and the role it was opened by
BEGIN;
SET LOCAL ROLE bp_analyst;
SET LOCAL consent_ledger.purpose = 'bp_a';
DECLARE c CURSOR FOR SELECT id, subject FROM bp_t ORDER BY id;
FETCH 1 FROM c;
SET LOCAL ROLE bp_colleague;
FETCH 1 FROM c;
\echo :SQLSTATE
ROLLBACK;

-- 2. the previous owner has no DDL left to read hidden rows with
CREATE FUNCTION bp_leak(text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS
  $$BEGIN RAISE NOTICE 'leaked %', $1; RETURN $1; END$$;
SET ROLE bp_owner;
ALTER TABLE bp_t ALTER COLUMN secret TYPE text USING bp_leak(secret);
\echo :SQLSTATE
ALTER TABLE bp_t ADD COLUMN g text GENERATED ALWAYS AS (bp_leak(secret)) STORED;
\echo :SQLSTATE
CREATE STATISTICS bp_s ON (bp_leak(secret)) FROM bp_t;
\echo :SQLSTATE
ALTER TABLE bp_t ADD CONSTRAINT bp_x EXCLUDE ((bp_leak(secret)) WITH =);
\echo :SQLSTATE
CREATE POLICY bp_del ON bp_t FOR DELETE USING (true);
\echo :SQLSTATE
CREATE FUNCTION bp_harvest() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN RAISE NOTICE 'harvested %', OLD.secret; RETURN NULL; END$$;
CREATE TRIGGER bp_harvest BEFORE DELETE ON bp_t FOR EACH ROW EXECUTE FUNCTION bp_harvest();
\echo :SQLSTATE
ALTER TABLE bp_t DROP COLUMN subject CASCADE;
\echo :SQLSTATE
ALTER TABLE bp_t OWNER TO bp_owner;
\echo :SQLSTATE
GRANT REFERENCES ON bp_t TO bp_analyst;
\echo :SQLSTATE
-- loading still works (COPY FROM is refused by PostgreSQL on any table
-- under row-level security: load a staging table, then INSERT ... SELECT),
-- and reading is under the policy
INSERT INTO bp_t (subject, secret) VALUES (5, 's5');
CREATE TEMP TABLE bp_stage (subject bigint, secret text);
COPY bp_stage FROM stdin;
6	s6
\.
INSERT INTO bp_t (subject, secret) SELECT subject, secret FROM bp_stage;
SET consent_ledger.purpose = 'bp_a';
\echo :SQLSTATE
SELECT count(*) FROM bp_t;
\echo :SQLSTATE
RESET ROLE;

-- not even a trusted administrator removes the consent policies by CASCADE
SET ROLE bp_admin;
ALTER TABLE bp_t DROP COLUMN subject CASCADE;
\echo :SQLSTATE
-- nor adds a permissive policy for any command
CREATE POLICY bp_del ON bp_t AS PERMISSIVE FOR DELETE USING (true);
\echo :SQLSTATE
CREATE POLICY bp_ins ON bp_t AS PERMISSIVE FOR INSERT WITH CHECK (true);
\echo :SQLSTATE
RESET ROLE;
SELECT count(*) AS consent_policies FROM pg_policy WHERE polrelid = 'bp_t'::regclass;

-- code planted before protect() would run over hidden rows later: refused
CREATE TABLE bp_planted (id int, subject bigint, secret text);
CREATE TRIGGER bp_harvest BEFORE DELETE ON bp_planted FOR EACH ROW EXECUTE FUNCTION bp_harvest();
SELECT consent_ledger.protect('bp_planted', 'subject');
\echo :SQLSTATE
DROP TRIGGER bp_harvest ON bp_planted;
CREATE INDEX ON bp_planted ((bp_leak(secret)));
SELECT consent_ledger.protect('bp_planted', 'subject');
\echo :SQLSTATE
DROP TABLE bp_planted;
-- ... so is code of an untrusted role in CHECK constraints and generated columns
SET ROLE bp_owner;
CREATE FUNCTION bp_spy(text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
  $$BEGIN RAISE NOTICE 'spied %', $1; RETURN true; END$$;
CREATE TABLE bp_checked (id int, subject bigint, secret text CHECK (bp_spy(secret)));
CREATE TABLE bp_generated (id int, subject bigint, secret text,
  g boolean GENERATED ALWAYS AS (bp_spy(secret)) STORED);
-- an inheritance parent would read the table past its policy
CREATE TABLE bp_parent (id int, subject bigint, secret text);
CREATE TABLE bp_child_t (id int, subject bigint, secret text);
ALTER TABLE bp_child_t INHERIT bp_parent;
-- a foreign key into the table would probe which keys exist
CREATE TABLE bp_keyed (id int PRIMARY KEY, subject bigint);
CREATE TABLE bp_prober (ref int REFERENCES bp_keyed (id));
-- a range type whose subtype_diff runs over every sampled value on ANALYZE
CREATE FUNCTION bp_diff(a text, b text) RETURNS float8 LANGUAGE sql IMMUTABLE AS 'SELECT 0::float8';
CREATE TYPE bp_range AS RANGE (subtype = text, subtype_diff = bp_diff);
CREATE TABLE bp_ranged (id int, subject bigint, secret bp_range[]);
-- a composite type its owner could drop with CASCADE (dropping the column)
CREATE TYPE bp_pair AS (a int, b int);
CREATE TABLE bp_composite (id int, subject bigint, secret bp_pair);
-- a TRIGGER privilege granted before protect()
CREATE TABLE bp_granted (id int, subject bigint, secret text);
GRANT TRIGGER, REFERENCES ON bp_granted TO bp_analyst;
GRANT SELECT ON bp_granted TO bp_analyst WITH GRANT OPTION;
RESET ROLE;
SELECT consent_ledger.protect('bp_checked', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('bp_generated', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('bp_child_t', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('bp_parent', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('bp_keyed', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('bp_ranged', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('bp_composite', 'subject');
\echo :SQLSTATE
SELECT consent_ledger.protect('bp_granted', 'subject');
SELECT p AS privilege, has_table_privilege('bp_analyst', 'bp_granted', p) AS granted
  FROM unnest(ARRAY['SELECT', 'SELECT WITH GRANT OPTION', 'TRIGGER', 'REFERENCES']) p;
-- even if an administrator grants TRIGGER later, an untrusted role cannot use it
GRANT TRIGGER ON bp_granted TO bp_analyst;
SET ROLE bp_analyst;
CREATE FUNCTION bp_copy() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER bp_copy AFTER INSERT ON bp_granted FOR EACH ROW EXECUTE FUNCTION bp_copy();
\echo :SQLSTATE
DROP FUNCTION bp_copy();
RESET ROLE;
SELECT consent_ledger.unprotect('bp_granted');
DROP TABLE bp_checked, bp_generated, bp_child_t, bp_parent, bp_prober, bp_keyed, bp_granted, bp_ranged,
  bp_composite;
DROP TYPE bp_range, bp_pair;
DROP FUNCTION bp_spy(text), bp_diff(text, text);
CREATE DOMAIN bp_dom AS text;
ALTER DOMAIN bp_dom OWNER TO bp_owner;
CREATE TABLE bp_domained (id int, subject bigint, secret bp_dom);
SELECT consent_ledger.protect('bp_domained', 'subject');
\echo :SQLSTATE
-- a domain handed to an untrusted role after protect(): it cannot validate over hidden rows
ALTER DOMAIN bp_dom OWNER TO :superuser;
SELECT consent_ledger.protect('bp_domained', 'subject');
INSERT INTO bp_domained VALUES (1, 4, 'hidden');
ALTER DOMAIN bp_dom OWNER TO bp_owner;
SET ROLE bp_owner;
ALTER DOMAIN bp_dom ADD CONSTRAINT bp_leaky CHECK (bp_leak(VALUE) IS NOT NULL);
\echo :SQLSTATE
ALTER DOMAIN bp_dom ADD CONSTRAINT bp_leaky CHECK (bp_leak(VALUE) IS NOT NULL) NOT VALID;
ALTER DOMAIN bp_dom VALIDATE CONSTRAINT bp_leaky;
\echo :SQLSTATE
RESET ROLE;
-- unprotect() gives the table back
SELECT consent_ledger.unprotect('bp_domained');
SELECT relowner::regrole AS owner_after_unprotect FROM pg_class WHERE oid = 'bp_domained'::regclass;
DROP TABLE bp_domained;
DROP DOMAIN bp_dom;

-- 3. every read is recorded, whatever view it passes through
CREATE VIEW bp_su_view AS SELECT * FROM bp_t;	-- owned by a superuser: no RLS
GRANT SELECT ON bp_su_view TO bp_analyst;
SET ROLE bp_owner;
CREATE VIEW bp_owner_view AS SELECT * FROM bp_t;	-- owned by a role under RLS
GRANT SELECT ON bp_owner_view TO bp_analyst;
RESET ROLE;
SELECT consent_ledger.create_purpose_view('bp_t', 'bp_a', 'public.bp_a_view');
GRANT SELECT ON bp_a_view TO bp_analyst;
SET ROLE bp_analyst;
SELECT id, subject FROM bp_su_view ORDER BY id;
\echo :SQLSTATE
SET consent_ledger.purpose = 'bp_a';
SELECT id, subject FROM bp_su_view ORDER BY id;
\echo :SQLSTATE
SELECT id, subject FROM bp_owner_view ORDER BY id;
RESET consent_ledger.purpose;
SELECT id, subject FROM bp_a_view ORDER BY id;
-- a purpose view in the same query covers its own base table, not another
SELECT s.id, s.subject FROM bp_su_view s, bp_a_view ORDER BY 1;
\echo :SQLSTATE
SELECT s.id FROM bp_su_view s LEFT JOIN (SELECT 1 FROM bp_a_view WHERE false) x ON true;
\echo :SQLSTATE
RESET ROLE;
SELECT role_name, operation, purpose, outcome FROM consent_ledger.audit_log
 WHERE relation = 'public.bp_t' AND outcome = 'started' AND role_name = 'bp_analyst'
 ORDER BY record_id;
SELECT role_name, operation, purpose, relation FROM consent_ledger.audit_log
 WHERE relation = 'public.bp_a_view' AND outcome = 'started' ORDER BY record_id;
-- a trusted role reading through the superuser's view is recorded as bypassing
SELECT count(*) AS admin_rows FROM bp_su_view;
SELECT role_name, operation, rls_bypassed FROM consent_ledger.audit_log
 WHERE relation = 'public.bp_t' AND outcome = 'started' ORDER BY record_id DESC LIMIT 1;

-- 4. side channels: EXPLAIN ANALYZE row counts, foreign keys
SET ROLE bp_analyst;
SET consent_ledger.purpose = 'bp_a';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM bp_t WHERE secret = 's4';
\echo :SQLSTATE
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM bp_a_view WHERE secret = 's4';
\echo :SQLSTATE
EXPLAIN (COSTS OFF) SELECT * FROM bp_t WHERE secret = 's4';
RESET consent_ledger.purpose;
RESET ROLE;
GRANT REFERENCES ON bp_t TO bp_analyst;
SET ROLE bp_analyst;
CREATE TABLE bp_probe (ref int REFERENCES bp_t (id));
\echo :SQLSTATE
CREATE TABLE bp_probe (ref int);
ALTER TABLE bp_probe ADD FOREIGN KEY (ref) REFERENCES bp_t (id);
\echo :SQLSTATE
ALTER TABLE bp_probe ADD COLUMN ref2 int REFERENCES bp_t (id);
\echo :SQLSTATE
DROP TABLE bp_probe;
RESET ROLE;
-- a trusted role may; its checks are recorded as what they are
CREATE TABLE bp_child (ref int REFERENCES bp_t (id));
INSERT INTO bp_child VALUES (4);
SET ROLE bp_analyst;
SET consent_ledger.purpose = 'bp_a';
SELECT count(*) AS after_fk_check FROM bp_t;	-- its record is queued after the check's
RESET ROLE;
SELECT role_name, operation, purpose, outcome FROM consent_ledger.audit_log
 WHERE relation = 'public.bp_t' AND operation = 'FOREIGN KEY CHECK';
DROP TABLE bp_child;

-- 5. a role without the extension's roles cannot name its tables, so it
-- cannot lock them at parse time (before any privilege check) and stall
-- the sealer or the audit writer
SET ROLE bp_analyst;
BEGIN;
PREPARE bp_lock AS DELETE FROM consent_ledger.log;
\echo :SQLSTATE
ROLLBACK;
CREATE FUNCTION bp_locker() RETURNS void LANGUAGE sql AS 'DELETE FROM consent_ledger.pending';
\echo :SQLSTATE
CREATE FUNCTION bp_tf() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER bp_queue AFTER INSERT ON consent_ledger.audit_log FOR EACH ROW EXECUTE FUNCTION bp_tf();
\echo :SQLSTATE
DROP FUNCTION bp_tf();
RESET ROLE;
SELECT has_schema_privilege('bp_analyst', 'consent_ledger', 'USAGE') AS analyst_usage,
       has_schema_privilege('consent_ledger_auditor', 'consent_ledger', 'USAGE') AS auditor_usage;
-- ... and not even a role of the extension's may queue for a lock on them
-- before PostgreSQL checks it owns them
CREATE ROLE bp_auditor LOGIN IN ROLE consent_ledger_auditor;
SET ROLE bp_auditor;
CREATE TRIGGER bp_queue AFTER INSERT ON consent_ledger.audit_log FOR EACH ROW EXECUTE FUNCTION bp_harvest();
\echo :SQLSTATE
RESET ROLE;

-- 6. export() and leaf_data() hand out rows' contents: not for auditors on a
-- protected ledger; an administrator's export is audited
CREATE TABLE bp_lt (id int PRIMARY KEY, subject bigint NOT NULL, diagnosis text);
ALTER TABLE bp_lt OWNER TO bp_owner;
SELECT consent_ledger.create_ledger('bp_lt');
INSERT INTO bp_lt VALUES (1, 1, 'flu'), (2, 4, 'hidden diagnosis');
SELECT consent_ledger.protect('bp_lt', 'subject');
SET ROLE bp_auditor;
SELECT count(*) FROM consent_ledger.export('bp_lt');
\echo :SQLSTATE
SELECT consent_ledger.leaf_data('bp_lt', 1);
\echo :SQLSTATE
SELECT valid FROM consent_ledger.verify('bp_lt');
RESET ROLE;
SET ROLE bp_admin;
SELECT count(*) > 0 AS admin_exports FROM consent_ledger.export('bp_lt');
RESET ROLE;
-- the outcome record is queued, not waited for: seal() waits until the
-- audit writer has written it (the query below raced with the writer)
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
SELECT role_name, operation, outcome FROM consent_ledger.audit_log
 WHERE relation = 'public.bp_lt' ORDER BY record_id;

-- 7. a foreign key from the protected table to a table an untrusted role
-- owns: deleting keys there would tell which hidden rows hold them
SET ROLE bp_owner;
CREATE TABLE bp_keys (k int PRIMARY KEY);
CREATE TABLE bp_salaries (id int PRIMARY KEY, subject bigint, salary int REFERENCES bp_keys (k));
RESET ROLE;
SELECT consent_ledger.protect('bp_salaries', 'subject');
\echo :SQLSTATE
ALTER TABLE bp_salaries DROP CONSTRAINT bp_salaries_salary_fkey;
SELECT consent_ledger.protect('bp_salaries', 'subject');
SET ROLE bp_admin;
ALTER TABLE bp_salaries ADD FOREIGN KEY (salary) REFERENCES bp_keys (k);
\echo :SQLSTATE
RESET ROLE;

-- 8. COPY TO by a role that bypasses row-level security is recorded before
-- the first row goes out, and recorded as failed when it fails
CREATE ROLE bp_bypass LOGIN BYPASSRLS;
GRANT SELECT ON bp_t TO bp_bypass;
SET ROLE bp_bypass;
COPY bp_t (id) TO STDOUT;
COPY bp_t (id) TO '/nonexistent/file';
\echo :SQLSTATE
RESET ROLE;
-- outcome records are queued, not waited for: seal() waits for the writer
DO $$BEGIN PERFORM consent_ledger.seal(); END$$;
SELECT role_name, operation, outcome, rls_bypassed FROM consent_ledger.audit_log
 WHERE relation = 'public.bp_t' AND role_name = 'bp_bypass' ORDER BY record_id;

-- 9. the owner of the schema a purpose view lives in cannot drop it (and
-- put a view of its own in its place)
CREATE SCHEMA bp_owned AUTHORIZATION bp_owner;
SELECT consent_ledger.create_purpose_view('bp_t', 'bp_a', 'bp_owned.bp_view');
SET ROLE bp_owner;
DROP VIEW bp_owned.bp_view;
\echo :SQLSTATE
DROP SCHEMA bp_owned CASCADE;
\echo :SQLSTATE
RESET ROLE;
DROP SCHEMA bp_owned CASCADE;

-- roles are cluster-wide: the one that bypasses RLS would be named by every
-- later protect()
DROP OWNED BY bp_bypass;
DROP ROLE bp_bypass;

-- 10. planner statistics describe hidden rows too: an untrusted role's
-- estimates come from defaults, not from them
CREATE FUNCTION bp_estimate(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	plan jsonb;
BEGIN
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO plan;
	RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
END $$;
SET ROLE bp_owner;
INSERT INTO bp_t (subject, secret) SELECT 4, 'HIDDEN-ONLY' FROM generate_series(1, 500);
RESET ROLE;
CREATE STATISTICS bp_st (mcv) ON secret, subject FROM bp_t;
ANALYZE bp_t;
SELECT bp_estimate($$SELECT * FROM bp_t WHERE secret = 'HIDDEN-ONLY'$$) >
       bp_estimate($$SELECT * FROM bp_t WHERE secret = 'absent'$$) AS superuser_sees_statistics;
SET ROLE bp_analyst;
SET consent_ledger.purpose = 'bp_a';
SELECT bp_estimate($$SELECT * FROM bp_t WHERE secret = 'HIDDEN-ONLY'$$) =
       bp_estimate($$SELECT * FROM bp_t WHERE secret = 'absent'$$) AS analyst_estimates_equal;
SELECT bp_estimate($$SELECT * FROM bp_a_view WHERE secret = 'HIDDEN-ONLY'$$) =
       bp_estimate($$SELECT * FROM bp_a_view WHERE secret = 'absent'$$) AS view_estimates_equal;
-- extended (multi-column) statistics too
SELECT bp_estimate($$SELECT * FROM bp_t WHERE secret = 'HIDDEN-ONLY' AND subject = 4$$) =
       bp_estimate($$SELECT * FROM bp_t WHERE secret = 'absent' AND subject = 5$$) AS extended_estimates_equal;
RESET consent_ledger.purpose;
RESET ROLE;

DROP STATISTICS bp_st;

-- 11. nor may the owner of a purpose view's schema rename it away
CREATE SCHEMA bp_owned2 AUTHORIZATION bp_owner;
SELECT consent_ledger.create_purpose_view('bp_t', 'bp_a', 'bp_owned2.bp_view');
SET ROLE bp_owner;
ALTER SCHEMA bp_owned2 RENAME TO bp_moved;
\echo :SQLSTATE
RESET ROLE;
DROP SCHEMA bp_owned2 CASCADE;
