// The black-box contract of thin_check and thin_dump: what lvm2, scripts and
// people rely on. Exit 0 on success and 1 on every failure (never 2, which
// lvm2 reads as "tool missing"), one clear line naming the file and the
// problem, -q silence, no writes unless asked, the thin_dump options, and
// equality with Debian's thin_dump 0.9.0 where it is installed.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/iostreams/copy.hpp>
#include <boost/iostreams/filter/gzip.hpp>
#include <boost/iostreams/filtering_stream.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "support/metadata_support.h"
#include "support/test_support.h"

namespace {

using bytes = std::vector<unsigned char>;

const std::string oracle_dump = test::debian_tool("thin_dump");

//------------------------------------------------------------------ helpers

using test::run_program;

// Runs a built tool with its standard output on a small pipe, reads the first
// line and closes the pipe while the tool still has output to write (what
// `thin_dump ... | head -1` does). SIGPIPE starts at its default action.
test::run_result run_and_close_after_first_line(const std::string &tool, const std::vector<std::string> &args,
                                                std::string &first_line) {
  test::temp_dir d;
  std::string err = d.file("err");
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  ::fcntl(p[0], F_SETPIPE_SZ, 4096);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  try {
    pid = test::spawn(test::tool_path(tool), args, fa, &attr);
  } catch (...) {
    ::close(p[0]);
    ::close(p[1]);
    throw;
  }
  ::close(p[1]);
  first_line.clear();
  char c;
  while (::read(p[0], &c, 1) == 1) {
    first_line += c;
    if (c == '\n') break;
  }
  ::close(p[0]);
  test::run_result r;
  test::wait_for(pid, r);
  r.err = test::read_file(err);
  return r;
}

using test::lines_of;

using test::contains;

using test::copy_file;

uint64_t le64_at(const bytes &b, std::size_t off) { return pdata::load_le64(b.data() + off); }

// Block 0 of an image file, edited in place, checksum restamped.
void edit_superblock(const std::string &path, const std::function<void(unsigned char *)> &edit) {
  bytes img = test::read_binary(path);
  edit(img.data());
  pdata::stamp_checksum(img.data(), pdata::checksum_salt::superblock);
  test::write_binary(path, img);
}

using test::set_needs_check;

void flip_byte(const std::string &path, uint64_t offset) {
  bytes img = test::read_binary(path);
  img.at(offset) ^= 0xFF;
  test::write_binary(path, img);
}

// Sets an old modification time so any later write shows.
void age(const std::string &path) {
  struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, 0), 0);
}

struct timespec mtime_of(const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("stat " + path);
  return st.st_mtim;
}

bool same_time(const struct timespec &a, const struct timespec &b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Index of the first differing byte, or -1.
long first_difference(const bytes &a, const bytes &b) {
  if (a.size() != b.size()) return static_cast<long>(std::min(a.size(), b.size()));
  for (std::size_t i = 0; i < a.size(); i++)
    if (a[i] != b[i]) return static_cast<long>(i);
  return -1;
}

// thin_dump XML split into the superblock line, each device's lines, the end.
struct xml_parts {
  std::string head, tail;
  std::vector<std::pair<uint64_t, std::vector<std::string>>> devices;
};

xml_parts split_xml(const std::string &xml) {
  xml_parts p;
  auto ls = lines_of(xml);
  if (ls.size() < 2) throw std::runtime_error("short XML");
  p.head = ls.front() + "\n";
  p.tail = ls.back() + "\n";
  static const std::regex dev(R"re(^  <device dev_id="(\d+)")re");
  for (std::size_t i = 1; i + 1 < ls.size(); i++) {
    std::smatch m;
    if (std::regex_search(ls[i], m, dev))
      p.devices.push_back({std::stoull(m[1].str()), {}});
    if (p.devices.empty()) throw std::runtime_error("XML line outside a device: " + ls[i]);
    p.devices.back().second.push_back(ls[i]);
  }
  return p;
}

std::string join_xml(const xml_parts &p, const std::function<bool(uint64_t)> &keep, bool skip_mappings) {
  std::string s = p.head;
  for (auto &[id, ls] : p.devices) {
    if (!keep(id)) continue;
    for (std::size_t i = 0; i < ls.size(); i++)
      if (!skip_mappings || i == 0 || i + 1 == ls.size()) s += ls[i] + "\n";
  }
  return s + p.tail;
}

std::string reference_xml(const std::string &scenario) {
  return test::read_file(test::fixture_file(scenario, "thin_dump.xml"));
}

//------------------------------------------------------------- usage lines

TEST(cli_usage, help_prints_usage_on_stdout_and_exits_0) {
  for (std::string tool : {"thin_check", "thin_dump"})
    for (std::string opt : {"-h", "--help"}) {
      SCOPED_TRACE(tool + " " + opt);
      auto r = test::run_tool(tool, {opt});
      EXPECT_EQ(r.exit_code, 0);
      EXPECT_TRUE(contains(r.out, "Usage: " + tool)) << r.out;
      EXPECT_EQ(r.err, "");
    }
}

TEST(cli_usage, version_prints_a_bare_x_y_z_line_and_exits_0) {
  static const std::regex version(R"(^[0-9]+\.[0-9]+\.[0-9]+\n$)");
  for (std::string tool : {"thin_check", "thin_dump", "thinkit"})
    for (std::string opt : {"-V", "--version"}) {
      SCOPED_TRACE(tool + " " + opt);
      auto r = test::run_tool(tool, {opt});
      EXPECT_EQ(r.exit_code, 0);
      EXPECT_TRUE(std::regex_match(r.out, version)) << "'" << r.out << "'";
      EXPECT_EQ(r.err, "");
    }
}

TEST(cli_usage, an_unknown_option_exits_1_with_a_message_naming_it) {
  for (std::string tool : {"thin_check", "thin_dump"})
    for (std::string opt : {"--no-such-option", "-Z"}) {
      SCOPED_TRACE(tool + " " + opt);
      auto r = test::run_tool(tool, {opt, test::fixture_image("basic")});
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_EQ(r.signal, 0);
      EXPECT_TRUE(contains(r.err, opt)) << r.err;
      EXPECT_EQ(r.out, "");
    }
}

TEST(cli_usage, no_input_exits_1_with_a_message) {
  for (std::string tool : {"thin_check", "thin_dump"}) {
    SCOPED_TRACE(tool);
    auto r = test::run_tool(tool, {});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err, "");
    EXPECT_EQ(r.out, "");
  }
  auto q = test::run_tool("thin_check", {"-q"});
  EXPECT_EQ(q.exit_code, 1);
  EXPECT_EQ(q.err, "");
  EXPECT_EQ(q.out, "");
}

TEST(cli_usage, more_than_one_input_exits_1) {
  for (std::string tool : {"thin_check", "thin_dump"}) {
    SCOPED_TRACE(tool);
    auto r = test::run_tool(tool, {test::fixture_image("basic"), test::fixture_image("basic")});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err, "");
  }
}

//--------------------------------------------------------------- bad inputs

struct bad_input {
  std::string label, path;
  std::string problem;           // what thin_dump's line (and thin_check's) must mention
  std::string check_problem;     // thin_check's final line, when it differs
  std::string also_in_check;     // something else thin_check's stderr must mention
};

class bad_inputs : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = [&](const std::string &n) { return dir_.file(n); };
    cases_.push_back({"missing file", f("missing.img"), "No such file", "", ""});

    ASSERT_EQ(::mkdir(f("a-directory").c_str(), 0755), 0);
    cases_.push_back({"directory", f("a-directory"), "directory", "", ""});

    test::write_binary(f("small.img"), bytes(1000, 0x5A));
    cases_.push_back({"file under 4 KiB", f("small.img"), "too small", "", ""});

    test::write_binary(f("almost.img"), bytes(pdata::block_size - 1, 0));
    cases_.push_back({"file one byte short of a block", f("almost.img"), "too small", "", ""});

    test::write_binary(f("empty.img"), {});
    cases_.push_back({"empty file", f("empty.img"), "too small", "", ""});

    copy_file(test::fixture_file("basic", "thin_dump.xml"), f("small.xml"));
    cases_.push_back({"small XML file", f("small.xml"), "XML", "", ""});

    copy_file(test::fixture_file("btree", "thin_dump.xml"), f("large.xml"));
    cases_.push_back({"XML file over 4 KiB", f("large.xml"), "XML", "", ""});

    {
      std::ofstream z(f("zero.img"), std::ios::binary);
    }
    ASSERT_EQ(::truncate(f("zero.img").c_str(), 8 << 20), 0);
    cases_.push_back({"all-zero 8 MiB file", f("zero.img"), "zero", "", ""});

    copy_file(test::fixture_image("basic"), f("bad-sb-csum.img"));
    flip_byte(f("bad-sb-csum.img"), 100);
    cases_.push_back({"bad superblock checksum", f("bad-sb-csum.img"), "checksum", "", ""});

    copy_file(test::fixture_image("basic"), f("bad-magic.img"));
    edit_superblock(f("bad-magic.img"), [](unsigned char *b) { b[32] ^= 1; });
    cases_.push_back({"bad superblock magic", f("bad-magic.img"), "magic", "", ""});

    // A damaged mapping-tree root: thin_dump needs it before any device.
    copy_file(test::fixture_image("basic"), f("bad-node.img"));
    bytes img = test::read_binary(f("bad-node.img"));
    uint64_t mapping_root = le64_at(img, 320);
    ASSERT_GT(mapping_root, 0u);
    flip_byte(f("bad-node.img"), mapping_root * pdata::block_size + 200);
    std::string blk = "block " + std::to_string(mapping_root);
    cases_.push_back({"damaged B-tree node", f("bad-node.img"), blk, "damaged", blk});

    // And the device details tree root.
    copy_file(test::fixture_image("basic"), f("bad-details.img"));
    uint64_t details_root = le64_at(img, 328);
    flip_byte(f("bad-details.img"), details_root * pdata::block_size + 40);
    std::string dblk = "block " + std::to_string(details_root);
    cases_.push_back({"damaged details tree node", f("bad-details.img"), dblk, "damaged", dblk});

    if (::geteuid() != 0) {
      copy_file(test::fixture_image("basic"), f("unreadable.img"));
      ASSERT_EQ(::chmod(f("unreadable.img").c_str(), 0), 0);
      cases_.push_back({"unreadable file", f("unreadable.img"), "ermission", "", ""});
    }
  }

  test::temp_dir dir_;
  std::vector<bad_input> cases_;
};

TEST_F(bad_inputs, thin_dump_exits_1_with_exactly_one_line_naming_the_file_and_the_problem) {
  for (auto &c : cases_) {
    SCOPED_TRACE(c.label);
    auto r = test::run_tool("thin_dump", {c.path});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.signal, 0);
    auto ls = lines_of(r.err);
    ASSERT_EQ(ls.size(), 1u) << r.err;
    EXPECT_EQ(r.err.back(), '\n');
    EXPECT_TRUE(contains(ls[0], c.path)) << ls[0];
    EXPECT_TRUE(contains(ls[0], c.problem)) << ls[0];
  }
}

TEST_F(bad_inputs, thin_check_exits_1_and_ends_with_one_line_naming_the_file_and_the_problem) {
  for (auto &c : cases_) {
    SCOPED_TRACE(c.label);
    auto r = test::run_tool("thin_check", {c.path});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.signal, 0);
    auto ls = lines_of(r.err);
    ASSERT_FALSE(ls.empty());
    const std::string &last = ls.back();
    EXPECT_TRUE(contains(last, c.path)) << r.err;
    EXPECT_TRUE(contains(last, c.check_problem.empty() ? c.problem : c.check_problem)) << r.err;
    // Before it: pass names and indented damage lines only; the file is named once.
    for (std::size_t i = 0; i + 1 < ls.size(); i++) {
      const std::string &l = ls[i];
      EXPECT_TRUE(l.rfind("examining ", 0) == 0 || l.rfind("checking ", 0) == 0 || l.rfind("  ", 0) == 0)
          << "unexpected line: " << l;
      EXPECT_FALSE(contains(l, c.path)) << l;
    }
    if (!c.also_in_check.empty()) {
      EXPECT_TRUE(contains(r.err, c.also_in_check)) << r.err;
    }
  }
}

TEST_F(bad_inputs, thin_check_quiet_prints_nothing_at_all_and_exits_1) {
  for (auto &c : cases_) {
    SCOPED_TRACE(c.label);
    for (std::string q : {"-q", "--quiet"}) {
      auto r = test::run_tool("thin_check", {q, c.path});
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_EQ(r.signal, 0);
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(r.err, "");
    }
    // lvm2's own invocation.
    auto r = test::run_tool("thin_check", {"-q", "--clear-needs-check-flag", c.path});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "");
  }
}

TEST_F(bad_inputs, no_option_combination_ever_exits_2) {
  const std::vector<std::vector<std::string>> check_opts = {
      {}, {"-q"}, {"--super-block-only"}, {"--skip-mappings"}, {"-m"}, {"--clear-needs-check-flag"},
      {"--ignore-non-fatal-errors"}};
  const std::vector<std::vector<std::string>> dump_opts = {
      {}, {"-m"}, {"--skip-mappings"}, {"-f", "human_readable"}, {"--dev-id", "1"}};
  for (auto &c : cases_) {
    SCOPED_TRACE(c.label);
    // Some of these legitimately succeed (--super-block-only on a damaged
    // tree); none may report 2 or die from a signal.
    for (auto opts : check_opts) {
      opts.push_back(c.path);
      auto r = test::run_tool("thin_check", opts);
      EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << opts.front() << ": " << r.exit_code;
      EXPECT_EQ(r.signal, 0);
    }
    for (auto opts : dump_opts) {
      opts.push_back(c.path);
      auto r = test::run_tool("thin_dump", opts);
      EXPECT_EQ(r.exit_code, 1) << opts.front();
      EXPECT_EQ(r.signal, 0);
    }
  }
}

TEST(cli_bad_input, an_unreadable_file_is_refused_with_permission_denied) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: permission checks are bypassed";
  test::temp_dir d;
  std::string p = d.file("unreadable.img");
  copy_file(test::fixture_image("basic"), p);
  ASSERT_EQ(::chmod(p.c_str(), 0), 0);
  for (std::string tool : {"thin_check", "thin_dump"}) {
    auto r = test::run_tool(tool, {p});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(contains(r.err, "ermission denied")) << r.err;
    EXPECT_TRUE(contains(r.err, p)) << r.err;
  }
}

//-------------------------------------------------------- needs_check flag

class needs_check : public ::testing::Test {
 protected:
  void SetUp() override {
    original_ = dir_.file("orig.img");
    work_ = dir_.file("work.img");
    copy_file(test::fixture_image("snapshots"), original_);
    set_needs_check(original_);
    copy_file(original_, work_);
    age(work_);
  }
  test::temp_dir dir_;
  std::string original_, work_;
};

TEST_F(needs_check, clearing_the_flag_changes_only_the_flag_bit_and_the_checksum) {
  bytes before = test::read_binary(work_);
  ASSERT_EQ(before[4] & 1, 1);
  ASSERT_TRUE(pdata::checksum_ok(before.data(), pdata::checksum_salt::superblock));

  auto r = test::run_tool("thin_check", {"--clear-needs-check-flag", work_});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  bytes after = test::read_binary(work_);
  ASSERT_EQ(after.size(), before.size());
  EXPECT_EQ(after[4] & 1, 0) << "NEEDS_CHECK is still set";
  EXPECT_TRUE(pdata::checksum_ok(after.data(), pdata::checksum_salt::superblock));
  // What it must be: the original with bit 0 of the flags cleared and the
  // checksum recomputed; nothing else anywhere in the file.
  bytes expected = before;
  expected[4] &= static_cast<unsigned char>(~1u);
  pdata::stamp_checksum(expected.data(), pdata::checksum_salt::superblock);
  EXPECT_EQ(first_difference(after, expected), -1);
  for (std::size_t i = 5; i < before.size(); i++)
    if (after[i] != before[i]) {
      ADD_FAILURE() << "byte " << i << " changed";
      break;
    }

  // The result is accepted by a normal check, and thin_dump shows flags="0".
  auto c = test::run_tool("thin_check", {"-q", work_});
  EXPECT_EQ(c.exit_code, 0);
  auto d = test::run_tool("thin_dump", {"--skip-mappings", work_});
  EXPECT_TRUE(contains(d.out, "flags=\"0\"")) << d.out;
}

TEST_F(needs_check, lvm2_quiet_invocation_clears_the_flag_silently) {
  auto r = test::run_tool("thin_check", {"-q", "--clear-needs-check-flag", work_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  bytes after = test::read_binary(work_);
  EXPECT_EQ(after[4] & 1, 0);
  EXPECT_TRUE(pdata::checksum_ok(after.data(), pdata::checksum_salt::superblock));
}

TEST_F(needs_check, other_flag_bits_survive_clearing) {
  edit_superblock(work_, [](unsigned char *b) { b[7] |= 0x80; });
  auto r = test::run_tool("thin_check", {"--clear-needs-check-flag", work_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  bytes after = test::read_binary(work_);
  EXPECT_EQ(after[4] & 1, 0);
  EXPECT_EQ(after[7] & 0x80, 0x80);
}

TEST_F(needs_check, without_the_flag_set_clearing_changes_nothing_at_all) {
  std::string clean = dir_.file("clean.img");
  copy_file(test::fixture_image("snapshots"), clean);
  age(clean);
  bytes before = test::read_binary(clean);
  auto t0 = mtime_of(clean);
  auto r = test::run_tool("thin_check", {"--clear-needs-check-flag", clean});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(first_difference(test::read_binary(clean), before), -1);
  EXPECT_TRUE(same_time(mtime_of(clean), t0));
}

TEST_F(needs_check, on_damaged_metadata_it_refuses_and_writes_nothing) {
  bytes img = test::read_binary(work_);
  uint64_t mapping_root = le64_at(img, 320);
  flip_byte(work_, mapping_root * pdata::block_size + 300);
  age(work_);
  bytes before = test::read_binary(work_);
  auto t0 = mtime_of(work_);
  for (auto args : {std::vector<std::string>{"--clear-needs-check-flag", work_},
                    std::vector<std::string>{"-q", "--clear-needs-check-flag", work_}}) {
    auto r = test::run_tool("thin_check", args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
  }
  bytes after = test::read_binary(work_);
  EXPECT_EQ(first_difference(after, before), -1);
  EXPECT_EQ(after[4] & 1, 1);
  EXPECT_TRUE(same_time(mtime_of(work_), t0));
}

TEST_F(needs_check, with_only_a_stale_space_map_hint_it_clears_the_flag_and_changes_only_block_0) {
  // The data space map's root claims one block more than the bitmaps hold
  // (as thin_restore 0.9.0 leaves it): a hint that only hides free space, not
  // a problem. Real leaks are repaired first (thin_check_auto_repair_test).
  bytes img = test::read_binary(work_);
  uint64_t alloc = le64_at(img, 72);
  edit_superblock(work_, [&](unsigned char *b) { pdata::store_le64(b + 72, alloc + 1); });
  auto plain = test::run_tool("thin_check", {work_});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.err.find("non-fatal"), std::string::npos) << plain.err;
  bytes before = test::read_binary(work_);
  auto r = test::run_tool("thin_check", {"--clear-needs-check-flag", work_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  bytes after = test::read_binary(work_);
  EXPECT_EQ(after[4] & 1, 0) << "NEEDS_CHECK still set";
  for (std::size_t i = pdata::block_size; i < before.size(); i++)
    if (after[i] != before[i]) {
      ADD_FAILURE() << "byte " << i << " changed";
      break;
    }
}

// --super-block-only and --skip-mappings are accepted as 1.x accepts them
// (cli_options_test); the snapshot is not the live metadata.
TEST_F(needs_check, combined_with_a_metadata_snapshot_it_refuses) {
  std::string snap = dir_.file("snap.img");
  copy_file(test::fixture_image("discard-metasnap"), snap);
  set_needs_check(snap);
  for (auto &p : {work_, snap}) {
    age(p);
    bytes before = test::read_binary(p);
    auto t0 = mtime_of(p);
    for (auto extra : {std::vector<std::string>{"-m"}, std::vector<std::string>{"--metadata-snap"}}) {
      SCOPED_TRACE(p + " " + extra[0]);
      std::vector<std::string> args = {"--clear-needs-check-flag"};
      args.insert(args.end(), extra.begin(), extra.end());
      args.push_back(p);
      auto r = test::run_tool("thin_check", args);
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_NE(r.err, "");
      args.insert(args.begin(), "-q");
      auto q = test::run_tool("thin_check", args);
      EXPECT_EQ(q.exit_code, 1);
      EXPECT_EQ(q.err, "");
    }
    EXPECT_EQ(first_difference(test::read_binary(p), before), -1);
    EXPECT_TRUE(same_time(mtime_of(p), t0));
  }
}

//----------------------------------------------------------- no side effects

TEST(cli_read_only, plain_thin_check_and_thin_dump_leave_the_file_byte_identical) {
  test::temp_dir d;
  for (std::string scenario : {"snapshots", "discard-metasnap"}) {
    std::string p = d.file(scenario + ".img");
    copy_file(test::fixture_image(scenario), p);
    age(p);
    bytes before = test::read_binary(p);
    auto t0 = mtime_of(p);
    const std::vector<std::vector<std::string>> runs = {
        {"thin_check", p},
        {"thin_check", "-q", p},
        {"thin_check", "--super-block-only", p},
        {"thin_check", "--skip-mappings", p},
        {"thin_check", "--ignore-non-fatal-errors", p},
        {"thin_dump", p},
        {"thin_dump", "-f", "human_readable", p},
        {"thin_dump", "--skip-mappings", p},
    };
    for (auto run : runs) {
      std::string tool = run.front();
      run.erase(run.begin());
      auto r = test::run_tool(tool, run);
      EXPECT_EQ(r.exit_code, 0) << tool << ": " << r.err;
    }
    if (scenario == "discard-metasnap") {
      EXPECT_EQ(test::run_tool("thin_dump", {"-m", p}).exit_code, 0);
      EXPECT_EQ(test::run_tool("thin_check", {"-m", p}).exit_code, 0);
    }
    EXPECT_EQ(first_difference(test::read_binary(p), before), -1) << scenario;
    EXPECT_TRUE(same_time(mtime_of(p), t0)) << scenario;
  }
}

TEST(cli_read_only, thin_check_and_thin_dump_work_on_a_read_only_file) {
  // The shipped fixtures are read-only; a non-root user cannot open them for
  // writing, so neither tool may ask to.
  test::temp_dir d;
  std::string p = d.file("ro.img");
  copy_file(test::fixture_image("basic"), p);
  ASSERT_EQ(::chmod(p.c_str(), 0444), 0);
  EXPECT_EQ(test::run_tool("thin_check", {p}).exit_code, 0);
  auto r = test::run_tool("thin_dump", {p});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, reference_xml("basic"));
}

//------------------------------------------------------------ thin_dump options

TEST(thin_dump_options, output_file_gets_the_same_bytes_as_stdout) {
  test::temp_dir d;
  for (std::string format : {"xml", "human_readable"}) {
    SCOPED_TRACE(format);
    std::string img = test::fixture_image("snapshots");
    auto to_stdout = test::run_tool("thin_dump", {"-f", format, img});
    ASSERT_EQ(to_stdout.exit_code, 0);
    std::string out = d.file("out." + format);
    for (std::string opt : {"-o", "--output"}) {
      auto r = test::run_tool("thin_dump", {"-f", format, opt, out, img});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(r.err, "");
      EXPECT_EQ(test::read_file(out), to_stdout.out);
    }
  }
  // An existing, longer file is replaced, not overwritten in place.
  std::string out = d.file("longer.xml");
  test::write_binary(out, bytes(1 << 20, 'x'));
  ASSERT_EQ(test::run_tool("thin_dump", {"-o", out, test::fixture_image("basic")}).exit_code, 0);
  EXPECT_EQ(test::read_file(out), reference_xml("basic"));
}

std::string gunzip(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  boost::iostreams::filtering_istream gz;
  gz.push(boost::iostreams::gzip_decompressor());
  gz.push(in);
  std::ostringstream out;
  boost::iostreams::copy(gz, out);
  return out.str();
}

TEST(thin_dump_options, output_file_ending_in_gz_is_gzip_of_the_xml) {
  test::temp_dir d;
  for (std::string scenario : {"basic", "btree"}) {
    SCOPED_TRACE(scenario);
    std::string out = d.file(scenario + ".xml.gz");
    auto r = test::run_tool("thin_dump", {"-o", out, test::fixture_image(scenario)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "");
    std::string raw = test::read_file(out);
    ASSERT_GE(raw.size(), 18u);
    EXPECT_EQ(static_cast<unsigned char>(raw[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(raw[1]), 0x8b);
    EXPECT_EQ(gunzip(out), reference_xml(scenario));
    // And gzip itself agrees.
    auto z = run_program("/bin/sh", {"-c", "gzip -dc < '" + out + "'"});
    EXPECT_EQ(z.exit_code, 0) << z.err;
    EXPECT_EQ(z.out, reference_xml(scenario));
  }
}

TEST(thin_dump_options, output_naming_the_input_is_refused_and_the_input_is_left_intact) {
  test::temp_dir d;
  std::string p = d.file("meta.img");
  copy_file(test::fixture_image("basic"), p);
  std::string link = d.file("link.img");
  std::filesystem::create_symlink(p, link);
  ASSERT_EQ(::link(p.c_str(), d.file("hard.img").c_str()), 0);
  age(p);
  bytes before = test::read_binary(p);
  auto t0 = mtime_of(p);
  for (auto out : {p, link, d.file("hard.img"), d.path() + "/./meta.img", p + ".gz"}) {
    SCOPED_TRACE(out);
    if (out == p + ".gz") {
      // Not the same file: allowed (checks the refusal is not by name pattern).
      auto ok = test::run_tool("thin_dump", {"-o", out, p});
      EXPECT_EQ(ok.exit_code, 0) << ok.err;
      continue;
    }
    auto r = test::run_tool("thin_dump", {"-o", out, p});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
    auto r2 = test::run_tool("thin_dump", {p, "-o", out, "-f", "human_readable"});
    EXPECT_EQ(r2.exit_code, 1);
  }
  EXPECT_EQ(first_difference(test::read_binary(p), before), -1);
  EXPECT_TRUE(same_time(mtime_of(p), t0));
}

TEST(thin_dump_options, dev_id_selects_devices_and_can_be_repeated) {
  const std::string scenario = "snapshots";
  xml_parts ref = split_xml(reference_xml(scenario));
  ASSERT_GE(ref.devices.size(), 3u);
  std::string img = test::fixture_image(scenario);
  uint64_t first = ref.devices.front().first, last = ref.devices.back().first;

  auto one = test::run_tool("thin_dump", {"--dev-id", std::to_string(last), img});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, join_xml(ref, [&](uint64_t id) { return id == last; }, false));

  auto two = test::run_tool("thin_dump", {"--dev-id", std::to_string(last), "--dev-id", std::to_string(first), img});
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_EQ(two.out, join_xml(ref, [&](uint64_t id) { return id == last || id == first; }, false));

  auto eq = test::run_tool("thin_dump", {img, "--dev-id=" + std::to_string(first)});
  ASSERT_EQ(eq.exit_code, 0) << eq.err;
  EXPECT_EQ(eq.out, join_xml(ref, [&](uint64_t id) { return id == first; }, false));

  auto none = test::run_tool("thin_dump", {"--dev-id", "999999", img});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(none.out, ref.head + ref.tail);

  auto bad = test::run_tool("thin_dump", {"--dev-id", "one", img});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.err, "--dev-id")) << bad.err;
}

TEST(thin_dump_options, skip_mappings_prints_devices_without_their_mappings) {
  for (std::string scenario : {"snapshots", "btree"}) {
    SCOPED_TRACE(scenario);
    xml_parts ref = split_xml(reference_xml(scenario));
    auto r = test::run_tool("thin_dump", {"--skip-mappings", test::fixture_image(scenario)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, join_xml(ref, [](uint64_t) { return true; }, true));
    EXPECT_FALSE(contains(r.out, "mapping"));
  }
}

TEST(thin_dump_options, superblock_overrides_replace_only_those_attributes) {
  std::string ref = reference_xml("basic");
  auto r = test::run_tool("thin_dump", {"--transaction-id", "99", "--data-block-size", "256", "--nr-data-blocks",
                                        "12345", test::fixture_image("basic")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string want = ref;
  auto sub = [&](const std::string &attr, const std::string &value) {
    std::regex re(attr + "=\"[0-9]+\"");
    std::string head = want.substr(0, want.find('\n'));
    ASSERT_TRUE(std::regex_search(head, re)) << attr;
    want = std::regex_replace(head, re, attr + "=\"" + value + "\"") + want.substr(want.find('\n'));
  };
  sub("transaction", "99");
  sub("data_block_size", "256");
  sub("nr_data_blocks", "12345");
  EXPECT_NE(want, ref);
  EXPECT_EQ(r.out, want);

  auto one = test::run_tool("thin_dump", {"--transaction-id", "5", test::fixture_image("basic")});
  ASSERT_EQ(one.exit_code, 0);
  EXPECT_TRUE(contains(lines_of(one.out)[0], "transaction=\"5\"")) << one.out;
  EXPECT_TRUE(contains(lines_of(one.out)[0], "data_block_size=\"128\"")) << one.out;

  auto bad = test::run_tool("thin_dump", {"--nr-data-blocks", "-3", test::fixture_image("basic")});
  EXPECT_EQ(bad.exit_code, 1);
}

TEST(thin_dump_options, metadata_snap_on_metadata_without_a_snapshot_fails) {
  for (auto opt : {"-m", "--metadata-snap"}) {
    auto r = test::run_tool("thin_dump", {opt, test::fixture_image("basic")});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
    EXPECT_TRUE(contains(r.err, "snapshot")) << r.err;
  }
}

TEST(thin_dump_options, metadata_snap_with_the_right_block_attached_dumps_the_snapshot) {
  std::string img = test::fixture_image("discard-metasnap");
  uint64_t held = le64_at(test::read_binary(img), 56);
  ASSERT_GT(held, 0u);
  std::string want = test::read_file(test::fixture_file("discard-metasnap", "thin_dump.metasnap.xml"));
  for (std::string opt : {"-m" + std::to_string(held), "--metadata-snap=" + std::to_string(held), std::string("-m")}) {
    SCOPED_TRACE(opt);
    auto r = test::run_tool("thin_dump", {opt, img});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, want);
    EXPECT_EQ(r.err, "");
  }
  for (std::string opt : {"-m" + std::to_string(held + 1), "--metadata-snap=" + std::to_string(held - 1),
                          std::string("-m0")}) {
    SCOPED_TRACE(opt);
    auto r = test::run_tool("thin_dump", {opt, img});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  }
}

TEST(thin_dump_options, human_readable_format_matches_the_reference) {
  for (std::string scenario : {"basic", "snapshots"}) {
    std::string want = test::read_file(test::fixture_file(scenario, "thin_dump.human_readable.txt"));
    for (auto args : {std::vector<std::string>{"-f", "human_readable"},
                      std::vector<std::string>{"--format", "human_readable"},
                      std::vector<std::string>{"--format=human_readable"}}) {
      args.push_back(test::fixture_image(scenario));
      auto r = test::run_tool("thin_dump", args);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, want);
    }
  }
  auto xml = test::run_tool("thin_dump", {"-f", "xml", test::fixture_image("basic")});
  EXPECT_EQ(xml.out, reference_xml("basic"));
}

TEST(thin_dump_options, an_unknown_format_fails_naming_it) {
  auto r = test::run_tool("thin_dump", {"-f", "yaml", test::fixture_image("basic")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(contains(r.err, "yaml")) << r.err;
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
}

TEST(thin_dump_options, a_reader_that_goes_away_after_the_first_line_ends_the_dump_quietly) {
  std::string img = test::fixture_image("btree");
  for (auto format : {"xml", "human_readable"}) {
    SCOPED_TRACE(format);
    std::string first;
    auto r = run_and_close_after_first_line("thin_dump", {"-f", format, img}, first);
    EXPECT_EQ(r.signal, 0);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.err, "");
    std::string ref = test::read_file(
        test::fixture_file("btree", std::string(format) == "xml" ? "thin_dump.xml" : "thin_dump.human_readable.txt"));
    ASSERT_GT(ref.size(), 4 * pdata::block_size) << "output must outgrow the pipe for this to mean anything";
    EXPECT_EQ(first, ref.substr(0, ref.find('\n') + 1));
  }
}

TEST(thin_dump_options, thin_dump_piped_into_head_exits_0_under_pipefail) {
  std::string img = test::fixture_image("btree");
  for (auto format : {"xml", "human_readable"}) {
    SCOPED_TRACE(format);
    auto r = run_program("/bin/bash", {"-c", "set -o pipefail; '" + test::tool_path("thin_dump") + "' -f " + format +
                                                 " '" + img + "' | head -1"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(lines_of(r.out).size(), 1u);
  }
}

//--------------------------------------------------- against thin_dump 0.9.0

class against_oracle : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!test::have_program(oracle_dump)) GTEST_SKIP() << oracle_dump << " is not installed";
  }
  void same(std::vector<std::string> args) {
    SCOPED_TRACE(::testing::PrintToString(args));
    args.push_back(test::fixture_image(GetParam()));
    auto ours = test::run_tool("thin_dump", args);
    auto theirs = run_program(oracle_dump, args);
    EXPECT_EQ(ours.exit_code, theirs.exit_code) << ours.err;
    EXPECT_EQ(ours.out, theirs.out);
  }
};

TEST_P(against_oracle, skip_mappings_output_is_identical) {
  same({"--skip-mappings"});
  same({"--skip-mappings", "-f", "human_readable"});
}

TEST_P(against_oracle, human_readable_output_is_identical) { same({"-f", "human_readable"}); }

TEST_P(against_oracle, dev_id_selections_are_identical) {
  xml_parts ref = split_xml(reference_xml(GetParam()));
  ASSERT_FALSE(ref.devices.empty());
  std::string first = std::to_string(ref.devices.front().first);
  std::string last = std::to_string(ref.devices.back().first);
  std::string mid = std::to_string(ref.devices[ref.devices.size() / 2].first);
  same({"--dev-id", first});
  same({"--dev-id", last});
  same({"--dev-id", last, "--dev-id", first});
  same({"--dev-id", mid, "--skip-mappings"});
  same({"--dev-id", mid, "-f", "human_readable"});
  same({"--dev-id", "16777215"});
}

INSTANTIATE_TEST_SUITE_P(kernel, against_oracle, ::testing::ValuesIn(test::kernel_scenarios()), test::scenario_name);

//------------------------------------------------------- multi-call binary

TEST(multi_call, thinkit_thin_check_behaves_like_thin_check) {
  for (std::string scenario : {"basic", "snapshots"}) {
    auto direct = test::run_tool("thin_check", {test::fixture_image(scenario)});
    auto via = test::run_tool("thinkit", {"thin_check", test::fixture_image(scenario)});
    EXPECT_EQ(via.exit_code, 0);
    EXPECT_EQ(via.exit_code, direct.exit_code);
    EXPECT_EQ(via.out, direct.out);
    EXPECT_EQ(via.err, direct.err);
  }
  test::temp_dir d;
  auto direct = test::run_tool("thin_check", {d.file("missing")});
  auto via = test::run_tool("thinkit", {"thin_check", d.file("missing")});
  EXPECT_EQ(via.exit_code, 1);
  EXPECT_EQ(via.err, direct.err);
}

TEST(multi_call, thinkit_thin_dump_behaves_like_thin_dump) {
  auto via = test::run_tool("thinkit", {"thin_dump", "--skip-mappings", test::fixture_image("snapshots")});
  auto direct = test::run_tool("thin_dump", {"--skip-mappings", test::fixture_image("snapshots")});
  EXPECT_EQ(via.exit_code, 0);
  EXPECT_EQ(via.out, direct.out);
  auto help = test::run_tool("thinkit", {"thin_dump", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(contains(help.out, "Usage: thin_dump")) << help.out;
}

TEST(multi_call, thinkit_without_arguments_exits_1_with_usage_on_stderr) {
  auto r = test::run_tool("thinkit", {});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(contains(r.err, "thin_check")) << r.err;
}

TEST(multi_call, thinkit_help_lists_the_commands) {
  for (std::string opt : {"-h", "--help"}) {
    auto r = test::run_tool("thinkit", {opt});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_TRUE(contains(r.out, "thin_check")) << r.out;
    EXPECT_TRUE(contains(r.out, "thin_dump")) << r.out;
    EXPECT_EQ(r.err, "");
  }
}

TEST(multi_call, an_unknown_command_exits_1_naming_it) {
  auto r = test::run_tool("thinkit", {"thin_frobnicate", test::fixture_image("basic")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "thin_frobnicate")) << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace
