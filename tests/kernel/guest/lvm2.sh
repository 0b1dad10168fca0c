# Workflow lvm2 of tests/kernel/run.sh: Debian's lvm2 2.03 in the guest,
# configured (/kh/in/lvm.conf) to call thinkit's thin_check, thin_dump and
# thin_repair.  Each step prints "KH: STEP NAME OK ..." and fails the run
# with "KH: FAIL: ..." otherwise.
cp /kh/in/lvm.conf /etc/lvm/lvm.conf
PV=$DISK_pv
VG=vg

step() { STEP=$1; echo; kh "step $1"; }
ok() { kh "STEP $STEP OK${1:+: $1}"; }
dev() { echo "/dev/mapper/$VG-$1"; }
lvhash() { sha256sum "$(dev "$1")" | cut -d' ' -f1; }
hashes() { for lv in "$@"; do echo "$lv $(lvhash "$lv")"; done; }
same_hashes() { # FILE LV...: the LVs hash as recorded in FILE
    f=$1
    shift
    hashes "$@" >/tmp/h.now
    diff "$f" /tmp/h.now || fail "$STEP: data changed"
}
# lvm_v OUTFILE CMD...: lvm with -vv, output kept; status of the command
lvm_v() {
    out=$1
    shift
    echo "+ $* -vv"
    "$@" -vv >"$out" 2>&1
}
# how many times lvm ran thinkit's thin_check according to its -vv output
checks_run() { grep -c 'Executing: */usr/sbin/thin_check' "$1" || true; }
thin_id() { lvs --noheadings -o thin_id "$VG/$1" | tr -d ' '; }
tpool() { dmsetup ls | awk -v p="$VG-$1-tpool" '$1 == p { print $1 }'; }

# tmeta_offset POOL: the sector on $PV where the pool's metadata LV starts
# (its component LV activated read-only for a moment; one segment expected)
tmeta_offset() {
    run lvchange -ay -y "$VG/${1}_tmeta" >/dev/null
    tbl=$(dmsetup table "$VG-${1}_tmeta")
    [ "$(echo "$tbl" | wc -l)" = 1 ] || fail "$1_tmeta has more than one segment"
    echo "$tbl" | awk '{ print $5 }' >/tmp/tmeta.off
    run lvchange -an "$VG/${1}_tmeta" >/dev/null
    cat /tmp/tmeta.off
}

# superblock flags of an inactive pool, read straight from the PV
sb_flags() {
    o=$(tmeta_offset "$1")
    blockdev --flushbufs "$PV"      # drop what the page cache has of the PV
    dd if="$PV" of=/tmp/sb bs=512 skip="$o" count=8 iflag=direct 2>/dev/null
    u32_at /tmp/sb 4
}

step create
run pvcreate -y "$PV"
run vgcreate "$VG" "$PV"
run lvcreate -y -L 64M --poolmetadatasize 4M -c 64k -T "$VG/pool"
run lvcreate -V 32M -T "$VG/pool" -n t1
run lvcreate -V 32M -T "$VG/pool" -n t2
write_random "$(dev t1)" 0 4096
write_random "$(dev t2)" 8192 2048
run lvcreate -y -s "$VG/t1" -n s1
run lvchange -ay -K "$VG/s1"
write_random "$(dev s1)" 1024 1024
write_random "$(dev t1)" 2048 512
hashes t1 t2 s1 >/tmp/h.pool
cat /tmp/h.pool
lvs -a "$VG"
ok "thin pool with t1, t2 and snapshot s1"

step reactivate
run vgchange -an "$VG"
lvm_v /tmp/act vgchange -ay -K "$VG" || { cat /tmp/act; fail "vgchange -ay"; }
n=$(checks_run /tmp/act)
[ "$n" -ge 1 ] || { cat /tmp/act; fail "lvm did not run thin_check"; }
grep 'Executing: */usr/sbin/thin_check' /tmp/act | head -1
same_hashes /tmp/h.pool t1 t2 s1
ok "lvm ran thin_check $n time(s) on activation; data unchanged"

step repair-healthy
run vgchange -an "$VG"
lvm_v /tmp/rep lvconvert -y --repair "$VG/pool" || { cat /tmp/rep; fail "lvconvert --repair"; }
grep -E 'Executing: */usr/sbin/thin_(repair|dump|check)' /tmp/rep || fail "lvconvert did not run thin_repair"
lvs -a "$VG"
run lvremove -y "$VG/pool_meta0"
run vgchange -ay -K "$VG"
same_hashes /tmp/h.pool t1 t2 s1
ok "lvconvert --repair of a healthy pool; data unchanged"

step leaf-damage
run lvcreate -y -L 64M --poolmetadatasize 4M -c 64k -Zn -T "$VG/pool2"
run lvcreate -V 48M -T "$VG/pool2" -n a
run lvcreate -V 16M -T "$VG/pool2" -n b
write_random "$(dev a)" 0 24576       # 384 blocks of 64 KiB: more than one leaf
write_random "$(dev b)" 0 4096
hashes b >/tmp/h.b
ha=$(lvhash a)
id=$(thin_id a)
run lvchange -an "$VG/a" "$VG/b" "$VG/pool2"
o=$(tmeta_offset pool2)
run lvchange -ay -y "$VG/pool2_tmeta" >/dev/null
tm=$(dev pool2_tmeta)
read_block "$tm" 0 /tmp/sb
sb_csum_ok /tmp/sb || fail "our crc32c does not match the superblock's"
read_block "$tm" "$(u64_at /tmp/sb 320)" /tmp/top
[ "$(u32_at /tmp/top 4)" = 2 ] || fail "top-level mapping tree is not one leaf"
nr=$(u32_at /tmp/top 16) max=$(u32_at /tmp/top 20) i=0 sub=
while [ "$i" -lt "$nr" ]; do
    [ "$(u64_at /tmp/top $((32 + 8 * i)))" = "$id" ] && sub=$(u64_at /tmp/top $((32 + 8 * max + 8 * i)))
    i=$((i + 1))
done
[ -n "$sub" ] || fail "device $id not in the top-level tree"
read_block "$tm" "$sub" /tmp/sub
[ "$(u32_at /tmp/sub 4)" = 1 ] || fail "the mapping tree of a is not two levels deep"
leaf=$(u64_at /tmp/sub $((32 + 8 * $(u32_at /tmp/sub 20))))
read_block "$tm" "$leaf" /tmp/leaf
[ "$(u32_at /tmp/leaf 4)" = 2 ] && [ "$(u64_at /tmp/leaf 8)" = "$leaf" ] || fail "block $leaf is not a leaf"
kh "device a (thin id $id): mapping root $sub, first leaf $leaf with $(u32_at /tmp/leaf 16) mappings"
run lvchange -an "$VG/pool2_tmeta"
dd if=/dev/zero of="$PV" bs=512 seek=$((o + leaf * 8)) count=8 oflag=direct 2>/dev/null || fail "zeroing the leaf"
blockdev --flushbufs "$PV"
if lvm_v /tmp/act2 lvchange -ay "$VG/pool2"; then cat /tmp/act2; fail "a pool with a zeroed leaf was activated"; fi
grep -E 'Check of pool .* failed' /tmp/act2 || { cat /tmp/act2; fail "activation refused for another reason"; }
lvm_v /tmp/rep2 lvconvert -y --repair "$VG/pool2" || { cat /tmp/rep2; fail "lvconvert --repair of the damaged pool"; }
grep -E 'Executing: */usr/sbin/thin_repair' /tmp/rep2 || fail "lvconvert did not run thin_repair"
run lvchange -ay -K "$VG/pool2" "$VG/a" "$VG/b"
same_hashes /tmp/h.b b
[ "$(lvhash a)" != "$ha" ] || fail "a reads the same although a leaf of its mappings was zeroed"
run lvremove -y "$VG/pool2_meta0"
run lvchange -an "$VG/a" "$VG/b" "$VG/pool2"
ok "activation refused with leaf $leaf of a zeroed; lvconvert --repair repaired; b intact, a lost that leaf's mappings"

step extend-metadata
before=$(lvs --noheadings --units k -o lv_metadata_size "$VG/pool" | tr -d ' ')
tp=$(tpool pool)
run lvextend -y --poolmetadatasize +4M "$VG/pool"
after=$(lvs --noheadings --units k -o lv_metadata_size "$VG/pool" | tr -d ' ')
kh "metadata size $before -> $after; status $(dmsetup status "$tp")"
[ "$before" != "$after" ] || fail "metadata did not grow"
run vgchange -an "$VG"
lvm_v /tmp/act3 vgchange -ay -K "$VG" || { cat /tmp/act3; fail "activation after lvextend"; }
[ "$(checks_run /tmp/act3)" -ge 1 ] || fail "no thin_check after lvextend"
same_hashes /tmp/h.pool t1 t2 s1
ok "lvextend --poolmetadatasize $before -> $after; thin_check passes; data unchanged"

step needs-check
run lvchange -an "$VG/a" "$VG/b" "$VG/pool2"
# pool2 has one metadata segment: set NEEDS_CHECK (flags bit 0, superblock
# offset 4) with a recomputed checksum, straight on the PV
o=$(tmeta_offset pool2)
blockdev --flushbufs "$PV"
dd if="$PV" of=/tmp/sb bs=512 skip="$o" count=8 iflag=direct 2>/dev/null
sb_csum_ok /tmp/sb || fail "our crc32c does not match the superblock's"
sb_set_flags /tmp/sb 1
dd if=/tmp/sb of="$PV" bs=512 seek="$o" count=8 oflag=direct 2>/dev/null || fail "writing the superblock"
blockdev --flushbufs "$PV"
[ "$(sb_flags pool2)" = 1 ] || fail "NEEDS_CHECK not set"
run lvchange -ay "$VG/pool2_tmeta" -y >/dev/null
thin_check "$(dev pool2_tmeta)" || true
run lvchange -an "$VG/pool2_tmeta" >/dev/null
# control: with thin_check options that do not clear the flag the kernel
# takes the pool read-only and reports needs_check
lvm_v /tmp/act4n lvchange -ay "$VG/pool2" --config 'global { thin_check_options = [ "-q" ] }' || true
st=$(dmsetup status "$(tpool pool2)" 2>&1 || true)
kh "control, flag left set: pool2 status: $st"
case "$st" in *needs_check*) ;; *) cat /tmp/act4n; fail "control: the kernel did not report needs_check" ;; esac
# (the same options for the deactivation, should lvm2 check the pool then)
lvm_v /tmp/deact4n lvchange -an "$VG/pool2" --config 'global { thin_check_options = [ "-q" ] }' ||
    { cat /tmp/deact4n; fail "deactivating pool2"; }
grep 'Executing: */usr/sbin/thin_check' /tmp/deact4n || true
f=$(sb_flags pool2)
[ "$f" = 1 ] || fail "control: NEEDS_CHECK cleared without --clear-needs-check-flag (flags '$f')"
lvm_v /tmp/act4 lvchange -ay -K "$VG/pool2" "$VG/b" \
    --config 'global { thin_check_options = [ "-q", "--clear-needs-check-flag" ] }' ||
    { cat /tmp/act4; fail "activation with NEEDS_CHECK set"; }
grep 'Executing: */usr/sbin/thin_check' /tmp/act4 | head -1
st=$(dmsetup status "$(tpool pool2)")
kh "pool2 status: $st"
case "$st" in *needs_check*) fail "the kernel still sees needs_check" ;; esac
same_hashes /tmp/h.b b
run lvchange -an "$VG/b" "$VG/pool2"
f=$(sb_flags pool2)
[ "$f" = 0 ] || fail "NEEDS_CHECK still set after activation (flags '$f')"
ok "with NEEDS_CHECK set the kernel reports needs_check (options -q); thin_check --clear-needs-check-flag cleared it during activation, pool rw"

step metasnap-dump
tp=$(tpool pool)
[ -n "$tp" ] || fail "pool is not active"
run dmsetup message "$tp" 0 reserve_metadata_snap
blockdev --flushbufs "$(dev pool_tmeta)"
thin_dump -m "$(dev pool_tmeta)" >/tmp/ms.xml || fail "thin_dump -m of the live pool"
run dmsetup message "$tp" 0 release_metadata_snap
n=$(grep -c '<device' /tmp/ms.xml)
[ "$n" = 3 ] || { cat /tmp/ms.xml | head; fail "thin_dump -m shows $n devices, expected 3"; }
ok "thin_dump -m of the live pool's metadata snapshot: $n devices, $(grep -c '_mapping' /tmp/ms.xml) mapping lines"

step skip-mappings
run vgchange -an "$VG"
lvm_v /tmp/act5 vgchange -ay -K "$VG" \
    --config 'global { thin_check_options = [ "-q", "--clear-needs-check-flag", "--skip-mappings" ] }' ||
    { cat /tmp/act5; fail "activation with --skip-mappings"; }
grep -q 'Executing: */usr/sbin/thin_check.*--skip-mappings' /tmp/act5 || { cat /tmp/act5; fail "no thin_check --skip-mappings"; }
grep 'Executing: */usr/sbin/thin_check' /tmp/act5 | head -1
same_hashes /tmp/h.pool t1 t2 s1
same_hashes /tmp/h.b b
run vgchange -an "$VG"
ok "activation with the 1.x options [-q --clear-needs-check-flag --skip-mappings]"
