#!/bin/sh
# The main job on a built-in example: installs missing packages, builds
# thinkit, unpacks metadata written by the Linux 6.1 kernel (the `snapshots`
# fixture: four thin devices, snapshot chains, copy-on-write) and runs
# thin_check and thin_dump on it.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
work="build/demo"
mkdir -p "$work"
zstd -q -d --sparse -f tests/fixtures/kernel/snapshots/metadata.img.zst -o "$work/metadata.img"
echo "== thin_check $work/metadata.img"
build/tools/thin_check "$work/metadata.img"
echo "== thin_dump $work/metadata.img"
build/tools/thin_dump "$work/metadata.img"
echo "== thin_dump --format human_readable --dev-id 2 $work/metadata.img"
build/tools/thin_dump --format human_readable --dev-id 2 "$work/metadata.img"
