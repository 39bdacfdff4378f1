# Issue 12 item 4: verify() streams with bounded memory.
#
# A ledger of 1 000 000 rows sealed in one round.  Holding it in memory,
# as verify() did up to 1.2 and still does when a ledger fits
# consent_ledger.verify_memory, takes the leaf hashes of the log (32 MB,
# one detoasted log row), the recomputed hashes (32 MB) and the position
# map: the backend's peak resident memory (VmHWM) rises by about 100 MB.
# Streamed (consent_ledger.verify_memory = 0, maintenance_work_mem = 4MB)
# it reads the log 64k leaves at a time and sorts leaves and rows in 2 MB
# each, spilling to disk: VmHWM rises by the scanned shared buffers
# (16 MB here) and a few MB.  The bound asserted, 64 MB, lies between;
# the in-memory run in a session of its own shows the ledger is large
# enough for the bound to mean something.  Both runs must find the ledger
# valid, and the streamed one must find a changed row.  Linux /proc is
# needed; the test is skipped without it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs /proc/<pid>/status (Linux)' unless -r "/proc/$$/status";

my $node = PostgreSQL::Test::Cluster->new('verify_memory');
$node->init;
$node->append_conf('postgresql.conf', "shared_buffers = 16MB\nmax_wal_size = 1GB");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE big (id bigint, note text);
	SELECT consent_ledger.create_ledger('big');
	INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 1000000) g;
});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');

my $hwm = q{SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'),
								 'VmHWM:\s+(\d+)'))[1]};

sub verify_growth
{
	my ($settings) = @_;
	my ($before, $result, $after) = split /\n/, $node->safe_psql('postgres', qq{
		$settings
		$hwm;
		SELECT rows || ' ' || valid || ' ' || coalesce(problem, '') FROM consent_ledger.verify('big');
		$hwm;
	});
	like($before, qr/^\d+$/, 'VmHWM read before verify()');
	like($after, qr/^\d+$/, 'VmHWM read after verify()');
	return (($after - $before) / 1024, $result);
}

my ($streamed_mb, $streamed) = verify_growth(
	"SET consent_ledger.verify_memory = 0; SET maintenance_work_mem = '4MB';");
note("streamed verify(): VmHWM grew by $streamed_mb MB");
like($streamed, qr/^1000000 true\s*$/, 'streamed: the ledger verifies');
cmp_ok($streamed_mb, '<', 64, 'streamed verify() of 1M rows: peak growth below 64 MB');

my ($inmem_mb, $inmem) = verify_growth("SET consent_ledger.verify_memory = '1GB';");
note("in-memory verify(): VmHWM grew by $inmem_mb MB");
like($inmem, qr/^1000000 true\s*$/, 'in memory: the ledger verifies');
cmp_ok($inmem_mb, '>', 64, 'holding the same ledger in memory would exceed that bound');

# a changed row, found by the streamed path
# (the ledger's triggers switched off by a catalog edit, as in ledger_tamper)
$node->safe_psql('postgres', q{
	UPDATE pg_trigger SET tgenabled = 'D'
	 WHERE tgrelid = 'big'::regclass AND tgname LIKE '~consent_ledger%';
	ALTER TABLE big SET (fillfactor = 100);
});
$node->safe_psql('postgres', q{UPDATE big SET note = 'forged' WHERE id = 777777});
my ($mb2, $changed) = verify_growth(
	"SET consent_ledger.verify_memory = 0; SET maintenance_work_mem = '4MB';");
like($changed, qr/^1000000 false changed at leaf 777776: the row does not hash to its log entry/,
	'streamed: a changed row is reported at its leaf');

$node->stop;
done_testing();
