#!/usr/bin/env bash
# One instance's capacity, measured rather than extrapolated: $SOCKETS subscribed
# WebSockets (default 100,000) on chat-server's dedicated listener (CHAT_WS_BIND), over
# $CHANNELS threads (default 10,000), from four loopback source addresses (one reaches
# a server port from ~28,000 ephemeral ports). Prints the time to connect and subscribe
# them all, the server's resident memory per socket, then p50/p99 post-to-delivery
# latency at $RATE posts/s (default 1,000) for $DURATION s (default 20). In-memory
# stores, release build. Then, when sockudo is on the PATH (apt-get install
# protobuf-compiler; cargo install sockudo --no-default-features --features local), the
# same sockets and rate against sockudo, triggered through the Pusher HTTP API.
#
#   scripts/bench/capacity.sh
#   SOCKETS=50000 CHANNELS=5000 scripts/bench/capacity.sh
#
# Raises the descriptor limit (root can, up to /proc/sys/fs/nr_open); loopback only.
set -euo pipefail
SOCKETS=${SOCKETS:-100000}
CHANNELS=${CHANNELS:-10000}
RATE=${RATE:-1000}
DURATION=${DURATION:-20}
cd "$(dirname "$0")/../.."
# Server and load generator each hold one descriptor per socket, and a few hundred
# more. Raising the hard limit needs CAP_SYS_RESOURCE (a container may not have it).
NEED=$(( SOCKETS + 500 ))
ulimit -Hn "$NEED" 2>/dev/null || true
if ! ulimit -n "$NEED" 2>/dev/null; then
  echo "this process may open $(ulimit -Hn) descriptors at most and $SOCKETS sockets need $NEED;" \
    "raise the hard limit (ulimit -Hn, needs CAP_SYS_RESOURCE) or ask for fewer: SOCKETS=$(( $(ulimit -Hn) - 500 ))" >&2
  exit 1
fi
SOURCES=$(( SOCKETS / 10000 + 1 ))

WORK=$(mktemp -d)
source scripts/bench/common.sh
trap bench_cleanup EXIT
realtime_setup
PORT=$(free_port); WS_PORT=$(free_port)
CHAT_BIND=127.0.0.1:$PORT CHAT_WS_BIND=127.0.0.1:$WS_PORT "$BIN" serve 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
ADMIN=$("$BIN" token --sub 1 --role admin --ttl 3600)

echo "== $SOCKETS sockets over $CHANNELS threads on the dedicated listener, from $SOURCES source addresses; $RATE posts/s for ${DURATION}s"
"$LOAD" --url "http://127.0.0.1:$PORT" --ws-url "http://127.0.0.1:$WS_PORT" --key bench-key \
  --secret bench-app-secret --token "$ADMIN" --server-pid "$SERVER_PID" \
  --connections "$SOCKETS" --channels "$CHANNELS" --sources "$SOURCES" \
  --rate "$RATE" --seconds "$DURATION" --concurrency 64
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

command -v sockudo >/dev/null || { echo "(sockudo is not on the PATH: no comparison)"; exit 0; }
port=$(free_port)
start_sockudo "$port" $(( SOCKETS * 2 ))
echo "== the same against sockudo $(sockudo --version 2>/dev/null | head -1)"
"$LOAD" --url "http://127.0.0.1:$port" --key bench-key --secret bench-app-secret --app-id bench \
  --trigger pusher --server-pid "$SERVER_PID" --connections "$SOCKETS" --channels "$CHANNELS" \
  --sources "$SOURCES" --rate "$RATE" --seconds "$DURATION" --concurrency 64
