#!/usr/bin/env bash
# Compares the library at two commits call by call, in one process: builds each commit's
# libbnorm.a as position-independent code (git worktrees under build-ab/), links each into
# a shared object with its own symbols, and runs bench/ab_calls.cpp, which alternates the
# two builds' calls on the same arrays. On shared machines whose speed moves by tens of
# percent from one minute to the next, this is the finer of the two A/B tools: a few
# percent shows. scripts/bench_ab.sh runs whole benchmark processes in turn instead.
#
# Usage: scripts/ab_calls.sh A B [--threads N] [--rounds N] [--case NAME]... [--rows N] [--data KIND]
#   A, B         commits (anything git rev-parse takes; B may be "work": the working tree)
#   --threads N  threads per call (default 1)
#   --rounds N   calls of each build per case (default 10)
#   --case NAME  a case of bench/ab_calls.cpp (repeatable; default all), e.g. layer-bwd-f32
#   --rows N     the first dimension instead of the case's (say, a tensor that stays in L2)
#   --data KIND  normal (default), linear (dy = 0.5 + 2x) or offset (x + 5e4)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

cd "$(dirname "$0")/.."
root=$(pwd)
sides=()
passed=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads | --rounds | --case | --rows | --data)
      [ $# -ge 2 ] || { echo "ab_calls.sh: $1 needs a value" >&2; exit 2; }
      passed+=("$1" "$2"); shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "ab_calls.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) sides+=("$1") ;;
  esac
  shift
done
[ ${#sides[@]} -eq 2 ] || { echo "ab_calls.sh: give two commits, A and B (see --help)" >&2; exit 2; }

mkdir -p build-ab
source scripts/ab_source.sh

# Builds side $1 (a commit, or "work") as build-ab/lib-<name>.so and prints its path.
build_side() {
  local src name dir
  src=$(ab_source "$1" ab_calls.sh) || exit 2
  name=$(basename "$src")
  dir="$root/build-ab/pic-$name"
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DBNORM_BENCH=OFF -DBNORM_BUILD_APP=OFF -DBNORM_BUILD_TESTS=OFF >/dev/null
  cmake --build "$dir" --target bnormlib >&2
  # -Bsymbolic: the library's own calls stay within it, whichever copy was loaded first
  "${CXX:-g++}" -shared -o "$dir/lib-$name.so" -Wl,-Bsymbolic -Wl,--whole-archive "$dir/libbnorm.a" \
    -Wl,--no-whole-archive -lfmt -lpthread
  echo "$dir/lib-$name.so"
}
lib_a=$(build_side "${sides[0]}")
lib_b=$(build_side "${sides[1]}")

# the driver, on the working tree's public headers (check_norm_problem from A's archive)
driver="$root/build-ab/ab_calls"
"${CXX:-g++}" -O2 -std=c++20 -I"$root/lib/include" "$root/bench/ab_calls.cpp" -o "$driver" \
  "$(dirname "$lib_a")/libbnorm.a" -ldl -lfmt -lpthread
echo "A = ${sides[0]}, B = ${sides[1]}: least time of each over alternating calls" >&2
"$driver" "$lib_a" "$lib_b" ${passed[@]+"${passed[@]}"}
