#!/usr/bin/env bash
# Ours against the peer's own `bench_peer.py`, interleaved in one run: every round runs each
# workload once on our side and once on theirs, back to back, so that both see the same load.
#
#   PEFT_ASSETS_DIR=/path/to/shared PY=/path/to/venv/bin/python scripts/bench_pair.sh [options]
#
# Options:
#   --rounds N     rounds (default 3); the report takes the median per side
#   --out DIR      where the raw JSON lines and pair.md go (default: bench/pair)
#   --bin FILE     our bench executable (default: built by `cargo bench --no-run`)
#   --only LIST    comma-separated subset of: w1_seq_bn_0.1, w1_seq_bn_0, w2_base, w2_seq_bn
#                  (default), and w1_lora (PEFT LoRA r8/alpha16 on query+value, dropout 0.1),
#                  w2_lora, w2_lora_merged
#   --w1-steps N   W1 timed steps on both sides (default 60, the peer's) and --w1-warmup N (5)
#
# The peer script is $PEFT_ASSETS_DIR/bench/peer/bench_peer.py (PEER to override). Neither side
# waits for a quiet machine (its own check would never pass on a shared machine): the load is
# the same for both, and the report states it (load average and foreign cores per run).
set -euo pipefail

main() {
  cd "$(dirname "$0")/.."
  ROUNDS=3
  OUT=bench/pair
  BIN=""
  ONLY="w1_seq_bn_0.1,w1_seq_bn_0,w2_base,w2_seq_bn"
  W1_STEPS=60
  W1_WARMUP=5
  while [ $# -gt 0 ]; do
    case "$1" in
      --rounds) ROUNDS="$2"; shift 2 ;;
      --out) OUT="$2"; shift 2 ;;
      --bin) BIN="$2"; shift 2 ;;
      --only) ONLY="$2"; shift 2 ;;
      --w1-steps) W1_STEPS="$2"; shift 2 ;;
      --w1-warmup) W1_WARMUP="$2"; shift 2 ;;
      -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  : "${PEFT_ASSETS_DIR:?set PEFT_ASSETS_DIR (model, data and the peer script)}"
  PY="${PY:-python3}"
  PEER="${PEER:-$PEFT_ASSETS_DIR/bench/peer/bench_peer.py}"
  log() { echo "[bench_pair $(date +%H:%M:%S)] $*" >&2; }

  if [ -z "$BIN" ]; then
    BIN=$(cargo bench --bench peft_bench --no-run --message-format=json 2>/dev/null \
      | grep -o '"executable":"[^"]*peft_bench[^"]*"' | tail -1 | sed 's/"executable":"//; s/"$//')
  fi
  [ -x "$BIN" ] || { echo "no bench executable ($BIN)" >&2; exit 1; }
  mkdir -p "$OUT"
  OURS="$OUT/ours.jsonl"; THEIRS="$OUT/peer.jsonl"; : > "$OURS"; : > "$THEIRS"
  export PEER_MODEL_DIR="$PEFT_ASSETS_DIR/models/all-MiniLM-L6-v2"
  export PEER_DATA_DIR="$PEFT_ASSETS_DIR/data/sst2"

  # One JSON line per run: {side, workload, load1, ...the side's own record}.
  run_ours() {  # workload-id, bench args...
    local id="$1"; shift
    local tmp; tmp=$(mktemp)
    local load; load=$(cut -d' ' -f1 /proc/loadavg)
    "$BIN" "$@" --json-out "$tmp" >/dev/null
    "$PY" -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(json.dumps({"side":"ours","workload":sys.argv[2],"load1":float(sys.argv[3]),"examples_per_s":r["examples_per_s"]["median"],"foreign_cores":[x.get("foreign_cores") for x in r.get("repeats", r.get("passes", []))]}))' "$tmp" "$id" "$load" >> "$OURS"
    rm -f "$tmp"
  }
  run_peer() {  # workload-id, peer args...
    local id="$1"; shift
    local tmp; tmp=$(mktemp)
    local load; load=$(cut -d' ' -f1 /proc/loadavg)
    "$PY" "$PEER" "$@" --wait-quiet 0 --max-foreign -1 --repeats 1 --out "$tmp" >/dev/null
    "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({"side":"peer","workload":sys.argv[2],"load1":float(sys.argv[3]),"examples_per_s":r["examples_per_s"]["median"],"foreign_cores":[x.get("foreign_cores") for x in r.get("repeats",[])]}))' "$tmp" "$id" "$load" >> "$THEIRS"
    rm -f "$tmp"
  }
  want() { [[ ",$ONLY," == *",$1,"* ]]; }

  for r in $(seq 1 "$ROUNDS"); do
    log "round $r / $ROUNDS"
    for d in 0.1 0; do
      if want "w1_seq_bn_$d"; then
        log "w1 seq_bn dropout $d: ours"; run_ours "w1_seq_bn_$d" w1 --method seq_bn --dropout "$d" --repeats 1 --warmup "$W1_WARMUP" --steps "$W1_STEPS"
        log "w1 seq_bn dropout $d: peer"; run_peer "w1_seq_bn_$d" train --method seq_bn --dropout "$d" --warmup "$W1_WARMUP" --steps "$W1_STEPS"
      fi
    done
    if want w1_lora; then
      log "w1 lora: ours"; run_ours w1_lora w1 --method lora --dropout 0.1 --repeats 1 --warmup "$W1_WARMUP" --steps "$W1_STEPS"
      log "w1 lora: peer"; run_peer w1_lora train --method lora --dropout 0.1 --warmup "$W1_WARMUP" --steps "$W1_STEPS"
    fi
    for v in base seq_bn lora lora_merged; do
      if want "w2_$v"; then
        log "w2 $v: ours"; run_ours "w2_$v" w2 --variant "$v" --passes 1
        log "w2 $v: peer"; run_peer "w2_$v" infer --variant "$v"
      fi
    done
  done

  "$PY" - "$OURS" "$THEIRS" "$OUT/pair.md" "$ROUNDS" <<'EOF'
import json, statistics, subprocess, sys
ours, theirs, out, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [json.loads(l) for f in (ours, theirs) for l in open(f) if l.strip()]
ids = list(dict.fromkeys(r["workload"] for r in rows))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines = [f"Interleaved run, {rounds} rounds, commit {commit}, {cpu}, nproc {len([l for l in open('/proc/cpuinfo') if l.startswith('processor')])}.", "",
         "| workload | ours ex/s (median; runs) | peer ex/s (median; runs) | ours / peer | load avg during runs |",
         "|---|---:|---:|---:|---:|"]
for i in ids:
    o = [r["examples_per_s"] for r in rows if r["workload"] == i and r["side"] == "ours"]
    p = [r["examples_per_s"] for r in rows if r["workload"] == i and r["side"] == "peer"]
    ld = [r["load1"] for r in rows if r["workload"] == i]
    mo, mp = statistics.median(o), statistics.median(p)
    lines.append(f"| {i} | {mo:.1f} ({', '.join(f'{x:.1f}' for x in o)}) | {mp:.1f} ({', '.join(f'{x:.1f}' for x in p)}) | {mo / mp:.2f}x | {min(ld):.1f}-{max(ld):.1f} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
}

main "$@"; exit $?
