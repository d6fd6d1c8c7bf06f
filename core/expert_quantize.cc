#include "core/expert_quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/io/safetensors_header.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

// Sum of squares of a piece's values, in double: the SNR of the whole tensor needs each expert's
// signal energy, which its metrics carry only through a ratio that is infinite for exact pieces.
double SignalEnergy(const std::vector<uint8_t>& bytes, ElemType dtype) {
  double sum = 0;
  const int es = ElemSize(dtype);
  for (size_t i = 0; i < bytes.size(); i += es) {
    float v;
    if (dtype == ElemType::kF32) {
      std::memcpy(&v, &bytes[i], 4);
    } else {
      uint16_t h;
      std::memcpy(&h, &bytes[i], 2);
      v = dtype == ElemType::kBF16 ? Bf16ToFloat(h) : HalfToFloat(h);
    }
    sum += static_cast<double>(v) * v;
  }
  return sum;
}

struct PieceResult {
  absl::StatusOr<PieceOutputs> out = absl::UnknownError("not run");
  double signal = 0;
};

}  // namespace

absl::StatusOr<PieceOutputs> QuantizeStackedExperts(const TensorInput& stacked,
                                                    const std::vector<ExpertSlice>& slices,
                                                    bool transposed, bool fake,
                                                    const PieceQuantizer& quantize,
                                                    const Engine& engine) {
  const auto start = std::chrono::steady_clock::now();
  RTNQ_ASSIGN_OR_RETURN(const int64_t elements, ValidateTensorInput(stacked));
  if (!IsQuantizableFloat(stacked.dtype) || stacked.shape.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", stacked.name,
                                                   "\": stacked experts must be a 3-D F32, F16 or "
                                                   "BF16 tensor, got ",
                                                   ElemTypeName(stacked.dtype), " ",
                                                   ShapeString(stacked.shape)));
  }
  const int es = ElemSize(stacked.dtype);
  std::vector<PieceResult> results(slices.size());
  RTNQ_RETURN_IF_ERROR(engine.ParallelFor(static_cast<int64_t>(slices.size()), [&](int64_t k) {
    const ExpertSlice& s = slices[k];
    std::vector<uint8_t> piece(static_cast<size_t>(s.out * s.in * es));
    GatherExpertSlice(stacked.data.data(), stacked.shape, es, transposed, s, piece.data());
    results[k].signal = SignalEnergy(piece, stacked.dtype);
    results[k].out =
        quantize(TensorInput{s.layer + ".weight", stacked.dtype, {s.out, s.in}, piece});
  }));

  PieceOutputs all;
  TensorMetrics& m = all.metrics;
  double squared_error = 0, signal = 0;
  m.clip_ratio = std::numeric_limits<double>::infinity();
  if (fake) all.tensors.push_back({stacked.name, stacked.dtype, stacked.shape, {}});
  if (fake) all.tensors[0].data.resize(static_cast<size_t>(elements * es));
  for (size_t k = 0; k < slices.size(); ++k) {
    const ExpertSlice& s = slices[k];
    if (!results[k].out.ok()) {
      const absl::Status& e = results[k].out.status();
      return absl::Status(e.code(), absl::StrCat("tensor \"", stacked.name, "\" expert ", s.expert,
                                                 " (", s.layer, "): ", e.message()));
    }
    PieceOutputs& p = *results[k].out;
    const TensorMetrics& pm = p.metrics;
    m.elements += pm.elements;
    m.groups += pm.groups;
    squared_error += pm.mse * static_cast<double>(pm.elements);
    signal += results[k].signal;
    m.max_abs_error = std::max(m.max_abs_error, pm.max_abs_error);
    m.clip_ratio = std::min(m.clip_ratio, pm.clip_ratio);
    if (fake) {
      if (p.tensors.size() != 1 ||
          p.tensors[0].data.size() != static_cast<size_t>(s.out * s.in * es)) {
        return absl::InternalError(absl::StrCat("tensor \"", stacked.name, "\" expert ", s.expert,
                                                ": fake-quant piece of unexpected size"));
      }
      ScatterExpertSlice(p.tensors[0].data.data(), stacked.shape, es, transposed, s,
                         all.tensors[0].data.data());
    } else {
      for (PackedTensor& t : p.tensors) all.tensors.push_back(std::move(t));
    }
    p.tensors.clear();
  }
  if (slices.empty()) m.clip_ratio = 1.0;
  m.mse = m.elements > 0 ? squared_error / static_cast<double>(m.elements) : 0;
  m.snr_db = squared_error == 0 ? std::numeric_limits<double>::infinity()
                                : 10 * std::log10(signal / squared_error);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return all;
}

}  // namespace rtnq
