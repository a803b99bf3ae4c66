#!/usr/bin/env bash
# burn-peft vs PyTorch + AdapterHub on the peer benchmark's workloads, in one run.
#
#   PEFT_ASSETS_DIR=/path/to/shared PY=/path/to/venv/bin/python scripts/bench.sh [options]
#
# Options:
#   --features F   cargo features selecting the backend (default: the crate's default, flex)
#   --device D     device name passed to the bench (flex, wgpu, cuda, ...)
#   --repeats N    W1 repeats per workload (default 3, as the peer); W2 uses 3 timed passes
#   --all          also double_seq_bn, head and full (W1, W2, W3)
#   --no-torch     skip the PyTorch side even if it is importable
#   --out DIR      where results.md and the raw JSON lines go (default: bench/)
#
# Assets: $PEFT_ASSETS_DIR/models/all-MiniLM-L6-v2 and $PEFT_ASSETS_DIR/data/sst2, or
# MODEL_DIR / DATA_DIR. PyTorch side: $PY (default python3) must `import torch, adapters`
# (pinned: torch 2.15.0, transformers 4.57.6, adapters 1.3.0); without it, the report shows the
# peer's stored numbers from $PEFT_ASSETS_DIR/bench/peer/results, labelled as not same run.
# NOTES=file.md appends that markdown to the report.
# Every timed workload waits (up to QUIET_WAIT seconds, default 1800) for the machine to be
# <10% busy first; the two sides never run at the same time.
set -euo pipefail

# Everything runs inside main(), parsed in full before it starts, so that editing this file
# during a (long) run cannot derail it.
main() {
  cd "$(dirname "$0")/.."

  FEATURES=()
  DEVICE=()
  REPEATS=3
  ALL=0
  TORCH=1
  OUT=bench
  while [ $# -gt 0 ]; do
    case "$1" in
      --features) FEATURES=(--features "$2"); shift 2 ;;
      --device) DEVICE=(--device "$2"); shift 2 ;;
      --repeats) REPEATS="$2"; shift 2 ;;
      --all) ALL=1; shift ;;
      --no-torch) TORCH=0; shift ;;
      --out) OUT="$2"; shift 2 ;;
      -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done

  PY="${PY:-python3}"
  QUIET_WAIT="${QUIET_WAIT:-1800}"
  ASSETS=()
  [ -n "${MODEL_DIR:-}" ] && ASSETS+=(--model "$MODEL_DIR")
  [ -n "${DATA_DIR:-}" ] && ASSETS+=(--data "$DATA_DIR")
  if [ ${#ASSETS[@]} -eq 0 ] && [ -z "${PEFT_ASSETS_DIR:-}" ]; then
    echo "warning: neither PEFT_ASSETS_DIR nor MODEL_DIR/DATA_DIR set: random weights and synthetic batches (not comparable)" >&2
  fi

  log() { echo "[bench.sh $(date +%H:%M:%S)] $*" >&2; }

  # Wait until the machine is less than 10% busy (1 s sample of /proc/stat), up to QUIET_WAIT s.
  # Time of niced processes (nice > 0) is not counted: they yield the CPU to the benchmark.
  # The per-run "foreign cores" figure in the report counts them, though.
  wait_quiet() {
    [ -r /proc/stat ] || return 0
    local waited=0
    while :; do
      local a b
      a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
      local busy=$(( (b[1]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[3]+a[6]+a[7]+a[8]) ))
      local total=$(( busy + (b[2]+b[4]+b[5]) - (a[2]+a[4]+a[5]) ))
      if [ "$total" -le 0 ] || [ $(( 100 * busy / total )) -lt 10 ]; then return 0; fi
      if [ "$waited" -ge "$QUIET_WAIT" ]; then
        log "machine still $(( 100 * busy / total ))% busy after ${waited}s (load $(cut -d' ' -f1 /proc/loadavg)); measuring anyway"
        return 0
      fi
      log "machine $(( 100 * busy / total ))% busy (load $(cut -d' ' -f1 /proc/loadavg)); waiting"
      sleep 10; waited=$(( waited + 11 ))
    done
  }

  log "building the bench (release)"
  BIN=$(cargo bench --bench peft_bench --no-run "${FEATURES[@]}" --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*peft_bench[^"]*"' | tail -1 | sed 's/"executable":"//; s/"$//')
  if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    cargo bench --bench peft_bench --no-run "${FEATURES[@]}" >&2  # show the error
    echo "could not find the bench executable" >&2; exit 1
  fi
  log "bench binary: $BIN"

  HAVE_TORCH=0
  if [ "$TORCH" = 1 ] && "$PY" -c "import torch, adapters, transformers" >/dev/null 2>&1; then
    HAVE_TORCH=1
    log "PyTorch side: $("$PY" -c 'import torch, transformers, adapters; print("torch", torch.__version__, "transformers", transformers.__version__, "adapters", adapters.__version__)')"
  else
    log "PyTorch side unavailable ($PY cannot import torch, adapters): stored peer numbers will be shown"
  fi

  mkdir -p "$OUT/raw"
  OURS="$OUT/raw/ours.jsonl"; THEIRS="$OUT/raw/torch.jsonl"
  : > "$OURS"; : > "$THEIRS"

  untimed() { log "ours: $*"; "$BIN" "$@" "${DEVICE[@]}" "${ASSETS[@]}" --json-out "$OURS" >/dev/null; }
  ours() { wait_quiet; untimed "$@"; }
  theirs() {
    [ "$HAVE_TORCH" = 1 ] || return 0
    wait_quiet; log "torch: $*"
    "$PY" scripts/bench_torch.py "$@" "${ASSETS[@]}" --json-out "$THEIRS" >/dev/null
  }

  W1_METHODS=(seq_bn); W2_VARIANTS=(base seq_bn); W3_METHODS=(seq_bn)
  if [ "$ALL" = 1 ]; then
    W1_METHODS=(seq_bn double_seq_bn head full); W2_VARIANTS=(base head seq_bn double_seq_bn)
    W3_METHODS=(seq_bn head full)
  fi

  untimed params
  untimed sizes
  for m in "${W1_METHODS[@]}"; do
    for d in 0.1 0; do
      if [ "$d" = 0 ] && [ "$m" != seq_bn ] && [ "$ALL" != 1 ]; then continue; fi
      ours w1 --method "$m" --dropout "$d" --repeats "$REPEATS"
      theirs w1 --method "$m" --dropout "$d" --repeats "$REPEATS"
    done
  done
  for v in "${W2_VARIANTS[@]}"; do
    ours w2 --variant "$v" --passes 3
    theirs w2 --variant "$v" --passes 3
  done
  for m in "${W3_METHODS[@]}"; do
    ours w3 --method "$m"
    theirs w3 --method "$m"
  done
  ours overhead
  theirs overhead

  REPORT_ARGS=(--ours "$OURS" --out "$OUT/results.md")
  [ "$HAVE_TORCH" = 1 ] && REPORT_ARGS+=(--torch "$THEIRS")
  [ -n "${NOTES:-}" ] && REPORT_ARGS+=(--notes "$NOTES")  # extra markdown appended to the report
  "$BIN" report "${REPORT_ARGS[@]}"
}

main "$@"; exit $?
