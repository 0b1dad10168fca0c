// The multi-call binary: `thin_check ...` and friends are links to one
// executable (easy to copy into an initramfs) that dispatches on argv[0], or
// `thinkit <tool> ...`.
#include <signal.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "tool_support.h"

namespace {

struct command {
  const char *name;
  int (*fn)(std::vector<std::string>);
};

const command commands[] = {
    {"thin_audit", tools::thin_audit_main},
    {"thin_check", tools::thin_check_main},
    {"thin_delta", tools::thin_delta_main},
    {"thin_dump", tools::thin_dump_main},
    {"thin_metadata_pack", tools::thin_metadata_pack_main},
    {"thin_metadata_unpack", tools::thin_metadata_unpack_main},
    {"thin_repair", tools::thin_repair_main},
    {"thin_restore", tools::thin_restore_main},
    {"thin_shrink", tools::thin_shrink_main},
    {"thin_extract", tools::thin_extract_main},
    {"thin_trim", tools::thin_trim_main},
    {"thin_ls", tools::thin_ls_main},
    {"thin_rmap", tools::thin_rmap_main},
    {"thin_metadata_size", tools::thin_metadata_size_main},
    {"simulate", tools::thinkit_simulate_main},
};

void usage(std::ostream &out) {
  out << "Usage: thinkit <command> [options]\n"
      << "       or run a command through its link (thin_check, thin_dump, ...)\n"
      << "Commands:\n";
  for (auto &c : commands) out << "  " << c.name << "\n";
}

int dispatch(const std::string &name, std::vector<std::string> args) {
  for (auto &c : commands)
    if (name == c.name) {
      args[0] = c.name;
      return c.fn(std::move(args));
    }
  return -1;
}

}  // namespace

int main(int argc, char **argv) {
  // Writes to a closed pipe return EPIPE (tools end quietly) instead of killing us.
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv, argv + argc);
  std::string prog = args.empty() ? "thinkit" : args[0];
  if (auto slash = prog.rfind('/'); slash != std::string::npos) prog = prog.substr(slash + 1);

  int rc = dispatch(prog, args);
  if (rc >= 0) return rc;

  if (args.size() < 2) {
    usage(std::cerr);
    return tools::exit_failure;
  }
  if (args[1] == "-h" || args[1] == "--help") {
    usage(std::cout);
    return tools::exit_ok;
  }
  if (args[1] == "-V" || args[1] == "--version") {
    std::cout << tools::version_string() << "\n";
    return tools::exit_ok;
  }
  std::vector<std::string> sub(args.begin() + 1, args.end());
  rc = dispatch(sub[0], sub);
  if (rc >= 0) return rc;
  std::cerr << "thinkit: unknown command '" << sub[0] << "'\n";
  usage(std::cerr);
  return tools::exit_failure;
}
