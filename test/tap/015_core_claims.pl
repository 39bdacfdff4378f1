# Claims of the README that no other test proves (issue #18, item 3):
#
#  1. protect() warns, naming them, when roles bypass row-level security,
#     and says nothing when none does;
#  2. a purpose declared in the startup packet (options -c ...) or by
#     ALTER ROLE ... SET is in force, and recorded; a role not authorized
#     for it gets no rows either way;
#  3. a non-superuser BYPASSRLS role's reads are audited (rls_bypassed);
#  4. consent is enforced inside parallel workers: a plan with "Workers
#     Launched: 2" and the leader not participating returns exactly the
#     consented rows;
#  5. COPY ... TO by an RLS-bypassing role: its "started" record is
#     committed before the first row goes out (with the audit writer
#     stalled, the COPY waits and the client has received nothing), and it
#     records the purpose the executor path records for the same role;
#  6. old_row_hash of an UPDATE/DELETE record is the row_hash() of the row
#     as it was (and the new_row_hash of the change that wrote it);
#  7. a full audit ring: with the writer stalled and the ring filled by a
#     rollback, a read fails with 55P03 "timed out waiting for space in the
#     audit queue" and returns nothing; once the writer runs, reads work;
#  8. the 100 000-change itemization cap: rolling back 100 010 audited
#     changes itemizes 100 000 (written or counted lost in a gap record)
#     and a WARNING names the 10 that were not.

use strict;
use warnings;

use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $db = 'wh';
my $node = PostgreSQL::Test::Cluster->new('claims');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_worker_processes = 16
max_parallel_workers = 8
});
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $db");

# psql as another role, with extra environment; returns (status, stdout, stderr)
sub psql_as
{
	my ($role, $sql, %env) = @_;
	my ($out, $err) = ('', '');
	local %ENV = (%ENV, %env);
	my $ret = $node->psql($db, $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return ($ret, $out, $err);
}

$node->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research', 'medical research');
	CREATE ROLE analyst LOGIN;
	CREATE ROLE analyst2 LOGIN;
	CREATE ROLE stranger LOGIN;
	CREATE ROLE stranger2 LOGIN;
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	SELECT consent_ledger.authorize_purpose('analyst2', 'research');
	CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL, email text);
	INSERT INTO people SELECT g, (g - 1) % 5 + 1, 'p' || g || '@example.org' FROM generate_series(1, 10) g;
	SELECT consent_ledger.grant_consent(1, 'research');
	SELECT consent_ledger.grant_consent(2, 'research');
});

###########################################################################
# 1. protect()'s warning
###########################################################################

my ($ret, $out, $err) = psql_as('postgres', q{SELECT consent_ledger.protect('people', 'subject')});
is($ret, 0, 'protect: without bypassing roles protect() works');
unlike($err, qr/WARNING/, 'protect: ... and warns of nothing (the bootstrap superuser is not named)');

$node->safe_psql($db, q{
	CREATE ROLE bypasser LOGIN BYPASSRLS;
	CREATE ROLE root2 SUPERUSER;
	CREATE ROLE replicator LOGIN REPLICATION;
	CREATE TABLE people2 (id integer PRIMARY KEY, subject integer NOT NULL);
});
($ret, $out, $err) = psql_as('postgres', q{SELECT consent_ledger.protect('people2', 'subject')});
is($ret, 0, 'protect: with bypassing roles protect() works');
like($err, qr/WARNING:  roles bypasser, replicator, root2 bypass row-level security or replicate and can read "people2" without consent checks/,
	'protect: ... and warns, naming the BYPASSRLS role, the REPLICATION role and the other superuser');
like($err, qr/DETAIL:  .*roles with REPLICATION read every row, hidden ones included and unaudited, through logical decoding or a base backup\./,
	'protect: ... with a detail saying what REPLICATION roles can read');
like($err, qr/HINT:  Remove SUPERUSER, BYPASSRLS or REPLICATION from roles that must not read personal data without consent\./,
	'protect: ... with its hint');
$node->safe_psql($db, q{DROP ROLE root2; DROP ROLE replicator;
	GRANT SELECT ON people TO analyst, analyst2, stranger, stranger2, bypasser;});

my $consented = "1\n2\n6\n7";
my $rows_sql = q{SELECT id FROM people ORDER BY id};
my $record_sql = q{SELECT kind || '|' || operation || '|' || role_name || '|' || coalesce(purpose, '-') || '|'
	|| outcome || '|' || coalesce(rows_returned::text, '-') || '|' || coalesce(rls_bypassed::text, '-')
	FROM consent_ledger.audit_log WHERE application_name = '%s' AND outcome <> 'started' ORDER BY record_id};

###########################################################################
# 2. the purpose from startup options and from ALTER ROLE ... SET
###########################################################################

($ret, $out, $err) = psql_as('analyst', "SHOW consent_ledger.purpose; $rows_sql",
	PGOPTIONS => '-c consent_ledger.purpose=research', PGAPPNAME => 'startup_purpose');
is($ret, 0, 'startup options: the analyst connects with the purpose in its startup packet') or diag $err;
is($out, "research\n$consented", 'startup options: the purpose is in force: the consented rows');
is($node->safe_psql($db, sprintf($record_sql, 'startup_purpose')), 'read|SELECT|analyst|research|completed|4|false',
	'startup options: the read is recorded with that purpose');

($ret, $out, $err) = psql_as('stranger', $rows_sql,
	PGOPTIONS => '-c consent_ledger.purpose=research', PGAPPNAME => 'startup_stranger');
is($out, '', 'startup options: a role not authorized for the purpose gets no rows');
like($err, qr/ERROR:  role "stranger" is not authorized for purpose "research"/, '... but an error naming the purpose');

$node->safe_psql($db, q{ALTER ROLE analyst2 SET consent_ledger.purpose = 'research'});
($ret, $out, $err) = psql_as('analyst2', "SHOW consent_ledger.purpose; $rows_sql", PGAPPNAME => 'role_purpose');
is($ret, 0, 'ALTER ROLE SET: the analyst connects') or diag $err;
is($out, "research\n$consented", 'ALTER ROLE SET: the purpose is in force: the consented rows');
is($node->safe_psql($db, sprintf($record_sql, 'role_purpose')), 'read|SELECT|analyst2|research|completed|4|false',
	'ALTER ROLE SET: the read is recorded with that purpose');

$node->safe_psql($db, q{ALTER ROLE stranger2 SET consent_ledger.purpose = 'research'});
($ret, $out, $err) = psql_as('stranger2', $rows_sql, PGAPPNAME => 'role_stranger');
is($out, '', 'ALTER ROLE SET: a role not authorized for the purpose gets no rows');
like($err, qr/ERROR:  role "stranger2" is not authorized for purpose "research"/, '... but an error naming the purpose');

###########################################################################
# 3. a non-superuser BYPASSRLS role's reads are audited
###########################################################################

($ret, $out, $err) = psql_as('bypasser', $rows_sql, PGAPPNAME => 'bypass_read');
is($out, join("\n", 1 .. 10), 'BYPASSRLS: the role reads every row (row-level security does not apply)');
is($node->safe_psql($db, sprintf($record_sql, 'bypass_read')), 'read|SELECT|bypasser|-|completed|10|true',
	'BYPASSRLS: ... and the read is audited: role, 10 rows returned, rls_bypassed');

###########################################################################
# 4. parallel workers enforce consent
###########################################################################

$node->safe_psql($db, q{
	CREATE TABLE big (id integer PRIMARY KEY, subject integer NOT NULL, pad text);
	INSERT INTO big SELECT g, (g - 1) % 5 + 1, repeat('x', 200) FROM generate_series(1, 50000) g;
	SELECT consent_ledger.protect('big', 'subject');
	CREATE ROLE boss LOGIN IN ROLE consent_ledger_admin;
	SELECT consent_ledger.authorize_purpose('boss', 'research');
	GRANT SELECT ON big TO boss;
	ANALYZE big;
});
my $parallel = q{SET consent_ledger.purpose = 'research';
	SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
	SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;
};
($ret, $out, $err) = psql_as('boss', $parallel
	. q{EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM big;},
	PGAPPNAME => 'parallel_explain');
is($ret, 0, 'parallel: EXPLAIN ANALYZE by an administrator runs') or diag $err;
like($out, qr/Workers Launched: 2/, 'parallel: two workers were launched (the leader does not scan)')
  or diag $out;
like($out, qr/Parallel Seq Scan on big/, 'parallel: ... for a parallel scan of the protected table');
($ret, $out, $err) = psql_as('boss', $parallel . q{SELECT count(*), count(*) FILTER (WHERE subject NOT IN (1, 2)) FROM big;});
is($out, '20000|0', 'parallel: the workers return exactly the rows of consenting subjects 1 and 2, no other');

###########################################################################
# 5. COPY ... TO by an RLS-bypassing role
###########################################################################

my $started_sql = q{SELECT operation || '|' || coalesce(purpose, '-') || '|' || coalesce(rls_bypassed::text, '-')
	FROM consent_ledger.audit_log WHERE application_name = '%s' AND outcome = 'started' ORDER BY record_id};
my $locker = $node->background_psql($db, on_error_stop => 0);
$locker->query_safe('BEGIN; LOCK TABLE consent_ledger.audit_log IN SHARE MODE;');
my $copier = $node->background_psql($db, on_error_stop => 0);
$copier->query_safe(q{SET application_name = 'copier'; SET consent_ledger.purpose = 'research';});
$copier->{stdin} .= "COPY people TO STDOUT;\n\\echo COPY_RETURNED\n";
$copier->{run}->pump_nb;
ok(cl_wait_for($node, 'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
		WHERE application_name = 'copier' AND state = 'active' AND wait_event_type = 'Extension'}, 20),
	'COPY TO: with the audit writer stalled, the COPY waits for its started record');
usleep(300_000);
$copier->{run}->pump_nb;
unlike($copier->{stdout}, qr/example\.org|COPY_RETURNED/, 'COPY TO: ... and the client has received no row');
$locker->query_safe('COMMIT;');
ok(pump_until($copier->{run}, $copier->{timeout}, \$copier->{stdout}, qr/COPY_RETURNED/),
	'COPY TO: it completes once the record is written');
is(scalar(() = $copier->{stdout} =~ /\@example\.org/g), 10, 'COPY TO: ... sending all 10 rows');
is($node->safe_psql($db, sprintf($started_sql, 'copier')), 'COPY TO|research|true',
	'COPY TO: its started record, with the declared purpose');
is($node->safe_psql($db, sprintf($record_sql, 'copier')), 'read|COPY TO|postgres|research|completed|10|true',
	'COPY TO: and its outcome record');
$copier->quit;
$locker->quit;

# the same role's SELECT through the executor records the same purpose
is($node->safe_psql($db, q{SET application_name = 'su_select'; SET consent_ledger.purpose = 'research';
	SELECT count(*) FROM people;}), '10', 'executor path: the superuser reads every row');
is($node->safe_psql($db, sprintf($started_sql, 'su_select')), 'SELECT|research|true',
	'executor path: its started record has the same purpose as COPY TO\'s');
is($node->safe_psql($db, sprintf($record_sql, 'su_select')), 'read|SELECT|postgres|research|completed|1|true',
	'executor path: ... and so has its outcome record');

###########################################################################
# 6. old_row_hash
###########################################################################

$node->safe_psql($db, q{
	CREATE TABLE acct (id integer PRIMARY KEY, balance numeric NOT NULL, owner text);
	SELECT consent_ledger.audit('acct');
	INSERT INTO acct VALUES (1, 10.50, 'ann'), (2, 20, NULL);
	CREATE TABLE acct_before AS SELECT id, consent_ledger.row_hash('acct', a) AS h FROM acct a;
	UPDATE acct SET balance = balance + 1 WHERE id = 1;
	CREATE TABLE acct_mid AS SELECT id, consent_ledger.row_hash('acct', a) AS h FROM acct a;
	DELETE FROM acct WHERE id = 1;
});
my $hash_sql = q{SELECT string_agg(concat_ws('|', l.operation, l.row_key,
		CASE WHEN l.old_row_hash IS NULL THEN 'null' WHEN l.old_row_hash = b.h THEN 'before'
			 WHEN l.old_row_hash = m.h THEN 'mid' ELSE 'other' END,
		CASE WHEN l.new_row_hash IS NULL THEN 'null' WHEN l.new_row_hash = b.h THEN 'before'
			 WHEN l.new_row_hash = m.h THEN 'mid' ELSE 'other' END), ',' ORDER BY l.record_id)
	FROM consent_ledger.audit_log l
	LEFT JOIN acct_before b ON b.id = 1 LEFT JOIN acct_mid m ON m.id = 1
	WHERE l.relation = 'public.acct' AND l.row_key = '(id)=(1)'};
is($node->safe_psql($db, $hash_sql),
	'INSERT|(id)=(1)|null|before,UPDATE|(id)=(1)|before|mid,DELETE|(id)=(1)|mid|null',
	'old_row_hash: the UPDATE\'s is the row_hash() of the row before it, the DELETE\'s that of the row it deleted');
isnt($node->safe_psql($db, q{SELECT b.h = m.h FROM acct_before b, acct_mid m WHERE b.id = 1 AND m.id = 1}), 't',
	'old_row_hash: (the two versions of the row hash differently)');

###########################################################################
# 7. a full audit ring
###########################################################################

$node->safe_psql($db, q{
	CREATE TABLE ring (id integer PRIMARY KEY, v integer NOT NULL);
	INSERT INTO ring SELECT g, 0 FROM generate_series(1, 3000) g;
	SELECT consent_ledger.audit('ring');
});
$locker = $node->background_psql($db, on_error_stop => 0);
$locker->query_safe('BEGIN; LOCK TABLE consent_ledger.pending IN SHARE MODE;');
# the rollback fills the ring, waits for space (1 s at most here), and gives up
($ret, $out, $err) = psql_as('postgres', q{SET consent_ledger.seal_timeout = '1s';
	BEGIN; UPDATE ring SET v = v + 1; ROLLBACK;});
is($ret, 0, 'ring full: the rollback of 3000 audited changes completes');
like($err, qr/WARNING:.*audit records of a rolled-back transaction were not queued/,
	'ring full: ... with the writer stalled, not all its records fit in the ring');
($ret, $out, $err) = psql_as('analyst', q{SET consent_ledger.seal_timeout = '1s'; SET consent_ledger.purpose = 'research';
	SELECT id FROM people ORDER BY id;}, PGAPPNAME => 'ring_full_read');
like($err, qr/ERROR:  timed out waiting for space in the audit queue/,
	'ring full: a read waits for space in the ring, then fails');
is($out, '', 'ring full: ... and returns no row');
($ret, $out, $err) = psql_as('analyst', q{SET consent_ledger.seal_timeout = '1s'; SET consent_ledger.purpose = 'research';
	\set VERBOSITY verbose
	SELECT id FROM people ORDER BY id;});
like($err, qr/ERROR:  55P03:/, 'ring full: ... with SQLSTATE 55P03 (README "SQLSTATEs of timeouts")');
$locker->query_safe('COMMIT;');
$locker->quit;
ok(cl_wait_for($node, $db, q{SELECT count(*) > 0 FROM consent_ledger.audit_log WHERE kind = 'gap'}, 60),
	'ring full: once the writer runs it records the gap');
($ret, $out, $err) = psql_as('analyst', q{SET consent_ledger.purpose = 'research'; SELECT id FROM people ORDER BY id;});
is($out, $consented, 'ring full: ... and reads work again');

###########################################################################
# 8. the 100 000-change itemization cap
###########################################################################

my $gap_before = $node->safe_psql($db, q{SELECT coalesce(sum(rows_returned), 0) FROM consent_ledger.audit_log WHERE kind = 'gap'});
$node->safe_psql($db, q{
	CREATE TABLE many (id integer PRIMARY KEY, v integer NOT NULL);
	INSERT INTO many SELECT g, 0 FROM generate_series(1, 100010) g;
	SELECT consent_ledger.audit('many');
});
($ret, $out, $err) = psql_as('postgres', q{SET consent_ledger.seal_timeout = '10min';
	BEGIN; UPDATE many SET v = v + 1; ROLLBACK;});
is($ret, 0, 'cap: the rollback of 100 010 audited changes completes');
like($err, qr/WARNING:  10 rolled-back audited changes were not itemized in the audit ledger/,
	'cap: a WARNING names the 10 changes beyond the cap');
like($err, qr/DETAIL:  A transaction keeps at most 100000 change records for its rollback\./, 'cap: ... and the cap');
ok(cl_wait_for($node, $db, qq{SELECT (SELECT count(*) FROM consent_ledger.audit_log
		WHERE relation = 'public.many' AND outcome = 'rolled back')
	+ (SELECT coalesce(sum(rows_returned), 0) FROM consent_ledger.audit_log WHERE kind = 'gap') - $gap_before}, 120, '100000'),
	'cap: 100 000 rolled-back changes are itemized (written, or counted in a gap record)');
$node->safe_psql($db, 'SELECT consent_ledger.seal()');
my $v = cl_verify_row($node, $db, 'consent_ledger.audit_log');
ok($v->{valid} && $v->{pending} == 0, 'the audit ledger verifies') or diag $v->{problem};

$node->stop;
done_testing();
