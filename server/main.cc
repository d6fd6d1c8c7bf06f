// rtnq-server: flags -> ServerOptions, start, and a graceful shutdown on SIGTERM/SIGINT.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "core/io/file_io.h"
#include "server/logging.h"
#include "server/server.h"
#include "server/server_options.h"
#include "spdlog/spdlog.h"

namespace {
const rtnq::server::ServerOptions kDefaults;
}  // namespace

ABSL_FLAG(std::string, listen, kDefaults.listen, "gRPC address host:port (port 0: any free port)");
ABSL_FLAG(std::string, metrics_listen, kDefaults.metrics_listen,
          "Prometheus /metrics address host:port (a bare port binds 127.0.0.1); empty: no "
          "metrics endpoint");
ABSL_FLAG(int, metrics_threads, kDefaults.metrics_threads,
          "/metrics connections served at once (a slow client holds one until its timeout)");
ABSL_FLAG(double, metrics_request_timeout, kDefaults.metrics_request_timeout_seconds,
          "seconds a /metrics client has to send its whole request (and take the answer)");
ABSL_FLAG(std::string, port_file, "",
          "after binding, write the gRPC port (one line) to this file, atomically");
ABSL_FLAG(int, threads, kDefaults.threads, "quantization threads; 0 = all cores");
ABSL_FLAG(std::string, kernels, kDefaults.kernels,
          "CPU kernels: empty = best for this CPU, or reference, avx2, avx512");
ABSL_FLAG(int64_t, max_tensor_bytes, kDefaults.max_tensor_bytes,
          "largest tensor accepted; larger ones: RESOURCE_EXHAUSTED before their data is read");
ABSL_FLAG(int64_t, memory_budget_bytes, kDefaults.memory_budget_bytes,
          "in-flight bytes over all streams (input held + output queued); reads pause beyond it");
ABSL_FLAG(int64_t, stream_budget_bytes, kDefaults.stream_budget_bytes,
          "in-flight bytes of one stream");
ABSL_FLAG(int, max_streams, kDefaults.max_streams, "concurrent Quantize streams");
ABSL_FLAG(int64_t, max_message_bytes, kDefaults.max_message_bytes,
          "largest request message (chunk) accepted");
ABSL_FLAG(int64_t, output_chunk_bytes, kDefaults.output_chunk_bytes,
          "data bytes per OutputChunk sent back");
ABSL_FLAG(int64_t, stream_window_bytes, kDefaults.stream_window_bytes,
          "HTTP/2 receive window per stream (what a client may send ahead of the server's "
          "reads); 0 = gRPC's bandwidth-probed windows");
ABSL_FLAG(int64_t, max_reservation_bytes, kDefaults.max_reservation_bytes,
          "largest reservation of one tensor (whole input or outputs when buffered, codes kept "
          "for packing, one row); larger: RESOURCE_EXHAUSTED at its header; 0 = twice "
          "--max_tensor_bytes");
ABSL_FLAG(int, session_cache_entries, kDefaults.session_cache_entries,
          "parsed session configs kept for streams that resend them; 0 = no cache");
ABSL_FLAG(int64_t, session_cache_bytes, kDefaults.session_cache_bytes,
          "bytes the session cache may hold (config bytes + 1 KiB per weight_config entry)");
ABSL_FLAG(double, idle_timeout, kDefaults.idle_timeout_seconds,
          "seconds a stream may wait on its client without any data moving before it is ended; "
          "0 = never");
ABSL_FLAG(double, min_bytes_per_second, kDefaults.min_bytes_per_second,
          "while a client owes data (a tensor's chunks, results to receive), the average rate it "
          "must keep, after --min_rate_grace; 0 = no minimum");
ABSL_FLAG(double, min_rate_grace, kDefaults.min_rate_grace_seconds,
          "seconds of allowance of the minimum rate (plus one --max_message_bytes at that rate)");
ABSL_FLAG(double, max_stream_seconds, kDefaults.max_stream_seconds,
          "seconds a stream may stay open; 0 = no limit");
ABSL_FLAG(int64_t, max_stream_name_bytes, kDefaults.max_stream_name_bytes,
          "bytes of tensor names one stream may send (kept for its duplicate-name check); more: "
          "RESOURCE_EXHAUSTED, the client opens a new stream");
ABSL_FLAG(double, shutdown_grace, kDefaults.shutdown_grace_seconds,
          "seconds in-flight streams may take to finish after SIGTERM/SIGINT");
ABSL_FLAG(std::string, tls_cert_file, "", "PEM certificate chain; empty: plaintext");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle; when set, clients must present a certificate it signed (mTLS)");
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding the bearer token clients must send as `authorization: Bearer <token>`");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error, critical or off");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("rtnq-server: the streaming RTN quantization service");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = rtnq::server::ConfigureLogging(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::fprintf(stderr, "rtnq-server: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  rtnq::server::ServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  o.metrics_threads = absl::GetFlag(FLAGS_metrics_threads);
  o.metrics_request_timeout_seconds = absl::GetFlag(FLAGS_metrics_request_timeout);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.kernels = absl::GetFlag(FLAGS_kernels);
  o.max_tensor_bytes = absl::GetFlag(FLAGS_max_tensor_bytes);
  o.memory_budget_bytes = absl::GetFlag(FLAGS_memory_budget_bytes);
  o.stream_budget_bytes = absl::GetFlag(FLAGS_stream_budget_bytes);
  o.max_streams = absl::GetFlag(FLAGS_max_streams);
  o.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  o.output_chunk_bytes = absl::GetFlag(FLAGS_output_chunk_bytes);
  o.stream_window_bytes = absl::GetFlag(FLAGS_stream_window_bytes);
  o.max_reservation_bytes = absl::GetFlag(FLAGS_max_reservation_bytes);
  o.session_cache_entries = absl::GetFlag(FLAGS_session_cache_entries);
  o.session_cache_bytes = absl::GetFlag(FLAGS_session_cache_bytes);
  o.idle_timeout_seconds = absl::GetFlag(FLAGS_idle_timeout);
  o.min_bytes_per_second = absl::GetFlag(FLAGS_min_bytes_per_second);
  o.min_rate_grace_seconds = absl::GetFlag(FLAGS_min_rate_grace);
  o.max_stream_seconds = absl::GetFlag(FLAGS_max_stream_seconds);
  o.max_stream_name_bytes = absl::GetFlag(FLAGS_max_stream_name_bytes);
  o.shutdown_grace_seconds = absl::GetFlag(FLAGS_shutdown_grace);
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  o.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  o.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);

  // Block the shutdown signals before any thread starts, so that every thread inherits the
  // mask and only the waiter below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = rtnq::server::RtnqServer::Start(o);
  if (!server.ok()) {
    spdlog::critical("server failed to start: {}", server.status().ToString());
    return 1;
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    absl::Status s = rtnq::WriteFileAtomically(port_file, absl::StrCat((*server)->port(), "\n"));
    if (!s.ok()) {
      spdlog::critical("cannot write --port_file: {}", s.ToString());
      (*server)->Shutdown(0);
      return 1;
    }
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {} received: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  return 0;
}
