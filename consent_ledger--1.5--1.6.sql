/* consent_ledger--1.5--1.6.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.6'" to load this file. \quit

/*
 * 1.6: data subjects in control (issue #17; README "Subject-signed
 * consent", "Consent receipts").  A subject may register an Ed25519 key
 * and sign their own grants and withdrawals; a purpose can take only
 * signed grants; a person gets a receipt of a consent event that they can
 * check offline.
 */

/*
 * Purposes that take only grants the subject signed.  Existing purposes
 * keep their meaning (false); a purpose is still defined once and for
 * good, so the flag never changes.
 */
ALTER TABLE consent_ledger.purposes
	ADD COLUMN require_subject_signature boolean NOT NULL DEFAULT false;

DROP FUNCTION consent_ledger.define_purpose(text, text, text, text);
CREATE FUNCTION consent_ledger.define_purpose(purpose text, description text DEFAULT NULL,
		legal_basis text DEFAULT 'consent', parent text DEFAULT NULL,
		require_subject_signature boolean DEFAULT false)
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF purpose IS NULL OR legal_basis IS NULL OR require_subject_signature IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'purpose, legal_basis and require_subject_signature must not be NULL';
	END IF;
	IF legal_basis NOT IN ('consent', 'contract', 'legal_obligation', 'vital_interests',
						   'public_task', 'legitimate_interests') THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('invalid legal basis "%s"', legal_basis),
			DETAIL = 'The legal bases are those of GDPR Art. 6(1).',
			HINT = 'Use one of consent, contract, legal_obligation, vital_interests, public_task, legitimate_interests.';
	END IF;
	IF purpose !~ '^[A-Za-z][A-Za-z0-9_.:-]{0,62}$' THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('invalid purpose name "%s"', purpose),
			HINT = 'A purpose name starts with a letter and has at most 63 letters, digits, "_", ".", ":" or "-".';
	END IF;
	IF parent IS NOT NULL AND NOT EXISTS
		(SELECT FROM consent_ledger.purposes p WHERE p.purpose OPERATOR(pg_catalog.=) define_purpose.parent) THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_object',
			MESSAGE = format('parent purpose "%s" does not exist', parent),
			HINT = 'Define the parent purpose first.';
	END IF;
	IF EXISTS (SELECT FROM consent_ledger.purposes p WHERE p.purpose OPERATOR(pg_catalog.=) define_purpose.purpose) THEN
		RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
			MESSAGE = format('purpose "%s" already exists', purpose),
			DETAIL = 'Purposes are defined once and never changed, so that past consent keeps its meaning.';
	END IF;
	IF require_subject_signature AND legal_basis OPERATOR(pg_catalog.<>) 'consent' THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('purpose "%s" cannot require subject signatures: its legal basis is %s', purpose, legal_basis),
			DETAIL = 'Only a purpose whose legal basis is consent needs grants.',
			HINT = 'Define it with legal_basis => ''consent'', or without require_subject_signature.';
	END IF;
	-- a grant of the parent covers the child: it must be signed too
	IF require_subject_signature AND parent IS NOT NULL AND NOT EXISTS
		(SELECT FROM consent_ledger.purposes p WHERE p.purpose OPERATOR(pg_catalog.=) define_purpose.parent
		 AND p.require_subject_signature) THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = format('purpose "%s" cannot require subject signatures under parent "%s", which does not', purpose, parent),
			DETAIL = 'Consent to a parent purpose covers its children, so an unsigned grant of the parent would count for the child.',
			HINT = 'Give it a parent that requires subject signatures, or none.';
	END IF;
	INSERT INTO consent_ledger.purposes (purpose, description, legal_basis, parent, defined_at,
										 require_subject_signature)
	VALUES (define_purpose.purpose, define_purpose.description, define_purpose.legal_basis,
			define_purpose.parent, now(), define_purpose.require_subject_signature);
	PERFORM consent_ledger._purposes_changed();
END
$$;
COMMENT ON FUNCTION consent_ledger.define_purpose(text, text, text, text, boolean) IS
	'defines a purpose, once and for good; with require_subject_signature, only grants the subject signed count for it';
REVOKE ALL ON FUNCTION consent_ledger.define_purpose(text, text, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.define_purpose(text, text, text, text, boolean)
	TO consent_ledger_admin;

CREATE FUNCTION consent_ledger._replace_consent_state_view() RETURNS void
	AS 'MODULE_PATHNAME', 'cl_replace_consent_state_view' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION consent_ledger._replace_consent_state_view() FROM PUBLIC;

/*
 * The consent ledger, when there is one, gets the columns of a signed
 * event.  Nullable, without a default: NULL columns are not encoded, so
 * every existing row keeps its leaf.  (A consent ledger made by this
 * library before the update already has them.)  Its view, consent_state,
 * counts what the consent checks count: its new definition is in
 * src/consent.c, which replaces it (it is not an extension member).
 */
DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_catalog.pg_class c
			   WHERE c.relnamespace OPERATOR(pg_catalog.=) 'consent_ledger'::pg_catalog.regnamespace
				 AND c.relname OPERATOR(pg_catalog.=) 'consent_events' AND c.relkind OPERATOR(pg_catalog.=) 'r') THEN
		ALTER TABLE consent_ledger.consent_events
			ADD COLUMN IF NOT EXISTS subject_statement pg_catalog.text,
			ADD COLUMN IF NOT EXISTS subject_signature pg_catalog.text,
			ADD COLUMN IF NOT EXISTS subject_key pg_catalog.text;
		PERFORM consent_ledger._replace_consent_state_view();
	END IF;
END
$$;

/* has_consent() counts no unsigned grant for a purpose that takes only signed ones. */
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
		  AND e.recorded_at OPERATOR(pg_catalog.<=) has_consent.at
		  AND NOT (e.action OPERATOR(pg_catalog.=) 'grant' AND e.subject_signature IS NULL
				   AND e.purpose IN (SELECT p.purpose FROM consent_ledger.purposes p
									 WHERE p.require_subject_signature))),
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

/* Subjects' keys and signed events (src/subject.c, src/record.c). */
CREATE FUNCTION consent_ledger.consent_origin() RETURNS text
	AS 'MODULE_PATHNAME', 'cl_consent_origin' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.consent_origin() IS
	'the origin a subject''s signed statements name: the consent ledger''s (made on first use)';
CREATE FUNCTION consent_ledger.register_subject_key(subject text, public_key text,
		statement text, signature text) RETURNS integer
	AS 'MODULE_PATHNAME', 'cl_register_subject_key' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.register_subject_key(text, text, text, text) IS
	'registers a data subject''s Ed25519 public key (the first signed by itself, a rotation by the key it replaces) in the ledger consent_ledger.subject_keys; returns the key''s number';
CREATE FUNCTION consent_ledger.record_signed_consent(statement text, signature text,
		evidence jsonb DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'cl_record_signed_consent' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.record_signed_consent(text, text, jsonb) IS
	'records the grant or withdrawal a data subject signed with their registered key; returns the event id';
REVOKE ALL ON FUNCTION consent_ledger.consent_origin(),
	consent_ledger.register_subject_key(text, text, text, text),
	consent_ledger.record_signed_consent(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.consent_origin(),
	consent_ledger.register_subject_key(text, text, text, text),
	consent_ledger.record_signed_consent(text, text, jsonb)
	TO consent_ledger_recorder, consent_ledger_admin;
GRANT EXECUTE ON FUNCTION consent_ledger.consent_origin() TO consent_ledger_auditor;

/*
 * A consent receipt: what a person needs to prove later what they
 * consented to and when, without trusting the operator (README "Consent
 * receipts"): the event's leaf bytes, an inclusion proof to the latest
 * signed checkpoint (with its witnesses' cosignatures), and that
 * checkpoint.  consent-ledger-verify receipt checks it offline.
 */
CREATE FUNCTION consent_ledger.consent_receipt(event_id bigint) RETURNS jsonb
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rel pg_catalog.regclass;
	e record;
	leaf bigint;
	cp jsonb;
	proof jsonb;
	ld bytea;
BEGIN
	IF event_id IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'event_id must not be NULL';
	END IF;
	IF NOT consent_ledger._consent_events_checked() THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_object',
			MESSAGE = pg_catalog.format('consent event %s does not exist', event_id),
			DETAIL = 'No consent has been recorded in this database.';
	END IF;
	rel := 'consent_ledger.consent_events'::pg_catalog.regclass;
	SELECT c.event_id, c.subject, c.purpose, c.action, c.expires_at, c.recorded_at, c.recorded_by,
		   c.subject_statement, c.subject_signature, c.subject_key, c.ledger_txn, c.ledger_ord
	INTO e FROM consent_ledger.consent_events c
	WHERE c.event_id OPERATOR(pg_catalog.=) consent_receipt.event_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_object',
			MESSAGE = pg_catalog.format('consent event %s does not exist', event_id),
			HINT = 'Event ids are those grant_consent(), withdraw_consent() and record_signed_consent() return.';
	END IF;
	-- the event's leaf: its (ledger_txn, ledger_ord) stamp's place in the log
	SELECT (l.first_leaf OPERATOR(pg_catalog.+)
			coalesce((SELECT pg_catalog.sum(x) FROM pg_catalog.unnest(l.counts[1:(u.k OPERATOR(pg_catalog.-) 1)]) x), 0))
		   OPERATOR(pg_catalog.+) (e.ledger_ord OPERATOR(pg_catalog.-) u.first_ord)
	INTO leaf
	FROM consent_ledger.ledgers g
	JOIN consent_ledger.log l ON l.ledger_id OPERATOR(pg_catalog.=) g.ledger_id
	CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(l.txns), pg_catalog.unnest(l.first_ords),
								  pg_catalog.unnest(l.counts)) WITH ORDINALITY AS u(txn, first_ord, cnt, k)
	WHERE g.relid OPERATOR(pg_catalog.=) rel
	  AND l.txns OPERATOR(pg_catalog.@>) ARRAY[e.ledger_txn]
	  AND u.txn OPERATOR(pg_catalog.=) e.ledger_txn
	  AND e.ledger_ord OPERATOR(pg_catalog.>=) u.first_ord
	  AND e.ledger_ord OPERATOR(pg_catalog.<) (u.first_ord OPERATOR(pg_catalog.+) u.cnt);
	cp := consent_ledger.checkpoint(rel);
	IF leaf IS NULL OR cp IS NULL OR leaf OPERATOR(pg_catalog.>=) (cp OPERATOR(pg_catalog.->>) 'tree_size')::bigint THEN
		RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
			MESSAGE = 'the consent event is not covered by a signed checkpoint yet',
			DETAIL = pg_catalog.format('A receipt proves an event is in a tree whose root the server signed; event %s is not sealed into one yet.', event_id),
			HINT = 'The sealer seals committed events within consent_ledger.seal_interval (an administrator can call consent_ledger.seal()); ask again then.';
	END IF;
	proof := consent_ledger.inclusion_proof(rel, leaf, (cp OPERATOR(pg_catalog.->>) 'tree_size')::bigint);
	ld := consent_ledger.leaf_data(rel, leaf);
	IF pg_catalog.sha256('\x00'::bytea OPERATOR(pg_catalog.||) ld) OPERATOR(pg_catalog.<>)
	   pg_catalog.decode(proof OPERATOR(pg_catalog.->>) 'leaf_hash', 'base64') THEN
		RAISE EXCEPTION USING ERRCODE = 'data_corrupted',
			MESSAGE = pg_catalog.format('consent event %s no longer matches its leaf', event_id),
			DETAIL = 'The row, re-encoded now, does not hash to the leaf the log recorded for it.',
			HINT = 'Run consent_ledger.verify(''consent_ledger.consent_events'').';
	END IF;
	RETURN pg_catalog.jsonb_build_object(
		'type', 'consent_ledger/consent-receipt/v1',
		'event', pg_catalog.jsonb_build_object(
			'event_id', e.event_id, 'subject', e.subject, 'purpose', e.purpose,
			'action', e.action, 'expires_at', e.expires_at, 'recorded_at', e.recorded_at,
			'recorded_by', e.recorded_by, 'subject_statement', e.subject_statement,
			'subject_signature', e.subject_signature, 'subject_key', e.subject_key),
		'leaf_index', leaf,
		'leaf_data', pg_catalog.encode(ld, 'hex'),
		'proof', proof,
		'checkpoint', cp);
END
$$;
COMMENT ON FUNCTION consent_ledger.consent_receipt(bigint) IS
	'a consent event''s receipt for the person: the event, its leaf, an inclusion proof and the signed checkpoint, to check offline with consent-ledger-verify receipt';
REVOKE ALL ON FUNCTION consent_ledger.consent_receipt(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.consent_receipt(bigint)
	TO consent_ledger_recorder, consent_ledger_auditor, consent_ledger_admin;
