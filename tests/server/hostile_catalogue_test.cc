// The hostile-input catalogue: what a client on the same network can send to rtnq-server, one row
// per case (name, attack, expected status code, a substring of the message naming what was
// wrong). Each case runs against its own real server on 127.0.0.1 with small budgets and limits;
// after it the server must still quantize a normal tensor on a fresh stream, hold no in-flight
// bytes, and have written only well-formed, bounded log lines.
//
// Outcomes: a stream-ending case yields the stream's status; an in-band case (Answers) yields the
// TensorError of the named tensor, in a stream that must itself end OK; attacks on /metrics and
// on the budgets yield OK when the server held (or INTERNAL with what went wrong).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/io/crc32c.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/logging.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"
#include "tests/server/harness.h"

namespace rtnq::server::testing {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using Code = grpc::StatusCode;
using Requests = std::vector<v1::QuantizeRequest>;

// Small limits, so that every case crosses them with little data.
constexpr int64_t kChunk = 64 << 10;                 // what well-behaved clients send
constexpr int64_t kMaxMessage = (256 << 10) + 1024;  // --max_message_bytes
constexpr int64_t kMaxTensor = 1 << 20;              // --max_tensor_bytes
constexpr int64_t kStreamBudget = 512 << 10;         // --stream_budget_bytes
constexpr int64_t kMemoryBudget = 2 << 20;           // --memory_budget_bytes
constexpr int kMaxStreams = 8;                       // --max_streams
constexpr double kIdleSeconds = 1;                   // --idle_timeout
constexpr int64_t kMinRate = 256 << 10;              // --min_bytes_per_second
constexpr double kMinRateGrace = 1;                  // --min_rate_grace
constexpr int64_t kNameBytes = 1 << 20;              // --max_stream_name_bytes
constexpr char kToken[] = "catalogue-token";
// A log line holds at most a 1 KiB message and a 256-byte peer, each escaped to 4x.
constexpr size_t kMaxLogLine = 8 << 10;

// ---------------------------------------------------------------------------------------------
// The server under attack
// ---------------------------------------------------------------------------------------------

/// What an attack observed.
struct Outcome {
  Code code = Code::OK;
  std::string message;
};

/// The server a case attacks and how to reach it.
struct Target {
  RtnqServer* server = nullptr;
  ServerOptions options;
  int port() const { return server->port(); }
};

using Attack = std::function<Outcome(Target&)>;

/// One row of the catalogue.
struct Case {
  std::string name;
  Attack attack;
  Code code;
  std::string message;                                    ///< a substring of the outcome's message
  std::function<void(ServerOptions&)> options = nullptr;  ///< changes to CatalogueOptions()
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

void Authorize(grpc::ClientContext& ctx) {
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
}

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

ServerOptions CatalogueOptions(const std::string& token_file) {
  ServerOptions o = TestOptions();
  o.max_message_bytes = kMaxMessage;
  o.max_tensor_bytes = kMaxTensor;
  o.stream_budget_bytes = kStreamBudget;
  o.memory_budget_bytes = kMemoryBudget;
  o.max_streams = kMaxStreams;
  o.idle_timeout_seconds = kIdleSeconds;
  o.min_bytes_per_second = kMinRate;
  o.min_rate_grace_seconds = kMinRateGrace;
  o.max_stream_name_bytes = kNameBytes;
  o.auth_token_file = token_file;
  return o;
}

// Room for a 1.2 MB config of 100,000 entries. Config bytes are not data progress, so on a loaded
// machine the 1 s idle timeout could end the stream before such a config has even arrived.
void BigConfigs(ServerOptions& o) {
  o.max_message_bytes = 4 << 20;
  o.idle_timeout_seconds = 30;
}

// /metrics on, with 2 workers and a 0.5 s request timeout. Only for the cases that attack it:
// CivetWeb takes up to 2 s to stop.
void WithMetrics(ServerOptions& o) {
  o.metrics_listen = "127.0.0.1:0";
  o.metrics_threads = 2;
  o.metrics_request_timeout_seconds = 0.5;
}

// ---------------------------------------------------------------------------------------------
// Request builders
// ---------------------------------------------------------------------------------------------

Requests operator+(Requests a, const Requests& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Requests Cfg(const v1::SessionConfig& c = {}) { return {ConfigRequest(c)}; }

// Tensor "t.weight" framed as given: a header of `dtype`, `shape` and `total_bytes`, then one
// chunk of `data_bytes` zero bytes.
Requests Framed(const std::string& dtype, std::vector<int64_t> shape, int64_t total_bytes,
                int64_t data_bytes) {
  return {HeaderRequest("t.weight", dtype, shape, total_bytes),
          ChunkRequest(std::string(data_bytes, '\0'))};
}

// The header of float32 tensor "t.weight" of `shape`, its data not sent.
Requests Header(const std::vector<int64_t>& shape) {
  int64_t bytes = 4;
  for (int64_t d : shape) bytes *= d;
  return {HeaderRequest("t.weight", "F32", shape, bytes)};
}

// A small well-formed float32 tensor.
Tensor Small(const std::string& name, std::vector<int64_t> shape = {8, 64},
             const std::string& dtype = "F32") {
  return RandomTensor(name, dtype, std::move(shape), 1);
}

Requests Send(const Tensor& t) { return TensorRequests(t, kChunk); }

// `t` with element `index` set to `v` (float32, bfloat16 or float16 data).
Tensor With(Tensor t, int64_t index, float v) {
  if (t.dtype == "F32") {
    std::memcpy(t.data.data() + 4 * index, &v, 4);
  } else {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    // NaN and infinities keep their class when cut to bfloat16; float16 needs its own pattern.
    uint16_t h = t.dtype == "BF16" ? static_cast<uint16_t>(bits >> 16)
                                   : (std::isnan(v) ? 0x7e00 : (v > 0 ? 0x7c00 : 0xfc00));
    std::memcpy(t.data.data() + 2 * index, &h, 2);
  }
  return t;
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

v1::SessionConfig WithKey(const std::string& key, v1::SessionConfig c = {}) {
  v1::WeightConfigEntry* e = c.add_weight_config();
  e->set_key(key);
  e->mutable_patch()->set_bits(8);
  return c;
}

v1::SessionConfig Json(const std::string& json) {
  v1::SessionConfig c;
  c.set_config_json(json);
  return c;
}

v1::SessionConfig Patched(const std::function<void(v1::QuantConfigPatch&)>& f) {
  v1::SessionConfig c;
  f(*c.mutable_default_config());
  return c;
}

// No outputs: the data-rate rule counts bytes in and out, so only the client's input moves.
v1::SessionConfig MetricsOnly() {
  v1::SessionConfig c;
  c.set_metrics_only(true);
  return c;
}

v1::SessionConfig Form(v1::OutputForm form, v1::SessionConfig c = {}) {
  c.set_output_form(form);
  return c;
}

std::string Repeat(const std::string& s, int n) {
  std::string out;
  out.reserve(s.size() * n);
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// `n` weight_config entries for layers "l0", "l1", ...
v1::SessionConfig Layers(int n) {
  v1::SessionConfig c;
  for (int i = 0; i < n; ++i) {
    v1::WeightConfigEntry* e = c.add_weight_config();
    e->set_key(absl::StrCat("l", i));
    e->mutable_patch()->set_bits(8);
  }
  return c;
}

// A weight_config JSON object of `n` layer entries.
std::string JsonEntries(int n) {
  std::string out = "{\"weight_config\": {";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&out, i ? ", " : "", "\"model.layers.", i, ".mlp\": {\"bits\": 8}");
  }
  return out + "}}";
}

std::string Serialized(const v1::QuantizeRequest& r) { return r.SerializeAsString(); }

// The raw bytes of a header whose name is `name` (any bytes: the stub would not check them).
std::string RawHeader(const std::string& name, int64_t total_bytes = 2048) {
  v1::QuantizeRequest r = HeaderRequest("x", "F32", {8, 64}, total_bytes);
  std::string bytes = Serialized(r);
  // Field 2 (header), then its field 1 (name): rebuild both lengths around the new name.
  v1::TensorHeader h = r.header();
  h.clear_name();
  std::string rest = h.SerializeAsString();
  std::string inner;
  inner.push_back(0x0a);  // field 1, length-delimited
  for (uint64_t n = name.size();; n >>= 7) {
    if (n < 0x80) {
      inner.push_back(static_cast<char>(n));
      break;
    }
    inner.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  inner += name + rest;
  std::string outer;
  outer.push_back(0x12);  // field 2, length-delimited
  for (uint64_t n = inner.size();; n >>= 7) {
    if (n < 0x80) {
      outer.push_back(static_cast<char>(n));
      break;
    }
    outer.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  return outer + inner;
}

// ---------------------------------------------------------------------------------------------
// Attacks
// ---------------------------------------------------------------------------------------------

Outcome FromStatus(const grpc::Status& s) { return {s.error_code(), s.error_message()}; }

/// Sends the requests with a valid token; the outcome is the stream's status.
Attack Ends(std::function<Requests()> build) {
  return [build](Target& t) {
    auto stub = Stub(t.port());
    return FromStatus(RunSession(*stub, build(), Authorize).status);
  };
}

/// A session of one config with a single weight_config entry `key` (the outcome of Ends).
Attack EndsWithKey(std::string key) {
  return Ends([key] { return Cfg(WithKey(key)); });
}

/// A session of one config given as `json` (the outcome of Ends).
Attack EndsWithJson(std::string json) {
  return Ends([json] { return Cfg(Json(json)); });
}

/// Sends the requests; the stream must end OK, and the outcome is how `tensor` was answered: its
/// TensorError, or OK with "quantized" / "skipped: <reason>".
Attack Answers(std::function<Requests()> build, std::string tensor) {
  return [build, tensor](Target& t) -> Outcome {
    auto stub = Stub(t.port());
    const SessionResult r = RunSession(*stub, build(), Authorize);
    if (!r.status.ok()) return {r.status.error_code(), "stream: " + r.status.error_message()};
    if (!r.order_error.empty()) return {Code::INTERNAL, "response order: " + r.order_error};
    auto it = r.tensors.find(tensor);
    if (it == r.tensors.end()) return {Code::INTERNAL, "no answer for " + tensor};
    if (it->second.error.has_value()) {
      return {static_cast<Code>(it->second.error->code()), it->second.error->message()};
    }
    if (!it->second.metrics.has_value()) return {Code::INTERNAL, "no metrics for " + tensor};
    const v1::ResultHeader& h = *it->second.header;
    return {Code::OK, h.quantized() ? absl::StrCat("quantized by ", h.match_kind())
                                    : "skipped: " + h.skip_reason()};
  };
}

/// Sends raw message bytes with a valid token; the outcome is the stream's status.
Attack Raw(std::function<std::vector<std::string>()> build) {
  return
      [build](Target& t) { return FromStatus(RunRawSession(t.port(), build(), Authorize).status); };
}

/// A good session sent with `authorization` metadata ("" for none); Quantize and GetServerInfo
/// must agree, and the outcome is theirs.
Attack Authorization(std::string authorization) {
  return [authorization](Target& t) -> Outcome {
    auto with = [&](grpc::ClientContext& c) {
      if (!authorization.empty()) c.AddMetadata("authorization", authorization);
    };
    auto stub = Stub(t.port());
    const grpc::Status s = RunSession(*stub, Cfg() + Send(Small("a.weight")), with).status;
    grpc::ClientContext ctx;
    with(ctx);
    v1::ServerInfo info;
    const grpc::Status i = stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
    if (s.error_code() != i.error_code()) {
      return {Code::INTERNAL,
              absl::StrCat("Quantize ", s.error_code(), " but GetServerInfo ", i.error_code())};
    }
    return FromStatus(s);
  };
}

/// What a trickling client sends at tick i; nothing: it half-closes and waits for the end.
using Drip = std::function<Requests(int)>;

Drip Forever(v1::QuantizeRequest r) {
  return [r](int) { return Requests{r}; };
}

// `bytes` zero bytes per tick until `total` were sent.
Drip Bytes(int64_t bytes, int64_t total) {
  return [=](int i) {
    const int64_t sent = i * bytes;
    if (sent >= total) return Requests{};
    return Requests{ChunkRequest(std::string(std::min(bytes, total - sent), '\0'))};
  };
}

/// Opens a stream, sends `requests`, then every `period` seconds what `drip` gives, until the
/// server ends the stream, the drip runs dry (then half-closes) or 10 s pass (then cancels).
/// The outcome is the stream's status.
Attack Trickle(std::function<Requests()> requests, Drip drip, double period) {
  return [=](Target& t) -> Outcome {
    auto stub = Stub(t.port());
    grpc::ClientContext ctx;
    Authorize(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto stream = stub->Quantize(&ctx);
    std::atomic<bool> ended{false};
    std::thread reader([&] {
      v1::QuantizeResponse r;
      while (stream->Read(&r)) {
      }
      ended = true;
    });
    bool open = true;
    for (const auto& r : requests()) open = open && stream->Write(r);
    const auto start = Clock::now();
    for (int i = 0; open && !ended && Since(start) < 10; ++i) {
      // Drip i is due at (i + 1) periods: a slow write (a sanitizer build) is caught up on, so
      // the client keeps its average rate.
      WaitFor([&] { return ended.load(); }, std::max(0.0, (i + 1) * period - Since(start)));
      if (ended) break;
      const Requests next = drip(i);
      if (next.empty()) {
        stream->WritesDone();
        WaitFor([&] { return ended.load(); }, 10);
        break;
      }
      for (const auto& r : next) open = open && stream->Write(r);
    }
    // A failed write means the server ended the call: its reader is about to see the status,
    // which a cancel here would overwrite with CANCELLED.
    if (!open) WaitFor([&] { return ended.load(); }, 10);
    if (!ended) ctx.TryCancel();
    reader.join();
    return FromStatus(stream->Finish());
  };
}

/// `n` streams that send an empty chunk every 0.2 s hold every slot: a stream opened beside
/// them must be refused at once, and one opened after the server ended them (by its idle
/// timeout) must be served. OK, or the first thing that went otherwise.
Attack SlowLorisOnEverySlot(int n) {
  return [=](Target& t) -> Outcome {
    std::vector<std::thread> lorises;
    std::vector<Outcome> ends(n);
    const Attack loris = Trickle(
        [] {
          return Cfg() + Header({8, 64});
        },
        Forever(ChunkRequest("")), 0.2);
    for (int i = 0; i < n; ++i) lorises.emplace_back([&, i] { ends[i] = loris(t); });
    WaitFor([&] { return t.server->active_streams() == n; }, 5);
    auto stub = Stub(t.port());
    const grpc::Status beside =
        RunSession(*stub, Cfg() + Send(Small("x.weight")), Authorize).status;
    for (auto& l : lorises) l.join();
    if (beside.error_code() != Code::RESOURCE_EXHAUSTED) {
      return {Code::INTERNAL, "a stream beside them: " + beside.error_message()};
    }
    for (const Outcome& e : ends) {
      if (e.code != Code::DEADLINE_EXCEEDED) return {Code::INTERNAL, "a loris: " + e.message};
    }
    return FromStatus(RunSession(*stub, Cfg() + Send(Small("y.weight")), Authorize).status);
  };
}

/// Sends `requests` (without half-closing), then cancels once the server holds `held` bytes (or
/// after 5 s); the outcome is the stream's status (CANCELLED).
Attack CancelAfter(std::function<Requests()> requests, int64_t held) {
  return [=](Target& t) -> Outcome {
    auto stub = Stub(t.port());
    grpc::ClientContext ctx;
    Authorize(ctx);
    auto stream = stub->Quantize(&ctx);
    std::thread reader([&] {
      v1::QuantizeResponse r;
      while (stream->Read(&r)) {
      }
    });
    for (const auto& r : requests()) {
      if (!stream->Write(r)) break;
    }
    WaitFor([&] { return t.server->memory().peak() >= held; }, 5);
    ctx.TryCancel();
    reader.join();
    return FromStatus(stream->Finish());
  };
}

/// `n` sessions at once, each from `build(i)`; the outcome is the first failure, or OK with
/// the number of streams that succeeded. The server's peak in-flight bytes must stay within the
/// bound of server/memory_budget.h, max(budget, largest reservation) + streams x w x max message,
/// where w is the sessions' largest output/input ratio, else INTERNAL.
Attack Concurrently(int n, std::function<Requests(int)> build, double w = 1) {
  return [=](Target& t) -> Outcome {
    std::vector<SessionResult> results(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        auto stub = Stub(t.port());
        results[i] = RunSession(*stub, build(i), Authorize);
      });
    }
    for (auto& th : threads) th.join();
    const int64_t bound =
        std::max(t.options.memory_budget_bytes, MaxReservationBytes(t.options)) +
        static_cast<int64_t>(kMaxStreams * w * static_cast<double>(t.options.max_message_bytes));
    if (t.server->memory().peak() > bound) {
      return {Code::INTERNAL, absl::StrCat("peak in-flight ", t.server->memory().peak(),
                                           " bytes over the bound ", bound)};
    }
    int ok = 0;
    for (const SessionResult& r : results) {
      if (!r.status.ok()) return FromStatus(r.status);
      ok += r.summary.has_value() && r.summary->tensors_failed() == 0;
    }
    return {Code::OK, absl::StrCat(ok, " of ", n, " streams ok")};
  };
}

/// Sends a tensor whose results need more room than the stream's budget and never reads them:
/// the server must end the stream itself. DEADLINE_EXCEEDED with the rejection reason the server
/// counted, or INTERNAL when the stream is still open after 10 s.
Attack NeverReads() {
  return [](Target& t) -> Outcome {
    auto stub = Stub(t.port());
    grpc::ClientContext ctx;
    Authorize(ctx);
    auto stream = stub->Quantize(&ctx);
    std::thread writer([&] {
      for (const auto& r : Cfg() + Send(Small("t.weight", {256, 1024}))) {
        if (!stream->Write(r)) break;
      }
    });
    // The stream is registered once the server holds its first bytes; then it must end.
    WaitFor([&] { return t.server->memory().peak() > 0; }, 10);
    const bool ended = WaitFor([&] { return t.server->active_streams() == 0; }, 10);
    ctx.TryCancel();
    writer.join();
    stream->Finish();
    if (!ended) return {Code::INTERNAL, "the stream is still open"};
    const std::string text = t.server->metrics().Text();
    for (const char* reason : {"idle_timeout", "min_rate", "max_stream_seconds"}) {
      if (MetricValue(text, absl::StrCat("rtnq_rejections_total{reason=\"", reason, "\"}")) > 0) {
        return {Code::DEADLINE_EXCEEDED, reason};
      }
    }
    return {Code::INTERNAL, "ended without a counted reason"};
  };
}

/// Sends `requests` with a deadline of `seconds` and never half-closes; the outcome is the
/// stream's status.
Attack WithDeadline(std::function<Requests()> requests, double seconds) {
  return [=](Target& t) -> Outcome {
    auto stub = Stub(t.port());
    grpc::ClientContext ctx;
    Authorize(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::duration<double>(seconds)));
    auto stream = stub->Quantize(&ctx);
    for (const auto& r : requests()) {
      if (!stream->Write(r)) break;
    }
    v1::QuantizeResponse r;
    while (stream->Read(&r)) {
    }
    return FromStatus(stream->Finish());
  };
}

/// `n` plain TCP connections to the gRPC port that never speak HTTP/2 (and `watches`
/// unauthenticated health Watch streams, which are not Quantize streams and hold no slot),
/// while a normal session runs; its outcome.
Attack IdleConnections(int n, int watches) {
  return [=](Target& t) -> Outcome {
    std::vector<std::unique_ptr<RawConnection>> conns;
    for (int i = 0; i < n; ++i) conns.push_back(std::make_unique<RawConnection>(t.port()));
    auto health = grpc::health::v1::Health::NewStub(Connect(t.port()));
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<grpc::health::v1::HealthCheckResponse>>> open;
    grpc::health::v1::HealthCheckRequest req;
    for (int i = 0; i < watches; ++i) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      open.push_back(health->Watch(contexts.back().get(), req));
    }
    auto stub = Stub(t.port());
    const Outcome out =
        FromStatus(RunSession(*stub, Cfg() + Send(Small("x.weight")), Authorize).status);
    for (auto& c : contexts) c->TryCancel();
    for (auto& w : open) w->Finish();
    return out;
  };
}

/// Holds `n` streams open (config sent, nothing more) and runs one more session beside them;
/// the outcome is that session's status.
Attack BesideOpenStreams(int n) {
  return [=](Target& t) -> Outcome {
    auto stub = Stub(t.port());
    std::vector<std::unique_ptr<InteractiveSession>> open;
    for (int i = 0; i < n; ++i) {
      open.push_back(std::make_unique<InteractiveSession>(*stub, v1::SessionConfig(), Authorize));
      if (!open.back()->ok()) return {Code::INTERNAL, absl::StrCat("stream ", i, " not opened")};
    }
    const Outcome out =
        FromStatus(RunSession(*stub, Cfg() + Send(Small("x.weight")), Authorize).status);
    for (auto& s : open) s->Close();
    return out;
  };
}

/// Slow HTTP clients on /metrics (`silent` that only connect, `partial` that send half a
/// request, one `trickle` of a byte per 50 ms), plus `extra` raw requests; a scrape must succeed
/// beside them and every slow connection must be closed by the server. OK with the scrape's
/// inflight gauge, or INTERNAL naming what failed.
Attack SlowMetricsClients(int silent, int partial, bool trickle,
                          std::vector<std::string> extra = {}) {
  return [=](Target& t) -> Outcome {
    const int port = t.server->metrics_port();
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    std::vector<std::unique_ptr<RawConnection>> slow;
    for (int i = 0; i < silent + partial; ++i) {
      slow.push_back(std::make_unique<RawConnection>(port));
      if (i >= silent) slow.back()->Send(request.substr(0, request.size() / 2));
    }
    for (const std::string& e : extra) {
      slow.push_back(std::make_unique<RawConnection>(port));
      slow.back()->Send(e);
    }
    std::thread trickler;
    RawConnection* drip = nullptr;
    if (trickle) {
      slow.push_back(std::make_unique<RawConnection>(port));
      drip = slow.back().get();
      trickler = std::thread([drip, request] {
        for (char c : request) {
          if (!drip->Send(std::string(1, c))) return;
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      });
    }
    const std::string body = ScrapeMetrics(port);
    Outcome out{Code::OK, absl::StrCat("scraped rtnq_inflight_bytes ",
                                       MetricValue(body, "rtnq_inflight_bytes"))};
    if (body.find("rtnq_build_info") == std::string::npos) out = {Code::INTERNAL, "scrape failed"};
    for (size_t i = 0; i < slow.size() && out.code == Code::OK; ++i) {
      const std::string answer = slow[i]->ReceiveAll(10);
      if (answer.find("root:") != std::string::npos) out = {Code::INTERNAL, "served a file"};
      if (!slow[i]->ClosedByServer(1)) out = {Code::INTERNAL, absl::StrCat("client ", i, " held")};
    }
    if (trickler.joinable()) trickler.join();
    return out;
  };
}

// ---------------------------------------------------------------------------------------------
// The catalogue
// ---------------------------------------------------------------------------------------------

std::vector<Case> Catalogue() {
  const Code kOk = Code::OK, kInvalid = Code::INVALID_ARGUMENT,
             kPrecondition = Code::FAILED_PRECONDITION, kExhausted = Code::RESOURCE_EXHAUSTED,
             kDeadline = Code::DEADLINE_EXCEEDED, kCancelled = Code::CANCELLED,
             kUnauthenticated = Code::UNAUTHENTICATED, kDataLoss = Code::DATA_LOSS;
  const std::string kReadmeRegex = "re:model\\.layers\\.(0|1)\\..*";
  return {
      // --- Regexes and long names: linear-time matching, bounded names and keys
      {"RegexDotStarAnd40kName",
       Answers([] { return Cfg(WithKey("re:.*")) + Send(Small(std::string(40000, 'n'))); },
               std::string(40000, 'n')),
       kInvalid, "name length 40000 is over the limit of 4096 (max tensor name bytes)"},
      {"RegexDotStarAndNameJustOverTheLimit",
       Answers([] { return Cfg(WithKey("re:.*")) + Send(Small(std::string(4097, 'n'))); },
               std::string(4097, 'n')),
       kInvalid, "max tensor name bytes"},
      {"RegexDotStarAndNameAtTheLimit",
       Answers([] { return Cfg(WithKey("re:.*")) + Send(Small(std::string(4096, 'n'))); },
               std::string(4096, 'n')),
       kOk, "quantized by pattern"},
      {"ReadmeRegexAnd100kName",
       Answers(
           [=] {
             return Cfg(WithKey(kReadmeRegex)) +
                    Send(Small("model.layers.0." + std::string(100000, 'x')));
           },
           "model.layers.0." + std::string(100000, 'x')),
       kInvalid, "max tensor name bytes"},
      {"ReadmeRegexAndNameAtTheLimit",
       Answers(
           [=] {
             return Cfg(WithKey(kReadmeRegex)) +
                    Send(Small("model.layers.0." + std::string(4096 - 15, 'x')));
           },
           "model.layers.0." + std::string(4096 - 15, 'x')),
       kOk, "quantized by pattern"},
      {"RegexOf50kNestedGroups", Ends([] {
         return Cfg(WithKey("re:" + std::string(50000, '(') + "a" + std::string(50000, ')')));
       }),
       kInvalid, "max weight_config key bytes"},
      {"RegexNestedJustOverTheLimit",
       EndsWithKey("re:" + std::string(65, '(') + "a" + std::string(65, ')')), kInvalid,
       "over the limit of 64"},
      {"RegexNestedAtTheLimit",
       Answers(
           [] {
             return Cfg(WithKey("re:" + std::string(64, '(') + "a" + std::string(64, ')'))) +
                    Send(Small("a"));
           },
           "a"),
       kOk, "quantized by pattern"},
      {"RedosNestedQuantifier",
       Answers([] { return Cfg(WithKey("re:(a+)+$")) + Send(Small(std::string(28, 'a') + "!")); },
               std::string(28, 'a') + "!"),
       kOk, "quantized by default"},
      {"RedosNestedQuantifierNameAtTheLimit",
       Answers([] { return Cfg(WithKey("re:(a+)+$")) + Send(Small(std::string(4095, 'a') + "!")); },
               std::string(4095, 'a') + "!"),
       kOk, "quantized by default"},
      {"RedosAlternationNameAtTheLimit",
       Answers([] { return Cfg(WithKey("re:(a|aa)*c")) + Send(Small(std::string(4096, 'a'))); },
               std::string(4096, 'a')),
       kOk, "quantized by default"},
      {"RegexBackreference", EndsWithKey("re:(a*)\\1b"), kInvalid,
       "weight_config[\"re:(a*)\\1b\"]"},
      {"RegexLookahead", EndsWithKey("re:(?=a)a.*"), kInvalid, "weight_config[\"re:(?=a)a.*\"]"},
      {"RegexUnbalanced", EndsWithKey("re:(ab"), kInvalid, "weight_config[\"re:(ab\"]"},
      {"RegexEmpty", EndsWithKey("re:"), kInvalid, "empty regex"},
      {"RegexHugeRepeat", EndsWithKey("re:(a{1000}){1000}"), kInvalid, "invalid repetition size"},
      {"RegexOverItsMemoryBudget", EndsWithKey("re:" + Repeat(".{1000}", 20)), kInvalid,
       "pattern too large"},
      {"RegexOf20kAlternatives", Ends([] {
         std::string key = "re:(";
         for (int i = 0; i < 20000; ++i) absl::StrAppend(&key, i ? "|" : "", "layer", i, "x");
         return Cfg(WithKey(key + ")"));
       }),
       kInvalid, "weight_config"},
      {"GlobOf200StarsAndNameAtTheLimit",
       Answers(
           [] {
             return Cfg(WithKey(Repeat("*a", 200) + "*b")) + Send(Small(std::string(4096, 'a')));
           },
           std::string(4096, 'a')),
       kOk, "quantized by default"},
      {"GlobsOverThePatternBytes", Ends([] {
         v1::SessionConfig c;
         for (int i = 0; i < 5; ++i) c = WithKey(absl::StrCat(i, Repeat("*a", 2000)), c);
         return Cfg(c);
       }),
       kInvalid, "max pattern size per config"},
      {"RegexesJustOverTheCount", Ends([] {
         v1::SessionConfig c;
         for (int i = 0; i < 65; ++i) c = WithKey(absl::StrCat("re:l", i, "\\..*"), c);
         return Cfg(c);
       }),
       kInvalid, "max regexes per config"},
      {"RegexesAtTheCount",
       Answers(
           [] {
             v1::SessionConfig c;
             for (int i = 0; i < 64; ++i) c = WithKey(absl::StrCat("re:l", i, "\\..*"), c);
             return Cfg(c) + Send(Small("l63.weight"));
           },
           "l63.weight"),
       kOk, "quantized by pattern"},
      {"EmptyKey", EndsWithKey(""), kInvalid, "key is empty"},
      {"DuplicateKey", Ends([] { return Cfg(WithKey("a.weight", WithKey("a.weight"))); }), kInvalid,
       "duplicate key"},
      {"KeyOf200k", EndsWithKey(std::string(200000, 'k')), kInvalid,
       "key length 200000 is over the limit of 4096 (max weight_config key bytes)"},
      {"KeyJustOverTheLimit", EndsWithKey(std::string(4097, 'k')), kInvalid,
       "max weight_config key bytes"},
      {"KeyAtTheLimit",
       Answers(
           [] {
             return Cfg(WithKey(std::string(4096, 'k'))) + Send(Small(std::string(4096, 'k')));
           },
           std::string(4096, 'k')),
       kOk, "quantized by tensor"},
      {"WeightConfigEntriesJustOverTheLimit", Ends([] { return Cfg(Layers(100001)); }), kInvalid,
       "weight_config entry count 100001 is over the limit of 100000", BigConfigs},
      {"WeightConfigEntriesAtTheLimit",
       Answers([] { return Cfg(Layers(100000)) + Send(Small("l99999.weight")); }, "l99999.weight"),
       kOk, "quantized by layer", BigConfigs},

      // --- Config JSON: depth, size, types
      {"JsonNested200kArrays", EndsWithJson(std::string(200000, '[')), kInvalid,
       "JSON nested deeper than the limit of 64 levels"},
      {"JsonJustOverTheDepthLimit",
       EndsWithJson(Repeat("{\"a\":", 65) + "1" + std::string(65, '}')), kInvalid,
       "JSON nested deeper than the limit of 64 levels"},
      {"JsonNested10kObjects",
       EndsWithJson(Repeat("{\"a\":", 10000) + "1" + std::string(10000, '}')), kInvalid,
       "JSON nested deeper than the limit of 64 levels"},
      {"JsonNestedWeightConfig", Ends([] {
         return Cfg(Json("{\"weight_config\": " + Repeat("{\"a\":", 5000) + "{}" +
                         std::string(5000, '}') + "}"));
       }),
       kInvalid, "JSON nested deeper than the limit of 64 levels at \"weight_config\""},
      {"JsonTruncated", EndsWithJson("{\"bits\": 4, \"group_size\""), kInvalid,
       "config: invalid JSON"},
      {"JsonNotAnObject", EndsWithJson("[4, 32]"), kInvalid, "expected a JSON object"},
      {"JsonDuplicateKey", EndsWithJson("{\"bits\": 4, \"bits\": 8}"), kInvalid,
       "duplicate key \"bits\""},
      {"JsonBitsAsString", EndsWithJson("{\"bits\": \"four\"}"), kInvalid, "bits"},
      {"JsonBitsHuge", EndsWithJson("{\"bits\": 1e400}"), kInvalid, "1e400"},
      {"JsonNaNLiteral", EndsWithJson("{\"quantile\": NaN}"), kInvalid, "config: invalid JSON"},
      {"JsonUnknownKey", EndsWithJson("{\"bitz\": 4}"), kInvalid, "bitz"},
      {"Json4kEntries",
       Answers(
           [] { return Cfg(Json(JsonEntries(4000))) + Send(Small("model.layers.7.mlp.weight")); },
           "model.layers.7.mlp.weight"),
       kOk, "quantized by layer"},
      {"JsonAndFieldsTogether", Ends([] {
         v1::SessionConfig c = Json("{\"bits\": 4}");
         c.mutable_default_config()->set_bits(8);
         return Cfg(c);
       }),
       kInvalid, "alternatives"},

      // --- Bad enums and values in the session config
      {"OutputFormOutOfRange", Ends([] {
         v1::SessionConfig c;
         c.set_output_form(static_cast<v1::OutputForm>(99));
         return Cfg(c);
       }),
       kInvalid, "output_form: 99"},
      {"GptqFormatNegative", Ends([] {
         v1::SessionConfig c;
         c.set_gptq_format(static_cast<v1::GptqFormat>(-1));
         return Cfg(c);
       }),
       kInvalid, "gptq_format: -1"},
      {"QuantDtypeOutOfRange", Ends([] {
         return Cfg(Patched([](auto& p) { p.set_dtype(static_cast<v1::QuantDtype>(42)); }));
       }),
       kInvalid, "default_config.dtype"},
      {"SchemeUnspecified",
       Ends([] { return Cfg(Patched([](auto& p) { p.set_scheme(v1::SCHEME_UNSPECIFIED); })); }),
       kInvalid, "default_config.scheme"},
      {"CompressionDimTwo", Ends([] {
         v1::SessionConfig c;
         c.set_compression_dim(2);
         return Cfg(c);
       }),
       kInvalid, "compression_dim: 2"},
      {"UnknownPreset",
       Ends([] { return Cfg(Patched([](auto& p) { p.set_preset("GGML_TYPE_Q9_Z"); })); }), kInvalid,
       "default_config.preset"},
      {"BitsNegative", Ends([] { return Cfg(Patched([](auto& p) { p.set_bits(-1); })); }), kInvalid,
       "bits"},
      {"BitsInt32Max", Ends([] { return Cfg(Patched([](auto& p) { p.set_bits(INT32_MAX); })); }),
       kInvalid, "bits"},
      {"GroupSizeInt32Min",
       Ends([] { return Cfg(Patched([](auto& p) { p.set_group_size(INT32_MIN); })); }), kInvalid,
       "group_size"},
      {"GroupDimFive", Ends([] { return Cfg(Patched([](auto& p) { p.set_group_dim(5); })); }),
       kInvalid, "group_dim"},
      {"QuantileNaN", Ends([=] { return Cfg(Patched([](auto& p) { p.set_quantile(kNaN); })); }),
       kInvalid, "quantile"},
      {"QuantileInf", Ends([=] { return Cfg(Patched([](auto& p) { p.set_quantile(kInf); })); }),
       kInvalid, "quantile"},
      {"QuantileNegativeInf",
       Ends([=] { return Cfg(Patched([](auto& p) { p.set_quantile(-kInf); })); }), kInvalid,
       "quantile"},
      {"WeightConfigQuantileNaN", Ends([=] {
         v1::SessionConfig c = WithKey("a.weight");
         c.mutable_weight_config(0)->mutable_patch()->set_quantile(kNaN);
         return Cfg(c);
       }),
       kInvalid, "weight_config[\"a.weight\"]"},
      {"DoubleQuantBitsHuge", Ends([] {
         return Cfg(Patched([](auto& p) {
           p.set_double_quant_dtype(v1::QUANT_DTYPE_INT);
           p.set_double_quant_bits(1 << 30);
         }));
       }),
       kInvalid, "double_quant_bits"},

      // --- NaN and Inf in the data, on every path
      {"NaNRowStreamedF32",
       Answers([=] { return Cfg() + Send(With(Small("t.weight"), 100, kNaN)); }, "t.weight"),
       kInvalid, "tensor \"t.weight\": element [1, 36] is not finite"},
      {"InfRowStreamedBF16",
       Answers(
           [=] {
             return Cfg() + Send(With(Small("t.weight", {8, 64}, "BF16"), 0, kInf));
           },
           "t.weight"),
       kInvalid, "tensor \"t.weight\": element [0, 0] is not finite"},
      {"NegInfRowStreamedF16",
       Answers(
           [=] {
             return Cfg() + Send(With(Small("t.weight", {8, 64}, "F16"), 511, -kInf));
           },
           "t.weight"),
       kInvalid, "tensor \"t.weight\": element [7, 63] is not finite"},
      {"NaNBuffered",
       Answers(
           [=] {
             return Cfg(Patched([](auto& p) { p.set_group_dim(0); })) +
                    Send(With(Small("t.weight"), 7, kNaN));
           },
           "t.weight"),
       kInvalid, "tensor \"t.weight\": element [0, 7] is nan"},
      {"NaNMseSearch",
       Answers(
           [=] {
             return Cfg(Patched([](auto& p) { p.set_enable_mse_search(true); })) +
                    Send(With(Small("t.weight"), 300, kNaN));
           },
           "t.weight"),
       kInvalid, "tensor \"t.weight\": element [4, 44] is nan"},
      {"NaNPackedGptq",
       Answers(
           [=] {
             return Cfg(Form(v1::OUTPUT_FORM_PACKED_GPTQ)) + Send(With(Small("t.weight"), 1, kNaN));
           },
           "t.weight"),
       kInvalid, "tensor \"t.weight\": element [0, 1] is not finite"},
      {"NaNDoubleQuant",
       Answers(
           [=] {
             return Cfg(Patched([](auto& p) { p.set_preset("GGML_TYPE_Q4_K"); })) +
                    Send(With(Small("t.weight", {8, 256}), 1000, kNaN));
           },
           "t.weight"),
       kInvalid, "tensor \"t.weight\": element [3, 232] is nan"},
      {"NaNMetricsOnly",
       Answers([=] { return Cfg(MetricsOnly()) + Send(With(Small("t.weight"), 2, kNaN)); },
               "t.weight"),
       kInvalid, "tensor \"t.weight\": element [0, 2] is not finite"},
      {"NaNPassedThroughWhenAsked",
       Answers(
           [=] {
             v1::SessionConfig c;
             c.set_pass_nonfinite(true);
             return Cfg(c) + Send(With(Small("t.weight"), 2, kNaN));
           },
           "t.weight"),
       kOk, "skipped: non-finite values (element [0, 2] is nan)"},
      {"NaNInOneDimensionalTensorQuantized",
       Answers(
           [=] {
             v1::SessionConfig c;
             c.set_quantize_1d(true);
             return Cfg(c) + Send(With(Small("norm.weight", {64}), 3, kNaN));
           },
           "norm.weight"),
       kInvalid, "tensor \"norm.weight\": element [0, 3] is not finite"},

      // --- Lying sizes and framing
      {"TotalBytesShort",
       Answers(
           [] {
             return Cfg() + Framed("F32", {8, 64}, 2044, 2044);
           },
           "t.weight"),
       kInvalid, "needs 2048 bytes, but total_bytes is 2044"},
      {"TotalBytesLong",
       Answers(
           [] {
             return Cfg() + Framed("F32", {8, 64}, 2052, 2052);
           },
           "t.weight"),
       kInvalid, "total_bytes is 2052"},
      {"TotalBytesNegative", Ends([] {
         return Cfg() + Requests{HeaderRequest("t.weight", "F32", {8, 64}, -1)};
       }),
       kInvalid, "total_bytes -1 is negative"},
      {"TotalBytesInt64Max", Ends([] {
         return Cfg() + Requests{HeaderRequest("t.weight", "F32", {8, 64}, INT64_MAX)};
       }),
       kExhausted, "max_tensor_bytes"},
      {"TensorJustOverMaxTensorBytes", Ends([] {
         return Cfg() + Requests{HeaderRequest("t.weight", "U8", {kMaxTensor + 1}, kMaxTensor + 1)};
       }),
       kExhausted, "max_tensor_bytes 1048576"},
      {"TensorAtMaxTensorBytes",
       Answers(
           [] {
             return Cfg() + Send(Small("t.weight", {256, 1024}));
           },
           "t.weight"),
       kOk, "quantized"},
      {"ChunkOverrunsTotalBytes", Ends([] {
         return Cfg() + Framed("F32", {8, 64}, 2048, 2049);
       }),
       kInvalid, "chunk of 2049 bytes exceeds the 2048 bytes remaining"},
      {"ClosedMidTensor", Ends([] {
         return Cfg() + Framed("F32", {8, 64}, 2048, 1000);
       }),
       kInvalid, "incomplete: 1000 of 2048 bytes"},
      {"Crc32cMismatch",
       Answers(
           [] {
             const Tensor t = Small("t.weight");
             return Cfg() +
                    TensorRequests(t, kChunk, ComputeCrc32c(t.data.data(), t.data.size()) ^ 1);
           },
           "t.weight"),
       kDataLoss, "CRC32C of the 2048 data bytes"},

      // --- Overflowing and odd shapes, bad dtypes (answered in-band)
      {"ShapeProductOverflows",
       Answers(
           [] {
             return Cfg() +
                    Requests{
                        HeaderRequest("t.weight", "F32", {int64_t{1} << 62, int64_t{1} << 62}, 0)} +
                    Send(Small("u.weight"));
           },
           "t.weight"),
       kInvalid, "element count of shape [4611686018427387904, 4611686018427387904] overflows"},
      {"ShapeNegativeDim",
       Answers(
           [] {
             return Cfg() + Framed("F32", {-8, 64}, 2048, 2048);
           },
           "t.weight"),
       kInvalid, "dimension 0 of shape [-8, 64] is negative"},
      {"ShapeWith100kDims",
       Answers(
           [] {
             return Cfg() +
                    Requests{HeaderRequest("t.weight", "F32", std::vector<int64_t>(100000, 1), 4),
                             ChunkRequest(std::string(4, '\0'))};
           },
           "t.weight"),
       kOk, "quantized"},
      {"ShapeBytesOverflow",
       Answers(
           [] {
             return Cfg() + Requests{HeaderRequest("t.weight", "F32", {int64_t{1} << 61, 1}, 0)};
           },
           "t.weight"),
       kInvalid, "byte size of shape [2305843009213693952, 1] overflows"},
      {"ShapeZeroRows",
       Answers(
           [] {
             return Cfg() + Header({0, 64});
           },
           "t.weight"),
       kInvalid, "shape [0, 64] has no elements"},
      {"DtypeUnknown",
       Answers(
           [] {
             return Cfg() + Framed("F33", {8, 64}, 2048, 2048);
           },
           "t.weight"),
       kInvalid, "unknown dtype \"F33\""},
      {"DtypeEmpty",
       Answers(
           [] {
             return Cfg() + Framed("", {8, 64}, 2048, 2048);
           },
           "t.weight"),
       kInvalid, "unknown dtype \"\""},
      {"DtypeOf100k",
       Answers(
           [] {
             return Cfg() + Framed(std::string(100000, 'D'), {8, 64}, 2048, 2048);
           },
           "t.weight"),
       kInvalid, "unknown dtype \"DDDD"},
      {"LongNonAsciiNameInATensorError",
       Answers(
           [] {
             const std::string name = Repeat("\xc3\xa9", 600);
             return Cfg() + Requests{HeaderRequest(name, "F33", {8, 64}, 2048),
                                     ChunkRequest(std::string(2048, '\0'))};
           },
           Repeat("\xc3\xa9", 600)),
       kInvalid, "[truncated]"},

      // --- Order violations and duplicate names
      {"ChunkBeforeConfig", Ends([] { return Requests{ChunkRequest("abcd")}; }), kPrecondition,
       "before the session config"},
      {"HeaderBeforeConfig", Ends([] { return Send(Small("t.weight")); }), kPrecondition,
       "before the session config"},
      {"ConfigTwice", Ends([] { return Cfg() + Send(Small("t.weight")) + Cfg(); }), kPrecondition,
       "session config sent twice"},
      {"EmptyRequest", Ends([] { return Cfg() + Requests{v1::QuantizeRequest()}; }), kInvalid,
       "empty QuantizeRequest"},
      {"DataAfterTheEnd",
       Ends([] { return Cfg() + Send(Small("t.weight")) + Requests{ChunkRequest("x")}; }),
       kPrecondition, "without an open tensor"},
      {"HeaderWhileIncomplete", Ends([] {
         return Cfg() + Framed("F32", {8, 64}, 2048, 10) + Send(Small("u.weight"));
       }),
       kPrecondition, "while tensor \"t.weight\" is incomplete"},
      {"DuplicateName",
       Ends([] { return Cfg() + Send(Small("t.weight")) + Send(Small("t.weight")); }), kInvalid,
       "duplicate tensor name \"t.weight\""},
      {"DuplicateNameAfterAFailedTensor", Ends([=] {
         return Cfg() + Send(With(Small("t.weight"), 0, kNaN)) + Send(Small("t.weight"));
       }),
       kInvalid, "duplicate tensor name \"t.weight\""},

      // --- Messages that do not parse
      {"InvalidUtf8Name", Raw([] {
         return std::vector<std::string>{Serialized(ConfigRequest({})), RawHeader("bad\xff\xfe"),
                                         Serialized(ChunkRequest(std::string(2048, '\0')))};
       }),
       kInvalid, "header.name is not valid UTF-8"},
      {"InvalidUtf8NameAfterAGoodTensor", Raw([] {
         std::vector<std::string> m{Serialized(ConfigRequest({}))};
         for (const auto& r : Send(Small("a.weight"))) m.push_back(Serialized(r));
         m.push_back(RawHeader("b\xc0\xaf"));
         return m;
       }),
       kInvalid, "request message 4"},
      {"InvalidUtf8ConfigKey", Raw([] {
         std::string key = Serialized(ConfigRequest(WithKey("KEY")));
         key.replace(key.find("KEY"), 3, "\xed\xa0\x80");  // a UTF-16 surrogate, not UTF-8
         return std::vector<std::string>{key};
       }),
       kInvalid, "is not valid UTF-8"},
      {"TruncatedMessage", Raw([] {
         const std::string h = Serialized(HeaderRequest("t.weight", "F32", {8, 64}, 2048));
         return std::vector<std::string>{Serialized(ConfigRequest({})), h.substr(0, h.size() - 3)};
       }),
       kInvalid, "is not a QuantizeRequest"},
      {"GarbageBytes", Raw([] {
         return std::vector<std::string>{Serialized(ConfigRequest({})),
                                         "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"};
       }),
       kInvalid, "is not a QuantizeRequest"},
      {"WrongWireTypeIsAnUnknownField", Raw([] {
         return std::vector<std::string>{Serialized(ConfigRequest({})),
                                         std::string("\x15\x01\x02\x03\x04", 5)};
       }),
       kInvalid, "empty QuantizeRequest"},
      {"DeeplyNestedUnknownGroups", Raw([] {
         // Field 100 as a start-group tag (0xa3 0x06), 100k times: recursion beyond protobuf's
         // limit.
         return std::vector<std::string>{Serialized(ConfigRequest({})), Repeat("\xa3\x06", 100000)};
       }),
       kInvalid, "is not a QuantizeRequest"},

      // --- Sizes against the message limit and the budgets
      {"ChunkOverMaxMessage", Ends([] {
         return Cfg() + Requests{HeaderRequest("t.weight", "F32", {512, 512}, 1 << 20),
                                 ChunkRequest(std::string(kMaxMessage, '\0'))};
       }),
       kExhausted, "larger than max"},
      {"ChunkJustUnderMaxMessage",
       Answers(
           [] {
             return Cfg() + TensorRequests(Small("t.weight", {256, 1024}), kMaxMessage - 1024);
           },
           "t.weight"),
       kOk, "quantized"},
      {"HeaderOverMaxMessage",
       Ends([] { return Cfg() + Send(Small(std::string(kMaxMessage, 'n'))); }), kExhausted,
       "larger than max"},
      {"ConfigOverMaxMessage", EndsWithJson(JsonEntries(20000)), kExhausted, "larger than max"},
      {"RowWiderThanTheStreamBudget",
       Answers(
           [] {
             return Cfg() + Send(Small("wide.weight", {1, 256 << 10}));
           },
           "wide.weight"),
       kOk, "quantized"},
      {"EightStreamsOfWideRows",
       Concurrently(
           kMaxStreams,
           [](int i) {
             return Cfg() + Send(Small(absl::StrCat("wide", i, ".weight"), {2, 128 << 10}));
           }),
       kOk, "8 of 8 streams ok"},
      {"EightStreamsOfBufferedTensors",
       Concurrently(kMaxStreams,
                    [](int i) {
                      return Cfg(Patched([](auto& p) { p.set_group_dim(0); })) +
                             Send(Small(absl::StrCat("t", i, ".weight"), {256, 1024}));
                    }),
       kOk, "8 of 8 streams ok"},
      {"BufferedTensorOverMaxReservation",
       Answers(
           [] {
             return Cfg(Patched([](auto& p) { p.set_group_dim(0); })) +
                    Send(Small("t.weight", {256, 1024}));
           },
           "t.weight"),
       kExhausted, "--max_reservation_bytes",
       [](ServerOptions& o) { o.max_reservation_bytes = 512 << 10; }},
      {"BufferedTensorUnderMaxReservation",
       Answers(
           [] {
             return Cfg(Patched([](auto& p) { p.set_group_dim(0); })) +
                    Send(Small("t.weight", {32, 1024}));
           },
           "t.weight"),
       kOk, "quantized", [](ServerOptions& o) { o.max_reservation_bytes = 512 << 10; }},
      {"EightStreamsOfCodesWithGroupSizeOne",
       Concurrently(
           kMaxStreams,
           [](int i) {
             v1::SessionConfig c = Form(v1::OUTPUT_FORM_CODES);
             c.mutable_default_config()->set_group_size(1);
             return Cfg(c) + Send(Small(absl::StrCat("t", i, ".weight"), {64, 1024}));
           },
           4.5),
       kOk, "8 of 8 streams ok"},
      {"TallSkinnyTensorAtMaxTensorBytes",
       Answers(
           [] {
             return Cfg() + Send(Small("t.weight", {256 << 10, 1}));
           },
           "t.weight"),
       kOk, "quantized"},
      {"ManyLongNamesInOneStream", Ends([] {
         // 4000 empty tensors with 1 KiB names: 4 MiB of names the duplicate check would keep,
         // four times --max_stream_name_bytes.
         Requests r = Cfg();
         for (int i = 0; i < 4000; ++i) {
           r.push_back(HeaderRequest(absl::StrCat(i, std::string(1024, 'n')), "F32", {0}, 0));
         }
         return r;
       }),
       kExhausted, "--max_stream_name_bytes"},
      {"NamesExactlyAtTheStreamNameLimit", Ends([] {
         // 1024 names of exactly 1 KiB: 1 MiB, the limit itself.
         Requests r = Cfg();
         for (int i = 0; i < 1024; ++i) {
           std::string name = absl::StrCat(i, "-");
           name.resize(1024, 'n');
           r.push_back(HeaderRequest(name, "F32", {0}, 0));
         }
         return r;
       }),
       kOk, ""},
      {"NamesOneByteOverTheStreamNameLimit", Ends([] {
         Requests r = Cfg();
         for (int i = 0; i < 1024; ++i) {
           std::string name = absl::StrCat(i, "-");
           name.resize(i == 1023 ? 1025 : 1024, 'n');
           r.push_back(HeaderRequest(name, "F32", {0}, 0));
         }
         return r;
       }),
       kExhausted, "--max_stream_name_bytes"},
      {"HundredSilentTcpConnectionsAndWatches", IdleConnections(100, 100), kOk, ""},
      {"NeverReadsItsResults", NeverReads(), kDeadline, ""},
      {"ClientDeadlineMidTensor",
       WithDeadline(
           [] {
             return Cfg() + Header({256, 1024}) + Requests{ChunkRequest(std::string(kChunk, '\0'))};
           },
           0.3),
       kDeadline, ""},
      {"OneStreamOverMaxStreams", BesideOpenStreams(kMaxStreams), kExhausted,
       "limit of 8 concurrent Quantize streams"},
      {"StreamsAtMaxStreams", BesideOpenStreams(kMaxStreams - 1), kOk, ""},

      // --- Slow-loris
      {"SilentAfterConfig", Trickle([] { return Cfg(); }, Forever(ChunkRequest("")), 60), kDeadline,
       "--idle_timeout"},
      {"SilentMidTensor",
       Trickle(
           [] {
             return Cfg() + Header({8, 64});
           },
           Forever(ChunkRequest("")), 60),
       kDeadline, "--idle_timeout"},
      {"EmptyChunksForever",
       Trickle(
           [] {
             return Cfg() + Header({8, 64});
           },
           Forever(ChunkRequest("")), 0.2),
       kDeadline, "--idle_timeout"},
      {"EmptyTensorsForever",
       Trickle([] { return Cfg(); },
               [](int i) { return Requests{HeaderRequest(absl::StrCat("e", i), "F32", {0}, 0)}; },
               0.2),
       kDeadline, "--idle_timeout"},
      {"OneBytePerTick",
       Trickle(
           [] {
             return Cfg() + Header({64, 64});
           },
           Forever(ChunkRequest("x")), 0.2),
       kDeadline, "--min_bytes_per_second"},
      {"HalfTheMinimumRate",
       Trickle(
           [] {
             return Cfg(MetricsOnly()) + Header({256, 1024});
           },
           Bytes(kMinRate / 16, 1 << 20), 1.0 / 8),
       kDeadline, "--min_bytes_per_second"},
      {"TwiceTheMinimumRate",
       Trickle(
           [] {
             return Cfg(MetricsOnly()) + Header({256, 1024});
           },
           Bytes(kMinRate / 8, 1 << 20), 1.0 / 16),
       kOk, ""},
      {"GoodTensorsPastMaxStreamSeconds",
       Trickle([] { return Cfg(); }, [](int i) { return Send(Small(absl::StrCat("t", i))); }, 0.2),
       kDeadline, "--max_stream_seconds", [](ServerOptions& o) { o.max_stream_seconds = 2; }},
      // A longer idle timeout, so that the slots stay taken while the refused stream is tried.
      {"SlowLorisOnEverySlot", SlowLorisOnEverySlot(kMaxStreams), kOk, "",
       [](ServerOptions& o) { o.idle_timeout_seconds = 3; }},

      // --- Cancellation
      {"CancelMidRowStreamedTensor",
       CancelAfter(
           [] {
             return Cfg() + Header({256, 1024}) + Requests{ChunkRequest(std::string(kChunk, '\0'))};
           },
           1),
       kCancelled, ""},
      {"CancelMidBufferedTensor",
       CancelAfter(
           [] {
             return Cfg(Patched([](auto& p) { p.set_group_dim(0); })) + Header({256, 1024}) +
                    Requests{ChunkRequest(std::string(kChunk, '\0'))};
           },
           1 << 20),
       kCancelled, ""},
      {"CancelMidPackedTensor",
       CancelAfter(
           [] {
             return Cfg(Form(v1::OUTPUT_FORM_PACKED_GPTQ)) + Header({256, 1024}) +
                    Requests{ChunkRequest(std::string(kChunk, '\0'))};
           },
           1),
       kCancelled, ""},
      {"CancelDuringMseSearch",
       CancelAfter(
           [] {
             return Cfg(Patched([](auto& p) { p.set_enable_mse_search(true); })) +
                    Send(Small("t.weight", {256, 1024}));
           },
           1 << 20),
       kCancelled, ""},

      // --- Authentication
      {"AuthMissing", Authorization(""), kUnauthenticated, "missing"},
      {"AuthWrongToken", Authorization("Bearer wrong-token"), kUnauthenticated,
       "invalid bearer token"},
      {"AuthBasicScheme", Authorization(absl::StrCat("Basic ", kToken)), kUnauthenticated,
       "not a Bearer token"},
      {"AuthTokenPrefix", Authorization("Bearer catalogue"), kUnauthenticated,
       "invalid bearer token"},
      {"AuthTokenWithSuffix", Authorization(absl::StrCat("Bearer ", kToken, "x")), kUnauthenticated,
       "invalid bearer token"},
      {"AuthEmptyBearer", Authorization("Bearer "), kUnauthenticated, "invalid bearer token"},
      {"AuthLowercaseSchemeAccepted", Authorization(absl::StrCat("bearer ", kToken)), kOk, ""},
      {"AuthHugeHeader", Authorization("Bearer " + std::string(6000, 'A')), kUnauthenticated,
       "invalid bearer token"},

      // --- /metrics against slow HTTP clients
      {"MetricsTwoHalfOpenRequests", SlowMetricsClients(0, 2, false), kOk,
       "scraped rtnq_inflight_bytes 0", WithMetrics},
      {"MetricsSilentPartialAndTrickle", SlowMetricsClients(3, 3, true), kOk,
       "scraped rtnq_inflight_bytes 0", WithMetrics},
      {"MetricsOversizedRequestHeader",
       SlowMetricsClients(
           0, 0, false,
           {"GET /metrics HTTP/1.1\r\nX-Big: " + std::string(64 << 10, 'a') + "\r\n\r\n"}),
       kOk, "scraped", WithMetrics},
      {"MetricsPathTraversal",
       SlowMetricsClients(0, 0, false,
                          {"GET /../../../../etc/passwd HTTP/1.0\r\n\r\n",
                           "GET /metrics/../../etc/passwd HTTP/1.0\r\n\r\n"}),
       kOk, "scraped", WithMetrics},
      {"MetricsTlsHelloOnPlainPort",
       SlowMetricsClients(0, 0, false,
                          {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)}),
       kOk, "scraped", WithMetrics},

      // --- Log injection (every case also checks that all log lines are well formed)
      {"NewlineInNameForgesNoLogLine", Ends([] {
         const std::string name =
             "a\n2026-01-01T00:00:00.000+00:00 info stream end peer=ipv4:10.0.0.1:1 code=OK\nb";
         return Cfg() + Send(Small(name)) + Send(Small(name));
       }),
       kInvalid, "duplicate tensor name"},
      {"AnsiEscapesInName", Ends([] {
         const std::string name = "\x1b[2J\x1b[31mred\x1b[0m\r";
         return Cfg() + Send(Small(name)) + Send(Small(name));
       }),
       kInvalid, "duplicate tensor name"},
      // The stream's end is logged with its message, which quotes the 200 KB name.
      {"LongNameInALoggedError", Ends([] {
         const std::string name(200000, 'L');
         return Cfg() + Send(Small(name)) + Send(Small(name));
       }),
       kInvalid, "duplicate tensor name \"LLLL"},
  };
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

// Keeps every log event as the server's logger formats it (kLogPattern), one string per event,
// so that a check sees events, not lines: a line forged inside an event is caught even when it
// copies the layout perfectly.
class RecordingSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> l(mutex_);
    return events_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    events_.emplace_back(formatted.data(), formatted.size());
  }
  void flush_() override {}

 private:
  std::vector<std::string> events_;
};

class HostileCatalogueTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    std::ofstream(dir_.File("token")) << kToken << "\n";
    log_ = std::make_shared<RecordingSink>();
    auto logger = std::make_shared<spdlog::logger>("catalogue", log_);
    logger->set_pattern(kLogPattern);
    previous_logger_ = spdlog::default_logger();
    spdlog::set_default_logger(logger);
  }
  void TearDown() override { spdlog::set_default_logger(previous_logger_); }

  TempDir dir_;
  std::shared_ptr<RecordingSink> log_;
  std::shared_ptr<spdlog::logger> previous_logger_;
};

TEST_P(HostileCatalogueTest, Case) {
  const Case& c = GetParam();
  Target target;
  target.options = CatalogueOptions(dir_.File("token"));
  if (c.options) c.options(target.options);
  auto server = StartServer(target.options);
  ASSERT_NE(server, nullptr);
  target.server = server.get();

  const auto start = Clock::now();
  const Outcome out = c.attack(target);
  RecordProperty("attack_seconds", std::to_string(Since(start)));
  RecordProperty("outcome", absl::StrCat(out.code, " ", out.message.substr(0, 300)));
  EXPECT_EQ(out.code, c.code) << out.message;
  EXPECT_THAT(out.message, HasSubstr(c.message));

  // Whatever the attack did, the server ends it and gives back every byte it held ...
  EXPECT_TRUE(WaitFor([&] { return server->active_streams() == 0; }, 10))
      << server->active_streams() << " streams still open";
  EXPECT_TRUE(WaitFor([&] { return server->memory().used() == 0; }, 10))
      << server->memory().used() << " bytes still held";
  EXPECT_EQ(server->metrics().inflight_bytes(), 0);
  // ... and still serves a normal tensor on a fresh stream.
  auto stub = Stub(server->port());
  const SessionResult alive =
      RunSession(*stub, Cfg() + Send(Small("alive.weight", {16, 64})), Authorize);
  EXPECT_TRUE(alive.status.ok()) << alive.status.error_message();
  EXPECT_TRUE(alive.summary.has_value() && alive.summary->tensors_ok() == 1);
  EXPECT_EQ(server->memory().used(), 0);
  if (server->metrics_port() > 0) {
    EXPECT_EQ(MetricValue(ScrapeMetrics(server->metrics_port()), "rtnq_inflight_bytes"), 0);
  }
  server->Shutdown(0);

  // Peer-controlled strings reached the log escaped and bounded: each event is one line of
  // printable ASCII (then the newline the pattern ends with), of bounded length.
  for (const std::string& event : log_->events()) {
    const std::string line = event.substr(0, event.size() - 1);
    EXPECT_TRUE(
        !event.empty() && event.back() == '\n' &&
        std::all_of(line.begin(), line.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; }))
        << "an event that is not one printable line: " << event;
    EXPECT_LE(line.size(), kMaxLogLine);
  }
}

INSTANTIATE_TEST_SUITE_P(Catalogue, HostileCatalogueTest, ::testing::ValuesIn(Catalogue()),
                         [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

}  // namespace
}  // namespace rtnq::server::testing
