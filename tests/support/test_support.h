// Helpers shared by the tests: fixture paths, file I/O, running the built
// tools and the generator as a user would (capturing exit code, stdout and
// stderr), the oracles installed beside them, temp dirs, test names, text.
// In-process helpers over the library are in metadata_support.h; those of the
// damage tests in damage_support.h.
#pragma once

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace test {

// The kernel fixture scenarios shipped in tests/fixtures/kernel/.
const std::vector<std::string> &kernel_scenarios();

// Unpacked metadata image of a scenario (in the build tree).
std::string fixture_image(const std::string &scenario);
// A file shipped beside it in the source tree (thin_dump.xml, ...).
std::string fixture_file(const std::string &scenario, const std::string &name);

// The dm-log-writes log of the logwrites scenario (unpacked).
std::string kernel_log();
// A fuzzing finding in tests/fixtures/findings/, and an unpacked *.img.zst one.
std::string finding(const std::string &name);
std::string finding_image(const std::string &name);

// A parameterised test's name for a scenario ("discard-metasnap" ->
// "discard_metasnap": gtest names allow no '-').
std::string test_name(std::string scenario);
std::string scenario_name(const ::testing::TestParamInfo<std::string> &p);

std::string read_file(const std::string &path);
std::vector<unsigned char> read_binary(const std::string &path);
void write_binary(const std::string &path, const std::vector<unsigned char> &bytes);
bool file_exists(const std::string &path);
// A new sparse file of `size` bytes (an existing one is emptied first).
void make_file(const std::string &path, uint64_t size);
// Copies a file (overwriting `to`), leaving it readable and writable.
void copy_file(const std::string &from, const std::string &to);
// A writable copy of a scenario's metadata image in `dir`; returns its path.
class temp_dir;
std::string copy_fixture(const temp_dir &dir, const std::string &scenario, const std::string &name = "in.img");

// Lines of thin_dump XML for hand-written documents: a device's start tag
// (counts and times 0), a single mapping, a range mapping.
std::string xml_device(uint64_t dev_id);
std::string xml_single(uint64_t origin, uint64_t data, uint64_t time = 0);
std::string xml_range(uint64_t origin, uint64_t data, uint64_t len, uint64_t time = 0);

// The lines of `s`, without their '\n' (a last line without one counts).
std::vector<std::string> lines_of(const std::string &s);
bool contains(const std::string &hay, const std::string &needle);
// `s` in single quotes, for a shell command line (s holds no quote).
std::string quote(const std::string &s);

struct run_result {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out, err;
};

// Runs tools/<tool> (a link to the multi-call binary) with `args`. `input`
// feeds standard input. Times out (and fails the test) after `timeout_s`.
run_result run_tool(const std::string &tool, const std::vector<std::string> &args, const std::string &input = "",
                    int timeout_s = 120);

// Starts `path` with `args` (argv[0] is `path`), its standard streams as
// `fa` sets them, `attr` (may be null) applied; destroys both. Throws when it
// cannot start. wait_for waits for it and sets r's exit code or signal.
pid_t spawn(const std::string &path, const std::vector<std::string> &args, posix_spawn_file_actions_t &fa,
            posix_spawnattr_t *attr = nullptr);
void wait_for(pid_t pid, run_result &r);

// Runs any installed program (an oracle such as /usr/sbin/thin_delta) as
// run_tool runs ours: arguments as given, standard input empty, standard
// output and error captured.
run_result run_program(const std::string &path, const std::vector<std::string> &args);
// True when `path` is an executable file.
bool have_program(const std::string &path);

// Path of a built tool link, e.g. tool_path("thin_check").
std::string tool_path(const std::string &tool);

// Runs the XML generator (tests/gen, thinkit_gen_xml) with `args`, writing
// `out`; fails the test (fatally) if it fails.
void generate_xml(const std::vector<std::string> &args, const std::string &out);
// The generator's shell command line for `args` (arguments quoted).
std::string gen_xml_command(const std::vector<std::string> &args);
// Restores `xml` with the built thin_restore into a new sparse file `meta`
// of `bytes`; fails the test (fatally) if it fails.
void restore_with_tool(const std::string &xml, const std::string &meta, uint64_t bytes);

// Debian's thin-provisioning-tools 0.9.0 in /usr/sbin, the oracle for 0.9.0
// behaviour: the path of one of its tools, and whether all of `tools` are
// installed (tests that need them skip without them).
std::string debian_tool(const std::string &tool);
bool debian_tools_installed(std::initializer_list<const char *> tools);

// Upstream thin-provisioning-tools 1.x's multi-call binary (pdata_tools),
// the oracle for 1.x behaviour: installed into the build tree from
// ../shared/peers/tpt-1.3.3 when that exists beside the checkout (see
// tests/CMakeLists.txt). nullopt when absent or not a 1.x version; tests
// that need it skip then.
std::optional<std::string> upstream_1x_pdata_tools();

// A fresh temporary directory, removed when the object goes away.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir &) = delete;
  temp_dir &operator=(const temp_dir &) = delete;
  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace test
