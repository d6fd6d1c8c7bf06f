// Small shared pieces of the rtnq client: output format names, opening a checkpoint given on
// the command line, reading tensors as floats and comparing them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "client/backend.h"
#include "core/io/sharded_checkpoint.h"
#include "core/layout/output_plan.h"

namespace rtnq::client {

/// The name of the rtnq.v1 OutputForm value a session of layout `f` asks for
/// ("OUTPUT_FORM_PACKED_GPTQ"), for gRPC clients that build sessions from a plan (the Python
/// client): the C API builds without protobuf, so this table repeats by name what
/// OutputLayoutToProto (proto/quant_config_conversion.h) maps; a test holds the two equal.
const std::string& OutputFormName(OutputLayout f);
/// The name of the rtnq.v1 GptqFormat value for `f` ("GPTQ_FORMAT_V1" or "GPTQ_FORMAT_V2").
const std::string& GptqFormatWireName(GptqFormat f);
/// True for the layouts whose loaders read a quantized layer's bias as float16 (GPTQ, AWQ).
bool HalfBias(OutputLayout f);
/// True for the layouts whose record is config.json's "quantization_config" (GPTQ,
/// compressed-tensors, AWQ: what Hugging Face loaders read); the others record rtnq's manifest
/// under "rtnq_quantization".
bool HasHfQuantizationConfig(OutputLayout f);

/// A checkpoint given on the command line: a .safetensors file or a checkpoint directory.
struct InputCheckpoint {
  ShardedCheckpoint checkpoint;
  bool is_dir = false;
};
/// Opens `path` as a file or a directory (ShardedCheckpoint::Open); errors name the path.
/// kHeaderOnly reads only the headers (a dry run: tensors carry no data).
absl::StatusOr<InputCheckpoint> OpenInput(const std::string& path,
                                          ShardAccess access = ShardAccess::kData);
/// Every tensor of `c`, shard by shard in file order (the order outputs are written in).
std::vector<const TensorInfo*> FileOrder(const ShardedCheckpoint& c);

/// The tensor's values as float32 (F32, F16 or BF16; InvalidArgument otherwise).
absl::StatusOr<std::vector<float>> ToFloats(const TensorInfo& t);

/// A quantized layer's bias as GPTQ stores it: float16 bytes, converted by the core's BiasToHalf
/// (a 1-D float tensor; a value float16 cannot hold is an error naming the tensor).
absl::StatusOr<std::vector<uint8_t>> GptqBiasBytes(const TensorInfo& t);

/// Signal-to-noise ratio in dB of `approx` against `ref` (+inf when equal) and the mean squared
/// error; sizes must match.
struct ErrorStats {
  double snr_db = 0;
  double mse = 0;
};
ErrorStats CompareFloats(const std::vector<float>& ref, const std::vector<float>& approx);

/// "812 B", "1.5 KiB", "3.20 MiB", "1.07 GiB".
std::string HumanBytes(uint64_t bytes);

}  // namespace rtnq::client
