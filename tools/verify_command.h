#pragma once
// `tessera inspect --verify PATH...`: verifies everything it is given. A shard (image or text):
// every chunk of every dataset read once, so each Fletcher32 checksum is checked; a manifest: its
// structure, then each shard's content hash and chunks; a checkpoint directory: the commit marker
// and every stored chunk (inspect_checkpoint). Each bad chunk is listed (file, dataset, samples)
// and the rest still verified. Under mpirun each rank verifies a share of the shards (shard i on
// rank i mod size) and rank 0 prints the gathered report.
#include <string>
#include <vector>

namespace tessera::tools {

// Returns the exit status: 0 when everything verified, 1 otherwise (on rank 0; other ranks
// return 0 once their share is gathered).
int verify_command(const std::vector<std::string>& paths);

}  // namespace tessera::tools
