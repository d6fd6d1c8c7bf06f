// Safetensors reader (strict header validation over hand-built bytes) and streaming writer.
#include "core/io/safetensors.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/io/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/safetensors_bytes.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

namespace fs = std::filesystem;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// A fresh, empty directory for the running test.
std::string TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  fs::path dir = fs::path(::testing::TempDir()) / ("rtnq_st_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string LengthPrefix(uint64_t n) { return ::rtnq::testing::SafetensorsLengthPrefix(n); }

std::string RawFile(const std::string& header, const std::string& data) {
  return ::rtnq::testing::RawSafetensorsFile(header, data);
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

std::vector<uint8_t> Bytes(absl::Span<const uint8_t> s) { return {s.begin(), s.end()}; }

// ---------------------------------------------------------------------------------------------
// Reader: malformed files, each rejected with its own message.

struct BadCase {
  std::string name;
  std::string bytes;
  std::string message;  // distinctive part of the expected message
};

std::vector<BadCase> BadCases() {
  const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string d8(8, 'x');
  return {
      {"EmptyFile", "", "file is 0 bytes, shorter than the 8-byte header length"},
      {"ShortFile", "abc", "file is 3 bytes, shorter than the 8-byte header length"},
      {"HeaderLengthZero", LengthPrefix(0) + "{}", "header length is 0"},
      {"HeaderLengthOverLimit", LengthPrefix(100'000'001) + "{}",
       "header length 100000001 exceeds the limit of 100000000 bytes"},
      {"HeaderPastEnd", LengthPrefix(50) + "{}", "header length 50 runs past the end of the 10"},
      {"InvalidJson", RawFile("{\"a\":", ""), "header: invalid JSON: [json.exception"},
      {"InvalidUtf8", RawFile("{\"a\xff\":{}}", ""), "ill-formed UTF-8"},
      {"NotObject", RawFile("[1,2]", ""), "header is not a JSON object"},
      {"DuplicateTensor", RawFile("{\"a\":" + f32x2 + ",\"a\":" + f32x2 + "}", d8),
       "header: duplicate key \"a\""},
      {"EntryNotObject", RawFile(R"({"a":[1]})", ""), "tensor \"a\": entry is not a JSON object"},
      {"MissingKey", RawFile(R"({"a":{"dtype":"F32","shape":[2]}})", d8),
       "tensor \"a\": missing key \"data_offsets\""},
      {"ExtraKey",
       RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", d8),
       "tensor \"a\": unknown key \"extra\""},
      {"UnknownDtype",
       RawFile(R"({"a":{"dtype":"F8_E4M3FNUZ","shape":[8],"data_offsets":[0,8]}})", d8),
       "tensor \"a\": unsupported dtype \"F8_E4M3FNUZ\""},
      {"DtypeNotString", RawFile(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", d8),
       "tensor \"a\": dtype is not a string"},
      {"ShapeNotArray", RawFile(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", d8),
       "tensor \"a\": shape is not an array"},
      {"ShapeNegative", RawFile(R"({"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", d8),
       "tensor \"a\": shape[1] is negative (-1)"},
      {"ShapeNotInteger",
       RawFile(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", d8),
       "tensor \"a\": shape[0] is not an integer (2.0)"},
      {"ShapeDimOverInt64",
       RawFile(R"({"a":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,8]}})", d8),
       "shape[0] = 9223372036854775808 exceeds int64"},
      {"ElementCountOverflow",
       RawFile(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", d8),
       "element count of shape [4294967296, 4294967296] overflows int64"},
      {"ByteSizeOverflow",
       RawFile(R"({"a":{"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,8]}})", d8),
       "byte size of I64 shape [4611686018427387904] overflows int64"},
      {"OffsetsNotPair", RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", d8),
       "tensor \"a\": data_offsets is not an array of two integers"},
      {"OffsetNegative", RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", d8),
       "tensor \"a\": data_offsets[0] is negative (-8)"},
      {"OffsetsReversed", RawFile(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", d8),
       "tensor \"a\": data_offsets [8, 0] begin is past end"},
      {"ByteLengthMismatch",
       RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", d8),
       "tensor \"a\": data_offsets [0, 4] hold 4 bytes but F32 shape [2] needs 8"},
      {"PastDataRegion", RawFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d8),
       "tensor \"a\": data_offsets [0, 16] run past the 8-byte data region"},
      {"Overlap",
       RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
               d8),
       "tensor \"b\": data_offsets [4, 8] overlap tensor \"a\" [0, 8]"},
      {"Hole",
       RawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
               std::string(12, 'x')),
       "tensor \"b\": hole: data bytes [4, 8) before it belong to no tensor"},
      {"TrailingBytes", RawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d8),
       "hole: data bytes [4, 8) at the end of the data region belong to no tensor"},
      {"MetadataNotObject", RawFile(R"({"__metadata__":"pt"})", ""),
       "__metadata__ is not a JSON object"},
      {"MetadataValueNotString", RawFile(R"({"__metadata__":{"format":1}})", ""),
       "__metadata__ value of \"format\" is not a string"},
  };
}

class MalformedTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(MalformedTest, OpenRejectsWithNamedRule) {
  const BadCase& c = GetParam();
  const std::string path = TestDir() + "/bad.safetensors";
  WriteBytes(path, c.bytes);
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  EXPECT_THAT(f, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  EXPECT_THAT(f, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("safetensors file " + path + ": ")));
  // The in-memory path applies the same rules.
  EXPECT_THAT(SafetensorsFile::FromBuffer(c.bytes, "mem"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
}

INSTANTIATE_TEST_SUITE_P(Header, MalformedTest, ::testing::ValuesIn(BadCases()),
                         [](const ::testing::TestParamInfo<BadCase>& i) { return i.param.name; });

TEST(MalformedTest, EveryCaseHasItsOwnMessage) {
  std::set<std::string> messages;
  std::vector<BadCase> cases = BadCases();
  for (const BadCase& c : cases) {
    absl::StatusOr<SafetensorsFile> f = SafetensorsFile::FromBuffer(c.bytes, "mem");
    ASSERT_FALSE(f.ok()) << c.name;
    messages.insert(std::string(f.status().message()));
  }
  EXPECT_EQ(messages.size(), cases.size());
}

TEST(MalformedTest, MessagesStayPrintable) {
  absl::StatusOr<SafetensorsFile> f =
      SafetensorsFile::FromBuffer(RawFile("{\"a\xff\":{}}", ""), "mem");
  ASSERT_FALSE(f.ok());
  for (char c : f.status().message()) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(static_cast<unsigned char>(c));
  }
}

// ---------------------------------------------------------------------------------------------
// Reader: valid files.

TEST(ReaderTest, ReadsHandBuiltFileInDataOrder) {
  // "z" comes first in the data region, so it is first in file order despite the JSON order.
  std::string header = R"({"__metadata__":{"format":"pt","note":"hi"},)"
                       R"("a":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},)"
                       R"("z":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})";
  std::string data = "\x01\x02\x03\x04\x05\x06\x07\x08";
  const std::string path = TestDir() + "/ok.safetensors";
  WriteBytes(path, RawFile(header, data));
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->file_size(), 8 + header.size() + 8);
  EXPECT_EQ(f->header_size(), header.size());
  EXPECT_THAT(f->names(), ElementsAre("z", "a"));
  EXPECT_THAT(f->metadata(), ElementsAre(Pair("format", "pt"), Pair("note", "hi")));
  const TensorInfo* z = f->Find("z");
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(z->dtype, ElemType::kI32);
  EXPECT_TRUE(z->shape.empty());
  EXPECT_EQ(z->num_elements, 1);
  EXPECT_THAT(Bytes(z->data), ElementsAre(1, 2, 3, 4));
  const TensorInfo* a = f->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, ElemType::kBF16);
  EXPECT_THAT(a->shape, ElementsAre(2));
  EXPECT_EQ(a->data_offset, 4u);
  EXPECT_THAT(Bytes(a->data), ElementsAre(5, 6, 7, 8));
  EXPECT_EQ(f->Find("missing"), nullptr);
}

TEST(ReaderTest, AcceptsHeaderPaddedWithSpaces) {
  std::string header = R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})";
  header.append(8 - header.size() % 8 + 8, ' ');  // more than the alignment needs: still valid
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::FromBuffer(RawFile(header, "abc"));
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(f->header_size(), header.size());
  EXPECT_THAT(Bytes(f->Find("a")->data), ElementsAre('a', 'b', 'c'));
}

TEST(ReaderTest, AcceptsEmptyHeaderAndZeroSizeTensorsSharingAnOffset) {
  EXPECT_THAT(SafetensorsFile::FromBuffer(RawFile("{}", "")), IsOk());
  std::string header = R"({"e":{"dtype":"F16","shape":[0,5],"data_offsets":[2,2]},)"
                       R"("p":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},)"
                       R"("q":{"dtype":"BOOL","shape":[2],"data_offsets":[2,4]}})";
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::FromBuffer(RawFile(header, "wxyz"));
  ASSERT_THAT(f, IsOk());
  EXPECT_THAT(f->names(), ElementsAre("p", "e", "q"));
  EXPECT_EQ(f->Find("e")->num_elements, 0);
  EXPECT_TRUE(f->Find("e")->data.empty());
}

TEST(ReaderTest, SpansSurviveMoves) {
  std::string header = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::FromBuffer(RawFile(header, "wxyz"));
  ASSERT_THAT(f, IsOk());
  SafetensorsFile moved = *std::move(f);
  SafetensorsFile again = std::move(moved);
  EXPECT_THAT(Bytes(again.Find("a")->data), ElementsAre('w', 'x', 'y', 'z'));

  const std::string path = TestDir() + "/m.safetensors";
  WriteBytes(path, RawFile(header, "WXYZ"));
  absl::StatusOr<SafetensorsFile> g = SafetensorsFile::Open(path);
  ASSERT_THAT(g, IsOk());
  again = *std::move(g);  // releases the buffer, takes the mapping
  EXPECT_THAT(Bytes(again.Find("a")->data), ElementsAre('W', 'X', 'Y', 'Z'));
}

TEST(ReaderTest, OpenErrorsCarryErrnoCodeAndPath) {
  const std::string dir = TestDir();
  EXPECT_THAT(SafetensorsFile::Open(dir + "/nope.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/nope.safetensors")));
  EXPECT_THAT(SafetensorsFile::Open(dir),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
  if (::geteuid() != 0) {  // root reads anything
    const std::string path = dir + "/locked.safetensors";
    WriteBytes(path, RawFile("{}", ""));
    fs::permissions(path, fs::perms::none);
    EXPECT_THAT(SafetensorsFile::Open(path),
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr(path)));
  }
}

// ---------------------------------------------------------------------------------------------
// Writer.

TEST(WriterTest, GoldenBytesForOneTensor) {
  const std::string path = TestDir() + "/one.safetensors";
  absl::StatusOr<SafetensorsWriter> w =
      SafetensorsWriter::Create(path, {{"x", ElemType::kF32, {2}}});
  ASSERT_THAT(w, IsOk());
  const float values[2] = {1.0f, 2.0f};
  ASSERT_THAT(w->WriteTensor("x", absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(values), 8)),
              IsOk());
  ASSERT_THAT(w->Finish(), IsOk());
  std::string json =
      R"({"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string data(8, '\0');
  std::memcpy(data.data(), values, 8);
  EXPECT_EQ(ReadBytes(path), RawFile(json, data));
}

TEST(WriterTest, RoundTripsAllDtypesScalarsEmptyAndChunksOutOfOrder) {
  const std::vector<TensorSpec> specs = {
      {"f64", ElemType::kF64, {3}},    {"f32", ElemType::kF32, {2, 5}},
      {"f16", ElemType::kF16, {7}},    {"bf16", ElemType::kBF16, {1, 1, 3}},
      {"i64", ElemType::kI64, {}},     {"i32", ElemType::kI32, {4}},
      {"i16", ElemType::kI16, {0, 3}}, {"i8", ElemType::kI8, {5}},
      {"u8", ElemType::kU8, {11}},     {"bool", ElemType::kBool, {2}},
  };
  const std::string path = TestDir() + "/all.safetensors";
  absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, specs);
  ASSERT_THAT(w, IsOk());
  std::vector<std::vector<uint8_t>> payload;
  for (size_t i = 0; i < specs.size(); ++i) {
    const HeaderTensor& t = w->tensors()[i];
    payload.push_back(Pattern(t.end - t.begin, static_cast<uint8_t>(i * 31)));
  }
  // Last tensor first; f32 (40 bytes) in three chunks, tail first.
  for (size_t k = specs.size(); k-- > 0;) {
    const std::vector<uint8_t>& p = payload[k];
    if (specs[k].name == "f32") {
      auto s = absl::MakeConstSpan(p);
      ASSERT_THAT(w->WriteTensorChunk("f32", 30, s.subspan(30)), IsOk());
      ASSERT_THAT(w->WriteTensorChunk("f32", 0, s.subspan(0, 13)), IsOk());
      ASSERT_THAT(w->WriteTensorChunk("f32", 13, s.subspan(13, 17)), IsOk());
    } else {
      ASSERT_THAT(w->WriteTensor(specs[k].name, p), IsOk()) << specs[k].name;
    }
  }
  EXPECT_FALSE(fs::exists(path)) << "visible before Finish";
  const std::string tmp = w->temp_path();
  const uint64_t size = w->file_size();
  ASSERT_THAT(w->Finish(), IsOk());
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(fs::file_size(path), size);

  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(f->header_size() % 8, 0u);
  EXPECT_THAT(f->metadata(), ElementsAre(Pair("format", "pt")));
  std::vector<std::string> want_names;
  for (const TensorSpec& s : specs) want_names.push_back(s.name);
  // Spec order is data order; the zero-byte i16 shares its offset with i8 and sorts by name.
  EXPECT_THAT(f->names(),
              ElementsAre("f64", "f32", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "bool"));
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo* t = f->Find(specs[i].name);
    ASSERT_NE(t, nullptr) << specs[i].name;
    EXPECT_EQ(t->dtype, specs[i].dtype) << specs[i].name;
    EXPECT_EQ(t->shape, specs[i].shape) << specs[i].name;
    EXPECT_EQ(Bytes(t->data), payload[i]) << specs[i].name;
  }
  EXPECT_EQ(f->Find("i64")->num_elements, 1);
  EXPECT_EQ(f->Find("i16")->num_elements, 0);
}

TEST(WriterTest, ManyTensorsWrittenInReverse) {
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 500; ++i) {
    specs.push_back({"layers." + std::to_string(i) + ".weight", ElemType::kF16, {i % 7, 3}});
  }
  const std::string path = TestDir() + "/many.safetensors";
  absl::StatusOr<SafetensorsWriter> w =
      SafetensorsWriter::Create(path, specs, std::map<std::string, std::string>{});
  ASSERT_THAT(w, IsOk());
  for (int i = 499; i >= 0; --i) {
    ASSERT_THAT(w->WriteTensor(specs[i].name, Pattern((i % 7) * 6, static_cast<uint8_t>(i))),
                IsOk());
  }
  ASSERT_THAT(w->Finish(), IsOk());
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_THAT(f, IsOk());
  EXPECT_TRUE(f->metadata().empty());
  ASSERT_EQ(f->tensors().size(), 500u);
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(Bytes(f->Find(specs[i].name)->data), Pattern((i % 7) * 6, static_cast<uint8_t>(i)));
  }
}

TEST(WriterTest, CustomMetadata) {
  const std::string path = TestDir() + "/meta.safetensors";
  absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(
      path, {{"s", ElemType::kU8, {}}},
      std::map<std::string, std::string>{{"format", "pt"}, {"quantizer", "rtnq"}});
  ASSERT_THAT(w, IsOk());
  ASSERT_THAT(w->WriteTensor("s", Pattern(1, 9)), IsOk());
  ASSERT_THAT(w->Finish(), IsOk());
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_THAT(f, IsOk());
  EXPECT_THAT(f->metadata(), ElementsAre(Pair("format", "pt"), Pair("quantizer", "rtnq")));
}

TEST(WriterTest, ConcurrentChunksFromManyThreads) {
  constexpr size_t kChunk = 4096, kChunks = 64;
  const std::string path = TestDir() + "/threads.safetensors";
  absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(
      path, {{"big", ElemType::kU8, {static_cast<int64_t>(kChunk * kChunks)}}});
  ASSERT_THAT(w, IsOk());
  const std::vector<uint8_t> all = Pattern(kChunk * kChunks, 3);
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(8);
  for (size_t t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (size_t c = t; c < kChunks; c += 8) {
        absl::Status st = w->WriteTensorChunk("big", c * kChunk,
                                              absl::MakeConstSpan(all).subspan(c * kChunk, kChunk));
        if (!st.ok()) results[t] = st;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& st : results) EXPECT_THAT(st, IsOk());
  ASSERT_THAT(w->Finish(), IsOk());
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_THAT(f, IsOk());
  EXPECT_EQ(Bytes(f->Find("big")->data), all);
}

TEST(WriterTest, RejectsBadSpecs) {
  const std::string path = TestDir() + "/x.safetensors";
  EXPECT_THAT(
      SafetensorsWriter::Create(path, {{"a", ElemType::kF32, {1}}, {"a", ElemType::kF32, {2}}}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(path + ": tensor \"a\": duplicate tensor name")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"", ElemType::kF32, {1}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty tensor name")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"__metadata__", ElemType::kF32, {1}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reserved")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"n", ElemType::kF32, {3, -2}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor \"n\": shape [3, -2] has a negative dimension")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"o", ElemType::kF64, {int64_t{1} << 61}}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor \"o\": byte size overflows int64")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"bad\xff", ElemType::kF32, {1}}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid UTF-8")));
  EXPECT_THAT(SafetensorsWriter::Create(TestDir() + "/no/such/dir/x.safetensors",
                                        {{"a", ElemType::kF32, {1}}}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/no/such/dir/x.safetensors")));
  EXPECT_TRUE(fs::is_empty(fs::path(path).parent_path()));
}

TEST(WriterTest, RejectsBadWrites) {
  const std::string path = TestDir() + "/w.safetensors";
  absl::StatusOr<SafetensorsWriter> w =
      SafetensorsWriter::Create(path, {{"a", ElemType::kF32, {4}}, {"b", ElemType::kU8, {3}}});
  ASSERT_THAT(w, IsOk());
  EXPECT_THAT(w->WriteTensor("nope", Pattern(3, 0)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no tensor \"nope\"")));
  EXPECT_THAT(w->WriteTensor("a", Pattern(12, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor \"a\": got 12 bytes, F32 shape [4] needs 16")));
  EXPECT_THAT(w->WriteTensorChunk("a", 10, Pattern(7, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor \"a\": chunk [10, 17) runs past the tensor's 16 bytes")));
  EXPECT_THAT(w->WriteTensorChunk("a", 1ull << 63, Pattern(1, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("runs past")));
  ASSERT_THAT(w->WriteTensorChunk("a", 4, Pattern(4, 0)), IsOk());
  ASSERT_THAT(w->WriteTensorChunk("a", 12, Pattern(4, 0)), IsOk());
  EXPECT_THAT(w->WriteTensorChunk("a", 6, Pattern(4, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("chunk [6, 10) overlaps bytes [4, 8) already written")));
  EXPECT_THAT(w->WriteTensorChunk("a", 10, Pattern(4, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("chunk [10, 14) overlaps bytes [12, 16) already written")));
  EXPECT_THAT(w->WriteTensorChunk("a", 4, Pattern(4, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlaps")));
  EXPECT_THAT(w->WriteTensorChunk("a", 0, {}), IsOk());  // empty chunks are no-ops

  // Incomplete: "a" has bytes [0, 4) and [8, 12) missing, "b" nothing.
  EXPECT_THAT(w->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    HasSubstr("tensor \"a\" has 8 of 16 bytes written (2 "
                                              "tensors incomplete)")));
  ASSERT_THAT(w->WriteTensorChunk("a", 0, Pattern(4, 0)), IsOk());
  ASSERT_THAT(w->WriteTensorChunk("a", 8, Pattern(4, 0)), IsOk());
  EXPECT_THAT(w->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    HasSubstr("tensor \"b\" has 0 of 3 bytes written")));
  EXPECT_FALSE(fs::exists(path));
  ASSERT_THAT(w->WriteTensor("b", Pattern(3, 0)), IsOk());
  EXPECT_THAT(w->WriteTensor("b", Pattern(3, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlaps")));
  ASSERT_THAT(w->Finish(), IsOk());
  EXPECT_THAT(w->WriteTensor("b", Pattern(3, 0)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already finished")));
  EXPECT_THAT(w->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition));
  w->Abandon();  // no-op after Finish
  EXPECT_THAT(SafetensorsFile::Open(path), IsOk());
}

// A retried tensor is written again from the start: what its first attempt wrote is forgotten,
// the file holds the second attempt's bytes, and the other tensors keep theirs.
TEST(WriterTest, DiscardWrittenLetsATensorBeRewritten) {
  const std::string path = TestDir() + "/d.safetensors";
  absl::StatusOr<SafetensorsWriter> w =
      SafetensorsWriter::Create(path, {{"a", ElemType::kU8, {8}}, {"b", ElemType::kU8, {2}}});
  ASSERT_THAT(w, IsOk());
  ASSERT_THAT(w->WriteTensor("b", Pattern(2, 9)), IsOk());
  ASSERT_THAT(w->WriteTensorChunk("a", 0, Pattern(5, 1)), IsOk());
  ASSERT_THAT(w->DiscardWritten("a"), IsOk());
  EXPECT_THAT(w->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    HasSubstr("tensor \"a\" has 0 of 8 bytes written")));
  EXPECT_THAT(w->DiscardWritten("nope"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(w->WriteTensorChunk("a", 0, Pattern(4, 2)), IsOk());
  ASSERT_THAT(w->WriteTensorChunk("a", 4, Pattern(4, 6)), IsOk());
  ASSERT_THAT(w->Finish(), IsOk());
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_THAT(f, IsOk());
  std::vector<uint8_t> want = Pattern(4, 2);
  const std::vector<uint8_t> tail = Pattern(4, 6);
  want.insert(want.end(), tail.begin(), tail.end());
  ASSERT_NE(f->Find("a"), nullptr);
  EXPECT_EQ(Bytes(f->Find("a")->data), want);
  ASSERT_NE(f->Find("b"), nullptr);
  EXPECT_EQ(Bytes(f->Find("b")->data), Pattern(2, 9));
}

TEST(WriterTest, AbandonAndDestructorLeaveNothing) {
  const std::string dir = TestDir();
  {
    absl::StatusOr<SafetensorsWriter> w =
        SafetensorsWriter::Create(dir + "/a.safetensors", {{"t", ElemType::kF32, {1024}}});
    ASSERT_THAT(w, IsOk());
    EXPECT_TRUE(fs::exists(w->temp_path()));
    EXPECT_EQ(fs::file_size(w->temp_path()), w->file_size());  // preallocated
    ASSERT_THAT(w->WriteTensorChunk("t", 0, Pattern(100, 1)), IsOk());
    w->Abandon();
    EXPECT_FALSE(fs::exists(w->temp_path()));
    EXPECT_THAT(w->WriteTensorChunk("t", 100, Pattern(4, 1)),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("abandoned")));
    EXPECT_THAT(w->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  {
    absl::StatusOr<SafetensorsWriter> w =
        SafetensorsWriter::Create(dir + "/b.safetensors", {{"t", ElemType::kU8, {4}}});
    ASSERT_THAT(w, IsOk());
    ASSERT_THAT(w->WriteTensor("t", Pattern(4, 1)), IsOk());
    SafetensorsWriter moved = *std::move(w);  // the moved-from shell must not remove anything
    EXPECT_TRUE(fs::exists(moved.temp_path()));
  }  // destroyed without Finish
  EXPECT_TRUE(fs::is_empty(dir));
}

}  // namespace
}  // namespace rtnq
