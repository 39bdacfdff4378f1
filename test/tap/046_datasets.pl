# Training-set manifests across a withdrawal (issue #17 item 4, README
# "Dataset manifests"): an extraction records its manifest; the subject
# withdraws; datasets_for_subject() names the dataset the withdrawal
# affects; the next extraction leaves the subject out; the proofs of
# inclusion (first dataset) and exclusion (second) verify offline with
# consent-ledger-verify against the manifests' roots, and the manifests
# themselves are in a signed ledger whose export verifies offline; all of
# it again after pg_dump / pg_restore.

use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

my $node = PostgreSQL::Test::Cluster->new('datasets');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('train');
	CREATE TABLE visits (customer text, page text);
	INSERT INTO visits SELECT 'c-' || (g % 50), 'page ' || g FROM generate_series(1, 500) g;
	SELECT consent_ledger.protect('visits', 'customer');
	SELECT consent_ledger.create_purpose_view('visits', 'train', 'visits_train');
	SELECT count(consent_ledger.grant_consent('c-' || g, 'train')) FROM generate_series(0, 49, 2) g;
	CREATE ROLE ml LOGIN;
	SELECT consent_ledger.authorize_purpose('ml', 'train');
	GRANT USAGE ON SCHEMA consent_ledger TO ml;
	GRANT SELECT ON visits_train TO ml;
	GRANT EXECUTE ON FUNCTION consent_ledger.export_dataset(text, anyelement) TO ml;
});

my $export = q{COPY (SELECT * FROM consent_ledger.export_dataset('%s', NULL::visits_train)) TO STDOUT};
my $rows = $node->safe_psql('src', sprintf($export, 'model-1'), extra_params => [ '-U', 'ml' ]);
my @lines = split /\n/, $rows;
is(scalar @lines, 250, 'model-1: the 250 rows of the 25 consenting customers');
is(scalar(grep { !/^c-\d*[02468]\t/ } @lines), 0, 'model-1: no row of a customer without consent');
is($node->safe_psql('src', q{SELECT rows || ' ' || subjects FROM consent_ledger.datasets WHERE name = 'model-1'}),
	'250 25', 'model-1: its manifest counts 250 rows of 25 subjects');
is($node->safe_psql('src', q{SELECT string_agg(dataset, ',') FROM consent_ledger.datasets_for_subject('c-4')}),
	'model-1', 'c-4 is in model-1');

# c-4 withdraws: model-1 is what the withdrawal affects; model-2 leaves c-4 out
$node->safe_psql('src', q{SELECT consent_ledger.withdraw_consent('c-4', 'train')});
$rows = $node->safe_psql('src', sprintf($export, 'model-2'), extra_params => [ '-U', 'ml' ]);
@lines = split /\n/, $rows;
is(scalar @lines, 240, 'model-2: 240 rows');
is(scalar(grep { /^c-4\t/ } @lines), 0, 'model-2: none of c-4');
is($node->safe_psql('src', q{SELECT string_agg(dataset, ',' ORDER BY dataset) FROM consent_ledger.datasets_for_subject('c-4')}),
	'model-1', 'after the withdrawal: the datasets it affects are model-1 only');
is($node->safe_psql('src', q{SELECT string_agg(dataset, ',' ORDER BY dataset) FROM consent_ledger.datasets_for_subject('c-6')}),
	'model-1,model-2', 'c-6 is in both');

$node->safe_psql('src', 'SELECT consent_ledger.seal()');
my $pk = $node->safe_psql('src', 'SELECT consent_ledger.public_key()');

# Checks a dataset_includes() answer offline; returns the manifest root it proves against.
sub check_offline
{
	my ($db, $dataset, $subject, $expect_in) = @_;
	my $root = $node->safe_psql($db, "SELECT subjects_root FROM consent_ledger.datasets WHERE name = '$dataset'");
	my $ans = $node->safe_psql($db, "SELECT consent_ledger.dataset_includes('$dataset', '$subject')");
	my $included = $node->safe_psql($db, "SELECT (\$a\$$ans\$a\$::jsonb)->>'included'");
	is($included, $expect_in ? 'true' : 'false', "$db: $subject is " . ($expect_in ? '' : 'not ') . "in $dataset");
	my @parts = $expect_in ? ('') : ('before', 'after');
	my @idx;
	foreach my $part (@parts)
	{
		my $base = $part eq '' ? '(a)' : "(a->'$part')";
		my ($proof, $hex, $leaf_subject) = split /\|/, $node->safe_psql($db,
			"SELECT $base->'proof', coalesce($base->>'leaf_data', a->>'leaf_data'), coalesce($base->>'subject', a->>'subject') "
			  . "FROM (SELECT \$a\$$ans\$a\$::jsonb AS a) s");
		my $f = cl_write_file("$tmp/proof.json", $proof);
		my ($rc, $out) = cl_run_verifier('inclusion', $f, '--leaf-data', $hex);
		is($rc, 0, "$db: $dataset: the proof of " . ($part || 'the subject') . " ($leaf_subject) verifies offline");
		like($out, qr/with root \Q$root\E \(leaf data matches\)/, "$db: $dataset: against the manifest's root");
		is($node->safe_psql($db, "SELECT ((\$p\$$proof\$p\$)::jsonb->>'tree_size') = subjects::text FROM consent_ledger.datasets WHERE name = '$dataset'"),
			't', "$db: $dataset: the proof is for the manifest's number of subjects");
		push @idx, [ $node->safe_psql($db, "SELECT ((\$p\$$proof\$p\$)::jsonb->>'leaf_index')"), $leaf_subject ];
	}
	if (!$expect_in)
	{
		# neighbours: adjacent leaves, the subject sorting (bytewise) between them
		is($idx[1][0], $idx[0][0] + 1, "$db: $dataset: the two neighbours are adjacent leaves");
		ok(($idx[0][1] lt $subject) && ($subject lt $idx[1][1]),
			"$db: $dataset: $subject sorts between $idx[0][1] and $idx[1][1]");
	}
	return $root;
}
check_offline('src', 'model-1', 'c-4', 1);
check_offline('src', 'model-2', 'c-4', 0);

# the manifests are rows of a signed ledger: its export verifies offline, and holds the roots
sub check_manifests
{
	my ($db) = @_;
	my $cp = cl_write_file("$tmp/$db-datasets.json", $node->safe_psql($db, q{SELECT consent_ledger.checkpoint('consent_ledger.datasets')}));
	my $exp = cl_export_to_file($node, $db, 'consent_ledger.datasets', "$tmp/$db-datasets.txt");
	my ($rc, $out) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $cp, '--decode', $exp);
	is($rc, 0, "$db: the manifest ledger's export verifies offline with its checkpoint");
	foreach my $name ('model-1', 'model-2')
	{
		my $root = $node->safe_psql($db, "SELECT subjects_root FROM consent_ledger.datasets WHERE name = '$name'");
		like($out, qr/"name": t:"\Q$name\E".*"subjects_root": t:"\Q$root\E"/, "$db: the signed export holds $name with its root");
	}
}
check_manifests('src');

# --- pg_dump / pg_restore ---
my $dump = "$tmp/src.dump";
cl_dump_restore($node, 'src', 'restored', $dump);
is($node->safe_psql('restored', q{SELECT bool_and(valid) FROM consent_ledger.verify()}), 't',
	'restored: every ledger verifies, the manifests included');
is($node->safe_psql('restored', q{SELECT string_agg(dataset, ',' ORDER BY dataset) FROM consent_ledger.datasets_for_subject('c-4')}),
	'model-1', 'restored: the datasets c-4 is in');
check_offline('restored', 'model-1', 'c-4', 1);
check_offline('restored', 'model-2', 'c-4', 0);
check_manifests('restored');
$rows = $node->safe_psql('restored', sprintf($export, 'model-3'), extra_params => [ '-U', 'ml' ]);
is(scalar(split /\n/, $rows), 240, 'restored: a new extraction, without c-4');
is($node->safe_psql('restored', q{SELECT string_agg(dataset, ',' ORDER BY dataset) FROM consent_ledger.datasets_for_subject('c-6')}),
	'model-1,model-2,model-3', 'restored: c-6 is in all three');

$node->stop;
done_testing();
