#include "client/quantize_run.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/fp8_input.h"
#include "client/journal.h"
#include "client/run_plan.h"
#include "client/tensor_file_sink.h"
#include "core/io/crc32c.h"
#include "core/io/file_io.h"
#include "core/io/safetensors_writer.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kJournalName[] = "journal.jsonl";
constexpr char kPartSuffix[] = ".part";

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The output location is checked before any work, so a run that cannot write fails at once.
absl::Status CheckOutput(const QuantizeRunOptions& o, bool dir_input) {
  if (o.output.empty()) return absl::InvalidArgumentError("no output path given");
  std::error_code ec;
  const bool exists = fs::exists(o.output, ec);
  if (exists && fs::equivalent(o.input, o.output, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("output ", o.output, " is the input; choose another path"));
  }
  if (dir_input) {
    if (exists && (!fs::is_directory(o.output, ec) || !fs::is_empty(o.output, ec))) {
      return absl::FailedPreconditionError(absl::StrCat(
          "output ", o.output, " must be a new or empty directory for a directory input"));
    }
  } else if (exists && fs::is_directory(o.output, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("output ", o.output, " is a directory; give a file path for a file input"));
  }
  return absl::OkStatus();
}

// A backend's error names the tensor in most cases; make sure it always does.
absl::Status NameTensor(const absl::Status& s, const std::string& name) {
  if (absl::StrContains(s.message(), name)) return s;
  return WithTensorName(name, s);
}

// CRC32C of `size` bytes at `offset` of an open file, read in bounded chunks.
absl::StatusOr<uint32_t> FileRangeCrc(int fd, const std::string& path, uint64_t offset,
                                      uint64_t size) {
  std::vector<uint8_t> buf(std::min<uint64_t>(size, 4u << 20));
  Crc32c crc;
  while (size > 0) {
    const size_t want = std::min<uint64_t>(size, buf.size());
    const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError(n < 0 ? errno : EIO, "read", path);
    crc.Update(buf.data(), static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
    size -= static_cast<uint64_t>(n);
  }
  return crc.value();
}

std::string ActionName(TensorAction a) {
  switch (a) {
    case TensorAction::kQuantize:
      return "quantized";
    case TensorAction::kSkip:
      return "skipped";
    case TensorAction::kConsume:
      return "consumed";
    case TensorAction::kCopy:
      break;
  }
  return "copied";
}

// One run: the plan, the writers under OUTPUT.partial, the journal and the workers.
class Run {
 public:
  Run(const QuantizeRunOptions& o, const InputCheckpoint& in, RunPlan plan, Progress& progress,
      const Engine* decode_engine)
      : o_(o), in_(in), plan_(std::move(plan)), progress_(progress), decode_(decode_engine) {
    partial_ = o.output + ".partial";
    reports_.resize(plan_.tensors.size());
    done_.assign(plan_.tensors.size(), false);
  }

  // Creates OUTPUT.partial (reusing it with --resume) and opens every output file in it.
  absl::Status Stage() {
    std::error_code ec;
    if (!o_.resume) fs::remove_all(partial_, ec);
    fs::create_directories(partial_, ec);
    if (ec) return ErrnoError(ec.value(), "create directory", partial_);
    const std::string journal_path = Path(kJournalName);
    std::vector<JournalEntry> entries;
    if (o_.resume) entries = Journal::Load(journal_path);
    std::vector<bool> reused(plan_.files.size(), false);
    for (size_t i = 0; i < plan_.files.size(); ++i) {
      const PlannedFile& f = plan_.files[i];
      SafetensorsWriterOptions wo;
      wo.temp_path = Path(f.name + kPartSuffix);
      wo.keep_temp = true;
      if (o_.resume) {
        // A previous run may have finished this file inside the partial directory.
        if (!fs::exists(wo.temp_path, ec) && fs::exists(Path(f.name), ec)) {
          fs::rename(Path(f.name), wo.temp_path, ec);
        }
        wo.reuse_temp = fs::exists(wo.temp_path, ec);
      }
      absl::StatusOr<SafetensorsWriter> w =
          SafetensorsWriter::Create(Path(f.name), f.specs, plan_.metadata, wo);
      if (!w.ok() && wo.reuse_temp && w.status().code() == absl::StatusCode::kFailedPrecondition) {
        wo.reuse_temp = false;  // a different plan wrote it: start this file afresh
        w = SafetensorsWriter::Create(Path(f.name), f.specs, plan_.metadata, wo);
      } else {
        reused[i] = wo.reuse_temp;
      }
      if (!w.ok()) return w.status();
      writers_.push_back(std::make_unique<SafetensorsWriter>(*std::move(w)));
    }
    std::vector<JournalEntry> kept;
    if (!entries.empty()) {
      RTNQ_ASSIGN_OR_RETURN(kept, Reuse(entries, reused));
    }
    RTNQ_ASSIGN_OR_RETURN(journal_, Journal::Create(journal_path, kept));
    return absl::OkStatus();
  }

  // Quantizes and writes everything not reused, `sessions.size()` tensors at a time.
  absl::Status Work(std::vector<std::unique_ptr<Session>>& sessions) {
    int total = static_cast<int>(plan_.tensors.size());
    progress_.Start(total, plan_.bytes_before);
    std::vector<size_t> queue;
    for (size_t i = 0; i < plan_.tensors.size(); ++i) {
      if (done_[i]) {
        progress_.TensorDone(reports_[i]);
      } else {
        queue.push_back(i);
      }
    }
    // Largest quantization jobs first so no long one starts last; copies after them.
    std::stable_sort(queue.begin(), queue.end(), [&](size_t a, size_t b) {
      const PlannedTensor& x = plan_.tensors[a];
      const PlannedTensor& y = plan_.tensors[b];
      const bool qx = x.decision.action == TensorAction::kQuantize;
      const bool qy = y.decision.action == TensorAction::kQuantize;
      if (qx != qy) return qx;
      return qx && x.tensor->data.size() > y.tensor->data.size();
    });
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    absl::Status first_error;
    auto worker = [&](Session& session) {
      while (!failed.load()) {
        const size_t k = next.fetch_add(1);
        if (k >= queue.size()) return;
        if (absl::Status s = Process(queue[k], session); !s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.ok()) first_error = s;
          failed = true;
        }
      }
    };
    std::vector<std::thread> threads;
    for (size_t i = 1; i < sessions.size(); ++i) {
      threads.emplace_back(worker, std::ref(*sessions[i]));
    }
    worker(*sessions[0]);
    for (std::thread& t : threads) t.join();
    progress_.Finish();
    return first_error;
  }

  // Finishes the files and side files inside OUTPUT.partial and moves them into place.
  absl::StatusOr<std::vector<std::string>> Commit() {
    std::vector<std::string> files;
    std::map<std::string, std::string> weight_map;
    for (size_t i = 0; i < writers_.size(); ++i) {
      RTNQ_RETURN_IF_ERROR(writers_[i]->Finish());
      files.push_back(plan_.files[i].name);
      for (const TensorSpec& s : plan_.files[i].specs) weight_map[s.name] = plan_.files[i].name;
    }
    std::error_code ec;
    if (in_.is_dir) {
      RTNQ_ASSIGN_OR_RETURN(std::vector<std::string> side,
                            WriteSideFiles(o_.input, partial_, plan_));
      files.insert(files.end(), side.begin(), side.end());
      if (plan_.write_index) {
        RTNQ_RETURN_IF_ERROR(WriteShardIndex(partial_, weight_map, plan_.bytes_after));
        files.push_back(kShardIndexFileName);
      }
    }
    journal_.reset();
    if (!fs::remove(Path(kJournalName), ec) && ec) {
      return ErrnoError(ec.value(), "remove", Path(kJournalName));
    }
    if (in_.is_dir) {
      fs::remove(o_.output, ec);  // CheckOutput allowed only an empty directory
      fs::rename(partial_, o_.output, ec);
      if (ec) return ErrnoError(ec.value(), absl::StrCat("rename ", partial_, " to"), o_.output);
    } else {
      fs::rename(Path(plan_.files[0].name), o_.output, ec);
      if (ec) {
        return ErrnoError(ec.value(), absl::StrCat("rename ", Path(plan_.files[0].name), " to"),
                          o_.output);
      }
      fs::remove(partial_, ec);
    }
    RTNQ_RETURN_IF_ERROR(FsyncParentDir(o_.output));
    return files;
  }

  // After a failure: keeps OUTPUT.partial when it holds finished quantized tensors and the
  // error is not the input's or config's fault (a rerun with --resume would fail again), else
  // removes it. Says which in the returned error.
  absl::Status Fail(absl::Status error) {
    for (auto& w : writers_) w->Abandon();
    const bool journaled = journaled_.load() > 0;
    journal_.reset();
    std::error_code ec;
    if (journaled && error.code() != absl::StatusCode::kInvalidArgument) {
      return absl::Status(error.code(), absl::StrCat(error.message(), " (", journaled_.load(),
                                                     " finished tensors kept in ", partial_,
                                                     "; rerun with --resume to reuse them)"));
    }
    fs::remove_all(partial_, ec);
    return error;
  }

  std::vector<TensorReport>& reports() { return reports_; }
  const RunPlan& plan() const { return plan_; }

 private:
  std::string Path(const std::string& name) const { return (fs::path(partial_) / name).string(); }

  // Re-verifies journal entries against the reused files and the input; keeps those that match.
  absl::StatusOr<std::vector<JournalEntry>> Reuse(const std::vector<JournalEntry>& entries,
                                                  const std::vector<bool>& reused) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < plan_.tensors.size(); ++i) index[plan_.tensors[i].tensor->name] = i;
    std::vector<JournalEntry> kept;
    std::vector<int> fds(writers_.size(), -1);
    for (size_t f = 0; f < writers_.size(); ++f) {
      if (reused[f]) fds[f] = ::open(writers_[f]->temp_path().c_str(), O_RDONLY | O_CLOEXEC);
    }
    absl::Status status;
    for (const JournalEntry& e : entries) {
      auto it = index.find(e.tensor);
      if (it == index.end() || done_[it->second]) continue;
      const PlannedTensor& p = plan_.tensors[it->second];
      if (p.decision.action != TensorAction::kQuantize || fds[p.file] < 0 ||
          e.outputs.size() != p.outputs.size() || InputCrc(p) != e.input_crc32c) {
        continue;
      }
      SafetensorsWriter& w = *writers_[p.file];
      bool ok = true;
      for (size_t k = 0; k < p.outputs.size() && ok; ++k) {
        ok = e.outputs[k].first == p.outputs[k].name;
        const auto ht = std::find_if(w.tensors().begin(), w.tensors().end(),
                                     [&](const auto& t) { return t.name == p.outputs[k].name; });
        if (!ok || ht == w.tensors().end()) break;
        absl::StatusOr<uint32_t> crc = FileRangeCrc(
            fds[p.file], w.temp_path(), w.data_offset() + ht->begin, ht->end - ht->begin);
        ok = crc.ok() && *crc == e.outputs[k].second;
      }
      absl::StatusOr<TensorReport> report = TensorReportFromJson(e.report);
      if (!ok || !report.ok()) continue;
      for (const TensorSpec& s : p.outputs) {
        status = w.MarkWritten(s.name);
        if (!status.ok()) break;
      }
      if (!status.ok()) break;
      report->resumed = true;
      reports_[it->second] = *std::move(report);
      done_[it->second] = true;
      kept.push_back(e);
      journaled_.fetch_add(1);
    }
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
    if (!status.ok()) return status;
    return kept;
  }

  // Writes one bias per expert weight, cut from a stacked bias [E, F] as its weight was cut.
  absl::StatusOr<uint64_t> WriteExpertBiases(const PlannedTensor& p, absl::Span<const uint8_t> data,
                                             SafetensorsWriter& w) {
    const int es = ElemSize(p.dtype);
    const int64_t fused = p.tensor->shape[1];
    uint64_t written = 0;
    for (size_t k = 0; k < p.bias_experts.size(); ++k) {
      const ExpertSlice& e = p.bias_experts[k];
      const TensorSpec& spec = p.outputs[k];
      std::vector<uint8_t> bytes(static_cast<size_t>(e.out * es));
      for (int64_t o = 0; o < e.out; ++o) {
        std::memcpy(&bytes[o * es], &data[(e.expert * fused + e.offset + o * e.stride) * es], es);
      }
      if (spec.dtype != p.dtype) {  // GPTQ stores biases as F16
        RTNQ_ASSIGN_OR_RETURN(
            bytes, GptqBiasBytes(TensorInfo{spec.name, p.dtype, {e.out}, e.out, 0, bytes}));
      }
      RTNQ_RETURN_IF_ERROR(w.WriteTensor(spec.name, bytes));
      written += bytes.size();
    }
    return written;
  }

  // CRC32C of everything a tensor's result depends on: its bytes, and an FP8 source's scale.
  uint32_t InputCrc(const PlannedTensor& p) const {
    Crc32c crc;
    crc.Update(p.tensor->data.data(), p.tensor->data.size());
    if (p.fp8.has_value()) {
      if (const TensorInfo* s = in_.checkpoint.Find(p.fp8->scale_name); s != nullptr) {
        crc.Update(s->data.data(), s->data.size());
      }
    }
    return crc.value();
  }

  absl::Status Process(size_t i, Session& session) {
    const Clock::time_point t0 = Clock::now();
    const PlannedTensor& p = plan_.tensors[i];
    const TensorInfo& t = *p.tensor;
    SafetensorsWriter& w = *writers_[p.file];
    TensorReport& r = reports_[i];
    r.name = t.name;
    r.action = ActionName(p.decision.action);
    r.reason = p.decision.reason;
    r.shape = t.shape;
    r.dtype = ElemTypeName(t.dtype);
    r.bytes_in = t.data.size();
    // An FP8 source reaches the backend (or the output) as float32 values.
    std::vector<uint8_t> decoded;
    absl::Span<const uint8_t> data = t.data;
    if (p.fp8.has_value() && p.decision.action != TensorAction::kConsume) {
      RTNQ_ASSIGN_OR_RETURN(decoded, DequantizedFp8Bytes(in_, t, *p.fp8, *decode_));
      data = decoded;
      if (r.reason.empty()) r.reason = Fp8SourceNote(t, *p.fp8);
    }
    if (p.decision.action == TensorAction::kConsume) {
      r.wall_seconds = SecondsSince(t0);
      progress_.TensorDone(r);
      return absl::OkStatus();
    }
    if (p.decision.action != TensorAction::kQuantize) {
      if (!p.bias_experts.empty()) {
        RTNQ_ASSIGN_OR_RETURN(r.bytes_out, WriteExpertBiases(p, data, w));
      } else if (p.bias_to_f16) {
        RTNQ_ASSIGN_OR_RETURN(const std::vector<uint8_t> f16, GptqBiasBytes(t));
        RTNQ_RETURN_IF_ERROR(w.WriteTensor(t.name, f16));
        r.bytes_out = f16.size();
      } else {
        RTNQ_RETURN_IF_ERROR(w.WriteTensor(t.name, data));
        r.bytes_out = data.size();
      }
      r.wall_seconds = SecondsSince(t0);
      progress_.TensorDone(r);
      return absl::OkStatus();
    }
    const uint32_t input_crc = InputCrc(p);
    std::optional<uint32_t> request_crc;
    if (!p.fp8.has_value()) request_crc = input_crc;  // else the backend computes it if needed
    TensorFileSink sink(t.name, p.outputs, w);
    absl::StatusOr<TensorResult> result =
        session.Quantize(TensorRequest{{t.name, p.dtype, t.shape, data}, request_crc}, sink);
    if (!result.ok()) return NameTensor(result.status(), t.name);
    if (!result->quantized) {
      sink.Discard();
      return absl::InternalError(absl::StrCat(
          TensorPrefix(t.name), "the backend did not quantize it: ", result->skip_reason));
    }
    JournalEntry entry;
    entry.tensor = t.name;
    entry.input_crc32c = input_crc;
    RTNQ_ASSIGN_OR_RETURN(entry.outputs, sink.Checksums());
    r.bytes_out = sink.bytes();
    r.config = result->config;
    r.decided_by = DecidedByText(p.decision.resolved);
    r.metrics = result->metrics;
    r.server_seconds = result->server_seconds;
    r.served_by = result->served_by;
    r.attempts = result->attempts;
    r.wall_seconds = SecondsSince(t0);
    entry.report = TensorReportToJson(r);
    RTNQ_RETURN_IF_ERROR(journal_->Append(entry));
    journaled_.fetch_add(1);
    progress_.TensorDone(r);
    return absl::OkStatus();
  }

  const QuantizeRunOptions& o_;
  const InputCheckpoint& in_;
  RunPlan plan_;
  Progress& progress_;
  std::string partial_;
  std::vector<std::unique_ptr<SafetensorsWriter>> writers_;
  std::unique_ptr<Journal> journal_;
  std::vector<TensorReport> reports_;  // by plan index; each slot written by one thread
  std::vector<bool> done_;             // reused from a previous run (set before the workers)
  std::atomic<int> journaled_{0};
  const Engine* decode_;  // dequantizes FP8 sources; null when the input has none
};

}  // namespace

absl::StatusOr<QuantizeOutcome> RunQuantize(const QuantizeRunOptions& given, Backend& backend,
                                            Progress& progress) {
  const Clock::time_point start = Clock::now();
  QuantizeRunOptions options = given;
  // "out/" and "out" are one output (OUTPUT.partial must sit next to it, not inside).
  while (options.output.size() > 1 && options.output.back() == '/') options.output.pop_back();
  if (options.streams < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("streams must be at least 1, got ", options.streams));
  }
  RTNQ_ASSIGN_OR_RETURN(const InputCheckpoint in, OpenInput(options.input));
  RTNQ_RETURN_IF_ERROR(CheckOutput(options, in.is_dir));
  RTNQ_ASSIGN_OR_RETURN(const WeightConfigResolver resolver,
                        ParseSessionConfigJson(options.config_json));
  RTNQ_ASSIGN_OR_RETURN(const TensorSelection selection,
                        TensorSelection::Create(options.include, options.exclude));
  PlanOptions po;
  RTNQ_ASSIGN_OR_RETURN(po.input_config, ReadInputConfig(options.input, in));
  po.output_name = fs::path(options.output).filename().string();
  po.format = options.format;
  po.gptq_format = options.gptq_format;
  po.compression_dim = options.compression_dim;
  po.target = options.target;
  po.expert_layout = options.expert_layout;
  RTNQ_ASSIGN_OR_RETURN(RunPlan plan, PlanRun(in, options.input, resolver, selection, po));
  for (const std::string& w : plan.warnings) progress.Warn(w);

  SessionSpec spec;
  spec.config_json = options.config_json;
  spec.format = options.format;
  spec.gptq_format = plan.gptq_format;
  spec.compression_dim = options.compression_dim;
  spec.expert_layout = plan.expert_layout;
  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < options.streams; ++i) {
    RTNQ_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, backend.OpenSession(spec));
    sessions.push_back(std::move(s));
  }

  std::unique_ptr<Engine> decode_engine;
  if (plan.fp8_source) {
    // FP8 sources are dequantized here, before any backend sees them, so local and remote runs
    // quantize the same float32 bytes. Its own arena: shares TBB's workers with a local backend.
    RTNQ_ASSIGN_OR_RETURN(decode_engine, Engine::Create({}));
  }
  Run run(options, in, std::move(plan), progress, decode_engine.get());
  absl::Status status = run.Stage();
  if (status.ok()) status = run.Work(sessions);
  for (auto& s : sessions) {
    absl::Status closed = s->Close();
    if (status.ok() && !closed.ok()) status = closed;
  }
  absl::StatusOr<std::vector<std::string>> files;
  if (status.ok()) {
    files = run.Commit();
    status = files.status();
  }
  if (!status.ok()) return run.Fail(status);

  QuantizeOutcome outcome;
  RunSummary& s = outcome.summary;
  s.input = options.input;
  s.output = options.output;
  s.format = OutputLayoutName(options.format);
  if (options.format == OutputLayout::kGptq) s.gptq_format = GptqFormatName(run.plan().gptq_format);
  s.backend = backend.Describe();
  s.bytes_before = run.plan().bytes_before;
  s.bytes_after = run.plan().bytes_after;
  s.files = *std::move(files);
  s.warnings = run.plan().warnings;
  outcome.tensors = std::move(run.reports());
  Summarize(outcome.tensors, s);
  s.wall_seconds = SecondsSince(start);
  if (!options.report_path.empty()) {
    RTNQ_RETURN_IF_ERROR(
        WriteFileAtomically(options.report_path, ReportToJson(s, outcome.tensors).dump(2) + "\n"));
  }
  return outcome;
}

}  // namespace rtnq::client
