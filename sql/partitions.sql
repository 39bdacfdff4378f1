-- Partitioned tables (issue 12 item 3): protect(), audit(), purpose views
-- and create_ledger() on a fact table range-partitioned by month with a
-- default partition, partitions present and future, and the ways a
-- non-admin table owner might get around them.
\set VERBOSITY default
\set SHOW_CONTEXT never

ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

CREATE ROLE regress_p_owner LOGIN;
CREATE ROLE regress_p_analyst LOGIN;
CREATE ROLE regress_p_admin LOGIN IN ROLE consent_ledger_admin;
GRANT CREATE ON SCHEMA public TO regress_p_owner, regress_p_admin;
SELECT consent_ledger.define_purpose('p_analytics', 'partition tests');
SELECT consent_ledger.authorize_purpose('regress_p_analyst', 'p_analytics');
SELECT consent_ledger.authorize_purpose('regress_p_owner', 'p_analytics');
SELECT count(consent_ledger.grant_consent(s, 'p_analytics')) FROM generate_series(1, 3) s;

-- the warehouse: a fact table by month, a default partition, a month
-- sub-partitioned by region, owned by a role that is not an administrator
SET ROLE regress_p_owner;
CREATE TABLE sales (id int, month date, region text, customer_id bigint, amount numeric)
  PARTITION BY RANGE (month);
CREATE TABLE sales_2024_01 PARTITION OF sales FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE sales_2024_02 PARTITION OF sales FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE sales_2024_03 PARTITION OF sales FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')
  PARTITION BY LIST (region);
CREATE TABLE sales_2024_03_eu PARTITION OF sales_2024_03 FOR VALUES IN ('eu');
CREATE TABLE sales_2024_03_other PARTITION OF sales_2024_03 DEFAULT;
CREATE TABLE sales_default PARTITION OF sales DEFAULT;
-- through the parent, directly into a partition, and COPY through the parent
INSERT INTO sales SELECT g, date '2024-01-01' + (g % 4) * 31, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END,
  g % 6, g FROM generate_series(1, 24) g;
INSERT INTO sales_2024_02 VALUES (25, '2024-02-10', 'eu', 1, 25);
COPY sales FROM stdin;
26	2024-03-05	eu	2	26
27	2025-07-01	us	3	27
\.
-- code the owner planted on a partition would run over hidden rows: refused
CREATE FUNCTION sales_peek() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER peek BEFORE INSERT ON sales_2024_02 FOR EACH ROW EXECUTE FUNCTION sales_peek();
GRANT SELECT ON sales, sales_2024_01 TO regress_p_analyst;
RESET ROLE;
SELECT consent_ledger.protect('sales', 'customer_id');
\echo :SQLSTATE
DROP TRIGGER peek ON sales_2024_02;
-- a partition cannot be protected on its own: read through its parent it would escape
SELECT consent_ledger.protect('sales_2024_01', 'customer_id');
\echo :SQLSTATE
SELECT consent_ledger.protect('sales', 'customer_id');

-- every partition, sub-partitions included: forced row-level security,
-- the consent policy, in custody
CREATE VIEW part_state AS
  SELECT c.relname, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
         pg_get_userbyid(c.relowner) AS owner,
         (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname LIKE 'consent_ledger%') AS policies,
         EXISTS (SELECT FROM consent_ledger.protected p WHERE p.relid = c.oid) AS registered
  FROM pg_class c WHERE c.relname LIKE 'sales%' AND c.relkind IN ('r', 'p') ORDER BY c.relname;
SELECT * FROM part_state;

-- the analyst reads a partition directly: no purpose, an error
SET ROLE regress_p_analyst;
SELECT count(*) FROM sales_2024_01;
\echo :SQLSTATE
SELECT count(*) FROM sales;
\echo :SQLSTATE
SET consent_ledger.purpose = 'p_analytics';
SELECT customer_id, count(*) FROM sales_2024_01 GROUP BY 1 ORDER BY 1;
SELECT customer_id, count(*) FROM sales GROUP BY 1 ORDER BY 1;
RESET consent_ledger.purpose;
RESET ROLE;

-- the table's former owner is held to the same policy, partition by partition
SET ROLE regress_p_owner;
SELECT count(*) FROM sales_2024_03_eu;
\echo :SQLSTATE
SELECT count(*) FROM sales_default;
\echo :SQLSTATE
SET consent_ledger.purpose = 'p_analytics';
SELECT customer_id, count(*) FROM sales_2024_03_eu GROUP BY 1 ORDER BY 1;
SELECT customer_id FROM sales_default ORDER BY 1;
RESET consent_ledger.purpose;
-- it keeps loading through the parent and into partitions
INSERT INTO sales VALUES (28, '2024-01-20', 'eu', 4, 28);
INSERT INTO sales_2024_01 VALUES (29, '2024-01-21', 'eu', 5, 29);
-- and cannot switch the policy off, nor add or take partitions
ALTER TABLE sales_2024_01 NO FORCE ROW LEVEL SECURITY;
\echo :SQLSTATE
ALTER TABLE sales_2024_03_eu DISABLE ROW LEVEL SECURITY;
\echo :SQLSTATE
ALTER TABLE sales_2024_01 SET (fillfactor = 50);
\echo :SQLSTATE
ALTER TABLE sales DETACH PARTITION sales_2024_01;
\echo :SQLSTATE
CREATE TABLE sales_2024_04 PARTITION OF sales FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
\echo :SQLSTATE
CREATE TABLE mine (id int, month date, region text, customer_id bigint, amount numeric);
CREATE POLICY see_all ON mine USING (true);
CREATE TRIGGER peek BEFORE INSERT ON mine FOR EACH ROW EXECUTE FUNCTION sales_peek();
ALTER TABLE sales ATTACH PARTITION mine FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');
\echo :SQLSTATE
ALTER TABLE sales_2024_03 ATTACH PARTITION mine FOR VALUES IN ('us');
\echo :SQLSTATE
CREATE TRIGGER peek BEFORE INSERT ON sales_2024_01 FOR EACH ROW EXECUTE FUNCTION sales_peek();
\echo :SQLSTATE
CREATE POLICY see_all ON sales_2024_01 USING (true);
\echo :SQLSTATE
SELECT consent_ledger.unprotect('sales_2024_01');
\echo :SQLSTATE
RESET ROLE;

-- partitions added later by an administrator are protected by the DDL itself
SET ROLE regress_p_admin;
CREATE TABLE sales_2024_08 PARTITION OF sales FOR VALUES FROM ('2024-08-01') TO ('2024-09-01')
  PARTITION BY LIST (region);
CREATE TABLE sales_2024_08_eu PARTITION OF sales_2024_08 FOR VALUES IN ('eu');
CREATE TABLE sales_2024_09 (id int, month date, region text, customer_id bigint, amount numeric);
INSERT INTO sales_2024_09 VALUES (30, '2024-09-02', 'eu', 1, 30), (31, '2024-09-03', 'eu', 6, 31);
GRANT SELECT ON sales_2024_09 TO regress_p_analyst;
ALTER TABLE sales ATTACH PARTITION sales_2024_09 FOR VALUES FROM ('2024-09-01') TO ('2024-10-01');
INSERT INTO sales VALUES (32, '2024-08-05', 'eu', 2, 32);
-- an administrator cannot switch a partition's policy off either
ALTER TABLE sales_2024_09 NO FORCE ROW LEVEL SECURITY;
\echo :SQLSTATE
RESET ROLE;
-- a table carrying an untrusted role's code is refused, and the attach with it
ALTER TABLE mine OWNER TO regress_p_admin;
DROP POLICY see_all ON mine;
ALTER TABLE sales ATTACH PARTITION mine FOR VALUES FROM ('2024-10-01') TO ('2024-11-01');
\echo :SQLSTATE
SELECT relispartition FROM pg_class WHERE relname = 'mine';
SELECT * FROM part_state;
SET ROLE regress_p_analyst;
SELECT count(*) FROM sales_2024_09;
\echo :SQLSTATE
SET consent_ledger.purpose = 'p_analytics';
SELECT id, customer_id FROM sales_2024_09 ORDER BY id;
RESET consent_ledger.purpose;
RESET ROLE;

-- a purpose view over the partitioned table: consented rows of every partition
SET ROLE regress_p_admin;
SELECT consent_ledger.create_purpose_view('sales', 'p_analytics', 'public.sales_analytics') IS NOT NULL AS view_made;
GRANT SELECT ON sales_analytics TO regress_p_analyst;
RESET ROLE;
SET ROLE regress_p_analyst;
SELECT customer_id, count(*) FROM sales_analytics GROUP BY 1 ORDER BY 1;
RESET ROLE;

-- DETACH by an administrator: the partition stays protected
SET ROLE regress_p_admin;
ALTER TABLE sales DETACH PARTITION sales_2024_01;
RESET ROLE;
SELECT relname, rls, forced, owner, policies, registered FROM part_state WHERE relname = 'sales_2024_01';
SET ROLE regress_p_owner;
SELECT count(*) FROM sales_2024_01;
\echo :SQLSTATE
SET consent_ledger.purpose = 'p_analytics';
SELECT customer_id, count(*) FROM sales_2024_01 GROUP BY 1 ORDER BY 1;
RESET consent_ledger.purpose;
RESET ROLE;

-- unprotect the whole tree (an administrator; partition by partition is refused above)
DROP VIEW sales_analytics;
SET ROLE regress_p_admin;
SELECT consent_ledger.unprotect('sales');
RESET ROLE;
SELECT * FROM part_state;
