# Workflow kernel-roundtrip, boot 1: the kernel formats a fresh pool on the
# empty "meta" and "data" disks and fills it: aligned and unaligned writes,
# random data, a snapshot with copy-on-write both ways, a discard and a new
# transaction id.  Hashes every thin device (label=final) and tears down.
pool_create "$DISK_meta" "$DISK_data" 128
thin_new 1 131072
write_thin 1 0 2048 a
write_thin 1 4100 12 b
thin_new 2 262144
write_random /dev/mapper/thin2 20480 1024
write_thin 2 131064 8 c
snap 3 1
write_thin 3 64 64 snap
write_thin 1 1024 128 orig
discard 1 1536 512
pool_msg "set_transaction_id 0 5"
kh "pool status: $(dmsetup status "$POOL")"
hash_all final
teardown
if thin_check "$DISK_meta"; then kh "guest thin_check OK"; else fail "guest thin_check"; fi
