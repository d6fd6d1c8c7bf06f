// Checkpoints split over several safetensors files ("shards") tied together by
// model.safetensors.index.json, as Hugging Face writes them; a single file is one shard.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace rtnq {

/// File name of the shard index inside a checkpoint directory.
inline constexpr char kShardIndexFileName[] = "model.safetensors.index.json";
/// File name of an unsharded checkpoint inside a checkpoint directory.
inline constexpr char kSingleFileName[] = "model.safetensors";

/// How shards are opened: mapped whole (tensor data readable), or their headers only (a dry run:
/// names, shapes and offsets; every tensor's data empty; truncated data regions go unnoticed).
enum class ShardAccess : uint8_t { kData, kHeaderOnly };

/// All shards of a checkpoint, open and cross-checked. Movable, not copyable.
class ShardedCheckpoint {
 public:
  /// Opens `path`: a .safetensors file, or a directory holding model.safetensors.index.json
  /// (preferred) or model.safetensors. NotFound when a directory holds neither.
  static absl::StatusOr<ShardedCheckpoint> Open(const std::string& path,
                                                ShardAccess access = ShardAccess::kData);

  /// Reads an index {"metadata": {"total_size": N, ...}, "weight_map": {tensor: shard}} and
  /// opens every shard it names (relative to the index's directory). InvalidArgument naming the
  /// index, tensor and shard when the index is malformed, a shard name escapes the directory, a
  /// listed tensor is missing from its shard or present in another one too, or a shard holds a
  /// tensor the map does not list; a missing shard keeps its open error code.
  static absl::StatusOr<ShardedCheckpoint> OpenIndex(const std::string& index_path,
                                                     ShardAccess access = ShardAccess::kData);

  /// A single safetensors file as a one-shard checkpoint.
  static absl::StatusOr<ShardedCheckpoint> OpenFile(const std::string& path,
                                                    ShardAccess access = ShardAccess::kData);

  /// The tensor called `name` in whichever shard holds it, or nullptr.
  const TensorInfo* Find(std::string_view name) const;
  /// The shard holding `name`, or nullptr.
  const SafetensorsFile* ShardOf(std::string_view name) const;
  /// All tensor names, sorted.
  std::vector<std::string> names() const;
  /// Shards, sorted by file name.
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  /// The index's metadata.total_size when present (not checked: writers disagree on it).
  std::optional<uint64_t> total_size() const { return total_size_; }

 private:
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t, std::less<>> shard_of_;  // tensor name -> index into shards_
  std::optional<uint64_t> total_size_;
};

/// "model-00002-of-00005.safetensors" for shard `index` (0-based) of `count`.
std::string ShardFileName(int index, int count);

/// Writes `dir`/model.safetensors.index.json atomically: {"metadata": {"total_size": N},
/// "weight_map": {tensor: shard file name}} with sorted keys. InvalidArgument for an empty map or
/// a shard name that is empty or not a plain file name.
absl::Status WriteShardIndex(const std::string& dir,
                             const std::map<std::string, std::string>& weight_map,
                             uint64_t total_size);

}  // namespace rtnq
