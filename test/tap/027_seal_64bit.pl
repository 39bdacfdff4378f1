# Counts are 64-bit through a sealing round (issue #12 item 4).  A
# throwaway ledger is given, by catalog edits, a history of 2^32 - 2
# leaves: its last checkpoint's frontier (any subtree hashes: the round
# only extends them) and its last log row.  Five new rows are sealed: the
# round starts at leaf 2^32 - 2, crosses 2^32, and its checkpoint signs a
# tree of 2^32 + 3 leaves whose root is the RFC 9162 root computed here,
# independently, from the same frontier and the new leaves.  (The ledger
# does not verify: its history is made up.  The other ledgers do.)  The
# sealer stores no subtree hash it would have to compute from leaves the
# made-up log lacks.

use strict;
use warnings;

use Digest::SHA qw(sha256);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $node = PostgreSQL::Test::Cluster->new('wide');
$node->init;
$node->append_conf('postgresql.conf', "consent_ledger.seal_interval = '1h'\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE big (id bigint);
	SELECT consent_ledger.create_ledger('big');
	CREATE TABLE small (id bigint);
	SELECT consent_ledger.create_ledger('small');
	INSERT INTO small SELECT generate_series(1, 10);
	SELECT consent_ledger.seal();
});
my $lid = $node->safe_psql('postgres',
	q{SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'big'::regclass});

my $size = 2**32 - 2;
my %nodes;
my $ser = pack('Q>', $size);
for my $bit (reverse 0 .. 63)
{
	next unless ($size >> $bit) & 1;
	$nodes{$bit} = sha256("made-up subtree $bit");
	$ser .= $nodes{$bit};
}
my $hex = unpack('H*', $ser);
$node->safe_psql('postgres', qq{
	UPDATE consent_ledger.checkpoints SET frontier = '\\x$hex', tree_size = $size
	 WHERE ledger_id = $lid AND seq = (SELECT max(seq) FROM consent_ledger.checkpoints WHERE ledger_id = $lid);
	INSERT INTO consent_ledger.log (ledger_id, first_leaf, nleaves, txns, first_ords, counts, leaves)
	VALUES ($lid, $size - 1, 1, '{1}', '{0}', '{1}', decode(repeat('ab', 32), 'hex'));
	INSERT INTO big SELECT generate_series(1, 5);
});
my @leaves = map { pack('H*', $_) } split /\n/, $node->safe_psql('postgres', qq{
	SELECT encode(substring(leaves FROM (k * 32 + 1)::int FOR 32), 'hex')
	  FROM consent_ledger.pending, generate_series(0, nleaves - 1) k
	 WHERE ledger_id = $lid ORDER BY txn, first_ord, k});
is(scalar(@leaves), 5, 'five leaves pending');

is($node->safe_psql('postgres', q{SELECT consent_ledger.seal()}), '5', 'the round seals the five rows');

# RFC 9162 frontier: append, then fold into the root
sub node_hash { return sha256("\x01" . $_[0] . $_[1]) }
my $n = $size;
for my $leaf (@leaves)
{
	my ($h, $i) = ($leaf, 0);
	while (($n >> $i) & 1)
	{
		$h = node_hash($nodes{$i}, $h);
		$i++;
	}
	$nodes{$i} = $h;
	$n++;
}
my $root;
for my $bit (0 .. 63)
{
	next unless ($n >> $bit) & 1;
	$root = defined $root ? node_hash($nodes{$bit}, $root) : $nodes{$bit};
}
is($n, 2**32 + 3, 'expected tree size 2^32 + 3');

my ($cp_size, $cp_root, $note) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT tree_size, encode(root, 'hex'), replace(note, E'\\n', '~') FROM consent_ledger.checkpoints
	 WHERE ledger_id = $lid ORDER BY seq DESC LIMIT 1});
is($cp_size, 2**32 + 3, 'the checkpoint signs 2^32 + 3 leaves');
is($cp_root, unpack('H*', $root), 'its root is the RFC 9162 root of the extended frontier');
like($note, qr/~4294967299~/, 'the signed note carries the 64-bit size');
is($node->safe_psql('postgres', qq{
	SELECT first_leaf || ' ' || nleaves FROM consent_ledger.log WHERE ledger_id = $lid
	 ORDER BY first_leaf DESC LIMIT 1}), ($size) . ' 5', 'the log row starts at leaf 2^32 - 2');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM consent_ledger.pending WHERE ledger_id = $lid}), '0', 'nothing left pending');
# the round completes the subtree of leaves 2^32 - 256 .. 2^32 - 1 (and
# those above it), but the made-up log holds only one of its earlier
# leaves: the sealer stores none of them (it neither reads the history
# back nor stores a hash of leaves it does not have)
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM consent_ledger.tree_hashes WHERE ledger_id = $lid}), '0',
	'no stored tree hash for subtrees whose leaves the log lacks');

# a second round continues from there
is($node->safe_psql('postgres', q{
	INSERT INTO big SELECT generate_series(6, 8);
	SELECT consent_ledger.seal();
}), '3', 'the next round seals on');
is($node->safe_psql('postgres', qq{
	SELECT tree_size FROM consent_ledger.checkpoints WHERE ledger_id = $lid ORDER BY seq DESC LIMIT 1}),
	2**32 + 6, 'tree size 2^32 + 6');
my $v = cl_verify_row($node, 'postgres', 'small');
ok($v->{valid} && $v->{rows} == 10, 'the other ledger still verifies') or diag(explain $v);

$node->stop;
done_testing();
