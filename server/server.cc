#include "server/server.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/engine.h"
#include "core/happens_before.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/auth.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/progress_monitor.h"
#include "server/quantizer_service.h"
#include "server/service_context.h"
#include "server/session_cache.h"
#include "server/stream_registry.h"
#include "server/tls.h"
#include "server/work_pool.h"
#include "spdlog/spdlog.h"

namespace rtnq::server {
namespace {

constexpr char kServiceName[] = "rtnq.v1.Quantizer";
// What gRPC's own buffers may take (see the resource quota in Start): the fixed overhead above
// --memory_budget_bytes.
constexpr int64_t kTransportQuotaBytes = int64_t{128} << 20;

absl::Status ValidateOptions(const ServerOptions& o) {
  auto positive = [](const char* flag, int64_t v) -> absl::Status {
    if (v > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be > 0, got ", v));
  };
  if (o.listen.empty()) return absl::InvalidArgumentError("--listen is empty");
  for (auto [flag, v] : {std::pair<const char*, int64_t>{"max_tensor_bytes", o.max_tensor_bytes},
                         {"memory_budget_bytes", o.memory_budget_bytes},
                         {"stream_budget_bytes", o.stream_budget_bytes},
                         {"max_streams", o.max_streams},
                         {"max_message_bytes", o.max_message_bytes},
                         {"output_chunk_bytes", o.output_chunk_bytes},
                         {"session_cache_bytes", o.session_cache_bytes},
                         {"max_stream_name_bytes", o.max_stream_name_bytes}}) {
    if (absl::Status s = positive(flag, v); !s.ok()) return s;
  }
  if (o.stream_window_bytes < 0 || o.stream_window_bytes > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("--stream_window_bytes must be in [0, 2 GiB), got ", o.stream_window_bytes));
  }
  if (o.max_message_bytes > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_message_bytes must be < 2 GiB, got ", o.max_message_bytes));
  }
  if (o.metrics_threads <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_threads must be > 0, got ", o.metrics_threads));
  }
  if (!(o.metrics_request_timeout_seconds >= 0.001 && o.metrics_request_timeout_seconds <= 3600)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_request_timeout must be in [0.001, 3600] seconds, got ",
                     o.metrics_request_timeout_seconds));
  }
  if (o.max_reservation_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_reservation_bytes must be >= 0 (0: twice --max_tensor_bytes), got ",
                     o.max_reservation_bytes));
  }
  for (auto [flag, v] : {std::pair<const char*, double>{"idle_timeout", o.idle_timeout_seconds},
                         {"min_bytes_per_second", o.min_bytes_per_second},
                         {"min_rate_grace", o.min_rate_grace_seconds},
                         {"max_stream_seconds", o.max_stream_seconds},
                         {"shutdown_grace", o.shutdown_grace_seconds}}) {
    if (!(v >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be >= 0, got ", v));
    }
  }
  if (o.session_cache_entries < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--session_cache_entries must be >= 0, got ", o.session_cache_entries));
  }
  return absl::OkStatus();
}

}  // namespace

RtnqServer::RtnqServer(const ServerOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<RtnqServer>> RtnqServer::Start(const ServerOptions& options) {
  return Start(options, ServerHooks{});
}

absl::StatusOr<std::unique_ptr<RtnqServer>> RtnqServer::Start(const ServerOptions& options,
                                                              ServerHooks hooks) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  std::unique_ptr<RtnqServer> srv(new RtnqServer(options));
  const ServerOptions& o = srv->options_;

  auto engine = Engine::Create(EngineOptions{o.threads, o.kernels});
  if (!engine.ok()) return engine.status();
  srv->engine_ = *std::move(engine);
  const std::string kernel(srv->engine_->kernels().name);
  srv->metrics_ = std::make_unique<ServerMetrics>(
      o.version.empty() ? std::string(BuiltInVersion()) : o.version, kernel);
  ServerMetrics* metrics = srv->metrics_.get();
  srv->memory_ = std::make_unique<MemoryBudget>(
      o.memory_budget_bytes, [metrics](int64_t used) { metrics->SetInflightBytes(used); });
  if (!o.auth_token_file.empty()) {
    auto auth = TokenAuth::FromFile(o.auth_token_file);
    if (!auth.ok()) return auth.status();
    srv->auth_ = std::make_unique<TokenAuth>(*std::move(auth));
  }
  auto creds = MakeServerCredentials(o);
  if (!creds.ok()) return creds.status();
  srv->streams_ = std::make_unique<StreamRegistry>();
  srv->sessions_ =
      std::make_unique<SessionCache>(o.session_cache_entries, o.session_cache_bytes, metrics);
  srv->pool_ = std::make_unique<WorkPool>(srv->engine_->threads());
  srv->context_ = std::make_unique<ServiceContext>();
  ServiceContext& ctx = *srv->context_;
  ctx.options = &srv->options_;
  ctx.engine = srv->engine_.get();
  ctx.pool = srv->pool_.get();
  ctx.memory = srv->memory_.get();
  ctx.metrics = metrics;
  ctx.auth = srv->auth_.get();
  ctx.streams = srv->streams_.get();
  ctx.hooks = std::move(hooks);
  ctx.sessions = srv->sessions_.get();
  srv->service_ = std::make_unique<QuantizerService>(ctx);
  srv->pool_->Start();  // after everything its tasks read is set up

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, *creds, &srv->port_);
  builder.RegisterService(srv->service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(o.max_message_bytes));
  // gRPC buffers what clients send before the reactors read it (up to each stream's HTTP/2
  // flow-control window, which BDP probing grows to megabytes): with many streams held back by
  // the memory budget that buffering, not the budget, bounded memory. A resource quota makes
  // the transport shrink its windows under pressure, so its buffering stays near a fixed size
  // whatever the number of streams.
  grpc::ResourceQuota quota("rtnq-server-transport");
  quota.Resize(kTransportQuotaBytes);
  builder.SetResourceQuota(quota);
  // Under that quota's pressure gRPC first shrinks windows, then cancels streams outright
  // (RST_STREAM ENHANCE_YOUR_CALM, RESOURCE_EXHAUSTED to the client): 64 streams waiting for
  // their reservations with data in flight reached it. A fixed window per stream keeps what
  // clients can have sent ahead at max_streams x window, below the quota, at the cost of a
  // window's worth of bandwidth-delay product per stream (1 MiB: 1 GB/s at 1 ms round trip).
  if (o.stream_window_bytes > 0) {
    builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
                               static_cast<int>(o.stream_window_bytes));
  }
  srv->server_ = builder.BuildAndStart();
  if (srv->server_ == nullptr || srv->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --listen \"", o.listen, "\""));
  }
  if (!o.metrics_listen.empty()) {
    auto port = metrics->StartExposer(o.metrics_listen, o.metrics_threads,
                                      o.metrics_request_timeout_seconds);
    if (!port.ok()) return port.status();
    srv->metrics_port_ = *port;
  }
  grpc::HealthCheckServiceInterface* health = srv->server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(kServiceName, true);
  srv->reaper_ = std::thread([s = srv.get()] { s->SweepStreams(); });
  spdlog::info(
      "server start port={} metrics_port={} kernel={} threads={} tls={} mtls={} auth={} "
      "max_streams={} memory_budget_bytes={} stream_budget_bytes={} max_tensor_bytes={}",
      srv->port_, srv->metrics_port_, kernel, srv->engine_->threads(), !o.tls_cert_file.empty(),
      !o.tls_client_ca_file.empty(), srv->auth_ != nullptr, o.max_streams, o.memory_budget_bytes,
      o.stream_budget_bytes, o.max_tensor_bytes);
  return srv;
}

RtnqServer::~RtnqServer() {
  if (server_ != nullptr) Shutdown(0);
  if (reaper_.joinable()) reaper_.join();
}

void RtnqServer::SweepStreams() {
  // The sweep's period bounds how late a stream that makes too little progress is ended; a
  // quarter of the shortest rule keeps that error small without waking often. CheckProgress
  // never blocks on a stream, so no stream can hold the sweep up for the others.
  const auto period = ProgressMonitor::SweepPeriod(options_);
  std::unique_lock<std::mutex> l(mu_);
  while (!shutdown_done_) {
    cv_.wait_for(l, period);
    if (shutdown_done_) break;
    l.unlock();
    streams_->CheckProgress(std::chrono::steady_clock::now());
    l.lock();
  }
}

void RtnqServer::Shutdown() { Shutdown(options_.shutdown_grace_seconds); }

void RtnqServer::Shutdown(double grace_seconds) {
  {
    std::unique_lock<std::mutex> l(mu_);
    if (shutdown_started_) {
      cv_.wait(l, [this] { return shutdown_done_; });
      return;
    }
    shutdown_started_ = true;
  }
  const auto start = std::chrono::steady_clock::now();
  context_->draining.store(true);
  server_->GetHealthCheckService()->SetServingStatus(false);
  spdlog::info("server shutdown begins active_streams={} grace_seconds={}", streams_->active(),
               grace_seconds);
  const bool drained = streams_->WaitUntilEmpty(
      start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                  std::chrono::duration<double>(grace_seconds)));
  const int cancelled = streams_->active();
  // Streams still running after the grace period are cancelled; Shutdown waits for them.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  MarkHappensAfter(context_.get());  // every stream's OnDone (quantize_reactor.cc)
  spdlog::info("server shutdown done drained={} cancelled_streams={} seconds={:.3f}", drained,
               cancelled,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  {
    std::lock_guard<std::mutex> l(mu_);
    shutdown_done_ = true;
  }
  cv_.notify_all();
}

void RtnqServer::Wait() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [this] { return shutdown_done_; });
}

int RtnqServer::active_streams() const { return streams_->active(); }

}  // namespace rtnq::server
