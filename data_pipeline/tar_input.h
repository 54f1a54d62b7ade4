#pragma once
// webdataset-style tar input for `tessera pack --tar` (the layout img2dataset writes): each
// sample is a run of tar members sharing a key, KEY.jpg|jpeg|png|webp (the image) and KEY.txt (the
// caption) or KEY.json (its "caption" field). The key is the member path up to the first '.'
// of its last component, as webdataset defines it. Plain POSIX ustar, GNU long names ('L') and
// pax path records ('x') are read; other member types are ignored.
//
// A sample without an image or without a caption is returned with `problem` set (pack skips and
// reports it); a damaged tar (bad header checksum, truncated member) is an error naming the tar
// file and the byte offset, because nothing after the damage can be trusted.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::data {

struct TarSample {
  std::string source;  // "TAR_PATH:KEY" for reports
  std::string key;     // the webdataset key (member path without extensions)
  std::string image_name;
  std::vector<uint8_t> image;  // encoded bytes (PNG, JPEG or WebP)
  std::string caption;
  std::string problem;  // "" when the sample is complete
};

// All samples of `tar_path`, in member order.
absl::StatusOr<std::vector<TarSample>> read_webdataset_tar(const std::string& tar_path);

}  // namespace tessera::data
