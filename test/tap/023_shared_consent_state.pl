# The consent state held once per server in shared memory (issue #12 item
# 1, README "Consent state in shared memory").
#
#  1. Two databases with the extension and different consent for the same
#     subjects (an integer subject, its canonical text form, a text
#     subject): each database answers from its own state.
#  2. A new session's private memory does not grow with the number of
#     subjects: a protected read over 100 000 subjects grows the backend's
#     memory contexts by less than 8 MiB (the per-backend cache of 1.2
#     grew by 24.5 MiB here).
#  3. Crash (immediate stop) and restart: the shared state starts empty
#     and is rebuilt from the consent ledger by the first protected read;
#     a withdrawal committed just before the crash is in force.
#  4. DROP EXTENSION and CREATE EXTENSION again: the new incarnation's
#     consent only; the old one's states are released.
#  5. Full: a server started with consent_ledger.max_consent_states = 16
#     refuses protected reads (53200, the numbers, a hint naming the
#     setting) once a 17th state is needed, never showing a row; recording
#     consent keeps working; after a restart with room, reads work again.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $node = PostgreSQL::Test::Cluster->new('shared_state');
$node->init;
$node->append_conf('postgresql.conf', "consent_ledger.seal_timeout = '20s'");
$node->start;
$node->safe_psql('postgres', 'CREATE ROLE analyst LOGIN; CREATE DATABASE db1; CREATE DATABASE db2');

sub setup_db
{
	my ($db) = @_;
	$node->safe_psql($db, q{
		CREATE EXTENSION consent_ledger;
		SELECT consent_ledger.define_purpose('research');
		SELECT consent_ledger.authorize_purpose('analyst', 'research');
		CREATE TABLE t_int (id int PRIMARY KEY, subject bigint, amount int);
		INSERT INTO t_int VALUES (1, 42, 10), (2, 43, 20), (3, 44, 30);
		CREATE TABLE t_text (id int PRIMARY KEY, subject text);
		INSERT INTO t_text VALUES (1, 'alice'), (2, 'bob'), (3, '42');
		GRANT SELECT ON t_int, t_text TO analyst;
		SELECT consent_ledger.protect('t_int', 'subject');
		SELECT consent_ledger.protect('t_text', 'subject');
	});
}

sub read_as_analyst
{
	my ($db, $n) = @_;
	$n //= $node;
	return $n->safe_psql($db, q{
		SET ROLE analyst; SET consent_ledger.purpose = 'research';
		SELECT coalesce(string_agg(subject::text, ',' ORDER BY id), '-') FROM t_int;
		SELECT coalesce(string_agg(subject, ',' ORDER BY id), '-') FROM t_text;
	});
}

# 1. two databases, different consent for the same subjects
setup_db('db1');
setup_db('db2');
$node->safe_psql('db1', q{
	SELECT consent_ledger.grant_consent(42, 'research');
	SELECT consent_ledger.grant_consent('alice', 'research');
	SELECT consent_ledger.withdraw_consent(43, 'research');
});
$node->safe_psql('db2', q{
	SELECT consent_ledger.withdraw_consent('42', 'research');
	SELECT consent_ledger.grant_consent(43, 'research');
	SELECT consent_ledger.grant_consent('bob', 'research');
});
is(read_as_analyst('db1'), "42\nalice,42", 'db1: its own consent (42 as integer and as text, alice)');
is(read_as_analyst('db2'), "43\nbob", 'db2: its own consent for the same subjects (42 withdrawn there)');
is($node->safe_psql('db1', 'SELECT states_this_database, states_in_use, entry_bytes FROM consent_ledger.consent_state_usage()'),
	'3|6|48', 'three states per database, six on the server, 48-byte entries');

# 2. a new session's memory does not grow with the number of subjects
$node->safe_psql('db1', q{
	CREATE TABLE t_big (id int PRIMARY KEY, subject bigint, amount int);
	INSERT INTO t_big SELECT g, g, g % 100 FROM generate_series(1, 100000) g;
	GRANT SELECT ON t_big TO analyst;
	SELECT consent_ledger.protect('t_big', 'subject');
	SELECT count(consent_ledger.grant_consent(g, 'research')) FROM generate_series(1, 100000) g WHERE g % 10 <> 0;
});
# load the shared state once (as any first user after a start would); then
# a new session: its memory before its first protected read (after the same
# read as a superuser, which row-level security does not apply to, so that
# catalog caches are loaded) and after it
is($node->safe_psql('db1', q{SET ROLE analyst; SET consent_ledger.purpose = 'research'; SELECT count(*) FROM t_big}),
	'90000', 'protected read over 100 000 subjects: 90 000 consented rows');
my $growth = $node->safe_psql('db1', q{
	SET consent_ledger.purpose = 'research';
	SELECT count(*), sum(amount) FROM t_big \g /dev/null
	SELECT sum(total_bytes) AS before FROM pg_backend_memory_contexts \gset
	SET ROLE analyst;
	SELECT count(*), sum(amount) FROM t_big \g /dev/null
	RESET ROLE;
	SELECT sum(total_bytes) - :before FROM pg_backend_memory_contexts;
});
note("backend memory growth over a protected read of 100 000 subjects: $growth bytes");
cmp_ok($growth, '<', 8 * 1024 * 1024, 'a new session grows by less than 8 MiB over 100 000 subjects');
cmp_ok($node->safe_psql('db1', 'SELECT states_this_database FROM consent_ledger.consent_state_usage()'),
	'>=', 90000, 'the states are in shared memory');

# 3. crash and restart: rebuilt from the ledger; a withdrawal committed
# just before the crash is in force
$node->safe_psql('db1', q{SELECT consent_ledger.withdraw_consent('alice', 'research')});
$node->stop('immediate');
$node->start;
is($node->safe_psql('db1', 'SELECT states_in_use FROM consent_ledger.consent_state_usage()'), '0',
	'after a crash the shared state starts empty');
is(read_as_analyst('db1'), "42,43,44\n42", 'db1 after the crash: rebuilt from the ledger, the withdrawal of alice in force');
is(read_as_analyst('db2'), "43\nbob", 'db2 after the crash');
is($node->safe_psql('db1', q{SET ROLE analyst; SET consent_ledger.purpose = 'research'; SELECT count(*) FROM t_big}),
	'90000', 'the 100 000 subjects are back');

# 4. DROP EXTENSION and CREATE EXTENSION again in db2
$node->safe_psql('db2', q{
	DROP TABLE t_int, t_text;
	SELECT consent_ledger.retire_ledger('consent_ledger.consent_events');
	SELECT consent_ledger.retire_ledger('consent_ledger.audit_log');
	DROP EXTENSION consent_ledger CASCADE;
});
setup_db('db2');
$node->safe_psql('db2', q{SELECT consent_ledger.grant_consent(44, 'research')});
is(read_as_analyst('db2'), "44\n-", 'db2 re-created: only the new incarnation\'s consent (old grants of 43 and bob gone)');
is($node->safe_psql('db2', 'SELECT states_this_database FROM consent_ledger.consent_state_usage()'), '1',
	'the old incarnation\'s states are released');
is(read_as_analyst('db1'), "42,43,44\n42", 'db1 unaffected');

# 5. full: fail closed
my $small = PostgreSQL::Test::Cluster->new('small_state');
$small->init;
$small->append_conf('postgresql.conf', "consent_ledger.max_consent_states = 16\nconsent_ledger.seal_timeout = '20s'");
$small->start;
$small->safe_psql('postgres', q{
	CREATE ROLE analyst LOGIN;
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	CREATE TABLE t_int (id int PRIMARY KEY, subject bigint, amount int);
	INSERT INTO t_int SELECT g, g, g FROM generate_series(1, 20) g;
	GRANT SELECT ON t_int TO analyst;
	SELECT consent_ledger.protect('t_int', 'subject');
	SELECT count(consent_ledger.grant_consent(g, 'research')) FROM generate_series(1, 16) g;
});
is($small->safe_psql('postgres', q{SET ROLE analyst; SET consent_ledger.purpose = 'research'; SELECT count(*) FROM t_int}),
	'16', '16 states fit');
$small->safe_psql('postgres', q{SELECT consent_ledger.withdraw_consent(3, 'research'); SELECT consent_ledger.grant_consent(17, 'research')});
my ($ret, $out, $err) = $small->psql('postgres', qq{\\set VERBOSITY verbose\nSET ROLE analyst;\nSET consent_ledger.purpose = 'research';\nSELECT count(*) FROM t_int});
isnt($ret, 0, 'a protected read fails when the state is full');
is($out, '', '... showing no row');
like($err, qr/ERROR:  53200: the shared consent state is full/, '... with SQLSTATE 53200');
like($err, qr/DETAIL:  All 16 consent states .* the event with id \d+ could not be applied/, '... the numbers in the detail');
like($err, qr/HINT:  Raise consent_ledger\.max_consent_states/, '... and a hint naming the setting');
is($small->safe_psql('postgres', q{SELECT consent_ledger.grant_consent(18, 'research') > 0}), 't',
	'recording consent still works');
is($small->safe_psql('postgres', q{SELECT consent_ledger.has_consent('3', 'research')}), 'f',
	'the ledger has the withdrawal the full state could not take');
$small->stop;
$small->append_conf('postgresql.conf', 'consent_ledger.max_consent_states = 64');
$small->start;
is($small->safe_psql('postgres', q{SET ROLE analyst; SET consent_ledger.purpose = 'research'; SELECT string_agg(subject::text, ',' ORDER BY id) FROM t_int}),
	'1,2,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18', 'with room after a restart: every event in force (3 withdrawn, 17 and 18 granted)');
$small->stop;

$node->stop;
done_testing();
