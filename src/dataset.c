/*-------------------------------------------------------------------------
 * dataset.c
 *	  Training-set manifests (README "Dataset manifests").
 *
 * export_dataset(name, NULL::purpose_view) returns every row the caller
 * may read through a purpose view -- the read is an ordinary, consent-
 * checked and audited read of the view, run as the caller -- and, in the
 * same transaction, records a manifest in the ledger
 * consent_ledger.datasets: the dataset's name, purpose, view, row count,
 * the consent state it was read under, and a Merkle root (RFC 9162) over
 * the distinct subjects of its rows, sorted bytewise.  The sorted subjects
 * themselves go, in chunks, to the ledger consent_ledger.dataset_subjects,
 * from which dataset_includes() proves that a subject is in a dataset (an
 * inclusion proof of its leaf) or is not (inclusion proofs of the two
 * neighbouring leaves, between which the subject would sort), and
 * datasets_for_subject() lists the datasets a subject is in: the models a
 * withdrawal affects.
 *
 * The rows are materialized in a tuplestore (spilling to disk beyond
 * work_mem) and returned after the manifest is written: a manifest exists
 * exactly when its transaction committed after reading every row.
 *
 * A subject's leaf is SHA-256(0x00 || subject's text form): the text the
 * consent checks compare (a char(n) without trailing blanks).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "consent_ledger.h"
#include "note.h"

PG_FUNCTION_INFO_V1(cl_export_dataset);
PG_FUNCTION_INFO_V1(cl_dataset_includes);

#define DATASET_CHUNK		10000	/* subjects per row of dataset_subjects */
#define DATASET_MAX_NAME	200

static const char *const create_datasets_sql[] = {
	"CREATE TABLE consent_ledger.datasets ("
	" name pg_catalog.text PRIMARY KEY,"
	" purpose pg_catalog.text NOT NULL,"
	" view pg_catalog.text NOT NULL,"
	" relation pg_catalog.text NOT NULL,"
	" subject_column pg_catalog.name NOT NULL,"
	" rows pg_catalog.int8 NOT NULL,"
	" subjects pg_catalog.int8 NOT NULL,"
	" subjects_root pg_catalog.text NOT NULL,"
	" consent_horizon pg_catalog.int8 NOT NULL,"
	" consent_checkpoint_size pg_catalog.int8,"
	" consent_checkpoint_root pg_catalog.text,"
	" exported_at pg_catalog.timestamptz NOT NULL,"
	" exported_by pg_catalog.text NOT NULL)",
	"COMMENT ON TABLE consent_ledger.datasets IS "
	"'training-set manifests: every export_dataset(), with the Merkle root of the subjects it held'",
	"CREATE TABLE consent_ledger.dataset_subjects ("
	" dataset pg_catalog.text NOT NULL,"
	" chunk pg_catalog.int4 NOT NULL,"
	" first_subject pg_catalog.text NOT NULL,"
	" last_subject pg_catalog.text NOT NULL,"
	" subjects pg_catalog.text[] NOT NULL,"
	" PRIMARY KEY (dataset, chunk))",
	/* a chunk is hashed whole by the ledger; compressing it too costs more than it saves */
	"ALTER TABLE consent_ledger.dataset_subjects ALTER COLUMN subjects SET STORAGE EXTERNAL",
	"COMMENT ON TABLE consent_ledger.dataset_subjects IS "
	"'the subjects of each dataset, sorted bytewise, in chunks: the leaves of its subjects_root'",
	"REVOKE ALL ON consent_ledger.datasets, consent_ledger.dataset_subjects FROM PUBLIC",
	"GRANT SELECT ON consent_ledger.datasets, consent_ledger.dataset_subjects "
	"TO consent_ledger_auditor, consent_ledger_admin",
	NULL
};

typedef struct Subject
{
	char	   *s;
	int			len;
} Subject;

static char *subject_text(Datum d, Oid typid, Oid outfn);

static inline int
subject_cmp(const Subject *x, const Subject *y)
{
	int			c = memcmp(x->s, y->s, Min(x->len, y->len));

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* qsort specialized for the subjects sorted per export (lib/sort_template.h) */
#define ST_SORT sort_subjects
#define ST_ELEMENT_TYPE Subject
#define ST_COMPARE(a, b) subject_cmp(a, b)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/* the distinct by-value subjects (integers), as they come */
typedef struct DatumSetEntry
{
	Datum		key;
	char		status;
} DatumSetEntry;

#define SH_PREFIX datumset
#define SH_ELEMENT_TYPE DatumSetEntry
#define SH_KEY_TYPE Datum
#define SH_KEY key
#define SH_HASH_KEY(tb, k) murmurhash32((uint32) ((uint64) (k) ^ ((uint64) (k) >> 32)))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* the distinct subjects of other types, by their text, as they come */
typedef struct TextSetEntry
{
	char	   *key;
	uint32		hash;
	char		status;
} TextSetEntry;

#define SH_PREFIX textset
#define SH_ELEMENT_TYPE TextSetEntry
#define SH_KEY_TYPE char *
#define SH_KEY key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k), strlen(k))
#define SH_EQUAL(tb, a, b) (strcmp(a, b) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/*
 * Receives the rows of the view as the executor makes them: each goes to
 * the function's result (one copy, no SPI tuple table between), and its
 * subject to the list the manifest is made of.
 */
typedef struct ExportReceiver
{
	DestReceiver pub;
	Tuplestorestate *store;
	int			natts;			/* of the result type */
	AttrNumber	subj_att;
	Oid			subj_type;
	Oid			outfn;
	bool		byval;			/* integers: kept as Datums, text made once per value */
	MemoryContext subjcxt;
	datumset_hash *values;		/* byval: the distinct values */
	textset_hash *texts;		/* otherwise: the distinct texts */
	MemoryContext rowcxt;		/* a row's text, until it is known to be new */
	int64		rows;
} ExportReceiver;

static void
export_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	if (typeinfo->natts != ((ExportReceiver *) self)->natts)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the purpose view's columns changed during the export"),
				 errhint("Export again.")));
}

static bool
export_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ExportReceiver *r = (ExportReceiver *) self;
	bool		isnull;
	Datum		d;
	MemoryContext old;

	tuplestore_puttupleslot(r->store, slot);
	r->rows++;
	d = slot_getattr(slot, r->subj_att, &isnull);
	if (isnull)
		return true;
	old = MemoryContextSwitchTo(r->subjcxt);
	if (r->byval)
	{
		bool		found;

		(void) datumset_insert(r->values, d, &found);
	}
	else
	{
		/* one copy per distinct subject: memory is bounded by them, not by the rows */
		char	   *t;
		bool		found;
		TextSetEntry *e;

		MemoryContextSwitchTo(r->rowcxt);
		t = subject_text(d, r->subj_type, r->outfn);
		e = textset_insert(r->texts, t, &found);
		if (!found)
			e->key = MemoryContextStrdup(r->subjcxt, t);
		MemoryContextReset(r->rowcxt);
	}
	MemoryContextSwitchTo(old);
	return true;
}

static void
export_shutdown(DestReceiver *self)
{
}

static void
export_destroy(DestReceiver *self)
{
}

/* Runs sql with arguments as the extension's owner (inside SPI). */
static void
run_as_owner_args(const char *sql, int nargs, Oid *types, Datum *vals, const char *nulls, bool read_only)
{
	Oid			save_userid;
	int			save_sec;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(cl_extension_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		if (SPI_execute_with_args(sql, nargs, types, vals, nulls, read_only, 0) < 0)
			elog(ERROR, "SPI_execute_with_args failed: %s", sql);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/* The dataset ledgers, made (as the extension's owner) on first use. */
static void
ensure_dataset_ledgers(void)
{
	Oid			nsp = cl_schema_oid(false);
	Oid			relid;

	relid = cl_check_internal_table(get_relname_relid("datasets", nsp), "datasets");
	if (OidIsValid(relid))
	{
		(void) cl_check_internal_table(get_relname_relid("dataset_subjects", nsp), "dataset_subjects");
		return;
	}
	for (int i = 0; create_datasets_sql[i] != NULL; i++)
		cl_run_as_owner(create_datasets_sql[i], cl_extension_owner());
	CommandCounterIncrement();
	relid = get_relname_relid("datasets", nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "could not create consent_ledger.datasets");
	cl_make_ledger(relid);
	cl_make_ledger(get_relname_relid("dataset_subjects", nsp));
}

static void
check_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > DATASET_MAX_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a dataset name has 1 to %d bytes", DATASET_MAX_NAME),
				 errhint("Name the dataset as the model or training run that uses it, e.g. \"churn-model-2026-12\".")));
}

/* The subject's text as the consent checks compare it. */
static char *
subject_text(Datum d, Oid typid, Oid outfn)
{
	char	   *s = OidOutputFunctionCall(outfn, d);

	if (cl_type_is_bpchar(typid))
		cl_trim_bpchar(s);
	return s;
}

/*
 * consent_ledger.export_dataset(name text, view anyelement) RETURNS SETOF
 * anyelement: pass the purpose view's row type as NULL::view.
 */
Datum
cl_export_dataset(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			rowtype = get_fn_expr_argtype(fcinfo->flinfo, 1);
	Oid			view = OidIsValid(rowtype) ? get_typ_typrelid(rowtype) : InvalidOid;
	char	   *name;
	char	   *qview;
	char	   *purpose = NULL;
	Oid			base = InvalidOid;
	char	   *column = NULL;
	AttrNumber	subj_att;
	Oid			subj_type;
	Oid			outfn;
	bool		varlena;
	MemoryContext subjcxt;
	MemoryContext old;
	Subject    *subjects = NULL;
	int64		nsubjects = 0;
	int64		rows = 0;
	int64		ndistinct = 0;
	cl_hash    *leaves;
	cl_hash		root;
	char		root64[64];
	int64		horizon = 0;
	Datum		cp_size = (Datum) 0;
	Datum		cp_root = (Datum) 0;
	bool		cp_null = true;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	bool		byval;
	datumset_hash *values = NULL;
	textset_hash *texts = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the dataset name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_name(name);
	if (!OidIsValid(view) || get_rel_relkind(view) != RELKIND_VIEW)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("the second argument must be a purpose view's row type"),
				 errhint("Pass NULL::<purpose view>, e.g. export_dataset('churn-2026-12', NULL::purchases_analytics).")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			types[1] = {OIDOID};
		Datum		vals[1] = {ObjectIdGetDatum(view)};

		run_as_owner_args("SELECT v.purpose, v.relid::pg_catalog.oid, p.subject_column::pg_catalog.text "
						  "FROM consent_ledger.purpose_views v JOIN consent_ledger.protected p ON p.relid OPERATOR(pg_catalog.=) v.relid "
						  "WHERE v.view OPERATOR(pg_catalog.=) $1", 1, types, vals, NULL, true);
		if (SPI_processed == 1)
		{
			bool		isnull;

			purpose = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			base = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		}
	}
	if (purpose == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a purpose view", get_rel_name(view)),
				 errdetail("A dataset is extracted through a view consent_ledger.create_purpose_view() made, so that only consented rows enter it."),
				 errhint("Create one with consent_ledger.create_purpose_view().")));
	subj_att = get_attnum(view, column);
	if (subj_att <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("purpose view \"%s\" has no column \"%s\"", get_rel_name(view), column),
				 errhint("Recreate the purpose view with consent_ledger.create_purpose_view().")));
	subj_type = get_atttype(view, subj_att);
	getTypeOutputInfo(subj_type, &outfn, &varlena);

	ensure_dataset_ledgers();
	{
		Oid			types[1] = {TEXTOID};
		Datum		vals[1] = {CStringGetTextDatum(name)};

		/* the name is the manifest's key: one export per name */
		run_as_owner_args("SELECT 1 FROM consent_ledger.datasets WHERE name OPERATOR(pg_catalog.=) $1",
						  1, types, vals, NULL, true);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("dataset \"%s\" already exists", name),
					 errdetail("A manifest is recorded once and never changed."),
					 errhint("Name a new extraction differently, e.g. with its date.")));
	}

	/* the consent state the rows are read under: the events committed before */
	if (OidIsValid(cl_consent_events_relid(false)))
		run_as_owner_args("SELECT coalesce(pg_catalog.max(event_id), 0) FROM consent_ledger.consent_events",
						  0, NULL, NULL, NULL, true);
	if (OidIsValid(cl_consent_events_relid(false)) && SPI_processed == 1)
	{
		bool		isnull;

		horizon = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		/* the consent ledger's latest signed checkpoint, if it has one yet */
		run_as_owner_args("SELECT c.tree_size, pg_catalog.encode(c.root, 'base64') "
						  "FROM consent_ledger.checkpoints c JOIN consent_ledger.ledgers l USING (ledger_id) "
						  "WHERE l.relid OPERATOR(pg_catalog.=) 'consent_ledger.consent_events'::pg_catalog.regclass "
						  "ORDER BY c.seq DESC LIMIT 1",
						  0, NULL, NULL, NULL, true);
		if (SPI_processed == 1)
		{
			cp_size = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &cp_null);
			if (!cp_null)
				cp_root = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
		}
	}

	/*
	 * The rows, read as the caller through the view: checked and audited.
	 * The executor materializes a set-returning function's rows anyway:
	 * they go to the function's tuplestore (work_mem, then a temporary
	 * file), as a plain COPY's would not.
	 */
	InitMaterializedSRF(fcinfo, 0);
	tupdesc = rsinfo->setDesc;
	store = rsinfo->setResult;
	byval = get_typbyval(subj_type) && get_typlen(subj_type) <= (int) sizeof(Datum);
	qview = quote_qualified_identifier(get_namespace_name(get_rel_namespace(view)), get_rel_name(view));
	subjcxt = AllocSetContextCreate(CurrentMemoryContext, "consent_ledger dataset subjects",
									ALLOCSET_DEFAULT_SIZES);
	{
		ExportReceiver *r = palloc0(sizeof(ExportReceiver));
		SPIExecuteOptions opts;

		r->pub.receiveSlot = export_receive;
		r->pub.rStartup = export_startup;
		r->pub.rShutdown = export_shutdown;
		r->pub.rDestroy = export_destroy;
		r->pub.mydest = DestTuplestore;	/* anything but DestNone: SPI then says SPI_OK_SELECT */
		r->store = store;
		r->natts = tupdesc->natts;
		r->subj_att = subj_att;
		r->subj_type = subj_type;
		r->outfn = outfn;
		r->byval = byval;
		r->subjcxt = subjcxt;
		if (byval)
			r->values = datumset_create(subjcxt, 1024, NULL);
		else
		{
			r->texts = textset_create(subjcxt, 1024, NULL);
			r->rowcxt = AllocSetContextCreate(subjcxt, "consent_ledger dataset row", ALLOCSET_SMALL_SIZES);
		}
		memset(&opts, 0, sizeof(opts));
		opts.read_only = true;
		opts.dest = (DestReceiver *) r;
		if (SPI_execute_extended(psprintf("SELECT * FROM %s", qview), &opts) != SPI_OK_SELECT)
			elog(ERROR, "could not read %s", qview);
		rows = r->rows;
		values = r->values;
		texts = r->texts;
	}

	if (byval && values->members > 0)
	{
		datumset_iterator it;
		DatumSetEntry *e;
		int64		nd = 0;

		old = MemoryContextSwitchTo(subjcxt);
		subjects = MemoryContextAllocHuge(subjcxt, sizeof(Subject) * values->members);
		datumset_start_iterate(values, &it);
		while ((e = datumset_iterate(values, &it)) != NULL)
		{
			subjects[nd].s = subject_text(e->key, subj_type, outfn);
			subjects[nd].len = strlen(subjects[nd].s);
			nd++;
		}
		nsubjects = nd;
		MemoryContextSwitchTo(old);
	}

	if (!byval && texts->members > 0)
	{
		textset_iterator it;
		TextSetEntry *e;

		subjects = MemoryContextAllocHuge(subjcxt, sizeof(Subject) * texts->members);
		textset_start_iterate(texts, &it);
		while ((e = textset_iterate(texts, &it)) != NULL)
		{
			subjects[nsubjects].s = e->key;
			subjects[nsubjects].len = strlen(e->key);
			nsubjects++;
		}
	}

	/* the distinct subjects, sorted bytewise, and their Merkle root */
	if (nsubjects > 0)
		sort_subjects(subjects, nsubjects);
	for (int64 i = 0; i < nsubjects; i++)
	{
		if (ndistinct == 0 || subject_cmp(&subjects[ndistinct - 1], &subjects[i]) != 0)
			subjects[ndistinct++] = subjects[i];
	}
	leaves = MemoryContextAllocHuge(subjcxt, sizeof(cl_hash) * Max(ndistinct, 1));
	for (int64 i = 0; i < ndistinct; i++)
		cl_leaf_hash((const uint8 *) subjects[i].s, subjects[i].len, leaves[i]);
	cl_merkle_root(leaves, ndistinct, root);
	cl_base64_encode(root, CL_HASH_LEN, root64);

	/* the manifest, then the subjects in chunks */
	{
		Oid			types[12] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID,
		TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID};
		Datum		vals[12];
		char		nulls[12] = "           ";

		vals[0] = CStringGetTextDatum(name);
		vals[1] = CStringGetTextDatum(purpose);
		vals[2] = CStringGetTextDatum(qview);
		vals[3] = CStringGetTextDatum(quote_qualified_identifier(get_namespace_name(get_rel_namespace(base)),
																 get_rel_name(base)));
		vals[4] = CStringGetTextDatum(column);
		vals[5] = Int64GetDatum(rows);
		vals[6] = Int64GetDatum(ndistinct);
		vals[7] = CStringGetTextDatum(root64);
		vals[8] = Int64GetDatum(horizon);
		vals[9] = cp_size;
		vals[10] = cp_root;
		/* the role that extracted the rows (its rights read them) */
		vals[11] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
		if (cp_null)
			nulls[9] = nulls[10] = 'n';
		run_as_owner_args("INSERT INTO consent_ledger.datasets (name, purpose, view, relation, subject_column, "
						  "rows, subjects, subjects_root, consent_horizon, consent_checkpoint_size, "
						  "consent_checkpoint_root, exported_at, exported_by) "
						  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, pg_catalog.now(), $12)",
						  12, types, vals, nulls, false);
	}
	for (int64 c = 0; c * DATASET_CHUNK < ndistinct; c++)
	{
		int64		lo = c * DATASET_CHUNK;
		int			n = (int) Min(DATASET_CHUNK, ndistinct - lo);
		Datum	   *elems = palloc(sizeof(Datum) * n);
		Oid			types[5] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTARRAYOID};
		Datum		vals[5];

		for (int i = 0; i < n; i++)
			elems[i] = PointerGetDatum(cstring_to_text_with_len(subjects[lo + i].s, subjects[lo + i].len));
		vals[0] = CStringGetTextDatum(name);
		vals[1] = Int32GetDatum((int32) c);
		vals[2] = elems[0];
		vals[3] = elems[n - 1];
		vals[4] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
		run_as_owner_args("INSERT INTO consent_ledger.dataset_subjects (dataset, chunk, first_subject, last_subject, subjects) "
						  "VALUES ($1, $2, $3, $4, $5)", 5, types, vals, NULL, false);
		pfree(elems);
	}
	MemoryContextDelete(subjcxt);
	SPI_finish();
	return (Datum) 0;
}

/*
 * The sorted subjects of a dataset, as read from dataset_subjects; *root
 * and *n from its manifest.  ERROR when there is no such dataset.
 */
static Subject *
load_subjects(const char *name, int64 *n, char **root64)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1] = {CStringGetTextDatum(name)};
	Subject    *out;
	int64		k = 0;
	bool		isnull;
	bool		found = false;

	if (OidIsValid(cl_check_internal_table(get_relname_relid("datasets", cl_schema_oid(false)), "datasets")))
	{
		run_as_owner_args("SELECT subjects, subjects_root FROM consent_ledger.datasets WHERE name OPERATOR(pg_catalog.=) $1",
						  1, types, vals, NULL, true);
		found = SPI_processed == 1;
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("dataset \"%s\" does not exist", name),
				 errhint("Datasets are recorded by consent_ledger.export_dataset().")));
	*n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*root64 = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	out = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Subject) * Max(*n, 1));
	run_as_owner_args("SELECT subjects FROM consent_ledger.dataset_subjects WHERE dataset OPERATOR(pg_catalog.=) $1 "
					  "ORDER BY chunk", 1, types, vals, NULL, true);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		ArrayType  *a = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		Datum	   *elems;
		int			nelems;

		deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &nelems);
		for (int i = 0; i < nelems && k < *n; i++, k++)
		{
			out[k].s = TextDatumGetCString(elems[i]);
			out[k].len = strlen(out[k].s);
		}
	}
	if (k != *n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("dataset \"%s\" lists " INT64_FORMAT " subjects, its manifest " INT64_FORMAT, name, k, *n),
				 errhint("Run consent_ledger.verify() on consent_ledger.datasets and consent_ledger.dataset_subjects.")));
	return out;
}

/* One leaf's inclusion proof as inclusion_proof() writes it (no origin). */
static void
append_proof(StringInfo buf, const cl_hash *leaves, int64 n, int64 idx, const cl_hash root)
{
	cl_hash    *path = palloc(sizeof(cl_hash) * 64);
	int			len = cl_inclusion_proof(leaves, n, idx, path);

	appendStringInfo(buf, "{\"type\": \"inclusion\", \"leaf_index\": " INT64_FORMAT ", \"tree_size\": " INT64_FORMAT,
					 idx, n);
	cl_append_json_b64(buf, "leaf_hash", leaves[idx], CL_HASH_LEN, true);
	cl_append_json_b64(buf, "root_hash", root, CL_HASH_LEN, true);
	cl_append_json_path(buf, (const cl_hash *) path, len);
	appendStringInfoChar(buf, '}');
	pfree(path);
}

static void
append_neighbour(StringInfo buf, const char *key, const Subject *subjects, const cl_hash *leaves,
				 int64 n, int64 idx, const cl_hash root)
{
	appendStringInfo(buf, ", \"%s\": ", key);
	if (idx < 0 || idx >= n)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	appendStringInfoString(buf, "{\"subject\": ");
	escape_json(buf, subjects[idx].s);
	appendStringInfoString(buf, ", \"leaf_data\": \"");
	for (int i = 0; i < subjects[idx].len; i++)
		appendStringInfo(buf, "%02x", (unsigned char) subjects[idx].s[i]);
	appendStringInfoString(buf, "\", \"proof\": ");
	append_proof(buf, leaves, n, idx, root);
	appendStringInfoChar(buf, '}');
}

/*
 * consent_ledger.dataset_includes(name text, subject text) RETURNS jsonb:
 * whether the dataset holds the subject's rows, with the proof.
 */
Datum
cl_dataset_includes(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *subject;
	Subject		key;
	Subject    *subjects;
	int64		n;
	char	   *root64;
	cl_hash    *leaves;
	cl_hash		root;
	int64		lo = 0;
	int64		hi;
	bool		found = false;
	StringInfoData buf;
	MemoryContext outer = CurrentMemoryContext;
	Datum		result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dataset and subject must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	subject = text_to_cstring(PG_GETARG_TEXT_PP(1));
	key.s = subject;
	key.len = strlen(subject);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	subjects = load_subjects(name, &n, &root64);
	leaves = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(cl_hash) * Max(n, 1));
	for (int64 i = 0; i < n; i++)
		cl_leaf_hash((const uint8 *) subjects[i].s, subjects[i].len, leaves[i]);
	cl_merkle_root(leaves, n, root);
	{
		char		check[64];

		cl_base64_encode(root, CL_HASH_LEN, check);
		if (strcmp(check, root64) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the subjects of dataset \"%s\" do not hash to its manifest's root", name),
					 errhint("Run consent_ledger.verify() on consent_ledger.datasets and consent_ledger.dataset_subjects.")));
	}
	/* the first subject not below the one asked about */
	hi = n;
	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (subject_cmp(&subjects[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	found = lo < n && subject_cmp(&subjects[lo], &key) == 0;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"dataset\": ");
	escape_json(&buf, name);
	appendStringInfoString(&buf, ", \"subject\": ");
	escape_json(&buf, subject);
	appendStringInfo(&buf, ", \"included\": %s, \"subjects\": " INT64_FORMAT ", \"subjects_root\": \"%s\"",
					 found ? "true" : "false", n, root64);
	appendStringInfoString(&buf, ", \"leaf_data\": \"");
	for (int i = 0; i < key.len; i++)
		appendStringInfo(&buf, "%02x", (unsigned char) key.s[i]);
	appendStringInfoChar(&buf, '"');
	if (found)
	{
		appendStringInfoString(&buf, ", \"proof\": ");
		append_proof(&buf, leaves, n, lo, root);
	}
	else
	{
		/* the neighbours between which the subject would sort */
		append_neighbour(&buf, "before", subjects, leaves, n, lo - 1, root);
		append_neighbour(&buf, "after", subjects, leaves, n, lo, root);
	}
	appendStringInfoChar(&buf, '}');
	{
		MemoryContext old = MemoryContextSwitchTo(outer);

		result = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PG_RETURN_DATUM(result);
}
