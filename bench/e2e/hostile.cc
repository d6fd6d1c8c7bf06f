#include "bench/e2e/hostile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/e2e/streams.h"
#include "bench/e2e/subprocess.h"
#include "bench/e2e/workload.h"

namespace rtnq::bench {
namespace {

constexpr int64_t kMiB = 1 << 20;
constexpr int64_t kThreads = 2;
constexpr int64_t kMaxMessage = 8 * kMiB;        // rtnq-server's default
constexpr int64_t kTransportQuota = 128 * kMiB;  // server.cc
constexpr int64_t kStepCap = 4 * kMiB;           // quantize_reactor.cc, a row-streamed step

struct Case {
  const char* name;
  int streams;
  std::vector<int64_t> shape;  // float32, one tensor per stream
  v1::OutputForm form;
  bool buffered;          // group_dim 0
  int64_t global_budget;  // --memory_budget_bytes
  int64_t reservation;    // what one tensor reserves (TensorJob::Plan)
  int64_t step_memory;    // working memory of one running step (docs/PROTOCOL.md's table)
};

int64_t Bytes(const std::vector<int64_t>& shape) {
  int64_t n = 4;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

int HostileRss(const std::string& server_binary) {
  const int64_t row_5mi = 5 * kMiB * 4;  // one [*, 5Mi] float32 row
  // INC int4 asym g32 of [2, 5Mi]: kept codes 1 byte per element + 8 bytes per group of 32;
  // packed: qweight half a byte per element, scales 4 and qzeros 0.5 bytes per group.
  const int64_t e = 2 * 5 * kMiB;
  const int64_t kept = e + e / 4, packed = e / 2 + e / 8 + e / 64;
  const Case cases[] = {
      {"wide rows, fake",
       8,
       {2, 5 * kMiB},
       v1::OUTPUT_FORM_FAKE_QUANT,
       false,
       64 * kMiB,
       row_5mi,
       2 * std::max(kStepCap, row_5mi)},
      {"wide rows, packed INC",
       8,
       {2, 5 * kMiB},
       v1::OUTPUT_FORM_PACKED_INC,
       false,
       64 * kMiB,
       row_5mi + kept + packed,
       packed},
      {"64 streams, buffered",
       64,
       {1024, 4096},
       v1::OUTPUT_FORM_FAKE_QUANT,
       true,
       256 * kMiB,
       16 * kMiB,
       3 * 16 * kMiB},
  };
  const double mib = static_cast<double>(kMiB);
  std::printf(
      "| case | streams x tensor | budget | largest reservation | bound: accounted "
      "max(G,R)+N*M | bound: RSS - idle (+quota, +N*M parsing, +threads x step) | idle RSS | "
      "peak RSS - idle | seconds |\n|---|---|---|---|---|---|---|---|---|\n");
  bool failed = false;
  for (const Case& c : cases) {
    auto server = ServerProcess::Start({server_binary, "--listen=127.0.0.1:0",
                                        absl::StrCat("--threads=", kThreads), "--log_level=warn",
                                        absl::StrCat("--memory_budget_bytes=", c.global_budget)});
    if (!server.ok()) {
      std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const int64_t idle = server->StatusBytes("VmRSS");
    v1::SessionConfig config;
    config.set_output_form(c.form);
    if (c.buffered) config.mutable_default_config()->set_group_dim(0);
    const Workload workload = UniformWorkload(c.streams, c.shape);
    const StreamsRun r = RunQuantizeStreams(server->port(), config, workload, c.streams, 1 << 20);
    const int64_t peak = server->StatusBytes("VmHWM");
    const int64_t accounted = std::max(c.global_budget, c.reservation) + c.streams * kMaxMessage;
    const int64_t rss_bound =
        accounted + kTransportQuota + c.streams * kMaxMessage + kThreads * c.step_memory;
    std::printf(
        "| %s | %d x [%lld, %lld] F32 (%.0f MiB) | %.0f MiB | %.1f MiB | %.0f MiB | %.0f MiB "
        "| %.0f MiB | %.0f MiB | %.2f |%s\n",
        c.name, c.streams, static_cast<long long>(c.shape[0]), static_cast<long long>(c.shape[1]),
        Bytes(c.shape) / mib, c.global_budget / mib, c.reservation / mib, accounted / mib,
        rss_bound / mib, idle / mib, (peak - idle) / mib, r.seconds,
        r.status.ok() ? "" : absl::StrCat(" FAILED: ", r.status.ToString()).c_str());
    std::fflush(stdout);
    failed |= !r.status.ok();
    server->Stop();
  }
  return failed ? 1 : 0;
}

}  // namespace rtnq::bench
