// Candidate sessions on a real in-process server: remote measurements equal local ones bit for
// bit (plain and imatrix-weighted, one and three streams, two replicas), the protocol's rules for
// candidate configs, and the errors a planning client sees.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "client/plan/measure.h"
#include "client/plan/planner.h"
#include "client/plan/remote_measure.h"
#include "client/synth/synth_checkpoint.h"
#include "core/io/sharded_checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/test_dir.h"
#include "tests/server/harness.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;
namespace st = ::rtnq::server::testing;

class PlanRemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = *Engine::Create({.threads = 2});
    dir_ = testing::FreshTestDir();
    SynthOptions o;
    o.shape = *SynthShapeByName("tiny");
    o.output_dir = dir_ + "/in";
    o.seed = 9;
    ASSERT_THAT(WriteSynthCheckpoint(o, *engine_), IsOk());
    server_ = st::StartServer(st::TestOptions());
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(1);
  }

  ClientOptions Client() const {
    ClientOptions c;
    c.server = "127.0.0.1:" + std::to_string(server_->port());
    return c;
  }

  std::unique_ptr<Engine> engine_;
  std::string dir_;
  std::unique_ptr<server::RtnqServer> server_;
};

TEST_F(PlanRemoteTest, RemoteMeasurementsEqualLocalOnesBitForBit) {
  const ShardedCheckpoint in = *ShardedCheckpoint::Open(dir_ + "/in");
  const std::vector<Candidate> candidates =
      *ParseCandidates("int4:g32:sym,int3:g64:asym,nf4:g32,int8:row:sym:mse,int2:g16");
  std::vector<const TensorInfo*> tensors;
  for (const std::string& name : in.names()) {
    const TensorInfo* t = in.Find(name);
    if (t->shape.size() == 2 && name.find("proj") != std::string::npos) tensors.push_back(t);
  }
  ASSERT_EQ(tensors.size(), 14u);
  // Column weights that differ per column, as an importance matrix gives.
  std::vector<TensorImportance> imp(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    for (int64_t j = 0; j < tensors[i]->shape.back(); ++j) {
      imp[i].columns.push_back(0.5f + static_cast<float>(j % 7));
    }
  }
  for (bool weighted : {false, true}) {
    std::vector<MeasureRequest> requests;
    for (size_t i = 0; i < tensors.size(); ++i) {
      requests.push_back({tensors[i], weighted ? &imp[i] : nullptr, {0, 1, 2, 3, 4}});
    }
    requests[3].candidates = {4, 1};  // any subset, any order
    std::vector<std::vector<CandidateMeasure>> local, remote;
    LocalMeasurer lm(*engine_);
    ASSERT_THAT(lm.Measure(requests, candidates, local, {}), IsOk());
    for (int streams : {1, 3}) {
      auto rm = RemoteMeasurer::Create(Client(), streams);
      ASSERT_THAT(rm, IsOk());
      size_t progress = 0;
      ASSERT_THAT((*rm)->Measure(requests, candidates, remote, [&](size_t) { ++progress; }),
                  IsOk());
      EXPECT_EQ(progress, requests.size());
      ASSERT_EQ(remote.size(), local.size());
      for (size_t r = 0; r < local.size(); ++r) {
        ASSERT_EQ(remote[r].size(), requests[r].candidates.size());
        for (size_t k = 0; k < local[r].size(); ++k) {
          EXPECT_EQ(remote[r][k].error, local[r][k].error) << r << " " << k;
          EXPECT_EQ(remote[r][k].mse, local[r][k].mse) << r << " " << k;
          EXPECT_EQ(remote[r][k].snr_db, local[r][k].snr_db) << r << " " << k;
        }
      }
    }
  }
}

TEST_F(PlanRemoteTest, RemotePlanEqualsLocalPlanOverTwoReplicas) {
  const std::unique_ptr<server::RtnqServer> second = st::StartServer(st::TestOptions());
  ASSERT_NE(second, nullptr);
  PlanRequest r;
  r.input = dir_ + "/in";
  r.format = OutputLayout::kGptq;
  r.candidates = *ParseCandidates("int4:g32:sym,int4:g64:asym,int8:g32:sym,keep");
  r.target_bpw = 5;
  LocalMeasurer lm(*engine_);
  const absl::StatusOr<PlanOutcome> local = MakePlan(r, lm, Importance());
  ASSERT_THAT(local, IsOk());
  ClientOptions two = Client();
  two.server += ",127.0.0.1:" + std::to_string(second->port());
  auto rm = *RemoteMeasurer::Create(two, 2);
  const absl::StatusOr<PlanOutcome> remote = MakePlan(r, *rm, Importance());
  ASSERT_THAT(remote, IsOk());
  EXPECT_EQ(remote->config, local->config);
  EXPECT_EQ(remote->total_error, local->total_error);
  EXPECT_EQ(remote->predicted_bytes, local->predicted_bytes);
  EXPECT_THAT(remote->measured_by, HasSubstr("round_robin, 2 streams"));
  second->Shutdown(1);
}

TEST_F(PlanRemoteTest, ClientErrors) {
  EXPECT_THAT(RemoteMeasurer::Create(Client(), 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("streams")));
  // Per-element weights stay local.
  PlanRequest r;
  r.input = dir_ + "/in";
  r.format = OutputLayout::kGptq;
  r.candidates = *ParseCandidates("int4:g32:sym,int8:g32:sym");
  r.target_bpw = 5;
  auto rm = *RemoteMeasurer::Create(Client(), 1);
  absl::StatusOr<Importance> sens = Importance::FromSensitivity(dir_ + "/in");
  ASSERT_THAT(sens, IsOk());
  EXPECT_THAT(MakePlan(r, *rm, *sens), StatusIs(absl::StatusCode::kInvalidArgument,
                                                HasSubstr("per-element weights are not sent")));
  // No server: transient, retried, then the error names the tensor.
  ClientOptions gone;
  gone.server = "127.0.0.1:1";
  gone.max_attempts = 2;
  gone.initial_backoff_seconds = 0.01;
  auto dead = *RemoteMeasurer::Create(gone, 1);
  EXPECT_THAT(MakePlan(r, *dead, Importance()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("tensor \"model.layers.")));
}

// The protocol: candidate sessions as any client may send them.
TEST_F(PlanRemoteTest, CandidateSessionProtocol) {
  auto stub = st::Stub(server_->port());
  auto config = [](std::vector<std::string> candidates, bool metrics_only, bool columns) {
    v1::SessionConfig c;
    for (const std::string& j : candidates) c.add_candidate_configs_json(j);
    c.set_metrics_only(metrics_only);
    c.set_column_errors(columns);
    return c;
  };
  struct Bad {
    v1::SessionConfig config;
    std::string message;
  };
  std::vector<std::string> too_many(65, R"({"bits": 4})");
  const std::vector<Bad> bad = {
      {config({R"({"bits": 4})"}, false, false), "candidate_configs_json needs metrics_only"},
      {config({}, true, true), "column_errors needs candidate_configs_json"},
      {config(too_many, true, true), "65 candidates, at most 64"},
      {config({R"({"bits": 4})", R"({"bits": 9})"}, true, true), "candidate_configs_json[1]"},
      {config({R"({"bitz": 4})"}, true, true), "bitz"},
      {config({R"({"dtype": "fp32"})"}, true, true), "nothing to measure"},
  };
  for (const Bad& b : bad) {
    st::SessionResult r = st::RunSession(*stub, {st::ConfigRequest(b.config)});
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.message;
    EXPECT_THAT(r.status.error_message(), HasSubstr(b.message));
  }
  // At the limit: 64 candidates answer 64 results per tensor; a 1-D tensor is refused in-band
  // and the stream goes on.
  std::vector<std::string> many;
  for (int i = 0; i < 64; ++i) {
    many.push_back(
        absl::StrCat(R"({"bits": )", 2 + i % 7, R"(, "group_size": )", 8 << (i / 7), "}"));
  }
  const st::Tensor w = st::RandomTensor("w", "BF16", {8, 1024}, 1);
  const st::Tensor b = st::RandomTensor("b", "F32", {8}, 2);
  std::vector<v1::QuantizeRequest> requests = {st::ConfigRequest(config(many, true, true))};
  for (const st::Tensor* t : {&b, &w}) {
    for (auto& q : st::TensorRequests(*t)) requests.push_back(q);
  }
  // The harness collects one result per tensor name; count the candidate answers separately.
  grpc::ClientContext ctx;
  auto stream = stub->Quantize(&ctx);
  for (const auto& q : requests) ASSERT_TRUE(stream->Write(q));
  stream->WritesDone();
  v1::QuantizeResponse resp;
  int started = -1, metrics = 0, errors = 0;
  while (stream->Read(&resp)) {
    if (resp.has_started()) started = resp.started().candidates();
    if (resp.has_error()) {
      ++errors;
      EXPECT_THAT(resp.error().message(), HasSubstr("quantizable tensors only"));
    }
    if (resp.has_metrics()) {
      EXPECT_EQ(resp.metrics().candidate_index(), metrics);
      EXPECT_EQ(resp.metrics().column_squared_errors_size(), 1024);
      ++metrics;
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(started, 64);
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(metrics, 64);
}

}  // namespace
}  // namespace rtnq::client
