// thin_audit on the kernel's dm-log-writes log (tests/fixtures/kernel/logwrites:
// one log of [8 MiB metadata | 256 MiB data] recorded under a Linux 6.1 thin
// pool): list, replay against the harness's per-mark dumps and final images,
// the 694cfe7f31 audit (clean on the kernel log; violations once the data
// flushes are taken out of it), the crash-state check, and bad input.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <tuple>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "persistent-data/btree_node.h"
#include "log-writes/byte_io.h"
#include "log-writes/log_recorder.h"
#include "log-writes/log_writes.h"
#include "support/test_support.h"
#include "persistent-data/block_cache.h"
#include "persistent-data/block_io.h"
#include "audit/audit.h"
#include "thin/format/superblock.h"
#include "engine/thin_pool.h"
#include "thin/format/thin_trees.h"

namespace {

namespace fs = std::filesystem;

const uint64_t meta_sectors = 16384;  // the harness's layout

using test::kernel_log;

// A log file opened read-only, as a byte source.
class log_file : public pdata::byte_source {
 public:
  explicit log_file(const std::string &path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), io_(fd_) {
    if (fd_ < 0) throw std::runtime_error("cannot open " + path);
  }
  ~log_file() override { ::close(fd_); }
  uint64_t size() const override { return io_.size(); }
  std::size_t read_at(uint64_t off, void *buf, std::size_t len) override { return io_.read_at(off, buf, len); }

 private:
  int fd_;
  pdata::fd_byte_io io_;
};

// Copies a log entry by entry. `edit` sees each entry with its payload and
// returns false to drop it; it may change the flags or the payload. Returns
// the new index of every entry kept.
using entry_edit = std::function<bool(pdata::log_entry &, std::vector<unsigned char> &)>;

std::map<uint64_t, uint64_t> rewrite_log(const std::string &in, const std::string &out, const entry_edit &edit) {
  log_file src(in);
  pdata::log_reader rd(src);
  pdata::memory_byte_io dst;
  pdata::log_writer w(dst, rd.sectorsize());
  std::map<uint64_t, uint64_t> new_index;
  while (auto e = rd.next()) {
    std::vector<unsigned char> payload = rd.payload(*e);
    if (!edit(*e, payload)) continue;
    new_index[e->index] = w.nr_entries();
    if (e->flags & pdata::log_mark)
      w.mark(e->mark);
    else if (e->flags & pdata::log_discard)
      w.discard(e->sector, e->nr_sectors);
    else if (e->nr_sectors == 0 && (e->flags & pdata::log_flush))
      w.flush(e->sector);
    else
      w.write(e->sector, payload.data(), e->nr_sectors, e->flags);
  }
  w.finish();
  test::write_binary(out, dst.bytes());
  return new_index;
}

bool is_data_flush(const pdata::log_entry &e) {
  return (e.flags & pdata::log_flush) && e.nr_sectors == 0 && e.sector >= meta_sectors;
}

// A kernel without 694cfe7f31: the data device is never flushed before a
// commit. Every data-region empty FLUSH entry is dropped.
std::map<uint64_t, uint64_t> without_data_flushes(const std::string &out) {
  return rewrite_log(kernel_log(), out,
                     [](pdata::log_entry &e, std::vector<unsigned char> &) { return !is_data_flush(e); });
}

using test::lines_of;

// Bytes [off, off + len) of a file (the data images are 256 MiB: read only what is needed).
std::vector<unsigned char> read_range(const std::string &path, uint64_t off, std::size_t len) {
  log_file f(path);
  std::vector<unsigned char> out(len);
  out.resize(f.read_at(off, out.data(), len));
  return out;
}

// Whether two files hold the same bytes, compared a chunk at a time.
bool same_content(const std::string &a, const std::string &b) {
  log_file fa(a), fb(b);
  if (fa.size() != fb.size()) return false;
  std::vector<unsigned char> ba(1 << 20), bb(1 << 20);
  for (uint64_t off = 0; off < fa.size(); off += ba.size()) {
    std::size_t na = fa.read_at(off, ba.data(), ba.size()), nb = fb.read_at(off, bb.data(), bb.size());
    if (na != nb || !std::equal(ba.begin(), ba.begin() + static_cast<std::ptrdiff_t>(na), bb.begin())) return false;
  }
  return true;
}

bool all_zero(const std::vector<unsigned char> &v) {
  return std::all_of(v.begin(), v.end(), [](unsigned char c) { return c == 0; });
}

using test::contains;

// --- list --------------------------------------------------------------------

TEST(thin_audit_list, lists_every_entry_of_the_kernel_log_and_counts_them) {
  auto r = test::run_tool("thin_audit", {"list", kernel_log()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  auto lines = lines_of(r.out);
  std::vector<std::string> entries;
  std::copy_if(lines.begin(), lines.end(), std::back_inserter(entries),
               [](const std::string &l) { return std::regex_match(l, std::regex(" *[0-9]+ .*")); });
  ASSERT_EQ(entries.size(), 239u) << r.out;
  // As logwrites.txt counts them: 239 entries, 62 flushes, 2 discards, 9 marks.
  EXPECT_TRUE(contains(r.out, "summary: 239 entries, 166 writes")) << r.out;
  EXPECT_TRUE(contains(r.out, " 62 flushes (")) << r.out;
  EXPECT_TRUE(contains(r.out, " 2 discards, 9 marks\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "the log header counts 239 entries")) << r.out;

  auto fields = [&](std::size_t i) {
    std::vector<std::string> f;
    std::istringstream in(entries[i]);
    for (std::string w; in >> w;) f.push_back(w);
    return f;
  };
  // entry kind region sector sectors flags [mark]
  EXPECT_EQ(fields(0), (std::vector<std::string>{"0", "MARK", "-", "-", "-", "MARK", "stack-ready"}));
  EXPECT_EQ(fields(10), (std::vector<std::string>{"10", "FLUSH", "meta", "0", "0", "FLUSH"}));
  EXPECT_EQ(fields(11), (std::vector<std::string>{"11", "write", "meta", "0", "8", "-"}));
  EXPECT_EQ(fields(13), (std::vector<std::string>{"13", "FLUSH", "data", "0", "0", "FLUSH"}));
  EXPECT_EQ(fields(46), (std::vector<std::string>{"46", "write", "data", "128", "128", "-"}));
  EXPECT_EQ(fields(119), (std::vector<std::string>{"119", "DISCARD", "data", "2048", "128", "DISCARD"}));
  EXPECT_EQ(fields(238), (std::vector<std::string>{"238", "MARK", "-", "-", "-", "MARK", "dm-log-writes-end"}));

  // The marks, by name, in the summary too.
  EXPECT_TRUE(contains(r.out, "marks: 0:stack-ready 25:pool-created 44:writes-1 112:snapshot-cow 134:discards "
                              "179:metasnap-cycle 224:final-writes 237:end 238:dm-log-writes-end\n"))
      << r.out;
}

TEST(thin_audit_list, counts_flushes_per_region_in_process) {
  log_file log(kernel_log());
  std::vector<thin::placed_entry> seen;
  thin::log_summary s = thin::list_log(log, {}, [&](const thin::placed_entry &e) { seen.push_back(e); });
  EXPECT_EQ(s.entries, 239u);
  EXPECT_EQ(s.nr_entries_header, 239u);
  EXPECT_EQ(s.sectorsize, 512u);
  EXPECT_EQ(s.flushes, 62u);
  EXPECT_EQ(s.discards, 2u);
  EXPECT_EQ(s.marks, 9u);
  EXPECT_EQ(s.writes, 166u);
  EXPECT_EQ(s.fua_writes, 0u);
  EXPECT_EQ(s.past_end, 0u);
  EXPECT_EQ(s.meta_flushes + s.data_flushes, 62u);
  // The data flushes logwrites.txt lists.
  std::vector<uint64_t> data_flushes;
  for (auto &e : seen)
    if (e.kind == thin::log_kind::flush && e.region == thin::log_region::data) data_flushes.push_back(e.entry.index);
  EXPECT_EQ(data_flushes, (std::vector<uint64_t>{13, 21, 26, 35, 88, 101, 121, 135, 139, 143, 150, 156, 167, 175, 180,
                                                 203, 215, 225, 229, 233}));
  EXPECT_EQ(s.data_flushes, 20u);
  EXPECT_EQ(s.meta_flushes, 42u);
}

TEST(thin_audit_list, quiet_prints_only_the_summary) {
  auto r = test::run_tool("thin_audit", {"list", "-q", kernel_log()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("summary: 239 entries", 0), 0u) << r.out;
}

// --- replay ------------------------------------------------------------------

// The harness's marks/NN-NAME.xml: thin_dump of the metadata at each mark.
std::vector<std::pair<std::string, std::string>> mark_dumps() {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto &f : fs::directory_iterator(test::fixture_file("logwrites", "marks"))) {
    std::string name = f.path().stem().string();  // NN-NAME
    out.emplace_back(name.substr(name.find('-') + 1), f.path().string());
  }
  std::sort(out.begin(), out.end(), [](auto &a, auto &b) { return a.second < b.second; });
  return out;
}

TEST(thin_audit_replay, replaying_to_each_mark_gives_the_metadata_the_harness_dumped_there) {
  auto marks = mark_dumps();
  ASSERT_EQ(marks.size(), 8u);
  test::temp_dir tmp;
  for (auto &[mark, xml] : marks) {
    auto r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("meta"), "--data-out",
                                           tmp.file("data"), "--until-mark", mark});
    ASSERT_EQ(r.exit_code, 0) << mark << ": " << r.err;
    EXPECT_TRUE(contains(r.out, "up to mark '" + mark + "'")) << r.out;
    EXPECT_EQ(fs::file_size(tmp.file("meta")), meta_sectors * 512) << mark;
    EXPECT_EQ(fs::file_size(tmp.file("data")), 524288u * 512) << mark;
    auto d = test::run_tool("thin_dump", {tmp.file("meta")});
    ASSERT_EQ(d.exit_code, 0) << mark << ": " << d.err;
    EXPECT_EQ(d.out, test::read_file(xml)) << mark;
  }
}

TEST(thin_audit_replay, before_the_first_mark_the_metadata_is_still_zero) {
  test::temp_dir tmp;
  auto r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("meta"), "--data-out",
                                         tmp.file("data"), "--until-mark", "stack-ready"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto meta = test::read_binary(tmp.file("meta"));
  EXPECT_EQ(meta.size(), meta_sectors * 512);
  EXPECT_TRUE(std::all_of(meta.begin(), meta.end(), [](unsigned char c) { return c == 0; }));
}

TEST(thin_audit_replay, replaying_everything_gives_the_final_metadata_byte_for_byte) {
  test::temp_dir tmp;
  auto r = test::run_tool("thin_audit",
                          {"replay", kernel_log(), "--meta-out", tmp.file("meta"), "--data-out", tmp.file("data")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "replayed 239 entries\n");
  EXPECT_TRUE(test::read_binary(tmp.file("meta")) == test::read_binary(test::fixture_image("logwrites")));

  // --until-entry N includes entry N: the last entry gives the same.
  r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("meta2"), "--data-out",
                                    tmp.file("data2"), "--until-entry", "238"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(same_content(tmp.file("meta2"), tmp.file("meta")));
  EXPECT_TRUE(same_content(tmp.file("data2"), tmp.file("data")));
  // The data region holds what the last writes put there: entry 204 wrote
  // data sectors [8192, 8320).
  log_file src(kernel_log());
  pdata::log_reader rd(src);
  std::optional<pdata::log_entry> e;
  while ((e = rd.next()) && e->index != 204) {
  }
  ASSERT_TRUE(e);
  ASSERT_EQ(e->sector, meta_sectors + 8192);
  EXPECT_TRUE(read_range(tmp.file("data"), 8192 * 512, 128 * 512) == rd.payload(*e));
}

TEST(thin_audit_replay, until_entry_includes_that_entry) {
  // Entry 11 writes the first superblock; entry 10 is the flush before it.
  test::temp_dir tmp;
  auto r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("m10"), "--data-out",
                                         tmp.file("d10"), "--until-entry", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "replayed 11 entries\n");
  r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("m11"), "--data-out",
                                    tmp.file("d11"), "--until-entry", "11"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m10 = test::read_binary(tmp.file("m10")), m11 = test::read_binary(tmp.file("m11"));
  EXPECT_TRUE(std::all_of(m10.begin(), m10.begin() + 4096, [](unsigned char c) { return c == 0; }));
  EXPECT_FALSE(std::all_of(m11.begin(), m11.begin() + 4096, [](unsigned char c) { return c == 0; }));
  EXPECT_TRUE(std::equal(m10.begin() + 4096, m10.end(), m11.begin() + 4096));
  EXPECT_EQ(test::run_tool("thin_check", {"-q", tmp.file("m11")}).exit_code, 0);
}

TEST(thin_audit_replay, discards_zero_the_data_they_cover) {
  // Entry 119 discards data sectors [2048, 2176): written at entry 61 before.
  test::temp_dir tmp;
  auto r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("m"), "--data-out",
                                         tmp.file("before"), "--until-entry", "118"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("m"), "--data-out",
                                    tmp.file("after"), "--until-entry", "119"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const uint64_t b = 2048 * 512, len = 128 * 512;
  EXPECT_FALSE(all_zero(read_range(tmp.file("before"), b, len)));
  EXPECT_TRUE(all_zero(read_range(tmp.file("after"), b, len)));
  // Around it, nothing changed.
  EXPECT_TRUE(read_range(tmp.file("before"), 0, b) == read_range(tmp.file("after"), 0, b));
  EXPECT_TRUE(read_range(tmp.file("before"), b + len, 8 << 20) == read_range(tmp.file("after"), b + len, 8 << 20));
}

TEST(thin_audit_replay, a_missing_mark_or_entry_fails_without_touching_the_outputs) {
  test::temp_dir tmp;
  test::write_binary(tmp.file("meta"), {1, 2, 3});
  auto r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("meta"), "--data-out",
                                         tmp.file("data"), "--until-mark", "no-such-mark"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "no mark 'no-such-mark'")) << r.err;
  EXPECT_TRUE(contains(r.err, kernel_log())) << r.err;
  EXPECT_EQ(test::read_binary(tmp.file("meta")), (std::vector<unsigned char>{1, 2, 3}));
  EXPECT_FALSE(test::file_exists(tmp.file("data")));

  r = test::run_tool("thin_audit", {"replay", kernel_log(), "--meta-out", tmp.file("meta"), "--data-out",
                                    tmp.file("data"), "--until-entry", "239"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "past the end of the log")) << r.err;
  EXPECT_FALSE(test::file_exists(tmp.file("data")));
}

TEST(thin_audit_replay, replay_needs_both_outputs_and_one_stopping_point) {
  test::temp_dir tmp;
  for (auto &args : std::vector<std::vector<std::string>>{
           {"replay", kernel_log(), "--meta-out", tmp.file("m")},
           {"replay", kernel_log(), "--data-out", tmp.file("d")},
           {"replay", kernel_log(), "--meta-out", tmp.file("m"), "--data-out", tmp.file("m")},
           {"replay", kernel_log(), "--meta-out", kernel_log(), "--data-out", tmp.file("d")},
           {"replay", kernel_log(), "--meta-out", tmp.file("m"), "--data-out", tmp.file("d"), "--until-entry", "3",
            "--until-mark", "end"},
       }) {
    auto r = test::run_tool("thin_audit", args);
    EXPECT_EQ(r.exit_code, 1) << args[2];
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  }
}

// --- audit -------------------------------------------------------------------

TEST(thin_audit_audit, the_kernel_log_has_no_violations) {
  auto r = test::run_tool("thin_audit", {"audit", kernel_log()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^239 entries, [1-9][0-9]* superblock commits audited, 0 "
                                                  "violations\n")))
      << r.out;

  log_file log(kernel_log());
  thin::audit_result a = thin::audit_log(log, {});
  EXPECT_TRUE(a.ok());
  EXPECT_EQ(a.entries, 239u);
  EXPECT_EQ(a.data_flushes, 20u);
  EXPECT_TRUE(a.errors.empty());
  // Every superblock write in this log is a whole valid superblock.
  EXPECT_EQ(a.commits, a.superblock_writes);
  EXPECT_GE(a.commits, 10u);
  // Every mapping the pool ever made was checked: at least those of the final
  // metadata (21 + 43 + ... blocks, see thin_dump.xml) are new somewhere.
  EXPECT_GE(a.new_mappings, 60u);
}

TEST(thin_audit_audit, json_report_of_the_kernel_log) {
  auto r = test::run_tool("thin_audit", {"audit", "--json", kernel_log()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(
      r.out, std::regex("\\{\"sector_size\":512,\"entries\":239,\"superblock_writes\":[0-9]+,\"commits\":[0-9]+,"
                        "\"new_mappings\":[0-9]+,\"data_writes\":[0-9]+,\"data_flushes\":20,\"violations\":\\[\\],"
                        "\"errors\":\\[\\],\"ok\":true\\}\n")))
      << r.out;
}

TEST(thin_audit_audit, without_the_data_flush_before_each_commit_mappings_are_reported) {
  test::temp_dir tmp;
  const std::string log = tmp.file("nofix.log");
  auto idx = without_data_flushes(log);

  log_file f(log);
  thin::audit_result a = thin::audit_log(f, {});
  EXPECT_EQ(a.entries, 219u);
  EXPECT_EQ(a.data_flushes, 0u);
  ASSERT_FALSE(a.violations.empty());

  // After 'writes-1' (entry 44), the pool provisioned dev 1's blocks 0..15
  // with full-block writes (entries 45..60, data blocks 0..15) and committed
  // them at entry 98. Only the data flush at entry 88 made those writes
  // durable; without it, the commit maps blocks whose data may be lost.
  auto find = [&](uint64_t dev, uint64_t vblock) -> const thin::audit_violation * {
    for (auto &v : a.violations)
      if (v.dev == dev && v.vblock == vblock) return &v;
    return nullptr;
  };
  for (uint64_t b = 0; b < 16; b++) {
    const thin::audit_violation *v = find(1, b);
    ASSERT_NE(v, nullptr) << "dev 1 block " << b;
    EXPECT_EQ(v->commit_entry, idx.at(98)) << b;
    EXPECT_EQ(v->data_block, b);
    EXPECT_EQ(v->kind, thin::violation_kind::unflushed);
    EXPECT_EQ(v->unflushed_write_entry, std::optional<uint64_t>(idx.at(45 + b))) << b;
  }
  // The first violation is the first of those; they come in log order.
  EXPECT_EQ(a.violations.front().commit_entry, idx.at(98));
  EXPECT_EQ(a.violations.front().dev, 1u);
  EXPECT_EQ(a.violations.front().vblock, 0u);
  EXPECT_TRUE(std::is_sorted(a.violations.begin(), a.violations.end(), [](auto &x, auto &y) {
    return x.commit_entry < y.commit_entry;
  }));
  // dev 2's blocks 0..3 (512 sectors written at its start) too.
  for (uint64_t b = 0; b < 4; b++) EXPECT_NE(find(2, b), nullptr) << "dev 2 block " << b;
  // No commit before 'writes-1' mapped anything.
  for (auto &v : a.violations) EXPECT_GE(v.commit_entry, idx.at(98));

  // The tool: exit 1, the summary, one line per violation.
  auto r = test::run_tool("thin_audit", {"audit", log});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0] + "\n", lines_of(thin::format_audit_text(a)).at(0) + "\n");
  std::size_t n = std::count_if(lines.begin(), lines.end(),
                                [](const std::string &l) { return l.rfind("violation: ", 0) == 0; });
  EXPECT_EQ(n, a.violations.size());
  EXPECT_TRUE(contains(r.out, "violation: commit at entry " + std::to_string(idx.at(98)) +
                                  " (transaction 0) maps dev 1 block 0 to data block 0, whose write at entry " +
                                  std::to_string(idx.at(45)) + " was not flushed\n"))
      << r.out;

  auto j = test::run_tool("thin_audit", {"audit", "--json", log});
  EXPECT_EQ(j.exit_code, 1);
  EXPECT_TRUE(contains(j.out, "\"violations\":[{\"commit_entry\":" + std::to_string(idx.at(98)) +
                                  ",\"transaction_id\":0,\"dev\":1,\"vblock\":0,\"data_block\":0,"
                                  "\"kind\":\"unflushed\",\"unflushed_write_entry\":" +
                                  std::to_string(idx.at(45)) + ",\"previous_commit_entry\":null}"))
      << j.out;
  EXPECT_TRUE(contains(j.out, "\"ok\":false}")) << j.out;

  // -q: nothing printed, the exit code says it.
  auto q = test::run_tool("thin_audit", {"audit", "-q", log});
  EXPECT_EQ(q.exit_code, 1);
  EXPECT_EQ(q.out, "");
  EXPECT_EQ(q.err, "");
}

// The plain way to find each commit's new mappings: replay to every
// superblock write, read every mapping, diff the sets. (commit entry, dev,
// vblock, data block)
using new_mapping = std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>;

std::set<new_mapping> full_diff(pdata::byte_source &f, const thin::log_layout &layout) {
  std::vector<uint64_t> commits;  // metadata sector 0 writes
  thin::list_log(f, layout, [&](const thin::placed_entry &e) {
    if (e.kind != thin::log_kind::mark && e.kind != thin::log_kind::flush && e.region == thin::log_region::meta &&
        e.sector == 0)
      commits.push_back(e.entry.index);
  });
  std::set<new_mapping> out;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> prev;
  for (uint64_t c : commits) {
    pdata::memory_byte_io meta, data;
    thin::replay_options o;
    o.until_entry = c;
    thin::replay_log(f, layout, meta, data, o);
    meta.bytes().resize(layout.meta_bytes());
    pdata::memory_block_io io(meta.bytes());
    pdata::block_cache cache(io);
    thin::superblock sb = thin::read_superblock(io);
    std::map<std::pair<uint64_t, uint64_t>, uint64_t> now;
    auto no_damage = [](const pdata::btree_damage &d) { FAIL() << d.what; };
    for (auto &[dev, root] : thin::read_mapping_top_level(cache, sb.mapping_root, no_damage))
      thin::walk_device_mappings(
          cache, root, [&, dev = dev](uint64_t vb, uint64_t db, uint32_t) { now[{dev, vb}] = db; }, no_damage);
    for (auto &[k, d] : now) {
      auto it = prev.find(k);
      if (it == prev.end() || it->second != d) out.emplace(c, k.first, k.second, d);
    }
    prev = std::move(now);
  }
  return out;
}

// The audit diffs trees, skipping shared subtrees. On the log without data
// flushes every new mapping has an unflushed write (all data writes are), so
// the violations are exactly the new mappings: compare with the full diff.
TEST(thin_audit_audit, new_mappings_are_exactly_what_a_full_diff_of_each_commit_finds) {
  test::temp_dir tmp;
  const std::string log = tmp.file("nofix.log");
  without_data_flushes(log);
  log_file f(log);
  thin::audit_result a = thin::audit_log(f, {});
  EXPECT_EQ(a.violations.size(), a.new_mappings);
  std::set<new_mapping> audited;
  for (auto &v : a.violations) audited.emplace(v.commit_entry, v.dev, v.vblock, v.data_block);
  std::set<new_mapping> full = full_diff(f, {});
  EXPECT_EQ(full.size(), a.new_mappings);
  EXPECT_TRUE(audited == full);
}

// Logs recorded under the reference engine (thin::thin_pool through
// pdata::log_recorder: each flush logs only its own region's writes). Its
// trees grow past one leaf, so the diff walks internal nodes too.
struct engine_log {
  pdata::memory_byte_io log;
  thin::pool_stats stats;
};

engine_log record_engine(bool legacy) {
  engine_log out;
  pdata::log_recorder rec(out.log);
  pdata::memory_block_io meta(2048), data(65536);  // the default layout: 8 MiB | 256 MiB
  auto m = rec.region(meta, 0);
  auto d = rec.region(data, meta_sectors);
  thin::pool_options po;
  po.zeroing = false;  // small writes stay small
  po.legacy_ordering = legacy;
  po.commit_every = 0;
  auto pool = thin::thin_pool::format(*m, *d, po);
  rec.mark("formatted");
  std::vector<unsigned char> buf(8 * 512);
  uint64_t n = 0;
  auto put = [&](uint64_t dev, uint64_t vblock) {
    std::fill(buf.begin(), buf.end(), static_cast<unsigned char>(++n));
    pool->write(dev, vblock * 128, buf.data(), 8);
  };
  pool->create_thin(1);
  // 600 blocks in a scattered order, an fsync every 50: leaves split, the
  // tree gets internal nodes, most of it is shared from one commit to the next.
  for (uint64_t i = 0; i < 600; i++) {
    put(1, (i * 397) % 600);
    if (i % 50 == 49) pool->flush();
  }
  pool->create_snap(2, 1);
  for (uint64_t i = 0; i < 40; i++) put(1, i * 13);  // copy-on-write
  pool->flush();
  pool->discard(1, 100 * 128, 50 * 128);
  for (uint64_t i = 0; i < 30; i++) put(2, 700 + i);
  pool->flush();
  for (uint64_t i = 0; i < 20; i++) put(1, 120 + i);  // re-provision discarded blocks
  pool->flush();
  rec.mark("end");
  rec.finish();
  out.stats = pool->stats();
  return out;
}

TEST(thin_audit_audit, the_reference_engine_with_the_fix_has_no_violations) {
  engine_log e = record_engine(false);
  thin::log_layout no_zeroing;
  no_zeroing.zeroing = false;  // the engine ran with zeroing off: partial new blocks are legitimate
  thin::audit_result a = thin::audit_log(e.log, no_zeroing);
  EXPECT_TRUE(a.ok()) << thin::format_audit_text(a);
  // With the zeroing rule, those partial writes are flagged: half-written new
  // blocks would hold stale data in a zeroing pool.
  EXPECT_FALSE(thin::audit_log(e.log, {}).ok());
  EXPECT_GE(a.commits, 15u);
  std::set<new_mapping> full = full_diff(e.log, {});
  EXPECT_EQ(a.new_mappings, full.size());
  EXPECT_GE(full.size(), 600u + 40 + 600 + 30 + 20);  // the snapshot's 600 are new too

  // The trees really have internal nodes.
  pdata::memory_byte_io meta, data;
  thin::replay_log(e.log, {}, meta, data, {});
  meta.bytes().resize(meta_sectors * 512);
  pdata::memory_block_io io(meta.bytes());
  pdata::block_cache cache(io);
  thin::superblock sb = thin::read_superblock(io);
  auto top = thin::read_mapping_top_level(cache, sb.mapping_root, [](const pdata::btree_damage &) {});
  ASSERT_FALSE(top.empty());
  pdata::btree_node_view root(cache.read(top.front().second)->raw());
  EXPECT_TRUE(root.is_internal());
}

TEST(thin_audit_audit, the_reference_engine_without_the_fix_commits_unwritten_blocks) {
  engine_log e = record_engine(true);
  thin::audit_result a = thin::audit_log(e.log, {});
  ASSERT_FALSE(a.violations.empty());
  EXPECT_TRUE(a.errors.empty());
  // Its flushes log only their own region's writes, so the data writes come
  // after the commits that map them: every violation is of the unwritten kind.
  for (auto &v : a.violations) {
    EXPECT_EQ(v.kind, thin::violation_kind::unwritten);
    EXPECT_TRUE(v.previous_commit_entry);
  }
  // And each one is a new mapping.
  std::set<new_mapping> full = full_diff(e.log, {});
  EXPECT_EQ(a.new_mappings, full.size());
  for (auto &v : a.violations)
    EXPECT_TRUE(full.count({v.commit_entry, v.dev, v.vblock, v.data_block})) << v.dev << " " << v.vblock;
}

TEST(thin_audit_audit, fua_data_writes_need_no_flush) {
  // The same log without data flushes, but every data write FUA: durable as
  // soon as it is logged, so nothing is committed ahead of its data.
  test::temp_dir tmp;
  const std::string log = tmp.file("fua.log");
  rewrite_log(kernel_log(), log, [](pdata::log_entry &e, std::vector<unsigned char> &) {
    if (is_data_flush(e)) return false;
    if (e.sector >= meta_sectors && !(e.flags & (pdata::log_mark | pdata::log_discard)) && e.nr_sectors)
      e.flags |= pdata::log_fua;
    return true;
  });
  auto r = test::run_tool("thin_audit", {"audit", log});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, " 0 violations\n")) << r.out;
}

TEST(thin_audit_audit, a_data_flush_logged_after_the_commit_is_too_late) {
  // Move each data flush to just after the next superblock write: the order
  // a kernel without the fix produced (commit metadata, then pass the flush
  // down). Still a violation.
  test::temp_dir tmp;
  const std::string log = tmp.file("late.log");
  {
    log_file src(kernel_log());
    pdata::log_reader rd(src);
    pdata::memory_byte_io dst;
    pdata::log_writer w(dst, rd.sectorsize());
    int pending = 0;
    while (auto e = rd.next()) {
      if (is_data_flush(*e)) {
        pending++;
        continue;
      }
      auto p = rd.payload(*e);
      if (e->flags & pdata::log_mark)
        w.mark(e->mark);
      else if (e->flags & pdata::log_discard)
        w.discard(e->sector, e->nr_sectors);
      else if (e->nr_sectors == 0)
        w.flush(e->sector);
      else
        w.write(e->sector, p.data(), e->nr_sectors, e->flags);
      if (e->sector == 0 && e->nr_sectors == 8 && !(e->flags & pdata::log_mark))
        for (; pending; pending--) w.flush(meta_sectors);
    }
    w.finish();
    test::write_binary(log, dst.bytes());
  }
  log_file f(log);
  thin::audit_result a = thin::audit_log(f, {});
  EXPECT_FALSE(a.violations.empty());
  EXPECT_TRUE(std::any_of(a.violations.begin(), a.violations.end(), [](auto &v) {
    return v.dev == 1 && v.vblock == 0 && v.data_block == 0 && v.kind == thin::violation_kind::unflushed;
  }));
}

TEST(thin_audit_audit, data_writes_logged_only_after_the_commit_are_unwritten) {
  // A log whose flushes log only their own region's writes (pdata::log_recorder,
  // two independent caches) of a pool without the fix: the data writes wait in
  // the data device's cache until a data flush that comes after the commit.
  // Emulated from the kernel log: hold back the data writes and discards, and
  // log them with their data flush only after the next superblock write.
  test::temp_dir tmp;
  const std::string log = tmp.file("recorder.log");
  std::map<uint64_t, uint64_t> idx;
  {
    log_file src(kernel_log());
    pdata::log_reader rd(src);
    pdata::memory_byte_io dst;
    pdata::log_writer w(dst, rd.sectorsize());
    std::vector<std::pair<pdata::log_entry, std::vector<unsigned char>>> held;
    bool flush_held = false;
    auto emit = [&](const pdata::log_entry &e, const std::vector<unsigned char> &p) {
      idx[e.index] = w.nr_entries();
      if (e.flags & pdata::log_mark)
        w.mark(e.mark);
      else if (e.flags & pdata::log_discard)
        w.discard(e.sector, e.nr_sectors);
      else if (e.nr_sectors == 0)
        w.flush(e.sector);
      else
        w.write(e.sector, p.data(), e.nr_sectors, e.flags);
    };
    auto release = [&] {
      for (auto &[e, p] : held) emit(e, p);
      held.clear();
      if (flush_held) w.flush(meta_sectors);
      flush_held = false;
    };
    while (auto e = rd.next()) {
      auto p = rd.payload(*e);
      if (is_data_flush(*e)) {
        flush_held = true;
        continue;
      }
      if (!(e->flags & pdata::log_mark) && e->sector >= meta_sectors) {
        held.emplace_back(*e, std::move(p));
        continue;
      }
      emit(*e, p);
      if (!(e->flags & pdata::log_mark) && e->sector == 0 && e->nr_sectors == 8) release();
    }
    release();
    w.finish();
    test::write_binary(log, dst.bytes());
  }
  log_file f(log);
  thin::audit_result a = thin::audit_log(f, {});
  ASSERT_FALSE(a.violations.empty());
  EXPECT_EQ(a.data_flushes, 20u);
  // dev 1's blocks 0..15, written after 'writes-1', are committed at entry 98
  // (renumbered) before any of their writes is logged.
  for (uint64_t b = 0; b < 16; b++) {
    auto v = std::find_if(a.violations.begin(), a.violations.end(),
                          [&](auto &x) { return x.dev == 1 && x.vblock == b; });
    ASSERT_NE(v, a.violations.end()) << b;
    EXPECT_EQ(v->kind, thin::violation_kind::unwritten) << b;
    EXPECT_EQ(v->commit_entry, idx.at(98)) << b;
    EXPECT_EQ(v->data_block, b);
    EXPECT_FALSE(v->unflushed_write_entry);
    EXPECT_EQ(v->previous_commit_entry, std::optional<uint64_t>(idx.at(42))) << b;
  }
  // (Dev 3, the snapshot of dev 1 committed in the same transaction, shares
  // those blocks and is reported for them too: it would read the same garbage.)
  auto r = test::run_tool("thin_audit", {"audit", log});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.out, "violation: commit at entry " + std::to_string(idx.at(98)) +
                                  " (transaction 0) maps dev 1 block 0 to data block 0, free at the previous commit "
                                  "(entry " +
                                  std::to_string(idx.at(42)) + ") and not written since\n"))
      << r.out;
  auto j = test::run_tool("thin_audit", {"audit", "--json", log});
  EXPECT_TRUE(contains(j.out, "\"kind\":\"unwritten\",\"unflushed_write_entry\":null,\"previous_commit_entry\":" +
                                  std::to_string(idx.at(42)) + "}"))
      << j.out;
}

// --- check -------------------------------------------------------------------

TEST(thin_audit_check, every_flush_point_of_the_kernel_log_passes) {
  auto r = test::run_tool("thin_audit", {"check", kernel_log()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // logwrites.txt: "thin_check at flush/FUA points: 61 checked, 0 failed"
  // (the first flush, entry 10, comes before the superblock is written).
  EXPECT_EQ(lines_of(r.out).at(0), "239 entries, 61 check points passed, 1 skipped (metadata not yet formatted)");

  log_file log(kernel_log());
  thin::log_check_result c = thin::check_log(log, {}, {});
  EXPECT_TRUE(c.ok());
  EXPECT_EQ(c.points, 61u);
  EXPECT_EQ(c.skipped_unformatted, 1u);
  EXPECT_GE(c.full_checks, 10u);
  EXPECT_LT(c.full_checks, c.points);
}

TEST(thin_audit_check, every_n_entries) {
  auto r = test::run_tool("thin_audit", {"check", "--every", "10", kernel_log()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Points after entries 9, 19, ..., 229 and the last (238): 24; only the
  // one after entry 9 comes before the first superblock.
  EXPECT_EQ(lines_of(r.out).at(0), "239 entries, 23 check points passed, 1 skipped (metadata not yet formatted)");
}

TEST(thin_audit_check, a_corrupted_metadata_write_fails_at_the_first_point_that_depends_on_it) {
  // Entry 36 writes metadata block 17, a node of the commit written at entry
  // 42; corrupt one byte of its payload. The state is consistent until that
  // commit is flushed (entry 43).
  test::temp_dir tmp;
  const std::string log = tmp.file("corrupt.log");
  rewrite_log(kernel_log(), log, [](pdata::log_entry &e, std::vector<unsigned char> &payload) {
    if (e.index == 36) payload.at(100) ^= 0x5a;
    return true;
  });
  auto r = test::run_tool("thin_audit", {"check", log});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto lines = lines_of(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  EXPECT_TRUE(std::regex_match(lines[0], std::regex("[0-9]+ entries read, [0-9]+ check points passed, first failing "
                                                    "point at entry 43 \\(FLUSH meta\\)")))
      << r.out;
  EXPECT_TRUE(contains(r.out, "checksum")) << r.out;

  log_file f(log);
  thin::log_check_result c = thin::check_log(f, {}, {});
  ASSERT_TRUE(c.failure);
  EXPECT_EQ(c.failure->entry, 43u);
  ASSERT_FALSE(c.failure->problems.empty());
  EXPECT_TRUE(c.failure->problems.front().fatal);
  EXPECT_EQ(c.entries, 44u);  // stopped there
}

// --- command line and bad input ----------------------------------------------

TEST(thin_audit_cli, bad_inputs_fail_with_one_line_naming_the_file) {
  test::temp_dir tmp;
  test::write_binary(tmp.file("short"), {1, 2, 3});
  for (auto &verb : {"list", "audit", "check"}) {
    for (auto &path : {test::fixture_image("logwrites"), tmp.file("missing"), tmp.file("short"), tmp.path()}) {
      auto r = test::run_tool("thin_audit", {verb, path});
      EXPECT_EQ(r.exit_code, 1) << verb << " " << path;
      EXPECT_EQ(r.out, "") << verb << " " << path;
      EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
      EXPECT_EQ(r.err.rfind("thin_audit: " + path + ": ", 0), 0u) << r.err;
    }
  }
  auto r = test::run_tool("thin_audit", {"list", test::fixture_image("logwrites")});
  EXPECT_TRUE(contains(r.err, "not a dm-log-writes log")) << r.err;
}

TEST(thin_audit_cli, usage_errors_exit_1) {
  for (auto &args : std::vector<std::vector<std::string>>{
           {},
           {"frobnicate", kernel_log()},
           {"list"},
           {"list", kernel_log(), kernel_log()},
           {"list", "--json", kernel_log()},
           {"check", "--skip-block-zeroing", kernel_log()},
           {"audit", "--every", "3", kernel_log()},
           {"check", "--every", "0", kernel_log()},
           {"check", "--until-mark", "end", kernel_log()},
           {"list", "--meta-sectors", "100", kernel_log()},
           {"list", "--meta-sectors", "x", kernel_log()},
           {"list", "--no-such-option", kernel_log()},
       }) {
    auto r = test::run_tool("thin_audit", args);
    EXPECT_EQ(r.exit_code, 1) << (args.empty() ? "" : args[0]);
    EXPECT_FALSE(r.err.empty());
  }
}

TEST(thin_audit_cli, a_layout_too_small_for_the_log_is_an_error_naming_the_entry) {
  auto r = test::run_tool("thin_audit", {"audit", "--data-sectors", "1024", kernel_log()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  // Data writes start at entry 45 (data sector 0, 128 sectors each); entry 53
  // is the first to reach past 1024 sectors.
  EXPECT_TRUE(contains(r.err, "log entry 53 (128 sectors at sector 17408 ")) << r.err;
  EXPECT_TRUE(contains(r.err, "--data-sectors")) << r.err;
}

TEST(thin_audit_cli, help_and_version) {
  auto h = test::run_tool("thin_audit", {"-h"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_EQ(h.out.rfind("Usage: thin_audit", 0), 0u) << h.out;
  auto v = test::run_tool("thin_audit", {"-V"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, test::run_tool("thin_check", {"-V"}).out);
  auto t = test::run_tool("thinkit", {"thin_audit", "list", "-q", kernel_log()});
  EXPECT_EQ(t.exit_code, 0) << t.err;
  EXPECT_TRUE(contains(t.out, "summary: 239 entries")) << t.out;
}

}  // namespace
