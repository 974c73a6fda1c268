#!/usr/bin/env bash
# Benchmarks bnorm and prints one report on stdout (progress goes to stderr):
#   - the memory-bandwidth yardsticks of this run: a read-only sum of two arrays (pass A),
#     a copy stream (read one array, write one: forward's pass B) and a STREAM-like triad
#     (read two, write one: backward's pass B), the last two also with non-temporal stores;
#   - bnorm's forward and backward kernels, its inference forward (eval_forward) and its
#     forward with the running statistics' update (forward_running), and oneDNN's
#     (bench/bnorm_bench) and PyTorch's (bench/peers.py) on the same shapes, when they are
#     installed (libdnnl-dev, python3-torch); a missing peer is skipped and the report says so;
#   - the bnorm command line end to end against copying the same files, with its peak
#     memory, and CSV parse/format throughput (bench/e2e.py, bench/bnorm_bench).
# The cases are in bench/cases.json; bench/report.py explains the bytes model and the floor.
#
# The kernels (bnorm_bench, then PyTorch) are measured in rounds, one after the other, so
# that every implementation meets the machine's slow and fast moments alike: the report
# gives each case's least time over the rounds and the median of the rounds' medians.
#
# Usage: scripts/bench.sh [--quick] [--rounds N] [--cases FILE] [--json FILE]
#   --quick      a smaller set with fewer repetitions (under two minutes)
#   --rounds N   rounds of kernel measurements (default 3)
#   --cases FILE the kernels' cases, in bench/cases.json's format (default: that file)
#   --json FILE  also write every record to FILE as a JSON list
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

quick=()
json=()
cases=()
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --rounds)
      [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds needs a count of 1 or more" >&2; exit 2; }
      rounds=$2
      shift ;;
    --cases)
      [ $# -ge 2 ] && [ -f "$2" ] || { echo "bench.sh: --cases needs an existing file" >&2; exit 2; }
      cases=(--cases "$(realpath -- "$2")")
      shift ;;
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

cpp=()
peers=()
for round in $(seq "$rounds"); do
  step "round $round of $rounds: triad, bnorm and oneDNN kernels, CSV in memory (bench/bnorm_bench)"
  csv_out=()
  [ "$round" = 1 ] && csv_out=(--csv-out "$tmp/big.csv")
  "$build/bench/bnorm_bench" "${quick[@]}" "${cases[@]}" --out "$tmp/bench_$round.json" "${csv_out[@]}"
  cpp+=("$tmp/bench_$round.json")

  step "round $round of $rounds: PyTorch (bench/peers.py)"
  "$python" bench/peers.py "${quick[@]}" "${cases[@]}" --out "$tmp/peers_$round.json"
  peers+=("$tmp/peers_$round.json")
done

step "end to end (bench/e2e.py)"
runs=5
[ ${#quick[@]} -gt 0 ] && runs=3
"$python" bench/e2e.py --bnorm "$build/bnorm" --dir "$tmp" --csv big.csv --runs "$runs" \
  --out "$tmp/e2e.json"

"$python" bench/machine.py --since "$tmp/machine.json" --out "$tmp/during.json"

step "report"
"$python" bench/report.py --machine "$tmp/machine.json" --during "$tmp/during.json" \
  --cpp "${cpp[@]}" --peers "${peers[@]}" --e2e "$tmp/e2e.json" "${quick[@]}" "${json[@]}"
