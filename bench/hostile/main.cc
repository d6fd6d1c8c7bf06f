// rtnq_hostile_bench: what peer-controlled input costs the server, observed through a real
// rtnq-server child process on loopback - time to answer and peak RSS growth per byte of tensor
// name and per byte of session config - while a probe measures how quickly the server still
// answers GetServerInfo. See bench/README.md, "Hostile input: catalogue".
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/e2e/subprocess.h"
#include "grpcpp/grpcpp.h"
#include "rtnq/v1/rtnq.grpc.pb.h"

ABSL_FLAG(std::string, server, "", "rtnq-server binary; empty: ../server/rtnq-server from here");
ABSL_FLAG(int, tensors, 200, "tensors per name length");
ABSL_FLAG(std::vector<std::string>, name_bytes,
          std::vector<std::string>({"64", "1024", "4096", "65536"}), "tensor name lengths");
ABSL_FLAG(std::vector<std::string>, entries,
          std::vector<std::string>({"1000", "10000", "40000", "100000", "100001"}),
          "weight_config sizes (the limit is 100000)");

namespace rtnq::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Stream = grpc::ClientReaderWriter<v1::QuantizeRequest, v1::QuantizeResponse>;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string SelfDir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  const std::string self = n > 0 ? std::string(buf, n) : std::string();
  return self.substr(0, self.rfind('/'));
}

// Resets the child's VmHWM to its current RSS, so that the next reading is this phase's peak.
void ResetPeak(const ServerProcess& server) {
  const std::string path = absl::StrCat("/proc/", server.pid(), "/clear_refs");
  const int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0) return;
  if (write(fd, "5", 1) != 1) std::perror("clear_refs");
  close(fd);
}

/// GetServerInfo every 20 ms from its own thread; the slowest answer of a phase.
class Probe {
 public:
  explicit Probe(int port)
      : stub_(v1::Quantizer::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                         grpc::InsecureChannelCredentials()))),
        thread_([this] { Run(); }) {}
  ~Probe() {
    stop_ = true;
    thread_.join();
  }
  /// The slowest answer (seconds) since the last call; failures count as 1e9.
  double TakeWorst() {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(worst_, 0.0);
  }

 private:
  void Run() {
    while (!stop_) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::ServerInfo info;
      const auto start = Clock::now();
      const bool ok = stub_->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok();
      {
        std::lock_guard<std::mutex> l(mu_);
        worst_ = std::max(worst_, ok ? Since(start) : 1e9);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::unique_ptr<v1::Quantizer::Stub> stub_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  double worst_ = 0;
  std::thread thread_;
};

v1::QuantizeRequest Header(const std::string& name) {
  v1::QuantizeRequest r;
  v1::TensorHeader* h = r.mutable_header();
  h->set_name(name);
  h->set_dtype("F32");
  h->add_shape(8);
  h->add_shape(64);
  h->set_total_bytes(8 * 64 * 4);
  return r;
}

v1::QuantizeRequest Chunk() {
  v1::QuantizeRequest r;
  std::string data(8 * 64 * 4, '\0');
  for (size_t i = 0; i < data.size(); i += 4) data[i + 2] = static_cast<char>(i % 97);  // finite
  r.mutable_chunk()->set_data(std::move(data));
  return r;
}

// Reads until the current tensor's metrics or error (or the session's start), keeping the
// error's message; false when the stream ended instead.
bool ReadAnswer(Stream& s, std::string* error) {
  v1::QuantizeResponse r;
  while (s.Read(&r)) {
    if (r.has_started() || r.has_metrics()) return true;
    if (r.has_error()) {
      *error = r.error().message().substr(0, 120);
      return true;
    }
  }
  return false;
}

struct Phase {
  std::string label;
  int64_t input_bytes = 0;  // the peer-controlled bytes of this phase
  double seconds = 0;       // the server's time to answer them
  int64_t rss_growth = 0;   // peak RSS over the RSS at the start
  double probe_worst = 0;
  std::string result;  // "ok", or the first error
};

void Print(const Phase& p) {
  const double per_kib = p.input_bytes > 0 ? 1024.0 / p.input_bytes : 0;
  std::printf(
      "%-36s %9lld B %9.4f s %9.1f us/KiB  rss +%6.2f MiB (%5.1f B/B)  probe %6.1f ms  %s\n",
      p.label.c_str(), static_cast<long long>(p.input_bytes), p.seconds, p.seconds * 1e6 * per_kib,
      p.rss_growth / 1048576.0,
      p.input_bytes > 0 ? static_cast<double>(p.rss_growth) / p.input_bytes : 0,
      p.probe_worst * 1e3, p.result.c_str());
  std::fflush(stdout);
}

// A row of tensors: time per tensor, and the extra time per name byte over the `base` row.
void PrintNames(const Phase& p, int tensors, int name_bytes, const Phase& base, int base_bytes) {
  const double per_tensor = p.seconds / tensors;
  const double slope = name_bytes > base_bytes
                           ? (per_tensor - base.seconds / tensors) / (name_bytes - base_bytes)
                           : 0;
  std::printf("%-36s %8.1f us/tensor %8.2f ns/name byte  rss +%6.2f MiB  probe %6.1f ms  %s\n",
              p.label.c_str(), per_tensor * 1e6, slope * 1e9, p.rss_growth / 1048576.0,
              p.probe_worst * 1e3, p.result.c_str());
  std::fflush(stdout);
}

/// One session with `config`; then `names.size()` tensors one at a time. Times the config's
/// answer (when `time_config`) or the tensors' answers.
Phase RunPhase(const ServerProcess& server, Probe& probe, std::string label,
               const v1::SessionConfig& config, const std::vector<std::string>& names,
               bool time_config) {
  Phase p;
  p.label = std::move(label);
  auto stub = v1::Quantizer::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                                         grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(600));
  const v1::QuantizeRequest chunk = Chunk();
  v1::QuantizeRequest first;
  *first.mutable_config() = config;
  std::vector<v1::QuantizeRequest> headers;
  for (const std::string& n : names) headers.push_back(Header(n));
  if (time_config) p.input_bytes = static_cast<int64_t>(first.ByteSizeLong());
  for (const std::string& n : names) p.input_bytes += time_config ? 0 : n.size();

  ResetPeak(server);
  const int64_t rss0 = server.StatusBytes("VmRSS");
  probe.TakeWorst();
  auto stream = stub->Quantize(&ctx);
  std::string error;
  int errors = 0;
  auto start = Clock::now();
  bool ok = stream->Write(first) && ReadAnswer(*stream, &error);
  if (time_config) p.seconds = Since(start);
  start = Clock::now();
  for (size_t i = 0; ok && i < headers.size(); ++i) {
    std::string e;
    ok = stream->Write(headers[i]) && stream->Write(chunk) && ReadAnswer(*stream, &e);
    if (!e.empty() && errors++ == 0) error = e;
  }
  if (!time_config) p.seconds = Since(start);
  stream->WritesDone();
  v1::QuantizeResponse r;
  while (stream->Read(&r)) {
  }
  const grpc::Status status = stream->Finish();
  p.rss_growth = std::max<int64_t>(0, server.StatusBytes("VmHWM") - rss0);
  p.probe_worst = probe.TakeWorst();
  p.result = !error.empty() ? absl::StrCat(errors, " tensor errors: ", error)
             : !status.ok() ? absl::StrCat("status ", status.error_code(), ": ",
                                           status.error_message().substr(0, 120))
             : ok           ? "ok"
                            : "stream broke";
  return p;
}

v1::SessionConfig Keys(const std::vector<std::string>& keys) {
  v1::SessionConfig c;
  for (const std::string& k : keys) {
    v1::WeightConfigEntry* e = c.add_weight_config();
    e->set_key(k);
    e->mutable_patch()->set_bits(8);
  }
  return c;
}

std::vector<int> Ints(const std::vector<std::string>& v) {
  std::vector<int> out;
  for (const std::string& s : v) out.push_back(std::stoi(s));
  return out;
}

int Main() {
  std::string binary = absl::GetFlag(FLAGS_server);
  if (binary.empty()) binary = SelfDir() + "/../server/rtnq-server";
  auto server = ServerProcess::Start({binary, "--listen=127.0.0.1:0", "--threads=2",
                                      "--log_level=error", "--max_message_bytes=16777216"});
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::printf("server idle RSS %.1f MiB\n", server->StatusBytes("VmRSS") / 1048576.0);
  Probe probe(server->port());
  const int tensors = absl::GetFlag(FLAGS_tensors);

  // Names: each row sends `tensors` small tensors whose names have n bytes (the limit is 4096:
  // longer ones measure the refusal), against weight_config patterns that read the whole name:
  // the README's regex and a glob; a regex that backtracking engines take exponential time on,
  // with names of 'a's; and the most pattern work a config may ask per name (16 KiB of globs
  // that fail late, and 64 regexes).
  std::printf(
      "\n-- tensor names: %d tensors per row; slope = extra time per name byte over the "
      "first row --\n",
      tensors);
  std::vector<std::string> globs, regexes;
  for (size_t bytes = 0; bytes + 32 <= (16 << 10);) {
    globs.push_back(absl::StrCat("*x*x*x*x*x*x*.", globs.size(), ".*q"));
    bytes += globs.back().size();
  }
  for (int i = 0; i < 64; ++i) regexes.push_back(absl::StrCat("re:(x+x+)+\\.", i, "\\.(y|x)+q"));
  const struct {
    const char* what;
    v1::SessionConfig config;
    char fill;
  } rows[] = {
      {"readme regex + glob", Keys({"re:model\\.layers\\.(0|1)\\..*", "*.mlp.*.weight"}), 'x'},
      {"re:(a+)+$, names of a", Keys({"re:(a+)+$"}), 'a'},
      {"16 KiB of globs", Keys(globs), 'x'},
      {"64 regexes", Keys(regexes), 'x'},
  };
  // A first session warms up the server's and the client's allocations and connections.
  RunPhase(*server, probe, "warm-up", rows[0].config, {"warm.up.weight"}, false);
  for (const auto& row : rows) {
    Phase base;
    int base_bytes = 0;
    for (int n : Ints(absl::GetFlag(FLAGS_name_bytes))) {
      std::vector<std::string> names;
      for (int i = 0; i < tensors; ++i) {
        const std::string prefix = absl::StrCat("model.layers.", i % 2, ".", i, ".");
        names.push_back(prefix + std::string(std::max<int>(0, n - prefix.size()), row.fill));
      }
      const Phase p = RunPhase(*server, probe, absl::StrCat("name ", n, " B, ", row.what),
                               row.config, names, false);
      if (base_bytes == 0) {
        base = p;
        base_bytes = n;
      }
      PrintNames(p, tensors, n, base, base_bytes);
    }
  }

  // Configs: the time to SessionStarted and the peak RSS growth, for weight_config entries as
  // proto fields and as config_json (the limit is 100,000 entries), and for nested JSON (the
  // limit is 64 levels).
  std::printf("\n-- session configs: time = until SessionStarted or the refusal --\n");
  for (int n : Ints(absl::GetFlag(FLAGS_entries))) {
    std::vector<std::string> layers;
    std::string json = "{\"bits\": 4, \"weight_config\": {";
    for (int i = 0; i < n; ++i) {
      layers.push_back(absl::StrCat("model.layers.", i, ".mlp.up_proj"));
      absl::StrAppend(&json, i ? ", " : "", "\"model.layers.", i, ".mlp.up_proj\": {\"bits\": 8}");
    }
    json += "}}";
    Print(RunPhase(*server, probe, absl::StrCat("weight_config ", n, " layer keys"), Keys(layers),
                   {}, true));
    v1::SessionConfig from_json;
    from_json.set_config_json(json);
    Print(
        RunPhase(*server, probe, absl::StrCat("config_json ", n, " entries"), from_json, {}, true));
  }
  for (int depth : {64, 65, 10000, 1000000}) {
    v1::SessionConfig nested;
    nested.set_config_json(std::string(depth, '[') + std::string(depth, ']'));
    Print(RunPhase(*server, probe, absl::StrCat("config_json nested ", depth, " deep"), nested, {},
                   true));
  }
  const int exit_status = server->Stop();
  std::printf("\nserver exit status %d (0: it survived every phase)\n", exit_status);
  return exit_status == 0 ? 0 : 1;
}

}  // namespace
}  // namespace rtnq::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return rtnq::bench::Main();
}
