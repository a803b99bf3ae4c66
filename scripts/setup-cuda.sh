#!/usr/bin/env bash
# Prepare the LLVM that `--features cuda` links, so the build needs no download of its own.
#
#   scripts/setup-cuda.sh            # once per machine (idempotent)
#   cargo build --release --example sst2 --features cuda
#
# Why: burn/cuda -> burn-cuda 0.22.1 -> cubecl-cuda 0.11.3 -> cubecl-llvm 0.11.3, whose
# build-dependency tracel-llvm-bundler downloads an LLVM bundle from GitHub unless the directory
# ${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-<bundler version>/ already holds the
# marker file `.tracel-llvm-installed`. cubecl-llvm's build script then only runs that
# directory's bin/llvm-config and compiles two small C++ shims (no MLIR, no CUDA toolkit at build
# time; the NVIDIA driver is loaded at run time).
#
# What this does: installs LLVM 23.1 as static libraries with headers, the NVPTX target and an
# llvm-config (a Python 3 script) from two PyPI wheels, mlc-llvm-static and
# mlc-llvm-static-extra-targets (~90 MB download, ~400 MB on disk), into a cache directory
# (`pip install --no-deps --target`), links the bundler's directory to it and writes the marker.
# It refuses to run when Cargo.lock's tracel-llvm-bundler is not the version it was written for
# (a newer cubecl may want another LLVM: check, then update the two pins below).
#
# Needs: python3 with pip (also at build time: llvm-config is a Python script), a C++ compiler
# (g++), network access to PyPI. At run time: an NVIDIA GPU with its driver (libcuda.so.1);
# without one, `--device cuda` is a clear error and the default device falls back to the CPU.
#
# Exit status: 0 prepared (or already), 3 the wheels could not be installed here (no python3/pip
# or no network to PyPI: the caller may fall back), 1 anything else (e.g. a bundler version this
# script does not know: fix the script).
#
# Environment: PYTHON (default python3), BURN_PEFT_LLVM_CACHE (default
# ~/.cache/burn-peft/llvm-<wheel version>), XDG_DATA_HOME (where the bundler looks).

set -euo pipefail

BUNDLER_VERSION=23.1.0-4      # tracel-llvm-bundler this script prepares (LLVM 23.1)
WHEEL_VERSION=23.1.1.post0    # mlc-llvm-static and mlc-llvm-static-extra-targets

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
CACHE=${BURN_PEFT_LLVM_CACHE:-$HOME/.cache/burn-peft/llvm-$WHEEL_VERSION}
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
DEST=$DATA/tracel/tracel-llvm-$BUNDLER_VERSION

die() { echo "setup-cuda: $*" >&2; exit 1; }

locked=$(awk '/^name = "tracel-llvm-bundler"$/ { getline; gsub(/version = |"/, ""); print; exit }' \
    "$ROOT/Cargo.lock")
[ -n "$locked" ] || die "tracel-llvm-bundler is not in Cargo.lock (did the cuda dependency chain change?)"
[ "$locked" = "$BUNDLER_VERSION" ] || die "Cargo.lock has tracel-llvm-bundler $locked, but this script prepares $BUNDLER_VERSION; find the LLVM version the new bundler expects and update BUNDLER_VERSION and WHEEL_VERSION"

if [ -f "$DEST/.tracel-llvm-installed" ] && "$PY" "$DEST/bin/llvm-config" --version >/dev/null 2>&1; then
    echo "setup-cuda: already prepared: $DEST (LLVM $("$PY" "$DEST/bin/llvm-config" --version))"
    exit 0
fi

cannot() { echo "setup-cuda: $*" >&2; exit 3; }
command -v "$PY" >/dev/null || cannot "$PY not found (llvm-config from the wheels is a Python script)"
command -v g++ >/dev/null || command -v c++ >/dev/null || die "no C++ compiler (cubecl-llvm compiles two C++ shims)"

prefix=$CACHE/mlc_llvm_static/static
if [ ! -x "$prefix/bin/llvm-config" ]; then
    echo "setup-cuda: installing LLVM $WHEEL_VERSION wheels into $CACHE"
    mkdir -p "$CACHE"
    "$PY" -m pip --version >/dev/null 2>&1 || cannot "$PY has no pip"
    "$PY" -m pip install --quiet --no-deps --target "$CACHE" \
        "mlc-llvm-static==$WHEEL_VERSION" "mlc-llvm-static-extra-targets==$WHEEL_VERSION" \
        || cannot "pip could not install the LLVM wheels (network to PyPI?)"
fi
[ -x "$prefix/bin/llvm-config" ] || die "the wheels did not provide $prefix/bin/llvm-config"
"$PY" "$prefix/bin/llvm-config" --targets-built | grep -qw NVPTX \
    || die "the LLVM in $prefix lacks the NVPTX target (mlc-llvm-static-extra-targets missing?)"
for lib in libLLVMNVPTXCodeGen.a libLLVMCore.a; do
    [ -f "$prefix/lib/$lib" ] || die "missing $prefix/lib/$lib"
done

mkdir -p "$(dirname "$DEST")"
if [ -e "$DEST" ] || [ -L "$DEST" ]; then
    [ -L "$DEST" ] || die "$DEST exists and is not a link made by this script; move it away first"
    rm "$DEST"
fi
ln -s "$prefix" "$DEST"
touch "$DEST/.tracel-llvm-installed"
echo "setup-cuda: prepared $DEST -> $prefix (LLVM $("$PY" "$DEST/bin/llvm-config" --version), NVPTX)"
echo "setup-cuda: now: cargo build --release --example sst2 --features cuda"
