# Ledgers made before 1.3 and the consent_ledger table access method
# (README "Table access method"): both paths coexist after ALTER EXTENSION
# UPDATE, and use_table_am() moves an old ledger onto the access method.
#
#  1. A ledger made by 1.2 keeps its BEFORE INSERT row stamp trigger and
#     heap after the update: INSERT and COPY are stamped (COPY row by
#     row: one WAL INSERT record a row), a BEFORE INSERT row trigger that
#     would fire after the stamp is still refused (55000), it verifies and
#     a receipt taken before the update verifies.
#  2. use_table_am() moves it: heap -> consent_ledger, the row trigger
#     replaced by the statement trigger, every row and stamp unchanged,
#     the old receipt verifies; COPY is then a multi-row insert, new rows
#     are stamped and verify; a second call changes nothing.
#  3. use_table_am() refuses what it cannot move: a table that is no
#     ledger (42809), a partition of a partitioned ledger (0A000), a
#     retired ledger (55000), the extension's own ledgers (42501), a
#     ledger with a NOT NULL or CHECK constraint on a stamp column (55000:
#     the access method stamps after constraints are checked).
#  4. New ledgers made after the update are on the access method; a
#     partitioned ledger's partitions keep their row trigger, and a
#     ledger on the access method attached to it keeps its access method;
#     all verify.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Spec;
use ConsentLedgerTap;

my $node = PostgreSQL::Test::Cluster->new('am_upgrade');
$node->init;
$node->start;
my $db = 'postgres';

sub sealed
{
	my ($label) = @_;
	ok(cl_wait_for($node, $db,
		q{SELECT consent_ledger.seal() >= 0 AND NOT EXISTS (SELECT FROM consent_ledger.pending)}, 60),
		"$label: sealed");
}

sub am_of
{
	my ($rel) = @_;
	return $node->safe_psql($db,
		qq{SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = '$rel'::regclass});
}

sub stamp_kind
{
	my ($rel) = @_;
	return $node->safe_psql($db, qq{
		SELECT CASE WHEN tgtype & 1 = 1 THEN 'row' ELSE 'statement' END FROM pg_trigger
		WHERE tgrelid = '$rel'::regclass AND tgname = '~consent_ledger_stamp'});
}

my $copyfile = File::Spec->rel2abs($node->basedir) . '/rows.tsv';
cl_write_file($copyfile, join('', map { "$_\tcopied $_\n" } 1000 .. 1199));
chmod(0644, $copyfile);
my $copyfile2 = File::Spec->rel2abs($node->basedir) . '/rows2.tsv';
cl_write_file($copyfile2, join('', map { "$_\tcopied $_\n" } 4000 .. 4199));
chmod(0644, $copyfile2);

# WAL records "multi/single" of one COPY of the file into rel
sub copy_wal
{
	my ($rel, $file) = @_;
	my $start = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
	$node->safe_psql($db, qq{COPY $rel (id, v) FROM '$file'});
	my $end = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
	return $node->safe_psql($db, qq{
		SELECT count(*) FILTER (WHERE record_type LIKE 'MULTI_INSERT%') || '/' ||
			   count(*) FILTER (WHERE resource_manager = 'Heap' AND record_type LIKE 'INSERT%')
		FROM pg_get_wal_records_info('$start', '$end')
		WHERE block_ref LIKE '%/' || pg_relation_filenode('$rel') || ' %'});
}

# ---------------------------------------------------------------------
# 1. a 1.2 ledger after ALTER EXTENSION UPDATE
# ---------------------------------------------------------------------
$node->safe_psql($db, q{
	CREATE EXTENSION pg_walinspect;
	CREATE EXTENSION consent_ledger VERSION '1.2';
	CREATE TABLE old_l (id int PRIMARY KEY, v text);
	INSERT INTO old_l VALUES (1, 'adopted');
	SELECT consent_ledger.create_ledger('old_l');
	INSERT INTO old_l (id, v) SELECT i, 'before ' || i FROM generate_series(2, 50) i;
	CREATE TABLE old2 (id int);
	SELECT consent_ledger.create_ledger('old2');
	ALTER TABLE old2 ALTER COLUMN ledger_txn SET NOT NULL;
	ALTER TABLE old2 ADD CONSTRAINT ord_ok CHECK (ledger_ord >= 0);
	INSERT INTO old2 VALUES (1);
});
sealed('1.2');
my $receipt = $node->safe_psql($db, q{SELECT consent_ledger.checkpoint('old_l')});
$node->safe_psql($db, q{ALTER EXTENSION consent_ledger UPDATE});
is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'consent_ledger'}), '1.6',
	'updated to 1.6 (the current version)');
is(am_of('old_l'), 'heap', 'the 1.2 ledger stays on heap');
is(stamp_kind('old_l'), 'row', 'the 1.2 ledger keeps its row stamp trigger');
$node->safe_psql($db, q{INSERT INTO old_l (id, v) VALUES (51, 'after update')});
is(copy_wal('old_l', $copyfile), '0/200', 'COPY into the 1.2 ledger: row by row (200 INSERT records)');
is($node->safe_psql($db, q{SELECT count(*) FROM old_l WHERE ledger_txn IS NULL}), '0', 'every row stamped');
$node->safe_psql($db, q{
	CREATE FUNCTION user_trig() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
	CREATE TRIGGER "~~late" BEFORE INSERT ON old_l FOR EACH ROW EXECUTE FUNCTION user_trig();
});
my ($rc, $out, $err) = $node->psql($db, q{INSERT INTO old_l (id, v) VALUES (52, 'late')});
like($err, qr/trigger "~~late" on ledger table "old_l" fires after the ledger stamp/,
	'trigger path: a BEFORE trigger firing after the stamp is refused');
$node->safe_psql($db, q{DROP TRIGGER "~~late" ON old_l});
sealed('after update');
my $v = cl_verify_row($node, $db, 'old_l');
ok($v->{valid} && $v->{rows} == 251, '1.2 ledger verifies after the update (251 rows)') or diag($v->{problem});
is($node->safe_psql($db, qq{SELECT consent_ledger.verify_checkpoint('$receipt')}), 't',
	'a receipt of 1.2 verifies after the update');

# ---------------------------------------------------------------------
# 2. use_table_am()
# ---------------------------------------------------------------------
my $stamps_q = q{SELECT md5(string_agg(format('%s|%s|%s|%s', id, v, ledger_txn, ledger_ord), ';' ORDER BY id)) FROM old_l};
my $stamps = $node->safe_psql($db, $stamps_q);
$node->safe_psql($db, q{SELECT consent_ledger.use_table_am('old_l')});
is(am_of('old_l'), 'consent_ledger', 'use_table_am(): on the access method');
is(stamp_kind('old_l'), 'statement', 'use_table_am(): the stamp trigger is the statement marker');
is($node->safe_psql($db, $stamps_q), $stamps, 'use_table_am(): rows and stamps unchanged');
is($node->safe_psql($db, qq{SELECT consent_ledger.verify_checkpoint('$receipt')}), 't',
	'use_table_am(): the 1.2 receipt verifies');
my $wal = copy_wal('old_l', $copyfile2);
like($wal, qr{^[1-9][0-9]*/0$}, "COPY after use_table_am(): multi-row insert ($wal)");
$node->safe_psql($db, q{INSERT INTO old_l (id, v) SELECT i, 'moved ' || i FROM generate_series(3000, 3009) i});
is($node->safe_psql($db, q{SELECT count(*) FROM old_l WHERE ledger_txn IS NULL}), '0', 'new rows stamped');
$node->safe_psql($db, q{SELECT consent_ledger.use_table_am('old_l')});
is(am_of('old_l') . ' ' . stamp_kind('old_l'), 'consent_ledger statement', 'a second use_table_am() changes nothing');
sealed('moved');
$v = cl_verify_row($node, $db, 'old_l');
ok($v->{valid} && $v->{rows} == 461, 'moved ledger verifies (461 rows)') or diag($v->{problem});
is($node->safe_psql($db, qq{SELECT consent_ledger.verify_checkpoint('$receipt')}), 't',
	'the 1.2 receipt still verifies after new rows');

# ---------------------------------------------------------------------
# 3. what use_table_am() refuses
# ---------------------------------------------------------------------
$node->safe_psql($db, q{
	CREATE TABLE plain (id int);
	CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
	CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (1000);
	SELECT consent_ledger.create_ledger('parted');
	CREATE TABLE gone (id int);
	SELECT consent_ledger.create_ledger('gone');
	SELECT consent_ledger.retire_ledger('gone');
});
foreach my $c ([ 'plain', '42809' ], [ 'parted_a', '0A000' ], [ 'gone', '55000' ])
{
	my ($rel, $state) = @$c;
	($rc, $out, $err) = $node->psql($db,
		qq{\\set VERBOSITY verbose
SELECT consent_ledger.use_table_am('$rel')});
	like($err, qr/ERROR:  $state/, "use_table_am('$rel') refused with $state");
}
# a stamp column with a NOT NULL or CHECK constraint: refused until dropped
($rc, $out, $err) = $node->psql($db, qq{\\set VERBOSITY verbose
SELECT consent_ledger.use_table_am('old2')});
like($err, qr/ERROR:  55000: ledger table "old2" has a NOT NULL or CHECK constraint/,
	'use_table_am() of a ledger with NOT NULL on ledger_txn refused (55000)');
$node->safe_psql($db, q{ALTER TABLE old2 ALTER COLUMN ledger_txn DROP NOT NULL});
($rc, $out, $err) = $node->psql($db, q{SELECT consent_ledger.use_table_am('old2')});
like($err, qr/has a NOT NULL or CHECK constraint/, '... and with a CHECK on ledger_ord');
$node->safe_psql($db, q{ALTER TABLE old2 DROP CONSTRAINT ord_ok; SELECT consent_ledger.use_table_am('old2');
	INSERT INTO old2 VALUES (2)});
is(am_of('old2'), 'consent_ledger', 'without the constraints it moves');
is($node->safe_psql($db, q{SELECT count(*) FROM old2 WHERE ledger_txn IS NOT NULL}), '2', 'and its rows are stamped');

$node->safe_psql($db, q{SELECT consent_ledger.define_purpose('research'); SELECT consent_ledger.grant_consent('s1', 'research')});
($rc, $out, $err) = $node->psql($db,
	qq{\\set VERBOSITY verbose
SELECT consent_ledger.use_table_am('consent_ledger.consent_events')});
like($err, qr/ERROR:  42501/, 'use_table_am() of the consent ledger refused with 42501');

# ---------------------------------------------------------------------
# 4. new ledgers, partitions
# ---------------------------------------------------------------------
$node->safe_psql($db, q{CREATE TABLE new_l (id int, v text); SELECT consent_ledger.create_ledger('new_l')});
is(am_of('new_l') . ' ' . stamp_kind('new_l'), 'consent_ledger statement', 'a new ledger is on the access method');
is(am_of('parted_a') . ' ' . stamp_kind('parted_a'), 'heap row', 'a partition keeps its row trigger');
$node->safe_psql($db, q{
	CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (1000) TO (2000);
	CREATE TABLE parted_c (id int, v text);
	SELECT consent_ledger.create_ledger('parted_c');
	ALTER TABLE parted ATTACH PARTITION parted_c FOR VALUES FROM (2000) TO (3000);
});
is(am_of('parted_b') . ' ' . stamp_kind('parted_b'), 'heap row', 'a new partition gets the row trigger');
is(am_of('parted_c') . ' ' . stamp_kind('parted_c'), 'consent_ledger statement',
	'a ledger on the access method attached as a partition keeps it');
$node->safe_psql($db, q{
	INSERT INTO new_l (id, v) VALUES (1, 'x');
	INSERT INTO parted (id, v) SELECT i, 'p' || i FROM generate_series(1, 2999, 7) i;
});
$node->safe_psql($db, qq{COPY parted (id, v) FROM '$copyfile'});
$node->safe_psql($db, qq{COPY parted (id) FROM PROGRAM 'seq 2100 2150'});
sealed('partitions');
foreach my $rel ('new_l', 'parted_a', 'parted_b', 'parted_c', 'old2')
{
	$v = cl_verify_row($node, $db, $rel);
	ok($v->{valid} && $v->{rows} > 0, "$rel verifies ($v->{rows} rows)") or diag($v->{problem});
}
is($node->safe_psql($db, q{SELECT count(*) FROM parted WHERE ledger_txn IS NULL}), '0', 'every partition row stamped');

$node->stop;
done_testing();
