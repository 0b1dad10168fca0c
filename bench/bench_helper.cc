// thinkit_bench_helper: small measurement aids for bench/run.sh and bench/blockdev.sh.
//
//   info FILE               the metadata space map's view of FILE: device blocks,
//                           used blocks (entries with a count > 0, counted from the
//                           bitmaps) and the root's nr_allocated claim
//   floor FILE [--direct]   the speed floor: one pass of crc32c (pdata's, hardware
//                           when the CPU has it) over every used metadata block, read
//                           in disk order with large reads; counts the blocks whose
//                           stored checksum matches a persistent-data salt. FILE may
//                           be a block device (with --direct: the I/O floor)
//   floor FILE [--direct] --trees DEV,DEV...
//                           the same over the blocks of those thin devices' mapping
//                           subtrees only (what thin_delta must read, or a floor
//                           for it): their internal nodes read one by one to list
//                           them (leaves are listed, not read), then every listed
//                           block read in disk order (through gaps of up to 4
//                           blocks); the process's time includes the listing
//   evict FILE...           fsync, then posix_fadvise(DONTNEED): drops the file's
//                           clean pages from the page cache (no root needed)
//   resident FILE           how many of FILE's pages are in the page cache (mincore)
//   warm FILE...            reads FILE into the page cache: a thin metadata file's
//                           used blocks only (its holes would fill the cache with
//                           zero pages), any other file whole
//   run -o OUT -- CMD...    runs CMD (stdin/stdout/stderr inherited) and writes
//                           "wall_s user_s sys_s max_rss_kib exit" to OUT: the same
//                           wait4() rusage GNU time reports, with microsecond
//                           resolution instead of GNU time's 10 ms; exit is the
//                           child's status, or 128 + signal
//
// Output is `key=value` lines for the script. Errors: one line naming the file, exit 1.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "persistent-data/block.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/checksum.h"
#include "persistent-data/crc32c.h"
#include "persistent-data/endian.h"
#include "persistent-data/space_map_disk.h"

namespace {

using pdata::block_address;
using pdata::block_size;

// Offset of the metadata space-map root in the thin superblock (block 0).
constexpr std::size_t metadata_sm_root_offset = 192;
// Largest single read: 4 MiB.
constexpr std::size_t max_read_blocks = 1024;

struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class input_file {
 public:
  input_file(const std::string &path, bool direct) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | (direct ? O_DIRECT : 0));
    if (fd_ < 0) throw failure(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw failure(fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
    uint64_t bytes = static_cast<uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode) && ::ioctl(fd_, BLKGETSIZE64, &bytes) != 0)
      throw failure(fmt::format("{}: cannot read the device size: {}", path, std::strerror(errno)));
    nr_blocks_ = bytes / block_size;
  }
  ~input_file() { ::close(fd_); }
  input_file(const input_file &) = delete;
  input_file &operator=(const input_file &) = delete;

  block_address nr_blocks() const { return nr_blocks_; }
  int fd() const { return fd_; }

  // Reads `count` blocks at `b` into an aligned buffer.
  void read(block_address b, unsigned char *buf, std::size_t count) const {
    if (b > nr_blocks_ || count > nr_blocks_ - b)
      throw failure(fmt::format("{}: block {} (+{}) is beyond the end of the file", path_, b, count));
    std::size_t len = count * block_size, done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd_, buf + done, len - done, static_cast<off_t>(b * block_size + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw failure(fmt::format("{}: read of block {} failed: {}", path_, b, std::strerror(errno)));
      if (n == 0) throw failure(fmt::format("{}: short read at block {}", path_, b));
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  block_address nr_blocks_ = 0;
};

struct aligned_blocks {
  explicit aligned_blocks(std::size_t count) : p(new pdata::block_buffer[count]) {}
  unsigned char *data() { return p[0].raw(); }
  std::unique_ptr<pdata::block_buffer[]> p;
};

struct used_map {
  block_address sm_nr_blocks = 0;
  block_address nr_allocated = 0;  // as the space-map root claims
  std::vector<bool> used;          // per metadata block
  block_address nr_used = 0;
};

// Reads the metadata space map: superblock -> index block -> bitmaps.
used_map read_used(const input_file &f, const std::string &path) {
  aligned_blocks buf(1);
  f.read(0, buf.data(), 1);
  pdata::disk_sm_root root;
  std::memcpy(&root, buf.data() + metadata_sm_root_offset, sizeof(root));
  used_map m;
  m.sm_nr_blocks = root.nr_blocks.get();
  m.nr_allocated = root.nr_allocated.get();
  if (m.sm_nr_blocks == 0 || m.sm_nr_blocks > f.nr_blocks() || m.sm_nr_blocks > pdata::max_metadata_blocks)
    throw failure(fmt::format("{}: metadata space map has {} blocks, file has {}", path, m.sm_nr_blocks,
                              f.nr_blocks()));
  f.read(root.bitmap_root.get(), buf.data(), 1);
  pdata::metadata_index_disk index;
  std::memcpy(&index, buf.data(), sizeof(index));
  const block_address nr_bitmaps = (m.sm_nr_blocks + pdata::entries_per_bitmap - 1) / pdata::entries_per_bitmap;
  m.used.assign(m.sm_nr_blocks, false);
  for (block_address i = 0; i < nr_bitmaps; i++) {
    f.read(index.index[i].blocknr.get(), buf.data(), 1);
    const unsigned char *entries = buf.data() + sizeof(pdata::bitmap_header_disk);
    for (uint32_t e = 0; e < pdata::entries_per_bitmap; e++) {
      block_address b = i * pdata::entries_per_bitmap + e;
      if (b >= m.sm_nr_blocks) break;
      if (pdata::bitmap_get(entries, e) != 0) {
        m.used[b] = true;
        m.nr_used++;
      }
    }
  }
  return m;
}

int cmd_info(const std::string &path) {
  input_file f(path, false);
  used_map m = read_used(f, path);
  fmt::print("file_blocks={}\nsm_nr_blocks={}\nused_blocks={}\nnr_allocated={}\nused_bytes={}\n", f.nr_blocks(),
             m.sm_nr_blocks, m.nr_used, m.nr_allocated, m.nr_used * block_size);
  return 0;
}

// Calls fn(first_block, count, data) for each run of used blocks, read with
// reads of up to max_read_blocks.
template <typename Fn>
uint64_t for_each_used_run(const input_file &f, const used_map &m, Fn fn) {
  aligned_blocks buf(max_read_blocks);
  uint64_t reads = 0;
  block_address b = 0;
  while (b < m.sm_nr_blocks) {
    if (!m.used[b]) {
      b++;
      continue;
    }
    std::size_t n = 1;
    while (n < max_read_blocks && b + n < m.sm_nr_blocks && m.used[b + n]) n++;
    f.read(b, buf.data(), n);
    reads++;
    fn(b, n, static_cast<const unsigned char *>(buf.data()));
    b += n;
  }
  return reads;
}

// Offset of the mapping tree's root in the thin superblock.
constexpr std::size_t data_mapping_root_offset = 320;

// The blocks of device `dev`'s mapping subtree, added to `out`: the top
// level searched for its root, then every node below it. Malformed nodes
// end the search with an error (this is a measuring aid for sound pools).
void subtree_blocks(const input_file &f, const std::string &path, uint64_t dev, std::vector<block_address> &out) {
  aligned_blocks buf(1);
  auto node = [&](block_address b) {
    if (b >= f.nr_blocks()) throw failure(fmt::format("{}: node {} is beyond the end", path, b));
    f.read(b, buf.data(), 1);
    if (auto err = pdata::validate_btree_node(buf.data(), b, 8)) throw failure(fmt::format("{}: block {}: {}", path, b, *err));
    return pdata::btree_node_view(buf.data());
  };
  f.read(0, buf.data(), 1);
  block_address b = pdata::load_le64(buf.data() + data_mapping_root_offset);
  for (unsigned depth = 0;; depth++) {  // the top level: dev -> subtree root
    if (depth > 8) throw failure(fmt::format("{}: the top level is too deep", path));
    auto n = node(b);
    uint32_t i = 0;
    while (i < n.nr_entries() && n.key(i) <= dev) i++;
    if (i == 0 || (n.is_leaf() && n.key(i - 1) != dev)) throw failure(fmt::format("{}: no device {}", path, dev));
    b = n.value64(i - 1);
    if (n.is_leaf()) break;
  }
  // The subtree's height from its leftmost path; then only internal nodes
  // are read: the children of the nodes one level above the leaves are
  // listed as leaves unread (B-tree leaves all lie at one depth).
  unsigned height = 0;
  for (block_address x = b;; height++) {
    if (height > 8) throw failure(fmt::format("{}: device {}'s tree is too deep", path, dev));
    auto n = node(x);
    if (n.is_leaf()) break;
    if (n.nr_entries() == 0) throw failure(fmt::format("{}: block {}: an empty internal node", path, x));
    x = n.value64(0);
  }
  std::vector<std::pair<block_address, unsigned>> todo{{b, height}};
  while (!todo.empty()) {
    auto [x, h] = todo.back();
    todo.pop_back();
    out.push_back(x);
    if (h == 0) continue;
    auto n = node(x);
    if (n.is_leaf()) throw failure(fmt::format("{}: block {}: a leaf above the leaves' level", path, x));
    for (uint32_t i = 0; i < n.nr_entries(); i++) todo.emplace_back(n.value64(i), h - 1);
  }
}

// Reads `blocks` (sorted, distinct) in disk order, joining runs through gaps of
// up to 4 unwanted blocks into reads of up to max_read_blocks.
template <typename Fn>
uint64_t for_each_listed_run(const input_file &f, const std::vector<block_address> &blocks, Fn fn) {
  aligned_blocks buf(max_read_blocks);
  uint64_t reads = 0;
  for (std::size_t i = 0; i < blocks.size();) {
    std::size_t j = i + 1;
    while (j < blocks.size() && blocks[j] - blocks[j - 1] <= 5 && blocks[j] - blocks[i] < max_read_blocks) j++;
    const std::size_t n = blocks[j - 1] - blocks[i] + 1;
    f.read(blocks[i], buf.data(), n);
    reads++;
    for (std::size_t k = i; k < j; k++) fn(blocks[k], buf.data() + (blocks[k] - blocks[i]) * block_size);
    i = j;
  }
  return reads;
}

int cmd_floor(const std::string &path, bool direct, const std::vector<uint64_t> &trees) {
  std::vector<block_address> listed;
  if (!trees.empty()) {
    input_file f(path, direct);
    for (uint64_t dev : trees) subtree_blocks(f, path, dev, listed);
    std::sort(listed.begin(), listed.end());
    listed.erase(std::unique(listed.begin(), listed.end()), listed.end());
  }
  auto t0 = std::chrono::steady_clock::now();
  input_file f(path, direct);
  const uint32_t salts[] = {static_cast<uint32_t>(pdata::checksum_salt::superblock),
                            static_cast<uint32_t>(pdata::checksum_salt::btree_node),
                            static_cast<uint32_t>(pdata::checksum_salt::bitmap),
                            static_cast<uint32_t>(pdata::checksum_salt::index_block)};
  uint64_t valid = 0;
  uint32_t fold = 0;
  auto sum = [&](const unsigned char *blk) {
    uint32_t crc = pdata::crc32c_raw(0xffffffffu, blk + 4, block_size - 4);
    uint32_t diff = crc ^ pdata::stored_checksum(blk);
    for (uint32_t s : salts)
      if (diff == s) valid++;
    fold ^= crc;
  };
  uint64_t reads = 0, nr_blocks = 0;
  if (trees.empty()) {
    used_map m = read_used(f, path);
    nr_blocks = m.nr_used;
    reads = for_each_used_run(f, m, [&](block_address, std::size_t n, const unsigned char *data) {
      for (std::size_t i = 0; i < n; i++) sum(data + i * block_size);
    });
  } else {
    nr_blocks = listed.size();
    reads = for_each_listed_run(f, listed, [&](block_address, const unsigned char *blk) { sum(blk); });
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double gib = static_cast<double>(nr_blocks * block_size) / (1024.0 * 1024.0 * 1024.0);
  fmt::print("used_blocks={}\nvalid_checksums={}\nreads={}\nhardware_crc={}\nseconds={:.4f}\nGiB_per_s={:.2f}\nfold={:08x}\n",
             nr_blocks, valid, reads, pdata::crc32c_hardware() ? 1 : 0, secs, secs > 0 ? gib / secs : 0.0, fold);
  return 0;
}

int cmd_evict(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw failure(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  // fsync so that no page is dirty (dirty pages are not dropped), then drop.
  if (::fsync(fd) != 0 && errno != EINVAL) {
    int e = errno;
    ::close(fd);
    throw failure(fmt::format("{}: fsync failed: {}", path, std::strerror(e)));
  }
  int rc = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  if (rc != 0) throw failure(fmt::format("{}: posix_fadvise failed: {}", path, std::strerror(rc)));
  return 0;
}

int cmd_resident(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw failure(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    fmt::print("pages=0\nresident=0\n");
    return 0;
  }
  const std::size_t len = static_cast<std::size_t>(st.st_size);
  void *p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw failure(fmt::format("{}: mmap failed: {}", path, std::strerror(errno)));
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((len + page - 1) / page);
  int rc = ::mincore(p, len, vec.data());
  int e = errno;
  ::munmap(p, len);
  if (rc != 0) throw failure(fmt::format("{}: mincore failed: {}", path, std::strerror(e)));
  std::size_t resident = 0;
  for (unsigned char v : vec) resident += v & 1u;
  fmt::print("pages={}\nresident={}\n", vec.size(), resident);
  return 0;
}

bool is_thin_metadata(const input_file &f) {
  if (f.nr_blocks() == 0) return false;
  aligned_blocks buf(1);
  f.read(0, buf.data(), 1);
  return pdata::load_le64(buf.data() + 32) == 27022010;  // the thin superblock magic
}

int cmd_warm(const std::string &path) {
  input_file f(path, false);
  if (is_thin_metadata(f)) {
    used_map m = read_used(f, path);
    for_each_used_run(f, m, [](block_address, std::size_t, const unsigned char *) {});
    return 0;
  }
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(f.fd(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw failure(fmt::format("{}: read failed: {}", path, std::strerror(errno)));
    if (n == 0) return 0;
  }
}

double seconds(const struct timeval &tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

int cmd_run(const std::string &out, char **argv) {
  std::FILE *o = std::fopen(out.c_str(), "w");
  if (!o) throw failure(fmt::format("{}: cannot create: {}", out, std::strerror(errno)));
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) throw failure(fmt::format("fork failed: {}", std::strerror(errno)));
  if (pid == 0) {
    ::execvp(argv[0], argv);
    std::fprintf(stderr, "thinkit_bench_helper: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) throw failure(fmt::format("wait4 failed: {}", std::strerror(errno)));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  fmt::print(o, "{:.6f} {:.6f} {:.6f} {} {}\n", wall, seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss, code);
  std::fclose(o);
  return 0;
}

int usage() {
  fmt::print(stderr,
             "usage: thinkit_bench_helper info FILE | floor FILE [--direct] [--trees DEV,DEV...] |\n"
             "       evict FILE... | resident FILE |\n"
             "       warm FILE... | run -o OUT -- CMD...\n");
  return 1;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const std::string cmd = argv[1];
  try {
    if (cmd == "info" && argc == 3) return cmd_info(argv[2]);
    if (cmd == "floor") {
      bool direct = false, ok = true;
      std::vector<uint64_t> trees;
      for (int i = 3; i < argc && ok; i++) {
        const std::string a = argv[i];
        if (a == "--direct") {
          direct = true;
        } else if (a == "--trees" && i + 1 < argc) {
          std::string list = argv[++i];
          for (std::size_t at = 0; at <= list.size();) {
            std::size_t comma = std::min(list.find(',', at), list.size());
            const std::string item = list.substr(at, comma - at);
            char *end = nullptr;
            errno = 0;
            unsigned long long v = std::strtoull(item.c_str(), &end, 10);
            if (item.empty() || *end || errno) ok = false;
            trees.push_back(v);
            at = comma + 1;
          }
        } else {
          ok = false;
        }
      }
      if (ok) return cmd_floor(argv[2], direct, trees);
    }
    if (cmd == "resident" && argc == 3) return cmd_resident(argv[2]);
    if (cmd == "run" && argc >= 6 && std::string(argv[2]) == "-o" && std::string(argv[4]) == "--")
      return cmd_run(argv[3], argv + 5);
    if (cmd == "warm") {
      for (int i = 2; i < argc; i++) cmd_warm(argv[i]);
      return 0;
    }
    if (cmd == "evict") {
      for (int i = 2; i < argc; i++) cmd_evict(argv[i]);
      return 0;
    }
  } catch (const std::exception &e) {
    fmt::print(stderr, "thinkit_bench_helper: {}\n", e.what());
    return 1;
  }
  return usage();
}
