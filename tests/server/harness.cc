#include "tests/server/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/testing/time_scale.h"

namespace rtnq::server::testing {

ServerOptions TestOptions() {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.threads = 2;
  o.max_tensor_bytes = 64 << 20;
  o.memory_budget_bytes = 256 << 20;
  o.stream_budget_bytes = 64 << 20;
  o.max_streams = 64;
  o.max_message_bytes = 4 << 20;
  o.idle_timeout_seconds = 30;
  o.shutdown_grace_seconds = 5;
  return o;
}

std::unique_ptr<RtnqServer> StartServer(const ServerOptions& options) {
  auto s = RtnqServer::Start(options);
  if (!s.ok()) {
    ADD_FAILURE() << "server did not start: " << s.status();
    return nullptr;
  }
  return *std::move(s);
}

std::shared_ptr<grpc::Channel> Connect(int port) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<v1::Quantizer::Stub> Stub(int port) {
  return v1::Quantizer::NewStub(Connect(port));
}

Tensor RandomTensor(std::string name, std::string dtype, std::vector<int64_t> shape,
                    uint32_t seed) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  Tensor t{std::move(name), dtype, std::move(shape), {}};
  for (int64_t i = 0; i < n; ++i) {
    const float v = normal(rng);
    if (dtype == "F32") {
      t.data.append(reinterpret_cast<const char*>(&v), 4);
    } else {
      const uint16_t h = dtype == "BF16" ? FloatToBf16(v) : FloatToHalf(v);
      t.data.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
  return t;
}

v1::QuantizeRequest ConfigRequest(const v1::SessionConfig& config) {
  v1::QuantizeRequest r;
  *r.mutable_config() = config;
  return r;
}

v1::QuantizeRequest HeaderRequest(const std::string& name, const std::string& dtype,
                                  const std::vector<int64_t>& shape, int64_t total_bytes,
                                  std::optional<uint32_t> crc32c) {
  v1::QuantizeRequest r;
  v1::TensorHeader* h = r.mutable_header();
  h->set_name(name);
  h->set_dtype(dtype);
  for (int64_t d : shape) h->add_shape(d);
  h->set_total_bytes(total_bytes);
  if (crc32c.has_value()) h->set_crc32c(*crc32c);
  return r;
}

v1::QuantizeRequest ChunkRequest(std::string data) {
  v1::QuantizeRequest r;
  r.mutable_chunk()->set_data(std::move(data));
  return r;
}

std::vector<v1::QuantizeRequest> TensorRequests(const Tensor& t, size_t chunk_bytes,
                                                std::optional<uint32_t> crc32c) {
  std::vector<v1::QuantizeRequest> out{
      HeaderRequest(t.name, t.dtype, t.shape, static_cast<int64_t>(t.data.size()), crc32c)};
  for (size_t off = 0; off < t.data.size(); off += chunk_bytes) {
    out.push_back(ChunkRequest(t.data.substr(off, chunk_bytes)));
  }
  return out;
}

void ResultCollector::Add(const v1::QuantizeResponse& r) {
  auto bad = [&](const std::string& what) {
    if (result_.order_error.empty()) result_.order_error = what;
  };
  switch (r.kind_case()) {
    case v1::QuantizeResponse::kStarted:
      if (result_.started.has_value()) bad("started twice");
      result_.started = r.started();
      break;
    case v1::QuantizeResponse::kResult: {
      if (!current_.empty()) bad("result header inside tensor " + current_);
      current_ = r.result().tensor_name();
      result_.order.push_back(current_);
      TensorResult& t = result_.tensors[current_];
      t.header = r.result();
      t.outputs.assign(r.result().outputs_size(), "");
      break;
    }
    case v1::QuantizeResponse::kChunk: {
      if (current_.empty()) {
        bad("chunk outside a result");
        break;
      }
      TensorResult& t = result_.tensors[current_];
      const auto& c = r.chunk();
      if (c.output_index() >= t.outputs.size()) {
        bad("chunk output_index out of range");
        break;
      }
      std::string& out = t.outputs[c.output_index()];
      if (c.offset() != static_cast<int64_t>(out.size())) bad("chunk offset gap");
      out.append(c.data());
      break;
    }
    case v1::QuantizeResponse::kMetrics: {
      const std::string& name = r.metrics().tensor_name();
      if (!current_.empty() && current_ != name) bad("metrics for another tensor");
      if (current_.empty()) bad("metrics without a result header");
      result_.tensors[name].metrics = r.metrics();
      current_.clear();
      break;
    }
    case v1::QuantizeResponse::kError: {
      const std::string& name = r.error().tensor_name();
      if (!current_.empty() && current_ != name) bad("error for another tensor");
      if (current_.empty()) result_.order.push_back(name);
      result_.tensors[name].error = r.error();
      current_.clear();
      break;
    }
    case v1::QuantizeResponse::kSummary:
      if (!current_.empty()) bad("summary inside tensor " + current_);
      result_.summary = r.summary();
      break;
    default:
      bad("empty response");
  }
}

std::vector<v1::QuantizeRequest> SessionRequests(const v1::SessionConfig& config,
                                                 const std::vector<Tensor>& tensors, size_t chunk) {
  std::vector<v1::QuantizeRequest> out{ConfigRequest(config)};
  for (const Tensor& t : tensors) {
    for (auto& r : TensorRequests(t, chunk)) out.push_back(std::move(r));
  }
  return out;
}

std::vector<SessionResult> RunConcurrently(
    int port, const std::vector<std::vector<v1::QuantizeRequest>>& sessions) {
  std::vector<SessionResult> results(sessions.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < sessions.size(); ++i) {
    threads.emplace_back([&, i] {
      auto stub = Stub(port);
      results[i] = RunSession(*stub, sessions[i]);
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

RawSessionResult RunRawSession(int port, const std::vector<std::string>& messages,
                               const std::function<void(grpc::ClientContext&)>& setup) {
  grpc::GenericStub stub(Connect(port));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (setup) setup(ctx);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/rtnq.v1.Quantizer/Quantize", &cq);
  // One operation at a time: each completes before the next starts.
  auto done = [&cq] {
    void* tag = nullptr;
    bool ok = false;
    return cq.Next(&tag, &ok) && ok;
  };
  RawSessionResult result;
  call->StartCall(nullptr);
  bool open = done();
  for (size_t i = 0; open && i < messages.size(); ++i) {
    grpc::Slice slice(messages[i]);
    call->Write(grpc::ByteBuffer(&slice, 1), nullptr);
    open = done();
  }
  if (open) {
    call->WritesDone(nullptr);
    done();
  }
  for (;;) {
    grpc::ByteBuffer buffer;
    call->Read(&buffer, nullptr);
    if (!done()) break;
    v1::QuantizeResponse r;
    std::vector<grpc::Slice> slices;
    (void)buffer.Dump(&slices);
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    r.ParseFromString(bytes);
    result.responses.push_back(std::move(r));
  }
  call->Finish(&result.status, nullptr);
  done();
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

bool WaitFor(const std::function<bool()>& done, double seconds) {
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(seconds * ::rtnq::testing::TestTimeScale()));
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

SessionResult RunSession(v1::Quantizer::Stub& stub,
                         const std::vector<v1::QuantizeRequest>& requests,
                         const std::function<void(grpc::ClientContext&)>& setup) {
  grpc::ClientContext ctx;
  ctx.set_deadline(::rtnq::testing::TestDeadline(60));
  if (setup) setup(ctx);
  auto stream = stub.Quantize(&ctx);
  std::thread writer([&] {
    for (const auto& r : requests) {
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
  });
  ResultCollector collector;
  v1::QuantizeResponse r;
  while (stream->Read(&r)) collector.Add(r);
  writer.join();
  collector.result().status = stream->Finish();
  return std::move(collector.result());
}

InteractiveSession::InteractiveSession(v1::Quantizer::Stub& stub, const v1::SessionConfig& config,
                                       const std::function<void(grpc::ClientContext&)>& setup) {
  ctx_.set_deadline(::rtnq::testing::TestDeadline(60));
  if (setup) setup(ctx_);
  stream_ = stub.Quantize(&ctx_);
  ok_ = stream_->Write(ConfigRequest(config));
  v1::QuantizeResponse r;
  if (ok_ && stream_->Read(&r)) {
    collector_.Add(r);
    ok_ = r.has_started();
  } else {
    ok_ = false;
  }
}

TensorResult InteractiveSession::Send(const Tensor& t, size_t chunk_bytes) {
  for (const auto& req : TensorRequests(t, chunk_bytes)) {
    if (!ok_ || !stream_->Write(req)) ok_ = false;
  }
  v1::QuantizeResponse r;
  while (ok_) {
    if (!stream_->Read(&r)) {
      ok_ = false;
      break;
    }
    collector_.Add(r);
    if ((r.has_metrics() || r.has_error()) && collector_.tensor_done()) break;
  }
  auto it = collector_.result().tensors.find(t.name);
  return it == collector_.result().tensors.end() ? TensorResult{} : it->second;
}

SessionResult InteractiveSession::Close() {
  stream_->WritesDone();
  v1::QuantizeResponse r;
  while (stream_->Read(&r)) collector_.Add(r);
  collector_.result().status = stream_->Finish();
  return std::move(collector_.result());
}

RawConnection::RawConnection(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return;
  timeval tv{5, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd_);
    fd_ = -1;
  }
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) close(fd_);
}

bool RawConnection::Send(const std::string& bytes) {
  if (fd_ < 0) return false;
  return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

bool RawConnection::Drain(double seconds, std::string* out) {
  if (fd_ < 0) return true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return true;  // 0: closed; < 0: reset
    if (out != nullptr) out->append(buf, n);
  }
  return false;
}

std::string RawConnection::ReceiveAll(double seconds) {
  std::string out;
  Drain(seconds, &out);
  return out;
}

bool RawConnection::ClosedByServer(double seconds) { return Drain(seconds, nullptr); }

std::string ScrapeMetrics(int port) {
  RawConnection c(port);
  std::string response;
  if (c.Send("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")) response = c.ReceiveAll(10);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

double MetricValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0)
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
  }
  return -1;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/rtnq_server_test_XXXXXX";
  const char* p = mkdtemp(tmpl);
  path_ = p == nullptr ? "/tmp" : p;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (path_ != "/tmp") std::filesystem::remove_all(path_, ec);
}

bool MakeCert(const TempDir& dir, const std::string& stem, const std::string& cn) {
  const std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "
      "/CN=",
      cn, " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ", dir.File(stem + ".key"),
      " -out ", dir.File(stem + ".crt"), " >/dev/null 2>&1");
  if (std::system(cmd.c_str()) == 0) return true;
  ADD_FAILURE() << "openssl failed: " << cmd;
  return false;
}

}  // namespace rtnq::server::testing
