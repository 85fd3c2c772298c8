# Shared by the bench scripts (source it): throwaway PostgreSQL and Redis servers on
# free loopback ports under $WORK, stopped by `bench_cleanup` (the scripts trap it).
# Needs: WORK set to a fresh directory.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
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
# CPU time (clock ticks) PostgreSQL has used: the postmaster's, its live children's, and
# the ended children's it reaped (a pgbench run's backends end with it).
postgres_cpu_ticks() {
  local pm f; pm=$(head -1 "$WORK/data/postmaster.pid")
  read -r -a f < "/proc/$pm/stat"
  echo $(( f[15] + f[16] + $(cpu_ticks $(postgres_pids)) ))
}

# Writes $WORK/post.sql: pgbench sending, per transaction, the statements chat-server
# sends for one post (BEGIN, the thread read in diesel's text, chat_append_batch() with
# a one-message batch, COMMIT) on PG_URL's $1 threads with $2 clients, each message
# stamped with its transaction's time as chat-server stamps it with the clock (a
# constant time would leave the indexed activity_at unchanged, making every activity
# update a cheap HOT update, and the created_at indexes all duplicates). $3, how the
# posts reach the threads:
#   spread  every client posts to the threads in turn, as chat-server's pool sends a
#           thread's posts through whichever connection is free. Two clients may then
#           meet on a thread: each takes the thread's lock first (one more statement
#           than chat-server sends, whose appends to a thread wait in the instance) and
#           draws its id from the clock under it, so ids still rise per thread.
#   own     client i owns thread i (ids from a counter): a thread's rows then fill the
#           pages its one backend inserts into, a layout chat-server's posts never have.
write_pgbench_post_script() {
  local first base
  first=$(psql -X -q -A -t "$PG_URL" -c "SELECT min(id) FROM chat_threads")
  base=$(psql -X -q -A -t "$PG_URL" -c "SELECT coalesce(max(id), 0) + 1 FROM chat_messages")
  case $3 in
    spread) cat > "$WORK/post.sql" <<SQL
\set seq :seq + 1
\set thread $first + ((:client_id + :seq) % $1)
SQL
      ;;
    own) cat > "$WORK/post.sql" <<SQL
\set seq :seq + 1
\set thread $first + (:client_id % $1)
\set id $base + :seq * $2 + :client_id
SQL
      ;;
  esac
  local lock= id="('{' || :id || '}')::bigint[]"
  if [ "$3" = spread ]; then
    lock='SELECT pg_advisory_xact_lock(:thread);'
    id="ARRAY[(extract(epoch FROM clock_timestamp()) * 1000000)::bigint * $2 + :client_id]"
  fi
  cat >> "$WORK/post.sql" <<SQL
\set limit 1
\set keep 100
BEGIN;
SELECT "chat_threads"."id", "chat_threads"."request_id", "chat_threads"."admin_id", "chat_threads"."client_id", "chat_threads"."status", "chat_threads"."opened_at", "chat_threads"."closed_at", "chat_threads"."staff_ids", "chat_threads"."hold", "chat_threads"."record_state" FROM "chat_threads" WHERE ("chat_threads"."id" = :thread) LIMIT :limit;
$lock
SELECT chat_append_batch(:thread, $id, :senders, :types, :nonces, :ciphertexts, ARRAY[now()], :keys, :expired, :keep);
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
    -D "ciphertexts={\"\\\\x$cipher\"}" \
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
  local port=$1 threads=$2 first=$3 admin api ids=()
  admin=$("$BIN" token --sub 1 --role admin --ttl 3600)
  api=http://127.0.0.1:$port/api
  # Eight at a time: a thousand threads are set up in seconds, not minutes.
  mapfile -t ids < <(seq "$first" $((first + threads - 1)) | xargs -P 8 -I{} sh -c '
    curl -sf -X PUT "$1/requests/$2" -H "Authorization: Bearer $0" -H "Content-Type: application/json" -d "{\"client_id\": 7}" >/dev/null &&
    id=$(curl -sf -X POST "$1/requests/$2/chat/open" -H "Authorization: Bearer $0" | sed -E "s/.*\"threadId\":([0-9]+).*/\1/") &&
    echo "$id"' "$admin" "$api" {})
  # One line per thread, written at once (parallel writers never interleave a line).
  [ "${#ids[@]}" = "$threads" ] && ! printf '%s\n' "${ids[@]}" | grep -qvE '^[0-9]+$' || { echo "set up ${#ids[@]} of $threads threads" >&2; exit 1; }
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

# Checks that wrk is there and builds the release chat-server (BIN, unless given).
wrk_setup() {
  command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
  cargo build --release -q -p chat-server
  BIN=${BIN:-$PWD/target/release/chat-server}
}

# Builds the release chat-server (BIN, unless given) and pusher-load (LOAD), and exports
# the environment of a chat-server measured against a Pusher peer: the peer's app key
# and secret, in-memory media, no rate limits.
realtime_setup() {
  cargo build --release -q -p chat-server -p pusher-load
  BIN=${BIN:-$PWD/target/release/chat-server}
  LOAD=$PWD/target/release/pusher-load
  export CHAT_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 RUST_LOG=warn \
    CHAT_PUSHER_APP_KEY=bench-key CHAT_PUSHER_APP_SECRET=bench-app-secret \
    CHAT_OBJECT_STORE_URL=memory:// CHAT_RATE_LIMIT_POSTS=0 CHAT_RATE_LIMIT_AUTH=0
}

# Starts sockudo (on the PATH) on port $1 with the app `bench` (the same key and secret),
# allowing $2 connections; sets SERVER_PID and waits until it listens.
start_sockudo() {
  cat > "$WORK/sockudo.toml" <<TOML
port = $1
host = "127.0.0.1"
debug = false

[app_manager]
driver = "memory"

[app_manager.array]
[[app_manager.array.apps]]
id = "bench"
key = "bench-key"
secret = "bench-app-secret"
enabled = true
enable_client_messages = false
max_connections = $2
max_backend_events_per_second = 1000000
max_client_events_per_second = 1000000
max_read_requests_per_second = 1000000

[rate_limiter]
enabled = false
TOML
  sockudo --config "$WORK/sockudo.toml" >"$WORK/sockudo.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.1; done
}
