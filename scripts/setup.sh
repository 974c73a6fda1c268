#!/usr/bin/env bash
# Installs what bnorm needs to build and test, from Debian's packages, when missing.
# Idempotent and quiet when everything is already there. Needs root or sudo to install.
set -euo pipefail

packages=(cmake ninja-build g++ libcli11-dev libfmt-dev nlohmann-json3-dev doctest-dev
          python3 python3-numpy python3-mpmath help2man man-db)
packages+=("$@") # extra packages a caller needs (e.g. clang for the sanitizer build)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
