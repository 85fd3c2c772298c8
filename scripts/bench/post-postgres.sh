#!/usr/bin/env bash
# Posts text messages through the API to the PostgreSQL store with wrk, then has
# pgbench send exactly the statements chat-server sent per post (as pg_stat_statements
# recorded them during the API phase; the script checks that both phases sent the same
# statements as often) into the same server at the same concurrency, and prints both
# rates and their ratio (goal: >= 0.7).
#
#   scripts/bench/post-postgres.sh            # 20 s each, 16 connections, 16 threads
#   DURATION=30 CONNECTIONS=32 scripts/bench/post-postgres.sh
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
WORK=$(mktemp -d)
. scripts/bench/common.sh
trap bench_cleanup EXIT

# PostgreSQL with its default durability: both sides pay the same commit cost.
start_postgres -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all
DB=$PG_URL

PORT=$(free_port)
export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 CHAT_DATABASE_URL=$DB \
  CHAT_BIND=127.0.0.1:$PORT CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) RUST_LOG=warn \
  CHAT_RATE_LIMIT_POSTS=0 CHAT_DATABASE_MAX_CONNECTIONS=$CONNECTIONS
"$BIN" serve 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# $THREADS threads, and wrk's post.lua posting a 120-character text to them in turn.
write_post_script "$PORT" "$THREADS" 1

# Each phase starts from a vacuumed table and a checkpoint: the activity updates leave
# dead index entries behind (the thread rows' indexes change with every post), which
# would otherwise slow whichever phase runs second.
fresh_start() { psql -X -q "$DB" -c 'VACUUM' -c 'CHECKPOINT' -c 'SELECT pg_stat_statements_reset()' >/dev/null; }
psql -X -q "$DB" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
fresh_start
echo "== API: POST text messages, $CONNECTIONS connections, ${DURATION}s"
SERVER_BEFORE=$(cpu_ticks "$SERVER_PID"); PG_PIDS_BEFORE=$(postgres_pids); PG_BEFORE=$(cpu_ticks $PG_PIDS_BEFORE)
wrk -t"$(( CONNECTIONS < 2 ? 1 : 2 ))" -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$PORT" | tee "$WORK/wrk.out"
# Backends that existed before the phase and the ones it opened (none ended meanwhile).
SERVER_CPU=$(( $(cpu_ticks "$SERVER_PID") - SERVER_BEFORE ))
PG_CPU=$(( $(cpu_ticks $(echo $PG_PIDS_BEFORE $(postgres_pids) | tr ' ' '\n' | sort -u)) - PG_BEFORE ))
if grep -q "Non-2xx" "$WORK/wrk.out"; then echo "non-2xx answers: the run is invalid" >&2; exit 1; fi
API_RATE=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
# The statements the clients sent, top level only (what chat-server and pgbench send,
# not what runs inside chat_append_batch()), per post or per pgbench transaction.
client_statements() {
  psql -X -q -A -F $'\t' -t "$DB" -c "SELECT round(calls / $1::numeric, 2), round((total_exec_time / calls)::numeric, 3),
         regexp_replace(query, '\s+', ' ', 'g')
       FROM pg_stat_statements WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = 'chat')
         AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC, query"
}
API_POSTS=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
echo "== statements chat-server sent per post (calls per post, mean ms, query)"
client_statements "$API_POSTS" | tee "$WORK/api.statements" | awk -F'\t' '$1 >= 0.01' | cut -c1-160

# The baseline: pgbench sends exactly those statements per transaction (checked below
# against pg_stat_statements), prepared, one thread per client as the API's turns keep
# one append per thread in flight (common.sh, write_pgbench_post_script).
write_pgbench_post_script "$THREADS" "$CONNECTIONS"
fresh_start
echo "== pgbench: the same statements, $CONNECTIONS connections, ${DURATION}s"
pgbench_post "$CONNECTIONS" "$DURATION" | tee "$WORK/pgbench.out"
PG_RATE=$(awk '/^tps = / {print $3}' "$WORK/pgbench.out")
PG_TX=$(awk '/actually processed/ {print $NF}' "$WORK/pgbench.out")
echo "== statements pgbench sent per transaction"
client_statements "$PG_TX" | tee "$WORK/pgbench.statements" | awk -F'\t' '$1 >= 0.01' | cut -c1-160
# Like for like: every statement sent at least once per post in one phase is sent in the
# other, with the same text, as often. Two exceptions, both visible in post.sql: pgbench
# builds the one-element id array in the statement (its variables are numbers), and
# pg_stat_statements does not count BEGIN and COMMIT sent as prepared statements, as
# pgbench -M prepared sends them (chat-server sends them as simple queries).
python3 - "$WORK/api.statements" "$WORK/pgbench.statements" <<'PY'
import re, sys
def load(path):
    rows = {}
    for line in open(path):
        per, _, query = line.rstrip("\n").split("\t", 2)
        query = re.sub(r"\(\$11 \|\| \$2 \|\| \$12\)::bigint\[\]", "$2", query)
        if query not in ("BEGIN", "COMMIT"):
            rows[query] = float(per)
    return rows
api, bench = load(sys.argv[1]), load(sys.argv[2])
common = {q for q in api if api[q] >= 0.5} | {q for q in bench if bench[q] >= 0.5}
bad = [q for q in common if abs(api.get(q, 0) - bench.get(q, 0)) > 0.1]
for q in bad:
    print(f"differs: api {api.get(q, 0)} pgbench {bench.get(q, 0)} per post: {q[:120]}", file=sys.stderr)
if bad:
    sys.exit("the baseline does not send the API's statements: the run is invalid")
print(f"like for like: the same {len(common)} statements per post in both phases, "
      "in a transaction (BEGIN and COMMIT)")
PY

python3 - "$API_RATE" "$PG_RATE" "$SERVER_CPU" "$PG_CPU" "$(getconf CLK_TCK)" "$DURATION" <<'PY'
import sys
api, pg = float(sys.argv[1]), float(sys.argv[2])
server_s, pg_s = (int(t) / int(sys.argv[5]) for t in sys.argv[3:5])
posts = api * float(sys.argv[6])
print(f"\nAPI phase CPU per post: chat-server {server_s / posts * 1e6:.0f} µs, "
      f"PostgreSQL {pg_s / posts * 1e6:.0f} µs")
print(f"API posts/s: {api:.0f}   pgbench, the same statements: {pg:.0f}/s   ratio: {api / pg:.2f} (goal >= 0.70)")
PY
