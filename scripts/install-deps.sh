#!/bin/sh
# Installs the Debian packages thinkit needs to build and test, if missing
# (clang and its libFuzzer runtime: the fuzz harnesses in fuzz/).
# Usage: scripts/install-deps.sh [--with-oracle]
#   --with-oracle  also Debian's thin-provisioning-tools 0.9.0, which the
#                  differential tests compare against (thinkit never needs it).
set -eu
pkgs="cmake make g++ clang libclang-rt-14-dev pkg-config zstd libcli11-dev libboost-iostreams-dev libexpat1-dev libfmt-dev libgtest-dev"
# --with-oracle is the test suite's set: the 0.9.0 oracle, and what the
# Debian package test needs (cpack's dpkg-shlibdeps, lintian).
[ "${1:-}" = "--with-oracle" ] && pkgs="$pkgs thin-provisioning-tools dpkg-dev lintian"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
