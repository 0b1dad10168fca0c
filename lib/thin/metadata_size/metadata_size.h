// thin_metadata_size's library side: the units 0.9.0 understands, size
// arguments, the block-size rules, the estimate and 0.9.0's output forms.
//
// The estimate is 0.9.0's (one superblock, twice the mapping leaves a fully
// provisioned pool needs, one root per thin device) unless that would not
// hold the worst case: a fully provisioned pool whose data blocks are spread
// over `max_thins` devices sharing nothing, each device's mapping tree packed
// as thin_restore writes it, plus the internal nodes, the device-details and
// top-level trees, both space maps and the few blocks a restore replaces
// within its transaction. When pools are small and devices many, 0.9.0's
// number falls short of that, and the bound is printed instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace thin {

struct size_unit {
  char letter;       // 'b', 's', 'k', 'K', ...
  const char *name;  // "bytes", "sectors", "kibibytes", "kilobytes", ...
  uint64_t factor;   // bytes in one unit (wraps for the largest, as 0.9.0's)
};

// b s k K m M g G t T p P e E z Z y Y: lower case binary, upper case decimal.
const std::vector<size_unit> &size_units();
constexpr unsigned sectors_unit = 1;

// A unit by its letter (one character) or a prefix of its name ("kilo",
// "sec"); nothing when none matches.
std::optional<unsigned> find_size_unit(const std::string &text);

// A size argument: leading decimal digits and an optional unit ("64k",
// "128"). Throws pdata::bad_input_error for an unknown unit.
struct size_arg {
  uint64_t number = 0;           // the digits (0 when there are none)
  std::optional<unsigned> unit;  // the unit given, if any
  // In sectors: number * unit factor / 512, or number itself without a unit.
  uint64_t sectors() const;
  // In bytes (max thins with a unit: "1k" is 1024), or the number without one.
  uint64_t count() const;
};
size_arg parse_size_arg(const std::string &text);

// Data block size rules (sectors): a multiple of 128 (64 KiB), at most
// 2097152 (1 GiB). Returns the problem, or nothing.
std::optional<std::string> check_data_block_size(uint64_t block_sectors);

struct metadata_size_request {
  uint64_t block_sectors = 0;
  uint64_t pool_sectors = 0;
  uint64_t max_thins = 0;
};

// 0.9.0's estimate in 4 KiB blocks.
uint64_t estimate_blocks_090(const metadata_size_request &r);
// Blocks a restored worst-case pool can use (see the top of this file).
uint64_t worst_case_blocks(const metadata_size_request &r);
// The estimate printed: the larger of the two.
uint64_t estimate_metadata_blocks(const metadata_size_request &r);

enum class numeric_form { full, number, short_unit, long_unit };

// The value in `unit` as 0.9.0 prints it: whole numbers bare, otherwise two
// decimals, or %0.2e when the fraction is below 0.01.
std::string format_size_value(uint64_t blocks, unsigned unit);

// The whole output line (with its newline). `prog` starts the full form; the
// three descriptions are the arguments as 0.9.0 echoes them.
std::string format_metadata_size(uint64_t blocks, unsigned unit, numeric_form form, const std::string &prog,
                                 const std::string &block_desc, const std::string &pool_desc,
                                 const std::string &thins_desc);

}  // namespace thin
