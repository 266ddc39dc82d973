#!/usr/bin/env bash
# The demo behind `make demo`: run the credit-risk pipeline twice (the second run is fully
# cached), then print the lineage of the trained model. Starts from a clean state each time.
set -euo pipefail
cd "$(dirname "$0")"

rm -rf .conveyor
echo "== 1. first run: every step executes"
conveyor run
echo
echo "== 2. second run: nothing changed, every step is reused from the verified cache"
conveyor run
echo
echo "== 3. the model's lineage: data, params, code and the steps that used it"
conveyor lineage latest:train
echo
echo "== 4. the evaluation of the model"
conveyor artifacts show latest:evaluate --no-preview
conveyor runs show latest
echo
echo "Explore further from examples/credit-risk, with the venv's conveyor on your PATH:"
echo "  conveyor runs list | conveyor runs compare latest latest~1 --all | conveyor reproduce latest"
