// Sharded checkpoints: index reading with cross-checks against the shards, index writing.
#include "core/io/sharded_checkpoint.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

namespace fs = std::filesystem;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::path(::testing::TempDir()) / ("rtnq_shard_" + std::to_string(::getpid())) /
                 (std::string(info->test_suite_name()) + "." + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// A one-byte-per-element U8 shard holding `names`, tensor i filled with `fill + i`.
void WriteShard(const std::string& path, const std::vector<std::string>& names, uint8_t fill) {
  std::vector<TensorSpec> specs;
  for (const std::string& n : names) specs.push_back({n, ElemType::kU8, {2}});
  absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, specs);
  ASSERT_THAT(w, IsOk());
  for (size_t i = 0; i < names.size(); ++i) {
    const uint8_t v = static_cast<uint8_t>(fill + i);
    const std::vector<uint8_t> bytes = {v, v};
    ASSERT_THAT(w->WriteTensor(names[i], bytes), IsOk());
  }
  ASSERT_THAT(w->Finish(), IsOk());
}

// Two shards: model-00001-of-00002 holds a, b; model-00002-of-00002 holds c.
std::string TwoShardDir() {
  const std::string dir = TestDir();
  WriteShard(dir + "/" + ShardFileName(0, 2), {"a", "b"}, 10);
  WriteShard(dir + "/" + ShardFileName(1, 2), {"c"}, 20);
  return dir;
}

std::string Index(const nlohmann::json& weight_map) {
  return nlohmann::json{{"metadata", {{"total_size", 6}}}, {"weight_map", weight_map}}.dump();
}

TEST(ShardedCheckpointTest, ShardFileNameMatchesHuggingFace) {
  EXPECT_EQ(ShardFileName(1, 3), "model-00002-of-00003.safetensors");
  EXPECT_EQ(ShardFileName(0, 1), "model-00001-of-00001.safetensors");
}

TEST(ShardedCheckpointTest, WrittenIndexRoundTrips) {
  const std::string dir = TwoShardDir();
  ASSERT_THAT(
      WriteShardIndex(
          dir, {{"a", ShardFileName(0, 2)}, {"b", ShardFileName(0, 2)}, {"c", ShardFileName(1, 2)}},
          6),
      IsOk());
  nlohmann::json index = nlohmann::json::parse(std::ifstream(dir + "/" + kShardIndexFileName));
  EXPECT_EQ(index["metadata"]["total_size"], 6);
  EXPECT_EQ(index["weight_map"]["c"], "model-00002-of-00002.safetensors");

  for (const std::string& path : {dir, dir + "/" + kShardIndexFileName}) {
    absl::StatusOr<ShardedCheckpoint> c = ShardedCheckpoint::Open(path);
    ASSERT_THAT(c, IsOk()) << path;
    EXPECT_EQ(c->total_size(), 6u);
    EXPECT_EQ(c->shards().size(), 2u);
    EXPECT_THAT(c->names(), ElementsAre("a", "b", "c"));
    ASSERT_NE(c->Find("b"), nullptr);
    EXPECT_THAT(std::vector<uint8_t>(c->Find("b")->data.begin(), c->Find("b")->data.end()),
                ElementsAre(11, 11));
    EXPECT_THAT(std::vector<uint8_t>(c->Find("c")->data.begin(), c->Find("c")->data.end()),
                ElementsAre(20, 20));
    EXPECT_EQ(c->ShardOf("c")->path(), dir + "/" + ShardFileName(1, 2));
    EXPECT_EQ(c->Find("zz"), nullptr);
    EXPECT_EQ(c->ShardOf("zz"), nullptr);
  }
}

TEST(ShardedCheckpointTest, OpensSingleFileAndDirectoryWithModelSafetensors) {
  const std::string dir = TestDir();
  WriteShard(dir + "/" + kSingleFileName, {"w"}, 5);
  for (const std::string& path : {dir, dir + "/" + kSingleFileName}) {
    absl::StatusOr<ShardedCheckpoint> c = ShardedCheckpoint::Open(path);
    ASSERT_THAT(c, IsOk()) << path;
    EXPECT_THAT(c->names(), ElementsAre("w"));
    EXPECT_NE(c->Find("w"), nullptr);
    EXPECT_EQ(c->total_size(), std::nullopt);
  }
}

TEST(ShardedCheckpointTest, OpenErrors) {
  const std::string dir = TestDir();
  EXPECT_THAT(ShardedCheckpoint::Open(dir),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("holds neither model.safetensors.index.json nor "
                                 "model.safetensors")));
  EXPECT_THAT(ShardedCheckpoint::Open(dir + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/missing")));
}

struct IndexCase {
  std::string name;
  std::string index;  // JSON text of model.safetensors.index.json in a TwoShardDir
  absl::StatusCode code;
  std::string message;
};

class BadIndexTest : public ::testing::TestWithParam<IndexCase> {};

TEST_P(BadIndexTest, Rejected) {
  const IndexCase& c = GetParam();
  const std::string dir = TwoShardDir();
  WriteText(dir + "/" + kShardIndexFileName, c.index);
  EXPECT_THAT(ShardedCheckpoint::Open(dir), StatusIs(c.code, HasSubstr(c.message)));
}

const std::string kS1 = "model-00001-of-00002.safetensors";
const std::string kS2 = "model-00002-of-00002.safetensors";

INSTANTIATE_TEST_SUITE_P(
    Index, BadIndexTest,
    ::testing::Values(
        IndexCase{"InvalidJson", "{\"weight_map\":", absl::StatusCode::kInvalidArgument,
                  "not valid JSON"},
        IndexCase{"NotObject", "[]", absl::StatusCode::kInvalidArgument, "not a JSON object"},
        IndexCase{"NoWeightMap", R"({"metadata":{}})", absl::StatusCode::kInvalidArgument,
                  "missing key \"weight_map\""},
        IndexCase{"WeightMapNotObject", R"({"weight_map":[]})", absl::StatusCode::kInvalidArgument,
                  "weight_map is not a JSON object"},
        IndexCase{"WeightMapEmpty", R"({"weight_map":{}})", absl::StatusCode::kInvalidArgument,
                  "weight_map is empty"},
        IndexCase{"ShardNotString", R"({"weight_map":{"a":1}})", absl::StatusCode::kInvalidArgument,
                  "tensor \"a\": shard is not a string"},
        IndexCase{"ShardEscapesDir", R"({"weight_map":{"a":"../x.safetensors"}})",
                  absl::StatusCode::kInvalidArgument,
                  "shard \"../x.safetensors\" is not a relative path inside"},
        IndexCase{"ShardAbsolute", R"({"weight_map":{"a":"/etc/passwd"}})",
                  absl::StatusCode::kInvalidArgument, "shard \"/etc/passwd\" is not a relative"},
        IndexCase{"MetadataNotObject", R"({"metadata":3,"weight_map":{"a":"x"}})",
                  absl::StatusCode::kInvalidArgument, "metadata is not a JSON object"},
        IndexCase{"TotalSizeNegative", R"({"metadata":{"total_size":-1},"weight_map":{"a":"x"}})",
                  absl::StatusCode::kInvalidArgument,
                  "metadata.total_size is not a non-negative integer (-1)"},
        IndexCase{"ShardMissing",
                  Index({{"a", kS1}, {"b", kS1}, {"c", "model-00003-of-00003.safetensors"}}),
                  absl::StatusCode::kNotFound, "model-00003-of-00003.safetensors"},
        IndexCase{
            "ListedTensorNotInShard", Index({{"a", kS1}, {"b", kS1}, {"c", kS2}, {"d", kS2}}),
            absl::StatusCode::kInvalidArgument,
            "tensor \"d\" is listed in shard \"" + kS2 + "\" but that shard does not hold it"},
        IndexCase{"ShardTensorNotListed", Index({{"a", kS1}, {"c", kS2}}),
                  absl::StatusCode::kInvalidArgument,
                  "shard \"" + kS1 + "\" holds tensor \"b\" that weight_map does not list"},
        IndexCase{"WrongShard", Index({{"a", kS1}, {"b", kS1}, {"c", kS1}}),
                  absl::StatusCode::kInvalidArgument,
                  "tensor \"c\" is listed in shard \"" + kS1 + "\" but that shard does not hold"}),
    [](const ::testing::TestParamInfo<IndexCase>& i) { return i.param.name; });

TEST(ShardedCheckpointTest, TensorStoredInTwoShards) {
  const std::string dir = TestDir();
  WriteShard(dir + "/" + kS1, {"a", "b"}, 10);
  WriteShard(dir + "/" + kS2, {"b", "c"}, 20);
  WriteText(dir + "/" + kShardIndexFileName, Index({{"a", kS1}, {"b", kS1}, {"c", kS2}}));
  EXPECT_THAT(ShardedCheckpoint::Open(dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor \"b\" is listed in shard \"" + kS1 +
                                 "\" but is also stored in shard \"" + kS2 + "\"")));
}

TEST(ShardedCheckpointTest, AcceptsWholeFloatTotalSizeAndExtraKeys) {
  const std::string dir = TwoShardDir();
  WriteText(dir + "/" + kShardIndexFileName,
            R"({"metadata":{"total_size":6.0,"total_parameters":6},"extra":true,)"
            R"("weight_map":{"a":")" +
                kS1 + R"(","b":")" + kS1 + R"(","c":")" + kS2 + R"("}})");
  absl::StatusOr<ShardedCheckpoint> c = ShardedCheckpoint::Open(dir);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->total_size(), 6u);
}

TEST(ShardedCheckpointTest, WriteShardIndexErrors) {
  const std::string dir = TestDir();
  EXPECT_THAT(WriteShardIndex(dir, {}, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty weight_map")));
  EXPECT_THAT(WriteShardIndex(dir, {{"a", "sub/x.safetensors"}}, 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor \"a\": shard \"sub/x.safetensors\" is not a plain")));
  EXPECT_THAT(WriteShardIndex(dir + "/absent", {{"a", "x.safetensors"}}, 0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/absent")));
  EXPECT_TRUE(fs::is_empty(dir));
}

}  // namespace
}  // namespace rtnq
