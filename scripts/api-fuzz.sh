#!/usr/bin/env bash
# Schemathesis (PyPI) against a running chat-server: generated requests for every
# operation of /api/openapi.json; fails on any 5xx and on any response (status,
# content type, headers, body) that the document does not allow.
#   bash scripts/api-fuzz.sh [extra schemathesis options]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null; then
  echo "== installing schemathesis"
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi

# The binary as the test suite builds it (same features: nothing to rebuild after it).
cargo test --workspace --locked --no-run -q
BIN="${CARGO_TARGET_DIR:-target}/debug/chat-server"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
export CHAT_JWT_SECRET="fuzz-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
export CHAT_BIND=127.0.0.1:$PORT CHAT_OBJECT_STORE_URL=memory:// RUST_LOG=warn
# Limits off, so that generated posts reach validation instead of stopping at 429.
export CHAT_RATE_LIMIT_POSTS=0 CHAT_RATE_LIMIT_UPLOADS=0 CHAT_RATE_LIMIT_AUTH=0
"$BIN" serve 2>"$WORK/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
BASE=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done

# A request and its thread (ids 1), so that generated ids sometimes name real ones.
ADMIN=$("$BIN" token --sub 1 --role admin)
curl -sf -X PUT "$BASE/api/requests/1" -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' -d '{"client_id": 7}' >/dev/null
curl -sf -X POST "$BASE/api/requests/1/chat/open" -H "Authorization: Bearer $ADMIN" >/dev/null
# And messages 1 and 2 in it (the in-memory store numbers from 1), to retract and mark.
for text in one two; do
  curl -sf -X POST "$BASE/api/chat/threads/1/messages" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -d "{\"type\": \"text\", \"text\": \"$text\"}" >/dev/null
done

status=0
schemathesis run "$BASE/api/openapi.json" \
  --header "Authorization: Bearer $ADMIN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples 100 --workers 1 --seed 1 \
  "$@" || status=$?
if ! kill -0 $SERVER 2>/dev/null; then
  echo "chat-server died during the run:"; cat "$WORK/server.log"; exit 1
fi
if grep -q "panicked" "$WORK/server.log"; then
  echo "chat-server panicked:"; cat "$WORK/server.log"; exit 1
fi
exit $status
