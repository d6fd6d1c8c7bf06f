// Opening checkpoints header only (rtnq quantize --dry-run): shapes and offsets without touching
// the data region, so a truncated file still gives its plan, while every header rule still holds.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"
#include "core/io/sharded_checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/test_dir.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

namespace fs = std::filesystem;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TestDir() { return client::testing::FreshTestDir(); }

// A two-tensor file: "a" F32 [4, 8] then "b" BF16 [3]; returns its header size (8 + N).
uint64_t WriteFile(const std::string& path) {
  auto w = SafetensorsWriter::Create(
      path, {{"a", ElemType::kF32, {4, 8}}, {"b", ElemType::kBF16, {3}}}, std::nullopt);
  EXPECT_THAT(w, IsOk());
  EXPECT_THAT(w->WriteTensor("a", std::vector<uint8_t>(128, 1)), IsOk());
  EXPECT_THAT(w->WriteTensor("b", std::vector<uint8_t>(6, 2)), IsOk());
  const uint64_t data_offset = w->data_offset();
  EXPECT_THAT(w->Finish(), IsOk());
  return data_offset;
}

void Truncate(const std::string& path, uint64_t size) { fs::resize_file(path, size); }

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(HeaderOnlyTest, TruncatedDataRegionStillGivesEveryTensor) {
  const std::string path = TestDir() + "/m.safetensors";
  const uint64_t data_offset = WriteFile(path);
  for (uint64_t size : {data_offset + 134, data_offset + 40, data_offset}) {
    Truncate(path, size);
    if (size < data_offset + 134) {
      EXPECT_THAT(SafetensorsFile::Open(path),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("run past")));
    }
    absl::StatusOr<SafetensorsFile> f = SafetensorsFile::OpenHeaderOnly(path);
    ASSERT_THAT(f, IsOk()) << size;
    EXPECT_FALSE(f->has_data());
    EXPECT_EQ(f->file_size(), size);
    EXPECT_EQ(f->header_size() + 8, data_offset);
    EXPECT_THAT(f->names(), ElementsAre("a", "b"));
    EXPECT_THAT(f->Find("a")->shape, ElementsAre(4, 8));
    EXPECT_EQ(f->Find("b")->num_elements, 3);
    EXPECT_EQ(f->Find("b")->data_offset, 128u);
    EXPECT_TRUE(f->Find("a")->data.empty());
    // Moves keep the mode.
    SafetensorsFile moved = *std::move(f);
    EXPECT_FALSE(moved.has_data());
  }
}

TEST(HeaderOnlyTest, HeaderRulesStillApply) {
  const std::string dir = TestDir();
  auto raw = [](const std::string& header) {
    std::string prefix(8, '\0');
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>(header.size() >> (8 * i));
    return prefix + header;
  };
  struct Case {
    std::string bytes, message;
  };
  const std::vector<Case> cases = {
      {"abc", "shorter than the 8-byte header length"},
      {raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})").substr(0, 30),
       "runs past the end"},
      {raw(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})"), "F33"},
      {raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})"), "a"},
      {raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"),
       "overlap"},
      {raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})"), "hole"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8), "exceeds the limit"},
  };
  for (const Case& c : cases) {
    const std::string path = dir + "/bad.safetensors";
    WriteBytes(path, c.bytes);
    EXPECT_THAT(SafetensorsFile::OpenHeaderOnly(path),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.message;
  }
  EXPECT_THAT(SafetensorsFile::OpenHeaderOnly(dir + "/missing.safetensors"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(SafetensorsFile::OpenHeaderOnly(dir),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

TEST(HeaderOnlyTest, ShardedCheckpointWithTruncatedShards) {
  const std::string dir = TestDir();
  const uint64_t off1 = WriteFile(dir + "/" + ShardFileName(0, 2));
  auto w = SafetensorsWriter::Create(dir + "/" + ShardFileName(1, 2),
                                     {{"c", ElemType::kF16, {2, 2}}}, std::nullopt);
  ASSERT_THAT(w, IsOk());
  ASSERT_THAT(w->WriteTensor("c", std::vector<uint8_t>(8, 3)), IsOk());
  const uint64_t off2 = w->data_offset();
  ASSERT_THAT(w->Finish(), IsOk());
  ASSERT_THAT(
      WriteShardIndex(
          dir, {{"a", ShardFileName(0, 2)}, {"b", ShardFileName(0, 2)}, {"c", ShardFileName(1, 2)}},
          142),
      IsOk());
  Truncate(dir + "/" + ShardFileName(0, 2), off1);
  Truncate(dir + "/" + ShardFileName(1, 2), off2 + 1);
  EXPECT_THAT(ShardedCheckpoint::Open(dir), StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<ShardedCheckpoint> c = ShardedCheckpoint::Open(dir, ShardAccess::kHeaderOnly);
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->names(), ElementsAre("a", "b", "c"));
  EXPECT_THAT(c->Find("c")->shape, ElementsAre(2, 2));
  EXPECT_FALSE(c->ShardOf("c")->has_data());
  // The index is still cross-checked against the headers.
  ASSERT_THAT(WriteShardIndex(dir, {{"a", ShardFileName(0, 2)}, {"c", ShardFileName(1, 2)}}, 1),
              IsOk());
  EXPECT_THAT(ShardedCheckpoint::Open(dir, ShardAccess::kHeaderOnly),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"b\"")));
  // A single file, by path.
  EXPECT_THAT(ShardedCheckpoint::Open(dir + "/" + ShardFileName(1, 2), ShardAccess::kHeaderOnly),
              IsOk());
}

}  // namespace
}  // namespace rtnq
