#!/bin/sh
# ctest's cheap check of the QEMU harness in tests/kernel (the harness itself
# takes minutes and is not part of the suite): every script parses, and
# when shellcheck is installed, it finds nothing at warning level or above.
# Usage: tests/kernel/syntax_check.sh
set -eu
k="$(cd "$(dirname "$0")" && pwd)"
bash -n "$k/run.sh"
for f in "$k/restore_accept.sh" "$k/syntax_check.sh" "$k/guest/init" "$k/guest/recovery-init" \
  "$k/guest/lib.sh" "$k/guest/gen.sh" "$k/guest/open.sh" "$k/guest/lvm2.sh"; do
  sh -n "$f"
done
if command -v shellcheck >/dev/null; then
  shellcheck -S warning -s bash "$k/run.sh"
  shellcheck -S warning -s sh "$k/restore_accept.sh" "$k/syntax_check.sh" "$k/guest/init" "$k/guest/recovery-init"
  # the workflow scripts are sourced by guest/init (which sets DISK_*, KH_*)
  # after guest/lib.sh
  for f in gen.sh open.sh lvm2.sh; do
    cat "$k/guest/lib.sh" "$k/guest/$f" | shellcheck -S warning -s sh -e SC2034,SC2154 -
  done
  echo "tests/kernel: scripts parse; shellcheck clean at warning level"
else
  echo "tests/kernel: scripts parse (shellcheck not installed)"
fi
