#include "core/threads.h"

#include <omp.h>

#include <cstdlib>

#include "core/error.h"

namespace tessera {

void set_num_threads(int n) {
  TESSERA_CHECK(n >= 1, "set_num_threads: thread count must be >= 1, got ", n);
  omp_set_num_threads(n);
}

int num_threads() {
  return omp_get_max_threads();
}

void init_threads_from_env() {
  if (const char* v = std::getenv("TESSERA_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    TESSERA_CHECK(end != v && *end == '\0' && n >= 1, "TESSERA_NUM_THREADS='", v,
                  "' is not a positive integer");
    set_num_threads(static_cast<int>(n));
  }
}

}  // namespace tessera
