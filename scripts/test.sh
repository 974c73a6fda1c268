#!/usr/bin/env bash
# Runs every test, installing what is missing first:
#   1. the Release build: unit tests (doctest) and the CLI, golden and catalog tests (CTest);
#   2. the same suite built with AddressSanitizer and UndefinedBehaviorSanitizer, for the
#      baseline x86-64 (so that the portable fallbacks of lib/src/simd.hpp are tested too),
#      and a check that this build writes the same bits as the Release one; then the unit
#      tests with the sanitizers again, for the host's instruction set (the Release build's
#      kernels, AVX-512 on this project's machines);
#   3. the suite built with ThreadSanitizer, for the library's pool of threads;
#   4. the libFuzzer targets for the NPY and CSV readers, 60 s each (FUZZ_SECONDS).
# With --quick only stage 1 runs. The CTests run two at a time (one per core here); the
# sanitizer builds keep line tables only (-g1), enough for their reports' stack traces, and
# compile in 60% of the time that full debug information takes.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)
sanitized=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")
stage() { echo "== $1 (at ${SECONDS} s) =="; }

stage "1/4 tests (Release build)"
bash scripts/build.sh build
ctest --test-dir build --output-on-failure -j "$jobs"
[ $quick = 1 ] && exit 0

stage "2/4 tests under AddressSanitizer + UndefinedBehaviorSanitizer"
bash scripts/build.sh build-asan -DBNORM_SANITIZE=ON "${sanitized[@]}" -DBNORM_ARCH=none
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 /usr/bin/python3 scripts/same_bits.py build/bnorm build-asan/bnorm
# only the unit tests here, so only their program is built
BNORM_TARGET=bnorm_tests bash scripts/build.sh build-asan-host -DBNORM_SANITIZE=ON "${sanitized[@]}"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan-host --output-on-failure -R '^unit$'

stage "3/4 tests under ThreadSanitizer (the library's pool of threads)"
bash scripts/build.sh build-tsan -DBNORM_TSAN=ON "${sanitized[@]}"
# One unit test is left out: under ThreadSanitizer a std::call_once whose function throws
# never returns (the pthread_once interceptor keeps its guard), and that test makes the
# exact kernel's run_exact throw inside call_once. It runs in the two stages above.
TSAN_OPTIONS=halt_on_error=1 build-tsan/bnorm_tests -tce="the exact kernel's channels*"
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -E '^unit$' -j "$jobs"

stage "4/4 fuzzing the NPY and CSV readers"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
echo "all stages passed in ${SECONDS} s"
