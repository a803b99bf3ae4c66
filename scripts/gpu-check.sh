#!/usr/bin/env bash
# GPU check for the Vulkan and CUDA backends on an NVIDIA machine without network: runs ONE
# PREBUILT binary (examples/gpu_workload.rs; nothing is compiled there) and prints the parity
# results and a table of examples/s and peak memory, beside PyTorch on the same GPU.
#
# STATUS: not yet run on a GPU (no session so far was lent one). Dry-run end to end on the
# 2-core development machine with wgpu on Mesa lavapipe standing in for the GPU (binary of
# `--profile ci-backends --features wgpu,ndarray`, stripped and gzipped: 30 MB):
#
#   DEVICES=wgpu MODELS=minilm TRAIN_STEPS=2 INFER_BATCHES=1 WARMUP=1 \
#     PYTHON=/work/venv/bin/python TORCH_DEVICE=cpu bash scripts/gpu-check.sh /tmp/gpudry/bin
#
# What only a GPU can show (driver, ICD paths, memory readings, speed) is untried.
#
# 1. Build on the development machine (x86-64). `--features vulkan` is a build, never run it on
#    lavapipe (it segfaults there); `cuda` needs the LLVM of scripts/setup-cuda.sh first. A
#    target dir of its own keeps the release GPU artefacts out of the shared dev one:
#
#      bash scripts/setup-cuda.sh
#      export CARGO_TARGET_DIR=/work/target-gpu
#      cargo build --release --features vulkan,cuda --example gpu_workload
#      mkdir -p .gpu && echo /.gpu/ >> .git/info/exclude
#      cp "$CARGO_TARGET_DIR/release/examples/gpu_workload" .gpu/
#      strip .gpu/gpu_workload && xz -9 -T2 .gpu/gpu_workload
#
#    ONE binary on purpose: it runs the cross-backend parity checks too (`--parity`, the same
#    code as tests/backends.rs: examples/common/parity.rs). The device tool carries at most
#    64 MiB in all, and a CUDA build links LLVM statically: the release sst2 example with
#    `cuda` was 176 MB, 34 MB xz-compressed, so two such binaries would not fit. Vulkan alone:
#    104 MB as built, 18 MB stripped and gzipped. This script unpacks `.gz` and `.xz` files.
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
#      DEVICES="vulkan cuda" bash scripts/gpu-check.sh .gpu
#                                   (device tool: carry [".gpu", ".gl"], timeout ~480 s)
#
#    Per device it runs `gpu_workload --parity` (the tiny BERT with non-zero adapters vs
#    PyTorch within 1e-4, three training steps vs the losses recorded on flex, both also vs flex
#    in the same process) and then the SST-2-shaped workload with random-weight MiniLM-L6 and
#    BERT-base encoders: Pfeiffer adapter training at batch 32, then inference at batch 64.
#    Random weights: speed does not depend on them, and the real checkpoints would not fit the
#    64 MiB carry limit.
#
# Output: the parity logs, one workload log per device and model, PyTorch's numbers on the same GPU
# (scripts/gpu_torch.py, dry-run on CPU: `python3 scripts/gpu_torch.py --device cpu --models minilm
# --train-steps 2 --infer-batches 1`), and a summary table; copies go to $OUT when that is set (the
# device tool brings $OUT back).
#
# Environment: TRAIN_STEPS (default 40), INFER_BATCHES (default 14), WARMUP (default 3),
# MODELS (default "minilm bert-base"), PYTHON (default python3), TORCH_DEVICE (default cuda: the
# device scripts/gpu_torch.py runs on; cpu for a dry run), DEVICES (default "vulkan"; "vulkan cuda" for binaries
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
PYTHON=${PYTHON:-python3}
TORCH_DEVICE=${TORCH_DEVICE:-cuda}
LOGS=${OUT:-$(mktemp -d)}
status=0

# Unpack compressed binaries (the carry limit) into a writable directory.
if compgen -G "$BIN/*.gz" >/dev/null || compgen -G "$BIN/*.xz" >/dev/null; then
    unpacked=$(mktemp -d)
    for f in "$BIN"/*.gz; do [ -f "$f" ] && gunzip -c "$f" >"$unpacked/$(basename "$f" .gz)"; done
    for f in "$BIN"/*.xz; do [ -f "$f" ] && xz -dc "$f" >"$unpacked/$(basename "$f" .xz)"; done
    chmod +x "$unpacked"/*
    BIN=$unpacked
fi
[ -x "$BIN/gpu_workload" ] ||
    { echo "gpu-check: missing executable $BIN/gpu_workload (see the header for how to build)" >&2; exit 2; }

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

# 1. Parity, per device: `gpu_workload --parity` (examples/common/parity.rs, as tests/backends.rs).
for device in $DEVICES; do
    echo "== parity: $device"
    timeout 300 "$BIN/gpu_workload" --parity --device "$device" 2>&1 | tee "$LOGS/parity-$device.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "gpu-check: parity FAILED on $device (exit $rc)"
        status=1
    elif grep -q "backend \`$device\`: device" "$LOGS/parity-$device.log"; then
        echo "gpu-check: parity passed on $device"
    else
        echo "gpu-check: parity did not run on $device"
        status=1
    fi
done

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
if "$PYTHON" -c 'import torch, transformers' 2>/dev/null; then
    echo "== PyTorch: scripts/gpu_torch.py on $TORCH_DEVICE"
    timeout 600 "$PYTHON" "$ROOT/scripts/gpu_torch.py" --device "$TORCH_DEVICE" --models "$models_csv" \
        --train-steps "$TRAIN_STEPS" --infer-batches "$INFER_BATCHES" --warmup "$WARMUP" \
        2>&1 | tee "$LOGS/torch.log" || { echo "gpu-check: gpu_torch.py FAILED"; status=1; }
else
    echo "gpu-check: no $PYTHON with torch + transformers here; PyTorch side skipped"
fi

echo
echo "== summary ($DEVICES on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
echo "| device | model | phase | batch | timed steps | mean padded len | examples/s | peak allocator MiB | peak nvidia-smi MiB (whole GPU) |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
exit $status
