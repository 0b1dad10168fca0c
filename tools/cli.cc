// The shared command-line skeleton (see cli.h).
#include "cli.h"

#include <algorithm>
#include <cstring>
#include <iostream>

#include <fmt/format.h>

#include "persistent-data/errors.h"
#include "thin/ir/text_sink.h"

namespace tools::cli {

uint64_t parse_number(const std::string &option, const std::string &text, uint64_t min, uint64_t max) {
  if (text.empty()) throw usage_error(fmt::format("{}: '' is not a number (the value is empty)", option));
  if (text.find_first_not_of("0123456789") != std::string::npos)
    throw usage_error(fmt::format("{}: '{}' is not a non-negative decimal number", option, text));
  uint64_t v = 0;
  for (char c : text) {
    const auto digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10)
      throw usage_error(fmt::format("{}: '{}' is too large (at most {})", option, text, max));
    v = v * 10 + digit;
  }
  if (v > max) throw usage_error(fmt::format("{}: '{}' is too large (at most {})", option, text, max));
  if (v < min) throw usage_error(fmt::format("{}: '{}' is too small (at least {})", option, text, min));
  return v;
}

command::command(std::string name, std::string usage, bool with_version)
    : name_(std::move(name)), usage_(std::move(usage)), app_(name_) {
  app_.set_help_flag();
  app_.allow_extras(false);
  app_.add_flag("-h,--help", help_);
  if (with_version) app_.add_flag("-V,--version", version_);
}

CLI::Option *command::add_number(const std::string &names, bool repeat, uint64_t min, uint64_t max,
                                 std::function<void(uint64_t)> store) {
  number_slot &s = numbers_.emplace_back();
  s.repeat = repeat;
  s.min = min;
  s.max = max;
  s.store = std::move(store);
  // Errors name the first long form ("--snap1" for "--snap1,--thin1").
  s.label = names.substr(0, names.find(','));
  for (std::size_t at = 0; at < names.size();) {
    std::size_t end = std::min(names.find(',', at), names.size());
    std::string one = names.substr(at, end - at);
    if (one.rfind("--", 0) == 0) {
      s.label = one;
      break;
    }
    at = end + 1;
  }
  if (repeat)
    // One value per occurrence, as getopt does: `--dev-id 1 FILE` must not
    // swallow FILE as a second value.
    s.opt = app_.add_option(names, s.texts)->take_all()->allow_extra_args(false);
  else
    s.opt = app_.add_option(names, s.text);
  return s.opt;
}

void command::superblock_overrides(thin::superblock_overrides &o) {
  number("--transaction-id", o.transaction_id);
  number("--data-block-size", o.data_block_size);
  number("--nr-data-blocks", o.nr_data_blocks);
}

void command::progress_option() {
  // Hidden (no usage text names it): for tests under a pseudo-terminal.
  number("--progress-delay-ms", progress_delay_ms_, 0, 3600 * 1000);
}

std::unique_ptr<progress_meter> command::meter(bool quiet, bool keep_final_line) const {
  progress_timing t;
  t.delay = std::chrono::milliseconds(progress_delay_ms_);
  t.keep_final_line = keep_final_line;
  return stderr_meter(quiet, t);
}

void command::metadata_snap(bool &present, std::optional<uint64_t> &block) {
  snap_present_ = &present;
  snap_block_ = &block;
}

namespace {

// Takes -m, -mN, --metadata-snap and --metadata-snap=N out of args (before
// "--"); `value` is set when a block was attached.
bool take_metadata_snap(std::vector<std::string> &args, std::optional<std::string> &value) {
  bool present = false, options_done = false;
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); i++) {
    const std::string &a = args[i];
    if (i == 0 || options_done || a.size() < 2 || a[0] != '-') {
      rest.push_back(a);
    } else if (a == "--") {
      options_done = true;
      rest.push_back(a);
    } else if (a == "-m" || a == "--metadata-snap") {
      present = true;
    } else if (a.rfind("--metadata-snap=", 0) == 0) {
      present = true;
      value = a.substr(std::strlen("--metadata-snap="));
    } else if (a[1] == 'm') {
      present = true;
      value = a.substr(2);
    } else {
      rest.push_back(a);
    }
  }
  args.swap(rest);
  return present;
}

}  // namespace

std::optional<int> command::parse(std::vector<std::string> args) {
  try {
    std::optional<std::string> snap_value;
    if (snap_present_) *snap_present_ = take_metadata_snap(args, snap_value);
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);  // CLI11 takes them reversed
    app_.parse(rev);
    if (help_) {
      std::cout << usage_;
      return exit_ok;
    }
    if (version_) {
      std::cout << version_string() << "\n";
      return exit_ok;
    }
    for (auto &s : numbers_) {
      if (!s.opt->count()) continue;
      if (s.repeat)
        for (auto &t : s.texts) s.store(parse_number(s.label, t, s.min, s.max));
      else
        s.store(parse_number(s.label, s.text, s.min, s.max));
    }
    if (snap_value) *snap_block_ = parse_number("--metadata-snap", *snap_value);
    return std::nullopt;
  } catch (const CLI::ParseError &e) {
    std::cerr << name_ << ": " << e.what() << "\n" << usage_;
  } catch (const usage_error &e) {
    std::cerr << name_ << ": " << e.what() << "\n" << usage_;
  }
  return exit_failure;
}

std::optional<int> command::parse_getopt(std::vector<std::string> args, const char *shortopts,
                                         const ::option *longopts, const getopt_handler &on_option) {
  std::vector<char *> argv;
  for (auto &a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  optind = 0;  // a fresh scan (glibc)
  int c;
  while ((c = getopt_long(static_cast<int>(args.size()), argv.data(), shortopts, longopts, nullptr)) != -1) {
    if (c == 'h' || c == 'V') {
      std::cout << (c == 'h' ? usage_ : std::string(version_string()) + "\n");
      return exit_ok;
    }
    if (c == '?' || c == ':') return exit_failure;  // getopt said what was wrong
    if (auto rc = on_option(c, optarg)) return rc;
  }
  return std::nullopt;
}

int command::fail(const std::string &message) const {
  if (!silent()) std::cerr << name_ << sep_ << message << "\n";
  return exit_failure;
}

int command::usage_fail(const std::string &message) const {
  if (!silent()) std::cerr << name_ << sep_ << message << "\n" << usage_;
  return exit_failure;
}

int command::run(const std::string &subject, const std::function<int()> &body) const {
  auto about = [&](const char *what) { return subject.empty() ? std::string(what) : subject + ": " + what; };
  try {
    return body();
  } catch (const thin::broken_pipe &) {
    return exit_ok;  // the reader went away (tool | head): end quietly
  } catch (const usage_error &e) {
    return fail(e.what());
  } catch (const pdata::internal_error &e) {
    return fail(about(e.what()) + " (an internal error: a bug in thinkit)");
  } catch (const std::exception &e) {
    // I/O failures, damaged metadata and bad input all name the subject.
    return fail(about(e.what()));
  }
}

}  // namespace tools::cli
