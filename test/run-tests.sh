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
#
# It ends with the runners' own summaries and one line of its own,
# "N passed, N failed", summed over every suite.  Exit status 0 only when
# nothing failed.  SUITES="unit regress" limits the run; FUZZ_SECONDS sets
# the fuzzing time per target (default 5); CL_PORT_BASE moves the private
# ports (default 55610) so that two checkouts can run their suites at once.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/deps.sh"

SUITES=${SUITES:-"unit fuzz regress isolation pgtap tap"}
FUZZ_SECONDS=${FUZZ_SECONDS:-5}
CL_PORT_BASE=${CL_PORT_BASE:-55610}
PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
PGXS_DIR=$(dirname "$(pg_config --pgxs 2>/dev/null || echo /usr/lib/postgresql/15/lib/pgxs/src/makefiles/pgxs.mk)")/..
RUNAS=""

if [ "$(id -u)" = 0 ]; then
	cl_install_deps || exit 1
	PGBIN=$(pg_config --bindir)
	PGXS_DIR=$(dirname "$(pg_config --pgxs)")/..
	make -C "$here" -s >/dev/null || { echo "build failed"; make -C "$here"; exit 1; }
	make -C "$here" -s install >/dev/null || { echo "install failed"; exit 1; }
	work=$(mktemp -d /tmp/consent_ledger_test.XXXXXX)
	(cd "$here" && tar --exclude=.git -cf - .) | tar -xf - -C "$work"
	chown -R postgres:postgres "$work"
	RUNAS="postgres"
else
	make -C "$here" -s >/dev/null || exit 1
	work=$(mktemp -d /tmp/consent_ledger_test.XXXXXX)
	(cd "$here" && tar --exclude=.git -cf - .) | tar -xf - -C "$work"
fi

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

# prove output -> counts (Tests=N, and "Failed: k" per failing file;
# a file that died without a plan counts as one failure)
count_prove() {
	local out=$1 tests failed parse
	tests=$(grep -oE 'Tests=[0-9]+' "$out" | tail -1 | cut -d= -f2)
	tests=${tests:-0}
	failed=$(grep -oE 'Failed: [0-9]+\)' "$out" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
	failed=${failed:-0}
	parse=$(grep -cE 'Parse errors|Bad plan|No plan found|Dubious' "$out")
	if ! grep -q '^Result: PASS' "$out" && [ "$failed" = 0 ]; then
		failed=$(( parse > 0 ? parse : 1 ))
	fi
	pass=$((pass + tests - failed))
	fail=$((fail + failed))
	grep -E '^(Files=|Result:)' "$out" >> "$summary"
}

# pg_regress output -> counts of "ok"/"FAILED" test lines
count_regress() {
	local out=$1 name=$2 ok bad
	ok=$(grep -cE '^(test | +)?[a-z0-9_ -]+\.\.\. ok|^ok [0-9]+' "$out")
	bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+' "$out")
	if [ "$ok" = 0 ] && [ "$bad" = 0 ]; then bad=1; fi
	pass=$((pass + ok))
	fail=$((fail + bad))
	echo "$name: $ok passed, $bad failed" >> "$summary"
}

env_common="export PATH=$PGBIN:\$PATH LC_ALL=C.UTF-8 LANG=C.UTF-8; cd $work"

for suite in $SUITES; do
	echo "=== $suite"
	out="$work/$suite.out"
	case $suite in
		unit)
			as_user "$env_common && make -s unit >/dev/null && CL_VERIFY=$work/consent-ledger-verify CL_MAKE_EXPORT=$work/test/unit/bin/make_export prove test/unit/bin/test_* test/unit/test_verifier.sh" > "$out" 2>&1
			cat "$out"; count_prove "$out";;
		fuzz)
			as_user "$env_common && prove test/fuzz/run.sh :: $FUZZ_SECONDS" > "$out" 2>&1
			cat "$out"; count_prove "$out";;
		regress)
			as_user "$env_common && $PGXS_DIR/test/regress/pg_regress --temp-instance=$work/tmp_regress \
				--temp-config=test/regress.conf --port=$((CL_PORT_BASE + 1)) --bindir=$PGBIN --inputdir=. --outputdir=$work/regress \
				--dbname=contrib_regression --load-extension=consent_ledger $(cd "$here" && ls sql/*.sql | sed 's,sql/,,; s,\.sql$,,' | tr '\n' ' ')" > "$out" 2>&1
			cat "$out"
			[ -f "$work/regress/regression.diffs" ] && head -200 "$work/regress/regression.diffs"
			count_regress "$out" "pg_regress";;
		isolation)
			as_user "$env_common && $PGXS_DIR/test/isolation/pg_isolation_regress --temp-instance=$work/tmp_iso \
				--temp-config=test/regress.conf --port=$((CL_PORT_BASE + 2)) --bindir=$PGBIN --inputdir=test/isolation \
				--outputdir=$work/isolation --dbname=isolation_regression \
				$(cd "$here" && ls test/isolation/specs/*.spec | sed 's,.*/,,; s,\.spec$,,' | tr '\n' ' ')" > "$out" 2>&1
			cat "$out"
			[ -f "$work/isolation/regression.diffs" ] && head -200 "$work/isolation/regression.diffs"
			count_regress "$out" "isolation";;
		pgtap)
			as_user "$env_common && bash test/pgtap/run.sh $work/tmp_pgtap $((CL_PORT_BASE + 3))" > "$out" 2>&1
			cat "$out"; count_prove "$out";;
		tap)
			as_user "$env_common && PG_REGRESS=$PGXS_DIR/test/regress/pg_regress TEMP_CONFIG=$work/test/regress.conf \
				PERL5LIB=$PGXS_DIR/test/perl:$work/test/tap CL_VERIFY=$work/consent-ledger-verify \
				PG_TEST_TIMEOUT_DEFAULT=120 prove -I test/tap test/tap/*.pl" > "$out" 2>&1
			cat "$out"; count_prove "$out";;
		*) echo "unknown suite $suite"; fail=$((fail + 1));;
	esac
done

echo "=== summary"
cat "$summary"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
