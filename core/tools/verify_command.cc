#include "core/tools/verify_command.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "core/tools/manifest.h"

namespace rtnq::local {
namespace {

// The manifest quantize recorded, or one rebuilt from the options for checkpoints without it.
absl::StatusOr<Manifest> LoadManifest(const VerifyCommandOptions& o, const ShardedCheckpoint& orig,
                                      const ShardedCheckpoint& quant) {
  for (const SafetensorsFile& shard : quant.shards()) {
    const auto it = shard.metadata().find(kManifestKey);
    if (it == shard.metadata().end()) continue;
    ASSIGN_OR_RETURN(Manifest m,
                     ManifestFromJson(it->second, absl::StrCat(shard.path(), " __metadata__[\"",
                                                               kManifestKey, "\"]")));
    if (o.format.has_value() && *o.format != m.format) {
      return absl::InvalidArgumentError(absl::StrCat("--format ", OutputFormatName(*o.format),
                                                     " but ", shard.path(), " records format ",
                                                     OutputFormatName(m.format)));
    }
    return m;
  }
  if (!o.format.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.quantized, " has no \"", kManifestKey,
                     "\" metadata; pass --format and the --config/--preset it was quantized with"));
  }
  ASSIGN_OR_RETURN(const WeightConfigResolver resolver, LoadSessionConfig(o.config_path, o.preset));
  Manifest m;
  m.format = *o.format;
  bool any_asym = false;
  for (const TensorInfo* t : FileOrder(orig)) {
    const TensorDecision d = DecideTensor(t->name, t->dtype, t->shape, resolver);
    if (d.action == TensorAction::kSkip) m.skipped[t->name] = d.reason;
    if (d.action != TensorAction::kQuantize) continue;
    any_asym |= d.resolved.config.scheme == Scheme::kAsym;
    m.tensors.push_back(ManifestTensor{t->name, LayerName(t->name), t->dtype, t->shape,
                                       d.resolved.config, DecidedByText(d.resolved)});
  }
  m.gptq_format = o.gptq_format.value_or(DefaultGptqFormat(any_asym));
  return m;
}

PackedTensor CopyOf(const TensorInfo& t) {
  return PackedTensor{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.data.begin(), t.data.end())};
}

// Names of the stored tensors a quantized weight became.
std::vector<std::string> StoredNames(const ManifestTensor& r, OutputFormat format) {
  switch (format) {
    case OutputFormat::kFake:
      return {r.name};
    case OutputFormat::kInc:
      return {r.layer + ".qweight", r.layer + ".scales", r.layer + ".qzeros"};
    case OutputFormat::kGptq:
      return {r.layer + ".qweight", r.layer + ".qzeros", r.layer + ".scales", r.layer + ".g_idx",
              r.layer + ".bias"};
  }
  return {};
}

// Float values the stored form of `r` decodes to, [rows, cols] row-major.
absl::StatusOr<std::vector<float>> Decode(const ManifestTensor& r, const Manifest& m,
                                          const std::vector<PackedTensor>& stored,
                                          const ShardedCheckpoint& quant, const Engine& engine) {
  const int64_t rows = r.shape[0], cols = r.shape[1];
  switch (m.format) {
    case OutputFormat::kFake: {
      const TensorInfo* t = quant.Find(r.name);
      if (t == nullptr) return absl::NotFoundError("missing from the quantized checkpoint");
      if (t->dtype != r.dtype || t->shape != r.shape) {
        return absl::InvalidArgumentError(
            absl::StrCat("stored as ", ElemTypeName(t->dtype), " ", ShapeString(t->shape),
                         ", expected ", ElemTypeName(r.dtype), " ", ShapeString(r.shape)));
      }
      return ToFloats(*t);
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

// Bytes that differ between `a` and the stored tensor, or an error for a dtype/shape mismatch.
absl::StatusOr<int64_t> DifferingBytes(const PackedTensor& a, const TensorInfo* stored) {
  if (stored == nullptr) return absl::NotFoundError(absl::StrCat(a.name, " is missing"));
  if (stored->dtype != a.dtype || stored->shape != a.shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        a.name, " is ", ElemTypeName(stored->dtype), " ", ShapeString(stored->shape),
        ", a fresh quantization gives ", ElemTypeName(a.dtype), " ", ShapeString(a.shape)));
  }
  int64_t diff = 0;
  for (size_t i = 0; i < a.data.size(); ++i) diff += a.data[i] != stored->data[i];
  return diff;
}

}  // namespace

absl::Status RunVerify(const VerifyCommandOptions& o, std::ostream& out) {
  ASSIGN_OR_RETURN(const std::unique_ptr<Engine> engine, Engine::Create(o.engine));
  ASSIGN_OR_RETURN(const InputCheckpoint orig_in, OpenInput(o.original));
  ASSIGN_OR_RETURN(const InputCheckpoint quant_in, OpenInput(o.quantized));
  const ShardedCheckpoint& orig = orig_in.checkpoint;
  const ShardedCheckpoint& quant = quant_in.checkpoint;
  ASSIGN_OR_RETURN(const Manifest m, LoadManifest(o, orig, quant));
  out << absl::StrFormat(
      "verify %s against %s: format %s%s, %d quantized tensors, min SNR %.1f dB%s\n", o.quantized,
      o.original, OutputFormatName(m.format),
      m.format == OutputFormat::kGptq
          ? absl::StrCat(" (checkpoint_format ", GptqFormatName(m.gptq_format), ")")
          : "",
      m.tensors.size(), o.min_snr_db, o.exact ? ", exact" : "");

  std::vector<std::string> problems;
  std::vector<std::string> pending;  // printed after the tensor's line
  auto problem = [&](const std::string& name, const std::string& what) {
    problems.push_back(absl::StrCat(name, ": ", what));
    pending.push_back(problems.back());
  };
  auto flush = [&] {
    for (const std::string& p : pending) out << "    FAIL " << p << "\n";
    pending.clear();
  };
  size_t width = 8, cfg_width = 8;  // column widths
  for (const ManifestTensor& r : m.tensors) {
    width = std::max(width, r.name.size());
    cfg_width = std::max(cfg_width, ConfigSummary(r.config).size());
  }
  width = std::min<size_t>(width, 56);

  std::set<std::string> consumed;         // stored tensors accounted for
  std::set<std::string> quantized_names;  // original tensors that were quantized
  double snr_sum = 0, worst = std::numeric_limits<double>::infinity();
  std::string worst_name;
  int checked = 0;
  auto check = [&](const ManifestTensor& r) -> absl::Status {
    quantized_names.insert(r.name);
    const TensorInfo* w = orig.Find(r.name);
    if (w == nullptr) {
      problem(r.name, "recorded as quantized but missing from the original");
      return absl::OkStatus();
    }
    if (w->dtype != r.dtype || w->shape != r.shape || r.shape.size() != 2) {
      problem(r.name,
              absl::StrCat("original is ", ElemTypeName(w->dtype), " ", ShapeString(w->shape),
                           ", recorded ", ElemTypeName(r.dtype), " ", ShapeString(r.shape)));
      return absl::OkStatus();
    }
    std::vector<PackedTensor> stored;
    for (const std::string& name : StoredNames(r, m.format)) {
      if (const TensorInfo* t = quant.Find(name); t != nullptr) {
        stored.push_back(CopyOf(*t));
        consumed.insert(name);
      }
    }
    absl::StatusOr<std::vector<float>> decoded = Decode(r, m, stored, quant, *engine);
    if (!decoded.ok()) {
      problem(r.name, std::string(decoded.status().message()));
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(const std::vector<float> ref, ToFloats(*w));
    if (decoded->size() != ref.size()) {
      problem(r.name,
              absl::StrCat("decodes to ", decoded->size(), " values, expected ", ref.size()));
      return absl::OkStatus();
    }
    const ErrorStats stats = CompareFloats(ref, *decoded);
    ++checked;
    snr_sum += stats.snr_db;
    if (stats.snr_db < worst || worst_name.empty()) {
      worst = stats.snr_db;
      worst_name = r.name;
    }

    // A GPTQ bias is stored as F16: close to the original, not equal.
    const TensorInfo* stored_bias =
        m.format == OutputFormat::kGptq ? quant.Find(r.layer + ".bias") : nullptr;
    const TensorInfo* orig_bias = stored_bias ? orig.Find(r.layer + ".bias") : nullptr;
    if (stored_bias != nullptr) {
      if (orig_bias == nullptr) {
        problem(stored_bias->name, "stored but the original has no bias");
      } else if (stored_bias->shape != orig_bias->shape) {
        problem(stored_bias->name, "shape differs from the original");
      } else {
        ASSIGN_OR_RETURN(const std::vector<float> a, ToFloats(*orig_bias));
        ASSIGN_OR_RETURN(const std::vector<float> b, ToFloats(*stored_bias));
        if (const double snr = CompareFloats(a, b).snr_db; snr < o.min_snr_db) {
          problem(stored_bias->name, absl::StrFormat("SNR %.2f dB against the original", snr));
        }
      }
    }

    std::string exact_text = "-";
    if (o.exact) {
      absl::StatusOr<TensorOutputs> fresh =
          QuantizeForOutput(*w, r.config, m.format, m.gptq_format, orig_bias, *engine);
      if (!fresh.ok()) {
        problem(r.name, absl::StrCat("requantizing: ", fresh.status().message()));
        return absl::OkStatus();
      }
      int64_t diff = 0, total = 0;
      bool shape_problem = false;
      for (const PackedTensor& p : fresh->tensors) {
        consumed.insert(p.name);
        absl::StatusOr<int64_t> d = DifferingBytes(p, quant.Find(p.name));
        if (!d.ok()) {
          problem(r.name, std::string(d.status().message()));
          shape_problem = true;
          return absl::OkStatus();
        }
        diff += *d;
        total += static_cast<int64_t>(p.data.size());
      }
      if (shape_problem) return absl::OkStatus();
      exact_text = diff == 0 ? "exact" : absl::StrCat(diff, " bytes differ");
      if (diff != 0) {
        problem(r.name, absl::StrCat(diff, " of ", total,
                                     " stored bytes differ from a fresh quantization"));
      }
    }
    if (stats.snr_db < o.min_snr_db) {
      problem(r.name, absl::StrFormat("SNR %.2f dB is below %.2f dB", stats.snr_db, o.min_snr_db));
    }
    out << absl::StrFormat("  %-*s  %-*s  SNR %6.2f dB  MSE %.3e  %-16s %s\n", width, r.name,
                           cfg_width, ConfigSummary(r.config), stats.snr_db, stats.mse, exact_text,
                           pending.empty() ? "ok" : "FAIL");
    return absl::OkStatus();
  };
  for (const ManifestTensor& r : m.tensors) {
    RETURN_IF_ERROR(check(r));
    flush();
  }

  // Everything else must have been copied unchanged.
  int copied = 0;
  for (const TensorInfo* t : FileOrder(orig)) {
    if (quantized_names.count(t->name) != 0 || consumed.count(t->name) != 0) continue;
    const TensorInfo* s = quant.Find(t->name);
    consumed.insert(t->name);
    if (s == nullptr) {
      problem(t->name, "missing from the quantized checkpoint");
    } else if (s->dtype != t->dtype || s->shape != t->shape) {
      problem(t->name,
              absl::StrCat("changed from ", ElemTypeName(t->dtype), " ", ShapeString(t->shape),
                           " to ", ElemTypeName(s->dtype), " ", ShapeString(s->shape)));
    } else if (!std::equal(s->data.begin(), s->data.end(), t->data.begin(), t->data.end())) {
      problem(t->name, "copied tensor's bytes differ from the original");
    } else {
      ++copied;
    }
  }
  for (const std::string& name : quant.names()) {
    if (consumed.count(name) == 0) problem(name, "unexpected tensor in the quantized checkpoint");
  }
  flush();

  if (checked > 0) {
    out << absl::StrFormat("SNR mean %.2f dB, worst %.2f dB (%s)\n", snr_sum / checked, worst,
                           worst_name);
  }
  out << absl::StrFormat("%d quantized tensors checked, %d copied tensors identical\n", checked,
                         copied);
  if (!problems.empty()) {
    out << "verify FAILED: " << problems.size() << " problem(s)\n";
    return absl::DataLossError(absl::StrCat("verification failed: ", problems.size(),
                                            " problem(s); first: ", problems.front()));
  }
  out << "verify OK\n";
  return absl::OkStatus();
}

}  // namespace rtnq::local
