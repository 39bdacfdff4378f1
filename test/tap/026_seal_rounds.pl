# Sealing rounds of bounded size (issue #12 item 4):
#  - a commit larger than consent_ledger.seal_round_size is sealed over
#    several rounds, each its own signed checkpoint of at most that many
#    new leaves, and seal() returns when all of it is sealed;
#  - a transaction a round cut is continued first by the next round, even
#    when a transaction with a smaller id committed in between (its leaves
#    stay contiguous in the log: verify() finds no transaction twice);
#  - in the middle of a multi-round seal (held there) a record the round
#    size cut is pending: verify() is valid and says the same in memory
#    and streamed (consent_ledger.verify_memory = 0) under one snapshot;
#  - the server stopped in "immediate" mode in the middle of a multi-round
#    seal: after restart everything is sealed without anyone calling
#    seal(), verify() is valid, and the checkpoints taken before and
#    during the seal still verify against the new tree (no fork);
#  - a round does not read the ledger's history: the buffers of
#    consent_ledger.log a round of one new row touches (pg_statio, which
#    the sealer reports after its rounds) stay a few, however many pages
#    the ledger's log has, and it reads consent_ledger.pending through
#    its index, never with a sequential scan.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $round = 7;
my $node = PostgreSQL::Test::Cluster->new('rounds');
$node->init;
$node->append_conf('postgresql.conf', "consent_ledger.seal_round_size = $round\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE t (id bigint, who text);
	SELECT consent_ledger.create_ledger('t');
	SELECT consent_ledger.seal();
});

sub ncheckpoints
{
	return $node->safe_psql('postgres', q{
		SELECT count(*) FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id)
		 WHERE l.relid = 't'::regclass});
}

# The steps of the chain: each round adds at most $round leaves, sizes grow.
sub chain_steps_ok
{
	return $node->safe_psql('postgres', qq{
		SELECT bool_and(d BETWEEN 0 AND $round) FROM (
			SELECT tree_size - lag(tree_size) OVER (ORDER BY seq) AS d
			  FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id)
			 WHERE l.relid = 't'::regclass) s WHERE d IS NOT NULL});
}

# 1. one commit of 100 rows: 15 rounds of at most 7
my $before = ncheckpoints();
my $sealed = $node->safe_psql('postgres', q{
	INSERT INTO t SELECT g, 'bulk' FROM generate_series(1, 100) g;
	SELECT consent_ledger.seal();
});
is($sealed, '100', 'seal() returns when all 100 rows are sealed');
is(ncheckpoints() - $before, 15, '100 rows at 7 per round: 15 checkpoints');
is(chain_steps_ok(), 't', 'no round adds more than the round size');
my $v = cl_verify_row($node, 'postgres', 't');
ok($v->{valid} && $v->{rows} == 100 && $v->{pending} == 0, 'verify: 100 rows, nothing pending')
  or diag(explain $v);

# 2. a transaction with a smaller id commits while a larger one is cut
my $a = $node->background_psql('postgres');
$a->query_safe(q{BEGIN; INSERT INTO t VALUES (-1, 'older txn id')});
my $cut_txn_q = q{
	SELECT count(*) > 0 FROM consent_ledger.pending p JOIN consent_ledger.ledgers l USING (ledger_id)
	 WHERE l.relid = 't'::regclass AND p.first_ord > 0};
$node->safe_psql('postgres', q{INSERT INTO t SELECT g, 'big' FROM generate_series(1001, 5000) g});
# wait for the sealer to be part-way through it (not timing: a poll)
my $was_cut = cl_wait_for($node, 'postgres', $cut_txn_q, 60) ? 't' : 'f';
$a->query_safe('COMMIT');
is($was_cut, 't', 'the big transaction was partly sealed when the older one committed');
$a->quit;
ok(cl_wait_for($node, 'postgres', q{
	SELECT count(*) = 0 FROM consent_ledger.pending p JOIN consent_ledger.ledgers l USING (ledger_id)
	 WHERE l.relid = 't'::regclass}, 120), 'the sealer seals both without seal()');
$v = cl_verify_row($node, 'postgres', 't');
ok($v->{valid} && $v->{rows} == 4101 && $v->{pending} == 0,
	'verify: valid, the cut transaction is contiguous in the log') or diag(explain $v);
is(chain_steps_ok(), 't', 'no round adds more than the round size');

# 3. immediate stop in the middle of a multi-round seal
my $cp_before = $node->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('t')});
my $size_before = $node->safe_psql('postgres', q{SELECT (consent_ledger.checkpoint('t')->>'tree_size')});
$node->safe_psql('postgres', q{INSERT INTO t SELECT g, 'crash' FROM generate_series(10001, 16000) g});
ok(cl_wait_for($node, 'postgres', qq{
	SELECT max(tree_size) >= $size_before + 5 * $round FROM consent_ledger.checkpoints c
	  JOIN consent_ledger.ledgers l USING (ledger_id) WHERE l.relid = 't'::regclass}, 60),
	'several rounds of the big commit are sealed');
# hold the seal there: the sealer starts no round while a superuser's
# session named pg_restore is connected
my $hold = $node->background_psql('postgres');
$hold->query_safe(q{SET application_name = 'pg_restore'});
# verify() in the middle of the seal: a record the round size cut is
# pending with its remaining leaves, after the leaves already sealed
$v = cl_verify_row($node, 'postgres', 't');
ok($v->{valid} && $v->{pending} > 0 && $v->{rows} == 10101,
	"verify in the middle of the seal: valid, $v->{pending} rows pending") or diag(explain $v);
# the same, in memory and streamed, under one snapshot that holds a record
# the round size cut (leaves_offset > 0: its first leaves are in the log)
my ($ncut, $streamed, $inmem) = split /\n/, $node->safe_psql('postgres', q{
	BEGIN ISOLATION LEVEL REPEATABLE READ;
	SELECT count(*) FROM consent_ledger.pending p JOIN consent_ledger.ledgers l USING (ledger_id)
	 WHERE l.relid = 't'::regclass AND p.leaves_offset > 0;
	SET LOCAL consent_ledger.verify_memory = 0;
	SELECT concat_ws(' ', valid, "rows", pending, problem) FROM consent_ledger.verify('t');
	SET LOCAL consent_ledger.verify_memory = '1GB';
	SELECT concat_ws(' ', valid, "rows", pending, problem) FROM consent_ledger.verify('t');
	COMMIT;
});
ok($ncut > 0, "the snapshot holds $ncut cut record(s)");
like($streamed, qr/^t 10101 [1-9][0-9]*$/, "streamed verify() with a cut record pending: valid ($streamed)");
is($inmem, $streamed, 'in-memory verify() says the same');
my $cp_during = $node->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('t')});
my $pending_at_stop = $node->safe_psql('postgres', q{
	SELECT coalesce(sum(nleaves), 0) FROM consent_ledger.pending p JOIN consent_ledger.ledgers l USING (ledger_id)
	 WHERE l.relid = 't'::regclass});
$hold->quit;
$node->stop('immediate');
ok($pending_at_stop > 0, "rows still pending when the server stopped ($pending_at_stop)");
$node->start;
ok(cl_wait_for($node, 'postgres', q{
	SELECT count(*) = 0 FROM consent_ledger.pending p JOIN consent_ledger.ledgers l USING (ledger_id)
	 WHERE l.relid = 't'::regclass}, 180), 'after restart the sealer seals the rest by itself');
$v = cl_verify_row($node, 'postgres', 't');
ok($v->{valid} && $v->{rows} == 10101 && $v->{pending} == 0, 'verify after the crash: valid, all sealed')
  or diag(explain $v);
is(chain_steps_ok(), 't', 'no round adds more than the round size, across the crash');
is($node->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$cp_before')}), 't',
	'the checkpoint from before the seal is consistent with the new tree');
is($node->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$cp_during')}), 't',
	'the checkpoint from the middle of the seal is consistent with the new tree');
is($node->safe_psql('postgres', q{
	SELECT count(*) = count(DISTINCT tree_size) FROM consent_ledger.checkpoints c
	  JOIN consent_ledger.ledgers l USING (ledger_id) WHERE l.relid = 't'::regclass AND tree_size > 0}),
	't', 'no two checkpoints sign the same size (no fork)');

# 4. a round does not read the history.  Only seal() seals from here on.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
	SELECT pg_reload_conf();
});
$node->safe_psql('postgres', q{SELECT consent_ledger.seal()});
my $log_pages = $node->safe_psql('postgres',
	q{SELECT pg_relation_size('consent_ledger.log') / current_setting('block_size')::int});
ok($log_pages >= 40, "the log has $log_pages pages of history");
my $blocks_q = q{
	SELECT coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0)
	  FROM pg_statio_all_tables WHERE relid = 'consent_ledger.log'::regclass};
my $scans_q = q{
	SELECT seq_scan || ' ' || coalesce(idx_scan, 0) FROM pg_stat_all_tables
	 WHERE relid = 'consent_ledger.pending'::regclass};
my ($seq0, $idx0) = split / /, $node->safe_psql('postgres', $scans_q);
my $b0 = $node->safe_psql('postgres', $blocks_q);
is($node->safe_psql('postgres', q{
	INSERT INTO t VALUES (0, 'one more');
	SELECT consent_ledger.seal();
}), '1', 'one row sealed');
my $b1 = $node->safe_psql('postgres', $blocks_q);
my ($seq1, $idx1) = split / /, $node->safe_psql('postgres', $scans_q);
is($seq1 - $seq0, 0, 'the round read consent_ledger.pending with no sequential scan');
ok($idx1 - $idx0 > 0, 'it read pending through its index (' . ($idx1 - $idx0) . ' index scans)');
my $touched = $b1 - $b0;
ok($touched > 0 && $touched <= 8,
	"the round touched $touched heap blocks of the log (of $log_pages)");

$node->stop;
done_testing();
