-- Training-set manifests (issue #17 item 4) and the right of access
-- report (item 3): export_dataset() and its refusals, the manifest it
-- records, dataset_includes() proofs, datasets_for_subject() across a
-- withdrawal, and subject_access_report().  (Offline checks of the proofs
-- and a dump/restore: test/tap/046_datasets.pl.)
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT consent_ledger.define_purpose('ds.train', 'model training');
CREATE TABLE ds_people (id int, name text);
INSERT INTO ds_people SELECT g, 'person ' || g FROM generate_series(7001, 7012) g;
SELECT consent_ledger.protect('ds_people', 'id');
SELECT consent_ledger.audit('ds_people');
SELECT consent_ledger.create_purpose_view('ds_people', 'ds.train', 'ds_people_train');
CREATE VIEW ds_plain AS SELECT * FROM ds_people;
SELECT count(consent_ledger.grant_consent(g, 'ds.train')) AS granted FROM generate_series(7001, 7012, 2) g;
CREATE ROLE regress_ds_ml;
CREATE ROLE regress_ds_other;
SELECT consent_ledger.authorize_purpose('regress_ds_ml', 'ds.train');
GRANT USAGE ON SCHEMA consent_ledger TO regress_ds_ml, regress_ds_other;
GRANT SELECT ON ds_people_train TO regress_ds_ml;
GRANT EXECUTE ON FUNCTION consent_ledger.export_dataset(text, anyelement) TO regress_ds_ml;

-- ---------------------------------------------------------------------
-- 1. Refusals
-- ---------------------------------------------------------------------
SET ROLE regress_ds_ml;
SELECT count(*) FROM consent_ledger.export_dataset(NULL, NULL::ds_people_train);
SELECT count(*) FROM consent_ledger.export_dataset('', NULL::ds_people_train);
SELECT count(*) FROM consent_ledger.export_dataset(repeat('x', 201), NULL::ds_people_train);
SELECT count(*) FROM consent_ledger.export_dataset('ds-1', NULL::ds_people);
SELECT count(*) FROM consent_ledger.export_dataset('ds-1', NULL::ds_plain);
SELECT count(*) FROM consent_ledger.export_dataset('ds-1', NULL::int);
RESET ROLE;
SET ROLE regress_ds_other;
SELECT count(*) FROM consent_ledger.export_dataset('ds-1', NULL::ds_people_train);
RESET ROLE;
GRANT EXECUTE ON FUNCTION consent_ledger.export_dataset(text, anyelement) TO regress_ds_other;
SET ROLE regress_ds_other;
-- EXECUTE is not enough: the rows are read with the caller's rights
SELECT count(*) FROM consent_ledger.export_dataset('ds-1', NULL::ds_people_train);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION consent_ledger.export_dataset(text, anyelement) FROM regress_ds_other;
SELECT to_regclass('consent_ledger.datasets') IS NULL AS no_manifest_ledger_yet;

-- ---------------------------------------------------------------------
-- 2. An export: only the consented rows, and their manifest
-- ---------------------------------------------------------------------
SET ROLE regress_ds_ml;
COPY (SELECT * FROM consent_ledger.export_dataset('ds-1', NULL::ds_people_train) ORDER BY id) TO STDOUT;
SELECT count(*) FROM consent_ledger.export_dataset('ds-1', NULL::ds_people_train);
RESET ROLE;
SELECT name, purpose, view, relation, subject_column, rows, subjects, exported_by,
       consent_horizon = (SELECT max(event_id) FROM consent_ledger.consent_events) AS horizon_is_the_latest_event,
       length(subjects_root) AS root_b64_len
FROM consent_ledger.datasets;
SELECT dataset, chunk, first_subject, last_subject, subjects FROM consent_ledger.dataset_subjects;
-- the read was an ordinary audited read of the purpose view, by the caller
-- (outcome records are queued, not waited for: wait, 30 s at most)
CREATE FUNCTION ds_wait_reads(n int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..600 LOOP
    IF (SELECT count(*) FROM consent_ledger.audit_log WHERE kind = 'read' AND role_name = 'regress_ds_ml'
        AND outcome = 'completed') >= n THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
SELECT ds_wait_reads(1);
SELECT relation, purpose, role_name, rows_returned, rows_withheld, outcome FROM consent_ledger.audit_log
WHERE kind = 'read' AND role_name = 'regress_ds_ml' AND outcome <> 'started' ORDER BY record_id;

-- ---------------------------------------------------------------------
-- 3. Proofs: included, not included (between its neighbours, or before
--    the first, after the last)
-- ---------------------------------------------------------------------
SELECT d->>'included' AS included, d->>'leaf_data' AS leaf_data, d->'proof'->>'leaf_index' AS leaf_index,
       d->'proof'->>'tree_size' AS tree_size, d->'proof'->>'root_hash' = d->>'subjects_root' AS root_ok,
       decode(d->'proof'->>'leaf_hash', 'base64') = sha256('\x00'::bytea || convert_to('7003', 'UTF8')) AS leaf_hash_ok
FROM (SELECT consent_ledger.dataset_includes('ds-1', '7003') AS d) s;
SELECT s.subject, d->>'included' AS included, d->'before'->>'subject' AS before, d->'after'->>'subject' AS after,
       d->'before'->'proof'->>'leaf_index' AS before_leaf, d->'after'->'proof'->>'leaf_index' AS after_leaf
FROM (VALUES ('7004'), ('7000'), ('7099'), ('70010'), ('')) s(subject),
     LATERAL (SELECT consent_ledger.dataset_includes('ds-1', s.subject) AS d) x ORDER BY 1;
SELECT consent_ledger.dataset_includes('ds-none', '7003');
SELECT consent_ledger.dataset_includes(NULL, '7003');

-- ---------------------------------------------------------------------
-- 4. A withdrawal: the datasets it affects, and the next export
-- ---------------------------------------------------------------------
SELECT dataset, rows, subjects FROM consent_ledger.datasets_for_subject('7003');
SELECT dataset FROM consent_ledger.datasets_for_subject('7004');
SELECT consent_ledger.withdraw_consent(7003, 'ds.train') > 0 AS withdrawn;
-- (a later event bounds when the withdrawal committed, for the report below)
SELECT consent_ledger.grant_consent(7100, 'ds.train') > 0 AS later_event;
SET ROLE regress_ds_ml;
SELECT count(*) FROM consent_ledger.export_dataset('ds-2', NULL::ds_people_train);
-- one export per name, for good
SELECT count(*) FROM consent_ledger.export_dataset('ds-1', NULL::ds_people_train);
RESET ROLE;
SELECT dataset FROM consent_ledger.datasets_for_subject('7003');
SELECT dataset FROM consent_ledger.datasets_for_subject('7005') ORDER BY 1;
SELECT consent_ledger.dataset_includes('ds-2', '7003')->>'included' AS in_ds2;
SELECT d1.subjects_root <> d2.subjects_root AS roots_differ FROM consent_ledger.datasets d1, consent_ledger.datasets d2
WHERE d1.name = 'ds-1' AND d2.name = 'ds-2';
SELECT * FROM consent_ledger.datasets_for_subject(NULL);
SELECT relation, rows, valid, problem FROM consent_ledger.verify('consent_ledger.datasets');
SELECT relation, rows, valid, problem FROM consent_ledger.verify('consent_ledger.dataset_subjects');

-- ---------------------------------------------------------------------
-- 5. The right of access report
-- ---------------------------------------------------------------------
UPDATE ds_people SET name = 'renamed' WHERE id = 7003;
SELECT ds_wait_reads(2);
SELECT r->>'type' AS type, r->>'subject' AS subject,
       jsonb_array_length(r->'consent_history') AS events,
       (SELECT string_agg(e->>'action', ',' ORDER BY (e->>'event_id')::bigint) FROM jsonb_array_elements(r->'consent_history') e) AS actions,
       (SELECT string_agg(e->>'purpose' || ':' || jsonb_array_length(e->'periods'), ',') FROM jsonb_array_elements(r->'eligibility') e
         WHERE e->>'purpose' LIKE 'ds.%') AS ds_periods,
       (SELECT string_agg(t->>'relation' || ' rows ' || (t->>'rows_now'), ',') FROM jsonb_array_elements(r->'tables') t) AS tables,
       (SELECT string_agg(c->>'operation', ',') FROM jsonb_array_elements(r->'changes') c) AS changes,
       (SELECT string_agg(x->>'relation' || ' ' || (x->>'role') || ' ' || (x->>'rows_returned'), ',' ORDER BY (x->>'record_id')::bigint)
          FROM jsonb_array_elements(r->'reads') x WHERE x->>'role' = 'regress_ds_ml') AS ml_reads
FROM (SELECT consent_ledger.subject_access_report('7003') AS r) s;
-- the period the subject's rows were eligible ends at the withdrawal
SELECT (p->>'to')::timestamptz = (SELECT recorded_at FROM consent_ledger.consent_events
                                   WHERE subject = '7003' AND action = 'withdraw' AND purpose = 'ds.train') AS ends_at_withdrawal
FROM jsonb_array_elements(consent_ledger.subject_access_report('7003')->'eligibility') e,
     jsonb_array_elements(e->'periods') p WHERE e->>'purpose' = 'ds.train';
-- a subject who never consented: no eligibility for ds.train, no ml reads
SELECT jsonb_array_length(r->'consent_history') AS events,
       (SELECT count(*) FROM jsonb_array_elements(r->'eligibility') e WHERE e->>'purpose' = 'ds.train') AS ds_train_periods,
       (SELECT count(*) FROM jsonb_array_elements(r->'reads') x WHERE x->>'role' = 'regress_ds_ml') AS ml_reads
FROM (SELECT consent_ledger.subject_access_report('7004') AS r) s;
-- a window before anything happened
SELECT jsonb_array_length(r->'reads') AS reads, jsonb_array_length(r->'changes') AS changes
FROM (SELECT consent_ledger.subject_access_report('7003', '2000-01-01', '2000-01-02') AS r) s;
SELECT consent_ledger.subject_access_report(NULL);
SELECT consent_ledger.subject_access_report('7003', now(), now() - interval '1 day');
SET ROLE regress_ds_ml;
SELECT consent_ledger.subject_access_report('7003');
SELECT consent_ledger.dataset_includes('ds-1', '7003');
RESET ROLE;

REVOKE ALL ON ds_people_train FROM regress_ds_ml;
REVOKE EXECUTE ON FUNCTION consent_ledger.export_dataset(text, anyelement) FROM regress_ds_ml;
REVOKE USAGE ON SCHEMA consent_ledger FROM regress_ds_ml, regress_ds_other;
SELECT consent_ledger.revoke_purpose('regress_ds_ml', 'ds.train');
DROP ROLE regress_ds_ml;
DROP ROLE regress_ds_other;
