#!/usr/bin/env bash
# consent_ledger benchmark harness (SPEC §8).  Not part of the test suite.
#
#   bash test/bench/run.sh [--quick|--smoke] [--seed N] [--sizes 100k,1m,4m]
#                          [--alt-sizes 10k,20k,100k] [--reps N] [--duration SECONDS]
#
# Run as root on a Debian bookworm machine, from a clone of the repository.
# It installs what it needs, builds and installs the extension, starts a
# throwaway preloaded server as user postgres (port 55800, its own socket
# directory and data directory under /tmp), measures every figure of the
# SPEC's performance table against its baseline in the same run, prints one
# table and removes the server.  Results also go to test/bench/out/:
# results.txt (the printed report), results.csv (every repetition's raw
# value too) and ratios.png (the ratios against their targets).
#
# Method.  Each figure is measured side by side with its baseline in
# every repetition; the order of the sides rotates from one repetition to
# the next (base ours alt, ours alt base, alt base ours, ...), so neither
# side always runs first.  Each side of a figure that writes has a
# database of its own (one side's bloat cannot favour the other).  The
# ratio of a figure is computed per repetition from that repetition's pair
# (ours_r / baseline_r) and reported as median [min - max] of those paired
# ratios; "met?" judges the median and counts the repetitions that met the
# target.  The bulk-load figures are judged as issue #13 states their
# target: the load alone within 1.5x the plain table's, and the seal()
# of that load within another 0.5x of it (both parts and their sum, the
# ratio column, are shown).  A figure whose correctness check fails (wrong rows, a ledger
# that does not verify, a parallel plan without its workers) is INVALID,
# whatever its timings.  Timed SQL is measured inside one psql session as the
# difference of clock_timestamp() before and after the statement (the
# statement runs in autocommit, so its commit is included); pgbench figures
# use pgbench's "tps = … (without initial connection time)".  Before every
# timed load, a CHECKPOINT (untimed) so that both sides start with no dirty
# buffers; tables a timed statement reads are vacuumed first (hint bits).
#
#   --quick          1 repetition, sizes 10k,100k, alternatives at 10k,20k,
#                    pgbench runs of 10 s: a few minutes
#   --smoke          shows that the harness works, not a measurement: a
#                    100k-row warehouse, size 10k, 2 repetitions, pgbench
#                    runs of 3 s, tpcb scale 1 (about a minute)
#   --seed N         seeds setseed() for the generated data and pgbench's
#                    --random-seed (default 42; 0 <= N <= 2147483647)
#   --sizes LIST     row counts of the bulk-load and verify scaling rows
#                    (default 100k,1m,4m; k = 1000, m = 1000000)
#   --alt-sizes LIST sizes at which the PL/pgSQL + pgcrypto hash-chain
#                    trigger is loaded too (default 10k,20k,100k)
#   --reps N         repetitions per figure (default 3)
#   --duration S     length of each pgbench run (default 20)
#   --scale-subjects LIST  subject counts of the scale section (default 1m;
#                    --quick 100k, --smoke 10k; e.g. 1m,10m): bulk consent
#                    (set-wise and grant_consent(text[])) vs plain INSERT,
#                    shared memory named *consent*, a new session's 1st vs
#                    2nd protected query and its memory growth, the
#                    parallel (2 workers) protected scan
#   --scale-ledger LIST    history sizes of the scale section's ledger
#                    (default 1m; --quick 100k, --smoke 10k; e.g. 10m): a
#                    seal round of 1k rows vs an empty ledger, inclusion
#                    proof time and memory, verify memory
#   --no-scale       skips the scale section; --scale-only runs only it
#   --verify-only    runs only figure 3 (verify() vs COPY TO) at --sizes:
#                    each ledger is loaded by INSERT ... SELECT from rows
#                    drawn as the warehouse's stage (seeded), then sealed;
#                    no warehouse, no other figure, no scale section
#   --bulk-only      runs only figures 2 and 3 (bulk load by INSERT ...
#                    SELECT and COPY, then verify() of those ledgers) at
#                    --sizes, on the warehouse's stage; no other figure, no
#                    scale section
#   --erase-rows N   the table size of figure 1c (default 1m)
#   --erasure-only   runs only figures 1b and 1c (inserts with personal
#                    columns; erase_subject() of a subject with 10k rows
#                    in three tables of --erase-rows rows, default 1m,
#                    --quick 100k, --smoke 10k); no warehouse
#   --datasets-only  runs only figure 1d (issue #17): export_dataset() of a
#                    purpose view of --dataset-rows rows (default 1m,
#                    --quick 100k, --smoke 10k; half the subjects consent)
#                    vs a plain COPY (SELECT * FROM the view) TO STDOUT
#                    of the same rows, both as the analyst; no warehouse
#   --dataset-rows N the table size of figure 1d
#   --pgbench-only   runs only the pgbench figures: 1 (single-row INSERT)
#                    and 5 (tpcb-like with audit()); no warehouse
#   BENCH_NO_BUILD=1 skips make && make install (use what is installed)
#   BENCH_KEEP=1     leaves the server running and its directory in place
#   BENCH_PORT=N     the server's port (default 55800)
#   BENCH_VERIFY_MEMORY=X  sets consent_ledger.verify_memory in the
#                    server's configuration (printed with it), e.g. 0 or 1GB
#
# The results name the commit they were measured at (full hash); a tree
# with uncommitted changes is named as such ("not reproducible").
set -euo pipefail
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)   # before building anything

here=$(cd "$(dirname "$0")/../.." && pwd)
out="$here/test/bench/out"
PORT=${BENCH_PORT:-55800}
SEED=42
REPS=3
DURATION=20
SIZES="100k,1m,4m"
ALT_SIZES="10k,20k,100k"
QUICK=0
WH_ROWS=1000000          # reference warehouse: fact rows
WH_SUBJECTS=100000       # ... and data subjects
CLIENTS=8
THREADS=2
TPCB_SCALE=10

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
sizes_given=0; alt_given=0; reps_given=0; dur_given=0
SCALE=yes; SCALE_SUBJECTS=1m; SCALE_LEDGER=1m; ssub_given=0; sled_given=0
VERIFY_ONLY=0
BULK_ONLY=0
ERASURE_ONLY=0
PGBENCH_ONLY=0
DATASETS_ONLY=0
ERASE_ROWS=1m; erows_given=0
DATASET_ROWS=1m; drows_given=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--smoke) QUICK=2 ;;
	--seed) SEED=${2:?--seed needs a value}; shift ;;
	--seed=*) SEED=${1#*=} ;;
	--sizes) SIZES=${2:?--sizes needs a value}; sizes_given=1; shift ;;
	--sizes=*) SIZES=${1#*=}; sizes_given=1 ;;
	--alt-sizes) ALT_SIZES=${2:?}; alt_given=1; shift ;;
	--alt-sizes=*) ALT_SIZES=${1#*=}; alt_given=1 ;;
	--reps) REPS=${2:?}; reps_given=1; shift ;;
	--reps=*) REPS=${1#*=}; reps_given=1 ;;
	--duration) DURATION=${2:?}; dur_given=1; shift ;;
	--duration=*) DURATION=${1#*=}; dur_given=1 ;;
	--scale-subjects) SCALE_SUBJECTS=${2:?}; ssub_given=1; shift ;;
	--scale-subjects=*) SCALE_SUBJECTS=${1#*=}; ssub_given=1 ;;
	--scale-ledger) SCALE_LEDGER=${2:?}; sled_given=1; shift ;;
	--scale-ledger=*) SCALE_LEDGER=${1#*=}; sled_given=1 ;;
	--no-scale) SCALE=no ;;
	--scale-only) SCALE=only ;;
	--verify-only) VERIFY_ONLY=1; SCALE=no ;;
	--bulk-only) BULK_ONLY=1; SCALE=no ;;
	--erasure-only) ERASURE_ONLY=1; SCALE=no ;;
	--pgbench-only) PGBENCH_ONLY=1; SCALE=no ;;
	--datasets-only) DATASETS_ONLY=1; SCALE=no ;;
	--erase-rows) ERASE_ROWS=${2:?}; erows_given=1; shift ;;
	--dataset-rows) DATASET_ROWS=${2:?}; drows_given=1; shift ;;
	-h|--help) usage 0 ;;
	*) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
	esac
	shift
done
if [ "$QUICK" = 1 ]; then
	[ $sizes_given = 1 ] || SIZES="10k,100k"
	[ $alt_given = 1 ] || ALT_SIZES="10k,20k"
	[ $reps_given = 1 ] || REPS=1
	[ $dur_given = 1 ] || DURATION=10
	[ $ssub_given = 1 ] || SCALE_SUBJECTS=100k
	[ $sled_given = 1 ] || SCALE_LEDGER=100k
	[ $erows_given = 1 ] || ERASE_ROWS=100k
	[ $drows_given = 1 ] || DATASET_ROWS=100k
elif [ "$QUICK" = 2 ]; then
	[ $sizes_given = 1 ] || SIZES="10k"
	[ $alt_given = 1 ] || ALT_SIZES="10k"
	[ $reps_given = 1 ] || REPS=2
	[ $dur_given = 1 ] || DURATION=3
	[ $ssub_given = 1 ] || SCALE_SUBJECTS=10k
	[ $sled_given = 1 ] || SCALE_LEDGER=10k
	[ $erows_given = 1 ] || ERASE_ROWS=10k
	[ $drows_given = 1 ] || DATASET_ROWS=10k
	WH_ROWS=100000
	WH_SUBJECTS=10000
	TPCB_SCALE=1
fi
[[ "$SEED" =~ ^[0-9]+$ ]] && [ "$SEED" -le 2147483647 ] || { echo "--seed must be 0..2147483647" >&2; exit 2; }
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { echo "--reps must be a positive integer" >&2; exit 2; }
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || { echo "--duration must be a positive integer" >&2; exit 2; }
WARMUP=$(( DURATION / 4 > 3 ? DURATION / 4 : 3 ))   # untimed warm-up of each pgbench side
[ "$QUICK" = 2 ] && WARMUP=1

# "100k" -> 100000, "4m" -> 4000000
to_rows() {
	local s=${1,,}
	[[ "$s" =~ ^[0-9]+[km]?$ ]] || { echo "bad size: $1 (use e.g. 10k, 100000, 1m)" >&2; return 1; }
	case "$s" in
	*k) echo $(( ${s%k} * 1000 )) ;;
	*m) echo $(( ${s%m} * 1000000 )) ;;
	*) echo "$s" ;;
	esac
}
# 4000000 -> "4M", 100000 -> "100k"
label() {
	local n=$1
	if [ $((n % 1000000)) = 0 ]; then echo "$((n / 1000000))M"
	elif [ $((n % 1000)) = 0 ]; then echo "$((n / 1000))k"
	else echo "$n"; fi
}
parse_sizes() {
	local list=$1 s r=""
	IFS=, read -ra parts <<<"$list"
	for s in "${parts[@]}"; do r="$r $(to_rows "$s")" || exit 2; done
	echo "$r" | tr ' ' '\n' | grep . | sort -n -u | tr '\n' ' '
}
SIZE_ROWS=$(parse_sizes "$SIZES")
ALT_ROWS=$(parse_sizes "$ALT_SIZES")
ALL_ROWS=$(echo "$SIZE_ROWS $ALT_ROWS" | tr ' ' '\n' | grep . | sort -n -u | tr '\n' ' ')
SCALE_SUBJECT_ROWS=$(parse_sizes "$SCALE_SUBJECTS")
SCALE_LEDGER_ROWS=$(parse_sizes "$SCALE_LEDGER")
in_list() { local x=$1; shift; for y in $*; do [ "$x" = "$y" ] && return 0; done; return 1; }
STAGE_ROWS=$WH_ROWS
for n in $ALL_ROWS; do [ "$n" -gt "$STAGE_ROWS" ] && STAGE_ROWS=$n; done
# setseed() takes a value in [-1, 1]
SEED_FLOAT=$(awk -v s="$SEED" 'BEGIN { printf "%.10f", s / 2147483647 }')

t_start=$(date +%s)

# The commit measured: its full hash, and whether the tree differs from it
# (then the results cannot be reproduced from any commit, and say so).
if head=$(git -C "$here" rev-parse --verify -q HEAD 2>/dev/null); then
	COMMIT="commit $head"
	# (the harness's own published results in test/bench/out/ do not count)
	if [ -n "$(git -C "$here" status --porcelain --untracked-files=no -- . ':!test/bench/out' 2>/dev/null)" ]; then
		COMMIT="$COMMIT + uncommitted changes (not reproducible from any commit)"
	elif [ -z "$(git -C "$here" branch --contains "$head" 2>/dev/null)" ]; then
		COMMIT="$COMMIT (on no branch)"
	fi
else
	COMMIT="no git commit (not a git checkout: not reproducible)"
fi

# ---------------------------------------------------------------------
# Packages, build, install
# ---------------------------------------------------------------------
. "$here/test/deps.sh"
# Beyond test/deps.sh:
#   postgresql-15-pgaudit  pgaudit, the "pgaudit.log = 'write'" alternative
#                          column of the tpcb figure (preloaded by this server)
#   gnuplot-nox            draws test/bench/out/ratios.png (no X needed)
#   postgresql-contrib     pgcrypto (digest()) for the PL/pgSQL hash-chain
#                          alternative; postgresql-15 ships it, named for clarity
bench_packages="postgresql-15-pgaudit gnuplot-nox postgresql-contrib"
if [ "$(id -u)" = 0 ]; then
	cl_install_deps
	missing=""
	for p in $bench_packages; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
else
	echo "not root: installing nothing (needs $cl_packages $bench_packages)" >&2
fi
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	make -C "$here" -s >/dev/null
	if [ "$(id -u)" = 0 ]; then
		make -C "$here" -s install >/dev/null
	fi
fi
PGBIN=$(pg_config --bindir)
# (--scale-only needs no pgaudit: only figure 5 does)
PRELOAD="consent_ledger,pgaudit"
if [ "$SCALE" = only ] || [ "$VERIFY_ONLY" = 1 ]; then
	PRELOAD="consent_ledger"
else
	[ -f "$(pg_config --pkglibdir)/pgaudit.so" ] || { echo "pgaudit is not installed (postgresql-15-pgaudit)" >&2; exit 1; }
fi
command -v gnuplot >/dev/null || echo "gnuplot not found: no chart" >&2

# ---------------------------------------------------------------------
# The throwaway server
# ---------------------------------------------------------------------
work=$(mktemp -d /tmp/consent_ledger_bench.XXXXXX)
chmod 755 "$work"
if [ "$(id -u)" = 0 ]; then
	chown postgres:postgres "$work"
	RUN="su postgres -s /bin/bash -c"
else
	RUN="bash -c"
fi
cleanup() {
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "BENCH_KEEP=1: server left running, port $PORT, socket and data in $work"
		return
	fi
	$RUN "$PGBIN/pg_ctl -D $work/data -m immediate stop" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shared consent state: every database's (subject, purpose) pairs at once
# (the reference warehouse's, and the largest scale database with room to
# spare), 60 bytes each
max_subjects=1000000
for n in $SCALE_SUBJECT_ROWS; do [ "$n" -gt "$max_subjects" ] && max_subjects=$n; done
CONSENT_STATES=$((2 * max_subjects + 1048576))

CONF="# consent_ledger benchmark server
shared_preload_libraries = '$PRELOAD'
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 30min
synchronous_commit = on               # default durability
fsync = on
max_parallel_workers_per_gather = 0   # 2 only for the parallel figure (SET in its sessions)
max_worker_processes = 32             # a sealer and an audit writer per database with the extension (up to 12 here) + 2 parallel workers
consent_ledger.max_consent_states = $CONSENT_STATES  # 2x the largest scale run's subjects + 1M
consent_ledger.seal_interval = '1s'
autovacuum = on
port = $PORT
unix_socket_directories = '$work'
listen_addresses = ''"
[ -n "${BENCH_VERIFY_MEMORY:-}" ] && CONF="$CONF
consent_ledger.verify_memory = '$BENCH_VERIFY_MEMORY'"

$RUN "$PGBIN/initdb -D $work/data -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null"
echo "$CONF" >> "$work/data/postgresql.conf"
$RUN "$PGBIN/pg_ctl -D $work/data -l $work/server.log -w start >/dev/null"

export PGHOST="$work" PGPORT="$PORT"
PSQL="psql -X -q -At -v ON_ERROR_STOP=1"
# q DB USER: runs SQL from stdin (or -c ...)
# the machine's load average (1, 5, 15 min): the run's own sessions count
# in it (about 2, and up to 8 after a pgbench figure's clients); compare
# the value before the run with the machine's idle load
load() { cut -d' ' -f1-3 /proc/loadavg; }
q() { local db=$1 user=$2; shift 2; $PSQL -d "$db" -U "$user" "$@"; }

mkdir -p "$out"
RES="$work/results"
mkdir -p "$RES"
: > "$RES/rows.tsv"     # id, figure, size, unit, target op, target value, alternative name
: > "$RES/runs.tsv"     # id, side (base, ours, alt, seal), value (number or text)
: > "$RES/notes.txt"
: > "$RES/phases.txt"

# ---------------------------------------------------------------------
# Header: machine facts and configuration
# ---------------------------------------------------------------------
{
	echo "consent_ledger benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo
	echo "machine:"
	echo "  nproc:       $(nproc)"
	echo "  memory:      $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "  CPU:         $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "  PostgreSQL:  $(q postgres postgres -c 'SELECT version()')"
	echo "  kernel:      $(uname -r)"
	echo "  load:        $LOAD0 (load average 1/5/15 min before the run; each phase prints its own)"
	echo "  extension:   consent_ledger $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$here/consent_ledger.control"), $COMMIT"
	echo
	echo "run: seed $SEED, $REPS repetition(s), sizes $(for n in $SIZE_ROWS; do printf '%s ' "$(label "$n")"; done)| alternative sizes $(for n in $ALT_ROWS; do printf '%s ' "$(label "$n")"; done)| pgbench -c $CLIENTS -j $THREADS -T $DURATION$([ "$QUICK" = 1 ] && echo ' | --quick')"
	echo "warehouse: $WH_ROWS fact rows, $WH_SUBJECTS subjects"
	echo "scale section: $([ "$SCALE" = no ] && echo 'not run' || echo "subjects $(for n in $SCALE_SUBJECT_ROWS; do printf '%s ' "$(label "$n")"; done)| ledger history $(for n in $SCALE_LEDGER_ROWS; do printf '%s ' "$(label "$n")"; done)$([ "$SCALE" = only ] && echo '| --scale-only')")"
	echo
	echo "server configuration (initdb -A trust -E UTF8 --locale=C.UTF-8, then appended to its postgresql.conf;"
	echo "everything else is PostgreSQL 15's default):"
	echo "$CONF" | sed 's/^/  /'
	echo
} | tee "$RES/header.txt"

note() { echo "  note: $*"; echo "$*" >> "$RES/notes.txt"; }
# phases are timed through a file: figures run in subshells
phase_start() {
	printf '%s\t%s\t%s\n' "$(date +%s)" "$1" "$(load)" > "$RES/phase"
	echo; echo "== $1 (load average $(load))"
}
phase_end() {
	local t0 name l0
	IFS=$'\t' read -r t0 name l0 < "$RES/phase"
	printf '%s\t%s\t%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" "$l0" "$(load)" >> "$RES/phases.txt"
}
# row ID FIGURE SIZE UNIT OP TARGET [ALT-NAME [CHART-LABEL]]
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${7:-}" "${8:-$2, $3}" >> "$RES/rows.tsv"; }
# val ID SIDE VALUE [REP]: one measurement (REP pairs it with the other sides')
val() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:--}" >> "$RES/runs.tsv"; }
# invalid ID REASON: the figure's correctness check failed; it is INVALID
invalid() { val "$1" invalid "$2"; note "INVALID $1: $2"; }
# order REP SIDE...: the sides in the order of repetition REP (rotated by
# one place each repetition: base ours alt, ours alt base, alt base ours)
order() {
	local r=$1 n i k
	shift
	n=$#
	local a=("$@")
	for ((i = 0; i < n; i++)); do k=$(( (i + r - 1) % n )); printf '%s ' "${a[$k]}"; done
}
# db_with NAME [EXTENSION...]: a fresh database for one side of a figure
db_with() {
	local db=$1 e
	shift
	q postgres postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
	for e in "$@"; do q "$db" postgres -c "SET client_min_messages = warning" -c "CREATE EXTENSION $e" >/dev/null; done
}
# runs a figure in a subshell with errexit; a failure is reported, not fatal
figure() {
	local rc
	set +e
	( set -e; "$@" )
	rc=$?
	set -e
	if [ $rc != 0 ]; then
		note "$1 failed (exit $rc); see the messages above"
		phase_end
	fi
	return 0
}

# timed DB USER SETUP STATEMENT [EXTRA-EXPR]: seconds taken by STATEMENT
# (after SETUP, in the same session); with EXTRA-EXPR, "seconds|extra".
timed() {
	local r
	r=$(q "$1" "$2" <<SQL
SET client_min_messages = warning;
$3
SELECT extract(epoch FROM clock_timestamp()) AS bench_t0 \gset
$4
SELECT round(extract(epoch FROM clock_timestamp()) - :bench_t0, 6)${5:+, $5};
SQL
	) || { echo "timed statement failed: $4" >&2; return 1; }
	echo "$r" | tail -n1
}

# pgb DB SCRIPT-ARGS...: the tps of one pgbench run (PGOPTIONS passes settings)
pgb() {
	local db=$1 o tps
	shift
	o=$(pgbench -U postgres -c "$CLIENTS" -j "$THREADS" -T "$DURATION" --random-seed="$SEED" "$@" "$db" 2>&1) || {
		echo "$o" | tail -n 20 >&2; echo "pgbench failed" >&2; return 1; }
	tps=$(echo "$o" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p')
	[ -n "$tps" ] || { echo "$o" >&2; echo "no tps line" >&2; return 1; }
	echo "$tps"
}

# ---------------------------------------------------------------------
# The reference warehouse
# ---------------------------------------------------------------------
# stage_sql TABLE: the SQL that draws the stage, the source of every load
# (seeded: the same rows in the warehouse and in --verify-only runs)
stage_sql() {
	cat <<SQL
SELECT setseed($SEED_FLOAT);
CREATE TABLE $1 AS
SELECT g::bigint AS id,
       (1 + floor(random() * $WH_SUBJECTS))::bigint AS subject_id,
       round((random() * 1000)::numeric, 2)::numeric(12,2) AS amount,
       timestamptz '2024-01-01 00:00:00+00' + random() * interval '365 days' AS at,
       'order ' || md5(random()::text) AS note
FROM generate_series(1, $STAGE_ROWS) g;
SQL
}

setup_warehouse() {
	phase_start "setup: reference warehouse (seed $SEED)"
	q postgres postgres -c "CREATE DATABASE bench"
	q bench postgres >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION consent_ledger;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION pgaudit;
-- each subject's draw decides its consent story: r < 0.70 grants;
-- r < 0.05 then withdraws; 0.05 <= r < 0.07 grants with a short expiry
SELECT setseed($SEED_FLOAT);
CREATE TABLE subjects AS
SELECT s::bigint AS subject_id, random() AS r FROM generate_series(1, $WH_SUBJECTS) s;
ALTER TABLE subjects ADD PRIMARY KEY (subject_id);
-- the source of every load: $STAGE_ROWS rows, $WH_SUBJECTS subjects (the
-- first N rows are the same whatever the sizes: one sequence, in order)
$(stage_sql stage)

CREATE TABLE fact_plain (id bigint PRIMARY KEY, subject_id bigint NOT NULL,
                         amount numeric(12,2), at timestamptz, note text);
INSERT INTO fact_plain SELECT id, subject_id, amount, at, note FROM stage WHERE id <= $WH_ROWS ORDER BY id;
CREATE TABLE fact_prot (LIKE fact_plain INCLUDING ALL);
INSERT INTO fact_prot SELECT * FROM fact_plain ORDER BY id;
CREATE TABLE fact_rls (LIKE fact_plain INCLUDING ALL);
INSERT INTO fact_rls SELECT * FROM fact_plain ORDER BY id;

CREATE ROLE bench_analyst LOGIN;
GRANT SELECT ON fact_plain, fact_prot, fact_rls TO bench_analyst;
-- figure 6 reads its own backend's memory contexts
GRANT SELECT ON pg_backend_memory_contexts TO bench_analyst;
GRANT EXECUTE ON FUNCTION pg_get_backend_memory_contexts() TO bench_analyst;
SELECT consent_ledger.define_purpose('analytics', 'benchmark analytics');
SELECT consent_ledger.authorize_purpose('bench_analyst', 'analytics');
SELECT consent_ledger.protect('fact_prot', 'subject_id');
SELECT consent_ledger.create_purpose_view('fact_prot', 'analytics', 'public.fact_analytics');
GRANT SELECT ON fact_analytics TO bench_analyst;
-- EXPLAIN ANALYZE of protected reads is for trusted roles only (its row
-- counts count hidden rows): the worker-count check of figure 4 runs as an
-- administrator, still under the consent policy
CREATE ROLE bench_admin LOGIN IN ROLE consent_ledger_admin;
GRANT SELECT ON fact_plain, fact_prot, fact_rls TO bench_admin;
SELECT consent_ledger.authorize_purpose('bench_admin', 'analytics');
SQL
	local t n
	n=$(q bench postgres -c "SELECT count(*) FROM subjects WHERE r < 0.70 AND NOT (r >= 0.05 AND r < 0.07)")
	t=$(timed bench postgres "" "
BEGIN;
SELECT count(consent_ledger.grant_consent(g, 'analytics'))
FROM generate_series(1, $WH_SUBJECTS) g JOIN subjects s ON s.subject_id = g
WHERE s.r < 0.70 AND NOT (s.r >= 0.05 AND s.r < 0.07);
COMMIT;")
	echo "  $n grants (one transaction): ${t} s"
	note "consent: $n grant_consent() calls in one transaction took $t s ($(awk -v n="$n" -v t="$t" 'BEGIN { printf "%.0f", n / t }') grants/s)"
	t=$(timed bench postgres "" "
BEGIN;
SELECT count(consent_ledger.withdraw_consent(subject_id, 'analytics')) FROM subjects WHERE r < 0.05;
COMMIT;")
	echo "  withdrawals (5%): $t s"
	t=$(timed bench postgres "" "
BEGIN;
SELECT count(consent_ledger.grant_consent(subject_id, 'analytics', clock_timestamp() + interval '1 second'))
FROM subjects WHERE r >= 0.05 AND r < 0.07;
COMMIT;
SELECT pg_sleep(1.5);")
	echo "  short grants (2%) + pg_sleep(1.5): $t s"
	# the hand-written alternative: a consent table and an RLS policy with IN (SELECT ...)
	q bench postgres >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE consent_simple (subject_id bigint, purpose text, granted_at timestamptz,
                             expires_at timestamptz, withdrawn_at timestamptz,
                             PRIMARY KEY (subject_id, purpose));
INSERT INTO consent_simple
SELECT subject_id, 'analytics', now(),
       CASE WHEN r >= 0.05 AND r < 0.07 THEN now() - interval '1 second' END,
       CASE WHEN r < 0.05 THEN now() END
FROM subjects WHERE r < 0.70;
GRANT SELECT ON consent_simple TO bench_analyst, bench_admin;
ALTER TABLE fact_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY consent_read ON fact_rls FOR SELECT USING (
  subject_id IN (SELECT c.subject_id FROM consent_simple c
                 WHERE c.purpose = current_setting('app.purpose', true)
                   AND c.withdrawn_at IS NULL
                   AND (c.expires_at IS NULL OR c.expires_at > now())));
SELECT consent_ledger.seal();
VACUUM ANALYZE;
CHECKPOINT;
SQL
	phase_end
}

# ---------------------------------------------------------------------
# Figure 1: single-row INSERT, pgbench -c 8 -j 2, ledger vs plain table
# ---------------------------------------------------------------------
fig_insert() {
	phase_start "figure 1: single-row INSERT, pgbench -c $CLIENTS -j $THREADS -T $DURATION"
	local id=insert side t tps db v n
	row $id "single-row INSERT, pgbench -c $CLIENTS -j $THREADS" "1 row/txn" tps ge 0.80 "" "INSERT, pgbench"
	# each side in a database of its own
	db_with ins_base
	db_with ins_ours consent_ledger
	q ins_base postgres -c "CREATE TABLE ins_t (id bigserial PRIMARY KEY, subject_id bigint, amount numeric(12,2), at timestamptz, note text)"
	q ins_ours postgres -c "CREATE TABLE ins_t (id bigserial PRIMARY KEY, subject_id bigint, amount numeric(12,2), at timestamptz, note text)" \
		-c "SELECT consent_ledger.create_ledger('ins_t')" >/dev/null
	cat > "$work/insert.sql" <<SQL
\set s random(1, $WH_SUBJECTS)
\set c random(1, 100000)
INSERT INTO ins_t (subject_id, amount, at, note) VALUES (:s, :c / 100.0, now(), 'pgbench order');
SQL
	# an untimed warm-up of each side first: the very first run would also pay
	# for creating WAL segments that later runs recycle
	DURATION=$WARMUP pgb ins_base -n -f "$work/insert.sql" >/dev/null
	DURATION=$WARMUP pgb ins_ours -n -f "$work/insert.sql" >/dev/null
	q ins_ours postgres -c "SELECT consent_ledger.seal()" >/dev/null
	for r in $(seq "$REPS"); do
		printf '  rep %s:' "$r"
		for side in $(order "$r" base ours); do
			db=ins_$side
			q $db postgres -c "CHECKPOINT"
			tps=$(pgb $db -n -f "$work/insert.sql")
			val $id $side "$tps" "$r"
			# sealing is part of the ledger's cost, but must not spill into the next run
			[ $side = ours ] && q $db postgres -c "SELECT consent_ledger.seal()" >/dev/null
			printf ' %s %s tps' "$side" "$tps"
		done
		echo
	done
	# correctness: every inserted row is in the ledger, sealed, and it verifies
	q ins_ours postgres -c "SELECT consent_ledger.seal()" >/dev/null
	n=$(q ins_ours postgres -c "SELECT count(*) FROM ins_t")
	v=$(q ins_ours postgres -c "SELECT valid::int || '|' || rows || '|' || pending FROM consent_ledger.verify('ins_t')")
	note "figure 1: ins_t after the runs: $n rows; verify valid|rows|pending = $v"
	[ "$v" = "1|$n|0" ] || invalid $id "the ledger after the runs: verify valid|rows|pending = $v, expected 1|$n|0"
	phase_end
}

# ---------------------------------------------------------------------
# Figure 1b (issue #15, README "Erasure"): single-row INSERT into a ledger
# with two personal columns (encoding version 3: a salt per row and a
# salted commitment per personal value) vs the same ledger without
# ---------------------------------------------------------------------
fig_insert_personal() {
	phase_start "figure 1b: single-row INSERT into a ledger with two personal columns, pgbench -c $CLIENTS -j $THREADS -T $DURATION"
	local id=insert_personal side tps db v n cols
	row $id "single-row INSERT, 2 personal columns vs none" "1 row/txn" tps ge 0.80 "" "INSERT, 2 personal columns"
	cols="id bigserial PRIMARY KEY, subject_id bigint, email text, name text, amount numeric(12,2), at timestamptz"
	db_with insp_base consent_ledger
	db_with insp_ours consent_ledger
	q insp_base postgres -c "CREATE TABLE insp_t ($cols)" -c "SELECT consent_ledger.create_ledger('insp_t')" >/dev/null
	q insp_ours postgres -c "CREATE TABLE insp_t ($cols)" \
		-c "SELECT consent_ledger.create_ledger('insp_t', personal => ARRAY['email', 'name'], subject => 'subject_id')" >/dev/null
	cat > "$work/insert_personal.sql" <<SQL
\set s random(1, $WH_SUBJECTS)
\set c random(1, 100000)
INSERT INTO insp_t (subject_id, email, name, amount, at)
  VALUES (:s, 'subject' || :s || '@example.org', 'Subject ' || :s, :c / 100.0, now());
SQL
	DURATION=$WARMUP pgb insp_base -n -f "$work/insert_personal.sql" >/dev/null
	DURATION=$WARMUP pgb insp_ours -n -f "$work/insert_personal.sql" >/dev/null
	for r in $(seq "$REPS"); do
		printf '  rep %s:' "$r"
		for side in $(order "$r" base ours); do
			db=insp_$side
			q $db postgres -c "SELECT consent_ledger.seal()" >/dev/null
			q $db postgres -c "CHECKPOINT"
			tps=$(pgb $db -n -f "$work/insert_personal.sql")
			val $id $side "$tps" "$r"
			printf ' %s %s tps' "$side" "$tps"
		done
		echo
	done
	# correctness: both ledgers sealed and valid, the personal one version 3
	for side in base ours; do
		db=insp_$side
		q $db postgres -c "SELECT consent_ledger.seal()" >/dev/null
		n=$(q $db postgres -c "SELECT count(*) FROM insp_t")
		v=$(q $db postgres -c "SELECT valid::int || '|' || rows || '|' || pending FROM consent_ledger.verify('insp_t')")
		[ "$v" = "1|$n|0" ] || invalid $id "$side ledger after the runs: verify valid|rows|pending = $v, expected 1|$n|0"
	done
	v=$(q insp_ours postgres -c "SELECT encoding FROM consent_ledger.ledgers WHERE relid = 'insp_t'::regclass")
	[ "$v" = 3 ] || invalid $id "the personal ledger has encoding $v, expected 3"
	phase_end
}

# ---------------------------------------------------------------------
# Figure 1c (issue #15, README "Erasure"): erase_subject() for a subject
# with 10k rows spread over three ledgers of ERASE_ROWS rows each (two
# personal columns), vs what a warehouse without the extension does to
# erase the same values so that no file holds them: UPDATE ... SET the
# personal columns to NULL in each table, then VACUUM FULL of the three
# (a plain VACUUM leaves the old bytes in the pages).  The issue's target
# is "seconds, not minutes"; the ratio to that baseline is judged.
# ---------------------------------------------------------------------
fig_erase() {
	local n lab id=erase_subject r side db t k got step want
	n=$(to_rows "$ERASE_ROWS")
	lab=$(label "$n")
	step=$(( n * 3 / 10000 )); [ $step -ge 1 ] || step=1
	want=$(( 3 * (n / step) ))
	phase_start "figure 1c: erasing a subject with $want rows in 3 tables of $lab rows"
	row $id "erase a subject ($want rows in 3 tables)" "3 x $lab rows" s le 1.5 "" "erase_subject 3x$lab"
	for r in $(seq "$REPS"); do
		printf '  rep %s:' "$r"
		for side in $(order "$r" base ours); do
			db=erase_$side
			db_with $db consent_ledger
			for k in 1 2 3; do
				q $db postgres -c "CREATE TABLE er_$k (id bigserial PRIMARY KEY, subject_id bigint, email text, name text, amount numeric(12,2))"
				[ $side = base ] || q $db postgres \
					-c "SELECT consent_ledger.create_ledger('er_$k', personal => ARRAY['email', 'name'], subject => 'subject_id')" >/dev/null
				# subject 0 owns every step-th row of each table
				q $db postgres -c "INSERT INTO er_$k (subject_id, email, name, amount)
					SELECT CASE WHEN g % $step = 0 THEN 0 ELSE g END, 'subject' || g || '@example.org',
						'Subject ' || g, g / 100.0 FROM generate_series(1, $n) g"
			done
			q $db postgres -c "SELECT consent_ledger.seal()" >/dev/null
			q $db postgres -c "VACUUM ANALYZE" -c "CHECKPOINT"
			if [ $side = ours ]; then
				t=$(timed $db postgres "" "SELECT sum(rows) AS erased FROM consent_ledger.erase_subject('0', 'benchmark') \gset" ":erased")
				got=${t#*|}; t=${t%|*}
				[ "$got" = "$want" ] || invalid $id "rep $r: erase_subject() erased $got rows, expected $want"
				got=$(q $db postgres -c "SELECT bool_and(valid)::int || '|' || sum(rows) FROM consent_ledger.verify() WHERE relation::text LIKE 'er\_%'")
				[ "$got" = "1|$((3 * n))" ] || invalid $id "rep $r: verify() of the three ledgers after the erasure: valid|rows = $got"
			else
				t=$(timed $db postgres "" "UPDATE er_1 SET email = NULL, name = NULL WHERE subject_id = 0;
UPDATE er_2 SET email = NULL, name = NULL WHERE subject_id = 0;
UPDATE er_3 SET email = NULL, name = NULL WHERE subject_id = 0;
VACUUM FULL er_1, er_2, er_3;")
			fi
			got=$(q $db postgres -c "SELECT (SELECT count(*) FROM er_1 WHERE subject_id = 0 AND email IS NULL AND name IS NULL)
				+ (SELECT count(*) FROM er_2 WHERE subject_id = 0 AND email IS NULL AND name IS NULL)
				+ (SELECT count(*) FROM er_3 WHERE subject_id = 0 AND email IS NULL AND name IS NULL)")
			[ "$got" = "$want" ] || invalid $id "$side rep $r: $got of the subject's $want rows read as erased"
			val $id $side "$t" "$r"
			printf ' %s %s s' "$side" "$t"
			q postgres postgres -c "DROP DATABASE $db" >/dev/null
		done
		echo
	done
	phase_end
}

# ---------------------------------------------------------------------
# Figure 1d (issue #17, README "Dataset manifests"): extracting a training
# set through a purpose view with export_dataset() -- the rows, plus the
# manifest: subjects sorted, their Merkle root, two ledger inserts -- vs
# the plain extraction of the same rows, COPY (SELECT * FROM view) TO
# STDOUT, both by the analyst through psql's \copy into /dev/null, so
# both sides pay the consent checks, the audit and the client transfer.
# The issue's target: at most 1.3x.
# ---------------------------------------------------------------------
fig_dataset() {
	local n lab id=export_dataset r side t db=datasets got want
	n=$(to_rows "$DATASET_ROWS")
	lab=$(label "$n")
	phase_start "figure 1d: export_dataset() vs COPY TO of a purpose view over $lab rows"
	row $id "export_dataset() vs COPY (SELECT ...) TO" "$lab rows" s le 1.3 "PL/pgSQL RETURN QUERY, no manifest" "export_dataset $lab"
	db_with $db consent_ledger
	q postgres postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS bench_ml" -c "CREATE ROLE bench_ml LOGIN" >/dev/null
	q $db postgres >/dev/null <<SQL
SET client_min_messages = warning;
SELECT setseed($SEED_FLOAT);
CREATE TABLE ds_facts AS
SELECT g::bigint AS id, (1 + floor(random() * $WH_SUBJECTS))::bigint AS subject_id,
       round((random() * 1000)::numeric, 2)::numeric(12,2) AS amount,
       timestamptz '2024-01-01 00:00:00+00' + random() * interval '365 days' AS at,
       'order ' || md5(random()::text) AS note
FROM generate_series(1, $n) g;
SELECT consent_ledger.define_purpose('bench.train');
SELECT consent_ledger.protect('ds_facts', 'subject_id');
SELECT consent_ledger.create_purpose_view('ds_facts', 'bench.train', 'ds_train');
SELECT consent_ledger.grant_consent(array_agg(g::text), 'bench.train') FROM generate_series(1, $WH_SUBJECTS, 2) g;
SELECT consent_ledger.authorize_purpose('bench_ml', 'bench.train');
GRANT USAGE ON SCHEMA consent_ledger TO bench_ml;
GRANT SELECT ON ds_train TO bench_ml;
GRANT EXECUTE ON FUNCTION consent_ledger.export_dataset(text, anyelement) TO bench_ml;
-- the alternative: any set-returning wrapper's floor (the executor materializes its rows), no manifest
CREATE FUNCTION ds_rows() RETURNS SETOF ds_train LANGUAGE plpgsql AS \$f\$ BEGIN RETURN QUERY SELECT * FROM ds_train; END \$f\$;
GRANT EXECUTE ON FUNCTION ds_rows() TO bench_ml;
VACUUM ANALYZE ds_facts;
CHECKPOINT;
SQL
	want=$(q $db postgres -c "SELECT count(*) FROM ds_facts WHERE subject_id % 2 = 1")
	# warm-up: one untimed read of each kind
	q $db bench_ml -c "\\copy (SELECT * FROM ds_train) TO '/dev/null'" >/dev/null
	q $db bench_ml -c "\\copy (SELECT * FROM consent_ledger.export_dataset('bench-warmup', NULL::ds_train)) TO '/dev/null'" >/dev/null
	for r in $(seq "$REPS"); do
		printf '  rep %s:' "$r"
		for side in $(order "$r" base ours alt); do
			if [ $side = base ]; then
				t=$(timed $db bench_ml "" "\\copy (SELECT * FROM ds_train) TO '/dev/null'")
			elif [ $side = alt ]; then
				t=$(timed $db bench_ml "" "\\copy (SELECT * FROM ds_rows()) TO '/dev/null'")
			else
				t=$(timed $db bench_ml "" "\\copy (SELECT * FROM consent_ledger.export_dataset('bench-rep-$r', NULL::ds_train)) TO '/dev/null'")
				got=$(q $db postgres -c "SELECT rows FROM consent_ledger.datasets WHERE name = 'bench-rep-$r'")
				[ "$got" = "$want" ] || invalid $id "rep $r: the manifest counts $got rows, the view has $want"
			fi
			val $id $side "$t" "$r"
			printf ' %s %s s' "$side" "$t"
		done
		echo
	done
	got=$(q $db postgres -c "SELECT bool_and(valid)::int FROM consent_ledger.verify() WHERE relation::text LIKE 'consent_ledger.dataset%'")
	[ "$got" = 1 ] || invalid $id "verify() of the manifest ledgers: $got"
	q postgres postgres -c "DROP DATABASE $db" -c "DROP ROLE bench_ml" >/dev/null
	phase_end
}

# ---------------------------------------------------------------------
# Figures 2 and 3: bulk load (INSERT ... SELECT and COPY FROM a file) into
# a fresh ledger vs a fresh plain table; verify vs COPY TO '/dev/null'
# ---------------------------------------------------------------------
# The hand-written alternative, as a practitioner would write it: a
# PL/pgSQL + pgcrypto hash chain whose trigger function is written for its
# table (static SQL, planned once per session: no dynamic EXECUTE per row).
# Each row stores sha256(previous row's hash || row text), the previous
# hash read from the latest row through the primary key; the advisory lock
# serializes inserters (needed for a correct chain under concurrency;
# uncontended here).
alt_trigger_sql() { # TABLE
	cat <<SQL
CREATE FUNCTION $1_chain() RETURNS trigger LANGUAGE plpgsql AS \$f\$
DECLARE
	prev bytea;
BEGIN
	PERFORM pg_advisory_xact_lock(724242);
	SELECT t.row_hash INTO prev FROM $1 t ORDER BY t.id DESC LIMIT 1;
	NEW.row_hash := digest(coalesce(prev, '\x'::bytea)
		|| convert_to(ROW(NEW.id, NEW.subject_id, NEW.amount, NEW.at, NEW.note)::text, 'UTF8'), 'sha256');
	RETURN NEW;
END
\$f\$;
CREATE TRIGGER chain BEFORE INSERT ON $1 FOR EACH ROW EXECUTE FUNCTION $1_chain();
SQL
}

# each side of the bulk figures loads into a database of its own
bulk_db() { echo "bulk_$1"; }   # base, ours, alt

fresh_table() { # SIDE NAME
	local cols="id bigserial PRIMARY KEY, subject_id bigint, amount numeric(12,2), at timestamptz, note text" db
	db=$(bulk_db "$1")
	case $1 in
	base) q $db postgres -c "CREATE TABLE $2 ($cols)" ;;
	ours) q $db postgres -c "CREATE TABLE $2 ($cols)" -c "SELECT consent_ledger.create_ledger('$2')" >/dev/null ;;
	alt) q $db postgres -c "CREATE TABLE $2 ($cols, row_hash bytea)"
		q $db postgres -c "$(alt_trigger_sql "$2")" ;;
	esac
}
drop_table() { # SIDE NAME
	local db
	db=$(bulk_db "$1")
	case $1 in
	ours) q $db postgres -c "SELECT consent_ledger.retire_ledger('$2')" -c "DROP TABLE $2" >/dev/null ;;
	alt) q $db postgres -c "DROP TABLE $2" -c "DROP FUNCTION $2_chain()" ;;
	*) q $db postgres -c "DROP TABLE $2" ;;
	esac
}

fig_bulk() {
	phase_start "figure 2: bulk load into a fresh table (sizes $(for n in $ALL_ROWS; do printf '%s ' "$(label "$n")"; done))"
	db_with "$(bulk_db base)"
	db_with "$(bulk_db ours)" consent_ledger
	db_with "$(bulk_db alt)" pgcrypto
	local n lab m r side tbl t s stmt id alt last sides db got
	for n in $ALL_ROWS; do
		lab=$(label "$n")
		q bench postgres -c "COPY (SELECT subject_id, amount, at, note FROM stage WHERE id <= $n ORDER BY id) TO '$work/load.copy'"
		alt=""; in_list "$n" $ALT_ROWS && alt=alt
		for side in base ours $alt; do
			q "$(bulk_db $side)" postgres <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS stage_n;
CREATE TABLE stage_n (subject_id bigint, amount numeric(12,2), at timestamptz, note text);
COPY stage_n FROM '$work/load.copy';
VACUUM ANALYZE stage_n;
SQL
		done
		for m in insert copy; do
			id="bulk_${m}_$n"
			if [ $m = insert ]; then
				row "$id" "bulk load, INSERT ... SELECT" "$lab" s load 1.5 "${alt:+PL/pgSQL+pgcrypto chain}" "INSERT..SELECT $lab"
			else
				row "$id" "bulk load, COPY FROM file" "$lab" s load 1.5 "${alt:+PL/pgSQL+pgcrypto chain}" "COPY FROM $lab"
			fi
		done
		for r in $(seq "$REPS"); do
			for m in insert copy; do
				id="bulk_${m}_$n"
				if [ $m = insert ]; then
					stmt="INSERT INTO %s (subject_id, amount, at, note) SELECT subject_id, amount, at, note FROM stage_n;"
				else
					stmt="COPY %s (subject_id, amount, at, note) FROM '$work/load.copy';"
				fi
				printf '  %s rep %s %-6s' "$lab" "$r" "$m:"
				for side in $(order "$r" base ours $alt); do
					db=$(bulk_db $side)
					tbl="bl_${m}_${n}_$r"
					fresh_table $side "$tbl"
					# shellcheck disable=SC2059
					t=$(timed $db postgres "CHECKPOINT;" "$(printf "$stmt" "$tbl")")
					val "$id" $side "$t" "$r"
					printf ' %s %s s' "$side" "$t"
					if [ $side = ours ]; then
						s=$(timed $db postgres "" "SELECT consent_ledger.seal();")
						val "$id" seal "$s" "$r"
						printf ' (+seal %s s)' "$s"
					fi
					# correctness: every row loaded (and chained, for the alternative)
					if [ $side = alt ]; then
						got=$(q $db postgres -c "SELECT count(*) || '|' || count(row_hash) FROM $tbl")
						[ "$got" = "$n|$n" ] || invalid "$id" "$side rep $r: count(*)|count(row_hash) = $got, expected $n|$n"
					else
						got=$(q $db postgres -c "SELECT count(*) FROM $tbl")
						[ "$got" = "$n" ] || invalid "$id" "$side rep $r: $got rows loaded, expected $n"
					fi
					if [ $side = ours ]; then
						got=$(q $db postgres -c "SET client_min_messages = warning" -c "SELECT pending FROM consent_ledger.verify('$tbl')")
						[ "$got" = 0 ] || invalid "$id" "rep $r: $got rows still pending after seal()"
					fi
					# keep the last INSERT-loaded ledger of each scaling size for figure 3
					last=0; [ $r = "$REPS" ] && [ $m = insert ] && [ $side = ours ] && in_list "$n" $SIZE_ROWS && last=1
					[ $last = 1 ] || drop_table $side "$tbl"
				done
				echo
			done
		done
		for side in base ours $alt; do q "$(bulk_db $side)" postgres -c "DROP TABLE stage_n"; done
		rm -f "$work/load.copy"
	done
	phase_end
}

fig_verify() {
	phase_start "figure 3: verify() vs COPY t TO '/dev/null'"
	local n lab tbl r t v id side db
	db=$(bulk_db ours)
	if [ "$VERIFY_ONLY" = 1 ]; then
		# the rows figure 2 would have loaded: the warehouse stage's draws
		db_with "$db" consent_ledger
		q $db postgres >/dev/null <<SQL
SET client_min_messages = warning;
$(stage_sql stage_v)
SQL
	fi
	for n in $SIZE_ROWS; do
		lab=$(label "$n")
		tbl="bl_insert_${n}_$REPS"
		if [ "$VERIFY_ONLY" = 1 ]; then
			fresh_table ours "$tbl"
			q $db postgres -c "INSERT INTO $tbl (subject_id, amount, at, note) SELECT subject_id, amount, at, note FROM stage_v WHERE id <= $n ORDER BY id" >/dev/null
		fi
		id="verify_$n"
		row "$id" "verify of an N-row ledger" "$lab" s le 2 "" "verify $lab"
		q $db postgres -c "SELECT consent_ledger.seal()" -c "VACUUM ANALYZE $tbl" -c "CHECKPOINT" >/dev/null
		for r in $(seq "$REPS"); do
			printf '  %s rep %s:' "$lab" "$r"
			for side in $(order "$r" base ours); do
				if [ $side = base ]; then
					t=$(timed $db postgres "" "COPY $tbl TO '/dev/null';")
					val "$id" base "$t" "$r"
					printf ' COPY TO /dev/null %s s' "$t"
				else
					v=$(timed $db postgres "" \
						"SELECT count(*) FILTER (WHERE valid) AS ok, sum(rows) AS nrows FROM consent_ledger.verify('$tbl') \gset" \
						":ok = 1 AND :nrows = $n")
					val "$id" ours "${v%|*}" "$r"
					printf ' verify %s s' "${v%|*}"
					[ "${v#*|}" = t ] || invalid "$id" "verify('$tbl') did not return one valid ledger of $n rows (rep $r)"
				fi
			done
			echo
		done
	done
	phase_end
}

# ---------------------------------------------------------------------
# Figure 4: protected SELECT count(*), sum(amount) as the analyst
# ---------------------------------------------------------------------
fig_select() {
	phase_start "figure 4: protected SELECT count(*), sum(amount) over $WH_ROWS rows, $WH_SUBJECTS subjects"
	local query="SELECT count(*), sum(amount) FROM %s;"
	local expected got
	expected=$(q bench postgres -c "SELECT count(*) || '|' || sum(f.amount) FROM fact_plain f JOIN subjects s USING (subject_id) WHERE s.r >= 0.07 AND s.r < 0.70")
	# variant: id label chart-label baseline-setup ours-setup ours-table alt-setup alt-table
	local variants=(
		"select|protected SELECT, purpose GUC|SELECT (GUC)||SET consent_ledger.purpose = 'analytics';|fact_prot|SET app.purpose = 'analytics';|fact_rls"
		"select_view|protected SELECT, purpose view|SELECT (view)|||fact_analytics||"
		"select_par|protected SELECT, parallel (2 workers)|SELECT (parallel)|SET max_parallel_workers_per_gather = 2;|SET max_parallel_workers_per_gather = 2; SET consent_ledger.purpose = 'analytics';|fact_prot|SET max_parallel_workers_per_gather = 2; SET app.purpose = 'analytics';|fact_rls"
	)
	local v id lab short bset oset otab aset atab r side setup tab t res
	for v in "${variants[@]}"; do
		IFS='|' read -r id lab short bset oset otab aset atab <<<"$v"
		row "$id" "$lab" "$(label "$WH_ROWS")" s le 1.3 "${atab:+RLS IN (SELECT ...)}" "$short"
		for r in $(seq "$REPS"); do
			printf '  %s rep %s:' "$id" "$r"
			for side in $(order "$r" base ours ${atab:+alt}); do
				case $side in
				base) setup=$bset tab=fact_plain ;;
				ours) setup=$oset tab=$otab ;;
				alt) setup=$aset tab=$atab ;;
				esac
				# a fresh session; one untimed run first (consent cache, buffers)
				# shellcheck disable=SC2059
				res=$(timed bench bench_analyst "$setup $(printf "$query" "$tab")" \
					"SELECT count(*) AS n, sum(amount) AS s FROM $tab \gset" ":'n' || '|' || :'s'")
				t=${res%%|*}
				val "$id" $side "$t" "$r"
				printf ' %s %s s' "$tab" "$t"
				if [ "$side" != base ] && [ "${res#*|}" != "$expected" ]; then
					invalid "$id" "$tab as bench_analyst returned count|sum ${res#*|}, expected $expected (consenting subjects only)"
				fi
			done
			echo
		done
	done
	# the first protected read of a session loads the consent cache
	id=select_cold
	row $id "protected SELECT, first in a new session" "$(label "$WH_ROWS")" s info ""
	for r in $(seq "$REPS"); do
		printf '  cold rep %s:' "$r"
		for side in $(order "$r" base ours); do
			if [ $side = base ]; then
				t=$(timed bench bench_analyst "" "$(printf "$query" fact_plain)")
			else
				t=$(timed bench bench_analyst "SET consent_ledger.purpose = 'analytics';" "$(printf "$query" fact_prot)")
			fi
			val $id $side "$t" "$r"
			printf ' %s %s s' "$side" "$t"
		done
		echo
	done
	# did the parallel runs get their workers?
	local w
	for tab in fact_plain fact_prot fact_rls; do
		w=$(q bench bench_admin <<SQL | sed -n 's/.*Workers Launched: \([0-9]*\).*/\1/p' | head -n1
SET max_parallel_workers_per_gather = 2; SET consent_ledger.purpose = 'analytics'; SET app.purpose = 'analytics';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT count(*), sum(amount) FROM $tab;
SQL
		)
		note "figure 4 parallel: $tab launched ${w:-0} parallel workers"
		[ "${w:-0}" = 2 ] || invalid select_par "$tab launched ${w:-0} parallel workers, not 2"
	done
	phase_end
}

# ---------------------------------------------------------------------
# Figure 5: pgbench tpcb with consent_ledger.audit('pgbench_accounts')
# ---------------------------------------------------------------------
fig_tpcb() {
	phase_start "figure 5: pgbench tpcb-like, scale $TPCB_SCALE, -c $CLIENTS -j $THREADS -T $DURATION"
	local id=tpcb have_audit msg="" r tps db side v
	row $id "pgbench tpcb-like, audit('pgbench_accounts')" "scale $TPCB_SCALE" tps ge 0.90 "pgaudit.log = 'write'" "tpcb + audit()"
	# each side in a database of its own (tpcb_alt: pgaudit.log = 'write' for that database)
	for db in tpcb_base tpcb_ours tpcb_alt; do
		db_with $db consent_ledger pgaudit
		pgbench -U postgres -i -q -s "$TPCB_SCALE" $db >/dev/null 2>&1
	done
	q postgres postgres -c "ALTER DATABASE tpcb_alt SET pgaudit.log = 'write'"
	have_audit=$(q tpcb_ours postgres -c "SELECT to_regprocedure('consent_ledger.audit(regclass)') IS NOT NULL
		OR EXISTS (SELECT FROM pg_proc WHERE proname = 'audit' AND pronamespace = 'consent_ledger'::regnamespace)")
	if [ "$have_audit" = t ]; then
		if ! msg=$(q tpcb_ours postgres -c "SELECT consent_ledger.audit('pgbench_accounts')" 2>&1); then
			have_audit=f
			msg="n/a (audit() failed: $(echo "$msg" | head -n1 | sed 's/^psql:[^:]*:[0-9]*: //'))"
		fi
	else
		msg="n/a (audit() not available)"
	fi
	# untimed warm-up runs (see figure 1)
	for db in tpcb_base tpcb_ours tpcb_alt; do
		[ $db = tpcb_ours ] && [ "$have_audit" != t ] && continue
		DURATION=$WARMUP pgb $db >/dev/null
		q $db postgres -c "VACUUM ANALYZE" -c "CHECKPOINT"
	done
	for r in $(seq "$REPS"); do
		printf '  rep %s:' "$r"
		for side in $(order "$r" base ours alt); do
			if [ $side = ours ] && [ "$have_audit" != t ]; then
				val $id ours "$msg" "$r"
				continue
			fi
			q postgres postgres -c "CHECKPOINT"
			tps=$(pgb tpcb_$side)
			val $id $side "$tps" "$r"
			printf ' %s %s tps' "$side" "$tps"
		done
		echo
	done
	[ "$have_audit" = t ] || echo "  $msg"
	# correctness: the audited side recorded its changes, and its ledgers verify
	if [ "$have_audit" = t ]; then
		q tpcb_ours postgres -c "SELECT consent_ledger.seal()" >/dev/null
		v=$(q tpcb_ours postgres -c "SELECT count(*) FROM consent_ledger.audit_log WHERE relation = 'public.pgbench_accounts' AND operation = 'UPDATE'")
		[ "${v:-0}" -gt 0 ] || invalid $id "audit() recorded no UPDATE of pgbench_accounts"
		v=$(q tpcb_ours postgres -c "SELECT count(*) FILTER (WHERE NOT valid) FROM consent_ledger.verify()")
		[ "$v" = 0 ] || invalid $id "$v ledger(s) of tpcb_ours do not verify"
	fi
	note "figure 5: pgaudit wrote $(grep -c 'AUDIT: SESSION,' "$work/server.log" || true) log lines in total"
	phase_end
}

# ---------------------------------------------------------------------
# Figure 6: backend memory after reading protected rows
# ---------------------------------------------------------------------
fig_memory() {
	phase_start "figure 6: backend memory of an analyst session reading protected rows"
	local reads=20 res start after1 afterN cache1 cacheN n k growth sql
	# per-context totals are written by psql (not into tables: a temporary
	# table would itself allocate local-buffer memory)
	sql="SELECT name, sum(total_bytes) FROM pg_backend_memory_contexts GROUP BY name ORDER BY name"
	# the same three measuring statements each time, so that from the second
	# time on their own plans and catalog caches are already in memory
	measure() {
		echo "SELECT sum(total_bytes) AS m$1 FROM pg_backend_memory_contexts \gset"
		echo "SELECT coalesce(sum(total_bytes), 0) AS c$1 FROM pg_backend_memory_contexts WHERE name = 'consent_ledger consent cache' \gset"
		echo "$sql \g $work/mem$1.txt"
	}
	res=$(
		{
			measure 0
			echo "SET consent_ledger.purpose = 'analytics';"
			echo "SELECT count(*) FROM fact_prot \g /dev/null"
			measure 1
			for k in $(seq 2 "$reads"); do
				if [ $((k % 2)) = 0 ]; then echo "SELECT sum(amount) FROM fact_prot \g /dev/null"
				else echo "SELECT count(*) FROM fact_prot \g /dev/null"; fi
			done
			measure 2
			echo "SELECT :m0, :m1, :m2, :c1, :c2;"
		} | q bench bench_analyst
	)
	IFS='|' read -r start after1 afterN cache1 cacheN <<<"$(echo "$res" | tail -n1)"
	n=$(label "$WH_ROWS")
	row mem_1 "backend memory: session start -> after 1 scan" "$n rows read" bytes info ""
	val mem_1 base "$start" 1; val mem_1 ours "$after1" 1
	row mem_n "backend memory: after 1 scan -> after $reads scans" "$(label $((WH_ROWS * reads))) rows read" bytes bounded ""
	val mem_n base "$after1" 1; val mem_n ours "$afterN" 1
	# bounded: reading $reads - 1 more scans' worth of rows adds less than 1 MiB
	val mem_n met "$([ $((afterN - after1)) -lt 1048576 ] && echo yes || echo NO)"
	row mem_cache "consent cache context (in the above)" "$(label "$WH_SUBJECTS") subjects" bytes info ""
	val mem_cache base "$cache1" 1; val mem_cache ours "$cacheN" 1
	echo "  session start $start B, after 1 scan $after1 B, after $reads scans $afterN B; consent cache $cache1 B -> $cacheN B"
	growth=$(awk -F'|' 'NR == FNR { a[$1] = $2; next } { d = $2 - a[$1]; if (d != 0) printf "%s%s %+d B", (n++ ? ", " : ""), $1, d }' \
		"$work/mem1.txt" "$work/mem2.txt")
	note "figure 6: contexts that changed from scan 1 to scan $reads: ${growth:-none}"
	local granted
	granted=$(q bench postgres -c "SELECT count(DISTINCT subject) FROM consent_ledger.consent_events")
	note "figure 6: consent cache $cacheN bytes for $granted subjects with events ($(awk -v c="$cacheN" -v g="$granted" 'BEGIN { printf "%.0f", c / g }') B/subject)"
	phase_end
}

# ---------------------------------------------------------------------
# After the figures: every ledger the run wrote must still verify
# ---------------------------------------------------------------------
check_integrity() {
	phase_start "integrity: seal() and verify() of every ledger the run wrote"
	local db res
	for db in bench ins_ours bulk_ours tpcb_ours sc_ours sc_alt sl_empty sl_hist; do
		q postgres postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 || continue
		q $db postgres -c "SELECT consent_ledger.seal()" >/dev/null
		res=$(q $db postgres -c "SET client_min_messages = warning" \
			-c "SELECT relation::text, rows, pending, valid, coalesce(problem, '') FROM consent_ledger.verify() ORDER BY 1")
		echo "$res" | sed "s/^/  $db: /"
		if echo "$res" | awk -F'|' '$4 != "t"' | grep -q .; then
			note "integrity: $db has a ledger that does not verify: $(echo "$res" | awk -F'|' '$4 != "t"' | head -n3 | tr '\n' ';')"
		else
			note "integrity: $db: $(echo "$res" | grep -c .) ledger(s), all verify"
		fi
	done
	phase_end
}

# ---------------------------------------------------------------------
# Scale section (issue #12 item 5, SPEC §8 rows "1M and 10M subjects",
# "bulk consent", "10M-row ledger").  Written against the SQL interface
# only (grant_consent, seal(), inclusion_proof(), verify(),
# pg_shmem_allocations, pg_backend_memory_contexts) so that it measures
# whatever implementation of shared consent state, sealing and proofs is
# installed.  Sizes: --scale-subjects, --scale-ledger.
# ---------------------------------------------------------------------
# mem_probe: SQL printing "contexts|vmhwm_kb|rssshmem_kb" of this backend
# (pg_read_file of /proc: superuser sessions only)
MEM_PROBE="SELECT (SELECT sum(total_bytes) FROM pg_backend_memory_contexts) || '|' ||
  coalesce(substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') from 'VmHWM:\\s+([0-9]+)'), '0') || '|' ||
  coalesce(substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') from 'RssShmem:\\s+([0-9]+)'), '0')"

# judge ID OK TEXT: a figure with an absolute target (no baseline ratio)
judge() { if [ "$2" = 1 ]; then val "$1" met "yes ($3)"; else val "$1" met "NO ($3)"; fi; }

scale_roles() {
	q postgres postgres >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scale_analyst') THEN
		CREATE ROLE scale_analyst LOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scale_admin') THEN
		CREATE ROLE scale_admin LOGIN IN ROLE consent_ledger_admin;
	END IF;
END $$;
SQL
}

# Bulk consent (N events) and N-subject consent state.  Sides, each in a
# database of its own, fresh every repetition:
#   base  INSERT ... SELECT of the same N events (nextval, clock_timestamp(),
#         session_user) into an ordinary table with the consent ledger's
#         columns, constraints and indexes (primary key, (subject, purpose,
#         event_id))
#   ours  SELECT count(grant_consent(g, 'analytics')) FROM generate_series:
#         set-wise, bigint subjects (row scale_consent_set_N)
#   alt   SELECT grant_consent(array_agg(g::text), 'analytics'): the bulk
#         path (row scale_consent_bulk_N, its ours side)
# The ratio is recording only; the seal() that follows is in the notes.
fig_scale_subjects() {
	local n=$1 lab r side t db id_set id_bulk v tset tbulk tbase
	lab=$(label "$n")
	phase_start "scale: $lab subjects (bulk consent, shared state, first query, memory, parallel scan)"
	id_set="scale_consent_set_$n"; id_bulk="scale_consent_bulk_$n"
	row $id_set "bulk consent, set-wise grant_consent()" "$lab events" s le 5 "" "consent set-wise $lab"
	row $id_bulk "bulk consent, grant_consent(text[])" "$lab events" s le 5 "" "consent bulk $lab"
	local cols="event_id bigint PRIMARY KEY, subject text NOT NULL, purpose text NOT NULL,
		action text NOT NULL CHECK (action = ANY (ARRAY['grant', 'withdraw'])), expires_at timestamptz,
		evidence jsonb, recorded_at timestamptz NOT NULL, recorded_by text NOT NULL"
	for r in $(seq "$REPS"); do
		printf '  consent %s rep %s:' "$lab" "$r"
		for side in $(order "$r" base ours alt); do
			db="sc_${side}"
			case $side in
			base)
				db_with $db
				q $db postgres -c "CREATE SEQUENCE ev_seq" -c "CREATE TABLE ev ($cols)" \
					-c "CREATE INDEX ON ev (subject, purpose, event_id)" -c "CHECKPOINT" >/dev/null
				t=$(timed $db postgres "" "INSERT INTO ev SELECT nextval('ev_seq'), g::text, 'analytics', 'grant', NULL, NULL,
					clock_timestamp(), session_user FROM generate_series(1, $n) g;" \
					"(SELECT count(*) FROM ev) = $n")
				tbase=${t%|*} ;;
			ours|alt)
				db_with $db consent_ledger
				# the consent ledger exists before the timed load (made by the first grant)
				q $db postgres -c "SELECT consent_ledger.define_purpose('analytics', 'scale benchmark')" \
					-c "SELECT consent_ledger.grant_consent('warm-up', 'analytics')" \
					-c "SELECT consent_ledger.seal()" -c "CHECKPOINT" >/dev/null
				if [ $side = ours ]; then
					t=$(timed $db postgres "" "SELECT count(consent_ledger.grant_consent(g::bigint, 'analytics')) FROM generate_series(1, $n) g;" \
						"(SELECT count(*) FROM consent_ledger.consent_events) = $n + 1")
					tset=${t%|*}
				else
					t=$(timed $db postgres "" "SELECT consent_ledger.grant_consent(array_agg(g::text), 'analytics') FROM generate_series(1, $n) g;" \
						"(SELECT count(*) FROM consent_ledger.consent_events) = $n + 1")
					tbulk=${t%|*}
				fi
				v=$(timed $db postgres "" "SELECT consent_ledger.seal();")
				note "scale $lab rep $r: seal() after the $side consent load took $v s" ;;
			esac
			[ "${t#*|}" = t ] || invalid "$([ $side = alt ] && echo $id_bulk || echo $id_set)" "$side side did not record $n events (rep $r)"
			printf ' %s %s s' "$side" "${t%|*}"
		done
		val $id_set base "$tbase" "$r"; val $id_set ours "$tset" "$r"
		val $id_bulk base "$tbase" "$r"; val $id_bulk ours "$tbulk" "$r"
		echo
	done
	note "scale $lab: bulk consent rates: plain INSERT $(awk -v n=$n -v t=$tbase 'BEGIN{printf "%.0f", n/t}')/s, set-wise $(awk -v n=$n -v t=$tset 'BEGIN{printf "%.0f", n/t}')/s, bulk $(awk -v n=$n -v t=$tbulk 'BEGIN{printf "%.0f", n/t}')/s (last repetition)"

	# the set-wise database now holds N subjects with consent: protect a fact
	# table over them (fact rows: max(N, 1M) capped at the warehouse size)
	local rows=$WH_ROWS db=sc_ours expected
	scale_roles
	q $db postgres >/dev/null <<SQL
SET client_min_messages = warning;
SELECT setseed($SEED_FLOAT);
CREATE TABLE f_plain AS SELECT g::bigint AS id, (1 + floor(random() * $n))::bigint AS subject_id,
	round((random() * 1000)::numeric, 2)::numeric(12,2) AS amount FROM generate_series(1, $rows) g;
CREATE TABLE f_prot AS SELECT * FROM f_plain;
GRANT SELECT ON f_plain, f_prot TO scale_analyst, scale_admin;
GRANT SELECT ON pg_backend_memory_contexts TO scale_analyst;
GRANT EXECUTE ON FUNCTION pg_get_backend_memory_contexts() TO scale_analyst;
SELECT consent_ledger.authorize_purpose('scale_analyst', 'analytics');
SELECT consent_ledger.authorize_purpose('scale_admin', 'analytics');
SELECT consent_ledger.protect('f_prot', 'subject_id');
VACUUM ANALYZE f_plain, f_prot;
SQL
	expected=$(q $db postgres -c "SELECT count(*) || '|' || sum(amount) FROM f_plain")

	# new session: first vs second protected query, and its memory growth
	local id_first="scale_first_$n" id_mem="scale_mem_$n" res t1 t2 m0 m1 growth
	row $id_first "new session: 1st protected query vs 2nd" "$lab subjects" s le 2 "" "1st query $lab"
	row $id_mem "new session: memory growth after 1st protected query" "$lab subjects" bytes info ""
	for r in $(seq "$REPS"); do
		res=$(q $db scale_analyst <<SQL
SET client_min_messages = warning;
SET consent_ledger.purpose = 'analytics';
SELECT sum(total_bytes) AS m0 FROM pg_backend_memory_contexts \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) AS n1, sum(amount) AS s1 FROM f_prot \gset
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
SELECT count(*) AS n2, sum(amount) AS s2 FROM f_prot \gset
SELECT extract(epoch FROM clock_timestamp()) AS t2 \gset
SELECT sum(total_bytes) AS m1 FROM pg_backend_memory_contexts \gset
SELECT round(:t1 - :t0, 6) || '|' || round(:t2 - :t1, 6) || '|' || :m0 || '|' || :m1 || '|' ||
	((:'n1' || '|' || :'s1') = '$expected' AND (:'n2' || '|' || :'s2') = '$expected') || '|' || :'n1' || '|' || :'s1';
SQL
		)
		IFS='|' read -r t1 t2 m0 m1 v _ <<<"$(echo "$res" | tail -n1)"
		val $id_first base "$t2" "$r"; val $id_first ours "$t1" "$r"
		val $id_mem base "$m0" "$r"; val $id_mem ours "$m1" "$r"
		growth=$((m1 - m0))
		printf '  %s rep %s: 1st %s s, 2nd %s s, memory %s -> %s bytes\n' "$lab" "$r" "$t1" "$t2" "$m0" "$m1"
		[ "$v" = true ] || invalid $id_first "the protected reads did not return every consenting subject's rows (rep $r: $(echo "$res" | tail -n1), expected $expected)"
	done
	judge $id_mem $([ "$growth" -le $((8 * 1048576)) ] && echo 1 || echo 0) "$(awk -v g=$growth 'BEGIN{printf "%.1f MiB", g/1048576}') growth, target <= 8 MiB"

	# shared memory used by consent state (after the reads above loaded it)
	local shm names
	shm=$(q $db postgres -c "SELECT coalesce(sum(allocated_size), 0) FROM pg_shmem_allocations WHERE name ILIKE '%consent%'")
	names=$(q $db postgres -c "SELECT coalesce(string_agg(name || ' ' || allocated_size, ', ' ORDER BY name), '') FROM pg_shmem_allocations WHERE name ILIKE '%consent%'")
	row "scale_shm_$n" "shared memory named *consent* (pg_shmem_allocations)" "$lab subjects" bytes info ""
	val "scale_shm_$n" ours "$shm"
	note "scale $lab: pg_shmem_allocations *consent*: ${names:-none} (= $(awk -v s=$shm -v n=$n 'BEGIN{printf "%.1f", s/n}') bytes per subject if all of it were consent state; the 1.2 segment \"consent_ledger\" is the sealer/audit state only, of fixed size); DSA/DSM memory is not listed there"

	# parallel protected scan (2 workers) vs the same on the plain table
	local id_par="scale_par_$n" w tab
	local par="SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;"
	row $id_par "protected scan, 2 parallel workers" "$lab subjects" s le 1.3 "" "parallel $lab"
	for r in $(seq "$REPS"); do
		printf '  parallel %s rep %s:' "$lab" "$r"
		for side in $(order "$r" base ours); do
			tab=$([ $side = base ] && echo f_plain || echo f_prot)
			res=$(timed $db scale_analyst "$par SET consent_ledger.purpose = 'analytics'; SELECT count(*), sum(amount) FROM $tab;" \
				"SELECT count(*) AS n, sum(amount) AS s FROM $tab \gset" ":'n' || '|' || :'s'")
			val $id_par $side "${res%%|*}" "$r"
			printf ' %s %s s' "$tab" "${res%%|*}"
			[ "${res#*|}" = "$expected" ] || invalid $id_par "$tab returned ${res#*|}, expected $expected (rep $r)"
		done
		echo
	done
	for tab in f_plain f_prot; do
		w=$(q $db scale_admin <<SQL | sed -n 's/.*Workers Launched: \([0-9]*\).*/\1/p' | head -n1
$par SET consent_ledger.purpose = 'analytics';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT count(*), sum(amount) FROM $tab;
SQL
		)
		[ "${w:-0}" = 2 ] || invalid $id_par "$tab launched ${w:-0} parallel workers, not 2"
	done
	phase_end
}

# A ledger with H rows of history vs an empty one: a sealing round for 1k
# new rows, an inclusion proof, verify's memory.
fig_scale_ledger() {
	local h=$1 lab r side db t v res id_seal id_pt id_pm id_vm before after
	lab=$(label "$h")
	phase_start "scale: ledger with $lab rows of history (seal round, inclusion proof, verify memory)"
	local cols="id bigserial PRIMARY KEY, subject_id bigint, amount numeric(12,2), note text"
	db_with sl_empty consent_ledger
	db_with sl_hist consent_ledger
	for db in sl_empty sl_hist; do
		q $db postgres -c "CREATE TABLE lt ($cols)" -c "SELECT consent_ledger.create_ledger('lt')" >/dev/null
	done
	t=$(timed sl_hist postgres "" "INSERT INTO lt (subject_id, amount, note) SELECT g % 100000, g % 1000, 'history' FROM generate_series(1, $h) g;")
	v=$(timed sl_hist postgres "" "SELECT consent_ledger.seal();")
	note "scale ledger $lab: loading the history took $t s, sealing it $v s"
	q sl_hist postgres -c "VACUUM ANALYZE lt" -c "CHECKPOINT" >/dev/null

	# 1k rows committed, then seal(): the round that seals them (the sealer
	# is woken by the commit; seal() waits until it has sealed them)
	id_seal="scale_seal_$h"
	row $id_seal "seal round: 1k new rows (insert + seal())" "$lab history" s le 1.5 "" "seal 1k @ $lab"
	for r in $(seq "$REPS"); do
		printf '  seal %s rep %s:' "$lab" "$r"
		for side in $(order "$r" base ours); do
			db=$([ $side = base ] && echo sl_empty || echo sl_hist)
			res=$(timed $db postgres "" "INSERT INTO lt (subject_id, amount, note) SELECT g, g, 'round' FROM generate_series(1, 1000) g;
SELECT consent_ledger.seal();" \
				"(SELECT pending FROM consent_ledger.verify('lt')) = 0")
			val $id_seal $side "${res%|*}" "$r"
			printf ' %s %s s' "$db" "${res%|*}"
			[ "${res#*|}" = t ] || invalid $id_seal "$db had rows pending after seal() (rep $r)"
		done
		echo
	done

	# inclusion proof of the middle leaf, in a fresh session after one
	# untimed proof of leaf 0 (library, catalog caches): time, and memory (growth of the backend's contexts, and of its peak RSS
	# minus the shared memory it mapped meanwhile: an estimate of the peak)
	id_pt="scale_proof_time_$h"; id_pm="scale_proof_mem_$h"
	row $id_pt "inclusion proof (after one in the same session)" "$lab rows" s info "" "proof $lab"
	row $id_pm "inclusion proof: peak private memory (est.)" "$lab rows" bytes info ""
	local size mid worst_t=0 worst_m=0 pm
	size=$(q sl_hist postgres -c "SELECT (consent_ledger.checkpoint('lt')->>'size')::bigint" 2>/dev/null || true)
	[[ "$size" =~ ^[0-9]+$ ]] || size=$h
	mid=$((size / 2))
	for r in $(seq "$REPS"); do
		res=$(q sl_hist postgres <<SQL
SET client_min_messages = warning;
SELECT length(consent_ledger.inclusion_proof('lt', 0)::text) > 0 AS warm \gset
$MEM_PROBE AS before \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT length(consent_ledger.inclusion_proof('lt', $mid)::text) > 0 AS ok \gset
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
$MEM_PROBE AS after \gset
SELECT round(:t1 - :t0, 6) || '|' || :'before' || '|' || :'after' || '|' || :'ok';
SQL
		)
		res=$(echo "$res" | tail -n1)
		IFS='|' read -r t c0 h0 s0 c1 h1 s1 v <<<"$res"
		pm=$(( (h1 - h0 - (s1 - s0)) * 1024 )); [ $pm -lt 0 ] && pm=0
		[ $((c1 - c0)) -gt $pm ] && pm=$((c1 - c0))
		val $id_pt ours "$t" "$r"; val $id_pm ours "$pm" "$r"
		worst_t=$(awk -v a=$worst_t -v b=$t 'BEGIN{print (b > a ? b : a)}'); [ $pm -gt $worst_m ] && worst_m=$pm
		printf '  proof %s rep %s: %s s, ~%s bytes\n' "$lab" "$r" "$t" "$pm"
		[ "$v" = t ] || invalid $id_pt "inclusion_proof('lt', $mid) returned nothing (rep $r)"
	done
	judge $id_pt $(awk -v t=$worst_t 'BEGIN{print (t <= 0.010 ? 1 : 0)}') "slowest $(awk -v t=$worst_t 'BEGIN{printf "%.1f ms", t*1000}'), target <= 10 ms"
	judge $id_pm $([ $worst_m -le 1048576 ] && echo 1 || echo 0) "largest $(awk -v m=$worst_m 'BEGIN{printf "%.2f MiB", m/1048576}'), target <= 1 MiB"

	# verify(): time and memory, fresh session
	id_vm="scale_verify_mem_$h"
	row $id_vm "verify: peak private memory (est.)" "$lab rows" bytes info ""
	res=$(q sl_hist postgres <<SQL
SET client_min_messages = warning;
$MEM_PROBE AS before \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT valid AS ok FROM consent_ledger.verify('lt') \gset
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
$MEM_PROBE AS after \gset
SELECT round(:t1 - :t0, 6) || '|' || :'before' || '|' || :'after' || '|' || :'ok';
SQL
	)
	IFS='|' read -r t c0 h0 s0 c1 h1 s1 v <<<"$(echo "$res" | tail -n1)"
	pm=$(( (h1 - h0 - (s1 - s0)) * 1024 )); [ $pm -lt 0 ] && pm=0
	[ $((c1 - c0)) -gt $pm ] && pm=$((c1 - c0))
	val $id_vm ours "$pm"
	note "scale ledger $lab: verify took $t s, peak private memory ~$(awk -v m=$pm 'BEGIN{printf "%.1f MiB", m/1048576}') (peak RSS growth $(( (h1 - h0) / 1024 )) MiB, of which shared memory mapped $(( (s1 - s0) / 1024 )) MiB)"
	[ "$v" = t ] || invalid $id_vm "verify('lt') did not say valid"
	phase_end
}

if [ "$VERIFY_ONLY" = 1 ]; then
	figure fig_verify
elif [ "$BULK_ONLY" = 1 ]; then
	setup_warehouse
	figure fig_bulk
	figure fig_verify
elif [ "$ERASURE_ONLY" = 1 ]; then
	figure fig_insert_personal
	figure fig_erase
elif [ "$PGBENCH_ONLY" = 1 ]; then
	figure fig_insert
	figure fig_tpcb
elif [ "$DATASETS_ONLY" = 1 ]; then
	figure fig_dataset
elif [ "$SCALE" != only ]; then
	setup_warehouse
	figure fig_insert
	figure fig_insert_personal
	figure fig_erase
	figure fig_dataset
	figure fig_bulk
	figure fig_verify
	figure fig_select
	figure fig_tpcb
	figure fig_memory
fi
if [ "$SCALE" != no ]; then
	for n in $SCALE_SUBJECT_ROWS; do figure fig_scale_subjects "$n"; done
	for n in $SCALE_LEDGER_ROWS; do figure fig_scale_ledger "$n"; done
fi
figure check_integrity

# ---------------------------------------------------------------------
# Report: table, CSV, chart
# ---------------------------------------------------------------------
total=$(( $(date +%s) - t_start ))
printf 'total\t%s\t%s\t%s\n' "$total" "$LOAD0" "$(load)" >> "$RES/phases.txt"
awk -F'\t' -v txt="$RES/table.txt" -v csv="$out/results.csv" -v dat="$RES/ratios.dat" '
function isnum(x) { return x ~ /^-?[0-9]+(\.[0-9]+)?$/ }
function sortnum(list, a,   n, i, j, t) {
	n = split(list, a, ";")
	for (i = 1; i <= n; i++) a[i] += 0
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n
}
function median(list,   a, n) {
	n = sortnum(list, a)
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function lo(list,   a, n) { n = sortnum(list, a); return a[1] }
function hi(list,   a, n) { n = sortnum(list, a); return a[n] }
function fmt(v, unit) {
	if (unit == "s") return sprintf("%.3f s", v)
	if (unit == "tps") return sprintf("%.0f tps", v)
	if (unit == "bytes") return sprintf("%.1f MiB", v / 1048576)
	return v
}
function cell(id, side, unit) {
	if (text[id, side] != "") return text[id, side]
	if (runs[id, side] == "") return ""
	return fmt(median(runs[id, side]), unit)
}
# the seal() of a bulk load ("load" figures) may add this much more
function sealtgt() { return 0.5 }
function meets(ratio, id) {
	if (op[id] == "le") return sprintf("%.2f", ratio) + 0 <= tgt[id] + 0
	if (op[id] == "ge") return sprintf("%.2f", ratio) + 0 >= tgt[id] + 0
	return 0
}
# a bulk figure: the load alone within its target, its seal() within sealtgt()
function loadmet(load, seal, id) {
	return sprintf("%.2f", load) + 0 <= tgt[id] + 0 && sprintf("%.2f", seal) + 0 <= sealtgt()
}
function add(list, v) { return list == "" ? v : list ";" v }
function csvq(s) { gsub(/"/, "\"\"", s); return "\"" s "\"" }
FNR == NR { order[++nrows] = $1; fig[$1] = $2; size[$1] = $3; unit[$1] = $4; op[$1] = $5; tgt[$1] = $6; altname[$1] = $7; short[$1] = $8; next }
{
	if ($2 == "invalid") { bad[$1] = add(bad[$1], $3); next }
	if (isnum($3)) {
		runs[$1, $2] = add(runs[$1, $2], $3)
		if ($4 != "-") {
			pv[$1, $2, $4] = $3
			if (!seenrep[$1, $4]++) reps[$1] = add(reps[$1], $4)
		}
	} else text[$1, $2] = $3
}
END {
	h[1] = "figure"; h[2] = "size"; h[3] = "baseline"; h[4] = "ours"; h[5] = "ratio"; h[6] = "min-max"; h[7] = "target"
	h[8] = "met?"; h[9] = "ledger seal"; h[10] = "load only"; h[11] = "alternative"; h[12] = "alt"; h[13] = "alt/baseline"
	ncol = 13
	print "figure,size,unit,baseline,ours,ratio,ratio_min,ratio_max,target,met,seal,load_only_ratio,alternative,alt,alt_ratio,baseline_runs,ours_runs,alt_runs,seal_runs,paired_ratios,invalid" > csv
	for (k = 1; k <= nrows; k++) {
		id = order[k]; u = unit[id]
		b = runs[id, "base"]; o = runs[id, "ours"]; a = runs[id, "alt"]
		bm = b != "" ? median(b) : ""; om = (o != "" && text[id, "ours"] == "") ? median(o) : ""
		am = a != "" ? median(a) : ""; sm = runs[id, "seal"] != "" ? median(runs[id, "seal"]) : ""
		# paired ratios, repetition by repetition (ours includes its seal() where measured)
		pr = ""; lr = ""; sr = ""; ar = ""; nmet = 0; npr = 0
		nr = split(reps[id], rl, ";")
		for (i = 1; i <= nr; i++) {
			r = rl[i]; bv = pv[id, "base", r]; ov = pv[id, "ours", r]
			if (bv == "" || bv + 0 <= 0) continue
			if (ov != "" && text[id, "ours"] == "") {
				sv = pv[id, "seal", r]
				x = (ov + (sv != "" ? sv : 0)) / bv
				pr = add(pr, sprintf("%.4f", x)); npr++
				if (op[id] == "load") {
					if (sv != "" && loadmet(ov / bv, sv / bv, id)) nmet++
				} else if (meets(x, id)) nmet++
				if (sv != "") { lr = add(lr, sprintf("%.4f", ov / bv)); sr = add(sr, sprintf("%.4f", sv / bv)) }
			}
			if (pv[id, "alt", r] != "") ar = add(ar, sprintf("%.4f", pv[id, "alt", r] / bv))
		}
		ratio = pr != "" ? median(pr) : ""
		aratio = ar != "" ? median(ar) : ""
		if (op[id] == "le") target = "<= " tgt[id] "x"
		else if (op[id] == "load") target = "<= " tgt[id] "x +" sealtgt() "x seal"
		else if (op[id] == "ge") target = ">= " tgt[id]
		else if (op[id] == "bounded") target = "bounded"
		else target = "-"
		met = ""
		if (bad[id] != "") met = "INVALID"
		else if (text[id, "met"] != "") met = text[id, "met"]
		else if (ratio == "") met = (op[id] == "info" ? "" : "n/a")
		else if (op[id] == "le" || op[id] == "ge") met = (meets(ratio, id) ? "yes" : "NO") " (" nmet "/" npr ")"
		else if (op[id] == "load") met = (lr != "" && loadmet(median(lr), median(sr), id) ? "yes" : "NO") " (" nmet "/" npr ")"
		c[k, 1] = fig[id]; c[k, 2] = size[id]; c[k, 3] = cell(id, "base", u); c[k, 4] = cell(id, "ours", u)
		c[k, 5] = ratio != "" ? sprintf("%.2f", ratio) : (text[id, "ours"] != "" ? "n/a" : "")
		c[k, 6] = pr != "" ? sprintf("%.2f-%.2f", lo(pr), hi(pr)) : ""
		c[k, 7] = target; c[k, 8] = met
		c[k, 9] = sm != "" ? fmt(sm, "s") (sr != "" ? sprintf(" (%.2fx)", median(sr)) : "") : ""
		c[k, 10] = lr != "" ? sprintf("%.2f", median(lr)) : ""
		c[k, 11] = (a != "" || text[id, "alt"] != "") ? altname[id] : ""
		c[k, 12] = cell(id, "alt", u); c[k, 13] = aratio != "" ? sprintf("%.2f", aratio) : ""
		for (j = 1; j <= ncol; j++) { l = length(c[k, j]); if (l > w[j]) w[j] = l }
		printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", csvq(fig[id]), csvq(size[id]), u, bm,
			(text[id, "ours"] != "" ? csvq(text[id, "ours"]) : om), (ratio != "" ? sprintf("%.4f", ratio) : ""),
			(pr != "" ? lo(pr) : ""), (pr != "" ? hi(pr) : ""),
			csvq(target), csvq(met), sm, (lr != "" ? sprintf("%.4f", median(lr)) : ""), csvq(c[k, 11]), am,
			(aratio != "" ? sprintf("%.4f", aratio) : ""), b, o, a, runs[id, "seal"], pr, csvq(bad[id]) > csv
		if (ratio != "" && (op[id] == "le" || op[id] == "ge" || op[id] == "load")) {
			lbl = short[id]; gsub(/"/, "", lbl)
			# a bulk figure is drawn as load + seal against the sum of its targets
			printf "%d\t%s\t%.4f\t%s\t%s\t%d\n", ++np, lbl, ratio, tgt[id] + (op[id] == "load" ? sealtgt() : 0), (aratio != "" ? sprintf("%.4f", aratio) : "NaN"), (met ~ /^yes/ ? 2924588 : 3894952) > dat
		}
	}
	for (j = 1; j <= ncol; j++) if (length(h[j]) > w[j]) w[j] = length(h[j])
	line = ""; sep = ""
	for (j = 1; j <= ncol; j++) { line = line sprintf("%s%-*s", (j > 1 ? " | " : ""), w[j], h[j]); sep = sep (j > 1 ? "-+-" : "") sprintf("%*s", w[j], ""); }
	gsub(/ /, "-", sep)
	print line > txt; print sep > txt
	for (k = 1; k <= nrows; k++) {
		line = ""
		for (j = 1; j <= ncol; j++) line = line sprintf("%s%-*s", (j > 1 ? " | " : ""), w[j], c[k, j])
		sub(/ +$/, "", line)
		print line > txt
	}
}' "$RES/rows.tsv" "$RES/runs.tsv"

{
	cat "$RES/header.txt"
	echo "results ($REPS repetition(s); baseline, ours, alt: the median of each side; ratio: the median of the paired"
	echo "per-repetition ratios ours_r / baseline_r, min-max: their range; met?: the median against the target, and how"
	echo "many repetitions met it; INVALID: a correctness check failed, see the notes):"
	echo
	cat "$RES/table.txt"
	echo
	echo "figures: baseline = the same operation on a plain / unprotected table (tpcb: no audit; memory: the earlier"
	echo "reading); ours = the ledger table, verify(), the protected table as an authorized analyst, audit(); ledger seal ="
	echo "seal() right after the ledger load (in parentheses: its ratio to the baseline), counted in the bulk figures'"
	echo "ratio (load only: the ratio without it); a bulk figure is met when its load only is within the target and its"
	echo "seal within another 0.5x (issue #13);"
	echo "alternatives are hand-written equivalents.  The order of the sides rotates each repetition; each side of a"
	echo "figure that writes has a database of its own."
	echo
	echo "notes:"
	sed 's/^/  /' "$RES/notes.txt"
	echo
	echo "phase durations (s) and the load average (1/5/15 min) at the start and the end of each:"
	awk -F'\t' '{ printf "  %-90s %6d   %s -> %s\n", $1, $2, $3, $4 }' "$RES/phases.txt"
} > "$out/results.txt"
echo
echo "=================================================================="
sed -n "/^results (/,\$p" "$out/results.txt"

if command -v gnuplot >/dev/null && [ -s "$RES/ratios.dat" ]; then
	cp "$RES/ratios.dat" "$out/ratios.dat"
	gnuplot <<GP || echo "gnuplot failed: no chart" >&2
set terminal pngcairo size 1500,900 font ",10"
set output "$out/ratios.png"
set termoption noenhanced
set title "consent_ledger benchmark (seed $SEED, $REPS rep(s)): ratio ours / baseline against the SPEC targets\ntime ratios must stay at or below the red mark, tps ratios at or above it; green = target met"
set style fill solid 0.85 border -1
set boxwidth 0.35
set grid ytics
set ylabel "ratio (log scale)"
set logscale y 2
set key outside top center horizontal
set datafile separator "\t"
set xtics rotate by 40 right
set lmargin 12
set bmargin 9
set xrange [0.3:*]
set yrange [0.25:*]
plot NaN with boxes lc rgb "#2ca02c" title "consent_ledger / baseline: target met", \
     NaN with boxes lc rgb "#3b6ea8" title "consent_ledger / baseline: not met", \
     "$out/ratios.dat" using (\$1-0.18):3:6:xtic(2) with boxes lc rgb variable notitle, \
     "" using (\$1+0.18):5 with boxes lc rgb "#aaaaaa" title "hand-written alternative / baseline", \
     "" using (\$1-0.42):4:(0.84):(0) with vectors nohead lw 3 lc rgb "#d62728" title "target"
GP
	rm -f "$out/ratios.dat"
	[ -f "$out/ratios.png" ] && echo "chart: $out/ratios.png"
fi
echo "written: $out/results.txt $out/results.csv"
echo "total time: ${total} s"
