# One process, one job; one damaged ledger never stops the others (SPEC §9,
# issue #10 class 8):
#
#  1. the audit writer does not wait for sealing: while a sealing round is
#     held inside its transaction (blocked on a lock on consent_ledger.log),
#     an analyst's protected read is answered and its records are written
#     -- and the round is shown to be still in progress afterwards;
#  2. one ledger's stored frontier is damaged: every other ledger is still
#     sealed, seal() returns, verify() names the damaged one, and the
#     server log says which ledger the sealer skipped.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $db = 'wh';
my $node = PostgreSQL::Test::Cluster->new('writer');
$node->init;
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql('postgres', 'CREATE ROLE analyst LOGIN');
$node->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research', 'medical research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL);
	INSERT INTO people SELECT g, g FROM generate_series(1, 10) g;
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO analyst;
	SELECT consent_ledger.grant_consent(3, 'research');
	CREATE TABLE la (id integer, v text);
	CREATE TABLE lb (id integer, v text);
	CREATE TABLE lc (id integer, v text);
	SELECT consent_ledger.create_ledger('la');
	SELECT consent_ledger.create_ledger('lb');
	SELECT consent_ledger.create_ledger('lc');
	INSERT INTO la VALUES (1, 'a');
	INSERT INTO lb VALUES (1, 'b');
	INSERT INTO lc VALUES (1, 'c');
});
$node->safe_psql($db, 'SELECT consent_ledger.seal()');

# 1. reads are recorded while a sealing round is in progress --------------

# the log is locked before the rows come, so that no round can seal them
# first (on a loaded machine the sealer did, and nothing was left to wait)
my $locker = $node->background_psql($db, on_error_stop => 0);
$locker->query_safe('BEGIN; LOCK TABLE consent_ledger.log IN SHARE MODE;');
$node->safe_psql($db, q{INSERT INTO la SELECT g, 'big' FROM generate_series(2, 100000) g});
# the sealer's round has begun and waits for the lock on the log
my $sealer_waits = q{SELECT count(*) > 0 FROM pg_locks k JOIN pg_stat_activity a USING (pid)
	WHERE a.backend_type = 'consent_ledger sealer' AND NOT k.granted
	  AND k.relation = 'consent_ledger.log'::regclass};
ok(cl_wait_for($node, $db, $sealer_waits, 30), 'a sealing round is in progress (waiting for the log)');

my ($ret, $out, $err) = ('', '', '');
$ret = $node->psql($db, q{SET consent_ledger.seal_timeout = '20s'; SET application_name = 'reader';
	SET consent_ledger.purpose = 'research'; SELECT string_agg(id::text, ',') FROM people},
	stdout => \$out, stderr => \$err, extra_params => [ '-U', 'analyst' ]);
is($out, '3', 'the protected read is answered during the round') or diag $err;
my $records = '';
$node->psql($db, q{SELECT string_agg(outcome, ',' ORDER BY record_id) FROM consent_ledger.audit_log
	WHERE application_name = 'reader'}, stdout => \$records);
is($records, 'started,completed', '... its started and completed records are committed');
is($node->safe_psql($db, $sealer_waits), 't', '... and the sealing round is still in progress');
is(cl_verify_row($node, $db, 'la')->{pending}, 99999, '... its rows still unsealed');
$locker->query_safe('COMMIT;');
$locker->quit;
$node->safe_psql($db, 'SELECT consent_ledger.seal()');
is(cl_verify_row($node, $db, 'la')->{pending}, 0, 'the round completes once the lock is gone');

# 2. a damaged frontier ----------------------------------------------------

$node->safe_psql($db, q{
	UPDATE consent_ledger.checkpoints SET frontier = '\x00'
	WHERE ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'lb'::regclass)
	  AND seq = (SELECT max(seq) FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id)
				 WHERE l.relid = 'lb'::regclass)});
my $offset = -s $node->logfile;
$node->safe_psql($db, q{
	INSERT INTO la VALUES (200000, 'after');
	INSERT INTO lb VALUES (2, 'after');
	INSERT INTO lc VALUES (2, 'after');
});
for my $round (1 .. 3)
{
	($ret, $out, $err) = ('', '', '');
	$ret = $node->psql($db, q{SET consent_ledger.seal_timeout = '10s'; SELECT consent_ledger.seal() >= 0},
		stdout => \$out, stderr => \$err);
	is($ret, 0, "damaged frontier: seal() returns (round $round)") or diag $err;
}
for my $rel (qw(la lc consent_ledger.consent_events consent_ledger.audit_log))
{
	my $v = cl_verify_row($node, $db, $rel);
	ok($v->{valid}, "damaged frontier: $rel verifies") or diag $v->{problem};
	is($v->{pending}, 0, "damaged frontier: $rel is sealed");
}
my $vb = cl_verify_row($node, $db, 'lb');
ok(!$vb->{valid}, 'damaged frontier: verify() of the damaged ledger fails');
like($vb->{problem}, qr/frontier/, 'damaged frontier: ... and says the stored frontier is bad');
is($vb->{pending}, 1, 'damaged frontier: its new row is left pending');
ok($node->log_contains(qr/WARNING:.*consent_ledger could not seal ledger "public\.lb"/, $offset),
	'damaged frontier: the server log names the ledger the sealer skipped');
my $warnings = () = slurp_file($node->logfile, $offset) =~ /could not seal ledger "public\.lb"/g;
is($warnings, 1, 'damaged frontier: ... once, not every round');

ok(!$node->log_contains(qr/PANIC|terminated by signal/), 'no crash');
$node->stop;
done_testing();
