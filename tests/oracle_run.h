// Running an installed program (an oracle such as Debian's /usr/sbin/thin_ls)
// the way test::run_tool runs ours: arguments as given, standard input empty,
// standard output and error captured. Used by the thin_ls, thin_rmap and
// thin_metadata_size tests.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.h"

extern char **environ;

namespace test {

inline bool have_program(const std::string &path) { return ::access(path.c_str(), X_OK) == 0; }

inline run_result run_program(const std::string &path, const std::vector<std::string> &args) {
  temp_dir d;
  std::string out = d.file("out"), err = d.file("err");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> argv_s{path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (auto &a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot run " + path + ": " + std::strerror(rc));
  int status = 0;
  ::waitpid(pid, &status, 0);
  run_result r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

}  // namespace test
