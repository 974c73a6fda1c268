#!/usr/bin/env bash
# Compares bnorm's kernels at two commits on this machine, interleaved: builds
# bench/bnorm_bench at each (in git worktrees under build-ab/), then runs A, B, B, A, ...
# on the same cases and prints, per case, each side's best time over the rounds and B/A.
# On shared machines, whose speed moves by tens of percent between runs minutes apart,
# this is how a change is measured: one run each would compare two moments, not two builds.
#
# Usage: scripts/bench_ab.sh A B [--cases FILE] [--rounds N]
#   A, B         commits (anything git rev-parse takes; B may be "work": the working tree)
#   --cases FILE the cases, in bench/cases.json's format (default: bench/cases.json,
#                its quick set)
#   --rounds N   how many times each side runs (default 5)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

cd "$(dirname "$0")/.."
root=$(pwd)
sides=()
cases="$root/bench/cases.json"
rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --cases)
      [ $# -ge 2 ] || { echo "bench_ab.sh: --cases needs a file" >&2; exit 2; }
      cases=$(realpath -- "$2"); shift ;;
    --rounds)
      [ $# -ge 2 ] || { echo "bench_ab.sh: --rounds needs a number" >&2; exit 2; }
      rounds="$2"; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "bench_ab.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) sides+=("$1") ;;
  esac
  shift
done
[ ${#sides[@]} -eq 2 ] || { echo "bench_ab.sh: give two commits, A and B (see --help)" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_ab.sh: --rounds must be a positive number" >&2; exit 2; }
[ -f "$cases" ] || { echo "bench_ab.sh: $cases: no such file" >&2; exit 2; }

bash scripts/setup.sh
mkdir -p build-ab
source scripts/ab_source.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Builds side $1 (a commit, or "work") and prints the path of its bnorm_bench.
build_side() {
  local src
  src=$(ab_source "$1" bench_ab.sh) || exit 2
  local dir="$root/build-ab/build-$(basename "$src")"
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBNORM_BENCH=ON >/dev/null
  cmake --build "$dir" --target bnorm_bench >&2
  echo "$dir/bench/bnorm_bench"
}
bin_a=$(build_side "${sides[0]}")
bin_b=$(build_side "${sides[1]}")

for r in $(seq "$rounds"); do
  order="a b"
  [ $((r % 2)) -eq 0 ] && order="b a" # A B B A ...: neither side always runs second
  for side in $order; do
    bin=bin_$side
    echo "== round $r of $rounds: ${side^^} ==" >&2
    "${!bin}" --quick --cases "$cases" --triad-mib 64 --csv-rows 20000 --out "$out/$side-$r.json" >/dev/null
  done
done

/usr/bin/python3 - "$out" "$rounds" "${sides[0]}" "${sides[1]}" <<'PY'
import json, sys
out, rounds, name_a, name_b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
best = {}  # case -> side -> [times]
order = []
for side in "ab":
    for r in range(1, rounds + 1):
        for rec in json.load(open(f"{out}/{side}-{r}.json"))["records"]:
            if rec.get("impl") != "bnorm" or rec.get("op") not in ("forward", "forward_running", "backward", "eval_forward"):
                continue
            # the family's norms by name ("group32" for 32 groups), as bench/report.py names them
            norm = rec.get("norm", "batch")
            name = (f"{norm}{rec['groups']}" if norm == "group" else norm) + " "
            key = (rec["op"], ("" if norm == "batch" else name) + "x".join(map(str, rec["shape"])), rec["dtype"],
                   rec["layout"], rec["threads"], rec.get("data", "normal"))
            if key not in best:
                order.append(key)
            best.setdefault(key, {}).setdefault(side, []).append(rec["ms_min"])

def show(ms):
    return f"{ms * 1000:.3f} us" if ms < 0.1 else f"{ms:.3f} ms"

print(f"A = {name_a}, B = {name_b}: best of {rounds} interleaved rounds each (and the spread of A's)")
print(f"{'op':15} {'shape':22} {'dtype':8} {'layout':6} {'thr':>3} {'data':7} {'A':>11} {'B':>11} {'B/A':>6}  A's spread")
for key in order:
    a, b = best[key].get("a", []), best[key].get("b", [])
    if not a or not b:
        continue
    op, shape, dtype, layout, threads, data = key
    spread = max(a) / min(a) - 1
    print(f"{op:15} {shape:22} {dtype:8} {layout:6} {threads:>3} {data:7} {show(min(a)):>11} {show(min(b)):>11} "
          f"{min(b) / min(a):6.3f}  {spread:.0%}")
PY
