#!/usr/bin/env bash
# Run the fuzz targets one after another (needs nightly and cargo-fuzz; see README.md).
#   fuzz/run.sh                      # every target, 1M executions each
#   RUNS=100000 fuzz/run.sh glue_tsv # some targets, fewer executions
# Logs go to fuzz/logs/<target>.log; new inputs to fuzz/corpus/<target>/; crashes to
# fuzz/artifacts/<target>/ (copy them to fuzz/regressions/<target>/ once fixed).
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-1000000}
MAX_TIME=${MAX_TIME:-1800}
FLAGS=(-s none --codegen-units 16)
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
mkdir -p logs
cargo +nightly fuzz build "${FLAGS[@]}"
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t"
    cargo +nightly fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -runs="$RUNS" -max_total_time="$MAX_TIME" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -timeout=10 -print_final_stats=1 >"logs/$t.log" 2>&1 || echo "$t: FAILED (see logs/$t.log)"
    tail -n 12 "logs/$t.log" | grep -E "stat::number_of_executed_units|Done|ERROR|SUMMARY" || true
done
