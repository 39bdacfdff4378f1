-- Consent enforcement as real non-superuser roles: protected tables show
-- exactly the rows whose subjects consented to the declared purpose (and
-- its ancestors), for every supported subject type; purpose views; who may
-- declare which purpose (authorization of a parent covers its children,
-- not the reverse; through role membership; revoked; checked again at use);
-- legal bases other than consent; NULL subjects; leaky functions and
-- EXPLAIN; the refusals of protect() and create_purpose_view(); the guards
-- on protected tables.
--
-- Consent events recorded by a transaction are not in force for that
-- transaction's own reads until it commits (a savepoint could still roll
-- them back), so the consent events -- and with them the roles, purposes,
-- authorizations, protected tables and purpose views the policy cache
-- reads -- are set up in committed transactions first (as 03_inputs.sql
-- does for its sealed ledger).  The tests run in one transaction that is
-- rolled back; they check the in-transaction rule itself too.  At the end
-- the committed objects are removed again (purposes and consent events
-- stay: purposes are never undefined and the consent ledger is
-- append-only); the setup re-records every consent event, so the file can
-- run again in the same database.
--
-- revoke_purpose() and withdrawals taking effect for the next statement
-- of other sessions are tested by the isolation specs consent_revoke and
-- consent_withdrawal.  SET ROLE from this superuser session may switch to
-- any role, so "SET ROLE to a role one lacks" is left to
-- sql/enforcement.sql, which logs in as the analyst.

SET client_min_messages = warning;

-- ---------------------------------------------------------------------
-- Committed setup
-- ---------------------------------------------------------------------
-- (roles are cluster-wide: created unless a previous run left them)
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT * FROM (VALUES
		('cl05_owner', 'IN ROLE consent_ledger_admin'),         -- owns the tables
		('cl05_other_admin', 'IN ROLE consent_ledger_admin'),
		('cl05_plain_owner', ''),                              -- owns a table, no extension role
		('cl05_analyst', ''),      -- authorized for cl05_analytics (the top purpose)
		('cl05_ads', ''),          -- authorized for cl05_analytics.ads (the child) only
		('cl05_biller', ''),       -- authorized for cl05_billing (legal basis: contract)
		('cl05_viewer', ''),       -- SELECT on the purpose views, no purpose
		('cl05_team', ''),         -- authorized for cl05_research
		('cl05_member', 'IN ROLE cl05_team'),
		('cl05_noinherit', 'NOINHERIT IN ROLE cl05_team'),
		('cl05_revoked', ''),      -- authorized for cl05_analytics, then revoked
		('cl05_ghost', '')         -- authorized only in a savepoint that is rolled back
		) v(name, opts)
	LOOP  -- (in this order: cl05_team before its members)
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN %s', r.name, r.opts);
		END IF;
	END LOOP;
END $$;
GRANT CREATE ON SCHEMA public TO cl05_owner, cl05_other_admin;
CREATE SCHEMA cl05_locked;            -- nobody but the superuser may create in it
GRANT USAGE ON SCHEMA cl05_locked TO cl05_owner;

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM consent_ledger.purposes WHERE purpose = 'cl05_analytics') THEN
		PERFORM consent_ledger.define_purpose('cl05_analytics', 'analytics');
		PERFORM consent_ledger.define_purpose('cl05_analytics.ads', 'ad targeting', parent => 'cl05_analytics');
		PERFORM consent_ledger.define_purpose('cl05_analytics.ads.rt', 'real-time bidding', parent => 'cl05_analytics.ads');
		PERFORM consent_ledger.define_purpose('cl05_billing', 'invoicing', 'contract');
		PERFORM consent_ledger.define_purpose('cl05_research', 'research');
		PERFORM consent_ledger.define_purpose('cl05_q' || g, 'one of five') FROM generate_series(1, 5) g;
	END IF;
	PERFORM consent_ledger.authorize_purpose('cl05_analyst', 'cl05_analytics');
	PERFORM consent_ledger.authorize_purpose('cl05_ads', 'cl05_analytics.ads');
	PERFORM consent_ledger.authorize_purpose('cl05_biller', 'cl05_billing');
	PERFORM consent_ledger.authorize_purpose('cl05_team', 'cl05_research');
	PERFORM consent_ledger.authorize_purpose('cl05_revoked', 'cl05_analytics');
	PERFORM consent_ledger.revoke_purpose('cl05_revoked', 'cl05_analytics');
END $$;

-- protected tables, one per subject type, each with a NULL subject row
CREATE TABLE public.cl05_text (id int PRIMARY KEY, subject text);
INSERT INTO public.cl05_text VALUES (1, 's1'), (2, 's2'), (3, 's3'), (4, 's4'), (5, 's5'), (6, 's6'), (7, 's7'),
	(8, 's8'), (9, 's9'), (10, 'nobody'), (11, NULL), (12, 's1');
CREATE TABLE public.cl05_int (id int PRIMARY KEY, subject integer);
INSERT INTO public.cl05_int VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, -3), (7, NULL), (8, 0);
CREATE TABLE public.cl05_big (id int PRIMARY KEY, subject bigint);
INSERT INTO public.cl05_big VALUES (1, 9223372036854775807), (2, -9223372036854775808), (3, 42), (4, 43),
	(5, 9007199254740993), (6, NULL);
CREATE TABLE public.cl05_uuid (id int PRIMARY KEY, subject uuid);
INSERT INTO public.cl05_uuid VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'),
	(3, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13'), (4, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14'), (5, NULL);
CREATE TABLE public.cl05_vc (id int PRIMARY KEY, subject varchar(20));
INSERT INTO public.cl05_vc VALUES (1, 'v1'), (2, 'v2'), (3, 'v3'), (4, NULL);
CREATE TABLE public.cl05_small (id int PRIMARY KEY, subject smallint);
INSERT INTO public.cl05_small VALUES (1, 7), (2, 8), (3, NULL);
CREATE TABLE public.cl05_char (id int PRIMARY KEY, subject char(4));
INSERT INTO public.cl05_char VALUES (1, 'c1'), (2, 'c2'), (3, NULL);
CREATE DOMAIN public.cl05_subject AS text CHECK (VALUE <> '');
CREATE TABLE public.cl05_dom (id int PRIMARY KEY, subject public.cl05_subject);
INSERT INTO public.cl05_dom VALUES (1, 's1'), (2, 's9'), (3, NULL);
CREATE TABLE public.cl05_multi (id int PRIMARY KEY, subject bigint);
INSERT INTO public.cl05_multi SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE public.cl05_phantom (id int PRIMARY KEY, subject text);
INSERT INTO public.cl05_phantom VALUES (1, 'ph1');
-- targets of refusals
CREATE TABLE public.cl05_unprot (id int, subject text);
CREATE TABLE public.cl05_types (id int, n numeric, d date, j jsonb, subject text);
CREATE VIEW public.cl05_plainview AS SELECT 1 AS id, 'x'::text AS subject;
CREATE TABLE public.cl05_parted (id int, subject text) PARTITION BY RANGE (id);
CREATE TABLE public.cl05_part PARTITION OF public.cl05_parted FOR VALUES FROM (0) TO (100);
CREATE MATERIALIZED VIEW public.cl05_mv AS SELECT 1 AS id, 'x'::text AS subject;
CREATE TABLE public.cl05_plain_owned (id int, subject text);
-- used by the owner's attempts to read around the policy
CREATE TABLE public.cl05_leak_parent (id int, subject text);
CREATE TABLE public.cl05_leak_pp (id int, subject text) PARTITION BY RANGE (id);
CREATE TABLE public.cl05_loot (id int, subject text);
-- a leaky function: it writes down every argument it sees
CREATE FUNCTION public.cl05_leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
	$$ BEGIN INSERT INTO cl05_seen VALUES ($1); RETURN true; END $$;

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['cl05_text', 'cl05_int', 'cl05_big', 'cl05_uuid', 'cl05_vc', 'cl05_small', 'cl05_char',
							 'cl05_dom', 'cl05_multi', 'cl05_phantom', 'cl05_unprot', 'cl05_types', 'cl05_plainview',
							 'cl05_parted', 'cl05_part', 'cl05_mv', 'cl05_leak_parent', 'cl05_leak_pp', 'cl05_loot']
	LOOP
		EXECUTE format('ALTER TABLE public.%I OWNER TO cl05_owner', t);
	END LOOP;
END $$;
ALTER TABLE public.cl05_plain_owned OWNER TO cl05_plain_owner;
GRANT SELECT ON public.cl05_text, public.cl05_int, public.cl05_big, public.cl05_uuid, public.cl05_vc, public.cl05_small,
	public.cl05_char, public.cl05_dom, public.cl05_phantom
	TO cl05_analyst, cl05_ads, cl05_biller, cl05_member, cl05_noinherit, cl05_revoked;
GRANT SELECT ON public.cl05_int TO cl05_viewer;

-- the owner protects its tables and creates purpose views
SET ROLE cl05_owner;
DO $$
BEGIN
	PERFORM consent_ledger.protect('public.' || t, 'subject')
	   FROM unnest(ARRAY['cl05_text', 'cl05_int', 'cl05_big', 'cl05_uuid', 'cl05_vc', 'cl05_small', 'cl05_char',
						 'cl05_dom', 'cl05_multi', 'cl05_phantom']) t;
	PERFORM consent_ledger.create_purpose_view('public.cl05_text', 'cl05_analytics.ads', 'public.cl05_v_ads');
	PERFORM consent_ledger.create_purpose_view('public.cl05_text', 'cl05_billing', 'public.cl05_v_billing');
	PERFORM consent_ledger.create_purpose_view('public.cl05_int', 'cl05_analytics', 'public.cl05_v_int');
	PERFORM consent_ledger.create_purpose_view('public.cl05_multi', 'cl05_q' || g, 'public.cl05_vq' || g)
	   FROM generate_series(1, 5) g;
END $$;
GRANT SELECT ON public.cl05_v_ads, public.cl05_v_billing, public.cl05_v_int, public.cl05_vq1, public.cl05_vq2,
	public.cl05_vq3, public.cl05_vq4, public.cl05_vq5 TO cl05_viewer;
RESET ROLE;

-- consent events (the latest event decides, so a second run re-establishes the same state)
DO $$
BEGIN
	-- text subjects across the hierarchy cl05_analytics > .ads > .ads.rt
	PERFORM consent_ledger.grant_consent('s1', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('s2', 'cl05_analytics.ads');
	PERFORM consent_ledger.grant_consent('s3', 'cl05_analytics.ads.rt');
	PERFORM consent_ledger.grant_consent('s4', 'cl05_analytics');
	PERFORM consent_ledger.withdraw_consent('s4', 'cl05_analytics.ads');
	PERFORM consent_ledger.grant_consent('s5', 'cl05_analytics');
	PERFORM consent_ledger.withdraw_consent('s5', 'cl05_analytics');
	PERFORM consent_ledger.withdraw_consent('s6', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('s6', 'cl05_analytics.ads.rt');
	PERFORM consent_ledger.grant_consent('s7', 'cl05_analytics', clock_timestamp() + interval '1 second');
	PERFORM consent_ledger.grant_consent('s8', 'cl05_analytics', clock_timestamp() + interval '1 hour');
	PERFORM consent_ledger.grant_consent('s9', 'cl05_research');
	-- integers: overloads and text; '03' is not the text form of 3
	PERFORM consent_ledger.grant_consent(1, 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('2', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('03', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent(-3, 'cl05_analytics');
	PERFORM consent_ledger.grant_consent(0, 'cl05_analytics');
	PERFORM consent_ledger.grant_consent(4, 'cl05_analytics');
	PERFORM consent_ledger.withdraw_consent(4::bigint, 'cl05_analytics');
	PERFORM consent_ledger.grant_consent(9223372036854775807, 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('-9223372036854775808', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent(42, 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('9007199254740993', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent(7, 'cl05_analytics');
	-- uuids: the overload (any case) and lower-case text match; upper-case text does not
	PERFORM consent_ledger.grant_consent('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A13', 'cl05_analytics');
	-- varchar and char(n)
	PERFORM consent_ledger.grant_consent('v1', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('v3', 'cl05_analytics');
	PERFORM consent_ledger.withdraw_consent('v3', 'cl05_analytics');
	PERFORM consent_ledger.grant_consent('c1', 'cl05_analytics');
	-- subject k of cl05_multi consents to cl05_q((k - 1) % 5 + 1) only
	PERFORM consent_ledger.grant_consent(g::bigint, 'cl05_q' || ((g - 1) % 5 + 1)) FROM generate_series(1, 10) g;
	-- s7's grant expires: wait until its expiry has passed (no margin that a
	-- loaded machine could eat up)
	WHILE clock_timestamp() <= (SELECT max(expires_at) FROM consent_ledger.consent_events WHERE subject = 's7') LOOP
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;

-- ---------------------------------------------------------------------
-- The tests
-- ---------------------------------------------------------------------
BEGIN;
SELECT plan(131);

-- helpers
CREATE TEMP TABLE cl05_seen (subject text);
GRANT INSERT, SELECT ON cl05_seen TO PUBLIC;
CREATE FUNCTION pg_temp.explain(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	l text;
	o text := '';
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		o := o || l || E'\n';
	END LOOP;
	RETURN o;
END $$;
-- runs statements and a query, then undoes the statements: returns the
-- query's result, or 'refused <SQLSTATE>' if a statement was refused
CREATE FUNCTION pg_temp.try_then_undo(stmts text[], q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	s text;
	r text;
BEGIN
	BEGIN
		FOREACH s IN ARRAY stmts LOOP
			EXECUTE s;
		END LOOP;
		EXECUTE q INTO r;
		RAISE SQLSTATE 'CLUND';
	EXCEPTION
		WHEN SQLSTATE 'CLUND' THEN
			RETURN r;
		WHEN OTHERS THEN
			RETURN 'refused ' || SQLSTATE;
	END;
END $$;
-- what has_consent() says, per purpose, for the rows of cl05_text (read as
-- the superuser, who bypasses row-level security)
CREATE TEMP TABLE cl05_expected AS
	SELECT p.purpose, t.id FROM public.cl05_text t,
		   (VALUES ('cl05_analytics'), ('cl05_analytics.ads'), ('cl05_analytics.ads.rt'), ('cl05_research')) p(purpose)
	 WHERE t.subject IS NOT NULL AND consent_ledger.has_consent(t.subject, p.purpose, clock_timestamp());
GRANT SELECT ON cl05_expected TO PUBLIC;
-- the first argument of the purpose view's check, as the view passes it
CREATE TEMP TABLE cl05_view_arg AS
	SELECT substring(pg_get_viewdef('public.cl05_v_ads'::regclass) FROM 'consent_ledger\.view_allows\(([^,]+),') AS arg;
GRANT SELECT ON cl05_view_arg TO PUBLIC;

-- ---------------------------------------------------------------------
-- Uncommitted changes of this transaction.  These come first: they are
-- about the policy cache's first load in this backend.
-- ---------------------------------------------------------------------
-- an authorization that is rolled back never comes into force, even in the
-- backend whose cache was first loaded while it was uncommitted
SAVEPOINT cl05_auth;
DO $$ BEGIN PERFORM consent_ledger.authorize_purpose('cl05_ghost', 'cl05_analytics'); END $$;
SET ROLE cl05_ghost;
DO $$
BEGIN
	SET consent_ledger.purpose = 'cl05_analytics';
EXCEPTION WHEN insufficient_privilege THEN
	NULL;
END $$;
ROLLBACK TO SAVEPOINT cl05_auth;
SET ROLE cl05_ghost;
SELECT throws_ok($$SET consent_ledger.purpose = 'cl05_analytics'$$, '42501', NULL,
	'an authorization rolled back to a savepoint authorizes nothing');
RESET consent_ledger.purpose;
RESET ROLE;

-- consent events: not in force before commit, gone after a rollback
SAVEPOINT cl05_phantom;
DO $$ BEGIN PERFORM consent_ledger.grant_consent('ph1', 'cl05_analytics'); END $$;
SET ROLE cl05_analyst;
SET consent_ledger.purpose = 'cl05_analytics';
SELECT is_empty($$SELECT subject FROM public.cl05_phantom$$,
	'a grant recorded by this transaction is not in force for its own reads before it commits');
RESET consent_ledger.purpose;
RESET ROLE;
ROLLBACK TO SAVEPOINT cl05_phantom;
SET ROLE cl05_analyst;
SET consent_ledger.purpose = 'cl05_analytics';
SELECT is_empty($$SELECT subject FROM public.cl05_phantom$$, '... nor after it was rolled back to a savepoint');
RESET consent_ledger.purpose;
RESET ROLE;

-- ---------------------------------------------------------------------
-- protect(): what it set up
-- ---------------------------------------------------------------------
SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = 'public.cl05_text'::regclass),
	'protect() enables and forces row-level security');
SELECT policies_are('public', 'cl05_text',
	ARRAY['consent_ledger_read', 'consent_ledger_insert', 'consent_ledger_update', 'consent_ledger_delete'],
	'protect() creates the read policy and the three write policies');
SELECT results_eq($$SELECT format('%s.%s', relid::regclass, subject_column) COLLATE "default" FROM consent_ledger.protected
					 WHERE relid::regclass::text LIKE 'cl05%' ORDER BY 1$$,
	ARRAY['cl05_big.subject', 'cl05_char.subject', 'cl05_dom.subject', 'cl05_int.subject', 'cl05_multi.subject',
		  'cl05_phantom.subject', 'cl05_small.subject', 'cl05_text.subject', 'cl05_uuid.subject', 'cl05_vc.subject'],
	'the protected tables are registered with their subject columns');

-- ---------------------------------------------------------------------
-- Exactly the consented rows, per purpose (hierarchy three levels deep)
-- ---------------------------------------------------------------------
SET ROLE cl05_analyst;
SELECT throws_ok($$SELECT count(*) FROM public.cl05_text$$, '42501', NULL,
	'no purpose declared: reading a protected table is an error');
SELECT lives_ok($$SET consent_ledger.purpose = 'cl05_analytics'$$, 'the analyst declares the purpose it was authorized for');
SELECT results_eq($$SELECT id, subject FROM public.cl05_text ORDER BY id$$,
	$$VALUES (1, 's1'), (4, 's4'), (8, 's8'), (12, 's1')$$,
	'cl05_analytics: s1, s4 (its withdrawal of the child does not matter here) and s8 (not yet expired); '
	'not s2/s3 (child grants only), s5 (withdrawn), s6, s7 (expired), s9 (another purpose), nobody, NULL');
SELECT results_eq($$SELECT id FROM public.cl05_text ORDER BY id$$,
	$$SELECT id FROM cl05_expected WHERE purpose = 'cl05_analytics' ORDER BY id$$,
	'... exactly the rows has_consent() allows');
SELECT lives_ok($$SET consent_ledger.purpose = 'cl05_analytics.ads'$$, 'authorization of the top purpose covers its child');
SELECT results_eq($$SELECT id, subject FROM public.cl05_text ORDER BY id$$,
	$$VALUES (1, 's1'), (2, 's2'), (8, 's8'), (12, 's1')$$,
	'cl05_analytics.ads: the parent''s grants and the child''s own; not s4, who withdrew the child');
SELECT results_eq($$SELECT id FROM public.cl05_text ORDER BY id$$,
	$$SELECT id FROM cl05_expected WHERE purpose = 'cl05_analytics.ads' ORDER BY id$$,
	'... exactly the rows has_consent() allows');
SELECT lives_ok($$SET consent_ledger.purpose = 'cl05_analytics.ads.rt'$$, '... and its grandchild');
SELECT results_eq($$SELECT id, subject FROM public.cl05_text ORDER BY id$$,
	$$VALUES (1, 's1'), (2, 's2'), (3, 's3'), (6, 's6'), (8, 's8'), (12, 's1')$$,
	'cl05_analytics.ads.rt: also s3 and s6 (granted after withdrawing the top purpose)');
SELECT results_eq($$SELECT id FROM public.cl05_text ORDER BY id$$,
	$$SELECT id FROM cl05_expected WHERE purpose = 'cl05_analytics.ads.rt' ORDER BY id$$,
	'... exactly the rows has_consent() allows');
SELECT throws_ok($$SET consent_ledger.purpose = 'cl05_research'$$, '42501', NULL, 'a purpose the analyst was not authorized for: 42501');
SELECT throws_ok($$SET consent_ledger.purpose = 'cl05_billing'$$, '42501', NULL, '... also one that needs no consent: 42501');
SELECT throws_ok($$SELECT set_config('consent_ledger.purpose', 'cl05_research', false)$$, '42501', NULL,
	'set_config() is checked the same way');
SELECT throws_ok($$SET consent_ledger.purpose = 'cl05_nope'$$, '42501', NULL, 'an undefined purpose: 42501');
SELECT throws_ok($$SELECT set_config('consent_ledger.purpose', 'c' || repeat('x', 63), false)$$, '22023', NULL,
	'a purpose name longer than 63 bytes: 22023');
SELECT is(current_setting('consent_ledger.purpose'), 'cl05_analytics.ads.rt', 'a refused SET leaves the declared purpose as it was');

-- ---------------------------------------------------------------------
-- Subject types
-- ---------------------------------------------------------------------
SET consent_ledger.purpose = 'cl05_analytics';
SELECT results_eq($$SELECT subject FROM public.cl05_int ORDER BY subject$$, ARRAY[-3, 0, 1, 2],
	'integer subjects: granted by the integer overload or as their text form; "03" is not 3; 4 withdrew');
SELECT results_eq($$SELECT subject FROM public.cl05_big ORDER BY subject$$,
	ARRAY[-9223372036854775808, 42, 9007199254740993, 9223372036854775807]::bigint[],
	'bigint subjects, the extremes and 2^53 + 1 included');
SELECT results_eq($$SELECT subject FROM public.cl05_uuid ORDER BY subject$$,
	ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12']::uuid[],
	'uuid subjects: granted through the uuid overload (upper-case input) or as lower-case text; not as upper-case text');
SELECT results_eq($$SELECT subject FROM public.cl05_vc ORDER BY subject$$, ARRAY['v1']::varchar[],
	'varchar subjects: v1; not v2 (no event) nor v3 (withdrawn)');
SELECT results_eq($$SELECT subject FROM public.cl05_small ORDER BY subject$$, ARRAY[7]::smallint[], 'smallint subjects');
SELECT results_eq($$SELECT subject FROM public.cl05_char ORDER BY subject$$, ARRAY['c1']::char(4)[],
	'char(n) subjects, compared without their padding');
SELECT results_eq($$SELECT subject::text FROM public.cl05_dom ORDER BY subject$$, ARRAY['s1'],
	'subjects of a domain over text');
SELECT is_empty($$SELECT 1 FROM public.cl05_text WHERE subject IS NULL
				  UNION ALL SELECT 1 FROM public.cl05_int WHERE subject IS NULL
				  UNION ALL SELECT 1 FROM public.cl05_uuid WHERE subject IS NULL$$,
	'NULL subjects are never shown');
SELECT is((SELECT count(*) FROM public.cl05_text WHERE subject IN ('s2', 's3', 's5', 's6', 's7', 's9', 'nobody')), 0::bigint,
	'a WHERE clause naming hidden subjects finds nothing');
SELECT is((SELECT count(*) FROM public.cl05_int WHERE 1 / (subject - 5) > -100 AND 1 / (subject - 4) > -100), 4::bigint,
	'a division by zero on a hidden row (4, 5) never happens');

-- ---------------------------------------------------------------------
-- Leaky functions never observe hidden rows
-- ---------------------------------------------------------------------
SELECT is((SELECT count(*) FROM public.cl05_text WHERE public.cl05_leak(subject)), 4::bigint,
	'a cheap leaky function in the WHERE clause');
SELECT is((SELECT count(*) FROM public.cl05_text WHERE public.cl05_leak(subject) AND subject IN ('s2', 's5', 'nobody')), 0::bigint,
	'... combined with a condition on hidden subjects');
SELECT is((SELECT count(*) FROM public.cl05_int WHERE public.cl05_leak('int:' || subject)), 4::bigint,
	'... on an integer subject');
SELECT is((SELECT count(*) FROM public.cl05_text a JOIN (VALUES ('s2'), ('s9'), ('s1')) v(s) ON public.cl05_leak(a.subject) AND a.subject = v.s),
	2::bigint, '... in a join condition');
SELECT set_eq($$SELECT DISTINCT subject FROM cl05_seen$$, ARRAY['s1', 's4', 's8', 'int:-3', 'int:0', 'int:1', 'int:2'],
	'the leaky function saw consented subjects only');
RESET consent_ledger.purpose;

-- ---------------------------------------------------------------------
-- EXPLAIN
-- ---------------------------------------------------------------------
SELECT lives_ok($$EXPLAIN SELECT * FROM public.cl05_text$$, 'EXPLAIN without a purpose declared works (nothing is read)');
SELECT throws_ok($$EXPLAIN ANALYZE SELECT * FROM public.cl05_text$$, '42501', NULL,
	'EXPLAIN ANALYZE without a purpose declared reads, and is refused');
SET consent_ledger.purpose = 'cl05_analytics';
SELECT throws_ok($$EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM public.cl05_text WHERE public.cl05_leak(subject)$$,
	'42501', NULL, 'EXPLAIN ANALYZE with a purpose is refused too (its row counts would count hidden rows)');
SELECT matches(pg_temp.explain('SELECT * FROM public.cl05_text WHERE public.cl05_leak(subject)'),
	'Filter: \(consent_ledger\.allowed\(subject\) AND (public\.)?cl05_leak\(subject\)\)',
	'EXPLAIN shows the consent check evaluated before the leaky function');
SELECT matches(pg_temp.explain('SELECT * FROM public.cl05_int'), 'consent_ledger\.allowed\(subject\)',
	'EXPLAIN of an integer-subject table shows the consent check');
SELECT set_eq($$SELECT DISTINCT subject FROM cl05_seen$$, ARRAY['s1', 's4', 's8', 'int:-3', 'int:0', 'int:1', 'int:2'],
	'EXPLAIN ANALYZE fed the leaky function consented subjects only');

-- the check is repeated at use, for the role current then
RESET ROLE;
SET ROLE cl05_ads;
SELECT throws_ok($$SELECT count(*) FROM public.cl05_text$$, '42501', NULL,
	'a purpose declared by another role is checked again at use: cl05_ads may not read for cl05_analytics');
SELECT throws_ok($$SET consent_ledger.purpose = 'cl05_analytics'$$, '42501', NULL,
	'authorization of the child does not cover the parent');
SELECT lives_ok($$SET consent_ledger.purpose = 'cl05_analytics.ads.rt'$$, 'authorization of the child covers the grandchild');
SELECT lives_ok($$SET consent_ledger.purpose = 'cl05_analytics.ads'$$, 'cl05_ads declares its purpose');
SELECT results_eq($$SELECT id FROM public.cl05_text ORDER BY id$$,
	$$SELECT id FROM cl05_expected WHERE purpose = 'cl05_analytics.ads' ORDER BY id$$,
	'cl05_ads sees exactly the rows of cl05_analytics.ads');
RESET consent_ledger.purpose;
RESET ROLE;

-- authorization through role membership, and revoked
SET ROLE cl05_member;
SELECT lives_ok($$SET consent_ledger.purpose = 'cl05_research'$$, 'a member of an authorized role may declare its purpose');
SELECT results_eq($$SELECT id, subject FROM public.cl05_text ORDER BY id$$, $$VALUES (9, 's9')$$,
	'... and sees the subjects that consented to it');
SELECT results_eq($$SELECT id FROM public.cl05_text ORDER BY id$$,
	$$SELECT id FROM cl05_expected WHERE purpose = 'cl05_research' ORDER BY id$$,
	'... exactly the rows has_consent() allows');
RESET consent_ledger.purpose;
RESET ROLE;
SET ROLE cl05_noinherit;
SELECT throws_ok($$SET consent_ledger.purpose = 'cl05_research'$$, '42501', NULL,
	'a NOINHERIT member does not inherit the authorization');
RESET ROLE;
SET ROLE cl05_revoked;
SELECT throws_ok($$SET consent_ledger.purpose = 'cl05_analytics'$$, '42501', NULL, 'a revoked authorization authorizes nothing');
RESET ROLE;
SET ROLE cl05_viewer;
SELECT throws_ok($$SET consent_ledger.purpose = 'cl05_analytics'$$, '42501', NULL, 'a role never authorized: 42501');
RESET ROLE;

-- a legal basis other than consent: every row with a subject
SET ROLE cl05_biller;
SELECT lives_ok($$SET consent_ledger.purpose = 'cl05_billing'$$, 'cl05_biller declares the contract purpose');
SELECT results_eq($$SELECT id FROM public.cl05_text ORDER BY id$$, ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12],
	'a purpose whose legal basis is not consent shows every row with a subject, consented or not');
SELECT results_eq($$SELECT subject FROM public.cl05_int ORDER BY subject$$, ARRAY[-3, 0, 1, 2, 3, 4, 5],
	'... of every subject type');
SELECT is_empty($$SELECT id FROM public.cl05_text WHERE subject IS NULL$$, '... but never a row without a subject');
RESET consent_ledger.purpose;
RESET ROLE;

-- ---------------------------------------------------------------------
-- Purpose views
-- ---------------------------------------------------------------------
SELECT is((SELECT relowner FROM pg_catalog.pg_class WHERE oid = 'public.cl05_v_ads'::regclass),
		  (SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'consent_ledger'),
	'a purpose view belongs to the extension''s owner');
SELECT ok((SELECT 'security_barrier=true' = ANY (reloptions) FROM pg_catalog.pg_class WHERE oid = 'public.cl05_v_ads'::regclass),
	'... and is a security barrier');
SELECT ok(has_table_privilege('cl05_owner', 'public.cl05_v_ads', 'SELECT WITH GRANT OPTION'),
	'its creator may read it and grant it');
SELECT results_eq($$SELECT view::text, relid::text, purpose FROM consent_ledger.purpose_views
					 WHERE view::text LIKE 'cl05_v\_%' ORDER BY 1$$,
	$$VALUES ('cl05_v_ads', 'cl05_text', 'cl05_analytics.ads'), ('cl05_v_billing', 'cl05_text', 'cl05_billing'),
			 ('cl05_v_int', 'cl05_int', 'cl05_analytics')$$,
	'the purpose views are registered with their table and purpose');
SET ROLE cl05_viewer;
SELECT results_eq($$SELECT id, subject FROM public.cl05_v_ads ORDER BY id$$,
	$$SELECT t.id, t.subject FROM (VALUES (1, 's1'), (2, 's2'), (8, 's8'), (12, 's1')) t(id, subject)$$,
	'a viewer with no purpose declared sees exactly the rows of the view''s purpose');
SELECT results_eq($$SELECT subject FROM public.cl05_v_int ORDER BY subject$$, ARRAY[-3, 0, 1, 2],
	'... also with integer subjects');
SELECT results_eq($$SELECT id FROM public.cl05_v_billing ORDER BY id$$, ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12],
	'a view for a contract purpose shows every row with a subject');
SELECT throws_ok($$SELECT count(*) FROM public.cl05_int$$, '42501', NULL,
	'the viewer reading the protected table itself (which it may SELECT) still needs a purpose');
SELECT is((SELECT count(*) FROM public.cl05_v_ads WHERE public.cl05_leak('view:' || subject)), 4::bigint,
	'a leaky function over the purpose view');
SELECT set_eq($$SELECT DISTINCT subject FROM cl05_seen WHERE subject LIKE 'view:%'$$, ARRAY['view:s1', 'view:s2', 'view:s8'],
	'... saw the view''s consented subjects only');
SELECT lives_ok($$EXPLAIN SELECT * FROM public.cl05_v_ads$$, 'EXPLAIN of a purpose view');
SELECT results_eq($$SELECT subject FROM public.cl05_vq1 ORDER BY subject$$, ARRAY[1, 6]::bigint[],
	'one purpose view of five: its own subjects');
SELECT results_eq($$SELECT subject FROM public.cl05_vq5 ORDER BY subject$$, ARRAY[5, 10]::bigint[],
	'another: its own subjects');
SELECT is((SELECT array_agg(subject ORDER BY subject)
			 FROM (SELECT a.subject,
						  (SELECT count(*) FROM public.cl05_vq2 b WHERE b.subject = a.subject) AS c2,
						  (SELECT count(*) FROM public.cl05_vq3 b WHERE b.subject = a.subject) AS c3,
						  (SELECT count(*) FROM public.cl05_vq4 b WHERE b.subject = a.subject) AS c4,
						  (SELECT count(*) FROM public.cl05_vq5 b WHERE b.subject = a.subject) AS c5
					 FROM public.cl05_vq1 a OFFSET 0) x
			WHERE c2 + c3 + c4 + c5 = 0),
	ARRAY[1, 6]::bigint[],
	'five purpose views read in one statement: the first still shows its own purpose''s subjects');
RESET ROLE;
SET ROLE cl05_analyst;
SET consent_ledger.purpose = 'cl05_analytics';
SELECT throws_ok($$SELECT count(*) FROM public.cl05_v_ads$$, '42501', NULL,
	'a role not granted the view cannot read it, whatever purpose it declared');
SELECT throws_ok(format('SELECT consent_ledger.view_allows(%s, %L)', (SELECT arg FROM cl05_view_arg), 's1'), '42501', NULL,
	'... nor ask the view''s check directly');
RESET consent_ledger.purpose;
RESET ROLE;

-- ---------------------------------------------------------------------
-- protect() refusals
-- ---------------------------------------------------------------------
SET ROLE cl05_other_admin;
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_unprot', 'subject')$$, '42501', NULL,
	'protect() by an admin who does not own the table: 42501');
RESET ROLE;
SET ROLE cl05_plain_owner;
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_plain_owned', 'subject')$$, '42501', NULL,
	'protect() by the owner without consent_ledger_admin: 42501');
RESET ROLE;
SET ROLE cl05_owner;
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_plainview', 'subject')$$, '42809', NULL, 'protect() of a view: 42809');
-- (1.3: a partitioned table can be protected, with every partition; its column is checked like any table's)
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_parted', 'nope')$$, '42703', NULL,
	'protect() of a partitioned table with an unknown column: 42703');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_part', 'subject')$$, '42809', NULL, 'protect() of a partition: 42809');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_mv', 'subject')$$, '42809', NULL,
	'protect() of a materialized view: 42809');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_unprot', 'nope')$$, '42703', NULL, 'protect() with an unknown column: 42703');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_types', 'n')$$, '42804', NULL, 'a numeric subject column: 42804');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_types', 'd')$$, '42804', NULL, 'a date subject column: 42804');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_types', 'j')$$, '42804', NULL, 'a jsonb subject column: 42804');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_text', 'subject')$$, '42710', NULL, 'protect() twice: 42710');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl05_text', 'id')$$, '42710', NULL,
	'protect() twice, with another column: 42710');
RESET ROLE;
SELECT is_empty($$SELECT relname FROM pg_catalog.pg_class
				   WHERE relname IN ('cl05_unprot', 'cl05_types', 'cl05_plain_owned', 'cl05_parted', 'cl05_part')
					 AND (relrowsecurity OR relforcerowsecurity
						  OR oid IN (SELECT relid FROM consent_ledger.protected)
						  OR oid IN (SELECT polrelid FROM pg_catalog.pg_policy))$$,
	'the refused protect() calls changed nothing');

-- ---------------------------------------------------------------------
-- create_purpose_view() refusals
-- ---------------------------------------------------------------------
SET ROLE cl05_owner;
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl05_unprot', 'cl05_analytics', 'public.cl05_v_x')$$, '55000', NULL,
	'a purpose view of an unprotected table: 55000');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl05_text', 'cl05_nope', 'public.cl05_v_x')$$, '42704', NULL,
	'a purpose view for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl05_text', 'cl05_analytics', 'public.cl05_v_ads')$$, '42P07', NULL,
	'a purpose view whose name is taken: 42P07');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl05_text', 'cl05_analytics', 'cl05_locked.v')$$, '42501', NULL,
	'a purpose view in a schema where the caller may not create: 42501');
RESET ROLE;
SET ROLE cl05_other_admin;
SELECT lives_ok($$SELECT consent_ledger.create_purpose_view('public.cl05_text', 'cl05_analytics', 'public.cl05_v_other')$$,
	'a purpose view by another admin: allowed, admins are members of the custodian that owns protected tables');
RESET ROLE;
SET ROLE cl05_plain_owner;
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl05_plain_owned', 'cl05_analytics', 'public.cl05_v_x')$$, '42501', NULL,
	'a purpose view by a role without consent_ledger_admin: 42501');
RESET ROLE;
SELECT hasnt_relation('public', 'cl05_v_x', 'the refused calls created no view');
SELECT hasnt_relation('cl05_locked', 'v', '... not even in the locked schema');

-- ---------------------------------------------------------------------
-- Guards on a protected table, for its owner and for a superuser
-- ---------------------------------------------------------------------
CREATE TEMP TABLE cl05_guarded (n int, sql text);
GRANT SELECT ON cl05_guarded TO PUBLIC;
INSERT INTO cl05_guarded VALUES
	(1, $$ALTER TABLE public.cl05_text DISABLE ROW LEVEL SECURITY$$),
	(2, $$ALTER TABLE public.cl05_text NO FORCE ROW LEVEL SECURITY$$),
	(3, $$ALTER TABLE public.cl05_text ADD COLUMN note text, DISABLE ROW LEVEL SECURITY$$),
	(4, $$DROP POLICY consent_ledger_read ON public.cl05_text$$),
	(5, $$DROP POLICY IF EXISTS consent_ledger_read ON public.cl05_text$$),
	(6, $$DROP POLICY consent_ledger_insert ON public.cl05_text$$),
	(7, $$DROP POLICY consent_ledger_update ON public.cl05_text$$),
	(8, $$DROP POLICY consent_ledger_delete ON public.cl05_text$$),
	(9, $$ALTER POLICY consent_ledger_read ON public.cl05_text USING (true)$$),
	(10, $$ALTER POLICY consent_ledger_read ON public.cl05_text TO cl05_analyst$$),
	(11, $$ALTER POLICY consent_ledger_read ON public.cl05_text RENAME TO opened$$),
	(12, $$ALTER POLICY consent_ledger_delete ON public.cl05_text USING (false)$$),
	(13, $$CREATE POLICY open_door ON public.cl05_text FOR SELECT USING (true)$$),
	(14, $$CREATE POLICY open_door ON public.cl05_text AS PERMISSIVE FOR ALL USING (true)$$),
	(15, $$CREATE POLICY open_door ON public.cl05_text FOR SELECT TO cl05_analyst USING (true)$$),
	(16, $$CREATE POLICY consent_ledger_read ON public.cl05_text FOR SELECT USING (consent_ledger.allowed(subject))$$),
	(17, $$ALTER TABLE public.cl05_int DISABLE ROW LEVEL SECURITY$$),
	(18, $$DROP POLICY consent_ledger_read ON public.cl05_dom$$);
SET ROLE cl05_owner;
SELECT throws_ok(sql, '42501', NULL, 'refused for the owner: ' || sql) FROM cl05_guarded ORDER BY n;
RESET ROLE;
SELECT throws_ok(sql, '42501', NULL, 'refused for a superuser: ' || sql) FROM cl05_guarded WHERE n IN (1, 2, 4, 9, 13) ORDER BY n;
SELECT policies_are('public', 'cl05_text',
	ARRAY['consent_ledger_read', 'consent_ledger_insert', 'consent_ledger_update', 'consent_ledger_delete'],
	'the consent policies are all still there');
SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = 'public.cl05_text'::regclass),
	'... and row-level security is still enabled and forced');

-- a permissive write policy would let a trigger or RETURNING see hidden
-- rows: refused for every command; a restrictive policy only narrows
SET ROLE cl05_owner;
SELECT throws_ok($$CREATE POLICY more_updates ON public.cl05_text AS PERMISSIVE FOR UPDATE USING (true)$$,
	'42501', NULL, 'a permissive policy for UPDATE is refused, for an admin too');
SELECT throws_ok($$CREATE POLICY more_deletes ON public.cl05_text AS PERMISSIVE FOR DELETE USING (true)$$,
	'42501', NULL, 'a permissive policy for DELETE is refused');
SELECT lives_ok($$CREATE POLICY only_small ON public.cl05_text AS RESTRICTIVE FOR SELECT USING (id < 5)$$,
	'a restrictive policy is allowed');
RESET ROLE;
SET ROLE cl05_analyst;
SET consent_ledger.purpose = 'cl05_analytics';
SELECT results_eq($$SELECT id FROM public.cl05_text ORDER BY id$$, ARRAY[1, 4], '... and narrows what the analyst sees');
RESET consent_ledger.purpose;
RESET ROLE;
SET ROLE cl05_owner;
SELECT lives_ok($$DROP POLICY only_small ON public.cl05_text$$, '... and may be dropped again');
RESET ROLE;

-- the owner, subject to the forced policy, cannot read hidden rows by
-- other routes: inheritance, partitioning, triggers, constraints
SET ROLE cl05_owner;
SELECT throws_ok($$SELECT count(*) FROM public.cl05_text$$, '42501', NULL, 'the owner too needs a purpose to read');
SELECT ok(coalesce(pg_temp.try_then_undo(ARRAY['ALTER TABLE public.cl05_text INHERIT public.cl05_leak_parent'],
		$$SELECT string_agg(subject, ',' ORDER BY subject) FROM public.cl05_leak_parent$$), 'refused') LIKE 'refused%',
	'the owner cannot read the protected rows through an unprotected inheritance parent');
SELECT ok(coalesce(pg_temp.try_then_undo(ARRAY['ALTER TABLE public.cl05_leak_pp ATTACH PARTITION public.cl05_text FOR VALUES FROM (0) TO (1000)'],
		$$SELECT string_agg(subject, ',' ORDER BY subject) FROM public.cl05_leak_pp$$), 'refused') LIKE 'refused%',
	'the owner cannot read the protected rows through an unprotected partitioned table');
SELECT ok(coalesce(pg_temp.try_then_undo(ARRAY[
		$$CREATE FUNCTION public.cl05_grab() RETURNS trigger LANGUAGE plpgsql AS
		  'BEGIN INSERT INTO public.cl05_loot VALUES (OLD.id, OLD.subject); RETURN NULL; END'$$,
		$$CREATE TRIGGER cl05_grab BEFORE DELETE ON public.cl05_text FOR EACH ROW EXECUTE FUNCTION public.cl05_grab()$$,
		$$DELETE FROM public.cl05_text$$],
		$$SELECT string_agg(subject, ',' ORDER BY subject) FROM public.cl05_loot
		   WHERE subject IN ('s2', 's3', 's5', 's6', 's7', 's9', 'nobody')$$), 'nothing') ~ '^(nothing|refused)',
	'a BEFORE DELETE trigger of the owner never receives a hidden row (refused, or no hidden row reaches it)');
SELECT ok(coalesce(pg_temp.try_then_undo(ARRAY[
		$$CREATE FUNCTION public.cl05_grab(text) RETURNS boolean LANGUAGE plpgsql AS
		  'BEGIN INSERT INTO public.cl05_loot VALUES (0, $1); RETURN true; END'$$,
		$$ALTER TABLE public.cl05_text ADD CONSTRAINT cl05_grab CHECK (public.cl05_grab(subject))$$],
		$$SELECT string_agg(subject, ',' ORDER BY subject) FROM public.cl05_loot
		   WHERE subject IN ('s2', 's3', 's5', 's6', 's7', 's9', 'nobody')$$), 'nothing') ~ '^(nothing|refused)',
	'a CHECK constraint of the owner never evaluates a hidden row (refused, or no hidden row reaches it)');
RESET ROLE;
SELECT is_empty($$SELECT * FROM public.cl05_loot$$, 'the attempts left nothing behind');

SELECT * FROM finish();
ROLLBACK;

-- ---------------------------------------------------------------------
-- Committed cleanup (purposes and consent events stay)
-- ---------------------------------------------------------------------
DROP VIEW public.cl05_v_ads, public.cl05_v_billing, public.cl05_v_int, public.cl05_vq1, public.cl05_vq2,
	public.cl05_vq3, public.cl05_vq4, public.cl05_vq5;
DO $$
BEGIN
	PERFORM consent_ledger.unprotect('public.' || t)
	   FROM unnest(ARRAY['cl05_text', 'cl05_int', 'cl05_big', 'cl05_uuid', 'cl05_vc', 'cl05_small', 'cl05_char',
						 'cl05_dom', 'cl05_multi', 'cl05_phantom']) t;
	PERFORM consent_ledger.revoke_purpose(g.role, g.purpose)
	   FROM consent_ledger.purpose_grants g WHERE g.role::text LIKE 'cl05\_%';
END $$;
DROP FUNCTION public.cl05_leak(text);
DROP OWNED BY cl05_owner, cl05_other_admin, cl05_plain_owner, cl05_analyst, cl05_ads, cl05_biller, cl05_viewer,
	cl05_team, cl05_member, cl05_noinherit, cl05_revoked, cl05_ghost;
DROP DOMAIN public.cl05_subject;
DROP SCHEMA cl05_locked;
DROP ROLE cl05_owner, cl05_other_admin, cl05_plain_owner, cl05_analyst, cl05_ads, cl05_biller, cl05_viewer,
	cl05_team, cl05_member, cl05_noinherit, cl05_revoked, cl05_ghost;
