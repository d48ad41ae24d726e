#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL server on 127.0.0.1 for the test suite and print
# its SQLAlchemy URL on stdout. Installs Debian's postgresql package when it is missing and
# this runs as root. Usage: scripts/postgres.sh start | stop
set -euo pipefail
action=${1:-start}
port=${CLVCAST_PG_PORT:-54329}
data=${CLVCAST_PG_DATA:-${TMPDIR:-/tmp}/pg-data-clvcast-tests}

find_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"; return
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bin=$(find_bin)
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "postgres.sh: installing postgresql (apt-get)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bin=$(find_bin)
  fi
fi
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "postgres.sh: no PostgreSQL server binaries found and cannot install them" >&2
  exit 1
fi

# PostgreSQL refuses to run as root: run its tools as the 'postgres' user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "$action" = stop ]; then
  [ -d "$data" ] && as_owner "$bin/pg_ctl" -D "$data" stop -m fast >&2 || true
  exit 0
fi

port_taken() {  # something listens on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres "$data"
  as_owner "$bin/initdb" -D "$data" -U clvcast -A trust --no-sync >&2
fi
if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  # Our server is already running: use the port it listens on (line 4 of postmaster.pid).
  port=$(sed -n 4p "$data/postmaster.pid")
else
  if port_taken "$port"; then
    wanted=$port
    for candidate in $(seq $((port + 1)) $((port + 200))); do
      if ! port_taken "$candidate"; then port=$candidate; break; fi
    done
    if [ "$port" = "$wanted" ]; then
      echo "postgres.sh: port $wanted and the 200 after it are taken; set CLVCAST_PG_PORT" >&2
      exit 1
    fi
    echo "postgres.sh: port $wanted is taken by another program; using port $port" >&2
  fi
  as_owner "$bin/pg_ctl" -D "$data" -w -l "$data/server.log" \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
fi
as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U clvcast -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = 'clvcast_test'" | grep -q 1 ||
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U clvcast clvcast_test >&2
echo "postgresql+psycopg://clvcast@127.0.0.1:$port/clvcast_test"
