#include "distributed/layout.h"

#include "absl/strings/str_cat.h"
#include "distributed/local_communicator.h"

namespace tessera::distributed {

ParallelLayout::ParallelLayout(Communicator& world, int tensor_parallel) : world_(&world) {
  const int W = world.size(), T = tensor_parallel, r = world.rank();
  TESSERA_CHECK(T >= 1, "parallel.tensor_parallel = ", T, " must be at least 1");
  TESSERA_CHECK(W % T == 0, "parallel.tensor_parallel = ", T, " does not divide the world size ", W,
                " (", W, " ranks cannot form groups of ", T, ")");
  // Every rank takes the same branches (T and W are the same everywhere), so the splits stay
  // collective.
  if (T == 1) {
    tp_ = std::make_unique<LocalCommunicator>("tp");
  } else {
    tp_ = world.split(/*color=*/r / T, /*key=*/r % T, "tp");
  }
  if (T == W) {
    dp_ = std::make_unique<LocalCommunicator>("dp");
  } else {
    dp_ = world.split(/*color=*/r % T, /*key=*/r / T, "dp");
  }
}

ParallelLayout ParallelLayout::local() {
  ParallelLayout layout;
  layout.owned_world_ = std::make_unique<LocalCommunicator>("world");
  layout.world_ = layout.owned_world_.get();
  layout.dp_ = std::make_unique<LocalCommunicator>("dp");
  layout.tp_ = std::make_unique<LocalCommunicator>("tp");
  return layout;
}

std::string ParallelLayout::describe() const {
  return absl::StrCat("world ", world_size(), " = dp ", dp_size(), " x tp ", tp_size(), "; rank ",
                      world_rank(), ": dp ", dp_rank(), ", tp ", tp_rank());
}

}  // namespace tessera::distributed
