#!/bin/sh
# Does the real Linux kernel accept metadata written by thinkit's thin_restore?
# Kept for its old command line: runs the kernel-fixtures workflow of
# tests/kernel/run.sh (every fixture in tests/fixtures/kernel, or the named
# ones, restored by thinkit, read and modified by dm-thin under QEMU, then
# checked by thinkit's thin_check).
#
# Usage: tests/kernel/restore_accept.sh [--install-deps] [fixture...]
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
deps=""
if [ "${1:-}" = "--install-deps" ]; then deps="--install-deps"; shift; fi
[ $# -eq 0 ] || KH_FIXTURES="$*"
export KH_FIXTURES
exec "$here/run.sh" $deps kernel-fixtures
