# The consent_ledger table access method (issue #13, README "Table access
# method"): a ledger made by create_ledger() from 1.3 on is stamped by its
# access method, a ledger made before by its BEFORE INSERT row trigger.
#
#  1. COPY into a ledger on the access method keeps PostgreSQL's multi-row
#     insert: its rows reach the WAL as heap MULTI_INSERT records and no
#     single INSERT record (pg_walinspect), where the same COPY into a
#     trigger-stamped ledger writes one INSERT record a row and no
#     MULTI_INSERT.
#  2. Both paths stamp identically: the same workload run into both
#     ledgers in the same transactions (INSERT with RETURNING, multi-row
#     INSERT, INSERT ... SELECT, COPY, a user BEFORE trigger changing the
#     row, stored generated columns, rolled-back savepoints, a prepared
#     transaction, a rolled-back transaction) gives the same rows, the
#     same stamps, the same RETURNING values and the same leaf hashes in
#     the log, byte for byte; INSERT ... ON CONFLICT is refused by both.
#  3. verify() passes on both; a row changed, a row inserted unstamped and
#     a row deleted behind the extension's back (its triggers switched off
#     by a catalog edit) are each found on the access-method ledger.
#  4. An index built on the ledger (CREATE INDEX, CONCURRENTLY, REINDEX,
#     CLUSTER, VACUUM FULL) works, and an index expression that writes
#     during the build is refused (the build shows heap's routine).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Spec;
use ConsentLedgerTap;

my $node = PostgreSQL::Test::Cluster->new('am_paths');
$node->init;
$node->start;
my $db = 'postgres';

# a ledger made by 1.2 (trigger) and one made by 1.3 (access method)
$node->safe_psql($db, q{
	CREATE EXTENSION consent_ledger VERSION '1.2';
	CREATE EXTENSION pg_walinspect;
	CREATE TABLE tr_t (id int, v text, n numeric, g int GENERATED ALWAYS AS (id * 3) STORED,
					   note text);
	SELECT consent_ledger.create_ledger('tr_t');
	ALTER EXTENSION consent_ledger UPDATE;
	CREATE TABLE am_t (id int, v text, n numeric, g int GENERATED ALWAYS AS (id * 3) STORED,
					   note text);
	SELECT consent_ledger.create_ledger('am_t');
});
is($node->safe_psql($db, q{
	SELECT string_agg(c.relname || ':' || a.amname, ',' ORDER BY c.relname)
	FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relname IN ('tr_t', 'am_t')}),
	'am_t:consent_ledger,tr_t:heap', 'the 1.3 ledger is on the access method, the 1.2 one on heap');
is($node->safe_psql($db, q{
	SELECT string_agg(c.relname || ':' || CASE WHEN t.tgtype & 1 = 1 THEN 'row' ELSE 'statement' END,
					  ',' ORDER BY c.relname)
	FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	WHERE t.tgname = '~consent_ledger_stamp' AND c.relname IN ('tr_t', 'am_t')}),
	'am_t:statement,tr_t:row', 'the stamp trigger: a statement trigger (marker) on the access-method ledger');

# ---------------------------------------------------------------------
# 1. COPY: multi-row insert on the access method, row by row with the trigger
# ---------------------------------------------------------------------
my $copyfile = File::Spec->rel2abs($node->basedir) . '/rows.tsv';
cl_write_file($copyfile, join('', map { "$_\tcopied $_\t$_.5\n" } 1000 .. 1999));
chmod(0644, $copyfile);

sub copy_wal
{
	my ($rel) = @_;
	my $start = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
	$node->safe_psql($db, qq{COPY $rel (id, v, n) FROM '$copyfile'});
	my $end = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
	return $node->safe_psql($db, qq{
		SELECT count(*) FILTER (WHERE record_type LIKE 'MULTI_INSERT%') || '/' ||
			   count(*) FILTER (WHERE resource_manager = 'Heap' AND record_type LIKE 'INSERT%')
		FROM pg_get_wal_records_info('$start', '$end')
		WHERE block_ref LIKE '%/' || pg_relation_filenode('$rel') || ' %'});
}
my ($am_multi, $am_single) = split m{/}, copy_wal('am_t');
my ($tr_multi, $tr_single) = split m{/}, copy_wal('tr_t');
note("WAL records of COPY of 1000 rows: access method $am_multi multi/$am_single single, trigger $tr_multi multi/$tr_single single");
ok($am_multi > 0, 'COPY into the access-method ledger writes heap MULTI_INSERT records');
is($am_single, '0', 'COPY into the access-method ledger writes no single-row INSERT record');
is($tr_multi, '0', 'COPY into the trigger-stamped ledger writes no MULTI_INSERT record');
is($tr_single, '1000', 'COPY into the trigger-stamped ledger writes one INSERT record a row');

# ---------------------------------------------------------------------
# 2. the same workload, in the same transactions, into both ledgers
# ---------------------------------------------------------------------
# a user BEFORE INSERT row trigger changing some rows (from here on, COPY
# into either ledger inserts row by row: PostgreSQL's rule for any table)
$node->safe_psql($db, q{
	CREATE FUNCTION fill_note() RETURNS trigger LANGUAGE plpgsql AS
	  $$BEGIN NEW.note := 'by trigger ' || NEW.id; RETURN NEW; END$$;
	CREATE TRIGGER a_note BEFORE INSERT ON tr_t FOR EACH ROW WHEN (NEW.id % 7 = 0)
	  EXECUTE FUNCTION fill_note();
	CREATE TRIGGER a_note BEFORE INSERT ON am_t FOR EACH ROW WHEN (NEW.id % 7 = 0)
	  EXECUTE FUNCTION fill_note();
});
sub both
{
	my ($sql) = @_;
	my $both = join("\n", map { my $s = $sql; $s =~ s/\bTBL\b/$_/g; $s } ('tr_t', 'am_t'));
	return $both;
}
my $r1 = $node->safe_psql($db, 'BEGIN;' . both(q{
	INSERT INTO TBL (id, v, n) VALUES (1, 'one', 1.5) RETURNING 'TBL', ledger_ord, g, note;
	INSERT INTO TBL (id, v, n) VALUES (2, 'two', NULL), (7, NULL, 7), (3, 'three', 3) RETURNING 'TBL', ledger_ord, g, note;
	INSERT INTO TBL (id, v, n, ledger_txn, ledger_ord) VALUES (4, 'forged', 4, -1, -1) RETURNING 'TBL', ledger_txn > 0, ledger_ord;
}) . 'COMMIT;');
my @lines = split /\n/, $r1;
my @tr = map { s/^tr_t//r } grep { /^tr_t/ } @lines;
my @am = map { s/^am_t//r } grep { /^am_t/ } @lines;
is(join(';', @am), join(';', @tr), 'RETURNING shows the same stamped values on both paths');
like(join(';', @am), qr/^\|0\|3\|;\|1\|6\|;\|2\|21\|by trigger 7;\|3\|9\|;\|t\|4$/,
	'RETURNING shows the stamp, the generated column and the BEFORE trigger\'s change');

$node->safe_psql($db, 'BEGIN;' . both(q{
	INSERT INTO TBL (id, v, n) SELECT i, 'sel ' || i, i / 10.0 FROM generate_series(100, 399) i;
	SAVEPOINT s1;
	INSERT INTO TBL (id, v) VALUES (500, 'rolled back');
	SAVEPOINT s2;
	INSERT INTO TBL (id, v) VALUES (501, 'rolled back too');
	ROLLBACK TO s1;
	INSERT INTO TBL (id, v) VALUES (502, 'after rollback');
	SAVEPOINT s3;
	INSERT INTO TBL (id, v) VALUES (503, 'kept');
	RELEASE s3;
}) . "COPY tr_t (id, v, n) FROM '$copyfile'; COPY am_t (id, v, n) FROM '$copyfile'; COMMIT;");
$node->safe_psql($db, 'BEGIN;' . both(q{
	INSERT INTO TBL (id, v) VALUES (600, 'prepared'), (601, 'prepared');
}) . "PREPARE TRANSACTION 'p1'; COMMIT PREPARED 'p1';");
$node->safe_psql($db, 'BEGIN;' . both(q{
	INSERT INTO TBL (id, v) VALUES (700, 'aborted');
}) . "ROLLBACK;");
$node->safe_psql($db, 'BEGIN;' . both(q{
	INSERT INTO TBL (id, v) VALUES (800, 'prepared, rolled back');
}) . "PREPARE TRANSACTION 'p2'; ROLLBACK PREPARED 'p2';");
foreach my $rel ('tr_t', 'am_t')
{
	my ($rc, $out, $err) = $node->psql($db,
		"INSERT INTO $rel (id, v) VALUES (900, 'x') ON CONFLICT DO NOTHING");
	like($err, qr/ON CONFLICT is not supported on ledger table "$rel"/, "$rel: ON CONFLICT refused");
}

ok(cl_wait_for($node, $db, q{SELECT consent_ledger.seal() >= 0 AND NOT EXISTS (SELECT FROM consent_ledger.pending)}, 60),
	'everything sealed');
my $rows_q = q{SELECT string_agg(format('%s|%s|%s|%s|%s|%s', ledger_txn, ledger_ord, id, v, n, g || coalesce(note, '')), ';'
	ORDER BY ledger_txn, ledger_ord) FROM TBL WHERE ledger_txn > (SELECT min(ledger_txn) FROM TBL)};
my $rows_tr = $node->safe_psql($db, $rows_q =~ s/TBL/tr_t/gr);
my $rows_am = $node->safe_psql($db, $rows_q =~ s/TBL/am_t/gr);
is($rows_am, $rows_tr, 'same rows with the same stamps on both paths');
is($node->safe_psql($db, q{SELECT count(*) FROM am_t WHERE id IN (500, 501, 700, 800)}), '0',
	'no row of a rolled-back savepoint or transaction');
is($node->safe_psql($db, q{SELECT string_agg(ledger_ord::text, ',' ORDER BY ledger_ord) FROM am_t WHERE id >= 502 AND id < 600}),
	'300,301', 'a rolled-back savepoint gives its ordinals back');

my $leaves_q = q{SELECT encode(sha256(string_agg(g.leaves, ''::bytea ORDER BY g.first_leaf)), 'hex') || ' ' || sum(g.nleaves)
	FROM consent_ledger.log g JOIN consent_ledger.ledgers l USING (ledger_id) WHERE l.relid = 'TBL'::regclass
	AND g.first_leaf >= 1000};
my $leaves_tr = $node->safe_psql($db, $leaves_q =~ s/TBL/tr_t/gr);
my $leaves_am = $node->safe_psql($db, $leaves_q =~ s/TBL/am_t/gr);
note("log leaves past the first COPY: $leaves_am");
like($leaves_am, qr/^[0-9a-f]{64} 1309$/, 'the access-method ledger logged 1309 leaves after its first COPY');
is($leaves_am, $leaves_tr, 'the same leaf hashes in the same log order on both paths');

# ---------------------------------------------------------------------
# 3. verify, and tamper behind the extension's back
# ---------------------------------------------------------------------
foreach my $rel ('tr_t', 'am_t')
{
	my $v = cl_verify_row($node, $db, $rel);
	ok($v->{valid}, "$rel verifies") or diag($v->{problem});
	is($v->{rows}, '2309', "$rel: 2309 rows");
}
$node->safe_psql($db, q{
	CREATE FUNCTION bypass(rel regclass, on_ boolean) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	  UPDATE pg_trigger SET tgenabled = CASE WHEN on_ THEN 'A' ELSE 'D' END
	  WHERE tgrelid = rel AND tgname LIKE '~consent_ledger%';
	  EXECUTE format('ALTER TABLE %s SET (fillfactor = 100)', rel);
	END $$;
	SELECT bypass('am_t', false);
	UPDATE am_t SET v = 'changed' WHERE id = 150;
	SELECT bypass('am_t', true);
});
my $v = cl_verify_row($node, $db, 'am_t');
ok(!$v->{valid}, 'a changed row is found on the access-method ledger');
note("problem: $v->{problem}");
$node->safe_psql($db, q{
	SELECT bypass('am_t', false);
	UPDATE am_t SET v = 'sel 150' WHERE id = 150;
	SELECT bypass('am_t', true);
});
ok(cl_verify_row($node, $db, 'am_t')->{valid}, 'changed back: valid again');
$node->safe_psql($db, q{
	SELECT bypass('am_t', false);
	INSERT INTO am_t (id, v) VALUES (9999, 'unstamped');
	SELECT bypass('am_t', true);
});
is($node->safe_psql($db, q{SELECT ledger_txn IS NULL FROM am_t WHERE id = 9999}), 't',
	'with its stamp trigger switched off, the access method does not stamp');
$v = cl_verify_row($node, $db, 'am_t');
ok(!$v->{valid}, 'an unstamped row is found');
note("problem: $v->{problem}");
$node->safe_psql($db, q{
	SELECT bypass('am_t', false);
	DELETE FROM am_t WHERE id = 9999 OR id = 160;
	SELECT bypass('am_t', true);
});
$v = cl_verify_row($node, $db, 'am_t');
ok(!$v->{valid}, 'a deleted row is found');
note("problem: $v->{problem}");

# ---------------------------------------------------------------------
# 4. indexes and rewrites of a ledger on the access method
# ---------------------------------------------------------------------
$node->safe_psql($db, q{
	CREATE TABLE ix (id int PRIMARY KEY, v text);
	SELECT consent_ledger.create_ledger('ix');
	INSERT INTO ix (id, v) SELECT i, 'v' || i FROM generate_series(1, 500) i;
	CREATE INDEX ix_v ON ix (v);
	CREATE INDEX ix_lower ON ix (lower(v)) WHERE id > 10;
	REINDEX TABLE ix;
	CLUSTER ix USING ix_pkey;
	VACUUM FULL ix;
});
$node->safe_psql($db, q{CREATE INDEX CONCURRENTLY ix_c ON ix (id, v)});
$node->safe_psql($db, q{INSERT INTO ix (id, v) SELECT i, 'w' || i FROM generate_series(501, 600) i});
is($node->safe_psql($db, q{SET enable_seqscan = off; SELECT count(*) FROM ix WHERE lower(v) = 'w550' AND id > 10}),
	'1', 'indexes built on the ledger find its rows');
ok(cl_wait_for($node, $db, q{SELECT consent_ledger.seal() >= 0 AND NOT EXISTS (SELECT FROM consent_ledger.pending)}, 60),
	'ix sealed');
ok(cl_verify_row($node, $db, 'ix')->{valid}, 'ix verifies after CREATE INDEX, REINDEX, CLUSTER, VACUUM FULL');
my ($rc, $out, $err) = $node->psql($db, q{
	CREATE FUNCTION sneaky_insert(int) RETURNS void LANGUAGE plpgsql VOLATILE AS
	  $$BEGIN INSERT INTO ix (id, v) VALUES ($1 + 100000, 'sneaked'); END$$;
	CREATE FUNCTION sneaky(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
	  $$BEGIN PERFORM sneaky_insert($1); RETURN $1; END$$;
	CREATE INDEX ix_sneaky ON ix (sneaky(id));
});
like($err, qr/cannot write to tables while an index of a ledger table is built/,
	'an index expression that inserts during the build is refused');
is($node->safe_psql($db, q{SELECT count(*) FROM ix WHERE v = 'sneaked'}), '0', 'no row got in');

$node->stop;
done_testing();
