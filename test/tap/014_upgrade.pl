# The upgrade path, with real data: install 1.0 from the released script,
# record ledger rows, consent and audit, take receipts and an export, then
# ALTER EXTENSION ... UPDATE step by step to the current version.  Old
# rows, old receipts and old exports must still verify (in SQL and with
# the offline verifier), and everything must go on working afterwards,
# also across a restart.
#
# The released install and upgrade scripts are the ones in the tree: they
# never change once shipped, which this test checks against the SHA-256 of
# the files at the release tags (v1.0, v1.1, v1.2, v1.3, v1.4).

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(sha256_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConsentLedgerTap;

my $tmp = abs_path(PostgreSQL::Test::Utils::tempdir);
my $srcdir = abs_path('.');

# git show v1.0:consent_ledger--1.0.sql | sha256sum, and so on
my %released = (
	'consent_ledger--1.0.sql' =>
	  'fc61289933713beac7ab7728139ec913df22dfddc136c95debbc466fbc6dfb61',
	'consent_ledger--1.0--1.1.sql' =>
	  'f8f96d22e259afe3530abba4a296850a180d8c36afced0326db293ca94aaa706',
	'consent_ledger--1.1--1.2.sql' =>
	  'ea30d98c32b14912d540e3a0855480390a54edb4032851db4ff1a03192293af2',
	'consent_ledger--1.2--1.3.sql' =>
	  '3ce39fb7f6ad1b6f366dedd34639ff38c8022b47d9aaaf47c5711c3093350437',
	'consent_ledger--1.3--1.4.sql' =>
	  'b5d53222f2d39934597a511dd4eef28df6d8e743f46d7f74a54e160336d314a1',
	'consent_ledger--1.4--1.5.sql' =>
	  '2aa1702969387ea60e6c0a0089cd99aa709eb95985f1231de592400494f6614d',);
foreach my $f (sort keys %released)
{
	is(sha256_hex(slurp_file("$srcdir/$f")), $released{$f},
		"$f is byte for byte the released script");
}
my $current = slurp_file("$srcdir/consent_ledger.control");
($current) = $current =~ /^default_version = '([^']+)'/m;
ok(defined $current, "default_version is $current");

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;
my $db = 'postgres';

sub q1 { return $node->safe_psql($db, $_[0]); }

###########################################################################
# 1.0 with data
###########################################################################

q1(q{CREATE EXTENSION consent_ledger VERSION '1.0'});
is(q1(q{SELECT extversion FROM pg_extension WHERE extname = 'consent_ledger'}),
	'1.0', 'installed at 1.0');
q1(q{
	CREATE ROLE u_loader LOGIN;
	CREATE ROLE u_reader LOGIN;
	CREATE TYPE u_addr AS (street varchar(40), zip integer);
	CREATE TABLE payments (id integer, payer varchar(20), note text, amount numeric,
		at timestamptz, tags text[], addr u_addr, code char(4));
	INSERT INTO payments (id, payer, note) VALUES (0, 'adopted', 'before create_ledger');
	SELECT consent_ledger.create_ledger('payments');
	INSERT INTO payments VALUES (1, 'ann', E'caf\u00e9', 12.50, '2024-02-29 12:34:56+00',
		'{a,b}', ROW('Main St', 12345), 'ab');
	INSERT INTO payments (id, payer, note, amount)
		SELECT g, 'p' || g, 'batch', g * 1.5 FROM generate_series(2, 40) g;
	SELECT consent_ledger.define_purpose('u_analytics', 'analytics');
	SELECT count(consent_ledger.grant_consent(s, 'u_analytics')) FROM generate_series(1, 5) s;
	SELECT consent_ledger.withdraw_consent(3, 'u_analytics');
	SELECT consent_ledger.authorize_purpose('u_reader', 'u_analytics');
	CREATE TABLE facts (id serial PRIMARY KEY, subject bigint, v int);
	ALTER TABLE facts OWNER TO u_loader;
	GRANT SELECT ON facts TO u_reader;
});
$node->safe_psql($db, q{INSERT INTO facts (subject, v) SELECT g % 6, g FROM generate_series(1, 30) g},
	extra_params => [ '-U', 'u_loader' ]);
q1(q{SELECT consent_ledger.protect('facts', 'subject')});
q1(q{SELECT consent_ledger.audit('facts')});
my $reads_1_0 = $node->safe_psql($db,
	q{SET consent_ledger.purpose = 'u_analytics'; SELECT count(*) FROM facts},
	extra_params => [ '-U', 'u_reader' ]);
is($reads_1_0, '20', 'under 1.0: the reader sees the rows of consenting subjects 1, 2, 4, 5');
q1(q{SELECT consent_ledger.seal()});

my @ledgers = split /\n/, q1(q{SELECT relid::regclass::text FROM consent_ledger.ledgers ORDER BY ledger_id});
cmp_ok(scalar(@ledgers), '>=', 3, "ledgers under 1.0: @ledgers");

# receipts and exports of every ledger, taken under 1.0
my (%receipt, %receipt_file, %export);
foreach my $l (@ledgers)
{
	my $v = cl_verify_row($node, $db, $l);
	ok($v->{valid} && $v->{pending} == 0, "1.0: $l verifies, nothing pending")
	  or diag $v->{problem};
	$receipt{$l} = q1(qq{SELECT consent_ledger.checkpoint('$l')});
	(my $name = $l) =~ s/\W/_/g;
	$receipt_file{$l} = cl_write_file("$tmp/$name.receipt.json", $receipt{$l});
	$export{$l} = cl_export_to_file($node, $db, $l, "$tmp/$name.1_0.export");
}
my $pk = q1(q{SELECT consent_ledger.public_key()});
my $audit_rows_1_0 = q1(q{SELECT count(*) FROM consent_ledger.audit_log});
cmp_ok($audit_rows_1_0, '>', 0, 'under 1.0: the reads and loads are in the audit ledger');

# everything a version must satisfy with the data recorded so far
sub check_all
{
	my ($label) = @_;
	foreach my $l (@ledgers)
	{
		my $v = cl_verify_row($node, $db, $l);
		ok($v->{valid}, "$label: verify('$l') valid") or diag $v->{problem};
		is(q1(qq{SELECT consent_ledger.verify_checkpoint('$receipt{$l}')}), 't',
			"$label: the 1.0 receipt of $l verifies");
		my ($rc) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint',
			$receipt_file{$l}, $export{$l});
		is($rc, 0, "$label: the offline verifier accepts the 1.0 export of $l with its receipt");
		(my $name = $l) =~ s/\W/_/g;
		my $now = cl_export_to_file($node, $db, $l, "$tmp/$name.now.export");
		($rc) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint',
			$receipt_file{$l}, $now);
		is($rc, 0, "$label: the offline verifier accepts today's export of $l against the 1.0 receipt");
	}
	is(q1(q{SELECT count(*) FROM consent_ledger.verify() WHERE NOT valid}), '0',
		"$label: verify() of every ledger is valid");
	is($node->safe_psql($db,
			q{SET consent_ledger.purpose = 'u_analytics'; SELECT count(*) FROM facts},
			extra_params => [ '-U', 'u_reader' ]),
		q1(q{SELECT count(*) FROM facts WHERE consent_ledger.has_consent(subject, 'u_analytics')}),
		"$label: the reader still sees exactly the consenting subjects' rows");
	my ($rc, $out, $err) = $node->psql($db, q{SELECT count(*) FROM facts},
		extra_params => [ '-U', 'u_reader' ]);
	like($err, qr/no purpose declared for reading a consent-protected table/,
		"$label: without a purpose the reader is refused");
	return;
}

###########################################################################
# 1.0 -> 1.1 -> 1.2 -> current, checking at each step
###########################################################################

my @steps = ('1.1', '1.2');
push @steps, $current if $current ne '1.2';
my $id = 100;
foreach my $to (@steps)
{
	# 1.3 converts the internal tables' counts to bigint: give it unsealed
	# records to convert (the sealer leaves the database alone while a
	# superuser's session named pg_restore is connected)
	my $hold;
	my $pending_before;
	if ($to eq '1.3')
	{
		$hold = $node->background_psql($db);
		$hold->query_safe(q{SET application_name = 'pg_restore'});
		q1(q{INSERT INTO payments (id, payer, note) SELECT g, 'held ' || g, 'pending at the update'
			   FROM generate_series(100000, 102999) g});
		$pending_before = q1(q{SELECT coalesce(sum(nleaves), 0) FROM consent_ledger.pending});
		cmp_ok($pending_before, '>=', 3000, "before 1.3: $pending_before leaves pending");
	}
	q1(qq{ALTER EXTENSION consent_ledger UPDATE TO '$to'});
	is(q1(q{SELECT extversion FROM pg_extension WHERE extname = 'consent_ledger'}),
		$to, "updated to $to");
	if ($to eq '1.3')
	{
		is(q1(q{SELECT string_agg(a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
				   ORDER BY a.attrelid::regclass::text, a.attname)
				  FROM pg_attribute a
				 WHERE a.attrelid IN ('consent_ledger.log'::regclass, 'consent_ledger.pending'::regclass)
				   AND a.attname IN ('first_ord', 'nleaves', 'first_ords', 'counts', 'leaves_offset')}),
			'consent_ledger.log.counts bigint[], consent_ledger.log.first_ords bigint[], consent_ledger.log.nleaves bigint, '
			  . 'consent_ledger.pending.first_ord bigint, consent_ledger.pending.leaves_offset bigint, consent_ledger.pending.nleaves bigint',
			'1.3: the internal counts are bigint');
		is(q1(q{SELECT coalesce(sum(nleaves), 0) FROM consent_ledger.pending}), $pending_before,
			'1.3: the pending records were converted, none lost');
		$hold->quit;
		q1(q{SELECT consent_ledger.seal()});
		is(q1(q{SELECT count(*) FROM consent_ledger.pending}), '0', '1.3: the converted records seal');
		is(q1(q{SELECT count(*) FROM payments WHERE note = 'pending at the update'}), '3000',
			'1.3: the rows pending at the update are there');
	}
	check_all("after update to $to");

	# new rows, consent and reads after the update
	q1(qq{INSERT INTO payments (id, payer, note) VALUES ($id, 'after $to', 'new')});
	q1(qq{SELECT consent_ledger.grant_consent(3, 'u_analytics')}) if $to eq $current;
	$node->safe_psql($db, q{INSERT INTO facts (subject, v) VALUES (1, 1000)},
		extra_params => [ '-U', 'u_loader' ]);
	q1(q{SELECT consent_ledger.seal()});
	$id++;
}
my $audit_rows_now = q1(q{SELECT count(*) FROM consent_ledger.audit_log});
cmp_ok($audit_rows_now, '>', $audit_rows_1_0, 'the audit ledger goes on recording after the updates');
is(q1(q{SELECT consent_ledger.has_consent(3, 'u_analytics')}), 't',
	'a grant recorded after the update counts');

# a ledger created after the update works as well
q1(q{CREATE TABLE fresh (id int, v text); SELECT consent_ledger.create_ledger('fresh');
	INSERT INTO fresh SELECT g, 'v' || g FROM generate_series(1, 10) g;});
q1(q{SELECT consent_ledger.seal()});
my $fv = cl_verify_row($node, $db, 'fresh');
ok($fv->{valid} && $fv->{rows} == 10 && $fv->{pending} == 0, 'a ledger created after the update verifies')
  or diag $fv->{problem};
is(q1(q{SELECT string_agg(relid::regclass::text || '=' || encoding, ',' ORDER BY ledger_id)
		FROM consent_ledger.ledgers}),
	join(',', (map { "$_=1" } @ledgers), 'fresh=2'),
	'ledgers made under 1.0 keep encoding version 1; the new one gets version 2');

# the old receipts are extended by new ones (no fork), also offline
foreach my $l (@ledgers)
{
	(my $name = $l) =~ s/\W/_/g;
	my $now = cl_export_to_file($node, $db, $l, "$tmp/$name.final.export");
	my ($rc, $out) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint',
		$receipt_file{$l}, $now);
	is($rc, 0, "final export of $l verifies offline against its 1.0 receipt");
}

# and after a restart
$node->restart;
check_all('after restart');
is(q1(q{SELECT count(*) FROM consent_ledger.verify('payments')}), '1', 'payments still a ledger');
my ($rc, $o, $e) = $node->psql($db, q{UPDATE payments SET note = 'x' WHERE id = 1});
like($e, qr/cannot update ledger table "payments"/, 'payments still append-only after the updates');

# README "Erasure": the audit ledger made under 1.0 has its row keys in
# its leaves, so erase_subject() cannot redact them.  rotate_audit_ledger()
# (1.4) retires and renames it and starts a new audit ledger whose row
# keys and row hashes are personal; the old one is exported, then dropped,
# while its log and checkpoints stay and its receipts still verify.
my $audit_l = 'consent_ledger.audit_log';
is(q1(q{SELECT encoding FROM consent_ledger.ledgers WHERE relid = 'consent_ledger.audit_log'::regclass}), '1',
	'rotation: the audit ledger made under 1.0 has encoding version 1');
my $old_audit_id = q1(q{SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = 'consent_ledger.audit_log'::regclass});
my $rotated_table = q1(q{SELECT consent_ledger.rotate_audit_ledger()});
is($rotated_table, "consent_ledger.audit_log_ledger_$old_audit_id",
	'rotation: the old audit ledger is retired under its new name');
is(q1(q{SELECT encoding || ' ' || personal::text || ' ' || subject FROM consent_ledger.ledgers
		WHERE relid = 'consent_ledger.audit_log'::regclass}),
	'3 {row_key,old_row_hash,new_row_hash,old_subject,new_subject} row_key',
	'rotation: a new audit ledger with personal columns, made by the rotation');
q1(q{SELECT consent_ledger.seal()});
my $rotated = cl_export_to_file($node, $db, $rotated_table, "$tmp/audit_rotated.export");
($rc) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file{$audit_l}, $rotated);
is($rc, 0, 'rotation: the export of the retired audit ledger verifies offline against its 1.0 receipt');
is(q1(qq{SELECT pending || ' ' || valid FROM consent_ledger.verify('$rotated_table')}), '0 true',
	'rotation: the retired audit ledger is valid with nothing pending (its export holds every record)');
q1(qq{DROP TABLE $rotated_table});
$node->safe_psql($db, q{INSERT INTO facts (subject, v) VALUES (99, 1), (98, 2)},
	extra_params => [ '-U', 'u_loader' ]);
q1(q{SELECT consent_ledger.seal()});
is(q1(q{SELECT count(*) FROM consent_ledger.audit_log WHERE relation = 'public.facts' AND operation = 'INSERT'}),
	'2', 'rotation: the new audit ledger holds the new records');
is(q1(qq{SELECT consent_ledger.verify_checkpoint('$receipt{$audit_l}')}), 't',
	'rotation: the 1.0 receipt of the retired and dropped audit ledger still verifies');
is(q1(q{SELECT count(*) FROM consent_ledger.verify() WHERE NOT valid}), '0',
	'rotation: every ledger valid, the dropped one included');
is(q1(q{SELECT string_agg(relation::text || ':' || rows, ',' ORDER BY relation::text)
		FROM consent_ledger.erase_subject('99', 'TAP 014 rotation')}),
	'consent_ledger.audit_log:1', 'rotation: erase_subject() reaches the new audit ledger');
is(q1(q{SELECT string_agg(coalesce(row_key, '-') || ' ' || (new_row_hash IS NOT NULL)::text, ',' ORDER BY row_key NULLS FIRST)
		FROM consent_ledger.audit_log WHERE relation = 'public.facts' AND operation = 'INSERT'}),
	'- false,(id)=(' . q1(q{SELECT id FROM facts WHERE subject = 98}) . ') true',
	'rotation: the subject\'s record lost its row key and row hash, the other kept them');
# 1.5: the new audit ledger's records name the subjects of the rows of the
# table protected under 1.0, so a subject's records are found also where
# its key cannot tell (a row moved from one subject to another: the key
# (id)=(n) has versions of both, and is left out of the search by key)
is(q1(q{SELECT string_agg(coalesce(old_subject, '-') || '>' || coalesce(new_subject, '-'), ',' ORDER BY record_id)
		FROM consent_ledger.audit_log WHERE relation = 'public.facts' AND operation = 'INSERT'}),
	'->-,->98', 'rotation: the new audit ledger names the audited rows\' subjects (the erased one\'s gone)');
q1(q{INSERT INTO facts (subject, v) VALUES (97, 3); UPDATE facts SET subject = 96 WHERE subject = 97});
is(q1(q{SELECT string_agg(relation::text || ':' || rows, ',' ORDER BY relation::text)
		FROM consent_ledger.erase_subject('97', 'TAP 014 moved row')}),
	'consent_ledger.audit_log:2', 'rotation: erase_subject() finds the records of a row moved away by its subjects');
is(q1(q{SELECT string_agg(operation || ' ' || coalesce(old_subject, '-') || '>' || coalesce(new_subject, '-')
		|| ' ' || consent_ledger.erased(ledger_salt)::text, ',' ORDER BY record_id)
		FROM consent_ledger.audit_log WHERE relation = 'public.facts' AND operation IN ('INSERT', 'UPDATE')}),
	'INSERT ->- true,INSERT ->98 false,INSERT ->- true,UPDATE ->- true',
	'rotation: the moved row\'s insert and update records erased, the other subject\'s kept');

# 1.6 (README "Data subjects in control"): the consent ledger made under
# 1.0, with its events, got the three nullable columns of signed events
# from the update (not encoded when NULL: every leaf as it was, checked by
# the 1.0 receipt below); the four-argument define_purpose() calls of 1.0
# still work; a purpose that takes only signed grants refuses the
# operator's, and the state of the 1.0 events is unchanged.
is(q1(q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = 'consent_ledger.consent_events'::regclass
		  AND attname IN ('subject_statement', 'subject_signature', 'subject_key')}),
	'subject_statement,subject_signature,subject_key', '1.6: the 1.0 consent ledger has the columns of signed events');
is(q1(qq{SELECT consent_ledger.verify_checkpoint('$receipt{'consent_ledger.consent_events'}')}), 't',
	'1.6: the 1.0 receipt of the consent ledger verifies after the columns were added');
q1(q{SELECT consent_ledger.define_purpose('u_legacy_call', 'four arguments', 'consent', NULL)});
q1(q{SELECT consent_ledger.define_purpose('u_signed', require_subject_signature => true)});
($rc, $o, $e) = $node->psql($db, q{SELECT consent_ledger.grant_consent(3, 'u_signed')});
like($e, qr/ERROR:  purpose "u_signed" takes only grants signed by the subject/,
	'1.6: a purpose defined after the update takes only signed grants');
is(q1(q{SELECT consent_ledger.has_consent(3, 'u_analytics')::text || ' ' || consent_ledger.has_consent(3, 'u_signed')::text}),
	'true false', '1.6: has_consent() of the 1.0 events unchanged');

# README "Erasure": the consent ledger made under 1.0 has its events'
# evidence in its leaves.  migrate_consent_ledger() (1.4) moves its events
# into a new consent ledger whose evidence is personal: the same events
# under the same ids (so the same consent), the old ledger retired and
# dropped with its log and checkpoints kept.
my $consent_l = 'consent_ledger.consent_events';
q1(q{SELECT consent_ledger.grant_consent(7, 'u_analytics', evidence => '{"form": "tap-014-seven"}')});
q1(q{SELECT consent_ledger.seal()});
is(q1(q{SELECT encoding FROM consent_ledger.ledgers WHERE relid = 'consent_ledger.consent_events'::regclass}), '1',
	'migration: the consent ledger made under 1.0 has encoding version 1');
my $events_sql = q{SELECT string_agg(concat_ws('|', event_id, subject, purpose, action, expires_at, evidence,
	recorded_at, recorded_by), E'\n' ORDER BY event_id) FROM consent_ledger.consent_events};
my $state_sql = q{SELECT string_agg(concat_ws('|', subject, purpose, state, since, expires_at, last_event_id), ','
	ORDER BY subject, purpose) FROM consent_ledger.consent_state};
my $read_sql = q{SET consent_ledger.purpose = 'u_analytics'; SELECT count(*) FROM facts};
my ($events_before, $state_before) = (q1($events_sql), q1($state_sql));
# an auditor's view over consent_state goes on working (the migration
# replaces the view over the new table, it does not drop it)
q1(q{CREATE VIEW public.auditor_state AS SELECT * FROM consent_ledger.consent_state});
my $reads_before = $node->safe_psql($db, $read_sql, extra_params => [ '-U', 'u_reader' ]);
my $nevents = q1(q{SELECT count(*) FROM consent_ledger.consent_events});
my $consent_before = cl_export_to_file($node, $db, $consent_l, "$tmp/consent_before_migration.export");
q1(q{CREATE ROLE u_recorder LOGIN IN ROLE consent_ledger_recorder;
	GRANT EXECUTE ON FUNCTION consent_ledger.migrate_consent_ledger() TO u_recorder});
($rc, $o, $e) = $node->psql($db, q{SELECT consent_ledger.migrate_consent_ledger()},
	extra_params => [ '-U', 'u_recorder' ]);
like($e, qr/ERROR:  permission denied to migrate the consent ledger/,
	'migration: refused to a recorder, even with EXECUTE granted');
($rc, $o, $e) = $node->psql($db,
	q{BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT consent_ledger.migrate_consent_ledger(); COMMIT;});
like($e, qr/ERROR:  migrate_consent_ledger\(\) must run in a READ COMMITTED transaction/,
	'migration: refused under REPEATABLE READ (its snapshot would miss events committed while it waited)');
# a view over the consent ledger's table itself would block the drop of
# the old table at the end: refused at once, naming it
q1(q{CREATE VIEW public.auditor_events AS SELECT event_id, subject FROM consent_ledger.consent_events});
($rc, $o, $e) = $node->psql($db, q{SELECT consent_ledger.migrate_consent_ledger()});
like($e, qr/ERROR:  the consent ledger's table is used by other objects\nDETAIL:  .*view public\.auditor_events/,
	'migration: refused while a view over consent_events depends on it, naming the view');
q1(q{DROP VIEW public.auditor_events});
# Run from a restart (no consent state loaded yet) in a transaction that
# then reads protected data: that read sees the copied events as not yet
# committed and loads no consent; the migration's commit must make every
# session load them again (the reader below would see no row otherwise).
$node->restart;
is( q1(
		qq{BEGIN; SELECT consent_ledger.migrate_consent_ledger(); SET LOCAL ROLE u_reader;
		SET LOCAL consent_ledger.purpose = 'u_analytics'; SELECT count(*) FROM facts; COMMIT;}),
	"$nevents\n0",
	"migration: $nevents events moved; a read in its transaction sees none of them committed");
is(q1(q{SELECT encoding || ' ' || personal::text || ' ' || subject FROM consent_ledger.ledgers
		WHERE relid = 'consent_ledger.consent_events'::regclass}),
	'3 {evidence} subject', 'migration: the new consent ledger commits to its evidence as personal data');
is(q1($events_sql), $events_before, 'migration: every event as recorded, under the same id');
is(q1($state_sql), $state_before, 'migration: the consent state is the same');
(my $auditor_sql = $state_sql) =~ s/consent_ledger\.consent_state/public.auditor_state/;
is(q1($auditor_sql), $state_before, 'migration: a view over consent_state made before reads the new ledger');
is($node->safe_psql($db, $read_sql, extra_params => [ '-U', 'u_reader' ]), $reads_before,
	'migration: the reader sees the same rows');
is(q1(q{SELECT count(*) FROM pg_class WHERE relname LIKE 'consent_events%' AND relnamespace = 'consent_ledger'::regnamespace
		AND relkind = 'r'}), '1', 'migration: the old table is dropped');
q1(q{SELECT consent_ledger.seal()});
is(q1(qq{SELECT consent_ledger.verify_checkpoint('$receipt{$consent_l}')}), 't',
	'migration: the 1.0 receipt of the old consent ledger still verifies');
($rc) = cl_run_verifier('export', '--public-key', $pk, '--checkpoint', $receipt_file{$consent_l}, $consent_before);
is($rc, 0, 'migration: the old ledger\'s export taken before verifies offline against its 1.0 receipt');
is(q1(q{SELECT count(*) FROM consent_ledger.verify() WHERE NOT valid}), '0',
	'migration: every ledger valid, the old consent ledger included');
is(q1(q{SELECT consent_ledger.migrate_consent_ledger()}), '0', 'migration: a second call moves nothing');
q1(q{SELECT consent_ledger.withdraw_consent(2, 'u_analytics')});
is($node->safe_psql($db, $read_sql, extra_params => [ '-U', 'u_reader' ]),
	$reads_before - q1(q{SELECT count(*) FROM facts WHERE subject = 2}),
	'migration: a withdrawal recorded in the new ledger is in force');
like(q1(q{SELECT state FROM public.auditor_state WHERE subject = '2' AND purpose = 'u_analytics'}), qr/^withdrawn$/,
	'migration: ... and shows in the view over consent_state made before');
is(q1(q{SELECT string_agg(relation::text || ':' || rows, ',' ORDER BY relation::text)
		FROM consent_ledger.erase_subject('7', 'TAP 014 migration')}),
	'consent_ledger.consent_events:1', 'migration: erase_subject() erases the evidence the old ledger held in clear');
is(q1(q{SELECT count(*) FROM consent_ledger.consent_events WHERE evidence IS NOT NULL AND subject = '7'}), '0',
	'migration: the subject\'s evidence is gone');
q1(q{SELECT consent_ledger.seal()});
is(q1(q{SELECT count(*) FROM consent_ledger.verify() WHERE NOT valid}), '0',
	'migration: every ledger valid after the erasure');

$node->stop;
done_testing();
