#!/usr/bin/env bash
# bench/blockdev.sh: thinkit, upstream thin-provisioning-tools 1.3.3 and
# Debian's 0.9.0 side by side where lvm2 and backup tools run them: on a
# block device (a loop device over the bench's metadata file), on metadata
# laid out as the kernel lays it out (0.9.0's thin_restore inserts mappings
# one at a time: half-full leaves, nodes scattered as they were shadowed),
# cold (loop --direct-io=on, the device's buffers flushed: every read goes to
# the file's disk) and warm (loop --direct-io=off over a file held in the page
# cache). The three run alternately; medians of --runs. Beside them the I/O
# floor: the used metadata blocks read in disk order with large O_DIRECT reads
# (thinkit_bench_helper floor --direct); for thin_delta, the floor of the
# blocks it must read: the two devices' mapping subtrees (floor --trees).
#
# Every timed run writes to /dev/null (or a fresh sparse file for repair and
# restore); an untimed run per implementation then checks the outputs:
# thin_check verdicts equal, dump/delta/ls/rmap output byte-identical to
# 0.9.0's (1.3.3's dump and delta differ in form, so they are checked for exit
# 0 only), repairs and restores (thinkit's, 0.9.0's) dumping as the generated
# XML. restore reads the generated XML (cold: evicted from the page cache;
# warm: in it) and writes a file, whatever the mode. Exit 1 on any mismatch.
#
#   bench/blockdev.sh [--scales M,L] [--runs 3] [--modes cold,warm]
#       [--tools check,dump,delta,repair,restore,ls,rmap] [--slow-runs 1]
#       [--work DIR] [--build DIR] [--no-build] [--upstream DIR] [--out FILE]
#
# Needs root (losetup); without loop device support it says so and exits 0.
# Writes a markdown section to --out (default bench/results/blockdev-SCALES.md)
# and the raw runs to the same name with .csv; bench/RESULTS.md quotes them.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

scales=M runs=3 modes=cold,warm tools=check,dump,delta,repair,restore,ls,rmap slow_runs=1
delta_devs=1,5  # thin_delta --snap1 1 --snap2 5: the first origin and the first snapshot
work=/tmp/thinkit-bench-blk build=$repo/build-bench do_build=1 upstream="" out=""
while (($#)); do
  case $1 in
    --scales) scales=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    --slow-runs) slow_runs=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --upstream) upstream=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) sed -n '22,24p' "$0" >&2; exit 1 ;;
  esac
done
# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"

[ "$(id -u)" = 0 ] || { echo "bench/blockdev.sh: needs root for loop devices; skipped" >&2; exit 0; }
probe=$(mktemp); truncate -s 1M "$probe"
if ! dev=$(losetup --find --show --read-only "$probe" 2>/dev/null); then
  rm -f "$probe"; echo "bench/blockdev.sh: no loop device support here; skipped" >&2; exit 0
fi
losetup -d "$dev"; rm -f "$probe"

bench_setup
[ -x /usr/sbin/thin_check ] || die "/usr/sbin/thin_check (thin-provisioning-tools 0.9.0) is missing"
impls="thinkit 0.9.0"
[ -n "$upstream" ] && [ -x "$upstream/pdata_tools" ] && impls="thinkit 1.3.3 0.9.0"
[ -z "$out" ] && out=$repo/bench/results/blockdev-${scales//,/-}.md
csv=${out%.md}.csv
mkdir -p "$(dirname "$out")"
echo "scale,mode,tool,impl,run,wall_s,user_s,sys_s,max_rss_kib,exit" >"$csv"
tmp=$work/tmp; rm -rf "$tmp"; mkdir -p "$tmp"

loops=()
cleanup() { local d; for d in "${loops[@]}"; do losetup -d "$d" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# The bench's scales (bench/README.md): 4 origins, 6 snapshots.
gen_args() {
  case $1 in
    S) echo "--seed 1 --devices 4 --snapshots 6 --mappings 4032" ;;
    M) echo "--seed 1 --devices 4 --snapshots 6 --mappings 400176" ;;
    L) echo "--seed 1 --devices 4 --snapshots 6 --mappings 4000752" ;;
    XL) echo "--seed 1 --devices 4 --snapshots 6 --mappings 16000992" ;;
    *) die "unknown scale $1 (S, M, L, XL)" ;;
  esac
}

# input SCALE: the generated XML and 0.9.0's restore of it (kept while the
# generator's arguments and 0.9.0 are unchanged).
input() {
  local d=$work/$1 stamp
  stamp="$(gen_args "$1") | $(/usr/sbin/thin_restore -V 2>&1 | head -1)"
  mkdir -p "$d"
  if [ ! -f "$d/meta.bin" ] || [ "$(cat "$d/stamp" 2>/dev/null)" != "$stamp" ]; then
    log "$1: generating and restoring with 0.9.0"
    # shellcheck disable=SC2046
    "$gen" $(gen_args "$1") -o "$d/pool.xml"
    local n; n=$(grep -o 'mapped_blocks="[0-9]*"' "$d/pool.xml" | tr -dc '0-9\n' | awk '{s += $1} END {print s}')
    local bytes=$((n * 100)); [ "$bytes" -lt $((64 << 20)) ] && bytes=$((64 << 20))
    rm -f "$d/meta.bin"; truncate -s $(((bytes + 4095) / 4096 * 4096)) "$d/meta.bin"
    /usr/sbin/thin_restore -q -i "$d/pool.xml" -o "$d/meta.bin"
    echo "$n" >"$d/total_mappings"
    echo "$stamp" >"$d/stamp"
  fi
}

# cmd IMPL TOOL DEV OUTFILE: the command line of one run.
cmd() {
  local impl=$1 tool=$2 dev=$3 o=$4 pre=()
  case $impl in
    thinkit) pre=("$ours" "thin_$tool") ;;
    1.3.3) pre=("$upstream/pdata_tools" "thin_$tool") ;;
    0.9.0) pre=("/usr/sbin/thin_$tool") ;;
  esac
  case $tool in
    check) echo "${pre[*]} -q $dev" ;;
    dump) echo "${pre[*]} $dev" ;;
    delta) echo "${pre[*]} --snap1 ${delta_devs%,*} --snap2 ${delta_devs#*,} $dev" ;;
    repair) echo "${pre[*]} -i $dev -o $o" ;;
    restore) echo "${pre[*]} -i $xml -o $o" ;;
    ls) echo "${pre[*]} -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS $dev" ;;
    rmap) echo "${pre[*]} --region 0..4096 $dev" ;;
  esac
}

# prepare MODE FILE DEV: before a timed run, the cache state MODE asks for.
prepare() {
  if [ "$1" = cold ]; then
    blockdev --flushbufs "$3"
    "$helper" evict "$2" >/dev/null
  else
    "$helper" warm "$2" >/dev/null
  fi
}

# timed SCALE MODE TOOL IMPL RUN -- CMD...: one run, a CSV row; wall in $wall.
timed() {
  local scale=$1 mode=$2 tool=$3 impl=$4 run=$5 tf=$tmp/time.out
  shift 6
  "$helper" run -o "$tf" -- "$@" >/dev/null 2>"$tmp/err" || die "timing $* failed"
  local user sys rss status
  read -r wall user sys rss status <"$tf"
  echo "$scale,$mode,$tool,$impl,$run,$wall,$user,$sys,$rss,$status" >>"$csv"
  log "  $scale/$mode $tool $impl #$run: ${wall}s rss $((rss / 1024))MiB exit $status"
  [ "$status" = 0 ] || mismatch "$scale/$mode $tool $impl exit $status: $(head -c 300 "$tmp/err" | tr '\n' ' ')"
}

# verify SCALE TOOL DEV: untimed runs, outputs compared.
verify() {
  local scale=$1 tool=$2 dev=$3 d=$work/$1 impl
  for impl in $impls; do
    local o=$tmp/$impl.out
    rm -f "$tmp/$impl.bin"; truncate -s "$(stat -c %s "$d/meta.bin")" "$tmp/$impl.bin"
    set +e
    # shellcheck disable=SC2046,SC2091
    $(cmd "$impl" "$tool" "$dev" "$tmp/$impl.bin") >"$o" 2>"$tmp/$impl.err"
    echo $? >"$tmp/$impl.rc"
    set -e
    if { [ "$tool" = repair ] || [ "$tool" = restore ]; } && [ "$(cat "$tmp/$impl.rc")" = 0 ]; then
      "$ours" thin_dump "$tmp/$impl.bin" >"$o" || mismatch "$scale repair: dump of $impl's output failed"
    fi
  done
  for impl in $impls; do
    [ "$(cat "$tmp/$impl.rc")" = 0 ] || mismatch "$scale $tool: $impl exit $(cat "$tmp/$impl.rc")"
  done
  case $tool in
    check) cmp -s "$tmp/thinkit.err" "$tmp/0.9.0.err" || mismatch "$scale check: stderr differs from 0.9.0's" ;;
    dump|repair|restore) cmp -s "$tmp/thinkit.out" "$d/pool.xml" || mismatch "$scale $tool: thinkit's output is not the generated XML"
                 [ "$tool" != dump ] && ! cmp -s "$tmp/0.9.0.out" "$d/pool.xml" && mismatch "$scale $tool: 0.9.0's output does not dump as the XML"
                 [ "$tool" = dump ] && ! cmp -s "$tmp/0.9.0.out" "$d/pool.xml" && mismatch "$scale dump: 0.9.0's dump is not the XML" ;;
    delta|ls|rmap) cmp -s "$tmp/thinkit.out" "$tmp/0.9.0.out" || mismatch "$scale $tool: output differs from 0.9.0's" ;;
  esac
  rm -f "$tmp"/*.out "$tmp"/*.bin
  return 0
}

col() { # SCALE MODE TOOL IMPL FIELD
  awk -F, -v s="$1" -v m="$2" -v t="$3" -v i="$4" -v f="$5" \
    'NR > 1 && $1 == s && $2 == m && $3 == t && $4 == i {print $f}' "$csv" | median
}

IFS=, read -r -a scale_list <<<"$scales"
IFS=, read -r -a mode_list <<<"$modes"
IFS=, read -r -a tool_list <<<"$tools"
t_start=$(date +%s)
for scale in "${scale_list[@]}"; do
  input "$scale"
  meta=$work/$scale/meta.bin xml=$work/$scale/pool.xml
  for mode in "${mode_list[@]}"; do
    dio=on; [ "$mode" = warm ] && dio=off
    dev=$(losetup --find --show --read-only --direct-io="$dio" "$meta")
    loops+=("$dev")
    log "$scale/$mode: $meta on $dev (direct-io=$dio)"
    for ((i = 1; i <= runs; i++)); do
      prepare "$mode" "$meta" "$dev"
      timed "$scale" "$mode" floor floor "$i" -- "$helper" floor "$dev" --direct
      if [[ ",$tools," == *,delta,* ]]; then
        prepare "$mode" "$meta" "$dev"
        timed "$scale" "$mode" floor delta-floor "$i" -- "$helper" floor "$dev" --direct --trees "$delta_devs"
      fi
    done
    for tool in "${tool_list[@]}"; do
      for ((i = 1; i <= runs; i++)); do
        for impl in $impls; do
          if [ "$impl" = 0.9.0 ] && { [ "$tool" = repair ] || [ "$tool" = restore ]; } && [ "$i" -gt "$slow_runs" ]; then
            continue
          fi
          rm -f "$tmp/out.bin"; truncate -s "$(stat -c %s "$meta")" "$tmp/out.bin"
          if [ "$tool" = restore ]; then prepare "$mode" "$xml" "$dev"; else prepare "$mode" "$meta" "$dev"; fi
          # shellcheck disable=SC2046
          timed "$scale" "$mode" "$tool" "$impl" "$i" -- $(cmd "$impl" "$tool" "$dev" "$tmp/out.bin")
        done
      done
      [ "$mode" = "${mode_list[0]}" ] && verify "$scale" "$tool" "$dev"
    done
    losetup -d "$dev"
  done
done
elapsed=$(($(date +%s) - t_start))

{
  echo "### Block devices, kernel-like layout: thinkit vs 1.3.3 vs 0.9.0 ($(date +%Y-%m-%d))"
  echo
  echo "\`bench/blockdev.sh --scales $scales --runs $runs --modes $modes --tools $tools\`, $(nproc) cores," \
       "load average at the start $(cut -d' ' -f1-3 /proc/loadavg), $elapsed s in all. Medians of $runs" \
       "alternating runs (0.9.0's repair and restore: $slow_runs), wall seconds; \"x 1.3.3\" is 1.3.3's time over thinkit's," \
       "\"x floor\" thinkit's over the I/O floor (delta's: over the floor of the two trees it diffs). Max RSS in MiB."
  echo
  echo "| scale | mode | tool | thinkit | 1.3.3 | 0.9.0 | x 1.3.3 | x floor | thinkit MiB | 1.3.3 MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for scale in "${scale_list[@]}"; do
    for mode in "${mode_list[@]}"; do
      floor=$(col "$scale" "$mode" floor floor 6)
      echo "| $scale | $mode | I/O floor | $floor | | | | | | |"
      if [[ ",$tools," == *,delta,* ]]; then
        delta_floor=$(col "$scale" "$mode" floor delta-floor 6)
        echo "| $scale | $mode | I/O floor of delta's two trees | $delta_floor | | | | | | |"
      fi
      for tool in "${tool_list[@]}"; do
        f=$floor; [ "$tool" = delta ] && f=$delta_floor
        a=$(col "$scale" "$mode" "$tool" thinkit 6) b=$(col "$scale" "$mode" "$tool" 1.3.3 6)
        c=$(col "$scale" "$mode" "$tool" 0.9.0 6)
        ra=$(col "$scale" "$mode" "$tool" thinkit 9) rb=$(col "$scale" "$mode" "$tool" 1.3.3 9)
        x13=$(awk -v a="$a" -v b="$b" 'BEGIN {if (a + 0 > 0 && b != "n/a") printf "%.2f", b / a; else print "n/a"}')
        xf=$(awk -v a="$a" -v f="$f" 'BEGIN {if (f + 0 > 0) printf "%.2f", a / f; else print "n/a"}')
        mib() { awk -v k="$1" 'BEGIN {if (k == "n/a") print k; else printf "%.0f", k / 1024}'; }
        echo "| $scale | $mode | $tool | $a | $b | $c | $x13 | $xf | $(mib "$ra") | $(mib "$rb") |"
      done
    done
  done
  echo
  if [ "$mismatches" = 0 ]; then echo "Outputs: every comparison matched."; else echo "Outputs: $mismatches MISMATCHES (see the run's stderr)."; fi
} >"$out"
cat "$out"
[ "$mismatches" = 0 ]
