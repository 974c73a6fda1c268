# Sourced by bench_ab.sh and ab_calls.sh (with $root the project's root): the source tree
# of one side of a comparison.
#
# ab_source REV TOOL prints the working tree for "work", else a git worktree of the commit
# REV under build-ab/ (made once, kept for the next comparison). TOOL names the caller in
# the message for a REV that is not a commit (exit 2).
ab_source() {
  local rev="$1" tool="$2" sha src
  if [ "$rev" = work ]; then
    echo "$root"
    return
  fi
  sha=$(git rev-parse --verify --quiet "$rev^{commit}") || { echo "$tool: '$rev' is not a commit" >&2; exit 2; }
  src="$root/build-ab/src-$sha"
  [ -d "$src" ] || git worktree add --detach "$src" "$sha" >&2
  echo "$src"
}
