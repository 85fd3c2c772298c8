#!/usr/bin/env bash
# Serves this page on http://127.0.0.1:${PORT:-8000}/ (building the client and
# installing laravel-echo and pusher-js from npm the first time). Run chat-server with that origin allowed:
#   CHAT_ALLOWED_ORIGINS=http://127.0.0.1:8000 cargo run -p chat-server -- serve
set -euo pipefail
cd "$(dirname "$0")"
# The page runs on the JavaScript client (clients/js), built once.
[ -f ../../clients/js/dist/index.js ] || (cd ../../clients/js && npm ci --no-audit --no-fund --silent && npm run --silent build)
[ -e node_modules/@chat-server/client ] || npm ci --no-audit --no-fund --silent
PORT=${PORT:-8000}
echo "open http://127.0.0.1:$PORT/ (API http://127.0.0.1:8080; tokens: cargo run -p chat-server -- token --sub 7 --role client)"
exec python3 -m http.server "$PORT" --bind 127.0.0.1
