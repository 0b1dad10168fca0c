// XML and human-readable emitters, byte-identical to thin_dump 0.9.0, and the
// override emitter (see emitter.h).
#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "persistent-data/errors.h"
#include "thin/ir/emitter.h"

namespace thin {

void emitter::begin_def(const std::string &) {
  throw pdata::bad_input_error("this output does not support shared <def> mappings");
}
void emitter::end_def() { throw pdata::bad_input_error("this output does not support shared <def> mappings"); }
void emitter::ref(const std::string &) {
  throw pdata::bad_input_error("this output does not support shared <ref> mappings");
}

namespace {

// Decimal digits of v at p; returns the end. No allocation, no locale.
char *put_u64(char *p, uint64_t v) {
  static constexpr char pairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char tmp[20];
  char *end = tmp + sizeof(tmp), *q = end;
  while (v >= 100) {
    const auto i = static_cast<std::size_t>(v % 100) * 2;
    v /= 100;
    *--q = pairs[i + 1];
    *--q = pairs[i];
  }
  if (v >= 10) {
    const auto i = static_cast<std::size_t>(v) * 2;
    *--q = pairs[i + 1];
    *--q = pairs[i];
  } else {
    *--q = static_cast<char>('0' + v);
  }
  const auto n = static_cast<std::size_t>(end - q);
  std::memcpy(p, q, n);
  return p + n;
}

template <std::size_t N>
char *put(char *p, const char (&lit)[N]) {
  std::memcpy(p, lit, N - 1);
  return p + N - 1;
}

// Accumulates text and hands it to the sink in large chunks. Mapping lines
// are written straight into the buffer (put/put_u64); the rare others go
// through fmt.
class buffered_out {
 public:
  static constexpr std::size_t capacity = 1 << 20;
  static constexpr std::size_t max_line = 256;  // longer than any mapping line

  explicit buffered_out(text_sink &s) : sink_(s), buf_(new char[capacity]) {}
  ~buffered_out() {
    // Best effort at destruction; explicit finish() reports errors.
    try {
      drain();
    } catch (...) {
    }
  }
  buffered_out(const buffered_out &) = delete;
  buffered_out &operator=(const buffered_out &) = delete;

  // Room for one mapping line; commit(end) after writing it.
  char *line() {
    if (capacity - used_ < max_line) drain();
    return buf_.get() + used_;
  }
  void commit(char *end) { used_ = static_cast<std::size_t>(end - buf_.get()); }

  template <typename... Args>
  void format(fmt::format_string<Args...> f, Args &&...args) {
    fmt::memory_buffer m;
    fmt::format_to(std::back_inserter(m), f, std::forward<Args>(args)...);
    append(m.data(), m.size());
  }
  void append(const char *p, std::size_t n) {
    if (capacity - used_ < n) drain();
    if (n > capacity) {
      sink_.write(p, n);
      return;
    }
    std::memcpy(buf_.get() + used_, p, n);
    used_ += n;
  }
  void drain() {
    // Cleared first: a failed write (a closed pipe) is not retried.
    const std::size_t n = used_;
    used_ = 0;
    if (n) sink_.write(buf_.get(), n);
  }
  void finish() {
    drain();
    sink_.flush();
  }

 private:
  text_sink &sink_;
  std::unique_ptr<char[]> buf_;
  std::size_t used_ = 0;
};

class xml_emitter : public emitter {
 public:
  explicit xml_emitter(text_sink &s) : out_(s) {}

  void begin_superblock(const superblock_info &sb) override {
    fmt::memory_buffer b;
    fmt::format_to(std::back_inserter(b),
                   "<superblock uuid=\"{}\" time=\"{}\" transaction=\"{}\" flags=\"{}\" version=\"{}\" "
                   "data_block_size=\"{}\" nr_data_blocks=\"{}",
                   sb.uuid, sb.time, sb.trans_id, sb.flags.value_or(0), sb.version.value_or(1), sb.data_block_size,
                   sb.nr_data_blocks);
    if (sb.metadata_snap) fmt::format_to(std::back_inserter(b), "\" metadata_snap=\"{}", *sb.metadata_snap);
    fmt::format_to(std::back_inserter(b), "\">\n");
    out_.append(b.data(), b.size());
  }
  void end_superblock() override {
    out_.format("</superblock>\n");
    out_.finish();
  }
  void begin_device(const device_info &d) override {
    out_.format("  <device dev_id=\"{}\" mapped_blocks=\"{}\" transaction=\"{}\" creation_time=\"{}\" "
                "snap_time=\"{}\">\n",
                d.dev_id, d.mapped_blocks, d.trans_id, d.creation_time, d.snap_time);
  }
  void end_device() override { out_.format("  </device>\n"); }
  void range_map(uint64_t ob, uint64_t db, uint32_t time, uint64_t len) override {
    char *p = out_.line();
    p = put(p, "    <range_mapping origin_begin=\"");
    p = put_u64(p, ob);
    p = put(p, "\" data_begin=\"");
    p = put_u64(p, db);
    p = put(p, "\" length=\"");
    p = put_u64(p, len);
    p = put(p, "\" time=\"");
    p = put_u64(p, time);
    p = put(p, "\"/>\n");
    out_.commit(p);
  }
  void single_map(uint64_t ob, uint64_t db, uint32_t time) override {
    char *p = out_.line();
    p = put(p, "    <single_mapping origin_block=\"");
    p = put_u64(p, ob);
    p = put(p, "\" data_block=\"");
    p = put_u64(p, db);
    p = put(p, "\" time=\"");
    p = put_u64(p, time);
    p = put(p, "\"/>\n");
    out_.commit(p);
  }
  void begin_def(const std::string &name) override { out_.format("  <def name=\"{}\">\n", name); }
  void end_def() override { out_.format("  </def>\n"); }
  void ref(const std::string &name) override { out_.format("    <ref name=\"{}\"/>\n", name); }

 private:
  buffered_out out_;
};

class human_readable_emitter : public emitter {
 public:
  explicit human_readable_emitter(text_sink &s) : out_(s) {}

  void begin_superblock(const superblock_info &sb) override {
    fmt::memory_buffer b;
    fmt::format_to(std::back_inserter(b), "begin superblock: \"{}\", {}, {}, {}, {}, {}, {}", sb.uuid, sb.time,
                   sb.trans_id, sb.flags.value_or(0), sb.version.value_or(1), sb.data_block_size,
                   sb.nr_data_blocks);
    if (sb.metadata_snap) fmt::format_to(std::back_inserter(b), ", {}", *sb.metadata_snap);
    fmt::format_to(std::back_inserter(b), "\n");
    out_.append(b.data(), b.size());
  }
  void end_superblock() override {
    out_.format("end superblock\n");
    out_.finish();
  }
  void begin_device(const device_info &d) override {
    out_.format("device: {}\nmapped_blocks: {}\ntransaction: {}\ncreation time: {}\nsnap time: {}\n", d.dev_id,
                d.mapped_blocks, d.trans_id, d.creation_time, d.snap_time);
  }
  void end_device() override { out_.format("\n"); }
  void range_map(uint64_t ob, uint64_t db, uint32_t time, uint64_t len) override {
    char *p = out_.line();
    p = put(p, "    (");
    p = put_u64(p, ob);
    p = put(p, "..");
    p = put_u64(p, ob + len - 1);
    p = put(p, ") -> (");
    p = put_u64(p, db);
    p = put(p, "..");
    p = put_u64(p, db + len - 1);
    p = put(p, "), ");
    p = put_u64(p, time);
    p = put(p, "\n");
    out_.commit(p);
  }
  void single_map(uint64_t ob, uint64_t db, uint32_t time) override {
    char *p = out_.line();
    p = put(p, "    ");
    p = put_u64(p, ob);
    p = put(p, " -> ");
    p = put_u64(p, db);
    p = put(p, ", ");
    p = put_u64(p, time);
    p = put(p, "\n");
    out_.commit(p);
  }

 private:
  buffered_out out_;
};

class override_emitter : public emitter {
 public:
  override_emitter(emitter &inner, const superblock_overrides &o) : inner_(inner), o_(o) {}
  void begin_superblock(const superblock_info &sb) override {
    superblock_info s = sb;
    if (o_.transaction_id) s.trans_id = *o_.transaction_id;
    if (o_.data_block_size) s.data_block_size = *o_.data_block_size;
    if (o_.nr_data_blocks) s.nr_data_blocks = *o_.nr_data_blocks;
    inner_.begin_superblock(s);
  }
  void end_superblock() override { inner_.end_superblock(); }
  void begin_device(const device_info &d) override { inner_.begin_device(d); }
  void end_device() override { inner_.end_device(); }
  void range_map(uint64_t ob, uint64_t db, uint32_t t, uint64_t len) override { inner_.range_map(ob, db, t, len); }
  void single_map(uint64_t ob, uint64_t db, uint32_t t) override { inner_.single_map(ob, db, t); }
  void begin_def(const std::string &name) override { inner_.begin_def(name); }
  void end_def() override { inner_.end_def(); }
  void ref(const std::string &name) override { inner_.ref(name); }

 private:
  emitter &inner_;
  superblock_overrides o_;
};

}  // namespace

std::unique_ptr<emitter> make_xml_emitter(text_sink &out) { return std::make_unique<xml_emitter>(out); }
std::unique_ptr<emitter> make_human_readable_emitter(text_sink &out) {
  return std::make_unique<human_readable_emitter>(out);
}
std::unique_ptr<emitter> make_override_emitter(emitter &inner, const superblock_overrides &o) {
  return std::make_unique<override_emitter>(inner, o);
}

}  // namespace thin
