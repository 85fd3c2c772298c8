#!/usr/bin/env bash
# Exercises deploy/nginx.conf on this machine, without containers: PostgreSQL, Redis,
# two chat-server instances and nginx (Debian's packages), all on free loopback ports
# in a temporary directory. Through the load balancer it checks /readyz and runs the
# Laravel Echo walk-through (crates/app/tests/echo/echo.mjs) with both "instances"
# being nginx, so sockets and posts land on either replica.
#   bash deploy/smoke.sh     (needs postgresql, redis-server, nginx, node; run as root
#                             or as a user who may run initdb)
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cargo build --locked -q -p chat-server
BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/chat-server"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== PostgreSQL and Redis"
PG_PORT=$(free_port); REDIS_PORT=$(free_port)
mkdir "$WORK/pg"; [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" -w start >/dev/null
redis-server --port "$REDIS_PORT" --save '' --appendonly no --maxmemory-policy noeviction >/dev/null &
PIDS+=($!)

echo "== two chat-server instances"
export CHAT_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export CHAT_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export CHAT_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export CHAT_JWT_SECRET="smoke-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
export CHAT_PUSHER_APP_KEY=smoke-key CHAT_OBJECT_STORE_URL=memory:// RUST_LOG=warn
UPSTREAMS=""
for i in 1 2; do
  port=$(free_port)
  CHAT_BIND=127.0.0.1:$port "$BIN" serve 2>"$WORK/chat$i.log" &
  PIDS+=($!)
  UPSTREAMS="$UPSTREAMS    server 127.0.0.1:$port;\n"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done

echo "== nginx with deploy/nginx.conf"
LB_PORT=$(free_port)
sed -e "s#^    server chat:8080;#$UPSTREAMS#" -e "s#listen 80;#listen 127.0.0.1:$LB_PORT;#" \
    -e "s#/var/log/nginx/access.log#$WORK/access.log#" deploy/nginx.conf > "$WORK/site.conf"
cat > "$WORK/nginx.conf" <<CONF
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events {}
http {
  client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy;
  fastcgi_temp_path $WORK/fastcgi; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
  include $WORK/site.conf;
}
CONF
nginx -t -q -c "$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf"
LB=http://127.0.0.1:$LB_PORT

echo "== through the load balancer"
curl -sf "$LB/readyz"; echo
ADMIN=$("$BIN" token --sub 1 --role admin)
CLIENT=$("$BIN" token --sub 7 --role client)
THREADS=()
for request in 1 2; do
  curl -sf -X PUT "$LB/api/requests/$request" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -d '{"client_id": 7}' >/dev/null
  THREADS+=($(curl -sf -X POST "$LB/api/requests/$request/chat/open" -H "Authorization: Bearer $CLIENT" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["threadId"])'))
done
[ -d crates/app/tests/echo/node_modules/laravel-echo ] || (cd crates/app/tests/echo && npm ci --no-audit --no-fund --silent)
(cd crates/app/tests/echo && BASE=$LB BASE2=$LB KEY=smoke-key THREAD_A=${THREADS[0]} THREAD_B=${THREADS[1]} \
  TOKEN_CLIENT=$CLIENT TOKEN_ADMIN=$ADMIN TOKEN_STRANGER=$("$BIN" token --sub 8 --role client) node echo.mjs)
echo "== nginx proxied $(wc -l < "$WORK/access.log") requests; none logged with its query string"
if grep -q '?' "$WORK/access.log"; then echo "a query string reached the access log"; exit 1; fi
echo "smoke test passed"
