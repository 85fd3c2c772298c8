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
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
WORK=$(mktemp -d)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$WORK"

PG_PORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
  -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
psql -q -X "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c 'CREATE DATABASE chat'
REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" >/dev/null &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

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
measure "PostgreSQL store, Redis bus" CHAT_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/chat" CHAT_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
measure "in-memory store and bus" CHAT_MESSAGE_STORE=memory
