#!/usr/bin/env bash
# Arbor's whole test suite, as CI runs it (.ci/run calls this script).
#
#   ops/test.sh
#
# Installs what the tests need when it is missing (Debian chromium and janus, cargo-nextest, a nightly
# toolchain and cargo-fuzz; the browser suite installs its npm and pip packages itself), then:
#   1. formatting and clippy (warnings are errors)
#   2. the sans-IO boundary: core crates must not depend on tokio
#   3. every Rust test (unit, property, virtual-time, the whole-mesh simulator's committed
#      seeds, loopback and QUIC integration) with nextest, against a throwaway PostgreSQL
#      server for the origin's store (ops/pg-test.sh)
#   4. the Terraform modules' offline checks (ops/terraform-check.sh)
#   5. the fuzz targets build, and each runs briefly
#   6. the browser suite: Chromium participants and ffmpeg WHIP against a real edge, then
#      across an `arbor up` cluster (two regions in one meeting; WHIP on one edge, WHEP on two)
#
# ARBOR_FUZZ_SECONDS (default 10) sets how long each fuzz target runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_root() { if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

step "dependencies"
# Chromium for the browser suite; Janus, the benchmark peer (its package would start a
# system-wide service: policy-rc.d keeps the installer from starting it).
if ! [[ -x /usr/lib/chromium/chromium ]] || ! command -v janus >/dev/null; then
  as_root apt-get update -qq
  made_policy=false
  if ! [[ -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    made_policy=true
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium janus >/dev/null
  if $made_policy; then as_root rm -f /usr/sbin/policy-rc.d; fi
fi
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
command -v unshare >/dev/null && command -v ip >/dev/null || {
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq util-linux iproute2 >/dev/null
}

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "sans-IO boundary"
for core in arbor-relay-proto arbor-edge-core arbor-origin-core arbor-sim; do
  if cargo tree -p "$core" -e normal --locked | grep -Eq ' (tokio|quinn|axum|hickory[a-z-]*|sqlx) v'; then
    echo "$core must not depend on an async runtime or a socket library:" >&2
    cargo tree -p "$core" -e normal -i tokio >&2 || true
    exit 1
  fi
  echo "$core: no tokio, quinn, axum, hickory or sqlx"
done

step "tests"
# nextest builds every binary of the workspace too (the end-to-end tests start arbor-edge,
# arbor-origin and arbor as separate processes, and the browser step below uses them). No
# separate `cargo build`: it would unify features differently and compile a second copy.
ops/pg-test.sh run -- cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --doc --locked

step "terraform"
# fmt, the provider-free topology module's init/validate/test, and every rendered edge and
# origin config through --check-config of the binaries the tests just built.
ops/terraform-check.sh

step "fuzz targets"
fuzz_seconds="${ARBOR_FUZZ_SECONDS:-10}"
# Beside the main build (its own flags would otherwise invalidate it), inside any cache.
fuzz_target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")/fuzz"
(
  cd edge/fuzz
  cargo +nightly fuzz build --dev --target-dir "$fuzz_target_dir"
  for target in $(cargo +nightly fuzz list); do
    echo "fuzzing $target for ${fuzz_seconds}s"
    cargo +nightly fuzz run --dev --target-dir "$fuzz_target_dir" "$target" -- \
      -max_total_time="$fuzz_seconds" -max_len=4096 2>&1 | tail -n 3
  done
)

step "browser end-to-end"
edge/tests/browser/run.sh "${CARGO_TARGET_DIR:-target}/debug/arbor-edge"
# The cascade: Chromium and ffmpeg across an `arbor up` cluster (origin + 3 edges).
edge/tests/browser/run.sh --cluster "${CARGO_TARGET_DIR:-target}/debug/arbor"

step "all passed"
