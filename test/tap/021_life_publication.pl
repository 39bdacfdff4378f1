# Life cycle: logical replication (SPEC §9, README "Logical replication").
#
#  1. A publication FOR ALL TABLES includes the extension's tables.  Up to
#     1.1 the sealer's DELETE from consent_ledger.pending (no replica
#     identity) failed from then on, so nothing was sealed again, and the
#     first audit() failed on the new audit ledger's adoption UPDATE.  Now
#     sealing, consent recording, audit of changes and audited protected
#     reads keep working.
#  2. Protected tables stay out of publications: CREATE PUBLICATION ... FOR
#     TABLE / FOR TABLES IN SCHEMA / FOR ALL TABLES and ALTER PUBLICATION
#     ADD/SET and ALTER TABLE ... SET SCHEMA into a published schema are
#     refused (42501) when they would include one, and protect()
#     of a published table is refused (55000) -- unless a superuser sets
#     consent_ledger.allow_publish_protected (then a WARNING).
#  3. A subscriber of a ledger table, into a plain table, gets a copy: the
#     publisher's rows with the publisher's ledger_txn and ledger_ord
#     (apply inserts them as they are); the copy equals, row for row, the
#     ledger whose export the offline verifier accepts against the
#     publisher's checkpoint.  A subscriber table made a ledger on the
#     subscriber is restamped by its ENABLE ALWAYS trigger instead: its own
#     ledger, verified by the subscriber, not a copy.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->append_conf('postgresql.conf', "consent_ledger.seal_timeout = '20s'");
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->start;

# ---------------------------------------------------------------------
# 1. FOR ALL TABLES over the extension's tables
# ---------------------------------------------------------------------
my $db = 'alltables';
$pub->safe_psql('postgres', "CREATE DATABASE $db");
$pub->safe_psql('postgres', 'CREATE ROLE analyst LOGIN');
$pub->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	CREATE PUBLICATION everything FOR ALL TABLES;
	SELECT consent_ledger.define_purpose('research');
	SELECT consent_ledger.authorize_purpose('analyst', 'research');
});
is($pub->safe_psql($db, q{SELECT count(*) FROM pg_publication_tables WHERE pubname = 'everything'
	AND schemaname = 'consent_ledger' AND tablename = 'pending'}), '1',
	'the FOR ALL TABLES publication includes consent_ledger.pending');
is($pub->safe_psql($db, q{SELECT consent_ledger.grant_consent('s1', 'research')}), '1',
	'FOR ALL TABLES: grant_consent works');
$pub->safe_psql($db, q{
	CREATE TABLE l (id integer, v text);
	SELECT consent_ledger.create_ledger('l');
	INSERT INTO l VALUES (1, 'a'), (2, 'b');
});
my ($ret, $out, $err) = $pub->psql($db, 'SELECT consent_ledger.seal()');
is($ret, 0, 'FOR ALL TABLES: seal() works') or diag($err);
is($pub->safe_psql($db, 'SELECT count(*) FROM consent_ledger.pending'), '0', '... and empties pending');
($ret, $out, $err) = $pub->psql($db, q{
	CREATE TABLE audited (id integer PRIMARY KEY, note text);
	SELECT consent_ledger.audit('audited');
	INSERT INTO audited VALUES (1, 'x');
	UPDATE audited SET note = 'y';
});
is($ret, 0, 'FOR ALL TABLES: the first audit() and audited changes work') or diag($err);
# a protected table under FOR ALL TABLES needs the superuser's setting
($ret, $out, $err) = $pub->psql($db, q{
	CREATE TABLE people (id integer PRIMARY KEY, subject text NOT NULL);
	INSERT INTO people VALUES (1, 's1'), (2, 's2');
	SELECT consent_ledger.protect('people', 'subject');
});
isnt($ret, 0, 'FOR ALL TABLES exists: protect() is refused');
like($err, qr/ERROR:  cannot protect table "people": a publication FOR ALL TABLES exists/, '... saying why');
($ret, $out, $err) = $pub->psql($db, q{
	SET consent_ledger.allow_publish_protected = on;
	SELECT consent_ledger.protect('people', 'subject');
	GRANT SELECT ON people TO analyst;
});
is($ret, 0, 'a superuser with consent_ledger.allow_publish_protected protects it anyway');
like($err, qr/WARNING:  protecting published table "people"/, '... with a WARNING');
is($pub->safe_psql($db, q{SET consent_ledger.purpose = 'research'; SELECT string_agg(subject, ',') FROM people},
		extra_params => [ '-U', 'analyst' ]), 's1', 'FOR ALL TABLES: a protected read is answered (after its audit record)');
$pub->safe_psql($db, 'SELECT consent_ledger.seal()');
is($pub->safe_psql($db, q{SELECT string_agg(relation::text || ':' || valid, ' ' ORDER BY relation::text) FROM consent_ledger.verify()}),
	'consent_ledger.audit_log:true consent_ledger.consent_events:true l:true',
	'FOR ALL TABLES: every ledger, the consent and audit ledgers included, verifies');
is($pub->safe_psql($db, q{SELECT string_agg(kind || ':' || operation, ',' ORDER BY record_id) FROM consent_ledger.audit_log}),
	'change:INSERT,change:UPDATE,read:SELECT,read:SELECT', 'the audit ledger has the changes and the read');
# the other writes to the extension's tables: UPDATE ledgers, DELETE from
# purpose_grants and protected, the registry forgetting a dropped table
($ret, $out, $err) = $pub->psql($db, q{
	SELECT consent_ledger.withdraw_consent('s1', 'research');
	SELECT consent_ledger.revoke_purpose('analyst', 'research');
	SELECT consent_ledger.retire_ledger('l');
	SELECT consent_ledger.unprotect('people');
	CREATE TABLE gone (id integer PRIMARY KEY, subject text);
	SET consent_ledger.allow_publish_protected = on;
	SELECT consent_ledger.protect('gone', 'subject');
	DROP TABLE gone;
	SELECT consent_ledger.seal();
});
is($ret, 0, 'FOR ALL TABLES: withdraw, revoke_purpose, retire_ledger, unprotect, dropping a protected table work')
  or diag($err);

# ---------------------------------------------------------------------
# 2. protected tables stay out of publications
# ---------------------------------------------------------------------
$db = 'pubdb';
$pub->safe_psql('postgres', "CREATE DATABASE $db");
$pub->safe_psql($db, q{
	CREATE EXTENSION consent_ledger;
	SELECT consent_ledger.define_purpose('research');
	CREATE SCHEMA s;
	CREATE TABLE s.people (id integer PRIMARY KEY, subject text NOT NULL);
	SELECT consent_ledger.protect('s.people', 'subject');
	CREATE TABLE s.other (id integer PRIMARY KEY);
	CREATE TABLE l (id integer PRIMARY KEY, v text);
	SELECT consent_ledger.create_ledger('l');
	CREATE PUBLICATION lp FOR TABLE l;
	CREATE SCHEMA pubs;
	CREATE PUBLICATION ps FOR TABLES IN SCHEMA pubs;
});
foreach my $t (
	[ 'CREATE PUBLICATION p1 FOR TABLE l, s.people', 'FOR TABLE' ],
	[ 'CREATE PUBLICATION p2 FOR TABLES IN SCHEMA s', 'FOR TABLES IN SCHEMA' ],
	[ 'CREATE PUBLICATION p3 FOR ALL TABLES', 'FOR ALL TABLES' ],
	[ 'ALTER PUBLICATION lp ADD TABLE s.people', 'FOR TABLE' ],
	[ 'ALTER PUBLICATION lp SET TABLE l, s.people', 'FOR TABLE' ],
	[ 'ALTER PUBLICATION lp ADD TABLES IN SCHEMA s', 'FOR TABLES IN SCHEMA' ],
	[ 'SET search_path = s; CREATE PUBLICATION p4 FOR TABLES IN SCHEMA CURRENT_SCHEMA', 'FOR TABLES IN SCHEMA' ],
	[ 'ALTER TABLE s.people SET SCHEMA pubs', 'FOR TABLES IN SCHEMA' ])
{
	($ret, $out, $err) = $pub->psql($db, "\\set VERBOSITY verbose\n$t->[0]");
	isnt($ret, 0, "refused: $t->[0]");
	like($err, qr/ERROR:  42501: protected table "people" cannot be published \Q$t->[1]\E/, '... 42501, naming the table');
}
is($pub->safe_psql($db, q{SELECT string_agg(pubname || ':' || tablename, ',' ORDER BY pubname, tablename) FROM pg_publication_tables}),
	'lp:l', '... and no publication includes the protected table');
is($pub->safe_psql($db, 'ALTER PUBLICATION lp ADD TABLE s.other; ALTER PUBLICATION lp DROP TABLE s.other; SELECT 1'), '1',
	'adding and dropping an unprotected table still works');
($ret, $out, $err) = $pub->psql($db, q{CREATE TABLE pubd (id integer, subject text);
	ALTER PUBLICATION lp ADD TABLE pubd;
	SELECT consent_ledger.protect('pubd', 'subject')});
like($err, qr/ERROR:  cannot protect table "pubd": it is in a publication/, 'protect() of a published table is refused');
($ret, $out, $err) = $pub->psql($db, 'SET consent_ledger.allow_publish_protected = on',
	extra_params => [ '-U', 'analyst' ]);
like($err, qr/permission denied to set parameter "consent_ledger.allow_publish_protected"/,
	'consent_ledger.allow_publish_protected is for superusers only');
$pub->safe_psql($db, 'ALTER PUBLICATION lp DROP TABLE pubd');

# ---------------------------------------------------------------------
# 3. a subscriber of a ledger table
# ---------------------------------------------------------------------
$pub->safe_psql($db, q{
	INSERT INTO l VALUES (1, 'a'), (2, 'b');
	INSERT INTO l VALUES (3, 'c');
	SELECT consent_ledger.seal();
});
$sub->safe_psql('postgres', q{
	CREATE TABLE l (id integer PRIMARY KEY, v text, ledger_txn bigint, ledger_ord integer);
});
my $connstr = $pub->connstr . " dbname=$db";
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION copy CONNECTION '$connstr' PUBLICATION lp");
$sub->wait_for_subscription_sync($pub, 'copy');
$pub->safe_psql($db, q{
	INSERT INTO l VALUES (4, 'd');
	SELECT consent_ledger.seal();
});
$pub->wait_for_catchup('copy');

my $rows = q{SELECT string_agg(id || ',' || v || ',' || ledger_txn || ',' || ledger_ord, ' ' ORDER BY ledger_txn, ledger_ord) FROM l};
my $on_pub = $pub->safe_psql($db, $rows);
is($sub->safe_psql('postgres', $rows), $on_pub,
	'the subscriber has the rows with the publisher\'s ledger_txn and ledger_ord, initial copy and streamed alike');

# the copy is the content of the publisher's verified ledger
my $export = $pub->basedir . '/l.export';
my $receipt = $pub->basedir . '/l.checkpoint';
cl_write_file($export, $pub->safe_psql($db, q{SELECT string_agg(line, E'\n') || E'\n' FROM consent_ledger.export('l') AS line}));
cl_write_file($receipt, $pub->safe_psql($db, q{SELECT consent_ledger.checkpoint('l')}));
my $key = $pub->safe_psql($db, 'SELECT consent_ledger.public_key()');
my ($rc, $vout) = cl_run_verifier('export', '--public-key', $key, '--checkpoint', $receipt, $export);
is($rc, 0, 'the offline verifier accepts the publisher\'s export against its checkpoint');
my @leaves = grep { /^leaf / } split /\n/, slurp_file($export);
is(scalar(@leaves), $sub->safe_psql('postgres', 'SELECT count(*) FROM l'),
	'the export has one leaf per row of the subscriber\'s copy');
is(join(' ', map { s/^leaf //r } @leaves),
	$pub->safe_psql($db, q{SELECT string_agg(encode(consent_ledger.leaf_data('l', i), 'hex'), ' ' ORDER BY i)
		FROM generate_series(0, (SELECT count(*) - 1 FROM l)) AS i}),
	'... the canonical encodings of exactly the rows the copy equals');

# a subscriber table that is itself a ledger is restamped: its own ledger
$sub->safe_psql('postgres', q{
	CREATE DATABASE own;
});
$sub->safe_psql('own', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE l (id integer PRIMARY KEY, v text);
	SELECT consent_ledger.create_ledger('l');
});
$sub->safe_psql('own', "CREATE SUBSCRIPTION own CONNECTION '$connstr' PUBLICATION lp WITH (slot_name = 'own')");
$sub->wait_for_subscription_sync($pub, 'own');
$sub->safe_psql('own', 'SELECT consent_ledger.seal()');
is($sub->safe_psql('own', q{SELECT string_agg(id || ',' || v, ' ' ORDER BY id) FROM l}), '1,a 2,b 3,c 4,d',
	'a subscriber ledger receives the rows');
isnt($sub->safe_psql('own', $rows), $on_pub, '... restamped by its own ENABLE ALWAYS trigger (not the publisher\'s stamps)');
is(cl_verify_row($sub, 'own', 'l')->{valid}, 1, '... and verifies as the subscriber\'s own ledger');

$sub->stop;
$pub->stop;
done_testing();
