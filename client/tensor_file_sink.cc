#include "client/tensor_file_sink.h"

#include "absl/strings/str_cat.h"
#include "core/tensor_text.h"

namespace rtnq::client {

TensorFileSink::TensorFileSink(const std::string& tensor, const std::vector<TensorSpec>& planned,
                               SafetensorsWriter& writer)
    : tensor_(tensor), planned_(planned), writer_(writer) {
  for (const TensorSpec& s : planned_) {
    uint64_t n = ElemSize(s.dtype);
    for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);  // the plan validated the shapes
    sizes_.push_back(n);
  }
}

absl::Status TensorFileSink::Begin(const std::vector<TensorSpec>& outputs) {
  Discard();
  if (outputs.size() != planned_.size()) {
    return absl::InternalError(absl::StrCat(TensorPrefix(tensor_), "the backend returned ",
                                            outputs.size(), " output tensors, the plan has ",
                                            planned_.size()));
  }
  for (size_t k = 0; k < outputs.size(); ++k) {
    const TensorSpec& got = outputs[k];
    const TensorSpec& want = planned_[k];
    if (got.name != want.name || got.dtype != want.dtype || got.shape != want.shape) {
      return absl::InternalError(
          absl::StrCat(TensorPrefix(tensor_), "the backend returned ", got.name, " ",
                       ElemTypeName(got.dtype), " ", ShapeString(got.shape), ", the plan has ",
                       want.name, " ", ElemTypeName(want.dtype), " ", ShapeString(want.shape)));
    }
  }
  begun_ = true;
  written_.assign(planned_.size(), 0);
  crcs_.assign(planned_.size(), Crc32c());
  return absl::OkStatus();
}

absl::Status TensorFileSink::Write(size_t index, uint64_t offset, absl::Span<const uint8_t> data) {
  // Sessions deliver each output in order (backend.h): the running CRC relies on it.
  if (!begun_ || index >= planned_.size() || offset != written_[index]) {
    return absl::InternalError(absl::StrCat(TensorPrefix(tensor_), "output ", index,
                                            " bytes at offset ", offset, " out of order"));
  }
  const std::string& name = planned_[index].name;
  if (absl::Status st = writer_.WriteTensorChunk(name, offset, data); !st.ok()) return st;
  crcs_[index].Update(data.data(), data.size());
  written_[index] += data.size();
  bytes_ += data.size();
  return absl::OkStatus();
}

void TensorFileSink::Discard() {
  if (!begun_) return;
  for (size_t k = 0; k < planned_.size(); ++k) {
    // Only a writer already failed or abandoned refuses, and then the run fails anyway.
    if (written_[k] > 0) (void)writer_.DiscardWritten(planned_[k].name);
  }
  begun_ = false;
  bytes_ = 0;
}

absl::StatusOr<std::vector<std::pair<std::string, uint32_t>>> TensorFileSink::Checksums() const {
  std::vector<std::pair<std::string, uint32_t>> out;
  for (size_t k = 0; k < planned_.size(); ++k) {
    if (!begun_ || written_[k] != sizes_[k]) {
      return absl::InternalError(absl::StrCat(TensorPrefix(tensor_), "output ", planned_[k].name,
                                              " is incomplete (", begun_ ? written_[k] : 0, " of ",
                                              sizes_[k], " bytes)"));
    }
    out.emplace_back(planned_[k].name, crcs_[k].value());
  }
  return out;
}

}  // namespace rtnq::client
