// Test helpers (see test_support.h).
#include "support/test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char **environ;

namespace test {

const std::vector<std::string> &kernel_scenarios() {
  static const std::vector<std::string> s = {"basic", "snapshots", "discard-metasnap", "logwrites", "btree", "bigblock"};
  return s;
}

std::string fixture_image(const std::string &scenario) {
  return std::string(THINKIT_FIXTURE_BIN) + "/kernel/" + scenario + "/metadata.img";
}

std::string fixture_file(const std::string &scenario, const std::string &name) {
  return std::string(THINKIT_FIXTURE_SRC) + "/kernel/" + scenario + "/" + name;
}

std::string kernel_log() { return std::string(THINKIT_FIXTURE_BIN) + "/kernel/logwrites/log.img"; }

std::string finding(const std::string &name) { return std::string(THINKIT_FIXTURE_SRC) + "/findings/" + name; }

std::string finding_image(const std::string &name) { return std::string(THINKIT_FIXTURE_BIN) + "/findings/" + name; }

std::string test_name(std::string scenario) {
  for (auto &c : scenario)
    if (c == '-') c = '_';
  return scenario;
}

std::string scenario_name(const ::testing::TestParamInfo<std::string> &p) { return test_name(p.param); }

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<unsigned char> read_binary(const std::string &path) {
  std::string s = read_file(path);
  return {s.begin(), s.end()};
}

void write_binary(const std::string &path, const std::vector<unsigned char> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool file_exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

void make_file(const std::string &path, uint64_t size) {
  FILE *f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot create " + path);
  std::fclose(f);
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) throw std::runtime_error("cannot size " + path);
}

void copy_file(const std::string &from, const std::string &to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::permissions(to, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

std::string copy_fixture(const temp_dir &dir, const std::string &scenario, const std::string &name) {
  std::string p = dir.file(name);
  write_binary(p, read_binary(fixture_image(scenario)));
  return p;
}

std::string xml_device(uint64_t dev_id) {
  return "  <device dev_id=\"" + std::to_string(dev_id) +
         "\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n";
}

std::string xml_single(uint64_t origin, uint64_t data, uint64_t time) {
  return "    <single_mapping origin_block=\"" + std::to_string(origin) + "\" data_block=\"" + std::to_string(data) +
         "\" time=\"" + std::to_string(time) + "\"/>\n";
}

std::string xml_range(uint64_t origin, uint64_t data, uint64_t len, uint64_t time) {
  return "    <range_mapping origin_begin=\"" + std::to_string(origin) + "\" data_begin=\"" + std::to_string(data) +
         "\" length=\"" + std::to_string(len) + "\" time=\"" + std::to_string(time) + "\"/>\n";
}

std::vector<std::string> lines_of(const std::string &s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) nl = s.size();
    out.push_back(s.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

bool contains(const std::string &hay, const std::string &needle) { return hay.find(needle) != std::string::npos; }

std::string quote(const std::string &s) { return "'" + s + "'"; }

std::string tool_path(const std::string &tool) { return std::string(THINKIT_TOOL_DIR) + "/" + tool; }

std::string gen_xml_command(const std::vector<std::string> &args) {
  std::string cmd = quote(THINKIT_GEN_XML);
  for (auto &a : args) cmd += " " + quote(a);
  return cmd;
}

void generate_xml(const std::vector<std::string> &args, const std::string &out) {
  std::string cmd = gen_xml_command(args) + " -o " + quote(out) + " 2>" + quote(out + ".err");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << read_file(out + ".err");
}

void restore_with_tool(const std::string &xml, const std::string &meta, uint64_t bytes) {
  make_file(meta, bytes);
  auto r = run_tool("thin_restore", {"-i", xml, "-o", meta});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

std::string debian_tool(const std::string &tool) { return "/usr/sbin/" + tool; }

bool debian_tools_installed(std::initializer_list<const char *> tools) {
  for (const char *t : tools)
    if (!have_program(debian_tool(t))) return false;
  return true;
}

pid_t spawn(const std::string &path, const std::vector<std::string> &args, posix_spawn_file_actions_t &fa,
            posix_spawnattr_t *attr) {
  std::vector<std::string> argv_s{path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (auto &a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, path.c_str(), &fa, attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (attr) posix_spawnattr_destroy(attr);
  if (rc != 0) throw std::runtime_error("cannot run " + path + ": " + std::strerror(rc));
  return pid;
}

void wait_for(pid_t pid, run_result &r) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
}

run_result run_tool(const std::string &tool, const std::vector<std::string> &args, const std::string &input,
                    int timeout_s) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) || ::pipe2(out_pipe, O_CLOEXEC) || ::pipe2(err_pipe, O_CLOEXEC))
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  pid_t pid = spawn(tool_path(tool), args, fa);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  run_result r;
  // Feed stdin, then read both outputs until EOF or timeout.
  std::size_t fed = 0;
  if (input.empty()) {
    ::close(in_pipe[1]);
    in_pipe[1] = -1;
  } else {
    ::fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open || in_pipe[1] >= 0) {
    std::vector<pollfd> fds;
    if (out_open) fds.push_back({out_pipe[0], POLLIN, 0});
    if (err_open) fds.push_back({err_pipe[0], POLLIN, 0});
    if (in_pipe[1] >= 0) fds.push_back({in_pipe[1], POLLOUT, 0});
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0) continue;
    for (auto &p : fds) {
      if (!p.revents) continue;
      if (p.fd == in_pipe[1]) {
        ssize_t n = ::write(in_pipe[1], input.data() + fed, input.size() - fed);
        if (n > 0) fed += static_cast<std::size_t>(n);
        if (n < 0 || fed == input.size()) {
          ::close(in_pipe[1]);
          in_pipe[1] = -1;
        }
        continue;
      }
      ssize_t n = ::read(p.fd, buf, sizeof(buf));
      if (n <= 0) {
        if (p.fd == out_pipe[0]) out_open = false;
        else err_open = false;
      } else {
        (p.fd == out_pipe[0] ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  if (in_pipe[1] >= 0) ::close(in_pipe[1]);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  wait_for(pid, r);
  return r;
}

temp_dir::temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "thinkit-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::optional<std::string> upstream_1x_pdata_tools() {
  static const std::optional<std::string> found = []() -> std::optional<std::string> {
    const std::string path = THINKIT_UPSTREAM_1X;
    if (path.empty() || ::access(path.c_str(), X_OK) != 0) return std::nullopt;
    FILE *f = ::popen(("'" + path + "' thin_check -V 2>/dev/null").c_str(), "r");
    if (!f) return std::nullopt;
    char buf[64] = {};
    const bool ok = std::fgets(buf, sizeof(buf), f) && std::strncmp(buf, "1.", 2) == 0;
    ::pclose(f);
    if (!ok) return std::nullopt;
    return path;
  }();
  return found;
}

run_result run_program(const std::string &path, const std::vector<std::string> &args) {
  temp_dir d;
  std::string out = d.file("out"), err = d.file("err");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = spawn(path, args, fa);
  run_result r;
  wait_for(pid, r);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

bool have_program(const std::string &path) { return ::access(path.c_str(), X_OK) == 0; }

}  // namespace test
