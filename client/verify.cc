#include "client/verify.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/checkpoint_util.h"
#include "client/fp8_input.h"
#include "client/local_backend.h"
#include "core/status_macros.h"

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

// Names of the stored tensors a quantized weight became.
std::vector<std::string> StoredNames(const ManifestTensor& r, OutputFormat format) {
  switch (format) {
    case OutputFormat::kFake:
      return {r.name};
    case OutputFormat::kInc:
      return {r.layer + ".qweight", r.layer + ".scales", r.layer + ".qzeros"};
    case OutputFormat::kGptq:
      return {r.layer + ".qweight", r.layer + ".qzeros", r.layer + ".scales", r.layer + ".g_idx"};
  }
  return {};
}

// Float values the stored form of `r` decodes to, [rows, cols] row-major.
absl::StatusOr<std::vector<float>> Decode(const ManifestTensor& r, const Manifest& m,
                                          const std::vector<PackedTensor>& stored,
                                          const Engine& engine) {
  const int64_t rows = r.shape[0], cols = r.shape[1];
  switch (m.format) {
    case OutputFormat::kFake: {
      if (stored.empty()) return absl::NotFoundError("missing from the quantized checkpoint");
      const PackedTensor& t = stored[0];
      if (t.dtype != r.dtype || t.shape != r.shape) {
        return absl::InvalidArgumentError(
            absl::StrCat("stored as ", ElemTypeName(t.dtype), " ", ShapeString(t.shape),
                         ", expected ", ElemTypeName(r.dtype), " ", ShapeString(r.shape)));
      }
      TensorInfo view{t.name, t.dtype, t.shape, rows * cols, 0, t.data};
      return ToFloats(view);
    }
    case OutputFormat::kInc: {
      ASSIGN_OR_RETURN(QuantizedTensor q,
                       UnpackInc(stored, r.layer, r.config, rows, cols, m.compression_dim));
      q.name = r.name;
      return DequantizeCodes(q, engine);
    }
    case OutputFormat::kGptq: {
      GptqUnpackOptions uo;
      uo.bits = r.config.bits;
      uo.sym = r.config.scheme == Scheme::kSym;
      uo.format = m.gptq_format;
      uo.group_size = r.config.group_size;
      ASSIGN_OR_RETURN(const GptqUnpacked unpacked, UnpackGptq(stored, r.layer, uo));
      if (unpacked.q.rows != rows || unpacked.q.cols != cols) {
        return absl::InvalidArgumentError(absl::StrCat("packed as [", unpacked.q.rows, ", ",
                                                       unpacked.q.cols, "], expected ",
                                                       ShapeString(r.shape)));
      }
      return DequantizeGptq(stored, r.layer, r.config.bits, m.gptq_format);
    }
  }
  return absl::InternalError("unknown format");
}

// Requantizes the original and counts the stored bytes that differ; "" when all match.
std::string CompareFresh(const TensorInfo& w, const ManifestTensor& r, const Manifest& m,
                         const std::vector<PackedTensor>& stored, const Engine& engine,
                         int64_t* differing) {
  OutputLayoutOptions layout{LayoutOf(m.format), m.compression_dim, m.gptq_format};
  absl::StatusOr<LayoutOutputs> fresh =
      QuantizeToLayout(TensorInput{w.name, w.dtype, w.shape, w.data}, r.config, layout, engine);
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

}  // namespace

absl::StatusOr<VerifyReport> VerifyCheckpoint(const std::string& original,
                                              const std::string& quantized,
                                              const VerifyOptions& options, const Engine& engine) {
  ASSIGN_OR_RETURN(const InputCheckpoint orig_in, OpenInput(original));
  ASSIGN_OR_RETURN(const InputCheckpoint quant_in, OpenInput(quantized));
  const ShardedCheckpoint& orig = orig_in.checkpoint;
  const ShardedCheckpoint& quant = quant_in.checkpoint;
  VerifyReport report;
  ASSIGN_OR_RETURN(report.manifest, LoadManifest(quant, quantized));
  const Manifest& m = report.manifest;

  // FP8 sources were quantized (or written) as their dequantized float32 values, and their
  // scales left out: compare against those values.
  ASSIGN_OR_RETURN(const nlohmann::json orig_config, ReadInputConfig(original, orig_in));
  ASSIGN_OR_RETURN(const Fp8SourcePlan fp8, PlanInputFp8(orig_in, orig_config));
  struct Decoded {
    std::vector<uint8_t> bytes;
    TensorInfo info;
  };
  std::deque<Decoded> decoded_fp8;  // this iteration's; stable addresses
  auto reference = [&](const TensorInfo* t) -> absl::StatusOr<const TensorInfo*> {
    const auto it = t == nullptr ? fp8.weights.end() : fp8.weights.find(t->name);
    if (it == fp8.weights.end()) return t;
    Decoded& d = decoded_fp8.emplace_back();
    ASSIGN_OR_RETURN(d.bytes, DequantizedFp8Bytes(orig_in, *t, it->second, engine));
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
    ASSIGN_OR_RETURN(const TensorInfo* w, reference(orig.Find(r.name)));
    if (w == nullptr) {
      c.problems.push_back("recorded as quantized but missing from the original");
    } else if (w->dtype != r.dtype || w->shape != r.shape || r.shape.size() != 2) {
      c.problems.push_back(absl::StrCat("original is ", ElemTypeName(w->dtype), " ",
                                        ShapeString(w->shape), ", recorded ", ElemTypeName(r.dtype),
                                        " ", ShapeString(r.shape)));
    } else {
      std::vector<PackedTensor> stored;
      for (const std::string& name : StoredNames(r, m.format)) {
        if (const TensorInfo* t = quant.Find(name); t != nullptr) {
          stored.push_back(PackedTensor{t->name, t->dtype, t->shape,
                                        std::vector<uint8_t>(t->data.begin(), t->data.end())});
          consumed.insert(name);
        }
      }
      absl::StatusOr<std::vector<float>> decoded = Decode(r, m, stored, engine);
      absl::StatusOr<std::vector<float>> ref = ToFloats(*w);
      if (!decoded.ok()) {
        c.problems.push_back(std::string(decoded.status().message()));
      } else if (!ref.ok()) {
        c.problems.push_back(std::string(ref.status().message()));
      } else if (decoded->size() != ref->size()) {
        c.problems.push_back(
            absl::StrCat("decodes to ", decoded->size(), " values, expected ", ref->size()));
      } else {
        const ErrorStats stats = CompareFloats(*ref, *decoded);
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

  // Everything else must be the original's; GPTQ stores a quantized layer's bias as float16.
  for (const TensorInfo* orig_t : FileOrder(orig)) {
    if (consumed.count(orig_t->name) != 0 || fp8.consumed.count(orig_t->name) != 0) continue;
    consumed.insert(orig_t->name);
    decoded_fp8.clear();
    ASSIGN_OR_RETURN(const TensorInfo* t, reference(orig_t));
    const TensorInfo* s = quant.Find(t->name);
    const bool f16_bias = m.format == OutputFormat::kGptq && t->name.size() > 5 &&
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
