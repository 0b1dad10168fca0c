# Helpers for the guest side of tests/kernel/run.sh (busybox ash, sourced
# under `set -e` by /init before the workflow script).
# Thin device ID is /dev/mapper/thinID; /tmp/thins holds "ID SECTORS" of the
# live ones.  Offsets and lengths given to the helpers are in KiB.

POOL=pool
THINS=/tmp/thins
: >"$THINS"

kh() { echo "KH: $*"; }
fail() { echo "KH: FAIL: $*"; exit 1; }
run() { echo "+ $*"; "$@" || fail "$*"; }

# pool_create META DATA BLOCK_SECTORS [FEATURE...]: a fresh pool (the kernel
# formats a zeroed metadata device)
pool_create() {
    meta=$1 data=$2 bs=$3
    shift 3
    len=$(($(blockdev --getsz "$data") / bs * bs))
    run dmsetup create "$POOL" --table "0 $len thin-pool $meta $data $bs 0 $# $*"
}

# pool_open META DATA BLOCK_SECTORS NR_DATA_BLOCKS: existing metadata
pool_open() {
    run dmsetup create "$POOL" --table "0 $(($3 * $4)) thin-pool $1 $2 $3 0 0"
    kh "pool status: $(dmsetup status "$POOL")"
}

pool_msg() { run dmsetup message "$POOL" 0 "$@"; }
pool_trans() { dmsetup status "$POOL" | awk '{ print $4 }'; }

thin_activate() { # ID SECTORS
    run dmsetup create "thin$1" --table "0 $2 thin /dev/mapper/$POOL $1"
    echo "$1 $2" >>"$THINS"
}
thin_new() { pool_msg "create_thin $1"; thin_activate "$1" "$2"; }
thin_sectors() { awk -v id="$1" '$1 == id { print $2 }' "$THINS"; }

# snap NEW ORIGIN: a snapshot of an active origin (suspended around it)
snap() {
    run dmsetup suspend "thin$2"
    pool_msg "create_snap $1 $2"
    run dmsetup resume "thin$2"
    thin_activate "$1" "$(thin_sectors "$2")"
}

thin_delete() {
    run dmsetup remove "thin$1"
    pool_msg "delete $1"
    awk -v id="$1" '$1 != id' "$THINS" >"$THINS.new" && mv "$THINS.new" "$THINS"
}

# 512-byte self-describing records "kh TAG dev=ID sector=S"
pattern() { # TAG DEV FIRST_SECTOR COUNT
    awk -v t="$1" -v d="$2" -v s="$3" -v n="$4" 'BEGIN {
        for (i = 0; i < n; i++) printf "%-511s\n", sprintf("kh %s dev=%s sector=%d", t, d, s + i) }'
}

# write_pat DEV_PATH OFF_KIB LEN_KIB TAG ID  (4 KiB aligned, O_DIRECT)
write_pat() {
    echo "+ write $1 ${2}K+${3}K $4"
    pattern "$4" "$5" $(($2 * 2)) $(($3 * 2)) |
        dd of="$1" bs=4k seek=$(($2 / 4)) count=$(($3 / 4)) iflag=fullblock oflag=direct 2>/tmp/dd.err ||
        { cat /tmp/dd.err; fail "write $1"; }
}
write_thin() { write_pat "/dev/mapper/thin$1" "$2" "$3" "$4" "$1"; }

write_random() { # DEV_PATH OFF_KIB LEN_KIB
    echo "+ write $1 ${2}K+${3}K random"
    b=4
    [ $(($2 % 64)) -eq 0 ] && [ $(($3 % 64)) -eq 0 ] && b=64
    dd if=/dev/urandom of="$1" bs=${b}k seek=$(($2 / b)) count=$(($3 / b)) iflag=fullblock oflag=direct 2>/tmp/dd.err ||
        { cat /tmp/dd.err; fail "random write $1"; }
}

discard() { run blkdiscard -o $(($2 * 1024)) -l $(($3 * 1024)) "/dev/mapper/thin$1"; }

# hash_all LABEL: one line per live thin device, in the fixtures' manifest format
hash_all() {
    sort -n "$THINS" | while read -r id n; do
        h=$(sha256sum "/dev/mapper/thin$id" | cut -d' ' -f1)
        echo "KH-HASH label=$1 dev_id=$id sectors=$n sha256=$h"
    done
}

teardown() {
    for id in $(awk '{ print $1 }' "$THINS"); do run dmsetup remove "thin$id"; done
    : >"$THINS"
    run dmsetup remove "$POOL"       # removing the pool commits its metadata
}

# ---- reading and editing metadata blocks (little-endian, 4 KiB blocks) ----

u32_at() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
u64_at() { od -An -tu8 -j "$2" -N8 "$1" | tr -d ' '; }

# read_block DEV BLOCK FILE: one metadata block, past the page cache
read_block() {
    dd if="$1" of="$3" bs=4096 skip="$2" count=1 iflag=direct 2>/dev/null || fail "read block $2 of $1"
}

# block_csum FILE SALT: the checksum dm-persistent-data stores in bytes
# [0, 4) of a block: crc32c seeded with ~0, no final inversion, over bytes
# [4, 4096), xor SALT.  busybox awk's bit functions stop at 31 bits, so the
# CRC is kept as two 16-bit halves.
block_csum() {
    od -An -v -tu1 -j4 -N4092 "$1" | awk -v salt="$2" '
    BEGIN {
        for (i = 0; i < 256; i++) {
            hi = 0; lo = i
            for (k = 0; k < 8; k++) {
                bit = and(lo, 1)
                lo = or(rshift(lo, 1), lshift(and(hi, 1), 15)); hi = rshift(hi, 1)
                if (bit) { hi = xor(hi, 33526); lo = xor(lo, 15224) }     # 0x82f63b78
            }
            th[i] = hi; tl[i] = lo
        }
        hi = 65535; lo = 65535
    }
    {
        for (i = 1; i <= NF; i++) {
            x = and(xor(lo, $i), 255)
            lo = or(rshift(lo, 8), lshift(and(hi, 255), 8)); hi = rshift(hi, 8)
            hi = xor(hi, th[x]); lo = xor(lo, tl[x])
        }
    }
    END {
        hi = xor(hi, int(salt / 65536)); lo = xor(lo, salt % 65536)
        printf "%.0f\n", hi * 65536 + lo
    }'
}

le32_bytes() { # VALUE -> printf escapes of 4 little-endian bytes
    awk -v v="$1" 'BEGIN { for (i = 0; i < 4; i++) { printf "\\%03o", v % 256; v = int(v / 256) } }'
}

# sb_set_flags BLOCKFILE FLAGS: new flags word and a recomputed checksum
# (salt 160774) in a copy of superblock block 0
sb_set_flags() {
    # shellcheck disable=SC2059
    printf "$(le32_bytes "$2")" | dd of="$1" bs=1 seek=4 conv=notrunc 2>/dev/null
    c=$(block_csum "$1" 160774)
    # shellcheck disable=SC2059
    printf "$(le32_bytes "$c")" | dd of="$1" bs=1 seek=0 conv=notrunc 2>/dev/null
}

sb_csum_ok() { # BLOCKFILE: does the stored checksum match ours?
    [ "$(block_csum "$1" 160774)" = "$(u32_at "$1" 0)" ]
}
