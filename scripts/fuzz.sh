#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, with AddressSanitizer and UndefinedBehaviorSanitizer)
# and runs each for a bounded time on its seed corpus. Any crash, leak, timeout or sanitizer
# report fails the run, and the input is copied to tests/fuzz/regressions/<format>/ so
# that it becomes a regression test (tests/test_fuzz_regressions.cpp).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
bash scripts/setup.sh clang libclang-rt-14-dev
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBNORM_FUZZ=ON >/dev/null
cmake --build build-fuzz --target fuzz_npy fuzz_csv fuzz_csv_chunks >/dev/null

status=0
# fuzz_csv_chunks: the CSV reader on several threads against one (the csv seeds and
# regressions, and its own seeds "A|B": many lines of A with B among them)
for target in npy csv csv_chunks; do
  format=${target%_chunks}
  work=build-fuzz/corpus-$target
  artifacts=build-fuzz/artifacts-$target/
  mkdir -p "$work" "$artifacts"
  seeds=(tests/fuzz/corpus/$format tests/fuzz/regressions/$format)
  [ "$format" = npy ] && seeds+=(tests/data/npy)
  [ "$target" = csv_chunks ] && seeds+=(tests/fuzz/corpus/csv_chunks)
  [ -d tests/fuzz/corpus/$format ] || seeds=("${seeds[@]:1}")
  echo "fuzz: fuzz_$target for ${seconds}s"
  if ! build-fuzz/fuzz_$target -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -artifact_prefix="$artifacts" -print_final_stats=1 "$work" "${seeds[@]}" \
       > "build-fuzz/fuzz_$target.log" 2>&1; then
    status=1
    echo "fuzz: fuzz_$target FAILED; log: build-fuzz/fuzz_$target.log" >&2
    tail -n 30 "build-fuzz/fuzz_$target.log" >&2
    for f in "$artifacts"*; do
      [ -f "$f" ] || continue
      cp "$f" "tests/fuzz/regressions/$format/"
      echo "fuzz: saved $f as tests/fuzz/regressions/$format/$(basename "$f") (commit it)" >&2
    done
  else
    grep -E "stat::number_of_executed_units|cov:" "build-fuzz/fuzz_$target.log" | tail -n 2
  fi
done
exit $status
