// Implementations of the block I/O seam (see block_io.h).
#include "persistent-data/block_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "persistent-data/errors.h"

namespace pdata {

namespace {

void check_range(block_address b, std::size_t count, block_address nr_blocks, const char *what) {
  if (b > nr_blocks || count > nr_blocks - b)
    throw io_error(fmt::format("{} of block {} (+{}) is beyond the end of the device ({} blocks)", what,
                               b, count, nr_blocks));
}

}  // namespace

//-------------------------------------------------------------- file_block_io

file_block_io::file_block_io(int fd, uint64_t size_bytes, bool writable, bool direct)
    : fd_(fd), nr_blocks_(size_bytes / block_size), writable_(writable), direct_(direct) {}

file_block_io::~file_block_io() { ::close(fd_); }

void file_block_io::read(block_address b, void *buf, std::size_t count) {
  check_range(b, count, nr_blocks_, "read");
  const bool bounce = direct_ && (reinterpret_cast<uintptr_t>(buf) % block_size) != 0;
  std::unique_ptr<block_buffer[]> tmp;
  unsigned char *dst = static_cast<unsigned char *>(buf);
  if (bounce) {
    tmp.reset(new block_buffer[count]);
    dst = tmp[0].raw();
  }
  std::size_t len = count * block_size, done = 0;
  off_t off = static_cast<off_t>(b * block_size);
  while (done < len) {
    ssize_t n = ::pread(fd_, dst + done, len - done, off + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error(fmt::format("read of block {} failed: {}", b + done / block_size, std::strerror(errno)));
    }
    if (n == 0) throw io_error(fmt::format("short read at block {}", b + done / block_size));
    done += static_cast<std::size_t>(n);
  }
  if (bounce) std::memcpy(buf, dst, len);
}

void file_block_io::write(block_address b, const void *buf, std::size_t count) {
  if (!writable_) throw io_error("write to a device opened read-only");
  check_range(b, count, nr_blocks_, "write");
  const bool bounce = direct_ && (reinterpret_cast<uintptr_t>(buf) % block_size) != 0;
  std::unique_ptr<block_buffer[]> tmp;
  const unsigned char *src = static_cast<const unsigned char *>(buf);
  std::size_t len = count * block_size, done = 0;
  if (bounce) {
    tmp.reset(new block_buffer[count]);
    std::memcpy(tmp[0].raw(), buf, len);
    src = tmp[0].raw();
  }
  off_t off = static_cast<off_t>(b * block_size);
  while (done < len) {
    ssize_t n = ::pwrite(fd_, src + done, len - done, off + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error(fmt::format("write of block {} failed: {}", b + done / block_size, std::strerror(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
}

void file_block_io::flush() {
  if (!writable_) return;
  if (::fsync(fd_) != 0) throw io_error(fmt::format("flush (fsync) failed: {}", std::strerror(errno)));
}

//------------------------------------------------------------ memory_block_io

memory_block_io::memory_block_io(block_address nr_blocks) : nr_blocks_(nr_blocks) {}

memory_block_io::memory_block_io(const std::vector<unsigned char> &image)
    : nr_blocks_(image.size() / block_size) {
  static const block_buffer zero{};
  for (block_address b = 0; b < nr_blocks_; b++) {
    const unsigned char *p = image.data() + b * block_size;
    if (std::memcmp(p, zero.raw(), block_size) == 0) continue;
    auto buf = std::make_unique<block_buffer>();
    std::memcpy(buf->raw(), p, block_size);
    blocks_[b] = std::move(buf);
  }
}

void memory_block_io::read(block_address b, void *buf, std::size_t count) {
  check_range(b, count, nr_blocks_, "read");
  auto *dst = static_cast<unsigned char *>(buf);
  for (std::size_t i = 0; i < count; i++) {
    auto it = blocks_.find(b + i);
    if (it == blocks_.end())
      std::memset(dst + i * block_size, 0, block_size);
    else
      std::memcpy(dst + i * block_size, it->second->raw(), block_size);
  }
}

void memory_block_io::write(block_address b, const void *buf, std::size_t count) {
  check_range(b, count, nr_blocks_, "write");
  auto *src = static_cast<const unsigned char *>(buf);
  for (std::size_t i = 0; i < count; i++) {
    auto &slot = blocks_[b + i];
    if (!slot) slot = std::make_unique<block_buffer>();
    std::memcpy(slot->raw(), src + i * block_size, block_size);
  }
}

std::vector<unsigned char> memory_block_io::image() const {
  std::vector<unsigned char> out(nr_blocks_ * block_size, 0);
  for (auto &[b, buf] : blocks_) std::memcpy(out.data() + b * block_size, buf->raw(), block_size);
  return out;
}

//--------------------------------------------------- fault_injecting_block_io

void fault_injecting_block_io::read(block_address b, void *buf, std::size_t count) {
  auto *dst = static_cast<unsigned char *>(buf);
  for (std::size_t i = 0; i < count; i++) {
    block_address blk = b + i;
    reads_++;
    if (reads_ == fail_read_n_ || bad_reads_.count(blk))
      throw io_error(fmt::format("injected read failure at block {}", blk));
    // The newest pending (unflushed) write wins: the cache serves reads.
    bool hit = false;
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it)
      if (it->first == blk) {
        std::memcpy(dst + i * block_size, it->second->raw(), block_size);
        hit = true;
        break;
      }
    if (!hit) inner_.read(blk, dst + i * block_size, 1);
  }
}

void fault_injecting_block_io::write(block_address b, const void *buf, std::size_t count) {
  auto *src = static_cast<const unsigned char *>(buf);
  for (std::size_t i = 0; i < count; i++) {
    block_address blk = b + i;
    writes_++;
    if (writes_ == fail_write_n_ || bad_writes_.count(blk))
      throw io_error(fmt::format("injected write failure at block {}", blk));
    if (blk >= inner_.nr_blocks())
      throw io_error(fmt::format("write of block {} is beyond the end of the device", blk));
    if (volatile_) {
      auto copy = std::make_unique<block_buffer>();
      std::memcpy(copy->raw(), src + i * block_size, block_size);
      pending_.emplace_back(blk, std::move(copy));
    } else {
      inner_.write(blk, src + i * block_size, 1);
    }
  }
}

void fault_injecting_block_io::write_fua(block_address b, const void *buf, std::size_t count) {
  auto *src = static_cast<const unsigned char *>(buf);
  for (std::size_t i = 0; i < count; i++) {
    block_address blk = b + i;
    writes_++;
    if (writes_ == fail_write_n_ || bad_writes_.count(blk))
      throw io_error(fmt::format("injected write failure at block {}", blk));
    // A later FUA write supersedes older pending copies of the block.
    for (auto it = pending_.begin(); it != pending_.end();)
      it = it->first == blk ? pending_.erase(it) : std::next(it);
    inner_.write(blk, src + i * block_size, 1);
  }
}

void fault_injecting_block_io::flush() {
  flushes_++;
  for (auto &[blk, buf] : pending_) inner_.write(blk, buf->raw(), 1);
  pending_.clear();
  inner_.flush();
}

std::size_t fault_injecting_block_io::crash_into(block_io &target, double keep_fraction, uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::size_t lost = 0;
  for (auto &[blk, buf] : pending_) {
    if (keep_fraction > 0.0 && coin(rng) < keep_fraction)
      target.write(blk, buf->raw(), 1);
    else
      lost++;
  }
  return lost;
}

std::size_t fault_injecting_block_io::crash(double keep_fraction, uint64_t seed) {
  std::size_t lost = crash_into(inner_, keep_fraction, seed);
  pending_.clear();
  return lost;
}

}  // namespace pdata
