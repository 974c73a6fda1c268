#!/usr/bin/env bash
# What help2man reads to write the man page bnorm(1) (CMakeLists.txt):
#   bnorm_help.sh BNORM --version   prints bnorm --version
#   bnorm_help.sh BNORM --help      prints bnorm --help, then the options of each
#                                   subcommand under "Options of bnorm <subcommand>:"
# The examples of the help text are left out: docs/bnorm.h2m has them, in roff.
set -euo pipefail
bin=$1
# help text without its examples (from "Example(s):" to the next blank line) and the
# "Run 'bnorm <subcommand> --help'" hint
strip_examples() { sed -e '/^Examples\{0,1\}:/,/^$/d' -e "/^Run 'bnorm/d"; }
case "${2:-}" in
  --version) exec -a bnorm "$bin" --version ;;
  --help)
    (exec -a bnorm "$bin" --help) | strip_examples
    for sub in forward backward gradcheck compare gen; do
      echo
      # from the "Options:" line on, renamed after the subcommand
      (exec -a bnorm "$bin" "$sub" --help) | strip_examples |
        sed -n -e "/^Options:/,\$p" | sed -e "s/^Options:/Options of bnorm $sub:/"
    done ;;
  *) echo "usage: bnorm_help.sh BNORM --help|--version" >&2; exit 2 ;;
esac
