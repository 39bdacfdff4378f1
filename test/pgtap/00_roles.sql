-- Every documented call, made by each role the README ("SQL interface")
-- says may make it, with its exact result; and the same call by the
-- extension's other roles, with its exact SQLSTATE.  Roles: an
-- administrator who owns the tables (member of consent_ledger_admin), an
-- auditor, a recorder, an analyst (no extension role, authorized for one
-- purpose) and a plain role.
--
-- This file runs first (00_): the administrator's audit() below is the
-- first audit() in the database, which creates the audit ledger.  Issue:
-- that call failed with 42501 on audit_log (the adoption UPDATE of the new
-- audit ledger ran as the caller) and burned a ledger id.
--
-- Sealing and the audit writer see only committed work, so nothing here
-- runs in a transaction block: every statement commits.  The end removes
-- the ledger and the protected table again (purposes, consent events and
-- the audited table stay: purposes are never undefined, the consent ledger
-- is append-only and audited tables cannot be dropped).  Its preconditions
-- need a database where audit() was never called (test/pgtap/run.sh makes
-- a new one).
SET client_min_messages = warning;

DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT * FROM (VALUES
		('cl00_admin', 'IN ROLE consent_ledger_admin'),
		('cl00_auditor', 'IN ROLE consent_ledger_auditor'),
		('cl00_recorder', 'IN ROLE consent_ledger_recorder'),
		('cl00_analyst', ''),
		('cl00_plain', '')) v(name, opts)
	LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN %s', r.name, r.opts);
		END IF;
	END LOOP;
END $$;
GRANT CREATE ON SCHEMA public TO cl00_admin;
CREATE TABLE public.cl00_led (id int PRIMARY KEY, note text);
CREATE TABLE public.cl00_prot (id int PRIMARY KEY, subj text NOT NULL);
CREATE TABLE public.cl00_aud (id int PRIMARY KEY, note text);
ALTER TABLE public.cl00_led OWNER TO cl00_admin;
ALTER TABLE public.cl00_prot OWNER TO cl00_admin;
ALTER TABLE public.cl00_aud OWNER TO cl00_admin;
INSERT INTO public.cl00_prot VALUES (1, 'cl00_s1'), (2, 'cl00_s2'), (3, 'cl00_s3');
CREATE TEMP TABLE cl00_keep (k text PRIMARY KEY, v text);
GRANT ALL ON cl00_keep TO PUBLIC;

SELECT plan(77);

-- ---------------------------------------------------------------------
-- audit(): the first call in the database, by an administrator who owns
-- the table
-- ---------------------------------------------------------------------
SELECT ok(to_regclass('consent_ledger.audit_log') IS NULL,
	'precondition: the audit ledger does not exist yet (this file runs first in a new database)');
SELECT is((SELECT count(*) FROM consent_ledger.ledgers), 0::bigint,
	'precondition: no ledger registered yet');
SET ROLE cl00_admin;
SELECT lives_ok($$SELECT consent_ledger.audit('public.cl00_aud')$$,
	'admin (table owner): the first audit() in the database works');
SELECT lives_ok($$INSERT INTO public.cl00_aud VALUES (1, 'one')$$, 'admin: insert into the audited table');
SELECT throws_ok($$SELECT consent_ledger.audit('public.cl00_aud')$$, '42710', NULL,
	'admin: audit() twice gets 42710');
RESET ROLE;
SELECT is((SELECT pg_catalog.array_agg(ledger_id ORDER BY ledger_id) FROM consent_ledger.ledgers),
	ARRAY[1], 'the audit ledger got ledger id 1 (no id burned)');
SELECT is((SELECT relid FROM consent_ledger.ledgers WHERE ledger_id = 1),
	'consent_ledger.audit_log'::regclass, '... and it is the audit ledger');
SELECT is((SELECT last_value FROM consent_ledger.ledger_id_seq), 1::bigint,
	'ledger_id_seq was advanced once');

SET ROLE cl00_auditor;
SELECT is((SELECT pg_catalog.array_agg(operation || ':' || outcome) FROM consent_ledger.audit_log
			WHERE relid = 'public.cl00_aud'::regclass),
	ARRAY['INSERT:committed'], 'auditor: the insert is recorded in audit_log');
RESET ROLE;
SET ROLE cl00_recorder;
SELECT throws_ok($$SELECT consent_ledger.audit('public.cl00_led')$$, '42501', NULL, 'recorder: audit() 42501');
RESET ROLE;
SET ROLE cl00_auditor;
SELECT throws_ok($$SELECT consent_ledger.audit('public.cl00_led')$$, '42501', NULL, 'auditor: audit() 42501');
RESET ROLE;

-- ---------------------------------------------------------------------
-- Ledgers: create_ledger, seal, retire_ledger (admin); verify and the
-- receipt functions (auditor, admin)
-- ---------------------------------------------------------------------
SET ROLE cl00_admin;
SELECT lives_ok($$SELECT consent_ledger.create_ledger('public.cl00_led')$$, 'admin (owner): create_ledger');
SELECT lives_ok($$INSERT INTO public.cl00_led (id, note) VALUES (1, 'a'), (2, 'b')$$, 'admin: insert two rows');
SELECT lives_ok($$SELECT consent_ledger.seal()$$, 'admin: seal()');
SELECT is((SELECT row("rows", pending, valid, problem)::text FROM consent_ledger.verify('public.cl00_led')),
	'(2,0,t,)', 'admin: verify() = 2 rows, 0 pending, valid');
INSERT INTO cl00_keep SELECT 'cp', consent_ledger.checkpoint('public.cl00_led')::text;
SELECT is((SELECT (v::jsonb ->> 'tree_size')::bigint FROM cl00_keep WHERE k = 'cp'), 2::bigint,
	'admin: checkpoint() has tree_size 2');
SELECT is(consent_ledger.verify_checkpoint((SELECT v::jsonb FROM cl00_keep WHERE k = 'cp')), true,
	'admin: verify_checkpoint() of it is true');
SELECT is(consent_ledger.verify_checkpoint((SELECT v FROM cl00_keep WHERE k = 'cp')), true,
	'admin: verify_checkpoint(text) of it is true');
SELECT is((consent_ledger.inclusion_proof('public.cl00_led', 1) ->> 'tree_size')::bigint, 2::bigint,
	'admin: inclusion_proof(leaf 1)');
SELECT is((consent_ledger.consistency_proof('public.cl00_led', 1, 2) ->> 'new_size')::bigint, 2::bigint,
	'admin: consistency_proof(1, 2)');
SELECT cmp_ok((SELECT count(*) FROM consent_ledger.export('public.cl00_led')), '>=', 3::bigint,
	'admin: export() has a header and the leaves');
SELECT is(length(consent_ledger.leaf_data('public.cl00_led', 0)) > 0, true, 'admin: leaf_data(0)');
SELECT is(length(decode(consent_ledger.public_key(), 'base64')), 32, 'admin: public_key() is 32 bytes');
SELECT is(consent_ledger.key_id() ~ '^[0-9a-f]{8}$', true, 'admin: key_id() is 8 hex digits');
SELECT is(consent_ledger.verifier_key() LIKE '%+' || consent_ledger.key_id() || '+%', true,
	'admin: verifier_key() names the key id');
RESET ROLE;

SET ROLE cl00_auditor;
SELECT is((SELECT row("rows", pending, valid, problem)::text FROM consent_ledger.verify('public.cl00_led')),
	'(2,0,t,)', 'auditor: verify() = 2 rows, 0 pending, valid');
SELECT is(consent_ledger.checkpoint('public.cl00_led')::text, (SELECT v FROM cl00_keep WHERE k = 'cp'),
	'auditor: checkpoint() is the same receipt');
SELECT is(consent_ledger.verify_checkpoint((SELECT v::jsonb FROM cl00_keep WHERE k = 'cp')), true,
	'auditor: verify_checkpoint() is true');
SELECT is((SELECT row(valid, reason)::text FROM consent_ledger.verify_checkpoint_detail((SELECT v FROM cl00_keep WHERE k = 'cp'))),
	'(t,)', 'auditor: verify_checkpoint_detail(text) is true');
SELECT is((consent_ledger.inclusion_proof('public.cl00_led', 0, 2) ->> 'leaf_index')::bigint, 0::bigint,
	'auditor: inclusion_proof(leaf 0, size 2)');
SELECT is((consent_ledger.consistency_proof('public.cl00_led', 1, 2) ->> 'old_size')::bigint, 1::bigint,
	'auditor: consistency_proof(1, 2)');
SELECT cmp_ok((SELECT count(*) FROM consent_ledger.export('public.cl00_led')), '>=', 3::bigint,
	'auditor: export() of an unprotected ledger');
SELECT is(consent_ledger.leaf_data('public.cl00_led', 1) = (SELECT consent_ledger.leaf_data('public.cl00_led', 1)), true,
	'auditor: leaf_data(1)');
SELECT is(consent_ledger.key_id() ~ '^[0-9a-f]{8}$', true, 'auditor: key_id()');
SELECT throws_ok($$SELECT consent_ledger.seal()$$, '42501', NULL, 'auditor: seal() 42501');
SELECT throws_ok($$SELECT consent_ledger.retire_ledger('public.cl00_led')$$, '42501', NULL,
	'auditor: retire_ledger() 42501');
RESET ROLE;

SET ROLE cl00_recorder;
SELECT throws_ok($$SELECT * FROM consent_ledger.verify('public.cl00_led')$$, '42501', NULL, 'recorder: verify() 42501');
SELECT throws_ok($$SELECT consent_ledger.checkpoint('public.cl00_led')$$, '42501', NULL, 'recorder: checkpoint() 42501');
SELECT throws_ok($$SELECT consent_ledger.seal()$$, '42501', NULL, 'recorder: seal() 42501');
SELECT is(consent_ledger.key_id() ~ '^[0-9a-f]{8}$', true, 'recorder: key_id()');
RESET ROLE;

-- ---------------------------------------------------------------------
-- Consent: define_purpose, authorize_purpose (admin); grant_consent,
-- withdraw_consent (recorder, admin); has_consent (recorder, admin,
-- auditor)
-- ---------------------------------------------------------------------
SET ROLE cl00_admin;
SELECT lives_ok($$SELECT consent_ledger.define_purpose('cl00_analytics')$$, 'admin: define_purpose');
SELECT lives_ok($$SELECT consent_ledger.authorize_purpose('cl00_analyst', 'cl00_analytics')$$,
	'admin: authorize_purpose');
SELECT lives_ok($$SELECT consent_ledger.authorize_purpose('cl00_plain', 'cl00_analytics')$$,
	'admin: authorize_purpose (to be revoked)');
SELECT lives_ok($$SELECT consent_ledger.revoke_purpose('cl00_plain', 'cl00_analytics')$$,
	'admin: revoke_purpose');
SELECT cmp_ok(consent_ledger.grant_consent('cl00_s1', 'cl00_analytics'), '>', 0::bigint,
	'admin: grant_consent returns an event id');
RESET ROLE;
SET ROLE cl00_recorder;
SELECT cmp_ok(consent_ledger.grant_consent('cl00_s2', 'cl00_analytics'), '>', 0::bigint,
	'recorder: grant_consent returns an event id');
SELECT cmp_ok(consent_ledger.grant_consent('cl00_s3', 'cl00_analytics'), '>', 0::bigint,
	'recorder: grant_consent (to be withdrawn)');
SELECT cmp_ok(consent_ledger.withdraw_consent('cl00_s3', 'cl00_analytics'), '>', 0::bigint,
	'recorder: withdraw_consent returns an event id');
SELECT is(ARRAY[consent_ledger.has_consent('cl00_s1', 'cl00_analytics', clock_timestamp()),
				consent_ledger.has_consent('cl00_s3', 'cl00_analytics', clock_timestamp())],
	ARRAY[true, false], 'recorder: has_consent');
SELECT throws_ok($$SELECT consent_ledger.define_purpose('cl00_x')$$, '42501', NULL, 'recorder: define_purpose 42501');
SELECT throws_ok($$SELECT consent_ledger.authorize_purpose('cl00_recorder', 'cl00_analytics')$$, '42501', NULL,
	'recorder: authorize_purpose 42501');
RESET ROLE;
SET ROLE cl00_admin;
SELECT is(ARRAY[consent_ledger.has_consent('cl00_s2', 'cl00_analytics', clock_timestamp()),
				consent_ledger.has_consent('cl00_s3', 'cl00_analytics', clock_timestamp())],
	ARRAY[true, false], 'admin: has_consent');
SELECT cmp_ok(consent_ledger.withdraw_consent('cl00_nobody', 'cl00_analytics'), '>', 0::bigint,
	'admin: withdraw_consent');
RESET ROLE;
SET ROLE cl00_auditor;
SELECT is(consent_ledger.has_consent('cl00_s1', 'cl00_analytics', clock_timestamp()), true, 'auditor: has_consent');
SELECT throws_ok($$SELECT consent_ledger.grant_consent('cl00_s9', 'cl00_analytics')$$, '42501', NULL,
	'auditor: grant_consent 42501');
SELECT throws_ok($$SELECT consent_ledger.withdraw_consent('cl00_s1', 'cl00_analytics')$$, '42501', NULL,
	'auditor: withdraw_consent 42501');
SELECT is((SELECT count(*) FROM consent_ledger.consent_events WHERE subject LIKE 'cl00_s_'), 4::bigint,
	'auditor: reads the consent ledger');
RESET ROLE;
SET ROLE cl00_recorder;
SELECT is((SELECT state FROM consent_ledger.consent_state WHERE subject = 'cl00_s3' AND purpose = 'cl00_analytics'),
	'withdrawn', 'recorder: reads consent_state');
RESET ROLE;

-- ---------------------------------------------------------------------
-- Enforcement: protect, create_purpose_view, unprotect (admin); the
-- policy checks (everyone: here an analyst)
-- ---------------------------------------------------------------------
SET ROLE cl00_admin;
SELECT lives_ok($$SELECT consent_ledger.protect('public.cl00_prot', 'subj')$$, 'admin (owner): protect');
SELECT lives_ok($$SELECT consent_ledger.create_purpose_view('public.cl00_prot', 'cl00_analytics', 'public.cl00_v')$$,
	'admin: create_purpose_view');
SELECT lives_ok($$GRANT SELECT ON public.cl00_v TO cl00_plain$$, 'admin: grants SELECT on the purpose view');
RESET ROLE;
GRANT SELECT ON public.cl00_prot TO cl00_analyst;
SET ROLE cl00_analyst;
SELECT throws_ok($$SELECT count(*) FROM public.cl00_prot$$, '42501', NULL,
	'analyst: reading a protected table without a purpose is 42501');
SET consent_ledger.purpose = 'cl00_analytics';
SELECT is((SELECT array_agg(subj ORDER BY id) FROM public.cl00_prot), ARRAY['cl00_s1', 'cl00_s2'],
	'analyst with its purpose: exactly the consented rows');
RESET consent_ledger.purpose;
RESET ROLE;
SET ROLE cl00_plain;
SELECT is((SELECT array_agg(subj ORDER BY id) FROM public.cl00_v), ARRAY['cl00_s1', 'cl00_s2'],
	'plain role with SELECT on the purpose view: exactly the consented rows');
SELECT throws_ok($$SET consent_ledger.purpose = 'cl00_analytics'$$, '42501', NULL,
	'plain role (authorization revoked): declaring the purpose is 42501');
RESET ROLE;
SET ROLE cl00_auditor;
SELECT is((SELECT array_agg(relation::text || ':' || valid ORDER BY relation::text) FROM consent_ledger.verify()),
	ARRAY['cl00_led:true', 'consent_ledger.audit_log:true', 'consent_ledger.consent_events:true'],
	'auditor: verify() of every ledger, the consent and audit ledgers included');
SELECT cmp_ok((SELECT count(*) FROM consent_ledger.audit_log WHERE relid = 'public.cl00_prot'::regclass AND kind = 'read'),
	'>=', 2::bigint, 'auditor: the reads are recorded');
SELECT is(consent_ledger.row_hash('public.cl00_aud', ROW(1, 'one')::public.cl00_aud),
	(SELECT new_row_hash FROM consent_ledger.audit_log WHERE relid = 'public.cl00_aud'::regclass AND operation = 'INSERT'),
	'auditor: row_hash of the inserted row is the hash its audit record holds');
SELECT throws_ok($$SELECT consent_ledger.protect('public.cl00_aud', 'note')$$, '42501', NULL, 'auditor: protect 42501');
RESET ROLE;
SET ROLE cl00_recorder;
SELECT throws_ok($$SELECT consent_ledger.unprotect('public.cl00_prot')$$, '42501', NULL, 'recorder: unprotect 42501');
SELECT throws_ok($$SELECT consent_ledger.create_purpose_view('public.cl00_prot', 'cl00_analytics', 'public.cl00_v2')$$,
	'42501', NULL, 'recorder: create_purpose_view 42501');
RESET ROLE;
SET ROLE cl00_admin;
SELECT is((SELECT array_agg(relation::text || ':' || valid ORDER BY relation::text) FROM consent_ledger.verify()),
	ARRAY['cl00_led:true', 'consent_ledger.audit_log:true', 'consent_ledger.consent_events:true'],
	'admin: verify() of every ledger');
SELECT is(length(consent_ledger.row_hash('public.cl00_aud', (SELECT a FROM public.cl00_aud a WHERE id = 1))), 32,
	'admin: row_hash');
SELECT lives_ok($$SELECT consent_ledger.unprotect('public.cl00_prot')$$, 'admin: unprotect');
SELECT lives_ok($$SELECT consent_ledger.retire_ledger('public.cl00_led')$$, 'admin (owner): retire_ledger');
RESET ROLE;
SELECT is((SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.cl00_prot'::regclass),
	'cl00_admin', 'unprotect gave the table back to the administrator');
SELECT ok((SELECT retired_at IS NOT NULL FROM consent_ledger.ledgers WHERE relid = 'public.cl00_led'::regclass),
	'the ledger is retired');

SELECT * FROM finish();

DROP VIEW public.cl00_v;
-- (an audited table cannot be dropped: cl00_aud stays)
DROP TABLE public.cl00_led, public.cl00_prot;
REVOKE CREATE ON SCHEMA public FROM cl00_admin;
