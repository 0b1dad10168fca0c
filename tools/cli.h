// tools/cli.h: the command-line skeleton every tool shares: parsing with the
// project's conventions, the one validator for numeric option values, and the
// mapping of exceptions to one-line errors and exit codes.
//
// A tool is written like this:
//
//   int thin_foo_main(std::vector<std::string> args) {
//     cli::command cmd("thin_foo", foo_usage);  // -h/--help and -V/--version come built in
//     bool quiet = false;
//     std::optional<uint64_t> root;
//     std::vector<std::string> inputs;
//     cmd.flag("-q,--quiet", quiet);
//     cmd.number("--root", root);               // decimal, in range, non-empty
//     cmd.positionals("input", inputs);
//     if (auto rc = cmd.parse(args)) return *rc;  // help, version and usage errors end here
//     if (inputs.size() != 1) return cmd.usage_fail("give one input");
//     return cmd.run(inputs[0], [&] {           // exceptions become one line, exit 1
//       thin::foo(*open_metadata(inputs[0], {}), ...);
//       return exit_ok;
//     });
//   }
//
// Conventions it keeps (thin-provisioning-tools 0.9.0's):
//   - `tool -h` / `--help` prints the usage text on stdout, exit 0;
//     `-V` / `--version` prints the bare version, exit 0.
//   - A command-line mistake (unknown option, missing value, a bad number)
//     prints "tool: message" and the usage text on stderr, exit 1.
//   - Every later failure is one line, "tool: subject: message" (subject is
//     the file concerned), exit 1; never 2 (lvm2 reads 2 as "tool missing").
//     tools::usage_error prints "tool: message" without the subject; the
//     reader going away (thin::broken_pipe) ends quietly with exit 0.
//   - Numbers: plain decimal digits only (no sign, no 0x, no spaces, not
//     empty), within the option's range; otherwise "--option: 'value' ...".
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <getopt.h>

#include "progress_meter.h"
#include "thin/ir/emitter.h"
#include "tool_support.h"

namespace tools::cli {

// The one validator: `text` as a decimal number in [min, max]. Throws
// usage_error naming `option` and the value.
uint64_t parse_number(const std::string &option, const std::string &text, uint64_t min = 0,
                      uint64_t max = std::numeric_limits<uint64_t>::max());

class command {
 public:
  // `name` starts every error line ("thin_check", "thinkit simulate");
  // `usage` is what --help prints. `with_version` adds -V/--version.
  command(std::string name, std::string usage, bool with_version = true);

  const std::string &name() const { return name_; }
  CLI::App &app() { return app_; }  // for CLI11 settings the helpers below do not cover

  CLI::Option *flag(const std::string &names, bool &target) { return app_.add_flag(names, target); }
  CLI::Option *option(const std::string &names, std::string &target) { return app_.add_option(names, target); }
  // A string option given any number of times, one value each (getopt's way:
  // `--region 1..2 FILE` must not swallow FILE).
  CLI::Option *repeated(const std::string &names, std::vector<std::string> &target) {
    return app_.add_option(names, target)->take_all()->allow_extra_args(false);
  }
  CLI::Option *positionals(const std::string &name, std::vector<std::string> &target) {
    return app_.add_option(name, target);
  }

  // Numeric options, all through parse_number. The range defaults to what
  // the target type holds; a std::optional stays empty when the option is
  // absent; a vector takes the option any number of times (one value each).
  // They return the CLI11 option (e.g. to set a multi_option_policy).
  template <typename T>
  CLI::Option *number(const std::string &names, T &target, uint64_t min = 0,
                      uint64_t max = std::numeric_limits<T>::max()) {
    return add_number(names, false, min, max, [&target](uint64_t v) { target = static_cast<T>(v); });
  }
  template <typename T>
  CLI::Option *number(const std::string &names, std::optional<T> &target, uint64_t min = 0,
                      uint64_t max = std::numeric_limits<T>::max()) {
    return add_number(names, false, min, max, [&target](uint64_t v) { target = static_cast<T>(v); });
  }
  template <typename T>
  CLI::Option *number(const std::string &names, std::vector<T> &target, uint64_t min = 0,
                      uint64_t max = std::numeric_limits<T>::max()) {
    return add_number(names, true, min, max, [&target](uint64_t v) { target.push_back(static_cast<T>(v)); });
  }

  // --transaction-id, --data-block-size and --nr-data-blocks.
  void superblock_overrides(thin::superblock_overrides &o);

  // -m / --metadata-snap with an optional block number attached (-m123,
  // --metadata-snap=123), as getopt's optional arguments work.
  void metadata_snap(bool &present, std::optional<uint64_t> &block);

  // getopt_long parsing instead of CLI11's, for a command line that must
  // behave as 0.9.0's getopt one does (option order matters, optional
  // arguments, getopt's own messages): `on_option(c, optarg)` is called for
  // each option and returns an exit code to end with, or nothing. 'h' and 'V'
  // (give them in `shortopts`/`longopts`) print the usage / the version; an
  // option getopt refuses ends with exit_failure after getopt's message.
  using getopt_handler = std::function<std::optional<int>(int c, const char *arg)>;
  std::optional<int> parse_getopt(std::vector<std::string> args, const char *shortopts, const ::option *longopts,
                                  const getopt_handler &on_option);

  // What separates the name from an error message (": "; 0.9.0's
  // thin_metadata_size uses " - ").
  void error_separator(std::string sep) { sep_ = std::move(sep); }

  // Progress on a terminal (progress_meter.h) for a tool whose work can be
  // long: call progress_option() before parse() (it adds the hidden
  // --progress-delay-ms, for tests: 0 shows progress at once), and meter()
  // after it. meter() is nullptr (nothing shown) with `quiet` or when stderr
  // is not a terminal. `keep_final_line` false: the line is erased when the
  // work ends (results follow on stdout).
  void progress_option();
  std::unique_ptr<progress_meter> meter(bool quiet, bool keep_final_line = true) const;

  // Errors after parsing are silent while `quiet` is true (thin_check -q).
  void errors_follow(const bool &quiet) { quiet_ = &quiet; }

  // Parses args (args[0] is the program). Returns the exit code when the tool
  // must end now (help, version, a command-line mistake), else nothing.
  std::optional<int> parse(std::vector<std::string> args);

  // "name: message" on stderr; returns exit_failure.
  int fail(const std::string &message) const;
  // The same, followed by the usage text.
  int usage_fail(const std::string &message) const;

  // Runs `body` and returns its exit code; an exception becomes one line
  // (see above) naming `subject`, and exit_failure.
  int run(const std::string &subject, const std::function<int()> &body) const;

 private:
  struct number_slot {
    std::string label;
    std::vector<std::string> texts;
    std::string text;
    CLI::Option *opt = nullptr;
    bool repeat = false;
    uint64_t min = 0, max = 0;
    std::function<void(uint64_t)> store;
  };
  CLI::Option *add_number(const std::string &names, bool repeat, uint64_t min, uint64_t max,
                          std::function<void(uint64_t)> store);
  bool silent() const { return quiet_ && *quiet_; }

  std::string name_, usage_, sep_ = ": ";
  CLI::App app_;
  bool help_ = false, version_ = false;
  const bool *quiet_ = nullptr;
  uint64_t progress_delay_ms_ = 2000;
  std::deque<number_slot> numbers_;
  bool *snap_present_ = nullptr;
  std::optional<uint64_t> *snap_block_ = nullptr;
};

}  // namespace tools::cli
