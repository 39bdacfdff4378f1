# One reader for receipts (attack review 1, F2): every receipt variant the
# review listed -- duplicate keys, numbers spelled 3.0, 3e0 or -0, nested,
# negative, fractional, huge or array members, 100 extra members, escaped
# and upper-case spellings -- gets the same verdict, and for a refusal the
# same reason, from consent_ledger.verify_checkpoint_detail(text) and from
# the offline verifier (consent-ledger-verify checkpoint).  Each variant's
# verdict is also asserted, so that agreement in error cannot pass.

use strict;
use warnings;

use Cwd qw(abs_path);
use MIME::Base64 qw(decode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $node = PostgreSQL::Test::Cluster->new('receipt_reader');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION consent_ledger');
my $pk = $node->safe_psql('postgres', 'SELECT consent_ledger.public_key()');

# The key id is 4 bytes of a hash of the ledger's random origin and the key:
# the upper-case variant below only differs from the real one when the id
# holds a hex letter (about 98% of ledgers).  Make ledgers until one does,
# so that variant always tests something.
my ($tbl, $full, $note, $origin, $key_id, $time, $size);
for my $n (1 .. 30)
{
	$tbl = "pay_$n";
	$node->safe_psql('postgres', qq{
		CREATE TABLE $tbl (id int, amount int);
		SELECT consent_ledger.create_ledger('$tbl');
		INSERT INTO $tbl VALUES (1, 100), (2, 200), (3, 300);
	});
	$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');
	($full, $note, $origin, $key_id, $time, $size) = split /\|/,
	  $node->safe_psql('postgres', qq{
		SELECT cp::text, to_json(cp->>'note')::text, cp->>'origin', cp->>'key_id', cp->>'time', cp->>'tree_size'
		FROM (SELECT consent_ledger.checkpoint('$tbl') AS cp) c});
	last if $key_id =~ /[a-f]/;
}
like($key_id, qr/[a-f]/, 'the receipt\'s key id has a hex letter, so its upper-case spelling differs');
is($size, '3', 'the receipt covers the three sealed rows');

my $base = sub { '{"note": ' . $note . ($_[0] // '') . '}' };
(my $origin_escaped = $origin) =~ s/_/\\u005f/g;
# the note itself, as UTF-8 bytes
my $bare = decode_base64($node->safe_psql('postgres',
		qq{SELECT translate(encode(convert_to(consent_ledger.checkpoint('$tbl')->>'note', 'UTF8'), 'base64'), E'\\n', '')}));

# label => [receipt text, expected verdict (1 holds), expected reason]
my @variants = (
	[ 'plain', $base->(), 1 ],
	[ 'full', $full, 1 ],
	[ 'bare note', $bare, 1 ],
	[ 'origin_escaped', $base->(qq{, "origin": "$origin_escaped"}), 1 ],
	[ 'unknown flat members', $base->(', "comment": "mine", "seen": true, "n": 7, "tags": ["a"], "z": null'), 1 ],
	[ '32 members', $base->(join('', map { qq{, "m$_": 1} } 1 .. 31)), 1 ],
	[ 'ts_3.0', $base->(', "tree_size": 3.0'), 0, 'malformed receipt: numbers with a fraction or exponent are not accepted' ],
	[ 'ts_3e0', $base->(', "tree_size": 3e0'), 0, 'malformed receipt: numbers with a fraction or exponent are not accepted' ],
	[ 'ts_neg0', $base->(', "tree_size": -0'), 0, 'malformed receipt: negative numbers are not accepted' ],
	[ 'ts_str', $base->(', "tree_size": "3"'), 0, 'receipt member "tree_size" is not a non-negative integer' ],
	[ 'dup_ts', '{"tree_size": 999, "note": ' . $note . ', "tree_size": 3}', 0, 'malformed receipt: duplicate key' ],
	[ 'dup_ts_rev', '{"tree_size": 3, "note": ' . $note . ', "tree_size": 999}', 0, 'malformed receipt: duplicate key' ],
	[ 'dup_note', '{"note": "garbage", "note": ' . $note . '}', 0, 'malformed receipt: duplicate key' ],
	[ 'dup_other', $base->(', "x": 1, "x": 1'), 0, 'malformed receipt: duplicate key' ],
	[ 'nested_other', $base->(', "extra": {"a": 1}'), 0, 'malformed receipt: nested objects are not accepted' ],
	[ 'neg_other', $base->(', "extra": -1'), 0, 'malformed receipt: negative numbers are not accepted' ],
	[ 'frac_other', $base->(', "extra": 1.5'), 0, 'malformed receipt: numbers with a fraction or exponent are not accepted' ],
	[ 'bigint_other', $base->(', "extra": 99999999999999999999'), 0, 'malformed receipt: number too large' ],
	[ 'arr_other', $base->(', "extra": [1,2]'), 0, 'malformed receipt: arrays may only hold strings' ],
	[ 'time_.00', $base->(qq{, "time": $time.00}), 0, 'malformed receipt: numbers with a fraction or exponent are not accepted' ],
	[ 'keyid_upper', $base->(', "key_id": "' . uc($key_id) . '"'), 0, 'receipt member "key_id" does not match the signed note' ],
	[ 'many_members', $base->(join('', map { qq{, "m$_": 1} } 0 .. 99)), 0, 'malformed receipt: object has too many members' ],
	[ 'trailing', $base->() . ' x', 0, 'malformed receipt: trailing bytes after the object' ],
);

my $i = 0;
for my $v (@variants)
{
	my ($label, $text, $want, $reason) = @$v;
	my $file = cl_write_file("$tmp/receipt_" . $i++ . '.json', $text);
	my ($valid, $why) = split /\|/, $node->safe_psql('postgres',
		qq{SELECT valid, coalesce(reason, '') FROM consent_ledger.verify_checkpoint_detail(pg_catalog.pg_read_file('$file'))}), 2;
	my ($rc, $out) = cl_run_verifier('checkpoint', '--public-key', $pk, $file);
	my ($first) = split /\n/, $out;
	$first //= '';
	my $sql_ok = $valid eq 't' ? 1 : 0;
	my $off_ok = $rc == 0 ? 1 : ($rc == 1 ? 0 : -1);
	is($sql_ok, $want, "$label: verify_checkpoint_detail(text) says " . ($want ? 'valid' : 'invalid'));
	is($off_ok, $want, "$label: the offline verifier says " . ($want ? 'OK' : 'FAIL'));
	if (!$want)
	{
		is($why, $reason, "$label: SQL gives the reason");
		is($first, "FAIL: $file: $reason", "$label: the offline verifier gives the same reason");
	}
	# a receipt given as text and as the same text in a literal resolve alike
	is($node->safe_psql('postgres',
			qq{SELECT consent_ledger.verify_checkpoint(pg_catalog.pg_read_file('$file'))}),
		$want ? 't' : 'f', "$label: verify_checkpoint(text) agrees");
}

done_testing();
