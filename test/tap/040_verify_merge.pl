# Issue 13: streamed verify() merges the log with the table as both are
# read, instead of sorting both by stamp.
#
# Streamed (consent_ledger.verify_memory = 0, maintenance_work_mem = 1MB)
# verify() reads the log's leaves in leaf order and the table in heap
# order and pairs them as they come; only what is out of order goes to a
# sort (bounded by maintenance_work_mem), and at the first thing it does
# not settle it verifies the ledger again the sorted way, so its verdicts
# are those of the sorted path.  A DEBUG1 line says what it did.
#
# 1. A ledger loaded in order is settled by the merge alone: no leaf or row
#    is sorted and no temporary file is written (log_temp_files = 0).
#    Before, both the leaves and the rows were sorted, spilling to disk.
# 2. A ledger out of order -- a transaction sealed after a later one (its
#    leaves out of stamp order, its rows before the later one's in the
#    heap), two transactions' rows interleaved in the heap, rows still
#    pending -- is valid on both paths; the merge path sorts part of it,
#    spilling (the sorts stay within their memory), and its peak memory
#    growth (VmHWM: the scanned shared buffers, 16 MB here, and a few MB)
#    stays below 28 MB, which the in-memory path exceeds (about 100 bytes a
#    leaf on top of the same buffers) for the same ledger.
# 3. On that ledger, tampered in each way below (each inside a transaction
#    rolled back), the streamed verify() gives exactly the in-memory
#    verdict and problem: a row changed, removed, added (with a stamp
#    taken, an unknown stamp, no stamp), two rows' contents swapped, a log
#    leaf damaged, a sealed stamp repeated in a pending record (with a row
#    for it: everything pairs off, only the check of repeated stamps
#    catches it), and the caller's own uncommitted rows (valid).
# 4. verify_checkpoint() of a receipt takes the merge pass too: verified
#    with the same bounded memory; a tampered ledger falls back to the
#    in-memory check and its reason.
# 5. export() of a ledger in order: by the merge pass and one more heap
#    scan, the same lines as the in-memory export; out of order, as before.
# Linux /proc is needed for the memory figures; the test is skipped without it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs /proc/<pid>/status (Linux)' unless -r "/proc/$$/status";

my $node = PostgreSQL::Test::Cluster->new('verify_merge');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_buffers = 16MB
max_wal_size = 1GB
log_temp_files = 0
consent_ledger.seal_interval = '1h'
});
$node->start;

my $streamed = "SET consent_ledger.verify_memory = 0; SET maintenance_work_mem = '1MB';";
my $inmem = "SET consent_ledger.verify_memory = '1GB';";
my $result = q{SELECT rows || '|' || pending || '|' || valid || '|' || coalesce(problem, '')};

# verify() of TABLE with SETTINGS: (result, DEBUG1 line of the merge path or '', temporary files logged)
sub verify_with
{
	my ($table, $settings) = @_;
	my $offset = -s $node->logfile;
	my ($out, $err) = ('', '');
	$node->psql('postgres', qq{
		$settings
		SET client_min_messages = debug1;
		$result FROM consent_ledger.verify('$table');
	}, stdout => \$out, stderr => \$err, on_error_die => 1);
	my ($merge) = $err =~ /(merge path: [^\n]*)/;
	my $log = slurp_file($node->logfile, $offset);
	my $temp = () = $log =~ /temporary file: /g;
	return ($out, $merge // '', $temp);
}

# 1. in order: one transaction of 200 000 rows, another of 50 000, sealed
$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE ord (id bigint, note text);
	SELECT consent_ledger.create_ledger('ord');
	INSERT INTO ord SELECT g, 'row ' || g FROM generate_series(1, 200000) g;
	INSERT INTO ord SELECT g, 'row ' || g FROM generate_series(200001, 250000) g;
});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
my ($res, $merge, $temp) = verify_with('ord', $streamed);
is($res, '250000|0|true|', 'in order, streamed: the ledger verifies');
like($merge, qr/^merge path: 250000 rows read, 0 leaves and 0 rows sorted, 0 leaves out of stamp order, settled$/,
	'in order: the merge path settles it without sorting');
is($temp, 0, 'in order: no temporary file written');

# 2. out of order
$node->safe_psql('postgres', q{
	CREATE TABLE mix (id bigint, note text);
	SELECT consent_ledger.create_ledger('mix');
	INSERT INTO mix SELECT g, 'row ' || g FROM generate_series(1, 50000) g;
});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
my $x = $node->background_psql('postgres', on_error_stop => 1);
my $y = $node->background_psql('postgres', on_error_stop => 1);
# transaction C takes its stamp first, D commits and is sealed before C
$x->query_safe(q{BEGIN; INSERT INTO mix SELECT g, 'c ' || g FROM generate_series(50001, 51000) g;});
$y->query_safe(q{INSERT INTO mix SELECT g, 'd ' || g FROM generate_series(51001, 52000) g;});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
$x->query_safe('COMMIT');
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
# two transactions whose rows alternate in the heap, 2000 at a time
$x->query_safe('BEGIN');
$y->query_safe('BEGIN');
for my $i (0 .. 49)
{
	my $b = 52000 + 4000 * $i;
	$x->query_safe(qq{INSERT INTO mix SELECT g, 'x ' || g FROM generate_series($b + 1, $b + 2000) g;});
	$y->query_safe(qq{INSERT INTO mix SELECT g, 'y ' || g FROM generate_series($b + 2001, $b + 4000) g;});
}
$x->query_safe('COMMIT');
$y->query_safe('COMMIT');
$x->quit;
$y->quit;
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
# rows still pending
$node->safe_psql('postgres', q{INSERT INTO mix SELECT g, 'p ' || g FROM generate_series(252001, 252500) g});

my $hwm = q{SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'),
								 'VmHWM:\s+(\d+)'))[1]};
sub verify_growth
{
	my ($settings) = @_;
	my ($before, $r, $after) = split /\n/, $node->safe_psql('postgres', qq{
		$settings
		$hwm;
		$result FROM consent_ledger.verify('mix');
		$hwm;
	});
	return (($after - $before) / 1024, $r);
}

($res, $merge, $temp) = verify_with('mix', $streamed);
is($res, '252500|500|true|', 'out of order, streamed: the ledger verifies');
like($merge, qr/^merge path: 252500 rows read, [1-9]\d* leaves and [1-9]\d* rows sorted, 1000 leaves out of stamp order, settled$/,
	'out of order: the merge path sorts the rest and settles it');
cmp_ok($temp, '>', 0, 'out of order: the sorts spill past maintenance_work_mem');
my ($streamed_mb, $r1) = verify_growth($streamed);
note("streamed verify() of the mixed ledger: VmHWM grew by $streamed_mb MB");
is($r1, '252500|500|true|', 'out of order, streamed (fresh session): valid');
my ($inmem_mb, $r2) = verify_growth($inmem);
note("in-memory verify() of the mixed ledger: VmHWM grew by $inmem_mb MB");
is($r2, '252500|500|true|', 'out of order, in memory: valid');
cmp_ok($streamed_mb, '<', 28, 'out of order, streamed: peak growth below 28 MB');
cmp_ok($inmem_mb, '>', 28, 'holding the same ledger in memory exceeds that bound');

# 3. tampered, each inside a transaction rolled back (triggers switched off
# by a catalog edit, as in ledger_tamper)
my $bypass = q{
	UPDATE pg_trigger SET tgenabled = 'D'
	 WHERE tgrelid = 'mix'::regclass AND tgname LIKE '~consent_ledger%';
	ALTER TABLE mix SET (fillfactor = 100);
};
my $lid = q{(SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'mix'::regclass)};
my @cases = (
	[ 'a row changed (in order)', "$bypass UPDATE mix SET note = 'forged' WHERE id = 777;",
	  qr/changed at leaf 776/ ],
	[ 'a row changed (interleaved)', "$bypass UPDATE mix SET note = 'forged' WHERE id = 150001;",
	  qr/changed at leaf/ ],
	[ 'a row removed', "$bypass DELETE FROM mix WHERE id = 51500;", qr/missing at leaf/ ],
	[ 'a row added with a stamp taken',
	  "$bypass INSERT INTO mix SELECT id, note, ledger_txn, ledger_ord FROM mix WHERE id = 60000;",
	  qr/extra row at leaf .*a second row/ ],
	[ 'a row added with an unknown stamp', "$bypass INSERT INTO mix VALUES (0, 'stray', 999999999, 0);",
	  qr/extra row at ctid .*999999999/ ],
	[ 'a row added without a stamp', "$bypass INSERT INTO mix (id, note) VALUES (0, 'no stamp');",
	  qr/extra row at ctid .*no ledger stamp/ ],
	[ 'two rows swapped',
	  "$bypass UPDATE mix m SET id = o.id, note = o.note FROM mix o WHERE (m.id, o.id) IN ((100, 101), (101, 100));",
	  qr/reordered at leaf 99/ ],
	[ 'a log leaf damaged',
	  "UPDATE consent_ledger.log SET leaves = overlay(leaves placing '\\xff'::bytea from 33 for 1)
	    WHERE ledger_id = $lid AND first_leaf = 0;",
	  qr/changed/ ],
	[ 'a sealed stamp repeated in a pending record, with its row',
	  "$bypass INSERT INTO mix SELECT id, note, ledger_txn, ledger_ord FROM mix WHERE id = 1;
	   INSERT INTO consent_ledger.pending (ledger_id, txn, first_ord, nleaves, leaves)
	   SELECT $lid, m.ledger_txn, m.ledger_ord, 1, substring(l.leaves from 1 for 32)
	     FROM mix m, consent_ledger.log l
	    WHERE m.id = 1 AND l.ledger_id = $lid AND l.first_leaf = 0 LIMIT 1;",
	  qr/(appears twice|a second row)/ ],
	[ "the caller's own uncommitted rows", "INSERT INTO mix SELECT g, 'own' FROM generate_series(1, 10) g;",
	  undef ],
);
# both verdicts in one transaction, so that both see the same tampered rows
sub verify_both
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', qq{
		BEGIN;
		$sql
		SET LOCAL consent_ledger.verify_memory = '1GB';
		$result FROM consent_ledger.verify('mix');
		SET LOCAL consent_ledger.verify_memory = 0;
		SET LOCAL maintenance_work_mem = '1MB';
		SET LOCAL client_min_messages = debug1;
		$result FROM consent_ledger.verify('mix');
		ROLLBACK;
	}, stdout => \$out, stderr => \$err, on_error_die => 1);
	my ($mem, $str) = split /\n/, $out;
	my ($merge) = $err =~ /(merge path: [^\n]*)/;
	return ($mem, $str, $merge // '');
}

for my $c (@cases)
{
	my ($what, $sql, $expect) = @$c;
	my ($mem, $str, $m) = verify_both($sql);
	is($str, $mem, "$what: streamed verify() says what the in-memory one says");
	if (defined $expect)
	{
		like($str, qr/^\d+\|\d+\|false\|.*$expect/, "$what: found");
		like($m, qr/not settled: verified again by sorting$/, "$what: the merge path gives way to the sorted one");
	}
	else
	{
		like($str, qr/^252510\|510\|true\|$/, "$what: valid");
		like($m, qr/, settled$/, "$what: settled by the merge path");
	}
}

# 4. verify_checkpoint() takes the merge pass too: a receipt of the mixed
# ledger is checked with bounded memory when the ledger is sound, and a
# damaged ledger is held in memory as before, for the same reason.
my $receipt = $node->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('mix')::text});
sub receipt_check
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', qq{
		SET maintenance_work_mem = '1MB';
		BEGIN;
		$sql
		SET LOCAL client_min_messages = debug1;
		SELECT valid || '|' || coalesce(reason, '') FROM consent_ledger.verify_checkpoint_detail('$receipt'::text);
		ROLLBACK;
	}, stdout => \$out, stderr => \$err, on_error_die => 1);
	my ($merge) = $err =~ /(merge path: [^\n]*)/;
	return ($out, $merge // '');
}
my ($rc, $rm) = receipt_check('');
is($rc, 'true|', 'receipt of the mixed ledger: verified');
like($rm, qr/, settled$/, 'receipt: the merge pass settles the ledger');
($rc, $rm) = receipt_check("$bypass UPDATE mix SET note = 'forged' WHERE id = 150001;");
like($rc, qr/^false\|the rows of mix, rehashed now, do not have the receipt's root at tree size \d+$/,
	'receipt of a changed ledger: refused, its rows named');
like($rm, qr/not settled/, 'receipt of a changed ledger: checked in memory');
($rc, $rm) = receipt_check("$bypass DELETE FROM mix WHERE id = 51500;");
like($rc, qr/^false\|no row of mix holds leaf \d+$/, 'receipt of a ledger with a row removed: refused, the leaf named');

my ($b0, $v, $b1) = split /\n/, $node->safe_psql('postgres', qq{
	SET maintenance_work_mem = '1MB';
	$hwm;
	SELECT consent_ledger.verify_checkpoint('$receipt'::text);
	$hwm;
});
my $receipt_mb = ($b1 - $b0) / 1024;
note("verify_checkpoint() of the mixed ledger: VmHWM grew by $receipt_mb MB");
is($v, 't', 'receipt (fresh session): verified');
cmp_ok($receipt_mb, '<', 28, 'verify_checkpoint(): peak growth below the bound the in-memory path exceeds');

# 5. export() takes the merge pass too: a ledger settled without sorting
# (rows in leaf order in the heap) is exported by one more heap scan, with
# bounded memory; any other is exported as before (positions mapped in
# memory).  Both give the same lines as the in-memory export.
sub export_of
{
	my ($table, $settings) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', qq{
		SET maintenance_work_mem = '1MB';
		$settings
		SET client_min_messages = debug1;
		SELECT count(*) || ' ' || md5(string_agg(e, E'\\n' ORDER BY n))
		  FROM consent_ledger.export('$table') WITH ORDINALITY AS x(e, n);
	}, stdout => \$out, stderr => \$err, on_error_die => 1);
	my ($merge) = $err =~ /(merge path: [^\n]*)/;
	return ($out, $merge // '');
}
my ($eo_mem) = export_of('ord', "SET consent_ledger.verify_memory = '1GB';");
my ($eo_str, $eo_m) = export_of('ord', 'SET consent_ledger.verify_memory = 0;');
like($eo_mem, qr/^250\d{3} [0-9a-f]{32}$/, 'export of the ordered ledger, in memory: its lines');
is($eo_str, $eo_mem, 'export of the ordered ledger, streamed: the same lines');
like($eo_m, qr/250000 rows read, 0 leaves and 0 rows sorted, 0 leaves out of stamp order, settled$/,
	'export of the ordered ledger: by the merge pass and one more heap scan');
my ($em_mem) = export_of('mix', "SET consent_ledger.verify_memory = '1GB';");
my ($em_str, $em_m) = export_of('mix', 'SET consent_ledger.verify_memory = 0;');
is($em_str, $em_mem, 'export of the mixed ledger, streamed: the same lines as in memory');
like($em_m, qr/[1-9]\d* leaves and [1-9]\d* rows sorted/, 'export of the mixed ledger: rows out of order, positions mapped');

$node->stop;
done_testing();
