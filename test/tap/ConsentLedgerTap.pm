# Helpers shared by the consent_ledger TAP tests (test/tap/*.pl).
#
# The suite runner sets TEMP_CONFIG (shared_preload_libraries and a short
# consent_ledger.seal_interval, appended by PostgreSQL::Test::Cluster->init)
# and CL_VERIFY (the offline verifier).

package ConsentLedgerTap;

use strict;
use warnings;

use Exporter 'import';
use File::Spec;
use IPC::Run;
use MIME::Base64 qw(decode_base64 encode_base64);
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  cl_verifier
  cl_run_verifier
  cl_verify_row
  cl_wait_for
  cl_write_file
  cl_export_to_file
  cl_dump_restore
  cl_openssl
  cl_public_from_seed_file
  cl_ed25519_verify
);

# Path of the offline verifier.
sub cl_verifier
{
	my $v = $ENV{CL_VERIFY};
	if (!defined $v || $v eq '')
	{
		# fall back to the installed one
		my $bindir = `pg_config --bindir`;
		chomp $bindir;
		$v = "$bindir/consent-ledger-verify";
	}
	BAIL_OUT("offline verifier not found at $v (set CL_VERIFY)") unless -x $v;
	return $v;
}

# Runs the offline verifier; returns (exit status, stdout, stderr).
sub cl_run_verifier
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ cl_verifier(), @args ], '<', \undef, '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	note("consent-ledger-verify @args: exit $rc\n$out$err");
	return ($rc, $out, $err);
}

# consent_ledger.verify(rel) as a hashref {rows, pending, valid, problem}.
sub cl_verify_row
{
	my ($node, $db, $rel) = @_;
	my $r = $node->safe_psql($db,
		qq{SELECT "rows", pending, valid, coalesce(problem, '') FROM consent_ledger.verify('$rel')}
	);
	my ($rows, $pending, $valid, $problem) = split /\|/, $r, 4;
	return {
		rows => $rows,
		pending => $pending,
		valid => (defined $valid && $valid eq 't') ? 1 : 0,
		problem => $problem // '(no result)',
	};
}

# Polls a query until it returns $expected (default 't') or $seconds pass.
# Returns true on success.
sub cl_wait_for
{
	my ($node, $db, $query, $seconds, $expected) = @_;
	$expected = 't' unless defined $expected;
	my $deadline = time() + $seconds;
	my $last = '';
	while (1)
	{
		my ($rc, $out) = $node->psql($db, $query);
		$last = $out;
		return 1 if $rc == 0 && $out eq $expected;
		last if time() >= $deadline;
		usleep(100_000);
	}
	note("cl_wait_for: \"$query\" still returns \"$last\" after ${seconds}s");
	return 0;
}

sub cl_write_file
{
	my ($path, $content, $mode) = @_;
	open(my $fh, '>', $path) or die "could not write $path: $!";
	binmode $fh;
	print $fh $content;
	close($fh) or die "could not close $path: $!";
	chmod($mode, $path) or die "chmod $path: $!" if defined $mode;
	return $path;
}

# Writes consent_ledger.export(rel) to a file, one line each; returns the path.
sub cl_export_to_file
{
	my ($node, $db, $rel, $path) = @_;
	my $lines = $node->safe_psql($db, qq{SELECT consent_ledger.export('$rel')});
	cl_write_file($path, "$lines\n");
	return $path;
}

# pg_dump -Fc of database $src into $dump, a new database $dst (from
# template0) and pg_restore of the dump into it: three assertions (the dump
# ran, pg_restore exits 0 and reports no error).
sub cl_dump_restore
{
	my ($node, $src, $dst, $dump) = @_;
	$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr($src) ], 'pg_dump -Fc');
	$node->safe_psql('postgres', "CREATE DATABASE $dst TEMPLATE template0");
	my ($o, $e) = ('', '');
	IPC::Run::run([ $node->installed_command('pg_restore'), '-d', $node->connstr($dst), $dump ],
		'>', \$o, '2>', \$e);
	is($? >> 8, 0, 'pg_restore exits 0');
	is($e, '', 'pg_restore reports no error') or diag $e;
	return;
}

# Path of openssl.  The Ed25519 cross-checks must not be skipped: without
# openssl (test/deps.sh installs it) the test dies, and so fails.
sub cl_openssl
{
	foreach my $dir (File::Spec->path())
	{
		my $p = "$dir/openssl";
		return $p if -x $p;
	}
	die "openssl is required for the Ed25519 cross-checks (test/deps.sh installs it)\n";
}

# Ed25519 public key (base64) of a key file holding base64(seed), derived
# independently of the extension with openssl; dies when openssl is
# missing or cannot do it (an openssl without Ed25519).
sub cl_public_from_seed_file
{
	my ($keyfile, $tmpdir) = @_;
	my $openssl = cl_openssl() or return undef;
	my $b64 = slurp_file($keyfile);
	$b64 =~ s/\s+\z//;
	my $seed = decode_base64($b64);
	die "key file $keyfile does not hold a base64 32-byte seed\n" unless length($seed) == 32;
	my $der = "$tmpdir/seed.der";
	my $pub = "$tmpdir/pub.der";
	# PKCS#8 wrapping of an Ed25519 seed (RFC 8410)
	cl_write_file($der, pack('H*', '302e020100300506032b657004220420') . $seed, 0600);
	my $ok = IPC::Run::run([ $openssl, 'pkey', '-inform', 'DER', '-in', $der,
		'-pubout', '-outform', 'DER', '-out', $pub ], '>', \my $o, '2>', \my $e);
	unlink $der;
	die "openssl could not derive an Ed25519 public key: $e\n" unless $ok;
	my $spki = slurp_file($pub);
	die "openssl wrote an Ed25519 public key of " . length($spki) . " bytes\n" unless length($spki) == 44;
	return encode_base64(substr($spki, 12), '');
}

# Checks an Ed25519 signature (raw 64 bytes) over $msg under a base64
# public key with openssl.  Returns 1/0; dies without openssl.
sub cl_ed25519_verify
{
	my ($pk_b64, $msg, $sig, $tmpdir) = @_;
	my $openssl = cl_openssl() or return undef;
	my $pk = decode_base64($pk_b64);
	return 0 unless length($pk) == 32 && length($sig) == 64;
	my $tag = int(rand(1e9));
	my $pkf = cl_write_file("$tmpdir/pk$tag.der", pack('H*', '302a300506032b6570032100') . $pk);
	my $mf = cl_write_file("$tmpdir/msg$tag", $msg);
	my $sf = cl_write_file("$tmpdir/sig$tag", $sig);
	my $ok = IPC::Run::run([ $openssl, 'pkeyutl', '-verify', '-pubin', '-keyform', 'DER',
		'-inkey', $pkf, '-rawin', '-in', $mf, '-sigfile', $sf ], '>', \my $o, '2>', \my $e);
	unlink $pkf, $mf, $sf;
	return $ok ? 1 : 0;
}

1;
