# Subject-signed consent and consent receipts (issue #17 items 1 and 2,
# README "Subject-signed consent", "Consent receipts"): a subject's key and
# signed grant made with openssl (the documented client recipe); the
# receipt of that grant checked offline by consent-ledger-verify receipt,
# every kind of forgery of it refused; after pg_dump / pg_restore the
# receipt taken before still verifies and the restored database gives the
# same receipt; a dump whose signed grant lost its signature restores into
# a database that counts no consent from it (and verify() reports the row).

use strict;
use warnings;

use Cwd qw(abs_path);
use MIME::Base64;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $openssl = cl_openssl();

my $node = PostgreSQL::Test::Cluster->new('subjects');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');

# A subject's device: an Ed25519 key pair made by openssl.
sub run_ok_out
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err)
	  or die "@cmd failed: $err";
	return $out;
}
run_ok_out($openssl, 'genpkey', '-algorithm', 'ed25519', '-out', "$tmp/dev.pem");
my $der = run_ok_out($openssl, 'pkey', '-in', "$tmp/dev.pem", '-pubout', '-outform', 'DER');
my $pk = MIME::Base64::encode_base64(substr($der, -32), '');

# Signs a statement's exact bytes on the device; the signature, base64.
sub sign
{
	my ($stmt) = @_;
	cl_write_file("$tmp/stmt", $stmt);
	my $sig = run_ok_out($openssl, 'pkeyutl', '-sign', '-inkey', "$tmp/dev.pem", '-rawin',
		'-in', "$tmp/stmt");
	return MIME::Base64::encode_base64($sig, '');
}

$node->safe_psql('src', q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('trial', require_subject_signature => true);
	SELECT consent_ledger.define_purpose('newsletter');
	CREATE ROLE analyst;
	SELECT consent_ledger.authorize_purpose('analyst', 'trial');
	CREATE TABLE samples (subject text, value int);
	INSERT INTO samples VALUES ('p-17', 1), ('p-18', 2);
	SELECT consent_ledger.protect('samples', 'subject');
	GRANT SELECT ON samples TO analyst;
});
my $origin = $node->safe_psql('src', 'SELECT consent_ledger.consent_origin()');
my $t = time() - 60;
my $kstmt = "consent-ledger-subject-key/v1\norigin $origin\nsubject p-17\nkey $pk\ntime $t\nnonce device-key-000000001\n";
my $ksig = sign($kstmt);
is($node->safe_psql('src', "SELECT consent_ledger.register_subject_key('p-17', '$pk', \$q\$$kstmt\$q\$, '$ksig')"),
	'1', 'the subject registers the key made on the device');
my $gstmt = "consent-ledger-consent/v1\norigin $origin\nsubject p-17\npurpose trial\naction grant\nexpires never\ntime "
  . ($t + 1) . "\nnonce device-grant-0000001\n";
my $gsig = sign($gstmt);
my $event = $node->safe_psql('src',
	"SELECT consent_ledger.record_signed_consent(\$q\$$gstmt\$q\$, '$gsig', '{\"screen\": \"consent-v3\"}')");
like($event, qr/^\d+$/, 'the signed grant is recorded');
my $unsigned = $node->safe_psql('src', q{SELECT consent_ledger.grant_consent('p-18', 'newsletter')});
$node->safe_psql('src', 'SELECT consent_ledger.seal()');

my $read = q{SET ROLE analyst; SET consent_ledger.purpose = 'trial'; SELECT string_agg(subject, ',' ORDER BY subject) FROM samples};
is($node->safe_psql('src', $read), 'p-17', 'the analyst sees the subject who signed');

my $server_pk = $node->safe_psql('src', 'SELECT consent_ledger.public_key()');
my $receipt = $node->safe_psql('src', "SELECT consent_ledger.consent_receipt($event)");
my $rfile = cl_write_file("$tmp/receipt.json", $receipt);

# --- offline: the genuine receipt ---
my ($rc, $out) = cl_run_verifier('receipt', '--public-key', $server_pk, $rfile);
is($rc, 0, 'the receipt verifies offline');
like($out, qr/^OK: consent event $event is leaf \d+ of the tree of size \d+/m, 'it names the event');
like($out, qr/^subject p-17\npurpose trial\naction grant\nexpires no expiry\n/m, 'and what was consented to');
like($out, qr/^subject-signed: yes, by key \Q$pk\E$/m, 'signed by the subject\'s key');
($rc) = cl_run_verifier('receipt', '--public-key', $server_pk, '--subject-key', $pk, $rfile);
is($rc, 0, '--subject-key: the person\'s own key');

# --- offline: what must fail ---
($rc, $out) = cl_run_verifier('receipt', '--public-key', $server_pk, '--subject-key',
	MIME::Base64::encode_base64('k' x 32, ''), $rfile);
is($rc, 1, 'another --subject-key fails');
my $other_pk = $node->safe_psql('src', q{SELECT encode(substr(sha512('x'), 1, 32), 'base64')});
($rc, $out) = cl_run_verifier('receipt', '--public-key', $other_pk, $rfile);
is($rc, 1, 'another server key fails');

my %forged;
($forged{'another subject in event'} = $receipt) =~ s/"subject": "p-17"/"subject": "p-18"/;
($forged{'another purpose in event'} = $receipt) =~ s/"purpose": "trial"/"purpose": "newsletter"/;
($forged{'a withdrawal shown as a grant'} = $receipt) =~ s/"action": "grant"/"action": "withdraw"/;
($forged{'another event id'} = $receipt) =~ s/"event_id": $event\b/"event_id": $unsigned/;
{
	# one leaf byte changed
	my $r = $receipt;
	$r =~ /"leaf_data": "([0-9a-f]+)"/ or die 'no leaf_data';
	my $ld = $1;
	my $changed = $ld;
	substr($changed, -2, 2) = substr($ld, -2, 2) eq '00' ? '01' : '00';
	$r =~ s/\Q$ld\E/$changed/;
	$forged{'a changed leaf'} = $r;
}
{
	# another event's leaf and proof under this event: the leaf is not this event
	$node->safe_psql('src', 'SELECT consent_ledger.seal()');
	my $other = $node->safe_psql('src', "SELECT consent_ledger.consent_receipt($unsigned)");
	my $r = $node->safe_psql('src',
		"SELECT (\$r1\$$other\$r1\$::jsonb || jsonb_build_object('event', (\$r2\$$receipt\$r2\$::jsonb)->'event'))::text");
	$forged{'another event\'s leaf'} = $r;
	# the unsigned event's own receipt holds, and says it is not subject-signed
	cl_write_file("$tmp/unsigned.json", $other);
	my ($urc, $uout) = cl_run_verifier('receipt', '--public-key', $server_pk, "$tmp/unsigned.json");
	is($urc, 0, 'the receipt of an operator-recorded grant verifies');
	like($uout, qr/^subject-signed: no \(recorded by the operator\)$/m, 'and says it was not signed by the subject');
	($urc) = cl_run_verifier('receipt', '--public-key', $server_pk, '--subject-key', $pk, "$tmp/unsigned.json");
	is($urc, 1, '--subject-key on an unsigned event fails');
}
($forged{'another recorder shown'} = $receipt) =~ s/"recorded_by": "[^"]*"/"recorded_by": "someone else"/;
($forged{'an expiry shown'} = $receipt) =~ s/"expires_at": null/"expires_at": "2027-01-01T00:00:00.000000Z"/;
($forged{'another recording time shown'} = $receipt) =~ s/("recorded_at": ")(\d{4})/$1 . ($2 + 1)/e;
($forged{'a purpose with a NUL'} = $receipt) =~ s/"purpose": "trial"/"purpose": "trial\\u0000x"/;
($forged{'an unchecked event member'} = $receipt) =~ s/"event": \{/"event": {"note": "x", /;
($forged{'an unknown member'} = $receipt) =~ s/^\{/{"note": "x", /;
($forged{'a duplicate member'} = $receipt) =~ s/^\{/{"leaf_index": 0, /;
($forged{'another type'} = $receipt) =~ s{consent-receipt/v1}{consent-receipt/v2};
($forged{'a checkpoint of another size'} = $receipt) =~ s/("checkpoint": \{.*?"tree_size": )(\d+)/$1 . ($2 + 1)/e;
foreach my $what (sort keys %forged)
{
	isnt($forged{$what}, $receipt, "forgery \"$what\" differs from the receipt");
	cl_write_file("$tmp/forged.json", $forged{$what});
	my ($frc, $fout) = cl_run_verifier('receipt', '--public-key', $server_pk, "$tmp/forged.json");
	is($frc, 1, "forgery refused: $what");
}

# an operator-recorded grant without end ('infinity'): its receipt holds too
my $inf = $node->safe_psql('src', q{SELECT consent_ledger.grant_consent('p-19', 'newsletter', 'infinity')});
$node->safe_psql('src', 'SELECT consent_ledger.seal()');
cl_write_file("$tmp/infinity.json", $node->safe_psql('src', "SELECT consent_ledger.consent_receipt($inf)"));
($rc, $out) = cl_run_verifier('receipt', '--public-key', $server_pk, '--origin', $origin, "$tmp/infinity.json");
is($rc, 0, 'the receipt of a grant expiring at infinity verifies');
like($out, qr/^expires infinity$/m, 'and says so');

# --- a receipt made by an administrator from a ledger of their own ---
# A signed-looking event in another ledger of the same server: the
# statement names the consent ledger, the checkpoint another ledger; or
# both name the fake ledger: then only --origin or --subject-key tell.
run_ok_out($openssl, 'genpkey', '-algorithm', 'ed25519', '-out', "$tmp/attacker.pem");
my $adir = run_ok_out($openssl, 'pkey', '-in', "$tmp/attacker.pem", '-pubout', '-outform', 'DER');
my $apk = MIME::Base64::encode_base64(substr($adir, -32), '');
$node->safe_psql('src', q{
	CREATE TABLE fake (event_id bigint, subject text, purpose text, action text, expires_at timestamptz,
		recorded_at timestamptz, recorded_by text, subject_statement text, subject_signature text, subject_key text);
	SELECT consent_ledger.create_ledger('fake');
});
my $fake_origin = $node->safe_psql('src', q{SELECT origin FROM consent_ledger.ledgers WHERE relid = 'fake'::regclass});
my $fake_receipt = sub {
	my ($stmt_origin, $n) = @_;
	my $fst = "consent-ledger-consent/v1\norigin $stmt_origin\nsubject p-17\npurpose trial\naction grant\nexpires never\ntime $t\nnonce attacker-grant-00000\n";
	cl_write_file("$tmp/stmt", $fst);
	my $fsig = MIME::Base64::encode_base64(run_ok_out($openssl, 'pkeyutl', '-sign', '-inkey', "$tmp/attacker.pem",
		'-rawin', '-in', "$tmp/stmt"), '');
	$node->safe_psql('src', "INSERT INTO fake VALUES ($n, 'p-17', 'trial', 'grant', NULL, now(), 'postgres', \$q\$$fst\$q\$, '$fsig', '$apk')");
	$node->safe_psql('src', 'SELECT consent_ledger.seal()');
	return $node->safe_psql('src', qq{
		SELECT jsonb_build_object('type', 'consent_ledger/consent-receipt/v1',
			'event', jsonb_build_object('event_id', f.event_id, 'subject', f.subject, 'purpose', f.purpose, 'action', f.action,
				'expires_at', NULL, 'recorded_at', to_char(timezone('UTC', f.recorded_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
				'recorded_by', f.recorded_by, 'subject_statement', f.subject_statement,
				'subject_signature', f.subject_signature, 'subject_key', f.subject_key),
			'leaf_index', p.leaf, 'leaf_data', encode(consent_ledger.leaf_data('fake', p.leaf), 'hex'),
			'proof', consent_ledger.inclusion_proof('fake', p.leaf), 'checkpoint', consent_ledger.checkpoint('fake'))
		FROM fake f JOIN consent_ledger.leaf_positions('fake') p USING (ledger_txn, ledger_ord) WHERE f.event_id = $n});
};
cl_write_file("$tmp/fake1.json", $fake_receipt->($origin, 1));
($rc, $out) = cl_run_verifier('receipt', '--public-key', $server_pk, "$tmp/fake1.json");
is($rc, 1, 'a fake ledger\'s event signed for the consent ledger: refused (the statement\'s origin is not the checkpoint\'s)');
like($out, qr/the subject signed for origin \Q$origin\E, but the checkpoint is of \Q$fake_origin\E/, 'and says so');
cl_write_file("$tmp/fake2.json", $fake_receipt->($fake_origin, 2));
($rc, $out) = cl_run_verifier('receipt', '--public-key', $server_pk, "$tmp/fake2.json");
is($rc, 0, 'a fake ledger\'s event signed for itself holds without pins ...');
like($out, qr/^note: --origin not given/m, '... with a note that the origin is not pinned');
like($out, qr/^note: --subject-key not given/m, '... and that the key is the leaf\'s');
($rc) = cl_run_verifier('receipt', '--public-key', $server_pk, '--origin', $origin, "$tmp/fake2.json");
is($rc, 1, '--origin of the consent ledger refuses it');
($rc) = cl_run_verifier('receipt', '--public-key', $server_pk, '--subject-key', $pk, "$tmp/fake2.json");
is($rc, 1, '--subject-key of the person refuses it');
($rc, $out) = cl_run_verifier('receipt', '--public-key', $server_pk, '--origin', $origin, '--subject-key', $pk, $rfile);
is($rc, 0, 'the genuine receipt holds with both pins');
unlike($out, qr/^note:/m, 'and needs no note');

# --- pg_dump / pg_restore ---
my $dump = "$tmp/src.dump";
cl_dump_restore($node, 'src', 'restored', $dump);
is($node->safe_psql('restored', q{SELECT bool_and(valid) FROM consent_ledger.verify()}), 't',
	'restored: every ledger verifies, the key ledger included');
is($node->safe_psql('restored', qq{SELECT consent_ledger.verify_checkpoint(\$r\$$receipt\$r\$::jsonb->>'checkpoint')}),
	't', 'restored: the checkpoint of the receipt taken before verifies in SQL');
my $restored_receipt = $node->safe_psql('restored', "SELECT consent_ledger.consent_receipt($event)");
cl_write_file("$tmp/restored.json", $restored_receipt);
($rc, $out) = cl_run_verifier('receipt', '--public-key', $server_pk, '--subject-key', $pk, "$tmp/restored.json");
is($rc, 0, 'restored: a new receipt of the event verifies offline');
($rc, $out) = cl_run_verifier('receipt', '--public-key', $server_pk, '--subject-key', $pk, $rfile);
is($rc, 0, 'the receipt taken before the dump still verifies offline');
is($node->safe_psql('restored', $read), 'p-17', 'restored: the signed grant is in force');
is($node->safe_psql('restored', q{SELECT consent_ledger.has_consent('p-17', 'trial')}), 't',
	'restored: has_consent agrees');
# the subject's key came along: a withdrawal signed on the device is recorded
my $wstmt = "consent-ledger-consent/v1\norigin $origin\nsubject p-17\npurpose trial\naction withdraw\nexpires never\ntime "
  . ($t + 2) . "\nnonce device-withdraw-00001\n";
$node->safe_psql('restored', "SELECT consent_ledger.record_signed_consent(\$q\$$wstmt\$q\$, '" . sign($wstmt) . "')");
is($node->safe_psql('restored', $read), '', 'restored: after the signed withdrawal the analyst sees nobody');

# --- a dump whose signed grant lost its signature ---
my $plain = "$tmp/src.sql";
$node->command_ok([ 'pg_dump', '-f', $plain, '-d', $node->connstr('src') ], 'pg_dump (plain)');
my $sql = slurp_file($plain);
my ($cols, $rows) = $sql =~ /^COPY consent_ledger\.consent_events \(([^)]*)\) FROM stdin;\n(.*?)^\\\.$/ms
  or die 'no COPY of consent_events in the dump';
my @names = split /, /, $cols;
my ($si) = grep { $names[$_] eq 'subject_signature' } 0 .. $#names;
my ($ti) = grep { $names[$_] eq 'subject_statement' } 0 .. $#names;
my ($ki) = grep { $names[$_] eq 'subject_key' } 0 .. $#names;
my $stripped = join '', map {
	my @f = split /\t/, $_, -1;
	chomp $f[-1];
	if ($f[$si] ne '\\N') { $f[$si] = $f[$ti] = $f[$ki] = '\\N'; }
	join("\t", @f) . "\n"
} split /^/m, $rows;
isnt($stripped, $rows, 'the tampered dump lost the grant\'s signature');
$sql =~ s/\Q$rows\E/$stripped/;
cl_write_file("$tmp/tampered.sql", $sql);
$node->safe_psql('postgres', 'CREATE DATABASE tampered TEMPLATE template0');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', "$tmp/tampered.sql", '-d', $node->connstr('tampered') ],
	'the tampered dump restores');
is($node->safe_psql('tampered', q{SELECT valid FROM consent_ledger.verify('consent_ledger.consent_events')}), 'f',
	'tampered: verify() finds the changed row');
is($node->safe_psql('tampered', $read), '', 'tampered: the unsigned grant of a signed-only purpose shows nobody');
is($node->safe_psql('tampered', q{SELECT consent_ledger.has_consent('p-17', 'trial')}), 'f',
	'tampered: has_consent counts no unsigned grant of it');
is($node->safe_psql('tampered', q{SELECT count(*) FROM consent_ledger.consent_state WHERE subject = 'p-17'}), '0',
	'tampered: nor does consent_state');

$node->stop;
done_testing();
