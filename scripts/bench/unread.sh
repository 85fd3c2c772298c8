#!/usr/bin/env bash
# What unread escalation (CHAT_UNREAD_ESCALATION_SECS) costs posts on PostgreSQL: wrk
# posts text messages (16 connections, to 1000 threads in turn) to a server whose webhooks go to a
# host that answers 200 at once, with escalation off, then on with a delay longer
# than the run (what a post pays to arm its thread's check, which is all it pays
# while nobody needs escalating), then on with a 5 s delay and nobody reading (every
# message escalates: the checks run and queue a webhook per message during the load);
# alternating, ROUNDS times. Prints posts/s, p99, the ratio to "off" in the same round,
# the writes to chat_unread_checks per post, the message_unread webhooks queued, and
# the run's messages old enough to escalate when it ended (at most that many may be).
#
#   scripts/bench/unread.sh              # 15 s per run, 2 rounds
#   DURATION=20 ROUNDS=3 THREADS=100 scripts/bench/unread.sh
#
# Needs PostgreSQL 15 server binaries, wrk and python3. Loopback only; everything it
# starts is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=16
# Many threads, so that a message outlives the 5 s delay under the cap of 100.
THREADS=${THREADS:-1000}
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d)
. scripts/bench/common.sh
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; bench_cleanup' EXIT
wrk_setup

start_postgres
HOST=$(free_port)
python3 - "$HOST" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PIDS+=($!)
sleep 0.5

# A pool a little larger than wrk's connections: the checks and the job runner need
# connections of their own while every post holds one.
export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_RATE_LIMIT_POSTS=0 CHAT_DATABASE_URL=$PG_URL CHAT_DATABASE_MAX_CONNECTIONS=$((CONNECTIONS + 8)) \
  CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64) \
  CHAT_WEBHOOK_URL=http://127.0.0.1:$HOST/hook

# Inserts + updates chat_unread_checks has seen (0 before its first row).
check_writes() {
  sleep 1.5 # the statistics reach the view within a second
  psql -X -q -A -t "$PG_URL" -c "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables WHERE relname = 'chat_unread_checks'"
}
# message_unread webhooks the server queued (its /metrics).
escalated() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk '/^chat_messages_unread_escalated_total/ {n += $2} END {print n + 0}'
}

NEXT_REQUEST=1
run() { # $1: CHAT_UNREAD_ESCALATION_SECS (0: off)
  local port; port=$(free_port)
  CHAT_BIND=127.0.0.1:$port CHAT_UNREAD_ESCALATION_SECS=$1 "$BIN" serve 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  write_post_script "$port" "$THREADS" "$NEXT_REQUEST"
  NEXT_REQUEST=$((NEXT_REQUEST + THREADS))
  psql -X -q "$PG_URL" -c 'DELETE FROM chat_jobs' -c 'VACUUM ANALYZE' >/dev/null
  local writes_before; writes_before=$(check_writes)
  local started; started=$(date +%s.%N)
  local out; out=$(wrk -t2 -c$CONNECTIONS -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$port")
  local escalations; escalations=$(escalated "$port")
  # The messages of this run old enough to escalate by now: the most there can be.
  local of_age=-
  [ "$1" != 0 ] && of_age=$(psql -X -q -A -t "$PG_URL" -c "SELECT count(*) FROM chat_messages WHERE created_at > to_timestamp($started) AND created_at <= now() - interval '$1 s'")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  # Say so when a check failed (the log names the error, never content).
  grep -m3 -E 'WARN|ERROR' "$WORK/server.log" >&2 || true
  local rate p99 posts errors writes
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  posts=$(echo "$out" | awk '/requests in/ {print $1}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  writes=$(( $(check_writes) - writes_before ))
  echo "$rate $p99 ${errors:-0} $posts $writes $escalations $of_age"
}

printf '%-6s %-22s %10s %9s %8s %8s %14s %10s %8s\n' round escalation posts/s p99 non-2xx ratio writes/post queued "of age"
for round in $(seq "$ROUNDS"); do
  base=
  for setting in 0 3600 5; do
    # In this shell, not a subshell: a run that fails stops its server on exit.
    run "$setting" >"$WORK/run.out"
    read -r rate p99 err posts writes queued of_age <"$WORK/run.out"
    [ -z "$base" ] && base=$rate
    label=off; [ "$setting" != 0 ] && label="on, ${setting} s"
    ratio=$(python3 -c "print(f'{$rate / $base:.2f}')")
    per=$(python3 -c "print(f'{$writes / max($posts, 1):.5f}')")
    printf '%-6s %-22s %10s %9s %8s %8s %14s %10s %8s\n' "$round" "$label" "$rate" "$p99" "$err" "$ratio" "$per ($writes)" "$queued" "$of_age"
  done
done
