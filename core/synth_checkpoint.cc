#include "core/synth_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_io.h"
#include "core/safetensors_writer.h"
#include "core/sharded_checkpoint.h"
#include "core/status_macros.h"

namespace rtnq {
namespace {

namespace fs = std::filesystem;

// Llama's rule: 8/3 of hidden, rounded up to a multiple of 256.
constexpr int64_t LlamaIntermediate(int64_t hidden) { return (hidden * 8 / 3 + 255) / 256 * 256; }

// Bytes generated per parallel block: small enough that memory stays flat, large enough that
// each WriteTensorChunk call is worth a syscall.
constexpr int64_t kBlockBytes = 1 << 20;

// Typical initialisation scale of Llama projections; Laplace(b) has standard deviation b*sqrt 2.
constexpr double kWeightStd = 0.02;

uint64_t Mix64(uint64_t x) {  // splitmix64's finalizer
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// splitmix64: a stream of 64-bit values from one seed; every (seed, name, row) gets its own.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return Mix64(state_ += 0x9e3779b97f4a7c15ull); }
  // Uniform in (0, 1): never 0, so log() stays finite.
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1p-53; }
  // Laplace(0, 1): heavier tails than a Gaussian (kurtosis 6), as trained weights have.
  double Laplace() {
    const uint64_t x = Next();
    const double u = (static_cast<double>(x >> 11) + 0.5) * 0x1p-53;
    return (x & 1) ? -std::log(u) : std::log(u);
  }

 private:
  uint64_t state_;
};

uint64_t StreamSeed(uint64_t seed, std::string_view name, uint64_t salt) {
  return Mix64(Mix64(seed ^ Fnv1a(name)) + salt);
}

enum class Kind { kEmbedding, kInputProj, kOutputProj, kDownProj, kNorm, kHead };

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Kind KindOf(std::string_view name) {
  if (EndsWith(name, "norm.weight")) return Kind::kNorm;
  if (EndsWith(name, "embed_tokens.weight")) return Kind::kEmbedding;
  if (name == "lm_head.weight") return Kind::kHead;
  if (EndsWith(name, "down_proj.weight")) return Kind::kDownProj;
  if (EndsWith(name, "o_proj.weight")) return Kind::kOutputProj;
  return Kind::kInputProj;  // q, k, v, gate, up: they read the normalised hidden state
}

// `count` distinct channels of [0, n) with multipliers in [8, 10): the few input features that
// carry activations an order of magnitude larger, which is what stresses per-group ranges.
std::vector<float> OutlierColumns(int64_t n, int64_t count, uint64_t seed) {
  std::vector<float> mul(n, 1.0f);
  Rng rng(seed);
  count = std::min(count, n);
  for (int64_t picked = 0; picked < count;) {
    const int64_t c = static_cast<int64_t>(rng.Next() % static_cast<uint64_t>(n));
    if (mul[c] != 1.0f) continue;
    mul[c] = static_cast<float>(8.0 + 2.0 * rng.Uniform());
    ++picked;
  }
  return mul;
}

// Generates tensors row by row; const and thread-safe once built.
class TensorGenerator {
 public:
  TensorGenerator(const TensorSpec& spec, const SynthShape& shape, uint64_t seed)
      : name_(spec.name), dtype_(spec.dtype), seed_(seed), kind_(KindOf(spec.name)) {
    cols_ = spec.shape.back();
    if (kind_ == Kind::kInputProj) {
      // The same hidden channels are outliers in every layer, as in real Llamas.
      col_mul_ = OutlierColumns(cols_, std::max<int64_t>(2, shape.hidden / 512),
                                StreamSeed(seed, "hidden_outlier_channels", 0));
    } else if (kind_ == Kind::kDownProj) {
      col_mul_ = OutlierColumns(cols_, std::max<int64_t>(2, shape.intermediate / 1024),
                                StreamSeed(seed, name_, ~0ull));
    }
  }

  int64_t row_bytes() const { return cols_ * ElemSize(dtype_); }

  void Fill(int64_t row, uint8_t* out) const {
    Rng rng(StreamSeed(seed_, name_, static_cast<uint64_t>(row)));
    const int esize = ElemSize(dtype_);
    if (kind_ == Kind::kNorm) {
      for (int64_t c = 0; c < cols_; ++c) {
        Store(static_cast<float>(1.0 + 0.1 * (rng.Uniform() - 0.5)), out + c * esize);
      }
      return;
    }
    // Rows differ in magnitude too, so groups in different rows need different scales.
    const double b = kWeightStd / std::sqrt(2.0) * (0.75 + 0.5 * rng.Uniform());
    for (int64_t c = 0; c < cols_; ++c) {
      double v = b * rng.Laplace();
      if (!col_mul_.empty()) v *= col_mul_[c];
      Store(static_cast<float>(v), out + c * esize);
    }
  }

 private:
  void Store(float v, uint8_t* out) const {
    uint16_t h;
    switch (dtype_) {
      case ElemType::kBF16:
        h = FloatToBf16(v);
        std::memcpy(out, &h, 2);
        break;
      case ElemType::kF16:
        h = FloatToHalf(v);
        std::memcpy(out, &h, 2);
        break;
      default:
        std::memcpy(out, &v, 4);
    }
  }

  std::string name_;
  ElemType dtype_;
  uint64_t seed_;
  Kind kind_;
  int64_t cols_ = 0;
  std::vector<float> col_mul_;  // empty: no outlier channels
};

// Shard of each tensor: contiguous runs of about total/count bytes, none empty.
std::vector<int> AssignShards(const std::vector<TensorSpec>& specs, int count) {
  std::vector<uint64_t> bytes;
  uint64_t total = 0;
  for (const TensorSpec& s : specs) {
    uint64_t n = ElemSize(s.dtype);
    for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
    bytes.push_back(n);
    total += n;
  }
  const int t = static_cast<int>(specs.size());
  std::vector<int> shard(t);
  uint64_t start = 0;
  int prev = 0;
  for (int i = 0; i < t; ++i) {
    int s =
        static_cast<int>(static_cast<long double>(start) * count / std::max<uint64_t>(total, 1));
    s = std::min({s, count - 1, prev + 1});            // no shard skipped
    s = std::max({s, prev, count - 1 - (t - 1 - i)});  // enough tensors left for the rest
    shard[i] = s;
    prev = s;
    start += bytes[i];
  }
  return shard;
}

absl::Status PrepareEmptyDir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) {
      return absl::FailedPreconditionError(absl::StrCat("output ", dir, " is not a directory"));
    }
    if (!fs::is_empty(dir, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("output directory ", dir, " is not empty; remove it or choose another"));
    }
    return absl::OkStatus();
  }
  fs::create_directories(dir, ec);
  if (ec) return ErrnoError(ec.value(), "create directory", dir);
  return absl::OkStatus();
}

}  // namespace

const std::vector<SynthShape>& SynthShapePresets() {
  static const auto* presets = new std::vector<SynthShape>{
      {"tiny", 256, LlamaIntermediate(256), 2, 4, 2, 1024},
      {"small", 1024, LlamaIntermediate(1024), 4, 8, 4, 8192},
      {"llama7b-layer", 4096, 11008, 1, 32, 32, 32000},
      {"llama70b-layer", 8192, 28672, 1, 64, 8, 32000},
  };
  return *presets;
}

absl::StatusOr<SynthShape> SynthShapeByName(std::string_view name) {
  std::vector<std::string> names;
  for (const SynthShape& s : SynthShapePresets()) {
    if (s.name == name) return s;
    names.push_back(s.name);
  }
  return absl::NotFoundError(absl::StrCat("unknown synthetic shape \"", std::string(name),
                                          "\" (known: ", absl::StrJoin(names, ", "), ")"));
}

absl::Status ValidateSynthShape(const SynthShape& s) {
  const std::pair<const char*, int64_t> dims[] = {
      {"hidden", s.hidden}, {"intermediate", s.intermediate}, {"layers", s.layers},
      {"heads", s.heads},   {"kv_heads", s.kv_heads},         {"vocab", s.vocab}};
  for (const auto& [field, value] : dims) {
    if (value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("synthetic shape \"", s.name, "\": ", field, " must be > 0, got ", value));
    }
  }
  if (s.hidden % s.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("synthetic shape \"", s.name, "\": heads ",
                                                   s.heads, " does not divide hidden ", s.hidden));
  }
  if (s.heads % s.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("synthetic shape \"", s.name, "\": kv_heads ",
                                                   s.kv_heads, " does not divide heads ", s.heads));
  }
  return absl::OkStatus();
}

std::vector<TensorSpec> SynthTensorSpecs(const SynthShape& s, ElemType dtype, bool embeddings) {
  const int64_t kv = s.kv_heads * s.head_dim();
  std::vector<TensorSpec> specs;
  if (embeddings) specs.push_back({"model.embed_tokens.weight", dtype, {s.vocab, s.hidden}});
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    specs.push_back({p + "self_attn.q_proj.weight", dtype, {s.hidden, s.hidden}});
    specs.push_back({p + "self_attn.k_proj.weight", dtype, {kv, s.hidden}});
    specs.push_back({p + "self_attn.v_proj.weight", dtype, {kv, s.hidden}});
    specs.push_back({p + "self_attn.o_proj.weight", dtype, {s.hidden, s.hidden}});
    specs.push_back({p + "mlp.gate_proj.weight", dtype, {s.intermediate, s.hidden}});
    specs.push_back({p + "mlp.up_proj.weight", dtype, {s.intermediate, s.hidden}});
    specs.push_back({p + "mlp.down_proj.weight", dtype, {s.hidden, s.intermediate}});
    specs.push_back({p + "input_layernorm.weight", dtype, {s.hidden}});
    specs.push_back({p + "post_attention_layernorm.weight", dtype, {s.hidden}});
  }
  specs.push_back({"model.norm.weight", dtype, {s.hidden}});
  if (embeddings) specs.push_back({"lm_head.weight", dtype, {s.vocab, s.hidden}});
  return specs;
}

std::string SynthConfigJson(const SynthShape& s, ElemType dtype) {
  const char* torch_dtype = dtype == ElemType::kBF16  ? "bfloat16"
                            : dtype == ElemType::kF16 ? "float16"
                                                      : "float32";
  nlohmann::ordered_json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_size"] = s.hidden;
  j["intermediate_size"] = s.intermediate;
  j["num_attention_heads"] = s.heads;
  j["num_key_value_heads"] = s.kv_heads;
  j["num_hidden_layers"] = s.layers;
  j["vocab_size"] = s.vocab;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = 1e-5;
  j["max_position_embeddings"] = 4096;
  j["rope_theta"] = 10000.0;
  j["initializer_range"] = kWeightStd;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["torch_dtype"] = torch_dtype;
  j["tie_word_embeddings"] = false;
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

absl::Status WriteSynthCheckpoint(const SynthOptions& options, const Engine& engine) {
  RETURN_IF_ERROR(ValidateSynthShape(options.shape));
  if (options.dtype != ElemType::kBF16 && options.dtype != ElemType::kF16 &&
      options.dtype != ElemType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic checkpoint dtype must be BF16, F16 or F32, got ", ElemTypeName(options.dtype)));
  }
  const std::vector<TensorSpec> specs =
      SynthTensorSpecs(options.shape, options.dtype, options.embeddings);
  if (options.shards < 1 || options.shards > static_cast<int>(specs.size())) {
    return absl::InvalidArgumentError(absl::StrCat("shards must be in [1, ", specs.size(),
                                                   "] (the tensor count), got ", options.shards));
  }
  if (options.output_dir.empty()) {
    return absl::InvalidArgumentError("synthetic checkpoint: output directory is empty");
  }
  RETURN_IF_ERROR(PrepareEmptyDir(options.output_dir));

  const int n = options.shards;
  const std::vector<int> shard_of = AssignShards(specs, n);
  std::vector<std::vector<TensorSpec>> shard_specs(n);
  std::map<std::string, std::string> weight_map;
  std::vector<std::string> file_names(n);
  for (int i = 0; i < n; ++i) {
    file_names[i] = n == 1 ? std::string(kSingleFileName) : ShardFileName(i, n);
  }
  uint64_t total_size = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    shard_specs[shard_of[i]].push_back(specs[i]);
    weight_map[specs[i].name] = file_names[shard_of[i]];
    uint64_t bytes = ElemSize(specs[i].dtype);
    for (int64_t d : specs[i].shape) bytes *= static_cast<uint64_t>(d);
    total_size += bytes;
  }
  std::vector<SafetensorsWriter> writers;
  for (int i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(SafetensorsWriter w,
                     SafetensorsWriter::Create(
                         (fs::path(options.output_dir) / file_names[i]).string(), shard_specs[i]));
    writers.push_back(std::move(w));
  }

  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    SafetensorsWriter& writer = writers[shard_of[i]];
    const TensorGenerator gen(spec, options.shape, options.seed);
    const int64_t rows = spec.shape.size() == 1 ? 1 : spec.shape[0];
    const int64_t row_bytes = gen.row_bytes();
    const int64_t per_block = std::max<int64_t>(1, kBlockBytes / row_bytes);
    const int64_t blocks = (rows + per_block - 1) / per_block;
    std::mutex mu;
    absl::Status first_error;
    RETURN_IF_ERROR(engine.ParallelFor(blocks, [&](int64_t b) {
      const int64_t begin = b * per_block, end = std::min(rows, begin + per_block);
      std::vector<uint8_t> buf((end - begin) * row_bytes);
      for (int64_t r = begin; r < end; ++r) gen.Fill(r, buf.data() + (r - begin) * row_bytes);
      absl::Status s = writer.WriteTensorChunk(spec.name, begin * row_bytes, buf);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = std::move(s);
      }
    }));
    RETURN_IF_ERROR(first_error);
  }

  std::vector<std::string> finished;
  auto remove_finished = [&] {
    std::error_code ec;
    for (const std::string& p : finished) fs::remove(p, ec);
  };
  for (SafetensorsWriter& w : writers) {
    if (absl::Status s = w.Finish(); !s.ok()) {
      remove_finished();
      return s;
    }
    finished.push_back(w.path());
  }
  absl::Status s = absl::OkStatus();
  if (n > 1) s = WriteShardIndex(options.output_dir, weight_map, total_size);
  if (s.ok()) {
    s = WriteFileAtomically((fs::path(options.output_dir) / "config.json").string(),
                            SynthConfigJson(options.shape, options.dtype));
  }
  if (!s.ok()) remove_finished();
  return s;
}

}  // namespace rtnq
