#pragma once
// The CPU thread count for tessera's kernels and oneDNN (both use OpenMP). Set from config, or
// from TESSERA_NUM_THREADS, else OpenMP's default. One thread gives the same results as many:
// kernels split work so that every reduction happens in a fixed order.

namespace tessera {

void set_num_threads(int n);
int num_threads();
// Applies TESSERA_NUM_THREADS if set; called once by the tools and the test main.
void init_threads_from_env();

}  // namespace tessera
