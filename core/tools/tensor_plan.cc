#include "core/tools/tensor_plan.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "core/status_macros.h"

namespace rtnq::local {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

TensorInput InputOf(const TensorInfo& t) { return TensorInput{t.name, t.dtype, t.shape, t.data}; }

}  // namespace

const std::string& OutputFormatName(OutputFormat f) {
  static const std::string kNames[] = {"fake", "inc", "gptq"};
  return kNames[static_cast<int>(f)];
}

absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view s) {
  for (OutputFormat f : {OutputFormat::kFake, OutputFormat::kInc, OutputFormat::kGptq}) {
    if (s == OutputFormatName(f)) return f;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("format must be fake, inc or gptq, got \"", std::string(s), "\""));
}

absl::StatusOr<WeightConfigResolver> LoadSessionConfig(const std::string& path,
                                                       const std::string& preset) {
  QuantConfig default_config;
  std::vector<WeightConfigEntry> entries;
  if (!path.empty()) {
    ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
    absl::StatusOr<WeightConfigResolver> parsed = ParseSessionConfigJson(text);
    if (!parsed.ok()) {
      return absl::Status(parsed.status().code(),
                          absl::StrCat(path, ": ", parsed.status().message()));
    }
    if (preset.empty()) return parsed;
    default_config = parsed->default_config();
    entries = parsed->entries();
  }
  if (!preset.empty()) {
    ASSIGN_OR_RETURN(const QuantConfigPatch patch, PresetPatch(preset));
    patch.ApplyTo(default_config);
  }
  return WeightConfigResolver::Create(std::move(default_config), std::move(entries));
}

absl::StatusOr<InputCheckpoint> OpenInput(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
  ASSIGN_OR_RETURN(ShardedCheckpoint checkpoint, ShardedCheckpoint::Open(path));
  return InputCheckpoint{std::move(checkpoint), S_ISDIR(st.st_mode)};
}

std::vector<const TensorInfo*> FileOrder(const ShardedCheckpoint& c) {
  std::vector<const TensorInfo*> out;
  for (const SafetensorsFile& shard : c.shards()) {
    for (const TensorInfo& t : shard.tensors()) out.push_back(&t);
  }
  return out;
}

TensorDecision DecideTensor(std::string_view name, ElemType dtype,
                            const std::vector<int64_t>& shape,
                            const WeightConfigResolver& resolver) {
  TensorDecision d;
  if (!IsQuantizableFloat(dtype)) {
    d.reason = absl::StrCat("dtype ", ElemTypeName(dtype));
    return d;
  }
  if (shape.size() != 2) {
    d.reason = absl::StrCat(shape.size(), "-D");
    return d;
  }
  if (!EndsWith(name, ".weight")) {
    d.reason = "not a .weight";
    return d;
  }
  d.resolved = resolver.Resolve(name);
  const bool named = d.resolved.match_kind == "tensor" || d.resolved.match_kind == "layer";
  for (const char* part : {"embed", "lm_head", "norm"}) {
    if (!named && absl::StrContains(absl::string_view(name.data(), name.size()), part)) {
      d.action = TensorAction::kSkip;
      d.excluded_by_name = true;
      d.reason = absl::StrCat("name contains \"", part,
                              "\": kept by default (name it in weight_config to quantize it)");
      return d;
    }
  }
  if (d.resolved.config.dtype == QuantDtype::kFp32) {
    d.action = TensorAction::kSkip;
    d.reason = absl::StrCat("dtype fp32 by ", DecidedByText(d.resolved));
    return d;
  }
  d.action = TensorAction::kQuantize;
  return d;
}

std::string LayerName(std::string_view tensor_name) {
  if (EndsWith(tensor_name, ".weight")) tensor_name.remove_suffix(7);
  return std::string(tensor_name);
}

std::string DecidedByText(const ResolvedConfig& r) {
  if (r.decided_by.empty()) return "default";
  return absl::StrCat(r.match_kind, " \"", r.decided_by, "\"");
}

absl::StatusOr<TensorOutputs> QuantizeForOutput(const TensorInfo& weight, const QuantConfig& config,
                                                OutputFormat format, GptqFormat gptq_format,
                                                const TensorInfo* bias, const Engine& engine) {
  QuantizeOptions qo;
  qo.fake_quant = format == OutputFormat::kFake;
  qo.codes = format != OutputFormat::kFake;
  ASSIGN_OR_RETURN(QuantizedTensor q, QuantizeTensor(InputOf(weight), config, qo, engine));
  if (!q.quantized) {
    return absl::InternalError(absl::StrCat("tensor \"", weight.name,
                                            "\" was selected but not quantized: ", q.skip_reason));
  }
  TensorOutputs out;
  out.metrics = q.metrics;
  const std::string layer = LayerName(weight.name);
  switch (format) {
    case OutputFormat::kFake:
      out.tensors.push_back(
          PackedTensor{weight.name, weight.dtype, weight.shape, std::move(q.fake)});
      break;
    case OutputFormat::kInc: {
      ASSIGN_OR_RETURN(out.tensors, PackInc(q, layer, /*compression_dim=*/1));
      break;
    }
    case OutputFormat::kGptq: {
      GptqPackOptions po;
      po.format = gptq_format;
      TensorInput bias_input;
      if (bias != nullptr) {
        bias_input = InputOf(*bias);
        po.bias = &bias_input;
      }
      ASSIGN_OR_RETURN(out.tensors, PackGptq(q, layer, po));
      break;
    }
  }
  return out;
}

absl::StatusOr<std::vector<float>> ToFloats(const TensorInfo& t) {
  std::vector<float> out(t.num_elements);
  const uint8_t* p = t.data.data();
  switch (t.dtype) {
    case ElemType::kF32:
      std::memcpy(out.data(), p, out.size() * 4);
      break;
    case ElemType::kF16:
    case ElemType::kBF16:
      for (int64_t i = 0; i < t.num_elements; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = t.dtype == ElemType::kF16 ? HalfToFloat(h) : Bf16ToFloat(h);
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\": dtype ",
                                                     ElemTypeName(t.dtype), " is not a float"));
  }
  return out;
}

ErrorStats CompareFloats(const std::vector<float>& ref, const std::vector<float>& approx) {
  double signal = 0, noise = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(ref[i]) - static_cast<double>(approx[i]);
    signal += static_cast<double>(ref[i]) * ref[i];
    noise += d * d;
  }
  ErrorStats s;
  s.mse = ref.empty() ? 0 : noise / ref.size();
  s.snr_db = noise == 0 ? std::numeric_limits<double>::infinity()
                        : (std::isnan(noise) ? -std::numeric_limits<double>::infinity()
                                             : 10 * std::log10(signal / noise));
  return s;
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoError(err, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace rtnq::local
