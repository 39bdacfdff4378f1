#!/usr/bin/env bash
# The main job, end to end:  bash tools/demo.sh
#
# Installs missing Debian packages (as root), builds and installs the
# extension and the offline verifier, starts a throwaway preloaded server
# on a private port, loads a small warehouse, and shows what
# consent_ledger guarantees: append-only ledger tables, signed
# checkpoints, verification, tamper detection, offline verification of an
# export against an auditor's receipt, consent enforcement for an analyst
# before and after a withdrawal, and the auditor's view of the signed
# audit trail.  The server and its files are removed at the end.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/deps.sh"
PORT=${DEMO_PORT:-55710}

if [ "$(id -u)" = 0 ]; then
	cl_install_deps
fi
make -C "$here" -s >/dev/null
if [ "$(id -u)" = 0 ]; then
	make -C "$here" -s install >/dev/null
fi
PGBIN=$(pg_config --bindir)

work=$(mktemp -d /tmp/consent_ledger_demo.XXXXXX)
chmod 755 "$work"
RUN=""
if [ "$(id -u)" = 0 ]; then
	chown postgres:postgres "$work"
	RUN="su postgres -s /bin/bash -c"
else
	RUN="bash -c"
fi
cleanup() {
	$RUN "$PGBIN/pg_ctl -D $work/data -m immediate stop" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a throwaway server (port $PORT, data in $work/data)"
$RUN "$PGBIN/initdb -D $work/data -A trust -U postgres >/dev/null"
cat >> "$work/data/postgresql.conf" <<CONF
shared_preload_libraries = 'consent_ledger'
consent_ledger.seal_interval = '500ms'
port = $PORT
unix_socket_directories = '$work'
listen_addresses = ''
CONF
$RUN "$PGBIN/pg_ctl -D $work/data -l $work/server.log -w start >/dev/null"
grep -h "consent_ledger" "$work/server.log" | sed 's/^/   server log: /'

psql_demo() {
	$RUN "psql -X -q -h $work -p $PORT -U postgres -d postgres -v ON_ERROR_STOP=0 $*"
}

cat > "$work/demo1.sql" <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 1. a small warehouse: customers and their payments'
CREATE EXTENSION consent_ledger;
CREATE TABLE customers (id int PRIMARY KEY, name text, country text);
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['FR','DE','NL'])[1 + g % 3]
  FROM generate_series(1, 1000) g;
CREATE TABLE payments (id bigint PRIMARY KEY, customer_id int REFERENCES customers,
                       amount numeric(10,2), paid_at timestamptz, meta jsonb);
INSERT INTO payments SELECT g, 1 + g % 1000, (g % 500) / 3.0,
       '2025-01-01'::timestamptz + g * interval '1 minute', jsonb_build_object('channel', 'web')
  FROM generate_series(1, 5000) g;

\echo
\echo '== 2. payments becomes a ledger table (its 5000 rows are adopted)'
SELECT consent_ledger.create_ledger('payments');
INSERT INTO payments VALUES (5001, 7, 12.50, now(), '{"channel": "shop"}');
COPY payments (id, customer_id, amount, paid_at, meta) FROM PROGRAM 'printf "5002\t8\t3.20\t2025-06-01 10:00:00+00\t{}\n5003\t9\t4.10\t2025-06-01 11:00:00+00\t{}\n"';
SELECT consent_ledger.seal() AS rows_sealed;
SELECT * FROM consent_ledger.verify('payments');

\echo
\echo '== 3. nobody can change history, not even the owner or a superuser'
UPDATE payments SET amount = 0 WHERE id = 42;
DELETE FROM payments WHERE id = 42;
TRUNCATE payments;
ALTER TABLE payments DROP COLUMN meta;
ALTER TABLE payments DISABLE TRIGGER ALL;
DROP TABLE payments;
SET session_replication_role = replica;
UPDATE payments SET amount = 0 WHERE id = 42;
RESET session_replication_role;

\echo
\echo '== 4. the auditor keeps a signed checkpoint (the receipt) outside the database'
SELECT consent_ledger.public_key() AS public_key, consent_ledger.key_id() AS key_id;
\pset format unaligned
\pset tuples_only on
\o :work/receipt.json
SELECT consent_ledger.checkpoint('payments');
\o
\pset format aligned
\pset tuples_only off
SELECT jsonb_pretty(consent_ledger.checkpoint('payments') - 'note') AS checkpoint;
\echo 'the signed note (C2SP tlog-checkpoint):'
SELECT consent_ledger.checkpoint('payments')->>'note' AS note \gset
\echo :note
SELECT consent_ledger.inclusion_proof('payments', 41) AS inclusion_proof_of_leaf_41;
SQL

cat > "$work/demo2.sql" <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 6. a superuser bypasses the extension: edits the catalog to switch the'
\echo '      ledger triggers off and changes one amount'
UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'payments'::regclass;
ALTER TABLE payments SET (fillfactor = 100);
UPDATE payments SET amount = 9999 WHERE id = 42;
UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'payments'::regclass;
ALTER TABLE payments SET (fillfactor = 100);
SELECT * FROM consent_ledger.verify('payments');
SELECT consent_ledger.verify_checkpoint(pg_read_file(:'work' || '/receipt.json')::jsonb) AS receipt_still_holds;
SQL

cd "$work"
psql_demo "-v work=$work -f $work/demo1.sql"
$RUN "psql -X -q -h $work -p $PORT -U postgres -At -c \"SELECT line FROM consent_ledger.export('payments') AS line\" > $work/export.txt"
pk=$($RUN "psql -X -q -h $work -p $PORT -U postgres -At -c 'SELECT consent_ledger.public_key()'")
echo
echo "== 5. offline: the auditor checks an export against the receipt, without the database"
echo "\$ consent-ledger-verify export --public-key $pk --checkpoint receipt.json export.txt"
"$here/consent-ledger-verify" export --public-key "$pk" --checkpoint "$work/receipt.json" "$work/export.txt" || true
psql_demo "-v work=$work -f $work/demo2.sql"
$RUN "psql -X -q -h $work -p $PORT -U postgres -At -c \"SELECT line FROM consent_ledger.export('payments') AS line\" > $work/export2.txt" 2>&1 | sed 's/^/   /' || true
echo
echo "== 7. offline, the tampered export fails against the receipt"
"$here/consent-ledger-verify" export --public-key "$pk" --checkpoint "$work/receipt.json" "$work/export2.txt" || true
cat > "$work/demo3.sql" <<'SQL'
\set VERBOSITY default
\pset footer off
\echo
\echo '== 8. the same superuser deletes a row and smuggles one in'
UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'payments'::regclass;
ALTER TABLE payments SET (fillfactor = 100);
DELETE FROM payments WHERE id = 7;
INSERT INTO payments (id, customer_id, amount) VALUES (9000, 1, 1.00);
UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'payments'::regclass;
ALTER TABLE payments SET (fillfactor = 100);
SELECT * FROM consent_ledger.verify('payments');
SQL
psql_demo "-f $work/demo3.sql"

cat > "$work/demo4.sql" <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 9. consent: purposes, an analyst, and the customers who said yes'
SELECT consent_ledger.define_purpose('analytics', 'product analytics');
SELECT consent_ledger.define_purpose('billing', 'invoicing', 'contract');
CREATE ROLE analyst LOGIN;
SELECT consent_ledger.authorize_purpose('analyst', 'analytics');
CREATE TABLE visits (id bigint PRIMARY KEY, customer_id int, page text, seconds int);
INSERT INTO visits SELECT g, 1 + g % 1000, '/page/' || (g % 17), g % 300 FROM generate_series(1, 20000) g;
SELECT consent_ledger.protect('visits', 'customer_id');
SELECT consent_ledger.create_purpose_view('visits', 'analytics', 'public.visits_for_analytics');
GRANT SELECT ON visits TO analyst;
GRANT SELECT ON visits_for_analytics TO analyst;
-- 70% of the customers consent to analytics
SELECT count(consent_ledger.grant_consent(c, 'analytics', evidence => '{"form": "cookie-banner-v2"}'))
       AS consents_recorded
FROM generate_series(1, 1000) c WHERE c % 10 < 7;
SELECT consent_ledger.audit('customers');
SQL
psql_demo "-f $work/demo4.sql"

cat > "$work/demo5.sql" <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 10. the analyst (logged in as "analyst") reads personal data'
SELECT count(*) FROM visits;
SET consent_ledger.purpose = 'billing';
SET consent_ledger.purpose = 'analytics';
SELECT count(*) AS visits_shown, count(DISTINCT customer_id) AS customers_shown FROM visits;
RESET consent_ledger.purpose;
SELECT count(*) AS via_purpose_view, count(DISTINCT customer_id) AS customers FROM visits_for_analytics
WHERE customer_id IN (1, 2, 3);
SQL
psql_demo "-U analyst -f $work/demo5.sql"

cat > "$work/demo6.sql" <<'SQL'
\set VERBOSITY default
\pset footer off
\echo
\echo '== 11. customer 2 withdraws; the change of a customer record is audited'
SELECT consent_ledger.withdraw_consent(2, 'analytics', '{"channel": "privacy-portal"}') AS event_id;
UPDATE customers SET country = 'BE' WHERE id = 2;
BEGIN; UPDATE customers SET name = 'oops' WHERE id = 3; ROLLBACK;
SQL
psql_demo "-f $work/demo6.sql"
psql_demo "-U analyst -c \"SELECT count(*) AS via_purpose_view_after_withdrawal, array_agg(DISTINCT customer_id ORDER BY customer_id) AS customers FROM visits_for_analytics WHERE customer_id IN (1, 2, 3)\""

cat > "$work/demo7.sql" <<'SQL'
\set VERBOSITY default
\pset footer off
\echo
\echo '== 12. the auditor: the audit trail (keys and hashes, no personal data) and verification'
SELECT consent_ledger.seal() >= 0 AS sealed;
SELECT at::time(0) AS at, kind, operation, relation, role_name, purpose, row_key, outcome,
       rows_returned AS returned, rows_withheld AS withheld, rls_bypassed AS bypassed
FROM consent_ledger.audit_log ORDER BY record_id;
SELECT subject, purpose, state FROM consent_ledger.consent_state WHERE subject IN ('1', '2', '3') ORDER BY 1;
SELECT consent_ledger.has_consent(2, 'analytics') AS customer_2_now,
       consent_ledger.has_consent(2, 'analytics', now() - interval '1 hour') AS customer_2_an_hour_ago;
SELECT * FROM consent_ledger.verify();
SQL
psql_demo "-f $work/demo7.sql"
echo
echo "demo finished; the throwaway server is being removed"
