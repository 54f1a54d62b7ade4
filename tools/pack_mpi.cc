#include "tools/pack_mpi.h"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "core/error.h"

namespace tessera::tools {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void check(int rc, const char* what) {
  TESSERA_CHECK(rc == MPI_SUCCESS, "pack: ", what, " failed (MPI error ", rc, ")");
}

}  // namespace

std::vector<std::string> mpi_gather_to_root(const std::string& mine) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  // Wait for everybody without spinning: ranks finish their blocks at different times.
  MPI_Request barrier;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &barrier), "MPI_Ibarrier");
  for (int done = 0;;) {
    check(MPI_Test(&barrier, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int size = int(mine.size());
  std::vector<int> sizes(size_t(rank == 0 ? ranks : 0));
  check(MPI_Gather(&size, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
  std::vector<int> offsets(sizes.size());
  int total = 0;
  for (size_t r = 0; r < sizes.size(); ++r) offsets[r] = total, total += sizes[r];
  std::string all(size_t(total), '\0');
  check(MPI_Gatherv(mine.data(), size, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR,
                    0, MPI_COMM_WORLD),
        "MPI_Gatherv");
  std::vector<std::string> out;
  for (size_t r = 0; r < sizes.size(); ++r) out.push_back(all.substr(offsets[r], sizes[r]));
  return out;
}

ProgressLine::ProgressLine(std::FILE* out, double plain_every_s)
    : out_(out), tty_(isatty(fileno(out)) != 0), plain_every_s_(plain_every_s), start_s_(now_s()) {}

void ProgressLine::update(int64_t done, int64_t total) {
  const double t = now_s();
  const bool last = done >= total;
  if (!last && t - last_s_ < (tty_ ? 0.2 : plain_every_s_)) return;
  last_s_ = t;
  const double elapsed = t - start_s_;
  const double rate = elapsed > 0 ? double(done) / elapsed : 0;
  char eta[32] = "?";
  if (rate > 0) {
    const long s = std::lround(double(total - done) / rate);
    std::snprintf(eta, sizeof eta, "%ldm%02lds", s / 60, s % 60);
  }
  std::fprintf(out_, "%spack: %lld/%lld inputs  %.1f/s  ETA %s%s", tty_ ? "\r" : "",
               (long long)done, (long long)total, rate, eta, tty_ ? "\033[K" : "\n");
  std::fflush(out_);
  open_ = tty_;
}

void ProgressLine::finish() {
  if (open_) std::fputc('\n', out_);
  open_ = false;
  std::fflush(out_);
}

}  // namespace tessera::tools
