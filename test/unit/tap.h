/*-------------------------------------------------------------------------
 * tap.h
 *	  The TAP output of the pure-C unit tests (included by each test_*.c:
 *	  one copy of the helpers, static in every test program).
 *-------------------------------------------------------------------------
 */
#ifndef CL_UNIT_TAP_H
#define CL_UNIT_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * TAP output is collected and printed at the end, so that the plan
 * "1..N" can come first.
 */
static char *tap_out = NULL;
static size_t tap_len = 0;
static size_t tap_cap = 0;
static int	tap_count = 0;
static int	tap_failed = 0;

/* Appends formatted text to the TAP buffer; exits 2 when out of memory. */
static void
tap_printf(const char *fmt,...)
{
	va_list		ap;
	int			n;

	for (;;)
	{
		va_start(ap, fmt);
		n = vsnprintf(tap_out ? tap_out + tap_len : NULL,
					  tap_out ? tap_cap - tap_len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			exit(2);
		if (tap_out != NULL && tap_len + (size_t) n < tap_cap)
			break;
		tap_cap = (tap_cap + (size_t) n + 1) * 2;
		tap_out = realloc(tap_out, tap_cap);
		if (tap_out == NULL)
			exit(2);
	}
	tap_len += (size_t) n;
}

/* Records one test result. */
static void
ok(bool cond, const char *fmt,...)
{
	char		name[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	tap_count++;
	if (!cond)
		tap_failed++;
	tap_printf("%sok %d - %s\n", cond ? "" : "not ", tap_count, name);
}

/* Prints the plan and the results; returns the exit status. */
static int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	if (tap_out)
		fwrite(tap_out, 1, tap_len, stdout);
	if (tap_failed)
		printf("# %d of %d tests failed\n", tap_failed, tap_count);
	free(tap_out);
	return tap_failed ? 1 : 0;
}

#endif							/* CL_UNIT_TAP_H */
