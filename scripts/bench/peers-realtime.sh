#!/usr/bin/env bash
# Steady real-time latency against sockudo (issue 21, goal 3), interleaved in one
# session: $RUNS times, a fresh sockudo and a fresh chat-server (in-memory stores,
# dedicated WebSocket listener), each with 1,000 sockets over 100 channels and 1,000
# events/s for $DURATION s, measured by pusher-load. chat-server's events are posts
# (stored, sealed, then delivered); sockudo's are Pusher HTTP API triggers (relayed).
# Prints every run's p50/p99/max for both.
#
#   scripts/bench/peers-realtime.sh
#   RUNS=5 DURATION=10 RATE=1000 scripts/bench/peers-realtime.sh
#   RATE=0 RUNS=3 scripts/bench/peers-realtime.sh    # flat out (goal 4): deliveries/s
#   BIN=/path/to/other/chat-server scripts/bench/peers-realtime.sh   # another build
#
# Needs sockudo on the PATH (apt-get install protobuf-compiler; cargo install sockudo
# --no-default-features --features local). Loopback only; all it starts is stopped.
set -euo pipefail
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
RATE=${RATE:-1000}
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
command -v sockudo >/dev/null || { echo "sockudo is missing: cargo install sockudo --no-default-features --features local" >&2; exit 1; }

WORK=$(mktemp -d)
source scripts/bench/common.sh
SERVER_PID=
trap bench_cleanup EXIT
stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
report() { grep -E '^(deliveries|trigger-to-delivery|server CPU|load generator)' "$1" | sed 's/^/   /'; }

realtime_setup
ADMIN=$("$BIN" token --sub 1 --role admin --ttl 3600)
for run in $(seq "$RUNS"); do
  port=$(free_port)
  start_sockudo "$port" 100000
  "$LOAD" --url "http://127.0.0.1:$port" --key bench-key --secret bench-app-secret --app-id bench \
    --trigger pusher --server-pid "$SERVER_PID" --connections 1000 --channels 100 \
    --rate "$RATE" --seconds "$DURATION" >"$WORK/sockudo-$run.txt" 2>&1 || true
  stop
  echo "== run $run, sockudo"; report "$WORK/sockudo-$run.txt"

  port=$(free_port); ws_port=$(free_port)
  CHAT_BIND=127.0.0.1:$port CHAT_WS_BIND=127.0.0.1:$ws_port "$BIN" serve 2>"$WORK/chat.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  "$LOAD" --url "http://127.0.0.1:$port" --ws-url "http://127.0.0.1:$ws_port" --key bench-key \
    --secret bench-app-secret --token "$ADMIN" --server-pid "$SERVER_PID" --connections 1000 \
    --channels 100 --rate "$RATE" --seconds "$DURATION" --first-request $((3000000 + run * 1000)) \
    >"$WORK/chat-$run.txt" 2>&1 || true
  stop
  echo "== run $run, chat-server"; report "$WORK/chat-$run.txt"
done
