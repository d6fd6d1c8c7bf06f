// Quantize messages to and from the wire. The server reads raw ByteBuffers and parses them
// itself, so that a message that does not parse (e.g. invalid UTF-8 in a string field) is an
// error naming what failed instead of what gRPC's generated code makes of it: the end of the
// stream, indistinguishable from the client half-closing.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/support/byte_buffer.h"
#include "rtnq/v1/rtnq.pb.h"

namespace rtnq::server {

/// Parses one request (consuming `buffer`). InvalidArgument naming the message's position in the
/// stream (`index`, from 1) and what could not be parsed.
absl::Status ParseRequest(grpc::ByteBuffer& buffer, int64_t index, v1::QuantizeRequest& request);

/// Serializes a response into `buffer`; Internal if protobuf refuses.
absl::Status SerializeResponse(const v1::QuantizeResponse& response, grpc::ByteBuffer& buffer);

/// Why `bytes` is not a valid message of type `type`: the first string field holding invalid
/// UTF-8 ("header.name is not valid UTF-8 (byte 3 of 7)") or where the wire format breaks. Empty
/// when no cause is found. Linear in the size; recursion only follows `type`'s own message
/// fields (a fixed depth for rtnq.v1).
std::string DescribeParseFailure(absl::string_view bytes, const google::protobuf::Descriptor& type);

}  // namespace rtnq::server
