#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/engine.h"
#include "core/kernels/kernel_params.h"
#include "core/layout/gptq.h"
#include "core/layout/gptq_config.h"
#include "core/layout/inc.h"
#include "tests/testing/quant_testing.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IntConfig;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr char kName[] = "model.layers.0.mlp.down_proj";

// A QuantizedTensor with the given codes (as ints) and all-1 scales / given zeros.
QuantizedTensor MakeQ(const QuantConfig& cfg, int64_t rows, int64_t cols,
                      const std::vector<int>& codes) {
  QuantizedTensor q;
  q.name = kName;
  q.quantized = true;
  q.config = cfg;
  q.rows = rows;
  q.cols = cols;
  q.shape = {rows, cols};
  q.group_size = EffectiveGroupSize(cfg.group_size, cfg.group_dim == 1 ? cols : rows);
  for (int c : codes) q.codes.push_back(static_cast<uint8_t>(c));
  q.scales.assign(q.scale_rows() * q.scale_cols(), 1.0f);
  if (cfg.dtype == QuantDtype::kInt && cfg.scheme == Scheme::kAsym) {
    q.zeros.assign(q.scales.size(), 0);
  }
  return q;
}

// Codes range of a config, as QuantizedTensor stores them.
std::pair<int, int> CodeRange(const QuantConfig& cfg) {
  if (cfg.is_float4()) return {-8, 7};
  if (cfg.scheme == Scheme::kAsym) return {0, (1 << cfg.bits) - 1};
  if (cfg.bits == 1) return {0, 1};
  return {-(1 << (cfg.bits - 1)), (1 << (cfg.bits - 1)) - 1};
}

QuantizedTensor RandomQ(const QuantConfig& cfg, int64_t rows, int64_t cols, uint32_t seed,
                        int min_zero = 0) {
  std::mt19937 rng(seed);
  const auto [lo, hi] = CodeRange(cfg);
  std::uniform_int_distribution<int> code(lo, hi);
  std::vector<int> codes(rows * cols);
  for (int& c : codes) c = code(rng);
  QuantizedTensor q = MakeQ(cfg, rows, cols, codes);
  std::uniform_real_distribution<float> scale(-2.0f, 2.0f);
  for (float& s : q.scales) s = scale(rng);
  std::uniform_int_distribution<int> zero(min_zero, (1 << cfg.bits) - 1);
  for (int32_t& z : q.zeros) z = zero(rng);
  return q;
}

// Option builders (designated initializers that skip members trip -Wmissing-field-initializers).
GptqPackOptions WithFormat(GptqFormat f) {
  GptqPackOptions o;
  o.format = f;
  return o;
}
GptqPackOptions WithPerm(std::vector<int32_t> perm, std::optional<GptqFormat> f = std::nullopt) {
  GptqPackOptions o;
  o.perm = std::move(perm);
  o.format = f;
  return o;
}
GptqPackOptions WithBias(const TensorInput* bias) {
  GptqPackOptions o;
  o.bias = bias;
  return o;
}
GptqUnpackOptions Unpack(int bits, bool sym, GptqFormat f, int64_t gs,
                         std::vector<int32_t> perm = {}) {
  GptqUnpackOptions o;
  o.bits = bits;
  o.sym = sym;
  o.format = f;
  o.group_size = gs;
  o.perm = std::move(perm);
  return o;
}

const PackedTensor& Get(const std::vector<PackedTensor>& ts, const std::string& suffix) {
  for (const PackedTensor& t : ts) {
    if (t.name == std::string(kName) + "." + suffix) return t;
  }
  ADD_FAILURE() << "no tensor " << suffix;
  static const PackedTensor kEmpty;
  return kEmpty;
}

PackedTensor* Mutable(std::vector<PackedTensor>& ts, const std::string& suffix) {
  for (PackedTensor& t : ts) {
    if (t.name == std::string(kName) + "." + suffix) return &t;
  }
  return nullptr;
}

template <typename T>
std::vector<T> Values(const PackedTensor& t) {
  std::vector<T> v(t.data.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

std::vector<uint32_t> Words(const PackedTensor& t) { return Values<uint32_t>(t); }

void ExpectSameQuantized(const QuantizedTensor& a, const QuantizedTensor& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.group_size, b.group_size);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.zeros, b.zeros);
}

// ---------------------------------------------------------------------------------------------
// INC layout: hand-computed words
// ---------------------------------------------------------------------------------------------

TEST(PackIncTest, FourBitCodesZeroToSevenFillOneWord) {
  QuantizedTensor q = MakeQ(IntConfig(4, Scheme::kAsym, 8), 1, 8, {0, 1, 2, 3, 4, 5, 6, 7});
  q.zeros = {9};
  q.scales = {0.5f};
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  ASSERT_EQ(packed->size(), 3u);
  const PackedTensor& qweight = Get(*packed, "qweight");
  EXPECT_EQ(qweight.dtype, ElemType::kI32);
  EXPECT_THAT(qweight.shape, ElementsAre(1, 1));
  EXPECT_THAT(Words(qweight), ElementsAre(0x76543210u));
  // Little-endian bytes, ready for safetensors.
  EXPECT_THAT(qweight.data, ElementsAre(0x10, 0x32, 0x54, 0x76));
  const PackedTensor& scales = Get(*packed, "scales");
  EXPECT_EQ(scales.dtype, ElemType::kF32);
  EXPECT_THAT(scales.shape, ElementsAre(1, 1));
  EXPECT_THAT(Values<float>(scales), ElementsAre(0.5f));
  const PackedTensor& qzeros = Get(*packed, "qzeros");
  EXPECT_THAT(qzeros.shape, ElementsAre(1, 1));
  EXPECT_THAT(Words(qzeros), ElementsAre(9u));
}

TEST(PackIncTest, ThreeBitPacksTenCodesPerWordAndWastesTheTopBits) {
  // 11 codes: 10 fill bits 0..29 of word 0 (bits 30, 31 stay 0), the 11th starts word 1.
  QuantizedTensor q =
      MakeQ(IntConfig(3, Scheme::kAsym, -1), 1, 11, {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 5});
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  EXPECT_EQ(IncPackFactor(3), 10);
  EXPECT_THAT(Get(*packed, "qweight").shape, ElementsAre(1, 2));
  EXPECT_THAT(Words(Get(*packed, "qweight")), ElementsAre(0x3FFFFFFFu, 5u));
}

TEST(PackIncTest, TwoBitPacksSixteenCodesPerWord) {
  std::vector<int> codes;
  for (int i = 0; i < 17; ++i) codes.push_back(i % 4);
  QuantizedTensor q = MakeQ(IntConfig(2, Scheme::kAsym, -1), 1, 17, codes);
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  EXPECT_THAT(Words(Get(*packed, "qweight")), ElementsAre(0xE4E4E4E4u, 0u));
}

TEST(PackIncTest, EightBitPacksFourBytesPerWord) {
  QuantizedTensor q = MakeQ(IntConfig(8, Scheme::kAsym, -1), 1, 5, {0x11, 0x22, 0x33, 0x44, 0xFF});
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  EXPECT_THAT(Words(Get(*packed, "qweight")), ElementsAre(0x44332211u, 0xFFu));
}

TEST(PackIncTest, SignedSymCodesAreMaskedTwosComplement) {
  QuantizedTensor q = MakeQ(IntConfig(4, Scheme::kSym, -1), 1, 4, {-8, -1, 0, 7});
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  EXPECT_EQ(packed->size(), 2u);  // no qzeros for sym
  EXPECT_THAT(Words(Get(*packed, "qweight")), ElementsAre(0x70F8u));

  QuantizedTensor q3 = MakeQ(IntConfig(3, Scheme::kSym, -1), 1, 3, {-4, -1, 3});
  auto packed3 = PackInc(q3, kName);
  ASSERT_THAT(packed3, IsOk());
  EXPECT_THAT(Words(Get(*packed3, "qweight")), ElementsAre(4u | (7u << 3) | (3u << 6)));

  auto back = UnpackInc(*packed3, kName, q3.config, 1, 3);
  ASSERT_THAT(back, IsOk());
  EXPECT_THAT(back->codes, ElementsAre(0xFC, 0xFF, 3));
}

TEST(PackIncTest, Float4CodesAreMaskedToFourBits) {
  QuantConfig cfg;
  cfg.dtype = QuantDtype::kNf4;
  cfg.bits = 4;
  cfg.group_size = -1;
  QuantizedTensor q = MakeQ(cfg, 1, 3, {-8, 7, -1});
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  EXPECT_EQ(packed->size(), 2u);
  EXPECT_THAT(Words(Get(*packed, "qweight")), ElementsAre(0xF78u));
}

TEST(PackIncTest, CompressionDimZeroPacksDownColumns) {
  // [9, 2] 4-bit: word (j, c) holds rows 8j..8j+7 of column c.
  std::vector<int> codes;
  for (int r = 0; r < 9; ++r) {
    codes.push_back(r);
    codes.push_back(15 - r);
  }
  QuantizedTensor q = MakeQ(IntConfig(4, Scheme::kAsym, -1), 9, 2, codes);
  for (int r = 0; r < 9; ++r) q.zeros[r] = r + 1;  // scales/zeros [9, 1]
  auto packed = PackInc(q, kName, /*compression_dim=*/0);
  ASSERT_THAT(packed, IsOk());
  EXPECT_THAT(Get(*packed, "qweight").shape, ElementsAre(2, 2));
  EXPECT_THAT(Words(Get(*packed, "qweight")), ElementsAre(0x76543210u, 0x89ABCDEFu, 8u, 7u));
  // Zero points [9, 1] are packed along the first dimension too: [2, 1].
  EXPECT_THAT(Get(*packed, "qzeros").shape, ElementsAre(2, 1));
  EXPECT_THAT(Words(Get(*packed, "qzeros")), ElementsAre(0x87654321u, 9u));
}

TEST(PackIncTest, GroupDimZeroPacksItsTransposedScaleMatrix) {
  // group_dim 0: scales [ceil(rows/gs), cols] = [2, 3] for rows 5, gs 4.
  QuantizedTensor q = RandomQ(IntConfig(4, Scheme::kAsym, 4, /*group_dim=*/0), 5, 3, 7);
  ASSERT_EQ(q.scale_rows(), 2);
  ASSERT_EQ(q.scale_cols(), 3);
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  EXPECT_THAT(Get(*packed, "scales").shape, ElementsAre(2, 3));
  EXPECT_THAT(Get(*packed, "qzeros").shape, ElementsAre(2, 1));
  EXPECT_THAT(Get(*packed, "qweight").shape, ElementsAre(5, 1));
}

// ---------------------------------------------------------------------------------------------
// INC layout: round trips
// ---------------------------------------------------------------------------------------------

TEST(PackIncTest, RoundTripEveryBitsSchemeAndLayout) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {3, 37}, {33, 5}, {8, 64}};
  uint32_t seed = 1;
  int cases = 0;
  for (int bits = 1; bits <= 8; ++bits) {
    for (Scheme scheme : {Scheme::kSym, Scheme::kAsym}) {
      for (int group_dim : {0, 1}) {
        for (int64_t gs : {int64_t{4}, int64_t{7}, int64_t{-1}}) {
          for (auto [rows, cols] : shapes) {
            for (int cd : {0, 1}) {
              const QuantConfig cfg = IntConfig(bits, scheme, gs, group_dim);
              QuantizedTensor q = RandomQ(cfg, rows, cols, seed++);
              SCOPED_TRACE(::testing::Message() << "bits " << bits << " " << SchemeName(scheme)
                                                << " group_dim " << group_dim << " gs " << gs
                                                << " [" << rows << ", " << cols << "] cd " << cd);
              auto packed = PackInc(q, kName, cd);
              ASSERT_THAT(packed, IsOk());
              EXPECT_EQ(packed->size(), scheme == Scheme::kAsym ? 3u : 2u);
              auto back = UnpackInc(*packed, kName, cfg, rows, cols, cd);
              ASSERT_THAT(back, IsOk());
              ExpectSameQuantized(*back, q);
              EXPECT_EQ(back->config, cfg);
              ++cases;
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 8 * 2 * 2 * 3 * 4 * 2);
}

TEST(PackIncTest, RoundTripFloat4Dtypes) {
  for (QuantDtype d : {QuantDtype::kNf4, QuantDtype::kFp4, QuantDtype::kFp4E2M1}) {
    QuantConfig cfg;
    cfg.dtype = d;
    cfg.bits = 4;
    cfg.group_size = 32;
    cfg.scheme = Scheme::kSym;
    for (int cd : {0, 1}) {
      QuantizedTensor q = RandomQ(cfg, 11, 70, 99 + cd);
      auto packed = PackInc(q, kName, cd);
      ASSERT_THAT(packed, IsOk());
      auto back = UnpackInc(*packed, kName, cfg, 11, 70, cd);
      ASSERT_THAT(back, IsOk());
      ExpectSameQuantized(*back, q);
    }
  }
}

TEST(PackIncTest, OneBitSymCodesStayZeroAndOne) {
  QuantizedTensor q = MakeQ(IntConfig(1, Scheme::kSym, -1), 1, 33, std::vector<int>(33, 1));
  q.codes[3] = 0;
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  EXPECT_THAT(Words(Get(*packed, "qweight")), ElementsAre(0xFFFFFFF7u, 1u));
  auto back = UnpackInc(*packed, kName, q.config, 1, 33);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->codes, q.codes);
}

// ---------------------------------------------------------------------------------------------
// INC layout: errors
// ---------------------------------------------------------------------------------------------

TEST(PackIncTest, EngineGivesTheSerialBytesForAnyThreadCount) {
  auto engine = Engine::Create({.threads = 3, .kernels = ""});
  ASSERT_THAT(engine, IsOk());
  for (int bits = 1; bits <= 8; ++bits) {
    for (Scheme scheme : {Scheme::kSym, Scheme::kAsym}) {
      for (int compression_dim : {0, 1}) {
        SCOPED_TRACE(::testing::Message() << "bits " << bits << " " << SchemeName(scheme)
                                          << " compression_dim " << compression_dim);
        // Enough rows for several blocks of word rows, and rows not a multiple of 32/bits.
        const QuantizedTensor q = RandomQ(IntConfig(bits, scheme, 16), 1501, 48, 40 + bits);
        auto serial = PackInc(q, kName, compression_dim);
        auto parallel = PackInc(q, kName, compression_dim, **engine);
        ASSERT_THAT(serial, IsOk());
        ASSERT_THAT(parallel, IsOk());
        ASSERT_EQ(parallel->size(), serial->size());
        for (size_t i = 0; i < serial->size(); ++i) {
          EXPECT_EQ((*parallel)[i].shape, (*serial)[i].shape);
          EXPECT_TRUE((*parallel)[i].data == (*serial)[i].data) << (*serial)[i].name;
        }
      }
    }
  }
}

TEST(PackIncTest, Errors) {
  QuantizedTensor q = RandomQ(IntConfig(4, Scheme::kAsym, 4), 3, 8, 5);
  EXPECT_THAT(PackInc(q, kName, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression_dim")));
  QuantizedTensor skipped = q;
  skipped.quantized = false;
  EXPECT_THAT(PackInc(skipped, kName),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(kName)));
  QuantizedTensor bad_code = q;
  bad_code.codes[5] = 16;
  EXPECT_THAT(PackInc(bad_code, kName),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("code 16 at element 5")));
  QuantizedTensor bad_size = q;
  bad_size.scales.pop_back();
  EXPECT_THAT(PackInc(bad_size, kName), StatusIs(absl::StatusCode::kInternal));
  QuantizedTensor bad_zero = q;
  bad_zero.zeros[0] = 16;
  EXPECT_THAT(PackInc(bad_zero, kName), StatusIs(absl::StatusCode::kInternal));
}

TEST(UnpackIncTest, ValidatesShapesAndDtypes) {
  const QuantConfig cfg = IntConfig(4, Scheme::kAsym, 4);
  QuantizedTensor q = RandomQ(cfg, 3, 9, 5);
  auto packed = PackInc(q, kName);
  ASSERT_THAT(packed, IsOk());
  const std::string qweight = std::string(kName) + ".qweight";

  // Read as a [3, 17] weight, qweight would need [3, 3].
  EXPECT_THAT(UnpackInc(*packed, kName, cfg, 3, 17),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(qweight + ": expected shape [3, 3], got [3, 2]")));
  auto wrong_dtype = *packed;
  Mutable(wrong_dtype, "scales")->dtype = ElemType::kF16;
  EXPECT_THAT(UnpackInc(wrong_dtype, kName, cfg, 3, 9),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected dtype F32")));
  auto short_data = *packed;
  Mutable(short_data, "qzeros")->data.pop_back();
  EXPECT_THAT(UnpackInc(short_data, kName, cfg, 3, 9),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes, expected")));
  auto no_zeros = *packed;
  no_zeros.pop_back();
  EXPECT_THAT(UnpackInc(no_zeros, kName, cfg, 3, 9),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing tensor " + std::string(kName) + ".qzeros")));
  // compression_dim 0 expects qweight [1, 9].
  EXPECT_THAT(
      UnpackInc(*packed, kName, cfg, 3, 9, 0),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected shape [1, 9], got [3, 2]")));
}

// ---------------------------------------------------------------------------------------------
// GPTQ layout: hand-computed words
// ---------------------------------------------------------------------------------------------

// AutoGPTQ's QuantLinear.pack, transliterated: packs `in` unsigned codes of one column into
// in*bits/32 words (3 bits: blocks of 32 codes in 3 words, codes 10 and 21 split across edges).
std::vector<uint32_t> AutoGptqPackColumn(const std::vector<uint32_t>& v, int bits) {
  std::vector<uint32_t> q(v.size() * bits / 32, 0u);
  size_t i = 0;
  size_t row = 0;
  while (row < q.size()) {
    if (bits != 3) {
      for (size_t j = i; j < i + 32 / bits; ++j) q[row] |= v[j] << (bits * (j - i));
      i += 32 / bits;
      row += 1;
    } else {
      for (size_t j = i; j < i + 10; ++j) q[row] |= v[j] << (3 * (j - i));
      i += 10;
      q[row] |= v[i] << 30;
      row += 1;
      q[row] |= (v[i] >> 2) & 1;
      i += 1;
      for (size_t j = i; j < i + 10; ++j) q[row] |= v[j] << (3 * (j - i) + 1);
      i += 10;
      q[row] |= v[i] << 31;
      row += 1;
      q[row] |= (v[i] >> 1) & 0x3;
      i += 1;
      for (size_t j = i; j < i + 10; ++j) q[row] |= v[j] << (3 * (j - i) + 2);
      i += 10;
      row += 1;
    }
  }
  return q;
}

TEST(PackGptqTest, FourBitSymShiftsCodesAndStoresZeroMinusOne) {
  // out 8, in 8, one group. Row o holds codes -8..7 shifted by o.
  std::vector<int> codes;
  for (int o = 0; o < 8; ++o) {
    for (int i = 0; i < 8; ++i) codes.push_back((i + o) % 16 - 8);
  }
  QuantizedTensor q = MakeQ(IntConfig(4, Scheme::kSym, -1), 8, 8, codes);
  for (int o = 0; o < 8; ++o) q.scales[o] = 0.25f * (o + 1);
  auto packed = PackGptq(q, kName);
  ASSERT_THAT(packed, IsOk());
  ASSERT_EQ(packed->size(), 4u);
  const PackedTensor& qweight = Get(*packed, "qweight");
  EXPECT_EQ(qweight.dtype, ElemType::kI32);
  EXPECT_THAT(qweight.shape, ElementsAre(1, 8));
  // Column o packs the unsigned codes (i + o) % 16 for i = 0..7 along the input dimension.
  EXPECT_EQ(Words(qweight)[0], 0x76543210u);
  EXPECT_EQ(Words(qweight)[1], 0x87654321u);
  EXPECT_EQ(Words(qweight)[7], 0xEDCBA987u);
  // Zero point 8, stored as 7 (v1), eight outputs per word.
  const PackedTensor& qzeros = Get(*packed, "qzeros");
  EXPECT_THAT(qzeros.shape, ElementsAre(1, 1));
  EXPECT_THAT(Words(qzeros), ElementsAre(0x77777777u));
  const PackedTensor& scales = Get(*packed, "scales");
  EXPECT_EQ(scales.dtype, ElemType::kF16);
  EXPECT_THAT(scales.shape, ElementsAre(1, 8));
  EXPECT_EQ(Values<uint16_t>(scales)[0], FloatToHalf(0.25f));
  EXPECT_EQ(Values<uint16_t>(scales)[7], FloatToHalf(2.0f));
  const PackedTensor& g_idx = Get(*packed, "g_idx");
  EXPECT_THAT(g_idx.shape, ElementsAre(8));
  EXPECT_THAT(Values<int32_t>(g_idx), ElementsAre(0, 0, 0, 0, 0, 0, 0, 0));
}

TEST(PackGptqTest, ThreeBitSplitsCodesAcrossWordEdgesLikeAutoGptq) {
  // out 32, in 32, asym v2. Even columns hold i % 8, odd ones 7 - i % 8; zero point o % 8.
  std::vector<int> codes;
  for (int o = 0; o < 32; ++o) {
    for (int i = 0; i < 32; ++i) codes.push_back(o % 2 == 0 ? i % 8 : 7 - i % 8);
  }
  QuantizedTensor q = MakeQ(IntConfig(3, Scheme::kAsym, -1), 32, 32, codes);
  for (int o = 0; o < 32; ++o) q.zeros[o] = o % 8;
  GptqPackOptions opts;
  opts.format = GptqFormat::kV2;
  auto packed = PackGptq(q, kName, opts);
  ASSERT_THAT(packed, IsOk());
  const PackedTensor& qweight = Get(*packed, "qweight");
  ASSERT_THAT(qweight.shape, ElementsAre(3, 32));
  const std::vector<uint32_t> w = Words(qweight);
  // Bit by bit (i % 8): word 0 = codes 0..9 at 3i, then code 10 (= 2 = 0b010) has its low two
  // bits 0b10 at bits 30-31; word 1 starts with code 10's top bit (0), codes 11..20 at 3i-32,
  // code 21 (= 5 = 0b101) puts bit 0 at bit 31; word 2 starts with its top two bits 0b10.
  EXPECT_EQ(w[0 * 32 + 0], 0x88FAC688u);
  EXPECT_EQ(w[1 * 32 + 0], 0xC688FAC6u);
  EXPECT_EQ(w[2 * 32 + 0], 0xFAC688FAu);
  EXPECT_EQ(w[0 * 32 + 1], 0x77053977u);
  EXPECT_EQ(w[1 * 32 + 1], 0x39770539u);
  EXPECT_EQ(w[2 * 32 + 1], 0x05397705u);
  EXPECT_EQ(w[0] >> 30, 2u);   // code 10's low bits 0b10
  EXPECT_EQ(w[32] & 1u, 0u);   // code 10's high bit
  EXPECT_EQ(w[32] >> 31, 1u);  // code 21's low bit
  EXPECT_EQ(w[64] & 3u, 2u);   // code 21's high bits 0b10
  // qzeros [1, 3]: zero points o % 8 along the output dimension, same bit pattern.
  const PackedTensor& qzeros = Get(*packed, "qzeros");
  ASSERT_THAT(qzeros.shape, ElementsAre(1, 3));
  EXPECT_THAT(Words(qzeros), ElementsAre(0x88FAC688u, 0xC688FAC6u, 0xFAC688FAu));
}

TEST(PackGptqTest, MatchesAutoGptqPackOnRandomCodes) {
  for (int bits : {2, 3, 4, 8}) {
    for (Scheme scheme : {Scheme::kSym, Scheme::kAsym}) {
      SCOPED_TRACE(::testing::Message() << "bits " << bits << " " << SchemeName(scheme));
      const int64_t out = 64;
      const int64_t in = 128;
      QuantizedTensor q = RandomQ(IntConfig(bits, scheme, 32), out, in, 11 + bits, 1);
      auto packed = PackGptq(q, kName, WithFormat(GptqFormat::kV1));
      ASSERT_THAT(packed, IsOk());
      const std::vector<uint32_t> qweight = Words(Get(*packed, "qweight"));
      const int64_t wrows = in * bits / 32;
      ASSERT_EQ(static_cast<int64_t>(qweight.size()), wrows * out);
      const int shift = scheme == Scheme::kSym ? 1 << (bits - 1) : 0;
      for (int64_t o = 0; o < out; ++o) {
        std::vector<uint32_t> col(in);
        for (int64_t i = 0; i < in; ++i) {
          col[i] = static_cast<uint32_t>(static_cast<int8_t>(q.codes[o * in + i]) + shift);
          if (scheme == Scheme::kAsym) col[i] = q.codes[o * in + i];
        }
        const std::vector<uint32_t> expect = AutoGptqPackColumn(col, bits);
        for (int64_t r = 0; r < wrows; ++r) ASSERT_EQ(qweight[r * out + o], expect[r]);
      }
      // qzeros: AutoGPTQ packs (zero - 1) of one group along the outputs the same way.
      const std::vector<uint32_t> qzeros = Words(Get(*packed, "qzeros"));
      const int64_t groups = in / 32;
      const int64_t zw = out * bits / 32;
      for (int64_t g = 0; g < groups; ++g) {
        std::vector<uint32_t> z(out);
        for (int64_t o = 0; o < out; ++o) {
          z[o] = (scheme == Scheme::kSym ? shift : q.zeros[o * groups + g]) - 1;
        }
        const std::vector<uint32_t> expect = AutoGptqPackColumn(z, bits);
        for (int64_t k = 0; k < zw; ++k) ASSERT_EQ(qzeros[g * zw + k], expect[k]);
      }
    }
  }
}

TEST(PackGptqTest, EngineGivesTheSerialBytesForAnyThreadCount) {
  std::vector<std::unique_ptr<Engine>> engines;
  for (int threads : {1, 3}) {
    auto e = Engine::Create({.threads = threads, .kernels = ""});
    ASSERT_THAT(e, IsOk());
    engines.push_back(*std::move(e));
  }
  for (int bits : {2, 3, 4, 8}) {
    for (Scheme scheme : {Scheme::kSym, Scheme::kAsym}) {
      for (bool permuted : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "bits " << bits << " " << SchemeName(scheme)
                                          << (permuted ? " permuted" : ""));
        // 72 outputs: four whole blocks of 16 columns and a partial one (2 and 3 bits need
        // multiples of 16 and 32).
        const int64_t out = bits == 3 ? 96 : bits == 2 ? 80 : 72;
        const int64_t in = 256;
        QuantizedTensor q = RandomQ(IntConfig(bits, scheme, 64), out, in, 5 + bits);
        GptqPackOptions opts = WithFormat(GptqFormat::kV2);
        if (permuted) {
          opts.perm.resize(in);
          std::iota(opts.perm.begin(), opts.perm.end(), 0);
          std::shuffle(opts.perm.begin(), opts.perm.end(), std::mt19937(bits));
        }
        auto serial = PackGptq(q, kName, opts);
        ASSERT_THAT(serial, IsOk());
        for (const auto& engine : engines) {
          auto parallel = PackGptq(q, kName, opts, *engine);
          ASSERT_THAT(parallel, IsOk());
          ASSERT_EQ(parallel->size(), serial->size());
          for (size_t i = 0; i < serial->size(); ++i) {
            EXPECT_EQ((*parallel)[i].name, (*serial)[i].name);
            EXPECT_EQ((*parallel)[i].shape, (*serial)[i].shape);
            EXPECT_TRUE((*parallel)[i].data == (*serial)[i].data) << (*serial)[i].name;
          }
        }
      }
    }
  }
  // A code out of range is still named exactly (the fast scan only says whether one exists).
  QuantizedTensor bad = RandomQ(IntConfig(4, Scheme::kSym, 64), 72, 256, 3);
  bad.codes[70 * 256 + 9] = 8;
  EXPECT_THAT(PackGptq(bad, kName, {}, *engines.back()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("code 8 at element 17929")));
}

TEST(PackGptqTest, TwoAndEightBitWords) {
  QuantizedTensor q2 = MakeQ(IntConfig(2, Scheme::kAsym, 16), 16, 16, {});
  q2.codes.assign(16 * 16, 0);
  for (int o = 0; o < 16; ++o) {
    for (int i = 0; i < 16; ++i) q2.codes[o * 16 + i] = i % 4;
  }
  for (int o = 0; o < 16; ++o) q2.zeros[o] = o % 4;
  auto p2 = PackGptq(q2, kName);  // asym defaults to v2
  ASSERT_THAT(p2, IsOk());
  EXPECT_THAT(Get(*p2, "qweight").shape, ElementsAre(1, 16));
  EXPECT_EQ(Words(Get(*p2, "qweight"))[0], 0xE4E4E4E4u);
  EXPECT_THAT(Words(Get(*p2, "qzeros")), ElementsAre(0xE4E4E4E4u));

  QuantizedTensor q8 = MakeQ(IntConfig(8, Scheme::kSym, 4), 4, 4,
                             {-128, -1, 0, 127, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0});
  auto p8 = PackGptq(q8, kName);
  ASSERT_THAT(p8, IsOk());
  EXPECT_THAT(Get(*p8, "qweight").shape, ElementsAre(1, 4));
  EXPECT_EQ(Words(Get(*p8, "qweight"))[0], 0xFF807F00u);
  EXPECT_EQ(Words(Get(*p8, "qweight"))[1], 0x84838281u);
  EXPECT_THAT(Words(Get(*p8, "qzeros")), ElementsAre(0x7F7F7F7Fu));
}

TEST(PackGptqTest, PermutationWritesOriginalColumnOrderAndGIdx) {
  // in 8, gs 4: the quantizer saw columns in the order perm; group 0 = columns {7, 2, 5, 0}.
  const std::vector<int32_t> perm = {7, 2, 5, 0, 1, 3, 4, 6};
  std::vector<int> codes;
  for (int o = 0; o < 8; ++o) {
    for (int k = 0; k < 8; ++k) codes.push_back(k);  // code k in permuted position k
  }
  QuantizedTensor q = MakeQ(IntConfig(4, Scheme::kAsym, 4), 8, 8, codes);
  for (int32_t& z : q.zeros) z = 3;
  GptqPackOptions opts;
  opts.perm = perm;
  auto packed = PackGptq(q, kName, opts);
  ASSERT_THAT(packed, IsOk());
  // Original column c carries the code of its permuted position: c=0 <- k=3, c=1 <- k=4, ...
  EXPECT_EQ(Words(Get(*packed, "qweight"))[0], 0x07265143u);
  EXPECT_THAT(Values<int32_t>(Get(*packed, "g_idx")), ElementsAre(0, 1, 0, 1, 1, 0, 1, 0));
}

// ---------------------------------------------------------------------------------------------
// GPTQ layout: round trips and loader dequantization
// ---------------------------------------------------------------------------------------------

TEST(PackGptqTest, RoundTripBitsSchemesFormatsAndPermutations) {
  uint32_t seed = 100;
  int cases = 0;
  for (int bits : {2, 3, 4, 8}) {
    for (Scheme scheme : {Scheme::kSym, Scheme::kAsym}) {
      for (GptqFormat format : {GptqFormat::kV1, GptqFormat::kV2}) {
        for (bool with_perm : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "bits " << bits << " " << SchemeName(scheme) << " "
                                            << GptqFormatName(format) << " perm " << with_perm);
          const int64_t out = 64;
          const int64_t in = 96;
          const int64_t gs = 32;
          // v1 cannot store zero point 0: draw zero points from 1 up there.
          QuantizedTensor q = RandomQ(IntConfig(bits, scheme, gs), out, in, seed++,
                                      format == GptqFormat::kV1 ? 1 : 0);
          for (float& s : q.scales) s = HalfToFloat(FloatToHalf(s));  // F16 is lossy otherwise
          std::vector<int32_t> perm;
          if (with_perm) {
            perm.resize(in);
            for (int64_t i = 0; i < in; ++i) perm[i] = static_cast<int32_t>(i);
            std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
          }
          auto packed = PackGptq(q, kName, WithPerm(perm, format));
          ASSERT_THAT(packed, IsOk());

          GptqUnpackOptions uo;
          uo.bits = bits;
          uo.sym = scheme == Scheme::kSym;
          uo.format = format;
          uo.group_size = gs;
          uo.perm = perm;
          auto back = UnpackGptq(*packed, kName, uo);
          ASSERT_THAT(back, IsOk());
          ExpectSameQuantized(back->q, q);
          EXPECT_EQ(back->q.config.scheme, scheme);
          EXPECT_EQ(back->perm, perm);

          // What loaders compute, in original column order.
          auto w = DequantizeGptq(*packed, kName, bits, format);
          ASSERT_THAT(w, IsOk());
          ASSERT_EQ(static_cast<int64_t>(w->size()), out * in);
          for (int64_t o = 0; o < out; ++o) {
            for (int64_t k = 0; k < in; ++k) {
              const int64_t c = with_perm ? perm[k] : k;
              const int64_t g = k / gs;
              const int code = scheme == Scheme::kSym
                                   ? static_cast<int8_t>(q.codes[o * in + k])
                                   : q.codes[o * in + k] - q.zeros[o * (in / gs) + g];
              ASSERT_EQ((*w)[o * in + c], static_cast<float>(code) * q.scales[o * (in / gs) + g]);
            }
          }
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 32);
}

TEST(UnpackGptqTest, DerivesThePermutationFromGIdx) {
  const int64_t in = 64;
  const int64_t gs = 16;
  std::vector<int32_t> perm(in);
  for (int64_t i = 0; i < in; ++i) perm[i] = static_cast<int32_t>(i);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(3));
  // Within each group the derived permutation lists columns in increasing order.
  for (int64_t g = 0; g < in / gs; ++g)
    std::sort(perm.begin() + g * gs, perm.begin() + (g + 1) * gs);
  QuantizedTensor q = RandomQ(IntConfig(4, Scheme::kSym, gs), 16, in, 4);
  for (float& s : q.scales) s = HalfToFloat(FloatToHalf(s));
  auto packed = PackGptq(q, kName, WithPerm(perm));
  ASSERT_THAT(packed, IsOk());
  auto back = UnpackGptq(*packed, kName, Unpack(4, true, GptqFormat::kV1, gs));
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->perm, perm);
  ExpectSameQuantized(back->q, q);

  // Without a permutation, the identity comes back as an empty perm.
  auto plain = PackGptq(q, kName);
  ASSERT_THAT(plain, IsOk());
  auto plain_back = UnpackGptq(*plain, kName, Unpack(4, true, GptqFormat::kV1, gs));
  ASSERT_THAT(plain_back, IsOk());
  EXPECT_TRUE(plain_back->perm.empty());
}

TEST(UnpackGptqTest, GroupSizeMinusOneMeansOneGroup) {
  QuantizedTensor q = RandomQ(IntConfig(8, Scheme::kAsym, -1), 8, 40, 8);
  for (float& s : q.scales) s = HalfToFloat(FloatToHalf(s));
  auto packed = PackGptq(q, kName);
  ASSERT_THAT(packed, IsOk());
  EXPECT_THAT(Get(*packed, "scales").shape, ElementsAre(1, 8));
  auto back = UnpackGptq(*packed, kName, Unpack(8, false, GptqFormat::kV2, -1));
  ASSERT_THAT(back, IsOk());
  ExpectSameQuantized(back->q, q);
}

// ---------------------------------------------------------------------------------------------
// GPTQ layout: zero-point formats and errors
// ---------------------------------------------------------------------------------------------

TEST(PackGptqTest, AsymDefaultsToV2AndV1RefusesZeroPointZero) {
  QuantizedTensor q = RandomQ(IntConfig(4, Scheme::kAsym, 8), 8, 16, 21, 1);
  q.zeros[0] = 0;
  q.zeros[5] = 0;
  q.zeros[9] = 0;
  EXPECT_THAT(PackGptq(q, kName, WithFormat(GptqFormat::kV1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr(kName), HasSubstr("3 of 16 groups"),
                                        HasSubstr("zero point 0"), HasSubstr("gptq_v2"))));
  auto v2 = PackGptq(q, kName);
  ASSERT_THAT(v2, IsOk());
  // Group 0 of outputs 0..7: true zero points, zeros[o * 2 + 0].
  const uint32_t word = Words(Get(*v2, "qzeros"))[0];
  for (int o = 0; o < 8; ++o) EXPECT_EQ((word >> (4 * o)) & 15u, uint32_t(q.zeros[o * 2]));
  QuantConfig sym, asym, nf4;
  sym.scheme = Scheme::kSym;
  asym.scheme = Scheme::kAsym;
  nf4.dtype = QuantDtype::kNf4;
  nf4.scheme = Scheme::kAsym;  // zero points only exist for int: not a reason for v2
  EXPECT_EQ(DefaultGptqFormat({sym, asym}), GptqFormat::kV2);
  EXPECT_EQ(DefaultGptqFormat({sym, nf4}), GptqFormat::kV1);
  EXPECT_EQ(DefaultGptqFormat({}), GptqFormat::kV1);
}

TEST(PackGptqTest, SymHonoursAnExplicitV2) {
  QuantizedTensor q = RandomQ(IntConfig(4, Scheme::kSym, 8), 8, 8, 2);
  auto v2 = PackGptq(q, kName, WithFormat(GptqFormat::kV2));
  ASSERT_THAT(v2, IsOk());
  EXPECT_THAT(Words(Get(*v2, "qzeros")), ElementsAre(0x88888888u));
}

TEST(PackGptqTest, PreconditionErrorsNameTensorAndRule) {
  auto expect_error = [](const QuantizedTensor& q, const std::string& rule,
                         const GptqPackOptions& opts = {}) {
    EXPECT_THAT(PackGptq(q, kName, opts),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::AllOf(HasSubstr(kName), HasSubstr(rule))))
        << rule;
  };
  QuantConfig nf4;
  nf4.dtype = QuantDtype::kNf4;
  nf4.group_size = 8;
  expect_error(RandomQ(nf4, 8, 8, 1), "needs dtype int, got nf4");
  expect_error(RandomQ(IntConfig(5, Scheme::kSym, 8), 8, 8, 1),
               "supports bits 2, 3, 4 or 8, got 5");
  expect_error(RandomQ(IntConfig(4, Scheme::kSym, 8, 0), 8, 8, 1), "needs group_dim 1, got 0");
  QuantConfig dq = IntConfig(4, Scheme::kSym, 8);
  dq.double_quant_dtype = QuantDtype::kInt;
  expect_error(RandomQ(dq, 8, 8, 1), "cannot store double-quantized scales");
  expect_error(RandomQ(IntConfig(4, Scheme::kSym, 16), 8, 24, 1),
               "needs in_features (24) divisible by the group size (16)");
  // Loaders keep a configured group size larger than in_features; so must we.
  expect_error(RandomQ(IntConfig(4, Scheme::kSym, 128), 8, 64, 1),
               "needs in_features (64) divisible by the group size (128)");
  expect_error(RandomQ(IntConfig(4, Scheme::kSym, 4), 12, 8, 1),
               "needs out_features (12) divisible by 8 (32/bits at 4 bits)");
  expect_error(RandomQ(IntConfig(4, Scheme::kSym, 4), 8, 12, 1),
               "needs in_features (12) divisible by 8 (32/bits at 4 bits)");
  expect_error(RandomQ(IntConfig(2, Scheme::kSym, 8), 8, 16, 1),
               "needs out_features (8) divisible by 16");
  expect_error(RandomQ(IntConfig(3, Scheme::kSym, 16), 32, 48, 1),
               "needs in_features (48) divisible by 32 (32 codes per 3 words at 3 bits)");
  expect_error(RandomQ(IntConfig(3, Scheme::kSym, 32), 10, 32, 1),
               "needs out_features (10) divisible by 32 (32 codes per 3 words at 3 bits)");

  QuantizedTensor ok = RandomQ(IntConfig(4, Scheme::kSym, 4), 8, 8, 1);
  expect_error(ok, "gptq_perm has 3 entries, expected in_features = 8", WithPerm({0, 1, 2}));
  expect_error(ok, "lists column 1 more than once", WithPerm({0, 1, 2, 3, 4, 5, 6, 1}));
  expect_error(ok, "entry 7 is 8, outside 0..7", WithPerm({0, 1, 2, 3, 4, 5, 6, 8}));
  QuantizedTensor big = ok;
  big.scales[3] = 1e6f;
  expect_error(big, "overflows float16");
  QuantizedTensor skipped = ok;
  skipped.quantized = false;
  expect_error(skipped, "not quantized");

  // The same rules are available before quantizing.
  EXPECT_THAT(CheckGptqCompatible(kName, IntConfig(4, Scheme::kSym, -1), 8, 24), IsOk());
  EXPECT_THAT(CheckGptqCompatible(kName, IntConfig(4, Scheme::kSym, 0), 8, 24),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("group_size")));
}

TEST(PackGptqTest, BiasIsWrittenAsFloat16) {
  QuantizedTensor q = RandomQ(IntConfig(4, Scheme::kSym, 8), 8, 8, 2);
  std::vector<float> bias = {0.1f, -2.5f, 3.0f, 0.0f, 1e-3f, 7.0f, -7.0f, 65504.0f};
  std::vector<uint8_t> bytes(bias.size() * 4);
  std::memcpy(bytes.data(), bias.data(), bytes.size());
  TensorInput in{"model.layers.0.mlp.down_proj.bias", ElemType::kF32, {8}, bytes};
  auto packed = PackGptq(q, kName, WithBias(&in));
  ASSERT_THAT(packed, IsOk());
  const PackedTensor& b = Get(*packed, "bias");
  EXPECT_EQ(b.dtype, ElemType::kF16);
  EXPECT_THAT(b.shape, ElementsAre(8));
  std::vector<uint16_t> expect;
  for (float v : bias) expect.push_back(FloatToHalf(v));
  EXPECT_EQ(Values<uint16_t>(b), expect);

  std::vector<uint8_t> bf(16);
  for (int i = 0; i < 8; ++i) {
    const uint16_t h = FloatToBf16(static_cast<float>(i) - 3.5f);
    std::memcpy(bf.data() + 2 * i, &h, 2);
  }
  TensorInput bf_in{"b", ElemType::kBF16, {8}, bf};
  auto packed_bf = PackGptq(q, kName, WithBias(&bf_in));
  ASSERT_THAT(packed_bf, IsOk());
  EXPECT_EQ(Values<uint16_t>(Get(*packed_bf, "bias"))[0], FloatToHalf(-3.5f));

  TensorInput wrong_shape{"b", ElemType::kF32, {4}, absl::Span<const uint8_t>(bytes).first(16)};
  EXPECT_THAT(PackGptq(q, kName, WithBias(&wrong_shape)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected [8]")));
  bias[2] = 1e6f;
  std::memcpy(bytes.data(), bias.data(), bytes.size());
  EXPECT_THAT(PackGptq(q, kName, WithBias(&in)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overflows float16")));
}

TEST(UnpackGptqTest, Errors) {
  QuantizedTensor q = RandomQ(IntConfig(4, Scheme::kSym, 8), 8, 16, 2);
  auto packed = PackGptq(q, kName);
  ASSERT_THAT(packed, IsOk());
  const GptqUnpackOptions opts = Unpack(4, true, GptqFormat::kV1, 8);
  const std::string base = kName;

  auto no_gidx = *packed;
  no_gidx.erase(no_gidx.begin() + 3);
  EXPECT_THAT(
      UnpackGptq(no_gidx, kName, opts),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing tensor " + base + ".g_idx")));
  // With group size 4 there would be 4 groups: scales must be [4, 8].
  EXPECT_THAT(UnpackGptq(*packed, kName, Unpack(4, true, GptqFormat::kV1, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(base + ".scales: expected shape [4, 8], got [2, 8]")));
  auto bad_qzeros = *packed;
  Mutable(bad_qzeros, "qzeros")->shape = {1, 2};
  EXPECT_THAT(UnpackGptq(bad_qzeros, kName, opts),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(base + ".qzeros: expected shape [2, 1], got [1, 2]")));
  auto bad_dtype = *packed;
  Mutable(bad_dtype, "scales")->dtype = ElemType::kF32;
  EXPECT_THAT(UnpackGptq(bad_dtype, kName, opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected dtype F16")));
  // Read as v2, the stored 7 is not the sym zero point 8.
  EXPECT_THAT(UnpackGptq(*packed, kName, Unpack(4, true, GptqFormat::kV2, 8)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("16 of 16 groups have a zero point other than 8")));
  // A permutation that g_idx does not describe.
  std::vector<int32_t> perm(16);
  for (int i = 0; i < 16; ++i) perm[i] = 15 - i;
  EXPECT_THAT(
      UnpackGptq(*packed, kName, Unpack(4, true, GptqFormat::kV1, 8, perm)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("column 15 is in group 1 but the permutation puts it in group 0")));
  auto uneven = *packed;
  std::vector<int32_t> g(16, 0);
  g[15] = 1;
  std::memcpy(Mutable(uneven, "g_idx")->data.data(), g.data(), 64);
  EXPECT_THAT(UnpackGptq(uneven, kName, opts),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("group 0 has 15 columns, expected 8")));
  g[15] = 2;
  std::memcpy(Mutable(uneven, "g_idx")->data.data(), g.data(), 64);
  EXPECT_THAT(DequantizeGptq(uneven, kName, 4, GptqFormat::kV1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("entry 15 is 2")));
}

TEST(DequantizeGptqTest, V1ZeroPointWrapsAsLoadersRead) {
  // A foreign v1 checkpoint storing zero point 0 as -1 & 15 = 15 reads back as 16: the silent
  // corruption the v1 rule prevents.
  QuantizedTensor q = MakeQ(IntConfig(4, Scheme::kAsym, 8), 8, 8, std::vector<int>(64, 3));
  for (int32_t& z : q.zeros) z = 1;
  auto packed = PackGptq(q, kName, WithFormat(GptqFormat::kV1));
  ASSERT_THAT(packed, IsOk());
  EXPECT_THAT(Words(Get(*packed, "qzeros")), ElementsAre(0u));
  Mutable(*packed, "qzeros")->data = {0xFF, 0xFF, 0xFF, 0xFF};
  auto w = DequantizeGptq(*packed, kName, 4, GptqFormat::kV1);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ((*w)[0], (3.0f - 16.0f) * 1.0f);
  auto back = UnpackGptq(*packed, kName, Unpack(4, false, GptqFormat::kV1, 8));
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->q.zeros[0], 16);
}

TEST(GptqFormatTest, NamesParse) {
  EXPECT_EQ(GptqFormatName(GptqFormat::kV1), "gptq");
  EXPECT_EQ(GptqFormatName(GptqFormat::kV2), "gptq_v2");
  EXPECT_THAT(ParseGptqFormat("gptq_v2"), IsOk());
  EXPECT_EQ(*ParseGptqFormat("gptq"), GptqFormat::kV1);
  EXPECT_THAT(ParseGptqFormat("awq"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"awq\"")));
}

// ---------------------------------------------------------------------------------------------
// quantization_config JSON
// ---------------------------------------------------------------------------------------------

TEST(GptqConfigTest, EveryKeyExplicitInOrder) {
  GptqCheckpointConfig cfg;
  cfg.bits = 4;
  cfg.group_size = 128;
  cfg.sym = true;
  cfg.layers = {{"model.layers.0.mlp.down_proj", 4, 128, true, false}};
  auto j = GptqQuantizationConfig(cfg);
  ASSERT_THAT(j, IsOk());
  std::vector<std::string> keys;
  for (auto it = j->begin(); it != j->end(); ++it) keys.push_back(it.key());
  EXPECT_THAT(keys, ElementsAre("quant_method", "bits", "group_size", "sym", "desc_act",
                                "checkpoint_format", "format", "pack_dtype", "damp_percent",
                                "true_sequential", "lm_head", "meta"));
  EXPECT_EQ((*j)["quant_method"], "gptq");
  EXPECT_EQ((*j)["bits"], 4);
  EXPECT_EQ((*j)["group_size"], 128);
  EXPECT_EQ((*j)["sym"], true);
  EXPECT_EQ((*j)["desc_act"], false);
  EXPECT_EQ((*j)["checkpoint_format"], "gptq");
  EXPECT_EQ((*j)["format"], "gptq");  // newer optimum and GPTQModel read this one
  EXPECT_EQ((*j)["pack_dtype"], "int32");
  EXPECT_EQ((*j)["damp_percent"], 0.01);
  EXPECT_EQ((*j)["true_sequential"], true);
  EXPECT_EQ((*j)["lm_head"], false);
  // The producer, named honestly: never "gptqmodel:..." (GPTQModel trusts that name).
  EXPECT_EQ((*j)["meta"].dump(), R"({"quantizer":["rtnq"]})");
  cfg.producer = "rtnq:1.2.0";
  EXPECT_EQ((*GptqQuantizationConfig(cfg))["meta"]["quantizer"][0], "rtnq:1.2.0");
}

// Whether Python's re.match(pattern, name) succeeds, for the patterns rtnq writes (escaped
// literals, one alternation, one optional group: ECMAScript regexes mean the same there).
bool Matches(const std::string& key, const std::string& name) {
  return std::regex_search(name, std::regex(key.substr(2)), std::regex_constants::match_continuous);
}

TEST(GptqConfigTest, DynamicKeysMatchTheNamesOfBothGptqModelAndVllm) {
  std::vector<GptqLayerQuant> layers;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      layers.push_back({p + m, 4, 128, true, false});
    }
  }
  layers[0].bits = layers[1].bits = layers[2].bits = 8;  // layer 0's q/k/v alike
  for (int e = 0; e < 2; ++e) {
    for (const char* m : {"gate_proj", "up_proj", "down_proj"}) {
      layers.push_back(
          {"model.layers.1.mlp.experts." + std::to_string(e) + "." + m, 8, 64, true, false});
    }
  }
  auto j = GptqQuantizationConfig(GptqConfigFromLayers(
      layers, {"model.mtp.mlp.gate_proj", "model.mtp.mlp.up_proj"}, GptqFormat::kV1));
  ASSERT_THAT(j, IsOk());
  std::vector<std::string> keys;
  for (auto it = (*j)["dynamic"].begin(); it != (*j)["dynamic"].end(); ++it) {
    keys.push_back(it.key());
  }
  EXPECT_THAT(keys,
              ElementsAre("+:^model\\.layers\\.0\\.self_attn\\.(q_proj|k_proj|v_proj|qkv_proj)$",
                          "+:^model\\.layers\\.1\\.mlp\\.experts(\\..+)?$",
                          "-:^model\\.mtp\\.mlp\\.(gate_proj|up_proj|gate_up_proj)$"));
  EXPECT_EQ((*j)["dynamic"][keys[0]]["bits"], 8);
  EXPECT_EQ((*j)["dynamic"][keys[1]]["group_size"], 64);
  // GPTQModel asks with the checkpoint's names, vLLM with its fused modules' names.
  for (const char* name : {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                           "model.layers.0.self_attn.qkv_proj"}) {
    EXPECT_TRUE(Matches(keys[0], name)) << name;
  }
  for (const char* name : {"model.layers.0.self_attn.o_proj", "model.layers.10.self_attn.q_proj",
                           "model.layers.0.self_attn.q_proj_x"}) {
    EXPECT_FALSE(Matches(keys[0], name)) << name;
  }
  for (const char* name :
       {"model.layers.1.mlp.experts", "model.layers.1.mlp.experts.3.down_proj"}) {
    EXPECT_TRUE(Matches(keys[1], name)) << name;
  }
  for (const char* name : {"model.layers.11.mlp.experts", "model.layers.1.mlp.experts_x"}) {
    EXPECT_FALSE(Matches(keys[1], name)) << name;
  }
  EXPECT_TRUE(Matches(keys[2], "model.mtp.mlp.gate_up_proj"));
  EXPECT_TRUE(Matches(keys[2], "model.mtp.mlp.up_proj"));
  EXPECT_FALSE(Matches(keys[2], "model.mtp.mlp.down_proj"));
}

TEST(GptqConfigTest, FusedPartsThatDifferKeepOnePatternEach) {
  // vLLM cannot load these (the loader rules say so); GPTQModel still reads each part right.
  auto j = GptqQuantizationConfig(
      GptqConfigFromLayers({{"model.layers.0.self_attn.q_proj", 8, 128, true, false},
                            {"model.layers.0.self_attn.k_proj", 4, 128, true, false},
                            {"model.layers.0.self_attn.v_proj", 4, 128, true, false}},
                           {}, GptqFormat::kV1));
  ASSERT_THAT(j, IsOk());
  EXPECT_EQ(
      (*j)["dynamic"].dump(),
      R"({"+:^model\\.layers\\.0\\.self_attn\\.q_proj$":{"bits":8,"group_size":128,"sym":true,)"
      R"("desc_act":false}})");
}

TEST(GptqConfigTest, DynamicOverridesOnlyWhereLayersDiffer) {
  GptqCheckpointConfig cfg =
      GptqConfigFromLayers({{"model.layers.0.self_attn.q_proj", 4, 128, false, false},
                            {"model.layers.0.mlp.down_proj", 8, 128, false, false},
                            {"model.layers.1.self_attn.q_proj", 4, 128, false, false},
                            {"model.layers.1.mlp.down_proj", 4, -1, true, true},
                            {"lm_head", 4, 128, false, false}},
                           {}, GptqFormat::kV2);
  EXPECT_EQ(cfg.bits, 4);
  EXPECT_EQ(cfg.group_size, 128);
  EXPECT_FALSE(cfg.sym);
  EXPECT_FALSE(cfg.desc_act);
  auto j = GptqQuantizationConfig(cfg);
  ASSERT_THAT(j, IsOk());
  EXPECT_EQ((*j)["checkpoint_format"], "gptq_v2");
  EXPECT_EQ((*j)["lm_head"], true);
  ASSERT_TRUE(j->contains("dynamic"));
  const auto& dyn = (*j)["dynamic"];
  EXPECT_EQ(dyn.size(), 2u);
  const std::string p0 = "+:^model\\.layers\\.0\\.mlp\\.down_proj$";
  ASSERT_TRUE(dyn.contains(p0)) << dyn.dump();
  EXPECT_EQ(dyn[p0]["bits"], 8);
  EXPECT_EQ(dyn[p0]["group_size"], 128);
  EXPECT_EQ(dyn[p0]["sym"], false);
  EXPECT_EQ(dyn[p0]["desc_act"], false);
  const std::string p1 = "+:^model\\.layers\\.1\\.mlp\\.down_proj$";
  ASSERT_TRUE(dyn.contains(p1));
  EXPECT_EQ(dyn[p1]["group_size"], -1);
  EXPECT_EQ(dyn[p1]["sym"], true);
  EXPECT_EQ(dyn[p1]["desc_act"], true);
  EXPECT_FALSE(j->contains("modules_in_block_to_quantize"));
}

TEST(GptqConfigTest, SkippedLayersGiveNegativePatternsAndModulesInBlock) {
  GptqCheckpointConfig cfg = GptqConfigFromLayers(
      {{"model.layers.0.self_attn.q_proj", 4, 128, true, false},
       {"model.layers.0.mlp.up_proj", 4, 128, true, false},
       {"model.layers.1.self_attn.q_proj", 4, 128, true, false},
       {"model.layers.1.mlp.up_proj", 4, 128, true, false}},
      {"model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"}, GptqFormat::kV1);
  auto j = GptqQuantizationConfig(cfg);
  ASSERT_THAT(j, IsOk());
  const auto& dyn = (*j)["dynamic"];
  EXPECT_EQ(dyn.size(), 2u);
  EXPECT_TRUE(dyn.contains("-:^model\\.layers\\.0\\.mlp\\.down_proj$"));
  EXPECT_TRUE(dyn["-:^model\\.layers\\.1\\.mlp\\.down_proj$"].empty());
  ASSERT_TRUE(j->contains("modules_in_block_to_quantize"));
  EXPECT_EQ((*j)["modules_in_block_to_quantize"].dump(), R"([["self_attn.q_proj","mlp.up_proj"]])");
}

TEST(GptqConfigTest, Errors) {
  GptqCheckpointConfig cfg;
  cfg.layers = {{"model.layers.0.mlp.down_proj", 4, 128, true, false}};
  cfg.skipped_layers = {"model.layers.1.mlp.down_proj"};
  EXPECT_THAT(GptqQuantizationConfig(cfg),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"mlp.down_proj\" is skipped in another block")));
  cfg.skipped_layers = {"model.layers.0.mlp.down_proj"};
  EXPECT_THAT(GptqQuantizationConfig(cfg),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listed twice")));
  cfg.skipped_layers.clear();
  cfg.bits = 5;
  EXPECT_THAT(GptqQuantizationConfig(cfg),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got 5")));
  cfg.bits = 4;
  cfg.layers[0].group_size = 0;
  EXPECT_THAT(GptqQuantizationConfig(cfg),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("layer model.layers.0.mlp.down_proj: group_size")));
  cfg.layers[0].group_size = 128;
  cfg.damp_percent = 0.0;
  EXPECT_THAT(GptqQuantizationConfig(cfg),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("damp_percent")));
}

}  // namespace
}  // namespace rtnq
