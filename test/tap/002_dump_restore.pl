# pg_dump -Fc / pg_restore of a database with a ledger: the restored
# ledger verifies, keeps its append-only protection, honours receipts
# (checkpoints) taken before the dump, and goes on sealing -- on the same
# server and on another server with a different signing key.

use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');

$node->safe_psql('src', q{
	CREATE EXTENSION consent_ledger;
	CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
	CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
	CREATE TYPE addr AS (street text, zip integer, lines text[]);
	CREATE TABLE t (
		id		integer,
		note	text,
		amount	numeric,
		at		timestamptz,
		doc		jsonb,
		tags	integer[],
		nothing	text,
		m		mood,
		p		posint,
		a		addr,
		ts		timestamp,
		iv		interval,
		u		uuid,
		b		bytea,
		f		float8,
		r		int4range,
		d		date
	);
	-- a row that is there before the table becomes a ledger (adopted)
	INSERT INTO t (id, note, amount, m, p) VALUES (0, 'adopted', 0.001, 'ok', 1);
	SELECT consent_ledger.create_ledger('t');
});
# several transactions, single- and multi-row, one with a rolled-back savepoint
$node->safe_psql('src', q{
	INSERT INTO t VALUES (1, 'plain', 12.50, '2024-02-29 12:34:56.789+05:30',
		'{"b": 1, "a": [1, 2, {"c": null}], "s": "x\"y"}', '{1,2,3}', NULL, 'happy', 7,
		ROW('Main St', 12345, '{x,y}'), '2001-02-03 04:05:06', '1 year 2 mons 3 days 04:05:06.5',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10', 3.14159, '[1,10)', '2020-01-01');
	INSERT INTO t VALUES (2, E'unicode: \u00e5\u00e4\u00f6 \u2014 \u2713 \U0001F600', 'NaN', 'infinity',
		'[]', '{{1,2},{3,NULL}}', NULL, 'sad', 2147483647,
		ROW(NULL, NULL, NULL), '-infinity', '-1 day', NULL, '', '-0', 'empty', '4713-01-01 BC');
	BEGIN;
	INSERT INTO t (id, note, amount, at, m, p, a)
		SELECT g, 'batch ' || g, g * 1.1, '2000-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
			(ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood, g, ROW('street ' || g, g, NULL)::addr
		FROM generate_series(10, 19) g;
	SAVEPOINT s;
	INSERT INTO t (id, note) VALUES (-1, 'rolled back');
	ROLLBACK TO SAVEPOINT s;
	INSERT INTO t (id, note, doc, f) VALUES (20, 'after savepoint', '{"n": 1.50}', 'Infinity');
	COMMIT;
});
# an enum value added later sorts between existing ones: its OID order
# differs from its sort order, and pg_restore assigns new OIDs
$node->safe_psql('src', q{ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok'});
$node->safe_psql('src', q{INSERT INTO t (id, note, m, tags) VALUES (21, 'meh', 'meh', '{}')});
$node->safe_psql('src', 'SELECT consent_ledger.seal()');

my $v = cl_verify_row($node, 'src', 't');
ok($v->{valid}, 'source: verify() valid') or diag $v->{problem};
is($v->{pending}, 0, 'source: nothing pending');
my $nrows = $node->safe_psql('src', 'SELECT count(*) FROM t');
is($v->{rows}, $nrows, 'source: verify() rows = count(*)');
is($nrows, 15, 'source: every committed row and no rolled-back row');

# What the restored copies must reproduce.
my $contents_sql = q{
	SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
	SET extra_float_digits = 3;
	SELECT t::text FROM t ORDER BY ledger_txn, ledger_ord};
my $contents = $node->safe_psql('src', $contents_sql);
my $triggers_sql = q{SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname)
	FROM pg_trigger WHERE tgrelid = 't'::regclass};
my $triggers = $node->safe_psql('src', $triggers_sql);
like($triggers, qr/~consent_ledger_stamp:A/, 'source: the stamp trigger fires ALWAYS');
my $src_pk = $node->safe_psql('src', 'SELECT consent_ledger.public_key()');
my $src_id = $node->safe_psql('src', 'SELECT consent_ledger.key_id()');
my $receipt = $node->safe_psql('src', q{SELECT consent_ledger.checkpoint('t')});
my $receipt_file = cl_write_file("$tmp/receipt.json", $receipt);
my ($receipt_size) = $receipt =~ /"tree_size": (\d+)/;
is($receipt_size, $nrows, 'receipt covers every row');
my $src_export = cl_export_to_file($node, 'src', 't', "$tmp/src.export");
my ($rc, $out) = cl_run_verifier('export', '--public-key', $src_pk, '--checkpoint', $receipt_file, $src_export);
is($rc, 0, 'source: offline verifier accepts the export with the receipt');

my $dump = "$tmp/src.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ], 'pg_dump -Fc');

# The original goes on after the dump; a receipt of it must not verify
# against a restored copy that went another way (a fork).
$node->safe_psql('src', q{INSERT INTO t (id, note) VALUES (100, 'original after dump')});
$node->safe_psql('src', 'SELECT consent_ledger.seal()');
my $fork_receipt = $node->safe_psql('src', q{SELECT consent_ledger.checkpoint('t')});
ok(cl_verify_row($node, 'src', 't')->{valid}, 'source still valid after the dump');

# Restores the dump into a new database; returns true when pg_restore
# reported no error.
sub restore
{
	my ($n, $db, $label) = @_;
	$n->safe_psql('postgres', qq{CREATE DATABASE $db TEMPLATE template0});
	my ($o, $e) = ('', '');
	IPC::Run::run([ $n->installed_command('pg_restore'), '-d', $n->connstr($db), $dump ],
		'>', \$o, '2>', \$e);
	my $ret = $? >> 8;
	is($ret, 0, "$label: pg_restore exits 0");
	is($e, '', "$label: pg_restore reports no error") or diag $e;
	return $ret == 0;
}

# Everything a restored copy must satisfy before and after new rows.
# @keys: the public keys an offline verifier needs for its export.
sub check_restored
{
	my ($n, $db, $label, %opt) = @_;

	is($n->safe_psql($db, $triggers_sql), $triggers,
		"$label: the ledger's triggers are restored, firing ALWAYS");
	is($n->safe_psql($db, $contents_sql), $contents, "$label: rows identical to the source");
	my $rv = cl_verify_row($n, $db, 't');
	ok($rv->{valid}, "$label: verify() valid") or diag $rv->{problem};
	is($rv->{rows}, $nrows, "$label: verify() counts every row");
	is($rv->{pending}, 0, "$label: nothing pending");
	is($n->safe_psql($db, qq{SELECT consent_ledger.verify_checkpoint('$receipt')}),
		't', "$label: verify_checkpoint(receipt taken before the dump)");
	is($n->safe_psql($db, q{SELECT consent_ledger.checkpoint('t')}), $receipt,
		"$label: latest checkpoint is the receipt");
	my $export = cl_export_to_file($n, $db, 't', "$tmp/$db.export");
	my ($erc, $eout) = cl_run_verifier('export', '--public-key', $src_pk,
		'--checkpoint', $receipt_file, $export);
	is($erc, 0, "$label: offline verifier accepts the restored export with the receipt");

	# still append-only (each attempt is rolled back should it succeed, so
	# that the checks below still see the restored rows)
	foreach my $try (
		[ 'UPDATE', q{UPDATE t SET note = 'changed' WHERE id = 1}, qr/cannot update ledger table "t"/ ],
		[ 'DELETE', q{DELETE FROM t WHERE id = 1}, qr/cannot delete from ledger table "t"/ ],
		[ 'TRUNCATE', q{TRUNCATE t}, qr/cannot truncate ledger table "t"/ ])
	{
		my ($what, $sql, $re) = @$try;
		my ($ret, $o, $e) = $n->psql($db, "BEGIN;\n$sql;\nROLLBACK;");
		like($e, $re, "$label: $what refused");
	}

	# more rows after the restore
	my $maxtxn = $n->safe_psql($db, 'SELECT coalesce(max(ledger_txn), 0) FROM t');
	$n->safe_psql($db, q{
		INSERT INTO t (id, note, m, p, a) VALUES (200, 'after restore', 'meh', 5, ROW('x', 1, '{a}'));
		INSERT INTO t (id, note, doc) SELECT 200 + g, 'after restore batch', jsonb_build_object('g', g)
			FROM generate_series(1, 3) g;
	});
	$n->safe_psql($db, 'SELECT consent_ledger.seal()');
	is($n->safe_psql($db, qq{SELECT count(*) FROM t WHERE id >= 200 AND
			(ledger_txn IS NULL OR ledger_ord IS NULL OR ledger_txn <= $maxtxn)}),
		'0', "$label: new rows are stamped with new transaction numbers");
	$rv = cl_verify_row($n, $db, 't');
	ok($rv->{valid}, "$label: verify() valid after new rows") or diag $rv->{problem};
	is($rv->{rows}, $nrows + 4, "$label: verify() counts the new rows");
	is($rv->{pending}, 0, "$label: new rows sealed");
	is($n->safe_psql($db, qq{SELECT consent_ledger.verify_checkpoint('$receipt')}),
		't', "$label: the old receipt still verifies after new rows");
	my $cp = $n->safe_psql($db, q{SELECT consent_ledger.checkpoint('t')});
	like($cp, qr/"tree_size": @{[ $nrows + 4 ]}\b/, "$label: new checkpoint covers the new rows");
	like($cp, qr/"key_id": "$opt{key_id}"/, "$label: new checkpoint signed by this server's key");
	is($n->safe_psql($db, q{SELECT consent_ledger.verify_checkpoint(consent_ledger.checkpoint('t'))}),
		't', "$label: new checkpoint verifies");
	is($n->safe_psql($db, qq{SELECT consent_ledger.verify_checkpoint('$fork_receipt')}),
		'f', "$label: a receipt of the original taken after the dump does not verify here (fork)");

	$export = cl_export_to_file($n, $db, 't', "$tmp/$db.2.export");
	($erc, $eout) = cl_run_verifier('export', (map { ('--public-key', $_) } @{ $opt{keys} }),
		'--checkpoint', $receipt_file, $export);
	is($erc, 0, "$label: offline verifier accepts the export after new rows, extending the receipt");
	like($eout, qr/extends --checkpoint of size $receipt_size/, "$label: ... and says it extends the receipt");
	return;
}

###########################################################################
# restore on the same server
###########################################################################

restore($node, 'restored', 'same server');
check_restored($node, 'restored', 'same server', key_id => $src_id, keys => [$src_pk]);
is($node->safe_psql('restored', 'SELECT count(*) FROM consent_ledger.keys'), '1',
	'same server: one signing key in consent_ledger.keys');

###########################################################################
# restore on another server, with another signing key
###########################################################################

my $node2 = PostgreSQL::Test::Cluster->new('restore2');
$node2->init;
# Moving a database to a server with another key is a key rotation: the
# first server's key endorses the second's (README "Keys"), else verify()
# reports an unendorsed rotation.
$node2->append_conf('postgresql.conf',
	"consent_ledger.previous_signing_key_file = '" . Cwd::abs_path($node->data_dir) . "/consent_ledger/signing.key'");
# other session defaults, which must not change any row's hash
$node2->append_conf('postgresql.conf', q{
TimeZone = 'Pacific/Chatham'
DateStyle = 'SQL, DMY'
IntervalStyle = 'iso_8601'
extra_float_digits = 0
});
$node2->start;
$node2->safe_psql('postgres', 'CREATE DATABASE other; ');
$node2->safe_psql('other', 'CREATE EXTENSION consent_ledger');
my $pk2 = $node2->safe_psql('other', 'SELECT consent_ledger.public_key()');
my $id2 = $node2->safe_psql('other', 'SELECT consent_ledger.key_id()');
isnt($pk2, $src_pk, 'second server has a different signing key');

restore($node2, 'restored', 'second server');
# Before any new row, every checkpoint is the first server's, signed with
# its key, which consent_ledger.keys (dumped) carries.
my $keys_before = $node2->safe_psql('restored',
	q{SELECT string_agg(key_id, ',' ORDER BY key_id) FROM consent_ledger.keys});
note("second server, after restore: consent_ledger.keys = $keys_before");
like($keys_before, qr/\b$src_id\b/, 'second server: the first server\'s key is in the restored consent_ledger.keys');
check_restored($node2, 'restored', 'second server', key_id => $id2, keys => [ $src_pk, $pk2 ]);

is($node2->safe_psql('restored',
		q{SELECT string_agg(key_id, ',' ORDER BY first_seen, key_id) FROM consent_ledger.keys}),
	"$src_id,$id2", 'second server: consent_ledger.keys holds both servers\' keys');
is($node2->safe_psql('restored',
		q{SELECT string_agg(DISTINCT key_id, ',') FROM consent_ledger.checkpoints
		  WHERE seq <= (SELECT max(seq) FROM consent_ledger.checkpoints WHERE tree_size <= } . $receipt_size . q{)}),
	$src_id, 'second server: the dumped checkpoints keep the first server\'s signatures');
my $export2 = cl_export_to_file($node2, 'restored', 't', "$tmp/second.export");
($rc, $out) = cl_run_verifier('export', '--public-key', $src_pk, $export2);
is($rc, 0, 'second server: export after new rows verifies offline with only the first server\'s key (the endorsement links the second)')
  or diag $out;
($rc, $out) = cl_run_verifier('export', '--public-key', $pk2, $export2);
is($rc, 0, 'second server: export verifies offline with only the second server\'s key (the endorsement links the first)')
  or diag $out;
(my $noend = slurp_file($export2)) =~ s/^endorsement .*\n//mg;
($rc, $out) = cl_run_verifier('export', '--public-key', $pk2, cl_write_file("$tmp/second-noend.export", $noend));
is($rc, 1, 'second server: without the endorsement, only the second server\'s key does not suffice');

$node2->stop;
$node->stop;
done_testing();
