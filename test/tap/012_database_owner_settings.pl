# A database's owner need not be trusted (SPEC §5), yet it can give every
# session of its database defaults with ALTER DATABASE ... SET -- the
# sealer's and the audit writer's too, which run as the bootstrap
# superuser.  Nothing it sets may steer them (SPEC §9):
#
#  1. search_path: an aggregate "sum" and an operator-free function of the
#     owner's, first on the path, must never run in the workers (before
#     1.1 the sealer called an unqualified sum() on every round, so the
#     owner's code ran as superuser);
#  2. default_transaction_read_only = on, statement_timeout = 1ms,
#     default_transaction_isolation = serializable, synchronous_commit =
#     off, exit_on_error = on, role = the owner: sealing and auditing go on
#     as before, as the bootstrap superuser (the
#     workers force what they depend on; durability of their commits is
#     not observable here without an OS crash -- README "The workers
#     ignore the database's defaults").

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $db = 'owned';
my $node = PostgreSQL::Test::Cluster->new('dbowner');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE ROLE dbowner LOGIN CREATEDB;
	CREATE ROLE analyst LOGIN;
});
$node->safe_psql('postgres', "CREATE DATABASE $db OWNER dbowner");
$node->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	SELECT consent_ledger.grant_consent(1, 'research');
	CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL);
	INSERT INTO people VALUES (1, 1), (2, 2);
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO analyst;
	CREATE TABLE l (id integer, v text);
	SELECT consent_ledger.create_ledger('l');
	INSERT INTO l VALUES (1, 'a');
	SELECT consent_ledger.seal();
});

# the owner's trap: its own "sum" first on the path of every session,
# recording who ran it and becoming superuser if it can
$node->safe_psql($db, q{
	CREATE SCHEMA trap;
	CREATE TABLE trap.calls (who text, super text);
	GRANT INSERT ON trap.calls TO PUBLIC;
	CREATE FUNCTION trap.sfunc(bigint, integer) RETURNS bigint LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO trap.calls VALUES (current_user, current_setting('is_superuser'));
		IF current_setting('is_superuser') = 'on' THEN
			EXECUTE 'ALTER ROLE dbowner SUPERUSER';
		END IF;
		RETURN coalesce($1, 0) + $2;
	END $$;
	CREATE AGGREGATE trap.sum(integer) (sfunc = trap.sfunc, stype = bigint);
	ALTER DATABASE owned SET search_path = trap, pg_catalog;
	ALTER DATABASE owned SET default_transaction_read_only = on;
	ALTER DATABASE owned SET statement_timeout = '1ms';
	ALTER DATABASE owned SET default_transaction_isolation = 'serializable';
	ALTER DATABASE owned SET synchronous_commit = off;
	ALTER DATABASE owned SET exit_on_error = on;
	ALTER DATABASE owned SET role = dbowner;
}, extra_params => [ '-U', 'dbowner' ]);
# the workers pick the settings up when they start
$node->restart;

# This test's own sessions must not trip over the 1 ms default either: a
# SET statement_timeout = 0 sent as the first statement still runs under
# it and can be cancelled on a loaded machine.  Startup options override
# database defaults, so the client is immune before its first statement.
$ENV{PGOPTIONS} = '-c statement_timeout=0';

# the owner's defaults apply to its own sessions: it is a real trap
my $sess_path = $node->safe_psql($db, 'SHOW search_path', extra_params => [ '-U', 'dbowner' ]);
is($sess_path, 'trap, pg_catalog', "the database's sessions get the owner's search_path");

my $rw = 'SET default_transaction_read_only = off; SET statement_timeout = 0; SET exit_on_error = off; SET ROLE NONE; ';
$node->safe_psql($db, $rw . q{INSERT INTO public.l VALUES (2, 'b'), (3, 'c')});
my $sealed = $node->safe_psql($db, $rw . q{
	SET consent_ledger.seal_timeout = '60s';
	SELECT FROM consent_ledger.seal();
	SELECT rows, pending, valid FROM consent_ledger.verify('public.l')});
is($sealed, "3|0|t", 'rows inserted after the restart are sealed, whatever the owner set');

my ($ret, $out, $err) = ('', '', '');
$ret = $node->psql($db, $rw . q{SET consent_ledger.seal_timeout = '60s'; SET consent_ledger.purpose = 'research';
	SELECT string_agg(id::text, ',') FROM public.people},
	stdout => \$out, stderr => \$err, extra_params => [ '-U', 'analyst' ]);
is("$ret|$out", '0|1', "a protected read is answered: the audit writer recorded it") or diag($err);
my $recorded = $node->safe_psql($db, $rw . q{
	SELECT count(*) FROM consent_ledger.audit_log WHERE role_name = 'analyst' AND outcome = 'started'});
is($recorded, '1', '... and its record is in the audit ledger');

my $workers = $node->safe_psql($db, $rw . q{
	SELECT string_agg(DISTINCT backend_type, ', ' ORDER BY backend_type) FROM pg_stat_activity
	WHERE backend_type LIKE 'consent_ledger%' AND datname = current_database()});
is($workers, 'consent_ledger audit writer, consent_ledger sealer', 'both workers of the database run');
my $as = $node->safe_psql($db, $rw . q{
	SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity
	WHERE backend_type LIKE 'consent_ledger%' AND datname = current_database()});
is($as, 'postgres', "... as the bootstrap superuser, not as the role the database's owner set");
my $calls = $node->safe_psql($db, $rw . q{SELECT count(*) FROM trap.calls WHERE super = 'on'});
is($calls, '0', "the owner's sum() never ran with superuser rights");
my $super = $node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner'});
is($super, 'f', 'the database owner did not become superuser');
unlike(slurp_file($node->logfile), qr/read-only transaction|statement timeout/,
	'no sealing round or audit write failed on the read-only or timeout defaults');

# 3. maintenance a database owner may run on tables it does not own, which
#    would lock the extension's tables against the workers while it runs
foreach my $cmd ('VACUUM FULL', 'VACUUM (FULL) consent_ledger.audit_log', "REINDEX DATABASE $db")
{
	my ($r, $o, $e) = ('', '', '');
	$r = $node->psql($db, $rw . $cmd, stdout => \$o, stderr => \$e,
		extra_params => [ '-U', 'dbowner' ]);
	like($e, qr/ERROR:  (.*is not allowed|permission denied for schema consent_ledger)/,
		"the database owner may not run $cmd over the extension's tables");
}
my ($r, $o, $e) = ('', '', '');
$r = $node->psql($db, $rw . 'VACUUM FULL public.people', stdout => \$o, stderr => \$e,
	extra_params => [ '-U', 'dbowner' ]);
is($r, 0, '... but VACUUM FULL of a table named outside the extension works') or diag($e);

$node->stop;
done_testing();
