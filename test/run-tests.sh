#!/usr/bin/env bash
# The whole test suite, as CI runs it:  bash test/run-tests.sh
#
# As root it installs missing Debian packages, builds and installs the
# extension, then runs every suite as the "postgres" user on a private
# copy of the tree (PostgreSQL refuses to run as root), each suite on its
# own private port and socket directory:
#
#   unit       pure-C unit tests and the offline verifier (prove)
#   fuzz       each libFuzzer target for a few seconds (prove)
#   regress    pg_regress, sql/ + expected/, on a preloaded temp instance
#   isolation  isolation specs, test/isolation/specs/, on a temp instance
#   pgtap      test/pgtap/*.sql with pg_prove on a temp instance
#   tap        test/tap/*.pl (crash, restart, replica, dump/restore) with prove
#   package    root only, last: builds the Debian package, installs it with
#              apt-get, runs the regression suite against it (installcheck),
#              then purges it and puts back what was at its paths
#              (test/package.sh)
#
# As another user it installs into the PostgreSQL found first in PATH
# (pg_config), which must be writable by that user (a private prefix); it
# refuses to run a suite that needs a server otherwise.  Either way it then starts a server and checks
# that the library it loads is the tree's build (consent_ledger.build_id
# against "make print-build-id"), so it never tests a stale install.
#
# A suite fails when a test fails, when its runner exits non-zero for any
# reason (pg_regress exits 2 when it cannot stop its server, after every
# test printed ok), and when a log of a server the suite started shows a
# crash: "terminated by signal", "terminated by exception", PANIC, TRAP
# (assertion failure), or a sanitizer report.  The logs of the pg_regress,
# isolation and pgTAP servers are scanned strictly.  TAP tests kill server
# processes on purpose; a "(PID n) was terminated by signal 9" line in a TAP
# node's log is accepted only when the same test's regress_log says
# "SIGKILL to backend n" (the note a test writes right before its kill),
# everything else counts as a crash there too.
#
# It ends with the runners' own summaries, a line naming the unit counted,
# and one line of its own, "N passed, N failed".  The unit is the test point:
# one per pg_regress/isolation test ("... ok" lines), one per TAP assertion
# ("ok N" lines of prove -v), counted, never derived; a skipped assertion is
# not counted as passed (the summary lists skips).  Failed points are
# "FAILED"/"not ok" lines, plus one per TAP file that ended badly without a
# failed assertion, one per runner that exited non-zero without a failed
# test, and one per crash found in a server log.  Exit status 0 only when
# nothing failed.  SUITES="unit regress" limits the run; FUZZ_SECONDS sets
# the fuzzing time per target (default 5); CL_PORT_BASE moves the private
# ports (default 55610) so that two checkouts can run their suites at once.
# A failing TODO assertion ("not ok ... # TODO") counts as failed.  The
# run's temporary directory ($TMPDIR, default /tmp) is removed when nothing
# failed and kept, its path printed before the summary, when something did.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/deps.sh"

SUITES=${SUITES:-"unit fuzz regress isolation pgtap tap package"}
FUZZ_SECONDS=${FUZZ_SECONDS:-5}
CL_PORT_BASE=${CL_PORT_BASE:-55610}
RUNAS=""

if [ "$(id -u)" = 0 ]; then
	cl_install_deps || exit 1
	RUNAS="postgres"
else
	cl_install_deps || exit 1
fi
PGBIN=$(pg_config --bindir)
PGXS_DIR=$(dirname "$(pg_config --pgxs)")/..
make -C "$here" -s >/dev/null || { echo "build failed"; make -C "$here"; exit 1; }
needs_server=0
case " $SUITES " in *" regress "*|*" isolation "*|*" pgtap "*|*" tap "*) needs_server=1;; esac
if [ -z "$RUNAS" ] && [ $needs_server = 1 ] && { [ ! -w "$(pg_config --pkglibdir)" ] || [ ! -w "$(pg_config --sharedir)/extension" ]; }; then
	echo "refusing to run: $(id -un) cannot install into $(pg_config --pkglibdir); the servers would load" >&2
	echo "whatever consent_ledger is installed there, not this tree.  Run as root, or put the bin" >&2
	echo "directory of a PostgreSQL installed in a prefix you own first in PATH." >&2
	exit 1
fi
if [ -n "$RUNAS" ] || [ $needs_server = 1 ]; then
	make -C "$here" -s install >/dev/null || { echo "install failed"; exit 1; }
fi
tree_build_id=$(make -C "$here" -s print-build-id)
# Everything a run makes (a copy of the tree, servers' data directories and
# logs, diffs: some 170 MB) goes into one directory under $TMPDIR (default
# /tmp).  It is removed when nothing failed, and kept, with its path
# printed before the summary, when something did.
work=$(mktemp -d "${TMPDIR:-/tmp}/consent_ledger_test.XXXXXX") || { echo "cannot create a temporary directory"; exit 1; }
chmod 755 "$work"
(cd "$here" && tar --exclude=.git -cf - .) | tar -xf - -C "$work"
[ -n "$RUNAS" ] && chown -R postgres:postgres "$work"

as_user() {
	if [ -n "$RUNAS" ]; then
		su "$RUNAS" -s /bin/bash -c "$1"
	else
		bash -c "$1"
	fi
}

summary="$work/summary.txt"
: > "$summary"
chmod 666 "$summary"
pass=0
fail=0
skip=0

# A runner's exit status: non-zero counts as one failure unless the runner
# already reported failed tests and exited with its ordinary failure status 1.
check_status() {
	local name=$1 status=$2 failed_before=$3
	[ "$status" = 0 ] && return
	if [ "$status" = 1 ] && [ "$fail" -gt "$failed_before" ]; then
		return
	fi
	echo "$name: runner exited with status $status" >> "$summary"
	fail=$((fail + 1))
}

# prove -v output -> counted "ok"/"not ok" test points; a file that ended
# badly (died, bad plan, non-zero exit) without a failed point counts once
count_prove() {
	local out=$1 name=$2 ok bad skipped todo badfiles
	ok=$(grep -cE '^ok [0-9]+' "$out")
	skipped=$(grep -ciE '^ok [0-9]+.*# *skip' "$out")
	todo=$(grep -ciE '^not ok [0-9]+.*# *todo' "$out")
	bad=$(grep -cE '^not ok [0-9]+' "$out")
	badfiles=$(sed -n '/^Test Summary Report/,$p' "$out" | grep -cE '\(Wstat: [0-9]+ Tests: [0-9]+ Failed: 0\)')
	# a failing TODO is a failure like any other: a known defect is fixed
	# or its test made honest, not left printing "not ok"
	ok=$((ok - skipped))
	bad=$((bad + badfiles))
	pass=$((pass + ok))
	fail=$((fail + bad))
	skip=$((skip + skipped))
	grep -E '^(Files=|Result:)' "$out" >> "$summary"
	echo "$name: $ok passed, $bad failed, $skipped skipped, $todo todo (assertions)" >> "$summary"
}

# pg_regress output -> counts of "ok"/"FAILED" test lines
count_regress() {
	local out=$1 name=$2 ok bad
	ok=$(grep -cE '^(test | +)?[a-z0-9_ -]+\.\.\. ok|^ok [0-9]+' "$out")
	bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+' "$out")
	if [ "$ok" = 0 ] && [ "$bad" = 0 ]; then bad=1; fi
	pass=$((pass + ok))
	fail=$((fail + bad))
	echo "$name: $ok passed, $bad failed (tests)" >> "$summary"
}

crash_re='terminated by signal|terminated by exception|PANIC:|TRAP:|Sanitizer|runtime error:'

# Scans server logs strictly: every crash line is a failure.
scan_logs() {
	local name=$1 f hits n=0
	shift
	for f in "$@"; do
		[ -f "$f" ] || continue
		hits=$(grep -E "$crash_re" "$f")
		[ -n "$hits" ] || continue
		echo "$name: crash in server log $f:" >> "$summary"
		echo "$hits" | head -5 | sed 's/^/    /' >> "$summary"
		n=$((n + $(echo "$hits" | wc -l)))
	done
	fail=$((fail + n))
}

# Scans the TAP nodes' logs: a SIGKILL the test announced in its regress_log
# ("SIGKILL to backend PID") is deliberate; every other crash line counts.
scan_tap_logs() {
	local logdir=$1 f test reglog line pid n=0
	for f in "$logdir"/*.log; do
		[ -f "$f" ] || continue
		case $f in */regress_log_*) continue;; esac
		test=$(basename "$f" .log)
		reglog=$(ls "$logdir"/regress_log_* 2>/dev/null | while read -r r; do
			case $test in "${r##*/regress_log_}"_*) echo "$r";; esac; done | head -1)
		while IFS= read -r line; do
			pid=$(echo "$line" | sed -nE 's/.*\(PID ([0-9]+)\) was terminated by signal 9:.*/\1/p')
			if [ -n "$pid" ] && [ -n "$reglog" ] && grep -q "SIGKILL to backend $pid\b" "$reglog"; then
				continue
			fi
			echo "tap: crash in server log $f:" >> "$summary"
			echo "    $line" >> "$summary"
			n=$((n + 1))
		done < <(grep -E "$crash_re" "$f")
	done
	fail=$((fail + n))
}

env_common="export PATH=$PGBIN:\$PATH LC_ALL=C.UTF-8 LANG=C.UTF-8; cd $work"

# The servers must load the tree's library, not an older install.
check_build_id() {
	local d=$work/tmp_build_id port=$CL_PORT_BASE loaded status before=$fail
	as_user "$env_common && initdb -D $d/data -A trust -E UTF8 --no-locale >$work/build_id_initdb.log 2>&1 && \
		{ cat test/regress.conf; echo \"port = $port\"; echo \"unix_socket_directories = '$d'\"; echo \"listen_addresses = ''\"; } >> $d/data/postgresql.conf && \
		pg_ctl -D $d/data -l $d/server.log -w start >/dev/null && \
		psql -X -A -t -h $d -p $port -d postgres -c 'SHOW consent_ledger.build_id' > $d/build_id; \
		s=\$?; pg_ctl -D $d/data -m fast -w stop >/dev/null || s=1; exit \$s"
	status=$?
	loaded=$(cat "$d/build_id" 2>/dev/null)
	check_status "build id check" "$status" "$before"
	if [ "$loaded" != "$tree_build_id" ]; then
		echo "build id: the server loaded consent_ledger ${loaded:-(none)}, the tree is $tree_build_id" | tee -a "$summary"
		fail=$((fail + 1))
	else
		echo "build id: the server loaded this tree's consent_ledger ($loaded)" | tee -a "$summary"
	fi
	scan_logs "build id check" "$d/server.log"
}

[ $needs_server = 1 ] && check_build_id

for suite in $SUITES; do
	echo "=== $suite"
	out="$work/$suite.out"
	before=$fail
	case $suite in
		unit)
			as_user "$env_common && make -s unit >/dev/null && CL_VERIFY=$work/consent-ledger-verify CL_MAKE_EXPORT=$work/test/unit/bin/make_export prove -v test/unit/bin/test_* test/unit/test_verifier.sh" > "$out" 2>&1
			status=$?
			grep -vE '^ok [0-9]+' "$out"; count_prove "$out" unit;;
		fuzz)
			as_user "$env_common && prove -v test/fuzz/run.sh :: $FUZZ_SECONDS" > "$out" 2>&1
			status=$?
			grep -vE '^ok [0-9]+' "$out"; count_prove "$out" fuzz;;
		regress)
			as_user "$env_common && $PGXS_DIR/test/regress/pg_regress --temp-instance=$work/tmp_regress \
				--temp-config=test/regress.conf --port=$((CL_PORT_BASE + 1)) --bindir=$PGBIN --inputdir=. --outputdir=$work/regress \
				--dbname=contrib_regression --load-extension=consent_ledger $(cd "$here" && ls sql/*.sql | sed 's,sql/,,; s,\.sql$,,' | tr '\n' ' ')" > "$out" 2>&1
			status=$?
			cat "$out"
			[ -f "$work/regress/regression.diffs" ] && head -200 "$work/regress/regression.diffs"
			count_regress "$out" "pg_regress"
			scan_logs pg_regress "$work/regress/log/postmaster.log";;
		isolation)
			as_user "$env_common && $PGXS_DIR/test/isolation/pg_isolation_regress --temp-instance=$work/tmp_iso \
				--temp-config=test/regress.conf --port=$((CL_PORT_BASE + 2)) --bindir=$PGBIN --inputdir=test/isolation \
				--outputdir=$work/isolation --dbname=isolation_regression \
				$(cd "$here" && ls test/isolation/specs/*.spec | sed 's,.*/,,; s,\.spec$,,' | tr '\n' ' ')" > "$out" 2>&1
			status=$?
			cat "$out"
			[ -f "$work/isolation/regression.diffs" ] && head -200 "$work/isolation/regression.diffs"
			count_regress "$out" "isolation"
			scan_logs isolation "$work/isolation/log/postmaster.log";;
		pgtap)
			as_user "$env_common && PG_PROVE_OPTS=--verbose bash test/pgtap/run.sh $work/tmp_pgtap $((CL_PORT_BASE + 3))" > "$out" 2>&1
			status=$?
			grep -vE '^ok [0-9]+' "$out"; count_prove "$out" pgtap
			scan_logs pgtap "$work/tmp_pgtap/server.log";;
		tap)
			as_user "$env_common && PG_REGRESS=$PGXS_DIR/test/regress/pg_regress TEMP_CONFIG=$work/test/regress.conf \
				PERL5LIB=$PGXS_DIR/test/perl:$work/test/tap CL_VERIFY=$work/consent-ledger-verify \
				PG_TEST_TIMEOUT_DEFAULT=120 prove -v -I test/tap test/tap/*.pl" > "$out" 2>&1
			status=$?
			grep -vE '^ok [0-9]+' "$out"; count_prove "$out" tap
			scan_tap_logs "$work/tmp_check/log";;
		package)
			# root only (apt-get); runs as root on its own copies of the tree
			if [ -n "$RUNAS" ]; then
				bash "$here/test/package.sh" "$here" "$work" $((CL_PORT_BASE + 5)) > "$out" 2>&1
				status=$?
				cat "$out"
				count_regress "$out" "package"
			else
				echo "package: skipped (it installs a Debian package: run as root)" | tee -a "$summary"
				skip=$((skip + 1)); status=0
			fi;;
		*) echo "unknown suite $suite"; status=0; fail=$((fail + 1));;
	esac
	check_status "$suite" "$status" "$before"
done

if [ "$fail" != 0 ]; then
	echo "=== kept for inspection: $work (test outputs, server logs, regression.diffs; remove it when done)"
fi
echo "=== summary"
cat "$summary"
echo "counted unit: test points (pg_regress/isolation tests, TAP assertions), plus failed runners and server crashes; skipped: $skip"
echo "$pass passed, $fail failed"
if [ "$fail" = 0 ]; then
	rm -rf "$work"
	exit 0
fi
exit 1
