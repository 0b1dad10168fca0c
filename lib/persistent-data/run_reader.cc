// Sorted runs read ahead on a reader thread (see run_reader.h).
#include "persistent-data/run_reader.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "persistent-data/errors.h"

namespace pdata {

namespace {

// Reads and checks one run; false when it cannot be used.
bool read_one(block_io &io, const block_run &r, block_buffer *buf, const run_check_fn &check) {
  try {
    io.read(r.start, buf[0].raw(), static_cast<std::size_t>(r.count));
  } catch (const io_error &) {
    return false;
  }
  return check(r, buf);
}

}  // namespace

std::size_t read_runs(block_io &io, const std::vector<block_run> &runs, const run_check_fn &check,
                      const run_fn &consume, const run_options &opts) {
  block_address longest = 0;
  for (auto &r : runs) longest = std::max(longest, r.count);
  const std::size_t ahead = std::max<std::size_t>(opts.ahead, 1);
  const std::size_t slot_blocks = static_cast<std::size_t>(longest);

  // Few runs: no thread.
  if (runs.size() < 2 * ahead) {
    std::vector<block_buffer> buf(slot_blocks);
    for (std::size_t i = 0; i < runs.size(); i++) {
      if (!read_one(io, runs[i], buf.data(), check)) return i;
      consume(runs[i], buf.data());
    }
    return runs.size();
  }

  std::vector<block_buffer> ring(ahead * slot_blocks);
  std::vector<char> ok(ahead, 0);
  std::mutex m;
  std::condition_variable cv;
  std::size_t produced = 0, consumed = 0;
  bool stop = false, reader_failed = false;
  std::thread reader([&] {
    for (std::size_t i = 0; i < runs.size(); i++) {
      {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return stop || produced - consumed < ahead; });
        if (stop) return;
      }
      bool good = false;
      try {
        good = read_one(io, runs[i], ring.data() + (i % ahead) * slot_blocks, check);
      } catch (...) {
        good = false;  // check threw: the run is unusable
      }
      std::lock_guard lk(m);
      ok[i % ahead] = good;
      produced++;
      cv.notify_all();
      if (!good) {
        reader_failed = true;
        return;
      }
    }
  });
  struct joiner {
    std::thread &t;
    std::mutex &m;
    std::condition_variable &cv;
    bool &stop;
    ~joiner() {
      {
        std::lock_guard lk(m);
        stop = true;
      }
      cv.notify_all();
      t.join();
    }
  } join{reader, m, cv, stop};
  for (std::size_t i = 0; i < runs.size(); i++) {
    {
      std::unique_lock lk(m);
      cv.wait(lk, [&] { return produced > i || reader_failed; });
      if (produced <= i || !ok[i % ahead]) return i;
    }
    consume(runs[i], ring.data() + (i % ahead) * slot_blocks);
    std::lock_guard lk(m);
    consumed++;
    cv.notify_all();
  }
  return runs.size();
}

}  // namespace pdata
