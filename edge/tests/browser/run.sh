#!/usr/bin/env bash
# Chromium (and ffmpeg) end-to-end tests against one arbor-edge.
#
#   edge/tests/browser/run.sh <path-to-arbor-edge> [test files…]
#
# Everything runs inside a fresh network namespace that only has loopback, so no packet
# leaves 127/8 (see /work/shared/notes/browser-tests.md). Dependencies that need the network
# (npm, pip) are installed first, outside the namespace.
#
# Environment: ARBOR_CHROMIUM (default /usr/lib/chromium/chromium), RUST_LOG for the edge,
# ARBOR_BROWSER_ARTIFACTS (screenshots and page logs of failed tests).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
HTTP_ADDR="127.0.1.1:7880"
READY_TIMEOUT_S=20

if [[ $# -lt 1 ]]; then
  echo "usage: $0 <path-to-arbor-edge> [test files…]" >&2
  exit 2
fi
EDGE_BIN="$(realpath "$1")"
shift
# Test files given on the command line may be relative to the caller's directory.
args=()
for a in "$@"; do
  if [[ -e "$a" ]]; then args+=("$(realpath "$a")"); else args+=("$a"); fi
done
set -- "${args[@]+"${args[@]}"}"
if [[ ! -x "$EDGE_BIN" ]]; then
  echo "run.sh: $EDGE_BIN is not an executable" >&2
  exit 2
fi

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
    exec unshare --net -- "$SELF" "$EDGE_BIN" "$@"
  else
    exec unshare --user --map-root-user --net -- "$SELF" "$EDGE_BIN" "$@"
  fi
fi

# ---- inside the namespace ----
ip link set lo up
cd "$HERE"

WORK="$(mktemp -d -t arbor-browser.XXXXXX)"
EDGE_LOG="$WORK/edge.log"
EDGE_PID=""

print_edge_log() {
  [[ -s "$EDGE_LOG" ]] || { echo "---- edge log: empty"; return; }
  local lines
  lines=$(wc -l <"$EDGE_LOG")
  echo "---- edge log ($lines lines)"
  if ((lines > 1500)); then
    head -n 300 "$EDGE_LOG"
    echo "…"
    tail -n 1000 "$EDGE_LOG"
  else
    cat "$EDGE_LOG"
  fi
  echo "---- end of edge log"
}

cleanup() {
  local rc=$?
  if [[ -n "$EDGE_PID" ]] && kill -0 "$EDGE_PID" 2>/dev/null; then
    kill -TERM "$EDGE_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$EDGE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$EDGE_PID" 2>/dev/null || true
    wait "$EDGE_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

RUST_LOG="${RUST_LOG:-info}" "$EDGE_BIN" --config "$WORK/edge.toml" >"$EDGE_LOG" 2>&1 &
EDGE_PID=$!

ready() {
  if command -v curl >/dev/null; then
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HTTP_ADDR/readyz")" == 200 ]]
  else
    node -e "fetch('http://$HTTP_ADDR/readyz').then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"
  fi
}

deadline=$((SECONDS + READY_TIMEOUT_S))
until ready; do
  if ! kill -0 "$EDGE_PID" 2>/dev/null; then
    wait "$EDGE_PID" && code=0 || code=$?
    echo "run.sh: arbor-edge exited (status $code) before it was ready" >&2
    print_edge_log
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    echo "run.sh: arbor-edge not ready on http://$HTTP_ADDR/readyz after ${READY_TIMEOUT_S}s" >&2
    print_edge_log
    exit 1
  fi
  sleep 0.1
done

if [[ $# -gt 0 ]]; then
  tests=("$@")
else
  tests=(*.test.mjs)
fi

set +e
ARBOR_EDGE_URL="http://$HTTP_ADDR" node --test --test-concurrency=1 "${tests[@]}"
rc=$?
set -e
if [[ $rc -ne 0 ]]; then
  print_edge_log
  echo "run.sh: tests failed (node exit $rc); page screenshots and logs: ${ARBOR_BROWSER_ARTIFACTS:-/tmp/arbor-browser-artifacts}" >&2
fi
exit "$rc"
