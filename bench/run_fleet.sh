#!/usr/bin/env bash
# Fleet benchmark: one okla-registry and N okla-serving nodes following it, measured from outside
# by `fleet-bench` (bench/src/fleet.rs): promotion-to-serving time, failed requests during swaps
# under load, observed traffic shares (weighted and sticky), and routing overhead.
#
# Usage (from anywhere; paths are relative to the workspace root):
#   bench/run_fleet.sh [--amqp] [--nodes N] [--poll-seconds P] [--seconds S] [--keep] [-- FLEET-BENCH FLAGS...]
#
#   --amqp          event path: the registry publishes to RabbitMQ (127.0.0.1:5672, guest/guest)
#                   and the nodes follow the events (`okla-serving --amqp-url`), in a fresh vhost
#                   deleted at the end; the nodes still poll, every P seconds (default 30 here),
#                   as a safety net. Without it: poll path, every P seconds (default 1).
#   --nodes N       serving nodes (default 2), each with its own ports and cache directory.
#   --seconds S     measured seconds per routing-overhead variant (default 10).
#   --keep          keep the work directory (logs, database, caches).
#   after `--`      passed to fleet-bench as is (e.g. `--promotions 10 --swaps 20`).
#
# It builds nothing; first run
#   cargo build --release -p okla-registry -p okla-serving -p okla-bench
# Requirements: the test venv (.venv, from `bash scripts/test`) for ONNX Runtime's library and a
# free-port helper; for --amqp, RabbitMQ and rabbitmqctl.
# Environment: OKLA_BACKEND_STORE_URI (default: SQLite in the work directory; e.g.
# postgresql://postgres@127.0.0.1:5432/fleet_bench for PostgreSQL, which must be an empty
# database), REGISTRY_BIN, SERVING_BIN, FLEET_BENCH_BIN (target/release/...), VENV (.venv),
# AMQP_HOST (127.0.0.1:5672).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

AMQP=0
NODES=2
POLL_SECONDS=""
SECONDS_PER=10
KEEP=0
BENCH_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --amqp) AMQP=1; shift ;;
        --nodes) NODES="${2:?--nodes needs a number}"; shift 2 ;;
        --poll-seconds) POLL_SECONDS="${2:?--poll-seconds needs a number}"; shift 2 ;;
        --seconds) SECONDS_PER="${2:?--seconds needs a number}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --) shift; BENCH_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [[ -z $POLL_SECONDS ]]; then
    POLL_SECONDS=$(( AMQP == 1 ? 30 : 1 ))
fi

VENV="${VENV:-$ROOT/.venv}"
REGISTRY_BIN="${REGISTRY_BIN:-$ROOT/target/release/okla-registry}"
SERVING_BIN="${SERVING_BIN:-$ROOT/target/release/okla-serving}"
FLEET_BENCH_BIN="${FLEET_BENCH_BIN:-$ROOT/target/release/fleet-bench}"
AMQP_HOST="${AMQP_HOST:-127.0.0.1:5672}"
MODEL_FILE="$ROOT/examples/models/pricing/1/model.onnx"
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(echo "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1*)}"
export ORT_DYLIB_PATH

for bin in "$REGISTRY_BIN" "$SERVING_BIN" "$FLEET_BENCH_BIN"; do
    [[ -x $bin ]] || { echo "$bin not built: cargo build --release -p okla-registry -p okla-serving -p okla-bench" >&2; exit 1; }
done
[[ -f "$ORT_DYLIB_PATH" ]] || { echo "ONNX Runtime library not found; create $VENV first (bash scripts/test)" >&2; exit 1; }
if [[ $AMQP == 1 ]]; then
    command -v rabbitmqctl >/dev/null || { echo "rabbitmqctl not found (RabbitMQ is needed for --amqp)" >&2; exit 1; }
    "$SERVING_BIN" --help | grep -q -- '--amqp-url' || {
        echo "$SERVING_BIN has no --amqp-url flag yet: the event path cannot be measured with this build" >&2
        exit 1
    }
fi

WORK="$(mktemp -d)"
PIDS=()
VHOST=""
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n $VHOST ]]; then rabbitmqctl -q delete_vhost "$VHOST" >/dev/null || echo "could not delete vhost $VHOST" >&2; fi
    if [[ $KEEP == 1 ]]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() { # url log
    for _ in $(seq 1 300); do
        curl -fs "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "server at $1 did not become ready; its log ($2):" >&2
    tail -20 "$2" >&2
    return 1
}

amqp_args=()
LABEL="poll-${POLL_SECONDS}s"
if [[ $AMQP == 1 ]]; then
    VHOST="okla_fleet_bench_$$_$RANDOM"
    rabbitmqctl -q add_vhost "$VHOST" >/dev/null
    rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
    amqp_args=(--amqp-url "amqp://guest:guest@$AMQP_HOST/$VHOST")
    LABEL="amqp"
fi

registry_port=$(free_port)
REGISTRY_URL="http://127.0.0.1:$registry_port"
"$REGISTRY_BIN" --host 127.0.0.1 --port "$registry_port" --no-auth \
    --backend-store-uri "${OKLA_BACKEND_STORE_URI:-sqlite:///$WORK/registry.db}" \
    --artifacts-destination "$WORK/artifacts" "${amqp_args[@]}" > "$WORK/registry.log" 2>&1 &
PIDS+=($!)
wait_ready "$REGISTRY_URL/health" "$WORK/registry.log"

node_urls=()
for node in $(seq 1 "$NODES"); do
    http_port=$(free_port); grpc_port=$(free_port)
    mkdir -p "$WORK/cache-$node"
    "$SERVING_BIN" --host 127.0.0.1 --http-port "$http_port" --grpc-port "$grpc_port" \
        --registry "$REGISTRY_URL" --registry-poll-seconds "$POLL_SECONDS" \
        --cache-dir "$WORK/cache-$node" "${amqp_args[@]}" > "$WORK/node-$node.log" 2>&1 &
    PIDS+=($!)
    node_urls+=("http://127.0.0.1:$http_port")
done
for node in $(seq 1 "$NODES"); do
    wait_ready "${node_urls[$((node - 1))]}/v2/health/live" "$WORK/node-$node.log"
done

"$FLEET_BENCH_BIN" --registry "$REGISTRY_URL" --nodes "$(IFS=,; echo "${node_urls[*]}")" \
    --model pricing --model-file "$MODEL_FILE" --label "$LABEL" --seconds "$SECONDS_PER" \
    "${BENCH_ARGS[@]}"
