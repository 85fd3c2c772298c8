#!/usr/bin/env bash
# The Redis message store against the in-memory one, same API, same run (goal: Redis
# posts/s >= 0.7 of the in-memory store's, redis-server <= 12 µs of CPU per post). $RUNS rounds, each a fresh
# chat-server on the in-memory store, then one with CHAT_MESSAGE_STORE=redis (so the
# event bus is Redis too) on a throwaway redis-server; wrk posts 120-character texts
# for $DURATION s over $CONNECTIONS connections to $THREADS threads. Prints each
# round's rates, the CPU per post of chat-server and redis-server, and the ratio.
# Each Redis round also prints redis-server's own accounting by command. Then, for
# scale: the store alone (the store_load example: next_id + append, as a post does),
# and the floor: redis-server's CPU for each bare command a post needs, alone.
#
#   scripts/bench/post-redis.sh                 # 3 rounds of 10 s, 16 connections, 16 threads
#   RUNS=5 DURATION=20 CONNECTIONS=32 scripts/bench/post-redis.sh
#
# Needs redis-server, redis-benchmark (apt-get install redis-server) and wrk
# (apt-get install wrk). Loopback only; everything it starts is stopped on exit.
set -euo pipefail
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-16}
cd "$(dirname "$0")/../.."
for tool in wrk redis-server redis-benchmark; do
  command -v $tool >/dev/null || { echo "$tool is missing (see the header)" >&2; exit 1; }
done

cargo build --release -q -p chat-server
cargo build --release -q -p chat-redis --example store_load
BIN=${BIN:-$PWD/target/release/chat-server}  # BIN=…: another build, to compare
WORK=$(mktemp -d)
source scripts/bench/common.sh
trap bench_cleanup EXIT
start_redis

export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn CHAT_RATE_LIMIT_POSTS=0
WRK_THREADS=$(( CONNECTIONS < 2 ? 1 : 2 ))
# Posts through a fresh chat-server on store $1; prints "rate server_ticks redis_ticks".
posts() {
  local port; port=$(free_port)
  if [ "$1" = redis ]; then
    redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null
    CHAT_BIND=127.0.0.1:$port CHAT_REDIS_URL=$REDIS_URL CHAT_MESSAGE_STORE=redis "$BIN" serve 2>>"$WORK/server.log" &
  else
    CHAT_BIND=127.0.0.1:$port CHAT_MESSAGE_STORE=memory "$BIN" serve 2>>"$WORK/server.log" &
  fi
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  write_post_script "$port" "$THREADS" $(( (RANDOM + 1) * 100 ))
  local server_before redis_before
  redis-cli -u "$REDIS_URL" CONFIG RESETSTAT >/dev/null
  server_before=$(cpu_ticks "$SERVER_PID"); redis_before=$(cpu_ticks "$REDIS_PID")
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$port" >"$WORK/wrk.out"
  local server_cpu=$(( $(cpu_ticks "$SERVER_PID") - server_before )) redis_cpu=$(( $(cpu_ticks "$REDIS_PID") - redis_before ))
  redis-cli -u "$REDIS_URL" INFO commandstats | tr -d '\r' >"$WORK/commandstats.$1"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  if grep -q "Non-2xx" "$WORK/wrk.out"; then echo "non-2xx answers: the run is invalid" >&2; exit 1; fi
  echo "$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out") $server_cpu $redis_cpu"
}
echo "== API posts, $CONNECTIONS connections over $THREADS threads, ${DURATION}s per store"
for run in $(seq "$RUNS"); do
  read -r memory_rate memory_cpu _ <<<"$(posts memory)"
  read -r redis_rate redis_cpu redis_server_cpu <<<"$(posts redis)"
  python3 - "$run" "$memory_rate" "$memory_cpu" "$redis_rate" "$redis_cpu" "$redis_server_cpu" "$(getconf CLK_TCK)" "$DURATION" <<'PY'
import sys
run, (mem, mem_t, red, red_t, redis_t), hz, secs = sys.argv[1], map(float, sys.argv[2:7]), int(sys.argv[7]), float(sys.argv[8])
us = lambda ticks, rate: ticks / hz / (rate * secs) * 1e6
print(f"round {run}: in-memory {mem:.0f} posts/s (chat-server {us(mem_t, mem):.0f} µs/post), "
      f"Redis {red:.0f} posts/s (chat-server {us(red_t, red):.0f} µs/post, redis-server {us(redis_t, red):.0f} µs/post), "
      f"ratio {red / mem:.2f} (goal >= 0.70)")
PY
  # What redis-server spent per post, by command (its own accounting, which leaves out
  # reading and writing the sockets).
  python3 - "$redis_rate" "$DURATION" "$WORK/commandstats.redis" <<'PY'
import re, sys
posts = float(sys.argv[1]) * float(sys.argv[2])
rows = []
for line in open(sys.argv[3]):
    m = re.match(r"cmdstat_(\w+):calls=(\d+),usec=(\d+)", line)
    if m:
        rows.append((int(m[3]), m[1], int(m[2])))
rows.sort(reverse=True)
total = sum(r[0] for r in rows)
print(f"  redis-server by command: {total / posts:.1f} µs per post in commands; " + ", ".join(
    f"{name} {calls / posts:.2f}/post {usec / posts:.1f} µs" for usec, name, calls in rows[:6]))
PY
done

echo "== the store alone: next_id + append, $CONNECTIONS tasks, ${DURATION}s"
target/release/examples/store_load "$REDIS_URL" "$CONNECTIONS" "$DURATION"
echo "== the floor: redis-server CPU per bare command, redis-benchmark with $CONNECTIONS clients"
# A post is one EVALSHA (whose script runs GET, ZADD, SET, EXISTS twice, ZRANGE,
# ZREMRANGEBYRANK and PEXPIRE) and one PUBLISH: each alone, sent as chat-server sends
# it, costs this much of redis-server's CPU.
PORT=${REDIS_URL##*:}
NOOP=$(redis-cli -p "$PORT" SCRIPT LOAD "return 0")
MESSAGE=$(head -c 200 /dev/zero | tr '\0' m)
floor() {
  local n=200000 before
  before=$(cpu_ticks "$REDIS_PID")
  redis-benchmark -p "$PORT" -c "$CONNECTIONS" -n $n -r 100000 -q "$@" >/dev/null 2>&1
  python3 -c "import sys; print(f'  {sys.argv[1]:<16} {int(sys.argv[2]) / int(sys.argv[3]) / $n * 1e6:.1f} µs')" \
    "$1" $(( $(cpu_ticks "$REDIS_PID") - before )) "$(getconf CLK_TCK)"
}
floor EVALSHA "$NOOP" 0   # a script that does nothing
floor PUBLISH chat:events "$MESSAGE"
floor ZADD 'bench:{t}:z' __rand_int__ "__rand_int__$MESSAGE"
floor SET 'bench:{t}:seq' __rand_int__ PX 86400000
floor ZREMRANGEBYRANK 'bench:{t}:z' 0 -101
floor PEXPIRE 'bench:{t}:z' 86400000
floor GET 'bench:{t}:seq'
