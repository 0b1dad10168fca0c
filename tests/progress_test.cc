// Progress on a terminal (tools/progress_meter.h, issue 14).
//
// The meter with a fake clock: nothing before the delay, lines with percent,
// rate and time left after it, at most one redraw an interval, the finished
// line ended with a newline, a line still shown erased. Then the real tools
// under a pseudo-terminal (their stderr a pty, stdout a pipe): progress shows
// with the hidden --progress-delay-ms 0, stdout and the exit code stay as
// they are; with stderr a pipe, or with -q on the pty, nothing is added.
// No assertion depends on how long anything takes.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "progress_meter.h"
#include "support/test_support.h"

namespace {

using namespace std::chrono_literals;
using tools::progress_meter;

using test::contains;

struct fake_terminal {
  progress_meter::clock::time_point now{};
  std::string screen;  // everything written, \r and all
  std::unique_ptr<progress_meter> meter(std::chrono::milliseconds delay = 2000ms) {
    progress_meter::timing t;
    t.delay = delay;
    return std::make_unique<progress_meter>([this](const std::string &s) { screen += s; }, t,
                                            [this] { return now; });
  }
};

TEST(progress_meter, nothing_is_shown_before_two_seconds_of_work) {
  fake_terminal term;
  auto m = term.meter();
  m->begin("checking metadata", 1000, "metadata blocks");
  for (int i = 0; i < 19; i++) {
    term.now += 100ms;
    m->advance(10);
  }
  EXPECT_EQ(term.screen, "");
  m->end();  // finished within the delay: nothing at all
  EXPECT_EQ(term.screen, "");
}

TEST(progress_meter, after_the_delay_a_line_shows_percent_rate_and_time_left) {
  fake_terminal term;
  auto m = term.meter();
  m->begin("checking metadata", 1000, "metadata blocks");
  term.now += 2s;
  m->advance(400);  // 400 blocks in 2 s: 200/s, 600 left: 3 s
  EXPECT_EQ(term.screen, "\rchecking metadata: 40% (400 of 1000 metadata blocks), 200/s, 0:03 left");
}

TEST(progress_meter, redraws_at_most_five_times_a_second_over_the_previous_line) {
  fake_terminal term;
  auto m = term.meter();
  m->begin("dumping mappings", 100000, "mappings");
  term.now += 2s;
  m->advance(10000);
  const std::string first = term.screen;
  term.now += 100ms;
  m->advance(10000);  // within 200 ms of the last draw
  EXPECT_EQ(term.screen, first);
  term.now += 100ms;
  m->advance(10000);
  EXPECT_EQ(term.screen.substr(first.size()),
            "\rdumping mappings: 30% (30000 of 100000 mappings), 13.6k/s, 0:05 left");
  // A shorter line covers the longer one before it with spaces.
  m->begin("x", 10, "mappings");
  term.now += 1s;
  const std::size_t before = term.screen.size();
  m->advance(5);
  const std::string redraw = term.screen.substr(before);
  EXPECT_EQ(redraw.substr(0, 40), "\rx: 50% (5 of 10 mappings), 5/s, 0:01 le");
  EXPECT_EQ(redraw.size(), 1 + std::string("dumping mappings: 30% (30000 of 100000 mappings), 13.6k/s, 0:05 left").size());
}

TEST(progress_meter, the_finished_line_is_ended_with_a_newline) {
  fake_terminal term;
  auto m = term.meter();
  m->begin("reading XML", 300 * 1024 * 1024, "bytes");
  term.now += 3s;
  m->advance(100 * 1024 * 1024);
  EXPECT_EQ(term.screen, "\rreading XML: 33% (100.0 of 300.0 MiB), 33.3 MiB/s, 0:06 left");
  term.now += 3s;
  m->advance(150 * 1024 * 1024);  // not quite the total: end() says 100%
  term.screen.clear();
  m->end();
  EXPECT_EQ(term.screen.substr(term.screen.size() - 1), "\n");
  EXPECT_TRUE(contains(term.screen, "\rreading XML: 100% (300.0 MiB) in 0:06, 50.0 MiB/s")) << term.screen;
  // Nothing more once ended; and the destructor has nothing to erase.
  term.screen.clear();
  m->advance(1);
  m.reset();
  EXPECT_EQ(term.screen, "");
}

TEST(progress_meter, a_line_left_by_a_failure_or_before_other_output_is_erased) {
  fake_terminal term;
  auto m = term.meter(0ms);
  m->begin("recovering mappings", 0, "mappings");  // total unknown: no percent, no time left
  EXPECT_EQ(term.screen, "\rrecovering mappings: 0 mappings, 0/s");
  term.screen.clear();
  m->erase();
  EXPECT_EQ(term.screen, "\r" + std::string(std::strlen("recovering mappings: 0 mappings, 0/s"), ' ') + "\r");
  term.screen.clear();
  term.now += 1s;
  m->advance(2500);
  EXPECT_EQ(term.screen, "\rrecovering mappings: 2500 mappings, 2.5k/s");
  term.screen.clear();
  m.reset();  // the work failed: no end()
  EXPECT_EQ(term.screen, "\r" + std::string(std::strlen("recovering mappings: 2500 mappings, 2.5k/s"), ' ') + "\r");
}

TEST(progress_meter, the_line_can_be_erased_at_the_end_instead) {
  fake_terminal term;
  progress_meter::timing t;
  t.delay = 0ms;
  t.keep_final_line = false;
  progress_meter m([&](const std::string &s) { term.screen += s; }, t, [&] { return term.now; });
  m.begin("counting", 10, "metadata blocks");
  const std::string line = "counting: 0% (0 of 10 metadata blocks), 0/s, --:-- left";
  EXPECT_EQ(term.screen, "\r" + line);
  m.end();
  EXPECT_EQ(term.screen, "\r" + line + "\r" + std::string(line.size(), ' ') + "\r");
}

TEST(progress_meter, formats_long_times_and_large_rates) {
  EXPECT_EQ(progress_meter::format("w", 1, 1000000000, "mappings", 1.0, false),
            "w: 0% (1 of 1000000000 mappings), 1/s, 277777:46:39 left");
  EXPECT_EQ(progress_meter::format("w", 5000000000, 0, "mappings", 2.0, false), "w: 5000000000 mappings, 2.5G/s");
  EXPECT_EQ(progress_meter::format("w", 0, 10, "mappings", 0.0, false), "w: 0% (0 of 10 mappings), 0/s, --:-- left");
  EXPECT_EQ(progress_meter::format("w", 20, 10, "mappings", 1.0, false), "w: 100% (10 of 10 mappings), 10/s, 0:00 left");
}

// --- the tools under a pseudo-terminal ---------------------------------------

struct pty_result {
  int exit_code = -1;
  std::string out;   // stdout (a pipe)
  std::string term;  // what reached the terminal on stderr
};

// Runs a tool with stderr on a new pseudo-terminal and stdout on a pipe.
pty_result run_on_pty(const std::string &tool, const std::vector<std::string> &args) {
  int master = -1, slave = -1;
  if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) throw std::runtime_error("openpty failed");
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC)) throw std::runtime_error("pipe failed");
  const std::string path = test::tool_path(tool);
  std::vector<std::string> argv_s{path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (auto &a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null_in = ::open("/dev/null", O_RDONLY);
    ::dup2(null_in, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(slave, 2);
    ::close(master);
    ::execv(path.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(slave);
  ::close(out_pipe[1]);
  pty_result r;
  bool out_open = true, term_open = true;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while ((out_open || term_open) && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds;
    if (out_open) fds.push_back({out_pipe[0], POLLIN, 0});
    if (term_open) fds.push_back({master, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 1000) <= 0) continue;
    for (auto &p : fds) {
      if (!p.revents) continue;
      const ssize_t n = ::read(p.fd, buf, sizeof(buf));
      if (n <= 0) {  // EOF on the pipe, EIO on the pty once the child is gone
        (p.fd == master ? term_open : out_open) = false;
        continue;
      }
      (p.fd == master ? r.term : r.out).append(buf, static_cast<std::size_t>(n));
    }
  }
  int status = 0;
  if (out_open || term_open) ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  ::close(master);
  ::close(out_pipe[0]);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The terminal's text without progress: each \r-rewritten line dropped, the
// pty's \r\n back to \n.
std::string without_progress(std::string s) {
  std::string out, line;
  for (std::size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    if (s[i] == '\r') {
      line.clear();  // rewritten (a progress line, or its erasure)
      continue;
    }
    line += s[i];
    if (s[i] == '\n') {
      // A finished progress line ends with a newline too: drop it.
      if (!contains(line, "% (")) out += line;
      line.clear();
    }
  }
  return out + line;
}

std::string image() { return test::fixture_image("btree"); }

const std::vector<std::string> no_delay{"--progress-delay-ms", "0"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string> &b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(progress_on_a_terminal, thin_check_shows_progress_and_keeps_its_output) {
  auto plain = test::run_tool("thin_check", {image()});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  auto r = run_on_pty("thin_check", with({image()}, no_delay));
  EXPECT_EQ(r.exit_code, 0) << r.term;
  EXPECT_EQ(r.out, plain.out);
  EXPECT_TRUE(contains(r.term, "\rchecking metadata: 0% (0 of ")) << r.term;
  EXPECT_TRUE(contains(r.term, "\rchecking metadata: 100% (")) << r.term;
  EXPECT_TRUE(contains(r.term, "metadata blocks) in ")) << r.term;
  EXPECT_EQ(without_progress(r.term), plain.err);
}

TEST(progress_on_a_terminal, thin_check_q_prints_nothing) {
  auto r = run_on_pty("thin_check", with({"-q", image()}, no_delay));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.term, "");
  EXPECT_EQ(r.out, "");
}

TEST(progress_on_a_terminal, nothing_is_added_when_stderr_is_not_a_terminal) {
  for (const std::string tool : {"thin_check", "thin_dump"}) {
    test::temp_dir d;
    std::vector<std::string> args{image()};
    if (tool == "thin_dump") args = {"-o", d.file("a.xml"), image()};
    auto plain = test::run_tool(tool, args);
    auto r = test::run_tool(tool, with(args, no_delay));
    EXPECT_EQ(r.exit_code, plain.exit_code) << tool;
    EXPECT_EQ(r.out, plain.out) << tool;
    EXPECT_EQ(r.err, plain.err) << tool;
  }
}

TEST(progress_on_a_terminal, thin_dump_to_a_file_shows_progress_and_writes_the_same_dump) {
  test::temp_dir d;
  auto r = run_on_pty("thin_dump", with({"-o", d.file("a.xml"), image()}, no_delay));
  EXPECT_EQ(r.exit_code, 0) << r.term;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(test::read_file(d.file("a.xml")), test::read_file(test::fixture_file("btree", "thin_dump.xml")));
  EXPECT_TRUE(contains(r.term, "\rdumping mappings: ")) << r.term;
  EXPECT_TRUE(contains(r.term, "mappings) in ")) << r.term;
  EXPECT_EQ(without_progress(r.term), "");
  // To standard output (the terminal, perhaps): no progress.
  auto to_stdout = run_on_pty("thin_dump", with({image()}, no_delay));
  EXPECT_EQ(to_stdout.term, "");
  EXPECT_EQ(to_stdout.out, test::read_file(test::fixture_file("btree", "thin_dump.xml")));
}

TEST(progress_on_a_terminal, thin_restore_and_thin_repair_show_progress) {
  test::temp_dir d;
  const std::string xml = test::fixture_file("btree", "thin_dump.xml");
  {
    std::FILE *f = std::fopen(d.file("meta").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    ASSERT_EQ(::truncate(d.file("meta").c_str(), 64 << 20), 0);
  }
  auto r = run_on_pty("thin_restore", with({"-i", xml, "-o", d.file("meta")}, no_delay));
  EXPECT_EQ(r.exit_code, 0) << r.term;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(contains(r.term, "\rreading XML: 0% (0.0 of ")) << r.term;
  EXPECT_TRUE(contains(r.term, "\rreading XML: 100% (")) << r.term;
  EXPECT_EQ(without_progress(r.term), "");
  auto q = run_on_pty("thin_restore", with({"-q", "-i", xml, "-o", d.file("meta")}, no_delay));
  EXPECT_EQ(q.exit_code, 0);
  EXPECT_EQ(q.term, "");

  {
    std::FILE *f = std::fopen(d.file("fixed").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    ASSERT_EQ(::truncate(d.file("fixed").c_str(), 64 << 20), 0);
  }
  auto plain = test::run_tool("thin_repair", {"-i", d.file("meta"), "-o", d.file("fixed")});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  auto rep = run_on_pty("thin_repair", with({"-i", d.file("meta"), "-o", d.file("fixed")}, no_delay));
  EXPECT_EQ(rep.exit_code, 0) << rep.term;
  EXPECT_EQ(rep.out, plain.out);
  EXPECT_TRUE(contains(rep.term, "\rrecovering mappings: ")) << rep.term;
  EXPECT_EQ(without_progress(rep.term), plain.err);
  auto dump = test::run_tool("thin_dump", {d.file("fixed")});
  EXPECT_EQ(dump.out, test::read_file(xml));
}

// Tools whose results follow on stdout: the line is erased when the work ends.
TEST(progress_on_a_terminal, thin_ls_and_thin_rmap_erase_their_line_before_the_results) {
  const std::vector<std::vector<std::string>> runs{
      {"thin_ls", "-o", "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS", image()}, {"thin_rmap", "--region", "0..100000", image()}};
  for (auto &run : runs) {
    const std::string tool = run[0];
    const std::vector<std::string> args(run.begin() + 1, run.end());
    auto plain = test::run_tool(tool, args);
    ASSERT_EQ(plain.exit_code, 0) << tool << plain.err;
    auto r = run_on_pty(tool, with(args, no_delay));
    EXPECT_EQ(r.exit_code, 0) << tool << r.term;
    EXPECT_EQ(r.out, plain.out) << tool;
    EXPECT_TRUE(contains(r.term, "% (0 of ")) << tool << r.term;
    EXPECT_TRUE(!r.term.empty() && r.term.back() == '\r') << tool << r.term;  // erased: "\r", spaces, "\r"
    EXPECT_EQ(without_progress(r.term), "") << tool;
    auto piped = test::run_tool(tool, with(args, no_delay));
    EXPECT_EQ(piped.err, plain.err) << tool;
    EXPECT_EQ(piped.out, plain.out) << tool;
  }
}

TEST(progress_on_a_terminal, thin_trim_and_thin_extract_show_progress) {
  test::temp_dir d;
  // thin_trim discards on a copy-sized scratch data device, never the fixture.
  {
    std::FILE *f = std::fopen(d.file("data").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    ASSERT_EQ(::truncate(d.file("data").c_str(), 1610612736), 0);
  }
  auto trim = run_on_pty("thin_trim", with({"--metadata-dev", image(), "--data-dev", d.file("data")}, no_delay));
  EXPECT_EQ(trim.exit_code, 0) << trim.term;
  EXPECT_TRUE(contains(trim.term, "\rchecking metadata: 100% (")) << trim.term;
  EXPECT_TRUE(contains(trim.term, "\rdiscarding unused data blocks: 100% (")) << trim.term;
  EXPECT_EQ(without_progress(trim.term), "");

  const std::string data = test::fixture_image("btree").substr(0, test::fixture_image("btree").rfind('/')) + "/data.img";
  auto plain = test::run_tool("thin_extract", {"--data-dev", data, "--dev-id", "1", "-o", d.file("a"), image()});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  auto r = run_on_pty("thin_extract",
                      with({"--data-dev", data, "--dev-id", "1", "-o", d.file("b"), image()}, no_delay));
  EXPECT_EQ(r.exit_code, 0) << r.term;
  EXPECT_TRUE(contains(r.term, "\rrecovering mappings: ")) << r.term;
  EXPECT_EQ(without_progress(r.term), plain.err);
  EXPECT_EQ(test::read_file(d.file("a")), test::read_file(d.file("b")));
}

TEST(progress_on_a_terminal, thin_shrink_shows_the_data_copy) {
  test::temp_dir d;
  auto sparse = [&](const std::string &name, off_t size) {
    std::FILE *f = std::fopen(d.file(name).c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    ASSERT_EQ(::truncate(d.file(name).c_str(), size), 0);
  };
  sparse("meta", 16 << 20);
  sparse("out", 16 << 20);
  sparse("data", 1000 * 65536);
  {
    std::FILE *f = std::fopen(d.file("pool.xml").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("<superblock uuid=\"\" time=\"0\" transaction=\"1\" flags=\"0\" version=\"2\" "
               "data_block_size=\"128\" nr_data_blocks=\"1000\">\n"
               "  <device dev_id=\"1\" mapped_blocks=\"50\" transaction=\"0\" creation_time=\"0\" "
               "snap_time=\"0\">\n"
               "    <range_mapping origin_begin=\"0\" data_begin=\"900\" length=\"50\" time=\"0\"/>\n"
               "  </device>\n</superblock>\n",
               f);
    std::fclose(f);
  }
  auto restored = test::run_tool("thin_restore", {"-i", d.file("pool.xml"), "-o", d.file("meta")});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  auto r = run_on_pty("thin_shrink", with({"--binary", "-i", d.file("meta"), "-o", d.file("out"), "--nr-blocks",
                                           "100", "--data", d.file("data")},
                                          no_delay));
  EXPECT_EQ(r.exit_code, 0) << r.term;
  EXPECT_TRUE(contains(r.term, "\rmoving data blocks: 0% (0 of 50 data blocks)")) << r.term;
  EXPECT_TRUE(contains(r.term, "\rmoving data blocks: 100% (50 data blocks) in ")) << r.term;
  EXPECT_EQ(without_progress(r.term), "");
}

}  // namespace
