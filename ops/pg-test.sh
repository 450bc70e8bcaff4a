#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the origin's store tests.
#
#   eval "$(ops/pg-test.sh start)"    # starts one, prints the two exports below
#   ...                               # tests read ARBOR_TEST_POSTGRES_URL
#   ops/pg-test.sh stop               # stops it and deletes its data ($ARBOR_TEST_POSTGRES_DIR)
#
#   ops/pg-test.sh run -- <command…>  # start, run the command with the URL set, stop; exits
#                                     # with the command's status
#
# `start` prints, on stdout and nothing else:
#   export ARBOR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:<port>/arbor_test
#   export ARBOR_TEST_POSTGRES_DIR=/tmp/arbor-pg.XXXXXX
#
# The server listens on 127.0.0.1 at a free port (and a unix socket inside its data
# directory), trusts local connections, uses the C locale and no fsync: fast and disposable,
# never for real data. PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` user (via runuser). Installs Debian's `postgresql` package when no server
# binaries are found.
set -euo pipefail

PG_VERSION_WANTED=15
START_ATTEMPTS=5

log() { printf 'pg-test: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
as_root() { if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# The directory holding initdb, pg_ctl and postgres.
pg_bindir() {
  local dir
  for dir in "/usr/lib/postgresql/$PG_VERSION_WANTED/bin" /usr/lib/postgresql/*/bin; do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

ensure_installed() {
  if ! pg_bindir >/dev/null; then
    log "no PostgreSQL server found; installing Debian's postgresql package"
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >&2
  fi
  pg_bindir >/dev/null || die "PostgreSQL server binaries are still missing after apt-get"
}

# Runs a command as the server's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ "$(id -u)" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

start() {
  ensure_installed
  local bin dir port attempt
  bin="$(pg_bindir)"
  dir="$(mktemp -d /tmp/arbor-pg.XXXXXX)"
  chmod 755 "$dir"
  mkdir "$dir/data"
  if [[ "$(id -u)" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "user postgres is missing (it comes with the postgresql package)"
    chown -R postgres: "$dir"
  fi
  as_owner "$bin/initdb" -D "$dir/data" --username=postgres --auth=trust \
    --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  for attempt in $(seq 1 "$START_ATTEMPTS"); do
    port="$(free_port)"
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir \
          -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
          -c max_connections=200" start >/dev/null; then
      break
    fi
    log "start on port $port failed (attempt $attempt of $START_ATTEMPTS)"
    tail -n 5 "$dir/server.log" >&2 || true
    [[ "$attempt" -lt "$START_ATTEMPTS" ]] || die "PostgreSQL would not start; data in $dir"
  done
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres arbor_test ||
    die "createdb failed; see $dir/server.log"
  log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir"
  echo "export ARBOR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/arbor_test"
  echo "export ARBOR_TEST_POSTGRES_DIR=$dir"
}

stop() {
  local dir="${1:-${ARBOR_TEST_POSTGRES_DIR:-}}"
  [[ -n "$dir" ]] || die "stop: pass the directory or set ARBOR_TEST_POSTGRES_DIR"
  [[ "$dir" == /tmp/arbor-pg.* && -d "$dir" ]] || die "stop: $dir is not a pg-test directory"
  local bin
  bin="$(pg_bindir)" || die "no PostgreSQL binaries to stop the server with"
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || log "pg_ctl stop failed"
  fi
  rm -rf "$dir"
  log "stopped and removed $dir"
}

run() {
  [[ "${1:-}" == "--" ]] && shift
  [[ $# -gt 0 ]] || die "run: give a command after --"
  local exports
  exports="$(start)"
  eval "$exports"
  trap 'stop "$ARBOR_TEST_POSTGRES_DIR"' EXIT
  local status=0
  "$@" || status=$?
  return "$status"
}

case "${1:-}" in
  start) start ;;
  stop) shift; stop "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
