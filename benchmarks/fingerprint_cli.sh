#!/usr/bin/env bash
# The demo's run through the CLI (no Airflow), then its fingerprint: proves a refactor changed no
# prediction and no metric. Usage: benchmarks/fingerprint_cli.sh <empty store folder>
# Needs the demo's data (make demo generates .demo/data once).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
store="${1:?store folder}"
rm -rf "$store"
cd "$here"
PYTHONPATH="$here" .venv/bin/python -m ltv_core run --run-id fingerprint --logical-date 2025-11-04T00:00:00+00:00 \
  --data-root "$here/.demo/data" --store-root "$store" > "$store.log" 2>&1 || { tail -30 "$store.log"; exit 1; }
PYTHONPATH="$here" .venv/bin/python benchmarks/demo_fingerprint.py --store "$store" --run fingerprint
