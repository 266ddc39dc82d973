#!/usr/bin/env bash
# The demo behind `make demo`: run the credit-risk training pipeline twice (the second run is
# fully cached), print the lineage of the trained model, then check two new batches of
# applications: a fresh one passes its gates, a drifted one is stopped with the reasons.
# Starts from a clean state each time.
set -euo pipefail
cd "$(dirname "$0")"

rm -rf .conveyor
echo "== 1. training: data validated, model trained, evaluated and gated (blessed or not)"
conveyor run training
echo
echo "== 2. again: nothing changed, every step is reused from the verified cache"
conveyor run training
echo
echo "== 3. the model's lineage: data, params, code, and the steps that used it"
conveyor lineage latest:train
echo
echo "== 4. the run: steps, metrics and check results"
conveyor runs show latest
echo
echo "== 5. a fresh batch of applications: schema and drift gates pass"
conveyor run check_batch
echo
echo "== 6. a drifted batch (the generator's drift knob at 0.8): the drift gate stops the run"
if conveyor run check_batch -p drift=0.8; then
  echo "unexpected: the drifted batch passed its gates" >&2
  exit 1
fi
echo "(exit code 1, as expected: a gate failed, with every reason above)"
echo
echo "Explore further from examples/credit-risk, with the venv's conveyor on your PATH:"
echo "  conveyor runs list | conveyor runs compare latest latest~1 --all | conveyor reproduce latest~2"
