/* consent_ledger--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.1'" to load this file. \quit

/*
 * 1.1: custody of protected tables.  protect() hands the table to
 * consent_ledger_custodian, a role that cannot log in, so that a table
 * owner who is not trusted with hidden rows (SPEC section 5) has no DDL
 * left to read them with; the previous owner keeps the privileges it needs
 * to load and read the table under the policy, and gets the table back on
 * unprotect().  Members of consent_ledger_admin are members of the
 * custodian, so they manage protected tables as before.
 */
DO $roles$
BEGIN
	IF EXISTS (SELECT FROM pg_catalog.pg_roles
			   WHERE rolname OPERATOR(pg_catalog.=) 'consent_ledger_custodian') THEN
		IF EXISTS (SELECT FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) 'consent_ledger_custodian'
					 AND (rolcanlogin OR rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb)) THEN
			RAISE EXCEPTION USING
				ERRCODE = 'insufficient_privilege',
				MESSAGE = 'role "consent_ledger_custodian" already exists with unsafe attributes',
				DETAIL = 'consent_ledger makes this role the owner of protected tables; it must be NOLOGIN, NOSUPERUSER, NOBYPASSRLS, NOCREATEROLE and NOCREATEDB.',
				HINT = 'Drop or alter the role, then update the extension again.';
		END IF;
	ELSE
		CREATE ROLE consent_ledger_custodian NOLOGIN;
	END IF;
	-- administrators manage protected tables as members of the custodian
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members
				   WHERE roleid OPERATOR(pg_catalog.=) 'consent_ledger_custodian'::pg_catalog.regrole
					 AND member OPERATOR(pg_catalog.=) 'consent_ledger_admin'::pg_catalog.regrole) THEN
		GRANT consent_ledger_custodian TO consent_ledger_admin;
	END IF;
END
$roles$;

-- the owner a protected table had before protect(), restored by unprotect()
ALTER TABLE consent_ledger.protected ADD COLUMN previous_owner pg_catalog.regrole;

-- tables protected under 1.0 go into custody now
CREATE FUNCTION consent_ledger._take_custody(relation pg_catalog.regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'cl_take_custody_sql' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION consent_ledger._take_custody(pg_catalog.regclass) FROM PUBLIC;
SELECT consent_ledger._take_custody(relid) FROM consent_ledger.protected;
DROP FUNCTION consent_ledger._take_custody(pg_catalog.regclass);

/*
 * 1.1: roles without one of the extension's roles cannot name its schema.
 * PostgreSQL locks a table it finds by name before it checks privileges
 * (PREPARE, CREATE FUNCTION bodies, CREATE TRIGGER), so a role that could
 * name consent_ledger.log or consent_ledger.audit_log could hold or queue
 * a lock that stalls the sealer or the audit writer.  Nothing an analyst
 * needs is lost: policies and purpose views call the consent checks by
 * OID, and EXECUTE on them stays granted to PUBLIC.  public_key(),
 * key_id() and verifier_key() stay executable by PUBLIC for roles given
 * USAGE by an administrator.
 */
REVOKE USAGE ON SCHEMA consent_ledger FROM PUBLIC;
