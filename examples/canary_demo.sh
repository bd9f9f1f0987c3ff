#!/usr/bin/env bash
# Register -> canary -> promote, against the platform `bash scripts/quickstart` started.
#
# Usage: bash examples/canary_demo.sh [--rollback]
#   Pushes the pricing model again as a new version, sends it 10% of the traffic, shows what each
#   serving node does and a few predictions, then promotes it to 100% (or, with --rollback,
#   rolls the canary back).
# Environment: OKLA (the okla binary, default target/release/okla), OKLA_REGISTRY_URL
#   (http://127.0.0.1:5000), OKLA_SERVING_URL (gRPC, http://127.0.0.1:8001).
set -euo pipefail
cd "$(dirname "$0")/.."

OKLA=${OKLA:-target/release/okla}
INPUT='{"features": [[3, 2019, 60000, 1.6, 0, 1, 4, 12]]}'
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "push a new version of pricing (a training job would push its own directory)"
version=$("$OKLA" --json push pricing examples/models/pricing/1 --experiment canary-demo \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
echo "version $version"

step "canary: version $version takes 10% and every node serves it"
"$OKLA" deploy pricing --canary "$version" --weight 10 --wait 60
"$OKLA" deploy status pricing

step "ten predictions: which version answered each"
for _ in $(seq 1 10); do
    "$OKLA" predict pricing --input "$INPUT" | tail -n 1
done

if [ "${1:-}" = --rollback ]; then
    step "roll the canary back"
    "$OKLA" deploy pricing --rollback --reason "canary demo" --wait 60
else
    step "promote version $version to 100%"
    "$OKLA" deploy pricing --promote "$version" --wait 60
fi
"$OKLA" deploy status pricing
