# Shared by the bench scripts (source it): throwaway PostgreSQL and Redis servers on
# free loopback ports under $WORK, stopped by `bench_cleanup` (the scripts trap it).
# Needs: WORK set to a fresh directory.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"

# Starts PostgreSQL (default durability; extra server options as arguments) with a
# database `chat`; sets PG_PORT and PG_URL.
start_postgres() {
  PG_PORT=$(free_port)
  as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
    -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=200 $*" start >/dev/null
  psql -q -X "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c 'CREATE DATABASE chat'
  PG_URL=postgres://postgres@127.0.0.1:$PG_PORT/chat
}
# CPU time (clock ticks, user + system) the processes $@ have used; gone ones count 0.
cpu_ticks() { local t=0 f; for p in "$@"; do read -r -a f < "/proc/$p/stat" 2>/dev/null && t=$((t + f[13] + f[14])); done; echo $t; }
# The postmaster and its children (backends) now.
postgres_pids() { local pm; pm=$(head -1 "$WORK/data/postmaster.pid"); echo "$pm" $(ps -o pid= --ppid "$pm"); }

# Writes $WORK/post.sql: pgbench sending, per transaction, the statements chat-server
# sends for one post (BEGIN, the thread read in diesel's text, chat_append_batch() with
# a one-message batch, COMMIT), on PG_URL's threads from the first one, one thread per
# client, with ids above the table's newest and increasing per thread (pgbench keeps a
# client's variables from one transaction to the next). $1: threads, $2: clients.
write_pgbench_post_script() {
  local first base
  first=$(psql -X -q -A -t "$PG_URL" -c "SELECT min(id) FROM chat_threads")
  base=$(psql -X -q -A -t "$PG_URL" -c "SELECT coalesce(max(id), 0) + 1 FROM chat_messages")
  cat > "$WORK/post.sql" <<SQL
\set thread $first + (:client_id % $1)
\set seq :seq + 1
\set id $base + :seq * $2 + :client_id
\set limit 1
\set keep 100
BEGIN;
SELECT "chat_threads"."id", "chat_threads"."request_id", "chat_threads"."admin_id", "chat_threads"."client_id", "chat_threads"."status", "chat_threads"."opened_at", "chat_threads"."closed_at", "chat_threads"."staff_ids" FROM "chat_threads" WHERE ("chat_threads"."id" = :thread) LIMIT :limit;
SELECT chat_append_batch(:thread, ('{' || :id || '}')::bigint[], :senders, :types, :nonces, :ciphertexts, :created, :keys, :expired, :keep);
COMMIT;
SQL
}
# Runs $WORK/post.sql prepared with $1 clients for $2 s; the message is a 12-byte nonce
# and 136 bytes of ciphertext+tag (what a 120-character text seals to).
pgbench_post() {
  local nonce cipher
  nonce=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  cipher=$(head -c 136 /dev/urandom | od -An -tx1 | tr -d ' \n')
  pgbench -n -M prepared -c "$1" -j "$(( $1 < 2 ? 1 : 2 ))" -T "$2" \
    -D seq=0 -D senders='{1}' -D types='{text}' -D "nonces={\"\\\\x$nonce\"}" \
    -D "ciphertexts={\"\\\\x$cipher\"}" -D "created={$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)}" \
    -D keys='{NULL}' -D "expired=$(date -u -d '-24 hours' +%Y-%m-%dT%H:%M:%S.%6NZ)" \
    -f "$WORK/post.sql" "$PG_URL"
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
