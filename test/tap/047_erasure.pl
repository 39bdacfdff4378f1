# Right to erasure (issue #15, README "Erasure"): erase_subject() on a
# primary with a streaming standby.  The erased values are gone from every
# file of the database on the primary and on the standby (heap, TOAST,
# index), also after a crash right after the erasure; the receipt taken
# before the erasure verifies in SQL and offline on the redacted export,
# whose leaf lines are the same bytes; the erasure survives pg_dump /
# pg_restore; a forged erasure in the restored copy fails the offline
# verifier against the same receipt.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Find;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

# The values to erase: an e-mail address and a phone field long enough to
# live in the TOAST table (hex of 200 md5 sums, 6400 bytes), both unique.
my $email = 'erase-me-4711@example.org';
my $toast_marker = 'f00dface';

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
# no ANALYZE behind the test's back: pg_statistic would hold sample
# values (README "Erasure" says what erase_subject() does not reach)
$primary->append_conf('postgresql.conf', "autovacuum = off\n");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE people (id int PRIMARY KEY, email text, phone text, city text);
	CREATE INDEX people_email_idx ON people (email);
	SELECT consent_ledger.create_ledger('people', personal => ARRAY['email', 'phone'], subject => 'id');
	SELECT consent_ledger.audit('people');
	SELECT consent_ledger.define_purpose('mail');
});
$primary->safe_psql('postgres', qq{
	INSERT INTO people VALUES (7, '$email',
		'$toast_marker' || (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 200) g), 'Oslo');
	INSERT INTO people VALUES (8, 'keep\@example.org', 'kept', 'Rome'), (9, NULL, NULL, 'Lima');
	SELECT consent_ledger.grant_consent('7', 'mail', evidence => '{"form": "signup-4711"}');
	SELECT consent_ledger.grant_consent('8', 'mail', evidence => '{"form": "signup-4712"}');
});
$primary->safe_psql('postgres', 'SELECT consent_ledger.seal()');
is($primary->safe_psql('postgres', q{SELECT count(*) FROM people p, LATERAL (SELECT pg_column_size(p.phone)) s(n)
	WHERE id = 7 AND length(phone) > 6000}), '1', 'the long personal value is there');

$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
chmod(0600, $standby->data_dir . '/consent_ledger/signing.key');
$standby->start;

my $pk = $primary->safe_psql('postgres', 'SELECT consent_ledger.public_key()');
my $receipt = $primary->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('people')});
my $receipt_file = cl_write_file("$tmp/receipt.json", $receipt);
my $before = cl_export_to_file($primary, 'postgres', 'people', "$tmp/before.export");
my ($rc) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file, $before);
is($rc, 0, 'before: the offline verifier accepts the export with the receipt');

# Every file under the database's directory holding one of the strings.
sub files_holding
{
	my ($node, $db, @needles) = @_;
	my $dboid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$db'");
	my $dir = $node->data_dir . "/base/$dboid";
	my @hits;
	find(
		sub {
			return unless -f $_;
			open(my $fh, '<:raw', $_) or return;
			local $/;
			my $bytes = <$fh>;
			close $fh;
			foreach my $n (@needles)
			{
				push @hits, "$File::Find::name ($n)" if index($bytes, $n) >= 0;
			}
		},
		$dir);
	return @hits;
}

# The planner's statistics hold sample values: most common values and
# histogram bounds of every column, an expression index's statistics, the
# MCV list of extended statistics.
$primary->safe_psql('postgres', q{
	CREATE INDEX people_lower_email_idx ON people (lower(email));
	CREATE STATISTICS people_email_city (mcv) ON email, city FROM people;
	ANALYZE people;
	ANALYZE consent_ledger.consent_events;
	ANALYZE consent_ledger.audit_log;
});
my $stats_sql = q{
	SELECT string_agg(k, ',' ORDER BY k) FROM (
		SELECT s.tablename || '.' || s.attname AS k FROM pg_stats s
		WHERE concat(s.most_common_vals::text, s.histogram_bounds::text) ~ '(erase-me|signup-4711|\(id\)=\(7\)|Oslo)'
		UNION ALL
		SELECT 'ext ' || e.statistics_name FROM pg_stats_ext e
		WHERE e.most_common_vals::text ~ 'erase-me') x};
is($primary->safe_psql('postgres', $stats_sql),
	'audit_log.row_key,consent_events.evidence,ext people_email_city,people.city,people.email,people_lower_email_idx.lower',
	'before: the statistics hold the e-mail address, the audit row key and the evidence (and the city)');
# ledger_salt's statistics hold salts: an erased row's old salt next to
# the commitment its redacted row keeps would let its value be guessed
my $salt_stats_sql = q{SELECT count(*) FROM pg_stats WHERE tablename = 'people' AND attname = 'ledger_salt'
	AND (most_common_vals IS NOT NULL OR histogram_bounds IS NOT NULL)};
is($primary->safe_psql('postgres', $salt_stats_sql), '1', 'before: the statistics hold salts of people');

$primary->safe_psql('postgres', 'CHECKPOINT');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
$standby->safe_psql('postgres', 'CHECKPOINT');
ok(scalar(files_holding($primary, 'postgres', 'signup-4711')) >= 1,
	'before: the primary\'s files hold the consent evidence');
ok(scalar(files_holding($primary, 'postgres', $email, $toast_marker)) >= 2,
	'before: the primary\'s files hold the e-mail address and the TOASTed value (the scan finds them)');
ok(scalar(files_holding($standby, 'postgres', $email)) >= 1,
	'before: the standby\'s files hold the e-mail address');

# The erasure, then a crash before any checkpoint.
my $erased = $primary->safe_psql('postgres',
	q{SELECT string_agg(relation || ':' || rows, ',' ORDER BY relation::text) FROM consent_ledger.erase_subject('7', 'TAP 047 request')});
is($erased, 'consent_ledger.audit_log:1,consent_ledger.consent_events:1,people:1',
	'erase_subject() erased the subject\'s row, its audit record\'s row_key and its consent evidence');
$primary->stop('immediate');
$primary->start;

is($primary->safe_psql('postgres',
	q{SELECT coalesce(email, '-') || ' ' || coalesce(phone, '-') || ' ' || city || ' ' || consent_ledger.erased(ledger_salt)
	  FROM people WHERE id = 7}),
	'- - Oslo true', 'after a crash: the row reads as erased (NULL values, erased() true)');
is($primary->safe_psql('postgres', q{SELECT email FROM people WHERE id = 8}), 'keep@example.org',
	'another subject\'s row is untouched');
is($primary->safe_psql('postgres',
	q{SELECT state FROM consent_ledger.consent_state WHERE subject = '7' AND purpose = 'mail'}),
	'withdrawn', 'the subject\'s consent is withdrawn');
is($primary->safe_psql('postgres',
	q{SELECT string_agg(reason || ' ' || relation || ' ' || rows, ', ' ORDER BY relation) FROM consent_ledger.erasures}),
	'TAP 047 request consent_ledger.audit_log 1, TAP 047 request consent_ledger.consent_events 1, TAP 047 request public.people 1',
	'the erasure is recorded in the erasure ledger, per ledger');
is($primary->safe_psql('postgres',
	q{SELECT count(*) FROM consent_ledger.audit_log WHERE relation = 'public.people' AND row_key IS NULL
	  AND new_row_hash IS NULL AND consent_ledger.erased(ledger_salt)}),
	'1', 'the audit record of the subject\'s row has its row_key and its row hash erased');
is($primary->safe_psql('postgres',
	q{SELECT count(*) FROM consent_ledger.audit_log WHERE relation = 'public.people' AND new_row_hash IS NOT NULL}),
	'2', 'the records of the other subjects\' rows (8, 9) keep their row hashes');

is($primary->safe_psql('postgres', $stats_sql), 'people.city',
	'the statistics of the personal columns, the expression index and the extended statistics are gone; the city\'s kept');
is($primary->safe_psql('postgres', $salt_stats_sql), '0', 'and those of ledger_salt');
$primary->safe_psql('postgres', 'ANALYZE people');
is($primary->safe_psql('postgres', $stats_sql), 'people.city', 'ANALYZE computes them again from the redacted rows');

$primary->safe_psql('postgres', 'SELECT consent_ledger.seal()');
my $v = cl_verify_row($primary, 'postgres', 'people');
ok($v->{valid}, 'after the erasure and a crash: verify() valid') or diag $v->{problem};
is($primary->safe_psql('postgres', 'SELECT bool_and(valid) FROM consent_ledger.verify()'), 't',
	'every ledger valid (the consent and erasure ledgers included)');
# the audit ledger's redacted records (row_key and a row hash, a bytea)
# verify offline too
my $audit_export = cl_export_to_file($primary, 'postgres', 'consent_ledger.audit_log', "$tmp/audit.export");
($rc) = cl_run_verifier('export', '--public-key', $pk, $audit_export);
is($rc, 0, 'the audit ledger\'s export after the erasure verifies offline');
is($primary->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$receipt'::text)}), 't',
	'the receipt taken before the erasure verifies');

my $after = cl_export_to_file($primary, 'postgres', 'people', "$tmp/after.export");
($rc) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file, $after);
is($rc, 0, 'offline: the redacted export verifies against the receipt taken before the erasure');
my ($drc, $dout) = cl_run_verifier('export', '--decode', '--public-key', $pk, $after);
is($drc, 0, 'offline: --decode accepts the version 3 leaves');
like($dout, qr/leaf 0: v3 .*"email": H:[0-9a-f]{64}/, '--decode shows the e-mail address as its commitment');
sub leaf_lines
{
	my ($f) = @_;
	open(my $fh, '<', $f) or die "$f: $!";
	my @l = grep { /^leaf / } <$fh>;
	close $fh;
	return join('', @l);
}
is(leaf_lines($after), leaf_lines($before), 'the leaf bytes are the same before and after the erasure');
unlike(slurp_file($after), qr/erase-me/, 'the export holds no erased value');

# physically gone, on the primary and on the standby, once pg_statistic
# (which holds the deleted statistics rows until then) is vacuumed, as
# README "Erasure" tells the DBA to
$primary->safe_psql('postgres', 'VACUUM pg_catalog.pg_statistic, pg_catalog.pg_statistic_ext_data');
$primary->safe_psql('postgres', 'CHECKPOINT');
my @left = files_holding($primary, 'postgres', $email, $toast_marker, 'signup-4711');
is_deeply(\@left, [], 'primary: no file of the database holds an erased value (heap, TOAST, indexes)');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
is($standby->safe_psql('postgres', q{SELECT count(*) FROM people WHERE id = 7 AND email IS NULL AND phone IS NULL}),
	'1', 'standby: the row reads as erased');
$standby->safe_psql('postgres', 'CHECKPOINT');
@left = files_holding($standby, 'postgres', $email, $toast_marker, 'signup-4711');
is_deeply(\@left, [], 'standby: no file of the database holds an erased value');

# pg_dump / pg_restore (uncompressed, so the dump can be searched)
my $dump = "$tmp/erased.dump";
$primary->command_ok([ 'pg_dump', '-Fc', '-Z0', '-f', $dump, '-d', $primary->connstr('postgres') ], 'pg_dump');
unlike(slurp_file($dump), qr/erase-me|\Q$toast_marker\E|signup-4711/, 'the dump holds no erased value');
$primary->safe_psql('postgres', 'CREATE DATABASE restored');
$primary->command_ok([ 'pg_restore', '-d', $primary->connstr('restored'), $dump ], 'pg_restore');
$v = cl_verify_row($primary, 'restored', 'people');
ok($v->{valid}, 'restored: verify() valid') or diag $v->{problem};
is($primary->safe_psql('restored', q{SELECT consent_ledger.erased(ledger_salt) FROM people WHERE id = 7}), 't',
	'restored: the row is still erased');
is($primary->safe_psql('restored', qq{SELECT consent_ledger.verify_checkpoint('$receipt'::text)}), 't',
	'restored: the receipt from before the erasure verifies');

# a forged erasure in the restored copy: one commitment byte changed
$primary->safe_psql('restored', q{
	UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'people'::regclass AND tgname LIKE '~consent_ledger%';
	ALTER TABLE people SET (fillfactor = 100);
});
$primary->safe_psql('restored', q{
	UPDATE people SET ledger_salt = set_byte(ledger_salt, 40, get_byte(ledger_salt, 40) # 1) WHERE id = 7;
	UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'people'::regclass AND tgname LIKE '~consent_ledger%';
	ALTER TABLE people SET (fillfactor = 100);
});
$v = cl_verify_row($primary, 'restored', 'people');
ok(!$v->{valid} && $v->{problem} =~ /changed at leaf 0/, 'restored, forged: verify() finds the changed row')
  or diag explain $v;
my $forged = cl_export_to_file($primary, 'restored', 'people', "$tmp/forged.export");
($rc) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file, $forged);
isnt($rc, 0, 'restored, forged: the offline verifier refuses the export against the receipt');

# Forged erasures of a non-personal column, offline: in a second restored
# copy, Bob's row (id 8) is "erased" by hand with correctly computed
# commitments (README "Erasure").  Only the personal columns: the same
# leaf, and the export verifies against the receipt (an erasure done by
# hand); the city "redacted" too: the offline verifier refuses it.
$primary->safe_psql('postgres', 'CREATE DATABASE restored2');
$primary->command_ok([ 'pg_restore', '-d', $primary->connstr('restored2'), $dump ], 'pg_restore again');
$primary->safe_psql('restored2', q{
	CREATE FUNCTION commitment(salt bytea, col text, val text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	  SELECT sha256('\x02'::bytea || salt || substring(int4send(octet_length(col)) FROM 3) || convert_to(col, 'UTF8')
	                || '\x74'::bytea || int4send(octet_length(convert_to(val, 'UTF8'))) || convert_to(val, 'UTF8'))
	$$;
	CREATE FUNCTION entry(col text, c bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	  SELECT substring(int4send(octet_length(col)) FROM 3) || convert_to(col, 'UTF8') || c
	$$;
	CREATE TABLE bob AS SELECT * FROM people WHERE id = 8;
	CREATE FUNCTION forge(with_city boolean) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	  -- a superuser bypassing the extension: its triggers off, and the
	  -- table shown as plain heap (the consent_ledger access method stamps
	  -- every row it stores; the two store the same pages)
	  UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'people'::regclass AND tgname LIKE '~consent_ledger%';
	  UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'heap') WHERE oid = 'people'::regclass;
	  EXECUTE 'ALTER TABLE people SET (fillfactor = 100)';
	  DELETE FROM people WHERE id = 8;
	  INSERT INTO people SELECT b.id, NULL, NULL, CASE WHEN with_city THEN NULL ELSE b.city END,
	         b.ledger_txn, b.ledger_ord,
	         CASE WHEN with_city
	              THEN '\x450003'::bytea || entry('city', commitment(b.ledger_salt, 'city', b.city))
	              ELSE '\x450002'::bytea END
	           || entry('email', commitment(b.ledger_salt, 'email', b.email))
	           || entry('phone', commitment(b.ledger_salt, 'phone', b.phone))
	    FROM bob b;
	  UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'people'::regclass AND tgname LIKE '~consent_ledger%';
	  UPDATE pg_class SET relam = (SELECT oid FROM pg_am WHERE amname = 'consent_ledger') WHERE oid = 'people'::regclass;
	  EXECUTE 'ALTER TABLE people SET (fillfactor = 100)';
	END $$;
});
is($primary->safe_psql('restored2', q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'people'::regclass AND attnum > 0 AND NOT attisdropped}),
	'id,email,phone,city,ledger_txn,ledger_ord,ledger_salt', 'restored2: the column order the forgery assumes');
$primary->safe_psql('restored2', 'SELECT forge(false)');
is($primary->safe_psql('restored2', q{SELECT coalesce(email, '-') || ' ' || city || ' ' || consent_ledger.erased(ledger_salt) FROM people WHERE id = 8}),
	'- Rome true', 'restored2: Bob erased by hand');
my $by_hand = cl_export_to_file($primary, 'restored2', 'people', "$tmp/by_hand.export");
($rc, my $out) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file, $by_hand);
is($rc, 0, 'offline: an erasure done by hand, correctly, verifies (it is an erasure)') or diag $out;
$primary->safe_psql('restored2', 'SELECT forge(true)');
my $city = cl_export_to_file($primary, 'restored2', 'people', "$tmp/city.export");
($rc) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file, $city);
isnt($rc, 0, 'offline: a non-personal column "redacted" with a correct commitment is refused against the receipt');
$v = cl_verify_row($primary, 'restored2', 'people');
ok(!$v->{valid}, 'restored2: verify() finds it too') or diag explain $v;

# Migration of an existing ledger (README "Erasure"): the rows move to a
# new ledger with personal columns, the old one is retired and dropped;
# its receipt still verifies, and the moved rows can be erased.
$primary->safe_psql('postgres', q{
	CREATE TABLE signups (id int, email text, plan text);
	SELECT consent_ledger.create_ledger('signups');
	INSERT INTO signups VALUES (9201, 'migrate-me@example.org', 'free'), (9202, 'two@example.org', 'pro');
});
$primary->safe_psql('postgres', 'SELECT consent_ledger.seal()');
my $old_receipt = $primary->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('signups')});
$primary->safe_psql('postgres', q{
	BEGIN;
	ALTER TABLE signups RENAME TO signups_before_1_3;
	CREATE TABLE signups (id int, email text, plan text);
	SELECT consent_ledger.create_ledger('signups', personal => ARRAY['email'], subject => 'id');
	INSERT INTO signups (id, email, plan)
	  SELECT id, email, plan FROM signups_before_1_3 ORDER BY ledger_txn, ledger_ord;
	SELECT consent_ledger.retire_ledger('signups_before_1_3');
	COMMIT;
	DROP TABLE signups_before_1_3;
});
$primary->safe_psql('postgres', 'SELECT consent_ledger.seal()');
is($primary->safe_psql('postgres', q{SELECT valid FROM consent_ledger.verify(consent_ledger.ledger('signups_before_1_3'))}),
	't', 'migration: the old, dropped ledger still verifies');
is($primary->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$old_receipt'::text)}), 't',
	'migration: the receipt of the old ledger verifies');
is($primary->safe_psql('postgres', q{SELECT relation || ':' || rows FROM consent_ledger.erase_subject('9201', 'migrated')}),
	'signups:1', 'migration: a moved row can be erased');
is($primary->safe_psql('postgres', q{SELECT count(*) FROM signups WHERE email IS NULL AND consent_ledger.erased(ledger_salt)}),
	'1', 'migration: the moved row reads as erased');
ok(cl_verify_row($primary, 'postgres', 'signups')->{valid}, 'migration: the new ledger verifies');
$primary->safe_psql('postgres', 'CHECKPOINT');
is_deeply([ files_holding($primary, 'postgres', 'migrate-me@') ], [],
	'migration: no file of the database holds the erased value');

# DROP EXTENSION treats the erasure ledger as the consent and audit ledgers
$primary->safe_psql('postgres', 'CREATE DATABASE dropping');
$primary->safe_psql('dropping', q{
	CREATE EXTENSION consent_ledger;
	SELECT * FROM consent_ledger.erase_subject('nobody', 'an erasure that finds nothing');
});
my ($drc2, $dout2, $derr) = $primary->psql('dropping', 'DROP EXTENSION consent_ledger CASCADE');
ok($drc2 != 0 && $derr =~ /ledger table "consent_ledger\.erasures" is live/,
	'DROP EXTENSION is refused while the erasure ledger is live and holds rows') or diag $derr;
$primary->safe_psql('dropping', q{
	BEGIN;
	SELECT consent_ledger.retire_ledger('consent_ledger.erasures');
	DROP EXTENSION consent_ledger CASCADE;
	COMMIT;
});
like($primary->safe_psql('dropping', q{SELECT n.nspname || ' ' || count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relname = 'erasures' GROUP BY n.nspname}), qr/^consent_ledger_dropped_\d+ 1$/,
	'retired, it is kept in the archive schema after the drop');

# rotate_audit_ledger() (1.4): an audit ledger rotated and not dropped yet
# is still an audit ledger to erase_subject() (its records found through
# the keys of the subject's rows, not by a literal row_key), and DROP
# EXTENSION archives it with the other ledgers
$primary->safe_psql('postgres', 'CREATE DATABASE rotating');
$primary->safe_psql('rotating', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE orders (order_id int PRIMARY KEY, customer text);
	SELECT consent_ledger.protect('orders', 'customer');
	SELECT consent_ledger.audit('orders');
	INSERT INTO orders VALUES (1, 'c-41'), (2, 'c-42');
});
my $rotated_old = $primary->safe_psql('rotating', 'SELECT consent_ledger.rotate_audit_ledger()');
like($rotated_old, qr/^consent_ledger\.audit_log_ledger_\d+$/, 'rotation: the old audit ledger renamed');
$primary->safe_psql('rotating', q{INSERT INTO orders VALUES (3, 'c-41')});
$primary->safe_psql('rotating', 'SELECT consent_ledger.seal()');
is($primary->safe_psql('rotating', q{SELECT string_agg(relation::text || ':' || rows, ',' ORDER BY relation::text)
	FROM consent_ledger.erase_subject('c-41', 'TAP 047 rotation')}),
	"consent_ledger.audit_log:1,$rotated_old:1",
	'rotation: erase_subject() erases the subject\'s records in the new and in the rotated audit ledger');
is($primary->safe_psql('rotating', qq{SELECT string_agg(coalesce(row_key, '-') || ' ' || (new_row_hash IS NOT NULL)::text
	|| ' ' || consent_ledger.erased(ledger_salt)::text, ',' ORDER BY record_id) FROM $rotated_old WHERE operation = 'INSERT'}),
	'- false true,(order_id)=(2) true false', 'rotation: in the rotated ledger, the subject\'s record erased, the other kept');
is($primary->safe_psql('rotating', 'SELECT count(*) FROM consent_ledger.verify() WHERE NOT valid'), '0',
	'rotation: every ledger valid after the erasure');
$primary->safe_psql('rotating', q{
	BEGIN;
	SELECT consent_ledger.retire_ledger('consent_ledger.erasures');
	SELECT consent_ledger.retire_ledger('consent_ledger.audit_log');
	DROP EXTENSION consent_ledger CASCADE;
	COMMIT;
});
like($primary->safe_psql('rotating', q{SELECT string_agg(c.relname, ',' ORDER BY c.relname) || ' in ' || min(n.nspname)
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname LIKE 'audit\_log%' AND c.relkind = 'r'}),
	qr/^audit_log,audit_log_ledger_\d+ in consent_ledger_dropped_\d+$/,
	'rotation: DROP EXTENSION archives the rotated audit ledger with the live one');
$primary->safe_psql('rotating', 'CREATE EXTENSION consent_ledger');
ok(1, 'rotation: CREATE EXTENSION again after that');

done_testing();
