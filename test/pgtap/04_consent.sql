-- The consent registry's SQL API: define_purpose, grant_consent,
-- withdraw_consent, has_consent and the consent_state view.  Exact
-- SQLSTATEs of every refusal; point-in-time answers around a grant, a
-- withdrawal and a re-grant; a three-level purpose hierarchy; expiry;
-- every legal basis; the bigint/integer/uuid subject overloads; and who
-- may do what (recorder, auditor, admin, PUBLIC), including that nobody
-- changes the consent ledger.
--
-- Runs in one transaction that is rolled back (roles, purposes and the
-- consent ledger itself, if this transaction created it, included).
--
-- Moments: has_consent(subject, purpose, at) counts the events recorded
-- at or before "at", and an event's recorded_at is clock_timestamp() when
-- it was recorded.  Inside one transaction that is later than now(), the
-- transaction's start and has_consent's default moment, so a grant made
-- in this transaction is not in force "now" (tested below, as documented
-- behaviour).  Every other question names its moment: clock_timestamp()
-- captured between the calls (pg_temp.mark, with short sleeps around it so
-- moments and recorded_at never coincide).  For the same reason the
-- consent_state view, whose "expired" compares expires_at with now(),
-- cannot show "expired" for a grant made here (grant_consent refuses an
-- expires_at before clock_timestamp()); the isolation spec
-- consent_concurrent_record covers it.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(198);

-- ---------------------------------------------------------------------
-- Helpers: named moments and named event ids
-- ---------------------------------------------------------------------
CREATE TEMP TABLE cl04_moment (m_name text PRIMARY KEY, m_at timestamptz NOT NULL);
CREATE TEMP TABLE cl04_event (e_name text PRIMARY KEY, e_id bigint NOT NULL);
GRANT ALL ON cl04_moment, cl04_event TO PUBLIC;
CREATE FUNCTION pg_temp.mark(label text) RETURNS void LANGUAGE sql AS $$
	SELECT pg_sleep(0.01);
	INSERT INTO cl04_moment VALUES (label, clock_timestamp());
	SELECT pg_sleep(0.01);
$$;
CREATE FUNCTION pg_temp.m(label text) RETURNS timestamptz LANGUAGE sql STABLE AS $$
	SELECT m_at FROM cl04_moment WHERE m_name = label
$$;
CREATE FUNCTION pg_temp.ev(label text) RETURNS bigint LANGUAGE sql STABLE AS $$
	SELECT e_id FROM cl04_event WHERE e_name = label
$$;
-- (PL/pgSQL: the consent ledger may not exist before the first grant below)
CREATE FUNCTION pg_temp.recorded(label text) RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (SELECT e.recorded_at FROM consent_ledger.consent_events e, cl04_event n
			 WHERE n.e_name = label AND e.event_id = n.e_id);
END
$$;
-- has_consent for a purpose and its two descendants at one moment
CREATE FUNCTION pg_temp.chain(subject text, at timestamptz) RETURNS boolean[] LANGUAGE sql STABLE AS $$
	SELECT ARRAY[consent_ledger.has_consent(subject, 'cl04_p', at),
				 consent_ledger.has_consent(subject, 'cl04_p.c', at),
				 consent_ledger.has_consent(subject, 'cl04_p.c.g', at)]
$$;

-- ---------------------------------------------------------------------
-- Signatures
-- ---------------------------------------------------------------------
SELECT is(pg_get_function_arguments('consent_ledger.define_purpose(text, text, text, text, boolean)'::regprocedure),
	'purpose text, description text DEFAULT NULL::text, legal_basis text DEFAULT ''consent''::text, parent text DEFAULT NULL::text, require_subject_signature boolean DEFAULT false',
	'define_purpose(purpose, description, legal_basis DEFAULT consent, parent, require_subject_signature DEFAULT false)');
SELECT is(pg_get_function_arguments('consent_ledger.grant_consent(text, text, timestamptz, jsonb)'::regprocedure),
	'subject text, purpose text, expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone, evidence jsonb DEFAULT NULL::jsonb',
	'grant_consent(subject, purpose, expires_at, evidence)');
SELECT is(pg_get_function_arguments('consent_ledger.withdraw_consent(text, text, jsonb)'::regprocedure),
	'subject text, purpose text, evidence jsonb DEFAULT NULL::jsonb',
	'withdraw_consent(subject, purpose, evidence)');
SELECT is(pg_get_function_arguments('consent_ledger.has_consent(text, text, timestamptz)'::regprocedure),
	'subject text, purpose text, at timestamp with time zone DEFAULT now()',
	'has_consent(subject, purpose, at DEFAULT now())');
SELECT function_returns('consent_ledger', 'grant_consent', ARRAY['text', 'text', 'timestamp with time zone', 'jsonb'], 'bigint',
	'grant_consent returns the event id (bigint)');
SELECT function_returns('consent_ledger', 'withdraw_consent', ARRAY['text', 'text', 'jsonb'], 'bigint',
	'withdraw_consent returns the event id (bigint)');
SELECT set_eq($$
	SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace AND p.proname IN ('grant_consent', 'withdraw_consent', 'has_consent')
$$, ARRAY['consent_ledger.grant_consent(text,text,timestamp with time zone,jsonb)',
		  'consent_ledger.grant_consent(bigint,text,timestamp with time zone,jsonb)',
		  'consent_ledger.grant_consent(integer,text,timestamp with time zone,jsonb)',
		  'consent_ledger.grant_consent(uuid,text,timestamp with time zone,jsonb)',
		  'consent_ledger.withdraw_consent(text,text,jsonb)',
		  'consent_ledger.withdraw_consent(bigint,text,jsonb)',
		  'consent_ledger.withdraw_consent(integer,text,jsonb)',
		  'consent_ledger.withdraw_consent(uuid,text,jsonb)',
		  'consent_ledger.has_consent(text,text,timestamp with time zone)',
		  'consent_ledger.has_consent(bigint,text,timestamp with time zone)',
		  'consent_ledger.has_consent(integer,text,timestamp with time zone)',
		  'consent_ledger.has_consent(uuid,text,timestamp with time zone)',
		  -- 1.3: the bulk path (README "Recording consent in bulk")
		  'consent_ledger.grant_consent(text[],text,timestamp with time zone,jsonb)',
		  'consent_ledger.withdraw_consent(text[],text,jsonb)'],
	'grant_consent, withdraw_consent and has_consent exist for text, bigint, integer and uuid subjects, and in bulk for text[]');
SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace AND p.proname = 'has_consent'
	   AND (NOT p.proisstrict OR p.provolatile <> 's')
$$, 'every has_consent is STRICT and STABLE');

-- ---------------------------------------------------------------------
-- define_purpose
-- ---------------------------------------------------------------------
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_mkt')$$, 'define_purpose with defaults only');
SELECT results_eq($$SELECT description, legal_basis, parent, defined_at = now() FROM consent_ledger.purposes WHERE purpose = 'cl04_mkt'$$,
	$$VALUES (NULL::text, 'consent'::text, NULL::text, true)$$,
	'... no description, legal basis consent, no parent, defined now()');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_p', 'top', 'consent')$$, 'define a top-level purpose');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_p.c', 'child', parent => 'cl04_p')$$, 'define its child');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_p.c.g', 'grandchild', parent => 'cl04_p.c')$$, 'define a grandchild');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_p.d', 'sibling of the child', parent => 'cl04_p')$$, 'define a sibling of the child');
SELECT results_eq($$SELECT purpose, description, parent FROM consent_ledger.purposes WHERE purpose LIKE 'cl04\_p%' ORDER BY purpose$$,
	$$VALUES ('cl04_p'::text, 'top'::text, NULL::text), ('cl04_p.c', 'child', 'cl04_p'), ('cl04_p.c.g', 'grandchild', 'cl04_p.c'),
			 ('cl04_p.d', 'sibling of the child', 'cl04_p')$$,
	'the hierarchy is stored with its parents');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_A9.b:c-d_e')$$, 'letters, digits, ".", ":", "-" and "_" are allowed in a name');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('c' || repeat('x', 62))$$, 'a 63-character name is allowed');

SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_mkt', 'again')$$, '42710', NULL,
	'defining a purpose twice: 42710');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_p', 'again', 'contract')$$, '42710', NULL,
	'... also with another legal basis (purposes never change): 42710');
SELECT throws_ok($$SELECT consent_ledger.define_purpose(NULL)$$, '22004', NULL, 'a NULL purpose: 22004');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_x', NULL, NULL)$$, '22004', NULL, 'a NULL legal basis: 22004');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_x', NULL, 'because')$$, '22023', NULL, 'an unknown legal basis: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_x', NULL, 'Consent')$$, '22023', NULL, 'legal bases are case-sensitive: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('')$$, '22023', NULL, 'an empty name: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('1abc')$$, '22023', NULL, 'a name starting with a digit: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('_abc')$$, '22023', NULL, 'a name starting with "_": 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('a b')$$, '22023', NULL, 'a name with a space: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('a/b')$$, '22023', NULL, 'a name with "/": 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('caf' || chr(233))$$, '22023', NULL, 'a name with a non-ASCII letter: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('c' || repeat('x', 63))$$, '22023', NULL, 'a 64-character name: 22023');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_x', NULL, 'consent', 'cl04_nope')$$, '42704', NULL,
	'an unknown parent: 42704');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_self', NULL, 'consent', 'cl04_self')$$, '42704', NULL,
	'a purpose cannot be its own parent: 42704');
SELECT is_empty($$SELECT purpose FROM consent_ledger.purposes WHERE purpose IN ('cl04_x', 'cl04_self', '1abc', 'a b')$$,
	'the refused definitions defined nothing');

-- ---------------------------------------------------------------------
-- Recording: the first grant (which creates the consent ledger if this
-- database has none yet), return values, the stored event
-- ---------------------------------------------------------------------
SELECT pg_temp.mark('m0');
INSERT INTO cl04_event SELECT 'e1', consent_ledger.grant_consent('alice', 'cl04_mkt', evidence => '{"form": "signup-v3"}');
SELECT pg_temp.mark('m1');
INSERT INTO cl04_event SELECT 'e2', consent_ledger.withdraw_consent('alice', 'cl04_mkt', '{"channel": "email"}');
SELECT pg_temp.mark('m2');
INSERT INTO cl04_event SELECT 'e3', consent_ledger.grant_consent('alice', 'cl04_mkt');
SELECT pg_temp.mark('m3');

SELECT ok(pg_temp.ev('e1') > 0 AND pg_temp.ev('e1') < pg_temp.ev('e2') AND pg_temp.ev('e2') < pg_temp.ev('e3'),
	'grant_consent and withdraw_consent return increasing event ids');
SELECT results_eq($$
	SELECT e.subject, e.purpose, e.action, e.expires_at, e.evidence, e.recorded_by = session_user
	  FROM consent_ledger.consent_events e WHERE e.event_id IN (pg_temp.ev('e1'), pg_temp.ev('e2'), pg_temp.ev('e3'))
	 ORDER BY e.event_id
$$, $$VALUES ('alice'::text, 'cl04_mkt'::text, 'grant'::text, NULL::timestamptz, '{"form": "signup-v3"}'::jsonb, true),
			 ('alice', 'cl04_mkt', 'withdraw', NULL, '{"channel": "email"}', true),
			 ('alice', 'cl04_mkt', 'grant', NULL, NULL, true)$$,
	'the ledger holds each event with its subject, purpose, action, evidence and recorded_by = session_user');
SELECT ok(pg_temp.recorded('e1') > pg_temp.m('m0') AND pg_temp.recorded('e1') < pg_temp.m('m1')
		  AND pg_temp.recorded('e2') > pg_temp.m('m1') AND pg_temp.recorded('e2') < pg_temp.m('m2')
		  AND pg_temp.recorded('e3') > pg_temp.m('m2') AND pg_temp.recorded('e3') < pg_temp.m('m3'),
	'recorded_at is the clock time of recording');
SELECT ok(EXISTS (SELECT FROM consent_ledger.ledgers WHERE relid = 'consent_ledger.consent_events'::regclass AND retired_at IS NULL),
	'consent_ledger.consent_events is a live ledger table');
SELECT is_empty($$SELECT event_id FROM consent_ledger.consent_events
				   WHERE event_id >= pg_temp.ev('e1') AND (ledger_txn IS NULL OR ledger_ord IS NULL)$$,
	'... and its events are stamped');
SELECT is((SELECT relowner FROM pg_catalog.pg_class WHERE oid = 'consent_ledger.consent_events'::regclass),
		  (SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'consent_ledger'),
	'the consent ledger belongs to the extension''s owner');
SELECT is_empty($$SELECT FROM pg_catalog.pg_depend WHERE classid = 'pg_class'::regclass
				   AND objid IN ('consent_ledger.consent_events'::regclass, 'consent_ledger.consent_state'::regclass)
				   AND deptype = 'e'$$,
	'the consent ledger and consent_state are not extension members (pg_dump dumps them as data)');

-- refusals of grant_consent / withdraw_consent / has_consent
CREATE TEMP TABLE cl04_count AS SELECT count(*) AS n FROM consent_ledger.consent_events;
SELECT throws_ok($$SELECT consent_ledger.grant_consent('alice', 'cl04_nope')$$, '42704', NULL, 'grant for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('alice', 'cl04_nope')$$, '42704', NULL, 'withdraw for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.has_consent('alice', 'cl04_nope', clock_timestamp())$$, '42704', NULL,
	'has_consent for an unknown purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('', 'cl04_mkt')$$, '22004', NULL, 'grant for an empty subject: 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(NULL::text, 'cl04_mkt')$$, '22004', NULL, 'grant for a NULL subject: 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('', 'cl04_mkt')$$, '22004', NULL, 'withdraw for an empty subject: 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent(NULL::text, 'cl04_mkt')$$, '22004', NULL, 'withdraw for a NULL subject: 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('alice', 'cl04_mkt', clock_timestamp() - interval '1 second')$$, '22023', NULL,
	'a grant that expires in the past: 22023');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('alice', 'cl04_mkt', now())$$, '22023', NULL,
	'a grant that expires at now() (the transaction start, already past): 22023');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('alice', NULL)$$, '22004', NULL, 'grant for a NULL purpose: 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('alice', NULL)$$, '22004', NULL, 'withdraw for a NULL purpose: 22004');
SELECT is((SELECT count(*) FROM consent_ledger.consent_events), (SELECT n FROM cl04_count),
	'the refused calls recorded nothing');

-- ---------------------------------------------------------------------
-- Point in time: grant (e1), withdrawal (e2), re-grant (e3)
-- ---------------------------------------------------------------------
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.m('m0')), false, 'before the grant: no consent');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.m('m1')), true, 'after the grant: consent');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.m('m2')), false, 'after the withdrawal: no consent');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.m('m3')), true, 'after the re-grant: consent');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', clock_timestamp()), true, '... and still at clock_timestamp()');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.recorded('e1')), true,
	'at exactly the grant''s recorded_at: consent (events at or before "at" count)');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.recorded('e1') - interval '1 microsecond'), false,
	'one microsecond before the grant: no consent');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.recorded('e2')), false,
	'at exactly the withdrawal''s recorded_at: no consent');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.recorded('e2') - interval '1 microsecond'), true,
	'one microsecond before the withdrawal: consent');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', pg_temp.m('m0') - interval '1 year'), false, 'a year before anything: no consent');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', 'infinity'), true, 'at infinity: the latest event counts');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt'), false,
	'the default moment is now(), the transaction start: events recorded later in this transaction do not count yet');
SELECT is(consent_ledger.has_consent('Alice', 'cl04_mkt', clock_timestamp()), false, 'subjects are case-sensitive');
SELECT is(consent_ledger.has_consent('alice ', 'cl04_mkt', clock_timestamp()), false, 'subjects are compared exactly (trailing space)');
SELECT is(consent_ledger.has_consent('bob', 'cl04_mkt', clock_timestamp()), false, 'a subject without events has no consent');
SELECT is(consent_ledger.has_consent(NULL::text, 'cl04_mkt', clock_timestamp()), NULL, 'has_consent(NULL subject) is NULL (STRICT)');
SELECT is(consent_ledger.has_consent('alice', NULL, clock_timestamp()), NULL, 'has_consent(NULL purpose) is NULL (STRICT)');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', NULL), NULL, 'has_consent(NULL moment) is NULL (STRICT)');

-- ---------------------------------------------------------------------
-- Hierarchy, three levels: cl04_p > cl04_p.c > cl04_p.c.g (and cl04_p.d)
-- answers as [cl04_p, cl04_p.c, cl04_p.c.g]
-- ---------------------------------------------------------------------
SELECT pg_temp.mark('h0');
INSERT INTO cl04_event SELECT 'h_grant_p', consent_ledger.grant_consent('h1', 'cl04_p');
SELECT pg_temp.mark('h1');
INSERT INTO cl04_event SELECT 'h_withdraw_c', consent_ledger.withdraw_consent('h1', 'cl04_p.c');
SELECT pg_temp.mark('h2');
INSERT INTO cl04_event SELECT 'h_grant_g', consent_ledger.grant_consent('h1', 'cl04_p.c.g');
SELECT pg_temp.mark('h3');
INSERT INTO cl04_event SELECT 'h_withdraw_p', consent_ledger.withdraw_consent('h1', 'cl04_p');
SELECT pg_temp.mark('h4');
INSERT INTO cl04_event SELECT 'h_grant_c', consent_ledger.grant_consent('h1', 'cl04_p.c');
SELECT pg_temp.mark('h5');

SELECT is(pg_temp.chain('h1', pg_temp.m('h0')), ARRAY[false, false, false], 'hierarchy: no event, no consent at any level');
SELECT is(pg_temp.chain('h1', pg_temp.m('h1')), ARRAY[true, true, true],
	'a grant of the top purpose covers its child and grandchild');
SELECT is(pg_temp.chain('h1', pg_temp.m('h2')), ARRAY[true, false, false],
	'withdrawing the child revokes the child and the grandchild, not the top');
SELECT is(consent_ledger.has_consent('h1', 'cl04_p.d', pg_temp.m('h2')), true,
	'... nor a sibling of the child, still covered by the top grant');
SELECT is(pg_temp.chain('h1', pg_temp.m('h3')), ARRAY[true, false, true],
	'a grant of the grandchild after the child''s withdrawal covers the grandchild only');
SELECT is(pg_temp.chain('h1', pg_temp.m('h4')), ARRAY[false, false, false],
	'withdrawing the top purpose revokes every level, the grandchild''s own earlier grant included');
SELECT is(consent_ledger.has_consent('h1', 'cl04_p.d', pg_temp.m('h4')), false, '... and the sibling');
SELECT is(pg_temp.chain('h1', pg_temp.m('h5')), ARRAY[false, true, true],
	'a grant of the child after the top''s withdrawal covers the child and the grandchild, never the top');
SELECT is(consent_ledger.has_consent('h1', 'cl04_p.d', pg_temp.m('h5')), false, '... nor the child''s sibling');
SELECT is(pg_temp.chain('h2', pg_temp.m('h5')), ARRAY[false, false, false], 'another subject is unaffected');

-- ---------------------------------------------------------------------
-- Expiry
-- ---------------------------------------------------------------------
CREATE TEMP TABLE cl04_exp AS SELECT date_trunc('second', clock_timestamp()) + interval '1 hour' AS at;
INSERT INTO cl04_event SELECT 'x_grant', consent_ledger.grant_consent('x1', 'cl04_mkt', (SELECT at FROM cl04_exp));
SELECT pg_temp.mark('x1');
SELECT is(consent_ledger.has_consent('x1', 'cl04_mkt', pg_temp.m('x1')), true, 'a grant with an expiry counts after it is recorded');
SELECT is(consent_ledger.has_consent('x1', 'cl04_mkt', (SELECT at FROM cl04_exp) - interval '1 microsecond'), true,
	'... until just before expires_at');
SELECT is(consent_ledger.has_consent('x1', 'cl04_mkt', (SELECT at FROM cl04_exp)), false, '... not at expires_at');
SELECT is(consent_ledger.has_consent('x1', 'cl04_mkt', (SELECT at FROM cl04_exp) + interval '1 day'), false, '... nor after it');
SELECT is(consent_ledger.has_consent('x1', 'cl04_p.c', (SELECT at FROM cl04_exp) - interval '1 minute'), false,
	'a grant of one purpose does not cover an unrelated one');
INSERT INTO cl04_event SELECT 'x_regrant', consent_ledger.grant_consent('x1', 'cl04_mkt');
SELECT is(consent_ledger.has_consent('x1', 'cl04_mkt', (SELECT at FROM cl04_exp) + interval '1 day'), true,
	'a re-grant without expiry replaces the earlier expiry');
SELECT is(consent_ledger.has_consent('x1', 'cl04_mkt', pg_temp.m('x1')), true,
	'... and before the re-grant the first grant still answers');
INSERT INTO cl04_event SELECT 'x_regrant_exp', consent_ledger.grant_consent('x1', 'cl04_mkt', (SELECT at FROM cl04_exp) - interval '30 minutes');
SELECT is(consent_ledger.has_consent('x1', 'cl04_mkt', (SELECT at FROM cl04_exp) - interval '10 minutes'), false,
	'a later grant with an earlier expiry replaces an unlimited one');
-- an expired grant of the child does not hide the parent's grant
INSERT INTO cl04_event SELECT 'x2_p', consent_ledger.grant_consent('x2', 'cl04_p');
INSERT INTO cl04_event SELECT 'x2_c', consent_ledger.grant_consent('x2', 'cl04_p.c', (SELECT at FROM cl04_exp));
SELECT is(pg_temp.chain('x2', (SELECT at FROM cl04_exp) + interval '1 day'), ARRAY[true, true, true],
	'after a child grant expires the parent''s unlimited grant still covers the child');
-- an expired grant of the parent no longer covers the children
INSERT INTO cl04_event SELECT 'x3_p', consent_ledger.grant_consent('x3', 'cl04_p', (SELECT at FROM cl04_exp));
SELECT is(pg_temp.chain('x3', (SELECT at FROM cl04_exp) - interval '1 second'), ARRAY[true, true, true],
	'a parent grant with an expiry covers the children until it expires');
SELECT is(pg_temp.chain('x3', (SELECT at FROM cl04_exp)), ARRAY[false, false, false], '... and none of them after');

-- ---------------------------------------------------------------------
-- Legal bases (GDPR Art. 6(1)): only "consent" needs consent
-- ---------------------------------------------------------------------
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_lb_' || b, 'basis ' || b, b)
				  FROM unnest(ARRAY['consent', 'contract', 'legal_obligation', 'vital_interests',
									'public_task', 'legitimate_interests']) b$$,
	'a purpose can be defined with each of the six legal bases');
SELECT results_eq($$SELECT purpose, legal_basis FROM consent_ledger.purposes WHERE purpose LIKE 'cl04\_lb\_%' ORDER BY purpose$$,
	$$VALUES ('cl04_lb_consent'::text, 'consent'::text), ('cl04_lb_contract', 'contract'),
			 ('cl04_lb_legal_obligation', 'legal_obligation'), ('cl04_lb_legitimate_interests', 'legitimate_interests'),
			 ('cl04_lb_public_task', 'public_task'), ('cl04_lb_vital_interests', 'vital_interests')$$,
	'... and the basis is stored');
SELECT results_eq($$SELECT purpose, consent_ledger.has_consent('nobody', purpose, clock_timestamp())
					 FROM consent_ledger.purposes WHERE purpose LIKE 'cl04\_lb\_%' ORDER BY purpose$$,
	$$VALUES ('cl04_lb_consent'::text, false), ('cl04_lb_contract', true), ('cl04_lb_legal_obligation', true),
			 ('cl04_lb_legitimate_interests', true), ('cl04_lb_public_task', true), ('cl04_lb_vital_interests', true)$$,
	'without any event: only the consent basis says no');
SELECT lives_ok($$SELECT consent_ledger.withdraw_consent('w1', 'cl04_lb_' || b)
				  FROM unnest(ARRAY['consent', 'contract', 'legal_obligation', 'vital_interests',
									'public_task', 'legitimate_interests']) b$$,
	'a withdrawal can be recorded for every basis');
SELECT results_eq($$SELECT purpose, consent_ledger.has_consent('w1', purpose, clock_timestamp()),
						   consent_ledger.has_consent('w1', purpose, '-infinity')
					 FROM consent_ledger.purposes WHERE purpose LIKE 'cl04\_lb\_%' ORDER BY purpose$$,
	$$VALUES ('cl04_lb_consent'::text, false, false), ('cl04_lb_contract', true, true), ('cl04_lb_legal_obligation', true, true),
			 ('cl04_lb_legitimate_interests', true, true), ('cl04_lb_public_task', true, true), ('cl04_lb_vital_interests', true, true)$$,
	'a withdrawal changes nothing for the other bases, at any moment');
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_lb_contract.c', NULL, 'consent', 'cl04_lb_contract'),
						 consent_ledger.define_purpose('cl04_lb_consent.c', NULL, 'contract', 'cl04_lb_consent')$$,
	'children with another basis than their parent');
SELECT is(consent_ledger.has_consent('nobody', 'cl04_lb_contract.c', clock_timestamp()), false,
	'a consent-based child of a contract purpose needs consent');
SELECT is(consent_ledger.has_consent('nobody', 'cl04_lb_consent.c', clock_timestamp()), true,
	'a contract child of a consent purpose needs none');

-- ---------------------------------------------------------------------
-- Subject overloads: bigint, integer and uuid subjects are their text form
-- ---------------------------------------------------------------------
SELECT ok(consent_ledger.grant_consent(42::bigint, 'cl04_mkt') > pg_temp.ev('e3'), 'grant_consent(bigint) returns an event id');
SELECT ok(consent_ledger.grant_consent(7, 'cl04_mkt') > pg_temp.ev('e3'), 'grant_consent(integer) returns an event id');
SELECT ok(consent_ledger.grant_consent(-5, 'cl04_mkt', NULL, '{"k": 1}') > pg_temp.ev('e3'), 'grant_consent(integer) with a negative subject');
SELECT ok(consent_ledger.grant_consent(9223372036854775807, 'cl04_mkt') > pg_temp.ev('e3'), 'grant_consent(bigint) with the largest bigint');
SELECT ok(consent_ledger.grant_consent('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, 'cl04_mkt') > pg_temp.ev('e3'),
	'grant_consent(uuid) returns an event id');
SELECT ok(consent_ledger.grant_consent('B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'cl04_mkt') > pg_temp.ev('e3'),
	'grant_consent(text) of an upper-case uuid text');
SELECT pg_temp.mark('o1');
SELECT results_eq($$SELECT subject, evidence FROM consent_ledger.consent_events
					 WHERE event_id > pg_temp.ev('e3') AND purpose = 'cl04_mkt' AND subject NOT LIKE 'x%' ORDER BY event_id$$,
	$$VALUES ('42'::text, NULL::jsonb), ('7', NULL), ('-5', '{"k": 1}'), ('9223372036854775807', NULL),
			 ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL), ('B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', NULL)$$,
	'the overloads record the subject''s text form (uuid in lower case)');
SELECT is(ARRAY[consent_ledger.has_consent('42', 'cl04_mkt', pg_temp.m('o1')),
				consent_ledger.has_consent(42::bigint, 'cl04_mkt', pg_temp.m('o1')),
				consent_ledger.has_consent(42, 'cl04_mkt', pg_temp.m('o1'))],
	ARRAY[true, true, true], 'a bigint grant answers for text, bigint and integer');
SELECT is(ARRAY[consent_ledger.has_consent('7', 'cl04_mkt', pg_temp.m('o1')),
				consent_ledger.has_consent(7::bigint, 'cl04_mkt', pg_temp.m('o1')),
				consent_ledger.has_consent(7, 'cl04_mkt', pg_temp.m('o1'))],
	ARRAY[true, true, true], 'an integer grant answers for text, bigint and integer');
SELECT is(ARRAY[consent_ledger.has_consent('042', 'cl04_mkt', pg_temp.m('o1')),
				consent_ledger.has_consent('+42', 'cl04_mkt', pg_temp.m('o1')),
				consent_ledger.has_consent(43, 'cl04_mkt', pg_temp.m('o1'))],
	ARRAY[false, false, false], '"042", "+42" and 43 are other subjects');
SELECT is(consent_ledger.has_consent(-5::bigint, 'cl04_mkt', pg_temp.m('o1')), true, 'a negative integer subject');
SELECT is(consent_ledger.has_consent(9223372036854775807, 'cl04_mkt', pg_temp.m('o1')), true, 'the largest bigint subject');
SELECT is(ARRAY[consent_ledger.has_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'cl04_mkt', pg_temp.m('o1')),
				consent_ledger.has_consent('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, 'cl04_mkt', pg_temp.m('o1')),
				consent_ledger.has_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'cl04_mkt', pg_temp.m('o1'))],
	ARRAY[true, true, true], 'a uuid grant answers for the uuid in any case and for its lower-case text');
SELECT is(consent_ledger.has_consent('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'cl04_mkt', pg_temp.m('o1')), false,
	'... not for its upper-case text, another subject');
SELECT is(consent_ledger.has_consent('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'cl04_mkt', pg_temp.m('o1')), false,
	'a grant recorded for an upper-case uuid text does not answer for the uuid');
SELECT ok(consent_ledger.withdraw_consent(42::bigint, 'cl04_mkt') > 0 AND consent_ledger.withdraw_consent(7, 'cl04_mkt') > 0
		  AND consent_ledger.withdraw_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'cl04_mkt') > 0,
	'withdraw_consent(bigint), (integer) and (uuid) return event ids');
SELECT pg_temp.mark('o2');
SELECT is(ARRAY[consent_ledger.has_consent(42, 'cl04_mkt', pg_temp.m('o2')),
				consent_ledger.has_consent('7', 'cl04_mkt', pg_temp.m('o2')),
				consent_ledger.has_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'cl04_mkt', pg_temp.m('o2')),
				consent_ledger.has_consent(-5, 'cl04_mkt', pg_temp.m('o2'))],
	ARRAY[false, false, false, true], 'the withdrawals through the overloads apply to the same subjects');

-- ---------------------------------------------------------------------
-- consent_state: the latest event per (subject, purpose)
-- ---------------------------------------------------------------------
SELECT columns_are('consent_ledger', 'consent_state',
	ARRAY['subject', 'purpose', 'state', 'since', 'expires_at', 'last_event_id'], 'consent_state columns');
SELECT results_eq($$SELECT purpose, state, since = pg_temp.recorded('e3'), expires_at, last_event_id = pg_temp.ev('e3')
					 FROM consent_ledger.consent_state WHERE subject = 'alice'$$,
	$$VALUES ('cl04_mkt'::text, 'granted'::text, true, NULL::timestamptz, true)$$,
	'alice: granted since the re-grant, which is the last event');
SELECT results_eq($$SELECT purpose, state, last_event_id FROM consent_ledger.consent_state WHERE subject = 'h1' ORDER BY purpose$$,
	$$SELECT * FROM (VALUES ('cl04_p'::text, 'withdrawn'::text, pg_temp.ev('h_withdraw_p')),
							('cl04_p.c', 'granted', pg_temp.ev('h_grant_c')),
							('cl04_p.c.g', 'granted', pg_temp.ev('h_grant_g'))) v$$,
	'h1: one row per purpose with events, its own latest event (no hierarchy applied)');
SELECT results_eq($$SELECT state, expires_at FROM consent_ledger.consent_state WHERE subject = 'x3' AND purpose = 'cl04_p'$$,
	$$SELECT 'granted'::text, at FROM cl04_exp$$,
	'a grant that has not expired is "granted", with its expires_at');
SELECT results_eq($$SELECT state, expires_at FROM consent_ledger.consent_state WHERE subject = 'x1' AND purpose = 'cl04_mkt'$$,
	$$SELECT 'granted'::text, at - interval '30 minutes' FROM cl04_exp$$,
	'the latest grant''s expiry is shown');
SELECT results_eq($$SELECT subject, state FROM consent_ledger.consent_state WHERE purpose = 'cl04_mkt' AND subject IN ('42', '7', '-5') ORDER BY subject$$,
	$$VALUES ('-5'::text, 'granted'::text), ('42', 'withdrawn'), ('7', 'withdrawn')$$,
	'withdrawn and granted subjects of the overloads');
SELECT is_empty($$SELECT FROM consent_ledger.consent_state WHERE subject = 'nobody'$$, 'a subject without events has no row');
SELECT is_empty($$SELECT subject, purpose FROM consent_ledger.consent_state GROUP BY subject, purpose HAVING count(*) > 1$$,
	'one row per (subject, purpose)');
SELECT is_empty($$SELECT s.subject, s.purpose FROM consent_ledger.consent_state s
				   WHERE s.last_event_id <> (SELECT max(e.event_id) FROM consent_ledger.consent_events e
											  WHERE e.subject = s.subject AND e.purpose = s.purpose)$$,
	'every row names the latest event of its subject and purpose');

-- ---------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------
SELECT table_privs_are('consent_ledger', 'consent_events', 'consent_ledger_auditor', ARRAY['SELECT'],
	'the auditor may only read the consent ledger');
SELECT table_privs_are('consent_ledger', 'consent_events', 'consent_ledger_admin', ARRAY['SELECT'],
	'the admin may only read the consent ledger');
SELECT table_privs_are('consent_ledger', 'consent_events', 'consent_ledger_recorder', ARRAY[]::text[],
	'the recorder may not even read the consent ledger (it records through the functions)');
SELECT table_privs_are('consent_ledger', 'consent_state', 'consent_ledger_auditor', ARRAY['SELECT'], 'the auditor reads consent_state');
SELECT table_privs_are('consent_ledger', 'consent_state', 'consent_ledger_admin', ARRAY['SELECT'], 'the admin reads consent_state');
SELECT table_privs_are('consent_ledger', 'consent_state', 'consent_ledger_recorder', ARRAY['SELECT'], 'the recorder reads consent_state');
SELECT is_empty($$
	SELECT r.rel, p.priv
	  FROM (VALUES ('consent_ledger.consent_events'::regclass), ('consent_ledger.consent_state'::regclass),
				   ('consent_ledger.purposes'::regclass), ('consent_ledger.purpose_grants'::regclass)) r(rel),
		   (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) p(priv)
	 WHERE has_table_privilege('public', r.rel, p.priv)
$$, 'PUBLIC has no privilege on the consent ledger, consent_state, purposes or purpose_grants');
SELECT is_empty($$
	SELECT a.grantee::regrole, a.privilege_type
	  FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
	 WHERE c.oid = 'consent_ledger.consent_events'::regclass AND a.grantee <> c.relowner AND a.privilege_type <> 'SELECT'
$$, 'nobody but the owner holds any privilege but SELECT on the consent ledger');
SELECT is_empty($$
	SELECT r.role, p.priv FROM (VALUES ('public'), ('consent_ledger_admin'), ('consent_ledger_auditor'), ('consent_ledger_recorder')) r(role),
		   (VALUES ('USAGE'), ('UPDATE'), ('SELECT')) p(priv)
	 WHERE has_sequence_privilege(r.role, 'consent_ledger.consent_event_seq', p.priv)
$$, 'no extension role nor PUBLIC can use the consent event sequence');

CREATE TEMP TABLE cl04_fn AS
	SELECT p.oid::regprocedure::text AS fn, p.oid FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND p.proname IN ('define_purpose', 'grant_consent', 'withdraw_consent', 'has_consent', 'authorize_purpose',
						 'revoke_purpose', 'protect', 'unprotect', 'create_purpose_view',
						 '_record_begin', '_record_done', '_purposes_changed');
GRANT SELECT ON cl04_fn TO PUBLIC;
SELECT set_eq($$SELECT fn FROM cl04_fn WHERE has_function_privilege('consent_ledger_recorder', oid, 'EXECUTE')$$,
	$$SELECT fn FROM cl04_fn WHERE fn ~ '^consent_ledger\.(grant_consent|withdraw_consent|has_consent)\('$$,
	'the recorder may execute grant_consent, withdraw_consent and has_consent (every overload), nothing else of the registry');
SELECT set_eq($$SELECT fn FROM cl04_fn WHERE has_function_privilege('consent_ledger_auditor', oid, 'EXECUTE')$$,
	$$SELECT fn FROM cl04_fn WHERE fn ~ '^consent_ledger\.has_consent\('$$,
	'the auditor may execute has_consent (every overload), nothing else of the registry');
SELECT set_eq($$SELECT fn FROM cl04_fn WHERE has_function_privilege('consent_ledger_admin', oid, 'EXECUTE')$$,
	$$SELECT fn FROM cl04_fn WHERE fn !~ '^consent_ledger\._'$$,
	'the admin may execute every registry and enforcement function, not the internal helpers');
SELECT is_empty($$SELECT fn FROM cl04_fn WHERE has_function_privilege('public', oid, 'EXECUTE')$$,
	'PUBLIC may execute none of them');

CREATE ROLE cl04_recorder NOLOGIN IN ROLE consent_ledger_recorder;
CREATE ROLE cl04_auditor NOLOGIN IN ROLE consent_ledger_auditor;
CREATE ROLE cl04_admin NOLOGIN IN ROLE consent_ledger_admin;
CREATE ROLE cl04_plain NOLOGIN;
CREATE TABLE public.cl04_tab (id int, subject text);
ALTER TABLE public.cl04_tab OWNER TO cl04_recorder;

-- the recorder records, reads consent_state, and does nothing else
SET ROLE cl04_recorder;
SELECT lives_ok($$INSERT INTO cl04_event SELECT 'r_text', consent_ledger.grant_consent('rec1', 'cl04_mkt', clock_timestamp() + interval '1 day', '{"by": "recorder"}')$$,
	'the recorder can grant (text)');
SELECT lives_ok($$SELECT consent_ledger.grant_consent(1001::bigint, 'cl04_mkt')$$, 'the recorder can grant (bigint)');
SELECT lives_ok($$SELECT consent_ledger.grant_consent(1002, 'cl04_mkt')$$, 'the recorder can grant (integer)');
SELECT lives_ok($$SELECT consent_ledger.grant_consent('00000000-0000-0000-0000-000000001003'::uuid, 'cl04_mkt')$$, 'the recorder can grant (uuid)');
SELECT lives_ok($$INSERT INTO cl04_event SELECT 'r_withdraw', consent_ledger.withdraw_consent('rec1', 'cl04_p.c', '{"by": "recorder"}')$$,
	'the recorder can withdraw (text)');
SELECT lives_ok($$SELECT consent_ledger.withdraw_consent(1001::bigint, 'cl04_mkt')$$, 'the recorder can withdraw (bigint)');
SELECT lives_ok($$SELECT consent_ledger.withdraw_consent(1002, 'cl04_mkt')$$, 'the recorder can withdraw (integer)');
SELECT lives_ok($$SELECT consent_ledger.withdraw_consent('00000000-0000-0000-0000-000000001003'::uuid, 'cl04_mkt')$$, 'the recorder can withdraw (uuid)');
SELECT is(consent_ledger.has_consent('rec1', 'cl04_mkt', clock_timestamp()), true, 'the recorder can ask has_consent');
SELECT lives_ok($$SELECT count(*) FROM consent_ledger.consent_state$$, 'the recorder can read consent_state');
SELECT lives_ok($$SELECT count(*) FROM consent_ledger.purposes$$, 'the recorder can read purposes');
SELECT throws_ok($$SELECT count(*) FROM consent_ledger.consent_events$$, '42501', NULL, 'the recorder cannot read the consent ledger');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_by_recorder')$$, '42501', NULL, 'the recorder cannot define purposes');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose('cl04_recorder', 'cl04_mkt')$$, '42501', NULL, 'the recorder cannot authorize purposes');
SELECT throws_ok($$SELECT consent_ledger.revoke_purpose('cl04_recorder', 'cl04_mkt')$$, '42501', NULL, 'the recorder cannot revoke purposes');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl04_tab', 'subject')$$, '42501', NULL,
	'the recorder cannot protect a table, not even its own');
SELECT throws_ok($$INSERT INTO consent_ledger.consent_events (subject, purpose, action, recorded_at, recorded_by)
				   VALUES ('forged', 'cl04_mkt', 'grant', now(), 'someone')$$, '42501', NULL,
	'the recorder cannot insert into the consent ledger directly');
SELECT throws_ok($$INSERT INTO consent_ledger.purposes VALUES ('cl04_forged', NULL, 'consent', NULL, now())$$, '42501', NULL,
	'the recorder cannot insert purposes directly');
SELECT throws_ok($$SELECT nextval('consent_ledger.consent_event_seq')$$, '42501', NULL, 'the recorder cannot take event ids');
SELECT throws_ok($$SELECT consent_ledger._record_begin('cl04_mkt')$$, '42501', NULL, 'the recorder cannot call the internal helpers');
RESET ROLE;
SELECT results_eq($$SELECT subject, purpose, action, evidence, recorded_by = session_user FROM consent_ledger.consent_events
					 WHERE event_id IN (pg_temp.ev('r_text'), pg_temp.ev('r_withdraw')) ORDER BY event_id$$,
	$$VALUES ('rec1'::text, 'cl04_mkt'::text, 'grant'::text, '{"by": "recorder"}'::jsonb, true),
			 ('rec1', 'cl04_p.c', 'withdraw', '{"by": "recorder"}', true)$$,
	'the recorder''s events are in the ledger, recorded_by the session user');

-- the auditor reads and asks, and records nothing
SET ROLE cl04_auditor;
SELECT lives_ok($$SELECT count(*) FROM consent_ledger.consent_events$$, 'the auditor can read the consent ledger');
SELECT lives_ok($$SELECT count(*) FROM consent_ledger.consent_state$$, 'the auditor can read consent_state');
SELECT is(consent_ledger.has_consent('alice', 'cl04_mkt', clock_timestamp()), true, 'the auditor can ask has_consent (text)');
SELECT is(consent_ledger.has_consent(-5, 'cl04_mkt', clock_timestamp()), true, 'the auditor can ask has_consent (integer)');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('alice', 'cl04_mkt')$$, '42501', NULL, 'the auditor cannot grant');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(5::bigint, 'cl04_mkt')$$, '42501', NULL, 'the auditor cannot grant (bigint)');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('alice', 'cl04_mkt')$$, '42501', NULL, 'the auditor cannot withdraw');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'cl04_mkt')$$, '42501', NULL,
	'the auditor cannot withdraw (uuid)');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_by_auditor')$$, '42501', NULL, 'the auditor cannot define purposes');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose('cl04_auditor', 'cl04_mkt')$$, '42501', NULL, 'the auditor cannot authorize purposes');
SELECT throws_ok($$UPDATE consent_ledger.consent_events SET action = 'grant'$$, '42501', NULL, 'the auditor cannot update the consent ledger');
SELECT throws_ok($$DELETE FROM consent_ledger.consent_events$$, '42501', NULL, 'the auditor cannot delete from the consent ledger');
RESET ROLE;

-- PUBLIC: nothing
SET ROLE cl04_plain;
SELECT throws_ok($$SELECT consent_ledger.has_consent('alice', 'cl04_mkt')$$, '42501', NULL, 'a plain role cannot call has_consent(text)');
SELECT throws_ok($$SELECT consent_ledger.has_consent(42::bigint, 'cl04_mkt')$$, '42501', NULL, 'a plain role cannot call has_consent(bigint)');
SELECT throws_ok($$SELECT consent_ledger.has_consent(42, 'cl04_mkt')$$, '42501', NULL, 'a plain role cannot call has_consent(integer)');
SELECT throws_ok($$SELECT consent_ledger.has_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'cl04_mkt')$$, '42501', NULL,
	'a plain role cannot call has_consent(uuid)');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('alice', 'cl04_mkt')$$, '42501', NULL, 'a plain role cannot grant');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(42, 'cl04_mkt')$$, '42501', NULL, 'a plain role cannot grant (integer)');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('alice', 'cl04_mkt')$$, '42501', NULL, 'a plain role cannot withdraw');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl04_by_plain')$$, '42501', NULL, 'a plain role cannot define purposes');
SELECT throws_ok($$SELECT * FROM consent_ledger.consent_state$$, '42501', NULL, 'a plain role cannot read consent_state');
SELECT throws_ok($$SELECT * FROM consent_ledger.consent_events$$, '42501', NULL, 'a plain role cannot read the consent ledger');
SELECT throws_ok($$SELECT * FROM consent_ledger.purposes$$, '42501', NULL, 'a plain role cannot read purposes');
RESET ROLE;

-- the admin defines, authorizes and records
SET ROLE cl04_admin;
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl04_by_admin', 'defined by an admin', 'consent', 'cl04_mkt')$$,
	'an admin can define purposes');
SELECT lives_ok($$SELECT consent_ledger.authorize_purpose('cl04_plain', 'cl04_by_admin')$$, 'an admin can authorize purposes');
SELECT lives_ok($$SELECT consent_ledger.revoke_purpose('cl04_plain', 'cl04_by_admin')$$, 'an admin can revoke purposes');
SELECT lives_ok($$SELECT consent_ledger.grant_consent('adm1', 'cl04_by_admin')$$, 'an admin can record consent');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose('cl04_plain', 'cl04_nope')$$, '42704', NULL,
	'authorizing an unknown purpose: 42704');
SELECT throws_ok($$UPDATE consent_ledger.consent_events SET evidence = NULL$$, '42501', NULL, 'an admin cannot update the consent ledger');
SELECT throws_ok($$DELETE FROM consent_ledger.consent_events$$, '42501', NULL, 'an admin cannot delete from the consent ledger');
SELECT throws_ok($$INSERT INTO consent_ledger.consent_events (subject, purpose, action, recorded_at, recorded_by)
				   VALUES ('forged', 'cl04_mkt', 'grant', now(), 'someone')$$, '42501', NULL,
	'an admin cannot insert into the consent ledger directly');
SELECT throws_ok($$DELETE FROM consent_ledger.purposes WHERE purpose = 'cl04_by_admin'$$, '42501', NULL,
	'an admin cannot delete purposes');
RESET ROLE;

-- nobody changes the consent ledger, not even a superuser
SELECT throws_ok($$UPDATE consent_ledger.consent_events SET action = 'grant' WHERE event_id = pg_temp.ev('e2')$$, '42809', NULL,
	'a superuser cannot update the consent ledger: 42809');
SELECT throws_ok($$DELETE FROM consent_ledger.consent_events WHERE event_id = pg_temp.ev('e2')$$, '42809', NULL,
	'a superuser cannot delete from the consent ledger: 42809');
SELECT throws_ok($$TRUNCATE consent_ledger.consent_events$$, '42809', NULL, 'a superuser cannot truncate the consent ledger: 42809');
SELECT throws_ok($$UPDATE consent_ledger.consent_state SET state = 'granted'$$, '55000', NULL,
	'consent_state cannot be updated: 55000');
SELECT throws_ok($$DELETE FROM consent_ledger.consent_state$$, '55000', NULL, 'consent_state cannot be deleted from: 55000');
SELECT throws_ok($$INSERT INTO consent_ledger.consent_state (subject, purpose, state) VALUES ('bob', 'cl04_mkt', 'granted')$$, '55000', NULL,
	'consent_state cannot be inserted into: 55000');
SELECT results_eq($$SELECT action FROM consent_ledger.consent_events WHERE event_id = pg_temp.ev('e2')$$, $$VALUES ('withdraw'::text)$$,
	'the withdrawal is still there');

SELECT * FROM finish();
ROLLBACK;
