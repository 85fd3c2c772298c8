#!/usr/bin/env bash
# Every stored message reaches its readers: pusher-load opens 1,000 subscribed sockets
# over 100 threads on the dedicated listener and posts as fast as 64 posters go for
# $DURATION s, first on the production setup (PostgreSQL store, Redis event bus), then
# on the in-memory store, each against a fresh chat-server; prints deliveries made
# against deliveries expected (goal: 100%) and deliveries/s for both, and how many
# events the server says it missed (chat_events_missed_total) and sockets it told to
# resync (chat_websocket_resync_disconnects_total).
#
#   scripts/bench/delivery.sh
#   DURATION=20 scripts/bench/delivery.sh
#
# Needs redis-server and the PostgreSQL 15 server binaries. Loopback only; everything
# it starts is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-10}
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release -q -p chat-server -p pusher-load
BIN=$PWD/target/release/chat-server
LOAD=$PWD/target/release/pusher-load
WORK=$(mktemp -d)
. scripts/bench/common.sh
trap bench_cleanup EXIT
start_postgres
start_redis

export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_PUSHER_APP_KEY=bench-key CHAT_PUSHER_APP_SECRET=bench-app-secret \
  CHAT_OBJECT_STORE_URL=memory:// CHAT_RATE_LIMIT_POSTS=0 CHAT_RATE_LIMIT_AUTH=0 \
  CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
ADMIN=$("$BIN" token --sub 1 --role admin --ttl 3600)
FIRST_REQUEST=1000000
measure() {
  local label=$1; shift
  local port ws_port; port=$(free_port); ws_port=$(free_port)
  env "$@" CHAT_BIND=127.0.0.1:$port CHAT_WS_BIND=127.0.0.1:$ws_port "$BIN" serve 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  echo "== $label: 1,000 sockets over 100 threads, 64 posters flat out, ${DURATION}s"
  "$LOAD" --url "http://127.0.0.1:$port" --ws-url "http://127.0.0.1:$ws_port" --key bench-key \
    --secret bench-app-secret --token "$ADMIN" --server-pid "$SERVER_PID" \
    --connections 1000 --channels 100 --rate 0 --concurrency 64 --seconds "$DURATION" \
    --first-request "$FIRST_REQUEST"
  FIRST_REQUEST=$((FIRST_REQUEST + 1000))
  curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^chat_(events_missed|websocket_resync_disconnects|websocket_overflow_disconnects)_total' || echo "(no events missed, no socket resynced or dropped)"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
}
measure "PostgreSQL store, Redis bus" CHAT_DATABASE_URL="$PG_URL" CHAT_REDIS_URL="$REDIS_URL"
measure "in-memory store and bus" CHAT_MESSAGE_STORE=memory
