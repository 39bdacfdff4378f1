/* consent_ledger--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.3'" to load this file. \quit

/*
 * 1.3: warehouse scale and throughput (issues #12, #13) and the newcomer's
 * path (issue #16).  Each section below names what it changes.
 */

/* ---------------------------------------------------------------------
 * Consent recorded in bulk (issue #12 item 2; README "Recording consent
 * in bulk").  grant_consent() and withdraw_consent() -- text, bigint,
 * integer and uuid subjects -- are C functions (src/record.c) with the
 * same checks, errors and ordering as the PL/pgSQL ones they replace,
 * about ten times faster set-wise.  CREATE OR REPLACE keeps their
 * signatures and privileges (EXECUTE by consent_ledger_recorder and
 * consent_ledger_admin).  They are no longer SECURITY DEFINER: the C code
 * inserts as the extension's owner itself and depends on no search_path.
 * New: the bulk variants taking an array of subjects.
 * --------------------------------------------------------------------- */
CREATE OR REPLACE FUNCTION consent_ledger.grant_consent(subject text, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.grant_consent(subject bigint, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent_int8' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.grant_consent(subject integer, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent_int4' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.grant_consent(subject uuid, purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent_uuid' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.withdraw_consent(subject text, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.withdraw_consent(subject bigint, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent_int8' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.withdraw_consent(subject integer, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent_int4' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION consent_ledger.withdraw_consent(subject uuid, purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent_uuid' LANGUAGE C VOLATILE;

CREATE FUNCTION consent_ledger.grant_consent(subjects text[], purpose text,
		expires_at timestamptz DEFAULT NULL, evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_grant_consent_array' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.grant_consent(text[], text, timestamptz, jsonb) IS
	'bulk path: one grant per subject, in array order, all or nothing; returns the number recorded';
CREATE FUNCTION consent_ledger.withdraw_consent(subjects text[], purpose text,
		evidence jsonb DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'cl_withdraw_consent_array' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.withdraw_consent(text[], text, jsonb) IS
	'bulk path: one withdrawal per subject, in array order, all or nothing; returns the number recorded';
REVOKE ALL ON FUNCTION consent_ledger.grant_consent(text[], text, timestamptz, jsonb),
	consent_ledger.withdraw_consent(text[], text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.grant_consent(text[], text, timestamptz, jsonb),
	consent_ledger.withdraw_consent(text[], text, jsonb)
	TO consent_ledger_recorder, consent_ledger_admin;

/*
 * has_consent() reads consent_ledger.consent_events by name: it now refuses
 * one the extension did not create (42501), as the C code does (README
 * "Trust model").  Otherwise unchanged.
 */
CREATE FUNCTION consent_ledger._consent_events_checked() RETURNS boolean
	AS 'MODULE_PATHNAME', 'cl_consent_events_checked' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION consent_ledger._consent_events_checked() FROM PUBLIC;

CREATE OR REPLACE FUNCTION consent_ledger.has_consent(subject text, purpose text,
		at timestamptz DEFAULT now())
	RETURNS boolean
	LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	basis text;
	ok boolean;
BEGIN
	SELECT p.legal_basis INTO basis FROM consent_ledger.purposes p
	WHERE p.purpose OPERATOR(pg_catalog.=) has_consent.purpose;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_object',
			MESSAGE = pg_catalog.format('purpose "%s" does not exist', purpose),
			HINT = 'Define it with consent_ledger.define_purpose().';
	END IF;
	IF basis OPERATOR(pg_catalog.<>) 'consent' THEN
		RETURN true;
	END IF;
	IF NOT consent_ledger._consent_events_checked() THEN
		RETURN false;
	END IF;
	WITH RECURSIVE anc(purpose) AS (
		SELECT has_consent.purpose
		UNION
		SELECT p.parent FROM consent_ledger.purposes p JOIN anc ON p.purpose OPERATOR(pg_catalog.=) anc.purpose
		WHERE p.parent IS NOT NULL),
	ev AS (
		SELECT e.event_id, e.purpose, e.action, e.expires_at
		FROM consent_ledger.consent_events e
		WHERE e.subject OPERATOR(pg_catalog.=) has_consent.subject
		  AND e.purpose IN (SELECT anc.purpose FROM anc)
		  AND e.recorded_at OPERATOR(pg_catalog.<=) has_consent.at),
	w AS (SELECT coalesce(pg_catalog.max(ev.event_id), 0) AS last_withdrawal
		  FROM ev WHERE ev.action OPERATOR(pg_catalog.=) 'withdraw'),
	latest AS (SELECT DISTINCT ON (ev.purpose) ev.* FROM ev ORDER BY ev.purpose, ev.event_id DESC)
	SELECT EXISTS (SELECT FROM latest, w
				   WHERE latest.action OPERATOR(pg_catalog.=) 'grant'
					 AND latest.event_id OPERATOR(pg_catalog.>) w.last_withdrawal
					 AND (latest.expires_at IS NULL OR latest.expires_at OPERATOR(pg_catalog.>) has_consent.at))
	INTO ok;
	RETURN ok;
END
$$;
