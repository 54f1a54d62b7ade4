// Reading checkpoints: open_checkpoint, verify_commit_marker, load_model_parameters, load_moments,
// TensorReader (checkpoint/checkpoint.h).
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/commit.h"
#include "checkpoint/pieces.h"
#include "checkpoint/slices.h"

namespace tessera::checkpoint {

using detail::Box;

absl::StatusOr<CheckpointInfo> open_checkpoint(const std::string& path) {
  absl::StatusOr<std::string> dir = detail::resolve(path);
  if (!dir.ok()) return dir.status();
  CheckpointInfo info;
  info.dir = *dir;
  const std::string file = info.dir + "/" + detail::kMetadata;
  absl::StatusOr<std::string> bytes = detail::read_file(file);
  if (!bytes.ok() || !info.metadata.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("checkpoint metadata ", file, " is unreadable"));
  }
  if (info.metadata.format_version() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        file, ": format_version ", info.metadata.format_version(), " (this tessera reads 1)"));
  }
  info.step = info.metadata.step();
  info.config = info.metadata.config();
  return info;
}

absl::Status verify_commit_marker(const CheckpointInfo& ckpt) {
  return detail::verify_marker(ckpt.dir);
}

namespace {

std::string shape_text(const Shape& s) {
  return absl::StrCat("(", absl::StrJoin(s, ", "), ")");
}

// (role, name) -> the metadata's tensor; checks that `store`'s parameters and the checkpoint's
// agree in names and global shapes (a checkpoint of another model fails here, naming a tensor).
absl::StatusOr<std::map<std::string, const checkpoint::Tensor*>> match_tensors(
    const CheckpointInfo& ckpt, const models::ParamStore& store, const std::string& role) {
  std::map<std::string, const checkpoint::Tensor*> by_name;
  for (const auto& t : ckpt.metadata.tensors()) {
    if (t.role() == role) by_name[t.name()] = &t;
  }
  const std::string where = absl::StrCat("checkpoint ", ckpt.dir, "/", detail::kMetadata);
  // Frozen parameters (train.freeze) have no optimizer state, in the store or the checkpoint.
  const bool state = role != "param";
  size_t expected = 0;
  for (size_t id = 0; id < store.infos().size(); ++id) {
    const auto& info = store.infos()[id];
    if (state && store.frozen(static_cast<models::ParamId>(id))) continue;
    ++expected;
    auto it = by_name.find(info.spec.name);
    if (it == by_name.end()) {
      if (state && by_name.size() < store.infos().size()) {
        // Parameters of the model exist, only this one's state does not: it was frozen.
        return absl::NotFoundError(absl::StrCat(
            where, ": no ", role, " tensor ", info.spec.name,
            " (frozen in the run that wrote it, train.freeze? resume with the same train.freeze, "
            "or start a new run from it with init.checkpoint)"));
      }
      return absl::NotFoundError(
          absl::StrCat(where, ": no ", role, " tensor ", info.spec.name,
                       " (a checkpoint of another model? it was written by a ",
                       ckpt.metadata.model_kind(), " run)"));
    }
    const Shape want = detail::storage_shape(info.spec.shape);
    Shape have(it->second->shape().begin(), it->second->shape().end());
    if (have != want) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, ": tensor ", info.spec.name, " has shape ", shape_text(have),
                       ", the model's is ", shape_text(want), " (a checkpoint of another model?)"));
    }
  }
  if (by_name.size() != expected) {
    for (const auto& [name, t] : by_name) {
      const models::ParamId id = store.find(name);
      if (id < 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            where, ": tensor ", name, " is not a parameter of this model (", by_name.size(), " ",
            role, " tensors in the checkpoint, ", store.infos().size(), " in the model)"));
      }
      if (state && store.frozen(id)) {
        return absl::FailedPreconditionError(
            absl::StrCat(where, ": ", name, " has optimizer state (", role,
                         ") but is frozen here (train.freeze): start a new run from this "
                         "checkpoint with init.checkpoint instead of resuming it"));
      }
    }
  }
  return by_name;
}

// A host f32 tensor holding `t`'s values (t itself when it is on the CPU).
tessera::Tensor host(const tessera::Tensor& t) {
  return t.device().is_cpu() ? t : tessera::Tensor::empty(t.shape(), t.dtype(), Device::cpu());
}

// Waits for the reads queued into `buf` (host(params.params())), then makes them the parameters:
// copied back to the device when `buf` is a host copy, compute copies refreshed.
absl::Status finish_parameters(detail::PieceReader& reader, const tessera::Tensor& buf,
                               models::ParamStore& params) {
  absl::Status s = reader.finish();
  if (!s.ok()) return s;
  if (!params.params().device().is_cpu()) copy(buf, params.params());
  params.sync_compute_params();
  return absl::OkStatus();
}

// Queues the reads of parameter `info`'s elements in this rank's own ranges of `buckets` from the
// stored tensor `t` into `out`, laid out as the shard buffer (ZeRO: the parameter shards of stage
// 3, the Adam moments of stages 1-3).
absl::Status queue_own_ranges(detail::PieceReader& reader, const checkpoint::Tensor& t,
                              const models::ParamInfo& info,
                              const std::vector<distributed::ZeroShards::Bucket>& buckets,
                              float* out) {
  for (const auto& b : buckets) {
    if (b.own() == 0 || b.own_end <= info.offset || info.offset + info.numel <= b.own_begin) {
      continue;
    }
    for (const auto& pb : detail::range_boxes(info, b.own_begin, b.own_end)) {
      absl::Status s = reader.queue(t, pb.box, out + b.offset + pb.memory);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// ZeRO-3 (a sharded store, ParamStore::shard_params()): reads only this rank's ranges of the
// parameters, into param_shards(), never the full flat buffer. tensor(id): the stored tensor of
// parameter id, or nullptr to leave it as it is. The same boxes as the Adam moments' ranges
// (load_moments), over the parameters' shard buckets (the frozen units' too).
template <typename TensorOf>
absl::Status load_shards(const CheckpointInfo& ckpt, models::ParamStore& params, TensorOf tensor) {
  params.release_all();  // a gathered unit would keep the old values
  const tessera::Tensor& shards = params.param_shards();
  tessera::Tensor buf = host(shards);
  if (!shards.device().is_cpu()) copy(shards, buf);  // parameters left as they are
  float* out = buf.data<float>();
  detail::PieceReader reader(ckpt.dir);
  for (size_t id = 0; id < params.infos().size(); ++id) {
    const checkpoint::Tensor* t = tensor(id);
    if (t == nullptr) continue;
    absl::Status s = queue_own_ranges(reader, *t, params.infos()[id], params.shard_buckets(), out);
    if (!s.ok()) return s;
  }
  absl::Status s = reader.finish();
  if (!s.ok()) return s;
  if (!shards.device().is_cpu()) copy(buf, shards);
  return absl::OkStatus();
}

}  // namespace

bool has_role(const CheckpointInfo& ckpt, const std::string& role) {
  for (const auto& t : ckpt.metadata.tensors()) {
    if (t.role() == role) return true;
  }
  return false;
}

absl::Status load_model_parameters(const CheckpointInfo& ckpt, models::ParamStore& params,
                                   const std::string& role) {
  auto tensors = match_tensors(ckpt, params, role);
  if (!tensors.ok()) return tensors.status();
  // A state role ("ema") has no tensor for a frozen parameter (train.freeze): that parameter
  // keeps the value it has, which must then survive the copy back to the device.
  const bool state = role != "param";
  if (params.params_sharded()) {
    return load_shards(ckpt, params, [&](size_t id) -> const checkpoint::Tensor* {
      if (state && params.frozen(static_cast<models::ParamId>(id))) return nullptr;
      return tensors->at(params.infos()[id].spec.name);
    });
  }
  tessera::Tensor buf = host(params.params());
  if (state && params.any_frozen() && !params.params().device().is_cpu()) {
    copy(params.params(), buf);
  }
  detail::PieceReader reader(ckpt.dir);
  for (size_t id = 0; id < params.infos().size(); ++id) {
    const models::ParamInfo& info = params.infos()[id];
    if (state && params.frozen(static_cast<models::ParamId>(id))) continue;
    absl::Status s = reader.queue(*tensors->at(info.spec.name), detail::shard_box(info),
                                  buf.data<float>() + info.offset);
    if (!s.ok()) return s;
  }
  return finish_parameters(reader, buf, params);
}

absl::Status load_parameters_from(const CheckpointInfo& ckpt, models::ParamStore& params,
                                  const std::vector<std::string>& sources) {
  if (sources.size() != params.infos().size()) {
    return absl::InvalidArgumentError(absl::StrCat("load_parameters_from: ", sources.size(),
                                                   " source names for ", params.infos().size(),
                                                   " parameters"));
  }
  std::map<std::string, const checkpoint::Tensor*> by_name;
  for (const auto& t : ckpt.metadata.tensors()) {
    if (t.role() == "param") by_name[t.name()] = &t;
  }
  const std::string where = absl::StrCat("checkpoint ", ckpt.dir, "/", detail::kMetadata);
  // Every source exists with the parameter's shape before anything is read.
  std::vector<const checkpoint::Tensor*> stored(sources.size(), nullptr);
  for (size_t i = 0; i < sources.size(); ++i) {
    if (sources[i].empty()) continue;
    const models::ParamInfo& info = params.infos()[i];
    auto it = by_name.find(sources[i]);
    if (it == by_name.end()) {
      return absl::NotFoundError(absl::StrCat(where, ": no param tensor ", sources[i],
                                              " (for the model's ", info.spec.name, ")"));
    }
    const Shape want = detail::storage_shape(info.spec.shape);
    const Shape have(it->second->shape().begin(), it->second->shape().end());
    if (have != want) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, ": tensor ", sources[i], " has shape ", shape_text(have),
                       ", the model's ", info.spec.name, " is ", shape_text(want)));
    }
    stored[i] = it->second;
  }
  // ZeRO-3: only this rank's ranges, into the shards.
  if (params.params_sharded()) {
    return load_shards(ckpt, params, [&](size_t i) { return stored[i]; });
  }
  // Parameters left as they are must survive the copy back to the device.
  tessera::Tensor buf = host(params.params());
  if (!params.params().device().is_cpu()) copy(params.params(), buf);
  detail::PieceReader reader(ckpt.dir);
  for (size_t i = 0; i < sources.size(); ++i) {
    if (stored[i] == nullptr) continue;
    const models::ParamInfo& info = params.infos()[i];
    absl::Status s =
        reader.queue(*stored[i], detail::shard_box(info), buf.data<float>() + info.offset);
    if (!s.ok()) return s;
  }
  return finish_parameters(reader, buf, params);
}

absl::Status load_moments(const CheckpointInfo& ckpt, const models::ParamStore& params,
                          const MomentsRef& moments) {
  detail::PieceReader reader(ckpt.dir);
  // (the role read, the buffer it fills): the EMA starts from the parameters when none was saved.
  std::vector<std::pair<std::string, tessera::Tensor>> parts = {{"adam_m", moments.m},
                                                                {"adam_v", moments.v}};
  if (moments.ema.defined())
    parts.push_back({has_role(ckpt, "ema") ? "ema" : "param", moments.ema});
  for (const auto& [role, dst] : parts) {
    auto tensors = match_tensors(ckpt, params, role);
    if (!tensors.ok()) return tensors.status();
    tessera::Tensor buf = host(dst);
    float* out = buf.data<float>();
    for (size_t id = 0; id < params.infos().size(); ++id) {
      const auto& info = params.infos()[id];
      if (params.frozen(static_cast<models::ParamId>(id))) continue;  // no state
      const checkpoint::Tensor& t = *tensors->at(info.spec.name);
      absl::Status s = moments.zero == nullptr
                           ? reader.queue(t, detail::shard_box(info), out + info.offset)
                           : queue_own_ranges(reader, t, info, moments.zero->buckets, out);
      if (!s.ok()) return s;
    }
    absl::Status s = reader.finish();
    if (!s.ok()) return s;
    if (!dst.device().is_cpu()) copy(buf, dst);
  }
  return absl::OkStatus();
}

TensorReader::TensorReader(const CheckpointInfo& ckpt)
    : reader_(std::make_unique<detail::PieceReader>(ckpt.dir)) {}
TensorReader::~TensorReader() = default;

absl::Status TensorReader::read(const checkpoint::Tensor& t, float* dst) {
  Box whole;
  whole.start.assign(t.shape_size(), 0);
  whole.count.assign(t.shape().begin(), t.shape().end());
  return reader_->read(t, whole, dst);
}

}  // namespace tessera::checkpoint
