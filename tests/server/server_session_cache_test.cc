// The session cache: one compilation per distinct config, whatever the number of streams that
// send it; LRU eviction at its entry and byte bounds; errors never cached; and through a real
// server, the counters tests and Prometheus read.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/session_cache.h"
#include "tests/server/harness.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::server::testing {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

// A config whose weight_config has `entries` exact-layer entries (bits 8) and `patterns` glob
// entries, in JSON form as the rtnq CLI sends it.
v1::SessionConfig BigConfig(int entries, int patterns = 0, int bits = 4) {
  std::string json = absl::StrCat(R"({"bits": )", bits, R"(, "weight_config": {)");
  for (int i = 0; i < entries + patterns; ++i) {
    if (i > 0) json += ", ";
    json += i < entries ? absl::StrCat(R"("model.layers.)", i, R"(.mlp.up_proj": {"bits": 8})")
                        : absl::StrCat(R"("*.layers.)", i, R"(.*_proj": {"group_size": 64})");
  }
  json += "}}";
  v1::SessionConfig c;
  c.set_config_json(json);
  return c;
}

TEST(SessionCacheTest, SameBytesCompileOnce) {
  SessionCache cache(8, 1 << 20, nullptr);
  const v1::SessionConfig config = BigConfig(10);
  auto first = cache.Get(config);
  ASSERT_THAT(first, IsOk());
  for (int i = 0; i < 5; ++i) {
    auto again = cache.Get(config);
    ASSERT_THAT(again, IsOk());
    EXPECT_EQ(again->get(), first->get());  // the very same parsed session
  }
  EXPECT_EQ(cache.compilations(), 1);
  EXPECT_EQ(cache.hits(), 5);
  // A different output form is a different session, though the config JSON is the same.
  v1::SessionConfig gptq = config;
  gptq.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
  auto other = cache.Get(gptq);
  ASSERT_THAT(other, IsOk());
  EXPECT_NE(other->get(), first->get());
  EXPECT_EQ((*other)->output_form, v1::OUTPUT_FORM_PACKED_GPTQ);
  EXPECT_EQ(cache.compilations(), 2);
  EXPECT_EQ(cache.entries(), 2);
}

TEST(SessionCacheTest, ErrorsAreNotCached) {
  SessionCache cache(8, 1 << 20, nullptr);
  v1::SessionConfig bad;
  bad.set_config_json(R"({"bits": 9})");
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(cache.Get(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bits")));
  }
  EXPECT_EQ(cache.compilations(), 2);
  EXPECT_EQ(cache.entries(), 0);
}

// At the entry bound the least recently used session goes: just below, at and beyond it.
TEST(SessionCacheTest, EvictsTheLeastRecentlyUsedAtTheEntryBound) {
  SessionCache cache(3, 1 << 20, nullptr);
  std::vector<v1::SessionConfig> configs;
  for (int bits = 2; bits <= 6; ++bits) configs.push_back(BigConfig(1, 0, bits));
  for (int i = 0; i < 3; ++i) ASSERT_THAT(cache.Get(configs[i]), IsOk());
  EXPECT_EQ(cache.entries(), 3);
  ASSERT_THAT(cache.Get(configs[0]), IsOk());  // 0 is now the most recent: 1 is the oldest
  EXPECT_EQ(cache.compilations(), 3);
  ASSERT_THAT(cache.Get(configs[3]), IsOk());  // evicts 1
  EXPECT_EQ(cache.entries(), 3);
  ASSERT_THAT(cache.Get(configs[0]), IsOk());
  ASSERT_THAT(cache.Get(configs[2]), IsOk());
  EXPECT_EQ(cache.compilations(), 4);
  ASSERT_THAT(cache.Get(configs[1]), IsOk());  // was evicted: compiled again, evicts 3
  EXPECT_EQ(cache.compilations(), 5);
  for (int i = 0; i < 5; ++i) ASSERT_THAT(cache.Get(configs[4]), IsOk());
  EXPECT_EQ(cache.compilations(), 6);
  EXPECT_EQ(cache.entries(), 3);
}

// Entries are charged their key bytes plus 1 KiB per weight_config entry; the byte bound evicts
// like the entry bound, and a session charged more than the whole bound is used but not kept.
TEST(SessionCacheTest, ByteBound) {
  const v1::SessionConfig a = BigConfig(10, 0, 2), b = BigConfig(10, 0, 3);
  const int64_t charge = static_cast<int64_t>(a.SerializeAsString().size()) + 10 * 1024;
  {
    SessionCache cache(8, 2 * charge, nullptr);  // room for exactly two
    ASSERT_THAT(cache.Get(a), IsOk());
    ASSERT_THAT(cache.Get(b), IsOk());
    EXPECT_EQ(cache.bytes(), 2 * charge);
    ASSERT_THAT(cache.Get(BigConfig(10, 0, 5)), IsOk());  // one more: a goes
    EXPECT_EQ(cache.entries(), 2);
    EXPECT_EQ(cache.bytes(), 2 * charge);
    ASSERT_THAT(cache.Get(b), IsOk());
    EXPECT_EQ(cache.compilations(), 3);
    ASSERT_THAT(cache.Get(a), IsOk());
    EXPECT_EQ(cache.compilations(), 4);
  }
  {
    SessionCache cache(8, charge - 1, nullptr);  // just too small for one
    ASSERT_THAT(cache.Get(a), IsOk());
    ASSERT_THAT(cache.Get(a), IsOk());
    EXPECT_EQ(cache.compilations(), 2);
    EXPECT_EQ(cache.entries(), 0);
    EXPECT_EQ(cache.bytes(), 0);
  }
  {
    SessionCache off(0, 1 << 20, nullptr);  // disabled
    ASSERT_THAT(off.Get(a), IsOk());
    ASSERT_THAT(off.Get(a), IsOk());
    EXPECT_EQ(off.compilations(), 2);
    EXPECT_EQ(off.hits(), 0);
  }
}

// Through a real server: 20 streams sending one 1,000-entry config compile it once, and the
// Prometheus counters say so.
TEST(SessionCacheServerTest, StreamsWithOneConfigCompileItOnce) {
  auto server = StartServer(TestOptions());
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->port());
  const v1::SessionConfig config = BigConfig(1000, 20);
  for (int i = 0; i < 20; ++i) {
    const Tensor t = RandomTensor(absl::StrCat("model.layers.", i, ".mlp.up_proj.weight"), "F32",
                                  {4, 64}, static_cast<uint32_t>(i));
    std::vector<v1::QuantizeRequest> requests{ConfigRequest(config)};
    for (v1::QuantizeRequest& r : TensorRequests(t)) requests.push_back(std::move(r));
    const SessionResult r = RunSession(*stub, requests);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    ASSERT_TRUE(r.tensors.at(t.name).metrics.has_value());
    EXPECT_EQ(r.tensors.at(t.name).header->config().bits(), 8);
    EXPECT_EQ(r.tensors.at(t.name).header->decided_by(),
              absl::StrCat("model.layers.", i, ".mlp.up_proj"));
  }
  EXPECT_EQ(server->session_cache().compilations(), 1);
  EXPECT_EQ(server->session_cache().hits(), 19);
  const std::string text = server->metrics().Text();
  EXPECT_EQ(MetricValue(text, "rtnq_session_config_compilations_total"), 1);
  EXPECT_EQ(MetricValue(text, "rtnq_session_cache_hits_total"), 19);
  // A bad config is refused as before (and counted as a compilation).
  v1::SessionConfig bad;
  bad.set_config_json(R"({"weight_config": {"x": {"bits": 99}}})");
  const SessionResult refused = RunSession(*stub, {ConfigRequest(bad)});
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("weight_config[\"x\"]"));
  EXPECT_EQ(server->session_cache().compilations(), 2);
}

}  // namespace
}  // namespace rtnq::server::testing
