# SQLSTATEs of consent_ledger's own timeouts (issue item 10): seal() and a
# protected read that run past consent_ledger.seal_timeout fail with 55P03
# (lock_not_available, like lock_timeout), which PL/pgSQL's WHEN OTHERS
# catches and poolers do not take for a cancel -- not 57014.
#
# The waits are made to time out for certain, not by timing: a session
# holds ACCESS EXCLUSIVE locks on the tables the sealer and the audit
# writer must write, for as long as the timed statements run.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $node = PostgreSQL::Test::Cluster->new('errcodes');
$node->init(allows_streaming => 1);
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE l (id integer, v text);
	SELECT consent_ledger.create_ledger('l');
	SELECT consent_ledger.define_purpose('research', 'medical research');
	CREATE TABLE people (id integer PRIMARY KEY, subject integer NOT NULL);
	INSERT INTO people SELECT g, g FROM generate_series(1, 3) g;
	SELECT consent_ledger.protect('people', 'subject');
	CREATE ROLE analyst LOGIN;
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	GRANT SELECT ON people TO analyst;
	GRANT pg_read_all_stats TO analyst;
	SELECT consent_ledger.grant_consent(1, 'research');
});
$node->safe_psql('postgres', 'SELECT consent_ledger.seal()');

# a PL/pgSQL block that runs $stmt and reports the SQLSTATE it caught
sub caught
{
	my ($stmt, %o) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', qq{
		SET consent_ledger.seal_timeout = '1s';
		SET client_min_messages = notice;
		DO \$\$
		DECLARE st text;
		BEGIN
			$stmt;
			RAISE NOTICE 'no error';
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
			RAISE NOTICE 'caught %', st;
		END
		\$\$;}, %o);
	return ($ret, $err);
}

# 1. seal() while the sealer cannot write consent_ledger.log
my $blocker = $node->background_psql('postgres');
$node->safe_psql('postgres', q{INSERT INTO l VALUES (1, 'waits')});
$blocker->query_safe(q{BEGIN; LOCK TABLE consent_ledger.log IN ACCESS EXCLUSIVE MODE;});
my ($ret, $err) = caught('PERFORM consent_ledger.seal()');
is($ret, 0, 'seal() timing out: the DO block completes');
like($err, qr/NOTICE:  caught 55P03/, 'seal() timing out: WHEN OTHERS catches it, SQLSTATE 55P03');
$blocker->query_safe('COMMIT');
ok(cl_wait_for($node, 'postgres', q{SELECT consent_ledger.seal() >= 0 AND pending = 0 FROM consent_ledger.verify('l')}, 60),
	'sealing goes on once the lock is gone');

# 2. a protected read whose audit record cannot be written
my $alog = $node->safe_psql('postgres',
	q{SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables
	  WHERE schemaname = 'consent_ledger' AND tablename LIKE 'audit%'});
note("audit tables: $alog");
$blocker->query_safe(qq{BEGIN; LOCK TABLE $alog IN ACCESS EXCLUSIVE MODE;});
($ret, $err) = caught(q{SET LOCAL consent_ledger.purpose = 'research'; PERFORM count(*) FROM people},
	extra_params => [ '-U', 'analyst' ]);
is($ret, 0, 'audited read timing out: the DO block completes');
like($err, qr/NOTICE:  caught 55P03/, 'audited read timing out: WHEN OTHERS catches it, SQLSTATE 55P03')
  or diag $err;
$blocker->query_safe('COMMIT');
$blocker->quit;


###########################################################################
# A cursor opened before a savepoint whose FETCH fails inside it: the
# savepoint's rollback ends the read (outcome "failed"); 1.1 kept it open
# until the session ended and never recorded its outcome.
###########################################################################

$node->safe_psql('postgres', q{INSERT INTO people VALUES (4, 1)});
($ret, my $cout, $err) = $node->psql('postgres', q{
	SET application_name = 'cursor_in_savepoint';
	BEGIN;
	SET LOCAL consent_ledger.purpose = 'research';
	DECLARE c CURSOR FOR SELECT 1 / (id - 4) FROM people ORDER BY id DESC;
	SAVEPOINT s;
	FETCH c;
	ROLLBACK TO SAVEPOINT s;
	CLOSE c;
	COMMIT;
	SET application_name = 'after_cursor';
	BEGIN;
	SET LOCAL consent_ledger.purpose = 'research';
	SELECT count(*) FROM people;
	COMMIT;
}, on_error_stop => 0, extra_params => [ '-U', 'analyst' ]);
like($err, qr/division by zero/, 'cursor in a savepoint: the FETCH fails');
ok(cl_wait_for($node, 'postgres',
		q{SELECT count(*) > 0 FROM consent_ledger.audit_log WHERE application_name = 'after_cursor' AND outcome <> 'started'}, 60),
	'cursor in a savepoint: the later read is recorded');
is($node->safe_psql('postgres',
		q{SELECT string_agg(outcome, ',' ORDER BY record_id) FROM consent_ledger.audit_log
		  WHERE application_name = 'cursor_in_savepoint' AND kind = 'read'}),
	'started,failed', 'cursor in a savepoint: the failed cursor\'s read is recorded as failed');

###########################################################################
# Memory: cache invalidations and reloads do not grow CacheMemoryContext.
#  - the ledger cache: each relcache invalidation of a ledger table (here
#    GRANT and REVOKE) and the next lookup (checkpoint()) used to leave the entry's
#    copy in CacheMemoryContext;
#  - the purpose cache: each reload after a purposes change (committed)
#    used to scan the extension's tables inside its CacheMemoryContext child.
###########################################################################

my $cache = q{(SELECT sum(total_bytes - free_bytes) FROM pg_backend_memory_contexts
	WHERE name IN ('CacheMemoryContext', 'consent_ledger consent cache'))};
sub ledger_invalidations
{
	my ($n) = @_;
	return qq{DO \$\$ BEGIN FOR i IN 1 .. $n LOOP
		GRANT SELECT ON l TO analyst; PERFORM consent_ledger.checkpoint('l');
		REVOKE SELECT ON l FROM analyst; PERFORM consent_ledger.checkpoint('l');
	END LOOP; END \$\$;};
}
my ($cret, $cgrow, $cerr) = $node->psql('postgres', qq{
	@{[ ledger_invalidations(50) ]}
	SELECT $cache AS before \\gset
	@{[ ledger_invalidations(1000) ]}
	SELECT $cache - :before;
});
is($cret, 0, 'ledger cache: 2000 invalidations run') or diag $cerr;
note("CacheMemoryContext grew by $cgrow bytes over 2000 ledger cache invalidations (1000 GRANT, 1000 REVOKE)");
cmp_ok($cgrow, '<', 128 * 1024, 'ledger cache: invalidations do not grow CacheMemoryContext');

# many purposes, so that each reload has much to scan
$node->safe_psql('postgres', q{SELECT consent_ledger.define_purpose('p' || g, 'purpose ' || g) FROM generate_series(1, 200) g});

my $reload = q{SELECT consent_ledger._purposes_changed();
	SET ROLE analyst; SET consent_ledger.purpose = 'research'; SELECT count(*) FROM people; RESET ROLE;
};
($cret, $cgrow, $cerr) = $node->psql('postgres',
	($reload x 30) . "SELECT $cache AS before \\gset\n" . ($reload x 300) . "SELECT $cache - :before;\n");
is($cret, 0, 'purpose cache: 300 reloads run') or diag $cerr;
($cgrow) = $cgrow =~ /(-?\d+)\s*\z/;
note("CacheMemoryContext and the consent cache grew by $cgrow bytes over 300 purpose reloads");
cmp_ok($cgrow, '<', 256 * 1024, 'purpose cache: reloads do not grow CacheMemoryContext');

###########################################################################
# Memory (review 3, item 3): a read that bypasses row-level security (here
# a superuser's) records the session's purpose; 1.2 before this fix left a
# copy of it in TopMemoryContext on every such read.
###########################################################################

my $topm = q{(SELECT total_bytes - free_bytes FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext')};
sub bypass_reads
{
	my ($n) = @_;
	return qq{DO \$\$ BEGIN FOR i IN 1 .. $n LOOP PERFORM count(*) FROM people; END LOOP; END \$\$;};
}
my $long_purpose = 'r' x 63;    # the longest purpose name
$node->safe_psql('postgres', qq{SELECT consent_ledger.define_purpose('$long_purpose', 'a long name')});
($cret, $cgrow, $cerr) = $node->psql('postgres', qq{
	SET consent_ledger.purpose = '$long_purpose';
	@{[ bypass_reads(100) ]}
	SELECT $topm AS before \\gset
	@{[ bypass_reads(2000) ]}
	SELECT $topm - :before;
});
is($cret, 0, 'bypassing reads: 2000 superuser reads with a purpose run') or diag $cerr;
note("TopMemoryContext grew by $cgrow bytes over 2000 RLS-bypassing reads");
cmp_ok($cgrow, '<', 64 * 1024,
	'bypassing reads: 2000 reads with a purpose leave TopMemoryContext (nearly) as it was');

###########################################################################
# Memory (review 3, item 7): the ledger cache forgets what it learnt about
# tables that are not ledgers when they change or go: a session that
# creates, uses, looks up (ledger(), DROP TABLE's guard) and drops many
# temporary tables does not grow it.
###########################################################################

sub temp_churn
{
	my ($n) = @_;
	return qq{DO \$\$ BEGIN FOR i IN 1 .. $n LOOP
		CREATE TEMP TABLE churn (i int); INSERT INTO churn VALUES (i);
		PERFORM count(*) FROM churn;
		BEGIN PERFORM consent_ledger.ledger('churn'); EXCEPTION WHEN undefined_object THEN NULL; END;
		DROP TABLE churn;
		COMMIT;
	END LOOP; END \$\$;};
}
# the cache's hash table has a memory context of its own under
# CacheMemoryContext (PostgreSQL's own caches there grow with the OIDs seen)
my $lcache = q{(SELECT coalesce(sum(total_bytes - free_bytes), 0) FROM pg_backend_memory_contexts
	WHERE name = 'consent_ledger ledgers')};
($cret, $cgrow, $cerr) = $node->psql('postgres', qq{
	@{[ temp_churn(200) ]}
	SELECT $lcache AS before \\gset
	@{[ temp_churn(3000) ]}
	SELECT $lcache - :before;
});
is($cret, 0, 'temp table churn: 3000 temporary tables created, used and dropped') or diag $cerr;
note("the ledger cache grew by $cgrow bytes over 3000 temporary tables");
cmp_ok($cgrow, '<', 16 * 1024, 'temp table churn: the ledger cache does not grow');

###########################################################################
# Memory: reads refused on a hot standby leave nothing behind in
# TopMemoryContext (1.1 left the statement's arrays there, each time).
###########################################################################

$node->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('errstandby');
$standby->init_from_backup($node, 'bkp', has_streaming => 1);
chmod(0600, $standby->data_dir . '/consent_ledger/signing.key');
$standby->start;
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));

my $top = q{(SELECT total_bytes - free_bytes FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext')};
sub refusals
{
	my ($n) = @_;
	return qq{DO \$\$ BEGIN FOR i IN 1 .. $n LOOP
		BEGIN PERFORM count(*) FROM people; EXCEPTION WHEN read_only_sql_transaction THEN NULL; END;
	END LOOP; END \$\$;};
}
my ($sret, $sout, $serr) = $standby->psql('postgres', qq{
	SET consent_ledger.purpose = 'research';
	SELECT count(*) FROM people;
}, extra_params => [ '-U', 'analyst' ]);
like($serr, qr/cannot read consent-protected data on a standby/, 'standby: a protected read is refused');
($sret, $sout, $serr) = $standby->psql('postgres', qq{
	SET consent_ledger.purpose = 'research';
	@{[ refusals(200) ]}
	SELECT $top AS before \\gset
	@{[ refusals(4000) ]}
	SELECT $top - :before;
}, extra_params => [ '-U', 'analyst' ]);
is($sret, 0, 'standby: 4000 refused reads run') or diag $serr;
note("TopMemoryContext grew by $sout bytes over 4000 refused reads");
cmp_ok($sout, '<', 64 * 1024,
	'standby: 4000 refused reads leave TopMemoryContext (nearly) as it was');
$standby->stop;

$node->stop;
done_testing();
