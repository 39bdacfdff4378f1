-- What a ledger table refuses and what it allows.
--
-- Every refused write or DDL is tried twice, as the table's owner (a
-- consent_ledger_admin member) and as a superuser, and must fail with its
-- exact SQLSTATE: 42809 for row changes (UPDATE, DELETE, TRUNCATE, MERGE
-- with UPDATE/DELETE actions), 0A000 for refused DDL and for INSERT ... ON
-- CONFLICT.  Allowed operations must work, and an inserter must not be
-- able to choose ledger_txn/ledger_ord.
-- Runs in one transaction that is rolled back.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(176);

CREATE ROLE cl02_owner NOLOGIN IN ROLE consent_ledger_admin;
CREATE TABLE public.cl02_t (id int PRIMARY KEY, v text, n int);
ALTER TABLE public.cl02_t OWNER TO cl02_owner;
CREATE TABLE public.cl02_src (id int, v text);
GRANT SELECT ON public.cl02_src TO cl02_owner;
INSERT INTO public.cl02_src VALUES (1, 'one'), (500, 'five hundred');
CREATE TABLE public.cl02_parent (id int, v text);
ALTER TABLE public.cl02_parent OWNER TO cl02_owner;
GRANT CREATE ON SCHEMA public TO cl02_owner;
CREATE TYPE public.cl02_pair AS (a int, b int);
CREATE DOMAIN public.cl02_dom AS int DEFAULT 7;
CREATE TABLE public.cl02_gen (id int, twice int GENERATED ALWAYS AS (id * 2) STORED);
ALTER TABLE public.cl02_gen OWNER TO cl02_owner;
CREATE TABLE public.cl02_pp (id int, v text, n int) PARTITION BY RANGE (id);
ALTER TABLE public.cl02_pp OWNER TO cl02_owner;

SET ROLE cl02_owner;
SELECT lives_ok($$SELECT consent_ledger.create_ledger('public.cl02_t')$$, 'setup: the owner makes cl02_t a ledger');
SELECT lives_ok($$SELECT consent_ledger.create_ledger('public.cl02_gen')$$, 'setup: and cl02_gen, which has a generated column');
SELECT lives_ok($$ALTER TABLE public.cl02_t ADD COLUMN pair public.cl02_pair$$,
	'setup: a nullable column of a composite type is added to the ledger');
SELECT lives_ok($$INSERT INTO public.cl02_t (id, v, n) VALUES (1, 'one', 1), (2, 'two', 2)$$,
	'setup: the owner inserts two rows');
RESET ROLE;

-- Refused operations, with their SQLSTATE.
CREATE TEMP TABLE cl02_refused (n int, sql text, code text, descr text);
GRANT SELECT ON cl02_refused TO PUBLIC;
INSERT INTO cl02_refused VALUES
	-- row changes: 42809
	(1, $$UPDATE public.cl02_t SET v = 'x'$$, '42809', 'UPDATE'),
	(2, $$UPDATE public.cl02_t SET v = 'x' WHERE false$$, '42809', 'UPDATE matching no row'),
	(3, $$WITH u AS (UPDATE public.cl02_t SET n = n + 1 RETURNING 1) SELECT count(*) FROM u$$, '42809', 'UPDATE in a CTE'),
	(4, $$DELETE FROM public.cl02_t$$, '42809', 'DELETE'),
	(5, $$DELETE FROM public.cl02_t WHERE id = 1$$, '42809', 'DELETE of one row'),
	(6, $$DELETE FROM public.cl02_t t USING public.cl02_src s WHERE t.id = s.id$$, '42809', 'DELETE ... USING'),
	(7, $$TRUNCATE public.cl02_t$$, '42809', 'TRUNCATE'),
	(8, $$MERGE INTO public.cl02_t t USING public.cl02_src s ON t.id = s.id
		  WHEN MATCHED THEN UPDATE SET v = s.v$$, '42809', 'MERGE ... WHEN MATCHED THEN UPDATE'),
	(9, $$MERGE INTO public.cl02_t t USING public.cl02_src s ON t.id = s.id
		  WHEN MATCHED THEN DELETE$$, '42809', 'MERGE ... WHEN MATCHED THEN DELETE'),
	(10, $$MERGE INTO public.cl02_t t USING (SELECT 999 AS id) s ON t.id = s.id
		  WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, 'm')$$, '42809',
		  'MERGE with a DELETE action that matches no row'),
	(11, $$MERGE INTO public.cl02_t t USING public.cl02_src s ON t.id = s.id
		  WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)$$, '42809',
		  'MERGE with UPDATE and INSERT actions'),
	-- INSERT ... ON CONFLICT: 0A000
	(20, $$INSERT INTO public.cl02_t (id, v) VALUES (1, 'dup') ON CONFLICT DO NOTHING$$, '0A000',
		  'INSERT ... ON CONFLICT DO NOTHING'),
	(21, $$INSERT INTO public.cl02_t (id, v) VALUES (77, 'new') ON CONFLICT DO NOTHING$$, '0A000',
		  'INSERT ... ON CONFLICT DO NOTHING without a conflict'),
	(22, $$INSERT INTO public.cl02_t (id, v) VALUES (1, 'dup') ON CONFLICT (id) DO UPDATE SET v = excluded.v$$, '0A000',
		  'INSERT ... ON CONFLICT DO UPDATE'),
	(23, $$WITH i AS (INSERT INTO public.cl02_t (id, v) VALUES (78, 'cte') ON CONFLICT DO NOTHING RETURNING id)
		  SELECT count(*) FROM i$$, '0A000', 'INSERT ... ON CONFLICT in a CTE'),
	-- refused DDL: 0A000
	(30, $$ALTER TABLE public.cl02_t DROP COLUMN v$$, '0A000', 'DROP COLUMN'),
	(31, $$ALTER TABLE public.cl02_t DROP COLUMN ledger_txn$$, '0A000', 'DROP COLUMN ledger_txn'),
	(32, $$ALTER TABLE public.cl02_t ALTER COLUMN v TYPE varchar(100)$$, '0A000', 'ALTER COLUMN TYPE'),
	(33, $$ALTER TABLE public.cl02_t ALTER COLUMN ledger_ord TYPE bigint$$, '0A000', 'ALTER COLUMN ledger_ord TYPE'),
	(34, $$ALTER TABLE public.cl02_t RENAME COLUMN v TO w$$, '0A000', 'RENAME COLUMN'),
	(35, $$ALTER TABLE public.cl02_t RENAME COLUMN ledger_txn TO t$$, '0A000', 'RENAME COLUMN ledger_txn'),
	(36, $$ALTER TABLE public.cl02_t DISABLE TRIGGER ALL$$, '0A000', 'DISABLE TRIGGER ALL'),
	(37, $$ALTER TABLE public.cl02_t DISABLE TRIGGER USER$$, '0A000', 'DISABLE TRIGGER USER'),
	(38, $$ALTER TABLE public.cl02_t ENABLE TRIGGER ALL$$, '0A000', 'ENABLE TRIGGER ALL'),
	(39, $$ALTER TABLE public.cl02_t DISABLE TRIGGER "~consent_ledger_stamp"$$, '0A000', 'DISABLE TRIGGER of the stamp trigger'),
	(40, $$ALTER TABLE public.cl02_t DISABLE TRIGGER "~consent_ledger_guard"$$, '0A000', 'DISABLE TRIGGER of the guard trigger'),
	(41, $$ALTER TABLE public.cl02_t DISABLE TRIGGER "~consent_ledger_guard_row"$$, '0A000', 'DISABLE TRIGGER of the row guard trigger'),
	(42, $$ALTER TABLE public.cl02_t ENABLE REPLICA TRIGGER "~consent_ledger_guard"$$, '0A000',
		  'ENABLE REPLICA TRIGGER of the guard trigger'),
	(43, $$ALTER TABLE public.cl02_t ENABLE TRIGGER "~consent_ledger_stamp"$$, '0A000',
		  'ENABLE TRIGGER (origin only) of the stamp trigger'),
	(44, $$DROP TRIGGER "~consent_ledger_stamp" ON public.cl02_t$$, '0A000', 'DROP TRIGGER of the stamp trigger'),
	(45, $$DROP TRIGGER "~consent_ledger_guard" ON public.cl02_t$$, '0A000', 'DROP TRIGGER of the guard trigger'),
	(46, $$DROP TRIGGER "~consent_ledger_guard_row" ON public.cl02_t$$, '0A000', 'DROP TRIGGER of the row guard trigger'),
	(47, $$ALTER TRIGGER "~consent_ledger_stamp" ON public.cl02_t RENAME TO stamp$$, '0A000', 'renaming the stamp trigger'),
	(48, $$ALTER TABLE public.cl02_t SET ACCESS METHOD heap$$, '0A000', 'SET ACCESS METHOD'),
	(49, $$ALTER TABLE public.cl02_t SET UNLOGGED$$, '0A000', 'SET UNLOGGED'),
	(50, $$ALTER TABLE public.cl02_t INHERIT public.cl02_parent$$, '0A000', 'INHERIT'),
	(51, $$CREATE RULE cl02_r AS ON INSERT TO public.cl02_t DO INSTEAD NOTHING$$, '0A000', 'CREATE RULE ON INSERT'),
	(52, $$CREATE RULE cl02_r AS ON UPDATE TO public.cl02_t DO INSTEAD NOTHING$$, '0A000', 'CREATE RULE ON UPDATE'),
	(53, $$CREATE RULE "_RETURN" AS ON SELECT TO public.cl02_t DO INSTEAD SELECT * FROM public.cl02_t$$, '0A000', 'CREATE RULE ON SELECT'),
	(54, $$DROP TABLE public.cl02_t$$, '0A000', 'DROP TABLE'),
	(55, $$DROP TABLE public.cl02_t CASCADE$$, '0A000', 'DROP TABLE ... CASCADE'),
	(56, $$DROP TABLE IF EXISTS public.cl02_src, public.cl02_t$$, '0A000', 'DROP TABLE of a list holding the ledger'),
	(57, $$ALTER TABLE public.cl02_t ADD COLUMN d int DEFAULT 0$$, '0A000', 'ADD COLUMN with a DEFAULT'),
	(58, $$ALTER TABLE public.cl02_t ADD COLUMN d int NOT NULL$$, '0A000', 'ADD COLUMN NOT NULL'),
	(59, $$ALTER TABLE public.cl02_t ADD COLUMN d int GENERATED ALWAYS AS IDENTITY$$, '0A000', 'ADD COLUMN identity'),
	(60, $$ALTER TABLE public.cl02_t ADD COLUMN d int GENERATED ALWAYS AS (n * 2) STORED$$, '0A000', 'ADD COLUMN generated'),
	(61, $$ALTER TABLE public.cl02_parent INHERIT public.cl02_t$$, '0A000', 'another table INHERIT from the ledger'),
	(62, $$ALTER TABLE public.cl02_t ADD COLUMN d public.cl02_dom$$, '0A000', 'ADD COLUMN of a domain with a default'),
	(63, $$ALTER TABLE public.cl02_gen ALTER COLUMN twice DROP EXPRESSION$$, '0A000', 'ALTER COLUMN ... DROP EXPRESSION'),
	(64, $$ALTER TABLE public.cl02_t OF public.cl02_pair$$, '0A000', 'ALTER TABLE ... OF'),
	(65, $$ALTER TABLE public.cl02_t NOT OF$$, '0A000', 'ALTER TABLE ... NOT OF'),
	(66, $$ALTER TABLE public.cl02_pp ATTACH PARTITION public.cl02_t FOR VALUES FROM (0) TO (100000)$$, '0A000',
		  'ATTACH PARTITION of the ledger');

-- as the owner
SET ROLE cl02_owner;
SELECT throws_ok(sql, code, NULL, descr || ' is refused for the owner (' || code || ')')
  FROM cl02_refused ORDER BY n;
RESET ROLE;

-- as a superuser
SELECT throws_ok(sql, code, NULL, descr || ' is refused for a superuser (' || code || ')')
  FROM cl02_refused ORDER BY n;

-- a new table inheriting from the ledger: its rows would show in the
-- ledger's queries without being in its log (ALTER TABLE ... INHERIT is
-- refused above; CREATE TABLE ... INHERITS is the same thing)
SET ROLE cl02_owner;
SELECT throws_ok($$CREATE TABLE public.cl02_child (extra int) INHERITS (public.cl02_t)$$, '0A000', NULL,
	'CREATE TABLE ... INHERITS (ledger) is refused for the owner (0A000)');
RESET ROLE;
DROP TABLE IF EXISTS public.cl02_child;
SELECT throws_ok($$CREATE TABLE public.cl02_child2 (extra int) INHERITS (public.cl02_t)$$, '0A000', NULL,
	'CREATE TABLE ... INHERITS (ledger) is refused for a superuser (0A000)');
DROP TABLE IF EXISTS public.cl02_child2;

-- superuser-only paths
SELECT throws_ok($$DROP TYPE public.cl02_pair CASCADE$$, '0A000', NULL,
	'DROP TYPE ... CASCADE that would drop a ledger column is refused');
SELECT throws_ok($$DROP EXTENSION consent_ledger$$, '2BP01', NULL,
	'DROP EXTENSION consent_ledger while a user ledger is live is refused (2BP01)');
SELECT throws_ok($$DROP EXTENSION consent_ledger CASCADE$$, '2BP01', NULL,
	'... also with CASCADE');
CREATE SCHEMA cl02_s;
CREATE TABLE cl02_s.t2 (id int);
DO $$ BEGIN PERFORM consent_ledger.create_ledger('cl02_s.t2'); END $$;
SELECT throws_ok($$DROP SCHEMA cl02_s CASCADE$$, '0A000', NULL, 'DROP SCHEMA ... CASCADE over a live ledger is refused');
SELECT throws_ok($$DROP OWNED BY cl02_owner$$, '0A000', NULL, 'DROP OWNED BY the ledger owner is refused');

-- changes that reach the ledger through a foreign key's cascade
CREATE TABLE public.cl02_fkparent (id int PRIMARY KEY);
INSERT INTO public.cl02_fkparent VALUES (1);
CREATE TABLE public.cl02_fk (id int PRIMARY KEY,
	pid int REFERENCES public.cl02_fkparent ON DELETE CASCADE ON UPDATE CASCADE);
DO $$ BEGIN PERFORM consent_ledger.create_ledger('public.cl02_fk'); END $$;
INSERT INTO public.cl02_fk VALUES (1, 1);
SELECT throws_ok($$DELETE FROM public.cl02_fkparent$$, '42809', NULL,
	'ON DELETE CASCADE into the ledger is refused');
SELECT throws_ok($$UPDATE public.cl02_fkparent SET id = 2$$, '42809', NULL,
	'ON UPDATE CASCADE into the ledger is refused');
SELECT throws_ok($$TRUNCATE public.cl02_fkparent CASCADE$$, '42809', NULL,
	'TRUNCATE ... CASCADE reaching the ledger is refused');
SELECT results_eq($$SELECT id, pid FROM public.cl02_fk$$, $$VALUES (1, 1)$$, '... and the ledger row is untouched');

-- session_replication_role = replica switches ordinary triggers off, not these
SET LOCAL session_replication_role = replica;
SELECT throws_ok($$UPDATE public.cl02_t SET v = 'x'$$, '42809', NULL,
	'UPDATE is refused under session_replication_role = replica');
SELECT throws_ok($$DELETE FROM public.cl02_t$$, '42809', NULL,
	'DELETE is refused under session_replication_role = replica');
SELECT throws_ok($$TRUNCATE public.cl02_t$$, '42809', NULL,
	'TRUNCATE is refused under session_replication_role = replica');
SELECT throws_ok($$MERGE INTO public.cl02_t t USING public.cl02_src s ON t.id = s.id WHEN MATCHED THEN DELETE$$,
	'42809', NULL, 'MERGE ... DELETE is refused under session_replication_role = replica');
SELECT lives_ok($$INSERT INTO public.cl02_t (id, v, ledger_txn, ledger_ord) VALUES (300, 'replica', 1, 1)$$,
	'INSERT works under session_replication_role = replica');
SELECT is((SELECT ledger_txn FROM public.cl02_t WHERE id = 300), currval('consent_ledger.txn_seq'),
	'... and the row is still stamped with the transaction''s ledger_txn');
SET LOCAL session_replication_role = origin;

-- the table is untouched by all of the above
SELECT results_eq($$SELECT id, v, n FROM public.cl02_t WHERE id < 300 ORDER BY id$$,
	$$VALUES (1, 'one', 1), (2, 'two', 2)$$, 'the refused statements changed no row');
SELECT has_trigger('public', 'cl02_t', '~consent_ledger_stamp', 'the stamp trigger is still there');
SELECT has_trigger('public', 'cl02_t', '~consent_ledger_guard', 'the guard trigger is still there');
SELECT has_trigger('public', 'cl02_t', '~consent_ledger_guard_row', 'the row guard trigger is still there');
SELECT is_empty($$
	SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.cl02_t'::regclass
	   AND tgname LIKE '~consent_ledger%' AND tgenabled <> 'A'
$$, 'the ledger triggers are all ENABLE ALWAYS');
SELECT is_empty($$SELECT rulename FROM pg_rules WHERE tablename = 'cl02_t'$$, 'no rule was created');
SELECT is((SELECT relpersistence FROM pg_class WHERE oid = 'public.cl02_t'::regclass), 'p'::"char",
	'the ledger is still a logged table');

-- ---------------------------------------------------------------------
-- Allowed operations (as the owner)
-- ---------------------------------------------------------------------
SET ROLE cl02_owner;
SELECT lives_ok($$ALTER TABLE public.cl02_t ADD COLUMN extra text$$, 'ADD COLUMN (nullable, no default) is allowed');
SELECT lives_ok($$CREATE INDEX cl02_t_v_idx ON public.cl02_t (v)$$, 'CREATE INDEX is allowed');
SELECT lives_ok($$ALTER TABLE public.cl02_t ALTER COLUMN extra SET DEFAULT 'dflt'$$, 'ALTER COLUMN SET DEFAULT is allowed');
SELECT lives_ok($$INSERT INTO public.cl02_t (id, v) VALUES (10, 'ten'), (11, 'eleven'), (12, 'twelve')$$,
	'a multi-row INSERT is allowed');
SELECT is((SELECT extra FROM public.cl02_t WHERE id = 10), 'dflt', '... and new rows get the new default');
SELECT lives_ok($$INSERT INTO public.cl02_t (id, v) SELECT id + 100, v FROM public.cl02_src$$,
	'INSERT ... SELECT is allowed');
SELECT lives_ok($$MERGE INTO public.cl02_t t USING public.cl02_src s ON t.id = s.id
				  WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)$$,
	'MERGE with only WHEN NOT MATCHED THEN INSERT is allowed');
SELECT is((SELECT v FROM public.cl02_t WHERE id = 500), 'five hundred', '... and inserts the unmatched row');
SELECT results_eq($$INSERT INTO public.cl02_t (id, v) VALUES (20, 'returning') RETURNING id, v$$,
	$$VALUES (20, 'returning')$$, 'INSERT ... RETURNING is allowed');
SELECT lives_ok($$SELECT * FROM public.cl02_t WHERE id = 1 FOR UPDATE$$, 'SELECT ... FOR UPDATE is allowed');
SELECT lives_ok($$ALTER TABLE public.cl02_t ADD CONSTRAINT cl02_t_n_check CHECK (n IS NULL OR n > 0)$$,
	'ADD CONSTRAINT is allowed');
SELECT lives_ok($$ALTER TABLE public.cl02_t ALTER COLUMN v SET NOT NULL$$, 'ALTER COLUMN SET NOT NULL is allowed');
SELECT lives_ok($$CLUSTER public.cl02_t USING cl02_t_pkey$$, 'CLUSTER is allowed');
SELECT lives_ok($$ALTER TABLE public.cl02_t SET TABLESPACE pg_default$$, 'SET TABLESPACE is allowed');
SELECT lives_ok($$ALTER TABLE public.cl02_t ENABLE ROW LEVEL SECURITY$$, 'ENABLE ROW LEVEL SECURITY is allowed');
SELECT lives_ok($$ALTER TABLE public.cl02_t DISABLE ROW LEVEL SECURITY$$, '... and DISABLE');
SELECT lives_ok($$ALTER TABLE public.cl02_t RENAME TO cl02_renamed$$, 'renaming the table is allowed');
SELECT lives_ok($$ALTER TABLE public.cl02_renamed RENAME TO cl02_t$$, '... and back');
SELECT lives_ok($$CREATE TRIGGER cl02_after AFTER INSERT ON public.cl02_t FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()$$,
	'another trigger can be created');
SELECT lives_ok($$ALTER TABLE public.cl02_t DISABLE TRIGGER cl02_after$$, '... and disabled by name');
SELECT lives_ok($$DROP TRIGGER cl02_after ON public.cl02_t$$, '... and dropped');
RESET ROLE;
SELECT lives_ok($$COPY public.cl02_t (id, v) FROM PROGRAM 'printf "40\tcopied\n41\tcopied too\n"'$$,
	'COPY FROM is allowed');
SELECT results_eq($$SELECT id, v FROM public.cl02_t WHERE id IN (40, 41) ORDER BY id$$,
	$$VALUES (40, 'copied'), (41, 'copied too')$$, '... and stores the copied rows');

-- ---------------------------------------------------------------------
-- ledger_txn / ledger_ord cannot be forged
-- ---------------------------------------------------------------------
SELECT lives_ok($$INSERT INTO public.cl02_t (id, v, ledger_txn, ledger_ord) VALUES (200, 'forged', 999999999, 4242)$$,
	'an INSERT supplying ledger_txn/ledger_ord is accepted');
SELECT isnt((SELECT ledger_txn FROM public.cl02_t WHERE id = 200), 999999999::bigint,
	'... but the supplied ledger_txn is not stored');
SELECT is((SELECT ledger_txn FROM public.cl02_t WHERE id = 200), currval('consent_ledger.txn_seq'),
	'... the transaction''s own ledger_txn is');
SELECT isnt((SELECT ledger_ord FROM public.cl02_t WHERE id = 200), 4242,
	'... and the supplied ledger_ord is not stored');
SELECT is((SELECT ledger_ord FROM public.cl02_t WHERE id = 200), (SELECT count(*) - 1 FROM public.cl02_t)::int,
	'... the next ordinal of the transaction is');
SELECT lives_ok($$INSERT INTO public.cl02_t (id, v, ledger_txn, ledger_ord) VALUES (201, 'nulls', NULL, NULL)$$,
	'an INSERT supplying NULL stamps is accepted');
SELECT ok((SELECT ledger_txn IS NOT NULL AND ledger_ord IS NOT NULL FROM public.cl02_t WHERE id = 201),
	'... and the row is stamped anyway');

-- a BEFORE INSERT trigger that fires before the stamp cannot forge it either
CREATE FUNCTION public.cl02_forge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.ledger_txn := 1;
	NEW.ledger_ord := 7777;
	NEW.v := NEW.v || ' (seen by trigger)';
	RETURN NEW;
END $$;
CREATE TRIGGER "a_forge" BEFORE INSERT ON public.cl02_t FOR EACH ROW EXECUTE FUNCTION public.cl02_forge();
SELECT lives_ok($$INSERT INTO public.cl02_t (id, v) VALUES (202, 'via trigger')$$,
	'an earlier BEFORE INSERT trigger may change the row');
SELECT results_eq($$SELECT v, ledger_txn = currval('consent_ledger.txn_seq'), ledger_ord <> 7777
					  FROM public.cl02_t WHERE id = 202$$,
	$$VALUES ('via trigger (seen by trigger)', true, true)$$,
	'... its change to the row stays but its stamps are overwritten');
DROP TRIGGER "a_forge" ON public.cl02_t;
-- nor one that sorts after the stamp trigger: a ledger made by 1.3 is on the
-- table access method, which stamps after every trigger (a trigger-stamped
-- ledger refuses such a trigger instead: test/tap/039_table_am_upgrade.pl)
CREATE TRIGGER "~~z_forge" BEFORE INSERT ON public.cl02_t FOR EACH ROW EXECUTE FUNCTION public.cl02_forge();
SELECT lives_ok($$INSERT INTO public.cl02_t (id, v) VALUES (203, 'late trigger')$$,
	'a BEFORE INSERT trigger sorting after the stamp trigger may change the row (table access method)');
SELECT results_eq($$SELECT v, ledger_txn = currval('consent_ledger.txn_seq'), ledger_ord <> 7777
					  FROM public.cl02_t WHERE id = 203$$,
	$$VALUES ('late trigger (seen by trigger)', true, true)$$,
	'... its change to the row stays but its stamps are overwritten');
DROP TRIGGER "~~z_forge" ON public.cl02_t;

-- every row this transaction inserted carries its one ledger_txn and the
-- dense ordinals 0..n-1 in insertion order
SELECT results_eq($$
	SELECT count(DISTINCT ledger_txn), min(ledger_ord), max(ledger_ord), count(*) - 1, count(DISTINCT ledger_ord) - 1
	  FROM public.cl02_t
$$, $$SELECT 1::bigint, 0, (SELECT count(*) - 1 FROM public.cl02_t)::int,
		  (SELECT count(*) - 1 FROM public.cl02_t), (SELECT count(*) - 1 FROM public.cl02_t)$$,
	'one ledger_txn for the transaction, ordinals dense from 0');

-- ---------------------------------------------------------------------
-- INSERT ... ON CONFLICT reaching the ledger indirectly.  A row skipped on
-- conflict has already been stamped and counted, so these must be refused
-- like the direct form; otherwise its leaf is sealed without a row and
-- verify() reports the ledger broken.
-- ---------------------------------------------------------------------
CREATE VIEW public.cl02_view AS SELECT id, v FROM public.cl02_t;
SELECT throws_ok($$INSERT INTO public.cl02_view (id, v) VALUES (1, 'dup') ON CONFLICT DO NOTHING$$, '0A000', NULL,
	'INSERT ... ON CONFLICT DO NOTHING through an updatable view of the ledger is refused');
-- a SQL-standard function body is analysed once, at CREATE FUNCTION: the
-- refusal may come then or when it is called, but it must come
CREATE FUNCTION pg_temp.cl02_atomic_outcome() RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
	BEGIN
		EXECUTE $$CREATE FUNCTION public.cl02_atomic(i int) RETURNS void LANGUAGE sql
				  BEGIN ATOMIC INSERT INTO public.cl02_t (id, v) VALUES (i, 'atomic') ON CONFLICT DO NOTHING; END$$;
	EXCEPTION WHEN OTHERS THEN
		RETURN 'CREATE FUNCTION: ' || SQLSTATE;
	END;
	BEGIN
		PERFORM public.cl02_atomic(1);
	EXCEPTION WHEN OTHERS THEN
		RETURN 'call: ' || SQLSTATE;
	END;
	RETURN 'not refused';
END $f$;
SELECT matches(pg_temp.cl02_atomic_outcome(), ': 0A000$',
	'INSERT ... ON CONFLICT in a BEGIN ATOMIC function body is refused (0A000) at creation or call');
DROP FUNCTION IF EXISTS public.cl02_atomic(int);
DROP VIEW public.cl02_view;

-- ---------------------------------------------------------------------
-- Retired ledgers: no more inserts, still no changes, DROP TABLE allowed
-- ---------------------------------------------------------------------
SELECT ledger_id AS cl02_ledger_id FROM consent_ledger.ledgers WHERE relid = 'public.cl02_t'::regclass \gset
SET ROLE cl02_owner;
SELECT lives_ok($$SELECT consent_ledger.retire_ledger('public.cl02_t')$$, 'the owner retires the ledger');
SELECT throws_ok($$INSERT INTO public.cl02_t (id, v) VALUES (400, 'late')$$, '55000', NULL,
	'a retired ledger refuses inserts (55000)');
SELECT throws_ok($$UPDATE public.cl02_t SET v = 'x'$$, '42809', NULL, 'a retired ledger still refuses UPDATE');
SELECT throws_ok($$DELETE FROM public.cl02_t$$, '42809', NULL, 'a retired ledger still refuses DELETE');
SELECT lives_ok($$DROP TABLE public.cl02_t$$, 'DROP TABLE of a retired ledger is allowed');
RESET ROLE;
SELECT hasnt_table('public', 'cl02_t', '... and the table is gone');
SELECT ok(EXISTS (SELECT 1 FROM consent_ledger.ledgers WHERE ledger_id = :cl02_ledger_id AND retired_at IS NOT NULL),
	'... while its registry entry stays, marked retired');

SELECT * FROM finish();
ROLLBACK;
