// The NCCL watchdog's failure test (CUDA builds; driven by expect_abort.sh, mode nccl_hang, on
// one rank and one GPU): 3 all-reduces succeed; then a host function blocks the compute stream
// for 30 s, so the 4th all-reduce (ordered after the compute stream) cannot start. The 2 s
// watchdog must name all_reduce #4 on group 'world', abort the NCCL communicator and end the job.
// Without a CUDA device it prints "no CUDA device" and the driver reports a skip.
#include <cuda_runtime.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"

using namespace tessera;
using namespace tessera::distributed;

int main(int argc, char** argv) {
  MpiEnvironment env(&argc, &argv);
  if (cuda_device_count() == 0) {
    std::printf("no CUDA device\n");
    return 0;
  }
  return run_or_abort([&] {
    NcclOptions options;
    options.timeout_s = 2;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const int device = rank % cuda_device_count();
    auto world = NcclCommunicator::world(device, options);
    Tensor t = Tensor::zeros({1 << 20}, DType::f32, Device::cuda(device));
    cudaStream_t compute = cuda::compute_stream(device);
    for (int step = 1; step <= 3; ++step) world->all_reduce(t, ReduceOp::kSum)->wait();
    cuda::check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
    cuda::check(cudaLaunchHostFunc(
                    compute, [](void*) { sleep(30); }, nullptr),
                "cudaLaunchHostFunc");
    world->all_reduce(t, ReduceOp::kSum)->wait();
    cuda::check(cudaStreamSynchronize(compute), "cudaStreamSynchronize");
    std::printf("rank %d: finished (unexpected)\n", world->rank());
    return 0;
  });
}
