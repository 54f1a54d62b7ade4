#include "distributed/arrival_query.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/timer.h"

namespace tessera::distributed {

namespace {
constexpr int kTagQuery = 1;  // "which sequence number have you issued?"
constexpr int kTagReply = 2;  // the answer: one int64
}  // namespace

ArrivalQuery::ArrivalQuery(MPI_Comm ctrl, const std::atomic<int64_t>* issued,
                           std::vector<int> world_ranks, std::string group)
    : ctrl_(ctrl), issued_(issued), world_ranks_(std::move(world_ranks)), group_(std::move(group)) {
  MPI_Comm_rank(ctrl_, &rank_);
  MPI_Comm_size(ctrl_, &size_);
}

void ArrivalQuery::start() {
  MPI_Irecv(&query_buf_, 1, MPI_INT64_T, MPI_ANY_SOURCE, kTagQuery, ctrl_, &query_req_);
}

void ArrivalQuery::poll() {
  for (;;) {
    int flag = 0;
    MPI_Status status;
    if (query_req_ == MPI_REQUEST_NULL || MPI_Test(&query_req_, &flag, &status) != MPI_SUCCESS ||
        !flag)
      break;
    auto answer = std::make_unique<int64_t>(issued_->load());
    MPI_Request req = MPI_REQUEST_NULL;
    MPI_Isend(answer.get(), 1, MPI_INT64_T, status.MPI_SOURCE, kTagReply, ctrl_, &req);
    replies_.emplace_back(std::move(answer), req);
    MPI_Irecv(&query_buf_, 1, MPI_INT64_T, MPI_ANY_SOURCE, kTagQuery, ctrl_, &query_req_);
  }
  while (!replies_.empty()) {
    int flag = 0;
    MPI_Test(&replies_.front().second, &flag, MPI_STATUS_IGNORE);
    if (!flag) break;
    replies_.pop_front();
  }
}

std::string ArrivalQuery::describe_missing(int64_t seq, double timeout_s) {
  if (size_ <= 1) return "group of one";
  std::vector<int64_t> answers(size_, -1);
  std::vector<MPI_Request> recvs(size_, MPI_REQUEST_NULL), sends(size_, MPI_REQUEST_NULL);
  int64_t question = seq;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    MPI_Irecv(&answers[r], 1, MPI_INT64_T, r, kTagReply, ctrl_, &recvs[r]);
    MPI_Isend(&question, 1, MPI_INT64_T, r, kTagQuery, ctrl_, &sends[r]);
  }
  const int64_t until = now_ns() + int64_t(timeout_s * 1e9);
  std::vector<char> answered(size_, 0);
  int pending = size_ - 1;
  while (pending > 0 && now_ns() < until) {
    poll();  // keep answering the others: they may be asking at the same moment
    for (int r = 0; r < size_; ++r) {
      if (r == rank_ || answered[r]) continue;
      int flag = 0;
      MPI_Test(&recvs[r], &flag, MPI_STATUS_IGNORE);
      if (flag) answered[r] = 1, --pending;
    }
    if (pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string missing, silent;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    std::string label = absl::StrCat(world_ranks_[r]);
    if (world_ranks_[r] != r || group_ != "world")
      absl::StrAppend(&label, " ('", group_, "' rank ", r, ")");
    if (!answered[r]) {
      absl::StrAppend(&silent, silent.empty() ? "" : ", ", label);
    } else if (answers[r] < seq) {
      absl::StrAppend(&missing, missing.empty() ? "" : ", ", "rank ", label, " (last issued #",
                      answers[r], ")");
    }
  }
  // The job ends right after this: requests still pending are left to MPI_Abort.
  if (missing.empty() && silent.empty())
    return "every rank of the group has issued it (stuck in transfer)";
  std::string who;
  if (!missing.empty()) who = absl::StrCat("not arrived: ", missing);
  if (!silent.empty())
    absl::StrAppend(&who, who.empty() ? "" : "; ", "no answer from rank(s) ", silent);
  return who;
}

void ArrivalQuery::stop() {
  if (query_req_ != MPI_REQUEST_NULL) {
    MPI_Cancel(&query_req_);
    MPI_Wait(&query_req_, MPI_STATUS_IGNORE);
  }
  for (auto& [answer, req] : replies_) MPI_Wait(&req, MPI_STATUS_IGNORE);
  replies_.clear();
}

}  // namespace tessera::distributed
