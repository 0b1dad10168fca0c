// thin_trim (see trim.h): check, read the data space map, discard its free runs.
#include "thin/trim/trim.h"
#include "persistent-data/errors.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "persistent-data/block_cache.h"
#include "persistent-data/space_map_reader.h"
#include "thin/check/check.h"
#include "thin/format/superblock.h"

namespace thin {

void fd_discard_target::discard(uint64_t off, uint64_t len) {
  if (blockdev_) {
    uint64_t range[2] = {off, len};
    if (::ioctl(fd_, BLKDISCARD, range) != 0)
      throw pdata::io_error(
          fmt::format("discard of bytes {}..{} failed: {}", off, off + len - 1, std::strerror(errno)));
    return;
  }
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                  static_cast<off_t>(len)) != 0)
    throw pdata::io_error(
        fmt::format("punching a hole at bytes {}..{} failed: {}", off, off + len - 1, std::strerror(errno)));
}

namespace {

// Keeps the first few fatal problems the check reports, silently.
class problem_collector : public check_reporter {
 public:
  std::vector<std::string> problems;
  void stage(const char *) override {}
  void info(uint64_t, uint64_t) override {}
  void visit(const damage &d) override {
    if (d.fatal && problems.size() < 5) problems.push_back(d.what);
  }
};

class sm_problems : public pdata::space_map_problem_visitor {
 public:
  std::vector<std::string> fatal;
  void problem(const pdata::space_map_problem &p) override {
    if (p.fatal) fatal.push_back(p.what);
  }
};

}  // namespace

trim_result trim_data_device(pdata::block_io &metadata, discard_target &data, pdata::progress *p) {
  trim_result res;
  auto refuse = [&](std::vector<std::string> why) {
    res.refused = true;
    res.problems = std::move(why);
    return res;
  };

  problem_collector pc;
  check_options co;
  co.progress = p;
  const check_result cr = check_metadata(metadata, co, pc);
  if (!cr.superblock_ok || cr.fatal || !cr.fully_examined) {
    if (pc.problems.empty()) pc.problems.push_back("the metadata could not be examined whole");
    return refuse(std::move(pc.problems));
  }

  const superblock sb = read_superblock(metadata);
  pdata::block_cache cache(metadata);
  sm_problems smp;
  const pdata::space_map_contents sm =
      read_space_map(cache, sb.data_sm_root(), pdata::space_map_kind::data, smp);
  if (!sm.complete || !smp.fatal.empty()) {
    if (smp.fatal.empty()) smp.fatal.push_back("the data space map could not be read whole");
    return refuse(std::move(smp.fatal));
  }
  res.data_block_size = sb.data_block_size;
  res.nr_data_blocks = sm.nr_blocks;
  const uint64_t bb = uint64_t{sb.data_block_size} * 512;
  uint64_t pool_bytes;
  if (bb == 0 || __builtin_mul_overflow(sm.nr_blocks, bb, &pool_bytes))
    return refuse({fmt::format("impossible pool size: {} data blocks of {} sectors", sm.nr_blocks,
                               sb.data_block_size)});
  if (data.size() < pool_bytes)
    return refuse({fmt::format("the data device holds {} bytes, but the metadata describes {} data blocks of {} "
                               "bytes ({} bytes): is it the pool's data device?",
                               data.size(), sm.nr_blocks, bb, pool_bytes)});

  pdata::progress &prog = pdata::or_null(p);
  prog.begin("discarding unused data blocks", sm.nr_blocks, "data blocks");
  for (uint64_t b = 0; b < sm.nr_blocks;) {
    if (sm.counts.get(b) != 0) {
      b++;
      continue;
    }
    uint64_t e = b + 1;
    while (e < sm.nr_blocks && sm.counts.get(e) == 0) e++;
    data.discard(b * bb, (e - b) * bb);
    res.discarded_ranges++;
    res.discarded_blocks += e - b;
    b = e;
    prog.set(b);
  }
  prog.end();
  return res;
}

}  // namespace thin
