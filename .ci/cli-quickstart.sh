#!/usr/bin/env bash
# The README quickstart's `burn-peft` commands on the shared assets (real MiniLM, SST-2), made
# short (--max-steps) and offline (--model/--data point at the assets). `.ci/run` calls it after
# `cargo test`, which has built the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ASSETS="${PEFT_ASSETS_DIR:?set PEFT_ASSETS_DIR}"
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/burn-peft"
[ -x "$BIN" ] || cargo build --workspace --bin burn-peft
MODEL=(--model "$ASSETS/models/all-MiniLM-L6-v2")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export HF_HUB_OFFLINE=1
# A slice of SST-2 in GLUE's layout keeps this step to seconds.
mkdir sst2
head -n 401 "$ASSETS/data/sst2/train.tsv" > sst2/train.tsv
head -n 201 "$ASSETS/data/sst2/dev.tsv" > sst2/dev.tsv
DATA=(--data sst2)

"$BIN" train "${MODEL[@]}" --task sst2 "${DATA[@]}" --out runs/sst2 --max-steps 20 --log-every 0
# Own data: the first SST-2 rows as CSV with string labels.
{ echo "review,sentiment"; sed -n '2,201p' sst2/train.tsv \
    | awk -F'\t' '{gsub(/"/, "\"\"", $1); print "\"" $1 "\"," ($2 == 1 ? "positive" : "negative")}'; } > train.csv
{ echo "review,sentiment"; sed -n '2,101p' sst2/dev.tsv \
    | awk -F'\t' '{gsub(/"/, "\"\"", $1); print "\"" $1 "\"," ($2 == 1 ? "positive" : "negative")}'; } > dev.csv
"$BIN" train "${MODEL[@]}" --train train.csv --valid dev.csv --text-column review --label-column sentiment --out runs/mine --max-steps 5 --log-every 0
"$BIN" train "${MODEL[@]}" --task sst2 "${DATA[@]}" --method houlsby --out runs/sst2-houlsby --max-steps 5 --log-every 0
"$BIN" eval "${MODEL[@]}" --task sst2 "${DATA[@]}" --adapter runs/sst2/adapter --adapter runs/sst2-houlsby/adapter
echo "a gripping, beautifully acted film" | "$BIN" predict "${MODEL[@]}" --adapter runs/sst2/adapter
"$BIN" inspect runs/sst2/adapter
"$BIN" convert "${MODEL[@]}" runs/sst2/adapter runs/sst2-hub --to adapterhub
"$BIN" inspect runs/sst2-hub
"$BIN" train "${MODEL[@]}" --task sst2 "${DATA[@]}" --method lora --head-pooling pooler --out runs/sst2-lora --max-steps 5 --log-every 0
"$BIN" convert "${MODEL[@]}" runs/sst2-lora/adapter runs/sst2-peft --to peft
"$BIN" inspect runs/sst2-peft
"$BIN" generate --model "$ASSETS/models/tiny-random-gpt2" --tokenizer "$ASSETS/models/gpt2-tokenizer/tokenizer.json" \
    --prompt "Once upon a time" --max-new-tokens 20
# STS-B (regression) on the committed sample in GLUE's layout (no STS-B asset here).
STSB=(--data "$REPO/crates/peft-train/testdata/stsb")
"$BIN" train "${MODEL[@]}" --task stsb "${STSB[@]}" --out runs/stsb --max-steps 2 --batch-size 4 --log-every 0
"$BIN" eval "${MODEL[@]}" --task stsb "${STSB[@]}" --adapter runs/stsb/adapter
"$BIN" predict "${MODEL[@]}" --adapter runs/stsb/adapter --input "$REPO/crates/peft-train/testdata/stsb/dev.tsv" \
    --text-column sentence1 --text-pair-column sentence2
echo "cli quickstart: ok"
