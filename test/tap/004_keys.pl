# Signing key handling: the generated default key, configured key files
# and their permission checks, key rotation with an endorsement, and that
# SQL never hands out the secret.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(sha256);
use MIME::Base64 qw(decode_base64 encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

# absolute: the server resolves a relative signing_key_file against $PGDATA
my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

# C2SP key id of an Ed25519 key named "consent_ledger", 8 hex digits.
sub key_id_of
{
	my ($pk_b64) = @_;
	return unpack('H8', sha256("consent_ledger\n\x01" . decode_base64($pk_b64)));
}

# Makes a key file with the verifier; returns (path, public key base64).
sub keygen
{
	my ($name) = @_;
	my $path = "$tmp/$name";
	my ($rc, $out) = cl_run_verifier('keygen', $path);
	is($rc, 0, "keygen $name exits 0");
	my ($pk) = $out =~ /\A([A-Za-z0-9+\/]{43}=)\n/;
	ok(defined $pk, "keygen $name prints the public key");
	is(sprintf('%04o', (stat $path)[2] & 07777), '0600', "keygen $name writes mode 0600");
	return ($path, $pk);
}

###########################################################################
# (a) default key, generated at first start
###########################################################################

my $node = PostgreSQL::Test::Cluster->new('keys');
$node->init;
$node->start;

my $defkey = abs_path($node->data_dir) . '/consent_ledger/signing.key';
ok(-f $defkey, 'first start generates $PGDATA/consent_ledger/signing.key');
is(sprintf('%04o', (stat $defkey)[2] & 07777), '0600', 'generated key file has mode 0600');
my $def_seed_b64 = slurp_file($defkey);
like($def_seed_b64, qr/\A[A-Za-z0-9+\/]{43}=\n\z/,
	'generated key file holds one line: base64 of 32 bytes');
$def_seed_b64 =~ s/\n\z//;

ok($node->log_contains(qr/consent_ledger generated a new signing key in "\Q$defkey\E"/),
	'log says a new key was generated');
my ($logged_pk) = slurp_file($node->logfile) =~ /consent_ledger signing key [0-9a-f]{8} loaded, public key (\S+)/;
ok(defined $logged_pk, 'log mentions the public key at startup');

$node->safe_psql('postgres', 'CREATE EXTENSION consent_ledger');
my $def_pk = $node->safe_psql('postgres', 'SELECT consent_ledger.public_key()');
is($def_pk, $logged_pk, 'public_key() equals the key logged at startup');

SKIP:
{
	my $derived = cl_public_from_seed_file($defkey, $tmp);
	skip 'openssl with Ed25519 not available', 1 unless defined $derived;
	is($def_pk, $derived, 'public_key() is the Ed25519 public key of the seed in the key file');
}
is($node->safe_psql('postgres', 'SELECT consent_ledger.key_id()'),
	key_id_of($def_pk), 'key_id() is the C2SP key id of the public key');
is($node->safe_psql('postgres', 'SELECT consent_ledger.verifier_key()'),
	'consent_ledger+' . key_id_of($def_pk) . '+' . encode_base64("\x01" . decode_base64($def_pk), ''),
	'verifier_key() is name+keyid+base64(0x01||public key)');

# A restart keeps the key.
my $offset = -s $node->logfile;
$node->restart;
is(slurp_file($defkey), "$def_seed_b64\n", 'restart leaves the default key file unchanged');
ok(!$node->log_contains(qr/generated a new signing key/, $offset), 'restart generates no new key');
is($node->safe_psql('postgres', 'SELECT consent_ledger.public_key()'),
	$def_pk, 'public key unchanged after restart');

###########################################################################
# (b)-(d) configured key files that must be refused, and ones accepted
###########################################################################

my $pnode = PostgreSQL::Test::Cluster->new('keyperm');
$pnode->init;

# Tries to start $pnode with the given signing_key_file; returns true if
# it started.  $pattern, if given, must appear in the log of the attempt.
sub start_with_key
{
	my ($path, $what, $pattern) = @_;
	$pnode->append_conf('postgresql.conf', "consent_ledger.signing_key_file = '$path'");
	my $off = -s $pnode->logfile // 0;
	my $started = $pnode->start(fail_ok => 1);
	if (defined $pattern)
	{
		ok(!$started, "$what: server refuses to start");
		ok($pnode->log_contains($pattern, $off), "$what: log says why")
		  or diag(slurp_file($pnode->logfile, $off));
	}
	return $started;
}

my ($pkey, $ppk) = keygen('perm.key');

chmod(0644, $pkey);
start_with_key($pkey, 'key file mode 0644',
	qr/FATAL:.*signing key file "\Q$pkey\E" has group or world access/);
chmod(0660, $pkey);
start_with_key($pkey, 'key file mode 0660 (group-writable)', qr/FATAL:.*has group or world access/);
chmod(0604, $pkey);
start_with_key($pkey, 'key file mode 0604 (other-readable)', qr/FATAL:.*has group or world access/);

chmod(0640, $pkey);
ok(start_with_key($pkey, 'key file mode 0640'), 'key file mode 0640: server starts');
$pnode->safe_psql('postgres', 'CREATE EXTENSION consent_ledger');
is($pnode->safe_psql('postgres', 'SELECT consent_ledger.public_key()'),
	$ppk, 'server signs with the configured key (0640)');
ok(!-e $pnode->data_dir . '/consent_ledger/signing.key',
	'no default key is generated when a key file is configured');
$pnode->stop;

chmod(0600, $pkey);
ok(start_with_key($pkey, 'key file mode 0600'), 'key file mode 0600: server starts');
is($pnode->safe_psql('postgres', 'SELECT consent_ledger.public_key()'),
	$ppk, 'server signs with the configured key (0600)');
$pnode->stop;

# (c) malformed files
my $bad = cl_write_file("$tmp/garbage.key", "this is not a key\n", 0600);
start_with_key($bad, 'key file with garbage', qr/FATAL:.*signing key file "\Q$bad\E" is malformed/);
my $short = cl_write_file("$tmp/short.key", encode_base64('0123456789abcdef', '') . "\n", 0600);
start_with_key($short, 'key file with a 16-byte value', qr/FATAL:.*is malformed/);
my $empty = cl_write_file("$tmp/empty.key", '', 0600);
start_with_key($empty, 'empty key file', qr/FATAL:.*is malformed/);

# (d) missing file
my $missing = "$tmp/does-not-exist.key";
start_with_key($missing, 'missing key file',
	qr/FATAL:.*could not open signing key file "\Q$missing\E"/);

# and back to a good file: the refusals left nothing behind
ok(start_with_key($pkey, 'good key file after refusals'), 'server starts again with a good key file');
is($pnode->safe_psql('postgres', 'SELECT consent_ledger.public_key()'),
	$ppk, 'public key is the configured one after the refusals');
$pnode->stop;

###########################################################################
# (e) rotation: default key -> configured key
###########################################################################

$node->safe_psql('postgres', q{
	CREATE TABLE t (id int, v text);
	SELECT consent_ledger.create_ledger('t');
	INSERT INTO t VALUES (1, 'one'), (2, 'two');
	INSERT INTO t VALUES (3, 'three');
});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
my $v = cl_verify_row($node, 'postgres', 't');
ok($v->{valid} && $v->{rows} == 3 && $v->{pending} == 0, 'ledger valid before rotation')
  or diag explain $v;
my $old_id = key_id_of($def_pk);
my $old_cp = $node->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('t')});
my $old_cp_file = cl_write_file("$tmp/old_checkpoint.json", $old_cp);
like($old_cp, qr/"key_id": "$old_id"/, 'checkpoint before rotation is signed by the default key');

my ($newkey, $new_pk) = keygen('rotated.key');
my $new_id = key_id_of($new_pk);
isnt($new_pk, $def_pk, 'the new key differs from the default key');
$node->append_conf('postgresql.conf', "consent_ledger.signing_key_file = '$newkey'");
$offset = -s $node->logfile;
$node->restart;
ok($node->log_contains(
		qr/signing key changed since the last start \(previous public key \Q$def_pk\E\)/, $offset),
	'log reports the key change');
is($node->safe_psql('postgres', 'SELECT consent_ledger.public_key()'),
	$new_pk, 'public_key() is the configured key after restart');
is($node->safe_psql('postgres', 'SELECT consent_ledger.key_id()'),
	$new_id, 'key_id() is the configured key\'s id after restart');

$node->safe_psql('postgres', q{INSERT INTO t VALUES (4, 'four'), (5, 'five')});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');

my $keys = $node->safe_psql('postgres',
	q{SELECT key_id || '|' || encode(public_key, 'base64') || '|' || (endorsement IS NOT NULL)
	  FROM consent_ledger.keys ORDER BY first_seen, key_id});
is($keys, "$old_id|$def_pk|false\n$new_id|$new_pk|true",
	'consent_ledger.keys holds the old key (no endorsement) and the new one (endorsed)');

my $endorsement = $node->safe_psql('postgres',
	qq{SELECT endorsement FROM consent_ledger.keys WHERE key_id = '$new_id'});
like($endorsement, qr/\Aconsent_ledger key rotation\nold \Q$def_pk\E\nnew \Q$new_pk\E\ntime \d+\n/,
	'endorsement names the old and the new public key');
my ($body, $sigold, $signew) = $endorsement =~
  /\A(.*?\n)\n\xe2\x80\x94 consent_ledger ([A-Za-z0-9+\/=]+)\n\xe2\x80\x94 consent_ledger ([A-Za-z0-9+\/=]+)\n\z/s;
ok(defined $signew, 'endorsement ends with two consent_ledger signature lines (old key, new key)')
  or diag $endorsement;
SKIP:
{
	skip 'endorsement not parseable', 5 unless defined $signew;
	my $raw = decode_base64($sigold);
	my $rawnew = decode_base64($signew);
	is(unpack('H8', substr($raw, 0, 4)), $old_id, 'first endorsement signature names the old key id');
	is(unpack('H8', substr($rawnew, 0, 4)), $new_id, 'second endorsement signature names the new key id');
	my $ok = cl_ed25519_verify($def_pk, $body, substr($raw, 4), $tmp);
	skip 'openssl with Ed25519 not available', 3 unless defined $ok;
	ok($ok, 'endorsement signature verifies under the old public key');
	ok(cl_ed25519_verify($new_pk, $body, substr($rawnew, 4), $tmp),
		'endorsement signature verifies under the new public key');
	(my $forged = $body) =~ s/new \Q$new_pk\E/new $def_pk/;
	ok(!cl_ed25519_verify($def_pk, $forged, substr($raw, 4), $tmp),
		'endorsement signature does not verify over a different text');
}

my $cps = $node->safe_psql('postgres',
	q{SELECT string_agg(key_id, ',' ORDER BY seq) FROM consent_ledger.checkpoints});
like($cps, qr/\A($old_id,)*$old_id(,$new_id)+\z/,
	'checkpoints: the old key signed the earlier ones, the new key the later ones');

$v = cl_verify_row($node, 'postgres', 't');
ok($v->{valid}, 'verify() valid across the key rotation') or diag $v->{problem};
is($v->{rows}, 5, 'verify() counts every row');
is($v->{pending}, 0, 'nothing pending');
is($node->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint('$old_cp')}),
	't', 'checkpoint signed by the old key still verifies');
is($node->safe_psql('postgres',
		q{SELECT consent_ledger.verify_checkpoint(consent_ledger.checkpoint('t'))}),
	't', 'latest checkpoint (new key) verifies');

my $export = cl_export_to_file($node, 'postgres', 't', "$tmp/rotated.export");
my ($rc, $out) = cl_run_verifier('export', '--public-key', $def_pk, '--public-key', $new_pk,
	'--checkpoint', $old_cp_file, $export);
is($rc, 0, 'offline verifier accepts the export given both public keys');
like($out, qr/\AOK: /, 'offline verifier prints OK');
like(slurp_file($export), qr/^endorsement [A-Za-z0-9+\/=]+$/m, 'the export carries the endorsement');
# Only the newest trusted key: the endorsement links the older one.
($rc, $out) = cl_run_verifier('export', '--public-key', $new_pk, '--checkpoint', $old_cp_file, $export);
is($rc, 0, 'offline verifier accepts the export and the old receipt given only the new public key')
  or diag $out;
like($out, qr/\AOK: .*1 older or newer key trusted through endorsements/,
	'offline verifier says it followed an endorsement');
($rc, $out) = cl_run_verifier('export', '--public-key', $def_pk, $export);
is($rc, 0, 'offline verifier accepts the export given only the old public key (forward link)')
  or diag $out;
# Without the endorsement the old checkpoints are signed by an unlinked key.
my $noend = slurp_file($export);
$noend =~ s/^endorsement .*\n//mg;
my $noend_file = cl_write_file("$tmp/rotated-noend.export", $noend);
($rc, $out) = cl_run_verifier('export', '--public-key', $new_pk, $noend_file);
is($rc, 1, 'offline verifier rejects the export without its endorsement given only the new key');
like($out, qr/\AFAIL: checkpoint 1 .*signed by key id $old_id, which no given public key endorses \(unendorsed key rotation/,
	'... naming the unendorsed key');
# A statement signed by the old key only endorses nothing (and fails the export).
{
	my ($b64) = slurp_file($export) =~ /^endorsement (\S+)$/m;
	my $stmt = decode_base64($b64);
	$stmt =~ s/\n\xe2\x80\x94 consent_ledger \S+\n\z/\n/;
	(my $half = slurp_file($export)) =~ s/^endorsement \S+$/'endorsement ' . encode_base64($stmt, '')/me;
	my $half_file = cl_write_file("$tmp/rotated-half.export", $half);
	($rc, $out) = cl_run_verifier('export', '--public-key', $new_pk, $half_file);
	is($rc, 1, 'offline verifier rejects an endorsement signed by the old key only');
	like($out, qr/\AFAIL: endorsement 1: not signed by both/, '... saying so');
}

# Restarting with the same configured key adds no key.
$node->restart;
$node->safe_psql('postgres', q{INSERT INTO t VALUES (6, 'six')});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM consent_ledger.keys'),
	'2', 'restart with an unchanged key records no new key');
ok(cl_verify_row($node, 'postgres', 't')->{valid}, 'ledger still valid');

###########################################################################
# (f) SQL cannot read the secret
###########################################################################

my $new_seed_b64 = slurp_file($newkey);
$new_seed_b64 =~ s/\n\z//;
my @secrets = (
	[ 'default key seed', $def_seed_b64 ],
	[ 'configured key seed', $new_seed_b64 ]);

$node->safe_psql('postgres', q{CREATE ROLE plain LOGIN; GRANT consent_ledger_auditor TO plain;});
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT pg_read_file('consent_ledger/signing.key')},
	extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a non-superuser cannot pg_read_file() the default key');
like($stderr, qr/permission denied/, '... permission denied');
($ret, $stdout, $stderr) = $node->psql('postgres',
	qq{SELECT pg_read_binary_file('$newkey')}, extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a non-superuser cannot pg_read_binary_file() the configured key');
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SHOW consent_ledger.signing_key_file}, extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a non-superuser cannot SHOW consent_ledger.signing_key_file');

my $public = $node->safe_psql('postgres',
	q{SELECT consent_ledger.public_key(), consent_ledger.key_id(), consent_ledger.verifier_key()},
	extra_params => [ '-U', 'plain' ]);
like($public, qr/\A\Q$new_pk\E\|$new_id\|consent_ledger\+$new_id\+/,
	'public_key(), key_id(), verifier_key() work for a non-superuser');

# Everything SQL hands out about keys and checkpoints, plus the server log.
my %texts = (
	'public_key/key_id/verifier_key' => $public,
	'checkpoint()' => $node->safe_psql('postgres', q{SELECT consent_ledger.checkpoint('t')}),
	'export()' => slurp_file($export)
	  . $node->safe_psql('postgres', q{SELECT consent_ledger.export('t')}),
	'consent_ledger.keys' => $node->safe_psql('postgres',
		q{SELECT key_id, encode(public_key, 'base64'), endorsement FROM consent_ledger.keys}),
	'consent_ledger.checkpoints' => $node->safe_psql('postgres',
		q{SELECT note, encode(frontier, 'base64') FROM consent_ledger.checkpoints}),
	'pg_settings' => $node->safe_psql('postgres',
		q{SELECT string_agg(name || '=' || setting, ' ') FROM pg_settings WHERE name LIKE 'consent_ledger.%'}),
	'server log' => slurp_file($node->logfile));
foreach my $s (@secrets)
{
	my ($what, $b64) = @$s;
	# 40 base64 characters cover the first 30 bytes of the seed, which are
	# also the first bytes of libsodium's 64-byte secret key (seed || pk).
	my $needle = substr($b64, 0, 40);
	my $hex = unpack('H*', decode_base64($b64));
	foreach my $t (sort keys %texts)
	{
		ok(index($texts{$t}, $needle) < 0 && index(lc $texts{$t}, substr($hex, 0, 40)) < 0,
			"$t does not contain the $what");
	}
}


###########################################################################
# (g) a rotation without the previous key: recorded, logged and reported
#     as unendorsed; endorsed later when the previous key is provided
###########################################################################

my ($key3, $pk3) = keygen('third.key');
my $id3 = key_id_of($pk3);
$node->append_conf('postgresql.conf', "consent_ledger.signing_key_file = '$key3'");
$offset = -s $node->logfile;
$node->restart;
ok($node->log_contains(
		qr/WARNING:.*signing key changed without an endorsement by the previous key \Q$new_pk\E/, $offset),
	'unendorsed rotation: the server logs a WARNING at start');
$node->safe_psql('postgres', q{INSERT INTO t VALUES (7, 'seven')});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
is($node->safe_psql('postgres',
		qq{SELECT endorsement IS NULL FROM consent_ledger.keys WHERE key_id = '$id3'}),
	't', 'unendorsed rotation: the new key is recorded without an endorsement');
$v = cl_verify_row($node, 'postgres', 't');
ok(!$v->{valid}, 'unendorsed rotation: verify() is not valid');
like($v->{problem}, qr/unendorsed key rotation at checkpoint \d+: its key $id3 is not endorsed/,
	'unendorsed rotation: verify() names the checkpoint and the key');
$export = cl_export_to_file($node, 'postgres', 't', "$tmp/unendorsed.export");
($rc, $out) = cl_run_verifier('export', '--public-key', $pk3, $export);
is($rc, 1, 'unendorsed rotation: offline verifier fails given only the newest key');
like($out, qr/which no given public key endorses \(unendorsed key rotation/,
	'unendorsed rotation: offline verifier says why');
($rc, $out) = cl_run_verifier('export', '--public-key', $pk3, '--public-key', $new_pk, $export);
is($rc, 0, 'unendorsed rotation: offline verifier accepts it when the auditor trusts both keys explicitly')
  or diag $out;

# The previous key turns up: restart with it as previous_signing_key_file.
$node->append_conf('postgresql.conf', "consent_ledger.previous_signing_key_file = '$newkey'");
$offset = -s $node->logfile;
$node->restart;
ok($node->log_contains(qr/key rotation from public key \Q$new_pk\E endorsed by that key/, $offset),
	'previous_signing_key_file: the log says the rotation is endorsed');
$node->safe_psql('postgres', q{INSERT INTO t VALUES (8, 'eight')});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
like($node->safe_psql('postgres',
		qq{SELECT endorsement FROM consent_ledger.keys WHERE key_id = '$id3'}),
	qr/\Aconsent_ledger key rotation\nold \Q$new_pk\E\nnew \Q$pk3\E\n/,
	'previous_signing_key_file: the recorded key gets its endorsement');
$v = cl_verify_row($node, 'postgres', 't');
ok($v->{valid}, 'previous_signing_key_file: verify() valid again') or diag $v->{problem};
$export = cl_export_to_file($node, 'postgres', 't', "$tmp/endorsed3.export");
($rc, $out) = cl_run_verifier('export', '--public-key', $pk3, '--checkpoint', $old_cp_file, $export);
is($rc, 0, 'offline verifier follows two endorsements from the newest key back to the first')
  or diag $out;
like($out, qr/2 older or newer keys trusted through endorsements/, '... and says so');

# Restarts with the same settings (review 3, item 10): the statement signed
# above is reused, not signed again with a new time, so the rotation keeps
# one statement -- also in a database that records the key only now.
my $stmt3 = $node->safe_psql('postgres',
	qq{SELECT endorsement FROM consent_ledger.keys WHERE key_id = '$id3'});
my $nend = $node->safe_psql('postgres',
	q{SELECT count(*) FROM consent_ledger.keys WHERE endorsement IS NOT NULL});
foreach my $i (1 .. 2)
{
	$offset = -s $node->logfile;
	$node->restart;
	ok($node->log_contains(
			qr/key rotation from public key \Q$new_pk\E endorsed by that key \(the statement signed at an earlier start\)/,
			$offset),
		"restart $i with the same previous_signing_key_file: the stored statement is reused");
	ok(!$node->log_contains(qr/key rotation from public key \Q$new_pk\E endorsed by that key\n/, $offset),
		"restart $i: no new rotation statement is signed");
	$node->safe_psql('postgres', qq{INSERT INTO t VALUES (9 + $i, 'restart $i')});
	$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
}
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM consent_ledger.keys WHERE endorsement IS NOT NULL}),
	$nend, 'restarts: the number of endorsements does not grow');
$node->safe_psql('postgres', 'CREATE DATABASE later');
$node->safe_psql('later', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE lt (id int);
	SELECT consent_ledger.create_ledger('lt');
	INSERT INTO lt VALUES (1);
	SELECT consent_ledger.seal();
});
is($node->safe_psql('later', qq{SELECT endorsement FROM consent_ledger.keys WHERE key_id = '$id3'}),
	$stmt3, 'a database that records the key after the restarts gets the same statement');
$export = cl_export_to_file($node, 'postgres', 't', "$tmp/restarted.export");
my @pair = grep { decode_base64($_) =~ /^old \Q$new_pk\E\nnew \Q$pk3\E\n/m }
  (slurp_file($export) =~ /^endorsement (\S+)$/mg);
is(scalar(@pair), 1, 'the export has one endorsement line for the rotation');
ok(cl_verify_row($node, 'postgres', 't')->{valid}, 'restarts: verify() valid');
$node->stop;

###########################################################################
# (h) consent_ledger.key_directory: the generated key outside $PGDATA
###########################################################################

ok(slurp_file($node->logfile) =~
	  /WARNING:.*signing key file "\Q$defkey\E" is inside the data directory/,
	'a key inside the data directory is warned about at start');

my $kdir = "$tmp/keydir";
my $knode = PostgreSQL::Test::Cluster->new('keydir');
$knode->init(allows_streaming => 1);
$knode->append_conf('postgresql.conf', "consent_ledger.key_directory = '$kdir'");
$knode->start;
ok(-f "$kdir/signing.key", 'key_directory: the key is generated there');
ok(!-e $knode->data_dir . '/consent_ledger/signing.key', 'key_directory: no key in the data directory');
ok(!$knode->log_contains(qr/is inside the data directory/), 'key_directory: no warning');
$knode->safe_psql('postgres', 'CREATE EXTENSION consent_ledger');
my $kpk = $knode->safe_psql('postgres', 'SELECT consent_ledger.public_key()');
SKIP:
{
	my $derived = cl_public_from_seed_file("$kdir/signing.key", $tmp);
	skip 'openssl with Ed25519 not available', 1 unless defined $derived;
	is($kpk, $derived, 'key_directory: the server signs with the key generated there');
}
$knode->safe_psql('postgres', q{
	CREATE TABLE k (id int, v text);
	SELECT consent_ledger.create_ledger('k');
	INSERT INTO k VALUES (1, 'one');
	SELECT consent_ledger.seal();
});

###########################################################################
# (i) a standby starts without the secret: it verifies, it does not sign
###########################################################################

$knode->backup('kbkp');
my $kstandby = PostgreSQL::Test::Cluster->new('keystandby');
$kstandby->init_from_backup($knode, 'kbkp', has_streaming => 1);
my $absent = "$tmp/standby-has-no-key";
$kstandby->append_conf('postgresql.conf', "consent_ledger.signing_key_file = '$absent'");
ok($kstandby->start(fail_ok => 1), 'standby without its key file starts');
ok($kstandby->log_contains(qr/standby starting without a signing key/), 'standby: the log says it runs without a key');
$knode->safe_psql('postgres', q{INSERT INTO k VALUES (2, 'two'); SELECT consent_ledger.seal();});
$knode->wait_for_catchup($kstandby, 'replay', $knode->lsn('insert'));
$v = cl_verify_row($kstandby, 'postgres', 'k');
ok($v->{valid} && $v->{rows} == 2, 'standby without a key: verify() valid') or diag explain $v;
($ret, $stdout, $stderr) = $kstandby->psql('postgres', 'SELECT consent_ledger.public_key()');
like($stderr, qr/this server has no consent_ledger signing key/, 'standby without a key: public_key() says so');
$kstandby->stop;
# a primary with a missing key file still refuses to start
my $kprim = PostgreSQL::Test::Cluster->new('keyprimary');
$kprim->init;
$kprim->append_conf('postgresql.conf', "consent_ledger.signing_key_file = '$absent'");
ok(!$kprim->start(fail_ok => 1), 'a primary with a missing key file does not start');

###########################################################################
# (j) pg_upgrade: the new cluster with the old key (no rotation), and with
#     a new key endorsed by the old one
###########################################################################

$knode->stop;
sub upgrade_to
{
	my ($name, @conf) = @_;
	my $new = PostgreSQL::Test::Cluster->new($name);
	$new->init;
	$new->append_conf('postgresql.conf', $_) foreach @conf;
	my $bindir = $new->config_data('--bindir');
	my $wd = PostgreSQL::Test::Utils::tempdir;
	my ($olddir, $newdir) = (abs_path($knode->data_dir), abs_path($new->data_dir));
	my $old_cwd = Cwd::getcwd();
	chdir $wd;
	my $ok = PostgreSQL::Test::Utils::run_log([ 'pg_upgrade', '--no-sync',
		'-d', $olddir, '-D', $newdir, '-b', $bindir, '-B', $bindir,
		'-s', $new->host, '-p', $knode->port, '-P', $new->port ]);
	chdir $old_cwd;
	ok($ok, "pg_upgrade to $name");
	$new->start;
	return $new;
}
my $up1 = upgrade_to('upsame', "consent_ledger.key_directory = '$kdir'");
$up1->safe_psql('postgres', q{INSERT INTO k VALUES (3, 'three'); SELECT consent_ledger.seal();});
is($up1->safe_psql('postgres', 'SELECT count(*) FROM consent_ledger.keys'), '1',
	'pg_upgrade with the old key directory: no new key recorded');
ok(cl_verify_row($up1, 'postgres', 'k')->{valid}, 'pg_upgrade with the old key: verify() valid');
$up1->stop;

my ($upkey, $uppk) = keygen('upgraded.key');
my $up2 = upgrade_to('upnew', "consent_ledger.signing_key_file = '$upkey'",
	"consent_ledger.previous_signing_key_file = '$kdir/signing.key'");
$up2->safe_psql('postgres', q{INSERT INTO k VALUES (3, 'three'); SELECT consent_ledger.seal();});
is($up2->safe_psql('postgres',
		q{SELECT string_agg(encode(public_key, 'base64') || ':' || (endorsement IS NOT NULL), ',' ORDER BY first_seen)
		  FROM consent_ledger.keys}),
	"$kpk:false,$uppk:true", 'pg_upgrade with a new key and the old one as previous key: endorsed rotation');
ok(cl_verify_row($up2, 'postgres', 'k')->{valid}, 'pg_upgrade with an endorsed new key: verify() valid');
$export = cl_export_to_file($up2, 'postgres', 'k', "$tmp/upgraded.export");
($rc, $out) = cl_run_verifier('export', '--public-key', $uppk, $export);
is($rc, 0, 'pg_upgrade with an endorsed new key: offline verifier needs only the new key') or diag $out;
$up2->stop;

my $up3 = upgrade_to('upbare');
$up3->safe_psql('postgres', q{INSERT INTO k VALUES (3, 'three'); SELECT consent_ledger.seal();});
$v = cl_verify_row($up3, 'postgres', 'k');
like($v->{problem} // '', qr/unendorsed key rotation/,
	'pg_upgrade to a cluster that generated its own key: verify() reports the unendorsed rotation');
$up3->stop;
done_testing();
