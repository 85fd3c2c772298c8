#!/usr/bin/env bash
# What keeping the master key in KMS costs a post (issue 22). wrk posts text messages to
# the PostgreSQL store, 16 connections, against a fresh chat-server and database each,
# in one run:
#   1. CHAT_MASTER_KEY (the key in the environment), 16 threads;
#   2. CHAT_KMS_KEY_ID against moto's KMS server on loopback, the same 16 threads,
#      their keys cached (warm): goal >= 0.9 of 1;
#   3. KMS cold: a fresh server and $COLD threads opened beforehand, posted to in
#      turn once each, so that every post needs its thread's key from KMS; prints the
#      rate and KMS's requests per post (chat_kms_requests_total).
#
#   scripts/bench/kms.sh
#   DURATION=20 COLD=4000 scripts/bench/kms.sh
#
# Needs the PostgreSQL 15 server binaries, wrk and moto (pip install 'moto[server]').
# Loopback only; everything it starts is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-10}
COLD=${COLD:-2000}
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v moto_server >/dev/null || { echo "moto is missing: pip install 'moto[server]'" >&2; exit 1; }

cargo build --release -q -p chat-server
BIN=$PWD/target/release/chat-server
WORK=$(mktemp -d)
. scripts/bench/common.sh
MOTO_PID=
trap '[ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; bench_cleanup' EXIT
start_postgres
MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
MOTO_PID=$!
for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break; sleep 0.1; done
export AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$MOTO_PORT
KEY_ID=$(python3 -c "import boto3; print(boto3.client('kms', region_name='eu-west-1', endpoint_url='http://127.0.0.1:$MOTO_PORT').create_key()['KeyMetadata']['KeyId'])")

export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_OBJECT_STORE_URL=memory:// CHAT_RATE_LIMIT_POSTS=0 CHAT_RATE_LIMIT_AUTH=0 \
  CHAT_DATABASE_MAX_CONNECTIONS=16 CHAT_MAX_MESSAGES_PER_THREAD=0
FIRST=1
serve() { # database, then variables
  local db=$1; shift
  psql -q -X "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c "CREATE DATABASE $db"
  PORT=$(free_port)
  env "$@" CHAT_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db" CHAT_BIND=127.0.0.1:$PORT \
    "$BIN" serve 2>"$WORK/server-$db.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
}
stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
kms_requests() {
  curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^chat_kms_requests_total/ {s += $2} END {print s + 0}'
}
posts() { wrk "$@" -s "$WORK/post.lua" "http://127.0.0.1:$PORT" | grep -E 'Requests/sec|requests in'; }

serve local CHAT_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
write_post_script "$PORT" 16 "$FIRST"; FIRST=$((FIRST + 16))
echo "== CHAT_MASTER_KEY: 16 threads, 16 connections, ${DURATION}s"
posts -t2 -c16 -d"${DURATION}s"
stop

serve warm CHAT_KMS_KEY_ID="$KEY_ID"
write_post_script "$PORT" 16 "$FIRST"; FIRST=$((FIRST + 16))
before=$(kms_requests)
echo "== KMS, warm: the same 16 threads, 16 connections, ${DURATION}s"
posts -t2 -c16 -d"${DURATION}s"
echo "KMS requests during the run: $(( $(kms_requests) - before ))"
stop

serve cold CHAT_KMS_KEY_ID="$KEY_ID"
echo "(opening $COLD threads)"
write_post_script "$PORT" "$COLD" "$FIRST"; FIRST=$((FIRST + COLD))
stop
# A fresh process over the same database: no key in memory.
PORT=$(free_port)
CHAT_KMS_KEY_ID="$KEY_ID" CHAT_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/cold" CHAT_BIND=127.0.0.1:$PORT \
  "$BIN" serve 2>"$WORK/server-cold2.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
before=$(kms_requests)
echo "== KMS, cold: $COLD threads in turn (one wrk thread, so each once), 16 connections, 5s"
out=$(wrk -t1 -c16 -d5s -s "$WORK/post.lua" "http://127.0.0.1:$PORT")
echo "$out" | grep -E 'Requests/sec|requests in'
sent=$(echo "$out" | awk '/requests in/ {print $1}')
used=$(( $(kms_requests) - before ))
echo "KMS requests: $used for $sent posts ($(python3 -c "print(f'{$used/$sent:.2f}')") per post)"
[ "$sent" -lt "$COLD" ] || echo "(note: more posts than threads: some were warm)"
stop
