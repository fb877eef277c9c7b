# shellcheck shell=bash
# Sourced by scripts/test.sh: makes sure COMMONSID_TEST_POSTGRES_DSN names a
# PostgreSQL server the tests may create databases on.
#
# Order: the DSN already set; the server on 127.0.0.1:5432 (user postgres,
# trust auth); that cluster started with pg_ctlcluster; PostgreSQL installed
# from Debian's packages where missing; a throwaway cluster made with initdb
# in a temporary folder on a free port, stopped and removed on exit.

pg_log() { echo "postgres: $*" >&2; }

pg_answers() { # dsn
  if command -v psql >/dev/null 2>&1; then
    psql "$1" -XtAc 'SELECT 1' >/dev/null 2>&1
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

pg_wait() { # dsn seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    pg_answers "$1" && return 0
    sleep 0.1
  done
  return 1
}

pg_free_port() {
  local p
  for ((p = 55432; p < 55532; p++)); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

pg_bin() { # tool
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/$1" ] && echo "$d/$1"
}

ensure_postgres() {
  if [ -n "${COMMONSID_TEST_POSTGRES_DSN:-}" ]; then
    pg_log "using COMMONSID_TEST_POSTGRES_DSN"
    return 0
  fi
  local dsn="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
  if pg_answers "$dsn"; then
    pg_log "using the server on 127.0.0.1:5432"
    export COMMONSID_TEST_POSTGRES_DSN="$dsn"
    return 0
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    local ver
    ver=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [ -n "$ver" ]; then
      pg_log "starting cluster $ver/main"
      pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || true
      if pg_wait "$dsn" 20; then
        export COMMONSID_TEST_POSTGRES_DSN="$dsn"
        return 0
      fi
    fi
  fi
  if [ -z "$(pg_bin initdb)" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    pg_log "installing PostgreSQL from Debian's packages"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local initdb pgctl port dir
  initdb=$(pg_bin initdb)
  pgctl=$(pg_bin pg_ctl)
  if [ -z "$initdb" ] || [ -z "$pgctl" ]; then
    pg_log "no PostgreSQL server and no initdb: install PostgreSQL or set COMMONSID_TEST_POSTGRES_DSN"
    return 1
  fi
  port=$(pg_free_port) || { pg_log "no free port"; return 1; }
  dir=$(mktemp -d /tmp/commonsid-pg.XXXXXX)
  local run=()
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
    run=(runuser -u postgres --)
  fi
  pg_log "throwaway cluster in $dir on port $port"
  "${run[@]}" "$initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  "${run[@]}" "$pgctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  PG_THROWAWAY=("${run[@]}" "$pgctl" -D "$dir/data" -m fast stop)
  PG_THROWAWAY_DIR=$dir
  trap 'stop_throwaway_postgres' EXIT
  export COMMONSID_TEST_POSTGRES_DSN="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}

stop_throwaway_postgres() {
  if [ -n "${PG_THROWAWAY_DIR:-}" ]; then
    "${PG_THROWAWAY[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_THROWAWAY_DIR"
  fi
}
