-- Bad input sweep: every SQL function of the extension called with NULLs,
-- empty strings, relations that do not exist (the regclass cast raises
-- 42P01), relations of every other kind (views, sequences, indexes,
-- composite types, system catalogs, the extension's own tables), unknown
-- purposes, subjects and roles (the regrole cast raises 42704), malformed
-- checkpoints, absurd proof sizes and a 100 MiB row; each call must give its
-- exact SQLSTATE or documented result, and nothing already stored may be
-- lost (every ledger that verified before the sweep still verifies, with
-- the same rows, and every stored checkpoint still verifies).
--
-- NULL arguments: the functions declared STRICT return NULL (or no rows);
-- the ones that are not are verify (NULL = every ledger), define_purpose,
-- grant_consent and withdraw_consent (22004), seal and the key functions
-- (no arguments) and the three trigger functions (no arguments).
--
-- The 100 MiB row and the ledgers the tests need are committed first (the
-- sealer only sees committed rows); the sweep itself runs in one
-- transaction that is rolled back; the ledgers are retired and dropped at
-- the end.
SET client_min_messages = warning;
CREATE TABLE public.cl06_ledger (id int PRIMARY KEY, v text);
DO $$ BEGIN PERFORM consent_ledger.create_ledger('public.cl06_ledger'); END $$;
INSERT INTO public.cl06_ledger (id, v) SELECT g, 'row ' || g FROM generate_series(1, 3) g;
DO $$ BEGIN PERFORM consent_ledger.seal(); END $$;

-- 100 MiB of text that pglz cannot compress (1 MiB of hex digits repeated:
-- pglz only looks 4 kB back), so it is stored out of line as 100 MiB.
CREATE TEMP TABLE cl06_timing (step text PRIMARY KEY, secs numeric NOT NULL);
CREATE TABLE public.cl06_huge (id int, payload text);
DO $$ BEGIN PERFORM consent_ledger.create_ledger('public.cl06_huge'); END $$;
SELECT clock_timestamp() AS cl06_t0 \gset
INSERT INTO public.cl06_huge (id, payload)
	SELECT 1, repeat(string_agg(md5(g::text), '' ORDER BY g), 100) FROM generate_series(1, 32768) g;
INSERT INTO cl06_timing VALUES ('insert', extract(epoch FROM clock_timestamp() - :'cl06_t0'::timestamptz));
SELECT clock_timestamp() AS cl06_t0 \gset
DO $$ BEGIN PERFORM consent_ledger.seal(); END $$;
INSERT INTO cl06_timing VALUES ('seal', extract(epoch FROM clock_timestamp() - :'cl06_t0'::timestamptz));

-- A ledger retired and dropped after its receipt was taken.
CREATE TABLE public.cl06_gone (id int);
DO $$ BEGIN PERFORM consent_ledger.create_ledger('public.cl06_gone'); END $$;
INSERT INTO public.cl06_gone VALUES (1), (2);
DO $$ BEGIN PERFORM consent_ledger.seal(); END $$;
CREATE TEMP TABLE cl06_gone_cp AS SELECT consent_ledger.checkpoint('public.cl06_gone') AS cp;
DO $$ BEGIN PERFORM consent_ledger.retire_ledger('public.cl06_gone'); END $$;
DROP TABLE public.cl06_gone;

BEGIN;
SELECT plan(261);

-- The SQLSTATE a statement raises, or CL006 when it succeeds (its effects
-- then undone with the subtransaction): a call that should fail but does
-- not shows as CL006.
CREATE FUNCTION pg_temp.cl06_sqlstate(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE sql;
		RAISE EXCEPTION 'succeeded' USING ERRCODE = 'CL006';
	EXCEPTION WHEN OTHERS THEN
		RETURN SQLSTATE;
	END;
END
$$;

-- What verifies now, to compare with after the sweep.
CREATE TEMP TABLE cl06_before AS
	SELECT relation, "rows", valid FROM consent_ledger.verify(NULL);
SELECT ok((SELECT bool_and(valid) FROM cl06_before WHERE relation::text LIKE '%cl06%'),
	'setup: the test ledgers verify');

-- ---------------------------------------------------------------------
-- A 100 MiB TOASTed row
-- ---------------------------------------------------------------------
SELECT is((SELECT length(payload) FROM public.cl06_huge), 104857600, 'huge: the row holds 100 MiB of text');
SELECT cmp_ok((SELECT pg_column_size(payload) FROM public.cl06_huge), '>=', 100000000,
	'huge: ... stored uncompressed, out of line (TOAST)');
SELECT clock_timestamp() AS cl06_t0 \gset
SELECT results_eq($$SELECT "rows", pending, valid, problem FROM consent_ledger.verify('public.cl06_huge')$$,
	$$VALUES (1::bigint, 0::bigint, true, NULL::text)$$, 'huge: verify() of the sealed 100 MiB row is valid');
INSERT INTO cl06_timing VALUES ('verify', extract(epoch FROM clock_timestamp() - :'cl06_t0'::timestamptz));
-- encoding: version 1 + txn 8 + ord 4 + ncols 2, "id" 2+2+1+8, "payload" 2+7+1+4+N
SELECT clock_timestamp() AS cl06_t0 \gset
SELECT is(length(consent_ledger.leaf_data('public.cl06_huge', 0)), 42 + 104857600,
	'huge: leaf_data() is the 100 MiB payload plus 42 bytes of encoding');
INSERT INTO cl06_timing VALUES ('leaf_data', extract(epoch FROM clock_timestamp() - :'cl06_t0'::timestamptz));
SELECT is(substring(consent_ledger.leaf_data('public.cl06_huge', 0) FROM 43 FOR 64),
	convert_to((SELECT left(payload, 64) FROM public.cl06_huge), 'UTF8'),
	'huge: ... ending with the payload''s bytes');
SELECT is(encode(sha256('\x00'::bytea || consent_ledger.leaf_data('public.cl06_huge', 0)), 'base64'),
	consent_ledger.inclusion_proof('public.cl06_huge', 0)->>'leaf_hash',
	'huge: SHA-256(0x00 || leaf_data) is the sealed leaf hash');
SELECT is(consent_ledger.verify_checkpoint(consent_ledger.checkpoint('public.cl06_huge')), true,
	'huge: its checkpoint verifies (the row rehashed)');
SELECT diag('huge row timings (s): ' || string_agg(step || ' ' || round(secs, 2), ', ' ORDER BY step))
	FROM cl06_timing;
-- (timings are printed for information only: the suite has no timed assertions)

-- ---------------------------------------------------------------------
-- Every function with every argument NULL
-- ---------------------------------------------------------------------
CREATE TEMP TABLE cl06_nulls (fn regprocedure, strict boolean, outcome text);
DO $$
DECLARE
	f record;
	args text;
	n bigint;
	nn bigint;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure AS fn, p.proisstrict, p.proretset,
			   (SELECT string_agg('NULL::' || CASE WHEN t = 'anyelement'::regtype THEN 'integer'
											   ELSE format_type(t, NULL) END, ', ' ORDER BY o)
				  FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, o)) AS nullargs
		FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
		WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
		  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'consent_ledger')
		  AND p.pronargs > 0
		  -- (the table access method's handler takes internal: SQL cannot call it)
		  AND NOT 'internal'::regtype = ANY (p.proargtypes::oid[])
	LOOP
		BEGIN
			EXECUTE format('SELECT count(*), count(r) FROM (SELECT %s(%s) AS r) s',
						   f.fn::oid::regproc, f.nullargs) INTO n, nn;
			INSERT INTO cl06_nulls VALUES (f.fn, f.proisstrict,
				CASE WHEN n = 0 THEN 'no rows' WHEN nn = 0 THEN 'NULL' ELSE 'value' END);
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO cl06_nulls VALUES (f.fn, f.proisstrict, 'error ' || SQLSTATE);
		END;
	END LOOP;
END
$$;
SELECT cmp_ok((SELECT count(*)::int FROM cl06_nulls), '>=', 40, 'NULLs: every function with arguments was called');
SELECT is_empty($$SELECT fn, outcome FROM cl06_nulls WHERE strict AND outcome NOT IN ('NULL', 'no rows')$$,
	'NULLs: every STRICT function returns NULL (or no rows) when given NULLs');
-- every other function taking arguments is STRICT
SELECT set_eq($$SELECT fn::text, outcome FROM cl06_nulls WHERE NOT strict$$,
	$$VALUES ('consent_ledger.verify(regclass)', 'value'),
		('consent_ledger.define_purpose(text,text,text,text,boolean)', 'error 22004'),
		('consent_ledger.grant_consent(text,text,timestamp with time zone,jsonb)', 'error 22004'),
		('consent_ledger.grant_consent(bigint,text,timestamp with time zone,jsonb)', 'error 22004'),
		('consent_ledger.grant_consent(integer,text,timestamp with time zone,jsonb)', 'error 22004'),
		('consent_ledger.grant_consent(uuid,text,timestamp with time zone,jsonb)', 'error 22004'),
		('consent_ledger.withdraw_consent(text,text,jsonb)', 'error 22004'),
		('consent_ledger.withdraw_consent(bigint,text,jsonb)', 'error 22004'),
		('consent_ledger.withdraw_consent(integer,text,jsonb)', 'error 22004'),
		('consent_ledger.withdraw_consent(uuid,text,jsonb)', 'error 22004'),
		('consent_ledger.grant_consent(text[],text,timestamp with time zone,jsonb)', 'error 22004'),
		('consent_ledger.withdraw_consent(text[],text,jsonb)', 'error 22004'),
		('consent_ledger.record_standby_read(text,timestamp with time zone,text,text,text,text,text,text,text,oid,text,text,bigint,bigint,bigint,boolean)', 'error 22004'),
		-- 1.3: the consistency proof may be NULL (a witness's first checkpoint), the note not
		('consent_ledger.witness_cosign(text,jsonb)', 'error 22004'),
		-- issue #15: erasure and ledgers with personal columns
		('consent_ledger.erase_subject(text,text)', 'error 22004'),
		('consent_ledger.create_ledger(regclass,name[],name)', 'error 22004'),
		-- issue #17: subjects' keys, signed consent, receipts
		('consent_ledger.register_subject_key(text,text,text,text)', 'error 22004'),
		('consent_ledger.record_signed_consent(text,text,jsonb)', 'error 22004'),
		('consent_ledger.consent_receipt(bigint)', 'error 22004'),
		('consent_ledger.subject_access_report(text,timestamp with time zone,timestamp with time zone)', 'error 22004'),
		('consent_ledger.export_dataset(text,anyelement)', 'error 22004'),
		('consent_ledger.dataset_includes(text,text)', 'error 22004'),
		('consent_ledger.datasets_for_subject(text)', 'error 22004')$$,
	'NULLs: verify(NULL) reports every ledger; define/grant/withdraw, record_standby_read, witness_cosign, erase_subject, create_ledger with personal columns, register_subject_key, record_signed_consent, consent_receipt, subject_access_report and the dataset functions raise 22004');

-- NULL in one argument of the functions that are not STRICT
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl06_p', 'bad input sweep')$$, 'setup: a purpose');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl06_p.child', NULL, 'consent', 'cl06_p')$$,
	'define_purpose with a NULL description works');
SELECT throws_ok($$SELECT consent_ledger.define_purpose(NULL)$$, '22004', NULL, 'define_purpose(NULL): 22004');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl06_x', NULL, NULL)$$, '22004', NULL,
	'define_purpose with a NULL legal basis: 22004');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl06_nulls', NULL, 'consent', NULL)$$,
	'define_purpose with NULL description and parent works');
SELECT lives_ok($$SELECT consent_ledger.grant_consent('cl06_s1', 'cl06_p')$$, 'setup: a grant (the consent ledger exists)');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(NULL, 'cl06_p')$$, '22004', NULL, 'grant_consent(NULL subject): 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('s', NULL)$$, '22004', NULL, 'grant_consent(NULL purpose): 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(NULL::bigint, 'cl06_p')$$, '22004', NULL,
	'grant_consent(NULL::bigint): 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(NULL::uuid, 'cl06_p')$$, '22004', NULL,
	'grant_consent(NULL::uuid): 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent(NULL, 'cl06_p')$$, '22004', NULL,
	'withdraw_consent(NULL subject): 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('s', NULL)$$, '22004', NULL,
	'withdraw_consent(NULL purpose): 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent(NULL::integer, 'cl06_p')$$, '22004', NULL,
	'withdraw_consent(NULL::integer): 22004');
SELECT lives_ok($$SELECT consent_ledger.grant_consent('cl06_s2', 'cl06_p', NULL, NULL)$$,
	'grant_consent with NULL expiry and evidence works');
SELECT is(consent_ledger.has_consent('cl06_s1', 'cl06_p', NULL), NULL, 'has_consent(.., .., NULL) is NULL (STRICT)');
SELECT is(consent_ledger.has_consent(NULL::bigint, 'cl06_p'), NULL, 'has_consent(NULL::bigint, ..) is NULL');
SELECT is(consent_ledger.allowed(NULL::text), NULL, 'allowed(NULL) is NULL, no purpose needed');
SELECT is(consent_ledger.view_allows(0, NULL::bigint), NULL, 'view_allows(0, NULL) is NULL');
SELECT is(consent_ledger.row_hash('public.cl06_ledger', NULL::public.cl06_ledger), NULL,
	'row_hash(relation, NULL row) is NULL');

-- ---------------------------------------------------------------------
-- Empty strings
-- ---------------------------------------------------------------------
SELECT throws_ok($$SELECT consent_ledger.create_ledger('')$$, '42602', NULL, 'create_ledger(''''): 42602 from the regclass cast');
SELECT throws_ok($$SELECT * FROM consent_ledger.verify('')$$, '42602', NULL, 'verify(''''): 42602');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose('', 'cl06_p')$$, '42602', NULL,
	'authorize_purpose('''', ..): 42602 from the regrole cast');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose(current_user::regrole, '')$$, '42704', NULL,
	'authorize_purpose(role, ''''): 42704 (no such purpose)');
SELECT throws_ok($$SELECT consent_ledger.revoke_purpose(current_user::regrole, '')$$, '42704', NULL,
	'revoke_purpose(role, ''''): 42704');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('')$$, '22023', NULL, 'define_purpose(''''): 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl06_y', '', '')$$, '22023', NULL,
	'define_purpose with an empty legal basis: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl06_y', '', 'consent', '')$$, '42704', NULL,
	'define_purpose with an empty parent: 42704');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl06_empty_desc', '')$$, 'define_purpose with an empty description works');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('', 'cl06_p')$$, '22004', NULL, 'grant_consent(''''): 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('s', '')$$, '42704', NULL, 'grant_consent(s, ''''): 42704');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('', 'cl06_p')$$, '22004', NULL, 'withdraw_consent(''''): 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('s', '')$$, '42704', NULL, 'withdraw_consent(s, ''''): 42704');
SELECT is(consent_ledger.has_consent('', 'cl06_p'), false, 'has_consent('''', p) is false');
SELECT throws_ok($$SELECT consent_ledger.has_consent('s', '')$$, '42704', NULL, 'has_consent(s, ''''): 42704');
SELECT throws_ok($$SELECT consent_ledger._record_begin('')$$, '42704', NULL, '_record_begin(''''): 42704');
SELECT is(consent_ledger.verify_checkpoint('""'), false,
	'verify_checkpoint of an empty JSON string: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": ""}'), false,
	'verify_checkpoint with an empty note: false, not an error');

CREATE TABLE public.cl06_people (id int PRIMARY KEY, subj text, n int, j jsonb);
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl06_people', '')$$, '42703', NULL, 'protect(t, ''''): 42703');
SELECT lives_ok($$SELECT consent_ledger.protect('public.cl06_people', 'subj')$$, 'setup: protect a table');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl06_people', 'cl06_p', '')$$, '42602', NULL,
	'create_purpose_view(.., .., ''''): 42602');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl06_people', '', 'public.cl06_v')$$, '42704', NULL,
	'create_purpose_view(.., '''', ..): 42704');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl06_people', 'cl06_p', 'a.b.c.d')$$, '42601', NULL,
	'create_purpose_view with a name of four parts: 42601');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl06_people', 'cl06_p', 'cl06_no_schema.v')$$, '3F000', NULL,
	'create_purpose_view in a schema that does not exist: 3F000');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl06_people', 'cl06_p', 'public.cl06_people')$$, '42P07', NULL,
	'create_purpose_view named like an existing relation: 42P07');
SELECT throws_ok($$SELECT consent_ledger.allowed('')$$, '42501', NULL, 'allowed('''') with no purpose declared: 42501');
SELECT throws_ok($$SELECT consent_ledger.view_allows(0, '')$$, '42501', NULL, 'view_allows(0, ''''): 42501');

-- ---------------------------------------------------------------------
-- Relations that do not exist: the regclass cast raises 42P01
-- ---------------------------------------------------------------------
CREATE TEMP TABLE cl06_calls (n int, sql text);
INSERT INTO cl06_calls VALUES
	(1, $$SELECT * FROM consent_ledger.verify('cl06_no_such_table')$$),
	(2, $$SELECT consent_ledger.create_ledger('cl06_no_such_table')$$),
	(3, $$SELECT consent_ledger.retire_ledger('cl06_no_such_table')$$),
	(4, $$SELECT consent_ledger.checkpoint('cl06_no_such_table')$$),
	(5, $$SELECT consent_ledger.inclusion_proof('cl06_no_such_table', 0)$$),
	(6, $$SELECT consent_ledger.inclusion_proof('cl06_no_such_table', 0, 1)$$),
	(7, $$SELECT consent_ledger.consistency_proof('cl06_no_such_table', 1, 1)$$),
	(8, $$SELECT * FROM consent_ledger.export('cl06_no_such_table')$$),
	(9, $$SELECT consent_ledger.leaf_data('cl06_no_such_table', 0)$$),
	(10, $$SELECT consent_ledger.protect('cl06_no_such_table', 'id')$$),
	(11, $$SELECT consent_ledger.unprotect('cl06_no_such_table')$$),
	(12, $$SELECT consent_ledger.create_purpose_view('cl06_no_such_table', 'cl06_p', 'public.cl06_v')$$),
	(13, $$SELECT consent_ledger.audit('cl06_no_such_table')$$),
	(14, $$SELECT consent_ledger.row_hash('cl06_no_such_table', 1)$$),
	(15, $$SELECT * FROM consent_ledger.verify('public.cl06_no_such_table')$$);
SELECT throws_ok(sql, '42P01', NULL, 'unknown relation, call ' || n || ': 42P01 (' || sql || ')')
	FROM cl06_calls ORDER BY n;
SELECT throws_ok($$SELECT * FROM consent_ledger.verify('cl06_no_schema.t')$$, '3F000', NULL,
	'relation in a schema that does not exist: 3F000 from the cast');
SELECT throws_ok($$SELECT * FROM consent_ledger.verify('"unterminated')$$, '42602', NULL,
	'unterminated quoted relation name: 42602 from the cast');
-- an OID that is no relation (the cast does not check)
SELECT throws_ok($$SELECT consent_ledger.protect(2147483647::oid::regclass, 'id')$$, '42P01', NULL,
	'protect of a relation OID that does not exist: 42P01');
SELECT throws_ok($$SELECT consent_ledger.unprotect(2147483647::oid::regclass)$$, '42P01', NULL,
	'unprotect of a relation OID that does not exist: 42P01');
SELECT throws_ok($$SELECT consent_ledger.audit(2147483647::oid::regclass)$$, '42P01', NULL,
	'audit of a relation OID that does not exist: 42P01');
SELECT throws_ok($$SELECT consent_ledger.retire_ledger(2147483647::oid::regclass)$$, '42P01', NULL,
	'retire_ledger of a relation OID that does not exist: 42P01');
SELECT throws_ok($$SELECT consent_ledger.row_hash(2147483647::oid::regclass, ROW(1))$$, '42P01',
	'relation with OID 2147483647 does not exist',
	'row_hash of a relation OID that does not exist: 42P01, naming the OID (1.1: 42804 naming relation "(null)")');
CREATE ROLE cl06_admin NOLOGIN IN ROLE consent_ledger_admin;
SET ROLE cl06_admin;
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view(2147483647::oid::regclass, 'cl06_p', 'public.cl06_v')$$,
	'42P01', NULL, 'create_purpose_view of a relation OID that does not exist (as an admin): 42P01');
RESET ROLE;
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view(2147483647::oid::regclass, 'cl06_p', 'public.cl06_v')$$,
	'42P01', NULL, 'create_purpose_view of a relation OID that does not exist (as a superuser): 42P01, no crash');

-- ---------------------------------------------------------------------
-- Relations of every other kind
-- ---------------------------------------------------------------------
CREATE VIEW public.cl06_view AS SELECT 1 AS id, 'x'::text AS subj;
CREATE SEQUENCE public.cl06_seq;
CREATE TYPE public.cl06_type AS (id int);
CREATE INDEX cl06_people_n ON public.cl06_people (n);
CREATE MATERIALIZED VIEW public.cl06_matview AS SELECT 1 AS id;
CREATE TABLE public.cl06_parted (id int, subj text) PARTITION BY RANGE (id);
CREATE TABLE public.cl06_plain (id int, subj text);
CREATE TEMP TABLE cl06_kinds (kind text, rel text);
INSERT INTO cl06_kinds VALUES ('a view', 'public.cl06_view'), ('a sequence', 'public.cl06_seq'),
	('a composite type', 'public.cl06_type'), ('an index', 'public.cl06_people_n'),
	('a materialized view', 'public.cl06_matview'), ('a partitioned table', 'public.cl06_parted'),
	('a plain table', 'public.cl06_plain'), ('a system catalog', 'pg_catalog.pg_class'),
	('the extension''s log table', 'consent_ledger.log');
SELECT throws_ok(format($$SELECT * FROM consent_ledger.verify(%L)$$, rel), '42809', NULL, 'verify of ' || kind || ': 42809')
	FROM cl06_kinds ORDER BY kind;
SELECT throws_ok(format($$SELECT consent_ledger.checkpoint(%L)$$, rel), '42809', NULL, 'checkpoint of ' || kind || ': 42809')
	FROM cl06_kinds ORDER BY kind;
SELECT throws_ok(format($$SELECT * FROM consent_ledger.export(%L)$$, rel), '42809', NULL, 'export of ' || kind || ': 42809')
	FROM cl06_kinds ORDER BY kind;
SELECT throws_ok(format($$SELECT consent_ledger.leaf_data(%L, 0)$$, rel), '42809', NULL, 'leaf_data of ' || kind || ': 42809')
	FROM cl06_kinds ORDER BY kind;
SELECT throws_ok(format($$SELECT consent_ledger.inclusion_proof(%L, 0)$$, rel), '42809', NULL,
	'inclusion_proof of ' || kind || ': 42809') FROM cl06_kinds ORDER BY kind;
SELECT throws_ok(format($$SELECT consent_ledger.consistency_proof(%L, 1, 1)$$, rel), '42809', NULL,
	'consistency_proof of ' || kind || ': 42809') FROM cl06_kinds ORDER BY kind;
SELECT throws_ok(format($$SELECT consent_ledger.retire_ledger(%L)$$, rel), '42809', NULL,
	'retire_ledger of ' || kind || ': 42809') FROM cl06_kinds WHERE rel <> 'pg_catalog.pg_class' ORDER BY kind;
SELECT throws_ok(format($$SELECT consent_ledger.create_ledger(%L)$$, rel), '42809', NULL,
	'create_ledger of ' || kind || ': 42809')
	FROM cl06_kinds WHERE kind NOT IN ('a plain table', 'a system catalog', 'the extension''s log table',
									   'a partitioned table') ORDER BY kind;
SELECT throws_ok($$SELECT consent_ledger.create_ledger('pg_catalog.pg_class')$$, '42501', NULL,
	'create_ledger of a system catalog: 42501');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('consent_ledger.log')$$, '42501', NULL,
	'create_ledger of the extension''s log table: 42501 (the extension''s own tables are refused)');
SELECT throws_ok(format($$SELECT consent_ledger.audit(%L)$$, rel), '42809', NULL, 'audit of ' || kind || ': 42809')
	FROM cl06_kinds WHERE kind IN ('a view', 'a sequence', 'a composite type', 'an index', 'a materialized view')
	ORDER BY kind;
SELECT throws_ok(format($$SELECT consent_ledger.protect(%L, 'id')$$, rel), '42809', NULL, 'protect of ' || kind || ': 42809')
	FROM cl06_kinds WHERE kind IN ('a view', 'a sequence', 'a composite type', 'an index', 'a materialized view')
	ORDER BY kind;
-- (1.3: a partitioned table can be protected and become a ledger, so those two refusals are gone;
-- a partition of an unprotected table, or of a table that is not a ledger, is still refused)
CREATE TABLE public.cl06_part PARTITION OF public.cl06_parted FOR VALUES FROM (0) TO (10);
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl06_part', 'id')$$, '42809', NULL,
	'protect of a partition of an unprotected table: 42809');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl06_part')$$, '0A000', NULL,
	'create_ledger of a partition: 0A000');
SELECT throws_ok(format($$SELECT consent_ledger.unprotect(%L)$$, rel), '55000', NULL, 'unprotect of ' || kind || ': 55000')
	FROM cl06_kinds WHERE kind IN ('a view', 'a plain table') ORDER BY kind;
SELECT throws_ok(format($$SELECT consent_ledger.create_purpose_view(%L, 'cl06_p', 'public.cl06_v')$$, rel), '55000', NULL,
	'create_purpose_view of ' || kind || ': 55000 (not protected)')
	FROM cl06_kinds WHERE kind IN ('a view', 'a plain table', 'a partitioned table') ORDER BY kind;
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl06_people', 'subj')$$, '42710', NULL,
	'protect of an already protected table: 42710');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl06_plain', 'ctid')$$, '42804', NULL,
	'protect by a system column (tid): 42804');
CREATE TABLE public.cl06_jsonsubj (id int, j jsonb);
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl06_jsonsubj', 'j')$$, '42804', NULL,
	'protect by a jsonb column: 42804');
SELECT throws_ok($$SELECT consent_ledger.row_hash('public.cl06_ledger', ROW(1, 'a'))$$, '42804', NULL,
	'row_hash of an anonymous record: 42804');
SELECT throws_ok($$SELECT consent_ledger.row_hash('public.cl06_ledger', 1)$$, '42804', NULL,
	'row_hash of an integer: 42804');
SELECT throws_ok($$SELECT consent_ledger.row_hash('public.cl06_seq', s.*) FROM public.cl06_seq s$$, '42809', NULL,
	'row_hash of a sequence row: 42809');
SELECT throws_ok($$SELECT consent_ledger.row_hash('public.cl06_type', ROW(1)::public.cl06_type)$$, '42809', NULL,
	'row_hash of a composite type value: 42809');
SELECT is((SELECT count(*)::int FROM public.cl06_ledger l WHERE length(consent_ledger.row_hash('public.cl06_ledger', l.*)) = 32),
	3, 'row_hash of the ledger''s own rows: 32 bytes each');
SELECT throws_ok($$SELECT consent_ledger.ledger_stamp()$$, '39P01', NULL, 'ledger_stamp() called directly: 39P01');
SELECT throws_ok($$SELECT consent_ledger.ledger_guard()$$, '39P01', NULL, 'ledger_guard() called directly: 39P01');
SELECT throws_ok($$SELECT consent_ledger.audit_row()$$, '39P01', NULL, 'audit_row() called directly: 39P01');
SELECT is_empty($$SELECT relid FROM consent_ledger.ledgers WHERE relid::text LIKE '%cl06_%'
					AND relid::text NOT IN ('cl06_ledger', 'cl06_huge')$$,
	'none of the refused relations was registered as a ledger');
SELECT is_empty($$SELECT relid FROM consent_ledger.audited WHERE relid::text LIKE '%cl06_%'$$,
	'none was registered as audited');

-- the extension's own tables cannot be made ledgers (revoke_purpose would then fail for good)
SELECT is(pg_temp.cl06_sqlstate($$SELECT consent_ledger.create_ledger('consent_ledger.purpose_grants')$$), '42501',
	'create_ledger of the extension''s purpose_grants table is refused: 42501');

-- ---------------------------------------------------------------------
-- Unknown purposes, subjects and roles
-- ---------------------------------------------------------------------
SELECT is(consent_ledger.has_consent('cl06_nobody', 'cl06_p'), false, 'has_consent of an unknown subject: false');
SELECT is(consent_ledger.has_consent(987654321, 'cl06_p'), false, 'has_consent of an unknown integer subject: false');
SELECT is(consent_ledger.has_consent('00000000-0000-0000-0000-000000000000'::uuid, 'cl06_p'), false,
	'has_consent of an unknown uuid subject: false');
SELECT throws_ok($$SELECT consent_ledger.has_consent('cl06_s1', 'cl06_no_purpose')$$, '42704', NULL,
	'has_consent for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('cl06_s1', 'cl06_no_purpose')$$, '42704', NULL,
	'grant_consent for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('cl06_s1', 'cl06_no_purpose')$$, '42704', NULL,
	'withdraw_consent for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose(current_user::regrole, 'cl06_no_purpose')$$, '42704', NULL,
	'authorize_purpose for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.revoke_purpose(current_user::regrole, 'cl06_no_purpose')$$, '42704', NULL,
	'revoke_purpose for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl06_people', 'cl06_no_purpose', 'public.cl06_v')$$,
	'42704', NULL, 'create_purpose_view for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl06_q', NULL, 'consent', 'cl06_no_purpose')$$, '42704', NULL,
	'define_purpose under an unknown parent: 42704');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl06_p')$$, '42710', NULL, 'define_purpose twice: 42710');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl06_q', NULL, 'whim')$$, '22023', NULL,
	'define_purpose with an unknown legal basis: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose(repeat('a', 64))$$, '22023', NULL,
	'define_purpose with a 64-character name: 22023');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('c' || repeat('6', 62))$$, '... 63 characters are accepted');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('6cl')$$, '22023', NULL, 'define_purpose with a leading digit: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl06_été')$$, '22023', NULL, 'define_purpose with non-ASCII letters: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose(E'cl06_nl\n')$$, '22023', NULL, 'define_purpose with a newline: 22023');
SELECT throws_ok($$SET consent_ledger.purpose = 'cl06_no_purpose'$$, '42501', NULL, 'declaring an unknown purpose: 42501');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose('cl06_no_such_role', 'cl06_p')$$, '42704', NULL,
	'authorize_purpose of an unknown role: 42704 from the regrole cast');
SELECT throws_ok($$SELECT consent_ledger.revoke_purpose('cl06_no_such_role', 'cl06_p')$$, '42704', NULL,
	'revoke_purpose of an unknown role: 42704 from the regrole cast');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose('public', 'cl06_p')$$, '42704', NULL,
	'authorize_purpose of PUBLIC: 42704 (not a role)');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose('"unterminated', 'cl06_p')$$, '42602', NULL,
	'authorize_purpose of a malformed role name: 42602');
-- a role OID that no role has is refused (a role created later with that OID would inherit it)
SELECT is(pg_temp.cl06_sqlstate($$SELECT consent_ledger.authorize_purpose(4000000000::oid::regrole, 'cl06_p')$$), '42704',
	'authorize_purpose of a role OID that does not exist: 42704');
SELECT is(pg_temp.cl06_sqlstate($$SELECT consent_ledger.authorize_purpose(0::oid::regrole, 'cl06_p')$$), '42704',
	'authorize_purpose of role OID 0: 42704');
-- subjects of every size
SELECT ok(consent_ledger.grant_consent(repeat('s', 1024), 'cl06_p') > 0, 'a 1024-byte subject is recorded (an event id)');
SELECT is(consent_ledger.has_consent(repeat('s', 1024), 'cl06_p', clock_timestamp()), true, '... and has consent');
SELECT throws_ok($$SELECT consent_ledger.grant_consent((SELECT string_agg(md5(g::text), '') FROM generate_series(1, 100) g), 'cl06_p')$$,
	'22001', NULL, 'a 3200-byte subject: 22001 (subjects are at most 1024 bytes)');
SELECT ok(consent_ledger.grant_consent('cl06_big_evidence', 'cl06_p', NULL,
		(SELECT jsonb_build_object('scan', string_agg(md5(g::text), '')) FROM generate_series(1, 100000) g)) > 0,
	'a grant with 3.2 MB of evidence is recorded (an event id)');
SELECT is((SELECT length(evidence->>'scan') FROM consent_ledger.consent_events WHERE subject = 'cl06_big_evidence'),
	3200000, '... with all of its evidence');
SELECT is(consent_ledger.has_consent(9223372036854775807, 'cl06_p'), false, 'has_consent(max bigint): false');
SELECT ok(consent_ledger.withdraw_consent(-9223372036854775808, 'cl06_p') > 0,
	'withdraw_consent(min bigint) without a grant is recorded (an event id)');
SELECT is((SELECT action FROM consent_ledger.consent_events WHERE subject = '-9223372036854775808' AND purpose = 'cl06_p'),
	'withdraw', '... as a withdrawal of subject -9223372036854775808');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('s', 'cl06_p', '-infinity')$$, '22023', NULL,
	'grant_consent expiring at -infinity: 22023');

-- ---------------------------------------------------------------------
-- Malformed checkpoints for verify_checkpoint
-- ---------------------------------------------------------------------
CREATE TEMP TABLE cl06_cp AS SELECT consent_ledger.checkpoint('public.cl06_ledger') AS cp;
CREATE FUNCTION pg_temp.cl06_note(from_text text, to_text text) RETURNS jsonb LANGUAGE sql AS
	$$SELECT jsonb_build_object('note', replace(cp->>'note', from_text, to_text)) FROM cl06_cp$$;
-- a literal is read as text by the strict receipt reader: malformed JSON
-- is false, not an error; cast to jsonb it fails in the cast
SELECT is(consent_ledger.verify_checkpoint('{'), false, 'malformed JSON text: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": "\u0000"}'), false,
	'a note with a NUL escape as text: false, not an error');
SELECT throws_ok($$SELECT consent_ledger.verify_checkpoint('{'::jsonb)$$, '22P02', NULL, 'malformed JSON as jsonb: 22P02 from the jsonb cast');
SELECT throws_ok($$SELECT consent_ledger.verify_checkpoint('{"note": "\u0000"}'::jsonb)$$, '22P05', NULL,
	'a note with a NUL escape as jsonb: 22P05 from the jsonb cast');
SELECT is(consent_ledger.verify_checkpoint('null'), false,
	'JSON null: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('42'), false,
	'a JSON number: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": ["x"]}'), false,
	'a note that is an array: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"note": {"note": "x"}}'), false,
	'a note that is an object: false, not an error');
SELECT is(consent_ledger.verify_checkpoint('{"Note": "x"}'), false,
	'a "Note" member (case matters): false, not an error');
SELECT is(consent_ledger.verify_checkpoint(jsonb_build_object('note', repeat(E'x\n', 5000000))), false,
	'a 10 MB note: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl06_note(
		split_part((SELECT cp->>'note' FROM cl06_cp), E'\n', 1), 'consent_ledger/' || repeat('a', 100000))), false,
	'a note with a 100 kB origin: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl06_note(
		split_part((SELECT cp->>'note' FROM cl06_cp), E'\n', 1), 'consent_ledger/' || repeat('0', 32))), false,
	'a note of an origin no ledger here has: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl06_note(E'\n3\n', E'\n9223372036854775808\n')), false,
	'a note whose size is 2^63: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl06_note(E'\n3\n', E'\n-1\n')), false,
	'a note whose size is -1: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl06_note(E'\n3\n', E'\n03\n')), false,
	'a note whose size has a leading zero: false, not an error');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl06_note(E'\n3\n', E'\n9223372036854775807\n')), false,
	'a note whose size is 2^63 - 1 does not verify');
SELECT is(consent_ledger.verify_checkpoint(pg_temp.cl06_note(E'\n3\n', E'\n4611686018427387905\n')), false,
	'a note whose size is 2^62 + 1 does not verify');
SELECT is(consent_ledger.verify_checkpoint((SELECT cp FROM cl06_cp)), true, 'the genuine checkpoint verifies');
SELECT is(consent_ledger.verify_checkpoint((SELECT cp || '{"tree_size": 3.0}' FROM cl06_cp)), false,
	'... but not with tree_size written 3.0 (the offline verifier refuses it too)');
SELECT is(consent_ledger.verify_checkpoint((SELECT cp || '{"tree_size": null}' FROM cl06_cp)), false,
	'a checkpoint whose tree_size member is null does not verify');
-- a fractional or huge tree_size member does not verify (false, not an error)
SELECT is(consent_ledger.verify_checkpoint((SELECT cp || '{"tree_size": 3.4}' FROM cl06_cp)), false,
	'a checkpoint whose tree_size member is 3.4 does not verify');
SELECT is(consent_ledger.verify_checkpoint((SELECT cp || '{"tree_size": 2.6}' FROM cl06_cp)), false,
	'a checkpoint whose tree_size member is 2.6 does not verify');
SELECT is(consent_ledger.verify_checkpoint((SELECT cp || '{"tree_size": 1e30}' FROM cl06_cp)), false,
	'a checkpoint whose tree_size member is 1e30 is answered false, not an error');

-- ---------------------------------------------------------------------
-- Absurd sizes for proofs and leaves: 22023
-- ---------------------------------------------------------------------
CREATE TEMP TABLE cl06_sizes (n int, sql text);
INSERT INTO cl06_sizes VALUES
	(1, $$SELECT consent_ledger.inclusion_proof('public.cl06_ledger', 0, 4611686018427387905)$$),
	(2, $$SELECT consent_ledger.inclusion_proof('public.cl06_ledger', 0, 9223372036854775807)$$),
	(3, $$SELECT consent_ledger.inclusion_proof('public.cl06_ledger', 0, -9223372036854775808)$$),
	(4, $$SELECT consent_ledger.inclusion_proof('public.cl06_ledger', 9223372036854775807)$$),
	(5, $$SELECT consent_ledger.inclusion_proof('public.cl06_ledger', -9223372036854775808)$$),
	(6, $$SELECT consent_ledger.inclusion_proof('public.cl06_ledger', 4611686018427387904, 4611686018427387905)$$),
	(7, $$SELECT consent_ledger.consistency_proof('public.cl06_ledger', 1, 4611686018427387905)$$),
	(8, $$SELECT consent_ledger.consistency_proof('public.cl06_ledger', 4611686018427387904, 4611686018427387905)$$),
	(9, $$SELECT consent_ledger.consistency_proof('public.cl06_ledger', -9223372036854775808, 3)$$),
	(10, $$SELECT consent_ledger.consistency_proof('public.cl06_ledger', 9223372036854775807, 9223372036854775807)$$),
	(11, $$SELECT consent_ledger.consistency_proof('public.cl06_ledger', 2, -9223372036854775808)$$),
	(12, $$SELECT consent_ledger.leaf_data('public.cl06_ledger', 4611686018427387905)$$),
	(13, $$SELECT consent_ledger.leaf_data('public.cl06_ledger', 9223372036854775807)$$),
	(14, $$SELECT consent_ledger.leaf_data('public.cl06_ledger', -9223372036854775808)$$),
	(15, $$SELECT consent_ledger.leaf_data('public.cl06_huge', 1)$$);
SELECT throws_ok(sql, '22023', NULL, 'absurd size ' || n || ': 22023 (' || sql || ')') FROM cl06_sizes ORDER BY n;
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl06_ledger', 0, 9223372036854775808)$$, '42883', NULL,
	'2^63 is no bigint: 42883 (no function takes numeric)');
SELECT throws_ok($$SELECT consent_ledger.inclusion_proof('public.cl06_ledger', 0, '9223372036854775808')$$, '22003', NULL,
	'2^63 as a literal for a bigint argument: 22003');
SELECT is((consent_ledger.consistency_proof('public.cl06_ledger', 3, 3)->>'new_size')::bigint, 3::bigint,
	'the largest valid consistency proof still works');

-- ---------------------------------------------------------------------
-- Nothing already stored was lost
-- ---------------------------------------------------------------------
-- (the consent ledger too: this transaction recorded events in it, and
-- verify() counts the inserting transaction's own rows as pending)
SELECT is_empty($$
	SELECT b.relation FROM cl06_before b LEFT JOIN consent_ledger.verify(NULL) v USING (relation)
	WHERE b.valid AND (v.valid IS NOT TRUE OR v."rows" < b."rows")$$,
	'after the sweep every ledger that verified before still verifies, with at least its rows');
SELECT results_eq($$SELECT "rows", valid FROM consent_ledger.verify('public.cl06_ledger')$$,
	$$VALUES (3::bigint, true)$$, 'after the sweep the test ledger holds its 3 rows and verifies');
-- (dropped ledgers included: their receipts are checked against the stored log)
SELECT is_empty($$
	SELECT c.ledger_id, c.seq FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id)
	WHERE NOT consent_ledger.verify_checkpoint(jsonb_build_object('note', c.note))$$,
	'after the sweep every stored checkpoint of every ledger, dropped ones included, verifies');

-- Found by this sweep: a retired and dropped ledger's receipt got XX000; it is now checked against the stored log.
SELECT is(consent_ledger.verify_checkpoint((SELECT cp FROM cl06_gone_cp)), true,
	'verify_checkpoint of a dropped ledger''s receipt: true (it was XX000)');
SELECT results_eq($$SELECT valid, reason FROM consent_ledger.verify_checkpoint_detail((SELECT cp FROM cl06_gone_cp))$$,
	$$VALUES (true, 'table dropped: the stored log, not the rows, has the receipt''s root at its tree size')$$,
	'... it verifies against the stored log, and says the rows were not rehashed');
INSERT INTO public.cl06_ledger (id, v) VALUES (4, 'uncommitted');
SELECT results_eq($$SELECT "rows", pending, valid, problem FROM consent_ledger.verify('public.cl06_ledger')$$,
	$$VALUES (4::bigint, 1::bigint, true, NULL::text)$$,
	'verify() in a transaction that inserted a row into the ledger: valid, the row pending (it is not tampering)');

SELECT * FROM finish();
ROLLBACK;

-- clean up the committed setup
DO $$ BEGIN PERFORM consent_ledger.retire_ledger('public.cl06_ledger'); END $$;
DO $$ BEGIN PERFORM consent_ledger.retire_ledger('public.cl06_huge'); END $$;
DROP TABLE public.cl06_ledger, public.cl06_huge;
