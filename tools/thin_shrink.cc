// thin_shrink: shrink a pool's data device offline (thin-provisioning-tools
// 1.x's command line): mappings above the new size move into free blocks
// below it, their data is copied on the data device, and new metadata is
// written to the output. XML in and out by default, binary metadata with
// --binary. Parses options, runs thin::shrink_xml or thin::shrink_metadata,
// maps the result to an exit code.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "thin/format/superblock.h"
#include "thin/ir/xml_parser.h"
#include "thin/shrink/shrink.h"
#include "tool_support.h"

namespace tools {

namespace {

const char *shrink_usage =
    "Usage: thin_shrink [options]\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-i|--input} <XML file, or metadata device or file with --binary>\n"
    "  {-o|--output} <XML file, or metadata device or file with --binary>\n"
    "  {--data} <the pool's data device>\n"
    "  {--nr-blocks} <the new size, in data blocks>\n"
    "  {--binary}  read and write binary metadata rather than XML\n"
    "  {--no-copy}  rewrite the metadata only; move no data\n"
    "  {-V|--version}\n";

// The XML output file, created only when the first byte is ready (a shrink
// refused while planning leaves no output behind); fsynced by flush().
class lazy_file_sink : public thin::text_sink {
 public:
  explicit lazy_file_sink(std::string path) : path_(std::move(path)) {}
  ~lazy_file_sink() override {
    sink_.reset();
    if (fd_ >= 0) ::close(fd_);
  }
  void write(const char *data, std::size_t len) override { open().write(data, len); }
  void flush() override { open().flush(); }

 private:
  thin::text_sink &open() {
    if (!sink_) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd_ < 0) throw usage_error(fmt::format("{}: cannot open: {}", path_, std::strerror(errno)));
      sink_ = std::make_unique<thin::fd_sink>(fd_, true);
    }
    return *sink_;
  }
  std::string path_;
  int fd_ = -1;
  std::unique_ptr<thin::fd_sink> sink_;
};

}  // namespace

int thin_shrink_main(std::vector<std::string> args) {
  bool binary = false, no_copy = false;
  std::string input, output, data_path;
  std::optional<uint64_t> nr_blocks;
  cli::command cmd("thin_shrink", shrink_usage);
  cmd.option("-i,--input", input);
  cmd.option("-o,--output", output);
  cmd.option("--data", data_path);
  cmd.number("--nr-blocks", nr_blocks);
  cmd.flag("--binary", binary);
  cmd.flag("--no-copy", no_copy);
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;
  if (input.empty()) return cmd.fail("no input file provided (-i FILE)");
  if (output.empty()) return cmd.fail("no output file provided (-o FILE)");
  if (!nr_blocks) return cmd.fail("no new size given (--nr-blocks N)");
  if (data_path.empty() && !no_copy) return cmd.fail("no data device given (--data DEVICE)");

  return cmd.run("", [&] {
    thin::shrink_options opts;
    opts.nr_blocks = *nr_blocks;
    opts.copy_data = !no_copy;
    if (same_file(input, output)) throw usage_error(fmt::format("{}: input and output are the same file", output));
    if (!data_path.empty() && (same_file(data_path, input) || same_file(data_path, output)))
      throw usage_error(fmt::format("{}: the data device is also the input or the output", data_path));

    std::unique_ptr<pdata::block_io> data;
    if (opts.copy_data) data = open_metadata(data_path, {true, true});
    auto meter = cmd.meter(false);  // progress on a terminal: the data copy
    opts.progress = meter.get();
    try {
      if (binary) {
        auto in = open_metadata(input, {false, true});
        if (looks_like_xml(*in))
          throw usage_error(fmt::format("{}: this looks like XML; leave out --binary to shrink XML", input));
        auto out = open_metadata(output, {true, true});
        thin::shrink_metadata(*in, data.get(), *out, opts);
      } else {
        struct stat st;
        if (::stat(input.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", input, std::strerror(errno)));
        if (!S_ISREG(st.st_mode)) throw usage_error(fmt::format("{}: not a regular file", input));
        auto open_input = [&]() -> std::unique_ptr<std::istream> {
          auto f = std::make_unique<std::ifstream>(input, std::ios::binary);
          if (!*f) throw usage_error(fmt::format("{}: cannot open: {}", input, std::strerror(errno)));
          return f;
        };
        lazy_file_sink out(output);
        thin::shrink_xml(open_input, data.get(), out, opts);
      }
    } catch (const thin::metadata_error &e) {
      throw usage_error(fmt::format("{}: {}", input, e.what()));
    } catch (const thin::xml_error &e) {
      throw usage_error(fmt::format("{}: {}", input, e.what()));
    } catch (const thin::shrink_error &e) {
      throw usage_error(fmt::format("{}: {}", input, e.what()));
    }
    return exit_ok;
  });
}

}  // namespace tools
