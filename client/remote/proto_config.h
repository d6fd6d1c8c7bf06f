// Conversion of the wire QuantConfig (rtnq.v1) into the core QuantConfig, for results.
#pragma once

#include "absl/status/statusor.h"
#include "core/quant_config.h"
#include "rtnq/v1/rtnq.pb.h"

namespace rtnq::client {

/// The core config a server reported; errors on unspecified or unknown enum values.
absl::StatusOr<QuantConfig> FromProtoConfig(const v1::QuantConfig& p);

}  // namespace rtnq::client
