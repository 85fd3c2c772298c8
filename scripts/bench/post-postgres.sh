#!/usr/bin/env bash
# Posts text messages through the API to the PostgreSQL store with wrk, then has
# pgbench insert equivalent rows (same table, same sealed size) into the same server at
# the same concurrency, and prints both rates and their ratio (goal: >= 0.7).
#
#   scripts/bench/post-postgres.sh            # 20 s each, 16 connections, 16 threads
#   DURATION=30 CONNECTIONS=32 scripts/bench/post-postgres.sh
#   STATEMENTS=1 scripts/bench/post-postgres.sh   # also: the statements of the API
#                                                 # phase by PostgreSQL time spent
#
# Needs PostgreSQL 15 server binaries, pgbench and wrk (apt-get install wrk). Loopback
# only; everything it starts is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-16}
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p chat-server
BIN=$PWD/target/release/chat-server
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
WORK=$(mktemp -d)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$WORK"

# PostgreSQL with its default durability: both sides pay the same commit cost.
PG_PORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
  -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" start >/dev/null
DB=postgres://postgres@127.0.0.1:$PG_PORT/chat
psql -q -X "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c 'CREATE DATABASE chat'

PORT=$(free_port)
SECRET=bench-secret-bench-secret-bench-secret-01
export CHAT_JWT_SECRET=$SECRET CHAT_DATABASE_URL=$DB CHAT_BIND=127.0.0.1:$PORT \
  CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) RUST_LOG=warn CHAT_RATE_LIMIT_POSTS=0 \
  CHAT_DATABASE_MAX_CONNECTIONS=$CONNECTIONS
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

# A 120-character text, as a typical chat message.
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
# CPU time (clock ticks) of processes, to say where a post's CPU goes.
cpu_ticks() { local t=0 f; for p in "$@"; do read -r -a f < "/proc/$p/stat" 2>/dev/null && t=$((t + f[13] + f[14])); done; echo $t; }
postgres_pids() { local pm; pm=$(head -1 "$WORK/data/postmaster.pid"); echo "$pm" $(ps -o pid= --ppid "$pm"); }
echo "== API: POST text messages, $CONNECTIONS connections, ${DURATION}s"
SERVER_BEFORE=$(cpu_ticks "$SERVER_PID"); PG_PIDS_BEFORE=$(postgres_pids); PG_BEFORE=$(cpu_ticks $PG_PIDS_BEFORE)
wrk -t"$(( CONNECTIONS < 2 ? 1 : 2 ))" -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$PORT" | tee "$WORK/wrk.out"
# Backends that existed before the phase and the ones it opened (none ended meanwhile).
SERVER_CPU=$(( $(cpu_ticks "$SERVER_PID") - SERVER_BEFORE ))
PG_CPU=$(( $(cpu_ticks $(echo $PG_PIDS_BEFORE $(postgres_pids) | tr ' ' '\n' | sort -u)) - PG_BEFORE ))
if grep -q "Non-2xx" "$WORK/wrk.out"; then echo "non-2xx answers: the run is invalid" >&2; exit 1; fi
API_RATE=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
if [ -n "${STATEMENTS:-}" ]; then
  echo "== statements of the API phase, by PostgreSQL time"
  psql -X -q "$DB" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' \
    -c "SELECT calls, round(total_exec_time::numeric, 0) AS total_ms,
               round((total_exec_time / calls)::numeric, 3) AS mean_ms, left(query, 90) AS query
        FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'chat')
        ORDER BY total_exec_time DESC LIMIT 8"
fi

# Equivalent rows: same table and indexes, a 12-byte nonce and 136 bytes of
# ciphertext+tag (what a 120-character text seals to), one autocommit insert each.
NONCE=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
CIPHER=$(head -c 136 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$WORK/insert.sql" <<SQL
\set thread random(1000001, 1000016)
INSERT INTO chat_messages (id, thread_id, sender_id, type, nonce, ciphertext, created_at)
VALUES (nextval('chat_message_ids'), :thread, 7, 'text', '\x$NONCE'::bytea, '\x$CIPHER'::bytea, now());
SQL
echo "== pgbench: INSERT equivalent rows, $CONNECTIONS connections, ${DURATION}s"
pgbench -n -M prepared -c "$CONNECTIONS" -j "$(( CONNECTIONS < 2 ? 1 : 2 ))" -T "$DURATION" -f "$WORK/insert.sql" "$DB" | tee "$WORK/pgbench.out"
PG_RATE=$(awk '/^tps = / {print $3}' "$WORK/pgbench.out")

python3 - "$API_RATE" "$PG_RATE" "$SERVER_CPU" "$PG_CPU" "$(getconf CLK_TCK)" "$DURATION" <<'PY'
import sys
api, pg = float(sys.argv[1]), float(sys.argv[2])
server_s, pg_s = (int(t) / int(sys.argv[5]) for t in sys.argv[3:5])
posts = api * float(sys.argv[6])
print(f"\nAPI phase CPU per post: chat-server {server_s / posts * 1e6:.0f} µs, "
      f"PostgreSQL {pg_s / posts * 1e6:.0f} µs")
print(f"API posts/s: {api:.0f}   pgbench inserts/s: {pg:.0f}   ratio: {api / pg:.2f} (goal >= 0.70)")
PY
