#!/usr/bin/env bash
# What webhooks cost a post: wrk posts text messages (16 connections over 16 threads,
# in-memory store) to a server without webhooks, then to one whose CHAT_WEBHOOK_URL
# is a host that accepts connections and never answers, then to one whose host
# answers 200 at once; each with webhook batches (the default) and without; alternating,
# ROUNDS times. Prints posts/s and p99 of each and the ratios to the run without
# webhooks in the same round (goals: a host that is down does not slow a post; posts
# with webhooks on at >= 0.9 of the rate without, with a host answering every delivery).
#
#   scripts/bench/webhooks.sh          # 10 s per run, 2 rounds
#   DURATION=20 ROUNDS=3 scripts/bench/webhooks.sh
#
# Needs wrk and python3. Loopback only; everything it starts is stopped on exit.
set -euo pipefail
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=16
THREADS=16
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d)
. scripts/bench/common.sh
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; bench_cleanup' EXIT
wrk_setup

# A host that never answers (accepts, reads, says nothing) and one that answers 200.
SILENT=$(free_port)
python3 - "$SILENT" <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = []
while True:
    c, _ = s.accept(); held.append(c)
PY
PIDS+=($!)
QUICK=$(free_port)
python3 - "$QUICK" <<'PY' &
import http.server, sys
import json, threading
seen = {"deliveries": 0, "events": 0}
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            seen["deliveries"] += 1
            seen["events"] += len(json.loads(body)["events"])
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):  # the counts so far, then zero
        with lock:
            out = f'{seen["deliveries"]} {seen["events"]}'.encode()
            seen["deliveries"] = seen["events"] = 0
        self.send_response(200); self.send_header("Content-Length", str(len(out))); self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PIDS+=($!)
sleep 0.5

export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
  CHAT_RATE_LIMIT_POSTS=0 CHAT_MESSAGE_STORE=memory

run() { # $1: label, $2: webhook URL or empty, $3: CHAT_WEBHOOK_BATCH_MS
  local port; port=$(free_port)
  CHAT_BIND=127.0.0.1:$port CHAT_WEBHOOK_URL=$2 CHAT_WEBHOOK_BATCH_MS=$3 "$BIN" serve 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  write_post_script "$port" "$THREADS" 1
  local out; out=$(wrk -t2 -c$CONNECTIONS -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$port")
  local rate p99 errors
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  echo "$1 $rate $p99 ${errors:-0}"
}
# What the quick host received since it was last asked: "deliveries events".
received() { curl -sf "http://127.0.0.1:$QUICK/counts"; }

# Each row: the host, and whether events leave in batches (CHAT_WEBHOOK_BATCH_MS=250,
# the default) or each alone (0); for the quick host, the deliveries it received and
# the events in them (the runs' in-flight deliveries, ended with the server, are not).
printf '%-6s %-22s %12s %10s %8s %8s %s\n' round webhooks posts/s p99 non-2xx ratio received
for round in $(seq "$ROUNDS"); do
  read -r _ base_rate base_p99 base_err <<<"$(run none "" 250)"
  printf '%-6s %-22s %12s %10s %8s %8s\n' "$round" none "$base_rate" "$base_p99" "$base_err" 1.00
  for host in silent quick; do
    port=$SILENT; [ "$host" = quick ] && port=$QUICK
    for batch in 250 0; do
      received >/dev/null
      read -r _ rate p99 err <<<"$(run "$host" "http://127.0.0.1:$port/hook" "$batch")"
      ratio=$(python3 -c "print(f'{$rate / $base_rate:.2f}')")
      got=""; [ "$host" = quick ] && got=$(received | awk '{print $1 " deliveries, " $2 " events"}')
      printf '%-6s %-22s %12s %10s %8s %8s %s\n' "$round" "host $host, batch ${batch}ms" "$rate" "$p99" "$err" "$ratio" "$got"
    done
  done
done
