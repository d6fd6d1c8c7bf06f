#include "client/checkpoint_util.h"

#include <errno.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/io/file_io.h"
#include "core/layout/gptq.h"
#include "core/quantize.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {

const std::string& OutputFormName(OutputLayout f) {
  static const std::string kNames[] = {
      "OUTPUT_FORM_FAKE_QUANT", "OUTPUT_FORM_PACKED_INC", "OUTPUT_FORM_PACKED_GPTQ",
      "OUTPUT_FORM_PACKED_COMPRESSED_TENSORS", "OUTPUT_FORM_PACKED_AWQ"};
  return kNames[static_cast<int>(f)];
}

const std::string& GptqFormatWireName(GptqFormat f) {
  static const std::string kV1 = "GPTQ_FORMAT_V1";
  static const std::string kV2 = "GPTQ_FORMAT_V2";
  return f == GptqFormat::kV2 ? kV2 : kV1;
}

bool HalfBias(OutputLayout f) { return f == OutputLayout::kGptq || f == OutputLayout::kAwq; }

bool HasHfQuantizationConfig(OutputLayout f) {
  return f == OutputLayout::kGptq || f == OutputLayout::kCompressedTensors ||
         f == OutputLayout::kAwq;
}

absl::StatusOr<InputCheckpoint> OpenInput(const std::string& path, ShardAccess access) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
  RTNQ_ASSIGN_OR_RETURN(ShardedCheckpoint checkpoint, ShardedCheckpoint::Open(path, access));
  return InputCheckpoint{std::move(checkpoint), S_ISDIR(st.st_mode)};
}

std::vector<const TensorInfo*> FileOrder(const ShardedCheckpoint& c) {
  std::vector<const TensorInfo*> out;
  for (const SafetensorsFile& shard : c.shards()) {
    for (const TensorInfo& t : shard.tensors()) out.push_back(&t);
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
      return absl::InvalidArgumentError(
          absl::StrCat(TensorPrefix(t.name), "dtype ", ElemTypeName(t.dtype), " is not a float"));
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> GptqBiasBytes(const TensorInfo& t) {
  RTNQ_ASSIGN_OR_RETURN(
      const std::vector<uint16_t> half,
      BiasToHalf(TensorInput{t.name, t.dtype, t.shape, t.data}, t.num_elements, LayerName(t.name)));
  std::vector<uint8_t> out(half.size() * 2);
  std::memcpy(out.data(), half.data(), out.size());
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

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < (1u << 20)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  if (bytes < (1u << 30)) return absl::StrFormat("%.2f MiB", bytes / 1048576.0);
  return absl::StrFormat("%.2f GiB", bytes / 1073741824.0);
}

}  // namespace rtnq::client
