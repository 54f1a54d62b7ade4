#pragma once
// `tessera pack` under mpirun and its progress line.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace tessera::tools {

// Every rank of MPI_COMM_WORLD passes its string; rank 0 gets all of them in rank order (the
// others get an empty vector). MPI must be initialised. A rank that arrives early waits in a
// polled, sleeping barrier, not in Open MPI's spinning wait, so it leaves the CPU to the ranks
// still packing.
std::vector<std::string> mpi_gather_to_root(const std::string& mine);

// One progress line "pack: DONE/TOTAL inputs  R/s  ETA 1m02s": rewritten in place with '\r'
// when `out` is a terminal, else a plain line every `plain_every_s` seconds (logs stay short).
class ProgressLine {
 public:
  explicit ProgressLine(std::FILE* out, double plain_every_s = 10);
  void update(int64_t done, int64_t total);  // call often; prints at most ~5 times a second
  void finish();                             // ends the in-place line with a newline

 private:
  std::FILE* out_;
  bool tty_;
  double plain_every_s_, start_s_, last_s_ = -1e9;
  bool open_ = false;
};

}  // namespace tessera::tools
