#!/usr/bin/env bash
# Runs every test: builds bnorm (installing what is missing), then the unit tests
# (doctest), the CLI end-to-end tests and the golden accuracy tests (CTest).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build.sh build
ctest --test-dir build --output-on-failure "$@"
