// Installing: `cmake --install` of this build puts the multi-call binary, a
// link per tool, the man pages and the bash completion under the prefix (and
// under DESTDIR when it is set), and every tool with a link has a man page
// and a completion in the source tree, each mentioning all of its options.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_support.h"

extern char **environ;

namespace {

namespace fs = std::filesystem;

// THINKIT_TOOL_DIR is <build>/tools; THINKIT_FIXTURE_SRC is <source>/tests/fixtures.
fs::path build_dir() { return fs::path(THINKIT_TOOL_DIR).parent_path(); }
fs::path source_dir() { return fs::path(THINKIT_FIXTURE_SRC).parent_path().parent_path(); }

// The tools: every link in the build's tools/ that points at the multi-call binary.
std::vector<std::string> linked_tools() {
  std::vector<std::string> tools;
  for (auto &e : fs::directory_iterator(THINKIT_TOOL_DIR))
    if (e.is_symlink() && fs::read_symlink(e.path()).filename() == "thinkit")
      tools.push_back(e.path().filename().string());
  std::sort(tools.begin(), tools.end());
  return tools;
}

// Where the install rules put things: relative to the prefix unless absolute
// (GNUInstallDirs, as configured in this build's cache).
struct layout {
  std::string sbin = "sbin", man8 = "share/man/man8", completions = "share/bash-completion/completions";
  bool absolute = false;  // some directory ignores the prefix

  // Where `dir` ends up for this DESTDIR (empty: none) and prefix.
  static fs::path place(const std::string &destdir, const std::string &prefix, const std::string &dir) {
    return fs::path(destdir + (fs::path(dir).is_absolute() ? dir : prefix + "/" + dir));
  }
};

layout configured_layout() {
  std::ifstream cache(build_dir() / "CMakeCache.txt");
  std::string line;
  auto value = [&](const std::string &name) -> std::optional<std::string> {
    cache.clear();
    cache.seekg(0);
    while (std::getline(cache, line))
      if (line.rfind(name + ":PATH=", 0) == 0) {
        std::string v = line.substr(name.size() + 6);
        if (!v.empty()) return v;
      }
    return std::nullopt;
  };
  layout l;
  std::string dataroot = value("CMAKE_INSTALL_DATAROOTDIR").value_or("share");
  l.sbin = value("CMAKE_INSTALL_SBINDIR").value_or("sbin");
  l.man8 = value("CMAKE_INSTALL_MANDIR").value_or(dataroot + "/man") + "/man8";
  l.completions = value("CMAKE_INSTALL_DATADIR").value_or(dataroot) + "/bash-completion/completions";
  for (auto &d : {l.sbin, l.man8, l.completions})
    if (fs::path(d).is_absolute()) l.absolute = true;
  return l;
}

struct command_result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a program (not one of the tools; found in PATH unless given with a
// '/') with DESTDIR set as given, or unset whatever the caller's environment
// holds.
command_result run_command(const std::vector<std::string> &argv, const std::optional<std::string> &destdir,
                           const test::temp_dir &scratch) {
  std::vector<std::string> env_s;
  for (char **e = environ; *e; e++)
    if (std::strncmp(*e, "DESTDIR=", 8) != 0) env_s.emplace_back(*e);
  if (destdir) env_s.push_back("DESTDIR=" + *destdir);
  std::vector<char *> env, args;
  for (auto &s : env_s) env.push_back(s.data());
  env.push_back(nullptr);
  std::vector<std::string> argv_s = argv;
  for (auto &s : argv_s) args.push_back(s.data());
  args.push_back(nullptr);

  const std::string out = scratch.file("command-output");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv_s[0].c_str(), &fa, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot run " + argv_s[0] + ": " + std::strerror(rc));
  int status = 0;
  ::waitpid(pid, &status, 0);
  command_result r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.output = test::read_file(out);
  return r;
}

command_result cmake_install(const std::string &prefix, const std::optional<std::string> &destdir,
                             const test::temp_dir &scratch) {
  return run_command({THINKIT_CMAKE_COMMAND, "--install", build_dir().string(), "--prefix", prefix}, destdir, scratch);
}

std::vector<std::string> files_in(const fs::path &dir, const std::string &extension = "") {
  std::vector<std::string> names;
  for (auto &e : fs::directory_iterator(dir))
    if (e.is_regular_file() && (extension.empty() || e.path().extension() == extension))
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Checks what an install with this DESTDIR (empty: none) and prefix holds.
void expect_installed(const std::string &destdir, const std::string &prefix, const layout &l) {
  const fs::path sbin = layout::place(destdir, prefix, l.sbin);
  const fs::path binary = sbin / "thinkit";
  ASSERT_TRUE(fs::is_regular_file(binary)) << binary;
  EXPECT_EQ(::access(binary.c_str(), X_OK), 0) << binary << " is not executable";

  for (auto &tool : linked_tools()) {
    const fs::path link = sbin / tool;
    ASSERT_TRUE(fs::is_symlink(link)) << link << " is missing or not a link";
    // Relative, so the tree still works when moved out of DESTDIR.
    EXPECT_EQ(fs::read_symlink(link), "thinkit") << link;
    EXPECT_TRUE(fs::equivalent(link, binary)) << link << " does not lead to " << binary;
  }
  for (const char *tool : {"thin_metadata_pack", "thin_metadata_unpack", "thin_shrink"})
    EXPECT_TRUE(fs::is_symlink(sbin / tool)) << tool << " was not installed";

  const std::vector<std::string> man_pages = files_in(source_dir() / "man", ".8");
  for (const char *page : {"thin_check.8", "thin_dump.8"})
    EXPECT_NE(std::find(man_pages.begin(), man_pages.end(), page), man_pages.end()) << page;
  for (auto &page : man_pages) {
    const fs::path installed = layout::place(destdir, prefix, l.man8) / page;
    ASSERT_TRUE(fs::is_regular_file(installed)) << installed;
    EXPECT_EQ(test::read_file(installed), test::read_file(source_dir() / "man" / page)) << installed;
  }

  const std::vector<std::string> completions = files_in(source_dir() / "completions");
  for (const char *c : {"thin_check", "thin_dump", "thinkit"})
    EXPECT_NE(std::find(completions.begin(), completions.end(), c), completions.end()) << c;
  for (auto &c : completions) {
    const fs::path installed = layout::place(destdir, prefix, l.completions) / c;
    ASSERT_TRUE(fs::is_regular_file(installed)) << installed;
    EXPECT_EQ(test::read_file(installed), test::read_file(source_dir() / "completions" / c)) << installed;
  }
}

TEST(install, puts_the_binary_links_man_pages_and_completions_under_the_prefix) {
  const layout l = configured_layout();
  if (l.absolute) GTEST_SKIP() << "install directories are absolute here; --prefix would not contain them";
  test::temp_dir tmp;
  const std::string prefix = tmp.file("prefix");
  auto r = cmake_install(prefix, std::nullopt, tmp);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_installed("", prefix, l);
}

TEST(install, the_installed_links_run_and_print_a_bare_version) {
  const layout l = configured_layout();
  if (l.absolute) GTEST_SKIP() << "install directories are absolute here; --prefix would not contain them";
  test::temp_dir tmp;
  const std::string prefix = tmp.file("prefix");
  auto r = cmake_install(prefix, std::nullopt, tmp);
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const std::string built_version = test::run_tool("thin_check", {"-V"}).out;
  for (auto &tool : linked_tools()) {
    auto v = run_command({(layout::place("", prefix, l.sbin) / tool).string(), "-V"}, std::nullopt, tmp);
    EXPECT_EQ(v.exit_code, 0) << tool << ": " << v.output;
    EXPECT_TRUE(std::regex_match(v.output, std::regex("[0-9]+\\.[0-9]+\\.[0-9]+\n"))) << tool << ": " << v.output;
    EXPECT_EQ(v.output, built_version) << tool;
  }
  // And the installed thin_check does real work.
  const std::string installed_check = (layout::place("", prefix, l.sbin) / "thin_check").string();
  auto c = run_command({installed_check, "-q", test::fixture_image("basic")}, std::nullopt, tmp);
  EXPECT_EQ(c.exit_code, 0) << c.output;
  EXPECT_EQ(c.output, "");
}

TEST(install, with_destdir_puts_everything_below_destdir_and_nothing_at_the_bare_prefix) {
  test::temp_dir tmp;
  const std::string destdir = tmp.file("stage");
  // The prefix is inside the temporary directory too, so a rule that ignored
  // DESTDIR would write there (and be caught) rather than into the system.
  const std::string prefix = tmp.file("prefix");
  auto r = cmake_install(prefix, destdir, tmp);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(prefix)) << "installed outside DESTDIR:\n" << r.output;
  expect_installed(destdir, prefix, configured_layout());
}

// Every tool run through a link needs its documentation; this catches a new
// tool (or a new option) added without them.
TEST(install, every_linked_tool_has_a_man_page_and_a_completion_covering_its_options) {
  const std::vector<std::string> tools = linked_tools();
  ASSERT_NE(std::find(tools.begin(), tools.end(), "thin_check"), tools.end());
  ASSERT_NE(std::find(tools.begin(), tools.end(), "thin_dump"), tools.end());
  ASSERT_NE(std::find(tools.begin(), tools.end(), "thin_extract"), tools.end());
  ASSERT_NE(std::find(tools.begin(), tools.end(), "thin_trim"), tools.end());
  for (const char *t : {"thin_ls", "thin_rmap", "thin_metadata_size"})
    ASSERT_NE(std::find(tools.begin(), tools.end(), t), tools.end()) << t;
  EXPECT_TRUE(test::file_exists(source_dir() / "completions" / "thinkit"));

  // Options as the usage text spells them: {-q|--quiet}, {--dev-id}.
  const std::regex option_re("(?:^|[{|\\s])(--?[A-Za-z][A-Za-z0-9-]*)(?=[}|\\s])");
  for (auto &tool : tools) {
    const fs::path man = source_dir() / "man" / (tool + ".8");
    const fs::path completion = source_dir() / "completions" / tool;
    EXPECT_TRUE(fs::is_regular_file(man)) << tool << " has no man page: add " << man;
    EXPECT_TRUE(fs::is_regular_file(completion)) << tool << " has no bash completion: add " << completion;
    if (!fs::is_regular_file(man) || !fs::is_regular_file(completion)) continue;
    const std::string man_text = test::read_file(man), completion_text = test::read_file(completion);

    auto usage = test::run_tool(tool, {"--help"});
    ASSERT_EQ(usage.exit_code, 0) << tool << ": " << usage.err;
    std::set<std::string> options;
    for (std::sregex_iterator it(usage.out.begin(), usage.out.end(), option_re), end; it != end; ++it)
      options.insert((*it)[1]);
    EXPECT_GE(options.size(), 4u) << tool << " usage:\n" << usage.out;
    for (auto &opt : options) {
      // In roff every '-' is written '\-'; the next character must end the name.
      std::string roff;
      for (char ch : opt) roff += ch == '-' ? std::string("\\\\-") : std::string(1, ch);
      EXPECT_TRUE(std::regex_search(man_text, std::regex(roff + "(?![A-Za-z0-9]|\\\\-[A-Za-z])")))
          << man << " does not mention " << opt;
      EXPECT_TRUE(std::regex_search(completion_text, std::regex("(^|[\\s'\"])" + opt + "($|[\\s'\"=)|])")))
          << completion << " does not offer " << opt;
    }
  }
}

TEST(install, completion_scripts_are_valid_bash) {
  for (auto &c : files_in(source_dir() / "completions")) {
    test::temp_dir tmp;
    auto r = run_command({"bash", "-n", (source_dir() / "completions" / c).string()}, std::nullopt, tmp);
    EXPECT_EQ(r.exit_code, 0) << c << ": " << r.output;
  }
}

TEST(install, man_pages_render_without_warnings) {
  std::optional<std::string> groff;
  if (const char *path = std::getenv("PATH")) {
    std::string dirs = path;
    for (std::size_t start = 0; !groff && start <= dirs.size();) {
      std::size_t end = std::min(dirs.find(':', start), dirs.size());
      fs::path candidate = fs::path(dirs.substr(start, end - start)) / "groff";
      if (end > start && ::access(candidate.c_str(), X_OK) == 0) groff = candidate.string();
      start = end + 1;
    }
  }
  if (!groff) GTEST_SKIP() << "groff is not installed";
  for (auto &page : files_in(source_dir() / "man", ".8")) {
    test::temp_dir tmp;
    auto r = run_command({*groff, "-man", "-ww", "-z", (source_dir() / "man" / page).string()}, std::nullopt, tmp);
    EXPECT_EQ(r.exit_code, 0) << page << ": " << r.output;
    EXPECT_EQ(r.output, "") << page;
  }
}

}  // namespace
