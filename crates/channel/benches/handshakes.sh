#!/usr/bin/env bash
# Handshake rates: ours in one thread, then the same client loop against our acceptor and against
# `openssl s_server` (server pinned to core 0, client to core 1). Usage: benches/handshakes.sh [N]
set -euo pipefail
N=${1:-2000}
cd "$(dirname "$0")/.."
cargo build --release --example handshake_bench -q
BIN=${CARGO_TARGET_DIR:-../../target}/release/examples/handshake_bench
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
"$BIN" pki "$DIR"
KEY=00112233445566778899aabbccddeeff
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.05; done; }

for mode in psk ecdsa; do
  taskset -c 1 "$BIN" inproc $mode "$N"
done
for mode in psk ecdsa; do
  P=$(port); taskset -c 0 "$BIN" serve $mode "$P" "$DIR" >/dev/null & S=$!
  wait_port "$P"; taskset -c 1 "$BIN" client $mode "$P" "$DIR" "$N" | sed 's/^/ours:     /'
  kill $S; wait $S 2>/dev/null || true
  P=$(port)
  if [ $mode = psk ]; then
    taskset -c 0 openssl s_server -accept 127.0.0.1:$P -psk $KEY -nocert -cipher PSK-AES128-CBC-SHA256 -tls1_2 -rev -quiet >/dev/null 2>&1 & S=$!
  else
    taskset -c 0 openssl s_server -accept 127.0.0.1:$P -cert "$DIR/server.pem" -key "$DIR/server.key" \
      -Verify 1 -CAfile "$DIR/ca.pem" -verify_return_error -cipher ECDHE-ECDSA-AES128-SHA256 -tls1_2 -rev -quiet >/dev/null 2>&1 & S=$!
  fi
  wait_port "$P"; taskset -c 1 "$BIN" client $mode "$P" "$DIR" "$N" | sed 's/^/s_server: /'
  kill $S; wait $S 2>/dev/null || true
done
