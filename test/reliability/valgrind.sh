#!/usr/bin/env bash
# test/reliability/valgrind.sh — the regression and isolation suites under
# valgrind memcheck.                                 (make valgrind-check)
#
# As root: builds and installs the extension (make && make install), then
# as user "postgres": initdb of a throwaway cluster in a temp dir
# (test/regress.conf, port $VG_PORT (55900), socket in the temp dir, no
# TCP), starts the postmaster under
#   valgrind --tool=memcheck --trace-children=yes --error-exitcode=128
#            --suppressions=test/reliability/valgrind.supp --log-file=<dir>/%p.log
# (one log per process: every backend, worker and auxiliary process), runs
# pg_regress (sql/, expected/) and pg_isolation_regress
# (test/isolation/specs) against it with --use-existing, stops it, and
# summarizes per log file the valgrind errors, and how many have a frame in
# consent_ledger (consent_ledger.so or a source file of this tree).
#
# Ends with "valgrind: N errors in consent_ledger over M regression tests
# (T errors in total)"; exits 1 when consent_ledger has errors, 2 when the
# setup failed.  Test failures (outputs differ, often timing under
# valgrind's slowdown) are reported but do not fail the run.
#
# Environment: VG_PORT (55900), VG_TRACK_ORIGINS (yes), VG_TIMEOUT
# (seconds per runner, 5400), VG_KEEP=1 keeps the data directory.
#
# Limitation: Debian's postgres is not built with USE_VALGRIND, so palloc
# chunks inside memory-context blocks are not marked NOACCESS/UNDEFINED:
# reads past a palloc'd chunk within its block, use after pfree and reads
# of recycled-but-unwritten chunk memory go unnoticed; what is checked is
# malloc-level memory, uninitialised values from fresh malloc/mmap/stack
# memory reaching a branch or a syscall, and libc/libsodium calls.
set -u
. "$(dirname "$0")/lib.sh"

port=${VG_PORT:-55900}
rel_timeout=${VG_TIMEOUT:-5400}
if ! command -v valgrind >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null || exit 2
	else
		echo "valgrind not installed (apt-get install valgrind)"; exit 2
	fi
fi

rel_setup valgrind
echo "valgrind: work directory $rel_tmp"
rel_build_install || exit 2
cp "$rel_here/test/reliability/valgrind.supp" "$rel_tmp/src/valgrind.supp"
[ -n "$RUNAS" ] && chown "$RUNAS" "$rel_tmp/src/valgrind.supp"

# Valgrind slows everything down 20-50 times: give the sealer more time.
# No JIT: LLVM under memcheck is slow and noisy, and it is not our code.
rel_extra_conf="consent_ledger.seal_timeout = '600s'
jit = off"
rel_initdb "$port" || exit 2

vg_dir="$rel_tmp/valgrind"
mkdir -p "$vg_dir"
[ -n "$RUNAS" ] && chown "$RUNAS" "$vg_dir"
vg_opts="--tool=memcheck --trace-children=yes --error-exitcode=128 \
--suppressions=$rel_tmp/src/valgrind.supp --log-file=$vg_dir/%p.log \
--track-origins=${VG_TRACK_ORIGINS:-yes} --leak-check=no --num-callers=40 \
--fullpath-after= --gen-suppressions=all --read-inline-info=yes"

cleanup() {
	rel_stop 600
	[ "${VG_KEEP:-0}" = 1 ] || rm -rf "$rel_tmp/data"
}
trap cleanup EXIT
trap 'exit 3' INT TERM

start=$(date +%s)
rel_as_user "cd '$rel_tmp' && nohup valgrind $vg_opts $PGBIN/postgres -D '$rel_tmp/data' \
	>'$rel_tmp/logs/server.log' 2>&1 </dev/null & echo \$! >'$rel_tmp/postmaster.vgpid'"
if ! rel_wait_ready 300 "$port" "$(cat "$rel_tmp/postmaster.vgpid")"; then
	echo "valgrind: the server did not start under valgrind:"
	tail -n 30 "$rel_tmp/logs/server.log"
	exit 2
fi
echo "valgrind: server up after $(( $(date +%s) - start )) s; running the suites"

rel_run_suites "$port"
echo "valgrind: pg_regress $rel_regress_ok ok, $rel_regress_bad failed;" \
	"isolation $rel_iso_ok ok, $rel_iso_bad failed ($(( $(date +%s) - start )) s)"
grep -E '\.\.\. FAILED|^not ok' "$rel_tmp/logs/regress.out" "$rel_tmp/logs/isolation.out" | sed 's/^/  /'
[ -n "$rel_pgtap_result" ] && echo "valgrind: pgTAP ($rel_pgtap_files files): $rel_pgtap_result"

rel_stop 600
trap - EXIT
[ "${VG_KEEP:-0}" = 1 ] || rm -rf "$rel_tmp/data"

# exit code 128 is valgrind's --error-exitcode (the postmaster then
# restarts every process, so the suites fail around it)
crashes=$(grep -cE 'terminated by signal|exited with exit code 128' "$rel_tmp/logs/server.log")
echo "valgrind: server log: $crashes processes exited with valgrind's error exit code or a signal"
grep -E 'terminated by signal|exited with exit code 128' "$rel_tmp/logs/server.log" | head -n 20 | sed 's/^/  /'

perl "$rel_here/test/reliability/vg_summary.pl" "$rel_here" "$vg_dir"/*.log >"$rel_tmp/logs/summary.txt"
grep -v '^TOTAL ' "$rel_tmp/logs/summary.txt"
read -r _ total ours nlogs logs_with ours_top < <(grep '^TOTAL ' "$rel_tmp/logs/summary.txt")
ntests=$((rel_regress_ok + rel_regress_bad + rel_iso_ok + rel_iso_bad))
echo "valgrind: $nlogs process logs, $logs_with with errors; logs in $vg_dir"
echo "valgrind: of the consent_ledger errors, $ours_top in the extension's own code" \
	"(the rest have it further up the stack)"
echo "valgrind: $ours errors in consent_ledger over $ntests regression tests ($total errors in total)"
[ "$ours" = 0 ]
