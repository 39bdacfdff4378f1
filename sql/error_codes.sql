-- SQLSTATEs and messages of refusals (issue item 10): each error has its
-- own SQLSTATE and names what it is about (never "(null)").

-- row_hash() of a relation that does not exist
DO $$
BEGIN
	PERFORM consent_ledger.row_hash(4294967295::oid::regclass, ROW(1));
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE '% %', SQLSTATE, SQLERRM;
END
$$;

-- row_hash() of a row of another relation
CREATE TABLE ec_a (id int);
CREATE TABLE ec_b (id int);
INSERT INTO ec_b VALUES (1);
DO $$
BEGIN
	PERFORM consent_ledger.row_hash('ec_a', b) FROM ec_b b;
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE '% %', SQLSTATE, SQLERRM;
END
$$;
DROP TABLE ec_a, ec_b;
