#!/bin/sh
# The whole test suite, from a fresh clone on Debian 12: installs missing
# packages, builds (warnings are errors), runs every test, then builds and
# runs the suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-oracle
scripts/build.sh build
(cd build && ctest -j "$(nproc)" --output-on-failure)
scripts/build.sh build-asan -DTHINKIT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
# Under the sanitizers every suite runs except the heaviest parametrisations:
# the checker's and thin_repair's damage corpora and the reference-count
# corpus of the large `btree` fixture, and the
# one-million-mapping round trip. They run in full above, and the same code
# paths run here on the smaller fixtures and pools; this keeps CI (2 cores)
# well under 15 minutes.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest -j "$(nproc)" --output-on-failure -E '(^check_damage_btree\.|^repair_damage_btree\.|/btree( |$)|one_million)')
