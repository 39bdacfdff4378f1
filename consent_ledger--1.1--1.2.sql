/* consent_ledger--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.2'" to load this file. \quit

/*
 * 1.2: ledger correctness and life cycle (encoding version 2, receipts,
 * life cycle without preloading, publications, re-creation, keys).
 * Each section below names what it changes.
 */

/*
 * 1.2: receipts are all-or-nothing, and retired and dropped ledgers stay
 * verifiable (issue #11 items 3 and 7).  verify_checkpoint() now answers
 * false (with the reason as a NOTICE) for malformed receipts, members that
 * disagree with the signed note, and unknown origins;
 * verify_checkpoint_detail() returns the reason as a column, so auditors
 * can check many receipts in one query.  ledger() names a ledger by id,
 * origin or table name, retired and dropped ones included; every function
 * taking a ledger's regclass accepts the relid it returns.
 */
CREATE FUNCTION consent_ledger.verify_checkpoint_detail(checkpoint jsonb)
	RETURNS TABLE (valid boolean, reason text)
	AS 'MODULE_PATHNAME', 'cl_verify_checkpoint_detail' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION consent_ledger.verify_checkpoint_detail(jsonb) IS
	'verify a receipt: whether it holds, and why not';
CREATE FUNCTION consent_ledger.ledger(ledger text)
	RETURNS pg_catalog.regclass
	AS 'MODULE_PATHNAME', 'cl_sql_ledger' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION consent_ledger.ledger(text) IS
	'the relation of a ledger named by ledger id, origin or table name, retired and dropped ledgers included';
REVOKE ALL ON FUNCTION consent_ledger.verify_checkpoint_detail(jsonb),
	consent_ledger.ledger(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.verify_checkpoint_detail(jsonb),
	consent_ledger.ledger(text)
	TO consent_ledger_auditor, consent_ledger_admin;

-- The tables of retired ledgers that were dropped: which ledger, the OID
-- it had, and the name it had when it was dropped (written by the
-- extension's drop hook in the dropping transaction).  ledger() finds a
-- dropped ledger by that name, and a relation that later gets the same
-- OID is never taken for the ledger's table.  Ledgers dropped before 1.2
-- are recorded without a name.
CREATE TABLE consent_ledger.dropped_ledgers (
	ledger_id	pg_catalog.int4 PRIMARY KEY,
	relid		pg_catalog.oid NOT NULL,
	schema_name	pg_catalog.text,
	table_name	pg_catalog.text,
	dropped_at	pg_catalog.timestamptz NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('consent_ledger.dropped_ledgers', '');
REVOKE ALL ON consent_ledger.dropped_ledgers FROM PUBLIC;
GRANT SELECT ON consent_ledger.dropped_ledgers TO consent_ledger_auditor, consent_ledger_admin;
INSERT INTO consent_ledger.dropped_ledgers (ledger_id, relid, dropped_at)
	SELECT l.ledger_id, l.relid::pg_catalog.oid, pg_catalog.now()
	  FROM consent_ledger.ledgers l
	 WHERE l.retired_at IS NOT NULL
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c
					   WHERE c.oid OPERATOR(pg_catalog.=) l.relid::pg_catalog.oid);

-- 1.2: a dropped ledger keeps no live-looking reference to its table's OID
-- (review 3, item 1, R1, R2).  Up to here a dropped ledger kept its old
-- OID in ledgers.relid (a regclass, UNIQUE): pg_dump writes a dropped
-- table's regclass as a bare number, and in the restored cluster (or
-- after OID wraparound) another relation can get that OID -- a restored
-- live ledger's table made the restore of ledgers fail on the UNIQUE
-- constraint, an unrelated table was taken for the ledger's table.  From
-- 1.2 the drop hook sets relid to NULL in the dropping transaction; the
-- OID stays only as history in dropped_ledgers.relid (a plain oid).  A
-- ledger is dropped iff its relid is NULL.  This runs before the
-- leftovers section below, which looks up live ledgers by relid.
ALTER TABLE consent_ledger.ledgers ALTER COLUMN relid DROP NOT NULL;
UPDATE consent_ledger.ledgers l SET relid = NULL
  FROM consent_ledger.dropped_ledgers d
 WHERE d.ledger_id OPERATOR(pg_catalog.=) l.ledger_id;
COMMENT ON COLUMN consent_ledger.ledgers.relid IS
	'the ledger''s table; NULL once the table was dropped (its OID is kept in consent_ledger.dropped_ledgers)';

/*
 * Encoding version 2 (issue 11, README "Canonical row encoding").  The
 * library reads the encoding version of each ledger from
 * consent_ledger.ledgers.encoding and verifies, proves and exports every
 * ledger in its own version, so ledgers made before 1.2 keep version 1.
 * A ledger made from now on -- by create_ledger(), or the consent and
 * audit ledgers when they are first made -- gets the column's default.
 * The library reads this default (no default: version 1), so it keeps
 * making version 1 ledgers until this script has run.
 */
ALTER TABLE consent_ledger.ledgers ALTER COLUMN encoding SET DEFAULT 2;
COMMENT ON COLUMN consent_ledger.ledgers.encoding IS
	'canonical row encoding version of the ledger''s rows (README "Canonical row encoding"); new ledgers get the default';

/*
 * 1.2 life cycle: without preloading nothing is half done.  Every C
 * function refuses (55000) when the library was not preloaded; this event
 * trigger makes DDL in the database refuse too, since the utility hook that
 * guards ledgers and protected tables is only installed by preloading.
 * A superuser can still ALTER EVENT TRIGGER consent_ledger_require_preload
 * DISABLE (commands on event triggers do not fire them).
 */
CREATE FUNCTION consent_ledger._require_preload() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'cl_require_preload_ddl' LANGUAGE C;
REVOKE ALL ON FUNCTION consent_ledger._require_preload() FROM PUBLIC;
CREATE EVENT TRIGGER consent_ledger_require_preload ON ddl_command_start
	EXECUTE FUNCTION consent_ledger._require_preload();

/*
 * 1.2 life cycle: DROP EXTENSION (README "Uninstall").  Up to 1.1, DROP
 * EXTENSION ... CASCADE left the consent ledger, its consent_state view
 * and the audit ledger behind (they are not extension members), without
 * their triggers and the event id default, and a new CREATE EXTENSION then
 * wrote into them: grant_consent failed on a NULL event_id, the audit
 * writer failed on every record.  1.2 drops or archives them with the
 * extension (guard.c).  When this script runs for CREATE EXTENSION over
 * such leftovers (they are not in the new, empty ledger registry), they
 * are renamed out of the way, indexes included, with the suffix
 * _dropped_before_1_2: kept as plain tables, never written again.  Under
 * ALTER EXTENSION ... UPDATE they are registered ledgers and stay as they
 * are.  (Nothing is created here: an object created by an extension script
 * would become a member and go with the next DROP EXTENSION.)
 */
DO $leftovers$
DECLARE
	t text;
	rel pg_catalog.regclass;
	idx record;
BEGIN
	FOREACH t IN ARRAY ARRAY['consent_events', 'audit_log']
	LOOP
		rel := pg_catalog.to_regclass(pg_catalog.quote_ident('consent_ledger') OPERATOR(pg_catalog.||) '.'
									  OPERATOR(pg_catalog.||) pg_catalog.quote_ident(t));
		CONTINUE WHEN rel IS NULL;
		CONTINUE WHEN EXISTS (SELECT FROM consent_ledger.ledgers l WHERE l.relid OPERATOR(pg_catalog.=) rel);
		IF t OPERATOR(pg_catalog.=) 'consent_events' THEN
			DROP VIEW IF EXISTS consent_ledger.consent_state;
		END IF;
		FOR idx IN SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
				   WHERE i.indrelid OPERATOR(pg_catalog.=) rel
		LOOP
			EXECUTE pg_catalog.format('ALTER INDEX consent_ledger.%I RENAME TO %I', idx.relname,
									  idx.relname OPERATOR(pg_catalog.||) '_dropped_before_1_2');
		END LOOP;
		EXECUTE pg_catalog.format('ALTER TABLE consent_ledger.%I RENAME TO %I', t,
								  t OPERATOR(pg_catalog.||) '_dropped_before_1_2');
		RAISE WARNING USING
			MESSAGE = pg_catalog.format('consent_ledger: table consent_ledger.%I, left by an earlier DROP EXTENSION, renamed to consent_ledger.%I', t,
										t OPERATOR(pg_catalog.||) '_dropped_before_1_2'),
			DETAIL = 'Its log and checkpoints were dropped with that extension; it is kept as a plain table and never written again.';
	END LOOP;
END
$leftovers$;

/*
 * 1.2 life cycle: logical replication.  A publication FOR ALL TABLES (or
 * FOR TABLES IN SCHEMA consent_ledger) includes the extension's tables;
 * PostgreSQL then refuses UPDATE and DELETE of a table without a replica
 * identity.  The sealer DELETEs sealed records from pending, which has no
 * key (by design: no index to maintain per commit), so sealing stopped for
 * good.  It gets REPLICA IDENTITY FULL (the whole old row is logged only
 * while wal_level = logical and the table is published).  Every other
 * table the extension UPDATEs or DELETEs from has a primary key; keys,
 * log, checkpoints and the two ledgers created on first use are only ever
 * inserted into.  Protected tables are kept out of publications (guard.c).
 */
ALTER TABLE consent_ledger.pending REPLICA IDENTITY FULL;

/*
 * 1.2: one reader for receipts (attack review 1, F2).  verify_checkpoint()
 * and verify_checkpoint_detail() also take the receipt as text, read byte
 * for byte by the strict JSON reader the offline verifier uses (no
 * duplicate keys, one flat object, integers without sign, fraction or
 * exponent), so both give the same verdict for the same receipt.  A
 * string literal resolves to these (text is the preferred type of its
 * category; jsonb is not in it); a jsonb value is read as its text, after
 * jsonb input already kept the last of duplicate keys.
 */
CREATE FUNCTION consent_ledger.verify_checkpoint(checkpoint text)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_verify_checkpoint_text' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION consent_ledger.verify_checkpoint(text) IS
	'verify a receipt given as text, read exactly as the offline verifier reads it';
CREATE FUNCTION consent_ledger.verify_checkpoint_detail(checkpoint text)
	RETURNS TABLE (valid boolean, reason text)
	AS 'MODULE_PATHNAME', 'cl_verify_checkpoint_detail_text' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION consent_ledger.verify_checkpoint_detail(text) IS
	'verify a receipt given as text: whether it holds, and why not';
REVOKE ALL ON FUNCTION consent_ledger.verify_checkpoint(text),
	consent_ledger.verify_checkpoint_detail(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.verify_checkpoint(text),
	consent_ledger.verify_checkpoint_detail(text)
	TO consent_ledger_auditor, consent_ledger_admin;

/*
 * 1.2 life cycle: the extension's schema (README "Trust model and
 * custody", review 2 F1).  CREATE EXTENSION now refuses a schema
 * consent_ledger owned by an untrusted role or granting CREATE to others
 * (cl_assert_preloaded, called by the 1.0 script).  An installation made
 * before 1.2 may live in such a schema: its owner could plant tables the
 * extension finds by name.  The update does not change ownership or
 * privileges itself; it says what to do.
 */
DO $schema$
DECLARE
	owner_name text;
	owner_super boolean;
	creators text;
BEGIN
	SELECT r.rolname, r.rolsuper INTO owner_name, owner_super
	FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
	WHERE n.nspname OPERATOR(pg_catalog.=) 'consent_ledger';
	IF NOT owner_super AND owner_name OPERATOR(pg_catalog.<>) CURRENT_USER THEN
		RAISE WARNING USING
			ERRCODE = 'insufficient_privilege',
			MESSAGE = pg_catalog.format('consent_ledger: schema consent_ledger is owned by role %I, which is not a superuser', owner_name),
			DETAIL = 'The owner of the extension''s schema can replace or drop the extension''s objects and plant tables it finds by name; 1.2 refuses to be installed into such a schema.',
			HINT = pg_catalog.format('ALTER SCHEMA consent_ledger OWNER TO %I, and check the schema for objects that role created.', CURRENT_USER);
	END IF;
	SELECT pg_catalog.string_agg(CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
									  ELSE pg_catalog.quote_ident(r.rolname) END, ', ')
	INTO creators
	FROM pg_catalog.pg_namespace n,
		 LATERAL pg_catalog.aclexplode(n.nspacl) a
		 LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
	WHERE n.nspname OPERATOR(pg_catalog.=) 'consent_ledger'
	  AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
	  AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
	  AND NOT coalesce(r.rolsuper, false);
	IF creators IS NOT NULL THEN
		RAISE WARNING USING
			ERRCODE = 'insufficient_privilege',
			MESSAGE = pg_catalog.format('consent_ledger: CREATE on schema consent_ledger is granted to %s', creators),
			DETAIL = 'A role that can create objects in the extension''s schema can plant tables the extension finds by name; 1.2 refuses to be installed into such a schema.',
			HINT = pg_catalog.format('REVOKE CREATE ON SCHEMA consent_ledger FROM %s.', creators);
	END IF;
END
$schema$;
