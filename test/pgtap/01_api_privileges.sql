-- consent_ledger API surface and privileges: every SQL function with its
-- argument names and types, who may execute what, the extension's roles,
-- and that nobody but the extension writes its internal tables.
-- Runs in one transaction that is rolled back (roles included).
BEGIN;
SELECT plan(124);

-- ---------------------------------------------------------------------
-- Functions: existence, argument names and types, result types
-- ---------------------------------------------------------------------
SELECT has_function('consent_ledger', 'create_ledger', ARRAY['regclass'], 'create_ledger(regclass) exists');
SELECT has_function('consent_ledger', 'retire_ledger', ARRAY['regclass'], 'retire_ledger(regclass) exists');
SELECT has_function('consent_ledger', 'verify', ARRAY['regclass'], 'verify(regclass) exists');
SELECT has_function('consent_ledger', 'seal', ARRAY[]::name[], 'seal() exists');
SELECT has_function('consent_ledger', 'public_key', ARRAY[]::name[], 'public_key() exists');
SELECT has_function('consent_ledger', 'key_id', ARRAY[]::name[], 'key_id() exists');
SELECT has_function('consent_ledger', 'verifier_key', ARRAY[]::name[], 'verifier_key() exists');
SELECT has_function('consent_ledger', 'checkpoint', ARRAY['regclass'], 'checkpoint(regclass) exists');
SELECT has_function('consent_ledger', 'verify_checkpoint', ARRAY['jsonb'], 'verify_checkpoint(jsonb) exists');
SELECT has_function('consent_ledger', 'verify_checkpoint', ARRAY['text'], 'verify_checkpoint(text) exists');
SELECT has_function('consent_ledger', 'verify_checkpoint_detail', ARRAY['text'], 'verify_checkpoint_detail(text) exists');
SELECT has_function('consent_ledger', 'inclusion_proof', ARRAY['regclass', 'bigint'], 'inclusion_proof(regclass, bigint) exists');
SELECT has_function('consent_ledger', 'inclusion_proof', ARRAY['regclass', 'bigint', 'bigint'], 'inclusion_proof(regclass, bigint, bigint) exists');
SELECT has_function('consent_ledger', 'consistency_proof', ARRAY['regclass', 'bigint', 'bigint'], 'consistency_proof(regclass, bigint, bigint) exists');
SELECT has_function('consent_ledger', 'export', ARRAY['regclass'], 'export(regclass) exists');
SELECT has_function('consent_ledger', 'leaf_data', ARRAY['regclass', 'bigint'], 'leaf_data(regclass, bigint) exists');

-- argument names (callers may use named notation)
SELECT is(pg_get_function_arguments('consent_ledger.create_ledger(regclass)'::regprocedure),
		  'relation regclass', 'create_ledger argument names');
SELECT is(pg_get_function_arguments('consent_ledger.retire_ledger(regclass)'::regprocedure),
		  'relation regclass', 'retire_ledger argument names');
SELECT is(pg_get_function_arguments('consent_ledger.verify(regclass)'::regprocedure),
		  'relation regclass DEFAULT NULL::regclass', 'verify argument names and default');
SELECT is(pg_get_function_arguments('consent_ledger.checkpoint(regclass)'::regprocedure),
		  'relation regclass', 'checkpoint argument names');
SELECT is(pg_get_function_arguments('consent_ledger.verify_checkpoint(jsonb)'::regprocedure),
		  'checkpoint jsonb', 'verify_checkpoint argument names');
SELECT is(pg_get_function_arguments('consent_ledger.verify_checkpoint(text)'::regprocedure),
		  'checkpoint text', 'verify_checkpoint(text) argument names');
SELECT is(pg_get_function_arguments('consent_ledger.verify_checkpoint_detail(text)'::regprocedure),
		  'checkpoint text', 'verify_checkpoint_detail(text) argument names');
SELECT is(pg_get_function_arguments('consent_ledger.inclusion_proof(regclass, bigint)'::regprocedure),
		  'relation regclass, leaf bigint', 'inclusion_proof/2 argument names');
SELECT is(pg_get_function_arguments('consent_ledger.inclusion_proof(regclass, bigint, bigint)'::regprocedure),
		  'relation regclass, leaf bigint, tree_size bigint', 'inclusion_proof/3 argument names');
SELECT is(pg_get_function_arguments('consent_ledger.consistency_proof(regclass, bigint, bigint)'::regprocedure),
		  'relation regclass, old_size bigint, new_size bigint', 'consistency_proof argument names');
SELECT is(pg_get_function_arguments('consent_ledger.export(regclass)'::regprocedure),
		  'relation regclass', 'export argument names');
SELECT is(pg_get_function_arguments('consent_ledger.leaf_data(regclass, bigint)'::regprocedure),
		  'relation regclass, leaf bigint', 'leaf_data argument names');

SELECT function_returns('consent_ledger', 'create_ledger', ARRAY['regclass'], 'void', 'create_ledger returns void');
SELECT function_returns('consent_ledger', 'retire_ledger', ARRAY['regclass'], 'void', 'retire_ledger returns void');
SELECT function_returns('consent_ledger', 'verify', ARRAY['regclass'], 'setof record', 'verify returns a set');
SELECT is(pg_get_function_result('consent_ledger.verify(regclass)'::regprocedure),
		  'TABLE(relation regclass, rows bigint, pending bigint, valid boolean, problem text)',
		  'verify returns TABLE(relation, rows, pending, valid, problem)');
SELECT function_returns('consent_ledger', 'seal', ARRAY[]::name[], 'bigint', 'seal returns bigint');
SELECT function_returns('consent_ledger', 'public_key', ARRAY[]::name[], 'text', 'public_key returns text');
SELECT function_returns('consent_ledger', 'key_id', ARRAY[]::name[], 'text', 'key_id returns text');
SELECT function_returns('consent_ledger', 'verifier_key', ARRAY[]::name[], 'text', 'verifier_key returns text');
SELECT function_returns('consent_ledger', 'checkpoint', ARRAY['regclass'], 'jsonb', 'checkpoint returns jsonb');
SELECT function_returns('consent_ledger', 'verify_checkpoint', ARRAY['jsonb'], 'boolean', 'verify_checkpoint returns boolean');
SELECT function_returns('consent_ledger', 'verify_checkpoint', ARRAY['text'], 'boolean', 'verify_checkpoint(text) returns boolean');
SELECT is(pg_get_function_result('consent_ledger.verify_checkpoint_detail(text)'::regprocedure),
		  'TABLE(valid boolean, reason text)', 'verify_checkpoint_detail(text) returns TABLE(valid, reason)');
SELECT function_returns('consent_ledger', 'inclusion_proof', ARRAY['regclass', 'bigint'], 'jsonb', 'inclusion_proof/2 returns jsonb');
SELECT function_returns('consent_ledger', 'inclusion_proof', ARRAY['regclass', 'bigint', 'bigint'], 'jsonb', 'inclusion_proof/3 returns jsonb');
SELECT function_returns('consent_ledger', 'consistency_proof', ARRAY['regclass', 'bigint', 'bigint'], 'jsonb', 'consistency_proof returns jsonb');
SELECT function_returns('consent_ledger', 'export', ARRAY['regclass'], 'setof text', 'export returns setof text');
SELECT function_returns('consent_ledger', 'leaf_data', ARRAY['regclass', 'bigint'], 'bytea', 'leaf_data returns bytea');

-- NULL handling: everything taking arguments is STRICT except verify,
-- whose NULL means "every ledger"
SELECT is_strict('consent_ledger', 'create_ledger', ARRAY['regclass'], 'create_ledger is STRICT');
SELECT is_strict('consent_ledger', 'retire_ledger', ARRAY['regclass'], 'retire_ledger is STRICT');
SELECT isnt_strict('consent_ledger', 'verify', ARRAY['regclass'], 'verify is not STRICT (NULL = all ledgers)');
SELECT is_strict('consent_ledger', 'checkpoint', ARRAY['regclass'], 'checkpoint is STRICT');
SELECT is_strict('consent_ledger', 'verify_checkpoint', ARRAY['jsonb'], 'verify_checkpoint is STRICT');
SELECT is_strict('consent_ledger', 'verify_checkpoint', ARRAY['text'], 'verify_checkpoint(text) is STRICT');
SELECT is_strict('consent_ledger', 'verify_checkpoint_detail', ARRAY['text'], 'verify_checkpoint_detail(text) is STRICT');
SELECT is_strict('consent_ledger', 'inclusion_proof', ARRAY['regclass', 'bigint'], 'inclusion_proof/2 is STRICT');
SELECT is_strict('consent_ledger', 'inclusion_proof', ARRAY['regclass', 'bigint', 'bigint'], 'inclusion_proof/3 is STRICT');
SELECT is_strict('consent_ledger', 'consistency_proof', ARRAY['regclass', 'bigint', 'bigint'], 'consistency_proof is STRICT');
SELECT is_strict('consent_ledger', 'export', ARRAY['regclass'], 'export is STRICT');
SELECT is_strict('consent_ledger', 'leaf_data', ARRAY['regclass', 'bigint'], 'leaf_data is STRICT');

SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace AND p.prosecdef
	   AND NOT coalesce(p.proconfig::text[] && ARRAY['search_path=pg_catalog', 'search_path=pg_catalog, pg_temp', 'search_path=""'], false)
$$, 'every SECURITY DEFINER function pins search_path');

-- ---------------------------------------------------------------------
-- EXECUTE: PUBLIC only on the public-key functions; the rest by role
-- ---------------------------------------------------------------------
SELECT set_eq($$
	SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND has_function_privilege('public', p.oid, 'EXECUTE')
$$, ARRAY['consent_ledger.public_key()', 'consent_ledger.key_id()', 'consent_ledger.verifier_key()',
		 -- 1.3: the witness's public key (README "Witnesses")
		 'consent_ledger.witness_key()',
		 -- the row policy checks run as whoever reads a protected table or view
		 'consent_ledger.allowed(text)', 'consent_ledger.allowed(bigint)',
		 'consent_ledger.allowed(integer)', 'consent_ledger.allowed(uuid)',
		 'consent_ledger.view_allows(bigint,text)', 'consent_ledger.view_allows(bigint,bigint)',
		 'consent_ledger.view_allows(bigint,integer)', 'consent_ledger.view_allows(bigint,uuid)'],
	'PUBLIC may execute the public-key functions and the policy checks only');

-- (set_has, not set_eq: later issues add functions of their own)
SELECT set_has($$
	SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND has_function_privilege('consent_ledger_admin', p.oid, 'EXECUTE')
$$, $$VALUES ('consent_ledger.create_ledger(regclass)'),
		  ('consent_ledger.retire_ledger(regclass)'),
		  ('consent_ledger.seal()'),
		  ('consent_ledger.verify(regclass)'),
		  ('consent_ledger.checkpoint(regclass)'),
		  ('consent_ledger.verify_checkpoint(jsonb)'),
		  ('consent_ledger.verify_checkpoint_detail(jsonb)'),
		  ('consent_ledger.verify_checkpoint(text)'),
		  ('consent_ledger.verify_checkpoint_detail(text)'),
		  ('consent_ledger.ledger(text)'),
		  ('consent_ledger.inclusion_proof(regclass,bigint)'),
		  ('consent_ledger.inclusion_proof(regclass,bigint,bigint)'),
		  ('consent_ledger.consistency_proof(regclass,bigint,bigint)'),
		  ('consent_ledger.export(regclass)'),
		  ('consent_ledger.leaf_data(regclass,bigint)'),
		  ('consent_ledger.public_key()'),
		  ('consent_ledger.key_id()'),
		  ('consent_ledger.verifier_key()')$$,
	'consent_ledger_admin may execute the admin and auditor functions');

SELECT set_has($$
	SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND has_function_privilege('consent_ledger_auditor', p.oid, 'EXECUTE')
$$, $$VALUES ('consent_ledger.verify(regclass)'),
		  ('consent_ledger.checkpoint(regclass)'),
		  ('consent_ledger.verify_checkpoint(jsonb)'),
		  ('consent_ledger.verify_checkpoint_detail(jsonb)'),
		  ('consent_ledger.verify_checkpoint(text)'),
		  ('consent_ledger.verify_checkpoint_detail(text)'),
		  ('consent_ledger.ledger(text)'),
		  ('consent_ledger.inclusion_proof(regclass,bigint)'),
		  ('consent_ledger.inclusion_proof(regclass,bigint,bigint)'),
		  ('consent_ledger.consistency_proof(regclass,bigint,bigint)'),
		  ('consent_ledger.export(regclass)'),
		  ('consent_ledger.leaf_data(regclass,bigint)'),
		  ('consent_ledger.public_key()'),
		  ('consent_ledger.key_id()'),
		  ('consent_ledger.verifier_key()')$$,
	'consent_ledger_auditor may execute the auditor functions');

SELECT function_privs_are('consent_ledger', 'create_ledger', ARRAY['regclass'], 'consent_ledger_auditor', ARRAY[]::text[],
	'consent_ledger_auditor may not execute create_ledger');
SELECT function_privs_are('consent_ledger', 'seal', ARRAY[]::name[], 'consent_ledger_auditor', ARRAY[]::text[],
	'consent_ledger_auditor may not execute seal');
SELECT function_privs_are('consent_ledger', 'retire_ledger', ARRAY['regclass'], 'consent_ledger_auditor', ARRAY[]::text[],
	'consent_ledger_auditor may not execute retire_ledger');
SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	 WHERE p.pronamespace = 'consent_ledger'::regnamespace
	   AND p.proname IN ('create_ledger', 'retire_ledger', 'seal', 'ledger_stamp', 'ledger_guard')
	   AND (has_function_privilege('consent_ledger_recorder', p.oid, 'EXECUTE')
			OR has_function_privilege('consent_ledger_auditor', p.oid, 'EXECUTE'))
$$, 'neither consent_ledger_recorder nor consent_ledger_auditor may administer ledgers');
SELECT function_privs_are('consent_ledger', 'ledger_stamp', ARRAY[]::name[], 'consent_ledger_admin', ARRAY[]::text[],
	'nobody but the owner executes the trigger function ledger_stamp');
SELECT function_privs_are('consent_ledger', 'ledger_guard', ARRAY[]::name[], 'consent_ledger_admin', ARRAY[]::text[],
	'nobody but the owner executes the trigger function ledger_guard');

-- ---------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------
SELECT has_role('consent_ledger_admin', 'role consent_ledger_admin exists');
SELECT has_role('consent_ledger_auditor', 'role consent_ledger_auditor exists');
SELECT has_role('consent_ledger_recorder', 'role consent_ledger_recorder exists');
SELECT ok(NOT rolcanlogin, 'consent_ledger_admin is NOLOGIN') FROM pg_roles WHERE rolname = 'consent_ledger_admin';
SELECT ok(NOT rolcanlogin, 'consent_ledger_auditor is NOLOGIN') FROM pg_roles WHERE rolname = 'consent_ledger_auditor';
SELECT ok(NOT rolcanlogin, 'consent_ledger_recorder is NOLOGIN') FROM pg_roles WHERE rolname = 'consent_ledger_recorder';
SELECT is_empty($$
	SELECT rolname FROM pg_roles
	 WHERE rolname IN ('consent_ledger_admin', 'consent_ledger_auditor', 'consent_ledger_recorder')
	   AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)
$$, 'no extension role is superuser, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS');

SELECT schema_privs_are('consent_ledger', 'consent_ledger_admin', ARRAY['USAGE'], 'consent_ledger_admin has USAGE on the schema');
SELECT schema_privs_are('consent_ledger', 'consent_ledger_auditor', ARRAY['USAGE'], 'consent_ledger_auditor has USAGE on the schema');

-- ---------------------------------------------------------------------
-- Internal tables: readable by the auditor (and admin), written by nobody
-- ---------------------------------------------------------------------
SELECT table_privs_are('consent_ledger', 'ledgers', 'consent_ledger_auditor', ARRAY['SELECT'], 'auditor may only read consent_ledger.ledgers');
SELECT table_privs_are('consent_ledger', 'pending', 'consent_ledger_auditor', ARRAY['SELECT'], 'auditor may only read consent_ledger.pending');
SELECT table_privs_are('consent_ledger', 'log', 'consent_ledger_auditor', ARRAY['SELECT'], 'auditor may only read consent_ledger.log');
SELECT table_privs_are('consent_ledger', 'checkpoints', 'consent_ledger_auditor', ARRAY['SELECT'], 'auditor may only read consent_ledger.checkpoints');
SELECT table_privs_are('consent_ledger', 'keys', 'consent_ledger_auditor', ARRAY['SELECT'], 'auditor may only read consent_ledger.keys');

CREATE TEMP TABLE cl01_internal (rel regclass);
INSERT INTO cl01_internal VALUES ('consent_ledger.ledgers'), ('consent_ledger.pending'),
	('consent_ledger.log'), ('consent_ledger.checkpoints'), ('consent_ledger.keys'),
	('consent_ledger.witness_logs'), ('consent_ledger.cosignatures');
-- 1.3 checkpoint shipping (README "Shipping checkpoints"): written by the sealer only
INSERT INTO cl01_internal VALUES ('consent_ledger.checkpoint_shipments'),
	('consent_ledger.checkpoint_shipping_status'), ('consent_ledger.checkpoint_shipping');
CREATE TEMP TABLE cl01_writes (priv text);
INSERT INTO cl01_writes VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'),
	('REFERENCES'), ('TRIGGER');

SELECT is_empty($$
	SELECT rel, priv FROM cl01_internal, cl01_writes
	 WHERE has_table_privilege('public', rel, priv)
$$, 'PUBLIC cannot write the internal tables');
SELECT is_empty($$
	SELECT rel FROM cl01_internal WHERE has_table_privilege('public', rel, 'SELECT')
$$, 'PUBLIC cannot read the internal tables');
SELECT is_empty($$
	SELECT rel, priv FROM cl01_internal, cl01_writes
	 WHERE has_table_privilege('consent_ledger_auditor', rel, priv)
$$, 'consent_ledger_auditor cannot write the internal tables');
SELECT is_empty($$
	SELECT rel, priv FROM cl01_internal, cl01_writes
	 WHERE has_table_privilege('consent_ledger_admin', rel, priv)
$$, 'consent_ledger_admin cannot write the internal tables');
SELECT is_empty($$
	SELECT rel, priv FROM cl01_internal, cl01_writes
	 WHERE has_table_privilege('consent_ledger_recorder', rel, priv)
$$, 'consent_ledger_recorder cannot write the internal tables');
SELECT is_empty($$
	SELECT s.seq, p.priv
	  FROM (VALUES ('consent_ledger.txn_seq'::regclass), ('consent_ledger.ledger_id_seq'::regclass)) s(seq),
		   (VALUES ('USAGE'), ('UPDATE')) p(priv),
		   (VALUES ('public'), ('consent_ledger_admin'), ('consent_ledger_auditor'), ('consent_ledger_recorder')) r(role)
	 WHERE has_sequence_privilege(r.role, s.seq, p.priv)
$$, 'no extension role nor PUBLIC can advance the internal sequences');

-- ---------------------------------------------------------------------
-- Behaviour under each role
-- ---------------------------------------------------------------------
CREATE ROLE cl01_plain NOLOGIN;
CREATE ROLE cl01_admin NOLOGIN IN ROLE consent_ledger_admin;
CREATE ROLE cl01_owner NOLOGIN IN ROLE consent_ledger_admin;
CREATE ROLE cl01_auditor NOLOGIN IN ROLE consent_ledger_auditor;
CREATE ROLE cl01_plain_owner NOLOGIN;

CREATE TABLE public.cl01_owned (id int PRIMARY KEY, note text);
ALTER TABLE public.cl01_owned OWNER TO cl01_owner;
CREATE TABLE public.cl01_plain_owned (id int PRIMARY KEY, note text);
ALTER TABLE public.cl01_plain_owned OWNER TO cl01_plain_owner;
CREATE TABLE public.cl01_other (id int PRIMARY KEY);

-- a role with no extension role
SET ROLE cl01_plain;
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl01_other')$$, '42501', NULL,
	'a plain role cannot call create_ledger');
SELECT throws_ok($$SELECT consent_ledger.seal()$$, '42501', NULL, 'a plain role cannot call seal');
SELECT throws_ok($$SELECT * FROM consent_ledger.verify()$$, '42501', NULL, 'a plain role cannot call verify');
SELECT throws_ok($$SELECT * FROM consent_ledger.ledgers$$, '42501', NULL, 'a plain role cannot read consent_ledger.ledgers');
-- it cannot even name the schema, so it cannot lock the extension's tables
-- at parse time (PREPARE) to stall the sealer or the audit writer
SELECT throws_ok($$PREPARE cl01_lock AS DELETE FROM consent_ledger.log$$, '42501',
	'permission denied for schema consent_ledger', 'a plain role cannot name the extension''s tables, not even in PREPARE');
RESET ROLE;
SELECT is(has_schema_privilege('public', 'consent_ledger', 'USAGE'), false, 'PUBLIC has no USAGE on the schema');
GRANT USAGE ON SCHEMA consent_ledger TO cl01_plain;
SET ROLE cl01_plain;
SELECT lives_ok($$SELECT consent_ledger.public_key(), consent_ledger.key_id(), consent_ledger.verifier_key()$$,
	'a plain role given USAGE on the schema can call public_key(), key_id() and verifier_key()');
RESET ROLE;
REVOKE USAGE ON SCHEMA consent_ledger FROM cl01_plain;

-- the owner of a table, without consent_ledger_admin
SET ROLE cl01_plain_owner;
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl01_plain_owned')$$, '42501', NULL,
	'the table owner without consent_ledger_admin cannot call create_ledger');
RESET ROLE;

-- consent_ledger_admin, not the table's owner
SET ROLE cl01_admin;
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl01_other')$$, '42501', NULL,
	'a consent_ledger_admin member who does not own the table gets 42501');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl01_owned')$$, '42501', NULL,
	'... also for a table owned by another admin member');
RESET ROLE;
SELECT is_empty($$SELECT 1 FROM consent_ledger.ledgers WHERE relid IN ('public.cl01_other'::regclass, 'public.cl01_owned'::regclass)$$,
	'the refused create_ledger calls registered nothing');
SELECT hasnt_column('public', 'cl01_other', 'ledger_txn', '... and added no ledger column');

-- the owner, in consent_ledger_admin
SET ROLE cl01_owner;
SELECT lives_ok($$SELECT consent_ledger.create_ledger('public.cl01_owned')$$,
	'the owner in consent_ledger_admin can call create_ledger');
SELECT lives_ok($$INSERT INTO public.cl01_owned (id, note) VALUES (1, 'one')$$,
	'the owner can insert into the new ledger');
RESET ROLE;
SELECT ok(EXISTS (SELECT 1 FROM consent_ledger.ledgers WHERE relid = 'public.cl01_owned'::regclass AND retired_at IS NULL),
	'the table is registered as a live ledger');
SELECT has_column('public', 'cl01_owned', 'ledger_txn', 'create_ledger added ledger_txn');
SELECT col_type_is('public', 'cl01_owned', 'ledger_txn', 'bigint', 'ledger_txn is bigint');
SELECT has_column('public', 'cl01_owned', 'ledger_ord', 'create_ledger added ledger_ord');
SELECT col_type_is('public', 'cl01_owned', 'ledger_ord', 'integer', 'ledger_ord is integer');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl01_owned')$$, '42710', NULL,
	'create_ledger twice gets 42710');

-- retire: the owner may, another admin may not
SET ROLE cl01_admin;
SELECT throws_ok($$SELECT consent_ledger.retire_ledger('public.cl01_owned')$$, '42501', NULL,
	'a consent_ledger_admin member who does not own the ledger cannot retire it');
RESET ROLE;

-- the auditor reads but does not administer or write
SET ROLE cl01_auditor;
SELECT lives_ok($$SELECT * FROM consent_ledger.verify('public.cl01_owned')$$, 'the auditor can call verify');
SELECT lives_ok($$SELECT count(*) FROM consent_ledger.log$$, 'the auditor can read consent_ledger.log');
SELECT throws_ok($$SELECT consent_ledger.create_ledger('public.cl01_other')$$, '42501', NULL,
	'the auditor cannot call create_ledger');
SELECT throws_ok($$SELECT consent_ledger.seal()$$, '42501', NULL, 'the auditor cannot call seal');
SELECT throws_ok($$SELECT consent_ledger.retire_ledger('public.cl01_owned')$$, '42501', NULL,
	'the auditor cannot call retire_ledger');
SELECT throws_ok($$INSERT INTO consent_ledger.log DEFAULT VALUES$$, '42501', NULL,
	'the auditor cannot insert into consent_ledger.log');
SELECT throws_ok($$DELETE FROM consent_ledger.pending$$, '42501', NULL,
	'the auditor cannot delete from consent_ledger.pending');
SELECT throws_ok($$UPDATE consent_ledger.checkpoints SET tree_size = 0$$, '42501', NULL,
	'the auditor cannot update consent_ledger.checkpoints');
SELECT throws_ok($$TRUNCATE consent_ledger.keys$$, '42501', NULL,
	'the auditor cannot truncate consent_ledger.keys');
RESET ROLE;

-- the admin cannot write the internal tables either
SET ROLE cl01_owner;
SELECT throws_ok($$UPDATE consent_ledger.ledgers SET retired_at = now()$$, '42501', NULL,
	'an admin cannot update consent_ledger.ledgers');
SELECT throws_ok($$INSERT INTO consent_ledger.pending DEFAULT VALUES$$, '42501', NULL,
	'an admin cannot insert into consent_ledger.pending');
SELECT throws_ok($$DELETE FROM consent_ledger.log$$, '42501', NULL,
	'an admin cannot delete from consent_ledger.log');
SELECT throws_ok($$SELECT nextval('consent_ledger.txn_seq')$$, '42501', NULL,
	'an admin cannot advance consent_ledger.txn_seq');
SELECT lives_ok($$SELECT consent_ledger.seal()$$, 'an admin can call seal');
SELECT lives_ok($$SELECT consent_ledger.retire_ledger('public.cl01_owned')$$,
	'the owner in consent_ledger_admin can retire the ledger');
RESET ROLE;
SELECT ok((SELECT retired_at IS NOT NULL FROM consent_ledger.ledgers WHERE relid = 'public.cl01_owned'::regclass),
	'the ledger is marked retired');

SELECT * FROM finish();
ROLLBACK;
