#!/usr/bin/env bash
# Chromium (and ffmpeg) end-to-end tests against one arbor-edge, or against a whole cluster.
#
#   edge/tests/browser/run.sh <path-to-arbor-edge> [test files…]
#   edge/tests/browser/run.sh --cluster <path-to-arbor> [test files…]
#
# The first form starts one edge on 127.0.1.1:7880 and runs the single-edge tests. The second
# starts `arbor up` (an origin and three edges; arbor-origin and arbor-edge are taken from
# beside the arbor binary unless ARBOR_UP_ORIGIN_BIN / ARBOR_UP_EDGE_BIN say otherwise) and
# runs the cluster tests with the path of its cluster.json in ARBOR_CLUSTER_JSON. A test file
# is a cluster test if it has the line `// run.sh mode: cluster`; without test files each
# form runs all of its own kind.
#
# Everything runs inside a fresh network namespace that only has loopback, so no packet
# leaves 127/8 (see /work/shared/notes/browser-tests.md). Dependencies that need the network
# (npm, pip) are installed first, outside the namespace.
#
# Environment: ARBOR_CHROMIUM (default /usr/lib/chromium/chromium), RUST_LOG for the edges,
# ARBOR_BROWSER_ARTIFACTS (screenshots and page logs of failed tests).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
HTTP_ADDR="127.0.1.1:7880"
READY_TIMEOUT_S=20
# `arbor up` gives each of its start steps 30 s; a healthy start takes about one second.
CLUSTER_TIMEOUT_S=60
CLUSTER_MARK='^// run.sh mode: cluster$'

usage() {
  echo "usage: $0 <path-to-arbor-edge> [test files…]" >&2
  echo "       $0 --cluster <path-to-arbor> [test files…]" >&2
  exit 2
}

MODE=edge
if [[ "${1:-}" == --cluster ]]; then
  MODE=cluster
  shift
fi
[[ $# -ge 1 ]] || usage
BIN="$(realpath "$1")"
shift
# Test files given on the command line may be relative to the caller's directory.
args=()
for a in "$@"; do
  if [[ -e "$a" ]]; then args+=("$(realpath "$a")"); else args+=("$a"); fi
done
set -- "${args[@]+"${args[@]}"}"
if [[ ! -x "$BIN" ]]; then
  echo "run.sh: $BIN is not an executable" >&2
  exit 2
fi
mode_flag=()
[[ "$MODE" == cluster ]] && mode_flag=(--cluster)

# ---- outside the namespace: install, then re-exec inside a fresh one ----
if [[ -z "${ARBOR_BROWSER_IN_NETNS:-}" ]]; then
  cd "$HERE"
  if [[ ! -d node_modules/playwright-core ]]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
  if ! python3 -c 'import imageio_ffmpeg' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check imageio-ffmpeg==0.8.1
  fi
  ARBOR_FFMPEG="$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
  export ARBOR_FFMPEG ARBOR_BROWSER_IN_NETNS=1
  if [[ "$(id -u)" -eq 0 ]]; then
    exec unshare --net -- "$SELF" "${mode_flag[@]+"${mode_flag[@]}"}" "$BIN" "$@"
  else
    exec unshare --user --map-root-user --net -- "$SELF" "${mode_flag[@]+"${mode_flag[@]}"}" "$BIN" "$@"
  fi
fi

# ---- inside the namespace ----
ip link set lo up
cd "$HERE"

WORK="$(mktemp -d -t arbor-browser.XXXXXX)"
SERVER_PID="" # arbor-edge, or `arbor up` (the leader of its own process group)
LOGS=()       # printed when something fails

print_log() {
  local file="$1" name lines
  name="$(basename "$file")"
  [[ -s "$file" ]] || { echo "---- $name: empty"; return; }
  lines=$(wc -l <"$file")
  echo "---- $name ($lines lines)"
  if ((lines > 1500)); then
    head -n 300 "$file"
    echo "…"
    tail -n 1000 "$file"
  else
    cat "$file"
  fi
  echo "---- end of $name"
}

print_logs() {
  local f
  for f in "${LOGS[@]}"; do print_log "$f"; done
}

cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    # `arbor up` gives its processes 5 s to stop before it kills them.
    for _ in $(seq 80); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "$MODE" == cluster && -n "$SERVER_PID" ]]; then
    # Whatever of the cluster outlived `arbor up` (only if it had to be killed).
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

http_ok() {
  if command -v curl >/dev/null; then
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" == 200 ]]
  else
    node -e "fetch('$1').then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"
  fi
}

# Polls the command `$1` until it succeeds; fails with the logs if the server exits first or
# `$2` seconds pass. `$3` says what is awaited.
await_server() {
  local check="$1" timeout_s="$2" what="$3" code
  local deadline=$((SECONDS + timeout_s))
  until $check; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" && code=0 || code=$?
      echo "run.sh: $(basename "$BIN") exited (status $code) before $what" >&2
      print_logs
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "run.sh: no $what after ${timeout_s}s" >&2
      print_logs
      exit 1
    fi
    sleep 0.1
  done
}

edge_ready() { http_ok "http://$HTTP_ADDR/readyz"; }

start_edge() {
  cat >"$WORK/edge.toml" <<EOF
[edge]
id = "e2e"
region = "local"

[http]
listen = "$HTTP_ADDR"

[media]
bind = "127.0.1.1"
udp_port = 7882      # first worker's UDP port; worker i uses udp_port + i
tcp_port = 7982      # ICE-TCP passive, first worker; worker i uses tcp_port + i
workers = 2

[auth]
dev_tokens = true

[auth.keys]
devkey = "devsecret-devsecret-devsecret-32"
EOF
  LOGS=("$WORK/edge.log")
  RUST_LOG="${RUST_LOG:-info}" "$BIN" --config "$WORK/edge.toml" >"$WORK/edge.log" 2>&1 &
  SERVER_PID=$!
  await_server edge_ready "$READY_TIMEOUT_S" "arbor-edge ready on http://$HTTP_ADDR/readyz"
  export ARBOR_EDGE_URL="http://$HTTP_ADDR"
}

# `arbor up` renames cluster.json into place once every edge has registered with the origin.
cluster_ready() { [[ -s "$WORK/cluster/cluster.json" ]]; }

start_cluster() {
  local data="$WORK/cluster"
  LOGS=("$WORK/arbor-up.log" "$data/origin.log" "$data"/edge-{eu,us,ap}-1.log)
  # A session of its own, so that cleanup can kill the whole cluster if `arbor up` hangs.
  setsid "$BIN" up --data-dir "$data" >"$WORK/arbor-up.log" 2>&1 &
  SERVER_PID=$!
  await_server cluster_ready "$CLUSTER_TIMEOUT_S" "$data/cluster.json from arbor up"
  export ARBOR_CLUSTER_JSON="$data/cluster.json"
}

is_cluster_test() { grep -q "$CLUSTER_MARK" "$1"; }

# The tests: those given (each of this mode's kind), else every one of this mode's kind.
tests=()
if [[ $# -gt 0 ]]; then
  for f in "$@"; do
    if [[ -f "$f" ]]; then
      kind=edge
      is_cluster_test "$f" && kind=cluster
      if [[ "$kind" != "$MODE" ]]; then
        echo "run.sh: $f is a $kind-mode test; run it with$([[ "$kind" == edge ]] && echo "out") --cluster" >&2
        exit 2
      fi
    fi
    tests+=("$f")
  done
else
  for f in *.test.mjs; do
    kind=edge
    is_cluster_test "$f" && kind=cluster
    [[ "$kind" == "$MODE" ]] && tests+=("$f")
  done
fi

if [[ ${#tests[@]} -eq 0 ]]; then
  echo "run.sh: no $MODE-mode test files in $HERE" >&2
  exit 2
fi

if [[ "$MODE" == cluster ]]; then start_cluster; else start_edge; fi

started=$SECONDS
set +e
node --test --test-concurrency=1 "${tests[@]}"
rc=$?
set -e
echo "run.sh: ${#tests[@]} test file(s) in $((SECONDS - started)) s"
if [[ $rc -ne 0 ]]; then
  print_logs
  echo "run.sh: tests failed (node exit $rc); page screenshots and logs: ${ARBOR_BROWSER_ARTIFACTS:-/tmp/arbor-browser-artifacts}" >&2
fi
exit "$rc"
