# Life cycle, without preloading (SPEC §9, README "Configuration"): when
# consent_ledger is taken out of shared_preload_libraries (a configuration
# change, a pg_upgrade to a cluster configured without it), nothing may be
# half done.  Before 1.2 an INSERT into a ledger succeeded and was stamped
# but wrote no pending record (after preloading again verify() reported the
# row as extra for good), and the DDL guards were off.  Now every function,
# trigger and policy check of the extension refuses with 55000 and a hint
# naming the setting, and DDL in the database refuses too; plain reads of
# unprotected tables and pg_dump keep working; after preloading again the
# ledgers verify with exactly the rows they had.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $db = 'postgres';
my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->start;
$node->safe_psql($db, q{
	CREATE ROLE analyst LOGIN;
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	SELECT consent_ledger.grant_consent('s1', 'research');
	CREATE TABLE l (id integer, v text);
	SELECT consent_ledger.create_ledger('l');
	INSERT INTO l VALUES (1, 'a'), (2, 'b');
	CREATE TABLE people (id integer PRIMARY KEY, subject text NOT NULL);
	INSERT INTO people VALUES (1, 's1'), (2, 's2');
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO analyst;
	CREATE TABLE plain (id integer);
	INSERT INTO plain VALUES (1);
	SELECT consent_ledger.seal();
});
is(cl_verify_row($node, $db, 'l')->{valid}, 1, 'the ledger verifies while preloaded');

# take the library out of shared_preload_libraries
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->start;
is($node->safe_psql($db, 'SHOW shared_preload_libraries'), '', 'restarted without preloading');

my $hint = qr/HINT:  Add consent_ledger to shared_preload_libraries/;
my @refused = (
	[ q{INSERT INTO l VALUES (3, 'c')}, 'INSERT into a ledger (the stamp trigger)' ],
	[ q{UPDATE l SET v = 'x'}, 'UPDATE of a ledger (the guard trigger)' ],
	[ q{SELECT consent_ledger.seal()}, 'seal()' ],
	[ q{SELECT * FROM consent_ledger.verify()}, 'verify()' ],
	[ q{SELECT consent_ledger.checkpoint('l')}, 'checkpoint()' ],
	[ q{SELECT consent_ledger.grant_consent('s2', 'research')}, 'grant_consent()' ],
	[ q{SELECT consent_ledger.public_key()}, 'public_key()' ],
	[ q{SELECT consent_ledger.create_ledger('plain')}, 'create_ledger()' ],
	[ q{SELECT consent_ledger.audit('plain')}, 'audit()' ],
	[ q{SELECT consent_ledger.allowed('s1')}, 'the policy check allowed()' ],
	[ q{ALTER TABLE l DROP COLUMN v}, 'DDL on a ledger (the event trigger)' ],
	[ q{CREATE TABLE other (i int)}, 'any DDL in the database' ],
);
foreach my $r (@refused)
{
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$r->[0]");
	isnt($ret, 0, "without preloading: $r->[1] fails");
	like($err, qr/ERROR:  55000: consent_ledger must be loaded via shared_preload_libraries/,
		"... with 55000 and the message");
	like($err, $hint, '... and the hint naming the setting');
	if ($r->[1] =~ /event trigger|any DDL/)
	{
		like($err, qr/HINT:  .*ALTER EVENT TRIGGER consent_ledger_require_preload DISABLE/,
			'... and the way to run DDL (DROP EXTENSION) without preloading');
	}
}

# Every C function of the extension refuses when PostgreSQL sets it up (its
# info record, PG_FUNCTION_INFO_V1 as consent_ledger.h redefines it): the C
# language validator fetches each one's record afresh.
my $cfuncs = $node->safe_psql($db, q{
	SELECT string_agg(p.oid::text, ' ' ORDER BY p.oid) FROM pg_proc p
	JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'consent_ledger'
	WHERE p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
	  AND p.proname <> 'table_am_handler'});
my @cfuncs = split / /, $cfuncs;
cmp_ok(scalar(@cfuncs), '>', 20, 'the extension has its C functions');
my @unchecked;
foreach my $f (@cfuncs)
{
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\nSELECT pg_catalog.fmgr_c_validator($f)");
	push @unchecked, $node->safe_psql($db, "SELECT '$f'::regprocedure") . " ($err)"
	  unless $ret != 0 && $err =~ /ERROR:  55000: consent_ledger must be loaded via shared_preload_libraries/;
}
is(join(', ', @unchecked), '', 'without preloading: the info record of every C function refuses (55000)');
# but the table access method's handler (1.3): l is on it, and must stay
# readable (below); storing a row refuses instead (the stamp trigger first)
my ($hret, $hout, $herr) = $node->psql($db,
	"SELECT pg_catalog.fmgr_c_validator('consent_ledger.table_am_handler(internal)'::regprocedure)");
is($hret, 0, 'without preloading: the table access method handler loads (reads of its tables work)');
is($node->safe_psql($db, q{SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = 'l'::regclass}),
	'consent_ledger', 'l is on the table access method');

# installing without preloading fails as before (SPEC §1), with the hint
$node->safe_psql($db, 'CREATE DATABASE fresh');
my ($cret, $cout, $cerr) = $node->psql('fresh', "\\set VERBOSITY verbose\nCREATE EXTENSION consent_ledger");
isnt($cret, 0, 'CREATE EXTENSION without preloading fails');
like($cerr, qr/ERROR:  55000: consent_ledger must be loaded via shared_preload_libraries/, '... with 55000');
like($cerr, $hint, '... and the hint naming the setting');

# an analyst's read of a protected table: the policy calls the consent
# check, which refuses -- never an unaudited answer
my ($ret, $out, $err) = $node->psql($db,
	"SET consent_ledger.purpose = 'research'; SELECT * FROM people", extra_params => [ '-U', 'analyst' ]);
isnt($ret, 0, 'an analyst cannot read a protected table without preloading');
like($err, qr/consent_ledger must be loaded via shared_preload_libraries/, '... 55000, the policy check refuses');

# what keeps working: plain reads, the ledger's rows, pg_dump
is($node->safe_psql($db, 'SELECT count(*) FROM plain'), '1', 'a plain table can be read');
is($node->safe_psql($db, 'SELECT string_agg(v, \',\' ORDER BY id) FROM l'), 'a,b',
	'a ledger table can be read (no function of the extension runs)');
is($node->safe_psql($db, 'SELECT count(*) FROM consent_ledger.pending'), '0', 'no pending record was written');
my $dump = $node->basedir . '/nopreload.dump';
command_ok([ 'pg_dump', '-d', $node->connstr($db), '-Fc', '-f', $dump ], 'pg_dump works without preloading');

# preload again: exactly the rows that were there, valid
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'consent_ledger'");
$node->start;
$node->safe_psql($db, 'SELECT consent_ledger.seal()');
my $v = cl_verify_row($node, $db, 'l');
is($v->{rows}, 2, 'preloaded again: the ledger has its two rows');
is($v->{valid}, 1, '... and verifies (no stamped row without its pending record)') or diag($v->{problem});
$node->safe_psql($db, q{INSERT INTO l VALUES (3, 'c')});
$node->safe_psql($db, 'SELECT consent_ledger.seal()');
is(cl_verify_row($node, $db, 'l')->{valid}, 1, '... and takes new rows again');
is($node->safe_psql($db, "SET consent_ledger.purpose = 'research'; SELECT string_agg(subject, ',') FROM people",
		extra_params => [ '-U', 'analyst' ]), 's1', 'the analyst reads the consented row again');

$node->stop;
done_testing();
