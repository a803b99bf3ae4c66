#!/usr/bin/env bash
# GPU check for the Vulkan backend on an NVIDIA machine without network: runs PREBUILT binaries
# (nothing is compiled there) and prints a table of examples/s and peak memory.
#
# STATUS: written without a GPU and NOT RUN yet (the session that wrote it was lent no GPU
# machine). The binaries build here; expect to fix small things on the first real run.
#
# 1. Build on the development machine (x86-64; `--features vulkan` is a build, never run it on
#    lavapipe: it segfaults there). A target dir of its own keeps the release/vulkan artefacts
#    out of the shared dev one:
#
#      export CARGO_TARGET_DIR=/work/target-wgpu
#      cargo build --release --features vulkan --example gpu_workload
#      cargo test --release --features vulkan --test backends --no-run 2>&1 | tee /tmp/nr.log
#      mkdir -p .gpu && echo /.gpu/ >> .git/info/exclude
#      cp "$CARGO_TARGET_DIR/release/examples/gpu_workload" .gpu/
#      cp "$(grep -o '(.*backends-[0-9a-f]*)' /tmp/nr.log | tr -d '()')" .gpu/backends
#      strip .gpu/* && gzip -9 .gpu/*
#
#    Sizes seen: 104 MB each as built, 75 MB stripped, 18 MB stripped and gzipped. The device
#    tool carries at most 64 MiB in all, so carry the .gz files (this script unpacks them).
#    The clean release build of both took 17 min on the 2-core machine.
#
#    The Vulkan loader, if the GPU machine has none (`ldconfig -p | grep libvulkan` empty there;
#    see .library/device/README.md):
#
#      echo /.gl/ >> .git/info/exclude; mkdir -p .gl /tmp/amd64/partial
#      o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
#      apt-get $o update; (cd .gl && apt-get $o download libvulkan1)
#
# 2. Carry `.gpu` and `.gl` and run, in the repository root there:
#
#      bash scripts/gpu-check.sh .gpu          (device tool: carry [".gpu", ".gl"], timeout ~420 s)
#
#    It runs the cross-backend test binary (flex and vulkan in one binary: the tiny BERT with
#    non-zero adapters vs PyTorch within 1e-4, training losses vs flex) and then the SST-2-shaped
#    workload (examples/gpu_workload.rs) with random-weight MiniLM-L6 and BERT-base encoders:
#    Pfeiffer adapter training at batch 32, then inference at batch 64. Random weights: speed
#    does not depend on them, and the real checkpoints would not fit the 64 MiB carry limit.
#
# Output: the test log, one workload log per device and model, PyTorch's numbers on the same GPU
# (scripts/gpu_torch.py, dry-run on CPU: `python3 scripts/gpu_torch.py --device cpu --models minilm
# --train-steps 2 --infer-batches 1`), and a summary table; copies go to $OUT when that is set (the
# device tool brings $OUT back).
#
# Environment: TRAIN_STEPS (default 40), INFER_BATCHES (default 14), WARMUP (default 3),
# MODELS (default "minilm bert-base"), DEVICES (default "vulkan"; "vulkan cuda" for binaries
# built with `--features vulkan,cuda` after scripts/setup-cuda.sh — the parity test then runs
# both GPU backends in one binary, and the workload runs once per device).

set -uo pipefail

BIN=${1:-.gpu}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRAIN_STEPS=${TRAIN_STEPS:-40}
INFER_BATCHES=${INFER_BATCHES:-14}
WARMUP=${WARMUP:-3}
MODELS=${MODELS:-minilm bert-base}
DEVICES=${DEVICES:-vulkan}
LOGS=${OUT:-$(mktemp -d)}
status=0

# Unpack gzipped binaries (the carry limit) next to a writable copy.
if [ -f "$BIN/backends.gz" ] || [ -f "$BIN/gpu_workload.gz" ]; then
    unpacked=$(mktemp -d)
    for f in "$BIN"/*.gz; do gunzip -c "$f" >"$unpacked/$(basename "$f" .gz)"; done
    chmod +x "$unpacked"/*
    BIN=$unpacked
fi
for f in "$BIN/backends" "$BIN/gpu_workload"; do
    [ -x "$f" ] || { echo "gpu-check: missing executable $f (see the header for how to build)" >&2; exit 2; }
done

# Vulkan loader and the NVIDIA driver's ICD.
if ! ldconfig -p | grep 'libvulkan\.so\.1' >/dev/null; then
    if compgen -G "$ROOT/.gl/*.deb" >/dev/null; then
        for f in "$ROOT"/.gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    else
        echo "gpu-check: no libvulkan.so.1 and no .gl/*.deb to unpack" >&2
    fi
fi
nv=/usr/local/nvidia/share
[ -f $nv/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=$nv/vulkan/icd.d/nvidia_icd.json
[ -f $nv/glvnd/egl_vendor.d/10_nvidia.json ] &&
    export __EGL_VENDOR_LIBRARY_FILENAMES=$nv/glvnd/egl_vendor.d/10_nvidia.json
export BURN_PEFT_FIXTURES="$ROOT/fixtures/tiny-bert"

nvidia-smi -L 2>&1 || true
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"

# 1. Parity: the cross-backend test binary (built with `--features vulkan`: flex + vulkan).
echo "== parity: $BIN/backends"
timeout 180 "$BIN/backends" --nocapture --test-threads=1 2>&1 | tee "$LOGS/parity.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
    echo "gpu-check: parity test FAILED (exit $rc)"
    status=1
else
    for device in $DEVICES; do
        if grep -q "backend \`$device\`: device" "$LOGS/parity.log"; then
            echo "gpu-check: parity test passed on $device"
        else
            echo "gpu-check: parity test did not run on $device"
            status=1
        fi
    done
fi

# 2. Workload, one process per model so each gets its own peak-memory reading.
summary=()
for device in $DEVICES; do
for model in $MODELS; do
    echo "== workload: $model on $device"
    mem="$LOGS/mem-$device-$model.csv"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$mem" 2>/dev/null &
    sampler=$!
    timeout 300 "$BIN/gpu_workload" --device "$device" --models "$model" \
        --train-steps "$TRAIN_STEPS" --infer-batches "$INFER_BATCHES" --warmup "$WARMUP" \
        2>&1 | tee "$LOGS/workload-$device-$model.log"
    rc=${PIPESTATUS[0]}
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null
    peak=$(sort -n "$mem" 2>/dev/null | tail -1)
    [ "$rc" -ne 0 ] && { echo "gpu-check: workload $model on $device FAILED (exit $rc)"; status=1; }
    while IFS= read -r line; do
        summary+=("| $device $line ${peak:-n/a} |")
    done < <(grep "^| $model |" "$LOGS/workload-$device-$model.log")
done
done

# 3. PyTorch on the same GPU in the same lease (the machine has torch + transformers, no
#    `adapters`: scripts/gpu_torch.py writes the Pfeiffer adapter itself).
models_csv=$(echo "$MODELS" | tr ' ' ',')
if python3 -c 'import torch, transformers' 2>/dev/null; then
    echo "== PyTorch: scripts/gpu_torch.py"
    timeout 600 python3 "$ROOT/scripts/gpu_torch.py" --models "$models_csv" \
        --train-steps "$TRAIN_STEPS" --infer-batches "$INFER_BATCHES" --warmup "$WARMUP" \
        2>&1 | tee "$LOGS/torch.log" || { echo "gpu-check: gpu_torch.py FAILED"; status=1; }
else
    echo "gpu-check: no python3 with torch + transformers here; PyTorch side skipped"
fi

echo
echo "== summary ($DEVICES on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
echo "| device | model | phase | batch | timed steps | mean padded len | examples/s | peak allocator MiB | peak nvidia-smi MiB (whole GPU) |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
exit $status
