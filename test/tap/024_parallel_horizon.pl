# Parallel workers decide with their leader's inputs (issue #12, README
# "Consent state in shared memory", "Parallel queries").
#
#  1. A statement reads a protected table in the leader (a parallel-
#     restricted scan), then one through parallel workers (Gather).  The
#     workers are held before setting up their policy check
#     (consent_ledger.debug_parallel_worker_wait, test-only) until a
#     withdrawal of subject 3 commits.  The leader decided subject 3's rows
#     before the withdrawal; the workers must decide them with the same
#     horizon: 3 shown on both sides.  (Before the fix each worker fixed its
#     own, newer horizon: the leader showed 3, the workers hid it.)  The next
#     statement has the withdrawal in force, in the leader and the workers.
#  2. The same through a purpose view, and through a parallel-safe
#     function that reads a protected table in the workers.  And in one
#     statement without parallelism: a check site set up after a
#     withdrawal committed (the second branch of a UNION ALL) keeps the
#     statement's horizon.
#  3. Nobody sets consent_ledger.parallel_inputs, the setting that carries
#     the leader's inputs to its workers: not a plain role (SET,
#     set_config, PGOPTIONS, ALTER ROLE SET, ALTER DATABASE SET as the
#     database owner, a function's SET clause, even after GRANT SET ON
#     PARAMETER), not a superuser; and the test-only wait is superuser-only.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $node = PostgreSQL::Test::Cluster->new('parallel_horizon');
$node->init;
$node->append_conf('postgresql.conf', qq{
consent_ledger.seal_timeout = '20s'
max_worker_processes = 16
max_parallel_workers = 8
});
$node->start;
my $db = 'postgres';
$node->safe_psql($db, q{
	CREATE ROLE analyst LOGIN;
	CREATE ROLE downer LOGIN;
	CREATE DATABASE owned OWNER downer;
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	CREATE TABLE people (id int PRIMARY KEY, subject bigint);
	INSERT INTO people VALUES (1, 1), (2, 2), (3, 3);
	CREATE TABLE facts (subject bigint, x int);
	INSERT INTO facts SELECT i % 3 + 1, i FROM generate_series(1, 30000) i;
	GRANT SELECT ON people, facts TO analyst;
	SELECT consent_ledger.protect('people', 'subject');
	SELECT consent_ledger.protect('facts', 'subject');
	SELECT consent_ledger.create_purpose_view('facts', 'research', 'facts_research');
	GRANT SELECT ON facts_research TO analyst;
	SELECT count(consent_ledger.grant_consent(s, 'research')) FROM generate_series(1, 3) s;
	ANALYZE people; ANALYZE facts;
});

my $planner = q{SET parallel_leader_participation = off; SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
	SET max_parallel_workers_per_gather = 2; SET enable_hashjoin = off;
	SET enable_mergejoin = off; SET enable_material = off;};

# people in the leader (random() is parallel restricted), then the rows of
# subject 3 in the relation given, through workers
sub query
{
	my ($rel) = @_;
	return qq{SELECT a.leader || '|' || w.worker FROM
		(SELECT string_agg(subject::text, ',' ORDER BY subject) AS leader FROM people WHERE random() >= 0) a
		CROSS JOIN (SELECT count(*) FILTER (WHERE subject = 3) AS worker FROM $rel) w};
}

my $explain = $node->safe_psql($db, qq{$planner SET ROLE analyst; SET consent_ledger.purpose = 'research';
	EXPLAIN (COSTS OFF) } . query('facts'));
like($explain, qr/Nested Loop.*Seq Scan on people.*Gather.*Parallel Seq Scan on facts/s,
	'plan: people read in the leader, then facts through parallel workers');

my $withdrawals = 0;

sub race
{
	my ($rel, $subject, $label, $sql) = @_;
	$sql //= query($rel);
	my $s = $node->background_psql($db, on_error_stop => 0);
	$s->query_safe(qq{$planner SET consent_ledger.debug_parallel_worker_wait = '120s';
		SET ROLE analyst; SET consent_ledger.purpose = 'research';});
	$s->{stdin} .= $sql . ";\n";
	$s->{run}->pump_nb;
	ok( $node->poll_query_until($db, q{SELECT count(*) > 0 FROM pg_stat_activity
			WHERE backend_type = 'parallel worker' AND wait_event = 'PgSleep'}),
		"$label: a worker waits before setting up its check");
	$node->safe_psql($db, "SELECT consent_ledger.withdraw_consent('$subject', 'research')");
	my $out = $s->query_safe('RESET ROLE; SET consent_ledger.debug_parallel_worker_wait = 0; SELECT 1');
	$s->quit;
	return (split /\n/, $out)[0];
}

###########################################################################
# 1. base table
###########################################################################

is(race('facts', 3, 'table'), '1,2,3|10000',
	'table: the workers decide subject 3 with the leader\'s horizon (fixed before the withdrawal)');
is($node->safe_psql($db, qq{$planner SET ROLE analyst; SET consent_ledger.purpose = 'research'; } . query('facts')),
	'1,2|0', 'table: the next statement has the withdrawal in force, leader and workers');

###########################################################################
# 2. purpose view
###########################################################################

$node->safe_psql($db, q{SELECT consent_ledger.grant_consent('3', 'research')});
is(race('facts_research', 3, 'view'), '1,2,3|10000',
	'view: the workers decide subject 3 with the leader\'s horizon');
is($node->safe_psql($db, qq{$planner SET ROLE analyst; SET consent_ledger.purpose = 'research'; } . query('facts_research')),
	'1,2|0', 'view: the next statement has the withdrawal in force');

# a parallel-safe function that reads a protected table, called in the
# workers: its own executor state decides with the leader's inputs too
$node->safe_psql($db, q{
	SELECT consent_ledger.grant_consent('3', 'research');
	CREATE FUNCTION public.people3() RETURNS bigint LANGUAGE plpgsql STABLE PARALLEL SAFE
		AS $$BEGIN RETURN (SELECT count(*) FROM public.people WHERE subject = 3); END$$;
});
is(race('facts', 3, 'function',
		q{SELECT a.leader || '|' || w.worker || '|' || w.fn FROM
		(SELECT string_agg(subject::text, ',' ORDER BY subject) AS leader FROM people WHERE random() >= 0) a
		CROSS JOIN (SELECT count(*) FILTER (WHERE subject = 3) AS worker,
			max(public.people3()) FILTER (WHERE x IN (3, 30000)) AS fn FROM facts) w}),
	'1,2,3|10000|1', 'function: a function run by the workers decides with the leader\'s horizon too');

###########################################################################
# 2b. one statement, one horizon (attack review rev1 F3): a check site set
#     up later in the same executor state (the second branch of a UNION
#     ALL, reached after a withdrawal committed) keeps the state's horizon
###########################################################################

$node->safe_psql($db, q{SELECT consent_ledger.grant_consent('3', 'research')});
{
	my $locker = $node->background_psql($db, on_error_stop => 0);
	$locker->query_safe('SELECT pg_advisory_lock(4242)');
	my $s = $node->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'analyst' ]);
	$s->query_safe(q{SET consent_ledger.purpose = 'research'; SET max_parallel_workers_per_gather = 0;});
	$s->{stdin} .= q{SELECT string_agg(b || ':' || coalesce(subject::text, '-'), ',' ORDER BY b) FROM (
		SELECT 'u1' AS b, subject FROM people WHERE subject = 3
		UNION ALL SELECT 'w', NULL FROM (SELECT pg_advisory_lock_shared(4242)) x
		UNION ALL SELECT 'u2', subject FROM people WHERE subject = 3) q;} . "\n";
	$s->{run}->pump_nb;
	ok( $node->poll_query_until($db, q{SELECT count(*) > 0 FROM pg_stat_activity
			WHERE usename = 'analyst' AND wait_event = 'advisory'}),
		'one statement: the analyst\'s statement waits between its two reads');
	$node->safe_psql($db, "SELECT consent_ledger.withdraw_consent('3', 'research')");
	$locker->query_safe('SELECT pg_advisory_unlock(4242)');
	my $out = $s->query_safe('SELECT 1');
	is((split /\n/, $out)[0], 'u1:3,u2:3,w:-',
		'one statement: subject 3 decided alike in both reads (one horizon per statement)');
	is($s->query_safe(q{SELECT count(*) FROM people WHERE subject = 3}), '0',
		'one statement: the next statement has the withdrawal in force');
	$s->quit;
	$locker->quit;
}

###########################################################################
# 3. nobody sets the leader's inputs
###########################################################################

my $v = '5:1:1:0:1';
my $refusal = qr/permission denied to set parameter "consent_ledger.parallel_inputs"|consent_ledger.parallel_inputs cannot be set/;
for my $sql (
	"SET consent_ledger.parallel_inputs = '$v'",
	"SELECT set_config('consent_ledger.parallel_inputs', '$v', false)",
	"SET LOCAL consent_ledger.parallel_inputs = '$v'",
	"ALTER ROLE analyst SET consent_ledger.parallel_inputs = '$v'",
	"CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET consent_ledger.parallel_inputs = '$v' AS 'SELECT 1'")
{
	my ($ret, $out, $err) = ('', '', '');
	$ret = $node->psql($db, "BEGIN; $sql; COMMIT;", stdout => \$out, stderr => \$err,
		extra_params => [ '-U', 'analyst' ]);
	like($err, $refusal, "plain role refused: $sql");
}
{
	my ($out, $err) = ('', '');
	$node->psql('owned', "ALTER DATABASE owned SET consent_ledger.parallel_inputs = '$v'",
		stdout => \$out, stderr => \$err, extra_params => [ '-U', 'downer' ]);
	like($err, $refusal, 'database owner refused: ALTER DATABASE SET');
}
{
	local $ENV{PGOPTIONS} = "-c consent_ledger.parallel_inputs=$v";
	my ($out, $err) = ('', '');
	my $ret = $node->psql($db, 'SELECT 1', stdout => \$out, stderr => \$err,
		extra_params => [ '-U', 'analyst' ]);
	isnt($ret, 0, 'plain role: a connection with PGOPTIONS setting it fails');
	like($err, $refusal, 'plain role refused: PGOPTIONS');
}
{
	my ($out, $err) = ('', '');
	$node->psql($db, "SET consent_ledger.debug_parallel_worker_wait = 10",
		stdout => \$out, stderr => \$err, extra_params => [ '-U', 'analyst' ]);
	like($err, qr/permission denied to set parameter "consent_ledger.debug_parallel_worker_wait"/,
		'plain role refused: the test-only worker wait');
}
# a superuser cannot set it either, nor give a role the right to
$node->safe_psql($db, 'GRANT SET ON PARAMETER consent_ledger.parallel_inputs TO analyst');
for my $who ([ 'analyst', 'after GRANT SET ON PARAMETER' ], [ $node->safe_psql($db, 'SELECT current_user'), 'superuser' ])
{
	my ($out, $err) = ('', '');
	$node->psql($db, "SET consent_ledger.parallel_inputs = '$v'", stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $who->[0] ]);
	like($err, qr/consent_ledger.parallel_inputs cannot be set/, "refused: $who->[1]");
}
{
	my ($out, $err) = ('', '');
	$node->psql($db, "ALTER ROLE analyst SET consent_ledger.parallel_inputs = '$v'", stdout => \$out, stderr => \$err);
	like($err, qr/consent_ledger.parallel_inputs cannot be set/, 'refused: superuser ALTER ROLE SET');
}
is($node->safe_psql($db, q{SELECT count(*) FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%parallel_inputs%'}),
	'0', 'no role or database setting of it was stored');
# the analyst still reads normally, in parallel
is($node->safe_psql($db, qq{$planner SET ROLE analyst; SET consent_ledger.purpose = 'research'; } . query('facts')),
	'1,2|0', 'the analyst reads in parallel as before');

$node->stop;
done_testing();
