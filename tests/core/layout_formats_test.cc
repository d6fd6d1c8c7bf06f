// The compressed-tensors pack-quantized and AWQ GEMM layouts: bytes of small cases worked out by
// hand from the format definitions, round trips through real quantization for every supported
// width, scheme, group size and scale dtype, identical bytes for any thread count, and the rules
// each layout refuses with a message naming the tensor. (tests/core/layout_reader_test.py reads
// the same layouts with numpy, independently of this code.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/engine.h"
#include "core/layout/awq.h"
#include "core/layout/compressed_tensors.h"
#include "core/layout/pack_bits.h"
#include "core/quantize.h"
#include "tests/testing/quant_testing.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IntConfig;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::RandomWeights;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kLayer[] = "model.layers.0.mlp.down_proj";

const Engine& SerialEngine() {
  static const Engine* e = Engine::Create({.threads = 1, .kernels = ""})->release();
  return *e;
}

const Engine& ParallelEngine() {
  static const Engine* e = Engine::Create({.threads = 3, .kernels = ""})->release();
  return *e;
}

// Random weights [rows, cols] in `dtype`, quantized with `cfg` (codes and fake-quant values).
QuantizedTensor Quantize(const QuantConfig& cfg, int64_t rows, int64_t cols, ElemType dtype,
                         uint32_t seed) {
  const std::vector<uint8_t> bytes = RandomWeights(rows, cols, dtype, seed, 0.05f, 7);
  QuantizeOptions qo;
  qo.codes = true;
  qo.fake_quant = true;
  absl::StatusOr<QuantizedTensor> q =
      QuantizeTensor(TensorInput{std::string(kLayer) + ".weight", dtype, {rows, cols}, bytes}, cfg,
                     qo, SerialEngine());
  EXPECT_THAT(q.status(), IsOk());
  return *std::move(q);
}

std::vector<uint32_t> Words(const PackedTensor& t) {
  std::vector<uint32_t> w(t.data.size() / 4);
  std::memcpy(w.data(), t.data.data(), t.data.size());
  return w;
}

// A hand-made QuantizedTensor: the given codes, scales 1 and the given zero points.
QuantizedTensor Handmade(const QuantConfig& cfg, int64_t rows, int64_t cols,
                         const std::vector<int>& codes, const std::vector<int32_t>& zeros) {
  QuantizedTensor q = packing::UnpackedHeader(kLayer, ElemType::kF32, cfg, rows, cols,
                                              cfg.group_size == -1 ? cols : cfg.group_size);
  for (int c : codes) q.codes.push_back(static_cast<uint8_t>(c));
  q.scales.assign(rows * (cols / q.group_size), 1.0f);
  q.zeros = zeros;
  return q;
}

// ---- compressed-tensors -----------------------------------------------------------------------

TEST(CompressedTensorsTest, KnownBytesFromTheFormatDefinition) {
  // 4-bit sym, one row of 8 codes -8..-1 then 9 codes 0..7, 0: stored value code + 8, element 0
  // in the lowest bits; the tail word is zero-padded.
  std::vector<int> codes;
  for (int c = -8; c < 8; ++c) codes.push_back(c);
  codes.push_back(0);
  QuantizedTensor q = Handmade(IntConfig(4, Scheme::kSym, -1), 1, 17, codes, {});
  absl::StatusOr<std::vector<PackedTensor>> out = PackCompressedTensors(q, kLayer);
  ASSERT_THAT(out.status(), IsOk());
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0].name, std::string(kLayer) + ".weight_packed");
  EXPECT_THAT((*out)[0].shape, ElementsAre(1, 3));
  EXPECT_THAT(Words((*out)[0]), ElementsAre(0x76543210u, 0xFEDCBA98u, 0x00000008u));
  EXPECT_EQ((*out)[1].name, std::string(kLayer) + ".weight_scale");
  EXPECT_EQ((*out)[1].dtype, ElemType::kF32);
  EXPECT_THAT((*out)[1].shape, ElementsAre(1, 1));
  EXPECT_EQ((*out)[2].name, std::string(kLayer) + ".weight_shape");
  EXPECT_EQ((*out)[2].dtype, ElemType::kI64);
  std::vector<int64_t> shape(2);
  std::memcpy(shape.data(), (*out)[2].data.data(), 16);
  EXPECT_THAT(shape, ElementsAre(1, 17));

  // 8-bit asym, 9 rows x 4 columns, group 2: codes stored as they are (rtnq's unsigned asym
  // code is compressed-tensors' signed code + 128); zero points [9, 2] packed along the rows:
  // word [r/4, g] holds row r at bits 8*(r%4).
  std::vector<int> codes8;
  for (int i = 0; i < 36; ++i) codes8.push_back(200 + i % 50);
  std::vector<int32_t> zeros;
  for (int r = 0; r < 9; ++r) {
    for (int g = 0; g < 2; ++g) zeros.push_back(16 * r + g);
  }
  out =
      PackCompressedTensors(Handmade(IntConfig(8, Scheme::kAsym, 2), 9, 4, codes8, zeros), kLayer);
  ASSERT_THAT(out.status(), IsOk());
  ASSERT_EQ(out->size(), 4u);
  EXPECT_THAT((*out)[0].shape, ElementsAre(9, 1));
  EXPECT_EQ(Words((*out)[0])[0], 0xCBCAC9C8u);  // codes 200..203 of row 0
  EXPECT_EQ((*out)[3].name, std::string(kLayer) + ".weight_zero_point");
  EXPECT_THAT((*out)[3].shape, ElementsAre(3, 2));
  EXPECT_THAT(Words((*out)[3]),
              ElementsAre(0x30201000u, 0x31211101u, 0x70605040u, 0x71615141u, 0x80u, 0x81u));
}

struct CtCase {
  int bits;
  Scheme scheme;
  int64_t group_size;
  int64_t rows;
  int64_t cols;
  ElemType dtype;
};

TEST(CompressedTensorsTest, RoundTripsRealQuantizationAndDequantizesToTheFakeQuantValues) {
  std::vector<CtCase> cases;
  for (int bits : {2, 4, 8}) {
    for (Scheme scheme : {Scheme::kSym, Scheme::kAsym}) {
      for (ElemType dtype : {ElemType::kF32, ElemType::kF16, ElemType::kBF16}) {
        cases.push_back({bits, scheme, 32, 24, 96, dtype});
        cases.push_back({bits, scheme, -1, 17, 33, dtype});  // per channel, a tail word
        cases.push_back({bits, scheme, 128, 1, 128, dtype});
        cases.push_back({bits, scheme, 3, 5, 9, dtype});  // groups of 3, rows not a multiple of 8
      }
    }
  }
  uint32_t seed = 1;
  for (const CtCase& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << c.bits << "-bit " << SchemeName(c.scheme) << " g" << c.group_size << " ["
                 << c.rows << ", " << c.cols << "] " << ElemTypeName(c.dtype));
    const QuantConfig cfg = IntConfig(c.bits, c.scheme, c.group_size);
    const QuantizedTensor q = Quantize(cfg, c.rows, c.cols, c.dtype, seed++);
    absl::StatusOr<std::vector<PackedTensor>> serial = PackCompressedTensors(q, kLayer);
    ASSERT_THAT(serial.status(), IsOk());
    absl::StatusOr<std::vector<PackedTensor>> parallel =
        PackCompressedTensors(q, kLayer, &ParallelEngine());
    ASSERT_THAT(parallel.status(), IsOk());
    absl::StatusOr<std::vector<TensorSpec>> specs =
        PlanCompressedTensors(kLayer, cfg, c.dtype, c.rows, c.cols);
    ASSERT_THAT(specs.status(), IsOk());
    ASSERT_EQ(serial->size(), specs->size());
    for (size_t i = 0; i < specs->size(); ++i) {
      EXPECT_EQ((*serial)[i].name, (*specs)[i].name);
      EXPECT_EQ((*serial)[i].dtype, (*specs)[i].dtype);
      EXPECT_EQ((*serial)[i].shape, (*specs)[i].shape);
      EXPECT_EQ((*serial)[i].data, (*parallel)[i].data) << (*specs)[i].name;
    }
    absl::StatusOr<QuantizedTensor> back = UnpackCompressedTensors(*serial, kLayer, cfg);
    ASSERT_THAT(back.status(), IsOk());
    EXPECT_EQ(back->codes, q.codes);
    EXPECT_EQ(back->zeros, q.zeros);
    absl::StatusOr<std::vector<float>> want = DequantizeCodes(q, SerialEngine());
    absl::StatusOr<std::vector<float>> got = DequantizeCodes(*back, SerialEngine());
    ASSERT_THAT(want.status(), IsOk());
    ASSERT_THAT(got.status(), IsOk());
    if (c.dtype == ElemType::kF32) {
      EXPECT_EQ(back->scales, q.scales);
      EXPECT_EQ(*got, *want);  // float32 scales: the fake-quant values exactly
    } else {
      // Narrower scales are the float32 ones rounded to nearest even.
      for (size_t i = 0; i < q.scales.size(); ++i) {
        const float r = c.dtype == ElemType::kF16 ? HalfToFloat(FloatToHalf(q.scales[i]))
                                                  : Bf16ToFloat(FloatToBf16(q.scales[i]));
        ASSERT_EQ(back->scales[i], r) << "scale " << i;
      }
    }
  }
}

TEST(CompressedTensorsTest, RefusesWhatItCannotStoreNamingTheTensorAndRule) {
  const auto error = [](const QuantConfig& cfg, int64_t out, int64_t in) {
    return CheckCompressedTensorsCompatible(kLayer, cfg, out, in);
  };
  EXPECT_THAT(error(IntConfig(4, Scheme::kAsym, 32), 8, 64), IsOk());
  for (int bits : {3, 5, 6, 7}) {
    EXPECT_THAT(error(IntConfig(bits, Scheme::kSym, 32), 8, 64),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(kLayer), HasSubstr("bits 2, 4 or 8 only"),
                               HasSubstr("compressed-tensors 0.18 changed"))));
  }
  EXPECT_THAT(error(IntConfig(1, Scheme::kAsym, 32), 8, 64),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("supports bits 2, 4 or 8")));
  QuantConfig nf4 = IntConfig(4, Scheme::kSym, 32);
  nf4.dtype = QuantDtype::kNf4;
  EXPECT_THAT(error(nf4, 8, 64),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(kLayer), HasSubstr("needs dtype int, got nf4"))));
  QuantConfig dim0 = IntConfig(4, Scheme::kSym, 32);
  dim0.group_dim = 0;
  EXPECT_THAT(error(dim0, 8, 64),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs group_dim 1, got 0")));
  QuantConfig dq = IntConfig(4, Scheme::kAsym, 32);
  dq.double_quant_dtype = QuantDtype::kInt;
  EXPECT_THAT(error(dq, 8, 64), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("cannot store double-quantized scales")));
  // Loaders do not shrink a group larger than the row, and need whole groups.
  EXPECT_THAT(error(IntConfig(4, Scheme::kAsym, 128), 8, 64),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("needs in_features (64) divisible by the group size (128)")));
  EXPECT_THAT(error(IntConfig(4, Scheme::kAsym, 32), 8, 48),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("divisible by the group")));
}

TEST(CompressedTensorsTest, UnpackNamesMissingAndMisshapenTensors) {
  const QuantConfig cfg = IntConfig(4, Scheme::kAsym, 32);
  const QuantizedTensor q = Quantize(cfg, 8, 64, ElemType::kBF16, 7);
  absl::StatusOr<std::vector<PackedTensor>> out = PackCompressedTensors(q, kLayer);
  ASSERT_THAT(out.status(), IsOk());
  std::vector<PackedTensor> missing = *out;
  missing.pop_back();
  EXPECT_THAT(UnpackCompressedTensors(missing, kLayer, cfg).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight_zero_point")));
  std::vector<PackedTensor> bad = *out;
  bad[0].shape = {8, 4};
  bad[0].data.resize(8 * 4 * 4);
  EXPECT_THAT(UnpackCompressedTensors(bad, kLayer, cfg).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("weight_packed: expected shape [8, 8], got [8, 4]")));
  bad = *out;
  const int64_t neg[2] = {-8, 64};
  std::memcpy(bad[2].data.data(), neg, 16);
  EXPECT_THAT(UnpackCompressedTensors(bad, kLayer, cfg).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a weight shape")));
  // A config other than the one written: the zero-point tensor is unexpected in shape or absent.
  EXPECT_THAT(UnpackCompressedTensors(*out, kLayer, IntConfig(4, Scheme::kAsym, 16)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight_scale")));
}

// ---- AWQ -------------------------------------------------------------------------------------

TEST(AwqTest, KnownBytesFromTheFormatDefinition) {
  // 8 outputs x 2 inputs, one group: output o has code o at input 0 and 15 - o at input 1.
  // AutoAWQ's order puts outputs 0,2,4,6 in the low nibbles and 1,3,5,7 in the high ones.
  std::vector<int> codes;
  for (int o = 0; o < 8; ++o) {
    codes.push_back(o);
    codes.push_back(15 - o);
  }
  std::vector<int32_t> zeros = {8, 9, 10, 11, 12, 13, 14, 15};
  absl::StatusOr<std::vector<PackedTensor>> out =
      PackAwq(Handmade(IntConfig(4, Scheme::kAsym, -1), 8, 2, codes, zeros), kLayer);
  ASSERT_THAT(out.status(), IsOk());
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0].name, std::string(kLayer) + ".qweight");
  EXPECT_THAT((*out)[0].shape, ElementsAre(2, 1));
  EXPECT_THAT(Words((*out)[0]), ElementsAre(0x75316420u, 0x8ACE9BDFu));
  EXPECT_EQ((*out)[1].name, std::string(kLayer) + ".qzeros");
  EXPECT_THAT((*out)[1].shape, ElementsAre(1, 1));
  EXPECT_THAT(Words((*out)[1]), ElementsAre(0xFDB9ECA8u));
  EXPECT_EQ((*out)[2].name, std::string(kLayer) + ".scales");
  EXPECT_EQ((*out)[2].dtype, ElemType::kF16);
  EXPECT_THAT((*out)[2].shape, ElementsAre(1, 8));
}

TEST(AwqTest, RoundTripsRealQuantization) {
  uint32_t seed = 100;
  for (int64_t gs : {int64_t{-1}, int64_t{32}, int64_t{128}}) {
    for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{8, 128},
                                     {24, 256},
                                     {136, 384},  // more than one block of 128 outputs
                                     {8, 32}}) {
      if (gs > cols) continue;
      SCOPED_TRACE(::testing::Message() << "g" << gs << " [" << rows << ", " << cols << "]");
      const QuantConfig cfg = IntConfig(4, Scheme::kAsym, gs);
      const QuantizedTensor q = Quantize(cfg, rows, cols, ElemType::kBF16, seed++);
      absl::StatusOr<std::vector<PackedTensor>> serial = PackAwq(q, kLayer);
      ASSERT_THAT(serial.status(), IsOk());
      absl::StatusOr<std::vector<PackedTensor>> parallel = PackAwq(q, kLayer, &ParallelEngine());
      ASSERT_THAT(parallel.status(), IsOk());
      absl::StatusOr<std::vector<TensorSpec>> specs = PlanAwq(kLayer, cfg, rows, cols);
      ASSERT_THAT(specs.status(), IsOk());
      for (size_t i = 0; i < specs->size(); ++i) {
        EXPECT_EQ((*serial)[i].name, (*specs)[i].name);
        EXPECT_EQ((*serial)[i].shape, (*specs)[i].shape);
        EXPECT_EQ((*serial)[i].data, (*parallel)[i].data) << (*specs)[i].name;
      }
      absl::StatusOr<QuantizedTensor> back = UnpackAwq(*serial, kLayer, gs);
      ASSERT_THAT(back.status(), IsOk());
      EXPECT_EQ(back->codes, q.codes);
      EXPECT_EQ(back->zeros, q.zeros);
      for (size_t i = 0; i < q.scales.size(); ++i) {
        ASSERT_EQ(back->scales[i], HalfToFloat(FloatToHalf(q.scales[i]))) << "scale " << i;
      }
    }
  }
}

TEST(AwqTest, RefusesWhatItCannotStoreNamingTheTensorAndRule) {
  const auto error = [](const QuantConfig& cfg, int64_t out, int64_t in) {
    return CheckAwqCompatible(kLayer, cfg, out, in);
  };
  EXPECT_THAT(error(IntConfig(4, Scheme::kAsym, 128), 64, 256), IsOk());
  EXPECT_THAT(error(IntConfig(4, Scheme::kSym, 128), 64, 256),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(kLayer), HasSubstr("4-bit asym weights only, got 4-bit sym"),
                             HasSubstr("gptq format"), HasSubstr("compressed-tensors format"))));
  EXPECT_THAT(error(IntConfig(8, Scheme::kAsym, 128), 64, 256),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("4-bit asym weights only, got 8-bit asym")));
  EXPECT_THAT(error(IntConfig(4, Scheme::kAsym, 128), 60, 256),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("needs out_features (60) divisible by 8")));
  EXPECT_THAT(error(IntConfig(4, Scheme::kAsym, 128), 64, 64),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("needs in_features (64) divisible by the group size (128)")));
  QuantConfig fp4 = IntConfig(4, Scheme::kAsym, 32);
  fp4.dtype = QuantDtype::kFp4E2M1;
  EXPECT_THAT(error(fp4, 64, 256), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("needs dtype int, got fp4_e2m1")));
  EXPECT_THAT(UnpackAwq({}, kLayer, 128).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing tensor model.layers.0.mlp.down_proj.qweight")));
}

}  // namespace
}  // namespace rtnq
