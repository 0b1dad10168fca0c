// Recording I/O as a dm-log-writes log (see log_recorder.h).
#include "log-writes/log_recorder.h"

#include <cstring>

namespace pdata {

class recorded_region : public block_io {
 public:
  recorded_region(log_recorder &rec, block_io &inner, uint64_t start_sector)
      : rec_(rec), inner_(inner), start_(start_sector) {}

  block_address nr_blocks() const override { return inner_.nr_blocks(); }
  bool writable() const override { return inner_.writable(); }
  void read(block_address b, void *buf, std::size_t count) override { inner_.read(b, buf, count); }

  void write(block_address b, const void *buf, std::size_t count) override {
    inner_.write(b, buf, count);
    pending w;
    w.block = b;
    w.data.assign(static_cast<const unsigned char *>(buf), static_cast<const unsigned char *>(buf) + count * block_size);
    pending_.push_back(std::move(w));
  }
  void write_fua(block_address b, const void *buf, std::size_t count) override {
    inner_.write_fua(b, buf, count);
    rec_.writer_.write(sector_of(b), buf, count * units_per_block(), log_fua);
  }
  void flush() override {
    inner_.flush();
    for (auto &w : pending_) rec_.writer_.write(sector_of(w.block), w.data.data(), w.data.size() / unit());
    pending_.clear();
    rec_.writer_.flush(start_ * 512 / unit());
  }

 private:
  uint64_t unit() const { return rec_.writer_.sectorsize(); }
  uint64_t units_per_block() const { return block_size / unit(); }
  uint64_t sector_of(block_address b) const { return start_ * 512 / unit() + b * units_per_block(); }

  struct pending {
    block_address block;
    std::vector<unsigned char> data;
  };
  log_recorder &rec_;
  block_io &inner_;
  uint64_t start_;
  std::vector<pending> pending_;
};

log_recorder::log_recorder(byte_sink &log, uint32_t sectorsize) : writer_(log, sectorsize) {}

std::unique_ptr<block_io> log_recorder::region(block_io &inner, uint64_t start_sector) {
  return std::make_unique<recorded_region>(*this, inner, start_sector);
}

void log_recorder::mark(const std::string &text) { writer_.mark(text); }

}  // namespace pdata
