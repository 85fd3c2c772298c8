#!/usr/bin/env bash
# Does sharing the cores make PostgreSQL spend more CPU per post? (issue 21, goal 1)
# pgbench sends the statements of one post (as post-postgres.sh's baseline does) for
# 10 s, twice alone and twice beside a shell busy loop that takes a core's share, and
# prints the rate and PostgreSQL's CPU per transaction (its processes, from 1 s to 9 s).
#
#   scripts/bench/pgbench-contended.sh
#
# Needs the PostgreSQL 15 server binaries and pgbench. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d)
source scripts/bench/common.sh
trap 'kill $(jobs -p) 2>/dev/null; bench_cleanup' EXIT
start_postgres
DB=$PG_URL
cargo build --release -q -p chat-server
BIN=$PWD/target/release/chat-server
PORT=$(free_port)
export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 CHAT_DATABASE_URL=$DB CHAT_BIND=127.0.0.1:$PORT CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) RUST_LOG=warn
$BIN serve 2>/dev/null & SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
write_post_script $PORT 16 1
kill $SERVER_PID; wait $SERVER_PID 2>/dev/null || true; SERVER_PID=
NONCE=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'); CIPHER=$(head -c 136 /dev/urandom | od -An -tx1 | tr -d ' \n')
FIRST=$(psql -X -q -A -t "$DB" -c "SELECT min(id) FROM chat_threads")
NOW=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
cpu_ticks() { local t=0 f; for p in "$@"; do read -r -a f < "/proc/$p/stat" 2>/dev/null && t=$((t + f[13] + f[14])); done; echo $t; }
pg_pids() { local pm; pm=$(head -1 "$WORK/data/postmaster.pid"); echo "$pm" $(ps -o pid= --ppid "$pm"); }
for mode in alone busy alone busy; do
  BASE=$(psql -X -q -A -t "$DB" -c "SELECT coalesce(max(id),0) + 1 FROM chat_messages")
  cat > $WORK/post.sql <<SQL
\set thread $FIRST + (:client_id % 16)
\set seq :seq + 1
\set id $BASE + :seq * 16 + :client_id
\set limit 1
\set keep 100
BEGIN;
SELECT "chat_threads"."id", "chat_threads"."request_id", "chat_threads"."admin_id", "chat_threads"."client_id", "chat_threads"."status", "chat_threads"."opened_at", "chat_threads"."closed_at", "chat_threads"."staff_ids" FROM "chat_threads" WHERE ("chat_threads"."id" = :thread) LIMIT :limit;
SELECT chat_append_batch(:thread, ('{' || :id || '}')::bigint[], :senders, :types, :nonces, :ciphertexts, :created, :keys, :expired, :keep);
COMMIT;
SQL
  psql -X -q "$DB" -c VACUUM -c CHECKPOINT
  [ $mode = busy ] && { (while :; do :; done) & BUSY=$!; }
  # pgbench's clients open their backends at start: measure them after it ends, via totals
  P0=$(pg_pids); T0=$(cpu_ticks $P0)
  pgbench -n -M prepared -c 16 -j 2 -T 10 -D seq=0 -D senders='{1}' -D types='{text}' -D "nonces={\"\\\\x$NONCE\"}" \
    -D "ciphertexts={\"\\\\x$CIPHER\"}" -D "created={$NOW}" -D keys='{NULL}' \
    -D "expired=$(date -u -d '-24 hours' +%Y-%m-%dT%H:%M:%S.%6NZ)" -f $WORK/post.sql "$DB" > $WORK/pb.out 2>&1 &
  PB=$!; sleep 1; P1=$(pg_pids); T1=$(cpu_ticks $P1); sleep 8; T2=$(cpu_ticks $P1); wait $PB
  [ $mode = busy ] && { kill $BUSY; wait $BUSY 2>/dev/null || true; }
  TX=$(awk '/actually processed/ {print $NF}' $WORK/pb.out); TPS=$(awk '/^tps/ {print $3}' $WORK/pb.out)
  echo "$mode: $TPS tx/s; PostgreSQL CPU per transaction (from 1 s in): $(python3 -c "print(round(($T2 - $T1) / $(getconf CLK_TCK) / ($TPS * 8) * 1e6))") µs"
done
