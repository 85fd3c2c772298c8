#!/usr/bin/env bash
# The Redis message store, measured three ways against one throwaway redis-server:
#  1. the API: wrk POSTs text messages (CHAT_MESSAGE_STORE=redis), then, in the same
#     run against the same server, wrk GETs /healthz; prints both rates and their
#     ratio (goal: posts >= 0.5 of healthz);
#  2. the store alone: the store_load example (next_id + append, as a post does);
#  3. redis-benchmark on the same Redis, for scale.
#
#   scripts/bench/post-redis.sh                 # 20 s each, 16 connections, 16 threads
#   DURATION=30 CONNECTIONS=32 scripts/bench/post-redis.sh
#   STORE=memory scripts/bench/post-redis.sh    # the API on the in-memory store instead
#
# Needs redis-server, redis-benchmark (apt-get install redis-server) and wrk
# (apt-get install wrk). Loopback only; everything it starts is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-16}
# STORE=memory: the same API runs on the in-memory store, the ceiling of the rest of
# the request (Redis still runs, for the store and redis-benchmark parts).
STORE=${STORE:-redis}
cd "$(dirname "$0")/../.."
for tool in wrk redis-server redis-benchmark; do
  command -v $tool >/dev/null || { echo "$tool is missing (see the header)" >&2; exit 1; }
done

cargo build --release -q -p chat-server
cargo build --release -q -p chat-redis --example store_load
BIN=$PWD/target/release/chat-server
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" >/dev/null &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL=redis://127.0.0.1:$REDIS_PORT

PORT=$(free_port)
export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 CHAT_BIND=127.0.0.1:$PORT \
  RUST_LOG=warn CHAT_RATE_LIMIT_POSTS=0
if [ "$STORE" = memory ]; then
  export CHAT_MESSAGE_STORE=memory
else
  export CHAT_REDIS_URL=$REDIS_URL CHAT_MESSAGE_STORE=redis
fi
"$BIN" serve 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

ADMIN=$("$BIN" token --sub 1 --role admin --ttl 3600)
API=http://127.0.0.1:$PORT/api
THREAD_IDS=()
for r in $(seq "$THREADS"); do
  curl -sf -X PUT "$API/requests/$r" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d '{"client_id": 7}' >/dev/null
  THREAD_IDS+=("$(curl -sf -X POST "$API/requests/$r/chat/open" -H "Authorization: Bearer $ADMIN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["threadId"])')")
done

TEXT=$(printf 'x%.0s' $(seq 120))
cat > "$WORK/post.lua" <<LUA
local threads = { $(IFS=,; echo "${THREAD_IDS[*]}") }
local i = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $ADMIN"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"text","text":"$TEXT"}'
request = function()
  i = i + 1
  return wrk.format(nil, "/api/chat/threads/" .. threads[(i % #threads) + 1] .. "/messages")
end
LUA
WRK_THREADS=$(( CONNECTIONS < 2 ? 1 : 2 ))
# CPU time (clock ticks) of processes, to say where a post's CPU goes.
cpu_ticks() { local t=0 f; for p in "$@"; do read -r -a f < "/proc/$p/stat" && t=$((t + f[13] + f[14])); done; echo $t; }
echo "== API: POST text messages ($STORE store), $CONNECTIONS connections, ${DURATION}s"
SERVER_BEFORE=$(cpu_ticks "$SERVER_PID"); REDIS_BEFORE=$(cpu_ticks "$REDIS_PID")
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$PORT" | tee "$WORK/post.out"
SERVER_CPU=$(( $(cpu_ticks "$SERVER_PID") - SERVER_BEFORE )); REDIS_CPU=$(( $(cpu_ticks "$REDIS_PID") - REDIS_BEFORE ))
if grep -q "Non-2xx" "$WORK/post.out"; then echo "non-2xx answers: the run is invalid" >&2; exit 1; fi
echo "== API: GET /healthz, $CONNECTIONS connections, ${DURATION}s"
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT/healthz" | tee "$WORK/health.out"
POST_RATE=$(awk '/Requests\/sec/ {print $2}' "$WORK/post.out")
HEALTH_RATE=$(awk '/Requests\/sec/ {print $2}' "$WORK/health.out")
kill "$SERVER_PID"; SERVER_PID=

echo "== the store alone: next_id + append, $CONNECTIONS tasks, ${DURATION}s"
target/release/examples/store_load "$REDIS_URL" "$CONNECTIONS" "$DURATION" | tee "$WORK/store.out"
echo "== redis-benchmark: $CONNECTIONS clients"
redis-benchmark -p "$REDIS_PORT" -c "$CONNECTIONS" -n 200000 -q -t set,get,zadd,hset,evalsha 2>/dev/null \
  | tr '\r' '\n' | grep 'requests per second' | tee "$WORK/redis-benchmark.out"

python3 - "$POST_RATE" "$HEALTH_RATE" "$SERVER_CPU" "$REDIS_CPU" "$(getconf CLK_TCK)" "$DURATION" <<'PY'
import sys
post, health = float(sys.argv[1]), float(sys.argv[2])
server_s, redis_s = (int(t) / int(sys.argv[5]) for t in sys.argv[3:5])
posts = post * float(sys.argv[6])
print(f"\nPOST phase CPU per post: chat-server {server_s / posts * 1e6:.0f} µs, "
      f"redis-server {redis_s / posts * 1e6:.0f} µs")
print(f"API posts/s: {post:.0f}   healthz/s: {health:.0f}   ratio: {post / health:.2f} (goal >= 0.50)")
PY
