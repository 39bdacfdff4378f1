# Nothing the extension writes can make pg_dump / pg_restore fail (SPEC §9,
# issue #10 class 7): hostile input reaches the audit ledger, then the
# database is dumped and restored and the audit ledger comes back whole
# and verifying.  In a UTF8 and in a LATIN1 database:
#
#  - a purpose given at connection time (PGOPTIONS) that is not valid in
#    the database encoding is refused at connection;
#  - an audited table whose key is far longer than an audit string may be,
#    made of multibyte characters: its row key is cut on a character
#    boundary;
#  - a role name in another encoding than the database's (role names are
#    shared by all databases), made the current role with set_config(), is
#    recorded without its invalid bytes.

use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);

my $node = PostgreSQL::Test::Cluster->new('encoding');
$node->init;
$node->start;
# a role whose name is LATIN1 'é' (one byte 0xE9): invalid UTF-8
$node->safe_psql('postgres', q{
	CREATE DATABASE wh ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C';
	CREATE DATABASE wl ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C';
	CREATE ROLE analyst LOGIN;
});
# Runs psql with extra environment; returns (exit status, stdout, stderr).
sub psql_env
{
	my ($dbname, $sql, $env, @params) = @_;
	local %ENV = (%ENV, %$env);
	my ($out, $err) = ('', '');
	my $ret = $node->psql($dbname, $sql, stdout => \$out, stderr => \$err, extra_params => \@params);
	return ($ret, $out, $err);
}

my ($r0, $o0, $e0) = psql_env('wl', qq{CREATE ROLE "r\xe9" LOGIN SUPERUSER}, { PGCLIENTENCODING => 'LATIN1' });
is($r0, 0, 'a role named in LATIN1') or diag $e0;

my %long_key = (
	# "(k)=(" is 5 bytes, then 3-byte characters: a cut at 4096 bytes would
	# fall inside a character
	wh => q{repeat(U&'\20AC', 2000)},
	# LATIN1 'é' is one byte: the cut is harmless, but the key is still clipped
	wl => q{repeat(U&'\00E9', 6000)});

for my $db (qw(wh wl))
{
	my $label = $db eq 'wh' ? 'UTF8' : 'LATIN1';
	$node->safe_psql($db, qq{
		SET client_encoding = 'UTF8';
		CREATE EXTENSION consent_ledger;
		SELECT consent_ledger.define_purpose('research', 'medical research');
		SELECT consent_ledger.authorize_purpose('analyst', 'research');
		CREATE TABLE kt (k text PRIMARY KEY, v integer NOT NULL);
		SELECT consent_ledger.audit('kt');
		INSERT INTO kt VALUES ('short', 0), ($long_key{$db}, 0);
		CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL);
		INSERT INTO people SELECT g, g FROM generate_series(1, 4) g;
		SELECT consent_ledger.protect('people', 'subject');
		GRANT SELECT ON people TO analyst;
		SELECT consent_ledger.grant_consent(1, 'research');
		SELECT consent_ledger.grant_consent(2, 'research');
	});

	# a purpose of invalid UTF-8 at connection time
	if ($db eq 'wh')
	{
		my ($ret, $out, $err) = psql_env($db, 'SELECT 1',
			{ PGOPTIONS => "-c consent_ledger.purpose=\xff\xfe" }, '-U', 'analyst');
		isnt($ret, 0, "$label: a connection declaring a purpose of invalid UTF-8 is refused");
		like($err, qr/invalid value for parameter "consent_ledger\.purpose"/, "$label: ... naming the setting");
		($ret, $out, $err) = psql_env($db, q{UPDATE kt SET v = v + 1 WHERE k = 'short'},
			{ PGOPTIONS => "-c consent_ledger.purpose=\xff\xfe" });
		isnt($ret, 0, "$label: ... for a superuser's audited change too");
	}
	# a valid purpose at connection time
	my ($ret, $out, $err) = psql_env($db, q{SELECT count(*) FROM people},
		{ PGOPTIONS => "-c consent_ledger.purpose=research" }, '-U', 'analyst');
	is($out, '2', "$label: a valid purpose given at connection time is accepted") or diag $err;

	# audited changes: the long key, and one by the LATIN1-named superuser
	$node->safe_psql($db, "UPDATE kt SET v = v + 1");
	# (PostgreSQL refuses to log in with such a name; SET ROLE by value is enough)
	($ret, $out, $err) = psql_env($db, q{
		SELECT set_config('role', rolname, false) IS NOT NULL FROM pg_authid WHERE rolname::bytea = '\x72e9'::bytea;
		UPDATE kt SET v = v + 1 WHERE k = 'short'}, {});
	is($ret, 0, "$label: an audited change by a role named in LATIN1") or diag $err;
	is($node->safe_psql($db, q{SELECT string_agg(DISTINCT role_name, ',') FROM consent_ledger.audit_log
		WHERE row_key = '(k)=(short)' AND operation = 'UPDATE' AND role_name LIKE 'r%'}),
		$db eq 'wh' ? 'r?' : "r\xe9",
		"$label: ... recorded under the role's name, invalid bytes as '?'");
	# a protected read and a rolled-back change (both through the writer)
	($ret, $out, $err) = psql_env($db, q{SET consent_ledger.purpose = 'research'; SELECT count(*) FROM people},
		{}, '-U', 'analyst');
	is($out, '2', "$label: a protected read") or diag $err;
	$node->safe_psql($db, "BEGIN; UPDATE kt SET v = v + 100; ROLLBACK;");
	ok(cl_wait_for($node, $db, q{SELECT count(*) FROM consent_ledger.audit_log WHERE outcome = 'rolled back'}, 30, '2'),
		"$label: the rolled-back changes are recorded");
	$node->safe_psql($db, 'SELECT consent_ledger.seal()');

	is($node->safe_psql($db, q{SELECT max(octet_length(row_key)) <= 4096 AND min(octet_length(row_key)) > 0
		FROM consent_ledger.audit_log WHERE row_key IS NOT NULL AND row_key <> '(k)=(short)'}), 't',
		"$label: the long row key is clipped to at most 4096 bytes");
	# convert_from() checks the bytes: a key cut inside a character fails it
	my ($kout, $kerr) = ('', '');
	$node->psql($db, qq{SELECT bool_and(starts_with('(k)=(' || $long_key{$db}, row_key)
			AND convert_from(textsend(row_key), current_setting('server_encoding')) = row_key)
		FROM consent_ledger.audit_log WHERE row_key IS NOT NULL AND row_key <> '(k)=(short)'},
		stdout => \$kout, stderr => \$kerr);
	is($kout, 't', "$label: ... on a character boundary (a valid prefix of the key)") or diag $kerr;

	my $count = $node->safe_psql($db, 'SELECT count(*) FROM consent_ledger.audit_log');
	my $all = $node->safe_psql($db, 'SELECT md5(string_agg(a::text, E\'\n\' ORDER BY record_id)) FROM consent_ledger.audit_log a');
	cmp_ok($count, '>=', 10, "$label: $count audit records");

	my $dump = "$tmp/$db.dump";
	$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr($db) ], "$label: pg_dump -Fc");
	my $target = "${db}_restored";
	$node->safe_psql('postgres', "CREATE DATABASE $target TEMPLATE template0 ENCODING '$label' LC_COLLATE 'C' LC_CTYPE 'C'");
	my ($ro, $re) = ('', '');
	IPC::Run::run([ $node->installed_command('pg_restore'), '-d', $node->connstr($target), $dump ],
		'>', \$ro, '2>', \$re);
	is($? >> 8, 0, "$label: pg_restore exits 0");
	is($re, '', "$label: pg_restore reports no error") or diag $re;
	is($node->safe_psql($target, 'SELECT count(*) FROM consent_ledger.audit_log'), $count,
		"$label: every audit record is restored");
	is($node->safe_psql($target, 'SELECT md5(string_agg(a::text, E\'\n\' ORDER BY record_id)) FROM consent_ledger.audit_log a'),
		$all, "$label: ... unchanged");
	foreach my $rel ('consent_ledger.audit_log', 'consent_ledger.consent_events')
	{
		my $v = cl_verify_row($node, $target, $rel);
		ok($v->{valid} && $v->{pending} == 0, "$label: restored $rel verifies") or diag $v->{problem};
	}
}

ok(!$node->log_contains(qr/PANIC|terminated by signal|invalid byte sequence/),
	'no crash, and no encoding error in the server log');
$node->stop;
done_testing();
