-- Enforcement: protected tables, declared purposes, purpose views, and the
-- ways a non-privileged analyst might try to get around them.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE regress_analyst LOGIN;
CREATE ROLE regress_marketer LOGIN;
CREATE ROLE regress_admin LOGIN IN ROLE consent_ledger_admin;
GRANT CREATE ON SCHEMA public TO regress_admin, regress_analyst;
CREATE SCHEMA evil AUTHORIZATION regress_analyst;
SELECT current_user AS superuser \gset
SELECT consent_ledger.define_purpose('analytics', 'product analytics');
SELECT consent_ledger.define_purpose('analytics.ads', 'ad targeting', parent => 'analytics');
SELECT consent_ledger.define_purpose('billing', 'invoicing', 'contract');
SELECT consent_ledger.authorize_purpose('regress_analyst', 'analytics');
SELECT consent_ledger.authorize_purpose('regress_marketer', 'analytics.ads');
SELECT consent_ledger.authorize_purpose('regress_admin', 'analytics');
SELECT consent_ledger.authorize_purpose('regress_analyst', 'nope');
\echo :SQLSTATE

-- a small warehouse: 10 subjects, 5 rows each
CREATE TABLE purchases (id int PRIMARY KEY, customer_id bigint, amount numeric);
INSERT INTO purchases SELECT g, g % 10, g FROM generate_series(1, 50) g;
CREATE TABLE people (id int PRIMARY KEY, person uuid, email text);
INSERT INTO people SELECT g, ('00000000-0000-0000-0000-00000000000' || g)::uuid, 'p' || g || '@example.org'
  FROM generate_series(1, 9) g;
GRANT SELECT ON purchases, people TO regress_analyst, regress_marketer;
ALTER TABLE purchases OWNER TO regress_admin;
SET ROLE regress_admin;
SELECT consent_ledger.protect('purchases', 'customer_id');
SELECT consent_ledger.protect('purchases', 'customer_id');
\echo :SQLSTATE
SELECT consent_ledger.create_purpose_view('purchases', 'analytics', 'public.purchases_analytics');
GRANT SELECT ON purchases_analytics TO regress_marketer;
RESET ROLE;
SELECT consent_ledger.protect('people', 'person');
SELECT consent_ledger.protect('people', 'email');
\echo :SQLSTATE
SELECT consent_ledger.protect('purchases_analytics', 'customer_id');
\echo :SQLSTATE

-- subjects 1..5 consent to analytics, 6 to ads only, 5 withdraws later
SELECT count(consent_ledger.grant_consent(s, 'analytics')) FROM generate_series(1, 5) s;
SELECT consent_ledger.grant_consent(6, 'analytics.ads') > 0 AS ads;
SELECT consent_ledger.grant_consent('00000000-0000-0000-0000-000000000003'::uuid, 'analytics') > 0 AS p3;

SET ROLE regress_analyst;
-- no purpose declared: an error, never a silently empty result
SELECT count(*) FROM purchases;
\echo :SQLSTATE
-- a purpose the role was not authorized for, or that does not exist
SET consent_ledger.purpose = 'billing';
\echo :SQLSTATE
SET consent_ledger.purpose = 'nope';
\echo :SQLSTATE
SET consent_ledger.purpose = 'analytics';
SELECT count(*) AS rows_shown, array_agg(DISTINCT customer_id ORDER BY customer_id) AS subjects FROM purchases;
SELECT person FROM people ORDER BY id;
-- parallel query keeps working on protected tables
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT count(*) AS parallel_rows, sum(amount) FROM purchases;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET ROLE;

-- a child purpose: consent to the parent covers it; ads-only consent does not cover analytics
SET ROLE regress_marketer;
SET consent_ledger.purpose = 'analytics.ads';
SELECT array_agg(DISTINCT customer_id ORDER BY customer_id) AS ads_subjects FROM purchases;
SET consent_ledger.purpose = 'analytics';
\echo :SQLSTATE
-- the purpose view needs no setting
RESET consent_ledger.purpose;
SELECT array_agg(DISTINCT customer_id ORDER BY customer_id) AS view_subjects FROM purchases_analytics;
RESET ROLE;

-- a withdrawal is in force for the next statement; an expired grant hides rows
SELECT consent_ledger.withdraw_consent(5, 'analytics') > 0 AS withdrawn;
-- (no timing margin: the grant that counts expires in an hour, the one that
-- must have expired is waited for until its expiry has passed)
SELECT consent_ledger.grant_consent(7, 'analytics', clock_timestamp() + interval '1 hour') > 0 AS grant_with_expiry;
SET ROLE regress_analyst;
SET consent_ledger.purpose = 'analytics';
SELECT array_agg(DISTINCT customer_id ORDER BY customer_id) AS after_withdrawal FROM purchases;
RESET ROLE;
CREATE TEMP TABLE short_grant AS
  SELECT e AS expires_at, consent_ledger.grant_consent(7, 'analytics', e) > 0 AS short_grant
  FROM (SELECT clock_timestamp() + interval '1 second' AS e) s;
SELECT short_grant FROM short_grant;
DO $$BEGIN
  WHILE clock_timestamp() <= (SELECT expires_at FROM short_grant) LOOP
    PERFORM pg_sleep(0.05);
  END LOOP;
END$$;
SET ROLE regress_analyst;
SET consent_ledger.purpose = 'analytics';
SELECT array_agg(DISTINCT customer_id ORDER BY customer_id) AS after_expiry FROM purchases;
RESET ROLE;
SET ROLE regress_marketer;
SELECT array_agg(DISTINCT customer_id ORDER BY customer_id) AS view_after_withdrawal FROM purchases_analytics;
RESET ROLE;

CREATE FUNCTION sneaky() RETURNS bigint LANGUAGE sql SET consent_ledger.purpose = 'billing'
  AS $$ SELECT count(*) FROM purchases $$;
GRANT EXECUTE ON FUNCTION sneaky() TO regress_analyst;

SELECT token AS view_token FROM consent_ledger.purpose_views
WHERE view = 'purchases_analytics'::regclass \gset

-- ways around it, tried by the analyst, logged in as itself
\c - regress_analyst
SET consent_ledger.purpose = 'analytics';
-- a leaky function in the WHERE clause sees only consented rows
CREATE FUNCTION leak(bigint) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
$$ BEGIN RAISE NOTICE 'saw subject %', $1; RETURN true; END $$;
SELECT count(*) FROM purchases WHERE leak(customer_id) AND customer_id IN (8, 9);
-- errors as a side channel: the division never sees a hidden row
SELECT count(*) FROM purchases WHERE 1 / (customer_id - 8) > -100;
-- the analyst's own view and function run with the analyst's rights
CREATE VIEW my_view AS SELECT * FROM purchases;
SELECT count(*) AS via_own_view FROM my_view;
CREATE FUNCTION my_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM purchases $$;
SELECT my_count() AS via_own_definer_function;
-- search_path shadowing of the extension's functions and of operators
CREATE FUNCTION evil.allowed(bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
SET search_path = evil, public;
SELECT count(*) AS shadowed_search_path FROM purchases;
RESET search_path;
-- the base table of a purpose view, without a purpose
RESET consent_ledger.purpose;
SELECT count(*) FROM purchases;
\echo :SQLSTATE
-- SET LOCAL inside a transaction, then the transaction ends
BEGIN;
SET LOCAL consent_ledger.purpose = 'analytics';
SELECT count(*) AS in_txn FROM purchases;
COMMIT;
SELECT count(*) FROM purchases;
\echo :SQLSTATE
-- a function whose SET clause declares a purpose the caller was not
-- authorized for (created by a superuser, who may declare anything)
SELECT sneaky();
\echo :SQLSTATE
-- nor can the analyst create one: PostgreSQL applies the SET clause while
-- it validates the body, as the creator
CREATE FUNCTION sneaky2() RETURNS bigint LANGUAGE sql SET consent_ledger.purpose = 'billing'
  AS $$ SELECT count(*) FROM purchases $$;
SELECT sneaky2();
\echo :SQLSTATE
-- setting it at the GUC level bypasses nothing: checked at use
SELECT set_config('consent_ledger.purpose', 'billing', false);
\echo :SQLSTATE
-- SET ROLE to a role the analyst lacks
SET ROLE regress_marketer;
\echo :SQLSTATE
SELECT current_user;
-- COPY (SELECT ...) and COPY of the table show only consented rows
SET consent_ledger.purpose = 'analytics';
COPY (SELECT customer_id FROM purchases WHERE customer_id >= 5 ORDER BY id) TO STDOUT;
COPY purchases (customer_id) TO STDOUT;
-- a cursor declared with a purpose, fetched after the purpose is gone
BEGIN;
DECLARE c CURSOR FOR SELECT customer_id FROM purchases ORDER BY id;
FETCH 2 FROM c;
COMMIT;
BEGIN;
RESET consent_ledger.purpose;
DECLARE c2 CURSOR FOR SELECT customer_id FROM purchases ORDER BY id;
FETCH 2 FROM c2;
\echo :SQLSTATE
ROLLBACK;
-- calling the policy functions directly reveals no more than the table does
-- (an analyst cannot even name them; the token is random: terse errors)
\set VERBOSITY terse
SELECT consent_ledger.view_allows(:view_token, 1::bigint);
\set VERBOSITY default
\echo :SQLSTATE
SELECT consent_ledger.view_allows(12345, 1::bigint);
\echo :SQLSTATE
-- the analyst cannot protect, unprotect, authorize or record
SELECT consent_ledger.authorize_purpose('regress_analyst', 'billing');
\echo :SQLSTATE
SELECT consent_ledger.grant_consent(9, 'analytics');
\echo :SQLSTATE
SELECT consent_ledger.unprotect('purchases');
\echo :SQLSTATE
\c - :superuser

-- prepared statements reused after SET ROLE
SET ROLE regress_analyst;
SET consent_ledger.purpose = 'analytics';
PREPARE q AS SELECT count(*) FROM purchases;
EXECUTE q;
RESET ROLE;
SET ROLE regress_marketer;
EXECUTE q;
\echo :SQLSTATE
SET consent_ledger.purpose = 'analytics.ads';
EXECUTE q;
RESET ROLE;
DEALLOCATE q;

-- even the owner cannot switch the protection off behind the extension's back
SET ROLE regress_admin;
ALTER TABLE purchases DISABLE ROW LEVEL SECURITY;
\echo :SQLSTATE
ALTER TABLE purchases NO FORCE ROW LEVEL SECURITY;
\echo :SQLSTATE
DROP POLICY consent_ledger_read ON purchases;
\echo :SQLSTATE
CREATE POLICY open_door ON purchases FOR SELECT USING (true);
\echo :SQLSTATE
ALTER POLICY consent_ledger_read ON purchases USING (true);
\echo :SQLSTATE
-- a restrictive policy only narrows, so it is allowed
CREATE POLICY only_small ON purchases AS RESTRICTIVE FOR SELECT USING (amount < 40);
SET consent_ledger.purpose = 'analytics';
SELECT count(*) AS owner_sees_consented_small_rows FROM purchases;
DROP POLICY only_small ON purchases;
-- writes keep working for those with the privileges
INSERT INTO purchases VALUES (100, 1, 1);
UPDATE purchases SET amount = 2 WHERE id = 100;
DELETE FROM purchases WHERE id = 100;
RESET consent_ledger.purpose;
SELECT consent_ledger.unprotect('purchases');
SELECT count(*) AS unprotected FROM purchases;
SELECT consent_ledger.protect('purchases', 'customer_id');
RESET ROLE;
