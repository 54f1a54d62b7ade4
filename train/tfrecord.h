#pragma once
// TFRecord framing, the container of TensorBoard event files: each record is
//   uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32
//   masked_crc32c(data)
// where masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.
//
// CRC32C (Castagnoli) is written here because Debian 12's Abseil (20220623) has no absl/crc
// (it arrived in 20230125) and no other installed dependency exports one.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace tessera::train {

uint32_t crc32c(std::string_view data);         // plain CRC32C, as iSCSI / ext4 / TensorFlow
uint32_t masked_crc32c(std::string_view data);  // TFRecord's masked form

// The framed bytes of one record.
std::string tfrecord_frame(std::string_view data);

// Appends framed records to a file, flushing after each so readers see whole records.
class TfRecordWriter {
 public:
  explicit TfRecordWriter(const std::string& path);  // creates or truncates; throws naming path
  ~TfRecordWriter();
  TfRecordWriter(const TfRecordWriter&) = delete;
  TfRecordWriter& operator=(const TfRecordWriter&) = delete;

  void write(std::string_view data);  // throws naming the path when the write fails
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace tessera::train
