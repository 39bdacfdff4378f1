-- The consent registry: purposes, grants and withdrawals recorded in a
-- ledger, point-in-time answers, hierarchy, expiry and legal bases.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Only seal() seals in this file (the sealer's interval is an hour), so
-- that each seal() returns a known number of rows: those committed into
-- ledgers since the previous one.  The second seal() of the settle seals
-- nothing: the first sealed everything before it.
ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

-- purposes are defined once, with a GDPR Art. 6(1) legal basis
SELECT consent_ledger.define_purpose('marketing', 'all marketing');
SELECT consent_ledger.define_purpose('marketing.email', 'newsletters', 'consent', 'marketing');
SELECT consent_ledger.define_purpose('marketing.email.weekly', 'weekly digest', parent => 'marketing.email');
SELECT consent_ledger.define_purpose('fraud', 'fraud prevention', 'legitimate_interests');
SELECT consent_ledger.define_purpose('marketing', 'again');
\echo :SQLSTATE
SELECT consent_ledger.define_purpose('x', NULL, 'because');
\echo :SQLSTATE
SELECT consent_ledger.define_purpose('orphan', NULL, 'consent', 'nope');
\echo :SQLSTATE
SELECT consent_ledger.define_purpose('bad name!', NULL);
\echo :SQLSTATE
SELECT purpose, legal_basis, parent FROM consent_ledger.purposes
WHERE purpose ~ '^(marketing|fraud)' ORDER BY purpose;

-- unknown purposes and bad subjects
SELECT consent_ledger.grant_consent('alice', 'nope');
\echo :SQLSTATE
SELECT consent_ledger.grant_consent('', 'marketing');
\echo :SQLSTATE
SELECT consent_ledger.grant_consent(NULL::text, 'marketing');
\echo :SQLSTATE
SELECT consent_ledger.grant_consent('alice', 'marketing', now() - interval '1 day');
\echo :SQLSTATE
SELECT consent_ledger.has_consent('alice', 'nope');
\echo :SQLSTATE

-- default deny
SELECT consent_ledger.has_consent('alice', 'marketing') AS no_event_no_consent;
-- a purpose whose basis is not consent needs no grant
SELECT consent_ledger.has_consent('alice', 'fraud') AS legitimate_interests;

-- grant, withdraw, re-grant; remember when
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
SELECT consent_ledger.grant_consent('alice', 'marketing', evidence => '{"form": "signup-v3"}') AS e1 \gset
SELECT pg_sleep(0.01);
CREATE TEMP TABLE t1 AS SELECT clock_timestamp() AS t;
SELECT consent_ledger.withdraw_consent('alice', 'marketing') AS e2 \gset
SELECT pg_sleep(0.01);
CREATE TEMP TABLE t2 AS SELECT clock_timestamp() AS t;
SELECT consent_ledger.grant_consent('alice', 'marketing.email') AS e3 \gset
SELECT pg_sleep(0.01);
CREATE TEMP TABLE t3 AS SELECT clock_timestamp() AS t;
SELECT :e1 < :e2 AND :e2 < :e3 AS ids_increase;

SELECT consent_ledger.has_consent('alice', 'marketing', (SELECT t FROM t0)) AS before_grant,
       consent_ledger.has_consent('alice', 'marketing', (SELECT t FROM t1)) AS after_grant,
       consent_ledger.has_consent('alice', 'marketing.email', (SELECT t FROM t1)) AS child_by_parent,
       consent_ledger.has_consent('alice', 'marketing.email.weekly', (SELECT t FROM t1)) AS grandchild_by_parent,
       consent_ledger.has_consent('alice', 'marketing', (SELECT t FROM t2)) AS after_withdrawal,
       consent_ledger.has_consent('alice', 'marketing.email', (SELECT t FROM t2)) AS child_after_parent_withdrawal,
       consent_ledger.has_consent('alice', 'marketing.email', (SELECT t FROM t3)) AS child_regranted,
       consent_ledger.has_consent('alice', 'marketing', (SELECT t FROM t3)) AS child_grant_does_not_cover_parent,
       consent_ledger.has_consent('alice', 'marketing.email.weekly') AS now_grandchild;

-- withdrawing a parent withdraws the children's own grants too
SELECT consent_ledger.withdraw_consent('alice', 'marketing') > 0 AS withdrawn;
SELECT consent_ledger.has_consent('alice', 'marketing.email') AS child_after_second_parent_withdrawal;

-- expiry: a grant counts until expires_at, not after
SELECT consent_ledger.grant_consent('bob', 'marketing', now() + interval '1 hour') > 0 AS granted;
SELECT consent_ledger.has_consent('bob', 'marketing') AS before_expiry,
       consent_ledger.has_consent('bob', 'marketing', now() + interval '59 minutes') AS just_before,
       consent_ledger.has_consent('bob', 'marketing', now() + interval '2 hours') AS after_expiry;
-- a re-grant replaces the earlier grant's expiry
SELECT consent_ledger.grant_consent('bob', 'marketing') > 0 AS regranted_without_expiry;
SELECT consent_ledger.has_consent('bob', 'marketing', now() + interval '2 hours') AS later;

-- subjects as bigint, integer and uuid are their text form
SELECT consent_ledger.grant_consent(42::bigint, 'marketing') > 0 AS b,
       consent_ledger.grant_consent(7, 'marketing') > 0 AS i,
       consent_ledger.grant_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'marketing') > 0 AS u;
SELECT consent_ledger.has_consent('42', 'marketing') AS b_as_text, consent_ledger.has_consent(42, 'marketing') AS i_as_int,
       consent_ledger.has_consent('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, 'marketing') AS u_as_uuid,
       consent_ledger.has_consent(43::bigint, 'marketing') AS other;
SELECT consent_ledger.has_consent(NULL::text, 'marketing') AS null_subject;

-- the current state, derived from the ledger
SELECT subject, purpose, state, expires_at IS NOT NULL AS expires
FROM consent_ledger.consent_state WHERE subject IN ('alice', 'bob') ORDER BY subject, purpose;
-- nothing is updated in place: the ledger refuses it, the view cannot be written
UPDATE consent_ledger.consent_events SET action = 'grant' WHERE event_id = :e2;
\echo :SQLSTATE
DELETE FROM consent_ledger.consent_events;
\echo :SQLSTATE
UPDATE consent_ledger.consent_state SET state = 'granted';
\echo :SQLSTATE
SELECT action, evidence FROM consent_ledger.consent_events WHERE event_id IN (:e1, :e2) ORDER BY event_id;

-- the consent ledger is a ledger like any other
SELECT consent_ledger.seal() AS sealed_rows;
SELECT relation, pending, valid, problem FROM consent_ledger.verify('consent_ledger.consent_events');

-- PREPARE TRANSACTION of a consent change fails cleanly, before anything is written
BEGIN;
SELECT consent_ledger.grant_consent('carol', 'marketing') > 0 AS granted;
PREPARE TRANSACTION 'consent_2pc';
\echo :SQLSTATE
SELECT count(*) AS carol_events FROM consent_ledger.consent_events WHERE subject = 'carol';

-- events enter the consent ledger only through the recording functions:
-- a superuser's direct INSERT or COPY is refused (attack review, 1.3: such a
-- row bumped no commit counter and took no recorder lock, so a committed
-- withdrawal written that way stayed out of the policy's shared state)
INSERT INTO consent_ledger.consent_events (subject, purpose, action, recorded_at, recorded_by)
  VALUES ('alice', 'marketing', 'withdraw', now(), 'superuser');
\echo :SQLSTATE
COPY consent_ledger.consent_events (subject, purpose, action, recorded_at, recorded_by) FROM STDIN;
alice	marketing	withdraw	2026-01-01 00:00:00+00	superuser
\.
\echo :SQLSTATE
SELECT count(*) AS direct_events FROM consent_ledger.consent_events WHERE recorded_by = 'superuser';

ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
