// thin_extract: write the contents of thin devices, read offline from a
// pool's data device through its metadata (binary, even damaged, or thin_dump
// XML), to files or block devices. Parses options into thin::extract_options,
// opens the paths, runs thin::extract_from_metadata / extract_from_xml, prints
// what was lost, maps the result to an exit code.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "persistent-data/errors.h"
#include "thin/extract/extract.h"
#include "thin/format/superblock.h"
#include "thin/ir/xml_parser.h"
#include "tool_support.h"

namespace tools {

namespace {

const char *extract_usage =
    "Usage: thin_extract [options] --data-dev {device|file} {--dev-id <id> | --all} -o {file|device|dir} "
    "<metadata device or file>\n"
    "Options:\n"
    "  {--data-dev} <the pool's data device or file>\n"
    "  {--dev-id} <thin device id>\n"
    "  {--all}                 every device, to <dir>/<dev id>\n"
    "  {-o|--output} <file or block device; a directory with --all>\n"
    "  {--size} <bytes>        default: the end of the last mapped block\n"
    "  {--xml}                 the metadata is thin_dump XML\n"
    "  {-m|--metadata-snap} [block#]\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n";

uint64_t device_size(int fd, const struct stat &st, const std::string &path) {
  if (!S_ISBLK(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  uint64_t size = 0;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0)
    throw usage_error(fmt::format("{}: cannot read the device size: {}", path, std::strerror(errno)));
  return size;
}

// The data device; errors name its path.
class data_device : public thin::data_reader {
 public:
  // `exclusive`: O_EXCL on a block device, so an active pool's data device
  // (which the kernel holds) is refused.
  data_device(const std::string &path, bool exclusive) : path_(path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
      throw usage_error(fmt::format("{}: not a regular file or block device", path));
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (S_ISBLK(st.st_mode) && exclusive ? O_EXCL : 0));
    if (fd_ < 0 && errno == EBUSY)
      throw usage_error(fmt::format("{}: device is in use (is the pool active? use -m to read through a metadata "
                                    "snapshot)",
                                    path));
    if (fd_ < 0) throw usage_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    reader_ = std::make_unique<thin::fd_data_reader>(fd_, device_size(fd_, st, path));
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~data_device() override { ::close(fd_); }
  uint64_t size() const override { return reader_->size(); }
  void read_at(uint64_t off, void *buf, std::size_t len) override {
    try {
      reader_->read_at(off, buf, len);
    } catch (const std::exception &e) {
      throw std::runtime_error(fmt::format("{}: {}", path_, e.what()));
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::unique_ptr<thin::fd_data_reader> reader_;
};

// An output opened by path; errors name it.
class output_volume : public thin::volume_writer {
 public:
  output_volume(const std::string &path, const std::string &data, const std::string &metadata) : path_(path) {
    if (same_file(path, data)) throw usage_error(fmt::format("{}: the output is the data device", path));
    if (same_file(path, metadata)) throw usage_error(fmt::format("{}: the output is the metadata", path));
    struct stat st;
    const bool exists = ::stat(path.c_str(), &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) throw usage_error(fmt::format("{}: is a directory (use --all)", path));
    const bool regular = !exists || S_ISREG(st.st_mode);
    int flags = O_WRONLY | O_CLOEXEC;
    if (regular) flags |= O_CREAT | O_TRUNC;
    if (exists && S_ISBLK(st.st_mode)) flags |= O_EXCL;
    fd_ = ::open(path.c_str(), flags, 0600);
    if (fd_ < 0) throw usage_error(fmt::format("{}: cannot open for writing: {}", path, std::strerror(errno)));
    std::optional<uint64_t> capacity;
    if (exists && S_ISBLK(st.st_mode)) capacity = device_size(fd_, st, path);
    writer_ = std::make_unique<thin::fd_volume_writer>(fd_, regular, capacity);
  }
  ~output_volume() override { ::close(fd_); }
  void write_at(uint64_t off, const void *buf, std::size_t len) override {
    named([&] { writer_->write_at(off, buf, len); });
  }
  bool needs_zeros() const override { return writer_->needs_zeros(); }
  std::optional<uint64_t> capacity() const override { return writer_->capacity(); }
  void finish(uint64_t size) override {
    named([&] { writer_->finish(size); });
  }

 private:
  template <typename F>
  void named(F f) {
    try {
      f();
    } catch (const std::exception &e) {
      throw std::runtime_error(fmt::format("{}: {}", path_, e.what()));
    }
  }
  std::string path_;
  int fd_ = -1;
  std::unique_ptr<thin::fd_volume_writer> writer_;
};

// True when a regular file starts (after white space) like thin_dump XML.
bool file_looks_like_xml(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(512, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(in.gcount()));
  const auto start = head.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return false;
  return head.compare(start, 5, "<?xml") == 0 || head.compare(start, 11, "<superblock") == 0;
}

}  // namespace

int thin_extract_main(std::vector<std::string> args) {
  thin::extract_options opts;
  bool help = false, version = false, all = false, xml = false;
  std::string data_path, output, dev_id, size, snap_value;
  std::vector<std::string> inputs;

  const bool snap = take_optional_metadata_snap(args, snap_value);

  CLI::App app{"thin_extract"};
  app.set_help_flag();
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_option("--data-dev", data_path)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--dev-id", dev_id)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--all", all);
  app.add_option("-o,--output", output)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--size", size)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--xml", xml);
  app.add_option("input", inputs);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_extract: " << e.what() << "\n" << extract_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << extract_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  auto usage_fail = [](const std::string &msg) {
    std::cerr << "thin_extract: " << msg << "\n" << extract_usage;
    return exit_failure;
  };
  if (inputs.empty()) return usage_fail("no metadata given");
  if (inputs.size() > 1) return usage_fail(fmt::format("only one metadata input may be given (got {})", inputs.size()));
  if (data_path.empty()) return usage_fail("no data device given (--data-dev)");
  if (output.empty()) return usage_fail("no output given (-o)");
  if (all == !dev_id.empty()) return usage_fail("give exactly one of --dev-id and --all");
  if (xml && snap) return usage_fail("--metadata-snap reads binary metadata; it cannot be used with --xml");

  const std::string &meta_path = inputs[0];
  try {
    if (!all) opts.dev_id = cli::parse_number("--dev-id", dev_id);
    if (!size.empty()) opts.size = cli::parse_number("--size", size);
    opts.use_metadata_snap = snap;
    if (!snap_value.empty()) opts.metadata_snap_location = cli::parse_number("--metadata-snap", snap_value);
    if (same_file(data_path, meta_path))
      throw usage_error(fmt::format("{}: the data device and the metadata are the same file", data_path));
    if (all) {
      struct stat st;
      if (::stat(output.c_str(), &st) != 0 && ::mkdir(output.c_str(), 0700) != 0)
        throw usage_error(fmt::format("{}: cannot create the directory: {}", output, std::strerror(errno)));
      if (::stat(output.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw usage_error(fmt::format("{}: not a directory (--all writes one file per device into it)", output));
    }

    data_device data(data_path, !snap);
    thin::open_volume open = [&](uint64_t id) -> std::unique_ptr<thin::volume_writer> {
      return std::make_unique<output_volume>(all ? fmt::format("{}/{}", output, id) : output, data_path, meta_path);
    };

    thin::extract_report report;
    if (xml) {
      std::ifstream in(meta_path, std::ios::binary);
      if (!in) throw usage_error(fmt::format("{}: cannot open: {}", meta_path, std::strerror(errno)));
      try {
        report = thin::extract_from_xml(in, data, opts, open);
      } catch (const thin::xml_error &e) {
        try {
          std::rethrow_if_nested(e);
        } catch (const std::exception &inner) {
          throw usage_error(inner.what());
        }
        throw usage_error(fmt::format("{}: {}", meta_path, e.what()));
      }
    } else {
      if (file_looks_like_xml(meta_path))
        throw usage_error(fmt::format("{}: this looks like thin_dump XML; give --xml", meta_path));
      auto io = open_metadata(meta_path, {false, !snap});
      report = thin::extract_from_metadata(*io, data, opts, open);
    }

    for (auto &d : report.devices)
      if (d.beyond_size_blocks)
        std::cerr << fmt::format("thin_extract: device {}: {} mapped blocks lie at or beyond --size; not written\n",
                                 d.dev_id, d.beyond_size_blocks);
    for (auto &line : report.lost_lines()) std::cerr << "thin_extract: " << line << "\n";
    return report.lost.empty() ? exit_ok : exit_failure;
  } catch (const usage_error &e) {
    std::cerr << "thin_extract: " << e.what() << "\n";
    return exit_failure;
  } catch (const thin::metadata_error &e) {
    std::cerr << "thin_extract: " << meta_path << ": " << e.what() << "\n";
    return exit_failure;
  } catch (const pdata::io_error &e) {
    std::cerr << "thin_extract: " << meta_path << ": " << e.what() << "\n";
    return exit_failure;
  } catch (const std::exception &e) {
    std::cerr << "thin_extract: " << e.what() << "\n";
    return exit_failure;
  }
}

}  // namespace tools
