#!/usr/bin/env bash
# test/reliability/sanitize.sh — the regression and isolation suites against
# consent_ledger built with AddressSanitizer and UndefinedBehaviorSanitizer.
#                                                     (make sanitize-check)
#
# Builds a copy of the tree (so the developer's objects are untouched) with
#   make PG_CFLAGS="... -fsanitize=address,undefined -fno-omit-frame-pointer"
#        SHLIB_LINK="-lsodium -fsanitize=address,undefined" with_llvm=no
# and installs it:
#   SAN_INSTALL=private (default): into a private copy of the PostgreSQL
#     installation in the temp dir (PostgreSQL is relocatable: the copied
#     postgres finds its lib/ and share/ next to itself), so the system's
#     consent_ledger.so — which other servers on this machine load — is
#     never replaced;
#   SAN_INSTALL=system (root): over the system install, and the normal build
#     is reinstalled at the end whatever happens (trap on EXIT).
# Then as "postgres": initdb (test/regress.conf, port $SAN_PORT (55901),
# socket in the temp dir), starts the server with
#   LD_PRELOAD="$(gcc -print-file-name=libasan.so) asan_preinit.so" (see
#     asan_preinit.c: without it Debian's postgres hangs at start)
#   ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:log_path=<dir>/asan
#   UBSAN_OPTIONS=print_stacktrace=1:log_path=<dir>/ubsan
# runs pg_regress and pg_isolation_regress with --use-existing, stops it
# and reports the findings (count, kinds, stacks; which have a frame in
# consent_ledger).  Ends with "sanitize: N findings in consent_ledger over
# M regression tests (T in total)"; exits 1 on any finding in
# consent_ledger, 2 when the setup failed.
set -u
. "$(dirname "$0")/lib.sh"

port=${SAN_PORT:-55901}
mode=${SAN_INSTALL:-private}
rel_timeout=${SAN_TIMEOUT:-3600}
libasan=$(gcc -print-file-name=libasan.so)
case "$libasan" in
	/*) [ -e "$libasan" ] || { echo "sanitize: libasan not found (apt-get install libasan8 or gcc)"; exit 2; } ;;
	*) echo "sanitize: gcc does not know libasan.so"; exit 2 ;;
esac
libasan=$(readlink -f "$libasan")

rel_setup sanitize
echo "sanitize: work directory $rel_tmp ($mode install)"
san_dir="$rel_tmp/sanitizer"
mkdir -p "$san_dir" "$rel_tmp/build"
[ -n "$RUNAS" ] && chown "$RUNAS" "$san_dir"

# A clean copy of the tree to build in.
(cd "$rel_here" && tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude=consent-ledger-verify --exclude=tmp_check -cf - .) | tar -xf - -C "$rel_tmp/build"
base_cflags=$(sed -n 's/^PG_CFLAGS = //p' "$rel_here/Makefile")
san_make=(PG_CFLAGS="-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-clobbered -g -fsanitize=address,undefined -fno-omit-frame-pointer"
	SHLIB_LINK="-lsodium -fsanitize=address,undefined" with_llvm=no)
: "$base_cflags"

if ! make -C "$rel_tmp/build" -s "${san_make[@]}" >"$rel_tmp/logs/build.log" 2>&1; then
	echo "sanitize: build failed:"; tail -n 40 "$rel_tmp/logs/build.log"; exit 2
fi

restore_system() {
	echo "sanitize: reinstalling the normal build"
	make -C "$rel_here" -s >>"$rel_tmp/logs/build.log" 2>&1 &&
		make -C "$rel_here" -s install >>"$rel_tmp/logs/build.log" 2>&1 ||
		echo "sanitize: WARNING: reinstalling the normal build failed (see $rel_tmp/logs/build.log)"
}
cleanup() {
	if [ -f "$rel_tmp/data/postmaster.pid" ]; then
		rel_as_user "pg_ctl -D '$rel_tmp/data' -m immediate -w -t 60 stop" >/dev/null 2>&1
	fi
	[ "$mode" = system ] && restore_system
	rm -rf "$rel_tmp/data" "$rel_tmp/inst" "$rel_tmp/build"
}
trap cleanup EXIT
trap 'exit 3' INT TERM

case $mode in
	private)
		# copy bin/, lib/ and share/ keeping their relative layout
		bindir=$(pg_config --bindir)
		pkglibdir=$(pg_config --pkglibdir)
		sharedir=$(pg_config --sharedir)
		for d in "$(dirname "$bindir")" "$sharedir"; do
			mkdir -p "$rel_tmp/inst$(dirname "$d")"
			cp -a "$d" "$rel_tmp/inst$(dirname "$d")/"
		done
		[ -d "$rel_tmp/inst$pkglibdir" ] || { echo "sanitize: unexpected layout ($pkglibdir)"; exit 2; }
		if ! make -C "$rel_tmp/build" -s "${san_make[@]}" DESTDIR="$rel_tmp/inst" install \
				>>"$rel_tmp/logs/build.log" 2>&1; then
			echo "sanitize: install failed:"; tail -n 20 "$rel_tmp/logs/build.log"; exit 2
		fi
		PGBIN="$rel_tmp/inst$bindir"
		got=$("$PGBIN/pg_config" --pkglibdir)
		[ "$got" = "$rel_tmp/inst$pkglibdir" ] || {
			echo "sanitize: the private installation is not relocatable ($got)"; exit 2; }
		[ -n "$RUNAS" ] && chown -R "$RUNAS" "$rel_tmp/inst"
		;;
	system)
		[ "$(id -u)" = 0 ] || { echo "sanitize: SAN_INSTALL=system needs root"; exit 2; }
		if ! make -C "$rel_tmp/build" -s "${san_make[@]}" install >>"$rel_tmp/logs/build.log" 2>&1; then
			echo "sanitize: install failed:"; tail -n 20 "$rel_tmp/logs/build.log"; exit 2
		fi
		;;
	*) echo "sanitize: SAN_INSTALL must be private or system"; exit 2;;
esac
nm -D "$rel_tmp/build/consent_ledger.so" | grep -q __asan_init ||
	{ echo "sanitize: the build is not instrumented"; exit 2; }

# libasan must initialize before libgpg-error's constructor calls
# bindtextdomain() (see asan_preinit.c): a small interposer, preloaded second.
if ! gcc -shared -fPIC -O2 -o "$rel_tmp/asan_preinit.so" "$rel_here/test/reliability/asan_preinit.c" -ldl \
		>>"$rel_tmp/logs/build.log" 2>&1; then
	echo "sanitize: could not build asan_preinit.so"; exit 2
fi
chmod 755 "$rel_tmp/asan_preinit.so"
if ! timeout 20 env LD_PRELOAD="$libasan $rel_tmp/asan_preinit.so" ASAN_OPTIONS=detect_leaks=0 \
		"$PGBIN/postgres" -V >/dev/null 2>&1; then
	echo "sanitize: postgres -V does not run with libasan preloaded"; exit 2
fi

rel_initdb "$port" || exit 2
san_env="LD_PRELOAD='$libasan $rel_tmp/asan_preinit.so' ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:log_path=$san_dir/asan:detect_odr_violation=0 \
UBSAN_OPTIONS=print_stacktrace=1:log_path=$san_dir/ubsan"
start=$(date +%s)
if ! rel_as_user "env $san_env pg_ctl -D '$rel_tmp/data' -l '$rel_tmp/logs/server.log' -w -t 120 start" \
		>"$rel_tmp/logs/start.log" 2>&1; then
	echo "sanitize: the server did not start:"; tail -n 30 "$rel_tmp/logs/server.log"; cat "$san_dir"/* 2>/dev/null | head -40
	exit 2
fi
pid=$(head -n 1 "$rel_tmp/data/postmaster.pid")
grep -q libasan "/proc/$pid/maps" || { echo "sanitize: libasan is not loaded in the postmaster"; exit 2; }
so_path=$rel_tmp/inst$(pg_config --pkglibdir)/consent_ledger.so
[ "$mode" = system ] && so_path=$(pg_config --pkglibdir)/consent_ledger.so
grep -q "$so_path" "/proc/$pid/maps" || { echo "sanitize: the postmaster did not load $so_path"; exit 2; }
nm -D "$so_path" | grep -q __asan_init || { echo "sanitize: $so_path is not the instrumented build"; exit 2; }
echo "sanitize: server up (postmaster $pid, libasan preloaded, instrumented $so_path loaded); running the suites"

rel_run_suites "$port"
echo "sanitize: pg_regress $rel_regress_ok ok, $rel_regress_bad failed;" \
	"isolation $rel_iso_ok ok, $rel_iso_bad failed ($(( $(date +%s) - start )) s)"
grep -E '\.\.\. FAILED|^not ok' "$rel_tmp/logs/regress.out" "$rel_tmp/logs/isolation.out" | sed 's/^/  /'
[ -n "$rel_pgtap_result" ] && echo "sanitize: pgTAP ($rel_pgtap_files files): $rel_pgtap_result"
rel_stop 120

crashes=$(grep -cE 'terminated by signal|exited with exit code [^01]|was terminated' "$rel_tmp/logs/server.log")
echo "sanitize: server log: $crashes abnormal process exits"
grep -E 'terminated by signal|exited with exit code [^01]' "$rel_tmp/logs/server.log" | head -n 10 | sed 's/^/  /'

# Findings: one ASan report per file (ASan stops the process), any number
# of UBSan "runtime error:" reports per file.
total=0
ours=0
for f in "$san_dir"/asan.* "$san_dir"/ubsan.*; do
	[ -f "$f" ] || continue
	n=$(grep -cE 'ERROR: AddressSanitizer|runtime error:' "$f")
	[ "$n" -gt 0 ] || n=1
	m=0
	# frames of the extension: its .so, or its sources (libasan prints them
	# relative to the build directory: "in cl_verify src/verify.c:123")
	if grep -qE "consent_ledger\.so|$rel_tmp/build/|(^|[ (/])src/[a-z_]+\.c:[0-9]+" "$f"; then m=$n; fi
	total=$((total + n))
	ours=$((ours + m))
	echo "--- $(basename "$f"): $n finding(s)$([ "$m" -gt 0 ] && echo ', consent_ledger on the stack')"
	grep -E 'ERROR: AddressSanitizer|runtime error:|^ *#[0-9]+ |^SUMMARY' "$f" | head -n 40 | sed 's/^/  /'
done
ntests=$((rel_regress_ok + rel_regress_bad + rel_iso_ok + rel_iso_bad))
echo "sanitize: logs in $rel_tmp/logs and $san_dir"
echo "sanitize: $ours findings in consent_ledger over $ntests regression tests ($total in total)"
[ "$ours" = 0 ]
