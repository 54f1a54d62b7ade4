#pragma once
// Peer comparisons for the op benchmarks: a benchmark file names pairs (ours, peer) of benchmark
// name prefixes, and bench_main prints, after the run, ours' figure over the peer's (same unit,
// same run, so the same machine load), e.g. the own exact-GELU kernel against oneDNN's eltwise
// gelu_erf. > 1: ours is faster. Register at namespace scope:
//
//   const bool kPeers = bench::compare_with_peer("BM_Forward/gelu_erf/", "BM_GeluOneDnn/erf_f");
#include <string>
#include <vector>

namespace tessera::bench {

struct PeerPair {
  std::string ours, peer;  // prefixes of Google Benchmark run names
};

inline std::vector<PeerPair>& peer_pairs() {
  static std::vector<PeerPair> pairs;
  return pairs;
}

inline bool compare_with_peer(std::string ours, std::string peer) {
  peer_pairs().push_back({std::move(ours), std::move(peer)});
  return true;
}

}  // namespace tessera::bench
