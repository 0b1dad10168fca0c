// Entry points of the tools in the multi-call binary. Each takes the whole
// argv (args[0] is the program name) and returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace tools {

int thin_audit_main(std::vector<std::string> args);
int thin_check_main(std::vector<std::string> args);
int thin_delta_main(std::vector<std::string> args);
int thin_dump_main(std::vector<std::string> args);
int thin_metadata_pack_main(std::vector<std::string> args);
int thin_metadata_unpack_main(std::vector<std::string> args);
int thin_repair_main(std::vector<std::string> args);
int thin_restore_main(std::vector<std::string> args);
int thin_shrink_main(std::vector<std::string> args);
int thin_extract_main(std::vector<std::string> args);
int thin_trim_main(std::vector<std::string> args);
int thin_ls_main(std::vector<std::string> args);
int thin_rmap_main(std::vector<std::string> args);
int thin_metadata_size_main(std::vector<std::string> args);
int thinkit_simulate_main(std::vector<std::string> args);

}  // namespace tools
