#!/usr/bin/env bash
# Does sharing the cores make PostgreSQL spend more CPU per post? (issue 21, goal 1)
# pgbench sends the statements of one post (post-postgres.sh's baseline) for 10 s,
# twice alone and twice beside a shell busy loop that takes a core's share, and prints
# the rate and PostgreSQL's CPU per transaction (its processes, from 1 s to 9 s in).
#
#   scripts/bench/pgbench-contended.sh
#
# Needs the PostgreSQL 15 server binaries and pgbench. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p chat-server
BIN=$PWD/target/release/chat-server
WORK=$(mktemp -d)
. scripts/bench/common.sh
BUSY=
trap '[ -n "$BUSY" ] && kill "$BUSY" 2>/dev/null; bench_cleanup' EXIT
start_postgres

# The schema and 16 threads, from chat-server itself.
PORT=$(free_port)
export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 CHAT_DATABASE_URL=$PG_URL \
  CHAT_BIND=127.0.0.1:$PORT CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) RUST_LOG=warn
"$BIN" serve 2>/dev/null &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
write_post_script "$PORT" 16 1
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

for mode in alone busy alone busy; do
  write_pgbench_post_script 16 16 own
  psql -X -q "$PG_URL" -c VACUUM -c CHECKPOINT
  if [ $mode = busy ]; then (while :; do :; done) & BUSY=$!; fi
  pgbench_post 16 10 >"$WORK/pgbench.out" 2>&1 &
  PGBENCH=$!
  # Its backends live as long as it does: sampled while it runs.
  sleep 1; PIDS=$(postgres_pids); BEFORE=$(cpu_ticks $PIDS); sleep 8; AFTER=$(cpu_ticks $PIDS)
  wait $PGBENCH
  if [ -n "$BUSY" ]; then kill "$BUSY"; wait "$BUSY" 2>/dev/null || true; BUSY=; fi
  TPS=$(awk '/^tps/ {print $3}' "$WORK/pgbench.out")
  echo "$mode: $TPS tx/s; PostgreSQL CPU per transaction (from 1 s in): $(python3 -c "print(round(($AFTER - $BEFORE) / $(getconf CLK_TCK) / ($TPS * 8) * 1e6))") µs"
done
