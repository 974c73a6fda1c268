#!/usr/bin/env bash
# CTest's install_consumer: installs the build into a temporary prefix and uses it as a
# user would:
#   1. cmake --install BUILD --prefix TMP, and the files the package promises are there;
#   2. tests/consumer (find_package(bnorm), bnorm::bnorm) configured, built and run against
#      TMP: bnorm::forward checked against the formula, and the version of bnorm/version.hpp;
#   3. with the tool (app, app-noman): TMP/bin/bnorm --version; and with its man page (app,
#      when help2man was found at configure time) man -l TMP/share/man/man1/bnorm.1 renders
#      with its EXIT STATUS and EXAMPLES sections, and MANPATH=TMP/share/man man bnorm too.
# Usage: install_consumer.sh CMAKE BUILD_DIR CONSUMER_SRC VERSION app|app-noman|noapp
#                            [cmake args for the consumer...]
set -euo pipefail
cmake=$1 build=$2 consumer=$3 version=$4 app=$5
shift 5

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bnorm-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "install_consumer: FAIL: $*" >&2; exit 1; }

echo "== install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
for f in include/bnorm/batchnorm.hpp include/bnorm/layout.hpp include/bnorm/config.hpp \
         include/bnorm/version.hpp lib/libbnorm.a lib/cmake/bnorm/bnormConfig.cmake \
         lib/cmake/bnorm/bnormConfigVersion.cmake lib/cmake/bnorm/bnormTargets.cmake; do
  [ -f "$prefix/$f" ] || fail "$f is not installed"
done
grep -q "BNORM_VERSION \"$version\"" "$prefix/include/bnorm/version.hpp" || fail "version.hpp does not say $version"

echo "== consumer project against the installed package"
"$cmake" -S "$consumer" -B "$tmp/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@" >"$tmp/configure.log" 2>&1 \
  || { cat "$tmp/configure.log"; fail "the consumer does not configure"; }
"$cmake" --build "$tmp/consumer-build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "the consumer does not build"; }
out=$("$tmp/consumer-build/consumer") || { echo "$out"; fail "the consumer's check failed"; }
echo "$out"
[ "$out" = "bnorm $version (${version//./.}): ok" ] || fail "unexpected consumer output"
# bnorm::bnorm brings -ffp-contract=off to the code compiled against it...
grep -q -- "-ffp-contract=off" "$tmp/consumer-build/compile_commands.json" \
  || fail "the consumer is not compiled with -ffp-contract=off"
# ...and its headers refuse -ffast-math
if "$cmake" --build "$tmp/consumer-build" --target fastmath_refused >"$tmp/fastmath.log" 2>&1; then
  fail "a file including bnorm's headers compiled under -ffast-math"
fi
grep -q "bnorm requires IEEE floating-point semantics" "$tmp/fastmath.log" \
  || { cat "$tmp/fastmath.log"; fail "-ffast-math was refused, but not by bnorm/config.hpp"; }

# a version the package does not have is refused (bnormConfigVersion.cmake)
mkdir -p "$tmp/badver"
cat >"$tmp/badver/CMakeLists.txt" <<EOF2
cmake_minimum_required(VERSION 3.20)
project(badver LANGUAGES CXX)
find_package(bnorm 999.0 QUIET)
if(bnorm_FOUND)
  message(FATAL_ERROR "find_package(bnorm 999.0) accepted version \${bnorm_VERSION}")
endif()
EOF2
"$cmake" -S "$tmp/badver" -B "$tmp/badver-build" -DCMAKE_PREFIX_PATH="$prefix" "$@" >"$tmp/badver.log" 2>&1 \
  || { cat "$tmp/badver.log"; fail "find_package(bnorm 999.0) was not refused"; }

if [ "$app" != noapp ]; then
  echo "== the installed tool and its man page"
  [ -x "$prefix/bin/bnorm" ] || fail "bin/bnorm is not installed"
  [ "$("$prefix/bin/bnorm" --version)" = "bnorm $version" ] || fail "bnorm --version does not say $version"
  page=$prefix/share/man/man1/bnorm.1
  if [ "$app" = app ]; then
    [ -f "$page" ] || fail "share/man/man1/bnorm.1 is not installed"
    MANPAGER=cat MANWIDTH=80 man -l "$page" >"$tmp/man.txt" 2>"$tmp/man.err" || { cat "$tmp/man.err"; fail "man -l $page"; }
    for section in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES; do
      grep -q "^$section" "$tmp/man.txt" || fail "man bnorm has no $section section"
    done
    # man justifies its lines (two spaces here and there, words wrapped): compare words only
    tr -s '[:space:]' ' ' <"$tmp/man.txt" | grep -q "gradcheck found a gradient that is wrong" ||
      fail "man bnorm: exit status 1 not explained"
    grep -q "Options of bnorm gradcheck" "$tmp/man.txt" || fail "man bnorm lacks the options of the subcommands"
    # the installed page is found through MANPATH, as man bnorm finds it under /usr/local
    MANPATH="$prefix/share/man" MANPAGER=cat man bnorm 2>/dev/null | grep -q "^EXIT STATUS" \
      || fail "man bnorm (MANPATH=$prefix/share/man) does not show the page"
    echo "man bnorm: $(grep -c . "$tmp/man.txt") lines, with EXIT STATUS and EXAMPLES"
  else
    echo "install_consumer: no man page (help2man was not found when configuring)"
  fi
fi
echo "install_consumer: passed"
