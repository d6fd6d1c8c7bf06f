#include "server/request_codec.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/slice.h"

namespace rtnq::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;

// rtnq.v1's messages nest 4 deep; the bound only guards against a schema that recurses.
constexpr int kMaxDepth = 16;

std::string Describe(google::protobuf::io::CodedInputStream& in, const Descriptor& type,
                     const std::string& path, int depth) {
  for (;;) {
    const int offset = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0) {
      if (in.ConsumedEntireMessage() || in.BytesUntilLimit() == 0) return "";
      return absl::StrCat("malformed field tag at byte ", offset);
    }
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const FieldDescriptor* field = type.FindFieldByNumber(number);
    const std::string name =
        field == nullptr ? absl::StrCat(path, "#", number) : absl::StrCat(path, field->name());
    const bool delimited =
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (field == nullptr || !delimited ||
        (field->type() != FieldDescriptor::TYPE_STRING &&
         field->type() != FieldDescriptor::TYPE_MESSAGE)) {
      if (!WireFormatLite::SkipField(&in, tag)) {
        return absl::StrCat(name, ": malformed or truncated at byte ", offset);
      }
      continue;
    }
    uint32_t length = 0;
    if (!in.ReadVarint32(&length) || static_cast<int>(length) > in.BytesUntilLimit() ||
        static_cast<int>(length) < 0) {
      return absl::StrCat(name, ": length runs past the end of the message (byte ", offset, ")");
    }
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      const void* data = nullptr;
      int size = 0;
      in.GetDirectBufferPointer(&data, &size);  // the whole input is one flat buffer
      const absl::string_view value(static_cast<const char*>(data), length);
      const int valid = google::protobuf::internal::UTF8SpnStructurallyValid(
          google::protobuf::StringPiece(value.data(), value.size()));
      if (valid < static_cast<int>(length)) {
        return absl::StrCat(name, " is not valid UTF-8 (byte ", valid, " of ", length,
                            "; proto3 strings must be UTF-8)");
      }
      in.Skip(static_cast<int>(length));
      continue;
    }
    if (depth >= kMaxDepth) return absl::StrCat(name, ": nested too deeply");
    const auto limit = in.PushLimit(static_cast<int>(length));
    std::string inner = Describe(in, *field->message_type(), name + ".", depth + 1);
    if (!inner.empty()) return inner;
    in.PopLimit(limit);
  }
}

}  // namespace

std::string DescribeParseFailure(absl::string_view bytes, const Descriptor& type) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  return Describe(in, type, "", 0);
}

absl::Status ParseRequest(grpc::ByteBuffer& buffer, int64_t index, v1::QuantizeRequest& request) {
  // Parsing consumes the buffer it reads: give it a second reference, so that the bytes are still
  // there for the diagnosis. Every reference is dropped through ByteBuffer::Clear (or its
  // destructor), never as a bare grpc::Slice: the transport's memory must go back to gRPC's
  // resource quota inside gRPC's execution context, which Clear sets up and which callback
  // threads lack (a slice released there crashed the server under quota pressure).
  grpc::ByteBuffer parse(buffer);
  grpc::Status parsed =
      grpc::SerializationTraits<v1::QuantizeRequest>::Deserialize(&parse, &request);
  if (parsed.ok()) {
    buffer.Clear();
    return absl::OkStatus();
  }
  std::string bytes;
  {
    std::vector<grpc::Slice> slices;  // more references; `buffer` keeps its own until Clear
    (void)buffer.Dump(&slices);
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  buffer.Clear();
  std::string why = DescribeParseFailure(bytes, *v1::QuantizeRequest::descriptor());
  if (why.empty()) why = "not a valid protobuf encoding";
  return absl::InvalidArgumentError(absl::StrCat("request message ", index, " (", bytes.size(),
                                                 " bytes) is not a QuantizeRequest: ", why));
}

absl::Status SerializeResponse(const v1::QuantizeResponse& response, grpc::ByteBuffer& buffer) {
  bool own = false;
  buffer.Clear();  // the previous write's bytes
  grpc::Status s =
      grpc::SerializationTraits<v1::QuantizeResponse>::Serialize(response, &buffer, &own);
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cannot serialize a response: ", s.error_message()));
}

}  // namespace rtnq::server
