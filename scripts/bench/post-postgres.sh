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
WARMUP=${WARMUP:-5}
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d)
. scripts/bench/common.sh
trap bench_cleanup EXIT
wrk_setup

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
fresh_start() { psql -X -q "$DB" -c 'VACUUM ANALYZE' -c 'CHECKPOINT' -c 'SELECT pg_stat_statements_reset()' >/dev/null; }
psql -X -q "$DB" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
# Both phases start from the same tables: the threads at their cap of messages, and
# statistics that say so. Measured from empty tables, the API phase ran with the plans
# chat_append_batch() cached while they were empty (sequential scans, as `perf` showed,
# until autovacuum's first pass), while pgbench found them full.
echo "== warm-up: ${WARMUP}s of posts through the API, not measured"
wrk -t2 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$WORK/post.lua" "http://127.0.0.1:$PORT" >/dev/null
fresh_start
echo "== API: POST text messages, $CONNECTIONS connections, ${DURATION}s"
SERVER_BEFORE=$(cpu_ticks "$SERVER_PID"); PG_BEFORE=$(postgres_cpu_ticks)
wrk -t"$(( CONNECTIONS < 2 ? 1 : 2 ))" -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$PORT" | tee "$WORK/wrk.out"
SERVER_CPU=$(( $(cpu_ticks "$SERVER_PID") - SERVER_BEFORE ))
PG_CPU=$(( $(postgres_cpu_ticks) - PG_BEFORE ))
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
# What runs inside chat_append_batch(), per post: where PostgreSQL's time goes, and how
# many buffers each statement touches (the same work shows the same count in both phases).
nested_statements() {
  echo "== inside the function (calls per post, mean ms, buffers per call, query)"
  psql -X -q -A -F $'\t' -t "$DB" -c "SELECT round(calls / $1::numeric, 2), round((total_exec_time / calls)::numeric, 3),
         round((shared_blks_hit + shared_blks_read)::numeric / calls, 1), left(regexp_replace(query, '\s+', ' ', 'g'), 100)
       FROM pg_stat_statements WHERE NOT toplevel AND calls >= $1 / 2 ORDER BY total_exec_time DESC"
}
API_POSTS=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
echo "== statements chat-server sent per post (calls per post, mean ms, query)"
client_statements "$API_POSTS" | tee "$WORK/api.statements" | awk -F'\t' '$1 >= 0.01' | cut -c1-160
nested_statements "$API_POSTS" | tee "$WORK/api.nested"

# The baseline: pgbench sends exactly those statements per transaction (checked below
# against pg_stat_statements), prepared, at the same concurrency, each client posting to
# the threads in turn as chat-server's pool does (`spread`). Then, for reference, the
# layout pgbench would give itself with a thread per client (`own`), which chat-server's
# traffic cannot have (common.sh, write_pgbench_post_script).
# Its backends end with it, and their CPU is the postmaster's once it has reaped them.
backends_gone() { for _ in $(seq 50); do [ "$(ps -o pid= --ppid "$(head -1 "$WORK/data/postmaster.pid")" | wc -l)" -le "$1" ] && return; sleep 0.1; done; }
SUMMARY=
for LAYOUT in spread own; do
  write_pgbench_post_script "$THREADS" "$CONNECTIONS" "$LAYOUT"
  fresh_start
  echo "== pgbench ($LAYOUT): the same statements, $CONNECTIONS connections, ${DURATION}s"
  PG_BEFORE=$(postgres_cpu_ticks); CHILDREN=$(ps -o pid= --ppid "$(head -1 "$WORK/data/postmaster.pid")" | wc -l)
  pgbench_post "$CONNECTIONS" "$DURATION" | tee "$WORK/pgbench.out"
  backends_gone "$CHILDREN"
  PGBENCH_PG_CPU=$(( $(postgres_cpu_ticks) - PG_BEFORE ))
  PG_RATE=$(awk '/^tps = / {print $3}' "$WORK/pgbench.out")
  PG_TX=$(awk '/actually processed/ {print $NF}' "$WORK/pgbench.out")
  if grep -q "aborted" "$WORK/pgbench.out"; then echo "pgbench clients aborted: the run is invalid" >&2; exit 1; fi
  echo "== statements pgbench sent per transaction"
  client_statements "$PG_TX" | tee "$WORK/$LAYOUT.statements" | awk -F'\t' '$1 >= 0.01' | cut -c1-160
  nested_statements "$PG_TX" | tee "$WORK/$LAYOUT.nested"
  # Like for like: every statement sent at least once per post in one phase is sent in
  # the other, with the same text, as often. The exceptions, all visible in post.sql:
  # pgbench builds the id array in the statement (its variables are numbers) and stamps
  # the message with now() (its variables do not change by themselves); `spread` takes
  # the thread's lock first; pg_stat_statements does not count BEGIN and COMMIT sent as
  # prepared statements, as pgbench -M prepared sends them (chat-server sends them as
  # simple queries). And the work: inside the function, each statement touches as many
  # buffers per call in both phases (within a quarter), or the data differ.
  python3 - "$WORK/api.statements" "$WORK/$LAYOUT.statements" "$WORK/api.nested" "$WORK/$LAYOUT.nested" "$LAYOUT" <<'PY'
import itertools, re, sys
def load(path):
    rows, ms = {}, {}
    for line in open(path):
        per, mean, query = line.rstrip("\n").split("\t", 2)
        # pgbench's own expressions in its statement stand for one parameter each.
        query = re.sub(r"\(\$\d+ \|\| (\$\d+) \|\| \$\d+\)::bigint\[\]", r"\1", query)
        query = re.sub(r"ARRAY\[\(extract\(\$\d+ FROM clock_timestamp\(\)\) \* \$\d+\)::bigint \* \$\d+ \+ \$\d+\]", "$0", query)
        query = query.replace("ARRAY[now()]", "$0")
        numbers = itertools.count(1)
        query = re.sub(r"\$\d+", lambda _: f"${next(numbers)}", query)
        if query not in ("BEGIN", "COMMIT", "SELECT pg_advisory_xact_lock($1)"):
            rows[query], ms[query] = float(per), float(per) * float(mean)
    return rows, ms
(api, api_ms), (bench, _) = load(sys.argv[1]), load(sys.argv[2])
common = {q for q in api if api[q] >= 0.5} | {q for q in bench if bench[q] >= 0.5}
rest = [q for q in api if q not in common]
# What the baseline leaves out: the rarer statements (a post's audit row goes in a
# batch insert with others), priced by PostgreSQL's own execution time.
print(f"left out of the baseline: {sum(api[q] for q in rest):.2f} statements per post "
      f"taking {sum(api_ms[q] for q in rest):.3f} ms per post, against "
      f"{sum(api_ms[q] for q in common):.3f} ms for the ones it sends")
bad = [q for q in common if abs(api.get(q, 0) - bench.get(q, 0)) > 0.1]
for q in bad:
    print(f"differs: api {api.get(q, 0)} pgbench {bench.get(q, 0)} per post: {q[:120]}", file=sys.stderr)
if bad:
    sys.exit("the baseline does not send the API's statements: the run is invalid")
def buffers(path):
    return {q: float(b) for line in open(path) if line[0].isdigit()
            for per, mean, b, q in [line.rstrip("\n").split("\t", 3)]}
api_b, bench_b = buffers(sys.argv[3]), buffers(sys.argv[4])
unlike = [q for q in api_b if max(api_b[q], bench_b.get(q, 0)) > 4
          and abs(api_b[q] - bench_b.get(q, 0)) > 0.25 * api_b[q]]
for q in unlike:
    print(f"buffers per call: API {api_b[q]}, pgbench {bench_b.get(q, 0)}: {q[:80]}")
if sys.argv[5] == "spread" and unlike:
    sys.exit("the baseline does not do the API's work: the run is invalid")
print(f"like for like ({sys.argv[5]}): the same {len(common)} statements per post, in a transaction, "
      + ("touching as many buffers" if not unlike else "but not the same work"))
PY
  SUMMARY+="$LAYOUT $PG_RATE $PGBENCH_PG_CPU $PG_TX "
done

python3 - "$API_RATE" "$SERVER_CPU" "$PG_CPU" "$API_POSTS" "$(getconf CLK_TCK)" $SUMMARY <<'PY'
import sys
api, tick = float(sys.argv[1]), int(sys.argv[5])
server_s, pg_s, posts = int(sys.argv[2]) / tick, int(sys.argv[3]) / tick, int(sys.argv[4])
print(f"\nCPU per post: chat-server {server_s / posts * 1e6:.0f} µs, PostgreSQL {pg_s / posts * 1e6:.0f} µs")
rest = sys.argv[6:]
for layout, rate, cpu, tx in zip(*[iter(rest)] * 4):
    note = "goal >= 0.70" if layout == "spread" else "for reference: a layout the API cannot have"
    print(f"pgbench ({layout}): {float(rate):.0f}/s, PostgreSQL {int(cpu) / tick / int(tx) * 1e6:.0f} µs per transaction; "
          f"API {api:.0f} posts/s, ratio {api / float(rate):.2f} ({note})")
PY
