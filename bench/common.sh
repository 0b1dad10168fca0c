# Shared by bench/blockdev.sh and bench/huge.sh (sourced, after they set
# repo, build, do_build, work and upstream from their options):
#   log/die/mismatch   messages; mismatches counts the output comparisons failed
#   median             the median of numbers on stdin ("n/a" for none)
#   bench_setup        installs the oracles, builds thinkit's bench targets
#                      unless --no-build, sets ours/gen/helper, makes work
#                      absolute and installs 1.3.3 into it when
#                      ../shared/peers has it and no --upstream was given
# shellcheck shell=bash disable=SC2154
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "bench/$(basename "$0"): $*" >&2; exit 1; }
mismatches=0
mismatch() { echo "MISMATCH: $*" >&2; mismatches=$((mismatches + 1)); }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) printf "%.3f", a[int((NR + 1) / 2)]; else printf "n/a"}'; }

bench_setup() {
  "$repo/scripts/install-deps.sh" --with-oracle
  if [ "$do_build" = 1 ]; then
    log "building thinkit (RelWithDebInfo) in $build"
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTHINKIT_BENCH=ON >/dev/null
    cmake --build "$build" -j "$(nproc)" --target thinkit thinkit_gen_xml thinkit_bench_helper >/dev/null
  fi
  ours=$build/tools/thinkit gen=$build/tests/gen/thinkit_gen_xml helper=$build/bench/thinkit_bench_helper
  local b
  for b in "$ours" "$gen" "$helper"; do [ -x "$b" ] || die "$b is missing (build with -DTHINKIT_BENCH=ON)"; done
  mkdir -p "$work"; work=$(cd "$work" && pwd)
  if [ -z "$upstream" ] && [ -x "$repo/../shared/peers/tpt-1.3.3/install.sh" ]; then
    upstream=$work/tpt-1.3.3
    [ -x "$upstream/pdata_tools" ] || "$repo/../shared/peers/tpt-1.3.3/install.sh" "$upstream" >/dev/null
  fi
}
