#!/usr/bin/env bash
# bench/run.sh: the thinkit benchmark suite (issue 6). One command builds
# thinkit and the bench helpers, generates pools at up to four scales (two
# variants: snapshots as separate trees, snapshots sharing leaves), times
# thinkit against Debian's thin-provisioning-tools 0.9.0 on the same files in
# alternating runs, checks that both tools produced the same results, and
# writes bench/RESULTS.md plus raw CSV in bench/results/. See bench/README.md.
#
# Exit status: 0 when every comparison matched, 1 on any mismatch or failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

# ------------------------------------------------------------------ options
scales="S,M,L,XL"
variants="separate,shared"
modes="warm,cold"
tools="restore,check,dump,delta,repair"
runs=3
slow_runs=1          # 0.9.0 restore/repair runs at the slow scales
slow_scales="L,XL"
work=/tmp/thinkit-bench
build="$repo/build-bench"
build_type=RelWithDebInfo
out_dir="$here"
do_build=1
drop_caches=0
keep=0

usage() {
  cat <<EOF
usage: bench/run.sh [options]
  --scales LIST       S,M,L,XL (default $scales)
  --variants LIST     separate,shared[,packed] (default $variants)
  --modes LIST        warm,cold (default $modes)
  --tools LIST        restore,check,dump,delta,repair (default $tools)
  --runs N            timed runs per tool and implementation (default $runs)
  --slow-runs N       at most N runs of 0.9.0's thin_restore and thin_repair at the
                      scales in --slow-scales (default $slow_runs; 0 skips them)
  --slow-scales LIST  where --slow-runs applies (default $slow_scales; "none" for nowhere)
  --work DIR          generated inputs and scratch files (default $work)
  --build DIR         thinkit build directory (default $build)
  --build-type T      CMake build type (default $build_type)
  --out DIR           where RESULTS.md and results/ go (default $out_dir)
  --no-build          use the binaries already in --build
  --drop-caches       cold mode: echo 3 > /proc/sys/vm/drop_caches (root) instead of
                      evicting only the files involved with posix_fadvise
  --keep              keep every run's output files (default: only the first run's)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --scales) scales=$2; shift ;;
    --variants) variants=$2; shift ;;
    --modes) modes=$2; shift ;;
    --tools) tools=$2; shift ;;
    --runs) runs=$2; shift ;;
    --slow-runs) slow_runs=$2; shift ;;
    --slow-scales) slow_scales=$2; shift ;;
    --work) work=$2; shift ;;
    --build) build=$2; shift ;;
    --build-type) build_type=$2; shift ;;
    --out) out_dir=$2; shift ;;
    --no-build) do_build=0 ;;
    --drop-caches) drop_caches=1 ;;
    --keep) keep=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1" >&2; usage >&2; exit 1 ;;
  esac
  shift
done

case "$runs" in ''|*[!0-9]*|0) echo "bench/run.sh: --runs must be a positive number" >&2; exit 1 ;; esac
case "$slow_runs" in ''|*[!0-9]*) echo "bench/run.sh: --slow-runs must be a number" >&2; exit 1 ;; esac
IFS=, read -r -a scale_list <<<"$scales"
IFS=, read -r -a variant_list <<<"$variants"
IFS=, read -r -a mode_list <<<"$modes"
IFS=, read -r -a tool_list <<<"$tools"
for s in "${scale_list[@]}"; do case $s in S|M|L|XL) ;; *) echo "bench/run.sh: unknown scale $s" >&2; exit 1 ;; esac; done
for v in "${variant_list[@]}"; do case $v in separate|shared|packed) ;; *) echo "bench/run.sh: unknown variant $v" >&2; exit 1 ;; esac; done
for m in "${mode_list[@]}"; do case $m in warm|cold) ;; *) echo "bench/run.sh: unknown mode $m" >&2; exit 1 ;; esac; done
for t in "${tool_list[@]}"; do case $t in restore|check|dump|delta|repair) ;; *) echo "bench/run.sh: unknown tool $t" >&2; exit 1 ;; esac; done
has_tool() { local t; for t in "${tool_list[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }
is_slow_scale() { local s; IFS=, read -r -a _ss <<<"$slow_scales"; for s in "${_ss[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "bench/run.sh: $*" >&2; exit 1; }
mismatches=0
mismatch() { echo "MISMATCH: $*" >&2; echo "$*" >>"$mismatch_file"; mismatches=$((mismatches + 1)); }

started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started_text=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

# ------------------------------------------------------------- dependencies
need_pkgs=""
for p in thin-provisioning-tools zstd strace; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs="$need_pkgs $p"
done
"$repo/scripts/install-deps.sh" --with-oracle
if [ -n "$need_pkgs" ]; then
  log "installing:$need_pkgs"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $need_pkgs >/dev/null
fi
for t in thin_check thin_dump thin_restore thin_repair thin_delta; do
  [ -x "/usr/sbin/$t" ] || die "/usr/sbin/$t (thin-provisioning-tools 0.9.0) is missing"
done
oracle_version=$(/usr/sbin/thin_check -V 2>&1 | head -1)

# -------------------------------------------------------------------- build
if [ "$do_build" = 1 ]; then
  log "building thinkit ($build_type) in $build"
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE="$build_type" -DTHINKIT_BENCH=ON >/dev/null
  cmake --build "$build" -j "$(nproc)" --target thinkit thinkit_gen_xml thinkit_bench_helper >/dev/null
fi
ours="$build/tools/thinkit"
gen="$build/tests/gen/thinkit_gen_xml"
helper="$build/bench/thinkit_bench_helper"
for b in "$ours" "$gen" "$helper"; do [ -x "$b" ] || die "$b is missing (build with -DTHINKIT_BENCH=ON)"; done
build_type_used=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || echo "?")

mkdir -p "$work" "$out_dir/results"
work=$(cd "$work" && pwd)
tmp="$work/tmp"
rm -rf "$tmp"; mkdir -p "$tmp"
runs_csv="$out_dir/results/runs.csv"
inputs_csv="$out_dir/results/inputs.csv"
mismatch_file="$tmp/mismatches"
commands_file="$tmp/commands"
: >"$mismatch_file"; : >"$commands_file"
echo "scale,variant,mode,tool,impl,run,wall_s,user_s,sys_s,cpu_s,max_rss_kib,exit" >"$runs_csv"
echo "scale,variant,gen_args,total_mappings,xml_bytes,meta_file_bytes,used_blocks,used_bytes" >"$inputs_csv"

# ------------------------------------------------------------------ helpers
# Generator parameters per scale: 4 origins, 6 snapshots (dev 5..10 of
# origins 1..4,1,2), so total mappings = origins * 2.5 (a snapshot shares its
# origin's mapped blocks). Each origin maps a multiple of 252 (a full leaf) so
# the shared variant has no partial leaves that 0.9.0's thin_check rejects.
gen_mappings() {
  case $1 in
    S) echo 4032 ;;        # 1008 a device  -> ~10k total
    M) echo 400176 ;;      # 100044         -> ~1M
    L) echo 4000752 ;;     # 1000188        -> ~10M
    XL) echo 16000992 ;;   # 4000248        -> ~40M
  esac
}
gen_args() { echo "--seed 1 --devices 4 --snapshots 6 --mappings $(gen_mappings "$1")"; }

# Metadata file size: about 3x the used size of 0.9.0's half-full leaves
# (~33 bytes a mapping), at least 64 MiB.
meta_size() {
  local total=$1 bytes
  bytes=$(( total * 100 ))
  [ "$bytes" -lt $((64 << 20)) ] && bytes=$((64 << 20))
  echo $(( (bytes + 4095) / 4096 * 4096 ))
}

fresh_file() { rm -f "$1"; truncate -s "$2" "$1"; }

evict() {
  if [ "$drop_caches" = 1 ]; then
    sync; echo 3 >/proc/sys/vm/drop_caches
  else
    "$helper" evict "$@"
  fi
}
warm() { "$helper" warm "$@"; }

# stamp NAME CONTENT: true when NAME's stamp exists and equals CONTENT.
stamp_ok() { [ -f "$1.stamp" ] && [ "$(cat "$1.stamp")" = "$2" ]; }

# timed SCALE VARIANT MODE TOOL IMPL RUN STDOUT STDERR -- CMD...
# Runs CMD under `thinkit_bench_helper run` (wait4 rusage, as GNU time reads it,
# but to the microsecond: GNU time prints 10 ms steps), appends a CSV row and
# leaves the exit status in $rc.
timed() {
  local scale=$1 variant=$2 mode=$3 tool=$4 impl=$5 run=$6 so=$7 se=$8
  shift 9
  local tf="$tmp/time.out"
  rm -f "$tf"
  "$helper" run -o "$tf" -- "$@" >"$so" 2>"$se" || die "timing $* failed"
  local wall user sys rss status
  read -r wall user sys rss status <"$tf"
  rc=$status
  local cpu
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.6f", u + s }')
  echo "$scale,$variant,$mode,$tool,$impl,$run,$wall,$user,$sys,$cpu,$rss,$status" >>"$runs_csv"
  if ! grep -qxF "$tool|$impl|$variant|$*" "$commands_file"; then echo "$tool|$impl|$variant|$*" >>"$commands_file"; fi
  log "  $scale/$variant/$mode $tool $impl #$run: wall ${wall}s cpu ${cpu}s rss $((rss / 1024))MiB exit $status"
  if [ "$mode" = cold ] && [ ! -s "$tmp/evict_note" ] && [ "$tool" = check ]; then
    # Once: show that eviction works (pages of the input still cached after evicting).
    local meta; meta=$(input_meta "$scale" "$variant")
    evict "$meta"
    echo "$(basename "$meta"): $(sed -n 's/^resident=//p' < <("$helper" resident "$meta")) of $(sed -n 's/^pages=//p' < <("$helper" resident "$meta")) pages resident after evicting" >"$tmp/evict_note"
  fi
}

# ------------------------------------------------------------------- inputs
# generate SCALE: XML for both variants ($work/SCALE/pool.xml, pool-defs.xml).
generate() {
  local scale=$1 dir="$work/$1" args stamp
  mkdir -p "$dir"
  args=$(gen_args "$scale")
  stamp="$args|$(sha1sum "$repo/tests/gen/gen_thin_xml.cc" | cut -c1-40)"
  if stamp_ok "$dir/pool.xml" "$stamp" && stamp_ok "$dir/pool-defs.xml" "$stamp"; then
    log "$scale: reusing generated XML"
  else
    log "$scale: generating XML ($args)"
    rm -f "$dir"/*.stamp "$dir"/*.bin
    # shellcheck disable=SC2086
    "$gen" $args -o "$dir/pool.xml"
    # shellcheck disable=SC2086
    "$gen" $args --shared-defs -o "$dir/pool-defs.xml"
    echo "$stamp" >"$dir/pool.xml.stamp"
    echo "$stamp" >"$dir/pool-defs.xml.stamp"
    grep -o 'mapped_blocks="[0-9]*"' "$dir/pool.xml" | tr -dc '0-9\n' | awk '{ t += $1 } END { print t }' \
      >"$dir/total_mappings"
  fi
}

# input_meta SCALE VARIANT: the metadata file the read tools are timed on.
#   separate: 0.9.0's thin_restore of pool.xml (half-full leaves, like the kernel's)
#   shared:   thinkit's thin_restore of pool-defs.xml (<def>/<ref>: shared leaves)
#   packed:   thinkit's thin_restore of pool.xml (full leaves; optional)
input_meta() { echo "$work/$1/meta-$2.bin"; }
input_stamp() {
  local scale=$1 variant=$2
  case $variant in
    separate) echo "$(cat "$work/$scale/pool.xml.stamp")|$oracle_version" ;;
    *) echo "$(cat "$work/$scale/pool.xml.stamp")|$(sha1sum "$ours" | cut -c1-40)" ;;
  esac
}
# The separate variant's input is the first timed 0.9.0 thin_restore's output
# when restore is timed (adopt_input), so XL's 2.5-minute restore runs once.
adopt_input=0
input_ready() { stamp_ok "$(input_meta "$1" "$2")" "$(input_stamp "$1" "$2")"; }
prepare_input() {
  local scale=$1 variant=$2 meta size total
  meta=$(input_meta "$scale" "$variant")
  total=$(cat "$work/$scale/total_mappings")
  size=$(meta_size "$total")
  if input_ready "$scale" "$variant"; then return; fi
  log "$scale/$variant: making the input metadata"
  fresh_file "$meta" "$size"
  case $variant in
    separate) /usr/sbin/thin_restore -q -i "$work/$scale/pool.xml" -o "$meta" ;;
    shared) "$ours" thin_restore -q -i "$work/$scale/pool-defs.xml" -o "$meta" ;;
    packed) "$ours" thin_restore -q -i "$work/$scale/pool.xml" -o "$meta" ;;
  esac
  input_stamp "$scale" "$variant" >"$meta.stamp"
}

dump_of() { "$ours" thin_dump "$1" >"$2"; }

# ----------------------------------------------------------------- the runs
# bench_tool SCALE VARIANT MODE TOOL
bench_tool() {
  local scale=$1 variant=$2 mode=$3 tool=$4
  local dir="$work/$scale" meta xml size total key
  meta=$(input_meta "$scale" "$variant")
  total=$(cat "$dir/total_mappings")
  size=$(meta_size "$total")
  key="$tmp/$scale.$variant.$mode.$tool"
  xml="$dir/pool.xml"
  [ "$variant" = shared ] && xml="$dir/pool-defs.xml"

  local n_theirs=$runs
  if [ "$tool" = restore ] || [ "$tool" = repair ]; then
    is_slow_scale "$scale" && [ "$slow_runs" -lt "$n_theirs" ] && n_theirs=$slow_runs
  fi
  # 0.9.0 cannot read <def>/<ref>: its restore is timed on pool.xml in the separate variant.
  [ "$tool" = restore ] && [ "$variant" = shared ] && n_theirs=0
  [ "$tool" = restore ] && [ "$variant" = packed ] && n_theirs=0

  local i impl bin out so se cmd
  for ((i = 1; i <= runs; i++)); do
    for impl in ours theirs; do
      if [ "$impl" = theirs ] && [ "$i" -gt "$n_theirs" ]; then continue; fi
      if [ "$impl" = ours ]; then bin=("$ours"); else bin=(); fi
      so="$key.$impl.$i.out"; se="$key.$impl.$i.err"; out="$key.$impl.$i.bin"
      local t="thin_$tool" inputs=()
      [ "$impl" = theirs ] && t="/usr/sbin/thin_$tool"
      case $tool in
        check) cmd=("${bin[@]}" "$t" "$meta"); inputs=("$meta") ;;
        dump) cmd=("${bin[@]}" "$t" "$meta"); inputs=("$meta") ;;
        delta) cmd=("${bin[@]}" "$t" --snap1 1 --snap2 5 "$meta"); inputs=("$meta") ;;
        restore) fresh_file "$out" "$size"; cmd=("${bin[@]}" "$t" -q -i "$xml" -o "$out"); inputs=("$xml")
                 [ "$variant" = packed ] && cmd=("${bin[@]}" "$t" -q -i "$dir/pool.xml" -o "$out") ;;
        repair) fresh_file "$out" "$size"; cmd=("${bin[@]}" "$t" -i "$meta" -o "$out"); inputs=("$meta") ;;
      esac
      if [ "$mode" = cold ]; then evict "${inputs[@]}"; else warm "${inputs[@]}"; fi
      timed "$scale" "$variant" "$mode" "$tool" "$impl" "$i" "$so" "$se" -- "${cmd[@]}"
      echo "$rc" >"$key.$impl.$i.rc"
      if [ "$i" -gt 1 ] && [ "$keep" = 0 ]; then rm -f "$so" "$out"; fi
    done
  done

  # Verify: the first run of each implementation.
  local a="$key.ours.1" b="$key.theirs.1" label="$scale/$variant/$mode thin_$tool"
  case $tool in
    check)
      [ "$(cat "$a.rc")" = 0 ] || mismatch "$label: thinkit exit $(cat "$a.rc") on healthy metadata: $(head -c 300 "$a.err" | tr '\n' ' ')"
      if [ "$n_theirs" -gt 0 ]; then
        [ "$(cat "$a.rc")" = "$(cat "$b.rc")" ] || mismatch "$label: exit status thinkit $(cat "$a.rc") vs 0.9.0 $(cat "$b.rc")"
        cmp -s "$a.out" "$b.out" || mismatch "$label: stdout differs ($a.out vs $b.out)"
        cmp -s "$a.err" "$b.err" || mismatch "$label: stderr differs ($a.err vs $b.err)"
      fi ;;
    dump|delta)
      [ "$(cat "$a.rc")" = 0 ] || mismatch "$label: thinkit exit $(cat "$a.rc"): $(head -c 300 "$a.err" | tr '\n' ' ')"
      [ "$(cat "$b.rc")" = 0 ] || mismatch "$label: 0.9.0 exit $(cat "$b.rc"): $(head -c 300 "$b.err" | tr '\n' ' ')"
      cmp -s "$a.out" "$b.out" || mismatch "$label: output differs ($a.out vs $b.out)"
      if [ "$tool" = dump ]; then cmp -s "$a.out" "$dir/pool.xml" || mismatch "$label: thinkit dump differs from the generated XML"; fi
      rm -f "$a.out" "$b.out" ;;
    restore|repair)
      local impls=(ours); [ "$n_theirs" -gt 0 ] && impls+=(theirs)
      for impl in "${impls[@]}"; do
        local r="$key.$impl.1"
        if [ "$(cat "$r.rc")" != 0 ]; then
          mismatch "$label: $impl exit $(cat "$r.rc"): $(head -c 300 "$r.err" | tr '\n' ' ')"
          continue
        fi
        dump_of "$r.bin" "$r.dump" || mismatch "$label: thinkit thin_dump of $impl's output failed"
        if cmp -s "$r.dump" "$dir/pool.xml"; then
          if [ "$tool" = restore ] && [ "$impl" = theirs ] && [ "$variant" = separate ] && [ "$adopt_input" = 1 ]; then
            mv "$r.bin" "$meta"
            input_stamp "$scale" "$variant" >"$meta.stamp"
            adopt_input=0
            log "$scale/$variant: the first timed 0.9.0 thin_restore's output is the input metadata"
          fi
        else
          mismatch "$label: dump of $impl's output differs from the generated XML"
        fi
      done
      if [ "$n_theirs" -gt 0 ] && [ -f "$a.dump" ] && [ -f "$b.dump" ]; then
        cmp -s "$a.dump" "$b.dump" || mismatch "$label: dumps of the two outputs differ"
      fi
      rm -f "$a.dump" "$b.dump" "$a.bin" "$b.bin" ;;
  esac
}

# floor SCALE VARIANT MODE: one crc32c pass over the input's used blocks.
bench_floor() {
  local scale=$1 variant=$2 mode=$3 meta i
  meta=$(input_meta "$scale" "$variant")
  for ((i = 1; i <= runs; i++)); do
    if [ "$mode" = cold ]; then evict "$meta"; else warm "$meta"; fi
    timed "$scale" "$variant" "$mode" floor floor "$i" "$tmp/floor.out" "$tmp/floor.err" -- "$helper" floor "$meta"
    [ "$rc" = 0 ] || mismatch "$scale/$variant/$mode floor: helper failed: $(cat "$tmp/floor.err")"
    local used valid
    used=$(sed -n 's/^used_blocks=//p' "$tmp/floor.out")
    valid=$(sed -n 's/^valid_checksums=//p' "$tmp/floor.out")
    [ "$used" = "$valid" ] || mismatch "$scale/$variant floor: $valid of $used used blocks have a valid checksum"
  done
}

# strace: which open flags each implementation uses on a metadata file (a
# tiny one: the flags do not depend on the size).
strace_note="$tmp/strace"
: >"$strace_note"
strace_check() {
  if ! command -v strace >/dev/null; then echo "strace not installed: not verified" >>"$strace_note"; return; fi
  local meta="$tmp/tiny.bin" t
  "$gen" --mappings 1000 --snapshots 1 -o "$tmp/tiny.xml"
  fresh_file "$meta" $((8 << 20))
  /usr/sbin/thin_restore -q -i "$tmp/tiny.xml" -o "$meta"
  for t in check dump; do
    strace -f -e trace=open,openat -o "$tmp/strace.out" "/usr/sbin/thin_$t" "$meta" >/dev/null 2>&1 || true
    echo "0.9.0 thin_$t: $(grep -F "$(basename "$meta")" "$tmp/strace.out" | sed 's/^[0-9]* *//' | head -1)" >>"$strace_note"
    strace -f -e trace=open,openat -o "$tmp/strace.out" "$ours" "thin_$t" "$meta" >/dev/null 2>&1 || true
    echo "thinkit thin_$t: $(grep -F "$(basename "$meta")" "$tmp/strace.out" | sed 's/^[0-9]* *//' | head -1)" >>"$strace_note"
  done
}

# ------------------------------------------------------------------ main loop
strace_check
for scale in "${scale_list[@]}"; do
  generate "$scale"
  total=$(cat "$work/$scale/total_mappings")
  for variant in "${variant_list[@]}"; do
    meta=$(input_meta "$scale" "$variant")
    adopt_input=0
    if [ "$variant" = separate ] && has_tool restore && ! input_ready "$scale" "$variant" &&
       ! { is_slow_scale "$scale" && [ "$slow_runs" = 0 ]; }; then
      adopt_input=1
      rm -f "$meta" "$meta.stamp"
    else
      prepare_input "$scale" "$variant"
    fi
    used=""
    for mode in "${mode_list[@]}"; do
      # restore first: in the separate variant its 0.9.0 output may become the input.
      has_tool restore && bench_tool "$scale" "$variant" "$mode" restore
      prepare_input "$scale" "$variant"
      if [ -z "$used" ]; then
        used=$("$helper" info "$meta" | sed -n 's/^used_blocks=//p')
        xml="$work/$scale/pool.xml"; [ "$variant" = shared ] && xml="$work/$scale/pool-defs.xml"
        echo "$scale,$variant,$(gen_args "$scale")$([ "$variant" = shared ] && echo " --shared-defs"),$total,$(stat -c %s "$xml"),$(stat -c %s "$meta"),$used,$((used * 4096))" >>"$inputs_csv"
      fi
      log "$scale/$variant/$mode: $total mappings, $used used metadata blocks"
      bench_floor "$scale" "$variant" "$mode"
      for tool in "${tool_list[@]}"; do
        [ "$tool" = restore ] || bench_tool "$scale" "$variant" "$mode" "$tool"
      done
    done
  done
done

finished=$(date +%s)
elapsed=$((finished - started))

# ------------------------------------------------------------------- report
export LC_ALL=C
summary_csv="$out_dir/results/summary.csv"
# Median, per (scale, variant, mode, tool, impl), of wall, cpu and rss.
awk -F, 'NR > 1 {
  k = $1 "," $2 "," $3 "," $4 "," $5
  n[k]++; w[k, n[k]] = $7; c[k, n[k]] = $10; r[k, n[k]] = $11
  if (!(k in seen)) { seen[k] = 1; order[++m] = k }
}
function med(a, k, cnt,   i, j, t, v) {
  for (i = 1; i <= cnt; i++) v[i] = a[k, i] + 0
  for (i = 2; i <= cnt; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
  return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
}
BEGIN { print "scale,variant,mode,tool,impl,runs,median_wall_s,median_cpu_s,median_rss_kib" }
END { for (i = 1; i <= m; i++) { k = order[i]; printf "%s,%d,%.3f,%.3f,%d\n", k, n[k], med(w, k, n[k]), med(c, k, n[k]), med(r, k, n[k]) } }' \
  "$runs_csv" >"$summary_csv"

git_commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$repo" status --porcelain 2>/dev/null | grep -c . || true)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fs_line=$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')
disk_dev=$(df "$work" | awk 'NR == 2 { print $1 }')
disk_info=$(lsblk -dno NAME,MODEL,ROTA,SIZE "$disk_dev" 2>/dev/null | awk '{ $1 = $1; print }' || true)
[ -n "$disk_info" ] || disk_info="(lsblk gave nothing for $disk_dev)"
cold_how="posix_fadvise(POSIX_FADV_DONTNEED) after fsync on the input files (thinkit_bench_helper evict)"
[ "$drop_caches" = 1 ] && cold_how="echo 3 > /proc/sys/vm/drop_caches"

results="$out_dir/RESULTS.md"
{
  echo "# Benchmark results"
  echo
  echo "Written by \`bench/run.sh\` (see bench/README.md for how to read this). Started $started_text;"
  echo "the whole run took $((elapsed / 60)) min $((elapsed % 60)) s."
  echo
  echo "## Machine and build"
  echo
  echo "| | |"
  echo "| --- | --- |"
  echo "| CPU | $cpu_model |"
  echo "| cores | $(nproc) |"
  echo "| RAM | $mem_total |"
  echo "| kernel | $(uname -r) |"
  echo "| load average (1, 5, 15 min) | at start $load_start; at end $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| work dir filesystem | $fs_line ($work) |"
  echo "| disk | $disk_info |"
  echo "| git commit | $git_commit ($git_dirty files modified or untracked) |"
  echo "| thinkit build | $build_type_used, $build |"
  echo "| oracle | Debian thin-provisioning-tools $oracle_version (/usr/sbin) |"
  echo "| hardware crc32c | $( [ "$(sed -n 's/^hardware_crc=//p' "$tmp/floor.out" 2>/dev/null)" = 1 ] && echo yes || echo no ) |"
  echo
  echo "## Command"
  echo
  echo '```sh'
  echo "bench/run.sh --scales $scales --variants $variants --modes $modes --tools $tools --runs $runs --slow-runs $slow_runs --slow-scales $slow_scales --work $work"
  echo '```'
  echo
  echo "Runs alternate thinkit, 0.9.0, thinkit, 0.9.0, ... Each figure is the median over the runs"
  echo "(wall seconds / CPU seconds = user + sys / peak RSS in MiB, from wait4()'s rusage, as GNU time"
  echo "reports them but to the microsecond); ratio = 0.9.0 / thinkit"
  echo "median wall time (> 1: thinkit is faster)."
  if [ "$slow_runs" -lt "$runs" ] && [ "$slow_scales" != none ]; then
    echo "**0.9.0's thin_restore and thin_repair ran at most $slow_runs time(s) at $slow_scales** (\`--slow-runs\`)."
  fi
  echo
  echo "* Warm: each input is read once (\`cat > /dev/null\`) before every run."
  echo "* Cold: before every run the inputs are evicted from the page cache: $cold_how."
  [ -s "$tmp/evict_note" ] && echo "  Checked with mincore: $(cat "$tmp/evict_note")."
  echo "  Debian 0.9.0 opens the metadata with O_DIRECT itself, so its check, dump, delta and repair"
  echo "  read from the disk in both modes; thinkit reads through the page cache. strace of the open calls:"
  echo
  sed 's/^/      /' "$strace_note"
  echo
  echo "### Exact commands (templates; paths as run)"
  echo
  echo '```'
  awk -F'|' '{ if (!seen[$1 "|" $2 "|" $3]++) print $4 }' "$commands_file" | sed "s|$work|\$WORK|g; s|$build|\$BUILD|g" | sort -u
  echo '```'
  echo
  echo "\$WORK = $work, \$BUILD = $build. Output of thin_dump and thin_delta goes to a file in \$WORK;"
  echo "restore and repair write a fresh sparse file (\`truncate -s\`) each run."
  echo
  echo "## Inputs"
  echo
  echo "Generator: \`thinkit_gen_xml ARGS -o pool.xml\` (shared variant: plus \`--shared-defs\`)."
  echo "Used blocks: entries with a count above zero in the metadata space map's bitmaps"
  echo "(\`thinkit_bench_helper info\`), which include the superblock and the space maps' own blocks."
  echo
  echo "| scale | variant | generator args | total mappings | XML size | metadata file | used blocks | used metadata |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  awk -F, 'NR > 1 { printf "| %s | %s | `%s` | %d | %.1f MiB | %.0f MiB | %d | %.1f MiB |\n", $1, $2, $3, $4, $5 / 1048576, $6 / 1048576, $7, $8 / 1048576 }' "$inputs_csv"
  echo
  echo "The metadata the read tools run on: **separate** = 0.9.0's thin_restore of pool.xml (it inserts"
  echo "mappings one by one, so leaves are about half full, like the kernel's); **shared** = thinkit's"
  echo "thin_restore of pool-defs.xml (\`<def>\`/\`<ref>\`: leaves shared between a snapshot and its origin,"
  echo "full leaves); **packed** = thinkit's thin_restore of pool.xml (full leaves, no sharing)."
  echo "0.9.0 cannot read \`<def>\`/\`<ref>\`: its restore column is n/a in the shared variant (its restore of"
  echo "the same pool, expanded, is the separate variant's row). thin_delta: \`--snap1 1 --snap2 5\` (dev 5 is"
  echo "a snapshot of dev 1)."
  echo
  echo "## Results"
  awk -F, -v scales="$scales" -v variants="$variants" -v modes="$modes" '
    FILENAME == ARGV[1] { if (FNR > 1) { used[$1 "," $2] = $8 } ; next }
    FNR > 1 { k = $1 "," $2 "," $3 "," $4 "," $5; W[k] = $7; C[k] = $8; R[k] = $9; N[k] = $6; have[$1 "," $2 "," $3] = 1 }
    function cell(k) { return (k in W) ? sprintf("%.3f / %.3f / %.0f", W[k], C[k], R[k] / 1024) : "n/a" }
    END {
      ns = split(scales, S, ","); nv = split(variants, V, ","); nm = split(modes, M, ",")
      nt = split("check,dump,delta,restore,repair", T, ",")
      for (s = 1; s <= ns; s++) for (v = 1; v <= nv; v++) for (m = 1; m <= nm; m++) {
        b = S[s] "," V[v] "," M[m]
        if (!(b in have)) continue
        printf "\n### %s, %s, %s\n\n", S[s], V[v], M[m]
        print "| tool | thinkit wall s / CPU s / RSS MiB | 0.9.0 wall s / CPU s / RSS MiB | ratio (wall) | ratio (CPU) | runs (thinkit, 0.9.0) |"
        print "| --- | --- | --- | --- | --- | --- |"
        for (t = 1; t <= nt; t++) {
          a = b "," T[t] ",ours"; o = b "," T[t] ",theirs"
          if (!(a in W)) continue
          rw = (o in W && W[a] > 0) ? sprintf("%.1fx", W[o] / W[a]) : "n/a"
          rc = (o in W && C[a] > 0) ? sprintf("%.1fx", C[o] / C[a]) : "n/a"
          printf "| thin_%s | %s | %s | %s | %s | %d, %d |\n", T[t], cell(a), cell(o), rw, rc, N[a], (o in N) ? N[o] : 0
        }
        f = b ",floor,floor"
        if (f in W) {
          u = used[S[s] "," V[v]] / 1073741824
          printf "| crc32c floor (%.1f MiB used) | %s | | | | %d |\n", u * 1024, cell(f), N[f]
        }
      }
    }' "$inputs_csv" "$summary_csv"
  echo
  echo "## Linear scaling (thinkit)"
  echo
  echo "Median wall and CPU seconds per million mappings, wall seconds per GiB of used metadata, and peak RSS"
  echo "(MiB), per scale. Linear scaling means the per-unit times stay flat from S to XL (S is dominated by"
  echo "start-up costs); RSS should grow at most with a few bits per data block."
  awk -F, -v scales="$scales" -v variants="$variants" -v modes="$modes" '
    FILENAME == ARGV[1] { if (FNR > 1) { used[$1 "," $2] = $8; tot[$1 "," $2] = $4 } ; next }
    FNR > 1 && $5 != "theirs" { k = $1 "," $2 "," $3 "," $4; W[k] = $7; C[k] = $8; R[k] = $9; vm[$2 "," $3] = 1 }
    END {
      ns = split(scales, S, ","); nt = split("floor,check,dump,delta,restore,repair", T, ",")
      nv = split(variants, V, ","); nm = split(modes, M, ",")
      for (iv = 1; iv <= nv; iv++) for (im = 1; im <= nm; im++) {
        v = V[iv]; m = M[im]
        if (!((v "," m) in vm)) continue
        printf "\n### %s, %s\n\n| tool |", v, m
        for (s = 1; s <= ns; s++) printf " %s wall s/M-map | %s CPU s/M-map | %s wall s/GiB | %s RSS MiB |", S[s], S[s], S[s], S[s]
        printf "\n| --- |"; for (s = 1; s <= ns; s++) printf " --- | --- | --- | --- |"; printf "\n"
        for (t = 1; t <= nt; t++) {
          line = sprintf("| %s |", T[t] == "floor" ? "crc32c floor" : "thin_" T[t]); any = 0
          for (s = 1; s <= ns; s++) {
            k = S[s] "," v "," m "," T[t]; u = S[s] "," v
            if (k in W && tot[u] > 0) { any = 1; line = line sprintf(" %.4f | %.4f | %.3f | %.0f |", W[k] / (tot[u] / 1e6), C[k] / (tot[u] / 1e6), W[k] / (used[u] / 1073741824), R[k] / 1024) }
            else line = line " | | | |"
          }
          if (any) print line
        }
      }
    }' "$inputs_csv" "$summary_csv"
  echo
  echo "## Issue 6 targets (XL, separate variant, warm cache)"
  echo
  awk -F, '
    FNR > 1 && $1 == "XL" && $2 == "separate" && $3 == "warm" { k = $4 "," $5; W[k] = $7; R[k] = $9; have = 1 }
    function row(name, tool, ref, target, tw, tr,   a, o, met) {
      a = tool ",ours"; o = tool ",theirs"
      if (!(a in W)) { printf "| %s | %s | %s | not measured | | not measured |\n", name, ref, target; return }
      met = (W[a] <= tw) && (tr == 0 || R[a] / 1024 <= tr)
      printf "| %s | %s | %s | %.2f s, %.0f MiB | %s | %s |\n", name, ref, target, W[a], R[a] / 1024,
        (o in W) ? sprintf("%.2f s, %.0f MiB", W[o], R[o] / 1024) : "n/a", met ? "met" : "**not met**"
    }
    END {
      if (!have) print "XL (separate, warm) was not part of this run: nothing to compare.\n"
      print "| tool | 0.9.0 on XL (issue) | thinkit target | thinkit measured | 0.9.0 measured | |"
      print "| --- | --- | --- | --- | --- | --- |"
      row("thin_check", "check", "11.2 s, 42 MiB", "<= 0.8 s, <= 64 MiB", 0.8, 64)
      row("thin_dump to file", "dump", "8.1 s", "<= 1.5 s", 1.5, 0)
      row("thin_restore", "restore", "144 s", "<= 6 s", 6, 0)
      row("thin_repair (healthy input)", "repair", "138 s", "<= 8 s", 8, 0)
      row("thin_delta snapshot vs origin", "delta", "0.56 s", "<= 0.1 s", 0.1, 0)
    }' "$summary_csv"
  echo
  echo "## Output comparisons"
  echo
  echo "Per scale, variant, mode and tool, the first run of each implementation is compared:"
  echo "thin_check exit status, stdout and stderr equal (and thinkit exits 0 on this healthy metadata);"
  echo "thin_dump and thin_delta output byte for byte (and thinkit's dump equals the generated XML);"
  echo "thin_restore and thin_repair: thinkit's thin_dump of each output equals the generated XML."
  echo "The crc32c floor checks that every used block carries a valid checksum."
  echo
  if [ -s "$mismatch_file" ]; then
    echo "**$(wc -l <"$mismatch_file") MISMATCHES:**"
    echo
    sed 's/^/* /' "$mismatch_file"
  else
    echo "All outputs matched."
  fi
  echo
  echo "Raw data: \`results/runs.csv\` (every run), \`results/summary.csv\` (medians), \`results/inputs.csv\`."
} >"$results"

log "wrote $results (took ${elapsed}s)"
if [ "$mismatches" -gt 0 ]; then
  echo "bench/run.sh: $mismatches MISMATCHES (see $results)" >&2
  exit 1
fi
