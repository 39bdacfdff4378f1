# Issue 18: the golden rows of sql/ledger_encoding.sql (one per tag and
# case of encoding version 2) exported and decoded by the offline
# verifier, which checks each leaf against the encoding of its version
# byte: a change to any tag's bytes changes the decoded text below.  The
# same rows in a LATIN1 database decode to the same text (hstore aside,
# README), a version 1 ledger decodes by the version 1 rules, and a leaf
# no version could have produced is refused.

use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $node = PostgreSQL::Test::Cluster->new('encoding_golden');
$node->init;
$node->start;

# the golden DDL and rows, as the regression test runs them
my $sql = slurp_file('sql/ledger_encoding.sql');
my ($ddl) = $sql =~ /^SELECT \$ddl\$\n(.*?)^\$ddl\$ AS golden_ddl/ms
  or BAIL_OUT('golden DDL not found in sql/ledger_encoding.sql');
my ($rows) = $sql =~ /^\$rows\$\n(.*?)^\$rows\$ AS golden_rows/ms
  or BAIL_OUT('golden rows not found in sql/ledger_encoding.sql');

my $pk;

# Loads the golden rows into a new database; returns the decoded leaves.
sub golden_decode
{
	my ($db, $encoding, $client_encoding) = @_;
	$node->safe_psql('postgres',
		"CREATE DATABASE $db ENCODING '$encoding' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
	$node->safe_psql($db,
		"CREATE EXTENSION consent_ledger; CREATE EXTENSION citext; CREATE EXTENSION hstore;\n$ddl");
	$node->safe_psql($db, "SET client_encoding = '$client_encoding';\n$rows");
	$node->safe_psql($db, 'SELECT consent_ledger.seal()');
	$pk //= $node->safe_psql($db, 'SELECT consent_ledger.public_key()');
	my $export = cl_export_to_file($node, $db, 'gold', "$tmp/$db.export");
	my ($rc, $out) = cl_run_verifier('export', '--decode', '--public-key', $pk, $export);
	is($rc, 0, "$db: the export verifies and every leaf decodes");
	like($out, qr/^OK: /m, "$db: offline verifier says OK");
	my @leaves = grep { /^leaf / } split /\n/, $out;
	s/ txn -?\d+ / txn T / for @leaves;
	return join("\n", @leaves) . "\n";
}

my $golden = <<'GOLDEN';
leaf 0: v2 txn T ord 0 {"b": b:true}
leaf 1: v2 txn T ord 1 {"b": b:false}
leaf 2: v2 txn T ord 2 {"i2": i:-2}
leaf 3: v2 txn T ord 3 {"i4": i:258}
leaf 4: v2 txn T ord 4 {"i8": i:9007199254740993}
leaf 5: v2 txn T ord 5 {"f4": f:3ff8000000000000}
leaf 6: v2 txn T ord 6 {"f4": f:7ff8000000000000}
leaf 7: v2 txn T ord 7 {"f8": f:3fb999999999999a}
leaf 8: v2 txn T ord 8 {"f8": f:8000000000000000}
leaf 9: v2 txn T ord 9 {"f8": f:fff0000000000000}
leaf 10: v2 txn T ord 10 {"f8": f:7ff8000000000000}
leaf 11: v2 txn T ord 11 {"n": n:"12.3400"}
leaf 12: v2 txn T ord 12 {"n": n:"0.000"}
leaf 13: v2 txn T ord 13 {"n": n:"NaN"}
leaf 14: v2 txn T ord 14 {"n": n:"Infinity"}
leaf 15: v2 txn T ord 15 {"t": t:"héllo"}
leaf 16: v2 txn T ord 16 {"vc": t:"vé"}
leaf 17: v2 txn T ord 17 {"bp": t:"ab  "}
leaf 18: v2 txn T ord 18 {"nm": t:"né"}
leaf 19: v2 txn T ord 19 {"ch": C:63}
leaf 20: v2 txn T ord 20 {"ch": C:00}
leaf 21: v2 txn T ord 21 {"ch": C:e9}
leaf 22: v2 txn T ord 22 {"js": J:"{\"b\":1,  \"a\":2}"}
leaf 23: v2 txn T ord 23 {"x": X:"<a>x</a>"}
leaf 24: v2 txn T ord 24 {"ci": t:"Cié"}
leaf 25: v2 txn T ord 25 {"by": x:00ff}
leaf 26: v2 txn T ord 26 {"ts": T:762525296789000}
leaf 27: v2 txn T ord 27 {"ts": T:9223372036854775807}
leaf 28: v2 txn T ord 28 {"tz": Z:762525296789000}
leaf 29: v2 txn T ord 29 {"tz": Z:-9223372036854775808}
leaf 30: v2 txn T ord 30 {"d": D:8825}
leaf 31: v2 txn T ord 31 {"d": D:2147483647}
leaf 32: v2 txn T ord 32 {"tm": h:86399999999}
leaf 33: v2 txn T ord 33 {"ttz": z:3723000000,-19800}
leaf 34: v2 txn T ord 34 {"iv": v:14706000000,3d,14m}
leaf 35: v2 txn T ord 35 {"iv": v:0,-1d,0m}
leaf 36: v2 txn T ord 36 {"u": u:a0eebc999c0b4ef8bb6d6bb9bd380a11}
leaf 37: v2 txn T ord 37 {"jb": j:"{\"a\": \"xé\", \"b\": [1, 2.50, null]}"}
leaf 38: v2 txn T ord 38 {"e": t:"happy"}
leaf 39: v2 txn T ord 39 {"dm": i:7}
leaf 40: v2 txn T ord 40 {"arr": a[3@1]{i:1, null, i:3}}
leaf 41: v2 txn T ord 41 {"arr": a[2@0]{i:5, i:6}}
leaf 42: v2 txn T ord 42 {"arr": a[]{}}
leaf 43: v2 txn T ord 43 {"arr2": a[2@1,2@1]{t:"a", t:"b", t:"c", null}}
leaf 44: v2 txn T ord 44 {"cp": c{"z": i:1}}
leaf 45: v2 txn T ord 45 {"cp": c{"a": t:"é", "z": i:1}}
leaf 46: v2 txn T ord 46 {"cpn": c{"b": b:true, "n": c{"a": t:"x", "z": i:2}}}
leaf 47: v2 txn T ord 47 {"cpa": a[2@1]{c{"a": t:"y", "z": i:3}, null}}
leaf 48: v2 txn T ord 48 {"r4": r:08(i:1,i:5)}
leaf 49: v2 txn T ord 49 {"r4": r:01()}
leaf 50: v2 txn T ord 50 {"r4": r:06(,)}
leaf 51: v2 txn T ord 51 {"rn": r:10(n:"1.5",n:"2.5")}
leaf 52: v2 txn T ord 52 {"rtz": r:0c(Z:757382400000000,)}
leaf 53: v2 txn T ord 53 {"mr": m{r:08(i:1,i:3), r:08(i:5,i:7)}}
leaf 54: v2 txn T ord 54 {"ip": s:02180004c0a80001}
leaf 55: v2 txn T ord 55 {"m": s:00000000000004d2}
leaf 56: v2 txn T ord 56 {"pt": s:3ff00000000000004000000000000000}
leaf 57: v2 txn T ord 57 {"hs": s:00000001000000016b0000000376c3a9}
leaf 58: v2 txn T ord 58 {"tv": s:00000002626172000000636166c3a9000000}
leaf 59: v2 txn T ord 59 {"acl": o:"=r/postgres"}
GOLDEN

my $utf8 = golden_decode('enc_utf8', 'UTF8', 'UTF8');
is($utf8, $golden, 'UTF8 database: every tag decodes to its golden text');

my $latin1 = golden_decode('enc_latin1', 'LATIN1', 'LATIN1');
my @u = split /\n/, $utf8;
my @l = split /\n/, $latin1;
is(scalar(@l), scalar(@u), 'LATIN1 database: as many leaves');
my @differ = grep { $u[$_] ne $l[$_] } 0 .. $#u;
is_deeply([ map { (split / /, $u[$_])[7] } @differ ], [ '{"hs":' ],
	'LATIN1 database: the same decoded leaves but hstore\'s (its send function counts database-encoding bytes)');

# a version 1 ledger (made under the 1.0 objects) decodes by version 1's rules
$node->safe_psql('postgres', q{
	CREATE DATABASE enc_v1;
});
$node->safe_psql('enc_v1', q{
	CREATE EXTENSION consent_ledger VERSION '1.0';
	CREATE TYPE p AS (z int, a text);
	CREATE TABLE v1 (c "char", cp p, vc varchar(4));
	SELECT consent_ledger.create_ledger('v1');
	INSERT INTO v1 VALUES ('c', ROW(1, NULL), 'x');
});
$node->safe_psql('enc_v1', 'SELECT consent_ledger.seal()');
my $export = cl_export_to_file($node, 'enc_v1', 'v1', "$tmp/v1.export");
my ($rc, $out) = cl_run_verifier('export', '--decode', '--public-key', $pk, $export);
is($rc, 0, 'version 1 export verifies and decodes');
like($out, qr/^leaf 0: v1 txn \d+ ord 0 \{"c": t:"c", "cp": c\(i:1, null\), "vc": s:78\}$/m,
	'version 1: "char" as t, composites by position, varchar as its send bytes');

# a leaf no encoding version could have produced: the bool of leaf 0 set to 2
my @lines = split /\n/, slurp_file("$tmp/enc_utf8.export");
my ($i) = grep { $lines[$_] =~ /^leaf / } 0 .. $#lines;
$lines[$i] =~ s/01$/02/ or die 'leaf 0 does not end in a true bool';
cl_write_file("$tmp/bad.export", join("\n", @lines) . "\n");
($rc, $out) = cl_run_verifier('export', '--decode', '--public-key', $pk, "$tmp/bad.export");
is($rc, 1, 'a malformed leaf fails');
like($out, qr/^FAIL: line \d+ \(leaf 0\): not a canonical row encoding: bool value is neither 0 nor 1$/m,
	'and the verifier says why');

$node->stop;
done_testing();
