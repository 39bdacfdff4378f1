#!/bin/sh
# ship-to-witnesses.sh -- an example consent_ledger.checkpoint_command
# (README "Witnesses"): sends a new checkpoint to witnesses and stores
# their cosignatures with the checkpoint on the log.  Needs psql only.
#
#   consent_ledger.checkpoint_command = '/path/ship-to-witnesses.sh %f %o %s'
#
#   %f  a file holding the checkpoint note (as checkpoint()->>'note' gives it)
#   %o  the checkpoint's origin
#   %s  its tree size
#
# Environment (libpq connection strings; psql's PG* variables apply too):
#   CL_LOG_DB      the log's database (default: the PG* environment)
#   CL_WITNESSES   the witnesses' databases, one connection string a line
#                  (a line may hold spaces: "host=w1 dbname=x"); each connects as a role that may run
#                  consent_ledger.witness_cosign() (consent_ledger_admin), in
#                  the witness's consent_ledger.witness_database
#
# For each witness: ask the size it last cosigned for this origin
# (witness_last_size), get the consistency proof from that size from the
# log (consistency_proof), and have the witness cosign
# (witness_cosign).  Then add every cosignature it got to the log
# (add_cosignature).  Exits 0 when every witness cosigned, 1 when one or
# more refused or could not be reached (their errors on stderr; the
# cosignatures of the others are stored anyway), 2 on a usage error.
# Running it again for the same checkpoint is harmless.

set -u
if [ $# -ne 3 ]; then
	echo "usage: $0 NOTE_FILE ORIGIN SIZE" >&2
	exit 2
fi
note_file=$1
origin=$2
size=$3
case $size in
	''|*[!0-9]*) echo "$0: size \"$size\" is not a number" >&2; exit 2;;
esac
if [ ! -r "$note_file" ]; then
	echo "$0: cannot read note file \"$note_file\"" >&2
	exit 2
fi
log_db=${CL_LOG_DB:-}
witnesses=${CL_WITNESSES:-}
if [ -z "$witnesses" ]; then
	echo "$0: CL_WITNESSES names no witness" >&2
	exit 2
fi

# The note without its final newline: $(...) strips trailing newlines, and
# the SQL below puts exactly one back (a note never ends with an empty line).
note=$(cat "$note_file")

# psql -X: no ~/.psqlrc; -At: bare values; ON_ERROR_STOP: a failure exits 1+
run_psql() {
	db=$1
	shift
	if [ -n "$db" ]; then
		psql -X -At -q -v ON_ERROR_STOP=1 "$@" -d "$db"
	else
		psql -X -At -q -v ON_ERROR_STOP=1 "$@"
	fi
}

relation=$(run_psql "$log_db" -v origin="$origin" <<'SQL'
SELECT relid::regclass FROM consent_ledger.ledgers
WHERE origin OPERATOR(pg_catalog.=) :'origin' AND relid IS NOT NULL;
SQL
) || exit 1
if [ -z "$relation" ]; then
	echo "$0: no ledger of the log database has origin \"$origin\"" >&2
	exit 1
fi

cosignatures=
status=0
set -f
old_ifs=$IFS
IFS='
'
for w in $witnesses; do
	IFS=$old_ifs
	old=$(run_psql "$w" -v origin="$origin" <<'SQL'
SELECT coalesce(consent_ledger.witness_last_size(:'origin'), 0);
SQL
	) || { echo "$0: witness \"$w\": could not ask its last cosigned size" >&2; status=1; continue; }
	proof=
	if [ "$old" -gt 0 ] && [ "$old" -lt "$size" ]; then
		proof=$(run_psql "$log_db" -v rel="$relation" -v old="$old" -v size="$size" <<'SQL'
SELECT consent_ledger.consistency_proof(:'rel', :'old', :'size');
SQL
		) || { echo "$0: could not get the consistency proof from $old to $size" >&2; status=1; continue; }
	fi
	line=$(run_psql "$w" -v note="$note" -v proof="$proof" <<'SQL'
SELECT consent_ledger.witness_cosign(:'note' || pg_catalog.chr(10),
	NULLIF(:'proof', '')::jsonb);
SQL
	) || { echo "$0: witness \"$w\" did not cosign $origin at size $size" >&2; status=1; continue; }
	cosignatures="$cosignatures$line
"
done

if [ -n "$cosignatures" ]; then
	run_psql "$log_db" -v rel="$relation" -v note="$note" -v cosigs="$cosignatures" >/dev/null <<'SQL' || exit 1
SELECT consent_ledger.add_cosignature(:'rel', :'note' || pg_catalog.chr(10) || :'cosigs');
SQL
fi
exit $status
