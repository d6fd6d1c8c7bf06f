// The memory rules of memory_budget.h: the reservation FIFO, stream shares, per-tensor shares,
// and what TensorJob::Plan reserves per path (the table in docs/PROTOCOL.md).
#include "server/memory_budget.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/session.h"
#include "server/tensor_job.h"
#include "tests/server/harness.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::server::testing {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

class CountingWaiter : public BudgetWaiter {
 public:
  void OnMemoryAvailable() override { ++wakeups; }
  int wakeups = 0;
};

struct Waiters {
  std::vector<std::shared_ptr<CountingWaiter>> owners;
  std::vector<std::weak_ptr<BudgetWaiter>> weak;
  explicit Waiters(int n) {
    for (int i = 0; i < n; ++i) {
      owners.push_back(std::make_shared<CountingWaiter>());
      weak.push_back(owners.back());
    }
  }
};

TEST(MemoryBudgetTest, ReservesWithinTheLimitAndAloneBeyondIt) {
  int64_t gauge = -1;
  MemoryBudget b(100, [&](int64_t used) { gauge = used; });
  Waiters w(3);
  Wakeups wake;
  EXPECT_TRUE(b.TryReserve(60, w.weak[0], wake));
  EXPECT_EQ(gauge, 60);
  EXPECT_FALSE(b.TryReserve(41, w.weak[1], wake));  // over the limit: waits in line
  EXPECT_EQ(b.waiting(), 1);
  b.Release(60, wake);
  EXPECT_TRUE(b.TryReserve(41, w.weak[1], wake));
  EXPECT_EQ(b.waiting(), 0);
  b.Release(41, wake);
  // At the limit exactly, then beyond it alone (nothing else is held), then nothing more.
  EXPECT_TRUE(b.TryReserve(100, w.weak[0], wake));
  b.Release(100, wake);
  EXPECT_TRUE(b.TryReserve(500, w.weak[0], wake));
  EXPECT_FALSE(b.TryReserve(0, w.weak[1], wake));  // even nothing waits behind a full budget
  EXPECT_EQ(b.peak(), 500);
  b.Release(500, wake);
  EXPECT_TRUE(b.TryReserve(0, w.weak[1], wake));
}

TEST(MemoryBudgetTest, AnOversizeReservationIsNotStarvedByLaterOnes) {
  MemoryBudget b(100);
  Waiters w(3);
  Wakeups wake;
  ASSERT_TRUE(b.TryReserve(30, w.weak[0], wake));
  EXPECT_FALSE(b.TryReserve(250, w.weak[1], wake));  // needs the whole server
  // Small reservations that would fit queue behind it, in order.
  EXPECT_FALSE(b.TryReserve(10, w.weak[2], wake));
  EXPECT_EQ(b.waiting(), 2);
  wake.clear();
  b.Release(30, wake);
  ASSERT_EQ(wake.size(), 1u);  // the first in line is woken
  EXPECT_FALSE(b.TryReserve(10, w.weak[2], wake));
  wake.clear();
  EXPECT_TRUE(b.TryReserve(250, w.weak[1], wake));
  ASSERT_EQ(wake.size(), 1u);                       // and wakes the next
  EXPECT_FALSE(b.TryReserve(10, w.weak[2], wake));  // nothing fits beside an oversize one
  b.Release(250, wake);
  EXPECT_TRUE(b.TryReserve(10, w.weak[2], wake));
  EXPECT_EQ(b.waiting(), 0);
}

TEST(MemoryBudgetTest, LeavingTheLineWakesTheNextAndDeadWaitersDoNotBlockIt) {
  MemoryBudget b(100);
  Waiters w(3);
  Wakeups wake;
  b.ForceReserve(100);
  EXPECT_FALSE(b.TryReserve(10, w.weak[0], wake));
  EXPECT_FALSE(b.TryReserve(10, w.weak[1], wake));
  b.Release(100, wake);
  wake.clear();
  b.CancelReservation(w.weak[0], wake);
  ASSERT_EQ(wake.size(), 1u);
  EXPECT_TRUE(b.TryReserve(10, w.weak[1], wake));
  EXPECT_FALSE(b.TryReserve(95, w.weak[0], wake));
  w.owners[0].reset();  // a stream gone without leaving the line
  EXPECT_TRUE(b.TryReserve(10, w.weak[2], wake));
  EXPECT_EQ(b.waiting(), 0);
}

TEST(MemoryBudgetTest, ReadWaitersAreWokenOnceByTheNextRelease) {
  MemoryBudget b(100);
  Waiters w(1);
  b.ForceReserve(100);
  EXPECT_FALSE(b.Available(&w.weak[0]));
  EXPECT_FALSE(b.Available(&w.weak[0]));  // registered once, not twice
  Wakeups wake;
  b.Release(50, wake);
  WakeAll(wake);
  EXPECT_EQ(w.owners[0]->wakeups, 1);
  b.Release(50, wake);
  WakeAll(wake);
  EXPECT_EQ(w.owners[0]->wakeups, 1);
  EXPECT_TRUE(b.Available(&w.weak[0]));
}

TEST(StreamMemoryTest, StreamShareHasItsOwnLimit) {
  MemoryBudget global(1000);
  StreamMemory a(global, 100), b(global, 100);
  Waiters w(2);
  Wakeups wake;
  EXPECT_TRUE(a.TryReserve(80, w.weak[0], wake));
  EXPECT_FALSE(a.TryReserve(30, w.weak[0], wake));  // over its own limit
  EXPECT_TRUE(a.TryReserve(0, w.weak[0], wake));    // nothing always fits
  EXPECT_TRUE(b.TryReserve(300, w.weak[1], wake));  // oversize for the stream, holds nothing
  EXPECT_TRUE(a.UnderLimits(w.weak[0]));
  a.Adjust(20, wake);
  EXPECT_FALSE(a.UnderLimits(w.weak[0]));
  a.ReleaseAll(wake);
  b.ReleaseAll(wake);
  EXPECT_EQ(global.used(), 0);
  EXPECT_EQ(global.peak(), 400);
}

TEST(TensorShareTest, DataCountsOnlyBeyondTheFloorWhileTheReservationIsHeld) {
  TensorShare s(/*fixed=*/50, /*floor=*/100, 1, 1);
  EXPECT_EQ(s.reservation(), 150);
  EXPECT_FALSE(s.HasRoom());  // not granted yet
  EXPECT_EQ(s.Granted(), 0);
  EXPECT_TRUE(s.HasRoom());
  EXPECT_EQ(s.AddInput(60), 0);  // within the floor
  EXPECT_EQ(s.AddInput(60), 20);
  EXPECT_FALSE(s.HasRoom());
  EXPECT_EQ(s.accounted(), 170);
  // A step consumes 100 bytes of input and queues 100 bytes of outputs: no change.
  EXPECT_EQ(s.ConsumeInput(100) + s.AddOutput(100), 0);
  EXPECT_EQ(s.RemoveOutput(100), -20);
  EXPECT_TRUE(s.HasRoom());
  // The last step: its outputs queued, then the reservation goes.
  EXPECT_EQ(s.ConsumeInput(20) + s.AddOutput(70) + s.Close(), 70 - 150);
  EXPECT_EQ(s.accounted(), 70);
  EXPECT_EQ(s.AddInput(10), 0);  // closed: late data of a failed tensor is not accounted
  EXPECT_EQ(s.RemoveOutput(70), -70);
}

TEST(TensorShareTest, InputIsWeightedByTheOutputRatioSoStepsNeverAdd) {
  // A row of 8 bytes (2 F32) becoming 18 bytes of CODES (2 codes + 2 scales + 2 zeros, gs 1).
  TensorShare s(0, 18, 18, 8);
  EXPECT_EQ(s.Weigh(8), 18);
  EXPECT_EQ(s.Weigh(3), 7);  // rounded up
  s.Granted();
  int64_t total = s.AddInput(3) + s.AddInput(5) + s.AddInput(16);  // three rows arrived
  EXPECT_EQ(total, 54 - 18);
  // Two rows quantized: 16 input bytes become 36 output bytes; nothing changes.
  EXPECT_EQ(s.ConsumeInput(16) + s.AddOutput(36), 0);
  EXPECT_EQ(s.Close() + s.RemoveOutput(36), -54);
  TensorShare shrinking(0, 8, 4, 8);  // outputs smaller than the input: weight 1
  EXPECT_EQ(shrinking.Weigh(8), 8);
}

// TensorJob::Plan's reservations: the table "which path, which memory" of docs/PROTOCOL.md.
class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto engine = Engine::Create(EngineOptions{1, ""});
    ASSERT_THAT(engine, IsOk());
    engine_ = *std::move(engine);
  }
  std::shared_ptr<TensorJob> Plan(const v1::SessionConfig& config, std::vector<int64_t> shape,
                                  const std::string& dtype = "F32",
                                  int64_t max_reservation = INT64_MAX) {
    int64_t n = dtype == "F32" ? 4 : 2;
    for (int64_t d : shape) n *= d;
    v1::TensorHeader h = HeaderRequest("t.weight", dtype, shape, n).header();
    auto session = SessionFromProto(config);
    EXPECT_THAT(session, IsOk());
    return TensorJob::Plan(h, *session, *engine_, &cancel_, PlanLimits{1 << 20, max_reservation});
  }
  std::unique_ptr<Engine> engine_;
  std::atomic<bool> cancel_{false};
};

TEST_F(PlanTest, RowStreamingReservesOneRow) {
  v1::SessionConfig fake;  // int4 asym g32, fake quant
  auto job = Plan(fake, {8, 64});
  ASSERT_EQ(job->mode(), TensorJob::Mode::kRowStream);
  EXPECT_EQ(job->share().fixed(), 0);
  EXPECT_EQ(job->share().floor(), 256);
  EXPECT_EQ(job->share().Weigh(256), 256);
  v1::SessionConfig codes;
  codes.set_output_form(v1::OUTPUT_FORM_CODES);
  // 64 codes + 2 groups x (scale + zero) x 4 bytes = 80 bytes per 256 input bytes: no weight.
  EXPECT_EQ(Plan(codes, {8, 64})->share().floor(), 256);
  // Group size 1 on BF16: 64 codes + 64 x 8 bytes = 576 bytes per 128 input bytes.
  codes.mutable_default_config()->set_group_size(1);
  auto expanding = Plan(codes, {8, 64}, "BF16");
  EXPECT_EQ(expanding->share().floor(), 576);
  EXPECT_EQ(expanding->share().Weigh(128), 576);
}

TEST_F(PlanTest, PackedFormsReserveTheKeptCodesAndTheirPackedOutputs) {
  v1::SessionConfig gptq;
  gptq.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
  gptq.mutable_default_config()->set_scheme(v1::SCHEME_SYM);
  auto job = Plan(gptq, {64, 128});
  ASSERT_EQ(job->mode(), TensorJob::Mode::kRowStream);
  // Kept: 8192 codes + 256 groups x 4 (sym: no zeros). Packed GPTQ 4-bit: qweight 16 x 64 x 4,
  // qzeros 4 x 8 x 4, scales 4 x 64 x 2, g_idx 128 x 4.
  EXPECT_EQ(job->share().fixed(), 8192 + 1024 + 4096 + 128 + 512 + 512);
  EXPECT_EQ(job->share().floor(), 512);
  gptq.set_metrics_only(true);  // nothing is kept for packing
  EXPECT_EQ(Plan(gptq, {64, 128})->share().fixed(), 0);
}

TEST_F(PlanTest, BufferedTensorsReserveTheirInputOrTheirOutputsIfLarger) {
  for (auto mutate : std::vector<void (*)(v1::QuantConfigPatch&)>{
           [](v1::QuantConfigPatch& c) { c.set_group_dim(0); },
           [](v1::QuantConfigPatch& c) { c.set_enable_mse_search(true); },
           [](v1::QuantConfigPatch& c) { c.set_double_quant_dtype(v1::QUANT_DTYPE_INT); }}) {
    v1::SessionConfig config;
    mutate(*config.mutable_default_config());
    auto job = Plan(config, {8, 64});
    ASSERT_EQ(job->mode(), TensorJob::Mode::kBuffered);
    EXPECT_EQ(job->share().fixed(), 0);
    EXPECT_EQ(job->share().floor(), 2048);
    config.set_output_form(v1::OUTPUT_FORM_CODES);
    config.mutable_default_config()->set_group_size(1);  // 9 bytes per 2-byte element
    EXPECT_EQ(Plan(config, {8, 64}, "BF16")->share().floor(), 512 * 9);
  }
}

TEST_F(PlanTest, AReservationOverTheLimitIsRefusedAtTheHeader) {
  v1::SessionConfig dim0;
  dim0.mutable_default_config()->set_group_dim(0);
  EXPECT_EQ(Plan(dim0, {8, 64}, "F32", 2048)->mode(), TensorJob::Mode::kBuffered);  // at it
  auto refused = Plan(dim0, {8, 64}, "F32", 2047);
  ASSERT_EQ(refused->mode(), TensorJob::Mode::kFailed);
  EXPECT_THAT(refused->header_error(), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(refused->header_error().message(),
              HasSubstr("tensor \"t.weight\": quantizing it holds 2048 bytes at once (the whole "
                        "tensor (its input or its outputs)), over the server's "
                        "--max_reservation_bytes 2047"));
  v1::SessionConfig fake;  // one row of 256 bytes
  EXPECT_EQ(Plan(fake, {8, 64}, "F32", 256)->mode(), TensorJob::Mode::kRowStream);
  EXPECT_EQ(Plan(fake, {8, 64}, "F32", 255)->mode(), TensorJob::Mode::kFailed);
  EXPECT_EQ(Plan(fake, {64}, "F32", 0)->mode(), TensorJob::Mode::kEcho);  // reserves nothing
}

}  // namespace
}  // namespace rtnq::server::testing
