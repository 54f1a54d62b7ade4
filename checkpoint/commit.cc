#include "checkpoint/commit.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace tessera::checkpoint::detail {

namespace fs = std::filesystem;

std::string step_dir_name(int64_t step) {
  return absl::StrFormat("step_%08d", step);
}
std::string tmp_dir_name(int64_t step) {
  return absl::StrCat(".tmp-", step_dir_name(step));
}
std::string rank_file_name(int rank) {
  return absl::StrFormat("rank_%05d.h5", rank);
}
std::string manifest_name(int rank) {
  return absl::StrFormat("rank_%05d.pieces.pb", rank);
}

namespace {
int64_t g_crash_step = -1;
}  // namespace

void set_crash_step(int64_t step) {
  g_crash_step = step;
}

void crash_point(const std::string& point, int rank) {
  const char* want = std::getenv("TESSERA_CKPT_CRASH_AT");
  if (want == nullptr) return;
  const char* at_step = std::getenv("TESSERA_CKPT_CRASH_STEP");
  if (at_step != nullptr && at_step[0] != 0 && std::to_string(g_crash_step) != at_step) return;
  const std::string w = want, p = point;
  if (w == p || w == absl::StrCat(p, ":", rank)) {
    std::fprintf(stderr, "tessera: TESSERA_CKPT_CRASH_AT=%s: rank %d kills itself\n", want, rank);
    std::fflush(stderr);
    std::raise(SIGKILL);
  }
}

absl::Status fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return absl::InternalError(absl::StrCat(path, ": cannot open for fsync"));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat(path, ": fsync failed"));
  return absl::OkStatus();
}

absl::Status write_file_durably(const std::string& path, const std::string& bytes) {
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    f.flush();
    if (!f.good()) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": write failed (disk full or not writable)"));
    }
  }
  return fsync_path(path);
}

absl::StatusOr<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

namespace {

std::string marker_text(const std::string& metadata, int64_t step) {
  const uLong crc =
      crc32(0L, reinterpret_cast<const Bytef*>(metadata.data()), uInt(metadata.size()));
  return absl::StrFormat("step %d\nmetadata_bytes %d\nmetadata_crc32 %08x\n", step,
                         int64_t(metadata.size()), uint32_t(crc));
}

// step_NNNNNNNN -> NNNNNNNN; -1 for other names.
int64_t parse_step(const std::string& name) {
  int64_t step = -1;
  if (name.size() == 13 && name.rfind("step_", 0) == 0 && absl::SimpleAtoi(name.substr(5), &step))
    return step;
  return -1;
}

}  // namespace

absl::Status commit(const std::string& root, int64_t step, const std::string& tmp_dir) {
  absl::StatusOr<std::string> metadata = read_file(tmp_dir + "/" + kMetadata);
  if (!metadata.ok()) return metadata.status();
  absl::Status s = fsync_path(tmp_dir);
  if (s.ok()) s = write_file_durably(tmp_dir + "/" + kMarker, marker_text(*metadata, step));
  crash_point("after_marker", 0);
  if (s.ok()) s = fsync_path(tmp_dir);
  if (!s.ok()) return s;
  const std::string final_dir = root + "/" + step_dir_name(step);
  std::error_code ec;
  if (fs::exists(final_dir, ec)) {  // a save of the same step again (e.g. after a resume)
    const std::string old = root + "/.old-" + step_dir_name(step);
    fs::remove_all(old, ec);
    fs::rename(final_dir, old, ec);
    if (ec)
      return absl::InternalError(absl::StrCat(final_dir, ": cannot move aside: ", ec.message()));
    fs::remove_all(old, ec);
  }
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp_dir, " to ", final_dir, ": ", ec.message()));
  }
  if (s = fsync_path(root); !s.ok()) return s;
  crash_point("after_rename", 0);
  const std::string latest_tmp = root + "/.latest.tmp";
  if (s = write_file_durably(latest_tmp, step_dir_name(step) + "\n"); !s.ok()) return s;
  crash_point("before_latest_rename", 0);
  fs::rename(latest_tmp, root + "/" + kLatest, ec);
  if (ec) return absl::InternalError(absl::StrCat(root, "/latest: rename failed: ", ec.message()));
  return fsync_path(root);
}

absl::Status verify_marker(const std::string& step_dir) {
  absl::StatusOr<std::string> marker = read_file(step_dir + "/" + kMarker);
  if (!marker.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(step_dir, ": no ", kMarker, " marker (the save did not complete)"));
  }
  absl::StatusOr<std::string> metadata = read_file(step_dir + "/" + kMetadata);
  if (!metadata.ok()) {
    return absl::DataLossError(absl::StrCat(step_dir, "/", kMetadata, " is missing"));
  }
  int64_t step = -1;
  for (absl::string_view line : absl::StrSplit(*marker, '\n')) {
    if (absl::StartsWith(line, "step ")) (void)absl::SimpleAtoi(line.substr(5), &step);
  }
  if (*marker != marker_text(*metadata, step)) {
    return absl::DataLossError(absl::StrCat(step_dir, "/", kMetadata,
                                            ": size or CRC-32 differs from the ", kMarker,
                                            " marker (the metadata is corrupt)"));
  }
  return absl::OkStatus();
}

Scan scan(const std::string& root) {
  Scan out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    const int64_t step = parse_step(name);
    if (step >= 0) {
      absl::Status s = verify_marker(entry.path().string());
      if (s.ok()) {
        out.committed.push_back(step);
      } else {
        out.torn.push_back(entry.path().string());
        out.notes.push_back(absl::StrCat("ignoring ", s.message()));
      }
    } else if (name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0) {
      out.torn.push_back(entry.path().string());
      out.notes.push_back(absl::StrCat("ignoring ", entry.path().string(),
                                       ": an uncommitted save (interrupted or in progress)"));
    }
  }
  std::sort(out.committed.begin(), out.committed.end());
  return out;
}

std::vector<std::string> retain(const std::string& root, int keep_last, int keep_every) {
  std::vector<std::string> removed;
  Scan s = scan(root);
  std::error_code ec;
  const int n = int(s.committed.size());
  for (int i = 0; i < n; ++i) {
    const int64_t step = s.committed[i];
    const bool recent = keep_last <= 0 || i >= n - keep_last;
    const bool milestone = keep_every > 0 && step % keep_every == 0;
    if (recent || milestone) continue;
    const std::string dir = root + "/" + step_dir_name(step);
    fs::remove_all(dir, ec);
    removed.push_back(absl::StrCat("removed ", dir, " (checkpoint.keep_last = ", keep_last, ")"));
  }
  for (const std::string& dir : s.torn) {
    if (parse_step(fs::path(dir).filename().string()) >= 0) continue;  // see the header
    fs::remove_all(dir, ec);
    removed.push_back(absl::StrCat("removed uncommitted ", dir));
  }
  return removed;
}

absl::StatusOr<std::string> resolve(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", path, ": no such directory"));
  }
  if (parse_step(fs::path(path).lexically_normal().filename().string()) >= 0 ||
      fs::exists(fs::path(path) / kMetadata, ec)) {
    absl::Status s = verify_marker(path);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("checkpoint ", s.message()));
    return path;
  }
  std::string root = path;
  if (fs::is_directory(fs::path(path) / "checkpoints", ec)) root = path + "/checkpoints";
  Scan s = scan(root);
  for (const std::string& note : s.notes) std::fprintf(stderr, "tessera: %s\n", note.c_str());
  if (s.committed.empty()) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", path, ": no committed step directory in ", root));
  }
  return root + "/" + step_dir_name(s.committed.back());
}

}  // namespace tessera::checkpoint::detail
