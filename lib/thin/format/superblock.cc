// Superblock decoding, validation and encoding (see superblock.h).
#include "thin/format/superblock.h"

#include <cstring>

#include <fmt/format.h>

#include "persistent-data/checksum.h"
#include "thin/format/invariants.h"

namespace thin {

using namespace pdata;

namespace {
disk_sm_root root_from(const std::array<unsigned char, space_map_root_size> &raw) {
  disk_sm_root r;
  std::memcpy(&r, raw.data(), sizeof(r));
  return r;
}
}  // namespace

disk_sm_root superblock::data_sm_root() const { return root_from(data_sm_root_raw); }
disk_sm_root superblock::metadata_sm_root() const { return root_from(metadata_sm_root_raw); }
void superblock::set_data_sm_root(const disk_sm_root &r) { std::memcpy(data_sm_root_raw.data(), &r, sizeof(r)); }
void superblock::set_metadata_sm_root(const disk_sm_root &r) {
  std::memcpy(metadata_sm_root_raw.data(), &r, sizeof(r));
}

bool is_all_zero(const void *block) {
  auto *p = static_cast<const unsigned char *>(block);
  for (std::size_t i = 0; i < block_size; i++)
    if (p[i]) return false;
  return true;
}

std::optional<std::string> validate_superblock(const void *block, block_address location) {
  auto *d = static_cast<const superblock_disk *>(block);
  if (is_all_zero(block)) return std::string("superblock is all zeroes (unformatted or wiped metadata)");
  if (d->magic.get() != superblock_magic)
    return fmt::format("bad superblock magic {} (expected {}): not thin-pool metadata", d->magic.get(),
                       superblock_magic);
  if (d->blocknr.get() != location)
    return fmt::format("superblock at block {} claims to be block {}", location, d->blocknr.get());
  if (!checksum_ok(block, checksum_salt::superblock)) return std::string("bad superblock checksum");
  uint32_t dbs = d->data_block_size.get();
  if (!invariants::data_block_size_ok(dbs))
    return fmt::format("superblock data block size {} sectors is invalid (128..2097152, a multiple of 128)", dbs);
  if (d->incompat_flags.get())
    return fmt::format("superblock has incompatible feature flags {:#x} this tool does not know",
                       d->incompat_flags.get());
  return std::nullopt;
}

superblock decode_superblock(const void *block) {
  auto *d = static_cast<const superblock_disk *>(block);
  superblock sb;
  sb.flags = d->flags.get();
  sb.blocknr = d->blocknr.get();
  std::memcpy(sb.uuid.data(), d->uuid, 16);
  sb.magic = d->magic.get();
  sb.version = d->version.get();
  sb.time = d->time.get();
  sb.trans_id = d->trans_id.get();
  sb.held_root = d->held_root.get();
  std::memcpy(sb.data_sm_root_raw.data(), d->data_space_map_root, space_map_root_size);
  std::memcpy(sb.metadata_sm_root_raw.data(), d->metadata_space_map_root, space_map_root_size);
  sb.mapping_root = d->data_mapping_root.get();
  sb.details_root = d->device_details_root.get();
  sb.data_block_size = d->data_block_size.get();
  sb.metadata_block_size = d->metadata_block_size.get();
  sb.metadata_nr_blocks = d->metadata_nr_blocks.get();
  sb.compat_flags = d->compat_flags.get();
  sb.compat_ro_flags = d->compat_ro_flags.get();
  sb.incompat_flags = d->incompat_flags.get();
  return sb;
}

void encode_superblock(const superblock &sb, void *block) {
  auto *d = static_cast<superblock_disk *>(block);
  d->flags.set(sb.flags);
  d->blocknr.set(sb.blocknr);
  std::memcpy(d->uuid, sb.uuid.data(), 16);
  d->magic.set(sb.magic);
  d->version.set(sb.version);
  d->time.set(sb.time);
  d->trans_id.set(sb.trans_id);
  d->held_root.set(sb.held_root);
  std::memcpy(d->data_space_map_root, sb.data_sm_root_raw.data(), space_map_root_size);
  std::memcpy(d->metadata_space_map_root, sb.metadata_sm_root_raw.data(), space_map_root_size);
  d->data_mapping_root.set(sb.mapping_root);
  d->device_details_root.set(sb.details_root);
  d->data_block_size.set(sb.data_block_size);
  d->metadata_block_size.set(sb.metadata_block_size);
  d->metadata_nr_blocks.set(sb.metadata_nr_blocks);
  d->compat_flags.set(sb.compat_flags);
  d->compat_ro_flags.set(sb.compat_ro_flags);
  d->incompat_flags.set(sb.incompat_flags);
  stamp_checksum(block, checksum_salt::superblock);
}

superblock read_superblock(block_io &io, block_address location) {
  if (location >= io.nr_blocks())
    throw metadata_error(fmt::format("superblock location {} is beyond the end of the metadata ({} blocks)",
                                     location, io.nr_blocks()));
  block_buffer buf;
  io.read(location, buf.raw(), 1);
  if (auto err = validate_superblock(buf.raw(), location)) throw metadata_error(*err);
  return decode_superblock(buf.raw());
}

selected_superblock select_superblock(block_io &io, bool use_metadata_snap, std::optional<uint64_t> snap_location) {
  superblock live = read_superblock(io, 0);
  if (!use_metadata_snap) return {live, live.data_sm_root().nr_blocks.get()};
  if (!live.held_root) throw metadata_error("no current metadata snapshot");
  if (snap_location && *snap_location != live.held_root)
    throw metadata_error(fmt::format("metadata snapshot at block {} does not match the one in the superblock ({})",
                                     *snap_location, live.held_root));
  return {read_superblock(io, live.held_root), 0};
}

}  // namespace thin
