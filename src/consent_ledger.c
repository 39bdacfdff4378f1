/*-------------------------------------------------------------------------
 * consent_ledger.c
 *	  Module entry: GUCs, shared memory, and the checks that make the
 *	  extension refuse to work unless it was preloaded.
 *
 * The library must be in shared_preload_libraries: the signing key is
 * read by the postmaster (so no backend ever opens the key file), the
 * sealer workers are registered here, and the guard hooks must be active
 * in every backend or a ledger could be altered from one that lacks them.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "libpq/auth.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/syscache.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/queryjumble.h"

#include "consent_ledger.h"
#include "build_id.inc"

PG_MODULE_MAGIC;

int			cl_seal_interval_ms = 1000;
int			cl_seal_timeout_ms = 30000;
int			cl_seal_round_leaves = 1048576;
int			cl_adopt_progress_rows = 1000000;
int			cl_max_databases = 64;
int			cl_verify_memory_kb = 0;
char	   *cl_signing_key_file = NULL;
ClShared   *cl_shared = NULL;

static bool cl_preloaded = false;
static char *cl_build_id = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ClientAuthentication_hook_type prev_client_auth_hook = NULL;

void		_PG_init(void);
PG_FUNCTION_INFO_V1(cl_assert_preloaded);
PG_FUNCTION_INFO_V1(cl_require_preload_ddl);

/*
 * Shared memory: the slots of consent_ledger.max_databases databases, then
 * one audit ring per slot.
 */
static Size
cl_rings_offset(void)
{
	return MAXALIGN(add_size(offsetof(ClShared, slots),
							 mul_size(sizeof(ClSealSlot), cl_max_databases)));
}

static Size
cl_shmem_size(void)
{
	return add_size(cl_rings_offset(), mul_size(CL_AUDIT_RING, cl_max_databases));
}

char *
cl_audit_ring(int slotno)
{
	Assert(slotno >= 0 && slotno < cl_shared->nslots);
	return (char *) cl_shared + cl_rings_offset() + (Size) slotno * CL_AUDIT_RING;
}

static void
cl_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(cl_shmem_size());
	RequestAddinShmemSpace(cl_audit_shmem_size());
	RequestNamedLWLockTranche("consent_ledger", 1);
	RequestAddinShmemSpace(cl_cs_shmem_size());
	RequestNamedLWLockTranche("consent_ledger_state", 1);
	RequestAddinShmemSpace(cl_witness_shmem_size());
}

static void
cl_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cl_shared = ShmemInitStruct("consent_ledger", cl_shmem_size(), &found);
	if (!found)
	{
		memset(cl_shared, 0, cl_rings_offset());
		cl_shared->lock = &(GetNamedLWLockTranche("consent_ledger"))->lock;
		pg_atomic_init_u64(&cl_shared->purpose_generation, 1);
		pg_atomic_init_u64(&cl_shared->consent_commits, 0);
		pg_atomic_init_u64(&cl_shared->audit_lost_unslotted, 0);
		ConditionVariableInit(&cl_shared->sealed_cv);
		ConditionVariableInit(&cl_shared->audit_cv);
		cl_shared->nslots = cl_max_databases;
	}
	cl_cs_shmem_init();
	cl_audit_shmem_init();
	cl_witness_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Ordinary client backends never sign: drop the inherited copy of the
 * secret key as soon as a client connects, so that no code reachable from
 * SQL shares an address space with it.
 */
static void
cl_client_auth(Port *port, int status)
{
	cl_keys_forget();
	if (prev_client_auth_hook)
		prev_client_auth_hook(port, status);
}

void
_PG_init(void)
{
	/*
	 * Which sources this library was built from (see the Makefile): the
	 * test runner checks that the server loaded the tree's build.
	 */
	DefineCustomStringVariable("consent_ledger.build_id",
							   "Hash of the sources this consent_ledger library was built from.",
							   NULL,
							   &cl_build_id,
							   CONSENT_LEDGER_BUILD_ID,
							   PGC_INTERNAL,
							   GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
	{
		/*
		 * Loaded on demand (e.g. by CREATE EXTENSION without preloading):
		 * install nothing.  cl_assert_preloaded() reports the problem.
		 */
		return;
	}
	cl_preloaded = true;

	if (sodium_init() < 0)
		ereport(FATAL,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libsodium")));

	DefineCustomStringVariable("consent_ledger.signing_key_file",
							   "Ed25519 secret key file used to sign checkpoints.",
							   "Empty means the key generated in consent_ledger.key_directory at first start.",
							   &cl_signing_key_file,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	cl_keys_define_gucs();
	cl_ship_define_gucs();
	cl_witness_define_gucs();
	DefineCustomIntVariable("consent_ledger.seal_interval",
							"Longest time a committed ledger row waits before it is sealed.",
							NULL,
							&cl_seal_interval_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("consent_ledger.seal_timeout",
							"How long consent_ledger.seal() waits for the sealer.",
							NULL,
							&cl_seal_timeout_ms,
							30000, 100, 3600 * 1000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("consent_ledger.seal_round_size",
							"Most rows of one ledger a sealing round seals.",
							"A larger backlog (a huge commit) is sealed over several rounds, each its own transaction with its own signed checkpoint; a round holds at most this many 32-byte leaf hashes in memory.",
							&cl_seal_round_leaves,
							1048576, 1, CL_MAX_LEAVES_PER_LOG,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("consent_ledger.adopt_progress_rows",
							"create_ledger() reports its progress with a NOTICE every this many adopted rows (0: never).",
							NULL,
							&cl_adopt_progress_rows,
							1000000, 0, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("consent_ledger.max_databases",
							"Databases with consent_ledger that can be sealed and audited at once.",
							"Each takes a slot with a 128 kB audit queue in shared memory, a sealer and an audit writer worker.",
							&cl_max_databases,
							64, 1, 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("consent_ledger.max_consent_states",
							"Consent states (subject and purpose pairs with consent events, all databases) the server holds in shared memory.",
							"Each takes 60 bytes of shared memory. When they are all in use, protected reads fail (SQLSTATE 53200) until it is raised.",
							&cl_max_consent_states,
							1048576, 16, 1 << 30,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("consent_ledger.verify_memory",
							"Memory verify(), verify_checkpoint() and export() may use to hold a ledger in memory; larger ledgers are streamed.",
							"0 (the default) always streams, with memory bounded by maintenance_work_mem; -1 uses maintenance_work_mem.",
							&cl_verify_memory_kb,
							0, -1, MAX_KILOBYTES,
							PGC_USERSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomStringVariable("consent_ledger.purpose",
							   "The purpose this session declares for reading protected data.",
							   "Only purposes the current role was authorized for (authorize_purpose) are accepted.",
							   &cl_purpose,
							   "",
							   PGC_USERSET,
							   0,
							   cl_check_purpose, cl_assign_purpose, NULL);
	/*
	 * Hidden and internal: the leader of a parallel query hands its
	 * statement's consent inputs to its workers in it (policy.c,
	 * StatementInputs).  Its check hook refuses every value not set by the
	 * extension itself or copied into a parallel worker, superusers
	 * included.
	 */
	DefineCustomStringVariable("consent_ledger.parallel_inputs",
							   "Internal: a parallel query's consent inputs, from its leader to its workers.",
							   NULL,
							   &cl_parallel_inputs,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE |
							   GUC_NO_RESET_ALL | GUC_SUPERUSER_ONLY,
							   cl_check_parallel_inputs, NULL, NULL);
	DefineCustomIntVariable("consent_ledger.debug_parallel_worker_wait",
							"Test only: a parallel worker waits this long, or until a consent commit, before setting up its first policy check.",
							NULL,
							&cl_debug_worker_wait,
							0, 0, 600000,
							PGC_SUSET,
							GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("consent_ledger.allow_publish_protected",
							 "Lets a superuser publish protected tables for logical replication, and protect published tables.",
							 "A subscriber receives every row, hidden ones included, with no consent check and no audit.",
							 &cl_allow_publish_protected,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	cl_standby_define_gucs();
	MarkGUCPrefixReserved("consent_ledger");

	/* Binary upgrade: no workers, no hooks that could refuse pg_upgrade's DDL */
	if (IsBinaryUpgrade)
		return;

	cl_keys_load();

	/* read audit records carry the statement's query id */
	EnableQueryId();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cl_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cl_shmem_startup;
	prev_client_auth_hook = ClientAuthentication_hook;
	ClientAuthentication_hook = cl_client_auth;

	cl_ledger_init();
	cl_consent_init();
	cl_audit_init();
	cl_policy_init();
	cl_guard_init();
	cl_hooks_init();
	cl_seal_register_launcher();
}

/*
 * The refusal of every entry point when the library was not preloaded
 * (called from each function's info record, see PG_FUNCTION_INFO_V1 in
 * consent_ledger.h).  A binary-upgrade server (pg_upgrade) may set the
 * functions up without running them: it only restores the catalogs.
 */
void
cl_require_preloaded(const char *funcname)
{
	if (cl_preloaded || IsBinaryUpgrade)
		return;
	/* the event trigger refusing DDL: say how DROP EXTENSION can still run */
	if (funcname != NULL && strcmp(funcname, "cl_require_preload_ddl") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger must be loaded via shared_preload_libraries"),
				 errdetail("Without it no ledger row would be sealed, no read of protected data audited and no ledger guarded; "
						   "every function and trigger of the extension, and DDL in databases that have it, refuse to run."),
				 errhint("Add consent_ledger to shared_preload_libraries in postgresql.conf, e.g. shared_preload_libraries = 'consent_ledger', and restart the server. "
						 "To run DDL such as DROP EXTENSION consent_ledger without preloading, a superuser can first run "
						 "ALTER EVENT TRIGGER consent_ledger_require_preload DISABLE.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("consent_ledger must be loaded via shared_preload_libraries"),
			 errdetail("Without it no ledger row would be sealed, no read of protected data audited and no ledger guarded; "
					   "every function and trigger of the extension, and DDL in databases that have it, refuse to run."),
			 errhint("Add consent_ledger to shared_preload_libraries in postgresql.conf, e.g. shared_preload_libraries = 'consent_ledger', and restart the server.")));
}

/*
 * CREATE EXTENSION (README "Trust model"): PostgreSQL installs a
 * non-relocatable extension into its schema even when that schema already
 * exists, whoever owns it.  Its owner could then plant consent_events or
 * audit_log, drop the extension's tables, or create objects that capture
 * the extension's names, and the extension's SECURITY DEFINER functions
 * would run that role's code as a superuser.  So the install refuses
 * unless schema consent_ledger is owned by the installing role or a
 * superuser, grants CREATE to nobody but its owner (and superusers), and
 * holds nothing but what this CREATE EXTENSION has put there so far.
 */
static Oid
extension_schema(Oid extoid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/*
 * What a DROP EXTENSION of 1.1 left behind (the consent ledger, its view,
 * the audit ledger) and what the 1.2 install script renamed them to: kept
 * in the schema when a superuser (or the installing role) owns them; the
 * install script moves the first three out of the way.
 */
static bool
is_trusted_leftover(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class cls;
	const char *name;
	size_t		len;
	bool		ok;

	if (!HeapTupleIsValid(tup))
		return false;
	cls = (Form_pg_class) GETSTRUCT(tup);
	name = NameStr(cls->relname);
	len = strlen(name);
	ok = (cls->relowner == GetUserId() || superuser_arg(cls->relowner)) &&
		((cls->relkind == RELKIND_RELATION &&
		  (strcmp(name, "consent_events") == 0 || strcmp(name, "audit_log") == 0 ||
		   (len > 19 && strcmp(name + len - 19, "_dropped_before_1_2") == 0))) ||
		 (cls->relkind == RELKIND_VIEW && strcmp(name, "consent_state") == 0));
	ReleaseSysCache(tup);
	return ok;
}

static void
check_install_schema(void)
{
	Oid			nsp;
	HeapTuple	tup;
	Form_pg_namespace form;
	Oid			nspowner;
	const char *nspname;
	const char *ownername;
	const char *installer = GetUserNameFromId(GetUserId(), false);
	Datum		acldatum;
	bool		isnull;
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	dep;

	if (!creating_extension || !OidIsValid(CurrentExtensionObject))
		return;
	nsp = extension_schema(CurrentExtensionObject);
	if (!OidIsValid(nsp))
		return;
	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		return;
	form = (Form_pg_namespace) GETSTRUCT(tup);
	nspowner = form->nspowner;
	nspname = pstrdup(NameStr(form->nspname));
	ownername = GetUserNameFromId(nspowner, false);
	if (nspowner != GetUserId() && !superuser_arg(nspowner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot install consent_ledger into existing schema \"%s\" owned by role \"%s\"",
						nspname, ownername),
				 errdetail("Schema \"%s\" is owned by role \"%s\", which is neither the installing role \"%s\" nor a superuser; "
						   "the owner of the extension's schema could replace or drop its objects.",
						   nspname, ownername, installer),
				 errhint("Drop the schema (DROP SCHEMA %s) or give it to the installing role (ALTER SCHEMA %s OWNER TO %s), then run CREATE EXTENSION again.",
						 quote_identifier(nspname), quote_identifier(nspname), quote_identifier(installer))));

	acldatum = SysCacheGetAttr(NAMESPACEOID, tup, Anum_pg_namespace_nspacl, &isnull);
	if (!isnull)
	{
		Acl		   *acl = DatumGetAclPCopy(acldatum);
		AclItem    *items = ACL_DAT(acl);

		for (int i = 0; i < ACL_NUM(acl); i++)
		{
			Oid			grantee = items[i].ai_grantee;
			const char *gname;

			if (!(ACLITEM_GET_PRIVS(items[i]) & ACL_CREATE) || grantee == nspowner ||
				(grantee != ACL_ID_PUBLIC && superuser_arg(grantee)))
				continue;
			gname = grantee == ACL_ID_PUBLIC ? "PUBLIC" : GetUserNameFromId(grantee, false);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot install consent_ledger into existing schema \"%s\": %s%s%s may create objects in it",
							nspname, grantee == ACL_ID_PUBLIC ? "" : "role \"", gname,
							grantee == ACL_ID_PUBLIC ? "" : "\""),
					 errdetail("Schema \"%s\" is owned by role \"%s\" and grants CREATE to %s; "
							   "a role that can create objects in the extension's schema can capture its names.",
							   nspname, ownername, gname),
					 errhint("Drop the schema (DROP SCHEMA %s), or REVOKE CREATE ON SCHEMA %s FROM %s, then run CREATE EXTENSION again.",
							 quote_identifier(nspname), quote_identifier(nspname),
							 grantee == ACL_ID_PUBLIC ? "PUBLIC" : quote_identifier(gname))));
		}
	}
	ReleaseSysCache(tup);

	/*
	 * Every object in a schema depends on it (pg_depend), as does the
	 * extension being created.  Only that extension and its members so far
	 * (the function that called us) may be there.
	 */
	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(NamespaceRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(nsp));
	scan = systable_beginscan(rel, DependReferenceIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(dep = systable_getnext(scan)))
	{
		Form_pg_depend d = (Form_pg_depend) GETSTRUCT(dep);
		ObjectAddress obj;

		if (d->classid == ExtensionRelationId && d->objid == CurrentExtensionObject)
			continue;
		if (getExtensionOfObject(d->classid, d->objid) == CurrentExtensionObject)
			continue;
		if (d->classid == RelationRelationId && is_trusted_leftover(d->objid))
			continue;
		obj.classId = d->classid;
		obj.objectId = d->objid;
		obj.objectSubId = d->objsubid;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot install consent_ledger into existing schema \"%s\": it is not empty", nspname),
				 errdetail("Schema \"%s\" (owner \"%s\") already contains %s; the extension must start from an empty schema.",
						   nspname, ownername, getObjectDescription(&obj, false)),
				 errhint("Drop the schema (DROP SCHEMA %s CASCADE, after checking what it holds) or move its objects elsewhere, then run CREATE EXTENSION again.",
						 quote_identifier(nspname))));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * Called by the install script: CREATE EXTENSION fails unless the library
 * was preloaded, with a hint naming the exact setting, and unless the
 * extension's schema is safe to install into (check_install_schema).
 */
Datum
cl_assert_preloaded(PG_FUNCTION_ARGS)
{
	cl_require_preloaded(NULL);
	check_install_schema();
	if (cl_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger must be loaded via shared_preload_libraries"),
				 errdetail("The signing key, the sealer workers and the guard hooks are set up when the server starts."),
				 errhint("Add consent_ledger to shared_preload_libraries in postgresql.conf, e.g. shared_preload_libraries = 'consent_ledger', and restart the server.")));
	PG_RETURN_VOID();
}

/*
 * consent_ledger._require_preload(): the ddl_command_start event trigger of
 * databases with the extension.  Without preloading, the utility hook that
 * guards ledgers and protected tables is not installed; the lookup of this
 * function then fails (cl_require_preloaded), so DDL is refused instead of
 * running unguarded.  Preloaded, it does nothing.
 */
Datum
cl_require_preload_ddl(PG_FUNCTION_ARGS)
{
	PG_RETURN_VOID();
}
