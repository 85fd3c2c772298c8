#!/usr/bin/env bash
# Real-time delivery, measured with pusher-load against a fresh chat-server each time
# (in-memory stores, release build):
#  1. 1,000 subscribed connections over 100 threads, 1,000 posts/s for $DURATION s:
#     post-to-delivery p50/p99 (goal: p99 <= 5 ms);
#  2. the same connections, posts as fast as 64 posters go: deliveries/s at saturation;
#  3. $IDLE idle subscribed connections: the server's resident memory per connection
#     (goal: <= 10 KB at 10,000), on the API's port and on the dedicated WebSocket
#     listener (CHAT_WS_BIND).
#
#   scripts/bench/realtime.sh
#   DURATION=20 IDLE=10000 scripts/bench/realtime.sh
#
# pusher-load drives any Pusher-protocol server: see `pusher-load --help`
# (--trigger pusher uses the Pusher HTTP API, e.g. for soketi).
set -euo pipefail
DURATION=${DURATION:-10}
IDLE=${IDLE:-10000}
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # 10,000 sockets need 10,000 descriptors

WORK=$(mktemp -d)
source scripts/bench/common.sh
trap bench_cleanup EXIT
realtime_setup
start_server() {
  PORT=$(free_port); WS_PORT=$(free_port)
  CHAT_BIND=127.0.0.1:$PORT CHAT_WS_BIND=127.0.0.1:$WS_PORT "$BIN" serve 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
ADMIN=$("$BIN" token --sub 1 --role admin --ttl 3600)
load() {
  "$LOAD" --url "http://127.0.0.1:$PORT" --key bench-key --secret bench-app-secret \
    --token "$ADMIN" --server-pid "$SERVER_PID" "$@"
}

echo "== 1,000 connections over 100 threads, 1,000 posts/s, ${DURATION}s"
start_server
load --connections 1000 --channels 100 --rate 1000 --seconds "$DURATION"
stop_server

echo "== the same, posting as fast as 64 posters go, ${DURATION}s"
start_server
load --connections 1000 --channels 100 --rate 0 --concurrency 64 --seconds "$DURATION"
stop_server

echo "== $IDLE idle connections over 100 threads, /app/{key} on the API's port"
start_server
load --connections "$IDLE" --channels 100 --seconds 0
stop_server

echo "== $IDLE idle connections over 100 threads, on the dedicated listener (CHAT_WS_BIND)"
start_server
load --connections "$IDLE" --channels 100 --seconds 0 --ws-url "http://127.0.0.1:$WS_PORT"
stop_server

echo "== 1,000 connections on the dedicated listener, 1,000 posts/s, ${DURATION}s"
start_server
load --connections 1000 --channels 100 --rate 1000 --seconds "$DURATION" --ws-url "http://127.0.0.1:$WS_PORT"
stop_server
