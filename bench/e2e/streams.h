// Concurrent client streams for the end-to-end benchmark: each stream on its own loopback
// connection, a writer thread sending tensors as a header plus ~1 MiB chunks while the calling
// thread reads every answer, as a real client would.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "bench/e2e/workload.h"
#include "rtnq/v1/rtnq.pb.h"

namespace rtnq::bench {

/// What a set of concurrent streams moved, and how long it took from the first stream opening
/// to the last one finishing.
struct StreamsRun {
  absl::Status status;  ///< the first failure (stream status or in-band tensor error)
  double seconds = 0;
  int64_t bytes_in = 0;   ///< tensor data bytes sent
  int64_t bytes_out = 0;  ///< data bytes received back
  int64_t tensors_done = 0;
  /// Input bytes per second, in units of 1e9.
  double GBps() const { return seconds > 0 ? bytes_in / seconds / 1e9 : 0; }
};

/// Sends the workload over `streams` Echo streams to 127.0.0.1:port.
StreamsRun RunEchoStreams(int port, const Workload& workload, int streams, size_t chunk_bytes);

/// Sends the workload over `streams` rtnq.v1 Quantize sessions (each opened with `config`) to
/// 127.0.0.1:port; every tensor must come back with metrics.
StreamsRun RunQuantizeStreams(int port, const v1::SessionConfig& config, const Workload& workload,
                              int streams, size_t chunk_bytes);

}  // namespace rtnq::bench
