/*-------------------------------------------------------------------------
 * keys.c
 *	  The server's Ed25519 signing key.
 *
 * The key is read once, by the postmaster, while shared_preload_libraries
 * are processed; the secret half lives in sodium_malloc() memory (guard
 * pages, mlock, never swapped, wiped on free), mprotect'ed PROT_NONE except
 * for the instant a sealer signs, and is inherited only by forked
 * children.  Client backends free their copy at authentication
 * (consent_ledger.c); other server processes keep an unreadable mapping.
 * Nothing here returns secret material, and there is no function that
 * signs caller-chosen bytes from SQL.
 *
 * The key file holds one line: the standard base64 of the 32-byte Ed25519
 * seed.  Like ssl_key_file, it must not be accessible to "other" users
 * and not writable by its group: 0600 or 0640.
 *
 * Where keys live and how rotations are endorsed is README "Keys": the
 * generated default key goes to consent_ledger.key_directory (by default
 * $PGDATA/consent_ledger, with a warning at every start); a new key is
 * endorsed by the previous one (consent_ledger.previous_signing_key_file,
 * or the generated default key still in place); a rotation without an
 * endorsement is logged as a WARNING and verify() reports it.  A standby
 * whose key file is missing starts without a key (verify-only).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "miscadmin.h"
#include "utils/elog.h"
#include "utils/guc.h"

#include "consent_ledger.h"

#define CL_KEY_DIR			"consent_ledger"
#define CL_DEFAULT_KEY		"signing.key"
#define CL_LAST_PUBLIC		"last_public_key"
#define CL_ROTATION_FILE	"rotation_statement"
#define CL_KEYFILE_MAX		1024

static unsigned char *cl_secret = NULL;	/* sodium_malloc'd, 64 bytes */
static uint8_t cl_public[CL_PUBKEY_LEN];
static uint8_t cl_keyid[CL_KEYID_LEN];
static bool cl_have_public = false;
static char cl_rotation[CL_MAX_NOTE];	/* signed by the previous key, or "" */
static bool cl_verify_only = false; /* a standby started without its key */

/* settings (PGC_POSTMASTER, superuser-only) */
static char *cl_key_directory = NULL;
static char *cl_previous_signing_key_file = NULL;

/*
 * Reads a key file into a secret key, checking its permissions the way
 * PostgreSQL checks ssl_key_file.  FATAL on any problem: the postmaster
 * must not start with a key it cannot trust.
 */
static void
read_key_file(const char *path, unsigned char *sk, uint8_t *pk)
{
	struct stat st;
	char		buf[CL_KEYFILE_MAX + 1];
	unsigned char seed[crypto_sign_SEEDBYTES];
	ssize_t		n;
	size_t		len;
	long		declen;
	int			fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not open signing key file \"%s\": %m", path),
				 errhint("Set consent_ledger.signing_key_file to a readable Ed25519 key file, or leave it empty to use the key generated in consent_ledger.key_directory.")));
	if (fstat(fd, &st) != 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not stat signing key file \"%s\": %m", path)));
	if (!S_ISREG(st.st_mode))
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("signing key file \"%s\" is not a regular file", path)));
	if (st.st_uid != geteuid() && st.st_uid != 0)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("signing key file \"%s\" must be owned by the database user or root", path)));
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("signing key file \"%s\" has group or world access", path),
				 errdetail("The file must have permissions u=rw (0600) or u=rw,g=r (0640) or less, and be owned by the database user or root.")));

	n = read(fd, buf, CL_KEYFILE_MAX + 1);
	close(fd);
	if (n < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not read signing key file \"%s\": %m", path)));
	if (n > CL_KEYFILE_MAX)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("signing key file \"%s\" is too large", path)));
	len = (size_t) n;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	declen = cl_base64_decode(buf, len, seed, sizeof(seed));
	sodium_memzero(buf, sizeof(buf));
	if (declen != (long) sizeof(seed))
	{
		sodium_memzero(seed, sizeof(seed));
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("signing key file \"%s\" is malformed", path),
				 errdetail("The file must hold one line: the base64 encoding of a 32-byte Ed25519 seed."),
				 errhint("Create one with \"consent-ledger-verify keygen FILE\".")));
	}
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof(seed));
}

/* Writes a new random key to path (which must not exist), mode 0600. */
static void
generate_key_file(const char *path)
{
	unsigned char seed[crypto_sign_SEEDBYTES];
	char		b64[64];
	int			fd;
	size_t		len;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_IRUSR | S_IWUSR);
	if (fd < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not create signing key file \"%s\": %m", path)));
	randombytes_buf(seed, sizeof(seed));
	cl_base64_encode(seed, sizeof(seed), b64);
	sodium_memzero(seed, sizeof(seed));
	len = strlen(b64);
	b64[len++] = '\n';
	if (write(fd, b64, len) != (ssize_t) len || fsync(fd) != 0)
	{
		sodium_memzero(b64, sizeof(b64));
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not write signing key file \"%s\": %m", path)));
	}
	sodium_memzero(b64, sizeof(b64));
	close(fd);
}

static bool
read_small_file(const char *path, char *buf, size_t bufsize)
{
	int			fd = open(path, O_RDONLY | O_CLOEXEC, 0);
	ssize_t		n;

	if (fd < 0)
		return false;
	n = read(fd, buf, bufsize - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return true;
}

static void
write_small_file(const char *path, const char *text)
{
	char		tmp[MAXPGPATH];
	int			fd;
	size_t		len = strlen(text);

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, S_IRUSR | S_IWUSR);
	if (fd < 0 || write(fd, text, len) != (ssize_t) len ||
		write(fd, "\n", 1) != 1 || fsync(fd) != 0 || close(fd) != 0 ||
		rename(tmp, path) != 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", path)));
}

/* The settings of this file; called from _PG_init before the prefix is reserved. */
void
cl_keys_define_gucs(void)
{
	DefineCustomStringVariable("consent_ledger.key_directory",
							   "Directory of the generated signing key, used when signing_key_file is empty.",
							   "Empty means $PGDATA/consent_ledger: base backups copy it and pg_upgrade does not carry it (README \"Keys\").",
							   &cl_key_directory,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("consent_ledger.previous_signing_key_file",
							   "The signing key this server used before, to endorse a new key.",
							   "When the server starts with another key, this key signs the rotation statement recorded with the new key.",
							   &cl_previous_signing_key_file,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}

/* "/a/b/" and "/a/b" alike: true when path names dir or something under it */
static bool
path_is_under(const char *path, const char *dir)
{
	size_t		n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* A server that starts as a standby (standby.signal in the data directory) */
static bool
starting_as_standby(void)
{
	char		sig[MAXPGPATH];

	snprintf(sig, sizeof(sig), "%s/standby.signal", DataDir);
	return access(sig, F_OK) == 0;
}

/*
 * Signs a rotation statement "old -> the running key" with both keys and
 * keeps it for the sealers, which store it with the new key in
 * consent_ledger.keys (README "Keys").  oldsk/oldpk: the previous key.
 */
static void
sign_rotation(const unsigned char *oldsk, const uint8_t *oldpk)
{
	char		other[CL_MAX_NOTE];
	uint8_t		oldid[CL_KEYID_LEN];
	uint8_t		sig[CL_SIG_LEN];
	size_t		bodylen;
	size_t		len;
	size_t		len2;

	bodylen = cl_rotation_body(oldpk, cl_public, (int64_t) time(NULL),
							   cl_rotation, sizeof(cl_rotation));
	memcpy(other, cl_rotation, bodylen);
	/* the old key's signature line */
	crypto_sign_detached(sig, NULL, (const unsigned char *) cl_rotation, bodylen, oldsk);
	cl_key_id(CL_KEY_NAME, oldpk, oldid);
	len = bodylen == 0 ? 0 :
		cl_note_append_signature(cl_rotation, bodylen, sizeof(cl_rotation),
								 CL_KEY_NAME, oldid, sig);
	/* the new key's, made the same way and appended after it */
	sodium_mprotect_readonly(cl_secret);
	crypto_sign_detached(sig, NULL, (const unsigned char *) other, bodylen, cl_secret);
	sodium_mprotect_noaccess(cl_secret);
	len2 = bodylen == 0 ? 0 :
		cl_note_append_signature(other, bodylen, sizeof(other), CL_KEY_NAME, cl_keyid, sig);
	if (len == 0 || len2 == 0 || len + (len2 - bodylen - 1) >= sizeof(cl_rotation))
		ereport(FATAL,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not format the key rotation statement")));
	memcpy(cl_rotation + len, other + bodylen + 1, len2 - bodylen - 1);
	cl_rotation[len + len2 - bodylen - 1] = '\0';
}

/*
 * The rotation statement an earlier start signed for old -> the running
 * key, kept in the state directory: a restart with the same settings
 * reuses it instead of signing a new one (with a new time), so that one
 * rotation has one statement wherever it is recorded or exported.  Only a
 * statement for exactly this pair that both keys signed is taken.
 */
static bool
stored_rotation(const char *path, const uint8_t *oldpk)
{
	char		buf[CL_MAX_NOTE];
	size_t		len;
	cl_key_rotation r;
	const char *err;

	if (!read_small_file(path, buf, sizeof(buf) - 1))
		return false;
	/* read_small_file() took the final newline off: the statement has one */
	len = strlen(buf);
	if (len == 0 || len + 1 >= sizeof(buf))
		return false;
	buf[len++] = '\n';
	buf[len] = '\0';
	if (!cl_rotation_parse(buf, len, &r, &err) || !cl_rotation_verify(&r, buf) ||
		memcmp(r.oldpk, oldpk, CL_PUBKEY_LEN) != 0 ||
		memcmp(r.newpk, cl_public, CL_PUBKEY_LEN) != 0)
		return false;
	memcpy(cl_rotation, buf, len + 1);
	return true;
}

/*
 * Postmaster start: load (or on first start, create) the signing key.
 */
void
cl_keys_load(void)
{
	char		statedir[MAXPGPATH];
	char		keydir[MAXPGPATH];
	char		defpath[MAXPGPATH];
	char		legacypath[MAXPGPATH];
	char		lastpath[MAXPGPATH];
	char		rotpath[MAXPGPATH];
	char		lastpub[128];
	char		pubb64[64];
	const char *path;
	bool		configured = cl_signing_key_file != NULL && cl_signing_key_file[0] != '\0';
	bool		standby = starting_as_standby();

	/* state (the last public key) always lives in the data directory */
	snprintf(statedir, sizeof(statedir), "%s/%s", DataDir, CL_KEY_DIR);
	snprintf(lastpath, sizeof(lastpath), "%s/%s", statedir, CL_LAST_PUBLIC);
	snprintf(rotpath, sizeof(rotpath), "%s/%s", statedir, CL_ROTATION_FILE);
	snprintf(legacypath, sizeof(legacypath), "%s/%s", statedir, CL_DEFAULT_KEY);
	if (cl_key_directory != NULL && cl_key_directory[0] != '\0')
	{
		if (!is_absolute_path(cl_key_directory))
			ereport(FATAL,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("consent_ledger.key_directory must be an absolute path"),
					 errdetail("It is \"%s\".", cl_key_directory)));
		strlcpy(keydir, cl_key_directory, sizeof(keydir));
	}
	else
		strlcpy(keydir, statedir, sizeof(keydir));
	snprintf(defpath, sizeof(defpath), "%s/%s", keydir, CL_DEFAULT_KEY);

	if (mkdir(statedir, S_IRWXU) != 0 && errno != EEXIST)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", statedir)));

	if (configured)
		path = cl_signing_key_file;
	else
	{
		path = defpath;
		if (access(defpath, F_OK) != 0 && strcmp(defpath, legacypath) != 0 &&
			access(legacypath, F_OK) == 0)
		{
			/* a key generated by an earlier version: never replace it silently */
			ereport(WARNING,
					(errmsg("consent_ledger is signing with the key generated in the data directory, \"%s\"", legacypath),
					 errdetail("consent_ledger.key_directory is \"%s\" but holds no key yet.", keydir),
					 errhint("Stop the server and move the key file to \"%s\" (README \"Keys\").", defpath)));
			path = legacypath;
		}
		else if (access(defpath, F_OK) != 0 && !standby)
		{
			if (mkdir(keydir, S_IRWXU) != 0 && errno != EEXIST)
				ereport(FATAL,
						(errcode_for_file_access(),
						 errmsg("could not create directory \"%s\": %m", keydir)));
			generate_key_file(defpath);
			ereport(LOG,
					(errmsg("consent_ledger generated a new signing key in \"%s\"", defpath)));
		}
	}

	/* a standby needs no secret: without its key file it only verifies */
	if (standby && access(path, F_OK) != 0 && errno == ENOENT)
	{
		cl_verify_only = true;
		ereport(LOG,
				(errmsg("consent_ledger: standby starting without a signing key (\"%s\" does not exist); it verifies but cannot seal", path),
				 errhint("Before promoting it, provide the primary's key file and restart (README \"Keys\").")));
		return;
	}

	cl_secret = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (cl_secret == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not allocate secure memory for the signing key")));
	read_key_file(path, cl_secret, cl_public);
	/* unreadable except for the moment a worker signs (cl_keys_sign) */
	sodium_mprotect_noaccess(cl_secret);
	cl_key_id(CL_KEY_NAME, cl_public, cl_keyid);
	cl_have_public = true;

	cl_base64_encode(cl_public, CL_PUBKEY_LEN, pubb64);
	ereport(LOG,
			(errmsg("consent_ledger signing key %02x%02x%02x%02x loaded, public key %s",
					cl_keyid[0], cl_keyid[1], cl_keyid[2], cl_keyid[3], pubb64)));
	{
		char		abs[MAXPGPATH];

		if (is_absolute_path(path))
			strlcpy(abs, path, sizeof(abs));
		else
			snprintf(abs, sizeof(abs), "%s/%s", DataDir, path);
		canonicalize_path(abs);
		if (path_is_under(abs, DataDir))
			ereport(WARNING,
					(errmsg("consent_ledger signing key file \"%s\" is inside the data directory", path),
					 errdetail("Base backups and standbys copy it, roles with pg_read_server_files can read it, and pg_upgrade does not carry it to a new cluster."),
					 errhint("Set consent_ledger.key_directory or consent_ledger.signing_key_file to a place outside the data directory (README \"Keys\").")));
	}

	/*
	 * Rotation: the key differs from the one the previous start used, or
	 * from the previous key configured explicitly.
	 */
	cl_rotation[0] = '\0';
	{
		bool		have_last = read_small_file(lastpath, lastpub, sizeof(lastpub));
		bool		changed = have_last && strcmp(lastpub, pubb64) != 0;
		const char *prevpath = NULL;

		if (cl_previous_signing_key_file != NULL && cl_previous_signing_key_file[0] != '\0')
			prevpath = cl_previous_signing_key_file;
		else if (changed && path != defpath && path != legacypath)
		{
			/* an administrator switched from the generated key to their own */
			if (access(defpath, R_OK) == 0)
				prevpath = defpath;
			else if (access(legacypath, R_OK) == 0)
				prevpath = legacypath;
		}
		if (changed)
			ereport(LOG,
					(errmsg("consent_ledger signing key changed since the last start (previous public key %s)",
							lastpub)));
		if (prevpath != NULL)
		{
			unsigned char *oldsk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
			uint8_t		oldpk[CL_PUBKEY_LEN];
			char		oldb64[64];

			if (oldsk == NULL)
				ereport(FATAL,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("could not allocate secure memory for the previous signing key")));
			read_key_file(prevpath, oldsk, oldpk);
			cl_base64_encode(oldpk, CL_PUBKEY_LEN, oldb64);
			/*
			 * The generated key endorses only when it is the key the last
			 * start used; an explicitly configured previous key always does.
			 */
			if (memcmp(oldpk, cl_public, CL_PUBKEY_LEN) != 0 &&
				(prevpath == cl_previous_signing_key_file || strcmp(oldb64, lastpub) == 0))
			{
				if (stored_rotation(rotpath, oldpk))
					ereport(LOG,
							(errmsg("consent_ledger: key rotation from public key %s endorsed by that key (the statement signed at an earlier start)",
									oldb64)));
				else
				{
					sign_rotation(oldsk, oldpk);
					write_small_file(rotpath, cl_rotation);
					ereport(LOG,
							(errmsg("consent_ledger: key rotation from public key %s endorsed by that key", oldb64)));
				}
			}
			sodium_free(oldsk);
		}
		if (changed && cl_rotation[0] == '\0')
			ereport(WARNING,
					(errmsg("consent_ledger signing key changed without an endorsement by the previous key %s", lastpub),
					 errdetail("verify() reports the first checkpoint signed by the new key as an unendorsed key rotation, and offline verification needs both public keys."),
					 errhint("Set consent_ledger.previous_signing_key_file to the previous key file and restart (README \"Keys\").")));
	}
	write_small_file(lastpath, pubb64);
}

/* Wipes and frees this process's copy of the secret key. */
void
cl_keys_forget(void)
{
	if (cl_secret != NULL)
	{
		sodium_mprotect_readwrite(cl_secret);
		sodium_free(cl_secret);
		cl_secret = NULL;
	}
}

bool
cl_keys_can_sign(void)
{
	return cl_secret != NULL;
}

/*
 * Signs msg.  Only the extension's workers call this, and only over texts
 * they built themselves (checkpoint bodies).
 */
void
cl_keys_sign(const uint8_t *msg, size_t len, uint8_t sig[CL_SIG_LEN])
{
	if (cl_secret == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("consent_ledger signing key is not available in this process")));
	sodium_mprotect_readonly(cl_secret);
	crypto_sign_detached(sig, NULL, msg, len, cl_secret);
	sodium_mprotect_noaccess(cl_secret);
}

const uint8_t *
cl_keys_public(void)
{
	if (!cl_have_public && cl_verify_only)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this server has no consent_ledger signing key"),
				 errdetail("It started as a standby without its key file: it verifies ledgers but cannot seal them."),
				 errhint("The public keys that signed this database's checkpoints are in consent_ledger.keys; to let it seal, provide the key file and restart (README \"Keys\").")));
	if (!cl_have_public)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("consent_ledger signing key is not loaded"),
				 errhint("Add consent_ledger to shared_preload_libraries and restart the server.")));
	return cl_public;
}

const uint8_t *
cl_keys_id(void)
{
	(void) cl_keys_public();
	return cl_keyid;
}

const char *
cl_keys_rotation_note(void)
{
	return cl_rotation[0] ? cl_rotation : NULL;
}
