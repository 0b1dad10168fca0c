// thin_audit: read a dm-log-writes log of a thin pool ([metadata | data] on
// one logged device) and list it, replay it, audit its commits for mappings
// committed before their data was flushed (the 694cfe7f31 bug), or check the
// metadata at every crash point. Parses options, opens the files (the log
// read-only), runs one library call from thin/audit.h, maps the result to an
// exit code.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "persistent-data/errors.h"
#include "audit/audit.h"
#include "tool_support.h"

namespace tools {

namespace {

const char *audit_usage =
    "Usage: thin_audit <command> [options] <log>\n"
    "Commands:\n"
    "  list <log>      one line per log entry, then counts\n"
    "  replay <log>    write the metadata and data regions as of a point in the log\n"
    "  audit <log>     find mappings committed before their data was flushed\n"
    "  check <log>     check the metadata at every flush and FUA entry\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n"
    "  {-q|--quiet}\n"
    "  {--meta-sectors} <sectors>    size of the metadata region (default 16384)\n"
    "  {--data-sectors} <sectors>    size of the data region (default 524288)\n"
    "  {--skip-block-zeroing}        audit: the pool does not zero new blocks\n"
    "  {--meta-out} <file>           replay: the metadata image to write\n"
    "  {--data-out} <file>           replay: the data image to write\n"
    "  {--until-entry} <n>           replay: up to and including entry n\n"
    "  {--until-mark} <name>         replay: up to just before the mark name\n"
    "  {--json}                      audit: print the report as JSON\n"
    "  {--every} <n>                 check: every n entries instead\n";

// The log, read-only: a regular file or a block device (whose size fstat
// does not give).
class log_file : public pdata::byte_source {
 public:
  explicit log_file(const std::string &path) : path_(path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", path, std::strerror(errno)));
    if (S_ISDIR(st.st_mode)) throw usage_error(fmt::format("{}: is a directory, not a dm-log-writes log", path));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
      throw usage_error(fmt::format("{}: not a regular file or block device", path));
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw usage_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    size_ = static_cast<uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode) && ::ioctl(fd_, BLKGETSIZE64, &size_) != 0) {
      int e = errno;
      ::close(fd_);
      throw usage_error(fmt::format("{}: cannot read the device size: {}", path, std::strerror(e)));
    }
  }
  ~log_file() override { ::close(fd_); }
  log_file(const log_file &) = delete;
  log_file &operator=(const log_file &) = delete;

  uint64_t size() const override { return size_; }
  std::size_t read_at(uint64_t off, void *buf, std::size_t len) override {
    std::size_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd_, static_cast<char *>(buf) + done, len - done, static_cast<off_t>(off + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw pdata::io_error(fmt::format("read at byte {} failed: {}", off + done, std::strerror(errno)));
      }
      if (n == 0) break;
      done += static_cast<std::size_t>(n);
    }
    return done;
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A replay output: a regular file created (or truncated) at the region's
// size. Zeroes are punched as holes, so images stay sparse.
class image_file : public pdata::byte_sink {
 public:
  image_file(const std::string &path, uint64_t size) : path_(path) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      throw usage_error(fmt::format("{}: not a regular file; replay writes image files", path));
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw usage_error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      int e = errno;
      ::close(fd_);
      throw usage_error(fmt::format("{}: cannot set the size to {} bytes: {}", path, size, std::strerror(e)));
    }
  }
  ~image_file() override {
    if (fd_ >= 0) ::close(fd_);
  }
  image_file(const image_file &) = delete;
  image_file &operator=(const image_file &) = delete;

  void write_at(uint64_t off, const void *buf, std::size_t len) override {
    auto *p = static_cast<const unsigned char *>(buf);
    if (std::all_of(p, p + len, [](unsigned char c) { return c == 0; }) &&
        ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                    static_cast<off_t>(len)) == 0)
      return;
    std::size_t done = 0;
    while (done < len) {
      ssize_t n = ::pwrite(fd_, p + done, len - done, static_cast<off_t>(off + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw pdata::io_error(fmt::format("{}: write at byte {} failed: {}", path_, off + done, std::strerror(errno)));
      }
      done += static_cast<std::size_t>(n);
    }
  }

  void close() {
    if (::fsync(fd_) != 0) throw pdata::io_error(fmt::format("{}: fsync failed: {}", path_, std::strerror(errno)));
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw pdata::io_error(fmt::format("{}: close failed: {}", path_, std::strerror(errno)));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

void print(const std::string &s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

}  // namespace

int thin_audit_main(std::vector<std::string> args) {
  bool quiet = false, help = false, version = false, json = false, skip_zeroing = false;
  std::string meta_sectors, data_sectors, meta_out, data_out, until_entry, until_mark, every;
  std::vector<std::string> positional;

  CLI::App app{"thin_audit"};
  app.set_help_flag();
  app.allow_extras(false);
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_flag("-q,--quiet", quiet);
  app.add_flag("--json", json);
  app.add_option("--meta-sectors", meta_sectors);
  app.add_option("--data-sectors", data_sectors);
  app.add_flag("--skip-block-zeroing", skip_zeroing);
  app.add_option("--meta-out", meta_out);
  app.add_option("--data-out", data_out);
  app.add_option("--until-entry", until_entry);
  app.add_option("--until-mark", until_mark);
  app.add_option("--every", every);
  app.add_option("args", positional);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_audit: " << e.what() << "\n" << audit_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << audit_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  auto fail = [&](const std::string &msg) {
    std::cerr << "thin_audit: " << msg << "\n";
    return exit_failure;
  };
  if (positional.empty()) {
    std::cerr << "thin_audit: no command given (list, replay, audit or check)\n" << audit_usage;
    return exit_failure;
  }
  const std::string verb = positional[0];
  std::string path;

  try {
    if (verb != "list" && verb != "replay" && verb != "audit" && verb != "check")
      throw usage_error(fmt::format("unknown command '{}' (list, replay, audit or check)", verb));
    if (positional.size() < 2) throw usage_error(fmt::format("{}: no log file given", verb));
    if (positional.size() > 2)
      throw usage_error(fmt::format("{}: only one log may be given (got {})", verb, positional.size() - 1));
    path = positional[1];

    // Options that belong to another command are mistakes, not no-ops.
    auto only_for = [&](bool given, const char *option, const char *command) {
      if (given && verb != command)
        throw usage_error(fmt::format("{} applies to '{}', not to '{}'", option, command, verb));
    };
    only_for(!meta_out.empty(), "--meta-out", "replay");
    only_for(!data_out.empty(), "--data-out", "replay");
    only_for(!until_entry.empty(), "--until-entry", "replay");
    only_for(!until_mark.empty(), "--until-mark", "replay");
    only_for(json, "--json", "audit");
    only_for(skip_zeroing, "--skip-block-zeroing", "audit");
    only_for(!every.empty(), "--every", "check");

    thin::log_layout layout;
    if (!meta_sectors.empty()) layout.meta_sectors = parse_u64(meta_sectors, "--meta-sectors");
    if (!data_sectors.empty()) layout.data_sectors = parse_u64(data_sectors, "--data-sectors");
    layout.zeroing = !skip_zeroing;

    if (verb == "replay") {
      if (meta_out.empty() || data_out.empty()) throw usage_error("replay needs --meta-out and --data-out");
      if (!until_entry.empty() && !until_mark.empty())
        throw usage_error("give --until-entry or --until-mark, not both");
      for (auto *out : {&meta_out, &data_out})
        if (same_file(path, *out))
          throw usage_error(fmt::format("{}: the output is the log itself; refusing to overwrite it", *out));
      if (meta_out == data_out || same_file(meta_out, data_out))
        throw usage_error("--meta-out and --data-out name the same file");
    }
    thin::replay_options ropts;
    if (!until_entry.empty()) ropts.until_entry = parse_u64(until_entry, "--until-entry");
    if (!until_mark.empty()) ropts.until_mark = until_mark;
    thin::log_check_options copts;
    if (!every.empty()) {
      copts.every = parse_u64(every, "--every");
      if (copts.every == 0) throw usage_error("--every: must be at least 1");
    }

    log_file log(path);
    try {
      if (verb == "list") {
        bool first = true;
        thin::log_summary s = thin::list_log(log, layout, [&](const thin::placed_entry &e) {
          if (quiet) return;
          if (first) print("# entry kind    region     sector  sectors flags         mark\n");
          first = false;
          print(thin::format_entry(e) + "\n");
        });
        print(thin::format_summary(s));
        return exit_ok;
      }
      if (verb == "replay") {
        // Find the stopping point first: a missing mark or entry must not
        // clobber existing output files.
        thin::plan_replay(log, layout, ropts);
        image_file meta(meta_out, layout.meta_bytes()), data(data_out, layout.data_bytes());
        thin::replay_result r = thin::replay_log(log, layout, meta, data, ropts);
        meta.close();
        data.close();
        if (!quiet) {
          if (ropts.until_mark)
            print(fmt::format("replayed {} entries, up to mark '{}' at entry {}\n", r.entries_applied, *ropts.until_mark,
                              *r.stopped_at));
          else
            print(fmt::format("replayed {} entries\n", r.entries_applied));
        }
        return exit_ok;
      }
      if (verb == "audit") {
        thin::audit_result r = thin::audit_log(log, layout);
        if (!quiet) print(json ? thin::format_audit_json(r) : thin::format_audit_text(r));
        return r.ok() ? exit_ok : exit_failure;
      }
      thin::log_check_result r = thin::check_log(log, layout, copts);
      if (!quiet) print(thin::format_check_text(r));
      return r.ok() ? exit_ok : exit_failure;
    } catch (const std::invalid_argument &e) {
      throw usage_error(e.what());
    }
  } catch (const usage_error &e) {
    return fail(e.what());
  } catch (const std::exception &e) {
    return fail(fmt::format("{}: {}", path.empty() ? std::string("?") : path, e.what()));
  }
}

}  // namespace tools
