#!/usr/bin/env bash
# Shared helpers of test/reliability/valgrind.sh and sanitize.sh (sourced).
#
# rel_setup NAME       the temp dir ($rel_tmp, owned by the run user), PGBIN,
#                      PGXS_DIR, and a copy of the test inputs in $rel_tmp/src
# rel_as_user CMD      runs CMD as the "postgres" user when we are root
# rel_build_install [MAKE ARGS...]   make && make install (root only)
# rel_initdb PORT      initdb of $rel_tmp/data with test/regress.conf, the
#                      port, the socket in $rel_tmp, no TCP, plus $rel_extra_conf
# rel_wait_ready SECS PORT [PID]  waits until the server accepts connections
#                      (gives up early when process PID is gone)
# rel_run_suites PORT  pg_regress (sql/, expected/) and pg_isolation_regress
#                      (test/isolation/specs) with --use-existing against it;
#                      sets rel_regress_ok/_bad, rel_iso_ok/_bad; each runner
#                      is killed after $rel_timeout seconds (default 3600);
#                      REL_PGTAP=1 also runs test/pgtap/*.sql (pg_prove)
# rel_stop SECS        pg_ctl stop -m fast (then immediate)
set -u

rel_here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

rel_setup() {
	local name=$1
	PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
	PGXS_DIR=$(dirname "$(pg_config --pgxs 2>/dev/null || echo /usr/lib/postgresql/15/lib/pgxs/src/makefiles/pgxs.mk)")/..
	RUNAS=""
	[ "$(id -u)" = 0 ] && RUNAS=postgres
	rel_tmp=$(mktemp -d "${TMPDIR:-/tmp}/cl_$name.XXXXXX") || exit 2
	mkdir -p "$rel_tmp/src/test" "$rel_tmp/logs"
	cp -r "$rel_here/sql" "$rel_here/expected" "$rel_tmp/src/"
	cp -r "$rel_here/test/isolation" "$rel_here/test/regress.conf" "$rel_tmp/src/test/"
	rm -rf "$rel_tmp/src/test/isolation/output_iso"
	[ -n "$RUNAS" ] && chown -R "$RUNAS" "$rel_tmp"
	rel_regress_tests=$(cd "$rel_tmp/src" && ls sql/*.sql | sed 's,sql/,,; s,\.sql$,,' | tr '\n' ' ')
	rel_iso_tests=$(cd "$rel_tmp/src/test/isolation" && ls specs/*.spec | sed 's,specs/,,; s,\.spec$,,' | tr '\n' ' ')
}

rel_as_user() {
	if [ -n "$RUNAS" ]; then
		su "$RUNAS" -s /bin/bash -c "export PATH=$PGBIN:\$PATH LC_ALL=C.UTF-8 LANG=C.UTF-8; $1"
	else
		bash -c "export PATH=$PGBIN:\$PATH LC_ALL=C.UTF-8 LANG=C.UTF-8; $1"
	fi
}

# make && make install with extra make arguments (e.g. PG_CFLAGS=...).
rel_build_install() {
	if [ "$(id -u)" != 0 ]; then
		echo "not root: using the installed build of consent_ledger"
		return 0
	fi
	make -C "$rel_here" -s "$@" >"$rel_tmp/logs/build.log" 2>&1 &&
		make -C "$rel_here" -s "$@" install >>"$rel_tmp/logs/build.log" 2>&1 || {
		echo "build or install failed:"; tail -n 40 "$rel_tmp/logs/build.log"; return 1; }
}

rel_initdb() {
	local port=$1
	rel_as_user "initdb -D '$rel_tmp/data' -A trust -E UTF8 --no-locale" >"$rel_tmp/logs/initdb.log" 2>&1 || {
		echo "initdb failed"; cat "$rel_tmp/logs/initdb.log"; return 1; }
	{
		cat "$rel_tmp/src/test/regress.conf"
		echo "port = $port"
		echo "unix_socket_directories = '$rel_tmp'"
		echo "listen_addresses = ''"
		echo "${rel_extra_conf:-}"
	} >>"$rel_tmp/data/postgresql.conf"
}

rel_wait_ready() {
	local secs=$1 port=$2 pid=${3:-} i=0
	while [ "$i" -lt "$secs" ]; do
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		if rel_as_user "pg_isready -q -h '$rel_tmp' -p $port -d postgres"; then
			return 0
		fi
		sleep 1
		i=$((i + 1))
	done
	return 1
}

# What pg_regress does for a database when it creates one itself (with
# --use-existing it does not): template0, C locale, the same settings.
rel_createdb() {
	local port=$1 db=$2 ext=${3:-}
	rel_as_user "psql -X -q -v ON_ERROR_STOP=1 -h '$rel_tmp' -p $port -d postgres" >>"$rel_tmp/logs/createdb.log" 2>&1 <<SQL || {
DROP DATABASE IF EXISTS "$db";
CREATE DATABASE "$db" TEMPLATE=template0 LC_COLLATE='C' LC_CTYPE='C';
ALTER DATABASE "$db" SET lc_messages TO 'C';
ALTER DATABASE "$db" SET lc_monetary TO 'C';
ALTER DATABASE "$db" SET lc_numeric TO 'C';
ALTER DATABASE "$db" SET lc_time TO 'C';
ALTER DATABASE "$db" SET bytea_output TO 'hex';
ALTER DATABASE "$db" SET timezone_abbreviations TO 'Default';
SQL
		echo "could not create database $db:"; tail -n 5 "$rel_tmp/logs/createdb.log"; return 1; }
	if [ -n "$ext" ]; then
		rel_as_user "psql -X -q -v ON_ERROR_STOP=1 -h '$rel_tmp' -p $port -d '$db' -c 'CREATE EXTENSION IF NOT EXISTS \"$ext\"'" \
			>>"$rel_tmp/logs/createdb.log" 2>&1 || {
			echo "could not create extension $ext in $db:"; tail -n 5 "$rel_tmp/logs/createdb.log"; return 1; }
	fi
}

rel_run_suites() {
	local port=$1
	rel_createdb "$port" contrib_regression consent_ledger
	rel_as_user "cd '$rel_tmp/src' && timeout ${rel_timeout:-3600} $PGXS_DIR/test/regress/pg_regress --use-existing \
		--host='$rel_tmp' --port=$port --bindir=$PGBIN --inputdir=. --outputdir='$rel_tmp/regress' \
		--dbname=contrib_regression --load-extension=consent_ledger $rel_regress_tests" \
		>"$rel_tmp/logs/regress.out" 2>&1
	rel_regress_ok=$(grep -cE '\.\.\. ok|^ok [0-9]+' "$rel_tmp/logs/regress.out")
	rel_regress_bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+' "$rel_tmp/logs/regress.out")
	rel_createdb "$port" isolation_regression
	rel_as_user "cd '$rel_tmp/src/test/isolation' && timeout ${rel_timeout:-3600} $PGXS_DIR/test/isolation/pg_isolation_regress --use-existing \
		--host='$rel_tmp' --port=$port --bindir=$PGBIN --inputdir=. --outputdir='$rel_tmp/isolation' \
		--dbname=isolation_regression $rel_iso_tests" \
		>"$rel_tmp/logs/isolation.out" 2>&1
	rel_iso_ok=$(grep -cE '\.\.\. ok|^ok [0-9]+' "$rel_tmp/logs/isolation.out")
	rel_iso_bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+' "$rel_tmp/logs/isolation.out")
	rel_pgtap_files=0
	rel_pgtap_result=""
	if [ "${REL_PGTAP:-0}" = 1 ]; then
		# optional: the pgTAP files too (bad input, refusals, privileges)
		cp -r "$rel_here/test/pgtap" "$rel_tmp/src/test/"
		[ -n "$RUNAS" ] && chown -R "$RUNAS" "$rel_tmp/src/test/pgtap"
		rel_createdb "$port" pgtap_regress consent_ledger &&
			rel_as_user "psql -X -q -h '$rel_tmp' -p $port -d pgtap_regress -c 'CREATE EXTENSION IF NOT EXISTS pgtap'" \
				>>"$rel_tmp/logs/createdb.log" 2>&1
		rel_as_user "cd '$rel_tmp/src' && timeout ${rel_timeout:-3600} pg_prove -h '$rel_tmp' -p $port -d pgtap_regress test/pgtap/*.sql" \
			>"$rel_tmp/logs/pgtap.out" 2>&1
		rel_pgtap_files=$(ls "$rel_tmp/src/test/pgtap/"*.sql | wc -l)
		rel_pgtap_result=$(grep -E '^(Files=|Result:)' "$rel_tmp/logs/pgtap.out" | tr '\n' ' ')
	fi
}

rel_stop() {
	local secs=${1:-300}
	[ -f "$rel_tmp/data/postmaster.pid" ] || return 0
	rel_as_user "pg_ctl -D '$rel_tmp/data' -m fast -w -t $secs stop" >>"$rel_tmp/logs/stop.log" 2>&1 ||
		rel_as_user "pg_ctl -D '$rel_tmp/data' -m immediate -w -t 60 stop" >>"$rel_tmp/logs/stop.log" 2>&1
}
