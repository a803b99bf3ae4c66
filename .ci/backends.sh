#!/usr/bin/env bash
# Cross-backend CI step (issue 6), self-contained; `.ci/run` calls it after the flex build and
# tests.
#
#   .ci/backends.sh [wgpu] [checks]      (no argument: both, in that order)
#
# wgpu    Runs tests/backends.rs with wgpu on Mesa lavapipe (Vulkan on the CPU) in one binary
#         with flex and ndarray: `cargo test --features wgpu,ndarray --test backends`. The tiny
#         BERT with non-zero AdapterHub adapters must match PyTorch within 1e-4 on every
#         backend, and the backends each other; three AdamW steps must lower the loss alike
#         (within 1e-3 of each other and of the trajectory recorded on flex). The step fails
#         unless the test output shows that wgpu really ran both tests.
#         Installs `mesa-vulkan-drivers libvulkan1` if lavapipe is missing (needs root or sudo;
#         `apt-get update` once first) and points the Vulkan loader at lavapipe alone
#         (VK_DRIVER_FILES, and VK_ICD_FILENAMES for older loaders).
#         Never add `vulkan` to this build: burn's vulkan (SPIR-V) compiler segfaults on
#         lavapipe at the first kernel.
# checks  Type-checks each other backend feature alone, all targets (a check; nothing runs):
#         `--no-default-features --features ndarray`, `wgpu`, `vulkan`, `metal` (on Linux this
#         checks the code, it cannot run: Metal needs macOS), and `cuda` with the LLVM that
#         scripts/setup-cuda.sh installs from PyPI (so cubecl-llvm's build script runs without
#         its own download), or under DOCS_RS=1 where those wheels cannot be installed.
#
# Build settings: profile `ci-backends` (root Cargo.toml: the dev profile at opt-level 0, no
#   debug info, for dependencies too). Each feature set compiles burn and most of its
#   dependencies again (features unify differently, down to serde and syn), so these builds
#   reuse almost nothing from the flex build. Unoptimised, the clean wgpu+ndarray+flex test
#   build takes about 4 minutes on 2 cores instead of about 25 with the dev profile's opt-level
#   3 dependencies, and the test still runs in about 15 s. Each check then takes about 1 to
#   1.5 minutes (build scripts and proc-macros are shared). Whole step: about 11 minutes.
# Target directory: BACKENDS_TARGET_DIR if set, else "${CARGO_TARGET_DIR:-<repo>/target}/backends":
#   inside the main target directory, so a CI cache of that directory keeps it too and
#   `cargo clean` removes it, but a tree of its own (own lock, own fingerprints), so these
#   builds never replace or invalidate the flex build's artefacts. About 3 GiB.
#   Do not run this concurrently with another cargo on the same directory: cargo waits on the
#   directory lock.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${BACKENDS_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/backends}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
CARGO_ARGS=(--locked --profile ci-backends)

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(wgpu checks)

log() { printf '\n== backends: %s\n' "$*"; }

timed() {
    local label=$1
    shift
    local t0=$SECONDS
    log "$label: $*"
    "$@"
    log "$label: done in $((SECONDS - t0)) s"
}

find_lavapipe() {
    local f
    for f in /usr/share/vulkan/icd.d/lvp_icd.*.json /etc/vulkan/icd.d/lvp_icd.*.json; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

ensure_lavapipe() {
    if find_lavapipe >/dev/null && ldconfig -p | grep 'libvulkan\.so\.1' >/dev/null; then
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "backends: lavapipe missing and not root: apt-get install mesa-vulkan-drivers libvulkan1" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    log "installing mesa-vulkan-drivers libvulkan1 (lavapipe)"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        mesa-vulkan-drivers libvulkan1
    find_lavapipe >/dev/null || { echo "backends: lavapipe ICD not found after install" >&2; exit 1; }
}

run_wgpu() {
    ensure_lavapipe
    local icd log_file ran
    icd=$(find_lavapipe)
    # Only lavapipe: the loader then does not probe (and complain about) absent GPU drivers.
    export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
    # Mesa's window-system code complains on every device creation without it.
    if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
        XDG_RUNTIME_DIR=$(mktemp -d)
        export XDG_RUNTIME_DIR
    fi
    log "Vulkan ICD: $icd"
    timed "build wgpu+ndarray+flex test" \
        cargo test "${CARGO_ARGS[@]}" --features wgpu,ndarray --test backends --no-run
    log_file=$(mktemp)
    local t0=$SECONDS
    log "run wgpu+ndarray+flex test"
    # --test-threads=1: lavapipe already uses every core; two tests at once only contend.
    # (pipefail is on: a failing test fails the step.)
    cargo test "${CARGO_ARGS[@]}" --features wgpu,ndarray --test backends -- \
        --nocapture --test-threads=1 2>&1 | tee "$log_file"
    log "run wgpu+ndarray+flex test: done in $((SECONDS - t0)) s"
    # Never a silent pass: the wgpu device must have run both tests.
    ran=$(grep -o 'backend `wgpu`: device' "$log_file" | wc -l)
    rm -f "$log_file"
    if [ "$ran" -lt 2 ]; then
        echo "backends: wgpu did not run both tests (seen $ran times in the output)" >&2
        exit 1
    fi
}

# Without an NVIDIA driver (CI), `--device cuda` must be a one-line typed error, not a panic.
cuda_without_driver() {
    if ldconfig -p | grep -q 'libcuda\.so\.1'; then
        log "cuda: a driver is installed here; the no-driver check is skipped"
        return 0
    fi
    local out rc=0
    out=$("$CARGO_TARGET_DIR/ci-backends/examples/sst2" --device cuda 2>&1) || rc=$?
    if [ "$rc" -eq 0 ] || ! grep -q 'libcuda.so.1' <<<"$out" || grep -q 'panicked' <<<"$out"; then
        echo "backends: sst2 --device cuda without a driver should fail with a typed error; got (exit $rc):" >&2
        echo "$out" >&2
        exit 1
    fi
    log "cuda without a driver: $out"
}

run_checks() {
    local f
    for f in ndarray wgpu vulkan metal; do
        timed "check $f" cargo check "${CARGO_ARGS[@]}" --no-default-features --features "$f" --all-targets
    done
    # cuda: with the LLVM that scripts/setup-cuda.sh prepares, the real build scripts run
    # (cubecl-llvm's llvm-config queries and C++ shims), so a bundler or cubecl bump that breaks
    # the offline route fails here. Where the wheels cannot be installed (no pip or no PyPI),
    # fall back to DOCS_RS=1, which skips those build scripts and checks only our code.
    local rc=0
    scripts/setup-cuda.sh || rc=$?
    case "$rc" in
        0) timed "check cuda (LLVM prepared by setup-cuda.sh)" \
            cargo check "${CARGO_ARGS[@]}" --no-default-features --features cuda --all-targets
           # A real build and link of the flagship example and the cross-backend test binary.
           timed "build cuda sst2 example" \
               cargo build "${CARGO_ARGS[@]}" --no-default-features --features cuda --example sst2
           timed "build cuda backends test" \
               cargo test "${CARGO_ARGS[@]}" --no-default-features --features cuda --test backends --no-run
           cuda_without_driver ;;
        3) log "setup-cuda.sh could not install LLVM here; checking cuda with DOCS_RS=1"
           timed "check cuda (DOCS_RS=1)" env DOCS_RS=1 \
               cargo check "${CARGO_ARGS[@]}" --no-default-features --features cuda --all-targets ;;
        *) echo "backends: scripts/setup-cuda.sh failed (exit $rc)" >&2; exit 1 ;;
    esac
}

log "target dir: $CARGO_TARGET_DIR"
for step in "${steps[@]}"; do
    case "$step" in
        wgpu) run_wgpu ;;
        checks) run_checks ;;
        *) echo "backends: unknown step '$step' (wgpu, checks)" >&2; exit 2 ;;
    esac
done
log "all passed"
