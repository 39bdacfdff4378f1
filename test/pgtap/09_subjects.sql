-- Data subjects in control (issue #17, README "Subject-signed consent",
-- "Consent receipts"): the new functions exist with their signatures, who
-- may call them (with their SQLSTATEs), who may read the subject key
-- ledger, and that nobody writes it or the new purpose flag directly.
-- (Behaviour in depth, with real signatures: sql/subject_consent.sql and
-- test/tap/045_subject_receipts.pl.)
--
-- Runs in one transaction that is rolled back.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(30);

CREATE ROLE cl09_admin NOLOGIN IN ROLE consent_ledger_admin;
CREATE ROLE cl09_auditor NOLOGIN IN ROLE consent_ledger_auditor;
CREATE ROLE cl09_recorder NOLOGIN IN ROLE consent_ledger_recorder;
CREATE ROLE cl09_analyst NOLOGIN;
GRANT USAGE ON SCHEMA consent_ledger TO cl09_analyst;

SELECT has_function('consent_ledger', 'consent_origin', ARRAY[]::text[], 'consent_origin() exists');
SELECT has_function('consent_ledger', 'register_subject_key', ARRAY['text', 'text', 'text', 'text'],
	'register_subject_key(subject, public_key, statement, signature) exists');
SELECT has_function('consent_ledger', 'record_signed_consent', ARRAY['text', 'text', 'jsonb'],
	'record_signed_consent(statement, signature, evidence) exists');
SELECT has_function('consent_ledger', 'consent_receipt', ARRAY['bigint'], 'consent_receipt(event_id) exists');
SELECT is(pg_get_function_arguments('consent_ledger.record_signed_consent(text, text, jsonb)'::regprocedure),
	'statement text, signature text, evidence jsonb DEFAULT NULL::jsonb', 'record_signed_consent: evidence is optional');
SELECT is(pg_get_function_result('consent_ledger.register_subject_key(text, text, text, text)'::regprocedure),
	'integer', 'register_subject_key returns the key number');
SELECT is(pg_get_function_result('consent_ledger.consent_receipt(bigint)'::regprocedure), 'jsonb',
	'consent_receipt returns jsonb');
SELECT hasnt_function('consent_ledger', 'define_purpose', ARRAY['text', 'text', 'text', 'text'],
	'the four-argument define_purpose is gone (one function, its flag defaulting to false)');

SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND p.proname IN ('consent_origin', 'register_subject_key', 'record_signed_consent', 'consent_receipt',
						 '_replace_consent_state_view')
	   AND has_function_privilege('public', p.oid, 'EXECUTE')
$$, 'PUBLIC may execute none of them');
SELECT function_privs_are('consent_ledger', 'register_subject_key', ARRAY['text', 'text', 'text', 'text'],
	'consent_ledger_recorder', ARRAY['EXECUTE'], 'recorders register keys');
SELECT function_privs_are('consent_ledger', 'record_signed_consent', ARRAY['text', 'text', 'jsonb'],
	'consent_ledger_recorder', ARRAY['EXECUTE'], 'recorders record signed consent');
SELECT function_privs_are('consent_ledger', 'record_signed_consent', ARRAY['text', 'text', 'jsonb'],
	'consent_ledger_auditor', ARRAY[]::text[], 'auditors do not');
SELECT function_privs_are('consent_ledger', 'register_subject_key', ARRAY['text', 'text', 'text', 'text'],
	'consent_ledger_auditor', ARRAY[]::text[], 'auditors register no key');
SELECT function_privs_are('consent_ledger', 'consent_receipt', ARRAY['bigint'],
	'consent_ledger_auditor', ARRAY['EXECUTE'], 'auditors take receipts');
SELECT function_privs_are('consent_ledger', 'consent_receipt', ARRAY['bigint'],
	'consent_ledger_recorder', ARRAY['EXECUTE'], 'recorders take receipts (to hand them to the person)');
SELECT function_privs_are('consent_ledger', '_replace_consent_state_view', ARRAY[]::text[],
	'consent_ledger_admin', ARRAY[]::text[], 'the update script''s helper is nobody''s');

-- an analyst (no extension role) is refused every one
SET LOCAL ROLE cl09_analyst;
SELECT throws_ok($$SELECT consent_ledger.consent_origin()$$, '42501', NULL, 'analyst: consent_origin refused');
SELECT throws_ok($$SELECT consent_ledger.register_subject_key('s', 'k', 'st', 'sig')$$, '42501', NULL,
	'analyst: register_subject_key refused');
SELECT throws_ok($$SELECT consent_ledger.record_signed_consent('st', 'sig')$$, '42501', NULL,
	'analyst: record_signed_consent refused');
SELECT throws_ok($$SELECT consent_ledger.consent_receipt(1)$$, '42501', NULL, 'analyst: consent_receipt refused');
RESET ROLE;

-- a recorder: the origin, and the checks in order (no key before the signature)
SET LOCAL ROLE cl09_recorder;
SELECT matches(consent_ledger.consent_origin(), '^consent_ledger/[0-9a-f]{32}$', 'recorder: the origin');
SELECT throws_ok($$SELECT consent_ledger.record_signed_consent('not a statement', repeat('A', 86) || '==')$$,
	'22P02', 'malformed statement', 'recorder: a malformed statement is 22P02');
SELECT throws_ok($$SELECT consent_ledger.record_signed_consent('x', 'not base64')$$,
	'22023', 'malformed signature', 'recorder: a malformed signature is 22023');
SELECT throws_ok(format($$SELECT consent_ledger.record_signed_consent(%L, %L)$$,
		format(E'consent-ledger-consent/v1\norigin %s\nsubject cl09-nobody\npurpose cl09_p\naction grant\nexpires never\ntime 1700000000\nnonce cl09-nonce-00000001\n',
			   consent_ledger.consent_origin()), repeat('A', 86) || '=='),
	'42704', 'purpose "cl09_p" does not exist', 'recorder: an unknown purpose first');
-- the key ledger: read by auditors, written by nobody
RESET ROLE;
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl09_p', require_subject_signature => true)$$, 'setup: a signed-only purpose');
SET LOCAL ROLE cl09_recorder;
SELECT throws_ok(format($$SELECT consent_ledger.record_signed_consent(%L, %L)$$,
		format(E'consent-ledger-consent/v1\norigin %s\nsubject cl09-nobody\npurpose cl09_p\naction grant\nexpires never\ntime 1700000000\nnonce cl09-nonce-00000001\n',
			   consent_ledger.consent_origin()), repeat('A', 86) || '=='),
	'42704', 'the subject has no registered key', 'recorder: a subject without a key is 42704');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('cl09-s', 'cl09_p')$$, '42501',
	'purpose "cl09_p" takes only grants signed by the subject', 'recorder: no unsigned grant of a signed-only purpose');
RESET ROLE;
SET LOCAL ROLE cl09_admin;
SELECT throws_ok($$UPDATE consent_ledger.purposes SET require_subject_signature = false WHERE purpose = 'cl09_p'$$,
	'42501', NULL, 'the admin role cannot clear the flag (purposes is written by the extension only)');
RESET ROLE;
SELECT is((SELECT require_subject_signature FROM consent_ledger.purposes WHERE purpose = 'cl09_p'), true,
	'the flag is as defined');
SELECT ok(NOT has_table_privilege('consent_ledger_recorder', 'consent_ledger.purposes', 'UPDATE'),
	'recorders cannot change purposes');

SELECT * FROM finish();
ROLLBACK;
