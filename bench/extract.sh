#!/usr/bin/env bash
# thin_extract's read rate against the data device's own sequential read rate.
#
# Makes a pool whose one thin device maps every data block in order (fully
# mapped: the case the issue's "at least 80% of the data device's sequential
# read rate" is about), then times, cold (the data file evicted from the page
# cache with `dd iflag=nocache count=0` before each run) and warm:
#   floor:   dd if=DATA of=/dev/null bs=8M
#   extract: thin_extract --data-dev DATA --dev-id 1 -o /dev/null META
# and prints one markdown row per mode for bench/RESULTS.md.
#
#   bench/extract.sh [--build DIR] [--work DIR] [--mib N] [--runs N]
set -euo pipefail

build=build work=/tmp/thinkit-bench-extract mib=1024 runs=3
while (($#)); do
    case $1 in
        --build) build=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --mib) mib=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: $0 [--build DIR] [--work DIR] [--mib N] [--runs N]" >&2; exit 1 ;;
    esac
done
bin=$build/tools/thinkit
[[ -x $bin ]] || { echo "$bin: not built" >&2; exit 1; }
mkdir -p "$work"
data=$work/data.img meta=$work/meta.img xml=$work/pool.xml
blocks=$((mib * 16)) # 64 KiB data blocks

if [[ ! -f $data ]] || (($(stat -c %s "$data") != mib * 1048576)); then
    # Real blocks (not holes), so reading them is disk I/O when cold.
    head -c $((mib * 1048576)) /dev/urandom >"$data"
fi
cat >"$xml" <<XML
<superblock uuid="" time="0" transaction="1" data_block_size="128" nr_data_blocks="$blocks">
  <device dev_id="1" mapped_blocks="$blocks" transaction="0" creation_time="0" snap_time="0">
    <range_mapping origin_begin="0" data_begin="0" length="$blocks" time="0"/>
  </device>
</superblock>
XML
rm -f "$meta"
truncate -s 64M "$meta"
"$bin" thin_restore -q -i "$xml" -o "$meta"

cold() { dd if="$data" iflag=nocache count=0 status=none; }
warm() { cat "$data" >/dev/null; }
# Seconds, as a decimal, of one command.
seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

for mode in cold warm; do
    floor=() extract=()
    for ((r = 0; r < runs; r++)); do
        $mode
        floor+=("$(seconds dd if="$data" of=/dev/null bs=8M status=none)")
        $mode
        extract+=("$(seconds "$bin" thin_extract --data-dev "$data" --dev-id 1 -o /dev/null "$meta")")
    done
    f=$(printf '%s\n' "${floor[@]}" | median)
    e=$(printf '%s\n' "${extract[@]}" | median)
    printf '| %s | %d MiB | %.3f s (%.0f MiB/s) | %.3f s (%.0f MiB/s) | %.0f%% |\n' "$mode" "$mib" \
        "$f" "$(echo "$mib / $f" | bc -l)" "$e" "$(echo "$mib / $e" | bc -l)" "$(echo "100 * $f / $e" | bc -l)"
done
