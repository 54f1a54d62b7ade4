#pragma once
// Picks the world communicator for the device the step's tensors live on, so the trainer chooses
// the transport and the model never knows: NCCL for CUDA tensors (CUDA builds), MPI for CPU
// tensors under a launcher, a LocalCommunicator for a plain single process.

#include <memory>

#include "core/tensor.h"
#include "distributed/communicator.h"

namespace tessera::distributed {

struct CommunicatorOptions {
  double timeout_s = 600;  // every collective's deadline (parallel.collective_timeout_s)
};

// The CUDA device this rank drives: the launcher's local rank (OMPI_COMM_WORLD_LOCAL_RANK,
// SLURM_LOCALID, MPI_LOCALRANKID; 0 when none) modulo the number of devices. Throws when the
// build or the machine has no CUDA device.
Device local_cuda_device();

// CPU: MpiCommunicator::world when launched_by_mpi() (MPI must be initialised, e.g. by an
// MpiEnvironment), else LocalCommunicator. CUDA: a RoutedCommunicator of MpiCommunicator::world
// (host tensors) and NcclCommunicator::world on device.index (CUDA tensors), under a launcher or
// not (a single process is a world of one; MPI must be initialised either way).
// Throws naming the device when this build has no CUDA backend.
std::unique_ptr<Communicator> make_world_communicator(Device device,
                                                      const CommunicatorOptions& options = {});

}  // namespace tessera::distributed
