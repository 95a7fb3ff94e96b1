#!/usr/bin/env bash
# Runs every test of the workspace: doc tests, then unit, integration and property tests
# with cargo-nextest (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# The TLS tests drive the server with the unmodified openssl and curl clients.
for tool in openssl curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq "$tool"
    else
      echo "error: $tool is needed by the tests (Debian package $tool)" >&2; exit 1
    fi
  fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
cargo test --workspace --doc --quiet
cargo nextest run --workspace --all-targets --no-fail-fast "$@"
