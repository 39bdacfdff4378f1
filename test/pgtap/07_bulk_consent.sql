-- Consent recorded set-wise and in bulk (issue #12 item 2, README
-- "Recording consent in bulk"): the array-taking grant_consent and
-- withdraw_consent, their checks (each with its SQLSTATE, all or nothing),
-- who may call them, that set-wise single calls and the bulk path leave
-- the same consent state and has_consent answers, event ids and
-- recorded_at in array order, what a rolled-back subtransaction leaves
-- behind, and has_consent refusing a consent ledger someone else planted.
-- (Ordering between concurrent bulk loads: isolation spec
-- consent_bulk_order.)
--
-- Runs in one transaction that is rolled back.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(57);

CREATE ROLE cl07_recorder NOLOGIN IN ROLE consent_ledger_recorder;
CREATE ROLE cl07_auditor NOLOGIN IN ROLE consent_ledger_auditor;
CREATE ROLE cl07_admin NOLOGIN IN ROLE consent_ledger_admin;
CREATE ROLE cl07_plain NOLOGIN;
CREATE ROLE cl07_mallory NOLOGIN;
-- the number of events, for a recorder (who may not read the ledger)
CREATE FUNCTION pg_temp.nev() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
	AS $$BEGIN RETURN (SELECT count(*) FROM consent_ledger.consent_events); END$$;

-- the highest event id so far (0 without a consent ledger)
CREATE FUNCTION pg_temp.maxev() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE m bigint;
BEGIN
	IF to_regclass('consent_ledger.consent_events') IS NULL THEN RETURN 0; END IF;
	EXECUTE 'SELECT coalesce(max(event_id), 0) FROM consent_ledger.consent_events' INTO m;
	RETURN m;
END $$;
CREATE TEMP TABLE cl07_base AS SELECT pg_temp.maxev() AS base;
GRANT ALL ON cl07_base TO PUBLIC;

-- ---------------------------------------------------------------------
-- A planted consent ledger is refused.  An earlier test file may have
-- left the real one: it is renamed aside until the rollback.
-- ---------------------------------------------------------------------
SELECT consent_ledger.define_purpose('cl07_p', 'pgTAP 07');
SAVEPOINT planted;
DO $$
BEGIN
	IF to_regclass('consent_ledger.consent_events') IS NOT NULL THEN
		ALTER TABLE consent_ledger.consent_events RENAME TO consent_events_cl07_aside;
	END IF;
END $$;
SELECT ok(to_regclass('consent_ledger.consent_events') IS NULL,
	'precondition: no table consent_ledger.consent_events');
CREATE TABLE consent_ledger.consent_events (event_id bigint, subject text, purpose text, action text,
	expires_at timestamptz, evidence jsonb, recorded_at timestamptz, recorded_by text);
INSERT INTO consent_ledger.consent_events VALUES
	(1, 'cl07-x', 'cl07_p', 'grant', NULL, NULL, '2000-01-01', 'mallory');
ALTER TABLE consent_ledger.consent_events OWNER TO cl07_mallory;
SELECT throws_ok($$SELECT consent_ledger.has_consent('cl07-x', 'cl07_p')$$, '42501',
	'relation consent_ledger.consent_events was not created by consent_ledger',
	'has_consent refuses a consent_events table owned by another role (42501)');
SELECT throws_ok($$SELECT consent_ledger.has_consent('cl07-x', 'cl07_p', '2001-01-01')$$, '42501', NULL,
	'... also for a past moment');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-x'], 'cl07_p')$$, '42501', NULL,
	'the bulk path refuses it too');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('cl07-x', 'cl07_p')$$, '42501', NULL,
	'and a single grant');
ROLLBACK TO SAVEPOINT planted;
SELECT is(consent_ledger.has_consent('cl07-x', 'cl07_p'), false,
	'the planted table gone, has_consent answers from the real consent ledger (no event: false)');

-- ---------------------------------------------------------------------
-- Who may call the bulk path
-- ---------------------------------------------------------------------
SELECT function_privs_are('consent_ledger', 'grant_consent', ARRAY['text[]', 'text', 'timestamp with time zone', 'jsonb'],
	'consent_ledger_recorder', ARRAY['EXECUTE'], 'the recorder may grant in bulk');
SELECT function_privs_are('consent_ledger', 'withdraw_consent', ARRAY['text[]', 'text', 'jsonb'],
	'consent_ledger_recorder', ARRAY['EXECUTE'], 'the recorder may withdraw in bulk');
SELECT function_privs_are('consent_ledger', 'grant_consent', ARRAY['text[]', 'text', 'timestamp with time zone', 'jsonb'],
	'consent_ledger_admin', ARRAY['EXECUTE'], 'the admin may grant in bulk');
SELECT function_privs_are('consent_ledger', 'grant_consent', ARRAY['text[]', 'text', 'timestamp with time zone', 'jsonb'],
	'consent_ledger_auditor', ARRAY[]::text[], 'the auditor may not grant in bulk');
SELECT function_privs_are('consent_ledger', 'withdraw_consent', ARRAY['text[]', 'text', 'jsonb'],
	'consent_ledger_auditor', ARRAY[]::text[], 'the auditor may not withdraw in bulk');
SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND p.proname IN ('grant_consent', 'withdraw_consent', '_consent_events_checked')
	   AND (has_function_privilege('public', p.oid, 'EXECUTE')
			OR has_function_privilege('consent_ledger_auditor', p.oid, 'EXECUTE'))
$$, 'neither PUBLIC nor the auditor may record consent, singly or in bulk, or call the helper');
SELECT set_eq($$
	SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND p.proname IN ('grant_consent', 'withdraw_consent')
	   AND has_function_privilege('consent_ledger_recorder', p.oid, 'EXECUTE')
	   AND has_function_privilege('consent_ledger_admin', p.oid, 'EXECUTE')
$$, $$SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND p.proname IN ('grant_consent', 'withdraw_consent')$$,
	'recorder and admin may call every grant_consent and withdraw_consent (1.3 kept their privileges)');

SET ROLE cl07_auditor;
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-a'], 'cl07_p')$$, '42501', NULL,
	'an auditor calling the bulk grant: 42501');
RESET ROLE;
SET ROLE cl07_plain;
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent(ARRAY['cl07-a'], 'cl07_p')$$, '42501', NULL,
	'a role without the recorder role calling the bulk withdrawal: 42501');
RESET ROLE;

-- ---------------------------------------------------------------------
-- Checks, as a recorder: every refusal records nothing
-- ---------------------------------------------------------------------
SET ROLE cl07_recorder;
SELECT consent_ledger.grant_consent('cl07-first', 'cl07_p') > 0 AS consent_ledger_exists;
CREATE TEMP TABLE cl07_n AS SELECT pg_temp.nev() AS n;
GRANT ALL ON cl07_n TO PUBLIC;

SELECT throws_ok($$SELECT consent_ledger.grant_consent(NULL::text[], 'cl07_p')$$, '22004',
	'subjects must not be NULL', 'a NULL array: 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-a', NULL, 'cl07-b'], 'cl07_p')$$, '22004',
	'subject must not be NULL or empty', 'a NULL subject in the array: 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-a', ''], 'cl07_p')$$, '22004',
	'subject must not be NULL or empty', 'an empty subject: 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent(ARRAY['cl07-a', repeat('x', 1025)], 'cl07_p')$$, '22001',
	'subject is longer than 1024 bytes', 'a subject over 1024 bytes: 22001');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-a'], NULL)$$, '22004',
	'purpose must not be NULL', 'a NULL purpose: 22004');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent(ARRAY['cl07-a'], NULL)$$, '22004',
	'purpose must not be NULL', 'a NULL purpose (withdrawal): 22004');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-a'], 'cl07_nope')$$, '42704',
	'purpose "cl07_nope" does not exist', 'an undefined purpose: 42704');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent(ARRAY['cl07-a'], 'cl07_nope')$$, '42704',
	'purpose "cl07_nope" does not exist', 'an undefined purpose (withdrawal): 42704');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-a'], 'cl07_p', clock_timestamp() - interval '1 second')$$,
	'22023', 'expires_at lies in the past', 'an expiry in the past: 22023');
SELECT throws_ok($$SELECT count(consent_ledger.grant_consent(s::text, 'cl07_p')) FROM unnest(ARRAY['cl07-a', '']) s$$,
	'22004', 'subject must not be NULL or empty', 'set-wise: the second call fails, 22004');
SELECT is((SELECT n FROM cl07_n), pg_temp.nev(),
	'no refused call recorded anything (all or nothing)');
SELECT is(consent_ledger.grant_consent(ARRAY[]::text[], 'cl07_p'), 0::bigint, 'an empty array records nothing');
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY[['cl07-m1', 'cl07-m2'], ['cl07-m3', 'cl07-m4']], 'cl07_p')$$, '2202E', NULL,
	'a two-dimensional array of subjects is refused (2202E), not flattened');
SELECT is(consent_ledger.grant_consent(ARRAY[]::text[], 'cl07_nope'), 0::bigint,
	'... and checks no purpose');

-- the element that failed is named in the error context
CREATE FUNCTION pg_temp.err_context(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE ctx text;
BEGIN
	EXECUTE q;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
	RETURN ctx;
END $$;
SELECT alike(pg_temp.err_context($$SELECT consent_ledger.grant_consent(ARRAY['cl07-a', 'cl07-b', ''], 'cl07_p')$$),
	'%element 3 of the subjects array%', 'the error context names the failing element');

-- ---------------------------------------------------------------------
-- Bulk and set-wise single calls record the same thing
-- ---------------------------------------------------------------------
RESET ROLE;
SELECT consent_ledger.define_purpose('cl07_single', 'pgTAP 07: single calls');
SELECT consent_ledger.define_purpose('cl07_bulk', 'pgTAP 07: bulk calls');
SET ROLE cl07_recorder;
RESET ROLE;
CREATE TEMP TABLE cl07_ids (path text, first_id bigint);
GRANT ALL ON cl07_ids TO PUBLIC;
SET ROLE cl07_recorder;
-- 60 subjects: all granted (every 4th with an expiry), every 3rd withdrawn,
-- every 5th granted again with evidence
INSERT INTO cl07_ids SELECT 'single', min(consent_ledger.grant_consent('cl07-s' || s, 'cl07_single',
		CASE WHEN s % 4 = 0 THEN clock_timestamp() + interval '1 day' END)) FROM generate_series(1, 60) s WHERE s % 4 <> 0;
SELECT count(consent_ledger.grant_consent('cl07-s' || s, 'cl07_single', now() + interval '1 day'))
	FROM generate_series(1, 60) s WHERE s % 4 = 0;
SELECT count(consent_ledger.withdraw_consent('cl07-s' || s, 'cl07_single')) FROM generate_series(1, 60) s WHERE s % 3 = 0;
SELECT count(consent_ledger.grant_consent('cl07-s' || s, 'cl07_single', NULL, jsonb_build_object('form', s)))
	FROM generate_series(1, 60) s WHERE s % 5 = 0;

RESET ROLE;
INSERT INTO cl07_ids SELECT 'bulk', max(event_id) + 1 FROM consent_ledger.consent_events;
SET ROLE cl07_recorder;
SELECT is(consent_ledger.grant_consent(array_agg('cl07-s' || s ORDER BY s), 'cl07_bulk'), 45::bigint,
	'bulk grant returns the number of events')
	FROM generate_series(1, 60) s WHERE s % 4 <> 0;
SELECT is(consent_ledger.grant_consent(array_agg('cl07-s' || s ORDER BY s), 'cl07_bulk', now() + interval '1 day'), 15::bigint,
	'bulk grant with an expiry')
	FROM generate_series(1, 60) s WHERE s % 4 = 0;
SELECT is(consent_ledger.withdraw_consent(array_agg('cl07-s' || s ORDER BY s), 'cl07_bulk'), 20::bigint,
	'bulk withdrawal returns the number of events')
	FROM generate_series(1, 60) s WHERE s % 3 = 0;
-- evidence is one value for the whole call: one call per subject here
SELECT is(sum(consent_ledger.grant_consent(ARRAY['cl07-s' || s], 'cl07_bulk', NULL, jsonb_build_object('form', s))), 12::numeric,
	'bulk grants with evidence')
	FROM generate_series(1, 60) s WHERE s % 5 = 0;
RESET ROLE;

SELECT results_eq($$SELECT subject, state, expires_at IS NOT NULL FROM consent_ledger.consent_state
					 WHERE purpose = 'cl07_single' ORDER BY subject$$,
	$$SELECT subject, state, expires_at IS NOT NULL FROM consent_ledger.consent_state
		WHERE purpose = 'cl07_bulk' ORDER BY subject$$,
	'consent_state: the same state for every subject, single calls or bulk');
SELECT results_eq($$SELECT s, consent_ledger.has_consent('cl07-s' || s, 'cl07_single', clock_timestamp())
					 FROM generate_series(0, 61) s ORDER BY s$$,
	$$SELECT s, consent_ledger.has_consent('cl07-s' || s, 'cl07_bulk', clock_timestamp())
		FROM generate_series(0, 61) s ORDER BY s$$,
	'has_consent: the same answer for every subject, single calls or bulk');
SELECT is((SELECT count(*) FILTER (WHERE consent_ledger.has_consent('cl07-s' || s, 'cl07_bulk', clock_timestamp()))
			 FROM generate_series(1, 60) s), 44::bigint,
	'... and that answer is not trivially the same (44 of 60 consent)');
SELECT results_eq($$SELECT subject, action, expires_at IS NOT NULL, evidence, recorded_by FROM consent_ledger.consent_events
					 WHERE purpose = 'cl07_single' ORDER BY event_id$$,
	$$SELECT subject, action, expires_at IS NOT NULL, evidence, recorded_by FROM consent_ledger.consent_events
		WHERE purpose = 'cl07_bulk' ORDER BY event_id$$,
	'the events themselves are the same, in the same order');
SELECT is((SELECT count(DISTINCT recorded_by) FROM consent_ledger.consent_events WHERE purpose = 'cl07_bulk'), 1::bigint,
	'recorded_by is the session user');
SELECT is((SELECT min(event_id) FROM consent_ledger.consent_events WHERE purpose = 'cl07_bulk'),
	(SELECT first_id FROM cl07_ids WHERE path = 'bulk'), 'bulk event ids follow the ones before');
SELECT is_empty($$SELECT 1 FROM (SELECT subject, event_id, recorded_at,
		lag(event_id) OVER w AS prev_id, lag(recorded_at) OVER w AS prev_at,
		lag(subject) OVER w AS prev_subject
	  FROM consent_ledger.consent_events WHERE purpose = 'cl07_bulk' AND action = 'withdraw'
	  WINDOW w AS (ORDER BY event_id)) x
	 WHERE prev_id IS NOT NULL AND (event_id <> prev_id + 1 OR recorded_at <= prev_at
		 OR substr(subject, 7)::int <= substr(prev_subject, 7)::int)$$,
	'a bulk call: consecutive event ids in array order, recorded_at strictly increasing');
SELECT is_empty($$SELECT 1 FROM (SELECT recorded_at, lag(recorded_at) OVER (ORDER BY event_id) AS prev_at
	  FROM consent_ledger.consent_events WHERE event_id > (SELECT base FROM cl07_base)) x WHERE recorded_at <= prev_at$$,
	'recorded_at strictly increases with event id over every event of this transaction');
SELECT is((SELECT count(*) FROM consent_ledger.consent_events WHERE purpose = 'cl07_bulk'
			 AND (ledger_txn IS NULL OR ledger_ord IS NULL)), 0::bigint,
	'every bulk event was stamped by the ledger trigger');
SELECT is((SELECT count(DISTINCT ledger_ord) FROM consent_ledger.consent_events
			WHERE ledger_txn = (SELECT ledger_txn FROM consent_ledger.consent_events ORDER BY event_id DESC LIMIT 1)),
		  (SELECT count(*) FROM consent_ledger.consent_events
			WHERE ledger_txn = (SELECT ledger_txn FROM consent_ledger.consent_events ORDER BY event_id DESC LIMIT 1)),
	'ledger ordinals of this transaction are distinct');

-- the subject overloads, set-wise, store the subject as its text form
SET ROLE cl07_recorder;
SELECT is(count(consent_ledger.grant_consent(s::bigint * 10000000000, 'cl07_p')), 3::bigint, 'bigint subjects set-wise')
	FROM generate_series(1, 3) s;
SELECT is(count(consent_ledger.grant_consent(s, 'cl07_p')), 3::bigint, 'integer subjects set-wise')
	FROM generate_series(1, 3) s;
SELECT is(count(consent_ledger.withdraw_consent(md5(s::text)::uuid, 'cl07_p')), 3::bigint, 'uuid subjects set-wise')
	FROM generate_series(1, 3) s;
RESET ROLE;
SELECT set_has($$SELECT subject FROM consent_ledger.consent_events WHERE purpose = 'cl07_p'$$,
	$$SELECT (s::bigint * 10000000000)::text FROM generate_series(1, 3) s
	  UNION ALL SELECT s::text FROM generate_series(1, 3) s
	  UNION ALL SELECT md5(s::text)::uuid::text FROM generate_series(1, 3) s$$,
	'... recorded under the subject''s text form');

-- ---------------------------------------------------------------------
-- An index made between calls in one transaction is maintained: the
-- recorder keeps its executor state for the transaction and must rebuild
-- it on the relcache invalidation (bt_index_check with heapallindexed
-- fails if a row is missing from the index)
-- ---------------------------------------------------------------------
SAVEPOINT idx;
CREATE EXTENSION IF NOT EXISTS amcheck;
CREATE INDEX cl07_at ON consent_ledger.consent_events (recorded_at, subject);
SET ROLE cl07_recorder;
SELECT count(consent_ledger.grant_consent('cl07-i' || g, 'cl07_p')) FROM generate_series(1, 20) g;
SELECT consent_ledger.withdraw_consent(ARRAY['cl07-i1', 'cl07-i2'], 'cl07_p');
RESET ROLE;
SELECT lives_ok($$SELECT bt_index_check('consent_ledger.cl07_at', true)$$,
	'an index created between calls in the transaction holds every event recorded after it');
SELECT is((SELECT count(*) FROM consent_ledger.consent_events WHERE subject LIKE 'cl07-i%'), 22::bigint,
	'... 20 set-wise and 2 bulk events');
ROLLBACK TO SAVEPOINT idx;

-- ---------------------------------------------------------------------
-- Subtransactions
-- ---------------------------------------------------------------------
TRUNCATE cl07_n;
INSERT INTO cl07_n SELECT count(*) FROM consent_ledger.consent_events;
SET ROLE cl07_recorder;
SAVEPOINT s1;
SELECT consent_ledger.grant_consent(ARRAY['cl07-sp1', 'cl07-sp2'], 'cl07_p');
ROLLBACK TO SAVEPOINT s1;
SELECT is(pg_temp.nev(), (SELECT n FROM cl07_n),
	'a rolled-back bulk call leaves no event');
SELECT is(consent_ledger.grant_consent(ARRAY['cl07-sp3'], 'cl07_p'), 1::bigint, 'recording goes on after the rollback');
SELECT is(pg_temp.nev(), (SELECT n + 1 FROM cl07_n),
	'... and is recorded');
RESET ROLE;
SAVEPOINT s2;
SELECT consent_ledger.define_purpose('cl07_tmp', 'defined and rolled back');
SELECT consent_ledger.grant_consent(ARRAY['cl07-tmp'], 'cl07_tmp');
ROLLBACK TO SAVEPOINT s2;
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-tmp'], 'cl07_tmp')$$, '42704', NULL,
	'a purpose defined in a rolled-back subtransaction is not remembered (bulk)');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('cl07-tmp', 'cl07_tmp')$$, '42704', NULL,
	'... nor by a single call');
-- an error inside a subtransaction after recording: the rest still works
SAVEPOINT s3;
SELECT throws_ok($$SELECT consent_ledger.grant_consent(ARRAY['cl07-ok', repeat('y', 2000)], 'cl07_p')$$, '22001', NULL,
	'a failing bulk call inside a savepoint');
ROLLBACK TO SAVEPOINT s3;
SELECT is(consent_ledger.withdraw_consent(ARRAY['cl07-ok'], 'cl07_p'), 1::bigint, 'recording after a failed call');

SELECT * FROM finish();
ROLLBACK;
