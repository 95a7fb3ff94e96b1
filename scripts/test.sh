#!/usr/bin/env bash
# Runs every test of the workspace: doc tests, then unit, integration and property tests
# with cargo-nextest (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
cargo test --workspace --doc --quiet
cargo nextest run --workspace --all-targets --no-fail-fast "$@"
