#!/usr/bin/env bash
# Web UI benchmark: okla-registry (release build) on a fresh PostgreSQL database, timed by ui-bench.
#
# Usage (from anywhere): bench/run_ui.sh [UI-BENCH FLAGS...]
#   bench/run_ui.sh                          # 10,000 runs, 50 compared, a 100,000-point metric
#   bench/run_ui.sh --runs 1000 --requests 10  # quick check
# Environment: PG_URL (postgresql://postgres@127.0.0.1:5432, no database name),
#              OKLA_BIN (target/release/okla-registry).
# The database and artifact directory are removed on exit; the server log is kept on failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PG_URL="${PG_URL:-postgresql://postgres@127.0.0.1:5432}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OKLA_BIN="${OKLA_BIN:-$TARGET/release/okla-registry}"
DB="okla_ui_bench_$$"
WORK="$(mktemp -d /tmp/run-ui.XXXXXX)"
SERVER_PID=""
STATUS=1

psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql "$PG_URL/postgres" -v ON_ERROR_STOP=1 -qAt "$@"; }

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" || echo "could not drop database $DB" >&2
    if [[ $STATUS -ne 0 ]]; then echo "server log kept in $WORK/server.log" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build -q --release -p okla-registry -p okla-bench
psql_admin -c "CREATE DATABASE \"$DB\""
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
"$OKLA_BIN" --host 127.0.0.1 --port "$PORT" --no-auth --backend-store-uri "$PG_URL/$DB" \
    --artifacts-destination "$WORK/artifacts" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    [[ "$(curl -fsS --max-time 2 "$URL/health" 2>/dev/null)" == OK ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$WORK/server.log" >&2; exit 1; }
    sleep 0.2
done

echo "okla-registry $("$OKLA_BIN" --version | awk '{print $2}') on PostgreSQL $(psql_admin -c 'SHOW server_version'), $(nproc) cores"
"$TARGET/release/ui-bench" --registry-uri "$URL" "$@"
STATUS=0
