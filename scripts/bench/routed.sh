#!/usr/bin/env bash
# Events routed by thread (issue 20). N chat-server instances share one PostgreSQL and
# one Redis; each has 1,000 sockets of its own over 100 threads of its own (one
# pusher-load per instance, on its dedicated listener), and posts go to every instance
# at $RATE posts/s each. Prints, per instance, the server CPU it used while posts were
# triggered, per event delivered to its sockets. Runs with 1 instance and with 4, in one
# run, so that the two are compared on the same machine at the same time.
#
#   scripts/bench/routed.sh
#   RATE=50 DURATION=20 scripts/bench/routed.sh
#   BIN=/path/to/another/chat-server scripts/bench/routed.sh   # another build's server
#   COUNTS=4 RATES="100 100 100 1" scripts/bench/routed.sh     # instance 4 nearly idle:
#       what the others' traffic costs an instance (rates per instance, in order)
#
# Needs redis-server and the PostgreSQL 15 server binaries. Loopback only; everything
# it starts is stopped on exit.
set -euo pipefail
RATE=${RATE:-100}
DURATION=${DURATION:-10}
COUNTS=${COUNTS:-"1 4"}
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release -q -p chat-server -p pusher-load
BIN=${BIN:-$PWD/target/release/chat-server}
LOAD=$PWD/target/release/pusher-load
WORK=$(mktemp -d)
. scripts/bench/common.sh
SERVER_PIDS=()
stop_servers() {
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVER_PIDS=()
}
trap 'stop_servers; bench_cleanup' EXIT
start_postgres
start_redis

export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_PUSHER_APP_KEY=bench-key CHAT_PUSHER_APP_SECRET=bench-app-secret \
  CHAT_OBJECT_STORE_URL=memory:// CHAT_RATE_LIMIT_POSTS=0 CHAT_RATE_LIMIT_AUTH=0 \
  CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) \
  CHAT_DATABASE_URL=$PG_URL CHAT_REDIS_URL=$REDIS_URL CHAT_DATABASE_MAX_CONNECTIONS=4
ADMIN=$("$BIN" token --sub 1 --role admin --ttl 3600)
FIRST_REQUEST=2000000
for count in $COUNTS; do
  ports=() ws_ports=()
  for i in $(seq "$count"); do
    port=$(free_port); ws_port=$(free_port)
    CHAT_BIND=127.0.0.1:$port CHAT_WS_BIND=127.0.0.1:$ws_port "$BIN" serve 2>"$WORK/server-$count-$i.log" &
    SERVER_PIDS+=($!); ports+=("$port"); ws_ports+=("$ws_port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  done
  echo "== $count instance(s): each 1,000 sockets over 100 threads of its own, ${RATES:-$RATE} posts/s each, ${DURATION}s"
  loads=()
  for i in $(seq "$count"); do
    rate=$RATE
    [ -n "${RATES:-}" ] && rate=$(echo "$RATES" | cut -d' ' -f"$i")
    "$LOAD" --url "http://127.0.0.1:${ports[$((i - 1))]}" --ws-url "http://127.0.0.1:${ws_ports[$((i - 1))]}" \
      --key bench-key --secret bench-app-secret --token "$ADMIN" --server-pid "${SERVER_PIDS[$((i - 1))]}" \
      --connections 1000 --channels 100 --rate "$rate" --concurrency 16 --seconds "$DURATION" \
      --first-request "$FIRST_REQUEST" >"$WORK/load-$count-$i.txt" 2>&1 &
    loads+=($!)
    FIRST_REQUEST=$((FIRST_REQUEST + 1000))
  done
  for pid in "${loads[@]}"; do wait "$pid"; done
  for i in $(seq "$count"); do
    echo "-- instance $i"
    grep -E '^(triggered|deliveries|trigger-to-delivery|server CPU)' "$WORK/load-$count-$i.txt"
  done
  stop_servers
done
