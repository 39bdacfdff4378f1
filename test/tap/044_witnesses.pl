# Witness cosigning and quorum verification (issue #14 items 2 and 3,
# README "Witnesses").  Three servers: a log and two witnesses.
#
# - contrib/ship-to-witnesses.sh, called directly as checkpoint_command
#   would call it, gets both witnesses' cosignatures (the second time
#   with a consistency proof from the size they last cosigned) and stores
#   them on the log; checkpoint(), export() and the offline verifier carry
#   and accept them; verify_checkpoint(..., witnesses, quorum) and
#   consent-ledger-verify checkpoint --witness-key --quorum count them.
# - A forked history -- a restored copy of the log that diverges, its
#   checkpoints signed by the same key -- is refused by both witnesses
#   (same size other root; larger size whose proof fails; a rollback),
#   each refusal recorded as evidence in the witness ledger although the
#   call fails, and its receipt fails the quorum in SQL and offline, even
#   with the real checkpoint's cosignature lines pasted onto it.
# - The script as the log's consent_ledger.checkpoint_command, with a
#   witness out of reach, then reachable: failure seen, sealing goes on,
#   the retry stores both cosignatures.

use strict;
use warnings;

use Cwd qw(abs_path);
use MIME::Base64 ();
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tree = abs_path(dirname(__FILE__) . '/../..');
my $ship = "$tree/contrib/ship-to-witnesses.sh";
my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

my $log = PostgreSQL::Test::Cluster->new('wlog');
$log->init(allows_streaming => 1);
$log->start;
my @w;
for my $i (1, 2)
{
	my $n = PostgreSQL::Test::Cluster->new("witness$i");
	$n->init;
	$n->append_conf('postgresql.conf', "consent_ledger.witness_database = 'postgres'");
	# witness 1 is named by the setting, witness 2 takes the derived name
	$n->append_conf('postgresql.conf', "consent_ledger.witness_name = 'w1.example/witness'")
	  if $i == 1;
	$n->start;
	$n->safe_psql('postgres', 'CREATE EXTENSION consent_ledger');
	push @w, $n;
}

$log->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE pay (id int, amount int);
	SELECT consent_ledger.create_ledger('pay');
	INSERT INTO pay VALUES (1, 10), (2, 20), (3, 30);
});
$log->safe_psql('postgres', 'SELECT consent_ledger.seal()');
my $origin = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'origin'});
my $vkey = $log->safe_psql('postgres', 'SELECT consent_ledger.verifier_key()');
my $logpk = $log->safe_psql('postgres', 'SELECT consent_ledger.public_key()');

my @wkey = map { $_->safe_psql('postgres', 'SELECT consent_ledger.witness_key()') } @w;
like($wkey[0], qr{^w1\.example/witness\+[0-9a-f]{8}\+B}, 'witness 1 cosigns under consent_ledger.witness_name, signature type 0x04');
like($wkey[1], qr{^consent_ledger/witness/[0-9a-f]{8}\+[0-9a-f]{8}\+B}, 'witness 2 under the name derived from its key id');

for my $n (@w)
{
	$n->safe_psql('postgres', qq{SELECT consent_ledger.witness_add_log('$origin', '$vkey')});
	# the same pair again is no change
	$n->safe_psql('postgres', qq{SELECT consent_ledger.witness_add_log('$origin', '$vkey')});
}
is($w[0]->safe_psql('postgres', qq{SELECT consent_ledger.witness_last_size('$origin') IS NULL}), 't',
	'a new witness has cosigned nothing for the origin');

# errors of the witness side: SQLSTATE and message
sub sql_error
{
	my ($node, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return $err;
}
sub sql_error_db
{
	my ($node, $db, $sql) = @_;
	my ($rc, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql");
	return $err;
}
like(sql_error($w[0], q{SELECT consent_ledger.witness_add_log('o', 'nope')}),
	qr/22023: invalid log verifier key/, 'witness_add_log: a malformed key is 22023');
like(sql_error($w[0], qq{SELECT consent_ledger.witness_add_log('$origin', '$wkey[1]')}),
	qr/22023: invalid log verifier key/, 'witness_add_log: a witness key (type 0x04) is no log key');
my $other_vkey = $w[1]->safe_psql('postgres', 'SELECT consent_ledger.verifier_key()');
like(sql_error($w[0], qq{SELECT consent_ledger.witness_add_log('$origin', '$other_vkey')}),
	qr/42710: log ".*" is already witnessed under another key/, 'witness_add_log: another key for the origin is 42710');
like(sql_error($w[0], q{SELECT consent_ledger.witness_cosign('not a note')}),
	qr/22023: malformed checkpoint note/, 'witness_cosign: a malformed note is 22023');

# ---------------------------------------------------------------------
# Shipping, the first time: no proof needed.
my @witness_dbs = map { $_->connstr('postgres') } @w;
$ENV{CL_LOG_DB} = $log->connstr('postgres');
$ENV{CL_WITNESSES} = join("\n", @witness_dbs);

sub ship
{
	my ($node, $rel) = @_;
	my $note = $node->safe_psql('postgres', qq{SELECT consent_ledger.checkpoint('$rel')->>'note'});
	my $size = $node->safe_psql('postgres', qq{SELECT consent_ledger.checkpoint('$rel')->>'tree_size'});
	my $f = "$tmp/note_" . $node->name . "_$size";
	cl_write_file($f, "$note\n");
	local $ENV{CL_LOG_DB} = $node->connstr('postgres');
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'sh', $ship, $f, $origin, $size ], '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	note("ship-to-witnesses.sh $size: exit $rc\n$out$err");
	return ($rc, $err);
}

my ($rc, $err) = ship($log, 'pay');
is($rc, 0, 'ship-to-witnesses.sh: both witnesses cosigned checkpoint 1') or diag $err;
is($log->safe_psql('postgres', 'SELECT count(*) FROM consent_ledger.cosignatures'), '2',
	'the log stored two cosignatures');
is($_->safe_psql('postgres', qq{SELECT consent_ledger.witness_last_size('$origin')}), '3',
	'the witness recorded size 3') for @w;

my $receipt1 = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')});
my $note1 = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'note'});
my @lines = ($note1 =~ /^\x{2014} (\S+) /mg);
# psql returns bytes: match the em dash as UTF-8
@lines = ($note1 =~ /^\xe2\x80\x94 (\S+) /mg);
is_deeply([ sort @lines ], [ sort('consent_ledger', map { (split /\+/, $_)[0] } @wkey) ],
	'checkpoint() carries the log signature and both cosignature lines');

my $warr = join(', ', map { "'$_'" } @wkey);
is($log->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$receipt1'::jsonb,
	witnesses => ARRAY[$warr], quorum => 2)}), 't', 'verify_checkpoint: quorum 2 of 2 holds');
is($log->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$receipt1'::jsonb)}), 't',
	'the one-argument verify_checkpoint() accepts the cosigned receipt');
like(sql_error($log, qq{SELECT consent_ledger.verify_checkpoint('$receipt1'::jsonb, witnesses => ARRAY['$wkey[0]', '$wkey[0]'], quorum => 2)}),
	qr/22023: quorum 2 is out of range for 1 distinct witness keys/, 'a witness key given twice counts once (22023 for quorum 2)');
like(sql_error($log, qq{SELECT consent_ledger.verify_checkpoint('$receipt1'::jsonb, witnesses => ARRAY['$vkey'], quorum => 1)}),
	qr/22023: invalid witness key/, 'a log key is no witness key (22023)');

# offline: checkpoint --witness-key --quorum, and the export
cl_write_file("$tmp/receipt1.json", $receipt1);
my ($vrc, $vout) = cl_run_verifier('checkpoint', '--public-key', $logpk,
	'--witness-key', $wkey[0], '--witness-key', $wkey[1], '--quorum', '2', "$tmp/receipt1.json");
is($vrc, 0, 'offline: quorum 2 of 2 holds');
like($vout, qr/OK: 2 of 2 witnesses cosigned \(quorum 2\)/, 'offline: says how many cosigned');

# ---------------------------------------------------------------------
# A second checkpoint: the witnesses check consistency from size 3.
$log->backup('before_second');
$log->safe_psql('postgres', 'INSERT INTO pay VALUES (4, 40), (5, 50), (6, 60)');
$log->safe_psql('postgres', 'SELECT consent_ledger.seal()');
($rc, $err) = ship($log, 'pay');
is($rc, 0, 'ship-to-witnesses.sh: both witnesses cosigned checkpoint 2 (consistency from 3)') or diag $err;
is($_->safe_psql('postgres', qq{SELECT consent_ledger.witness_last_size('$origin')}), '6',
	'the witness recorded size 6') for @w;
is($_->safe_psql('postgres', q{SELECT count(*) FROM consent_ledger.witness_log WHERE kind = 'cosigned' AND consistency_proof IS NOT NULL}),
	'1', 'the witness ledger keeps the consistency proof it checked') for @w;
my $receipt2 = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')});
my $note2 = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'note'});

my $export = cl_export_to_file($log, 'postgres', 'pay', "$tmp/pay.export");
my $exported = slurp_file("$tmp/pay.export");
my $ncos = () = $exported =~ /^checkpoint /mg;
ok($ncos >= 2, 'the export has the checkpoints');
($vrc, $vout) = cl_run_verifier('export', '--public-key', $logpk, "$tmp/pay.export");
is($vrc, 0, 'offline: the export with cosigned checkpoints verifies (the chain hashes the log\'s own notes)');
{
	my $found = 0;
	for my $l (split /\n/, $exported)
	{
		next unless $l =~ /^checkpoint (\S+)/;
		my $n = MIME::Base64::decode_base64($1);
		$found++ if $n =~ /^\xe2\x80\x94 w1\.example\/witness /m;
	}
	is($found, 2, 'export() carries the cosignature lines of both shipped checkpoints');
}

# ---------------------------------------------------------------------
# The fork: a restored copy of the log from before the second batch, its
# own rows, sealed and signed by the same key.
my $fork = PostgreSQL::Test::Cluster->new('wfork');
$fork->init_from_backup($log, 'before_second');
chmod(0600, $fork->data_dir . '/consent_ledger/signing.key');
$fork->start;
is($fork->safe_psql('postgres', 'SELECT consent_ledger.public_key()'), $logpk, 'the fork signs with the log\'s key');
$fork->safe_psql('postgres', 'INSERT INTO pay VALUES (4, 4000), (5, 5000), (6, 6000)');
$fork->safe_psql('postgres', 'SELECT consent_ledger.seal()');
my $forkreceipt = $fork->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')});
my $forknote = $fork->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'note'});
is($fork->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'tree_size'}), '6', 'the fork is at size 6 too');
is($fork->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$forkreceipt'::jsonb)}), 't',
	'without witnesses the fork\'s receipt verifies on the fork (the single point of trust)');

# same size, other root
($rc, $err) = ship($fork, 'pay');
is($rc, 1, 'ship-to-witnesses.sh fails for the fork');
like($err, qr/did not cosign/, 'and says which witness did not cosign');
like(sql_error($w[0], qq{SELECT consent_ledger.witness_cosign(\$n\$$forknote\n\$n\$)}),
	qr/23000: witness refuses to cosign checkpoint of ".*": fork/, 'witness_cosign: the fork is refused with 23000');
is($_->safe_psql('postgres', q{SELECT count(*) FROM consent_ledger.witness_log WHERE kind = 'refused'}), '2',
	'the witness recorded the refusals as evidence, though the calls failed') for ($w[0]);
is($w[1]->safe_psql('postgres', q{SELECT count(*) FROM consent_ledger.witness_log WHERE kind = 'refused'}), '1',
	'witness 2 recorded its refusal too');
my ($note2base) = ($note2 =~ /\A(.*?\n\n\xe2\x80\x94 consent_ledger [^\n]*\n)/s);
is($w[0]->safe_psql('postgres', qq{SELECT bool_and(previous_note = \$n\$$note2base\$n\$ AND note = \$n\$$forknote\$n\$) FROM consent_ledger.witness_log WHERE kind = 'refused'}),
	't', 'the evidence is the conflicting pair: the cosigned note and the fork\'s');
is($_->safe_psql('postgres', qq{SELECT consent_ledger.witness_last_size('$origin')}), '6',
	'the witness state is unchanged') for @w;

# larger size, consistency proof from 6 fails
$fork->safe_psql('postgres', 'INSERT INTO pay VALUES (7, 7000)');
$fork->safe_psql('postgres', 'SELECT consent_ledger.seal()');
($rc, $err) = ship($fork, 'pay');
is($rc, 1, 'the fork at size 7: refused');
is($w[1]->safe_psql('postgres', q{SELECT count(*) FROM consent_ledger.witness_log WHERE kind = 'refused' AND reason LIKE 'The consistency proof does not lead%'}),
	'1', 'witness 2 recorded the failed consistency proof as evidence');

# rollback: the log's own first checkpoint again
my ($n1) = ($note1 =~ /\A(.*?\n\n\xe2\x80\x94 consent_ledger [^\n]*\n)/s);
like(sql_error($w[0], qq{SELECT consent_ledger.witness_cosign(\$n\$$n1\$n\$)}),
	qr/23000: witness refuses to cosign checkpoint of ".*": rollback/, 'an older checkpoint is a rollback (23000)');

# a receipt without cosignatures of its own holds the quorum through a
# later checkpoint consistent with it (SQL only)
is($log->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint(\$n\$$n1\$n\$::text,
	witnesses => ARRAY[$warr], quorum => 2)}), 't',
	'SQL: checkpoint 1 without its cosignatures holds quorum 2 through checkpoint 2, consistent with it');
cl_write_file("$tmp/bare1.note", $n1);
($vrc) = cl_run_verifier('checkpoint', '--public-key', $logpk,
	'--witness-key', $wkey[0], '--witness-key', $wkey[1], '--quorum', '1', "$tmp/bare1.note");
is($vrc, 1, 'offline: the bare note alone has no quorum');
# offline, through the later checkpoint and the consistency proof to it
my ($size2) = ($note2 =~ /\A[^\n]*\n(\d+)\n/);
cl_write_file("$tmp/later2.note", $note2);
cl_write_file("$tmp/proof_3_$size2.json",
	$log->safe_psql('postgres', qq{SELECT consent_ledger.consistency_proof('pay', 3, $size2)}));
($vrc, $vout) = cl_run_verifier('checkpoint', '--public-key', $logpk,
	'--witness-key', $wkey[0], '--witness-key', $wkey[1], '--quorum', '2',
	'--later', "$tmp/later2.note", '--consistency-proof', "$tmp/proof_3_$size2.json", "$tmp/bare1.note");
is($vrc, 0, "offline: checkpoint 1 holds quorum 2 through checkpoint 2 (size $size2) and the consistency proof to it")
  or diag $vout;
like($vout, qr/2 of 2 witnesses cosigned a later checkpoint \(size $size2\) consistent with it/, '... and says so');

# the fork's receipt fails the quorum, in SQL and offline
is($fork->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$forkreceipt'::jsonb,
	witnesses => ARRAY[$warr], quorum => 1)}), 'f', 'SQL: the fork fails even quorum 1');
cl_write_file("$tmp/fork.json", $forkreceipt);
($vrc, $vout) = cl_run_verifier('checkpoint', '--public-key', $logpk,
	'--witness-key', $wkey[0], '--witness-key', $wkey[1], '--quorum', '1', "$tmp/fork.json");
is($vrc, 1, 'offline: the fork fails the quorum');
like($vout, qr/only 0 of the 2 distinct witnesses given cosigned/, 'offline: and says so');
# the real later checkpoint does not vouch for the fork: no consistency
# proof leads from the fork's tree to it
my ($forksize) = ($forknote =~ /\A[^\n]*\n(\d+)\n/);
cl_write_file("$tmp/forkproof.json",
	$fork->safe_psql('postgres', qq{SELECT consent_ledger.consistency_proof('pay', 1, $forksize)}));
for my $proof ("$tmp/forkproof.json", "$tmp/proof_3_$size2.json")
{
	($vrc, $vout) = cl_run_verifier('checkpoint', '--public-key', $logpk,
		'--witness-key', $wkey[0], '--witness-key', $wkey[1], '--quorum', '1',
		'--later', "$tmp/later2.note", '--consistency-proof', $proof, "$tmp/fork.json");
	is($vrc, 1, "offline: the fork with the real later checkpoint and a proof ($proof) fails the quorum")
	  or diag $vout;
}
($vrc) = cl_run_verifier('checkpoint', '--public-key', $logpk, "$tmp/fork.json");
is($vrc, 0, 'offline without witnesses the fork\'s signature verifies (why the quorum matters)');

# the real checkpoint's cosignature lines pasted onto the fork's note
my @real = ($note2 =~ /^(\xe2\x80\x94 (?:w1\.example|consent_ledger\/witness)\S* \S+\n)/mg);
is(scalar @real, 2, 'the real checkpoint 2 has two cosignature lines');
my ($forkbase) = ($forknote =~ /\A(.*?\n\n\xe2\x80\x94 consent_ledger [^\n]*\n)/s);
cl_write_file("$tmp/pasted.note", $forkbase . join('', @real));
($vrc, $vout) = cl_run_verifier('checkpoint', '--public-key', $logpk,
	'--witness-key', $wkey[0], '--witness-key', $wkey[1], '--quorum', '1', "$tmp/pasted.note");
is($vrc, 1, 'offline: cosignatures of the real checkpoint do not vouch for the fork');
is($fork->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint(\$n\$} . $forkbase . join('', @real) . qq{\$n\$::text,
	witnesses => ARRAY[$warr], quorum => 1)}), 'f', 'SQL: neither');
like(sql_error($fork, qq{SELECT consent_ledger.add_cosignature('pay', \$n\$} . $forkbase . join('', @real) . qq{\$n\$)}),
	qr/^/, 'add_cosignature on the fork stores lines (it does not know the witnesses)');
is($fork->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint(consent_ledger.checkpoint('pay'),
	witnesses => ARRAY[$warr], quorum => 1)}), 'f', 'but its receipt still fails the quorum');

# the real log still holds its quorum, and the witness ledgers verify
is($log->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$receipt2'::jsonb,
	witnesses => ARRAY[$warr], quorum => 2)}), 't', 'the real checkpoint 2 holds quorum 2');
for my $n (@w)
{
	$n->safe_psql('postgres', 'SELECT consent_ledger.seal()');
	my $v = cl_verify_row($n, 'postgres', 'consent_ledger.witness_log');
	ok($v->{valid}, $n->name . ': the witness ledger verifies') or diag explain $v;
}

# a cosignature handed out is never forgotten: the witness commits its
# state itself, so a caller's rollback does not undo it
$log->safe_psql('postgres', 'INSERT INTO pay VALUES (7, 70)');
$log->safe_psql('postgres', 'SELECT consent_ledger.seal()');
my $note7 = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'note'});
my $proof67 = $log->safe_psql('postgres', q{SELECT consent_ledger.consistency_proof('pay', 6, 7)});
like(sql_error($w[0], qq{BEGIN ISOLATION LEVEL REPEATABLE READ;
	SELECT consent_ledger.witness_cosign(\$n\$$note7\$n\$, '$proof67');}),
	qr/25001: witness_cosign\(\) must run in a READ COMMITTED transaction/, 'witness_cosign under REPEATABLE READ is 25001');
$w[0]->safe_psql('postgres', qq{BEGIN;
	SELECT consent_ledger.witness_cosign(\$n\$$note7\$n\$, '$proof67');
	ROLLBACK;});
is($w[0]->safe_psql('postgres', qq{SELECT consent_ledger.witness_last_size('$origin')}), '7',
	'a cosignature given in a transaction that rolled back is still recorded');
like(sql_error($w[0], qq{SELECT consent_ledger.witness_cosign(\$n\$$forknote\$n\$)}),
	qr/23000: .*rollback/, 'so the fork below it is refused as a rollback');

# one database per server witnesses (attack review R2, B2): the key is the
# server's, so a second database of the same witness could otherwise
# keep a state of its own and cosign a fork the first one refused
$w[0]->safe_psql('postgres', 'CREATE DATABASE other');
$w[0]->safe_psql('other', 'CREATE EXTENSION consent_ledger');
like(sql_error_db($w[0], 'other', qq{SELECT consent_ledger.witness_add_log('$origin', '$vkey')}),
	qr/55000: witness_add_log\(\): database "other" is not this server's witness database/,
	'witness_add_log() in another database of the witness is refused (55000)');
like(sql_error_db($w[0], 'other', qq{SELECT consent_ledger.witness_cosign(\$n\$$forknote\n\$n\$)}),
	qr/55000: witness_cosign\(\): database "other" is not this server's witness database/,
	'so is witness_cosign() of the fork there (55000)');
like(sql_error_db($log, 'postgres', qq{SELECT consent_ledger.witness_cosign(\$n\$$forknote\n\$n\$)}),
	qr/55000: witness_cosign\(\): this server is not a witness/,
	'and a server without consent_ledger.witness_database witnesses nothing (55000)');

# errors of the log side
like(sql_error($log, q{SELECT consent_ledger.add_cosignature('pay', 'x')}),
	qr/22023: malformed cosigned note/, 'add_cosignature: a malformed note is 22023');
like(sql_error($log, qq{SELECT consent_ledger.add_cosignature('pay', \$n\$$forknote\n\$n\$)}),
	qr/42704: ledger "pay" has no checkpoint with this note's body/, 'add_cosignature: a note of no checkpoint is 42704');
like(sql_error($w[0], qq{SELECT consent_ledger.witness_cosign(\$n\$$note7\n\$n\$)}),
	qr/^(?!.*ERROR)/s, 'witness_cosign of the checkpoint it cosigned last: cosigned again');
like(sql_error($w[1], qq{SELECT consent_ledger.witness_cosign(\$n\$} . ($note2 =~ s/^(.{5})/X$1/sr) . qq{\n\$n\$)}),
	qr/42704: log ".*" is not witnessed by this server/, 'witness_cosign of an unknown origin is 42704');
(my $badsig = $note2) =~ s/(\xe2\x80\x94 consent_ledger )(.)/$1 . ($2 eq 'A' ? 'B' : 'A')/e;
like(sql_error($w[1], qq{SELECT consent_ledger.witness_cosign(\$n\$$badsig\n\$n\$)}),
	qr/28000: checkpoint of ".*" is not signed by the log's registered key/, 'witness_cosign: a bad log signature is 28000');

# ---------------------------------------------------------------------
# The example as the log's consent_ledger.checkpoint_command (items 1 and
# 2 together): the sealer ships each new checkpoint through the script.
# A witness that cannot be reached makes the command fail -- visible in
# checkpoint_shipping -- while sealing goes on; once it is reachable, the
# sealer's retry stores both cosignatures and the newest receipt holds a
# quorum of two.
my $wrapper = "$tmp/ship_wrapper.sh";
sub write_wrapper
{
	my ($second) = @_;
	my $logdb = $log->connstr('postgres');
	cl_write_file("$wrapper.new",
		"#!/bin/sh\nCL_LOG_DB=\"$logdb\"\nCL_WITNESSES=\"$witness_dbs[0]\n$second\"\n"
		  . "export CL_LOG_DB CL_WITNESSES\nexec sh '$ship' \"\$@\"\n");
	chmod 0755, "$wrapper.new";
	rename("$wrapper.new", $wrapper) or die "rename: $!";
}
write_wrapper('host=/nonexistent-witness port=1 dbname=postgres connect_timeout=2');
$log->append_conf('postgresql.conf', "consent_ledger.checkpoint_command = '$wrapper %f %o %s'");
$log->reload;
$log->safe_psql('postgres', 'INSERT INTO pay VALUES (200, 1), (201, 2)');
$log->safe_psql('postgres', 'SELECT consent_ledger.seal()');
ok(cl_wait_for($log, 'postgres', q{SELECT consecutive_failures > 0 FROM consent_ledger.checkpoint_shipping
	WHERE relation = 'pay'::regclass}, 60), 'checkpoint_command: a witness out of reach is a failed shipment');
like($log->safe_psql('postgres', q{SELECT last_error FROM consent_ledger.checkpoint_shipping WHERE relation = 'pay'::regclass}),
	qr/exit code 1|exited with 1|status 1/, '... its error says the command exited with 1');
my $failed_size = $log->safe_psql('postgres', q{SELECT checkpoint_size FROM consent_ledger.checkpoint_shipping
	WHERE relation = 'pay'::regclass});
$log->safe_psql('postgres', 'INSERT INTO pay VALUES (202, 3)');
# (seal() or the sealer on its own, whichever comes first)
ok(cl_wait_for($log, 'postgres', qq{SELECT consent_ledger.seal() >= 0 AND checkpoint_size > $failed_size
	FROM consent_ledger.checkpoint_shipping WHERE relation = 'pay'::regclass}, 60),
	'sealing goes on meanwhile: a new checkpoint');
write_wrapper($witness_dbs[1]);
ok(cl_wait_for($log, 'postgres', q{SELECT shipped_size = checkpoint_size AND consecutive_failures = 0
	FROM consent_ledger.checkpoint_shipping WHERE relation = 'pay'::regclass}, 120),
	'once the witness is reachable, the retry ships the newest checkpoint');
my $shipped = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')});
is($log->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$shipped'::jsonb,
	witnesses => ARRAY[$warr], quorum => 2)}), 't',
	'the newest receipt, shipped by checkpoint_command, holds a quorum of two');
is($w[1]->safe_psql('postgres', qq{SELECT consent_ledger.witness_last_size('$origin')}),
	$log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'tree_size'}),
	'witness 2 cosigned the newest size');

# a line in witness 1's name that does not verify -- stored by
# add_cosignature(), which cannot check lines of witnesses it does not
# know -- vetoes nothing: witness 1's good line still counts (attack
# review R2, W5)
my $cosigned = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'note'});
my ($w1line) = ($cosigned =~ /^(\xe2\x80\x94 w1\.example\/witness \S+)$/m);
ok(defined $w1line, 'the newest note carries witness 1\'s line');
(my $badline = $w1line) =~ s/(.{60})(.)/$1 . ($2 eq 'A' ? 'B' : 'A')/e;
my ($cbody) = ($cosigned =~ /\A(.*?\n\n\xe2\x80\x94 consent_ledger [^\n]*\n)/s);
$log->safe_psql('postgres', qq{SELECT consent_ledger.add_cosignature('pay', \$n\$$cbody$badline\n\$n\$)});
my $vetoed = $log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')});
like($log->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('pay')->>'note'}), qr/\Q$badline\E/,
	'the bad line is stored and carried');
is($log->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$vetoed'::jsonb,
	witnesses => ARRAY[$warr], quorum => 2)}), 't', 'SQL: the quorum of two still holds beside it');
cl_write_file("$tmp/vetoed.json", $vetoed);
($vrc, $vout) = cl_run_verifier('checkpoint', '--public-key', $logpk,
	'--witness-key', $wkey[0], '--witness-key', $wkey[1], '--quorum', '2', "$tmp/vetoed.json");
is($vrc, 0, 'offline: so does it') or diag $vout;

$_->stop for ($log, $fork, @w);
done_testing();
