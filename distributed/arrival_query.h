#pragma once
// The collective watchdog's question to the peers, shared by MpiCommunicator and
// NcclCommunicator: "which sequence number have you issued last on this group?". Every
// communicator's own thread answers such questions whenever it polls (so even a rank whose main
// thread is busy computing answers), and the thread whose oldest collective missed its deadline
// asks every peer and names the ranks that have not issued it yet, or did not answer.
//
// Runs over a dedicated duplicate of the group's MPI communicator that nothing else uses; every
// call below is made by the owner's communication thread only (MPI_THREAD_MULTIPLE: the owner's
// other threads use other communicators meanwhile).

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tessera::distributed {

class ArrivalQuery {
 public:
  // ctrl: the dedicated communicator (not owned); issued: the owner's count of collectives
  // issued (read when answering); world_ranks: the world rank of each group rank; group: the
  // group's name for labels.
  ArrivalQuery(MPI_Comm ctrl, const std::atomic<int64_t>* issued, std::vector<int> world_ranks,
               std::string group);

  // Posts the receive for the first question; call on the communication thread before poll().
  void start();
  // Answers every question that arrived; finishes sent answers. Never blocks.
  void poll();
  // Asks every other rank for its last issued sequence number and compares with `seq`, waiting
  // up to timeout_s for the answers (answering others meanwhile). Returns the clause of the
  // watchdog line: "not arrived: rank 1 (last issued #3)", "no answer from rank(s) 2", or
  // "every rank of the group has issued it (stuck in transfer)"; "group of one" alone.
  std::string describe_missing(int64_t seq, double timeout_s);
  // Cancels the pending receive and completes the answers in flight.
  void stop();

 private:
  MPI_Comm ctrl_;
  const std::atomic<int64_t>* issued_;
  std::vector<int> world_ranks_;
  std::string group_;
  int rank_ = 0, size_ = 1;
  MPI_Request query_req_ = MPI_REQUEST_NULL;
  int64_t query_buf_ = 0;
  std::deque<std::pair<std::unique_ptr<int64_t>, MPI_Request>> replies_;
};

}  // namespace tessera::distributed
