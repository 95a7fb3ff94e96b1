#!/usr/bin/env bash
# Runs every test of the workspace. Installs cargo-nextest when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
cargo nextest run --workspace --all-targets --no-fail-fast "$@"
cargo test --workspace --doc
