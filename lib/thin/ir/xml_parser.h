// The streaming thin_dump XML reader that thin_restore feeds its emitter from.
//
// Reads the XML that thin_dump writes (0.9.0 and the 1.x dialect with shared
// <def>/<ref> subtrees, and lvm2's hand-made variant) in fixed-size chunks
// with expat, validating as it goes, and calls an emitter in document order.
// Memory use does not depend on the size of the input: there is no document
// tree, only a little bookkeeping per device and per <def>.
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <stdexcept>
#include <string>

#include "persistent-data/errors.h"
#include "persistent-data/progress.h"
#include "thin/ir/emitter.h"

namespace thin {

// Anything wrong with the XML input, or an emitter failure while reading it.
// what() always starts "line N: " (N 1-based), except when the input stream
// itself could not be read: then there is no line and the message says so.
// When the emitter threw, the xml_error is also a std::nested_exception
// holding the emitter's exception (std::rethrow_if_nested reaches it).
class xml_error : public pdata::bad_input_error {
 public:
  xml_error(uint64_t line, const std::string &message);
  // An error that no input line can be blamed for (a failed read).
  explicit xml_error(const std::string &message);
  std::optional<uint64_t> line() const { return line_; }

 private:
  std::optional<uint64_t> line_;
};

struct xml_parse_options {
  // Applied to the <superblock> values before they are validated and before
  // begin_superblock (thin_restore --transaction-id and friends).
  superblock_overrides overrides;
  // Told of the input bytes read, of `input_bytes` (0: the size is not
  // known, e.g. standard input or gzip); nullptr: nobody.
  pdata::progress *progress = nullptr;
  uint64_t input_bytes = 0;
};

// Reads thin_dump XML from `in` in 1 MiB chunks, calling `e` in document
// order. end_superblock is called only once the whole input has been read and
// found well formed. Throws xml_error on the first problem; events already
// emitted stay emitted. thin::broken_pipe from the emitter passes through
// unchanged.
void parse_xml(std::istream &in, emitter &e, const xml_parse_options &opts = {});

}  // namespace thin
