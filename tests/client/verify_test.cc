// VerifyCheckpoint on RunQuantize's outputs: good checkpoints pass exactly in every format,
// corrupted stored bytes and changed copies are named, and files without a manifest are refused.
#include "client/verify.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "client/checkpoint_util.h"
#include "client/local_backend.h"
#include "client/quantize_run.h"
#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/test_dir.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::Contains;
using ::testing::HasSubstr;

// Two linear layers with F32 biases and a norm.
std::string Checkpoint(const std::string& path) {
  const std::vector<TensorSpec> specs = {{"a.weight", ElemType::kBF16, {64, 128}},
                                         {"a.bias", ElemType::kF32, {64}},
                                         {"b.weight", ElemType::kF32, {32, 64}},
                                         {"norm.weight", ElemType::kF32, {64}}};
  SafetensorsWriter w = *SafetensorsWriter::Create(path, specs);
  for (const TensorSpec& s : specs) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    std::vector<uint8_t> bytes(n * ElemSize(s.dtype));
    for (int64_t i = 0; i < n; ++i) {
      const float v = std::sin(0.1f * i) + 0.01f * (i % 7);
      if (s.dtype == ElemType::kF32) {
        std::memcpy(bytes.data() + 4 * i, &v, 4);
      } else {
        const uint16_t h = FloatToBf16(v);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
    EXPECT_THAT(w.WriteTensor(s.name, bytes), IsOk());
  }
  EXPECT_THAT(w.Finish(), IsOk());
  return path;
}

class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir();
    backend_ = *LocalBackend::Create({2, ""});
    input_ = Checkpoint(dir_ + "/in.safetensors");
  }
  std::string Quantize(OutputLayout f) {
    QuantizeRunOptions o;
    o.input = input_;
    o.output = dir_ + "/" + OutputLayoutName(f) + ".safetensors";
    o.format = f;
    std::ostringstream quiet;
    Progress progress(ProgressMode::kQuiet, quiet);
    EXPECT_THAT(RunQuantize(o, *backend_, progress), IsOk());
    return o.output;
  }
  void Flip(const std::string& path, const std::string& tensor) {
    const SafetensorsFile f = *SafetensorsFile::Open(path);
    const TensorInfo* t = f.Find(tensor);
    ASSERT_NE(t, nullptr);
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(8 + f.header_size() + t->data_offset));
    io.put(static_cast<char>(t->data[0] ^ 0x11));
  }

  std::string dir_;
  std::string input_;
  std::unique_ptr<LocalBackend> backend_;
};

TEST_F(VerifyTest, GoodOutputsPassExactlyInEveryFormat) {
  for (OutputLayout f : {OutputLayout::kFake, OutputLayout::kInc, OutputLayout::kGptq}) {
    SCOPED_TRACE(OutputLayoutName(f));
    const absl::StatusOr<VerifyReport> r =
        VerifyCheckpoint(input_, Quantize(f), {}, backend_->engine());
    ASSERT_THAT(r, IsOk());
    EXPECT_TRUE(r->ok()) << (r->problems.empty() ? "" : r->problems[0]);
    ASSERT_EQ(r->quantized.size(), 2u);
    for (const TensorCheck& c : r->quantized) {
      EXPECT_EQ(c.exact, "exact") << c.name;
      EXPECT_GT(c.snr_db, 10) << c.name;
    }
    EXPECT_EQ(r->copied_identical, 2);  // a.bias (F16 in gptq) and norm.weight
  }
  // The GPTQ bias of a quantized layer is stored as float16.
  const SafetensorsFile g = *SafetensorsFile::Open(dir_ + "/gptq.safetensors");
  EXPECT_EQ(g.Find("a.bias")->dtype, ElemType::kF16);
}

TEST_F(VerifyTest, CorruptionIsNamed) {
  const std::string gptq = Quantize(OutputLayout::kGptq);
  Flip(gptq, "b.qweight");
  Flip(gptq, "norm.weight");
  absl::StatusOr<VerifyReport> r = VerifyCheckpoint(input_, gptq, {}, backend_->engine());
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(r->ok());
  EXPECT_THAT(r->problems, Contains(HasSubstr("b.weight: ")));
  EXPECT_THAT(r->problems, Contains(HasSubstr("norm.weight: bytes differ")));
  EXPECT_TRUE(r->quantized[0].problems.empty());

  const std::string fake = Quantize(OutputLayout::kFake);
  Flip(fake, "a.weight");
  r = VerifyCheckpoint(input_, fake, {}, backend_->engine());
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->problems, Contains(HasSubstr("a.weight: ")));
}

TEST_F(VerifyTest, CheckpointWithoutManifestIsRefused) {
  EXPECT_THAT(VerifyCheckpoint(input_, input_, {}, backend_->engine()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rtnq.quantization")));
  EXPECT_THAT(VerifyCheckpoint(input_, dir_ + "/none.safetensors", {}, backend_->engine()),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace rtnq::client
