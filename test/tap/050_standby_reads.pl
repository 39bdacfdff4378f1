# Audited reads on a hot standby (issue #14 item 4, SPEC §10): a primary
# and a streaming standby whose consent_ledger.standby_audit_conninfo
# points at the primary as a member of consent_ledger_standby.
#
#  1. a protected read on the standby returns only the consented rows (the
#     primary's answer) and its records are on the primary, naming the
#     standby: the "started" record is committed there while the read's
#     first row is in the client's hands (a cursor, checked from a shell
#     escape of the reading psql), the "completed" one when it ends, with
#     rows returned and withheld;
#  2. a withdrawal, a new authorization's revocation-free path and a new
#     protect() committed on the primary are in force in a standby session
#     that was open before, from its first statement after the replay;
#  3. an ordinary login role cannot call the primary's entry point
#     (record_standby_read) to forge records, a member of
#     consent_ledger_standby can, and the standby itself refuses to be one;
#  4. fail closed: a "primary" that accepts connections but never answers
#     makes the read fail once consent_ledger.seal_timeout has passed
#     (08001, the timeout named), a cancel ends that wait (57014), and
#     with the primary stopped the read is
#     refused (08001), with no row answered; once the primary is back, the
#     same standby session reads again;
#  5. the primary's audit ledger, with the standby's records, verifies.

use strict;
use warnings;

use Cwd qw(abs_path);
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $db = 'wh';

my $primary = PostgreSQL::Test::Cluster->new('sr_primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', "CREATE DATABASE $db");
$primary->safe_psql('postgres', q{
	CREATE ROLE analyst LOGIN;
	CREATE ROLE mallory LOGIN;
});
$primary->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	CREATE ROLE standby_audit LOGIN;
	SELECT consent_ledger.define_purpose('research', 'medical research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL, email text);
	INSERT INTO people SELECT g, (g - 1) % 5 + 1, 'p' || g || '@example.org' FROM generate_series(1, 10) g;
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO analyst;
	CREATE TABLE visits (id integer PRIMARY KEY, subject integer NOT NULL);
	INSERT INTO visits SELECT g, (g - 1) % 5 + 1 FROM generate_series(1, 10) g;
	GRANT SELECT ON visits TO analyst;
	SELECT consent_ledger.grant_consent(1, 'research');
	SELECT consent_ledger.grant_consent(2, 'research');
	SELECT consent_ledger.grant_consent(3, 'research');
});
# (not safe_psql: before 1.3 the role does not exist, and this test is
# shown to fail on that code by its assertions, not by dying here)
$primary->psql($db, 'GRANT consent_ledger_standby TO standby_audit');
$primary->safe_psql($db, 'SELECT consent_ledger.seal()');

$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('sr_standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
chmod(0600, $standby->data_dir . '/consent_ledger/signing.key');    # see 003_standby.pl
my $conninfo = "host=" . $primary->host . " port=" . $primary->port . " user=standby_audit";
$standby->append_conf('postgresql.conf', qq{
consent_ledger.standby_audit_conninfo = '$conninfo'
consent_ledger.standby_name = 'replica_a'
});
$standby->start;
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

# psql logged in as another role; returns (exit status, stdout, stderr).
sub psql_as
{
	my ($n, $role, $sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $n->psql($db, $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return ($ret, $out, $err);
}

# The primary's records of reads tagged with an application_name.
sub records_of
{
	my ($app) = @_;
	return $primary->safe_psql($db, qq{
		SELECT string_agg(pg_catalog.concat_ws('|', kind, split_part(session_id, '/', 1), role_name,
				coalesce(purpose, ''), relation, outcome, coalesce(rows_returned::text, ''),
				coalesce(rows_withheld::text, ''), coalesce(rls_bypassed::text, '')), E'\\n' ORDER BY record_id)
		FROM consent_ledger.audit_log WHERE application_name = '$app'});
}

# A query in a BackgroundPsql session: its output, '' on error (the
# error is in $session->{stderr}, cleared here; on code that refuses the
# read the assertions fail instead of the test dying).
sub sq
{
	my ($session, $sql) = @_;
	my $out = $session->query($sql);
	my $err = $session->{stderr};
	$session->{stderr} = '';
	diag "session error: $err" if $err ne '';
	return $err eq '' ? $out : '';
}

my $count_sql = q{SET consent_ledger.purpose = 'research';
	SELECT string_agg(DISTINCT subject::text, ',' ORDER BY subject::text), count(*) FROM people;};

###########################################################################
# 1. a protected read on the standby, audited on the primary
###########################################################################

my ($ret, $out, $err) = psql_as($primary, 'analyst', "SET application_name = 'on_primary'; $count_sql");
is($ret, 0, 'primary: the analyst reads people') or diag $err;
my $primary_answer = $out;
is($primary_answer, '1,2,3|6', 'primary: only the consented subjects 1, 2, 3');

($ret, $out, $err) = psql_as($standby, 'analyst', "SET application_name = 'standby_count'; $count_sql");
is($ret, 0, 'standby: the analyst reads people (no refusal)') or diag $err;
is($out, $primary_answer, 'standby: the same consented rows as the primary');
is(records_of('standby_count'),
	"read|replica_a|analyst|research|public.people|started|||false\n"
	  . "read|replica_a|analyst|research|public.people|completed|1|4|false",
	'primary: "started" and "completed" records of the standby read, naming replica_a, rows returned and withheld');
like($primary->safe_psql($db, q{SELECT session_id FROM consent_ledger.audit_log
		WHERE application_name = 'standby_count' LIMIT 1}),
	qr{^replica_a/[0-9a-f]+\.[0-9a-f]+$}, 'primary: session_id is "<standby>/<session on the standby>"');

# While the first row of a cursor is in the client's hands, the "started"
# record is already committed on the primary (checked by a psql started
# from the reading psql itself), the outcome is not yet.
my $probe = "$tmp/probe.out";
my $psql_primary = join(' ', 'psql', '-X', '-At', '-h', $primary->host, '-p', $primary->port, '-d', $db);
($ret, $out, $err) = psql_as($standby, 'analyst', qq{
SET application_name = 'standby_cursor';
SET consent_ledger.purpose = 'research';
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM people ORDER BY id;
FETCH 1 FROM c;
\\! $psql_primary -c "SELECT string_agg(outcome, ',' ORDER BY record_id) FROM consent_ledger.audit_log WHERE application_name = 'standby_cursor'" > $probe
FETCH ALL FROM c;
COMMIT;
});
is($ret, 0, 'standby: a cursor over people') or diag $err;
is($out, join("\n", 1, 2, 3, 6, 7, 8), 'standby: the cursor answers the consented rows');
is(-e $probe ? slurp_file($probe) : '', "started\n", 'primary: "started" committed while the first row was in the client\'s hands');
is(records_of('standby_cursor') =~ s/\n/;/gr,
	"read|replica_a|analyst|research|public.people|started|||false;"
	  . "read|replica_a|analyst|research|public.people|completed|6|4|false",
	'primary: the cursor\'s outcome after it closed');

# A superuser's read on the standby bypasses row-level security: recorded as such.
($ret, $out, $err) = psql_as($standby, 'postgres', q{SET application_name = 'standby_super'; SELECT count(*) FROM people});
is($out, '10', 'standby: a superuser reads every row');
like(records_of('standby_super'), qr/\|completed\|1\|0\|true$/, 'primary: its record says rls_bypassed');

###########################################################################
# 2. withdrawal, protect() and authorization, in force after replay
###########################################################################

my $session = $standby->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'analyst' ]);
$session->query_safe(q{SET application_name = 'standby_session'; SET consent_ledger.purpose = 'research'});
is(sq($session, q{SELECT string_agg(DISTINCT subject::text, ',' ORDER BY subject::text) FROM people}),
	'1,2,3', 'standby session: subjects 1, 2, 3 before the withdrawal');
is(sq($session, q{SELECT count(*) FROM visits}), '10', 'standby session: visits is not protected yet');

$primary->safe_psql($db, q{
	SELECT consent_ledger.withdraw_consent(2, 'research');
	SELECT consent_ledger.protect('visits', 'subject');
});
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
is(sq($session, q{SELECT string_agg(DISTINCT subject::text, ',' ORDER BY subject::text) FROM people}),
	'1,3', 'standby session: the withdrawal of subject 2 is in force from the first statement after its replay');
is(sq($session, q{SELECT string_agg(DISTINCT subject::text, ',' ORDER BY subject::text) FROM visits}),
	'1,3', 'standby session: visits, protected on the primary, is enforced after replay');
like(records_of('standby_session'), qr/public\.visits\|completed\|1\|6\|false$/,
	'primary: the standby\'s read of the newly protected visits is recorded');

$primary->safe_psql($db, q{SELECT consent_ledger.grant_consent(2, 'research')});
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
is(sq($session, q{SELECT string_agg(DISTINCT subject::text, ',' ORDER BY subject::text) FROM people}),
	'1,2,3', 'standby session: consent granted again is in force after replay');
$session->quit;

###########################################################################
# 3. nobody else writes standby records
###########################################################################

my $forge = q{SELECT consent_ledger.record_standby_read('replica_a', now(), 'x.1', 'analyst', 'analyst',
	NULL, 'forged', 'research', 'public.people', 'people'::regclass, 'SELECT', 'completed', 0, 0, NULL, false)};
# mallory may even use the schema (an administrator may grant USAGE, for
# the key functions): EXECUTE on the entry point is what refuses it.
$primary->safe_psql($db, 'GRANT USAGE ON SCHEMA consent_ledger TO mallory, analyst');
($ret, $out, $err) = psql_as($primary, 'mallory', "\\set VERBOSITY verbose\n$forge");
isnt($ret, 0, 'primary: an ordinary login role cannot call record_standby_read()');
like($err, qr/ERROR:\s+42501: permission denied for function record_standby_read/, '... permission denied (42501)');
($ret, $out, $err) = psql_as($primary, 'analyst', "\\set VERBOSITY verbose\n$forge");
like($err, qr/ERROR:\s+42501: permission denied for function record_standby_read/, 'primary: nor can an analyst (42501)');
$primary->safe_psql('postgres', 'CREATE ROLE dba LOGIN');
$primary->safe_psql($db, 'GRANT consent_ledger_admin TO dba');
($ret, $out, $err) = psql_as($primary, 'dba', "\\set VERBOSITY verbose\n$forge");
like($err, qr/ERROR:\s+42501: permission denied for function record_standby_read/,
	'primary: nor can a member of consent_ledger_admin (42501)');
is($primary->safe_psql($db, q{SELECT count(*) FROM consent_ledger.audit_log WHERE application_name = 'forged'}),
	'0', 'primary: no forged record was written');
($ret, $out, $err) = psql_as($primary, 'standby_audit', "\\set VERBOSITY verbose\n" . ($forge =~ s/forged/by_member/r));
is($ret, 0, 'primary: a member of consent_ledger_standby can') or diag $err;
($ret, $out, $err) = psql_as($primary, 'standby_audit', "\\set VERBOSITY verbose\n"
	  . ($forge =~ s/'completed'/'bogus'/r));
like($err, qr/ERROR:\s+22023:.*invalid outcome/, 'primary: an invalid outcome is refused (22023)');
($ret, $out, $err) = $standby->psql($db, "\\set VERBOSITY verbose\n$forge");
like($err, qr/ERROR:\s+25006:/, 'standby: record_standby_read() refuses during recovery (25006)');

###########################################################################
# 4. fail closed
###########################################################################

# A "primary" that completes the TCP handshake (the kernel does) and never
# answers: the read waits consent_ledger.seal_timeout, then is refused.
my $silent = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp')
  or die "listen: $!";
my $silent_port = $silent->sockport;
$standby->append_conf('postgresql.conf', qq{
consent_ledger.standby_audit_conninfo = 'host=127.0.0.1 port=$silent_port user=standby_audit connect_timeout=0'
consent_ledger.seal_timeout = '2s'
});
$standby->reload;
$standby->poll_query_until($db, q{SELECT current_setting('consent_ledger.seal_timeout') = '2s'})
  or die 'standby did not reload';
($ret, $out, $err) = psql_as($standby, 'analyst', "\\set VERBOSITY verbose\nSET application_name = 'standby_silent'; $count_sql");
isnt($ret, 0, 'standby: a primary that does not answer: the read is refused');
like($err, qr/ERROR:\s+08001: could not connect to the primary.*\n.*did not answer within 2000 ms/,
	'... 08001, after consent_ledger.seal_timeout (named in the detail)');
is($out, '', '... and no row is answered');

# The wait is interruptible: with a timeout far away, a cancel ends it
# (57014), not the timeout.
$standby->append_conf('postgresql.conf', "consent_ledger.seal_timeout = '10min'\n");
$standby->reload;
$standby->poll_query_until($db, q{SELECT current_setting('consent_ledger.seal_timeout') = '10min'})
  or die 'standby did not reload';
my ($cin, $cout, $cerr) = ('', '', '');
my $reader = IPC::Run::start(
	[ 'psql', '-X', '-At', '-v', 'VERBOSITY=verbose', '-d',
		$standby->connstr($db) . q{ user=analyst application_name=standby_cancel options='-c consent_ledger.purpose=research'},
		'-c', 'SELECT count(*) FROM people' ],
	'<', \$cin, '>', \$cout, '2>', \$cerr);
$standby->poll_query_until($db, q{SELECT count(*) = 1 FROM pg_stat_activity
		WHERE application_name = 'standby_cancel' AND wait_event_type = 'Extension'})
  or die 'the standby read is not waiting for the primary';
is($standby->safe_psql($db, q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'standby_cancel'}), 't', 'standby: cancel a read waiting for the primary');
$reader->finish;
like($cerr, qr/ERROR:\s+57014: canceling statement due to user request/,
	'... the wait ends on the cancel (57014), not at the timeout');
is($cout, '', '... and no row is answered');
close($silent);

$standby->append_conf('postgresql.conf', qq{
consent_ledger.standby_audit_conninfo = '$conninfo'
consent_ledger.seal_timeout = '5s'
});
$standby->reload;
$standby->poll_query_until($db, q{SELECT current_setting('consent_ledger.seal_timeout') = '5s'})
  or die 'standby did not reload';

# A long-lived session keeps its connection to the primary across a stop.
$session = $standby->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'analyst' ]);
$session->query_safe(q{SET application_name = 'standby_restart'; SET consent_ledger.purpose = 'research'});
is(sq($session, q{SELECT count(*) FROM people}), '6', 'standby session: reads before the primary stops');

$primary->stop('fast');
($ret, $out, $err) = psql_as($standby, 'analyst', "\\set VERBOSITY verbose\nSET application_name = 'standby_down'; $count_sql");
isnt($ret, 0, 'standby, primary stopped: the read is refused');
like($err, qr/ERROR:\s+08001: could not connect to the primary to forward the audit record of this read/,
	'... 08001 could not connect (fail closed)');
like($err, qr/HINT:\s+Check that the primary is up/, '... with a hint');
is($out, '', '... and no row is answered');
my $sout = $session->query(q{SELECT count(*) FROM people});
my $serr = $session->{stderr};
$session->{stderr} = '';
is($sout, '', 'standby session with a kept connection: no row either');
like($serr, qr/ERROR:\s+could not (connect to|forward the audit record of this read to) the primary/,
	'... refused');

$primary->start;
is(sq($session, q{SELECT count(*) FROM people}), '6',
	'standby session: reads again once the primary is back (a new connection)');
$session->quit;
like(records_of('standby_restart'), qr/completed\|1\|4\|false$/, 'primary: that read is recorded');
is($primary->safe_psql($db, q{SELECT count(*) FROM consent_ledger.audit_log
		WHERE application_name IN ('standby_down', 'standby_silent')}),
	'0', 'primary: the refused reads left no record (they were not answered)');

###########################################################################
# 5. the audit ledger verifies
###########################################################################

$primary->safe_psql($db, 'SELECT consent_ledger.seal()');
my $v = cl_verify_row($primary, $db, 'consent_ledger.audit_log');
ok($v->{valid}, 'primary: the audit ledger with the standby\'s records verifies') or diag $v->{problem};

$standby->stop;
$primary->stop;
done_testing();
