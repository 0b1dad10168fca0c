// thin_extract: the contents of thin devices, read offline from the pool's
// data device through its metadata (no kernel needed).
//
// The metadata (binary, walked tolerantly as thin_repair does, or thin_dump
// XML) gives each device's mappings: virtual block -> data block. Runs of
// consecutive virtual blocks that map to consecutive data blocks are copied
// in large reads (up to extract_options::max_io bytes each); a writer thread
// writes one buffer while the next is read. Unmapped blocks are holes in a
// regular output file (nothing is written; the file is sized at the end) and
// zeros on a block device. Mappings that could not be read (damaged metadata)
// are reported as lost ranges; everything else is still written.
//
// The metadata records no thin device's virtual size, so the output size is
// extract_options::size, or else the end of the last mapped block.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "persistent-data/block_io.h"
#include "persistent-data/progress.h"
#include "persistent-data/btree_walk.h"

namespace thin {

// The pool's data device, read side.
class data_reader {
 public:
  virtual ~data_reader() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly `len` bytes at `off` (inside size()); throws pdata::io_error.
  virtual void read_at(uint64_t off, void *buf, std::size_t len) = 0;
};

// One output volume.
class volume_writer {
 public:
  virtual ~volume_writer() = default;
  virtual void write_at(uint64_t off, const void *buf, std::size_t len) = 0;
  // True when unmapped ranges must be written as zeros (a block device);
  // false when they can be left as holes (a fresh regular file).
  virtual bool needs_zeros() const = 0;
  // A block device's size: nothing may be written beyond it.
  virtual std::optional<uint64_t> capacity() const = 0;
  // Everything is written: size the output (a file) and make it durable.
  virtual void finish(uint64_t size) = 0;
};

// A descriptor (not owned) opened read-only; `size` in bytes.
class fd_data_reader : public data_reader {
 public:
  fd_data_reader(int fd, uint64_t size) : fd_(fd), size_(size) {}
  uint64_t size() const override { return size_; }
  void read_at(uint64_t off, void *buf, std::size_t len) override;

 private:
  int fd_;
  uint64_t size_;
};

// A descriptor (not owned) opened for writing: a regular file (holes, sized
// by ftruncate at the end) or a device (zeros; `capacity` bytes for a block
// device, nothing for a character device).
class fd_volume_writer : public volume_writer {
 public:
  fd_volume_writer(int fd, bool regular_file, std::optional<uint64_t> capacity)
      : fd_(fd), regular_(regular_file), capacity_(capacity) {}
  void write_at(uint64_t off, const void *buf, std::size_t len) override;
  bool needs_zeros() const override { return !regular_; }
  std::optional<uint64_t> capacity() const override { return capacity_; }
  void finish(uint64_t size) override;

 private:
  int fd_;
  bool regular_;
  std::optional<uint64_t> capacity_;
};

struct extract_options {
  std::optional<uint64_t> dev_id;  // the one device to extract; nothing: every device
  std::optional<uint64_t> size;    // output size in bytes; default: end of the last mapped block
  // Binary metadata only: read the metadata snapshot instead of the live
  // metadata (an explicit location must match the superblock's).
  bool use_metadata_snap = false;
  std::optional<uint64_t> metadata_snap_location;
  std::size_t max_io = 8u << 20;  // bytes per read of the data device
  // Told of the mappings gone over (binary metadata) or of the XML bytes
  // read; nullptr: nobody.
  pdata::progress *progress = nullptr;
};

struct extracted_device {
  uint64_t dev_id = 0;
  uint64_t size = 0;             // bytes the output holds
  uint64_t mapped_blocks = 0;    // mappings seen
  uint64_t copied_bytes = 0;     // read from the data device and written
  uint64_t beyond_size_blocks = 0;  // mappings at or past `size` (not written)
};

// A range of one device's virtual blocks whose contents are not in the output.
struct extract_lost {
  std::optional<uint64_t> dev;           // nothing: a range of device ids (all of their blocks)
  std::optional<pdata::key_range> keys;  // virtual blocks (or device ids); nothing: all
  std::string why;
};

struct extract_report {
  uint32_t data_block_size = 0;  // sectors
  std::vector<extracted_device> devices;
  std::vector<extract_lost> lost;
  // One line per lost range: "device 1: blocks 100..125 (bytes 6553600..8257535) lost: why".
  std::vector<std::string> lost_lines() const;
};

// Opens the output for a device (called when its first event arrives).
using open_volume = std::function<std::unique_ptr<volume_writer>(uint64_t dev_id)>;

// From binary metadata: the tolerant walk (thin_repair's), or the metadata
// snapshot's strict walk with use_metadata_snap. Throws metadata_error when
// nothing can be read, or when the one device asked for is not there (and not
// covered by a lost range); pdata::io_error on data or output I/O failure.
extract_report extract_from_metadata(pdata::block_io &metadata, data_reader &data, const extract_options &opts,
                                     const open_volume &open);

// From thin_dump XML (0.9.0 or 1.x with <def>/<ref>). Throws xml_error on
// bad XML (what was extracted before it stays written).
extract_report extract_from_xml(std::istream &xml, data_reader &data, const extract_options &opts,
                                const open_volume &open);

}  // namespace thin
