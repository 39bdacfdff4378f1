-- The canonical row encoding: independent of session settings and of
-- physical storage, covering every kind of value; golden bytes pin the
-- format described in README.md.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TYPE color AS ENUM ('red', 'green');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TABLE enc (
  id int, t text, vc varchar(10), bp char(4), nm name, b bool, i2 int2, i8 int8,
  f4 float4, f8 float8, n numeric, ts timestamp, tz timestamptz, d date,
  tm time, ttz timetz, iv interval, u uuid, j jsonb, js json, by bytea,
  arr int[], tarr text[][], e color, dm posint, cp pair, r tstzrange, ip inet,
  big text
);
ALTER TABLE enc ALTER COLUMN big SET STORAGE EXTERNAL;
SELECT consent_ledger.create_ledger('enc');
SET TimeZone = 'UTC';
INSERT INTO enc VALUES (
  1, 'héllo', 'v', 'ab', 'nm', true, -2, 9007199254740993,
  1.5, 'NaN', 12.3400, '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.789+00', '2024-02-29',
  '23:59:59.999999', '01:02:03+05:30', '1 year 2 mons 3 days 04:05:06', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"b": [1, 2.50, null], "a": "x"}', '{"b":1,  "a":2}', '\x00ff',
  '{1,NULL,3}', '{{a,b},{c,NULL}}', 'green', 7, ROW(1, NULL), '[2024-01-01 00:00+00,)', '192.168.0.1/24',
  repeat('toasted-', 100000));
INSERT INTO enc (id) VALUES (2);
INSERT INTO enc (id, f8, n, arr) VALUES (3, '-0', 'Infinity', '[0:1]={5,6}');

-- the same bytes whatever the session's settings
CREATE TEMP TABLE encodings AS
  SELECT 0 AS run, id, md5(consent_ledger.leaf_data('enc', id - 1)) AS h
  FROM enc e;
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Pacific/Chatham';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 0;
SET bytea_output = 'escape';
SET lc_monetary = 'C';
SET client_encoding = 'LATIN1';
INSERT INTO encodings
  SELECT 1, id, md5(consent_ledger.leaf_data('enc', id - 1))
  FROM enc e;
RESET ALL;
SELECT count(DISTINCT a.h) = 3 AS three_rows_three_encodings,
       bool_and(a.h = b.h) AS settings_do_not_matter
FROM encodings a JOIN encodings b USING (id) WHERE a.run = 0 AND b.run = 1;

-- golden bytes of a small row (README "Canonical row encoding" walks through it)
CREATE TABLE golden (b text, a int, c bool);
SELECT consent_ledger.create_ledger('golden');
INSERT INTO golden VALUES ('hi', 258, NULL);
SELECT encode(consent_ledger.leaf_data('golden', 0), 'hex') ~
      ('^01[0-9a-f]{16}00000000' ||
       '0002' ||                         -- two non-NULL columns
       '0001' || '61' || '69' || '0000000000000102' ||   -- "a": int 258
       '0001' || '62' || '74' || '00000002' || '6869$')  -- "b": text "hi"
  AS golden_layout;

-- storage does not matter: rewrite the table, same verification
VACUUM FULL enc;
ALTER TABLE enc ALTER COLUMN t SET STORAGE EXTERNAL;
SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('enc');
SELECT relation, "rows", pending, valid, problem FROM consent_ledger.verify('golden');
