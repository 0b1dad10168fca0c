#!/bin/sh
# The whole test suite, from a fresh clone on Debian 12: installs missing
# packages, builds (warnings are errors), runs every test, then builds and
# runs the suite again under AddressSanitizer + UndefinedBehaviorSanitizer,
# runs the reader-thread tests under ThreadSanitizer, and gives every
# libFuzzer harness a short smoke run.
set -eu
cd "$(dirname "$0")/.."
# Each step's wall time goes to stderr, so a slow CI run shows where it went.
start=$(date +%s) last=$start
step() { now=$(date +%s); echo "test.sh: $1 took $((now - last)) s ($((now - start)) s in all)" >&2; last=$now; }
scripts/install-deps.sh --with-oracle
step "installing dependencies"
# The release build without debug info (-g): a third less compile time on
# CI's 2 cores; scripts/build.sh alone keeps RelWithDebInfo's -g.
scripts/build.sh build -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG"
step "the release build"
(cd build && ctest -j "$(nproc)" --output-on-failure)
step "the release tests"
# One clang build serves the sanitizer suite and the fuzzers: everything is
# compiled once with ASan + UBSan and libFuzzer's coverage instrumentation
# (THINKIT_FUZZ); only the harnesses link libFuzzer itself.
scripts/build.sh build-asan -DTHINKIT_SANITIZE=ON -DTHINKIT_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=Debug
cmake --build build-asan -j "$(nproc)" --target fuzzers
step "the sanitizer and fuzzer build (clang)"
# Under the sanitizers every suite runs except the heaviest parametrisations:
# the checker's, the fast path's and thin_repair's damage corpora and the
# reference-count corpus of the large `btree` fixture, the Debian package
# test, --json over the damage corpus, thin_ls over 1,000 snapshots, the
# 2^32-block pool, the one-million-mapping round trip, the repair of every
# block of a generated pool damaged three ways, the engine's power cut at
# every write (both orderings), and the two comparisons that mostly run the
# oracles (thin_metadata_size against 0.9.0, packs against 1.3.3). They run in
# full above, and the same code paths run here on the smaller fixtures and
# pools (CI: 2 cores, under 20 minutes in all).
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest -j "$(nproc)" --output-on-failure -E '(^check_damage_btree\.|^check_fast_path_btree\.|^repair_damage_btree\.|/btree( |$)|one_million|^packaging\.|^check_json\.lists_the_same_problems_as_the_text_output_on_a_sample|^thin_ls\.reads_each_shared_node_once_for_a_thousand|^big_pool\.|^repair_damage_generated\.every_used_block|^thin_pool_crash\.with_|^thin_metadata_size\.matches_the_0_9_0_oracle|^thin_metadata_pack\.packs_made_here_unpack_with_upstream)')
step "the sanitizer tests"
# ThreadSanitizer over the reader threads of the fast check
# (lib/thin/check/fast_check.cc), of dump (lib/thin/dump/dump.cc), of the
# run reader (lib/persistent-data/run_reader.cc, its own tests) and of batched
# reads and their read-ahead (lib/persistent-data/batch_read.cc, its own
# tests: thin_delta's and thin_ls's reads go through them): only the
# small thinkit_tsan_tests executable (tests/CMakeLists.txt) and what it links.
# The filter keeps the in-process tests that start those threads: the fast
# check of the `btree` fixture (enough leaf runs for its reader thread; the
# small fixtures are checked on one thread) and dumps at every power-cut point
# of a restore; the tests that run the tool binaries are not built here.
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTHINKIT_TSAN=ON >/dev/null
cmake --build build-tsan -j "$(nproc)" --target thinkit_tsan_tests
TSAN_OPTIONS=halt_on_error=1:abort_on_error=1:second_deadlock_stack=1 build-tsan/tests/thinkit_tsan_tests \
  --gtest_filter='check_fast_path_hints.*:thin_restore.a_power_cut*:thin_restore.def_and_ref*:run_reader.*:batch_read.*:read_plan_io.*'
step "ThreadSanitizer"
# The libFuzzer harnesses (fuzz/, built above in build-asan): each runs on its
# seed corpus for a bounded time, two at a time; new inputs go to a scratch
# directory, never into fuzz/corpus/. Any crash, leak, timeout or harness
# assertion fails the run. Long runs: fuzz/run.sh (fuzz/README.md).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for h in check roundtrip restore repair delta audit; do echo "$h"; done | xargs -P 2 -I H sh -c '
  mkdir -p "$1/H" && extra="" && [ H = restore ] && extra="-dict=fuzz/xml.dict"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build-asan/fuzz/fuzz_H -seed=1 -runs=20000 -max_total_time=10 -timeout=20 $extra \
      -artifact_prefix="$1/H-" "$1/H" fuzz/corpus/H >"$1/H.log" 2>&1 \
    || { cat "$1/H.log"; echo "fuzz smoke: H failed"; exit 255; }
  echo "fuzz smoke: H: $(grep -E "^#[0-9]+" "$1/H.log" | tail -1)"' sh "$scratch"
step "the fuzz smoke runs"
