#!/usr/bin/env bash
# The project's whole test command: formatting, lints, then every test.
# .ci/run runs exactly this, so a new user and CI do the same thing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
