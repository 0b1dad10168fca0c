#!/bin/sh
# Long fuzzing runs. Usage:
#   fuzz/run.sh [-b BUILD_DIR] [-t SECONDS] [-w WORK_DIR] [HARNESS...]
# Builds the harnesses (clang, -DTHINKIT_FUZZ=ON) in BUILD_DIR (default
# build-fuzz) and runs each named harness (default: all) for SECONDS (default
# 7200) at nice 19, in parallel, each from a copy of its seed corpus in
# WORK_DIR/<harness>/corpus (default /tmp/thinkit-fuzz). New inputs stay in
# WORK_DIR; crashes, leaks and timeouts land in WORK_DIR/<harness>/ as
# crash-*, leak-*, timeout-*; the log is WORK_DIR/<harness>/log and its last
# lines hold the execs, exec/s and cov/ft for fuzz/RESULTS.md. Reproduce one
# with BUILD_DIR/fuzz/fuzz_<harness> FILE. A harness stops at its first
# finding; to go on past findings, run it by hand with -fork=1
# -ignore_crashes=1 -ignore_timeouts=1 (fuzz/RESULTS.md).
set -eu
cd "$(dirname "$0")/.."
build=build-fuzz
secs=7200
work=/tmp/thinkit-fuzz
while getopts b:t:w: o; do
  case $o in
    b) build=$OPTARG ;;
    t) secs=$OPTARG ;;
    w) work=$OPTARG ;;
    *) sed -n '2,15p' "$0"; exit 1 ;;
  esac
done
shift $((OPTIND - 1))
harnesses="${*:-check roundtrip restore repair delta audit}"

cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DTHINKIT_FUZZ=ON -DTHINKIT_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzzers

for h in $harnesses; do
  d="$work/$h"
  mkdir -p "$d/corpus"
  cp -n fuzz/corpus/"$h"/* "$d/corpus/" 2>/dev/null || true
  extra=""
  [ "$h" = restore ] && extra="-dict=fuzz/xml.dict -max_len=65536"
  # shellcheck disable=SC2086
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    nice -n 19 "$build/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$d/" $extra "$d/corpus" fuzz/corpus/"$h" >"$d/log" 2>&1 &
done
wait
for h in $harnesses; do
  printf '%s: ' "$h"
  grep -E '^#[0-9]+' "$work/$h/log" | tail -1
  grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "$work/$h/log" | tr '\n' ' '
  echo
  ls "$work/$h" | grep -E '^(crash|leak|timeout|oom)-' || true
done
