#pragma once
// The directory side of checkpoints: names, durability (fsync), the commit marker, the atomic
// rename into place, the `latest` pointer, retention and cleanup of torn saves.
//
//   RUN_DIR/checkpoints/
//     .tmp-step_00000040/   a save in progress, or torn by a crash: never loaded, removed later
//     step_00000020/        committed: holds COMMITTED (written last, after every file is durable)
//     step_00000040/
//     latest                "step_00000040\n", replaced by rename
//
// A step directory counts only with a valid COMMITTED marker; it records the size and CRC-32 of
// metadata.pb, so a metadata file that changed after the commit is detected.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::checkpoint::detail {

inline constexpr char kMarker[] = "COMMITTED";
inline constexpr char kMetadata[] = "metadata.pb";
inline constexpr char kMetadataText[] = "metadata.pbtxt";
inline constexpr char kLatest[] = "latest";

std::string step_dir_name(int64_t step);  // "step_00000040"
std::string tmp_dir_name(int64_t step);   // ".tmp-step_00000040"
std::string rank_file_name(int rank);     // "rank_00003.h5"
std::string manifest_name(int rank);      // "rank_00003.pieces.pb"

// Testing hook for crash consistency: when TESSERA_CKPT_CRASH_AT is `point` or `point:RANK` (this
// rank), the process SIGKILLs itself here, exactly like a node dying mid-save. With
// TESSERA_CKPT_CRASH_STEP=N only while the checkpoint of step N is saved (set_crash_step).
// The trainer also passes "step_N" at each step boundary: TESSERA_CKPT_CRASH_AT=step_5:1 kills
// rank 1 after step 5.
void crash_point(const std::string& point, int rank);
void set_crash_step(int64_t step);

// fsync of a file or directory.
absl::Status fsync_path(const std::string& path);
// Writes `bytes` to path (truncating) and fsyncs it.
absl::Status write_file_durably(const std::string& path, const std::string& bytes);
absl::StatusOr<std::string> read_file(const std::string& path);

// Rank 0, after every rank's files are durable: writes the marker into tmp_dir, renames it to
// its step name under root (replacing a previous directory of that step), fsyncs root and
// points `latest` at it.
absl::Status commit(const std::string& root, int64_t step, const std::string& tmp_dir);

// Checks the marker of a step directory (present, parses, matches metadata.pb).
absl::Status verify_marker(const std::string& step_dir);

struct Scan {
  std::vector<int64_t> committed;  // ascending
  std::vector<std::string> torn;   // directories to ignore, with no valid marker
  std::vector<std::string> notes;  // one line per torn directory: why it is ignored
};
Scan scan(const std::string& root);

// Removes committed steps beyond keep_last (newest kept) that are not a multiple of keep_every
// (> 0), and the uncommitted saves (.tmp-/.old- directories). A step directory whose marker
// does not verify is left alone (scan ignores it with a message): it may be a good checkpoint
// behind a transient read error (EIO, ESTALE), or a corrupt one someone wants to inspect.
// Returns one line per removal.
std::vector<std::string> retain(const std::string& root, int keep_last, int keep_every);

// PATH -> a committed step directory: PATH itself (a step directory), or the newest committed
// step of PATH (a checkpoints/ directory) or of PATH/checkpoints (a run directory). Errors name
// the path and what is wrong.
absl::StatusOr<std::string> resolve(const std::string& path);

}  // namespace tessera::checkpoint::detail
