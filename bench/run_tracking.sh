#!/usr/bin/env bash
# Tracking-server benchmark: the reference `mlflow server` and okla-registry, side by side.
#
# Usage (from anywhere; paths are relative to the workspace root):
#   bench/run_tracking.sh [--only both|mlflow|okla|auth] [--keep] [-- TRACKING-BENCH FLAGS...]
# Examples:
#   bench/run_tracking.sh                                # full run: 10,000 runs, 10 s per scenario
#   bench/run_tracking.sh -- --runs 500 --seconds 3      # quick check
#   bench/run_tracking.sh --only mlflow -- --scenarios log-metric,log-batch
#   bench/run_tracking.sh --only auth                    # okla-registry with --no-auth, then with
#                                                        # basic auth as a non-admin user
#
# What it does, for each server in turn (one server up at a time, so they don't share the 2 cores):
#   1. creates a fresh PostgreSQL database (okla_bench_<server>_<pid>) and an artifact directory,
#   2. starts the server on a free 127.0.0.1 port and waits until `GET /health` answers OK,
#   3. runs target/release/tracking-bench against it with identical flags (`--json` added),
#   4. stops the server.
# Then it prints both result sets and the ratios (okla / mlflow for throughput, mlflow / okla
# for latency: above 1 means okla is better). On exit, also on Ctrl-C or failure, a trap stops
# the servers and drops the databases. Logs and bench output stay in a temp dir with --keep
# or when something failed.
#
# Requirements:
#   * PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres (PG_URL to change),
#   * the venv: python3 -m venv .venv && .venv/bin/pip install -r registry/tests/requirements.txt
#   * okla-registry built: cargo build -p okla-registry --release (only for the okla half).
# Environment:
#   MLFLOW_WORKERS   uvicorn workers of the reference server (default 4: 2 per core here;
#                    `mlflow server` defaults to 4 as well)
#   PG_URL           postgresql://postgres@127.0.0.1:5432 (no database name)
#   VENV             .venv
#   OKLA_BIN         target/release/okla-registry
#
# The reference server gets a `postgresql+psycopg2://` URI: SQLAlchemy 2.1 would map a plain
# `postgresql://` to psycopg 3, which registry/tests/requirements.txt deliberately leaves out.
# Expect the mlflow half to take long with the default --runs 10000: its setup creates runs
# at about 20-30 runs/s (two requests per run).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ONLY=both
KEEP=0
BENCH_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --only) ONLY="${2:?--only needs both, mlflow, okla or auth}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --) shift; BENCH_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (tracking-bench flags go after --)" >&2; exit 2 ;;
    esac
done
case "$ONLY" in both|mlflow|okla|auth) ;; *) echo "--only must be both, mlflow, okla or auth" >&2; exit 2 ;; esac

MLFLOW_WORKERS="${MLFLOW_WORKERS:-4}"
PG_URL="${PG_URL:-postgresql://postgres@127.0.0.1:5432}"
VENV="${VENV:-$ROOT/.venv}"
OKLA_BIN="${OKLA_BIN:-$ROOT/target/release/okla-registry}"
BENCH_BIN="$ROOT/target/release/tracking-bench"

WORK="$(mktemp -d /tmp/run-tracking.XXXXXX)"
SERVER_PID=""
DATABASES=()
STATUS=1

# client_min_messages: no NOTICE for DROP DATABASE IF EXISTS of a database that isn't there.
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql "$PG_URL/postgres" -v ON_ERROR_STOP=1 -qAt "$@"; }

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        # The server runs in its own session (setsid): signal the whole group, workers included.
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 -- "-$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

cleanup() {
    local exit_code=$?
    stop_server
    for db in "${DATABASES[@]}"; do
        psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || echo "could not drop database $db" >&2
    done
    rmdir "$WORK" 2>/dev/null || true # nothing started yet: nothing worth keeping
    if [[ ! -d "$WORK" ]]; then
        :
    elif [[ $KEEP -eq 1 || $STATUS -ne 0 || $exit_code -ne 0 ]]; then
        echo "logs and bench output kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

create_database() {
    local db="$1"
    psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    psql_admin -c "CREATE DATABASE \"$db\""
    DATABASES+=("$db")
}

wait_healthy() {
    local name="$1" url="$2" log="$3" timeout_s="${4:-180}"
    local deadline=$((SECONDS + timeout_s))
    while (( SECONDS < deadline )); do
        if [[ "$(curl -fsS --max-time 2 "$url/health" 2>/dev/null)" == "OK" ]]; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "$name exited during startup; last lines of $log:" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        sleep 1
    done
    echo "$name did not answer $url/health within ${timeout_s}s; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    return 1
}

# run_one NAME: starts server NAME on a fresh database, benches it, stops it.
run_one() {
    local name="$1"
    local port; port="$(free_port)"
    local url="http://127.0.0.1:$port"
    local artifacts="$WORK/$name-artifacts"
    local log="$WORK/$name-server.log"
    local db="okla_bench_${name//-/_}_$$"
    mkdir -p "$artifacts"
    create_database "$db"

    echo "=== $name: starting on $url (database $db)"
    if [[ "$name" == mlflow ]]; then
        setsid "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$port" \
            --backend-store-uri "${PG_URL/postgresql:/postgresql+psycopg2:}/$db" \
            --artifacts-destination "$artifacts" --serve-artifacts \
            --workers "$MLFLOW_WORKERS" >"$log" 2>&1 &
    elif [[ "$name" == okla-auth ]]; then
        OKLA_ADMIN_PASSWORD="$ADMIN_PASSWORD" setsid "$OKLA_BIN" --host 127.0.0.1 --port "$port" \
            --backend-store-uri "$PG_URL/$db" \
            --artifacts-destination "$artifacts" >"$log" 2>&1 &
    else
        # Builds from before authentication (for before/after comparisons) have no --no-auth.
        local open=(--no-auth)
        "$OKLA_BIN" --help | grep -q -- --no-auth || open=()
        setsid "$OKLA_BIN" --host 127.0.0.1 --port "$port" "${open[@]}" \
            --backend-store-uri "$PG_URL/$db" \
            --artifacts-destination "$artifacts" >"$log" 2>&1 &
    fi
    SERVER_PID=$!
    wait_healthy "$name" "$url" "$log"

    local credentials=()
    if [[ "$name" == okla-auth ]]; then
        # The bench acts as an ordinary user: it creates its experiment, so it holds MANAGE on
        # it, and every request pays for a password check (cached) and a grant lookup.
        curl -fsS -u "admin:$ADMIN_PASSWORD" -H 'Content-Type: application/json' \
            -d "{\"username\": \"bench\", \"password\": \"$BENCH_PASSWORD\"}" \
            "$url/api/2.0/mlflow/users/create" >/dev/null
        credentials=(MLFLOW_TRACKING_USERNAME=bench "MLFLOW_TRACKING_PASSWORD=$BENCH_PASSWORD")
    fi
    echo "=== $name: tracking-bench"
    env "${credentials[@]}" "$BENCH_BIN" --tracking-uri "$url" "${BENCH_ARGS[@]}" --json | tee "$WORK/$name.out"
    stop_server
    echo
}

# --- preflight: fail before anything starts if a piece is missing -------------------------------
command -v psql >/dev/null || { echo "psql not found (apt-get install -y postgresql-client)" >&2; exit 1; }
psql_admin -c "SELECT 1" >/dev/null || { echo "PostgreSQL not reachable at $PG_URL" >&2; exit 1; }
if [[ "$ONLY" != okla && "$ONLY" != auth && ! -x "$VENV/bin/mlflow" ]]; then
    echo "$VENV/bin/mlflow not found: python3 -m venv .venv && .venv/bin/pip install -r registry/tests/requirements.txt" >&2
    exit 1
fi
if [[ "$ONLY" != mlflow && ! -x "$OKLA_BIN" ]]; then
    echo "$OKLA_BIN not found: cargo build -p okla-registry --release (or use --only mlflow)" >&2
    exit 1
fi
cargo build -q -p okla-bench --release

echo "run_tracking.sh: servers=$ONLY mlflow_workers=$MLFLOW_WORKERS bench flags: ${BENCH_ARGS[*]:-(defaults)}"
echo "work dir: $WORK"
echo
# Generated per run; only the servers started here ever see them.
ADMIN_PASSWORD="admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
BENCH_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
case "$ONLY" in
    both) run_one mlflow; run_one okla ;;
    mlflow) run_one mlflow ;;
    okla) run_one okla ;;
    auth) run_one okla; run_one okla-auth ;;
esac

# --- comparison ----------------------------------------------------------------------------------
python3 - "$WORK" "$ONLY" <<'PY'
import json, pathlib, sys

work, only = pathlib.Path(sys.argv[1]), sys.argv[2]
# The second name is compared with the first: okla against mlflow, or okla with basic auth
# against okla with --no-auth.
pairs = {"both": ["mlflow", "okla"], "auth": ["okla", "okla-auth"]}
names = pairs.get(only, [only])
compared = len(names) == 2
heading = "okla vs mlflow" if only == "both" else "auth vs no-auth"
reports = {}
for name in names:
    lines = [l for l in (work / f"{name}.out").read_text().splitlines() if l.startswith("{")]
    reports[name] = {s["scenario"]: s for s in json.loads(lines[-1])["scenarios"]}

rows = [  # (scenario, field, label, higher_is_better)
    ("log-metric", "per_second", "log-metric req/s", True),
    ("log-batch", "per_second", "log-batch calls/s (1000 metrics)", True),
    ("search-runs", "p50_ms", "search-runs p50 ms", False),
    ("search-runs", "p99_ms", "search-runs p99 ms", False),
    ("metric-history", "p50_ms", "metric-history p50 ms", False),
    ("metric-history", "p99_ms", "metric-history p99 ms", False),
]
print("=== results" + ("" if only == "both" else f" ({only} only)"))
print(f"{'':34}" + "".join(f"{n:>14}" for n in names) + (f"   {heading}" if compared else ""))
for scenario, field, label, higher_is_better in rows:
    values = [reports[n].get(scenario, {}).get(field) for n in names]
    if all(v is None for v in values):
        continue
    line = f"{label:34}" + "".join(f"{v:14.2f}" if v is not None else f"{'-':>14}" for v in values)
    if compared and None not in values and min(values) > 0:
        base, other = values
        ratio = other / base if higher_is_better else base / other
        line += f"   {ratio:8.2f}x {'better' if ratio >= 1 else 'worse'}"
    print(line)
errors = {n: sum(s["errors"] for s in reports[n].values()) for n in names}
print("errors: " + ", ".join(f"{n} {e}" for n, e in errors.items()))
PY
STATUS=0
