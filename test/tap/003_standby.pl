# A streaming standby receives the ledger, its log and its checkpoints by
# replication: it verifies them, serves the same checkpoints and proofs,
# refuses to seal or insert, and seals again once promoted.

use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE t (id int, v text, at timestamptz DEFAULT now());
	SELECT consent_ledger.create_ledger('t');
	INSERT INTO t (id, v) SELECT g, 'before backup ' || g FROM generate_series(1, 5) g;
});
$primary->safe_psql('postgres', 'SELECT consent_ledger.seal()');

$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
# The base backup carries the primary's signing key (mode 0600), but the
# test framework's file copy from the backup to the new data directory
# does not keep file modes; the server would rightly refuse a 0644 key.
my $skey = $standby->data_dir . '/consent_ledger/signing.key';
ok(-f $skey, 'the base backup carries the signing key');
chmod(0600, $skey);
$standby->start;

# More transactions after the backup, sealed in several rounds.
for my $round (1 .. 3)
{
	$primary->safe_psql('postgres', qq{
		INSERT INTO t (id, v) VALUES ($round * 100, 'single $round');
		INSERT INTO t (id, v) SELECT $round * 100 + g, 'multi $round' FROM generate_series(1, 4) g;
	});
	$primary->safe_psql('postgres', 'SELECT consent_ledger.seal()');
}
my $pv = cl_verify_row($primary, 'postgres', 't');
ok($pv->{valid} && $pv->{pending} == 0, 'primary: ledger valid, nothing pending')
  or diag explain $pv;
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby is in recovery');

# verify() on the standby
my $sv = cl_verify_row($standby, 'postgres', 't');
ok($sv->{valid}, 'standby: verify() valid') or diag $sv->{problem};
is($sv->{rows}, $pv->{rows}, 'standby: same number of rows as the primary');
is($sv->{pending}, 0, 'standby: nothing pending');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t'), $pv->{rows},
	'standby: count(*) equals verify() rows');

# Same checkpoint at the same tree size.
my $pcp = $primary->safe_psql('postgres',
	q{SELECT c->>'tree_size', c->>'root_hash', c::text FROM consent_ledger.checkpoint('t') c});
my $scp = $standby->safe_psql('postgres',
	q{SELECT c->>'tree_size', c->>'root_hash', c::text FROM consent_ledger.checkpoint('t') c});
my ($psize, $proot) = split /\|/, $pcp;
my ($ssize, $sroot) = split /\|/, $scp;
is($ssize, $psize, 'standby: latest checkpoint has the primary\'s tree size');
is($psize, $pv->{rows}, 'latest checkpoint covers every row');
is($sroot, $proot, 'standby: root_hash equals the primary\'s at the same tree size');
is($scp, $pcp, 'standby: checkpoint() identical to the primary\'s');
is($standby->safe_psql('postgres',
		q{SELECT consent_ledger.verify_checkpoint(consent_ledger.checkpoint('t'))}),
	't', 'standby: verify_checkpoint() of the latest checkpoint');
my $pchain = $primary->safe_psql('postgres',
	q{SELECT string_agg(seq || ':' || tree_size || ':' || encode(root, 'hex'), ',' ORDER BY seq) FROM consent_ledger.checkpoints});
is($standby->safe_psql('postgres',
		q{SELECT string_agg(seq || ':' || tree_size || ':' || encode(root, 'hex'), ',' ORDER BY seq) FROM consent_ledger.checkpoints}),
	$pchain, 'standby: checkpoint chain identical to the primary\'s');

# Proofs on the standby.
my $old_size = $primary->safe_psql('postgres',
	q{SELECT min(tree_size) FROM consent_ledger.checkpoints WHERE tree_size > 0});
cmp_ok($old_size, '<', $psize, 'there is an older non-empty checkpoint to prove consistency from');
my $sproof = $standby->safe_psql('postgres',
	qq{SELECT consent_ledger.consistency_proof('t', $old_size, $psize)});
is($sproof, $primary->safe_psql('postgres',
		qq{SELECT consent_ledger.consistency_proof('t', $old_size, $psize)}),
	'standby: consistency_proof() equals the primary\'s');
like($sproof, qr/"new_root": "\Q$proot\E"/, 'standby: consistency proof ends at the checkpoint root');
my $proof_file = cl_write_file("$tmp/consistency.json", $sproof);
my ($rc, $out) = cl_run_verifier('consistency', $proof_file);
is($rc, 0, 'offline verifier accepts the standby\'s consistency proof');
my $iproof = $standby->safe_psql('postgres', qq{SELECT consent_ledger.inclusion_proof('t', 3, $psize)});
$rc = (cl_run_verifier('inclusion', cl_write_file("$tmp/inclusion.json", $iproof)))[0];
is($rc, 0, 'offline verifier accepts the standby\'s inclusion proof');

# The standby's export verifies offline under the primary's key.
my $pk = $primary->safe_psql('postgres', 'SELECT consent_ledger.public_key()');
my $export = cl_export_to_file($standby, 'postgres', 't', "$tmp/standby.export");
($rc, $out) = cl_run_verifier('export', '--public-key', $pk, $export);
is($rc, 0, 'offline verifier accepts the standby\'s export');
like($out, qr/\AOK: .* $psize leaves/, '... covering every sealed leaf');

# No sealing, no inserts on the standby.
my ($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT consent_ledger.seal();");
isnt($ret, 0, 'standby: seal() fails');
like($stderr, qr/ERROR:\s+25006:/, 'standby: seal() fails with SQLSTATE 25006');
($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nINSERT INTO t (id, v) VALUES (-1, 'on standby');");
isnt($ret, 0, 'standby: INSERT into the ledger fails');
like($stderr, qr/ERROR:\s+25006:/, 'standby: INSERT fails as read-only (25006)');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM t WHERE id = -1}), '0',
	'standby: no row was added');

# A transaction committed and sealed on the primary while the standby
# serves queries arrives sealed and verifies.
$primary->safe_psql('postgres', q{INSERT INTO t (id, v) VALUES (900, 'late')});
$primary->safe_psql('postgres', 'SELECT consent_ledger.seal()');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
$sv = cl_verify_row($standby, 'postgres', 't');
ok($sv->{valid} && $sv->{rows} == $pv->{rows} + 1 && $sv->{pending} == 0,
	'standby: the later transaction arrives sealed and valid')
  or diag explain $sv;

# After promotion the former standby seals by itself.
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'standby did not leave recovery';
$standby->safe_psql('postgres', q{INSERT INTO t (id, v) VALUES (1000, 'after promotion')});
ok(cl_wait_for($standby, 'postgres',
		q{SELECT pending = 0 AND "rows" = (SELECT count(*) FROM t) FROM consent_ledger.verify('t')}, 10),
	'promoted standby seals new rows without seal()');
$sv = cl_verify_row($standby, 'postgres', 't');
ok($sv->{valid}, 'promoted standby: verify() valid') or diag $sv->{problem};
is($sv->{rows}, $pv->{rows} + 2, 'promoted standby: every row counted');
is($standby->safe_psql('postgres',
		q{SELECT consent_ledger.checkpoint('t')->>'tree_size'}),
	$pv->{rows} + 2, 'promoted standby: new checkpoint covers the new row');

$standby->stop;
$primary->stop;
done_testing();
