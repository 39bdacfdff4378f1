#!/bin/sh
#-------------------------------------------------------------------------
# test_verifier.sh
#	TAP tests of the offline verifier, consent-ledger-verify.
#
#	CL_VERIFY=path/to/consent-ledger-verify sh test/unit/test_verifier.sh
#
# The verifier is not built here: CL_VERIFY names it (default
# ./consent-ledger-verify).  The signing helper test/unit/make_export.c is
# compiled into a temporary directory with $CC (default cc) against
# src/note.c, src/json.c, src/merkle.c and src/sha256.c, unless CL_MAKE_EXPORT names a built one.
# The temporary directory ($TMPDIR or /tmp) is removed at exit.
#-------------------------------------------------------------------------
set -u

srcdir=$(cd "$(dirname "$0")/../.." && pwd)
VERIFY=${CL_VERIFY:-./consent-ledger-verify}
case "$VERIFY" in
	/*) ;;
	*) VERIFY="$(pwd)/$VERIFY" ;;
esac
CC=${CC:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cl-verify-test.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

if [ ! -x "$VERIFY" ]; then
	echo "1..0 # SKIP verifier not found at $VERIFY (set CL_VERIFY)"
	exit 0
fi

if [ -n "${CL_MAKE_EXPORT:-}" ]; then
	MK=$CL_MAKE_EXPORT
else
	MK="$tmp/make_export"
	if ! $CC -std=c99 -O2 -I"$srcdir/src" "$srcdir/test/unit/make_export.c" \
		"$srcdir/src/note.c" "$srcdir/src/json.c" "$srcdir/src/merkle.c" "$srcdir/src/sha256.c" -lsodium -lcrypto -o "$MK" 2>"$tmp/cc.err"; then
		echo "Bail out! cannot compile test/unit/make_export.c"
		sed 's/^/# /' "$tmp/cc.err"
		exit 2
	fi
fi

# Results are collected so that the plan line comes first.
tap="$tmp/tap"
: >"$tap"
n=0
failed=0

# ok STATUS DESCRIPTION: records one result (STATUS 0 = pass)
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2" >>"$tap"
	else
		echo "not ok $n - $2" >>"$tap"
		failed=$((failed + 1))
	fi
}

# expect EXIT PREFIX DESCRIPTION COMMAND...: runs the command and passes
# when it exits with EXIT and its stdout starts with PREFIX
expect() {
	want=$1
	prefix=$2
	desc=$3
	shift 3
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	first=$(head -n 1 "$tmp/out")
	case "$first" in
		"$prefix"*) match=0 ;;
		*) match=1 ;;
	esac
	if [ "$rc" -eq "$want" ] && [ "$match" -eq 0 ]; then
		ok 0 "$desc"
	else
		ok 1 "$desc"
		echo "#   exit $rc (wanted $want), stdout: $first" >>"$tap"
		sed 's/^/#   stderr: /' "$tmp/err" >>"$tap"
	fi
}

# output_has TEXT DESCRIPTION: passes when the last command's stdout
# contains TEXT
output_has() {
	if grep -F -q -- "$1" "$tmp/out"; then
		ok 0 "$2"
	else
		ok 1 "$2"
		sed 's/^/#   stdout: /' "$tmp/out" >>"$tap"
	fi
}

# replace_line FILE LINENO TEXT: writes FILE with line LINENO replaced
replace_line() {
	awk -v n="$2" -v r="$3" 'NR == n { print r; next } { print }' "$1"
}

# nth_line FILE PATTERN K: line number of the K-th line matching PATTERN
nth_line() {
	grep -n -- "$2" "$1" | sed -n "$3p" | cut -d: -f1
}

V="$VERIFY"
O=example.com/ledger

#-------------------------------------------------------------------------
# keygen
#-------------------------------------------------------------------------
expect 0 "" "keygen writes a new key" "$V" keygen "$tmp/sk1"
cp "$tmp/out" "$tmp/pub1"
pub1=$(head -n 1 "$tmp/pub1")
mode=$(stat -c %a "$tmp/sk1" 2>/dev/null || echo unknown)
[ "$mode" = 600 ]
ok $? "keygen creates the key file with mode 0600 (got $mode)"
[ "$(wc -l <"$tmp/sk1")" -eq 1 ] && [ "$(head -c 44 "$tmp/sk1" | base64 -d 2>/dev/null | wc -c)" -eq 32 ]
ok $? "the key file is one line: the base64 of a 32-byte seed"
[ "$(printf %s "$pub1" | base64 -d 2>/dev/null | wc -c)" -eq 32 ]
ok $? "keygen prints the base64 public key on its first line"
output_has "key id " "keygen prints the key id"
expect 2 "" "keygen refuses to overwrite an existing file" "$V" keygen "$tmp/sk1"
expect 0 "" "keygen writes a second key" "$V" keygen "$tmp/sk2"
cp "$tmp/out" "$tmp/pub2"
pub2=$(head -n 1 "$tmp/pub2")
[ "$pub1" != "$pub2" ]
ok $? "two keygen runs give different keys"

#-------------------------------------------------------------------------
# exports
#-------------------------------------------------------------------------
"$MK" export "$tmp/sk1" "$O" 1,3,4 61 6263 00 ffee >"$tmp/good" || echo "Bail out! make_export failed"

expect 0 "OK: " "a valid export verifies" "$V" export --public-key "$tmp/pub1" "$tmp/good"
output_has "4 leaves, 3 checkpoints, latest size 4" "the OK line gives leaves, checkpoints and the latest size"
expect 0 "OK: " "a valid export verifies from stdin" sh -c '"$1" export --public-key "$2" - <"$3"' sh "$V" "$pub1" "$tmp/good"
expect 0 "OK: " "the public key may be given as base64" "$V" export --public-key "$pub1" "$tmp/good"
expect 0 "OK: " "any one of several --public-key keys may sign" "$V" export --public-key "$pub2" --public-key "$pub1" "$tmp/good"
expect 1 "FAIL: " "a valid export under the wrong key fails" "$V" export --public-key "$pub2" "$tmp/good"

"$MK" export "$tmp/sk1" "$O" 3,7,8,8,13,64,100 $(i=0; while [ $i -lt 100 ]; do printf '%02x%02x ' $i $((i * 7 % 256)); i=$((i + 1)); done) >"$tmp/big"
expect 0 "OK: " "a 100-leaf export with 7 checkpoints verifies" "$V" export --public-key "$pub1" "$tmp/big"
"$MK" export "$tmp/sk1" "$O" 0,1 "" >"$tmp/empty-leaf"
expect 0 "OK: " "an export with an empty leaf and a size-0 checkpoint verifies" "$V" export --public-key "$pub1" "$tmp/empty-leaf"

l=$(nth_line "$tmp/good" '^leaf ' 2)
replace_line "$tmp/good" "$l" "leaf 6264" >"$tmp/bad"
expect 1 "FAIL: " "a changed leaf fails" "$V" export --public-key "$pub1" "$tmp/bad"

sed "${l}d" "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: " "a dropped leaf fails" "$V" export --public-key "$pub1" "$tmp/bad"

awk -v n="$l" '{ print } NR == n { print "leaf 0102" }' "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: " "an extra leaf fails" "$V" export --public-key "$pub1" "$tmp/bad"

l3=$(nth_line "$tmp/good" '^leaf ' 3)
awk -v a="$l" -v b="$l3" 'NR == a { x = $0; next } NR == b { print; print x; next } { print }' "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: " "swapped leaves fail" "$V" export --public-key "$pub1" "$tmp/bad"

c=$(nth_line "$tmp/good" '^checkpoint ' 2)
note=$(sed -n "${c}p" "$tmp/good" | cut -d' ' -f2 | base64 -d | sed 's/^time 1700000001$/time 1700000009/' | base64 -w 0)
replace_line "$tmp/good" "$c" "checkpoint $note" >"$tmp/bad"
expect 1 "FAIL: checkpoint 2" "a tampered checkpoint fails" "$V" export --public-key "$pub1" "$tmp/bad"
output_has "signature" "and the failure names the signature"

"$MK" export "$tmp/sk2" "$O" 1,3,4 61 6263 00 ffee >"$tmp/bad"
expect 1 "FAIL: checkpoint 1" "a checkpoint signed by another key fails" "$V" export --public-key "$pub1" "$tmp/bad"

sed "${c}d" "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: checkpoint 2" "a dropped checkpoint breaks the prev chain" "$V" export --public-key "$pub1" "$tmp/bad"
output_has "prev" "and the failure names prev"

c3=$(nth_line "$tmp/good" '^checkpoint ' 3)
awk -v a="$c" -v b="$c3" 'NR == a { x = $0; next } NR == b { print; print x; next } { print }' "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: " "swapped checkpoints fail" "$V" export --public-key "$pub1" "$tmp/bad"

sed 's/^end 4$/end 5/' "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: " "a wrong end count fails" "$V" export --public-key "$pub1" "$tmp/bad"

sed '$d' "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: " "an export without its end record fails" "$V" export --public-key "$pub1" "$tmp/bad"

head -c -1 "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: " "an export without its last newline fails" "$V" export --public-key "$pub1" "$tmp/bad"

{ cat "$tmp/good"; echo "leaf 00"; } >"$tmp/bad"
expect 1 "FAIL: " "a record after the end record fails" "$V" export --public-key "$pub1" "$tmp/bad"

sed '1s/.*/consent-ledger-export 2/' "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: line 1" "an unknown export version fails" "$V" export --public-key "$pub1" "$tmp/bad"

sed '2s/.*/origin example.com\/other/' "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: checkpoint 1" "an origin that differs from the checkpoints' fails" "$V" export --public-key "$pub1" "$tmp/bad"

"$MK" export "$tmp/sk1" "$O" 1,3 61 6263 00 ffee >"$tmp/bad"
expect 1 "FAIL: " "a latest checkpoint that does not cover every leaf fails" "$V" export --public-key "$pub1" "$tmp/bad"

"$MK" export "$tmp/sk1" "$O" "" 61 6263 >"$tmp/bad"
expect 1 "FAIL: " "an export without checkpoints fails" "$V" export --public-key "$pub1" "$tmp/bad"

sed "${l}s/.*/leaf 62XY/" "$tmp/good" >"$tmp/bad"
expect 1 "FAIL: line $l (leaf 1)" "a malformed leaf line names its line and leaf index" "$V" export --public-key "$pub1" "$tmp/bad"

: >"$tmp/bad"
expect 1 "FAIL: " "an empty export fails" "$V" export --public-key "$pub1" "$tmp/bad"

#-------------------------------------------------------------------------
# the auditor's receipt (--checkpoint)
#-------------------------------------------------------------------------
"$MK" checkpoint-json "$tmp/sk1" "$O" 3 61 6263 00 >"$tmp/receipt.json"
"$MK" checkpoint-note "$tmp/sk1" "$O" 3 61 6263 00 >"$tmp/receipt.note"
expect 0 "OK: " "an export extending a JSON receipt verifies" "$V" export --public-key "$pub1" --checkpoint "$tmp/receipt.json" "$tmp/good"
output_has "extends --checkpoint of size 3" "and says it extends the receipt"
expect 0 "OK: " "an export extending a raw-note receipt verifies" "$V" export --public-key "$pub1" --checkpoint "$tmp/receipt.note" "$tmp/good"

"$MK" export "$tmp/sk1" "$O" 2,5 61 ffff 00 ffee 0101 >"$tmp/rewritten"
expect 0 "OK: " "a rewritten export on its own verifies" "$V" export --public-key "$pub1" "$tmp/rewritten"
expect 1 "FAIL: --checkpoint" "a rewritten export does not extend the receipt" "$V" export --public-key "$pub1" --checkpoint "$tmp/receipt.json" "$tmp/rewritten"

"$MK" checkpoint-json "$tmp/sk2" "$O" 3 61 6263 00 >"$tmp/r2"
expect 1 "FAIL: --checkpoint" "a receipt signed by another key fails" "$V" export --public-key "$pub1" --checkpoint "$tmp/r2" "$tmp/good"
"$MK" checkpoint-json "$tmp/sk1" example.com/other 3 61 6263 00 >"$tmp/r2"
expect 1 "FAIL: --checkpoint" "a receipt of another origin fails" "$V" export --public-key "$pub1" --checkpoint "$tmp/r2" "$tmp/good"
"$MK" checkpoint-json "$tmp/sk1" "$O" 5 61 6263 00 ffee 0101 >"$tmp/r2"
expect 1 "FAIL: --checkpoint" "a receipt larger than the export fails" "$V" export --public-key "$pub1" --checkpoint "$tmp/r2" "$tmp/good"
sed 's/"tree_size": 3/"tree_size": 2/' "$tmp/receipt.json" >"$tmp/r2"
expect 1 "FAIL: --checkpoint" "a receipt whose JSON tree_size disagrees with its note fails" "$V" export --public-key "$pub1" --checkpoint "$tmp/r2" "$tmp/good"
expect 2 "" "a missing receipt file is an I/O error" "$V" export --public-key "$pub1" --checkpoint "$tmp/nonexistent" "$tmp/good"

#-------------------------------------------------------------------------
# a receipt is all-or-nothing: each member checkpoint() gives, changed
# alone, makes the receipt fail -- in the checkpoint subcommand and as
# --checkpoint of an export -- and the failure names the member
#-------------------------------------------------------------------------
# member_edit NAME: a sed expression replacing member NAME's value (in
# the members, never in the note)
member_edit() {
	case "$1" in
		origin) echo 's/"origin": "[^"]*"/"origin": "example.com\/other"/' ;;
		tree_size) echo 's/"tree_size": 3/"tree_size": 4/' ;;
		root_hash) echo 's/"root_hash": "[^"]*"/"root_hash": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="/' ;;
		time) echo 's/"time": 1700000000/"time": 1700000001/' ;;
		prev_hash) echo 's/"prev_hash": "[^"]*"/"prev_hash": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="/' ;;
		key_id) echo 's/"key_id": "[^"]*"/"key_id": "00000000"/' ;;
		signature) echo 's/"signature": "[^"]*"/"signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="/' ;;
	esac
}
for member in origin tree_size root_hash time prev_hash key_id signature; do
	sed "$(member_edit $member)" "$tmp/receipt.json" >"$tmp/r2"
	cmp -s "$tmp/r2" "$tmp/receipt.json" && echo "Bail out! the $member edit changed nothing"
	expect 1 "FAIL: $tmp/r2: receipt member \"$member\" does not match the signed note" \
		"checkpoint: a receipt whose $member member disagrees with its note fails, naming it" \
		"$V" checkpoint --public-key "$pub1" "$tmp/r2"
	expect 1 "FAIL: --checkpoint" "export --checkpoint: a receipt whose $member member disagrees with its note fails" \
		"$V" export --public-key "$pub1" --checkpoint "$tmp/r2" "$tmp/good"
	output_has "receipt member \"$member\" does not match the signed note" "... and names the $member member"
done
sed 's/"tree_size": 3/"tree_size": "3"/' "$tmp/receipt.json" >"$tmp/r2"
expect 1 "FAIL: $tmp/r2: receipt member \"tree_size\" is not a non-negative integer" \
	"a receipt whose tree_size is a string fails" "$V" checkpoint --public-key "$pub1" "$tmp/r2"
sed 's/"key_id": "[^"]*"/"key_id": null/' "$tmp/receipt.json" >"$tmp/r2"
expect 1 "FAIL: $tmp/r2: receipt member \"key_id\" is not a string" \
	"a receipt whose key_id is null fails" "$V" checkpoint --public-key "$pub1" "$tmp/r2"
sed 's/"time": 1700000000, //' "$tmp/receipt.json" >"$tmp/r2"
expect 0 "OK: " "a receipt without a convenience member still verifies (the note is authoritative)" \
	"$V" checkpoint --public-key "$pub1" "$tmp/r2"

# one reader for receipts, the one consent_ledger.verify_checkpoint(text)
# uses (sql/receipts.sql section 9 and TAP 016 give the same verdicts):
# duplicate keys, fractions and exponents, negative numbers, nesting and
# more than 32 members refuse a receipt wherever they are; members
# checkpoint() does not give are otherwise ignored
# bad_receipt SED REASON DESCRIPTION: the receipt edited by SED fails with REASON
bad_receipt() {
	sed "$1" "$tmp/receipt.json" >"$tmp/r2"
	cmp -s "$tmp/r2" "$tmp/receipt.json" && echo "Bail out! the edit for '$3' changed nothing"
	expect 1 "FAIL: $tmp/r2: $2" "$3" "$V" checkpoint --public-key "$pub1" "$tmp/r2"
	expect 1 "FAIL: --checkpoint" "export --checkpoint: $3" \
		"$V" export --public-key "$pub1" --checkpoint "$tmp/r2" "$tmp/good"
}
bad_receipt 's/^{/{"tree_size": 999, /' 'malformed receipt: duplicate key' \
	'a receipt with a second, disagreeing tree_size before the true one fails'
bad_receipt 's/^{/{"note": "garbage", /' 'malformed receipt: duplicate key' \
	'a receipt with a second note member fails'
bad_receipt 's/^{/{"x": 1, "x": 1, /' 'malformed receipt: duplicate key' \
	'a receipt with a duplicate unknown member fails'
bad_receipt 's/"tree_size": 3/"tree_size": 3.0/' 'malformed receipt: numbers with a fraction or exponent are not accepted' \
	'a receipt whose tree_size is 3.0 fails'
bad_receipt 's/"tree_size": 3/"tree_size": 3e0/' 'malformed receipt: numbers with a fraction or exponent are not accepted' \
	'a receipt whose tree_size is 3e0 fails'
bad_receipt 's/"tree_size": 3/"tree_size": -0/' 'malformed receipt: negative numbers are not accepted' \
	'a receipt whose tree_size is -0 fails'
bad_receipt 's/^{/{"extra": {"a": 1}, /' 'malformed receipt: nested objects are not accepted' \
	'a receipt with a nested unknown member fails'
bad_receipt 's/^{/{"extra": 1.5, /' 'malformed receipt: numbers with a fraction or exponent are not accepted' \
	'a receipt with a fractional unknown member fails'
bad_receipt 's/^{/{"extra": [1, 2], /' 'malformed receipt: arrays may only hold strings' \
	'a receipt with an array of numbers fails'
bad_receipt "s/^{/{$(i=0; while [ $i -lt 100 ]; do printf '"m%d": 1, ' $i; i=$((i + 1)); done)/" \
	'malformed receipt: object has too many members' 'a receipt with 100 extra members fails'
sed 's/^{/{"comment": "mine", "seen": true, "n": 7, "tags": ["a"], "z": null, /' "$tmp/receipt.json" >"$tmp/r2"
expect 0 "OK: " "a receipt with unknown flat members still verifies" "$V" checkpoint --public-key "$pub1" "$tmp/r2"

#-------------------------------------------------------------------------
# checkpoint subcommand
#-------------------------------------------------------------------------
expect 0 "OK: " "checkpoint verifies a raw note" "$V" checkpoint --public-key "$tmp/pub1" "$tmp/receipt.note"
output_has "tree_size 3" "and prints its fields"
expect 0 "OK: " "checkpoint verifies the JSON form" "$V" checkpoint --public-key "$pub1" "$tmp/receipt.json"
output_has "origin $O" "and prints the origin"
expect 1 "FAIL: " "checkpoint under the wrong key fails" "$V" checkpoint --public-key "$pub2" "$tmp/receipt.json"
sed 's/^3$/4/' "$tmp/receipt.note" >"$tmp/bad"
expect 1 "FAIL: " "checkpoint with a tampered size fails" "$V" checkpoint --public-key "$pub1" "$tmp/bad"

#-------------------------------------------------------------------------
# keys as the server hands them out, and notes as psql -At saves them
#-------------------------------------------------------------------------
# consent_ledger.verifier_key() prints "consent_ledger+<key id>+<base64 of
# 0x01 || key>"; the verifier takes it as a --public-key, in a file too.
id1=$(sed -n 's/^key id \([0-9a-f]*\) .*/\1/p' "$tmp/pub1")
vk1="consent_ledger+$id1+$({ printf '\001'; printf %s "$pub1" | base64 -d; } | base64 -w 0)"
expect 0 "OK: " "a verifier key (verifier_key()) is a --public-key" "$V" checkpoint --public-key "$vk1" "$tmp/receipt.json"
printf '%s\n' "$vk1" >"$tmp/vk1"
expect 0 "OK: " "a file holding a verifier key is a --public-key" "$V" export --public-key "$tmp/vk1" "$tmp/good"
id2=$(sed -n 's/^key id \([0-9a-f]*\) .*/\1/p' "$tmp/pub2")
expect 2 "" "a verifier key whose id is another key's is refused" "$V" checkpoint --public-key "consent_ledger+$id2+${vk1##*+}" "$tmp/receipt.json"
expect 2 "" "a verifier key of another name is refused" "$V" checkpoint --public-key "other+$id1+${vk1##*+}" "$tmp/receipt.json"
expect 2 "" "a verifier key without the 0x01 algorithm byte is refused" "$V" checkpoint --public-key "consent_ledger+$id1+$pub1" "$tmp/receipt.json"
expect 1 "FAIL: " "a verifier key of another key does not verify" "$V" checkpoint --public-key "consent_ledger+$id2+$({ printf '\001'; printf %s "$pub2" | base64 -d; } | base64 -w 0)" "$tmp/receipt.json"

# A note ends with a newline; psql -At (and echo) add one more.  That one
# is tolerated; anything else after or in the note is not.
{ cat "$tmp/receipt.note"; echo; } >"$tmp/note-psql"
expect 0 "OK: " "a note saved with one extra trailing newline (psql -At) verifies" "$V" checkpoint --public-key "$pub1" "$tmp/note-psql"
expect 0 "OK: " "and so does an export against it as --checkpoint" "$V" export --public-key "$pub1" --checkpoint "$tmp/note-psql" "$tmp/good"
{ cat "$tmp/receipt.note"; echo; echo; } >"$tmp/bad"
expect 1 "FAIL: " "a note with two extra trailing newlines fails" "$V" checkpoint --public-key "$pub1" "$tmp/bad"
{ cat "$tmp/receipt.note"; printf '\r\n'; } >"$tmp/bad"
expect 1 "FAIL: " "a note with an extra CR LF fails" "$V" checkpoint --public-key "$pub1" "$tmp/bad"
{ cat "$tmp/receipt.note"; printf ' \n'; } >"$tmp/bad"
expect 1 "FAIL: " "a note with an extra line holding a space fails" "$V" checkpoint --public-key "$pub1" "$tmp/bad"
head -c -1 "$tmp/receipt.note" >"$tmp/bad"
expect 1 "FAIL: " "a note without its own last newline fails" "$V" checkpoint --public-key "$pub1" "$tmp/bad"
{ sed 's/^3$/4/' "$tmp/receipt.note"; echo; } >"$tmp/bad"
expect 1 "FAIL: " "a tampered note saved with an extra newline still fails" "$V" checkpoint --public-key "$pub1" "$tmp/bad"
{ printf '\n'; cat "$tmp/receipt.note"; } >"$tmp/bad"
expect 1 "FAIL: " "a note with an extra leading newline fails" "$V" checkpoint --public-key "$pub1" "$tmp/bad"

#-------------------------------------------------------------------------
# proofs
#-------------------------------------------------------------------------
"$MK" inclusion 2 61 6263 00 ffee 0101 >"$tmp/incl.json"
"$MK" consistency 3 61 6263 00 ffee 0101 >"$tmp/cons.json"
expect 0 "OK: " "an inclusion proof verifies" "$V" inclusion "$tmp/incl.json"
expect 0 "OK: " "an inclusion proof verifies with matching --leaf-data" "$V" inclusion "$tmp/incl.json" --leaf-data 00
expect 1 "FAIL: " "an inclusion proof with other --leaf-data fails" "$V" inclusion "$tmp/incl.json" --leaf-data 01
sed 's/"leaf_index":2/"leaf_index":3/' "$tmp/incl.json" >"$tmp/bad"
expect 1 "FAIL: " "an inclusion proof for another index fails" "$V" inclusion "$tmp/bad"
sed 's/"path":\["[^"]*"/"path":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="/' "$tmp/incl.json" >"$tmp/bad"
expect 1 "FAIL: " "an inclusion proof with a tampered path fails" "$V" inclusion "$tmp/bad"
# (a proof for leaf 2 of 5 also fits a tree of 6, whose shape is the same
# along that path: the size is bound to the root by the signed checkpoint)
sed 's/"tree_size":5/"tree_size":4/' "$tmp/incl.json" >"$tmp/bad"
expect 1 "FAIL: " "an inclusion proof for a tree size of another shape fails" "$V" inclusion "$tmp/bad"

expect 0 "OK: " "a consistency proof verifies" "$V" consistency "$tmp/cons.json"
sed 's/"new_root":"[^"]*"/"new_root":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="/' "$tmp/cons.json" >"$tmp/bad"
expect 1 "FAIL: " "a consistency proof with a tampered new_root fails" "$V" consistency "$tmp/bad"
sed 's/"path":\["[^"]*"/"path":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="/' "$tmp/cons.json" >"$tmp/bad"
expect 1 "FAIL: " "a consistency proof with a tampered path fails" "$V" consistency "$tmp/bad"
sed 's/"old_size":3/"old_size":2/' "$tmp/cons.json" >"$tmp/bad"
expect 1 "FAIL: " "a consistency proof for another old size fails" "$V" consistency "$tmp/bad"
expect 1 "FAIL: " "a consistency proof is not an inclusion proof" "$V" inclusion "$tmp/cons.json"
printf '{"type":"inclusion","leaf_index":01}' >"$tmp/bad"
expect 1 "FAIL: " "a malformed proof document fails" "$V" inclusion "$tmp/bad"

#-------------------------------------------------------------------------
# proofs tied to a signed checkpoint (--checkpoint): only then is a tree
# size printed, and it is the checkpoint's
#-------------------------------------------------------------------------
"$MK" checkpoint-json "$tmp/sk1" "$O" 5 61 6263 00 ffee 0101 >"$tmp/r5.json"
expect 0 "OK: leaf 2 is included in the tree with root" "an inclusion proof without --checkpoint claims no tree size" \
	"$V" inclusion "$tmp/incl.json"
output_has "tree size and origin not checked" "... and says so"
expect 0 "OK: leaf 2 is included in the tree of size 5" "an inclusion proof tied to its signed checkpoint verifies" \
	"$V" inclusion "$tmp/incl.json" --checkpoint "$tmp/r5.json" --public-key "$pub1"
output_has "signed for $O by key id" "... and names the origin and key"
expect 1 "FAIL: the proof is for tree size 5, --checkpoint attests size 3" \
	"an inclusion proof against a checkpoint of another size fails" \
	"$V" inclusion "$tmp/incl.json" --checkpoint "$tmp/receipt.json" --public-key "$pub1"
sed 's/"tree_size":5/"tree_size":6/' "$tmp/incl.json" >"$tmp/bad"
expect 0 "OK: leaf 2 is included in the tree with root" "(a proof for leaf 2 of 5 relabelled size 6 verifies alone...)" \
	"$V" inclusion "$tmp/bad"
expect 1 "FAIL: the proof is for tree size 6" "... but not against the signed checkpoint" \
	"$V" inclusion "$tmp/bad" --checkpoint "$tmp/r5.json" --public-key "$pub1"
expect 1 "FAIL: --checkpoint" "an inclusion proof against a checkpoint under another key fails" \
	"$V" inclusion "$tmp/incl.json" --checkpoint "$tmp/r5.json" --public-key "$pub2"
sed 's/"time": 1700000000/"time": 1700000001/' "$tmp/r5.json" >"$tmp/r2"
expect 1 "FAIL: --checkpoint $tmp/r2: receipt member \"time\" does not match the signed note" \
	"an inclusion proof against a receipt with a disagreeing member fails" \
	"$V" inclusion "$tmp/incl.json" --checkpoint "$tmp/r2" --public-key "$pub1"
"$MK" checkpoint-json "$tmp/sk1" "$O" 5 61 6263 00 ffee 0102 >"$tmp/r2"
expect 1 "FAIL: the proof's root_hash is not the root --checkpoint signs" \
	"an inclusion proof against a signed checkpoint of other leaves fails" \
	"$V" inclusion "$tmp/incl.json" --checkpoint "$tmp/r2" --public-key "$pub1"
sed 's/^{/{"origin":"example.com\/other",/' "$tmp/incl.json" >"$tmp/bad"
expect 1 "FAIL: the proof's origin \"example.com/other\" is not --checkpoint's \"$O\"" \
	"an inclusion proof of another origin fails against the checkpoint" \
	"$V" inclusion "$tmp/bad" --checkpoint "$tmp/r5.json" --public-key "$pub1"
sed 's/^{/{"origin":"example.com\/ledger",/' "$tmp/incl.json" >"$tmp/bad"
expect 0 "OK: leaf 2 is included in the tree of size 5" "... and one naming the checkpoint's origin verifies" \
	"$V" inclusion "$tmp/bad" --checkpoint "$tmp/r5.json" --public-key "$pub1"
expect 2 "" "--checkpoint without --public-key is a usage error" "$V" inclusion "$tmp/incl.json" --checkpoint "$tmp/r5.json"
expect 2 "" "--public-key without --checkpoint is a usage error for proofs" "$V" inclusion "$tmp/incl.json" --public-key "$pub1"

expect 0 "OK: the tree with root" "a consistency proof without --checkpoint claims no tree size" "$V" consistency "$tmp/cons.json"
output_has "tree sizes and origin not checked" "... and says so"
expect 0 "OK: the tree with root" "a consistency proof tied to its new tree's checkpoint verifies" \
	"$V" consistency "$tmp/cons.json" --checkpoint "$tmp/r5.json" --public-key "$pub1"
output_has "prefix of the tree of size 5" "... and gives the checkpoint's size"
expect 0 "OK: the tree of size 3" "a consistency proof tied to its old tree's checkpoint verifies" \
	"$V" consistency "$tmp/cons.json" --checkpoint "$tmp/receipt.json" --public-key "$pub1"
"$MK" checkpoint-json "$tmp/sk1" "$O" 4 61 6263 00 ffee >"$tmp/r2"
expect 1 "FAIL: --checkpoint (size 4) is neither the proof's old tree nor its new tree" \
	"a consistency proof against a checkpoint of neither tree fails" \
	"$V" consistency "$tmp/cons.json" --checkpoint "$tmp/r2" --public-key "$pub1"

#-------------------------------------------------------------------------
# export --decode: every leaf checked against the canonical row encoding of
# its version byte (README "Canonical row encoding") and printed
#-------------------------------------------------------------------------
H=000000000000000700000000
v1good=01${H}0001000161690000000000000102
v2good=02${H}000200016143e900016263000100017a690000000000000001
"$MK" export "$tmp/sk1" "$O" 2 "$v1good" "$v2good" >"$tmp/dec" || echo "Bail out! make_export failed"
expect 0 "leaf 0: v1 txn 7 ord 0 " "--decode: a version 1 and a version 2 leaf decode" "$V" export --decode --public-key "$pub1" "$tmp/dec"
output_has 'leaf 0: v1 txn 7 ord 0 {"a": i:258}' "--decode prints the version 1 leaf"
output_has 'leaf 1: v2 txn 7 ord 0 {"a": C:e9, "b": c{"z": i:1}}' "--decode prints the version 2 leaf (a \"char\" and a composite by name)"
output_has "OK: " "--decode: the export still verifies"
# the version 2 tags of values that share a storage format with another
# type: timestamptz Z, json J, xml X; a multirange m as its ranges
# ("a": 5a = Z, "b": 4a = J, "c": 58 = X, "m": 6d = m holding one 72 = r)
v2tags=02${H}00040001615a0002b583417286080001624a000000027b7d00016358000000023c3e00016d6d000000017208690000000000000001690000000000000003
"$MK" export "$tmp/sk1" "$O" 1 "$v2tags" >"$tmp/dec2" || echo "Bail out! make_export failed"
expect 0 "leaf 0: v2 txn 7 ord 0 " "--decode: the version 2 tags Z, J, X and m decode" "$V" export --decode --public-key "$pub1" "$tmp/dec2"
output_has 'leaf 0: v2 txn 7 ord 0 {"a": Z:762525296789000, "b": J:"{}", "c": X:"<>", "m": m{r:08(i:1,i:3)}}' "--decode prints Z, J, X and m"
# version 3 (README "Erasure"): a personal column is its commitment, tag H
# and 32 bytes ("a": i 258, "e": H), the same bytes before and after erasure
v3good=03${H}000200016169000000000000010200016548abababababababababababababababababababababababababababababababab
"$MK" export "$tmp/sk1" "$O" 1 "$v3good" >"$tmp/dec4" || echo "Bail out! make_export failed"
expect 0 "leaf 0: v3 txn 7 ord 0 " "--decode: a version 3 leaf with a commitment decodes" "$V" export --decode --public-key "$pub1" "$tmp/dec4"
output_has 'leaf 0: v3 txn 7 ord 0 {"a": i:258, "e": H:abababababababababababababababababababababababababababababababab}' "--decode prints the commitment (tag H)"
# text is printed as it is only where it is well-formed UTF-8 and not a C1
# control: "x", U+00E9 (c3 a9) raw; U+0085 (c2 85, a C1 control), a byte
# ff and a lone continuation byte 80 as \xHH (review 3, item 16)
v2text=02${H}0001000161740000000778c3a9c285ff80
"$MK" export "$tmp/sk1" "$O" 1 "$v2text" >"$tmp/dec3" || echo "Bail out! make_export failed"
expect 0 "leaf 0: v2 txn 7 ord 0 " "--decode: a text value with C1 controls and invalid UTF-8 decodes" "$V" export --decode --public-key "$pub1" "$tmp/dec3"
output_has "{\"a\": t:\"x$(printf '\303\251')\\xc2\\x85\\xff\\x80\"}" "--decode escapes C1 controls and bytes that are not UTF-8, and prints valid UTF-8 as it is"
# leaves no version of the encoding could have produced: each verifies as
# opaque bytes, and fails with --decode saying why
bad_leaf() {
	"$MK" export "$tmp/sk1" "$O" 1 "$1" >"$tmp/badleaf" || echo "Bail out! make_export failed"
	expect 0 "OK: " "without --decode, leaf bytes are opaque: $2" "$V" export --public-key "$pub1" "$tmp/badleaf"
	expect 1 "leaf 0: " "--decode refuses a leaf: $2" "$V" export --decode --public-key "$pub1" "$tmp/badleaf"
	output_has "FAIL: line 4 (leaf 0): not a canonical row encoding: $2" "--decode says: $2"
}
bad_leaf 01${H}000100016143e9 'tag C ("char") in a version 1 leaf'
bad_leaf 01${H}00010001615a0002b58341728608 'a version 2 tag in a version 1 leaf'
bad_leaf 01${H}00010001614a000000027b7d 'a version 2 tag in a version 1 leaf'
bad_leaf 02${H}00010001616d00000001690000000000000001 'a multirange member that is not a range'
bad_leaf 02${H}00010001616dffffffff 'more ranges than bytes'
bad_leaf 04${H}0000 'unknown encoding version'
bad_leaf 02${H}000100016148abababababababababababababababababababababababababababababababab 'tag H (commitment) in a version 1 or 2 leaf'
bad_leaf 03${H}00010001616100000001000000010000000148abababababababababababababababababababababababababababababababab 'a commitment inside a value'
bad_leaf 03${H}000100016148abab 'truncated'
bad_leaf 02${H}0002000162690000000000000001000161690000000000000001 'names not in strictly increasing byte order'
bad_leaf ${v1good}00 'bytes after the last column'
bad_leaf 02${H}00010001613000 'a NULL column or attribute (NULLs are omitted)'
bad_leaf 02${H}0001000161ee 'unknown value tag'
bad_leaf 02${H}00010001616202 'bool value is neither 0 nor 1'
bad_leaf 02${H}000100016174000000056869 'truncated'

#-------------------------------------------------------------------------
# usage and I/O errors
#-------------------------------------------------------------------------
expect 2 "" "no arguments is a usage error" "$V"
expect 2 "" "an unknown command is a usage error" "$V" frobnicate
expect 2 "" "export without --public-key is a usage error" "$V" export "$tmp/good"
expect 2 "" "an invalid --public-key is a usage error" "$V" export --public-key notakey "$tmp/good"
expect 2 "" "a missing export file is an I/O error" "$V" export --public-key "$pub1" "$tmp/nonexistent"
expect 2 "" "an unknown option is a usage error" "$V" export --public-key "$pub1" --frob x "$tmp/good"
expect 2 "" "invalid --leaf-data is a usage error" "$V" inclusion "$tmp/incl.json" --leaf-data xyz

# witnesses (README "Witnesses"): the receipt above has no cosignature
W1='witness.example/w1+e75f6532+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4'
expect 1 "FAIL: $tmp/receipt.json: only 0 of the 1 distinct witnesses given cosigned" \
	"checkpoint --witness-key --quorum 1: a receipt without cosignatures fails the quorum" \
	"$V" checkpoint --public-key "$pub1" --witness-key "$W1" --quorum 1 "$tmp/receipt.json"
expect 0 "OK: " "checkpoint without --quorum still verifies it" "$V" checkpoint --public-key "$pub1" "$tmp/receipt.json"
expect 2 "" "--quorum without --witness-key is a usage error" "$V" checkpoint --public-key "$pub1" --quorum 1 "$tmp/receipt.json"
expect 2 "" "--quorum 2 with one distinct witness (given twice) is a usage error" \
	"$V" checkpoint --public-key "$pub1" --witness-key "$W1" --witness-key "$W1" --quorum 2 "$tmp/receipt.json"
expect 2 "" "a log key is not a witness key" "$V" checkpoint --public-key "$pub1" --witness-key "consent_ledger+00000000+AQAA" --quorum 1 "$tmp/receipt.json"
expect 2 "" "--quorum 0 is a usage error" "$V" checkpoint --public-key "$pub1" --witness-key "$W1" --quorum 0 "$tmp/receipt.json"

echo "1..$n"
cat "$tap"
[ "$failed" -eq 0 ]
