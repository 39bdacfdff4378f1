# A partitioned ledger (a fact table range-partitioned by month with a
# default partition and a sub-partitioned month) and a protected
# partitioned table through pg_dump -Fc / pg_restore: every partition's log
# verifies, receipts taken before the dump (partition_checkpoints()) still
# verify, the offline verifier accepts each partition's export with its
# receipt before and after, the restored tree is still append-only and
# still takes new partitions as ledgers, and a restored partition read
# directly is still held to the consent policy.

use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

my $node = PostgreSQL::Test::Cluster->new('partdump');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE DATABASE src;
	CREATE ROLE part_owner LOGIN;
	CREATE ROLE part_analyst LOGIN;
});

$node->safe_psql('src', q{
	CREATE EXTENSION consent_ledger;
	GRANT CREATE ON SCHEMA public TO part_owner;
	CREATE TABLE facts (id int, month date, customer_id bigint, amount numeric, note text)
		PARTITION BY RANGE (month);
	CREATE TABLE facts_2024_01 PARTITION OF facts FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
	CREATE TABLE facts_2024_02 PARTITION OF facts FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')
		PARTITION BY LIST (note);
	CREATE TABLE facts_2024_02_a PARTITION OF facts_2024_02 FOR VALUES IN ('a');
	CREATE TABLE facts_2024_02_other PARTITION OF facts_2024_02 DEFAULT;
	CREATE TABLE facts_default PARTITION OF facts DEFAULT;
	-- rows before it becomes a ledger: adopted, partition by partition
	INSERT INTO facts SELECT g, date '2024-01-01' + (g % 3) * 31, g % 5, g * 1.5,
		CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 30) g;
	SELECT consent_ledger.create_ledger('facts');
	ALTER TABLE facts OWNER TO part_owner;
});
# through the parent, directly into a partition, COPY through the parent,
# in several transactions
$node->safe_psql('src', q{
	INSERT INTO facts (id, month, customer_id, amount, note) VALUES (31, '2024-01-20', 1, 1, 'x');
	INSERT INTO facts_2024_02_a (id, month, customer_id, amount, note) VALUES (32, '2024-02-20', 2, 2, 'a');
	BEGIN;
	INSERT INTO facts (id, month, customer_id, amount, note)
		SELECT g, '2030-01-01', g, g, 'late' FROM generate_series(33, 40) g;
	SAVEPOINT s;
	INSERT INTO facts (id, month, customer_id, amount, note) VALUES (-1, '2024-01-01', 0, 0, 'rolled back');
	ROLLBACK TO SAVEPOINT s;
	COMMIT;
});
my ($cret, $cout, $cerr) = $node->psql('src',
	"COPY facts (id, month, customer_id, amount, note) FROM STDIN;\n41\t2024-02-03\t3\t4.5\ta\n42\t2024-01-04\t4\t\\N\t\\N\n\\.\n");
is($cret, 0, 'COPY through the parent') or diag $cerr;
$node->safe_psql('src', 'SELECT consent_ledger.seal()');

# a protected partitioned table, read directly by its former owner
$node->safe_psql('src', q{
	SELECT consent_ledger.define_purpose('p', 'partition dump test');
	SELECT consent_ledger.authorize_purpose('part_analyst', 'p');
	SELECT consent_ledger.grant_consent(1, 'p');
	CREATE TABLE visits (id int, month date, customer_id bigint) PARTITION BY RANGE (month);
	CREATE TABLE visits_2024_01 PARTITION OF visits FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
	CREATE TABLE visits_default PARTITION OF visits DEFAULT;
	INSERT INTO visits VALUES (1, '2024-01-02', 1), (2, '2024-01-03', 2), (3, '2025-01-01', 1);
	ALTER TABLE visits OWNER TO part_analyst;
	ALTER TABLE visits_2024_01 OWNER TO part_analyst;
	ALTER TABLE visits_default OWNER TO part_analyst;
	SELECT consent_ledger.protect('visits', 'customer_id');
});

my $leaves_sql = q{SELECT string_agg(relid::text, ',' ORDER BY relid::text)
	FROM pg_partition_tree('facts') WHERE isleaf};
my @leaves = split /,/, $node->safe_psql('src', $leaves_sql);
is(scalar(@leaves), 4, 'source: four leaf partitions');
my $verify_sql = q{SELECT string_agg(relation::text || ':' || "rows" || ':' || pending || ':' || valid::text,
	' ' ORDER BY relation::text) FROM consent_ledger.verify('facts')};
my $verified = $node->safe_psql('src', $verify_sql);
note("source: $verified");
unlike($verified, qr/:f\b/, 'source: verify(facts) valid for every partition');
my $nrows = $node->safe_psql('src', 'SELECT count(*) FROM facts');
is($nrows, 42, 'source: every committed row, no rolled-back row');
my $counted = 0;
$counted += $_ for ($verified =~ /:(\d+):\d+:t/g);
is($counted, $nrows, 'source: the partitions\' logs count every row');

my $pk = $node->safe_psql('src', 'SELECT consent_ledger.public_key()');
my %receipt;
foreach my $line (split /\n/, $node->safe_psql('src',
		q{SELECT partition::text || E'\t' || checkpoint::text FROM consent_ledger.partition_checkpoints('facts')}))
{
	my ($part, $cp) = split /\t/, $line, 2;
	$receipt{$part} = $cp;
}
is_deeply([ sort keys %receipt ], [ sort @leaves ], 'source: a receipt for every partition');
foreach my $part (@leaves)
{
	my $file = cl_write_file("$tmp/$part.receipt", $receipt{$part});
	my $export = cl_export_to_file($node, 'src', $part, "$tmp/src.$part.export");
	my ($rc, $out) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $file, $export);
	is($rc, 0, "source: offline verifier accepts ${part}'s export with its receipt");
}

# a partitioned ledger with personal columns (README "Erasure"): its
# statement guard carries them, through the dump, to partitions created
# after the restore
$node->safe_psql('src', q{
	CREATE TABLE people (id int, customer_id int, email text) PARTITION BY RANGE (id);
	CREATE TABLE people_1 PARTITION OF people FOR VALUES FROM (0) TO (100);
	INSERT INTO people VALUES (1, 71, 'seven-one@example.org'), (2, 72, 'seven-two@example.org');
	SELECT consent_ledger.create_ledger('people', ARRAY['email'], 'customer_id');
	ALTER TABLE people OWNER TO part_owner;
	ALTER TABLE people_1 OWNER TO part_owner;
});

my $dump = "$tmp/src.dump";
cl_dump_restore($node, 'src', 'restored', $dump);

is($node->safe_psql('restored', $leaves_sql), join(',', @leaves), 'restored: the same partitions');
my $rverified = $node->safe_psql('restored', $verify_sql);
is($rverified, $verified, 'restored: verify(facts) gives the same answer for every partition');
foreach my $part (@leaves)
{
	is($node->safe_psql('restored', qq{SELECT consent_ledger.verify_checkpoint('$receipt{$part}'::text)}),
		't', "restored: the receipt of $part taken before the dump verifies");
}

# still append-only, through the parent and on a partition
foreach my $try (
	[ 'UPDATE through the parent', q{UPDATE facts SET note = 'x'}, qr/cannot update ledger table/ ],
	[ 'DELETE from a partition', q{DELETE FROM facts_2024_02_a}, qr/cannot delete from ledger table/ ],
	[ 'TRUNCATE of a partition', q{TRUNCATE facts_default}, qr/cannot truncate ledger table/ ],
	[ 'DETACH PARTITION', q{ALTER TABLE facts DETACH PARTITION facts_2024_01},
	  qr/DETACH PARTITION is not allowed on ledger table "facts"/ ],
	[ 'DROP TABLE of a partition', q{DROP TABLE facts_2024_01}, qr/DROP TABLE is not allowed/ ])
{
	my ($what, $sql, $re) = @$try;
	my ($ret, $so, $se) = $node->psql('restored', "BEGIN;\n$sql;\nROLLBACK;");
	like($se, $re, "restored: $what refused");
}

# new rows and a new month, as the table's owner (not an administrator)
$node->safe_psql('restored', q{
	SET ROLE part_owner;
	CREATE TABLE facts_2024_06 PARTITION OF facts FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');
	INSERT INTO facts (id, month, customer_id, amount, note) VALUES (50, '2024-06-02', 1, 1, 'new month'),
		(51, '2024-01-05', 2, 2, 'old month'), (52, '2024-02-05', 3, 3, 'a');
});
$node->safe_psql('restored', 'SELECT consent_ledger.seal()');
is($node->safe_psql('restored',
		q{SELECT count(*) FROM consent_ledger.ledgers WHERE relid = 'facts_2024_06'::regclass AND retired_at IS NULL}),
	'1', 'restored: a partition created after the restore is a ledger');
my $after = $node->safe_psql('restored', $verify_sql);
note("restored, after new rows: $after");
unlike($after, qr/:f\b/, 'restored: verify(facts) valid after new rows');
like($after, qr/facts_2024_06:1:0:t/, 'restored: the new partition\'s row is sealed in its own log');
foreach my $part (@leaves)
{
	is($node->safe_psql('restored', qq{SELECT consent_ledger.verify_checkpoint('$receipt{$part}'::text)}),
		't', "restored: the receipt of $part still verifies after new rows");
	my $export = cl_export_to_file($node, 'restored', $part, "$tmp/restored.$part.export");
	my ($rc, $out) = cl_run_verifier('export', '--public-key', $pk,
		'--checkpoint', "$tmp/$part.receipt", $export);
	is($rc, 0, "restored: offline verifier accepts ${part}'s export after new rows with the old receipt");
}

# the protected partitioned table: each partition still protected, held to
# the policy when read directly by its former owner
is($node->safe_psql('restored', q{SELECT string_agg(c.relname || ':' || c.relforcerowsecurity::text || ':'
		|| pg_get_userbyid(c.relowner), ' ' ORDER BY c.relname)
	FROM pg_class c JOIN consent_ledger.protected p ON p.relid = c.oid WHERE c.relname LIKE 'visits%'}),
	'visits:true:consent_ledger_custodian visits_2024_01:true:consent_ledger_custodian visits_default:true:consent_ledger_custodian',
	'restored: every partition of the protected table is protected, forced, in custody');
my ($ret, $so, $se) = $node->psql('restored', 'SET ROLE part_analyst; SELECT count(*) FROM visits_2024_01');
like($se, qr/no purpose declared/, 'restored: a partition read directly without a purpose is refused');
is($node->safe_psql('restored', q{SET ROLE part_analyst; SET consent_ledger.purpose = 'p';
		SELECT string_agg(id::text, ',' ORDER BY id) FROM visits_2024_01}),
	'1', 'restored: with a purpose, only the consented rows of the partition');
is($node->safe_psql('restored', q{SET ROLE part_analyst; SET consent_ledger.purpose = 'p';
		SELECT string_agg(id::text, ',' ORDER BY id) FROM visits}),
	'1,3', 'restored: through the parent, only the consented rows');

# the partitioned ledger with personal columns: a partition its owner
# creates after the restore commits to them too, and an erasure reaches it
$node->safe_psql('restored', q{
	SET ROLE part_owner;
	CREATE TABLE people_2 PARTITION OF people FOR VALUES FROM (100) TO (200);
	INSERT INTO people VALUES (101, 71, 'seven-one-again@example.org'), (102, 72, 'seven-two-again@example.org');
});
is($node->safe_psql('restored', q{SELECT string_agg(relid::regclass || ':' || encoding || ':' || personal::text
		|| ':' || subject, ' ' ORDER BY relid::regclass::text) FROM consent_ledger.ledgers WHERE relid::text LIKE 'people%'}),
	'people_1:3:{email}:customer_id people_2:3:{email}:customer_id',
	'restored: a partition created after the restore commits to the personal columns');
$node->safe_psql('restored', 'SELECT consent_ledger.seal()');
is($node->safe_psql('restored', q{SELECT string_agg(relation::text || ':' || rows, ' ' ORDER BY relation::text)
		FROM consent_ledger.erase_subject('71', 'TAP 031')}),
	'people_1:1 people_2:1', 'restored: erase_subject() reaches both partitions');
is($node->safe_psql('restored', q{SELECT string_agg(id || ':' || coalesce(email, '-'), ' ' ORDER BY id) FROM people}),
	'1:- 2:seven-two@example.org 101:- 102:seven-two-again@example.org',
	'restored: the subject\'s e-mail addresses are erased in both, the others kept');
is($node->safe_psql('restored', q{SELECT string_agg(relation::text || ':' || valid, ' ' ORDER BY relation::text)
		FROM consent_ledger.verify() WHERE relation::text LIKE 'people%'}),
	'people_1:true people_2:true', 'restored: both partitions verify after the erasure');

$node->stop;
done_testing();
