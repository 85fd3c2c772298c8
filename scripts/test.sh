#!/usr/bin/env bash
# The test suite, with what it needs: the PostgreSQL, Redis and S3-compatible servers
# that the tests start themselves (chat-testkit) are installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  echo "== installing $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL server binaries (initdb, pg_ctl) and pg_dump.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v pg_dump >/dev/null; then
  apt_install postgresql
fi

# redis-server and redis-cli.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  apt_install redis-server
fi

# PgBouncer, which the tests behind a transaction pooler start themselves.
if [ ! -x /usr/sbin/pgbouncer ] && ! command -v pgbouncer >/dev/null; then
  apt_install pgbouncer
fi

# moto's KMS-compatible server, which the KMS tests start themselves (PyPI).
if ! command -v moto_server >/dev/null; then
  echo "== installing moto[server]"
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1'
fi

# fhir.resources, the FHIR R4 validator the clinical-record tests run (PyPI).
if ! python3 -c 'import fhir.resources' 2>/dev/null; then
  echo "== installing fhir.resources"
  python3 -m pip install --quiet --disable-pip-version-check 'fhir.resources==8.3.0'
fi

# openssl, which makes the throwaway certificates of the TLS tests.
if ! command -v openssl >/dev/null; then
  apt_install openssl
fi

# s3s-fs, a real S3-compatible server that checks every signature (crates.io).
if ! command -v s3s-fs >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
  echo "== installing s3s-fs"
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi

# Debian's chromium, which the browser test drives (playwright-core downloads no browser).
if ! command -v chromium >/dev/null; then
  apt_install chromium
fi

# Laravel Echo and pusher-js for the real-time tests, Pusher's server library for the
# HTTP API's and the webhooks', playwright-core for the browser's (Node.js and npm are
# needed).
if [ ! -d crates/app/tests/echo/node_modules/laravel-echo ] || [ ! -d crates/app/tests/echo/node_modules/pusher ] \
  || [ ! -d crates/app/tests/echo/node_modules/playwright-core ]; then
  echo "== installing the Echo test client (npm ci)"
  (cd crates/app/tests/echo && npm ci --no-audit --no-fund --silent)
fi
# The JavaScript client (clients/js): its dependencies and its build (dist/), which its
# own tests (run by cargo test) and the example page use.
echo "== building the JavaScript client (clients/js)"
if [ ! -d clients/js/node_modules/typescript ]; then
  (cd clients/js && npm ci --no-audit --no-fund --silent)
fi
(cd clients/js && npm run --silent build)
# The example page's client, laravel-echo and pusher-js (examples/web), which the browser loads.
if [ ! -d examples/web/node_modules/laravel-echo ] || [ ! -e examples/web/node_modules/@chat-server/client ]; then
  (cd examples/web && npm ci --no-audit --no-fund --silent)
fi

cargo test --workspace --locked --no-fail-fast "$@"
