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

#include "consent_ledger.h"

#define CL_KEY_DIR			"consent_ledger"
#define CL_DEFAULT_KEY		"signing.key"
#define CL_LAST_PUBLIC		"last_public_key"
#define CL_KEYFILE_MAX		1024

static unsigned char *cl_secret = NULL;	/* sodium_malloc'd, 64 bytes */
static uint8_t cl_public[CL_PUBKEY_LEN];
static uint8_t cl_keyid[CL_KEYID_LEN];
static bool cl_have_public = false;
static char cl_rotation[CL_MAX_NOTE];	/* signed by the previous key, or "" */

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
				 errhint("Set consent_ledger.signing_key_file to a readable Ed25519 key file, or leave it empty to use a key generated in the data directory.")));
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

/*
 * When the key changed since the last start and the previous secret key is
 * still at hand (the generated default key, after an administrator
 * configured a key file of their own), sign a rotation statement with the
 * previous key.  The sealer stores it with the new key in
 * consent_ledger.keys, so auditors can follow the chain of keys.
 */
static void
endorse_rotation(const char *defpath, const char *lastpub_b64)
{
	unsigned char *oldsk;
	uint8_t		oldpk[CL_PUBKEY_LEN];
	uint8_t		oldid[CL_KEYID_LEN];
	char		oldb64[64];
	char		newb64[64];
	char		body[512];
	uint8_t		sig[CL_SIG_LEN];
	size_t		len;

	if (access(defpath, R_OK) != 0)
		return;
	oldsk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (oldsk == NULL)
		return;
	read_key_file(defpath, oldsk, oldpk);
	cl_base64_encode(oldpk, CL_PUBKEY_LEN, oldb64);
	if (strcmp(oldb64, lastpub_b64) == 0)
	{
		cl_base64_encode(cl_public, CL_PUBKEY_LEN, newb64);
		snprintf(body, sizeof(body),
				 "consent_ledger key rotation\nold %s\nnew %s\ntime %lld\n",
				 oldb64, newb64, (long long) time(NULL));
		crypto_sign_detached(sig, NULL, (const unsigned char *) body,
							 strlen(body), oldsk);
		cl_key_id(CL_KEY_NAME, oldpk, oldid);
		len = strlen(body);
		memcpy(cl_rotation, body, len);
		if (cl_note_append_signature(cl_rotation, len, sizeof(cl_rotation),
									 CL_KEY_NAME, oldid, sig) == 0)
			cl_rotation[0] = '\0';
	}
	sodium_free(oldsk);
}

/*
 * Postmaster start: load (or on first start, create) the signing key.
 */
void
cl_keys_load(void)
{
	char		dir[MAXPGPATH];
	char		defpath[MAXPGPATH];
	char		lastpath[MAXPGPATH];
	char		lastpub[128];
	char		pubb64[64];
	const char *path;

	snprintf(dir, sizeof(dir), "%s/%s", DataDir, CL_KEY_DIR);
	snprintf(defpath, sizeof(defpath), "%s/%s", dir, CL_DEFAULT_KEY);
	snprintf(lastpath, sizeof(lastpath), "%s/%s", dir, CL_LAST_PUBLIC);

	if (mkdir(dir, S_IRWXU) != 0 && errno != EEXIST)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", dir)));

	if (cl_signing_key_file != NULL && cl_signing_key_file[0] != '\0')
		path = cl_signing_key_file;
	else
	{
		path = defpath;
		if (access(defpath, F_OK) != 0)
		{
			generate_key_file(defpath);
			ereport(LOG,
					(errmsg("consent_ledger generated a new signing key in \"%s\"", defpath)));
		}
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

	cl_rotation[0] = '\0';
	if (read_small_file(lastpath, lastpub, sizeof(lastpub)) &&
		strcmp(lastpub, pubb64) != 0)
	{
		ereport(LOG,
				(errmsg("consent_ledger signing key changed since the last start (previous public key %s)",
						lastpub)));
		if (path != defpath)
			endorse_rotation(defpath, lastpub);
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
