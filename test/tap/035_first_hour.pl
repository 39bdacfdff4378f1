
# A new user's first hour (issue 16): what the server hands out, saved the
# way the README says (psql -At, shell "$(...)"), is what the offline
# verifier takes; and the test runner leaves no temporary directory behind
# when everything passed, but keeps it and names it when something failed.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $node = PostgreSQL::Test::Cluster->new('first_hour');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE pay (id int, amount int);
	SELECT consent_ledger.create_ledger('pay');
	INSERT INTO pay VALUES (1, 100), (2, 200), (3, 300);
});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');

my $verifier = cl_verifier();
my $psql = join(' ', 'psql', '-X', '-h', $node->host, '-p', $node->port, '-d', 'postgres');

# Runs a shell command line as a user would type it; returns (exit, stdout).
sub sh
{
	my ($cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'bash', '-c', $cmd ], '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	note("\$ $cmd\nexit $rc\n$out$err");
	return ($rc, $out);
}

# --- the key, as the README's commands get it --------------------------
my ($rc, $out) = sh(qq{$psql -At -c "SELECT consent_ledger.checkpoint('pay')" > $tmp/receipt.json});
is($rc, 0, 'receipt saved with psql -At');
for my $fn ('verifier_key', 'public_key')
{
	($rc, $out) = sh(qq{"$verifier" checkpoint --public-key "\$($psql -At -c 'SELECT consent_ledger.$fn()')" $tmp/receipt.json});
	is($rc, 0, "--public-key \"\$(psql -At -c 'SELECT consent_ledger.$fn()')\" is accepted");
	like($out, qr/^OK: checkpoint signature verifies/, "and the receipt verifies under the $fn() value");
}
($rc, $out) = sh(qq{$psql -At -c 'SELECT consent_ledger.verifier_key()' > $tmp/key.txt && "$verifier" checkpoint --public-key $tmp/key.txt $tmp/receipt.json});
is($rc, 0, 'a key file saved with psql -At (verifier_key()) is accepted');

# --- a bare note, saved with psql -At ------------------------------------
($rc, $out) = sh(qq{$psql -At -c "SELECT consent_ledger.checkpoint('pay')->>'note'" > $tmp/note.txt});
is($rc, 0, 'note saved with psql -At');
my $saved = slurp_file("$tmp/note.txt");
like($saved, qr/\n\n\z/, 'psql -At added a newline after the note\'s own last newline');
my $pk = $node->safe_psql('postgres', 'SELECT consent_ledger.public_key()');
($rc, $out) = sh(qq{"$verifier" checkpoint --public-key $pk $tmp/note.txt});
is($rc, 0, 'the offline verifier accepts the note saved with psql -At');
cl_export_to_file($node, 'postgres', 'pay', "$tmp/export.txt");
($rc, $out) = sh(qq{"$verifier" export --public-key $pk --checkpoint $tmp/note.txt $tmp/export.txt});
is($rc, 0, 'and an export verifies against it as --checkpoint');

# verify_checkpoint() reads receipts with the same reader: same verdicts
is($node->safe_psql('postgres', qq{SELECT consent_ledger.verify_checkpoint(pg_read_file('$tmp/note.txt'))}),
	't', 'verify_checkpoint() accepts the note saved with psql -At');
cl_write_file("$tmp/note2.txt", "$saved\n");
like($node->safe_psql('postgres', qq{SELECT valid || ' ' || coalesce(reason, '') FROM consent_ledger.verify_checkpoint_detail(pg_read_file('$tmp/note2.txt'))}),
	qr/^false the receipt is not a JSON object, nor a checkpoint note: /,
	'verify_checkpoint() refuses a second extra newline, as not a note');
($rc, $out) = sh(qq{"$verifier" checkpoint --public-key $pk $tmp/note2.txt});
is($rc, 1, 'and so does the offline verifier');
(my $tampered = $saved) =~ s/^3$/2/m;
cl_write_file("$tmp/note3.txt", $tampered);
($rc, $out) = sh(qq{"$verifier" checkpoint --public-key $pk $tmp/note3.txt});
is($rc, 1, 'a changed note saved with psql -At still fails');

$node->stop;

# --- the runner's temporary directory -----------------------------------
# run-tests.sh with no suite (SUITES=" ") passes; with an unknown suite it
# fails.  Either way it makes its temporary directory under $TMPDIR.
# The runner copies the tree it is in, so it runs from a copy of the tree
# without tmp_check (where this test's own files are), in a directory
# outside it.
my $tree = abs_path(dirname(__FILE__) . '/../..');
my $outside = File::Temp::tempdir('cl035_XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$outside/tree" or die;
system("cd '$tree' && tar --exclude=./.git --exclude=./tmp_check -cf - . | tar -xf - -C '$outside/tree'") == 0
  or die "could not copy the tree";
$tree = "$outside/tree";
for my $case ([ ' ', 0 ], [ 'no_such_suite', 1 ])
{
	my ($suites, $fails) = @$case;
	my $t = "$outside/runner_" . ($fails ? 'fail' : 'pass');
	mkdir $t or die "mkdir $t: $!";
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'bash', "$tree/test/run-tests.sh" ], '>', \$o, '2>', \$e,
		init => sub { $ENV{TMPDIR} = $t; $ENV{SUITES} = $suites; });
	my $status = $? >> 8;
	note("run-tests.sh SUITES='$suites':\n$o$e");
	opendir(my $dh, $t) or die;
	my @left = grep { !/^\.\.?$/ } readdir $dh;
	closedir $dh;
	if (!$fails)
	{
		is($status, 0, 'run-tests.sh with nothing to run passes');
		like($o, qr/\n0 passed, 0 failed\n\z/, 'its last line is the summary');
		is(scalar @left, 0, 'and it leaves no temporary directory behind');
	}
	else
	{
		is($status, 1, 'run-tests.sh with a failing suite fails');
		is(scalar @left, 1, 'it keeps its temporary directory');
		my $kept = "$t/" . ($left[0] // '');
		like($o, qr/^=== kept for inspection: \Q$kept\E /m, 'and prints its path before the summary');
		like($o, qr/\n1 passed|\n0 passed, 1 failed\n\z/, 'the summary stays the last line');
	}
}

# --- the demo, the README's first command ---------------------------------
# Run as this (non-root) user: it installs nothing, builds, and uses the
# verifier it built.
{
	my ($o, $e) = ('', '');
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	IPC::Run::run([ 'bash', "$tree/tools/demo.sh" ], '>', \$o, '2>&1',
		init => sub { $ENV{DEMO_PORT} = $port; });
	my $status = $? >> 8;
	note("tools/demo.sh:\n$o");
	is($status, 0, 'tools/demo.sh runs');
	my @l = split /\n/, $o;
	is_deeply([ grep { /^psql:/ } @l ], [], 'no error is prefixed with psql:<file>:<line>:');
	my @unshown;
	for my $i (1 .. $#l)
	{
		push @unshown, $l[$i] if $l[$i] =~ /^ERROR:/ && $l[ $i - 1 ] !~ /;\s*$/;
	}
	is_deeply(\@unshown, [], 'every error follows the statement that caused it');
	my @empty;
	for my $i (1 .. $#l)
	{
		push @empty, $l[ $i - 2 ] if $l[ $i - 1 ] =~ /^-+(\+-+)*$/ && $l[$i] =~ /^\s*$/;
	}
	is_deeply(\@empty, [], 'no result table is empty (void results are not printed)');
	like($o, qr/replica-role attempt/, 'the replica-role attempt is named');
	like($o, qr/Leaves count from 0/i, 'the demo says leaves count from 0');
	like($o, qr/^ step \| +sibling_hash/m, 'the proof is printed one hash a line');
	like($o, qr/^leaf_index +\| 41$/m, 'with its leaf index');
	like($o, qr/^tree_size +\| 5003$/m, 'and its tree size');
	like($o, qr/^ 9000 \|/m, 'the smuggled row is shown');
	my $vc = () = $o =~ /verify_checkpoint\(/g;
	cmp_ok($vc, '>=', 2, 'verify_checkpoint() runs after each tampering');
	my $ov = () = $o =~ /^\$ "\$\(pg_config --bindir\)\/consent-ledger-verify" export/mg;
	cmp_ok($ov, '>=', 2, 'and the offline verifier is called (by its full path) after a tampering too');
	like($o, qr/a_moment_before \| at_withdrawal.*\n.*\n.*\| t +\| f +\| f/, 'consent a moment before a withdrawal differs from after it');
	like($o, qr/the expected result of the tampering/, 'the final valid = f is explained');
	like($o, qr/How to read the audit trail/, 'audit outcomes, returned and withheld are explained');
	my $deps = slurp_file("$tree/test/deps.sh");
	my ($build) = $deps =~ /^cl_build_packages="([^"]*)"/m;
	ok(defined $build && $build !~ /clang|pgtap|libipc-run/, 'the build package list has no test-only package');
	like(slurp_file("$tree/tools/demo.sh"), qr/^\s*cl_install_deps "\$cl_build_packages"/m, 'and the demo installs only that list');
}

done_testing();
