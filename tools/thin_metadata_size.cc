// thin_metadata_size: estimate the metadata device size for a pool, with
// thin_metadata_size 0.9.0's options and output. Option parsing is getopt's
// (cli::command::parse_getopt; as 0.9.0's: a size's echoed unit depends on
// the -u given before it); sizes, rules, estimate and output come from
// thin/metadata_size.
#include <fmt/format.h>
#include <getopt.h>

#include <cstring>
#include <iostream>

#include "cli.h"
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
  cli::command cmd(prog, metadata_size_help());
  cmd.error_separator(" - ");  // 0.9.0's

  unsigned unit = thin::sectors_unit;
  thin::numeric_form form = thin::numeric_form::full;
  bool numeric_given = false;
  // Block size, pool size, max thins: the value and its echo.
  enum { block, pool, thins };
  uint64_t value[3] = {0, 0, 0};
  std::string desc[3];

  static const option long_options[] = {{"block-size", required_argument, nullptr, 'b'},
                                        {"pool-size", required_argument, nullptr, 's'},
                                        {"max-thins", required_argument, nullptr, 'm'},
                                        {"unit", required_argument, nullptr, 'u'},
                                        {"numeric-only", optional_argument, nullptr, 'n'},
                                        {"help", no_argument, nullptr, 'h'},
                                        {"version", no_argument, nullptr, 'V'},
                                        {nullptr, 0, nullptr, 0}};
  auto on_option = [&](int c, const char *arg) -> std::optional<int> {
    if (c == 'u') {
      auto u = thin::find_size_unit(arg);
      if (!u) return cmd.fail("output unit specifier invalid!");
      unit = *u;
    } else if (c == 'n') {
      if (numeric_given) return cmd.fail("-n already given!");
      numeric_given = true;
      form = thin::numeric_form::number;
      if (arg) {
        std::size_t len = std::strlen(arg);
        bool is_long = std::strncmp("long", arg, len) == 0;
        if (!len || (std::strncmp("short", arg, len) != 0 && !is_long)) return cmd.fail("-n invalid option argument");
        form = is_long ? thin::numeric_form::long_unit : thin::numeric_form::short_unit;
      }
    } else {  // -b, -s, -m
      int o = c == 'b' ? block : c == 's' ? pool : thins;
      if (value[o]) return cmd.fail("option already given!");
      thin::size_arg a;
      try {
        a = thin::parse_size_arg(arg);
      } catch (const pdata::bad_input_error &e) {
        return cmd.fail(e.what());
      }
      value[o] = o == thins ? a.count() : a.sectors();
      // Echoed as the digits and the unit given, else the output unit
      // chosen so far (max thins: the digits alone).
      desc[o] = std::to_string(a.number);
      if (a.unit || o != thins) desc[o] += thin::size_units()[a.unit ? *a.unit : unit].name;
    }
    return std::nullopt;
  };
  if (auto rc = cmd.parse_getopt(args, "b:s:m:u:n::hV", long_options, on_option)) return *rc;

  if (!value[block]) return cmd.fail("block size required!");
  if (!value[pool]) return cmd.fail("pool size required!");
  if (!value[thins]) return cmd.fail("max thins required!");
  if (auto err = thin::check_data_block_size(value[block])) return cmd.fail(*err);
  if (value[pool] <= value[block]) return cmd.fail("pool size must be larger than block size");

  return cmd.run("", [&] {
    uint64_t blocks = thin::estimate_metadata_blocks({value[block], value[pool], value[thins]});
    std::cout << thin::format_metadata_size(blocks, unit, form, prog, desc[block], desc[pool], desc[thins]);
    return exit_ok;
  });
}

}  // namespace tools
