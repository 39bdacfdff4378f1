# Checkpoint shipping (issue #14 item 1; README "Shipping checkpoints"):
#  - consent_ledger.checkpoint_command is superuser-only: a plain role can
#    neither read nor set it; the view is for auditors and admins, the
#    bookkeeping tables written by nobody but the extension;
#  - a command that fails (while a flag file exists): each failure is in
#    consent_ledger.checkpoint_shipping (failures, last error with the exit
#    code, pending checkpoints) and in the server log (WARNING with the
#    exit code and the command); sealing goes on meanwhile (rows sealed,
#    new checkpoints signed, verify() valid);
#  - once the flag is gone it recovers by itself (backoff, no reload): the
#    newest checkpoint of each ledger is shipped, the file received is
#    byte for byte checkpoint()'s note, a file of mode 0600 in the private
#    directory (0700), removed afterwards; the attempts are counted;
#  - an auditor holding every lock it may take on the shipping tables does
#    not stop shipping or its records;
#  - a command that hangs does not stop sealing (seal() returns, new
#    checkpoints) and is terminated, with its process group, when
#    consent_ledger.checkpoint_command_timeout (changed by a reload) runs
#    out, as a failure;
#  - a reload (SIGHUP) changes the command: the next checkpoint goes to
#    the new one;
#  - restarts: a failure count and the pending checkpoints survive a clean
#    restart; a command hanging at shutdown is terminated with the server
#    and its checkpoint, never recorded as shipped, is shipped after the
#    restart (at least once); a checkpoint recorded as shipped is not
#    shipped again (every successful run of the command is a row of
#    checkpoint_shipments, and no row lacks its run).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Cwd qw(abs_path);
use ConsentLedgerTap;

my $dir = abs_path(PostgreSQL::Test::Utils::tempdir);
my $flag = "$dir/fail";
my $hang = "$dir/hang";
mkdir "$dir/a" or die;
mkdir "$dir/b" or die;

# The shipping script: fails while $flag exists, hangs while $hang exists
# (its sleep's pid in $dir/sleep.pid), otherwise copies the note to
# <recv>/<origin with / as _>-<size>.note and logs "origin size" in
# <recv>/calls (one line per successful run).
cl_write_file("$dir/ship.sh", <<"EOS", 0755);
#!/bin/sh
recv=\$1; file=\$2; origin=\$3; size=\$4
if [ -e '$flag' ]; then echo "ship.sh: refused while $flag exists" >&2; exit 3; fi
if [ -e '$hang' ]; then sleep 600 & echo \$! > '$dir/sleep.pid'; wait; exit 4; fi
o=\$(echo "\$origin" | tr / _)
stat -c %a "\$file" > "\$recv/mode"
cp "\$file" "\$recv/\$o-\$size.tmp" && mv "\$recv/\$o-\$size.tmp" "\$recv/\$o-\$size.note" || exit 5
echo "\$origin \$size" >> "\$recv/calls"
EOS

my $node = PostgreSQL::Test::Cluster->new('ship');
$node->init;
$node->start;
my $pgdata = $node->data_dir;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE t1 (id bigint, v text);
	CREATE TABLE t2 (id bigint, v text);
	SELECT consent_ledger.create_ledger('t1');
	SELECT consent_ledger.create_ledger('t2');
	INSERT INTO t1 VALUES (1, 'one');
	INSERT INTO t2 VALUES (1, 'one');
	SELECT consent_ledger.seal();
	CREATE ROLE plain LOGIN;
	CREATE ROLE aud LOGIN IN ROLE consent_ledger_auditor;
	CREATE ROLE adm LOGIN IN ROLE consent_ledger_admin;
});

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub origin_of { return q1(qq{SELECT origin FROM consent_ledger.ledgers WHERE relid = '$_[0]'::regclass}); }
my %origin = (t1 => origin_of('t1'), t2 => origin_of('t2'));

sub status
{
	my ($rel, $cols) = @_;
	return q1(qq{SELECT $cols FROM consent_ledger.checkpoint_shipping WHERE relation = '$rel'::regclass});
}

sub set_command
{
	my ($recv) = @_;
	q1(qq{ALTER SYSTEM SET consent_ledger.checkpoint_command = 'sh $dir/ship.sh $recv %f %o %s'});
	q1(q{SELECT pg_reload_conf()});
}

# the received copy of a ledger's newest checkpoint equals checkpoint()'s note
sub newest_received_ok
{
	my ($rel, $recv, $what) = @_;
	my $size = q1(qq{SELECT consent_ledger.checkpoint('$rel')->>'tree_size'});
	(my $o = $origin{$rel}) =~ s{/}{_}g;
	my $f = "$recv/$o-$size.note";
	my $note = q1(qq{SELECT encode(convert_to(consent_ledger.checkpoint('$rel')->>'note', 'UTF8'), 'hex')});
	ok(-f $f, "$what: a file was received for $rel at size $size");
	# exactly: no byte added or lost
	is(-f $f ? unpack('H*', slurp_file($f)) : '', $note, "$what: ... and it is checkpoint()'s note, byte for byte");
}

# --- 1. who may set and read it ------------------------------------------
my ($ret, $out, $err) = $node->psql('postgres', 'SHOW consent_ledger.checkpoint_command',
	extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a plain role cannot read consent_ledger.checkpoint_command');
like($err, qr/must be superuser|permission denied/, '... permission denied');
($ret, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET consent_ledger.checkpoint_command = 'true'},
	extra_params => [ '-U', 'adm' ]);
isnt($ret, 0, 'an admin (not superuser) cannot set it with ALTER SYSTEM');
($ret, $out, $err) = $node->psql('postgres', q{SET consent_ledger.checkpoint_command = 'true'},
	extra_params => [ '-U', 'adm' ]);
like($err, qr/cannot be changed now/, 'nor with SET (PGC_SIGHUP)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM consent_ledger.checkpoint_shipping},
		extra_params => [ '-U', 'aud' ]), q1(q{SELECT count(*) FROM consent_ledger.ledgers}),
	'an auditor reads the view: a row per ledger');
($ret, $out, $err) = $node->psql('postgres', q{SELECT * FROM consent_ledger.checkpoint_shipping},
	extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a plain role cannot read the view');
for my $tab (qw(checkpoint_shipments checkpoint_shipping_status))
{
	($ret, $out, $err) = $node->psql('postgres',
		qq{DELETE FROM consent_ledger.$tab},
		extra_params => [ '-U', 'adm' ]);
	like($err, qr/permission denied/, "an admin cannot write consent_ledger.$tab");
}
is(status('t1', 'pending > 0 AND shipped_size IS NULL AND failures = 0'), 't',
	'with no command set, nothing is shipped and checkpoints are pending');

# --- 2. a failing command, then recovery -----------------------------------
cl_write_file($flag, '');
set_command("$dir/a");
ok(cl_wait_for($node, 'postgres', q{
	SELECT bool_and(failures >= 2) FROM consent_ledger.checkpoint_shipping
	 WHERE relation IN ('t1'::regclass, 't2'::regclass)}, 120),
	'the failing command is retried: failures counted for both ledgers');
is(status('t1', q{last_error || ' ' || (last_failed_at IS NOT NULL) || ' ' || (pending > 0) || ' ' || (consecutive_failures >= 2)}),
	'failed with exit code 3 true true true', 'the view shows the exit code, when, and the pending checkpoints');
my $log = slurp_file($node->logfile);
like($log, qr/WARNING:  consent_ledger could not ship the checkpoint of "\Q$origin{t1}\E" at tree size \d+: checkpoint_command failed with exit code 3/,
	'the failure is logged as a WARNING with the exit code');
like($log, qr/DETAIL:  The failed command was: sh \Q$dir\E\/ship.sh \Q$dir\E\/a \S+\.note \Q$origin{t1}\E \d+/,
	'... and the command, with %f, %o and %s replaced');
like($log, qr/ship.sh: refused while/, "the command's stderr goes to the server log");

# sealing goes on while it fails
my $size0 = q1(q{SELECT consent_ledger.checkpoint('t1')->>'tree_size'});
is(q1(q{INSERT INTO t1 SELECT g, 'while failing' FROM generate_series(2, 51) g; SELECT consent_ledger.seal()}),
	'50', 'sealing goes on while the command fails: seal() seals 50 rows');
is(q1(q{SELECT consent_ledger.checkpoint('t1')->>'tree_size'}), $size0 + 50, '... into a new checkpoint');
q1(q{INSERT INTO t1 VALUES (52, 'more'); INSERT INTO t2 VALUES (2, 'more'); SELECT consent_ledger.seal()});
my $v = cl_verify_row($node, 'postgres', 't1');
ok($v->{valid} && $v->{pending} == 0, 'verify: valid, nothing pending') or diag(explain $v);
is(status('t1', 'shipped_size IS NULL AND pending >= 2'), 't', 'nothing of t1 shipped yet, checkpoints pending');
ok(!-e "$dir/a/calls", 'the command shipped nothing');

# recovery, by itself (the backoff runs out; no reload)
unlink $flag or die;
ok(cl_wait_for($node, 'postgres', q{
	SELECT bool_and(pending = 0 AND shipped_size = checkpoint_size AND consecutive_failures = 0)
	  FROM consent_ledger.checkpoint_shipping WHERE relation IN ('t1'::regclass, 't2'::regclass)}, 150),
	'once the command works again the newest checkpoint of each ledger is shipped');
newest_received_ok('t1', "$dir/a", 'after recovery');
newest_received_ok('t2', "$dir/a", 'after recovery');
is(status('t1', 'shipped_attempts > 2 AND failures >= 2 AND last_error IS NOT NULL'), 't',
	'the shipment counts its attempts; the failures stay counted');
is(slurp_file("$dir/a/mode"), "600\n", 'the note file the command reads has mode 0600');
is(sprintf('%o', (stat("$pgdata/consent_ledger_shipping"))[2] & 07777), '700',
	'it is in a private directory of the data directory (0700)');
my @left = glob("$pgdata/consent_ledger_shipping/*");
is(scalar @left, 0, 'the note files are removed once shipped') or diag("@left");
is(q1(q{SELECT count(*) FROM consent_ledger.checkpoint_shipments s JOIN consent_ledger.ledgers l USING (ledger_id)
		WHERE l.relid IN ('t1'::regclass, 't2'::regclass)}), '2',
	'the backlog was shipped as the newest checkpoint of each ledger, one shipment each');

# a new checkpoint is shipped on its own
q1(q{INSERT INTO t1 VALUES (53, 'after'); SELECT consent_ledger.seal()});
ok(cl_wait_for($node, 'postgres', q{
	SELECT pending = 0 AND shipped_size = checkpoint_size AND shipped_attempts = 1
	  FROM consent_ledger.checkpoint_shipping WHERE relation = 't1'::regclass}, 60),
	'a new checkpoint is shipped at the first attempt');
newest_received_ok('t1', "$dir/a", 'a new checkpoint');

# an auditor holds the strongest lock it can take on the shipping tables in an
# open transaction: shipping goes on and is recorded (no role can stall it)
my $aud = $node->background_psql('postgres', extra_params => [ '-U', 'aud' ]);
$aud->query_safe(q{BEGIN; LOCK consent_ledger.checkpoint_shipments, consent_ledger.checkpoint_shipping_status IN ACCESS SHARE MODE});
($ret, $out, $err) = $node->psql('postgres', q{BEGIN; LOCK consent_ledger.checkpoint_shipments IN EXCLUSIVE MODE},
	extra_params => [ '-U', 'aud' ]);
like($err, qr/permission denied/, 'an auditor cannot take a lock that would block the sealer');
($ret, $out, $err) = $node->psql('postgres', q{SELECT * FROM consent_ledger.checkpoint_shipping_status FOR SHARE},
	extra_params => [ '-U', 'aud' ]);
like($err, qr/permission denied/, '... nor lock its rows');
q1(q{INSERT INTO t1 VALUES (60, 'while locked'); SELECT consent_ledger.seal()});
ok(cl_wait_for($node, 'postgres', q{
	SELECT pending = 0 AND shipped_size = checkpoint_size FROM consent_ledger.checkpoint_shipping
	 WHERE relation = 't1'::regclass}, 60),
	'while it holds its lock a new checkpoint is shipped and recorded');
$aud->query_safe('COMMIT');
$aud->quit;

# --- 3. a hanging command ----------------------------------------------------
q1(q{ALTER SYSTEM SET consent_ledger.checkpoint_command_timeout = '1h'; SELECT pg_reload_conf()});
cl_write_file($hang, '');
q1(q{INSERT INTO t1 VALUES (54, 'hang'); SELECT consent_ledger.seal()});
my $pidfile = "$dir/sleep.pid";
ok(cl_wait_for($node, 'postgres', qq{SELECT (pg_stat_file('$pidfile', true)).size > 0}, 60),
	'the command hangs (its sleep started)');
my $sleep_pid = slurp_file($pidfile);
chomp $sleep_pid;
my $ncp = q1(q{SELECT count(*) FROM consent_ledger.checkpoints});
# (seal() counts the rows of the rounds it asked for: the sealer's own
# round may take them first, so the test reads what is left pending)
q1(q{INSERT INTO t1 SELECT g, 'while hanging' FROM generate_series(100, 119) g; SELECT consent_ledger.seal()});
is(q1(q{SELECT pending || ' ' || valid FROM consent_ledger.verify('t1')}), '0 true',
	'sealing goes on while the command hangs: the 20 rows sealed, nothing pending');
ok(q1(q{SELECT count(*) FROM consent_ledger.checkpoints}) > $ncp, '... into new checkpoints');
ok(kill(0, $sleep_pid), 'the command still hangs (the timeout is 1h)');
# the next run will not hang (this one does until it is terminated)
unlink $hang, $pidfile;
q1(q{ALTER SYSTEM SET consent_ledger.checkpoint_command_timeout = '1s'; SELECT pg_reload_conf()});
ok(cl_wait_for($node, 'postgres', q{
	SELECT last_error LIKE 'timed out after 1 s%' FROM consent_ledger.checkpoint_shipping
	 WHERE relation = 't1'::regclass}, 60),
	'with the timeout lowered by a reload the hanging command is terminated, as a failure');
my $gone = 0;
for (1 .. 100) { if (!kill(0, $sleep_pid)) { $gone = 1; last; } select(undef, undef, undef, 0.1); }
ok($gone, '... with its process group (the sleep it started is gone)');
like(slurp_file($node->logfile), qr/checkpoint_command timed out after 1 s/, 'the timeout is logged');

# --- 4. SIGHUP changes the command -----------------------------------------
q1(q{ALTER SYSTEM SET consent_ledger.checkpoint_command_timeout = '1min'});
set_command("$dir/b");
q1(q{INSERT INTO t1 VALUES (200, 'to b'); SELECT consent_ledger.seal()});
ok(cl_wait_for($node, 'postgres', q{
	SELECT pending = 0 AND shipped_size = checkpoint_size FROM consent_ledger.checkpoint_shipping
	 WHERE relation = 't1'::regclass}, 120), 'after a reload the newest checkpoint is shipped');
newest_received_ok('t1', "$dir/b", 'the new command');
my $size_b = q1(q{SELECT consent_ledger.checkpoint('t1')->>'tree_size'});
(my $o1 = $origin{t1}) =~ s{/}{_}g;
ok(!-e "$dir/a/$o1-$size_b.note", '... and not by the old one');

# --- 5. restarts ---------------------------------------------------------------
# every successful run is a recorded shipment, and the other way round
sub runs_match_records
{
	my ($what) = @_;
	my %runs;
	for my $recv ("$dir/a", "$dir/b")
	{
		next unless -e "$recv/calls";
		$runs{$_}++ for grep { length } split /\n/, slurp_file("$recv/calls");
	}
	my %rec;
	$rec{$_}++ for grep { length } split /\n/, q1(q{
		SELECT l.origin || ' ' || s.tree_size FROM consent_ledger.checkpoint_shipments s
		  JOIN consent_ledger.ledgers l USING (ledger_id) ORDER BY 1});
	is_deeply(\%runs, \%rec, "$what: each successful run of the command is one recorded shipment");
}
ok(cl_wait_for($node, 'postgres', q{SELECT bool_and(pending = 0) FROM consent_ledger.checkpoint_shipping}, 120),
	'every ledger is shipped');
runs_match_records('before the restarts');

# (a) failures and pending checkpoints survive a clean restart
cl_write_file($flag, '');
q1(q{INSERT INTO t2 VALUES (3, 'fail, restart'); SELECT consent_ledger.seal()});
ok(cl_wait_for($node, 'postgres', q{
	SELECT consecutive_failures >= 1 FROM consent_ledger.checkpoint_shipping WHERE relation = 't2'::regclass}, 60),
	't2 fails to ship');
my $fails = status('t2', 'failures');
$node->restart;
ok(status('t2', 'failures') >= $fails && status('t2', 'pending > 0'), 'after a restart the failures and the pending checkpoint are still shown');
unlink $flag;
q1(q{SELECT pg_reload_conf()});
ok(cl_wait_for($node, 'postgres', q{
	SELECT pending = 0 AND shipped_size = checkpoint_size FROM consent_ledger.checkpoint_shipping
	 WHERE relation = 't2'::regclass}, 120), 'the checkpoint signed before the restart is shipped after it');
newest_received_ok('t2', "$dir/b", 'after a restart');

# (b) a command hanging at shutdown: terminated with the server, shipped after
cl_write_file($hang, '');
q1(q{INSERT INTO t1 VALUES (300, 'hang, restart'); SELECT consent_ledger.seal()});
ok(cl_wait_for($node, 'postgres', qq{SELECT (pg_stat_file('$pidfile', true)).size > 0}, 60),
	'a command hangs');
$sleep_pid = slurp_file($pidfile);
chomp $sleep_pid;
my $hung_size = q1(q{SELECT consent_ledger.checkpoint('t1')->>'tree_size'});
$node->stop('fast');
$gone = 0;
for (1 .. 100) { if (!kill(0, $sleep_pid)) { $gone = 1; last; } select(undef, undef, undef, 0.1); }
ok($gone, 'the server stops with the command hanging, and the command is terminated');
unlink $hang, $pidfile;
$node->start;
ok(cl_wait_for($node, 'postgres', q{
	SELECT pending = 0 AND shipped_size = checkpoint_size FROM consent_ledger.checkpoint_shipping
	 WHERE relation = 't1'::regclass}, 120), 'after the restart the checkpoint is shipped');
ok(-e "$dir/b/$o1-$hung_size.note", "... the one whose command was interrupted (size $hung_size)");
newest_received_ok('t1', "$dir/b", 'after an interrupted command');

# (c) shipped checkpoints are not shipped again after a restart
my $calls_before = () = slurp_file("$dir/b/calls") =~ /\n/g;
$node->restart;
q1(q{INSERT INTO t2 VALUES (4, 'after restart'); SELECT consent_ledger.seal()});
ok(cl_wait_for($node, 'postgres', q{
	SELECT pending = 0 AND shipped_size = checkpoint_size FROM consent_ledger.checkpoint_shipping
	 WHERE relation = 't2'::regclass}, 120), 'a new checkpoint after the restart is shipped');
my $calls_after = () = slurp_file("$dir/b/calls") =~ /\n/g;
is($calls_after - $calls_before, 1, 'only it: nothing shipped before the restart was shipped again');
runs_match_records('after the restarts');
is(q1(q{SELECT count(*) FROM consent_ledger.checkpoint_shipments s
	WHERE NOT EXISTS (SELECT FROM consent_ledger.checkpoints c WHERE c.ledger_id = s.ledger_id AND c.seq = s.seq AND c.tree_size = s.tree_size)}),
	'0', 'every shipment names a checkpoint that exists');
$v = cl_verify_row($node, 'postgres', 't1');
ok($v->{valid} && $v->{pending} == 0, 'verify t1: valid') or diag(explain $v);

$node->stop;
done_testing();
