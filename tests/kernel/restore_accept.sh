#!/bin/sh
# Does the real Linux kernel accept metadata written by thinkit's thin_restore?
#
# For each kernel fixture: restore its thin_dump.xml into a fresh metadata
# image with our thin_restore, boot Linux 6.1 under QEMU (../shared/harness)
# on that image plus the fixture's data image, let dm-thin activate the pool
# and read every thin device, and compare the hashes with the fixture's
# manifest.txt (what the kernel served when it wrote the original).
#
# Usage: tests/kernel/restore_accept.sh [--install-deps] [scenario...]
# Needs: root (for --install-deps), ../shared/harness beside the checkout,
# zstd, a built tree in build/. Takes about 10-90 s per scenario (TCG).
set -eu
here="$(cd "$(dirname "$0")/../.." && pwd)"
harness="${HARNESS:-$here/../shared/harness/kernel-thin.sh}"
tool="$here/build/tools/thin_restore"
deps=""
if [ "${1:-}" = "--install-deps" ]; then deps="--install-deps"; shift; fi
scenarios="${*:-basic snapshots discard-metasnap logwrites btree bigblock}"
[ -x "$tool" ] || { echo "build thinkit first (scripts/build.sh)"; exit 1; }
[ -x "$harness" ] || { echo "harness not found at $harness"; exit 1; }
work="$(mktemp -d /tmp/thinkit-accept-XXXXXX)"
trap 'rm -rf "$work"' EXIT
# The harness keeps its kernel/initramfs cache and run output outside the
# (read-only) shared folder.
export THIN_HARNESS_CACHE="${THIN_HARNESS_CACHE:-/tmp/thinkit-harness-cache}"
export THIN_HARNESS_OUT="$work/out"
fx="$here/tests/fixtures/kernel"
shared_fx="$here/../shared/fixtures/kernel"
failed=0
for s in $scenarios; do
  meta_size=8M
  [ "$s" = btree ] && meta_size=80M
  truncate -s "$meta_size" "$work/$s-meta.img"
  "$tool" -i "$fx/$s/thin_dump.xml" -o "$work/$s-meta.img"
  zstd -q -d --sparse -f "$shared_fx/$s/data.img.zst" -o "$work/$s-data.img"
  echo "== $s: the kernel reads every thin device of the restored metadata"
  if "$harness" $deps --metadata-image "$work/$s-meta.img" --data-image "$work/$s-data.img" \
       --expect-manifest "$fx/$s/manifest.txt" verify > "$work/$s.log" 2>&1; then
    grep -h "expect-manifest:" "$work/$s.log" || true
    echo "PASS $s verify"
  else
    echo "FAIL $s verify (log follows)"; tail -30 "$work/$s.log"; failed=$((failed + 1))
  fi
  deps=""
  echo "== $s: the kernel modifies the restored metadata; our thin_check checks the result"
  if "$harness" --metadata-image "$work/$s-meta.img" --data-image "$work/$s-data.img" \
       --expect-manifest "$fx/$s/manifest.txt" mutate > "$work/$s-mutate.log" 2>&1 &&
     "$here/build/tools/thin_check" "$THIN_HARNESS_OUT/mutate/metadata.img"; then
    echo "PASS $s mutate"
  else
    echo "FAIL $s mutate (log follows)"; tail -30 "$work/$s-mutate.log"; failed=$((failed + 1))
  fi
done
echo "$failed scenario(s) failed"
[ "$failed" -eq 0 ]
