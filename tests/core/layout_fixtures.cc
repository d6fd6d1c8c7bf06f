// `layout_fixtures DIR`: writes one safetensors file per case into DIR for the independent
// numpy reader (tests/core/layout_reader_test.py). Each file holds a layer packed in the
// compressed-tensors or AWQ layout and, as plain tensors, what rtnq computed: `ref.codes` (I16,
// rtnq's codes: signed for sym, unsigned for asym), `ref.scales` (F32), `ref.zeros` (I32, asym)
// and `ref.dequant` (F32, the fake-quantized values before any cast). The case's config is in
// the file's metadata. The reader unpacks the layout from its definition and checks it against
// these.
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/io/safetensors_writer.h"
#include "core/layout/awq.h"
#include "core/layout/compressed_tensors.h"
#include "core/quantize.h"
#include "core/status_macros.h"
#include "tests/testing/quant_testing.h"

namespace rtnq {
namespace {

constexpr char kLayer[] = "model.layers.3.self_attn.o_proj";

struct Case {
  std::string format;  // "compressed-tensors" or "awq"
  int bits;
  Scheme scheme;
  int64_t group_size;
  int64_t rows;
  int64_t cols;
  ElemType dtype;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (int bits : {2, 4, 8}) {
    for (Scheme s : {Scheme::kSym, Scheme::kAsym}) {
      for (ElemType d : {ElemType::kF32, ElemType::kF16, ElemType::kBF16}) {
        cases.push_back({"compressed-tensors", bits, s, 32, 40, 96, d});
        cases.push_back({"compressed-tensors", bits, s, -1, 13, 37, d});
      }
    }
  }
  for (int64_t gs : {int64_t{-1}, int64_t{32}, int64_t{64}}) {
    for (ElemType d : {ElemType::kF32, ElemType::kBF16}) {
      cases.push_back({"awq", 4, Scheme::kAsym, gs, 48, 128, d});
    }
  }
  return cases;
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

absl::Status WriteCase(const std::string& path, const Case& c, uint32_t seed,
                       const Engine& engine) {
  const std::vector<uint8_t> weight =
      testing::RandomWeights(c.rows, c.cols, c.dtype, seed, 0.03f, 5);
  QuantConfig cfg;
  cfg.bits = c.bits;
  cfg.scheme = c.scheme;
  cfg.group_size = c.group_size;
  QuantizeOptions qo;
  qo.codes = true;
  qo.fake_quant = false;
  RTNQ_ASSIGN_OR_RETURN(
      const QuantizedTensor q,
      QuantizeTensor(
          TensorInput{std::string(kLayer) + ".weight", c.dtype, {c.rows, c.cols}, weight}, cfg, qo,
          engine));
  RTNQ_ASSIGN_OR_RETURN(std::vector<float> dequant, DequantizeCodes(q, engine));
  RTNQ_ASSIGN_OR_RETURN(
      std::vector<PackedTensor> packed,
      c.format == "awq" ? PackAwq(q, kLayer, &engine) : PackCompressedTensors(q, kLayer, &engine));
  const bool signed_codes = c.scheme == Scheme::kSym;
  std::vector<int16_t> codes(q.codes.size());
  for (size_t i = 0; i < codes.size(); ++i) {
    codes[i] = signed_codes ? static_cast<int8_t>(q.codes[i]) : q.codes[i];
  }
  packed.push_back({"ref.codes", ElemType::kI16, {c.rows, c.cols}, Bytes(codes)});
  packed.push_back(
      {"ref.scales", ElemType::kF32, {q.scale_rows(), q.scale_cols()}, Bytes(q.scales)});
  if (!q.zeros.empty()) {
    packed.push_back(
        {"ref.zeros", ElemType::kI32, {q.scale_rows(), q.scale_cols()}, Bytes(q.zeros)});
  }
  packed.push_back({"ref.dequant", ElemType::kF32, {c.rows, c.cols}, Bytes(dequant)});

  std::vector<TensorSpec> specs;
  for (const PackedTensor& t : packed) specs.push_back({t.name, t.dtype, t.shape});
  const std::map<std::string, std::string> metadata = {{"format", c.format},
                                                       {"layer", kLayer},
                                                       {"bits", absl::StrCat(c.bits)},
                                                       {"scheme", SchemeName(c.scheme)},
                                                       {"group_size", absl::StrCat(c.group_size)},
                                                       {"weight_dtype", ElemTypeName(c.dtype)}};
  RTNQ_ASSIGN_OR_RETURN(SafetensorsWriter w, SafetensorsWriter::Create(path, specs, metadata));
  for (const PackedTensor& t : packed) RTNQ_RETURN_IF_ERROR(w.WriteTensor(t.name, t.data));
  return w.Finish();
}

}  // namespace
}  // namespace rtnq

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: layout_fixtures DIR\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<rtnq::Engine>> engine =
      rtnq::Engine::Create({.threads = 2, .kernels = ""});
  if (!engine.ok()) {
    std::cerr << engine.status() << "\n";
    return 1;
  }
  const std::vector<rtnq::Case> cases = rtnq::Cases();
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = absl::StrCat(argv[1], "/case", i, ".safetensors");
    if (absl::Status s = rtnq::WriteCase(path, cases[i], 1000 + static_cast<uint32_t>(i), **engine);
        !s.ok()) {
      std::cerr << path << ": " << s << "\n";
      return 1;
    }
  }
  std::cout << cases.size() << " cases\n";
  return 0;
}
