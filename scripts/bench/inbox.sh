#!/usr/bin/env bash
# The inbox of a nurse on the care team of 10,000 threads (2,000 of them open), among
# 50,000 threads of other staff, on PostgreSQL: wrk asks for the first page with 8
# connections and prints the latency distribution (goal: p99 <= 5 ms), then the plan
# PostgreSQL ran for the page (auto_explain of one request: it must read an index).
#
#   scripts/bench/inbox.sh                    # 20 s, 8 connections, a pool of 4
#   DURATION=30 POOL=8 scripts/bench/inbox.sh
#
# POOL is CHAT_DATABASE_MAX_CONNECTIONS. On this 2-core machine 4 (two backends per
# core) keeps PostgreSQL from time-slicing between more busy backends than cores,
# which is what makes the tail (docs/BENCHMARKS.md has both).
#
# The threads are seeded with SQL in the service's own schema (the API would take
# minutes for 60,000 registrations); the requests measured go through the API.
# Needs the PostgreSQL 15 server binaries and wrk. Loopback only; everything it starts
# is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-8}
POOL=${POOL:-4}
MINE=${MINE:-10000}
OTHERS=${OTHERS:-50000}
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d)
. scripts/bench/common.sh
trap bench_cleanup EXIT
wrk_setup

start_postgres -c shared_preload_libraries=auto_explain \
  -c auto_explain.log_analyze=on -c auto_explain.log_buffers=on \
  -c auto_explain.log_nested_statements=on
PORT=$(free_port)
export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) CHAT_DATABASE_URL=$PG_URL \
  CHAT_BIND=127.0.0.1:$PORT CHAT_DATABASE_MAX_CONNECTIONS=$POOL
"$BIN" serve 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

# Nurse 11 is on MINE requests, every fifth one open; the other staff (ids 1000+) share
# OTHERS more. Each open thread of the nurse has three messages from its client, read
# by the client and, on every other thread, by the nurse.
psql -q -X "$PG_URL" <<SQL
INSERT INTO service_requests (id, client_id, staff_ids)
  SELECT g, 100000 + g, CASE WHEN g <= $MINE THEN ARRAY[11::bigint] ELSE ARRAY[1000 + g % 500] END
  FROM generate_series(1, $MINE + $OTHERS) g;
INSERT INTO chat_threads (request_id, client_id, status, opened_at, closed_at, staff_ids, activity_at)
  SELECT r.id, r.client_id,
         CASE WHEN r.id % 5 = 0 THEN 'open' ELSE 'closed' END,
         now() - make_interval(secs => r.id),
         CASE WHEN r.id % 5 = 0 THEN NULL ELSE now() END,
         r.staff_ids, now() - make_interval(secs => r.id)
  FROM service_requests r;
INSERT INTO chat_inbox (user_id, thread_id, status, activity_at)
  SELECT client_id, id, status, activity_at FROM chat_threads
  UNION ALL
  SELECT s, id, status, activity_at FROM chat_threads, unnest(staff_ids) s;
INSERT INTO chat_messages (id, thread_id, sender_id, type, nonce, ciphertext, created_at)
  SELECT t.id * 10 + n, t.id, t.client_id, 'text', '\x000000000000000000000000',
         '\x00112233445566778899aabbccddeeff0011', t.activity_at
  FROM chat_threads t, generate_series(1, 3) n
  WHERE t.status = 'open' AND 11 = ANY (t.staff_ids);
UPDATE chat_threads SET last_message_id = id * 10 + 3, last_message_at = activity_at
  WHERE status = 'open' AND 11 = ANY (staff_ids);
-- Read markers: every client's on its thread, and the nurse's on every other thread.
INSERT INTO chat_reads (thread_id, user_id, up_to)
  SELECT id, client_id, id * 10 + 3 FROM chat_threads
  UNION ALL
  SELECT id, 11, id * 10 + 3 FROM chat_threads WHERE 11 = ANY (staff_ids) AND request_id % 2 = 0;
VACUUM ANALYZE;
SQL
echo "seeded: $(psql -qAtX "$PG_URL" -c "SELECT count(*) FROM chat_threads") threads, $(psql -qAtX "$PG_URL" -c "SELECT count(*) FROM chat_inbox") inbox rows, nurse 11 on $(psql -qAtX "$PG_URL" -c "SELECT count(*) FILTER (WHERE status = 'open') || ' open of ' || count(*) FROM chat_inbox WHERE user_id = 11")"

NURSE=$("$BIN" token --sub 11 --role nurse --ttl 3600)
URL="http://127.0.0.1:$PORT/api/chat/threads"
FIRST=$(curl -sf "$URL" -H "Authorization: Bearer $NURSE")
echo "first page: $(echo "$FIRST" | python3 -c 'import json,sys; p=json.load(sys.stdin); t=p["threads"]; print(len(t), "threads, unread", sum(x["unread"] for x in t), ", next cursor", bool(p["nextCursor"]))')"

cat > "$WORK/inbox.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $NURSE"
LUA
echo "== wrk: GET /api/chat/threads, $CONNECTIONS connections, ${DURATION}s, a pool of $POOL"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/inbox.lua" "$URL" | sed -n '/Latency Distribution/,/Requests\/sec/p'

echo "== the plan of one first page (auto_explain)"
psql -q -X "$PG_URL" -c "ALTER SYSTEM SET auto_explain.log_min_duration = 0" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
START=$(wc -l < "$WORK/pg.log")
curl -sf "$URL" -H "Authorization: Bearer $NURSE" >/dev/null
sleep 0.5
psql -q -X "$PG_URL" -c "ALTER SYSTEM SET auto_explain.log_min_duration = -1" -c "SELECT pg_reload_conf()" >/dev/null
# The page's own query, nested in chat_inbox_page(): its text, then its plan.
[ -n "${PLAN_LOG:-}" ] && tail -n +"$((START + 1))" "$WORK/pg.log" > "$PLAN_LOG"
tail -n +"$((START + 1))" "$WORK/pg.log" \
  | awk '/LOG:|CONTEXT:/ { keep = 0 } /WHERE i.user_id = p_reader AND i.status = p_status/ { keep = 1 } keep' \
  | grep -v '^\s*$' | head -40
