# Life cycle: DROP EXTENSION and CREATE EXTENSION again (SPEC §9, README
# "Uninstall").  Up to 1.1, DROP EXTENSION ... CASCADE left the consent
# ledger and the audit ledger behind without their triggers and defaults;
# after CREATE EXTENSION again grant_consent failed on a NULL event_id, the
# audit writer failed on every record (protected reads timed out), and
# sessions that lived across the re-creation kept the old registry's
# consent cache (its high-water mark was a cluster-wide highest event id,
# never reset, so the new registry's events 1, 2, ... were never read).
#
#  1. DROP EXTENSION with nothing recorded leaves no schema behind.
#  2. With data: refused while the consent ledger or the audit ledger is
#     live and holds rows; once retired, they are kept as plain tables in
#     schema consent_ledger_dropped_<extension OID>.
#  3. CREATE EXTENSION again: grant_consent, seal, verify, protected reads
#     (audited) work; the workers keep running.
#  4. A session that lived across the re-creation sees the new registry
#     (an event id below the old incarnation's highest).
#  5. Leftovers of a 1.1 drop (tables named like the consent and audit
#     ledgers, no triggers) are renamed out of the way by CREATE EXTENSION.
#  6. A schema consent_ledger_dropped_<extension OID> made beforehand by an
#     untrusted role is never used: DROP EXTENSION archives into a fresh
#     schema of its own and says which (review 2, F3).
#  7. DROP EXTENSION ... CASCADE on a table still protected leaves none of
#     protect()'s policies (row-level security stays on), so protect()
#     works after CREATE EXTENSION again (review 2, F5).
#  8. Re-creation: a schema consent_ledger pre-created by an untrusted role
#     (here one with CREATE on the database) makes CREATE EXTENSION refuse
#     (42501) (review 2, F1).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $db = 'postgres';
my $node = PostgreSQL::Test::Cluster->new('recreate');
$node->init;
$node->append_conf('postgresql.conf', "consent_ledger.seal_timeout = '20s'");
$node->start;
$node->safe_psql($db, 'CREATE ROLE analyst LOGIN');

# 1. nothing recorded: no schema left
$node->safe_psql($db, 'CREATE EXTENSION consent_ledger');
$node->safe_psql($db, 'DROP EXTENSION consent_ledger');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'consent_ledger%'}), '0',
	'DROP EXTENSION with nothing recorded leaves no schema behind');

# 2. with data
$node->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
});
# five events in the first incarnation: the old highest id is 5
$node->safe_psql($db, "SELECT consent_ledger.grant_consent('old$_', 'research')") for 1 .. 4;
$node->safe_psql($db, q{
	SELECT consent_ledger.grant_consent('s1', 'research');
	CREATE TABLE people (id integer PRIMARY KEY, subject text NOT NULL);
	INSERT INTO people VALUES (1, 's1'), (2, 's2'), (3, 's3');
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO analyst;
	CREATE TABLE l (id integer, v text);
	SELECT consent_ledger.create_ledger('l');
	INSERT INTO l VALUES (1, 'a');
	SELECT consent_ledger.seal();
});
is($node->safe_psql($db, q{SET consent_ledger.purpose = 'research'; SELECT string_agg(subject, ',') FROM people},
		extra_params => [ '-U', 'analyst' ]), 's1', 'first incarnation: the analyst reads the consented row');

# a session that lives across the re-creation, with the old cache loaded
my $old = $node->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'analyst' ]);
is($old->query_safe(q{SET consent_ledger.purpose = 'research'; SELECT string_agg(subject, ',') FROM people}),
	's1', 'the long-lived session reads with the first registry');

# a role that does not own the extension: PostgreSQL's ownership error,
# checked before anything of the extension's drop runs (review 3, item 4:
# before, it was told which ledger is live, and the drop of the internal
# ledgers ran as the owner until PostgreSQL's own check rolled it back)
my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\nDROP EXTENSION consent_ledger CASCADE",
	extra_params => [ '-U', 'analyst' ]);
isnt($ret, 0, 'DROP EXTENSION by a role that does not own it fails');
like($err, qr/ERROR:  42501: must be owner of extension consent_ledger/, '... with PostgreSQL\'s ownership error');
unlike($err, qr/ledger table|consent_ledger_dropped/, '... naming no ledger table and no archive');

($ret, $out, $err) = $node->psql($db, 'DROP EXTENSION consent_ledger CASCADE');
like($err, qr/ledger table "l" is live/, 'DROP EXTENSION refused while a user ledger is live');
$node->safe_psql($db, q{
	SELECT consent_ledger.retire_ledger('l');
	SELECT consent_ledger.unprotect('people');
});
($ret, $out, $err) = $node->psql($db, 'DROP EXTENSION consent_ledger CASCADE');
isnt($ret, 0, 'DROP EXTENSION refused while the consent ledger is live and holds events');
like($err, qr/ledger table "consent_ledger.consent_events" is live/, '... naming the consent ledger');
like($err, qr/HINT:  Export it first .*retire_ledger\('consent_ledger.consent_events'\).*consent_ledger_dropped_\d+/,
	'... with a hint: export, retire, and where its rows will be kept');
is($node->safe_psql($db, q{SELECT count(*) FROM consent_ledger.consent_events}), '5', '... and nothing changed');

my $extoid = $node->safe_psql($db, q{SELECT oid FROM pg_extension WHERE extname = 'consent_ledger'});
$node->safe_psql($db, q{
	BEGIN;
	SELECT consent_ledger.retire_ledger('consent_ledger.consent_events');
	SELECT consent_ledger.retire_ledger('consent_ledger.audit_log');
	DROP EXTENSION consent_ledger CASCADE;
	COMMIT;
});
is($node->safe_psql($db, q{SELECT count(*) FROM pg_namespace WHERE nspname = 'consent_ledger'}), '0',
	'with data: the schema consent_ledger is gone');
is($node->safe_psql($db, qq{SELECT count(*) FROM consent_ledger_dropped_$extoid.consent_events}), '5',
	"the consent events are kept in consent_ledger_dropped_$extoid.consent_events");
is($node->safe_psql($db, qq{SELECT count(*) > 0 FROM consent_ledger_dropped_$extoid.audit_log}), 't',
	'... and the audit records in its audit_log');
is($node->safe_psql($db, qq{SELECT count(*) FROM pg_trigger WHERE tgrelid IN
	('consent_ledger_dropped_$extoid.consent_events'::regclass, 'consent_ledger_dropped_$extoid.audit_log'::regclass)}),
	'0', '... as plain tables (no triggers)');

# 3. CREATE EXTENSION again
$node->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
});
is($node->safe_psql($db, q{SELECT consent_ledger.grant_consent('s2', 'research')}), '1',
	're-created: grant_consent works and the new consent ledger starts at event id 1');
$node->safe_psql($db, q{SELECT consent_ledger.protect('people', 'subject')});
is($node->safe_psql($db, q{SET consent_ledger.purpose = 'research'; SELECT string_agg(subject, ',') FROM people},
		extra_params => [ '-U', 'analyst' ]), 's2',
	'a new session reads exactly the rows the new registry allows (the protected read is audited in time)');

# 4. the session that lived across the re-creation sees the new registry
is($old->query_safe(q{SELECT string_agg(subject, ',') FROM people}), 's2',
	'the long-lived session sees the new registry (event id 1 below the old highest, 5)');
is($node->safe_psql($db, q{SELECT consent_ledger.grant_consent('s3', 'research')}), '2', 'another grant: event id 2');
is($old->query_safe(q{SELECT string_agg(subject, ',' ORDER BY subject) FROM people}), 's2,s3',
	'... which the long-lived session sees at its next statement');
$old->quit;

my $workers = q{SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
	WHERE backend_type IN ('consent_ledger sealer', 'consent_ledger audit writer') AND datname = current_database()};
my $before = $node->safe_psql($db, $workers);
$node->safe_psql($db, q{
	CREATE TABLE l2 (id integer, v text);
	SELECT consent_ledger.create_ledger('l2');
	INSERT INTO l2 VALUES (1, 'x'), (2, 'y');
	SELECT consent_ledger.seal();
	SELECT consent_ledger.seal();
});
is($node->safe_psql($db, q{SELECT string_agg(relation::text || ':' || "rows" || ':' || valid, ' ' ORDER BY relation::text)
	FROM consent_ledger.verify()}),
	'consent_ledger.audit_log:' . $node->safe_psql($db, 'SELECT count(*) FROM consent_ledger.audit_log') . ':true '
	  . 'consent_ledger.consent_events:2:true l2:2:true',
	'verify(): the new consent ledger, the new audit ledger and a new ledger are valid');
is($node->safe_psql($db, q{SELECT count(*) > 0 FROM consent_ledger.audit_log WHERE relation = 'public.people' AND kind = 'read'}),
	't', 'the protected reads are in the new audit ledger');
my @b = split /,/, $before;
is(scalar(@b), 2, 'the sealer and the audit writer run');
is($node->safe_psql($db, $workers), $before, '... and kept running (no restarts) through two rounds');

# 5. leftovers of a 1.1 drop
$node->safe_psql($db, q{
	SELECT consent_ledger.retire_ledger('l2');
	SELECT consent_ledger.unprotect('people');
	SELECT consent_ledger.retire_ledger('consent_ledger.consent_events');
	SELECT consent_ledger.retire_ledger('consent_ledger.audit_log');
	DROP EXTENSION consent_ledger CASCADE;
	CREATE SCHEMA consent_ledger;
	CREATE TABLE consent_ledger.consent_events (event_id bigint PRIMARY KEY, subject text NOT NULL,
		purpose text NOT NULL, action text NOT NULL, expires_at timestamptz, evidence jsonb,
		recorded_at timestamptz NOT NULL, recorded_by text NOT NULL, ledger_txn bigint, ledger_ord integer);
	CREATE INDEX consent_events_subject_idx ON consent_ledger.consent_events (subject, purpose, event_id);
	INSERT INTO consent_ledger.consent_events VALUES (9, 'x', 'research', 'grant', NULL, NULL, now(), 'x', 1, 0);
	CREATE VIEW consent_ledger.consent_state AS SELECT * FROM consent_ledger.consent_events;
	CREATE TABLE consent_ledger.audit_log (record_id bigint NOT NULL, ledger_txn bigint, ledger_ord integer);
});
($ret, $out, $err) = $node->psql($db, 'CREATE EXTENSION consent_ledger');
is($ret, 0, 'CREATE EXTENSION over the leftovers of a 1.1 drop works');
like($err, qr/WARNING:  consent_ledger: table consent_ledger.consent_events, left by an earlier DROP EXTENSION, renamed to consent_ledger.consent_events_dropped_before_1_2/,
	'... and says it renamed the old consent ledger');
$node->safe_psql($db, q{SELECT consent_ledger.define_purpose('research')});
is($node->safe_psql($db, q{SELECT consent_ledger.grant_consent('s1', 'research')}), '1',
	'grant_consent writes into a new consent ledger');
is($node->safe_psql($db, q{SELECT count(*) FROM consent_ledger.consent_events_dropped_before_1_2}), '1',
	'the old rows are kept, renamed');
$node->safe_psql($db, q{SELECT consent_ledger.seal()});
is(cl_verify_row($node, $db, 'consent_ledger.consent_events')->{valid}, 1, 'the new consent ledger verifies');

# 6. a planted archive schema
$node->safe_psql($db, q{
	CREATE ROLE mallory LOGIN;
	GRANT CREATE ON DATABASE postgres TO mallory;
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
	SELECT consent_ledger.protect('people', 'subject');
});
is($node->safe_psql($db, q{SET consent_ledger.purpose = 'research'; SELECT string_agg(subject, ',') FROM people},
		extra_params => [ '-U', 'analyst' ]), 's1', 'protected again: a read (audited)');
ok(cl_wait_for($node, $db, q{SELECT count(*) > 0 FROM consent_ledger.audit_log}, 60), '... the audit ledger holds records');
$extoid = $node->safe_psql($db, q{SELECT oid FROM pg_extension WHERE extname = 'consent_ledger'});
$node->safe_psql($db, qq{CREATE SCHEMA consent_ledger_dropped_$extoid; GRANT USAGE ON SCHEMA consent_ledger_dropped_$extoid TO PUBLIC},
	extra_params => [ '-U', 'mallory' ]);
($ret, $out, $err) = $node->psql($db, q{
	BEGIN;
	SELECT consent_ledger.retire_ledger('consent_ledger.consent_events');
	SELECT consent_ledger.retire_ledger('consent_ledger.audit_log');
	DROP EXTENSION consent_ledger CASCADE;
	COMMIT;
});
is($ret, 0, 'DROP EXTENSION with a planted archive schema works');
like($err, qr/NOTICE:  consent_ledger: retired consent and audit ledgers are kept in schema consent_ledger_dropped_${extoid}_2\n/,
	'... and says where the retired ledgers are kept (a fresh name)');
like($err, qr/DETAIL:  A schema named consent_ledger_dropped_$extoid already existed; it was not created by the extension and is not used\./,
	'... and why');
is($node->safe_psql($db, qq{SELECT string_agg(c.relname, ',' ORDER BY c.relname) || ' ' || n.nspowner::regrole
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'consent_ledger_dropped_${extoid}_2' AND c.relkind = 'r' GROUP BY n.nspowner}),
	'audit_log,consent_events postgres', 'the archive schema is the extension owner\'s and holds both ledgers');
is($node->safe_psql($db, qq{SELECT count(*) FROM pg_class WHERE relnamespace = 'consent_ledger_dropped_$extoid'::regnamespace}),
	'0', "nothing was moved into the planted schema consent_ledger_dropped_$extoid");

# 7. protect()'s policies are gone with the extension, row-level security stays
is($node->safe_psql($db, q{SELECT count(*) FROM pg_policy WHERE polrelid = 'people'::regclass}), '0',
	'DROP EXTENSION CASCADE left no policy of protect() on a protected table');
is($node->safe_psql($db, q{SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'people'::regclass}), 't',
	'... and row-level security stays enabled and forced (hidden rows stay hidden)');

# 8. re-creation over a schema an untrusted role made (the schema that
# held the leftovers of section 5 is dropped first)
is($node->safe_psql($db, q{SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class
	WHERE relnamespace = 'consent_ledger'::regnamespace AND relkind = 'r'}),
	'audit_log_dropped_before_1_2,consent_events_dropped_before_1_2',
	'schema consent_ledger still holds the renamed leftovers of a 1.1 drop');
$node->safe_psql($db, q{DROP SCHEMA consent_ledger CASCADE});
$node->safe_psql($db, q{CREATE SCHEMA consent_ledger}, extra_params => [ '-U', 'mallory' ]);
($ret, $out, $err) = $node->psql($db, q{\set VERBOSITY verbose
	CREATE EXTENSION consent_ledger});
isnt($ret, 0, 'CREATE EXTENSION refuses a schema consent_ledger owned by an untrusted role');
like($err, qr/ERROR:  42501: cannot install consent_ledger into existing schema "consent_ledger" owned by role "mallory"/,
	'... with 42501 naming the owner');
like($err, qr/HINT:  Drop the schema \(DROP SCHEMA consent_ledger\) or give it to the installing role \(ALTER SCHEMA consent_ledger OWNER TO postgres\)/,
	'... and a hint');
$node->safe_psql($db, q{DROP SCHEMA consent_ledger; CREATE EXTENSION consent_ledger});
($ret, $out, $err) = $node->psql($db, q{SELECT consent_ledger.protect('people', 'subject')});
is($ret, 0, 'protect() works again on the table protected when the extension was dropped') or diag($err);
$node->safe_psql($db, q{SELECT consent_ledger.define_purpose('research'); SELECT consent_ledger.authorize_purpose('analyst', 'research');});
is($node->safe_psql($db, q{SET consent_ledger.purpose = 'research'; SELECT count(*) FROM people},
		extra_params => [ '-U', 'analyst' ]), '0',
	'... and it hides the rows of subjects without consent in the new registry');

# 9. the internal ledgers' rows are counted as the extension's owner with
# row_security off (review 3, item 4): an owner that is no longer a
# superuser, under a forced row-level security that hides every row from
# it, made DROP EXTENSION drop a live consent ledger holding an event.
$node->safe_psql($db, q{CREATE ROLE extowner SUPERUSER LOGIN; CREATE DATABASE rlsdb OWNER extowner});
$node->safe_psql('rlsdb', q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research');
	SELECT consent_ledger.grant_consent('x', 'research');
}, extra_params => [ '-U', 'extowner' ]);
$node->safe_psql('rlsdb', q{
	ALTER TABLE consent_ledger.consent_events ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
	ALTER ROLE extowner NOSUPERUSER;
});
is($node->safe_psql('rlsdb', q{SELECT count(*) FROM consent_ledger.consent_events}, extra_params => [ '-U', 'extowner' ]),
	'0', 'forced row-level security hides the consent event from the extension owner');
($ret, $out, $err) = $node->psql('rlsdb', 'DROP EXTENSION consent_ledger CASCADE', extra_params => [ '-U', 'extowner' ]);
isnt($ret, 0, 'DROP EXTENSION by that owner fails instead of dropping the hidden row');
like($err, qr/row-level security/, '... because row-level security would hide rows') or diag $err;
is($node->safe_psql('rlsdb', q{SELECT count(*) FROM consent_ledger.consent_events}), '1',
	'... and the consent ledger keeps its event');

$node->stop;
done_testing();
