#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/ from the kernel fixtures.

Usage: fuzz/make_corpus.py   (from anywhere; needs zstd on PATH)

Metadata seeds are kernel images in the sparse format of
fuzz/metadata_image.h: a 16-byte header (nr_blocks, flags, arg1, arg2) and
one record per non-zero block with its trailing zeroes trimmed, so an 8 MiB
image becomes 20-80 KiB. The audit seed is the kernel's dm-log-writes log
cut after its first entries (pool creation and the first commits; the
superblock's entry count says so). The restore seeds are the fixtures' XML.
"""
import os
import shutil
import struct
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL = os.path.join(ROOT, "tests", "fixtures", "kernel")
OUT = os.path.join(ROOT, "fuzz", "corpus")
BLOCK = 4096


def unzstd(path):
    return subprocess.run(["zstd", "-qdc", path], check=True, stdout=subprocess.PIPE).stdout


def image_seed(scenario, flags=0, arg1=0, arg2=0, drop=()):
    img = unzstd(os.path.join(KERNEL, scenario, "metadata.img.zst"))
    nr = len(img) // BLOCK
    out = bytearray(struct.pack("<IIII", nr, flags, arg1, arg2))
    for b in range(nr):
        if b in drop:
            continue
        blk = img[b * BLOCK:(b + 1) * BLOCK].rstrip(b"\0")
        if blk:
            out += struct.pack("<IH", b, len(blk)) + blk
    return bytes(out)


def log_seed(nr_entries):
    log = unzstd(os.path.join(KERNEL, "logwrites", "log.img.zst"))
    magic, version, total, ss = struct.unpack_from("<QQQI", log, 0)
    off = ss
    for _ in range(min(nr_entries, total)):
        sector, nr_sectors, flags, data_len = struct.unpack_from("<QQQQ", log, off)
        off += ss
        if not flags & (4 | 8):  # discards and marks carry no payload
            off += nr_sectors * ss
    head = bytearray(log[:off])
    struct.pack_into("<Q", head, 16, min(nr_entries, total))
    return bytes(head)


def write(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    # check: flags bit 0 metadata snapshot, bit 3 clear-needs-check/auto-repair.
    write("check", "basic", image_seed("basic"))
    write("check", "discard-metasnap-snap", image_seed("discard-metasnap", flags=1))
    write("check", "snapshots-auto-repair", image_seed("snapshots", flags=8))
    # roundtrip: flags bit 1 also dumps human-readable text.
    write("roundtrip", "basic", image_seed("basic"))
    write("roundtrip", "snapshots-human", image_seed("snapshots", flags=2))
    # repair: flags bit 0 passes arg1/arg2 as data block size / nr data blocks;
    # one seed without its superblock (the roots are found by scanning).
    write("repair", "basic", image_seed("basic"))
    write("repair", "bigblock-no-superblock", image_seed("bigblock", flags=1, arg1=384, arg2=1365, drop={0}))
    # delta: arg1, arg2 are the devices (pairs the fixtures have references for).
    write("delta", "snapshots-1-2-verbose", image_seed("snapshots", flags=2, arg1=1, arg2=2))
    write("delta", "discard-metasnap-snap-1-2", image_seed("discard-metasnap", flags=1, arg1=1, arg2=2))
    # restore: thin_dump XML, both dialects' features.
    for src, name in [(os.path.join(KERNEL, "snapshots", "thin_dump.xml"), "snapshots.xml"),
                      (os.path.join(KERNEL, "bigblock", "thin_dump.xml"), "bigblock.xml"),
                      (os.path.join(KERNEL, "discard-metasnap", "thin_dump.metasnap.xml"), "metasnap.xml"),
                      (os.path.join(ROOT, "tests", "fixtures", "generated", "two_origins.xml"), "two_origins.xml")]:
        with open(src, "rb") as f:
            write("restore", name, f.read())
    # audit: the log up to the 'writes-1' mark (entry 44).
    write("audit", "logwrites-45", log_seed(45))


if __name__ == "__main__":
    main()
