#!/usr/bin/env bash
# Image posts (issue 30): upload + post + first download of a ~2 MB JPEG (3400 × 2550,
# made by chat-images' `photo` example), COUNT times against chat-server on local files,
# p50/p99 of each step and the server's CPU per image (scripts/bench/media.py). BIN
# picks another build, to compare before and after in one run:
#
#   scripts/bench/media.sh
#   BIN=/path/to/an/older/chat-server scripts/bench/media.sh
#
# Loopback only; everything it starts is stopped on exit.
set -euo pipefail
COUNT=${COUNT:-50}
cd "$(dirname "$0")/../.."
cargo build --release -q -p chat-server
cargo build --release -q -p chat-images --example photo
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN=${BIN:-$TARGET/release/chat-server}
WORK=$(mktemp -d)
trap 'kill $SERVER_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$TARGET/release/examples/photo" 3400 2550 "$WORK/photo.jpg" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_OBJECT_STORE_URL="file://$WORK/media" CHAT_RATE_LIMIT_POSTS=0 CHAT_RATE_LIMIT_UPLOADS=0 \
  CHAT_BIND=127.0.0.1:$port
"$BIN" serve 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
ADMIN=$("$BIN" token --sub 1 --role admin --ttl 3600)
python3 scripts/bench/media.py "http://127.0.0.1:$port" "$ADMIN" "$WORK/photo.jpg" "$COUNT" "$SERVER_PID"
