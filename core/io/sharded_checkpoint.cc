#include "core/io/sharded_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/config/strict_json.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxIndexSize = 100'000'000;

absl::StatusOr<std::string> ReadIndexFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path, kMaxIndexSize);
  if (text.ok() || text.status().code() != absl::StatusCode::kInvalidArgument) return text;
  return absl::InvalidArgumentError(absl::StrCat("shard index ", text.status().message()));
}

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Shard names come from a file we did not write: keep them inside the checkpoint directory.
bool IsSafeRelativePath(std::string_view name) {
  if (name.empty() || name.front() == '/') return false;
  for (absl::string_view part : absl::StrSplit(absl::string_view(name.data(), name.size()), '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

absl::StatusOr<std::optional<uint64_t>> ParseTotalSize(const nlohmann::ordered_json& index) {
  if (!index.contains("metadata")) return std::nullopt;
  const nlohmann::ordered_json& m = index["metadata"];
  if (!m.is_object()) return absl::InvalidArgumentError("metadata is not a JSON object");
  if (!m.contains("total_size")) return std::nullopt;
  const nlohmann::ordered_json& t = m["total_size"];
  if (t.is_number_unsigned()) return t.get<uint64_t>();
  // Some writers emit total_size as a float; accept it when it is a whole, non-negative number.
  if (t.is_number_float()) {
    double d = t.get<double>();
    if (d >= 0 && d < 1.8e19 && std::floor(d) == d) return static_cast<uint64_t>(d);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("metadata.total_size is not a non-negative integer (", JsonSnippet(t), ")"));
}

absl::StatusOr<SafetensorsFile> OpenShard(const std::string& path, ShardAccess access) {
  return access == ShardAccess::kData ? SafetensorsFile::Open(path)
                                      : SafetensorsFile::OpenHeaderOnly(path);
}

}  // namespace

absl::StatusOr<ShardedCheckpoint> ShardedCheckpoint::OpenFile(const std::string& path,
                                                              ShardAccess access) {
  RTNQ_ASSIGN_OR_RETURN(SafetensorsFile f, OpenShard(path, access));
  ShardedCheckpoint c;
  for (const TensorInfo& t : f.tensors()) c.shard_of_.emplace(t.name, 0);
  c.shards_.push_back(std::move(f));
  return c;
}

absl::StatusOr<ShardedCheckpoint> ShardedCheckpoint::OpenIndex(const std::string& index_path,
                                                               ShardAccess access) {
  auto bad = [&](absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat("shard index ", index_path, ": ", rule));
  };
  RTNQ_ASSIGN_OR_RETURN(std::string text, ReadIndexFile(index_path));
  // Linear, depth-limited, duplicate tensor names rejected (nlohmann's DOM parser is quadratic
  // in an object's keys with a callback and keeps the last duplicate silently).
  absl::StatusOr<nlohmann::ordered_json> parsed = ParseJsonBounded(text, kMaxJsonDepth);
  if (!parsed.ok()) return bad(absl::StrCat("not valid JSON: ", parsed.status().message()));
  const nlohmann::ordered_json& index = *parsed;
  if (!index.is_object()) return bad("not a JSON object");
  ShardedCheckpoint c;
  absl::StatusOr<std::optional<uint64_t>> total = ParseTotalSize(index);
  if (!total.ok()) return bad(total.status().message());
  c.total_size_ = *total;
  if (!index.contains("weight_map")) return bad("missing key \"weight_map\"");
  const nlohmann::ordered_json& wm = index["weight_map"];
  if (!wm.is_object()) return bad("weight_map is not a JSON object");
  if (wm.empty()) return bad("weight_map is empty");

  std::map<std::string, std::string> weight_map;  // tensor -> shard
  std::map<std::string, size_t> shard_index;      // shard -> index into shards_, sorted by name
  for (const auto& [tensor, shard] : wm.items()) {
    if (!shard.is_string()) {
      return bad(absl::StrCat(TensorPrefix(tensor), "shard is not a string"));
    }
    const std::string& name = shard.get_ref<const std::string&>();
    if (!IsSafeRelativePath(name)) {
      return bad(absl::StrCat(TensorPrefix(tensor), "shard \"", name,
                              "\" is not a relative path inside the checkpoint directory"));
    }
    weight_map.emplace(tensor, name);
    shard_index.emplace(name, 0);
  }
  const std::string dir = DirOf(index_path);
  for (auto& [name, i] : shard_index) {
    i = c.shards_.size();
    RTNQ_ASSIGN_OR_RETURN(SafetensorsFile f, OpenShard(absl::StrCat(dir, "/", name), access));
    c.shards_.push_back(std::move(f));
  }
  for (const auto& [tensor, shard] : weight_map) {
    if (c.shards_[shard_index[shard]].Find(tensor) == nullptr) {
      return bad(absl::StrCat("tensor \"", tensor, "\" is listed in shard \"", shard,
                              "\" but that shard does not hold it"));
    }
  }
  for (const auto& [shard, i] : shard_index) {
    for (const TensorInfo& t : c.shards_[i].tensors()) {
      auto it = weight_map.find(t.name);
      if (it == weight_map.end()) {
        return bad(absl::StrCat("shard \"", shard, "\" holds tensor \"", t.name,
                                "\" that weight_map does not list"));
      }
      if (it->second != shard) {
        return bad(absl::StrCat("tensor \"", t.name, "\" is listed in shard \"", it->second,
                                "\" but is also stored in shard \"", shard, "\""));
      }
      c.shard_of_.emplace(t.name, i);
    }
  }
  return c;
}

absl::StatusOr<ShardedCheckpoint> ShardedCheckpoint::Open(const std::string& path,
                                                          ShardAccess access) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
  if (!S_ISDIR(st.st_mode)) {
    if (absl::EndsWith(path, ".index.json")) return OpenIndex(path, access);
    return OpenFile(path, access);
  }
  const std::string index = absl::StrCat(path, "/", kShardIndexFileName);
  if (::stat(index.c_str(), &st) == 0) return OpenIndex(index, access);
  const std::string single = absl::StrCat(path, "/", kSingleFileName);
  if (::stat(single.c_str(), &st) == 0) return OpenFile(single, access);
  return absl::NotFoundError(absl::StrCat("checkpoint directory ", path, " holds neither ",
                                          kShardIndexFileName, " nor ", kSingleFileName));
}

const SafetensorsFile* ShardedCheckpoint::ShardOf(std::string_view name) const {
  auto it = shard_of_.find(name);
  return it == shard_of_.end() ? nullptr : &shards_[it->second];
}

const TensorInfo* ShardedCheckpoint::Find(std::string_view name) const {
  const SafetensorsFile* f = ShardOf(name);
  return f == nullptr ? nullptr : f->Find(name);
}

std::vector<std::string> ShardedCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(shard_of_.size());
  for (const auto& [name, i] : shard_of_) out.push_back(name);
  return out;
}

std::string ShardFileName(int index, int count) {
  return absl::StrFormat("model-%05d-of-%05d.safetensors", index + 1, count);
}

absl::Status WriteShardIndex(const std::string& dir,
                             const std::map<std::string, std::string>& weight_map,
                             uint64_t total_size) {
  const std::string path = absl::StrCat(dir, "/", kShardIndexFileName);
  if (weight_map.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("shard index ", path, ": empty weight_map"));
  }
  for (const auto& [tensor, shard] : weight_map) {
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      return absl::InvalidArgumentError(absl::StrCat("shard index ", path, ": tensor \"", tensor,
                                                     "\": shard \"", shard,
                                                     "\" is not a plain file name"));
    }
  }
  json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  std::string text;
  try {
    text = index.dump(2) + "\n";
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard index ", path, ": names are not valid UTF-8: ", e.what()));
  }
  return WriteFileAtomically(path, text);
}

}  // namespace rtnq
