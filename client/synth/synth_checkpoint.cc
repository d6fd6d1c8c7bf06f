#include "client/synth/synth_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/fp8.h"
#include "core/io/file_io.h"
#include "core/io/safetensors_writer.h"
#include "core/io/sharded_checkpoint.h"
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

// DeepSeek-V3's FP8 block: one F32 scale per 128x128 block of a projection.
constexpr int64_t kFp8Block = 128;
constexpr float kF8E4M3Max = 448.0f;
constexpr char kFp8ScaleSuffix[] = "_scale_inv";

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
  if (EndsWith(name, "down_proj.weight") || EndsWith(name, "down_proj")) return Kind::kDownProj;
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

// Runs fn over [0, blocks) in the engine and returns the first error any block reported.
absl::Status ParallelWrites(const Engine& engine, int64_t blocks,
                            const std::function<absl::Status(int64_t)>& fn) {
  std::mutex mu;
  absl::Status first_error;
  RTNQ_RETURN_IF_ERROR(engine.ParallelFor(blocks, [&](int64_t b) {
    absl::Status s = fn(b);
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.ok()) first_error = std::move(s);
    }
  }));
  return first_error;
}

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::Status WriteFloatTensor(const TensorSpec& spec, const SynthOptions& options,
                              const Engine& engine, SafetensorsWriter& writer) {
  const TensorGenerator gen(spec, options.shape, options.seed);
  const int64_t rows = NumElements(spec.shape) / spec.shape.back();
  const int64_t row_bytes = gen.row_bytes();
  const int64_t per_block = std::max<int64_t>(1, kBlockBytes / row_bytes);
  return ParallelWrites(engine, (rows + per_block - 1) / per_block, [&](int64_t b) {
    const int64_t begin = b * per_block, end = std::min(rows, begin + per_block);
    std::vector<uint8_t> buf((end - begin) * row_bytes);
    for (int64_t r = begin; r < end; ++r) gen.Fill(r, buf.data() + (r - begin) * row_bytes);
    return writer.WriteTensorChunk(spec.name, begin * row_bytes, buf);
  });
}

// An FP8 projection as DeepSeek-V3 stores one: per 128x128 block of each matrix (the last two
// dimensions), scale = amax / 448 and code = E4M3(value / scale), the scale written as F32.
absl::Status WriteFp8Tensor(const TensorSpec& spec, const SynthOptions& options,
                            const Engine& engine, SafetensorsWriter& writer,
                            SafetensorsWriter& scale_writer, const std::string& scale_name) {
  TensorSpec as_float = spec;
  as_float.dtype = ElemType::kF32;
  const TensorGenerator gen(as_float, options.shape, options.seed);
  const size_t n = spec.shape.size();
  const int64_t rows = spec.shape[n - 2], cols = spec.shape[n - 1];
  const int64_t matrices = NumElements(spec.shape) / (rows * cols);
  const int64_t block_rows = (rows + kFp8Block - 1) / kFp8Block;
  const int64_t block_cols = (cols + kFp8Block - 1) / kFp8Block;
  std::vector<float> scales(matrices * block_rows * block_cols);
  RTNQ_RETURN_IF_ERROR(ParallelWrites(engine, matrices * block_rows, [&](int64_t unit) {
    const int64_t r0 = (unit / block_rows) * rows + (unit % block_rows) * kFp8Block;
    const int64_t nr = std::min(kFp8Block, rows - (unit % block_rows) * kFp8Block);
    std::vector<float> v(nr * cols);
    for (int64_t r = 0; r < nr; ++r) {
      gen.Fill(r0 + r, reinterpret_cast<uint8_t*>(v.data() + r * cols));
    }
    std::vector<uint8_t> codes(v.size());
    for (int64_t bc = 0; bc < block_cols; ++bc) {
      const int64_t c0 = bc * kFp8Block, c1 = std::min(cols, c0 + kFp8Block);
      float amax = 0;
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(v[r * cols + c]));
      }
      const float scale = amax > 0 ? amax / kF8E4M3Max : 1.0f;
      scales[unit * block_cols + bc] = scale;
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t c = c0; c < c1; ++c)
          codes[r * cols + c] = FloatToF8E4M3(v[r * cols + c] / scale);
      }
    }
    return writer.WriteTensorChunk(spec.name, r0 * cols, codes);
  }));
  std::vector<uint8_t> bytes(scales.size() * 4);
  std::memcpy(bytes.data(), scales.data(), bytes.size());
  return scale_writer.WriteTensorChunk(scale_name, 0, bytes);
}

}  // namespace

const std::vector<SynthShape>& SynthShapePresets() {
  static const auto* presets = new std::vector<SynthShape>{
      {"tiny", 256, LlamaIntermediate(256), 2, 4, 2, 1024},
      {"small", 1024, LlamaIntermediate(1024), 4, 8, 4, 8192},
      {"llama7b-layer", 4096, 11008, 1, 32, 32, 32000},
      {"llama70b-layer", 8192, 28672, 1, 64, 8, 32000},
      {"moe-tiny", 256, LlamaIntermediate(256), 4, 4, 2, 512, SynthExperts::kFused, 16, 256},
      {"moe-tiny-per-expert", 256, LlamaIntermediate(256), 4, 4, 2, 512, SynthExperts::kPerExpert,
       16, 256},
      {"moe-tiny-interleaved", 256, LlamaIntermediate(256), 4, 4, 2, 512,
       SynthExperts::kInterleaved, 16, 256},
      {"moe-tiny-transposed", 256, LlamaIntermediate(256), 4, 4, 2, 512, SynthExperts::kTransposed,
       16, 256},
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
  if (s.expert_storage != SynthExperts::kNone && (s.experts <= 0 || s.expert_intermediate <= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic shape \"", s.name, "\": experts and expert_intermediate must be > 0, got ",
        s.experts, " and ", s.expert_intermediate));
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
  const bool fp8 = dtype == ElemType::kF8E4M3;
  const ElemType plain_dtype = fp8 ? ElemType::kBF16 : dtype;
  const int64_t kv = s.kv_heads * s.head_dim();
  const int64_t E = s.experts, I = s.expert_intermediate, H = s.hidden;
  std::vector<TensorSpec> specs;
  auto plain = [&](std::string name, std::vector<int64_t> shape) {
    specs.push_back({std::move(name), plain_dtype, std::move(shape)});
  };
  // A projection: FP8 with its block scale right after it, or the checkpoint's dtype.
  auto proj = [&](std::string name, std::vector<int64_t> shape) {
    if (!fp8) {
      specs.push_back({std::move(name), dtype, std::move(shape)});
      return;
    }
    std::vector<int64_t> scale = shape;
    const size_t n = scale.size();
    scale[n - 2] = (scale[n - 2] + kFp8Block - 1) / kFp8Block;
    scale[n - 1] = (scale[n - 1] + kFp8Block - 1) / kFp8Block;
    specs.push_back({name, ElemType::kF8E4M3, std::move(shape)});
    specs.push_back({name + kFp8ScaleSuffix, ElemType::kF32, std::move(scale)});
  };
  if (embeddings) plain("model.embed_tokens.weight", {s.vocab, H});
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    proj(p + "self_attn.q_proj.weight", {H, H});
    proj(p + "self_attn.k_proj.weight", {kv, H});
    proj(p + "self_attn.v_proj.weight", {kv, H});
    proj(p + "self_attn.o_proj.weight", {H, H});
    switch (s.expert_storage) {
      case SynthExperts::kNone:
        proj(p + "mlp.gate_proj.weight", {s.intermediate, H});
        proj(p + "mlp.up_proj.weight", {s.intermediate, H});
        proj(p + "mlp.down_proj.weight", {H, s.intermediate});
        break;
      case SynthExperts::kFused:
        plain(p + "mlp.gate.weight", {E, H});
        proj(p + "mlp.experts.gate_up_proj", {E, 2 * I, H});
        proj(p + "mlp.experts.down_proj", {E, H, I});
        break;
      case SynthExperts::kPerExpert:
        plain(p + "mlp.gate.weight", {E, H});
        for (int64_t e = 0; e < E; ++e) {
          const std::string x = absl::StrCat(p, "mlp.experts.", e, ".");
          proj(x + "gate_proj.weight", {I, H});
          proj(x + "up_proj.weight", {I, H});
          proj(x + "down_proj.weight", {H, I});
        }
        break;
      case SynthExperts::kInterleaved:
        plain(p + "mlp.router.weight", {E, H});
        plain(p + "mlp.router.bias", {E});
        proj(p + "mlp.experts.gate_up_proj", {E, H, 2 * I});
        plain(p + "mlp.experts.gate_up_proj_bias", {E, 2 * I});
        proj(p + "mlp.experts.down_proj", {E, I, H});
        plain(p + "mlp.experts.down_proj_bias", {E, H});
        break;
      case SynthExperts::kTransposed:
        plain(p + "feed_forward.router.weight", {E, H});
        proj(p + "feed_forward.experts.gate_up_proj", {E, H, 2 * I});
        proj(p + "feed_forward.experts.down_proj", {E, I, H});
        proj(p + "feed_forward.shared_expert.gate_proj.weight", {I, H});
        proj(p + "feed_forward.shared_expert.up_proj.weight", {I, H});
        proj(p + "feed_forward.shared_expert.down_proj.weight", {H, I});
        break;
    }
    plain(p + "input_layernorm.weight", {H});
    plain(p + "post_attention_layernorm.weight", {H});
  }
  plain("model.norm.weight", {H});
  if (embeddings) plain("lm_head.weight", {s.vocab, H});
  return specs;
}

std::string SynthConfigJson(const SynthShape& s, ElemType dtype) {
  const char* torch_dtype = dtype == ElemType::kF16   ? "float16"
                            : dtype == ElemType::kF32 ? "float32"
                                                      : "bfloat16";
  nlohmann::ordered_json j;
  switch (s.expert_storage) {
    case SynthExperts::kNone:
      j["architectures"] = {"LlamaForCausalLM"};
      j["model_type"] = "llama";
      break;
    case SynthExperts::kFused:
    case SynthExperts::kPerExpert:
      j["architectures"] = {"Qwen3MoeForCausalLM"};
      j["model_type"] = "qwen3_moe";
      j["num_experts"] = s.experts;
      j["moe_intermediate_size"] = s.expert_intermediate;
      j["num_experts_per_tok"] = 4;
      j["decoder_sparse_step"] = 1;
      j["mlp_only_layers"] = nlohmann::ordered_json::array();
      j["norm_topk_prob"] = true;
      break;
    case SynthExperts::kInterleaved:
      j["architectures"] = {"GptOssForCausalLM"};
      j["model_type"] = "gpt_oss";
      j["num_local_experts"] = s.experts;
      j["num_experts_per_tok"] = 4;
      j["experts_per_token"] = 4;
      j["swiglu_limit"] = 7.0;
      break;
    case SynthExperts::kTransposed:
      j["architectures"] = {"Llama4ForCausalLM"};
      j["model_type"] = "llama4_text";
      j["num_local_experts"] = s.experts;
      j["num_experts_per_tok"] = 1;
      j["interleave_moe_layer_step"] = 1;
      j["intermediate_size_mlp"] = s.intermediate;
      break;
  }
  j["hidden_size"] = s.hidden;
  // GPT-OSS and Llama-4 name the expert size intermediate_size.
  const bool expert_size = s.expert_storage == SynthExperts::kInterleaved ||
                           s.expert_storage == SynthExperts::kTransposed;
  j["intermediate_size"] = expert_size ? s.expert_intermediate : s.intermediate;
  j["head_dim"] = s.head_dim();
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
  if (dtype == ElemType::kF8E4M3) {
    j["quantization_config"] = {{"quant_method", "fp8"},
                                {"fmt", "e4m3"},
                                {"activation_scheme", "dynamic"},
                                {"weight_block_size", {kFp8Block, kFp8Block}}};
  }
  return j.dump(2) + "\n";
}

absl::Status WriteSynthCheckpoint(const SynthOptions& options, const Engine& engine) {
  RTNQ_RETURN_IF_ERROR(ValidateSynthShape(options.shape));
  if (options.dtype != ElemType::kBF16 && options.dtype != ElemType::kF16 &&
      options.dtype != ElemType::kF32 && options.dtype != ElemType::kF8E4M3) {
    return absl::InvalidArgumentError(
        absl::StrCat("synthetic checkpoint dtype must be BF16, F16, F32 or F8_E4M3, got ",
                     ElemTypeName(options.dtype)));
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
  RTNQ_RETURN_IF_ERROR(PrepareEmptyDir(options.output_dir));

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
    RTNQ_ASSIGN_OR_RETURN(
        SafetensorsWriter w,
        SafetensorsWriter::Create((fs::path(options.output_dir) / file_names[i]).string(),
                                  shard_specs[i]));
    writers.push_back(std::move(w));
  }

  std::map<std::string, size_t> index;
  for (size_t i = 0; i < specs.size(); ++i) index[specs[i].name] = i;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    if (spec.dtype == ElemType::kF8E4M3) {
      const size_t k = index.at(spec.name + kFp8ScaleSuffix);
      RTNQ_RETURN_IF_ERROR(WriteFp8Tensor(spec, options, engine, writers[shard_of[i]],
                                          writers[shard_of[k]], specs[k].name));
    } else if (options.dtype != ElemType::kF8E4M3 || !EndsWith(spec.name, kFp8ScaleSuffix)) {
      RTNQ_RETURN_IF_ERROR(WriteFloatTensor(spec, options, engine, writers[shard_of[i]]));
    }
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
