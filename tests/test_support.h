// Helpers shared by the tests: fixture paths, file I/O, running the built
// tools as a user would (capturing exit code, stdout and stderr), temp dirs.
#pragma once

#include <cstdint>
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

std::string read_file(const std::string &path);
std::vector<unsigned char> read_binary(const std::string &path);
void write_binary(const std::string &path, const std::vector<unsigned char> &bytes);
bool file_exists(const std::string &path);

struct run_result {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out, err;
};

// Runs tools/<tool> (a link to the multi-call binary) with `args`. `input`
// feeds standard input. Times out (and fails the test) after `timeout_s`.
run_result run_tool(const std::string &tool, const std::vector<std::string> &args, const std::string &input = "",
                    int timeout_s = 120);

// Runs any installed program (an oracle such as /usr/sbin/thin_delta) as
// run_tool runs ours: arguments as given, standard input empty, standard
// output and error captured.
run_result run_program(const std::string &path, const std::vector<std::string> &args);
// True when `path` is an executable file.
bool have_program(const std::string &path);

// Path of a built tool link, e.g. tool_path("thin_check").
std::string tool_path(const std::string &tool);

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
