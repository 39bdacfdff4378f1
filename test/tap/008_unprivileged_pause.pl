# Nothing a role without the right privilege does may pause, slow or stop
# sealing or auditing (SPEC §9, issue #10 class 5):
#
#  1. a role with no privileges loops failing ALTER DATABASE (CONNECTION
#     LIMIT, SET TABLESPACE, RENAME), DROP DATABASE and CREATE DATABASE ...
#     TEMPLATE of a database with ledgers, while the database owner changes
#     its CONNECTION LIMIT (authorized, but the command does not need the
#     database free), and a session of the unprivileged role with
#     application_name = 'pg_restore' stays connected to the database;
#     meanwhile seal() seals every committed row and analysts' protected
#     reads are answered, none failing at consent_ledger.seal_timeout;
#  2. a superuser's session named pg_restore still pauses sealing (what
#     pg_restore needs), and sealing resumes when it leaves;
#  3. the owner's ALTER DATABASE ... SET TABLESPACE and DROP DATABASE of a
#     database with a running sealer and audit writer succeed.

use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $db = 'wh';

my $node = PostgreSQL::Test::Cluster->new('unpriv');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE ROLE nobody LOGIN;
	CREATE ROLE analyst LOGIN;
	CREATE ROLE whowner LOGIN;
});
$node->safe_psql('postgres', "CREATE DATABASE $db OWNER whowner");
$node->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE l (id integer, v text);
	SELECT consent_ledger.create_ledger('l');
	SELECT consent_ledger.define_purpose('research', 'medical research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL);
	INSERT INTO people SELECT g, g FROM generate_series(1, 10) g;
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO analyst;
	SELECT consent_ledger.grant_consent(1, 'research');
	SELECT consent_ledger.grant_consent(2, 'research');
});
$node->safe_psql($db, 'SELECT consent_ledger.seal()');

# 1. the hostile role -------------------------------------------------------

my $psql = $node->installed_command('psql');

# a session of the unprivileged role that calls itself pg_restore
my $fake = $node->background_psql($db, on_error_stop => 0,
	extra_params => [ '-U', 'nobody' ]);
$fake->query_safe(q{SET application_name = 'pg_restore'});
is($node->safe_psql($db, q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_restore'}),
	'1', 'an unprivileged session named pg_restore is connected');

my $iterations = 2000;
my $hostile = join('', map {
	"ALTER DATABASE $db CONNECTION LIMIT 5;\n"
	  . "ALTER DATABASE $db SET TABLESPACE pg_default;\n"
	  . "ALTER DATABASE $db RENAME TO ${db}_renamed;\n"
	  . "DROP DATABASE $db;\n"
	  . "CREATE DATABASE ${db}_copy TEMPLATE $db;\n"
	  . "SELECT pg_sleep(0.05);\n" } 1 .. $iterations);
my $hostile_file = cl_write_file("$tmp/hostile.sql", $hostile);
my ($hout, $herr) = ('', '');
my $h = IPC::Run::start(
	[ $psql, '-XAtq', '-U', 'nobody', '-d', $node->connstr('postgres'), '-f', $hostile_file ],
	'<', \undef, '>', \$hout, '2>', \$herr);

# the owner: authorized, but CONNECTION LIMIT does not need the database free
my $owner_loop = join('', map {
	"ALTER DATABASE $db CONNECTION LIMIT 100;\nALTER DATABASE $db CONNECTION LIMIT -1;\nSELECT pg_sleep(0.1);\n" }
	  1 .. $iterations);
my $owner_file = cl_write_file("$tmp/owner.sql", $owner_loop);
my ($oout, $oerr) = ('', '');
my $ho = IPC::Run::start(
	[ $psql, '-XAtq', '-U', 'whowner', '-d', $node->connstr('postgres'), '-f', $owner_file ],
	'<', \undef, '>', \$oout, '2>', \$oerr);

# wait until the hostile loop has failed a few rounds of each command
my $deadline = time() + 60;
while (time() < $deadline)
{
	$h->pump_nb;
	last if (() = $herr =~ /must be owner of database|permission denied to create database/g) >= 20;
	usleep(100_000);
}
cmp_ok((() = $herr =~ /must be owner of database/g), '>=', 10,
	'the unprivileged role\'s ALTER/DROP DATABASE commands fail (must be owner)');
like($herr, qr/permission denied to create database/, '... and so does its CREATE DATABASE ... TEMPLATE');

my $rounds = 4;
for my $round (1 .. $rounds)
{
	$node->safe_psql($db, "INSERT INTO l SELECT g, 'round $round' FROM generate_series(1, 10) g");
	my ($ret, $out, $err) = ('', '', '');
	$ret = $node->psql($db, q{SET consent_ledger.seal_timeout = '6s'; SELECT consent_ledger.seal() >= 0},
		stdout => \$out, stderr => \$err);
	is($ret, 0, "round $round: seal() returns (no timeout at seal_timeout)") or diag $err;
	my $v = cl_verify_row($node, $db, 'l');
	is($v->{pending}, 0, "round $round: seal() sealed every committed row of the ledger");
	ok($v->{valid}, "round $round: the ledger verifies") or diag $v->{problem};

	($ret, $out, $err) = ('', '', '');
	$ret = $node->psql($db, q{SET consent_ledger.seal_timeout = '6s'; SET consent_ledger.purpose = 'research';
		SELECT string_agg(id::text, ',' ORDER BY id) FROM people},
		stdout => \$out, stderr => \$err, extra_params => [ '-U', 'analyst' ]);
	is($out, '1,2', "round $round: an analyst's protected read is answered") or diag $err;
}
$h->pump_nb;
ok($h->pumpable, 'the hostile loop was still running throughout');
is($node->safe_psql($db, q{SELECT count(*) FROM consent_ledger.audit_log
	WHERE kind = 'read' AND role_name = 'analyst' AND outcome = 'completed'}),
	$rounds, 'every protected read has its completed record');
$h->kill_kill;
$ho->kill_kill;
unlike($oerr, qr/ERROR/, 'the owner\'s ALTER DATABASE ... CONNECTION LIMIT commands succeeded') or diag $oerr;
$fake->quit;

# 2. a privileged pg_restore session pauses sealing ---------------------------

my $restorer = $node->background_psql($db, on_error_stop => 0);
$restorer->query_safe(q{SET application_name = 'pg_restore'});
$node->safe_psql($db, "INSERT INTO l SELECT g, 'paused' FROM generate_series(1, 5) g");
$node->safe_psql($db, 'SELECT consent_ledger.seal()');
is(cl_verify_row($node, $db, 'l')->{pending}, 5,
	'a superuser\'s session named pg_restore pauses sealing');
$restorer->quit;
ok(cl_wait_for($node, $db, q{SELECT consent_ledger.seal() >= 0 AND pending = 0 FROM consent_ledger.verify('l')}, 30),
	'sealing resumes when it has left');

# 3. the owner can still move and drop the database ---------------------------

mkdir("$tmp/ts") or die "mkdir: $!";
$node->safe_psql('postgres', "CREATE TABLESPACE ts LOCATION '$tmp/ts'; GRANT CREATE ON TABLESPACE ts TO whowner;");
my ($tret, $tout, $terr) = ('', '', '');
$tret = $node->psql('postgres', "ALTER DATABASE $db SET TABLESPACE ts",
	stdout => \$tout, stderr => \$terr, extra_params => [ '-U', 'whowner' ]);
is($tret, 0, 'the owner\'s ALTER DATABASE ... SET TABLESPACE succeeds (sealer and writer let go)') or diag $terr;
is($node->safe_psql($db, "SELECT consent_ledger.seal() >= 0"), 't', 'sealing works after the move');
$node->safe_psql('postgres', "DROP DATABASE $db", extra_params => [ '-U', 'whowner' ]);
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = '$db'"), '0',
	'the owner\'s DROP DATABASE succeeds');
ok(!$node->log_contains(qr/PANIC|server process .* was terminated/), 'no PANIC, no crashed backend');

$node->stop;
done_testing();
