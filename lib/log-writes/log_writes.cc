// dm-log-writes log reading and writing (see log_writes.h).
#include "log-writes/log_writes.h"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "persistent-data/errors.h"

namespace pdata {

std::string describe(const log_entry &e) {
  if (e.flags & log_mark) return fmt::format("{} MARK '{}'", e.index, e.mark);
  std::string f;
  if (e.flags & log_fua) f += " FUA";
  if (e.flags & log_metadata) f += " META";
  if (e.flags & log_discard) return fmt::format("{} DISCARD sector {} +{}{}", e.index, e.sector, e.nr_sectors, f);
  if ((e.flags & log_flush) && e.nr_sectors == 0) return fmt::format("{} FLUSH sector {}{}", e.index, e.sector, f);
  return fmt::format("{} write sector {} +{}{}{}", e.index, e.sector, e.nr_sectors, (e.flags & log_flush) ? " FLUSH" : "",
                     f);
}

log_reader::log_reader(byte_source &src) : src_(src) {
  log_super_disk s;
  if (src_.read_at(0, &s, sizeof(s)) != sizeof(s)) throw pdata::bad_input_error("too short to be a dm-log-writes log");
  if (s.magic.get() != log_writes_magic)
    throw pdata::bad_input_error(fmt::format("not a dm-log-writes log (magic {:#x})", s.magic.get()));
  if (s.version.get() != log_writes_version)
    throw pdata::bad_input_error(fmt::format("dm-log-writes log version {} is not supported", s.version.get()));
  sectorsize_ = s.sectorsize.get();
  if (sectorsize_ < 512 || sectorsize_ > 65536 || (sectorsize_ & (sectorsize_ - 1)))
    throw pdata::bad_input_error(fmt::format("dm-log-writes log has an invalid sector size {}", sectorsize_));
  nr_entries_ = s.nr_entries.get();
  rewind();
}

void log_reader::rewind() {
  pos_ = sectorsize_;
  index_ = 0;
}

std::optional<log_entry> log_reader::next() {
  if (trust_header_ && index_ >= nr_entries_) return std::nullopt;
  std::vector<unsigned char> hdr(sectorsize_);
  if (src_.read_at(pos_, hdr.data(), sectorsize_) != sectorsize_) return std::nullopt;
  log_entry_disk d;
  std::memcpy(&d, hdr.data(), sizeof(d));
  log_entry e;
  e.index = index_;
  e.sector = d.sector.get();
  e.nr_sectors = d.nr_sectors.get();
  e.flags = d.flags.get();
  uint64_t dlen = d.data_len.get();
  if (index_ >= nr_entries_) {
    // Past the header's count: only accept what looks like a real entry.
    bool all_zero = e.sector == 0 && e.nr_sectors == 0 && e.flags == 0 && dlen == 0;
    if (all_zero || (e.flags & ~uint64_t(31)) || dlen > sectorsize_ - 32) return std::nullopt;
  }
  if (e.flags & log_mark) {
    if (dlen > sectorsize_ - 32) throw pdata::bad_input_error(fmt::format("log entry {}: mark text too long", index_));
    e.mark.assign(reinterpret_cast<const char *>(hdr.data() + 32), dlen);
  }
  pos_ += sectorsize_;
  e.payload_offset = pos_;
  if (!(e.flags & (log_discard | log_mark))) {
    // (Compared by division: a garbage nr_sectors must not overflow.)
    uint64_t size = src_.size();
    if (pos_ > size || e.nr_sectors > (size - pos_) / sectorsize_) {
      if (index_ < nr_entries_)
        throw pdata::bad_input_error(fmt::format("log truncated in the payload of entry {}", index_));
      return std::nullopt;
    }
    pos_ += e.nr_sectors * sectorsize_;
  }
  index_++;
  return e;
}

std::vector<unsigned char> log_reader::payload(const log_entry &e) {
  if (e.flags & (log_discard | log_mark)) return {};
  std::vector<unsigned char> out(e.nr_sectors * sectorsize_);
  if (src_.read_at(e.payload_offset, out.data(), out.size()) != out.size())
    throw pdata::bad_input_error(fmt::format("log entry {}: payload truncated", e.index));
  return out;
}

log_writer::log_writer(byte_sink &sink, uint32_t sectorsize) : sink_(sink), sectorsize_(sectorsize), pos_(sectorsize) {
  finish();
}

void log_writer::header(uint64_t sector, uint64_t nr_sectors, uint64_t flags, const std::string &text) {
  std::vector<unsigned char> h(sectorsize_, 0);
  log_entry_disk d;
  d.sector.set(sector);
  d.nr_sectors.set(nr_sectors);
  d.flags.set(flags);
  d.data_len.set(text.size());
  std::memcpy(h.data(), &d, sizeof(d));
  std::memcpy(h.data() + 32, text.data(), std::min<std::size_t>(text.size(), sectorsize_ - 33));
  sink_.write_at(pos_, h.data(), h.size());
  pos_ += sectorsize_;
  nr_entries_++;
}

void log_writer::write(uint64_t sector, const void *data, uint64_t nr_sectors, uint64_t flags) {
  header(sector, nr_sectors, flags & ~uint64_t(log_discard | log_mark), "");
  sink_.write_at(pos_, data, nr_sectors * sectorsize_);
  pos_ += nr_sectors * sectorsize_;
}

void log_writer::flush(uint64_t sector) { header(sector, 0, log_flush, ""); }

void log_writer::discard(uint64_t sector, uint64_t nr_sectors) { header(sector, nr_sectors, log_discard, ""); }

void log_writer::mark(const std::string &text) {
  if (text.size() > sectorsize_ - 33) throw pdata::bad_input_error("mark text too long");
  header(0, 0, log_mark, text);
}

void log_writer::finish() {
  std::vector<unsigned char> s(sectorsize_, 0);
  log_super_disk d;
  d.magic.set(log_writes_magic);
  d.version.set(log_writes_version);
  d.nr_entries.set(nr_entries_);
  d.sectorsize.set(sectorsize_);
  d.padding.set(0);
  std::memcpy(s.data(), &d, sizeof(d));
  sink_.write_at(0, s.data(), s.size());
}

}  // namespace pdata
