/*
 * asan_preinit.c -- preloaded after libasan by test/reliability/sanitize.sh.
 *
 * Debian's postgres links libsystemd -> libgcrypt -> libgpg-error, whose
 * constructor calls bindtextdomain() before libasan's own constructor has
 * run (a preloaded library is initialized after the libraries that load
 * later).  glibc's bindtextdomain() calls malloc() while it holds the
 * gettext lock; libasan then initializes lazily inside that malloc(), and
 * its initialization calls dlerror() -> dcgettext(), which takes the same
 * lock: the lock's reader count underflows and the first gettext call in
 * main() hangs for ever (postgres -V, pg_ctl start, psql -V all hang).
 *
 * Interposing bindtextdomain() lets us make the first malloc() -- and so
 * libasan's initialization -- happen before the lock is taken.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char	   *bindtextdomain(const char *domain, const char *dir);

char *
bindtextdomain(const char *domain, const char *dir)
{
	static char *(*real) (const char *, const char *);
	void	   *volatile p = malloc(1);	/* volatile: not optimized away */

	free(p);
	if (real == NULL)
		real = (char *(*) (const char *, const char *)) dlsym(RTLD_NEXT, "bindtextdomain");
	return real(domain, dir);
}
