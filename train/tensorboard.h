#pragma once
// TensorBoard scalar summaries: DIR/events.out.tfevents.<unix time>.<host>, TFRecord-framed
// tessera.tb.Event protobufs (proto/tensorboard.proto) that `tensorboard --logdir DIR` reads.
// The first record carries file_version "brain.Event:2", as TensorBoard expects.

#include <string>
#include <utility>
#include <vector>

#include "train/tfrecord.h"

namespace tessera::train {

class TensorBoardWriter {
 public:
  // Creates DIR (and parents) and a new event file in it; throws naming the path on error.
  explicit TensorBoardWriter(const std::string& dir);

  // One Event at `step` holding every (tag, value) pair; written and flushed at once.
  void write_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars);
  const std::string& path() const { return file_.path(); }

 private:
  static std::string file_name(const std::string& dir);
  TfRecordWriter file_;
};

}  // namespace tessera::train
