#!/usr/bin/env bash
# Benchmarks bnorm and prints one report on stdout (progress goes to stderr):
#   - a STREAM-like triad, the memory-bandwidth yardstick of this run;
#   - bnorm's forward and backward kernels, and oneDNN's (bench/bnorm_bench) and PyTorch's
#     (bench/peers.py) on the same shapes, when they are installed (libdnnl-dev,
#     python3-torch); a missing peer is skipped and the report says so;
#   - the bnorm command line end to end against copying the same files, with its peak
#     memory, and CSV parse/format throughput (bench/e2e.py, bench/bnorm_bench).
# The cases are in bench/cases.json; bench/report.py explains the bytes model.
#
# Usage: scripts/bench.sh [--quick] [--json FILE]
#   --quick      a smaller set with fewer repetitions (under two minutes)
#   --json FILE  also write every record to FILE as a JSON list
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

quick=()
json=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --json)
      [ $# -ge 2 ] || { echo "bench.sh: --json needs a file name" >&2; exit 2; }
      json=(--json "$(realpath -m -- "$2")")
      shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
python=/usr/bin/python3 # Debian's, with numpy (and torch when python3-torch is installed)
build=build-bench
step() { echo "== $* ==" >&2; }

step "building $build/"
bash scripts/setup.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBNORM_BENCH=ON >/dev/null
cmake --build "$build" --target bnorm bnorm_bench >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the machine, and a snapshot of its CPU time: the report tells how much other work ran beside it
"$python" bench/machine.py --out "$tmp/machine.json"

step "triad, bnorm and oneDNN kernels, CSV in memory (bench/bnorm_bench)"
"$build/bench/bnorm_bench" "${quick[@]}" --out "$tmp/bench.json" --csv-out "$tmp/big.csv"

step "PyTorch (bench/peers.py)"
"$python" bench/peers.py "${quick[@]}" --out "$tmp/peers.json"

step "end to end (bench/e2e.py)"
runs=5
[ ${#quick[@]} -gt 0 ] && runs=3
"$python" bench/e2e.py --bnorm "$build/bnorm" --dir "$tmp" --csv big.csv --runs "$runs" \
  --out "$tmp/e2e.json"

"$python" bench/machine.py --since "$tmp/machine.json" --out "$tmp/during.json"

step "report"
"$python" bench/report.py --machine "$tmp/machine.json" --during "$tmp/during.json" \
  --cpp "$tmp/bench.json" --peers "$tmp/peers.json" --e2e "$tmp/e2e.json" "${quick[@]}" "${json[@]}"
