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
			'action', e.action,
			-- UTC, to the microsecond: what consent-ledger-verify prints from the leaf
			'expires_at', CASE WHEN pg_catalog.isfinite(e.expires_at)
							   THEN pg_catalog.to_char(pg_catalog.timezone('UTC', e.expires_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
							   ELSE e.expires_at::text END,
			'recorded_at', pg_catalog.to_char(pg_catalog.timezone('UTC', e.recorded_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
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

/*
 * The right of access (GDPR Art. 15; README "Right of access report"):
 * what the ledgers say about one subject between two moments.  consent
 * history and eligibility are exact (from the consent ledger alone);
 * the reads are a superset of the reads that returned the subject's rows,
 * with the exception the report itself states (member "semantics").
 */
CREATE FUNCTION consent_ledger.subject_access_report(subject text,
		"from" timestamptz DEFAULT '-infinity', "to" timestamptz DEFAULT now())
	RETURNS jsonb
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s text := subject_access_report.subject;
	t0 timestamptz := subject_access_report."from";
	t1 timestamptz := subject_access_report."to";
	history jsonb := '[]';
	keys jsonb := '[]';
	tables jsonb := '[]';
	eligibility jsonb := '[]';
	changes jsonb := '[]';
	reads jsonb := '[]';
	points timestamptz[];
	p record;
	r record;
	m tstzmultirange;
	g tstzmultirange;
	was boolean;
	since timestamptz;
	now_in boolean;
	purposes text[] := '{}';
	ranges tstzmultirange[] := '{}';
	relids oid[] := '{}';
	audited oid[] := '{}';
	n bigint;
	has_subject_cols boolean;
BEGIN
	IF s IS NULL OR t0 IS NULL OR t1 IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'subject, from and to must not be NULL';
	END IF;
	IF t0 OPERATOR(pg_catalog.>) t1 THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = 'from lies after to',
			HINT = 'Give the period as from <= to.';
	END IF;

	-- consent history (every event up to "to": the state at "from" depends on earlier ones)
	IF consent_ledger._consent_events_checked() THEN
		SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
				'event_id', e.event_id, 'purpose', e.purpose, 'action', e.action,
				'expires_at', e.expires_at, 'recorded_at', e.recorded_at, 'recorded_by', e.recorded_by,
				'subject_signed', e.subject_signature IS NOT NULL) ORDER BY e.event_id), '[]')
		INTO history
		FROM consent_ledger.consent_events e
		WHERE e.subject OPERATOR(pg_catalog.=) s AND e.recorded_at OPERATOR(pg_catalog.<=) t1;
		SELECT pg_catalog.array_agg(DISTINCT x ORDER BY x) INTO points
		FROM (SELECT t0 AS x
			  UNION ALL SELECT e.recorded_at FROM consent_ledger.consent_events e
			   WHERE e.subject OPERATOR(pg_catalog.=) s
				 AND e.recorded_at OPERATOR(pg_catalog.>) t0 AND e.recorded_at OPERATOR(pg_catalog.<=) t1
			  UNION ALL SELECT e.expires_at FROM consent_ledger.consent_events e
			   WHERE e.subject OPERATOR(pg_catalog.=) s
				 AND e.expires_at OPERATOR(pg_catalog.>) t0 AND e.expires_at OPERATOR(pg_catalog.<=) t1) c;
	END IF;
	IF pg_catalog.to_regclass('consent_ledger.subject_keys') IS NOT NULL THEN
		SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
				'key_no', k.key_no, 'public_key', k.public_key, 'registered_at', k.registered_at)
				ORDER BY k.key_no), '[]')
		INTO keys FROM consent_ledger.subject_keys k WHERE k.subject OPERATOR(pg_catalog.=) s;
	END IF;

	-- eligibility: per purpose, when the subject's rows could be read for it
	FOR p IN SELECT q.purpose, q.legal_basis FROM consent_ledger.purposes q ORDER BY q.purpose LOOP
		IF p.legal_basis OPERATOR(pg_catalog.<>) 'consent' THEN
			m := pg_catalog.tstzmultirange(pg_catalog.tstzrange(t0, t1, '[]'));
		ELSE
			m := '{}';
			was := false;
			FOREACH since IN ARRAY coalesce(points, ARRAY[t0]) LOOP
				now_in := consent_ledger.has_consent(s, p.purpose, since);
				IF now_in AND NOT was THEN
					m := m OPERATOR(pg_catalog.+) pg_catalog.tstzmultirange(pg_catalog.tstzrange(since, t1, '[]'));
				ELSIF was AND NOT now_in THEN
					m := m OPERATOR(pg_catalog.-) pg_catalog.tstzmultirange(pg_catalog.tstzrange(since, t1, '[]'));
				END IF;
				was := now_in;
			END LOOP;
		END IF;
		-- A withdrawal takes effect when its transaction commits: after its
		-- recorded_at, before the first event of a later transaction
		-- (recorders hold their lock until they end).  Reads are matched
		-- over that window too, so that none is left out.
		g := '{}';
		IF p.legal_basis OPERATOR(pg_catalog.=) 'consent' AND consent_ledger._consent_events_checked() THEN
			SELECT coalesce(pg_catalog.range_agg(pg_catalog.tstzrange(w.recorded_at,
					coalesce((SELECT n.recorded_at FROM consent_ledger.consent_events n
							  WHERE n.event_id OPERATOR(pg_catalog.>) w.event_id
								AND n.ledger_txn OPERATOR(pg_catalog.<>) w.ledger_txn
							  ORDER BY n.event_id LIMIT 1),
							 GREATEST(t1, w.recorded_at)), '[]')), '{}')
			INTO g
			FROM consent_ledger.consent_events w
			WHERE w.subject OPERATOR(pg_catalog.=) s AND w.action OPERATOR(pg_catalog.=) 'withdraw'
			  AND w.recorded_at OPERATOR(pg_catalog.<=) t1
			  AND w.purpose IN (WITH RECURSIVE anc(q) AS (SELECT p.purpose UNION
								SELECT x.parent FROM consent_ledger.purposes x JOIN anc ON x.purpose OPERATOR(pg_catalog.=) anc.q
								WHERE x.parent IS NOT NULL) SELECT anc.q FROM anc);
		END IF;
		IF NOT pg_catalog.isempty(m OPERATOR(pg_catalog.+) g) THEN
			purposes := purposes OPERATOR(pg_catalog.||) p.purpose;
			ranges := ranges OPERATOR(pg_catalog.||) (m OPERATOR(pg_catalog.+) g);
		END IF;
		IF NOT pg_catalog.isempty(m) THEN
			eligibility := eligibility OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
				'purpose', p.purpose, 'legal_basis', p.legal_basis,
				'periods', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
								'from', pg_catalog.lower(u), 'to', pg_catalog.upper(u)) ORDER BY u)
							FROM pg_catalog.unnest(m) u)));
		END IF;
	END LOOP;

	-- the protected tables holding the subject's rows: now, or by an audited change naming them
	has_subject_cols := EXISTS
		(SELECT FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('consent_ledger.audit_log')
		   AND a.attname OPERATOR(pg_catalog.=) 'new_subject' AND NOT a.attisdropped);
	IF has_subject_cols THEN
		EXECUTE $q$
			SELECT coalesce(pg_catalog.array_agg(DISTINCT a.relid), '{}') FROM consent_ledger.audit_log a
			WHERE a.kind OPERATOR(pg_catalog.=) 'change'
			  AND (a.old_subject OPERATOR(pg_catalog.=) $1 OR a.new_subject OPERATOR(pg_catalog.=) $1)$q$
		INTO audited USING s;
	END IF;
	FOR r IN SELECT pr.relid, pr.subject_column FROM consent_ledger.protected pr ORDER BY pr.relid::text LOOP
		EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s t WHERE (t.%I)::text OPERATOR(pg_catalog.=) $1',
								  r.relid, r.subject_column) INTO n USING s;
		IF n OPERATOR(pg_catalog.>) 0 OR r.relid::oid OPERATOR(pg_catalog.=) ANY (audited) THEN
			relids := relids OPERATOR(pg_catalog.||) r.relid::oid;
			tables := tables OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
				'relation', r.relid::text, 'subject_column', r.subject_column, 'rows_now', n));
		END IF;
	END LOOP;

	IF pg_catalog.to_regclass('consent_ledger.audit_log') IS NOT NULL THEN
		IF has_subject_cols THEN
			EXECUTE $q$
				SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
						'at', a.at, 'relation', a.relation, 'operation', a.operation, 'outcome', a.outcome,
						'role', a.role_name, 'session_user', a.session_user_name, 'record_id', a.record_id)
						ORDER BY a.at, a.record_id), '[]')
				FROM consent_ledger.audit_log a
				WHERE a.kind OPERATOR(pg_catalog.=) 'change'
				  AND (a.old_subject OPERATOR(pg_catalog.=) $1 OR a.new_subject OPERATOR(pg_catalog.=) $1)
				  AND a.at OPERATOR(pg_catalog.>=) $2 AND a.at OPERATOR(pg_catalog.<=) $3$q$
			INTO changes USING s, t0, t1;
		END IF;
		-- reads that could have returned the subject's rows.  A read's consent
		-- is decided some time between its start and its end; its start is
		-- taken no later than the start of the span during which its session
		-- had a read of the relation open (nested reads and cursors share a
		-- span), and the read is listed when [that, its end] meets a period
		-- of eligibility or a withdrawal's commit window.
		WITH ra AS (
			SELECT a.*, pg_catalog.sum(CASE WHEN a.outcome OPERATOR(pg_catalog.=) 'started' THEN 1 ELSE -1 END)
						OVER (PARTITION BY a.session_id, a.relid ORDER BY a.at, a.record_id
							  ROWS UNBOUNDED PRECEDING) AS open_after
			FROM consent_ledger.audit_log a
			LEFT JOIN consent_ledger.purpose_views v ON v.view::oid OPERATOR(pg_catalog.=) a.relid
			WHERE a.kind OPERATOR(pg_catalog.=) 'read' AND a.at OPERATOR(pg_catalog.<=) t1
			  AND coalesce(v.relid::oid, a.relid) OPERATOR(pg_catalog.=) ANY (relids)),
		rd AS (
			SELECT ra.*, pg_catalog.max(ra.at) FILTER (WHERE ra.outcome OPERATOR(pg_catalog.=) 'started'
														 AND ra.open_after OPERATOR(pg_catalog.<=) 1)
						OVER (PARTITION BY ra.session_id, ra.relid ORDER BY ra.at, ra.record_id
							  ROWS UNBOUNDED PRECEDING) AS started_at
			FROM ra)
		SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
				'at', rd.at, 'started_at', rd.started_at, 'relation', rd.relation, 'purpose', rd.purpose,
				'role', rd.role_name, 'session_user', rd.session_user_name, 'client_addr', rd.client_addr,
				'application_name', rd.application_name, 'rows_returned', rd.rows_returned,
				'rls_bypassed', rd.rls_bypassed, 'outcome', rd.outcome, 'record_id', rd.record_id)
				ORDER BY rd.at, rd.record_id), '[]')
		INTO reads
		FROM rd
		WHERE rd.outcome OPERATOR(pg_catalog.=) ANY (ARRAY['completed', 'failed'])
		  AND rd.rows_returned OPERATOR(pg_catalog.>) 0
		  AND rd.at OPERATOR(pg_catalog.>=) t0
		  AND (rd.rls_bypassed
			   OR EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(purposes), pg_catalog.unnest(ranges)) AS u(purpose, m)
						  WHERE u.purpose OPERATOR(pg_catalog.=) rd.purpose
							AND u.m OPERATOR(pg_catalog.&&)
								pg_catalog.tstzrange(LEAST(coalesce(rd.started_at, rd.at), rd.at), rd.at, '[]')));
	END IF;

	RETURN pg_catalog.jsonb_build_object(
		'type', 'consent_ledger/subject-access-report/v1',
		'subject', s, 'from', t0, 'to', t1, 'generated_at', pg_catalog.clock_timestamp(),
		'consent_history', history,
		'subject_keys', keys,
		'eligibility', eligibility,
		'tables', tables,
		'changes', changes,
		'reads', reads,
		'semantics', pg_catalog.jsonb_build_object(
			'consent_history', 'exact: every event of the consent ledger for the subject recorded up to "to"',
			'eligibility', 'exact as recorded: the periods in which the consent checks let the subject''s rows through for each purpose (consent, its parents'', expiry and withdrawal), from the events'' recording times, or, for a purpose whose legal basis is not consent, the whole period. An event takes effect when its transaction commits, a little after it was recorded',
			'changes', 'exact for tables whose changes are audited by an audit ledger that records subjects (1.5 on); none otherwise',
			'reads', 'a superset of the reads that returned the subject''s rows: an audit record says how many rows a statement returned, not whose; listed are the completed or failed reads that returned rows, of a protected table (or purpose view over it) that holds the subject''s rows now or whose audited changes name the subject, that ran (from started_at, the start of the span in which its session had reads of the relation open, to at, its end) at some moment when the subject''s rows were eligible for their purpose, or after a withdrawal until the first event of a later transaction (its commit lies before it; until "to" when there is none yet), or by a reader that bypassed row-level security. Not listed: reads of a table that held the subject''s rows only in the past when its changes were not audited'));
END
$$;
COMMENT ON FUNCTION consent_ledger.subject_access_report(text, timestamptz, timestamptz) IS
	'the right of access (GDPR Art. 15): a subject''s consent history, keys, eligibility per purpose, audited changes and the reads that could have returned their rows, between two moments';
REVOKE ALL ON FUNCTION consent_ledger.subject_access_report(text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.subject_access_report(text, timestamptz, timestamptz)
	TO consent_ledger_auditor, consent_ledger_admin;

/*
 * Training-set manifests (README "Dataset manifests"; src/dataset.c): an
 * extraction through a purpose view records what it held, so that the
 * datasets (and models) a withdrawal affects can be listed and a person's
 * presence or absence proved.  The ledgers consent_ledger.datasets and
 * consent_ledger.dataset_subjects are made on first use.
 */
CREATE FUNCTION consent_ledger.export_dataset(name text, purpose_view anyelement)
	RETURNS SETOF anyelement
	AS 'MODULE_PATHNAME', 'cl_export_dataset' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION consent_ledger.export_dataset(text, anyelement) IS
	'returns the rows of a purpose view (pass NULL::view) and records the manifest of the dataset they form: purpose, row count, consent state, Merkle root of its subjects';
CREATE FUNCTION consent_ledger.dataset_includes(dataset text, subject text) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'cl_dataset_includes' LANGUAGE C STABLE;
COMMENT ON FUNCTION consent_ledger.dataset_includes(text, text) IS
	'whether a dataset holds a subject''s rows, with an inclusion proof of its leaf or of the two leaves it would sort between';
CREATE FUNCTION consent_ledger.datasets_for_subject(subject text)
	RETURNS TABLE(dataset text, purpose text, view text, relation text, "rows" bigint, subjects bigint,
				  subjects_root text, exported_at timestamptz, exported_by text)
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF subject IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
			MESSAGE = 'subject must not be NULL';
	END IF;
	IF pg_catalog.to_regclass('consent_ledger.dataset_subjects') IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY
	SELECT d.name, d.purpose, d.view, d.relation, d.rows, d.subjects, d.subjects_root, d.exported_at, d.exported_by
	FROM consent_ledger.datasets d
	WHERE EXISTS (SELECT FROM consent_ledger.dataset_subjects c
				  WHERE c.dataset OPERATOR(pg_catalog.=) d.name
					AND c.first_subject COLLATE "C" OPERATOR(pg_catalog.<=) datasets_for_subject.subject COLLATE "C"
					AND c.last_subject COLLATE "C" OPERATOR(pg_catalog.>=) datasets_for_subject.subject COLLATE "C"
					AND datasets_for_subject.subject OPERATOR(pg_catalog.=) ANY (c.subjects))
	ORDER BY d.exported_at, d.name;
END
$$;
COMMENT ON FUNCTION consent_ledger.datasets_for_subject(text) IS
	'the datasets (and so the models trained on them) that hold a subject''s rows: what a withdrawal affects';
REVOKE ALL ON FUNCTION consent_ledger.export_dataset(text, anyelement),
	consent_ledger.dataset_includes(text, text),
	consent_ledger.datasets_for_subject(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_ledger.export_dataset(text, anyelement) TO consent_ledger_admin;
GRANT EXECUTE ON FUNCTION consent_ledger.dataset_includes(text, text),
	consent_ledger.datasets_for_subject(text)
	TO consent_ledger_auditor, consent_ledger_admin;
