#!/usr/bin/env bash
# The soak run (issue 29): the production setup for a long while under steady load,
# to see that nothing grows. Two chat-server instances over one PostgreSQL and one
# Redis (the event bus, and the message store: CHAT_MESSAGE_STORE=redis); two
# pusher-loads, each posting to one instance and subscribed on the other's dedicated
# listener (so every delivery crosses the bus): 500 threads, 2,000 sockets, 200
# posts/s in all, every socket whispering `client-typing` every 10 s (200/s), 10 inbox
# reads/s. Every minute it prints, per instance, its resident memory and open file
# descriptors, Redis's client connections and PostgreSQL's backends; at the end each
# pusher-load's deliveries (of those expected) and the growth after the warm-up.
#
#   scripts/bench/soak.sh                   # 60 minutes
#   MINUTES=10 WARMUP=2 scripts/bench/soak.sh
#   BIN=/path/to/another/chat-server scripts/bench/soak.sh
#
# Needs redis-server and the PostgreSQL 15 server binaries. Loopback only; everything
# it starts is stopped on exit.
set -euo pipefail
MINUTES=${MINUTES:-60}
WARMUP=${WARMUP:-5}
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release -q -p chat-server -p pusher-load
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN=${BIN:-$TARGET/release/chat-server}
LOAD=$TARGET/release/pusher-load
WORK=$(mktemp -d)
. scripts/bench/common.sh
SERVER_PIDS=()
LOAD_PIDS=()
stop_all() {
  for pid in "${LOAD_PIDS[@]}" "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${LOAD_PIDS[@]}" "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop_all; bench_cleanup' EXIT
start_postgres
start_redis

export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_PUSHER_APP_KEY=bench-key CHAT_PUSHER_APP_SECRET=bench-app-secret \
  CHAT_OBJECT_STORE_URL=memory:// CHAT_RATE_LIMIT_POSTS=0 CHAT_RATE_LIMIT_AUTH=0 \
  CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) \
  CHAT_DATABASE_URL=$PG_URL CHAT_REDIS_URL=$REDIS_URL CHAT_MESSAGE_STORE=redis
ADMIN=$("$BIN" token --sub 1 --role admin --ttl $((MINUTES * 60 + 3600)))
ports=() ws_ports=()
for i in 1 2; do
  port=$(free_port); ws_port=$(free_port)
  CHAT_BIND=127.0.0.1:$port CHAT_WS_BIND=127.0.0.1:$ws_port "$BIN" serve 2>"$WORK/server-$i.log" &
  SERVER_PIDS+=($!); ports+=("$port"); ws_ports+=("$ws_port")
done
for port in "${ports[@]}"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done

echo "== soak: 2 instances, ${MINUTES} min (warm-up ${WARMUP} min), 200 posts/s over 500 threads, 2,000 sockets, 200 whispers/s, 10 inbox reads/s"
for i in 1 2; do
  other=$((3 - i))
  "$LOAD" --url "http://127.0.0.1:${ports[$((i - 1))]}" --ws-url "http://127.0.0.1:${ws_ports[$((other - 1))]}" \
    --key bench-key --secret bench-app-secret --token "$ADMIN" --trigger chat \
    --connections 1000 --channels 250 --rate 100 --concurrency 32 --seconds $((MINUTES * 60)) \
    --whisper-every 10 --inbox-reads 5 --report-every 60 --first-request $((3000000 + i * 1000000)) \
    >"$WORK/load-$i.log" 2>&1 &
  LOAD_PIDS+=($!)
done

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
redis_clients() { redis-cli -u "$REDIS_URL" INFO clients | awk -F: '/^connected_clients:/ {print $2}' | tr -d '\r'; }
pg_backends() { psql -X -q -A -t "$PG_URL" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = 'chat' AND pid <> pg_backend_pid()"; }

printf '%6s %12s %12s %8s %8s %14s %12s\n' minute rss_a_kb rss_b_kb fds_a fds_b redis_clients pg_backends
samples=()
for minute in $(seq 0 "$MINUTES"); do
  [ "$minute" -gt 0 ] && sleep 60
  for pid in "${SERVER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a server died"; exit 1; }; done
  line=$(printf '%6d %12d %12d %8d %8d %14d %12d' "$minute" \
    "$(rss_kb "${SERVER_PIDS[0]}")" "$(rss_kb "${SERVER_PIDS[1]}")" \
    "$(fds "${SERVER_PIDS[0]}")" "$(fds "${SERVER_PIDS[1]}")" "$(redis_clients)" "$(pg_backends)")
  echo "$line"
  samples+=("$line")
done
for pid in "${LOAD_PIDS[@]}"; do wait "$pid" || true; done
LOAD_PIDS=()
for i in 1 2; do
  echo "== pusher-load $i (posts to instance $i, sockets on instance $((3 - i)))"
  grep -v '^at ' "$WORK/load-$i.log"
done

# Growth from the end of the warm-up to the end, per column.
python3 - "$WARMUP" "${samples[@]}" <<'PY'
import sys
warmup = int(sys.argv[1])
rows = [list(map(int, line.split())) for line in sys.argv[2:]]
start = next(r for r in rows if r[0] == warmup)
end = rows[-1]
names = ["rss_a", "rss_b", "fds_a", "fds_b", "redis_clients", "pg_backends"]
for i, name in enumerate(names, start=1):
    growth = (end[i] - start[i]) / start[i] * 100 if start[i] else float("nan")
    peak = max(r[i] for r in rows if r[0] >= warmup)
    print(f"{name}: {start[i]} at minute {warmup}, {end[i]} at minute {end[0]} ({growth:+.1f}%), peak {peak}")
PY
