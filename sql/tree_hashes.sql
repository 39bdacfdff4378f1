-- Stored subtree hashes (README "Stored tree hashes"): the sealer stores
-- the hash of every complete subtree of height 8 and 16 (levels 1, 2);
-- inclusion and consistency proofs are built from them and equal the RFC
-- 9162 proofs recomputed here from the leaves, for every size 1..70 and
-- every leaf, and around the tile edges of a 70000-leaf log; verify()
-- recomputes every stored hash, and a tampered one is reported, while a
-- proof built from it fails the client's check against the signed root.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Only seal() seals in this file (deterministic log rows).
ALTER SYSTEM SET consent_ledger.seal_interval = '1h';
SELECT pg_reload_conf();
SELECT consent_ledger.seal() >= 0 AND consent_ledger.seal() = 0 AS sealer_settled;

-- The reference, from the RFC's recursive definitions over leaf hashes
-- taken from the log (nothing of tiles.c or merkle.c).
CREATE TEMP TABLE ref_leaf (lid int, i bigint, h bytea, PRIMARY KEY (lid, i));
CREATE FUNCTION ref_load(rel regclass) RETURNS void LANGUAGE sql AS $$
  DELETE FROM ref_leaf WHERE lid = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = rel);
  INSERT INTO ref_leaf
  SELECT l.ledger_id, l.first_leaf + k, substr(l.leaves, (k * 32 + 1)::int, 32)
    FROM consent_ledger.log l, generate_series(0, l.nleaves - 1) k
   WHERE l.ledger_id = (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = rel);
$$;
-- perfect subtrees, bottom up: ref_node(lid, height, j) = MTH of leaves j*2^height ..
CREATE TEMP TABLE ref_node (lid int, height int, j bigint, h bytea, PRIMARY KEY (lid, height, j));
CREATE FUNCTION ref_build(rel regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  id int := (SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = rel);
  ht int := 0;
BEGIN
  PERFORM ref_load(rel);
  DELETE FROM ref_node WHERE lid = id;
  INSERT INTO ref_node SELECT id, 0, i, h FROM ref_leaf WHERE lid = id;
  LOOP
    INSERT INTO ref_node
    SELECT id, ht + 1, j / 2, sha256('\x01'::bytea || string_agg(h, ''::bytea ORDER BY j))
      FROM ref_node WHERE lid = id AND height = ht
     GROUP BY j / 2 HAVING count(*) = 2;
    EXIT WHEN NOT FOUND;
    ht := ht + 1;
  END LOOP;
END $$;
CREATE FUNCTION ref_mth(id int, lo bigint, hi bigint) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE k bigint := 1; ht int := 0;
BEGIN
  WHILE k < hi - lo LOOP k := k * 2; ht := ht + 1; END LOOP;
  IF k = hi - lo THEN
    RETURN (SELECT h FROM ref_node WHERE lid = id AND height = ht AND j = lo / k);
  END IF;
  k := k / 2;
  RETURN sha256('\x01'::bytea || ref_mth(id, lo, lo + k) || ref_mth(id, lo + k, hi));
END $$;
CREATE FUNCTION ref_path(id int, m bigint, lo bigint, hi bigint) RETURNS bytea[] LANGUAGE plpgsql AS $$
DECLARE k bigint := 1;
BEGIN
  IF hi - lo = 1 THEN RETURN '{}'; END IF;
  WHILE k * 2 < hi - lo LOOP k := k * 2; END LOOP;
  IF m < k THEN
    RETURN ref_path(id, m, lo, lo + k) || ref_mth(id, lo + k, hi);
  END IF;
  RETURN ref_path(id, m - k, lo + k, hi) || ref_mth(id, lo, lo + k);
END $$;
CREATE FUNCTION ref_subproof(id int, m bigint, lo bigint, hi bigint, b boolean) RETURNS bytea[] LANGUAGE plpgsql AS $$
DECLARE k bigint := 1;
BEGIN
  IF m = hi - lo THEN
    RETURN CASE WHEN b THEN '{}'::bytea[] ELSE ARRAY[ref_mth(id, lo, hi)] END;
  END IF;
  WHILE k * 2 < hi - lo LOOP k := k * 2; END LOOP;
  IF m <= k THEN
    RETURN ref_subproof(id, m, lo, lo + k, b) || ref_mth(id, lo + k, hi);
  END IF;
  RETURN ref_subproof(id, m - k, lo + k, hi, false) || ref_mth(id, lo, lo + k);
END $$;
-- the client's check (RFC 9162 2.1.3.2)
CREATE FUNCTION client_accepts(p jsonb, signed_root bytea) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  fn bigint := (p->>'leaf_index')::bigint;
  sn bigint := (p->>'tree_size')::bigint - 1;
  r bytea := decode(p->>'leaf_hash', 'base64');
  x bytea;
BEGIN
  FOR x IN SELECT decode(e, 'base64') FROM jsonb_array_elements_text(p->'path') e LOOP
    IF sn = 0 THEN RETURN false; END IF;
    IF fn % 2 = 1 OR fn = sn THEN
      r := sha256('\x01'::bytea || x || r);
      IF fn % 2 = 0 THEN
        WHILE fn <> 0 AND fn % 2 = 0 LOOP fn := fn / 2; sn := sn / 2; END LOOP;
      END IF;
    ELSE
      r := sha256('\x01'::bytea || r || x);
    END IF;
    fn := fn / 2; sn := sn / 2;
  END LOOP;
  RETURN sn = 0 AND r = signed_root;
END $$;
CREATE FUNCTION json_path(p jsonb) RETURNS bytea[] LANGUAGE sql AS $$
  SELECT coalesce(array_agg(decode(e, 'base64') ORDER BY o), '{}')
    FROM jsonb_array_elements_text(p->'path') WITH ORDINALITY AS t(e, o)
$$;
CREATE FUNCTION lid(rel regclass) RETURNS int LANGUAGE sql AS $$
  SELECT ledger_id FROM consent_ledger.ledgers WHERE relid = rel
$$;
CREATE FUNCTION signed_root(rel regclass) RETURNS bytea LANGUAGE sql AS $$
  SELECT root FROM consent_ledger.checkpoints WHERE ledger_id = lid(rel) ORDER BY seq DESC LIMIT 1
$$;

-- 70 leaves in rounds of 1, 2, ..., 11 and 4 (log rows of many sizes)
CREATE TABLE small (id int);
SELECT consent_ledger.create_ledger('small');
DO $$
DECLARE n int := 0;
BEGIN
  FOR r IN 1..11 LOOP
    INSERT INTO small SELECT n + g FROM generate_series(1, r) g;
    n := n + r;
    COMMIT;
    PERFORM consent_ledger.seal();
  END LOOP;
  INSERT INTO small SELECT n + g FROM generate_series(1, 4) g;
  COMMIT;
  PERFORM consent_ledger.seal();
END $$;
SELECT count(*) AS log_rows, sum(nleaves) AS leaves FROM consent_ledger.log WHERE ledger_id = lid('small');
SELECT ref_build('small');
-- every inclusion proof of every size 1..70 equals the reference
SELECT count(*) AS inclusion_proofs,
       count(*) FILTER (WHERE json_path(p) = ref_path(lid('small'), i, 0, n)
                          AND decode(p->>'root_hash', 'base64') = ref_mth(lid('small'), 0, n)
                          AND decode(p->>'leaf_hash', 'base64') = ref_mth(lid('small'), i, i + 1)) AS equal
  FROM generate_series(1, 70) n, generate_series(0, n - 1) i,
       LATERAL consent_ledger.inclusion_proof('small', i, n) p;
-- and every consistency proof
SELECT count(*) AS consistency_proofs,
       count(*) FILTER (WHERE json_path(p) = ref_subproof(lid('small'), o, 0, n, true)
                          AND decode(p->>'old_root', 'base64') = ref_mth(lid('small'), 0, o)
                          AND decode(p->>'new_root', 'base64') = ref_mth(lid('small'), 0, n)) AS equal
  FROM generate_series(1, 70) n, generate_series(1, n) o,
       LATERAL consent_ledger.consistency_proof('small', o, n) p;
SELECT count(*) AS stored_below_256 FROM consent_ledger.tree_hashes WHERE ledger_id = lid('small');

-- 70000 leaves: levels 1 and 2 are stored (273 and 1 nodes)
CREATE TABLE big (id int);
SELECT consent_ledger.create_ledger('big');
INSERT INTO big SELECT g FROM generate_series(1, 300) g;
SELECT consent_ledger.seal() AS sealed;
INSERT INTO big SELECT g FROM generate_series(301, 65600) g;
SELECT consent_ledger.seal() AS sealed;
INSERT INTO big SELECT g FROM generate_series(65601, 69999) g;
SELECT consent_ledger.seal() AS sealed;
INSERT INTO big VALUES (70000);
SELECT consent_ledger.seal() AS sealed;
SELECT ref_build('big');
SELECT level, count(*), min(idx), max(idx) FROM consent_ledger.tree_hashes
 WHERE ledger_id = lid('big') GROUP BY level ORDER BY level;
-- each stored hash is the subtree's hash
SELECT count(*) AS stored, count(*) FILTER (WHERE t.hash = r.h) AS equal_to_reference
  FROM consent_ledger.tree_hashes t
  LEFT JOIN ref_node r ON r.lid = t.ledger_id AND r.height = 8 * t.level AND r.j = t.idx
 WHERE t.ledger_id = lid('big');
CREATE TEMP TABLE big_cases AS
SELECT n, i FROM unnest(ARRAY[255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 69999, 70000]) n,
       unnest(ARRAY[0, 1, 254, 255, 256, 257, 300, 65535, 65536, 69998, 69999]) i
 WHERE i < n;
SELECT count(*) AS inclusion_proofs,
       count(*) FILTER (WHERE json_path(p) = ref_path(lid('big'), i, 0, n)
                          AND decode(p->>'root_hash', 'base64') = ref_mth(lid('big'), 0, n)) AS equal
  FROM big_cases, LATERAL consent_ledger.inclusion_proof('big', i, n) p;
SELECT count(*) AS consistency_proofs,
       count(*) FILTER (WHERE json_path(p) = ref_subproof(lid('big'), o, 0, n, true)
                          AND decode(p->>'old_root', 'base64') = ref_mth(lid('big'), 0, o)
                          AND decode(p->>'new_root', 'base64') = ref_mth(lid('big'), 0, n)) AS equal
  FROM unnest(ARRAY[1, 255, 256, 257, 300, 65535, 65536, 65537, 69999]) o,
       unnest(ARRAY[256, 257, 65536, 65600, 70000]) n,
       LATERAL consent_ledger.consistency_proof('big', o, n) p
 WHERE o <= n;
SELECT client_accepts(consent_ledger.inclusion_proof('big', 0), signed_root('big')) AS leaf_0_accepted,
       client_accepts(consent_ledger.inclusion_proof('big', 69999), signed_root('big')) AS leaf_69999_accepted;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('big');

-- a superuser changes a stored hash (level 1, index 1: leaves 256..511)
UPDATE consent_ledger.tree_hashes SET hash = sha256('forged')
 WHERE ledger_id = lid('big') AND level = 1 AND idx = 1;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('big');
-- a proof that uses it fails the client's check against the signed root;
-- one that does not still holds
SELECT client_accepts(consent_ledger.inclusion_proof('big', 0), signed_root('big')) AS leaf_0_accepted,
       client_accepts(consent_ledger.inclusion_proof('big', 69999), signed_root('big')) AS leaf_69999_accepted;
-- a stored hash of a subtree the log does not complete is reported too
UPDATE consent_ledger.tree_hashes SET hash = r.h
  FROM ref_node r
 WHERE r.lid = lid('big') AND r.height = 8 AND r.j = 1
   AND ledger_id = lid('big') AND level = 1 AND idx = 1;
INSERT INTO consent_ledger.tree_hashes VALUES (lid('big'), 1, 273, sha256('extra'));
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('big');
DELETE FROM consent_ledger.tree_hashes WHERE ledger_id = lid('big') AND level = 1 AND idx = 273;
-- missing stored hashes are recomputed from the leaves: same proofs, valid
DELETE FROM consent_ledger.tree_hashes WHERE ledger_id = lid('big') AND level = 1 AND idx < 10;
SELECT count(*) AS inclusion_proofs,
       count(*) FILTER (WHERE json_path(p) = ref_path(lid('big'), i, 0, n)
                          AND decode(p->>'root_hash', 'base64') = ref_mth(lid('big'), 0, n)) AS equal
  FROM big_cases, LATERAL consent_ledger.inclusion_proof('big', i, n) p;
SELECT relation, rows, pending, valid, problem FROM consent_ledger.verify('big');

DROP TABLE big_cases;
SELECT consent_ledger.retire_ledger('small');
SELECT consent_ledger.retire_ledger('big');
DROP TABLE small, big;
ALTER SYSTEM RESET consent_ledger.seal_interval;
SELECT pg_reload_conf();
