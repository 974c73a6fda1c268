#!/usr/bin/env bash
# Installs the dependencies when missing, configures and builds bnorm into build/.
# Usage: scripts/build.sh [BUILD_DIR [extra cmake args...]]
# BNORM_TARGET=NAME builds that target only (and what it needs).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
build_dir=${1:-build}
shift || true
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build_dir" ${BNORM_TARGET:+--target "$BNORM_TARGET"}
