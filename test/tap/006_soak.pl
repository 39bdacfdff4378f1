# Soak: many concurrent sessions for SOAK_SECONDS (default 60) through a
# backend killed with SIGKILL (the postmaster then restarts every backend)
# and an immediate stop, then the invariants:
#
#  - every acknowledged commit into the two ledgers is present, every
#    transaction all-or-nothing, no row of a rolled-back transaction or
#    savepoint anywhere;
#  - after seal(), verify(NULL) is valid for every ledger (the two user
#    ledgers, the consent ledger and the audit ledger) with nothing pending;
#  - every ledger's checkpoint chain is unbroken: seq contiguous from 1,
#    prev = SHA-256 of the previous note, tree_size never shrinking, the
#    latest checkpoint covering the whole log;
#  - every acknowledged audited transaction has exactly its committed change
#    records (matched by the xid it printed before COMMIT), and no
#    rolled-back transaction has any;
#  - every acknowledged consent event is in the consent ledger;
#  - after each restart, before any recorder runs again, an analyst sees
#    exactly the subjects has_consent() says, for each subject, through the
#    declared purpose, a child purpose and the purpose view (no decision
#    served from a stale cache).
#
# Sessions, each a loop of psql batches that reconnects after a crash:
#   ins_a1, ins_a2  ledger soak_a: savepoints rolled back, nested
#                   savepoints, whole transactions rolled back, wide rows
#   ins_b           ledger soak_b: multi-row, INSERT ... SELECT, rollbacks
#   recorder        grants and withdrawals (role in consent_ledger_recorder)
#   analyst1, 2     read the protected table through a purpose, and the
#                   purpose view
#   upd1, upd2      audited UPDATEs on acct, some rolled back, some with a
#                   rolled-back savepoint
#   sealer          consent_ledger.seal() in a loop
#
# SOAK_SECONDS=600 for a longer run; the default keeps the test under about
# 2.5 minutes.

use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $soak_seconds = $ENV{SOAK_SECONDS} // 60;
$soak_seconds = 60 unless $soak_seconds =~ /^\d+$/ && $soak_seconds >= 10;
my $nsubjects = 40;
my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $db = 'soak';

my $node = PostgreSQL::Test::Cluster->new('soak');
$node->init;
# (no log_statement = all: hundreds of thousands of statements)
$node->append_conf('postgresql.conf', q{
max_connections = 40
log_min_messages = warning
log_statement = none
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, qq{
	CREATE EXTENSION consent_ledger;
	CREATE ROLE soak_analyst LOGIN;
	CREATE ROLE soak_recorder LOGIN IN ROLE consent_ledger_recorder;

	CREATE TABLE soak_a (w integer NOT NULL, seq integer NOT NULL, part integer NOT NULL,
		doomed boolean NOT NULL, payload text);
	SELECT consent_ledger.create_ledger('soak_a');
	CREATE TABLE soak_b (w integer NOT NULL, seq integer NOT NULL, part integer NOT NULL,
		doomed boolean NOT NULL, payload bytea, at timestamptz DEFAULT clock_timestamp());
	SELECT consent_ledger.create_ledger('soak_b');

	SELECT consent_ledger.define_purpose('research', 'medical research');
	SELECT consent_ledger.define_purpose('research.survey', 'surveys', parent => 'research');
	SELECT consent_ledger.authorize_purpose('soak_analyst', 'research');

	CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL, email text);
	INSERT INTO people SELECT g, (g - 1) % $nsubjects + 1, 'p' || g || '\@example.org'
		FROM generate_series(1, 2 * $nsubjects) g;
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO soak_analyst;
	SELECT consent_ledger.create_purpose_view('people', 'research', 'public.people_research');
	GRANT SELECT ON people_research TO soak_analyst;
	SELECT consent_ledger.grant_consent(g, 'research') FROM generate_series(1, $nsubjects, 3) g;

	CREATE TABLE acct (id integer PRIMARY KEY, w integer NOT NULL, v integer NOT NULL, note text);
	INSERT INTO acct SELECT w * 10 + k, w, 0, NULL FROM generate_series(1, 2) w, generate_series(1, 3) k;
	SELECT consent_ledger.audit('acct');
	SELECT consent_ledger.seal();
});

my $psql = $node->installed_command('psql');

###########################################################################
# Workloads: each returns the SQL of one batch and records what it expects
###########################################################################

my %ledger_expect;    # "table,w,seq" -> "p1,p2" committed parts ('' when rolled back)
my %ledger_acked;     # "table,w,seq" -> 1
my %audit_expect;     # "w,seq" -> committed change records expected
my %audit_xid;        # "w,seq" -> xid printed before COMMIT/ROLLBACK
my %audit_acked;      # "w,seq" -> 1
my %event_acked;      # consent event id -> 1
my %stats;

sub a_row
{
	my ($w, $q, $p, $d) = @_;
	return "($w, $q, $p, $d, 'w$w q$q p$p')";
}

# soak_a: one of five shapes per transaction
sub gen_ins_a
{
	my ($wk) = @_;
	my ($w, $sql) = ($wk->{w}, '');
	my $ins = 'INSERT INTO soak_a (w, seq, part, doomed, payload) VALUES ';
	for (1 .. 60)
	{
		my $q = ++$wk->{seq};
		my $key = "soak_a,$w,$q";
		my $shape = $q % 5;
		if ($shape == 0)
		{
			$sql .= $ins . a_row($w, $q, 0, 'false') . ";\n";
			$ledger_expect{$key} = '0';
		}
		elsif ($shape == 1)
		{
			$sql .= "BEGIN;\n$ins" . a_row($w, $q, 0, 'false') . ";\nSAVEPOINT a;\n$ins"
			  . a_row($w, $q, 1, 'true') . ', ' . a_row($w, $q, 2, 'true')
			  . ";\nROLLBACK TO SAVEPOINT a;\n$ins" . a_row($w, $q, 3, 'false') . ";\nCOMMIT;\n";
			$ledger_expect{$key} = '0,3';
		}
		elsif ($shape == 2)
		{
			$sql .= "BEGIN;\n$ins" . join(', ', map { a_row($w, $q, $_, 'true') } 0 .. 2) . ";\nROLLBACK;\n";
			$ledger_expect{$key} = '';
			next;    # nothing to acknowledge
		}
		elsif ($shape == 3)
		{
			$sql .= "BEGIN;\nINSERT INTO soak_a (w, seq, part, doomed, payload) "
			  . "SELECT $w, $q, g, false, repeat(md5(g::text || '$q'), 40 * g) FROM generate_series(0, 3) g;\n"
			  . "SAVEPOINT b;\n$ins" . a_row($w, $q, 4, 'false') . ";\nRELEASE SAVEPOINT b;\nCOMMIT;\n";
			$ledger_expect{$key} = '0,1,2,3,4';
		}
		else
		{
			$sql .= "BEGIN;\nSAVEPOINT a;\n$ins" . a_row($w, $q, 0, 'true') . ";\nSAVEPOINT b;\n$ins"
			  . a_row($w, $q, 1, 'true') . ";\nRELEASE SAVEPOINT b;\nROLLBACK TO SAVEPOINT a;\n$ins"
			  . a_row($w, $q, 2, 'false') . ";\nCOMMIT;\n";
			$ledger_expect{$key} = '2';
		}
		$sql .= "\\echo ACK $q\n";
	}
	return $sql;
}

# soak_b: multi-row statements, binary payloads, rollbacks
sub gen_ins_b
{
	my ($wk) = @_;
	my ($w, $sql) = ($wk->{w}, '');
	for (1 .. 60)
	{
		my $q = ++$wk->{seq};
		my $key = "soak_b,$w,$q";
		my $shape = $q % 3;
		if ($shape == 0)
		{
			$sql .= "INSERT INTO soak_b (w, seq, part, doomed, payload) SELECT $w, $q, g, false, "
			  . "decode(repeat(md5(g::text), g + 1), 'hex') FROM generate_series(0, 4) g;\n";
			$ledger_expect{$key} = '0,1,2,3,4';
		}
		elsif ($shape == 1)
		{
			$sql .= "BEGIN;\nINSERT INTO soak_b (w, seq, part, doomed) VALUES ($w, $q, 0, false), ($w, $q, 1, false);\n"
			  . "SAVEPOINT s;\nINSERT INTO soak_b (w, seq, part, doomed) VALUES ($w, $q, 2, true);\n"
			  . "ROLLBACK TO SAVEPOINT s;\nCOMMIT;\n";
			$ledger_expect{$key} = '0,1';
		}
		else
		{
			$sql .= "BEGIN;\nINSERT INTO soak_b (w, seq, part, doomed) VALUES ($w, $q, 0, true);\nROLLBACK;\n";
			$ledger_expect{$key} = '';
			next;
		}
		$sql .= "\\echo ACK $q\n";
	}
	return $sql;
}

# grants and withdrawals, one transaction each, the event id printed
sub gen_recorder
{
	my ($wk) = @_;
	my $sql = '';
	for (1 .. 25)
	{
		my $s = 1 + int(rand($nsubjects));
		my $purpose = rand() < 0.25 ? 'research.survey' : 'research';
		my $fn = rand() < 0.5 ? 'grant_consent' : 'withdraw_consent';
		$sql .= "BEGIN;\nSELECT 'EV ' || consent_ledger.$fn($s, '$purpose');\nCOMMIT;\n\\echo ACK\n";
	}
	return $sql;
}

sub gen_analyst
{
	my ($wk) = @_;
	my $sql = "SET consent_ledger.purpose = 'research';\n";
	for (1 .. 15)
	{
		$sql .= "SELECT 'READ ' || count(*) FROM people;\n"
		  . "SELECT 'VIEW ' || count(*) FROM people_research;\n"
		  . "BEGIN READ ONLY;\nSET LOCAL consent_ledger.purpose = 'research.survey';\n"
		  . "SELECT 'READ ' || count(DISTINCT subject) FROM people;\nCOMMIT;\n";
	}
	return $sql;
}

# audited UPDATEs: committed (3 records), rolled back (none), or committed
# with a rolled-back savepoint (1 record)
sub gen_updater
{
	my ($wk) = @_;
	my ($w, $sql) = ($wk->{w}, '');
	for (1 .. 30)
	{
		my $q = ++$wk->{seq};
		my $key = "$w,$q";
		my $xid = "SELECT 'XID $q ' || pg_current_xact_id();\n";
		my $shape = $q % 3;
		if ($shape == 0)
		{
			$sql .= "BEGIN;\nUPDATE acct SET v = v + 1, note = 'q$q' WHERE w = $w;\n$xid" . "COMMIT;\n\\echo ACK $q\n";
			$audit_expect{$key} = 3;
		}
		elsif ($shape == 1)
		{
			$sql .= "BEGIN;\nUPDATE acct SET v = v + 100, note = 'rolled back' WHERE w = $w;\n$xid" . "ROLLBACK;\n";
			$audit_expect{$key} = 0;
		}
		else
		{
			$sql .= "BEGIN;\nUPDATE acct SET v = v + 1 WHERE id = ${w}1;\nSAVEPOINT a;\n"
			  . "UPDATE acct SET v = v + 1000, note = 'doomed' WHERE w = $w;\nROLLBACK TO SAVEPOINT a;\n$xid"
			  . "COMMIT;\n\\echo ACK $q\n";
			$audit_expect{$key} = 1;
		}
	}
	return $sql;
}

sub gen_sealer
{
	return join('', map { "SELECT 'SEALED ' || consent_ledger.seal();\nSELECT pg_sleep(0.2);\n" } 1 .. 10);
}

# Output of a finished batch -> what was acknowledged.
sub parse_batch
{
	my ($wk, $out) = @_;
	my $type = $wk->{type};
	my $pending_ev;
	foreach my $line (split /\n/, $out)
	{
		if ($type eq 'ins_a' || $type eq 'ins_b')
		{
			$ledger_acked{"$wk->{table},$wk->{w},$1"} = 1 if $line =~ /^ACK (\d+)$/;
		}
		elsif ($type eq 'updater')
		{
			$audit_xid{"$wk->{w},$1"} = $2 if $line =~ /^XID (\d+) (\d+)$/;
			$audit_acked{"$wk->{w},$1"} = 1 if $line =~ /^ACK (\d+)$/;
		}
		elsif ($type eq 'recorder')
		{
			$pending_ev = $1 if $line =~ /^EV (\d+)$/;
			if ($line eq 'ACK' && defined $pending_ev)
			{
				$event_acked{$pending_ev} = 1;
				undef $pending_ev;
			}
		}
		elsif ($type eq 'analyst')
		{
			$stats{reads}++ if $line =~ /^(READ|VIEW) \d+$/;
		}
		elsif ($type eq 'sealer')
		{
			$stats{seals}++ if $line =~ /^SEALED \d+$/;
		}
	}
	return;
}

my @workers = (
	{ name => 'ins_a1', type => 'ins_a', table => 'soak_a', w => 1, gen => \&gen_ins_a },
	{ name => 'ins_a2', type => 'ins_a', table => 'soak_a', w => 2, gen => \&gen_ins_a },
	{ name => 'ins_b', type => 'ins_b', table => 'soak_b', w => 1, gen => \&gen_ins_b },
	{ name => 'recorder', type => 'recorder', user => 'soak_recorder', gen => \&gen_recorder },
	{ name => 'analyst1', type => 'analyst', user => 'soak_analyst', gen => \&gen_analyst },
	{ name => 'analyst2', type => 'analyst', user => 'soak_analyst', gen => \&gen_analyst },
	{ name => 'upd1', type => 'updater', w => 1, gen => \&gen_updater },
	{ name => 'upd2', type => 'updater', w => 2, gen => \&gen_updater },
	{ name => 'sealer', type => 'sealer', gen => \&gen_sealer });
$_->{seq} = 0 foreach @workers;

###########################################################################
# The loop: restart each session's batch when it ends (also after a crash)
###########################################################################

my $server_up = 1;
my %paused;    # type -> 1: no new batches
my $victim_wanted = 0;    # inserters pause after saying their PID

sub start_batch
{
	my ($wk) = @_;
	$wk->{batch}++;
	# inserters say which backend runs them; while a victim is wanted for
	# the SIGKILL below, they pause there a moment so that it finds them
	# running, with the other sessions still inserting
	my $sql = '';
	if ($wk->{type} =~ /^ins_/)
	{
		$sql = "SELECT 'PID ' || pg_backend_pid();\n";
		$sql .= "SELECT pg_sleep(1);\n" if $victim_wanted;
	}
	$sql .= $wk->{gen}->($wk);
	my $file = cl_write_file("$tmp/$wk->{name}_$wk->{batch}.sql", $sql);
	my $conn = $node->connstr($db) . " application_name=soak_$wk->{name}";
	$conn .= " user=$wk->{user}" if $wk->{user};
	($wk->{out}, $wk->{err}) = ('', '');
	$wk->{h} = IPC::Run::start([ $psql, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $conn, '-f', $file ],
		'<', \undef, '>', \$wk->{out}, '2>', \$wk->{err});
	return;
}

sub reap_batch
{
	my ($wk) = @_;
	eval { $wk->{h}->finish; };
	my $rc = $wk->{h}->result(0) // -1;
	parse_batch($wk, $wk->{out});
	$wk->{h} = undef;
	$wk->{batches_ok}++ if $rc == 0;
	if ($rc == 3)
	{
		# an SQL error (ON_ERROR_STOP), not a lost connection (2)
		$wk->{sql_errors}++;
		diag("$wk->{name}: batch $wk->{batch} stopped on an SQL error:\n$wk->{err}")
		  if $wk->{sql_errors} <= 3;
	}
	elsif ($rc != 0)
	{
		$wk->{lost}++;
		$wk->{next_start} = time() + 0.3;    # the server is restarting: back off
	}
	return;
}

sub pump_workers
{
	foreach my $wk (@workers)
	{
		if ($wk->{h})
		{
			eval { $wk->{h}->pump_nb; };
			reap_batch($wk) unless $wk->{h}->pumpable;
		}
	}
	return;
}

# Reaps finished batches and starts the next ones.
sub tick
{
	pump_workers();
	foreach my $wk (@workers)
	{
		next if $wk->{h} || !$server_up || $paused{ $wk->{type} };
		next if $wk->{next_start} && time() < $wk->{next_start};
		start_batch($wk);
	}
	return;
}

# Runs the sessions until $until; $event->() is called once, at $at.
sub run_until
{
	my ($until, $at, $event) = @_;
	while (time() < $until)
	{
		tick();
		if (defined $at && time() >= $at)
		{
			$event->();
			undef $at;
		}
		usleep(20_000);
	}
	return;
}

# Waits for every running batch to end (killing what is left after $secs).
sub drain_workers
{
	my ($secs) = @_;
	my $deadline = time() + $secs;
	while (grep { $_->{h} } @workers)
	{
		pump_workers();
		if (time() > $deadline)
		{
			foreach my $wk (grep { $_->{h} } @workers)
			{
				eval { $wk->{h}->kill_kill; };
				reap_batch($wk);
			}
			last;
		}
		usleep(20_000);
	}
	return;
}

sub wait_server
{
	my ($label) = @_;
	ok($node->poll_query_until($db, 'SELECT 1', '1'), "$label: the server accepts connections again");
	return;
}

# An analyst's view of subjects vs has_consent() for each subject.
sub consent_check
{
	my ($label) = @_;
	foreach my $c ([ 'research', 'people', 'SET consent_ledger.purpose = \'research\';' ],
		[ 'research.survey', 'people', 'SET consent_ledger.purpose = \'research.survey\';' ],
		[ 'research', 'people_research', '' ])
	{
		my ($purpose, $rel, $set) = @$c;
		my $want = $node->safe_psql($db, qq{
			SELECT coalesce(string_agg(s::text, ',' ORDER BY s), '') FROM generate_series(1, $nsubjects) s
			WHERE consent_ledger.has_consent(s, '$purpose')});
		my ($out, $err) = ('', '');
		my $ret = $node->psql($db, "$set SELECT coalesce(string_agg(DISTINCT subject::text, ','), '') FROM "
			  . "(SELECT subject FROM $rel ORDER BY subject) s;",
			stdout => \$out, stderr => \$err, extra_params => [ '-U', 'soak_analyst' ]);
		# string_agg(DISTINCT) orders by the text; compare as sorted numbers
		my $got = join(',', sort { $a <=> $b } grep { length } split /,/, $out);
		is("$ret|$got", "0|$want", "$label: the analyst sees exactly the subjects has_consent() says ($purpose, $rel)")
		  or diag("stderr: $err");
	}
	return;
}

my $t0 = time();
my $end = $t0 + $soak_seconds;
note("soak: $soak_seconds s with " . scalar(@workers) . ' sessions');

# Phase 1: load, then SIGKILL one inserter's backend mid-way.
my ($killed_pid, $kill_seen);
run_until($t0 + $soak_seconds * 0.4, $t0 + $soak_seconds * 0.35, sub {
	$paused{recorder} = 1;    # no recorder until the consent check after the restart
	# Kill the backend of an inserter whose batch is running: each batch
	# prints its backend's PID first.  A batch may end between the look and
	# the kill: retry until the postmaster reports the kill.
	$victim_wanted = 1;
	for my $try (1 .. 200)
	{
		pump_workers();
		# a batch that said its PID and has not acknowledged anything yet
		my ($wk) = grep {
			$_->{type} =~ /^ins_/ && $_->{h} && $_->{out} =~ /^PID \d+$/m && $_->{out} !~ /^ACK/m
		} @workers;
		if ($wk)
		{
			my ($pid) = $wk->{out} =~ /^PID (\d+)$/m;
			# still that backend (its title names the database), not a reused PID
			my $title = -r "/proc/$pid/cmdline" ? slurp_file("/proc/$pid/cmdline") : '';
			if ($title =~ /^postgres: .*\Q$db\E/ && kill('KILL', $pid) == 1)
			{
				$killed_pid = $pid;
				note("SIGKILL to backend $pid ($wk->{name}, batch $wk->{batch})");
				my $deadline = time() + 10;
				while (time() < $deadline)
				{
					$kill_seen = 1, last
					  if slurp_file($node->logfile) =~ /server process \(PID $pid\) was terminated by signal 9/;
					usleep(100_000);
				}
				last if $kill_seen;
			}
		}
		tick();
		usleep(50_000);
	}
	$victim_wanted = 0;
});
ok(defined $killed_pid, 'SIGKILL: killed the backend of an inserting session')
  or diag($node->safe_psql($db, q{SELECT application_name, state, wait_event_type, wait_event FROM pg_stat_activity}));
ok($kill_seen, 'SIGKILL: the postmaster saw the backend killed (and restarts every backend)');
drain_workers(30);    # every session loses its connection in the restart
wait_server('SIGKILL');
my $kp = $killed_pid // 'none';
consent_check('after the SIGKILL restart');
delete $paused{recorder};

# Phase 2: load again, then an immediate stop with every session busy.
run_until($t0 + $soak_seconds * 0.8);
$paused{recorder} = 1;
$server_up = 0;
$node->stop('immediate');
drain_workers(30);
$node->start;
$server_up = 1;
wait_server('immediate stop');
consent_check('after the immediate restart');
delete $paused{recorder};

# Phase 3: load until the end, then let the sessions finish their batches.
run_until($end);
$server_up = 0;
drain_workers(60);
$server_up = 1;
note(sprintf('soak: load ran %.0f s', time() - $t0));

###########################################################################
# Invariants
###########################################################################

foreach my $wk (@workers)
{
	note("$wk->{name}: $wk->{batch} batches, " . ($wk->{batches_ok} // 0) . ' complete, '
		  . ($wk->{lost} // 0) . ' cut by a lost connection');
	is($wk->{sql_errors} // 0, 0, "$wk->{name}: no batch stopped on an SQL error");
	cmp_ok($wk->{batches_ok} // 0, '>=', 1, "$wk->{name}: completed at least one batch");
}
cmp_ok($stats{reads} // 0, '>', 0, 'analysts read through the purpose and the purpose view');
cmp_ok($stats{seals} // 0, '>', 0, 'seal() ran during the soak');

# 1. ledger commits
foreach my $table ('soak_a', 'soak_b')
{
	my (%present, $wrong, $missing, $acked);
	($wrong, $missing, $acked) = (0, 0, 0);
	foreach my $line (split /\n/, $node->safe_psql($db, qq{
		SELECT w || ',' || seq, string_agg(part::text, ',' ORDER BY part) FROM $table GROUP BY w, seq}))
	{
		my ($k, $parts) = split /\|/, $line;
		my $key = "$table,$k";
		$present{$key} = 1;
		if (!defined $ledger_expect{$key} || $ledger_expect{$key} ne $parts)
		{
			$wrong++;
			diag("$table: transaction $k has parts {$parts}, expected {" . ($ledger_expect{$key} // 'none') . '}')
			  if $wrong <= 5;
		}
	}
	foreach my $key (grep { /^$table,/ } keys %ledger_acked)
	{
		$acked++;
		next if $present{$key};
		$missing++;
		diag("$table: acknowledged transaction $key is missing") if $missing <= 5;
	}
	cmp_ok($acked, '>', 50, "$table: sessions acknowledged commits ($acked)");
	is($missing, 0, "$table: every acknowledged commit is present");
	is($wrong, 0, "$table: every present transaction is complete and none rolled back is there");
	is($node->safe_psql($db, "SELECT count(*) FROM $table WHERE doomed"), '0',
		"$table: no row of a rolled-back transaction or savepoint");
}

# 2. verify(NULL) after seal()
$node->safe_psql($db, 'SELECT consent_ledger.seal()');
my $v = $node->safe_psql($db, q{
	SELECT count(*), count(*) FILTER (WHERE valid), count(*) FILTER (WHERE pending = 0),
		coalesce(string_agg(relation::text || ': ' || coalesce(problem, ''), '; ') FILTER (WHERE NOT valid), '')
	FROM consent_ledger.verify(NULL)});
my ($n_all, $n_valid, $n_sealed, $problems) = split /\|/, $v, 4;
is($n_all, 4, 'verify(NULL) covers the 4 ledgers (soak_a, soak_b, consent events, audit log)');
is($n_valid, $n_all, 'verify(NULL) valid for every ledger after seal()') or diag $problems;
is($n_sealed, $n_all, 'nothing pending after seal()');
is($node->safe_psql($db, q{
	SELECT count(*) FROM consent_ledger.ledgers l
	WHERE NOT consent_ledger.verify_checkpoint(consent_ledger.checkpoint(l.relid))}),
	'0', 'the latest checkpoint of every ledger verifies');

# 3. checkpoint chains
is($node->safe_psql($db, q{
	SELECT count(*) FROM (SELECT ledger_id FROM consent_ledger.checkpoints GROUP BY ledger_id
		HAVING min(seq) <> 1 OR max(seq) <> count(*) OR count(DISTINCT seq) <> count(*)) g}),
	'0', 'checkpoint chains: seq contiguous from 1 for every ledger (no gap, no fork)');
is($node->safe_psql($db, q{
	SELECT count(*) FROM (
		SELECT prev, tree_size, lag(note) OVER w AS prev_note, lag(tree_size) OVER w AS prev_size
		FROM consent_ledger.checkpoints WINDOW w AS (PARTITION BY ledger_id ORDER BY seq)) c
	WHERE prev <> coalesce(sha256(convert_to(prev_note, 'UTF8')), decode(repeat('00', 32), 'hex'))
	   OR tree_size < prev_size}),
	'0', 'checkpoint chains: prev = SHA-256 of the previous note, tree_size never shrinks');
is($node->safe_psql($db, q{
	SELECT count(*) FROM consent_ledger.ledgers l
	WHERE (SELECT max(tree_size) FROM consent_ledger.checkpoints c WHERE c.ledger_id = l.ledger_id)
		IS DISTINCT FROM (SELECT coalesce(sum(nleaves), 0) FROM consent_ledger.log g WHERE g.ledger_id = l.ledger_id)}),
	'0', 'checkpoint chains: the latest checkpoint of each ledger covers its whole log');
note('checkpoints per ledger: ' . $node->safe_psql($db, q{
	SELECT string_agg(l.relid::text || '=' || n, ', ') FROM consent_ledger.ledgers l
	JOIN (SELECT ledger_id, count(*) n FROM consent_ledger.checkpoints GROUP BY ledger_id) c USING (ledger_id)}));

# 4. audited changes
my %records;
foreach my $line (split /\n/, $node->safe_psql($db, q{
	SELECT xid, count(*) FROM consent_ledger.audit_log
	WHERE kind = 'change' AND outcome = 'committed' AND relid = 'acct'::regclass GROUP BY xid}))
{
	my ($x, $n) = split /\|/, $line;
	$records{$x} = $n;
}
my ($a_missing, $a_wrong, $rb_seen, $rb_recorded) = (0, 0, 0, 0);
foreach my $key (sort keys %audit_acked)
{
	my $x = $audit_xid{$key};
	my $want = $audit_expect{$key};
	if (!defined $x || !defined $records{$x})
	{
		$a_missing++;
		diag("audited transaction $key (xid " . ($x // '?') . ') was acknowledged but has no committed record')
		  if $a_missing <= 5;
	}
	elsif ($records{$x} != $want)
	{
		$a_wrong++;
		diag("audited transaction $key (xid $x) has $records{$x} committed records, expected $want") if $a_wrong <= 5;
	}
}
foreach my $key (keys %audit_xid)
{
	next unless $audit_expect{$key} == 0;
	$rb_seen++;
	$rb_recorded++ if defined $records{ $audit_xid{$key} };
}
cmp_ok(scalar(keys %audit_acked), '>', 20, 'audit: sessions acknowledged audited transactions ('
	  . scalar(keys %audit_acked) . ')');
is($a_missing, 0, 'audit: every acknowledged audited transaction has its committed change records (by xid)');
is($a_wrong, 0, 'audit: ... exactly one per row it changed (none for the rolled-back savepoint)');
cmp_ok($rb_seen, '>', 0, 'audit: some audited transactions were rolled back');
is($rb_recorded, 0, 'audit: no rolled-back transaction has a "committed" change record');
is($node->safe_psql($db, q{
	SELECT count(*) FROM consent_ledger.audit_log
	WHERE kind = 'change' AND outcome = 'committed' AND pg_xact_status(xid) IS DISTINCT FROM 'committed'}),
	'0', 'audit: every "committed" change record belongs to a committed transaction');
is($node->safe_psql($db, q{SELECT count(*) FROM acct WHERE note IN ('doomed', 'rolled back')}), '0',
	'audit: no change of a rolled-back transaction or savepoint is in the table');

# 5. consent events
my $ev_present = $node->safe_psql($db, 'SELECT string_agg(event_id::text, \',\') FROM consent_ledger.consent_events');
my %ev_present = map { $_ => 1 } split /,/, $ev_present;
my @ev_missing = grep { !$ev_present{$_} } keys %event_acked;
cmp_ok(scalar(keys %event_acked), '>', 5, 'consent: the recorder acknowledged events (' . scalar(keys %event_acked) . ')');
is(scalar(@ev_missing), 0, 'consent: every acknowledged consent event is in the consent ledger')
  or diag('missing event ids: ' . join(',', @ev_missing[ 0 .. ($#ev_missing > 9 ? 9 : $#ev_missing) ]));

# 6. no stale consent decision after a last restart
$node->restart;
consent_check('after the final restart');

# The server survived it all without a crash of its own.
my $log = slurp_file($node->logfile);
my @crashes = grep { !/PID \Q$kp\E\)/ } ($log =~ /^.*(?:terminated by signal|exited with exit code [1-9]).*$/mg);
@crashes = grep { !/background worker .* exited with exit code 1/ } @crashes;
is(scalar(@crashes), 0, 'no process crashed except the one killed on purpose')
  or diag(join("\n", @crashes[ 0 .. ($#crashes > 9 ? 9 : $#crashes) ]));

$node->stop;
done_testing();
