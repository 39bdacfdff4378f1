#!/usr/bin/env bash
# The main job, end to end:  bash tools/demo.sh
#
# Installs the Debian packages the build needs when missing (as root; the
# test-only packages are left to test/run-tests.sh), builds and installs
# the extension and the offline verifier, starts a throwaway preloaded
# server on a private port (DEMO_PORT, default 55710), loads a small
# warehouse, and shows what consent_ledger guarantees: append-only ledger
# tables, signed checkpoints, inclusion proofs, offline verification of an
# export against an auditor's receipt, tamper detection (in SQL and
# offline, after each tampering), consent enforcement for an analyst
# before and after a withdrawal, and the auditor's view of the signed
# audit trail.  The server and its files are removed at the end.
#
# The statements are shown before their results or errors, as psql echoes
# them; lines starting with "--" are the narration.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/deps.sh"
PORT=${DEMO_PORT:-55710}

if [ "$(id -u)" = 0 ]; then
	cl_install_deps "$cl_build_packages"
fi
make -C "$here" -s >/dev/null
if [ "$(id -u)" = 0 ]; then
	make -C "$here" -s install >/dev/null
fi
PGBIN=$(pg_config --bindir)
# the verifier as the README calls it: "$(pg_config --bindir)/consent-ledger-verify"
VERIFY="$PGBIN/consent-ledger-verify"
[ -x "$VERIFY" ] || VERIFY="$here/consent-ledger-verify"	# not root: the one just built
VERIFY_SHOWN='"$(pg_config --bindir)/consent-ledger-verify"'

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

#-------------------------------------------------------------------------
# AUDIT RECORDS: what the audit ledger's columns mean in this version.
# Audit semantics are being reworked (issue 16, audit bullet): when they
# change, update this text and the query below it; nothing else in this
# file explains audit records.
#-------------------------------------------------------------------------
audit_explanation() {
	cat <<'TEXT'
-- How to read the audit trail (one row per record, in the order written):
--   kind change: a change to an audited table (customers), written inside the
--     changing transaction; outcome "committed" or "rolled back" (a rolled-back
--     change is recorded too); row_key names the row, the record holds hashes of
--     the old and new row, never the data.
--   kind read: a statement that read a protected table or purpose view.  Each
--     read writes two records: "started", committed before the first row can
--     reach the reader, then "completed" (or "failed") when the statement ends.
--     So a read whose end is never recorded (a crash) is still on record.
--   returned: rows the statement returned to the client.  A count(*) returns
--     one row, whatever it counted, so it says 1.
--   withheld: rows of that relation the consent check refused during the
--     statement (every FETCH of a cursor included).  Simple conditions that
--     cannot leak (customer_id IN (1, 2, 3)) run before the check, so the
--     query for customers 1, 2 and 3 counts 0 while all three consented and
--     20 (customer 2's visits) after the withdrawal; a count(*) of the whole
--     table counts the 6000 visits of the 300 customers without consent.
--     Conditions that could leak run after the check, so with those it is an
--     upper bound (README "Audit records").
--   purpose: the purpose the reader declared, or the purpose view's.
--   bypassed: the reader bypassed row-level security (superusers, BYPASSRLS).
TEXT
}
audit_query="SELECT at::time(0) AS at, kind, operation, relation, role_name, purpose, row_key, outcome,
       rows_returned AS returned, rows_withheld AS withheld, rls_bypassed AS bypassed
FROM consent_ledger.audit_log ORDER BY record_id;"
#-------------------------------------------------------------------------

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
grep -h "consent_ledger signing key" "$work/server.log" | sed 's/^.*\(LOG\|WARNING\): */   server log: /'
echo "   (a throwaway key in the data directory is fine for a demo; see README \"Keys\" for a real one)"

export PGHOST=$work PGPORT=$PORT
# psql_demo [psql options] <script: runs a script as psql would, errors shown
# as psql shows them to a user at a terminal (without "psql:file:line:");
# calls whose result says nothing (void; the count of a seal() the sealer may
# have beaten) run with \g /dev/null, so no empty result table is printed
psql_demo() {
	cat > "$work/step.sql"
	chmod 644 "$work/step.sql"
	$RUN "psql -X -q -h $work -p $PORT -d postgres -v ON_ERROR_STOP=0 -v work=$work $* -f $work/step.sql" 2>&1 |
		sed -E 's/^psql:[^ ]*:[0-9]+: //; s/^(SELECT consent_ledger\.[a-z_]+\(.*\)) $/\1;   -- (result not shown)/'
}
# psql_at SQL: one value, as "psql -At -c" prints it
psql_at() {
	$RUN "psql -X -At -h $work -p $PORT -d postgres -c \"$1\""
}
# shown COMMAND: prints a command line as a user types it
shown() {
	echo "\$ $1"
}

psql_demo <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 1. a small warehouse: 1000 customers and 5000 payments'
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
\echo '== 2. payments becomes a ledger table: its 5000 rows are adopted, new rows are appended'
\set ECHO queries
SELECT consent_ledger.create_ledger('payments') \g /dev/null
INSERT INTO payments VALUES (5001, 7, 12.50, now(), '{"channel": "shop"}');
COPY payments (id, customer_id, amount, paid_at, meta) FROM PROGRAM 'printf "5002\t8\t3.20\t2025-06-01 10:00:00+00\t{}\n5003\t9\t4.10\t2025-06-01 11:00:00+00\t{}\n"';
SELECT consent_ledger.seal() \g /dev/null
SELECT * FROM consent_ledger.verify('payments');
\set ECHO none
\echo '-- 5003 rows, all sealed into the signed log (pending 0), valid.'

\echo
\echo '== 3. nobody can change history, not even the owner or a superuser (we are the superuser)'
\set ECHO queries
UPDATE payments SET amount = 0 WHERE id = 42;
\echo
DELETE FROM payments WHERE id = 42;
\echo
TRUNCATE payments;
\echo
ALTER TABLE payments DROP COLUMN meta;
\echo
ALTER TABLE payments DISABLE TRIGGER ALL;
\echo
DROP TABLE payments;
\echo
\echo '-- the replica-role attempt: session_replication_role = replica switches ordinary'
\echo '-- triggers off (as logical replication does); the ledger''s are ENABLE ALWAYS:'
SET session_replication_role = replica;
UPDATE payments SET amount = 0 WHERE id = 42;
RESET session_replication_role;
\set ECHO none

\echo
\echo '== 4. the auditor keeps a signed checkpoint (the receipt) outside the database'
\set ECHO queries
SELECT consent_ledger.verifier_key();
\set ECHO none
\pset format unaligned
\pset tuples_only on
\o :work/receipt.json
SELECT consent_ledger.checkpoint('payments');
\o
\pset format aligned
\pset tuples_only off
\echo '-- saved as receipt.json; its members (the signed note below is what counts):'
SELECT jsonb_pretty(consent_ledger.checkpoint('payments') - 'note') AS checkpoint;
\echo '-- the signed note (C2SP tlog-checkpoint): origin, tree size, root hash, time,'
\echo '-- hash of the previous checkpoint, then the Ed25519 signature line:'
SELECT consent_ledger.checkpoint('payments')->>'note' AS note \gset
\echo :note

\echo '-- an inclusion proof that payment 42 is in the signed log.  Leaves count from 0,'
\echo '-- in log order: leaf 41 is the 42nd row sealed, here payment 42:'
\set ECHO queries
SELECT id, amount, ledger_txn, ledger_ord FROM payments ORDER BY ledger_txn, ledger_ord OFFSET 41 LIMIT 1;
\set ECHO none
\pset format unaligned
\pset tuples_only on
\o :work/proof.json
SELECT consent_ledger.inclusion_proof('payments', 41);
\o
\pset format aligned
\pset tuples_only off
\echo '-- the proof (saved as proof.json), as an auditor reads it:'
\x on
SELECT p->>'leaf_index' AS leaf_index, p->>'tree_size' AS tree_size,
       p->>'leaf_hash' AS leaf_hash, p->>'root_hash' AS root_hash, jsonb_array_length(p->'path') AS path_length
FROM (SELECT consent_ledger.inclusion_proof('payments', 41) AS p) x;
\x off
SELECT n AS step, h AS sibling_hash
FROM jsonb_array_elements_text(consent_ledger.inclusion_proof('payments', 41)->'path') WITH ORDINALITY AS t(h, n);
\echo '-- hashing leaf 41 with each sibling in turn (RFC 9162 2.1.3) must give the root hash'
\echo '-- of the signed checkpoint of tree size 5003: 13 hashes prove one row among 5003.'
SQL

psql_at "SELECT line FROM consent_ledger.export('payments') AS line" > "$work/export.txt"
echo
echo "== 5. offline: the auditor checks the export and the proof against the receipt, without the database"
shown "psql -At -c \"SELECT consent_ledger.export('payments')\" > export.txt"
shown "$VERIFY_SHOWN export --public-key \"\$(psql -At -c 'SELECT consent_ledger.verifier_key()')\" --checkpoint receipt.json export.txt"
vk=$(psql_at "SELECT consent_ledger.verifier_key()")
"$VERIFY" export --public-key "$vk" --checkpoint "$work/receipt.json" "$work/export.txt" || true
shown "$VERIFY_SHOWN inclusion proof.json --checkpoint receipt.json --public-key \"\$(psql -At -c 'SELECT consent_ledger.verifier_key()')\""
"$VERIFY" inclusion "$work/proof.json" --checkpoint "$work/receipt.json" --public-key "$vk" || true

# recheck_offline N: a new export of payments checked offline against the receipt
recheck_offline() {
	echo "-- and offline: a new export against the receipt"
	shown "psql -At -c \"SELECT consent_ledger.export('payments')\" > export$1.txt"
	if psql_at "SELECT line FROM consent_ledger.export('payments') AS line" > "$work/export$1.txt" 2> "$work/export.err"; then
		shown "$VERIFY_SHOWN export --public-key \"\$(psql -At -c 'SELECT consent_ledger.verifier_key()')\" --checkpoint receipt.json export$1.txt"
		"$VERIFY" export --public-key "$vk" --checkpoint "$work/receipt.json" "$work/export$1.txt" || echo "(exit status $?: verification failed)"
	else
		sed 's/^/   /' "$work/export.err"
		echo "-- the database cannot even produce an export of this ledger any more; the"
		echo "-- auditor's earlier exports and receipts are the evidence."
	fi
}

psql_demo <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 6. a superuser bypasses the extension: edits the catalog to switch the'
\echo '      ledger triggers off and changes the amount of payment 42'
\set ECHO queries
UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'payments'::regclass;
ALTER TABLE payments SET (fillfactor = 100);
UPDATE payments SET amount = 9999 WHERE id = 42;
UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'payments'::regclass;
ALTER TABLE payments SET (fillfactor = 100);
SELECT id, amount FROM payments WHERE id = 42;
\echo '-- verify() rehashes every row: leaf 41 is payment 42'
SELECT * FROM consent_ledger.verify('payments');
SELECT consent_ledger.verify_checkpoint(pg_read_file(:'work' || '/receipt.json')) AS receipt_still_holds;
\set ECHO none
SQL
recheck_offline 2

psql_demo <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 7. the same superuser deletes payment 7 and smuggles in a payment 9000'
\set ECHO queries
UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'payments'::regclass;
ALTER TABLE payments SET (fillfactor = 100);
DELETE FROM payments WHERE id = 7;
INSERT INTO payments (id, customer_id, amount) VALUES (9000, 1, 1.00);
UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'payments'::regclass;
ALTER TABLE payments SET (fillfactor = 100);
SELECT id, customer_id, amount, ledger_txn, ledger_ord FROM payments WHERE id IN (7, 9000) ORDER BY id;
\echo '-- payment 7 is gone; payment 9000 has no stamp: no log entry accounts for it.'
\echo '-- verify() names the first problem (payment 7 was leaf 6) and counts all of them:'
SELECT * FROM consent_ledger.verify('payments');
SELECT consent_ledger.verify_checkpoint(pg_read_file(:'work' || '/receipt.json')) AS receipt_still_holds;
\set ECHO none
SQL
recheck_offline 3

psql_demo <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 8. consent: purposes, an analyst, a protected table, and the customers who said yes'
\set ECHO queries
SELECT consent_ledger.define_purpose('analytics', 'product analytics') \g /dev/null
SELECT consent_ledger.define_purpose('billing', 'invoicing', 'contract') \g /dev/null
CREATE ROLE analyst LOGIN;
SELECT consent_ledger.authorize_purpose('analyst', 'analytics') \g /dev/null
\set ECHO none
CREATE TABLE visits (id bigint PRIMARY KEY, customer_id int, page text, seconds int);
INSERT INTO visits SELECT g, 1 + g % 1000, '/page/' || (g % 17), g % 300 FROM generate_series(1, 20000) g;
\echo '-- visits: 20000 rows, 20 per customer'
\set ECHO queries
SELECT consent_ledger.protect('visits', 'customer_id') \g /dev/null
SELECT consent_ledger.create_purpose_view('visits', 'analytics', 'public.visits_for_analytics') \g /dev/null
GRANT SELECT ON visits TO analyst;
GRANT SELECT ON visits_for_analytics TO analyst;
\echo '-- 70% of the customers consent to analytics (customers whose id ends in 0-6):'
SELECT count(consent_ledger.grant_consent(c, 'analytics', evidence => '{"form": "cookie-banner-v2"}'))
       AS consents_recorded
FROM generate_series(1, 1000) c WHERE c % 10 < 7;
\echo '-- and every change to customers is audited:'
SELECT consent_ledger.audit('customers') \g /dev/null
\set ECHO none
SQL

psql_demo "-U analyst" <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 9. the analyst (logged in as "analyst") reads personal data'
\echo '-- without a purpose: refused, never an empty answer'
\set ECHO queries
SELECT count(*) FROM visits;
\echo
\echo '-- a purpose the analyst is not authorized for: refused'
SET consent_ledger.purpose = 'billing';
\echo
\echo '-- the authorized purpose: only the rows of customers who consented'
SET consent_ledger.purpose = 'analytics';
SELECT count(*) AS visits_shown, count(DISTINCT customer_id) AS customers_shown FROM visits;
RESET consent_ledger.purpose;
\echo '-- the same through the purpose view, with no setting: the same rows'
SELECT count(*) AS visits_shown, count(DISTINCT customer_id) AS customers_shown FROM visits_for_analytics;
\echo '-- customers 1, 2 and 3 (all three consented):'
SELECT customer_id, count(*) AS visits FROM visits_for_analytics WHERE customer_id IN (1, 2, 3) GROUP BY 1 ORDER BY 1;
\set ECHO none
SQL

psql_demo <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\echo
\echo '== 10. customer 2 withdraws; changes of customer records are audited'
\set ECHO queries
SELECT consent_ledger.withdraw_consent(2, 'analytics', '{"channel": "privacy-portal"}') AS event_id;
UPDATE customers SET country = 'BE' WHERE id = 2;
BEGIN;
UPDATE customers SET name = 'oops' WHERE id = 3;
ROLLBACK;
\set ECHO none
SQL

psql_demo "-U analyst" <<'SQL'
\set VERBOSITY default
\pset footer off
\echo
\echo '-- the analyst runs the same query again: customer 2 is gone, from the next statement on'
\set ECHO queries
SELECT customer_id, count(*) AS visits FROM visits_for_analytics WHERE customer_id IN (1, 2, 3) GROUP BY 1 ORDER BY 1;
\set ECHO none
SQL

{
	cat <<'SQL'
\set VERBOSITY default
\pset footer off
\echo
\echo '== 11. the auditor: the signed audit trail (keys and hashes, no personal data)'
SELECT consent_ledger.seal() \g /dev/null
SQL
	audit_explanation | sed "s/'/''/g; s/^\(.*\)$/\\\\echo '\1'/"
	echo "$audit_query"
	cat <<'SQL'
\echo '-- consent, from the consent ledger alone: the state now, and customer 2 at any moment'
\set ECHO queries
SELECT subject, purpose, state FROM consent_ledger.consent_state WHERE subject IN ('1', '2', '3') ORDER BY 1;
SELECT e.recorded_at AS withdrawn_at,
       consent_ledger.has_consent(2, 'analytics', e.recorded_at - interval '1 millisecond') AS a_moment_before,
       consent_ledger.has_consent(2, 'analytics', e.recorded_at) AS at_withdrawal,
       consent_ledger.has_consent(2, 'analytics') AS now
FROM consent_ledger.consent_events e WHERE e.subject = '2' AND e.action = 'withdraw';
\set ECHO none
\echo
\echo '== 12. the auditor verifies every ledger'
\set ECHO queries
SELECT * FROM consent_ledger.verify();
\set ECHO none
\echo '-- payments is not valid: that is the expected result of the tampering of steps 6 and 7'
\echo '-- (payment 42 changed at leaf 41, payment 7 deleted at leaf 6, payment 9000 smuggled in),'
\echo '-- which the receipt and the offline verifier caught as well.  The consent and audit'
\echo '-- ledgers, which nobody tampered with, are valid.'
SQL
} | psql_demo
echo
echo "demo finished; the throwaway server is being removed"
