#!/usr/bin/env bash
# The demo behind `make demo`: run the credit-risk training pipeline twice (the second run is
# fully cached), print the lineage of the trained model, check two new batches of
# applications (a fresh one passes its gates, a drifted one is stopped with the reasons),
# then deliver the model: register and package it, promote it through test (automatic:
# recorded checks, infra validation, load test), staging (shadow replay, approved by a
# second user) and production (manual approval, canary under synthetic traffic), then roll
# production back. Starts from a clean state and leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")"

load=""   # the subshell sending background traffic, while there is one
stop_traffic() {  # the loadtest the subshell runs first: killing the subshell leaves it running
  if [ -n "$load" ]; then
    pkill -P "$load" 2>/dev/null || true
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    load=""
  fi
}
stop_all() {
  stop_traffic
  for env in test staging production; do conveyor stop "$env" >/dev/null 2>&1 || true; done
}
trap stop_all EXIT
stop_all
rm -rf .conveyor
echo "== 1. training: data validated, model trained, evaluated and gated (blessed or not)"
conveyor run training
echo
echo "== 2. again: nothing changed, every step is reused from the verified cache"
trained=$(conveyor run training)   # the run id (stdout); progress goes to stderr
echo "$trained"
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

export CONVEYOR_USER=alice   # the data scientist; bob and carol approve
traffic() {  # synthetic traffic: requests at a fixed rate to an environment, for a while
  conveyor loadtest "$1/invocations" --package "$2" --rate "$3" --duration "$4" --warmup 0 \
    --ceiling 0 >/dev/null 2>&1
}
url() { echo "http://127.0.0.1:$1"; }

echo "== 7. register the trained model and build its release package"
conveyor model register "$trained" --name credit-risk --description "first release"
conveyor model package credit-risk:1
echo
echo "== 8. promote to test: automatic once the recorded checks, infra validation and load test pass"
conveyor promote credit-risk:1 --to test
traffic "$(url 28601)" credit-risk:1 200 2s   # what test answers is logged, for staging's shadow gate
sleep 2.5                                     # the service writes its prediction log every 2 s
echo
echo "== 9. promote to staging: shadow replay of test's traffic, then bob approves"
conveyor promote credit-risk:1 --to staging
CONVEYOR_USER=bob conveyor approve 2 --comment "shadow replay agrees"
echo
echo "== 10. production is manual: bob asks, bob may not approve his own request, carol does"
CONVEYOR_USER=bob conveyor promote credit-risk:1 --to production
if CONVEYOR_USER=bob conveyor approve 3; then
  echo "unexpected: the requester approved his own production promotion" >&2
  exit 1
fi
CONVEYOR_USER=carol conveyor approve 3
echo
echo "== 11. a retrained model (another seed) goes the same way; production takes it by canary"
retrained=$(conveyor run training -p seed=8 2>/dev/null)
conveyor model register "$retrained" --name credit-risk --description "retrained, seed 8"
conveyor model package credit-risk:2
conveyor promote credit-risk:2 --to test
traffic "$(url 28601)" credit-risk:2 200 2s
sleep 2.5
conveyor promote credit-risk:2 --to staging
CONVEYOR_USER=bob conveyor approve 5
CONVEYOR_USER=bob conveyor promote credit-risk:2 --to production
traffic "$(url 28603)" credit-risk:2 300 60s &   # synthetic production traffic during the canary
load=$!
CONVEYOR_USER=carol conveyor approve 6
stop_traffic
echo
echo "== 12. carol rolls production back to version 1, at once"
CONVEYOR_USER=carol conveyor rollback production   # rolling back production takes an approver
echo
echo "== 13. where everything stands"
conveyor status
echo
conveyor history production
echo
echo "every environment's serving process is stopped on exit (conveyor stop ENV)"
echo "Explore further from examples/credit-risk, with the venv's conveyor on your PATH:"
echo "  conveyor runs list | conveyor runs compare latest latest~1 --all | conveyor reproduce latest~2"
