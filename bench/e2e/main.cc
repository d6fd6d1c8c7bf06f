// rtnq_e2e_bench: the service's end-to-end throughput against the raw transport ceiling, and the
// server's peak memory under many streams. Both servers run as child processes on loopback:
//   raw      this binary's Echo service (--mode=echo_server), same framing, no work;
//   service  rtnq-server --threads=0, int4 sym g32 -> packed GPTQ (v1), or fake with --fake;
//   rss      rtnq-server with --memory_budget_bytes, --rss_streams concurrent sessions;
//   hostile  rtnq-server under wide rows and many buffered streams, peak RSS against the bound
//            of docs/PROTOCOL.md (hostile.h; not part of --mode=all).
// See bench/e2e.sh and bench/README.md.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/e2e/echo_server.h"
#include "bench/e2e/hostile.h"
#include "bench/e2e/streams.h"
#include "bench/e2e/subprocess.h"
#include "bench/e2e/workload.h"

ABSL_FLAG(std::string, mode, "all",
          "all (throughput and rss), throughput, raw (the echo ceiling alone), rss, hostile, or "
          "echo_server (used internally)");
ABSL_FLAG(std::string, server, "", "rtnq-server binary; empty: ../server/rtnq-server from here");
ABSL_FLAG(int64_t, bytes, int64_t{1} << 30, "float32 bytes per throughput run");
ABSL_FLAG(std::vector<std::string>, streams, std::vector<std::string>({"1", "4"}),
          "concurrent streams of the throughput runs");
ABSL_FLAG(int, repeat, 3, "throughput runs per mode and stream count (the median is reported)");
ABSL_FLAG(int64_t, chunk_bytes, int64_t{1} << 20, "data bytes per request chunk");
ABSL_FLAG(int, threads, 0, "rtnq-server --threads");
ABSL_FLAG(int, rss_streams, 32, "concurrent sessions of the rss run");
ABSL_FLAG(int64_t, rss_bytes, int64_t{2} << 30,
          "float32 bytes sent in the rss run (at least one tensor per stream)");
ABSL_FLAG(int64_t, memory_budget_bytes, int64_t{1} << 30, "rtnq-server budget in the rss run");
ABSL_FLAG(bool, fake, false,
          "service sessions ask for fake quantization (as many bytes back as in; compare with "
          "--echo_divisor=1) instead of packed GPTQ");
ABSL_FLAG(bool, metrics_only, false,
          "diagnostic: sessions ask for metrics only (the server quantizes but does not pack or "
          "send outputs), to show what packing and output cost");
ABSL_FLAG(int, echo_divisor, 8,
          "the echo answers each chunk with 1/N of its bytes: 8 as int4 GPTQ output, 1 as "
          "fake quantization (as many bytes back as in)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "echo_server mode: address");
ABSL_FLAG(std::string, port_file, "", "echo_server mode: where to write the port");

namespace rtnq::bench {
namespace {

constexpr int64_t kEchoMaxMessage = int64_t{8} << 20;  // rtnq-server's default

std::string SelfPath() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, n) : std::string();
}

std::string ServerPath() {
  std::string path = absl::GetFlag(FLAGS_server);
  if (!path.empty()) return path;
  const std::string self = SelfPath();
  return self.substr(0, self.rfind('/')) + "/../server/rtnq-server";
}

v1::SessionConfig Int4G32Session() {
  v1::SessionConfig config;
  v1::QuantConfigPatch* q = config.mutable_default_config();
  q->set_dtype(v1::QUANT_DTYPE_INT);
  q->set_bits(4);
  q->set_group_size(32);
  q->set_scheme(v1::SCHEME_SYM);
  if (absl::GetFlag(FLAGS_fake)) {
    config.set_output_form(v1::OUTPUT_FORM_FAKE_QUANT);
  } else {
    config.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
    config.set_gptq_format(v1::GPTQ_FORMAT_V1);
  }
  config.set_metrics_only(absl::GetFlag(FLAGS_metrics_only));
  return config;
}

std::vector<std::string> RtnqServerArgs(int64_t memory_budget_bytes) {
  std::vector<std::string> args = {ServerPath(), "--listen=127.0.0.1:0",
                                   absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads)),
                                   "--log_level=warn"};
  if (memory_budget_bytes > 0) {
    args.push_back(absl::StrCat("--memory_budget_bytes=", memory_budget_bytes));
  }
  return args;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

void Report(const char* mode, int streams, int rep, const StreamsRun& r) {
  std::printf("%-8s streams=%-2d run=%d  %6.3f GB in %6.2f s = %5.3f GB/s  (%.0f MB back)%s%s\n",
              mode, streams, rep, r.bytes_in / 1e9, r.seconds, r.GBps(), r.bytes_out / 1e6,
              r.status.ok() ? "" : "  FAILED: ", r.status.ok() ? "" : r.status.ToString().c_str());
  std::fflush(stdout);
}

// --mode=throughput runs raw and service alternately; --mode=raw the echo ceiling alone.
int Throughput(bool with_service) {
  std::vector<int> stream_counts;
  for (const std::string& s : absl::GetFlag(FLAGS_streams)) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1) {
      std::fprintf(stderr, "--streams: bad count '%s'\n", s.c_str());
      return 2;
    }
    stream_counts.push_back(n);
  }
  const Workload workload = LlamaWorkload(absl::GetFlag(FLAGS_bytes));
  const size_t chunk = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));
  std::printf("workload: %zu float32 tensors, %.3f GB; chunks of %zu bytes\n",
              workload.tensors.size(), workload.total_bytes / 1e9, chunk);

  auto echo =
      ServerProcess::Start({SelfPath(), "--mode=echo_server", "--listen=127.0.0.1:0",
                            absl::StrCat("--echo_divisor=", absl::GetFlag(FLAGS_echo_divisor))});
  auto rtnq = ServerProcess::Start(RtnqServerArgs(0));
  for (const auto* p : {&echo, &rtnq}) {
    if (!p->ok()) {
      std::fprintf(stderr, "%s\n", p->status().ToString().c_str());
      return 1;
    }
  }
  // Runs alternate raw / service so that load from elsewhere on the machine hits both alike.
  std::map<int, std::vector<double>> raw, service;
  bool failed = false;
  for (int rep = 1; rep <= absl::GetFlag(FLAGS_repeat); ++rep) {
    for (int n : stream_counts) {
      const StreamsRun r = RunEchoStreams(echo->port(), workload, n, chunk);
      Report("raw", n, rep, r);
      const StreamsRun s =
          with_service ? RunQuantizeStreams(rtnq->port(), Int4G32Session(), workload, n, chunk)
                       : StreamsRun{};
      if (with_service) Report("service", n, rep, s);
      failed |= !r.status.ok() || !s.status.ok();
      raw[n].push_back(r.GBps());
      if (with_service) service[n].push_back(s.GBps());
    }
  }
  double ceiling = 0;
  for (const auto& [n, v] : raw) ceiling = std::max(ceiling, Median(v));
  if (!with_service) {
    for (int n : stream_counts) std::printf("raw streams=%d median %.3f GB/s\n", n, Median(raw[n]));
    std::printf("ceiling = best raw median = %.3f GB/s\n", ceiling);
    return failed ? 1 : 0;
  }
  std::printf(
      "\n| streams | raw GB/s (median) | service GB/s (median) | service/raw | "
      "service/ceiling |\n|---|---|---|---|---|\n");
  for (int n : stream_counts) {
    const double r = Median(raw[n]), s = Median(service[n]);
    std::printf("| %d | %.3f | %.3f | %.2f | %.2f |\n", n, r, s, s / r, s / ceiling);
  }
  std::printf("ceiling = best raw median = %.3f GB/s; target service/ceiling >= 0.75\n", ceiling);
  return failed ? 1 : 0;
}

int Rss() {
  const int64_t budget = absl::GetFlag(FLAGS_memory_budget_bytes);
  const int streams = absl::GetFlag(FLAGS_rss_streams);
  // At least one tensor per stream, so that every stream holds memory at once.
  const Workload workload = LlamaWorkload(absl::GetFlag(FLAGS_rss_bytes), streams);
  auto server = ServerProcess::Start(RtnqServerArgs(budget));
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  // The idle server's resident set, after a moment to settle.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t base_rss = server->StatusBytes("VmRSS");
  const int64_t base_hwm = server->StatusBytes("VmHWM");
  const StreamsRun r = RunQuantizeStreams(server->port(), Int4G32Session(), workload, streams,
                                          static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes)));
  Report("rss", streams, 1, r);
  const int64_t peak = server->StatusBytes("VmHWM");
  const double mib = 1 << 20;
  std::printf(
      "\nserver RSS: idle %.0f MiB (HWM %.0f MiB), peak VmHWM %.0f MiB under %d streams "
      "and %.0f MiB in %zu tensors\n",
      base_rss / mib, base_hwm / mib, peak / mib, streams, workload.total_bytes / mib,
      workload.tensors.size());
  std::printf("budget %.0f MiB; peak - idle = %.0f MiB; peak - (budget + idle) = %+.0f MiB\n",
              budget / mib, (peak - base_rss) / mib, (peak - budget - base_rss) / mib);
  const int exit_status = server->Stop();
  std::printf("server exit status %d\n", exit_status);
  return r.status.ok() ? 0 : 1;
}

}  // namespace
}  // namespace rtnq::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "echo_server") {
    const absl::Status s = rtnq::bench::ServeEcho(
        absl::GetFlag(FLAGS_listen), absl::GetFlag(FLAGS_port_file), rtnq::bench::kEchoMaxMessage,
        std::max(1, absl::GetFlag(FLAGS_echo_divisor)));
    if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return s.ok() ? 0 : 1;
  }
  if (mode == "throughput") return rtnq::bench::Throughput(true);
  if (mode == "raw") return rtnq::bench::Throughput(false);
  if (mode == "rss") return rtnq::bench::Rss();
  if (mode == "hostile") return rtnq::bench::HostileRss(rtnq::bench::ServerPath());
  if (mode == "all") {
    const int t = rtnq::bench::Throughput(true);
    std::printf("\n");
    return std::max(t, rtnq::bench::Rss());
  }
  std::fprintf(stderr, "--mode: unknown value '%s'\n", mode.c_str());
  return 2;
}
