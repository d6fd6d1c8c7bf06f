// The rules a stream lives by, without the network: the progress rules (idle, minimum rate,
// longest duration), the parsing of raw request messages, and the stream's state machine driven
// through a fake call (stream_driver.h): reservations in line, planning off the lock, parse
// failures that end the stream without losing the tensors before them.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/support/slice.h"
#include "gtest/gtest.h"
#include "server/progress_monitor.h"
#include "server/request_codec.h"
#include "tests/server/harness.h"
#include "tests/server/stream_driver.h"

namespace rtnq::server::testing {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

Clock::time_point At(Clock::time_point t0, double seconds) {
  return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

ServerOptions RuleOptions() {
  ServerOptions o;
  o.idle_timeout_seconds = 10;
  o.min_bytes_per_second = 1000;
  o.min_rate_grace_seconds = 2;
  o.max_message_bytes = 4000;  // the bucket holds 2 + 4000 / 1000 = 6 s
  o.max_stream_seconds = 0;
  return o;
}

TEST(ProgressMonitorTest, IdleCountsOnlyTimeWaitingOnTheClientWithoutData) {
  const auto t0 = Clock::now();
  ProgressMonitor m(RuleOptions(), t0);
  const char* reason = nullptr;
  m.Update(t0, ClientWait::kNone);
  m.Update(At(t0, 100), ClientWait::kIdle);  // the server worked for 100 s: not idle
  EXPECT_TRUE(m.Check(At(t0, 100), &reason).ok());
  m.Update(At(t0, 109), ClientWait::kIdle);
  m.Progress(0);  // an empty chunk is no progress
  m.Update(At(t0, 109.9), ClientWait::kIdle);
  EXPECT_TRUE(m.Check(At(t0, 109.9), &reason).ok());  // just below
  m.Update(At(t0, 110.1), ClientWait::kIdle);
  const absl::Status s = m.Check(At(t0, 110.1), &reason);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("idle timeout, --idle_timeout"));
  EXPECT_STREQ(reason, "idle_timeout");
  m.Progress(1);  // one byte of data resets it
  m.Update(At(t0, 115), ClientWait::kIdle);
  EXPECT_TRUE(m.Check(At(t0, 115), &reason).ok());
}

TEST(ProgressMonitorTest, ATrickleBelowTheMinimumRateEndsInBoundedTime) {
  const auto t0 = Clock::now();
  ProgressMonitor m(RuleOptions(), t0);
  const char* reason = nullptr;
  m.Update(t0, ClientWait::kOwed);
  // 100 bytes/s against 1000: the bucket (6 s) loses 0.9 s per second: empty after 6.67 s.
  double t = 0;
  absl::Status s;
  while (s.ok() && t < 60) {
    t += 0.1;
    m.Progress(10);
    m.Update(At(t0, t), ClientWait::kOwed);
    s = m.Check(At(t0, t), &reason);
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_STREQ(reason, "min_rate");
  EXPECT_NEAR(t, 6.7, 0.15);
  EXPECT_THAT(s.message(), HasSubstr("below the server's minimum rate of 1000 bytes/s "
                                     "(--min_bytes_per_second, with a 2 s grace"));
}

TEST(ProgressMonitorTest, AClientAtTheMinimumRateIsNeverEndedWhateverItsMessageSize) {
  const auto t0 = Clock::now();
  ProgressMonitor m(RuleOptions(), t0);
  const char* reason = nullptr;
  m.Update(t0, ClientWait::kOwed);
  // Whole messages of max_message_bytes arriving at exactly 1000 bytes/s: 4 s each, for an hour.
  for (int i = 1; i <= 900; ++i) {
    m.Update(At(t0, 4.0 * i), ClientWait::kOwed);
    ASSERT_TRUE(m.Check(At(t0, 4.0 * i), &reason).ok()) << i;
    m.Progress(4000);
  }
  // Time waiting on the server (kNone) or between tensors (kIdle) costs no allowance.
  m.Update(At(t0, 3600), ClientWait::kNone);
  m.Update(At(t0, 4000), ClientWait::kIdle);
  m.Update(At(t0, 4005), ClientWait::kOwed);
  m.Update(At(t0, 4010), ClientWait::kOwed);
  EXPECT_TRUE(m.Check(At(t0, 4010), &reason).ok());
}

TEST(ProgressMonitorTest, StreamsOlderThanTheLimitEnd) {
  ServerOptions o = RuleOptions();
  o.max_stream_seconds = 30;
  const auto t0 = Clock::now();
  ProgressMonitor m(o, t0);
  const char* reason = nullptr;
  m.Progress(1 << 20);
  EXPECT_TRUE(m.Check(At(t0, 29.9), &reason).ok());
  const absl::Status s = m.Check(At(t0, 30.1), &reason);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(),
              HasSubstr("open for more than 30 s (the server's --max_stream_seconds)"));
  EXPECT_STREQ(reason, "max_stream_seconds");
}

TEST(ProgressMonitorTest, RulesSetToZeroAreOff) {
  ServerOptions o;
  o.idle_timeout_seconds = 0;
  o.min_bytes_per_second = 0;
  o.max_stream_seconds = 0;
  const auto t0 = Clock::now();
  ProgressMonitor m(o, t0);
  const char* reason = nullptr;
  m.Update(t0, ClientWait::kOwed);
  m.Update(At(t0, 1e6), ClientWait::kOwed);
  EXPECT_TRUE(m.Check(At(t0, 1e6), &reason).ok());
  EXPECT_EQ(ProgressMonitor::SweepPeriod(o), std::chrono::milliseconds(1000));
  o.idle_timeout_seconds = 0.1;
  EXPECT_EQ(ProgressMonitor::SweepPeriod(o), std::chrono::milliseconds(25));
}

// A request whose header name is `name` (bytes as given, not necessarily UTF-8).
std::string HeaderWithName(const std::string& name) {
  std::string header = "\x0a" + std::string(1, static_cast<char>(name.size())) + name;
  header += std::string(
      "\x12\x03"
      "F32\x20\x04",
      7);
  return "\x12" + std::string(1, static_cast<char>(header.size())) + header;
}

TEST(RequestCodecTest, NamesTheFieldThatIsNotUtf8) {
  const auto& type = *v1::QuantizeRequest::descriptor();
  EXPECT_EQ(DescribeParseFailure(HeaderWithName("ok.weight"), type), "");
  EXPECT_EQ(DescribeParseFailure(HeaderWithName("ab\xff\xfe"), type),
            "header.name is not valid UTF-8 (byte 2 of 4; proto3 strings must be UTF-8)");
  // Nested: config.weight_config[].key.
  v1::QuantizeRequest r;
  r.mutable_config()->add_weight_config()->set_key("KEY");
  std::string bytes = r.SerializeAsString();
  bytes.replace(bytes.find("KEY"), 3, "K\xc3(");
  EXPECT_THAT(DescribeParseFailure(bytes, type),
              HasSubstr("config.weight_config.key is not valid UTF-8 (byte 1 of 3"));
  EXPECT_THAT(DescribeParseFailure(std::string("\x12\x40", 2), type),
              HasSubstr("header: length runs past the end"));
  EXPECT_THAT(DescribeParseFailure(std::string("\x1a\x05\x0a\x07xy", 6), type),
              HasSubstr("chunk: length runs past the end"));
  EXPECT_THAT(DescribeParseFailure(std::string("\x1a\x04\x0a\x07xy", 6), type),
              HasSubstr("chunk.data: malformed or truncated"));
  EXPECT_THAT(DescribeParseFailure(std::string("\x00\x01", 2), type), HasSubstr("malformed"));
}

TEST(RequestCodecTest, ParseFailuresAreInvalidArgumentNamingTheMessage) {
  grpc::Slice slice(HeaderWithName("t\xff"));
  grpc::ByteBuffer buffer(&slice, 1);
  v1::QuantizeRequest r;
  const absl::Status s = ParseRequest(buffer, 3, r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("request message 3 ("));
  EXPECT_THAT(s.message(), HasSubstr("is not a QuantizeRequest: header.name is not valid UTF-8"));
  grpc::Slice good(HeaderWithName("t.weight"));
  grpc::ByteBuffer good_buffer(&good, 1);
  ASSERT_TRUE(ParseRequest(good_buffer, 4, r).ok());
  EXPECT_EQ(r.header().name(), "t.weight");
}

// Drives streams on a fake call: writes complete as soon as they start, tasks run when asked.
class DrivenTest : public ::testing::Test {
 protected:
  static ServerOptions Options() {
    ServerOptions o = RuleOptions();
    o.memory_budget_bytes = 64 << 10;
    o.stream_budget_bytes = 16 << 10;
    o.max_message_bytes = 64 << 10;
    o.max_tensor_bytes = 1 << 20;
    o.idle_timeout_seconds = 1;
    return o;
  }
  void SetUp() override { ctx_ = std::make_unique<DriverContext>(Options()); }

  // Runs tasks and completes writes until nothing moves.
  void Pump(DrivenStream& s) {
    for (int i = 0; i < 10000; ++i) {
      const bool ran = ctx_->manual().RunOne();
      const bool wrote = s.CompleteWrite(true);
      if (!ran && !wrote) return;
    }
    ADD_FAILURE() << "the stream never settles";
  }
  void Start(DrivenStream& s, const v1::SessionConfig& config = {}) {
    ASSERT_TRUE(s.Deliver(ConfigRequest(config)));
    Pump(s);
  }
  // Sends a tensor's chunks (its header already went).
  void SendData(DrivenStream& s, const Tensor& t, size_t chunk = 4096) {
    for (const auto& r : TensorRequests(t, chunk)) {
      if (!r.has_chunk()) continue;
      ASSERT_TRUE(s.Deliver(r)) << "no read in flight";
      Pump(s);
    }
  }
  static ResultCollector Collect(const DrivenStream& s) {
    ResultCollector c;
    for (const auto& r : s.responses()) c.Add(r);
    return c;
  }

  std::unique_ptr<DriverContext> ctx_;
};

TEST_F(DrivenTest, AMessageThatDoesNotParseEndsTheStreamAndTheTensorsBeforeItAreAnswered) {
  DrivenStream s(*ctx_);
  Start(s);
  // The first tensor complete, but its last step not run yet when the bad message arrives.
  const Tensor t = RandomTensor("a.weight", "F32", {4, 64}, 1);
  const auto requests = TensorRequests(t, 1024);
  ASSERT_TRUE(s.Deliver(requests[0]));
  Pump(s);  // planned and reserved
  ASSERT_TRUE(s.Deliver(requests[1]));
  EXPECT_EQ(ctx_->manual().pending(), 1u);  // its last step
  ASSERT_TRUE(s.DeliverRaw(HeaderWithName("b\xc0.weight")));
  Pump(s);
  ASSERT_TRUE(s.finished());
  EXPECT_EQ(s.status().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.status().error_message(), HasSubstr("header.name is not valid UTF-8"));
  ResultCollector c = Collect(s);
  EXPECT_EQ(c.result().order_error, "");
  ASSERT_TRUE(c.result().tensors.count("a.weight"));
  EXPECT_TRUE(c.result().tensors.at("a.weight").metrics.has_value());
  EXPECT_TRUE(s.Done());
  EXPECT_EQ(ctx_->memory().used(), 0);
}

TEST_F(DrivenTest, PlanningRunsOffTheStreamSoTheSweepStillEndsIdleStreams) {
  DrivenStream planning(*ctx_), idle(*ctx_);
  Start(planning);
  Start(idle);
  // The header's planning (weight_config resolution) is posted to the work pool and stays
  // there: the stream waits on the server, reads nothing, and its lock is free.
  ASSERT_TRUE(planning.Deliver(HeaderRequest("slow.weight", "F32", {4, 64}, 1024)));
  EXPECT_EQ(ctx_->manual().pending(), 1u);
  const auto later = Clock::now() + std::chrono::seconds(5);
  planning.CheckProgress(later);
  idle.CheckProgress(later);
  EXPECT_FALSE(planning.finished());  // waiting on the server is not idle
  ASSERT_TRUE(idle.finished());
  EXPECT_EQ(idle.status().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(idle.status().error_message(), HasSubstr("idle"));
  // Planning completes; the tensor goes through.
  Pump(planning);
  ASSERT_TRUE(planning.read_pending());
  SendData(planning, RandomTensor("slow.weight", "F32", {4, 64}, 2));
  ASSERT_TRUE(planning.HalfClose());
  Pump(planning);
  EXPECT_TRUE(planning.status().ok()) << planning.status().error_message();
  EXPECT_TRUE(planning.Done() && idle.Done());
  EXPECT_EQ(ctx_->memory().used(), 0);
}

TEST_F(DrivenTest, AMessageArrivingAfterTheStreamFailedIsDropped) {
  DrivenStream s(*ctx_);
  ASSERT_TRUE(s.Deliver(ConfigRequest({})));
  ctx_->manual().RunAll();
  // Its SessionStarted is being written (the client does not take it) and a read is in flight
  // when the idle timeout ends the stream; then a header arrives (found by the fuzzer).
  ASSERT_TRUE(s.write_pending() && s.read_pending());
  s.CheckProgress(Clock::now() + std::chrono::seconds(5));
  EXPECT_FALSE(s.finished());  // waits for the write in flight
  ASSERT_TRUE(s.Deliver(HeaderRequest("late.weight", "F32", {4, 64}, 1024)));
  ASSERT_TRUE(s.cancel_requested());
  s.Cancel();
  ASSERT_TRUE(s.finished());
  EXPECT_EQ(s.status().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(s.Done());
  EXPECT_EQ(ctx_->memory().used(), 0);
}

TEST_F(DrivenTest, AnOversizeReservationIsGrantedBeforeLaterSmallOnes) {
  DrivenStream holder(*ctx_), big(*ctx_), small(*ctx_);
  v1::SessionConfig buffered;
  buffered.mutable_default_config()->set_group_dim(0);
  Start(holder, buffered);
  Start(big, buffered);
  Start(small, buffered);
  // holder reserves 8 KiB and sends half of it.
  const Tensor h = RandomTensor("h.weight", "F32", {8, 256}, 1);
  auto h_requests = TensorRequests(h, 4096);
  ASSERT_TRUE(holder.Deliver(h_requests[0]));
  Pump(holder);
  ASSERT_TRUE(holder.Deliver(h_requests[1]));
  // big needs 128 KiB (over the 64 KiB budget): it waits for the whole server.
  ASSERT_TRUE(big.Deliver(HeaderRequest("big.weight", "F32", {128, 256}, 128 << 10)));
  Pump(big);
  EXPECT_FALSE(big.read_pending());
  EXPECT_EQ(ctx_->memory().waiting(), 1);
  // small (4 KiB) would fit beside holder, but queues behind big.
  ASSERT_TRUE(small.Deliver(HeaderRequest("s.weight", "F32", {4, 256}, 4096)));
  Pump(small);
  EXPECT_FALSE(small.read_pending());
  EXPECT_EQ(ctx_->memory().waiting(), 2);
  // holder finishes: big is granted (the release woke it), small still waits.
  ASSERT_TRUE(holder.Deliver(h_requests[2]));
  Pump(holder);
  Pump(big);
  EXPECT_TRUE(big.read_pending());
  EXPECT_FALSE(small.read_pending());
  EXPECT_EQ(ctx_->memory().waiting(), 1);
  EXPECT_EQ(ctx_->memory().used(), 128 << 10);  // alone
  SendData(big, RandomTensor("big.weight", "F32", {128, 256}, 2), 32 << 10);
  // Once big's outputs are written, small goes.
  Pump(big);
  Pump(small);
  EXPECT_TRUE(small.read_pending());
  EXPECT_EQ(ctx_->memory().waiting(), 0);
  for (DrivenStream* s : {&holder, &big, &small}) {
    s->Cancel();
    Pump(*s);
    EXPECT_TRUE(s->Done());
  }
  EXPECT_EQ(ctx_->memory().used(), 0);
  EXPECT_LE(ctx_->memory().peak(), (128 << 10) + 3 * Options().max_message_bytes);
}

}  // namespace
}  // namespace rtnq::server::testing
