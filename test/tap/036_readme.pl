
# The README cannot drift from the code (issue 16):
#
# * every ```sql block of README.md runs, in document order, in one
#   database of a preloaded server, as a superuser with psql
#   (ON_ERROR_STOP): an example that no longer works fails here.  A block
#   preceded by "<!-- readme-test: last -->" runs after all the others (the
#   uninstall procedure);
# * every function of the extension (pg_proc in schema consent_ledger),
#   every setting (consent_ledger.*) and every SQLSTATE the C code raises
#   (errcode(ERRCODE_...) in src/) is named in the README;
# * the README's own snags stay fixed: consent-ledger-verify is called by
#   its full path, no table is split by a blank line, the build line needs
#   no sudo and names make and gcc, view_allows() is documented with its
#   argument types.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $tree = abs_path(dirname(__FILE__) . '/../..');
my $readme = slurp_file("$tree/README.md");
my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

# --- the SQL examples --------------------------------------------------
my (@blocks, @last);
{
	my @lines = split /\n/, $readme, -1;
	my ($in, $indent, $body, $start, $marked) = (0, '', '', 0, 0);
	for my $i (0 .. $#lines)
	{
		my $l = $lines[$i];
		if (!$in && $l =~ /^(\s*)```sql\s*$/)
		{
			($in, $indent, $body, $start) = (1, $1, '', $i + 1);
			$marked = ($i > 0 && $lines[$i - 1] =~ /<!--\s*readme-test:\s*last\s*-->/);
			next;
		}
		if ($in && $l =~ /^\s*```\s*$/)
		{
			my $b = { line => $start, sql => $body };
			if ($marked) { push @last, $b } else { push @blocks, $b }
			$in = 0;
			next;
		}
		if ($in)
		{
			$l =~ s/^\Q$indent\E//;
			$body .= "$l\n";
		}
	}
	ok(!$in, 'every ```sql block of the README is closed');
}
cmp_ok(scalar(@blocks) + scalar(@last), '>=', 5, 'the README has SQL examples');

my $node = PostgreSQL::Test::Cluster->new('readme');
$node->init;
# the README's witness example runs in the witness database (README "Witnesses")
$node->append_conf('postgresql.conf', "consent_ledger.witness_database = 'readme'");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE readme');

sub run_block
{
	my ($b) = @_;
	my $f = "$tmp/block_$b->{line}.sql";
	open(my $fh, '>', $f) or die;
	print $fh $b->{sql};
	close $fh;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', $node->host,
			'-p', $node->port, '-d', 'readme', '-f', $f ],
		'>', \$out, '2>', \$err, init => sub { chdir $tmp or die });
	my $rc = $? >> 8;
	is($rc, 0, "README.md line $b->{line}: the SQL example runs") or
	  diag("README.md line $b->{line}:\n$b->{sql}\n$err");
}

run_block($_) for @blocks;

# --- everything the extension has is documented ---------------------------
sub documented_ok
{
	my ($what, $re) = @_;
	ok($readme =~ $re, "the README documents $what");
}

my @functions = split /\n/, $node->safe_psql('readme', q{
	SELECT DISTINCT proname FROM pg_catalog.pg_proc
	WHERE pronamespace = 'consent_ledger'::pg_catalog.regnamespace ORDER BY 1});
cmp_ok(scalar @functions, '>=', 30, 'the extension has its functions');
documented_ok("function $_()", qr/`[^`\n]*\b\Q$_\E\(/) for @functions;

my @settings = split /\n/, $node->safe_psql('readme', q{
	SELECT name FROM pg_catalog.pg_settings WHERE name LIKE 'consent\_ledger.%' ORDER BY 1});
cmp_ok(scalar @settings, '>=', 9, 'the extension has its settings');
documented_ok("setting $_ (in the configuration table)", qr/^\| `\Q$_\E` \|/m) for @settings;

# SQLSTATEs: the ERRCODE_ macros the C code raises, through errcodes.h
my $incdir = `pg_config --includedir-server`;
chomp $incdir;
my %code;
for my $l (split /\n/, slurp_file("$incdir/utils/errcodes.h"))
{
	$code{$1} = "$2$3$4$5$6" if $l =~ /^#define (ERRCODE_\w+)\s+MAKE_SQLSTATE\('(.)','(.)','(.)','(.)','(.)'\)/;
}
my %raised;
for my $f (glob("$tree/src/*.c"))
{
	my $c = slurp_file($f);
	$raised{$1} = 1 while $c =~ /\b(?:errcode|GUC_check_errcode)\s*\(\s*(ERRCODE_\w+)/g;
}
cmp_ok(scalar keys %raised, '>=', 20, 'the C code raises its SQLSTATEs');
for my $e (sort keys %raised)
{
	my $c = $code{$e};
	ok(defined $c, "$e is a SQLSTATE of errcodes.h") or next;
	documented_ok("SQLSTATE $c ($e) in the SQLSTATE table", qr/^\| `\Q$c\E` \|/m);
}

# --- the README's own snags ------------------------------------------------
(my $flat = $readme) =~ s/\s+/ /g;
my @bare;
while ($flat =~ /(.{0,40})consent-ledger-verify (export|checkpoint|inclusion|consistency|keygen)\b/g)
{
	push @bare, "...$1consent-ledger-verify $2" unless $1 =~ /pg_config --bindir\)\/$/;
}
is_deeply(\@bare, [], 'every consent-ledger-verify command names its full path, $(pg_config --bindir)/');

my @split;
{
	my @l = split /\n/, $readme;
	for my $i (2 .. $#l - 1)
	{
		push @split, $i + 1
		  if $l[$i] =~ /^\|/ && $l[$i - 1] =~ /^\s*$/ && $l[ $i - 2 ] =~ /^\|/
		  && $l[ $i + 1 ] !~ /^\|\s*---/;
	}
}
is_deeply(\@split, [], 'no table is split by a blank line (table rows after it would render as text)');

my @sh = ($readme =~ /```sh\n(.*?)```/gs);
ok(!grep({ /^\s*sudo\b|&&\s*sudo\b/m } @sh), 'no shell example needs sudo');
ok((grep { /^apt-get install\b.*\bmake\b/m && /^apt-get install\b.*\bgcc\b/m } @sh),
	'the build instructions install make and gcc');

my ($types) = split /\n/, $node->safe_psql('readme', q{
	SELECT pg_catalog.format_type(proargtypes[0], NULL) FROM pg_catalog.pg_proc
	WHERE proname = 'view_allows' AND pronamespace = 'consent_ledger'::pg_catalog.regnamespace LIMIT 1});
like($readme, qr/`view_allows\(view_oid \Q$types\E, subject\)`/, "view_allows() is documented with its first argument's type ($types)");

# --- last: the examples that end the installation -------------------------
run_block($_) for @last;
cmp_ok(scalar @last, '>=', 1, 'the uninstall procedure is among the examples');
is($node->safe_psql('readme', q{SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'consent_ledger'}),
	'0', 'after the uninstall procedure the extension is gone');
ok(-s "$tmp/payments.export", 'and the procedure left the export it tells to keep');

$node->stop;
done_testing();
