#!/usr/bin/env bash
# tests/kernel/run.sh - thinkit against the real Linux dm-thin target, real
# lvm2 and a real initramfs, in QEMU.  Boots Debian's linux-image-amd64 on a
# busybox initramfs that carries thinkit and runs the named workflows
# (default: all); prints PASS/FAIL per workflow, exits 1 if any failed, and
# after a run of all workflows rewrites tests/kernel/RESULTS.md.  See
# "Verified against the real kernel" in README.md.
#
# Usage: tests/kernel/run.sh [--install-deps] [--thinkit PATH] [--accel auto|kvm|tcg]
#                            [--keep] [--no-results] [workflow...]
# Workflows: kernel-roundtrip kernel-fixtures lvm2 initramfs
#   --install-deps  apt-get install the host packages first (needs root)
#   --thinkit PATH  thinkit for the guest (default build-static/, else build/)
#   --accel         default auto: KVM if /dev/kvm is usable and the CPU shows
#                   vmx/svm, else TCG; a KVM boot that fails is redone in TCG
#   --keep          keep the work folder (logs, images); kept on failure anyway
#   --no-results    leave RESULTS.md alone
# Environment: KH_FIXTURES="basic btree" limits kernel-fixtures; KERNEL_PKG
# pins the kernel package; THINKIT_KERNEL_CACHE moves the download cache.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
CACHE=${THINKIT_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thinkit-kernel}
ALL_WORKFLOWS="kernel-roundtrip kernel-fixtures lvm2 initramfs"
DEB_PKGS="qemu-system-x86 busybox-static cpio zstd kmod lvm2 dmsetup initramfs-tools-core"

WFLOG=''   # while a workflow runs, its messages also go here (for RESULTS.md)
msg() {
    echo "run.sh: $*" >&2
    [ -z "$WFLOG" ] || echo "$*" >>"$WFLOG"
}
die() { msg "error: $*"; exit 1; }

INSTALL=0 THINKIT='' ACCEL=auto KEEP=0 RESULTS=1 WORKFLOWS=() TIMEOUT=${KH_TIMEOUT:-900}
while [ $# -gt 0 ]; do
    case "$1" in
    --install-deps) INSTALL=1; shift ;;
    --thinkit) THINKIT=$2; shift 2 ;;
    --accel) ACCEL=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-results) RESULTS=0; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
        case " $ALL_WORKFLOWS " in *" $1 "*) ;; *) die "unknown workflow $1 (have: $ALL_WORKFLOWS)" ;; esac
        WORKFLOWS+=("$1"); shift ;;
    esac
done
if [ ${#WORKFLOWS[@]} = 0 ]; then
    read -r -a WORKFLOWS <<<"$ALL_WORKFLOWS"
elif [ "$RESULTS" = 1 ]; then
    RESULTS=0
    msg "not all workflows: RESULTS.md is left alone"
fi

if [ "$INSTALL" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "--install-deps needs root (apt-get install)"
    msg "installing: $DEB_PKGS"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $DEB_PKGS >/dev/null
fi
for d in /sbin /usr/sbin; do case ":$PATH:" in *":$d:"*) ;; *) PATH=$PATH:$d ;; esac; done
need() { command -v "$1" >/dev/null || die "missing $1 (Debian package $2; try --install-deps as root)"; }
need qemu-system-x86_64 qemu-system-x86
need zstd zstd
need cpio cpio
need depmod kmod
need dmsetup dmsetup
need dpkg-deb dpkg
need apt-get apt

# ---- thinkit: --thinkit, else the static build, else build/ --------------
static_build=$TOP/build-static
is_static() { ! ldd "$1" >/dev/null 2>&1; }
if [ -z "$THINKIT" ]; then
    for c in "$static_build/tools/thinkit" "$TOP/build/tools/thinkit"; do
        [ -x "$c" ] && { THINKIT=$c; break; }
    done
fi
[ -n "$THINKIT" ] && [ -x "$THINKIT" ] ||
    die "no thinkit binary: build it (scripts/build.sh build-static -DTHINKIT_STATIC=ON) or give --thinkit PATH"
THINKIT=$(cd "$(dirname "$THINKIT")" && pwd)/$(basename "$THINKIT")
TOOLS="thin_check thin_dump thin_repair thin_restore thin_ls thin_rmap thin_delta thin_metadata_size"
tk() { "$THINKIT" "$@"; }   # thinkit's tools on the host: "tk thin_check FILE"
tk thin_check -V >/dev/null 2>&1 || die "$THINKIT does not run as thin_check"

mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/thinkit-kernel.XXXXXX")
cleanup() { if [ "$KEEP" = 1 ]; then msg "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# ---- kernel and busybox from Debian packages, unpacked into $CACHE ---------
resolve_kernel() {
    local pkg=${KERNEL_PKG:-}
    [ -n "$pkg" ] || pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (apt-get update first)"
    KVER=${pkg#linux-image-}
    KROOT=$CACHE/kernel-$KVER
    if [ ! -f "$KROOT/.done" ]; then
        msg "downloading $pkg into $CACHE"
        mkdir -p "$CACHE/debs"
        rm -rf "$KROOT"
        (cd "$CACHE/debs" && apt-get download -o APT::Sandbox::User="$(id -un)" "$pkg" >/dev/null) ||
            die "apt-get download $pkg failed"
        dpkg-deb -x "$CACHE/debs/${pkg}"_*.deb "$KROOT"
        rm -f "$CACHE/debs/${pkg}"_*.deb
        depmod -b "$KROOT" "$KVER"
        touch "$KROOT/.done"
    fi
    VMLINUZ=$KROOT/boot/vmlinuz-$KVER
    KMODS=$KROOT/lib/modules/$KVER
    [ -f "$VMLINUZ" ] && [ -d "$KMODS" ] || die "no kernel in $KROOT"
}

resolve_busybox() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        if [ -x "$b" ] && is_static "$b"; then BUSYBOX=$b; return; fi
    done
    BUSYBOX=$CACHE/busybox-static/bin/busybox
    if [ ! -x "$BUSYBOX" ]; then
        msg "downloading busybox-static"
        mkdir -p "$CACHE/debs"
        (cd "$CACHE/debs" && apt-get download -o APT::Sandbox::User="$(id -un)" busybox-static >/dev/null) ||
            die "apt-get download busybox-static failed"
        dpkg-deb -x "$CACHE"/debs/busybox-static_*.deb "$CACHE/busybox-static"
        rm -f "$CACHE"/debs/busybox-static_*.deb
    fi
}

# ---- initramfs ------------------------------------------------------------
MODULES="virtio_pci virtio_blk crc32c_generic libcrc32c dm-mod dm-bufio dm-bio-prison
dm-persistent-data dm-thin-pool dm-snapshot"

copy_with_libs() { # SRC ROOT [DEST]
    local src=$1 root=$2 dest=${3:-$1} lib
    mkdir -p "$root$(dirname "$dest")"
    cp -L "$src" "$root$dest"
    for lib in $(ldd "$src" 2>/dev/null | awk '/=>/ { print $3 } /^\t\// { print $1 }'); do
        [ -f "$lib" ] || continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

mkcpio() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet); }

# module_order MODROOT: insmod paths (inside the guest) in load order
module_order() {
    local root=$1 m
    for m in $MODULES; do
        modprobe -d "$root" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
    done | awk -v r="$root" '!seen[$0]++ { sub("^" r, ""); print }'
}

# base initramfs: busybox, modules, dmsetup, lvm2 (when installed), thinkit
build_base() {
    local st=$WORK/base m t
    mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,etc/kh,etc/lvm,kh}
    cp "$BUSYBOX" "$st/bin/busybox"
    while read -r m; do
        mkdir -p "$st$(dirname "$m")"
        cp "$KROOT$m" "$st$m"
    done < <(module_order "$KROOT")
    module_order "$KROOT" >"$st/etc/kh/modules.load"
    grep -q dm-thin-pool "$st/etc/kh/modules.load" || die "dm-thin-pool not found in $KVER"
    copy_with_libs "$(command -v dmsetup)" "$st" /usr/sbin/dmsetup
    if command -v lvm >/dev/null; then
        copy_with_libs "$(command -v lvm)" "$st" /usr/sbin/lvm
        for t in pvcreate vgcreate vgchange vgs pvs lvs lvcreate lvchange lvconvert lvextend lvremove lvdisplay; do
            ln -s lvm "$st/usr/sbin/$t"
        done
    fi
    copy_with_libs "$THINKIT" "$st" /usr/sbin/thinkit
    strip "$st/usr/sbin/thinkit" 2>/dev/null || true     # a smaller initramfs, nothing else
    for t in $TOOLS; do ln -s thinkit "$st/usr/sbin/$t"; done
    BASE_CPIO=$WORK/base.cpio.gz
    mkcpio "$st" | gzip -1 >"$BASE_CPIO"
}

pick_accel() {
    case "$ACCEL" in
    kvm | tcg) echo "$ACCEL" ;;
    auto)
        if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then echo kvm; else echo tcg; fi ;;
    *) die "--accel must be auto, kvm or tcg" ;;
    esac
}

# boot NAME SCRIPT INDIR APPEND DISK...: DISK is SERIAL=FILE.  The initramfs
# is BASE (or $BOOT_BASE) + /init + lib.sh + SCRIPT as /kh/test.sh + INDIR as
# /kh/in.  Console in $WORK/NAME.log; status 0 when the guest printed
# "KH: RESULT OK".
boot() {
    local name=$1 script=$2 indir=$3 append=$4 d serials='' st accel cpu rc=0 pid i
    shift 4
    local log=$WORK/$name.log drives=()
    st=$WORK/$name.overlay
    rm -rf "$st"
    mkdir -p "$st/kh/in"
    if [ -n "$script" ]; then
        cp "$HERE/guest/init" "$st/init"
        cp "$HERE/guest/lib.sh" "$st/kh/lib.sh"
        cp "$script" "$st/kh/test.sh"
    fi
    [ -z "$indir" ] || cp -r "$indir"/. "$st/kh/in/"
    { cat "${BOOT_BASE:-$BASE_CPIO}"; mkcpio "$st" | gzip -1; } >"$WORK/$name.initrd"
    for d in "$@"; do
        drives+=(-drive "file=${d#*=},format=raw,if=none,id=${d%%=*},cache=writethrough,discard=unmap"
            -device "virtio-blk-pci,drive=${d%%=*},serial=${d%%=*}")
        serials=$serials${serials:+,}${d%%=*}
    done
    accel=$(pick_accel)
    while :; do
        if [ "$accel" = kvm ]; then cpu=host; else cpu=max; fi
        timeout "$TIMEOUT" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -M q35 -m 768 -smp 1 \
            -nographic -no-reboot -nodefaults -serial stdio -kernel "$VMLINUZ" -initrd "$WORK/$name.initrd" \
            -append "console=ttyS0 panic=-1 quiet loglevel=4 kh.disks=$serials $append" \
            "${drives[@]}" </dev/null >"$log.raw" 2>&1 &
        pid=$!
        # a KVM boot that never reaches /init (broken nested virtualisation:
        # QEMU aborts, or the guest hangs) is given up after 60 s; with
        # --accel auto the boot is retried with TCG, and so are later ones
        for ((i = 0; i < 240; i++)); do
            grep -q '^KH: init' "$log.raw" 2>/dev/null && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if [ "$accel" = kvm ] && ! grep -q '^KH: init' "$log.raw"; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" || true
            if [ "$ACCEL" = auto ]; then
                msg "[$name] KVM did not reach /init ($(tail -1 "$log.raw")): retrying with TCG"
                accel=tcg ACCEL=tcg
                continue
            fi
            rc=200
            break
        fi
        wait "$pid" || rc=$?
        break
    done
    USED_ACCEL=$accel
    tr -d '\r' <"$log.raw" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' >"$log"
    rm -f "$log.raw" "$WORK/$name.initrd"
    rm -rf "$st"
    grep -q '^KH: RESULT OK' "$log" && return 0
    msg "[$name] guest failed (qemu status $rc); last lines of $log:"
    tail -25 "$log" >&2
    return 1
}

# manifest FILE LABEL: "dev_id sectors sha256" lines of one label, sorted
manifest() {
    sed -n 's/^\(KH-HASH \)\{0,1\}label=\([^ ]*\) dev_id=\([0-9]*\) sectors=\([0-9]*\) sha256=\([0-9a-f]*\).*/\2 \3 \4 \5/p' "$1" |
        awk -v l="$2" '$1 == l { print $2, $3, $4 }' | sort -n
}
same_manifest() { # FILE1 LABEL1 FILE2 LABEL2 WHAT
    local a b
    a=$(manifest "$1" "$2") b=$(manifest "$3" "$4")
    if [ -z "$a" ] || [ "$a" != "$b" ]; then
        msg "$5: the hashes differ"
        diff <(echo "$a") <(echo "$b") >&2 || true
        return 1
    fi
    msg "$5: $(echo "$a" | wc -l) device(s), same sha256"
}
sb_attr() { sed -n "s/.*<superblock [^>]*\b$2=\"\([0-9]*\)\".*/\1/p" "$1" | head -1; }

# restore_fresh XML META SIZE: a fresh metadata file written by thinkit
restore_fresh() {
    rm -f "$2"
    truncate -s "$3" "$2"
    tk thin_restore -q -i "$1" -o "$2" || { msg "thin_restore -i $1 failed"; return 1; }
}

# open_boot NAME META DATA SIZES MUTATE: boot open.sh on existing metadata
open_boot() {
    local xml=$WORK/$1.input.xml in=$WORK/$1.in
    tk thin_dump "$2" >"$xml" || { msg "thin_dump $2 failed"; return 1; }
    mkdir -p "$in"
    cp "$4" "$in/sizes"
    boot "$1" "$HERE/guest/open.sh" "$in" \
        "kh.bs=$(sb_attr "$xml" data_block_size) kh.nr=$(sb_attr "$xml" nr_data_blocks) kh.mutate=$5" \
        "meta=$2" "data=$3"
}
sizes_of() { manifest "$1" "$2" | awk '{ print $1, $2 }'; }
host_check() { # META WHAT
    if tk thin_check "$1" >"$WORK/check.out" 2>&1; then msg "$2: thinkit thin_check OK"; return 0; fi
    msg "$2: thinkit thin_check FAILED:"; cat "$WORK/check.out" >&2; return 1
}

# ---- workflows --------------------------------------------------------------

# (a) the kernel writes a pool, thinkit dumps and restores it, the kernel
# reads the restored metadata, changes it, thinkit checks and restores the
# result, the kernel reads that
wf_kernel_roundtrip() {
    local w=$WORK/rt
    mkdir -p "$w"
    truncate -s 8M "$w/meta.img"
    truncate -s 256M "$w/data.img"
    boot rt-1-kernel-writes "$HERE/guest/gen.sh" "" "" "meta=$w/meta.img" "data=$w/data.img" || return 1
    host_check "$w/meta.img" "metadata the kernel wrote" || return 1
    tk thin_dump "$w/meta.img" >"$w/1.xml"
    restore_fresh "$w/1.xml" "$w/meta2.img" 8M || return 1
    host_check "$w/meta2.img" "thinkit's restore" || return 1
    sizes_of "$WORK/rt-1-kernel-writes.log" final >"$w/sizes1"
    open_boot rt-2-kernel-reads-restored "$w/meta2.img" "$w/data.img" "$w/sizes1" 1 || return 1
    same_manifest "$WORK/rt-1-kernel-writes.log" final "$WORK/rt-2-kernel-reads-restored.log" before \
        "kernel read of thinkit-restored metadata" || return 1
    host_check "$w/meta2.img" "metadata after the kernel's changes" || return 1
    tk thin_dump "$w/meta2.img" >"$w/2.xml"
    restore_fresh "$w/2.xml" "$w/meta3.img" 8M || return 1
    sizes_of "$WORK/rt-2-kernel-reads-restored.log" after >"$w/sizes2"
    open_boot rt-3-kernel-reads-again "$w/meta3.img" "$w/data.img" "$w/sizes2" 0 || return 1
    same_manifest "$WORK/rt-2-kernel-reads-restored.log" after "$WORK/rt-3-kernel-reads-again.log" before \
        "kernel read of the changed pool, dumped and restored again" || return 1
}

# (a') the same with the kernel-written fixtures in tests/fixtures/kernel
wf_kernel_fixtures() {
    local fx=$TOP/tests/fixtures/kernel d s size bad=0 w
    for d in "$fx"/*/; do
        s=$(basename "$d")
        case " ${KH_FIXTURES:-$s} " in *" $s "*) ;; *) continue ;; esac
        [ -f "$d/thin_dump.xml" ] && [ -f "$d/data.img.zst" ] && [ -f "$d/manifest.txt" ] || continue
        w=$WORK/fx-$s
        mkdir -p "$w"
        size=$(sed -n 's/^#[[:space:]]*meta-size:[[:space:]]*\([0-9]*[KMG]\).*/\1/p' "$d/scenario.sh" 2>/dev/null | head -1)
        if restore_fresh "$d/thin_dump.xml" "$w/meta.img" "${size:-8M}" &&
            zstd -q -d -f "$d/data.img.zst" -o "$w/data.img" &&
            sizes_of "$d/manifest.txt" final >"$w/sizes" &&
            open_boot "fx-$s" "$w/meta.img" "$w/data.img" "$w/sizes" 1 &&
            same_manifest "$d/manifest.txt" final "$WORK/fx-$s.log" before "fixture $s: kernel read" &&
            host_check "$w/meta.img" "fixture $s: after the kernel's changes"; then
            FX_DONE="${FX_DONE:-}${FX_DONE:+, }$s"
        else
            msg "fixture $s FAILED"
            bad=1
        fi
        rm -f "$w/data.img"
    done
    [ -n "${FX_DONE:-}" ] || { msg "no fixtures found in $fx"; return 1; }
    return $bad
}

# (b) lvm2 2.03 in the guest, calling thinkit through lvm.conf
wf_lvm2() {
    command -v lvm >/dev/null || { msg "lvm2 is not installed on the host (--install-deps)"; return 1; }
    local w=$WORK/lvm
    mkdir -p "$w/in"
    cp "$HERE/guest/lvm.conf" "$w/in/lvm.conf"
    truncate -s 1G "$w/pv.img"
    boot lvm2 "$HERE/guest/lvm2.sh" "$w/in" "" "pv=$w/pv.img" || return 1
    local line
    while read -r line; do msg "${line#KH: }"; done < <(grep '^KH: STEP' "$WORK/lvm2.log")
}

# (c) issue 15: an initramfs made by the project's initramfs-tools hook runs
# thin_check and thin_repair as a recovery script would
wf_initramfs() {
    local hook=$static_build/packaging/initramfs-tools/thinkit w=$WORK/ird st sbindir
    grep -q '^THINKIT_STATIC:BOOL=ON' "$static_build/CMakeCache.txt" 2>/dev/null ||
        { msg "needs a static build in build-static (scripts/build.sh build-static -DTHINKIT_STATIC=ON)"; return 1; }
    [ -f "$hook" ] && [ -x "$static_build/tools/thinkit" ] || { msg "build build-static first"; return 1; }
    [ -f /usr/share/initramfs-tools/hook-functions ] ||
        { msg "initramfs-tools-core is not installed (--install-deps)"; return 1; }
    need unshare util-linux
    mkdir -p "$w/sbin"
    st=$w/root
    mkdir -p "$st"/usr/{bin,sbin,lib} "$st/etc/kh" "$st/kh"
    ln -s usr/bin "$st/bin"; ln -s usr/sbin "$st/sbin"; ln -s usr/lib "$st/lib"
    # The hook looks for thinkit in the configured sbin directory and takes
    # modules from /lib/modules/$version: in a private mount namespace the
    # static thinkit is laid over that directory and the cached kernel's
    # modules over /usr/lib (overlays: what is there stays visible), so the
    # hook runs unchanged and nothing on the host changes.
    sbindir=$(sed -n 's/^\(for candidate in "\)\([^"]*\)\/thinkit".*/\2/p' "$hook")
    [ -n "$sbindir" ] && [ -d "$sbindir" ] || { msg "cannot read the sbin directory from $hook"; return 1; }
    cp "$static_build/tools/thinkit" "$w/sbin/thinkit"
    local ns=(unshare -m)
    [ "$(id -u)" = 0 ] || ns=(unshare -r -m)
    "${ns[@]}" sh -euc '
        mount -t overlay overlay -o "lowerdir=$1:$2" "$2"
        mount -t overlay overlay -o "lowerdir=$3:/usr/lib" /usr/lib
        export DESTDIR="$4" version="$5" verbose=n CONFDIR=/etc/initramfs-tools MODULESDIR="/lib/modules/$5"
        sh "$6"
        . /usr/share/initramfs-tools/hook-functions
        manual_add_modules virtio_pci virtio_blk
    ' hook "$w/sbin" "$sbindir" "$KROOT/lib" "$st" "$KVER" "$hook" >"$w/hook.log" 2>&1 ||
        { msg "running the hook failed:"; cat "$w/hook.log" >&2; return 1; }
    [ -x "$st/usr/sbin/thinkit" ] && [ -L "$st/usr/sbin/thin_check" ] && [ -L "$st/usr/sbin/thin_repair" ] ||
        { msg "the hook did not install thinkit and its links"; return 1; }
    find "$st" -name 'dm-thin-pool.ko*' | grep -q . || { msg "the hook did not add dm-thin-pool"; return 1; }
    msg "hook installed: $(cd "$st" && find usr/sbin -name 'thin*' | sort | xargs)"
    msg "hook modules: $(find "$st" -name '*.ko*' | sed 's|.*/||; s|\.ko.*||' | sort | xargs)"
    # busybox and /init as a recovery initramfs would have them
    cp "$BUSYBOX" "$st/usr/bin/busybox"
    cp "$HERE/guest/recovery-init" "$st/init"
    cp "$KMODS"/modules.order "$KMODS"/modules.builtin* "$st/lib/modules/$KVER/"
    depmod -b "$st" "$KVER"
    MODULES="virtio_pci virtio_blk dm-thin-pool" module_order "$st" >"$st/etc/kh/modules.load"
    mkcpio "$st" | gzip -1 >"$w/initrd.cpio.gz"
    restore_fresh "$TOP/tests/fixtures/kernel/snapshots/thin_dump.xml" "$w/meta.img" 8M || return 1
    truncate -s 8M "$w/spare.img"
    BOOT_BASE=$w/initrd.cpio.gz boot initramfs "" "" "" "meta=$w/meta.img" "spare=$w/spare.img" || return 1
    host_check "$w/spare.img" "spare disk written by thin_repair in the initramfs" || return 1
    tk thin_dump "$w/meta.img" >"$w/a.xml"
    tk thin_dump "$w/spare.img" >"$w/b.xml"
    cmp -s "$w/a.xml" "$w/b.xml" || { msg "thin_dump of the repaired copy differs"; diff "$w/a.xml" "$w/b.xml" | head >&2; return 1; }
    msg "thin_dump of the repaired copy equals the original's"
}

# ---- main ----------------------------------------------------------------
resolve_kernel
resolve_busybox
build_base
QEMU_VERSION=$(qemu-system-x86_64 --version | head -1)
msg "kernel $KVER, $QEMU_VERSION, accelerator $(pick_accel), thinkit $THINKIT"
RES=() failed=0 USED_ACCEL=$(pick_accel) ACCEL_WHY='' T_START=$(date +%s)
[ "$ACCEL$USED_ACCEL" != autotcg ] || [ ! -e /dev/kvm ] || ACCEL_WHY=" (/dev/kvm is there, but the CPU flags show no vmx/svm)"
for wf in "${WORKFLOWS[@]}"; do
    msg "== $wf"
    t0=$(date +%s)
    WFLOG=$WORK/wf-$wf.txt
    : >"$WFLOG"
    if "wf_${wf//-/_}"; then r=PASS; else r=FAIL; failed=$((failed + 1)); fi
    WFLOG=''
    t=$(($(date +%s) - t0))
    echo "$r $wf (${t}s)"
    RES+=("| $wf | $r | $t s |")
done
TOTAL=$(($(date +%s) - T_START))
if [ "$RESULTS" = 1 ]; then
    {
        echo "# Kernel, lvm2 and initramfs workflows"
        echo
        echo "Written by \`tests/kernel/run.sh\` (README.md, \"Verified against the real kernel\"), total ${TOTAL}s."
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "- kernel: Debian $KVER; $QEMU_VERSION, accelerator $USED_ACCEL$ACCEL_WHY"
        echo "- lvm2: $(lvm version 2>/dev/null | sed -n 's/^ *LVM version: *//p' | head -1)"
        echo "- thinkit: $(basename "$(dirname "$(dirname "$THINKIT")")")/tools/thinkit$(is_static "$THINKIT" && echo ' (static)')"
        [ -z "${FX_DONE:-}" ] || echo "- fixtures: $FX_DONE"
        echo
        echo "| workflow | result | time |"
        echo "| --- | --- | --- |"
        printf '%s\n' "${RES[@]}"
        for wf in "${WORKFLOWS[@]}"; do
            echo
            echo "## $wf"
            echo
            echo '```'
            cat "$WORK/wf-$wf.txt"
            echo '```'
        done
    } >"$HERE/RESULTS.md"
fi
[ "$failed" = 0 ] || { KEEP=1; msg "$failed workflow(s) failed; logs in $WORK"; exit 1; }
echo "all ${#WORKFLOWS[@]} workflow(s) passed"
