#include "data_pipeline/tar_input.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tessera::data {
namespace {

constexpr size_t kBlock = 512;
// Limits on a member's declared size, checked before it is read into memory: a GNU long name or
// pax header ('L', 'x': a few hundred bytes in practice) and any other member (an image or a
// caption file). A member larger than what is left of the file is truncation, also refused
// before allocating.
constexpr uint64_t kMaxHeaderMemberBytes = uint64_t{1} << 20;
constexpr uint64_t kMaxMemberBytes = uint64_t{1} << 30;

// A NUL- or length-terminated header field.
std::string field(const char* p, size_t n) {
  return std::string(p, strnlen(p, n));
}

bool parse_octal(const char* p, size_t n, uint64_t* out) {
  uint64_t v = 0;
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\0')) ++i;
  bool any = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i, any = true) v = v * 8 + uint64_t(p[i] - '0');
  *out = v;
  return any;
}

// "path=..." from a pax extended header's "LEN key=value\n" records.
std::string pax_path(const std::string& data) {
  for (size_t pos = 0; pos < data.size();) {
    const size_t space = data.find(' ', pos);
    if (space == std::string::npos) break;
    const size_t len = std::strtoull(data.c_str() + pos, nullptr, 10);
    if (len == 0 || pos + len > data.size()) break;
    const std::string record = data.substr(space + 1, pos + len - space - 2);  // drop '\n'
    if (record.rfind("path=", 0) == 0) return record.substr(5);
    pos += len;
  }
  return {};
}

}  // namespace

absl::StatusOr<std::vector<TarSample>> read_webdataset_tar(const std::string& tar_path) {
  std::ifstream in(tar_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("pack: cannot open tar ", tar_path));
  in.seekg(0, std::ios::end);
  const uint64_t file_bytes = uint64_t(std::max<std::streamoff>(0, in.tellg()));
  in.seekg(0);
  std::vector<TarSample> samples;
  std::map<std::string, size_t> index;  // key -> sample
  std::string long_name;
  uint64_t offset = 0;
  char header[kBlock];
  for (;;) {
    in.read(header, kBlock);
    auto damaged = [&](const std::string& what) {
      return absl::DataLossError(
          absl::StrCat("pack: tar ", tar_path, ": ", what, " at byte ", offset));
    };
    // A tar ends with zero blocks; ending anywhere else means it was cut short.
    if (in.gcount() == 0) return damaged("truncated (no end-of-archive block)");
    if (size_t(in.gcount()) != kBlock) return damaged("truncated header");
    if (std::all_of(header, header + kBlock, [](char c) { return c == 0; })) break;
    uint64_t want = 0, size = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < kBlock; ++i)
      sum += (i >= 148 && i < 156) ? uint8_t(' ') : uint8_t(header[i]);
    if (!parse_octal(header + 148, 8, &want) || sum != want)
      return damaged("header checksum mismatch (not a tar, or corrupt)");
    if (!parse_octal(header + 124, 12, &size)) return damaged("unreadable member size");
    const char type = header[156];
    std::string name = field(header, 100);
    if (std::memcmp(header + 257, "ustar", 5) == 0 && header[345] != '\0')
      name = field(header + 345, 155) + "/" + name;
    const uint64_t limit = (type == 'L' || type == 'x') ? kMaxHeaderMemberBytes : kMaxMemberBytes;
    if (size > limit)
      return damaged(absl::StrCat("member '", name, "' (type '", std::string(1, type ? type : '0'),
                                  "'): field 'size' ", size, " exceeds the limit of ", limit,
                                  " bytes"));
    if (size > file_bytes - std::min(file_bytes, offset + kBlock))
      return damaged(absl::StrCat(
          "member '", name, "' truncated (field 'size' ", size, " bytes, the file ends ",
          file_bytes - std::min(file_bytes, offset + kBlock), " bytes after its header)"));
    std::string data(size, '\0');
    in.read(data.data(), std::streamsize(size));
    if (uint64_t(in.gcount()) != size)
      return damaged(
          absl::StrCat("member '", name, "' truncated (", in.gcount(), " of ", size, " bytes)"));
    const auto padding = std::streamsize((kBlock - size % kBlock) % kBlock);
    in.ignore(padding);
    if (in.gcount() != padding) return damaged(absl::StrCat("member '", name, "' truncated"));
    offset += kBlock + (size + kBlock - 1) / kBlock * kBlock;
    if (type == 'L') {  // GNU long name of the next member
      long_name = field(data.data(), data.size());
      continue;
    }
    if (type == 'x') {  // pax: path of the next member
      long_name = pax_path(data);
      continue;
    }
    if (!long_name.empty()) name = std::move(long_name), long_name.clear();
    if (type != '0' && type != '\0') continue;  // directories, links, pax globals, ...

    const size_t slash = name.rfind('/');
    const size_t dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
    if (dot == std::string::npos) continue;  // no extension: not part of a sample
    const std::string key = name.substr(0, dot);
    const std::string ext = absl::AsciiStrToLower(name.substr(dot + 1));
    auto [it, fresh] = index.emplace(key, samples.size());
    if (fresh) {
      samples.emplace_back();
      samples.back().key = key;
      samples.back().source = absl::StrCat(tar_path, ":", key);
    }
    TarSample& s = samples[it->second];
    if (ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "webp") {
      s.image_name = absl::StrCat(tar_path, ":", name);
      s.image.assign(data.begin(), data.end());
    } else if (ext == "txt") {
      s.caption = std::string(absl::StripAsciiWhitespace(data));
    } else if (ext == "json" && s.caption.empty()) {
      const auto j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("caption") && j["caption"].is_string())
        s.caption = std::string(absl::StripAsciiWhitespace(j["caption"].get<std::string>()));
    }
  }
  for (TarSample& s : samples) {
    if (s.image.empty()) s.problem = "no image member (KEY.jpg, KEY.jpeg, KEY.png or KEY.webp)";
  }
  return samples;
}

}  // namespace tessera::data
