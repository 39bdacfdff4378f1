-- Right to erasure (issue #15, README "Erasure"): who may call the new
-- functions, with their SQLSTATEs (1.4: migrate_consent_ledger() and
-- rotate_audit_ledger() too, and a rotation by an administrator who is no
-- superuser); erase_subject() by an administrator
-- who does not own the ledger, refused to its non-admin owner (also with
-- EXECUTE granted), to an auditor and a recorder.  (Behaviour in depth:
-- sql/erasure.sql and test/tap/047_erasure.pl.)
--
-- Runs in one transaction that is rolled back.
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT plan(32);

CREATE ROLE cl08_admin NOLOGIN IN ROLE consent_ledger_admin;
CREATE ROLE cl08_auditor NOLOGIN IN ROLE consent_ledger_auditor;
CREATE ROLE cl08_recorder NOLOGIN IN ROLE consent_ledger_recorder;
CREATE ROLE cl08_owner NOLOGIN;
GRANT USAGE ON SCHEMA consent_ledger TO cl08_owner;

SELECT has_function('consent_ledger', 'create_ledger', ARRAY['regclass', 'name[]', 'name'],
	'create_ledger(relation, personal, subject) exists');
SELECT has_function('consent_ledger', 'erase_subject', ARRAY['text', 'text'], 'erase_subject(subject, reason) exists');
SELECT has_function('consent_ledger', 'erased', ARRAY['bytea'], 'erased(ledger_salt) exists');
SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND (p.proname IN ('erase_subject', 'erased')
			OR p.oid = 'consent_ledger.create_ledger(regclass, name[], name)'::regprocedure)
	   AND has_function_privilege('public', p.oid, 'EXECUTE')
$$, 'PUBLIC may execute none of them');
SELECT function_privs_are('consent_ledger', 'erase_subject', ARRAY['text', 'text'], 'consent_ledger_admin', ARRAY['EXECUTE'],
	'consent_ledger_admin may execute erase_subject');
SELECT function_privs_are('consent_ledger', 'erase_subject', ARRAY['text', 'text'], 'consent_ledger_auditor', ARRAY[]::text[],
	'consent_ledger_auditor may not execute erase_subject');
SELECT function_privs_are('consent_ledger', 'erase_subject', ARRAY['text', 'text'], 'consent_ledger_recorder', ARRAY[]::text[],
	'consent_ledger_recorder may not execute erase_subject');
SELECT function_privs_are('consent_ledger', 'create_ledger', ARRAY['regclass', 'name[]', 'name'], 'consent_ledger_admin', ARRAY['EXECUTE'],
	'consent_ledger_admin may execute create_ledger with personal columns');
SELECT function_privs_are('consent_ledger', 'create_ledger', ARRAY['regclass', 'name[]', 'name'], 'consent_ledger_auditor', ARRAY[]::text[],
	'consent_ledger_auditor may not execute create_ledger with personal columns');
SELECT function_privs_are('consent_ledger', 'erased', ARRAY['bytea'], 'consent_ledger_auditor', ARRAY['EXECUTE'],
	'consent_ledger_auditor may execute erased');

-- a ledger with personal columns owned by a role that is no administrator
CREATE TABLE cl08_people (id int, email text, city text);
SELECT consent_ledger.create_ledger('cl08_people', personal => ARRAY['email'], subject => 'id');
INSERT INTO cl08_people VALUES (801, 'p801@example.org', 'Oslo'), (802, 'p802@example.org', 'Rome');
ALTER TABLE cl08_people OWNER TO cl08_owner;

SET LOCAL ROLE cl08_owner;
SELECT throws_ok($$SELECT * FROM consent_ledger.erase_subject('801', 'owner')$$, '42501', NULL,
	'the non-admin owner of the ledger may not erase');
RESET ROLE;
GRANT EXECUTE ON FUNCTION consent_ledger.erase_subject(text, text) TO cl08_owner, cl08_auditor, cl08_recorder;
SET LOCAL ROLE cl08_owner;
SELECT throws_ok($$SELECT * FROM consent_ledger.erase_subject('801', 'owner')$$, '42501',
	'permission denied to erase a data subject', '... nor with EXECUTE granted (the function checks the role itself)');
RESET ROLE;
SET LOCAL ROLE cl08_auditor;
SELECT throws_ok($$SELECT * FROM consent_ledger.erase_subject('801', 'auditor')$$, '42501',
	'permission denied to erase a data subject', 'an auditor with EXECUTE granted may not erase');
RESET ROLE;
SET LOCAL ROLE cl08_recorder;
SELECT throws_ok($$SELECT * FROM consent_ledger.erase_subject('801', 'recorder')$$, '42501',
	'permission denied to erase a data subject', 'a recorder with EXECUTE granted may not erase');
RESET ROLE;
SELECT is((SELECT count(*) FROM cl08_people WHERE email IS NOT NULL), 2::bigint, 'nothing was erased by them');

SET LOCAL ROLE cl08_admin;
SELECT results_eq($$SELECT relation::text, rows FROM consent_ledger.erase_subject('801', 'pgTAP 08')$$,
	$$VALUES ('cl08_people', 1::bigint)$$, 'an administrator who does not own the ledger erases the subject');
SELECT throws_ok($$SELECT * FROM consent_ledger.erase_subject('801', NULL)$$, '22004', NULL,
	'a NULL reason is refused');
RESET ROLE;
SELECT results_eq($$SELECT id, email, city, consent_ledger.erased(ledger_salt) FROM cl08_people ORDER BY id$$,
	$$VALUES (801, NULL::text, 'Oslo'::text, true), (802, 'p802@example.org', 'Rome', false)$$,
	'the subject''s row reads as erased, the other as it was');
SELECT ok((SELECT bool_and(valid) FROM consent_ledger.verify('cl08_people')), 'the ledger verifies after the erasure');

-- 1.4: the extension's own ledgers made before 1.3
SELECT has_function('consent_ledger', 'migrate_consent_ledger', ARRAY[]::name[], 'migrate_consent_ledger() exists');
SELECT has_function('consent_ledger', 'rotate_audit_ledger', ARRAY[]::name[], 'rotate_audit_ledger() exists');
SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND p.proname IN ('migrate_consent_ledger', 'rotate_audit_ledger')
	   AND has_function_privilege('public', p.oid, 'EXECUTE')
$$, 'PUBLIC may execute neither migrate_consent_ledger nor rotate_audit_ledger');
SELECT function_privs_are('consent_ledger', 'migrate_consent_ledger', ARRAY[]::name[], 'consent_ledger_admin', ARRAY['EXECUTE'],
	'consent_ledger_admin may execute migrate_consent_ledger');
SELECT function_privs_are('consent_ledger', 'rotate_audit_ledger', ARRAY[]::name[], 'consent_ledger_admin', ARRAY['EXECUTE'],
	'consent_ledger_admin may execute rotate_audit_ledger');
SELECT function_privs_are('consent_ledger', 'migrate_consent_ledger', ARRAY[]::name[], 'consent_ledger_auditor', ARRAY[]::text[],
	'consent_ledger_auditor may not execute migrate_consent_ledger');
SELECT function_privs_are('consent_ledger', 'rotate_audit_ledger', ARRAY[]::name[], 'consent_ledger_recorder', ARRAY[]::text[],
	'consent_ledger_recorder may not execute rotate_audit_ledger');
GRANT EXECUTE ON FUNCTION consent_ledger.migrate_consent_ledger(), consent_ledger.rotate_audit_ledger() TO cl08_owner;
SET LOCAL ROLE cl08_owner;
SELECT throws_ok($$SELECT consent_ledger.migrate_consent_ledger()$$, '42501',
	'permission denied to migrate the consent ledger', 'a non-admin with EXECUTE granted may not migrate the consent ledger');
SELECT throws_ok($$SELECT consent_ledger.rotate_audit_ledger()$$, '42501',
	'permission denied to rotate the audit ledger', 'a non-admin with EXECUTE granted may not rotate the audit ledger');
RESET ROLE;
-- a consent ledger made by this version commits to its evidence already
SET LOCAL ROLE cl08_admin;
SELECT is(consent_ledger.migrate_consent_ledger(), 0::bigint, 'migrate_consent_ledger() of a current consent ledger moves nothing');
RESET ROLE;
-- a rotation by an administrator who is no superuser (rolled back with the rest)
CREATE TABLE cl08_audited (id int PRIMARY KEY);
SELECT consent_ledger.audit('cl08_audited');
INSERT INTO cl08_audited VALUES (1);
SET LOCAL ROLE cl08_admin;
CREATE TEMP TABLE cl08_rotated AS SELECT consent_ledger.rotate_audit_ledger()::text AS old;
RESET ROLE;
SELECT matches((SELECT old FROM cl08_rotated), '^consent_ledger\.audit_log_ledger_[0-9]+$',
	'rotate_audit_ledger() returns the retired ledger under its new name');
SELECT is((SELECT personal::text FROM consent_ledger.ledgers WHERE relid = 'consent_ledger.audit_log'::regclass),
	'{row_key,old_row_hash,new_row_hash,old_subject,new_subject}', 'the new audit ledger has personal row keys, row hashes and row subjects');
INSERT INTO cl08_audited VALUES (2);
SELECT is((SELECT string_agg(row_key, ',') FROM consent_ledger.audit_log WHERE relid = 'cl08_audited'::regclass),
	'(id)=(2)', 'the next record goes into the new audit ledger');

SELECT * FROM finish();
ROLLBACK;
