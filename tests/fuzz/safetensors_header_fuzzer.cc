// Fuzzes ParseSafetensorsLayout (the CLI's inspect/quantize/verify read every header with it).
// Input: the JSON header, a NUL byte, then the data region; the harness writes the 8-byte length
// prefix so mutations of the JSON keep a consistent file. On success the layout must tile the data
// region, and a header rebuilt from it must parse back to the same tensors.
#include <cstdint>
#include <string>
#include <vector>

#include "core/io/safetensors_header.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/testing/safetensors_bytes.h"

namespace rtnq::fuzz {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

void CheckLayout(const SafetensorsLayout& l, uint64_t file_size) {
  RTNQ_FUZZ_CHECK(l.data_offset == 8 + l.header_size);
  RTNQ_FUZZ_CHECK(l.data_offset + l.data_size == file_size);
  uint64_t cursor = 0;
  for (const HeaderTensor& t : l.tensors) {
    RTNQ_FUZZ_CHECK(!t.name.empty() && t.name != "__metadata__");
    RTNQ_FUZZ_CHECK(t.begin == cursor && t.begin <= t.end);
    RTNQ_FUZZ_CHECK(t.end - t.begin == static_cast<uint64_t>(t.num_elements) *
                                           static_cast<uint64_t>(ElemSize(t.dtype)));
    cursor = t.end;
  }
  RTNQ_FUZZ_CHECK(cursor == l.data_size);
}

}  // namespace
}  // namespace rtnq::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rtnq;
  const std::string_view input = fuzz::AsText(data, size);
  const size_t nul = input.find('\0');
  const std::string_view header = input.substr(0, nul);
  const std::string_view region = nul == std::string_view::npos ? "" : input.substr(nul + 1);
  const std::string file = testing::RawSafetensorsFile(header, region);
  absl::StatusOr<SafetensorsLayout> layout = ParseSafetensorsLayout("fuzz", fuzz::Bytes(file));
  if (!layout.ok()) {
    RTNQ_FUZZ_CHECK(layout.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  fuzz::CheckLayout(*layout, file.size());

  // Round trip: the same tensors in file order make a header that parses to the same layout.
  std::vector<TensorSpec> specs;
  for (const HeaderTensor& t : layout->tensors)
    specs.push_back(TensorSpec{t.name, t.dtype, t.shape});
  absl::StatusOr<BuiltHeader> built = BuildSafetensorsHeader(specs, layout->metadata);
  RTNQ_FUZZ_CHECK(built.ok());
  const std::string rebuilt = built->bytes + std::string(region);
  absl::StatusOr<SafetensorsLayout> again = ParseSafetensorsLayout("rebuilt", fuzz::Bytes(rebuilt));
  RTNQ_FUZZ_CHECK(again.ok());
  RTNQ_FUZZ_CHECK(again->tensors.size() == layout->tensors.size());
  for (size_t i = 0; i < again->tensors.size(); ++i) {
    const HeaderTensor& a = again->tensors[i];
    const HeaderTensor& b = layout->tensors[i];
    RTNQ_FUZZ_CHECK(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape &&
                    a.begin == b.begin && a.end == b.end);
  }
  RTNQ_FUZZ_CHECK(again->metadata == layout->metadata);
  return 0;
}
