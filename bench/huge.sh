#!/usr/bin/env bash
# bench/huge.sh: thinkit, upstream 1.3.3 and Debian's 0.9.0 at the format's
# limit. The pool's metadata is about 15 GiB (3.99M of the 4,161,600 blocks a
# metadata device can have), written directly by `thinkit_gen_xml --metadata`
# (its XML would be tens of GB): one origin of 93M mapped blocks and nine
# snapshots of it with 0.1% written after each, every device with leaves of
# its own (930M mappings in all; thinkit's restore layout: full leaves in
# sequence, not the kernel's scattered half-full ones; bench/blockdev.sh
# measures that layout at L).
#
# Each tool runs on the metadata file through the page cache (warm) and on a
# loop device with --direct-io=on, its buffers flushed first (cold): thinkit
# and 1.3.3 --runs times each, alternately, their output to /dev/null. Then
# one run of thinkit and one of 0.9.0 per tool, warm, their output hashed in
# the same pipeline (sha256sum on the other core), compared: dump, delta, ls
# and rmap byte for byte, check's verdict and stderr. 0.9.0 is timed by that
# run only (it takes minutes). thin_repair writes to a fresh sparse file in
# --work each run (about 15 GiB more disk); its check is thinkit's repair
# output dumped and hashed against the input's dump, and 0.9.0's repair is
# not run (at XL it takes 30 times thinkit's: here, most of an hour). The I/O
# floor (every used block read with large O_DIRECT reads) is measured beside
# them.
#
#   bench/huge.sh [--work DIR] [--build DIR] [--no-build] [--runs N]
#       [--modes warm,cold] [--tools check,dump,delta,ls,rmap,repair]
#       [--upstream DIR] [--out FILE]
#
# Needs root for the cold mode (losetup); about 16 GiB of disk in --work
# (default /var/tmp/thinkit-bench-huge) and a few minutes per tool.
# Writes a markdown section to --out (default bench/results/huge.md) and the
# raw runs to the same name with .csv.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

runs=3 modes=warm,cold tools=check,dump,delta,ls,rmap
work=/var/tmp/thinkit-bench-huge build=$repo/build-bench do_build=1 upstream="" out=""
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --upstream) upstream=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) sed -n '20,22p' "$0" >&2; exit 1 ;;
  esac
done
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"

bench_setup
fast_impls=thinkit
[ -n "$upstream" ] && [ -x "$upstream/pdata_tools" ] && fast_impls="thinkit 1.3.3"
[ -z "$out" ] && out=$repo/bench/results/huge.md
csv=${out%.md}.csv
mkdir -p "$(dirname "$out")"
echo "mode,tool,impl,run,wall_s,user_s,sys_s,max_rss_kib,exit" >"$csv"
tmp=$work/tmp; rm -rf "$tmp"; mkdir -p "$tmp"
loop=""
cleanup() { [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# The pool, kept while the generator's arguments are unchanged.
gen_args="--seed 1 --devices 1 --mappings 93000000 --snapshots 9 --snap-diff 0.001 --origin-churn 0.001"
meta=$work/meta.bin
if [ ! -f "$meta" ] || [ "$(cat "$work/stamp" 2>/dev/null)" != "$gen_args" ]; then
  log "generating the pool (about 2 minutes, 2.5 GB of memory)"
  rm -f "$meta"
  # shellcheck disable=SC2086
  "$gen" $gen_args --metadata "$meta" --stats 2>"$work/gen.txt"
  echo "$gen_args" >"$work/stamp"
fi
used=$(sed -n 's/^metadata blocks used: \([0-9]*\) of.*/\1/p' "$work/gen.txt")
mappings=$(sed -n 's/^total mappings: //p' "$work/gen.txt")

# cmd IMPL TOOL DEV: the command line of one run.
cmd() {
  local impl=$1 tool=$2 dev=$3 pre
  case $impl in
    thinkit) pre="$ours thin_$tool" ;;
    1.3.3) pre="$upstream/pdata_tools thin_$tool" ;;
    0.9.0) pre="/usr/sbin/thin_$tool" ;;
  esac
  case $tool in
    check) echo "$pre -q $dev" ;;
    dump) echo "$pre $dev" ;;
    delta) echo "$pre --snap1 1 --snap2 5 $dev" ;;
    ls) echo "$pre -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS $dev" ;;
    rmap) echo "$pre --region 0..4096 $dev" ;;
    repair) echo "$pre -i $dev -o $tmp/out.bin" ;;
  esac
}

# fresh_output: an empty sparse file the size of the input, for repair.
fresh_output() { rm -f "$tmp/out.bin"; truncate -s "$(stat -c %s "$meta")" "$tmp/out.bin"; }

# timed MODE TOOL IMPL RUN -- CMD...: one run, a CSV row.
timed() {
  local mode=$1 tool=$2 impl=$3 run=$4 tf=$tmp/time.out
  shift 5
  "$helper" run -o "$tf" -- "$@" >/dev/null 2>"$tmp/err" || die "timing $* failed"
  local wall user sys rss status
  read -r wall user sys rss status <"$tf"
  echo "$mode,$tool,$impl,$run,$wall,$user,$sys,$rss,$status" >>"$csv"
  log "  $mode $tool $impl #$run: ${wall}s rss $((rss / 1024))MiB exit $status"
  [ "$status" = 0 ] || mismatch "$mode $tool $impl exit $status: $(head -c 300 "$tmp/err" | tr '\n' ' ')"
}

# hashed TOOL IMPL: one warm run, output hashed in the pipeline; a CSV row
# (wall time only) and $tmp/IMPL.{sha,err,rc}.
hashed() {
  local tool=$1 impl=$2 t0 t1
  "$helper" warm "$meta" >/dev/null
  t0=$(date +%s.%N)
  set +e
  # shellcheck disable=SC2046,SC2091
  $(cmd "$impl" "$tool" "$meta") 2>"$tmp/$impl.err" | sha256sum >"$tmp/$impl.sha"
  echo "${PIPESTATUS[0]}" >"$tmp/$impl.rc"
  set -e
  t1=$(date +%s.%N)
  local wall; wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  echo "hashed,$tool,$impl,1,$wall,,,,$(cat "$tmp/$impl.rc")" >>"$csv"
  log "  hashed $tool $impl: ${wall}s exit $(cat "$tmp/$impl.rc")"
}

IFS=, read -r -a mode_list <<<"$modes"
IFS=, read -r -a tool_list <<<"$tools"
t_start=$(date +%s) load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for mode in "${mode_list[@]}"; do
  dev=$meta
  if [ "$mode" = cold ]; then
    [ "$(id -u)" = 0 ] || { log "cold mode needs root (losetup); skipped"; continue; }
    loop=$(losetup --find --show --read-only --direct-io=on "$meta") || { log "no loop devices; cold skipped"; continue; }
    dev=$loop
  fi
  log "$mode: $dev"
  for ((i = 1; i <= runs; i++)); do
    if [ "$mode" = cold ]; then blockdev --flushbufs "$dev"; else "$helper" warm "$meta" >/dev/null; fi
    timed "$mode" floor floor "$i" -- "$helper" floor "$dev" --direct
  done
  for tool in "${tool_list[@]}"; do
    for ((i = 1; i <= runs; i++)); do
      for impl in $fast_impls; do
        [ "$tool" = repair ] && fresh_output
        if [ "$mode" = cold ]; then blockdev --flushbufs "$dev"; else "$helper" warm "$meta" >/dev/null; fi
        # shellcheck disable=SC2046
        timed "$mode" "$tool" "$impl" "$i" -- $(cmd "$impl" "$tool" "$dev")
      done
    done
  done
  if [ -n "$loop" ]; then losetup -d "$loop"; loop=""; fi
done

for tool in "${tool_list[@]}"; do
  if [ "$tool" = repair ]; then
    fresh_output
    "$ours" thin_repair -i "$meta" -o "$tmp/out.bin" 2>"$tmp/thinkit.err" || mismatch "repair: thinkit failed"
    "$ours" thin_dump "$tmp/out.bin" | sha256sum >"$tmp/repaired.sha"
    "$ours" thin_dump "$meta" | sha256sum >"$tmp/input.sha"
    cmp -s "$tmp/repaired.sha" "$tmp/input.sha" || mismatch "repair: thinkit's output does not dump as its input does"
    log "  repair: thinkit's output dumps as its input does: $(cut -c1-16 "$tmp/repaired.sha")"
    rm -f "$tmp/out.bin"
    continue
  fi
  hashed "$tool" thinkit
  hashed "$tool" 0.9.0
  for impl in thinkit 0.9.0; do
    [ "$(cat "$tmp/$impl.rc")" = 0 ] || mismatch "$tool: $impl exit $(cat "$tmp/$impl.rc")"
  done
  cmp -s "$tmp/thinkit.sha" "$tmp/0.9.0.sha" || mismatch "$tool: output differs from 0.9.0's"
  [ "$tool" = check ] && ! cmp -s "$tmp/thinkit.err" "$tmp/0.9.0.err" && mismatch "check: stderr differs from 0.9.0's"
done
elapsed=$(($(date +%s) - t_start))

col() { # MODE TOOL IMPL FIELD
  awk -F, -v m="$1" -v t="$2" -v i="$3" -v f="$4" 'NR > 1 && $1 == m && $2 == t && $3 == i {print $f}' "$csv" | median
}
{
  echo "### At the format's limit: $used metadata blocks ($(awk -v u="$used" 'BEGIN {printf "%.1f", u * 4096 / 2^30}') GiB), $mappings mappings ($(date +%Y-%m-%d))"
  echo
  echo "\`bench/huge.sh --runs $runs --modes $modes --tools $tools\`, $(nproc) cores, load average at the start" \
       "$load_start, $elapsed s after generation. Medians of $runs alternating runs (thinkit," \
       "1.3.3), wall seconds and max RSS in MiB; \"x 1.3.3\" is 1.3.3's time over thinkit's, \"x floor\"" \
       "thinkit's over the I/O floor of the same mode. 0.9.0 and the \"hashed\" column: one warm run whose" \
       "output went through sha256sum in the same pipeline."
  echo
  echo "| mode | tool | thinkit | 1.3.3 | x 1.3.3 | x floor | thinkit MiB | 1.3.3 MiB | thinkit hashed | 0.9.0 hashed |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for mode in "${mode_list[@]}"; do
    floor=$(col "$mode" floor floor 5)
    echo "| $mode | I/O floor | $floor | | | | | | | |"
    for tool in "${tool_list[@]}"; do
      a=$(col "$mode" "$tool" thinkit 5) b=$(col "$mode" "$tool" 1.3.3 5)
      ra=$(col "$mode" "$tool" thinkit 8) rb=$(col "$mode" "$tool" 1.3.3 8)
      ha=$(col hashed "$tool" thinkit 5) hc=$(col hashed "$tool" 0.9.0 5)
      x13=$(awk -v a="$a" -v b="$b" 'BEGIN {if (a + 0 > 0 && b != "n/a") printf "%.2f", b / a; else print "n/a"}')
      xf=$(awk -v a="$a" -v f="$floor" 'BEGIN {if (f + 0 > 0) printf "%.2f", a / f; else print "n/a"}')
      mib() { awk -v k="$1" 'BEGIN {if (k == "n/a") print k; else printf "%.0f", k / 1024}'; }
      echo "| $mode | $tool | $a | $b | $x13 | $xf | $(mib "$ra") | $(mib "$rb") | $ha | $hc |"
    done
  done
  echo
  if [ "$mismatches" = 0 ]; then
    echo "Outputs: thinkit's equal 0.9.0's for every tool$([[ ",$tools," == *,repair,* ]] && echo " (repair: thinkit's output dumps as its input does)")."
  else echo "Outputs: $mismatches MISMATCHES (see the run's stderr)."; fi
} >"$out"
cat "$out"
[ "$mismatches" = 0 ]
