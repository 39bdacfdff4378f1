-- Life cycle and privilege escalations (README "Trust model and custody",
-- "Uninstall"; review 2, F1 and F2).  Runs in a database of its own,
-- owned by an untrusted role (a database owner is an attacker, SPEC §5).
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE ROLE cl_life_dbo LOGIN;
CREATE ROLE cl_life_rec LOGIN;
CREATE ROLE cl_life_towner LOGIN;
CREATE DATABASE cl_life_shop OWNER cl_life_dbo;
\c cl_life_shop

-- F1: the database owner creates schema consent_ledger before CREATE
-- EXTENSION.  Up to 1.2 the extension was installed into it.
SET ROLE cl_life_dbo;
CREATE SCHEMA consent_ledger;
RESET ROLE;
CREATE EXTENSION consent_ledger;
\echo :SQLSTATE
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'consent_ledger';

-- given to the installing role, but CREATE granted to another role
ALTER SCHEMA consent_ledger OWNER TO CURRENT_USER;
GRANT CREATE ON SCHEMA consent_ledger TO cl_life_dbo;
CREATE EXTENSION consent_ledger;
\echo :SQLSTATE
REVOKE CREATE ON SCHEMA consent_ledger FROM cl_life_dbo;
GRANT CREATE ON SCHEMA consent_ledger TO PUBLIC;
CREATE EXTENSION consent_ledger;
\echo :SQLSTATE
REVOKE CREATE ON SCHEMA consent_ledger FROM PUBLIC;

-- trusted owner, nobody else may create, but an object is already there
-- (planted while the role could create)
GRANT CREATE ON SCHEMA consent_ledger TO cl_life_dbo;
SET ROLE cl_life_dbo;
CREATE FUNCTION consent_ledger.trap() RETURNS int LANGUAGE sql AS 'SELECT 1';
RESET ROLE;
REVOKE CREATE ON SCHEMA consent_ledger FROM cl_life_dbo;
CREATE EXTENSION consent_ledger;
\echo :SQLSTATE
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'consent_ledger';

-- as the hint says: drop the schema; CREATE EXTENSION makes its own
DROP SCHEMA consent_ledger CASCADE;
CREATE EXTENSION consent_ledger;
SELECT nspowner::regrole = current_user::regrole AS schema_ours,
       NOT EXISTS (SELECT FROM aclexplode(nspacl) a
                   WHERE a.privilege_type = 'CREATE' AND a.grantee <> nspowner) AS only_owner_creates
FROM pg_namespace WHERE nspname = 'consent_ledger';

-- F1: a consent ledger planted by name is never used.  A schema that
-- lets an untrusted role create (as every install into a database
-- owner's schema did) must not make grant_consent() run that role's
-- column default as the extension's owner.
SELECT consent_ledger.define_purpose('analytics');
GRANT consent_ledger_recorder TO cl_life_rec;
GRANT USAGE, CREATE ON SCHEMA consent_ledger TO cl_life_dbo;
SET ROLE cl_life_dbo;
CREATE SEQUENCE public.evseq;
CREATE TABLE consent_ledger.consent_events (event_id bigint PRIMARY KEY DEFAULT nextval('public.evseq'),
	subject text NOT NULL, purpose text NOT NULL, action text NOT NULL, expires_at timestamptz,
	evidence jsonb, recorded_at timestamptz NOT NULL, recorded_by text NOT NULL);
CREATE FUNCTION public.pwn_def() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE cl_life_dbo SUPERUSER';
	END IF;
	RETURN nextval('public.evseq');
END $$;
ALTER TABLE consent_ledger.consent_events ALTER COLUMN event_id SET DEFAULT public.pwn_def();
GRANT ALL ON consent_ledger.consent_events TO PUBLIC;
GRANT ALL ON SEQUENCE public.evseq TO PUBLIC;
CREATE TABLE consent_ledger.audit_log (record_id bigint);
RESET ROLE;
SET ROLE cl_life_rec;
SELECT consent_ledger.grant_consent('43', 'analytics');
\echo :SQLSTATE
RESET ROLE;
SELECT rolsuper AS dbo_is_superuser FROM pg_roles WHERE rolname = 'cl_life_dbo';
SELECT count(*) AS planted_rows FROM consent_ledger.consent_events;
-- the audit ledger found by name is refused the same way
CREATE TABLE public.watched (id int);
SELECT consent_ledger.audit('public.watched');
\echo :SQLSTATE
-- a superuser removes them; the extension then makes its own
DROP TABLE consent_ledger.consent_events, consent_ledger.audit_log;
REVOKE USAGE, CREATE ON SCHEMA consent_ledger FROM cl_life_dbo;
SET ROLE cl_life_rec;
SELECT consent_ledger.grant_consent('43', 'analytics') AS event_id;
RESET ROLE;
-- hardening: the audit ledger's DDL does not follow the caller's
-- search_path (a domain "text" of an untrusted role would own its columns)
CREATE SCHEMA evil AUTHORIZATION cl_life_dbo;
SET ROLE cl_life_dbo;
CREATE DOMAIN evil.text AS pg_catalog.text;
CREATE DOMAIN evil.int8 AS pg_catalog.int8;
CREATE DOMAIN evil.bytea AS pg_catalog.bytea;
CREATE DOMAIN evil.timestamptz AS pg_catalog.timestamptz;
RESET ROLE;
SET search_path = evil, pg_catalog;
SELECT consent_ledger.audit('public.watched');
RESET search_path;
SELECT count(*) AS columns_of_other_types FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = 'consent_ledger.audit_log'::regclass AND a.attnum > 0
  AND t.typnamespace <> 'pg_catalog'::regnamespace;
SELECT c.relname, c.relowner::regrole = current_user::regrole AS ours
FROM pg_class c WHERE c.relnamespace = 'consent_ledger'::regnamespace
  AND c.relname IN ('consent_events', 'audit_log') ORDER BY 1;

-- F2: create_ledger() by a superuser on a table an untrusted role owns.
-- The rows are adopted by rewriting the table (1.3; before, by an UPDATE
-- run as the owner): no trigger of the owner fires, and the only owner
-- code that runs is its index expressions while the indexes are rebuilt,
-- as the owner in a security-restricted operation with search_path pinned
-- and every setting the owner's code changes rolled back (the reviewer's
-- reproduction, moved from a trigger to an index expression; the
-- expression misbehaves only when the caller "arms" it).
CREATE SCHEMA tw AUTHORIZATION cl_life_towner;
SET ROLE cl_life_towner;
CREATE TABLE tw.orders (id int, amount int);
INSERT INTO tw.orders VALUES (1, 10), (2, 20);
CREATE FUNCTION tw.steal() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE cl_life_towner SUPERUSER';
	END IF;
	RETURN 1;
END $$;
CREATE FUNCTION tw.myeq(int, int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM tw.steal();
	RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR tw.= (LEFTARG = int, RIGHTARG = int, FUNCTION = tw.myeq);
CREATE FUNCTION tw.hook() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('search_path', 'tw, pg_catalog', false);
	EXECUTE 'CREATE OR REPLACE TEMP VIEW orders_summary AS SELECT tw.steal() AS x';
	RETURN 1;
END $$;
CREATE FUNCTION tw.ix(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('cl_life.armed', true) = 'on' THEN
		PERFORM tw.hook();
	END IF;
	RETURN $1;
END $$;
CREATE INDEX ON tw.orders (tw.ix(id));
-- an owner trigger on UPDATE: adoption updates nothing, it never fires
CREATE FUNCTION tw.trig() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'owner trigger fired';
	RETURN NEW;
END $$;
CREATE TRIGGER h BEFORE UPDATE ON tw.orders FOR EACH ROW EXECUTE FUNCTION tw.trig();
ALTER TABLE tw.orders ENABLE ALWAYS TRIGGER h;
-- the same without the temporary view: it only changes settings
CREATE TABLE tw.orders2 (id int, amount int);
INSERT INTO tw.orders2 VALUES (1, 10), (2, 20);
CREATE FUNCTION tw.hook2() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('search_path', 'tw, pg_catalog', false);
	PERFORM set_config('work_mem', '77kB', false);
	PERFORM tw.steal();
	RETURN 1;
END $$;
CREATE FUNCTION tw.ix2(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('cl_life.armed', true) = 'on' THEN
		PERFORM tw.hook2();
	END IF;
	RETURN $1;
END $$;
CREATE INDEX ON tw.orders2 (tw.ix2(id));
CREATE TRIGGER h2 BEFORE UPDATE ON tw.orders2 FOR EACH ROW EXECUTE FUNCTION tw.trig();
ALTER TABLE tw.orders2 ENABLE ALWAYS TRIGGER h2;
RESET ROLE;
SET search_path = public;
SET work_mem = '4MB';
SET cl_life.armed = 'on';
-- temporary objects cannot be created inside: create_ledger() fails
SELECT consent_ledger.create_ledger('tw.orders');
\echo :SQLSTATE
SHOW search_path;
SELECT count(*) > 0 AS some FROM pg_class WHERE relpages = 0;
SELECT rolsuper AS towner_is_superuser FROM pg_roles WHERE rolname = 'cl_life_towner';
SELECT count(*) AS temp_views FROM pg_class WHERE relname = 'orders_summary';
-- settings only: the ledger is made, the caller's settings are unchanged
SELECT consent_ledger.create_ledger('tw.orders2');
SHOW search_path;
SHOW work_mem;
SELECT count(*) > 0 AS some FROM pg_class WHERE relpages = 0;
SELECT rolsuper AS towner_is_superuser FROM pg_roles WHERE rolname = 'cl_life_towner';
SELECT count(*) AS adopted FROM tw.orders2 WHERE ledger_txn IS NOT NULL;
-- the owner's code does not run with session_replication_role = replica
-- (superuser-only; under it the owner's writes skipped other roles'
-- triggers and foreign keys): the foreign key is enforced
CREATE TABLE public.parent (id int PRIMARY KEY);
CREATE TABLE public.child (id int, pid int REFERENCES public.parent);
GRANT INSERT, SELECT ON public.child TO cl_life_towner;
RESET cl_life.armed;
SET ROLE cl_life_towner;
CREATE TABLE tw.orders3 (id int);
INSERT INTO tw.orders3 VALUES (1);
CREATE FUNCTION tw.hook3() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'owner code sees session_replication_role = %', current_setting('session_replication_role');
	INSERT INTO public.child VALUES (1, 999);
	RETURN 1;
END $$;
CREATE FUNCTION tw.ix3(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('cl_life.armed', true) = 'on' THEN
		PERFORM tw.hook3();
	END IF;
	RETURN $1;
END $$;
CREATE INDEX ON tw.orders3 (tw.ix3(id));
RESET ROLE;
SET cl_life.armed = 'on';
SELECT consent_ledger.create_ledger('tw.orders3');
\echo :SQLSTATE
SELECT count(*) AS orphans FROM public.child;
-- inside a transaction too (SET LOCAL and a savepoint around it)
BEGIN;
SET LOCAL search_path = public, pg_catalog;
SAVEPOINT s;
SELECT consent_ledger.create_ledger('tw.orders');
\echo :SQLSTATE
ROLLBACK TO SAVEPOINT s;
SHOW search_path;
COMMIT;
SHOW search_path;
RESET search_path;
RESET work_mem;
RESET cl_life.armed;

-- an installation made before 1.2 in a schema an untrusted role owns or
-- may create in: ALTER EXTENSION ... UPDATE warns, saying what to do
\c contrib_regression
CREATE DATABASE cl_life_old OWNER cl_life_dbo;
\c cl_life_old
CREATE EXTENSION consent_ledger VERSION '1.1';
ALTER SCHEMA consent_ledger OWNER TO cl_life_dbo;
GRANT CREATE ON SCHEMA consent_ledger TO cl_life_rec, PUBLIC;
ALTER EXTENSION consent_ledger UPDATE TO '1.2';

\c contrib_regression
DROP DATABASE cl_life_old WITH (FORCE);
DROP DATABASE cl_life_shop WITH (FORCE);
DROP ROLE cl_life_dbo, cl_life_rec, cl_life_towner;
