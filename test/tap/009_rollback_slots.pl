# A rollback can never take the server down, and no wait holds a backend
# (SPEC §9, issue #10 class 6):
#
#  1. more connectable databases than audit slots, most without the
#     extension, and the one with it created last: rolling back an audited
#     change there is recorded ("rolled back") -- no PANIC, no crash (slots
#     go to databases with the extension only);
#  2. consent_ledger.max_databases = 2 and three databases with the
#     extension: the third gets no slot; seal() there fails with a clear
#     error, and rolling back an audited change only warns;
#  3. the audit ring is full (its writer is stalled) when a transaction
#     with thousands of audited changes rolls back: the aborting backend
#     waits interruptibly, pg_cancel_backend frees it, the records it could
#     not queue are counted and the writer records the gap in the audit
#     ledger, which still verifies;
#  4. max_worker_processes leaves no room for a database's sealer and
#     audit writer: the launcher logs a WARNING naming the setting.

use strict;
use warnings;

use Cwd qw(abs_path);
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $setup = q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE t (id integer PRIMARY KEY, v integer NOT NULL);
	INSERT INTO t SELECT g, 0 FROM generate_series(1, 3000) g;
	SELECT consent_ledger.audit('t');
};

# 1. more databases than slots ---------------------------------------------

my $node = PostgreSQL::Test::Cluster->new('slots');
$node->init;
$node->start;
my $ndbs = 70;
$node->safe_psql('postgres', join('', map { sprintf("CREATE DATABASE filler%02d STRATEGY file_copy;\n", $_) } 1 .. $ndbs));
# the launcher has seen every database
$node->restart;
usleep(2_000_000);
$node->safe_psql('postgres', 'CREATE DATABASE late');
$node->safe_psql('late', $setup);

my ($ret, $out, $err) = ('', '', '');
$ret = $node->psql('late', q{BEGIN; UPDATE t SET v = v + 1 WHERE id <= 3; ROLLBACK;},
	stdout => \$out, stderr => \$err);
is($ret, 0, 'many databases: ROLLBACK of audited changes succeeds') or diag $err;
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'many databases: the server is up');
ok(cl_wait_for($node, 'late', q{SELECT count(*) FROM consent_ledger.audit_log
		WHERE kind = 'change' AND outcome = 'rolled back'}, 30, '3'),
	'many databases: the three rolled-back changes are recorded');
$ret = $node->psql('late', q{SET consent_ledger.seal_timeout = '20s'; SELECT consent_ledger.seal() >= 0},
	stdout => \$out, stderr => \$err);
is($ret, 0, 'many databases: seal() works in the database with the extension') or diag $err;
my $v = cl_verify_row($node, 'late', 'consent_ledger.audit_log');
ok($v->{valid} && $v->{pending} == 0, 'many databases: the audit ledger verifies') or diag $v->{problem};
ok(!$node->log_contains(qr/PANIC|ERRORDATA_STACK_SIZE|terminated by signal/),
	'many databases: no PANIC, no crashed process in the server log');

# 3. ring full, writer stalled, cancel -------------------------------------

# Stall the writer: it can insert records but not commit them (committing
# audit_log rows writes their pending record), so the ring stays full.
my $locker = $node->background_psql('late', on_error_stop => 0);
$locker->query_safe('BEGIN; LOCK TABLE consent_ledger.pending IN SHARE MODE;');

my $victim = $node->background_psql('late', on_error_stop => 0);
my $pid = $victim->query_safe(q{SET application_name = 'victim'; SELECT pg_backend_pid();});
$victim->query_safe(q{SET consent_ledger.seal_timeout = '10min'; BEGIN; UPDATE t SET v = v + 1;});
my $offset = -s $node->logfile;
$victim->{stdin} .= "ROLLBACK;\n\\echo ROLLED_BACK\n";
$victim->{run}->pump_nb;
ok(cl_wait_for($node, 'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
		WHERE application_name = 'victim' AND state = 'active' AND query = 'ROLLBACK;'}, 20),
	'ring full: the ROLLBACK waits for queue space');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't', 'ring full: pg_cancel_backend() is sent');
ok(cl_wait_for($node, 'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
		WHERE application_name = 'victim' AND state = 'idle'}, 20),
	'ring full: the cancel frees the aborting backend while the writer is still stalled');
ok($node->log_contains(qr/WARNING:.*audit records of a rolled-back transaction were not queued: the wait was cancelled/, $offset),
	'ring full: it gave up because of the cancel, and said so');
$victim->{run}->pump_nb;
like($victim->{stdout}, qr/ROLLED_BACK/, 'ring full: the ROLLBACK completed in the session');
$locker->query_safe('COMMIT;');

ok(cl_wait_for($node, 'late', q{SELECT count(*) > 0 AND sum(rows_returned) > 0 FROM consent_ledger.audit_log
		WHERE kind = 'gap'}, 30),
	'ring full: the writer recorded the gap (records lost) in the audit ledger');
my $queued = $node->safe_psql('late', q{SELECT count(*) FROM consent_ledger.audit_log
	WHERE kind = 'change' AND outcome = 'rolled back'});
my $gap = $node->safe_psql('late', q{SELECT sum(rows_returned) FROM consent_ledger.audit_log WHERE kind = 'gap'});
is($queued + $gap, 3003, 'ring full: records written plus records counted lost = every rolled-back change');
$node->safe_psql('late', 'SELECT consent_ledger.seal()');
$v = cl_verify_row($node, 'late', 'consent_ledger.audit_log');
ok($v->{valid} && $v->{pending} == 0, 'ring full: the audit ledger still verifies') or diag $v->{problem};
$victim->quit;
$locker->quit;
ok(!$node->log_contains(qr/PANIC|ERRORDATA_STACK_SIZE|terminated by signal/),
	'ring full: no PANIC, no crashed process');
$node->stop;

# 2. max_databases = 2 -----------------------------------------------------

my $small = PostgreSQL::Test::Cluster->new('small');
$small->init;
$small->append_conf('postgresql.conf', "consent_ledger.max_databases = 2\n");
$small->start;
is($small->safe_psql('postgres', 'SHOW consent_ledger.max_databases'), '2', 'max_databases is a setting');
for my $d (qw(d1 d2 d3))
{
	$small->safe_psql('postgres', "CREATE DATABASE $d");
	$small->safe_psql($d, $setup);
}
$small->safe_psql($_, 'SELECT consent_ledger.seal()') foreach qw(d1 d2);
($ret, $out, $err) = ('', '', '');
$ret = $small->psql('d3', q{\set VERBOSITY verbose
	SELECT consent_ledger.seal()}, stdout => \$out, stderr => \$err);
isnt($ret, 0, 'no slot: seal() in a third database fails');
like($err, qr/53400: consent_ledger can seal at most 2 databases/, '... with SQLSTATE 53400 and the limit');
like($err, qr/HINT:.*consent_ledger\.max_databases/, '... and a hint naming the setting');
$offset = -s $small->logfile;
($ret, $out, $err) = ('', '', '');
$ret = $small->psql('d3', q{BEGIN; UPDATE t SET v = v + 1 WHERE id <= 2; ROLLBACK;},
	stdout => \$out, stderr => \$err);
is($ret, 0, 'no slot: ROLLBACK of audited changes succeeds');
like($err, qr/WARNING:.*2 audit records of a rolled-back transaction were not queued/,
	'no slot: ... with a WARNING counting the records it could not queue');
is($small->safe_psql('postgres', 'SELECT 1'), '1', 'no slot: the server is up');
ok(!$small->log_contains(qr/PANIC|ERRORDATA_STACK_SIZE|terminated by signal/),
	'no slot: no PANIC, no crashed process');
# the other databases keep working
$small->safe_psql('d1', q{BEGIN; UPDATE t SET v = v + 1 WHERE id = 1; ROLLBACK;});
ok(cl_wait_for($small, 'd1', q{SELECT count(*) FROM consent_ledger.audit_log WHERE outcome = 'rolled back'}, 30, '1'),
	'no slot: a database with a slot records its rollback');
# dropping d2 gives its slot back: d3 gets one
$small->safe_psql('postgres', 'DROP DATABASE d2');
ok(cl_wait_for($small, 'd3', q{SET consent_ledger.seal_timeout = '5s'; SELECT consent_ledger.seal() >= 0}, 60),
	'no slot: once d2 is dropped, its slot goes to d3');
$small->stop;

# 3. max_worker_processes too small ----------------------------------------
# PostgreSQL says nothing when a background worker cannot be registered;
# the launcher does (once a minute), or a DBA would only see audited reads
# time out.

my $few = PostgreSQL::Test::Cluster->new('few_workers');
$few->init;
$few->append_conf('postgresql.conf', "max_worker_processes = 3\n");
$few->start;
for my $d (qw(w1 w2))
{
	$few->safe_psql('postgres', "CREATE DATABASE $d");
	$few->safe_psql($d, $setup);
}
ok( $few->wait_for_log(
		qr/WARNING:  consent_ledger could not start a background worker for the database with OID \d+\n.*DETAIL:  Every background worker slot \(max_worker_processes = 3\) is taken.*\n.*HINT:  Raise max_worker_processes/
	),
	'too few worker slots: the launcher logs a WARNING naming max_worker_processes');
$few->append_conf('postgresql.conf', "max_worker_processes = 8\n");
$few->restart;
ok(cl_wait_for($few, $_, q{SET consent_ledger.seal_timeout = '5s'; SELECT consent_ledger.seal() >= 0}, 60),
	"too few worker slots: with more, $_ is sealed") foreach qw(w1 w2);
$few->stop;

done_testing();
