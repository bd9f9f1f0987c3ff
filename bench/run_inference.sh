#!/usr/bin/env bash
# Inference benchmark: okla-serving and the reference Seldon MLServer side by side, plus the
# in-process ONNX Runtime floor, on the pricing regressor (examples/models/pricing).
#
# Usage (from anywhere; paths are relative to the workspace root):
#   bench/run_inference.sh [--only both|okla|mlserver|auth] [--seconds N] [--rounds N] [--keep]
#
# What it does:
#   1. floor: `inference-bench floor` runs session.run in this process, one thread, batch 1 and 32;
#   2. for each server in turn (one up at a time, so they do not share the 2 cores):
#      starts it on free 127.0.0.1 ports, waits until it is ready, then
#      - gRPC: `inference-bench grpc` at concurrency 1, 8, 32 x batch 1, 32 (raw FP32 input,
#        as tritonclient sends it),
#      - gRPC with a lighter client: h2load sending the same request pre-serialised
#        (`inference-bench frame`), 4 connections x 2 or 8 streams = concurrency 8 and 32;
#        h2load reports throughput and mean latency only (no percentiles),
#      - HTTP: wrk with a V2 JSON infer body at the same concurrency levels (2 wrk threads),
#      and stops it.
#   With --only auth: two okla-serving nodes follow okla-registry (authentication on), one open
#   and one with --require-token (every request carries a registry token the node checks, its
#   verdict cached). Both stay up while the loads alternate between them, --rounds times (each
#   round flips which node goes first), so drift on the shared machine hits both alike; at batch
#   1, where a per-request cost shows most, the gRPC loads (every status checked) and wrk over
#   HTTP. The summary gives each node's median and the ratio of medians.
# Requirements: the test venv (.venv, from `bash scripts/test` or the requirements files),
# wrk and h2load (apt-get install -y wrk nghttp2-client). MLServer is installed into .venv-mlserver on first use
# (pip install mlserver mlserver-sklearn), apart from the test venv whose pins it would fight.
# Environment: OKLA_BIN (target/release/okla-serving), VENV (.venv), MLSERVER_VENV (.venv-mlserver).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ONLY=both
SECONDS_PER=10
KEEP=0
ROUNDS=5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --only) ONLY="${2:?--only needs both, okla, mlserver or auth}"; shift 2 ;;
        --seconds) SECONDS_PER="${2:?--seconds needs a number}"; shift 2 ;;
        --rounds) ROUNDS="${2:?--rounds needs a number}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

VENV="${VENV:-$ROOT/.venv}"
MLSERVER_VENV="${MLSERVER_VENV:-$ROOT/.venv-mlserver}"
OKLA_BIN="${OKLA_BIN:-$ROOT/target/release/okla-serving}"
BENCH_BIN="$ROOT/target/release/inference-bench"
MODEL_FILE="$ROOT/examples/models/pricing/1/model.onnx"
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(echo "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1*)}"
export ORT_DYLIB_PATH
CONCURRENCY=(1 8 32)
BATCHES=(1 32)

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v h2load >/dev/null || { echo "h2load not found: apt-get install -y nghttp2-client" >&2; exit 1; }
[[ -f "$ORT_DYLIB_PATH" ]] || { echo "ONNX Runtime library not found; create $VENV first" >&2; exit 1; }
cargo build --release -p okla-serving -p okla-bench --bin okla-serving --bin inference-bench
if [[ $ONLY == auth ]]; then cargo build --release -p okla-registry --bin okla-registry; fi
REGISTRY_BIN="${REGISTRY_BIN:-$ROOT/target/release/okla-registry}"

WORK="$(mktemp -d)"
SERVER_PID=""
REGISTRY_PID=""
NODE_PIDS=()
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    [[ -n "$REGISTRY_PID" ]] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
    if [[ $KEEP == 1 ]]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() { # url
    for _ in $(seq 1 300); do
        curl -fs "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "server at $1 did not become ready" >&2
    return 1
}

# A V2 JSON infer body with `rows` rows of the pricing model's 8 features.
write_body() { # rows file
    "$VENV/bin/python" - "$1" "$2" <<'PY'
import json, sys
rows, path = int(sys.argv[1]), sys.argv[2]
data = [[(r * 8 + c) % 97 / 97.0 for c in range(8)] for r in range(rows)]
body = {"inputs": [{"name": "features", "shape": [rows, 8], "datatype": "FP32", "data": data}]}
open(path, "w").write(json.dumps(body))
PY
}

run_wrk() { # label url
    local label=$1 url=$2
    for batch in "${BATCHES[@]}"; do
        write_body "$batch" "$WORK/body-$batch.json"
        cat > "$WORK/post-$batch.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/body-$batch.json", "r")
wrk.body = f:read("*a")
f:close()
LUA
        for c in "${CONCURRENCY[@]}"; do
            local threads=$(( c < 2 ? 1 : 2 ))
            wrk -t"$threads" -c"$c" -d2s -s "$WORK/post-$batch.lua" "$url" >/dev/null # warm-up
            wrk -t"$threads" -c"$c" -d"${SECONDS_PER}s" --latency -s "$WORK/post-$batch.lua" "$url" > "$WORK/wrk.out"
            local rps p50 p99 errors
            rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
            p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
            p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
            errors=$(awk '/Non-2xx/ {print $NF} /Socket errors/ {print $0}' "$WORK/wrk.out" | tr '\n' ' ')
            printf '%-14s %-6s c=%-3s batch=%-3s %10.0f req/s %11.0f inf/s  p50 %9s  p99 %9s  errors %s\n' \
                "$label" http "$c" "$batch" "$rps" "$(echo "$rps * $batch" | bc -l)" "$p50" "$p99" "${errors:-0}"
        done
    done
}

grpc_args=(--seconds "$SECONDS_PER" --concurrency 1,8,32 --batch 1,32)

run_h2load() { # label host:port
    local label=$1 target=$2
    for batch in "${BATCHES[@]}"; do
        "$BENCH_BIN" frame --model pricing --input-name features --features 8 --batch "$batch" --out "$WORK/frame-$batch.bin"
        for streams in 2 8; do
            local c=$(( 4 * streams )) h2=(h2load -c 4 -m "$streams" -t 1 -d "$WORK/frame-$batch.bin"
                -H 'content-type: application/grpc' -H 'te: trailers'
                "http://$target/inference.GRPCInferenceService/ModelInfer")
            "${h2[@]}" -D 2 >/dev/null # warm-up
            "${h2[@]}" -D "$SECONDS_PER" > "$WORK/h2load.out"
            local rps mean failed
            rps=$(awk '/^finished in/ {print $4}' "$WORK/h2load.out")
            mean=$(awk '/^time for request:/ {print $6}' "$WORK/h2load.out")
            failed=$(awk '/^requests:/ {print $10}' "$WORK/h2load.out")
            printf '%-14s %-6s c=%-3s batch=%-3s %10.0f req/s %11.0f inf/s  mean %8s                  errors %s\n' \
                "$label" h2load "$c" "$batch" "$rps" "$(echo "$rps * $batch" | bc -l)" "$mean" "$failed"
        done
    done
}

if [[ $ONLY == auth ]]; then
    # A registry with authentication on, the pricing model pushed as champion, a caller with a
    # token, and one node credential per serving node.
    registry_port=$(free_port); REGISTRY="http://127.0.0.1:$registry_port"
    ADMIN_PASSWORD="admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    OKLA_ADMIN_PASSWORD="$ADMIN_PASSWORD" "$REGISTRY_BIN" --host 127.0.0.1 --port "$registry_port" \
        --backend-store-uri "sqlite:///$WORK/registry.db" --artifacts-destination "$WORK/artifacts" \
        > "$WORK/registry.log" 2>&1 &
    REGISTRY_PID=$!
    wait_ready "$REGISTRY/health"
    MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD="$ADMIN_PASSWORD" "$VENV/bin/python" \
        serving/tests/register_onnx_model.py "$REGISTRY" pricing "$MODEL_FILE" --alias champion > /dev/null
    admin_post() { # path json -> answer
        curl -fsS -u "admin:$ADMIN_PASSWORD" -H 'Content-Type: application/json' -d "$2" "$REGISTRY$1"
    }
    secret_of() { "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["secret"])'; }
    caller_password="caller-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    admin_post /api/2.0/mlflow/users/create "{\"username\": \"caller\", \"password\": \"$caller_password\"}" > /dev/null
    CALLER_TOKEN=$(curl -fsS -u "caller:$caller_password" -H 'Content-Type: application/json' \
        -d '{"name": "bench"}' "$REGISTRY/api/okla/v1/tokens" | secret_of)

    declare -A HTTP_URL GRPC_TARGET
    for mode in open require-token; do
        node_token=$(admin_post /api/okla/v1/tokens "{\"name\": \"bench-$mode\", \"node_id\": \"bench-$mode\"}" | secret_of)
        http_port=$(free_port); grpc_port=$(free_port)
        flags=()
        if [[ $mode == require-token ]]; then flags=(--require-token); fi
        OKLA_REGISTRY_TOKEN="$node_token" "$OKLA_BIN" --host 127.0.0.1 --http-port "$http_port" \
            --grpc-port "$grpc_port" --registry "$REGISTRY" --node-id "bench-$mode" \
            --cache-dir "$WORK/cache-$mode" "${flags[@]}" > "$WORK/okla-$mode.log" 2>&1 &
        NODE_PIDS+=($!)
        wait_ready "http://127.0.0.1:$http_port/v2/health/ready"
        HTTP_URL[$mode]="http://127.0.0.1:$http_port/v2/models/pricing/infer"
        GRPC_TARGET[$mode]="127.0.0.1:$grpc_port"
    done
    echo "== okla-serving open vs --require-token, $ROUNDS interleaved rounds of ${SECONDS_PER} s per load, batch 1"
    write_body 1 "$WORK/body-1.json"
    for round in $(seq 1 "$ROUNDS"); do
        order=(open require-token)
        if (( round % 2 == 0 )); then order=(require-token open); fi
        for mode in "${order[@]}"; do
            token=""
            if [[ $mode == require-token ]]; then token="$CALLER_TOKEN"; fi
            # Every answer is checked here (status and grpc-status); more than 1% errors fails.
            OKLA_SERVING_TOKEN="$token" "$BENCH_BIN" --json grpc --label "$mode" \
                --target "${GRPC_TARGET[$mode]}" --model pricing --input-name features --features 8 \
                --seconds "$SECONDS_PER" --warmup-seconds 1 --concurrency 1,8,32 --batch 1 \
                | tee -a "$WORK/auth.jsonl"
            cat > "$WORK/post-auth.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if "$token" ~= "" then wrk.headers["Authorization"] = "Bearer $token" end
local f = io.open("$WORK/body-1.json", "r")
wrk.body = f:read("*a")
f:close()
LUA
            for c in 1 8 32; do
                threads=$(( c < 2 ? 1 : 2 ))
                wrk -t"$threads" -c"$c" -d1s -s "$WORK/post-auth.lua" "${HTTP_URL[$mode]}" >/dev/null # warm-up
                wrk -t"$threads" -c"$c" -d"${SECONDS_PER}s" -s "$WORK/post-auth.lua" "${HTTP_URL[$mode]}" > "$WORK/wrk.out"
                rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
                errors=$(awk '/Non-2xx/ {e += $NF} /Socket errors/ {e += 1} END {print e + 0}' "$WORK/wrk.out")
                printf '{"label": "%s", "mode": "http", "concurrency": %d, "batch": 1, "requests_per_second": %s, "errors": %d}\n' \
                    "$mode" "$c" "$rps" "$errors" | tee -a "$WORK/auth.jsonl"
            done
        done
    done
    "$VENV/bin/python" - "$WORK/auth.jsonl" <<'PY'
import collections, json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
runs = collections.defaultdict(list)
errors = 0
for row in rows:
    runs[(row["mode"], row["concurrency"], row["label"])].append(row["requests_per_second"])
    errors += row["errors"]
print(f"\n{'load':<14} {'open median':>12} {'guarded median':>15} {'ratio':>6}   guarded/open per round")
for mode, concurrency in sorted({(m, c) for m, c, _ in runs}):
    open_, guarded = runs[(mode, concurrency, "open")], runs[(mode, concurrency, "require-token")]
    per_round = " ".join(f"{g / o:.2f}" for o, g in zip(open_, guarded))
    ratio = statistics.median(guarded) / statistics.median(open_)
    print(f"{mode + ' c=' + str(concurrency):<14} {statistics.median(open_):>12.0f} "
          f"{statistics.median(guarded):>15.0f} {ratio:>6.3f}   {per_round}")
print(f"errors over all runs: {errors}")
if errors:
    sys.exit("some answers were errors")
PY
    exit 0
fi

echo "== in-process ONNX Runtime floor (one session, one thread)"
"$BENCH_BIN" floor --model-file "$MODEL_FILE" --batch 1,32 --seconds "$SECONDS_PER"

if [[ $ONLY == both || $ONLY == okla ]]; then
    echo "== okla-serving ($OKLA_BIN)"
    http_port=$(free_port); grpc_port=$(free_port)
    "$OKLA_BIN" --host 127.0.0.1 --http-port "$http_port" --grpc-port "$grpc_port" \
        --model-repository "$ROOT/examples/models" > "$WORK/okla.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "http://127.0.0.1:$http_port/v2/health/ready"
    "$BENCH_BIN" grpc --label okla-serving --target "127.0.0.1:$grpc_port" --model pricing "${grpc_args[@]}"
    run_h2load okla-serving "127.0.0.1:$grpc_port"
    run_wrk okla-serving "http://127.0.0.1:$http_port/v2/models/pricing/infer"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
fi

if [[ $ONLY == both || $ONLY == mlserver ]]; then
    if [[ ! -x "$MLSERVER_VENV/bin/mlserver" ]]; then
        echo "== installing MLServer into $MLSERVER_VENV"
        python3 -m venv "$MLSERVER_VENV"
        # uvloop 0.22+ breaks MLServer 1.7.1's inference workers ("no current event loop").
        "$MLSERVER_VENV/bin/pip" install --quiet --disable-pip-version-check mlserver==1.7.1 mlserver-sklearn==1.7.1 uvloop==0.21.0
    fi
    echo "== Seldon MLServer $("$MLSERVER_VENV/bin/pip" show mlserver 2>/dev/null | awk '/^Version/ {print $2}') (scikit-learn runtime, same model)"
    http_port=$(free_port); grpc_port=$(free_port); metrics_port=$(free_port)
    "$MLSERVER_VENV/bin/python" bench/mlserver_pricing.py "$WORK/mlserver" "$http_port" "$grpc_port" "$metrics_port"
    (cd "$WORK/mlserver" && exec "$MLSERVER_VENV/bin/mlserver" start .) > "$WORK/mlserver.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "http://127.0.0.1:$http_port/v2/models/pricing/ready"
    "$BENCH_BIN" grpc --label mlserver --target "127.0.0.1:$grpc_port" --model pricing \
        --input-name features --features 8 "${grpc_args[@]}"
    run_h2load mlserver "127.0.0.1:$grpc_port"
    run_wrk mlserver "http://127.0.0.1:$http_port/v2/models/pricing/infer"
fi
