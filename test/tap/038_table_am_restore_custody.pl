# The consent_ledger table access method (README "Table access method"):
# dump/restore, custody, and what it costs.
#
#  1. pg_dump of a ledger on the access method writes
#     SET default_table_access_method = consent_ledger before its CREATE
#     TABLE and its stamp trigger after the data; pg_restore into a new
#     database gives the table on the access method with every row's
#     stamps exactly as dumped (the access method does not restamp rows
#     while the table has no stamp trigger), verify() passes, a receipt
#     taken before the dump verifies, and rows inserted after the restore
#     are stamped (COPY with multi-row insert) and verify.
#  2. A table owner who is no administrator (neither a member of
#     consent_ledger_admin nor superuser; an administrator made its table a
#     ledger) cannot move its ledger off the access method (ALTER TABLE ... SET
#     ACCESS METHOD heap), nor a trigger-stamped ledger onto it by ALTER
#     TABLE, nor switch the stamp trigger off, drop or replace it;
#     use_table_am() of a table it does not own is refused.
#  3. What the access method costs: amcheck's verify_heapam(),
#     pgstattuple() and pg_surgery's heap_force_freeze() refuse a table on
#     it; pageinspect reads its pages.
#  4. DROP EXTENSION ... CASCADE after retire_ledger() keeps the ledger
#     tables (and any other table or materialized view on the access
#     method) as heap tables with their rows, instead of dropping them
#     with the access method; a catalog change, so a raising index
#     expression of another role's cannot stop it (attack review R1, W1).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Spec;
use ConsentLedgerTap;

my $node = PostgreSQL::Test::Cluster->new('am_restore');
$node->init;
$node->start;

# ---------------------------------------------------------------------
# 1. dump and restore
# ---------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION consent_ledger;
	CREATE TABLE t (id int PRIMARY KEY, v text, g int GENERATED ALWAYS AS (id + 1) STORED);
	SELECT consent_ledger.create_ledger('t');
	INSERT INTO t (id, v) SELECT i, 'row ' || i FROM generate_series(1, 300) i;
	INSERT INTO t (id, v) VALUES (1000, 'single');
});
ok(cl_wait_for($node, 'src', q{SELECT consent_ledger.seal() >= 0 AND NOT EXISTS (SELECT FROM consent_ledger.pending)}, 60),
	'source sealed');
my $receipt = $node->safe_psql('src', q{SELECT consent_ledger.checkpoint('t')});
my $stamps_q = q{SELECT md5(string_agg(format('%s|%s|%s|%s|%s', id, v, g, ledger_txn, ledger_ord), ';' ORDER BY id)) FROM t};
my $stamps = $node->safe_psql('src', $stamps_q);

my $dump = $node->basedir . '/am.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ], 'pg_dump -Fc');
my ($out, $err) = ('', '');
IPC::Run::run([ $node->installed_command('pg_restore'), '-f', '-', $dump ], '>', \$out, '2>', \$err);
my $script = $out =~ s/\n--[^\n]*//gr;
ok($script =~ /SET default_table_access_method = consent_ledger;\s+CREATE TABLE public\.t /,
	'the dump creates the table on the access method');
my $data_at = index($out, 'COPY public.t ');
my $trig_at = index($out, 'CREATE TRIGGER "~consent_ledger_stamp" BEFORE INSERT ON public.t FOR EACH STATEMENT');
ok($data_at > 0 && $trig_at > $data_at, 'the stamp trigger comes after the data');

$node->safe_psql('postgres', 'CREATE DATABASE dst');
IPC::Run::run([ $node->installed_command('pg_restore'), '-d', $node->connstr('dst'), $dump ],
	'>', \$out, '2>', \$err);
is($err, '', 'pg_restore reports no error');
is($node->safe_psql('dst', q{SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = 't'::regclass}),
	'consent_ledger', 'restored table is on the access method');
is($node->safe_psql('dst', $stamps_q), $stamps, 'restored rows keep their stamps exactly');
my $v = cl_verify_row($node, 'dst', 't');
ok($v->{valid}, 'restored ledger verifies') or diag($v->{problem});
is($node->safe_psql('dst', qq{SELECT consent_ledger.verify_checkpoint('$receipt')}), 't',
	'a receipt taken before the dump verifies after the restore');
my $copyfile = File::Spec->rel2abs($node->basedir) . '/more.tsv';
cl_write_file($copyfile, join('', map { "$_\tafter $_\n" } 2000 .. 2499));
chmod(0644, $copyfile);
my $start = $node->safe_psql('dst', 'SELECT pg_current_wal_insert_lsn()');
$node->safe_psql('dst', qq{COPY t (id, v) FROM '$copyfile'});
is($node->safe_psql('dst', q{SELECT count(*) FROM t WHERE id >= 2000 AND ledger_txn IS NOT NULL AND ledger_ord BETWEEN 0 AND 499}),
	'500', 'rows copied after the restore are stamped');
ok(cl_wait_for($node, 'dst', q{SELECT consent_ledger.seal() >= 0 AND NOT EXISTS (SELECT FROM consent_ledger.pending)}, 60),
	'restored database sealed');
$v = cl_verify_row($node, 'dst', 't');
ok($v->{valid} && $v->{rows} == 801, 'restored ledger with new rows verifies (801 rows)') or diag($v->{problem});
is($node->safe_psql('dst', qq{SELECT consent_ledger.verify_checkpoint('$receipt')}), 't',
	'the old receipt still verifies after new rows');

# ---------------------------------------------------------------------
# 2. custody: an owner who is no administrator
# ---------------------------------------------------------------------
$node->safe_psql('src', q{
	CREATE ROLE plain_owner LOGIN;
	CREATE ROLE admin_member LOGIN;
	GRANT consent_ledger_admin TO admin_member;
	GRANT CREATE ON SCHEMA public TO plain_owner;
	CREATE TABLE other_l (id int);
	SELECT consent_ledger.create_ledger('other_l');
	SET ROLE plain_owner;
	CREATE TABLE own_l (id int, v text);
	RESET ROLE;
	SELECT consent_ledger.create_ledger('own_l');
	SET ROLE plain_owner;
	INSERT INTO own_l (id, v) VALUES (1, 'a');
});
is($node->safe_psql('src', q{SELECT pg_has_role('plain_owner', 'consent_ledger_admin', 'MEMBER')
	OR (SELECT rolsuper FROM pg_roles WHERE rolname = 'plain_owner')}), 'f',
	'plain_owner is neither administrator nor superuser');
my @refused = (
	[ 'ALTER TABLE own_l SET ACCESS METHOD heap', qr/SET ACCESS METHOD is not allowed on ledger table "own_l"/, 'SET ACCESS METHOD heap' ],
	[ 'ALTER TABLE own_l DISABLE TRIGGER "~consent_ledger_stamp"', qr/not allowed on ledger table "own_l"/, 'DISABLE TRIGGER of the stamp' ],
	[ 'ALTER TABLE own_l ENABLE REPLICA TRIGGER "~consent_ledger_stamp"', qr/not allowed on ledger table "own_l"/, 'ENABLE REPLICA TRIGGER of the stamp' ],
	[ 'ALTER TABLE own_l DISABLE TRIGGER ALL', qr/not allowed on ledger table "own_l"/, 'DISABLE TRIGGER ALL' ],
	[ 'DROP TRIGGER "~consent_ledger_stamp" ON own_l', qr/not allowed on ledger table "own_l"/, 'DROP TRIGGER of the stamp' ],
	[ q{CREATE OR REPLACE TRIGGER "~consent_ledger_stamp" BEFORE INSERT ON own_l FOR EACH STATEMENT EXECUTE FUNCTION suppress_redundant_updates_trigger()},
	  qr/ERROR/, 'CREATE OR REPLACE TRIGGER of the stamp' ],
	[ q{SELECT consent_ledger.use_table_am('own_l')}, qr/permission denied for (function use_table_am|schema consent_ledger)/, 'use_table_am() without administration' ],
	# attack review R1, W2: the executor checks constraints before the
	# access method stamps, so a constraint on the stamp would hold stored
	# rows that violate it (and a dump that does not restore)
	[ q{ALTER TABLE own_l ADD CONSTRAINT stamp_small CHECK (ledger_txn < 9000000000000000000)},
	  qr/ledger table "own_l" has a NOT NULL or CHECK constraint on "ledger_txn" or "ledger_ord"/, 'a CHECK on ledger_txn' ],
	[ q{ALTER TABLE own_l ADD CONSTRAINT ord_small CHECK (ledger_ord < 1000000) NOT VALID},
	  qr/has a NOT NULL or CHECK constraint/, 'a CHECK on ledger_ord, NOT VALID' ],
	[ q{ALTER TABLE own_l ADD CONSTRAINT whole_row CHECK (own_l IS NOT NULL)},
	  qr/has a NOT NULL or CHECK constraint/, 'a CHECK on the whole row' ],
	[ q{ALTER TABLE own_l ALTER COLUMN ledger_txn SET NOT NULL},
	  qr/has a NOT NULL or CHECK constraint/, 'NOT NULL on ledger_txn' ],
);
foreach my $r (@refused)
{
	my ($sql, $re, $label) = @$r;
	my ($rc, $o, $e) = $node->psql('src', "SET ROLE plain_owner; $sql");
	isnt($rc, 0, "owner: $label refused");
	like($e, $re, "owner: $label: the refusal") or diag($e);
}
is($node->safe_psql('src', q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'own_l'::regclass}), '0',
	'no constraint was left on own_l');
$node->safe_psql('src', q{SET ROLE plain_owner; ALTER TABLE own_l ADD CONSTRAINT v_short CHECK (length(v) < 100)});
is($node->safe_psql('src', q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'own_l'::regclass}), '1',
	'a CHECK on another column of own_l is accepted');
my ($rc0, $o0, $e0) = $node->psql('src', q{SET ROLE admin_member; SELECT consent_ledger.use_table_am('other_l')});
like($e0, qr/must be owner of table other_l/, 'use_table_am() of a table an administrator does not own is refused');
is($node->safe_psql('src', q{SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = 'own_l'::regclass}),
	'consent_ledger', 'own_l is still on the access method');
$node->safe_psql('src', q{SET ROLE plain_owner; INSERT INTO own_l (id, v) VALUES (2, 'b')});
is($node->safe_psql('src', q{SELECT count(*) FROM own_l WHERE ledger_txn IS NULL}), '0',
	'every row of own_l is stamped');
ok(cl_wait_for($node, 'src', q{SELECT consent_ledger.seal() >= 0 AND NOT EXISTS (SELECT FROM consent_ledger.pending)}, 60),
	'own_l sealed');
ok(cl_verify_row($node, 'src', 'own_l')->{valid}, 'own_l verifies');

# ---------------------------------------------------------------------
# 3. what the access method costs: heap-only tools refuse it
# ---------------------------------------------------------------------
$node->safe_psql('src', q{CREATE EXTENSION amcheck; CREATE EXTENSION pgstattuple;
	CREATE EXTENSION pg_surgery; CREATE EXTENSION pageinspect});
my ($rc, $o, $e) = $node->psql('src', q{SELECT count(*) FROM verify_heapam('t')});
like($e, qr/only heap AM is supported/, 'amcheck verify_heapam() refuses a ledger on the access method');
($rc, $o, $e) = $node->psql('src', q{SELECT tuple_count FROM pgstattuple('t')});
like($e, qr/only heap AM is supported/, 'pgstattuple() refuses it');
($rc, $o, $e) = $node->psql('src', q{SELECT heap_force_freeze('t'::regclass, ARRAY['(0,1)']::tid[])});
like($e, qr/only heap AM is supported/, 'pg_surgery refuses it');
is($node->safe_psql('src', q{SELECT count(*) > 0 FROM heap_page_items(get_raw_page('t', 0))}), 't',
	'pageinspect reads its pages');

# ---------------------------------------------------------------------
# 4. DROP EXTENSION keeps retired ledgers on the access method, as heap
# ---------------------------------------------------------------------
$node->safe_psql('src', q{
	SELECT consent_ledger.retire_ledger('t');
	SELECT consent_ledger.retire_ledger('own_l');
	SELECT consent_ledger.retire_ledger('other_l');
	CREATE TABLE plain_on_am (id int) USING consent_ledger;
	INSERT INTO plain_on_am VALUES (1), (2);
	CREATE MATERIALIZED VIEW mv_on_am USING consent_ledger AS SELECT 7 AS x;
});
# Attack review R1, W1: a role with no privilege on the extension makes a
# table on the access method with an index whose expression raises once a
# switch is flipped; a rewrite back to heap would run it and fail the drop.
$node->safe_psql('src', q{
	CREATE ROLE nobody_special LOGIN;
	GRANT CREATE ON SCHEMA public TO nobody_special;
	SET ROLE nobody_special;
	CREATE TABLE trap_switch (on_ boolean);
	INSERT INTO trap_switch VALUES (false);
	CREATE FUNCTION boom(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
	BEGIN
	  IF (SELECT on_ FROM public.trap_switch) THEN RAISE EXCEPTION 'drop blocked'; END IF;
	  RETURN i;
	END $$;
	CREATE TABLE trap (i int) USING consent_ledger;
	INSERT INTO trap VALUES (1);
	CREATE INDEX trap_boom ON trap (public.boom(i));
	UPDATE trap_switch SET on_ = true;
});
my ($drc, $dout, $derr) = $node->psql('src', 'DROP EXTENSION consent_ledger CASCADE');
is($drc, 0, 'DROP EXTENSION ... CASCADE succeeds over a role\'s table with a raising index expression')
  or diag $derr;
is($node->safe_psql('src', q{
	SELECT string_agg(c.relname || ':' || a.amname, ',' ORDER BY c.relname)
	FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relname IN ('t', 'own_l', 'other_l', 'plain_on_am', 'mv_on_am', 'trap')}),
	'mv_on_am:heap,other_l:heap,own_l:heap,plain_on_am:heap,t:heap,trap:heap',
	'DROP EXTENSION ... CASCADE: the tables and materialized views on the access method stay, on heap');
is($node->safe_psql('src', $stamps_q), $stamps, '... with their rows and stamps');
is($node->safe_psql('src', q{SELECT count(*) FROM plain_on_am}), '2', '... a plain table on it too');
is($node->safe_psql('src', q{SELECT x FROM mv_on_am}), '7', '... and a materialized view');
is($node->safe_psql('src', q{SELECT count(*) FROM pg_depend d JOIN pg_class c ON d.objid = c.oid
	WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_am'::regclass AND c.relname IN ('t', 'trap', 'mv_on_am')}),
	'0', '... with no dependency left on an access method');
is($node->safe_psql('src', q{UPDATE trap_switch SET on_ = false; SET enable_seqscan = off; SELECT count(*) FROM trap WHERE public.boom(i) = 1}), '1',
	'... the table and its index read as heap (the index was not rebuilt)');

$node->stop;
done_testing();
