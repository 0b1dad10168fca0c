// thin_restore: turn thin_dump XML back into metadata. Parses options, feeds
// the XML (a file, "-" for standard input, gzip accepted) through
// thin::parse_xml into a thin::restore_emitter on the output, maps the result
// to an exit code. On failure after the output was touched its superblock is
// left zeroed; errors found before that leave the output untouched.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <boost/iostreams/filter/gzip.hpp>
#include <boost/iostreams/filtering_stream.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "persistent-data/errors.h"
#include "persistent-data/space_map_disk.h"
#include "persistent-data/transaction_manager.h"
#include "thin/restore/restore.h"
#include "thin/ir/xml_parser.h"
#include "tool_support.h"

namespace tools {

namespace {

const char *restore_usage =
    "Usage: thin_restore [options]\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-i|--input} <input xml file, or - for standard input; gzip accepted>\n"
    "  {-o|--output} <output device or file>\n"
    "  {--transaction-id} <natural>\n"
    "  {--data-block-size} <natural>\n"
    "  {--nr-data-blocks} <natural>\n"
    "  {-q|--quiet}\n"
    "  {-V|--version}\n";

// Opens the XML input, transparently decompressing gzip.
class xml_input {
 public:
  explicit xml_input(const std::string &path) {
    std::istream *raw = &std::cin;
    if (path != "-") {
      struct stat st;
      if (::stat(path.c_str(), &st) != 0) throw usage_error(fmt::format("{}: {}", path, std::strerror(errno)));
      if (S_ISDIR(st.st_mode)) throw usage_error(fmt::format("{}: is a directory, not XML", path));
      file_ = std::make_unique<std::ifstream>(path, std::ios::binary);
      if (!*file_) throw usage_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
      raw = file_.get();
    }
    if (raw->peek() == 0x1f) {  // gzip magic (never the start of XML text)
      gz_ = std::make_unique<boost::iostreams::filtering_istream>();
      gz_->push(boost::iostreams::gzip_decompressor());
      gz_->push(*raw);
      in_ = gz_.get();
    } else {
      in_ = raw;
    }
  }
  std::istream &stream() { return *in_; }

 private:
  std::unique_ptr<std::ifstream> file_;
  std::unique_ptr<boost::iostreams::filtering_istream> gz_;
  std::istream *in_ = nullptr;
};

// How many metadata blocks the input needs: restore it into a sparse,
// unlinked scratch file of the largest metadata size.
std::optional<uint64_t> blocks_needed(const std::string &input, const thin::xml_parse_options &po) {
  if (input == "-") return std::nullopt;
  std::string tmpl = "/tmp/thinkit-restore-size-XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return std::nullopt;
  ::unlink(tmpl.c_str());
  uint64_t size = pdata::max_metadata_blocks * pdata::block_size;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  try {
    pdata::file_block_io io(fd, size, true);
    xml_input in(input);
    thin::restore_emitter r(io);
    thin::parse_xml(in.stream(), r, po);
    // The scratch space map has bitmaps for its whole (maximal) size; a
    // device of N blocks needs only ceil(N / 16320) of them.
    const uint64_t used = r.stats().metadata_blocks_used;
    const uint64_t scratch_bitmaps = (pdata::max_metadata_blocks + pdata::entries_per_bitmap - 1) / pdata::entries_per_bitmap;
    const uint64_t other = used - scratch_bitmaps;
    uint64_t need = other + 1;
    while (other + (need + pdata::entries_per_bitmap - 1) / pdata::entries_per_bitmap > need) need++;
    return need;
  } catch (...) {
    return std::nullopt;
  }
}

std::string too_small(const std::string &output, uint64_t blocks, std::optional<uint64_t> need) {
  std::string msg = fmt::format("{}: output too small: the metadata does not fit in its {} blocks ({} KiB)", output,
                                blocks, blocks * pdata::block_size / 1024);
  if (need) msg += fmt::format("; it needs at least {} blocks ({} KiB)", *need, *need * pdata::block_size / 1024);
  return msg;
}

}  // namespace

int thin_restore_main(std::vector<std::string> args) {
  bool quiet = false, help = false, version = false;
  std::string input, output, tid, dbs, ndb;

  CLI::App app{"thin_restore"};
  app.set_help_flag();
  app.add_flag("-h,--help", help);
  app.add_flag("-V,--version", version);
  app.add_flag("-q,--quiet", quiet);
  app.add_option("-i,--input", input);
  app.add_option("-o,--output", output);
  app.add_option("--transaction-id", tid);
  app.add_option("--data-block-size", dbs);
  app.add_option("--nr-data-blocks", ndb);

  try {
    std::vector<std::string> rev(args.rbegin(), args.rend() - 1);
    app.parse(rev);
  } catch (const CLI::ParseError &e) {
    std::cerr << "thin_restore: " << e.what() << "\n" << restore_usage;
    return exit_failure;
  }
  if (help) {
    std::cout << restore_usage;
    return exit_ok;
  }
  if (version) {
    std::cout << version_string() << "\n";
    return exit_ok;
  }
  auto fail = [&](const std::string &msg) {
    std::cerr << "thin_restore: " << msg << "\n";
    return exit_failure;
  };
  if (input.empty()) return fail("no input file provided (-i FILE, or -i - for standard input)");
  if (output.empty()) return fail("no output file provided (-o DEVICE)");

  thin::xml_parse_options po;
  std::unique_ptr<thin::restore_emitter> restorer;
  uint64_t output_blocks = 0;
  try {
    if (!tid.empty()) po.overrides.transaction_id = parse_u64(tid, "--transaction-id");
    if (!dbs.empty()) {
      uint64_t v = parse_u64(dbs, "--data-block-size");
      if (v > UINT32_MAX) throw usage_error("--data-block-size: value too large");
      po.overrides.data_block_size = static_cast<uint32_t>(v);
    }
    if (!ndb.empty()) po.overrides.nr_data_blocks = parse_u64(ndb, "--nr-data-blocks");
    if (input != "-" && same_file(input, output))
      throw usage_error(fmt::format("{}: input and output are the same file", output));

    xml_input in(input);
    auto io = open_metadata(output, {true, true});
    output_blocks = io->nr_blocks();
    restorer = std::make_unique<thin::restore_emitter>(*io);
    try {
      thin::parse_xml(in.stream(), *restorer, po);
    } catch (...) {
      try {
        restorer->abandon();
      } catch (const std::exception &e) {
        std::cerr << "thin_restore: " << output << ": could not zero the superblock after the failure: " << e.what()
                  << "\n";
      }
      throw;
    }
    if (!restorer->committed()) throw usage_error(fmt::format("{}: no <superblock> in the input", input));
    return exit_ok;
  } catch (const thin::xml_error &e) {
    std::string msg = fmt::format("{}: {}", input == "-" ? "<stdin>" : input, e.what());
    try {
      std::rethrow_if_nested(e);
    } catch (const thin::metadata_too_small &t) {
      msg = too_small(output, output_blocks, t.blocks_needed());
    } catch (const pdata::out_of_metadata_space &) {
      msg = too_small(output, output_blocks, blocks_needed(input, po));
    } catch (const thin::metadata_error &) {
      if (output_blocks < 16) msg = too_small(output, output_blocks, blocks_needed(input, po));
    } catch (...) {
    }
    return fail(msg);
  } catch (const usage_error &e) {
    return fail(e.what());
  } catch (const std::exception &e) {
    return fail(fmt::format("{}: {}", output, e.what()));
  }
}

}  // namespace tools
