-- Subject-signed consent (issue #17 item 1) and consent receipts (item 2):
-- subjects' keys, statements signed on "the subject's device" (openssl,
-- the client recipe README "Subject-signed consent" documents), every
-- refusal, purposes that take only signed grants, and receipts.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Three Ed25519 keys, made here by openssl as a subject's device would.
\set tmp `mktemp -d`
\setenv CL_TMP :tmp
\set made `for k in k1 k2 k3; do openssl genpkey -algorithm ed25519 -out "$CL_TMP/$k.pem" || exit 1; done; echo three keys`
\echo :made
\set pk1 `openssl pkey -in "$CL_TMP/k1.pem" -pubout -outform DER | tail -c 32 | base64`
\set pk2 `openssl pkey -in "$CL_TMP/k2.pem" -pubout -outform DER | tail -c 32 | base64`
\set pk3 `openssl pkey -in "$CL_TMP/k3.pem" -pubout -outform DER | tail -c 32 | base64`
-- signs $STMT's exact bytes with key $KEY: the signature, base64
\set sign 'printf %s "$STMT" > "$CL_TMP/s" && openssl pkeyutl -sign -inkey "$CL_TMP/$KEY.pem" -rawin -in "$CL_TMP/s" | base64 -w0'

-- The origin statements name: the consent ledger's.
SELECT consent_ledger.consent_origin() AS origin \gset
SELECT :'origin' = (SELECT origin FROM consent_ledger.ledgers
                    WHERE relid = 'consent_ledger.consent_events'::regclass) AS origin_is_the_consent_ledgers;

CREATE FUNCTION sc_consent(subject text, purpose text, action text, expires text, t bigint, nonce text)
RETURNS text LANGUAGE sql AS $$
  SELECT format(E'consent-ledger-consent/v1\norigin %s\nsubject %s\npurpose %s\naction %s\nexpires %s\ntime %s\nnonce %s\n',
                consent_ledger.consent_origin(), subject, purpose, action, expires, t, nonce) $$;
CREATE FUNCTION sc_key(subject text, key text, t bigint, nonce text)
RETURNS text LANGUAGE sql AS $$
  SELECT format(E'consent-ledger-subject-key/v1\norigin %s\nsubject %s\nkey %s\ntime %s\nnonce %s\n',
                consent_ledger.consent_origin(), subject, key, t, nonce) $$;

-- ---------------------------------------------------------------------
-- 1. Purposes that take only signed grants: only with legal basis
--    consent, and only under a parent that takes only signed ones too.
-- ---------------------------------------------------------------------
SELECT consent_ledger.define_purpose('sc.study', 'a study', require_subject_signature => true);
SELECT consent_ledger.define_purpose('sc.study.followup', parent => 'sc.study', require_subject_signature => true);
SELECT consent_ledger.define_purpose('sc.open', 'consent recorded by the operator');
SELECT consent_ledger.define_purpose('sc.open.signed', parent => 'sc.open', require_subject_signature => true);
SELECT consent_ledger.define_purpose('sc.billing', legal_basis => 'contract', require_subject_signature => true);
SELECT consent_ledger.define_purpose('sc.null', require_subject_signature => NULL);
SELECT purpose, parent, require_subject_signature FROM consent_ledger.purposes
WHERE purpose LIKE 'sc.%' ORDER BY purpose;

-- The operator cannot grant them: single, bulk; withdrawals it can record.
SELECT consent_ledger.grant_consent('sc-alice', 'sc.study');
SELECT consent_ledger.grant_consent(ARRAY['sc-alice', 'sc-bob'], 'sc.study.followup');
SELECT consent_ledger.grant_consent(42, 'sc.study');
SELECT consent_ledger.withdraw_consent('sc-bob', 'sc.study') > 0 AS unsigned_withdrawal_recorded;
SELECT consent_ledger.grant_consent('sc-bob', 'sc.open') > 0 AS unsigned_grant_of_another_purpose;

-- ---------------------------------------------------------------------
-- 2. Registering a key: the first signed by itself.
-- ---------------------------------------------------------------------
SELECT sc_key('sc-alice', :'pk1', 1700000000, 'alice-key-0000001') AS stmt \gset
\setenv STMT :stmt
\setenv KEY k2
\set sig_by_k2 `:sign`
\setenv KEY k1
\set sig `:sign`
-- signed by another key than the one registered
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', :'stmt', :'sig_by_k2');
-- the arguments must be what the statement says
SELECT consent_ledger.register_subject_key('sc-alice', :'pk2', :'stmt', :'sig');
SELECT consent_ledger.register_subject_key('sc-mallory', :'pk1', :'stmt', :'sig');
-- malformed keys, signatures, statements
SELECT consent_ledger.register_subject_key('sc-alice', 'not base64', :'stmt', :'sig');
SELECT consent_ledger.register_subject_key('sc-alice', encode(sha256('x'), 'hex'), :'stmt', :'sig');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', :'stmt', 'AAAA');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', rtrim(:'stmt', E'\n'), :'sig');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', :'stmt' || E'\n', :'sig');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', replace(:'stmt', E'\n', E'\r\n'), :'sig');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', replace(:'stmt', 'time 1700000000', 'time 01700000000'), :'sig');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', replace(:'stmt', 'nonce alice-key-0000001', 'nonce short'), :'sig');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', sc_consent('sc-alice', 'sc.study', 'grant', 'never', 1700000000, 'alice-key-0000001'), :'sig');
SELECT consent_ledger.register_subject_key(NULL, :'pk1', :'stmt', :'sig');
-- for another database's consent ledger (the origin differs): refused
\set VERBOSITY terse
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', replace(:'stmt', :'origin', 'consent_ledger/00000000000000000000000000000000'), :'sig');
\set VERBOSITY default
-- from the future (more than a minute ahead)
SELECT sc_key('sc-alice', :'pk1', extract(epoch FROM now())::bigint + 3600, 'alice-key-0000002') AS stmt_future \gset
\setenv STMT :stmt_future
\set sig_future `:sign`
\set VERBOSITY terse
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', :'stmt_future', :'sig_future');
\set VERBOSITY default
-- the genuine registration: key 1; the same statement again is refused
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', :'stmt', :'sig');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk1', :'stmt', :'sig');

-- ---------------------------------------------------------------------
-- 3. Signed grants and withdrawals.
-- ---------------------------------------------------------------------
SELECT sc_consent('sc-alice', 'sc.study', 'grant', 'never', 1700000100, 'alice-grant-000001') AS g1 \gset
\setenv STMT :g1
\setenv KEY k1
\set g1_sig `:sign`
\setenv KEY k2
\set g1_sig_k2 `:sign`
-- a subject without a key
SELECT consent_ledger.record_signed_consent(replace(:'g1', 'subject sc-alice', 'subject sc-carol'), :'g1_sig');
-- signed by a key that is not the subject's; the statement changed after signing
SELECT consent_ledger.record_signed_consent(:'g1', :'g1_sig_k2');
SELECT consent_ledger.record_signed_consent(replace(:'g1', 'purpose sc.study', 'purpose sc.open'), :'g1_sig');
SELECT consent_ledger.record_signed_consent(replace(:'g1', 'expires never', 'expires 4102444800'), :'g1_sig');
-- a key statement, an unknown purpose, NULLs
SELECT consent_ledger.record_signed_consent(:'stmt', :'sig');
SELECT consent_ledger.record_signed_consent(replace(:'g1', 'purpose sc.study', 'purpose sc.nothing'), :'g1_sig');
SELECT consent_ledger.record_signed_consent(NULL, :'g1_sig');
-- a withdrawal with an expiry, an expiry in the past
SELECT consent_ledger.record_signed_consent(sc_consent('sc-alice', 'sc.study', 'withdraw', '4102444800', 1700000100, 'alice-grant-000001'), :'g1_sig');
SELECT sc_consent('sc-alice', 'sc.study', 'grant', '1700000000', 1700000050, 'alice-grant-000009') AS g_past \gset
\setenv STMT :g_past
\setenv KEY k1
\set g_past_sig `:sign`
SELECT consent_ledger.record_signed_consent(:'g_past', :'g_past_sig');
-- the genuine grant, with evidence; then the same statement again (a replay)
SELECT consent_ledger.record_signed_consent(:'g1', :'g1_sig', '{"channel": "app"}') AS g1_id \gset
\set VERBOSITY terse
SELECT consent_ledger.record_signed_consent(:'g1', :'g1_sig');
\set VERBOSITY default
-- an older statement for the same purpose, signed before the recorded one
SELECT sc_consent('sc-alice', 'sc.study', 'withdraw', 'never', 1700000099, 'alice-old-withdraw1') AS w_old \gset
\setenv STMT :w_old
\set w_old_sig `:sign`
\set VERBOSITY terse
SELECT consent_ledger.record_signed_consent(:'w_old', :'w_old_sig');
\set VERBOSITY default
-- what was recorded: the statement, its signature and the key, as given
SELECT subject, purpose, action, expires_at, evidence,
       subject_statement = :'g1' AS statement_kept, subject_signature = :'g1_sig' AS signature_kept,
       subject_key = :'pk1' AS key_kept
FROM consent_ledger.consent_events WHERE event_id = :g1_id;
SELECT consent_ledger.has_consent('sc-alice', 'sc.study') AS alice_study,
       consent_ledger.has_consent('sc-alice', 'sc.study.followup') AS alice_followup_by_parent,
       consent_ledger.has_consent('sc-bob', 'sc.study') AS bob_study;
SELECT subject, purpose, state FROM consent_ledger.consent_state
WHERE subject IN ('sc-alice', 'sc-bob') ORDER BY 1, 2;

-- A signed grant with an expiry, for a purpose without the requirement.
SELECT sc_consent('sc-alice', 'sc.open', 'grant', '4102444800', 1700000200, 'alice-open-0000001') AS g2 \gset
\setenv STMT :g2
\set g2_sig `:sign`
SELECT consent_ledger.record_signed_consent(:'g2', :'g2_sig') > 0 AS recorded;
SELECT expires_at = '2100-01-01 00:00:00+00' AS expiry_as_signed FROM consent_ledger.consent_events
WHERE subject_signature = :'g2_sig';

-- ---------------------------------------------------------------------
-- 4. Rotation: signed by the key in force, never by the new one alone.
-- ---------------------------------------------------------------------
SELECT sc_key('sc-alice', :'pk2', 1700000300, 'alice-key-0000003') AS rot \gset
\setenv STMT :rot
\setenv KEY k2
\set rot_by_new `:sign`
\setenv KEY k3
\set rot_by_other `:sign`
\setenv KEY k1
\set rot_sig `:sign`
SELECT consent_ledger.register_subject_key('sc-alice', :'pk2', :'rot', :'rot_by_new');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk2', :'rot', :'rot_by_other');
-- not later than the key it replaces
SELECT sc_key('sc-alice', :'pk2', 1699999999, 'alice-key-0000004') AS rot_old \gset
\setenv STMT :rot_old
\set rot_old_sig `:sign`
SELECT consent_ledger.register_subject_key('sc-alice', :'pk2', :'rot_old', :'rot_old_sig');
SELECT consent_ledger.register_subject_key('sc-alice', :'pk2', :'rot', :'rot_sig');
SELECT subject, key_no, public_key = :'pk1' AS is_k1, public_key = :'pk2' AS is_k2
FROM consent_ledger.subject_keys WHERE subject = 'sc-alice' ORDER BY key_no;
-- the old key signs nothing any more; the new one does
SELECT sc_consent('sc-alice', 'sc.study', 'withdraw', 'never', 1700000400, 'alice-withdraw-0001') AS w1 \gset
\setenv STMT :w1
\setenv KEY k1
\set w1_by_old `:sign`
\setenv KEY k2
\set w1_sig `:sign`
SELECT consent_ledger.record_signed_consent(:'w1', :'w1_by_old');
SELECT consent_ledger.record_signed_consent(:'w1', :'w1_sig') > :g1_id AS withdrawn;
SELECT consent_ledger.has_consent('sc-alice', 'sc.study') AS alice_study_after_withdrawal;

-- Order is kept within one statement too: the subject signed a grant (t+500)
-- and then a withdrawal (t+600); recording the withdrawal first and the
-- grant after it, in one SELECT, is refused, and so is a replay in one SELECT.
SELECT sc_consent('sc-alice', 'sc.study', 'grant', 'never', 1700000500, 'alice-order-grant01') AS og \gset
\setenv STMT :og
\set og_sig `:sign`
SELECT sc_consent('sc-alice', 'sc.study', 'withdraw', 'never', 1700000600, 'alice-order-wdraw01') AS ow \gset
\setenv STMT :ow
\set ow_sig `:sign`
SELECT count(*) AS events_before FROM consent_ledger.consent_events WHERE subject = 'sc-alice' \gset
\set VERBOSITY terse
SELECT consent_ledger.record_signed_consent(s, g)
FROM (VALUES (1, :'ow', :'ow_sig'), (2, :'og', :'og_sig')) v(o, s, g) ORDER BY o;
SELECT consent_ledger.record_signed_consent(s, g)
FROM (VALUES (:'og', :'og_sig'), (:'og', :'og_sig')) v(s, g);
\set VERBOSITY default
SELECT count(*) = :events_before AS nothing_recorded FROM consent_ledger.consent_events WHERE subject = 'sc-alice';
-- A parent's withdrawal is not undone by a child's grant signed before it
-- (t+700) and recorded after it (t+800): purposes that decide together
-- are ordered together.
SELECT sc_consent('sc-alice', 'sc.study.followup', 'grant', 'never', 1700000700, 'alice-child-grant01') AS cg \gset
\setenv STMT :cg
\set cg_sig `:sign`
SELECT sc_consent('sc-alice', 'sc.study', 'withdraw', 'never', 1700000800, 'alice-parent-wdraw1') AS pw \gset
\setenv STMT :pw
\set pw_sig `:sign`
SELECT consent_ledger.record_signed_consent(:'pw', :'pw_sig') > 0 AS parent_withdrawal;
\set VERBOSITY terse
SELECT consent_ledger.record_signed_consent(:'cg', :'cg_sig');
\set VERBOSITY default
SELECT consent_ledger.has_consent('sc-alice', 'sc.study.followup') AS alice_followup;

-- Nobody inserts into the key ledger or the consent ledger directly.
INSERT INTO consent_ledger.subject_keys (subject, key_no, public_key, statement, signature, registered_at, registered_by)
VALUES ('sc-alice', 3, :'pk3', :'rot', :'rot_sig', now(), 'me');

-- ---------------------------------------------------------------------
-- 5. Enforcement: a protected table read for sc.study shows only the
--    subjects whose signed grant is in force.
-- ---------------------------------------------------------------------
CREATE ROLE regress_sc_analyst;
SELECT consent_ledger.authorize_purpose('regress_sc_analyst', 'sc.study');
CREATE TABLE sc_data (subject text, v int);
INSERT INTO sc_data VALUES ('sc-alice', 1), ('sc-bob', 2), ('sc-dave', 3);
SELECT consent_ledger.protect('sc_data', 'subject');
GRANT SELECT ON sc_data TO regress_sc_analyst;
-- sc-dave registers and signs a grant
SELECT sc_key('sc-dave', :'pk3', 1700000500, 'dave-key-000000001') AS dk \gset
\setenv STMT :dk
\setenv KEY k3
\set dk_sig `:sign`
SELECT consent_ledger.register_subject_key('sc-dave', :'pk3', :'dk', :'dk_sig');
SELECT sc_consent('sc-dave', 'sc.study', 'grant', 'never', 1700000600, 'dave-grant-0000001') AS dg \gset
\setenv STMT :dg
\set dg_sig `:sign`
SELECT consent_ledger.record_signed_consent(:'dg', :'dg_sig') AS dave_grant_id \gset
SET ROLE regress_sc_analyst;
SET consent_ledger.purpose = 'sc.study';
SELECT subject, v FROM sc_data ORDER BY 1;
RESET consent_ledger.purpose;
RESET ROLE;
-- A grant the subject signed before a withdrawal the operator recorded
-- (withdraw_consent(), erase_subject()) cannot undo it when recorded
-- after it; nor can one dated less than a minute after it (a device's
-- clock may run a minute ahead, so it may have been signed before).  A
-- grant dated more than a minute after it is recorded (here: 2.5 s after
-- the withdrawal, dated 59 s ahead of the server's clock, which is allowed).
SELECT sc_consent('sc-dave', 'sc.study', 'grant', 'never', 1700000700, 'dave-grant-0000002') AS dg2 \gset
\setenv STMT :dg2
\set dg2_sig `:sign`
SELECT consent_ledger.withdraw_consent('sc-dave', 'sc.study') > 0 AS operator_withdrawal;
\set VERBOSITY terse
SELECT consent_ledger.record_signed_consent(:'dg2', :'dg2_sig');
\set VERBOSITY default
SELECT consent_ledger.has_consent('sc-dave', 'sc.study') AS dave_after_withdrawal;
SELECT sc_consent('sc-dave', 'sc.study', 'grant', 'never', extract(epoch FROM clock_timestamp())::bigint + 2,
                  'dave-grant-0000003') AS dg3 \gset
\setenv STMT :dg3
\set dg3_sig `:sign`
\set VERBOSITY terse
SELECT consent_ledger.record_signed_consent(:'dg3', :'dg3_sig');
\set VERBOSITY default
SELECT consent_ledger.has_consent('sc-dave', 'sc.study') AS dave_still_withdrawn;
SELECT pg_sleep(2.5);
SELECT sc_consent('sc-dave', 'sc.study', 'grant', 'never', floor(extract(epoch FROM clock_timestamp()))::bigint + 59,
                  'dave-grant-0000004') AS dg4 \gset
\setenv STMT :dg4
\set dg4_sig `:sign`
SELECT consent_ledger.record_signed_consent(:'dg4', :'dg4_sig') > 0 AS granted_again;
SELECT consent_ledger.has_consent('sc-dave', 'sc.study') AS dave_granted_again;

-- ---------------------------------------------------------------------
-- 6. Receipts (item 2): not before the event is sealed and signed;
--    then the event, its leaf, the proof and the checkpoint, all of a
--    piece (consent-ledger-verify receipt checks them offline: TAP 045).
-- ---------------------------------------------------------------------
SELECT consent_ledger.consent_receipt(NULL);
SELECT consent_ledger.consent_receipt(-1);
BEGIN;
SELECT consent_ledger.grant_consent('sc-erin', 'sc.open') AS erin_id \gset
\set VERBOSITY terse
SELECT consent_ledger.consent_receipt(:erin_id);
\set VERBOSITY default
ROLLBACK;
SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT consent_ledger.consent_receipt(:dave_grant_id) AS receipt \gset
SELECT jsonb_object_keys(:'receipt'::jsonb) AS member ORDER BY 1;
SELECT r->'event'->>'subject' AS subject, r->'event'->>'purpose' AS purpose, r->'event'->>'action' AS action,
       (r->'event'->>'event_id')::bigint = :dave_grant_id AS event_id_ok,
       r->'event'->>'subject_statement' = :'dg' AS statement_ok,
       r->>'type' AS type,
       (r->>'leaf_index')::bigint = (r->'proof'->>'leaf_index')::bigint AS leaf_index_ok,
       sha256('\x00'::bytea || decode(r->>'leaf_data', 'hex')) = decode(r->'proof'->>'leaf_hash', 'base64') AS leaf_hashes_to_proof,
       r->'proof'->>'root_hash' = r->'checkpoint'->>'root_hash' AS proof_to_checkpoint_root,
       consent_ledger.verify_checkpoint((r->'checkpoint')::text) AS checkpoint_verifies
FROM (SELECT :'receipt'::jsonb AS r) s;
-- the leaf is the event: its bytes are leaf_data()'s
SELECT decode(:'receipt'::jsonb->>'leaf_data', 'hex') =
       consent_ledger.leaf_data('consent_ledger.consent_events', (:'receipt'::jsonb->>'leaf_index')::bigint) AS leaf_is_the_rows;
SELECT * FROM consent_ledger.verify('consent_ledger.subject_keys');

\set done `rm -rf "$CL_TMP" && echo removed`
\echo :done

REVOKE SELECT ON sc_data FROM regress_sc_analyst;
SELECT consent_ledger.revoke_purpose('regress_sc_analyst', 'sc.study');
DROP ROLE regress_sc_analyst;
