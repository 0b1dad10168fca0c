// thin_metadata_size: estimate the metadata device size for a pool, with
// thin_metadata_size 0.9.0's options and output. Option parsing is getopt's
// (as 0.9.0's: a size's echoed unit depends on the -u given before it);
// sizes, rules, estimate and output come from thin/metadata_size.
#include <fmt/format.h>
#include <getopt.h>

#include <cstring>
#include <iostream>

#include "commands.h"
#include "thin/metadata_size/metadata_size.h"
#include "tool_support.h"

namespace tools {

namespace {

// 0.9.0's help text.
std::string metadata_size_help() {
  std::string letters;
  for (auto &u : thin::size_units()) letters += u.letter;
  auto line = [&](const char *opt, std::string arg, const char *what, bool units, bool mandatory) {
    if (units) arg += (mandatory ? "{" : "[") + letters + (mandatory ? "}" : "]");
    return fmt::format("\t{:<4}{:<44}{}\n", opt, arg, what);
  };
  return "Thin Provisioning Metadata Device Size Calculator.\nUsage: "
         "thin_metadata_size [options]\n" +
         line("-b", "--block-size BLOCKSIZE", "Block size of thin provisioned devices.", true, false) +
         line("-s", "--pool-size SIZE", "Size of pool device.", true, false) +
         line("-m", "--max-thins #MAXTHINS", "Maximum sum of all thin devices and snapshots.", true, false) +
         line("-u", "--unit ", "Output unit specifier.", true, true) +
         line("-n", "--numeric-only [short|long]",
              "Output numeric value only (optionally with short/long unit "
              "identifier).",
              false, false) +
         line("-h", "--help", "This help.", false, false) +
         line("-V", "--version", "Print thin provisioning tools version.", false, false);
}

}  // namespace

int thin_metadata_size_main(std::vector<std::string> args) {
  const char *prog = "thin_metadata_size";
  auto fail = [&](const std::string &msg) {
    std::cerr << prog << " - " << msg << "\n";
    return exit_failure;
  };

  unsigned unit = thin::sectors_unit;
  thin::numeric_form form = thin::numeric_form::full;
  bool numeric_given = false;
  // Block size, pool size, max thins: the value and its echo.
  enum { block, pool, thins };
  uint64_t value[3] = {0, 0, 0};
  std::string desc[3];

  std::vector<char *> argv;
  for (auto &a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  static const option long_options[] = {{"block-size", required_argument, nullptr, 'b'},
                                        {"pool-size", required_argument, nullptr, 's'},
                                        {"max-thins", required_argument, nullptr, 'm'},
                                        {"unit", required_argument, nullptr, 'u'},
                                        {"numeric-only", optional_argument, nullptr, 'n'},
                                        {"help", no_argument, nullptr, 'h'},
                                        {"version", no_argument, nullptr, 'V'},
                                        {nullptr, 0, nullptr, 0}};
  optind = 0;  // a fresh scan (glibc)
  int c;
  while ((c = getopt_long(static_cast<int>(args.size()), argv.data(), "b:s:m:u:n::hV", long_options, nullptr)) != -1) {
    switch (c) {
      case 'b':
      case 's':
      case 'm': {
        int o = c == 'b' ? block : c == 's' ? pool : thins;
        if (value[o]) return fail("option already given!");
        thin::size_arg a;
        try {
          a = thin::parse_size_arg(optarg);
        } catch (const std::invalid_argument &e) {
          return fail(e.what());
        }
        value[o] = o == thins ? a.count() : a.sectors();
        // Echoed as the digits and the unit given, else the output unit
        // chosen so far (max thins: the digits alone).
        desc[o] = std::to_string(a.number);
        if (a.unit || o != thins) desc[o] += thin::size_units()[a.unit ? *a.unit : unit].name;
        break;
      }
      case 'u':
        if (auto u = thin::find_size_unit(optarg))
          unit = *u;
        else
          return fail("output unit specifier invalid!");
        break;
      case 'n': {
        if (numeric_given) return fail("-n already given!");
        numeric_given = true;
        form = thin::numeric_form::number;
        if (optarg) {
          std::size_t len = std::strlen(optarg);
          bool is_long = std::strncmp("long", optarg, len) == 0;
          if (!len || (std::strncmp("short", optarg, len) != 0 && !is_long)) return fail("-n invalid option argument");
          form = is_long ? thin::numeric_form::long_unit : thin::numeric_form::short_unit;
        }
        break;
      }
      case 'h':
        std::cout << metadata_size_help();
        return exit_ok;
      case 'V':
        std::cout << version_string() << "\n";
        return exit_ok;
      default:
        return exit_failure;  // getopt said what was wrong
    }
  }

  if (!value[block]) return fail("block size required!");
  if (!value[pool]) return fail("pool size required!");
  if (!value[thins]) return fail("max thins required!");
  if (auto err = thin::check_data_block_size(value[block])) return fail(*err);
  if (value[pool] <= value[block]) return fail("pool size must be larger than block size");

  uint64_t blocks = thin::estimate_metadata_blocks({value[block], value[pool], value[thins]});
  std::cout << thin::format_metadata_size(blocks, unit, form, prog, desc[block], desc[pool], desc[thins]);
  return exit_ok;
}

}  // namespace tools
