# Shared by the bench scripts (source it): throwaway PostgreSQL and Redis servers on
# free loopback ports under $WORK, stopped by `bench_cleanup` (the scripts trap it).
# Needs: WORK set to a fresh directory.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"

# Starts PostgreSQL (default durability) with a database `chat`; sets PG_URL.
start_postgres() {
  local port; port=$(free_port)
  as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
    -o "-p $port -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200 $*" start >/dev/null
  psql -q -X "postgres://postgres@127.0.0.1:$port/postgres" -c 'CREATE DATABASE chat'
  PG_URL=postgres://postgres@127.0.0.1:$port/chat
}
stop_postgres() {
  [ -d "$WORK/data" ] && { as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null; rm -rf "$WORK/data"; }
  return 0
}

# Starts redis-server without persistence; sets REDIS_URL and REDIS_PID.
start_redis() {
  local port; port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$WORK" >/dev/null &
  REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS_URL=redis://127.0.0.1:$port
}
stop_redis() {
  [ -n "${REDIS_PID:-}" ] && { kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=; }
  return 0
}

bench_cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
  [ -d "$WORK/data" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}

# Registers $2 requests from number $3 on the server at port $1, opens their threads
# as an admin, and writes $WORK/post.lua: wrk posting a 120-character text to them in
# turn. Needs BIN.
write_post_script() {
  local port=$1 threads=$2 first=$3 admin api ids=() r
  admin=$("$BIN" token --sub 1 --role admin --ttl 3600)
  api=http://127.0.0.1:$port/api
  for r in $(seq "$first" $((first + threads - 1))); do
    curl -sf -X PUT "$api/requests/$r" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d '{"client_id": 7}' >/dev/null
    ids+=("$(curl -sf -X POST "$api/requests/$r/chat/open" -H "Authorization: Bearer $admin" | python3 -c 'import json,sys; print(json.load(sys.stdin)["threadId"])')")
  done
  cat > "$WORK/post.lua" <<LUA
local threads = { $(IFS=,; echo "${ids[*]}") }
local i = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $admin"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"text","text":"$(printf 'x%.0s' $(seq 120))"}'
request = function()
  i = i + 1
  return wrk.format(nil, "/api/chat/threads/" .. threads[(i % #threads) + 1] .. "/messages")
end
LUA
}
