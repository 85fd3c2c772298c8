#!/usr/bin/env bash
# One busy thread against many: wrk posts text messages with 16 connections, first all
# to ONE thread, then spread over 16 threads, on the Redis store and on the PostgreSQL
# store (each against a throwaway server of its own), and prints per store the p50 and
# p99 latency of the one-thread run and both rates (goals: p99 <= 10 x p50, one-thread
# rate >= 0.8 x the 16-thread rate).
#
#   scripts/bench/hot-thread.sh               # 10 s per run, 16 connections
#   DURATION=20 STORES=redis scripts/bench/hot-thread.sh
#
# Needs redis-server, the PostgreSQL 15 server binaries and wrk (apt-get install
# redis-server wrk). Loopback only; everything it starts is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
STORES=${STORES:-redis postgres}
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d)
. scripts/bench/common.sh
trap bench_cleanup EXIT
wrk_setup

export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_RATE_LIMIT_POSTS=0 CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) \
  CHAT_DATABASE_MAX_CONNECTIONS=$CONNECTIONS

start_backend() {
  case $1 in
    redis) start_redis; STORE_VARS=(CHAT_REDIS_URL=$REDIS_URL CHAT_MESSAGE_STORE=redis) ;;
    postgres) start_postgres; STORE_VARS=(CHAT_DATABASE_URL=$PG_URL) ;;
  esac
}
stop_backend() { stop_redis; stop_postgres; }

# Runs wrk posting over $1 threads of a fresh server; prints "rate p50_ms p99_ms".
run() {
  local threads=$1 port; port=$(free_port)
  env "${STORE_VARS[@]}" CHAT_BIND=127.0.0.1:$port "$BIN" serve 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  write_post_script "$port" "$threads" $((RUN * 100 + 1))
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$port" > "$WORK/wrk.out"
  grep -q "Non-2xx" "$WORK/wrk.out" && { cat "$WORK/wrk.out" >&2; echo "non-2xx answers: the run is invalid" >&2; exit 1; }
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  RUN=$((RUN + 1))
  python3 - "$WORK/wrk.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(f"{rate:.0f} {ms(50):.3f} {ms(99):.3f}")
PY
}

RUN=1
for store in $STORES; do
  start_backend "$store"
  read -r one p50 p99 < <(run 1)
  read -r many m50 m99 < <(run 16)
  stop_backend
  python3 - "$store" "$one" "$p50" "$p99" "$many" "$m50" "$m99" <<'PY'
import sys
store, one, p50, p99, many, m50, m99 = sys.argv[1], *map(float, sys.argv[2:])
print(f"== {store}: one thread {one:.0f} posts/s (p50 {p50:.2f} ms, p99 {p99:.2f} ms), "
      f"16 threads {many:.0f} posts/s (p50 {m50:.2f} ms, p99 {m99:.2f} ms)")
print(f"   one-thread p99/p50: {p99 / p50:.1f} (goal <= 10); "
      f"one-thread / 16-thread rate: {one / many:.2f} (goal >= 0.8)")
PY
done
