# Crash safety: concurrent sessions insert into one ledger (single- and
# multi-row transactions, ROLLBACK, ROLLBACK TO SAVEPOINT, RELEASE), the
# server is stopped in "immediate" mode mid-load, and after restart
#  - every row whose COMMIT was acknowledged is there,
#  - no row of a rolled-back transaction or subtransaction is there,
#  - every transaction is all-or-nothing,
#  - the ledger verifies, with nothing pending once sealed, and its
#    checkpoint chain has no gap, fork or shrink,
#  - prepared transactions that survived the crash seal once committed,
#  - sealing resumes without anyone calling seal().
# Two crash rounds run back to back on the same ledger.

use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $nsessions = 4;
my $max_txns = 5000;    # per session and round: far more than runs before the crash

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE t (
		sess	integer NOT NULL,
		seq		integer NOT NULL,
		part	integer NOT NULL,
		doomed	boolean NOT NULL,	-- true: inserted by work that is always rolled back
		payload	text,
		at		timestamptz DEFAULT clock_timestamp()
	);
	SELECT consent_ledger.create_ledger('t');
});

# Transaction shapes.  Each returns (SQL, committed parts, acknowledged?).
# Rows with doomed = true are always rolled back.
sub row { my ($s, $q, $p, $d, $pl) = @_; return "($s, $q, $p, $d, '$pl')" }
my @shapes = (
	# autocommit single row
	sub {
		my ($s, $q) = @_;
		return ("INSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 0, 'false', 'single') . ";\n",
			[0], 1);
	},
	# multi-row, one statement
	sub {
		my ($s, $q) = @_;
		return ("BEGIN;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES "
			  . join(', ', map { row($s, $q, $_, 'false', 'multi') } 0 .. 2)
			  . ";\nCOMMIT;\n", [ 0, 1, 2 ], 1);
	},
	# rolled back
	sub {
		my ($s, $q) = @_;
		return ("BEGIN;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 0, 'true', 'rollback')
			  . ";\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 1, 'true', 'rollback')
			  . ";\nROLLBACK;\n", [], 0);
	},
	# rows before and after a rolled-back savepoint
	sub {
		my ($s, $q) = @_;
		return ("BEGIN;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 0, 'false', 'sp')
			  . ";\nSAVEPOINT a;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES "
			  . row($s, $q, 1, 'true', 'sp') . ', ' . row($s, $q, 2, 'true', 'sp')
			  . ";\nROLLBACK TO SAVEPOINT a;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES "
			  . row($s, $q, 3, 'false', 'sp') . ";\nCOMMIT;\n", [ 0, 3 ], 1);
	},
	# INSERT ... SELECT with wide (TOASTed) values, a released savepoint and
	# a rolled-back one
	sub {
		my ($s, $q) = @_;
		return ("BEGIN;\nINSERT INTO t (sess, seq, part, doomed, payload) "
			  . "SELECT $s, $q, g, false, repeat(md5(g::text), 100 * g) FROM generate_series(0, 4) g;\n"
			  . "SAVEPOINT b;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 5, 'false', 'released')
			  . ";\nRELEASE SAVEPOINT b;\nSAVEPOINT c;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES "
			  . row($s, $q, 6, 'true', 'sp') . ";\nROLLBACK TO SAVEPOINT c;\n"
			  . "INSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 7, 'false', 'sp')
			  . ";\nCOMMIT;\n", [ 0, 1, 2, 3, 4, 5, 7 ], 1);
	},
	# nested savepoints, the outer one rolled back after the inner one
	sub {
		my ($s, $q) = @_;
		return ("BEGIN;\nSAVEPOINT a;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 0, 'true', 'nested')
			  . ";\nSAVEPOINT b;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 1, 'true', 'nested')
			  . ";\nRELEASE SAVEPOINT b;\nROLLBACK TO SAVEPOINT a;\n"
			  . "INSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 2, 'false', 'nested')
			  . ";\nCOMMIT;\n", [2], 1);
	},
	# a commit whose every row was rolled back
	sub {
		my ($s, $q) = @_;
		return ("BEGIN;\nSAVEPOINT a;\nINSERT INTO t (sess, seq, part, doomed, payload) VALUES " . row($s, $q, 0, 'true', 'empty')
			  . ";\nROLLBACK TO SAVEPOINT a;\nCOMMIT;\n", [], 1);
	});

my %expected;    # "sess,seq" -> "p1,p2,..." (committed parts; '' for none)

# Writes a session's script; returns its path.
sub session_script
{
	my ($s, $round) = @_;
	my $sql = '';
	for my $i (1 .. $max_txns)
	{
		my $q = $round * 100000 + $i;
		my ($text, $parts, $acked) = $shapes[ ($i + $s) % @shapes ]->($s, $q);
		$expected{"$s,$q"} = join(',', @$parts);
		$sql .= $text;
		$sql .= "\\echo ACK $q\n" if $acked;
	}
	$sql .= "\\echo DONE\n";
	return cl_write_file("$tmp/session_${s}_$round.sql", $sql);
}

my %acked;    # "sess,seq" -> 1
my $psql = $node->installed_command('psql');

sub ledger_checks
{
	my ($label) = @_;

	# Every transaction is all-or-nothing, exactly as written, and no
	# rolled-back row survived.
	my $present = $node->safe_psql('postgres', q{
		SELECT sess || ',' || seq, string_agg(part::text, ',' ORDER BY part), bool_or(doomed)
		FROM t WHERE sess > 0 GROUP BY sess, seq});
	my %present;
	my ($wrong, $doomed, $missing, $unacked) = (0, 0, 0, 0);
	foreach my $line (split /\n/, $present)
	{
		my ($key, $parts, $d) = split /\|/, $line;
		$present{$key} = 1;
		$doomed++ if $d eq 't';
		if (!defined $expected{$key} || $expected{$key} ne $parts)
		{
			$wrong++;
			diag("$label: transaction $key has parts {$parts}, expected {"
				  . ($expected{$key} // 'not in any script') . '}')
			  if $wrong <= 5;
		}
		$unacked++ unless $acked{$key};
	}
	foreach my $key (keys %acked)
	{
		next if $expected{$key} eq '' || $present{$key};
		$missing++;
		diag("$label: acknowledged transaction $key is missing") if $missing <= 5;
	}
	is($missing, 0, "$label: every acknowledged commit is present");
	is($doomed, 0, "$label: no row of a rolled-back transaction or savepoint");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE doomed'), '0',
		"$label: no doomed row at all");
	is($wrong, 0, "$label: every present transaction is complete (all-or-nothing)");
	note("$label: " . scalar(keys %present) . ' transactions present, '
		  . scalar(keys %acked) . " acknowledged, $unacked committed but unacknowledged");
}

sub chain_checks
{
	my ($label) = @_;
	is($node->safe_psql('postgres', q{
		SELECT count(*) = max(seq) AND min(seq) = 1
		FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id)
		WHERE l.relid = 't'::regclass}),
		't', "$label: checkpoint seq is contiguous from 1");
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT seq, prev, tree_size,
				lag(note) OVER w AS prev_note, lag(tree_size) OVER w AS prev_size
			FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id)
			WHERE l.relid = 't'::regclass
			WINDOW w AS (ORDER BY seq)) c
		WHERE prev <> coalesce(sha256(convert_to(prev_note, 'UTF8')), decode(repeat('00', 32), 'hex'))
		   OR tree_size < prev_size}),
		'0', "$label: each checkpoint's prev is the SHA-256 of the previous note, tree_size never shrinks");
	is($node->safe_psql('postgres', q{
		SELECT max(tree_size) = (SELECT sum(nleaves) FROM consent_ledger.log)
		FROM consent_ledger.checkpoints}),
		't', "$label: the latest checkpoint covers the whole log");
}

for my $round (1 .. 2)
{
	my $label = "round $round";

	# Prepared transactions that must survive the crash.
	$node->safe_psql('postgres', qq{
		BEGIN;
		INSERT INTO t (sess, seq, part, doomed, payload)
			SELECT -1, $round, g, false, 'prepared' FROM generate_series(0, 2) g;
		PREPARE TRANSACTION 'cl_commit_$round';
		BEGIN;
		INSERT INTO t (sess, seq, part, doomed, payload) VALUES (-2, $round, 0, true, 'prepared');
		PREPARE TRANSACTION 'cl_abort_$round';
	});

	my (@h, @out, @err);
	for my $s (1 .. $nsessions)
	{
		my $script = session_script($s, $round);
		($out[$s], $err[$s]) = ('', '');
		$h[$s] = IPC::Run::start(
			[ $psql, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-f', $script ],
			'<', \undef, '>', \$out[$s], '2>', \$err[$s],
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	}

	# Crash once every session has committed a fair number of transactions
	# and the sealer has sealed some of them meanwhile.
	my $lo = $round * 100000;
	$node->poll_query_until('postgres', qq{
		SELECT count(*) = $nsessions FROM (
			SELECT sess FROM t WHERE sess > 0 AND seq > $lo GROUP BY sess HAVING count(DISTINCT seq) >= 60) s})
	  or die 'sessions made no progress';
	my $cp_before = $node->safe_psql('postgres', 'SELECT max(seq) FROM consent_ledger.checkpoints');
	$node->poll_query_until('postgres',
		"SELECT max(seq) >= $cp_before + 2 FROM consent_ledger.checkpoints")
	  or die 'sealer made no progress under load';
	$node->stop('immediate');

	for my $s (1 .. $nsessions)
	{
		eval { $h[$s]->finish; };
		my $acks = 0;
		foreach my $line (split /\n/, $out[$s])
		{
			if ($line =~ /^ACK (\d+)$/)
			{
				$acked{"$s,$1"} = 1;
				$acks++;
			}
		}
		unlike($out[$s], qr/^DONE$/m, "$label: session $s was interrupted by the crash");
		cmp_ok($acks, '>=', 10, "$label: session $s had acknowledged commits before the crash");
	}

	$node->start;

	ledger_checks("$label, after restart");
	my $v = cl_verify_row($node, 'postgres', 't');
	ok($v->{valid}, "$label: verify() valid right after restart") or diag $v->{problem};

	# Pending records left by the crash are sealed without seal().
	ok(cl_wait_for($node, 'postgres',
			q{SELECT pending = 0 AND "rows" = (SELECT count(*) FROM t) FROM consent_ledger.verify('t')}, 10),
		"$label: the sealer seals what the crash left pending, unasked");

	# The prepared transactions survived.
	is($node->safe_psql('postgres',
			qq{SELECT string_agg(gid, ',' ORDER BY gid) FROM pg_prepared_xacts WHERE gid LIKE 'cl\\_%\\_$round'}),
		"cl_abort_$round,cl_commit_$round", "$label: prepared transactions survived the crash");
	$node->safe_psql('postgres', "COMMIT PREPARED 'cl_commit_$round'");
	$node->safe_psql('postgres', "ROLLBACK PREPARED 'cl_abort_$round'");

	my $sealed = $node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
	note("$label: seal() sealed $sealed rows");
	is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE sess = -1 AND seq = $round"),
		'3', "$label: committed prepared transaction's rows are present");
	is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE sess = -2"),
		'0', "$label: rolled-back prepared transaction's row is absent");

	$v = cl_verify_row($node, 'postgres', 't');
	ok($v->{valid}, "$label: verify() valid after seal()") or diag $v->{problem};
	is($v->{pending}, 0, "$label: nothing pending after seal()");
	is($v->{rows}, $node->safe_psql('postgres', 'SELECT count(*) FROM t'),
		"$label: verify() rows = count(*)");
	chain_checks($label);
	is($node->safe_psql('postgres',
			q{SELECT consent_ledger.verify_checkpoint(consent_ledger.checkpoint('t'))}),
		't', "$label: latest checkpoint verifies");

	# Sealing resumes by itself.
	$node->safe_psql('postgres',
		"INSERT INTO t (sess, seq, part, doomed, payload) VALUES (0, $round, 0, false, 'after restart')");
	ok(cl_wait_for($node, 'postgres',
			q{SELECT pending = 0 AND "rows" = (SELECT count(*) FROM t) FROM consent_ledger.verify('t')}, 10),
		"$label: a new row is sealed within 10 s without seal()");
	ok(cl_verify_row($node, 'postgres', 't')->{valid}, "$label: verify() valid after the new row");
}

# The whole history, offline.
my $pk = $node->safe_psql('postgres', 'SELECT consent_ledger.public_key()');
my $export = cl_export_to_file($node, 'postgres', 't', "$tmp/crash.export");
my ($rc, $out) = cl_run_verifier('export', '--public-key', $pk, $export);
is($rc, 0, 'offline verifier accepts the export after two crashes');
like($out, qr/\AOK: .* @{[ $node->safe_psql('postgres', 'SELECT count(*) FROM t') ]} leaves/,
	'offline verifier saw every row');

$node->stop;
done_testing();
