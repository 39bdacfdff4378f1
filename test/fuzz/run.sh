#!/bin/sh
#-------------------------------------------------------------------------
# run.sh [SECONDS]
#	Builds the six libFuzzer targets with clang
#	(-fsanitize=fuzzer,address,undefined) into a temporary directory and
#	runs each for SECONDS (default 10) on a copy of its seed corpus
#	test/fuzz/corpus/<target>/.  Prints TAP for prove; exits non-zero
#	when a target fails to build or finds a crash, leak or UB.
#
#	Needs clang and libFuzzer (Debian bookworm: clang-14 and
#	libclang-rt-14-dev), libsodium-dev and libssl-dev.  CLANG overrides the compiler;
#	CL_FUZZ_ARTIFACTS, when set, is a directory that receives crashing
#	inputs (otherwise the first bytes are printed as TAP diagnostics).
#-------------------------------------------------------------------------
set -u

secs=${1:-10}
case "$secs" in
	''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
CLANG=${CLANG:-clang}
targets="fuzz_note fuzz_json fuzz_export fuzz_proof fuzz_leaf fuzz_statement"
sources="$srcdir/src/sha256.c $srcdir/src/note.c $srcdir/src/json.c $srcdir/src/merkle.c $srcdir/src/proof.c $srcdir/src/leaf.c $srcdir/src/statement.c"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cl-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "Bail out! $CLANG not found (apt-get install clang-14 libclang-rt-14-dev)"
	exit 2
fi
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void) d; (void) n; return 0; }\n' >"$tmp/probe.c"
if ! "$CLANG" -fsanitize=fuzzer "$tmp/probe.c" -o "$tmp/probe" >"$tmp/probe.log" 2>&1; then
	echo "Bail out! $CLANG cannot link libFuzzer (apt-get install libclang-rt-14-dev)"
	sed 's/^/# /' "$tmp/probe.log"
	exit 2
fi

echo "1..6"
i=0
failed=0
for t in $targets; do
	i=$((i + 1))
	if ! "$CLANG" -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -I"$srcdir/src" \
		"$srcdir/test/fuzz/$t.c" $sources -lsodium -lcrypto -o "$tmp/$t" >"$tmp/$t.build" 2>&1; then
		echo "not ok $i - $t: build failed"
		sed 's/^/# /' "$tmp/$t.build"
		failed=$((failed + 1))
		continue
	fi
	mkdir -p "$tmp/corpus-$t"
	if [ -d "$srcdir/test/fuzz/corpus/$t" ]; then
		cp "$srcdir/test/fuzz/corpus/$t"/* "$tmp/corpus-$t"/ 2>/dev/null
	fi
	mkdir -p "$tmp/art-$t"
	(
		cd "$tmp" &&
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"./$t" -max_total_time="$secs" -max_len=16384 -timeout=10 \
			-print_final_stats=1 -artifact_prefix="$tmp/art-$t/" \
			"corpus-$t" >"$tmp/$t.log" 2>&1
	)
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t.log" | tail -n 1)
	[ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$tmp/$t.log" | tail -n 1)
	[ -n "$runs" ] || runs="?"
	if [ "$rc" -eq 0 ]; then
		echo "ok $i - $t: $runs runs, no crash"
	else
		echo "not ok $i - $t: crashed (exit $rc) after $runs runs"
		grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$tmp/$t.log" | head -n 30 | sed 's/^/# /'
		for a in "$tmp/art-$t"/*; do
			[ -f "$a" ] || continue
			if [ -n "${CL_FUZZ_ARTIFACTS:-}" ]; then
				mkdir -p "$CL_FUZZ_ARTIFACTS" && cp "$a" "$CL_FUZZ_ARTIFACTS/" &&
					echo "# input saved as $CL_FUZZ_ARTIFACTS/$(basename "$a")"
			else
				echo "# input $(basename "$a") (first 256 bytes, hex):"
				od -An -tx1 -N256 "$a" | sed 's/^/# /'
			fi
		done
		failed=$((failed + 1))
	fi
done
[ "$failed" -eq 0 ]
