// thin_extract (see extract.h): an emitter that copies each selected device's
// mapped runs from the data device to its output as the mappings stream in.
#include "thin/extract/extract.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "thin/dump/dump.h"
#include "thin/format/superblock.h"
#include "thin/ir/emitter.h"
#include "thin/ir/xml_parser.h"
#include "thin/repair/repair.h"

namespace thin {

namespace {

// Data or output I/O failed. Not a pdata::io_error: the tree walk takes those
// for unreadable metadata nodes.
class extract_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace

void fd_data_reader::read_at(uint64_t off, void *buf, std::size_t len) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd_, static_cast<char *>(buf) + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw extract_error(fmt::format("read at byte {} failed: {}", off + done, std::strerror(errno)));
    }
    if (n == 0) throw extract_error(fmt::format("short read at byte {} (the device ended)", off + done));
    done += static_cast<std::size_t>(n);
  }
}

void fd_volume_writer::write_at(uint64_t off, const void *buf, std::size_t len) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd_, static_cast<const char *>(buf) + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw extract_error(fmt::format("write at byte {} failed: {}", off + done, std::strerror(errno)));
    }
    if (n == 0) throw extract_error(fmt::format("write at byte {} wrote nothing (end of the device?)", off + done));
    done += static_cast<std::size_t>(n);
  }
}

void fd_volume_writer::finish(uint64_t size) {
  if (regular_ && ::ftruncate(fd_, static_cast<off_t>(size)) != 0)
    throw extract_error(fmt::format("cannot set the size to {} bytes: {}", size, std::strerror(errno)));
  // A character device (/dev/null) cannot be synced; that is not a failure.
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS)
    throw extract_error(fmt::format("fsync failed: {}", std::strerror(errno)));
}

namespace {

// Reads on the calling thread, writes on a writer thread, through a few
// buffers of max_io bytes: one is written while the next is read.
class copier {
 public:
  copier(data_reader &data, std::size_t max_io) : data_(data), max_io_(std::max<std::size_t>(max_io, 4096)) {}
  // Queued writes are dropped (only an error unwinds past them); one in
  // progress is waited for, so its output must outlive the copier.
  ~copier() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
      queue_.clear();
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
  }
  copier(const copier &) = delete;
  copier &operator=(const copier &) = delete;

  void copy(volume_writer &out, uint64_t out_off, uint64_t data_off, uint64_t len) {
    while (len) {
      const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(len, max_io_));
      unsigned char *buf = take_buffer();
      try {
        data_.read_at(data_off, buf, n);
      } catch (...) {
        give_back(buf);
        throw;
      }
      push({&out, out_off, buf, n});
      out_off += n;
      data_off += n;
      len -= n;
    }
  }

  void zero(volume_writer &out, uint64_t off, uint64_t len) {
    if (zeros_.empty()) zeros_.assign(max_io_, 0);
    while (len) {
      const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(len, max_io_));
      push({&out, off, nullptr, n});
      off += n;
      len -= n;
    }
  }

  // Waits until every queued write is done; rethrows a write failure.
  void drain() {
    std::unique_lock<std::mutex> l(m_);
    cv_.wait(l, [&] { return (queue_.empty() && !busy_) || error_; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  struct job {
    volume_writer *out;
    uint64_t off;
    unsigned char *buf;  // nullptr: zeros
    std::size_t len;
  };
  struct free_deleter {
    void operator()(unsigned char *p) const { std::free(p); }
  };
  static constexpr std::size_t nr_buffers = 3;

  unsigned char *take_buffer() {
    std::unique_lock<std::mutex> l(m_);
    if (free_.empty() && buffers_.size() < nr_buffers) {
      void *p = std::aligned_alloc(4096, (max_io_ + 4095) / 4096 * 4096);
      if (!p) throw std::bad_alloc();
      buffers_.emplace_back(static_cast<unsigned char *>(p));
      return buffers_.back().get();
    }
    cv_.wait(l, [&] { return !free_.empty() || error_; });
    if (error_) std::rethrow_exception(error_);
    unsigned char *b = free_.back();
    free_.pop_back();
    return b;
  }

  void give_back(unsigned char *b) {
    {
      std::lock_guard<std::mutex> l(m_);
      free_.push_back(b);
    }
    cv_.notify_all();
  }

  void push(const job &j) {
    {
      std::lock_guard<std::mutex> l(m_);
      if (error_) {
        if (j.buf) free_.push_back(j.buf);
        std::rethrow_exception(error_);
      }
      queue_.push_back(j);
      if (!writer_.joinable()) writer_ = std::thread([this] { run(); });
    }
    cv_.notify_all();
  }

  void run() {
    std::unique_lock<std::mutex> l(m_);
    for (;;) {
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      job j = queue_.front();
      queue_.pop_front();
      busy_ = true;
      const bool skip = static_cast<bool>(error_);
      l.unlock();
      std::exception_ptr err;
      if (!skip) {
        try {
          j.out->write_at(j.off, j.buf ? j.buf : zeros_.data(), j.len);
        } catch (...) {
          err = std::current_exception();
        }
      }
      l.lock();
      if (err && !error_) error_ = err;
      if (j.buf) free_.push_back(j.buf);
      busy_ = false;
      cv_.notify_all();
    }
  }

  data_reader &data_;
  const std::size_t max_io_;
  std::vector<std::unique_ptr<unsigned char, free_deleter>> buffers_;
  std::vector<unsigned char *> free_;
  std::vector<unsigned char> zeros_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<job> queue_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread writer_;
};

struct run {
  uint64_t origin = 0, data = 0, len = 0;
};

// The emitter that extracts: selected devices' runs go to the copier.
class extract_emitter : public emitter {
 public:
  extract_emitter(data_reader &data, const extract_options &opts, const open_volume &open, extract_report &report)
      : data_(data), opts_(opts), open_(open), report_(report), copier_(data, opts.max_io) {}

  void begin_superblock(const superblock_info &sb) override {
    if (sb.data_block_size == 0) throw metadata_error("the metadata gives a data block size of 0");
    report_.data_block_size = sb.data_block_size;
    block_bytes_ = uint64_t{sb.data_block_size} * 512;
  }
  void end_superblock() override {}

  void begin_device(const device_info &dev) override {
    dev_ = dev.dev_id;
    active_ = !opts_.dev_id || *opts_.dev_id == dev.dev_id;
    if (!active_) return;
    if (block_bytes_ == 0) throw metadata_error("a device appears before the superblock");
    seen_ = true;
    out_ = open_(dev.dev_id);
    if (opts_.size && out_->capacity() && *opts_.size > *out_->capacity())
      throw extract_error(fmt::format("device {}: --size {} is larger than the output device ({} bytes)", dev.dev_id,
                                      *opts_.size, *out_->capacity()));
    cur_ = extracted_device{};
    cur_.dev_id = dev.dev_id;
    pos_ = 0;
    end_ = 0;
    pending_ = run{};
  }

  void end_device() override {
    if (!active_) return;
    flush_run();
    const uint64_t size = opts_.size.value_or(end_);
    if (out_->needs_zeros() && pos_ < size) copier_.zero(*out_, pos_, size - pos_);
    copier_.drain();
    out_->finish(size);
    out_.reset();
    cur_.size = size;
    report_.devices.push_back(cur_);
    active_ = false;
  }

  void range_map(uint64_t origin, uint64_t data, uint32_t, uint64_t len) override { add(origin, data, len); }
  void single_map(uint64_t origin, uint64_t data, uint32_t) override { add(origin, data, 1); }

  void begin_def(const std::string &name) override {
    def_ = &defs_[name];
    def_->clear();
  }
  void end_def() override { def_ = nullptr; }
  void ref(const std::string &name) override {
    auto it = defs_.find(name);
    if (it == defs_.end()) throw metadata_error(fmt::format("<ref name=\"{}\"> names no <def>", name));
    for (const run &r : it->second) add(r.origin, r.data, r.len);
  }

  bool seen() const { return seen_; }

 private:
  void add(uint64_t origin, uint64_t data, uint64_t len) {
    if (def_) {
      if (!def_->empty() && def_->back().origin + def_->back().len == origin &&
          def_->back().data + def_->back().len == data)
        def_->back().len += len;
      else
        def_->push_back({origin, data, len});
      return;
    }
    if (!active_ || len == 0) return;
    cur_.mapped_blocks += len;
    if (pending_.len && pending_.origin + pending_.len == origin && pending_.data + pending_.len == data) {
      pending_.len += len;
      return;
    }
    flush_run();
    pending_ = {origin, data, len};
  }

  void lose(uint64_t begin, uint64_t end, const std::string &why) {
    report_.lost.push_back({cur_.dev_id, pdata::key_range{begin, end}, why});
  }

  void flush_run() {
    const run r = pending_;
    pending_ = run{};
    if (!r.len) return;
    // Virtual and data byte ranges; an absurd block number is lost, not wrapped.
    uint64_t out_off, out_len, data_off;
    if (__builtin_mul_overflow(r.origin, block_bytes_, &out_off) ||
        __builtin_mul_overflow(r.len, block_bytes_, &out_len) || out_off + out_len < out_off) {
      lose(r.origin, r.origin + r.len, "virtual blocks beyond any possible device size");
      return;
    }
    end_ = std::max(end_, out_off + out_len);
    uint64_t want = out_len;
    if (opts_.size) {
      if (out_off >= *opts_.size) {
        cur_.beyond_size_blocks += r.len;
        return;
      }
      if (out_off + want > *opts_.size) {
        cur_.beyond_size_blocks += (out_off + want - *opts_.size) / block_bytes_;
        want = *opts_.size - out_off;
      }
    }
    if (auto cap = out_->capacity(); cap && out_off + want > *cap)
      throw extract_error(fmt::format("device {}: blocks up to {} are mapped, beyond the end of the output device "
                                      "({} bytes); give --size or a larger device",
                                      cur_.dev_id, r.origin + r.len - 1, *cap));
    uint64_t have = want;  // bytes the data device holds for this run
    if (__builtin_mul_overflow(r.data, block_bytes_, &data_off) || data_off >= data_.size())
      have = 0;
    else
      have = std::min(want, data_.size() - data_off);
    if (out_->needs_zeros() && out_off > pos_) copier_.zero(*out_, pos_, out_off - pos_);
    if (have) copier_.copy(*out_, out_off, data_off, have);
    cur_.copied_bytes += have;
    if (have < want) {
      const uint64_t first_lost = r.origin + have / block_bytes_;
      lose(first_lost, r.origin + r.len,
           fmt::format("mapped to data blocks {}..{}, beyond the end of the data device ({} bytes)",
                       r.data + (first_lost - r.origin), r.data + r.len - 1, data_.size()));
      if (out_->needs_zeros()) copier_.zero(*out_, out_off + have, want - have);
    }
    pos_ = std::max(pos_, out_off + want);
  }

  data_reader &data_;
  const extract_options &opts_;
  const open_volume &open_;
  extract_report &report_;
  std::unique_ptr<volume_writer> out_;  // before copier_: a write in progress at unwinding uses it
  copier copier_;
  uint64_t block_bytes_ = 0;
  uint64_t dev_ = 0;
  bool active_ = false, seen_ = false;
  extracted_device cur_;
  uint64_t pos_ = 0;  // bytes of the output written or zeroed so far
  uint64_t end_ = 0;  // end of the last mapped block
  run pending_;
  std::map<std::string, std::vector<run>> defs_;
  std::vector<run> *def_ = nullptr;
};

bool covers(const extract_lost &l, uint64_t dev) {
  if (l.dev) return *l.dev == dev;
  return !l.keys || l.keys->contains(dev);
}

void check_found(const extract_emitter &e, const extract_options &opts, const extract_report &report) {
  if (!opts.dev_id || e.seen()) return;
  for (auto &l : report.lost)
    if (covers(l, *opts.dev_id)) return;
  throw metadata_error(fmt::format("device {} is not in the metadata", *opts.dev_id));
}

}  // namespace

std::vector<std::string> extract_report::lost_lines() const {
  std::vector<std::string> lines;
  const uint64_t bb = uint64_t{data_block_size} * 512;
  for (auto &l : lost) {
    std::string where;
    if (l.dev) {
      where = fmt::format("device {}", *l.dev);
      if (l.keys && l.keys->end) {
        where += fmt::format(": blocks {}..{}", l.keys->begin, *l.keys->end - 1);
        if (bb && *l.keys->end <= UINT64_MAX / bb)
          where += fmt::format(" (bytes {}..{})", l.keys->begin * bb, *l.keys->end * bb - 1);
      } else if (l.keys) {
        where += fmt::format(": blocks from {}", l.keys->begin);
        if (bb && l.keys->begin <= UINT64_MAX / bb) where += fmt::format(" (byte {} on)", l.keys->begin * bb);
      }
    } else if (l.keys) {
      where = fmt::format("devices {}", pdata::to_string(*l.keys));
    } else {
      where = "every device";
    }
    lines.push_back(fmt::format("{} lost: {}", where, l.why));
  }
  return lines;
}

extract_report extract_from_metadata(pdata::block_io &metadata, data_reader &data, const extract_options &opts,
                                     const open_volume &open) {
  extract_report report;
  extract_emitter e(data, opts, open, report);
  if (opts.use_metadata_snap) {
    dump_options d;
    d.use_metadata_snap = true;
    d.metadata_snap_location = opts.metadata_snap_location;
    if (opts.dev_id) d.dev_ids.insert(*opts.dev_id);
    d.progress = opts.progress;
    dump_metadata(metadata, d, e);
  } else {
    repair_report r;
    repair_options ro;
    ro.progress = opts.progress;
    repair_dump(metadata, ro, e, r);
    for (auto &l : r.lost) {
      if (opts.dev_id && l.dev && *l.dev != *opts.dev_id) continue;
      if (opts.dev_id && !l.dev && l.keys && !l.keys->contains(*opts.dev_id)) continue;
      std::string why = l.block ? fmt::format("metadata block {}: {}", l.block, l.why) : l.why;
      report.lost.push_back({l.dev, l.keys, why});
    }
  }
  check_found(e, opts, report);
  return report;
}

extract_report extract_from_xml(std::istream &xml, data_reader &data, const extract_options &opts,
                                const open_volume &open) {
  extract_report report;
  extract_emitter e(data, opts, open, report);
  xml_parse_options po;
  po.progress = opts.progress;
  parse_xml(xml, e, po);
  check_found(e, opts, report);
  return report;
}

}  // namespace thin
