#include "checkpoint/slices.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tessera::checkpoint::detail {

int64_t Box::numel() const {
  int64_t n = 1;
  for (int64_t c : count) n *= c;
  return n;
}

namespace {

// Appends the boxes of [begin, end) of a tensor of shape[dim:], with the leading indices fixed in
// `prefix`; `base` is the flat index of begin relative to the caller's range start.
void decompose(const Shape& shape, size_t dim, std::vector<int64_t> prefix, int64_t begin,
               int64_t end, int64_t base, std::vector<PlacedBox>* out) {
  if (begin >= end) return;
  auto emit = [&](int64_t lo, int64_t hi, int64_t memory) {
    PlacedBox p;
    p.box.start = prefix;
    p.box.count.assign(prefix.size(), 1);
    p.box.start.push_back(lo);
    p.box.count.push_back(hi - lo);
    for (size_t d = dim + 1; d < shape.size(); ++d) {
      p.box.start.push_back(0);
      p.box.count.push_back(shape[d]);
    }
    p.memory = memory;
    out->push_back(std::move(p));
  };
  int64_t inner = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
  if (dim + 1 == shape.size() || (begin % inner == 0 && end % inner == 0)) {
    if (dim + 1 == shape.size()) {
      emit(begin, end, base);
    } else {
      emit(begin / inner, end / inner, base);
    }
    return;
  }
  int64_t row = begin / inner, last = end / inner;
  auto sub = [&](int64_t r, int64_t lo, int64_t hi, int64_t memory) {
    std::vector<int64_t> p = prefix;
    p.push_back(r);
    decompose(shape, dim + 1, p, lo, hi, memory, out);
  };
  if (row == last) {  // within one row
    sub(row, begin % inner, end % inner, base);
    return;
  }
  int64_t at = begin;
  if (begin % inner != 0) {  // the partial first row
    sub(row, begin % inner, inner, base);
    at = (row + 1) * inner;
    ++row;
  }
  if (last > row) emit(row, last, base + (at - begin));  // whole rows
  if (end % inner != 0) sub(last, 0, end % inner, base + (last * inner - begin));
}

}  // namespace

Shape storage_shape(const Shape& shape) {
  return shape.empty() ? Shape{1} : shape;
}

std::vector<PlacedBox> decompose_range(const Shape& shape, int64_t begin, int64_t end) {
  std::vector<PlacedBox> out;
  decompose(storage_shape(shape), 0, {}, begin, end, 0, &out);
  return out;
}

Box shard_box(const models::ParamInfo& info) {
  Box b;
  const Shape dims = storage_shape(info.local_shape);
  b.start.assign(dims.size(), 0);
  b.count.assign(dims.begin(), dims.end());
  return to_global(info, std::move(b));
}

Box to_global(const models::ParamInfo& info, Box local) {
  if (info.spec.split_dim >= 0) local.start[info.spec.split_dim] += info.local_begin;
  return local;
}

std::vector<PlacedBox> range_boxes(const models::ParamInfo& info, int64_t begin, int64_t end) {
  const int64_t lo = std::max(begin, info.offset), hi = std::min(end, info.offset + info.numel);
  std::vector<PlacedBox> out;
  if (lo >= hi) return out;
  out = decompose_range(info.local_shape, lo - info.offset, hi - info.offset);
  for (auto& p : out) {
    p.box = to_global(info, std::move(p.box));
    p.memory += lo - begin;
  }
  return out;
}

bool intersect(const Box& a, const Box& b, Box* out) {
  out->start.resize(a.start.size());
  out->count.resize(a.start.size());
  for (size_t d = 0; d < a.start.size(); ++d) {
    const int64_t lo = std::max(a.start[d], b.start[d]);
    const int64_t hi = std::min(a.start[d] + a.count[d], b.start[d] + b.count[d]);
    if (hi <= lo) return false;
    out->start[d] = lo;
    out->count[d] = hi - lo;
  }
  return true;
}

std::string describe(const Box& box) {
  std::vector<std::string> dims;
  for (size_t d = 0; d < box.start.size(); ++d) {
    dims.push_back(absl::StrCat(box.start[d], ":", box.start[d] + box.count[d]));
  }
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

}  // namespace tessera::checkpoint::detail
