// In-process helpers over the library (see metadata_support.h).
#include "support/metadata_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "persistent-data/checksum.h"
#include "support/test_support.h"
#include "thin/dump/dump.h"
#include "thin/ir/emitter.h"
#include "thin/ir/text_sink.h"

namespace test {

std::string recording_reporter::log() const {
  std::string s;
  for (auto &d : records) s += d.what + "\n";
  return s;
}

std::string recording_reporter::describe() const {
  std::string s;
  for (auto &d : records) s += (d.fatal ? "fatal: " : "non-fatal: ") + d.what + "\n";
  return s;
}

std::string space_map_problems::text() const {
  std::string s;
  for (auto &p : all) s += (p.fatal ? "fatal: " : "non-fatal: ") + p.what + "\n";
  return s;
}

bool space_map_problems::any_fatal() const {
  return std::any_of(all.begin(), all.end(), [](auto &p) { return p.fatal; });
}

void counting_block_io::read(pdata::block_address b, void *buf, std::size_t count) {
  for (std::size_t i = 0; i < count; i++) reads[b + i]++;
  blocks_read += count;
  read_requests.emplace_back(b, count);
  inner_.read(b, buf, count);
}

void counting_block_io::write(pdata::block_address b, const void *buf, std::size_t count) {
  write_requests++;
  inner_.write(b, buf, count);
}

std::unique_ptr<pdata::file_block_io> open_read_only(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot stat " + path);
  }
  return std::make_unique<pdata::file_block_io>(fd, static_cast<uint64_t>(st.st_size), false);
}

std::string dump_xml(pdata::block_io &io) {
  thin::string_sink s;
  auto e = thin::make_xml_emitter(s);
  thin::dump_metadata(io, {}, *e);
  return s.str();
}

void set_needs_check(std::vector<unsigned char> &image) {
  image.at(4) |= 1;
  pdata::stamp_checksum(image.data(), pdata::checksum_salt::superblock);
}

void set_needs_check(const std::string &path) {
  std::vector<unsigned char> image = read_binary(path);
  set_needs_check(image);
  write_binary(path, image);
}

}  // namespace test
