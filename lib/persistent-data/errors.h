// thinkit's exceptions: one base, four kinds.
//
// thinkit has two error channels: failures are exceptions (these), caught in
// each tool (tools/cli.h maps them to one line and exit 1); metadata damage
// that a checker or a tolerant walk can go on after is data, passed as typed
// records to a visitor (see btree_walk.h and thin/check/damage.h).
//
// Every exception thinkit throws is a pdata::error of one kind:
//   io_error                 a read, write, flush or open failed, or the
//                            device is full (out of metadata/data space)
//   damaged_metadata_error   the metadata cannot be used (bad checksum,
//                            broken tree, missing root, ...)
//   bad_input_error          the input given is wrong: XML, a log that is not
//                            a log, options and arguments, requests the
//                            metadata cannot honour (no such device)
//   internal_error           a bug: a broken invariant inside thinkit
// Catch the kind (or pdata::error and switch on kind()) rather than
// std::runtime_error. Messages are one line, without a trailing period.
#pragma once

#include <stdexcept>
#include <string>

namespace pdata {

enum class error_kind { io, damaged_metadata, bad_input, internal };

class error : public std::runtime_error {
 public:
  error(error_kind kind, const std::string &message) : std::runtime_error(message), kind_(kind) {}
  error_kind kind() const noexcept { return kind_; }

 private:
  error_kind kind_;
};

class io_error : public error {
 public:
  explicit io_error(const std::string &message) : error(error_kind::io, message) {}
};

class damaged_metadata_error : public error {
 public:
  explicit damaged_metadata_error(const std::string &message) : error(error_kind::damaged_metadata, message) {}
};

class bad_input_error : public error {
 public:
  explicit bad_input_error(const std::string &message) : error(error_kind::bad_input, message) {}
};

class internal_error : public error {
 public:
  explicit internal_error(const std::string &message) : error(error_kind::internal, message) {}
};

// A block failed validation (checksum, block number, type invariants) where
// the caller asked for an exception rather than a damage record.
class bad_block_error : public damaged_metadata_error {
 public:
  using damaged_metadata_error::damaged_metadata_error;
};

}  // namespace pdata
