// A small MPI program for the failure tests (driven by expect_abort.sh):
//   abort_probe hang   - 3 all-reduces succeed; then rank 1 sleeps 30 s before the 4th while the
//                        others wait in it; the 2 s watchdog must name all_reduce #4 on group
//                        'world' and rank 1 as not arrived, and end the job.
//   abort_probe throw  - the last rank throws in "step 4" while the others wait in a collective
//                        with the default 600 s deadline; run_or_abort must print the message once
//                        and end the job at once.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "distributed/mpi_communicator.h"

using namespace tessera;
using namespace tessera::distributed;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  MpiEnvironment env(&argc, &argv);
  return run_or_abort([&] {
    MpiOptions options;
    if (mode == "hang") options.timeout_s = 2;
    auto world = MpiCommunicator::world(options);
    // 4 MiB: the bulk path (arrival barrier first), whose arrival phase the watchdog watches.
    Tensor t = Tensor::zeros({1 << 20}, DType::f32);
    for (int step = 1; step <= 3; ++step) world->all_reduce(t, ReduceOp::kSum)->wait();
    if (mode == "hang" && world->rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(30));
    if (mode == "throw" && world->rank() == world->size() - 1)
      throw Error("injected failure in step 4");
    world->all_reduce(t, ReduceOp::kSum)->wait();
    std::printf("rank %d: finished (unexpected)\n", world->rank());
    return 0;
  });
}
