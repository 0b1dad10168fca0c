// thin_trim: discard the data-device ranges a pool's metadata does not use,
// with thin_trim 0.9.0's command line. Opens both devices, runs
// thin::trim_data_device (which checks the metadata first and discards
// nothing when it is damaged), maps the result to an exit code.
#include <fcntl.h>
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "persistent-data/errors.h"
#include "thin/format/superblock.h"
#include "thin/trim/trim.h"
#include "tool_support.h"

namespace tools {

namespace {

// 0.9.0's usage text.
const char *trim_usage =
    "Usage: thin_trim [options] --metadata-dev {device|file} --data-dev {device|file}\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n";

// The data device, opened for discards (O_EXCL on a block device).
class data_device {
 public:
  explicit data_device(const std::string &path) {
    device_open how;
    how.flags = O_WRONLY;
    how.blockdev_flags = O_EXCL;
    how.busy = "device is in use (is the pool active?)";
    how.cannot = "cannot open for writing";
    const auto [fd, size, blockdev] = open_device(path, how);
    fd_ = fd;
    target_ = std::make_unique<thin::fd_discard_target>(fd_, size, blockdev);
  }
  ~data_device() { ::close(fd_); }
  thin::discard_target &target() { return *target_; }

 private:
  int fd_ = -1;
  std::unique_ptr<thin::fd_discard_target> target_;
};

}  // namespace

int thin_trim_main(std::vector<std::string> args) {
  bool pool_inactive = false;
  std::string meta_path, data_path;
  std::vector<std::string> extra;
  cli::command cmd("thin_trim", trim_usage);
  cmd.option("--metadata-dev", meta_path)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd.option("--data-dev", data_path)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // 0.9.0 still accepts it; the metadata device is opened exclusively anyway.
  cmd.flag("--pool-inactive", pool_inactive);
  cmd.positionals("extra", extra);
  cmd.progress_option();
  if (auto rc = cmd.parse(args)) return *rc;

  if (meta_path.empty()) return cmd.usage_fail("no metadata device given (--metadata-dev)");
  if (data_path.empty()) return cmd.usage_fail("no data device given (--data-dev)");
  if (!extra.empty()) return cmd.usage_fail(fmt::format("unexpected argument '{}'", extra[0]));

  return cmd.run(meta_path, [&] {
    if (same_file(meta_path, data_path))
      throw usage_error(fmt::format("{}: the metadata and the data device are the same file", data_path));
    auto io = open_metadata(meta_path, {false, true});
    data_device data(data_path);
    thin::trim_result r;
    auto meter = cmd.meter(false);  // progress on a terminal
    try {
      r = thin::trim_data_device(*io, data.target(), meter.get());
    } catch (const thin::metadata_error &e) {
      throw usage_error(fmt::format("{}: {}", meta_path, e.what()));
    } catch (const pdata::io_error &e) {
      throw usage_error(fmt::format("{}: {}", meta_path, e.what()));
    } catch (const std::exception &e) {
      throw usage_error(fmt::format("{}: {}", data_path, e.what()));
    }
    if (r.refused) {
      std::cerr << "thin_trim: nothing was discarded: " << r.problems.front() << "\n";
      for (std::size_t i = 1; i < r.problems.size(); i++) std::cerr << "thin_trim:   " << r.problems[i] << "\n";
      if (r.nr_data_blocks == 0)
        std::cerr << "thin_trim: " << meta_path << ": the metadata is damaged; run thin_check\n";
      return exit_failure;
    }
    return exit_ok;
  });
}

}  // namespace tools
