#!/usr/bin/env bash
# with-postgres.sh CMD [ARGS...] — runs CMD with a throw-away PostgreSQL server, the difftest's
# second oracle (tests/difftest/README.md): initdb into a temporary folder (C locale, UTF-8, trust
# on a Unix socket only, fsync off), start it, export SS_DIFFTEST_PG (a libpq connection string),
# run CMD, stop the server and remove the folder. As root the server runs as the `postgres` user
# (PostgreSQL refuses root). Without PostgreSQL's binaries (scripts/setup.sh installs them) CMD
# runs without SS_DIFFTEST_PG: difftest then skips the views it compares with PostgreSQL and says so.
set -uo pipefail
bindir=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir=$d; done
if [ -z "$bindir" ] && command -v initdb >/dev/null 2>&1; then bindir=$(dirname "$(command -v initdb)"); fi
if [ -z "$bindir" ]; then
  echo "with-postgres: no PostgreSQL binaries (initdb); running without the PostgreSQL oracle" >&2
  exec "$@"
fi
dir=$(mktemp -d /tmp/ss-pg.XXXXXX)
as=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir" && as=(runuser -u postgres --)
fi
port=$(( 20000 + RANDOM % 20000 ))
stop() {
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$dir"
}
trap stop EXIT
if ! "${as[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres --locale=C -E UTF8 >"$dir/initdb.log" 2>&1 ||
   ! "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 \
       -o "-k $dir -p $port -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=40" \
       start >/dev/null 2>&1; then
  echo "with-postgres: could not start PostgreSQL ($dir); running without the PostgreSQL oracle" >&2
  cat "$dir"/*.log >&2 2>/dev/null
  "$@"
  exit $?
fi
export SS_DIFFTEST_PG="host=$dir port=$port user=postgres dbname=postgres"
"$@"
