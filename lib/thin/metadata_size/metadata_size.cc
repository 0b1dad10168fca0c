// thin_metadata_size: units, arguments, the estimate and its output (see
// metadata_size.h).
#include "thin/metadata_size/metadata_size.h"
#include "persistent-data/errors.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace thin {

const std::vector<size_unit> &size_units() {
  static const std::vector<size_unit> units = [] {
    static const char letters[] = "bskKmMgGtTpPeEzZyY";
    static const char *names[] = {"bytes",     "sectors",   "kibibytes", "kilobytes", "mebibytes", "megabytes",
                                  "gibibytes", "gigabytes", "tebibytes", "terabytes", "pebibytes", "petabytes",
                                  "ebibytes",  "exabytes",  "zebibytes", "zetabytes", "yobibytes", "yottabytes"};
    std::vector<size_unit> u;
    for (unsigned i = 0; i < 18; i++) {
      uint64_t f;
      if (i < 4)
        f = std::array<uint64_t, 4>{1, 512, 1024, 1000}[i];
      else
        f = u[i - 2].factor * (i % 2 == 0 ? 1024u : 1000u);  // unsigned: wraps past 2^64 as 0.9.0's did
      u.push_back({letters[i], names[i], f});
    }
    return u;
  }();
  return units;
}

std::optional<unsigned> find_size_unit(const std::string &text) {
  auto &units = size_units();
  if (text.size() == 1) {
    for (unsigned i = 0; i < units.size(); i++)
      if (units[i].letter == text[0]) return i;
    return std::nullopt;
  }
  for (unsigned i = 0; i < units.size(); i++)
    if (std::strncmp(units[i].name, text.c_str(), text.size()) == 0) return i;
  return std::nullopt;
}

uint64_t size_arg::sectors() const {
  uint64_t f = unit ? size_units()[*unit].factor : 512;
  return number * f / 512;
}

uint64_t size_arg::count() const {
  if (unit) return number * size_units()[*unit].factor;
  return number * 512 / 512;
}

size_arg parse_size_arg(const std::string &text) {
  size_arg a;
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') digits++;
  // Like atoll: the digits, saturating at the largest signed value.
  for (std::size_t i = 0; i < digits; i++) {
    unsigned d = static_cast<unsigned>(text[i] - '0');
    if (a.number > (uint64_t(INT64_MAX) - d) / 10) {
      a.number = uint64_t(INT64_MAX);
      break;
    }
    a.number = a.number * 10 + d;
  }
  if (digits < text.size()) {
    a.unit = find_size_unit(text.substr(digits));
    if (!a.unit) throw pdata::bad_input_error("Invalid unit specifier!");
  }
  return a;
}

std::optional<std::string> check_data_block_size(uint64_t block_sectors) {
  if (block_sectors % 128 != 0 || block_sectors == 0) return "block size must be a multiple of 64 KiB (128 sectors)";
  if (block_sectors > 2097152) return "block size must be at most 1 GiB (2097152 sectors)";
  return std::nullopt;
}

uint64_t estimate_blocks_090(const metadata_size_request &r) {
  // Mapping entries per leaf as 0.9.0 counted them: (4096 - 64) / 16.
  return 1 + 2 * r.pool_sectors / r.block_sectors / 252 + r.max_thins;
}

uint64_t worst_case_blocks(const metadata_size_request &r) {
  // Doubles: exact far beyond any real pool, and never wrapping.
  const double nr = static_cast<double>(r.pool_sectors / r.block_sectors);  // data blocks
  const double thins = static_cast<double>(r.max_thins);
  // Entries a node holds: mapping leaves and internal nodes (8-byte values),
  // device details leaves (24-byte values), space-map index leaves (16).
  const double full = 252, details_full = 126, index_full = 168, per_bitmap = 16320;
  // Nodes of a tree of n entries packed full: leaves, then each level above.
  auto packed = [&](double n, double per_leaf) {
    double level = std::max(1.0, std::ceil(n / per_leaf)), total = level;
    while (level > 1) total += level = std::ceil(level / full);
    return total;
  };

  // Mapping leaves: a device of m mappings has max(1, ceil(m / 252)), so
  // all of them at most nr / 252 + thins.
  double leaves = std::floor(nr / full) + thins;
  // Internal nodes: one root for each device of more than one leaf (more
  // than 252 mappings); a level below it for those of more than 252 leaves
  // (63504 mappings), one more for more than 252^2 leaves.
  double inner = std::min(thins, std::floor(nr / (full + 1)));
  for (double span = full * full; span < nr; span *= full) {
    double deep = std::min(thins, std::floor(nr / (span + 1)));
    inner += std::floor(leaves / (span / full)) + deep;
  }
  double total = 1                               // superblock
                 + leaves + inner                //
                 + packed(thins, full)           // top level: dev -> mapping root
                 + packed(thins, details_full);  // device details
  double bitmaps = std::ceil(nr / per_bitmap);
  total += bitmaps + packed(bitmaps, index_full);  // data space map
  // Blocks a restore writes and replaces within its one transaction (the
  // first, empty roots; a block freed in a transaction is not reused before
  // it commits): 3 in every pool measured, 8 allowed.
  total += 8;
  // Metadata space map: its index block and the bitmaps covering everything.
  total += 1;
  total += std::ceil((total + std::ceil(total / per_bitmap)) / per_bitmap);
  if (total >= 1.8e19) return UINT64_MAX;
  return static_cast<uint64_t>(total);
}

uint64_t estimate_metadata_blocks(const metadata_size_request &r) {
  return std::max(estimate_blocks_090(r), worst_case_blocks(r));
}

std::string format_size_value(uint64_t blocks, unsigned unit) {
  // 0.9.0 computes in double: blocks * 8 sectors * 512 / factor.
  double v = static_cast<double>(blocks) * 4096.0 / static_cast<double>(size_units()[unit].factor);
  double whole = std::floor(v);
  char buf[64];
  if (v == whole && v < 1.8e19)
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  else
    std::snprintf(buf, sizeof buf, v - whole < 1e-2 ? "%0.2e" : "%0.2f", v);
  return buf;
}

std::string format_metadata_size(uint64_t blocks, unsigned unit, numeric_form form, const std::string &prog,
                                 const std::string &block_desc, const std::string &pool_desc,
                                 const std::string &thins_desc) {
  const size_unit &u = size_units()[unit];
  std::string value = format_size_value(blocks, unit);
  switch (form) {
    case numeric_form::number:
      return value + "\n";
    case numeric_form::short_unit:
      return value + u.letter + "\n";
    case numeric_form::long_unit:
      return value + u.name + "\n";
    case numeric_form::full:
      break;
  }
  return fmt::format(
      "{} - {} {} estimated metadata area size for "
      "\"--block-size={} --pool-size={} --max-thins={}\"\n",
      prog, value, u.name, block_desc, pool_desc, thins_desc);
}

}  // namespace thin
