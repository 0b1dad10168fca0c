#!/usr/bin/env bash
# thin_ls against thinkit's own thin_check (the issue's target: at most 1.5x
# its time) and against thin_ls 0.9.0 and 1.3.3, on two pools:
#   snap1000  one origin and 1,000 snapshots of it (thinkit_gen_xml
#             --devices 1 --snapshots 1000): shared subtrees must be read once
#   SCALE     the bench's scales (bench/README.md): thinkit_gen_xml --seed 1
#             --devices 4 --snapshots 6 --mappings N (M: 400,000; L: 4,000,000;
#             XL: 16,000,992), restored by thinkit
# Warm page cache, medians of --runs alternating runs; every implementation's
# output must equal 0.9.0's (exit 1 otherwise). Prints markdown rows for
# bench/RESULTS.md.
#
#   bench/ls.sh [--build DIR] [--work DIR] [--scale M|L|XL] [--runs N] [--oracle-runs N] [--upstream DIR]
# --oracle-runs: at most N timed runs of 0.9.0 (it takes minutes at XL; default --runs).
# --upstream: a directory with 1.3.3's thin_ls (../shared/peers/tpt-1.3.3/install.sh DIR).
set -euo pipefail

build=build work=/tmp/thinkit-bench-ls scale=M runs=3 oracle_runs="" upstream=""
while (($#)); do
    case $1 in
        --build) build=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --scale) scale=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --oracle-runs) oracle_runs=$2; shift 2 ;;
        --upstream) upstream=$2; shift 2 ;;
        *) echo "usage: $0 [--build DIR] [--work DIR] [--scale M|L|XL] [--runs N] [--oracle-runs N] [--upstream DIR]" >&2; exit 1 ;;
    esac
done
bin=$build/tools/thinkit
gen=$build/tests/gen/thinkit_gen_xml
[[ -x $bin && -x $gen ]] || { echo "$bin or $gen: not built" >&2; exit 1; }
case $scale in
    M) n=400000 ;; L) n=4000000 ;; XL) n=16000992 ;;
    *) echo "--scale: M, L or XL" >&2; exit 1 ;;
esac
mkdir -p "$work"
fields=DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,TRANSACTION,CREATE_TIME,SNAP_TIME

make_pool() { # name, generator args...
    local name=$1; shift
    local xml=$work/$name.xml meta=$work/$name.meta
    if [[ ! -f $meta ]]; then
        "$gen" "$@" -o "$xml"
        truncate -s 16G "$meta"
        "$bin" thin_restore -q -i "$xml" -o "$meta"
        rm -f "$xml"
    fi
    echo "$meta"
}
seconds() { # command...: wall seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR + 1) / 2)]}'; }

status=0
echo "| pool | thinkit thin_ls | thinkit thin_check | ratio | 0.9.0 thin_ls | 1.3.3 thin_ls | outputs |"
echo "|---|---|---|---|---|---|---|"
for pool in snap1000 "$scale"; do
    if [[ $pool == snap1000 ]]; then
        meta=$(make_pool snap1000 --seed 1 --devices 1 --snapshots 1000 --mappings 20000)
    else
        meta=$(make_pool "$scale" --seed 1 --devices 4 --snapshots 6 --mappings "$n")
    fi
    cat "$meta" >/dev/null
    ours=() check=() old=() new=()
    for ((r = 0; r < runs; r++)); do
        ours+=("$(seconds "$bin" thin_ls -o "$fields" "$meta")")
        check+=("$(seconds "$bin" thin_check -q "$meta")")
        [[ -x /usr/sbin/thin_ls ]] && ((r < ${oracle_runs:-$runs})) && old+=("$(seconds /usr/sbin/thin_ls -o "$fields" "$meta")")
        [[ -n $upstream ]] && new+=("$(seconds "$upstream/thin_ls" -o "$fields" "$meta")")
    done
    same="not compared (0.9.0 absent)"
    if [[ -x /usr/sbin/thin_ls ]]; then
        same="equal to 0.9.0"
        cmp -s <("$bin" thin_ls -o "$fields" "$meta") <(/usr/sbin/thin_ls -o "$fields" "$meta") ||
            { same="DIFFERS from 0.9.0"; status=1; }
    fi
    o=$(printf '%s\n' "${ours[@]}" | median) c=$(printf '%s\n' "${check[@]}" | median)
    ratio=$(echo "$o / $c" | bc -l | xargs printf '%.2f')
    ov="-" nv="-"
    ((${#old[@]})) && ov="$(printf '%s\n' "${old[@]}" | median) s"
    ((${#new[@]})) && nv="$(printf '%s\n' "${new[@]}" | median) s"
    echo "| $pool | $o s | $c s | $ratio | $ov | $nv | $same |"
done
exit $status
