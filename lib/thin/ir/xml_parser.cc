// The streaming thin_dump XML reader (see xml_parser.h): expat callbacks that
// check structure, attributes and mapping order, then drive the emitter.
//
// Expat is a C library, so no exception may unwind through it: each callback
// catches whatever it throws, keeps it, stops the parser, and parse_xml
// rethrows it once XML_ParseBuffer has returned.
#include "thin/ir/xml_parser.h"

#include <expat.h>

#include <string.h>

#include <algorithm>
#include <array>
#include <memory>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "thin/format/invariants.h"
#include "thin/format/superblock_disk.h"
#include "thin/ir/text_sink.h"

namespace thin {

namespace {

std::string with_line(uint64_t line, const std::string &message) {
  return "line " + std::to_string(line) + ": " + message;
}

}  // namespace

xml_error::xml_error(uint64_t line, const std::string &message)
    : pdata::bad_input_error(with_line(line, message)), line_(line) {}

xml_error::xml_error(const std::string &message) : pdata::bad_input_error(message) {}

namespace {

constexpr std::size_t chunk_size = 1024 * 1024;
constexpr uint64_t u32_max = std::numeric_limits<uint32_t>::max();
constexpr uint64_t u64_max = std::numeric_limits<uint64_t>::max();
// A mapping leaf packs (data block << 24) | time into 64 bits.
constexpr uint64_t max_mapping_time = (1ull << 24) - 1;
constexpr uint64_t max_data_block = (1ull << 40) - 1;

enum class element { none, superblock, device, def, ref, range_mapping, single_mapping };

const char *element_name(element k) {
  switch (k) {
    case element::superblock: return "superblock";
    case element::device: return "device";
    case element::def: return "def";
    case element::ref: return "ref";
    case element::range_mapping: return "range_mapping";
    case element::single_mapping: return "single_mapping";
    case element::none: break;
  }
  return "";
}

std::optional<element> lookup_element(std::string_view name) {
  for (element k : {element::superblock, element::device, element::def, element::ref, element::range_mapping,
                    element::single_mapping})
    if (name == element_name(k)) return k;
  return std::nullopt;
}

std::string tag(element k) { return std::string("<") + element_name(k) + ">"; }

bool is_mapping(element k) { return k == element::range_mapping || k == element::single_mapping; }

// Strict decimal: one or more ASCII digits, nothing else, no overflow.
std::optional<uint64_t> parse_decimal(const char *s) {
  if (!*s) return std::nullopt;
  uint64_t v = 0;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9') return std::nullopt;
    auto digit = static_cast<uint64_t>(*s - '0');
    if (v > (u64_max - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

bool all_digits(const char *s) {
  if (!*s) return false;
  for (; *s; ++s)
    if (*s < '0' || *s > '9') return false;
  return true;
}

// The origin blocks a run of mappings (a device's or a def's) has covered.
struct origin_span {
  bool any = false;
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
};

class xml_reader {
 public:
  xml_reader(emitter &e, const xml_parse_options &opts) : e_(e), opts_(opts) {
    p_ = XML_ParserCreate(nullptr);
    if (!p_) throw std::bad_alloc();
    XML_SetUserData(p_, this);
    XML_SetElementHandler(p_, on_start, on_end);
    XML_SetCharacterDataHandler(p_, on_text);
    XML_SetStartDoctypeDeclHandler(p_, on_doctype);
  }
  ~xml_reader() { XML_ParserFree(p_); }
  xml_reader(const xml_reader &) = delete;
  xml_reader &operator=(const xml_reader &) = delete;

  void run(std::istream &in) {
    if (!in) throw xml_error("cannot read the XML input (no line number): the input stream is not readable");
    // Our own buffer: whole lines are examined for the mapping fast path
    // (see fast_line) before expat sees them. A partial last line waits for
    // the next read; a chunk without any newline goes to expat as it is.
    std::unique_ptr<char[]> buf(new char[2 * chunk_size]);
    std::size_t have = 0;
    pdata::progress &prog = pdata::or_null(opts_.progress);
    prog.begin("reading XML", opts_.input_bytes, "bytes");
    for (;;) {
      std::streamsize n = read_chunk(in, buf.get() + have);
      have += static_cast<std::size_t>(n);
      prog.advance(static_cast<uint64_t>(n));
      const bool final = in.eof();
      std::size_t upto = have;
      if (!final) {
        const char *nl = static_cast<const char *>(memrchr(buf.get(), '\n', have));
        if (nl) upto = static_cast<std::size_t>(nl - buf.get()) + 1;
      }
      lines(buf.get(), upto);
      std::memmove(buf.get(), buf.get() + upto, have - upto);
      have -= upto;
      if (final) {
        feed(nullptr, 0, true);
        break;
      }
    }
    // Expat has seen the whole document, well formed, root closed.
    if (!superblock_closed_) throw xml_error(current_line(), "the input ends before </superblock>");
    notify_at(superblock_end_line_, [&] { e_.end_superblock(); });
    prog.end();
  }

 private:
  // --- the mapping fast path ----------------------------------------------
  //
  // Nearly all of a large document is lines like
  //   <4 spaces><single_mapping origin_block="N" data_block="N" time="N"/>
  // Such a line is handled here, without expat, when expat is known to be
  // between elements (everything it was given since its last element event
  // is whitespace, so no comment, CDATA or tag is open) inside a <device> or
  // <def>. Expat is then given one newline in its place, so its line numbers
  // stay right. Anything else (other spacing, entities, values out of range,
  // a second line feed style) goes through expat as before, so errors are
  // reported exactly as expat and the checks below report them.

  // Splits [p, p+len) into lines; runs of ordinary lines are fed to expat in
  // one piece.
  void lines(const char *p, std::size_t len) {
    const char *end = p + len, *slow = p, *line = p;
    while (line < end) {
      const char *nl = static_cast<const char *>(std::memchr(line, '\n', static_cast<std::size_t>(end - line)));
      const char *line_end = nl ? nl : end;
      if (nl && looks_like_mapping(line, line_end)) {
        if (slow < line) feed(slow, static_cast<std::size_t>(line - slow), false);
        slow = line;
        if (fast_line(line, line_end)) slow = nl + 1;
      }
      line = nl ? nl + 1 : end;
    }
    if (slow < end) feed(slow, static_cast<std::size_t>(end - slow), false);
  }

  static bool looks_like_mapping(const char *p, const char *end) {
    while (p < end && *p == ' ') ++p;
    return end - p > 16 && p[0] == '<' && (p[1] == 's' || p[1] == 'r');
  }

  // Exactly `lit` at p: advance past it.
  template <std::size_t N>
  static bool lit(const char *&p, const char *end, const char (&l)[N]) {
    if (static_cast<std::size_t>(end - p) < N - 1 || std::memcmp(p, l, N - 1) != 0) return false;
    p += N - 1;
    return true;
  }
  // 1 to 19 decimal digits (cannot overflow) then a closing quote.
  static bool digits(const char *&p, const char *end, uint64_t &v) {
    const char *start = p;
    v = 0;
    while (p < end && *p >= '0' && *p <= '9' && p - start < 19) v = v * 10 + static_cast<uint64_t>(*p++ - '0');
    return p > start && p < end && *p == '"';
  }

  bool fast_line(const char *p, const char *end) {
    if (!gap_clean_ || pending_ || stack_.empty() ||
        (stack_.back() != element::device && stack_.back() != element::def))
      return false;
    while (p < end && *p == ' ') ++p;
    uint64_t origin, data, len = 1, time;
    element k;
    if (lit(p, end, "<single_mapping origin_block=\"")) {
      k = element::single_mapping;
      if (!digits(p, end, origin) || !lit(p, end, "\" data_block=\"") || !digits(p, end, data) ||
          !lit(p, end, "\" time=\"") || !digits(p, end, time))
        return false;
    } else if (lit(p, end, "<range_mapping origin_begin=\"")) {
      k = element::range_mapping;
      if (!digits(p, end, origin) || !lit(p, end, "\" data_begin=\"") || !digits(p, end, data) ||
          !lit(p, end, "\" length=\"") || !digits(p, end, len) || !lit(p, end, "\" time=\"") ||
          !digits(p, end, time))
        return false;
    } else {
      return false;
    }
    if (!lit(p, end, "\"/>") || p != end) return false;
    // What attribute parsing would reject is left to it, for its messages.
    if (time > max_mapping_time || len == 0) return false;
    checked_mapping(k, origin, data, len, static_cast<uint32_t>(time));
    pending_newlines_++;
    return true;
  }

  // Gives expat [p, p+len) (after the newlines standing for fast lines), and
  // works out whether it is left between elements.
  void feed(const char *p, std::size_t len, bool final) {
    static const std::string newlines(4096, '\n');
    while (pending_newlines_) {
      const std::size_t n = std::min<std::size_t>(pending_newlines_, newlines.size());
      pending_newlines_ -= n;
      parse(newlines.data(), n, false);
    }
    const uint64_t start = fed_;
    parse(p, len, final);
    if (markup_end_ >= start) {
      gap_clean_ = all_blank(p + (markup_end_ - start), p + len);
    } else {
      gap_clean_ = gap_clean_ && all_blank(p, p + len);
    }
  }

  void parse(const char *p, std::size_t len, bool final) {
    if (XML_Parse(p_, p, static_cast<int>(len), final ? XML_TRUE : XML_FALSE) != XML_STATUS_OK || pending_)
      failed(final);
    fed_ += len;
  }

  static bool all_blank(const char *p, const char *end) {
    for (; p < end; ++p)
      if (*p != ' ' && *p != '\t' && *p != '\n') return false;
    return true;
  }

  // Called from element handlers: where the element's tag ends (in bytes fed).
  void note_markup() {
    markup_end_ = static_cast<uint64_t>(XML_GetCurrentByteIndex(p_)) +
                  static_cast<uint64_t>(XML_GetCurrentByteCount(p_));
  }

  // --- reading -------------------------------------------------------------

  std::streamsize read_chunk(std::istream &in, char *buf) {
    try {
      in.read(buf, static_cast<std::streamsize>(chunk_size));
    } catch (const std::ios_base::failure &f) {
      // Only when the caller enabled stream exceptions; reaching the end is
      // not an error.
      if (!in.eof() || in.bad()) read_failed(f.what());
    } catch (const std::exception &ex) {
      // The stream buffer's own exception, rethrown when badbit is enabled.
      read_failed(ex.what());
    }
    if (in.bad() || (in.fail() && !in.eof())) read_failed("the input stream failed");
    return in.gcount();
  }

  [[noreturn]] void read_failed(const std::string &why) {
    throw xml_error("error reading the XML input (no line number: the read failed, not the XML; parsing had "
                    "reached line " + std::to_string(current_line()) + "): " + why);
  }

  // XML_ParseBuffer failed: either a callback stopped it (rethrow what the
  // callback caught) or expat found the document malformed.
  [[noreturn]] void failed(bool final) {
    if (pending_) std::rethrow_exception(pending_);
    XML_Error code = XML_GetErrorCode(p_);
    uint64_t line = current_line();
    std::string what = XML_ErrorString(code);
    bool ends_early = code == XML_ERROR_NO_ELEMENTS || code == XML_ERROR_UNCLOSED_TOKEN ||
                      code == XML_ERROR_PARTIAL_CHAR || code == XML_ERROR_UNCLOSED_CDATA_SECTION;
    if (final && ends_early) {
      if (!superblock_seen_ && code == XML_ERROR_NO_ELEMENTS)
        throw xml_error(line, "empty input: no <superblock> element found");
      throw xml_error(line, "the input ends before the document is complete (truncated?): " + open_elements() +
                                " (" + what + ")");
    }
    if (code == XML_ERROR_JUNK_AFTER_DOC_ELEMENT && superblock_closed_)
      throw xml_error(line, "content after </superblock> (" + what +
                                "): the document must hold exactly one <superblock>, and nothing after it");
    throw xml_error(line, "malformed XML: " + what);
  }

  // What was left open at the end of the input, innermost first.
  std::string open_elements() const {
    if (stack_.empty()) return "it stops inside the first tag";
    std::string s;
    for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
      if (!s.empty()) s += ", ";
      s += tag(*it);
    }
    return s + (stack_.size() == 1 ? " was not closed" : " were not closed");
  }

  uint64_t current_line() const {
    return static_cast<uint64_t>(XML_GetCurrentLineNumber(p_)) + pending_newlines_;
  }

  [[noreturn]] void fail(const std::string &message) const { throw xml_error(current_line(), message); }

  // Rethrows the emitter's exception in flight as an xml_error at `line`,
  // keeping the original nested. broken_pipe (the reader of our output went
  // away) and exceptions not derived from std::exception pass unchanged.
  [[noreturn]] static void rethrow_for_line(uint64_t line) {
    try {
      throw;
    } catch (const broken_pipe &) {
      throw;
    } catch (const std::exception &ex) {
      std::throw_with_nested(xml_error(line, ex.what()));
    }
  }

  // Calls the emitter; whatever it throws becomes an xml_error at `line`
  // (by default the current one).
  template <typename F>
  void notify(F &&f) {
    notify_at(current_line(), std::forward<F>(f));
  }
  template <typename F>
  static void notify_at(uint64_t line, F &&f) {
    try {
      f();
    } catch (...) {
      rethrow_for_line(line);
    }
  }

  // --- expat callbacks ------------------------------------------------------

  template <typename F>
  static void guarded(void *self_ptr, F &&f) {
    auto *self = static_cast<xml_reader *>(self_ptr);
    if (self->pending_) return;  // stopped: expat may still deliver a few events
    try {
      f(*self);
    } catch (...) {
      self->pending_ = std::current_exception();
      XML_StopParser(self->p_, XML_FALSE);
    }
  }

  static void XMLCALL on_start(void *self, const XML_Char *name, const XML_Char **atts) {
    guarded(self, [&](xml_reader &r) { r.start(name, atts); });
  }
  static void XMLCALL on_end(void *self, const XML_Char *name) {
    guarded(self, [&](xml_reader &r) { r.end(name); });
  }
  static void XMLCALL on_text(void *self, const XML_Char *s, int len) {
    guarded(self, [&](xml_reader &r) { r.text(s, len); });
  }
  static void XMLCALL on_doctype(void *self, const XML_Char *, const XML_Char *, const XML_Char *, int) {
    guarded(self, [&](xml_reader &r) {
      r.fail("<!DOCTYPE> declarations are not allowed in thin metadata XML");
    });
  }

  // --- structure --------------------------------------------------------------

  void start(const char *name, const char **atts) {
    note_markup();
    auto found = lookup_element(name);
    if (!found)
      fail(std::string("unknown element <") + name +
           "> (thin metadata XML has only <superblock>, <device>, <def>, <ref>, <range_mapping> and "
           "<single_mapping>)");
    element k = *found;
    element parent = stack_.empty() ? element::none : stack_.back();

    if (is_mapping(parent) || parent == element::ref)
      fail(tag(k) + " inside " + tag(parent) + ": " + tag(parent) + " must be empty");
    if (parent == element::none && k != element::superblock)
      fail(tag(k) + " before <superblock>: the document must start with <superblock>");

    switch (k) {
      case element::superblock:
        if (parent != element::none) fail("a second <superblock> inside " + tag(parent) + ": only one is allowed");
        begin_superblock(atts);
        break;
      case element::device:
        if (parent == element::device) fail("nested <device>: a <device> cannot contain another <device>");
        if (parent == element::def) fail("<device> inside <def>: a <def> holds only mappings");
        begin_device(atts);
        break;
      case element::def:
        if (parent == element::device)
          fail("<def> inside <device>: a <def> belongs directly in <superblock>, use <ref> in the device");
        if (parent == element::def) fail("nested <def>: a <def> holds only mappings");
        begin_def(atts);
        break;
      case element::ref:
        if (parent == element::def) fail("<ref> inside <def>: a <def> holds only mappings");
        if (parent != element::device) fail("<ref> outside a <device>: a <ref> belongs inside a <device>");
        ref(atts);
        break;
      case element::range_mapping:
      case element::single_mapping:
        if (parent != element::device && parent != element::def)
          fail(tag(k) + " outside a <device> or <def>");
        mapping(k, atts);
        break;
      case element::none:
        break;
    }
    stack_.push_back(k);
  }

  void end(const char *) {
    note_markup();
    // Expat guarantees the end tag matches the innermost open element.
    element k = stack_.back();
    stack_.pop_back();
    switch (k) {
      case element::device:
        notify([&] { e_.end_device(); });
        break;
      case element::def:
        defs_[current_def_] = span_;
        current_def_.clear();
        notify([&] { e_.end_def(); });
        break;
      case element::superblock:
        superblock_closed_ = true;
        superblock_end_line_ = current_line();
        break;
      default:
        break;
    }
  }

  void text(const char *s, int len) {
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    int i = 0;
    while (i < len && blank(s[i])) ++i;
    if (i == len) return;
    int j = i;
    while (j < len && !blank(s[j]) && j - i < 40) ++j;
    fail("unexpected text \"" + std::string(s + i, s + j) + (j < len && !blank(s[j]) ? "...\"" : "\"") +
         ": only elements, whitespace and comments are allowed here");
  }

  // --- attributes -------------------------------------------------------------

  // The values of an element's attributes, in the order of `names` (null
  // when absent). Unknown attributes are errors; expat rejects duplicates.
  template <std::size_t N>
  std::array<const char *, N> attributes(element k, const char **atts, const std::array<const char *, N> &names) {
    std::array<const char *, N> v{};
    for (const char **a = atts; *a; a += 2) {
      std::size_t i = 0;
      while (i < N && std::strcmp(a[0], names[i]) != 0) ++i;
      if (i == N) fail(std::string("unknown attribute \"") + a[0] + "\" on " + tag(k));
      v[i] = a[1];
    }
    return v;
  }

  const char *required(element k, const char *name, const char *value) {
    if (!value) fail(tag(k) + " is missing the required attribute \"" + name + "\"");
    return value;
  }

  uint64_t number(element k, const char *name, const char *value, uint64_t max, const char *why = nullptr) {
    required(k, name, value);
    auto v = parse_decimal(value);
    if (v && *v <= max) return *v;
    std::string what = tag(k) + " attribute " + name + "=\"" + value + "\"";
    if (!v && !all_digits(value)) fail(what + " is not a non-negative decimal integer");
    fail(what + " is out of range (at most " + std::to_string(max) + (why ? std::string(", ") + why : "") + ")");
  }

  std::optional<uint64_t> optional_number(element k, const char *name, const char *value, uint64_t max) {
    if (!value) return std::nullopt;
    return number(k, name, value, max);
  }

  // --- elements -----------------------------------------------------------------

  void begin_superblock(const char **atts) {
    static constexpr std::array<const char *, 8> names = {
        "uuid", "time", "transaction", "flags", "version", "data_block_size", "nr_data_blocks", "metadata_snap"};
    constexpr element k = element::superblock;
    auto v = attributes(k, atts, names);
    superblock_info sb;
    sb.uuid = required(k, "uuid", v[0]);
    sb.time = number(k, "time", v[1], u32_max);
    sb.trans_id = number(k, "transaction", v[2], u64_max);
    if (auto f = optional_number(k, "flags", v[3], u32_max)) sb.flags = static_cast<uint32_t>(*f);
    if (auto ver = optional_number(k, "version", v[4], u32_max)) sb.version = static_cast<uint32_t>(*ver);
    sb.data_block_size = static_cast<uint32_t>(number(k, "data_block_size", v[5], u32_max));
    sb.nr_data_blocks = number(k, "nr_data_blocks", v[6], u64_max);
    sb.metadata_snap = optional_number(k, "metadata_snap", v[7], u64_max);

    const superblock_overrides &o = opts_.overrides;
    if (o.transaction_id) sb.trans_id = *o.transaction_id;
    if (o.data_block_size) sb.data_block_size = *o.data_block_size;
    if (o.nr_data_blocks) sb.nr_data_blocks = *o.nr_data_blocks;

    if (!invariants::data_block_size_ok(sb.data_block_size))
      fail("data_block_size " + std::to_string(sb.data_block_size) + (o.data_block_size ? " (overridden)" : "") +
           " is invalid: it must be a multiple of 128 sectors between 128 and 2097152");

    superblock_seen_ = true;
    nr_data_blocks_ = sb.nr_data_blocks;
    sb_time_ = sb.time;
    nr_data_blocks_overridden_ = o.nr_data_blocks.has_value();
    notify([&] { e_.begin_superblock(sb); });
  }

  void begin_device(const char **atts) {
    static constexpr std::array<const char *, 5> names = {"dev_id", "mapped_blocks", "transaction", "creation_time",
                                                          "snap_time"};
    constexpr element k = element::device;
    auto v = attributes(k, atts, names);
    device_info d;
    d.dev_id = number(k, "dev_id", v[0], max_dev_id);
    d.mapped_blocks = number(k, "mapped_blocks", v[1], u64_max);
    d.trans_id = number(k, "transaction", v[2], u64_max);
    d.creation_time = number(k, "creation_time", v[3], u32_max);
    d.snap_time = number(k, "snap_time", v[4], u32_max);
    if (!dev_ids_.insert(d.dev_id).second)
      fail("duplicate <device dev_id=\"" + std::to_string(d.dev_id) + "\">: each device may appear only once");
    span_ = {};
    scope_ = "device " + std::to_string(d.dev_id);
    notify([&] { e_.begin_device(d); });
  }

  void begin_def(const char **atts) {
    static constexpr std::array<const char *, 1> names = {"name"};
    auto v = attributes(element::def, atts, names);
    std::string name = required(element::def, "name", v[0]);
    if (name.empty()) fail("<def> has an empty name");
    if (defs_.count(name)) fail("duplicate <def name=\"" + name + "\">: each def name may be defined only once");
    defs_.emplace(name, origin_span{});
    current_def_ = name;
    span_ = {};
    scope_ = "def \"" + name + "\"";
    notify([&] { e_.begin_def(name); });
  }

  void ref(const char **atts) {
    static constexpr std::array<const char *, 1> names = {"name"};
    auto v = attributes(element::ref, atts, names);
    std::string name = required(element::ref, "name", v[0]);
    auto it = defs_.find(name);
    if (it == defs_.end()) fail("<ref name=\"" + name + "\"/> names no <def> that appears before it");
    const origin_span &d = it->second;
    if (d.any) {
      if (span_.any && d.first <= span_.last)
        fail("<ref name=\"" + name + "\"/> maps origin blocks " + std::to_string(d.first) + ".." +
             std::to_string(d.last) + ", which do not come after the previous mapping of " + scope_ +
             " (ending at origin block " + std::to_string(span_.last) + ")");
      if (!span_.any) span_.first = d.first;
      span_.any = true;
      span_.last = d.last;
    }
    notify([&] { e_.ref(name); });
  }

  void mapping(element k, const char **atts) {
    uint64_t origin, data, len;
    uint32_t time;
    if (k == element::range_mapping) {
      static constexpr std::array<const char *, 4> names = {"origin_begin", "data_begin", "length", "time"};
      auto v = attributes(k, atts, names);
      origin = number(k, "origin_begin", v[0], u64_max);
      data = number(k, "data_begin", v[1], u64_max);
      len = number(k, "length", v[2], u64_max);
      time = mapping_time(k, v[3]);
      if (len == 0) fail("<range_mapping> with length 0: a range must map at least one block");
    } else {
      static constexpr std::array<const char *, 3> names = {"origin_block", "data_block", "time"};
      auto v = attributes(k, atts, names);
      origin = number(k, "origin_block", v[0], u64_max);
      data = number(k, "data_block", v[1], u64_max);
      len = 1;
      time = mapping_time(k, v[2]);
    }

    checked_mapping(k, origin, data, len, time);
  }

  // The checks on a mapping's values, then the emitter.
  void checked_mapping(element k, uint64_t origin, uint64_t data, uint64_t len, uint32_t time) {
    if (origin > u64_max - (len - 1))
      fail(tag(k) + " origin blocks " + std::to_string(origin) + " + " + std::to_string(len) +
           " run past the largest block number (2^64-1)");
    if (data > u64_max - (len - 1))
      fail(tag(k) + " data blocks " + std::to_string(data) + " + " + std::to_string(len) +
           " run past the largest block number (2^64-1)");
    uint64_t data_last = data + (len - 1);
    if (!invariants::mapping_block_ok(data_last, nr_data_blocks_))
      fail(tag(k) + " maps data block " + std::to_string(data_last) + ", beyond the data device: nr_data_blocks is " +
           std::to_string(nr_data_blocks_) + (nr_data_blocks_overridden_ ? " (overridden)" : "") +
           ", so data blocks must be below it");
    if (data_last > max_data_block)
      fail(tag(k) + " maps data block " + std::to_string(data_last) + ", above the largest a mapping can hold (" +
           std::to_string(max_data_block) + ")");
    if (!invariants::mapping_time_ok(time, sb_time_))
      fail(tag(k) + " attribute time=\"" + std::to_string(time) + "\" at origin block " + std::to_string(origin) +
           " of " + scope_ + " is after the superblock's time (" + std::to_string(sb_time_) +
           "): a mapping cannot be newer than the pool, and the kernel would take a block shared with a later "
           "snapshot for unshared");
    if (span_.any && origin <= span_.last)
      fail(tag(k) + " at origin block " + std::to_string(origin) + " does not come after the previous mapping of " +
           scope_ + " (ending at origin block " + std::to_string(span_.last) +
           "): mappings must be in increasing origin order, without duplicates or overlaps");
    if (!span_.any) span_.first = origin;
    span_.any = true;
    span_.last = origin + (len - 1);

    if (k == element::range_mapping)
      notify([&] { e_.range_map(origin, data, time, len); });
    else
      notify([&] { e_.single_map(origin, data, time); });
  }

  uint32_t mapping_time(element k, const char *value) {
    return static_cast<uint32_t>(number(k, "time", value, max_mapping_time, "a mapping stores 24 bits of time"));
  }

  emitter &e_;
  const xml_parse_options &opts_;
  XML_Parser p_ = nullptr;
  std::exception_ptr pending_;

  std::vector<element> stack_;  // open elements; depth is at most 3
  bool superblock_seen_ = false;
  bool superblock_closed_ = false;
  uint64_t superblock_end_line_ = 0;
  uint64_t nr_data_blocks_ = 0;
  uint64_t sb_time_ = 0;
  bool nr_data_blocks_overridden_ = false;

  std::unordered_set<uint64_t> dev_ids_;
  std::unordered_map<std::string, origin_span> defs_;
  std::string current_def_;
  origin_span span_;   // of the open device or def
  // Fast path state: fast lines not yet replaced by newlines in expat's
  // input, bytes given to expat, where its last element tag ended, and
  // whether only whitespace followed.
  uint64_t pending_newlines_ = 0;
  uint64_t fed_ = 0;
  uint64_t markup_end_ = 0;
  bool gap_clean_ = false;
  std::string scope_;  // "device 3" or "def \"x\"", for messages
};

}  // namespace

void parse_xml(std::istream &in, emitter &e, const xml_parse_options &opts) {
  xml_reader r(e, opts);
  r.run(in);
}

}  // namespace thin
