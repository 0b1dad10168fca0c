#!/bin/sh
# Builds the Debian package from a clean clone: installs what it needs
# (build dependencies, dpkg-dev for the shared-library dependencies, lintian),
# builds a release, runs `cpack -G DEB`, checks the package (tests/packaging/
# deb_test.sh: contents, scratch-root install, every tool's -V, lintian) and
# leaves thinkit_VERSION_ARCH.deb in the current directory.
# Usage: scripts/build-deb.sh [BUILD_DIR]   (default build-deb)
set -eu
here=$(pwd)
cd "$(dirname "$0")/.."
src=$(pwd)
dir="${1:-build-deb}"
scripts/install-deps.sh
missing=""
for p in dpkg-dev lintian; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
scripts/build.sh "$dir" -DCMAKE_BUILD_TYPE=Release -DTHINKIT_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr
sh tests/packaging/deb_test.sh "$dir" "$src"
(cd "$dir" && cpack -G DEB -B "$src/$dir/package" >/dev/null)
cp "$src/$dir"/package/thinkit_*.deb "$here"/
ls "$here"/thinkit_*.deb
