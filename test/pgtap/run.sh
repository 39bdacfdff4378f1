#!/usr/bin/env bash
# pgTAP suite:  bash test/pgtap/run.sh DIR PORT
#
# Starts a private server in DIR (data directory DIR/data, Unix socket in
# DIR, no TCP) configured with test/regress.conf, creates the database
# pgtap_regress with pgtap and consent_ledger, runs every test/pgtap/*.sql
# with pg_prove (PG_PROVE_OPTS, e.g. --verbose, are passed on), stops the
# server, and exits with pg_prove's status, or 1 when the server could not
# be stopped.
# Run it as a non-root user with the PostgreSQL bin directory in PATH
# (test/run-tests.sh does both).
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 DIR PORT" >&2
	exit 2
fi
dir=$1
port=$2
if [ -z "$dir" ] || [ "$dir" = / ] || [ -z "$port" ]; then
	echo "$0: DIR and PORT must be non-empty (and DIR not /)" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")/../.." && pwd)

rm -rf "$dir"
mkdir -p "$dir" || exit 1
dir=$(cd "$dir" && pwd)
data="$dir/data"
log="$dir/server.log"

if ! initdb -D "$data" -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1; then
	echo "initdb failed:" >&2
	cat "$dir/initdb.log" >&2
	exit 1
fi
{
	cat "$here/test/regress.conf"
	echo "port = $port"
	echo "unix_socket_directories = '$dir'"
	echo "listen_addresses = ''"
} >>"$data/postgresql.conf"

stop_server() {
	pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1
}
trap stop_server EXIT

if ! pg_ctl -D "$data" -l "$log" -w start >/dev/null 2>&1; then
	echo "could not start the server:" >&2
	cat "$log" >&2
	exit 1
fi

export PGHOST=$dir PGPORT=$port
if ! createdb pgtap_regress; then
	echo "createdb failed" >&2
	exit 1
fi
if ! psql -X -q -v ON_ERROR_STOP=1 -d pgtap_regress \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION consent_ledger'; then
	echo "could not create the extensions:" >&2
	tail -n 20 "$log" >&2
	exit 1
fi

cd "$here" || exit 1
pg_prove ${PG_PROVE_OPTS:-} -h "$dir" -p "$port" -d pgtap_regress test/pgtap/*.sql
status=$?
trap - EXIT
if ! pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1; then
	echo "could not stop the server" >&2
	[ "$status" = 0 ] && status=1
fi
if [ "$status" != 0 ]; then
	echo "--- last lines of the server log ($log)" >&2
	tail -n 40 "$log" >&2
fi
exit "$status"
