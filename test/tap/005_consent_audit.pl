# Consent and audit under failure, across sessions, on a standby, through
# pg_dump / pg_restore and offline:
#
#  1. crash right after commit: every acknowledged audited UPDATE has its
#     change records (same xid, outcome "committed", hashes of the rows as
#     they are now) after an immediate stop and restart; what was pending
#     at the crash is sealed without seal(); every ledger verifies;
#  2. reads: an analyst's read in a READ ONLY transaction that is rolled
#     back is recorded with its role, purpose and row counts; the SELECT
#     does not return before its record is committed (shown by stalling the
#     audit writer), so an immediate stop right after it returned keeps it;
#  3. a withdrawal committed by one session is in force for the very next
#     statement of a long-lived analyst session, without reconnecting;
#  4. a streaming standby refuses protected reads (25006, superuser too),
#     answers has_consent(), verifies the consent and audit ledgers and
#     serves the primary's roots;
#  5. pg_dump -Fc / pg_restore (same server, and another server) brings back
#     the consent ledger, consent_state, the audit ledger, purposes,
#     authorizations, protected tables and purpose views, still enforcing
#     and still verifying, and honouring a receipt taken before the dump;
#  6. the audit ledger's export verifies offline against a receipt, and a
#     superuser's edit behind the extension's back is located by verify()
#     and makes the offline verifier fail.

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

my $node = PostgreSQL::Test::Cluster->new('audit_main');
$node->init(allows_streaming => 1);
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql('postgres', 'CREATE ROLE analyst LOGIN');

# A warehouse: t is audited (changes), people is protected (reads), and a
# purpose view over people.  Subjects 1..5 have two rows each; 1 and 2
# consent to "research".
$node->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research', 'medical research');
	SELECT consent_ledger.define_purpose('research.survey', 'surveys', parent => 'research');
	SELECT consent_ledger.define_purpose('billing', 'invoicing', 'contract');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');

	CREATE TABLE t (id integer PRIMARY KEY, sess integer NOT NULL, v integer NOT NULL, note text);
	INSERT INTO t SELECT s * 10 + k, s, 0, NULL FROM generate_series(1, 4) s, generate_series(1, 3) k;
	SELECT consent_ledger.audit('t');

	CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL, email text);
	INSERT INTO people SELECT g, (g - 1) % 5 + 1, 'p' || g || '@example.org' FROM generate_series(1, 10) g;
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO analyst;
	SELECT consent_ledger.create_purpose_view('people', 'research', 'public.people_research');
	GRANT SELECT ON people_research TO analyst;

	SELECT consent_ledger.grant_consent(1, 'research');
	SELECT consent_ledger.grant_consent(2, 'research');
	SELECT consent_ledger.grant_consent(5, 'billing');
});

# Runs a query in a BackgroundPsql session; returns (stdout, stderr) and
# clears the session's stderr (BackgroundPsql keeps it between queries).
sub bq
{
	my ($s, $sql) = @_;
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

# Stops a BackgroundPsql session whose server may be gone.
sub bq_kill
{
	my ($s) = @_;
	eval { $s->{run}->kill_kill; };
	return;
}

# psql logged in as another role; returns (exit status, stdout, stderr).
sub psql_as
{
	my ($n, $dbname, $role, $sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $n->psql($dbname, $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return ($ret, $out, $err);
}

# The analyst's view of a protected relation: distinct subjects, "1,3".
my $subjects_sql = q{SELECT string_agg(DISTINCT subject::text, ',') FROM %s};

###########################################################################
# 1. crash right after commit: audited UPDATEs from several sessions
###########################################################################

my $nsessions = 4;
my $max_txns = 5000;    # per session: far more than run before the crash
my %expect_records = (0 => 3, 1 => 2, 2 => 0, 3 => 1);    # by shape

sub txn_sql
{
	my ($s, $q) = @_;
	my $shape = $q % 4;
	my $xid = "SELECT 'XID $q ' || pg_current_xact_id();\n";
	if ($shape == 0)    # every row of the session
	{
		return "BEGIN;\nUPDATE t SET v = v + 1, note = 'a$q' WHERE sess = $s;\n$xid"
		  . "COMMIT;\n\\echo ACK $q\n";
	}
	elsif ($shape == 1)    # two statements, two rows
	{
		return "BEGIN;\nUPDATE t SET v = v + 1 WHERE id = ${s}1;\n"
		  . "UPDATE t SET note = 'b$q' WHERE id = ${s}2;\n$xid" . "COMMIT;\n\\echo ACK $q\n";
	}
	elsif ($shape == 2)    # rolled back
	{
		return "BEGIN;\nUPDATE t SET v = v + 100, note = 'rolled back' WHERE sess = $s;\n$xid" . "ROLLBACK;\n";
	}
	# a rolled-back savepoint inside a committed transaction
	return "BEGIN;\nUPDATE t SET v = v + 1 WHERE id = ${s}3;\nSAVEPOINT a;\n"
	  . "UPDATE t SET v = v + 1000, note = 'doomed' WHERE sess = $s;\nROLLBACK TO SAVEPOINT a;\n$xid"
	  . "COMMIT;\n\\echo ACK $q\n";
}

my $psql = $node->installed_command('psql');
my (@h, @out, @err);
for my $s (1 .. $nsessions)
{
	my $script = cl_write_file("$tmp/audit_session_$s.sql",
		join('', map { txn_sql($s, $_) } 1 .. $max_txns) . "\\echo DONE\n");
	($out[$s], $err[$s]) = ('', '');
	$h[$s] = IPC::Run::start(
		[ $psql, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db), '-f', $script ],
		'<', \undef, '>', \$out[$s], '2>', \$err[$s],
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

# Let every session commit a fair number of transactions, then hold the
# sealer off (a lock on consent_ledger.log, which every sealing round
# takes) so that committed change records are pending when the server
# crashes.
$node->poll_query_until($db,
	qq{SELECT count(*) = $nsessions FROM (SELECT sess FROM t GROUP BY sess HAVING min(v) >= 15) s})
  or die 'audited sessions made no progress';
my $locker = $node->background_psql($db, on_error_stop => 0);
bq($locker, 'BEGIN; LOCK TABLE consent_ledger.log IN SHARE MODE;');
$node->poll_query_until($db, 'SELECT count(*) >= 20 FROM consent_ledger.pending')
  or die 'no pending records accumulated';
$node->stop('immediate');
bq_kill($locker);

my (%xid, %acked);    # "s,q" -> xid; "s,q" -> 1
for my $s (1 .. $nsessions)
{
	eval { $h[$s]->finish; };
	foreach my $line (split /\n/, $out[$s])
	{
		$xid{"$s,$1"} = $2 if $line =~ /^XID (\d+) (\d+)$/;
		$acked{"$s,$1"} = 1 if $line =~ /^ACK (\d+)$/;
	}
	unlike($out[$s], qr/^DONE$/m, "crash: session $s was interrupted by the crash");
	cmp_ok(scalar(grep { /^$s,/ } keys %acked), '>=', 10,
		"crash: session $s had acknowledged commits before the crash");
}

$node->start;

my %records;    # xid -> committed change records of t
foreach my $line (split /\n/, $node->safe_psql($db, q{
	SELECT xid, count(*) FROM consent_ledger.audit_log
	WHERE kind = 'change' AND outcome = 'committed' AND relid = 't'::regclass GROUP BY xid}))
{
	my ($x, $n) = split /\|/, $line;
	$records{$x} = $n;
}
my ($missing, $wrong, $rolled_back_recorded, $rolled_back_seen) = (0, 0, 0, 0);
foreach my $key (sort keys %acked)
{
	my ($s, $q) = split /,/, $key;
	my $want = $expect_records{ $q % 4 };
	my $x = $xid{$key};
	if (!defined $x || !defined $records{$x})
	{
		$missing++;
		diag("acknowledged transaction $key (xid " . ($x // '?') . ') has no committed change record')
		  if $missing <= 5;
	}
	elsif ($records{$x} != $want)
	{
		$wrong++;
		diag("acknowledged transaction $key (xid $x) has $records{$x} committed change records, expected $want")
		  if $wrong <= 5;
	}
}
foreach my $key (keys %xid)
{
	my ($s, $q) = split /,/, $key;
	next unless $q % 4 == 2;
	$rolled_back_seen++;
	$rolled_back_recorded++ if defined $records{ $xid{$key} };
}
note(scalar(keys %acked) . ' acknowledged audited transactions, '
	  . scalar(keys %records) . ' transactions with committed change records');
is($missing, 0, 'crash: every acknowledged audited transaction has its change records (matched by xid)');
is($wrong, 0, 'crash: ... exactly one committed record per row it changed (none for a rolled-back savepoint)');
cmp_ok($rolled_back_seen, '>', 0, 'crash: some transactions were rolled back');
is($rolled_back_recorded, 0, 'crash: no record with outcome "committed" for a rolled-back transaction');
is($node->safe_psql($db, q{
	SELECT count(*) FROM consent_ledger.audit_log
	WHERE kind = 'change' AND outcome = 'committed' AND pg_xact_status(xid) IS DISTINCT FROM 'committed'}),
	'0', 'crash: every "committed" change record belongs to a committed transaction');
is($node->safe_psql($db, q{
	SELECT count(*) FROM consent_ledger.audit_log
	WHERE kind = 'change' AND relid = 't'::regclass AND outcome = 'committed'
	  AND (operation <> 'UPDATE' OR old_row_hash IS NULL OR new_row_hash IS NULL
		   OR row_key !~ '^\(id\)=\(\d+\)$')}),
	'0', 'crash: committed records are UPDATEs with row key and old and new row hashes');
# the latest committed record of each row hashes the row as it is now
is($node->safe_psql($db, q{
	SELECT count(*) FROM t
	WHERE consent_ledger.row_hash('t', t.*) IS DISTINCT FROM
		(SELECT a.new_row_hash FROM consent_ledger.audit_log a
		 WHERE a.kind = 'change' AND a.outcome = 'committed' AND a.relid = 't'::regclass
		   AND a.row_key = '(id)=(' || t.id || ')'
		 ORDER BY a.record_id DESC LIMIT 1)}),
	'0', 'crash: each row\'s latest committed record has new_row_hash = row_hash() of the current row');
is($node->safe_psql($db, q{SELECT count(*) FROM t WHERE note IN ('doomed', 'rolled back')}), '0',
	'crash: no change of a rolled-back transaction or savepoint is in the table');

# What the crash left pending is sealed by the sealer, unasked.
ok(cl_wait_for($node, $db, q{SELECT pending = 0 AND "rows" = (SELECT count(*) FROM consent_ledger.audit_log)
		FROM consent_ledger.verify('consent_ledger.audit_log')}, 15),
	'crash: the audit ledger\'s pending records are sealed after restart without seal()');
$node->safe_psql($db, 'SELECT consent_ledger.seal()');

# Every ledger of the database verifies.
sub all_valid
{
	my ($n, $dbname, $label, $expect_ledgers) = @_;
	my $r = $n->safe_psql($dbname, q{
		SELECT count(*), count(*) FILTER (WHERE valid), count(*) FILTER (WHERE pending = 0),
			coalesce(string_agg(relation::text || ': ' || problem, '; ') FILTER (WHERE NOT valid), '')
		FROM consent_ledger.verify()});
	my ($n_all, $n_valid, $n_sealed, $problems) = split /\|/, $r, 4;
	is($n_all, $expect_ledgers, "$label: verify() covers $expect_ledgers ledgers");
	is($n_valid, $n_all, "$label: verify() valid for every ledger") or diag $problems;
	return;
}
all_valid($node, $db, 'crash, after seal()', 2);

###########################################################################
# 2. reads: recorded, and committed before the SELECT returns
###########################################################################

my $read_record_sql = q{
	SELECT kind || '|' || operation || '|' || relation || '|' || session_user_name || '|' || role_name
		|| '|' || coalesce(purpose, '-') || '|' || outcome || '|' || rows_returned || '|' || rows_withheld
		|| '|' || rls_bypassed || '|' || (xid IS NULL)
	FROM consent_ledger.audit_log WHERE application_name = '%s' AND outcome <> 'started' ORDER BY record_id};
my $expected_read = 'read|SELECT|public.people|analyst|analyst|research|completed|4|6|false|true';
# the record committed before the first row can be returned
my $started_record_sql = q{
	SELECT kind || '|' || operation || '|' || relation || '|' || role_name || '|' || coalesce(purpose, '-')
	FROM consent_ledger.audit_log WHERE application_name = '%s' AND outcome = 'started' ORDER BY record_id};
my $expected_started = 'read|SELECT|public.people|analyst|research';

my $reader = $node->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'analyst' ]);
my ($o, $e) = bq($reader, q{SET application_name = 'reader_ro'; SET consent_ledger.purpose = 'research';
	BEGIN READ ONLY;
	SELECT id FROM people ORDER BY id;
	ROLLBACK;});
is($o, "1\n2\n6\n7", 'read: the analyst sees the rows of consenting subjects 1 and 2');
is($e, '', 'read: no error');
is($node->safe_psql($db, sprintf($read_record_sql, 'reader_ro')), $expected_read,
	'read: READ ONLY transaction rolled back, yet one read record with role, purpose, 4 rows returned, 6 withheld');

is($node->safe_psql($db, sprintf($started_record_sql, 'reader_ro')), $expected_started,
	'read: ... preceded by its "started" record');

# A cursor declared before the writer stalls: its "started" record is
# committed at DECLARE, before any FETCH can return a row.
my $cursor = $node->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'analyst' ]);
bq($cursor, q{SET application_name = 'reader_cursor'; SET consent_ledger.purpose = 'research'; BEGIN READ ONLY;
	DECLARE c CURSOR FOR SELECT id FROM people ORDER BY id;});

# Stall the audit writer (the sealer) with a lock on the audit ledger: the
# analyst's SELECT must not return while its record cannot be written.
$locker = $node->background_psql($db, on_error_stop => 0);
bq($locker, 'BEGIN; LOCK TABLE consent_ledger.audit_log IN SHARE MODE;');

bq($reader, q{SET application_name = 'reader_crash'; BEGIN READ ONLY;});
$reader->{stdin} .= "SELECT id FROM people ORDER BY id;\n\\echo SELECT_RETURNED\n";
$reader->{run}->pump_nb;
ok(cl_wait_for($node, 'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE application_name = 'reader_crash' AND state = 'active' AND wait_event_type = 'Extension'}, 10),
	'read: the SELECT waits (wait event "Extension") while its audit record cannot be written');
usleep(500_000);
$reader->{run}->pump_nb;
unlike($reader->{stdout}, qr/SELECT_RETURNED/, 'read: ... and has returned nothing');

my ($fetched) = bq($cursor, 'FETCH 2 FROM c;');
is($fetched, "1\n2", 'read: meanwhile a cursor FETCH returns rows to an analyst');

bq($locker, 'COMMIT;');
ok(pump_until($reader->{run}, $reader->{timeout}, \$reader->{stdout}, qr/SELECT_RETURNED/),
	'read: the SELECT returns once the writer can commit the record');
# crash at once, the analyst's transaction still open
$node->stop('immediate');
like($reader->{stdout}, qr/^1\n2\n6\n7\nSELECT_RETURNED/, 'read: the SELECT returned the consented rows');
bq_kill($_) foreach ($reader, $cursor, $locker);
$node->start;

is($node->safe_psql($db, sprintf($started_record_sql, 'reader_crash')), $expected_started,
	'read: after an immediate stop right after the SELECT returned, its read record is there');
is($node->safe_psql($db, sprintf($started_record_sql, 'reader_cursor')), $expected_started,
	'read: rows returned by a cursor FETCH before a crash are recorded');

###########################################################################
# 3. a withdrawal is in force for the next statement of another session
###########################################################################

my $analyst = $node->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'analyst' ]);
my $backend = (bq($analyst, q{SET consent_ledger.purpose = 'research'; SELECT pg_backend_pid();}))[0];
is((bq($analyst, sprintf($subjects_sql, 'people')))[0], '1,2', 'withdrawal: the analyst sees subjects 1 and 2');
is((bq($analyst, sprintf($subjects_sql, 'people_research')))[0], '1,2',
	'withdrawal: ... also through the purpose view');
# a transaction that starts before the withdrawal
bq($analyst, 'BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;');

$node->safe_psql($db, q{SELECT consent_ledger.withdraw_consent(2, 'research')});
($o, $e) = bq($analyst, sprintf($subjects_sql, 'people'));
is($o, '1', 'withdrawal: the analyst\'s next statement no longer sees subject 2 (in an older REPEATABLE READ transaction)');
is($e, '', 'withdrawal: no error');
bq($analyst, 'COMMIT;');
is((bq($analyst, sprintf($subjects_sql, 'people')))[0], '1', 'withdrawal: nor after that transaction');
is((bq($analyst, sprintf($subjects_sql, 'people_research')))[0], '1',
	'withdrawal: nor through the purpose view');
is((bq($analyst, 'SELECT pg_backend_pid();'))[0], $backend, 'withdrawal: the same backend all along (no reconnect)');

$node->safe_psql($db, q{SELECT consent_ledger.grant_consent(3, 'research')});
is((bq($analyst, sprintf($subjects_sql, 'people')))[0], '1,3', 'withdrawal: a new grant is seen by the next statement');
is((bq($analyst, sprintf($subjects_sql, 'people_research')))[0], '1,3', 'withdrawal: ... through the view too');
$analyst->quit;

is($node->safe_psql($db, q{SELECT consent_ledger.has_consent(1, 'research'), consent_ledger.has_consent(2, 'research'),
		consent_ledger.has_consent(3, 'research.survey')}),
	't|f|t', 'has_consent() agrees: 1 yes, 2 withdrawn, 3 yes (and for a child purpose)');

###########################################################################
# 4. streaming standby
###########################################################################

$node->safe_psql($db, 'SELECT consent_ledger.seal()');
$node->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('audit_standby');
$standby->init_from_backup($node, 'bkp', has_streaming => 1);
chmod(0600, $standby->data_dir . '/consent_ledger/signing.key');    # see 003_standby.pl
$standby->start;
# activity after the backup arrives by streaming
$node->safe_psql($db, q{UPDATE t SET v = v + 1 WHERE id = 11});
psql_as($node, $db, 'analyst', q{SET consent_ledger.purpose = 'research'; SELECT count(*) FROM people});
$node->safe_psql($db, 'SELECT consent_ledger.seal()');
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));

my ($ret, $stdout, $stderr);
foreach my $try (
	[ 'analyst', 'people', q{SET consent_ledger.purpose = 'research'; SELECT count(*) FROM people;} ],
	[ 'analyst', 'the purpose view', q{SELECT count(*) FROM people_research;} ],
	[ 'postgres', 'people', q{SELECT count(*) FROM people;} ])
{
	my ($role, $what, $sql) = @$try;
	($ret, $stdout, $stderr) = psql_as($standby, $db, $role, "\\set VERBOSITY verbose\n$sql");
	isnt($ret, 0, "standby: $role reading $what fails");
	like($stderr, qr/ERROR:\s+25006: cannot read consent-protected data on a standby/,
		"standby: ... with SQLSTATE 25006");
}
is($standby->safe_psql($db, q{SELECT consent_ledger.has_consent(1, 'research'), consent_ledger.has_consent(2, 'research'),
		consent_ledger.has_consent(4, 'research'), consent_ledger.has_consent(9, 'billing')}),
	't|f|f|t', 'standby: has_consent() works (granted, withdrawn, never asked, not consent-based)');
foreach my $rel ('consent_ledger.consent_events', 'consent_ledger.audit_log')
{
	my $sv = cl_verify_row($standby, $db, $rel);
	ok($sv->{valid}, "standby: verify('$rel') valid") or diag $sv->{problem};
	my $pv = cl_verify_row($node, $db, $rel);
	is("$sv->{rows}/$sv->{pending}", "$pv->{rows}/$pv->{pending}", "standby: $rel has the primary's rows");
	my $cp_sql = qq{SELECT c->>'tree_size', c->>'root_hash' FROM consent_ledger.checkpoint('$rel') c};
	my ($psize, $proot) = split /\|/, $node->safe_psql($db, $cp_sql);
	cmp_ok($psize, '>', 0, "primary: $rel has a non-empty checkpoint");
	is($standby->safe_psql($db, qq{
		SELECT encode(k.root, 'base64') FROM consent_ledger.checkpoints k
		JOIN consent_ledger.ledgers l USING (ledger_id)
		WHERE l.relid = '$rel'::regclass AND k.tree_size = $psize ORDER BY k.seq DESC LIMIT 1}),
		$proot, "standby: $rel root at tree size $psize equals the primary's");
	is($standby->safe_psql($db, $cp_sql), "$psize|$proot", "standby: latest checkpoint of $rel is the primary's");
}
$standby->stop;

###########################################################################
# 5. pg_dump -Fc / pg_restore
###########################################################################

$node->safe_psql($db, 'SELECT consent_ledger.seal()');
my %source = (
	consent_events => q{SELECT e::text FROM consent_ledger.consent_events e ORDER BY event_id},
	consent_state => q{SELECT s::text FROM consent_ledger.consent_state s ORDER BY subject, purpose},
	audit_log => q{SELECT a::text FROM consent_ledger.audit_log a ORDER BY record_id},
	purposes => q{SELECT purpose || ':' || legal_basis || ':' || coalesce(parent, '') FROM consent_ledger.purposes ORDER BY 1},
	purpose_grants => q{SELECT role::text || ':' || purpose FROM consent_ledger.purpose_grants ORDER BY 1},
	protected => q{SELECT relid::text || ':' || subject_column FROM consent_ledger.protected ORDER BY 1},
	purpose_views => q{SELECT view::text || ':' || relid::text || ':' || purpose FROM consent_ledger.purpose_views ORDER BY 1},
	audited => q{SELECT relid::text FROM consent_ledger.audited ORDER BY 1},
	policies => q{SELECT polname || ':' || polpermissive || ':' || polcmd::text || ':' || coalesce(pg_get_expr(polqual, polrelid), '')
		FROM pg_policy WHERE polrelid = 'people'::regclass ORDER BY polname},
	rls => q{SELECT relrowsecurity::text || relforcerowsecurity::text FROM pg_class WHERE oid = 'people'::regclass},
	triggers => q{SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger
		WHERE tgrelid IN ('t'::regclass, 'consent_ledger.consent_events'::regclass, 'consent_ledger.audit_log'::regclass)},
	view_columns => q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'people_research'::regclass});
my %want;
$want{$_} = $node->safe_psql($db, $source{$_}) foreach keys %source;
cmp_ok(scalar(split /\n/, $want{consent_events}), '==', 5, 'source: five consent events');
cmp_ok(scalar(split /\n/, $want{policies}), '==', 4, 'source: protect() made four policies');
my $receipt = $node->safe_psql($db, q{SELECT consent_ledger.checkpoint('consent_ledger.consent_events')});
like($receipt, qr/"tree_size": 5\b/, 'source: receipt of the consent ledger covers the five events');

my $dump = "$tmp/wh.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr($db) ], 'pg_dump -Fc');

sub restore_and_check
{
	my ($n, $target, $label) = @_;
	$n->safe_psql('postgres', "CREATE DATABASE $target TEMPLATE template0");
	my ($ro, $re) = ('', '');
	IPC::Run::run([ $n->installed_command('pg_restore'), '-d', $n->connstr($target), $dump ],
		'>', \$ro, '2>', \$re);
	is($? >> 8, 0, "$label: pg_restore exits 0");
	is($re, '', "$label: pg_restore reports no error") or diag $re;

	foreach my $what (sort keys %source)
	{
		my ($r, $got, $gerr) = ('', '', '');
		$r = $n->psql($target, $source{$what}, stdout => \$got, stderr => \$gerr);
		is($got, $want{$what}, "$label: $what comes back") or diag $gerr;
	}
	all_valid($n, $target, $label, 2);
	is($n->safe_psql($target, qq{SELECT consent_ledger.verify_checkpoint('$receipt')}), 't',
		"$label: verify_checkpoint() of the consent ledger's receipt taken before the dump");

	my $enforce = sub {
		my ($expect, $what) = @_;
		my ($r1, $o1, $e1) = psql_as($n, $target, 'analyst',
			q{SET consent_ledger.purpose = 'research'; SELECT string_agg(id::text, ',' ORDER BY id) FROM people;});
		is($o1, $expect->[0], "$label: $what: the analyst sees exactly the consented rows, with a purpose")
		  or diag $e1;
		my ($r2, $o2, $e2) = psql_as($n, $target, 'analyst',
			q{SELECT string_agg(id::text, ',' ORDER BY id) FROM people_research;});
		is($o2, $expect->[0], "$label: $what: ... and through the purpose view") or diag $e2;
		my ($r3, $o3, $e3) = psql_as($n, $target, 'analyst', q{SELECT count(*) FROM people;});
		like($e3, qr/no purpose declared for reading a consent-protected table/,
			"$label: $what: without a purpose the analyst's read is refused");
	};
	my $before = $n->safe_psql($target, 'SELECT max(record_id) FROM consent_ledger.audit_log');
	$enforce->([ '1,3,6,8' ], 'after restore');
	is($n->safe_psql($target, qq{SELECT string_agg(relation || ':' || purpose || ':' || rows_returned || ':' || rows_withheld, ',' ORDER BY relation)
		FROM consent_ledger.audit_log WHERE kind = 'read' AND role_name = 'analyst' AND outcome = 'completed'
		  AND record_id > $before}),
		'public.people:research:1:6,public.people_research:research:1:6',
		"$label: the analyst's reads after the restore are recorded");

	$n->safe_psql($target, q{SELECT consent_ledger.grant_consent(4, 'research')});
	is($n->safe_psql($target, q{SELECT consent_ledger.has_consent(4, 'research')}), 't',
		"$label: a grant recorded after the restore counts");
	$enforce->([ '1,3,4,6,8,9' ], 'after a new grant');

	# auditing goes on too
	$n->safe_psql($target, q{UPDATE t SET note = 'after restore' WHERE id = 12});
	is($n->safe_psql($target, q{
		SELECT count(*) FROM consent_ledger.audit_log a, t
		WHERE a.kind = 'change' AND a.row_key = '(id)=(12)' AND t.id = 12
		  AND a.new_row_hash = consent_ledger.row_hash('t', t.*)}),
		'1', "$label: a change to the audited table after the restore is recorded");
	$n->safe_psql($target, 'SELECT consent_ledger.seal()');
	all_valid($n, $target, "$label, after new rows", 2);
	is($n->safe_psql($target, qq{SELECT consent_ledger.verify_checkpoint('$receipt')}), 't',
		"$label: the receipt still verifies after new rows");
	return;
}

restore_and_check($node, 'wh_restored', 'restore, same server');

my $node2 = PostgreSQL::Test::Cluster->new('audit_restore2');
$node2->init;
# another server, another key: the first server's key endorses it (README
# "Keys"); without, verify() reports an unendorsed key rotation
$node2->append_conf('postgresql.conf',
	"consent_ledger.previous_signing_key_file = '" . abs_path($node->data_dir) . "/consent_ledger/signing.key'");
$node2->start;
$node2->safe_psql('postgres', 'CREATE ROLE analyst LOGIN');
restore_and_check($node2, 'wh2', 'restore, second server');
$node2->stop;

###########################################################################
# 6. offline verification of the audit ledger, and a tampering superuser
###########################################################################

$node->safe_psql($db, 'SELECT consent_ledger.seal()');
my $pk = $node->safe_psql($db, 'SELECT consent_ledger.public_key()');
my $audit_receipt = $node->safe_psql($db, q{SELECT consent_ledger.checkpoint('consent_ledger.audit_log')});
my $receipt_file = cl_write_file("$tmp/audit_receipt.json", $audit_receipt);
my ($asize) = $audit_receipt =~ /"tree_size": (\d+)/;
my $export = cl_export_to_file($node, $db, 'consent_ledger.audit_log', "$tmp/audit.export");
my ($rc, $vout) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file, $export);
is($rc, 0, 'offline: the audit ledger\'s export verifies against the public key and the receipt');
like($vout, qr/\AOK: .* $asize leaves/, "offline: ... all $asize sealed records");

# The leaf of one record (the analyst's read that survived the crash),
# from the log's (transaction, ordinal) -> position map.
my ($victim, $leaf) = split /\|/, $node->safe_psql($db, q{
	WITH l AS (
		SELECT lg.first_leaf, u.txn, u.first_ord, u.cnt,
			sum(u.cnt) OVER (PARTITION BY lg.first_leaf ORDER BY u.i) - u.cnt AS off
		FROM consent_ledger.log lg JOIN consent_ledger.ledgers d USING (ledger_id),
			unnest(lg.txns, lg.first_ords, lg.counts) WITH ORDINALITY u(txn, first_ord, cnt, i)
		WHERE d.relid = 'consent_ledger.audit_log'::regclass)
	SELECT r.record_id, l.first_leaf + l.off + (r.ledger_ord - l.first_ord)
	FROM consent_ledger.audit_log r
	JOIN l ON l.txn = r.ledger_txn AND r.ledger_ord >= l.first_ord AND r.ledger_ord < l.first_ord + l.cnt
	WHERE r.application_name = 'reader_crash' AND r.outcome = 'started'});
ok(defined $leaf && $leaf =~ /^\d+$/ && $leaf < $asize, "tamper: the record to alter is sealed, at leaf $leaf");

$node->safe_psql($db, qq{
	UPDATE pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'consent_ledger.audit_log'::regclass;
	ALTER TABLE consent_ledger.audit_log SET (fillfactor = 100);
	UPDATE consent_ledger.audit_log SET rows_returned = 0, role_name = 'nobody' WHERE record_id = $victim;
	UPDATE pg_trigger SET tgenabled = 'A' WHERE tgrelid = 'consent_ledger.audit_log'::regclass;
	ALTER TABLE consent_ledger.audit_log SET (fillfactor = 100);
});
is($node->safe_psql($db, qq{SELECT role_name FROM consent_ledger.audit_log WHERE record_id = $victim}),
	'nobody', 'tamper: the superuser changed the record');
my $tv = cl_verify_row($node, $db, 'consent_ledger.audit_log');
ok(!$tv->{valid}, 'tamper: verify() of the audit ledger is no longer valid');
like($tv->{problem}, qr/^changed at leaf $leaf\b/, "tamper: verify() reports \"changed at leaf $leaf\"");
is($node->safe_psql($db, qq{SELECT consent_ledger.verify_checkpoint('$audit_receipt')}), 'f',
	'tamper: verify_checkpoint() of the stored receipt is false');

my ($erc, $eout, $eerr) = ('', '', '');
$erc = $node->psql($db, q{SELECT consent_ledger.export('consent_ledger.audit_log')},
	stdout => \$eout, stderr => \$eerr);
if ($erc == 0)
{
	my $export2 = cl_write_file("$tmp/audit.tampered.export", "$eout\n");
	($rc, $vout) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file, $export2);
	is($rc, 1, 'offline: the export after tampering fails against the stored receipt (exit 1)');
	like($vout, qr/\AFAIL: /, 'offline: ... printing FAIL');
}
else
{
	fail('offline: the audit ledger can still be exported after tampering');
	diag $eerr;
}

$node->stop;
done_testing();
