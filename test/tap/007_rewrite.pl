# A superuser rewrites history so consistently that the server itself
# re-seals and re-signs it: verify() then passes, and only the receipt an
# auditor kept outside the database proves the rewrite -- in SQL with
# verify_checkpoint(), and offline with consent-ledger-verify.

use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $node = PostgreSQL::Test::Cluster->new('rewrite');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE pay (id int, amount numeric);
	SELECT consent_ledger.create_ledger('pay');
});
for my $i (1 .. 12)
{
	$node->safe_psql('postgres', "INSERT INTO pay VALUES ($i, $i * 10)");
}
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');

my $pk = $node->safe_psql('postgres', 'SELECT consent_ledger.public_key()');
my $receipt = cl_write_file("$tmp/receipt.json",
	$node->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')}));
my $old_export = cl_export_to_file($node, 'postgres', 'pay', "$tmp/old_export.txt");

my ($rc, $out) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt, $old_export);
is($rc, 0, 'the honest export extends the receipt');
like($out, qr/^OK: /, 'offline verifier says OK');

# The rewrite: switch the ledger triggers off behind the extension's back,
# change a row, rebuild the pending records from the rows as they are now,
# and drop the log and checkpoints so the sealer signs the forgery.
$node->safe_psql('postgres', q{
	UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'pay'::regclass;
	ALTER TABLE pay SET (fillfactor = 100);
	UPDATE pay SET amount = 999999 WHERE id = 5;
	UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'pay'::regclass;
	ALTER TABLE pay SET (fillfactor = 100);
	BEGIN;
	INSERT INTO consent_ledger.pending (ledger_id, txn, first_ord, nleaves, leaves)
	  SELECT l.ledger_id, r.txn, r.first_ord, 1,
	         sha256('\x00'::bytea || consent_ledger.leaf_data('pay', l.first_leaf + r.k - 1))
	  FROM consent_ledger.log l,
	       unnest(l.txns, l.first_ords) WITH ORDINALITY AS r(txn, first_ord, k)
	  WHERE l.ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'pay'::regclass);
	DELETE FROM consent_ledger.log
	  WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'pay'::regclass);
	DELETE FROM consent_ledger.checkpoints
	  WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'pay'::regclass);
	COMMIT;
});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');

my $v = cl_verify_row($node, 'postgres', 'pay');
ok($v->{valid}, 'the rewritten history is self-consistent: verify() passes')
  or diag($v->{problem});
is($node->safe_psql('postgres', q{SELECT amount FROM pay WHERE id = 5}), '999999',
	'the forged value is in place');
my $new_cp = $node->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'root_hash'});
my $old_cp = $node->safe_psql('postgres',
	qq{SELECT (pg_read_file('$receipt')::jsonb)->>'root_hash'});
isnt($new_cp, $old_cp, 'the server signed a different root at the same size');

is($node->safe_psql('postgres',
		qq{SELECT consent_ledger.verify_checkpoint(pg_read_file('$receipt')::jsonb)}),
	'f', 'verify_checkpoint() of the receipt taken before the rewrite is false');

my $new_export = cl_export_to_file($node, 'postgres', 'pay', "$tmp/new_export.txt");
($rc, $out) = cl_run_verifier('export', '--public-key', $pk, $new_export);
is($rc, 0, 'the forged export is internally consistent and validly signed');
($rc, $out) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt, $new_export);
is($rc, 1, 'offline, the forged export does not extend the receipt');
like($out, qr/^FAIL: /, 'offline verifier says FAIL');

$node->stop;
done_testing();
