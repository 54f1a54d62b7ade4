#include "checkpoint/write.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "checkpoint/commit.h"
#include "checkpoint/pieces.h"
#include "core/error.h"

namespace tessera::checkpoint::detail {

namespace {

// Collects the pieces this rank writes, one Tensor entry per (role, name).
class ManifestBuilder {
 public:
  explicit ManifestBuilder(checkpoint::FileManifest* m) : m_(m) {}
  checkpoint::Piece* add(const models::ParamInfo& info, const std::string& role, const Box& box,
                         std::string dataset) {
    const std::string key = role + ":" + info.spec.name;
    auto it = index_.find(key);
    if (it == index_.end()) {
      checkpoint::Tensor* t = m_->add_tensors();
      t->set_name(info.spec.name);
      t->set_role(role);
      t->set_dtype("float32");
      for (int64_t d : storage_shape(info.spec.shape)) t->add_shape(d);
      t->set_split_dim(info.spec.split_dim);
      it = index_.emplace(key, m_->tensors_size() - 1).first;
    }
    checkpoint::Piece* p = m_->mutable_tensors(it->second)->add_pieces();
    p->set_file(m_->file());
    p->set_dataset(std::move(dataset));
    for (int64_t s : box.start) p->add_start(s);
    for (int64_t c : box.count) p->add_count(c);
    return p;
  }

 private:
  checkpoint::FileManifest* m_;
  std::map<std::string, int> index_;
};

// Replicated parameters (no TP split) are the same on every TP rank: TP rank 0's group writes them.
bool writes(const models::ParamInfo& info, int tp_rank) {
  return info.spec.split_dim >= 0 || tp_rank == 0;
}

}  // namespace

void write_rank_files(const std::string& dir, const RankState& state, int world_rank, int dp_rank,
                      int tp_rank) {
  const models::ParamStore& store = *state.store;
  const MomentsRef& mom = state.moments;
  const bool zero = mom.zero != nullptr;
  // ZeRO-3: state.params is this rank's shard buffer (the layout of mom.zero), written like m, v.
  const bool sharded = store.params_sharded();
  TESSERA_CHECK(!sharded || zero, "checkpoint: sharded parameters (ZeRO-3) without ZeRO shards");
  const bool params = dp_rank == 0 && !sharded, moments = zero || dp_rank == 0;
  checkpoint::FileManifest manifest;
  manifest.set_rank(world_rank);
  if (params || moments) {
    manifest.set_file(rank_file_name(world_rank));
    ManifestBuilder pieces(&manifest);
    PieceWriter writer(dir + "/" + manifest.file());
    float* p = state.params.data<float>();
    float* m = mom.m.data<float>();
    float* v = mom.v.data<float>();
    // The ends of the buffers: the bytes after a piece up to there are scratch during its write.
    const float* p_end = p + state.params.numel();
    const float* m_end = m + mom.m.numel();
    const float* v_end = v + mom.v.numel();
    // The moving average of the weights (train/ema.h), in the moments' layout, when kept.
    float* e = mom.ema.defined() ? mom.ema.data<float>() : nullptr;
    const float* e_end = e ? e + mom.ema.numel() : nullptr;
    const auto& infos = store.infos();
    for (size_t i = 0; i < infos.size(); ++i) {
      const auto& info = infos[i];
      if (!writes(info, tp_rank)) continue;
      const Box box = shard_box(info);
      if (params) {
        writer.write(pieces.add(info, "param", box, "param:" + info.spec.name)->dataset(),
                     box.count, p + info.offset, p_end);
      }
      // Frozen parameters (train.freeze) have no optimizer state: no adam_m/adam_v tensors.
      if (moments && !zero && !store.frozen(static_cast<models::ParamId>(i))) {
        writer.write(pieces.add(info, "adam_m", box, "adam_m:" + info.spec.name)->dataset(),
                     box.count, m + info.offset, m_end);
        writer.write(pieces.add(info, "adam_v", box, "adam_v:" + info.spec.name)->dataset(),
                     box.count, v + info.offset, v_end);
        if (e) {
          writer.write(pieces.add(info, "ema", box, "ema:" + info.spec.name)->dataset(), box.count,
                       e + info.offset, e_end);
        }
      }
      if (i == infos.size() / 2) crash_point("mid_rank_file", world_rank);
    }
    if (sharded) {
      // ZeRO-3: this rank's own range of each bucket of the parameters' shard buffer (the
      // optimizer's buckets, then the frozen units'), cut into boxes of the parameters it spans.
      std::map<std::string, int> count;
      for (const auto& b : store.shard_buckets()) {
        if (b.own() == 0) continue;
        for (const auto& info : infos) {
          if (!writes(info, tp_rank)) continue;
          for (const PlacedBox& pb : range_boxes(info, b.own_begin, b.own_end)) {
            writer.write(
                pieces
                    .add(info, "param", pb.box,
                         absl::StrCat("param:", info.spec.name, ":", count[info.spec.name]++))
                    ->dataset(),
                pb.box.count, p + b.offset + pb.memory, p_end);
          }
        }
      }
    }
    if (zero) {
      // This rank's own range of each bucket, cut into boxes of the parameters it spans.
      std::map<std::string, int> count;
      for (const auto& b : mom.zero->buckets) {
        if (b.own() == 0) continue;
        for (const auto& info : infos) {
          if (!writes(info, tp_rank)) continue;
          for (const PlacedBox& pb : range_boxes(info, b.own_begin, b.own_end)) {
            const std::string suffix =
                absl::StrCat(":", info.spec.name, ":", count[info.spec.name]++);
            const int64_t at = b.offset + pb.memory;
            writer.write(pieces.add(info, "adam_m", pb.box, "adam_m" + suffix)->dataset(),
                         pb.box.count, m + at, m_end);
            writer.write(pieces.add(info, "adam_v", pb.box, "adam_v" + suffix)->dataset(),
                         pb.box.count, v + at, v_end);
            if (e) {
              writer.write(pieces.add(info, "ema", pb.box, "ema" + suffix)->dataset(), pb.box.count,
                           e + at, e_end);
            }
          }
        }
      }
    }
    crash_point("before_rank_close", world_rank);
    manifest.set_bytes(writer.close());
  }
  crash_point("before_manifest", world_rank);
  const std::string path = dir + "/" + manifest_name(world_rank);
  absl::Status s = write_file_durably(path, manifest.SerializeAsString());
  TESSERA_CHECK(s.ok(), "checkpoint manifest ", s.message());
  crash_point("after_manifest", world_rank);
}

absl::Status merge_manifests(const std::string& dir, int world_size, checkpoint::Metadata* meta) {
  std::map<std::string, int> index;
  for (int r = 0; r < world_size; ++r) {
    const std::string path = dir + "/" + manifest_name(r);
    absl::StatusOr<std::string> bytes = read_file(path);
    checkpoint::FileManifest m;
    if (!bytes.ok() || !m.ParseFromString(*bytes)) {
      return absl::DataLossError(
          absl::StrCat(path, ": rank ", r, "'s manifest is missing or unreadable"));
    }
    for (const auto& t : m.tensors()) {
      const std::string key = t.role() + ":" + t.name();
      auto it = index.find(key);
      if (it == index.end()) {
        checkpoint::Tensor* copy = meta->add_tensors();
        *copy = t;
        copy->clear_pieces();
        it = index.emplace(key, meta->tensors_size() - 1).first;
      }
      for (const auto& p : t.pieces()) *meta->mutable_tensors(it->second)->add_pieces() = p;
    }
    m.clear_tensors();
    *meta->add_files() = m;
  }
  // The rank manifests are files read back: a corrupt one may hold any shape or count, so the
  // products are checked (a negative or overflowing one is refused, not wrapped).
  auto product = [](const auto& dims, int64_t* out) {
    int64_t n = 1;
    for (int64_t d : dims) {
      if (d < 0 || __builtin_mul_overflow(n, d, &n)) return false;
    }
    *out = n;
    return true;
  };
  for (const auto& t : meta->tensors()) {
    int64_t numel = 0, stored = 0;
    bool valid = product(t.shape(), &numel);
    for (const auto& p : t.pieces()) {
      int64_t n = 0;
      valid = valid && product(p.count(), &n) && !__builtin_add_overflow(stored, n, &stored);
    }
    if (!valid) {
      return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": tensor ", t.name(), " (",
                                              t.role(),
                                              "): a rank manifest records a negative "
                                              "or overflowing shape or piece count"));
    }
    if (stored != numel) {
      return absl::InternalError(absl::StrCat("checkpoint ", dir, ": tensor ", t.name(), " (",
                                              t.role(), "): pieces hold ", stored, " of ", numel,
                                              " elements"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::checkpoint::detail
