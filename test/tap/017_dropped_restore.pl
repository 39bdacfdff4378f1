# A dropped ledger's table OID is history only (review 3, item 1, R1, R2).
#
# R1: pg_dump / pg_restore of a database with a dropped ledger and a live
# ledger, into a fresh cluster where the restored live ledger's table gets
# exactly the OID the dropped ledger's table had (forced: the restore is
# split, and pg_resetwal -o sets the next OID just before the live table
# is created).  Before 1.2's fix the dropped ledger kept that OID in
# consent_ledger.ledgers.relid (UNIQUE), and restoring the ledgers table
# failed with a duplicate key: every ledger was lost.  Now the restore
# succeeds, both ledgers verify, the dropped one is reported dropped, and
# both receipts verify.
#
# R2: on the source server, a new unrelated table gets the dropped
# ledger's old OID (pg_resetwal -o): the dropped ledger is still reported
# dropped and valid, the new table can become a ledger, and ledger() of
# the dropped ledger's name never returns the new table.

use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

my $node = PostgreSQL::Test::Cluster->new('src');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE dead (id integer, v text);
	SELECT consent_ledger.create_ledger('dead');
	INSERT INTO dead SELECT g, 'dead ' || g FROM generate_series(1, 5) g;
	SELECT consent_ledger.seal();
});
my $dead_receipt = $node->safe_psql('src', q{SELECT consent_ledger.checkpoint('dead')});
my $dead_oid = $node->safe_psql('src', q{SELECT 'dead'::regclass::oid});
$node->safe_psql('src', q{
	SELECT consent_ledger.retire_ledger('dead');
	DROP TABLE dead;
	CREATE TABLE live (id integer, v text);
	SELECT consent_ledger.create_ledger('live');
	INSERT INTO live SELECT g, 'live ' || g FROM generate_series(1, 3) g;
	SELECT consent_ledger.seal();
});
my $live_receipt = $node->safe_psql('src', q{SELECT consent_ledger.checkpoint('live')});
is($node->safe_psql('src', q{
	SELECT count(*) FILTER (WHERE relid IS NULL) || '/' || count(*) FROM consent_ledger.ledgers}),
	'1/2', 'source: the dropped ledger\'s relid is NULL, the live one\'s is not');
is($node->safe_psql('src', q{SELECT relid FROM consent_ledger.dropped_ledgers WHERE table_name = 'dead'}),
	$dead_oid, 'source: the dropped table\'s OID is kept in dropped_ledgers');

my $dump = "$tmp/src.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ], 'pg_dump -Fc');

###########################################################################
# R1: restore into a fresh cluster; the live table takes the dead OID
###########################################################################

my $node2 = PostgreSQL::Test::Cluster->new('restore');
$node2->init;
$node2->append_conf('postgresql.conf',
	"consent_ledger.previous_signing_key_file = '" . abs_path($node->data_dir) . "/consent_ledger/signing.key'");
$node2->start;
$node2->safe_psql('postgres', 'CREATE DATABASE restored TEMPLATE template0');

# the table of contents, split: everything before the live table, the live
# table itself, then the rest
my ($toc, $e) = ('', '');
IPC::Run::run([ $node2->installed_command('pg_restore'), '-l', $dump ], '>', \$toc, '2>', \$e);
my @lines = split /\n/, $toc;
my @live_table = grep { /^\d+;.* TABLE public live / } @lines;
is(scalar(@live_table), 1, 'the dump has the live table') or diag $toc;
my @pre = grep { !/^;/ && !/ TABLE public live / && !/ TABLE DATA / && !/ (TRIGGER|CONSTRAINT|INDEX|ACL|FK CONSTRAINT|SEQUENCE SET) / } @lines;
my %first = map { $_ => 1 } (@pre, @live_table);
my @rest = grep { !/^;/ && !$first{$_} } @lines;
cl_write_file("$tmp/pre.list", join("\n", @pre) . "\n");
cl_write_file("$tmp/live.list", join("\n", @live_table) . "\n");
cl_write_file("$tmp/rest.list", join("\n", @rest) . "\n");

sub restore_list
{
	my ($list, $label) = @_;
	my ($o, $err) = ('', '');
	IPC::Run::run([ $node2->installed_command('pg_restore'), '-L', $list, '-d', $node2->connstr('restored'), $dump ],
		'>', \$o, '2>', \$err);
	my $ret = $? >> 8;
	is($ret, 0, "restore $label: pg_restore exits 0");
	is($err, '', "restore $label: pg_restore reports no error") or diag $err;
}

restore_list("$tmp/pre.list", 'before the live table');
$node2->stop;
$node2->command_ok([ 'pg_resetwal', '-o', $dead_oid, $node2->data_dir ], "pg_resetwal -o $dead_oid");
$node2->start;
restore_list("$tmp/live.list", 'the live table');
is($node2->safe_psql('restored', q{SELECT 'live'::regclass::oid}), $dead_oid,
	'restored: the live ledger\'s table has the OID the dropped ledger\'s table had');
restore_list("$tmp/rest.list", 'data and the rest');

is($node2->safe_psql('restored', q{
	SELECT string_agg(coalesce(relid::text, 'NULL'), ',' ORDER BY ledger_id) FROM consent_ledger.ledgers}),
	'NULL,live', 'restored: both ledgers are in consent_ledger.ledgers');
is($node2->safe_psql('restored', q{
	SELECT string_agg(coalesce(relation::text, 'NULL') || ' ' || "rows" || ' ' || valid || ' ' || coalesce(problem, ''),
					  E'\n' ORDER BY relation::text NULLS FIRST)
	FROM consent_ledger.verify(NULL)}),
	"NULL 5 true table dropped: rows not rechecked; log, checkpoint chain and signatures verified\nlive 3 true ",
	'restored: verify(NULL) reports both valid, the dropped one dropped');
my $rv = cl_verify_row($node2, 'restored', 'live');
ok($rv->{valid} && $rv->{rows} == 3, 'restored: verify(\'live\') is the live ledger') or diag $rv->{problem};
is($node2->safe_psql('restored', qq{SELECT consent_ledger.verify_checkpoint('$dead_receipt')}), 't',
	'restored: the dropped ledger\'s receipt verifies (by origin)');
is($node2->safe_psql('restored', qq{SELECT consent_ledger.verify_checkpoint('$live_receipt')}), 't',
	'restored: the live ledger\'s receipt verifies');
is($node2->safe_psql('restored', q{SELECT consent_ledger.ledger('live')::oid}), $dead_oid,
	'restored: ledger(\'live\') is the live table');
my ($rc, $out, $err) = $node2->psql('restored', q{SELECT consent_ledger.ledger('dead')});
like($err, qr/has no relation to name it by.*\n.*the OID it had now belongs to another relation/,
	'restored: ledger(\'dead\') does not return the live table that has its old OID');
$node2->safe_psql('restored', q{INSERT INTO live VALUES (4, 'after restore'); SELECT consent_ledger.seal()});
$rv = cl_verify_row($node2, 'restored', 'live');
ok($rv->{valid} && $rv->{rows} == 4, 'restored: the live ledger goes on sealing and verifies') or diag $rv->{problem};
$node2->stop;

###########################################################################
# R2: on the source, an unrelated new table gets the dead OID
###########################################################################

# PostgreSQL gives no relation an OID that a pg_class row has, dead ones
# included (SnapshotAny), or whose file exists (the dropped table's
# emptied file stays until a checkpoint after the drop)
$node->safe_psql('src', 'VACUUM pg_catalog.pg_class');
$node->safe_psql('src', 'CHECKPOINT');
$node->safe_psql('src', 'CHECKPOINT');
$node->stop;
# In single-user mode, so that no background process takes an OID first.
# Should anything take an OID before the table's own, the next OID is set
# back by that much and the table made again, until it has the dropped
# table's OID (the test checks that it does).
my $next = $dead_oid;
for my $attempt (1 .. 4)
{
	$node->command_ok([ 'pg_resetwal', '-o', $next, $node->data_dir ], "source: pg_resetwal -o $next");
	my ($so, $se) = ('', '');
	IPC::Run::run([ $node->installed_command('postgres'), '--single', '-D', $node->data_dir, 'src' ],
		'<', \"DROP TABLE IF EXISTS t_new;\nCREATE TABLE t_new (a integer, b text, c numeric);\nCHECKPOINT;\nSELECT 't_new'::regclass::oid AS got;\n",
		'>', \$so, '2>', \$se);
	my ($got) = $so =~ /got = "(\d+)"/;
	die "single-user mode failed: $so$se" unless defined $got;
	note "attempt $attempt: next OID $next, t_new got $got";
	last if $got == $dead_oid;
	$next -= $got - $dead_oid;
}
$node->start;
is($node->safe_psql('src', q{SELECT 't_new'::regclass::oid}), $dead_oid,
	'source: new table t_new has the dropped ledger\'s old OID');
is($node->safe_psql('src', q{
	SELECT string_agg(coalesce(relation::text, 'NULL') || ' ' || valid || ' ' || coalesce(problem, ''), E'\n'
					  ORDER BY relation NULLS FIRST)
	FROM consent_ledger.verify(NULL)}),
	"NULL true table dropped: rows not rechecked; log, checkpoint chain and signatures verified\nlive true ",
	'source: verify(NULL) reports the dropped ledger dropped and valid, not t_new');
($rc, $out, $err) = $node->psql('src', q{SELECT * FROM consent_ledger.verify('t_new')});
like($err, qr/"t_new" is not a ledger table/, 'source: verify(\'t_new\') says t_new is no ledger');
($rc, $out, $err) = $node->psql('src', q{SELECT consent_ledger.ledger('dead')});
isnt($out, 't_new', 'source: ledger(\'dead\') does not return t_new');
like($err, qr/has no relation to name it by/, 'source: ledger(\'dead\') says why');
is($node->safe_psql('src', qq{SELECT consent_ledger.verify_checkpoint('$dead_receipt')}), 't',
	'source: the dropped ledger\'s receipt still verifies');
$node->safe_psql('src', q{SELECT consent_ledger.create_ledger('t_new'); INSERT INTO t_new VALUES (1, 'x', 2)});
$node->safe_psql('src', q{SELECT consent_ledger.seal()});
$rv = cl_verify_row($node, 'src', 't_new');
ok($rv->{valid} && $rv->{rows} == 1, 'source: t_new became a ledger and verifies') or diag $rv->{problem};
is($node->safe_psql('src', q{SELECT count(*) FILTER (WHERE valid) || '/' || count(*) FROM consent_ledger.verify(NULL)}),
	'3/3', 'source: all three ledgers valid');

###########################################################################
# R5: one ledger whose table cannot be read does not abort verify(NULL)
###########################################################################

$node->safe_psql('src', q{
	CREATE TABLE unreadable (id integer);
	SELECT consent_ledger.create_ledger('unreadable');
	INSERT INTO unreadable VALUES (1), (2);
	SELECT consent_ledger.seal();
	CHECKPOINT;
});
my $file = $node->data_dir . '/' . $node->safe_psql('src', q{SELECT pg_relation_filepath('unreadable')});
$node->stop;
chmod(0000, $file) or die "chmod $file: $!";
$node->start;
is($node->safe_psql('src', q{
	SELECT string_agg(coalesce(relation::text, 'NULL') || ' ' || valid || ' ' || coalesce("rows"::text, 'NULL') || ' '
					  || regexp_replace(coalesce(problem, ''), 'file "[^"]*"', 'file F'), E'\n' ORDER BY relation::text NULLS FIRST)
	FROM consent_ledger.verify(NULL)}),
	"NULL true 5 table dropped: rows not rechecked; log, checkpoint chain and signatures verified\n"
	. "live true 3 \nt_new true 1 \n"
	. "unreadable false NULL could not be verified: could not open file F: Permission denied (SQLSTATE 42501)",
	'verify(NULL) reports the unreadable ledger as its problem and verifies the others');
($rc, $out, $err) = $node->psql('src', q{SELECT * FROM consent_ledger.verify('unreadable')});
like($err, qr/Permission denied/, 'verify(\'unreadable\') of that ledger alone raises the error');
chmod(0600, $file) or die "chmod $file: $!";
is($node->safe_psql('src', q{SELECT count(*) FILTER (WHERE valid) || '/' || count(*) FROM consent_ledger.verify(NULL)}),
	'4/4', 'file readable again: all four ledgers valid');

$node->stop;
done_testing();
