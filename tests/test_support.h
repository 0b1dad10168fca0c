// Helpers shared by the tests: fixture paths, file I/O, running the built
// tools as a user would (capturing exit code, stdout and stderr), temp dirs.
#pragma once

#include <cstdint>
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

// Path of a built tool link, e.g. tool_path("thin_check").
std::string tool_path(const std::string &tool);

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
