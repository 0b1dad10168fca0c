# Workflows kernel-roundtrip and kernel-fixtures: the kernel opens metadata
# it did not write (kh.bs, kh.nr from the host; /kh/in/sizes "ID SECTORS"),
# hashes every thin device (label=before); with kh.mutate=1 it then changes
# the pool (writes in up to three devices, a snapshot with copy-on-write, a
# discard, a delete, a new transaction id) and hashes again (label=after).
pool_open "$DISK_meta" "$DISK_data" "$KH_BS" "$KH_NR"
while read -r id n; do thin_activate "$id" "$n"; done </kh/in/sizes
hash_all before
if [ "${KH_MUTATE:-0}" = 1 ]; then
    ids=$(sort -n "$THINS" | head -3 | awk '{ print $1 }')
    first=$(echo "$ids" | head -1)
    for id in $ids; do
        write_thin "$id" 0 256 mut
        write_thin "$id" $(($(thin_sectors "$id") / 4 + 4)) 20 mut2   # past the middle
    done
    new=$(($(sort -n "$THINS" | tail -1 | awk '{ print $1 }') + 1))
    snap "$new" "$first"
    write_thin "$new" 64 128 snapmut
    write_thin "$first" 128 64 origmut
    discard "$first" 512 256
    n_ids=$(echo "$ids" | wc -l)
    [ "$n_ids" -lt 2 ] || thin_delete "$(echo "$ids" | tail -1)"
    t=$(pool_trans)
    pool_msg "set_transaction_id $t $((t + 1))"
    kh "pool status: $(dmsetup status "$POOL")"
    hash_all after
fi
teardown
