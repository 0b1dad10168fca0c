// thin_audit's library: reading a dm-log-writes log of a thin pool's two
// devices and checking what a crash at any point of it would have left.
//
// The log is of ONE logged device laid out as [metadata region | data region]
// (the harness puts both pool devices on one dm-log-writes target and splits
// it with dm-linear). Every entry is placed on that layout:
//   * a write or discard by the sector range it covers (a range straddling the
//     boundary is split);
//   * an empty FLUSH by its sector: dm-linear remaps an empty flush to the
//     region's start, so a flush at sector 0 was sent to the metadata device,
//     one at meta_sectors to the data device;
//   * a MARK belongs to no region.
// Sector numbers in the log are in units of the log's sector size S; every
// sector number this library hands out is in 512-byte sectors, relative to the
// start of the entry's region.
//
// Four operations:
//   list_log    each entry placed, plus counts;
//   replay_log  the two regions as they were after entry N or before mark M,
//               from zeroed regions (the harness's `replay` semantics);
//   audit_log   the 694cfe7f31 check: no superblock commit may add a mapping
//               (dev, vblock -> D) while a write to data block D has not yet
//               been followed by a FLUSH of the data region;
//   check_log   check_metadata on the metadata replayed to every flush/FUA
//               entry (or every N entries): is each crash state consistent?
// Library code takes byte sources and sinks, never paths.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "thin/check/damage.h"
#include "log-writes/byte_io.h"
#include "log-writes/log_writes.h"

namespace thin {

// The logged device's layout, in 512-byte sectors.
struct log_layout {
  uint64_t meta_sectors = 16384;   // 8 MiB
  uint64_t data_sectors = 524288;  // 256 MiB
  // The pool zeroes new blocks (dm-thin's default; false for pools made with
  // skip_block_zeroing). With zeroing, a block provisioned since the previous
  // commit must be written whole before a commit maps it; without, any write
  // will do (the rest legitimately holds old data).
  bool zeroing = true;

  uint64_t meta_bytes() const { return meta_sectors * 512; }
  uint64_t data_bytes() const { return data_sectors * 512; }
};

// Throws pdata::bad_input_error when the layout cannot be used with a log of
// sector size `sectorsize`: empty regions, a metadata region that is not whole
// 4 KiB blocks, or region sizes that are not whole log sectors.
void validate_layout(const log_layout &layout, uint32_t sectorsize);

enum class log_region { none, meta, data, beyond };
enum class log_kind { write, flush, fua, discard, mark };

const char *to_string(log_region r);  // "-", "meta", "data", "beyond"
const char *to_string(log_kind k);    // "write", "FLUSH", "FUA", "DISCARD", "MARK"

// One log entry placed on the layout.
struct placed_entry {
  pdata::log_entry entry;
  // write: a plain write; fua: a write carrying FUA; flush: an empty flush (a
  // write that also carries FLUSH is a `write`/`fua` with the flag in
  // entry.flags); discard; mark.
  log_kind kind = log_kind::write;
  // Where the entry starts (none for marks; beyond when it starts past the
  // end of the data region).
  log_region region = log_region::none;
  uint64_t device_sector = 0;  // start on the logged device, 512-byte sectors
  uint64_t sector = 0;      // region-relative start, 512-byte sectors
  uint64_t nr_sectors = 0;  // length in 512-byte sectors (writes, discards)
  bool straddles = false;   // a write or discard running from metadata into data
  bool past_end = false;    // some of it lies past the end of the data region
};

// Flag names of an entry, "FLUSH|FUA|META", or "-".
std::string flag_names(uint64_t flags);

// One line for `thin_audit list`: entry, kind, region, sector, length, flags,
// mark text.
std::string format_entry(const placed_entry &e);

struct log_summary {
  uint32_t sectorsize = 0;
  uint64_t nr_entries_header = 0;  // what the log superblock says
  uint64_t entries = 0;            // entries read
  uint64_t writes = 0, fua_writes = 0;  // fua_writes is part of writes
  uint64_t flushes = 0, meta_flushes = 0, data_flushes = 0;  // empty FLUSH entries
  uint64_t discards = 0, marks = 0;
  uint64_t meta_writes = 0, data_writes = 0;
  uint64_t past_end = 0;  // entries reaching past the end of the layout
  std::vector<std::pair<uint64_t, std::string>> mark_list;  // (entry, text)
};

// The summary lines printed after a listing.
std::string format_summary(const log_summary &s);

// Calls `each` for every entry, in log order. Throws pdata::bad_input_error when
// the log cannot be read (not a log, a truncated payload).
log_summary list_log(pdata::byte_source &log, const log_layout &layout,
                     const std::function<void(const placed_entry &)> &each);

struct replay_options {
  std::optional<uint64_t> until_entry;    // apply entries 0..N
  std::optional<std::string> until_mark;  // apply the entries before this mark
};

struct replay_result {
  uint64_t entries_applied = 0;     // entries read and applied (marks and flushes included)
  std::optional<uint64_t> stopped_at;  // the mark's entry, or N
};

// What replay_log would do, without writing: how many entries it applies and
// where it stops. Throws as replay_log does, before anything is written.
replay_result plan_replay(pdata::byte_source &log, const log_layout &layout, const replay_options &opts);

// Replays the log from zeroed regions onto `meta` and `data` (regions of
// layout.meta_bytes() and layout.data_bytes(): the caller sizes the sinks).
// Payloads are written where they belong; discards write zeroes; flushes and
// marks change nothing. Throws pdata::bad_input_error when the mark is absent, N
// is past the last entry, or an entry reaches past the end of the layout.
replay_result replay_log(pdata::byte_source &log, const log_layout &layout, pdata::byte_sink &meta,
                         pdata::byte_sink &data, const replay_options &opts);

// --- the 694cfe7f31 audit -------------------------------------------------

enum class violation_kind {
  // A write to the data block is logged before the commit, but no data-region
  // FLUSH came between it and the commit (the kernel's shared log: every
  // flush logs every pending write, so unflushed data writes show up there).
  unflushed,
  // The data block was free at the previous commit (newly provisioned), yet
  // no write to it was logged since then: its preparing write was not
  // durable when the mapping was (a log whose flushes log only their own
  // region's writes, as pdata::log_recorder records, puts it after the commit).
  unwritten,
};

const char *to_string(violation_kind k);  // "unflushed", "unwritten"

struct audit_violation {
  uint64_t commit_entry = 0;    // the superblock write
  uint64_t transaction_id = 0;  // of that superblock
  uint64_t dev = 0, vblock = 0, data_block = 0;
  violation_kind kind = violation_kind::unflushed;
  // unflushed: the earliest write to the data block not yet flushed.
  std::optional<uint64_t> unflushed_write_entry;
  // unwritten: the previous commit's superblock write (none for the first).
  std::optional<uint64_t> previous_commit_entry;
};

// A superblock commit whose trees could not be read (damaged metadata).
struct audit_error {
  uint64_t commit_entry = 0;
  std::string what;
};

struct audit_result {
  uint32_t sectorsize = 0;
  uint64_t entries = 0;
  uint64_t superblock_writes = 0;   // metadata writes touching block 0
  uint64_t commits = 0;             // of those, block 0 then held a valid superblock: audited
  uint64_t new_mappings = 0;        // mappings new at some commit (all checked)
  uint64_t data_writes = 0, data_flushes = 0;
  std::vector<audit_violation> violations;  // in log order of commits, then dev, vblock
  std::vector<audit_error> errors;

  bool ok() const { return violations.empty() && errors.empty(); }
};

// Walks the log keeping the metadata region replayed in memory and, per data
// block D (data-region sectors [D*dbs, (D+1)*dbs), dbs the superblock's
// data_block_size), the earliest write to D not yet followed by a data-region
// FLUSH (a FUA write is durable at once and is not tracked; discards are not
// preparing writes and are ignored) and the last write to D. At each
// superblock write whose block 0 validates, the mappings it holds that the
// previous valid superblock did not (absent, or mapped to another data block)
// are checked:
//   unflushed  D has a write not yet flushed;
//   unwritten  D was free in the previous superblock's data space map (so it
//              was provisioned since), and no write to D is logged since that
//              superblock's entry.
// Subtrees shared with the previous superblock's trees are not walked again;
// the previous trees and space map are read from the replayed image, where
// copy-on-write keeps them intact until the next commit.
audit_result audit_log(pdata::byte_source &log, const log_layout &layout);

// Text report: a summary line ("N entries, C superblock commits audited, V
// violations"), then one line per violation and per error.
std::string format_audit_text(const audit_result &r);
// One JSON object (documented in man/thin_audit.8), ending in a newline.
std::string format_audit_json(const audit_result &r);

// --- crash-state check ----------------------------------------------------

struct log_check_options {
  uint64_t every = 0;  // 0: at every entry carrying FLUSH or FUA; N: after entries N-1, 2N-1, ... and the last
};

struct log_check_failure {
  uint64_t entry = 0;
  std::string entry_description;  // "FLUSH meta", "write data FUA", ...
  std::vector<damage> problems;   // fatal first
};

struct log_check_result {
  uint32_t sectorsize = 0;
  uint64_t entries = 0;            // entries read (up to the failure)
  uint64_t points = 0;             // check points reached with formatted metadata
  uint64_t full_checks = 0;        // of those, checked anew (the rest: metadata unchanged since a passed check)
  uint64_t skipped_unformatted = 0;  // check points where block 0 was still all zeroes
  // Points that passed with non-fatal problems only (leaks). A crash state
  // may leak legitimately: the kernel counts a data block as allocated when
  // it starts preparing it, and a commit made meanwhile stores that count
  // without the mapping (inserted only after the data I/O completes).
  uint64_t points_with_leaks = 0;
  std::optional<log_check_failure> first_leak;  // the first such point and its problems
  std::optional<log_check_failure> failure;  // the first failing point; the walk stops there

  bool ok() const { return !failure; }
};

// Replays the metadata region in memory and runs check_metadata at each check
// point. A point fails on fatal damage; non-fatal problems (leaked blocks,
// space-map hints) are counted but do not fail it (see points_with_leaks).
log_check_result check_log(pdata::byte_source &log, const log_layout &layout, const log_check_options &opts);

// Text report: a summary line, then the failing point and its damage.
std::string format_check_text(const log_check_result &r);

}  // namespace thin
