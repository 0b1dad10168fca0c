// thin_dump: print thin-pool metadata as XML or human-readable text. Parses
// options into thin::dump_options, runs thin::dump_metadata through the chosen
// emitter, maps the result to an exit code.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include <boost/iostreams/filter/gzip.hpp>
#include <boost/iostreams/filtering_stream.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "persistent-data/errors.h"
#include "thin/dump/dump.h"
#include "thin/repair/repair.h"
#include "thin/format/superblock.h"
#include "tool_support.h"

namespace tools {

namespace {

const char *dump_usage =
    "Usage: thin_dump [options] {device|file}\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-f|--format} {xml|human_readable}\n"
    "  {-r|--repair}\n"
    "  {-m|--metadata-snap} [block#]\n"
    "  {-o|--output} <xml file>\n"
    "  {--dev-id} <dev-id>\n"
    "  {--skip-mappings}\n"
    "  {--transaction-id} <natural>\n"
    "  {--data-block-size} <natural>\n"
    "  {--nr-data-blocks} <natural>\n"
    "  {-q|--quiet}\n"
    "  {-V|--version}\n";

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int thin_dump_main(std::vector<std::string> args) {
  thin::dump_options opts;
  thin::superblock_overrides overrides;
  bool quiet = false, help = false, version = false, snap_flag = false, repair = false;
  std::string format = "xml", output, tid, dbs, ndb, snap_value;
  std::vector<std::string> dev_ids, inputs;

  const bool snap = take_optional_metadata_snap(args, snap_value);

  CLI::App app{"thin_dump"};
  app.set_help_flag();
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_flag("-q,--quiet", quiet);
  app.add_flag("-r,--repair", repair);
  app.add_flag("--metadata-snap-placeholder", snap_flag);  // -m is taken out before parsing
  app.add_option("-f,--format", format);
  app.add_option("-o,--output", output);
  // One value per occurrence (repeatable), as getopt does: `--dev-id 1 FILE`
  // must not swallow FILE as a second id.
  app.add_option("--dev-id", dev_ids)->take_all()->allow_extra_args(false);
  app.add_flag("--skip-mappings", opts.skip_mappings);
  app.add_option("--transaction-id", tid);
  app.add_option("--data-block-size", dbs);
  app.add_option("--nr-data-blocks", ndb);
  app.add_option("input", inputs);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_dump: " << e.what() << "\n" << dump_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << dump_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  auto fail = [&](const std::string &msg) {
    std::cerr << "thin_dump: " << msg << "\n";
    return exit_failure;
  };

  try {
    if (inputs.empty()) {
      std::cerr << "thin_dump: no input file provided\n" << dump_usage;
      return exit_failure;
    }
    if (inputs.size() > 1) throw usage_error(fmt::format("only one input may be given (got {})", inputs.size()));
    if (format != "xml" && format != "human_readable")
      throw usage_error(fmt::format("unknown format '{}' (xml or human_readable)", format));
    opts.use_metadata_snap = snap;
    if (!snap_value.empty()) opts.metadata_snap_location = parse_u64(snap_value, "--metadata-snap");
    for (auto &d : dev_ids) opts.dev_ids.insert(parse_u64(d, "--dev-id"));
    if (!tid.empty()) overrides.transaction_id = parse_u64(tid, "--transaction-id");
    if (!dbs.empty()) {
      uint64_t v = parse_u64(dbs, "--data-block-size");
      if (v > UINT32_MAX) throw usage_error("--data-block-size: value too large");
      overrides.data_block_size = static_cast<uint32_t>(v);
    }
    if (!ndb.empty()) overrides.nr_data_blocks = parse_u64(ndb, "--nr-data-blocks");

    const std::string &path = inputs[0];
    if (!output.empty() && output != "-" && same_file(path, output))
      throw usage_error(fmt::format("{}: output and input are the same file; refusing to overwrite the metadata",
                                    output));
    auto io = open_metadata(path, {false, !snap});

    // Output: standard output, a file (fsynced at the end), or gzip for *.gz.
    int fd = STDOUT_FILENO;
    bool to_file = !output.empty() && output != "-";
    std::unique_ptr<thin::text_sink> sink;
    std::unique_ptr<std::ofstream> gz_file;
    std::unique_ptr<boost::iostreams::filtering_ostream> gz;
    if (to_file && ends_with(output, ".gz")) {
      gz_file = std::make_unique<std::ofstream>(output, std::ios::binary | std::ios::trunc);
      if (!*gz_file) throw usage_error(fmt::format("{}: cannot create: {}", output, std::strerror(errno)));
      gz = std::make_unique<boost::iostreams::filtering_ostream>();
      gz->push(boost::iostreams::gzip_compressor());
      gz->push(*gz_file);
      sink = std::make_unique<thin::ostream_sink>(*gz);
    } else {
      if (to_file) {
        fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) throw usage_error(fmt::format("{}: cannot create: {}", output, std::strerror(errno)));
      }
      sink = std::make_unique<thin::fd_sink>(fd, to_file);
    }

    std::unique_ptr<thin::emitter> inner = format == "xml" ? thin::make_xml_emitter(*sink)
                                                           : thin::make_human_readable_emitter(*sink);
    auto e = thin::make_override_emitter(*inner, overrides);
    try {
      if (repair) {
        if (snap) throw usage_error("--repair cannot be combined with --metadata-snap");
        thin::repair_options ro;
        ro.overrides = overrides;
        thin::repair_report report;
        thin::repair_dump(*io, ro, *e, report);
        if (!quiet) std::cerr << report.text();
      } else {
        thin::dump_metadata(*io, opts, *e);
      }
      sink->flush();
      if (gz) {
        gz->reset();  // completes the gzip trailer
        gz_file->flush();
        gz_file->close();
        if (!*gz_file) throw pdata::io_error("writing the compressed output failed");
      }
    } catch (const thin::metadata_error &err) {
      try {
        sink->flush();
      } catch (...) {
      }
      if (to_file && !gz) ::close(fd);
      if (looks_like_xml(*io))
        throw usage_error(fmt::format("{}: this looks like XML; thin_dump reads binary metadata", path));
      throw usage_error(fmt::format("{}: {}", path, err.what()));
    }
    if (to_file && !gz && ::close(fd) != 0)
      throw pdata::io_error(fmt::format("{}: close failed: {}", output, std::strerror(errno)));
    return exit_ok;
  } catch (const thin::broken_pipe &) {
    return exit_ok;  // the reader went away (thin_dump | head): end quietly
  } catch (const usage_error &e) {
    return fail(e.what());
  } catch (const std::exception &e) {
    return fail(fmt::format("{}: {}", inputs.empty() ? std::string("?") : inputs[0], e.what()));
  }
}

}  // namespace tools
