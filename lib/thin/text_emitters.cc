// XML and human-readable emitters, byte-identical to thin_dump 0.9.0, and the
// override emitter (see emitter.h).
#include <stdexcept>

#include <fmt/format.h>

#include "emitter.h"

namespace thin {

void emitter::begin_def(const std::string &) {
  throw std::runtime_error("this output does not support shared <def> mappings");
}
void emitter::end_def() { throw std::runtime_error("this output does not support shared <def> mappings"); }
void emitter::ref(const std::string &) {
  throw std::runtime_error("this output does not support shared <ref> mappings");
}

namespace {

// Accumulates text and hands it to the sink in large chunks.
class buffered_out {
 public:
  explicit buffered_out(text_sink &s) : sink_(s) {}
  ~buffered_out() {
    // Best effort at destruction; explicit finish() reports errors.
    try {
      drain();
    } catch (...) {
    }
  }
  fmt::memory_buffer &buf() { return buf_; }
  void maybe_drain() {
    if (buf_.size() >= (1u << 16)) drain();
  }
  void drain() {
    if (buf_.size()) sink_.write(buf_.data(), buf_.size());
    buf_.clear();
  }
  void finish() {
    drain();
    sink_.flush();
  }

 private:
  text_sink &sink_;
  fmt::memory_buffer buf_;
};

class xml_emitter : public emitter {
 public:
  explicit xml_emitter(text_sink &s) : out_(s) {}

  void begin_superblock(const superblock_info &sb) override {
    auto &b = out_.buf();
    fmt::format_to(std::back_inserter(b),
                   "<superblock uuid=\"{}\" time=\"{}\" transaction=\"{}\" flags=\"{}\" version=\"{}\" "
                   "data_block_size=\"{}\" nr_data_blocks=\"{}",
                   sb.uuid, sb.time, sb.trans_id, sb.flags.value_or(0), sb.version.value_or(1), sb.data_block_size,
                   sb.nr_data_blocks);
    if (sb.metadata_snap) fmt::format_to(std::back_inserter(b), "\" metadata_snap=\"{}", *sb.metadata_snap);
    fmt::format_to(std::back_inserter(b), "\">\n");
  }
  void end_superblock() override {
    fmt::format_to(std::back_inserter(out_.buf()), "</superblock>\n");
    out_.finish();
  }
  void begin_device(const device_info &d) override {
    fmt::format_to(std::back_inserter(out_.buf()),
                   "  <device dev_id=\"{}\" mapped_blocks=\"{}\" transaction=\"{}\" creation_time=\"{}\" "
                   "snap_time=\"{}\">\n",
                   d.dev_id, d.mapped_blocks, d.trans_id, d.creation_time, d.snap_time);
  }
  void end_device() override {
    fmt::format_to(std::back_inserter(out_.buf()), "  </device>\n");
    out_.maybe_drain();
  }
  void range_map(uint64_t ob, uint64_t db, uint32_t time, uint64_t len) override {
    fmt::format_to(std::back_inserter(out_.buf()),
                   "    <range_mapping origin_begin=\"{}\" data_begin=\"{}\" length=\"{}\" time=\"{}\"/>\n", ob, db,
                   len, time);
    out_.maybe_drain();
  }
  void single_map(uint64_t ob, uint64_t db, uint32_t time) override {
    fmt::format_to(std::back_inserter(out_.buf()),
                   "    <single_mapping origin_block=\"{}\" data_block=\"{}\" time=\"{}\"/>\n", ob, db, time);
    out_.maybe_drain();
  }
  void begin_def(const std::string &name) override {
    fmt::format_to(std::back_inserter(out_.buf()), "  <def name=\"{}\">\n", name);
  }
  void end_def() override { fmt::format_to(std::back_inserter(out_.buf()), "  </def>\n"); }
  void ref(const std::string &name) override {
    fmt::format_to(std::back_inserter(out_.buf()), "    <ref name=\"{}\"/>\n", name);
  }

 private:
  buffered_out out_;
};

class human_readable_emitter : public emitter {
 public:
  explicit human_readable_emitter(text_sink &s) : out_(s) {}

  void begin_superblock(const superblock_info &sb) override {
    auto &b = out_.buf();
    fmt::format_to(std::back_inserter(b), "begin superblock: \"{}\", {}, {}, {}, {}, {}, {}", sb.uuid, sb.time,
                   sb.trans_id, sb.flags.value_or(0), sb.version.value_or(1), sb.data_block_size,
                   sb.nr_data_blocks);
    if (sb.metadata_snap) fmt::format_to(std::back_inserter(b), ", {}", *sb.metadata_snap);
    fmt::format_to(std::back_inserter(b), "\n");
  }
  void end_superblock() override {
    fmt::format_to(std::back_inserter(out_.buf()), "end superblock\n");
    out_.finish();
  }
  void begin_device(const device_info &d) override {
    fmt::format_to(std::back_inserter(out_.buf()),
                   "device: {}\nmapped_blocks: {}\ntransaction: {}\ncreation time: {}\nsnap time: {}\n", d.dev_id,
                   d.mapped_blocks, d.trans_id, d.creation_time, d.snap_time);
  }
  void end_device() override {
    fmt::format_to(std::back_inserter(out_.buf()), "\n");
    out_.maybe_drain();
  }
  void range_map(uint64_t ob, uint64_t db, uint32_t time, uint64_t len) override {
    fmt::format_to(std::back_inserter(out_.buf()), "    ({}..{}) -> ({}..{}), {}\n", ob, ob + len - 1, db,
                   db + len - 1, time);
    out_.maybe_drain();
  }
  void single_map(uint64_t ob, uint64_t db, uint32_t time) override {
    fmt::format_to(std::back_inserter(out_.buf()), "    {} -> {}, {}\n", ob, db, time);
    out_.maybe_drain();
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
