#include "distributed/make_communicator.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "distributed/local_communicator.h"
#include "distributed/mpi_communicator.h"
#include "distributed/routed_communicator.h"
#if TESSERA_WITH_NCCL
#include "distributed/nccl_communicator.h"
#endif

namespace tessera::distributed {

Device local_cuda_device() {
  const int devices = cuda_device_count();
  TESSERA_CHECK(devices > 0, "rank ", world_rank_for_messages(), ": no CUDA device",
                cuda_compiled() ? "" : " (this build has no CUDA backend)");
  int local = 0;
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
    const char* v = std::getenv(name);
    if (v && *v) {
      local = std::atoi(v);
      break;
    }
  }
  return Device::cuda(local % devices);
}

std::unique_ptr<Communicator> make_world_communicator(Device device,
                                                      const CommunicatorOptions& options) {
  MpiOptions mpi;
  mpi.timeout_s = options.timeout_s;
  // One process not started by a launcher is a group of one on any device: no MPI_Init (an MPI
  // singleton would start Open MPI's runtime daemon) and no NCCL; LocalCommunicator takes f32
  // tensors on every device.
  if (!launched_by_mpi()) return std::make_unique<LocalCommunicator>("world");
  if (device.is_cpu()) return MpiCommunicator::world(mpi);
#if TESSERA_WITH_NCCL
  NcclOptions nccl;
  nccl.timeout_s = options.timeout_s;
  // Host values (a loss, a vote) over MPI, device tensors over NCCL: routed_communicator.h.
  std::unique_ptr<Communicator> host = MpiCommunicator::world(mpi);
  return std::make_unique<RoutedCommunicator>(std::move(host),
                                              NcclCommunicator::world(device.index, nccl));
#else
  throw_error(absl::StrCat("make_world_communicator: tensors on ", device.str(),
                           " need the NCCL communicator, but this build has none (configure "
                           "with -DTESSERA_CUDA=ON where NCCL is installed)"));
#endif
}

}  // namespace tessera::distributed
