#!/usr/bin/env bash
# Accuracy of the offline default classifier on the public datasets (not run in CI).
# Usage: bash bench/accuracy.sh [path/to/shared]   -> bench/results/*.json
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
data=$shared/datasets
out=bench/results
mkdir -p "$out"
triage=.venv/bin/triage

run() {
  local name=$1; shift
  echo "== $name: triage eval $*" >&2
  "$triage" eval "$@" --json > "$out/$name.json"
}

# banking77: 77 intents, 10 examples per intent, official test split, 3 seeds.
run banking77_intent "$data/banking77/banking77.csv" --label-col intent --shots 10 --seeds 3
# banking77 mapped onto the product's categories, 10 examples per intent (770 examples).
run banking77_category "$data/banking77/banking77.csv" --label-col category_proposed --shots 10 --shots-by intent --seeds 3
# CLINC150 out-of-scope queries against the default config: how many go to a human.
run clinc_oos_default "$data/clinc150_oos/clinc150.csv" --label-col intent --test-split oos_test
# CLINC150, 150 intents, 10 examples each: in-scope accuracy, then the out-of-scope rows.
run clinc_intent "$data/clinc150_oos/clinc150.csv" --label-col intent --shots 10 --seeds 3
run clinc_intent_oos "$data/clinc150_oos/clinc150.csv" --label-col intent --shots 10 --seeds 3 --test-split oos_test
# Support tickets, English rows, queue as label, 20 per queue (no split: the rest are tested).
run support_queue "$data/support_tickets/tickets.csv" --text-col body --label-col queue --where language=en --shots 20 --seeds 3
# The same tickets against the default config: how many ordinary tickets go to a human.
run support_default "$data/support_tickets/tickets.csv" --text-col body --label-col category_proposed --where language=en
# Priority of the same tickets against the default config (low / medium / high labels).
run support_priority "$data/support_tickets/tickets.csv" --text-col body --label-col priority --field priority --where language=en
