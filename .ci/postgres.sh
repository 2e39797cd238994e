#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 for the feedback/replay tests, when a server is installed.
# Prints "URL DATA_DIR" on success; prints nothing (and the PostgreSQL runs skip) otherwise.
# Stop it with: .ci/postgres.sh stop DATA_DIR
set -u
as_postgres() { if [ "$(id -u)" = 0 ]; then (cd / && su postgres -s /bin/sh -c "$1"); else sh -c "$1"; fi; }
if [ "${1:-}" = stop ]; then
  as_postgres "'$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")/pg_ctl' -D '$2' -m fast stop >/dev/null"
  rm -rf "$(dirname "$2")"
  exit 0
fi
initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
[ -n "$initdb" ] && id postgres >/dev/null 2>&1 || exit 0
bin=$(dirname "$initdb")
dir=$(mktemp -d /tmp/cds-ci-pg.XXXXXX) && chown postgres "$dir" || exit 0
as_postgres "'$bin/initdb' -D '$dir/data' -A trust -U postgres >'$dir/initdb.log' 2>&1" || exit 0
# A port free right now (a fixed one can be taken, e.g. as some connection's ephemeral port): up to
# three tries, in case another process takes it before the server binds it.
for attempt in 1 2 3; do
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if as_postgres "'$bin/pg_ctl' -D '$dir/data' -l '$dir/log' -w -o '-p $port -k $dir -c listen_addresses=127.0.0.1' start >/dev/null"; then
    break
  fi
  [ "$attempt" = 3 ] && exit 0
done
as_postgres "'$bin/psql' -h 127.0.0.1 -p $port -U postgres -qc 'create database cds_test' >/dev/null" || exit 0
echo "postgresql+psycopg://postgres@127.0.0.1:$port/cds_test $dir/data"
