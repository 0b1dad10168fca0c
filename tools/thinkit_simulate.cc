// thinkit simulate: the reference engine's built-in power-cut scenario (see
// lib/thin/simulate.h). Writes DIR/meta.img, DIR/data.img (the state after
// the cut) and DIR/log.img (the dm-log-writes log of both devices, metadata
// region first) for thin_audit, thin_check and thin_dump.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "log-writes/byte_io.h"
#include "engine/simulate.h"

namespace tools {

namespace {

const char *simulate_usage =
    "Usage: thinkit simulate [options] --out DIR\n"
    "Runs a built-in workload (snapshots, copy-on-write, zeroing) on the reference\n"
    "thin engine with volatile write caches, cuts the power, and leaves\n"
    "DIR/meta.img, DIR/data.img and DIR/log.img (dm-log-writes).\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {--ordering} {corrected|legacy}\n"
    "  {--meta-size} <MiB, default 8>\n"
    "  {--data-size} <MiB, default 32>\n"
    "  {--out} <directory>\n"
    "  {-q|--quiet}\n";

int create_file(const std::string &path, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw usage_error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    throw usage_error(fmt::format("{}: cannot size: {}", path, std::strerror(errno)));
  }
  return fd;
}

}  // namespace

int thinkit_simulate_main(std::vector<std::string> args) {
  bool quiet = false;
  std::string ordering = "corrected", out;
  uint64_t meta_mib = 8, data_mib = 32;
  cli::command cmd("thinkit simulate", simulate_usage, false);
  cmd.flag("-q,--quiet", quiet);
  cmd.option("--ordering", ordering);
  cmd.number("--meta-size", meta_mib, 1, 16000);
  cmd.number("--data-size", data_mib, 4, 65536);
  cmd.option("--out", out);
  if (auto rc = cmd.parse(args)) return *rc;

  if (ordering != "corrected" && ordering != "legacy")
    return cmd.fail(fmt::format("--ordering: '{}' is not corrected or legacy", ordering));
  if (out.empty()) return cmd.fail("--out DIR is required");
  return cmd.run("", [&] {
    if (::mkdir(out.c_str(), 0755) != 0 && errno != EEXIST)
      throw usage_error(fmt::format("{}: cannot create: {}", out, std::strerror(errno)));
    const uint64_t meta_size = meta_mib << 20, data_size = data_mib << 20;
    pdata::file_block_io meta(create_file(out + "/meta.img", meta_size), meta_size, true);
    pdata::file_block_io data(create_file(out + "/data.img", data_size), data_size, true);
    int log_fd = create_file(out + "/log.img", 0);
    pdata::fd_byte_io log(log_fd);
    thin::simulation_options so;
    so.legacy_ordering = ordering == "legacy";
    auto say = [&](const std::string &line) {
      if (!quiet) std::cout << "  " << line << "\n" << std::flush;
    };
    auto r = thin::simulate_power_cut(meta, data, log, so, say);
    log.flush();
    ::close(log_fd);
    if (!quiet)
      std::cout << fmt::format("  wrote {0}/meta.img ({1} MiB), {0}/data.img ({2} MiB), {0}/log.img ({3} entries; "
                               "metadata region = {4} sectors)\n",
                               out, meta_mib, data_mib, r.log_entries, meta_size / 512);
    return exit_ok;
  });
}

}  // namespace tools
