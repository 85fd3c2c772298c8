#!/usr/bin/env bash
# What PgBouncer in transaction mode costs a post (issue 20): wrk posts text messages
# over 16 threads with 16 connections, first straight to PostgreSQL, then through
# Debian's pgbouncer (pool_mode = transaction, 8 server connections) with
# CHAT_DATABASE_POOLER=transaction, against a fresh chat-server and database each, in
# one run; then the same for reads (the first page of a thread). Prints both rates.
#
#   scripts/bench/pgbouncer.sh
#   DURATION=20 scripts/bench/pgbouncer.sh
#
# Needs the PostgreSQL 15 server binaries, pgbouncer and wrk (apt-get install
# pgbouncer wrk). Loopback only; everything it starts is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-10}
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x /usr/sbin/pgbouncer ] || { echo "pgbouncer is missing: apt-get install pgbouncer" >&2; exit 1; }

cargo build --release -q -p chat-server
BIN=$PWD/target/release/chat-server
WORK=$(mktemp -d)
. scripts/bench/common.sh
BOUNCER_PID=
trap '[ -n "$BOUNCER_PID" ] && kill "$BOUNCER_PID" 2>/dev/null; bench_cleanup' EXIT
start_postgres
BOUNCER_PORT=$(free_port)
echo '"postgres" ""' > "$WORK/users.txt"
cat > "$WORK/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/users.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 500
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
[ "$(id -u)" = 0 ] && chown postgres "$WORK"/users.txt "$WORK"/pgbouncer.ini
if [ "$(id -u)" = 0 ]; then
  setpriv --reuid=postgres --regid=postgres --init-groups /usr/sbin/pgbouncer "$WORK/pgbouncer.ini" 2>/dev/null &
else
  /usr/sbin/pgbouncer "$WORK/pgbouncer.ini" 2>/dev/null &
fi
BOUNCER_PID=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$BOUNCER_PORT") 2>/dev/null && break; sleep 0.1; done

export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_OBJECT_STORE_URL=memory:// CHAT_RATE_LIMIT_POSTS=0 CHAT_RATE_LIMIT_AUTH=0 \
  CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) CHAT_DATABASE_MAX_CONNECTIONS=16 \
  CHAT_MAX_MESSAGES_PER_THREAD=0
FIRST=1
measure() {
  local label=$1 db=$2; shift 2
  psql -q -X "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c "CREATE DATABASE $db"
  local port; port=$(free_port)
  env "$@" CHAT_BIND=127.0.0.1:$port "$BIN" serve 2>"$WORK/server-$db.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  write_post_script "$port" 16 "$FIRST"
  FIRST=$((FIRST + 16))
  echo "== $label: posts, 16 connections over 16 threads, ${DURATION}s"
  wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$port" | grep -E 'Requests/sec|Latency|Non-2xx'
  # Reads: the first page of the same threads.
  sed -e 's/wrk.method = "POST"/wrk.method = "GET"/' -e '/wrk.body/d' "$WORK/post.lua" > "$WORK/read.lua"
  echo "== $label: first pages, 16 connections, ${DURATION}s"
  wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/read.lua" "http://127.0.0.1:$port" | grep -E 'Requests/sec|Latency|Non-2xx'
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
}
measure "direct" direct CHAT_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/direct"
measure "through pgbouncer (transaction mode)" pooled \
  CHAT_DATABASE_URL="postgres://postgres@127.0.0.1:$BOUNCER_PORT/pooled" \
  CHAT_DATABASE_POOLER=transaction \
  CHAT_DATABASE_MIGRATION_URL="postgres://postgres@127.0.0.1:$PG_PORT/pooled"
