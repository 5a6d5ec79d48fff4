#!/usr/bin/env bash
# The restore drill: dump the log database, restore it into a fresh database, rebuild the
# projections from the restored log, and compare with the source. Exit 0 when they agree.
#
#   deploy/restore-drill.sh SOURCE_URL SCRATCH_URL [DUMP_FILE]
#
# SOURCE_URL   the production database (read only: pg_dump takes a consistent snapshot; the
#              supervisors may keep running)
# SCRATCH_URL  an empty database on the restore server (created beforehand: createdb), never
#              one a supervisor uses
# DUMP_FILE    where the custom-format dump goes (default: a temporary file, removed after);
#              a nightly `pg_dump -Fc` of SOURCE_URL is the backup itself
#
# Needs pg_dump, pg_restore and psql (of the server's major version or newer) on PATH, and
# sikka-supervisor (SIKKA_SECRETS_KEY is not needed: the rebuild never decrypts).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 SOURCE_URL SCRATCH_URL [DUMP_FILE]" >&2; exit 2; }
source_url=$1
scratch_url=$2
dump=${3:-$(mktemp -t sikka-dump.XXXXXX)}
[ $# -ge 3 ] || trap 'rm -f "$dump"' EXIT
supervisor=${SIKKA_SUPERVISOR:-sikka-supervisor}

echo "dump: $dump"
pg_dump --format=custom --no-owner --no-privileges --file="$dump" "$source_url"
echo "restore into the scratch database"
pg_restore --no-owner --no-privileges --exit-on-error --dbname="$scratch_url" "$dump"
# What the dump holds: the log (a prefix of the source's: positions are dense and in commit
# order, so a snapshot taken while supervisors append holds every position up to its last), the
# projections and the credentials as they were at the dump. `owner` is left out of `practices`:
# it names the live lease holder, which a rebuilt table does not know.
query() { psql --no-psqlrc --quiet --tuples-only --no-align --dbname="$1" --command="$2"; }
events_digest() {
    query "$1" "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', position, stream_id, version, type,
        data::text, recorded_at), E'\n' ORDER BY position), '')) FROM events WHERE position <= $2"
}
projections_digest() {
    query "$1" "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', office_id, practice_name, state,
        token_expires_at, last_error, updated_at, version, fold::text), E'\n' ORDER BY office_id), '')) FROM practices"
    query "$1" "SELECT count(*), md5(coalesce(string_agg(w::text, E'\n' ORDER BY writeback_id), '')) FROM writebacks w"
}
last=$(query "$scratch_url" "SELECT coalesce(max(position), 0) FROM events")
dumped=$(projections_digest "$scratch_url")

echo "rebuild the projections from the restored log ($last events)"
"$supervisor" --database-url "$scratch_url" replay --rebuild-projections
rebuilt=$(projections_digest "$scratch_url")

failed=0
if [ "$(events_digest "$source_url" "$last")" != "$(events_digest "$scratch_url" "$last")" ]; then
    echo "restore drill FAILED: the restored log differs from the source's first $last events" >&2
    failed=1
fi
if [ "$dumped" != "$rebuilt" ]; then
    echo "restore drill FAILED: projections rebuilt from the restored log differ from the dumped ones" >&2
    echo "dumped:  ${dumped//$'\n'/; }" >&2
    echo "rebuilt: ${rebuilt//$'\n'/; }" >&2
    failed=1
fi
[ "$failed" = 0 ] || exit 1
echo "restore drill passed: $last events, projections (rows; digest) ${rebuilt//$'\n'/; }"
