#include "client/verify.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/checkpoint_util.h"
#include "client/expert_plan.h"
#include "client/fp8_input.h"
#include "client/local_backend.h"
#include "core/layout/awq.h"
#include "core/layout/compressed_tensors.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

absl::StatusOr<Manifest> LoadManifest(const ShardedCheckpoint& quant, const std::string& path) {
  for (const SafetensorsFile& shard : quant.shards()) {
    const auto it = shard.metadata().find(kManifestKey);
    if (it == shard.metadata().end()) continue;
    return ManifestFromJson(it->second,
                            absl::StrCat(shard.path(), " __metadata__[\"", kManifestKey, "\"]"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, " has no \"", kManifestKey, "\" metadata: not a checkpoint rtnq quantize wrote"));
}

// Names of the stored tensors a quantized weight became (missing ones are reported by Decode).
std::vector<std::string> StoredNames(const ManifestTensor& r, OutputLayout format) {
  switch (format) {
    case OutputLayout::kFake:
      return {r.name};
    case OutputLayout::kInc:
      return {r.layer + ".qweight", r.layer + ".scales", r.layer + ".qzeros"};
    case OutputLayout::kGptq:
      return {r.layer + ".qweight", r.layer + ".qzeros", r.layer + ".scales", r.layer + ".g_idx"};
    case OutputLayout::kCompressedTensors:
      return {r.layer + ".weight_packed", r.layer + ".weight_scale", r.layer + ".weight_shape",
              r.layer + ".weight_zero_point"};
    case OutputLayout::kAwq:
      return {r.layer + ".qweight", r.layer + ".qzeros", r.layer + ".scales"};
  }
  return {};
}

// Float values the stored form of `r` decodes to, [rows, cols] row-major.
absl::StatusOr<std::vector<float>> Decode(const ManifestTensor& r, const Manifest& m,
                                          const std::vector<PackedTensor>& stored,
                                          const Engine& engine) {
  const int64_t rows = r.shape[0], cols = r.shape[1];
  switch (m.format) {
    case OutputLayout::kFake: {
      if (stored.empty()) return absl::NotFoundError("missing from the quantized checkpoint");
      const PackedTensor& t = stored[0];
      if (t.dtype != r.dtype || t.shape != r.shape) {
        return absl::InvalidArgumentError(
            absl::StrCat("stored as ", ElemTypeName(t.dtype), " ", ShapeString(t.shape),
                         ", expected ", ElemTypeName(r.dtype), " ", ShapeString(r.shape)));
      }
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      TensorInfo view{t.name, t.dtype, t.shape, n, 0, t.data};
      return ToFloats(view);
    }
    case OutputLayout::kInc: {
      RTNQ_ASSIGN_OR_RETURN(QuantizedTensor q,
                            UnpackInc(stored, r.layer, r.config, rows, cols, m.compression_dim));
      q.name = r.name;
      return DequantizeCodes(q, engine);
    }
    case OutputLayout::kGptq: {
      GptqUnpackOptions uo;
      uo.bits = r.config.bits;
      uo.sym = r.config.scheme == Scheme::kSym;
      uo.format = m.gptq_format;
      uo.group_size = r.config.group_size;
      RTNQ_ASSIGN_OR_RETURN(const GptqUnpacked unpacked, UnpackGptq(stored, r.layer, uo));
      if (unpacked.q.rows != rows || unpacked.q.cols != cols) {
        return absl::InvalidArgumentError(absl::StrCat("packed as [", unpacked.q.rows, ", ",
                                                       unpacked.q.cols, "], expected ",
                                                       ShapeString(r.shape)));
      }
      return DequantizeGptq(stored, r.layer, r.config.bits, m.gptq_format);
    }
    case OutputLayout::kCompressedTensors:
    case OutputLayout::kAwq: {
      // What loaders compute: (q - zp) * the stored scale, widened to float32.
      RTNQ_ASSIGN_OR_RETURN(QuantizedTensor q,
                            m.format == OutputLayout::kAwq
                                ? UnpackAwq(stored, r.layer, r.config.group_size)
                                : UnpackCompressedTensors(stored, r.layer, r.config));
      if (q.rows != rows || q.cols != cols) {
        return absl::InvalidArgumentError(absl::StrCat("packed as [", q.rows, ", ", q.cols,
                                                       "], expected ", ShapeString(r.shape)));
      }
      q.name = r.name;
      return DequantizeCodes(q, engine);
    }
  }
  return absl::InternalError("unknown format");
}

// Requantizes the original and counts the stored bytes that differ; "" when all match.
std::string CompareFresh(const TensorInfo& w, const ManifestTensor& r, const Manifest& m,
                         const std::vector<PackedTensor>& stored, const Engine& engine,
                         int64_t* differing) {
  OutputLayoutOptions layout{m.format, m.compression_dim, m.gptq_format};
  std::optional<ExpertLayout> experts;
  if (!r.expert_layout.empty()) experts = *ParseExpertLayout(r.expert_layout);
  absl::StatusOr<LayoutOutputs> fresh = QuantizeTensorToLayout(
      TensorInput{w.name, w.dtype, w.shape, w.data}, r.config, layout, experts, engine);
  if (!fresh.ok()) return absl::StrCat("requantizing: ", fresh.status().message());
  *differing = 0;
  for (const PackedTensor& p : fresh->tensors) {
    const auto s = std::find_if(stored.begin(), stored.end(),
                                [&](const PackedTensor& t) { return t.name == p.name; });
    if (s == stored.end()) return absl::StrCat(p.name, " is missing");
    if (s->dtype != p.dtype || s->shape != p.shape) {
      return absl::StrCat(p.name, " is ", ElemTypeName(s->dtype), " ", ShapeString(s->shape),
                          ", a fresh quantization gives ", ElemTypeName(p.dtype), " ",
                          ShapeString(p.shape));
    }
    for (size_t i = 0; i < p.data.size(); ++i) *differing += p.data[i] != s->data[i];
  }
  return "";
}

// The expert weights a stacked tensor was quantized as (empty for any other tensor).
absl::StatusOr<std::vector<ExpertSlice>> ExpertSlicesOf(const ManifestTensor& r) {
  if (r.expert_layout.empty()) return std::vector<ExpertSlice>();
  RTNQ_ASSIGN_OR_RETURN(const ExpertLayout layout, ParseExpertLayout(r.expert_layout));
  return PlanExpertSlices(r.name, r.shape, layout, std::nullopt);
}

// The original values of each expert weight of stacked tensor `w`, one after the other.
absl::StatusOr<std::vector<float>> ExpertValues(const TensorInfo& w,
                                                const std::vector<ExpertSlice>& slices,
                                                bool transposed) {
  RTNQ_ASSIGN_OR_RETURN(const std::vector<float> all, ToFloats(w));
  std::vector<float> out;
  out.reserve(all.size());
  for (const ExpertSlice& s : slices) {
    std::vector<float> piece(s.out * s.in);
    GatherExpertSlice(reinterpret_cast<const uint8_t*>(all.data()), w.shape, 4, transposed, s,
                      reinterpret_cast<uint8_t*>(piece.data()));
    out.insert(out.end(), piece.begin(), piece.end());
  }
  return out;
}

// A stacked bias [E, F] of stacked experts `r` must be stored as one bias per expert weight,
// cut as the weight was (F16 for GPTQ); "" when it is.
std::string CheckSplitBias(const TensorInfo& bias, const ManifestTensor& r, OutputLayout format,
                           const ShardedCheckpoint& quant, std::set<std::string>& consumed) {
  absl::StatusOr<std::vector<ExpertSlice>> slices = ExpertSlicesOf(r);
  if (!slices.ok()) return std::string(slices.status().message());
  const int es = ElemSize(bias.dtype);
  const int64_t fused = bias.shape[1];
  for (const ExpertSlice& e : *slices) {
    const std::string name = e.layer + ".bias";
    consumed.insert(name);
    std::vector<uint8_t> want(static_cast<size_t>(e.out * es));
    for (int64_t o = 0; o < e.out; ++o) {
      if ((e.expert * fused + e.offset + o * e.stride + 1) * es >
          static_cast<int64_t>(bias.data.size())) {
        return absl::StrCat("too small for the experts of ", r.name);
      }
      std::memcpy(&want[o * es], &bias.data[(e.expert * fused + e.offset + o * e.stride) * es], es);
    }
    ElemType dtype = bias.dtype;
    if (HalfBias(format) && dtype != ElemType::kF16) {
      absl::StatusOr<std::vector<uint8_t>> f16 =
          GptqBiasBytes(TensorInfo{name, dtype, {e.out}, e.out, 0, want});
      if (!f16.ok()) return std::string(f16.status().message());
      want = *std::move(f16);
      dtype = ElemType::kF16;
    }
    const TensorInfo* s = quant.Find(name);
    if (s == nullptr) return absl::StrCat(name, " is missing from the quantized checkpoint");
    if (s->dtype != dtype || s->shape != std::vector<int64_t>{e.out}) {
      return absl::StrCat(name, " is ", ElemTypeName(s->dtype), " ", ShapeString(s->shape),
                          ", expected ", ElemTypeName(dtype), " [", e.out, "]");
    }
    if (!std::equal(s->data.begin(), s->data.end(), want.begin(), want.end())) {
      return absl::StrCat(name, ": bytes differ from the original's slice");
    }
  }
  return "";
}

// The stored values of quantized tensor `r` decoded, and the original's in the same order.
struct DecodedValues {
  std::vector<float> decoded;
  std::vector<float> original;
};

// Reads (into `stored`, marking them `consumed`) and decodes what `r` was stored as: its own
// tensors, or each expert weight's of a stacked tensor (fake-quant keeps a stack whole).
absl::StatusOr<DecodedValues> DecodeQuantized(const TensorInfo& w, const ManifestTensor& r,
                                              const Manifest& m, const ShardedCheckpoint& quant,
                                              const Engine& engine, std::set<std::string>& consumed,
                                              std::vector<PackedTensor>& stored) {
  RTNQ_ASSIGN_OR_RETURN(const std::vector<ExpertSlice> slices, ExpertSlicesOf(r));
  std::vector<ManifestTensor> pieces = {r};
  if (!slices.empty() && m.format != OutputLayout::kFake) {
    pieces.clear();
    for (const ExpertSlice& s : slices) {
      ManifestTensor piece = r;
      piece.name = s.layer + ".weight";
      piece.layer = s.layer;
      piece.shape = {s.out, s.in};
      pieces.push_back(std::move(piece));
    }
  }
  DecodedValues v;
  for (const ManifestTensor& piece : pieces) {
    std::vector<PackedTensor> piece_stored;
    for (const std::string& name : StoredNames(piece, m.format)) {
      if (const TensorInfo* t = quant.Find(name); t != nullptr) {
        piece_stored.push_back(PackedTensor{t->name, t->dtype, t->shape,
                                            std::vector<uint8_t>(t->data.begin(), t->data.end())});
        consumed.insert(name);
      }
    }
    absl::StatusOr<std::vector<float>> d = Decode(piece, m, piece_stored, engine);
    if (!d.ok()) {
      if (pieces.size() == 1) return d.status();
      return absl::Status(d.status().code(), absl::StrCat(piece.layer, ": ", d.status().message()));
    }
    v.decoded.insert(v.decoded.end(), d->begin(), d->end());
    for (PackedTensor& t : piece_stored) stored.push_back(std::move(t));
  }
  if (pieces.size() == 1 && pieces[0].name == r.name) {
    RTNQ_ASSIGN_OR_RETURN(v.original, ToFloats(w));
  } else {
    RTNQ_ASSIGN_OR_RETURN(const ExpertLayout layout, ParseExpertLayout(r.expert_layout));
    RTNQ_ASSIGN_OR_RETURN(v.original, ExpertValues(w, slices, layout.transposed));
  }
  return v;
}

}  // namespace

absl::StatusOr<VerifyReport> VerifyCheckpoint(const std::string& original,
                                              const std::string& quantized,
                                              const VerifyOptions& options, const Engine& engine) {
  RTNQ_ASSIGN_OR_RETURN(const InputCheckpoint orig_in, OpenInput(original));
  RTNQ_ASSIGN_OR_RETURN(const InputCheckpoint quant_in, OpenInput(quantized));
  const ShardedCheckpoint& orig = orig_in.checkpoint;
  const ShardedCheckpoint& quant = quant_in.checkpoint;
  VerifyReport report;
  RTNQ_ASSIGN_OR_RETURN(report.manifest, LoadManifest(quant, quantized));
  const Manifest& m = report.manifest;

  // FP8 sources were quantized (or written) as their dequantized float32 values, and their
  // scales left out: compare against those values.
  RTNQ_ASSIGN_OR_RETURN(const nlohmann::json orig_config, ReadInputConfig(original, orig_in));
  RTNQ_ASSIGN_OR_RETURN(const Fp8SourcePlan fp8,
                        PlanInputFp8(FileOrder(orig_in.checkpoint), orig_config));
  struct Decoded {
    std::vector<uint8_t> bytes;
    TensorInfo info;
  };
  std::deque<Decoded> decoded_fp8;  // this iteration's; stable addresses
  auto reference = [&](const TensorInfo* t) -> absl::StatusOr<const TensorInfo*> {
    const auto it = t == nullptr ? fp8.weights.end() : fp8.weights.find(t->name);
    if (it == fp8.weights.end()) return t;
    Decoded& d = decoded_fp8.emplace_back();
    RTNQ_ASSIGN_OR_RETURN(d.bytes, DequantizedFp8Bytes(orig_in, *t, it->second, engine));
    d.info = TensorInfo{t->name, ElemType::kF32, t->shape, t->num_elements, 0, d.bytes};
    return &d.info;
  };

  std::set<std::string> consumed;  // stored tensors accounted for
  std::set<std::string> quantized_layers;
  double snr_sum = 0;
  report.worst_snr_db = std::numeric_limits<double>::infinity();
  for (const ManifestTensor& r : m.tensors) {
    TensorCheck c;
    c.name = r.name;
    c.config = r.config;
    quantized_layers.insert(r.layer);
    consumed.insert(r.name);
    decoded_fp8.clear();
    RTNQ_ASSIGN_OR_RETURN(const TensorInfo* w, reference(orig.Find(r.name)));
    if (w == nullptr) {
      c.problems.push_back("recorded as quantized but missing from the original");
    } else if (w->dtype != r.dtype || w->shape != r.shape ||
               r.shape.size() != (r.expert_layout.empty() ? 2u : 3u)) {
      c.problems.push_back(absl::StrCat("original is ", ElemTypeName(w->dtype), " ",
                                        ShapeString(w->shape), ", recorded ", ElemTypeName(r.dtype),
                                        " ", ShapeString(r.shape)));
    } else {
      std::vector<PackedTensor> stored;
      absl::StatusOr<DecodedValues> values =
          DecodeQuantized(*w, r, m, quant, engine, consumed, stored);
      if (!values.ok()) {
        c.problems.push_back(std::string(values.status().message()));
      } else if (values->decoded.size() != values->original.size()) {
        c.problems.push_back(absl::StrCat("decodes to ", values->decoded.size(),
                                          " values, expected ", values->original.size()));
      } else {
        const ErrorStats stats = CompareFloats(values->original, values->decoded);
        c.snr_db = stats.snr_db;
        c.mse = stats.mse;
        snr_sum += stats.snr_db;
        if (stats.snr_db < report.worst_snr_db || report.worst.empty()) {
          report.worst_snr_db = stats.snr_db;
          report.worst = r.name;
        }
        if (stats.snr_db < options.min_snr_db) {
          c.problems.push_back(
              absl::StrFormat("SNR %.2f dB is below %.2f dB", stats.snr_db, options.min_snr_db));
        }
        if (options.exact) {
          int64_t differing = 0;
          const std::string p = CompareFresh(*w, r, m, stored, engine, &differing);
          if (!p.empty()) {
            c.problems.push_back(p);
          } else {
            c.exact = differing == 0 ? "exact" : absl::StrCat(differing, " bytes differ");
            if (differing != 0) {
              c.problems.push_back(
                  absl::StrCat(differing, " stored bytes differ from a fresh quantization"));
            }
          }
        }
      }
    }
    for (const std::string& p : c.problems)
      report.problems.push_back(absl::StrCat(c.name, ": ", p));
    report.quantized.push_back(std::move(c));
  }
  if (!report.quantized.empty()) snr_sum /= static_cast<double>(report.quantized.size());
  report.snr_mean_db = snr_sum;

  std::map<std::string, const ManifestTensor*> stacked;  // stacked experts, for their biases
  for (const ManifestTensor& r : m.tensors) {
    if (!r.expert_layout.empty()) stacked[r.name] = &r;
  }
  // Everything else must be the original's; GPTQ and AWQ store a quantized layer's bias as F16.
  for (const TensorInfo* orig_t : FileOrder(orig)) {
    if (consumed.count(orig_t->name) != 0 || fp8.consumed.count(orig_t->name) != 0) continue;
    consumed.insert(orig_t->name);
    decoded_fp8.clear();
    RTNQ_ASSIGN_OR_RETURN(const TensorInfo* t, reference(orig_t));
    if (const auto owner = stacked.find(StackedBiasOwner(t->name, t->shape));
        owner != stacked.end() && m.format != OutputLayout::kFake) {
      // Split like its weight into one bias per expert weight.
      const std::string problem = CheckSplitBias(*t, *owner->second, m.format, quant, consumed);
      if (problem.empty()) {
        ++report.copied_identical;
      } else {
        report.problems.push_back(absl::StrCat(t->name, ": ", problem));
      }
      continue;
    }
    const TensorInfo* s = quant.Find(t->name);
    const bool f16_bias = HalfBias(m.format) && t->name.size() > 5 &&
                          t->name.compare(t->name.size() - 5, 5, ".bias") == 0 &&
                          quantized_layers.count(t->name.substr(0, t->name.size() - 5)) != 0 &&
                          IsQuantizableFloat(t->dtype);
    const ElemType want = f16_bias ? ElemType::kF16 : t->dtype;
    std::string problem;
    if (s == nullptr) {
      problem = "missing from the quantized checkpoint";
    } else if (s->dtype != want || s->shape != t->shape) {
      problem = absl::StrCat("changed from ", ElemTypeName(want), " ", ShapeString(t->shape),
                             " to ", ElemTypeName(s->dtype), " ", ShapeString(s->shape));
    } else if (f16_bias) {
      absl::StatusOr<std::vector<uint8_t>> want_bytes = GptqBiasBytes(*t);
      if (!want_bytes.ok()) {
        problem = std::string(want_bytes.status().message());
      } else if (!std::equal(s->data.begin(), s->data.end(), want_bytes->begin(),
                             want_bytes->end())) {
        problem = "bytes differ from the original";
      }
    } else if (!std::equal(s->data.begin(), s->data.end(), t->data.begin(), t->data.end())) {
      problem = "bytes differ from the original";
    }
    if (problem.empty()) {
      ++report.copied_identical;
    } else {
      report.problems.push_back(absl::StrCat(t->name, ": ", problem));
    }
  }
  for (const std::string& name : quant.names()) {
    if (consumed.count(name) == 0) {
      report.problems.push_back(
          absl::StrCat(name, ": unexpected tensor in the quantized checkpoint"));
    }
  }
  return report;
}

}  // namespace rtnq::client
