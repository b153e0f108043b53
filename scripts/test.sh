#!/usr/bin/env bash
# The project's whole test command: prerequisites, formatting, lints, then
# every test. .ci/run runs exactly this, so a new user and CI do the same
# thing. No test skips itself: a missing tool is reported here, up front,
# and the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (package: $2)"); }
need cargo "rustup: https://rustup.rs"
need zstd zstd
need jq jq
need curl curl
need script "util-linux / bsdutils"
need make make
need openssl openssl
need mount "util-linux"
need /usr/bin/time "time (GNU time, measures peak RSS in tests/it/hostile_files.rs)"
if ((${#missing[@]})); then
  echo "scripts/test.sh: missing prerequisites, install them and run again:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: the full-disk test mounts a small tmpfs and needs root" >&2
  exit 2
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
