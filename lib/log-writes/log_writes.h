// The dm-log-writes log format (drivers/md/dm-log-writes.c), read and written.
//
// Log superblock at byte 0, one S-byte unit (S = the logged device's sector
// size, usually 512):
// | off | size | field      |                                            |
// |-----|------|------------|--------------------------------------------|
// | 0   | 8    | magic      | 0x6A736677736872                           |
// | 8   | 8    | version    | 1                                          |
// | 16  | 8    | nr_entries | may lag a crashed log: entries can follow  |
// | 24  | 4    | sectorsize | S                                          |
// | 28  | 4    | (garbage from the kernel: ignore)                       |
//
// Entries follow from byte S, back to back: an S-byte header
// | 0   | 8    | sector     | start on the logged device, in S units     |
// | 8   | 8    | nr_sectors | length in S units                          |
// | 16  | 8    | flags      | FLUSH 1, FUA 2, DISCARD 4, MARK 8, META 16 |
// | 24  | 8    | data_len   | mark text length (marks), else 0           |
// | 32  | S-32 | mark text (marks), zero otherwise                       |
// then nr_sectors*S payload bytes for writes (none for discards, flushes and
// marks).
//
// Writes are logged in durability order: a plain write when a later flush
// covering it completes, a FUA write when it completes. Any prefix of the log
// is a state the device could have been in after a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "log-writes/byte_io.h"
#include "persistent-data/endian.h"

namespace pdata {

constexpr uint64_t log_writes_magic = 0x6A736677736872ull;
constexpr uint64_t log_writes_version = 1;

enum log_entry_flags : uint64_t {
  log_flush = 1,
  log_fua = 2,
  log_discard = 4,
  log_mark = 8,
  log_metadata = 16,
};

struct __attribute__((packed)) log_super_disk {
  le64 magic;
  le64 version;
  le64 nr_entries;
  le32 sectorsize;
  le32 padding;
};
static_assert(sizeof(log_super_disk) == 32);

struct __attribute__((packed)) log_entry_disk {
  le64 sector;
  le64 nr_sectors;
  le64 flags;
  le64 data_len;
};
static_assert(sizeof(log_entry_disk) == 32);

struct log_entry {
  uint64_t index = 0;
  uint64_t sector = 0;      // in S units
  uint64_t nr_sectors = 0;  // in S units
  uint64_t flags = 0;
  std::string mark;                  // MARK entries
  uint64_t payload_offset = 0;       // byte offset of the payload in the log
};

// Describes an entry for humans: "12 FLUSH sector 0", "40 write 16+8 [FUA]".
std::string describe(const log_entry &e);

class log_reader {
 public:
  // Throws pdata::bad_input_error when the source is not a dm-log-writes log.
  explicit log_reader(byte_source &src);

  uint32_t sectorsize() const { return sectorsize_; }
  uint64_t nr_entries_header() const { return nr_entries_; }

  // The next entry, or nothing at the end. Entries past the header's
  // nr_entries are read while they look valid (a crashed log), unless
  // `trust_header` was set.
  std::optional<log_entry> next();
  void trust_header(bool t) { trust_header_ = t; }

  // Reads an entry's payload (nr_sectors * S bytes for writes).
  std::vector<unsigned char> payload(const log_entry &e);

  // Rewinds to the first entry.
  void rewind();

 private:
  byte_source &src_;
  uint32_t sectorsize_ = 512;
  uint64_t nr_entries_ = 0;
  uint64_t pos_ = 0, index_ = 0;
  bool trust_header_ = false;
};

class log_writer {
 public:
  explicit log_writer(byte_sink &sink, uint32_t sectorsize = 512);

  void write(uint64_t sector, const void *data, uint64_t nr_sectors, uint64_t flags = 0);
  void flush(uint64_t sector);
  void discard(uint64_t sector, uint64_t nr_sectors);
  void mark(const std::string &text);
  // Rewrites the log superblock with the current entry count.
  void finish();

  uint64_t nr_entries() const { return nr_entries_; }
  uint32_t sectorsize() const { return sectorsize_; }

 private:
  void header(uint64_t sector, uint64_t nr_sectors, uint64_t flags, const std::string &text);
  byte_sink &sink_;
  uint32_t sectorsize_;
  uint64_t pos_, nr_entries_ = 0;
};

}  // namespace pdata
