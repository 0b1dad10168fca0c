#!/usr/bin/env bash
# Peak memory of thin_restore, thin_check and thin_dump on a pool of 2^32 data
# blocks with a handful of mappings (4 devices, 938 mappings): memory must
# follow the mapped data, not nr_data_blocks. See bench/README.md, "Sparse
# pool". Usage: bench/sparse_pool.sh [THINKIT_BINARY] [WORK_DIR]
set -euo pipefail
T=${1:-build/tools/thinkit}
W=${2:-/tmp/thinkit-bench/sparse}
mkdir -p "$W"
dev() {  # id mapped body
  printf '  <device dev_id="%s" mapped_blocks="%s" transaction="0" creation_time="0" snap_time="0">\n%s  </device>\n' "$1" "$2" "$3"
}
shared='    <range_mapping origin_begin="0" data_begin="0" length="10" time="0"/>
    <single_mapping origin_block="1000" data_block="4294967295" time="0"/>
    <range_mapping origin_begin="5000000" data_begin="2147483548" length="300" time="0"/>
'
{
  echo '<superblock uuid="" time="0" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="4294967296">'
  dev 1 311 "$shared"; dev 2 311 "$shared"; dev 3 311 "$shared"
  dev 4 5 '    <range_mapping origin_begin="7" data_begin="100000000" length="5" time="0"/>
'
  echo '</superblock>'
} > "$W/pool.xml"
rm -f "$W/meta.bin" && truncate -s 1100M "$W/meta.bin"
run() {  # label command...
  /usr/bin/time -f "$1 %e s, peak RSS %M KiB" "${@:2}" 2>&1 >/dev/null | tail -1
}
run "thin_restore" "$T" thin_restore -q -i "$W/pool.xml" -o "$W/meta.bin"
run "thin_check  " "$T" thin_check -q "$W/meta.bin"
run "thin_dump   " "$T" thin_dump "$W/meta.bin" -o "$W/dump.xml"
cmp "$W/dump.xml" "$W/pool.xml" && echo "dump equals the input"
